"""Multi-task warm start composed per target vs cold start, on multitask datasets built from the corpus.

Usage::

    python benchmarks/multitask_warmstart.py [--corpus DIR] [--trials 10] [--trial-time-limit 10]

The KB has no multitask datasets, so a multitask search used to start cold. The advisor now composes
a warm start per target (:mod:`metalearn.metalearning.composed`). This compares the two.

Datasets (reproducible, no OpenML-suite dataset: pmlb sets without an OpenML id): each of
``heart_statlog``, ``prnn_crabs`` (binary), ``wine_recognition``, ``glass`` (multiclass) becomes a
multitask dataset with two targets: its class target and its numeric feature with the most distinct
values (ties: the first column), removed from the features. The KB dataset the class target comes
from is excluded from the recommendations (it is the same data minus a column), and the composed
dataset itself (never in the KB) too.

Each arm (warm: ``n_warm=10`` composed recommendations first; cold: SMAC's own initial design) runs
on its own in-memory copy of the shipped KB (no resume across arms), 3-fold CV, ``--trials`` trials.
Printed per dataset and on average: normalised regret after 1, 5 and 10 trials (0 = the best score
either arm reached on that dataset, 1 = the worst trial either arm scored) and the best score.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from metalearn.data.dataset import Dataset  # noqa: E402
from metalearn.data.loading import Corpus  # noqa: E402
from metalearn.data.task import Task, TaskKind  # noqa: E402
from metalearn.kb.shipped import open_default_kb  # noqa: E402
from metalearn.metalearning.advisor import Advisor  # noqa: E402
from metalearn.metalearning.metafeatures import ensure_metafeatures  # noqa: E402
from metalearn.search.evaluation import EvalProtocol  # noqa: E402
from metalearn.search.loop import run_search  # noqa: E402
from metalearn.search.settings import SearchSettings  # noqa: E402

SOURCES = ("heart_statlog", "prnn_crabs", "wine_recognition", "glass")
CHECKPOINTS = (1, 5, 10)


def multitask_from(ds: Dataset) -> Dataset:
    """``ds``'s class target plus its most varied numeric feature as a second (regression) target."""
    numeric = [c for c, cat in zip(ds.X.columns, ds.categorical, strict=True) if not cat]
    counts = {c: ds.X[c].nunique() for c in numeric}
    second = max(numeric, key=lambda c: (counts[c], -numeric.index(c)))
    keep = [c for c in ds.X.columns if c != second]
    cat = tuple(flag for c, flag in zip(ds.X.columns, ds.categorical, strict=True) if c != second)
    y = pd.concat([ds.y.iloc[:, :1].reset_index(drop=True), ds.X[[second]].reset_index(drop=True)], axis=1)
    y.columns = ["class_target", f"num_{second}"]
    task = Task(
        kind=TaskKind.MULTITASK,
        targets=tuple(y.columns),
        target_kinds=(ds.task.kind, TaskKind.REGRESSION),
    )
    return Dataset(f"{ds.name}+{second}", ds.X[keep].reset_index(drop=True), y, task, cat, f"built:{ds.name}")


def trajectory(dataset: Dataset, warm: bool, exclude: set[str], args: argparse.Namespace) -> tuple[list[float], bool, int]:
    kb = open_default_kb(":memory:")
    settings = SearchSettings(
        n_trials=args.trials,
        trial_time_limit=args.trial_time_limit,
        warm_start=warm,
        n_warm=args.trials,
        seed=0,
        protocol=EvalProtocol(n_folds=3, max_rows=1000),
    )
    mf = ensure_metafeatures(kb, dataset)
    recs = []
    if warm:
        recs = Advisor(kb).recommend_dataset(dataset, mf.values, k=args.trials, exclude_ids=exclude | {dataset.dataset_id})
    result = run_search(dataset, kb, settings, recommendations=recs)
    return result.trajectory(), result.greater_is_better, sum(r.composed for r in recs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", default=os.environ.get("METALEARN_CORPUS", "/work/shared/corpus"))
    p.add_argument("--trials", type=int, default=10)
    p.add_argument("--trial-time-limit", type=float, default=10.0)
    args = p.parse_args()
    corpus = Corpus(Path(args.corpus))
    names = {d.name: d.dataset_id for d in open_default_kb(":memory:").list_datasets()}
    t0 = time.monotonic()
    rows = []
    for name in SOURCES:
        src = corpus.load(name)
        mt = multitask_from(src)
        exclude = {names[name]} if name in names else set()
        arms = {}
        for arm in ("warm", "cold"):
            traj, gib, n_composed = trajectory(mt, arm == "warm", exclude, args)
            arms[arm] = (traj, n_composed)
        scores = [s for traj, _ in arms.values() for s in traj if math.isfinite(s)]
        best, worst = (max(scores), min(scores)) if gib else (min(scores), max(scores))
        span = abs(best - worst) or 1.0
        for arm, (traj, n_composed) in arms.items():
            row = {"dataset": mt.name, "arm": arm, "composed_recs": n_composed}
            for c in CHECKPOINTS:
                s = traj[min(c, len(traj)) - 1] if traj else math.nan
                row[f"regret@{c}"] = abs(best - s) / span if math.isfinite(s) else 1.0
            row["best_score"] = traj[-1] if traj else math.nan
            rows.append(row)
        print(pd.DataFrame([r for r in rows if r["dataset"] == mt.name]).to_string(index=False), flush=True)
    table = pd.DataFrame(rows)
    print("\nmean over datasets:")
    print(table.groupby("arm")[[f"regret@{c}" for c in CHECKPOINTS] + ["best_score"]].mean().round(4).to_string())
    wins = [
        float(np.sign(g.loc[g.arm == "cold", "regret@10"].iloc[0] - g.loc[g.arm == "warm", "regret@10"].iloc[0]))
        for _, g in table.groupby("dataset")
    ]
    print(f"warm better / tied / worse after {CHECKPOINTS[-1]} trials: "
          f"{wins.count(1.0)} / {wins.count(0.0)} / {wins.count(-1.0)}")  # fmt: skip
    print(f"total {time.monotonic() - t0:.0f} s")


if __name__ == "__main__":
    main()
