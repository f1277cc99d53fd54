"""Leave-one-dataset-out evaluation: exact baselines on hand-made matrices, speed at KB scale, and the
recommenders against ``random`` on real performance matrices: the shipped KB's (the product's own runs on the
corpus) and, marked slow, one measured here on real corpus datasets with plain scikit-learn pipelines."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metalearn.data.errors import InputError
from metalearn.metalearning.context import RecommendContext
from metalearn.metalearning.explain import Recommendation
from metalearn.metalearning.loo import (
    BASELINES,
    best_strategy,
    expected_min_of_random,
    leave_one_dataset_out,
    loo_per_dataset,
    summarise_loo,
    variant,
)
from metalearn.metalearning.strategies import DEFAULT_STRATEGY, STRATEGIES


def runs_from_matrix(cost: pd.DataFrame) -> pd.DataFrame:
    """A runs frame in the KB layout from a datasets x configs cost matrix (NaN: not evaluated)."""
    long = cost.stack().dropna().rename("cost").reset_index()
    long.columns = ["dataset_id", "config_id", "cost"]
    n = len(long)
    return long.assign(
        run_id=[f"r{i}" for i in range(n)], space="sp", space_version="1", protocol="cv3",
        status="ok", metric="err", score=1 - long["cost"], fit_seconds=0.0, budget=np.nan, source="test",
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# the random baseline is exact
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("s", [0, 1, 2, 3, 5, 7, 9])
def test_expected_min_of_random_matches_enumeration(s: int) -> None:
    values = np.array([0.0, 0.3, 0.3, 0.5, 0.9, 1.0, 0.05])
    if s == 0:
        assert math.isnan(expected_min_of_random(values, s))
        assert expected_min_of_random(values, s, cap=0.4) == 0.4
        return
    combos = list(itertools.combinations(values, min(s, values.size)))
    exact = np.mean([min(c) for c in combos])
    assert expected_min_of_random(values, s) == pytest.approx(exact)
    capped = np.mean([min(min(c), 0.2) for c in combos])
    assert expected_min_of_random(values, s, cap=0.2) == pytest.approx(capped)


# --------------------------------------------------------------------------------------------
# LOO logic on hand-made matrices
# --------------------------------------------------------------------------------------------
def cluster_problem(n_per: int = 6) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two clusters of datasets with identical meta-features within a cluster; each cluster has its
    own best config, 'mid' is mediocre everywhere, noise configs are bad."""
    rng = np.random.default_rng(0)
    ids = [f"a{i}" for i in range(n_per)] + [f"b{i}" for i in range(n_per)]
    mf = pd.DataFrame(
        {"f1": [0.0] * n_per + [1.0] * n_per, "f2": [5.0] * n_per + [1.0] * n_per}, index=ids
    ) + rng.normal(scale=0.01, size=(2 * n_per, 2))
    cost = pd.DataFrame(
        {
            "best_a": [0.1] * n_per + [0.8] * n_per,
            "best_b": [0.8] * n_per + [0.1] * n_per,
            "mid": [0.4] * (2 * n_per),
            **{f"noise{j}": rng.uniform(0.5, 1.0, 2 * n_per) for j in range(5)},
        },
        index=ids,
    )
    return mf, runs_from_matrix(cost)


