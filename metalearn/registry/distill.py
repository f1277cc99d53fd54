"""Distillation: one LightGBM pipeline that imitates a registered model — a large forest ensemble, a
CatBoost model with categorical features that has no ONNX graph — as a smaller and faster variant
(AutoGluon's ``distill``; the augmented rows labelled by the teacher are Bucila et al. 2006's idea).

The student is fit on the sample of training rows kept with the version, with their true targets, and on
rows made from them (:func:`augment`, AutoGluon's "spunge": a copy of a random sample row whose every feature
is, with probability :data:`SWAP`, replaced by that column's value in another random row;
:data:`AUGMENT_FACTOR` per sample row, at least :data:`MIN_AUGMENTED`), whose targets are the teacher's: its
values, or labels drawn from its class probabilities — over many rows a student fit to drawn labels learns
the probabilities themselves (the expected log loss of drawn labels is the cross-entropy against the
teacher's probabilities), where the teacher's most probable labels would teach it a step. The student is
the search space's LightGBM pipeline, with up to :data:`STUDENT_ROUNDS` boosting rounds (early-stopped on a
validation split inside the fit, as in a search), in the one of :data:`STUDENTS` (the default, a smoother and
a finer one) that imitates the teacher best on :data:`HELD_OUT` of the augmented rows (:func:`_misfit`: the
cross-entropy of its probabilities against the teacher's, its squared error over the teacher's variance);
``onnx`` converts it too (onnxmltools handles LightGBM's categorical splits). A teacher's decision threshold
or class weights (:mod:`metalearn.search.calibration`) apply to the student's probabilities as they did to
its own (its temperature is in the probabilities the student learnt).

A student is not always as good as its teacher (``benchmarks/distillation.py``: 197_cpu_act's 41.7 MB forest
ensemble became 2.1 MB with a better test RMSE, uci_kin40k's smooth models a twice worse one), so
:func:`metalearn.registry.variants.compress` registers it only within ``DISTILL_TOLERANCE`` of the original's
score.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from metalearn.data.errors import CompressionError
from metalearn.data.prediction import Prediction
from metalearn.data.task import Task

__all__ = ["AUGMENT_FACTOR", "HELD_OUT", "MAX_ROWS", "MIN_AUGMENTED", "STUDENTS", "STUDENT_ROUNDS", "SWAP", "augment",
           "augmented_rows", "distill", "drawn_labels"]

#: augmented rows per sample row (AutoGluon's ``size_factor``)
AUGMENT_FACTOR = 5
#: the fewest augmented rows (a small sample gets more than its factor)
MIN_AUGMENTED = 10_000
#: the most rows (sample and augmented) the student is fit on
MAX_ROWS = 50_000
#: the probability that a feature of an augmented row takes another row's value
SWAP = 0.2
#: the student's boosting rounds at most (the space's LightGBM default has 100)
STUDENT_ROUNDS = 500


def augment(X: pd.DataFrame, n_rows: int, seed: int = 0) -> pd.DataFrame:
    """``n_rows`` new rows from ``X``: each a copy of a random row of ``X`` whose every column is, with
    probability :data:`SWAP`, replaced by that column's value in another random row (dtypes kept)."""
    rng = np.random.default_rng(seed)
    n = len(X)
    if n == 0 or n_rows <= 0:
        return X.iloc[:0].copy()
    base = rng.integers(0, n, n_rows)
    out = X.iloc[base].reset_index(drop=True)
    for col in range(X.shape[1]):
        swap = np.flatnonzero(rng.random(n_rows) < SWAP)
        if len(swap):
            donors = rng.integers(0, n, len(swap))
            values = X.iloc[donors, col].to_numpy()
            column = out.iloc[:, col].copy()
            column.iloc[swap] = values
            out[out.columns[col]] = column
    return out


def augmented_rows(n_rows: int) -> int:
    """How many rows :func:`distill` adds to a sample of ``n_rows``: :data:`AUGMENT_FACTOR` per row, at least
    :data:`MIN_AUGMENTED`, at most :data:`MAX_ROWS` in all."""
    return max(0, min(max(AUGMENT_FACTOR * n_rows, MIN_AUGMENTED), MAX_ROWS - n_rows)) if n_rows else 0


def drawn_labels(pred: Prediction, seed: int = 0) -> list[np.ndarray]:
    """Per target of ``pred``: a label drawn from each row's class probabilities, or the values of a target
    without probabilities (regression)."""
    rng = np.random.default_rng(seed)
    out = []
    for values, proba, classes in zip(pred.values, pred.probas, pred.classes, strict=True):
        if proba is None or classes is None:
            out.append(np.asarray(values))
            continue
        P = np.clip(np.asarray(proba, dtype=np.float64), 0.0, None)
        cumulative = np.cumsum(P / P.sum(axis=1, keepdims=True), axis=1)
        pick = (rng.random((len(P), 1)) > cumulative).sum(axis=1)
        out.append(np.asarray(classes)[np.minimum(pick, P.shape[1] - 1)])
    return out


