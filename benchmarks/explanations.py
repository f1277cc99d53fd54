"""How long do the model explanations take on the final models users get? Seconds per dataset.

For each of ``time_budget.py``'s six corpus datasets (155-40,000 rows, one per size band, in no OpenML
suite) a search with a time limit runs on the 75 % training part (a fresh in-memory KB seeded from the
shipped snapshot, as the estimators use), then :func:`metalearn.pipelines.importance.permutation_importance`
measures every feature of its final model (an ensemble or a pipeline) on the 25 % test part (at most
5,000 rows) with 5 shuffle sets, as ``metalearn models evaluate --importance`` and the estimators'
``feature_importance`` do, and :func:`metalearn.pipelines.explain.shapley_values` explains 10 test rows
against 16 training rows with 8 feature orders each, as ``metalearn models explain`` and ``POST
/models/{name}/explain`` do. Prints the model, the rows and features, the seconds of each and the three most
important features::

    python benchmarks/explanations.py                  # 30 s searches, 5 shuffles
    python benchmarks/explanations.py --budget 60 --repeats 10
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from time_budget import choose


def main(argv: list[str] | None = None) -> int:
    from metalearn.benchmark.datasets import prepare_split
    from metalearn.data.loading import load_dataset
    from metalearn.kb.shipped import open_default_kb
    from metalearn.pipelines.explain import shapley_values
    from metalearn.pipelines.importance import permutation_importance
    from metalearn.search.automl import optimize
    from metalearn.search.settings import SearchSettings, machine_cores

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=30.0, help="seconds per search")
    parser.add_argument("--repeats", type=int, default=5, help="shuffle sets")
    parser.add_argument("--max-rows", type=int, default=5000, help="test rows the importance uses at most")
    parser.add_argument("--workers", type=int, default=machine_cores(), help="trials at once")
    args = parser.parse_args(argv)
    rows, explained = [], []
    for entry in choose():
        dataset = load_dataset(f"corpus:{entry['name']}")
        prep = prepare_split(dataset, None, 0.25, 0)
        kb = open_default_kb(":memory:")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                outcome = optimize(prep.train, kb, SearchSettings(time_limit=args.budget, workers=args.workers))
        finally:
            kb.close()
        model = outcome.model
        t0 = time.perf_counter()
        table = permutation_importance(model.predict_task, prep.train.task, prep.X_test, prep.y_test,
                                       n_repeats=args.repeats, max_rows=args.max_rows)
        seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        shapley_values(model.predict_task, prep.train.task, prep.X_test.head(10), prep.train.X)
        per_row = (time.perf_counter() - t0) / min(10, len(prep.X_test))
        explained.append(per_row)
        members = len(getattr(model, "members", [model]))
        top = ", ".join(f"{f} {v:.3g}" for f, v in table["importance"].head(3).items())
        rows.append(seconds)
        print(f"{entry['name']:<24} {table.attrs['rows']:>5} rows x {len(table):>3} features  {members:>2} member(s)  "
              f"importance in {seconds:6.1f} s ({table.attrs['metric']} {table.attrs['base_score']:.4g}; top: {top}); "
              f"a row explained in {per_row:.2f} s",
              flush=True)
    print(f"{len(rows)} models: importance mean {sum(rows) / len(rows):.1f} s, max {max(rows):.1f} s "
          f"({args.repeats} shuffles, at most {args.max_rows} rows); a row explained in mean "
          f"{sum(explained) / len(explained):.2f} s, max {max(explained):.2f} s (16 background rows, 8 orders)",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