def test_loo_on_clusters_knn_finds_the_cluster_best() -> None:
    mf, runs = cluster_problem()
    table = leave_one_dataset_out(mf, runs, ["knn", "portfolio", "zeroshot"], ks=(1, 2, 3))
    per = table.attrs["per_dataset"]
    assert set(per["strategy"]) == {"knn", "portfolio", "zeroshot", *BASELINES}
    assert set(per["dataset_id"]) == set(mf.index) and table.attrs["n_skipped"] == 0
    row = table.set_index(["strategy", "k"])
    assert row.loc[("knn", 1), "mean"] == 0.0  # the neighbour in its own cluster knows the best config
    assert row.loc[("oracle", 1), "mean"] == 0.0
    # portfolio: 'mid' first (never bad), then the cluster bests -> 0 at k=3
    assert row.loc[("portfolio", 1), "mean"] == pytest.approx(
        per.query("strategy=='portfolio' and k==1")["regret"].mean()
    )
    assert row.loc[("portfolio", 3), "mean"] == 0.0
    assert row.loc[("knn", 1), "mean"] < row.loc[("random", 1), "mean"]
    # random at k=1 = mean over held-out datasets of the mean regret of the pool
    kbreg = per.query("strategy=='random' and k==1")["regret"]
    assert (kbreg > 0.3).all()
    assert row.loc[("knn", 1), "n_datasets"] == 12
    assert row.loc[("knn", 1), "win_rate"] == 1.0 and row.loc[("knn", 1), "coverage"] == 1.0
    assert row.loc[("knn", 1), "ci_low"] <= row.loc[("knn", 1), "mean"] <= row.loc[("knn", 1), "ci_high"]
    assert best_strategy(table) == "knn"


def test_loo_never_leaks_the_held_out_dataset() -> None:
    mf, runs = cluster_problem(n_per=3)
    seen: list[tuple[str, set[str]]] = []

    def spy(ctx: RecommendContext, k: int) -> list[Recommendation]:
        usable = set(ctx.matrix.dataset_ids[ctx.datasets].tolist())
        seen.append((str(ctx.query.tolist()), usable))
        return STRATEGIES["knn"](ctx, k)

    per = loo_per_dataset(mf, runs, {"spy": spy}, ks=(1,))
    assert len(seen) == 6
    held_out = per.query("strategy == 'spy'")["dataset_id"].tolist()
    for h, (_, usable) in zip(held_out, seen, strict=True):
        assert h not in usable and len(usable) == 5


def test_skip_mode_reports_coverage_and_fills_with_random() -> None:
    mf, runs = cluster_problem(n_per=4)
    # 'only_new' recommends configs no held-out dataset evaluated: it must be scored like random
    runs = pd.concat(
        [runs, runs_from_matrix(pd.DataFrame({"never_elsewhere": [0.0]}, index=["ghost"]))], ignore_index=True
    )
    mf.loc["ghost"] = [9.0, 9.0]

    def only_bad(ctx: RecommendContext, k: int) -> list[Recommendation]:
        recs = STRATEGIES["portfolio"](ctx, ctx.matrix.n_configs)
        return [r for r in recs if r.config_id.startswith("noise")][:1]

    table = leave_one_dataset_out(mf, runs, {"only_bad": only_bad}, ks=(1, 3))
    row = table.set_index(["strategy", "k"])
    assert row.loc[("only_bad", 1), "coverage"] == 1.0
    assert row.loc[("only_bad", 3), "coverage"] == pytest.approx(1 / 3)
    per = table.attrs["per_dataset"].set_index(["dataset_id", "strategy", "k"])
    assert table.attrs["n_skipped"] == 1  # 'ghost' shares no configuration with the rest
    # with 1 found of 3, the other 2 slots are random draws from the rest of the pool
    assert (
        per.xs(("only_bad", 3), level=(1, 2))["regret"] <= per.xs(("only_bad", 1), level=(1, 2))["regret"]
    ).all()
    # restrict mode: recommendations are limited to evaluated configs
    restricted = leave_one_dataset_out(mf, runs, ["knn"], ks=(1,), mode="restrict")
    assert restricted.set_index(["strategy", "k"]).loc[("knn", 1), "mean"] == 0.0


def test_loo_argument_errors() -> None:
    mf, runs = cluster_problem(n_per=2)
    with pytest.raises(InputError, match="unknown recommender strategy"):
        leave_one_dataset_out(mf, runs, ["nope"])
    with pytest.raises(InputError, match="reserved"):
        leave_one_dataset_out(mf, runs, {"random": "knn"})
    with pytest.raises(InputError, match="ks must be"):
        leave_one_dataset_out(mf, runs, ["knn"], ks=(0, 1))
    with pytest.raises(InputError, match="mode"):
        leave_one_dataset_out(mf, runs, ["knn"], mode="both")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="baselines"):
        best_strategy(summarise_loo(loo_per_dataset(mf, runs, ["knn"], ks=(1,))).query("strategy != 'knn'"))
    with pytest.raises(InputError, match="leave_one_dataset_out"):
        best_strategy(pd.DataFrame({"x": [1]}))
    with pytest.raises(InputError, match="unknown"):
        variant("nope", tau=1.0)
    # an empty KB is not an error: an empty table
    empty = leave_one_dataset_out(pd.DataFrame(), runs.iloc[:0], ["knn"])
    assert empty.empty and list(empty.columns)[:3] == ["kind", "strategy", "k"]


