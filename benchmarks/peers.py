"""The product against other AutoML systems (FLAML, AutoGluon) at equal wall-clock on held-out corpus datasets.

Usage::

    python benchmarks/peers.py [--kb PATH] [--corpus DIR] [--suites DIR] [--out DIR] [--budgets 30,120]
                               [--peers flaml,autogluon] [--seeds 1] [--workers 2] [--max-rows 20000]
                               [--selection-seed 0] [--split-seed 0] [--datasets a,b,...] [--learned-space]
                               [--list]

The same as ``metalearn benchmark --corpus DIR --datasets <the list> --budgets 30,120 --peers
flaml,autogluon``: every system (the product's ``optimize`` with ``time_limit=budget``, FLAML's
``AutoML.fit(time_budget=budget)``, AutoGluon's ``fit(time_limit=budget, presets='medium_quality')``)
fits the same 75 % training part on one core and is scored on the 25 % test part; multi-target
datasets compare the product with a default random forest. The product's KB excludes each dataset and
its near-duplicates. Also the top-1 recommendation alone vs FLAML's zero-shot LightGBM (one fit each).

Datasets are chosen reproducibly (``--selection-seed``) among the corpus's real (non-synthetic) datasets
of 500-20,000 rows, at most 200 features (multi-target: at most 16 targets) that are **not** in any
suite file of ``--suites`` (OpenML-CC18, AutoML Benchmark: matched by OpenML id and by normalised name,
including the PMLB name): 4 binary, 4 multiclass, 4 regression, 2 multi-target.

Prints per budget the mean test score per kind of every system, the product's win rate against each
peer and the time used / budget; the full report (report.md, summary.json, plots/peers.png, raw
results) goes to ``--out``. Resumable: run the same command again after an interruption.
Missing peers (``pip install metalearn[peers]``) fail their cells with a one-line message.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from metalearn.benchmark.datasets import normalise_name  # noqa: E402
from metalearn.benchmark.runner import run_benchmark  # noqa: E402
from metalearn.benchmark.settings import BenchmarkSettings  # noqa: E402
from metalearn.data.loading import Corpus, default_corpus_dir  # noqa: E402
from metalearn.data.suites import default_suites_dir  # noqa: E402
from metalearn.offline.build import DatasetSource  # noqa: E402
from metalearn.runtime.progress import RichProgress  # noqa: E402

QUOTAS = {"binary": 4, "multiclass": 4, "regression": 4, "multitarget": 2}
ROWS = (500, 20_000)
MAX_FEATURES = 200
MAX_TARGETS = 16


def suite_holdout(suites_dir: Path) -> tuple[set[int], set[str]]:
    """OpenML ids and normalised names of every dataset in the suite files (never benchmarked here)."""
    dids: set[int] = set()
    names: set[str] = set()
    files = sorted(suites_dir.glob("*.csv"))
    if not files:
        raise SystemExit(f"no suite files in {suites_dir}; give --suites DIR (the suites must be held out)")
    for path in files:
        frame = pd.read_csv(path)
        if "did" in frame.columns:
            dids |= {int(d) for d in pd.to_numeric(frame["did"], errors="coerce").dropna()}
        for col in ("name", "pmlb"):
            if col in frame.columns:
                names |= {normalise_name(n) for n in frame[col].dropna().astype(str)}
    names.discard("")
    return dids, names


def choose_datasets(corpus: Corpus, suites_dir: Path, seed: int = 0, per_kind: int | None = None) -> list[str]:
    """A reproducible, kind-stratified sample of real corpus datasets outside every suite: ``QUOTAS`` per
    kind, or ``per_kind`` of each kind (0: every eligible one)."""
    dids, names = suite_holdout(suites_dir)
    rng = np.random.default_rng(seed)
    chosen: list[str] = []
    for kind, quota in QUOTAS.items():
        pool = sorted(
            e.name
            for e in corpus.entries()
            if str(e.kind) == kind
            and not e.synthetic
            and ROWS[0] <= e.n_rows <= ROWS[1]
            and e.n_features <= MAX_FEATURES
            and len(e.targets) <= MAX_TARGETS
            and (e.openml_did is None or int(e.openml_did) not in dids)
            and normalise_name(e.name) not in names
        )
        want = quota if per_kind is None else (per_kind or len(pool))
        k = min(len(pool), want)
        chosen += [pool[i] for i in sorted(rng.choice(len(pool), size=k, replace=False))]
    return chosen


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--kb", default=None, help="KB file (default: $METALEARN_KB or the product default KB)")
    p.add_argument("--corpus", default=None, help="corpus directory")
    p.add_argument(
        "--suites",
        default=None,
        help="suite files directory (default: $METALEARN_SUITES or ../shared/suites)",
    )
    p.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "peers"), help="output directory")
    p.add_argument("--budgets", default="30,120", help="wall-clock seconds per run, comma-separated")
    p.add_argument("--peers", default="flaml,autogluon")
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--workers", type=int, default=2, help="cells in parallel (one core each)")
    p.add_argument("--max-rows", type=int, default=20_000)
    p.add_argument("--selection-seed", type=int, default=0, help="seed of the dataset selection")
    p.add_argument("--split-seed", type=int, default=0, help="seed of every dataset's 75/25 train/test split")
    p.add_argument("--per-kind", type=int, default=None,
                   help="datasets of each kind instead of the default quotas (0: every eligible one)")
    p.add_argument("--datasets", default=None, help="comma-separated corpus names instead of the selection")
    p.add_argument("--no-zero-shot", action="store_true", help="skip top-1 alone vs FLAML zero-shot")
    p.add_argument("--learned-space", action="store_true",
                   help="the product's SMAC searches only the recommendations' region (SearchSettings.learned_space)")
    p.add_argument("--list", action="store_true", help="print the chosen datasets and exit")
    args = p.parse_args(argv)

    from metalearn.kb.shipped import open_default_kb

    corpus_dir = default_corpus_dir(args.corpus)
    corpus = Corpus(corpus_dir)
    suites_dir = default_suites_dir(args.suites)
    names = (
        [n.strip() for n in args.datasets.split(",") if n.strip()]
        if args.datasets
        else choose_datasets(corpus, suites_dir, args.selection_seed, args.per_kind)
    )
    dids, suite_names = suite_holdout(suites_dir)
    for n in names:  # never a suite dataset, also when named by hand
        e = corpus.entry(n)
        if (e.openml_did is not None and int(e.openml_did) in dids) or normalise_name(n) in suite_names:
            raise SystemExit(f"{n} is in a suite of {suites_dir}: suite datasets are held out")
    if args.list:
        for n in names:
            e = corpus.entry(n)
            print(f"{n:40s} {e.kind!s:12s} {e.n_rows:6d} x {e.n_features}")
        return 0
    kb = open_default_kb(args.kb, read_only=True, current=True)
    stats = kb.stats()
    print(f"KB: {stats.get('datasets')} datasets {stats.get('datasets_by_kind')}, {stats.get('runs')} runs")
    settings = BenchmarkSettings(
        budgets=tuple(float(b) for b in args.budgets.split(",") if b.strip()),
        peers=tuple(s for s in args.peers.split(",") if s.strip()),
        seeds=tuple(range(args.seeds)),
        max_rows=args.max_rows,
        split_seed=args.split_seed,
        workers=args.workers,
        zero_shot=not args.no_zero_shot,
        learned_space=args.learned_space,
    )
    sources = [DatasetSource(f"corpus:{n}", str(corpus_dir)) for n in names]
    t0 = time.monotonic()
    with RichProgress() as progress:
        outcome = run_benchmark(sources, kb, args.out, settings, progress=progress)
    seconds = time.monotonic() - t0
    print_summary(outcome.summary)
    print(
        f"{outcome.n_run} cells run now, {outcome.n_cells - outcome.n_run} finished earlier, "
        f"{outcome.n_failed} failed; {seconds:.0f} s; report: {outcome.report_path}"
    )
    return 0


def _f(x: object, digits: int = 4) -> str:
    return f"{x:.{digits}f}" if isinstance(x, float) else "-"


def print_summary(s: dict) -> None:
    """The numbers of a wall-clock summary, as plain text."""
    for key, block in s["per_budget"].items():
        print(f"\n== budget {key} s ==")
        names = block["systems"]
        print(f"{'kind':12s} {'metric':10s} " + " ".join(f"{n:>14s}" for n in names))
        for kind, k in block["per_kind"].items():
            metric = ",".join(k.get("metrics", []))
            print(f"{kind:12s} {metric:10s} " + " ".join(f"{_f(k['mean'].get(n)):>14s}" for n in names))
            if k.get("extra_metric"):
                row = " ".join(f"{_f(k['extra_mean'].get(n)):>14s}" for n in names)
                print(f"{kind:12s} {k['extra_metric']:10s} " + row)
        for kind, k in [*block["per_kind"].items(), ("all", {"win_rate": block["overall_win_rate"]})]:
            wins = ", ".join(
                f"vs {o}: {w['rate'] * 100:.0f} % ({w['wins']:g}/{w['n']})"
                for o, w in k.get("win_rate", {}).items()
            )
            if wins:
                print(f"product win rate, {kind}: {wins}")
        cal = block.get("calibration") or {}
        if cal.get("n"):
            print(f"calibration: {cal['n']} product models temperature-scaled: better on {cal['better']}, equal on "
                  f"{cal['equal']}, worse on {cal['worse']}; mean test score {_f(cal['mean_unscaled'])} unscaled -> "
                  f"{_f(cal['mean_scaled'])} scaled")
        for n, t in block["time"].items():
            ratio = (
                f"used/budget mean {t['mean_ratio']:.2f} max {t['max_ratio']:.2f}"
                if "mean_ratio" in t
                else "one fit"
            )
            print(f"time {n:16s} {ratio}; mean {t['mean_seconds']:.1f} s, max {t['max_seconds']:.1f} s")
    z = s.get("zero_shot") or {}
    if z:
        print("\n== zero-shot: top-1 recommendation alone vs FLAML zero-shot ==")
        for kind, k in z["per_kind"].items():
            means = ", ".join(f"{n} {_f(v)}" for n, v in k["mean"].items())
            wins = ", ".join(
                f"top1 vs {o}: {w['rate'] * 100:.0f} %" for o, w in k.get("win_rate", {}).items()
            )
            print(f"{kind:12s} {means}" + (f"; {wins}" if wins else ""))
    for f in s.get("failures", [])[:20]:
        print(f"failed: {f['dataset']} / {f['strategy']} / seed {f['seed']}: {f['error'][:160]}")


if __name__ == "__main__":
    raise SystemExit(main())
