"""Distillation: one pipeline — a LightGBM, or an MLP for a smooth teacher — that imitates a registered model (a
large forest ensemble, a CatBoost model with categorical features that has no ONNX graph) as a smaller and faster
variant (AutoGluon's ``distill``; the augmented rows labelled by the teacher are Bucila et al. 2006's idea).

The student is fit on the sample of training rows kept with the version, with their true targets, and on
rows made from them (:func:`augment`, AutoGluon's "spunge": a copy of a random sample row whose every feature
is, with probability :data:`SWAP`, replaced by that column's value in another random row;
:data:`AUGMENT_FACTOR` per sample row, at least :data:`MIN_AUGMENTED`), whose targets are the teacher's: its
values, or labels drawn from its class probabilities — over many rows a student fit to drawn labels learns
the probabilities themselves (the expected log loss of drawn labels is the cross-entropy against the
teacher's probabilities), where the teacher's most probable labels would teach it a step. The students
(:data:`STUDENTS`) are pipelines of the search space: its LightGBM default, a smoother and a finer LightGBM
(up to :data:`STUDENT_ROUNDS` boosting rounds, early-stopped on a validation split inside the fit, as in a
search) and a two-layer MLP; each is fit without :data:`HELD_OUT` of the sample rows and of the augmented
rows and measured there (:func:`_misfit`: the cross-entropy of its probabilities against the teacher's, its
squared error over the teacher's variance); the closest LightGBM is kept unless the MLP is much closer
(:func:`pick`), and fit again on every row. ``onnx`` converts it too (onnxmltools handles LightGBM's categorical
splits). A teacher's decision threshold or class weights (:mod:`metalearn.search.calibration`) apply to the
student's probabilities as they did to its own (its temperature is in the probabilities the student learnt).

A student is not always as good as its teacher (``benchmarks/distillation.py``: 197_cpu_act's 41.7 MB forest
ensemble became 2.1 MB with a better test RMSE; uci_bike's near-exact forests a 40 % worse one), so
:func:`metalearn.registry.variants.compress` registers it only within ``DISTILL_TOLERANCE`` of the original's
score and ``DISTILL_MIN_GAIN`` times smaller or faster than it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from metalearn.data.errors import CompressionError
from metalearn.data.prediction import Prediction
from metalearn.data.task import Task

__all__ = ["AUGMENT_FACTOR", "HELD_OUT", "MAX_ROWS", "MIN_AUGMENTED", "OTHER_FAMILY_MARGIN", "STUDENTS",
           "STUDENT_ROUNDS", "SWAP", "Student", "augment", "augmented_rows", "distill", "drawn_labels", "pick"]

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


#: the students fit (a family of the search space and values over its default): the space's LightGBM default, a
#: smoother and a finer LightGBM, and a two-layer MLP for smooth teachers (uci_kin40k's MLP ensemble: its LightGBM
#: students reached twice its test RMSE); the closest to the teacher on the held-out rows is kept
STUDENTS: dict[str, tuple[str, dict[str, float]]] = {
    "lgbm": ("lgbm", {}),
    "lgbm smoother": ("lgbm", {"lgbm:num_leaves": 8.0, "lgbm:learning_rate": 0.05, "lgbm:min_child_samples": 40.0}),
    "lgbm finer": ("lgbm", {"lgbm:num_leaves": 127.0, "lgbm:learning_rate": 0.05, "lgbm:min_child_samples": 5.0}),
    "mlp 2x128": ("mlp", {"mlp:n_layers": 2.0, "mlp:width_1": 128.0, "mlp:width_2": 128.0}),
}
#: a student of another family than LightGBM's is kept only when its misfit is under this share of the closest
#: LightGBM's (a neural student varies more with its seed, and LightGBM's has an ONNX graph for categorical splits)
OTHER_FAMILY_MARGIN = 0.5
#: the share of the sample rows and of the augmented rows held out to measure how well a student imitates
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


@dataclass(frozen=True)
class Student:
    """What :func:`distill` made: the fitted ``model`` (a task model, or a one-member ensemble carrying the teacher's
    decision threshold or class weights), the ``name`` of the :data:`STUDENTS` entry it is, and every student's
    misfit on the held-out rows (``inf``: the space has no such family)."""

    model: Any
    name: str
    misfits: dict[str, float]


def pick(misfits: dict[str, float]) -> str:
    """The student kept given every student's misfit: the closest LightGBM, or a student of another family at
    less than :data:`OTHER_FAMILY_MARGIN` times its misfit (the first of equals, in :data:`STUDENTS`' order)."""
    order = sorted(STUDENTS, key=lambda name: misfits[name])  # stable: the first of equals
    lgbm = next(name for name in order if STUDENTS[name][0] == "lgbm")
    other = next((name for name in order if STUDENTS[name][0] != "lgbm"), None)
    if other is not None and misfits[other] < OTHER_FAMILY_MARGIN * misfits[lgbm]:
        return other
    return lgbm


def distill(teacher: Any, X: pd.DataFrame, y: pd.DataFrame, task: Task, categorical: Sequence[bool],
            seed: int = 0) -> Student:
    """The student fit to imitate ``teacher`` (a fitted task model or ensemble) on the training sample ``X`` (true
    targets ``y``) and rows augmented from it labelled by the teacher (see the module docstring): each of
    :data:`STUDENTS` is fit without :data:`HELD_OUT` of the sample rows and of the augmented rows, their
    misfits (:func:`_misfit`: on the held-out sample rows and on the held-out augmented rows, the two averaged)
    pick one (:func:`pick`), which is fit again on every row. :class:`CompressionError` when the space has no
    LightGBM configuration for the task or a fit fails."""
    from metalearn.pipelines.spaces import get_space

    space = get_space(task)
    if space.family_default("lgbm") is None:
        raise CompressionError(f"the {task.kind} search space has no LightGBM configuration to distil into")
    new = augment(X, augmented_rows(len(X)), seed)
    taught_pred = teacher.predict_task(new)
    taught = drawn_labels(taught_pred, seed)
    y_new = pd.DataFrame({name: taught[t] for t, name in enumerate(task.targets)})
    y_true = y.reset_index(drop=True)
    y_true = y_true.astype({c: y_true[c].cat.categories.dtype for c in y_true  # labels as their values
                            if isinstance(y_true[c].dtype, pd.CategoricalDtype)})
    X_all = pd.concat([X.reset_index(drop=True), new], ignore_index=True)
    y_all = pd.concat([y_true, y_new], ignore_index=True)
    rng = np.random.default_rng(seed)
    held_sample = rng.permutation(len(X))[: int(HELD_OUT * len(X))]
    held_new = len(X) + np.arange(int(HELD_OUT * len(new)))
    fit_rows = np.setdiff1d(np.arange(len(X_all)), np.concatenate([held_sample, held_new]))
    held_parts, teacher_held = [], []  # the teacher's predictions of the held-out rows
    if len(held_sample):
        held_parts.append(held_sample)
        teacher_held.append(teacher.predict_task(X_all.iloc[held_sample]))
    if len(held_new):
        held_parts.append(held_new)
        teacher_held.append(taught_pred.take(held_new - len(X)))

    def fit(name: str, rows: np.ndarray) -> Any:
        family, extra = STUDENTS[name]
        default = space.family_default(family)
        if default is None:
            return None
        values = {**default, **extra}
        if family == "lgbm":
            values["lgbm:n_estimators"] = float(STUDENT_ROUNDS)
        try:
            return space.build(space.validate(values), task, categorical, seed).fit(X_all.iloc[rows], y_all.iloc[rows])
        except (ValueError, TypeError, MemoryError) as err:
            raise CompressionError(f"the {family} student could not be fit ({type(err).__name__}: {err}); keep the "
                                   "original version") from err

    misfits: dict[str, float] = {}
    for name in STUDENTS:
        student = fit(name, fit_rows)
        parts = [] if student is None else [_misfit(t, student.predict_task(X_all.iloc[rows]))
                                            for t, rows in zip(teacher_held, held_parts, strict=True)]
        misfits[name] = float("inf") if student is None else float(np.mean(parts)) if parts else 0.0
    chosen = pick(misfits)
    model = fit(chosen, np.arange(len(X_all)))
    threshold, weights = getattr(teacher, "threshold", None), getattr(teacher, "class_weights", None)
    if threshold is not None or weights is not None:
        from metalearn.search.ensemble import EnsembleModel

        model = EnsembleModel(task, [model], [1.0], ("distilled",), threshold=threshold, class_weights=weights)
    return Student(model, chosen, misfits)

