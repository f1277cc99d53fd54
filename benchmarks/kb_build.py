"""Knowledge-base build throughput with 1 and 2 Dask workers, and the speed-up.

Usage::

    python benchmarks/kb_build.py [--corpus DIR] [--datasets a,b,...] [--configs 8] [--explore 2]
                                  [--max-rows 1000] [--trial-time-limit 20] [--workers 1,2]

Builds the same small KB (the datasets below, every kind) once per worker count into a fresh temporary
DuckDB file, each time on a Dask ``LocalCluster`` started here and passed to ``build_kb`` as
``scheduler=ADDRESS`` (so both runs take the same path: Dask workers evaluate, this process owns the
KB). Prints, per worker count: wall time, evaluations, evaluations per wall-hour and per core-hour
(wall-hours x workers), and the speed-up of the largest count over one worker. Also checks that every
run produced the same set of (dataset, configuration) runs: parallelism must not change the result.

Numbers are wall-clock: on a machine busy with something else they are lower.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from metalearn.data.loading import default_corpus_dir  # noqa: E402
from metalearn.kb import open_kb  # noqa: E402
from metalearn.offline.build import BuildSettings, build_kb, resolve_sources  # noqa: E402
from metalearn.runtime.executors import configure_dask  # noqa: E402

#: small and medium corpus datasets of every kind (no tuning to them: they only carry the load)
DEFAULT_DATASETS = (
    "analcatdata_creditscore,ionosphere,vote,ecoli,wine_quality_red,529_pollen,uci_concrete,emotions,enb"
)


def run_once(sources, settings: BuildSettings, workers: int) -> tuple[float, int, int, set[tuple[str, str]]]:
    from distributed import LocalCluster

    configure_dask()
    with tempfile.TemporaryDirectory(prefix="metalearn-kbbench-") as tmp:
        kb = open_kb(Path(tmp) / "kb.duckdb")
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, memory_limit=0)
        try:
            run_settings = replace(settings, scheduler=cluster.scheduler_address, workers=workers)
            t0 = time.perf_counter()
            report = build_kb(kb, sources, run_settings)
            wall = time.perf_counter() - t0
        finally:
            cluster.close()
        runs = kb.list_runs()
        keys = {(r.dataset_id, r.config_id) for r in runs}
        kb.close()
    return wall, report.evaluations_new, report.failures, keys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", default=None, help="corpus directory (default: $METALEARN_CORPUS or ../shared/corpus)")
    p.add_argument("--datasets", default=DEFAULT_DATASETS, help="comma-separated corpus dataset names")
    p.add_argument("--configs", type=int, default=8, help="common candidate configurations per kind")
    p.add_argument("--explore", type=int, default=2, help="SMAC exploration trials per dataset")
    p.add_argument("--max-rows", type=int, default=1000)
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--trial-time-limit", type=float, default=20.0)
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    args = p.parse_args(argv)

    corpus = default_corpus_dir(args.corpus)
    if not (corpus / "manifest.csv").is_file():
        print(f"no corpus at {corpus}: pass --corpus DIR or set METALEARN_CORPUS", file=sys.stderr)
        return 2
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    sources, _ = resolve_sources(corpus=str(corpus), names=names)
    settings = BuildSettings(n_configs=args.configs, n_explore=args.explore, max_rows=args.max_rows,
                             n_folds=args.folds, trial_time_limit=args.trial_time_limit)
    counts = [int(w) for w in args.workers.split(",")]
    print(f"{len(sources)} datasets, {args.configs} common configs per kind, {args.explore} exploration trials, "
          f"max {args.max_rows} rows, {args.folds}-fold CV; {os.cpu_count()} cores")
    rows = []
    reference: set[tuple[str, str]] | None = None
    for w in counts:
        wall, n_eval, n_fail, keys = run_once(sources, settings, w)
        same = reference is None or keys == reference
        reference = reference if reference is not None else keys
        per_hour = n_eval / (wall / 3600)
        rows.append((w, wall, n_eval, n_fail, per_hour, per_hour / w, same))
        print(f"workers={w}: {wall:7.1f} s, {n_eval} evaluations ({n_fail} failed), "
              f"{per_hour:7.0f} evaluations/hour, {per_hour / w:7.0f} per core-hour, "
              f"same runs as the first: {same}", flush=True)
    if len(rows) > 1:
        base = rows[0]
        for r in rows[1:]:
            print(f"speed-up {r[0]} vs {base[0]} workers: {base[1] / r[1]:.2f}x wall time "
                  f"(parallel efficiency {base[1] / r[1] / (r[0] / base[0]):.0%})")
    return 0 if all(r[6] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
