"""Fit-time adaptation of a configured estimator to the data it is given.

A configuration is chosen without knowing the data; some hyperparameters only make sense relative to
it (k-NN needs ``k <= n``, a random forest's ``max_features`` exponent needs the number of features,
early stopping on a stratified validation split needs at least two rows per class) and some make a fit
too slow on large data (500 boosting rounds on 18 classes, a 3x256 MLP for 200 epochs, saga on 1000
features). The budget caps MLP epochs, forest trees, boosting rounds, linear-solver iterations and the
rows of kernel SVMs; multi-output strategies that fit one model per output split it between them. :class:`Adaptive`
wraps the estimator and applies these adjustments deterministically from the data's shape, so that a
configuration always fits and stays within a nominal time budget (``budget`` seconds on one core of
the reference machine, estimated by the cost models below; the estimate, not the clock, decides, so
results are reproducible).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone, is_classifier
from sklearn.calibration import CalibratedClassifierCV
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import ElasticNet, LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.svm import SVC, SVR
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from metalearn.runtime.threads import limited

#: Nominal seconds one model fit may take on one core (10k x 50 data stays within ~10-20 s).
DEFAULT_BUDGET = 12.0
#: Upper bound on MLP epochs whatever the budget.
MAX_EPOCHS = 200
#: Lower bounds so that a budget cut never leaves a degenerate model.
MIN_EPOCHS = 2
MIN_TREES = 5
MIN_BOOSTING_ROUNDS = 5
MIN_LINEAR_ITER = 5
MIN_SVM_ROWS = 200
#: A final fit grows a random / extra-trees forest to this many trees (AutoGluon's forests have 300; the
#: search's configurations mostly 100, the default): more trees only lower the variance
FINAL_FOREST_TREES = 300
#: A final fit's extra work runs only when it is expected to end this many times its estimate before its
#: time is up
FINAL_FIT_SAFETY = 1.25

#: The ``time.monotonic()`` by which a final fit's extra work must end (``math.inf``: no limit); None: the
#: fit is not a final fit.
_FINAL_FIT_UNTIL: ContextVar[float | None] = ContextVar("metalearn_final_fit_until", default=None)


@contextmanager
def final_fit(seconds: float | None = None) -> Iterator[None]:
    """Within the block, fits are a search's *final* fits (its model, or an ensemble member's), which may
    spend more time than a trial's fit on what only lowers a model's variance, each step only when it is
    expected (its estimate times :data:`FINAL_FIT_SAFETY`) to end within ``seconds`` of entering the block
    (None: no limit):

    - a LightGBM / XGBoost / CatBoost model that early-stopped on a validation part of its rows is fitted
      again on all of them with the rounds early stopping chose (see
      :class:`~metalearn.pipelines.models.boosting.BoostedTreesClassifier`; ``refit_all_rows_``). Measured
      on the boosted top-1 configurations of 29 held-out corpus datasets on two splits (58 fits): the test
      score 1.8 % better on average, better on 34 and worse on 24. Given the search's trials' rounds
      (:func:`~metalearn.pipelines.models.boosting.final_rounds`) it fits on all rows once, with those;
    - a random / extra-trees forest of fewer than :data:`FINAL_FOREST_TREES` trees grows to that many
      (:class:`Adaptive`; ``forest_grown_``). Measured with the default random-forest and extra-trees
      configurations on the 31 held-out corpus datasets of the peers benchmark on two splits
      (``benchmarks/final_fit_forests.py``, 124 pairs of fits): the test score 1.2 % better on average,
      better on 79 and worse on 32 (regression, multiclass log loss and multi-target R2 better; binary ROC AUC
      unchanged)."""
    until = math.inf if seconds is None else time.monotonic() + max(0.0, float(seconds))
    token = _FINAL_FIT_UNTIL.set(until)
    try:
        yield
    finally:
        _FINAL_FIT_UNTIL.reset(token)


def final_fit_affords(seconds: float) -> bool:
    """Whether a final fit's extra step estimated at ``seconds`` may run now (False outside :func:`final_fit`)."""
    until = _FINAL_FIT_UNTIL.get()
    return until is not None and time.monotonic() + FINAL_FIT_SAFETY * seconds <= until

