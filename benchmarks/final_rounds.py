"""A boosted final fit's rounds, measured: early stopping again (then a refit on all rows) against the rounds
the search's trials found.

    python benchmarks/final_rounds.py --cells DIR[,DIR...] [--budget 30] [--out rounds.csv]

For every cell of the given peers-benchmark runs (``benchmarks/peers.py --out DIR``; each DIR one split, its
split seed read from its report) whose search ended on a LightGBM / XGBoost / CatBoost pipeline, the script
takes that configuration and the split's training part, evaluates it as the search did (the protocol
:func:`~metalearn.search.deadline.budget_protocol` gives at ``--budget`` seconds: 5-fold CV, 3 folds, one
holdout split or a subset of the rows) and fits it on the whole training part three ways:

- ``refit``: as the product did until stop 58 (``fit_final`` alone): early stopping on 10 % of the rows, then a
  refit on all of them with those rounds scaled by all rows / training rows;
- ``trials``: as the product does since stop 59 (``fit_final(rounds_per_row=...)``): the trial's early-stopped
  rounds per training row times the rows, one fit;
- ``trials_unscaled``: the trial's mean rounds per fold, not scaled by the rows (AutoGluon's ``refit_full``
  of a bagged model: the mean of its fold models' iteration counts).

Prints a line per fit (test score, rounds, seconds) and, per protocol and overall, the mean relative change
of the test score against ``refit`` (positive: better) and how many got better / equal / worse. One core.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BOOSTED = ("lgbm", "xgb", "catboost")


def _split(run: Path) -> tuple[int, float, int | None]:
    """The split seed, test share and row cap of a peers run directory (its summary's settings)."""
    settings = json.loads((run / "summary.json").read_text()).get("settings") or {}
    return int(settings.get("split_seed") or 0), float(settings.get("test_size") or 0.25), settings.get("max_rows")


def _boosters(model: object) -> list:
    """The fitted boosted-trees estimators inside a model."""
    from metalearn.pipelines.artifacts import parts
    from metalearn.pipelines.models.boosting import BoostedTreesClassifier, BoostedTreesRegressor

    return [b for b in parts(model, (BoostedTreesClassifier, BoostedTreesRegressor)) if hasattr(b, "model_")]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--cells", required=True, help="comma-separated peers run directories (one split each)")
    p.add_argument("--corpus", default=None, help="corpus directory (default: $METALEARN_CORPUS or ../shared/corpus)")
    p.add_argument("--budget", type=float, default=30.0, help="the search's budget the protocol follows")
    p.add_argument("--workers", type=int, default=2, help="the search's parallel trials the protocol follows")
    p.add_argument("--datasets", default=None, help="only these corpus names (comma-separated)")
    p.add_argument("--out", default=None, help="CSV of every fit")
    args = p.parse_args(argv)

    from metalearn.benchmark.datasets import prepare_split
    from metalearn.data.loading import load_dataset
    from metalearn.data.metrics import get_metric
    from metalearn.pipelines.spaces import get_space
    from metalearn.search.automl import METAFEATURE_SHARE
    from metalearn.search.deadline import INITIAL_RESERVE, budget_protocol
    from metalearn.search.evaluation import EvalProtocol, evaluate_config, fit_final, test_score

    only = {n.strip() for n in args.datasets.split(",")} if args.datasets else None
    rows: list[dict] = []
    warnings.simplefilter("ignore")
    for run in (Path(d) for d in args.cells.split(",")):
        split, test_size, max_rows = _split(run)
        cells = pd.read_parquet(run / "cells.parquet")
        for _, cell in cells.iterrows():
            inc = json.loads(cell.incumbent) if isinstance(cell.incumbent, str) and cell.incumbent else {}
            values = inc.get("values") or {}
            family = values.get("model")
            if family not in BOOSTED or (only and cell.dataset not in only):
                continue
            ds = load_dataset(f"corpus:{cell.dataset}", corpus=args.corpus)
            prep = prepare_split(ds, max_rows, test_size, split)
            train = prep.train
            space = get_space(train.task)
            seconds = args.budget * (1.0 - METAFEATURE_SHARE - INITIAL_RESERVE)
            protocol, _ = budget_protocol(EvalProtocol(), train.n_rows, seconds, args.workers, train.X.shape[1])
            resolved = protocol.resolve(train.n_rows)
            how = "subset" if resolved.max_rows and resolved.max_rows < train.n_rows else (
                "holdout" if resolved.mode == "holdout" else f"cv{resolved.n_folds}")
            t = time.monotonic()
            trial = evaluate_config(train, space, values, protocol=protocol)
            trial_seconds = time.monotonic() - t
            if not trial.ok or trial.rounds_per_row is None:
                print(f"{cell.dataset} split {split} {family}: no trial rounds ({trial.status})", flush=True)
                continue
            fold_rows = 0.9 * trial.n_train_rows  # the boosted fit's rows in a fold (its early-stopping split out)
            variants = {
                "refit": None,
                "trials": trial.rounds_per_row,
                "trials_unscaled": trial.rounds_per_row * fold_rows / train.n_rows,
            }
            greater = get_metric(train.task.metric).greater_is_better
            out: dict[str, tuple[float, int, float]] = {}
            for name, per_row in variants.items():
                t = time.monotonic()
                model = fit_final(train, space, values, rounds_per_row=per_row)
                fit_s = time.monotonic() - t
                score = test_score(model, prep.X_test, prep.y_test, train.task)[train.task.metric]
                rounds = sum(int(b.n_rounds_) for b in _boosters(model))
                out[name] = (float(score), rounds, fit_s)
                rows.append({"dataset": cell.dataset, "split": split, "family": family, "protocol": how,
                             "n_rows": train.n_rows, "variant": name, "score": float(score), "rounds": rounds,
                             "seconds": fit_s, "trial_seconds": trial_seconds, "greater_is_better": greater})
            line = "  ".join(f"{k} {v[0]:.5g} ({v[1]} rounds, {v[2]:.1f} s)" for k, v in out.items())
            print(f"{cell.dataset} split {split} {family} [{how}, {train.n_rows} rows]: {line}", flush=True)
    frame = pd.DataFrame(rows)
    if args.out:
        frame.to_csv(args.out, index=False)
    if frame.empty:
        print("no boosted incumbents in these runs")
        return 0
    wide = frame.pivot_table(index=["dataset", "split", "protocol", "greater_is_better"], columns="variant",
                             values=["score", "seconds"]).reset_index()
    for variant in ("trials", "trials_unscaled"):
        sign = np.where(wide["greater_is_better"], 1.0, -1.0)
        base = wide[("score", "refit")]
        change = sign * (wide[("score", variant)] - base) / np.abs(base).clip(lower=1e-12)
        for group, mask in [("all", np.ones(len(wide), bool))] + [
            (g, (wide["protocol"] == g).to_numpy()) for g in sorted(wide["protocol"].unique())
        ]:
            c = change[mask]
            tied = np.isclose(wide[("score", variant)][mask], base[mask], rtol=1e-9, atol=1e-12)
            secs = wide[("seconds", variant)][mask].sum() / max(wide[("seconds", "refit")][mask].sum(), 1e-9)
            print(f"{variant} vs refit, {group} ({mask.sum()} fits): mean change {100 * c.mean():+.2f} %, better / equal "
                  f"/ worse {int(((c > 0) & ~tied).sum())} / {int(tied.sum())} / {int(((c < 0) & ~tied).sum())}, "
                  f"fit seconds x{secs:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
