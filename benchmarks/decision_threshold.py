"""Does the tuned decision rule help a search judged by a label metric? Test scores with and without it.

For a binary task whose metric is computed from the predicted labels (F1, balanced accuracy, accuracy) the
search's final model predicts the second class when its probability reaches a threshold chosen on the
out-of-fold predictions (:mod:`metalearn.search.calibration`, AutoGluon's ``calibrate_decision_threshold``);
for a multiclass task judged by balanced accuracy it predicts the class of the largest
probability weighted by a power of the inverse class shares, chosen the same way; for a multi-label task
judged by a label metric (macro or micro F1, Hamming loss, subset accuracy) every label is predicted at one
tuned threshold. This script runs the
product as a user would — ``optimize(time_limit=B)`` with the metric, on the 75 % training part of held-out
corpus datasets, a KB without the dataset (its fingerprint and name) — and scores the *same* final model on
the 25 % test part with its decision rule and at the most probable class::

    python benchmarks/decision_threshold.py                      # binary: f1, balanced_accuracy, 30 s, 12 datasets
    python benchmarks/decision_threshold.py --kind multiclass    # balanced_accuracy, 8 datasets
    python benchmarks/decision_threshold.py --kind multilabel    # 4 label metrics, 5 datasets
    python benchmarks/decision_threshold.py --metrics f1 --budget 60 --datasets 4

The datasets are chosen reproducibly from the corpus manifest: of the kind, 300-20,000 rows, in no OpenML
suite (OpenML-CC18, AMLB), the rarest class at most :data:`MAX_MINORITY` of the rows (binary 35 %: the corpus
has 12 such datasets; multiclass 5 %: 13), where the most probable class is furthest from what these metrics
want (multi-label: every such dataset, whose labels are mostly rare), the first ``--datasets`` by a seeded
hash of the name. Each finished cell is appended to ``--out``
(JSON lines) and skipped when the script runs again: it resumes after a crash.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from time_budget import MANIFEST, suite_members

#: the share of rows of the rarest class a chosen dataset has at most, per kind
MAX_MINORITY = {"binary": 0.35, "multiclass": 0.05, "multilabel": 1.0}
#: the metrics and how many datasets by default, per kind
DEFAULTS = {"binary": ("f1,balanced_accuracy", 12), "multiclass": ("balanced_accuracy", 8),
            "multilabel": ("f1_macro,f1_micro,hamming_loss,subset_accuracy", 5)}


def choose(n: int, seed: int = 0, kind: str = "binary", manifest: Path = MANIFEST) -> list[str]:
    """``n`` imbalanced corpus datasets of ``kind`` with 300-20,000 rows in no suite, reproducibly."""
    import pandas as pd

    dids, names = suite_members()
    rows = [r for r in csv.DictReader(manifest.open())
            if r["kind"] == kind and 300 <= int(r["n_rows"]) <= 20_000
            and (kind == "multilabel" or r["targets"].count(",") == 0)
            and not ((r.get("openml_did") and int(float(r["openml_did"])) in dids) or r["name"].lower() in names)]
    rows.sort(key=lambda r: hashlib.sha1(f"{seed}:{r['name']}".encode()).hexdigest())
    chosen = []
    for r in rows:
        target = json.loads(r["targets"])[0]
        y = pd.read_parquet(manifest.parent / r["file"], columns=[target])[target]
        if kind == "multilabel" or y.value_counts(normalize=True).min() <= MAX_MINORITY[kind]:
            chosen.append(r["name"])
        if len(chosen) == n:
            break
    return chosen


def run_cell(name: str, metric: str, budget: float, workers: int, tables: dict[str, Any]) -> dict[str, Any]:
    from metalearn.benchmark.datasets import ids_named, prepare_split
    from metalearn.benchmark.peers import load_kb_without
    from metalearn.data.loading import load_dataset
    from metalearn.kb import open_kb
    from metalearn.search.automl import optimize
    from metalearn.search.evaluation import test_score
    from metalearn.search.settings import SearchSettings

    dataset = load_dataset(f"corpus:{name}", metric=metric)
    prep = prepare_split(dataset, None, 0.25, 0)
    hidden = {dataset.fingerprint, prep.train.fingerprint} | ids_named(tables.get("datasets"), name)
    kb = open_kb(":memory:")
    try:
        load_kb_without(kb, tables, hidden)
        t0 = time.monotonic()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            outcome = optimize(prep.train, kb, SearchSettings(time_limit=budget, workers=workers))
        seconds = time.monotonic() - t0
    finally:
        kb.close()
    model = outcome.model
    block = outcome.summary.get("calibration") or {}
    cut = block.get("threshold") or {}
    if dataset.task.kind == "multiclass":
        cut = block.get("class_weights") or {}
    tuned = test_score(model, prep.X_test, prep.y_test, prep.train.task).get(metric, math.nan)
    threshold, weights = getattr(model, "threshold", None), getattr(model, "class_weights", None)
    if threshold is not None or weights is not None:
        model.threshold = model.class_weights = None
    plain = test_score(model, prep.X_test, prep.y_test, prep.train.task).get(metric, math.nan)
    # the decision rule: the threshold, or the power of the class shares the class weights use
    rule = threshold if threshold is not None else cut.get("power") if weights is not None else None
    share = (float(dataset.y.astype(float).mean().mean()) if dataset.task.kind == "multilabel"  # positives
             else float(dataset.y.iloc[:, 0].value_counts(normalize=True).min()))
    return {"dataset": name, "metric": metric, "budget": budget, "rows": dataset.n_rows,
            "minority": share, "threshold": rule, "oof_before": cut.get("score_before"),
            "oof_after": cut.get("score_after"), "test_most_probable": float(plain), "test_threshold": float(tuned),
            "seconds": round(seconds, 1), "note": cut.get("note", "")}


def main(argv: list[str] | None = None) -> int:
    from metalearn.search.settings import machine_cores

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", choices=sorted(DEFAULTS), default="binary", help="the task kind")
    parser.add_argument("--metrics", default=None,
                        help="label metrics, comma-separated (default: binary f1,balanced_accuracy; multiclass "
                             "balanced_accuracy; multilabel f1_macro,f1_micro,hamming_loss,subset_accuracy)")
    parser.add_argument("--budget", type=float, default=30.0, help="seconds per search (the whole job)")
    parser.add_argument("--datasets", type=int, default=None,
                        help="how many held-out datasets (default: binary 12, multiclass 8, multilabel 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the dataset choice")
    parser.add_argument("--workers", type=int, default=machine_cores(), help="trials at once")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/decision_threshold.jsonl"),
                        help="finished cells (JSON lines; the script resumes from it)")
    args = parser.parse_args(argv)
    from metalearn.kb.base import TABLES
    from metalearn.kb.shipped import open_default_kb

    names = choose(args.datasets or DEFAULTS[args.kind][1], args.seed, args.kind)
    metrics = [m.strip() for m in (args.metrics or DEFAULTS[args.kind][0]).split(",") if m.strip()]
    print("datasets:", ", ".join(names), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = [json.loads(line) for line in args.out.read_text().splitlines()] if args.out.exists() else []
    seen = {(d["dataset"], d["metric"], d["budget"]) for d in done}
    shipped = open_default_kb(":memory:")
    try:
        tables = {t: shipped.dump_table(t) for t in TABLES}
    finally:
        shipped.close()
    cells = [(n, m) for m in metrics for n in names]
    for i, (name, metric) in enumerate(cells, 1):
        if (name, metric, args.budget) in seen:
            continue
        row = run_cell(name, metric, args.budget, args.workers, tables)
        done.append(row)
        with args.out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        rule = "weights pi^-a, a =" if args.kind == "multiclass" else "threshold"
        thr = "   -" if row["threshold"] is None else f"{row['threshold']:.2f}"
        print(f"[{i}/{len(cells)}] {name:<28} {metric:<18} {rule} {thr}  test "
              f"{row['test_most_probable']:.4f} -> {row['test_threshold']:.4f}  (out of fold "
              f"{row['oof_before'] or math.nan:.4f} -> {row['oof_after'] or math.nan:.4f})  {row['seconds']:.0f} s",
              flush=True)
    for metric in metrics:
        rows = [d for d in done if d["metric"] == metric and d["budget"] == args.budget and d["dataset"] in names]
        if not rows:
            continue
        used = sum(d["threshold"] is not None for d in rows)
        print(f"{metric}: {len(rows)} datasets, decision rule used on {used}: {_versus(rows, metric)}", flush=True)
    return 0


def _versus(rows: list[dict[str, Any]], metric: str) -> str:
    """Mean test score at the most probable classes and with the decision rule, and on how many datasets the
    rule is better / equal / worse (in the metric's direction: the Hamming loss is lower-is-better)."""
    from metalearn.data.metrics import get_metric

    sign = 1.0 if get_metric(metric).greater_is_better else -1.0
    before = sum(d["test_most_probable"] for d in rows) / len(rows)
    after = sum(d["test_threshold"] for d in rows) / len(rows)
    better = sum(sign * (d["test_threshold"] - d["test_most_probable"]) > 1e-12 for d in rows)
    worse = sum(sign * (d["test_threshold"] - d["test_most_probable"]) < -1e-12 for d in rows)
    return (f"mean test {before:.4f} -> {after:.4f}, better / equal / worse {better} / "
            f"{len(rows) - better - worse} / {worse}")


if __name__ == "__main__":
    sys.exit(main())
