"""Benchmark warm-start strategies side by side on held-out datasets (OpenML suites or a corpus).

For every benchmarked dataset:

1. **prepare**: load it, subsample to ``max_rows`` (seeded, stratified on a class target), make one
   seeded outer train/test split (stratified where applicable) and extract the meta-features of the
   training part. The split is fixed per dataset (``split_seed``): the benchmark seeds vary the
   optimisers, not the data, so every strategy and seed searches the same training data with the same
   CV folds and their scores are comparable (HPO-B style).
2. **no leakage**: every meta-learning strategy sees the product KB *without* this dataset and its
   near-duplicates — same fingerprint (of the full data or the training part), same OpenML id, same
   name after normalisation (``1089_USCrime`` ~ ``uscrime``), or the same shape and near-zero
   meta-feature distance (see :func:`leakage_exclusions`). Recommendations come from
   :meth:`metalearn.metalearning.advisor.Advisor.recommend` with ``exclude_ids``.
3. **cells**: one search per (dataset, strategy, seed) with the same trial budget, each writing into
   its own scratch in-memory KB (the product KB is only read, unless ``write_kb``): the trajectory
   (best CV score after each trial, wall-clock time) and the test score of the incumbent refit on the
   training part are stored the moment the cell finishes, so an interrupted benchmark resumes where it
   stopped.

Strategies: ``warm`` (SMAC warm-started with the product's default recommender), ``cold`` (SMAC's
default initial design), ``random`` (random search), one per recommender strategy name
(``knn``, ``portfolio``, ... : SMAC warm-started with that recommender) and ``flaml`` (FLAML AutoML
with the wall-clock budget the ``warm`` cell took; optional dependency).

Everything goes to ``out_dir``: ``results.duckdb`` (tables ``meta``, ``datasets``, ``cells``,
``trials``), the same tables as parquet, ``summary.json``, ``report.md`` and PNG plots (see
:mod:`metalearn.benchmark.report`). :func:`recompute_report` rebuilds the summary and the report from the stored
raw trajectories alone.
"""

from __future__ import annotations

import functools
import json
import math
import multiprocessing
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from metalearn.benchmark.report import BUDGETS
from metalearn.data.dataset import Dataset
from metalearn.data.errors import InputError, MetaLearnError, NotFoundError, OpenMLUnavailableError
from metalearn.data.task import TaskKind
from metalearn.kb.base import TABLES, KnowledgeBase
from metalearn.offline.build import DatasetSource
from metalearn.runtime.progress import BuildProgress
from metalearn.search.evaluation import EvalProtocol

__all__ = [
    "BASELINES",
    "BUDGETS",
    "FLAML",
    "FLAML_HINT",
    "BenchmarkOutcome",
    "BenchmarkSettings",
    "CellResult",
    "DatasetInfo",
    "Excluded",
    "ResultStore",
    "StrategySpec",
    "all_strategies",
    "leakage_exclusions",
    "load_frames",
    "normalise_name",
    "parse_strategies",
    "prepare_split",
    "recompute_report",
    "resolve_benchmark_sources",
    "run_benchmark",
    "strategy_spec",
]

#: Strategies that are not recommenders.
BASELINES: tuple[str, ...] = ("warm", "cold", "random")
FLAML = "flaml"
FLAML_HINT = "pip install metalearn[flaml]"
RESULTS_FILE = "results.duckdb"


# ------------------------------------------------------------------------------------------ strategies
@dataclass(frozen=True)
class StrategySpec:
    """How a benchmark strategy searches: optimizer ``smac``/``random``/``flaml``, warm start, recommender."""

    name: str
    optimizer: str
    warm_start: bool
    recommender: str | None

    @property
    def has_trajectory(self) -> bool:
        """Whether the strategy's per-trial CV scores are comparable with the others' (not FLAML)."""
        return self.optimizer != FLAML


def all_strategies() -> list[str]:
    """Every strategy name: the baselines, one per recommender, and flaml."""
    from metalearn.metalearning.advisor import Advisor

    return [*BASELINES, *Advisor.strategies(), FLAML]


def strategy_spec(name: str) -> StrategySpec:
    from metalearn.metalearning.advisor import Advisor
    from metalearn.metalearning.strategies import DEFAULT_STRATEGY

    if name == "warm":
        return StrategySpec(name, "smac", True, DEFAULT_STRATEGY)
    if name == "cold":
        return StrategySpec(name, "smac", False, None)
    if name == "random":
        return StrategySpec(name, "random", False, None)
    if name == FLAML:
        return StrategySpec(name, FLAML, False, None)
    if name in Advisor.strategies():
        return StrategySpec(name, "smac", True, name)
    raise InputError(
        f"unknown benchmark strategy {name!r}; choose from {', '.join(all_strategies())} (or 'all')"
    )


