"""Data preprocessing shared by every task model: imputation, categorical encoding, scaling and an
optional feature preprocessor (PCA keeping a fraction of the variance, or a percentile of features
selected by a univariate test against one or several targets).

All transformers take a pandas ``DataFrame`` (categorical columns given by a mask; they may be
pandas ``category`` or plain numeric columns) with possible NaNs, and return dense float64 arrays.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA
from sklearn.feature_selection import SelectorMixin, f_classif, f_regression
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    OneHotEncoder,
    OrdinalEncoder,
    QuantileTransformer,
    RobustScaler,
    StandardScaler,
)
from sklearn.utils.validation import check_is_fitted

from metalearn.data.errors import DataError

#: Hard cap on the one-hot columns of one categorical feature (rarer categories are pooled).
MAX_ONEHOT_CATEGORIES = 32

NUMERIC_IMPUTATIONS = ("mean", "median")
ENCODINGS = ("onehot", "ordinal")
#: Not a search choice: integer category codes for models with native categorical handling (gradient
#: boosting), see ``TabularPreprocessor``.
NATIVE_ENCODING = "native"
SCALINGS = ("none", "standard", "robust", "quantile")


def _make_scaler(scaling: str, random_state: int) -> Any:
    if scaling == "none":
        return "passthrough"
    if scaling == "standard":
        return StandardScaler()
    if scaling == "robust":
        return RobustScaler()
    if scaling == "quantile":
        # n_quantiles is lowered to n_samples by the transformer itself on small data
        return NormalQuantileTransformer(output_distribution="normal", n_quantiles=1000, random_state=random_state)
    raise ValueError(f"unknown scaling {scaling!r}; use one of {list(SCALINGS)}")


class NormalQuantileTransformer(QuantileTransformer):
    """sklearn's :class:`QuantileTransformer` whose forward transform to a normal output calls
    ``scipy.special.ndtri`` (what ``scipy.stats.norm.ppf`` evaluates, with the same infinities at 0 and 1
    and NaN outside) instead of ``norm.ppf``, whose argument handling costs ~45 us per call and three calls
    per column: 26 of the 27 ms of one row with 168 columns. The same numbers (tested); the rest is
    sklearn's (``_transform_col`` of scikit-learn 1.9, forward branch)."""

    def _transform_col(self, X_col: np.ndarray, quantiles: np.ndarray, inverse: bool) -> np.ndarray:
        if inverse or self.output_distribution != "normal":
            return super()._transform_col(X_col, quantiles, inverse)
        from scipy.special import ndtri
        from sklearn.preprocessing._data import BOUNDS_THRESHOLD

        with np.errstate(invalid="ignore"):
            lower_bounds_idx = X_col - BOUNDS_THRESHOLD < quantiles[0]
            upper_bounds_idx = X_col + BOUNDS_THRESHOLD > quantiles[-1]
        finite = ~np.isnan(X_col)
        values = X_col[finite]
        X_col[finite] = 0.5 * (
            np.interp(values, quantiles, self.references_)
            - np.interp(-values, -quantiles[::-1], -self.references_[::-1])
        )
        X_col[upper_bounds_idx] = 1
        X_col[lower_bounds_idx] = 0
        with np.errstate(invalid="ignore"):
            out = ndtri(X_col)
            low, high = ndtri(BOUNDS_THRESHOLD - np.spacing(1)), ndtri(1 - (BOUNDS_THRESHOLD - np.spacing(1)))
            return np.asarray(np.clip(out, low, high))


