"""Data drift and concept drift of a served model, as pure functions over DataFrames.

**Data drift** (:func:`data_drift`) compares a window of recent inputs (``current``) with the training
inputs (``reference``), feature by feature and as a whole:

- numeric features: the population stability index (PSI) over the reference's deciles, and the
  two-sample Kolmogorov-Smirnov test (``scipy.stats.ks_2samp``) on the non-missing values; when the
  missing rate differs between the windows, a chi-square test of the 2x2 missing/present table too
  (the feature's p-value is then ``min(1, 2 * min(p_ks, p_missing))``, Bonferroni over its two tests);
- categorical features: PSI over the reference's categories plus one bucket for categories the
  reference never saw, and the chi-square test of homogeneity (``scipy.stats.chi2_contingency``) on
  the 2 x categories count table (unseen categories counted in their bucket);
- missing values are a bin / category of their own in the PSI of both kinds, so a column that goes
  missing is seen.

A feature is **drifted** when its PSI is at least :attr:`DriftThresholds.psi` **and** its test is
significant at the Bonferroni-corrected level (``ks_pvalue`` or ``chi2_pvalue`` divided by the number
of features tested). Both are required because each fails alone: on large windows the tests call
negligible differences significant, on small windows PSI is noisy (its expectation without any drift
is about ``(bins - 1) * (1/n_reference + 1/n_current)``, 0.18 for 50 current rows and 10 bins). The
**dataset** is drifted when the share of drifted features reaches ``drifted_share`` or when the
meta-feature distance reaches ``metafeature_distance``.

**Meta-feature distance.** How far the current window lies from the reference in the space of the
cheap, unsupervised meta-features of :mod:`metalearn.metalearning.metafeatures` (its pymfe statistical
and info-theory blocks, under the same ``mfe.<name>.<mean|sd>`` names, heavy-tailed ones signed-log
scaled as there; no target, no model-based features, no landmarking). pymfe itself was measured too
slow here (0.05-0.07 s per window, mostly scipy's per-column skewness/kurtosis wrappers, and the
distance needs 21 windows), so they are computed with numpy: ``mean``, ``sd``, ``var``, ``median``,
``iq_range``, ``mad`` (x 1.4826), ``t_mean`` (20% trimmed), ``skewness``, ``kurtosis`` (Fisher),
``sparsity`` (pymfe's ``(n / distinct - 1) / (n - 1)``), ``cor`` and ``cov`` (absolute, over column
pairs), ``eigenvalues`` (of the covariance matrix), each as mean and sd over the numeric columns;
``nr_outliers`` (columns with a value beyond 1.5 IQR), ``nr_cor_attr`` (share of column pairs with
``|cor| >= 0.5``), and ``attr_ent`` (entropy in bits of every column: categorical codes, numeric values
in 12 fixed bins of the reference scale). Not computed: ``nr_norm`` and ``attr_conc`` (costly),
every supervised feature.

Both windows use the same columns (at most :data:`METAFEATURE_COLS`), are imputed with the
reference's median / mode, numeric columns are min-max scaled with the *reference's* minimum and range
(the extractor rescales each dataset on its own, which would hide a shift or a rescaling), categorical
columns are coded by the reference's most frequent levels (the rest, unseen levels included, pooled).
The current window is subsampled to ``n`` = at most :data:`METAFEATURE_ROWS` rows (and at most half the
reference pool), and :data:`METAFEATURE_SAMPLES` samples of ``n`` reference rows give each
meta-feature's mean and sampling spread (finite-population corrected). The distance is the mean over
the meta-features of ``|current - reference mean| / reference sd`` (each term capped at 10): how many
standard deviations of its own sampling noise a meta-feature moved, on average, so it does not grow on
small windows the way a raw distance does. It flags the dataset only when at least
:data:`MIN_METAFEATURES` meta-features were compared (an all-categorical table has only the two
``attr_ent`` ones, whose mean is too noisy; its per-feature chi-square tests cover it).

Measured on 50 corpus datasets (two seeded draws of 25) x 3 current-window sizes (30, 100, 300 rows),
the current window a random sample of the data and the rest the reference: median 0.6-0.8, 90th
percentile 1.0-1.3, maximum 1.91 (the all-categorical ``solar_flare_2``, 2 meta-features, reached 2.98);
every numeric column scaled by 1.3 and shifted by half a standard deviation: median 3.1-5.0, 10th
percentile 1.9-3.1; one column shifted by two standard deviations: median 1.4-2.5 (its own tests flag
it). Hence the default threshold 2.5. Cost: 21 windows of at most 300 x 50 values, median 0.08 s,
at most 0.6 s (1.8 s once on a machine loaded by other jobs).

**Concept drift** (:func:`concept_drift`) scores labelled feedback, in time order, in rolling windows
with the task's metric (:mod:`metalearn.data.metrics`) and compares the latest window with the score
the model had at training time.

Every result is a JSON-ready ``dict`` of builtin types (NaN and infinities are ``None``).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from metalearn.data.errors import DataError, InputError
from metalearn.data.metrics import check_task_metric, get_metric, score
from metalearn.data.numbers import finite_or_none, json_safe
from metalearn.data.prediction import Prediction
from metalearn.data.task import Task, TaskKind
from metalearn.metalearning import metafeatures as mf

__all__ = [
    "METAFEATURE_COLS",
    "METAFEATURE_ROWS",
    "METAFEATURE_SAMPLES",
    "MIN_METAFEATURES",
    "DriftThresholds",
    "concept_drift",
    "data_drift",
    "infer_column_kinds",
    "label_key",
    "logged_prediction",
    "metafeature_distance",
    "numeric_bin_edges",
]

#: Rows of each window used for the meta-feature distance (a seeded random subsample).
METAFEATURE_ROWS = 300
#: Feature columns used for the meta-feature distance (a seeded random choice when there are more).
METAFEATURE_COLS = 50
#: Concept drift scores at most this many windows; the step between windows grows on long feedback.
MAX_WINDOWS = 100
#: Proportions below this are raised to it in the PSI (empty bins would make it infinite).
PSI_EPSILON = 1e-4
#: Reference rows the meta-feature samples are drawn from (a seeded random subsample).
METAFEATURE_POOL = 3000
#: Reference samples whose meta-features give each meta-feature's mean and sampling spread.
METAFEATURE_SAMPLES = 20
_ENTROPY_EDGES = np.linspace(0.0, 1.0, 11)
#: Fewest meta-features compared for the distance to flag a dataset.
MIN_METAFEATURES = 10
#: Floor of a meta-feature's spread, relative to max(1, |its mean|): constant ones must not divide by 0.
_SD_FLOOR = 1e-3
#: Cap of each meta-feature's standardised difference, so one meta-feature cannot decide alone.
_Z_CAP = 10.0
_UNSEEN = "<unseen>"
_MISSING = "<missing>"
_CORRECTIONS = ("bonferroni", "none")
_KINDS = ("numeric", "categorical")


# --------------------------------------------------------------------------------------------
# thresholds


@dataclass(frozen=True)
class DriftThresholds:
    """When a feature, a dataset or a model counts as drifted.

    - ``psi``: a feature's population stability index at or above this is a large enough change
      (0.1 is the usual "moderate", 0.2 the usual "significant" level).
    - ``ks_pvalue`` / ``chi2_pvalue``: family-wise significance levels of the Kolmogorov-Smirnov test
      (numeric features) and the chi-square test (categorical features); each feature's p-value is
      compared with the level divided by the number of features tested (Bonferroni, ``correction``).
    - ``correction``: ``"bonferroni"`` (default) or ``"none"`` (each feature at the raw level).
    - ``drifted_share``: the dataset is drifted when at least this share of its features is.
    - ``metafeature_distance``: the dataset is drifted when the meta-feature distance of the current
      window (mean standardised change of its meta-features, see the module docstring) reaches this;
      2.5 is above the largest distance measured between two random samples of a corpus dataset (1.91).
    - ``concept_drop``: the model has concept drift when its latest rolling metric is worse than the
      training metric by at least this fraction of the training metric (0.05 = 5% worse) ...
    - ``concept_pvalue``: ... and the latest window is significantly worse: the share of bootstrap
      resamples of its rows scoring no worse than training is at most this (a log loss of 0.017 read 0.049
      on 104 clean rows because of one misclassified row: 189% "worse", bootstrap p about 0.3).
    - ``min_rows``: a current window (or labelled feedback) with fewer rows is "insufficient data",
      never flagged.
    - ``bins``: quantile bins of the reference for the PSI of numeric features.
    """

    psi: float = 0.2
    ks_pvalue: float = 0.01
    chi2_pvalue: float = 0.01
    correction: str = "bonferroni"
    drifted_share: float = 0.3
    metafeature_distance: float = 2.5
    concept_drop: float = 0.05
    concept_pvalue: float = 0.05
    min_rows: int = 30
    bins: int = 10

    def __post_init__(self) -> None:
        def number(name: str, lo: float, hi: float, lo_open: bool, hi_open: bool) -> None:
            v = getattr(self, name)
            ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            if ok:
                ok = (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
            if not ok:
                left, right = "(" if lo_open else "[", ")" if hi_open else "]"
                hi_s = "inf" if math.isinf(hi) else f"{hi:g}"
                raise InputError(
                    f"drift threshold {name} must be a number in {left}{lo:g}, {hi_s}{right}, got {v!r}; "
                    f"the default is {_DEFAULTS[name]!r}"
                )

        def integer(name: str, lo: int) -> None:
            v = getattr(self, name)
            if not (isinstance(v, int | np.integer) and not isinstance(v, bool) and v >= lo):
                raise InputError(
                    f"drift threshold {name} must be an integer >= {lo}, got {v!r}; "
                    f"the default is {_DEFAULTS[name]!r}"
                )

        number("psi", 0.0, math.inf, True, True)
        number("ks_pvalue", 0.0, 1.0, True, True)
        number("chi2_pvalue", 0.0, 1.0, True, True)
        number("drifted_share", 0.0, 1.0, True, False)
        number("metafeature_distance", 0.0, math.inf, True, True)
        number("concept_drop", 0.0, math.inf, True, True)
        number("concept_pvalue", 0.0, 1.0, True, False)
        integer("min_rows", 2)
        integer("bins", 2)
        if self.correction not in _CORRECTIONS:
            raise InputError(
                f"drift threshold correction must be one of {', '.join(_CORRECTIONS)}, got {self.correction!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> DriftThresholds:
        """Thresholds from a mapping (missing keys keep their defaults); unknown keys or bad values
        raise :class:`InputError` naming the field."""
        if d is None:
            return cls()
        if not isinstance(d, Mapping):
            raise InputError(f"drift thresholds must be a mapping of name -> value, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in d if k not in known)
        if unknown:
            raise InputError(
                f"unknown drift threshold(s) {', '.join(map(repr, unknown))}; valid names: {', '.join(sorted(known))}"
            )
        return cls(**dict(d))


_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(DriftThresholds)}

#: the environment variable of the drift checks' thresholds (a JSON object of name -> value), read alike by the
#: service's settings and by ``metalearn models drift`` (whose ``--threshold`` options override it)
THRESHOLDS_ENV = "METALEARN_DRIFT_THRESHOLDS"


def thresholds_setting(value: str | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The thresholds :data:`THRESHOLDS_ENV` sets — its JSON text, or the mapping it was read into — as a mapping of
    name -> value that :class:`DriftThresholds` accepts (None: unset or blank). :class:`InputError` naming the
    variable for text that is not JSON, JSON that is not an object, an unknown name or a bad value."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise InputError(f"{THRESHOLDS_ENV} is not JSON ({exc}): give an object such as "
                             '{"psi": 0.2, "drifted_share": 0.3}') from None
    if not isinstance(value, Mapping):
        got = json.dumps(value, default=str)[:80]
        raise InputError(f"{THRESHOLDS_ENV} must be a JSON object of name -> value such as " + '{"psi": 0.2}'
                         + f", got {got}")
    try:
        DriftThresholds.from_dict(value)
    except InputError as exc:
        raise InputError(f"{THRESHOLDS_ENV}: {exc}") from None
    return dict(value)


def env_thresholds(environ: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """:func:`thresholds_setting` of :data:`THRESHOLDS_ENV` in ``environ`` (default: this process's environment)."""
    return thresholds_setting((os.environ if environ is None else environ).get(THRESHOLDS_ENV))


def _thresholds(t: DriftThresholds | Mapping[str, Any] | None) -> DriftThresholds:
    if isinstance(t, DriftThresholds):
        return t
    return DriftThresholds.from_dict(t)


# --------------------------------------------------------------------------------------------
# data drift: per feature


def _is_categorical_dtype(s: pd.Series) -> bool:
    return (
        isinstance(s.dtype, pd.CategoricalDtype)
        or s.dtype == object
        or pd.api.types.is_string_dtype(s.dtype)
        or pd.api.types.is_bool_dtype(s.dtype)
    )


def infer_column_kinds(frame: pd.DataFrame) -> dict[str, str]:
    """``{column: "numeric" | "categorical"}``: categorical for category, object, string and bool
    columns, numeric for every other dtype."""
    return {str(c): ("categorical" if _is_categorical_dtype(frame[c]) else "numeric") for c in frame.columns}


def _column_kinds(
    reference: pd.DataFrame, current: pd.DataFrame, columns: Mapping[str, str] | None
) -> dict[str, str]:
    for name, frame in (("reference", reference), ("current", current)):
        if not isinstance(frame, pd.DataFrame):
            raise InputError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}")
        if frame.columns.duplicated().any():
            dup = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
            raise DataError(f"{name} has duplicate columns {dup}; give every column a unique name")
    ref_cols = {str(c): c for c in reference.columns}
    if columns is None:
        kinds = infer_column_kinds(reference)
    else:
        if not isinstance(columns, Mapping):
            raise InputError(
                f"columns must map column name -> 'numeric' | 'categorical', got {type(columns).__name__}"
            )
        kinds = {}
        for name, kind in columns.items():
            if kind not in _KINDS:
                raise InputError(f"column {name!r} has kind {kind!r}; use 'numeric' or 'categorical'")
            if str(name) not in ref_cols:
                raise DataError(f"column {name!r} is not in the reference data; name only reference columns")
            kinds[str(name)] = str(kind)
    if not kinds:
        raise DataError("no feature columns to compare; give the reference at least one column")
    cur_cols = {str(c) for c in current.columns}
    missing = [c for c in kinds if c not in cur_cols]
    if missing:
        shown = ", ".join(map(repr, missing[:5])) + (" ..." if len(missing) > 5 else "")
        raise DataError(
            f"the current data lacks {len(missing)} reference column(s): {shown}; send every training column"
        )
    return kinds


