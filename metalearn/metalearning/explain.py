"""What a recommender returns and how it explains itself: :class:`Recommendation`, the KB datasets
it came from (:class:`Source`), and the helpers that pick and format those sources."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from metalearn.metalearning.context import RecommendContext

__all__ = ["Recommendation", "Source", "format_sources", "top_sources", "with_suffix"]


@dataclass(frozen=True)
class Source:
    """A KB dataset a recommendation came from: its distance to the query and the config's regret there
    (``failed``: every run of the config there failed — timed out, crashed, ran out of memory — which
    the regret matrix counts as the worst, regret 1)."""

    dataset_id: str
    distance: float
    regret_there: float
    failed: bool = False


@dataclass(frozen=True)
class Recommendation:
    """One recommended configuration.

    ``expected_regret``: predicted normalised regret on the query dataset (0 = as good as the best
    configuration observed, 1 = the worst; lower better): the similarity-weighted regret of the
    configuration on the KB datasets that evaluated it (see ``strategies.with_estimates``), not its
    regret on a source dataset. ``expected_score``: the same weighting of its raw scores there, in
    the units of ``score_metric`` (None when no KB dataset scored it with one metric).
    """

    rank: int
    config_id: str
    strategy: str
    expected_regret: float
    sources: tuple[Source, ...]
    explanation: str
    expected_score: float | None = None
    score_metric: str = ""


def format_sources(sources: Sequence[Source], names: Mapping[str, str] | None = None) -> str:
    """``name (regret r d=distance), ...``; ``names``: KB dataset id -> name (else the id is shown)."""
    names = names or {}
    parts = []
    for s in sources:
        d = "" if math.isnan(s.distance) or math.isinf(s.distance) else f" d={s.distance:.3f}"
        there = "failed there: regret 1" if s.failed else f"regret {s.regret_there:.3f}"
        parts.append(f"{names.get(s.dataset_id, s.dataset_id)} ({there}{d})")
    return ", ".join(parts)


def failed_there(ctx: RecommendContext, row: int, col: int) -> bool:
    """Whether every run of configuration ``col`` on KB dataset ``row`` failed (its cost is +inf: the
    regret matrix counts it as the worst, regret 1)."""
    costs = ctx.matrix.costs
    return costs is not None and bool(np.isposinf(costs[row, col]))


def regret_text(reg: float, failed: bool) -> str:
    """``regret there`` as an explanation says it: ``1.000 (failed there)`` for a failed configuration."""
    return f"{reg:.3f} (every run failed there)" if failed else f"{reg:.3f}"


def top_sources(
    ctx: RecommendContext,
    rows: np.ndarray,
    col: int,
    score: np.ndarray,
    dist: np.ndarray | None,
    n: int = 3,
) -> tuple[Source, ...]:
    """Up to ``n`` sources among ``rows`` (KB row indices) with the highest positive ``score``."""
    cand = np.flatnonzero((score > 0) & ~np.isnan(ctx.matrix.regret[rows, col]))
    if cand.size == 0:
        return ()
    cand = cand[np.argsort(-score[cand], kind="stable")][:n]
    return tuple(
        Source(
            dataset_id=ctx.matrix.dataset_ids[rows[i]],
            distance=float(dist[rows[i]]) if dist is not None else float("nan"),
            regret_there=float(ctx.matrix.regret[rows[i], col]),
            failed=failed_there(ctx, rows[i], col),
        )
        for i in cand
    )


def with_suffix(rec: Recommendation, suffix: str) -> Recommendation:
    return dataclasses.replace(rec, explanation=rec.explanation + suffix)
