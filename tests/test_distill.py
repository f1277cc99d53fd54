"""Distillation (metalearn.registry.distill): the augmented rows, a LightGBM student that imitates a forest
ensemble on real data — held-out score close to the teacher's, a smaller file — and an MLP student for a smooth
teacher, picked only when it imitates much better."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metalearn.data.dataset import Dataset
from metalearn.data.loading import load_sklearn
from metalearn.data.metrics import score
from metalearn.data.prediction import Prediction
from metalearn.pipelines.artifacts import write_artifact
from metalearn.pipelines.spaces import get_space
from metalearn.registry.compress import to_onnx
from metalearn.registry.distill import (
    MIN_AUGMENTED,
    OTHER_FAMILY_MARGIN,
    STUDENTS,
    SWAP,
    _misfit,
    augment,
    augmented_rows,
    distill,
    drawn_labels,
    pick,
)
from metalearn.search.ensemble import EnsembleModel


def _split(ds: Dataset, seed: int = 0) -> tuple[Dataset, pd.DataFrame, pd.DataFrame]:
    idx = np.random.default_rng(seed).permutation(ds.n_rows)
    cut = int(0.7 * ds.n_rows)
    train = ds.take_rows(np.sort(idx[:cut]))
    return train, ds.X.iloc[idx[cut:]].reset_index(drop=True), ds.y.iloc[idx[cut:]].reset_index(drop=True)


def _forests(ds: Dataset) -> EnsembleModel:
    """The kind of final model distillation is for: an ensemble of two forest pipelines of 300 trees (as a
    search's final fit grows them)."""
    space = get_space(ds.task)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        members = [space.build({**(space.family_default(f) or {}), f"{f}:n_estimators": 300.0}, ds.task,
                               ds.categorical, seed=0).fit(ds.X, ds.y) for f in ("rf", "et")]
    return EnsembleModel(ds.task, members, [0.6, 0.4], ("rf", "et"))


def test_augmented_rows_mix_the_columns_of_real_rows() -> None:
    X = load_sklearn("breast_cancer").X
    X = X.assign(size=pd.Categorical(np.where(X.iloc[:, 0] > X.iloc[:, 0].median(), "large", "small")))
    new = augment(X, 2000, seed=1)
    assert new.shape == (2000, X.shape[1]) and list(new.columns) == list(X.columns)
    assert (new.dtypes == X.dtypes).all()  # the categorical column stays categorical
    for col in X.columns:
        assert set(new[col]) <= set(X[col])  # every value comes from its own column
    assert new.equals(augment(X, 2000, seed=1)) and not new.equals(augment(X, 2000, seed=2))
    # about SWAP of the cells come from another row: few augmented rows are a real row unchanged
    real = set(map(tuple, X.round(9).astype(str).to_numpy()))
    unchanged = np.mean([tuple(r) in real for r in new.round(9).astype(str).to_numpy()])
    assert unchanged < 2 * (1 - SWAP) ** X.shape[1] + 0.01
    assert augment(X, 0).empty and augmented_rows(0) == 0
    assert augmented_rows(100) == MIN_AUGMENTED and augmented_rows(5000) == 5 * 5000 and augmented_rows(40_000) == 10_000


def test_labels_drawn_from_the_teachers_probabilities_follow_them() -> None:
    P = np.tile([[0.2, 0.8], [0.9, 0.1]], (10_000, 1))
    classes = np.array(["no", "yes"])
    pred = Prediction([classes[P.argmax(axis=1)], np.arange(len(P), dtype=float)], [P, None], [classes, None])
    labels, values = drawn_labels(pred, seed=3)
    assert set(labels) == {"no", "yes"} and np.array_equal(values, pred.values[1])  # a value target as it is
    assert abs(np.mean(labels[0::2] == "yes") - 0.8) < 0.015 and abs(np.mean(labels[1::2] == "yes") - 0.1) < 0.015


def test_the_misfit_of_a_student_is_smallest_for_the_teachers_own_predictions() -> None:
    rng = np.random.default_rng(0)
    P = rng.dirichlet([1.0, 1.0, 1.0], size=500)
    classes = np.array(["a", "b", "c"])
    values = rng.normal(size=500)
    teacher = Prediction([classes[P.argmax(axis=1)], values], [P, None], [classes, None])
    blurred = Prediction([classes[P.argmax(axis=1)], values + rng.normal(scale=0.5, size=500)],
                         [0.5 * P + 0.5 / 3, None], [classes, None])
    reordered = Prediction(list(teacher.values), [P[:, ::-1], None], [classes[::-1], None])  # the same, classes reversed
    assert _misfit(teacher, reordered) == pytest.approx(_misfit(teacher, teacher))
    assert _misfit(teacher, teacher) < _misfit(teacher, blurred)


@pytest.mark.parametrize("name", ["breast_cancer", "diabetes"])
def test_a_student_scores_close_to_its_forest_teacher_on_held_out_rows_in_a_smaller_file(
    name: str, tmp_path: Path
) -> None:
    train, X_test, y_test = _split(load_sklearn(name))
    teacher = _forests(train)
    made = distill(teacher, train.X, train.y, train.task, train.categorical)
    assert STUDENTS[made.name][0] == "lgbm" and set(made.misfits) == set(STUDENTS), made.misfits
    assert made.misfits[made.name] == min(v for k, v in made.misfits.items() if STUDENTS[k][0] == "lgbm")
    student = made.model
    booster = student.estimator_.estimator_  # the fitted Adaptive's fitted estimator
    assert type(booster).__name__.startswith("BoostedTrees") and booster.library == "lightgbm"
    teacher_score = score(train.task, y_test, teacher.predict_task(X_test))
    student_score = score(train.task, y_test, student.predict_task(X_test))
    if train.task.metric == "roc_auc":
        assert student_score > teacher_score - 0.02, (student_score, teacher_score)
    else:  # rmse
        assert student_score < 1.05 * teacher_score, (student_score, teacher_score)
    sizes = [write_artifact(m, tmp_path / d)["bytes"] for m, d in ((teacher, "t"), (student, "s"))]
    assert sizes[1] < sizes[0] / 1.5, sizes


def test_a_student_of_another_family_is_picked_only_when_it_imitates_much_better() -> None:
    lgbm = {name: 0.1 + 0.01 * i for i, name in enumerate(n for n in STUDENTS if STUDENTS[n][0] == "lgbm")}
    (other,) = (n for n in STUDENTS if STUDENTS[n][0] != "lgbm")
    assert pick({**lgbm, other: 0.099}) == min(lgbm, key=lambda n: lgbm[n])  # closer, not by enough
    assert pick({**lgbm, other: 0.99 * OTHER_FAMILY_MARGIN * 0.1}) == other
    assert pick({**lgbm, other: float("inf")}) == min(lgbm, key=lambda n: lgbm[n])
    ties = dict.fromkeys(lgbm, 0.0)
    assert pick({**ties, other: 0.0}) == next(iter(lgbm))  # no held-out rows: the first LightGBM


def test_a_smooth_teacher_gets_an_mlp_student_as_good_as_itself(load_corpus) -> None:
    """uci_kin40k (a robot arm's kinematics, 8 numeric features): a two-layer MLP teacher's LightGBM students stay
    far from it; the MLP student imitates it and keeps its test RMSE."""
    data = load_corpus("uci_kin40k")
    idx = np.random.default_rng(0).permutation(data.n_rows)
    train, test = data.take_rows(np.sort(idx[:5000])), data.take_rows(np.sort(idx[-3000:]))
    space = get_space(train.task)
    values = {**(space.family_default("mlp") or {}), "mlp:n_layers": 2.0, "mlp:width_1": 96.0, "mlp:width_2": 96.0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        teacher = space.build(space.validate(values), train.task, train.categorical, seed=1).fit(train.X, train.y)
        made = distill(teacher, train.X, train.y, train.task, train.categorical)
    best_lgbm = min(v for k, v in made.misfits.items() if STUDENTS[k][0] == "lgbm")
    assert STUDENTS[made.name][0] == "mlp" and made.misfits[made.name] < OTHER_FAMILY_MARGIN * best_lgbm, made.misfits
    teacher_rmse = score(train.task, test.y, teacher.predict_task(test.X))
    assert score(train.task, test.y, made.model.predict_task(test.X)) < 1.1 * teacher_rmse
    # the MLP student converts to ONNX as a LightGBM one does
    onnx = to_onnx(made.model, test.X.head(200))
    np.testing.assert_allclose(onnx.predict_task(test.X).values[0], made.model.predict_task(test.X).values[0],
                               rtol=1e-3, atol=1e-3)
