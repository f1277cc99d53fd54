"""Turn a raw DataFrame into a validated :class:`~metalearn.data.dataset.Dataset`.

:func:`prepare_frame` is THE constructor every loader goes through (files, the corpus, scikit-learn,
OpenML, API uploads), so every dataset in metalearn obeys the same rules:

- column names are strings and unique; the target columns exist and are not among the features;
- there is at least :data:`MIN_ROWS` rows and one feature column;
- targets have no missing or infinite values; a classification target has at least two classes,
  except that a multilabel label or a multitarget column may be constant (a rare label absent from a
  split: the task models predict the constant for it and list it in ``constant_targets_``);
- no feature holds infinite values and no feature column is entirely missing;
- features: date columns (``datetime64``, or ISO-8601 dates as text) become numeric columns: the days
  since 1970 and the calendar parts that vary (:mod:`metalearn.data.datetimes`; ``Dataset.dates``
  records them); ``category`` columns stay categorical, ``object`` / string / ``bool`` columns become
  ``category`` with string categories (bytes decoded), every other column is numeric ``float64``;
  the categorical mask follows the dtypes;
- targets: class targets are ``category`` (integer-valued numbers stay integers), multilabel targets
  are 0/1 ``int64``, regression targets are ``float64``.

Every problem raises a :class:`~metalearn.data.errors.MetaLearnError` subclass with a one-line message.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from metalearn.data.dataset import Dataset
from metalearn.data.datetimes import date_columns, not_dates, parse_dates
from metalearn.data.errors import DataError, TargetError, option
from metalearn.data.kinds import infer_task, is_class_dtype
from metalearn.data.numbers import FEATURE_LIMIT, out_of_range
from metalearn.data.task import Task, TaskKind

log = logging.getLogger(__name__)

#: Fewer rows than this cannot be cross-validated meaningfully.
MIN_ROWS = 10

_SHOW = 8  # how many names an error message lists before "..."


def _names(items: Sequence[object], limit: int = _SHOW) -> str:
    shown = ", ".join(repr(str(i)) for i in list(items)[:limit])
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def normalize_targets(targets: str | Sequence[str] | None, columns: Iterable[object] = ()) -> list[str]:
    """``targets`` as a non-empty list of unique column names; a string names several separated by commas,
    unless it is one of ``columns`` as it stands (a column named ``"price, usd"``)."""
    if targets is None:
        raise TargetError(f"no target column given; pass {option('target', 'NAME')}, several as a list")
    if isinstance(targets, str):
        whole = targets in {str(c) for c in columns}
        names = [t.strip() for t in targets.split(",")] if "," in targets and not whole else [targets]
    else:
        names = [str(t) for t in targets]
    names = [t for t in names if t != ""]
    if not names:
        raise TargetError(f"no target column given; pass {option('target', 'NAME')}, several as a list")
    dup = sorted({t for t in names if names.count(t) > 1})
    if dup:
        raise TargetError(f"target columns repeat: {_names(dup)}; name each target once")
    return names


def _suggest(name: str, available: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(available), n=3, cutoff=0.6)
    if not close:  # case-insensitive second chance
        lower = {a.lower(): a for a in available}
        close = [lower[m] for m in difflib.get_close_matches(name.lower(), list(lower), n=3, cutoff=0.8)]
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def _decode(value: object) -> object:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    return value


def _as_labels(s: pd.Series) -> pd.Series:
    """Object/string/bool values as a ``category`` Series with string categories (NaN kept)."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        cats = s.cat.categories
        if pd.api.types.is_object_dtype(cats.dtype) and any(isinstance(c, bytes | bytearray) for c in cats):
            s = s.cat.rename_categories([str(_decode(c)) for c in cats])
        return s
    values = s.map(_decode) if pd.api.types.is_object_dtype(s.dtype) else s
    mask = values.isna()
    out = values.astype(str).astype(object)
    out[mask] = np.nan
    return out.astype("category")


