"""Validation rows for a subset search's ensemble, offline on the test bed's pools (stop 45).

Usage::

    POOL_DIR=pools POOL_TOP=10 PYTHONPATH=.:benchmarks/ensemble_testbed python benchmarks/peers.py --budgets 30 \\
        --split-seed S --datasets magic,uci_bike ... --out DIR
    python benchmarks/ensemble_testbed/validation_rows.py --split-seed S pools/*.pkl [--corpus DIR] [--max-rows 60000]

For each pool of a search that evaluated on a data subset (the benchmark's 5,000-row subsets), the same
split is rebuilt (:func:`metalearn.benchmark.datasets.prepare_split`), the validation rows are drawn from the
training rows the subset left out (10 % of the rows, at least 1,000; skipped when fewer are left out), the
pool's 5 best candidates and the members of the product's ensemble are refit on the other rows and predict
the validation and test rows, and the ensemble is selected on the validation rows (the product's bagged
selection). Prints the test score of the product's model (``product``: weights chosen on the subset's
holdout, members refit on all rows), the best single candidate on the validation rows (``v_single``), the
selection over the 5 best and the members (``v_top``) and over the product's members alone (``v_members``,
what :mod:`metalearn.search.final_validation` does). The subset is the one the search used (5,000 rows,
the protocol's seed 0), as at 30 s on 5,000-60,000 rows.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import evaluate as EV

from metalearn.search import ensemble as E
from metalearn.search.final_validation import MIN_VALIDATION_ROWS, VALIDATION_SHARE

#: the pool's best candidates refit besides the product's members
TOP = 5
#: the search's data subset at 30 s on datasets of more than 5,000 training rows
SUBSET_ROWS = 5000


def _weights(task: Any, cands: list[E.Candidate]) -> tuple[np.ndarray, np.ndarray]:
    """The product's selection over ``cands`` as one weight per candidate (the best single one when the
    ensemble is not kept), and the best single candidate as weights (zeros when none scores)."""
    sel = E.select_ensemble(task, cands, E.DEFAULT_SIZE, bags=E.DEFAULT_BAGS)
    if sel is None:
        return np.zeros(len(cands)), np.zeros(len(cands))
    single = np.array([c.config_id == sel.best_single_id for c in cands], dtype=float)
    if not sel.kept:
        return single, single
    weight = dict(zip(sel.members, sel.weights, strict=True))
    return np.array([weight.get(c.config_id, 0.0) for c in cands]), single


def evaluate(path: str, split_seed: int, corpus: Any, max_rows: int) -> dict[str, Any] | None:
    from metalearn.benchmark.datasets import prepare_split
    from metalearn.data.metrics import get_metric
    from metalearn.pipelines.spaces import get_space
    from metalearn.search.evaluation import EvalProtocol, fit_final

    d, found, _ = EV.load_pool(path)
    name = Path(path).name.split("_product")[0]
    prep = prepare_split(corpus.load(name), max_rows, 0.25, split_seed)
    train, task = prep.train, prep.train.task
    n = train.n_rows
    used = EvalProtocol(mode="holdout", max_rows=SUBSET_ROWS).subset_rows(train)  # the rows the search used
    unseen = np.setdiff1d(np.arange(n), used) if used is not None else np.array([], dtype=int)
    n_val = max(MIN_VALIDATION_ROWS, int(VALIDATION_SHARE * n))  # the product's share; drawn here unstratified
    if len(unseen) < n_val:
        print(f"{name}: {len(unseen)} rows left out of the subset, fewer than {n_val}: skipped")
        return None
    val = np.sort(np.random.default_rng(0).choice(unseen, n_val, replace=False))
    fit = train.take_rows(np.setdiff1d(np.arange(n), val))
    members = {m["config_id"] for m in (d["incumbent"].get("ensemble") or {}).get("members", [])}
    picked = found[:TOP] + [c for c in found[TOP:] if c["config_id"] in members]
    space = get_space(task)
    y_val = train.y.iloc[val].reset_index(drop=True)
    cands, tests = [], []
    for c in picked:
        try:
            model = fit_final(fit, space, c["values"])
            on_val, on_test = model.predict_task(train.X.iloc[val]), model.predict_task(prep.X_test)
        except Exception as exc:  # a candidate that does not refit is left out
            print(f"{name}: {c['config_id']} not refit ({exc})")
            continue
        cands.append(E.Candidate(c["config_id"], c["values"], c["score"], E.OutOfFold(np.arange(n_val), on_val, y_val)))
        tests.append({"test": on_test})
    test = EV._stack_test(E._stack(task, cands), task, tests, prep.y_test)
    w_top, single = _weights(task, cands)
    mem = [i for i, c in enumerate(cands) if c.config_id in members]
    w_mem = np.zeros(len(cands))
    w_mem[mem] = _weights(task, [cands[i] for i in mem])[0] if len(mem) > 1 else (1.0 if mem else 0.0)
    return {"pool": name, "rows": n, "val": n_val, "greater": bool(get_metric(task.metric, task.kind).greater_is_better),
            "product": d["final_test"], "v_single": EV._score_weights(test, single),
            "v_top": EV._score_weights(test, w_top), "v_members": EV._score_weights(test, w_mem) if w_mem.any() else np.nan}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pools", nargs="+")
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--corpus", default=None)
    ap.add_argument("--max-rows", type=int, default=60_000)
    a = ap.parse_args()
    from metalearn.data.loading import Corpus, default_corpus_dir

    warnings.simplefilter("ignore")
    corpus = Corpus(default_corpus_dir(a.corpus))
    rows = [r for r in (evaluate(p, a.split_seed, corpus, a.max_rows) for p in a.pools) if r is not None]
    if not rows:
        print("no pool of a subset search given")
        return 1
    df = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    print(df.drop(columns="greater").round(5).to_string(index=False))
    sign = np.where(df["greater"], 1.0, -1.0)
    for v in ("v_single", "v_top", "v_members"):
        delta = sign * (df[v].fillna(df["product"]) - df["product"])
        print(f"{v}: better than the product on {(delta > 1e-9).sum()}, worse on {(delta < -1e-9).sum()} of {len(df)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