_FORESTS = (RandomForestClassifier, RandomForestRegressor, ExtraTreesClassifier, ExtraTreesRegressor)
_BOOSTING = (HistGradientBoostingClassifier, HistGradientBoostingRegressor)
_MLPS = (MLPClassifier, MLPRegressor)
_KNNS = (KNeighborsClassifier, KNeighborsRegressor)


def mlp_epoch_seconds(
    n_rows: int, n_inputs: int, hidden: tuple[int, ...], n_outputs: int, batch_size: int
) -> float:
    """Estimated seconds of one Adam epoch of a dense MLP (forward + backward) on the reference core."""
    sizes = [n_inputs, *hidden, max(1, n_outputs)]
    macs = sum(a * b for a, b in itertools.pairwise(sizes))
    bs = max(1, min(batch_size, n_rows))
    efficiency = 1.1e10 * bs / (bs + 64.0)  # small batches use the BLAS poorly
    steps = math.ceil(n_rows / bs)
    return 3.0 * n_rows * macs / efficiency + steps * 3e-4


def mlp_epoch_cap(
    n_rows: int, n_inputs: int, hidden: tuple[int, ...], n_outputs: int, batch_size: int, budget: float
) -> int:
    """The number of epochs that fits in ``budget`` (between MIN_EPOCHS and MAX_EPOCHS)."""
    per_epoch = mlp_epoch_seconds(n_rows, n_inputs, hidden, n_outputs, batch_size)
    return int(min(MAX_EPOCHS, max(MIN_EPOCHS, math.floor(budget / max(per_epoch, 1e-9)))))


def forest_tree_seconds(
    n_rows: int, n_split_features: int, n_outputs: int = 1, classifier: bool = False
) -> float:
    """Estimated seconds to grow one fully grown tree of a random forest / extra-trees (continuous
    features; discrete ones are cheaper). Classification trees grow deeper on noisy labels."""
    per_unit = 5e-8 if classifier else 2.5e-8
    return (
        per_unit * n_rows * math.log2(max(n_rows, 2)) * n_split_features * (1.0 + 0.1 * (n_outputs - 1))
        + 1e-3
    )


#: Seconds of one tree, per gradient-boosting library: ``a * rows * columns * (1 + log2(leaves)) + b *
#: columns * leaves + c`` (histograms over the rows, split finding over the bins of every node, a fixed
#: cost), ``(a, b, c)`` fitted to the measurements of ``benchmarks/round_cost.py`` (one thread, 1,800-30,000
#: rows, 10-1,000 columns, three tree sizes per library; every measurement within 2 x of its fit).
#: scikit-learn's ``HistGradientBoosting*`` (``hgb``) measured as LightGBM does. The model this replaced
#: (``3e-9 * rows * columns * (1 + leaves / 16) + 2.5e-6 * columns * leaves + 2e-3``, times 1.6 for XGBoost
#: and 2 for CatBoost) predicted 2-5 x the measured rounds (up to 27 x for deep XGBoost classification
#: trees), so the nominal per-fit budget cut boosted fits to a third of the rounds it had time for.
TREE_COST = {
    "lightgbm": (5.1e-10, 2.4e-6, 5e-5),
    "hgb": (5.1e-10, 2.4e-6, 5e-5),
    "xgboost": (6.1e-10, 1.9e-6, 5e-5),
    "catboost": (8.4e-10, 2.1e-6, 1.1e-4),
}
#: The estimate's margin over those measurements (made on an idle machine; parallel trials share the
#: memory bandwidth, and a fit also predicts its early-stopping rows every round).
ROUND_COST_MARGIN = 1.5


