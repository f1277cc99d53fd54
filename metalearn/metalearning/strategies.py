"""The warm-start recommenders: pure functions from a query context to ranked configurations.

To add a recommender, write a function ``(ctx: RecommendContext, k: int, **params) ->
list[Recommendation]`` here and register it in :data:`STRATEGIES`. It reads the prepared regret
matrix (:mod:`metalearn.metalearning.matrix`), the query's distances and cached values
(:mod:`metalearn.metalearning.context`, :mod:`metalearn.metalearning.distances`) and returns
:class:`~metalearn.metalearning.explain.Recommendation` objects (:mod:`metalearn.metalearning.explain`).

Every strategy ranks configurations by how little normalised regret they are expected to have on a
new dataset described by its meta-features:

``knn``
    auto-sklearn 1.0: KB datasets sorted by L1 distance on min-max scaled meta-features, the best
    configuration of each nearest dataset (duplicates skipped); once every neighbour has given its
    best, the second best of each, and so on.
``portfolio``
    auto-sklearn 2.0 / TabRepo: a static greedy portfolio minimising the mean over KB datasets of the
    portfolio's best regret. Independent of the query. A configuration earns no credit on datasets
    where it was not evaluated (``missing="ignore"``), so a sparse KB (e.g. search incumbents seen
    on one dataset) does not fill the portfolio with configurations seen once.
``weighted_portfolio``
    the same greedy, with KB datasets weighted by their similarity to the query.
``surrogate``
    kernel regression: each configuration's regret on the query is predicted as the
    similarity-weighted mean of its regrets on the KB datasets that evaluated it, shrunk toward its
    global mean when few near datasets evaluated it; ranked by prediction.
``hybrid``
    the ``surrogate``'s best single guess first, then the ``weighted_portfolio`` greedy continued
    from it.
``zeroshot``
    FLAML zero-shot: 1-nearest neighbour on a few simple meta-features (rows, features, classes,
    ratio of categorical features), that neighbour's configurations in order of their regret there
    (then the next neighbour's, to reach ``k``).

:func:`recommend` is the entry point (:func:`recommend_from_matrix` reuses a matrix prepared once with
:func:`~metalearn.metalearning.matrix.prepare_matrix`); :data:`STRATEGIES` maps names to strategy
functions and :data:`DEFAULT_STRATEGY` is the one that won the leave-one-dataset-out evaluation
(:mod:`metalearn.metalearning.loo`). Nothing here raises for an empty KB or a query without usable
meta-features: the result is then an empty list and the caller falls back to its default config.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from metalearn.data.errors import InputError
from metalearn.data.metrics import get_metric
from metalearn.metalearning.context import RecommendContext, ranked_configs, row_keys
from metalearn.metalearning.distances import DistanceFit, Metric, check_metric, query_distances
from metalearn.metalearning.explain import (
    Recommendation,
    Source,
    failed_there,
    format_sources,
    regret_text,
    top_sources,
    with_suffix,
)
from metalearn.metalearning.matrix import RegretMatrix, prepare_matrix

__all__ = [
    "DEFAULT_STRATEGY",
    "SCALE_DEPENDENT_METRICS",
    "STRATEGIES",
    "ZEROSHOT_FEATURES",
    "Strategy",
    "hybrid",
    "knn",
    "portfolio",
    "recommend",
    "recommend_from_matrix",
    "surrogate",
    "weighted_portfolio",
    "with_estimates",
    "zeroshot",
]

Missing = Literal["ignore", "impute"]

#: Default meta-features of the ``zeroshot`` strategy, FLAML-style: one group per meaning, each a
#: tuple of accepted column names (first present wins, case-insensitive). Count columns whose name
#: does not say ``log`` are log-transformed.
ZEROSHOT_FEATURES: tuple[tuple[str, ...], ...] = (
    ("log_n_rows", "log_nr_inst", "log_n_instances", "log_number_of_instances", "n_rows", "nr_inst",
     "n_instances", "numberofinstances"),
    ("log_n_features", "log_nr_attr", "log_n_attributes", "log_number_of_features", "n_features",
     "nr_attr", "n_attributes", "numberoffeatures"),
    ("log_n_classes", "log_nr_class", "n_classes", "nr_class", "numberofclasses"),
    ("ratio_categorical", "categorical_ratio", "frac_categorical", "pct_categorical",
     "ratio_cat", "ratio_nominal", "percentage_of_symbolic_features", "n_categorical_ratio"),
)  # fmt: skip


#: Metrics in the units of the target (errors): their values on other KB datasets say nothing about
#: a new dataset's, so no expected score is given for them (the expected regret still is).
SCALE_DEPENDENT_METRICS: frozenset[str] = frozenset({"rmse", "mae", "rmse_mean", "mae_mean"})


#: Strategies whose own ``expected_regret`` is the regret on the source dataset, not a prediction for
#: the query: :func:`with_estimates` replaces it.
SOURCE_REGRET_STRATEGIES: frozenset[str] = frozenset({"knn", "zeroshot"})


#: A strategy maps a query context and ``k`` to at most ``k`` recommendations, best first.
Strategy = Callable[[RecommendContext, int], list[Recommendation]]


def _kernel_weights(d: np.ndarray, n_neighbors: int, tau: float) -> np.ndarray:
    """Similarity weights in (0, 1]: 1 for the nearest dataset, ``exp(-1/tau)`` for the n-th nearest.

    ``w = exp(-(d - d_1) / (tau * (d_n - d_1)))`` with ``d_1``/``d_n`` the distances of the nearest
    and the ``n_neighbors``-th nearest dataset: an adaptive bandwidth, so the weighting does not
    depend on how many meta-features there are or how spread the KB is. Infinite distance -> 0.
    """
    w = np.zeros(d.shape[0])
    fin = np.isfinite(d)
    if not fin.any():
        return w
    df = d[fin]
    n = min(max(int(n_neighbors), 1), df.size)
    part = np.partition(df, n - 1)
    d1, dn = float(part[:n].min()), float(part[n - 1])
    scale = max(tau * (dn - d1), 1e-12)
    w[fin] = np.exp(-(df - d1) / scale)
    return w


def _predict(ctx: RecommendContext, w: np.ndarray, shrink: float) -> np.ndarray:
    """Per candidate, ``(sum_d w_d R_dc + shrink * prior_c) / (sum_d w_d [R_dc known] + shrink)``
    over the usable KB datasets ``d`` (``w`` aligned with them), ``prior``: the global means."""
    _, Ef, R0 = ctx.filled()
    num = w @ R0 + shrink * ctx.global_means()
    den = w @ Ef + shrink
    return num / np.maximum(den, 1e-300)


def _greedy(
    Rimp: np.ndarray,
    E: np.ndarray,
    w: np.ndarray,
    pred: np.ndarray,
    k: int,
    G0: np.ndarray | None = None,
    forced: Sequence[int] = (),
) -> tuple[list[int], list[float], list[np.ndarray]]:
    """Greedy portfolio over the columns of ``Rimp`` (regret, missing values already replaced: 1 for
    no credit, or an imputed prediction) minimising the ``w``-weighted mean of the per-row minimum
    regret (rows start at 1, the worst). ``G0``: ``max(1 - Rimp, 0)`` if already computed (the
    gains over the empty portfolio; query-independent for ``missing="ignore"``, so cached).

    Returns picked column indices, the portfolio value after each pick, and per pick the
    improvement it brought to each row (0 where ``E``, the evaluated mask, is false). Ties (gains
    equal to 1e-12) go to the lower ``pred``, then the lower column index; ``forced`` columns are
    taken first, in their order, and the greedy continues from them. The gain of every column
    is kept up to date incrementally: after a pick only the rows whose best-so-far regret dropped
    (from ``cur`` to ``new``) are revisited, and a column loses there exactly
    ``clip(cur - R, 0, cur - new)`` — three passes over those rows instead of one per column.
    """
    n_rows, n_cols = Rimp.shape
    if G0 is None:
        G0 = np.maximum(1.0 - Rimp, 0.0)
    wsum = float(w.sum()) or 1.0
    cur = np.ones(n_rows)
    gain = w @ G0
    available = np.ones(n_cols, dtype=bool)
    picks: list[int] = []
    values: list[float] = []
    gains: list[np.ndarray] = []
    for _ in range(min(k, n_cols)):
        if len(picks) < len(forced):  # the caller's first picks (e.g. the surrogate's best guess)
            j = int(forced[len(picks)])
        else:
            g = np.where(available, gain, -np.inf)
            best = float(g.max())
            ties = np.flatnonzero(g >= best - 1e-12)
            j = int(ties[np.argmin(pred[ties])]) if ties.size > 1 else int(ties[0])
        new = np.minimum(cur, Rimp[:, j])
        drop = cur - new
        changed = np.flatnonzero(drop > 0)
        if changed.size:
            # most rows changed: all of them, without a gather (unchanged rows clip to 0 anyway)
            at: slice | np.ndarray = slice(None) if changed.size * 2 > n_rows else changed
            loss = cur[at, None] - Rimp[at]
            np.clip(loss, 0.0, drop[at, None], out=loss)
            gain -= w[at] @ loss
        picks.append(j)
        gains.append(np.where(E[:, j], cur - new, 0.0))
        cur = new
        values.append(float(cur @ w) / wsum)
        available[j] = False
    return picks, values, gains


def _neighbour_lists(
    ctx: RecommendContext, dist: np.ndarray, k: int, name: str, rounds: int | None
) -> list[Recommendation]:
    """Walk datasets nearest first taking each one's best unused configuration; repeat per round."""
    order = np.flatnonzero(np.isfinite(dist) & ctx.datasets)
    order = order[np.lexsort((order, dist[order]))]
    if order.size == 0:
        return []
    lists: dict[int, np.ndarray] = {}
    chosen: set[int] = set()
    recs: list[Recommendation] = []
    max_rounds = rounds if rounds is not None else int(ctx.configs.sum())
    for r in range(max_rounds):
        progressed = False
        for n_th, row in enumerate(order.tolist(), start=1):
            if len(recs) >= k:
                return recs
            if r == 0:  # only the best is needed: no full sort
                keys = row_keys(ctx, row)
                j = int(np.argmin(keys))
                if not np.isfinite(keys[j]):
                    continue
            else:
                if row not in lists:
                    lists[row] = ranked_configs(ctx, row)
                if r >= lists[row].size:
                    continue
                j = int(lists[row][r])
            progressed = True
            if j in chosen:  # auto-sklearn: a duplicate is skipped, the next neighbour gives its config
                continue
            chosen.add(j)
            reg = float(ctx.matrix.regret[row, j])
            src = Source(ctx.matrix.dataset_ids[row], float(dist[row]), reg, failed_there(ctx, row, j))
            nth = "best" if r == 0 else f"#{r + 1} best"
            recs.append(
                Recommendation(
                    rank=len(recs) + 1,
                    config_id=ctx.matrix.config_ids[j],
                    strategy=name,
                    expected_regret=reg,
                    sources=(src,),
                    explanation=(
                        f"{nth} config of KB dataset {ctx.name(src.dataset_id)}, neighbour #{n_th} "
                        f"(meta-feature distance {src.distance:.3f}, regret there {regret_text(reg, src.failed)})"
                    ),
                )
            )
        if not progressed:
            break
    return recs


