"""The regret matrix the recommenders work on, built from a KB's ``runs`` frame.

``runs`` (see :mod:`metalearn.kb.base`) has the columns ``run_id, dataset_id, config_id, space,
space_version, protocol, status, metric, score, cost, fit_seconds, budget, source`` (``cost``: lower
is better, NaN for failed runs). From it :func:`performance_matrix` builds datasets x configurations
(the best cost of the ok full-budget runs; of a dataset evaluated on subsamples of several sizes, those of
the largest, see :func:`largest_protocols`), and :func:`normalised_regret_matrix` turns every row into
*normalised regret* in [0, 1] (HPO-B style: 0 = the best configuration observed on that dataset,
1 = the worst; failed evaluations count as the worst). :func:`prepare_matrix` aligns that with the
KB's meta-features in a :class:`RegretMatrix`, built once and reused for many queries.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Collection, Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from metalearn.data.errors import InputError
from metalearn.metalearning.distances import numeric_frame

__all__ = [
    "MIN_PROTOCOL_CONFIGS",
    "REQUIRED_RUN_COLUMNS",
    "RegretMatrix",
    "largest_protocols",
    "normalised_regret_matrix",
    "performance_matrix",
    "prepare_matrix",
    "protocol_rows",
    "usable_masks",
]

#: Columns ``runs`` must have (when it has any row).
REQUIRED_RUN_COLUMNS: tuple[str, ...] = ("dataset_id", "config_id", "status", "cost")


#: A subsample size of a dataset stands for it in the matrix only with at least this many evaluated
#: configurations (else the size with the most): a few runs do not replace a dense row.
MIN_PROTOCOL_CONFIGS = 10

_SUB = re.compile(r"-sub(\d+)")


def protocol_rows(key: str) -> float:
    """The row cap of a protocol key: its ``-subN`` part (``cv3-s0-holdout0.33-over20000-sub1000`` ->
    1000), ``inf`` for a key without one (the evaluation used all rows)."""
    m = _SUB.search(str(key))
    return float(m.group(1)) if m else math.inf


def largest_protocols(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` without the subsampled runs of a dataset that it also has at a larger subsample.

    A run on a subsample (a protocol key with ``-subN``, :func:`protocol_rows`) stands for its dataset
    at that size; costs of one configuration at two sizes are not comparable, and which configuration
    wins depends on the rows it trains on (bagged trees on a small sample, boosting on a large one). So
    per dataset only the largest subsample size with at least :data:`MIN_PROTOCOL_CONFIGS` evaluated
    configurations (else the size with the most) is kept: the dataset's row in the matrix is measured
    at the size closest to its own, which is what its meta-features describe. Runs on all rows (a
    search's, imported ones) always count, as do datasets with one subsample size.
    """
    if len(runs) == 0 or "protocol" not in runs.columns:
        return runs
    rows = np.array([protocol_rows(k) for k in runs["protocol"].astype(str)], dtype=float)
    sub = np.isfinite(rows)
    if not sub.any():
        return runs
    frame = pd.DataFrame(
        {
            "dataset_id": runs["dataset_id"].astype(str).to_numpy()[sub],
            "rows": rows[sub],
            "config_id": runs["config_id"].astype(str).to_numpy()[sub],
        }
    )
    sizes = frame.groupby(["dataset_id", "rows"], sort=False)["config_id"].nunique().rename("n").reset_index()
    if not sizes["dataset_id"].duplicated().any():
        return runs
    sizes["dense"] = sizes["n"] >= MIN_PROTOCOL_CONFIGS
    sizes["dense_rows"] = np.where(sizes["dense"], sizes["rows"], 0.0)  # the rows decide among dense sizes
    ranked = sizes.sort_values(["dense", "dense_rows", "n", "rows"], ascending=False, kind="stable")
    chosen = ranked.drop_duplicates("dataset_id").set_index("dataset_id")["rows"]
    wanted = runs["dataset_id"].astype(str).map(chosen).to_numpy(dtype=float)
    keep = ~sub | (rows == wanted)
    return runs[keep]


def _check_runs(runs: pd.DataFrame) -> None:
    if not isinstance(runs, pd.DataFrame):
        raise InputError(f"runs must be a pandas DataFrame (kb.runs_frame()), got {type(runs).__name__}")
    if len(runs) == 0:
        return
    missing = [c for c in REQUIRED_RUN_COLUMNS if c not in runs.columns]
    if missing:
        raise InputError(
            f"runs frame lacks column(s) {missing}; pass the frame returned by KnowledgeBase.runs_frame()"
        )


def performance_matrix(runs: pd.DataFrame, *, full_budget_only: bool = True) -> pd.DataFrame:
    """Datasets x configurations: the best (lowest) ``cost`` of the ok runs of each pair.

    Of a dataset's subsampled runs only those of its largest subsample count (:func:`largest_protocols`).
    Only full-budget runs count (``budget`` NaN or >= 1) unless ``full_budget_only`` is false. A pair
    evaluated only by failed runs (status other than ``ok``, or a non-finite cost) holds ``+inf`` so
    :func:`normalised_regret_matrix` can count it as the worst; a pair never evaluated holds NaN.
    When a dataset was scored with several metrics, only the runs of one metric count (costs of
    different metrics are not comparable): the one of most of the KB's own runs (``source`` not
    ``import:...``), then the most frequent.
    """
    return _performance(runs, full_budget_only)[0]


