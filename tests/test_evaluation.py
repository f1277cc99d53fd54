"""evaluate_config on real corpus datasets of every kind, failure handling in a child process, records."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest
from ConfigSpace import Configuration, ConfigurationSpace, Integer
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder, PolynomialFeatures

from metalearn.data.dataset import Dataset
from metalearn.data.errors import ConfigurationError, InputError
from metalearn.data.prediction import Prediction
from metalearn.data.task import Task, TaskKind
from metalearn.kb.records import ConfigurationRecord, RunRecord, run_id_for
from metalearn.pipelines.spaces.base import SearchSpace
from metalearn.search.evaluation import (
    EvalProtocol,
    EvalResult,
    evaluate_config,
    fit_final,
    protocol_key_with_budget,
    test_score,
    to_run_record,
)

pytestmark = pytest.mark.corpus


# --------------------------------------------------------------------------------------------
# data: the shared corpus loader (tests/conftest.py)


@pytest.fixture(scope="module")
def load(load_corpus):
    """``load(name)`` -> Dataset from the shared corpus (skips when the corpus is absent)."""
    return load_corpus


def penguins_multitask(load) -> Dataset:
    """Real mixed targets: species (multiclass), sex (binary), body mass (regression)."""
    base = load("penguins")
    df = pd.concat([base.X, base.y], axis=1).dropna(subset=["sex"]).reset_index(drop=True)
    targets = ("target", "sex", "body_mass_g")
    y = pd.DataFrame(
        {
            "target": df["target"].astype(int).astype("category"),
            "sex": df["sex"].astype(int).astype("category"),
            "body_mass_g": df["body_mass_g"].astype(float),
        }
    )
    X = df.drop(columns=list(targets))
    task = Task(TaskKind.MULTITASK, targets, (TaskKind.MULTICLASS, TaskKind.BINARY, TaskKind.REGRESSION))
    return Dataset("penguins-mt", X, y, task, tuple(False for _ in X.columns), "corpus:penguins")


# --------------------------------------------------------------------------------------------
# a small real search space: imputation/encoding -> optional polynomial features -> random forest


class ForestModel:
    def __init__(self, values: Mapping[str, Any], task: Task, categorical: Sequence[bool]) -> None:
        self.values = dict(values)
        self.task = task
        self.categorical = list(categorical)

    def _preprocessor(self) -> Pipeline:
        cat = [i for i, c in enumerate(self.categorical) if c]
        num = [i for i, c in enumerate(self.categorical) if not c]
        enc = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1)
        ct = ColumnTransformer([("cat", enc, cat), ("num", SimpleImputer(strategy="median"), num)])
        degree = int(self.values.get("poly_degree", 1))
        steps: list[tuple[str, Any]] = [("ct", ct)]
        if degree > 1:
            steps.append(("poly", PolynomialFeatures(degree=degree)))
        n_components = int(self.values.get("pca_components", 0))
        if n_components > 0:
            steps.append(("pca", PCA(n_components=n_components, random_state=0)))
        return Pipeline(steps)

    def fit(self, X: pd.DataFrame, y: pd.DataFrame) -> ForestModel:
        self.pre_ = self._preprocessor()
        Xt = self.pre_.fit_transform(X)
        kw = dict(
            n_estimators=int(self.values["n_estimators"]),
            max_features=int(self.values["max_features"]),
            min_samples_leaf=int(self.values.get("min_samples_leaf", 1)),
            random_state=0,
            n_jobs=1,
        )
        self.models_ = []
        for j, kind in enumerate(self.task.target_kinds):
            cls = RandomForestRegressor if kind is TaskKind.REGRESSION else RandomForestClassifier
            self.models_.append(cls(**kw).fit(Xt, np.asarray(y.iloc[:, j])))
        return self

    def predict_task(self, X: pd.DataFrame) -> Prediction:
        Xt = self.pre_.transform(X)
        values, probas, classes = [], [], []
        for m in self.models_:
            values.append(m.predict(Xt))
            if isinstance(m, RandomForestClassifier):
                probas.append(m.predict_proba(Xt))
                classes.append(m.classes_)
            else:
                probas.append(None)
                classes.append(None)
        return Prediction(values, probas, classes)


class NaNForestModel(ForestModel):
    """Failure injection: a model whose predictions are NaN (as a diverged model's would be)."""

    def predict_task(self, X: pd.DataFrame) -> Prediction:
        p = super().predict_task(X)
        vals = [np.full(len(v), np.nan) if c is None else v for v, c in zip(p.values, p.classes, strict=True)]
        probas = [None if q is None else np.full_like(q, np.nan) for q in p.probas]
        return Prediction(vals, probas, p.classes)


class ForestSpace(SearchSpace):
    name = "test-forest"
    version = "1"
    kind = TaskKind.BINARY

    def __init__(self, nan_predictions: bool = False) -> None:
        self.nan_predictions = nan_predictions

    @property
    def configspace(self) -> ConfigurationSpace:
        cs = ConfigurationSpace(seed=0)
        cs.add(
            [
                Integer("n_estimators", (5, 5000), default=40),
                Integer("max_features", (1, 2000), default=3),
                Integer("min_samples_leaf", (1, 50), default=1),
                Integer("poly_degree", (1, 5), default=1),
                Integer("pca_components", (0, 500), default=0),  # 0 = no PCA
            ]
        )
        return cs

    def validate(self, values: Mapping[str, Any]) -> dict[str, Any]:
        try:
            return dict(Configuration(self.configspace, values=dict(values)))
        except (ValueError, KeyError) as exc:
            raise ConfigurationError(f"invalid {self.name} configuration: {exc}") from None

    def build(self, values: Mapping[str, Any], task: Task, categorical: Sequence[bool]) -> ForestModel:
        cls = NaNForestModel if self.nan_predictions else ForestModel
        return cls(values, task, categorical)


SPACE = ForestSpace()
DEFAULT = SPACE.default()


def cfg(**kw: Any) -> dict[str, Any]:
    return {**DEFAULT, **kw}


# --------------------------------------------------------------------------------------------
# protocol


def test_protocol_keys() -> None:
    p = EvalProtocol()
    assert p.key == "cv5-s0-holdout0.33-over20000"
    assert p.key_for(1000) == "cv5-s0"
    assert p.key_for(50_000) == "holdout0.33-s0"
    capped = EvalProtocol(max_rows=20_000)
    assert capped.key_for(100_000) == "holdout0.33-s0-sub20000"
    assert capped.key_for(5_000) == "cv5-s0"
    assert EvalProtocol(n_folds=3, seed=7, mode="cv").key == "cv3-s7"
    assert EvalProtocol(holdout_threshold=None).key == "cv5-s0"
    assert EvalProtocol(holdout_threshold=None).key_for(10**6) == "cv5-s0"
    assert protocol_key_with_budget("cv5-s0", 0.25) == "cv5-s0-b0.25"
    assert protocol_key_with_budget("cv5-s0", 1.0) == "cv5-s0"
    assert protocol_key_with_budget("cv5-s0-b0.25", 0.25) == "cv5-s0-b0.25"
    for bad in (dict(n_folds=1), dict(holdout_fraction=1.5), dict(max_rows=3), dict(mode="loo")):
        with pytest.raises(InputError):
            EvalProtocol(**bad)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# sane scores on real data of every kind


def test_binary_sonar(load) -> None:
    ds = load("sonar")
    r = evaluate_config(ds, SPACE, cfg(n_estimators=60, max_features=8))
    assert r.status == "ok", r.error
    assert r.metric == "roc_auc" and r.score == r.metrics["roc_auc"]
    assert r.score > 0.8
    assert r.cost == -r.score
    assert set(r.metrics) == {"roc_auc", "log_loss", "accuracy", "balanced_accuracy", "f1"}
    assert len(r.fold_scores) == 5 and r.n_folds == 5
    assert math.isclose(np.mean(r.fold_scores), r.score)
    assert r.fit_seconds > 0 and r.predict_seconds > 0
    assert r.n_rows_used == ds.n_rows and r.protocol_key == "cv5-s0"
    assert r.n_train_rows == round(ds.n_rows * 0.8)


def test_multiclass_iris_and_determinism(load) -> None:
    ds = load("iris")
    r1 = evaluate_config(ds, SPACE, cfg(max_features=2))
    r2 = evaluate_config(ds, SPACE, cfg(max_features=2))
    assert r1.status == "ok", r1.error
    assert r1.metric == "log_loss" and r1.cost == r1.score < 0.35
    assert r1.metrics["accuracy"] > 0.9 and r1.metrics["roc_auc_ovr"] > 0.95
    assert r1.metrics == r2.metrics  # same seed, same folds, same model seed


def test_regression_housing(load) -> None:
    ds = load("uci_housing")
    r = evaluate_config(ds, SPACE, cfg(max_features=5), protocol=EvalProtocol(n_folds=3))
    assert r.status == "ok", r.error
    assert r.metric == "rmse" and r.cost == r.score == r.metrics["rmse"]
    assert r.metrics["r2"] > 0.6
    assert r.metrics["mae"] <= r.metrics["rmse"]
    assert r.n_folds == 3


def test_multilabel_emotions(load) -> None:
    ds = load("emotions")
    r = evaluate_config(ds, SPACE, cfg(max_features=8), protocol=EvalProtocol(n_folds=3))
    assert r.status == "ok", r.error
    assert r.metric == "roc_auc_macro" and r.score > 0.75
    assert 0 < r.metrics["hamming_loss"] < 0.3
    assert set(r.metrics) >= {"f1_micro", "f1_macro", "subset_accuracy", "log_loss_mean"}


def test_multitarget_enb(load) -> None:
    ds = load("enb")
    r = evaluate_config(ds, SPACE, cfg(max_features=4), protocol=EvalProtocol(n_folds=3))
    assert r.status == "ok", r.error
    assert r.metric == "r2_mean" and r.score > 0.9


def test_multitask_penguins(load) -> None:
    ds = penguins_multitask(load)
    r = evaluate_config(ds, SPACE, cfg(max_features=3), protocol=EvalProtocol(n_folds=3))
    assert r.status == "ok", r.error
    assert r.metric == "multitask_mean"
    parts = [r.metrics["t0:balanced_accuracy"], r.metrics["t1:roc_auc"], r.metrics["t2:r2"]]
    assert r.score == pytest.approx(np.mean(parts))
    assert (
        r.metrics["t0:balanced_accuracy"] > 0.9 and r.metrics["t1:roc_auc"] > 0.8 and r.metrics["t2:r2"] > 0.7
    )


def test_holdout_and_max_rows(load) -> None:
    ds = load("sonar")
    proto = EvalProtocol(holdout_threshold=100, max_rows=150, seed=3)
    r = evaluate_config(ds, SPACE, cfg(max_features=8), protocol=proto)
    assert r.status == "ok", r.error
    assert r.protocol_key == "holdout0.33-s3-sub150"
    assert r.n_rows_used == 150 and r.n_folds == 1 and len(r.fold_scores) == 1
    assert r.n_train_rows == 150 - round(150 * 0.33)
    assert r.score > 0.7


def test_budget_uses_fewer_training_rows(load) -> None:
    ds = load("sonar")
    full = evaluate_config(ds, SPACE, cfg())
    low = evaluate_config(ds, SPACE, cfg(), budget=0.25)
    assert full.status == low.status == "ok"
    assert low.budget == 0.25
    assert low.n_train_rows == math.ceil(0.25 * full.n_train_rows)
    assert low.n_rows_used == full.n_rows_used  # test folds stay whole
    rec_full = to_run_record(full, ds.dataset_id, "c1", "cv5-s0", "test")
    rec_low = to_run_record(low, ds.dataset_id, "c1", "cv5-s0", "test")
    assert rec_low.protocol == "cv5-s0-b0.25" and rec_low.budget == 0.25
    assert rec_full.protocol == "cv5-s0" and rec_full.budget is None
    assert rec_low.run_id != rec_full.run_id
    with pytest.raises(InputError):
        evaluate_config(ds, SPACE, cfg(), budget=1.5)
    with pytest.raises(InputError):
        evaluate_config(ds, SPACE, cfg(), time_limit=-1)


def test_rare_class_reduces_folds(load) -> None:
    ds = load("lymphography")  # 148 rows, classes of 2, 4, 61 and 81 members
    r = evaluate_config(ds, SPACE, cfg(n_estimators=20))
    assert r.status == "ok", r.error
    assert r.n_folds == 2 and "2 folds instead of 5" in r.notes and "smallest class" in r.notes
    # drop one member of the 2-member class: a singleton class still evaluates (4 folds)
    y = ds.y.iloc[:, 0].astype(str)
    rare = y.value_counts().idxmin()
    keep = np.setdiff1d(np.arange(ds.n_rows), np.flatnonzero(y.to_numpy() == rare)[:1])
    sub = Dataset(
        "lympho-1",
        ds.X.iloc[keep].reset_index(drop=True),
        ds.y.iloc[keep].reset_index(drop=True),
        ds.task,
        ds.categorical,
        ds.origin,
    )
    r = evaluate_config(sub, SPACE, cfg(n_estimators=20))
    assert r.status == "ok", r.error
    assert r.n_folds == 4 and r.metrics["accuracy"] > 0.7
    assert r.metric == "log_loss" and math.isfinite(r.score)


REAL_SPACE_CASES = [
    ("sonar", "roc_auc", 0.75),
    ("iris", "accuracy", 0.85),
    ("uci_housing", "r2", 0.5),
    ("emotions", "roc_auc_macro", 0.7),
    ("enb", "r2_mean", 0.8),
]


@pytest.mark.parametrize(("name", "metric", "floor"), REAL_SPACE_CASES)
def test_real_search_space_default_configuration(load, name: str, metric: str, floor: float) -> None:
    """The product's own search spaces (metalearn.pipelines.spaces.get_space) evaluate to sane scores."""
    import metalearn.pipelines.spaces as spaces

    if not hasattr(spaces, "get_space"):
        pytest.skip("metalearn.pipelines.spaces.get_space is not available yet")
    ds = load(name)
    space = spaces.get_space(ds.task)
    r = evaluate_config(ds, space, space.default(), protocol=EvalProtocol(n_folds=3), time_limit=120)
    assert r.status == "ok", r.error
    assert r.metrics[metric] > floor, r.metrics


def test_real_search_space_multitask(load) -> None:
    import metalearn.pipelines.spaces as spaces

    if not hasattr(spaces, "get_space"):
        pytest.skip("metalearn.pipelines.spaces.get_space is not available yet")
    ds = penguins_multitask(load)
    space = spaces.get_space(ds.task)
    r = evaluate_config(ds, space, space.default(), protocol=EvalProtocol(n_folds=3), time_limit=120)
    assert r.status == "ok", r.error
    assert r.score > 0.6 and r.metrics["t0:balanced_accuracy"] > 0.8


# --------------------------------------------------------------------------------------------
# failures are recorded, not raised


def test_invalid_configuration_is_a_crash(load) -> None:
    ds = load("iris")
    r = evaluate_config(ds, SPACE, cfg(n_estimators=1))
    assert r.status == "crash" and r.error.startswith("ConfigurationError:")
    assert "n_estimators" in r.error
    assert math.isnan(r.score) and math.isnan(r.cost)
    r = evaluate_config(ds, SPACE, {"no_such_hp": 3})
    assert r.status == "crash" and "ConfigurationError" in r.error


def test_raising_configuration_is_a_crash(load) -> None:
    ds = load("iris")  # 4 features: PCA cannot keep 50 components
    for limit in (None, 30.0):
        r = evaluate_config(ds, SPACE, cfg(pca_components=50), time_limit=limit)
        assert r.status == "crash"
        assert r.error.startswith("ValueError: n_components=50 must be between"), r.error
        assert r.error.endswith("(fold 1/5)")
        assert "\n" not in r.error
        assert math.isnan(r.score) and r.fold_scores == ()


def test_nan_predictions_are_a_crash(load) -> None:
    for name in ("uci_housing", "sonar"):
        ds = load(name)
        r = evaluate_config(ds, ForestSpace(nan_predictions=True), cfg(n_estimators=5))
        assert r.status == "crash"
        assert "NaN" in r.error, r.error


def test_timeout_is_recorded_and_returns_promptly(load) -> None:
    ds = load("ring")  # 7400 rows: 5000 trees take minutes on one thread
    t0 = time.monotonic()
    r = evaluate_config(ds, SPACE, cfg(n_estimators=5000, max_features=20), time_limit=1.5)
    elapsed = time.monotonic() - t0
    assert r.status == "timeout", r.error
    assert "time limit" in r.error and r.error.startswith("TrialTimeoutError")
    assert elapsed < 1.5 + 4.0
    assert math.isnan(r.score)
    rec = to_run_record(r, ds.dataset_id, "cfg", "cv5-s0", "test")
    assert rec.status == "timeout" and math.isnan(rec.cost)


def test_memory_limit_is_a_memout(load) -> None:
    ds = load("sonar")  # 60 features, degree 4 -> 635k columns (~850 MB per fold)
    t0 = time.monotonic()
    r = evaluate_config(ds, SPACE, cfg(poly_degree=4, n_estimators=5), memory_limit_mb=300, time_limit=60)
    assert r.status == "memout", r.error
    assert "Memory" in r.error or "allocate" in r.error
    assert time.monotonic() - t0 < 30


def test_child_process_gives_the_same_result_as_inline(load) -> None:
    ds = load("iris")
    inline = evaluate_config(ds, SPACE, cfg(max_features=2))
    child = evaluate_config(ds, SPACE, cfg(max_features=2), time_limit=60, memory_limit_mb=2000)
    assert child.status == "ok", child.error
    assert child.metrics == inline.metrics and child.fold_scores == inline.fold_scores


def _evaluate_in_daemon(conn: Any, ds: Dataset) -> None:
    r = evaluate_config(ds, SPACE, cfg(max_features=2), time_limit=60)
    t = evaluate_config(ds, SPACE, cfg(n_estimators=5000, max_features=4), time_limit=0.5)
    conn.send((r.status, r.error, r.score, t.status))
    conn.close()


def test_limits_work_inside_a_daemonic_process(load) -> None:
    """Dask workers are daemonic processes: multiprocessing cannot start children there, os.fork can."""
    import multiprocessing

    ds = load("iris")
    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_evaluate_in_daemon, args=(send, ds), daemon=True)
    proc.start()
    send.close()
    try:
        assert recv.poll(60), "the daemonic evaluation did not report back"
        status, error, score, t_status = recv.recv()
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
    assert status == "ok", error
    assert score == evaluate_config(ds, SPACE, cfg(max_features=2)).score
    assert t_status == "timeout"