def knn(
    ctx: RecommendContext,
    k: int,
    *,
    metric: Metric = "l1",
    rounds: int | None = None,
    max_nan_fraction: float = 0.5,
) -> list[Recommendation]:
    """auto-sklearn 1.0 meta-learning: the best configuration of each nearest dataset.

    Datasets are sorted by L1 distance on min-max scaled meta-features; each gives its best
    candidate (lowest regret; ties by the lower mean regret over the KB) unless already chosen.
    With ``rounds=None`` the walk continues with each neighbour's second best etc. until ``k``;
    ``rounds=1`` is the strict auto-sklearn behaviour (at most one config per neighbour).
    """
    if ctx.empty:
        return []
    dist = ctx.distances(check_metric(metric), max_nan_fraction)
    if dist is None:
        return []
    return _neighbour_lists(ctx, dist, k, "knn", rounds)


def _portfolio_recs(
    ctx: RecommendContext,
    k: int,
    w_full: np.ndarray,
    dist: np.ndarray | None,
    name: str,
    shrink: float,
    weighted: bool,
    missing: Missing = "ignore",
    forced: Sequence[Recommendation] = (),
) -> list[Recommendation]:
    if missing not in ("ignore", "impute"):
        raise InputError(f"missing must be 'ignore' or 'impute', got {missing!r}")
    rows, cols, R = ctx.submatrix()
    w = w_full[rows]
    if not (w > 0).any():
        return []
    E, _, _ = ctx.filled()
    # plain portfolio: each config's mean regret shrunk toward the overall mean; weighted: kernel
    # regression toward that global mean
    pred = _predict(ctx, w, shrink) if weighted else ctx.global_means(shrink)
    if missing == "impute":
        Rimp, G0 = np.where(E, R, pred[None, :]), None
    else:
        Rimp, G0 = ctx.no_credit_matrices()
    first = [int(np.searchsorted(cols, ctx.matrix.config_index[r.config_id])) for r in forced]
    picks, values, gains = _greedy(Rimp, E, w, pred, k, G0, forced=first)
    recs: list[Recommendation] = []
    prev = 1.0
    n_ds = int((w > 0).sum())
    over = f"{n_ds} similarity-weighted KB datasets" if weighted else f"{n_ds} KB datasets"
    for rank, (j, value, gain) in enumerate(zip(picks, values, gains, strict=True), start=1):
        col = int(cols[j])
        sources = top_sources(ctx, rows, col, gain * w, dist)
        if not sources:  # no improvement anywhere: cite where it did best (never where it failed)
            failed = np.array([failed_there(ctx, int(r), col) for r in rows], dtype=bool)
            evaluated = ~np.isnan(R[:, j]) & ~failed
            score = np.where(evaluated, w * (1.0 - np.nan_to_num(R[:, j], nan=1.0)) + 1e-12, 0.0)
            sources = top_sources(ctx, rows, col, score, dist)
        where = f"; best on {format_sources(sources, ctx.names)}" if sources else ""
        if rank <= len(forced):  # keeps its own reasoning, with what it does for the portfolio
            f = forced[rank - 1]
            recs.append(
                Recommendation(
                    rank=rank, config_id=f.config_id, strategy=name, expected_regret=f.expected_regret,
                    sources=f.sources, explanation=f"{f.explanation}; portfolio regret {prev:.3f} -> {value:.3f}",
                )
            )  # fmt: skip
            prev = value
            continue
        recs.append(
            Recommendation(
                rank=rank,
                config_id=ctx.matrix.config_ids[col],
                strategy=name,
                expected_regret=float(pred[j]),
                sources=sources,
                explanation=(
                    f"greedy portfolio pick {rank} (ranked by what it adds to the portfolio, not by its "
                    f"expected regret): mean best-so-far regret over {over} "
                    f"{prev:.3f} -> {value:.3f}{where}"
                ),
            )
        )
        prev = value
    return recs


