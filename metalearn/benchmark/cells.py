"""Benchmark cells: one search (or FLAML run) per (dataset, strategy, seed) on the training part, with
the same trial budget, then the test score of its incumbent refit on the training part."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from metalearn.benchmark.datasets import DatasetInfo, Prepared, prepared
from metalearn.benchmark.settings import FLAML, FLAML_HINT, BenchmarkSettings, StrategySpec, strategy_spec
from metalearn.data.task import TaskKind
from metalearn.kb.base import TABLES
from metalearn.offline.build import DatasetSource

__all__ = [
    "NO_TRIAL_SUCCEEDED",
    "CellJob",
    "CellResult",
    "Rec",
    "class_prediction",
    "fit_flaml",
    "one_line",
    "recommend",
    "run_cell",
]


# ------------------------------------------------------------------------------------------ cells
@dataclass(frozen=True)
class Rec:
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
    recommendations: tuple[Rec, ...] = ()
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


#: the error of a search cell none of whose trials succeeded
NO_TRIAL_SUCCEEDED = "no trial succeeded"


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:500]


def run_cell(job: CellJob) -> CellResult:
    """Runs in a worker: one search (or FLAML run) on the training part, then the test score."""
    res = CellResult(dataset=job.key, strategy=job.strategy, seed=job.seed, budget_seconds=job.budget_seconds)
    try:
        _, prep = prepared(job.source, job.settings.max_rows, job.settings.test_size, job.settings.split_seed)
        spec = strategy_spec(job.strategy)
        if spec.optimizer == FLAML:
            _run_flaml(job, prep, res)
        else:
            _run_search_cell(job, spec, prep, res)
    except Exception as exc:
        res.status = "failed"
        res.error = res.error or one_line(exc)
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
            model = fit_final(train, get_space(train.task), result.best_values, rounds_per_row=result.best_rounds_per_row)
            metrics = test_score(model, prep.X_test, prep.y_test, train.task)
            res.test_metrics = {k: float(v) for k, v in metrics.items()}
            res.test_score = float(metrics.get(train.task.metric, math.nan))
        except Exception as exc:  # the trajectory stands; the missing test score ranks last
            res.error = f"refit of the incumbent failed: {one_line(exc)}"
        res.refit_seconds = time.monotonic() - t1
    else:  # nothing to refit or score: a failed cell (--retry-failed runs it again)
        res.status = "failed"
        res.error = f"{NO_TRIAL_SUCCEEDED} ({res.n_failed_trials} of {res.n_trials} trials failed)"
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
    fit_flaml(
        AutoML(), prep, res, max(1.0, budget), job.seed, eval_method="cv", n_splits=job.settings.n_folds
    )


def fit_flaml(
    automl: Any, prep: Prepared, res: CellResult, budget: float, seed: int, **fit_kwargs: Any
) -> None:
    """``automl.fit`` (a ``flaml.AutoML``) on the training part with ``time_budget=budget``, one core and
    the task's metric; then the time it used (``search_seconds``), its trials and incumbent, and the
    test metrics of its model (``refit_seconds``: predicting and scoring)."""
    import warnings

    from metalearn.data.metrics import compute_metrics
    from metalearn.data.prediction import Prediction

    task = prep.train.task
    y = prep.train.y.iloc[:, 0]
    is_class = task.kind.is_classification
    t0 = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        automl.fit(
            prep.train.X,
            y.astype(str) if is_class else y.astype(float),
            task="classification" if is_class else "regression",
            metric=_FLAML_METRIC.get(task.metric, "auto"),
            time_budget=budget,
            seed=seed,
            n_jobs=1,
            verbose=0,
            **fit_kwargs,
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
            pred = class_prediction(proba, automl.classes_, prep)
        else:
            pred = Prediction([np.asarray(automl.predict(prep.X_test), dtype=float)], [None], [None])
    metrics = compute_metrics(task, prep.y_test, pred)
    res.test_metrics = {k: float(v) for k, v in metrics.items()}
    res.test_score = float(metrics.get(task.metric, math.nan))
    res.refit_seconds = time.monotonic() - t1


def class_prediction(proba: np.ndarray, classes: Any, prep: Prepared) -> Any:
    """A single-target :class:`~metalearn.data.prediction.Prediction` from class probabilities whose
    columns are ``classes`` (labels as another library returns them, e.g. as strings), mapped back to
    the data's own labels."""
    from metalearn.data.prediction import Prediction

    classes_str = np.asarray(classes).astype(str)
    truth = prep.y_test.iloc[:, 0]
    by_str = {str(v): v for v in pd.unique(pd.concat([prep.train.y.iloc[:, 0], truth]).dropna())}
    labels = np.asarray([by_str.get(c, c) for c in classes_str], dtype=object)
    values = labels[np.argmax(proba, axis=1)]
    return Prediction([values], [proba], [labels])


def recommend(advisor: Any, info: DatasetInfo, recommender: str, k: int) -> tuple[Rec, ...]:
    # the dataset and its training part always (what --write-kb stores), whatever else is excluded
    excl = {e["dataset_id"] for e in info.excluded} | {info.dataset_id, info.train_id}
    excl.discard("")
    recs = advisor.recommend(
        info.metafeatures, info.kind, strategy=recommender, k=k, exclude_ids=excl, check_fresh=False
    )
    return tuple(Rec(r.rank, r.config_id, dict(r.values), tuple(s.name for s in r.sources)) for r in recs)