def _col(frame: pd.DataFrame, name: str) -> pd.Series:
    for c in frame.columns:
        if str(c) == name:
            return frame[c]
    raise KeyError(name)  # pragma: no cover - checked by _column_kinds


def _numeric_values(s: pd.Series) -> np.ndarray:
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(object)
    v = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return np.where(np.isfinite(v), v, np.nan)


def label_key(value: Any) -> str:
    """A category's label as compared between the windows: ``1``, ``1.0`` and ``True`` are ``"1"``
    (logged JSON inputs may carry numbers where the training data had categories), strings stripped."""
    if isinstance(value, bool | np.bool_):
        return "1" if value else "0"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    return str(value).strip()


def _label_values(s: pd.Series) -> np.ndarray:
    """Category labels as :func:`label_key` strings (object array), None where missing."""
    codes, uniques = pd.factorize(s.to_numpy(dtype=object), use_na_sentinel=True)
    table = np.array([*(label_key(u) for u in uniques), None], dtype=object)
    return table[codes]


def _psi(p_ref: np.ndarray, p_cur: np.ndarray) -> float:
    p = np.maximum(p_ref, PSI_EPSILON)
    q = np.maximum(p_cur, PSI_EPSILON)
    return float(np.sum((q - p) * np.log(q / p)))


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total > 0 else np.zeros_like(counts, dtype=float)