class LookupOrdinalEncoder(OrdinalEncoder):
    """sklearn's :class:`OrdinalEncoder` whose ``transform`` looks each column's labels up in a dict when
    every fitted category is a string (the preprocessor's canonical labels, imputed): the same codes (an
    unseen label gets ``unknown_value``), without sklearn's per-column input checks, which cost ~0.25 ms
    per column per call: 20 of the 23 ms of one row with 79 categorical columns. Anything else goes to
    sklearn."""

    def fit(self, X: Any, y: Any = None) -> LookupOrdinalEncoder:
        self.__dict__.pop("_lookups_", None)  # built again from the new categories on first use
        super().fit(X, y)
        return self

    def _lookups(self) -> list[dict[str, float]] | None:
        found = getattr(self, "_lookups_", None)
        if found is None:
            usable = (
                self.handle_unknown == "use_encoded_value"
                and not getattr(self, "_infrequent_enabled", False)
                and all(isinstance(c, str) for cats in self.categories_ for c in cats)
            )
            found = [{c: float(i) for i, c in enumerate(cats)} for cats in self.categories_] if usable else []
            self._lookups_ = found
        return found or None

    def transform(self, X: Any) -> Any:
        lookups = self._lookups() if isinstance(X, np.ndarray) and X.dtype == object and X.ndim == 2 else None
        if lookups is None or X.shape[1] != len(lookups):
            return super().transform(X)
        unknown = float(self.unknown_value)
        out = np.empty(X.shape, dtype=self.dtype)
        for j, lookup in enumerate(lookups):
            out[:, j] = [lookup.get(v, unknown) for v in X[:, j]]
        return out


def category_string(u: Any) -> str | None:
    """One label as :func:`canonical_category_strings` writes it (``2.0`` and ``2`` both ``'2'``); None
    for what ``pd.factorize`` counts as missing (None, NaN, NaT, pd.NA)."""
    try:
        if pd.isna(u):
            return None
    except (TypeError, ValueError):  # not a scalar
        pass
    if isinstance(u, float | np.floating) and float(u).is_integer():
        return str(int(u))
    if isinstance(u, bool | np.bool_):
        return str(bool(u))
    return str(u)


#: Up to this many values a column is converted value by value (pandas' factorize costs more per call).
_FEW_VALUES = 16


def canonical_category_strings(values: np.ndarray) -> np.ndarray:
    """Object array of category labels as strings (``2.0`` and ``2`` both become ``'2'``); NaN kept.
    A few values are converted one by one (the serving path's single rows): the same strings, except that
    pandas' factorize, used on more values, maps ``True`` and ``1.0`` of one column to whichever came first."""
    if len(values) <= _FEW_VALUES:
        labels = [category_string(u) for u in values]
        return np.array([np.nan if t is None else t for t in labels] + [None], dtype=object)[:-1]
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    lookup = np.array([*(category_string(u) for u in uniques), np.nan], dtype=object)
    return lookup[codes]  # code -1 picks the trailing NaN


def numbers_of(s: pd.Series) -> tuple[pd.Series, list[Any]]:
    """``s`` as float64 (its index kept) and the values that are not numbers (null / NaN / blank text are
    missing, fine)."""
    if pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_numeric_dtype(s.dtype):
        return s.astype("float64"), []
    obj = s.astype(object).where(s.notna(), None)
    blank = obj.map(lambda v: v is None or (isinstance(v, str) and v.strip() == ""))
    values = pd.to_numeric(obj.where(~blank, None), errors="coerce")
    bad = obj[values.isna() & ~blank].tolist()
    return values.astype("float64"), bad


def _non_numeric(s: pd.Series) -> bool:
    dtype = s.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return not pd.api.types.is_numeric_dtype(dtype.categories.dtype)
    return not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype))


