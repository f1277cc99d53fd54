"""Vector scaling against the product's temperature, on the final models ``sitecustomize.py`` dumped with
``FINAL_DIR`` (stop 51).

Usage (the three 120 s multiclass splits, product cells only)::

    FINAL_DIR=final SPLIT_SEED=S PYTHONPATH=.:benchmarks/ensemble_testbed python benchmarks/peers.py \\
        --budgets 120 --peers "" --no-zero-shot --workers 2 --split-seed S \\
        --datasets allbp,allhyper,allhypo,allrep,ann_thyroid,solar_flare_2 --out DIR
    python benchmarks/ensemble_testbed/vector_scaling.py final/*.pkl --flaml benchmarks/results/peers_120s_multiclass_v23
    python benchmarks/ensemble_testbed/vector_scaling.py --rerun NEW0 NEW1 NEW2 --before OLD0 OLD1 OLD2 --flaml ...

``--rerun`` compares a rerun's product cells (any budget: ``--budget 30`` reads the ``product@30`` /
``flaml@30`` cells; ``--autogluon`` adds AutoGluon's column) with an earlier run's and the peers', per split and
in all.

Per dump (one search's final model, a single class target), each variant is fit on the model's out-of-fold
predictions and its log loss measured on the test rows:

- ``product``: stop 50's product, a temperature (:func:`metalearn.search.calibration.fit_temperature`, under the
  same conditions: at least ``MIN_ROWS`` out-of-fold rows, as many as the final model's, and a lower out-of-fold
  log loss);
- ``bias``: that temperature, then a bias per class added to the log-probabilities (Guo et al. 2017's vector
  scaling with the temperature shared), the biases fit on the out-of-fold log loss with an L2 penalty
  ``lam * |b|^2 / n`` (``--lam``; :func:`metalearn.search.calibration.fit_biases`, the product's fit): a class the models under- or over-predict on average is moved as a whole,
  which one temperature cannot do;
- ``vector``: a temperature and the biases fit together (the same penalty);
- ``rule``: ``vector`` where stop 50's product fit a temperature, else the biases alone at temperature 1;
- ``stop51``: what stop 51's product does (:func:`~metalearn.search.calibration.calibrate`, penalty
  ``BIAS_PENALTY``): ``rule`` at ``--lam`` 10, kept only when it lowers the out-of-fold log loss.

Prints one row per dump, the mean of each variant, on how many dumps each beats the product's, and — with
``--flaml`` (committed result directories holding the ``flaml@120`` cells of the same splits: the split-0
directory, its ``_split1`` and ``_split2`` beside it) — the win rate against FLAML of each variant.
"""

from __future__ import annotations

import argparse
import pickle
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from prior_mix import dump_columns

from metalearn.search.calibration import MIN_ROWS, _nll, calibrate, fit_biases, fit_temperature, scale_proba

_TIE = 1e-6  # log loss differences below this count as equal


def evaluate(dump: dict[str, Any], lam: float) -> dict[str, Any] | None:
    """One dump's variants (None: no out-of-fold predictions, or not a single class target)."""
    columns = dump_columns(dump)
    if columns is None:
        return None
    proba, truth, test_proba, test_truth = columns
    t = 1.0
    if len(truth) >= MIN_ROWS and len(truth) >= dump["n_rows"]:
        fitted = fit_temperature([proba], [truth])
        t = fitted if _nll(proba, truth, fitted) < _nll(proba, truth, 1.0) else 1.0
    t_b, b = fit_biases(proba, truth, t, penalty=lam)
    t_v, v = fit_biases(proba, truth, None, penalty=lam)
    t_r, r = (t_v, v) if t != 1.0 else (t_b, b)
    cal = calibrate(dump["task"], *dump["oof"], n_rows=dump["n_rows"])

    def test(temperature: float, biases: Sequence[float] | None) -> float:
        return _nll(scale_proba(test_proba, temperature, biases), test_truth, 1.0)

    return {
        "dataset": dump["dataset"], "split": dump.get("split"), "oof_rows": len(truth), "temperature": t,
        "bias_max": float(np.abs(b).max()), "vector_t": t_v,
        "product": test(t, None), "bias": test(t_b, b), "vector": test(t_v, v), "rule": test(t_r, r),
        "stop51": test(cal.temperature, cal.biases) if cal.used else test(1.0, None),
        "oof_product": _nll(proba, truth, t), "oof_bias": _nll(scale_proba(proba, t_b, b), truth, 1.0),
    }


def peer_scores(first: Path, strategy: str = "flaml@120") -> dict[tuple[str, str], float]:
    """(dataset, split) -> the test log loss of ``strategy``'s cells (``flaml@120``, ``autogluon@30``, ...), from a
    committed split-0 directory and its siblings."""
    import pandas as pd

    out = {}
    for split, folder in (("0", first), ("1", Path(f"{first}_split1")), ("2", Path(f"{first}_split2"))):
        cells = pd.read_parquet(folder / "cells.parquet")
        for r in cells[cells.strategy == strategy].itertuples():
            out[(str(r.dataset), split)] = float(r.test_score)
    return out


