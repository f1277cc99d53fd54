"""Distillation (metalearn.registry.distill): the augmented rows, and a LightGBM student that imitates a forest
ensemble on real data — held-out score close to the teacher's, a smaller file — registered as a variant."""

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
from metalearn.registry.distill import (
    MIN_AUGMENTED,
    SWAP,
    _misfit,
    augment,
    augmented_rows,
    distill,
    drawn_labels,
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
    student = distill(teacher, train.X, train.y, train.task, train.categorical)
    booster = student.estimator_.estimator_  # the fitted Adaptive's fitted estimator
    assert type(booster).__name__.startswith("BoostedTrees") and booster.library == "lightgbm"
    teacher_score = score(train.task, y_test, teacher.predict_task(X_test))
    student_score = score(train.task, y_test, student.predict_task(X_test))
    if train.task.metric == "roc_auc":
        assert student_score > teacher_score - 0.02, (student_score, teacher_score)
    else:  # rmse
        assert student_score < 1.05 * teacher_score, (student_score, teacher_score)
    sizes = [write_artifact(m, tmp_path / d)["bytes"] for m, d in ((teacher, "t"), (student, "s"))]
    assert sizes[1] < sizes[0] / 5, sizes
