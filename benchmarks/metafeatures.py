"""Benchmark meta-feature extraction on the corpus and on a synthetic 100,000 x 100 dataset.

Usage::

    python benchmarks/metafeatures.py [CORPUS_DIR] [--limit N] [--kind KIND] [--csv OUT.csv]
                                      [--max-rows R] [--max-cols C] [--skip-synthetic] [--check]

The corpus directory is the argument, else ``$METALEARN_CORPUS``, else ``<repo>/../shared/corpus``.
BLAS/OpenMP run on one thread (set below, before numpy is imported) and extraction runs in this one
process, so the times are single-core times. Targets: p95 over the corpus <= 5 s and the
100,000 x 100 synthetic dataset <= 5 s. Wall time is the target; CPU time is printed too because
on a shared machine wall time also counts the time other processes hold the cores.
``--check`` exits with status 1 when a target is missed. Loading a dataset is not timed.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from metalearn.data.dataset import Dataset  # noqa: E402
from metalearn.data.loading import Corpus  # noqa: E402
from metalearn.data.task import Task, TaskKind  # noqa: E402
from metalearn.metalearning.metafeatures import (  # noqa: E402
    DEFAULT_MAX_COLS,
    DEFAULT_MAX_ROWS,
    EXTRACTOR_VERSION,
    extract_metafeatures,
    metafeature_names,
)

TARGET_SECONDS = 5.0


def corpus_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    env = os.environ.get("METALEARN_CORPUS")
    return Path(env) if env else REPO.parent / "shared" / "corpus"


def synthetic_dataset(n_rows: int = 100_000, n_features: int = 100, n_categorical: int = 10) -> Dataset:
    """make_classification with ``n_categorical`` of the columns binned into string categories."""
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=n_rows,
        n_features=n_features,
        n_informative=max(3, n_features // 5),
        n_redundant=n_features // 10,
        n_classes=3,
        random_state=0,
    )
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(n_features)])
    for i in range(n_categorical):
        col = f"x{i}"
        bins = np.quantile(frame[col], np.linspace(0, 1, 3 + i % 6)[1:-1])
        frame[col] = pd.Categorical(np.char.add("level", np.digitize(frame[col], bins).astype(str)))
    rng = np.random.default_rng(0)
    frame = frame.mask(rng.random(frame.shape) < 0.01)  # 1% missing cells
    cat = tuple(isinstance(frame[c].dtype, pd.CategoricalDtype) for c in frame.columns)
    yf = pd.DataFrame({"target": pd.Categorical(y)})
    return Dataset(
        "synthetic_100k_x_100", frame, yf, Task(TaskKind.MULTICLASS, ("target",)), cat, "synthetic"
    )


def timed(ds: Dataset, max_rows: int, max_cols: int) -> tuple[float, float, float]:
    """(wall seconds, cpu seconds, NaN fraction) of one extraction."""
    w0, c0 = time.perf_counter(), time.process_time()
    values = extract_metafeatures(ds, max_rows=max_rows, max_cols=max_cols, timeout=None)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    nan = sum(math.isnan(v) for v in values.values()) / len(values)
    return wall, cpu, nan


def summary(label: str, wall: np.ndarray, cpu: np.ndarray) -> str:
    return (
        f"{label:<12} n={len(wall):>3}  wall median {np.median(wall):5.2f}s  p95 {np.percentile(wall, 95):5.2f}s"
        f"  max {wall.max():5.2f}s | cpu median {np.median(cpu):5.2f}s  p95 {np.percentile(cpu, 95):5.2f}s"
        f"  max {cpu.max():5.2f}s"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "corpus", nargs="?", help="corpus directory (default $METALEARN_CORPUS or ../shared/corpus)"
    )
    ap.add_argument("--limit", type=int, default=0, help="only the first N datasets (spread over kinds)")
    ap.add_argument("--kind", help="only datasets of this task kind")
    ap.add_argument("--max-rows", type=int, default=DEFAULT_MAX_ROWS)
    ap.add_argument("--max-cols", type=int, default=DEFAULT_MAX_COLS)
    ap.add_argument("--csv", help="write per-dataset times to this CSV file")
    ap.add_argument("--skip-synthetic", action="store_true", help="do not time the 100k x 100 dataset")
    ap.add_argument("--skip-corpus", action="store_true", help="only time the 100k x 100 dataset")
    ap.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = ap.parse_args(argv)

    print(
        f"extractor {EXTRACTOR_VERSION}: {len(metafeature_names())} meta-features, "
        f"max_rows={args.max_rows}, max_cols={args.max_cols}, 1 thread"
    )
    extract_metafeatures(synthetic_dataset(300, 8, 2))  # warm-up: lazy imports are not extraction time
    ok = True
    if not args.skip_corpus:
        path = corpus_dir(args.corpus)
        if not (path / "manifest.csv").is_file():
            print(f"no corpus at {path}: set METALEARN_CORPUS or pass the directory", file=sys.stderr)
            return 2
        corpus = Corpus(path)
        names = corpus.names(args.kind)
        if args.limit:
            # round-robin over kinds so a small limit still covers every kind
            by_kind: dict[str, list[str]] = {}
            for n in names:
                by_kind.setdefault(str(corpus.entry(n).kind), []).append(n)
            mixed = [n for group in zip(*(iter(v) for v in by_kind.values()), strict=False) for n in group]
            rest = [n for n in names if n not in set(mixed)]
            names = (mixed + rest)[: args.limit]
        rows = []
        for i, name in enumerate(names, 1):
            ds = corpus.load(name)
            wall, cpu, nan = timed(ds, args.max_rows, args.max_cols)
            rows.append(
                {
                    "name": name,
                    "kind": str(ds.task.kind),
                    "n_rows": ds.n_rows,
                    "n_features": ds.n_features,
                    "wall": wall,
                    "cpu": cpu,
                    "nan_fraction": nan,
                }
            )
            print(
                f"[{i:>3}/{len(names)}] {name[:45]:<45} {ds.task.kind!s:<11} {ds.n_rows:>7} x {ds.n_features:<5}"
                f" {wall:6.2f}s wall {cpu:6.2f}s cpu  NaN {nan:4.0%}",
                flush=True,
            )
        df = pd.DataFrame(rows)
        if args.csv:
            df.to_csv(args.csv, index=False)
        print()
        for kind, g in df.groupby("kind"):
            print(summary(str(kind), g["wall"].to_numpy(), g["cpu"].to_numpy()))
        print(summary("overall", df["wall"].to_numpy(), df["cpu"].to_numpy()))
        print("slowest 5 (wall):")
        for r in df.sort_values("wall", ascending=False).head(5).itertuples():
            print(
                f"  {r.name:<50} {r.kind:<11} {r.n_rows:>7} x {r.n_features:<5} {r.wall:6.2f}s wall {r.cpu:6.2f}s cpu"
            )
        p95 = float(np.percentile(df["wall"], 95))
        ok &= p95 <= TARGET_SECONDS
        print(
            f"corpus p95 {p95:.2f}s (target <= {TARGET_SECONDS:.0f}s): {'OK' if p95 <= TARGET_SECONDS else 'MISSED'}"
        )
    if not args.skip_synthetic:
        ds = synthetic_dataset()
        runs = [timed(ds, args.max_rows, args.max_cols) for _ in range(3)]
        walls = [r[0] for r in runs]
        print(
            f"synthetic 100,000 x 100 (10 categorical, 1% missing): wall {', '.join(f'{w:.2f}' for w in walls)}s"
            f" (median {np.median(walls):.2f}s), cpu median {np.median([r[1] for r in runs]):.2f}s,"
            f" NaN {runs[0][2]:.0%}"
        )
        ok &= float(np.median(walls)) <= TARGET_SECONDS
        print(
            f"synthetic median {np.median(walls):.2f}s (target <= {TARGET_SECONDS:.0f}s): "
            f"{'OK' if np.median(walls) <= TARGET_SECONDS else 'MISSED'}"
        )
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
