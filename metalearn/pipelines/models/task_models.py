"""Task models: scikit-learn estimators that fit a ``(X, y)`` pair of DataFrames for one task kind and
predict a uniform :class:`metalearn.data.prediction.Prediction`.

Every model is ``preprocessor`` (fitted once, on all targets) + a final estimator used per the kind's
strategy. Class targets are label-encoded internally; predictions carry the original labels (sorted)
in ``classes`` and the matching probability columns. A class target with a single class in the training
data gets a constant model; classes absent from the training data are simply not in ``classes``.
Rows whose target is missing are ignored for that target.

``classes_`` (scikit-learn's name) is what :func:`classes_of` makes of the targets' classes, the shape of
``predict_proba``: a single class target's classes in the order of its probability columns
(:class:`ClassificationModel`); one entry per target for a multi-output model with a class target (a list, as
scikit-learn's ``MultiOutputClassifier`` has: :class:`MultiLabelModel`, :class:`MultiTaskModel`, None for a
regression target); none for a regressor. A post-hoc ensemble's is the same (``EnsembleModel.classes_``).

A multilabel label or a multitarget column that is constant in the training data (a rare label absent
from a split) is not given to the estimator: the model predicts the constant for it (probability 1.0
for the seen label, 0.0 for the other), as scikit-learn's multi-output wrappers do, and lists its
name in ``constant_targets_`` so a summary can say so.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.dummy import DummyClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.multioutput import MultiOutputRegressor, RegressorChain
from sklearn.utils.validation import check_is_fitted

from metalearn.data.errors import DataError, TargetError
from metalearn.data.prediction import Prediction
from metalearn.pipelines.models.preprocessing import native_categorical_columns
from metalearn.pipelines.models.shared_mlp import SharedTrunkMLP
from metalearn.runtime.threads import limited

ML_STRATEGIES = ("native", "binary_relevance", "chain")
MT_STRATEGIES = ("native", "per_target", "chain")
MTL_STRATEGIES = ("independent", "shared")
#: the strategies that fit one model per target: all but one multi-output estimator (``native``) and the
#: multitask shared-trunk network (``shared``)
PER_TARGET_STRATEGIES = frozenset(ML_STRATEGIES + MT_STRATEGIES + MTL_STRATEGIES) - {"native", "shared"}


# ---------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------
def _as_frame(y: Any) -> pd.DataFrame:
    if isinstance(y, pd.DataFrame):
        return y
    if isinstance(y, pd.Series):
        return y.to_frame()
    arr = np.asarray(y)
    return pd.DataFrame(arr if arr.ndim == 2 else arr.reshape(-1, 1))


def _check_rows(X: Any, y: pd.DataFrame) -> None:
    if len(X) != len(y):
        raise DataError(f"X has {len(X)} rows but y has {len(y)}; give one target row per feature row")
    if len(X) == 0:
        raise DataError("cannot fit on zero rows; give a non-empty training set")


def target_values(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """``(values, present)``: the column's values in their natural numpy dtype (categories decoded) and
    the mask of non-missing rows. Missing rows hold an arbitrary placeholder."""
    present = ~s.isna().to_numpy()
    if isinstance(s.dtype, pd.CategoricalDtype):
        cats = np.asarray(s.cat.categories)
        codes = s.cat.codes.to_numpy()
        values = cats[np.where(codes >= 0, codes, 0)] if cats.size else np.zeros(len(s))
        return values, present
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.fillna(False).to_numpy(dtype=bool), present
    if pd.api.types.is_numeric_dtype(s.dtype):
        if pd.api.types.is_integer_dtype(s.dtype):
            return s.fillna(0).to_numpy(dtype=np.int64), present
        return s.to_numpy(dtype=np.float64, na_value=np.nan), present
    return s.to_numpy(dtype=object), present


def encode_classes(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Sorted classes of a class column and its codes (float, NaN where missing)."""
    values, present = target_values(s)
    seen = values[present]
    if seen.size == 0:
        raise TargetError(
            f"target {s.name!r} has no non-missing value in the training data; drop it or give labels"
        )
    try:
        classes, inverse = np.unique(seen, return_inverse=True)
    except TypeError:  # mixed label types: compare as strings
        seen = seen.astype(str)
        classes, inverse = np.unique(seen, return_inverse=True)
    codes = np.full(len(s), np.nan)
    codes[present] = inverse
    return classes, codes


