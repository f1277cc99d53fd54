"""Ensemble variants on the pools ``sitecustomize.py`` dumped: the same searches, without search noise.

Usage::

    python benchmarks/ensemble_testbed/evaluate.py POOL.pkl... [--bags 10] [--size 25]

Per pool (one search): its candidates evaluated on the same out-of-fold rows as the best one, stacked as
:func:`metalearn.search.ensemble.select_ensemble` stacks them, and the test score of

- ``single``: the best single candidate out of fold;
- ``caruana``: Caruana's greedy selection with replacement as the product runs it (``--size`` iterations,
  start from the best single candidate, the candidates no better than a constant prediction left out, the
  best prefix of the picks);
- ``bag_rows``: the same selection on ``--bags`` bootstrap resamples of the out-of-fold rows, the weights
  averaged (seeded: ``numpy.random.default_rng(0)`` per pool);
- ``bag_models``: the same selection on ``--bags`` random halves of the candidates, the weights averaged.

Prints one row per pool, then per task kind the mean of each variant and on how many pools a variant is
better / worse than ``caruana``. Stop 38's figures (benchmarks/HISTORY.md) came from the 12 multiclass
searches at 120 s (splits 0 and 1) and the 31 searches of 30 s split 0 (``POOL_TOP=20``).
"""

from __future__ import annotations

import argparse
import math
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from metalearn.data.metrics import get_metric
from metalearn.search import ensemble as E


class _Cand:  # what E._stack reads of a candidate
    def __init__(self, c: dict[str, Any]) -> None:
        self.oof = c["oof"]


def _stack_test(st: Any, task: Any, cands: list[dict[str, Any]], y_test: pd.DataFrame) -> Any:
    out = E._Stacked(task, y_test.reset_index(drop=True), st.unions)
    for c in cands:
        p = c["test"]
        out.arrays.append([np.asarray(p.values[t], dtype=np.float64) if u is None
                           else E._aligned(p.values[t], p.probas[t], p.classes[t], u) for t, u in enumerate(st.unions)])
    return out


def _greedy(st: Any, ok: list[int], best: int, size: int, greater: bool, rows: np.ndarray | None = None) -> np.ndarray:
    """Caruana's selection over the candidates ``ok`` from ``best``: its weights (best prefix of the picks)."""
    sub = st if rows is None else E._Stacked(st.task, st.y.iloc[rows].reset_index(drop=True), st.unions)

    def score(sums: list[np.ndarray], total: float) -> float:
        return float(sub.score(sums if rows is None else [a[rows] for a in sums], total))

    picks = [best]
    sums = [a.copy() for a in st.arrays[best]]
    best_len, best_score = 1, score(sums, 1.0)
    for _ in range(size - 1):
        choice, choice_score = -1, math.nan
        for i in ok:
            s = score([a + b for a, b in zip(sums, st.arrays[i], strict=True)], len(picks) + 1.0)
            if E._better(s, choice_score, greater):
                choice, choice_score = i, s
        if choice < 0:
            break
        picks.append(choice)
        sums = [a + b for a, b in zip(sums, st.arrays[choice], strict=True)]
        if E._better(choice_score, best_score, greater):
            best_len, best_score = len(picks), choice_score
    w = np.bincount(picks[:best_len], minlength=len(st.arrays)).astype(float)
    return w / w.sum()


def _score_weights(st: Any, w: np.ndarray) -> float:
    idx = np.flatnonzero(w)
    sums = [sum(st.arrays[i][t] * w[i] for i in idx) for t in range(len(st.unions))]
    return float(st.score(sums, 1.0))


def evaluate(path: str, bags: int, size: int) -> dict[str, Any]:
    with open(path, "rb") as f:
        d = pickle.load(f)
    task = d["task"]
    cands = [c for c in d["cands"] if c["test"] is not None]
    rows0 = cands[0]["oof"].rows
    cands = [c for c in cands if c["oof"].n_rows == len(rows0) and np.array_equal(c["oof"].rows, rows0)]
    st = E._stack(task, [_Cand(c) for c in cands])
    test = _stack_test(st, task, cands, d["y_test"])
    greater = get_metric(task.metric, task.kind).greater_is_better
    singles = [st.score(a, 1.0) for a in st.arrays]
    ok = [i for i, s in enumerate(singles) if not math.isnan(s)]
    best = min(ok, key=lambda i: -singles[i] if greater else singles[i])
    base = st.score(E._constant_arrays(st), 1.0)
    ok = [i for i in ok if i == best or math.isnan(base) or E._better(singles[i], base, greater)]
    rng = np.random.default_rng(0)
    n = len(st.y)
    by_rows = sum(_greedy(st, ok, best, size, greater, rows=rng.integers(0, n, n)) for _ in range(bags))
    by_models = np.zeros(len(cands))
    for _ in range(bags):
        half = [i for i in ok if rng.random() < 0.5] or [best]
        by_models += _greedy(st, half, min(half, key=lambda i: -singles[i] if greater else singles[i]), size, greater)
    return {
        "pool": Path(path).name.split("_product")[0], "kind": task.kind.value, "greater": greater,
        "n": len(cands), "product": d["final_test"], "single": float(test.score(test.arrays[best], 1.0)),
        "caruana": _score_weights(test, _greedy(st, ok, best, size, greater)),
        "bag_rows": _score_weights(test, by_rows / by_rows.sum()),
        "bag_models": _score_weights(test, by_models / by_models.sum()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pools", nargs="+")
    ap.add_argument("--bags", type=int, default=10)
    ap.add_argument("--size", type=int, default=25)
    a = ap.parse_args()
    df = pd.DataFrame([evaluate(p, a.bags, a.size) for p in a.pools])
    pd.set_option("display.width", 200)
    print(df.drop(columns="greater").round(5).to_string(index=False))
    variants = ["single", "bag_rows", "bag_models"]
    for kind, g in df.groupby("kind"):
        sign = np.where(g["greater"], 1.0, -1.0)
        line = [f"{kind} ({len(g)}): product {g['product'].mean():.5f}, caruana {g['caruana'].mean():.5f}"]
        for v in variants:
            d = sign * (g[v] - g["caruana"])
            line.append(f"{v} {g[v].mean():.5f} (better {(d > 1e-9).sum()}, worse {(d < -1e-9).sum()})")
        print("; ".join(line))


if __name__ == "__main__":
    main()