def portfolio(
    ctx: RecommendContext,
    k: int,
    *,
    shrink: float = 1.0,
    missing: Missing = "ignore",
    metric: Metric = "l1",
) -> list[Recommendation]:
    """auto-sklearn 2.0 / TabRepo static portfolio: greedy on the mean over KB datasets of the
    portfolio's minimum regret (an empty portfolio has regret 1). A configuration not evaluated on
    a dataset earns no credit there (``missing="ignore"``: a sparse KB does not favour configs
    seen once) or is assumed to have its mean regret there (``"impute"``). ``expected_regret`` is
    the config's mean regret, shrunk toward the overall mean by ``shrink`` pseudo-observations.
    The query only serves to report distances of the sources.
    """
    if ctx.empty:
        return []
    dist = ctx.distances(check_metric(metric))
    w = ctx.datasets.astype(float)
    return _portfolio_recs(ctx, k, w, dist, "portfolio", shrink, weighted=False, missing=missing)


def weighted_portfolio(
    ctx: RecommendContext,
    k: int,
    *,
    n_neighbors: int = 10,
    tau: float = 1.0,
    floor: float = 0.3,
    shrink: float = 1.0,
    missing: Missing = "ignore",
    metric: Metric = "l1",
) -> list[Recommendation]:
    """The greedy portfolio with KB datasets weighted by similarity to the query (see
    :func:`_kernel_weights`: nearest 1, ``n_neighbors``-th ``exp(-1/tau)``), plus ``floor`` for
    every usable dataset (``floor=1`` is close to the plain portfolio). Missing evaluations earn
    no credit (``missing="ignore"``) or are imputed by the similarity-weighted prediction
    (``"impute"``); ``expected_regret`` is that prediction.
    Without usable meta-features for the query, falls back to equal weights (a plain portfolio).
    """
    if ctx.empty:
        return []
    dist = ctx.distances(check_metric(metric))
    if dist is None or not np.isfinite(dist[ctx.datasets]).any():
        flat = ctx.datasets.astype(float)
        recs = _portfolio_recs(ctx, k, flat, None, "weighted_portfolio", shrink, False, missing)
        return [with_suffix(r, " (query has no usable meta-features: equal weights)") for r in recs]
    w = _similarity_weights(ctx, dist, n_neighbors, tau, floor)
    return _portfolio_recs(ctx, k, w, dist, "weighted_portfolio", shrink, weighted=True, missing=missing)