def parse_strategies(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"warm,cold,knn"`` (or a list, or ``"all"``) -> validated, de-duplicated strategy names."""
    if text is None:
        return BASELINES
    items = [s.strip() for s in (text.split(",") if isinstance(text, str) else text)]
    items = [s for s in items if s]
    if not items:
        raise InputError("no strategies given; use e.g. --strategies warm,cold,random (or 'all')")
    if items == ["all"]:
        return tuple(all_strategies())
    out: list[str] = []
    for s in items:
        strategy_spec(s)
        if s not in out:
            out.append(s)
    return tuple(out)


# ------------------------------------------------------------------------------------------ settings
@dataclass(frozen=True)
class BenchmarkSettings:
    """What a benchmark runs. Fields in :data:`COMPARABLE` must match when a benchmark is resumed."""

    strategies: tuple[str, ...] = BASELINES
    n_trials: int = 25
    seeds: tuple[int, ...] = (0,)
    time_limit: float | None = None  # wall-clock seconds per search (cell)
    trial_time_limit: float | None = 60.0
    memory_limit_mb: int | None = None
    max_rows: int | None = 5000
    n_folds: int = 3
    test_size: float = 0.25
    split_seed: int = 0
    n_warm: int = 10
    workers: int = 1
    write_kb: bool = False
    retry_failed: bool = False
    dup_distance: float = 0.05  # meta-feature distance (mean |scaled difference|) of a near-duplicate

    COMPARABLE = (
        "n_trials",
        "time_limit",
        "trial_time_limit",
        "max_rows",
        "n_folds",
        "test_size",
        "split_seed",
        "n_warm",
        "dup_distance",
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "strategies", parse_strategies(self.strategies))
        if not isinstance(self.n_trials, int) or self.n_trials < 1:
            raise InputError(f"--trials must be a positive integer, got {self.n_trials!r}")
        seeds = tuple(int(s) for s in self.seeds)
        if not seeds or len(set(seeds)) != len(seeds):
            raise InputError(f"seeds must be distinct integers (at least one), got {self.seeds!r}")
        object.__setattr__(self, "seeds", seeds)
        if self.time_limit is not None and not self.time_limit > 0:
            raise InputError(f"--time-limit must be positive seconds, got {self.time_limit!r}")
        if self.trial_time_limit is not None and not self.trial_time_limit > 0:
            raise InputError(f"--trial-time-limit must be positive seconds, got {self.trial_time_limit!r}")
        if self.max_rows is not None and self.max_rows < 50:
            raise InputError(f"--max-rows must be at least 50, got {self.max_rows}")
        if self.n_folds < 2:
            raise InputError(f"--folds must be at least 2, got {self.n_folds}")
        if not 0.05 <= self.test_size <= 0.5:
            raise InputError(f"test_size must be in [0.05, 0.5], got {self.test_size}")
        if self.n_warm < 1:
            raise InputError(f"n_warm must be >= 1, got {self.n_warm}")
        if self.workers < 1:
            raise InputError(f"--workers must be >= 1, got {self.workers}")
        if not self.dup_distance >= 0:
            raise InputError(f"dup_distance must be >= 0, got {self.dup_distance}")

    @property
    def protocol(self) -> EvalProtocol:
        return EvalProtocol(n_folds=self.n_folds, seed=self.split_seed)

    def comparable(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.COMPARABLE}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["strategies"] = list(self.strategies)
        d["seeds"] = list(self.seeds)
        return d


# ------------------------------------------------------------------------------------------ sources
def _dataset_key(source: DatasetSource) -> str:
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
    )
    return Prepared(sub, train, sub.X.iloc[te].reset_index(drop=True), sub.y.iloc[te].reset_index(drop=True))


@functools.lru_cache(maxsize=4)
def _prepared(
    source: DatasetSource, max_rows: int | None, test_size: float, seed: int
) -> tuple[Dataset, Prepared]:
    ds = source.load()
    return ds, prepare_split(ds, max_rows, test_size, seed)


def _prepare_job(source: DatasetSource, settings: BenchmarkSettings) -> DatasetInfo:
    """Runs in a worker: load, split, meta-features of the training part."""
    from metalearn.data.metrics import get_metric
    from metalearn.metalearning.metafeatures import metafeature_record

    ds, prep = _prepared(source, settings.max_rows, settings.test_size, settings.split_seed)
    mf = metafeature_record(prep.train, seed=settings.split_seed)
    return DatasetInfo(
        key=_dataset_key(source),
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


@dataclass(frozen=True)
class Excluded:
    """A KB dataset hidden from the recommenders for one benchmarked dataset, and why."""

    dataset_id: str
    name: str
    reason: str  # "fingerprint", "openml id", "name", "near-duplicate"
    distance: float | None = None


@dataclass
class _KindView:
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
    from metalearn.metalearning.strategies import metafeature_distances

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
        if r.dataset_id in (info.dataset_id, info.train_id):
            reason = "fingerprint"
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


# ------------------------------------------------------------------------------------------ cells
@dataclass(frozen=True)
class _Rec:
    """A recommendation as passed to run_search (picklable, no KB reference)."""

    rank: int
    config_id: str
    values: dict[str, Any]
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class CellJob:
    source: DatasetSource
    key: str
    strategy: str
    seed: int
    settings: BenchmarkSettings
    metafeatures: dict[str, float]
    recommendations: tuple[_Rec, ...] = ()
    budget_seconds: float | None = None  # flaml's wall-clock budget


@dataclass
class CellResult:
    """The outcome of one (dataset, strategy, seed) cell."""

    dataset: str
    strategy: str
    seed: int
    status: str = "done"  # "done" or "failed"
    error: str = ""
    n_trials: int = 0
    n_failed_trials: int = 0
    n_recommended: int = 0
    best_cv_score: float = math.nan
    test_score: float = math.nan
    test_metrics: dict[str, float] = field(default_factory=dict)
    search_seconds: float = 0.0
    refit_seconds: float = 0.0
    budget_seconds: float | None = None
    incumbent: dict[str, Any] | None = None
    recommendations: list[dict[str, Any]] = field(default_factory=list)
    trials: list[dict[str, Any]] = field(default_factory=list)
    kb_tables: dict[str, pd.DataFrame] | None = None  # the scratch KB, for write_kb


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:500]


def _run_cell_job(job: CellJob) -> CellResult:
    """Runs in a worker: one search (or FLAML run) on the training part, then the test score."""
    res = CellResult(dataset=job.key, strategy=job.strategy, seed=job.seed, budget_seconds=job.budget_seconds)
    try:
        _, prep = _prepared(
            job.source, job.settings.max_rows, job.settings.test_size, job.settings.split_seed
        )
        spec = strategy_spec(job.strategy)
        if spec.optimizer == FLAML:
            _run_flaml(job, prep, res)
        else:
            _run_search_cell(job, spec, prep, res)
    except Exception as exc:
        res.status = "failed"
        res.error = res.error or _one_line(exc)
    return res


def _run_search_cell(job: CellJob, spec: StrategySpec, prep: Prepared, res: CellResult) -> None:
    from metalearn.kb import open_kb
    from metalearn.kb.records import MetaFeatureRecord, dataset_record
    from metalearn.metalearning.metafeatures import EXTRACTOR_VERSION
    from metalearn.pipelines.spaces import get_space
    from metalearn.search.evaluation import fit_final, test_score
    from metalearn.search.loop import SearchSettings, Trial, run_search

    s = job.settings
    train = prep.train
    scratch = open_kb(":memory:")
    scratch.put_dataset(dataset_record(train))
    scratch.put_metafeatures(MetaFeatureRecord(train.dataset_id, EXTRACTOR_VERSION, dict(job.metafeatures)))
    settings = SearchSettings(
        n_trials=s.n_trials,
        time_limit=s.time_limit,
        trial_time_limit=s.trial_time_limit,
        memory_limit_mb=s.memory_limit_mb,
        seed=job.seed,
        warm_start=spec.warm_start,
        strategy=spec.recommender,
        n_warm=s.n_warm,
        optimizer=spec.optimizer,
        protocol=s.protocol,
        resume=False,
    )
    recs = list(job.recommendations) if spec.warm_start else []
    t0 = time.monotonic()

    def on_trial(t: Trial) -> None:
        res.trials.append(
            {
                "number": t.number,
                "score": float(t.score),
                "best_score": float(t.best_score),
                "status": t.status,
                "origin": t.origin,
                "elapsed": time.monotonic() - t0,
                "seconds": float(t.seconds),
                "config_id": t.config_id,
            }
        )

    result = run_search(
        train, scratch, settings, recommendations=recs, on_trial=on_trial, source=f"benchmark:{job.strategy}"
    )
    res.search_seconds = time.monotonic() - t0
    res.n_trials = len(result.trials)
    res.n_failed_trials = result.n_failed
    res.n_recommended = len(result.recommendations)
    res.recommendations = (
        [
            {"rank": r.rank, "config_id": r.config_id, "sources": list(r.sources[:5])}
            for r in job.recommendations
        ]
        if spec.warm_start
        else []
    )
    res.best_cv_score = float(result.best_score)
    if result.best_values is not None:
        res.incumbent = {"config_id": result.best_config_id, "values": result.best_values}
        t1 = time.monotonic()
        try:
            model = fit_final(train, get_space(train.task), result.best_values)
            metrics = test_score(model, prep.X_test, prep.y_test, train.task)
            res.test_metrics = {k: float(v) for k, v in metrics.items()}
            res.test_score = float(metrics.get(train.task.metric, math.nan))
        except Exception as exc:  # the trajectory stands; the missing test score ranks last
            res.error = f"refit of the incumbent failed: {_one_line(exc)}"
        res.refit_seconds = time.monotonic() - t1
    else:
        res.error = "no trial succeeded"
    if s.write_kb:
        res.kb_tables = {t: scratch.dump_table(t) for t in TABLES}


_FLAML_METRIC = {
    "roc_auc": "roc_auc",
    "log_loss": "log_loss",
    "accuracy": "accuracy",
    "rmse": "rmse",
    "mae": "mae",
    "r2": "r2",
    "balanced_accuracy": "accuracy",
    "f1": "f1",
    "roc_auc_ovr": "roc_auc_ovr",
    "f1_macro": "macro_f1",
}


def _run_flaml(job: CellJob, prep: Prepared, res: CellResult) -> None:
    """FLAML AutoML on the training part with the warm cell's wall-clock budget (optional dependency)."""
    import warnings

    from metalearn.data.metrics import compute_metrics
    from metalearn.data.prediction import Prediction

    try:
        from flaml import AutoML
    except ImportError:
        res.status, res.error = "failed", f"flaml is not installed: {FLAML_HINT}"
        return
    task = prep.train.task
    if task.kind not in (TaskKind.BINARY, TaskKind.MULTICLASS, TaskKind.REGRESSION):
        res.status, res.error = (
            "failed",
            f"flaml handles binary, multiclass and regression only, not {task.kind}",
        )
        return
    budget = float(job.budget_seconds or job.settings.time_limit or 60.0)
    res.budget_seconds = budget
    X = prep.train.X
    y = prep.train.y.iloc[:, 0]
    is_class = task.kind.is_classification
    automl = AutoML()
    t0 = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        automl.fit(
            X,
            y.astype(str) if is_class else y.astype(float),
            task="classification" if is_class else "regression",
            metric=_FLAML_METRIC.get(task.metric, "auto"),
            time_budget=max(1.0, budget),
            seed=job.seed,
            n_jobs=1,
            verbose=0,
            eval_method="cv",
            n_splits=job.settings.n_folds,
        )
    res.search_seconds = time.monotonic() - t0
    res.n_trials = len(getattr(automl, "config_history", {}) or {})
    if automl.model is None:
        res.status, res.error = "failed", "flaml found no model within the budget"
        return
    res.incumbent = {"config_id": str(automl.best_estimator), "values": dict(automl.best_config or {})}
    t1 = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if is_class:
            proba = np.asarray(automl.predict_proba(prep.X_test), dtype=float)
            classes_str = np.asarray(automl.classes_).astype(str)
            truth = prep.y_test.iloc[:, 0]
            by_str = {str(v): v for v in pd.unique(pd.concat([prep.train.y.iloc[:, 0], truth]).dropna())}
            classes = np.asarray([by_str.get(c, c) for c in classes_str], dtype=object)
            values = classes[np.argmax(proba, axis=1)]
            pred = Prediction([values], [proba], [classes])
        else:
            pred = Prediction([np.asarray(automl.predict(prep.X_test), dtype=float)], [None], [None])
    metrics = compute_metrics(task, prep.y_test, pred)
    res.test_metrics = {k: float(v) for k, v in metrics.items()}
    res.test_score = float(metrics.get(task.metric, math.nan))
    res.refit_seconds = time.monotonic() - t1


# ------------------------------------------------------------------------------------------ result store
_DATASET_COLS = [
    ("key", "VARCHAR"),
    ("spec", "VARCHAR"),
    ("name", "VARCHAR"),
    ("kind", "VARCHAR"),
    ("metric", "VARCHAR"),
    ("greater_is_better", "BOOLEAN"),
    ("n_rows", "BIGINT"),
    ("n_features", "BIGINT"),
    ("n_rows_used", "BIGINT"),
    ("n_train", "BIGINT"),
    ("n_test", "BIGINT"),
    ("dataset_id", "VARCHAR"),
    ("train_id", "VARCHAR"),
    ("openml_id", "BIGINT"),
    ("metafeatures", "VARCHAR"),
    ("mf_seconds", "DOUBLE"),
    ("n_excluded", "BIGINT"),
    ("excluded", "VARCHAR"),
    ("status", "VARCHAR"),
    ("error", "VARCHAR"),
]
_CELL_COLS = [
    ("dataset", "VARCHAR"),
    ("strategy", "VARCHAR"),
    ("seed", "BIGINT"),
    ("status", "VARCHAR"),
    ("error", "VARCHAR"),
    ("n_trials", "BIGINT"),
    ("n_failed_trials", "BIGINT"),
    ("n_recommended", "BIGINT"),
    ("best_cv_score", "DOUBLE"),
    ("test_score", "DOUBLE"),
    ("test_metrics", "VARCHAR"),
    ("search_seconds", "DOUBLE"),
    ("refit_seconds", "DOUBLE"),
    ("budget_seconds", "DOUBLE"),
    ("incumbent", "VARCHAR"),
    ("recommendations", "VARCHAR"),
    ("finished_at", "DOUBLE"),
]
_TRIAL_COLS = [
    ("dataset", "VARCHAR"),
    ("strategy", "VARCHAR"),
    ("seed", "BIGINT"),
    ("number", "BIGINT"),
    ("score", "DOUBLE"),
    ("best_score", "DOUBLE"),
    ("status", "VARCHAR"),
    ("origin", "VARCHAR"),
    ("elapsed", "DOUBLE"),
    ("seconds", "DOUBLE"),
    ("config_id", "VARCHAR"),
]
_TABLE_COLS = {"datasets": _DATASET_COLS, "cells": _CELL_COLS, "trials": _TRIAL_COLS}


def _dumps(obj: Any) -> str:
    def clean(o: Any) -> Any:
        if isinstance(o, float) and not math.isfinite(o):
            return None
        if isinstance(o, dict):
            return {str(k): clean(v) for k, v in o.items()}
        if isinstance(o, list | tuple):
            return [clean(v) for v in o]
        if hasattr(o, "item") and not isinstance(o, str | bytes):
            return clean(o.item())
        return o

    return json.dumps(clean(obj), sort_keys=True, default=str)


def _dataset_row(info: DatasetInfo) -> dict[str, Any]:
    return {
        "key": info.key,
        "spec": info.spec,
        "name": info.name,
        "kind": info.kind,
        "metric": info.metric,
        "greater_is_better": bool(info.greater_is_better),
        "n_rows": info.n_rows,
        "n_features": info.n_features,
        "n_rows_used": info.n_rows_used,
        "n_train": info.n_train,
        "n_test": info.n_test,
        "dataset_id": info.dataset_id,
        "train_id": info.train_id,
        "openml_id": info.openml_id,
        "metafeatures": _dumps(info.metafeatures),
        "mf_seconds": float(info.mf_seconds),
        "n_excluded": len(info.excluded),
        "excluded": _dumps(list(info.excluded)),
        "status": info.status,
        "error": info.error,
    }


def _cell_row(r: CellResult) -> dict[str, Any]:
    return {
        "dataset": r.dataset,
        "strategy": r.strategy,
        "seed": int(r.seed),
        "status": r.status,
        "error": r.error,
        "n_trials": int(r.n_trials),
        "n_failed_trials": int(r.n_failed_trials),
        "n_recommended": int(r.n_recommended),
        "best_cv_score": float(r.best_cv_score),
        "test_score": float(r.test_score),
        "test_metrics": _dumps(r.test_metrics),
        "search_seconds": float(r.search_seconds),
        "refit_seconds": float(r.refit_seconds),
        "budget_seconds": None if r.budget_seconds is None else float(r.budget_seconds),
        "incumbent": _dumps(r.incumbent),
        "recommendations": _dumps(r.recommendations),
        "finished_at": time.time(),
    }


def _trial_rows(r: CellResult) -> list[dict[str, Any]]:
    return [{"dataset": r.dataset, "strategy": r.strategy, "seed": int(r.seed), **t} for t in r.trials]


def normalise_frame(table: str, frame: pd.DataFrame | Sequence[dict[str, Any]]) -> pd.DataFrame:
    """A results table with its columns in order, plain dtypes, sorted by its key (the form the report reads)."""
    cols = _TABLE_COLS[table]
    df = pd.DataFrame(list(frame) if not isinstance(frame, pd.DataFrame) else frame)
    for name, _ in cols:
        if name not in df.columns:
            df[name] = None
    df = df[[c for c, _ in cols]].copy()
    for name, typ in cols:
        if typ == "DOUBLE":
            df[name] = pd.to_numeric(df[name], errors="coerce").astype("float64")
        elif typ == "BIGINT":
            df[name] = pd.to_numeric(df[name], errors="coerce").astype("Int64")
        elif typ == "BOOLEAN":
            df[name] = df[name].astype(bool)
        else:
            df[name] = df[name].astype(object).where(df[name].notna(), None)
    keys = {
        "datasets": ["key"],
        "cells": ["dataset", "strategy", "seed"],
        "trials": ["dataset", "strategy", "seed", "number"],
    }[table]
    return df.sort_values(keys, kind="stable").reset_index(drop=True)


class ResultStore:
    """The benchmark's output DuckDB (owned by the main process): settings, datasets, cells, trials."""

    def __init__(self, out_dir: str | Path, read_only: bool = False) -> None:
        import duckdb

        self.out_dir = Path(out_dir)
        path = self.out_dir / RESULTS_FILE
        if read_only and not path.is_file():
            raise NotFoundError(
                f"no benchmark results at {str(path)!r}; run metalearn benchmark --out {out_dir} first"
            )
        if not read_only:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(str(path), read_only=read_only)
        except duckdb.Error as exc:
            raise InputError(
                f"cannot open {str(path)!r} ({' '.join(str(exc).split())[:200]}); is another benchmark writing to it?"
            ) from None
        if not read_only:
            self.con.execute("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
            for table, cols in _TABLE_COLS.items():
                spec = ", ".join(f"{n} {t}" for n, t in cols)
                self.con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({spec})")

    def close(self) -> None:
        self.con.close()

    def get_meta(self, key: str) -> Any:
        row = self.con.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return None if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        self.con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [key, _dumps(value)])

    def _insert(self, table: str, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        cols = [c for c, _ in _TABLE_COLS[table]]
        marks = ", ".join("?" for _ in cols)
        values = [[_sql_value(r.get(c)) for c in cols] for r in rows]
        self.con.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})", values)

    def put_dataset(self, info: DatasetInfo) -> None:
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.con.execute("DELETE FROM datasets WHERE key = ?", [info.key])
            self._insert("datasets", [_dataset_row(info)])
            self.con.execute("COMMIT")
        except Exception:
            self.con.execute("ROLLBACK")
            raise

    def put_rows(self, cell: dict[str, Any], trials: Sequence[dict[str, Any]]) -> None:
        """Store one finished cell and its trials atomically (replacing an earlier failed attempt)."""
        key = [cell["dataset"], cell["strategy"], int(cell["seed"])]
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.con.execute("DELETE FROM trials WHERE dataset = ? AND strategy = ? AND seed = ?", key)
            self.con.execute("DELETE FROM cells WHERE dataset = ? AND strategy = ? AND seed = ?", key)
            self._insert("trials", trials)
            self._insert("cells", [cell])
            self.con.execute("COMMIT")
        except Exception:
            self.con.execute("ROLLBACK")
            raise

    def frame(self, table: str) -> pd.DataFrame:
        return normalise_frame(table, self.con.execute(f"SELECT * FROM {table}").df())

    def datasets(self) -> dict[str, DatasetInfo]:
        out = {}
        for row in self.frame("datasets").to_dict("records"):
            out[row["key"]] = _info_from_row(row)
        return out

    def finished(self) -> dict[tuple[str, str, int], str]:
        rows = self.con.execute("SELECT dataset, strategy, seed, status FROM cells").fetchall()
        return {(d, s, int(seed)): st for d, s, seed, st in rows}

    def export_parquet(self) -> None:
        for table in ("datasets", "cells", "trials"):
            path = self.out_dir / f"{table}.parquet"
            self.con.execute(f"COPY {table} TO '{path.as_posix()}' (FORMAT PARQUET)")


