"""The benchmarked datasets: where they come from, their fixed train/test split and meta-features, and
the KB datasets hidden from the recommenders for each of them (no leakage)."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from metalearn.benchmark.settings import BenchmarkSettings
from metalearn.data.dataset import Dataset
from metalearn.data.errors import InputError
from metalearn.kb.base import KnowledgeBase
from metalearn.offline.build import DatasetSource

__all__ = [
    "DatasetInfo",
    "Excluded",
    "KindView",
    "Prepared",
    "dataset_key",
    "kind_views",
    "leakage_exclusions",
    "normalise_name",
    "prepare_dataset",
    "prepare_split",
    "prepared",
    "resolve_benchmark_sources",
]


# ------------------------------------------------------------------------------------------ sources
def dataset_key(source: DatasetSource) -> str:
    spec = source.spec
    return spec.split(":", 1)[1] if spec.startswith("corpus:") else spec


def resolve_benchmark_sources(
    suite: str | None = None, corpus: str | Path | None = None, names: Sequence[str] | None = None
) -> tuple[list[DatasetSource], list[str]]:
    """The datasets to benchmark and the suite datasets that were not found (listed, then skipped).

    A suite with ``corpus`` is matched in the corpus by OpenML id; a suite without one is loaded through
    openml-python (``openml:DID``); ``corpus`` alone gives every corpus dataset. ``names`` restricts to
    those names (corpus names, or OpenML ids for a suite loaded online).
    """
    from metalearn.offline.build import resolve_sources

    if suite is None and corpus is None:
        raise InputError("give --suite openml-cc18|amlb|FILE and/or --corpus DIR")
    sources, missing = resolve_sources(
        corpus=None if corpus is None else str(corpus), suite=suite, names=names
    )
    if not sources:
        if suite is not None and corpus is not None and missing and not names:
            raise InputError(
                f"none of the {len(missing)} datasets of suite {suite!r} is in the corpus (matched by OpenML id); "
                "drop --corpus to load them through openml-python (needs the network or an OpenML cache)"
            )
        raise InputError(
            "no dataset to benchmark: --datasets matched none of the suite's or corpus's datasets"
        )
    return sources, missing


# ------------------------------------------------------------------------------------------ data preparation
@dataclass(frozen=True)
class DatasetInfo:
    """A prepared benchmark dataset (what the cells and the report need, no data)."""

    key: str
    spec: str
    name: str
    kind: str
    metric: str
    greater_is_better: bool
    n_rows: int
    n_features: int
    n_rows_used: int
    n_train: int
    n_test: int
    dataset_id: str  # fingerprint of the full data (the KB id of the dataset)
    train_id: str  # fingerprint of the training part
    openml_id: int | None
    metafeatures: dict[str, float]
    mf_seconds: float
    excluded: tuple[dict[str, Any], ...] = ()
    status: str = "ok"
    error: str = ""

    @classmethod
    def failed(cls, key: str, spec: str, error: str) -> DatasetInfo:
        """A dataset that could not be prepared (stored so that the report lists it; retried on resume)."""
        return cls(
            key, spec, key, "", "", True, 0, 0, 0, 0, 0, "", "", None, {}, 0.0, status="failed", error=error
        )


@dataclass(frozen=True)
class Prepared:
    full: Dataset
    train: Dataset
    X_test: pd.DataFrame
    y_test: pd.DataFrame


def prepare_split(dataset: Dataset, max_rows: int | None, test_size: float, seed: int) -> Prepared:
    """Subsample to ``max_rows`` (seeded), then one seeded, stratified outer train/test split."""
    from metalearn.data.splits import holdout_split

    sub = (
        dataset.subsample(max_rows, seed=seed)
        if max_rows is not None and dataset.n_rows > max_rows
        else dataset
    )
    tr, te = holdout_split(sub.task, sub.y, test_size=test_size, seed=seed)
    train = Dataset(
        name=dataset.name,
        X=sub.X.iloc[tr].reset_index(drop=True),
        y=sub.y.iloc[tr].reset_index(drop=True),
        task=sub.task,
        categorical=sub.categorical,
        origin=f"benchmark-train:{dataset.origin}",
        openml_id=dataset.openml_id,
        dates=sub.dates,
    )
    return Prepared(sub, train, sub.X.iloc[te].reset_index(drop=True), sub.y.iloc[te].reset_index(drop=True))


@functools.lru_cache(maxsize=4)
def prepared(
    source: DatasetSource, max_rows: int | None, test_size: float, seed: int
) -> tuple[Dataset, Prepared]:
    ds = source.load()
    return ds, prepare_split(ds, max_rows, test_size, seed)


def prepare_dataset(source: DatasetSource, settings: BenchmarkSettings) -> DatasetInfo:
    """Runs in a worker: load, split, meta-features of the training part."""
    from metalearn.data.metrics import get_metric
    from metalearn.metalearning.metafeatures import metafeature_record

    ds, prep = prepared(source, settings.max_rows, settings.test_size, settings.split_seed)
    mf = metafeature_record(prep.train, seed=settings.split_seed)
    return DatasetInfo(
        key=dataset_key(source),
        spec=source.spec,
        name=ds.name,
        kind=str(ds.task.kind),
        metric=ds.task.metric,
        greater_is_better=get_metric(ds.task.metric).greater_is_better,
        n_rows=ds.n_rows,
        n_features=ds.n_features,
        n_rows_used=prep.full.n_rows,
        n_train=prep.train.n_rows,
        n_test=len(prep.X_test),
        dataset_id=ds.dataset_id,
        train_id=prep.train.dataset_id,
        openml_id=ds.openml_id,
        metafeatures={k: float(v) for k, v in mf.values.items()},
        mf_seconds=float(mf.extraction_seconds),
    )


# ------------------------------------------------------------------------------------------ leakage
_PREFIX = re.compile(r"^(?:\d+_|uci_|openml_|pmlb_|mulan_|bng[_(])+")


def normalise_name(name: str) -> str:
    """A dataset name reduced for duplicate detection: lower case, without a numeric or collection prefix
    (``1089_USCrime``, ``uci_autompg``, ``BNG(pbc)``), letters and digits only."""
    text = _PREFIX.sub("", str(name).strip().lower())
    return re.sub(r"[^a-z0-9]", "", text)


def ids_named(records: pd.DataFrame | None, name: str) -> set[str]:
    """The ``dataset_id`` of every row of ``records`` (the KB's ``datasets`` table) whose name is ``name``'s
    (:func:`normalise_name`)."""
    if records is None or not len(records):
        return set()
    same = records["name"].map(normalise_name) == normalise_name(name)
    return set(records.loc[same, "dataset_id"].astype(str))


@dataclass(frozen=True)
class Excluded:
    """A KB dataset hidden from the recommenders for one benchmarked dataset, and why."""

    dataset_id: str
    name: str
    reason: str  # "fingerprint", "training-part fingerprint", "openml id", "name", "near-duplicate"
    distance: float | None = None


@dataclass
class KindView:
    records: list[Any]
    metafeatures: pd.DataFrame


def leakage_exclusions(
    info: DatasetInfo, records: Sequence[Any], metafeatures: pd.DataFrame, dup_distance: float = 0.05
) -> list[Excluded]:
    """The KB datasets (``records``: DatasetRecords of the same kind; ``metafeatures``: their frame)
    that are the benchmarked dataset or a near-duplicate of it.

    Rules: same fingerprint (full data or training part); same OpenML id; equal :func:`normalise_name`;
    or a meta-feature distance (mean absolute difference of min-max scaled meta-features, the knn
    recommender's distance) of at most ``dup_distance`` together with the same number of features and a
    row count within 5 % of the full dataset's — or at most ``dup_distance / 2`` with the same number of
    features whatever the rows (subsamples and re-samplings of the same data).

    Calibration (60 corpus datasets, 75 % training part vs the full data): a dataset's own distance is
    0.01-0.07 (median ~0.035), the nearest *other* dataset is mostly 0.08-0.2; closer pairs are
    same-generator families (GAMETES 1600 x 20: 0.022) and noisy copies (Hill_Valley with/without noise:
    0.039), which the default 0.05 treats as near-duplicates.
    """
    from metalearn.metalearning.distances import metafeature_distances

    distances: dict[str, float] = {}
    if len(metafeatures) and info.metafeatures:
        d = metafeature_distances(pd.Series(info.metafeatures, dtype=float), metafeatures)
        distances = {str(k): float(v) for k, v in d.items()}
    own_names = {normalise_name(info.name)}
    if not info.spec.startswith("openml"):
        own_names.add(normalise_name(info.key))
    own_names.discard("")
    out: list[Excluded] = []
    for r in records:
        dist = distances.get(r.dataset_id)
        reason = None
        if r.dataset_id == info.dataset_id:
            reason = "fingerprint"
        elif r.dataset_id == info.train_id:  # its training part, as a --write-kb benchmark stored it
            reason = "training-part fingerprint"
        elif (
            info.openml_id is not None and r.openml_id is not None and int(r.openml_id) == int(info.openml_id)
        ):
            reason = "openml id"
        elif normalise_name(r.name) in own_names:
            reason = "name"
        elif dist is not None and r.n_features == info.n_features:
            same_rows = abs(r.n_rows - info.n_rows) <= 0.05 * max(info.n_rows, 1)
            if (same_rows and dist <= dup_distance) or dist <= dup_distance / 2:
                reason = "near-duplicate"
        if reason is not None:
            out.append(Excluded(r.dataset_id, r.name, reason, None if dist is None else round(dist, 6)))
    return out


def kind_views(kb: KnowledgeBase | None, advisor: Any, kinds: Iterable[str]) -> dict[str, KindView]:
    out: dict[str, KindView] = {}
    for kind in kinds:
        if kb is None:
            out[kind] = KindView([], pd.DataFrame())
            continue
        data = advisor.kind_data(kind, check=False)
        out[kind] = KindView(kb.list_datasets(kind=kind), data.metafeatures)
    return out
