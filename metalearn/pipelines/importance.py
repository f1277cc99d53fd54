"""Permutation feature importance of a fitted model on labelled data (AutoGluon's ``feature_importance``).

A feature's importance is how much the model's score drops when that feature's values are shuffled
across the rows (Breiman 2001; scikit-learn's ``permutation_importance``), measured on data the caller
passes — held-out rows, not the training data, for an honest figure. Each *shuffle set* permutes the rows
once and applies that permutation to every feature in turn, as AutoGluon does; the result gives, per
feature, the mean drop over the shuffle sets, its standard deviation, a one-sided p-value (t-test of
"the drop is > 0") and a 99 % confidence interval.

The score is the task's own metric (or the one asked for) in its better-is-larger direction: a positive
importance means the model relies on the feature, about 0 that it does not, a negative one that shuffling
the feature *helped* on these rows (noise, or a feature the model overfits). Permuted copies of several
features are predicted in one call (fewer calls into an ensemble), at most :data:`BATCH_ROWS` rows a call.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from metalearn.data.errors import InputError
from metalearn.data.metrics import check_task_metric, get_metric, score
from metalearn.data.prediction import Prediction
from metalearn.data.task import Task

#: the result's columns (index: the feature), as AutoGluon's ``feature_importance``
COLUMNS = ("importance", "stddev", "p_value", "n", "p99_low", "p99_high")
#: permuted rows predicted in one call at most
BATCH_ROWS = 50_000
#: rows used by default: a random sample of this many when the data has more
DEFAULT_MAX_ROWS = 5_000


def permutation_importance(
    predict: Callable[[pd.DataFrame], Prediction],
    task: Task,
    X: pd.DataFrame,
    y: pd.DataFrame,
    *,
    metric: str | None = None,
    n_repeats: int = 5,
    max_rows: int | None = DEFAULT_MAX_ROWS,
    time_limit: float | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Each column of ``X``'s permutation importance for the model ``predict`` (features in, its
    :class:`Prediction` out) on the rows ``X`` / ``y`` (``y``: the task's target columns).

    ``n_repeats`` shuffle sets (at least one is always done; ``time_limit`` seconds stop the later ones);
    ``max_rows``: a random sample of that many rows (None: all). Returns one row per feature, most
    important first, with :data:`COLUMNS`; ``attrs`` holds ``metric``, ``base_score`` (unshuffled),
    ``rows`` and ``shuffle_sets``. :class:`InputError` for bad arguments or data the metric is undefined on.
    """
    name = check_task_metric(task, metric or task.metric)
    if n_repeats < 1:
        raise InputError(f"n_repeats must be at least 1, got {n_repeats}: the number of shuffles of each feature")
    if max_rows is not None and max_rows < 2:
        raise InputError(f"max_rows must be at least 2 (or None for every row), got {max_rows}")
    if len(X) != len(y):
        raise InputError(f"the features have {len(X)} rows but the labels {len(y)}: pass the rows' own labels")
    if len(X) < 2 or X.shape[1] == 0:
        raise InputError(f"permutation importance needs at least 2 rows and 1 feature, got {X.shape[0]} x {X.shape[1]}")
    task = replace(task, metric=name)
    sign = 1.0 if get_metric(name).greater_is_better else -1.0
    rng = np.random.default_rng(seed)
    if max_rows is not None and len(X) > max_rows:
        rows = np.sort(rng.choice(len(X), size=max_rows, replace=False))
        X, y = X.iloc[rows], y.iloc[rows]
    X, y = X.reset_index(drop=True), y.reset_index(drop=True)
    n = len(X)
    started = time.monotonic()
    base = score(task, y, predict(X))
    if not math.isfinite(base):
        raise InputError(
            f"the model's {name} on these rows is undefined ({base}): evaluate on rows with more than one class "
            "per target and labels of the model's kind"
        )
    columns = list(X.columns)
    per_call = max(1, BATCH_ROWS // n)
    drops: list[np.ndarray] = []
    for _ in range(n_repeats):
        order = rng.permutation(n)
        drop = np.empty(len(columns))
        for start in range(0, len(columns), per_call):
            chunk = columns[start:start + per_call]
            frame = pd.concat([_permuted(X, c, order) for c in chunk], ignore_index=True)
            pred = predict(frame)
            for i, _c in enumerate(chunk):
                part = pred.take(slice(i * n, (i + 1) * n))
                drop[start + i] = sign * (base - score(task, y, part))
        drops.append(drop)
        if time_limit is not None and time.monotonic() - started >= time_limit:
            break
    return _table(columns, np.array(drops), name, base, n)


def _permuted(X: pd.DataFrame, column: Any, order: np.ndarray) -> pd.DataFrame:
    """``X`` (index 0..n-1) with ``column``'s values in ``order`` (its dtype kept: a categorical stays one)."""
    out = X.copy()
    out[column] = X[column].iloc[order].set_axis(X.index)
    return out




def _table(columns: list[Any], drops: np.ndarray, metric: str, base: float, n_rows: int) -> pd.DataFrame:
    k = drops.shape[0]
    mean = drops.mean(axis=0)
    if k > 1:
        std = drops.std(axis=0, ddof=1)
        se = std / math.sqrt(k)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(se > 0, mean / se, np.where(mean > 0, np.inf, np.where(mean < 0, -np.inf, 0.0)))
        p = stats.t.sf(t, df=k - 1)
        half = stats.t.ppf(0.995, df=k - 1) * se
        low, high = mean - half, mean + half
    else:
        std = p = low = high = np.full(len(columns), np.nan)
    frame = pd.DataFrame(
        {"importance": mean, "stddev": std, "p_value": p, "n": k, "p99_low": low, "p99_high": high},
        index=pd.Index([str(c) for c in columns], name="feature"),
    ).sort_values("importance", ascending=False, kind="stable")
    frame.attrs.update(metric=metric, base_score=float(base), rows=int(n_rows), shuffle_sets=int(k))
    return frame
