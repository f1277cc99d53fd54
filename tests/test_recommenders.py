"""Recommenders on hand-made knowledge bases with known answers (real-data LOO: tests/test_loo.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from metalearn.data.errors import InputError, MetaLearnError
from metalearn.metalearning.context import PRIOR_STRENGTH, RecommendContext
from metalearn.metalearning.distances import fit_scaling, metafeature_distances
from metalearn.metalearning.explain import Recommendation, Source
from metalearn.metalearning.matrix import (
    RegretMatrix,
    normalised_regret_matrix,
    performance_matrix,
    prepare_matrix,
    protocol_rows,
)
from metalearn.metalearning.strategies import (
    DEFAULT_STRATEGY,
    STRATEGIES,
    recommend,
    recommend_from_matrix,
)

RUN_COLUMNS = [
    "run_id", "dataset_id", "config_id", "space", "space_version", "protocol", "status", "metric",
    "score", "cost", "fit_seconds", "budget", "source",
]  # fmt: skip


def make_runs(rows: list[tuple], metric: str = "err") -> pd.DataFrame:
    """Runs frame in the KB layout from (dataset, config, cost[, status[, budget[, metric]]])."""
    out = []
    for i, row in enumerate(rows):
        d, c, cost = row[:3]
        status = row[3] if len(row) > 3 else ("ok" if not np.isnan(cost) else "crash")
        budget = row[4] if len(row) > 4 else np.nan
        m = row[5] if len(row) > 5 else metric
        out.append(
            {
                "run_id": f"r{i}", "dataset_id": d, "config_id": c, "space": "sp", "space_version": "1",
                "protocol": f"cv3-{i}", "status": status, "metric": m, "score": 1 - cost, "cost": cost,
                "fit_seconds": 0.1, "budget": budget, "source": "test",
            }
        )  # fmt: skip
    return pd.DataFrame(out, columns=RUN_COLUMNS)


def matrix_runs(costs: dict[str, dict[str, float]]) -> pd.DataFrame:
    return make_runs([(d, c, v) for d, row in costs.items() for c, v in row.items()])


# Two clusters of datasets: "small" ones (a*) on which config "lin" wins, "big" ones (b*) where
# "tree" wins; "mid" is second everywhere; "bad" is bad everywhere.
CLUSTER_COSTS = {
    "a1": {"lin": 0.10, "tree": 0.40, "mid": 0.20, "bad": 0.50},
    "a2": {"lin": 0.12, "tree": 0.45, "mid": 0.22, "bad": 0.60},
    "b1": {"lin": 0.50, "tree": 0.10, "mid": 0.20, "bad": 0.70},
    "b2": {"lin": 0.55, "tree": 0.12, "mid": 0.25, "bad": 0.80},
    "b3": {"lin": 0.60, "tree": 0.15, "mid": 0.30, "bad": 0.90},
}
CLUSTER_MF = pd.DataFrame(
    {
        "log_n_rows": [4.0, 4.2, 9.0, 9.5, 10.0],
        "log_n_features": [1.0, 1.2, 3.0, 3.1, 3.3],
        "class_entropy": [0.9, 0.8, 0.5, 0.6, 0.4],
    },
    index=pd.Index(["a1", "a2", "b1", "b2", "b3"], name="dataset_id"),
)


@pytest.fixture()
def cluster_kb() -> tuple[pd.DataFrame, pd.DataFrame]:
    return CLUSTER_MF.copy(), matrix_runs(CLUSTER_COSTS)


# --------------------------------------------------------------------------------------------
# performance matrix and regret
# --------------------------------------------------------------------------------------------
def test_performance_matrix_takes_best_ok_full_budget_run() -> None:
    runs = make_runs(
        [
            ("d1", "c1", 0.30),
            ("d1", "c1", 0.20),  # second protocol, better: kept
            ("d1", "c2", 0.05, "ok", 0.25),  # low fidelity: ignored
            ("d1", "c2", 0.40, "ok", 1.0),
            ("d1", "c3", np.nan, "crash"),  # only failed: +inf
            ("d2", "c1", 0.10),
            ("d2", "c2", np.inf, "ok"),  # non-finite cost counts as failed
        ]
    )
    perf = performance_matrix(runs)
    assert list(perf.index) == ["d1", "d2"] and list(perf.columns) == ["c1", "c2", "c3"]
    assert perf.loc["d1", "c1"] == 0.20
    assert perf.loc["d1", "c2"] == 0.40
    assert np.isposinf(perf.loc["d1", "c3"])
    assert np.isposinf(perf.loc["d2", "c2"])
    assert np.isnan(perf.loc["d2", "c3"])  # never evaluated
    with_low = performance_matrix(runs, full_budget_only=False)
    assert with_low.loc["d1", "c2"] == 0.05


def test_performance_matrix_keeps_main_metric_per_dataset() -> None:
    runs = make_runs(
        [
            ("d1", "c1", 0.3, "ok", np.nan, "err"),
            ("d1", "c2", 0.2, "ok", np.nan, "err"),
            ("d1", "c3", 0.01, "ok", np.nan, "logloss"),  # other metric, minority: dropped
        ]
    )
    perf = performance_matrix(runs)
    assert list(perf.columns) == ["c1", "c2"]
    # imported runs (e.g. OpenML accuracies) never outvote the KB's own metric, however many they are
    imported = make_runs([(*r, "acc") for r in (("d1", f"o{i}", 0.1, "ok", np.nan) for i in range(5))])
    mixed = pd.concat([runs, imported.assign(source="import:openml")], ignore_index=True)
    assert list(performance_matrix(mixed).columns) == ["c1", "c2"]
    assert len(performance_matrix(pd.concat([runs, imported], ignore_index=True)).columns) == 5


def test_performance_matrix_reads_a_dataset_at_its_largest_dense_subsample() -> None:
    def at(rows: list[tuple], protocol: str) -> pd.DataFrame:
        return make_runs(rows).assign(protocol=protocol)

    base = "cv3-s0-holdout0.33-over20000"
    small = at([("d1", f"c{i}", 0.10 + 0.01 * i) for i in range(12)], f"{base}-sub1000")  # c0 best
    large = at([("d1", f"c{i}", 0.50 - 0.01 * i) for i in range(12)], f"{base}-sub4000")  # c11 best
    sparse = at([("d1", "c0", 0.01), ("d1", "c1", 0.02)], f"{base}-sub8000")  # 2 configs: not dense
    full = at([("d1", "x", 0.30), ("d1", "c11", 0.60)], "cv5-s0")  # all rows: always counts
    other = at([("d2", f"c{i}", 0.10 + 0.01 * i) for i in range(3)], f"{base}-sub1000")  # one size only
    perf = performance_matrix(pd.concat([small, large, sparse, full, other], ignore_index=True))
    assert perf.loc["d1", "c0"] == 0.50 and perf.loc["d1", "c11"] == pytest.approx(0.39)  # the 4,000 rows
    assert perf.loc["d1", "x"] == 0.30
    assert list(perf.loc["d2"].dropna()) == pytest.approx([0.10, 0.11, 0.12])
    # no dense size: the size with the most configurations
    perf = performance_matrix(pd.concat([small.head(5), sparse], ignore_index=True))
    assert perf.loc["d1"].notna().sum() == 5 and perf.loc["d1", "c0"] == 0.10
    assert protocol_rows(f"{base}-sub1000") == 1000 and protocol_rows("cv5-s0") == float("inf")


def test_normalised_regret_matrix() -> None:
    perf = pd.DataFrame(
        {"c1": [0.1, 0.5, np.inf, 2.0], "c2": [0.3, 0.5, np.inf, np.nan], "c3": [0.2, np.inf, np.inf, 4.0]},
        index=["d1", "d2", "d3", "d4"],
    )
    reg = normalised_regret_matrix(perf)
    assert "d3" not in reg.index  # only failures: no information
    np.testing.assert_allclose(reg.loc["d1"].to_numpy(), [0.0, 1.0, 0.5])
    np.testing.assert_allclose(reg.loc["d2"].to_numpy(), [0.0, 0.0, 1.0])  # max == min -> 0; failed -> 1
    assert reg.loc["d4", "c1"] == 0.0 and reg.loc["d4", "c3"] == 1.0 and np.isnan(reg.loc["d4", "c2"])
    assert ((reg.to_numpy() >= 0) | np.isnan(reg.to_numpy())).all()


def test_empty_inputs_give_empty_matrices() -> None:
    assert performance_matrix(pd.DataFrame()).empty
    assert performance_matrix(make_runs([])).empty
    assert normalised_regret_matrix(performance_matrix(pd.DataFrame())).empty
    kb = prepare_matrix(pd.DataFrame(), pd.DataFrame())
    assert kb.n_datasets == 0 and kb.n_configs == 0


def test_runs_without_required_columns_is_a_clear_error() -> None:
    bad = pd.DataFrame({"dataset_id": ["d"], "config_id": ["c"]})
    with pytest.raises(InputError, match="cost"):
        performance_matrix(bad)
    with pytest.raises(InputError, match="DataFrame"):
        performance_matrix([1, 2])  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# meta-feature scaling and distances
# --------------------------------------------------------------------------------------------
def test_fit_scaling_drops_useless_columns_and_imputes() -> None:
    mf = pd.DataFrame(
        {
            "a": [0.0, 5.0, 10.0, np.nan],
            "const": [1.0, 1.0, 1.0, 1.0],
            "mostly_nan": [np.nan, np.nan, np.nan, 3.0],
            "b": [1.0, 2.0, 3.0, 4.0],
            "text": ["1", "2", "x", "4"],  # coerced; 'x' -> NaN
        },
        index=["d1", "d2", "d3", "d4"],
    )
    sc = fit_scaling(mf)
    assert sc.columns == ("a", "b", "text")
    out = sc.transform(mf)
    assert isinstance(out, pd.DataFrame)
    assert out.notna().all().all()
    np.testing.assert_allclose(out["a"].to_numpy(), [0.0, 0.5, 1.0, 0.5])  # NaN -> scaled median
    np.testing.assert_allclose(out["b"].to_numpy(), [0.0, 1 / 3, 2 / 3, 1.0])
    q = sc.transform(pd.Series({"a": 20.0, "b": np.nan, "unknown": 3.0}))
    assert isinstance(q, pd.Series)
    assert q["a"] == 2.0 and q["b"] == pytest.approx(0.5)  # outside KB range kept; NaN imputed
    assert fit_scaling(mf, impute="mid").transform(mf)["a"].iloc[3] == 0.5


def test_distances_l1_and_l2_nearest_first() -> None:
    d = metafeature_distances(CLUSTER_MF.loc["b2"], CLUSTER_MF)
    assert d.index[0] == "b2" and d.iloc[0] == 0.0
    assert set(d.index[:3]) == {"b1", "b2", "b3"}
    assert list(d.index[3:]) == ["a2", "a1"]
    d2 = metafeature_distances(CLUSTER_MF.loc["b2"], CLUSTER_MF, metric="l2")
    assert d2.index[0] == "b2" and (d2.iloc[1:] > 0).all()
    # a query that knows only one meta-feature is compared on that one
    one = metafeature_distances(pd.Series({"log_n_rows": 4.2}), CLUSTER_MF)
    assert one.index[0] == "a2" and one.iloc[0] == 0.0
    # nothing comparable -> empty
    assert metafeature_distances(pd.Series({"other": 1.0}), CLUSTER_MF).empty
    with pytest.raises(InputError, match="l1"):
        metafeature_distances(CLUSTER_MF.loc["b2"], CLUSTER_MF, metric="cosine")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# strategies
# --------------------------------------------------------------------------------------------
def check_recs(recs: list[Recommendation], k: int) -> None:
    assert len(recs) <= k
    assert [r.rank for r in recs] == list(range(1, len(recs) + 1))
    assert len({r.config_id for r in recs}) == len(recs)  # no duplicates
    for r in recs:
        assert dataclasses.is_dataclass(r) and r.strategy in STRATEGIES
        assert 0.0 <= r.expected_regret <= 1.0
        assert r.explanation and "\n" not in r.explanation
        for s in r.sources:
            assert isinstance(s, Source) and 0.0 <= s.regret_there <= 1.0


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_every_strategy_returns_valid_ranked_lists(cluster_kb, strategy: str) -> None:
    mf, runs = cluster_kb
    q = pd.Series({"log_n_rows": 9.2, "log_n_features": 3.0, "class_entropy": 0.5, "n_classes": 2})
    recs = recommend(strategy, q, mf, runs, k=3)
    check_recs(recs, 3)
    assert len(recs) == 3
    all4 = recommend(strategy, q, mf, runs, k=10)
    assert {r.config_id for r in all4} == {"lin", "tree", "mid", "bad"}  # k larger than the KB: all


def test_recommendation_is_frozen(cluster_kb) -> None:
    mf, runs = cluster_kb
    rec = recommend("knn", CLUSTER_MF.loc["a1"], mf, runs, k=1)[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.rank = 5  # type: ignore[misc]


def test_knn_query_equal_to_kb_dataset_gets_its_best_config_first(cluster_kb) -> None:
    mf, runs = cluster_kb
    for d, best in (("a1", "lin"), ("b3", "tree")):
        recs = recommend("knn", CLUSTER_MF.loc[d], mf, runs, k=4)
        assert recs[0].config_id == best
        assert recs[0].sources[0].dataset_id == d and recs[0].sources[0].distance == 0.0
        # issue 14: 0 is the regret on the source dataset (still reported there); the expected regret
        # is an estimate for the query: the similarity-weighted regret over the KB datasets
        assert recs[0].sources[0].regret_there == 0.0
        assert 0.0 < recs[0].expected_regret < 1.0
        assert d in recs[0].explanation


def test_a_configuration_that_failed_on_a_source_is_explained_as_failed_not_as_its_worst_score() -> None:
    # "bad" timed out on a1 (the query's nearest dataset): its regret there is 1 in the matrix, and the
    # explanations said "a1 (regret 1.000 ...)" as if it had been scored the worst
    costs = {d: dict(row) for d, row in CLUSTER_COSTS.items()}
    rows = [(d, c, v) for d, row in costs.items() for c, v in row.items() if (d, c) != ("a1", "bad")]
    runs = make_runs([*rows, ("a1", "bad", np.nan, "timeout")])
    for strategy in ("surrogate", "hybrid", "knn", "zeroshot"):
        recs = recommend(strategy, CLUSTER_MF.loc["a1"], CLUSTER_MF, runs, k=4)
        bad = next(r for r in recs if r.config_id == "bad")
        on_a1 = [s for s in bad.sources if s.dataset_id == "a1"]
        if strategy in ("surrogate", "knn"):  # cites a1, the nearest dataset that evaluated it
            assert on_a1 and on_a1[0].failed and on_a1[0].regret_there == 1.0
        else:
            assert not on_a1 or on_a1[0].failed
        if on_a1:
            assert "failed there" in bad.explanation and "a1 (regret 1.000" not in bad.explanation
            assert "best on a1" not in bad.explanation  # a portfolio pick is not "best" where it failed
        scored = [s for r in recs for s in r.sources if (s.dataset_id, r.config_id) != ("a1", "bad")]
        assert scored and not any(s.failed for s in scored)


def test_knn_skips_duplicates_like_auto_sklearn(cluster_kb) -> None:
    mf, runs = cluster_kb
    # neighbours of b2: b2, b1/b3 (best: tree, duplicates), then a2 (best: lin)
    recs = recommend("knn", CLUSTER_MF.loc["b2"], mf, runs, k=2)
    assert [r.config_id for r in recs] == ["tree", "lin"]
    assert recs[1].sources[0].dataset_id in {"a1", "a2"}
    # strict auto-sklearn (one round): only the distinct bests of the neighbours
    strict = recommend("knn", CLUSTER_MF.loc["b2"], mf, runs, k=10, rounds=1)
    assert [r.config_id for r in strict] == ["tree", "lin"]
    # default: further rounds give each neighbour's second best
    more = recommend("knn", CLUSTER_MF.loc["b2"], mf, runs, k=10)
    assert [r.config_id for r in more][:3] == ["tree", "lin", "mid"]


def test_portfolio_first_pick_covers_most_datasets() -> None:
    # "wide" is best on 3 of 5 datasets, each "narrow_*" on one; greedy: wide first, then the narrow ones
    costs = {
        "d1": {"wide": 0.1, "narrow_4": 0.9, "narrow_5": 0.9},
        "d2": {"wide": 0.1, "narrow_4": 0.9, "narrow_5": 0.9},
        "d3": {"wide": 0.1, "narrow_4": 0.9, "narrow_5": 0.9},
        "d4": {"wide": 0.9, "narrow_4": 0.1, "narrow_5": 0.5},
        "d5": {"wide": 0.9, "narrow_4": 0.5, "narrow_5": 0.1},
    }
    recs = recommend("portfolio", None, None, matrix_runs(costs), k=3)
    assert recs[0].config_id == "wide"
    assert {s.dataset_id for s in recs[0].sources} == {"d1", "d2", "d3"}
    assert {r.config_id for r in recs[1:]} == {"narrow_4", "narrow_5"}
    assert "3.000" not in recs[0].explanation and "1.000 -> 0.400" in recs[0].explanation


def test_portfolio_on_clusters_starts_with_the_generalist(cluster_kb) -> None:
    mf, runs = cluster_kb
    recs = recommend("portfolio", CLUSTER_MF.loc["a1"], mf, runs, k=4)
    # mid is second everywhere (lowest mean regret), then tree closes the big cluster, then lin
    assert [r.config_id for r in recs] == ["mid", "tree", "lin", "bad"]
    assert {s.dataset_id for s in recs[1].sources} == {"b1", "b2", "b3"}
    # dataset-independent: the same portfolio for any query, even one without meta-features
    other = recommend("portfolio", pd.Series(dtype=float), mf, runs, k=4)
    assert [r.config_id for r in other] == [r.config_id for r in recs]


def naive_greedy(R: np.ndarray, w: np.ndarray, k: int) -> list[int]:
    """Textbook greedy (no incremental updates) on a dense regret matrix."""
    cur = np.ones(R.shape[0])
    picks: list[int] = []
    for _ in range(k):
        vals = [np.inf if j in picks else float(w @ np.minimum(cur, R[:, j])) for j in range(R.shape[1])]
        j = int(np.argmin(vals))
        picks.append(j)
        cur = np.minimum(cur, R[:, j])
    return picks


def test_portfolio_equals_naive_greedy_on_dense_random_matrix() -> None:
    rng = np.random.default_rng(3)
    cost = rng.random((40, 25))
    runs = make_runs([(f"d{i:02d}", f"c{j:02d}", cost[i, j]) for i in range(40) for j in range(25)])
    kb = prepare_matrix(None, runs)
    expected = naive_greedy(kb.regret, np.ones(40), 10)
    recs = recommend("portfolio", None, None, runs, k=10)
    assert [r.config_id for r in recs] == [kb.config_ids[j] for j in expected]
    # expected regret of a portfolio pick: the config's mean regret, shrunk by one pseudo-observation
    j0 = expected[0]
    g = (kb.regret[:, j0].sum() + kb.regret.mean()) / 41
    assert recs[0].expected_regret == pytest.approx(g)


def test_portfolio_on_sparse_kb_gives_no_credit_to_unevaluated_pairs() -> None:
    # 'inc_d1' (a search incumbent) was evaluated on d1 only; 'shared' is fair everywhere, 'a' and
    # 'b' are best on two datasets each
    costs = {
        "d1": {"shared": 0.3, "a": 0.9, "b": 0.9, "inc_d1": 0.1},
        "d2": {"shared": 0.3, "a": 0.1, "b": 0.9},
        "d3": {"shared": 0.3, "a": 0.1, "b": 0.9},
        "d4": {"shared": 0.3, "a": 0.9, "b": 0.1},
        "d5": {"shared": 0.3, "a": 0.9, "b": 0.1},
    }
    runs = matrix_runs(costs)
    ignore = recommend("portfolio", None, None, runs, k=4)
    assert ignore[0].config_id == "shared" and ignore[-1].config_id == "inc_d1"
    # imputing its (shrunk) mean regret everywhere makes the once-seen incumbent look best
    impute = recommend("portfolio", None, None, runs, k=4, missing="impute")
    assert impute[0].config_id == "inc_d1"
    with pytest.raises(InputError, match="missing"):
        recommend("portfolio", None, None, runs, k=2, missing="zero")


def test_weighted_portfolio_is_tailored_to_the_query(cluster_kb) -> None:
    mf, runs = cluster_kb
    near_a = pd.Series({"log_n_rows": 4.1, "log_n_features": 1.1, "class_entropy": 0.85})
    plain = recommend("portfolio", near_a, mf, runs, k=2)
    # with a small KB the default kernel (10 neighbours) is nearly flat; focus on the 2 nearest
    tailored = recommend("weighted_portfolio", near_a, mf, runs, k=2, n_neighbors=2)
    assert recommend("weighted_portfolio", near_a, mf, runs, k=1)[0].config_id == "mid"
    assert plain[0].config_id == "mid"  # the generalist of the whole KB
    assert tailored[0].config_id == "lin"  # what the similar datasets need
    assert tailored[0].sources[0].dataset_id in {"a1", "a2"}
    # huge floor: back to the plain portfolio
    flat = recommend("weighted_portfolio", near_a, mf, runs, k=2, n_neighbors=2, floor=1.0)
    assert [r.config_id for r in flat] == [r.config_id for r in plain]


def test_surrogate_prediction_is_weighted_mean_shrunk_to_global_mean(cluster_kb) -> None:
    mf, runs = cluster_kb
    q = CLUSTER_MF.loc["a1"]
    recs = recommend("surrogate", q, mf, runs, k=4, shrink=0.0, tau=0.05)
    assert recs[0].config_id == "lin" and recs[0].expected_regret == pytest.approx(0.0, abs=1e-6)
    # by hand: kernel weights, shrink=1 toward the global mean (shrunk by one pseudo-observation)
    kb = prepare_matrix(mf, runs)
    ctx = RecommendContext.build(kb, q)
    dist = ctx.distances()
    assert dist is not None
    d1, dn = np.sort(dist)[0], np.sort(dist)[min(10, 5) - 1]
    w = np.exp(-(dist - d1) / (1.0 * (dn - d1)))
    R = kb.regret
    mu = np.nanmean(R)
    g = (np.nansum(R, axis=0) + PRIOR_STRENGTH * mu) / (R.shape[0] + PRIOR_STRENGTH)
    pred = (w @ R + g) / (w.sum() + 1)
    got = {r.config_id: r.expected_regret for r in recommend("surrogate", q, mf, runs, k=4)}
    for j, c in enumerate(kb.config_ids):
        assert got[c] == pytest.approx(pred[j])
    assert list(got) == [kb.config_ids[j] for j in np.argsort(pred)]
    # with the size kernel each weight also decays with the gap in log rows
    gaps = np.abs(CLUSTER_MF.loc[list(kb.dataset_ids), "log_n_rows"].to_numpy() - q["log_n_rows"])
    ws = w * np.exp(-gaps / 0.25)
    pred = (ws @ R + g) / (ws.sum() + 1)
    got = {r.config_id: r.expected_regret for r in recommend("surrogate", q, mf, runs, k=4, size_scale=0.25)}
    for j, c in enumerate(kb.config_ids):
        assert got[c] == pytest.approx(pred[j])


def test_the_size_kernel_prefers_what_wins_on_datasets_of_the_querys_size() -> None:
    """Six small datasets close to the query in the other meta-features, on which "et" wins, and three of
    the query's size but far from it otherwise, on which "gbm" wins: the size kernel gives the large
    query "gbm" first, the meta-feature similarity alone "et"; a small query gets "et" either way."""
    names = [f"s{i}" for i in range(6)] + [f"l{i}" for i in range(3)]
    mf = pd.DataFrame(
        {"log_n_rows": [6.0 + 0.1 * i for i in range(6)] + [9.5, 9.6, 9.7],
         "log_n_features": [2.0] * 6 + [3.0] * 3, "class_entropy": [0.9] * 6 + [0.2] * 3},
        index=pd.Index(names, name="dataset_id"),
    )  # fmt: skip
    costs = {n: ({"et": 0.10, "gbm": 0.20, "lin": 0.5} if n.startswith("s") else {"et": 0.25, "gbm": 0.10, "lin": 0.5})
             for n in names}
    runs = matrix_runs(costs)
    q = pd.Series({"log_n_rows": 9.6, "log_n_features": 2.0, "class_entropy": 0.9})
    assert recommend("hybrid", q, mf, runs, k=1, size_scale=0.25)[0].config_id == "gbm"
    assert recommend("surrogate", q, mf, runs, k=1, size_scale=0.25)[0].config_id == "gbm"
    assert recommend("surrogate", q, mf, runs, k=1)[0].config_id == "et"  # off by default
    small = q.copy()
    small["log_n_rows"] = 6.2
    assert recommend("hybrid", small, mf, runs, k=1, size_scale=0.25)[0].config_id == "et"


def test_surrogate_handles_sparse_matrix_and_diversify() -> None:
    # c_rare was evaluated once with regret 0 on a far dataset: shrinkage keeps it below c_good
    runs = matrix_runs(
        {
            "x1": {"c_good": 0.1, "c_bad": 0.9},
            "x2": {"c_good": 0.1, "c_bad": 0.9},
            "x3": {"c_good": 0.2, "c_bad": 0.8, "c_rare": 0.1},
        }
    )
    mf = pd.DataFrame({"f": [0.0, 0.1, 1.0]}, index=["x1", "x2", "x3"])
    recs = recommend("surrogate", pd.Series({"f": 0.05}), mf, runs, k=3)
    assert recs[0].config_id == "c_good"
    div = recommend("surrogate", pd.Series({"f": 0.05}), mf, runs, k=3, diversify=True)
    check_recs(div, 3)
    assert div[0].config_id == "c_good"


def test_zeroshot_uses_size_features_and_tolerates_missing_columns() -> None:
    costs = {
        "tiny": {"lin": 0.1, "tree": 0.5},
        "huge": {"lin": 0.5, "tree": 0.1},
    }
    runs = matrix_runs(costs)
    # raw counts (log-transformed internally) under pymfe-like names, plus a noise column it must ignore
    mf = pd.DataFrame(
        {"nr_inst": [100, 1_000_000], "NR_ATTR": [5, 500], "noise": [9.0, -9.0]}, index=["tiny", "huge"]
    )
    q = pd.Series({"nr_inst": 200, "NR_ATTR": 4, "noise": -9.0})
    recs = recommend("zeroshot", q, mf, runs, k=2)
    assert [r.config_id for r in recs] == ["lin", "tree"]
    assert recs[0].sources[0].dataset_id == "tiny"
    # knn uses every column: the noise column pulls it to 'huge'
    knn = recommend("knn", pd.Series({"noise": -9.0}), mf, runs, k=1)
    assert knn[0].config_id == "tree"
    # explicit column choice
    only_noise = recommend("zeroshot", q, mf, runs, k=1, features=["noise"])
    assert only_noise[0].sources[0].dataset_id == "huge"
    # no size meta-feature at all -> nothing to say
    assert recommend("zeroshot", q, mf[["noise"]], runs, k=2) == []


def test_exclude_and_allowed_filters(cluster_kb) -> None:
    mf, runs = cluster_kb
    q = CLUSTER_MF.loc["a1"]
    for strategy in STRATEGIES:
        recs = recommend(strategy, q, mf, runs, k=4, exclude={"a1", "a2"})
        used = {s.dataset_id for r in recs for s in r.sources}
        assert not used & {"a1", "a2"}, strategy
        allowed = recommend(strategy, q, mf, runs, k=4, allowed_configs={"mid", "bad", "unknown"})
        assert {r.config_id for r in allowed} <= {"mid", "bad"}, strategy
        assert allowed and allowed[0].config_id == "mid", strategy
        assert recommend(strategy, q, mf, runs, k=4, allowed_configs=set()) == []
        assert recommend(strategy, q, mf, runs, k=4, allowed_configs={"unknown"}) == []
        assert recommend(strategy, q, mf, runs, k=4, exclude=set(CLUSTER_COSTS)) == []
    # excluding the query's twin: knn now answers from a2
    recs = recommend("knn", q, mf, runs, k=1, exclude={"a1"})
    assert recs[0].config_id == "lin" and recs[0].sources[0].dataset_id == "a2"
    # a single string is one dataset id, not a set of characters
    assert recommend("knn", q, mf, runs, k=1, exclude="a1")[0].sources[0].dataset_id == "a2"


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_empty_kb_gives_empty_list(strategy: str) -> None:
    q = CLUSTER_MF.loc["a1"]
    assert recommend(strategy, q, CLUSTER_MF, pd.DataFrame()) == []
    assert recommend(strategy, q, pd.DataFrame(), make_runs([])) == []
    assert recommend(strategy, q, None, make_runs([])) == []
    failed = make_runs([("a1", "lin", np.nan, "crash"), ("a2", "tree", np.nan, "timeout")])
    assert recommend(strategy, q, CLUSTER_MF, failed) == []


def test_query_without_usable_metafeatures(cluster_kb) -> None:
    mf, runs = cluster_kb
    for q in (pd.Series({"unrelated": 1.0}), pd.Series(dtype=float), None, pd.Series({"log_n_rows": np.nan})):
        assert recommend("knn", q, mf, runs) == []
        assert recommend("surrogate", q, mf, runs) == []
        assert recommend("zeroshot", q, mf, runs) == []
        assert [r.config_id for r in recommend("portfolio", q, mf, runs, k=2)] == ["mid", "tree"]
        wp = recommend("weighted_portfolio", q, mf, runs, k=2)
        assert [r.config_id for r in wp] == ["mid", "tree"] and "equal weights" in wp[0].explanation
    # KB without any meta-features: same
    assert recommend("knn", CLUSTER_MF.loc["a1"], None, runs) == []
    assert recommend("portfolio", CLUSTER_MF.loc["a1"], None, runs, k=1)[0].config_id == "mid"


def test_query_as_mapping_or_one_row_frame(cluster_kb) -> None:
    mf, runs = cluster_kb
    as_dict = recommend("knn", CLUSTER_MF.loc["b1"].to_dict(), mf, runs, k=1)
    as_frame = recommend("knn", CLUSTER_MF.loc[["b1"]], mf, runs, k=1)
    assert as_dict[0].config_id == as_frame[0].config_id == "tree"
    with pytest.raises(InputError, match="one dataset"):
        recommend("knn", CLUSTER_MF, mf, runs, k=1)
    with pytest.raises(InputError, match="Series"):
        recommend("knn", [1.0, 2.0], mf, runs, k=1)  # type: ignore[arg-type]


def test_bad_arguments_raise_one_line_metalearn_errors(cluster_kb) -> None:
    mf, runs = cluster_kb
    q = CLUSTER_MF.loc["a1"]
    cases = [
        (lambda: recommend("nope", q, mf, runs), "unknown recommender strategy"),
        (lambda: recommend("knn", q, mf, runs, k=0), "positive integer"),
        (lambda: recommend("knn", q, mf, runs, k=True), "positive integer"),
        (lambda: recommend("knn", q, mf, runs, bandwidth=3), "bad parameters"),
        (lambda: recommend("knn", q, mf, runs, metric="cos"), "'l1' or 'l2'"),
        (lambda: recommend(42, q, mf, runs), "strategy must be"),  # type: ignore[arg-type]
        (lambda: recommend("knn", q, "mf.csv", runs), "DataFrame"),  # type: ignore[arg-type]
    ]
    for call, msg in cases:
        with pytest.raises(MetaLearnError, match=msg) as info:
            call()
        assert isinstance(info.value, ValueError) and "\n" not in str(info.value)


def test_custom_strategy_callable_and_registry(cluster_kb) -> None:
    mf, runs = cluster_kb
    assert DEFAULT_STRATEGY in STRATEGIES
    assert {"knn", "portfolio", "weighted_portfolio", "surrogate", "zeroshot"} <= set(STRATEGIES)

    def first_candidate(ctx: RecommendContext, k: int) -> list[Recommendation]:
        j = int(np.flatnonzero(ctx.configs)[0])
        return [Recommendation(1, ctx.matrix.config_ids[j], "custom", 0.5, (), "first candidate")]

    recs = recommend(first_candidate, CLUSTER_MF.loc["a1"], mf, runs, k=1)
    assert recs[0].strategy == "custom"


def test_prepare_matrix_aligns_metafeatures_with_regret_rows(cluster_kb) -> None:
    mf, runs = cluster_kb
    extra = pd.concat([mf, pd.DataFrame({"log_n_rows": [1.0]}, index=["no_runs"])])
    kb = prepare_matrix(extra.iloc[::-1], runs)  # order and extra rows do not matter
    assert isinstance(kb, RegretMatrix)
    assert list(kb.dataset_ids) == sorted(CLUSTER_COSTS)
    assert kb.regret.shape == (5, 4) and kb.features.shape == (5, 3)
    np.testing.assert_allclose(kb.metafeature_row("b1").to_numpy(), CLUSTER_MF.loc["b1"].to_numpy())
    frame = kb.regret_frame()
    assert frame.loc["a1", "lin"] == 0.0 and frame.loc["a1", "bad"] == 1.0


def test_recommend_from_prepared_kb_equals_recommend(cluster_kb) -> None:
    mf, runs = cluster_kb
    kb = prepare_matrix(mf, runs)
    q = pd.Series({"log_n_rows": 9.2, "log_n_features": 3.0, "class_entropy": 0.5})
    for strategy in STRATEGIES:
        a = recommend(strategy, q, mf, runs, k=3, exclude={"b1"})
        b = recommend_from_matrix(strategy, q, kb, k=3, exclude={"b1"})
        assert a == b, strategy
    assert recommend_from_matrix("knn", q, prepare_matrix(None, pd.DataFrame())) == []


def test_reused_kb_answers_like_a_fresh_one_for_interleaved_queries() -> None:
    """A prepared KB caches the query-independent state of queries without exclusions (the service
    reuses one per kind); queries with and without exclusions, in any order, must answer exactly as
    a freshly prepared KB without the excluded datasets, and the weighted greedy must pick what a textbook greedy picks."""
    rng = np.random.default_rng(7)
    n_ds, n_cf = 30, 40
    cost = rng.random((n_ds, n_cf))
    seen = rng.random((n_ds, n_cf)) < 0.7  # a sparse matrix, as after searches
    runs = make_runs(
        [(f"d{i:02d}", f"c{j:02d}", cost[i, j]) for i in range(n_ds) for j in range(n_cf) if seen[i, j]]
    )
    mf = pd.DataFrame(
        rng.normal(size=(n_ds, 4)), index=[f"d{i:02d}" for i in range(n_ds)], columns=list("abcd")
    )
    mf.loc["d03", "b"] = np.nan
    shared = prepare_matrix(mf, runs)
    queries = [
        (pd.Series(rng.normal(size=4), index=list("abcd")), excl)
        for excl in ((), ("d05",), (), ("d00", "d29"))
    ]
    for strategy in STRATEGIES:
        for q, excl in queries * 2:
            # reference: a KB prepared without the excluded datasets' runs at all
            fresh = recommend_from_matrix(strategy, q, prepare_matrix(mf, runs[~runs["dataset_id"].isin(excl)]), k=8)
            assert recommend_from_matrix(strategy, q, shared, k=8, exclude=excl) == fresh, (strategy, excl)
    # the weighted portfolio's picks equal a textbook greedy with the same weights (no credit for NaN)
    ctx = RecommendContext.build(shared, queries[0][0])
    rows, _, R = ctx.submatrix()
    from metalearn.metalearning.strategies import _kernel_weights

    dist = ctx.distances()
    w = 0.7 * _kernel_weights(np.where(ctx.datasets, dist, np.inf), 10, 1.0)[rows] + 0.3
    expected = naive_greedy(np.where(np.isnan(R), 1.0, R), w, 8)
    got = recommend_from_matrix("weighted_portfolio", queries[0][0], shared, k=8)
    assert [r.config_id for r in got] == [shared.config_ids[ctx.submatrix()[1][j]] for j in expected]


def test_hybrid_is_the_surrogate_guess_then_the_weighted_greedy_from_it() -> None:
    rng = np.random.default_rng(11)
    n_ds, n_cf = 25, 30
    cost = rng.random((n_ds, n_cf))
    runs = make_runs([(f"d{i:02d}", f"c{j:02d}", cost[i, j]) for i in range(n_ds) for j in range(n_cf)])
    mf = pd.DataFrame(
        rng.normal(size=(n_ds, 3)), index=[f"d{i:02d}" for i in range(n_ds)], columns=list("abc")
    )
    kb = prepare_matrix(mf, runs)
    q = pd.Series(rng.normal(size=3), index=list("abc"))
    got = recommend_from_matrix("hybrid", q, kb, k=6)
    sur = recommend_from_matrix("surrogate", q, kb, k=1)
    assert got[0].config_id == sur[0].config_id and got[0].expected_regret == sur[0].expected_regret
    assert got[0].explanation.startswith(sur[0].explanation)
    # the rest: a textbook greedy with the weighted portfolio's weights, started from that pick
    from metalearn.metalearning.strategies import _kernel_weights

    ctx = RecommendContext.build(kb, q)
    rows, cols, R = ctx.submatrix()
    w = 0.7 * _kernel_weights(np.where(ctx.datasets, ctx.distances(), np.inf), 10, 1.0)[rows] + 0.3
    cur = np.minimum(np.ones(len(rows)), R[:, list(kb.config_ids).index(sur[0].config_id)])
    picks = [list(kb.config_ids).index(sur[0].config_id)]
    for _ in range(5):
        vals = [np.inf if j in picks else float(w @ np.minimum(cur, R[:, j])) for j in range(R.shape[1])]
        picks.append(int(np.argmin(vals)))
        cur = np.minimum(cur, R[:, picks[-1]])
    assert [r.config_id for r in got] == [kb.config_ids[cols[j]] for j in picks]
    assert len({r.config_id for r in got}) == 6 and [r.rank for r in got] == list(range(1, 7))
