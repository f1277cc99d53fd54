"""Task-kind inference: which kind of supervised problem a set of target columns describes, and why.

Per column the rule is (scikit-learn's ``type_of_target`` words plus the dtype and the shape of the
value counts):

- ``category`` / ``object`` / string / ``bool`` columns are class targets: binary with at most two
  distinct non-null values, multiclass otherwise;
- numeric columns with non-integral values are regression targets;
- integer-valued numeric columns with at most two distinct values are binary;
- integer-valued numeric columns whose value counts look like a *count* are regression targets: the
  values are non-negative, there are at least :data:`MIN_COUNT_VALUES` of them, the frequencies rise
  to one mode and then fall off over at least :data:`MIN_TAIL_VALUES` larger values to a thin tail
  (the largest value at most ``1 /`` :data:`TAIL_THINNING` as frequent as the mode) -- Poisson or
  negative-binomial event counts (0..8, 0..20) and bell-shaped ratings look like that, class codes
  (whose frequencies do not depend on the order of the codes) almost never do;
- other integer-valued columns with at most :data:`MAX_INTEGER_CLASSES` distinct values are multiclass;
- more distinct integer values are multiclass only when they look like class codes with many rows per
  class (AutoGluon's ``infer_problem_type`` rule plus its TODO): consecutive integers from 0 or 1 (at
  most 10% of the codes absent), at most :data:`MAX_CODED_CLASSES` of them, and a unique-value ratio
  (distinct values / rows) of at most 0.1 (0.05 beyond 1000 rows) -- a 26-class problem coded 0..25;
  otherwise regression.

Several columns: all binary with 0/1 values -> multilabel, all regression -> multitarget, anything
else -> multitask (``Task.target_kinds`` says the kind of each column). Two rules look at the columns
together: when every target holds non-negative integers and one of them is a count (or all of them
pooled look like one: several short count columns), every target is read as a count (regression),
so a multi-target count problem is multitarget, not a multitask of classifiers; and a column that is
constant in these rows (a label absent from a split, a target that never varies) takes the kind of
the other targets (the models predict the constant for it).

Every inferred task carries the reason of each column's kind in ``Task.kind_reasons`` (one
human-readable sentence per target; :meth:`Task.kind_report` prints them with the target names).

An explicit ``kind`` overrides the inference but is checked against the data: asking for regression
on a string column, binary on a column with five classes or multilabel on non-0/1 columns raises a
:class:`~metalearn.data.errors.TaskKindError` saying what to do instead.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.utils.multiclass import type_of_target

from metalearn.data.errors import TargetError, TaskKindError, option
from metalearn.data.task import SINGLE_KINDS, Task, TaskKind

#: An integer-valued numeric target with more distinct values than this is regression unless it looks
#: like class codes with many rows per class.
MAX_INTEGER_CLASSES = 20
#: At most this many consecutive integer codes are read as classes (AutoGluon's MULTICLASS_UPPER_LIMIT).
MAX_CODED_CLASSES = 1000
#: Distinct values / rows at most this (this many rows or fewer) for codes to be classes (AutoGluon).
CODED_RATIO_SMALL, CODED_RATIO_LARGE, LARGE_DATA_ROWS = 0.1, 0.05, 1000
#: A count has at least this many distinct values (shorter integer scales -- grades, severities 0..4,
#: ratings 1..5 -- stay class codes, as before) ...
MIN_COUNT_VALUES = 7
#: ... at least this many of them above the most frequent value ...
MIN_TAIL_VALUES = 3
#: ... and its largest value at least this many times rarer than the most frequent one.
TAIL_THINNING = 5.0
#: Spearman correlation of value and frequency: at most -this above the mode, at least +this below.
TAIL_MONOTONE = 0.7

_KIND_WORDS = ", ".join(str(k) for k in TaskKind)


def is_class_dtype(dtype: object) -> bool:
    """True for dtypes whose values are labels rather than numbers (category, object, string, bool)."""
    return (
        isinstance(dtype, pd.CategoricalDtype)
        or pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_string_dtype(dtype)  # type: ignore[arg-type]
        or pd.api.types.is_bool_dtype(dtype)  # type: ignore[arg-type]
    )


def _non_null(s: pd.Series) -> pd.Series:
    return s[s.notna()]


def _numeric_values(s: pd.Series) -> np.ndarray | None:
    """The non-null values of ``s`` as float64, or None when some of them are not numbers."""
    values = _non_null(s)
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(values.cat.categories.dtype)
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.astype(np.float64).to_numpy()
    if pd.api.types.is_numeric_dtype(values.dtype):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    converted = pd.to_numeric(values.astype("string"), errors="coerce")
    if converted.isna().any():
        return None
    return converted.to_numpy(dtype=np.float64, na_value=np.nan)


def _is_zero_one(s: pd.Series) -> bool:
    """True when every non-null value of ``s`` is 0 or 1 (numbers, bools or the strings "0"/"1")."""
    values = _numeric_values(s)
    return values is not None and bool(np.isin(values, (0.0, 1.0)).all())


def _label(s: pd.Series) -> str:
    return f"target {str(s.name)!r}"


def _show(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def _range(values: np.ndarray) -> str:
    return f"{_show(values[0])}..{_show(values[-1])}"


def _spearman(counts: np.ndarray) -> float:
    """Rank correlation of position and ``counts`` (0.0 when the counts are all equal)."""
    if counts.size < 2 or np.all(counts == counts[0]):
        return 0.0
    r = rankdata(counts)
    p = np.arange(counts.size, dtype=np.float64)
    return float(np.corrcoef(p, r)[0, 1])


def _is_count(values: np.ndarray, counts: np.ndarray, min_values: int = MIN_COUNT_VALUES) -> bool:
    """True when the value counts (``values`` sorted, distinct) look like a count: non-negative
    values, one mode, and frequencies falling off over several larger values to a thin tail."""
    if values.size < min_values or values[0] < 0:
        return False
    mode = int(np.argmax(counts))
    right, left = counts[mode:], counts[: mode + 1]
    if right.size - 1 < MIN_TAIL_VALUES or right[-1] * TAIL_THINNING > counts[mode]:
        return False
    if _spearman(right) > -TAIL_MONOTONE:
        return False
    return left.size < 3 or _spearman(left) >= TAIL_MONOTONE


def _value_counts(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values, counts = np.unique(arr, return_counts=True)
    return values, counts.astype(np.float64)


def _integer_kind(arr: np.ndarray) -> tuple[TaskKind, str]:
    """Kind and reason of an integer-valued numeric column with three or more distinct values."""
    values, counts = _value_counts(arr)
    k, n = values.size, arr.size
    if _is_count(values, counts):
        mode = _show(values[int(np.argmax(counts))])
        shape = (
            f"fall off from the most frequent value {mode}"
            if mode == _show(values[0])
            else (f"rise to one most frequent value {mode} and fall off")
        )
        return TaskKind.REGRESSION, (
            f"{k} non-negative integer values {_range(values)} whose frequencies {shape} in a long thin "
            "tail: a count (or a long rating scale), read as numbers"
        )
    if k <= MAX_INTEGER_CLASSES:
        return TaskKind.MULTICLASS, (
            f"{k} integer values {_range(values)} (at most {MAX_INTEGER_CLASSES}, frequencies not "
            "shaped like a count): class codes"
        )
    ratio = k / n
    limit = CODED_RATIO_LARGE if n > LARGE_DATA_ROWS else CODED_RATIO_SMALL
    span = values[-1] - values[0] + 1
    if values[0] in (0.0, 1.0) and span <= 1.1 * k and k <= MAX_CODED_CLASSES and ratio <= limit:
        return TaskKind.MULTICLASS, (
            f"{k} integer values {_range(values)}: consecutive codes from {_show(values[0])} with "
            f"{n / k:.0f} rows per value on average (distinct/rows {ratio:.3g} <= {limit:g}), "
            "frequencies not shaped like a count: class codes"
        )
    why = (
        f"more than {MAX_INTEGER_CLASSES}, not consecutive codes from 0 or 1"
        if values[0] not in (0.0, 1.0) or span > 1.1 * k
        else f"more than {MAX_INTEGER_CLASSES}, distinct/rows {ratio:.3g} > {limit:g}: few rows per value"
    )
    return TaskKind.REGRESSION, f"{k} distinct integer values {_range(values)} ({why}): a quantity"


def explain_target_kind(s: pd.Series) -> tuple[TaskKind, str]:
    """The kind (binary / multiclass / regression) of one target column and a one-line reason."""
    values = _non_null(s)
    if len(values) == 0:
        raise TargetError(f"{_label(s)} has no values (all missing); choose another target column")
    if is_class_dtype(s.dtype):
        n = int(values.nunique())
        kind = TaskKind.BINARY if n <= 2 else TaskKind.MULTICLASS
        what = "category" if isinstance(s.dtype, pd.CategoricalDtype) else f"{s.dtype} (labels)"
        return kind, f"{what} column with {n} distinct label(s)"
    if not pd.api.types.is_numeric_dtype(s.dtype):
        raise TaskKindError(
            f"{_label(s)} has dtype {s.dtype}, which is neither numeric nor categorical; "
            "convert it to numbers or strings"
        )
    arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
    if not np.isfinite(arr).all():
        raise TargetError(f"{_label(s)} holds infinite values; drop or fix those rows")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        word = type_of_target(arr)
    if word == "binary":
        shown = ", ".join(_show(v) for v in np.unique(arr))
        if np.unique(arr).size == 1:
            return TaskKind.BINARY, f"a single value ({shown}) in these rows"
        return TaskKind.BINARY, f"two distinct values ({shown})"
    if word == "multiclass":
        return _integer_kind(arr)
    return TaskKind.REGRESSION, "numbers with non-integer values"


def target_kind_of(s: pd.Series) -> TaskKind:
    """The kind (binary / multiclass / regression) of one target column."""
    return explain_target_kind(s)[0]


def _coerce_kind(kind: str | TaskKind) -> TaskKind:
    try:
        return TaskKind(str(kind).strip().lower())
    except ValueError:
        raise TaskKindError(f"unknown task kind {kind!r}; use one of: {_KIND_WORDS}") from None


def _check_single(kind: TaskKind, s: pd.Series) -> TaskKind:
    """Check an explicit single-target kind against column ``s``; return the column's kind."""
    if kind is TaskKind.REGRESSION:
        if _numeric_values(s) is None:
            example = ", ".join(repr(str(v)) for v in _non_null(s).unique()[:3])
            raise TaskKindError(
                f"{_label(s)} holds labels ({example}...), not numbers, so it cannot be a regression "
                f"target; use {option('kind', 'binary')} or multiclass, or convert the column to numbers"
            )
        return TaskKind.REGRESSION
    n_classes = int(_non_null(s).nunique())
    if kind is TaskKind.BINARY:
        if n_classes > 2:
            raise TaskKindError(
                f"{_label(s)} has {n_classes} distinct values, so it cannot be a binary target; "
                f"use {option('kind', 'multiclass')} (or regression for a numeric target)"
            )
        return TaskKind.BINARY
    # multiclass: class-like columns or integer-valued numbers; not continuous values
    if not is_class_dtype(s.dtype):
        values = _numeric_values(s)
        if values is not None and not np.all(np.mod(values[np.isfinite(values)], 1.0) == 0.0):
            raise TaskKindError(
                f"{_label(s)} holds non-integer numbers, so it cannot be a multiclass target; "
                f"use {option('kind', 'regression')}, or bin the values into classes first"
            )
    return TaskKind.MULTICLASS


