"""The training schema of a model version (its *signature*): the feature columns with their types and
categories, and the targets with their kinds and classes. Inputs to a registered model are checked
against it before the model sees them, and so are the rows a fitted estimator of :mod:`metalearn.search.estimators`
predicts.

Rules of :meth:`Signature.validate`:

* a missing column, an extra column, or a value of a numeric column that is not a number (``"abc"``
  where the training data had numbers) is refused with one :class:`SchemaError` naming every problem
  column and what to do;
* a category never seen in training is accepted — the pipelines' encoders map it to their "unknown"
  code — and reported as a warning naming the column and the values;
* missing values (null / NaN) are accepted (the pipelines impute them); columns are reordered to the
  training order; categorical columns get the training categories' dtype;
* a date column of the training data (``dates``: :mod:`metalearn.data.datetimes`) is sent as it was
  given for training (dates, or ISO-8601 text) and becomes the same numeric columns the model was fit
  on; a value that is not a date is refused like a mistyped number.
"""

from __future__ import annotations

import functools
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from metalearn.data.dataset import Dataset
from metalearn.data.datetimes import DateColumns, apply_date_columns, date_column_form, part_name
from metalearn.data.errors import InputError
from metalearn.data.numbers import FEATURE_LIMIT, out_of_range
from metalearn.pipelines.models.preprocessing import canonical_category_strings, category_string, numbers_of

#: categories kept per categorical column (beyond this, a column's unseen-value check is skipped)
MAX_CATEGORIES = 1000


#: where a registered model's schema is shown (the end of a :class:`SchemaError`'s message)
REGISTRY_HINT = "`metalearn models show NAME --json` or GET /models/NAME/versions/N shows its schema"


class SchemaError(InputError):
    """Inputs do not match a model version's training schema (missing / extra / mistyped columns)."""


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    kind: str  # "numeric" | "categorical"
    dtype: str  # the training dtype, as pandas names it
    categories: tuple[str, ...] | None = None  # the categories seen in training (categorical columns)

    @functools.cached_property
    def category_set(self) -> frozenset[str]:
        return frozenset(self.categories or ())

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "dtype": self.dtype,
                "categories": list(self.categories) if self.categories is not None else None}


@dataclass(frozen=True)
class TargetSpec:
    name: str
    kind: str  # "binary" | "multiclass" | "regression"
    classes: tuple[Any, ...] | None = None

    @functools.cached_property
    def trained(self) -> dict[str | None, Any]:
        """Each class as :func:`category_string` writes it -> the class (a label given as ``True`` or ``2.0``
        finds the class ``'True'`` or ``2``); empty for a numeric target."""
        return {category_string(c): c for c in self.classes or ()}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "classes": list(self.classes) if self.classes is not None else None}


def check_unique_columns(frame: pd.DataFrame, what: str) -> None:
    """Raise :class:`SchemaError` naming the columns ``frame`` (``what``) repeats (a target column given twice
    was read as a table of two columns: "can only convert an array of size 1", or a class of itself)."""
    given = [str(c) for c in frame.columns]
    if len(set(given)) != len(given):
        dup = sorted({c for c in given if given.count(c) > 1})
        raise SchemaError(f"{what} repeats column(s) {Signature._shown(dup)}: give each column once")


