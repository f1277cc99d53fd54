"""The gradient-boosting families (LightGBM, XGBoost, CatBoost): every kind fits and predicts on small
real data with a categorical column handled natively, early stopping stops, fits are deterministic and
silent, and a search trial of each family succeeds."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from metalearn.data.dataset import Dataset
from metalearn.data.loading import load_sklearn
from metalearn.data.task import Task, TaskKind
from metalearn.pipelines.models.boosting import BoostedTreesClassifier, BoostedTreesRegressor
from metalearn.pipelines.spaces import get_space
from metalearn.pipelines.spaces.components import BOOSTING_LIBRARIES, NATIVE_MULTILABEL, NATIVE_MULTITARGET
from metalearn.search.evaluation import EvalProtocol, evaluate_config

FAMILIES = tuple(BOOSTING_LIBRARIES)


def _with_category(
    ds: Dataset, column: str, n_rows: int | None = None
) -> tuple[pd.DataFrame, tuple[bool, ...]]:
    """The features plus a string categorical column (quartiles of ``column``, some missing)."""
    X = ds.X.copy()
    grade = pd.qcut(X[column], 4, labels=["low", "mid", "high", "top"]).astype(object)
    grade.iloc[::17] = np.nan
    X["grade"] = pd.Categorical(grade)
    cat = (*ds.categorical, True)
    return (X.iloc[:n_rows], cat) if n_rows else (X, cat)


def _dataset(name: str, X: pd.DataFrame, y: pd.DataFrame, task: Task, cat: tuple[bool, ...]) -> Dataset:
    return Dataset(name, X.reset_index(drop=True), y.reset_index(drop=True), task, cat, f"sklearn:{name}")


@pytest.fixture(scope="module")
def datasets() -> dict[str, Dataset]:
    cancer, wine, diabetes = load_sklearn("breast_cancer"), load_sklearn("wine"), load_sklearn("diabetes")
    out: dict[str, Dataset] = {}
    X, cat = _with_category(cancer, "mean radius")
    out["binary"] = _dataset("breast_cancer", X, cancer.y, cancer.task, cat)
    X, cat = _with_category(wine, "alcohol")
    out["multiclass"] = _dataset("wine", X, wine.y, wine.task, cat)
    X, cat = _with_category(diabetes, "age")
    out["regression"] = _dataset("diabetes", X, diabetes.y, diabetes.task, cat)
    # multi-label: wine's classes one-vs-rest plus "high alcohol" (features without alcohol)
    labels = pd.get_dummies(wine.y.iloc[:, 0].astype(str), prefix="is").astype(int)
    labels["strong"] = (wine.X["alcohol"] > wine.X["alcohol"].median()).astype(int)
    Xw, catw = _with_category(wine, "color_intensity")
    Xw = Xw.drop(columns=["alcohol"])
    catw = tuple(c for c, name in zip(catw, [*wine.X.columns, "grade"], strict=True) if name != "alcohol")
    task = Task(TaskKind.MULTILABEL, tuple(labels.columns))
    out["multilabel"] = _dataset("wine_ml", Xw, labels, task, catw)
    # multi-target: diabetes progression and BMI
    Xd, catd = _with_category(diabetes, "age")
    targets = pd.DataFrame({"target": diabetes.y.iloc[:, 0], "bmi": Xd.pop("bmi")})
    catd = tuple(c for c, name in zip(catd, [*diabetes.X.columns, "grade"], strict=True) if name != "bmi")
    out["multitarget"] = _dataset(
        "diabetes_mt", Xd, targets, Task(TaskKind.MULTITARGET, ("target", "bmi")), catd
    )
    # multitask: wine class (multiclass) + strong (binary) + colour intensity (regression)
    Xm = Xw.drop(columns=["color_intensity"])
    catm = tuple(c for c, name in zip(catw, Xw.columns, strict=True) if name != "color_intensity")
    ym = pd.DataFrame(
        {"class": wine.y.iloc[:, 0], "strong": labels["strong"], "colour": wine.X["color_intensity"]}
    )
    task = Task(
        TaskKind.MULTITASK,
        tuple(ym.columns),
        (TaskKind.MULTICLASS, TaskKind.BINARY, TaskKind.REGRESSION),
    )
    out["multitask"] = _dataset("wine_mtl", Xm, ym, task, catm)
    return out


def _values(kind: str, family: str) -> dict:
    space = get_space(kind)
    extra: dict = {}
    if kind == "multilabel":
        extra["ml_strategy"] = "native" if family in NATIVE_MULTILABEL else "chain"
    elif kind == "multitarget":
        extra["mt_strategy"] = "native" if family in NATIVE_MULTITARGET else "per_target"
    elif kind == "multitask":
        extra["mtl_strategy"] = "independent"
    # few rounds: the point here is the plumbing, not the fit
    fast = {f"{family}:n_estimators": 40.0, f"{family}:learning_rate": 0.2}
    return space.validate({"model": family, **extra, **fast}, fill_defaults=True)


def _boosters(model) -> list:
    """The fitted boosted-trees estimators inside a task model."""
    found = []
    stack = [model]
    while stack:
        obj = stack.pop()
        if isinstance(obj, BoostedTreesClassifier | BoostedTreesRegressor):
            found.append(obj)
        elif isinstance(obj, list | tuple):
            stack.extend(obj)
        elif hasattr(obj, "__dict__"):
            stack.extend(v for k, v in vars(obj).items() if k.endswith("_") or k == "estimator_")
    return found


@pytest.mark.parametrize(
    "kind", ["binary", "multiclass", "regression", "multilabel", "multitarget", "multitask"]
)
def test_every_family_fits_and_predicts_with_native_categories(datasets, kind: str, capfd) -> None:
    ds = datasets[kind]
    space = get_space(kind)
    rng = np.random.default_rng(0)
    idx = rng.permutation(ds.n_rows)
    tr, te = idx[: int(0.75 * ds.n_rows)], idx[int(0.75 * ds.n_rows) :]
    for family in FAMILIES:
        model: Any = space.build(_values(kind, family), ds.task, ds.categorical, seed=0)
        model.fit(ds.X.iloc[tr], ds.y.iloc[tr])
        pred = model.predict_task(ds.X.iloc[te])
        assert pred.n_targets == ds.task.n_targets and pred.n_rows == len(te)
        for t, target_kind in enumerate(ds.task.target_kinds):
            if target_kind is TaskKind.REGRESSION:
                y = ds.y.iloc[te, t].to_numpy(dtype=float)
                assert np.isfinite(pred.values[t]).all()
                r2 = 1 - np.mean((pred.values[t] - y) ** 2) / np.var(y)
                assert r2 > 0.1, (family, t, r2)
            else:
                proba = pred.probas[t]
                assert proba is not None
                assert proba.shape == (len(te), len(pred.classes[t]))
                assert np.allclose(proba.sum(axis=1), 1.0) and (proba >= 0).all()
                truth = ds.y.iloc[te, t].astype(str).to_numpy()
                acc = float(np.mean(pred.values[t].astype(str) == truth))
                majority = float(pd.Series(truth).value_counts(normalize=True).iloc[0])
                assert acc >= majority, (family, t, acc, majority)
        # the categorical column reaches the library as one column of integer codes, never one-hot
        tabular = model.preprocessor_.named_steps["tabular"]
        assert tabular.n_features_out_ == ds.X.shape[1]
        boosters = _boosters(model)
        assert boosters, (kind, family)
        for b in boosters:
            assert b.library == BOOSTING_LIBRARIES[family]
            assert b.categorical_features == tabular.native_categorical_ and len(b.categorical_features) >= 1
        codes = tabular.transform(ds.X.iloc[te])[:, list(tabular.native_categorical_)]
        assert np.array_equal(codes, np.round(codes)) and codes.min() >= -1
    out, _ = capfd.readouterr()
    assert out == "", out[:300]  # quiet: no training logs


def _early_stopping_values(space: Any, family: str) -> dict[str, Any]:
    """A configuration of ``family`` that early-stops long before its rounds on an easy problem."""
    return space.validate(
        {"model": family, f"{family}:n_estimators": 2000.0, f"{family}:learning_rate": 0.2},
        fill_defaults=True,
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_early_stopping_keeps_the_best_iteration_and_is_deterministic(datasets, family: str) -> None:
    ds = datasets["binary"]
    space = get_space("binary")
    values = _early_stopping_values(space, family)
    fits = [space.build(values, ds.task, ds.categorical, seed=3).fit(ds.X, ds.y) for _ in range(2)]
    boosters = [_boosters(m)[0] for m in fits]
    b = boosters[0]
    assert b.early_stopped_ and b.best_iteration_ is not None
    # an easy problem stops long before the rounds allowed (2000, or fewer after the budget cap), and
    # the model keeps its best iteration
    assert b.n_estimators <= 2000 and b.best_iteration_ + 20 < b.n_estimators
    assert b.n_rounds_ == b.best_iteration_ + 1
    p0, p1 = (m.predict_task(ds.X.iloc[:50]).probas[0] for m in fits)
    assert p0 is not None and p1 is not None and np.array_equal(p0, p1)
    assert boosters[1].best_iteration_ == b.best_iteration_


@pytest.mark.parametrize("family", FAMILIES)
def test_too_few_rows_for_early_stopping_fit_every_round(datasets, family: str) -> None:
    ds = datasets["multiclass"]
    small = Dataset("wine60", ds.X.iloc[::3], ds.y.iloc[::3], ds.task, ds.categorical, ds.origin)
    space = get_space("multiclass")
    values = space.validate({"model": family, f"{family}:n_estimators": 30.0}, fill_defaults=True)
    model = space.build(values, small.task, small.categorical, seed=0).fit(small.X, small.y)
    b = _boosters(model)[0]
    assert not b.early_stopped_ and b.best_iteration_ is None and b.n_rounds_ == 30


@pytest.mark.parametrize("family", FAMILIES)
def test_evaluate_config_of_each_family_is_ok(datasets, family: str) -> None:
    ds = datasets["multiclass"]
    space = get_space("multiclass")
    result = evaluate_config(ds, space, _values("multiclass", family))
    assert result.status == "ok", result.error
    assert np.isfinite(result.score)


@pytest.mark.parametrize("library", ["xgboost", "catboost"])
def test_a_rare_label_keeps_both_values_in_the_early_stopping_training_part(datasets, library: str) -> None:
    """Native multi-label boosting on a label with one positive row that the first early-stopping split
    puts in the validation part: another split keeps the label varying in the training part (CatBoost
    refused a constant one: "All train targets are equal")."""
    from sklearn.model_selection import train_test_split

    ds = datasets["multilabel"]
    X = ds.X.select_dtypes("number").to_numpy(dtype=np.float64)
    for seed in range(2):
        _, held_out = train_test_split(np.arange(len(X)), test_size=0.2, random_state=seed)
        Y = ds.y.to_numpy(dtype=np.int64).copy()
        Y[:, 0] = 0
        Y[held_out[0], 0] = 1
        b = BoostedTreesClassifier(library=library, n_estimators=30, early_stopping_rounds=5,
                                   validation_fraction=0.2, random_state=seed).fit(X, Y)
        assert b.early_stopped_
        proba = b.predict_proba(X)
        assert proba.shape == Y.shape and np.isfinite(proba).all()
        assert proba[held_out[0], 0] > np.median(proba[:, 0])  # it learnt from the one positive row


@pytest.mark.parametrize("family", FAMILIES)
def test_a_fit_deadline_stops_adding_rounds_and_the_model_still_predicts(datasets, family: str) -> None:
    """Inside ``fit_deadline`` a fit stops at the clock and keeps the rounds it has; outside, the same
    configuration fits all its rounds (no early-stopping split: 60 rows)."""
    import pickle
    import time

    from metalearn.pipelines.models.boosting import fit_deadline

    ds = datasets["regression"]
    small = Dataset("diabetes60", ds.X.iloc[:60], ds.y.iloc[:60], ds.task, ds.categorical, ds.origin)
    space = get_space("regression")
    values = space.validate({"model": family, f"{family}:n_estimators": 1000.0}, fill_defaults=True)
    with fit_deadline(None) as none:
        full = space.build(values, small.task, small.categorical, seed=0).fit(small.X, small.y)
    assert none is None and _boosters(full)[0].n_rounds_ == 1000
    t0 = time.monotonic()
    with fit_deadline(0.0) as bound:
        cut = space.build(values, small.task, small.categorical, seed=0).fit(small.X, small.y)
    assert bound is not None and bound.hit and time.monotonic() - t0 < 5.0
    b = _boosters(cut)[0]
    assert 1 <= b.n_rounds_ < 1000
    pred = cut.predict_task(small.X)
    assert pred.n_rows == 60 and np.isfinite(np.asarray(pred.values[0], dtype=float)).all()
    assert pickle.loads(pickle.dumps(cut)).predict_task(small.X).n_rows == 60  # no callback left in it
    with fit_deadline(60.0) as roomy:  # a bound not reached changes nothing
        again = space.build(values, small.task, small.categorical, seed=0).fit(small.X, small.y)
    assert roomy is not None and not roomy.hit and _boosters(again)[0].n_rounds_ == 1000


def test_a_time_limited_trial_of_a_slow_boosted_configuration_is_scored_with_the_rounds_it_had(datasets) -> None:
    """With ``bound_fits`` the folds' boosted fits stop at their share of the trial limit: a CatBoost too
    slow for it (4,096 depth-8 rounds at learning rate 0.005 on 569 rows: minutes per fold) ends within the
    limit with a real score and a note; without, it is killed as a timeout without a score."""
    import time

    from metalearn.search.evaluation import CUT_NOTE

    ds = datasets["binary"]
    space = get_space("binary")
    slow = space.validate({"model": "catboost", "catboost:n_estimators": 4096.0, "catboost:depth": 8,
                           "catboost:learning_rate": 0.005, "catboost:early_stopping_rounds": 150.0},
                          fill_defaults=True)
    t0 = time.monotonic()
    r = evaluate_config(ds, space, slow, EvalProtocol(n_folds=3), time_limit=6.0, bound_fits=True)
    took = time.monotonic() - t0
    assert r.status == "ok", r.error
    assert took < 6.0 + 1.0, took  # ended by itself, not killed at the limit
    assert r.notes.startswith(CUT_NOTE) and "3 of 3 folds" in r.notes and "6 s limit" in r.notes
    assert r.score > 0.9 and len(r.fold_scores) == 3  # a real model (breast cancer: ROC AUC ~0.99)
    quick = evaluate_config(ds, space, _values("binary", "catboost"), EvalProtocol(n_folds=3), time_limit=60.0,
                            bound_fits=True)
    assert quick.status == "ok" and CUT_NOTE not in quick.notes  # a fit within its share is untouched
    killed = evaluate_config(ds, space, slow, EvalProtocol(n_folds=3), time_limit=2.0)  # not bound: killed
    assert killed.status == "timeout" and "2 s time limit" in killed.error and CUT_NOTE not in killed.notes


def _library_rounds(b: Any) -> int:
    """The rounds in the library model a boosted-trees estimator predicts with."""
    if b.library == "lightgbm":
        return int(b.model_.booster_.current_iteration())
    if b.library == "xgboost":
        return int(b.model_.get_booster().num_boosted_rounds())
    return int(b.model_.tree_count_)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_final_fit_refits_an_early_stopped_model_on_all_rows(datasets, family: str) -> None:
    """``fit_final`` fits a boosted configuration again on every row with the rounds early stopping
    chose (scaled by all rows / training rows); with no time for that refit it keeps the early-stopped
    model, which is what a plain fit gives."""
    import math

    from metalearn.search.evaluation import fit_final

    ds = datasets["binary"]
    space = get_space("binary")
    values = _early_stopping_values(space, family)
    plain_model = space.build(values, ds.task, ds.categorical).fit(ds.X, ds.y)
    plain = _boosters(plain_model)[0]
    assert plain.early_stopped_ and not plain.refit_all_rows_ and plain.n_train_rows_ < ds.n_rows
    full = _boosters(fit_final(ds, space, values))[0]
    assert full.refit_all_rows_ and full.early_stopped_ and full.n_train_rows_ == ds.n_rows
    assert full.best_iteration_ == plain.best_iteration_  # the round early stopping chose
    assert full.n_rounds_ == math.ceil(plain.n_rounds_ * ds.n_rows / plain.n_train_rows_) > plain.n_rounds_
    assert _library_rounds(full) == full.n_rounds_
    no_time = fit_final(ds, space, values, extra_within=0.0)
    kept = _boosters(no_time)[0]
    assert not kept.refit_all_rows_ and kept.n_rounds_ == plain.n_rounds_
    X = ds.X.iloc[:40]
    assert np.array_equal(no_time.predict_task(X).probas[0], plain_model.predict_task(X).probas[0])


@pytest.mark.parametrize("family", FAMILIES)
def test_an_all_rows_refit_cut_by_the_clock_keeps_the_early_stopped_model(
    datasets, family: str, monkeypatch
) -> None:
    """When the clock bound cuts the all-rows refit, the model is the whole early-stopped one and the
    bound does not report a cut (the caller would drop a model that is in fact complete)."""
    import time

    from metalearn.pipelines.models import boosting
    from metalearn.pipelines.models.adaptive import final_fit
    from metalearn.pipelines.models.boosting import fit_deadline

    ds = datasets["binary"]
    space = get_space("binary")
    values = _early_stopping_values(space, family)
    once = boosting._BoostedTrees._fit_once
    calls: list[int] = []

    def expire_before_the_refit(self: Any, X: Any, y: Any) -> None:
        calls.append(1)
        if len(calls) == 2:
            bound = boosting._BOUND.get()
            assert bound is not None
            bound.until = time.monotonic() - 1.0  # the clock runs out as the refit starts
        once(self, X, y)

    monkeypatch.setattr(boosting._BoostedTrees, "_fit_once", expire_before_the_refit)
    with fit_deadline(600.0) as bound, final_fit(None):
        model = space.build(values, ds.task, ds.categorical).fit(ds.X, ds.y)
    assert len(calls) == 2 and bound is not None and not bound.hit
    b = _boosters(model)[0]
    assert not b.refit_all_rows_ and b.early_stopped_ and b.n_train_rows_ < ds.n_rows
    assert _library_rounds(b) >= b.n_rounds_ and b.n_rounds_ == b.best_iteration_ + 1
    monkeypatch.setattr(boosting._BoostedTrees, "_fit_once", once)
    plain = space.build(values, ds.task, ds.categorical).fit(ds.X, ds.y)
    X = ds.X.iloc[:40]
    assert np.array_equal(model.predict_task(X).probas[0], plain.predict_task(X).probas[0])


@pytest.mark.parametrize("family", FAMILIES)
def test_the_final_fit_takes_its_rounds_from_the_trials_and_fits_once(datasets, family: str, monkeypatch) -> None:
    """A cross-validated trial reports its folds' early-stopped rounds per training row; ``fit_final`` given
    them fits that many rounds per row on all rows in one fit (no early stopping, no second fit)."""
    import math

    from metalearn.pipelines.models import boosting
    from metalearn.pipelines.models.boosting import fitted_rounds
    from metalearn.search.evaluation import fit_final

    ds = datasets["binary"]
    space = get_space("binary")
    values = _early_stopping_values(space, family)
    r = evaluate_config(ds, space, values, protocol=EvalProtocol(n_folds=3))
    assert r.ok and r.rounds_per_row is not None
    # a time-limited trial runs in a forked child, which sends its folds' rounds back: the same
    limited = evaluate_config(ds, space, values, protocol=EvalProtocol(n_folds=3), time_limit=120)
    assert limited.rounds_per_row == pytest.approx(r.rounds_per_row)
    # the folds' own rounds: each fold's model fit on its training rows, as the trial fits it
    from metalearn.data.splits import cv_splits

    folds = [
        fitted_rounds(space.build(values, ds.task, ds.categorical).fit(ds.X.iloc[tr], ds.y.iloc[tr]))
        for tr, _ in cv_splits(ds, 3, EvalProtocol(n_folds=3).resolve(ds.n_rows).seed)
    ]
    assert all(f is not None and f[0] < 2000 and f[1] < ds.n_rows for f in folds)
    assert r.rounds_per_row == pytest.approx(sum(f[0] for f in folds) / sum(f[1] for f in folds))
    once = boosting._BoostedTrees._fit_once
    calls: list[int] = []

    def counted(self: Any, X: Any, y: Any) -> None:
        calls.append(X.shape[0])
        once(self, X, y)

    monkeypatch.setattr(boosting._BoostedTrees, "_fit_once", counted)
    model = fit_final(ds, space, values, rounds_per_row=r.rounds_per_row)
    b = _boosters(model)[0]
    assert calls == [ds.n_rows]  # one fit, on every row
    assert b.rounds_from_trials_ and b.refit_all_rows_ and not b.early_stopped_ and b.n_train_rows_ == ds.n_rows
    assert b.n_rounds_ == _library_rounds(b) == math.ceil(r.rounds_per_row * ds.n_rows)
    assert fitted_rounds(model) is None  # not an early-stopped fit: it reports no rounds of its own
    calls.clear()
    plain = _boosters(fit_final(ds, space, values))[0]  # without the trials' rounds: early stopping, then a refit
    assert len(calls) == 2 and not plain.rounds_from_trials_ and plain.refit_all_rows_


def test_trial_rounds_need_every_fold_and_a_model_with_one_boosted_fit(datasets) -> None:
    """Rounds per row come only from trials whose every fold early-stopped one boosted fit: not from a
    forest, a fold without early stopping, or a model of one boosted fit per label."""
    from metalearn.pipelines.models.boosting import fitted_rounds, trial_rounds

    assert trial_rounds([(100, 400), (300, 400)]) == pytest.approx(0.5)
    assert trial_rounds([(100, 400), None]) is None and trial_rounds([]) is None
    ds = datasets["binary"]
    space = get_space("binary")
    forest = space.validate({"model": "rf"}, fill_defaults=True)
    assert evaluate_config(ds, space, forest, protocol=EvalProtocol(n_folds=3)).rounds_per_row is None
    few = ds.take_rows(np.arange(60))  # too few rows to early-stop on
    values = _early_stopping_values(space, FAMILIES[0])
    assert evaluate_config(few, space, values, protocol=EvalProtocol(n_folds=3)).rounds_per_row is None
    ml = datasets["multilabel"]
    per_label = _values("multilabel", next(f for f in FAMILIES if f not in NATIVE_MULTILABEL))
    model = get_space("multilabel").build(per_label, ml.task, ml.categorical).fit(ml.X, ml.y)
    assert len(_boosters(model)) > 1 and fitted_rounds(model) is None


def test_a_time_limited_trial_imports_its_boosting_library_in_the_searching_process() -> None:
    """A time-limited trial runs in a forked child: its boosting library is imported once in the process
    that forks (inherited by every later child), not in each child; an inline trial changes nothing there."""
    import subprocess
    import sys

    code = """
