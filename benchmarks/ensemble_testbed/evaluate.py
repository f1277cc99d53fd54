"""Ensemble variants on the pools ``sitecustomize.py`` dumped: the same searches, without search noise.

Usage::

    python benchmarks/ensemble_testbed/evaluate.py POOL.pkl... [--bags 10] [--size 25]

Per pool (one search): its candidates evaluated on the same out-of-fold rows as the best one, and the
test score of

- ``single``: the best single candidate out of fold;
- ``caruana``: one greedy pass of :func:`metalearn.search.ensemble.select_ensemble` (``--size``
  iterations, ``bags=1``: the product's selection until stop 39);
- ``bagged``: the product's selection as it is (stop 39 on: bagged over its ``DEFAULT_BAGS`` bootstrap
  resamples of the out-of-fold rows, where the metric allows);
- ``bag_rows``: stop 38's bagging, outside the product: one greedy pass on each of ``--bags`` bootstrap
  resamples of the out-of-fold rows (each starting from the best single candidate on its resample and
  leaving out the candidates no better than a constant on it), the weights averaged (seeded:
  ``numpy.random.default_rng(0)`` per pool);
- ``bag_models``: the same selection on ``--bags`` random halves of the candidates, the weights averaged.

Prints one row per pool, then per task kind the mean of each variant and on how many pools a variant is
better / worse than ``caruana``. Stop 38's figures (benchmarks/HISTORY.md) came from the 12 multiclass
searches at 120 s (splits 0 and 1) and the 31 searches of 30 s split 0 (``POOL_TOP=20``).
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from metalearn.search import ensemble as E


def _stack_test(st: Any, task: Any, cands: list[dict[str, Any]], y_test: pd.DataFrame) -> Any:
    out = E._Stacked(task, y_test.reset_index(drop=True), st.unions)
    for c in cands:
        p = c["test"]
        out.arrays.append([np.asarray(p.values[t], dtype=np.float64) if u is None
                           else E._aligned(p.values[t], p.probas[t], p.classes[t], u) for t, u in enumerate(st.unions)])
    return out


def _weights(task: Any, cands: list[E.Candidate], size: int, rows: np.ndarray | None = None,
             bags: int = 1) -> np.ndarray:
    """The product's selection (:func:`~metalearn.search.ensemble.select_ensemble`) over ``cands`` — on the
    out-of-fold rows ``rows`` (a resample) when given — as one weight per candidate."""
    if rows is not None:
        cands = [E.Candidate(c.config_id, c.values, c.score, E.OutOfFold(
            np.arange(len(rows)), E._take(c.oof.prediction, rows), c.oof.y.iloc[rows].reset_index(drop=True)))
            for c in cands]
    sel = E.select_ensemble(task, cands, size, bags=bags)
    assert sel is not None
    weight = dict(zip(sel.members, sel.weights, strict=True))
    return np.array([weight.get(c.config_id, 0.0) for c in cands])


def _score_weights(st: Any, w: np.ndarray) -> float:
    idx = np.flatnonzero(w)
    sums = [sum(st.arrays[i][t] * w[i] for i in idx) for t in range(len(st.unions))]
    return float(st.score(sums, 1.0))


def load_pool(path: str) -> tuple[dict[str, Any], list[dict[str, Any]], list[E.Candidate]]:
    """A dumped pool, its candidates that have test predictions and the same out-of-fold rows as the first,
    and those as :class:`~metalearn.search.ensemble.Candidate` objects."""
    with open(path, "rb") as f:
        d = pickle.load(f)
    found = [c for c in d["cands"] if c["test"] is not None]
    rows0 = found[0]["oof"].rows
    found = [c for c in found if c["oof"].n_rows == len(rows0) and np.array_equal(c["oof"].rows, rows0)]
    return d, found, [E.Candidate(c["config_id"], c["values"], c["score"], c["oof"]) for c in found]


def evaluate(path: str, bags: int, size: int) -> dict[str, Any]:
    d, found, cands = load_pool(path)
    task = d["task"]
    test = _stack_test(E._stack(task, cands), task, found, d["y_test"])
    caruana = E.select_ensemble(task, cands, size, bags=1)
    assert caruana is not None
    single = np.array([c.config_id == caruana.best_single_id for c in cands], dtype=float)
    rng = np.random.default_rng(0)
    n = len(cands[0].oof.y)
    by_rows = sum(_weights(task, cands, size, rows=rng.integers(0, n, n)) for _ in range(bags))
    by_models = np.zeros(len(cands))
    for _ in range(bags):
        half = [i for i in range(len(cands)) if rng.random() < 0.5] or [0]
        by_models[half] += _weights(task, [cands[i] for i in half], size)
    return {
        "pool": Path(path).name.split("_product")[0], "kind": task.kind.value,
        "greater": caruana.greater_is_better, "n": len(cands), "product": d["final_test"],
        "single": _score_weights(test, single), "caruana": _score_weights(test, _weights(task, cands, size)),
        "bagged": _score_weights(test, _weights(task, cands, size, bags=E.DEFAULT_BAGS)),
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
    variants = ["single", "bagged", "bag_rows", "bag_models"]
    for kind, g in df.groupby("kind"):
        sign = np.where(g["greater"], 1.0, -1.0)
        line = [f"{kind} ({len(g)}): product {g['product'].mean():.5f}, caruana {g['caruana'].mean():.5f}"]
        for v in variants:
            d = sign * (g[v] - g["caruana"])
            line.append(f"{v} {g[v].mean():.5f} (better {(d > 1e-9).sum()}, worse {(d < -1e-9).sum()})")
        print("; ".join(line))


if __name__ == "__main__":
    main()