@dataclass(frozen=True)
class Signature:
    columns: tuple[ColumnSpec, ...]
    targets: tuple[TargetSpec, ...]
    kind: str
    warnings: tuple[str, ...] = field(default=(), compare=False)
    dates: DateColumns = ()  # the date columns the inputs carry and the calendar parts each becomes

    @functools.cached_property
    def _source_of(self) -> dict[str, str]:
        """A column made from a date column -> that date column (the name a caller sends)."""
        return {part_name(src, p): src for src, parts in self.dates for p in parts}

    @property
    def inputs(self) -> list[str]:
        """The columns a caller sends: :attr:`names` with each date column once instead of its parts."""
        return [c for c in self._name_tuple if c not in self._source_of]

    @property
    def names(self) -> list[str]:
        return list(self._name_tuple)

    @functools.cached_property
    def _name_tuple(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @functools.cached_property
    def _name_set(self) -> frozenset[str]:
        """The column and target names (what a row may carry), computed once per signature."""
        return frozenset(self._name_tuple) | {t.name for t in self.targets}

    @property
    def categorical(self) -> dict[str, str]:
        """name -> "numeric" | "categorical" (the form drift detection takes)."""
        return {c.name: c.kind for c in self.columns}

    # -- building ----------------------------------------------------------------------------------
    @classmethod
    def of(cls, dataset: Dataset) -> Signature:
        cols = []
        for name, is_cat in zip(dataset.X.columns, dataset.categorical, strict=True):
            s = dataset.X[name]
            if is_cat or not (pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype)):
                values = pd.unique(_canonical(s.dropna()))
                cats = tuple(sorted(map(str, values))) if len(values) <= MAX_CATEGORIES else None
                cols.append(ColumnSpec(str(name), "categorical", str(s.dtype), cats))
            else:
                cols.append(ColumnSpec(str(name), "numeric", str(s.dtype)))
        targets = []
        for name, kind in zip(dataset.task.targets, dataset.task.target_kinds, strict=True):
            if str(kind) == "regression":
                targets.append(TargetSpec(str(name), "regression"))
            else:
                classes = sorted(dataset.y[name].dropna().unique().tolist(), key=str)
                targets.append(TargetSpec(str(name), str(kind), tuple(_plain(c) for c in classes)))
        return cls(tuple(cols), tuple(targets), str(dataset.task.kind), dates=dataset.dates)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "columns": [c.to_dict() for c in self.columns],
                               "targets": [t.to_dict() for t in self.targets]}
        if self.dates:
            out["dates"] = {src: list(parts) for src, parts in self.dates}
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Signature:
        cols = tuple(ColumnSpec(c["name"], c["kind"], c["dtype"],
                                tuple(c["categories"]) if c.get("categories") is not None else None)
                     for c in d["columns"])
        targets = tuple(TargetSpec(t["name"], t["kind"], tuple(t["classes"]) if t.get("classes") is not None else None)
                        for t in d["targets"])
        dates = tuple((str(src), tuple(parts)) for src, parts in (d.get("dates") or {}).items())
        return cls(cols, targets, str(d["kind"]), dates=dates)

    # -- checking ----------------------------------------------------------------------------------
    def labels_as_trained(self, y: pd.DataFrame) -> pd.DataFrame:
        """True labels of class targets in the form the model was trained on (its classes: ``True`` given where
        training turned it into ``'True'``, ``2.0`` where it was ``2``), so that they compare with its
        predictions; other values are left as they are."""
        out = y.copy()
        for spec in self.targets:
            if spec.classes is None or spec.name not in out.columns:
                continue
            out[spec.name] = [_as_trained(spec, v) for v in out[spec.name]]
        return out

    def label_as_trained(self, target: str, value: Any) -> Any:
        """One true label of ``target`` as :meth:`labels_as_trained` gives it (``1`` for ``"1"`` where the model
        was trained on the integers)."""
        spec = self._target_specs.get(target)
        return value if spec is None else _as_trained(spec, value)

    @functools.cached_property
    def _target_specs(self) -> dict[str, TargetSpec]:
        return {t.name: t for t in self.targets}

    def labels_problem(self, y: pd.DataFrame) -> str | None:
        """The first :meth:`label_problem` among the distinct labels of each target column of ``y`` (None: none)."""
        for t in y.columns:
            for v in pd.unique(y[t].dropna()):
                if (problem := self.label_problem(str(t), _plain(v))) is not None:
                    return problem
        return None

    def label_problem(self, target: str, value: Any) -> str | None:
        """What is wrong with ``value`` as a true label of ``target`` (None: nothing): a missing value, a class
        the model was not trained on, or a regression label that is not a finite number."""
        spec = self._target_specs.get(target)
        if spec is None:
            return f"{target!r} is not a target of the model (its targets: {self._shown([t.name for t in self.targets])})"
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return f"the label of {target!r} is missing: send the true value"
        if spec.kind == "regression":
            number = None if isinstance(value, bool | np.bool_) else _as_float(value)
            if number is None or not np.isfinite(number):
                return f"the label of {target!r} must be a finite number, got {value!r}"
            return None
        if spec.classes is not None and category_string(value) not in spec.trained:
            return (
                f"{value!r} is not a class of {target!r} the model was trained on ({self._shown(list(map(str, spec.classes)))}); "
                "to learn a new class, retrain on data that holds it"
            )
        return None

    def validate(
        self, frame: pd.DataFrame, what: str = "the input", hint: str = REGISTRY_HINT
    ) -> tuple[pd.DataFrame, list[str]]:
        """``frame`` checked against the training schema (see the module docstring): the frame to predict
        on (training column order and dtypes) and the warnings; :class:`SchemaError` when it does not fit,
        ending with ``hint`` (where the caller finds the schema)."""
        if not isinstance(frame, pd.DataFrame):
            raise SchemaError(f"{what} must be a table of rows with named columns, got {type(frame).__name__}")
        if len(frame) == 0:
            raise SchemaError(f"{what} has no rows: send at least one row with the columns {self._shown(self.inputs)}")
        check_unique_columns(frame, what)
        given = [str(c) for c in frame.columns]
        frame = frame.set_axis(given, axis=1)
        mistyped: list[str] = []
        numbers_for_dates: set[str] = set()
        if self.dates:
            # a date column sent as numbers (not the model's own converted columns, which come with their parts)
            for src, kept in self.dates:
                if src in frame.columns and date_column_form(frame, src, kept) == "numbers":
                    numbers_for_dates.add(src)
                    mistyped.append(f"{src} (dates expected, got {frame[src].dropna().iloc[0].item()!r})")
            frame, not_dates = apply_date_columns(frame, self.dates)
            mistyped += [f"{name} (dates expected, got {values[0]!r})" for name, values in not_dates.items()]
            given = list(frame.columns)
        given_set = set(given)
        missing = list(dict.fromkeys(self._source_of.get(c, c) for c in self._name_tuple if c not in given_set))
        missing = [c for c in missing if c not in numbers_for_dates]  # said as mistyped
        extra = [c for c in given if c not in self._name_set]
        problems = []
        if missing:
            problems.append(f"missing column(s) {self._shown(missing)}")
        if extra:
            problems.append(f"unknown column(s) {self._shown(extra)}")
        out: dict[str, Any] = {}
        warnings: list[str] = []
        present = [c for c in self.columns if c.name in given_set]
        numeric = [c.name for c in present if c.kind == "numeric"]
        float_block: np.ndarray | None = None  # every numeric column as one float64 block (the fast path)
        if numeric:
            block = frame[numeric]
            if all(pd.api.types.is_numeric_dtype(t) or pd.api.types.is_bool_dtype(t) for t in block.dtypes):
                float_block = block.to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                float_block = _float_block(block)  # JSON rows arrive as one object block
            if float_block is not None:
                out.update({name: float_block[:, j] for j, name in enumerate(numeric)})
            else:
                for name in numeric:
                    col, bad = _numeric(frame[name])
                    if bad:
                        mistyped.append(f"{name} (numbers expected, got {bad[0]!r})")
                    out[name] = col.to_numpy()
            block_or_columns = float_block if float_block is not None else np.column_stack([out[n] for n in numeric])
            too_large = out_of_range(block_or_columns)
            for j in np.flatnonzero(too_large.any(axis=0))[:5]:
                row = int(np.argmax(too_large[:, j]))
                mistyped.append(
                    f"{numeric[j]} ({block_or_columns[row, j]:g} in row {row}: numbers must be finite and within "
                    f"±{FEATURE_LIMIT:.3g}; null is a missing value)"
                )
        targets = [t.name for t in self.targets if t.name in given_set]
        if targets:
            warnings.append(
                f"target column(s) {self._shown(targets)} ignored: the model predicts {'it' if len(targets) == 1 else 'them'}"
            )
        categorical = [c for c in present if c.kind == "categorical"]
        if categorical:
            cells = frame[[c.name for c in categorical]].to_numpy(dtype=object)
            for j, spec in enumerate(categorical):
                col = cells[:, j]
                if spec.categories and spec.category_set <= _BOOLEAN_CATEGORIES:  # a boolean column: JSON's 1 / "true"
                    col = np.array([_as_boolean(v) for v in col] + [None], dtype=object)[:-1]
                    cells[:, j] = col
                out[spec.name] = col
                if spec.categories is None:
                    continue
                keys = {category_string(v) for v in col} if len(col) <= 256 else set(pd.unique(_canonical(pd.Series(col))))
                known = spec.category_set
                unseen = sorted(str(k) for k in keys if isinstance(k, str) and k not in known)
                if unseen:
                    warnings.append(
                        f"column {spec.name}: {len(unseen)} categor{'y' if len(unseen) == 1 else 'ies'} not seen in "
                        f"training ({self._shown(unseen)}), predicted as an unknown category"
                    )
        if mistyped:
            problems.append(f"mistyped column(s) {'; '.join(mistyped[:5])}")
        if problems:
            raise SchemaError(
                f"{what} does not match the model's training schema: {'; '.join(problems)}; "
                f"send the columns {self._shown(self.inputs)} with the training types ({hint})"
            )
        index = pd.RangeIndex(len(frame))
        if float_block is not None and len(numeric) == len(self.columns):  # no categorical column: one block
            return pd.DataFrame(float_block, columns=numeric, index=index), warnings
        if categorical and (float_block is not None or not numeric):  # blocks, not one array per column
            parts = [pd.DataFrame(cells, columns=[c.name for c in categorical], index=index, dtype=object)]
            if float_block is not None:
                parts.insert(0, pd.DataFrame(float_block, columns=numeric, index=index))
            joined = pd.concat(parts, axis=1) if len(parts) > 1 else parts[0]
            return joined[list(self._name_tuple)], warnings
        return pd.DataFrame({name: out[name] for name in self._name_tuple}, index=index), warnings

    @staticmethod
    def _shown(names: Sequence[str], k: int = 5) -> str:
        head = ", ".join(str(n) for n in names[:k])
        return head + (f" and {len(names) - k} more" if len(names) > k else "")