import sys
from metalearn.data.loading import load_sklearn
from metalearn.pipelines.spaces import get_space
from metalearn.search.evaluation import EvalProtocol, evaluate_config
ds = load_sklearn("breast_cancer")
space = get_space(ds.task)
libs = ("catboost", "lightgbm", "xgboost")
before = [m for m in libs if m in sys.modules]
r = evaluate_config(ds, space, space.validate({"model": "catboost"}, fill_defaults=True),
                    protocol=EvalProtocol(mode="holdout"), time_limit=120)
print(r.status, before, [m for m in libs if m in sys.modules])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.split("\n")[-2] == "ok [] ['catboost']", out.stdout + out.stderr


@pytest.mark.parametrize("library", ["lightgbm", "xgboost", "catboost"])
def test_the_round_cost_estimate_grows_with_the_work_of_a_round(library: str) -> None:
    """A round's estimate (what caps a fit's rounds to its budget) grows with the rows, the columns, the trees'
    size and the trees a round grows (one per class); its accuracy is measured by benchmarks/round_cost.py."""
    size = {"lightgbm": "num_leaves", "xgboost": "max_depth", "catboost": "depth"}[library]
    small, large = ({"lightgbm": 15, "xgboost": 3, "catboost": 4}[library], {"lightgbm": 255, "xgboost": 8, "catboost": 8}[library])
    binary, five = np.arange(20_000) % 2, np.arange(20_000) % 5

    def est(n: int, p: int, leaves: int, y: np.ndarray = binary, cls: Any = BoostedTreesClassifier) -> float:
        return float(cls(library=library, params={size: leaves}).round_seconds(n, p, y[:n]))

    base = est(10_000, 50, small)
    assert 0 < base < est(20_000, 50, small) and base < est(10_000, 100, small) and base < est(10_000, 50, large)
    assert est(10_000, 50, small, five) == pytest.approx(5 * base)
    # a tree cannot have more leaves than its rows allow: on 100 rows the large trees cost little more
    assert est(100, 50, large) < 3 * est(100, 50, small)


def test_deep_xgboost_classification_trees_are_estimated_smaller_than_regression_trees() -> None:
    """A leaf of a classification tree needs many rows (a row's hessian is at most 1/4), a regression leaf one
    row: at depth 10 on 2,000 rows the classifier's round measured 1.2 ms, the regressor's on 200 columns 197 ms
    (benchmarks/round_cost.py), and the old shared model took both for 1,024-leaf trees (41 x the classifier's)."""
    y_class, y_reg = np.arange(2_000) % 2, np.linspace(0.0, 1.0, 2_000)
    clf = BoostedTreesClassifier(library="xgboost", params={"max_depth": 10}).round_seconds(2_000, 10, y_class)
    reg = BoostedTreesRegressor(library="xgboost", params={"max_depth": 10}).round_seconds(2_000, 10, y_reg)
    assert clf < reg / 4