def numeric_bin_edges(reference: np.ndarray, bins: int) -> np.ndarray:
    """Interior edges of the reference's quantile bins (unique; the outer bins are open)."""
    ref = reference[~np.isnan(reference)]
    if ref.size == 0:
        return np.zeros(0)
    return np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))


def _missing_test(n_miss_ref: int, n_ref: int, n_miss_cur: int, n_cur: int) -> float | None:
    table = np.array([[n_miss_ref, n_ref - n_miss_ref], [n_miss_cur, n_cur - n_miss_cur]])
    if (table.sum(axis=0) == 0).any():
        return None
    return float(stats.chi2_contingency(table, correction=True).pvalue)


def _numeric_feature(ref: np.ndarray, cur: np.ndarray, bins: int) -> dict[str, Any]:
    ref_miss, cur_miss = np.isnan(ref), np.isnan(cur)
    r, c = ref[~ref_miss], cur[~cur_miss]
    edges = numeric_bin_edges(ref, bins)
    k = len(edges) + 1
    cr = np.bincount(np.searchsorted(edges, r, side="left"), minlength=k).astype(float)
    cc = np.bincount(np.searchsorted(edges, c, side="left"), minlength=k).astype(float)
    if ref_miss.any() or cur_miss.any():
        cr = np.append(cr, ref_miss.sum())
        cc = np.append(cc, cur_miss.sum())
    psi = _psi(_shares(cr), _shares(cc))
    ks_stat: float | None = None
    p_ks: float | None = None
    if r.size and c.size:
        res = stats.ks_2samp(r, c)
        ks_stat, p_ks = float(res.statistic), float(res.pvalue)
    miss_ref, miss_cur = float(ref_miss.mean()), float(cur_miss.mean())
    p_miss = None
    if miss_ref != miss_cur:
        p_miss = _missing_test(int(ref_miss.sum()), len(ref), int(cur_miss.sum()), len(cur))
    test = "ks"
    p_value = p_ks
    if p_miss is not None:
        test = "ks+missing"
        candidates = [p for p in (p_ks, p_miss) if p is not None]
        p_value = min(1.0, len(candidates) * min(candidates))
    return {
        "kind": "numeric",
        "test": test,
        "statistic": ks_stat,
        "p_value": p_value,
        "missing_p_value": p_miss,
        "psi": psi,
        "unseen_share": None,
        "reference_mean": float(r.mean()) if r.size else None,
        "current_mean": float(c.mean()) if c.size else None,
    }


