"""Gradient-boosting libraries (LightGBM, XGBoost, CatBoost) behind one scikit-learn estimator.

:class:`BoostedTreesClassifier` / :class:`BoostedTreesRegressor` take the library, the number of
rounds, the learning rate and the library's own hyperparameters (``params``), and fit on the dense
float matrix of the task models' preprocessing:

- **categorical features** (``categorical_features``: column indices holding integer category codes,
  ``-1`` for a missing or unseen category) are handed to the library's native handling: LightGBM's
  ``categorical_feature`` (negative codes are its missing values), XGBoost's ``enable_categorical``
  with ``tree_method="hist"`` (negative codes become NaN), CatBoost's ``cat_features`` (integer
  columns);
- **early stopping** on a validation split of the training rows (``validation_fraction``, stratified
  for a class target when every class allows it) when there are at least ``MIN_EARLY_STOPPING_ROWS``
  rows: boosting stops after ``early_stopping_rounds`` rounds without improvement of the validation
  loss and the model keeps its best iteration (no refit); ``best_iteration_`` is that round
  (0-based), ``n_rounds_`` the rounds the model predicts with;
- **several outputs**: a 2-d ``y`` is native multi-output -- multi-label classification (XGBoost's
  per-label logistic, CatBoost's ``MultiLogloss``) and multi-target regression (XGBoost's
  ``multi_strategy="one_output_per_tree"``, CatBoost's ``MultiRMSE``); LightGBM has none (the task
  models wrap it per output);
- one thread, seeded (deterministic for a ``random_state``), silent;
- **a clock bound** (:func:`fit_deadline`): inside the block, fits stop adding rounds at a wall-clock
  time and keep the rounds they have (the final refit of a time-budgeted search);
- **a final fit on all rows** (inside :func:`~metalearn.pipelines.models.adaptive.final_fit`): a fit that
  early-stopped is fitted again on every row with the rounds early stopping chose, as AutoGluon's
  ``refit_full`` reuses the early-stopped iteration count (``refit_all_rows_``); when a clock bound cuts
  that refit, the early-stopped model is kept (and the bound's ``hit`` cleared: that model is whole);
- **rounds from the trials** (:func:`trial_rounds`): within :func:`final_rounds`, the search's trials'
  early-stopped rounds per training row (:func:`fitted_rounds` of each fold's model) give the rounds of
  one fit on all rows, without early stopping again (``rounds_from_trials_``): one fit instead of two.
"""

from __future__ import annotations

import importlib
import itertools
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.model_selection import train_test_split
from sklearn.utils.validation import check_is_fitted

from metalearn.pipelines.models.adaptive import (
    boosting_round_seconds,
    final_fit_affords,
    stratified_split_feasible,
)

#: Random early-stopping splits tried for a multi-label target before fitting without one.
SPLIT_ATTEMPTS = 10


def _catboost_codes(column: np.ndarray) -> np.ndarray:
    """A categorical column's float codes as the integers CatBoost takes (missing: -1)."""
    return np.nan_to_num(column, nan=-1.0).astype(np.int64)


def _varying_columns(y: np.ndarray) -> np.ndarray:
    """Per column of a 2-d target: whether it takes more than one value."""
    return np.asarray([np.unique(y[:, j]).size > 1 for j in range(y.shape[1])], dtype=bool)


@dataclass
class FitBound:
    """The ``time.monotonic()`` past which boosted-tree fits add no more rounds; ``hit``: a fit stopped
    at it (its model has fewer rounds than its configuration and early stopping would give)."""

    until: float
    hit: bool = False

    def over(self) -> bool:
        if time.monotonic() >= self.until:
            self.hit = True
        return self.hit


_BOUND: ContextVar[FitBound | None] = ContextVar("metalearn_boosting_fit_bound", default=None)