def _performance(runs: pd.DataFrame, full_budget_only: bool = True) -> tuple[pd.DataFrame, pd.Series]:
    """(:func:`performance_matrix`, the metric of each of its datasets: ``""`` when runs name none)."""
    _check_runs(runs)
    no_metric = pd.Series(dtype=object)
    if len(runs) == 0:
        return pd.DataFrame(dtype=float), no_metric
    df = runs
    if full_budget_only and "budget" in df.columns:
        budget = pd.to_numeric(df["budget"], errors="coerce")
        df = df[budget.isna() | (budget >= 1.0 - 1e-9)]
    df = largest_protocols(df)
    cost = pd.to_numeric(df["cost"], errors="coerce").to_numpy(dtype=float)
    ok = (df["status"].astype(str).to_numpy() == "ok") & np.isfinite(cost)
    frame = pd.DataFrame(
        {
            "dataset_id": df["dataset_id"].to_numpy(dtype=object),
            "config_id": df["config_id"].to_numpy(dtype=object),
            "cost": np.where(ok, cost, np.inf),
        }
    )
    if "metric" in df.columns and len(frame):
        frame["metric"] = df["metric"].astype(str).to_numpy(dtype=object)
        counts = frame[ok].groupby(["dataset_id", "metric"], sort=False).size()
        if counts.index.get_level_values("dataset_id").duplicated().any():
            # the metric of the KB's own evaluations wins over imported ones (e.g. OpenML accuracies
            # on a multiclass dataset the KB scored by log loss), then the most frequent
            own = frame[ok]
            if "source" in df.columns:
                native = ~df["source"].astype(str).str.startswith("import:").to_numpy()
                own = frame[ok & native]
            n_own = (
                own.groupby(["dataset_id", "metric"], sort=False).size().reindex(counts.index, fill_value=0)
            )
            ranked = pd.DataFrame({"own": n_own, "n": counts}).sort_values(
                ["own", "n"], ascending=False, kind="stable"
            )
            main = ranked.reset_index().drop_duplicates("dataset_id").set_index("dataset_id")["metric"]
            keep = frame["metric"].to_numpy() == frame["dataset_id"].map(main).to_numpy()
            frame = frame[keep]
    if len(frame) == 0:
        return pd.DataFrame(dtype=float), no_metric
    best = frame.groupby(["dataset_id", "config_id"], sort=True)["cost"].min()
    matrix = best.unstack("config_id")
    matrix.index.name, matrix.columns.name = "dataset_id", "config_id"
    if "metric" in frame.columns:
        metrics = frame.drop_duplicates("dataset_id").set_index("dataset_id")["metric"]
    else:
        metrics = no_metric
    return matrix.astype(float), metrics


def normalised_regret_matrix(perf: pd.DataFrame) -> pd.DataFrame:
    """Per dataset (row), ``(cost - min) / (max - min)`` over its observed configurations.

    ``+inf`` (failed only) becomes 1, the worst; a row whose finite costs are all equal gets 0 for
    them; NaN (never evaluated) stays NaN. Rows without any finite cost carry no information and are
    dropped, as are columns left without any value.
    """
    if perf.size == 0:
        return perf.astype(float)
    values = perf.to_numpy(dtype=float)
    finite = np.isfinite(values)
    has_ok = finite.any(axis=1)
    with np.errstate(invalid="ignore"):
        lo = np.where(finite, values, np.inf).min(axis=1)
        hi = np.where(finite, values, -np.inf).max(axis=1)
        span = hi - lo
        span = np.where(span > 0, span, 1.0)
        regret = (values - lo[:, None]) / span[:, None]
    regret = np.where(finite, np.clip(regret, 0.0, 1.0), regret)
    regret = np.where(np.isposinf(values), 1.0, regret)
    out = pd.DataFrame(regret, index=perf.index, columns=perf.columns)
    out = out.loc[has_ok]
    return out.loc[:, out.notna().any(axis=0)]


