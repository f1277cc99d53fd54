"""Wall-clock (peer) benchmark cells: the product and other AutoML systems at equal wall-clock budgets.

One cell per (dataset, system, budget, seed), stored under the strategy name ``system@budget``
(:func:`~metalearn.benchmark.settings.budget_strategy`). Every system fits the same training part of
the dataset's fixed 75/25 split and is scored on its test part with the task's metric (binary ROC AUC,
multiclass log loss, regression RMSE by default; every metric of the kind is stored, e.g. R²):

- ``product``: :func:`metalearn.search.automl.optimize` — the path ``metalearn optimize`` takes, with its
  default settings — with ``time_limit=budget`` and a trial limit out of reach, on a scratch in-memory
  copy of the product KB *without* the dataset and its near-duplicates (the benchmark's leakage
  exclusions);
- ``flaml``: ``flaml.AutoML.fit(time_budget=budget)`` with the task's metric, ``n_jobs=1``;
- ``autogluon``: ``TabularPredictor(...).fit(time_limit=budget, presets="medium_quality",
  num_cpus=1)``, models in a temporary directory;
- ``rf`` (multi-output kinds, which the peers do not handle): a default random forest of the product's
  space, one fit;
- ``top1``: the product's top-1 recommendation alone, one fit, no search;
- ``flaml_zeroshot``: FLAML's zero-shot ("flamlized") LightGBM (``flaml.default``), one fit.

**Time used** (``search_seconds`` of the cell) is measured here, from the start of the system's call to
its final model being ready (the product: the whole ``optimize`` call — meta-features,
recommendations, search and refit); predicting and scoring the test part is ``refit_seconds``.
"""

from __future__ import annotations

import math
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from metalearn.benchmark.cells import CellResult, Rec, class_prediction, fit_flaml, one_line
from metalearn.benchmark.datasets import Prepared, prepared
from metalearn.benchmark.settings import (
    AUTOGLUON,
    FLAML,
    FLAML_ZEROSHOT,
    PEER_HINTS,
    PRODUCT,
    RF_BASELINE,
    TOP1,
    BenchmarkSettings,
    split_strategy,
)
from metalearn.data.task import TaskKind
from metalearn.offline.build import DatasetSource

__all__ = ["PeerJob", "PeerMissingError", "kb_without", "load_kb_without", "run_peer_cell"]


class PeerMissingError(RuntimeError):
    """A peer's optional dependency is not installed (the message says how to install it)."""


@dataclass(frozen=True)
class PeerJob:
    source: DatasetSource
    key: str
    strategy: str  # "product@30", "flaml@30", "autogluon@30", "rf", "top1", "flaml_zeroshot"
    seed: int
    settings: BenchmarkSettings
    kb_tables: dict[str, pd.DataFrame] | None = None  # product: the product KB's tables (shared, read only)
    kb_hidden: frozenset[str] = frozenset()  # ... without these datasets (this one and its near-duplicates)
    recommendation: Rec | None = None  # top1


def kb_without(tables: dict[str, pd.DataFrame], dataset_ids: set[str]) -> dict[str, pd.DataFrame]:
    """The KB's tables (``dump_table`` frames) without the rows of ``dataset_ids``."""
    out = {}
    for name, frame in tables.items():
        if "dataset_id" in frame.columns and len(frame):
            frame = frame[~frame["dataset_id"].isin(dataset_ids)].reset_index(drop=True)
        out[name] = frame
    return out


def load_kb_without(kb: Any, tables: dict[str, pd.DataFrame], dataset_ids: set[str]) -> None:
    """Load ``tables`` into the empty ``kb`` without the rows of ``dataset_ids`` (:func:`kb_without`): the
    product's KB for a dataset it is benchmarked on."""
    for table, frame in kb_without(tables, dataset_ids).items():
        if len(frame):
            kb.load_table(table, frame)


