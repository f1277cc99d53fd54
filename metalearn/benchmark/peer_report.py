"""The report of a wall-clock (peer) benchmark: final test scores per dataset and per kind, the product's
win rate against each peer, time used / budget, and a plot — computed from the stored ``datasets`` and
``cells`` tables alone (see :mod:`metalearn.benchmark.peers`).

Definitions, per budget:

* **test score**: the task metric of the system's final model on the held-out test part (mean over
  seeds); per kind, the mean over the kind's *common* datasets: those where every system with a score
  on the kind has one (a failed cell drops its dataset from every system's mean, so all the means of a
  row are over the same datasets; the "datasets" column says how many of the kind's datasets that is).
  Each kind has one default metric: binary ROC AUC, multiclass log loss, regression RMSE; R² is
  reported for regression as well;
* **win rate** of the product against a peer: over the (dataset, seed) instances of the datasets where
  both ran, the fraction the product's test score is better (a tie counts one half; a failed cell or a
  missing score loses against any score, so both systems are compared on the same instances);
* **time used / budget**: the wall-clock seconds from the start of the system's call until its final
  model was ready, divided by the budget (mean and max over the budget's cells);
* **calibration**: the product's cells whose final model is temperature-scaled
  (:mod:`metalearn.search.calibration`), scored on the test part with and without its temperature (the
  same model): how many the scaling made better, equal (to 4 decimals) or worse, and both means.

Systems without a budget (``rf``, ``top1``, ``flaml_zeroshot``: one fit each) appear as extra columns in
every budget's tables; the top-1 recommendation alone is compared with FLAML's zero-shot estimator in
a section of its own.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from metalearn.benchmark.report import failure_lines, failure_lists, format_cell, markdown_table
from metalearn.benchmark.settings import (
    FLAML_ZEROSHOT,
    PEERS,
    PRODUCT,
    RF_BASELINE,
    TOP1,
    budget_strategy,
    split_strategy,
)
from metalearn.data.numbers import json_safe

__all__ = ["compute_peer_summary", "render_peer_markdown", "win_share", "write_peer_plots", "write_peer_report"]

#: a second metric reported per kind (besides the task's own)
EXTRA_METRIC = {"regression": "r2"}
NO_BUDGET = (RF_BASELINE, TOP1, FLAML_ZEROSHOT)


def _mean(values: Sequence[float]) -> float:
    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else math.nan


def win_share(a: float, b: float, greater: bool) -> float:
    """A win rate's share of one comparison: 1 when ``a`` beats ``b`` (NaN loses), 0.5 on a tie, else 0."""
    fa, fb = math.isfinite(a), math.isfinite(b)
    if not fa or not fb:
        return 0.5 if fa == fb else (1.0 if fa else 0.0)
    if a == b:
        return 0.5
    return 1.0 if (a > b) == greater else 0.0