def _sql_value(v: Any) -> Any:
    if v is pd.NA:
        return None
    if hasattr(v, "item") and not isinstance(v, str | bytes):
        return v.item()
    return v


def _info_from_row(row: dict[str, Any]) -> DatasetInfo:
    def opt_int(v: Any) -> int | None:
        return None if v is None or v is pd.NA else int(v)

    return DatasetInfo(
        key=row["key"],
        spec=row["spec"],
        name=row["name"],
        kind=row["kind"],
        metric=row["metric"],
        greater_is_better=bool(row["greater_is_better"]),
        n_rows=int(row["n_rows"]),
        n_features=int(row["n_features"]),
        n_rows_used=int(row["n_rows_used"]),
        n_train=int(row["n_train"]),
        n_test=int(row["n_test"]),
        dataset_id=row["dataset_id"],
        train_id=row["train_id"],
        openml_id=opt_int(row["openml_id"]),
        metafeatures={
            k: (math.nan if v is None else float(v)) for k, v in json.loads(row["metafeatures"]).items()
        },
        mf_seconds=float(row["mf_seconds"]),
        excluded=tuple(json.loads(row["excluded"] or "[]")),
        status=row["status"],
        error=row["error"] or "",
    )


def load_frames(out_dir: str | Path) -> dict[str, Any]:
    """The stored raw results of a benchmark: ``datasets``, ``cells``, ``trials`` frames and ``settings``."""
    store = ResultStore(out_dir, read_only=True)
    try:
        return {
            "settings": store.get_meta("settings") or {},
            "datasets": store.frame("datasets"),
            "cells": store.frame("cells"),
            "trials": store.frame("trials"),
        }
    finally:
        store.close()