def run_peer_cell(job: PeerJob) -> CellResult:
    """Runs in a worker: one system on the training part at the cell's budget, then the test score."""
    system, budget = split_strategy(job.strategy)
    res = CellResult(dataset=job.key, strategy=job.strategy, seed=job.seed, budget_seconds=budget)
    try:
        _, prep = prepared(job.source, job.settings.max_rows, job.settings.test_size, job.settings.split_seed)
        runner = _RUNNERS.get(system)
        if runner is None:
            raise ValueError(f"unknown system {system!r}")
        runner(job, prep, res, budget)
    except PeerMissingError as exc:
        res.status, res.error = "failed", str(exc)
    except Exception as exc:
        res.status = "failed"
        res.error = res.error or one_line(exc)
    return res


# ------------------------------------------------------------------------------------------ scoring
def _score(prep: Prepared, res: CellResult, pred: Any, since: float) -> None:
    from metalearn.data.metrics import compute_metrics

    task = prep.train.task
    metrics = compute_metrics(task, prep.y_test, pred)
    res.test_metrics = {k: float(v) for k, v in metrics.items()}
    res.test_score = float(metrics.get(task.metric, math.nan))
    res.refit_seconds = time.monotonic() - since


def _score_model(prep: Prepared, res: CellResult, model: Any, since: float) -> None:
    from metalearn.search.evaluation import test_score

    task = prep.train.task
    metrics = test_score(model, prep.X_test, prep.y_test, task)
    res.test_metrics = {k: float(v) for k, v in metrics.items()}
    res.test_score = float(metrics.get(task.metric, math.nan))
    res.refit_seconds = time.monotonic() - since


def _single_target(prep: Prepared, system: str) -> tuple[pd.DataFrame, pd.Series, bool]:
    """X, y (labels as strings for classification) and whether it is a classification task."""
    task = prep.train.task
    if task.kind not in (TaskKind.BINARY, TaskKind.MULTICLASS, TaskKind.REGRESSION):
        raise ValueError(f"{system} handles binary, multiclass and regression only, not {task.kind}")
    y = prep.train.y.iloc[:, 0]
    is_class = task.kind.is_classification
    return prep.train.X, (y.astype(str) if is_class else y.astype(float)), is_class


def _require(system: str) -> None:
    import importlib

    module = {FLAML: "flaml", FLAML_ZEROSHOT: "flaml", AUTOGLUON: "autogluon.tabular"}[system]
    try:
        importlib.import_module(module)
    except ImportError:
        hint = PEER_HINTS[FLAML if system == FLAML_ZEROSHOT else system]
        raise PeerMissingError(f"{system} needs {module}, which is not installed: {hint}") from None