def boosting_round_seconds(
    n_rows: int,
    n_features: int,
    max_leaf_nodes: int,
    trees_per_round: int,
    min_samples_leaf: float = 20,
    library: str = "hgb",
) -> float:
    """Estimated seconds of one gradient-boosting round of ``library`` (a key of :data:`TREE_COST`):
    ``trees_per_round`` trees of at most ``max_leaf_nodes`` leaves, and no more than the rows allow with
    ``min_samples_leaf`` rows a leaf (:data:`ROUND_COST_MARGIN` included)."""
    a, b, c = TREE_COST[library]
    leaves = max(2, min(int(max_leaf_nodes), int(n_rows // max(2.0, 2.0 * min_samples_leaf))))
    per_tree = a * n_rows * n_features * (1.0 + math.log2(leaves)) + b * n_features * leaves + c
    return ROUND_COST_MARGIN * per_tree * trees_per_round


def hist_boosting_round_seconds(estimator: Any, n_rows: int, n_features: int, y: np.ndarray) -> float:
    """Estimated seconds of one round of a scikit-learn ``HistGradientBoosting*`` ``estimator`` on ``(n_rows,
    n_features)`` data for ``y`` (a tree per class of a multiclass target): :func:`boosting_round_seconds`."""
    k = 1
    if is_classifier(estimator):
        k = np.unique(y).size
        k = 1 if k <= 2 else k
    leaves = estimator.max_leaf_nodes or 31
    return boosting_round_seconds(n_rows, n_features, leaves, k, int(estimator.min_samples_leaf))


def svm_row_cap(n_features: int, n_fits: int, budget: float) -> int:
    """Rows a kernel SVM can train on within ``budget`` (libsvm is roughly quadratic in rows)."""
    return int(max(MIN_SVM_ROWS, math.sqrt(budget / (1e-9 * max(1, n_features) * max(1, n_fits)))))


def stratified_split_feasible(y: np.ndarray, fraction: float) -> bool:
    """Whether a stratified train/validation split with ``fraction`` validation rows is possible."""
    y = np.asarray(y)
    if y.ndim > 1 and y.shape[1] > 1:
        return True  # multi-output: not stratified
    _, counts = np.unique(y.ravel(), return_counts=True)
    n = int(counts.sum())
    n_val = math.ceil(fraction * n)
    return bool(counts.min() >= 2 and n_val >= counts.size and n - n_val >= counts.size)


def subsample_rows(y: np.ndarray, max_rows: int, rng: np.random.Generator, stratify: bool) -> np.ndarray:
    """Sorted indices of about ``max_rows`` rows; when stratified every class keeps its share and at
    least two rows (or all of them if it has fewer)."""
    n = len(y)
    if n <= max_rows:
        return np.arange(n)
    if not stratify or np.asarray(y).ndim > 1:
        return np.sort(rng.choice(n, size=max_rows, replace=False))
    labels, inverse = np.unique(np.asarray(y), return_inverse=True)
    parts = []
    for code in range(labels.size):
        members = np.flatnonzero(inverse == code)
        take = max(2, round(members.size * max_rows / n))
        parts.append(rng.choice(members, size=min(take, members.size), replace=False))
    return np.sort(np.concatenate(parts))


def adapted_params(
    estimator: Any,
    X: np.ndarray,
    y: np.ndarray,
    budget: float,
    max_features_exponent: float | None,
    random_state: int = 0,
) -> dict[str, Any]:
    """The parameter changes that make ``estimator`` fit ``(X, y)`` safely and within ``budget``."""
    n, p = X.shape
    y = np.asarray(y)
    n_outputs = 1 if y.ndim == 1 else y.shape[1]
    params: dict[str, Any] = {}
    if isinstance(estimator, CalibratedClassifierCV):
        _, counts = np.unique(y, return_counts=True)
        folds = int(min(5, counts.min())) if counts.size else 2
        params["cv"] = StratifiedKFold(n_splits=max(2, folds), shuffle=True, random_state=random_state)
    elif isinstance(estimator, LogisticRegression | ElasticNet):
        if isinstance(estimator, LogisticRegression):
            k = np.unique(y).size
            k = 1 if k <= 2 else k
            per_iter = (1e-8 if estimator.solver in ("saga", "sag") else 1e-9) * n * p * k
        else:
            per_iter = 2e-9 * n * p * n_outputs
        cap = math.floor(budget / max(per_iter, 1e-12))
        params["max_iter"] = int(min(estimator.max_iter, max(MIN_LINEAR_ITER, cap)))
    elif isinstance(estimator, _KNNS):
        params["n_neighbors"] = int(max(1, min(estimator.n_neighbors, n)))
    elif isinstance(estimator, _FORESTS):
        m = p
        if max_features_exponent is not None:
            m = int(max(1, min(p, round(p ** float(max_features_exponent)))))
            params["max_features"] = m
        elif isinstance(estimator.max_features, float):
            m = max(1, int(estimator.max_features * p))
        cap = math.floor(budget / max(forest_tree_seconds(n, m, n_outputs, is_classifier(estimator)), 1e-9))
        params["n_estimators"] = int(min(estimator.n_estimators, max(MIN_TREES, cap)))
    elif isinstance(estimator, _BOOSTING):
        if is_classifier(estimator) and estimator.early_stopping is True and not stratified_split_feasible(
            y, estimator.validation_fraction
        ):
            params["early_stopping"] = False
        cap = math.floor(budget / max(hist_boosting_round_seconds(estimator, n, p, y), 1e-9))
        params["max_iter"] = int(min(estimator.max_iter, max(MIN_BOOSTING_ROUNDS, cap)))
    elif hasattr(estimator, "round_seconds"):  # LightGBM / XGBoost / CatBoost (models.boosting)
        cap = math.floor(budget / max(float(estimator.round_seconds(n, p, y)), 1e-9))
        params["n_estimators"] = int(min(estimator.n_estimators, max(MIN_BOOSTING_ROUNDS, cap)))
    elif isinstance(estimator, _MLPS):
        bs = estimator.batch_size if isinstance(estimator.batch_size, int) else 200
        bs = int(max(1, min(bs, n)))
        params["batch_size"] = bs
        if is_classifier(estimator):
            n_out = n_outputs if n_outputs > 1 else np.unique(y).size
            n_out = 1 if n_out == 2 else n_out
            if estimator.early_stopping and (
                # multi-label validation "accuracy" is exact-set match: too coarse to stop on
                n_outputs > 1 or not stratified_split_feasible(y, estimator.validation_fraction)
            ):
                params["early_stopping"] = False
        else:
            n_out = n_outputs
        if estimator.early_stopping and n < 20:
            params["early_stopping"] = False
        hidden = tuple(int(h) for h in np.atleast_1d(estimator.hidden_layer_sizes))
        cap = mlp_epoch_cap(n, p, hidden, n_out, bs, budget)
        params["max_iter"] = int(min(estimator.max_iter, cap))
    return params


#: Row counts up to which a fitted forest predicts tree by tree here (see :func:`forest_small_batch`).
SMALL_BATCH_ROWS = 64


def forest_small_batch(estimator: Any, X: np.ndarray, proba: bool) -> np.ndarray | None:
    """A fitted single-output random / extra-trees forest's predictions (``proba``: class probabilities)
    for up to :data:`SMALL_BATCH_ROWS` dense rows, summed tree by tree in the forest's order as sklearn
    does, so the result is the same. sklearn sets up a joblib call and a configuration context per tree,
    which on a single row costs more than the trees (about 1.5 ms of 2 for 60 trees): the serving path's
    latency. None when it does not apply (the caller asks sklearn)."""
    if (
        not isinstance(estimator, _FORESTS)
        or proba != is_classifier(estimator)
        or getattr(estimator, "n_outputs_", 0) != 1
        or X.ndim != 2
        or not 0 < X.shape[0] <= SMALL_BATCH_ROWS
        or X.shape[1] != getattr(estimator, "n_features_in_", -1)
    ):
        return None
    Xf = np.ascontiguousarray(X, dtype=np.float32)  # what the trees take (sklearn converts the same way)
    trees = estimator.estimators_
    out: np.ndarray
    if proba:
        out = np.zeros((Xf.shape[0], int(estimator.n_classes_)), dtype=np.float64)
        for tree in trees:
            out += tree.predict_proba(Xf, check_input=False)
    else:
        out = np.zeros(Xf.shape[0], dtype=np.float64)
        for tree in trees:
            out += tree.predict(Xf, check_input=False)
    out /= len(trees)
    return out


def _grow_forest(est: Any, X: np.ndarray, y: np.ndarray, seconds: float) -> bool:
    """In a :func:`final_fit`, a fitted forest ``est`` of fewer than :data:`FINAL_FOREST_TREES` trees grows
    to that many (the same trees first: scikit-learn's ``warm_start``) when the new trees are expected to
    end in time (``seconds``: the first fit's time); whether it grew."""
    n = int(getattr(est, "n_estimators", 0))
    if not isinstance(est, _FORESTS) or not 0 < n < FINAL_FOREST_TREES:
        return False
    if not final_fit_affords(seconds * (FINAL_FOREST_TREES - n) / n):
        return False
    est.set_params(warm_start=True, n_estimators=FINAL_FOREST_TREES)
    try:
        est.fit(X, y)
    finally:
        est.set_params(warm_start=False)
    return True


def _is_kernel_svm(estimator: Any) -> bool:
    inner = estimator.estimator if isinstance(estimator, CalibratedClassifierCV) else estimator
    return isinstance(inner, SVC | SVR)


class Adaptive(MetaEstimatorMixin, BaseEstimator):
    """Fits a clone of ``estimator`` after adapting it to the data (see the module docstring).

    ``max_rows``: train on a (stratified, seeded) subsample of about this many rows (for kernel SVMs
    whose cost grows quadratically; for them the cap also shrinks with the budget and the features). ``max_features_exponent``: for forests, split on ``p ** e`` features.
    ``n_threads``: BLAS/OpenMP threads while fitting (default one: parallel trials must not oversubscribe
    the cores; OpenMP boosting on small data is many times slower when they do).
    """

    def __init__(
        self,
        estimator: Any,
        budget: float = DEFAULT_BUDGET,
        max_rows: int | None = None,
        max_features_exponent: float | None = None,
        random_state: int = 0,
        n_threads: int | None = 1,
    ) -> None:
        self.estimator = estimator
        self.budget = budget
        self.max_rows = max_rows
        self.max_features_exponent = max_features_exponent
        self.random_state = random_state
        self.n_threads = n_threads

    def fit(self, X: Any, y: Any) -> Adaptive:
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y)
        classifier = is_classifier(self.estimator)
        max_rows = self.max_rows
        if max_rows is not None and _is_kernel_svm(self.estimator):
            n_fits = 6 if isinstance(self.estimator, CalibratedClassifierCV) else 1
            max_rows = min(int(max_rows), svm_row_cap(X.shape[1], n_fits, float(self.budget)))
        if max_rows is not None and X.shape[0] > max_rows:
            rng = np.random.default_rng(self.random_state)
            idx = subsample_rows(y, int(max_rows), rng, stratify=classifier)
            X, y = X[idx], y[idx]
        self.n_train_rows_ = X.shape[0]
        est = clone(self.estimator)
        if isinstance(est, CalibratedClassifierCV):
            # cross-validated calibration needs every class in every training fold: classes with a
            # single row are left out (never predicted); with fewer than two classes left, the prior
            labels, counts = np.unique(y, return_counts=True)
            keep = np.isin(y, labels[counts >= 2])
            if np.unique(y[keep]).size < 2:
                est = DummyClassifier(strategy="prior")
            elif not keep.all():
                X, y = X[keep], y[keep]
        self.adapted_params_ = adapted_params(
            est, X, y, float(self.budget), self.max_features_exponent, self.random_state
        )
        est.set_params(**self.adapted_params_)
        started = time.monotonic()
        with limited(self.n_threads):
            est.fit(X, y)
            self.forest_grown_ = _grow_forest(est, X, y, time.monotonic() - started)
        self.estimator_ = est
        if hasattr(est, "classes_"):
            self.classes_ = est.classes_
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        X = np.asarray(X, dtype=np.float64)
        fast = forest_small_batch(self.estimator_, X, proba=False)
        if fast is not None:
            return fast
        with limited(self.n_threads):
            return self.estimator_.predict(X)

    def _has_proba(self) -> bool:
        return hasattr(self.estimator, "predict_proba")

    @available_if(_has_proba)
    def predict_proba(self, X: Any) -> Any:
        check_is_fitted(self, "estimator_")
        X = np.asarray(X, dtype=np.float64)
        fast = forest_small_batch(self.estimator_, X, proba=True)
        if fast is not None:
            return fast
        with limited(self.n_threads):
            return self.estimator_.predict_proba(X)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        inner = self.estimator.__sklearn_tags__()
        tags.estimator_type = inner.estimator_type
        tags.classifier_tags = inner.classifier_tags
        tags.regressor_tags = inner.regressor_tags
        return tags


def estimator_name(est: Any) -> str:
    """What an estimator is, for messages and model descriptions: the one an :class:`Adaptive` wraps, a
    boosted-trees estimator with its library (``BoostedTreesRegressor(lightgbm)``), Platt scaling with what it
    calibrates (``CalibratedClassifierCV(SVC)``); anything else, its class."""
    inner = est
    if isinstance(inner, Adaptive):
        inner = getattr(inner, "estimator_", inner.estimator)
    library = getattr(inner, "library", None)
    if isinstance(library, str):
        return f"{type(inner).__name__}({library})"
    if isinstance(inner, CalibratedClassifierCV):
        return f"CalibratedClassifierCV({type(inner.estimator).__name__})"
    return type(inner).__name__