def compute_peer_summary(
    datasets: pd.DataFrame,
    cells: pd.DataFrame,
    settings: dict[str, Any],
    *,
    keys: Sequence[str] | None = None,
    missing: Sequence[str] = (),
) -> dict[str, Any]:
    """The summary (JSON-safe dict) of a wall-clock benchmark from the raw tables; see the module docstring."""
    budgets = [float(b) for b in settings.get("budgets", [])]
    peers = [p for p in settings.get("peers", []) if p in PEERS]
    seeds = [int(s) for s in settings.get("seeds", sorted(cells["seed"].unique()))]
    ds = datasets[datasets["status"] == "ok"]
    if keys is not None:
        ds = ds[ds["key"].isin(list(keys))]
    ds = ds.sort_values("key", kind="stable")
    keys = list(ds["key"])
    info = {r["key"]: r for r in ds.to_dict("records")}
    cells = cells[cells["dataset"].isin(keys) & cells["seed"].isin(seeds)]
    rows = {(r["dataset"], r["strategy"], int(r["seed"])): r for r in cells.to_dict("records")}
    kinds = sorted({str(info[k]["kind"]) for k in keys})
    extras = [s for s in NO_BUDGET if any(split_strategy(st)[0] == s for st in cells["strategy"])]

    def score(key: str, strat: str, seed: int, metric: str | None = None) -> float:
        r = rows.get((key, strat, seed))
        if r is None or r["status"] != "done":
            return math.nan
        if metric is None:
            return float(r["test_score"])
        try:
            v = json.loads(r["test_metrics"] or "{}").get(metric)
        except (TypeError, ValueError):
            v = None
        return math.nan if v is None else float(v)

    def has(key: str, strat: str) -> bool:
        return any((key, strat, sd) in rows for sd in seeds)

    def per_dataset(strats: dict[str, str]) -> list[dict[str, Any]]:
        """strats: column name -> stored strategy."""
        out = []
        for key in keys:
            r = info[key]
            extra = EXTRA_METRIC.get(str(r["kind"]))
            present = {name: st for name, st in strats.items() if has(key, st)}
            out.append(
                {
                    "dataset": key,
                    "kind": r["kind"],
                    "metric": r["metric"],
                    "greater_is_better": bool(r["greater_is_better"]),
                    "n_rows_used": int(r["n_rows_used"]),
                    "n_features": int(r["n_features"]),
                    "n_excluded": int(r["n_excluded"]) if r.get("n_excluded") is not None else 0,
                    "test": {n: _mean([score(key, st, sd) for sd in seeds]) for n, st in present.items()},
                    "extra_metric": extra,
                    "extra": (
                        {n: _mean([score(key, st, sd, extra) for sd in seeds]) for n, st in present.items()}
                        if extra
                        else {}
                    ),
                }
            )
        return out

    def per_kind(table: list[dict[str, Any]], names: list[str], versus: tuple[str, list[str]] | None,
                 strats: dict[str, str]) -> dict[str, Any]:  # fmt: skip
        out: dict[str, Any] = {}
        for kind in kinds:
            sel = [d for d in table if d["kind"] == kind]
            shown = [n for n in names if any(n in d["test"] for d in sel)]
            common = common_datasets(sel, "test", shown)
            block: dict[str, Any] = {
                "metrics": sorted({d["metric"] for d in sel}),
                "n_datasets": len(sel),
                "n_common": len(common),
                "common": [d["dataset"] for d in common],
                "mean": {n: _mean([d["test"][n] for d in common]) for n in shown},
                "n": {n: sum(1 for d in sel if math.isfinite(d["test"].get(n, math.nan))) for n in shown},
            }
            extra = EXTRA_METRIC.get(kind)
            if extra:
                common_extra = common_datasets(sel, "extra", shown)
                block["extra_metric"] = extra
                block["n_common_extra"] = len(common_extra)
                block["extra_mean"] = {n: _mean([d["extra"][n] for d in common_extra]) for n in shown}
            if versus is not None:
                block["win_rate"] = win_rates(sel, versus[0], versus[1], strats)
            out[kind] = block
        return out

    def common_datasets(sel: list[dict[str, Any]], field: str, shown: list[str]) -> list[dict[str, Any]]:
        """The datasets of ``sel`` where every system of ``shown`` that has a score on any of them has
        one (a system without any score, e.g. one that cannot handle the kind, does not count)."""
        scored = [n for n in shown if any(math.isfinite(d[field].get(n, math.nan)) for d in sel)]
        return [d for d in sel if all(math.isfinite(d[field].get(n, math.nan)) for n in scored)]

    def win_rates(
        table: list[dict[str, Any]], me: str, others: list[str], strats: dict[str, str]
    ) -> dict[str, Any]:
        """``me`` against each of ``others`` over the (dataset, seed) instances where both ran."""
        wins: dict[str, Any] = {}
        for other in others:
            w, n = 0.0, 0
            for d in table:
                if not (has(d["dataset"], strats[other]) and has(d["dataset"], strats[me])):
                    continue  # the peer does not run on this kind (or neither system ran here yet)
                for sd in seeds:
                    a, b = score(d["dataset"], strats[me], sd), score(d["dataset"], strats[other], sd)
                    w += win_share(a, b, d["greater_is_better"])
                    n += 1
            if n:
                wins[other] = {"wins": w, "n": n, "rate": w / n}
        return wins

    def time_used(strats: dict[str, str], budget: float | None) -> dict[str, Any]:
        out = {}
        for name, st in strats.items():
            sel = cells[(cells["strategy"] == st) & (cells["status"] == "done")]
            if not len(sel):
                continue
            secs = sel["search_seconds"].to_numpy(dtype=float)
            entry = {
                "cells": len(sel),
                "mean_seconds": float(secs.mean()),
                "max_seconds": float(secs.max()),
                "mean_trials": float(sel["n_trials"].astype(float).mean()),
            }
            if budget is not None and split_strategy(st)[1] is not None:
                entry["mean_ratio"] = float(secs.mean() / budget)
                entry["max_ratio"] = float(secs.max() / budget)
            out[name] = entry
        return out

    def calibration(st: str) -> dict[str, Any]:
        """The product's temperature-scaled cells of strategy ``st``: the test score with and without it."""
        out: list[dict[str, Any]] = []
        for key in keys:
            for sd in seeds:
                r = rows.get((key, st, sd))
                if r is None or r["status"] != "done":
                    continue
                inc = r.get("incumbent")
                inc = json.loads(inc) if isinstance(inc, str) and inc else inc
                cal = (inc.get("calibration") if isinstance(inc, dict) else None) or {}  # ("null": none)
                if cal.get("used") and cal.get("test_score_unscaled") is not None:
                    out.append({"dataset": key, "seed": sd, "temperature": float(cal["temperature"]),
                                "unscaled": float(cal["test_score_unscaled"]), "scaled": float(r["test_score"]),
                                "greater_is_better": bool(info[key]["greater_is_better"])})
        verdicts = [win_share(round(c["scaled"], 4), round(c["unscaled"], 4), c["greater_is_better"]) for c in out]
        return {"n": len(out), "better": verdicts.count(1.0), "equal": verdicts.count(0.5),
                "worse": verdicts.count(0.0), "mean_unscaled": _mean([c["unscaled"] for c in out]),
                "mean_scaled": _mean([c["scaled"] for c in out]), "cells": out}

    per_budget: dict[str, Any] = {}
    for b in budgets:
        systems = [PRODUCT, *peers, *([RF_BASELINE] if RF_BASELINE in extras else [])]
        strats = {s: budget_strategy(s, None if s == RF_BASELINE else b) for s in systems}
        strats.update({s: s for s in extras if s != RF_BASELINE})
        names = list(strats)
        table = per_dataset(strats)
        opponents = [s for s in systems if s != PRODUCT]
        per_budget[f"{b:g}"] = {
            "budget": b,
            "systems": names,
            "per_dataset": table,
            "per_kind": per_kind(table, names, (PRODUCT, opponents), strats),
            "overall_win_rate": win_rates(table, PRODUCT, opponents, strats),
            "time": time_used(strats, b),
            "calibration": calibration(strats[PRODUCT]),
        }

    zero: dict[str, Any] = {}
    zs = {s: s for s in (TOP1, FLAML_ZEROSHOT) if s in extras}
    if zs:
        table = per_dataset(zs)
        versus = (TOP1, [FLAML_ZEROSHOT]) if len(zs) == 2 else None
        zero = {"systems": list(zs), "per_dataset": table, "per_kind": per_kind(table, list(zs), versus, zs),
                "time": time_used(zs, None)}  # fmt: skip

    failures, failed_datasets = failure_lists(datasets, cells)
    summary = {
        "mode": "wall-clock",
        "settings": settings,
        "budgets": budgets,
        "peers": peers,
        "seeds": seeds,
        "n_datasets": len(keys),
        "kinds": {k: int(sum(1 for d in keys if info[d]["kind"] == k)) for k in kinds},
        "per_budget": per_budget,
        "zero_shot": zero,
        "failures": failures,
        "failed_datasets": failed_datasets,
        "missing": list(missing),
    }
    return json_safe(summary)