# ------------------------------------------------------------------------------------------ execution
class _Inline:
    """An executor running each job when it is submitted (workers=1: no process pool)."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        fut: Future[Any] = Future()
        try:
            fut.set_result(fn(*args))
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            fut.set_exception(exc)
        return fut

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


def _make_executor(workers: int) -> Any:
    if workers <= 1:
        return _Inline()
    # spawn: workers start clean (no inherited DuckDB handles or threads); scripts need the
    # `if __name__ == "__main__":` guard
    from metalearn.offline.build import ignore_sigint

    # cells ignore Ctrl-C: the owner stops, records what finished and shuts the pool down
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=ignore_sigint
    )


def _wait_first(in_flight: Mapping[Future[Any], Any]) -> set[Future[Any]]:
    """The finished futures, once at least one is: waits in short slices, so that a Ctrl-C in the
    owner is handled within a second rather than when the next cell happens to finish."""
    while True:
        done, _ = wait(list(in_flight), timeout=0.5, return_when=FIRST_COMPLETED)
        if done:
            return done


def _terminate(executor: Any) -> None:
    """Stop a process pool without waiting for its running jobs (their results are lost; finished
    ones are already recorded, so a rerun resumes)."""
    if executor is None:
        return
    procs = list((getattr(executor, "_processes", None) or {}).values())  # shutdown() forgets them
    executor.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.join(timeout=10)


class NullProgress:
    """The progress interface :func:`run_benchmark` reports to (all no-ops)."""

    def phase(self, name: str, total: int, done: int = 0) -> None: ...

    def advance(self, text: str = "") -> None: ...

    def message(self, text: str) -> None: ...


class RichProgress(BuildProgress):
    """The benchmark's progress display (see :class:`metalearn.runtime.progress.BuildProgress`)."""

    def __enter__(self) -> RichProgress:
        super().__enter__()
        return self

    def advance(self, text: str = "") -> None:  # type: ignore[override]
        if self._task is not None:
            super().advance(text=text)


