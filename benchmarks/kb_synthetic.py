"""Synthetic knowledge-base benchmark: insert N runs into a DuckDB KB, then time the frames recommenders read.

    python benchmarks/kb_synthetic.py /tmp/kb-bench.duckdb --runs 1000000

``build_synthetic_kb(path, n_runs, seed)`` is reused by the API load benchmark. It is deterministic and
idempotent: the same seed gives the same datasets, configurations and runs (content ids), so building
twice into the same file adds nothing the second time.
"""

from __future__ import annotations

import argparse
import copy
import math
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from metalearn.kb import (
    ConfigurationRecord,
    DatasetRecord,
    DuckDBKnowledgeBase,
    MetaFeatureRecord,
    RunRecord,
    run_id_for,
    schema,
)

KINDS = ("binary", "multiclass", "regression", "multilabel", "multitarget", "multitask")
SPACES = ("sklearn-classifier", "sklearn-regressor", "sklearn-multioutput")
METAFEATURE_VERSION = "synthetic-1"
PROTOCOL = "cv5-s0"
_T0 = datetime(2024, 1, 1)


def _datasets(n: int, rng: np.random.Generator) -> list[DatasetRecord]:
    out = []
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        n_targets = 1 if kind in ("binary", "multiclass", "regression") else int(rng.integers(2, 6))
        if kind == "multilabel":
            target_kinds = ("binary",) * n_targets
        elif kind == "multitarget":
            target_kinds = ("regression",) * n_targets
        elif kind == "multitask":
            target_kinds = tuple(("binary", "regression", "multiclass")[j % 3] for j in range(n_targets))
        else:
            target_kinds = (kind,)
        n_features = int(rng.integers(2, 500))
        out.append(
            DatasetRecord(
                dataset_id=f"syn{i:05d}" + "0" * 12,
                name=f"synthetic-{i}",
                kind=kind,
                n_rows=int(rng.integers(100, 200_000)),
                n_features=n_features,
                n_categorical=int(rng.integers(0, n_features + 1)),
                n_targets=n_targets,
                targets=tuple(f"y{j}" for j in range(n_targets)),
                target_kinds=target_kinds,
                origin="synthetic",
                openml_id=None,
                created_at=_T0 + timedelta(seconds=i),
            )
        )
    return out


def _metafeatures(
    datasets: list[DatasetRecord], rng: np.random.Generator, n_features: int = 60
) -> list[MetaFeatureRecord]:
    names = [f"mf_{j:03d}" for j in range(n_features)]
    out = []
    for d in datasets:
        values = rng.normal(size=n_features)
        values[rng.random(n_features) < 0.03] = np.nan  # a few features the extractor could not compute
        out.append(
            MetaFeatureRecord(
                dataset_id=d.dataset_id,
                version=METAFEATURE_VERSION,
                values={k: float(v) for k, v in zip(names, values, strict=True)},
                extraction_seconds=float(rng.exponential(2.0)),
                created_at=d.created_at,
            )
        )
    return out


def _real_spaces() -> dict[str, Any] | None:
    """kind -> the product's SearchSpace (``metalearn.pipelines.spaces.get_space``), or None when unavailable."""
    try:
        from metalearn.pipelines.spaces import get_space  # type: ignore[attr-defined]

        return {kind: get_space(kind) for kind in KINDS}
    except Exception:  # the spaces are optional here: fall back to synthetic ones
        return None