# ------------------------------------------------------------------------------------------ rendering
def _rate(w: dict[str, Any] | None) -> str:
    if not w:
        return "-"
    return f"{w['rate'] * 100:.0f} % ({w['wins']:g}/{w['n']})"


def _common(n_common: int | None, n_datasets: int) -> str:
    """``common / all`` datasets of a kind (all alone for a summary written before ``n_common`` existed)."""
    return str(n_datasets) if n_common is None else f"{n_common} / {n_datasets}"


def _score_sections(block: dict[str, Any], kinds: list[str], with_wins: bool) -> list[str]:
    names = block["systems"]
    lines = ["#### Mean test score per kind", ""]
    rows = []
    for kind in kinds:
        k = block["per_kind"].get(kind, {})
        rows.append([kind, ", ".join(k.get("metrics", [])), _common(k.get("n_common"), k.get("n_datasets", 0)),
                     *[format_cell(k.get("mean", {}).get(n), 4) for n in names]])  # fmt: skip
        if k.get("extra_metric"):
            rows.append([kind, k["extra_metric"], _common(k.get("n_common_extra"), k.get("n_datasets", 0)),
                         *[format_cell(k.get("extra_mean", {}).get(n), 4) for n in names]])  # fmt: skip
    lines += ["Means over the datasets where every system of the row has a score (datasets: common / all).", ""]
    lines += markdown_table(["kind", "metric", "datasets", *names], rows)
    opponents = sorted({o for k in block["per_kind"].values() for o in k.get("win_rate", {})},
                       key=lambda o: names.index(o) if o in names else 99)  # fmt: skip
    if with_wins and opponents:
        me = names[0]
        lines += ["", f"#### Win rate of {me} (test score; ties count one half)", ""]
        rows = [[kind, *[_rate(block["per_kind"].get(kind, {}).get("win_rate", {}).get(o)) for o in opponents]]
                for kind in kinds]  # fmt: skip
        if "overall_win_rate" in block:
            rows.append(["all", *[_rate(block["overall_win_rate"].get(o)) for o in opponents]])
        lines += markdown_table(["kind", *[f"vs {o}" for o in opponents]], rows)
    lines += ["", "#### Time used (start of the call until the final model is ready)", ""]
    rows = [[n, format_cell(t.get("mean_ratio"), 2), format_cell(t.get("max_ratio"), 2), format_cell(t["mean_seconds"], 1),
             format_cell(t["max_seconds"], 1), format_cell(t["mean_trials"], 1), str(t["cells"])]
            for n, t in block["time"].items()]  # fmt: skip
    lines += markdown_table(["system", "mean used/budget", "max used/budget", "mean s", "max s", "models/trials", "cells"],
                    rows)  # fmt: skip
    cal = block.get("calibration") or {}
    if cal.get("n"):
        lines += ["", "#### Calibration (the product's temperature-scaled models, test score without and with it)", "",
                  f"Scaled {cal['n']} models: better on {cal['better']}, equal on {cal['equal']}, worse on "
                  f"{cal['worse']}; mean {format_cell(cal['mean_unscaled'], 4)} -> {format_cell(cal['mean_scaled'], 4)}.", ""]
        lines += markdown_table(["dataset", "seed", "temperature", "unscaled", "scaled"],
                        [[c["dataset"], str(c["seed"]), format_cell(c["temperature"], 3), format_cell(c["unscaled"], 4),
                          format_cell(c["scaled"], 4)] for c in cal["cells"]])
    lines += ["", "#### Per dataset (test score, mean over seeds)", ""]
    rows = [[d["dataset"], d["kind"], d["metric"], str(d["n_rows_used"]), *[format_cell(d["test"].get(n), 4) for n in names]]
            for d in block["per_dataset"]]  # fmt: skip
    lines += markdown_table(["dataset", "kind", "metric", "rows", *names], rows)
    extra = [d for d in block["per_dataset"] if d.get("extra_metric")]
    if extra:
        lines += ["", "Regression R² on the test part:", ""]
        rows = [[d["dataset"], *[format_cell(d["extra"].get(n), 4) for n in names]] for d in extra]
        lines += markdown_table(["dataset", *names], rows)
    return lines