#: the student configurations tried (over the space's LightGBM default), the one that imitates the teacher best
#: on held-out augmented rows is kept
STUDENTS: tuple[dict[str, float], ...] = (
    {},
    {"lgbm:num_leaves": 8.0, "lgbm:learning_rate": 0.05, "lgbm:min_child_samples": 40.0},
    {"lgbm:num_leaves": 127.0, "lgbm:learning_rate": 0.05, "lgbm:min_child_samples": 5.0},
)
#: the share of augmented rows held out to measure how well a student imitates
HELD_OUT = 0.2


def _misfit(teacher: Prediction, student: Prediction) -> float:
    """How far ``student``'s predictions are from ``teacher``'s (lower is closer): per target the
    cross-entropy of the student's class probabilities against the teacher's, or the squared error of its
    values over the teacher's variance; their mean."""
    from metalearn.search.ensemble import aligned_proba, union_classes

    parts = []
    for t in range(teacher.n_targets):
        pt, ps, classes = teacher.probas[t], student.probas[t], teacher.classes[t]
        if pt is None or ps is None or classes is None or student.classes[t] is None:
            vt, vs = np.asarray(teacher.values[t], dtype=np.float64), np.asarray(student.values[t], dtype=np.float64)
            parts.append(float(np.mean((vt - vs) ** 2) / max(float(np.var(vt)), 1e-12)))
            continue
        union = union_classes([classes, student.classes[t]])
        Pt = aligned_proba(teacher.values[t], pt, classes, union)
        # a class the student never saw keeps a tiny probability
        Ps = np.clip(aligned_proba(student.values[t], ps, student.classes[t], union), 1e-15, 1.0)
        parts.append(float(-np.mean(np.sum(Pt * np.log(Ps), axis=1))))
    return float(np.mean(parts))


def distill(teacher: Any, X: pd.DataFrame, y: pd.DataFrame, task: Task, categorical: Sequence[bool],
            seed: int = 0) -> Any:
    """A LightGBM pipeline fit to imitate ``teacher`` (a fitted task model or ensemble) on the training sample
    ``X`` (true targets ``y``) and rows augmented from it labelled by the teacher (see the module docstring).
    :class:`CompressionError` when the space has no LightGBM configuration for the task or the fit fails."""
    from metalearn.pipelines.spaces import get_space

    space = get_space(task)
    default = space.family_default("lgbm")
    if default is None:
        raise CompressionError(f"the {task.kind} search space has no LightGBM configuration to distil into")
    new = augment(X, augmented_rows(len(X)), seed)
    taught_pred = teacher.predict_task(new)
    taught = drawn_labels(taught_pred, seed)
    y_new = pd.DataFrame({name: taught[t] for t, name in enumerate(task.targets)})
    n_held = int(HELD_OUT * len(new))
    y_true = y.reset_index(drop=True)
    y_true = y_true.astype({c: y_true[c].cat.categories.dtype for c in y_true  # labels as their values
                            if isinstance(y_true[c].dtype, pd.CategoricalDtype)})
    X_fit = pd.concat([X.reset_index(drop=True), new.iloc[n_held:]], ignore_index=True)
    y_fit = pd.concat([y_true, y_new.iloc[n_held:]], ignore_index=True)
    held = Prediction([np.asarray(v)[:n_held] for v in taught_pred.values],
                      [None if p is None else np.asarray(p)[:n_held] for p in taught_pred.probas],
                      list(taught_pred.classes))
    fitted: list[tuple[float, Any]] = []
    for extra in STUDENTS:
        values = space.validate({**default, **extra, "lgbm:n_estimators": float(STUDENT_ROUNDS)})
        try:
            student = space.build(values, task, categorical, seed).fit(X_fit, y_fit)
        except (ValueError, TypeError, MemoryError) as err:
            raise CompressionError(f"the LightGBM student could not be fit ({type(err).__name__}: {err}); keep the "
                                   "original version") from err
        fitted.append((_misfit(held, student.predict_task(new.iloc[:n_held])) if n_held else 0.0, student))
    student = min(fitted, key=lambda f: f[0])[1]  # the first of the closest
    threshold, weights = getattr(teacher, "threshold", None), getattr(teacher, "class_weights", None)
    if threshold is None and weights is None:
        return student
    from metalearn.search.ensemble import EnsembleModel

    return EnsembleModel(task, [student], [1.0], ("distilled",), threshold=threshold, class_weights=weights)
