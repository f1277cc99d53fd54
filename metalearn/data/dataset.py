"""The one in-memory form every loader produces: features, targets, categorical mask, identity."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from metalearn.data.datetimes import DateColumns
from metalearn.data.task import Task

_NA_HASH = np.uint64(0x9E3779B97F4A7C15)


def fingerprint_frame(X: pd.DataFrame, y: pd.DataFrame) -> str:
    """A stable content hash of a dataset (column names, order and values; not the row index).

    The same data loaded from CSV, parquet or a corpus gives the same fingerprint as long as the
    values and column names are equal: categorical columns are hashed by their string values, numeric
    columns as float64, so ``int`` vs ``float`` storage does not change it.
    """
    h = hashlib.sha256()
    for part, frame in (("X", X), ("y", y)):
        h.update(part.encode())
        h.update(str(frame.shape).encode())
        for col in frame.columns:
            s = frame[col]
            h.update(b"\x00col:" + str(col).encode("utf-8"))
            if (
                isinstance(s.dtype, pd.CategoricalDtype)
                or s.dtype == object
                or pd.api.types.is_string_dtype(s.dtype)
                or pd.api.types.is_bool_dtype(s.dtype)
            ):
                # hash each category's string once, then look the codes up: independent of the
                # category order and of unused categories, and fast on long columns
                cat = s if isinstance(s.dtype, pd.CategoricalDtype) else s.astype("category")
                cat_hashes = pd.util.hash_pandas_object(
                    pd.Series(cat.cat.categories.astype(str), dtype="string"), index=False
                ).to_numpy()
                codes = cat.cat.codes.to_numpy()
                hashed = np.where(codes < 0, _NA_HASH, cat_hashes[np.maximum(codes, 0)] if len(cat_hashes) else _NA_HASH)
            else:
                arr = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
                hashed = arr.view(np.uint64)
                hashed = np.where(np.isnan(arr), np.uint64(0x7FF8000000000000), hashed)
            h.update(np.ascontiguousarray(hashed).tobytes())
    return h.hexdigest()[:20]


@dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded dataset.

    ``X`` holds the features (categorical columns have pandas ``category`` dtype, all others are
    numeric); ``y`` holds the target column(s) in ``task.targets`` order, always as a DataFrame.
    ``categorical[i]`` tells whether ``X.columns[i]`` is categorical. ``origin`` says where it came
    from (``file:PATH``, ``corpus:NAME``, ``sklearn:NAME``, ``openml:DID``, ``upload:NAME``).
    ``dates`` names the source's date columns and the calendar parts ``X`` holds for each
    (:mod:`metalearn.data.datetimes`): new rows need the same conversion before a model sees them.
    ``notes`` says what the loading did that a user may not expect (a column of numbers with a few text
    values, used as categories); they are shown with the target kinds.
    """

    name: str
    X: pd.DataFrame
    y: pd.DataFrame
    task: Task
    categorical: tuple[bool, ...]
    origin: str
    openml_id: int | None = None
    fingerprint: str = field(default="")
    dates: DateColumns = ()
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.categorical) != self.X.shape[1]:
            raise ValueError("categorical mask length must equal the number of feature columns")
        if not self.fingerprint:
            object.__setattr__(self, "fingerprint", fingerprint_frame(self.X, self.y))

    @property
    def n_rows(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])

    @property
    def n_categorical(self) -> int:
        return int(sum(self.categorical))

    @property
    def dataset_id(self) -> str:
        """The knowledge-base id of this dataset: its content fingerprint."""
        return self.fingerprint

    def subsample_rows(self, n_rows: int, seed: int = 0) -> np.ndarray | None:
        """The sorted row positions :meth:`subsample` keeps (None when it keeps every row)."""
        if self.n_rows <= n_rows:
            return None
        rng = np.random.default_rng(seed)
        if self.task.kind.is_classification and self.task.n_targets == 1:
            y = self.y.iloc[:, 0].astype("string").fillna("<NA>").to_numpy()
            idx_parts = []
            for label in np.unique(y):
                members = np.flatnonzero(y == label)
                take = max(1, round(len(members) * n_rows / self.n_rows))
                idx_parts.append(rng.choice(members, size=min(take, len(members)), replace=False))
            return np.sort(np.concatenate(idx_parts))
        return np.sort(rng.choice(self.n_rows, size=n_rows, replace=False))

    def subsample(self, n_rows: int, seed: int = 0) -> Dataset:
        """A random subsample of at most ``n_rows`` rows (stratified on a single class target).

        The subsample keeps the parent's fingerprint: it stands for the same dataset in the KB.
        """
        idx = self.subsample_rows(n_rows, seed)
        return self if idx is None else self.take_rows(idx)

    def take_rows(self, idx: np.ndarray) -> Dataset:
        """The rows at positions ``idx`` (e.g. :meth:`subsample_rows`'), keeping the parent's fingerprint."""
        return Dataset(
            name=self.name,
            X=self.X.iloc[idx].reset_index(drop=True),
            y=self.y.iloc[idx].reset_index(drop=True),
            task=self.task,
            categorical=self.categorical,
            origin=self.origin,
            openml_id=self.openml_id,
            fingerprint=self.fingerprint,
            dates=self.dates,
        )

    def with_task(self, task: Task) -> Dataset:
        return Dataset(self.name, self.X, self.y, task, self.categorical, self.origin, self.openml_id, self.fingerprint,
                       self.dates, self.notes)