#: the categories of a boolean training column
_BOOLEAN_CATEGORIES = frozenset({"True", "False"})
_TRUTH = {"true": True, "1": True, "false": False, "0": False}


def checked_rows(signature: Signature, X: Any, what: str = "the input", hint: str = REGISTRY_HINT) -> pd.DataFrame:
    """``X`` checked against ``signature`` (:meth:`Signature.validate`: a :class:`SchemaError` when it does not fit),
    as the model takes it; its notes (an unseen category...) warnings (``UserWarning``) pointing at the user's call.

    For the models that check their rows with it (:class:`~metalearn.pipelines.artifacts.SignedModel`, the
    estimators of :mod:`metalearn.search.estimators`): the warning's location is the first frame outside this module
    and the caller's, so that it is the line that called the model's ``predict`` (or ``leaderboard``,
    ``explain``...), however many of the model's own methods lie between."""
    rows, notes = signature.validate(X, what, hint=hint)
    if notes:
        frame, level = sys._getframe(1), 2  # (level 1: this function)
        own = {__name__, frame.f_globals.get("__name__")}
        while frame.f_back is not None and frame.f_globals.get("__name__") in own:
            frame, level = frame.f_back, level + 1
        for note in notes:
            warnings.warn(note, UserWarning, stacklevel=level)
    return rows


