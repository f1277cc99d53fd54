"""Task-kind inference: which kind of supervised problem a set of target columns describes.

Per column the rule is (scikit-learn's ``type_of_target`` words plus the dtype):

- ``category`` / ``object`` / string / ``bool`` columns are class targets: binary with at most two
  distinct non-null values, multiclass otherwise;
- numeric columns with non-integral values are regression targets;
- integer-valued numeric columns are binary when ``type_of_target`` says ``binary``, multiclass when
  it says ``multiclass`` and they have at most :data:`MAX_INTEGER_CLASSES` distinct values, and
  regression otherwise.

Several columns: all binary with 0/1 values -> multilabel, all regression -> multitarget, anything
else -> multitask (``Task.target_kinds`` says the kind of each column).

An explicit ``kind`` overrides the inference but is checked against the data: asking for regression
on a string column, binary on a column with five classes or multilabel on non-0/1 columns raises a
:class:`~metalearn.data.errors.TaskKindError` saying what to do instead.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.utils.multiclass import type_of_target

from metalearn.data.errors import TargetError, TaskKindError
from metalearn.data.task import SINGLE_KINDS, Task, TaskKind

#: An integer-valued numeric target with more distinct values than this is treated as regression.
MAX_INTEGER_CLASSES = 20

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


def target_kind_of(s: pd.Series) -> TaskKind:
    """The kind (binary / multiclass / regression) of one target column."""
    values = _non_null(s)
    if len(values) == 0:
        raise TargetError(f"{_label(s)} has no values (all missing); choose another target column")
    if is_class_dtype(s.dtype):
        return TaskKind.BINARY if values.nunique() <= 2 else TaskKind.MULTICLASS
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
        return TaskKind.BINARY
    if word == "multiclass" and len(np.unique(arr)) <= MAX_INTEGER_CLASSES:
        return TaskKind.MULTICLASS
    return TaskKind.REGRESSION


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
                "target; use --kind binary or multiclass, or convert the column to numbers"
            )
        return TaskKind.REGRESSION
    n_classes = int(_non_null(s).nunique())
    if kind is TaskKind.BINARY:
        if n_classes > 2:
            raise TaskKindError(
                f"{_label(s)} has {n_classes} distinct values, so it cannot be a binary target; "
                "use --kind multiclass (or regression for a numeric target)"
            )
        return TaskKind.BINARY
    # multiclass: class-like columns or integer-valued numbers; not continuous values
    if not is_class_dtype(s.dtype):
        values = _numeric_values(s)
        if values is not None and not np.all(np.mod(values[np.isfinite(values)], 1.0) == 0.0):
            raise TaskKindError(
                f"{_label(s)} holds non-integer numbers, so it cannot be a multiclass target; "
                "use --kind regression, or bin the values into classes first"
            )
    return TaskKind.MULTICLASS


def infer_task(
    y: pd.DataFrame | pd.Series,
    kind: str | TaskKind | None = None,
    metric: str | None = None,
) -> Task:
    """The :class:`Task` the target column(s) ``y`` describe, optionally forcing ``kind``.

    ``metric`` is stored as given (the kind's default metric when None).
    """
    if isinstance(y, pd.Series):
        y = y.to_frame()
    if not isinstance(y, pd.DataFrame):
        raise TargetError(f"targets must be a pandas DataFrame, got {type(y).__name__}")
    if y.shape[1] == 0:
        raise TargetError("no target column given; pass --target NAME")
    targets = tuple(str(c) for c in y.columns)
    columns = [y.iloc[:, i] for i in range(y.shape[1])]
    inferred = [target_kind_of(s) for s in columns]
    metric = metric or ""

    if kind is None:
        if len(columns) == 1:
            return Task(inferred[0], targets, metric=metric)
        if all(k is TaskKind.BINARY for k in inferred) and all(_is_zero_one(s) for s in columns):
            return Task(TaskKind.MULTILABEL, targets, metric=metric)
        if all(k is TaskKind.REGRESSION for k in inferred):
            return Task(TaskKind.MULTITARGET, targets, metric=metric)
        return Task(TaskKind.MULTITASK, targets, tuple(inferred), metric=metric)

    want = _coerce_kind(kind)
    if want in SINGLE_KINDS:
        if len(columns) != 1:
            raise TaskKindError(
                f"a {want} task has exactly one target but {len(columns)} were given ({list(targets)}); "
                "use --kind multilabel, multitarget or multitask for several targets"
            )
        return Task(_check_single(want, columns[0]), targets, metric=metric)
    if len(columns) < 2:
        raise TaskKindError(
            f"a {want} task needs at least two target columns, got {list(targets)}; "
            f"use --kind {inferred[0]} for one target"
        )
    if want is TaskKind.MULTILABEL:
        bad = [str(s.name) for s in columns if not _is_zero_one(s)]
        if bad:
            raise TaskKindError(
                f"multilabel targets must hold only 0/1 values, but {bad} do not; "
                "recode them to 0/1 or use --kind multitask"
            )
        return Task(TaskKind.MULTILABEL, targets, metric=metric)
    if want is TaskKind.MULTITARGET:
        bad = [str(s.name) for s in columns if _numeric_values(s) is None]
        if bad:
            raise TaskKindError(
                f"multitarget targets must all be numeric, but {bad} hold labels; use --kind multitask"
            )
        return Task(TaskKind.MULTITARGET, targets, metric=metric)
    return Task(TaskKind.MULTITASK, targets, tuple(inferred), metric=metric)
