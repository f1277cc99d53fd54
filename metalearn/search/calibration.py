"""Temperature scaling (and class biases) of the final model's class probabilities (Guo et al. 2017), as AutoGluon
does; decision thresholds and class weights for metrics of the labels.

When a search is judged by a log loss (multiclass by default), the probabilities of the final model —
the best pipeline or the post-hoc ensemble — are often too confident or too timid as a whole: a boosted
model early-stopped on one fold, a forest's averaged votes, an ensemble's average. Dividing the
logarithms of the probabilities by one *temperature* ``T`` and normalising again (a softmax of
``log p / T``) keeps every row's ranking of its classes (labels and ROC AUC unchanged) and moves the
probabilities towards certainty (``T < 1``) or towards uniform (``T > 1``).

:func:`fit_temperature` chooses ``T`` by minimising the log loss of the final model's *out-of-fold*
predictions (the ones ensemble selection used: predictions on rows the fold's model had not seen);
:func:`calibrate` decides whether to use it: only for a log-loss metric, with at least
:data:`MIN_ROWS` out-of-fold rows (AutoGluon's threshold for multiclass: fewer overfit the one
parameter), only when they cover every row the final model is fit on (cross-validation on all rows: the
fold models then see (k-1)/k of its rows; a budgeted search's holdout split or data subset trains them on
far fewer, and the refit model is more confident than they were — at 30 s on a 5,400-row dataset a
temperature of 0.52 fit on a 1,650-row subset's trials raised the test log loss from 0.015 to 0.022) and
when it lowers the out-of-fold log loss. :func:`scale_prediction` applies a temperature
to every class target of a :class:`~metalearn.data.prediction.Prediction`.

**Class biases** (stop 51; vector scaling with one temperature). A single class target (binary, multiclass)
gets a bias per class too, ``softmax(log p / T + b)``, fit together with ``T`` (:func:`fit_biases`, the biases
L2-penalised by :data:`BIAS_PENALTY`): a class the models under- or over-predict as a whole moves back, which one
temperature cannot do (labels are then the most probable classes of the result). On a holdout split or a data
subset, where no temperature is fit (above), the biases are fit alone at ``T = 1``. On the 18 120 s multiclass
searches of the peers benchmark the test log loss went 0.12607 -> 0.12547 (better on 17) and the wins against
FLAML 10 -> 13 of 18 (``benchmarks/ensemble_testbed/vector_scaling.py``).

**The decision threshold** (AutoGluon's ``calibrate_decision_threshold``). A binary search judged by a
metric of the predicted labels (:data:`THRESHOLD_METRICS`: accuracy, balanced accuracy, F1) predicts the
second class when its probability reaches a threshold chosen for that metric, not at 0.5: on imbalanced
data the F1 or the balanced accuracy of the 0.5 cut is often far from the best the probabilities allow.
:func:`tune_threshold` tries :data:`THRESHOLDS` (0.5, then outwards in steps of 0.01, as AutoGluon) on the
same out-of-fold (or validation) predictions, at most :data:`THRESHOLD_ROWS` of them, and keeps the best
when it beats the most probable class there (ties: the one nearer 0.5). The probabilities do not change, so
ROC AUC and log loss do not; :func:`apply_threshold` turns them into labels.

**Label thresholds** (multi-label). A multi-label search judged by a metric of the predicted labels
(:data:`LABEL_THRESHOLD_METRICS`: macro F1, micro F1, Hamming loss, subset accuracy) predicts a label when
its probability reaches one threshold shared by every label, chosen the same way: a rare label's F1 is often
far better below 0.5. (A threshold per label, each chosen on its own label's part of macro F1, fits the
out-of-fold rows better but not the test rows: on 5 held-out datasets macro F1 0.4996 -> 0.5481, better /
equal / worse 3 / 0 / 2, where the shared threshold of the same predictions gave 0.5498, 4 / 1 / 0.)

**Class weights** (multiclass). A multiclass search judged by balanced accuracy (:data:`WEIGHT_METRICS`)
predicts the class of the largest *weighted* probability ``w_c p_c``: the Bayes-optimal rule for balanced
accuracy divides each class's probability by its frequency (``w_c = 1 / π_c``), and the most probable class
favours the frequent ones. (Macro F1 has no such rule: with the same weights its test score on 8 held-out
imbalanced datasets went 0.7019 -> 0.6996, better / equal / worse on 2 / 5 / 1, so it is left out.)
:func:`tune_class_weights` tries ``w_c = π_c^-a`` for :data:`WEIGHT_POWERS` (``π``: the class shares of the
out-of-fold rows) and keeps the best when it beats the most probable class there (both choices:
:func:`_best_rule`); :func:`apply_class_weights` turns the probabilities into labels.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from metalearn.data.errors import MetaLearnError
from metalearn.data.metrics import get_metric, score
from metalearn.data.numbers import finite_or_none
from metalearn.data.prediction import Prediction, class_index
from metalearn.data.task import Task, TaskKind

__all__ = [
    "BIAS_PENALTY", "CALIBRATED_METRICS", "LABEL_THRESHOLD_METRICS", "MIN_ROWS", "THRESHOLDS", "THRESHOLD_METRICS",
    "WEIGHT_METRICS", "WEIGHT_POWERS",
    "Calibration", "ClassWeights", "DecisionThreshold", "PostHocRule", "apply_class_weights", "apply_threshold", "calibrate",
    "calibrates", "finish_prediction", "fit_biases", "fit_temperature", "scale_prediction", "scale_proba", "tune_class_weights",
    "tune_threshold",
]

#: the metrics whose searches temperature-scale their final model (rank metrics do not change with it)
CALIBRATED_METRICS = ("log_loss", "log_loss_mean")
#: the fewest out-of-fold rows a temperature is fit on (AutoGluon: 500 validation rows for multiclass)
MIN_ROWS = 500
#: the temperatures searched: 1/20 .. 20
T_RANGE = (1 / 20, 20.0)
#: the L2 penalty on a single class target's class biases, ``BIAS_PENALTY * |b|^2 / rows`` added to the log loss
#: they are fit on (stop 51, ``benchmarks/ensemble_testbed/vector_scaling.py``: 1, 10 and 100 all lowered the test
#: log loss of most of the 18 120 s multiclass searches; 10 on 17 of them)
BIAS_PENALTY = 10.0
_EPS = 1e-15
#: the binary metrics of the predicted labels, whose searches tune the final model's decision threshold
THRESHOLD_METRICS = ("accuracy", "balanced_accuracy", "f1")
#: the decision thresholds tried: 0.5, then 0.49, 0.51, 0.48, ... 0.01, 0.99 (AutoGluon's grid)
THRESHOLDS: tuple[float, ...] = (0.5, *(round(0.5 + sign * i / 100, 2) for i in range(1, 50) for sign in (-1, 1)))
#: the most out-of-fold rows the threshold is chosen on (a random sample of them beyond)
THRESHOLD_ROWS = 20_000
#: the multi-label metrics of the predicted labels, whose searches tune the labels' (shared) decision threshold
LABEL_THRESHOLD_METRICS = ("f1_macro", "f1_micro", "hamming_loss", "subset_accuracy")
#: the multiclass metrics of the predicted labels whose searches weight the classes' probabilities
WEIGHT_METRICS = ("balanced_accuracy",)
#: the class weights tried are the class shares to these powers, negated (1: the balanced-accuracy rule)
WEIGHT_POWERS = (0.25, 0.5, 0.75, 1.0)


def scale_proba(proba: np.ndarray, temperature: float, biases: Sequence[float] | None = None) -> np.ndarray:
    """``proba`` (rows of class probabilities) at ``temperature`` with class ``biases``: the softmax of
    ``log p / T + b`` (Guo et al. 2017's vector scaling with one temperature; no biases: temperature scaling)."""
    P = np.asarray(proba, dtype=np.float64)
    if (temperature == 1.0 and biases is None) or P.size == 0:
        return P
    z = np.log(np.clip(P, _EPS, 1.0)) / temperature
    if biases is not None:
        z = z + np.asarray(biases, dtype=np.float64)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def scale_prediction(pred: Prediction, temperature: float, biases: Sequence[float] | None = None) -> Prediction:
    """``pred`` with every class target's probabilities at ``temperature`` (labels unchanged: the scaling keeps
    each row's order of its classes); ``biases``, for a single class target, move its classes' probabilities
    too, and its labels become the most probable class of the result."""
    if temperature == 1.0 and biases is None:
        return pred
    probas = [None if p is None else scale_proba(p, temperature, biases if biases is not None and
                                                 len(biases) == np.asarray(p).shape[1] else None)
              for p in pred.probas]
    values = list(pred.values)
    if biases is not None:
        values = [v if p is None or c is None else np.asarray(c)[np.argmax(p, axis=1)]
                  for v, p, c in zip(values, probas, pred.classes, strict=True)]
    return Prediction(values, probas, list(pred.classes))


def calibrates(task: Task) -> bool:
    """Whether a search of ``task`` may calibrate its final model: a temperature for a log loss, a decision
    threshold for a binary label metric or a multi-label one (shared by the labels), class weights for a
    multiclass one."""
    return (task.metric in CALIBRATED_METRICS or _tunes_threshold(task)
            or (task.kind is TaskKind.MULTICLASS and task.metric in WEIGHT_METRICS))


def _tunes_threshold(task: Task) -> bool:
    """Whether ``task``'s metric is one whose final model's labels may use decision thresholds."""
    return ((task.kind is TaskKind.BINARY and task.metric in THRESHOLD_METRICS)
            or (task.kind is TaskKind.MULTILABEL and task.metric in LABEL_THRESHOLD_METRICS))


def apply_threshold(pred: Prediction, threshold: float | None) -> Prediction:
    """``pred`` with the labels the decision ``threshold`` gives each target of two classes (a binary target,
    every label of a multi-label one): the second class where its probability is at least ``threshold``, else
    the first (None: ``pred`` as it is)."""
    if threshold is None:
        return pred
    values = list(pred.values)
    for t, (proba, classes) in enumerate(zip(pred.probas, pred.classes, strict=True)):
        if proba is None or classes is None or len(classes) != 2:
            continue
        second = np.asarray(proba, dtype=np.float64)[:, 1] >= threshold
        values[t] = np.asarray(classes)[second.astype(np.int64)]
    return Prediction(values, list(pred.probas), list(pred.classes))


def apply_class_weights(pred: Prediction, weights: Sequence[float] | None) -> Prediction:
    """``pred`` of a class target with the labels of the largest weighted probability ``w_c p_c`` (``weights``
    in the order of its classes; None: ``pred`` as it is)."""
    if weights is None or pred.n_targets != 1 or pred.probas[0] is None or pred.classes[0] is None:
        return pred
    classes = np.asarray(pred.classes[0])
    if len(classes) != len(weights):
        return pred
    weighted = np.asarray(pred.probas[0], dtype=np.float64) * np.asarray(weights, dtype=np.float64)
    return Prediction([classes[weighted.argmax(axis=1)]], list(pred.probas), list(pred.classes))


def finish_prediction(pred: Prediction, temperature: float = 1.0, threshold: float | None = None,
                      class_weights: Sequence[float] | None = None, biases: Sequence[float] | None = None) -> Prediction:
    """A final model's prediction: its probabilities at ``temperature`` with class ``biases``, its labels at
    ``threshold`` (binary, multi-label) or of the largest ``class_weights``-weighted probability (multiclass)."""
    return apply_class_weights(apply_threshold(scale_prediction(pred, temperature, biases), threshold), class_weights)


def _nll(proba: np.ndarray, truth: np.ndarray, temperature: float) -> float:
    P = scale_proba(proba, temperature)
    return float(-np.mean(np.log(np.clip(P[np.arange(len(truth)), truth], _EPS, 1.0))))


def fit_biases(proba: np.ndarray, truth: np.ndarray, temperature: float | None = None,
               penalty: float = BIAS_PENALTY) -> tuple[float, tuple[float, ...]]:
    """A temperature (``temperature`` kept when given, else fit with them, within :data:`T_RANGE`) and one bias per
    class minimising the log loss of ``proba`` (``(n, k)``) against ``truth`` (each row's column of its true class)
    plus ``penalty * |b|^2 / n``; the biases sum to zero (they are defined up to a constant)."""
    from scipy.optimize import minimize

    n, k = proba.shape
    logp = np.log(np.clip(np.asarray(proba, dtype=np.float64), _EPS, 1.0))
    fixed = temperature is not None
    t0 = 1.0 if temperature is None else float(temperature)

    def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
        t = t0 if fixed else math.exp(x[-1])
        b = x[:k]
        z = logp / t + b
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        P = e / e.sum(axis=1, keepdims=True)
        loss = -float(np.mean(np.log(np.clip(P[np.arange(n), truth], _EPS, 1.0)))) + penalty * float(b @ b) / n
        onehot = np.zeros_like(P)
        onehot[np.arange(n), truth] = 1.0
        g = (P - onehot) / n  # d loss / d z
        grad = [g.sum(axis=0) + 2 * penalty * b / n]
        if not fixed:
            grad.append(np.array([-float(np.sum(g * logp)) / t]))  # d z / d log t = -log p / t
        return loss, np.concatenate(grad)

    lo, hi = (math.log(x) for x in T_RANGE)
    x0 = np.zeros(k) if fixed else np.zeros(k + 1)
    bounds = [(None, None)] * k + ([] if fixed else [(lo, hi)])
    res = minimize(objective, x0, jac=True, method="L-BFGS-B", bounds=bounds)
    b = res.x[:k] - res.x[:k].mean()
    return (t0 if fixed else math.exp(float(res.x[-1]))), tuple(float(v) for v in b)


def fit_temperature(probas: Sequence[np.ndarray], truths: Sequence[np.ndarray]) -> float:
    """The temperature minimising the mean log loss of ``probas`` (one ``(n, k)`` array per class
    target) against ``truths`` (each row's column index of its true class, one array per target)."""
    from scipy.optimize import minimize_scalar

    def loss(log_t: float) -> float:
        t = math.exp(log_t)
        return sum(_nll(p, y, t) for p, y in zip(probas, truths, strict=True)) / max(1, len(probas))

    lo, hi = (math.log(x) for x in T_RANGE)
    res = minimize_scalar(loss, bounds=(lo, hi), method="bounded", options={"xatol": 1e-3})
    return float(math.exp(res.x))


@dataclass(frozen=True, kw_only=True)
class PostHocRule:
    """A rule for the final model's outputs chosen on its out-of-fold (or validation) predictions: whether it is
    ``used``, the search metric on those rows without and with it, how many rows, and why not (``note``). Each
    kind of rule (:class:`Calibration`, :class:`DecisionThreshold`, :class:`ClassWeights`) adds what it chose."""

    used: bool
    score_before: float | None = None
    score_after: float | None = None
    n_rows: int = 0
    note: str = ""

    def chosen(self) -> dict[str, Any]:
        """What the rule chose, as :meth:`to_dict` shows it."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        return {"used": self.used, **self.chosen(), "score_before": finite_or_none(self.score_before),
                "score_after": finite_or_none(self.score_after), "n_rows": self.n_rows, "note": self.note}


@dataclass(frozen=True, kw_only=True)
class Calibration(PostHocRule):
    """Whether the final model's probabilities are scaled and why: ``temperature`` (1.0: not scaled) and a single
    class target's class ``biases`` (None: none), the out-of-fold log loss before and after, the rows they were fit
    on, and a note when they were not used."""

    temperature: float = 1.0
    biases: tuple[float, ...] | None = None

    def chosen(self) -> dict[str, Any]:
        return {"temperature": round(self.temperature, 6),
                "biases": None if self.biases is None else [round(b, 6) for b in self.biases]}


def _truth_columns(pred: Prediction, y: pd.DataFrame) -> tuple[list[np.ndarray], list[np.ndarray]] | None:
    """Each class target's probabilities and its rows' true-class column (None when a true label is not
    among the predicted classes: a class unseen by every fold's model)."""
    probas: list[np.ndarray] = []
    truths: list[np.ndarray] = []
    for t, (p, classes) in enumerate(zip(pred.probas, pred.classes, strict=True)):
        if p is None or classes is None:
            continue
        col = class_index(classes)
        try:
            truth = np.array([col(v) for v in y.iloc[:, t].to_numpy()])
        except KeyError:
            return None
        probas.append(np.asarray(p, dtype=np.float64))
        truths.append(truth.astype(np.int64))
    return (probas, truths) if probas else None


def calibrate(
    task: Task, oof: Prediction | None, y: pd.DataFrame | None, *, n_rows: int | None = None, enabled: bool = True,
    rows: str = "out-of-fold",
) -> Calibration:
    """The temperature for a final model whose out-of-fold (or validation: ``rows`` names them in the notes)
    predictions are ``oof`` (truth ``y``), or why none (see the module docstring). ``n_rows``: the rows the
    final model was fit on; out-of-fold predictions on fewer (a budgeted search's holdout split or data
    subset) are not used."""
    if not enabled:
        return Calibration(used=False, note="off (calibrate=False)")
    if task.metric not in CALIBRATED_METRICS:
        return Calibration(used=False, note=f"not needed for {task.metric} (only a log loss changes with it)")
    if oof is None or y is None:
        return Calibration(used=False, note=f"the final model has no {rows} predictions in this search")
    n = oof.n_rows
    if n < MIN_ROWS:
        return Calibration(used=False, n_rows=n, note=f"{n} {rows} rows, fewer than {MIN_ROWS}: not fit, to avoid overfitting")
    subset = n_rows is not None and n < n_rows
    cols = _truth_columns(oof, y)
    if cols is None:
        return Calibration(used=False, n_rows=n, note=f"a true class is missing from the {rows} predictions")
    one_target = task.n_targets == 1 and len(cols[0]) == 1
    if subset and not one_target:
        return Calibration(used=False, n_rows=n, note=(
            f"the search evaluated on {n} of the {n_rows} rows (a holdout split or a data subset): the final "
            "model, fit on all of them, is more confident than the trials, so their temperature would not fit it"))
    try:
        before = float(score(task, y, oof))
        biases: tuple[float, ...] | None = None
        if one_target:  # a temperature and class biases fit together (on a holdout or subset: the biases alone)
            temperature, biases = fit_biases(cols[0][0], cols[1][0], 1.0 if subset else None)
        else:
            temperature = fit_temperature(*cols)
        after = float(score(task, y, scale_prediction(oof, temperature, biases)))
    except (MetaLearnError, ValueError, FloatingPointError) as exc:
        return Calibration(used=False, n_rows=n, note=f"could not be fit ({exc})")
    if not (math.isfinite(before) and math.isfinite(after)) or after >= before:
        return Calibration(used=False, score_before=before, score_after=before, n_rows=n,
                           note=f"it does not lower the {rows} log loss")
    note = "" if not subset else (
        f"class biases only: the search evaluated on {n} of the {n_rows} rows (a holdout split or a data subset), "
        "and the final model, fit on all of them, is more confident than the trials: no temperature")
    return Calibration(used=True, temperature=temperature, biases=biases, score_before=before, score_after=after,
                       n_rows=n, note=note)


@dataclass(frozen=True, kw_only=True)
class DecisionThreshold(PostHocRule):
    """Whether the final model's labels (a binary target's, every label of a multi-label one) use a tuned
    decision ``threshold`` (None: the most probable class) and why: the out-of-fold score of the most
    probable class and at the threshold, the rows, a note otherwise."""

    threshold: float | None = None

    def chosen(self) -> dict[str, Any]:
        return {"threshold": self.threshold}


def tune_threshold(
    task: Task, oof: Prediction | None, y: pd.DataFrame | None, *, enabled: bool = True, seed: int = 0,
    rows: str = "out-of-fold",
) -> DecisionThreshold:
    """The decision threshold for a binary or multi-label final model whose out-of-fold (or validation:
    ``rows`` names them in the notes) predictions are ``oof`` (truth ``y``), or why none (see the module
    docstring)."""
    if not enabled:
        return DecisionThreshold(used=False, note="off (calibrate=False)")
    if not _tunes_threshold(task):
        return DecisionThreshold(used=False, note=f"not needed for {task.metric} (only a binary or multi-label metric "
                                             "of the labels changes with it)")
    if oof is None or y is None or not any(p is not None and c is not None and len(c) == 2
                                           for p, c in zip(oof.probas, oof.classes, strict=True)):
        return DecisionThreshold(used=False, note=f"the final model has no {rows} probabilities of two classes")
    n = oof.n_rows
    if n > THRESHOLD_ROWS:
        keep = np.sort(np.random.default_rng(seed).choice(n, THRESHOLD_ROWS, replace=False))
        oof = oof.take(keep)
        y = y.iloc[keep]
    # 0.5 first, then outwards: a tie keeps the threshold nearer 0.5
    before, best_t, after = _best_rule(task, oof, y, THRESHOLDS, apply_threshold)
    kept = min(n, THRESHOLD_ROWS)
    if best_t is None:
        return DecisionThreshold(used=False, score_before=before, score_after=before, n_rows=kept,
                                 note=f"no threshold beats the most probable class on the {rows} {task.metric}")
    return DecisionThreshold(used=True, threshold=best_t, score_before=before, score_after=after, n_rows=kept)


def _best_rule(
    task: Task, oof: Prediction, y: pd.DataFrame, rules: Sequence[Any], apply: Callable[[Prediction, Any], Prediction]
) -> tuple[float, Any, float]:
    """The score of ``oof``'s most probable classes, the first of ``rules`` whose labels (``apply``) score
    better than it and every later rule on ``task``'s metric (None: no rule does, or the first score is
    undefined), and that rule's score."""
    y = y.reset_index(drop=True)
    sign = 1.0 if get_metric(task.metric).greater_is_better else -1.0
    before = float(score(task, y, oof))
    if not math.isfinite(before):
        return before, None, before
    chosen, best = None, sign * before
    for rule in rules:
        value = float(score(task, y, apply(oof, rule)))
        if math.isfinite(value) and sign * value > best:
            chosen, best = rule, sign * value
    return before, chosen, sign * best


@dataclass(frozen=True, kw_only=True)
class ClassWeights(PostHocRule):
    """Whether the final model's multiclass labels weight the classes' probabilities (``weights`` in the
    order of its classes; None: the most probable class) and why: the power of the class shares, the
    out-of-fold score of the most probable class and with the weights, the rows, a note otherwise."""

    weights: tuple[float, ...] | None = None
    power: float | None = None

    def chosen(self) -> dict[str, Any]:
        return {"weights": None if self.weights is None else [round(w, 6) for w in self.weights], "power": self.power}


def tune_class_weights(
    task: Task, oof: Prediction | None, y: pd.DataFrame | None, *, enabled: bool = True, rows: str = "out-of-fold"
) -> ClassWeights:
    """The class weights for a multiclass final model whose out-of-fold (or validation: ``rows`` names them in
    the notes) predictions are ``oof`` (truth ``y``), or why none (see the module docstring)."""
    if not enabled:
        return ClassWeights(used=False, note="off (calibrate=False)")
    if task.kind is not TaskKind.MULTICLASS or task.metric not in WEIGHT_METRICS:
        return ClassWeights(used=False, note=f"not needed for {task.metric} (only a multiclass label metric changes with it)")
    cols = None if oof is None or y is None else _truth_columns(oof, y)
    if oof is None or y is None or cols is None:
        return ClassWeights(used=False, note=f"the final model has no {rows} probabilities of every true class")
    truth = cols[1][0]
    k = np.asarray(oof.probas[0]).shape[1]
    shares = np.bincount(truth, minlength=k) / len(truth)
    shares = np.where(shares > 0, shares, 1.0 / len(truth))  # a class no out-of-fold row holds: one row's share
    weights = {a: tuple(float(w) for w in shares ** -a / (shares ** -a).max()) for a in WEIGHT_POWERS}
    before, power, after = _best_rule(task, oof, y, WEIGHT_POWERS, lambda pred, a: apply_class_weights(pred, weights[a]))
    if power is None:
        return ClassWeights(used=False, score_before=before, score_after=before, n_rows=len(truth),
                            note=f"no class weights beat the most probable class on the {rows} {task.metric}")
    return ClassWeights(used=True, weights=weights[power], power=power, score_before=before, score_after=after,
                        n_rows=len(truth))