def regression_values(s: pd.Series) -> np.ndarray:
    """A regression column as float64 (NaN where missing); raises TargetError when not numeric."""
    try:
        out = pd.to_numeric(
            s.astype(object) if isinstance(s.dtype, pd.CategoricalDtype) else s, errors="raise"
        )
    except (ValueError, TypeError) as err:
        raise TargetError(
            f"regression target {s.name!r} has non-numeric values; use a classification task kind for labels"
        ) from err
    arr = np.array(out, dtype=np.float64, copy=True)
    arr[~np.isfinite(arr)] = np.nan
    return arr


def full_proba(proba: Any, est_classes: Any, n_classes: int) -> np.ndarray:
    """Probabilities over all ``n_classes`` codes from an estimator knowing only ``est_classes``;
    rows are cleaned (non-finite -> uniform) and renormalised."""
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim == 1:
        proba = np.column_stack([1.0 - proba, proba])
    out = np.zeros((proba.shape[0], n_classes))
    cols = np.asarray(est_classes, dtype=np.int64)
    out[:, cols] = proba[:, : cols.size]
    return normalise_rows(out)


def normalise_rows(p: np.ndarray) -> np.ndarray:
    p = np.where(np.isfinite(p), np.clip(p, 0.0, None), 0.0)
    s = p.sum(axis=1, keepdims=True)
    bad = (s[:, 0] <= 0) | ~np.isfinite(s[:, 0])
    p[bad] = 1.0 / p.shape[1]
    s[bad] = 1.0
    return p / s


def fit_classifier(estimator: Any, X: np.ndarray, codes: np.ndarray) -> Any:
    """A fitted clone of ``estimator`` on integer ``codes``, or a constant model for a single class."""
    codes = np.asarray(codes, dtype=np.int64)
    if np.unique(codes).size < 2:
        return DummyClassifier(strategy="prior").fit(X, codes)
    return clone(estimator).fit(X, codes)


def split_budget(estimator: Any, n_parts: int) -> Any:
    """A clone of ``estimator`` whose time budget (if it has one) is shared by ``n_parts`` fits."""
    est = clone(estimator)
    if n_parts > 1 and "budget" in est.get_params(deep=False):
        est.set_params(budget=float(est.get_params(deep=False)["budget"]) / n_parts)
    return est


def with_categorical(estimator: Any, preprocessor: Any) -> Any:
    """``estimator`` told which columns of the fitted ``preprocessor``'s output hold native category
    codes, if it takes them (a ``categorical_features`` parameter, possibly nested); else unchanged."""
    if estimator is None:
        return None
    key = next(
        (k for k in estimator.get_params(deep=True) if k.split("__")[-1] == "categorical_features"), None
    )
    if key is None:
        return estimator
    return clone(estimator).set_params(**{key: native_categorical_columns(preprocessor)})


