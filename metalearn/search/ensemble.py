"""Post-hoc ensemble selection over a search's out-of-fold predictions (Caruana et al. 2004).

A search's full-budget trials return their *out-of-fold* (OOF) predictions: each cross-validation
fold's validation predictions put back in row order (for a holdout protocol, the holdout rows and their
positions), see :class:`OutOfFold`. They are kept in memory for the current search only, never in the
KB, and bounded: :class:`OOFPool` holds those of the ``max_size`` best trials.

:func:`select_ensemble` is Caruana's greedy forward selection *with replacement*, as auto-sklearn and
AutoGluon use it: start from the best single pipeline, then ``size - 1`` times add the pipeline (possibly
one already in) whose addition gives the best OOF score of the averaged predictions — class
probabilities for class targets, values for regression targets, per target for multi-output kinds
(a multitask task combines each target on its own). The weights are the pick counts over their total;
the ensemble is the best prefix of the picks, and it is *kept* only when it strictly beats the best
single pipeline's OOF score (scored the same way, on the pooled OOF rows, with the search's metric).
With ``bags`` > 1 the greedy selection runs on that many bootstrap resamples of the OOF rows and the
weights are the mean of theirs (bagged ensemble selection, Caruana et al. 2006): the weights fit less of
the OOF rows' noise. Bagging needs the vectorised scorer of a single target's log loss, ROC AUC, RMSE,
MAE or R² (:class:`_FastScorer`, checked against the metric's own implementation on every candidate);
other metrics and multi-output kinds get one greedy pass.

:class:`EnsembleModel` is the refit ensemble: a task model (``fit``/``predict_task``/``predict``/
``predict_proba``) averaging its members' predictions with the selection's weights; it pickles with
joblib. :func:`build_ensemble` runs the selection after a search, refits the members on all data within
what is left of the search's time budget, and says what it did (the summary's ``ensemble`` block).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from metalearn.data.dataset import Dataset
from metalearn.data.errors import MetaLearnError
from metalearn.data.metrics import PROBA_EPS, binary_auc_rows, get_metric, score
from metalearn.data.numbers import finite_or_none
from metalearn.data.prediction import Prediction, class_index
from metalearn.data.task import Task, TaskKind
from metalearn.search.calibration import finish_prediction

__all__ = [
    "Candidate",
    "EnsembleModel",
    "EnsemblePlan",
    "OOFPool",
    "OutOfFold",
    "Selection",
    "aligned_proba",
    "assemble_oof",
    "build_ensemble",
    "calibration_lines",
    "combine_predictions",
    "ensemble_lines",
    "family_of",
    "model_oof",
    "plan_ensemble",
    "select_ensemble",
    "union_classes",
]

#: iterations of the greedy selection (auto-sklearn: 50, AutoGluon: 25-100)
DEFAULT_SIZE = 25
#: bootstrap resamples of the OOF rows the greedy selection is bagged over. On the ensemble test bed
#: (benchmarks/ensemble_testbed, stop 38: the same searches' pools, test scores of the weights) 10 bags
#: against one pass: 120 s multiclass log loss 0.1303 -> 0.1300 (better on 8 of 12 searches), 30 s
#: multiclass 0.1224 -> 0.1219 (5 of 6), binary ROC AUC 0.9351 -> 0.9353, regression RMSE 0.99578 -> 0.99568
DEFAULT_BAGS = 10
#: out-of-fold predictions kept per search (those of the best trials)
DEFAULT_POOL = 50
_TOL = 1e-12  # "strictly better" ignores float noise below this (relative) margin


# --------------------------------------------------------------------------------------------
# out-of-fold predictions


@dataclass(frozen=True, eq=False)
class OutOfFold:
    """A trial's out-of-fold predictions: ``prediction`` for the rows at positions ``rows`` (sorted) of
    the data the trial evaluated (its subsample when the protocol caps the rows), with their truth ``y``
    (one column per target, index 0..n-1). Class targets always carry probabilities (one-hot of the
    labels when the model gave none) over the classes any fold's model knew. ``source_rows`` are the same
    rows' positions in the searched dataset (``rows`` itself when the trial used every row; None: unknown)."""

    rows: np.ndarray
    prediction: Prediction
    y: pd.DataFrame
    source_rows: np.ndarray | None = None

    @property
    def n_rows(self) -> int:
        return len(self.rows)


def union_classes(class_lists: Sequence[Any]) -> np.ndarray:
    """The classes of several predictions of one target, sorted (as text when their types mix)."""
    arrays = [np.asarray(c) for c in class_lists if c is not None]
    joined = np.concatenate(arrays) if arrays else np.array([])
    try:
        return np.unique(joined)
    except TypeError:  # mixed label types: compared as text
        return np.unique(joined.astype(str))


def aligned_proba(values: Any, proba: Any, classes: Any, union: np.ndarray) -> np.ndarray:
    """``(n, len(union))`` probabilities of one class target over ``union`` (one-hot of ``values`` when
    there are no probabilities)."""
    col = class_index(union)
    vals = np.asarray(values)
    out = np.zeros((len(vals), len(union)), dtype=np.float64)
    if proba is None or classes is None:
        out[np.arange(len(vals)), [col(v) for v in vals]] = 1.0
        return out
    P = np.asarray(proba, dtype=np.float64)
    if P.ndim == 1:
        P = np.column_stack([1.0 - P, P])
    for j, c in enumerate(np.asarray(classes)):
        out[:, col(c)] += P[:, j]
    return out