def render_peer_markdown(summary: dict[str, Any], plots: list[str] | None = None) -> str:
    """The Markdown report of a wall-clock benchmark summary (``plots``: relative PNG paths)."""
    s = summary
    st = s.get("settings", {})
    kinds = list(s["kinds"])
    lines = ["# Wall-clock benchmark: the product and its peers", ""]
    lines.append(
        f"{s['n_datasets']} held-out datasets ({', '.join(f'{k}: {v}' for k, v in s['kinds'].items()) or 'none'}), "
        f"budgets {', '.join(f'{b:g} s' for b in s['budgets'])}, peers {', '.join(s['peers']) or 'none'}, "
        f"seeds {', '.join(map(str, s['seeds']))}. Every system fits the same training part "
        f"({1 - float(st.get('test_size', 0.25)):.0%}, split seed {st.get('split_seed')}, max rows "
        f"{st.get('max_rows')}) on one core and is scored on the test part. The product's KB excludes "
        "the dataset and its near-duplicates. Multi-output kinds: the product against a default "
        "random forest (rf), which the peers do not handle."
    )
    for key, block in s["per_budget"].items():
        lines += ["", f"## Budget {key} s", ""]
        lines += _score_sections(block, kinds, with_wins=True)
    if s.get("zero_shot"):
        lines += ["", "## Zero-shot: the top-1 recommendation alone vs FLAML's zero-shot LightGBM", "",
                  "One fit on the training part each, no search (no budget)."]  # fmt: skip
        lines += ["", *_score_sections(s["zero_shot"], kinds, with_wins=True)]
    lines += failure_lines(s)
    if plots:
        lines += ["", "## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in plots]
    lines += ["", "## Definitions", "", (__doc__ or "").split("Definitions, per budget:")[-1].strip()]
    return "\n".join(lines) + "\n"


def write_peer_plots(out_dir: str | Path, summary: dict[str, Any]) -> list[str]:
    """``plots/peers.png``: per budget, the product's win rate vs each opponent per kind, and time used /
    budget (mean, with the max as a marker) per system; returns the relative paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    blocks = summary.get("per_budget", {})
    if not blocks:
        return []
    out = Path(out_dir) / "plots"
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(len(blocks), 2, figsize=(11, 3.8 * len(blocks)), dpi=100, squeeze=False)
    kinds = list(summary["kinds"])
    for row, (key, block) in enumerate(blocks.items()):
        ax = axes[row][0]
        opponents = [n for n in block["systems"] if n != PRODUCT and n not in (TOP1, FLAML_ZEROSHOT)]
        width = 0.8 / max(1, len(opponents))
        x = np.arange(len(kinds) + 1)
        for i, o in enumerate(opponents):
            vals = [block["per_kind"].get(k, {}).get("win_rate", {}).get(o, {}).get("rate") for k in kinds]
            vals.append(block.get("overall_win_rate", {}).get(o, {}).get("rate"))
            ax.bar(x + i * width, [np.nan if v is None else v for v in vals], width, label=f"vs {o}")
        ax.axhline(0.5, color="grey", linewidth=0.8, linestyle="--")
        ax.set_xticks(x + width * (len(opponents) - 1) / 2, [*kinds, "all"], fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_ylabel("product win rate")
        ax.set_title(f"budget {key} s: product win rate (test score)")
        ax.legend(fontsize=8)
        ax = axes[row][1]
        timed = [(n, t) for n, t in block["time"].items() if t.get("mean_ratio") is not None]
        if timed:
            xs = np.arange(len(timed))
            ax.bar(xs, [t["mean_ratio"] for _, t in timed], 0.6, label="mean")
            ax.scatter(xs, [t["max_ratio"] for _, t in timed], color="black", marker="_", s=300, label="max")
            ax.axhline(1.0, color="red", linewidth=0.8, linestyle="--")
            ax.set_xticks(xs, [n for n, _ in timed], fontsize=8)
            ax.legend(fontsize=8)
        ax.set_ylabel("time used / budget")
        ax.set_title(f"budget {key} s: time used / budget")
    fig.tight_layout()
    path = out / "peers.png"
    fig.savefig(path)
    plt.close(fig)
    return [f"plots/{path.name}"]


def write_peer_report(out_dir: str | Path, summary: dict[str, Any]) -> Path:
    """Write ``summary.json``, ``plots/peers.png`` and ``report.md`` into ``out_dir``; returns the report path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True))
    plots = write_peer_plots(out, summary)
    path = out / "report.md"
    path.write_text(render_peer_markdown(summary, plots))
    return path
