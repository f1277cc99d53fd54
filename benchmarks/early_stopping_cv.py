"""What the boosted families' early-stopping split costs their cross-validated score on small data.

Usage::

    python benchmarks/early_stopping_cv.py [--datasets a,b,...] [--splits 0,1,2] [--corpus DIR]

A LightGBM / XGBoost / CatBoost fit early-stops on 10 % of the rows it is given
(:mod:`metalearn.pipelines.models.boosting`), so inside a 5-fold CV trial it trains on 72 % of a training
part, while random forests and extra trees train on 80 %; the final fit then refits the boosted model on
every row with the rounds early stopping chose. On small datasets the trial's score may therefore
under-rate a boosted configuration against a forest. This script fits the LightGBM and CatBoost defaults
of the knowledge base on the peers benchmark's 75/25 splits (:func:`metalearn.benchmark.datasets.prepare_split`)
two ways -- as the product does (``es10``) and without an early-stopping split, all rounds on all rows
(``none``) -- and prints, per dataset, split and family, the 5-fold CV score on the training part and the
test score of the final fit, then the mean relative change ``none`` vs ``es10`` per family and per dataset
(negative: lower, i.e. better for a loss). It measures; it changes nothing in the product (the variant
replaces the estimator's split method in this process only).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: the families compared, each at its library default (the space's defaults, as the knowledge base holds them)
FAMILIES = ("catboost", "lgbm")
#: small datasets of the peers benchmark (500-3,800 rows): regression, then multiclass
DATASETS = "uci_housing,uci_energy,uci_concrete,uci_pendulum,uci_airfoil,solar_flare_2,allhyper,allbp"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default=DATASETS)
    p.add_argument("--splits", default="0,1,2")
    p.add_argument("--corpus", default=None, help="corpus directory (default: $METALEARN_CORPUS or ../shared/corpus)")
    a = p.parse_args(argv)

    from metalearn.benchmark.datasets import prepare_split
    from metalearn.data.loading import Corpus, default_corpus_dir
    from metalearn.pipelines.models import boosting
    from metalearn.pipelines.spaces import get_space
    from metalearn.search.evaluation import evaluate_config, fit_final, test_score

    corpus = Corpus(default_corpus_dir(a.corpus))
    as_fitted = boosting._BoostedTrees._split

    def no_split(self: object, X: object, y: object) -> tuple[object, object, None, None]:
        return X, y, None, None

    warnings.simplefilter("ignore")
    rows = []
    for name in a.datasets.split(","):
        ds = corpus.load(name)
        for seed in (int(s) for s in a.splits.split(",")):
            prep = prepare_split(ds, None, 0.25, seed)
            task = prep.train.task
            space = get_space(task)
            for family in FAMILIES:
                clean = space.validate(space.family_default(family) or {})
                for variant, split in (("es10", as_fitted), ("none", no_split)):
                    boosting._BoostedTrees._split = split  # type: ignore[method-assign]
                    try:
                        t0 = time.monotonic()
                        cv = evaluate_config(prep.train, space, clean)
                        model = fit_final(prep.train, space, clean)
                        test = test_score(model, prep.X_test, prep.y_test, task)[task.metric]
                    finally:
                        boosting._BoostedTrees._split = as_fitted  # type: ignore[method-assign]
                    rows.append({"dataset": name, "split": seed, "family": family, "variant": variant,
                                 "cv": cv.score, "test": test, "seconds": time.monotonic() - t0})
                    print(f"{name:14s} split {seed} {family:8s} {variant:5s} cv {cv.score:.4f} test {test:.4f} "
                          f"({rows[-1]['seconds']:.1f} s)", flush=True)
    df = pd.DataFrame(rows)
    wide = df.pivot_table(index=["dataset", "split", "family"], columns="variant", values=["cv", "test"])
    change = pd.DataFrame({
        "cv %": 100 * (wide[("cv", "none")] / wide[("cv", "es10")] - 1),
        "test %": 100 * (wide[("test", "none")] / wide[("test", "es10")] - 1),
    })
    pd.set_option("display.width", 200)
    print("\nrelative change without the early-stopping split (none vs es10; a lower loss is negative)")
    print(change.groupby(level="family").mean().round(2).to_string())
    print(change.groupby(level="dataset").mean().round(2).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