def _as_boolean(value: Any) -> Any:
    """A value of a boolean column as the bool it means (``1``, ``"true"``, ``"1"`` -> True; ``0``, ``"false"``,
    ``"0"`` -> False), read as the category "True" / "False" (they were unseen categories: another prediction);
    anything else as it is (missing stays missing, another value stays unseen)."""
    key = category_string(value)
    if key is None:
        return value
    return _TRUTH.get(key.strip().lower(), value)


def _as_trained(spec: TargetSpec, value: Any) -> Any:
    """A true label of target ``spec`` as the class the model was trained on (unchanged when none matches)."""
    if spec.classes is None or (c := category_string(value)) is None:
        return value
    return spec.trained.get(c, value)


def _as_float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _float_block(block: pd.DataFrame) -> np.ndarray | None:
    """``block`` as float64 in one conversion when every cell is a number, a bool, a numeric string or
    missing; None otherwise (the caller then finds the offending column)."""
    cells = block.to_numpy(dtype=object)
    if any(isinstance(v, str) and not v.strip() for v in cells.ravel()):
        return None  # blank strings are missing values: the per-column path handles them
    cells = cells.copy()
    cells[pd.isna(cells)] = np.nan
    try:
        return cells.astype(np.float64)
    except (TypeError, ValueError):
        return None


def _canonical(s: pd.Series) -> np.ndarray:
    """Category labels as the pipelines compare them (``2.0`` and ``2`` both ``'2'``; NaN kept)."""
    return canonical_category_strings(s.to_numpy(dtype=object))


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def _numeric(s: pd.Series) -> tuple[pd.Series, list[Any]]:
    """``s`` as float64 and the values that are not numbers (null / NaN / "" are missing, fine)."""
    values, bad = numbers_of(s)
    return values.reset_index(drop=True), bad