@dataclass
class BenchmarkOutcome:
    out_dir: Path
    summary: dict[str, Any]
    n_cells: int  # cells in the benchmark (datasets x strategies x seeds)
    n_run: int  # cells run now (the others were finished earlier)
    n_failed: int  # failed cells in total
    failed_datasets: list[tuple[str, str]]  # (dataset, reason)
    missing: list[str]  # suite datasets not found
    seconds: float
    report_path: Path


def _check_resume(store: ResultStore, settings: BenchmarkSettings) -> None:
    stored = store.get_meta("comparable")
    current = json.loads(_dumps(settings.comparable()))
    if stored is not None and stored != current:
        diff = sorted(k for k in current if stored.get(k) != current.get(k))
        detail = ", ".join(f"{k}: stored {stored.get(k)!r} vs now {current.get(k)!r}" for k in diff)
        raise InputError(
            f"{store.out_dir} holds a benchmark with different settings ({detail}); "
            "use the same settings to resume, or another --out directory"
        )
    store.set_meta("comparable", current)


def _kind_views(kb: KnowledgeBase | None, advisor: Any, kinds: Iterable[str]) -> dict[str, _KindView]:
    out: dict[str, _KindView] = {}
    for kind in kinds:
        if kb is None:
            out[kind] = _KindView([], pd.DataFrame())
            continue
        data = advisor.kind_data(kind, check=False)
        out[kind] = _KindView(kb.list_datasets(kind=kind), data.metafeatures)
    return out


