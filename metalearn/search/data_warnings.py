"""Warnings about the data of a search that its scores do not show: a regression target whose squared error a
few extreme rows dominate (:func:`target_outliers`) and feature columns mostly missing (:func:`mostly_missing`).

:func:`metalearn.search.automl.optimize` adds them to its summary's ``warnings`` (the CLI prints them, the
estimators warn, the service's searches and the registry's versions list them). Both are cheap (a few
milliseconds on 50,000 rows x 100 columns) and were calibrated not to fire on ordinary data: of the 264 datasets of
the shared corpus (206 regression targets in 149 datasets), the outlier check fires on none, the missing-value
check on one, osales (19 of its 401 feature columns are 52-98 % empty: worth knowing)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from metalearn.data.dataset import Dataset
from metalearn.data.task import TaskKind

__all__ = [
    "MISSING_SHARE", "OUTLIER_ERROR_SHARE", "OUTLIER_GAP", "OUTLIER_ROW_SHARE", "OUTLIER_SCALES", "mostly_missing",
    "target_outliers",
]

#: The rule of :func:`target_outliers`: the fewest rows farthest from a target's median that make up at least
#: OUTLIER_ERROR_SHARE of the squared error of predicting its mean (its variance) are warned of when they are at most
#: OUTLIER_ROW_SHARE of the rows (at least one), all more than OUTLIER_SCALES IQR from the median, and stand apart:
#: every other value is less than 1 / OUTLIER_GAP as far from the median as the nearest of them. Entry and unit errors
#: are found so (3 of diabetes' 442 targets entered 10 times too large: 87 % of the squared error, the others within
#: 1.62 IQR; two 99,999,999 codes among 5,000 lognormal incomes: 99 %, the others within 110 IQR). No corpus target is
#: warned of: their largest values trail off (the nearest, oes97's employment counts and osales' sales, need 2-4 of
#: 334 or 639 rows for half their squared error, and the next value is 0.57-0.98 times as far). Of 150 samples (50
#: each of 300, 2,000 and 20,000 rows), normal, exponential, Poisson and zero-inflated gamma targets never fire, lognormal ones
#: of log-sd 1 4 times (300 rows: one value 3-10 times as far as the next makes up over half the squared error), of
#: log-sd 2 27 times and Cauchy ones 64 times: there, too, one or two values decide the RMSE.
OUTLIER_SCALES = 10.0
OUTLIER_ROW_SHARE = 0.01
OUTLIER_ERROR_SHARE = 0.5
OUTLIER_GAP = 3.0
#: fewer finite values of a target than this are not checked (their quantiles say little)
OUTLIER_MIN_ROWS = 20
#: metrics of squared errors: a few extreme rows decide them (R² too: 1 - SSE / SST)
SQUARED_METRICS = frozenset({"rmse", "r2", "rmse_mean", "r2_mean", "multitask_mean"})
#: the metric that judges the same targets by absolute errors, per kind
ABSOLUTE_METRIC = {TaskKind.REGRESSION: "mae", TaskKind.MULTITARGET: "mae_mean"}

#: a feature column with at least this share of its values missing is warned of
MISSING_SHARE = 0.5
#: how many targets or columns a warning names (the rest are counted)
SHOWN = 3

# a normal distribution's 10-90 % and 1-99 % ranges in IQRs: the IQR of a target more than half of whose values are
# one value (so its IQR is 0) is estimated from a wider central range
_WIDER_RANGES = ((10.0, 90.0, 2.5631 / 1.3490), (1.0, 99.0, 4.6527 / 1.3490))


def _spread(values: np.ndarray, q25: float, q75: float) -> tuple[float, str]:
    """(the IQR of ``values``, how it was taken): the interquartile range ``q75 - q25``, else (over half the values
    equal) the IQR a wider central range of them implies; 0.0 when 98 % of them are one value."""
    if q75 > q25:
        return q75 - q25, ""
    for lo, hi, ratio in _WIDER_RANGES:
        qlo, qhi = np.percentile(values, [lo, hi])
        if qhi > qlo:
            return float(qhi - qlo) / ratio, f"; the IQR from the central {hi - lo:.0f} % as over half the values are equal"
    return 0.0, ""


class _Extreme(NamedTuple):
    values: tuple[float, ...]  # of the rows that stand apart, farthest from the median first
    n: int  # rows with a finite value
    share: float  # their share of the squared error of predicting the mean
    lo: float  # median - OUTLIER_SCALES IQR
    hi: float  # median + OUTLIER_SCALES IQR
    others: float  # how far (in IQR) from the median the other values reach
    how: str  # how the IQR was taken, when not as the interquartile range


def _extreme(values: np.ndarray) -> _Extreme | None:
    """The rows of one target's finite ``values`` that stand apart and make up most of its squared error about the
    mean (see :data:`OUTLIER_SCALES`), else None."""
    n = values.size
    if n < OUTLIER_MIN_ROWS:
        return None
    q25, median, q75 = (float(q) for q in np.percentile(values, [25.0, 50.0, 75.0]))
    spread, how = _spread(values, q25, q75)
    if spread <= 0:
        return None
    distance = np.abs(values - median) / spread  # in IQR
    beyond = distance > OUTLIER_SCALES
    far = np.flatnonzero(beyond)
    if far.size == 0:
        return None
    far = far[np.argsort(-distance[far], kind="stable")]
    nearer = float(distance[~beyond].max()) if far.size < n else 0.0  # the farthest value within the bounds
    dev = values - values.mean()
    total = float(np.square(dev).sum())  # not dev @ dev: BLAS took 10 ms for it on a fresh array of 50,000
    shares = np.cumsum(np.square(dev[far])) / total
    for m in range(1, min(far.size, max(1, int(OUTLIER_ROW_SHARE * n))) + 1):  # the m farthest rows
        following = float(distance[far[m]]) if m < far.size else nearer
        if shares[m - 1] >= OUTLIER_ERROR_SHARE and following * OUTLIER_GAP < distance[far[m - 1]]:
            return _Extreme(tuple(float(v) for v in values[far[:m]]), n, float(shares[m - 1]),
                            median - OUTLIER_SCALES * spread, median + OUTLIER_SCALES * spread, following, how)
    return None


def target_outliers(dataset: Dataset) -> str | None:
    """A warning when a few rows of a regression target (of any kind: regression, multitarget, multitask) lie far
    beyond its other values and make up most of the squared error of predicting its mean (the rule: see
    :data:`OUTLIER_SCALES`), and the search's metric is one of squared errors (RMSE, R²): the search is then judged,
    and its pipeline chosen, mostly by those rows — entry or unit errors, or a target to judge by absolute errors.
    None otherwise."""
    task = dataset.task
    metric = task.metric
    base = metric.split(":", 1)[-1]
    if base not in SQUARED_METRICS:
        return None
    only = int(metric[1:].split(":", 1)[0]) if ":" in metric else None  # a multitask search judged by one target
    found: list[tuple[str, _Extreme]] = []
    for i, (target, kind) in enumerate(zip(task.targets, task.target_kinds, strict=True)):
        if kind is not TaskKind.REGRESSION or (only is not None and i != only):
            continue
        values = pd.to_numeric(dataset.y[target], errors="coerce").to_numpy(dtype=float)
        extreme = _extreme(values[np.isfinite(values)])
        if extreme is not None:
            found.append((target, extreme))
    if not found:
        return None
    found.sort(key=lambda te: -te[1].share)

    def rows(e: _Extreme) -> str:
        shown = ", ".join(f"{v:.4g}" for v in e.values[:SHOWN]) + (", ..." if len(e.values) > SHOWN else "")
        return f"{len(e.values):,} of {e.n:,} rows ({shown})"

    absolute = f"t{only}:mae" if only is not None else ABSOLUTE_METRIC.get(task.kind)

    def advice(one: bool) -> str:
        it, error = ("it", "an entry or a unit error") if one else ("them", "entry or unit errors")
        return (f"the search's {metric} is dominated by {it}; check {it} ({error}?) and fix or drop {it}"
                + (f", or judge the search by absolute errors (--metric {absolute})" if absolute else ""))

    if len(found) == 1:
        target, e = found[0]
        one = len(e.values) == 1
        return (f"target {target!r}: {rows(e)} {'lies' if one else 'lie'} far beyond the others (over "
                f"{OUTLIER_SCALES:g} IQR from the median, outside {e.lo:.4g} .. {e.hi:.4g}{e.how}; the others within "
                f"{e.others:.3g} IQR) and {'makes' if one else 'make'} up {e.share:.0%} of the squared error of "
                f"predicting its mean: {advice(one)}")
    shown = "; ".join(f"{t!r}: {rows(e)}, {e.share:.0%}" for t, e in found[:SHOWN])
    more = f"; and {len(found) - SHOWN} more target(s)" if len(found) > SHOWN else ""
    return (f"{len(found)} targets have a few rows far beyond the others (over {OUTLIER_SCALES:g} IQR from the median) "
            f"that make up at least half the squared error of predicting their mean ({shown}{more}): {advice(False)}")


def mostly_missing(dataset: Dataset) -> str | None:
    """A warning when feature columns have at least :data:`MISSING_SHARE` of their values missing: the pipelines
    fill a missing number in with the column's mean or median, with no indicator, so that a value was missing —
    often what such a column says — is lost to them. None otherwise."""
    if dataset.n_rows == 0 or dataset.n_features == 0:
        return None
    share = dataset.X.isna().mean()
    mostly = share[share >= MISSING_SHARE].sort_values(ascending=False, kind="stable")
    if mostly.empty:
        return None
    shown = ", ".join(f"{str(c)!r} {s:.0%}" for c, s in mostly.iloc[:SHOWN].items())
    more = f" and {len(mostly) - SHOWN} more" if len(mostly) > SHOWN else ""
    one = len(mostly) == 1
    return (f"{len(mostly)} of {dataset.n_features} feature columns {'is' if one else 'are'} at least "
            f"{MISSING_SHARE:.0%} missing ({shown}{more}): the pipelines fill a missing number in with the column's "
            "mean or median, so which values were missing is lost to them; if missing means something (none, zero, "
            f"not measured), fill it in or add an indicator column, else consider dropping {'it' if one else 'them'}")
