"""The final fit's forest growth, measured: the default random-forest and extra-trees configurations of the
peers benchmark's held-out corpus datasets, fit on each split's training part with 100 trees (a plain fit)
and through ``fit_final`` (grown to ``FINAL_FOREST_TREES``), scored on the test part.

    python benchmarks/final_fit_forests.py [--splits 0,1] [--datasets a,b] [--out forests.csv]

Prints one line per fit pair and, at the end, per kind and family: the mean relative change of the test
score (positive: better) and how many pairs got better / worse / stayed equal.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--corpus", default=None, help="corpus directory (default: $METALEARN_CORPUS or ../shared/corpus)")
    p.add_argument("--splits", default="0,1", help="split seeds of the 75/25 train/test split")
    p.add_argument("--datasets", default=None,
                   help="comma-separated corpus names (default: the peers benchmark's 31 datasets)")
    p.add_argument("--max-rows", type=int, default=20_000)
    p.add_argument("--out", default=None, help="CSV of every fit")
    args = p.parse_args(argv)

    from metalearn.benchmark.datasets import prepare_split
    from metalearn.data.loading import load_dataset
    from metalearn.data.metrics import get_metric
    from metalearn.pipelines.models.adaptive import FINAL_FOREST_TREES
    from metalearn.pipelines.spaces import get_space
    from metalearn.search.evaluation import fit_final, test_score

    if args.datasets:
        names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    else:
        listed = pd.read_parquet(REPO / "benchmarks" / "results" / "peers_30s_v13" / "datasets.parquet")
        names = sorted(listed.drop_duplicates("key").key)
    rows = []
    warnings.simplefilter("ignore")
    for name in names:
        ds = load_dataset(f"corpus:{name}", corpus=args.corpus)
        greater = get_metric(ds.task.metric).greater_is_better
        for split in (int(x) for x in args.splits.split(",")):
            prep = prepare_split(ds, args.max_rows, 0.25, split)
            space = get_space(prep.train.task)
            for fam in ("rf", "et"):
                values = space.validate({"model": fam, f"{fam}:n_estimators": 100.0}, fill_defaults=True)
                scores = {}
                for label, within in (("plain", 0.0), ("grown", None)):
                    t = time.monotonic()
                    model = fit_final(prep.train, space, values, extra_within=within)
                    scores[label] = test_score(model, prep.X_test, prep.y_test, ds.task)[ds.task.metric]
                    scores[f"{label}_seconds"] = time.monotonic() - t
                sign = 1.0 if greater else -1.0
                rel = sign * (scores["grown"] - scores["plain"]) / max(abs(scores["plain"]), 1e-12)
                rows.append({"dataset": name, "kind": str(ds.task.kind), "split": split, "family": fam, **scores,
                             "relative_gain": rel})
                print(f"{name:35s} split {split} {fam}: 100 trees {scores['plain']:.4f}, {FINAL_FOREST_TREES} "
                      f"{scores['grown']:.4f} ({rel:+.2%}; {scores['plain_seconds']:.1f} -> "
                      f"{scores['grown_seconds']:.1f} s)", flush=True)
    frame = pd.DataFrame(rows)
    if args.out:
        frame.to_csv(args.out, index=False)
    gain = frame.relative_gain
    frame["outcome"] = np.where(gain > 1e-12, "better", np.where(gain < -1e-12, "worse", "equal"))
    print(f"\nall {len(frame)} pairs: mean gain {gain.mean():+.2%}; "
          + ", ".join(f"{k} {v}" for k, v in frame.outcome.value_counts().items()))
    for (kind, fam), g in frame.groupby(["kind", "family"]):
        counts = g.outcome.value_counts()
        print(f"{kind:12s} {fam}: mean gain {g.relative_gain.mean():+.2%} over {len(g)} pairs "
              f"(better {counts.get('better', 0)}, worse {counts.get('worse', 0)}, equal {counts.get('equal', 0)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
