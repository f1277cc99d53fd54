"""Two variants of the final model on the pools ``sitecustomize.py`` dumped: repeated CV and fold bagging.

Usage (single-target class pools; the pool's dataset is read from its file name)::

    python benchmarks/ensemble_testbed/partitions.py --split-seed S --corpus DIR POOL.pkl... [--fit]

``--fit`` first cross-validates every candidate of each pool again on a second 5-fold partition of the same
training rows (``cv_splits(..., seed=1)``; the search used seed 0) and caches its out-of-fold predictions in
``POOL.pkl.partition1.pkl`` (stop 38's twelve 120 s multiclass pools: about 6 min per split on one core).
Then, per pool (test log loss; the temperature is fit on the ensemble's out-of-fold rows and kept when it
lowers their loss, as the product does):

- ``A``: the product's selection (:func:`metalearn.search.ensemble.select_ensemble`, bagged) on the search's
  own out-of-fold predictions (partition 0);
- ``B``: the same on partition 1 alone (how much the choice of folds moves the result);
- ``AB``: on the average of both partitions' out-of-fold probabilities (repeated CV, as AutoGluon's
  ``num_bag_sets``);
- ``refit`` / ``foldbag``: the product's final ensemble (members, weights and temperature from the pool's
  summary) predicting with its members refit on all training rows (the product) or with the mean of each
  member's five partition-0 fold models (AutoGluon's bagged predictor; ``--fit`` fits them);
  ``member_refit`` / ``member_foldbag``: the members' own mean test log loss each way.

Stop 41's figures (``benchmarks/HISTORY.md``) came from the twelve 120 s multiclass pools of stop 38.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from metalearn.benchmark.datasets import prepared, resolve_benchmark_sources
from metalearn.data.metrics import compute_metrics
from metalearn.data.prediction import Prediction
from metalearn.data.splits import cv_splits
from metalearn.pipelines.spaces import get_space
from metalearn.search import ensemble as E
from metalearn.search.calibration import fit_temperature, scale_proba


def _name(path: str) -> str:
    return Path(path).name.split("_product")[0]


def _train(path: str, pool: dict[str, Any], split_seed: int, corpus: str) -> Any:
    sources, _ = resolve_benchmark_sources(corpus=corpus, names=[_name(path)])
    _, prep = prepared(sources[0], None, 0.25, split_seed)
    if len(prep.y_test) != len(pool["y_test"]) or not (prep.y_test.values == pool["y_test"].values).all():
        raise SystemExit(f"{path}: its test rows are not split {split_seed}'s; give the pool's --split-seed")
    return prep


def fit(path: str, split_seed: int, corpus: str) -> None:
    """Cache partition 1's out-of-fold predictions of every candidate and the test predictions of the final
    ensemble's members' partition-0 fold models."""
    out = path + ".partition1.pkl"
    if os.path.exists(out):
        return
    with open(path, "rb") as f:
        pool = pickle.load(f)
    prep = _train(path, pool, split_seed, corpus)
    train = prep.train
    space = get_space(train.task)
    members = {m["config_id"] for m in (pool["incumbent"].get("ensemble") or {}).get("members", [])}
    oof: dict[str, Any] = {}
    foldbag: dict[str, list[Prediction]] = {}
    for c in pool["cands"]:
        if c["test"] is None:
            continue
        for seed in (1, 0) if c["config_id"] in members else (1,):
            parts = []
            for tr, te in cv_splits(train, 5, seed):
                model = space.build(c["values"], train.task, train.categorical)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model.fit(train.X.iloc[tr].reset_index(drop=True), train.y.iloc[tr].reset_index(drop=True))
                if seed == 1:
                    parts.append((te, model.predict_task(train.X.iloc[te].reset_index(drop=True))))
                else:
                    foldbag.setdefault(c["config_id"], []).append(model.predict_task(prep.X_test))
            if seed == 1:
                oof[c["config_id"]] = E.assemble_oof(train.task, parts, train.y, None)
    with open(out, "wb") as f:
        pickle.dump({"oof": oof, "foldbag": foldbag}, f)
    print(f"{_name(path)}: {len(oof)} candidates on partition 1", flush=True)


def _proba(pred: Prediction, classes: np.ndarray) -> np.ndarray:
    P = np.zeros((len(pred.values[0]), len(classes)))
    P[:, np.searchsorted(classes, pred.classes[0])] = pred.probas[0]
    return P


def _log_loss(task: Any, P: np.ndarray, classes: np.ndarray, y: np.ndarray) -> float:
    """The product's log loss (:func:`metalearn.data.metrics.compute_metrics`) of probabilities ``P``."""
    pred = Prediction([classes[P.argmax(1)]], [P], [classes])
    return float(compute_metrics(task, pd.DataFrame({task.targets[0]: y}), pred)["log_loss"])


def _with_probas(like: E.OutOfFold, P: np.ndarray, classes: np.ndarray) -> E.OutOfFold:
    return E.OutOfFold(like.rows, Prediction([classes[P.argmax(1)]], [P], [classes]), like.y)