def rerun(cells: list[Path], flaml: dict[tuple[str, str], float], before: list[Path], budget: int = 120,
          autogluon: dict[tuple[str, str], float] | None = None) -> None:
    """The product cells of a rerun (``cells``: one ``cells.parquet`` per split 0, 1, 2) against FLAML's (and
    AutoGluon's), and against the product cells at ``budget`` of an earlier run (``before``, the same order): per
    dataset and in all."""
    import pandas as pd

    strategy = f"product@{budget}"
    old = {(r.dataset, str(s)): float(r.test_score) for s, f in enumerate(before)
           for r in pd.read_parquet(f).itertuples() if r.strategy == strategy}
    ag = autogluon or {}
    rows = []
    for split, f in enumerate(cells):
        for r in pd.read_parquet(f).itertuples():
            if r.strategy != strategy:
                continue
            key = (str(r.dataset), str(split))
            rows.append((*key, old.get(key, np.nan), float(r.test_score), flaml[key], ag.get(key, np.nan)))
            print(f"{key[0]:14s} split {key[1]}  before {rows[-1][2]:.5f}  now {rows[-1][3]:.5f}  FLAML {rows[-1][4]:.5f}  "
                  f"{'win' if rows[-1][3] < rows[-1][4] - _TIE else 'loss'}"
                  + (f"  AutoGluon {rows[-1][5]:.5f}" if key in ag else ""))
    now, was, fl, au = (np.array([r[i] for r in rows]) for i in (3, 2, 4, 5))
    for split in ("0", "1", "2", None):
        part = np.array([split is None or r[1] == split for r in rows])
        if not part.any():
            continue
        n, w, f_, a = now[part], was[part], fl[part], au[part]
        print(f"{'all ' if split is None else f'split {split} '}{part.sum()} cells: mean test log loss now {n.mean():.5f}, "
              f"before {np.nanmean(w):.5f}, FLAML {f_.mean():.5f}"
              + (f", AutoGluon {np.nanmean(a):.5f}" if ag else "")
              + f"; better / worse than before {int(np.sum(n < w - _TIE))} / {int(np.sum(n > w + _TIE))}; "
              f"wins vs FLAML {int(np.sum(n < f_ - _TIE))} of {part.sum()}"
              + (f", vs AutoGluon {int(np.sum(n < a - _TIE))}" if ag else ""))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dumps", nargs="*", help="FINAL_DIR/*.pkl files (named <dataset>_<split>_<time>.pkl)")
    ap.add_argument("--rerun", type=Path, nargs=3, metavar="CELLS",
                    help="instead: a rerun's product cells.parquet of splits 0, 1, 2, against --flaml and --before")
    ap.add_argument("--before", type=Path, nargs=3, metavar="CELLS", help="the dumps' run's cells of splits 0, 1, 2")
    ap.add_argument("--lam", type=float, default=1.0, help="L2 penalty on the class biases (times 1 / rows)")
    ap.add_argument("--flaml", type=Path, help="committed split-0 result directory with the flaml@<budget> cells")
    ap.add_argument("--budget", type=int, default=120, help="with --rerun: the budget of the cells compared (s)")
    ap.add_argument("--autogluon", action="store_true", help="with --rerun: AutoGluon's cells of --flaml's run too")
    args = ap.parse_args(argv)
    if args.rerun:
        if args.flaml is None or args.before is None:
            ap.error("--rerun needs --flaml and --before")
        rerun(list(args.rerun), peer_scores(args.flaml, f"flaml@{args.budget}"), list(args.before), args.budget,
              peer_scores(args.flaml, f"autogluon@{args.budget}") if args.autogluon else None)
        return 0
    rows = []
    for path in args.dumps:
        with open(path, "rb") as f:
            dump = pickle.load(f)
        dump["split"] = Path(path).name.rsplit("_", 2)[-2]
        row = evaluate(dump, args.lam)
        if row is None:
            print(f"{path}: skipped (no out-of-fold predictions of a single class target)")
            continue
        rows.append(row)
        print(f"{row['dataset']:14s} split {row['split']}  oof rows {row['oof_rows']:5d}  T {row['temperature']:.3f} "
              f"|b| {row['bias_max']:.3f}  vector T {row['vector_t']:.3f}  oof {row['oof_product']:.5f} -> "
              f"{row['oof_bias']:.5f}  test product {row['product']:.5f} bias {row['bias']:.5f} "
              f"vector {row['vector']:.5f} rule {row['rule']:.5f} stop51 {row['stop51']:.5f}")
    if not rows:
        return 1
    variants = ("product", "bias", "vector", "rule", "stop51")
    print(f"lam {args.lam:g}; mean test log loss: " + ", ".join(f"{v} {np.mean([r[v] for r in rows]):.5f}"
                                                             for v in variants))
    for v in variants[1:]:
        better = sum(r[v] < r["product"] - _TIE for r in rows)
        worse = sum(r[v] > r["product"] + _TIE for r in rows)
        print(f"{v}: better than the product's on {better}, worse on {worse}, equal on {len(rows) - better - worse}")
    if args.flaml is not None:
        flaml = peer_scores(args.flaml)
        for v in variants:
            pairs = [(r[v], flaml[(r["dataset"], r["split"])]) for r in rows if (r["dataset"], r["split"]) in flaml]
            wins = sum(a < b - _TIE for a, b in pairs) + 0.5 * sum(abs(a - b) <= _TIE for a, b in pairs)
            print(f"{v}: wins vs FLAML {wins:g} of {len(pairs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