def _feature_column(name: str, s: pd.Series, dataset: str) -> pd.Series:
    dtype = s.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return _as_labels(s)
    if pd.api.types.is_bool_dtype(dtype):
        return _as_labels(s)
    if pd.api.types.is_object_dtype(dtype):
        non_null = s[s.notna()].map(_decode)
        inferred = pd.api.types.infer_dtype(non_null, skipna=True) if len(non_null) else "empty"
        if inferred in ("integer", "floating", "mixed-integer-float", "decimal", "empty"):
            return pd.to_numeric(s, errors="coerce").astype(np.float64)
        return _as_labels(s)
    if pd.api.types.is_string_dtype(dtype):
        return _as_labels(s)
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype):
        return pd.Series(s.to_numpy(dtype=np.float64, na_value=np.nan), index=s.index, name=s.name)
    raise DataError(
        f"feature {name!r} of {dataset!r} has dtype {dtype}, which metalearn cannot use; "
        "convert it to numbers or strings (e.g. a duration to seconds)"
    )


#: a text column whose values are numbers but for at most this share is worth a note (it becomes categories)
MOSTLY_NUMBERS = 0.8


def numbers_as_categories(name: str, s: pd.Series) -> str | None:
    """A note when text column ``s``, used as categories, holds numbers nearly everywhere: a few text values
    (``"n/a?"``) among them, or decimal commas (``"1,5"``); None otherwise."""
    text = s[s.notna()].map(_decode).astype(str).str.strip()
    values = pd.Series(pd.unique(text))
    values = values[values != ""]
    if len(values) < 3:
        return None
    dotted = pd.to_numeric(values, errors="coerce")
    if dotted.notna().mean() >= MOSTLY_NUMBERS:
        bad = values[dotted.isna()]
        n_rows = int(text.isin(set(bad)).sum())
        return (
            f"column {name!r}: {n_rows} of {len(s)} values are not numbers (e.g. {_names(list(bad), 3)}), so it is "
            "used as categories; write them as numbers, or leave them empty (missing), to use it as numbers"
        )
    commas = pd.to_numeric(values.str.replace(".", "", regex=False).str.replace(",", ".", regex=False), errors="coerce")
    if values.str.contains(",").any() and commas.notna().mean() >= MOSTLY_NUMBERS:
        example = values[values.str.contains(",")].iloc[0]
        return (
            f"column {name!r} holds numbers written with decimal commas (e.g. {example!r}), so it is used as "
            "categories; write them with decimal points to use it as numbers"
        )
    return None


def dates_as_categories(name: str, s: pd.Series) -> str | None:
    """A note when text column ``s``, used as categories, holds ISO dates nearly everywhere; None otherwise."""
    bad = not_dates(s, MOSTLY_NUMBERS)
    if not bad:
        return None
    n_rows = int(s.astype("string").str.strip().isin(set(bad)).sum())
    return (
        f"column {name!r}: {n_rows} of {len(s)} values are not dates (e.g. {_names(bad, 3)}), so it is used as "
        "categories, not as dates; write them as dates (2024-03-01), or leave them empty (missing), to use it as dates"
    )


#: a category column with a distinct value in at least this share of its rows (and 20 rows or more) is noted
IDENTIFIER_SHARE = 0.95


def identifier_like(name: str, s: pd.Series) -> str | None:
    """A note when category column ``s`` has a distinct value in nearly every row (an id, free text): a category seen
    once teaches nothing about new rows, whose values are all unseen; None otherwise."""
    known = s.dropna()
    if len(known) < 20 or known.nunique() < IDENTIFIER_SHARE * len(known):
        return None
    return (
        f"column {name!r} has a distinct value in {known.nunique()} of {len(known)} rows (an identifier or free "
        "text?): as categories it cannot generalise, and new rows' values will all be unseen; drop it unless it means "
        "something"
    )