# --------------------------------------------------------------------------------------------
# records, final fit


def test_to_run_record(load) -> None:
    ds = load("sonar")
    values = cfg(max_features=8)
    conf = ConfigurationRecord.create(SPACE.name, SPACE.version, values)
    proto = EvalProtocol()
    r = evaluate_config(ds, SPACE, values, protocol=proto)
    rec = to_run_record(r, ds.dataset_id, conf.config_id, proto.key, "build", search_id="s1")
    assert isinstance(rec, RunRecord)
    assert rec.run_id == run_id_for(ds.dataset_id, conf.config_id, proto.key)
    assert rec.status == "ok" and rec.ok and rec.metric == "roc_auc"
    assert rec.score == r.score and rec.cost == r.cost and rec.metrics == r.metrics
    assert rec.source == "build" and rec.search_id == "s1" and rec.budget is None
    # default key: what was actually done
    assert to_run_record(r, ds.dataset_id, conf.config_id).protocol == "cv5-s0"
    failed = EvalResult(status="crash", error="ValueError: boom", metric="roc_auc", protocol_key="cv5-s0")
    frec = to_run_record(failed, ds.dataset_id, conf.config_id, None, "build")
    assert frec.status == "crash" and not frec.ok and frec.error == "ValueError: boom"


def test_fit_final_and_test_score(load) -> None:
    ds = load("breast_cancer")
    rng = np.random.default_rng(0)
    test = rng.choice(ds.n_rows, size=ds.n_rows // 4, replace=False)
    train = np.setdiff1d(np.arange(ds.n_rows), test)
    tr = Dataset(
        ds.name,
        ds.X.iloc[train].reset_index(drop=True),
        ds.y.iloc[train].reset_index(drop=True),
        ds.task,
        ds.categorical,
        ds.origin,
    )
    model = fit_final(tr, SPACE, cfg(max_features=3, min_samples_leaf=3))
    scores = test_score(model, ds.X.iloc[test], ds.y.iloc[test], ds.task)
    assert set(scores) == {"roc_auc", "log_loss", "accuracy", "balanced_accuracy", "f1"}
    assert 0.55 < scores["roc_auc"] <= 1.0
    with pytest.raises(ConfigurationError):
        fit_final(tr, SPACE, cfg(n_estimators=0))