def _similarity_weights(
    ctx: RecommendContext, dist: np.ndarray, n_neighbors: int, tau: float, floor: float
) -> np.ndarray:
    """The weighted portfolio's dataset weights: kernel weights plus ``floor`` for every usable dataset."""
    w = _kernel_weights(np.where(ctx.datasets, dist, np.inf), n_neighbors, tau)
    if floor > 0:
        w = np.where(ctx.datasets, (1.0 - min(floor, 1.0)) * w + floor, 0.0)
    return w


def hybrid(
    ctx: RecommendContext,
    k: int,
    *,
    n_neighbors: int = 10,
    tau: float = 1.0,
    floor: float = 0.3,
    shrink: float = 1.0,
    metric: Metric = "l1",
    size_scale: float | None = None,
) -> list[Recommendation]:
    """The :func:`surrogate`'s best single guess first (the strongest first pick in the
    leave-one-dataset-out evaluation), then the :func:`weighted_portfolio` greedy continued from it
    (the strongest set of picks): each next configuration covers the similarity-weighted KB datasets
    the ones before it do worst on."""
    if ctx.empty:
        return []
    first = surrogate(ctx, 1, n_neighbors=n_neighbors, tau=tau, shrink=shrink, metric=metric, size_scale=size_scale)
    dist = ctx.distances(check_metric(metric))  # computed by the surrogate: cached
    if not first or dist is None:  # the surrogate gives nothing without usable distances
        return weighted_portfolio(
            ctx, k, n_neighbors=n_neighbors, tau=tau, floor=floor, shrink=shrink, metric=metric
        )
    w = _similarity_weights(ctx, dist, n_neighbors, tau, floor)
    return _portfolio_recs(ctx, k, w, dist, "hybrid", shrink, weighted=True, forced=first[:1])