def _configurations(
    n: int, rng: np.random.Generator, spaces: dict[str, Any] | None
) -> tuple[list[ConfigurationRecord], dict[str, str]]:
    """``n`` configurations spread over the search spaces, and kind -> space name.

    With the product's spaces, configurations are sampled from their ConfigSpaces (so they are valid and
    a recommender serving this KB can use them); otherwise they are synthetic dicts in made-up spaces.
    """
    out: list[ConfigurationRecord] = []
    if spaces is not None:
        distinct = {(sp.name, sp.version): sp for sp in spaces.values()}
        per_space = -(-n // len(distinct))
        for (name, version), sp in distinct.items():
            cs = copy.deepcopy(sp.configspace)
            cs.seed(int(rng.integers(0, 2**31 - 1)))
            seen: set[str] = set()
            for conf in cs.sample_configuration(per_space * 2):
                if len(seen) >= per_space:
                    break
                rec = ConfigurationRecord.create(name, version, sp.validate(dict(conf)))
                if rec.config_id not in seen:
                    seen.add(rec.config_id)
                    out.append(rec)
        kind_space = {kind: sp.name for kind, sp in spaces.items()}
    else:
        for i in range(n):
            values = {
                "model": ("rf", "gbm", "linear", "knn", "mlp")[int(rng.integers(0, 5))],
                "learning_rate": float(10 ** rng.uniform(-4, 0)),
                "n_estimators": int(rng.integers(10, 1000)),
                "max_depth": int(rng.integers(1, 30)),
                "seed": i,
            }
            out.append(ConfigurationRecord.create(SPACES[i % len(SPACES)], "1", values))
        kind_space = {
            kind: SPACES[0]
            if kind in ("binary", "multiclass")
            else SPACES[1]
            if kind == "regression"
            else SPACES[2]
            for kind in KINDS
        }
    stamped = [
        ConfigurationRecord(c.config_id, c.space, c.space_version, c.values, _T0 + timedelta(seconds=i))
        for i, c in enumerate(out[:n])
    ]
    return stamped, kind_space


def _runs(
    datasets: list[DatasetRecord],
    configs: list[ConfigurationRecord],
    kind_space: dict[str, str],
    n_runs: int,
    rng: np.random.Generator,
    start: int,
) -> list[RunRecord]:
    """Runs ``start .. start+n_runs`` of the deterministic run sequence (pairs drawn without repetition)."""
    by_space: dict[str, list[ConfigurationRecord]] = {}
    for c in configs:
        by_space.setdefault(c.space, []).append(c)
    out = []
    n_d = len(datasets)
    for k in range(start, start + n_runs):
        d = datasets[k % n_d]
        pool = by_space[kind_space[d.kind]]
        # the j-th visit of dataset d takes configuration j of its space, then cycles with a new protocol
        j = k // n_d
        c = pool[j % len(pool)]
        protocol = PROTOCOL if j < len(pool) else f"cv5-s{j // len(pool)}"
        ok = rng.random() > 0.05
        score = float(rng.uniform(0.5, 1.0)) if ok else math.nan
        out.append(
            RunRecord(
                run_id=run_id_for(d.dataset_id, c.config_id, protocol),
                dataset_id=d.dataset_id,
                config_id=c.config_id,
                protocol=protocol,
                status="ok" if ok else "crash",
                metric="roc_auc",
                score=score,
                cost=1.0 - score,
                metrics={
                    "roc_auc": score,
                    "accuracy": score * 0.9,
                    "log_loss": -math.log(score) if ok else math.nan,
                },
                fit_seconds=float(rng.exponential(3.0)),
                predict_seconds=float(rng.exponential(0.1)),
                error="" if ok else "ValueError: synthetic crash",
                source="synthetic",
                search_id=None,
                budget=None if k % 10 else 0.25,
                n_rows_used=None,
                created_at=_T0 + timedelta(days=1, microseconds=k),
            )
        )
    return out


def build_synthetic_kb(
    path: str | Path,
    n_runs: int = 1_000_000,
    seed: int = 0,
    *,
    n_datasets: int = 300,
    n_configs: int = 5_000,
    batch: int = 100_000,
    real_spaces: bool | None = None,
    verbose: bool = False,
) -> None:
    """Fill the DuckDB KB at ``path`` with ``n_datasets`` datasets (+ meta-features), ``n_configs``
    configurations and ``n_runs`` runs, inserted through ``add_runs`` in batches of ``batch``.

    ``real_spaces``: sample the configurations from the product's search spaces (``metalearn.pipelines.spaces``);
    ``None`` = when they can be imported, ``False`` = always synthetic spaces.
    """
    rng = np.random.default_rng(seed)
    datasets = _datasets(n_datasets, rng)
    metafeatures = _metafeatures(datasets, rng)
    spaces = _real_spaces() if real_spaces is not False else None
    if real_spaces and spaces is None:
        raise RuntimeError("metalearn.pipelines.spaces.get_space is not available: pass real_spaces=None or False")
    configs, kind_space = _configurations(n_configs, np.random.default_rng(seed + 1), spaces)
    with DuckDBKnowledgeBase(path) as kb:
        # the static part goes in through the bulk path (load_table), the runs through add_runs
        with kb.transaction():
            for table, static in (
                ("datasets", datasets),
                ("metafeatures", metafeatures),
                ("configurations", configs),
            ):
                kb.load_table(table, schema.arrow_to_frame(schema.records_to_arrow(table, static)))
        done = 0
        while done < n_runs:
            size = min(batch, n_runs - done)
            t0 = time.perf_counter()
            records = _runs(datasets, configs, kind_space, size, rng, done)
            t1 = time.perf_counter()
            kb.add_runs(records)
            t2 = time.perf_counter()
            done += size
            if verbose:
                print(
                    f"  runs {done:>9,}: make {t1 - t0:5.2f}s  add_runs {t2 - t1:5.2f}s ({size / (t2 - t1):,.0f} runs/s)"
                )


def _timed(label: str, fn, repeat: int = 3) -> float:  # type: ignore[no-untyped-def]
    best = math.inf
    result = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    shape = getattr(result, "shape", None)
    print(f"{label:<44} {best * 1000:9.1f} ms  {shape if shape is not None else ''}")
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="DuckDB file to create or extend")
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    build_synthetic_kb(args.path, args.runs, args.seed, verbose=True)
    print(f"build: {time.perf_counter() - t0:.1f}s for {args.runs:,} runs (incl. record creation)")

    with DuckDBKnowledgeBase(args.path, read_only=True) as kb:
        stats = kb.stats()
        print(
            f"kb: {stats['datasets']} datasets, {stats['configurations']} configurations, {stats['runs']:,} runs"
        )
        _timed("runs_frame()", kb.runs_frame)
        _timed("runs_frame(ok_only=False)", lambda: kb.runs_frame(ok_only=False))
        _timed("runs_frame(kind='binary')", lambda: kb.runs_frame(kind="binary"))
        space = kb.list_runs(limit=1)[0].config_id
        space_name = kb.get_configuration(space).space
        _timed(f"runs_frame(space={space_name!r})", lambda: kb.runs_frame(space=space_name))
        _timed(
            f"metafeature_frame({METAFEATURE_VERSION!r})", lambda: kb.metafeature_frame(METAFEATURE_VERSION)
        )
        first = kb.list_datasets(limit=1)[0].dataset_id
        _timed("list_runs(dataset_id=..., limit=100)", lambda: kb.list_runs(dataset_id=first, limit=100))
        _timed("stats()", kb.stats)
    size = args.path.stat().st_size
    print(f"file size: {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
