"""The strategy benchmark on real corpus data: a small real KB built with metalearn.offline.build, then real
searches (warm / cold / flaml) on held-out datasets, the stored trajectories, the report, resume and
leakage exclusion; the regret / rank / time-to-1 % math against hand computations."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from metalearn.benchmark.cells import CellResult
from metalearn.benchmark.datasets import (
    DatasetInfo,
    leakage_exclusions,
    normalise_name,
    resolve_benchmark_sources,
)
from metalearn.benchmark.report import compare_summaries, compute_summary, mean_ci, regret_curve
from metalearn.benchmark.runner import recompute_report, run_benchmark
from metalearn.benchmark.settings import FLAML_HINT, BenchmarkSettings, parse_strategies
from metalearn.benchmark.store import ResultStore, cell_row, load_frames
from metalearn.data.errors import InputError
from metalearn.kb import open_kb
from metalearn.offline.build import BuildSettings, DatasetSource, build_kb

pytestmark = pytest.mark.corpus

KB_DATASETS = ["iris", "wine_recognition", "glass", "haberman", "heart_statlog", "prnn_crabs"]
HELD_OUT = ["biomed", "new_thyroid"]  # binary, multiclass: not in the KB
STRATEGIES = ("warm", "cold", "flaml")
N_TRIALS = 4


@pytest.fixture(scope="module")
def kb_path(corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real KB (6 corpus datasets, exploration + dense matrix) in a DuckDB file."""
    path = tmp_path_factory.mktemp("bench-kb") / "kb.duckdb"
    kb = open_kb(path)
    sources = [DatasetSource(f"corpus:{n}", str(corpus_dir)) for n in KB_DATASETS]
    report = build_kb(
        kb,
        sources,
        BuildSettings(
            n_configs=4, n_explore=2, max_rows=300, n_folds=3, trial_time_limit=None, memory_limit_mb=None
        ),
    )
    assert report.datasets == len(KB_DATASETS) and not report.skipped
    kb.close()
    return path