@contextmanager
def fit_deadline(seconds: float | None) -> Iterator[FitBound | None]:
    """Within the block, LightGBM / XGBoost / CatBoost fits stop adding rounds once ``seconds`` have
    passed and keep the rounds they have (at least one), as FLAML bounds its CatBoost fits; yields the
    :class:`FitBound` (None when ``seconds`` is None: no bound). A refit's time follows its rounds, which
    early stopping decides on the data it is given: a 30 s search measured a CatBoost configuration on a
    3,350-row subset, and its refit on all 7,366 rows then took 37.6 s."""
    if seconds is None:
        yield None
        return
    bound = FitBound(time.monotonic() + max(0.0, float(seconds)))
    token = _BOUND.set(bound)
    try:
        yield bound
    finally:
        _BOUND.reset(token)


@dataclass
class _RoundsHint:
    per_row: float
    used: bool = False


_ROUNDS: ContextVar[_RoundsHint | None] = ContextVar("metalearn_boosting_final_rounds", default=None)


@contextmanager
def final_rounds(per_row: float | None) -> Iterator[None]:
    """Within the block, the first LightGBM / XGBoost / CatBoost fit that would early-stop fits instead
    ``per_row`` rounds per row it is given (rounded up; at most the rounds a refit after early stopping
    could take), on all of them and without early stopping: a final fit that takes its rounds from the
    search's trials (:func:`trial_rounds`), as AutoGluon's ``refit_full`` takes its bagged models'. Measured
    on coil2000's best 30 s pipeline (a depth-8 CatBoost, 9,822 rows, one core): early stopping on 90 % of
    the rows took 26.8 s and the refit on all of them 24.5 s; this is the second fit alone. On the 49 boosted
    best pipelines of the peers benchmark's 30 s cells (three splits, ``benchmarks/final_rounds.py``): the test
    score 0.48 % better on average than early stopping again and refitting (26 better, 5 equal, 18 worse), in
    42 % of the fit time; the trials' rounds unscaled by the rows: +0.40 %, 24 better and 23 worse. None: no
    change (a fit early-stops, see the module docstring)."""
    token = _ROUNDS.set(None if per_row is None or not per_row > 0 else _RoundsHint(float(per_row)))
    try:
        yield
    finally:
        _ROUNDS.reset(token)


def fitted_rounds(model: Any) -> tuple[int, int] | None:
    """``(rounds, training rows)`` of the one boosted fit inside a fitted ``model`` (a task model, an
    :class:`~metalearn.pipelines.models.adaptive.Adaptive`, a wrapper) when it early-stopped and was not
    fitted again; None when there is none or more than one (a model per output or per class)."""
    from metalearn.pipelines.artifacts import parts

    found = list(itertools.islice((b for b in parts(model, _BoostedTrees) if hasattr(b, "model_")), 2))
    if len(found) != 1:
        return None
    fit = found[0]
    if not fit.early_stopped_ or fit.refit_all_rows_:
        return None
    return int(fit.n_rounds_), int(fit.n_train_rows_)


def trial_rounds(folds: Sequence[tuple[int, int] | None]) -> float | None:
    """A trial's early-stopped rounds per training row (:func:`fitted_rounds` of its folds' models): their
    total rounds over their total rows; None unless every fold reported them."""
    if not folds or any(f is None for f in folds):
        return None
    rows = sum(f[1] for f in folds if f is not None)
    return sum(f[0] for f in folds if f is not None) / rows if rows > 0 else None


def preload(libraries: Iterable[str]) -> None:
    """Import these boosting libraries (names of :data:`LIBRARIES`; others are ignored) in this process
    now. A time-limited trial runs in a child forked from this process: a library imported here is not
    imported again in every trial's child. Measured on 2 cores (``magic``, a 3,350-row holdout fit):
    CatBoost's import added 0.4-0.5 s to each trial, counted in its fit time and so in the refit
    estimate the search keeps time for."""
    for library in libraries:
        if library in LIBRARIES:
            importlib.import_module(library)