class TabularPreprocessor(TransformerMixin, BaseEstimator):
    """Imputes, encodes and scales a mixed-type table into a dense float matrix.

    Numeric columns: ``numeric_imputation`` (mean/median) then ``scaling``. Categorical columns: most
    frequent imputation, then one-hot (categories rarer than ``min_frequency`` of the rows, and those
    beyond ``max_categories``, are pooled into one "infrequent" column; unseen categories at predict time
    go there too) or ordinal codes (unseen -> -1) followed by the same scaling; with
    ``encoding="native"`` (models that handle categories themselves) integer codes ``0..k-1``, missing
    values being a category of their own and unseen categories ``-1``, unscaled, whose output columns
    are ``native_categorical_``. All-NaN numeric columns are dropped. Columns are matched by name when ``X`` is a DataFrame with the training column names.
    Columns flagged in ``categorical`` and columns that cannot be numeric (strings, string categories)
    are categorical; the others are converted to numbers.
    """

    def __init__(
        self,
        categorical: Sequence[bool] = (),
        numeric_imputation: str = "mean",
        encoding: str = "onehot",
        min_frequency: float = 0.01,
        max_categories: int = MAX_ONEHOT_CATEGORIES,
        scaling: str = "standard",
        random_state: int = 0,
    ) -> None:
        self.categorical = categorical
        self.numeric_imputation = numeric_imputation
        self.encoding = encoding
        self.min_frequency = min_frequency
        self.max_categories = max_categories
        self.scaling = scaling
        self.random_state = random_state

    # -- helpers -----------------------------------------------------------------------------------
    def _frame(self, X: Any, fitting: bool) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame):
            X = pd.DataFrame(np.asarray(X))
        if fitting:
            return X
        names = self.columns_
        given = [str(c) for c in X.columns]
        if given == names:
            return X
        if sorted(given) == sorted(names) and len(set(given)) == len(given):
            return X.iloc[:, [given.index(c) for c in names]]
        if X.shape[1] != len(names):
            missing = [c for c in names if c not in given]
            raise DataError(
                f"the model was fitted on {len(names)} feature columns but got {X.shape[1]}; "
                "pass the same feature columns as at training time"
                + (f" (missing: {missing[:5]})" if missing else "")
            )
        return X  # same width, other names (e.g. a bare array): match by position

    def _blocks(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """The numeric block (float64, non-finite as NaN) and the categorical block (canonical label
        strings, NaN kept). Each block is taken from the frame in one piece (per-column indexing cost a
        few milliseconds per call on wide tables, which dominated single-row prediction)."""
        dtypes = list(X.dtypes)
        plain = all(  # each distinct dtype checked once (wide tables have a few)
            (pd.api.types.is_numeric_dtype(d) or pd.api.types.is_bool_dtype(d)) and not isinstance(d, pd.CategoricalDtype)
            for d in {dtypes[j] for j in self.numeric_idx_}
        )
        every = len(self.numeric_idx_) == X.shape[1] and np.array_equal(self.numeric_idx_, np.arange(X.shape[1]))
        if not len(self.numeric_idx_):
            num = np.empty((len(X), 0))
        elif plain:  # numbers already: one conversion of the whole block
            block = X if every else X.iloc[:, self.numeric_idx_]
            num = block.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)  # written to below: never a view of X
        else:
            num = np.column_stack([self._numbers(X, int(j)) for j in self.numeric_idx_])
        num[~np.isfinite(num)] = np.nan
        if len(self.categorical_idx_):
            block = X.iloc[:, self.categorical_idx_].to_numpy(dtype=object)
            cat = np.column_stack([canonical_category_strings(block[:, k]) for k in range(block.shape[1])])
        else:
            cat = np.empty((len(X), 0), dtype=object)
        return num, cat

    @staticmethod
    def _numbers(X: pd.DataFrame, j: int) -> np.ndarray:
        """Column ``j`` of ``X`` (a numeric column of the training data) as float64; a value that is not a
        number ("abc" in a column fitted on numbers) is refused, not read as missing."""
        values, bad = numbers_of(X.iloc[:, j])
        if bad:
            shown = ", ".join(repr(v) for v in list(dict.fromkeys(map(str, bad)))[:3])
            raise DataError(
                f"feature column {str(X.columns[j])!r} holds {len(bad)} value(s) that are not numbers "
                f"({shown}) where the model was fitted on numbers; fix them, or leave them empty for missing"
            )
        return values.to_numpy(dtype=np.float64, na_value=np.nan)

    # -- sklearn API -------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> TabularPreprocessor:
        X = self._frame(X, fitting=True)
        mask = np.asarray(tuple(self.categorical), dtype=bool)
        if mask.size == 0:
            mask = np.zeros(X.shape[1], dtype=bool)
        if mask.size != X.shape[1]:
            raise DataError(
                f"categorical mask has {mask.size} entries but the data has {X.shape[1]} feature columns; "
                "give one flag per feature column"
            )
        # a column that cannot be numeric (strings, non-numeric categories) is categorical whatever the mask
        mask = mask | np.array([_non_numeric(X.iloc[:, j]) for j in range(X.shape[1])], dtype=bool)
        if X.shape[0] == 0 or X.shape[1] == 0:
            raise DataError(
                f"cannot fit on an empty feature table of shape {X.shape}; give rows and features"
            )
        self.columns_ = [str(c) for c in X.columns]
        self.n_features_in_ = X.shape[1]
        self.numeric_idx_ = np.flatnonzero(~mask)
        self.categorical_idx_ = np.flatnonzero(mask)
        num, cat = self._blocks(X)
        self.numeric_pipeline_: Pipeline | None = None
        self.categorical_pipeline_: Pipeline | None = None
        self.native_categorical_: tuple[int, ...] = ()
        widths = 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # all-NaN columns dropped, quantiles > rows ...
            if num.shape[1] and np.isfinite(num).any(axis=0).any():
                self.numeric_pipeline_ = Pipeline(
                    [
                        ("impute", SimpleImputer(strategy=self.numeric_imputation)),
                        ("scale", _make_scaler(self.scaling, self.random_state)),
                    ]
                ).fit(num)
                widths += self.numeric_pipeline_.transform(num[:1]).shape[1]
            if cat.shape[1] and (~pd.isna(cat)).any():
                if self.encoding == "onehot":
                    encoder: Any = OneHotEncoder(
                        handle_unknown="infrequent_if_exist",
                        min_frequency=float(self.min_frequency) if self.min_frequency else None,
                        max_categories=int(self.max_categories) if self.max_categories else None,
                        sparse_output=False,
                        dtype=np.float64,
                    )
                    steps = [("impute", SimpleImputer(strategy="most_frequent")), ("encode", encoder)]
                elif self.encoding == NATIVE_ENCODING:
                    encoder = LookupOrdinalEncoder(
                        handle_unknown="use_encoded_value", unknown_value=-1, dtype=np.float64
                    )
                    steps = [
                        ("impute", SimpleImputer(strategy="constant", fill_value="<missing>")),
                        ("encode", encoder),
                    ]
                elif self.encoding == "ordinal":
                    encoder = LookupOrdinalEncoder(
                        handle_unknown="use_encoded_value", unknown_value=-1, dtype=np.float64
                    )
                    steps = [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("encode", encoder),
                        ("scale", _make_scaler(self.scaling, self.random_state)),
                    ]
                else:
                    raise ValueError(f"unknown encoding {self.encoding!r}; use one of {list(ENCODINGS)}")
                self.categorical_pipeline_ = Pipeline(steps).fit(cat)
                cat_width = self.categorical_pipeline_.transform(cat[:1]).shape[1]
                if self.encoding == NATIVE_ENCODING:
                    self.native_categorical_ = tuple(range(widths, widths + cat_width))
                widths += cat_width
        if widths == 0:
            raise DataError(
                "no usable feature: every feature column is entirely missing; give informative features"
            )
        self.n_features_out_ = widths
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "n_features_out_")
        X = self._frame(X, fitting=False)
        num, cat = self._blocks(X)
        parts = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # unknown categories are expected at predict time
            if self.numeric_pipeline_ is not None:
                parts.append(np.asarray(self.numeric_pipeline_.transform(num), dtype=np.float64))
            if self.categorical_pipeline_ is not None:
                parts.append(np.asarray(self.categorical_pipeline_.transform(cat), dtype=np.float64))
        out = np.hstack(parts) if len(parts) > 1 else parts[0]
        out[~np.isfinite(out)] = 0.0
        return out