def test_loo_speed_at_kb_scale() -> None:
    """~250 datasets x 1000 configs (60% evaluated): LOO of the vectorised strategies in seconds."""
    rng = np.random.default_rng(0)
    nd, nc = 250, 1000
    latent = rng.normal(size=(nd, 3))
    mf = pd.DataFrame(latent @ rng.normal(size=(3, 30)), index=[f"d{i}" for i in range(nd)])
    mf.columns = [f"mf{j}" for j in range(30)]
    cost = latent @ rng.normal(size=(3, nc)) + rng.normal(size=(nd, nc))
    cost[rng.random((nd, nc)) > 0.6] = np.nan
    runs = runs_from_matrix(pd.DataFrame(cost, index=mf.index, columns=[f"c{j}" for j in range(nc)]))
    t0 = time.process_time()
    table = leave_one_dataset_out(mf, runs, ["knn", "portfolio", "surrogate", "zeroshot"], ks=(1, 5, 10, 25))
    cpu = time.process_time() - t0
    print(f"\nLOO 250x1000, 4 strategies: {cpu:.1f} s CPU; per strategy {table.attrs['seconds']}")
    assert table["n_datasets"].min() == nd
    assert cpu < 30.0
    row = table.set_index(["strategy", "k"])
    # 60% evaluated: skipping unevaluated configs still fills the top-k; zeroshot finds no size
    # meta-feature among mf0..mf29, so it abstains (coverage 0, scored as random)
    assert row.loc[["knn", "portfolio", "surrogate"], "coverage"].min() > 0.95
    assert (row.loc["zeroshot", "coverage"] == 0).all()
    assert np.allclose(row.loc["zeroshot", "mean"], row.loc["random", "mean"])
    # costs come from dataset-specific latent factors: only similarity-based strategies can know them
    # (no config is good everywhere, so the static portfolio is about as good as random here)
    for s in ("knn", "surrogate"):
        for k in (1, 5):
            assert row.loc[(s, k), "mean"] < 0.5 * row.loc[("random", k), "mean"], (s, k)


# --------------------------------------------------------------------------------------------
# real data: 33 corpus classification datasets x 25 scikit-learn configurations, 3-fold CV
# --------------------------------------------------------------------------------------------
REAL_DATASETS = [
    # binary
    "analcatdata_lawsuit", "appendicitis", "biomed", "breast_cancer", "bupa", "colic", "corral",
    "haberman", "hepatitis", "ionosphere", "monk1", "monk2", "mux6", "parity5+5", "prnn_synth",
    "sonar", "threeOf9", "xd6", "banana", "twonorm", "ring", "vote",
    # multiclass
    "analcatdata_germangss", "cars", "dermatology", "ecoli", "glass", "hayes_roth", "led7",
    "new_thyroid", "tae", "waveform_21", "wine_recognition",
]  # fmt: skip
MAX_ROWS = 500