def surrogate(
    ctx: RecommendContext,
    k: int,
    *,
    n_neighbors: int = 10,
    tau: float = 1.0,
    shrink: float = 1.0,
    diversify: bool = False,
    missing: Missing = "ignore",
    metric: Metric = "l1",
    size_scale: float | None = None,
) -> list[Recommendation]:
    """Kernel-regression surrogate: predicted regret of each candidate on the query =
    ``(sum_d w_d regret_d + shrink * global_mean) / (sum_d w_d + shrink)`` over the KB datasets
    ``d`` that evaluated it (``w``: similarity weights, nearest = 1). Ranked by prediction (ties:
    more evaluations first); ``diversify=True`` picks greedily instead (a weighted portfolio whose
    rows are the KB datasets, ``missing`` as there), so the top-k do not all fail on the same
    datasets. ``size_scale`` (None: off) multiplies each weight by ``exp(-|ln n_query - ln n_d| /
    size_scale)`` (rows, :func:`_size_gaps`), since which family wins depends on the data's size. Off by
    default: with 0.25 the leave-one-dataset-out k=1 regret of ``hybrid`` averaged over the kinds falls
    from 0.063 to 0.050 on the shipped KB (0.061 -> 0.048 without its size portfolio; worse on
    multi-target), but on the 31 held-out benchmark datasets the top-1 alone beat FLAML's zero-shot
    configuration less often (52 % vs 55 %: ann_thyroid's first pick went from 0.015 to 0.21 log loss)
    and the 30 s searches were no better (stop 20, README "Against FLAML and AutoGluon").
    """
    if ctx.empty:
        return []
    dist = ctx.distances(check_metric(metric))
    if dist is None or not np.isfinite(dist[ctx.datasets]).any():
        return []
    w_full = _kernel_weights(np.where(ctx.datasets, dist, np.inf), n_neighbors, tau)
    if size_scale is not None:
        w_full = w_full * np.exp(-_size_gaps(ctx) / max(float(size_scale), 1e-12))
    if diversify:
        return _portfolio_recs(ctx, k, w_full, dist, "surrogate", shrink, weighted=True, missing=missing)
    rows, cols, _ = ctx.submatrix()
    w = w_full[rows]
    pred = _predict(ctx, w, shrink)
    E, Ef, _ = ctx.filled()
    support = w @ Ef
    order = np.lexsort((np.arange(cols.size), -support, pred))[:k]
    recs: list[Recommendation] = []
    for rank, j in enumerate(order, start=1):
        col = int(cols[j])
        sources = top_sources(ctx, rows, col, np.where(E[:, j], w + 1e-300, 0.0), dist)
        n_eval = int(E[:, j].sum())
        recs.append(
            Recommendation(
                rank=rank,
                config_id=ctx.matrix.config_ids[col],
                strategy="surrogate",
                expected_regret=float(pred[j]),
                sources=sources,
                explanation=(
                    f"predicted regret {pred[j]:.3f} from {n_eval} KB datasets that evaluated it "
                    f"(similarity mass {support[j]:.2f}); nearest: {format_sources(sources, ctx.names)}"
                ),
            )
        )
    return recs