class VariancePCA(TransformerMixin, BaseEstimator):
    """PCA keeping the smallest number of components that explain ``keep_variance`` of the variance.

    Uses the covariance eigendecomposition when rows outnumber features (fast on tall data) and a full
    SVD otherwise.
    """

    def __init__(self, keep_variance: float = 0.9999, random_state: int = 0) -> None:
        self.keep_variance = keep_variance
        self.random_state = random_state

    def fit(self, X: Any, y: Any = None) -> VariancePCA:
        X = np.asarray(X, dtype=np.float64)
        self.n_features_in_ = X.shape[1]
        if X.shape[1] < 2 or X.shape[0] < 2 or self.keep_variance >= 1.0:
            self.pca_: PCA | None = None
            return self
        solver = "covariance_eigh" if X.shape[0] >= X.shape[1] else "full"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.pca_ = PCA(
                n_components=float(self.keep_variance), svd_solver=solver, random_state=self.random_state
            )
            self.pca_.fit(X)
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "n_features_in_")
        X = np.asarray(X, dtype=np.float64)
        if self.pca_ is None:
            return X
        return np.asarray(self.pca_.transform(X), dtype=np.float64)


def target_scores(X: np.ndarray, Y: np.ndarray, target_kinds: Sequence[str]) -> np.ndarray:
    """Univariate relevance of each feature, averaged over targets.

    ANOVA F for class targets (``Y`` holds integer class codes), F of the correlation test for
    regression targets; each target's scores are divided by their maximum so targets weigh the same.
    Rows where a target is NaN are ignored for that target.
    """
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    if Y.ndim == 1:
        Y = Y[:, None]
    kinds = list(target_kinds) if len(target_kinds) == Y.shape[1] else [target_kinds[0]] * Y.shape[1]
    total = np.zeros(X.shape[1])
    for t, kind in enumerate(kinds):
        rows = ~np.isnan(Y[:, t])
        if rows.sum() < 3:
            continue
        yt = Y[rows, t]
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            if kind == "regression":
                scores, _ = f_regression(X[rows], yt)
            else:
                if np.unique(yt).size < 2:
                    continue
                scores, _ = f_classif(X[rows], yt.astype(np.int64))
        scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        top = scores.max() if scores.size else 0.0
        if top > 0:
            total += scores / top
    return total / max(1, len(kinds))


