"""Date and time feature columns, turned into numbers the models can use (as FLAML and AutoGluon do).

A feature column is a *date column* when its dtype is a pandas ``datetime64`` (with or without a time
zone) or when every value it holds is an ISO-8601 date or timestamp written as text (``2024-03-01``,
``2024-03-01 14:30``, ``2024-03-01T14:30:00Z``, ...): the form CSV files and JSON rows carry dates in.
Other text (``03/01/2024``, ``March 1``) stays categorical — guessing day-first or month-first is how
silent errors start; convert such columns to ISO-8601 first.

:func:`date_columns` turns one date column ``d`` into numeric columns: ``d`` itself becomes the days
since 1970-01-01 (a trend), and ``d.year``, ``d.month``, ``d.day``, ``d.dayofweek``, ``d.dayofyear``,
``d.hour``, ``d.minute``, ``d.second`` (calendar effects) — on training data only the parts that vary,
and the same parts again for new rows (:func:`apply_date_columns`), so a model always gets the columns it
was fit on. Times are taken at the wall-clock time they state: a time zone or UTC offset is dropped, not
converted (Monday 09:00 in Tokyo is a Monday morning). Missing dates (and, for new rows, values that are
not dates) are missing numbers, which the pipelines impute.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "DATE_PARTS", "DateColumns", "apply_date_columns", "date_columns", "parse_dates", "part_name", "restore_dates",
]

#: the calendar parts a date column may add, in this order
DATE_PARTS = ("year", "month", "day", "dayofweek", "dayofyear", "hour", "minute", "second")
#: ISO-8601 dates and timestamps as text: a date, an optional time (``T`` or a space), an optional zone
_ISO = re.compile(
    r"^\d{4}-\d{2}-\d{2}"
    r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?"
    r"(?:Z|[+-]\d{2}:?\d{2})?$"
)
_ZONE = r"(?:Z|[+-]\d{2}:?\d{2})$"
_DAY_NS = 86_400 * 10**9

#: the date columns of a dataset: (source column, its calendar parts kept), in column order
DateColumns = tuple[tuple[str, tuple[str, ...]], ...]


def part_name(source: str, part: str) -> str:
    """The name of the column holding ``part`` of date column ``source`` (``"when.month"``)."""
    return f"{source}.{part}"


def _is_text(s: pd.Series) -> bool:
    return pd.api.types.is_object_dtype(s.dtype) or pd.api.types.is_string_dtype(s.dtype)


def parse_dates(s: pd.Series) -> pd.Series | None:
    """``s`` as timestamps without a zone (the wall-clock time each value states) when it is a date
    column (see the module docstring), else None. A column with no value is not a date column."""
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        return s.dt.tz_localize(None).astype("datetime64[ns]")
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return s.astype("datetime64[ns]")
    if not _is_text(s) or isinstance(s.dtype, pd.CategoricalDtype):
        return None
    values = pd.unique(s.dropna())
    if len(values) == 0 or not all(isinstance(v, str) and _ISO.match(v.strip()) for v in values):
        return None
    parsed = _wall_clock(s)
    return parsed if parsed.notna().sum() == s.notna().sum() else None


def not_dates(s: pd.Series, share: float) -> list[str]:
    """The distinct values of text column ``s`` that are not dates when at least ``share`` of them are (a few typos,
    "unknown"), which keeps it from being a date column; empty otherwise."""
    if not _is_text(s) or isinstance(s.dtype, pd.CategoricalDtype):
        return []
    values = pd.Series(pd.unique(s.dropna())).astype(str).str.strip()
    values = values[values != ""]
    if len(values) < 3 or values.head(200).map(lambda v: bool(_ISO.match(v))).mean() < share:  # cheap test first
        return []
    dated = _wall_clock(values).notna() & values.map(lambda v: bool(_ISO.match(v)))
    return [str(v) for v in values[~dated]] if share <= dated.mean() < 1.0 else []


def _wall_clock(s: pd.Series) -> pd.Series:
    """Text or timestamps as timestamps without a zone, at the wall-clock time they state (a zone or
    offset is dropped, not converted: the calendar parts are those of the written time); what does not
    parse is missing (NaT)."""
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return parse_dates(s)  # type: ignore[return-value]
    text = s.astype("string").str.strip().str.replace(_ZONE, "", regex=True)
    return pd.to_datetime(text, format="ISO8601", errors="coerce").astype("datetime64[ns]")


def _features(source: str, dt: pd.Series, parts: Sequence[str]) -> dict[str, pd.Series]:
    ns = dt.to_numpy(dtype="datetime64[ns]").astype(np.int64).astype(np.float64)
    days = np.where(dt.isna().to_numpy(), np.nan, ns / _DAY_NS)
    out = {source: pd.Series(days, index=dt.index, name=source)}
    for part in parts:
        values = getattr(dt.dt, part).astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
        out[part_name(source, part)] = pd.Series(values, index=dt.index, name=part_name(source, part))
    return out


def date_columns(source: str, dt: pd.Series) -> tuple[dict[str, pd.Series], tuple[str, ...]]:
    """The numeric columns of date column ``source`` (parsed: :func:`parse_dates`) on training data —
    the days since 1970 under its own name and each calendar part that takes two values or more — and
    the parts kept."""
    whole = _features(source, dt, DATE_PARTS)
    kept = tuple(p for p in DATE_PARTS if whole[part_name(source, p)].nunique(dropna=True) > 1)
    return {name: whole[name] for name in (source, *(part_name(source, p) for p in kept))}, kept


def date_column_form(frame: pd.DataFrame, name: str, parts: Sequence[str]) -> str:
    """How new rows give date column ``name`` (kept as the calendar ``parts``): ``"converted"`` — numbers with
    their parts beside them, the model's own converted columns —, ``"numbers"`` — numbers alone, which are not
    dates (mistyped) —, or ``"dates"`` — dates or text to read as dates; an all-missing column read as numbers
    (an empty CSV column) is a date column without dates, not numbers."""
    s = frame[name]
    if not pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
        return "dates"
    if all(part_name(name, p) in frame.columns for p in parts):
        return "converted"
    return "numbers" if s.notna().any() else "dates"


def apply_date_columns(
    frame: pd.DataFrame, dates: DateColumns | Mapping[str, Sequence[str]]
) -> tuple[pd.DataFrame, dict[str, list[object]]]:
    """``frame`` (new rows) with each date column of ``dates`` (source -> parts, as training kept them)
    turned into the same numeric columns; a source column missing from ``frame`` or already numeric is
    left as it is. Also returns, per source, values that are not dates (they become missing numbers)."""
    spec = dict(dates)
    if not spec:
        return frame, {}
    columns: dict[str, pd.Series] = {}
    bad: dict[str, list[object]] = {}
    for name in frame.columns:
        s = frame[name]
        if name not in spec or date_column_form(frame, name, spec[name]) != "dates":
            columns[name] = s
            continue
        dt = _wall_clock(s)
        wrong = s.notna().to_numpy() & dt.isna().to_numpy()
        if wrong.any():
            bad[name] = list(pd.unique(s[wrong]))[:5]
        columns.update(_features(name, dt, spec[name]))
    return pd.DataFrame(columns, index=frame.index), bad


def restore_dates(X: pd.DataFrame, dates: DateColumns) -> pd.DataFrame:
    """The inverse of the conversion on a dataset's features ``X``: each date column of ``dates`` back as
    timestamps (from its days since 1970), its calendar-part columns dropped — the columns as given, to
    check against another model's schema (which may keep other parts)."""
    if not dates:
        return X
    parts = {part_name(src, p) for src, kept in dates for p in kept}
    out = X.drop(columns=[c for c in X.columns if c in parts])
    for src, _ in dates:
        days = out[src].to_numpy(dtype=np.float64)
        out[src] = pd.to_datetime(np.round(days * _DAY_NS), unit="ns")
    return out