def _categorical_feature(ref: np.ndarray, cur: np.ndarray) -> dict[str, Any]:
    keys = np.concatenate([ref, cur])
    keys = np.where(pd.isna(keys), _MISSING, keys)
    codes, uniques = pd.factorize(keys)
    k = len(uniques)
    ref_all = np.bincount(codes[: len(ref)], minlength=k).astype(float)
    cur_all = np.bincount(codes[len(ref) :], minlength=k).astype(float)
    # missing values are a bucket of their own, never an "unseen category" (a column the reference had
    # complete, now all missing, read "100% unseen categories")
    seen = (ref_all > 0) | (np.asarray(uniques, dtype=object) == _MISSING)
    # the reference's categories (and missing values), then one bucket for every category it never saw
    cr = np.append(ref_all[seen], 0.0)
    cc = np.append(cur_all[seen], cur_all[~seen].sum())
    psi = _psi(_shares(cr), _shares(cc))
    table = np.vstack([cr, cc])
    table = table[:, table.sum(axis=0) > 0]
    stat: float | None
    p_value: float | None
    if table.shape[1] < 2:
        stat, p_value = 0.0, 1.0  # one category in both windows: identical distributions
    else:
        res = stats.chi2_contingency(table, correction=False)
        stat, p_value = float(res.statistic), float(res.pvalue)
    return {
        "kind": "categorical",
        "test": "chi2",
        "statistic": stat,
        "p_value": p_value,
        "missing_p_value": None,
        "psi": psi,
        "unseen_share": float(cc[-1] / cc.sum()) if cc.sum() else None,
        "reference_mean": None,
        "current_mean": None,
    }


def _fmt_p(p: float) -> str:
    return f"{p:.2g}"


# --------------------------------------------------------------------------------------------
# data drift: meta-feature distance