def _size_gaps(ctx: RecommendContext) -> np.ndarray:
    """Per KB dataset, the absolute gap in log rows between the query and the dataset, on the first
    size meta-feature of :data:`ZEROSHOT_FEATURES` (``log_n_rows``; a raw count is log-transformed);
    0 where either is unknown, or without such a column."""
    resolved = _resolve_columns(ctx.matrix.feature_names, ZEROSHOT_FEATURES[:1])
    if not resolved:
        return np.zeros(ctx.matrix.features.shape[0])
    i, needs_log = resolved[0]
    logs = np.array([needs_log])
    x = _log_counts(ctx.matrix.features[:, [i]], logs)[:, 0]
    q = _log_counts(np.asarray(ctx.query[[i]]), logs)[0]
    gaps = np.abs(x - q)
    return np.where(np.isfinite(gaps), gaps, 0.0)


def _log_counts(values: np.ndarray, logs: np.ndarray) -> np.ndarray:
    """A float copy of ``values`` (meta-feature columns along the last axis) with the raw-count columns
    ``logs`` (a mask, :func:`_resolve_columns`) log-transformed: ``log1p`` of the non-negative part."""
    out = np.array(values, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        out[..., logs] = np.log1p(np.clip(out[..., logs], 0, None))
    return out


def _resolve_columns(names: Sequence[str], groups: Sequence[str | Sequence[str]]) -> list[tuple[int, bool]]:
    """(column index, needs log) for the first present name of each group (case-insensitive)."""
    lower = {n.lower(): i for i, n in enumerate(names)}
    out: list[tuple[int, bool]] = []
    for group in groups:
        options = (group,) if isinstance(group, str) else tuple(group)
        for opt in options:
            i = lower.get(opt.lower())
            if i is not None:
                count_like = any(t in opt.lower() for t in ("rows", "inst", "feat", "attr", "class"))
                needs_log = count_like and "log" not in opt.lower() and "ratio" not in opt.lower()
                out.append((i, needs_log))
                break
    return out


def zeroshot(
    ctx: RecommendContext,
    k: int,
    *,
    features: Sequence[str | Sequence[str]] = ZEROSHOT_FEATURES,
    metric: Metric = "l2",
) -> list[Recommendation]:
    """FLAML zero-shot: the nearest KB dataset on a handful of simple meta-features, and its
    configurations in order of regret there (FLAML's "choice" list); further neighbours fill up
    to ``k``. ``features``: one entry per meaning, each a column name or a tuple of accepted names
    (missing ones are skipped; raw counts are log-transformed). L2 on min-max scaled values.
    """
    if ctx.empty:
        return []
    resolved = _resolve_columns(ctx.matrix.feature_names, features)
    if not resolved:
        return []
    key = ("zs", tuple(resolved), metric)
    if key not in ctx._cache:
        idx = [i for i, _ in resolved]
        logs = np.array([lg for _, lg in resolved])

        def make() -> tuple[np.ndarray, DistanceFit]:
            X = _log_counts(ctx.matrix.features[:, idx], logs)
            return X, DistanceFit.fit(X, ctx.datasets, 0.5, "median")

        X, fit = ctx.static(("zs", tuple(resolved)), make)
        q = _log_counts(ctx.query[idx], logs)
        ctx._cache[key] = query_distances(
            X, q, ctx.datasets, metric=check_metric(metric), max_nan_fraction=0.5, fit=fit
        )
    dist = ctx._cache[key]
    if dist is None:
        return []
    recs = _neighbour_lists_by_dataset(ctx, dist, k)
    return recs


def _neighbour_lists_by_dataset(ctx: RecommendContext, dist: np.ndarray, k: int) -> list[Recommendation]:
    """FLAML order: all candidates of the nearest dataset by regret there, then the next one's."""
    order = np.flatnonzero(np.isfinite(dist) & ctx.datasets)
    order = order[np.lexsort((order, dist[order]))]
    chosen: set[int] = set()
    recs: list[Recommendation] = []
    for n_th, row in enumerate(order, start=1):
        for j in ranked_configs(ctx, int(row)):
            if len(recs) >= k:
                return recs
            if int(j) in chosen:
                continue
            chosen.add(int(j))
            reg = float(ctx.matrix.regret[row, j])
            src = Source(ctx.matrix.dataset_ids[row], float(dist[row]), reg, failed_there(ctx, int(row), int(j)))
            recs.append(
                Recommendation(
                    rank=len(recs) + 1,
                    config_id=ctx.matrix.config_ids[j],
                    strategy="zeroshot",
                    expected_regret=reg,
                    sources=(src,),
                    explanation=(
                        f"zero-shot: regret {regret_text(reg, src.failed)} on KB dataset {ctx.name(src.dataset_id)}, nearest #{n_th} "
                        f"on size/shape meta-features (distance {src.distance:.3f})"
                    ),
                )
            )
    return recs


#: name -> strategy function ``(context, k) -> list[Recommendation]``.
STRATEGIES: dict[str, Strategy] = {
    "knn": knn,
    "portfolio": portfolio,
    "weighted_portfolio": weighted_portfolio,
    "surrogate": surrogate,
    "zeroshot": zeroshot,
    "hybrid": hybrid,
}

#: The strategy with the lowest mean normalised regret (averaged over k in 1, 5, 10, 25 and the five task
#: kinds) in ``metalearn kb evaluate`` on the shipped knowledge base (see the README's table): ``hybrid``
#: 0.0235, ``weighted_portfolio`` 0.0256, ``portfolio`` 0.0260, ``surrogate`` 0.0282. The warm-start
#: benchmark (20 held-out corpus datasets, 25 SMAC trials) agrees: hybrid's regret after 1/5/25 trials
#: is the lowest of every strategy, and after 10 within 0.001 of weighted_portfolio's.
DEFAULT_STRATEGY: str = "hybrid"


def _resolve_strategy(strategy: str | Strategy, params: Mapping[str, Any]) -> Strategy:
    if isinstance(strategy, str):
        fn = STRATEGIES.get(strategy)
        if fn is None:
            raise InputError(f"unknown recommender strategy {strategy!r}; choose one of {sorted(STRATEGIES)}")
    elif callable(strategy):
        fn = strategy
    else:
        raise InputError(f"strategy must be a name in {sorted(STRATEGIES)} or a function, got {strategy!r}")
    if params:
        try:
            inspect.signature(fn).bind(None, 1, **params)
        except TypeError as err:
            raise InputError(f"bad parameters {sorted(params)} for strategy {strategy!r}: {err}") from None
        fn = functools.partial(fn, **params)
    return fn


def recommend_from_matrix(
    strategy: str | Strategy,
    query_mf: pd.Series | Mapping[str, Any] | None,
    matrix: RegretMatrix,
    k: int = 10,
    exclude: Iterable[Hashable] = (),
    allowed_configs: Collection[Hashable] | None = None,
    *,
    names: Mapping[str, str] | None = None,
    score_metric: str | None = None,
    **params: Any,
) -> list[Recommendation]:
    """:func:`recommend` on a KB already prepared with :func:`prepare_matrix` (reuse it across queries:
    building the regret matrix is the costly part). ``names`` (KB dataset id -> name) makes the
    explanations cite datasets by name; ``score_metric``: the query's metric (expected scores only
    from KB datasets scored by it; None: the metric most of the similarity weight was scored by)."""
    fn = _resolve_strategy(strategy, params)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise InputError(f"k must be a positive integer (how many configurations to recommend), got {k!r}")
    if matrix.n_datasets == 0 or matrix.n_configs == 0:
        return []
    ctx = RecommendContext.build(
        matrix, query_mf, exclude=exclude, allowed_configs=allowed_configs, names=names
    )
    if ctx.empty:
        return []
    return with_estimates(ctx, list(fn(ctx, int(k))), score_metric=score_metric)


def with_estimates(
    ctx: RecommendContext,
    recs: Sequence[Recommendation],
    *,
    n_neighbors: int = 10,
    tau: float = 1.0,
    shrink: float = 1.0,
    metric: Metric = "l1",
    score_metric: str | None = None,
) -> list[Recommendation]:
    """``recs`` with what each configuration is expected to do on the *query* dataset (the ranking
    is left as it is):

    - ``expected_regret`` of the strategies that report a regret on a *source* dataset (``knn``,
      ``zeroshot``: the regret where the configuration came from, 0 for a neighbour's best) is
      replaced by the :func:`surrogate`'s prediction, ``(sum_d w_d regret_d + shrink * mean) /
      (sum_d w_d + shrink)`` over the usable KB datasets ``d`` that evaluated the configuration,
      ``w`` the similarity weights of :func:`_kernel_weights` (equal weights when the query has no
      usable meta-features), ``mean`` its mean regret over the KB; the other strategies' own
      predictions are kept (``surrogate``/``hybrid``/``weighted_portfolio``: similarity-weighted;
      ``portfolio``: the KB mean);
    - ``expected_score`` (every strategy): the same weighting of its raw best scores there (no
      shrinkage), in the units of ``score_metric`` (only KB datasets scored by that metric count;
      none for the scale-dependent :data:`SCALE_DEPENDENT_METRICS`).

    The explanation says what the numbers are.
    """
    if not recs:
        return list(recs)
    m = ctx.matrix
    dist = ctx.distances(check_metric(metric))
    usable = ctx.datasets
    if dist is not None and np.isfinite(dist[usable]).any():
        w = _kernel_weights(np.where(usable, dist, np.inf), n_neighbors, tau)
        basis = "similarity-weighted regret"
    else:
        w = usable.astype(float)
        basis = "mean regret"
    _, cols, _ = ctx.submatrix()
    prior_all = ctx.global_means()
    out: list[Recommendation] = []
    for r in recs:
        col = m.config_index.get(r.config_id)
        if col is None:
            out.append(r)
            continue
        reg = m.regret[:, col]
        ev = usable & ~np.isnan(reg)
        j = int(np.searchsorted(cols, col))
        known = j < cols.size and cols[j] == col
        prior = float(prior_all[j]) if known else float(np.nanmean(reg[ev]) if ev.any() else 1.0)
        wv = w[ev]
        pred = float((wv @ reg[ev] + shrink * prior) / max(float(wv.sum()) + shrink, 1e-300))
        score, s_metric = _expected_score(m, col, ev, w, score_metric)
        text = ""
        if r.strategy in SOURCE_REGRET_STRATEGIES:
            text = f"; expected regret here {pred:.3f} ({basis} over the {int(ev.sum())} KB datasets that evaluated it)"
        else:
            pred = r.expected_regret
        if score is not None:
            text += f"; expected {s_metric} {score:.4g}"
        out.append(
            dataclasses.replace(
                r, expected_regret=pred, expected_score=score, score_metric=s_metric if score is not None else "",
                explanation=r.explanation + text,
            )
        )  # fmt: skip
    return out


def _expected_score(
    m: RegretMatrix, col: int, ev: np.ndarray, w: np.ndarray, score_metric: str | None
) -> tuple[float | None, str]:
    """The ``w``-weighted mean of the raw best scores of column ``col`` on the rows ``ev`` scored by one
    metric (``score_metric``, else the one carrying most weight), and that metric's name."""
    if m.costs is None or m.metrics is None:
        return None, ""
    cost = m.costs[:, col]
    ok = ev & np.isfinite(cost) & (m.metrics != "")
    if not ok.any():
        return None, ""
    if score_metric:
        name = score_metric
    else:
        found = m.metrics[ok]
        names, inverse = np.unique(found.astype(str), return_inverse=True)
        mass = np.bincount(inverse, weights=w[ok] + 1e-12)
        name = str(names[int(np.argmax(mass))])
    rows = ok & (m.metrics == name)
    if not rows.any():
        return None, ""
    if name.split(":")[-1] in SCALE_DEPENDENT_METRICS:
        return None, ""
    try:
        met = get_metric(name)
    except InputError:
        return None, ""
    wr = w[rows]
    total = float(wr.sum())
    value = float(wr @ cost[rows]) / total if total > 0 else float(cost[rows].mean())
    return met.from_cost(value), name


def recommend(
    strategy: str | Strategy,
    query_mf: pd.Series | Mapping[str, Any] | None,
    metafeatures: pd.DataFrame | None,
    runs: pd.DataFrame,
    k: int = 10,
    exclude: Iterable[Hashable] = (),
    allowed_configs: Collection[Hashable] | None = None,
    *,
    names: Mapping[str, str] | None = None,
    score_metric: str | None = None,
    **params: Any,
) -> list[Recommendation]:
    """Up to ``k`` configurations for a dataset with meta-features ``query_mf``, best first.

    ``strategy``: a name of :data:`STRATEGIES` (or a strategy function); ``params`` are passed to
    it (e.g. ``tau=0.5``). ``metafeatures``/``runs``: the KB frames (``metafeature_frame`` and
    ``runs_frame`` of the task kind and search space). ``exclude``: KB dataset ids not to use
    (benchmarks: the query itself). ``allowed_configs``: only these configuration ids may be
    recommended (those valid in the current search space); ``None`` allows all. ``names``/``score_metric``:
    see :func:`recommend_from_matrix`. An empty KB or no usable neighbour gives ``[]``.
    """
    _resolve_strategy(strategy, params)  # fail on a bad name/parameter before the costly part
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise InputError(f"k must be a positive integer (how many configurations to recommend), got {k!r}")
    matrix = prepare_matrix(metafeatures, runs)
    return recommend_from_matrix(
        strategy, query_mf, matrix, k, exclude, allowed_configs, names=names, score_metric=score_metric, **params
    )
