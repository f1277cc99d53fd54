"""Metrics against scikit-learn reference values on real predictions, directions, robustness."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from metalearn.data.dataset import Dataset
from metalearn.data.errors import InputError
from metalearn.data.metrics import (
    METRICS,
    check_metric,
    check_task_metric,
    compute_metrics,
    get_metric,
    metric_names,
    metrics_for,
    normalised_regret,
    regret_bounds,
    score,
    to_cost,
)
from metalearn.data.prediction import Prediction
from metalearn.data.task import DEFAULT_METRIC, Task, TaskKind

B, MC, R = TaskKind.BINARY, TaskKind.MULTICLASS, TaskKind.REGRESSION


# --------------------------------------------------------------------------------------------
# real data and real predictions


@pytest.fixture(scope="module")
def load(load_corpus):
    """``load(name)`` -> Dataset from the shared corpus (skips when the corpus is absent)."""
    return load_corpus


def _numeric(X: pd.DataFrame) -> np.ndarray:
    cols = [X[c].cat.codes if isinstance(X[c].dtype, pd.CategoricalDtype) else X[c] for c in X.columns]
    return np.nan_to_num(np.column_stack([np.asarray(c, dtype=float) for c in cols]))


def fit_predict(
    ds: Dataset, seed: int = 0, n_estimators: int = 30, drop_train_class: Any = None
) -> tuple[pd.DataFrame, Prediction]:
    """Train per-target random forests on 70% of ``ds`` and predict the rest: (y_test, Prediction).
    Cached per (dataset, arguments); callers must not mutate the returned objects."""
    key = (ds.name, ds.fingerprint, seed, n_estimators, drop_train_class)
    if key not in _PRED_CACHE:
        _PRED_CACHE[key] = _fit_predict(ds, seed, n_estimators, drop_train_class)
    return _PRED_CACHE[key]


_PRED_CACHE: dict[tuple[Any, ...], tuple[pd.DataFrame, Prediction]] = {}


def _fit_predict(
    ds: Dataset, seed: int, n_estimators: int, drop_train_class: Any
) -> tuple[pd.DataFrame, Prediction]:
    X = _numeric(ds.X)
    tr, te = train_test_split(np.arange(ds.n_rows), test_size=0.3, random_state=seed)
    if drop_train_class is not None:
        tr = tr[ds.y.iloc[tr, 0].astype(str).to_numpy() != str(drop_train_class)]
    values, probas, classes = [], [], []
    for j, kind in enumerate(ds.task.target_kinds):
        y = np.asarray(ds.y.iloc[:, j])
        if kind is R:
            m: Any = RandomForestRegressor(n_estimators=n_estimators, random_state=seed).fit(X[tr], y[tr])
            values.append(m.predict(X[te]))
            probas.append(None)
            classes.append(None)
        else:
            m = RandomForestClassifier(n_estimators=n_estimators, random_state=seed).fit(X[tr], y[tr])
            values.append(m.predict(X[te]))
            probas.append(m.predict_proba(X[te]))
            classes.append(m.classes_)
    return ds.y.iloc[te].reset_index(drop=True), Prediction(values, probas, classes)


def penguins_multitask(load) -> Dataset:
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
    task = Task(TaskKind.MULTITASK, targets, (MC, B, R))
    return Dataset("penguins-mt", X, y, task, tuple(False for _ in X.columns), "corpus:penguins")


# --------------------------------------------------------------------------------------------
# registry, directions, costs


def test_registry_matches_defaults_and_kinds() -> None:
    for kind, name in DEFAULT_METRIC.items():
        assert get_metric(name).applies_to(kind)
        assert metric_names(kind)[0] == name
        assert check_metric(kind, name) == name
    assert metric_names(B) == ["roc_auc", "log_loss", "accuracy", "balanced_accuracy", "f1"]
    assert set(metric_names(MC)) == {"log_loss", "roc_auc_ovr", "accuracy", "balanced_accuracy", "f1_macro"}
    assert set(metric_names(R)) == {"rmse", "mae", "r2"}
    assert set(metric_names(TaskKind.MULTILABEL)) == {
        "roc_auc_macro",
        "f1_micro",
        "f1_macro",
        "hamming_loss",
        "subset_accuracy",
        "log_loss_mean",
    }
    assert set(metric_names(TaskKind.MULTITARGET)) == {"r2_mean", "rmse_mean", "mae_mean"}
    assert metric_names(TaskKind.MULTITASK) == ["multitask_mean"]
    assert all(m.needs_proba for m in metrics_for(B) if m.name in ("roc_auc", "log_loss"))
    assert not get_metric("accuracy").needs_proba
    assert get_metric("roc_auc").bounds == (0.0, 1.0)
    assert get_metric("log_loss").bounds == (0.0, math.inf)
    assert get_metric("r2").bounds == (-math.inf, 1.0)
    losses = {"log_loss", "rmse", "mae", "hamming_loss", "log_loss_mean", "rmse_mean", "mae_mean"}
    for m in METRICS.values():
        assert m.greater_is_better == (m.name not in losses), m.name
        if m.best is not None and m.worst is not None:
            assert (m.best > m.worst) == m.greater_is_better


def test_unknown_and_wrong_kind_metrics() -> None:
    with pytest.raises(InputError, match="roc_auc, log_loss, accuracy"):
        get_metric("auc", B)
    with pytest.raises(InputError, match="not valid for a regression task; choose one of: rmse"):
        check_metric(R, "roc_auc")
    with pytest.raises(InputError, match="unknown metric"):
        get_metric("nope")
    with pytest.raises(InputError):
        to_cost("nope", 1.0)
    per_target = get_metric("t2:r2", TaskKind.MULTITASK)
    assert per_target.greater_is_better and per_target.name == "t2:r2"
    assert get_metric("t0:log_loss").greater_is_better is False
    with pytest.raises(InputError):
        get_metric("t0:roc_auc", B)  # per-target names are for multitask only
    with pytest.raises(InputError):
        get_metric("t0:roc_auc_macro", TaskKind.MULTITASK)  # not a single-target metric


def test_a_multitask_metric_of_one_target_is_checked_against_that_target() -> None:
    """``t7:accuracy`` on 3 targets, ``t1:r2`` on a binary target and ``t2:accuracy`` on a numeric one were
    accepted: a search of them crashed every trial, an evaluation gave a null score with exit 0."""
    kinds = (TaskKind.MULTICLASS, B, R)

    def task(metric: str) -> Task:
        return Task(TaskKind.MULTITASK, ("religion", "red", "area"), kinds, metric=metric)

    assert task("t1:roc_auc").metric == "t1:roc_auc"
    assert task("red:roc_auc").metric == "t1:roc_auc"  # by the target's name, stored by its position
    assert task("area:rmse").metric == "t2:rmse" and task("").metric == DEFAULT_METRIC[TaskKind.MULTITASK]
    with pytest.raises(InputError, match=r"'t7:accuracy' names no target of this task \(t0 = 'religion', t1 = 'red'"):
        task("t7:accuracy")
    with pytest.raises(InputError, match=r"target 'red' \(t1\) is binary, so its metrics are roc_auc, .*give t1:"):
        task("t1:r2")
    with pytest.raises(InputError, match="target 'area' \\(t2\\) is regression, so its metrics are rmse"):
        task("t2:accuracy")
    with pytest.raises(InputError, match="names no target"):
        task("blue:accuracy")
    assert task("t0:accuracy").kind_report() == ["'religion' (t0): multiclass", "'red' (t1): binary", "'area' (t2): regression"]
    assert check_task_metric(task("t0:accuracy"), "red:f1") == "t1:f1"
    assert task("").target_keys() == {"t0": "religion", "t1": "red", "t2": "area"}  # shown beside t<i>: metrics
    assert Task(TaskKind.MULTITARGET, ("a", "b")).target_keys() == {}


def test_to_cost_and_regret() -> None:
    assert to_cost("roc_auc", 0.8) == -0.8
    assert to_cost("log_loss", 0.3) == 0.3
    assert to_cost("r2_mean", -2.0) == 2.0
    assert math.isnan(to_cost("rmse", math.nan))
    assert get_metric("accuracy").from_cost(to_cost("accuracy", 0.7)) == 0.7
    # greater is better
    best, worst = regret_bounds("roc_auc", [0.7, 0.9, math.nan, 0.5])
    assert (best, worst) == (0.9, 0.5)
    np.testing.assert_allclose(normalised_regret([0.9, 0.7, 0.5, math.nan], best, worst), [0, 0.5, 1, 1])
    # lower is better
    best, worst = regret_bounds("log_loss", [0.2, 0.6, 1.0])
    assert (best, worst) == (0.2, 1.0)
    np.testing.assert_allclose(normalised_regret([0.2, 0.6, 1.0, 5.0], best, worst), [0, 0.5, 1, 1])
    assert float(normalised_regret(0.4, 0.4, 0.4)) == 0.0
    assert regret_bounds("rmse", [math.nan]) == (pytest.approx(math.nan, nan_ok=True),) * 2
    with pytest.raises(InputError):
        normalised_regret([0.1], math.nan, 1.0)


# --------------------------------------------------------------------------------------------
# reference values on real predictions


def test_binary_matches_sklearn(load) -> None:
    ds = load("sonar")
    y, pred = fit_predict(ds)
    yt = np.asarray(y.iloc[:, 0])
    P, cls = pred.probas[0], pred.classes[0]
    assert P is not None and cls is not None
    got = compute_metrics(ds.task, y, pred)
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(yt, P[:, 1]), abs=1e-12)
    assert got["log_loss"] == pytest.approx(skm.log_loss(yt, P, labels=cls), abs=1e-12)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(yt, pred.values[0]))
    assert got["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(yt, pred.values[0]))
    assert got["f1"] == pytest.approx(skm.f1_score(yt, pred.values[0], pos_label=cls[1]))
    assert score(ds.task, y, pred) == got["roc_auc"] > 0.8


def test_binary_string_labels_and_other_positive(load) -> None:
    """String targets; the positive class is the last sorted label, as in scikit-learn."""
    ds = load("breast_cancer")
    names = {0: "recurrence", 1: "no-recurrence"}  # sorted: no-recurrence < recurrence
    y_str = ds.y.iloc[:, 0].astype(int).map(names).astype("category").to_frame()
    ds = Dataset(ds.name, ds.X, y_str, ds.task, ds.categorical, ds.origin)
    y, pred = fit_predict(ds, seed=1)
    yt = y.iloc[:, 0].astype(str).to_numpy()
    cls = pred.classes[0]
    assert list(cls) == ["no-recurrence", "recurrence"]
    got = compute_metrics(ds.task, y, pred)
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(yt == "recurrence", pred.probas[0][:, 1]))
    assert got["f1"] == pytest.approx(skm.f1_score(yt, pred.values[0], pos_label="recurrence"))
    assert got["log_loss"] == pytest.approx(skm.log_loss(yt, pred.probas[0], labels=cls))


def test_multiclass_matches_sklearn(load) -> None:
    ds = load("glass")  # 6 classes, some small
    y, pred = fit_predict(ds)
    yt = np.asarray(y.iloc[:, 0])
    P, cls = pred.probas[0], pred.classes[0]
    got = compute_metrics(ds.task, y, pred)
    assert set(np.unique(yt)) == set(cls), "reference needs every class in the test split"
    assert got["log_loss"] == pytest.approx(skm.log_loss(yt, P, labels=cls), abs=1e-12)
    assert got["roc_auc_ovr"] == pytest.approx(
        skm.roc_auc_score(yt, P, multi_class="ovr", average="macro", labels=cls), abs=1e-12
    )
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(yt, pred.values[0]))
    assert got["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(yt, pred.values[0]))
    assert got["f1_macro"] == pytest.approx(skm.f1_score(yt, pred.values[0], average="macro"))
    assert score(ds.task, y, pred) == got["log_loss"]


def test_regression_matches_sklearn(load) -> None:
    ds = load("uci_concrete")
    y, pred = fit_predict(ds)
    yt = y.iloc[:, 0].to_numpy(dtype=float)
    got = compute_metrics(ds.task, y, pred)
    assert got["rmse"] == pytest.approx(skm.root_mean_squared_error(yt, pred.values[0]))
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(yt, pred.values[0]))
    assert got["r2"] == pytest.approx(skm.r2_score(yt, pred.values[0]))
    assert got["r2"] > 0.7


def test_multilabel_matches_sklearn(load) -> None:
    ds = load("emotions")
    y, pred = fit_predict(ds)
    Y = y.to_numpy(dtype=int)
    Pv = np.column_stack(pred.values).astype(int)
    S = np.column_stack([p[:, 1] for p in pred.probas])  # type: ignore[index]
    got = compute_metrics(ds.task, y, pred)
    assert got["roc_auc_macro"] == pytest.approx(skm.roc_auc_score(Y, S, average="macro"))
    assert got["f1_micro"] == pytest.approx(skm.f1_score(Y, Pv, average="micro"))
    assert got["f1_macro"] == pytest.approx(skm.f1_score(Y, Pv, average="macro"))
    assert got["hamming_loss"] == pytest.approx(skm.hamming_loss(Y, Pv))
    assert got["subset_accuracy"] == pytest.approx(skm.accuracy_score(Y, Pv))
    ref_ll = np.mean([skm.log_loss(Y[:, j], pred.probas[j], labels=[0, 1]) for j in range(Y.shape[1])])
    assert got["log_loss_mean"] == pytest.approx(ref_ll)
    assert got["roc_auc_macro"] > 0.75


def test_multilabel_constant_label_is_skipped(load) -> None:
    ds = load("emotions")
    y, pred = fit_predict(ds)
    y0 = y.copy()
    y0.iloc[:, 2] = 0  # a label with no positives in this test split
    got = compute_metrics(ds.task, y0, pred)
    Y = y0.to_numpy(dtype=int)
    ref = np.mean([skm.roc_auc_score(Y[:, j], pred.probas[j][:, 1]) for j in range(Y.shape[1]) if j != 2])
    assert got["roc_auc_macro"] == pytest.approx(ref)


def test_label_constant_in_training_predicted_as_a_constant(load) -> None:
    """A label constant in the training part is predicted with probability exactly 1/0 (issue 14
    item 18): ROC AUC is the mean over the labels where it is defined, nothing is NaN or raises, and
    a constant multitarget column predicted exactly scores as scikit-learn says."""
    ds = load("emotions")
    y, pred = fit_predict(ds)
    n = len(y)
    probas = list(pred.probas)
    values = list(pred.values)
    probas[2] = np.column_stack([np.ones(n), np.zeros(n)])  # "always 0", as the models now predict
    values[2] = np.zeros(n, dtype=int)
    const = Prediction(values, probas, list(pred.classes))
    Y = y.to_numpy(dtype=int)
    for y_true in (y, y.assign(**{y.columns[2]: 0})):  # the label occurs in the test rows, or not
        got = compute_metrics(ds.task, y_true, const)
        assert all(math.isfinite(v) for v in got.values()), got
        Yt = y_true.to_numpy(dtype=int)
        defined = [j for j in range(Y.shape[1]) if 0 < Yt[:, j].sum() < n]
        S = [probas[j][:, 1] for j in range(Y.shape[1])]  # type: ignore[index]
        ref = np.mean([skm.roc_auc_score(Yt[:, j], S[j]) for j in defined])
        assert got["roc_auc_macro"] == pytest.approx(ref)
        Pv = np.column_stack(values).astype(int)
        assert got["hamming_loss"] == pytest.approx(skm.hamming_loss(Yt, Pv))
    mt = load("enb")
    y, pred = fit_predict(mt)
    y0 = y.assign(**{y.columns[1]: 3.0})
    const = Prediction([pred.values[0], np.full(len(y), 3.0)], [None, None], [None, None])
    got = compute_metrics(mt.task, y0, const)
    P = np.column_stack(const.values)
    assert got["r2_mean"] == pytest.approx(skm.r2_score(y0.to_numpy(dtype=float), P))
    assert got["rmse_mean"] == pytest.approx(skm.root_mean_squared_error(y.iloc[:, 0], P[:, 0]) / 2)


def test_multitarget_matches_sklearn(load) -> None:
    ds = load("enb")
    y, pred = fit_predict(ds)
    Y = y.to_numpy(dtype=float)
    P = np.column_stack(pred.values)
    got = compute_metrics(ds.task, y, pred)
    assert got["r2_mean"] == pytest.approx(skm.r2_score(Y, P, multioutput="uniform_average"))
    assert got["rmse_mean"] == pytest.approx(
        np.mean(skm.root_mean_squared_error(Y, P, multioutput="raw_values"))
    )
    assert got["mae_mean"] == pytest.approx(skm.mean_absolute_error(Y, P))
    assert got["r2_mean"] > 0.9


def test_multitask_matches_sklearn(load) -> None:
    ds = penguins_multitask(load)
    y, pred = fit_predict(ds)
    got = compute_metrics(ds.task, y, pred)
    species, sex, mass = (np.asarray(y.iloc[:, j]) for j in range(3))
    ba = skm.balanced_accuracy_score(species, pred.values[0])
    auc = skm.roc_auc_score(sex, pred.probas[1][:, 1])  # type: ignore[index]
    r2 = skm.r2_score(mass.astype(float), pred.values[2])
    assert got["t0:balanced_accuracy"] == pytest.approx(ba)
    assert got["t1:roc_auc"] == pytest.approx(auc)
    assert got["t2:r2"] == pytest.approx(r2)
    assert got["multitask_mean"] == pytest.approx(np.mean([ba, auc, r2]))
    assert got["t0:log_loss"] == pytest.approx(skm.log_loss(species, pred.probas[0], labels=pred.classes[0]))
    assert got["t2:rmse"] == pytest.approx(skm.root_mean_squared_error(mass.astype(float), pred.values[2]))
    assert "t2:roc_auc" not in got and "t0:r2" not in got
    # the task metric may be one target's metric
    t1 = Task(TaskKind.MULTITASK, ds.task.targets, ds.task.target_kinds, metric="t1:roc_auc")
    assert score(t1, y, pred) == pytest.approx(auc)
    with pytest.raises(InputError):
        score(Task(TaskKind.MULTITASK, ds.task.targets, ds.task.target_kinds, metric="t2:roc_auc"), y, pred)
    with pytest.raises(InputError):
        score(Task(TaskKind.MULTITASK, ds.task.targets, ds.task.target_kinds, metric="t7:r2"), y, pred)


def test_non_default_task_metric(load) -> None:
    ds = load("sonar")
    y, pred = fit_predict(ds)
    got = compute_metrics(ds.task, y, pred)
    for name in metric_names(B):
        assert score(ds.task.__class__(B, ds.task.targets, metric=name), y, pred) == got[name]
    with pytest.raises(InputError, match="not valid for a binary task"):
        score(Task(B, ds.task.targets, metric="rmse"), y, pred)


# --------------------------------------------------------------------------------------------
# robustness


def test_class_unseen_by_the_model(load) -> None:
    """The model never saw one class: its probability column is 0 and log loss is clipped, not an error."""
    ds = load("iris")
    y, pred = fit_predict(ds, drop_train_class=2)
    cls = pred.classes[0]
    assert list(cls) == [0, 1]
    yt = np.asarray(y.iloc[:, 0]).astype(int)
    assert (yt == 2).any()
    P = np.column_stack([pred.probas[0], np.zeros(len(yt))])  # type: ignore[list-item]
    got = compute_metrics(ds.task, y, pred)
    assert got["log_loss"] == pytest.approx(skm.log_loss(yt, P, labels=[0, 1, 2]))
    assert got["log_loss"] > 5  # confident mistakes on the unseen class
    ref_auc = np.mean([skm.roc_auc_score(yt == c, P[:, c]) for c in (0, 1, 2)])
    assert got["roc_auc_ovr"] == pytest.approx(ref_auc)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(yt, pred.values[0]))
    assert got["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(yt, pred.values[0]))


def test_class_absent_from_y_true(load) -> None:
    """The test rows lack a class the model knows: ROC AUC is the macro over classes present."""
    ds = load("iris")
    y, pred = fit_predict(ds)
    keep = np.asarray(y.iloc[:, 0]).astype(int) != 1
    y2 = y[keep].reset_index(drop=True)
    pred2 = Prediction([pred.values[0][keep]], [pred.probas[0][keep]], pred.classes)  # type: ignore[index]
    got = compute_metrics(ds.task, y2, pred2)
    yt = np.asarray(y2.iloc[:, 0]).astype(int)
    P = pred2.probas[0]
    ref = np.mean([skm.roc_auc_score(yt == c, P[:, c]) for c in (0, 2)])  # type: ignore[index]
    assert got["roc_auc_ovr"] == pytest.approx(ref)
    assert got["log_loss"] == pytest.approx(skm.log_loss(yt, P, labels=[0, 1, 2]))


def test_label_types_are_matched_by_value(load) -> None:
    """y_true as strings, predictions as ints (and float classes): same metrics."""
    ds = load("sonar")
    y, pred = fit_predict(ds)
    base = compute_metrics(ds.task, y, pred)
    y_str = y.astype(str)
    got = compute_metrics(ds.task, y_str, pred)
    assert got == pytest.approx(base)
    pred_f = Prediction(
        [pred.values[0].astype(float)],
        pred.probas,
        [pred.classes[0].astype(float)],  # type: ignore[union-attr]
    )
    assert compute_metrics(ds.task, y, pred_f) == pytest.approx(base)


def test_nan_predictions_give_nan_not_errors(load) -> None:
    ds = load("sonar")
    y, pred = fit_predict(ds)
    P = pred.probas[0].copy()  # type: ignore[union-attr]
    P[3, :] = np.nan
    got = compute_metrics(ds.task, y, Prediction(pred.values, [P], pred.classes))
    assert math.isnan(got["roc_auc"]) and math.isnan(got["log_loss"])
    assert not math.isnan(got["accuracy"])  # labels are still fine
    labels = pred.values[0].astype(object)
    labels[0] = None
    got = compute_metrics(ds.task, y, Prediction([labels], pred.probas, pred.classes))
    assert math.isnan(got["accuracy"]) and math.isnan(got["f1"]) and not math.isnan(got["roc_auc"])

    reg = load("uci_concrete")
    y, pred = fit_predict(reg)
    v = pred.values[0].copy()
    v[5] = np.inf
    got = compute_metrics(reg.task, y, Prediction([v], [None], [None]))
    assert all(math.isnan(x) for x in got.values())
    assert math.isnan(score(reg.task, y, Prediction([np.full(len(v), np.nan)], [None], [None])))

    ml = load("emotions")
    y, pred = fit_predict(ml)
    probas = list(pred.probas)
    probas[1] = np.full_like(probas[1], np.nan)
    got = compute_metrics(ml.task, y, Prediction(pred.values, probas, pred.classes))
    assert math.isnan(got["roc_auc_macro"]) and math.isnan(got["log_loss_mean"])
    assert not math.isnan(got["hamming_loss"])


def test_single_class_truth_and_missing_probas(load) -> None:
    ds = load("sonar")
    y, pred = fit_predict(ds)
    yt = np.asarray(y.iloc[:, 0])
    one = yt == yt[0]
    y1 = y[one].reset_index(drop=True)
    p1 = Prediction([pred.values[0][one]], [pred.probas[0][one]], pred.classes)  # type: ignore[index]
    got = compute_metrics(ds.task, y1, p1)
    assert math.isnan(got["roc_auc"])  # undefined with a single class
    assert got["accuracy"] == pytest.approx(np.mean(pred.values[0][one] == yt[0]))
    assert math.isfinite(got["log_loss"])
    # no probabilities: one-hot of the predicted labels
    hard = compute_metrics(ds.task, y, Prediction(pred.values, [None], pred.classes))
    pos = pred.classes[0][1]  # type: ignore[index]
    assert hard["roc_auc"] == pytest.approx(skm.roc_auc_score(yt == pos, pred.values[0] == pos))
    assert hard["accuracy"] == pytest.approx(compute_metrics(ds.task, y, pred)["accuracy"])


def test_structural_mismatches_raise_input_error(load) -> None:
    ds = load("sonar")
    y, pred = fit_predict(ds)
    with pytest.raises(InputError, match="predicted rows"):
        compute_metrics(ds.task, y.iloc[:-1], pred)
    with pytest.raises(InputError, match="target"):
        compute_metrics(ds.task, pd.concat([y, y.add_suffix("_2")], axis=1), pred)
    with pytest.raises(InputError, match="probabilities of shape"):
        compute_metrics(ds.task, y, Prediction(pred.values, [pred.probas[0][:, :1]], pred.classes))  # type: ignore[index]
    with pytest.raises(InputError, match="Prediction"):
        compute_metrics(ds.task, y, pred.values)  # type: ignore[arg-type]


def test_logistic_regression_probabilities(load) -> None:
    """A second real model family (smooth probabilities, no exact zeros) on a multiclass set."""
    ds = load("wine_recognition")
    X = _numeric(ds.X)
    X = (X - X.mean(0)) / X.std(0)
    y = np.asarray(ds.y.iloc[:, 0])
    tr, te = train_test_split(np.arange(len(y)), test_size=0.4, random_state=0, stratify=y)
    m = LogisticRegression(C=0.05, max_iter=500).fit(X[tr], y[tr])
    pred = Prediction([m.predict(X[te])], [m.predict_proba(X[te])], [m.classes_])
    got = compute_metrics(ds.task, ds.y.iloc[te].reset_index(drop=True), pred)
    assert got["log_loss"] == pytest.approx(skm.log_loss(y[te], m.predict_proba(X[te]), labels=m.classes_))
    assert got["roc_auc_ovr"] == pytest.approx(
        skm.roc_auc_score(y[te], m.predict_proba(X[te]), multi_class="ovr")
    )
    assert got["accuracy"] > 0.9


def test_a_prediction_of_some_rows_keeps_each_targets_values_probabilities_and_classes() -> None:
    classes = np.array(["a", "b"])
    P = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    pred = Prediction([classes[P.argmax(axis=1)], np.arange(4.0)], [P, None], [classes, None])
    for rows in (np.array([3, 1]), np.array([False, True, False, True])[::-1], slice(1, 4, 2)):
        part = pred.take(rows)
        assert part.n_rows == 2 and part.n_targets == 2 and part.probas[1] is None and part.classes[1] is None
        assert np.array_equal(part.classes[0], classes)
    assert np.array_equal(pred.take(np.array([3, 1])).probas[0], P[[3, 1]])
    assert list(pred.take(slice(1, 4, 2)).values[1]) == [1.0, 3.0]
    assert list(pred.take(np.array([True, False, False, True])).values[0]) == ["a", "b"]
