"""Does warm-starting help? Warm vs cold vs random (and knn) SMAC searches on held-out corpus datasets.

Usage::

    python benchmarks/warmstart.py [--kb PATH] [--corpus DIR] [--out DIR] [--datasets N] [--trials 25]
                                   [--strategies warm,cold,random,knn] [--workers 2] [--max-rows 1000]
                                   [--folds 3] [--trial-time-limit 10] [--seeds 1] [--selection-seed 0]
                                   [--reference DIR|none] [--list]

The KB is ``--kb``, else ``$METALEARN_KB``, else the product's default KB (opened read-only); the corpus
is ``--corpus``, else ``$METALEARN_CORPUS``, else ``<repo>/../shared/corpus``.

Datasets are chosen reproducibly (``--selection-seed``) from the corpus's real (non-synthetic) datasets
of 100-50,000 rows and at most 100 features (multi-output: at most 8 targets), stratified by task kind
(20 datasets: 6 binary, 5 multiclass, 5 regression, 2 multilabel, 2 multitarget). They are *held out*
by :func:`metalearn.benchmark.runner.run_benchmark`: each dataset's recommendations come from the KB without
that dataset and its near-duplicates, however the KB was built.

Prints the mean normalised regret after 1, 5, 10 and 25 trials per strategy and the fraction of datasets
where warm beats cold after 10 trials, then warm's regret against the ``--reference`` run (default: the
version-1 run committed in ``benchmarks/results/warmstart``, the issue's baseline) on one scale per dataset
(:func:`metalearn.benchmark.report.compare_summaries`: each run's own normalisation is not comparable when
one run's space held a diverging configuration); the full report (tables, plots, raw trajectories) is written to
``--out``. Resumable: run the same command again after an interruption. Budget: 20 datasets x 4
strategies x 25 trials with the defaults below is meant to finish within an hour on 2 cores (the
measured time is printed; see the module's notes in the final report).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from metalearn.benchmark.runner import run_benchmark  # noqa: E402
from metalearn.benchmark.settings import BenchmarkSettings  # noqa: E402
from metalearn.data.loading import Corpus, default_corpus_dir  # noqa: E402
from metalearn.offline.build import DatasetSource  # noqa: E402
from metalearn.runtime.progress import RichProgress  # noqa: E402

#: datasets per task kind for 20 datasets (scaled for other counts)
QUOTAS = {"binary": 6, "multiclass": 5, "regression": 5, "multilabel": 2, "multitarget": 2}
REPORT_BUDGETS = (1, 5, 10, 25)


def choose_datasets(corpus: Corpus, n: int = 20, seed: int = 0) -> list[str]:
    """A reproducible, kind-stratified sample of real corpus datasets (see the module docstring)."""
    rng = np.random.default_rng(seed)
    total = sum(QUOTAS.values())
    chosen: list[str] = []
    for kind, quota in QUOTAS.items():
        pool = sorted(
            e.name
            for e in corpus.entries()
            if str(e.kind) == kind
            and not e.synthetic
            and 100 <= e.n_rows <= 50_000
            and e.n_features <= 100
            and len(e.targets) <= 8
        )
        k = min(len(pool), max(1, round(quota * n / total)))
        chosen += [pool[i] for i in sorted(rng.choice(len(pool), size=k, replace=False))]
    return chosen


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kb", default=None, help="KB file (default: $METALEARN_KB or the product default KB)")
    p.add_argument("--corpus", default=None, help="corpus directory")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "warmstart"), help="output directory")
    p.add_argument("--datasets", type=int, default=20, help="how many held-out datasets (>= 20 recommended)")
    p.add_argument("--selection-seed", type=int, default=0, help="seed of the dataset selection")
    p.add_argument("--strategies", default="warm,cold,random,knn")
    p.add_argument("--trials", type=int, default=25)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--max-rows", type=int, default=1000)
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--trial-time-limit", type=float, default=10.0)
    p.add_argument(
        "--reference",
        default=str(REPO / "benchmarks" / "results" / "warmstart"),
        help="an earlier run's output directory to compare warm's regret with on one scale ('none': skip)",
    )
    p.add_argument("--list", action="store_true", help="print the chosen datasets and exit")
    args = p.parse_args(argv)

    from metalearn.kb.shipped import open_default_kb

    corpus_dir = default_corpus_dir(args.corpus)
    corpus = Corpus(corpus_dir)
    names = choose_datasets(corpus, args.datasets, args.selection_seed)
    if args.list:
        for n in names:
            e = corpus.entry(n)
            print(f"{n:32s} {e.kind!s:12s} {e.n_rows:6d} x {e.n_features}")
        return 0
    kb = open_default_kb(args.kb, read_only=True, current=True)
    stats = kb.stats()
    print(f"KB: {stats.get('datasets')} datasets {stats.get('datasets_by_kind')}, {stats.get('runs')} runs")
    settings = BenchmarkSettings(
        strategies=tuple(args.strategies.split(",")),
        n_trials=args.trials,
        seeds=tuple(range(args.seeds)),
        max_rows=args.max_rows,
        n_folds=args.folds,
        trial_time_limit=args.trial_time_limit,
        workers=args.workers,
    )
    sources = [DatasetSource(f"corpus:{n}", str(corpus_dir)) for n in names]
    t0 = time.monotonic()
    with RichProgress() as progress:
        outcome = run_benchmark(sources, kb, args.out, settings, progress=progress)
    seconds = time.monotonic() - t0
    s = outcome.summary

    budgets = [b for b in REPORT_BUDGETS if b <= args.trials]
    print(f"\n{s['n_datasets']} datasets {s['kinds']}, {s['n_instances']} (dataset, seed) instances, "
          f"{outcome.n_run} cells run now ({outcome.n_cells} in all, {outcome.n_failed} failed) in {seconds / 60:.1f} min")
    excluded = [d["n_excluded"] for d in s["per_dataset"]]
    print(f"KB datasets excluded per benchmarked dataset (itself + near-duplicates): "
          f"min {min(excluded, default=0)}, mean {np.mean(excluded) if excluded else 0:.1f}, max {max(excluded, default=0)}")
    print("\nmean normalised regret (95% CI) after t trials")
    print(f"{'strategy':12s}" + "".join(f"{f't={b}':>18s}" for b in budgets))
    table = s["regret"]["overall"]["table"]
    for strat in s["trajectory_strategies"]:
        cells = []
        for b in budgets:
            st = table.get(strat, {}).get(str(b), {})
            m, ci = st.get("mean"), st.get("ci")
            cells.append("-" if m is None else f"{m:.3f} ± {ci:.3f}" if ci is not None else f"{m:.3f}")
        print(f"{strat:12s}" + "".join(f"{c:>18s}" for c in cells))
    at = "10" if args.trials >= 10 else str(args.trials)
    wins = ties = n = 0
    for d in s["per_dataset"]:
        r = d["regret_at"]
        if "warm" in r and "cold" in r:
            w, c = r["warm"][at], r["cold"][at]
            if w is None or c is None or (isinstance(w, float) and math.isnan(w)):
                continue
            n += 1
            wins += w < c - 1e-12
            ties += abs(w - c) <= 1e-12
    if n:
        print(f"\nwarm beats cold after {at} trials on {wins}/{n} datasets ({wins / n:.0%}); ties {ties}, "
              f"cold better {n - wins - ties}")
    if args.reference.lower() != "none":
        compare_with_reference(Path(args.reference), s)
    print(f"report: {outcome.report_path}")
    return 0


def compare_with_reference(reference: Path, summary: dict[str, object]) -> None:
    """Print warm's mean normalised regret here and in the ``reference`` run on one scale per dataset."""
    import json

    from metalearn.benchmark.report import compare_summaries
    from metalearn.data.errors import InputError

    path = reference / "summary.json" if reference.is_dir() else reference
    if not path.is_file():
        print(f"\nno reference run at {reference} (its summary.json): comparison skipped")
        return
    try:
        cmp = compare_summaries(json.loads(path.read_text()), summary)
    except InputError as e:
        print(f"\nreference {reference}: not compared: {e}")
        return
    print(f"\nwarm against the reference run {reference} on one scale per dataset ({cmp['n_datasets']} datasets; "
          "best: the better of the runs' best CV scores, worst: the less extreme of their worst)")
    print(f"{'trials':>8s}{'reference':>11s}{'this run':>10s}   this run better / equal / worse")
    for t, v in cmp["budgets"].items():
        print(f"{t:>8d}{v['reference']:>11.3f}{v['current']:>10.3f}   {v['better']} / {v['equal']} / {v['worse']}")


if __name__ == "__main__":
    sys.exit(main())
