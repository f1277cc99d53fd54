"""Does the post-hoc ensemble help? Best single pipeline vs Caruana ensemble, out of fold and on test data.

Usage::

    python benchmarks/ensemble_gain.py [--corpus DIR] [--datasets 6] [--trials 15] [--folds 3]
                                       [--max-rows 1500] [--trial-time-limit 20] [--selection-seed 0]
                                       [--seed 0] [--list]

Datasets are chosen reproducibly (``--selection-seed``) from the corpus's real (non-synthetic) datasets of
150-5,000 rows, at most 60 features and 8 targets that are *not* in an OpenML suite (OpenML-CC18, the AutoML
benchmark: by OpenML id and by name), stratified by kind (for 6: 2 binary, 1 multiclass, 1 regression,
1 multilabel, 1 multitarget). Each dataset is held out: its search warm-starts from a copy of the shipped KB
without it (every KB dataset of the same normalised name is dropped, with its runs and meta-features).

Per dataset: a seeded 75/25 train/test split (after a ``--max-rows`` subsample), one ``optimize`` on the
training part (``--trials`` trials, ``--folds``-fold CV, warm start on, ensemble on), then the test score of
the search's best single pipeline (refit on the training part) and of the model ``optimize`` returned (the
ensemble when it was kept). Prints, per dataset, the out-of-fold (OOF) score of the best single pipeline
and of the ensemble, whether it was kept, its members, and both test scores; then a summary of the gains.
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
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from metalearn.benchmark.datasets import normalise_name, prepare_split  # noqa: E402
from metalearn.data.loading import Corpus, default_corpus_dir  # noqa: E402
from metalearn.data.metrics import get_metric  # noqa: E402
from metalearn.kb import open_kb  # noqa: E402
from metalearn.kb.base import KnowledgeBase  # noqa: E402
from metalearn.kb.shipped import open_default_kb  # noqa: E402
from metalearn.pipelines.spaces import get_space  # noqa: E402
from metalearn.search.automl import optimize  # noqa: E402
from metalearn.search.ensemble import EnsembleModel  # noqa: E402
from metalearn.search.evaluation import EvalProtocol, fit_final, test_score  # noqa: E402
from metalearn.search.settings import SearchSettings  # noqa: E402

#: datasets per task kind for 6 datasets (scaled for other counts)
QUOTAS = {"binary": 2, "multiclass": 1, "regression": 1, "multilabel": 1, "multitarget": 1}
TABLES = ("datasets", "metafeatures", "configurations", "runs", "searches")


def suite_members() -> tuple[set[int], set[str]]:
    """OpenML ids and normalised names of every dataset of the known OpenML suites (from the suite files)."""
    from metalearn.data.suites import KNOWN_SUITES, load_suite

    dids: set[int] = set()
    names: set[str] = set()
    for suite in KNOWN_SUITES:
        try:
            s = load_suite(suite)
        except Exception as exc:  # a suite that cannot be read excludes nothing; say so
            print(f"note: suite {suite} not read ({exc}); its datasets are not excluded", file=sys.stderr)
            continue
        for e in s.entries:
            dids.add(int(e.did))
            if e.name:
                names.add(normalise_name(e.name))
    return dids, names


def choose_datasets(corpus: Corpus, n: int = 6, seed: int = 0) -> list[str]:
    """A reproducible, kind-stratified sample of real, non-suite corpus datasets (see the module docstring)."""
    dids, suite_names = suite_members()

    def eligible(e: Any) -> bool:
        in_suite = (e.openml_did is not None and e.openml_did in dids) or normalise_name(e.name) in suite_names
        return not (e.synthetic or in_suite) and 150 <= e.n_rows <= 5_000 and e.n_features <= 60 and len(e.targets) <= 8

    by_kind: dict[str, list[str]] = {kind: [] for kind in QUOTAS}
    for e in corpus.entries():
        if str(e.kind) in by_kind and eligible(e):
            by_kind[str(e.kind)].append(e.name)
    rng = np.random.default_rng(seed)
    scale = n / sum(QUOTAS.values())
    chosen: list[str] = []
    for kind, names in by_kind.items():
        names.sort()
        take = rng.choice(len(names), size=min(len(names), max(1, round(QUOTAS[kind] * scale))), replace=False)
        chosen += [names[i] for i in sorted(take)]
    return chosen


def held_out_kb(tables: dict[str, Any], name: str) -> KnowledgeBase:
    """An in-memory copy of the shipped KB without the datasets named like ``name``."""
    ds = tables["datasets"]
    drop = set(ds.loc[ds["name"].map(normalise_name) == normalise_name(name), "dataset_id"])
    kb = open_kb(":memory:")
    for table in TABLES:
        frame = tables[table]
        if "dataset_id" in frame.columns and drop:
            frame = frame[~frame["dataset_id"].isin(drop)]
        if len(frame):
            kb.load_table(table, frame)
    return kb


def fmt(x: Any, digits: int = 4) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def run_one(corpus: Corpus, tables: dict[str, Any], name: str, settings: SearchSettings, max_rows: int,
            seed: int) -> dict[str, Any]:
    """One held-out dataset: search, ensemble, test scores of the best single pipeline and of the model."""
    t0 = time.monotonic()
    ds = corpus.load(name)
    prep = prepare_split(ds, max_rows, 0.25, seed)
    kb = held_out_kb(tables, name)
    try:
        outcome = optimize(prep.train, kb, settings)
    finally:
        kb.close()
    res, block = outcome.result, outcome.summary.get("ensemble") or {}
    metric = ds.task.metric
    sign = 1.0 if get_metric(metric).greater_is_better else -1.0
    single = outcome.model
    if isinstance(single, EnsembleModel):  # the search's best pipeline alone, refit the same way
        single = fit_final(prep.train, get_space(prep.train.task), res.best_values or {})
    test_single = test_score(single, prep.X_test, prep.y_test, ds.task)[metric]
    test_model = test_score(outcome.model, prep.X_test, prep.y_test, ds.task)[metric]
    return {
        "dataset": name, "kind": str(ds.task.kind), "metric": metric, "n_train": prep.train.n_rows,
        "oof_single": block.get("best_single"), "oof_ensemble": block.get("score"), "oof_gain": block.get("gain"),
        "kept": bool(block.get("used")), "members": len(block.get("members", [])),
        "families": "+".join(sorted({m["family"] for m in block.get("members", [])})),
        "test_single": test_single, "test_model": test_model, "test_gain": sign * (test_model - test_single),
        "seconds": time.monotonic() - t0, "note": block.get("note", ""),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--corpus", default=None, help="corpus directory (default: $METALEARN_CORPUS or ../shared/corpus)")
    p.add_argument("--datasets", type=int, default=6)
    p.add_argument("--trials", type=int, default=15)
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--max-rows", type=int, default=1500)
    p.add_argument("--trial-time-limit", type=float, default=20.0)
    p.add_argument("--selection-seed", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--list", action="store_true", help="only list the chosen datasets")
    args = p.parse_args(argv)

    corpus = Corpus(Path(args.corpus) if args.corpus else default_corpus_dir())
    names = choose_datasets(corpus, args.datasets, args.selection_seed)
    print("datasets:", ", ".join(names))
    if args.list:
        return 0
    shipped = open_default_kb(":memory:", seed_from_shipped=True)
    tables = {t: shipped.dump_table(t) for t in TABLES}
    shipped.close()
    settings = SearchSettings(
        n_trials=args.trials, trial_time_limit=args.trial_time_limit, warm_start=True, seed=args.seed,
        protocol=EvalProtocol(n_folds=args.folds, seed=args.seed), resume=False,
    )
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    for name in names:
        r = run_one(corpus, tables, name, settings, args.max_rows, args.seed)
        rows.append(r)
        print(f"{name}: {r['kind']} {r['metric']} OOF single {fmt(r['oof_single'])} ensemble {fmt(r['oof_ensemble'])} "
              f"(gain {fmt(r['oof_gain'])}, kept {r['kept']}, {r['members']} members {r['families']}); "
              f"test single {fmt(r['test_single'])} model {fmt(r['test_model'])} (gain {fmt(r['test_gain'])}); "
              f"{r['seconds']:.0f} s {r['note']}", flush=True)

    print()
    header = ("dataset", "kind", "metric", "n_train", "oof_single", "oof_ensemble", "oof_gain", "kept", "members",
              "test_single", "test_model", "test_gain")
    print(" | ".join(header))
    for r in rows:
        print(" | ".join(fmt(r[h]) if isinstance(r[h], float) else str(r[h]) for h in header))
    kept = [r for r in rows if r["kept"]]

    def rel(r: dict[str, Any], key: str, base: str) -> float:  # gain relative to the best single's score
        return float(r[key]) / max(abs(float(r[base])), 1e-12)

    oof_rel = float(np.median([rel(r, "oof_gain", "oof_single") for r in kept])) if kept else None
    test_rel = float(np.median([rel(r, "test_gain", "test_single") for r in kept])) if kept else None
    print(f"\nkept on {len(kept)}/{len(rows)} datasets; where kept, median relative gain (gain / |single score|): "
          f"out of fold {fmt(oof_rel)}, test {fmt(test_rel)}; test better/worse/equal: "
          f"{sum(r['test_gain'] > 0 for r in kept)}/{sum(r['test_gain'] < 0 for r in kept)}/"
          f"{sum(r['test_gain'] == 0 for r in kept)}; {time.monotonic() - started:.0f} s in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
