"""Metrics for every task kind, computed from the uniform :class:`~metalearn.data.prediction.Prediction`.

A :class:`Metric` is a frozen description (name, direction, kinds it applies to, whether it needs
probabilities, best/worst values). :func:`compute_metrics` returns every metric of a task's kind,
:func:`score` only the task's own metric, :func:`to_cost` turns a score into a value to minimise.

Robustness rules (a failing model must never crash the caller):

- labels are matched by value, not by type: ``1``, ``1.0``, ``"1"`` and ``True`` are the same label,
  so a model predicting ints for a categorical target of ``"1"``/``"0"`` still scores correctly;
- probability columns are aligned by ``Prediction.classes``; a class the model never saw gets a
  probability column of zeros (rows are renormalised and clipped for log loss);
- a classification target without probabilities falls back to the one-hot of the predicted labels;
- NaN/inf in predictions makes the affected metrics NaN (never an exception); so does a metric that
  is undefined on the data (e.g. ROC AUC when ``y_true`` holds a single class);
- rows whose true target is missing are ignored for that target.

Structural mismatches (wrong number of targets or rows) raise :class:`~metalearn.data.errors.InputError`.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn import metrics as skm

from metalearn.data.errors import InputError
from metalearn.data.prediction import Prediction
from metalearn.data.task import DEFAULT_METRIC, SINGLE_KINDS, Task, TaskKind

__all__ = [
    "METRICS",
    "PROBA_EPS",
    "Metric",
    "binary_auc_rows",
    "check_metric",
    "compute_metrics",
    "get_metric",
    "metric_names",
    "metrics_for",
    "normalised_regret",
    "regret_bounds",
    "score",
    "to_cost",
]

#: the log loss clips probabilities to [PROBA_EPS, 1 - PROBA_EPS]
PROBA_EPS = float(np.finfo(np.float64).eps)

B, MC, R = TaskKind.BINARY, TaskKind.MULTICLASS, TaskKind.REGRESSION
ML, MT, MX = TaskKind.MULTILABEL, TaskKind.MULTITARGET, TaskKind.MULTITASK


@dataclass(frozen=True)
class Metric:
    """A metric: its direction, the task kinds it applies to and its known best/worst values.

    ``best``/``worst`` are the attainable extremes in the metric's own direction (``None`` where a
    side is unbounded, e.g. the worst log loss or R²).
    """

    name: str
    greater_is_better: bool
    kinds: frozenset[TaskKind]
    needs_proba: bool = False
    best: float | None = None
    worst: float | None = None
    description: str = ""

    @property
    def bounds(self) -> tuple[float, float]:
        """``(lower, upper)`` attainable values (``-inf``/``inf`` where unbounded)."""
        lo, hi = (self.worst, self.best) if self.greater_is_better else (self.best, self.worst)
        return (-math.inf if lo is None else lo, math.inf if hi is None else hi)

    def applies_to(self, kind: TaskKind | str) -> bool:
        return TaskKind(kind) in self.kinds

    def to_cost(self, value: float) -> float:
        """The value to minimise: ``-value`` for greater-is-better metrics, else ``value``."""
        v = float(value)
        return -v if self.greater_is_better else v

    def to_loss(self, value: float) -> float:
        """A non-negative loss whose ratios compare pipelines: ``1 - value`` for greater-is-better metrics
        (bounded above by 1: ROC AUC, accuracy, R², ...), else ``value`` (log loss, RMSE, ...)."""
        v = float(value)
        return 1.0 - v if self.greater_is_better else v

    def from_cost(self, cost: float) -> float:
        c = float(cost)
        return -c if self.greater_is_better else c


def _m(
    name: str,
    gib: bool,
    kinds: Iterable[TaskKind],
    proba: bool = False,
    best: float | None = None,
    worst: float | None = None,
    description: str = "",
) -> Metric:
    return Metric(name, gib, frozenset(kinds), proba, best, worst, description)


#: Every named metric. Per-target multitask metrics (``t0:roc_auc``) are created on demand by
#: :func:`get_metric`.
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        _m(
            "roc_auc",
            True,
            [B],
            True,
            1.0,
            0.0,
            "area under the ROC curve of the positive (last sorted) class",
        ),
        _m("log_loss", False, [B, MC], True, 0.0, None, "cross-entropy of the class probabilities"),
        _m("accuracy", True, [B, MC], False, 1.0, 0.0, "fraction of correct labels"),
        _m("balanced_accuracy", True, [B, MC], False, 1.0, 0.0, "mean recall over the classes in y_true"),
        _m("f1", True, [B], False, 1.0, 0.0, "F1 of the positive (last sorted) class"),
        _m("roc_auc_ovr", True, [MC], True, 1.0, 0.0, "macro one-vs-rest ROC AUC over classes in y_true"),
        _m("f1_macro", True, [MC, ML], False, 1.0, 0.0, "unweighted mean F1 over classes / labels"),
        _m("rmse", False, [R], False, 0.0, None, "root mean squared error"),
        _m("mae", False, [R], False, 0.0, None, "mean absolute error"),
        _m("r2", True, [R], False, 1.0, None, "coefficient of determination"),
        _m("roc_auc_macro", True, [ML], True, 1.0, 0.0, "mean ROC AUC over labels not constant in y_true"),
        _m("f1_micro", True, [ML], False, 1.0, 0.0, "F1 over all (row, label) decisions"),
        _m("hamming_loss", False, [ML], False, 0.0, 1.0, "fraction of wrong (row, label) decisions"),
        _m("subset_accuracy", True, [ML], False, 1.0, 0.0, "fraction of rows with every label right"),
        _m("log_loss_mean", False, [ML], True, 0.0, None, "mean over labels of the binary log loss"),
        _m("r2_mean", True, [MT], False, 1.0, None, "mean R² over targets"),
        _m("rmse_mean", False, [MT], False, 0.0, None, "mean RMSE over targets"),
        _m("mae_mean", False, [MT], False, 0.0, None, "mean MAE over targets"),
        _m(
            "multitask_mean",
            True,
            [MX],
            True,
            1.0,
            None,
            "mean over targets of ROC AUC (binary), balanced accuracy (multiclass), R² (regression)",
        ),
    )
}

#: The metric each single kind contributes to ``multitask_mean``.
MULTITASK_COMPONENT: dict[TaskKind, str] = {B: "roc_auc", MC: "balanced_accuracy", R: "r2"}

_PER_TARGET = re.compile(r"^t(\d+):([a-z0-9_]+)$")

assert all(name in METRICS and METRICS[name].applies_to(kind) for kind, name in DEFAULT_METRIC.items())


def metric_names(kind: TaskKind | str) -> list[str]:
    """Names of the metrics of a kind, in registry order."""
    return [m.name for m in metrics_for(kind)]


def metrics_for(kind: TaskKind | str) -> list[Metric]:
    """Every named metric that applies to ``kind`` (default metric first)."""
    k = TaskKind(kind)
    out = [m for m in METRICS.values() if k in m.kinds]
    out.sort(key=lambda m: m.name != DEFAULT_METRIC[k])
    return out


def get_metric(name: str, kind: TaskKind | str | None = None) -> Metric:
    """The metric called ``name``; with ``kind`` it must also apply to that kind.

    Multitask tasks also accept per-target names ``t<i>:<metric>`` (e.g. ``t0:roc_auc``).
    Raises :class:`InputError` naming the valid metrics otherwise.
    """
    k = TaskKind(kind) if kind is not None else None
    m = METRICS.get(name)
    if m is None:
        match = _PER_TARGET.match(name)
        base = METRICS.get(match.group(2)) if match else None
        if base is not None and any(s in base.kinds for s in SINGLE_KINDS):
            m = Metric(
                name,
                base.greater_is_better,
                frozenset([MX]),
                base.needs_proba,
                base.best,
                base.worst,
                f"{base.name} of target {match.group(1)}" if match else "",
            )
    if m is None or (k is not None and k not in m.kinds):
        if k is None:
            valid = ", ".join(METRICS)
            raise InputError(f"unknown metric {name!r}; choose one of: {valid}")
        valid = ", ".join(metric_names(k))
        extra = " (or t<i>:<metric> for one target)" if k is MX else ""
        raise InputError(f"metric {name!r} is not valid for a {k} task; choose one of: {valid}{extra}")
    return m


def check_metric(kind: TaskKind | str, name: str) -> str:
    """Validate that ``name`` is a metric of ``kind``; returns the name or raises InputError."""
    return get_metric(name, kind).name


def check_task_metric(task: Task, name: str) -> str:
    """``name`` as a metric of ``task``, raising :class:`InputError` otherwise. A multitask task also takes one
    target's metric, ``t<i>:<metric>`` or ``<target name>:<metric>`` (given back as ``t<i>:<metric>``, the
    form its runs store), of a metric that applies to that target's kind."""
    if task.kind is not MX or ":" not in name:
        return check_metric(task.kind, name)
    target, _, base = name.rpartition(":")
    positional = re.fullmatch(r"t(\d+)", target)
    index = int(positional.group(1)) if positional else task.targets.index(target) if target in task.targets else -1
    named = ", ".join(f"{k} = {t!r}" for k, t in task.target_keys().items())
    if not 0 <= index < task.n_targets:
        raise InputError(
            f"metric {name!r} names no target of this task ({named}): give t<i>:<metric> or <target>:<metric>"
        )
    kind = task.target_kinds[index]
    m = METRICS.get(base)
    if m is None or kind not in m.kinds:
        raise InputError(
            f"metric {name!r}: target {task.targets[index]!r} (t{index}) is {kind}, so its metrics are "
            f"{', '.join(metric_names(kind))}: give t{index}:<one of them>"
        )
    return f"t{index}:{base}"