def _mf_matrix(
    ref: pd.DataFrame, cur: pd.DataFrame, kinds: Mapping[str, str], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """A reference pool (at most :data:`METAFEATURE_POOL` rows) and the current sample (at most
    :data:`METAFEATURE_ROWS` rows) as float matrices on the reference's scale: the same columns,
    imputed with the reference's median / mode, categorical columns coded by the reference's levels."""
    names = list(kinds)
    if len(names) > METAFEATURE_COLS:
        names = [names[i] for i in np.sort(rng.choice(len(names), size=METAFEATURE_COLS, replace=False))]
    ref_rows = np.sort(rng.choice(len(ref), size=min(METAFEATURE_POOL, len(ref)), replace=False))
    cur_rows = np.sort(rng.choice(len(cur), size=min(METAFEATURE_ROWS, len(cur)), replace=False))
    ref_cols: list[np.ndarray] = []
    cur_cols: list[np.ndarray] = []
    cat_idx: list[int] = []
    for name in names:
        r_full = _col(ref, name)
        c_full = _col(cur, name)
        if kinds[name] == "numeric":
            rv = _numeric_values(r_full)
            ok = rv[~np.isnan(rv)]
            if ok.size == 0:
                continue
            med, lo, span = float(np.median(ok)), float(ok.min()), float(np.ptp(ok))
            span = span if span > 0 else 1.0
            for full, rows, out in ((rv, ref_rows, ref_cols), (_numeric_values(c_full), cur_rows, cur_cols)):
                v = full[rows]
                out.append((np.where(np.isnan(v), med, v) - lo) / span)
        else:
            rl = _label_values(r_full)
            present = pd.Series(rl).value_counts()
            if present.empty:
                continue
            top = list(present.index[: mf.MAX_CATEGORY_LEVELS - 1])
            code = {lv: float(i) for i, lv in enumerate(top)}
            other, mode = float(len(top)), 0.0
            cat_idx.append(len(ref_cols))
            for labels, rows, out in ((rl, ref_rows, ref_cols), (_label_values(c_full), cur_rows, cur_cols)):
                out.append(np.array([mode if v is None else code.get(v, other) for v in labels[rows]]))
    if not ref_cols:
        return np.zeros((len(ref_rows), 0)), np.zeros((len(cur_rows), 0)), []
    return np.column_stack(ref_cols), np.column_stack(cur_cols), cat_idx


def _summary(out: dict[str, float], name: str, values: np.ndarray) -> None:
    v = values[np.isfinite(values)]
    out[f"mfe.{name}.mean"] = float(v.mean()) if v.size else math.nan
    out[f"mfe.{name}.sd"] = float(v.std(ddof=1)) if v.size > 1 else math.nan


def _unsupervised_metafeatures(X: np.ndarray, cat_cols: list[int]) -> dict[str, float]:
    """The cheap unsupervised meta-features of one window (see the module docstring), numpy only."""
    out: dict[str, float] = {}
    n = X.shape[0]
    is_cat = np.zeros(X.shape[1], dtype=bool)
    is_cat[cat_cols] = True
    num = X[:, ~is_cat]
    with np.errstate(all="ignore"):
        if num.shape[1]:
            mean = num.mean(axis=0)
            dev = num - mean
            m2 = (dev**2).mean(axis=0)
            S = np.sort(num, axis=0)
            q1, med, q3 = np.quantile(num, [0.25, 0.5, 0.75], axis=0)
            iqr = q3 - q1
            k = int(0.2 * n)
            n_unique = (np.diff(S, axis=0) != 0).sum(axis=0) + 1
            _summary(out, "mean", mean)
            _summary(out, "sd", num.std(axis=0, ddof=1))
            _summary(out, "var", num.var(axis=0, ddof=1))
            _summary(out, "median", med)
            _summary(out, "iq_range", iqr)
            _summary(out, "mad", 1.4826 * np.median(np.abs(num - med), axis=0))
            _summary(out, "t_mean", S[k : n - k].mean(axis=0) if n - 2 * k > 0 else mean)
            _summary(out, "skewness", (dev**3).mean(axis=0) / m2**1.5)
            _summary(out, "kurtosis", (dev**4).mean(axis=0) / m2**2 - 3.0)
            _summary(out, "sparsity", (n / n_unique - 1.0) / max(n - 1, 1))
            lo_fence, hi_fence = q1 - 1.5 * iqr, q3 + 1.5 * iqr
            outside = (num < lo_fence) | (num > hi_fence)
            out["mfe.nr_outliers"] = float(outside.any(axis=0).sum())
            if num.shape[1] >= 2:
                cov = np.cov(num, rowvar=False)
                sd = np.sqrt(np.diag(cov))
                cor = cov / np.outer(sd, sd)
                upper = np.triu_indices(num.shape[1], k=1)
                abs_cor = np.abs(cor[upper])
                _summary(out, "cor", abs_cor)
                _summary(out, "cov", np.abs(cov[upper]))
                _summary(out, "eigenvalues", np.linalg.eigvalsh(cov))
                ok = abs_cor[np.isfinite(abs_cor)]
                out["mfe.nr_cor_attr"] = float((ok >= 0.5).mean()) if ok.size else math.nan
        # attribute entropy (bits): categorical codes as they are, numeric values in 12 fixed bins of the
        # reference scale (below 0, ten tenths of [0, 1), 1 and above), so a shift moves the counts
        ent = []
        for j in range(X.shape[1]):
            codes = X[:, j].astype(np.int64) if is_cat[j] else np.digitize(X[:, j], _ENTROPY_EDGES)
            p = np.bincount(codes) / n
            p = p[p > 0]
            ent.append(float(-(p * np.log2(p)).sum()))
        _summary(out, "attr_ent", np.asarray(ent))
    return {
        k: (mf.signed_log(v) if k in mf.SIGNED_LOG_FEATURES else (v if math.isfinite(v) else math.nan))
        for k, v in out.items()
    }


def metafeature_distance(
    reference: pd.DataFrame, current: pd.DataFrame, kinds: Mapping[str, str], seed: int = 0
) -> dict[str, Any]:
    """The meta-feature distance of ``current`` from ``reference`` (see the module docstring).

    Returns ``{"distance", "n_metafeatures", "n_rows", "top", "error"}``: ``top`` lists the 5 most
    changed meta-features as ``{name, reference (mean over the reference samples), current, z}``;
    ``distance`` is None (with ``error``) when nothing could be computed.
    """
    rng = np.random.default_rng(seed)
    empty: dict[str, Any] = {"distance": None, "n_metafeatures": 0, "n_rows": 0, "top": [], "error": None}
    try:
        pool, Xc, cat_cols = _mf_matrix(reference, current, kinds, rng)
        N = len(pool)
        n = min(len(Xc), N // 2)  # reference samples without replacement need a pool of 2n rows or more
        if pool.shape[1] == 0 or n < 2:
            return {**empty, "error": "no usable column"}
        if n < len(Xc):
            Xc = Xc[np.sort(rng.choice(len(Xc), size=n, replace=False))]
        samples = [
            _unsupervised_metafeatures(pool[rng.choice(N, size=n, replace=False)], cat_cols)
            for _ in range(METAFEATURE_SAMPLES)
        ]
        b = _unsupervised_metafeatures(Xc, cat_cols)
        # samples of n of N rows vary less than samples of the population: finite population correction
        fpc = math.sqrt((N - n) / (N - 1)) if N > 1 else 1.0
    except Exception as err:  # a meta-feature failure must not hide the per-feature results
        return {**empty, "error": f"{type(err).__name__}: {err}"}
    terms = []
    for name, vb in b.items():
        ref_vals = np.array([s.get(name, math.nan) for s in samples], dtype=float)
        ref_vals = ref_vals[np.isfinite(ref_vals)]
        if not math.isfinite(vb) or ref_vals.size < max(3, METAFEATURE_SAMPLES // 2):
            continue
        centre = float(ref_vals.mean())
        spread = max(float(ref_vals.std(ddof=1)) / fpc, _SD_FLOOR * max(1.0, abs(centre)))
        terms.append((min(abs(vb - centre) / spread, _Z_CAP), name, centre, vb))
    if not terms:
        return {**empty, "n_rows": n, "error": "no meta-feature finite in both windows"}
    terms.sort(key=lambda t: -t[0])
    return {
        "distance": float(np.mean([t[0] for t in terms])),
        "n_metafeatures": len(terms),
        "n_rows": n,
        "top": [{"name": nm, "reference": va, "current": vb, "z": z} for z, nm, va, vb in terms[:5]],
        "error": None,
    }


# --------------------------------------------------------------------------------------------
# data drift: public


def data_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Mapping[str, str] | None = None,
    thresholds: DriftThresholds | Mapping[str, Any] | None = None,
    *,
    seed: int = 0,
) -> dict[str, Any]:
    """Data drift of ``current`` against ``reference`` (see the module docstring for the tests).

    ``columns`` maps the feature names to compare to ``"numeric"`` or ``"categorical"`` (default: every
    reference column, kinds inferred from the dtypes by :func:`infer_column_kinds`); the current data
    must have them all (extra columns are ignored). Returns a JSON-ready dict:

    - ``status``: ``"ok"`` or ``"insufficient_data"`` (fewer than ``min_rows`` current or reference
      rows: nothing is tested and nothing flagged); ``drifted`` and ``reason`` (one line);
    - ``n_reference``, ``n_current``, ``n_features``, ``n_drifted``, ``share_drifted``;
    - ``correction`` and ``p_thresholds`` (``{"numeric": .., "categorical": ..}``, the corrected levels);
    - ``metafeature_distance`` (None when it could not be computed), ``metafeature_drifted``,
      ``metafeature_detail`` (``n_metafeatures``, ``n_rows`` per sample, ``top``: the 5 most changed
      meta-features as ``{name, reference, current, z}``, ``error``);
    - ``features``: one dict per feature in column order with ``name``, ``kind``, ``test``
      (``ks``, ``ks+missing`` or ``chi2``), ``statistic``, ``p_value``, ``missing_p_value``, ``psi``,
      ``unseen_share`` (categorical: share of current rows in categories the reference never saw),
      ``missing_reference``, ``missing_current``, ``reference_mean``/``current_mean`` (numeric),
      ``drifted`` and ``reason``;
    - ``thresholds``: the thresholds used (:meth:`DriftThresholds.to_dict`).
    """
    th = _thresholds(thresholds)
    kinds = _column_kinds(reference, current, columns)
    n_ref, n_cur = len(reference), len(current)
    out: dict[str, Any] = {
        "status": "ok",
        "n_reference": n_ref,
        "n_current": n_cur,
        "n_features": len(kinds),
        "n_drifted": 0,
        "share_drifted": 0.0,
        "drifted": False,
        "reason": "",
        "correction": th.correction,
        "p_thresholds": {},
        "metafeature_distance": None,
        "metafeature_drifted": False,
        "metafeature_detail": {},
        "features": [],
        "thresholds": th.to_dict(),
    }
    if n_cur < th.min_rows or n_ref < th.min_rows:
        out["status"] = "insufficient_data"
        out["reason"] = (
            f"insufficient data: {n_cur} current and {n_ref} reference rows, each needs at least "
            f"min_rows={th.min_rows}; not tested"
        )
        out["share_drifted"] = None
        return json_safe(out)
    m = len(kinds) if th.correction == "bonferroni" else 1
    alpha = {"numeric": th.ks_pvalue / m, "categorical": th.chi2_pvalue / m}
    out["p_thresholds"] = alpha
    features = []
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        for name, kind in kinds.items():
            r_s, c_s = _col(reference, name), _col(current, name)
            if kind == "numeric":
                info = _numeric_feature(_numeric_values(r_s), _numeric_values(c_s), th.bins)
                test_name = "KS" if info["missing_p_value"] is None else "KS/missing"
            else:
                info = _categorical_feature(_label_values(r_s), _label_values(c_s))
                test_name = "chi2"
            miss_r, miss_c = float(r_s.isna().mean()), float(c_s.isna().mean())
            psi, p = info["psi"], info["p_value"]
            a = alpha[kind]
            big = psi >= th.psi
            sig = p is not None and p < a
            drifted = bool(big and sig)
            p_txt = "n/a" if p is None else _fmt_p(p)
            if drifted:
                reason = f"PSI {psi:.3g} >= {th.psi:g} and {test_name} p={p_txt} < {_fmt_p(a)}"
                if miss_r != miss_c and (info["missing_p_value"] is not None or abs(miss_c - miss_r) >= 0.01):
                    reason += f" (missing {miss_r:.0%} -> {miss_c:.0%})"
                if info.get("unseen_share"):
                    reason += f" ({info['unseen_share']:.0%} unseen categories)"
            elif not big:
                reason = f"PSI {psi:.3g} < {th.psi:g}"
            else:
                reason = (
                    f"PSI {psi:.3g} >= {th.psi:g} but {test_name} p={p_txt} >= {_fmt_p(a)} (not significant)"
                )
            features.append(
                {
                    "name": name,
                    **info,
                    "missing_reference": miss_r,
                    "missing_current": miss_c,
                    "drifted": drifted,
                    "reason": reason,
                }
            )
    n_drifted = sum(f["drifted"] for f in features)
    share = n_drifted / len(features)
    mfd = metafeature_distance(reference, current, kinds, seed=seed)
    dist = mfd.pop("distance")
    n_mf = int(mfd.get("n_metafeatures") or 0)
    mf_drifted = dist is not None and dist >= th.metafeature_distance and n_mf >= MIN_METAFEATURES
    share_drifted = share >= th.drifted_share
    parts = [
        f"{n_drifted} of {len(features)} features drifted ({share:.0%} {'>=' if share_drifted else '<'} {th.drifted_share:.0%})"
    ]
    if dist is None:
        parts.append(f"meta-feature distance unavailable ({mfd.get('error')})")
    else:
        parts.append(
            f"meta-feature distance {dist:.3f} {'>=' if dist >= th.metafeature_distance else '<'} "
            f"{th.metafeature_distance:g}"
            + (f" (only {n_mf} meta-features: not used to flag)" if n_mf < MIN_METAFEATURES else "")
        )
    drifted = share_drifted or mf_drifted
    out.update(
        n_drifted=n_drifted,
        share_drifted=share,
        drifted=drifted,
        reason=("drift: " if drifted else "no drift: ") + "; ".join(parts),
        metafeature_distance=dist,
        metafeature_drifted=mf_drifted,
        metafeature_detail=mfd,
        features=features,
    )
    return json_safe(out)


# --------------------------------------------------------------------------------------------
# concept drift


def _parse(cell: Any) -> Any:
    if isinstance(cell, str | bytes):
        try:
            return json.loads(cell)
        except ValueError:
            return cell  # a plain string label
    return cell


def logged_prediction(
    values: Sequence[Any] | pd.Series,
    probas: Sequence[Any] | pd.Series | None = None,
    *,
    target_kinds: Sequence[TaskKind | str],
    classes: Sequence[Sequence[Any] | None] | None = None,
) -> Prediction:
    """A :class:`Prediction` from logged rows (each cell a Python object or its JSON text).

    - ``values``: per row, the list of predicted values, one per target (a bare value for one target);
    - ``probas`` (optional): per row, one entry per target (a bare entry for one target), each either a
      list of class probabilities in the order of ``classes[t]``, a ``{class: probability}`` mapping
      (JSON keys are strings; labels match by value, so ``"1"`` is class ``1``), or null;
    - ``classes``: per target the model's class labels (``None`` for regression targets); needed for
      list probabilities, else taken from the mapping keys.
    """
    kinds = [TaskKind(k) for k in target_kinds]
    T = len(kinds)
    rows = [_parse(v) for v in (values.tolist() if isinstance(values, pd.Series) else list(values))]

    def per_target(row: Any, what: str, i: int) -> list[Any]:
        if T == 1 and not isinstance(row, list | tuple):
            return [row]
        if (
            T == 1
            and what == "probas"
            and isinstance(row, list | tuple)
            and row
            and not isinstance(row[0], list | tuple | dict | type(None))
        ):
            return [list(row)]  # a flat probability list for one target
        if T == 1 and what == "values" and isinstance(row, list | tuple) and len(row) != 1:
            raise InputError(
                f"row {i} has {len(row)} predicted values for 1 target; log one value per target"
            )
        if not isinstance(row, list | tuple) or len(row) != T:
            got = len(row) if isinstance(row, list | tuple) else 1
            raise InputError(f"row {i} has {got} {what} entries for {T} targets; log one entry per target")
        return list(row)

    vals = [per_target(r, "values", i) for i, r in enumerate(rows)]
    out_values = [np.array([row[t] for row in vals], dtype=object) for t in range(T)]
    for t, k in enumerate(kinds):
        if k is TaskKind.REGRESSION:
            out_values[t] = pd.to_numeric(pd.Series(out_values[t]), errors="coerce").to_numpy(dtype=float)
    out_probas: list[np.ndarray | None] = [None] * T
    out_classes: list[np.ndarray | None] = [None] * T
    if classes is not None:
        if len(classes) != T:
            raise InputError(
                f"classes has {len(classes)} entries for {T} targets; give one (or None) per target"
            )
        out_classes = [None if c is None else np.asarray(list(c), dtype=object) for c in classes]
    if probas is not None:
        prow = [_parse(p) for p in (probas.tolist() if isinstance(probas, pd.Series) else list(probas))]
        if len(prow) != len(rows):
            raise InputError(
                f"{len(prow)} probability rows for {len(rows)} prediction rows; log both per row"
            )
        per = [per_target(p, "probas", i) for i, p in enumerate(prow)]
        for t, k in enumerate(kinds):
            if k is TaskKind.REGRESSION:
                continue
            cells = [row[t] for row in per]
            if any(c is None for c in cells):
                continue  # some rows without probabilities: score from the labels only
            if all(isinstance(c, Mapping) for c in cells):
                labels = out_classes[t]
                if labels is None:
                    keys = sorted({str(key) for c in cells for key in c}, key=_label_order)
                    labels = np.asarray(keys, dtype=object)
                    out_classes[t] = labels
                idx = {str(lab): j for j, lab in enumerate(labels.tolist())}
                P = np.zeros((len(cells), len(labels)))
                for i, c in enumerate(cells):
                    for key, p in c.items():
                        if str(key) not in idx:
                            raise InputError(
                                f"row {i}: class {key!r} is not in classes[{t}]; log known classes"
                            )
                        P[i, idx[str(key)]] = float(p)
            else:
                if out_classes[t] is None:
                    raise InputError(
                        f"target {t}: probability lists need classes[{t}] (the model's class labels in column order)"
                    )
                try:
                    P = np.asarray(cells, dtype=float)
                except (TypeError, ValueError) as err:
                    raise InputError(
                        f"target {t}: probabilities are not numbers ({err}); log lists of floats"
                    ) from err
            out_probas[t] = P
    return Prediction(values=out_values, probas=out_probas, classes=out_classes)


def _label_order(k: str) -> tuple[int, float, str]:
    try:
        return (0, float(k), k)
    except ValueError:
        return (1, 0.0, k)


def _task(task: Task | Mapping[str, Any] | str, y: pd.DataFrame, metric: str | None) -> Task:
    if isinstance(task, Task):
        t = task
    elif isinstance(task, Mapping):
        t = Task.from_dict(dict(task))
    else:
        kind = TaskKind(str(task)) if str(task) in {k.value for k in TaskKind} else None
        if kind is None:
            raise InputError(f"unknown task kind {task!r}; use one of {', '.join(k.value for k in TaskKind)}")
        if kind is TaskKind.MULTITASK:
            raise InputError(
                "a multitask task needs its target kinds: pass the model's Task (or Task.to_dict())"
            )
        t = Task(kind=kind, targets=tuple(str(c) for c in y.columns))
    if t.n_targets != y.shape[1]:
        raise InputError(
            f"the task has {t.n_targets} target(s) but y_true has {y.shape[1]} column(s); give one column per target"
        )
    if metric is not None:
        t = Task(kind=t.kind, targets=t.targets, target_kinds=t.target_kinds, metric=check_task_metric(t, metric))
    return t


def concept_drift(
    y_true: pd.DataFrame | pd.Series | Sequence[Any],
    predictions: Prediction | pd.DataFrame,
    *,
    task: Task | Mapping[str, Any] | str,
    training_score: float,
    metric: str | None = None,
    classes: Sequence[Sequence[Any] | None] | None = None,
    window: int = 200,
    step: int | None = None,
    thresholds: DriftThresholds | Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Concept drift: labelled feedback, in time order, scored in rolling windows with the task's metric.

    - ``y_true``: the true labels, one column per target in the task's order (a Series or list for one
      target); ``predictions``: the model's predictions of the same rows, a :class:`Prediction` or a
      DataFrame of logged rows with a ``values`` column and optionally a ``probas`` column (formats in
      :func:`logged_prediction`; ``classes`` as there);
    - ``task``: the model's :class:`Task`, its ``to_dict()``, or just its kind (not for multitask);
      ``metric`` overrides ``task.metric``; its direction comes from :mod:`metalearn.data.metrics`;
    - ``training_score``: the model's score at training time (e.g. its cross-validated score);
    - windows of ``window`` rows every ``step`` rows (default ``window``: back to back), aligned on the
      latest row, at most :data:`MAX_WINDOWS` (the step grows on long feedback).

    Returns: ``status`` (``"ok"`` / ``"insufficient_data"`` below ``min_rows`` labelled rows), ``kind``,
    ``metric``, ``greater_is_better``, ``training_score``, ``n_rows``, ``window``, ``step``, ``windows``
    (``[{start, end, n_rows, score}]``, oldest first), ``latest_score`` (the last window),
    ``overall_score`` (all feedback), ``relative_degradation`` (how much worse the latest window is than
    training, as a fraction of ``|training_score|``; negative = better), ``threshold`` (``concept_drop``),
    ``drifted`` and ``reason``.
    """
    th = _thresholds(thresholds)
    if isinstance(y_true, pd.Series):
        y = y_true.to_frame()
    elif isinstance(y_true, pd.DataFrame):
        y = y_true
    else:
        y = pd.DataFrame({"target": list(y_true)})
    y = y.reset_index(drop=True)
    t = _task(task, y, metric)
    m = get_metric(t.metric, t.kind)
    ts = finite_or_none(training_score)
    if ts is None or isinstance(training_score, bool):
        raise InputError(
            f"training_score must be a finite number (the model's {t.metric} at training), got {training_score!r}"
        )
    if isinstance(predictions, pd.DataFrame):
        if "values" not in predictions.columns:
            raise InputError(
                "logged predictions need a 'values' column (per row: one predicted value per target)"
            )
        pred = logged_prediction(
            predictions["values"],
            predictions["probas"] if "probas" in predictions.columns else None,
            target_kinds=t.target_kinds,
            classes=classes,
        )
    elif isinstance(predictions, Prediction):
        pred = predictions
    else:
        raise InputError(
            f"predictions must be a Prediction or a DataFrame of logged rows, got {type(predictions).__name__}"
        )
    n = len(y)
    if pred.n_rows != n:
        raise InputError(f"{pred.n_rows} predicted rows for {n} feedback rows; give one prediction per label")
    if not (isinstance(window, int) and window >= 2):
        raise InputError(f"window must be an integer >= 2, got {window!r}")
    if step is not None and not (isinstance(step, int) and step >= 1):
        raise InputError(f"step must be a positive integer or None, got {step!r}")
    out: dict[str, Any] = {
        "status": "ok",
        "kind": str(t.kind),
        "metric": t.metric,
        "greater_is_better": m.greater_is_better,
        "training_score": ts,
        "n_rows": n,
        "window": window,
        "step": step or window,
        "windows": [],
        "latest_score": None,
        "overall_score": None,
        "relative_degradation": None,
        "threshold": th.concept_drop,
        "p_value": None,  # computed when the latest window is worse by the threshold (see _no_worse_share)
        "pvalue_threshold": th.concept_pvalue,
        "drifted": False,
        "reason": "",
    }
    if n < th.min_rows:
        out["status"] = "insufficient_data"
        out["reason"] = f"insufficient data: {n} labelled rows < min_rows {th.min_rows}; not tested"
        return json_safe(out)
    w = min(window, n)
    st = step or window
    if (n - w) // st + 1 > MAX_WINDOWS:
        st = math.ceil((n - w) / (MAX_WINDOWS - 1))
    out.update(window=w, step=st)
    ends = list(range(n, w - 1, -st))[::-1]
    windows = []
    for end in ends:
        s = score(t, y.iloc[end - w : end], pred.take(slice(end - w, end)))
        windows.append({"start": end - w, "end": end, "n_rows": w, "score": finite_or_none(s)})
    latest = windows[-1]["score"]
    overall = finite_or_none(score(t, y, pred))
    out.update(windows=windows, latest_score=latest, overall_score=overall)
    if latest is None:
        out["reason"] = f"{t.metric} is undefined on the latest {w} rows (e.g. a single class); not tested"
        return json_safe(out)
    worse = (ts - latest) if m.greater_is_better else (latest - ts)
    rel = worse / max(abs(ts), 1e-12)
    p_value = None
    if rel >= th.concept_drop:  # worse by the threshold: is it more than the window's noise?
        p_value = _no_worse_share(t, y.iloc[n - w :], pred.take(slice(n - w, n)), ts, m.greater_is_better)
    drifted = rel >= th.concept_drop and p_value is not None and p_value <= th.concept_pvalue
    out.update(relative_degradation=rel, drifted=drifted, p_value=p_value, pvalue_threshold=th.concept_pvalue)
    direction = "worse" if rel > 0 else "better"
    noise = ""
    if p_value is not None:
        noise = (f"; {p_value:.0%} of {BOOTSTRAP_RESAMPLES} bootstrap resamples of those rows score no worse than "
                 "training" + ("" if drifted else f" (> {th.concept_pvalue:g}): within the noise of {w} rows"))
    out["reason"] = (
        f"{'concept drift' if drifted else 'no concept drift'}: {t.metric} {latest:.4g} on the latest {w} rows vs "
        f"{ts:.4g} at training ({abs(rel):.1%} {direction}; threshold {th.concept_drop:.0%} worse{noise})"
    )
    return json_safe(out)


#: resamples of the latest window that test whether it is significantly worse than training
BOOTSTRAP_RESAMPLES = 200


def _no_worse_share(t: Task, y: pd.DataFrame, pred: Prediction, training: float, greater_is_better: bool) -> float:
    """The share of :data:`BOOTSTRAP_RESAMPLES` resamples (with replacement, seeded) of the rows ``y`` /
    ``pred`` whose score is no worse than ``training`` (a resample where the metric is undefined, e.g. a single
    class, counts as no worse): a one-sided bootstrap p-value of "the model is worse now"."""
    rng = np.random.default_rng(0)
    n = len(y)
    no_worse = 0
    for _ in range(BOOTSTRAP_RESAMPLES):
        idx = rng.integers(0, n, n)
        s = finite_or_none(score(t, y.iloc[idx].reset_index(drop=True), pred.take(idx)))
        if s is None or (s >= training if greater_is_better else s <= training):
            no_worse += 1
    return no_worse / BOOTSTRAP_RESAMPLES
