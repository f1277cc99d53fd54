"""Meta-feature extraction: a versioned, fixed-length description of a dataset.

Every dataset, whatever its task kind, is described by the same ordered vector of named floats
(:func:`metafeature_names`); :func:`extract_metafeatures` fills it and puts NaN where a value cannot
be computed (never ``inf``). The vector is deterministic for a fixed ``seed``. :data:`EXTRACTOR_VERSION`
names the schema and the algorithm: change it whenever a name is added/removed or a value changes
meaning, so the knowledge base never mixes vectors of different extractors.

The vector has four blocks (names in brackets are prefixes):

1. **Simple** (no prefix, computed on the full data, always available): ``log_n_rows``,
   ``log_n_features`` (natural log), ``ratio_categorical``, ``ratio_binary_features`` (features with at
   most two distinct values), ``missing_ratio`` (missing cells / all cells), ``rows_with_missing_ratio``,
   ``cols_with_missing_ratio``, ``mean_cat_levels`` / ``max_cat_levels`` (distinct values of the
   categorical features; 0 without categorical features), the kind one-hot ``is_binary`` ...
   ``is_multitask``, ``n_classes`` (classes of the *representative target*, see below; 0 for a
   regression target) and ``minority_class_ratio`` (smallest / largest class count of the
   representative target; NaN for regression).

2. **Targets** (``label.``, computed on all targets): ``n_targets``; ``frac_class_targets``;
   ``assoc_mean`` / ``assoc_max``, the mean / max pairwise association between targets (``|Pearson|``
   between numeric or 0/1 targets, the correlation ratio between a multiclass and a numeric target,
   Cramer's V between a multiclass and a class target; all in [0, 1]); the label-set statistics over
   the binary targets seen as 0/1 label indicators -- ``cardinality`` (mean labels per row),
   ``density`` (cardinality / number of labels), ``n_distinct_sets`` and ``distinct_sets_ratio``
   (distinct label sets / rows), ``ir_mean`` / ``ir_max`` (Mulan's per-label imbalance ratio IRLbl:
   positives of the most frequent label / positives of the label); and the per-target statistics of
   the regression targets summarised by mean and sd: ``target_skewness_*``, ``target_kurtosis_*``
   (Fisher) and ``target_cv_*`` (sd / mean, only for ratio-scale targets: NaN for a target with
   negative values, e.g. a standardised one).

   Neutral values, chosen so one schema serves every kind: a single-target dataset has
   ``n_targets = 1`` and ``assoc_mean = assoc_max = 0`` (there is no other target to share structure
   with). The label-set statistics are NaN without a binary target (regression, multiclass,
   multitarget); a single binary target counts as one label (0/1 values: 1 is the label; other values:
   the minority class is), so cardinality = density = its positive rate and ``ir_*`` = 1 (stored
   log-scaled, see Scaling). The
   per-target statistics are NaN without a regression target; with one regression target their ``sd``
   is 0.

3. **pymfe** (``mfe.<feature>.<summary>``, pymfe 0.4.4): groups statistical, info-theory,
   model-based and landmarking with summaries mean and sd (NaN-ignoring variants; the names say
   ``mean``/``sd``). pymfe's general group is replaced by block 1, which counts the full data rather
   than the subsample. Numeric data are min-max rescaled (so the statistical values are comparable
   across datasets), and the scale-only features ``max``, ``min``, ``range`` (constant after
   rescaling), ``g_mean`` and ``h_mean`` (degenerate on data containing 0) are excluded, and so is
   ``sd_ratio`` (Box's M test: NaN on ~80% of the corpus because class covariances are singular).
   ``can_cor.sd`` is NaN for binary targets (there is a single canonical correlation). pymfe treats
   every target as class labels, so the supervised features (model-based, landmarking, the class
   parts of info-theory, canonical correlations/discriminant statistics) are computed only for a
   class representative target and are NaN for a regression one; the unsupervised features
   (e.g. ``cor``, ``skewness``, ``attr_ent``, ``attr_conc``) are computed for every kind.

4. **Regression** (``reg.``, only for a regression representative target, NaN otherwise): target
   shape (``target_skewness``, ``target_kurtosis``, ``target_unique_ratio``, ``target_outlier_ratio``
   beyond 1.5 IQR), feature-target ``|Pearson|`` and ``|Spearman|`` mean/max, landmarkers -- 3-fold CV
   R^2 (clipped to [-1, 1]) of ridge regression, a decision stump, a depth-4 tree and 1-NN -- and a
   regularised regression tree (min leaf = 1% of rows): ``tree_leaves_ratio`` (leaves / rows),
   ``tree_depth``, ``tree_importance_max`` and ``tree_importance_frac_used``.

**Representative target.** The supervised features describe one target: the target itself for
binary/multiclass/regression; for multilabel the most balanced label (positive rate closest to 0.5,
first on ties); for multitarget the first target; for multitask the first class target (the class
features are the richer ones), or the first target when all are continuous. Rows where it is
missing are dropped for the supervised features.

**Cost control.** Landmarking, model-based and info-theory dominate pymfe's cost, and it grows
with rows (1-NN is quadratic) and columns. pymfe and block 4 therefore run on a sample of at most
``max_rows`` rows (stratified on a class representative target, every class keeps >= 2 rows) and at
most ``max_cols`` feature columns (a seeded random choice among the non-constant columns);
categorical columns keep their ``MAX_CATEGORY_LEVELS - 1`` most frequent levels (the rest are
pooled) so one-hot expansion stays small. Blocks 1 and 2 always use the full data. Missing values
are imputed before pymfe (median for numeric, most frequent level for categorical columns);
otherwise pymfe turns half of its values into NaN. Further choices, all measured:

- pymfe's info-theory helpers build one ``pd.crosstab`` per attribute (pair); under pandas 3 these
  took 1-3 s per dataset, so :func:`_install_fast_crosstab` swaps them for numpy contingency tables
  computing the same numbers (checked in the tests);
- ``attr_conc`` compares ordered pairs of 8 sampled attributes (pymfe default 12: 132 pairs);
- landmarking uses 5-fold (shuffled, seeded) CV instead of 10 (-35% on 100k x 100);
- the defaults (2,000 rows, 50 columns) keep the whole corpus far inside the targets: on one core,
  per dataset median 0.13 s, p95 0.70 s, max 2.0 s (coil2000) wall; 100,000 x 100 (10
  categorical, 1% missing) 0.9-1.3 s. 5,000 rows / 100 columns would cost p95 2.6 s but 11 s on
  100k x 100 and 29 s on coil2000, missing the 5 s targets. See ``benchmarks/metafeatures.py``.

**Scaling.** Unbounded heavy-tailed features (:data:`SIGNED_LOG_FEATURES`, e.g. tree sizes,
``lh_trace``, kurtosis, imbalance ratios) are stored as ``sign(x) * log1p(|x|)`` under their usual
names: their raw values span up to 18 orders of magnitude on the corpus, which min-max scaling in a
recommender cannot use. ``label.n_targets`` and ``n_classes`` stay raw counts.

**NaN by design.** Classification vectors are ~80% finite on the corpus; regression and
multitarget vectors ~53% (the class-only pymfe features and the label-set statistics are NaN).

``timeout`` is soft: blocks 1 and 2 (cheap) always run; the expensive stages (pymfe
statistical+info-theory, pymfe model-based+landmarking or the regression block) are skipped, their
values left NaN, when they would start after the deadline. A stage that is running is not stopped.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy import stats

from metalearn.data.dataset import Dataset
from metalearn.data.errors import DataError, InputError, NotFoundError
from metalearn.data.task import Task, TaskKind
from metalearn.kb.base import KnowledgeBase
from metalearn.kb.records import MetaFeatureRecord, dataset_record

__all__ = [
    "DEFAULT_MAX_COLS",
    "DEFAULT_MAX_ROWS",
    "DEFAULT_TIMEOUT",
    "EXTRACTOR_VERSION",
    "MAX_CATEGORY_LEVELS",
    "SIGNED_LOG_FEATURES",
    "extract_metafeatures",
    "metafeature_names",
    "metafeature_record",
    "not_computable",
    "signed_log",
]

log = logging.getLogger(__name__)

#: Names the schema and the algorithm; bump it when a name or the meaning of a value changes.
EXTRACTOR_VERSION = "mf-1"
#: Rows used by the pymfe and regression blocks (sampled, stratified for class targets).
DEFAULT_MAX_ROWS = 2000
#: Feature columns used by the pymfe and regression blocks (seeded random choice).
DEFAULT_MAX_COLS = 50
#: Soft time budget in seconds; stages that would start after it are skipped (values NaN).
DEFAULT_TIMEOUT = 60.0
#: Categorical columns keep their ``MAX_CATEGORY_LEVELS - 1`` most frequent levels, the rest pooled.
MAX_CATEGORY_LEVELS = 10

MIN_MAX_ROWS = 50
_OTHER_LEVEL = "__other__"

_KIND_FLAGS: tuple[tuple[str, TaskKind], ...] = (
    ("is_binary", TaskKind.BINARY),
    ("is_multiclass", TaskKind.MULTICLASS),
    ("is_regression", TaskKind.REGRESSION),
    ("is_multilabel", TaskKind.MULTILABEL),
    ("is_multitarget", TaskKind.MULTITARGET),
    ("is_multitask", TaskKind.MULTITASK),
)

SIMPLE_NAMES: tuple[str, ...] = (
    "log_n_rows",
    "log_n_features",
    "ratio_categorical",
    "ratio_binary_features",
    "missing_ratio",
    "rows_with_missing_ratio",
    "cols_with_missing_ratio",
    "mean_cat_levels",
    "max_cat_levels",
    *(flag for flag, _ in _KIND_FLAGS),
    "n_classes",
    "minority_class_ratio",
)

LABEL_NAMES: tuple[str, ...] = tuple(
    "label." + n
    for n in (
        "n_targets",
        "frac_class_targets",
        "assoc_mean",
        "assoc_max",
        "cardinality",
        "density",
        "n_distinct_sets",
        "distinct_sets_ratio",
        "ir_mean",
        "ir_max",
        "target_skewness_mean",
        "target_skewness_sd",
        "target_kurtosis_mean",
        "target_kurtosis_sd",
        "target_cv_mean",
        "target_cv_sd",
    )
)

REGRESSION_NAMES: tuple[str, ...] = tuple(
    "reg." + n
    for n in (
        "target_skewness",
        "target_kurtosis",
        "target_unique_ratio",
        "target_outlier_ratio",
        "abs_cor_mean",
        "abs_cor_max",
        "abs_spearman_mean",
        "abs_spearman_max",
        "lm_linear_r2",
        "lm_stump_r2",
        "lm_tree_r2",
        "lm_nn1_r2",
        "tree_leaves_ratio",
        "tree_depth",
        "tree_importance_max",
        "tree_importance_frac_used",
    )
)

#: Unbounded, heavy-tailed features stored as ``sign(x) * log1p(|x|)`` (their raw values span up to
#: 18 orders of magnitude on the corpus, e.g. ``mfe.leaves_homo``, ``mfe.lh_trace``; min-max or
#: z-scaling of raw values would squash every other dataset to one point).
SIGNED_LOG_FEATURES: frozenset[str] = frozenset(
    {
        "max_cat_levels",
        "label.n_distinct_sets",
        "label.ir_mean",
        "label.ir_max",
        "label.target_kurtosis_mean",
        "label.target_kurtosis_sd",
        "label.target_cv_mean",
        "label.target_cv_sd",
        "mfe.eq_num_attr",
        "mfe.ns_ratio",
        "mfe.kurtosis.mean",
        "mfe.kurtosis.sd",
        "mfe.lh_trace",
        "mfe.roy_root",
        "mfe.p_trace",
        "mfe.leaves",
        "mfe.nodes",
        "mfe.leaves_homo.mean",
        "mfe.leaves_homo.sd",
        "mfe.nodes_per_attr",
        "mfe.nodes_per_level.mean",
        "mfe.nodes_per_level.sd",
        "mfe.nodes_repeated.mean",
        "mfe.nodes_repeated.sd",
        "mfe.nr_outliers",
        "mfe.nr_norm",
        "reg.target_kurtosis",
    }
)

_PYMFE_STAGE1_GROUPS = ("statistical", "info-theory")
_PYMFE_STAGE2_GROUPS = ("model-based", "landmarking")
_PYMFE_GROUPS = _PYMFE_STAGE1_GROUPS + _PYMFE_STAGE2_GROUPS
#: scale-only statistics: constant after min-max rescaling (max, min, range) or degenerate on 0s
#: (g_mean, h_mean); sd_ratio (Box's M test) is NaN on ~80% of the corpus (singular class covariances)
_PYMFE_EXCLUDED = frozenset({"max", "min", "range", "g_mean", "h_mean", "sd_ratio"})
_PYMFE_SUMMARY = ("nanmean", "nansd")
_SUMMARY_RENAME = {"nanmean": "mean", "nansd": "sd"}
_PYMFE_CV_FOLDS = 5
_REG_CV_FOLDS = 3
#: pymfe's attr_conc compares every ordered pair of this many sampled attributes (pymfe default 12,
#: 132 pairs at ~5 ms each); 8 attributes (56 pairs) keep it under ~0.3 s.
_ATTR_CONC_MAX_ATTRS = 8


def _new_mfe(groups: Sequence[str], seed: int) -> object:
    from pymfe.mfe import MFE

    return MFE(
        groups=list(groups),
        features=list(_pymfe_features(tuple(groups))),
        summary=list(_PYMFE_SUMMARY),
        num_cv_folds=_PYMFE_CV_FOLDS,
        shuffle_cv_folds=True,
        random_state=seed,
        suppress_warnings=True,
    )


@lru_cache(maxsize=8)
def _pymfe_features(groups: tuple[str, ...]) -> tuple[str, ...]:
    from pymfe.mfe import MFE

    return tuple(f for f in MFE.valid_metafeatures(groups=list(groups)) if f not in _PYMFE_EXCLUDED)


def _schema_name(pymfe_name: str) -> str:
    """``cor.nanmean`` -> ``mfe.cor.mean``; ``leaves`` -> ``mfe.leaves``."""
    head, _, summary = pymfe_name.partition(".")
    if summary:
        return f"mfe.{head}.{_SUMMARY_RENAME.get(summary, summary)}"
    return f"mfe.{head}"


@lru_cache(maxsize=1)
def _pymfe_names() -> tuple[str, ...]:
    """The pymfe part of the schema, computed once from pymfe's own name API (no data involved)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mfe = _new_mfe(_PYMFE_GROUPS, seed=0)
        names = mfe.extract_metafeature_names(supervised=True)  # type: ignore[attr-defined]
    return tuple(_schema_name(n) for n in names)