def real_configs() -> dict[str, Callable[[], object]]:
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.ensemble import ExtraTreesClassifier, HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeClassifier

    cfg: dict[str, Callable[[], object]] = {}
    for C in (0.01, 0.1, 1.0, 10.0, 100.0):
        cfg[f"logreg_C{C:g}"] = lambda C=C: LogisticRegression(C=C, max_iter=300)
    for n in (1, 5, 15, 40):
        cfg[f"knn_{n}"] = lambda n=n: KNeighborsClassifier(n_neighbors=n)
    cfg["knn_5_distance"] = lambda: KNeighborsClassifier(5, weights="distance")
    for depth, leaf in ((2, 1), (5, 1), (None, 1), (None, 10)):
        cfg[f"tree_d{depth}_l{leaf}"] = lambda d=depth, leaf=leaf: DecisionTreeClassifier(
            max_depth=d, min_samples_leaf=leaf, random_state=0
        )
    for feats, leaf in (("sqrt", 1), (1.0, 1), ("sqrt", 5)):
        cfg[f"rf_{feats}_l{leaf}"] = lambda f=feats, leaf=leaf: RandomForestClassifier(
            20, max_features=f, min_samples_leaf=leaf, random_state=0
        )
    cfg["extratrees_sqrt"] = lambda: ExtraTreesClassifier(20, max_features="sqrt", random_state=0)
    for lr, leaves in ((0.1, 8), (0.3, 16)):
        cfg[f"hgb_lr{lr}_leaves{leaves}"] = lambda lr=lr, leaves=leaves: HistGradientBoostingClassifier(
            learning_rate=lr, max_iter=30, max_leaf_nodes=leaves, early_stopping=False, random_state=0
        )
    cfg["gaussian_nb"] = GaussianNB
    cfg["lda"] = LinearDiscriminantAnalysis
    for C in (0.1, 1.0, 10.0):
        cfg[f"svc_rbf_C{C:g}"] = lambda C=C: SVC(C=C)
    return cfg


def measure_real_matrix(corpus: Path) -> dict[str, object]:
    """Real 3-fold CV balanced error of every config on every dataset (<= MAX_ROWS rows), and simple
    meta-features computed here with pandas. Failed fits are kept as failed runs."""
    from sklearn.impute import SimpleImputer
    from sklearn.model_selection import StratifiedKFold, cross_validate
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    manifest = pd.read_csv(corpus / "manifest.csv").set_index("name")
    configs = real_configs()
    runs: list[list[object]] = []
    metafeatures: dict[str, dict[str, float]] = {}
    for name in REAL_DATASETS:
        df = pd.read_parquet(corpus / manifest.loc[name, "file"])
        target = json.loads(manifest.loc[name, "targets"])[0]
        if len(df) > MAX_ROWS:
            df = df.sample(MAX_ROWS, random_state=0)
        y = df[target].astype(str)
        X = df.drop(columns=[target])
        keep = (y.map(y.value_counts()) >= 3).to_numpy()  # 3-fold stratified CV needs 3 per class
        X, y = X[keep], y[keep]
        categorical = [c for c in X.columns if isinstance(X[c].dtype, pd.CategoricalDtype)]
        Xn = X.copy()
        for c in categorical:
            Xn[c] = Xn[c].cat.codes.replace(-1, np.nan)
        Xn = Xn.astype(float)
        p = y.value_counts(normalize=True).to_numpy()
        numeric = Xn.drop(columns=categorical)
        skew = numeric.skew().abs().mean() if numeric.shape[1] else 0.0
        metafeatures[name] = {
            "log_n_rows": math.log(len(X)),
            "log_n_features": math.log(X.shape[1]),
            "log_n_classes": math.log(len(p)),
            "ratio_categorical": len(categorical) / X.shape[1],
            "class_entropy": float(-(p * np.log(p)).sum() / math.log(len(p))),
            "log_rows_per_feature": math.log(len(X) / X.shape[1]),
            "ratio_missing": float(X.isna().to_numpy().mean()),
            "mean_abs_skew": float(np.nan_to_num(skew)),
        }
        cv = StratifiedKFold(3, shuffle=True, random_state=0)
        for config_id, make in configs.items():
            pipe = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), make())
            # one thread: OpenMP/BLAS threads on tiny data (and a shared machine) are 10x slower
            with warnings.catch_warnings(), threadpool_limits(limits=1):
                warnings.simplefilter("ignore")
                res = cross_validate(pipe, Xn, y, cv=cv, scoring="balanced_accuracy", error_score=np.nan)
            score = float(np.mean(res["test_score"]))
            ok = math.isfinite(score)
            runs.append([name, config_id, "ok" if ok else "crash", score if ok else None,
                         1.0 - score if ok else None, float(np.sum(res["fit_time"]))])  # fmt: skip
    return {"runs": runs, "metafeatures": metafeatures}


