"""What does a distilled variant cost and gain? Size, latency and test score of the student against the model.

For each of ``time_budget.py``'s six corpus datasets (155-40,000 rows, one per size band, in no OpenML
suite) — and any ``--datasets`` added — a search with a time limit runs on the 75 % training part (a KB
without the dataset: its fingerprint and name), its final model is registered, and ``metalearn models
compress`` makes the ``distill`` variant (one LightGBM pipeline fit on the training sample kept with the
version and rows augmented from it, labelled by the model: :mod:`metalearn.registry.distill`) and the
``prune`` variant beside it, each measured on the 25 % test part as the compression report measures: artifact
size, single-row p50 latency, rows/s on a batch, test score (the distilled variant whatever it loses; the
command registers it only within ``DISTILL_TOLERANCE`` of the original's score and ``DISTILL_MIN_GAIN`` times
smaller or faster, which the summary counts)::

    python benchmarks/distillation.py                        # 30 s searches on the six datasets
    python benchmarks/distillation.py --datasets coil2000    # ... and coil2000 (CatBoost, categorical)

Each finished dataset is appended to ``--out`` (JSON lines) and skipped when the script runs again: it
resumes after a crash.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from time_budget import choose

#: the report fields kept per variant
FIELDS = ("version", "error", "size_bytes", "p50_ms", "rows_per_s", "score")


def run_one(name: str, budget: float, workers: int, tables: dict[str, Any]) -> dict[str, Any]:
    from metalearn.benchmark.datasets import ids_named, prepare_split
    from metalearn.benchmark.peers import load_kb_without
    from metalearn.data.dataset import Dataset
    from metalearn.data.loading import load_dataset
    from metalearn.kb import open_kb
    from metalearn.registry.registry import ModelRegistry
    from metalearn.registry.variants import compress
    from metalearn.search.automl import optimize
    from metalearn.search.settings import SearchSettings

    dataset = load_dataset(f"corpus:{name}")
    prep = prepare_split(dataset, None, 0.25, 0)
    hidden = {dataset.fingerprint, prep.train.fingerprint} | ids_named(tables.get("datasets"), name)
    with tempfile.TemporaryDirectory(prefix="metalearn-distill-") as tmp:
        kb = open_kb(Path(tmp) / "kb.duckdb")
        try:
            load_kb_without(kb, tables, hidden)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                outcome = optimize(prep.train, kb, SearchSettings(time_limit=budget, workers=workers))
            registry = ModelRegistry(kb)
            registry.register_outcome("bench", outcome, prep.train)
            test = Dataset(f"{name} test", prep.X_test, prep.y_test, prep.train.task, prep.train.categorical, "test")
            t0 = time.monotonic()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                report = compress(registry, "bench", methods=("distill", "prune"), validation=test,
                                  distill_tolerance=math.inf, distill_min_gain=0.0)  # measured whatever it is
            seconds = time.monotonic() - t0
        finally:
            kb.close()
    model = outcome.model
    variants = {r["method"]: {k: r.get(k) for k in FIELDS} for r in report["variants"]}
    return {"dataset": name, "kind": str(prep.train.task.kind), "metric": prep.train.task.metric,
            "rows": dataset.n_rows, "model": type(model).__name__, "members": len(getattr(model, "members", [model])),
            "compress_seconds": round(seconds, 1), **variants}


def main(argv: list[str] | None = None) -> int:
    from metalearn.data.metrics import get_metric
    from metalearn.kb.base import TABLES
    from metalearn.kb.shipped import open_default_kb
    from metalearn.registry.variants import DISTILL_MIN_GAIN, DISTILL_TOLERANCE
    from metalearn.search.settings import machine_cores

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=30.0, help="seconds per search")
    parser.add_argument("--datasets", default="", help="corpus datasets to add, comma-separated")
    parser.add_argument("--workers", type=int, default=machine_cores(), help="trials at once")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/distillation.jsonl"),
                        help="finished datasets (JSON lines; the script resumes from it)")
    args = parser.parse_args(argv)
    names = [e["name"] for e in choose()] + [n.strip() for n in args.datasets.split(",") if n.strip()]
    print("datasets:", ", ".join(names), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = [json.loads(line) for line in args.out.read_text().splitlines()] if args.out.exists() else []
    seen = {(d["dataset"], d.get("budget")) for d in done}
    shipped = open_default_kb(":memory:")
    try:
        tables = {t: shipped.dump_table(t) for t in TABLES}
    finally:
        shipped.close()
    for name in names:
        if (name, args.budget) in seen:
            continue
        row = {**run_one(name, args.budget, args.workers, tables), "budget": args.budget}
        done.append(row)
        with args.out.open("a") as f:
            f.write(json.dumps(row) + "\n")
    rows = [d for d in done if d["dataset"] in names and d.get("budget") == args.budget]
    size, speed, loss, registered = [], [], [], 0
    for d in rows:
        o = d["original"]
        sign = 1.0 if get_metric(d["metric"]).greater_is_better else -1.0
        parts = [f"{d['dataset']:<22} {d['kind']:<10} {d['members']:>2} member(s)  original {o['size_bytes'] / 1e6:8.2f} MB "
                 f"p50 {o['p50_ms']:6.2f} ms  {d['metric']} {o['score']:.4f}"]
        for method in ("distill", "prune"):
            v = d.get(method) or {}
            if v.get("error") or v.get("score") is None:
                parts.append(f"{method}: {(v.get('error') or 'none')[:60]}")
                continue
            ratio, faster = o["size_bytes"] / v["size_bytes"], o["p50_ms"] / v["p50_ms"]
            change = sign * (v["score"] - o["score"]) / max(abs(o["score"]), 1e-12)
            parts.append(f"{method}: {v['size_bytes'] / 1e6:.2f} MB ({ratio:.1f}x smaller), p50 {v['p50_ms']:.2f} ms "
                         f"({faster:.1f}x faster), {v['score']:.4f} ({100 * change:+.2f} %)")
            if method == "distill":
                size.append(ratio)
                speed.append(faster)
                loss.append(change)
                registered += change >= -DISTILL_TOLERANCE and max(ratio, faster) >= DISTILL_MIN_GAIN
        print("  |  ".join(parts), flush=True)
    if size:
        print(f"distilled on {len(size)} of {len(rows)} datasets: size {min(size):.1f}-{max(size):.1f}x smaller, "
              f"single row {min(speed):.1f}-{max(speed):.1f}x faster, test score change "
              f"{100 * min(loss):+.2f} % to {100 * max(loss):+.2f} % (mean {100 * sum(loss) / len(loss):+.2f} %; "
              f"+ is better); within the {100 * DISTILL_TOLERANCE:g} % `models compress` allows: "
              f"{sum(c >= -DISTILL_TOLERANCE for c in loss)}, and {DISTILL_MIN_GAIN:g}x smaller or faster too (registered): "
              f"{registered}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
