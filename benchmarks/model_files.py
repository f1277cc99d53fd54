"""Model files: size, write and load time of search models, as skops writes them as they come and as the
product writes them (forests packed, entries deflated: ``metalearn.pipelines.artifacts``).

For each dataset of ``benchmarks/time_budget.py``'s reproducible choice (one per size band, no OpenML suite
dataset) it runs a search as the benchmark runs the product (``optimize(time_limit=B)``, trials on every core,
no file written during the search, so the ensemble is not shrunk to fit a write), then writes and loads its
final model both ways and prints members, forest trees, bytes and seconds; last, the write time per member,
forest tree and tree node fit by least squares (the constants of ``metalearn.search.ensemble.write_estimate``)::

    python benchmarks/model_files.py                 # 30 s searches on 6 datasets
    python benchmarks/model_files.py --budget 120 --json out.json

Needs the corpus (``/work/shared/corpus``); each search runs in a fresh in-memory KB seeded from the
shipped snapshot.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def measure(model: Any) -> dict[str, Any]:
    """Bytes, write and load seconds of ``model``: skops as it comes (``plain``) and the product's writer."""
    import skops.io as sio

    from metalearn.pipelines.artifacts import load_model_file, trusted_types, write_artifact

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="model-files-") as tmp:
        t = time.perf_counter()  # stop 47's write_artifact: dumps, the type check, the file
        data = sio.dumps(model)
        trusted_types(data)
        hashlib.sha256(data).hexdigest()
        (Path(tmp) / "plain.skops").write_bytes(data)
        out["plain_write"] = time.perf_counter() - t
        out["plain_bytes"] = len(data)
        t = time.perf_counter()  # as load_model_file: read, hash, check the types, load
        data = (Path(tmp) / "plain.skops").read_bytes()
        hashlib.sha256(data).hexdigest()
        sio.loads(data, trusted=sorted(sio.get_untrusted_types(data=data)))
        out["plain_load"] = time.perf_counter() - t
        t = time.perf_counter()
        written = write_artifact(model, Path(tmp))
        out["write"] = time.perf_counter() - t
        out["bytes"] = written["bytes"]
        t = time.perf_counter()
        load_model_file(Path(tmp) / written["file"], written["sha256"])
        out["load"] = time.perf_counter() - t
    return out


def run_one(name: str, budget: float, workers: int) -> dict[str, Any]:
    from metalearn.data.loading import load_dataset
    from metalearn.kb.shipped import open_default_kb
    from metalearn.pipelines.artifacts import forest_size
    from metalearn.search.automl import optimize
    from metalearn.search.settings import SearchSettings

    dataset = load_dataset(f"corpus:{name}")
    outcome = optimize(dataset, kb=open_default_kb(":memory:"), settings=SearchSettings(time_limit=budget, workers=workers))
    model = outcome.model
    return {
        "dataset": name,
        "rows": dataset.n_rows,
        "members": len(getattr(model, "members", [model])),
        **dict(zip(("forest_trees", "forest_nodes"), forest_size(model), strict=True)),
        **measure(model),
    }


def main(argv: list[str] | None = None) -> int:
    from time_budget import choose  # the same datasets (the script's folder is on the path)

    from metalearn.search.settings import machine_cores

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=30.0, help="seconds of each search")
    parser.add_argument("--workers", type=int, default=machine_cores(), help="trials at once (default: the cores)")
    parser.add_argument("--seed", type=int, default=0, help="which datasets (time_budget.py's choice)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    chosen = choose(seed=args.seed)
    print("datasets:", ", ".join(f"{r['name']} ({r['n_rows']} rows)" for r in chosen), flush=True)
    rows = []
    for r in chosen:
        row = run_one(r["name"], args.budget, args.workers)
        rows.append(row)
        print(
            f"{row['dataset']:<28} {row['rows']:>6} rows  {row['members']:>2} members {row['forest_trees']:>5} forest trees ({row['forest_nodes'] / 1e6:.2f} M nodes)"
            f"  skops as is: {row['plain_bytes'] / 1e6:7.1f} MB write {row['plain_write']:5.2f} s load {row['plain_load']:5.2f} s"
            f"  product: {row['bytes'] / 1e6:6.2f} MB write {row['write']:5.2f} s load {row['load']:5.2f} s",
            flush=True,
        )
    tot = {k: sum(x[k] for x in rows) for k in ("plain_bytes", "bytes", "plain_write", "write", "plain_load", "load")}
    print(
        f"all {len(rows)} models: {tot['plain_bytes'] / 1e6:.1f} -> {tot['bytes'] / 1e6:.1f} MB "
        f"({tot['plain_bytes'] / tot['bytes']:.1f}x smaller), write {tot['plain_write']:.1f} -> {tot['write']:.1f} s "
        f"({tot['plain_write'] / tot['write']:.1f}x), load {tot['plain_load']:.1f} -> {tot['load']:.1f} s "
        f"({tot['plain_load'] / tot['load']:.1f}x)"
    )
    A = np.array([[x["members"], x["forest_trees"], x["forest_nodes"]] for x in rows], dtype=float)
    for key, label in (("plain_write", "skops as is"), ("write", "product")):
        coef, *_ = np.linalg.lstsq(A, np.array([x[key] for x in rows]), rcond=None)
        worst = max(x[key] / max(1e-9, A[i] @ coef) for i, x in enumerate(rows))
        print(f"write seconds ~ {coef[0]:.4f} per member + {coef[1] * 1e3:.4f} ms per forest tree + "
              f"{coef[2] * 1e6:.3f} s per million tree nodes ({label}; largest measured / fitted {worst:.2f})")
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
