"""Does ``optimize(time_limit=...)`` keep its budget? Time used / budget of whole jobs, per dataset.

Runs the whole job as the CLI does (the clock starts before the data is loaded and the KB opened, trials
run on every core, the model is written to a temporary directory as ``--out`` writes it) with
time limits of 30 and 120 s on corpus datasets of different sizes, each in a fresh in-memory KB seeded
from the shipped snapshot (no resume from an earlier run) and under a new fingerprint (so that the
meta-features are extracted, as for data the KB has never seen), and prints the time used against the budget,
what stopped the search and what the budget made it do (holdout, subset)::

    python benchmarks/time_budget.py                       # 30 and 120 s on 6 datasets
    python benchmarks/time_budget.py --budgets 30 --json out.json

The datasets are chosen reproducibly from ``/work/shared/corpus/manifest.csv``: one per size band
(:data:`BANDS`, the last 20,000-50,000 rows), the first by a seeded hash of the name, never a dataset
of an OpenML benchmark suite (OpenML-CC18, AMLB; matched by OpenML id and name).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

MANIFEST = Path("/work/shared/corpus/manifest.csv")
#: rows of the chosen datasets: one dataset per band
BANDS = ((100, 1_000), (1_000, 3_000), (3_000, 8_000), (8_000, 15_000), (15_000, 20_000), (20_000, 50_000))


def suite_members() -> tuple[set[int], set[str]]:
    """OpenML ids and names of the datasets of the OpenML suites (left out)."""
    from metalearn.data.suites import KNOWN_SUITES, load_suite

    dids: set[int] = set()
    names: set[str] = set()
    for suite in KNOWN_SUITES:
        try:
            entries = list(load_suite(suite))
        except Exception as exc:  # no suite file here: say so, match nothing
            print(f"warning: suite {suite} not loaded ({exc})", file=sys.stderr)
            continue
        for e in entries:
            if getattr(e, "did", None) is not None:
                dids.add(int(e.did))
            if getattr(e, "name", None):
                names.add(str(e.name).lower())
    return dids, names


def choose(manifest: Path = MANIFEST, seed: int = 0) -> list[dict[str, str]]:
    """One dataset per size band (single-target, not in a suite), reproducibly."""
    dids, names = suite_members()
    rows = list(csv.DictReader(manifest.open()))

    def allowed(r: dict[str, str]) -> bool:
        did = r.get("openml_did") or ""
        in_suite = (did and int(float(did)) in dids) or r["name"].lower() in names
        return not in_suite and r["targets"].count(",") == 0

    def rank(r: dict[str, str]) -> str:
        return hashlib.sha1(f"{seed}:{r['name']}".encode()).hexdigest()

    chosen = []
    for low, high in BANDS:
        band = sorted((r for r in rows if low <= int(r["n_rows"]) < high and allowed(r)), key=rank)
        if band:
            chosen.append(band[0])
    return chosen


def run_one(name: str, budget: float, workers: int, fresh: bool = True, write: bool = True) -> dict[str, Any]:
    from metalearn.data.loading import load_dataset
    from metalearn.kb.shipped import open_default_kb
    from metalearn.search.automl import optimize
    from metalearn.search.settings import SearchSettings

    started = time.monotonic()  # as the CLI: loading and opening the KB count
    dataset = load_dataset(f"corpus:{name}")
    if fresh:  # a new fingerprint: no meta-features in the shipped KB, they are extracted as for new data
        fingerprint = hashlib.sha1(f"time-budget:{dataset.fingerprint}".encode()).hexdigest()[:20]
        dataset = replace(dataset, fingerprint=fingerprint)
    kb = open_default_kb(":memory:")
    settings = SearchSettings(time_limit=budget, workers=workers)  # as the CLI: only the clock stops it
    with tempfile.TemporaryDirectory(prefix="time-budget-") as out:  # the model written, as `optimize --out`
        outcome = optimize(dataset, kb=kb, settings=settings, started=started, out_dir=out if write else None)
        used = time.monotonic() - started
    s = outcome.summary
    return {
        "dataset": name,
        "rows": dataset.n_rows,
        "budget": budget,
        "used": round(used, 1),
        "ratio": round(used / budget, 3),
        "stopped_by": s.get("stopped_by"),
        "trials": s["n_trials"],
        "failed": s["n_failed"],
        "model": s["model"]["refit"],
        "timings": s["timings"],
        "notes": s.get("time_budget", {}).get("notes", []),
        "protocol": s["settings"]["protocol"],
        "refit_reserve": s.get("time_budget", {}).get("reserve"),
    }


def main(argv: list[str] | None = None) -> int:
    from metalearn.search.settings import machine_cores

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--budgets", default="30,120", help="seconds, comma-separated")
    parser.add_argument("--workers", type=int, default=machine_cores(),
                        help="trials at once (default: the machine's cores, as `metalearn optimize`)")
    parser.add_argument("--no-write", dest="write", action="store_false",
                        help="do not write the model (default: written to a temporary directory, as `optimize --out`)")
    parser.add_argument("--seed", type=int, default=0, help="which datasets (the seed of the choice)")
    parser.add_argument(
        "--cached",
        action="store_true",
        help="use the shipped KB's meta-features of the datasets (default: extract them, as for new data)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    budgets = [float(b) for b in args.budgets.split(",") if b.strip()]
    chosen = choose(seed=args.seed)
    print("datasets:", ", ".join(f"{r['name']} ({r['n_rows']} rows)" for r in chosen), flush=True)
    results = []
    for budget in budgets:
        for r in chosen:
            row = run_one(r["name"], budget, args.workers, fresh=not args.cached, write=args.write)
            results.append(row)
            t = row["timings"]
            print(
                f"{row['dataset']:<32} {row['rows']:>6} rows  budget {budget:>5g} s  used {row['used']:>6.1f} s"
                f"  ratio {row['ratio']:.2f}  stopped by {row['stopped_by']:<10} {row['trials']:>3} trials"
                f" ({row['failed']} failed)  mf {t.get('metafeatures', 0):.1f} s search {t.get('search', 0):.1f} s"
                f" refit {t.get('refit', 0):.1f} s (reserved {row['refit_reserve'] or 0:.1f} s) write {t.get('write', 0):.1f} s"
                f"  {'; '.join(row['notes'])}",
                flush=True,
            )
        ratios = [x["ratio"] for x in results if x["budget"] == budget]
        print(
            f"budget {budget:g} s: mean ratio {sum(ratios) / len(ratios):.2f}, max {max(ratios):.2f}",
            flush=True,
        )
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