@lru_cache(maxsize=1)
def metafeature_names() -> tuple[str, ...]:
    """The fixed, ordered schema of the meta-feature vector (the same for every task kind)."""
    names = SIMPLE_NAMES + LABEL_NAMES + _pymfe_names() + REGRESSION_NAMES
    if len(set(names)) != len(names) or not set(names) >= SIGNED_LOG_FEATURES:  # pragma: no cover
        raise RuntimeError("meta-feature schema is inconsistent (repeated or unknown names)")
    return names


#: Why a group of meta-features has no value for a task lacking the targets they describe: (prefix or
#: name, the target kinds the group needs, the reason). A NaN of a task that has such targets is "not
#: computable on this data" (e.g. a statistic of a constant column, a pymfe measure that failed).
_NEEDS: tuple[tuple[str, frozenset[TaskKind], str], ...] = (
    ("reg.", frozenset({TaskKind.REGRESSION}), "regression meta-features: defined for a numeric target"),
    ("label.target_", frozenset({TaskKind.REGRESSION}), "defined for numeric targets"),
    ("label.", frozenset({TaskKind.BINARY}), "defined for 0/1 (binary or multi-label) targets"),
    ("mfe.", frozenset({TaskKind.BINARY, TaskKind.MULTICLASS}), "pymfe's measures: defined for a class target"),
    ("n_classes", frozenset({TaskKind.BINARY, TaskKind.MULTICLASS}), "defined for a class target"),
    ("minority_class_ratio", frozenset({TaskKind.BINARY, TaskKind.MULTICLASS}), "defined for a class target"),
)