def _lightgbm_stop(bound: FitBound) -> Any:
    import lightgbm as lgb

    def stop_at_bound(env: Any) -> None:
        if bound.over():
            raise lgb.callback.EarlyStopException(env.iteration, env.evaluation_result_list or [])

    stop_at_bound.order = 40  # type: ignore[attr-defined]  # after LightGBM's early stopping (30)
    return stop_at_bound


def _xgboost_stop(bound: FitBound) -> Any:
    import xgboost as xgb

    class StopAtBound(xgb.callback.TrainingCallback):
        def after_iteration(self, _model: Any, _epoch: int, _evals_log: Any) -> bool:
            return bound.over()

    return StopAtBound()


class _CatBoostStop:
    def __init__(self, bound: FitBound) -> None:
        self.bound = bound

    def after_iteration(self, info: Any) -> bool:  # False: stop
        return not self.bound.over()


#: The libraries, by the name of their model family.
LIBRARIES = ("lightgbm", "xgboost", "catboost")
#: Libraries that fit several labels / regression targets in one model.
MULTI_OUTPUT_LIBRARIES = ("xgboost", "catboost")
#: Early stopping needs at least this many training rows (10 % of them are held out).
MIN_EARLY_STOPPING_ROWS = 100
VALIDATION_FRACTION = 0.1
EARLY_STOPPING_ROUNDS = 20
#: Rows a leaf of an XGBoost *classification* tree holds at least, per unit of ``min_child_weight``: a
#: row's hessian p (1 - p) is at most 1/4, and far less once the trees separate the classes (depth 10 on
#: 1,800 x 1,000 binary data: 150 ms a round measured, 4.1 s estimated as 1,024-leaf trees before stop 56).
XGB_CLASS_ROWS_PER_WEIGHT = 20


