"""Wide numeric data (1,000+ feature columns, few informative): the product at a time budget against default
boosted models and (optionally) FLAML on the same split, test scores and time used.

No corpus dataset has more than 168 feature columns in the wall-clock benchmark, and the shipped KB holds few
wide datasets, so this shape is measured on synthetic data generated here, reproducibly:

- ``binary``: scikit-learn's ``make_classification``, 2,400 x 1,000 (20 informative columns, 10 % of the
  labels flipped), trained on 1,800 rows, tested on 600 (ROC AUC);
- ``regression``: ``make_friedman1``, 4,000 x 1,210 (Friedman's function of 5 columns, the rest noise,
  noise 1.0), trained on 3,000 rows, tested on 1,000 (RMSE).

The product is ``optimize(time_limit=B)`` as the command line runs it (the clock starts before the data is
turned into a dataset, trials on ``--workers`` cores, a fresh in-memory KB seeded from the shipped snapshot,
no model file); the defaults are LightGBM's and scikit-learn's HistGradientBoosting on one core, fit once;
``--flaml`` adds FLAML ``AutoML.fit(time_budget=B)`` on one core. Each cell's result is appended to
``OUT/cells.jsonl`` as it finishes and a rerun skips the cells there (resumable)::

    python benchmarks/wide_data.py --budgets 30,120 --out wide-results [--flaml] [--datasets binary]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's metalearn, also in a git worktree

#: name -> (kind, rows in all, training rows)
SHAPES = {"binary": ("binary", 2_400, 1_800), "regression": ("regression", 4_000, 3_000)}


def make_frames(name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The training and test frames of ``name`` (feature columns ``x0...``, target ``target``)."""
    from sklearn.datasets import make_classification, make_friedman1

    kind, n, n_train = SHAPES[name]
    if kind == "binary":
        X, y = make_classification(
            n_samples=n, n_features=1_000, n_informative=20, n_redundant=0, flip_y=0.1, random_state=0
        )
    else:
        X, y = make_friedman1(n_samples=n, n_features=1_210, noise=1.0, random_state=0)
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    df["target"] = y
    return df.iloc[:n_train].reset_index(drop=True), df.iloc[n_train:].reset_index(drop=True)


def _score(kind: str, y: pd.Series, pred: np.ndarray) -> float:
    from sklearn.metrics import mean_squared_error, roc_auc_score

    if kind == "binary":
        return float(roc_auc_score(y, pred))
    return float(np.sqrt(mean_squared_error(y, pred)))


def run_product(name: str, budget: float, workers: int) -> dict[str, Any]:
    from metalearn.data.validation import prepare_frame
    from metalearn.kb.shipped import open_default_kb
    from metalearn.search.automl import optimize
    from metalearn.search.evaluation import test_score
    from metalearn.search.settings import SearchSettings

    train, test = make_frames(name)
    started = time.monotonic()
    dataset = prepare_frame(train, ["target"], name=f"wide_{name}", origin=f"benchmark:wide_{name}")
    kb = open_default_kb(":memory:")
    outcome = optimize(dataset, kb=kb, settings=SearchSettings(time_limit=budget, workers=workers), started=started)
    used = time.monotonic() - started
    s = outcome.summary
    kind = SHAPES[name][0]
    metric = "roc_auc" if kind == "binary" else "rmse"
    score = test_score(outcome.model, test.drop(columns="target"), test["target"], dataset.task)[metric]
    families = sorted({str(t.get("family")) for t in s["trials"] if t.get("status") == "ok"})
    return {
        "score": score,
        "seconds": used,
        "trials": s["n_trials"],
        "failed": s["n_failed"],
        "cut": s.get("n_cut", 0),
        "ensemble": bool(s["ensemble"] and s["ensemble"].get("used")),
        "families": families,
        "notes": s.get("time_budget", {}).get("notes", []),
    }