def not_computable(values: Mapping[str, float], task: Task) -> dict[str, str]:
    """Each meta-feature of ``values`` without a value (NaN), with why: the targets its group describes,
    when ``task`` has none of them (a multiclass dataset has no numeric target for ``reg.*``), else
    "not computable on this data". The recommenders of a kind compare datasets on the meta-features that
    kind's KB datasets have (a column mostly missing there is dropped, a missing value filled with the
    KB's median: :mod:`metalearn.metalearning.distances`)."""
    kinds = set(task.target_kinds)
    out: dict[str, str] = {}
    for name, v in values.items():
        if not (isinstance(v, float) and math.isnan(v)):
            continue
        need = next(((k, why) for prefix, k, why in _NEEDS if name.startswith(prefix)), None)
        out[name] = need[1] if need is not None and not (need[0] & kinds) else "not computable on this data"
    return out


def signed_log(x: float) -> float:
    """``sign(x) * log1p(|x|)``: the transform applied to :data:`SIGNED_LOG_FEATURES`."""
    return math.copysign(math.log1p(abs(x)), x) if math.isfinite(x) else math.nan


# --------------------------------------------------------------------------------------------
# helpers


def _finite(v: object) -> float:
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return f if math.isfinite(f) else math.nan


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    arr = np.asarray([v for v in values if math.isfinite(v)], dtype=float)
    if arr.size == 0:
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def _codes(s: pd.Series) -> np.ndarray:
    """Class codes of a label column: 0..k-1 in sorted label order, -1 for missing."""
    codes, _ = pd.factorize(s, sort=True, use_na_sentinel=True)
    return np.asarray(codes, dtype=np.int64)