class _BoostedTrees(BaseEstimator):
    def __init__(
        self,
        library: str = "lightgbm",
        n_estimators: int = 100,
        learning_rate: float = 0.1,
        params: dict[str, Any] | None = None,
        categorical_features: tuple[int, ...] = (),
        early_stopping_rounds: int = EARLY_STOPPING_ROUNDS,
        validation_fraction: float = VALIDATION_FRACTION,
        random_state: int = 0,
    ) -> None:
        self.library = library
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.params = params
        self.categorical_features = categorical_features
        self.early_stopping_rounds = early_stopping_rounds
        self.validation_fraction = validation_fraction
        self.random_state = random_state

    _classifier = False
    # fitted attributes (declared for the type checker; set by ``fit``)
    model_: Any
    n_rounds_: int
    best_iteration_: int | None
    n_train_rows_: int
    early_stopped_: bool
    refit_all_rows_: bool
    rounds_from_trials_: bool

    # -- cost model (read by metalearn.pipelines.models.adaptive) -----------------------------------
    def round_seconds(self, n_rows: int, n_features: int, y: np.ndarray) -> float:
        """Estimated seconds of one boosting round on ``(n_rows, n_features)`` data for ``y``."""
        y = np.asarray(y)
        trees = y.shape[1] if y.ndim == 2 else 1
        if self._classifier and y.ndim == 1:
            k = np.unique(y).size
            trees = 1 if k <= 2 else k
        p = dict(self.params or {})
        if self.library == "catboost":  # symmetric trees: every level splits every node
            leaves, min_leaf = 2 ** int(p.get("depth", 6)), 1.0
        elif self.library == "xgboost":
            depth = int(p.get("max_depth", 0))
            leaves = 2**depth if depth > 0 else int(p.get("max_leaves", 31))
            min_leaf = max(1.0, float(p.get("min_child_weight", 1.0)))
            if self._classifier:
                min_leaf *= XGB_CLASS_ROWS_PER_WEIGHT
        else:
            leaves = int(p.get("num_leaves", 31))
            min_leaf = max(1.0, float(p.get("min_child_samples", 20)))
        return boosting_round_seconds(n_rows, n_features, leaves, trees, min_leaf, self.library)

    # -- fitting -----------------------------------------------------------------------------------
    def _split(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, Any, Any]:
        """Training rows and the early-stopping validation rows (``None`` when too few rows)."""
        n = X.shape[0]
        frac = float(self.validation_fraction)
        if n < MIN_EARLY_STOPPING_ROWS or not 0.0 < frac < 1.0 or int(self.early_stopping_rounds) <= 0:
            return X, y, None, None
        stratify = None
        if self._classifier and y.ndim == 1:
            if not stratified_split_feasible(y, frac):
                return X, y, None, None
            stratify = y
        varying = _varying_columns(y) if y.ndim == 2 and self._classifier else None
        for attempt in range(SPLIT_ATTEMPTS):
            Xtr, Xva, ytr, yva = train_test_split(
                X, y, test_size=frac, random_state=int(self.random_state) + attempt, stratify=stratify
            )
            # multi-label: a label that varies must vary in the training part (CatBoost refuses a
            # constant one: "All train targets are equal"); rare labels may need another split
            if varying is None or np.array_equal(_varying_columns(ytr), varying):
                return Xtr, ytr, Xva, yva
        return X, y, None, None

    def _model(self, y: np.ndarray, validated: bool) -> Any:
        lib = self.library
        p = dict(self.params or {})
        multi = y.ndim == 2
        seed = int(self.random_state)
        rounds = int(self.early_stopping_rounds) if validated else None
        cats = list(self.categorical_features)
        if lib == "lightgbm":
            import lightgbm as lgb

            if multi:
                raise ValueError(
                    "LightGBM fits one output; wrap it per output (binary relevance, per target)"
                )
            cls = lgb.LGBMClassifier if self._classifier else lgb.LGBMRegressor
            return cls(
                n_estimators=int(self.n_estimators),
                learning_rate=float(self.learning_rate),
                random_state=seed,
                n_jobs=1,
                deterministic=True,
                force_row_wise=True,
                verbose=-1,
                **p,
            )
        if lib == "xgboost":
            import xgboost as xgb

            n_features = self.n_features_in_
            types = ["c" if j in set(cats) else "q" for j in range(n_features)] if cats else None
            kw: dict[str, Any] = {}
            if multi and not self._classifier:
                kw["multi_strategy"] = "one_output_per_tree"
            cls = xgb.XGBClassifier if self._classifier else xgb.XGBRegressor
            return cls(
                n_estimators=int(self.n_estimators),
                learning_rate=float(self.learning_rate),
                tree_method="hist",
                enable_categorical=bool(cats),
                feature_types=types,
                early_stopping_rounds=rounds,
                random_state=seed,
                n_jobs=1,
                verbosity=0,
                **kw,
                **p,
            )
        if lib == "catboost":
            import catboost as cb

            if self._classifier:
                loss = "MultiLogloss" if multi else ("MultiClass" if np.unique(y).size > 2 else "Logloss")
                cls = cb.CatBoostClassifier
            else:
                loss = "MultiRMSE" if multi else "RMSE"
                cls = cb.CatBoostRegressor
            return cls(
                iterations=int(self.n_estimators),
                learning_rate=float(self.learning_rate),
                loss_function=loss,
                cat_features=cats or None,
                early_stopping_rounds=rounds,
                use_best_model=validated,
                random_seed=seed,
                thread_count=1,
                verbose=False,
                allow_writing_files=False,
                **p,
            )
        raise ValueError(f"unknown boosting library {lib!r}; use one of {list(LIBRARIES)}")

    def _data(self, X: Any) -> Any:
        """``X`` in the form the library takes its categorical codes in."""
        X = np.asarray(X, dtype=np.float64)
        cats = list(self.categorical_features)
        if not cats:
            return X
        if self.library == "xgboost":
            X = X.copy()
            block = X[:, cats]
            block[~(block >= 0)] = np.nan  # negative (unknown) codes and NaN: missing
            X[:, cats] = block
            return X
        if self.library == "catboost":
            frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(X.shape[1])])
            for j in cats:
                frame[f"f{j}"] = _catboost_codes(X[:, j])
            return frame
        return X  # LightGBM: float codes, negative ones are missing

    def _predict_data(self, X: Any) -> Any:
        """``X`` for predicting: as :meth:`_data`, but a CatBoost ``Pool`` made from an object array
        instead of a frame (the same values and predictions; a frame cost ~4 ms per call on wide data)."""
        cats = list(self.categorical_features)
        if self.library != "catboost" or not cats:
            return self._data(X)
        from catboost import Pool

        X = np.asarray(X, dtype=np.float64)
        cells = X.astype(object)
        for j in cats:
            cells[:, j] = _catboost_codes(X[:, j])
        return Pool(cells, cat_features=cats)

    def _fit_model(self, X: Any, y: np.ndarray) -> None:
        X = np.asarray(X, dtype=np.float64)
        self.rounds_from_trials_ = False
        hint = _ROUNDS.get()
        if hint is not None and not hint.used and self._split(X, y)[2] is not None:
            hint.used = True
            n = X.shape[0]
            most = math.ceil(int(self.n_estimators) / (1.0 - float(self.validation_fraction)))
            settings = (self.n_estimators, self.early_stopping_rounds)
            self.n_estimators, self.early_stopping_rounds = min(most, max(1, math.ceil(hint.per_row * n))), 0
            try:
                self._fit_once(X, y)
            finally:
                self.n_estimators, self.early_stopping_rounds = settings
            self.rounds_from_trials_ = self.refit_all_rows_ = True
            return
        started = time.monotonic()
        self._fit_once(X, y)
        self.refit_all_rows_ = False
        bound = _BOUND.get()
        if not self.early_stopped_ or (bound is not None and bound.hit):
            return
        n, n_train = X.shape[0], self.n_train_rows_
        if not final_fit_affords((time.monotonic() - started) * n / n_train):
            return
        first = (self.model_, self.n_rounds_, self.best_iteration_, self.n_train_rows_)
        settings = (self.n_estimators, self.early_stopping_rounds)
        self.n_estimators, self.early_stopping_rounds = max(1, math.ceil(self.n_rounds_ * n / n_train)), 0
        try:
            self._fit_once(X, y)
        finally:
            self.n_estimators, self.early_stopping_rounds = settings
        if bound is not None and bound.hit:  # cut: keep the whole early-stopped model
            self.model_, self.n_rounds_, self.best_iteration_, self.n_train_rows_ = first
            bound.hit = False
        else:
            self.best_iteration_ = first[2]  # the round early stopping chose
            self.refit_all_rows_ = True
        self.early_stopped_ = True

    def _fit_once(self, X: np.ndarray, y: np.ndarray) -> None:
        self.n_features_in_ = X.shape[1]
        cats = [int(j) for j in self.categorical_features]
        if any(j < 0 or j >= X.shape[1] for j in cats):
            raise ValueError(f"categorical feature indices {cats} out of range for {X.shape[1]} features")
        Xtr, ytr, Xva, yva = self._split(X, y)
        validated = Xva is not None
        self.n_train_rows_ = int(Xtr.shape[0])
        model = self._model(y, validated)
        bound = _BOUND.get()
        kw: dict[str, Any] = {}
        if self.library == "lightgbm":
            import lightgbm as lgb

            kw["categorical_feature"] = cats if cats else "auto"
            callbacks = [_lightgbm_stop(bound)] if bound is not None else []
            if validated:
                kw.update(eval_X=(Xva,), eval_y=(yva,))
                callbacks.insert(0, lgb.early_stopping(int(self.early_stopping_rounds), verbose=False))
            if callbacks:
                kw["callbacks"] = callbacks
            model.fit(Xtr, ytr, **kw)
            best = getattr(model, "best_iteration_", 0) or 0
            self.best_iteration_ = int(best) - 1 if validated and best > 0 else None
            self.n_rounds_ = int(best) if validated and best > 0 else int(model.n_estimators_)
        elif self.library == "xgboost":
            if validated:
                kw["eval_set"] = [(self._data(Xva), yva)]
            if bound is not None:
                model.set_params(callbacks=[_xgboost_stop(bound)])
            model.fit(self._data(Xtr), ytr, verbose=False, **kw)
            if bound is not None:
                model.set_params(callbacks=None)  # the fitted model holds no callback (it is saved)
            best = getattr(model, "best_iteration", None) if validated else None
            self.best_iteration_ = int(best) if best is not None else None
            self.n_rounds_ = (
                self.best_iteration_ + 1
                if self.best_iteration_ is not None
                else int(model.get_booster().num_boosted_rounds())
            )
        else:
            if validated:
                kw["eval_set"] = (self._data(Xva), yva)
            if bound is not None:
                kw["callbacks"] = [_CatBoostStop(bound)]
            model.fit(self._data(Xtr), ytr, **kw)
            best = model.get_best_iteration() if validated else None
            self.best_iteration_ = int(best) if best is not None else None
            self.n_rounds_ = int(model.tree_count_)
        self.model_ = model
        self.early_stopped_ = validated