def run_default(name: str, system: str) -> dict[str, Any]:
    train, test = make_frames(name)
    kind = SHAPES[name][0]
    X, y = train.drop(columns="target"), train["target"]
    if system == "lightgbm":
        import lightgbm as lgb

        model: Any = (lgb.LGBMClassifier if kind == "binary" else lgb.LGBMRegressor)(n_jobs=1, verbose=-1)
    else:
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        model = (HistGradientBoostingClassifier if kind == "binary" else HistGradientBoostingRegressor)()
    t0 = time.monotonic()
    model.fit(X, y)
    seconds = time.monotonic() - t0
    Xt = test.drop(columns="target")
    pred = model.predict_proba(Xt)[:, 1] if kind == "binary" else model.predict(Xt)
    return {"score": _score(kind, test["target"], pred), "seconds": seconds}


def run_flaml(name: str, budget: float) -> dict[str, Any]:
    from flaml import AutoML

    train, test = make_frames(name)
    kind = SHAPES[name][0]
    automl = AutoML()
    t0 = time.monotonic()
    automl.fit(
        train.drop(columns="target"), train["target"], task="classification" if kind == "binary" else "regression",
        time_budget=budget, n_jobs=1, verbose=0, seed=0, metric="roc_auc" if kind == "binary" else "rmse",
    )
    seconds = time.monotonic() - t0
    Xt = test.drop(columns="target")
    pred = automl.predict_proba(Xt)[:, 1] if kind == "binary" else automl.predict(Xt)
    return {"score": _score(kind, test["target"], pred), "seconds": seconds, "best": str(automl.best_estimator)}


def main(argv: list[str] | None = None) -> int:
    from metalearn.search.settings import machine_cores

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budgets", default="30,120", help="seconds, comma-separated")
    parser.add_argument("--datasets", default=",".join(SHAPES), help=f"of {', '.join(SHAPES)}")
    parser.add_argument("--workers", type=int, default=machine_cores(), help="the product's trials at once")
    parser.add_argument("--flaml", action="store_true", help="also run FLAML at each budget (one core)")
    parser.add_argument("--out", type=Path, default=Path("wide-results"), help="cells.jsonl goes here (resumable)")
    args = parser.parse_args(argv)
    budgets = [float(b) for b in args.budgets.split(",") if b.strip()]
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = [n for n in names if n not in SHAPES]
    if unknown or not names or not budgets:
        parser.error(f"--datasets takes some of {', '.join(SHAPES)} and --budgets positive seconds")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "cells.jsonl"
    done: dict[tuple[str, str, float | None], dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                done[(row["dataset"], row["system"], row["budget"])] = row
    cells: list[tuple[str, str, float | None]] = []
    for name in names:
        cells += [(name, "lightgbm", None), (name, "hgb", None)]
        for b in budgets:
            cells.append((name, "product", b))
            if args.flaml:
                cells.append((name, "flaml", b))
    for i, cell in enumerate(cells, 1):
        name, system, budget = cell
        if cell in done:
            continue
        print(f"[{time.strftime('%H:%M:%SZ', time.gmtime())}] cell {i}/{len(cells)}: {name} {system}"
              f"{'' if budget is None else f' {budget:g} s'}", flush=True)
        if system == "product":
            res = run_product(name, float(budget or 0), args.workers)
        elif system == "flaml":
            res = run_flaml(name, float(budget or 0))
        else:
            res = run_default(name, system)
        row = {"dataset": name, "system": system, "budget": budget, **res}
        done[cell] = row
        with path.open("a") as f:
            f.write(json.dumps(row) + "\n")
    print(f"\n{'dataset':<11}{'system':<10}{'budget':>7}{'test score':>12}{'seconds':>9}  details")
    for cell in cells:
        row = done[cell]
        metric = "ROC AUC" if SHAPES[row["dataset"]][0] == "binary" else "RMSE"
        extra = ""
        if row["system"] == "product":
            extra = (f"{row['trials']} trials ({row['failed']} failed, {row['cut']} cut), ensemble {row['ensemble']}, "
                     f"families scored: {', '.join(row['families'])}")
        elif row["system"] == "flaml":
            extra = f"best {row['best']}"
        budget_text = "-" if row["budget"] is None else f"{row['budget']:g}"
        print(f"{row['dataset']:<11}{row['system']:<10}{budget_text:>7}{row['score']:>9.4f} {metric:<3}"
              f"{row['seconds']:>8.1f}  {extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
