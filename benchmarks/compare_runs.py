"""Two runs of the product's benchmark cells side by side (an A/B of a code change), against the peers' cells.

Each run is one or more result directories of ``benchmarks/peers.py`` (product cells only, ``--peers ""``), one
per split, in the same order for both; ``--peers`` gives the committed directories with the FLAML and AutoGluon
cells of the same splits and budget (a change of the product's code does not change them)::

    python benchmarks/compare_runs.py --before B0 B1 B2 --after A0 A1 A2 \\
        --peers benchmarks/results/peers_30s_v24 benchmarks/results/peers_30s_v24_split1 \\
                benchmarks/results/peers_30s_v24_split2

Prints per dataset and split the test score before and after (and the peers'), then per kind the mean test score
of each run and each peer over the same cells (for regression also their mean R²), the after run's better / equal /
worse cells, the win rates against each peer (ties count one half) and the time used / budget.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from metalearn.benchmark.peer_report import win_share

PEERS = ("flaml", "autogluon")


def _product(directory: Path) -> pd.DataFrame:
    cells = pd.read_parquet(directory / "cells.parquet")
    cells = cells[cells.strategy.str.startswith("product@") & (cells.status == "done")]
    return cells.assign(r2=_r2).set_index("dataset")


def _kinds(directory: Path) -> pd.DataFrame:
    return pd.read_parquet(directory / "datasets.parquet").set_index("name")[["kind", "metric", "greater_is_better"]]


def _r2(cells: pd.DataFrame) -> pd.Series:
    """Each cell's test R² (NaN where its metrics hold none: not a regression)."""
    return cells.test_metrics.map(lambda m: float(json.loads(m).get("r2", np.nan)) if isinstance(m, str) else np.nan)


def _peer_scores(directory: Path | None, budget: int) -> dict[str, pd.DataFrame]:
    if directory is None:
        return {}
    cells = pd.read_parquet(directory / "cells.parquet")
    cells = cells[cells.status == "done"].assign(r2=_r2)
    return {p: cells[cells.strategy == f"{p}@{budget}"].set_index("dataset")[["test_score", "r2"]] for p in PEERS}


def table(before: list[Path], after: list[Path], peers: list[Path] | None) -> pd.DataFrame:
    """One row per (split, dataset) both runs scored."""
    rows = []
    for split, (b_dir, a_dir) in enumerate(zip(before, after, strict=True)):
        b, a, kinds = _product(b_dir), _product(a_dir), _kinds(a_dir)
        budget = int(a.budget_seconds.iloc[0])
        peer = _peer_scores(peers[split] if peers else None, budget)
        for name in sorted(set(a.index) & set(b.index)):
            kind = kinds.loc[name]
            row = {"split": split, "dataset": name, "kind": kind.kind, "metric": kind.metric,
                   "greater": bool(kind.greater_is_better), "before": float(b.test_score[name]),
                   "after": float(a.test_score[name]), "used_before": float(b.search_seconds[name] / budget),
                   "used_after": float(a.search_seconds[name] / budget), "r2_before": float(b.r2[name]),
                   "r2_after": float(a.r2[name])}
            for p, scores in peer.items():
                row[p] = float(scores.test_score.get(name, np.nan))
                row[f"r2_{p}"] = float(scores.r2.get(name, np.nan))
            rows.append(row)
    return pd.DataFrame(rows)


def report(t: pd.DataFrame) -> None:
    peers = [p for p in PEERS if p in t.columns and t[p].notna().any()]
    for r in t.itertuples():
        extra = "".join(f"  {p} {getattr(r, p):.5g}" for p in peers)
        print(f"split {r.split}  {r.dataset:24s} {r.metric:9s} before {r.before:.5g}  after {r.after:.5g}{extra}")
    print()
    for kind, part in t.groupby("kind"):
        greater = bool(part.greater.iloc[0])
        verdicts = [win_share(a, b, greater) for a, b in zip(part.after, part.before, strict=True)]
        better, equal = verdicts.count(1.0), verdicts.count(0.5)
        line = (f"{kind} ({part.metric.iloc[0]}, {len(part)} cells): mean before {part.before.mean():.5g}, "
                f"after {part.after.mean():.5g}; after better / equal / worse {better} / {equal} / "
                f"{len(part) - better - equal}")
        for p in peers:
            common = part[part[p].notna()]
            if common.empty:
                continue
            wins_b = np.mean([win_share(s, o, greater) for s, o in zip(common.before, common[p], strict=True)])
            wins_a = np.mean([win_share(s, o, greater) for s, o in zip(common.after, common[p], strict=True)])
            line += (f"; {p} {common[p].mean():.5g} on {len(common)} (wins before {wins_b:.0%}, after "
                     f"{wins_a:.0%})")
        print(line)
        if kind == "regression":  # the same cells' mean R², which weighs every dataset alike
            r2 = f"  R² mean before {part.r2_before.mean():.4f}, after {part.r2_after.mean():.4f}"
            for p in peers:
                common = part[part[p].notna()]
                if not common.empty:
                    r2 += f"; {p} {common[f'r2_{p}'].mean():.4f} (after on those {common.r2_after.mean():.4f})"
            print(r2)
    print(f"time used / budget: before mean {t.used_before.mean():.2f} max {t.used_before.max():.2f}; "
          f"after mean {t.used_after.mean():.2f} max {t.used_after.max():.2f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", type=Path, nargs="+", required=True, help="result directories, one per split")
    ap.add_argument("--after", type=Path, nargs="+", required=True, help="result directories, the same splits")
    ap.add_argument("--peers", type=Path, nargs="+", help="directories with the peers' cells, the same splits")
    args = ap.parse_args(argv)
    if len(args.before) != len(args.after) or (args.peers and len(args.peers) != len(args.after)):
        ap.error("give --before, --after (and --peers) the same number of directories, one per split")
    for d in [*args.before, *args.after, *(args.peers or [])]:
        if not (d / "cells.parquet").is_file():
            ap.error(f"{d} holds no cells.parquet: give a result directory of benchmarks/peers.py")
    report(table(args.before, args.after, args.peers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