def _settings(**kw: object) -> BenchmarkSettings:
    base: dict[str, object] = dict(
        strategies=STRATEGIES, n_trials=N_TRIALS, max_rows=300, n_folds=3, trial_time_limit=None, n_warm=4
    )
    base.update(kw)
    return BenchmarkSettings(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def bench(kb_path: Path, corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """One benchmark run: two held-out datasets, haberman (which IS in the KB) and a dataset that cannot load.

    Not iris: FLAML's final CatBoost refit there never stops early (8192 rounds, 136 s on a 1 s budget),
    which made this fixture take 36-190 s depending on what FLAML's search reached in time."""
    out = tmp_path_factory.mktemp("bench-out")
    sources = [DatasetSource(f"corpus:{n}", str(corpus_dir)) for n in [*HELD_OUT, "haberman"]]
    sources.append(DatasetSource("corpus:no_such_dataset", str(corpus_dir)))
    kb = open_kb(kb_path, read_only=True)
    try:
        outcome = run_benchmark(sources, kb, out, _settings())
        kb_ids = {d.name: d.dataset_id for d in kb.list_datasets()}
    finally:
        kb.close()
    return {"out": out, "outcome": outcome, "sources": sources, "kb_ids": kb_ids}


# ------------------------------------------------------------------------------------------ end to end
def test_cells_trajectories_and_outputs(bench: dict) -> None:
    out: Path = bench["out"]
    outcome = bench["outcome"]
    frames = load_frames(out)
    cells, trials, datasets = frames["cells"], frames["trials"], frames["datasets"]
    keys = [*HELD_OUT, "haberman"]
    assert outcome.n_cells == len(keys) * len(STRATEGIES)
    assert outcome.n_run == outcome.n_cells
    assert sorted(cells["dataset"].unique()) == sorted(keys)
    assert len(cells) == len(keys) * len(STRATEGIES)
    for key in keys:
        d = datasets[datasets["key"] == key].iloc[0]
        assert d["status"] == "ok" and d["n_train"] + d["n_test"] == d["n_rows_used"] <= 300
        for strat in ("warm", "cold"):
            c = cells[(cells["dataset"] == key) & (cells["strategy"] == strat)].iloc[0]
            assert c["status"] == "done", c["error"]
            assert c["n_trials"] == N_TRIALS
            assert math.isfinite(c["test_score"]) and math.isfinite(c["best_cv_score"])
            t = trials[(trials["dataset"] == key) & (trials["strategy"] == strat)].sort_values("number")
            assert list(t["number"]) == list(range(1, N_TRIALS + 1))
            # best-so-far is monotone in the metric's direction and ends at the cell's best CV score
            best = t["best_score"].to_numpy()
            diffs = np.diff(best) if d["greater_is_better"] else -np.diff(best)
            assert (diffs >= -1e-12).all()
            assert best[-1] == pytest.approx(c["best_cv_score"])
            assert (np.diff(t["elapsed"].to_numpy()) > 0).all()
        warm = cells[(cells["dataset"] == key) & (cells["strategy"] == "warm")].iloc[0]
        assert warm["n_recommended"] >= 1  # the KB has binary and multiclass configurations
        origins = trials[(trials["dataset"] == key) & (trials["strategy"] == "warm")]["origin"]
        assert origins.iloc[0].startswith("recommendation:")
    # raw results as parquet too
    for table in ("datasets", "cells", "trials"):
        assert pd.read_parquet(out / f"{table}.parquet").shape[0] == len(frames[table])


def test_failures_are_recorded_and_the_rest_continue(bench: dict) -> None:
    outcome = bench["outcome"]
    frames = load_frames(bench["out"])
    datasets, cells = frames["datasets"], frames["cells"]
    bad = datasets[datasets["key"] == "no_such_dataset"].iloc[0]
    assert bad["status"] == "failed" and "no_such_dataset" in bad["error"]
    assert [k for k, _ in outcome.failed_datasets] == ["no_such_dataset"]
    flaml = cells[cells["strategy"] == "flaml"]
    assert len(flaml) == 3
    if importlib.util.find_spec("flaml") is None:
        assert (flaml["status"] == "failed").all()
        assert all(FLAML_HINT in e for e in flaml["error"])
        assert outcome.n_failed == 3
    else:  # with flaml installed it runs with the warm cell's wall-clock budget
        warm = cells[cells["strategy"] == "warm"].set_index("dataset")["search_seconds"]
        for row in flaml.to_dict("records"):
            assert row["budget_seconds"] == pytest.approx(warm[row["dataset"]])
    assert (cells[cells["strategy"] != "flaml"]["status"] == "done").all()
    report = (bench["out"] / "report.md").read_text()
    assert "no_such_dataset" in report


def test_leakage_exclusion_removes_the_dataset_itself(bench: dict) -> None:
    frames = load_frames(bench["out"])
    datasets, cells = frames["datasets"], frames["cells"]
    haberman = datasets[datasets["key"] == "haberman"].iloc[0]
    excluded = json.loads(haberman["excluded"])
    assert haberman["n_excluded"] == len(excluded) >= 1
    assert {"dataset_id": bench["kb_ids"]["haberman"], "name": "haberman", "reason": "fingerprint"}.items() <= {
        k: v for k, v in excluded[0].items() if k != "distance"
    }.items()
    # no recommendation for haberman came from haberman
    recs = json.loads(
        cells[(cells["dataset"] == "haberman") & (cells["strategy"] == "warm")].iloc[0]["recommendations"]
    )
    assert recs and all("haberman" not in r["sources"] for r in recs)
    # held-out datasets have nothing to exclude (no same name/fingerprint/near-duplicate in this KB)
    for key in HELD_OUT:
        assert datasets[datasets["key"] == key].iloc[0]["n_excluded"] == 0
    report = (bench["out"] / "report.md").read_text()
    assert "- haberman: 1 excluded — haberman (fingerprint)" in report


def test_report_plots_and_recompute(bench: dict) -> None:
    out: Path = bench["out"]
    stored = json.loads((out / "summary.json").read_text())
    assert stored == json.loads(json.dumps(bench["outcome"].summary, sort_keys=True))
    # the report's numbers come back from the stored raw trajectories alone
    (out / "report.md").unlink()
    for png in (out / "plots").glob("*.png"):
        png.unlink()
    again = recompute_report(out)
    assert json.loads(json.dumps(again, sort_keys=True)) == stored
    report = (out / "report.md").read_text()
    assert "Mean normalised regret" in report and "Average rank" in report and "Time to reach" in report
    for strat in STRATEGIES:
        assert f"| {strat} |" in report
    for name in ("regret_overall", "rank_overall", "regret_binary", "rank_multiclass"):
        data = (out / "plots" / f"{name}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    s = again
    assert s["budgets"] == [1, 4] and s["n_instances"] == 3 and s["trajectory_strategies"] == ["warm", "cold"]
    # regret of every cell recomputed by hand from the trials table
    frames = load_frames(out)
    trials = frames["trials"]
    for d in s["per_dataset"]:
        ok = trials[
            (trials["dataset"] == d["dataset"])
            & (trials["status"] == "ok")
            & trials["strategy"].isin(["warm", "cold"])
        ]["score"]
        best, worst = (ok.max(), ok.min()) if d["greater_is_better"] else (ok.min(), ok.max())
        assert d["best_cv"] == pytest.approx(best) and d["worst_cv"] == pytest.approx(worst)
        for strat in ("warm", "cold"):
            first = trials[
                (trials["dataset"] == d["dataset"]) & (trials["strategy"] == strat) & (trials["number"] == 1)
            ]["best_score"].iloc[0]
            hand = 1.0 if math.isnan(first) else min(1.0, max(0.0, (best - first) / (best - worst)))
            assert d["regret_at"][strat]["1"] == pytest.approx(hand)
    overall = s["regret"]["overall"]["table"]["warm"]["1"]
    hand_mean = np.mean([d["regret_at"]["warm"]["1"] for d in s["per_dataset"]])
    assert overall["mean"] == pytest.approx(hand_mean) and overall["n"] == 3


def test_resume_skips_finished_cells(bench: dict, kb_path: Path) -> None:
    out: Path = bench["out"]
    before = load_frames(out)
    kb = open_kb(kb_path, read_only=True)
    try:
        again = run_benchmark(bench["sources"], kb, out, _settings())
        assert again.n_run == 0  # nothing evaluated again
        after = load_frames(out)
        assert len(after["trials"]) == len(before["trials"])
        # an interrupted cell (not stored) is the only one that runs on the next call
        store = ResultStore(out)
        store.con.execute("DELETE FROM trials WHERE dataset = 'biomed' AND strategy = 'cold'")
        store.con.execute("DELETE FROM cells WHERE dataset = 'biomed' AND strategy = 'cold'")
        store.close()
        third = run_benchmark(bench["sources"], kb, out, _settings())
        assert third.n_run == 1
        final = load_frames(out)
        assert len(final["trials"]) == len(before["trials"])
        redo = final["trials"][
            (final["trials"]["dataset"] == "biomed") & (final["trials"]["strategy"] == "cold")
        ]
        assert len(redo) == N_TRIALS
        # different comparable settings in the same directory are refused
        with pytest.raises(InputError, match="different settings"):
            run_benchmark(bench["sources"], kb, out, _settings(n_trials=N_TRIALS + 1))
    finally:
        kb.close()


def test_cli_benchmark(
    kb_path: Path, corpus_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from metalearn.cli.commands import main

    out = tmp_path / "cli"
    args = [
        "benchmark",
        "--corpus",
        str(corpus_dir),
        "--datasets",
        "biomed",
        "--strategies",
        "cold",
        "--trials",
        "2",
        "--max-rows",
        "200",
        "--kb",
        str(kb_path),
        "--out",
        str(out),
        "--json",
    ]
    main(args)
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_datasets"] == 1 and summary["strategies"] == ["cold"]
    assert summary["regret"]["overall"]["table"]["cold"]["1"]["n"] == 1
    assert (out / "report.md").is_file() and (out / "results.duckdb").is_file()
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "benchmark",
                "--corpus",
                str(corpus_dir),
                "--strategies",
                "warm,nope",
                "--out",
                str(tmp_path / "x"),
            ]
        )
    assert exc.value.code != 0
    err = capsys.readouterr().err
    assert "unknown benchmark strategy 'nope'" in err and "Traceback" not in err


# ------------------------------------------------------------------------------------------ units
def test_regret_rank_and_time_math_by_hand() -> None:
    """Two datasets (one loss, one score), two strategies, 3 trials: every number by hand."""
    datasets = pd.DataFrame(
        [
            {
                "key": "a",
                "spec": "corpus:a",
                "name": "a",
                "kind": "binary",
                "metric": "roc_auc",
                "greater_is_better": True,
                "n_rows": 100,
                "n_features": 3,
                "n_rows_used": 100,
                "n_train": 75,
                "n_test": 25,
                "dataset_id": "ida",
                "train_id": "ta",
                "openml_id": None,
                "metafeatures": "{}",
                "mf_seconds": 0.0,
                "n_excluded": 0,
                "excluded": "[]",
                "status": "ok",
                "error": "",
            },
            {
                "key": "b",
                "spec": "corpus:b",
                "name": "b",
                "kind": "regression",
                "metric": "rmse",
                "greater_is_better": False,
                "n_rows": 100,
                "n_features": 3,
                "n_rows_used": 100,
                "n_train": 75,
                "n_test": 25,
                "dataset_id": "idb",
                "train_id": "tb",
                "openml_id": None,
                "metafeatures": "{}",
                "mf_seconds": 0.0,
                "n_excluded": 0,
                "excluded": "[]",
                "status": "ok",
                "error": "",
            },
        ]
    )
    # dataset a (AUC): observed scores 0.6 .. 0.9; dataset b (RMSE): observed 1.0 .. 3.0
    traj = {
        ("a", "x"): [(0.6, 0.6), (0.9, 0.9), (0.7, 0.9)],
        ("a", "y"): [(0.8, 0.8), (0.85, 0.85), (0.7, 0.85)],
        ("b", "x"): [(3.0, 3.0), (2.0, 2.0), (1.0, 1.0)],
        ("b", "y"): [(1.5, 1.5)],  # stopped after one trial (time limit): keeps its incumbent
    }
    rows = []
    for (d, s), ts in traj.items():
        for i, (score, best) in enumerate(ts, start=1):
            rows.append(
                {
                    "dataset": d,
                    "strategy": s,
                    "seed": 0,
                    "number": i,
                    "score": score,
                    "best_score": best,
                    "status": "ok",
                    "origin": "smac",
                    "elapsed": float(i),
                    "seconds": 1.0,
                    "config_id": f"c{i}",
                }
            )
    trials = pd.DataFrame(rows)
    cells = pd.DataFrame(
        [
            {
                "dataset": d,
                "strategy": s,
                "seed": 0,
                "status": "done",
                "error": "",
                "n_trials": len(traj[(d, s)]),
                "n_failed_trials": 0,
                "n_recommended": 0,
                "best_cv_score": traj[(d, s)][-1][1],
                "test_score": t,
                "search_seconds": 3.0,
                "refit_seconds": 0.1,
                "budget_seconds": None,
                "test_metrics": "{}",
                "incumbent": "{}",
                "recommendations": "[]",
                "finished_at": 0.0,
            }
            for (d, s), t in {("a", "x"): 0.88, ("a", "y"): 0.80, ("b", "x"): 1.2, ("b", "y"): 1.1}.items()
        ]
    )
    s = compute_summary(
        datasets, cells, trials, {"strategies": ["x", "y"], "seeds": [0], "n_trials": 3}, budgets=(1, 3, 5)
    )
    assert s["budgets"] == [1, 3]
    # regrets: a: x = [1, 0, 0], y = [1/3, 1/6, 1/6]; b: x = [1, 0.5, 0], y = [0.25, 0.25, 0.25]
    reg = s["regret"]["overall"]["table"]
    assert reg["x"]["1"]["mean"] == pytest.approx(1.0) and reg["x"]["3"]["mean"] == pytest.approx(0.0)
    assert reg["y"]["1"]["mean"] == pytest.approx((1 / 3 + 0.25) / 2)
    assert reg["y"]["3"]["mean"] == pytest.approx((1 / 6 + 0.25) / 2)
    assert s["regret"]["overall"]["curve"]["x"]["mean"] == pytest.approx([1.0, 0.25, 0.0])
    # 95% CI: t(0.975, 1) * sd / sqrt(2) of y's regrets at 1 trial
    sd = np.std([1 / 3, 0.25], ddof=1)
    assert reg["y"]["1"]["ci"] == pytest.approx(12.706204736 * sd / math.sqrt(2), rel=1e-6)
    # ranks per instance: trial 1 y wins both; trial 2: a x wins, b y wins; trial 3 x wins both
    rk = s["rank"]["overall"]["curve"]
    assert rk["x"]["mean"] == pytest.approx([2.0, 1.5, 1.0]) and rk["y"]["mean"] == pytest.approx(
        [1.0, 1.5, 2.0]
    )
    # per kind tables hold one dataset each
    assert s["regret"]["regression"]["table"]["y"]["1"]["mean"] == pytest.approx(0.25)
    # time to within 1%: x reaches 0 regret at trial 2 on a (elapsed 2 s) and trial 3 on b; y never
    tt = s["time_to_1pct"]
    assert tt["x"]["reached"] == 1.0 and tt["x"]["trials"]["mean"] == pytest.approx(2.5)
    assert tt["x"]["seconds"]["mean"] == pytest.approx(2.5) and tt["y"]["reached"] == 0.0
    # test ranks: a (AUC, higher better) x 0.88 > y 0.80; b (RMSE) y 1.1 < x 1.2
    assert s["test"]["x"]["rank"]["mean"] == pytest.approx(1.5) and s["test"]["y"]["rank"][
        "mean"
    ] == pytest.approx(1.5)
    per = {d["dataset"]: d for d in s["per_dataset"]}
    assert per["a"]["best_cv"] == 0.9 and per["a"]["worst_cv"] == 0.6
    assert per["b"]["best_cv"] == 1.0 and per["b"]["worst_cv"] == 3.0


def test_regret_curve_and_mean_ci_edges() -> None:
    assert regret_curve([], 1.0, 0.0, 3).tolist() == [1.0, 1.0, 1.0]
    assert regret_curve([math.nan, 0.5], 1.0, 0.0, 3).tolist() == [1.0, 0.5, 0.5]
    assert regret_curve([0.5], math.nan, math.nan, 2).tolist() == [1.0, 1.0]
    m, ci, n = mean_ci([0.2, math.nan])
    assert (m, n) == (0.2, 1) and math.isnan(ci)
    assert mean_ci([])[2] == 0


def _run(settings: dict[str, Any], **datasets: tuple[bool, float, float, dict[str, float]]) -> dict[str, Any]:
    """A benchmark summary with warm's regret after 1 and 10 trials: name=(greater, best, worst, regret)."""
    return {
        "settings": settings,
        "per_dataset": [
            {"dataset": n, "greater_is_better": g, "best_cv": b, "worst_cv": w, "regret_at": {"warm": r}}
            for n, (g, b, w, r) in datasets.items()
        ],
    }


def test_two_runs_compare_on_one_scale_per_dataset() -> None:
    settings = {"max_rows": 1000, "n_folds": 3, "split_seed": 0, "seeds": [0], "test_size": 0.25}
    # RMSE: the reference run held a diverging configuration (worst 1e9), so its own regrets are ~0
    # although its incumbent after 1 trial (0.9) is worse than the current run's (0.7)
    ref = _run(settings, a=(False, 0.5, 1e9, {"1": (0.9 - 0.5) / (1e9 - 0.5), "10": 0.0}),
               b=(True, 0.9, 0.5, {"1": 0.5, "10": 0.25}))
    cur = _run(settings, a=(False, 0.6, 2.5, {"1": (0.7 - 0.6) / (2.5 - 0.6), "10": 0.0}),
               b=(True, 0.8, 0.4, {"1": 0.0, "10": 0.0}))
    out = compare_summaries(ref, cur)
    assert out["n_datasets"] == 2
    # a: best 0.5 (the reference's), worst 2.5 (the less extreme); incumbents 0.9 vs 0.7 -> 0.2 vs 0.1
    # b: best 0.9, worst 0.5; after 1 trial 0.7 vs 0.8 -> 0.5 vs 0.25; after 10: 0.8 vs 0.8
    one, ten = out["budgets"][1], out["budgets"][10]
    assert one["reference"] == pytest.approx((0.2 + 0.5) / 2) and one["current"] == pytest.approx((0.1 + 0.25) / 2)
    assert (one["better"], one["equal"], one["worse"]) == (2, 0, 0)
    assert ten["reference"] == pytest.approx((0.0 + 0.25) / 2) and ten["current"] == pytest.approx((0.05 + 0.25) / 2)
    assert (ten["better"], ten["equal"], ten["worse"]) == (0, 1, 1)
    # a run against itself: the same regret, every dataset equal
    same = compare_summaries(cur, cur)["budgets"][1]
    assert same["reference"] == pytest.approx(same["current"]) and same["equal"] == 2
    # the committed runs (version 1 and stop 41) compare on all 20 datasets
    results = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
    v1, v10 = (json.loads((results / r / "summary.json").read_text()) for r in ("warmstart", "warmstart_kb_v10"))
    real = compare_summaries(v1, v10)
    assert real["n_datasets"] == 20 and set(real["budgets"]) >= {1, 5, 10, 25}
    with pytest.raises(InputError, match="n_folds: 3 vs 5"):
        compare_summaries(ref, _run({**settings, "n_folds": 5}, a=(False, 0.5, 1.0, {"1": 0.0})))
    with pytest.raises(InputError, match="no dataset"):
        compare_summaries(ref, _run(settings, c=(False, 0.5, 1.0, {"1": 0.0})))
    mae = _run(settings, a=(False, 0.5, 1.0, {"1": 0.0}))
    mae["per_dataset"][0]["metric"] = "mae"
    with pytest.raises(InputError, match="a with different metrics"):
        compare_summaries(ref, mae)


def test_leakage_rules(kb_path: Path, corpus_dir: Path) -> None:
    """Name, OpenML id and near-duplicate rules on the real KB's meta-features."""
    from metalearn.metalearning.advisor import Advisor
    from metalearn.metalearning.metafeatures import EXTRACTOR_VERSION

    kb = open_kb(kb_path, read_only=True)
    try:
        data = Advisor(kb).kind_data("multiclass")
        records = kb.list_datasets(kind="multiclass")
        glass = next(r for r in records if r.name == "glass")
        mf = kb.get_metafeatures(glass.dataset_id, EXTRACTOR_VERSION).values
    finally:
        kb.close()

    def info(**kw: object) -> DatasetInfo:
        base: dict[str, object] = dict(
            key="query",
            spec="corpus:query",
            name="query",
            kind="multiclass",
            metric="log_loss",
            greater_is_better=False,
            n_rows=glass.n_rows,
            n_features=glass.n_features,
            n_rows_used=glass.n_rows,
            n_train=1,
            n_test=1,
            dataset_id="x",
            train_id="y",
            openml_id=None,
            metafeatures=dict(mf),
            mf_seconds=0.0,
        )
        base.update(kw)
        return DatasetInfo(**base)  # type: ignore[arg-type]

    # a copy of glass under another name: same shape, zero distance -> near-duplicate
    ex = leakage_exclusions(info(), records, data.metafeatures)
    assert [(e.name, e.reason) for e in ex] == [("glass", "near-duplicate")] and ex[
        0
    ].distance == pytest.approx(0.0)
    # another shape, far meta-features: nothing
    far = {k: v * 3 + 1 for k, v in mf.items()}
    assert leakage_exclusions(info(metafeatures=far, n_features=99), records, data.metafeatures) == []
    # name after normalisation
    ex = leakage_exclusions(
        info(name="42_Glass", key="42_Glass", metafeatures=far, n_features=99), records, data.metafeatures
    )
    assert [(e.name, e.reason) for e in ex] == [("glass", "name")]
    assert normalise_name("1089_USCrime") == "uscrime" and normalise_name("kr-vs-kp") == normalise_name(
        "kr_vs_kp"
    )
    assert normalise_name("monk1") != normalise_name("monk2")


def test_settings_and_sources_validation(corpus_dir: Path) -> None:
    assert parse_strategies("warm, cold,warm") == ("warm", "cold")
    assert "knn" in parse_strategies("all") and "flaml" in parse_strategies("all")
    with pytest.raises(InputError, match="unknown benchmark strategy"):
        parse_strategies("warm,bogus")
    with pytest.raises(InputError, match="--trials"):
        BenchmarkSettings(n_trials=0)
    with pytest.raises(InputError, match="--max-rows"):
        BenchmarkSettings(max_rows=10)
    with pytest.raises(InputError, match="--suite"):
        resolve_benchmark_sources()
    sources, missing = resolve_benchmark_sources(corpus=str(corpus_dir), names=["iris", "biomed"])
    assert sorted(s.spec for s in sources) == ["corpus:biomed", "corpus:iris"] and missing == []


@pytest.mark.corpus
def test_suite_datasets_resolve_by_openml_id_in_a_corpus_directory(
    suites_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mini_corpus: Any
) -> None:
    """`metalearn benchmark --suite openml-cc18 --corpus DIR`: suite datasets matched by openml_did."""
    monkeypatch.setenv("METALEARN_SUITES", str(suites_dir))
    suite = pd.read_csv(suites_dir / "openml_cc18.csv")
    did = int(suite["did"].iloc[2])
    corpus = mini_corpus(tmp_path / "corpus", [
        {"name": "held_out_copy", "copy_of": "lupus", "openml_did": did},
        {"name": "other", "copy_of": "192_vineyard", "openml_did": None},
    ])
    sources, missing = resolve_benchmark_sources(suite="openml-cc18", corpus=str(corpus))
    assert [s.spec for s in sources] == ["corpus:held_out_copy"] and sources[0].corpus == str(corpus)
    assert len(missing) == len(suite) - 1 and all("(did " in m for m in missing)
    empty = mini_corpus(tmp_path / "empty", [{"name": "other", "copy_of": "lupus", "openml_did": None}])
    with pytest.raises(InputError, match=r"none of the \d+ datasets of suite"):
        resolve_benchmark_sources(suite="openml-cc18", corpus=str(empty))


@pytest.mark.slow
def test_parallel_workers(kb_path: Path, corpus_dir: Path, tmp_path: Path) -> None:
    """--workers 2: a process pool runs the cells; the main process alone writes the results."""
    sources = [DatasetSource(f"corpus:{n}", str(corpus_dir)) for n in HELD_OUT]
    kb = open_kb(kb_path, read_only=True)
    try:
        outcome = run_benchmark(
            sources, kb, tmp_path / "par", _settings(strategies=("warm", "random"), workers=2)
        )
    finally:
        kb.close()
    assert outcome.n_run == 4 and outcome.n_failed == 0
    assert len(load_frames(tmp_path / "par")["trials"]) == 4 * N_TRIALS


# ------------------------------------------------------------------------------------------ wall-clock (peers)
PEER_BUDGET = 5.0
needs_flaml = pytest.mark.skipif(importlib.util.find_spec("flaml") is None, reason="flaml is not installed")


def _budget_settings(**kw: object) -> BenchmarkSettings:
    base: dict[str, object] = dict(
        budgets=(PEER_BUDGET,), peers=("flaml",), max_rows=300, trial_time_limit=None
    )
    base.update(kw)
    return BenchmarkSettings(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def peer_bench(
    kb_path: Path, corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, object]:
    """One wall-clock run: biomed (binary: product, flaml, top-1, flaml zero-shot) and enb (multi-target:
    product and the random forest; the KB has no multi-target runs, so no top-1)."""
    if importlib.util.find_spec("flaml") is None:
        pytest.skip("flaml is not installed")
    out = tmp_path_factory.mktemp("peer-out")
    sources = [DatasetSource(f"corpus:{n}", str(corpus_dir)) for n in ("biomed", "enb")]
    kb = open_kb(kb_path, read_only=True)
    try:
        outcome = run_benchmark(sources, kb, out, _budget_settings())
    finally:
        kb.close()
    return {"out": out, "outcome": outcome, "sources": sources}


def test_budget_mode_runs_every_system_at_equal_wall_clock(peer_bench: dict) -> None:
    outcome = peer_bench["outcome"]
    cells = load_frames(peer_bench["out"])["cells"].set_index(["dataset", "strategy"])
    expected = {
        ("biomed", "product@5"), ("biomed", "flaml@5"), ("biomed", "top1"), ("biomed", "flaml_zeroshot"),
        ("enb", "product@5"), ("enb", "rf"), ("enb", "top1"),
    }  # fmt: skip
    assert set(cells.index) == expected and outcome.n_cells == outcome.n_run == len(expected)
    for key in ("biomed", "enb"):
        for strat in ("product@5", "flaml@5", "rf"):
            if (key, strat) not in cells.index:
                continue
            c = cells.loc[(key, strat)]
            assert c["status"] == "done", (key, strat, c["error"])
            assert math.isfinite(c["test_score"])
            assert c["search_seconds"] > 0  # time used: from the call until the final model is ready
            if strat != "rf":
                assert c["budget_seconds"] == PEER_BUDGET
    # the KB has no multi-target configuration: top-1 fails with a reason, the rest goes on
    assert cells.loc[("enb", "top1")]["status"] == "failed"
    assert "no recommendation" in cells.loc[("enb", "top1")]["error"]
    assert cells.loc[("biomed", "top1")]["status"] == "done"
    assert cells.loc[("biomed", "flaml_zeroshot")]["status"] == "done"
    # the product's cell records its phases; the regression R² (multi-target: every metric) is stored
    assert "timings" in json.loads(cells.loc[("biomed", "product@5")]["incumbent"])
    assert "r2_mean" in json.loads(cells.loc[("enb", "product@5")]["test_metrics"])


def test_budget_mode_report(peer_bench: dict) -> None:
    out: Path = peer_bench["out"]
    s = peer_bench["outcome"].summary
    assert s["mode"] == "wall-clock" and s["budgets"] == [PEER_BUDGET] and s["peers"] == ["flaml"]
    block = s["per_budget"]["5"]
    assert block["systems"][:3] == ["product", "flaml", "rf"]
    by = {d["dataset"]: d for d in block["per_dataset"]}
    assert set(by["biomed"]["test"]) == {"product", "flaml", "top1", "flaml_zeroshot"}
    assert set(by["enb"]["test"]) == {"product", "rf", "top1"}
    cells = load_frames(out)["cells"]
    product = cells[(cells["dataset"] == "biomed") & (cells["strategy"] == "product@5")]
    assert by["biomed"]["test"]["product"] == pytest.approx(product["test_score"].iloc[0])
    binary = block["per_kind"]["binary"]
    assert binary["mean"]["product"] == pytest.approx(by["biomed"]["test"]["product"])
    assert set(binary["win_rate"]) == {"flaml"} and binary["win_rate"]["flaml"]["n"] == 1
    assert set(block["per_kind"]["multitarget"]["win_rate"]) == {"rf"}
    t = block["time"]["product"]
    assert t["cells"] == 2 and t["max_ratio"] >= t["mean_ratio"] > 0
    assert "mean_ratio" not in block["time"]["rf"]  # one fit, no budget
    assert s["zero_shot"]["systems"] == ["top1", "flaml_zeroshot"]
    report = (out / "report.md").read_text()
    assert "## Budget 5 s" in report and "Win rate of product" in report and "time used" in report.lower()
    assert (out / "plots" / "peers.png").is_file()
    assert json.loads((out / "summary.json").read_text())["per_budget"]["5"]["systems"] == block["systems"]
    # recomputed from the stored cells alone
    again = recompute_report(out, write=False)
    assert again["per_budget"]["5"]["per_kind"] == block["per_kind"]


def test_budget_mode_resume_skips_finished_cells(peer_bench: dict, kb_path: Path) -> None:
    out: Path = peer_bench["out"]
    kb = open_kb(kb_path, read_only=True)
    try:
        again = run_benchmark(peer_bench["sources"], kb, out, _budget_settings())
        assert again.n_run == 0
        store = ResultStore(out)
        store.con.execute("DELETE FROM cells WHERE dataset = 'biomed' AND strategy = 'flaml@5'")
        store.close()
        third = run_benchmark(peer_bench["sources"], kb, out, _budget_settings())
        assert third.n_run == 1
        assert len(load_frames(out)["cells"]) == third.n_cells
        # a trial benchmark is not resumed in a wall-clock directory (and the other way round)
        with pytest.raises(InputError, match="different settings"):
            run_benchmark(peer_bench["sources"], kb, out, _settings())
    finally:
        kb.close()


def test_budget_settings_and_missing_peers(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from metalearn.benchmark.peers import PeerMissingError, _require
    from metalearn.benchmark.settings import AUTOGLUON_HINT, parse_budgets, parse_peers, peer_systems

    assert parse_budgets("30, 120,30") == (30.0, 120.0) and parse_budgets(None) == ()
    assert parse_peers("autogluon,flaml") == ("autogluon", "flaml")
    with pytest.raises(InputError, match="--budgets"):
        parse_budgets("30,abc")
    with pytest.raises(InputError, match="--budgets"):
        parse_budgets("0")
    with pytest.raises(InputError, match="unknown peer 'h2o'"):
        parse_peers("flaml,h2o")
    with pytest.raises(InputError, match="--peers needs --budgets"):
        BenchmarkSettings(peers=("flaml",))
    assert peer_systems("binary", (30.0, 120.0), ("flaml", "autogluon"), True) == [
        "product@30", "flaml@30", "autogluon@30", "product@120", "flaml@120", "autogluon@120", "top1",
        "flaml_zeroshot",
    ]  # fmt: skip
    assert peer_systems("multilabel", (30.0,), ("flaml",), False) == ["product@30", "rf"]
    # the trial benchmark's settings are unchanged by the wall-clock fields
    trial = BenchmarkSettings()
    assert "mode" not in trial.comparable() and "budgets" not in trial.to_dict()
    assert BenchmarkSettings(budgets=(10,)).comparable()["mode"] == "wall-clock"
    # a missing peer: one line with the pip command
    monkeypatch.setitem(sys.modules, "autogluon.tabular", None)
    with pytest.raises(PeerMissingError, match=r"not installed: pip install metalearn\[autogluon\]") as exc:
        _require("autogluon")
    assert AUTOGLUON_HINT in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.skipif(importlib.util.find_spec("autogluon") is None, reason="autogluon is not installed")
def test_budget_mode_autogluon(kb_path: Path, corpus_dir: Path, tmp_path: Path) -> None:
    sources = [DatasetSource("corpus:biomed", str(corpus_dir))]
    kb = open_kb(kb_path, read_only=True)
    try:
        outcome = run_benchmark(
            sources, kb, tmp_path / "ag", _budget_settings(peers=("autogluon",), zero_shot=False)
        )
    finally:
        kb.close()
    cells = load_frames(tmp_path / "ag")["cells"].set_index("strategy")
    assert sorted(cells.index) == ["autogluon@5", "product@5"] and outcome.n_failed == 0
    ag = cells.loc["autogluon@5"]
    assert math.isfinite(ag["test_score"]) and ag["search_seconds"] > 0 and ag["n_trials"] >= 1


# ------------------------------------------------------------------------------------------ QA fixes
def test_write_kb_resume_never_recommends_the_held_out_dataset(
    kb_path: Path, corpus_dir: Path, tmp_path: Path
) -> None:
    """--write-kb stores haberman's training part in the KB; a resume must exclude it (recomputed
    exclusions, and the dataset's own ids always), and refuses another KB."""
    import shutil

    from metalearn.benchmark.cells import recommend
    from metalearn.metalearning.advisor import Advisor

    kbw = tmp_path / "kbw.duckdb"
    shutil.copy(kb_path, kbw)
    out = tmp_path / "w1"
    sources = [DatasetSource("corpus:haberman", str(corpus_dir))]
    kb = open_kb(kbw)
    try:
        first = run_benchmark(sources, kb, out, _settings(strategies=("warm",), write_kb=True, n_trials=2))
        assert first.n_failed == 0
        info = ResultStore(out, read_only=True)
        try:
            stored = info.datasets()["haberman"]
        finally:
            info.close()
        names = {d.dataset_id: d.name for d in kb.list_datasets()}
        assert names.get(stored.train_id) == "haberman"  # the training part is in the KB now
        # the dataset's own ids are hidden even when nothing else is excluded
        bare = DatasetInfo(**{**stored.__dict__, "excluded": ()})
        recs = recommend(Advisor(kb), bare, "knn", 4)
        assert recs and all("haberman" not in r.sources for r in recs)
        # the resume recomputes the exclusions against the KB as it is now
        resume = _settings(strategies=("warm", "knn"), write_kb=True, n_trials=2)
        second = run_benchmark(sources, kb, out, resume)
        assert second.n_run == 1
    finally:
        kb.close()
    frames = load_frames(out)
    excluded = json.loads(frames["datasets"].iloc[0]["excluded"])
    assert {(e["dataset_id"], e["reason"]) for e in excluded} >= {
        (stored.dataset_id, "fingerprint"),
        (stored.train_id, "training-part fingerprint"),
    }
    cells = frames["cells"].set_index("strategy")
    knn = json.loads(cells.loc["knn"]["recommendations"])
    assert knn and all("haberman" not in r["sources"] for r in knn)
    report = (out / "report.md").read_text()
    assert "- haberman: 2 excluded — haberman (fingerprint), haberman (training-part fingerprint)" in report
    # a resume with another KB is refused in one line
    other = open_kb(kb_path, read_only=True)
    try:
        with pytest.raises(InputError, match=r"resume it with --kb .*kbw\.duckdb") as exc:
            run_benchmark(sources, other, out, _settings(strategies=("warm",), write_kb=True, n_trials=2))
    finally:
        other.close()
    assert "\n" not in str(exc.value)


def test_peer_means_per_kind_are_over_common_datasets(tmp_path: Path) -> None:
    """The product failed on haberman: every system's per-kind mean is over bupa alone (the datasets
    where all have a score), the win rate counts the failure as a loss, over the same instances."""
    settings = _budget_settings()
    store = ResultStore(tmp_path)
    try:
        store.set_meta("settings", settings.to_dict())
        store.set_meta("datasets", ["bupa", "haberman"])
        for key in ("bupa", "haberman"):
            row = (key, f"corpus:{key}", key, "binary", "roc_auc", True, 300, 6, 300, 225, 75)
            store.put_dataset(DatasetInfo(*row, f"id-{key}", f"train-{key}", None, {}, 0.0))
        scores = {("bupa", "product@5"): 0.8, ("bupa", "flaml@5"): 0.7, ("haberman", "flaml@5"): 0.6}
        for key in ("bupa", "haberman"):
            for strat in ("product@5", "flaml@5"):
                score = scores.get((key, strat))
                res = CellResult(key, strat, 0, budget_seconds=5.0, search_seconds=5.0)
                if score is None:
                    res.status, res.error = "failed", "RuntimeError: boom"
                else:
                    res.test_score, res.test_metrics = score, {"roc_auc": score}
                    res.incumbent = {"config_id": strat, "values": {}}
                store.put_rows(cell_row(res), [])
    finally:
        store.close()
    summary = recompute_report(tmp_path)
    binary = summary["per_budget"]["5"]["per_kind"]["binary"]
    assert binary["mean"] == {"product": pytest.approx(0.8), "flaml": pytest.approx(0.7)}
    assert binary["n_common"] == 1 and binary["common"] == ["bupa"] and binary["n_datasets"] == 2
    assert binary["n"] == {"product": 1, "flaml": 2}
    assert binary["win_rate"]["flaml"] == {"wins": 1.0, "n": 2, "rate": 0.5}
    report = (tmp_path / "report.md").read_text()
    assert "| binary | roc_auc | 1 / 2 | 0.8000 | 0.7000 |" in report


def test_an_empty_datasets_list_is_a_one_line_error(
    kb_path: Path, corpus_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """``--datasets ""`` (an unset shell variable) is an error, not every corpus dataset."""
    from metalearn.benchmark import runner
    from metalearn.cli.commands import main

    def never(*_a: Any, **_k: Any) -> None:
        pytest.fail("--datasets '' ran the benchmark on every corpus dataset")

    monkeypatch.setattr(runner, "run_benchmark", never)
    base = ["benchmark", "--corpus", str(corpus_dir), "--kb", str(kb_path), "--out", str(tmp_path / "x")]
    for blank in ("", " , "):
        with pytest.raises(SystemExit) as exc:
            main([*base, "--datasets", blank])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and "--datasets is empty: name one or more datasets" in err
        assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
    from metalearn.cli.errors import comma_names

    assert comma_names(None, "--datasets", "datasets") is None
    assert comma_names(" iris, ,bupa", "--datasets", "datasets") == ["iris", "bupa"]


def test_out_that_is_a_file_is_a_one_line_error(
    kb_path: Path, corpus_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from metalearn.cli.commands import main

    afile = tmp_path / "afile"
    afile.write_text("not a directory")
    with pytest.raises(SystemExit) as exc:
        main(["benchmark", "--corpus", str(corpus_dir), "--kb", str(kb_path), "--datasets", "biomed",
              "--strategies", "cold", "--trials", "2", "--max-rows", "200", "--out", str(afile)])  # fmt: skip
    err = capsys.readouterr().err
    assert "unexpected" not in err and exc.value.code == 2
    assert f"--out {str(afile)!r} is a file: give a directory" in err and len(err.strip().splitlines()) == 1
    assert afile.read_text() == "not a directory"


def test_a_cell_without_a_successful_trial_is_failed_and_retried(
    kb_path: Path, corpus_dir: Path, tmp_path: Path
) -> None:
    sources = [DatasetSource("corpus:biomed", str(corpus_dir))]
    settings = _settings(strategies=("cold",), n_trials=2, trial_time_limit=0.01)
    kb = open_kb(kb_path, read_only=True)
    try:
        first = run_benchmark(sources, kb, tmp_path, settings)
        cell = load_frames(tmp_path)["cells"].iloc[0]
        assert cell["status"] == "failed" and cell["error"].startswith("no trial succeeded (2 of 2")
        assert first.n_failed == 1
        assert run_benchmark(sources, kb, tmp_path, settings).n_run == 0  # not retried without the flag
        # a cell an older release stored as done is failed too, and retried with --retry-failed
        store = ResultStore(tmp_path)
        store.con.execute("UPDATE cells SET status = 'done', error = 'no trial succeeded'")
        store.close()
        again = run_benchmark(sources, kb, tmp_path, _settings(
            strategies=("cold",), n_trials=2, trial_time_limit=0.01, retry_failed=True))  # fmt: skip
        assert again.n_run == 1 and again.n_failed == 1
    finally:
        kb.close()


def test_ctrl_c_inside_a_duckdb_query_is_an_interrupt(
    kb_path: Path, corpus_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Ctrl-C that lands in a DuckDB query of the benchmark makes DuckDB raise RuntimeError("Query
    interrupted") (its Python client's message for a SIGINT during a query; a real SIGINT reaches the
    query only when DuckDB next checks for signals, hence raised here directly): the command ends as
    interrupted (exit 130) and says how to resume, not "unexpected RuntimeError"."""
    import threading

    import duckdb

    from metalearn.cli.commands import main

    def interrupted_query(self: ResultStore) -> dict:
        self.con.execute("SELECT 1").fetchall()
        raise RuntimeError("Query interrupted")

    monkeypatch.setattr(ResultStore, "finished", interrupted_query)
    with pytest.raises(SystemExit) as exc:
        main(["benchmark", "--corpus", str(corpus_dir), "--datasets", "biomed", "--strategies", "cold",
              "--trials", "2", "--max-rows", "200", "--kb", str(kb_path), "--out", str(tmp_path / "o")])  # fmt: skip
    captured = capsys.readouterr()
    assert exc.value.code == 130
    assert "interrupted; run the same command again" in captured.out + captured.err
    assert "unexpected" not in captured.out + captured.err
    # an interrupted connection (a real one) counts as an interrupt too; other errors do not
    from metalearn.kb.duckdb_store import is_query_interrupt

    con = duckdb.connect()
    done = threading.Event()

    def keep_interrupting() -> None:
        while not done.wait(0.2):
            con.interrupt()

    threading.Thread(target=keep_interrupting, daemon=True).start()
    try:
        with pytest.raises(duckdb.Error) as real:
            con.execute("SELECT count(*) FROM range(1000000000000000) t(a) WHERE a % 7 = 3").fetchall()
    finally:
        done.set()
        con.close()
    assert is_query_interrupt(real.value) and is_query_interrupt(RuntimeError("Query interrupted"))
    assert not is_query_interrupt(RuntimeError("something else"))
