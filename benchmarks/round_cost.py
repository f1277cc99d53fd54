"""How good is the boosting round cost model? Estimated against measured seconds per round.

A boosted fit's rounds are capped so that the fit stays within its nominal per-fit budget
(:func:`metalearn.pipelines.models.adaptive.adapted_params`): ``budget / round_seconds``. An estimate
above the measured time cuts rounds the fit could have run; one below lets a fit overrun its budget.
This script fits each library (LightGBM, XGBoost, CatBoost and scikit-learn's histogram gradient
boosting at three tree sizes each, one thread, no early stopping) on synthetic data of several shapes for two numbers of rounds and takes
the difference per round (the one-off binning and set-up cancel out), then prints it beside
``round_seconds``'s estimate and their ratio::

    python benchmarks/round_cost.py                 # all shapes, ~13 min on one core
    python benchmarks/round_cost.py --quick          # three shapes
    python benchmarks/round_cost.py --libraries hgb --json out.json

Ratios are estimate / measured: 1 is exact, above 1 the cap is too cautious.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

import numpy as np

#: (rows, feature columns, task); task "multiclass" has 5 classes
SHAPES = (
    (2_000, 10, "binary"),
    (2_000, 200, "regression"),
    (10_000, 20, "binary"),
    (10_000, 50, "multiclass"),
    (10_000, 100, "regression"),
    (30_000, 10, "regression"),
    (30_000, 50, "binary"),
    (3_000, 1_000, "regression"),
    (1_800, 1_000, "binary"),
)
QUICK = (SHAPES[2], SHAPES[4], SHAPES[7])
ROUNDS = (20, 80)
#: extra seconds the larger number of rounds must take for a measurement
MIN_SECONDS = 0.005
#: tree sizes measured per library: LightGBM ``num_leaves``, XGBoost ``max_depth``, CatBoost ``depth``
#: (the space's default in the middle)
SIZES = {"lightgbm": (8, 31, 255), "xgboost": (3, 6, 10), "catboost": (4, 6, 8), "hgb": (8, 31, 255)}
#: ``hgb``: scikit-learn's ``HistGradientBoosting*`` (its own cost model, ``adaptive.boosting_round_seconds``)
LIBRARIES = ("lightgbm", "xgboost", "catboost", "hgb")


def data(n: int, p: int, task: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_classification, make_regression

    informative = max(2, min(p, 10))
    if task == "regression":
        X, y = make_regression(n_samples=n, n_features=p, n_informative=informative, noise=1.0, random_state=seed)
        return X, y
    k = 5 if task == "multiclass" else 2
    X, y = make_classification(
        n_samples=n, n_features=p, n_informative=informative, n_redundant=0, n_classes=k,
        n_clusters_per_class=1, flip_y=0.05, random_state=seed,
    )
    return X, y


def estimator(library: str, task: str, rounds: int, size: int) -> Any:
    """``library``'s trees of ``size`` (see :data:`SIZES`) with ``rounds`` rounds and no early stopping."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    from metalearn.pipelines.models.boosting import BoostedTreesClassifier, BoostedTreesRegressor

    if library == "hgb":
        hgb = HistGradientBoostingRegressor if task == "regression" else HistGradientBoostingClassifier
        return hgb(max_iter=rounds, max_leaf_nodes=size, early_stopping=False, learning_rate=0.1)
    params: dict[str, Any] = {
        "lightgbm": {"num_leaves": size, "min_child_samples": 20},
        "xgboost": {"max_depth": size},
        "catboost": {"depth": size},
    }[library]
    cls = BoostedTreesRegressor if task == "regression" else BoostedTreesClassifier
    return cls(library=library, n_estimators=rounds, params=params, early_stopping_rounds=0, learning_rate=0.1)


def measure(library: str, X: np.ndarray, y: np.ndarray, task: str, size: int) -> tuple[float, float]:
    """(measured seconds per round, NaN when too fast to measure; estimated seconds per round)."""
    times = []
    for rounds in ROUNDS:
        est = estimator(library, task, rounds, size)
        started = time.perf_counter()
        est.fit(X, y)
        times.append(time.perf_counter() - started)
    # below ~5 ms for the extra rounds, timer noise and the libraries' own bookkeeping dominate: not measured
    measured = (times[1] - times[0]) / (ROUNDS[1] - ROUNDS[0]) if times[1] - times[0] > MIN_SECONDS else math.nan
    model = estimator(library, task, 1, size)
    if library == "hgb":  # the estimate adapted_params caps its rounds with
        from metalearn.pipelines.models.adaptive import hist_boosting_round_seconds

        estimated = hist_boosting_round_seconds(model, X.shape[0], X.shape[1], y)
    else:
        estimated = float(model.round_seconds(X.shape[0], X.shape[1], y))
    return measured, estimated


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three shapes only")
    parser.add_argument("--json", help="write the rows to this file")
    parser.add_argument("--libraries", default=",".join(LIBRARIES), help="comma-separated, of " + ", ".join(LIBRARIES))
    args = parser.parse_args(argv)
    libraries = [name for name in args.libraries.split(",") if name]
    unknown = sorted(set(libraries) - set(LIBRARIES))
    if unknown:
        parser.error(f"unknown libraries {unknown}; use some of {list(LIBRARIES)}")
    from metalearn.runtime.threads import limited

    rows: list[dict[str, Any]] = []
    print(f"{'rows':>6} {'cols':>5} {'task':<10} {'library':<9} {'size':>4} {'measured ms':>11} "
          f"{'estimate ms':>11} {'ratio':>6}")
    for n, p, task in QUICK if args.quick else SHAPES:
        X, y = data(n, p, task)
        for library in libraries:
            for size in SIZES[library]:
                with limited(1):
                    measured, estimated = measure(library, X, y, task, size)
                ratio = estimated / measured
                rows.append({"rows": n, "cols": p, "task": task, "library": library, "size": size,
                             "measured": measured, "estimated": estimated, "ratio": ratio})
                print(f"{n:>6} {p:>5} {task:<10} {library:<9} {size:>4} {measured * 1e3:>11.2f} "
                      f"{estimated * 1e3:>11.2f} {ratio:>6.2f}", flush=True)
    for library in libraries:
        ratios = [r["ratio"] for r in rows if r["library"] == library and math.isfinite(r["ratio"])]
        if not ratios:
            continue
        geo = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        print(f"{library}: estimate / measured geometric mean {geo:.2f}, range {min(ratios):.2f}-{max(ratios):.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
