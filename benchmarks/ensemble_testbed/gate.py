"""Is the post-hoc ensemble worth keeping on small multiclass data? Two guards against its out-of-fold noise (stop 44).

Usage::

    python benchmarks/ensemble_testbed/gate.py POOL.pkl...

On the pools ``sitecustomize.py`` dumps (``POOL_DIR``), single-target log-loss searches only. Per pool, the test
log loss of

- ``single``: the best candidate out of fold;
- ``bagged``: the product's selection (:func:`metalearn.search.ensemble.select_ensemble`, bagged);
- ``shrink0.5`` / ``shrink0.75``: the bagged weights mixed with the best single's, ``a w + (1 - a) single``;
- ``gate0.8`` / ``0.9`` / ``0.95``: the bagged ensemble only when its out-of-fold log loss beats the best single's
  on at least that share of 200 paired bootstrap resamples of the out-of-fold rows (``p_win``), else the single.

Prints one row per pool, the means, and on how many pools each variant beats ``bagged``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import evaluate as EV

from metalearn.search import ensemble as E

_RESAMPLES = 200


def _row_losses(st: Any, w: np.ndarray, truth: np.ndarray) -> np.ndarray:
    idx = np.flatnonzero(w)
    Z = sum(st.arrays[i][0] * w[i] for i in idx)
    return -np.log(np.clip(Z[np.arange(len(truth)), truth], 1e-15, 1.0))


def evaluate(path: str) -> dict[str, Any] | None:
    d, found, cands = EV.load_pool(path)
    task = d["task"]
    st = E._stack(task, cands)
    if len(st.unions) != 1 or st.unions[0] is None or task.metric != "log_loss":
        return None
    test = EV._stack_test(st, task, found, d["y_test"])
    sel = E.select_ensemble(task, cands, E.DEFAULT_SIZE, bags=E.DEFAULT_BAGS)
    assert sel is not None
    weight = dict(zip(sel.members, sel.weights, strict=True))
    w = np.array([weight.get(c.config_id, 0.0) for c in cands])
    single = np.array([c.config_id == sel.best_single_id for c in cands], dtype=float)
    col = {v: i for i, v in enumerate(st.unions[0])}
    truth = np.array([col[v] for v in cands[0].oof.y.iloc[:, 0].to_numpy()])
    le, ls = _row_losses(st, w, truth), _row_losses(st, single, truth)
    rng = np.random.default_rng(0)
    n = len(truth)
    p_win = float(np.mean([le[r].mean() < ls[r].mean() for r in (rng.integers(0, n, n) for _ in range(_RESAMPLES))]))
    out: dict[str, Any] = {"pool": Path(path).name.split("_product")[0], "n": len(cands), "product": d["final_test"],
                           "single": EV._score_weights(test, single), "bagged": EV._score_weights(test, w),
                           "p_win": p_win}
    for a in (0.5, 0.75):
        out[f"shrink{a}"] = EV._score_weights(test, a * w + (1 - a) * single)
    for q in (0.8, 0.9, 0.95):
        out[f"gate{q}"] = out["bagged"] if p_win >= q else out["single"]
    return out


def main() -> int:
    rows = [r for r in (evaluate(p) for p in sys.argv[1:]) if r is not None]
    if not rows:
        print("no single-target log-loss pool given")
        return 1
    df = pd.DataFrame(rows)
    pd.set_option("display.width", 250)
    print(df.round(5).to_string(index=False))
    print("means: " + ", ".join(f"{k} {v:.5f}" for k, v in df.drop(columns=["pool", "n"]).mean().items()))
    for v in [c for c in df.columns if c.startswith(("single", "shrink", "gate"))]:
        better = int((df[v] < df.bagged - 1e-9).sum())
        worse = int((df[v] > df.bagged + 1e-9).sum())
        print(f"{v}: better than bagged on {better}, worse on {worse} of {len(df)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
