"""Does ranking the KB by the search's own metric pick better starting configurations for it?

Leave one shipped-KB dataset out at a time; recommend for it from the others twice — ranked by the kind's
default metric (what `recommend --metric M` did before stop 54) and by M (every KB run records all its kind's
metrics) — and score both lists on the held-out dataset's own runs by M: the normalised regret (in M) of the
first recommendation and of the best of the first k, over the recommendations the held-out dataset evaluated.
Pure reads of the shipped KB snapshot (no fitting); prints one table.

    python benchmarks/metric_ranking.py [--kinds binary,multiclass,regression] [--k 5] [--strategy hybrid]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    from metalearn.data.metrics import metric_names
    from metalearn.data.task import DEFAULT_METRIC, Task, TaskKind
    from metalearn.kb import InMemoryKnowledgeBase
    from metalearn.kb.shipped import shipped_snapshot
    from metalearn.kb.snapshot import import_snapshot
    from metalearn.metalearning.advisor import Advisor
    from metalearn.metalearning.matrix import prepare_matrix

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kinds", default="binary,multiclass,regression")
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--strategy", default=None, help="recommender (default: the product's)")
    args = p.parse_args(argv)
    snap = shipped_snapshot()
    if snap is None:
        print("no shipped KB snapshot in this install: nothing to measure")
        return 1
    kb = InMemoryKnowledgeBase()
    import_snapshot(kb, snap)
    advisor = Advisor(kb)
    t0 = time.monotonic()
    print(f"{'kind':<11}{'metric':<19}{'datasets':>9}   regret in the metric: top-1 default -> own ranking   "
          f"best of top-{args.k} default -> own   top-1 better / equal / worse")
    for kind_name in args.kinds.split(","):
        kind = TaskKind(kind_name.strip())
        mf = advisor.kind_data(kind).metafeatures
        space = advisor.prepared(kind).space.name
        for metric in metric_names(kind):
            if metric == DEFAULT_METRIC[kind]:
                continue
            runs = kb.runs_frame(kind=str(kind), space=space, ok_only=False, metric=metric)
            matrix = prepare_matrix(mf, runs)
            rows = {d: i for i, d in enumerate(matrix.dataset_ids)}
            cols = {c: j for j, c in enumerate(matrix.config_ids)}
            first: dict[str, list[float]] = {"default": [], "own": []}
            best: dict[str, list[float]] = {"default": [], "own": []}
            for d in mf.index:
                if d not in rows:
                    continue
                regret = matrix.regret[rows[d]]
                for label, task in (("default", Task(kind, ("y",))), ("own", Task(kind, ("y",), metric=metric))):
                    recs = advisor.recommend(mf.loc[d], task, args.strategy, k=25, exclude_ids={d})
                    seen = [regret[cols[r.config_id]] for r in recs if r.config_id in cols
                            and not np.isnan(regret[cols[r.config_id]])]
                    first[label].append(seen[0] if seen else np.nan)
                    best[label].append(min(seen[: args.k]) if seen else np.nan)
            a, b = np.array(first["default"]), np.array(first["own"])
            ok = ~np.isnan(a) & ~np.isnan(b)
            better, worse = int(np.sum(b[ok] < a[ok] - 1e-12)), int(np.sum(b[ok] > a[ok] + 1e-12))
            print(f"{kind.value:<11}{metric:<19}{int(ok.sum()):>9}   {np.mean(a[ok]):>27.4f} -> {np.mean(b[ok]):.4f}"
                  f"   {np.nanmean(best['default']):>17.4f} -> {np.nanmean(best['own']):.4f}"
                  f"   {better} / {int(ok.sum()) - better - worse} / {worse}")
    print(f"({time.monotonic() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