def class_outputs(proba: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    proba = normalise_rows(np.asarray(proba, dtype=np.float64))
    return classes[np.argmax(proba, axis=1)], proba


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silences the convergence / numerical warnings that configurations at range edges produce, and
    runs on one BLAS/OpenMP thread (parallel trials must not oversubscribe the cores)."""
    with warnings.catch_warnings(), limited(1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", UserWarning)
        yield


def _fit_preprocessor(preprocessor: Any, X: Any, Y: np.ndarray) -> tuple[Any, np.ndarray]:
    if preprocessor is None:
        return None, np.asarray(X, dtype=np.float64)
    pre = clone(preprocessor)
    Xt = pre.fit_transform(X, Y)
    return pre, np.asarray(Xt, dtype=np.float64)


def _transform(preprocessor: Any, X: Any) -> np.ndarray:
    if preprocessor is None:
        return np.asarray(X, dtype=np.float64)
    return np.asarray(preprocessor.transform(X), dtype=np.float64)


#: a regression prediction is kept within the training targets' range widened by this share of the range on
#: each side: trees never leave the range, but a linear model or an MLP fed a row far outside the training
#: inputs can — on uci_gas (targets -3.1 to 2.0) the linear default predicted 7,782 for one test row and an
#: ensemble holding it at weight 0.06 scored RMSE 16.5 instead of ~0.13
PREDICTION_MARGIN = 0.5


def prediction_bounds(values: np.ndarray) -> tuple[float, float]:
    """The range a regression model's predictions are clipped to (see :data:`PREDICTION_MARGIN`)."""
    lo, hi = float(np.min(values)), float(np.max(values))
    pad = PREDICTION_MARGIN * (hi - lo)
    return lo - pad, hi + pad


def _within(out: np.ndarray, bounds: Any) -> np.ndarray:
    """``out`` clipped to ``bounds`` (one :func:`prediction_bounds` pair, or one per column of ``out``);
    unchanged for ``None`` (a model fitted before the bounds existed, a class target)."""
    if bounds is None:
        return out
    b = np.asarray(bounds, dtype=np.float64)
    return np.clip(out, b[..., 0], b[..., 1])


def classes_of(per_target: Sequence[np.ndarray | None]) -> np.ndarray | list[np.ndarray | None]:
    """A task model's ``classes_`` from its targets' classes in order (None for a regression target), shaped as
    its ``predict_proba``: one class target's classes (the order of its probability columns), a list per target
    for several targets (None for a regression target); AttributeError when no target is a class target (a
    regressor has no ``classes_``, as in scikit-learn). :func:`target_classes` reads it back."""
    if all(c is None for c in per_target):
        raise AttributeError("classes_: the model predicts no class target (a regressor has no classes)")
    first = per_target[0]
    return first if len(per_target) == 1 and first is not None else list(per_target)


def target_classes(model: Any) -> list[np.ndarray | None]:
    """Each target's classes (None for a regression target) of a fitted model with a class target: its
    ``classes_`` (:func:`classes_of`) one entry per target."""
    classes = model.classes_
    return list(classes) if isinstance(classes, list) else [classes]


class _TaskModelBase(BaseEstimator):
    def predict_task(self, X: pd.DataFrame) -> Prediction:  # pragma: no cover - overridden
        raise NotImplementedError

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Predicted values, one column per target (a 1-d array for single-target models)."""
        pred = self.predict_task(X)
        if pred.n_targets == 1:
            return pred.values[0]
        return np.column_stack(pred.values)


class _PerTargetProba(_TaskModelBase):
    """``predict_proba`` of a multi-output model with class targets: one array per target (columns in the order
    of its ``classes_``), None for a regression target — as the ensembles give it (a multi-label pipeline read back
    with ``load_model_file`` had none)."""

    def predict_proba(self, X: pd.DataFrame) -> list[np.ndarray | None]:
        return list(self.predict_task(X).probas)


# ---------------------------------------------------------------------------------------------------
# single target
# ---------------------------------------------------------------------------------------------------
class ClassificationModel(_TaskModelBase):
    """One class target (binary or multiclass); ``classes_``: its classes seen in training, sorted (the order of
    ``predict_proba``'s columns)."""

    def __init__(self, preprocessor: Any = None, estimator: Any = None) -> None:
        self.preprocessor = preprocessor
        self.estimator = estimator

    def fit(self, X: pd.DataFrame, y: Any) -> ClassificationModel:
        yf = _as_frame(y)
        _check_rows(X, yf)
        if yf.shape[1] != 1:
            raise TargetError(f"a single-target classifier needs one target column, got {yf.shape[1]}")
        classes, codes = encode_classes(yf.iloc[:, 0])
        present = ~np.isnan(codes)
        Xp = X[present] if isinstance(X, pd.DataFrame) else np.asarray(X)[present]
        with _quiet():
            self.preprocessor_, Xt = _fit_preprocessor(self.preprocessor, Xp, codes[present])
            estimator = with_categorical(self.estimator, self.preprocessor_)
            self.estimator_ = fit_classifier(estimator, Xt, codes[present])
        self.classes_ = classes
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        with _quiet():
            Xt = _transform(self.preprocessor_, X)
            return full_proba(self.estimator_.predict_proba(Xt), self.estimator_.classes_, self.classes_.size)

    def predict_task(self, X: pd.DataFrame) -> Prediction:
        values, proba = class_outputs(self.predict_proba(X), self.classes_)
        return Prediction(values=[values], probas=[proba], classes=[self.classes_.copy()])


class RegressionModel(_TaskModelBase):
    """One regression target; the estimator sees the standardised target."""

    def __init__(self, preprocessor: Any = None, estimator: Any = None) -> None:
        self.preprocessor = preprocessor
        self.estimator = estimator

    def fit(self, X: pd.DataFrame, y: Any) -> RegressionModel:
        yf = _as_frame(y)
        _check_rows(X, yf)
        if yf.shape[1] != 1:
            raise TargetError(f"a single-target regressor needs one target column, got {yf.shape[1]}")
        values = regression_values(yf.iloc[:, 0])
        present = ~np.isnan(values)
        if not present.any():
            raise TargetError(f"target {yf.columns[0]!r} has no numeric value in the training data")
        v = values[present]
        self.y_mean_ = float(v.mean())
        sd = float(v.std())
        self.y_scale_ = sd if sd > 1e-12 else 1.0
        self.y_bounds_ = prediction_bounds(v)
        ys = (v - self.y_mean_) / self.y_scale_
        Xp = X[present] if isinstance(X, pd.DataFrame) else np.asarray(X)[present]
        with _quiet():
            self.preprocessor_, Xt = _fit_preprocessor(self.preprocessor, Xp, ys)
            self.estimator_ = clone(with_categorical(self.estimator, self.preprocessor_)).fit(Xt, ys)
        return self

    def predict_task(self, X: pd.DataFrame) -> Prediction:
        check_is_fitted(self, "estimator_")
        with _quiet():
            out = np.asarray(
                self.estimator_.predict(_transform(self.preprocessor_, X)), dtype=np.float64
            ).ravel()
        out = np.where(np.isfinite(out), out, 0.0) * self.y_scale_ + self.y_mean_
        out = _within(out, getattr(self, "y_bounds_", None))
        return Prediction(values=[out], probas=[None], classes=[None])


# ---------------------------------------------------------------------------------------------------
# multilabel
# ---------------------------------------------------------------------------------------------------
def _label_classes(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    classes, codes = encode_classes(s)
    if classes.size > 2:
        raise TargetError(
            f"multilabel target {s.name!r} has {classes.size} distinct values; labels must be binary (0/1)"
        )
    if classes.size == 1:  # complete a 0/1 (or False/True) label seen with one value only
        only = classes[0]
        if isinstance(only, bool | np.bool_):
            classes = np.array([False, True])
        elif isinstance(only, int | float | np.integer | np.floating) and only in (0, 1):
            classes = np.array([0, 1], dtype=np.asarray(classes).dtype)
        codes = np.where(np.isnan(codes), np.nan, float(np.searchsorted(classes, only)))
    return classes, codes


class ClassifierChainModel(BaseEstimator):
    """A classifier chain over label codes: label ``j`` is predicted from the features plus labels
    ``0..j-1`` (true labels when fitting, predicted labels when predicting). Constant labels get a
    constant model."""

    def __init__(self, estimator: Any = None) -> None:
        self.estimator = estimator

    def fit(self, X: np.ndarray, Y: np.ndarray) -> ClassifierChainModel:
        self.estimators_ = []
        Z = np.asarray(X, dtype=np.float64)
        for j in range(Y.shape[1]):
            self.estimators_.append(fit_classifier(self.estimator, Z, Y[:, j]))
            Z = np.column_stack([Z, Y[:, j]])
        return self

    def predict_probas(self, X: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        Z = np.asarray(X, dtype=np.float64)
        out = []
        for est in self.estimators_:
            proba = np.asarray(est.predict_proba(Z))
            out.append((proba, est.classes_))
            Z = np.column_stack([Z, np.asarray(est.classes_)[np.argmax(proba, axis=1)]])
        return out


#: the class's name before it was public: model files written then name it
_ClassifierChainModel = ClassifierChainModel


class MultiLabelModel(_PerTargetProba):
    """Several binary labels. ``strategy``: ``native`` (one multi-output estimator), ``binary_relevance``
    (one estimator per label) or ``chain`` (a classifier chain in column order). ``classes_``: each label's two
    classes, a list (the order of the columns of its ``predict_proba`` array)."""

    def __init__(self, preprocessor: Any = None, estimator: Any = None, strategy: str = "native") -> None:
        self.preprocessor = preprocessor
        self.estimator = estimator
        self.strategy = strategy

    def fit(self, X: pd.DataFrame, y: Any) -> MultiLabelModel:
        yf = _as_frame(y)
        _check_rows(X, yf)
        if self.strategy not in ML_STRATEGIES:
            raise ValueError(
                f"unknown multilabel strategy {self.strategy!r}; use one of {list(ML_STRATEGIES)}"
            )
        self.classes_: list[np.ndarray] = []
        cols = []
        for name in yf.columns:
            classes, codes = _label_classes(yf[name])
            self.classes_.append(classes)
            cols.append(codes)
        codes_all = np.column_stack(cols)
        present = ~np.isnan(codes_all).any(axis=1)
        if present.sum() < 2:
            raise DataError("fewer than two rows have every label present; give rows with complete labels")
        C = codes_all[present].astype(np.int64)
        Xp = X[present] if isinstance(X, pd.DataFrame) else np.asarray(X)[present]
        varying = [j for j in range(C.shape[1]) if np.unique(C[:, j]).size > 1]
        self.constant_targets_ = [str(yf.columns[j]) for j in range(C.shape[1]) if j not in varying]
        self.constant_codes_ = {j: int(C[0, j]) for j in range(C.shape[1]) if j not in varying}
        self.fitted_columns_ = varying
        # one varying label left: a plain classifier (a multi-output estimator would see a 1-column y)
        self.fit_strategy_ = "binary_relevance" if len(varying) == 1 else self.strategy
        Cv = C[:, varying]
        with _quiet():
            self.preprocessor_, Xt = _fit_preprocessor(self.preprocessor, Xp, C)
            estimator = with_categorical(self.estimator, self.preprocessor_)
            if not varying:
                self.estimator_: Any = None
            elif self.fit_strategy_ == "native":
                self.estimator_ = clone(estimator).fit(Xt, Cv)
            elif self.fit_strategy_ == "binary_relevance":
                base = split_budget(estimator, Cv.shape[1])
                self.estimator_ = [fit_classifier(base, Xt, Cv[:, j]) for j in range(Cv.shape[1])]
            else:
                self.estimator_ = ClassifierChainModel(split_budget(estimator, Cv.shape[1])).fit(Xt, Cv)
        return self

    def _raw_probas(self, Xt: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """``(proba, estimator classes)`` of each fitted (not constant) label."""
        strategy = getattr(self, "fit_strategy_", self.strategy)
        if self.estimator_ is None:
            return []
        if strategy == "binary_relevance":
            return [(np.asarray(e.predict_proba(Xt)), e.classes_) for e in self.estimator_]
        if strategy == "chain":
            return self.estimator_.predict_probas(Xt)
        est = self.estimator_
        proba = est.predict_proba(Xt)
        if isinstance(proba, list):  # forests, k-NN: one (n, k_j) array per label
            return [(np.asarray(p), np.asarray(c)) for p, c in zip(proba, est.classes_, strict=True)]
        proba = np.asarray(proba)  # MLP: (n, L) probabilities of the positive code 1
        return [
            (np.column_stack([1.0 - proba[:, j], proba[:, j]]), np.array([0, 1]))
            for j in range(proba.shape[1])
        ]

    def predict_task(self, X: pd.DataFrame) -> Prediction:
        check_is_fitted(self, "estimator_")
        with _quiet():
            Xt = _transform(self.preprocessor_, X)
            fitted = dict(
                zip(
                    getattr(self, "fitted_columns_", range(len(self.classes_))),
                    self._raw_probas(Xt),
                    strict=True,
                )
            )
        constant: dict[int, int] = getattr(self, "constant_codes_", {})
        values: list[np.ndarray] = []
        probas: list[np.ndarray | None] = []
        for j, classes in enumerate(self.classes_):
            if j in constant:  # constant in training: probability 1 for its value, 0 for the other
                proba, est_classes = np.ones((Xt.shape[0], 1)), np.array([constant[j]])
            else:
                proba, est_classes = fitted[j]
            v, p = class_outputs(full_proba(proba, est_classes, classes.size), classes)
            values.append(v)
            probas.append(p)
        return Prediction(values=values, probas=probas, classes=[c.copy() for c in self.classes_])


# ---------------------------------------------------------------------------------------------------
# multitarget regression
# ---------------------------------------------------------------------------------------------------
class BoundedRegressorChain(RegressorChain):
    """scikit-learn's :class:`~sklearn.multioutput.RegressorChain` (fit on the true targets, link ``j`` predicting
    from the features plus links ``0..j-1``), whose links pass on what the model itself would predict for their
    target: a non-finite prediction becomes 0 (the standardised target's mean) and every prediction is kept
    within :func:`prediction_bounds` of the link's training target (``link_bounds_``, in chain order).

    Each link was fit on true targets, which lie within that range; an unbounded link feeds the next one
    inputs it never saw, and a diverged one compounds: on ``osales`` a poly-kernel SVR at C = 14,178 (stopped by
    its iteration cap) predicted 9e41 for a standardised target, the next link 2e130 from it, and the third
    overflowed to NaN, which the fourth refused ("Input X contains NaN") and the trial lost every target. The
    chain's outputs are bounded the same way, so a diverged link now scores as badly as it predicts."""

    def fit(self, X: Any, Y: Any, **fit_params: Any) -> BoundedRegressorChain:
        super().fit(X, Y, **fit_params)
        Y = np.asarray(Y, dtype=np.float64)
        self.link_bounds_ = np.array([prediction_bounds(Y[:, j]) for j in self.order_])
        return self

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "estimators_")
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[-1]} features, but the chain was fit on {self.n_features_in_}")
        chain = np.zeros((X.shape[0], len(self.estimators_)))
        for j, est in enumerate(self.estimators_):
            out = np.asarray(est.predict(np.hstack([X, chain[:, :j]])), dtype=np.float64).ravel()
            chain[:, j] = _within(np.where(np.isfinite(out), out, 0.0), self.link_bounds_[j])
        Y = np.empty_like(chain)
        Y[:, np.asarray(self.order_)] = chain
        return Y


class MultiTargetModel(_TaskModelBase):
    """Several regression targets (standardised internally). ``strategy``: ``native`` (one multi-output
    regressor), ``per_target`` (one regressor per target) or ``chain`` (a :class:`BoundedRegressorChain` in
    column order)."""

    def __init__(self, preprocessor: Any = None, estimator: Any = None, strategy: str = "native") -> None:
        self.preprocessor = preprocessor
        self.estimator = estimator
        self.strategy = strategy

    def fit(self, X: pd.DataFrame, y: Any) -> MultiTargetModel:
        yf = _as_frame(y)
        _check_rows(X, yf)
        if self.strategy not in MT_STRATEGIES:
            raise ValueError(
                f"unknown multitarget strategy {self.strategy!r}; use one of {list(MT_STRATEGIES)}"
            )
        Y = np.column_stack([regression_values(yf[c]) for c in yf.columns])
        present = ~np.isnan(Y).any(axis=1)
        if present.sum() < 2:
            raise DataError("fewer than two rows have every target present; give rows with complete targets")
        Y = Y[present]
        varying = [j for j in range(Y.shape[1]) if np.any(Y[:, j] != Y[0, j])]
        constant = [j for j in range(Y.shape[1]) if j not in varying]
        self.constant_targets_ = [str(yf.columns[j]) for j in constant]
        self.fitted_columns_ = varying
        self.y_mean_ = Y.mean(axis=0)
        self.y_mean_[constant] = Y[0, constant]  # predicted exactly
        sd = Y.std(axis=0)
        self.y_scale_ = np.where(sd > 1e-12, sd, 1.0)
        self.y_bounds_ = np.array([prediction_bounds(Y[:, j]) for j in range(Y.shape[1])])  # (targets, 2)
        Ys = (Y - self.y_mean_) / self.y_scale_
        Xp = X[present] if isinstance(X, pd.DataFrame) else np.asarray(X)[present]
        with _quiet():
            self.preprocessor_, Xt = _fit_preprocessor(self.preprocessor, Xp, Ys)
            estimator = with_categorical(self.estimator, self.preprocessor_)
            if not varying:
                self.estimator_: Any = None
            elif len(varying) == 1 and Y.shape[1] > 1:  # one target left: a plain regressor on 1-d y
                self.estimator_ = clone(estimator).fit(Xt, Ys[:, varying[0]])
            else:
                if self.strategy == "native":
                    est: Any = clone(estimator)
                elif self.strategy == "per_target":
                    est = MultiOutputRegressor(split_budget(estimator, len(varying)))
                else:
                    est = BoundedRegressorChain(split_budget(estimator, len(varying)))
                self.estimator_ = est.fit(Xt, Ys[:, varying])
        self.n_targets_ = Y.shape[1]
        return self

    def predict_task(self, X: pd.DataFrame) -> Prediction:
        check_is_fitted(self, "estimator_")
        varying = getattr(self, "fitted_columns_", list(range(self.n_targets_)))
        with _quiet():
            Xt = _transform(self.preprocessor_, X)
            out = np.zeros((Xt.shape[0], self.n_targets_))  # constant targets: 0 -> their value
            if self.estimator_ is not None:
                fitted = np.asarray(self.estimator_.predict(Xt), dtype=np.float64)
                out[:, varying] = fitted.reshape(fitted.shape[0], -1)
        out = np.where(np.isfinite(out), out, 0.0) * self.y_scale_ + self.y_mean_
        out = _within(out, getattr(self, "y_bounds_", None))
        return Prediction(
            values=[out[:, j].copy() for j in range(self.n_targets_)],
            probas=[None] * self.n_targets_,
            classes=[None] * self.n_targets_,
        )


# ---------------------------------------------------------------------------------------------------
# multitask (mixed target kinds)
# ---------------------------------------------------------------------------------------------------
class MultiTaskModel(_PerTargetProba):
    """Targets of mixed kinds (``target_kinds``: binary / multiclass / regression per target).

    ``strategy="independent"``: one model per target on the shared preprocessing (``classifier`` for
    class targets, ``regressor`` for regression targets). ``strategy="shared"``: one
    :class:`SharedTrunkMLP` (``shared``) trained jointly on every target. ``classes_``: each target's classes,
    a list (None for a regression target; the order of the columns of its ``predict_proba`` array).
    """

    def __init__(
        self,
        preprocessor: Any = None,
        target_kinds: Sequence[str] = (),
        strategy: str = "independent",
        classifier: Any = None,
        regressor: Any = None,
        shared: Any = None,
    ) -> None:
        self.preprocessor = preprocessor
        self.target_kinds = target_kinds
        self.strategy = strategy
        self.classifier = classifier
        self.regressor = regressor
        self.shared = shared

    def fit(self, X: pd.DataFrame, y: Any) -> MultiTaskModel:
        yf = _as_frame(y)
        _check_rows(X, yf)
        kinds = [str(k) for k in self.target_kinds]
        if len(kinds) != yf.shape[1]:
            raise TargetError(
                f"the model expects {len(kinds)} targets ({kinds}) but y has {yf.shape[1]} columns; "
                "pass the task's target columns in order"
            )
        if self.strategy not in MTL_STRATEGIES:
            raise ValueError(
                f"unknown multitask strategy {self.strategy!r}; use one of {list(MTL_STRATEGIES)}"
            )
        self.classes_: list[np.ndarray | None] = []
        cols = []
        for name, kind in zip(yf.columns, kinds, strict=True):
            if kind == "regression":
                self.classes_.append(None)
                cols.append(regression_values(yf[name]))
            else:
                classes, codes = encode_classes(yf[name])
                self.classes_.append(classes)
                cols.append(codes)
        Y = np.column_stack(cols)
        present_values = [Y[~np.isnan(Y[:, t]), t] for t in range(len(kinds))]
        self.y_bounds_ = [  # a regression target's predictions are kept near its training range
            prediction_bounds(v) if kind == "regression" and v.size else None
            for v, kind in zip(present_values, kinds, strict=True)
        ]
        # the preprocessor's supervised step (feature selection) ignores missing values per target
        with _quiet():
            self.preprocessor_, Xt = _fit_preprocessor(self.preprocessor, X, Y)
            if self.strategy == "shared":
                self.estimators_: list[Any] = [
                    clone(self.shared).set_params(target_kinds=tuple(kinds)).fit(Xt, Y)
                ]
            else:
                self.estimators_ = []
                classifier = with_categorical(self.classifier, self.preprocessor_)
                classifier = split_budget(classifier, len(kinds)) if classifier is not None else None
                regressor = with_categorical(self.regressor, self.preprocessor_)
                regressor = split_budget(regressor, len(kinds)) if regressor is not None else None
                self.y_mean_ = np.zeros(len(kinds))
                self.y_scale_ = np.ones(len(kinds))
                for t, kind in enumerate(kinds):
                    present = ~np.isnan(Y[:, t])
                    if not present.any():
                        raise TargetError(f"target {yf.columns[t]!r} has no value in the training data")
                    if kind == "regression":
                        v = Y[present, t]
                        self.y_mean_[t] = float(v.mean())
                        sd = float(v.std())
                        self.y_scale_[t] = sd if sd > 1e-12 else 1.0
                        ys = (v - self.y_mean_[t]) / self.y_scale_[t]
                        self.estimators_.append(clone(regressor).fit(Xt[present], ys))
                    else:
                        self.estimators_.append(fit_classifier(classifier, Xt[present], Y[present, t]))
        return self

    def predict_task(self, X: pd.DataFrame) -> Prediction:
        check_is_fitted(self, "estimators_")
        with _quiet():
            Xt = _transform(self.preprocessor_, X)
            if self.strategy == "shared":
                heads = self.estimators_[0].predict_heads(Xt)
            else:
                heads = []
                for t, est in enumerate(self.estimators_):
                    known = self.classes_[t]
                    if known is None:
                        out = np.asarray(est.predict(Xt), dtype=np.float64).ravel()
                        heads.append(
                            np.where(np.isfinite(out), out, 0.0) * self.y_scale_[t] + self.y_mean_[t]
                        )
                    else:
                        heads.append(full_proba(est.predict_proba(Xt), est.classes_, known.size))
        values: list[np.ndarray] = []
        probas: list[np.ndarray | None] = []
        bounds = getattr(self, "y_bounds_", None) or [None] * len(self.classes_)  # None: fitted before them
        for head, classes, bound in zip(heads, self.classes_, bounds, strict=True):
            if classes is None:
                out = np.asarray(head, dtype=np.float64)
                out = np.where(np.isfinite(out), out, np.nanmean(out) if np.isfinite(out).any() else 0.0)
                values.append(_within(out, bound))
                probas.append(None)
            else:
                v, p = class_outputs(full_proba(head, np.arange(head.shape[1]), classes.size), classes)
                values.append(v)
                probas.append(p)
        return Prediction(
            values=values, probas=probas, classes=[None if c is None else c.copy() for c in self.classes_]
        )


__all__ = [
    "ML_STRATEGIES",
    "MTL_STRATEGIES",
    "MT_STRATEGIES",
    "PER_TARGET_STRATEGIES",
    "BoundedRegressorChain",
    "ClassificationModel",
    "ClassifierChainModel",
    "MultiLabelModel",
    "MultiTargetModel",
    "MultiTaskModel",
    "RegressionModel",
    "SharedTrunkMLP",
    "classes_of",
    "target_classes",
]
