"""The leaderboard of a search: every pipeline it scored, best first, with its weight in the final model.

What AutoGluon's ``TabularPredictor.leaderboard()`` gives after ``fit``, as a pure function over a search's
summary — ``summary.json`` beside an ``optimize --out`` model, ``OptimizeOutcome.summary``, the estimators'
``search_`` (their ``leaderboard()`` method), the service's search result — so it needs neither the KB nor
the model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from metalearn.data.errors import InputError

#: the leaderboard's columns, in order
COLUMNS = ("rank", "config_id", "family", "score", "seconds", "evaluations", "origin", "weight")


def leaderboard(summary: Mapping[str, Any]) -> pd.DataFrame:
    """One row per configuration the search scored on all its data, best first (:data:`COLUMNS`):

    - ``score``: its best validation score (the search's metric, ``attrs["metric"]``; cross-validated or on the
      holdout rows, as the search's protocol says), ``seconds`` that evaluation's time, ``origin`` where the
      configuration came from (``recommendation:K``, ``smac``, ``local``, ...);
    - ``evaluations``: how often it was scored (a resumed search's earlier trials count);
    - ``weight``: its weight in the search's model — the ensemble's member weights, 1 for the single pipeline
      the model is, 0 for the others (all 0 when no model was refit).

    Failed trials and those of a multi-fidelity search on part of the data are left out. ``attrs`` holds
    ``metric`` and ``greater_is_better``. :class:`InputError` when ``summary`` is not a search's summary.
    """
    trials = summary.get("trials") if isinstance(summary, Mapping) else None
    if not isinstance(trials, list) or "greater_is_better" not in summary:
        raise InputError(
            "this is not the summary of a search (no 'trials' and 'greater_is_better'): pass the summary.json "
            "that `metalearn optimize --out` writes, an OptimizeOutcome's summary or a fitted estimator's search_"
        )
    sign = 1.0 if summary["greater_is_better"] else -1.0
    best: dict[str, dict[str, Any]] = {}
    counts: dict[str, int] = {}
    for t in trials:
        score = t.get("score")
        if t.get("status") != "ok" or score is None or not math.isfinite(score) or (t.get("budget") or 1.0) < 1.0:
            continue
        cid = str(t["config_id"])
        counts[cid] = counts.get(cid, 0) + 1
        if cid not in best or sign * score > sign * best[cid]["score"]:
            best[cid] = {"config_id": cid, "family": t.get("family", "-"), "score": float(score),
                         "seconds": t.get("seconds"), "origin": t.get("origin", ""), "number": t.get("number", 0)}
    weights = _model_weights(summary)
    rows = sorted(best.values(), key=lambda r: (-sign * r["score"], r["number"]))
    frame = pd.DataFrame(
        [{**r, "rank": i, "evaluations": counts[r["config_id"]], "weight": weights.get(r["config_id"], 0.0)}
         for i, r in enumerate(rows, start=1)],
        columns=list(COLUMNS),
    )
    frame.attrs.update(metric=summary.get("metric"), greater_is_better=bool(summary["greater_is_better"]))
    return frame


def _model_weights(summary: Mapping[str, Any]) -> dict[str, float]:
    """Each configuration's weight in the search's model (the ensemble's members, or the one pipeline)."""
    ensemble = summary.get("ensemble") or {}
    if ensemble.get("used"):
        weights: dict[str, float] = {}
        for m in ensemble.get("members", []):
            weights[str(m["config_id"])] = weights.get(str(m["config_id"]), 0.0) + float(m["weight"])
        return weights
    model = summary.get("model") or {}
    cid = model.get("config_id")
    return {str(cid): 1.0} if cid is not None and model.get("refit", True) else {}


def leaderboard_text(frame: pd.DataFrame, top: int | None = None) -> list[str]:
    """``frame`` (:func:`leaderboard`) as aligned lines, the first ``top`` rows (all: None)."""
    shown = frame if top is None else frame.head(top)
    metric = frame.attrs.get("metric") or "score"
    lines = [f"{'rank':>4}  {'config_id':<20}  {'family':<10}  {metric:>12}  {'seconds':>8}  {'weight':>6}  origin"]
    for r in shown.itertuples(index=False):
        seconds = "-" if r.seconds is None or pd.isna(r.seconds) else f"{r.seconds:.2f}"
        lines.append(f"{r.rank:>4}  {r.config_id:<20}  {r.family:<10}  {r.score:>12.6g}  {seconds:>8}  "
                     f"{r.weight:>6.3f}  {r.origin}")
    if top is not None and len(frame) > top:
        lines.append(f"... {len(frame) - top} more (of {len(frame)} pipelines)")
    return lines