def _recommend(advisor: Any, info: DatasetInfo, recommender: str, k: int) -> tuple[_Rec, ...]:
    excl = {e["dataset_id"] for e in info.excluded}
    recs = advisor.recommend(
        info.metafeatures, info.kind, strategy=recommender, k=k, exclude_ids=excl, check_fresh=False
    )
    return tuple(_Rec(r.rank, r.config_id, dict(r.values), tuple(s.name for s in r.sources)) for r in recs)


def run_benchmark(
    sources: Sequence[DatasetSource],
    kb: KnowledgeBase | None,
    out_dir: str | Path,
    settings: BenchmarkSettings | None = None,
    *,
    progress: NullProgress | RichProgress | None = None,
    missing: Sequence[str] = (),
    write_report: bool = True,
) -> BenchmarkOutcome:
    """Benchmark ``settings.strategies`` on ``sources``; recommendations from ``kb`` (read only unless
    ``settings.write_kb``). Resumable: finished (dataset, strategy, seed) cells in ``out_dir`` are skipped.
    """
    from metalearn.benchmark.report import compute_summary
    from metalearn.benchmark.report import write_report as write_report_files
    from metalearn.metalearning.advisor import Advisor

    settings = settings or BenchmarkSettings()
    prog = progress or NullProgress()
    t_start = time.monotonic()
    store = ResultStore(out_dir)
    executor: Any = None
    advisor = Advisor(kb) if kb is not None else None
    try:
        _check_resume(store, settings)
        store.set_meta("settings", settings.to_dict())
        store.set_meta("missing", list(missing))
        keys = [_dataset_key(s) for s in sources]
        if len(set(keys)) != len(keys):
            raise InputError("the same dataset is listed twice; give each dataset once")
        executor = _make_executor(settings.workers)

        # 1. prepare datasets (load, split, meta-features), stored as they finish
        infos = {k: v for k, v in store.datasets().items() if v.status == "ok"}
        todo = [s for s in sources if _dataset_key(s) not in infos]
        prog.phase("preparing datasets", len(sources), done=len(sources) - len(todo))
        failed_datasets: list[tuple[str, str]] = []
        offline: list[BaseException] = []

        def skip_offline(args: tuple[Any, ...]) -> BaseException | None:
            if offline and args[0].spec.startswith("openml"):
                return OpenMLUnavailableError(f"not tried: {offline[0]}")
            return None

        jobs = [(s, settings) for s in todo]
        for src, res in _map(executor, _prepare_job, jobs, settings.workers, skip=skip_offline):
            key = _dataset_key(src)
            if isinstance(res, OpenMLUnavailableError) and not offline:
                offline.append(res)  # the other OpenML datasets fail fast (retried on the next run)
            if isinstance(res, BaseException):
                info = DatasetInfo(
                    key,
                    src.spec,
                    key,
                    "",
                    "",
                    True,
                    0,
                    0,
                    0,
                    0,
                    0,
                    "",
                    "",
                    None,
                    {},
                    0.0,
                    status="failed",
                    error=_one_line(res),
                )
                failed_datasets.append((key, info.error))
                prog.advance(f"[red]{key} failed[/red]")
            else:
                info = res
                prog.advance(f"{key}: {info.kind}, {info.n_rows_used} rows")
            store.put_dataset(info)
            if info.status == "ok":
                infos[key] = info

        # 2. leakage exclusions against the product KB (stored once per dataset)
        kinds = sorted({i.kind for i in infos.values()})
        views = (
            _kind_views(kb, advisor, kinds)
            if advisor is not None
            else {k: _KindView([], pd.DataFrame()) for k in kinds}
        )
        for key, info in list(infos.items()):
            if key in keys and not info.excluded and kb is not None:
                view = views[info.kind]
                excl = leakage_exclusions(info, view.records, view.metafeatures, settings.dup_distance)
                info = replace(info, excluded=tuple(asdict(e) for e in excl))
                store.put_dataset(info)
                infos[key] = info

        # 3. cells
        finished = store.finished()
        if settings.retry_failed:
            finished = {k: v for k, v in finished.items() if v != "failed"}
        source_of = dict(zip(keys, sources, strict=True))
        active = [k for k in keys if k in infos]
        store.set_meta("datasets", active)
        all_cells = [(k, st, seed) for k in active for st in settings.strategies for seed in settings.seeds]
        todo_cells = [c for c in all_cells if c not in finished]
        prog.phase("benchmark cells", len(all_cells), done=len(all_cells) - len(todo_cells))
        rec_cache: dict[tuple[str, str], tuple[_Rec, ...]] = {}

        def job_for(cell: tuple[str, str, int], budget: float | None = None) -> CellJob:
            key, strat, seed = cell
            spec = strategy_spec(strat)
            info = infos[key]
            recs: tuple[_Rec, ...] = ()
            if spec.warm_start and spec.recommender is not None and advisor is not None:
                ck = (key, spec.recommender)
                if ck not in rec_cache:
                    rec_cache[ck] = _recommend(advisor, info, spec.recommender, settings.n_warm)
                recs = rec_cache[ck]
            return CellJob(source_of[key], key, strat, seed, settings, info.metafeatures, recs, budget)

        def warm_seconds(key: str, seed: int) -> float | None:
            row = store.con.execute(
                "SELECT search_seconds FROM cells WHERE dataset = ? AND strategy = 'warm' AND seed = ? "
                "AND status = 'done'",
                [key, seed],
            ).fetchone()
            return None if row is None else float(row[0])

        ready: deque[CellJob] = deque()
        waiting: dict[tuple[str, int], list[tuple[str, str, int]]] = {}
        for cell in todo_cells:
            key, strat, seed = cell
            if strat == FLAML and "warm" in settings.strategies and (key, "warm", seed) not in finished:
                waiting.setdefault((key, seed), []).append(cell)  # after warm: its wall-clock is the budget
            elif strat == FLAML:
                ready.append(job_for(cell, warm_seconds(key, seed)))
            else:
                ready.append(job_for(cell))
        n_run = 0
        new_cells: dict[tuple[str, str, int], tuple[dict[str, Any], list[dict[str, Any]]]] = {}

        def finish(job: CellJob, result: CellResult) -> None:
            nonlocal n_run
            new_cells[(result.dataset, result.strategy, int(result.seed))] = _store_cell(
                store, kb, result, settings
            )
            n_run += 1
            mark = "" if result.status == "done" else f" [red]failed: {result.error[:60]}[/red]"
            prog.advance(
                f"{result.dataset}/{result.strategy}/s{result.seed}: {result.n_trials} trials, "
                f"{result.search_seconds:.0f} s{mark}"
            )
            if job.strategy == "warm":
                budget = result.search_seconds if result.status == "done" else None
                for cell in waiting.pop((job.key, job.seed), []):
                    ready.append(job_for(cell, budget))

        in_flight: dict[Future[Any], CellJob] = {}
        while ready or in_flight or waiting:
            if not ready and not in_flight:  # flaml cells whose warm cell is not in this run
                for cells_waiting in waiting.values():
                    ready.extend(job_for(c) for c in cells_waiting)
                waiting.clear()
            while ready and len(in_flight) < settings.workers:
                job = ready.popleft()
                in_flight[executor.submit(_run_cell_job, job)] = job
            done = _wait_first(in_flight)
            broken = False
            for fut in done:
                job = in_flight.pop(fut)
                exc = fut.exception()
                if exc is None:
                    finish(job, fut.result())
                elif isinstance(exc, BrokenProcessPool):
                    broken = True
                    finish(
                        job,
                        CellResult(
                            job.key,
                            job.strategy,
                            job.seed,
                            status="failed",
                            error="a worker process died (out of memory or killed); "
                            "rerun with --retry-failed",
                        ),
                    )
                else:
                    finish(
                        job,
                        CellResult(job.key, job.strategy, job.seed, status="failed", error=_one_line(exc)),
                    )
            if broken:  # the pool is gone: requeue what was running, start a new pool
                ready.extendleft(in_flight.values())
                in_flight.clear()
                executor.shutdown(wait=False, cancel_futures=True)
                executor = _make_executor(settings.workers)

        store.export_parquet()
        frames = _frames_after_run(store, infos, new_cells)
    except BaseException:  # Ctrl-C (the cells ignore it) or an error: stop the running cells now
        _terminate(executor)
        executor = None
        raise
    finally:
        if executor is not None:
            executor.shutdown(wait=True)
        store.close()
    summary = compute_summary(
        frames["datasets"],
        frames["cells"],
        frames["trials"],
        settings.to_dict(),
        keys=active,
        missing=list(missing),
    )
    report_path = Path(out_dir) / "report.md"
    if write_report:
        report_path = write_report_files(out_dir, summary)
    cells = frames["cells"]
    sel = cells[
        cells["dataset"].isin(active)
        & cells["strategy"].isin(settings.strategies)
        & cells["seed"].isin(settings.seeds)
    ]
    stored_failed = [
        (r["key"], r["error"]) for r in frames["datasets"].to_dict("records") if r["status"] == "failed"
    ]
    return BenchmarkOutcome(
        out_dir=Path(out_dir),
        summary=summary,
        n_cells=len(all_cells),
        n_run=n_run,
        n_failed=int((sel["status"] == "failed").sum()),
        failed_datasets=stored_failed,
        missing=list(missing),
        seconds=time.monotonic() - t_start,
        report_path=report_path,
    )


