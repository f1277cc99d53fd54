"""Leave-one-dataset-out (LOO) evaluation of the warm-start recommenders.

For every KB dataset ``h`` in turn, the recommenders see the KB without ``h`` (``exclude={h}``) and
``h``'s meta-features as the query; the quality of their top-k list is the *best* normalised regret
on ``h`` among its first ``k`` configurations, looked up in ``h``'s observed regrets. This is how a
warm start is judged: a search started from the top-k configurations is at least as good as their
best one.

Configurations never evaluated on ``h`` cannot be scored. With ``mode="skip"`` (default) each
strategy is asked for ``fetch_factor * max(ks)`` configurations and the unevaluated ones are skipped;
when fewer than ``k`` remain, the missing slots are filled by random draws from the rest of ``h``'s
pool (in expectation, computed exactly), and ``coverage`` reports the fraction of the ``k`` slots the
strategy filled itself. With ``mode="restrict"`` the strategies may only recommend configurations
evaluated on ``h`` (like a caller passing ``allowed_configs``).

Baselines: ``random`` (the expected best regret of ``k`` configurations drawn without replacement
from ``h``'s pool, exact) and ``oracle`` (the best configuration of the pool: 0 unless ``h``'s best
configuration was evaluated on no other dataset). The pool is the set of configurations evaluated on
``h`` *and* on at least one other dataset: the only ones any recommender could propose.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from metalearn.data.errors import InputError
from metalearn.metalearning.context import RecommendContext
from metalearn.metalearning.matrix import RegretMatrix, prepare_matrix
from metalearn.metalearning.strategies import STRATEGIES, Strategy

__all__ = [
    "BASELINES",
    "best_strategy",
    "expected_min_of_random",
    "leave_one_dataset_out",
    "loo_per_dataset",
    "summarise_loo",
    "variant",
]

#: Names of the reference rows added to every evaluation.
BASELINES: tuple[str, ...] = ("random", "oracle")

Mode = Literal["skip", "restrict"]


def _min_probabilities(n: int, s: int) -> np.ndarray:
    """P(the minimum of ``s`` draws without replacement from ``n`` sorted items is the i-th)."""
    p = np.zeros(n)
    if n == 0 or s <= 0:
        return p
    if s >= n:
        p[0] = 1.0
        return p
    # P_1 = s / n;  P_{i+1} / P_i = (n - i - s + 1) / (n - i)   (1-based i)
    i = np.arange(1, n)
    ratios = np.clip((n - i - s + 1) / (n - i), 0.0, None)
    p[0] = s / n
    p[1:] = p[0] * np.cumprod(ratios)
    return p


def expected_min_of_random(regrets: Sequence[float] | np.ndarray, s: int, cap: float = np.inf) -> float:
    """Expected ``min(cap, best of s values drawn without replacement from regrets)``, exactly.

    ``s <= 0`` gives ``cap``; an empty ``regrets`` gives ``cap`` too (``nan`` when ``cap`` is inf).
    """
    values = np.sort(np.asarray(regrets, dtype=float))
    if s <= 0 or values.size == 0:
        return float(cap) if np.isfinite(cap) else float("nan")
    p = _min_probabilities(values.size, int(s))
    return float(p @ np.minimum(values, cap))


def _resolve_strategies(
    strategies: Sequence[str] | Mapping[str, Strategy | str] | None,
) -> dict[str, Strategy]:
    if strategies is None:
        return dict(STRATEGIES)
    if isinstance(strategies, str):
        strategies = [strategies]
    out: dict[str, Strategy] = {}
    items = strategies.items() if isinstance(strategies, Mapping) else ((s, s) for s in strategies)
    for name, fn in items:
        if name in BASELINES:
            raise InputError(f"strategy name {name!r} is reserved for a baseline; rename it")
        if isinstance(fn, str):
            if fn not in STRATEGIES:
                raise InputError(f"unknown recommender strategy {fn!r}; choose one of {sorted(STRATEGIES)}")
            out[str(name)] = STRATEGIES[fn]
        elif callable(fn):
            out[str(name)] = fn
        else:
            raise InputError(f"strategy {name!r} must be a name in {sorted(STRATEGIES)} or a function")
    if not out:
        raise InputError("no strategy to evaluate; pass names from metalearn.metalearning.strategies.STRATEGIES")
    return out


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    try:
        out = tuple(sorted({int(k) for k in ks}))
    except (TypeError, ValueError) as err:
        raise InputError(f"ks must be positive integers such as (1, 5, 10), got {ks!r}") from err
    if not out or out[0] < 1:
        raise InputError(f"ks must be positive integers such as (1, 5, 10), got {ks!r}")
    return out


def _evaluate_matrix(
    matrix: RegretMatrix,
    strategies: dict[str, Strategy],
    ks: tuple[int, ...],
    mode: Mode,
    fetch_factor: float,
    min_configs: int,
) -> tuple[list[dict[str, object]], dict[str, float], int]:
    rows: list[dict[str, object]] = []
    seconds = dict.fromkeys(strategies, 0.0)
    n_skipped = 0
    evaluated = ~np.isnan(matrix.regret)
    n_other = evaluated.sum(axis=0)
    kmax = max(ks)
    fetch = kmax if mode == "restrict" else max(kmax, int(np.ceil(fetch_factor * kmax)))
    for h in range(matrix.n_datasets):
        on_h = evaluated[h]
        # candidates any recommender could propose: evaluated on h and on another dataset
        pool_mask = on_h & (n_other - on_h.astype(int) > 0)
        if int(on_h.sum()) < min_configs or not pool_mask.any():
            n_skipped += 1
            continue
        dataset_id = matrix.dataset_ids[h]
        allowed = matrix.config_ids[on_h].tolist() if mode == "restrict" else None
        ctx = RecommendContext.build(
            matrix, matrix.metafeature_row(dataset_id), exclude={dataset_id}, allowed_configs=allowed
        )
        pool_mask &= ctx.configs
        if not pool_mask.any():
            n_skipped += 1
            continue
        regret_h = matrix.regret[h]
        pool_values = np.sort(regret_h[pool_mask])
        n_pool = int(pool_values.size)
        for k in ks:
            base = {"dataset_id": dataset_id, "k": k, "n_pool": n_pool}
            rows.append(
                base
                | {"strategy": "random", "regret": expected_min_of_random(pool_values, k), "n_found": 0}
                | {"coverage": np.nan}
            )
            rows.append(
                base | {"strategy": "oracle", "regret": float(pool_values[0]), "n_found": min(k, n_pool)}
                | {"coverage": np.nan}
            )  # fmt: skip
        for name, fn in strategies.items():
            t0 = time.perf_counter()
            recs = fn(ctx, fetch) if not ctx.empty else []
            seconds[name] += time.perf_counter() - t0
            cols = [matrix.config_index[r.config_id] for r in recs]
            found = [j for j in cols if on_h[j]]
            for k in ks:
                top = found[:k]
                best = float(regret_h[top].min()) if top else np.inf
                rest = pool_mask.copy()
                rest[top] = False
                value = expected_min_of_random(regret_h[rest], k - len(top), cap=best)
                if not np.isfinite(value):  # nothing found and nothing left: fall back to the pool
                    value = expected_min_of_random(pool_values, k)
                rows.append(
                    {
                        "dataset_id": dataset_id,
                        "k": k,
                        "n_pool": n_pool,
                        "strategy": name,
                        "regret": value,
                        "n_found": len(top),
                        "coverage": len(top) / min(k, n_pool),
                    }
                )
    return rows, seconds, n_skipped


def loo_per_dataset(
    metafeatures: pd.DataFrame | None,
    runs: pd.DataFrame,
    strategies: Sequence[str] | Mapping[str, Strategy | str] | None = None,
    ks: Sequence[int] = (1, 5, 10, 25),
    kind: str | None = None,
    *,
    mode: Mode = "skip",
    fetch_factor: float = 2.0,
    min_configs: int = 2,
) -> pd.DataFrame:
    """One row per (held-out dataset, strategy, k): the best normalised regret on the held-out
    dataset among the strategy's top-k evaluated recommendations (see the module docstring).

    Columns: ``kind, dataset_id, strategy, k, regret, n_found, coverage, n_pool``. ``strategies``:
    names of :data:`~metalearn.metalearning.strategies.STRATEGIES` or a mapping label -> name/function (e.g.
    ``{"surrogate_t05": functools.partial(surrogate, tau=0.5)}``); ``None`` = all of them. Rows of
    the baselines ``random`` and ``oracle`` are included. Datasets with fewer than ``min_configs``
    evaluated configurations, or none shared with the rest of the KB, are skipped (their count is in
    ``attrs["n_skipped"]``; seconds spent per strategy in ``attrs["seconds"]``). ``kind`` labels the
    rows; when ``runs`` has a ``kind`` column it also filters them.
    """
    if mode not in ("skip", "restrict"):
        raise InputError(f"mode must be 'skip' or 'restrict', got {mode!r}")
    if not fetch_factor >= 1:
        raise InputError(f"fetch_factor must be >= 1, got {fetch_factor!r}")
    resolved = _resolve_strategies(strategies)
    ks_ = _check_ks(ks)
    if kind is not None and isinstance(runs, pd.DataFrame) and "kind" in runs.columns:
        runs = runs[runs["kind"].astype(str) == str(kind)]
    matrix = prepare_matrix(metafeatures, runs)
    rows, seconds, n_skipped = _evaluate_matrix(matrix, resolved, ks_, mode, fetch_factor, min_configs)
    columns = ["kind", "dataset_id", "strategy", "k", "regret", "n_found", "coverage", "n_pool"]
    out = pd.DataFrame(rows, columns=columns[1:])
    out.insert(0, "kind", kind)
    out = out.astype({"k": int, "n_found": int, "n_pool": int, "regret": float, "coverage": float})
    out.attrs["n_skipped"] = n_skipped
    out.attrs["seconds"] = seconds
    out.attrs["strategies"] = [*resolved, *BASELINES]
    return out


def summarise_loo(per_dataset: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """One row per (strategy, k): mean/sd/se/t-interval/median of the regret over held-out datasets,
    ``n_datasets``, mean ``coverage``, ``mean_rank`` (rank among the strategies and ``random`` on each
    dataset, 1 = best, ties averaged) and ``win_rate`` (fraction of datasets strictly better than
    ``random``)."""
    cols = [
        "kind", "strategy", "k", "mean", "sd", "se", "ci_low", "ci_high", "median",
        "n_datasets", "coverage", "mean_rank", "win_rate",
    ]  # fmt: skip
    if len(per_dataset) == 0:
        return pd.DataFrame(columns=cols)
    df = per_dataset
    ranked = df[df["strategy"] != "oracle"]
    ranks = ranked.groupby(["dataset_id", "k"])["regret"].rank(method="average")
    df = df.assign(rank=ranks.reindex(df.index))
    rnd = df[df["strategy"] == "random"].set_index(["dataset_id", "k"])["regret"]
    key = pd.MultiIndex.from_arrays([df["dataset_id"], df["k"]])
    df = df.assign(win=(df["regret"].to_numpy() < rnd.reindex(key).to_numpy() - 1e-12).astype(float))
    g = df.groupby(["strategy", "k"], sort=False)
    table = g.agg(
        mean=("regret", "mean"),
        sd=("regret", "std"),
        median=("regret", "median"),
        n_datasets=("regret", "size"),
        coverage=("coverage", "mean"),
        mean_rank=("rank", "mean"),
        win_rate=("win", "mean"),
    ).reset_index()
    n = table["n_datasets"].to_numpy(dtype=float)
    table["sd"] = table["sd"].fillna(0.0)
    table["se"] = table["sd"] / np.sqrt(n)
    tq = stats.t.ppf(0.5 + confidence / 2.0, np.maximum(n - 1, 1))
    table["ci_low"] = table["mean"] - tq * table["se"]
    table["ci_high"] = table["mean"] + tq * table["se"]
    table.loc[table["strategy"] == "oracle", ["mean_rank", "win_rate"]] = np.nan
    table.loc[table["strategy"] == "random", "win_rate"] = np.nan
    kinds = df["kind"].dropna().unique()
    table["kind"] = kinds[0] if len(kinds) == 1 else None
    order = per_dataset.attrs.get("strategies") or list(dict.fromkeys(df["strategy"]))
    table["_o"] = table["strategy"].map({s: i for i, s in enumerate(order)})
    table = table.sort_values(["_o", "k"], kind="stable").drop(columns="_o").reset_index(drop=True)
    return table[cols]


def leave_one_dataset_out(
    metafeatures: pd.DataFrame | None,
    runs: pd.DataFrame,
    strategies: Sequence[str] | Mapping[str, Strategy | str] | None = None,
    ks: Sequence[int] = (1, 5, 10, 25),
    kind: str | None = None,
    *,
    mode: Mode = "skip",
    fetch_factor: float = 2.0,
    min_configs: int = 2,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """LOO summary table, one row per (strategy, k) (see :func:`summarise_loo`), baselines included.

    The per-dataset long frame is in ``table.attrs["per_dataset"]``; ``attrs`` also hold
    ``n_skipped`` and ``seconds`` (time spent in each strategy).
    """
    per = loo_per_dataset(
        metafeatures,
        runs,
        strategies,
        ks,
        kind,
        mode=mode,
        fetch_factor=fetch_factor,
        min_configs=min_configs,
    )
    table = summarise_loo(per, confidence=confidence)
    table.attrs["per_dataset"] = per
    table.attrs["n_skipped"] = per.attrs.get("n_skipped", 0)
    table.attrs["seconds"] = per.attrs.get("seconds", {})
    return table


def best_strategy(table: pd.DataFrame, exclude: Sequence[str] = BASELINES) -> str:
    """The strategy with the lowest mean regret averaged over the evaluated ks (baselines excluded;
    ties: the first listed)."""
    if not isinstance(table, pd.DataFrame) or not {"strategy", "mean"} <= set(table.columns):
        raise InputError("best_strategy needs the table returned by leave_one_dataset_out()")
    cand = table[~table["strategy"].isin(list(exclude))]
    if cand.empty:
        raise InputError(
            "the LOO table has no strategy besides the baselines; evaluate at least one strategy"
        )
    means = cand.groupby("strategy", sort=False)["mean"].mean()
    return str(means.index[int(np.argmin(means.to_numpy()))])


# convenience for variants: ``variant("surrogate", tau=0.5)``
def variant(name: str, **params: object) -> Strategy:
    """A registered strategy with some parameters fixed (for comparing settings in the LOO)."""
    if name not in STRATEGIES:
        raise InputError(f"unknown recommender strategy {name!r}; choose one of {sorted(STRATEGIES)}")
    return functools.partial(STRATEGIES[name], **params)