def _class_outputs(proba: np.ndarray, union: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.where(np.isfinite(proba), np.clip(proba, 0.0, None), 0.0)
    s = p.sum(axis=1, keepdims=True)
    bad = s[:, 0] <= 0
    p[bad] = 1.0 / max(1, p.shape[1])
    s[bad] = 1.0
    p = p / s
    return union[np.argmax(p, axis=1)], p


def assemble_oof(
    task: Task, parts: Sequence[tuple[np.ndarray, Prediction]], y: pd.DataFrame, subsample: np.ndarray | None = None
) -> OutOfFold:
    """The out-of-fold predictions of a trial from its folds' ``(test rows, prediction)``, in row order;
    ``y`` is the truth of every row of the evaluated data, ``subsample`` that data's row positions in the
    searched dataset (None: all of its rows)."""
    rows = np.concatenate([np.asarray(r, dtype=np.int64) for r, _ in parts])
    order = np.argsort(rows, kind="stable")
    values: list[np.ndarray] = []
    probas: list[np.ndarray | None] = []
    classes: list[np.ndarray | None] = []
    for t, kind in enumerate(task.target_kinds):
        if kind is TaskKind.REGRESSION:
            v = np.concatenate([np.asarray(p.values[t], dtype=np.float64) for _, p in parts])
            values.append(v[order])
            probas.append(None)
            classes.append(None)
            continue
        union = union_classes([p.classes[t] if p.classes[t] is not None else p.values[t] for _, p in parts])
        P = np.concatenate([aligned_proba(p.values[t], p.probas[t], p.classes[t], union) for _, p in parts])[order]
        v, P = _class_outputs(P, union)
        values.append(v)
        probas.append(P)
        classes.append(union)
    rows = rows[order]
    source = rows if subsample is None else np.asarray(subsample, dtype=np.int64)[rows]
    return OutOfFold(rows, Prediction(values, probas, classes), y.iloc[rows].reset_index(drop=True), source)


def combine_predictions(task: Task, predictions: Sequence[Prediction], weights: Sequence[float]) -> Prediction:
    """The weighted average of ``predictions``: per target, of the values (regression) or of the class
    probabilities over the union of the classes (labels: their argmax)."""
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    values: list[np.ndarray] = []
    probas: list[np.ndarray | None] = []
    classes: list[np.ndarray | None] = []
    for t, kind in enumerate(task.target_kinds):
        if kind is TaskKind.REGRESSION:
            values.append(sum(wi * np.asarray(p.values[t], dtype=np.float64) for wi, p in zip(w, predictions, strict=True)))
            probas.append(None)
            classes.append(None)
            continue
        union = union_classes([p.classes[t] if p.classes[t] is not None else p.values[t] for p in predictions])
        P = sum(
            wi * aligned_proba(p.values[t], p.probas[t], p.classes[t], union) for wi, p in zip(w, predictions, strict=True)
        )
        v, P = _class_outputs(np.asarray(P), union)
        values.append(v)
        probas.append(P)
        classes.append(union)
    return Prediction(values, probas, classes)


def family_of(values: Mapping[str, Any]) -> str:
    """The model family of a configuration (its ``model`` choice; ``-`` when it has none)."""
    fams = [str(v) for k, v in values.items() if k == "model" or k.endswith(":model") or k == "family"]
    return "+".join(dict.fromkeys(fams)) if fams else "-"


# --------------------------------------------------------------------------------------------
# the pool of candidates


@dataclass(frozen=True, eq=False)
class Candidate:
    """A trial whose out-of-fold predictions were kept: its configuration, score (the search's: mean
    over folds), predictions, and fit time (seconds, all folds) for the refit-time estimate;
    ``refit_seconds`` is that estimate when the search made it (scaled to all rows, see
    :func:`~metalearn.search.deadline.refit_estimate`: a trial on a data subset or one holdout split fits
    far fewer rows than the refit); ``rounds_per_row`` its trial's early-stopped boosting rounds per training
    row, which its refit takes (``EvalResult.rounds_per_row``; None: its refit early-stops)."""

    config_id: str
    values: dict[str, Any]
    score: float
    oof: OutOfFold
    fit_seconds: float = 0.0
    n_folds: int = 1
    refit_seconds: float | None = None
    rounds_per_row: float | None = None


class OOFPool:
    """The out-of-fold predictions of a search's ``max_size`` best full-budget trials (in memory only)."""

    def __init__(self, greater_is_better: bool, max_size: int = DEFAULT_POOL) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be >= 1, got {max_size}")
        self.greater_is_better = greater_is_better
        self.max_size = max_size
        self._items: dict[str, Candidate] = {}
        self._order: dict[str, int] = {}
        self.n_offered = 0

    @classmethod
    def for_task(cls, task: Task, max_size: int = DEFAULT_POOL) -> OOFPool:
        """A pool ranking by ``task``'s metric."""
        return cls(get_metric(task.metric, task.kind).greater_is_better, max_size)

    def _rank(self, c: Candidate) -> tuple[float, int]:
        return (-c.score if self.greater_is_better else c.score, self._order[c.config_id])

    def offer(self, candidate: Candidate) -> None:
        """Keep ``candidate`` if it is among the best ``max_size`` (a configuration once: the first)."""
        if candidate.config_id in self._items or not math.isfinite(candidate.score):
            return
        self.n_offered += 1
        self._order[candidate.config_id] = self.n_offered
        self._items[candidate.config_id] = candidate
        if len(self._items) > self.max_size:
            worst = max(self._items.values(), key=self._rank)
            del self._items[worst.config_id]

    def __contains__(self, config_id: object) -> bool:
        return config_id in self._items

    def __len__(self) -> int:
        return len(self._items)

    def candidates(self) -> list[Candidate]:
        """The kept candidates, best score first."""
        return sorted(self._items.values(), key=self._rank)


# --------------------------------------------------------------------------------------------
# Caruana's greedy selection


@dataclass(frozen=True)
class Selection:
    """The outcome of the greedy selection.

    ``members``/``weights``/``counts``: the chosen configurations (in the order first picked on all
    rows, then by weight), their weights (``counts / sum(counts)`` without bagging; bagged: the mean over
    the bags of each bag's) and pick counts (bagged: summed over the bags); ``score``: the ensemble's
    OOF score on all rows; ``trajectory``: the OOF score after each pick of the pass on all rows;
    ``best_single``/``best_single_id``: the best single candidate's OOF score and id; ``kept``: whether
    the ensemble strictly beats it (with more than one member).
    """

    members: tuple[str, ...]
    weights: tuple[float, ...]
    counts: tuple[int, ...]
    score: float
    best_single: float
    best_single_id: str
    metric: str
    greater_is_better: bool
    kept: bool
    n_candidates: int
    trajectory: tuple[float, ...] = ()

    @property
    def gain(self) -> float:
        """How much better than the best single pipeline the ensemble is (positive = better)."""
        d = self.score - self.best_single
        return d if self.greater_is_better else -d


def _better(a: float, b: float, greater: bool) -> bool:
    """``a`` strictly better than ``b`` (NaN is never better; anything beats NaN)."""
    if math.isnan(a):
        return False
    if math.isnan(b):
        return True
    margin = _TOL * max(1.0, abs(a), abs(b))
    return a > b + margin if greater else a < b - margin


@dataclass
class _Stacked:
    """Every candidate's OOF predictions as arrays aligned over the same classes, for fast averaging."""

    task: Task
    y: pd.DataFrame
    unions: list[np.ndarray | None]
    arrays: list[list[np.ndarray]] = field(default_factory=list)  # [candidate][target]

    def prediction(self, sums: list[np.ndarray], total: float) -> Prediction:
        values: list[np.ndarray] = []
        probas: list[np.ndarray | None] = []
        for s, union in zip(sums, self.unions, strict=True):
            if union is None:
                values.append(s / total)
                probas.append(None)
            else:
                v, p = _class_outputs(s / total, union)
                values.append(v)
                probas.append(p)
        return Prediction(values, probas, list(self.unions))

    def score(self, sums: list[np.ndarray], total: float) -> float:
        try:
            return float(score(self.task, self.y, self.prediction(sums, total)))
        except (MetaLearnError, ValueError):
            return math.nan


def _constant_arrays(st: _Stacked) -> list[np.ndarray]:
    """The stacked form of a constant prediction on ``st``'s rows: each regression target's mean, each
    class target's class frequencies (uniform when a label is outside the candidates' classes)."""
    out: list[np.ndarray] = []
    n = len(st.y)
    for t, union in enumerate(st.unions):
        col = st.y.iloc[:, t]
        if union is None:
            out.append(np.full(n, float(np.nanmean(col.to_numpy(dtype=np.float64)))))
            continue
        try:
            priors = aligned_proba(col.to_numpy(), None, None, union).mean(axis=0)
        except (KeyError, ValueError, IndexError):
            priors = np.full(len(union), np.nan)
        out.append(np.tile(priors, (n, 1)))
    return out


def _stack(task: Task, cands: Sequence[Candidate]) -> _Stacked:
    first = cands[0].oof
    unions: list[np.ndarray | None] = []
    for t, kind in enumerate(task.target_kinds):
        if kind is TaskKind.REGRESSION:
            unions.append(None)
        else:
            unions.append(union_classes([c.oof.prediction.classes[t] for c in cands]))
    st = _Stacked(task, first.y, unions)
    for c in cands:
        pred = c.oof.prediction
        per: list[np.ndarray] = []
        for t, union in enumerate(unions):
            if union is None:
                per.append(np.asarray(pred.values[t], dtype=np.float64))
            else:
                per.append(aligned_proba(pred.values[t], pred.probas[t], pred.classes[t], union))
        st.arrays.append(per)
    return st


class _GenericScorer:
    """The greedy selection's scorer through the metric's own implementation (any task kind and metric):
    a state is the per-target sums of the picked candidates' stacked predictions."""

    def __init__(self, st: _Stacked) -> None:
        self.st = st

    def start(self, i: int) -> list[np.ndarray]:
        return [a.copy() for a in self.st.arrays[i]]

    def add(self, state: list[np.ndarray], i: int) -> list[np.ndarray]:
        return [a + b for a, b in zip(state, self.st.arrays[i], strict=True)]

    def try_each(self, state: list[np.ndarray], total: float, idx: np.ndarray) -> np.ndarray:
        return np.array([self.st.score(self.add(state, int(i)), total) for i in idx], dtype=np.float64)


def _log_loss_rows(Z: np.ndarray, y: np.ndarray) -> np.ndarray:
    return -np.mean(np.log(np.clip(Z, PROBA_EPS, 1.0 - PROBA_EPS)), axis=1)


def _roc_auc_rows(Z: np.ndarray, y: np.ndarray) -> np.ndarray:
    return binary_auc_rows(y > 0.5, Z)


def _rmse_rows(Z: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean((Z - y) ** 2, axis=1))


def _mae_rows(Z: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.mean(np.abs(Z - y), axis=1)


def _r2_rows(Z: np.ndarray, y: np.ndarray) -> np.ndarray:
    sst = float(np.sum((y - y.mean()) ** 2))
    if len(y) < 2 or sst <= 0:
        return np.full(len(Z), math.nan)
    return 1.0 - np.sum((Z - y) ** 2, axis=1) / sst


#: the metrics :class:`_FastScorer` computes on the rows of averaged predictions, and what a candidate's
#: row is for them: its probability of the true class, of one class, or its value
#: (and the relative cost of a row: ROC AUC ranks, ~8x the others on this machine)
_FAST: dict[str, tuple[str, Callable[[np.ndarray, np.ndarray], np.ndarray], float]] = {
    "log_loss": ("true", _log_loss_rows, 1.0),
    "roc_auc": ("one", _roc_auc_rows, 8.0),
    "rmse": ("value", _rmse_rows, 1.0),
    "mae": ("value", _mae_rows, 1.0),
    "r2": ("value", _r2_rows, 1.0),
}
#: the bagging's work cap, in rows scored (candidates x OOF rows x iterations x bags x the metric's relative
#: cost): about 1 s on one core of the 2-core machine; larger pools get fewer bags (fewer than 2: none), so
#: the selection takes about as long as one unbagged pass did through the metric's own implementation
BAG_WORK = 1e8


class _FastScorer:
    """The greedy selection's scorer for a single target's common metrics, vectorised over candidates:
    each candidate is one number per OOF row (``R[i]``), a state their running sum. The average of
    normalised class probabilities is normalised, so the log loss needs only each row's probability of
    its true class, and ROC AUC only one class's probability (either: the AUC of the other class and its
    probability is the same)."""

    def __init__(
        self, R: np.ndarray, y: np.ndarray, fn: Callable[[np.ndarray, np.ndarray], np.ndarray], cost: float = 1.0
    ) -> None:
        self.R, self.y, self.fn, self.cost = R, y, fn, cost

    @classmethod
    def build(cls, st: _Stacked, metric: str) -> _FastScorer | None:
        """The scorer of ``st``'s candidates, or None when ``metric`` or the task is not one it covers."""
        if len(st.unions) != 1 or metric not in _FAST or st.y.shape[1] != 1 or not st.arrays:
            return None
        what, fn, cost = _FAST[metric]
        union = st.unions[0]
        col = st.y.iloc[:, 0]
        if col.isna().any() or (union is None) != (what == "value"):
            return None
        if union is None:
            y = col.to_numpy(dtype=np.float64)
            return cls(np.stack([a[0] for a in st.arrays]), y, fn, cost)
        try:  # the true labels' columns (a label outside the candidates' classes: the generic scorer)
            onehot = aligned_proba(col.to_numpy(), None, None, union)
        except (KeyError, ValueError, IndexError):
            return None
        yi = np.argmax(onehot, axis=1)
        if what == "true":
            rows = np.arange(len(yi))
            return cls(np.stack([a[0][rows, yi] for a in st.arrays]), yi.astype(np.float64), fn, cost)
        if len(union) != 2:
            return None
        return cls(np.stack([a[0][:, 1] for a in st.arrays]), (yi == 1).astype(np.float64), fn, cost)

    def resample(self, rows: np.ndarray) -> _FastScorer:
        return _FastScorer(self.R[:, rows], self.y[rows], self.fn, self.cost)

    def bags_within(self, bags: int, n_candidates: int, size: int) -> int:
        """How many of ``bags`` fit in :data:`BAG_WORK`."""
        per_bag = self.cost * n_candidates * self.R.shape[1] * max(1, size - 1)
        return min(bags, int(BAG_WORK // max(per_bag, 1.0)))

    def singles(self, idx: np.ndarray) -> np.ndarray:
        return self.fn(self.R[idx], self.y)

    def weighted(self, w: np.ndarray) -> float:
        """The score of the candidates' average with weights ``w`` (one per candidate, summing to 1)."""
        return float(self.fn((w @ self.R)[None, :], self.y)[0])

    def start(self, i: int) -> np.ndarray:
        return self.R[i].copy()

    def add(self, state: np.ndarray, i: int) -> np.ndarray:
        return state + self.R[i]

    def try_each(self, state: np.ndarray, total: float, idx: np.ndarray) -> np.ndarray:
        return self.fn((state[None, :] + self.R[idx]) / total, self.y)


def _first_best(scores: np.ndarray, idx: Sequence[int], greater: bool) -> tuple[int, float]:
    """The first of ``idx`` with the strictly best of ``scores`` (``-1, nan`` when all are NaN)."""
    choice, choice_score = -1, math.nan
    for i, s in zip(idx, scores, strict=True):
        if _better(float(s), choice_score, greater):
            choice, choice_score = int(i), float(s)
    return choice, choice_score


def _greedy(
    scorer: _GenericScorer | _FastScorer, ok: list[int], best: int, best_single: float, size: int, greater: bool
) -> tuple[list[int], float, list[float]]:
    """Caruana's greedy forward selection with replacement from ``best`` over ``ok``: the best prefix of
    the picks, its score, and the score after each pick."""
    idx = np.asarray(ok, dtype=np.int64)
    picks = [best]
    state: Any = scorer.start(best)
    trajectory = [best_single]
    best_len, best_score = 1, best_single
    for _ in range(size - 1):
        choice, choice_score = _first_best(scorer.try_each(state, len(picks) + 1.0, idx), ok, greater)
        if choice < 0:
            break
        picks.append(choice)
        state = scorer.add(state, choice)
        trajectory.append(choice_score)
        if _better(choice_score, best_score, greater):
            best_len, best_score = len(picks), choice_score
    return picks[:best_len], best_score, trajectory


def _fast_scorer(st: _Stacked, metric: str, singles: Sequence[float], ok: list[int]) -> _FastScorer | None:
    """:meth:`_FastScorer.build`, kept only when it gives every candidate the score the metric's own
    implementation gives it."""
    fast = _FastScorer.build(st, metric)
    if fast is None:
        return None
    mine = fast.singles(np.asarray(ok, dtype=np.int64))
    theirs = np.asarray([singles[i] for i in ok], dtype=np.float64)
    return fast if np.allclose(mine, theirs, rtol=1e-9, atol=1e-12) else None


def select_ensemble(
    task: Task, candidates: Sequence[Candidate], size: int = DEFAULT_SIZE, bags: int = DEFAULT_BAGS, seed: int = 0
) -> Selection | None:
    """Caruana's greedy ensemble selection with replacement over ``candidates`` (see the module docstring),
    bagged over ``bags`` bootstrap resamples of the OOF rows (drawn with ``seed``) where the metric allows
    and :data:`BAG_WORK` has room for at least 2.

    Only candidates evaluated on the same rows as the first (best) one take part. None without a
    candidate that scores on its OOF predictions.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    if bags < 1:
        raise ValueError(f"bags must be >= 1, got {bags}")
    if not candidates:
        return None
    metric = get_metric(task.metric, task.kind)
    greater = metric.greater_is_better
    rows = candidates[0].oof.rows
    same = [c for c in candidates if c.oof.n_rows == len(rows) and np.array_equal(c.oof.rows, rows)]
    st = _stack(task, same)
    singles = [st.score(arrs, 1.0) for arrs in st.arrays]
    ok = [i for i, s in enumerate(singles) if not math.isnan(s)]
    if not ok:
        return None
    # the best single candidate on its OOF predictions (ties: the better search score, i.e. listed first)
    best, _ = _first_best(np.asarray([singles[i] for i in ok]), ok, greater)
    # only candidates better than a constant prediction add to the ensemble (auto-sklearn's ensemble builder
    # leaves out those no better than its dummy model): at 30 s on coil2000 an SVM scoring ROC AUC 0.42 out
    # of fold took 84 % of the weight, fitting the noise of a 1,650-row holdout
    baseline = st.score(_constant_arrays(st), 1.0)
    ok = [i for i in ok if i == best or math.isnan(baseline) or _better(singles[i], baseline, greater)]
    fast = _fast_scorer(st, metric.name, singles, ok)
    picks, best_score, trajectory = _greedy(fast or _GenericScorer(st), ok, best, singles[best], size, greater)
    weights = np.bincount(picks, minlength=len(same)).astype(np.float64)
    counts = weights.copy()
    if fast is not None and len(ok) > 1 and (bags := fast.bags_within(bags, len(ok), size)) > 1:
        rng = np.random.default_rng(seed)
        n = fast.R.shape[1]
        bagged, bag_counts = np.zeros(len(same)), np.zeros(len(same))
        for _ in range(bags):
            sub = fast.resample(np.asarray(rng.integers(0, n, size=n), dtype=np.int64))
            b, b_score = _first_best(sub.singles(np.asarray(ok, dtype=np.int64)), ok, greater)
            if b < 0:  # nothing scores on this resample (one class only): it has no say
                continue
            b_picks = _greedy(sub, ok, b, b_score, size, greater)[0]
            b_counts = np.bincount(b_picks, minlength=len(same))
            bagged += b_counts / len(b_picks)
            bag_counts += b_counts
        if bagged.sum() > 0:
            weights, counts = bagged, bag_counts
            best_score = fast.weighted(weights / weights.sum())
    # members in the order first picked on all rows, then by weight
    order = list(dict.fromkeys(picks))
    later = [int(i) for i in np.flatnonzero(weights) if int(i) not in order]
    order = [i for i in order if weights[i] > 0] + sorted(later, key=lambda i: -weights[i])
    w = np.array([weights[i] for i in order])
    return Selection(
        members=tuple(same[i].config_id for i in order),
        weights=tuple(float(x) for x in w / w.sum()),
        counts=tuple(int(counts[i]) for i in order),
        score=best_score,
        best_single=singles[best],
        best_single_id=same[best].config_id,
        metric=metric.name,
        greater_is_better=greater,
        kept=len(order) > 1 and _better(best_score, singles[best], greater),
        n_candidates=len(ok),
        trajectory=tuple(trajectory),
    )


# --------------------------------------------------------------------------------------------
# the refit ensemble


def ensemble_classes(task: Task, members: Sequence[Any]) -> np.ndarray | list[np.ndarray | None]:
    """``classes_`` of an ensemble of ``members`` for ``task`` (:class:`EnsembleModel`, its ONNX variant): a class
    target's are the union of its members' (:func:`combine_predictions`), shaped as a single pipeline's
    (:func:`~metalearn.pipelines.models.task_models.classes_of`); AttributeError for a regression task."""
    from metalearn.pipelines.models.task_models import classes_of, target_classes

    kinds = task.target_kinds
    per_member = [target_classes(m) for m in members] if any(k is not TaskKind.REGRESSION for k in kinds) else []
    return classes_of([None if k is TaskKind.REGRESSION else union_classes([c[t] for c in per_member])
                       for t, k in enumerate(kinds)])


class EnsembleModel:
    """A weighted average of fitted task models (see :func:`combine_predictions`), itself a task model:
    ``fit`` refits every member, ``predict_task`` combines their predictions; ``predict``, ``predict_proba`` and
    ``classes_`` as the single-pipeline models. ``config_ids``/``weights`` say what it holds;
    ``temperature`` (1.0: none) and ``biases`` (a single class target's class biases, None: none) scale its class
    probabilities, ``threshold`` (None: none) is the decision
    threshold of a binary target's labels (or of every label of a multi-label model) and ``class_weights`` (None: none) weight a multiclass target's
    probabilities for its labels (:mod:`metalearn.search.calibration`; a calibrated single pipeline is an
    ensemble of one member)."""

    def __init__(
        self,
        task: Task,
        members: Sequence[Any],
        weights: Sequence[float],
        config_ids: Sequence[str] = (),
        temperature: float = 1.0,
        threshold: float | None = None,
        class_weights: Sequence[float] | None = None,
        biases: Sequence[float] | None = None,
    ) -> None:
        if len(members) != len(weights) or not members:
            raise ValueError("an ensemble needs one weight per member and at least one member")
        if config_ids and len(config_ids) != len(members):
            raise ValueError("give one config id per member")
        w = np.asarray(weights, dtype=np.float64)
        if not np.all(w > 0):
            raise ValueError(f"ensemble weights must be positive, got {list(weights)}")
        self.task = task
        self.members = list(members)
        self.weights = tuple(float(x) for x in w / w.sum())
        self.config_ids = tuple(config_ids)
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"the temperature must be a positive number, got {temperature!r}")
        self.temperature = float(temperature)
        if threshold is not None and not 0.0 < threshold < 1.0:
            raise ValueError(f"the decision threshold must be between 0 and 1, got {threshold!r}")
        self.threshold = None if threshold is None else float(threshold)
        if class_weights is not None and not all(math.isfinite(w) and w > 0 for w in class_weights):
            raise ValueError(f"class weights must be positive numbers, got {list(class_weights)}")
        self.class_weights = None if class_weights is None else tuple(float(w) for w in class_weights)
        if biases is not None and not all(math.isfinite(b) for b in biases):
            raise ValueError(f"class biases must be finite numbers, got {list(biases)}")
        self.biases = None if biases is None else tuple(float(b) for b in biases)

    @property
    def constant_targets_(self) -> list[str]:
        """Targets every member predicts as a constant (constant in the training data)."""
        sets = [set(getattr(m, "constant_targets_", None) or []) for m in self.members]
        common = set.intersection(*sets) if sets else set()
        return [t for t in self.task.targets if t in common]

    @property
    def classes_(self) -> np.ndarray | list[np.ndarray | None]:
        """The classes in the order of ``predict_proba``'s columns, as a single pipeline's
        (:func:`~metalearn.pipelines.models.task_models.classes_of`): a class target's are the union of its members'
        (:func:`combine_predictions`); a list per target for a multi-output task (None for a regression target);
        no attribute for a regression or multi-target regression ensemble."""
        return ensemble_classes(self.task, self.members)

    def fit(self, X: pd.DataFrame, y: pd.DataFrame) -> EnsembleModel:
        for m in self.members:
            m.fit(X, y)
        return self

    def predict_task(self, X: pd.DataFrame) -> Prediction:
        pred = combine_predictions(self.task, [m.predict_task(X) for m in self.members], self.weights)
        # (artifacts of earlier releases have no temperature / threshold / biases)
        return finish_prediction(pred, getattr(self, "temperature", 1.0), getattr(self, "threshold", None),
                                 getattr(self, "class_weights", None), getattr(self, "biases", None))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Predicted values, one column per target (a 1-d array for a single target)."""
        pred = self.predict_task(X)
        return pred.values[0] if pred.n_targets == 1 else np.column_stack(pred.values)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray | list[np.ndarray | None]:
        """Class probabilities (columns in the order of the classes): an array for one class target, a
        list per target (None for regression targets) otherwise."""
        pred = self.predict_task(X)
        if pred.n_targets == 1:
            if pred.probas[0] is None:
                raise AttributeError("predict_proba needs a class target; this ensemble predicts a regression")
            return pred.probas[0]
        return list(pred.probas)

    def __repr__(self) -> str:
        parts = ", ".join(f"{c or type(m).__name__}:{w:.2f}" for c, m, w in
                          zip(self.config_ids or ("",) * len(self.members), self.members, self.weights, strict=True))
        t, d, w = getattr(self, "temperature", 1.0), getattr(self, "threshold", None), getattr(self, "class_weights", None)
        return (f"EnsembleModel({parts}" + (f", temperature={t:.3g}" if t != 1.0 else "")
                + (f", threshold={d:.2f}" if d is not None else "")
                + (f", class_weights=({', '.join(f'{x:.3g}' for x in w)})" if w is not None else "")
                + (f", biases=({', '.join(f'{x:.3g}' for x in b)})" if (b := getattr(self, "biases", None)) else "")
                + ")")


# --------------------------------------------------------------------------------------------
# after a search


def _members_that_fit(
    sel: Selection, by_id: Mapping[str, Candidate], best_config_id: str, left: float,
    cost: Callable[[Candidate], float] | None = None,
) -> list[str]:
    """The best pipeline (already refit) and the other members of ``sel``, by decreasing weight, whose
    estimated refits (``cost``: by default :func:`_refit_estimate`) fit in ``left`` seconds together."""
    cost = cost or _refit_estimate
    chosen = [best_config_id]
    for cid, _ in sorted(zip(sel.members, sel.weights, strict=True), key=lambda m: -m[1]):
        if cid != best_config_id and (need := cost(by_id[cid])) <= left:
            chosen.append(cid)
            left -= need
    return chosen


def _fitting_selection(
    task: Task, sel: Selection, by_id: Mapping[str, Candidate], best_config_id: str, left: float, size: int,
    cost: Callable[[Candidate], float] | None = None,
) -> tuple[Selection, str] | None:
    """:func:`select_ensemble` again among the best pipeline and the members of ``sel`` whose refits fit in
    ``left`` seconds (:func:`_members_that_fit`), with the note that says so; None when every member fits,
    or when fewer than two pipelines do or their ensemble is not kept."""
    fit = _members_that_fit(sel, by_id, best_config_id, left, cost)
    n_fit = len(set(fit) & set(sel.members))  # (the best pipeline may weigh nothing in a bagged selection)
    if n_fit == len(sel.members) or len(fit) < 2:
        return None
    smaller = select_ensemble(task, [by_id[cid] for cid in fit], size=size)
    if smaller is None or not smaller.kept:
        return None
    return smaller, f"{len(sel.members)} members do not all fit in the time left: selected again among the {n_fit} that do"


#: seconds writing a model file (``optimize --out``, a registry version: ``metalearn.pipelines.artifacts``, forests
#: packed) takes per member pipeline, per tree of a random / extra-trees forest and per node of those trees. Least
#: squares over the final models of 30 s searches on the 6 datasets of ``benchmarks/time_budget.py``
#: (``benchmarks/model_files.py``, stop 48: 3-27 members, up to 5,247 trees and 3.8 million nodes, written in
#: 0.04-0.78 s) gave 0.0166 s, 0.062 ms and 0.16 us, the largest write 1.36 x its fit: these are about 1.5 x that.
#: The per-node cost doubled in stop 55: a job's first write of a 100-tree forest of 4.2-5.9 million nodes right
#: after its refit took 2.2-3.4 s (0.52-0.57 us a node; the same file 1.4-1.5 s in a process that wrote nothing
#: before: a fresh process's first large buffers are slow to map on these machines). Stop 58 measured 0.65-0.72 us a
#: node in four such jobs (``metalearn optimize --time-limit 10`` on 34,298 rows of uci_protein, an extra-trees
#: forest of 100 trees and 5.2-5.8 million nodes written in 3.3-4.2 s), and the estimate became 0.75 us: those jobs
#: used 1.17 / 1.14 of their budget with 0.5 us and 1.00 / 1.06 with 0.75 us
WRITE_SECONDS_PER_MEMBER = 0.025
WRITE_SECONDS_PER_TREE = 0.0001
WRITE_SECONDS_PER_NODE = 0.00000075
#: the share of distinct rows in a bootstrap sample (1 - 1/e): a tree's leaves are at most those rows
BOOTSTRAP_DISTINCT = 0.632


def tree_nodes_bound(values: Mapping[str, Any], n_rows: int) -> float:
    """At most how many nodes a tree of the random / extra-trees forest ``values`` fit on ``n_rows`` rows has:
    a binary tree of ``L`` leaves has ``2 L - 1`` nodes, and a leaf holds at least ``min_samples_leaf`` rows and
    one distinct row (a bootstrap sample draws about 63 % of them); 0 for another family."""
    family = str(values.get("model"))
    if family not in ("rf", "et"):
        return 0.0
    distinct = n_rows * (BOOTSTRAP_DISTINCT if values.get(f"{family}:bootstrap") == "true" else 1.0)
    leaves = max(1.0, min(distinct, n_rows / max(1.0, float(values.get(f"{family}:min_samples_leaf") or 1))))
    return 2.0 * leaves - 1.0


def models_per_fit(values: Mapping[str, Any], n_targets: int = 1) -> int:
    """How many models of its family a fit of ``values`` makes: one per target under a per-target strategy
    (:data:`~metalearn.pipelines.models.task_models.PER_TARGET_STRATEGIES`: a classifier chain of random forests
    on 53 labels is 53 forests), else one."""
    from metalearn.pipelines.models.task_models import PER_TARGET_STRATEGIES
    from metalearn.pipelines.spaces.by_kind import STRUCTURE_CHOICES

    strategies = {str(values.get(k)) for k in STRUCTURE_CHOICES if k != "model"}
    return max(1, int(n_targets)) if strategies & PER_TARGET_STRATEGIES else 1


def write_estimate(values: Mapping[str, Any], n_rows: int, grown: bool = True, n_targets: int = 1) -> float:
    """Seconds writing the final fit of ``values`` on ``n_rows`` rows (of ``n_targets`` targets) into a model file
    likely takes, before it is fit (a forest grown to its final size,
    :func:`~metalearn.pipelines.spaces.components.forest_growth_factor`, unless not ``grown``: its configured trees;
    its trees as large as :func:`tree_nodes_bound` allows; a forest per target: :func:`models_per_fit`)."""
    from metalearn.pipelines.spaces.components import forest_growth_factor

    family = str(values.get("model"))
    trees = 0.0
    if family in ("rf", "et"):
        trees = (forest_growth_factor(values) if grown else 1.0) * float(values.get(f"{family}:n_estimators") or 0.0)
        trees *= models_per_fit(values, n_targets)
    return WRITE_SECONDS_PER_MEMBER + trees * (WRITE_SECONDS_PER_TREE + WRITE_SECONDS_PER_NODE * tree_nodes_bound(values, n_rows))


def write_seconds(model: Any) -> float:
    """Seconds writing the fitted pipeline ``model`` into a model file likely takes, from its forests' trees."""
    from metalearn.pipelines.artifacts import forest_size

    trees, nodes = forest_size(model)
    return WRITE_SECONDS_PER_MEMBER + WRITE_SECONDS_PER_TREE * trees + WRITE_SECONDS_PER_NODE * nodes


def _refit_estimate(c: Candidate) -> float:
    """Seconds a refit on all rows likely takes: the search's estimate, else one fold's fit scaled up
    for the larger training part."""
    if c.refit_seconds is not None:
        return c.refit_seconds
    k = max(1, c.n_folds)
    per_fold = c.fit_seconds / k
    return per_fold * (k / (k - 1) if k > 1 else 1.5)


#: a refit member whose cost (``1 - score`` for a greater-is-better metric, else the score) on the rows of
#: its out-of-fold predictions -- rows it was now fit on -- exceeds its out-of-fold cost on them by this
#: factor is not the model the selection weighted: measured at 30 s on ``uci_pumadyn32nm``, a gradient
#: boosting pipeline keeping 58 % of the features by a univariate test scored RMSE 0.34 on its holdout
#: (the relevant features happened to pass on that part) and 1.07 once refit on all rows (they did not),
#: against 0.26 for the best pipeline, and took 28 % of the ensemble's weight
REFIT_CHECK_FACTOR = 1.25
#: out-of-fold rows the check predicts at most (a fixed random subset of them)
REFIT_CHECK_ROWS = 5000


def refit_mismatch(dataset: Dataset, model: Any, c: Candidate) -> str:
    """Why the refit ``model`` of candidate ``c`` is not the pipeline its out-of-fold predictions scored
    ('' when it is, or when it cannot be told): on the OOF rows, which it was fit on, it should score at
    least about as well as out of fold (:data:`REFIT_CHECK_FACTOR`)."""
    rows = c.oof.source_rows
    if rows is None or not len(rows) or int(rows.max()) >= dataset.n_rows:
        return ""
    pick = np.arange(len(rows))
    if len(rows) > REFIT_CHECK_ROWS:
        pick = np.sort(np.random.default_rng(0).choice(len(rows), REFIT_CHECK_ROWS, replace=False))
    task = dataset.task
    metric = get_metric(task.metric)
    y = c.oof.y.iloc[pick].reset_index(drop=True)
    try:
        oof = float(score(task, y, c.oof.prediction.take(pick)))
        fit = float(score(task, y, model.predict_task(dataset.X.iloc[rows[pick]].reset_index(drop=True))))
    except (MetaLearnError, ValueError) as exc:
        return f"it fails to predict the rows it was fit on ({exc})"
    if not (math.isfinite(oof) and math.isfinite(fit)):
        return ""
    # (plus 0.001 of a bounded greater-is-better metric: an out-of-fold ROC AUC of 1.0 allows 0.999)
    slack = 1e-3 if metric.greater_is_better else 1e-9
    if metric.to_loss(fit) > REFIT_CHECK_FACTOR * max(metric.to_loss(oof), 0.0) + slack:
        return f"refit on all rows it scores {task.metric} {fit:.4g} on rows it was fit on, against {oof:.4g} out of fold"
    return ""


@dataclass(frozen=True)
class EnsemblePlan:
    """The ensemble selection a search's pool gives, before any refit (:func:`plan_ensemble`):
    ``selection`` (None: no ensemble can be selected, ``note`` says why) and the candidates by config id."""

    selection: Selection | None
    candidates: Mapping[str, Candidate]
    note: str = ""

    def refit_seconds(self, best_config_id: str | None) -> float:
        """Seconds the refits of the kept ensemble's members other than ``best_config_id`` likely take
        (0.0 when no ensemble is kept)."""
        sel = self.selection
        if sel is None or not sel.kept:
            return 0.0
        return sum(_refit_estimate(self.candidates[cid]) for cid in sel.members if cid != best_config_id)


def plan_ensemble(task: Task, pool: OOFPool, best_config_id: str | None, size: int = DEFAULT_SIZE) -> EnsemblePlan:
    """:func:`select_ensemble` over ``pool``, the search's best pipeline ``best_config_id`` first (the
    other candidates must share its rows); no refit. The search's final fit asks it how much time an
    ensemble's other members will need before it spends spare time on its own model."""
    if best_config_id is None or best_config_id not in pool:
        return EnsemblePlan(None, {}, "the best pipeline has no out-of-fold predictions in this search (resumed "
                            "from the KB, or not evaluated at full budget): no ensemble")
    cands = pool.candidates()
    cands.sort(key=lambda c: c.config_id != best_config_id)
    return _plan_over(task, cands, size)


def _plan_over(task: Task, cands: list[Candidate], size: int) -> EnsemblePlan:
    """:func:`select_ensemble` over ``cands`` (the best pipeline first), as an :class:`EnsemblePlan`."""
    by_id = {c.config_id: c for c in cands}
    if len(cands) < 2:
        return EnsemblePlan(None, by_id, "fewer than 2 pipelines with out-of-fold predictions: no ensemble")
    sel = select_ensemble(task, cands, size=size)
    if sel is None:
        return EnsemblePlan(None, by_id, "no pipeline scores on its out-of-fold predictions: no ensemble")
    return EnsemblePlan(sel, by_id)


def build_ensemble(
    dataset: Dataset,
    space: Any,
    pool: OOFPool,
    best_config_id: str | None,
    best_model: Any,
    *,
    size: int = DEFAULT_SIZE,
    time_left: Callable[[], float] | None = None,
    on_status: Callable[[str], None] | None = None,
    plan: EnsemblePlan | None = None,
    writes: int = 0,
) -> tuple[Any, dict[str, Any]]:
    """The search's model after ensemble selection, and the summary's ``ensemble`` block.

    Runs :func:`select_ensemble` on ``pool`` (or takes ``plan``, :func:`plan_ensemble`'s outcome on the
    same pool); when the ensemble is kept, refits its members on all of
    ``dataset`` (``best_model`` is the search's best pipeline, already refit) and returns an
    :class:`EnsembleModel`, else ``best_model``. ``time_left()`` gives the seconds left of the job's time
    budget (None: no budget): when the members' estimated refit time does not fit in it, or a refit ends
    past it, the ensemble is skipped with a note. With ``writes`` (the model files then written within the same
    budget: ``optimize --out``, a registry version) a member's cost is its refit and its share of the files
    (:func:`write_estimate` each), and the time left holds the files' shares of the best pipeline and of the
    members refit so far (:func:`write_seconds`: from their forests' trees). The block says the members (config id,
    weight, family), the ensemble's and the best single pipeline's OOF scores and the gain.
    """
    from metalearn.pipelines.models.boosting import fit_deadline
    from metalearn.search.evaluation import fit_final

    status = on_status or (lambda _text: None)
    block: dict[str, Any] = {"used": False, "members": [], "score": None, "best_single": None, "gain": None,
                             "size": size, "n_candidates": len(pool), "note": ""}

    def skip(note: str) -> tuple[Any, dict[str, Any]]:
        block["note"] = note
        return best_model, block

    if best_model is None or best_config_id is None:
        return skip("no pipeline was refit")
    plan = plan or plan_ensemble(dataset.task, pool, best_config_id, size)
    if best_config_id in plan.candidates and (broken := refit_mismatch(dataset, best_model, plan.candidates[best_config_id])):
        # the best pipeline's refit is not the model its out-of-fold predictions scored: the next best takes its place
        replaced = _replace_best(dataset, space, pool, plan, best_config_id, broken, size, time_left, on_status, writes)
        if replaced is not None:
            return replaced
        block["best_refit"] = f"the best pipeline {best_config_id} ({family_of(plan.candidates[best_config_id].values)}): {broken}; no other pipeline could take its place"
    if plan.selection is None:
        return skip(plan.note)
    sel, by_id = plan.selection, plan.candidates
    written: list[float] = []  # the files' shares of the pipelines refit so far (with ``writes``)
    if time_left is not None and writes:
        written.append(writes * write_seconds(best_model))
        budget_left = time_left
        time_left = lambda: budget_left() - sum(written)  # noqa: E731 -- the time the refits may still use

    def cost(c: Candidate) -> float:
        """Seconds a member takes: its refit, and its share of the model files written."""
        return _refit_estimate(c) + writes * write_estimate(c.values, dataset.n_rows, n_targets=len(dataset.task.targets))

    def others(sel: Selection) -> list[Candidate]:
        """The members of ``sel`` to refit (all but the best pipeline), heaviest first."""
        weight = dict(zip(sel.members, sel.weights, strict=True))
        return sorted((by_id[cid] for cid in sel.members if cid != best_config_id), key=lambda c: -weight[c.config_id])

    if time_left is not None and sel.kept and (fitting := _fitting_selection(dataset.task, sel, by_id, best_config_id,
                                                                             time_left(), size, cost)):
        # too little time to refit every member: select again among those whose refits fit, heaviest first
        sel, block["note"] = fitting
    _describe(block, sel, by_id)
    if not sel.kept:
        return skip("the ensemble does not beat the best single pipeline out of fold: the single pipeline is kept")
    todo = others(sel)
    if time_left is not None:
        need = sum(cost(c) for c in todo)
        left = time_left()
        if need > left:
            # less time left than when the members were chosen (the selection, the best pipeline's refit past its
            # estimate): select again among those whose refits fit now, as above. All-or-nothing, 5 of 93 searches
            # at 30 s kept one pipeline for want of 0.1-0.3 s (magic: 9.8 s needed, 9.7 s left; 8 s of the budget unused)
            fitting = _fitting_selection(dataset.task, sel, by_id, best_config_id, left, size, cost)
            if fitting is None:
                return skip(f"no time left to refit the ensemble's {len(todo)} other members (about {need:.2g} s "
                            f"needed, {max(left, 0.0):.2g} s left): the single pipeline is kept")
            sel, block["note"] = fitting
            _describe(block, sel, by_id)
            todo = others(sel)
    status(f"refitting the ensemble's {len(sel.members)} members on all data")
    fitted: dict[str, Any] = {best_config_id: best_model}
    dropped: list[str] = []  # members whose refit is not the pipeline the selection weighted
    reason = ""
    for i, c in enumerate(todo):
        # stop before a member whose refit would end past the budget, or once the refits overran it: the
        # members refit so far (heaviest first) may still make an ensemble, selected among them
        if time_left is not None and cost(c) > time_left():
            reason = "too little time left to refit the ensemble's next member"
            break
        try:
            # a member whose boosting is cut by the budget is not the model its OOF predictions scored
            # its boosting refit on all rows only with the time the later members' refits leave
            within = None if time_left is None else time_left() - sum(map(cost, todo[i + 1:]))
            with fit_deadline(None if time_left is None else max(time_left(), 0.0)) as bound:
                member = fit_final(dataset, space, c.values, extra_within=within, rounds_per_row=c.rounds_per_row)
        except MetaLearnError as exc:
            return skip(f"member {c.config_id} failed to refit ({exc}): the single pipeline is kept")
        cut = bound is not None and bound.hit
        if not cut:
            if mismatch := refit_mismatch(dataset, member, c):
                dropped.append(f"member {c.config_id} ({family_of(c.values)}) left out: {mismatch}")
            else:
                fitted[c.config_id] = member
                written.append(writes * write_seconds(member))
        if cut or (time_left is not None and time_left() <= 0 and i + 1 < len(todo)):
            reason = "the time budget ran out while refitting the ensemble"
            break
    if reason or dropped:
        smaller = select_ensemble(dataset.task, [by_id[cid] for cid in fitted], size=size)
        why = "; ".join(([reason] if reason else []) + dropped)
        if smaller is None or not smaller.kept:
            return skip(f"{why}: the single pipeline is kept")
        block["note"] = f"{why}: selected again among the {len(fitted)} members refit"
        sel = smaller
        _describe(block, sel, by_id)
    model = EnsembleModel(dataset.task, [fitted[cid] for cid in sel.members], sel.weights, sel.members)
    block["used"] = True
    return model, block


#: the next-best pipelines (out of fold) tried, one at a time, in place of a best pipeline whose refit fails the check
REPLACEMENT_TRIES = 3


def _replace_best(
    dataset: Dataset,
    space: Any,
    pool: OOFPool,
    plan: EnsemblePlan,
    best_config_id: str,
    broken: str,
    size: int,
    time_left: Callable[[], float] | None,
    on_status: Callable[[str], None] | None,
    writes: int = 0,
) -> tuple[Any, dict[str, Any]] | None:
    """:func:`build_ensemble` with the best pipeline left out, when its refit failed :func:`refit_mismatch`
    (``broken`` says how): the next-best pipelines out of fold are refit one at a time (at most
    :data:`REPLACEMENT_TRIES`, each only when its refit estimate fits the time left) until one passes the
    check; it is the search's model, or the best pipeline of an ensemble selected without the broken one.
    The ensemble block's ``best_refit`` says what happened. None when none passes.
    On krkopt (18 classes) at 30 s a histogram gradient boosting with ``l2_regularization`` 1e-10 scored log loss
    1.13 on a 5,000-row subset's holdout and, refit on all 21,000 rows, 13.8 on the test rows (accuracy 0.42): the
    multinomial hessian vanishes on rows a class is already sure of, and the Newton steps grow without bound."""
    from metalearn.pipelines.models.boosting import fit_deadline
    from metalearn.search.evaluation import fit_final

    others = [c for cid, c in plan.candidates.items() if cid != best_config_id]  # the pool's order: best first
    gone = f"the best pipeline {best_config_id} ({family_of(plan.candidates[best_config_id].values)}) was left out: {broken}"
    passed_over: list[str] = []  # better candidates than the one that took the place, and why not them
    for c in others[:REPLACEMENT_TRIES]:
        if time_left is not None and _refit_estimate(c) > time_left():
            passed_over.append(f"{c.config_id}: its refit would not fit the time left")
            continue
        try:
            with fit_deadline(None if time_left is None else max(time_left(), 0.0)) as bound:
                model = fit_final(dataset, space, c.values, rounds_per_row=c.rounds_per_row)
        except MetaLearnError:
            passed_over.append(f"{c.config_id}: its refit failed")
            continue
        if bound is not None and bound.hit:
            passed_over.append(f"{c.config_id}: its refit was stopped at the time limit")
            continue
        mismatch = refit_mismatch(dataset, model, c)
        if mismatch:
            passed_over.append(f"{c.config_id}: {mismatch}")
            continue
        sub = _plan_over(dataset.task, [c, *(o for o in others if o is not c)], size)
        final, block = build_ensemble(dataset, space, pool, c.config_id, model, size=size, time_left=time_left,
                                      on_status=on_status, plan=sub, writes=writes)
        rank = "the next best" if not passed_over else f"number {len(passed_over) + 2}"
        block["best_refit"] = (
            f"{gone}; {c.config_id} ({family_of(c.values)}), {rank} out of fold, took its place"
            + (f" ({'; '.join(passed_over)})" if passed_over else "")
        )
        block["model_config_id"] = c.config_id
        return final, block
    return None


def model_oof(task: Task, pool: OOFPool, model: Any, best_config_id: str | None) -> tuple[Prediction, pd.DataFrame] | None:
    """The out-of-fold predictions of the search's final ``model`` (an :class:`EnsembleModel`: its
    members' combined with its weights; else the best pipeline's) and their truth; None when a member
    has none in ``pool`` (resumed from the KB, or evaluated on other rows)."""
    if isinstance(model, EnsembleModel):
        ids, weights = list(model.config_ids), list(model.weights)
    elif best_config_id is not None:
        ids, weights = [best_config_id], [1.0]
    else:
        return None
    by_id = {c.config_id: c for c in pool.candidates()}
    if not ids or any(cid not in by_id for cid in ids):
        return None
    first = by_id[ids[0]].oof
    oofs = [by_id[cid].oof for cid in ids]
    if any(not np.array_equal(o.rows, first.rows) for o in oofs):
        return None
    return combine_predictions(task, [o.prediction for o in oofs], weights), first.y


def calibration_lines(block: Mapping[str, Any] | None) -> list[str]:
    """The summary's ``calibration`` block as text lines (the CLI's ``optimize`` output)."""
    if not block:
        return []
    rows = "validation" if block.get("validation") else "out-of-fold"
    return [
        *_calibration_line(block, _scaling, f"{rows} log loss", "probabilities not temperature-scaled"),
        *_calibration_line(block.get("threshold"),
                           lambda b: f"decision threshold {b['threshold']:.2f} (not the most probable class)",
                           rows, "no decision threshold"),
        *_calibration_line(block.get("class_weights"),
                           lambda b: f"class weights ({', '.join(f'{w:.3g}' for w in b['weights'])}: the class "
                                     f"shares to the power -{b['power']:g}) for the labels",
                           rows, "no class weights"),
    ]


def _scaling(block: Mapping[str, Any]) -> str:
    """How the calibration block scales the probabilities: a temperature, class biases or both."""
    parts = [] if block["temperature"] == 1.0 else [f"temperature-scaled (T = {block['temperature']:.3g})"]
    if block.get("biases"):
        parts.append(f"with class biases ({', '.join(f'{x:+.3g}' for x in block['biases'])})")
    return "probabilities " + " ".join(parts)


def _calibration_line(
    block: Mapping[str, Any] | None, used: Callable[[Mapping[str, Any]], str], scores: str, unused: str
) -> list[str]:
    """One part of the ``calibration`` block (a temperature, a threshold, class weights) as a line: what it is
    (``used``) with its ``scores`` before and after, or why it is not used (``unused``: its note; nothing for a
    metric it does not apply to or with ``--no-calibrate``)."""
    if not block:
        return []
    if block.get("used"):
        return [f"{used(block)}: {scores} {block['score_before']:.4g} -> {block['score_after']:.4g} on "
                f"{block['n_rows']} rows"]
    note = str(block.get("note") or "")
    return [] if not note or note.startswith(("not needed", "off")) else [f"{unused}: {note}"]


def _describe(block: dict[str, Any], sel: Selection, by_id: Mapping[str, Candidate]) -> None:
    """The summary's ``ensemble`` block fields of the selection ``sel``."""
    block.update(
        metric=sel.metric,
        score=finite_or_none(sel.score),
        best_single=finite_or_none(sel.best_single),
        best_single_id=sel.best_single_id,
        gain=finite_or_none(sel.gain),
        n_candidates=sel.n_candidates,
        members=[{"config_id": cid, "weight": round(w, 6), "count": n, "family": family_of(by_id[cid].values)}
                 for cid, w, n in zip(sel.members, sel.weights, sel.counts, strict=True)],
    )


def ensemble_lines(block: Mapping[str, Any] | None) -> list[str]:
    """The summary's ``ensemble`` block as text lines (the CLI's ``optimize`` output)."""
    if not block:
        return []

    def num(x: Any) -> str:
        return "-" if x is None else f"{x:.4g}"

    scores = ""
    if block.get("score") is not None:
        gain = block.get("gain")
        sign = "" if gain is None else f", gain {gain:+.4g}"
        scores = (f"out-of-fold {block.get('metric', '')} {num(block['score'])} vs best single "
                  f"{num(block.get('best_single'))}{sign}; both on the trials' pooled out-of-fold "
                  "predictions, not a mean of fold scores")
    members = ", ".join(f"{m['config_id']} ({m['family']}) {m['weight']:.2f}" for m in block.get("members", []))
    first = [str(block["best_refit"])] if block.get("best_refit") else []
    if val := block.get("validation"):  # weights chosen again on rows the search never used (final_validation.py)
        first.append(f"weights chosen again on {val['rows']} validation rows the search's data subset left out: "
                     f"{block.get('metric', '')} {num(val.get('score_searched_weights'))} with the search's "
                     f"weights -> {num(val.get('score'))}")
    if block.get("used"):
        lines = [*first, f"ensemble of {len(block['members'])} pipelines: {scores}" + (f" ({block['note']})" if block.get("note") else "")]
        if members:
            lines.append(f"ensemble members (config_id (family) weight): {members}")
        return lines
    return [*first, f"ensemble not used: {block.get('note', '')}" + (f" ({scores})" if scores else "")]