def _frames_after_run(
    store: ResultStore,
    infos: dict[str, DatasetInfo],
    new_cells: dict[tuple[str, str, int], tuple[dict[str, Any], list[dict[str, Any]]]],
) -> dict[str, pd.DataFrame]:
    """The tables as this run knows them: rows of the cells it ran (kept in memory), the rest (cells
    finished in earlier runs, failed datasets) read back from the store."""
    old_cells = store.frame("cells")
    old_trials = store.frame("trials")
    ran = set(new_cells)

    def not_new(df: pd.DataFrame) -> pd.Series:
        keys = list(zip(df["dataset"], df["strategy"], df["seed"].astype(int), strict=True))
        return pd.Series([k not in ran for k in keys], index=df.index, dtype=bool)

    cells = normalise_frame(
        "cells", [*old_cells[not_new(old_cells)].to_dict("records"), *(c for c, _ in new_cells.values())]
    )
    trials = normalise_frame(
        "trials",
        [
            *old_trials[not_new(old_trials)].to_dict("records"),
            *(t for _, ts in new_cells.values() for t in ts),
        ],
    )
    old_ds = store.frame("datasets")
    datasets = normalise_frame(
        "datasets",
        [
            *(r for r in old_ds.to_dict("records") if r["key"] not in infos),
            *(_dataset_row(i) for i in infos.values()),
        ],
    )
    return {"datasets": datasets, "cells": cells, "trials": trials}


