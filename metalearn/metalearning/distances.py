"""Meta-feature scaling and distances: how near a query dataset is to each KB dataset.

KB meta-features come as a frame (index ``dataset_id``, one column per meta-feature, NaN where a
value is unknown). They are min-max scaled on the KB (:func:`fit_scaling`, :class:`DistanceFit`),
unknown values imputed after scaling, and compared with the query's vector
(:func:`query_vector`) per feature (:func:`query_distances`, :func:`metafeature_distances`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from metalearn.data.errors import InputError

__all__ = [
    "DistanceFit",
    "MetaFeatureScaling",
    "Metric",
    "check_metric",
    "fit_scaling",
    "metafeature_distances",
    "numeric_frame",
    "query_distances",
    "query_vector",
]

Metric = Literal["l1", "l2"]


def numeric_frame(metafeatures: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(metafeatures, pd.DataFrame):
        raise InputError(
            f"metafeatures must be a pandas DataFrame (kb.metafeature_frame()), got {type(metafeatures).__name__}"
        )
    out = metafeatures.apply(pd.to_numeric, errors="coerce").astype(float)
    return out.replace([np.inf, -np.inf], np.nan)


def _fit_minmax(
    X: np.ndarray, max_nan_fraction: float, impute: Literal["median", "mid"]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per column: usable mask, min, range, fill value (in scaled units) from the rows of ``X``."""
    n = X.shape[0]
    n_cols = X.shape[1]
    if n == 0:
        z = np.zeros(n_cols)
        return np.zeros(n_cols, dtype=bool), z, z + 1.0, z + 0.5
    present = ~np.isnan(X)
    count = present.sum(axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo = np.nanmin(X, axis=0)
        hi = np.nanmax(X, axis=0)
    span = hi - lo
    usable = (count >= 2) & (count >= (1.0 - max_nan_fraction) * n) & (span > 0)
    lo = np.where(usable, lo, 0.0)
    span = np.where(usable, span, 1.0)
    if impute == "median":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            fill = (np.nanmedian(X, axis=0) - lo) / span
        fill = np.where(usable, fill, 0.5)
    else:
        fill = np.full(n_cols, 0.5)
    return usable, lo, span, fill


@dataclass(frozen=True)
class MetaFeatureScaling:
    """Min-max scaling fitted on KB meta-features; NaN imputed after scaling.

    ``columns`` are the kept meta-features (not constant, not mostly NaN); ``mins``/``ranges`` map a
    raw value ``x`` to ``(x - min) / range`` (0..1 on the KB), ``fill`` is the scaled value a NaN
    becomes. Use :meth:`transform` on a frame (KB) or a series (a query).
    """

    columns: tuple[str, ...]
    mins: tuple[float, ...]
    ranges: tuple[float, ...]
    fill: tuple[float, ...]

    def transform(self, metafeatures: pd.DataFrame | pd.Series) -> pd.DataFrame | pd.Series:
        cols = list(self.columns)
        lo, span, fill = (np.asarray(v, dtype=float) for v in (self.mins, self.ranges, self.fill))
        if isinstance(metafeatures, pd.Series):
            raw = pd.to_numeric(metafeatures.reindex(cols), errors="coerce").to_numpy(dtype=float)
            raw = np.where(np.isfinite(raw), raw, np.nan)
            scaled = (raw - lo) / span
            return pd.Series(np.where(np.isnan(scaled), fill, scaled), index=cols, name=metafeatures.name)
        frame = numeric_frame(metafeatures.reindex(columns=cols)).to_numpy(dtype=float)
        scaled = (frame - lo) / span
        scaled = np.where(np.isnan(scaled), fill[None, :], scaled)
        return pd.DataFrame(scaled, index=metafeatures.index, columns=cols)


def fit_scaling(
    metafeatures: pd.DataFrame,
    *,
    max_nan_fraction: float = 0.5,
    impute: Literal["median", "mid"] = "median",
) -> MetaFeatureScaling:
    """Fit min-max scaling on KB meta-features, ignoring NaN.

    Columns that are constant, have fewer than two values, or are NaN on more than
    ``max_nan_fraction`` of the datasets are dropped. After scaling, NaN becomes the column's scaled
    median (``impute="median"``) or 0.5 (``"mid"``).
    """
    frame = numeric_frame(metafeatures)
    usable, lo, span, fill = _fit_minmax(frame.to_numpy(dtype=float), max_nan_fraction, impute)
    return MetaFeatureScaling(
        columns=tuple(str(c) for c, u in zip(frame.columns, usable, strict=True) if u),
        mins=tuple(float(x) for x in lo[usable]),
        ranges=tuple(float(x) for x in span[usable]),
        fill=tuple(float(x) for x in fill[usable]),
    )


@dataclass(frozen=True, eq=False)
class DistanceFit:
    """The query-independent part of :func:`query_distances` for one set of KB rows: the min-max fit
    of the usable columns and the KB rows scaled by it (NaN already imputed). Cached per context
    base, so a query only pays for its own vector."""

    rows: np.ndarray  # KB row indices the fit is on
    raw: np.ndarray  # X[rows]
    columns: np.ndarray  # indices of the usable columns
    lo: np.ndarray
    span: np.ndarray
    scaled: np.ndarray  # rows x usable columns, NaN -> fill
    missing: np.ndarray  # rows x usable columns, True where the raw value is NaN

    @classmethod
    def fit(
        cls, X: np.ndarray, rows: np.ndarray, max_nan_fraction: float, impute: Literal["median", "mid"]
    ) -> DistanceFit:
        idx = np.flatnonzero(rows)
        Xa = X[idx]
        usable, lo, span, fill = _fit_minmax(Xa, max_nan_fraction, impute)
        cols = np.flatnonzero(usable)
        sub = Xa[:, cols]
        missing = np.isnan(sub)
        scaled = (sub - lo[cols]) / span[cols]
        scaled = np.where(missing, fill[cols][None, :], scaled)
        return cls(idx, Xa, cols, lo[cols], span[cols], scaled, missing)


def query_distances(
    X: np.ndarray,
    q: np.ndarray,
    rows: np.ndarray,
    *,
    metric: Metric,
    max_nan_fraction: float = 0.5,
    impute: Literal["median", "mid"] = "median",
    fit: DistanceFit | None = None,
) -> np.ndarray | None:
    """Distance of every KB row to the query, scaling fitted on ``rows`` only (others get inf).

    Uses the columns usable in the KB *and* known for the query; the distance is per feature (L1:
    mean absolute difference, L2: root mean square difference), so it is comparable across queries
    that know different numbers of meta-features; rank-equivalent to auto-sklearn's plain L1. Rows
    without any meta-feature get inf. ``None`` when no column can be used. ``fit``: the
    :class:`DistanceFit` of ``X`` on ``rows`` if already computed.

    When min-max scaling is undefined (a KB of one dataset, or no column varies), each shared column
    contributes the relative difference ``|x - q| / (|x| + |q|)`` (in [0, 1], 0 when both are 0), so a
    KB's first dataset of a kind is already a neighbour.
    """
    out = np.full(X.shape[0], np.inf)
    if not rows.any() or X.shape[1] == 0:
        return None
    if fit is None:
        fit = DistanceFit.fit(X, rows, max_nan_fraction, impute)
    qknown = ~np.isnan(q[fit.columns])
    if not qknown.any():
        Xa = fit.raw
        shared = ~np.isnan(q) & ~np.isnan(Xa).all(axis=0)
        if not shared.any():
            return None
        Xs, qs_raw = Xa[:, shared], q[shared][None, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            denom = np.abs(Xs) + np.abs(qs_raw)
            rel = np.where(denom > 0, np.abs(Xs - qs_raw) / denom, 0.0)
        rel = np.where(np.isnan(Xs), np.nan, rel)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            d = np.nanmean(rel, axis=1) if metric == "l1" else np.sqrt(np.nanmean(rel * rel, axis=1))
        out[fit.rows] = np.where(np.isnan(d), np.inf, d)
        return out
    if qknown.all():
        scaled, missing = fit.scaled, fit.missing
        qs = (q[fit.columns] - fit.lo) / fit.span
    else:
        scaled, missing = fit.scaled[:, qknown], fit.missing[:, qknown]
        qs = (q[fit.columns[qknown]] - fit.lo[qknown]) / fit.span[qknown]
    known = ~missing.all(axis=1)
    diff = scaled - qs[None, :]
    d = np.abs(diff).mean(axis=1) if metric == "l1" else np.sqrt((diff * diff).mean(axis=1))
    out[fit.rows] = np.where(known, d, np.inf)
    return out


def query_vector(query_mf: Any, names: Sequence[str]) -> np.ndarray:
    """The query's meta-features aligned to ``names`` (NaN where unknown or not finite)."""
    if query_mf is None:
        return np.full(len(names), np.nan)
    if isinstance(query_mf, np.ndarray):
        if query_mf.shape != (len(names),):
            raise InputError(
                f"a query vector must have one value per KB meta-feature ({len(names)}), got shape {query_mf.shape}"
            )
        qa = query_mf.astype(float, copy=False)
        return np.where(np.isfinite(qa), qa, np.nan)
    if isinstance(query_mf, pd.DataFrame):
        if len(query_mf) != 1:
            raise InputError(
                f"the query must be one dataset's meta-features (a Series), got a frame of {len(query_mf)} rows"
            )
        query_mf = query_mf.iloc[0]
    if not isinstance(query_mf, pd.Series):
        if not isinstance(query_mf, Mapping):
            raise InputError(
                f"query meta-features must be a pandas Series or a mapping name -> value, got {type(query_mf).__name__}"
            )
        query_mf = pd.Series(dict(query_mf), dtype=object)
    q = pd.to_numeric(query_mf.reindex(list(names)), errors="coerce").to_numpy(dtype=float)
    return np.where(np.isfinite(q), q, np.nan)


def metafeature_distances(
    query_mf: pd.Series,
    metafeatures: pd.DataFrame,
    *,
    metric: Metric = "l1",
    max_nan_fraction: float = 0.5,
) -> pd.Series:
    """Distance of each KB dataset to the query on min-max scaled meta-features, nearest first.

    Empty when nothing can be compared (no shared, usable meta-feature).
    """
    frame = numeric_frame(metafeatures)
    q = query_vector(query_mf, [str(c) for c in frame.columns])
    d = query_distances(
        frame.to_numpy(dtype=float),
        q,
        np.ones(len(frame), dtype=bool),
        metric=check_metric(metric),
        max_nan_fraction=max_nan_fraction,
    )
    if d is None:
        return pd.Series(dtype=float, name="distance")
    s = pd.Series(d, index=frame.index, name="distance")
    return s[np.isfinite(s.to_numpy())].sort_values(kind="stable")


def check_metric(metric: str) -> Metric:
    if metric not in ("l1", "l2"):
        raise InputError(f"distance metric must be 'l1' or 'l2', got {metric!r}")
    return metric  # type: ignore[return-value]