# ------------------------------------------------------------------------------------------ systems
def _run_product(job: PeerJob, prep: Prepared, res: CellResult, budget: float | None) -> None:
    from metalearn.kb import open_kb
    from metalearn.search.automl import optimize
    from metalearn.search.settings import PARAMS, UNTIMED_TRIALS, SearchSettings

    assert budget is not None
    kb = open_kb(":memory:")
    try:
        load_kb_without(kb, job.kb_tables or {}, set(job.kb_hidden))
        default_trial = PARAMS["trial_time_limit"].default
        # as a user's search with a time limit: no trial count (the clock stops it); a cold initial
        # design (no recommendation) of the size it has at the untimed trial budget
        n_initial = max(1, UNTIMED_TRIALS // 4)
        settings = SearchSettings.from_params(
            n_initial=n_initial,
            time_limit=budget,
            trial_time_limit=min(float(default_trial), budget) if default_trial else budget,
            memory_limit_mb=job.settings.memory_limit_mb,
            seed=job.seed,
            resume=False,
            learned_space=job.settings.learned_space,
        )
        t0 = time.monotonic()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            outcome = optimize(prep.train, kb, settings)
        res.search_seconds = time.monotonic() - t0  # the call until the refit model is ready
    finally:
        kb.close()
    result = outcome.result
    res.n_trials = len(result.trials)
    res.n_failed_trials = result.n_failed
    res.best_cv_score = float(result.best_score)
    recommended = outcome.summary.get("warm_start", {}).get("recommended") or []
    res.n_recommended = len(recommended)
    res.incumbent = {
        "config_id": result.best_config_id,
        "values": result.best_values,
        "timings": outcome.summary.get("timings", {}),
        "ensemble": outcome.summary.get("ensemble") or {},
        "calibration": outcome.summary.get("calibration") or {},
    }
    if outcome.model is None:
        res.status = "failed"
        res.error = outcome.summary.get("model", {}).get("missing_reason") or "no model"
        return
    _score_model(prep, res, outcome.model, time.monotonic())
    scaled = getattr(outcome.model, "temperature", 1.0) != 1.0 or getattr(outcome.model, "biases", None) is not None
    if scaled:  # the same model unscaled: what calibration gained
        from metalearn.search.evaluation import test_score

        outcome.model.temperature, outcome.model.biases = 1.0, None
        plain = test_score(outcome.model, prep.X_test, prep.y_test, prep.train.task)
        res.incumbent["calibration"]["test_score_unscaled"] = float(plain.get(prep.train.task.metric, math.nan))


def _run_flaml(job: PeerJob, prep: Prepared, res: CellResult, budget: float | None) -> None:
    _require(FLAML)
    from flaml import AutoML

    assert budget is not None
    _single_target(prep, FLAML)
    fit_flaml(AutoML(), prep, res, budget, job.seed)  # FLAML's own evaluation method (auto)


_AG_METRIC = {"roc_auc": "roc_auc", "log_loss": "log_loss", "rmse": "root_mean_squared_error",
              "mae": "mean_absolute_error", "r2": "r2", "accuracy": "accuracy",
              "balanced_accuracy": "balanced_accuracy", "f1": "f1", "f1_macro": "f1_macro"}  # fmt: skip


def _run_autogluon(job: PeerJob, prep: Prepared, res: CellResult, budget: float | None) -> None:
    _require(AUTOGLUON)
    import logging

    assert budget is not None
    X, y, is_class = _single_target(prep, AUTOGLUON)
    logging.disable(logging.ERROR)  # AutoGluon logs errors (no torch, no CUDA) whatever its verbosity
    try:
        _autogluon_fit_score(job, prep, res, budget, X, y, is_class)
    finally:
        logging.disable(logging.NOTSET)


def _autogluon_fit_score(
    job: PeerJob,
    prep: Prepared,
    res: CellResult,
    budget: float,
    X: pd.DataFrame,
    y: pd.Series,
    is_class: bool,
) -> None:
    from autogluon.tabular import TabularPredictor

    task = prep.train.task
    label = "__metalearn_target__"
    train = X.copy()
    train[label] = y.to_numpy()
    with tempfile.TemporaryDirectory(prefix="metalearn-autogluon-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predictor = TabularPredictor(
            label=label,
            problem_type=str(task.kind),
            eval_metric=_AG_METRIC.get(task.metric),
            path=tmp,
            verbosity=0,
        )
        t0 = time.monotonic()
        predictor.fit(
            train, time_limit=budget, presets="medium_quality", num_cpus=1, num_gpus=0,
            ag_args_fit={"random_seed": job.seed}, excluded_model_types=_ag_unavailable(),
        )  # fmt: skip
        res.search_seconds = time.monotonic() - t0
        res.n_trials = len(predictor.model_names())
        res.incumbent = {"config_id": str(predictor.model_best), "values": {}}
        t1 = time.monotonic()
        if is_class:
            proba_df = predictor.predict_proba(prep.X_test, as_multiclass=True)
            pred = class_prediction(proba_df.to_numpy(dtype=float), list(proba_df.columns), prep)
        else:
            pred = _regression_prediction(predictor.predict(prep.X_test))
        _score(prep, res, pred, t1)


def _ag_unavailable() -> list[str]:
    """AutoGluon's neural-network models when torch is not installed (the ``autogluon`` extra installs
    the boosting libraries only): excluded rather than tried and skipped with a warning each time."""
    import importlib.util

    return [] if importlib.util.find_spec("torch") is not None else ["NN_TORCH", "FASTAI"]


def _regression_prediction(values: Any) -> Any:
    from metalearn.data.prediction import Prediction

    return Prediction([np.asarray(values, dtype=float)], [None], [None])


def _lgbm_frames(X: pd.DataFrame, X_test: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Non-numeric columns as pandas categoricals with the training part's categories (LightGBM)."""
    X, X_test = X.copy(), X_test.copy()
    for col in X.columns:
        if not pd.api.types.is_numeric_dtype(X[col]) or isinstance(X[col].dtype, pd.CategoricalDtype):
            train_col = X[col].astype(str).where(X[col].notna())
            cats = sorted(pd.unique(train_col.dropna()))
            X[col] = pd.Categorical(train_col, categories=cats)
            test_col = X_test[col].astype(str).where(X_test[col].notna())
            X_test[col] = pd.Categorical(test_col, categories=cats)
    return X, X_test


def _run_flaml_zeroshot(job: PeerJob, prep: Prepared, res: CellResult, budget: float | None) -> None:
    _require(FLAML_ZEROSHOT)
    import flaml.default as zero_shot

    X, y, is_class = _single_target(prep, FLAML_ZEROSHOT)
    X, X_test = _lgbm_frames(X, prep.X_test)
    cls: Any = zero_shot.LGBMClassifier if is_class else zero_shot.LGBMRegressor  # flamlized LightGBM
    est = cls(n_jobs=1, random_state=job.seed, verbose=-1)
    t0 = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    res.search_seconds = time.monotonic() - t0
    res.n_trials = 1
    res.incumbent = {"config_id": "flaml.default.LGBM", "values": _plain_params(est)}
    t1 = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if is_class:
            pred = class_prediction(np.asarray(est.predict_proba(X_test), dtype=float), est.classes_, prep)
        else:
            pred = _regression_prediction(est.predict(X_test))
    _score(prep, res, pred, t1)


def _plain_params(est: Any) -> dict[str, Any]:
    out = {}
    for k, v in est.get_params().items():
        if isinstance(v, bool | int | float | str) or v is None:
            out[k] = v
    return out


def _fit_config(prep: Prepared, res: CellResult, values: dict[str, Any], config_id: str) -> None:
    from metalearn.pipelines.spaces import get_space
    from metalearn.search.evaluation import fit_final

    train = prep.train
    t0 = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = fit_final(train, get_space(train.task), values)
    res.search_seconds = time.monotonic() - t0
    res.n_trials = 1
    res.incumbent = {"config_id": config_id, "values": values}
    _score_model(prep, res, model, time.monotonic())


def _run_rf(job: PeerJob, prep: Prepared, res: CellResult, budget: float | None) -> None:
    from metalearn.pipelines.spaces import get_space

    values = get_space(prep.train.task).validate({"model": "rf"}, fill_defaults=True)
    _fit_config(prep, res, values, "default random forest")


def _run_top1(job: PeerJob, prep: Prepared, res: CellResult, budget: float | None) -> None:
    rec = job.recommendation
    if rec is None:
        res.status, res.error = "failed", "no recommendation (the KB has no configuration for this kind)"
        return
    res.n_recommended = 1
    res.recommendations = [{"rank": rec.rank, "config_id": rec.config_id, "sources": list(rec.sources[:5])}]
    _fit_config(prep, res, dict(rec.values), rec.config_id)


_RUNNERS: dict[str, Callable[[PeerJob, Prepared, CellResult, float | None], None]] = {
    PRODUCT: _run_product,
    FLAML: _run_flaml,
    AUTOGLUON: _run_autogluon,
    RF_BASELINE: _run_rf,
    TOP1: _run_top1,
    FLAML_ZEROSHOT: _run_flaml_zeroshot,
}