def _integer_values(s: pd.Series) -> np.ndarray | None:
    """The values of a numeric (not label-typed) column when all are non-negative integers, else None."""
    if is_class_dtype(s.dtype) or not pd.api.types.is_numeric_dtype(s.dtype):
        return None
    arr = _non_null(s).to_numpy(dtype=np.float64, na_value=np.nan)
    if arr.size == 0 or not np.all(np.isfinite(arr)) or arr.min() < 0 or np.any(np.mod(arr, 1.0) != 0.0):
        return None
    return arr


def _joint_rules(
    columns: list[pd.Series], inferred: list[TaskKind], reasons: list[str]
) -> tuple[list[TaskKind], list[str]]:
    """Per-column kinds and reasons revised by looking at several target columns together."""
    kinds, why = list(inferred), list(reasons)
    ints = [_integer_values(s) for s in columns]
    if all(a is not None for a in ints) and not all(_is_zero_one(s) for s in columns):
        arrays = [a for a in ints if a is not None]
        counts_like = [i for i, a in enumerate(arrays) if _is_count(*_value_counts(a))]
        values, counts = _value_counts(np.concatenate(arrays))
        pooled = _is_count(values, counts, min_values=MIN_TAIL_VALUES + 1)
        if counts_like or pooled:
            source = (
                f"target {str(columns[counts_like[0]].name)!r} is a count"
                if counts_like
                else f"their values pooled, {_range(values)}, fall off in a long thin tail like counts"
            )
            for i, k in enumerate(kinds):
                if k is not TaskKind.REGRESSION:
                    kinds[i] = TaskKind.REGRESSION
                    why[i] = (
                        f"{why[i]} on its own; read as a count with the other non-negative integer "
                        f"targets ({source})"
                    )
            return kinds, why
    constant = [i for i, s in enumerate(columns) if _non_null(s).nunique() == 1]
    others = {kinds[i] for i in range(len(columns)) if i not in constant}
    if (
        constant
        and others == {TaskKind.REGRESSION}
        and all(_numeric_values(columns[i]) is not None for i in constant)
    ):
        for i in constant:
            kinds[i] = TaskKind.REGRESSION
            why[i] = f"{why[i]}: constant, so it takes the kind of the other targets (regression)"
    return kinds, why