def evaluate(path: str) -> dict[str, Any]:
    with open(path, "rb") as f:
        pool = pickle.load(f)
    with open(path + ".partition1.pkl", "rb") as f:
        second = pickle.load(f)
    task = pool["task"]
    found = [c for c in pool["cands"] if c["test"] is not None and c["config_id"] in second["oof"]]
    rows0 = found[0]["oof"].rows
    found = [c for c in found if np.array_equal(c["oof"].rows, rows0)]
    y = found[0]["oof"].y.iloc[:, 0].to_numpy()
    y_test = pool["y_test"].iloc[:, 0].to_numpy()
    classes = np.unique(np.concatenate([y, y_test]))
    test = {c["config_id"]: _proba(c["test"], classes) for c in found}

    def partition1(c: dict[str, Any]) -> np.ndarray:  # the rows the search scored (a holdout: some of them)
        b = second["oof"][c["config_id"]]
        idx = c["oof"].source_rows if c["oof"].source_rows is not None else c["oof"].rows
        return _proba(E._take(b.prediction, idx), classes)

    oofs = {
        "A": {c["config_id"]: _proba(c["oof"].prediction, classes) for c in found},
        "B": {c["config_id"]: partition1(c) for c in found},
    }
    oofs["AB"] = {k: (oofs["A"][k] + oofs["B"][k]) / 2 for k in oofs["A"]}
    row: dict[str, Any] = {"pool": _name(path), "rows": len(rows0), "product": pool["final_test"]}
    for variant, probas in oofs.items():
        score = {k: _log_loss(task, P, classes, y) for k, P in probas.items()}
        order = sorted(score, key=score.__getitem__)
        cands = [E.Candidate(k, {}, score[k], _with_probas(found[0]["oof"], probas[k], classes)) for k in order]
        sel = E.select_ensemble(task, cands, E.DEFAULT_SIZE)
        assert sel is not None
        w = dict(zip(sel.members, sel.weights, strict=True))
        P_oof = sum(probas[k] * x for k, x in w.items())
        P_test = sum(test[k] * x for k, x in w.items())
        T = fit_temperature([P_oof], [np.searchsorted(classes, y)])
        if _log_loss(task, scale_proba(P_oof, T), classes, y) >= _log_loss(task, P_oof, classes, y):
            T = 1.0
        row[variant] = _log_loss(task, scale_proba(P_test, T), classes, y_test)
    inc = pool["incumbent"]
    ens, cal = inc.get("ensemble") or {}, inc.get("calibration") or {}
    members = ens.get("members") if ens.get("used") else [{"config_id": inc["config_id"], "weight": 1.0}]
    T = float(cal.get("temperature", 1.0)) if cal.get("used") else 1.0
    by_id = {c["config_id"]: c for c in pool["cands"]}
    if all(m["config_id"] in by_id and m["config_id"] in second["foldbag"] for m in members):
        refit = sum(m["weight"] * _proba(by_id[m["config_id"]]["test"], classes) for m in members)
        bag = sum(m["weight"] * np.mean([_proba(p, classes) for p in second["foldbag"][m["config_id"]]], axis=0)
                  for m in members)
        row["refit"] = _log_loss(task, scale_proba(refit / refit.sum(1, keepdims=True), T), classes, y_test)
        row["foldbag"] = _log_loss(task, scale_proba(bag / bag.sum(1, keepdims=True), T), classes, y_test)
        row["member_refit"] = np.mean([_log_loss(task, _proba(by_id[m["config_id"]]["test"], classes), classes, y_test)
                                       for m in members])
        row["member_foldbag"] = np.mean([
            _log_loss(task, np.mean([_proba(p, classes) for p in second["foldbag"][m["config_id"]]], axis=0), classes, y_test)
            for m in members])
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pools", nargs="+")
    ap.add_argument("--split-seed", type=int, required=True)
    ap.add_argument("--corpus", default=os.environ.get("METALEARN_CORPUS", "../shared/corpus"))
    ap.add_argument("--fit", action="store_true", help="cross-validate on partition 1 first (cached)")
    a = ap.parse_args()
    a.pools = [p for p in a.pools if not p.endswith(".partition1.pkl")]  # the caches (``pools/*.pkl``)
    if a.fit:
        for p in a.pools:
            fit(p, a.split_seed, a.corpus)
    df = pd.DataFrame([evaluate(p) for p in a.pools])
    pd.set_option("display.width", 200)
    print(df.round(5).to_string(index=False))
    print(df.drop(columns=["pool", "rows"]).mean().round(5).to_string())
    for v, ref in (("B", "A"), ("AB", "A"), ("foldbag", "refit"), ("member_foldbag", "member_refit")):
        if v in df and ref in df:
            d = (df[v] - df[ref]).dropna()
            print(f"{v} vs {ref}: better on {(d < -1e-9).sum()}, worse on {(d > 1e-9).sum()} of {len(d)}")


if __name__ == "__main__":
    main()
