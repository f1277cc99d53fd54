"""Dump every recommender's output on the shipped KB, to compare two versions of the code.

Usage::

    python benchmarks/recommendations_dump.py OUT.json                # this checkout
    python benchmarks/recommendations_dump.py --compare A.json B.json  # equal queries / equal rankings

For 6 datasets of every kind in the shipped KB, every strategy, with and without excluding the dataset
itself, k = 1, 5, 25: the advisor's recommendations (config ids, expected regrets, explanations). The
restructure of issue 11 was checked this way (2,160 queries, 22,320 recommendations, all equal).
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any


def dump(path: str) -> None:
    from metalearn.kb.shipped import open_default_kb
    from metalearn.metalearning import strategies
    from metalearn.metalearning.advisor import Advisor

    kb = open_default_kb(":memory:")
    advisor = Advisor(kb)
    out: dict[str, Any] = {}
    for kind in ("binary", "multiclass", "regression", "multilabel", "multitarget"):
        mf = kb.metafeature_frame(advisor.mf_version, kind=kind)
        for did in list(mf.index)[:: max(1, len(mf) // 6)][:6]:
            for strategy in strategies.STRATEGIES:
                for exclude in ([], [did]):
                    for k in (1, 5, 25):
                        recs = advisor.recommend(mf.loc[did], kind, strategy=strategy, k=k, exclude_ids=exclude)
                        out[f"{kind}|{did}|{strategy}|{bool(exclude)}|{k}"] = [
                            json.loads(json.dumps(r.to_dict(), default=str)) for r in recs
                        ]
    with open(path, "w") as f:
        json.dump(out, f, sort_keys=True, default=lambda x: None if isinstance(x, float) and not math.isfinite(x) else str(x))
    print(f"{len(out)} queries, {sum(len(v) for v in out.values())} recommendations -> {path}")


def compare(a_path: str, b_path: str) -> None:
    with open(a_path) as fa, open(b_path) as fb:
        a, b = json.load(fa), json.load(fb)
    keys = sorted(set(a) & set(b))
    equal = sum(a[k] == b[k] for k in keys)
    ranked = sum([r["config_id"] for r in a[k]] == [r["config_id"] for r in b[k]] for k in keys)
    print(f"{len(keys)} common queries ({len(set(a) ^ set(b))} in one only): {equal} equal, {ranked} equal rankings")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--compare":
        compare(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 2:
        dump(sys.argv[1])
    else:
        sys.exit(__doc__)
