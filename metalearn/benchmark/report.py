"""Benchmark summary (HPO-B / AMLB style metrics), Markdown report and matplotlib plots.

Everything here is computed from the raw stored tables of a benchmark (see :mod:`metalearn.benchmark.store`):
``datasets`` (one row per dataset), ``cells`` (one per dataset x strategy x seed) and ``trials`` (one per
trial of a cell: the best CV score so far and the wall-clock time since the cell's search started).

Definitions (per dataset, over every trial any trajectory strategy observed on it, all seeds — the
outer split and the CV folds are the same for all of them):

* **normalised regret** after ``t`` trials: ``(best - incumbent_t) / (best - worst)`` clipped to [0, 1],
  where best/worst are the best and worst CV scores observed on the dataset; 1 before the first
  successful trial and for a failed cell; a cell that stopped early keeps its last incumbent.
* **average rank** after ``t`` trials: strategies ranked by regret within each (dataset, seed)
  instance (1 = best, ties share the mean rank), averaged over instances.
* **time to 1 %**: the wall-clock seconds (and trials) until the incumbent's normalised regret is at
  most 0.01, i.e. within 1 % (of the observed score range) of the best score seen on the dataset;
  cells that never get there count in the "reached" fraction only.
* **test rank**: strategies ranked by the test score of their incumbent refit on the training part
  (a failed cell or a missing test score ranks last).

Means come with 95 % confidence intervals (Student t) over the (dataset, seed) instances. FLAML has
no comparable trajectory (its own folds and metric implementation), so it enters the test-score
tables only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from metalearn.data.numbers import json_safe

__all__ = [
    "BUDGETS",
    "compare_summaries",
    "compute_summary",
    "format_cell",
    "markdown_table",
    "mean_ci",
    "regret_curve",
    "render_markdown",
    "write_plots",
    "write_report",
]

BUDGETS: tuple[int, ...] = (1, 5, 10, 25, 50)
REACH_REGRET = 0.01
NO_TRAJECTORY = ("flaml",)


# ------------------------------------------------------------------------------------------ math
def mean_ci(values: Sequence[float] | np.ndarray) -> tuple[float, float, int]:
    """``(mean, half width of the 95 % Student-t confidence interval, n)``; NaN values are dropped."""
    from scipy import stats

    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    n = int(arr.size)
    if n == 0:
        return math.nan, math.nan, 0
    mean = float(arr.mean())
    if n < 2:
        return mean, math.nan, n
    sd = float(arr.std(ddof=1))
    return mean, float(stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)), n


def _bounds(scores: np.ndarray, greater: bool) -> tuple[float, float]:
    s = scores[np.isfinite(scores)]
    if s.size == 0:
        return math.nan, math.nan
    return (float(s.max()), float(s.min())) if greater else (float(s.min()), float(s.max()))


def regret_curve(best_scores: Sequence[float], best: float, worst: float, n_trials: int) -> np.ndarray:
    """Normalised regret after each of ``n_trials`` trials from a cell's best-so-far scores.

    Missing trials (the cell stopped early) repeat the last value; NaN (nothing succeeded yet) is 1.
    """
    from metalearn.data.metrics import normalised_regret

    traj = np.asarray(best_scores, dtype=float)[:n_trials]
    if traj.size == 0:
        return np.ones(n_trials)
    if traj.size < n_trials:
        traj = np.concatenate([traj, np.full(n_trials - traj.size, traj[-1])])
    if not (math.isfinite(best) and math.isfinite(worst)):
        return np.ones(n_trials)
    return np.asarray(normalised_regret(traj, best, worst), dtype=float)


def _stat(values: Sequence[float] | np.ndarray) -> dict[str, Any]:
    m, ci, n = mean_ci(values)
    return {"mean": m, "ci": ci, "n": n}


def _json_list(text: Any) -> list[Any]:
    if text is None or text is pd.NA:
        return []
    try:
        v = json.loads(text)
    except (TypeError, ValueError):
        return []
    return v if isinstance(v, list) else []


# ------------------------------------------------------------------------------------------ summary
def compute_summary(
    datasets: pd.DataFrame,
    cells: pd.DataFrame,
    trials: pd.DataFrame,
    settings: dict[str, Any],
    *,
    keys: Sequence[str] | None = None,
    missing: Sequence[str] = (),
    budgets: Sequence[int] = BUDGETS,
) -> dict[str, Any]:
    """The benchmark summary (JSON-safe dict) from the raw tables; see the module docstring.

    ``keys`` restricts to those datasets (default: every dataset whose status is ok); only the
    strategies and seeds of ``settings`` count.
    """
    strategies = [str(s) for s in settings.get("strategies", sorted(cells["strategy"].unique()))]
    seeds = [int(s) for s in settings.get("seeds", sorted(cells["seed"].unique()))]
    n_trials = int(settings.get("n_trials", int(trials["number"].max()) if len(trials) else 1))
    buds = sorted({int(b) for b in budgets if b <= n_trials} | {n_trials})  # the final budget always (3 trials: 1, 3)
    ds = datasets[datasets["status"] == "ok"]
    if keys is not None:
        ds = ds[ds["key"].isin(list(keys))]
    ds = ds.sort_values("key", kind="stable")
    keys = list(ds["key"])
    cells = cells[
        cells["dataset"].isin(keys) & cells["strategy"].isin(strategies) & cells["seed"].isin(seeds)
    ]
    trials = trials[
        trials["dataset"].isin(keys) & trials["strategy"].isin(strategies) & trials["seed"].isin(seeds)
    ]
    traj_strats = [s for s in strategies if s not in NO_TRAJECTORY]
    info = {r["key"]: r for r in ds.to_dict("records")}

    # per-dataset bounds over every trial of every trajectory strategy and seed
    bounds: dict[str, tuple[float, float]] = {}
    ok_trials = trials[(trials["status"] == "ok") & trials["strategy"].isin(traj_strats)]
    for key in keys:
        sc = ok_trials.loc[ok_trials["dataset"] == key, "score"].to_numpy(dtype=float)
        bounds[key] = _bounds(sc, bool(info[key]["greater_is_better"]))

    traj_of: dict[tuple[str, str, int], pd.DataFrame] = {
        (str(k[0]), str(k[1]), int(k[2])): g.sort_values("number")
        for k, g in trials.groupby(["dataset", "strategy", "seed"], sort=True)
    }
    cell_rows = {(r["dataset"], r["strategy"], int(r["seed"])): r for r in cells.to_dict("records")}

    # regret curves per instance (dataset, seed) and strategy
    curves: dict[tuple[str, int], dict[str, np.ndarray]] = {}
    reach: dict[str, list[tuple[bool, float, float]]] = {s: [] for s in traj_strats}
    for key in keys:
        best, worst = bounds[key]
        for seed in seeds:
            per: dict[str, np.ndarray] = {}
            for strat in traj_strats:
                cell = cell_rows.get((key, strat, seed))
                if cell is None:
                    continue
                g = traj_of.get((key, strat, seed))
                scores = [] if g is None else g["best_score"].to_numpy(dtype=float)
                curve = regret_curve(scores, best, worst, n_trials)
                per[strat] = curve
                hit = np.flatnonzero(curve <= REACH_REGRET)
                if len(hit) and g is not None and hit[0] < len(g):
                    i = int(hit[0])
                    reach[strat].append((True, float(g["elapsed"].to_numpy(dtype=float)[i]), float(i + 1)))
                else:
                    reach[strat].append((False, math.nan, math.nan))
            if per:
                curves[(key, seed)] = per

    ranks: dict[tuple[str, int], dict[str, np.ndarray]] = {}
    for inst, per in curves.items():
        names = list(per)
        mat = np.vstack([per[s] for s in names])  # strategies x trials
        r = pd.DataFrame(mat).rank(axis=0, method="average").to_numpy()
        ranks[inst] = {s: r[i] for i, s in enumerate(names)}

    kinds = sorted({str(info[k]["kind"]) for k in keys})

    def aggregate(which: dict[tuple[str, int], dict[str, np.ndarray]], kind: str | None) -> dict[str, Any]:
        table: dict[str, Any] = {}
        curve_out: dict[str, Any] = {}
        for strat in traj_strats:
            rows = [
                per[strat]
                for (key, _), per in which.items()
                if strat in per and (kind is None or info[key]["kind"] == kind)
            ]
            if not rows:
                continue
            mat = np.vstack(rows)
            table[strat] = {str(b): _stat(mat[:, b - 1]) for b in buds}
            stats_t = [mean_ci(mat[:, t]) for t in range(n_trials)]
            curve_out[strat] = {
                "mean": [s[0] for s in stats_t],
                "ci": [s[1] for s in stats_t],
                "n": len(rows),
            }
        return {"table": table, "curve": curve_out}

    regret = {"overall": aggregate(curves, None), **{k: aggregate(curves, k) for k in kinds}}
    rank = {"overall": aggregate(ranks, None), **{k: aggregate(ranks, k) for k in kinds}}

    time_to = {}
    for strat, rows in reach.items():
        if not rows:
            continue
        reached = [r for r in rows if r[0]]
        time_to[strat] = {
            "reached": len(reached) / len(rows),
            "n": len(rows),
            "seconds": _stat([r[1] for r in reached]),
            "trials": _stat([r[2] for r in reached]),
        }

    # final test scores: rank within each instance among every strategy with a cell
    test_ranks: dict[str, list[float]] = {s: [] for s in strategies}
    for key in keys:
        greater = bool(info[key]["greater_is_better"])
        for seed in seeds:
            present = [s for s in strategies if (key, s, seed) in cell_rows]
            if not present:
                continue
            vals = []
            for s in present:
                c = cell_rows[(key, s, seed)]
                v = float(c["test_score"]) if c["status"] == "done" else math.nan
                vals.append(v if math.isfinite(v) else math.nan)
            arr = np.asarray(vals, dtype=float)
            signed = -arr if greater else arr
            signed = np.where(np.isnan(signed), np.inf, signed)
            r = pd.Series(signed).rank(method="average").to_numpy()
            for s, rk in zip(present, r, strict=True):
                test_ranks[s].append(float(rk))
    test = {}
    for s in strategies:
        sel = cells[cells["strategy"] == s]
        test[s] = {
            "rank": _stat(test_ranks[s]),
            "cells": len(sel),
            "failed": int((sel["status"] == "failed").sum()),
            "mean_trials": float(sel["n_trials"].astype(float).mean()) if len(sel) else math.nan,
            "mean_search_seconds": float(sel["search_seconds"].mean()) if len(sel) else math.nan,
            "mean_recommended": float(sel["n_recommended"].astype(float).mean()) if len(sel) else math.nan,
        }

    per_dataset = []
    for key in keys:
        r = info[key]
        sel = cells[cells["dataset"] == key]
        excluded = _json_list(r.get("excluded"))
        per_dataset.append(
            {
                "dataset": key,
                "name": r["name"],
                "kind": r["kind"],
                "metric": r["metric"],
                "greater_is_better": bool(r["greater_is_better"]),
                "n_rows": int(r["n_rows"]),
                "n_rows_used": int(r["n_rows_used"]),
                "n_features": int(r["n_features"]),
                "n_train": int(r["n_train"]),
                "n_test": int(r["n_test"]),
                "n_excluded": len(excluded),
                "excluded": [f"{e.get('name')} ({e.get('reason')})" for e in excluded],
                "best_cv": bounds[key][0],
                "worst_cv": bounds[key][1],
                "test": {
                    s: float(sel.loc[(sel["strategy"] == s) & (sel["status"] == "done"), "test_score"].mean())
                    for s in strategies
                    if (sel["strategy"] == s).any()
                },
                "regret_at": {
                    s: {
                        str(b): float(
                            np.mean(
                                [
                                    curves[(key, sd)][s][b - 1]
                                    for sd in seeds
                                    if (key, sd) in curves and s in curves[(key, sd)]
                                ]
                            )
                        )
                        for b in buds
                    }
                    for s in traj_strats
                    if any((key, sd) in curves and s in curves[(key, sd)] for sd in seeds)
                },
            }
        )

    failures, failed_datasets = failure_lists(datasets, cells)
    summary = {
        "settings": settings,
        "strategies": strategies,
        "trajectory_strategies": traj_strats,
        "seeds": seeds,
        "n_trials": n_trials,
        "budgets": buds,
        "n_datasets": len(keys),
        "n_instances": len(curves),
        "kinds": {k: int(sum(1 for d in keys if info[d]["kind"] == k)) for k in kinds},
        "regret": regret,
        "rank": rank,
        "time_to_1pct": time_to,
        "test": test,
        "per_dataset": per_dataset,
        "failures": failures,
        "failed_datasets": failed_datasets,
        "missing": list(missing),
    }
    return json_safe(summary)


#: the settings two benchmark runs must share for their CV scores to be compared (same rows, folds, split, seeds)
_COMPARABLE = ("max_rows", "n_folds", "split_seed", "seeds", "test_size")


def compare_summaries(
    reference: dict[str, Any], summary: dict[str, Any], strategy: str = "warm"
) -> dict[str, Any]:
    """``strategy``'s normalised regret in two benchmark runs (``reference``, ``summary``: their
    ``summary.json``) on **one** scale per dataset, after each budget both report.

    Each run normalises by the best and worst CV score *it* observed, so a run whose space held a
    diverging configuration (a regression RMSE of 10⁹) puts every other score at a regret of ~0, and two
    runs' regrets are not comparable. Here, per dataset both runs share: best = the better of the two
    runs' best CV scores, worst = the *less extreme* of their worst ones (widened to hold both
    incumbents), so one outlier does not flatten the scale. The incumbents' CV scores are recovered from
    each run's regret and bounds (a linear map, so a mean over seeds carries over). Only datasets in both
    runs count; the runs must share :data:`_COMPARABLE` settings (else :class:`InputError`).

    Returns ``{"n_datasets", "budgets": {t: {"reference", "current", "better", "equal", "worse"}}}``
    (``better``: datasets where ``summary``'s incumbent CV score is better).
    """
    from metalearn.data.errors import InputError
    from metalearn.data.metrics import normalised_regret

    a, b = reference.get("settings", {}), summary.get("settings", {})
    differ = [k for k in _COMPARABLE if a.get(k) != b.get(k)]
    if differ:
        raise InputError(
            "the two benchmark runs evaluated differently ("
            + ", ".join(f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in differ)
            + "): compare runs made with the same --max-rows, --folds, split and seeds"
        )
    ref = {d["dataset"]: d for d in reference.get("per_dataset", [])}
    cur = {d["dataset"]: d for d in summary.get("per_dataset", [])}
    names = sorted(n for n in set(ref) & set(cur) if strategy in ref[n]["regret_at"] and strategy in cur[n]["regret_at"])
    if not names:
        raise InputError(f"no dataset has {strategy!r} cells in both benchmark runs: nothing to compare")
    other_metric = [n for n in names if ref[n].get("metric") != cur[n].get("metric")]
    if other_metric:
        raise InputError(
            f"the two benchmark runs score {', '.join(other_metric)} with different metrics: compare runs of "
            "the same task metric"
        )
    budgets = sorted(
        {int(t) for n in names for t in ref[n]["regret_at"][strategy]}
        & {int(t) for n in names for t in cur[n]["regret_at"][strategy]}
    )

    def incumbent(d: dict[str, Any], t: int) -> float:
        sign = 1.0 if d["greater_is_better"] else -1.0
        best, worst = sign * float(d["best_cv"]), sign * float(d["worst_cv"])
        return best - float(d["regret_at"][strategy][str(t)]) * (best - worst)  # signed: higher is better

    out: dict[str, Any] = {"n_datasets": len(names), "budgets": {}}
    for t in budgets:
        regrets: dict[str, list[float]] = {"reference": [], "current": []}
        counts = {"better": 0, "equal": 0, "worse": 0}
        for n in names:
            x, y = ref[n], cur[n]
            if str(t) not in x["regret_at"][strategy] or str(t) not in y["regret_at"][strategy]:
                continue
            sign = 1.0 if y["greater_is_better"] else -1.0
            sx, sy = incumbent(x, t), incumbent(y, t)
            best = max(sign * float(x["best_cv"]), sign * float(y["best_cv"]), sx, sy)
            worst = min(max(sign * float(x["worst_cv"]), sign * float(y["worst_cv"])), sx, sy)
            rx, ry = normalised_regret([sx, sy], best, worst)
            regrets["reference"].append(float(rx))
            regrets["current"].append(float(ry))
            counts["better" if sy > sx + 1e-12 else "worse" if sy < sx - 1e-12 else "equal"] += 1
        out["budgets"][t] = {
            "reference": float(np.mean(regrets["reference"])),
            "current": float(np.mean(regrets["current"])),
            **counts,
        }
    return out


def failure_lists(
    datasets: pd.DataFrame, cells: pd.DataFrame
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The failed cells and the datasets that failed to load, as the summary lists them."""
    failures = [
        {"dataset": r["dataset"], "strategy": r["strategy"], "seed": int(r["seed"]), "error": r["error"]}
        for r in cells.to_dict("records")
        if r["status"] == "failed"
    ]
    failed_datasets = [
        {"dataset": r["key"], "error": r["error"]}
        for r in datasets.to_dict("records")
        if r["status"] == "failed"
    ]
    return failures, failed_datasets


def failure_lines(summary: dict[str, Any]) -> list[str]:
    """The report's "Failures" section (nothing when nothing failed)."""
    if not (summary["failures"] or summary["failed_datasets"]):
        return []
    lines = ["", "## Failures", ""]
    for f in summary["failed_datasets"]:
        lines.append(f"- dataset {f['dataset']}: {f['error']}")
    for f in summary["failures"]:
        lines.append(f"- {f['dataset']} / {f['strategy']} / seed {f['seed']}: {f['error']}")
    return lines


# ------------------------------------------------------------------------------------------ rendering
def format_cell(x: Any, digits: int = 3) -> str:
    """A value for a Markdown report's table cell: a float with ``digits`` decimals, ``-`` for None, NaN or infinity,
    anything else as its text."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _secs(x: Any) -> str:
    return "none" if x is None else f"{x:g} s"


def _mci(stat: dict[str, Any] | None, digits: int = 3) -> str:
    if not stat or stat.get("mean") is None:
        return "-"
    ci = stat.get("ci")
    return f"{format_cell(stat['mean'], digits)} ± {format_cell(ci, digits)}" if ci is not None else format_cell(stat["mean"], digits)


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """The lines of a Markdown table of ``header`` and ``rows`` (cells already text)."""
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _budget_table(block: dict[str, Any], budgets: list[int], digits: int = 3) -> list[str]:
    table = block.get("table", {})
    rows = [
        [
            s,
            *[_mci(table[s].get(str(b)), digits) for b in budgets],
            str(max((table[s].get(str(b), {}).get("n") or 0) for b in budgets)),
        ]
        for s in table
    ]
    return markdown_table(["strategy", *[f"{b} trials" for b in budgets], "n"], rows)


def render_markdown(summary: dict[str, Any], plots: dict[str, list[str]] | None = None) -> str:
    """The Markdown report of a summary (``plots``: scope -> relative PNG paths)."""
    s = summary
    st = s.get("settings", {})
    budgets = list(s["budgets"])
    lines = ["# Warm-start benchmark", ""]
    lines.append(
        f"{s['n_datasets']} datasets ({', '.join(f'{k}: {v}' for k, v in s['kinds'].items()) or 'none'}), "
        f"strategies {', '.join(s['strategies'])}, seeds {', '.join(map(str, s['seeds']))}, "
        f"{s['n_trials']} trials per search; {s['n_instances']} (dataset, seed) instances with trajectories."
    )
    lines.append("")
    lines.append(
        f"Settings: max rows {st.get('max_rows')}, {st.get('n_folds')}-fold CV on the training part, "
        f"test fraction {st.get('test_size')} (split seed {st.get('split_seed')}), "
        f"trial time limit {_secs(st.get('trial_time_limit'))}, search time limit {_secs(st.get('time_limit'))}, "
        f"{st.get('n_warm')} warm-start configurations."
    )
    if s.get("missing"):
        lines += [
            "",
            f"Suite datasets not found and skipped ({len(s['missing'])}): "
            + ", ".join(s["missing"][:50])
            + (" ..." if len(s["missing"]) > 50 else ""),
        ]
    lines += ["", "## Mean normalised regret (95 % CI over datasets x seeds)", ""]
    lines += _budget_table(s["regret"]["overall"], budgets)
    lines += ["", "## Average rank (1 = best) by normalised regret", ""]
    lines += _budget_table(s["rank"]["overall"], budgets, digits=2)
    for kind in s["kinds"]:
        lines += ["", f"### {kind}: mean normalised regret", ""]
        lines += _budget_table(s["regret"].get(kind, {}), budgets)
        lines += ["", f"### {kind}: average rank", ""]
        lines += _budget_table(s["rank"].get(kind, {}), budgets, digits=2)
    lines += ["", "## Time to reach within 1 % of the best observed score", ""]
    rows = [
        [k, format_cell(v["reached"] * 100, 0) + " %", _mci(v["seconds"], 1), _mci(v["trials"], 1), str(v["n"])]
        for k, v in s["time_to_1pct"].items()
    ]
    lines += markdown_table(["strategy", "reached", "seconds (if reached)", "trials (if reached)", "cells"], rows)
    lines += ["", "## Final test score of the refit incumbent", ""]
    rows = [
        [
            k,
            _mci(v["rank"], 2),
            str(v["cells"]),
            str(v["failed"]),
            format_cell(v["mean_trials"], 1),
            format_cell(v["mean_search_seconds"], 1),
            format_cell(v["mean_recommended"], 1),
        ]
        for k, v in s["test"].items()
    ]
    lines += markdown_table(
        ["strategy", "mean test rank", "cells", "failed", "trials", "search s", "recommended"], rows
    )
    lines += [
        "",
        "## Per dataset",
        "",
        "Test score: mean over seeds of the task metric on the held-out part (direction per metric); "
        "excluded: KB datasets hidden from the recommenders (the dataset itself and near-duplicates).",
        "",
    ]
    strats = s["strategies"]
    rows = []
    for d in s["per_dataset"]:
        rows.append(
            [
                d["dataset"],
                d["kind"],
                d["metric"],
                f"{d['n_rows_used']}/{d['n_rows']}",
                str(d["n_excluded"]),
                format_cell(d["best_cv"], 4),
                *[format_cell(d["test"].get(k), 4) for k in strats],
            ]
        )
    lines += markdown_table(["dataset", "kind", "metric", "rows used", "excluded", "best CV", *strats], rows)
    excl = [d for d in s["per_dataset"] if d["excluded"]]
    if excl:
        lines += ["", "### Leakage exclusions", ""]
        for d in excl:
            lines.append(
                f"- {d['dataset']}: {d['n_excluded']} excluded — "
                + ", ".join(d["excluded"][:10])
                + (" ..." if len(d["excluded"]) > 10 else "")
            )
    lines += failure_lines(s)
    if plots:
        lines += ["", "## Plots", ""]
        for scope, files in plots.items():
            lines.append(f"- {scope}: " + ", ".join(f"![{Path(p).stem}]({p})" for p in files))
    lines += [
        "",
        "## Definitions",
        "",
        "Normalised regret after t trials: (best - incumbent) / (best - worst) over every CV score any "
        "strategy observed on the dataset (0 = the best seen, 1 = the worst; 1 before the first success). "
        "Ranks are within each (dataset, seed); time to 1 % is until normalised regret <= 0.01. "
        "FLAML has no comparable trajectory and appears in the test-score table only. "
        "All numbers are recomputed from results.duckdb by `recompute_report`.",
    ]
    return "\n".join(lines) + "\n"


def write_plots(out_dir: str | Path, summary: dict[str, Any]) -> dict[str, list[str]]:
    """PNG plots of mean normalised regret (with 95 % CI bands) and average rank vs trials, overall and per
    task kind, in ``out_dir/plots``; returns scope -> relative paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    out = Path(out_dir) / "plots"
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[str]] = {}
    for scope in ["overall", *summary["kinds"]]:
        files = []
        for what, label in (("regret", "mean normalised regret"), ("rank", "average rank")):
            curves = summary[what].get(scope, {}).get("curve", {})
            if not curves:
                continue
            fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
            for strat, c in curves.items():
                mean = np.asarray([np.nan if v is None else v for v in c["mean"]], dtype=float)
                ci = np.asarray([np.nan if v is None else v for v in c["ci"]], dtype=float)
                x = np.arange(1, len(mean) + 1)
                ax.plot(x, mean, label=f"{strat} (n={c['n']})", linewidth=1.6)
                if np.isfinite(ci).any():
                    lo, hi = mean - np.nan_to_num(ci), mean + np.nan_to_num(ci)
                    if what == "regret":
                        lo, hi = np.clip(lo, 0.0, 1.0), np.clip(hi, 0.0, 1.0)
                    ax.fill_between(x, lo, hi, alpha=0.15)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("trials")
            ax.set_ylabel(label)
            ax.set_title(f"{label} vs trials ({scope})")
            if what == "regret":
                ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
            fig.tight_layout()
            path = out / f"{what}_{scope}.png"
            fig.savefig(path)
            plt.close(fig)
            files.append(f"plots/{path.name}")
        if files:
            written[scope] = files
    return written


def write_report(out_dir: str | Path, summary: dict[str, Any]) -> Path:
    """Write ``summary.json``, the plots and ``report.md`` into ``out_dir``; returns the report path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True))
    plots = write_plots(out, summary)
    path = out / "report.md"
    path.write_text(render_markdown(summary, plots))
    return path