@pytest.fixture(scope="session")
def real_kb(request: pytest.FixtureRequest, corpus_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(metafeatures, runs) of the real matrix; measured once, then cached in pytest's cache dir."""
    import sklearn

    spec = json.dumps([REAL_DATASETS, sorted(real_configs()), MAX_ROWS, sklearn.__version__, 2])
    key = "metalearn/loo_real_matrix/" + hashlib.sha256(spec.encode()).hexdigest()[:16]
    cache = getattr(request.config, "cache", None)  # None with -p no:cacheprovider
    data = cache.get(key, None) if cache is not None else None
    if data is None:
        t0 = time.perf_counter()
        data = measure_real_matrix(corpus_dir)
        print(f"\nmeasured the real performance matrix in {time.perf_counter() - t0:.1f} s")
        if cache is not None:
            cache.set(key, data)
    mf = pd.DataFrame.from_dict(data["metafeatures"], orient="index")
    mf.index.name = "dataset_id"
    rows = pd.DataFrame(
        data["runs"], columns=["dataset_id", "config_id", "status", "score", "cost", "fit_seconds"]
    ).astype({"score": float, "cost": float})
    runs = rows.assign(
        run_id=[f"r{i}" for i in range(len(rows))], space="sklearn-test", space_version="1",
        protocol=f"cv3-s0-sub{MAX_ROWS}", metric="balanced_error", budget=np.nan, source="test",
    )  # fmt: skip
    return mf, runs


@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
def test_loo_on_the_shipped_kb_beats_random(kind: str) -> None:
    """The recommenders the product uses, held out one shipped dataset at a time from the shipped KB's real
    runs: each of them proposes better configurations than ``random`` for each k, on most datasets."""
    from metalearn.kb import InMemoryKnowledgeBase
    from metalearn.kb.shipped import shipped_snapshot
    from metalearn.kb.snapshot import import_snapshot
    from metalearn.metalearning.advisor import Advisor

    snap = shipped_snapshot()
    if snap is None:
        pytest.skip("this install has no shipped KB snapshot (metalearn/kb/shipped_snapshot)")
    kb = InMemoryKnowledgeBase()
    import_snapshot(kb, snap)
    data = Advisor(kb).kind_data(kind)
    n = data.metafeatures.shape[0]
    assert n >= 30 and data.runs["config_id"].nunique() >= 80, (n, data.runs["config_id"].nunique())
    strategies = sorted({DEFAULT_STRATEGY, "knn", "portfolio"})
    table = leave_one_dataset_out(data.metafeatures, data.runs, strategies, ks=(1, 5, 10))
    print(f"\nLOO on the shipped KB, {kind}:\n" + table[["strategy", "k", "mean", "win_rate"]].round(3).to_string())
    row = table.set_index(["strategy", "k"])
    assert (table["n_datasets"] == n).all()
    for strategy in strategies:
        means = [row.loc[(strategy, k), "mean"] for k in (1, 5, 10)]
        assert means == sorted(means, reverse=True), strategy  # more recommendations never hurt
        for k in (1, 5, 10):
            assert row.loc[(strategy, k), "mean"] < row.loc[("random", k), "mean"], (strategy, k)
        assert row.loc[(strategy, 1), "win_rate"] > 0.75, strategy  # vs random, dataset by dataset


@pytest.mark.slow
@pytest.mark.corpus
def test_loo_on_real_matrix_beats_random(real_kb: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    mf, runs = real_kb
    assert len(mf) == len(REAL_DATASETS)
    assert runs["dataset_id"].nunique() == len(REAL_DATASETS)
    assert (runs["status"] == "ok").mean() > 0.95
    table = leave_one_dataset_out(mf, runs, sorted(STRATEGIES), ks=(1, 3, 5, 10), kind="classification")
    with pd.option_context("display.width", 200, "display.max_rows", 100):
        cols = [
            "strategy",
            "k",
            "mean",
            "se",
            "ci_low",
            "ci_high",
            "median",
            "mean_rank",
            "win_rate",
            "n_datasets",
        ]
        print(
            f"\nLOO on {len(mf)} real datasets x {runs['config_id'].nunique()} configs (normalised regret):"
        )
        print(table[cols].round(3).to_string(index=False))
    row = table.set_index(["strategy", "k"])
    assert (table["n_datasets"] == len(REAL_DATASETS)).all()
    for strategy in ("knn", "portfolio", DEFAULT_STRATEGY):
        for k in (1, 5):
            assert row.loc[(strategy, k), "mean"] < row.loc[("random", k), "mean"], (strategy, k)
    # more recommendations never hurt
    for strategy in STRATEGIES:
        means = [row.loc[(strategy, k), "mean"] for k in (1, 3, 5, 10)]
        assert means == sorted(means, reverse=True), strategy
    best = best_strategy(table)
    print(f"best strategy (mean over ks): {best}; DEFAULT_STRATEGY = {DEFAULT_STRATEGY}")
    assert best in STRATEGIES


def test_a_query_by_another_metric_ranks_the_kb_by_that_metric() -> None:
    """`recommend --metric accuracy` ranked by the stored ROC AUC regrets and gave no expected score: now the
    KB runs are scored by the asked metric (every run records all its kind's metrics), on the shipped KB."""
    from metalearn.data.task import Task
    from metalearn.kb import InMemoryKnowledgeBase
    from metalearn.kb.shipped import shipped_snapshot
    from metalearn.kb.snapshot import import_snapshot
    from metalearn.metalearning.advisor import Advisor
    from metalearn.metalearning.matrix import prepare_matrix
    from metalearn.metalearning.strategies import recommend_from_matrix

    snap = shipped_snapshot()
    if snap is None:
        pytest.skip("this install has no shipped KB snapshot (metalearn/kb/shipped_snapshot)")
    kb = InMemoryKnowledgeBase()
    import_snapshot(kb, snap)
    advisor = Advisor(kb)
    mf = advisor.kind_data("binary").metafeatures
    differ = 0
    for dataset_id in mf.index[:12]:
        query = mf.loc[dataset_id]
        by_auc = advisor.recommend(query, Task("binary", ("y",)), "surrogate", k=5, exclude_ids={dataset_id})
        by_acc = advisor.recommend(query, Task("binary", ("y",), metric="accuracy"), "surrogate", k=5,
                                   exclude_ids={dataset_id})  # fmt: skip
        assert {r.ranked_by for r in by_auc} == {"roc_auc"} and {r.ranked_by for r in by_acc} == {"accuracy"}
        assert all(r.score_metric == "accuracy" and 0.0 < r.expected_score < 1.0 for r in by_acc)  # type: ignore[operator]
        differ += [r.config_id for r in by_acc] != [r.config_id for r in by_auc]
        # the ranking is the strategy's on the KB runs scored by accuracy
        runs = kb.runs_frame(kind="binary", space=advisor.prepared("binary").space.name, ok_only=False,
                             metric="accuracy")  # fmt: skip
        matrix = prepare_matrix(mf, runs).with_configs(advisor.prepared("binary", metric="accuracy").configs.keys())
        expected = recommend_from_matrix("surrogate", query, matrix, k=5, exclude={dataset_id})
        assert [r.config_id for r in by_acc] == [r.config_id for r in expected]
    print(f"\n{differ} of 12 binary queries ranked differently by accuracy")
    assert differ >= 6, differ  # accuracy and ROC AUC rank configurations differently on most queries
    # the kind's default metric, a kind without the metric, or a multitask task: the stored scores
    assert Advisor.ranking_metric(Task("binary", ("y",), metric="roc_auc")) is None
    assert Advisor.ranking_metric("binary") is None and Advisor.ranking_metric("binary", "f1") == "f1"
    assert Advisor.ranking_metric("regression", "accuracy") is None
