"""Calibration variants on the final models ``sitecustomize.py`` dumped with ``FINAL_DIR`` (stop 44).

Usage::

    FINAL_DIR=final SPLIT_SEED=0 PYTHONPATH=.:benchmarks/ensemble_testbed python benchmarks/peers.py \\
        --budgets 120 --peers flaml,autogluon --workers 2 --split-seed 0 \\
        --datasets allbp,allhyper,allhypo,allrep,ann_thyroid,solar_flare_2 --out DIR
    python benchmarks/ensemble_testbed/prior_mix.py final/*.pkl

Per dump (one search's final model, a single class target), each variant's parameters are fit on the model's
out-of-fold predictions and its log loss is measured on the test rows:

- ``raw``: the probabilities as the model gives them (temperature 1);
- ``product``: the product's scaling (:func:`metalearn.search.calibration.calibrate`: a temperature; since stop 51
  a single class target's class biases too);
- ``mix``: the probabilities mixed with the class prior of the out-of-fold truth, ``(1 - e) p + e prior``,
  ``e`` in [0, 0.5] fit on the out-of-fold rows — a floor for rare classes, whose confident misses dominate a
  log loss;
- ``product+mix``: the mix after the product's scaling.

Prints one row per dump (the fitted ``e``, the out-of-fold and test log losses), then the mean of each variant and
on how many dumps a variant beats the product's.
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from metalearn.data.prediction import class_index
from metalearn.search.calibration import _nll, _truth_columns, calibrate, scale_proba

_TIE = 1e-6  # log loss differences below this count as equal


def _mix(proba: np.ndarray, prior: np.ndarray, e: float) -> np.ndarray:
    return (1.0 - e) * proba + e * prior


def fit_mix(proba: np.ndarray, truth: np.ndarray, prior: np.ndarray) -> float:
    """The prior's share ``e`` in [0, 0.5] minimising the log loss of ``proba`` mixed with ``prior``."""
    from scipy.optimize import minimize_scalar

    res = minimize_scalar(lambda e: _nll(_mix(proba, prior, e), truth, 1.0), bounds=(0.0, 0.5), method="bounded",
                          options={"xatol": 1e-6})
    return float(res.x)


def dump_columns(dump: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """A dump's out-of-fold probabilities and true-class columns, and its test ones (None: no out-of-fold
    predictions, not a single class target, or other classes on the test rows)."""
    if dump.get("oof") is None or dump["test"].probas[0] is None or len(dump["test"].probas) != 1:
        return None
    oof, y = dump["oof"]
    cols = _truth_columns(oof, y)
    test = dump["test"]
    if cols is None or list(test.classes[0]) != list(oof.classes[0]):
        return None
    col = class_index(test.classes[0])
    test_truth = np.array([col(v) for v in dump["y_test"].iloc[:, 0].to_numpy()])
    return cols[0][0], cols[1][0], np.asarray(test.probas[0], dtype=np.float64), test_truth


def evaluate(dump: dict[str, Any]) -> dict[str, Any] | None:
    """One dump's variants (None: see :func:`dump_columns`)."""
    columns = dump_columns(dump)
    if columns is None:
        return None
    proba, truth, test_proba, test_truth = columns
    oof, y = dump["oof"]
    prior = np.bincount(truth, minlength=proba.shape[1]) / len(truth)
    cal = calibrate(dump["task"], oof, y, n_rows=dump["n_rows"])
    t, biases = (cal.temperature, cal.biases) if cal.used else (1.0, None)  # the product's scaling (stop 51: biases)
    e_raw = fit_mix(proba, truth, prior)
    e_t = fit_mix(scale_proba(proba, t, biases), truth, prior)
    return {
        "dataset": dump["dataset"], "oof_rows": len(truth), "temperature": t, "e": e_raw, "e_after_t": e_t,
        "oof_product": _nll(scale_proba(proba, t, biases), truth, 1.0),
        "raw": _nll(test_proba, test_truth, 1.0),
        "product": _nll(scale_proba(test_proba, t, biases), test_truth, 1.0),
        "mix": _nll(_mix(test_proba, prior, e_raw), test_truth, 1.0),
        "product+mix": _nll(_mix(scale_proba(test_proba, t, biases), prior, e_t), test_truth, 1.0),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dumps", nargs="+", help="FINAL_DIR/*.pkl files")
    args = ap.parse_args(argv)
    rows = []
    for path in args.dumps:
        with open(path, "rb") as f:
            row = evaluate(pickle.load(f))
        if row is None:
            print(f"{path}: skipped (no out-of-fold predictions of a single class target)")
            continue
        rows.append(row)
        print(f"{row['dataset']:16s} oof rows {row['oof_rows']:5d}  T {row['temperature']:.3f}  e {row['e']:.1e} / "
              f"{row['e_after_t']:.1e}  oof {row['oof_product']:.5f}  test raw {row['raw']:.5f} product "
              f"{row['product']:.5f} mix {row['mix']:.5f} product+mix {row['product+mix']:.5f}")
    if not rows:
        return 1
    variants = ("raw", "product", "mix", "product+mix")
    print("mean test log loss: " + ", ".join(f"{v} {np.mean([r[v] for r in rows]):.5f}" for v in variants))
    for v in ("raw", "mix", "product+mix"):
        better = sum(r[v] < r["product"] - _TIE for r in rows)
        worse = sum(r[v] > r["product"] + _TIE for r in rows)
        print(f"{v}: better than the product's on {better}, worse on {worse}, equal on {len(rows) - better - worse}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