def _class_counts(codes: np.ndarray) -> np.ndarray:
    """Counts of the classes present (codes of absent classes are dropped)."""
    counts = np.bincount(codes[codes >= 0]) if (codes >= 0).any() else np.zeros(0, dtype=np.int64)
    return counts[counts > 0]


def _binary_indicator(s: pd.Series) -> np.ndarray:
    """0/1 float indicator of a binary column (NaN where missing): 1 itself for 0/1 data, else the
    minority class (the later label in sorted order on ties)."""
    numeric_values = pd.api.types.is_numeric_dtype(
        s.dtype.categories.dtype if isinstance(s.dtype, pd.CategoricalDtype) else s.dtype
    )
    if numeric_values:
        num = _numeric(s)
        present = num[np.isfinite(num)]
        if present.size and np.isin(present, (0.0, 1.0)).all():
            return num
    codes = _codes(s)
    counts = np.bincount(codes[codes >= 0]) if (codes >= 0).any() else np.zeros(0, dtype=np.int64)
    if counts.size == 0:
        return np.full(len(s), np.nan)
    positive = int(np.argmin(counts[::-1]))  # ties -> the later code
    positive = counts.size - 1 - positive
    out = (codes == positive).astype(float)
    out[codes < 0] = np.nan
    return out


def _numeric(s: pd.Series) -> np.ndarray:
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(object)
    arr = np.array(pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan), dtype=float)
    arr[~np.isfinite(arr)] = np.nan
    return arr