def check_target_values(y: pd.DataFrame, name: str) -> None:
    """Raise :class:`TargetError` for a target column with missing or infinite values (``name``: the data's)."""
    for t in y.columns:
        n_missing = int(y[t].isna().sum())
        if n_missing:
            raise TargetError(
                f"target {t!r} of {name!r} has {n_missing} missing value(s) in {len(y)} rows; "
                "drop those rows or fill the target in"
            )
        if pd.api.types.is_numeric_dtype(y[t].dtype) and not pd.api.types.is_bool_dtype(y[t].dtype):
            n_inf = int(np.isinf(y[t].to_numpy(dtype=np.float64, na_value=np.nan)).sum())
            if n_inf:
                raise TargetError(f"target {t!r} of {name!r} holds {n_inf} infinite value(s); drop or fix those rows")


def _class_target(s: pd.Series) -> pd.Series:
    """A class target as ``category``; integral numbers become int64 labels (0.0 -> 0)."""
    if isinstance(s.dtype, pd.CategoricalDtype) and pd.api.types.is_numeric_dtype(s.cat.categories.dtype):
        s = s.astype(s.cat.categories.dtype)  # numeric labels: canonical int/float form below
    elif is_class_dtype(s.dtype):
        return _as_labels(s)
    arr = s.to_numpy(dtype=np.float64, na_value=np.nan)
    if np.all(np.mod(arr, 1.0) == 0.0):
        return pd.Series(arr.astype(np.int64), index=s.index, name=s.name).astype("category")
    return pd.Series(arr, index=s.index, name=s.name).astype("category")


def _numeric_target(s: pd.Series) -> pd.Series:
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(object)
    if pd.api.types.is_object_dtype(s.dtype) or pd.api.types.is_string_dtype(s.dtype):
        s = pd.to_numeric(s.map(_decode).astype("string"), errors="coerce")
    return pd.Series(s.to_numpy(dtype=np.float64, na_value=np.nan), index=s.index, name=s.name)


def _convert_targets(y: pd.DataFrame, task: Task, dataset: str) -> pd.DataFrame:
    cols: dict[str, pd.Series] = {}
    for col, tk in zip(task.targets, task.target_kinds, strict=True):
        s = y[col]
        if task.kind is TaskKind.MULTILABEL:
            out = _numeric_target(s).astype(np.int64)
            if out.nunique() < 2:  # a rare label absent from these rows: the models predict it constant
                log.info("%s: label %r is constant (always %d)", dataset, col, int(out.iloc[0]))
        elif tk is TaskKind.REGRESSION:
            out = _numeric_target(s)
            if not np.isfinite(out.to_numpy()).all():
                raise TargetError(
                    f"target {col!r} of {dataset!r} holds infinite values; drop or fix those rows"
                )
        else:
            out = _class_target(s)
            classes = out.dropna().unique()
            if len(classes) < 2:
                raise DataError(
                    f"target {col!r} of {dataset!r} has a single value ({str(classes[0])!r}), so there is nothing to "
                    "learn: give rows of at least two classes, or drop this target"
                )
            out = out.cat.remove_unused_categories()
        cols[col] = out
    return pd.DataFrame(cols)