def _store_cell(
    store: ResultStore, kb: KnowledgeBase | None, result: CellResult, settings: BenchmarkSettings
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Write a finished cell (and, with write_kb, its scratch KB into the product KB); returns its rows."""
    if settings.write_kb and kb is not None and result.kb_tables:
        try:
            with kb.transaction():
                for table in TABLES:
                    frame = result.kb_tables.get(table)
                    if frame is not None and len(frame):
                        kb.load_table(table, frame)
        except MetaLearnError as exc:
            result.error = (result.error + "; " if result.error else "") + f"writing to the KB failed: {exc}"
    result.kb_tables = None
    cell, trials = _cell_row(result), _trial_rows(result)
    store.put_rows(cell, trials)
    return cell, trials


def _map(
    executor: Any,
    fn: Callable[..., Any],
    jobs: Sequence[tuple[Any, ...]],
    workers: int,
    skip: Callable[[tuple[Any, ...]], BaseException | None] | None = None,
) -> Iterable[tuple[Any, Any]]:
    """(first argument, result or exception) as jobs finish, at most ``workers`` in flight; ``skip(args)``
    may return an exception to report for a job instead of running it."""
    queue = deque(jobs)
    in_flight: dict[Future[Any], tuple[Any, ...]] = {}
    while queue or in_flight:
        while queue and len(in_flight) < workers:
            args = queue.popleft()
            skipped = skip(args) if skip is not None else None
            if skipped is not None:
                yield args[0], skipped
                continue
            in_flight[executor.submit(fn, *args)] = args
        if not in_flight:
            continue
        done = _wait_first(in_flight)
        for fut in done:
            args = in_flight.pop(fut)
            exc = fut.exception()
            yield args[0], (exc if exc is not None else fut.result())


# ------------------------------------------------------------------------------------------ report
def recompute_report(out_dir: str | Path, write: bool = True) -> dict[str, Any]:
    """Recompute the summary (and, with ``write``, report.md, summary.json and the plots) from the raw
    trajectories stored in ``out_dir/results.duckdb`` alone (same datasets, strategies and seeds as the
    last run that wrote there)."""
    from metalearn.benchmark.report import compute_summary, write_report

    store = ResultStore(out_dir, read_only=True)
    try:
        settings = store.get_meta("settings") or {}
        missing = store.get_meta("missing") or []
        active = store.get_meta("datasets")
        frames = {t: store.frame(t) for t in ("datasets", "cells", "trials")}
    finally:
        store.close()
    summary = compute_summary(
        frames["datasets"], frames["cells"], frames["trials"], settings, keys=active, missing=list(missing)
    )
    if write:
        write_report(out_dir, summary)
    return summary