class BoostedTreesClassifier(ClassifierMixin, _BoostedTrees):
    """A LightGBM / XGBoost / CatBoost classifier (see the module docstring). ``y``: class labels, or
    a 2-d 0/1 indicator matrix (multi-label; XGBoost and CatBoost only), whose ``predict_proba`` is
    the ``(n, L)`` matrix of positive probabilities."""

    _classifier = True

    def fit(self, X: Any, y: Any) -> BoostedTreesClassifier:
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.ravel()
        if y.ndim == 2:
            self.classes_ = np.array([0, 1])
            self.multilabel_ = True
            self._fit_model(X, y.astype(np.int64))
            return self
        self.multilabel_ = False
        self.classes_, codes = np.unique(y, return_inverse=True)
        if self.classes_.size < 2:
            raise ValueError("a boosted classifier needs at least two classes; use a constant model")
        self._fit_model(X, codes.astype(np.int64))
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "model_")
        proba = np.asarray(self.model_.predict_proba(self._predict_data(X)), dtype=np.float64)
        if not self.multilabel_ and proba.ndim == 2 and proba.shape[1] != self.classes_.size:
            # a class absent from the (early-stopping) training rows: give it zero probability
            full = np.zeros((proba.shape[0], self.classes_.size))
            full[:, : proba.shape[1]] = proba
            proba = full
        return proba

    def predict(self, X: Any) -> np.ndarray:
        proba = self.predict_proba(X)
        if self.multilabel_:
            return (proba >= 0.5).astype(np.int64)
        return self.classes_[np.argmax(proba, axis=1)]


class BoostedTreesRegressor(RegressorMixin, _BoostedTrees):
    """A LightGBM / XGBoost / CatBoost regressor (see the module docstring); a 2-d ``y`` is native
    multi-target regression (XGBoost and CatBoost only)."""

    def fit(self, X: Any, y: Any) -> BoostedTreesRegressor:
        y = np.asarray(y, dtype=np.float64)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.ravel()
        self._fit_model(X, y)
        return self

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "model_")
        return np.asarray(self.model_.predict(self._predict_data(X)), dtype=np.float64)


__all__ = [
    "EARLY_STOPPING_ROUNDS",
    "LIBRARIES",
    "MIN_EARLY_STOPPING_ROWS",
    "MULTI_OUTPUT_LIBRARIES",
    "VALIDATION_FRACTION",
    "BoostedTreesClassifier",
    "BoostedTreesRegressor",
    "final_rounds",
    "fit_deadline",
    "fitted_rounds",
    "preload",
    "trial_rounds",
]