def prepare_frame(
    df: pd.DataFrame,
    targets: str | Sequence[str],
    kind: str | TaskKind | None = None,
    metric: str | None = None,
    name: str = "dataset",
    origin: str | None = None,
    openml_id: int | None = None,
    drop_empty_features: bool = False,
    kind_source: str = "given",
) -> Dataset:
    """Validate ``df`` (features + target columns) and build the :class:`Dataset`.

    ``targets`` is one column name, a comma-separated list or a sequence of names; ``kind`` forces
    the task kind (checked against the data; ``kind_source`` says who gave it, see
    :func:`~metalearn.data.kinds.infer_task`); ``origin`` defaults to ``upload:NAME``.
    Feature columns without any value are an error unless ``drop_empty_features`` (then they are
    dropped with a logged warning; loaders of curated sources such as OpenML use it).
    """
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"expected a pandas DataFrame for {name!r}, got {type(df).__name__}")
    target_names = normalize_targets(targets, df.columns)
    columns = [str(c) for c in df.columns]
    counts = pd.Series(columns).value_counts()
    dup = sorted(counts.index[counts > 1])
    if dup:
        raise DataError(
            f"{name!r} has duplicate column names {_names(dup)}; rename the columns so each is unique"
        )
    unknown = [t for t in target_names if t not in set(columns)]
    if unknown:
        hints = "".join(_suggest(t, columns) for t in unknown[:1])
        raise TargetError(
            f"target column {_names(unknown)} not found in {name!r}{hints}; available columns: {_names(columns)}"
        )
    if df.shape[0] == 0:
        raise DataError(f"{name!r} has no rows; give a file with data rows below the header")
    features = [c for c in columns if c not in target_names]
    if not features:
        raise DataError(
            f"{name!r} has no feature columns besides the target(s) {_names(target_names)}; "
            "a model needs at least one feature"
        )
    if df.shape[0] < MIN_ROWS:
        raise DataError(f"{name!r} has only {df.shape[0]} rows; metalearn needs at least {MIN_ROWS}")

    frame = df.set_axis(columns, axis=1).reset_index(drop=True)
    y_raw = frame[target_names]
    check_target_values(y_raw, name)
    task = infer_task(y_raw, kind=kind, metric=metric, kind_source=kind_source)
    y = _convert_targets(y_raw, task, name)

    columns_out: dict[str, pd.Series] = {}
    dates: list[tuple[str, tuple[str, ...]]] = []
    notes: list[str] = []
    for c in features:
        dt = parse_dates(frame[c])
        if dt is None:
            columns_out[c] = _feature_column(c, frame[c], name)
            if isinstance(columns_out[c].dtype, pd.CategoricalDtype):
                text = not isinstance(frame[c].dtype, pd.CategoricalDtype) and not pd.api.types.is_bool_dtype(
                    frame[c].dtype)
                note = (  # the first that applies
                    (text and (numbers_as_categories(c, frame[c]) or dates_as_categories(c, frame[c])))
                    or identifier_like(c, frame[c])
                )
                if note:
                    notes.append(note)
            continue
        made, parts = date_columns(c, dt)
        clash = sorted(set(made).intersection(features) - {c})
        if clash:
            raise DataError(
                f"date column {c!r} of {name!r} becomes the numeric columns {_names(list(made))}, but "
                f"{_names(clash)} already exist; rename those columns"
            )
        columns_out.update(made)
        dates.append((c, parts))
    constant = [c for c, col in columns_out.items() if col.nunique(dropna=True) == 1]
    if constant:  # a QA run's constant column passed without a word
        notes.append(f"{len(constant)} feature column(s) hold one value in every row ({_names(constant)}): they teach "
                     "the models nothing; drop them")
    X = pd.DataFrame(columns_out).reset_index(drop=True)
    categorical = tuple(isinstance(X[c].dtype, pd.CategoricalDtype) for c in X.columns)

    numeric = [c for c, cat in zip(X.columns, categorical, strict=True) if not cat]
    if numeric:
        values = X[numeric].to_numpy(dtype=np.float64, na_value=np.nan)
        inf_cols = [c for c, bad in zip(numeric, np.asarray(out_of_range(values).any(axis=0)), strict=True) if bad]
        if inf_cols:
            raise DataError(
                f"{name!r} has infinite values or values beyond ±{FEATURE_LIMIT:.3g} (float32's range, in which "
                f"tree models compute) in feature(s) {_names(inf_cols)}; replace them (e.g. by NaN or a smaller "
                "number, or their logarithm)"
            )
    all_nan = [c for c in X.columns if not X[c].notna().any()]
    if all_nan and drop_empty_features and len(all_nan) < X.shape[1]:
        log.warning("%s: dropping feature column(s) with no values: %s", name, _names(all_nan))
        X = X.drop(columns=all_nan)
        categorical = tuple(isinstance(X[c].dtype, pd.CategoricalDtype) for c in X.columns)
    elif all_nan:
        raise DataError(f"{name!r} has feature column(s) with no values at all: {_names(all_nan)}; drop them")
    return Dataset(
        name=name,
        X=X,
        y=y,
        task=task,
        categorical=categorical,
        origin=origin or f"upload:{name}",
        openml_id=int(openml_id) if openml_id is not None else None,
        dates=tuple(dates),
        notes=tuple(notes),
    )