def _abs_corr(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return math.nan
    a, b = a[ok], b[ok]
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return abs(float(np.corrcoef(a, b)[0, 1]))


def _correlation_ratio(codes: np.ndarray, values: np.ndarray) -> float:
    """Correlation ratio (eta) between class codes and a numeric column, in [0, 1]."""
    ok = (codes >= 0) & np.isfinite(values)
    if ok.sum() < 3:
        return math.nan
    v, g = values[ok], codes[ok]
    total = float(((v - v.mean()) ** 2).sum())
    if total == 0:
        return math.nan
    counts = np.bincount(g)
    sums = np.bincount(g, weights=v)
    present = counts > 0
    means = sums[present] / counts[present]
    between = float((counts[present] * (means - v.mean()) ** 2).sum())
    return math.sqrt(max(0.0, min(1.0, between / total)))


def _cramers_v(a: np.ndarray, b: np.ndarray) -> float:
    """Cramer's V between two class-code columns, in [0, 1]."""
    ok = (a >= 0) & (b >= 0)
    if ok.sum() < 3:
        return math.nan
    _, ai = np.unique(a[ok], return_inverse=True)
    _, bi = np.unique(b[ok], return_inverse=True)
    table = np.zeros((ai.max() + 1, bi.max() + 1))
    np.add.at(table, (ai, bi), 1.0)
    r, k = table.shape
    if r < 2 or k < 2:
        return math.nan
    n = table.sum()
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / n
    chi2 = float(((table - expected) ** 2 / expected).sum())
    return math.sqrt(max(0.0, min(1.0, chi2 / (n * (min(r, k) - 1)))))


# --------------------------------------------------------------------------------------------
# block 1: simple features


def _representative_target(dataset: Dataset) -> int:
    task = dataset.task
    kinds = task.target_kinds
    if task.kind is TaskKind.MULTILABEL:
        best, best_gap = 0, math.inf
        for i in range(task.n_targets):
            ind = _binary_indicator(dataset.y.iloc[:, i])
            rate = float(np.nanmean(ind)) if np.isfinite(ind).any() else math.nan
            gap = abs(rate - 0.5) if math.isfinite(rate) else math.inf
            if gap < best_gap:
                best, best_gap = i, gap
        return best
    if task.kind is TaskKind.MULTITASK:
        for i, k in enumerate(kinds):
            if k is not TaskKind.REGRESSION:
                return i
    return 0


def _simple_features(dataset: Dataset, rep: int) -> dict[str, float]:
    X = dataset.X
    n, d = X.shape
    out: dict[str, float] = {
        "log_n_rows": math.log(n),
        "log_n_features": math.log(d),
        "ratio_categorical": dataset.n_categorical / d,
    }
    missing = X.isna().to_numpy()
    n_inf = 0
    n_binary = 0
    cat_levels: list[int] = []
    for j in range(d):
        col = X.iloc[:, j]
        if dataset.categorical[j]:
            levels = len(_class_counts(_codes(col)))
            cat_levels.append(levels)
            n_binary += levels <= 2
            continue
        v = _numeric(col)
        raw = col.to_numpy(dtype=float, na_value=np.nan) if pd.api.types.is_float_dtype(col.dtype) else v
        n_inf += int(np.isinf(raw).sum())
        ok = np.isfinite(v)
        if not ok.any():
            n_binary += 1
            continue
        lo, hi = v[ok].min(), v[ok].max()
        n_binary += bool(np.all((v == lo) | (v == hi) | ~ok))
    out["missing_ratio"] = (float(missing.sum()) + n_inf) / (n * d)
    out["rows_with_missing_ratio"] = float(missing.any(axis=1).mean())
    out["cols_with_missing_ratio"] = float(missing.any(axis=0).mean())
    out["ratio_binary_features"] = n_binary / d
    out["mean_cat_levels"] = float(np.mean(cat_levels)) if cat_levels else 0.0
    out["max_cat_levels"] = float(max(cat_levels)) if cat_levels else 0.0
    for flag, kind in _KIND_FLAGS:
        out[flag] = float(dataset.task.kind is kind)
    target_kind = dataset.task.target_kinds[rep]
    if target_kind is TaskKind.REGRESSION:
        out["n_classes"] = 0.0
        out["minority_class_ratio"] = math.nan
    else:
        counts = _class_counts(_codes(dataset.y.iloc[:, rep]))
        out["n_classes"] = float(len(counts))
        out["minority_class_ratio"] = float(counts.min() / counts.max()) if len(counts) else math.nan
    return out


# --------------------------------------------------------------------------------------------
# block 2: target / label features


def _label_features(dataset: Dataset) -> dict[str, float]:
    y, task = dataset.y, dataset.task
    kinds = task.target_kinds
    t = task.n_targets
    out: dict[str, float] = {
        "label.n_targets": float(t),
        "label.frac_class_targets": float(np.mean([k is not TaskKind.REGRESSION for k in kinds])),
    }
    # pairwise association between targets
    if t == 1:
        out["label.assoc_mean"] = out["label.assoc_max"] = 0.0
    else:
        numeric_cols: list[np.ndarray] = []
        numeric_idx: list[int] = []
        for i, k in enumerate(kinds):
            if k is TaskKind.REGRESSION:
                numeric_cols.append(_numeric(y.iloc[:, i]))
                numeric_idx.append(i)
            elif k is TaskKind.BINARY:
                numeric_cols.append(_binary_indicator(y.iloc[:, i]))
                numeric_idx.append(i)
        assoc: list[float] = []
        if len(numeric_cols) >= 2:
            frame = pd.DataFrame(np.column_stack(numeric_cols))
            with np.errstate(all="ignore"):
                corr = frame.corr(min_periods=3).abs().to_numpy()
            iu = np.triu_indices(len(numeric_cols), k=1)
            assoc.extend(float(v) for v in corr[iu])
        multi_idx = [i for i, k in enumerate(kinds) if k is TaskKind.MULTICLASS]
        for a_pos, i in enumerate(multi_idx):
            li = _codes(y.iloc[:, i])
            for j in multi_idx[a_pos + 1 :]:
                assoc.append(_cramers_v(li, _codes(y.iloc[:, j])))
            for j in numeric_idx:
                if kinds[j] is TaskKind.BINARY:
                    assoc.append(_cramers_v(li, _codes(y.iloc[:, j])))
                else:
                    assoc.append(_correlation_ratio(li, _numeric(y.iloc[:, j])))
        finite = [a for a in assoc if math.isfinite(a)]
        out["label.assoc_mean"] = float(np.mean(finite)) if finite else math.nan
        out["label.assoc_max"] = float(np.max(finite)) if finite else math.nan
    # label-set statistics over the binary targets
    binary_idx = [i for i, k in enumerate(kinds) if k is TaskKind.BINARY]
    if binary_idx:
        L = np.column_stack([_binary_indicator(y.iloc[:, i]) for i in binary_idx])
        L = L[~np.isnan(L).any(axis=1)]
        if len(L):
            q = L.shape[1]
            per_row = L.sum(axis=1)
            out["label.cardinality"] = float(per_row.mean())
            out["label.density"] = float(per_row.mean() / q)
            n_sets = len(np.unique(L.astype(np.uint8), axis=0))
            out["label.n_distinct_sets"] = float(n_sets)
            out["label.distinct_sets_ratio"] = float(n_sets / len(L))
            positives = L.sum(axis=0)
            with np.errstate(divide="ignore", invalid="ignore"):
                ir = positives.max() / positives
            ir = ir[np.isfinite(ir)]
            out["label.ir_mean"] = float(ir.mean()) if ir.size else math.nan
            out["label.ir_max"] = float(ir.max()) if ir.size else math.nan
    # per-target statistics of the regression targets
    skews, kurts, cvs = [], [], []
    for i, k in enumerate(kinds):
        if k is not TaskKind.REGRESSION:
            continue
        v = _numeric(y.iloc[:, i])
        v = v[np.isfinite(v)]
        if v.size < 3 or np.ptp(v) == 0:
            continue
        with np.errstate(all="ignore"):
            skews.append(_finite(stats.skew(v)))
            kurts.append(_finite(stats.kurtosis(v)))
        mean, sd = float(v.mean()), float(v.std(ddof=1))
        cvs.append(sd / mean if v.min() >= 0 and mean > 0 else math.nan)  # ratio-scale targets only
    for name, vals in (("skewness", skews), ("kurtosis", kurts), ("cv", cvs)):
        m, s = _mean_sd(vals)
        out[f"label.target_{name}_mean"], out[f"label.target_{name}_sd"] = m, s
    return out


# --------------------------------------------------------------------------------------------
# sampling and preparation for the expensive blocks


@dataclass
class _Prepared:
    X: np.ndarray  # float matrix: imputed numeric values and capped categorical codes
    categorical: list[bool]
    y: np.ndarray  # representative target: class codes (int) or values (float)
    is_class: bool


def _sample_rows(y: np.ndarray, is_class: bool, max_rows: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of at most ~``max_rows`` rows; stratified on class codes, every class keeps >= 2 rows."""
    n = len(y)
    if n <= max_rows:
        return np.arange(n)
    if not is_class:
        return np.sort(rng.choice(n, size=max_rows, replace=False))
    parts = []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        take = min(len(members), max(2, round(len(members) * max_rows / n)))
        parts.append(rng.choice(members, size=take, replace=False))
    return np.sort(np.concatenate(parts))


def _categorical_column(s: pd.Series) -> np.ndarray | None:
    """Capped, imputed category codes as floats; None for a constant or empty column."""
    codes = _codes(s)
    counts = np.bincount(codes[codes >= 0]) if (codes >= 0).any() else np.zeros(0, dtype=np.int64)
    if (counts > 0).sum() < 2:
        return None
    order = np.argsort(-counts, kind="stable")  # most frequent first, ties by label order
    keep = order[: MAX_CATEGORY_LEVELS - 1]
    mapping = np.full(counts.size, float(MAX_CATEGORY_LEVELS - 1))  # pooled "other" level
    mapping[keep] = np.arange(keep.size, dtype=float)
    out = np.where(codes >= 0, mapping[np.maximum(codes, 0)], mapping[order[0]])  # impute the mode
    return out


def _numeric_column(s: pd.Series) -> np.ndarray | None:
    """Median-imputed float values; None for a constant or empty column."""
    v = _numeric(s)
    ok = np.isfinite(v)
    if not ok.any():
        return None
    v = np.where(ok, v, np.median(v[ok]))
    return None if np.ptp(v) == 0 else v


def _prepare(
    dataset: Dataset, rep: int, max_rows: int, max_cols: int, rng: np.random.Generator
) -> _Prepared | None:
    """Row sample, column choice and imputation for the expensive blocks (None: nothing usable)."""
    target = dataset.y.iloc[:, rep]
    is_class = dataset.task.target_kinds[rep] is not TaskKind.REGRESSION
    y_all: np.ndarray
    if is_class:
        y_all = _codes(target)
        keep = np.flatnonzero(y_all >= 0)
    else:
        y_all = _numeric(target)
        keep = np.flatnonzero(np.isfinite(y_all))
    if keep.size < 10:
        return None
    rows = keep[_sample_rows(y_all[keep], is_class, max_rows, rng)]
    X = dataset.X.iloc[rows]
    # visit the columns in a seeded random order and keep the first max_cols usable (non-constant) ones
    chosen: list[tuple[int, np.ndarray, bool]] = []
    for j in rng.permutation(X.shape[1]):
        is_cat = dataset.categorical[j]
        col = X.iloc[:, j]
        values = _categorical_column(col) if is_cat else _numeric_column(col)
        if values is not None:
            chosen.append((int(j), values, is_cat))
            if len(chosen) == max_cols:
                break
    if not chosen:
        return None
    chosen.sort(key=lambda item: item[0])
    matrix = np.column_stack([values for _, values, _ in chosen])
    return _Prepared(X=matrix, categorical=[c for _, _, c in chosen], y=y_all[rows], is_class=is_class)


# --------------------------------------------------------------------------------------------
# block 3: pymfe


def _joint_prob(vec_x: np.ndarray, vec_y: np.ndarray) -> np.ndarray:
    """``pd.crosstab(vec_x, vec_y, normalize=True).values`` in numpy (rows: x levels, cols: y levels)."""
    x, y = np.asarray(vec_x), np.asarray(vec_y)
    ok = ~(pd.isna(x) | pd.isna(y))
    if not ok.all():
        x, y = x[ok], y[ok]
    _, xi = np.unique(x, return_inverse=True)
    _, yi = np.unique(y, return_inverse=True)
    xi, yi = xi.ravel(), yi.ravel()
    table = np.bincount(xi * (yi.max() + 1) + yi, minlength=(xi.max() + 1) * (yi.max() + 1))
    return table.reshape(xi.max() + 1, yi.max() + 1) / float(len(xi))


def _fast_calc_conc(cls: object, vec_x: np.ndarray, vec_y: np.ndarray, epsilon: float = 1.0e-8) -> float:
    """pymfe's ``_calc_conc`` (concentration coefficient) with a numpy contingency table."""
    pij = _joint_prob(vec_x, vec_y) + epsilon
    isum = pij.sum(axis=0)
    jsum2 = np.sum(pij.sum(axis=1) ** 2)
    return float((np.sum(pij**2 / isum) - jsum2) / (1.0 - jsum2))


def _fast_calc_joint_ent(cls: object, vec_x: np.ndarray, vec_y: np.ndarray, epsilon: float = 1.0e-8) -> float:
    """pymfe's ``_calc_joint_ent`` (joint entropy, bits) with a numpy contingency table."""
    p = _joint_prob(vec_y, vec_x) + epsilon
    return float(-np.sum(p * np.log2(p)))


@lru_cache(maxsize=1)
def _install_fast_crosstab() -> None:
    """Swap pymfe's two ``pd.crosstab`` helpers for numpy versions computing the same numbers.

    ``attr_conc``, ``class_conc`` and ``joint_ent``/``mut_inf`` build one contingency table per
    attribute (pair) with ``pd.crosstab``, ~10-30 ms each under pandas 3: with them pymfe's
    info-theory group alone took 1-3 s on 2,000 rows x 50 columns. The numpy tables are ~100x faster;
    ``tests/test_metafeatures.py`` checks the values equal pymfe's originals.
    """
    from pymfe.info_theory import MFEInfoTheory

    MFEInfoTheory._calc_conc = classmethod(_fast_calc_conc)  # type: ignore[method-assign,assignment,arg-type]
    MFEInfoTheory._calc_joint_ent = classmethod(_fast_calc_joint_ent)  # type: ignore[method-assign,assignment,arg-type]


def _pymfe_values(prep: _Prepared, groups: Sequence[str], seed: int, supervised: bool) -> dict[str, float]:
    cat_cols = [i for i, c in enumerate(prep.categorical) if c]
    y = prep.y if supervised else None
    _install_fast_crosstab()
    mfe = _new_mfe(groups, seed)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        mfe.fit(  # type: ignore[attr-defined]
            prep.X,
            y,
            cat_cols=cat_cols,
            rescale="min-max",
            transform_cat="one-hot",
            suppress_warnings=True,
        )
        names, values = mfe.extract(  # type: ignore[attr-defined]
            suppress_warnings=True, attr_conc={"max_attr_num": _ATTR_CONC_MAX_ATTRS}
        )
    return {_schema_name(n): _finite(v) for n, v in zip(names, values, strict=True)}


# --------------------------------------------------------------------------------------------
# block 4: regression


def _numeric_matrix(prep: _Prepared) -> np.ndarray:
    """Min-max scaled numeric columns and one-hot categorical columns."""
    parts: list[np.ndarray] = []
    for j, is_cat in enumerate(prep.categorical):
        v = prep.X[:, j]
        if is_cat:
            levels = np.unique(v)
            parts.append((v[:, None] == levels[None, :]).astype(float))
        else:
            lo, hi = v.min(), v.max()
            parts.append(((v - lo) / (hi - lo))[:, None])
    return np.hstack(parts)


def _regression_values(prep: _Prepared, seed: int) -> dict[str, float]:
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import KFold, cross_val_score
    from sklearn.neighbors import KNeighborsRegressor
    from sklearn.tree import DecisionTreeRegressor

    y = prep.y.astype(float)
    X = _numeric_matrix(prep)
    n = len(y)
    out: dict[str, float] = {}
    with np.errstate(all="ignore"):
        out["reg.target_skewness"] = _finite(stats.skew(y))
        out["reg.target_kurtosis"] = _finite(stats.kurtosis(y))
    out["reg.target_unique_ratio"] = len(np.unique(y)) / n
    q1, q3 = np.percentile(y, [25, 75])
    iqr = q3 - q1
    out["reg.target_outlier_ratio"] = float(((y < q1 - 1.5 * iqr) | (y > q3 + 1.5 * iqr)).mean())
    if np.ptp(y) == 0:
        return out
    pear = [_abs_corr(X[:, j], y) for j in range(X.shape[1])]
    ranks_y = stats.rankdata(y)
    spear = [_abs_corr(stats.rankdata(X[:, j]), ranks_y) for j in range(X.shape[1])]
    for name, vals in (("cor", pear), ("spearman", spear)):
        finite = [v for v in vals if math.isfinite(v)]
        out[f"reg.abs_{name}_mean"] = float(np.mean(finite)) if finite else math.nan
        out[f"reg.abs_{name}_max"] = float(np.max(finite)) if finite else math.nan
    cv = KFold(n_splits=_REG_CV_FOLDS, shuffle=True, random_state=seed)
    models: dict[str, Callable[[], object]] = {
        "reg.lm_linear_r2": lambda: Ridge(alpha=1e-3),
        "reg.lm_stump_r2": lambda: DecisionTreeRegressor(max_depth=1, random_state=seed),
        "reg.lm_tree_r2": lambda: DecisionTreeRegressor(max_depth=4, random_state=seed),
        "reg.lm_nn1_r2": lambda: KNeighborsRegressor(n_neighbors=1),
    }
    for name, make in models.items():
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                scores = cross_val_score(make(), X, y, cv=cv, scoring="r2")  # type: ignore[arg-type]
            out[name] = float(np.clip(np.nanmean(scores), -1.0, 1.0))
        except (ValueError, np.linalg.LinAlgError) as err:
            log.debug("regression landmarker %s failed: %s", name, err)
    tree = DecisionTreeRegressor(min_samples_leaf=max(2, n // 100), random_state=seed).fit(X, y)
    out["reg.tree_leaves_ratio"] = tree.get_n_leaves() / n
    out["reg.tree_depth"] = float(tree.get_depth())
    imp = tree.feature_importances_
    out["reg.tree_importance_max"] = float(imp.max()) if imp.size else math.nan
    out["reg.tree_importance_frac_used"] = float((imp > 0).mean()) if imp.size else math.nan
    return out


# --------------------------------------------------------------------------------------------
# public API


def _check_args(dataset: Dataset, max_rows: int, max_cols: int, timeout: float | None) -> None:
    if not isinstance(dataset, Dataset):
        raise InputError(f"extract_metafeatures needs a metalearn.data.dataset.Dataset, got {type(dataset).__name__}")
    if dataset.n_rows < 2:
        raise DataError(f"dataset {dataset.name!r} has {dataset.n_rows} rows; meta-features need at least 2")
    if dataset.n_features < 1:
        raise DataError(f"dataset {dataset.name!r} has no feature columns; add at least one feature")
    if list(dataset.y.columns) != list(dataset.task.targets):
        raise DataError(
            f"dataset {dataset.name!r}: y columns {list(dataset.y.columns)} differ from the task targets "
            f"{list(dataset.task.targets)}; rebuild the Dataset with y in task order"
        )
    if dataset.y.notna().to_numpy().sum() == 0:
        raise DataError(f"dataset {dataset.name!r} has no target values; every target cell is missing")
    if int(max_rows) < MIN_MAX_ROWS:
        raise InputError(f"max_rows must be at least {MIN_MAX_ROWS}, got {max_rows}")
    if int(max_cols) < 1:
        raise InputError(f"max_cols must be at least 1, got {max_cols}")
    if timeout is not None and not timeout > 0:
        raise InputError(f"timeout must be a positive number of seconds or None, got {timeout}")


def extract_metafeatures(
    dataset: Dataset,
    seed: int = 0,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_cols: int = DEFAULT_MAX_COLS,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> dict[str, float]:
    """The meta-feature vector of ``dataset``: ``{name: value}`` in :func:`metafeature_names` order.

    Values that cannot be computed are NaN (never inf). Deterministic for a fixed ``seed``.
    ``max_rows``/``max_cols`` cap the sample used by the expensive blocks; ``timeout`` (seconds) is
    soft: stages that would start after it are skipped and left NaN. Raises
    :class:`~metalearn.data.errors.InputError`/:class:`~metalearn.data.errors.DataError` for unusable input.
    """
    _check_args(dataset, max_rows, max_cols, timeout)
    start = time.perf_counter()
    deadline = math.inf if timeout is None else start + float(timeout)
    names = metafeature_names()
    values: dict[str, float] = dict.fromkeys(names, math.nan)

    def stage(label: str, fn: Callable[[], dict[str, float]], always: bool = False) -> None:
        if not always and time.perf_counter() > deadline:
            log.warning("meta-features of %s: skipped %s (soft timeout %.1fs)", dataset.name, label, timeout)
            return
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")  # numerical noise of degenerate columns/targets
                result = fn()
        except Exception as err:  # a failing block leaves its values NaN; the others still count
            log.warning(
                "meta-features of %s: %s failed (%s: %s)", dataset.name, label, type(err).__name__, err
            )
            return
        for k, v in result.items():
            if k in values:
                values[k] = _finite(v)

    rep = _representative_target(dataset)
    stage("simple features", lambda: _simple_features(dataset, rep), always=True)
    stage("target features", lambda: _label_features(dataset), always=True)
    rng = np.random.default_rng(seed)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            prep = _prepare(dataset, rep, int(max_rows), int(max_cols), rng)
    except Exception as err:  # unusable sample: the expensive blocks stay NaN
        log.warning("meta-features of %s: sampling failed (%s: %s)", dataset.name, type(err).__name__, err)
        prep = None
    if prep is not None:
        if prep.is_class and len(np.unique(prep.y)) >= 2:
            stage(
                "pymfe statistical/info-theory",
                lambda: _pymfe_values(prep, _PYMFE_STAGE1_GROUPS, seed, supervised=True),
            )
            stage(
                "pymfe model-based/landmarking",
                lambda: _pymfe_values(prep, _PYMFE_STAGE2_GROUPS, seed, supervised=True),
            )
        else:
            stage(
                "pymfe statistical/info-theory",
                lambda: _pymfe_values(prep, _PYMFE_STAGE1_GROUPS, seed, supervised=False),
            )
            if not prep.is_class:
                stage("regression features", lambda: _regression_values(prep, seed))
    for name in SIGNED_LOG_FEATURES:
        values[name] = signed_log(values[name])
    return values


def metafeature_record(
    dataset: Dataset,
    seed: int = 0,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_cols: int = DEFAULT_MAX_COLS,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> MetaFeatureRecord:
    """Extract the meta-features of ``dataset`` as a KB record (id = the dataset fingerprint)."""
    start = time.perf_counter()
    values = extract_metafeatures(dataset, seed=seed, max_rows=max_rows, max_cols=max_cols, timeout=timeout)
    return MetaFeatureRecord(
        dataset_id=dataset.fingerprint,
        version=EXTRACTOR_VERSION,
        values=values,
        extraction_seconds=time.perf_counter() - start,
    )


def ensure_metafeatures(
    kb: KnowledgeBase,
    dataset: Dataset,
    seed: int = 0,
    *,
    timeout: float | None = DEFAULT_TIMEOUT,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> MetaFeatureRecord:
    """The dataset's meta-features from the KB, extracted (and stored) if absent. Stores the dataset too.

    ``timeout``/``max_rows`` bound an extraction (a time-limited search gives a share of its budget and a
    smaller sample, see :func:`metalearn.search.automl.optimize`)."""
    kb.put_dataset(dataset_record(dataset))
    try:
        return kb.get_metafeatures(dataset.dataset_id, EXTRACTOR_VERSION)
    except NotFoundError:
        rec = metafeature_record(dataset, seed=seed, max_rows=max_rows, timeout=timeout)
        kb.put_metafeatures(rec)
        return rec