@dataclass(frozen=True, eq=False)
class RegretMatrix:
    """The KB in the form strategies use: a regret matrix and aligned raw meta-features.

    ``regret[i, j]``: normalised regret of ``config_ids[j]`` on ``dataset_ids[i]`` (NaN: not
    evaluated); ``features[i]``: raw meta-features of ``dataset_ids[i]`` (NaN rows for datasets the
    meta-feature frame does not have). Build it once with :func:`prepare_matrix` and reuse it for many
    queries (the LOO evaluation does).
    """

    dataset_ids: np.ndarray
    config_ids: np.ndarray
    regret: np.ndarray
    features: np.ndarray
    feature_names: tuple[str, ...]
    #: ``costs[i, j]``: the best raw cost of ``config_ids[j]`` on ``dataset_ids[i]`` (the metric's own
    #: units, lower better: ``-score`` for greater-is-better metrics; NaN not evaluated, inf failed
    #: only) and ``metrics[i]`` the metric it was scored by (``""`` unknown); None when not built
    #: from runs. They give expected scores in the metric's units (:mod:`metalearn.metalearning.explain`).
    costs: np.ndarray | None = None
    metrics: np.ndarray | None = None
    #: the query-independent state of a context without exclusions (masks + static cache), built once
    _base: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_datasets(self) -> int:
        return len(self.dataset_ids)

    @property
    def n_configs(self) -> int:
        return len(self.config_ids)

    @functools.cached_property
    def dataset_index(self) -> dict[Hashable, int]:
        return {d: i for i, d in enumerate(self.dataset_ids.tolist())}

    @functools.cached_property
    def config_index(self) -> dict[Hashable, int]:
        return {c: j for j, c in enumerate(self.config_ids.tolist())}

    @functools.cached_property
    def evaluated(self) -> np.ndarray:
        """``~isnan(regret)``: which (dataset, configuration) pairs were evaluated."""
        return ~np.isnan(self.regret)

    def base_masks(self) -> tuple[np.ndarray, np.ndarray, dict[tuple[Any, ...], Any]]:
        """(usable datasets, candidate configurations, shared static cache) of a query without
        exclusions or configuration filter: the same for every such query, so computed once (the
        masks are read-only; the cache holds only values that depend on them, not on the query)."""
        base = self._base
        if "masks" not in base:
            dmask, cmask = usable_masks(
                self, np.ones(self.n_datasets, dtype=bool), np.ones(self.n_configs, dtype=bool)
            )
            dmask.setflags(write=False)
            cmask.setflags(write=False)
            base.setdefault("masks", (dmask, cmask, {}))
        masks: tuple[np.ndarray, np.ndarray, dict[tuple[Any, ...], Any]] = base["masks"]
        return masks

    def with_configs(self, allowed: Collection[Hashable]) -> RegretMatrix:
        """This KB restricted to the configurations in ``allowed`` (the others' columns dropped;
        the regrets of the kept ones are unchanged, so they still compare with every configuration
        observed). A query on it equals a query here with ``allowed_configs=allowed``, minus the
        per-query filtering."""
        keep = np.fromiter((c in allowed for c in self.config_ids.tolist()), dtype=bool, count=self.n_configs)
        if keep.all():
            return self
        return RegretMatrix(
            dataset_ids=self.dataset_ids,
            config_ids=self.config_ids[keep],
            regret=np.ascontiguousarray(self.regret[:, keep]),
            features=self.features,
            feature_names=self.feature_names,
            costs=None if self.costs is None else np.ascontiguousarray(self.costs[:, keep]),
            metrics=self.metrics,
        )

    def regret_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            self.regret,
            index=pd.Index(self.dataset_ids, name="dataset_id"),
            columns=pd.Index(self.config_ids, name="config_id"),
        )

    def metafeature_row(self, dataset_id: Hashable) -> pd.Series:
        i = self.dataset_index[dataset_id]
        return pd.Series(self.features[i], index=list(self.feature_names), name=dataset_id)


def prepare_matrix(metafeatures: pd.DataFrame | None, runs: pd.DataFrame) -> RegretMatrix:
    """Regret matrix of ``runs`` (datasets with at least one ok run) aligned with ``metafeatures``."""
    perf, metrics = _performance(runs)
    regret = normalised_regret_matrix(perf)
    costs = perf.reindex(index=regret.index, columns=regret.columns) if perf.size else regret
    if metafeatures is None:
        metafeatures = pd.DataFrame(index=pd.Index([], name="dataset_id"))
    mf = numeric_frame(metafeatures)
    mf = mf[~mf.index.duplicated(keep="last")]
    mf = mf.reindex(index=regret.index)
    return RegretMatrix(
        dataset_ids=regret.index.to_numpy(dtype=object),
        config_ids=regret.columns.to_numpy(dtype=object),
        regret=regret.to_numpy(dtype=float).reshape(len(regret.index), len(regret.columns)),
        features=mf.to_numpy(dtype=float).reshape(len(regret.index), mf.shape[1]),
        feature_names=tuple(str(c) for c in mf.columns),
        costs=costs.to_numpy(dtype=float).reshape(len(regret.index), len(regret.columns)),
        metrics=metrics.reindex(regret.index).fillna("").astype(str).to_numpy(dtype=object),
    )


def usable_masks(matrix: RegretMatrix, dmask: np.ndarray, cmask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Datasets with an allowed evaluated configuration, and allowed configurations evaluated on one."""
    evaluated = matrix.evaluated
    dmask = dmask & ((evaluated & cmask[None, :]).any(axis=1) if matrix.n_configs else False)
    cmask = cmask & ((evaluated & dmask[:, None]).any(axis=0) if matrix.n_datasets else False)
    return dmask, cmask