class TargetSelectPercentile(SelectorMixin, BaseEstimator):
    """Keeps the ``percentile`` % most relevant features (at least one) for one or several targets.

    ``target_kinds`` gives each target's kind (``binary``/``multiclass``/``regression``) in the column
    order of the ``y`` passed to ``fit``.
    """

    def __init__(self, percentile: float = 50.0, target_kinds: Sequence[str] = ("binary",)) -> None:
        self.percentile = percentile
        self.target_kinds = target_kinds

    def fit(self, X: Any, y: Any = None) -> TargetSelectPercentile:
        X = np.asarray(X, dtype=np.float64)
        self.n_features_in_ = X.shape[1]
        if y is None:
            raise ValueError("TargetSelectPercentile needs the target(s) y to score features")
        self.scores_ = target_scores(X, np.asarray(y, dtype=np.float64), tuple(self.target_kinds))
        k = max(1, round(X.shape[1] * float(self.percentile) / 100.0))
        order = np.argsort(-self.scores_, kind="stable")
        mask = np.zeros(X.shape[1], dtype=bool)
        mask[order[:k]] = True
        self.support_ = mask
        return self

    def _get_support_mask(self) -> np.ndarray:
        check_is_fitted(self, "support_")
        return self.support_


def native_categorical_columns(preprocessor: Any) -> tuple[int, ...]:
    """The output columns of a fitted preprocessing (a ``TabularPreprocessor`` or a ``Pipeline`` of one
    and feature preprocessors) that hold native category codes: none after PCA, the selected ones
    after a feature selection."""
    if preprocessor is None:
        return ()
    steps = [s for _, s in preprocessor.steps] if isinstance(preprocessor, Pipeline) else [preprocessor]
    mask: np.ndarray | None = None
    for step in steps:
        if isinstance(step, TabularPreprocessor):
            mask = np.zeros(step.n_features_out_, dtype=bool)
            mask[list(getattr(step, "native_categorical_", ()))] = True
        elif mask is None or step is None or step == "passthrough":
            continue
        elif isinstance(step, VariancePCA):
            if step.pca_ is not None:
                mask = np.zeros(int(step.pca_.n_components_), dtype=bool)
        elif isinstance(step, SelectorMixin):
            mask = mask[step.get_support()]
        else:
            return ()  # an unknown step: its output columns are not category codes
    return () if mask is None else tuple(int(j) for j in np.flatnonzero(mask))