def to_cost(metric_name: str, score: float) -> float:
    """Lower-is-better value of ``score``: ``-score`` for greater-is-better metrics, else ``score``.
    NaN stays NaN."""
    return get_metric(metric_name).to_cost(score)


def regret_bounds(metric_name: str, scores: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """``(best, worst)`` observed among ``scores`` in the metric's direction (NaN ignored)."""
    m = get_metric(metric_name)
    arr = np.asarray(scores, dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return math.nan, math.nan
    hi, lo = float(arr.max()), float(arr.min())
    return (hi, lo) if m.greater_is_better else (lo, hi)


def normalised_regret(scores: float | Sequence[float] | np.ndarray, best: float, worst: float) -> np.ndarray:
    """``(best - score) / (best - worst)`` clipped to [0, 1]: 0 = as good as ``best``, 1 = as bad as ``worst``.

    Direction-free: pass ``best``/``worst`` in the metric's own direction (``best < worst`` for
    losses). NaN scores count as the worst (1). When ``best == worst`` every finite score has regret 0.
    """
    s = np.asarray(scores, dtype=float)
    if not (math.isfinite(best) and math.isfinite(worst)):
        raise InputError(f"normalised_regret needs finite best and worst, got best={best}, worst={worst}")
    span = best - worst
    if span == 0:
        out = np.zeros_like(s)
    else:
        out = np.clip((best - s) / span, 0.0, 1.0)
    return np.where(np.isnan(s), 1.0, out)


# --------------------------------------------------------------------------------------------
# label handling


def _label_key(v: Any) -> str | None:
    """A type-insensitive key of a label: 1, 1.0, '1', True -> '1'; missing -> None."""
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, bool | np.bool_):
        return "1" if v else "0"
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        if math.isnan(v):
            return None
        if math.isinf(v):
            return str(v)
        return str(int(v)) if float(v).is_integer() else repr(float(v))
    if isinstance(v, str):
        s = v.strip()
        try:
            f = float(s)
        except ValueError:
            return s
        if math.isfinite(f) and f.is_integer() and re.fullmatch(r"[+-]?\d+(\.0*)?", s):
            return str(int(f))
        return s
    return str(v)


def _keys(values: Any) -> np.ndarray:
    """Label keys of an array-like (object array; None where missing)."""
    arr = values.to_numpy(dtype=object) if isinstance(values, pd.Series) else np.asarray(values, dtype=object)
    arr = arr.ravel()
    if arr.size == 0:
        return np.empty(0, dtype=object)
    codes, uniques = pd.factorize(arr, use_na_sentinel=True)
    table = np.array([*(_label_key(u) for u in uniques), None], dtype=object)
    return table[codes]


def _sort_labels(keys: Iterable[str]) -> list[str]:
    def order(k: str) -> tuple[int, float, str]:
        try:
            return (0, float(k), k)
        except ValueError:
            return (1, 0.0, k)

    return sorted(set(keys), key=order)


@dataclass
class _ClassTarget:
    """One classification target, with y and predictions as indices into ``labels``."""

    labels: list[str]
    y: np.ndarray  # int indices, rows with missing truth removed
    pred: np.ndarray  # int indices, -1 = missing/unknown prediction
    proba: np.ndarray  # (n, len(labels)) aligned probabilities (may contain NaN)
    pred_ok: bool
    proba_ok: bool

    @property
    def present(self) -> np.ndarray:
        return np.unique(self.y)


@dataclass
class _RegTarget:
    y: np.ndarray
    pred: np.ndarray
    ok: bool


def _prep_class(y_true: pd.Series, values: Any, proba: Any, classes: Any, multilabel: bool) -> _ClassTarget:
    y_keys = _keys(y_true)
    v_keys = _keys(values)
    if len(v_keys) != len(y_keys):
        raise InputError(f"{len(v_keys)} predicted rows for {len(y_keys)} true rows; predict every row")
    c_keys: list[str | None] = [] if classes is None else list(_keys(classes))
    label_set: set[str] = {k for k in y_keys if k is not None}
    if isinstance(y_true.dtype, pd.CategoricalDtype):
        label_set |= {k for k in _keys(np.asarray(y_true.cat.categories)) if k is not None}
    label_set |= {k for k in c_keys if k is not None}
    if multilabel:
        label_set |= {"0", "1"}
    labels = _sort_labels(label_set)
    if multilabel and labels != ["0", "1"]:
        raise InputError(
            f"multilabel target {y_true.name!r} has labels {labels}; multilabel targets must be 0/1"
        )
    index = {k: i for i, k in enumerate(labels)}
    keep = np.array([k is not None for k in y_keys], dtype=bool)
    y_idx = np.array([index[k] for k in y_keys[keep]], dtype=np.int64)
    pred_idx = np.array([index.get(k, -1) if k is not None else -1 for k in v_keys[keep]], dtype=np.int64)
    pred_ok = bool(np.all(pred_idx >= 0)) and len(pred_idx) > 0
    n, L = int(keep.sum()), len(labels)
    aligned = np.zeros((n, L), dtype=np.float64)
    if proba is not None and classes is not None:
        P = np.asarray(proba, dtype=np.float64)
        if P.ndim == 1 and len(c_keys) == 2:
            P = np.column_stack([1.0 - P, P])
        if P.ndim != 2 or P.shape[0] != len(y_keys) or P.shape[1] != len(c_keys):
            raise InputError(
                f"probabilities of shape {P.shape} do not match {len(y_keys)} rows x {len(c_keys)} classes; "
                "give one column per entry of Prediction.classes"
            )
        P = P[keep]
        for j, k in enumerate(c_keys):
            if k is not None:
                aligned[:, index[k]] += P[:, j]
        proba_ok = bool(np.all(np.isfinite(aligned)))
    else:  # no probabilities: one-hot of the predicted labels
        ok_rows = pred_idx >= 0
        aligned[np.flatnonzero(ok_rows), pred_idx[ok_rows]] = 1.0
        if not pred_ok:
            aligned[~ok_rows] = np.nan
        proba_ok = pred_ok
    return _ClassTarget(labels, y_idx, pred_idx, aligned, pred_ok, proba_ok)


def _prep_reg(y_true: pd.Series, values: Any) -> _RegTarget:
    y = pd.to_numeric(y_true, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    try:
        p = np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        p = np.full(len(y), np.nan)
    if len(p) != len(y):
        raise InputError(f"{len(p)} predicted rows for {len(y)} true rows; predict every row")
    keep = ~np.isnan(y)
    y, p = y[keep], p[keep]
    return _RegTarget(y, p, bool(np.all(np.isfinite(p))) and len(p) > 0)


# --------------------------------------------------------------------------------------------
# single-target metric functions (NaN when undefined)


def binary_auc_rows(y01: np.ndarray, S: np.ndarray) -> np.ndarray:
    """ROC AUC of each row of scores ``S`` (rows x samples) against the 0/1 labels ``y01``, as the
    Mann-Whitney statistic (ties count 1/2); NaN for every row when one class is absent."""
    pos = np.asarray(y01).astype(bool)
    n_pos = int(pos.sum())
    n_neg = len(pos) - n_pos
    if n_pos == 0 or n_neg == 0:
        return np.full(len(S), math.nan)
    ranks = rankdata(S, method="average", axis=1)
    return np.asarray((ranks[:, pos].sum(axis=1) - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg), dtype=np.float64)


def _binary_auc(y01: np.ndarray, s: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic (ties count 1/2): equal to scikit-learn's
    ``roc_auc_score`` and ~10x faster on large data."""
    s = np.asarray(s, dtype=np.float64)
    if not np.all(np.isfinite(s)):
        return math.nan
    return float(binary_auc_rows(y01, s[None, :])[0])


def _c_log_loss(t: _ClassTarget) -> float:
    if not t.proba_ok or len(t.y) == 0:
        return math.nan
    P = t.proba.copy()
    sums = P.sum(axis=1, keepdims=True)
    off = np.abs(sums[:, 0] - 1.0) > math.sqrt(PROBA_EPS)
    if off.any():  # columns for classes the model never saw are 0: renormalise those rows
        P[off] = np.where(sums[off] > 0, P[off] / np.where(sums[off] > 0, sums[off], 1.0), 1.0 / P.shape[1])
    P = np.clip(P, PROBA_EPS, 1.0 - PROBA_EPS)
    return float(-np.mean(np.log(P[np.arange(len(t.y)), t.y])))


def _c_accuracy(t: _ClassTarget) -> float:
    return float(np.mean(t.pred == t.y)) if t.pred_ok else math.nan


def _c_balanced_accuracy(t: _ClassTarget) -> float:
    if not t.pred_ok:
        return math.nan
    recalls = [float(np.mean(t.pred[t.y == c] == c)) for c in t.present]
    return float(np.mean(recalls))


def _positive(t: _ClassTarget) -> int:
    return len(t.labels) - 1


def _c_roc_auc(t: _ClassTarget) -> float:
    if not t.proba_ok or len(t.labels) < 2:
        return math.nan
    pos = _positive(t)
    return _binary_auc((t.y == pos).astype(int), t.proba[:, pos])


def _c_f1(t: _ClassTarget) -> float:
    if not t.pred_ok:
        return math.nan
    pos = _positive(t)
    return float(skm.f1_score(t.y == pos, t.pred == pos, zero_division=0.0))


def _c_f1_macro(t: _ClassTarget) -> float:
    if not t.pred_ok:
        return math.nan
    return float(skm.f1_score(t.y, t.pred, average="macro", zero_division=0.0))


def _c_roc_auc_ovr(t: _ClassTarget) -> float:
    if not t.proba_ok:
        return math.nan
    present = t.present
    if len(present) < 2:
        return math.nan
    return float(np.mean([_binary_auc((t.y == c).astype(int), t.proba[:, c]) for c in present]))


def _r_rmse(t: _RegTarget) -> float:
    return float(np.sqrt(np.mean((t.y - t.pred) ** 2))) if t.ok else math.nan


def _r_mae(t: _RegTarget) -> float:
    return float(np.mean(np.abs(t.y - t.pred))) if t.ok else math.nan


def _r_r2(t: _RegTarget) -> float:
    if not t.ok or len(t.y) < 2:
        return math.nan
    return float(skm.r2_score(t.y, t.pred))


_CLASS_FUNCS: dict[str, Callable[[_ClassTarget], float]] = {
    "roc_auc": _c_roc_auc,
    "log_loss": _c_log_loss,
    "accuracy": _c_accuracy,
    "balanced_accuracy": _c_balanced_accuracy,
    "f1": _c_f1,
    "roc_auc_ovr": _c_roc_auc_ovr,
    "f1_macro": _c_f1_macro,
}
_REG_FUNCS: dict[str, Callable[[_RegTarget], float]] = {"rmse": _r_rmse, "mae": _r_mae, "r2": _r_r2}


def _nanmean(vals: Sequence[float]) -> float:
    arr = np.asarray(vals, dtype=float)
    if arr.size == 0 or np.all(np.isnan(arr)):
        return math.nan
    return float(np.nanmean(arr))


def _mean_or_nan(vals: Sequence[float]) -> float:
    """Mean that is NaN as soon as one entry is NaN (used where every target must be scored)."""
    arr = np.asarray(vals, dtype=float)
    return float(arr.mean()) if arr.size and not np.any(np.isnan(arr)) else math.nan


# --------------------------------------------------------------------------------------------
# multi-output metric functions


def _multilabel(targets: list[_ClassTarget]) -> dict[str, Callable[[], float]]:
    n = len(targets[0].y) if targets else 0
    same_rows = all(len(t.y) == n for t in targets)
    pred_ok = all(t.pred_ok for t in targets) and same_rows

    def ind() -> tuple[np.ndarray, np.ndarray]:
        Y = np.column_stack([t.y == 1 for t in targets]).astype(int)
        P = np.column_stack([t.pred == 1 for t in targets]).astype(int)
        return Y, P

    def f1(avg: str) -> float:
        if not pred_ok:
            return math.nan
        Y, P = ind()
        return float(skm.f1_score(Y, P, average=avg, zero_division=0.0))

    def hamming() -> float:
        if not pred_ok:
            return math.nan
        Y, P = ind()
        return float(np.mean(Y != P))

    def subset() -> float:
        if not pred_ok:
            return math.nan
        Y, P = ind()
        return float(np.mean(np.all(Y == P, axis=1)))

    def auc() -> float:
        if not all(t.proba_ok for t in targets):
            return math.nan
        return _nanmean([_binary_auc((t.y == 1).astype(int), t.proba[:, 1]) for t in targets])

    return {
        "roc_auc_macro": auc,
        "f1_micro": lambda: f1("micro"),
        "f1_macro": lambda: f1("macro"),
        "hamming_loss": hamming,
        "subset_accuracy": subset,
        "log_loss_mean": lambda: _mean_or_nan([_c_log_loss(t) for t in targets]),
    }


def _prepare(task: Task, y_true: pd.DataFrame, pred: Prediction) -> list[_ClassTarget | _RegTarget]:
    if not isinstance(pred, Prediction):
        raise InputError(
            f"expected a Prediction, got {type(pred).__name__}; models must return predict_task(X)"
        )
    if isinstance(y_true, pd.Series):
        y_true = y_true.to_frame()
    if y_true.shape[1] != task.n_targets or pred.n_targets != task.n_targets:
        raise InputError(
            f"task has {task.n_targets} target(s) but y_true has {y_true.shape[1]} column(s) and the "
            f"prediction {pred.n_targets}; give one column / prediction per target"
        )
    out: list[_ClassTarget | _RegTarget] = []
    for i, tk in enumerate(task.target_kinds):
        col = y_true.iloc[:, i]
        if tk is R:
            out.append(_prep_reg(col, pred.values[i]))
        else:
            out.append(_prep_class(col, pred.values[i], pred.probas[i], pred.classes[i], task.kind is ML))
    return out


def _single_value(name: str, t: _ClassTarget | _RegTarget) -> float:
    if isinstance(t, _RegTarget):
        return _REG_FUNCS[name](t)
    return _CLASS_FUNCS[name](t)


def _metric_thunks(task: Task, prepared: list[_ClassTarget | _RegTarget]) -> dict[str, Callable[[], float]]:
    kind = task.kind
    if kind in SINGLE_KINDS:
        t = prepared[0]
        return {name: partial(_single_value, name, t) for name in metric_names(kind)}
    if kind is ML:
        return _multilabel([t for t in prepared if isinstance(t, _ClassTarget)])
    if kind is MT:
        regs = [t for t in prepared if isinstance(t, _RegTarget)]
        return {
            "r2_mean": lambda: _mean_or_nan([_r_r2(t) for t in regs]),
            "rmse_mean": lambda: _mean_or_nan([_r_rmse(t) for t in regs]),
            "mae_mean": lambda: _mean_or_nan([_r_mae(t) for t in regs]),
        }
    # multitask: the mean of one component per target, plus every single-kind metric per target
    per_target: dict[str, Callable[[], float]] = {}
    components: list[str] = []
    for i, (tk, t) in enumerate(zip(task.target_kinds, prepared, strict=True)):
        for name in metric_names(tk):
            per_target[f"t{i}:{name}"] = partial(_single_value, name, t)
        components.append(f"t{i}:{MULTITASK_COMPONENT[tk]}")
    cache: dict[str, float] = {}

    def get(name: str) -> float:
        if name not in cache:
            cache[name] = per_target[name]()
        return cache[name]

    thunks: dict[str, Callable[[], float]] = {
        "multitask_mean": lambda: _mean_or_nan([get(c) for c in components])
    }
    thunks.update({name: partial(get, name) for name in per_target})
    return thunks


def _safe(fn: Callable[[], float]) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            v = float(fn())
        except (ValueError, ZeroDivisionError, FloatingPointError, IndexError):
            return math.nan
    return v if not math.isinf(v) else math.nan


def compute_metrics(task: Task, y_true: pd.DataFrame, pred: Prediction) -> dict[str, float]:
    """Every metric of ``task.kind`` (plus ``t<i>:<metric>`` entries for multitask), name -> value.

    Values are in each metric's own direction; NaN marks a metric that is undefined here (e.g. NaN
    predictions, a single class in ``y_true``).
    """
    thunks = _metric_thunks(task, _prepare(task, y_true, pred))
    return {name: _safe(fn) for name, fn in thunks.items()}


def score(task: Task, y_true: pd.DataFrame, pred: Prediction) -> float:
    """The value of the task's own metric (``task.metric``)."""
    check_metric(task.kind, task.metric)
    match = _PER_TARGET.match(task.metric)
    if match and int(match.group(1)) >= task.n_targets:
        raise InputError(
            f"metric {task.metric!r} names target {match.group(1)} but the task has {task.n_targets} targets"
        )
    thunks = _metric_thunks(task, _prepare(task, y_true, pred))
    if task.metric not in thunks:
        raise InputError(
            f"metric {task.metric!r} is not defined for target kinds {[str(k) for k in task.target_kinds]}; "
            f"choose one of: {', '.join(thunks)}"
        )
    return _safe(thunks[task.metric])