def infer_task(
    y: pd.DataFrame | pd.Series,
    kind: str | TaskKind | None = None,
    metric: str | None = None,
    kind_source: str = "given",
) -> Task:
    """The :class:`Task` the target column(s) ``y`` describe, optionally forcing ``kind``.

    ``metric`` is stored as given (the kind's default metric when None). The task's
    ``kind_reasons`` say why each target has its kind (the inference's reason, or that the kind was
    given — ``kind_source`` says by whom: ``"given"`` by the user, or e.g. ``"listed by the corpus manifest"``
    — and checked).
    """
    if isinstance(y, pd.Series):
        y = y.to_frame()
    if not isinstance(y, pd.DataFrame):
        raise TargetError(f"targets must be a pandas DataFrame, got {type(y).__name__}")
    if y.shape[1] == 0:
        raise TargetError(f"no target column given; pass {option('target', 'NAME')}")
    targets = tuple(str(c) for c in y.columns)
    columns = [y.iloc[:, i] for i in range(y.shape[1])]
    explained = [explain_target_kind(s) for s in columns]
    inferred = [k for k, _ in explained]
    reasons = [r for _, r in explained]
    metric = metric or ""

    if kind is None:
        if len(columns) == 1:
            return Task(inferred[0], targets, metric=metric, kind_reasons=(reasons[0],))
        if all(k is TaskKind.BINARY for k in inferred) and all(_is_zero_one(s) for s in columns):
            why = tuple(f"{r}: a 0/1 label" for r in reasons)
            return Task(TaskKind.MULTILABEL, targets, metric=metric, kind_reasons=why)
        inferred, reasons = _joint_rules(columns, inferred, reasons)
        if all(k is TaskKind.REGRESSION for k in inferred):
            return Task(TaskKind.MULTITARGET, targets, metric=metric, kind_reasons=tuple(reasons))
        return Task(TaskKind.MULTITASK, targets, tuple(inferred), metric=metric, kind_reasons=tuple(reasons))

    want = _coerce_kind(kind)
    given = f"{kind_source} as {want}, checked against the data"
    if want in SINGLE_KINDS:
        if len(columns) != 1:
            raise TaskKindError(
                f"a {want} task has exactly one target but {len(columns)} were given ({list(targets)}); "
                f"use {option('kind', 'multilabel')}, multitarget or multitask for several targets"
            )
        return Task(_check_single(want, columns[0]), targets, metric=metric, kind_reasons=(given,))
    if len(columns) < 2:
        raise TaskKindError(
            f"a {want} task needs at least two target columns, got {list(targets)}; "
            f"use {option('kind', str(inferred[0]))} for one target"
        )
    if want is TaskKind.MULTILABEL:
        bad = [str(s.name) for s in columns if not _is_zero_one(s)]
        if bad:
            numeric = all(pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype)
                          and not _is_zero_one(s) and s.nunique() > 2 for s in columns)  # fmt: skip
            raise TaskKindError(
                f"multilabel targets must hold only 0/1 values, but {bad} do not; recode them to 0/1 or use "
                + (f"{option('kind', 'multitarget')} (numbers to predict)" if numeric else option("kind", "multitask"))
            )
        return Task(TaskKind.MULTILABEL, targets, metric=metric, kind_reasons=(given,) * len(columns))
    if want is TaskKind.MULTITARGET:
        bad = [str(s.name) for s in columns if _numeric_values(s) is None]
        if bad:
            raise TaskKindError(
                f"multitarget targets must all be numeric, but {bad} hold labels; use {option('kind', 'multitask')}"
            )
        return Task(TaskKind.MULTITARGET, targets, metric=metric, kind_reasons=(given,) * len(columns))
    why = tuple(f"{given} (multitask); this target: {r}" for r in reasons)
    return Task(TaskKind.MULTITASK, targets, tuple(inferred), metric=metric, kind_reasons=why)
