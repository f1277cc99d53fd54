"""The warm-started SMAC search (``metalearn.search.loop``), the Python API (``metalearn.search.automl``) and their
write-back to the knowledge base, on real data: scikit-learn's bundled datasets and small corpus datasets.

Every search here is small (2-6 trials, 3-fold CV on at most a few hundred rows) and writes to an
in-memory KB or a DuckDB file under ``tmp_path``, never to the user's default KB.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split

from metalearn.data.dataset import Dataset
from metalearn.data.errors import InputError, NotFoundError, SearchError
from metalearn.data.loading import load_dataset
from metalearn.data.metrics import get_metric, metric_names
from metalearn.data.task import TaskKind
from metalearn.data.validation import prepare_frame
from metalearn.kb import open_kb
from metalearn.kb.base import KnowledgeBase
from metalearn.kb.records import ConfigurationRecord, dataset_record
from metalearn.metalearning.advisor import Advisor
from metalearn.metalearning.metafeatures import EXTRACTOR_VERSION, ensure_metafeatures
from metalearn.pipelines.spaces import get_space
from metalearn.search.automl import MetaLearnEstimator, optimize
from metalearn.search.ensemble import OOFPool
from metalearn.search.evaluation import EvalProtocol, evaluate_config, test_score
from metalearn.search.loop import SearchResult, SearchSettings, run_search, surrogate_model

#: 3-fold CV on at most 150 rows: every trial takes about a second.
PROTOCOL = EvalProtocol(n_folds=3, max_rows=150)
#: per-trial limit (trials run in a child process; they take 1-2 s); time-out tests set their own
TRIAL_LIMIT = 20.0


def fast(**overrides: Any) -> SearchSettings:
    """Small search settings: 3 trials, cold start, the fast protocol."""
    values: dict[str, Any] = dict(
        n_trials=3, trial_time_limit=TRIAL_LIMIT, warm_start=False, protocol=PROTOCOL
    )
    values.update(overrides)
    return SearchSettings(**values)


def registered(kb: KnowledgeBase, ds: Dataset) -> Dataset:
    """Store the dataset record (run_search needs it; optimize() does it itself)."""
    kb.put_dataset(dataset_record(ds))
    return ds


def noisy_copy(ds: Dataset, name: str, scale: float = 0.01, seed: int = 0) -> Dataset:
    """The same data with a little noise on the numeric features: a new dataset (new fingerprint)
    whose meta-features are close to the original's."""
    rng = np.random.default_rng(seed)
    X = ds.X.copy()
    for col, cat in zip(X.columns, ds.categorical, strict=True):
        if not cat:
            X[col] = X[col] + rng.normal(scale=scale * (X[col].std() or 1.0), size=len(X))
    frame = pd.concat([X, ds.y], axis=1)
    return prepare_frame(frame, list(ds.task.targets), kind=ds.task.kind, name=name, origin=f"test:{name}")


def best_of(result: SearchResult) -> Any:
    """The best successful full-budget trial, by the task metric's direction (None if none succeeded)."""
    ok = [t for t in result.trials if t.status == "ok" and not math.isnan(t.score)]
    if not ok:
        return None
    return (max if result.greater_is_better else min)(ok, key=lambda t: t.score)


def expected_metrics(ds: Dataset) -> set[str]:
    """Every metric name a run of this dataset's kind must store."""
    names = set(metric_names(ds.task.kind))
    if ds.task.kind is TaskKind.MULTITASK:
        for i, tk in enumerate(ds.task.target_kinds):
            names |= {f"t{i}:{m}" for m in metric_names(tk)}
    return names


def check_search(kb: KnowledgeBase, ds: Dataset, result: SearchResult, n_trials: int) -> None:
    """What every finished search must satisfy: its trials, its best, and what it wrote to the KB."""
    task = ds.task
    metric = get_metric(task.metric)
    lo, hi = metric.bounds
    assert result.status == "done"
    assert (result.dataset_id, result.kind, result.metric) == (ds.dataset_id, str(task.kind), task.metric)
    assert result.space == get_space(task).name
    assert [t.number for t in result.trials] == list(range(1, n_trials + 1))
    assert result.n_resumed + result.n_new == n_trials
    assert result.n_failed == sum(t.status != "ok" for t in result.trials)
    for t in result.trials:
        if t.status == "ok":
            assert math.isfinite(t.score) and lo <= t.score <= hi, (t.score, metric.bounds)
            assert not t.error
        else:
            assert math.isnan(t.score) and t.error, t
    # the best score is the best trial, and each trial reports the best so far
    best = best_of(result)
    assert best is not None, [(t.status, t.error) for t in result.trials]
    assert result.best_score == best.score
    assert result.best_config_id == best.config_id and result.best_values == best.values
    assert result.trials[-1].best_score == result.best_score
    running = math.nan
    for t in result.trials:
        if t.status == "ok":
            better = t.score > running if metric.greater_is_better else t.score < running
            running = t.score if math.isnan(running) or better else running
        assert t.best_score == running or (math.isnan(t.best_score) and math.isnan(running))
    # the new trials are runs in the KB, with every metric of the kind
    runs = {r.config_id: r for r in kb.list_runs(search_id=result.search_id)}
    new = [t for t in result.trials if t.origin != "resumed"]
    assert set(runs) == {t.config_id for t in new}
    want = expected_metrics(ds)
    for t in new:
        r = runs[t.config_id]
        assert r.dataset_id == ds.dataset_id and r.metric == task.metric and r.status == t.status
        assert r.protocol == result.settings["protocol"]
        cfg = kb.get_configuration(t.config_id)
        assert (cfg.space, cfg.space_version) == (result.space, result.space_version)
        assert cfg.values == t.values
        if r.status == "ok":
            assert want <= set(r.metrics), want - set(r.metrics)
            assert r.score == t.score == r.metrics[task.metric]
            assert all(math.isfinite(r.metrics[m]) for m in metric_names(task.kind))
    rec = kb.get_search(result.search_id)
    assert rec.status == "done" and rec.n_trials == n_trials and rec.dataset_id == ds.dataset_id
    assert rec.incumbent_config_id == result.best_config_id and rec.incumbent_score == result.best_score


# ---------------------------------------------------------------------------------------- data
def _multitask_cloud(load_corpus: Any) -> Dataset:
    """A mixed multi-task problem from the corpus: 210_cloud's numeric target plus its categorical
    feature ``season`` promoted to a second (class) target."""
    base = load_corpus("210_cloud")
    frame = pd.concat([base.X, base.y], axis=1)
    return prepare_frame(frame, ["target", "season"], name="cloud_and_season", origin="corpus:210_cloud")


def load_case(spec: str, request: pytest.FixtureRequest) -> Dataset:
    if not spec.startswith("corpus:"):
        return load_dataset(spec)
    load_corpus = request.getfixturevalue("load_corpus")  # skips with a reason without the corpus
    name = spec.removeprefix("corpus:")
    if name == "210_cloud+season":
        return _multitask_cloud(load_corpus)
    return load_corpus(name)


KIND_CASES = [
    pytest.param(TaskKind.BINARY, "sklearn:breast_cancer", id="binary-breast_cancer"),
    pytest.param(TaskKind.MULTICLASS, "sklearn:iris", id="multiclass-iris"),
    pytest.param(TaskKind.REGRESSION, "sklearn:diabetes", id="regression-diabetes"),
    pytest.param(TaskKind.MULTITARGET, "sklearn:linnerud", id="multitarget-linnerud"),
    pytest.param(TaskKind.MULTILABEL, "corpus:flags", id="multilabel-flags", marks=pytest.mark.corpus),
    pytest.param(
        TaskKind.MULTITASK, "corpus:210_cloud+season", id="multitask-cloud", marks=pytest.mark.corpus
    ),
]


# ----------------------------------------------------------------------------- 1. every kind
@pytest.mark.parametrize(("kind", "spec"), KIND_CASES)
def test_search_on_every_kind(kind: TaskKind, spec: str, request: pytest.FixtureRequest) -> None:
    ds = load_case(spec, request)
    assert ds.task.kind is kind
    kb = open_kb(":memory:")
    registered(kb, ds)
    seen: list[int] = []
    result = run_search(ds, kb, fast(), on_trial=lambda t: seen.append(t.number))
    check_search(kb, ds, result, n_trials=3)
    assert seen == [1, 2, 3]  # the progress callback saw every trial as it finished
    assert result.n_resumed == 0 and result.n_new == 3
    assert len({t.config_id for t in result.trials}) == 3  # SMAC proposed three different pipelines
    # SMAC's own proposals, alternating with neighbours of the best one ("local") once SMAC proposes its own
    assert {t.origin for t in result.trials} <= {"initial-design", "default", "smac", "smac-random", "local"}
    assert len(kb.list_runs(dataset_id=ds.dataset_id)) == 3
    if kind is TaskKind.MULTITASK:
        assert ds.task.target_kinds == (TaskKind.REGRESSION, TaskKind.MULTICLASS)
        assert "season" not in ds.X.columns


def test_random_optimizer_and_cancellation() -> None:
    ds = load_dataset("sklearn:iris")
    kb = open_kb(":memory:")
    registered(kb, ds)
    result = run_search(ds, kb, fast(optimizer="random", n_trials=2))
    check_search(kb, ds, result, n_trials=2)
    assert {t.origin for t in result.trials} == {"random"}

    other = registered(kb, noisy_copy(ds, "iris_noisy"))
    calls: list[int] = []

    def stop_after_one() -> bool:
        calls.append(1)
        return len(kb.list_runs(dataset_id=other.dataset_id)) >= 1

    cancelled = run_search(other, kb, fast(n_trials=5), should_stop=stop_after_one)
    assert cancelled.status == "cancelled" and len(cancelled.trials) == 1 and calls
    rec = kb.get_search(cancelled.search_id)
    assert rec.status == "cancelled" and "cancelled" in rec.error and rec.n_trials == 1


# -------------------------------------------------------------------------------- 2. warm start
def diabetes_tertiles() -> Dataset:
    """diabetes with its disease-progression target cut into three classes: a real multiclass problem."""
    d = load_dataset("sklearn:diabetes")
    y = pd.qcut(d.y.iloc[:, 0], 3, labels=["low", "mid", "high"]).rename("progression")
    frame = pd.concat([d.X, y], axis=1)
    return prepare_frame(frame, "progression", name="diabetes_tertiles", origin="test:diabetes_tertiles")


SOURCES = {"wine", "diabetes_tertiles"}


@pytest.fixture(scope="module")
def source_kb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DuckDB KB with two multiclass datasets other than iris (wine, diabetes tertiles): their
    meta-features and 3 random-search runs each."""
    path = tmp_path_factory.mktemp("search-kb") / "sources.duckdb"
    kb = open_kb(path)
    try:
        for ds in (load_dataset("sklearn:wine"), diabetes_tertiles()):
            ensure_metafeatures(kb, ds)
            run_search(ds, kb, fast(optimizer="random"), source="test-seed")
    finally:
        kb.close()
    return path


@pytest.fixture()
def kb_copy(source_kb: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "kb.duckdb"
    shutil.copyfile(source_kb, dst)
    return dst


def test_warm_start_evaluates_recommendations_first(kb_copy: Path) -> None:
    iris = load_dataset("sklearn:iris")
    kb = open_kb(kb_copy)
    try:
        source_ids = {d.dataset_id: d.name for d in kb.list_datasets(kind="multiclass")}
        assert set(source_ids.values()) == SOURCES
        settings = fast(warm_start=True, n_warm=2, n_trials=4)
        outcome = optimize(iris, kb, settings, refit=False)
        result = outcome.result
        check_search(kb, iris, result, n_trials=4)

        warm = outcome.summary["warm_start"]
        assert warm["strategy"] == Advisor.resolve_strategy(None)
        recs = warm["recommended"]
        assert [r["rank"] for r in recs] == [1, 2]
        first, rest = result.trials[:2], result.trials[2:]
        assert [t.origin for t in first] == ["recommendation:1", "recommendation:2"]
        assert [t.config_id for t in first] == [r["config_id"] for r in recs]
        assert [t.values for t in first] == [r["values"] for r in recs]
        assert not any(t.origin.startswith("recommendation") for t in rest)
        assert [r["config_id"] for r in result.recommendations] == [t.config_id for t in first]
        for t in first:
            # a recommendation comes from the runs of the OTHER datasets, cites them, and is evaluated afresh
            assert t.sources and set(t.sources) <= set(source_ids.values())
            stored = kb.list_runs(config_id=t.config_id)
            assert {r.dataset_id for r in stored} - {iris.dataset_id} <= set(source_ids)
            assert any(r.dataset_id in source_ids for r in stored)
            mine = [r for r in stored if r.dataset_id == iris.dataset_id]
            assert len(mine) == 1 and mine[0].search_id == result.search_id and mine[0].source == "search"

        # the same search again resumes: the recommendations are not re-run, nothing new is stored
        n_runs = kb.stats()["runs"]
        again = optimize(iris, kb, settings, refit=False)
        assert again.result.n_resumed == 4 and again.result.n_new == 0
        assert {t.origin for t in again.result.trials} == {"resumed"}
        assert again.result.recommendations == []
        assert kb.stats()["runs"] == n_runs
    finally:
        kb.close()


def test_smac_searches_the_region_of_the_recommendations(kb_copy: Path) -> None:
    """After the recommendations, SMAC proposes configurations of their model families only, within the box
    of their values (a learned search space); ``learned_space=False`` searches the whole space."""
    iris = load_dataset("sklearn:iris")
    space = get_space("multiclass")
    families: dict[bool, set[str]] = {}
    for learned in (True, False):
        kb = open_kb(kb_copy)
        try:
            settings = fast(warm_start=True, n_warm=2, n_trials=8, learned_space=learned, resume=False)
            trials = optimize(iris, kb, settings, refit=False).result.trials
        finally:
            kb.close()
        warm = [t.values for t in trials if t.origin.startswith("recommendation")]
        proposed = [t.values for t in trials if not t.origin.startswith("recommendation")]
        assert len(warm) == 2 and len(proposed) == 6
        families[learned] = {v["model"] for v in proposed}
        if learned:
            assert families[learned] <= {v["model"] for v in warm}
            region = space.restricted_configspace(warm)
            assert region is not None
            for v in proposed:
                for name, value in v.items():
                    hp = region[name]
                    assert not hasattr(hp, "lower") or hp.lower <= value <= hp.upper, (name, value)
    assert families[False] - families[True]  # the whole space: other families too


def test_a_recommendation_stored_under_an_earlier_space_version_is_searched_under_its_stored_id() -> None:
    """The shipped KB holds configurations of space version 1 (the families before the boosting libraries);
    a search that evaluates one writes its run under that stored id, never a second configuration with the
    same values (which would split its results into two matrix columns)."""
    from metalearn.kb.shipped import open_default_kb

    ds = load_dataset("sklearn:breast_cancer")
    space = get_space(ds.task)
    kb = open_default_kb(":memory:", seed_from_shipped=True)
    try:
        n_configs = kb.stats()["configurations"]
        settings = fast(warm_start=True, n_warm=6, n_trials=6, resume=False)
        outcome = optimize(ds, kb, settings, refit=False)
        trials = outcome.result.trials
        assert [t.origin for t in trials] == [f"recommendation:{i}" for i in range(1, 7)]
        stored = kb.get_configurations([t.config_id for t in trials])
        assert set(stored) == {t.config_id for t in trials}
        versions = {stored[t.config_id].space_version for t in trials}
        assert versions >= {"1"}, versions  # some recommendation is of the earlier version (else this test is moot)
        for t in trials:
            assert space.validate(stored[t.config_id].values) == t.values
        recommended = [r["config_id"] for r in outcome.summary["warm_start"]["recommended"]]
        assert [t.config_id for t in trials] == recommended == [r["config_id"] for r in outcome.result.recommendations]
        assert kb.stats()["configurations"] == n_configs  # every one was stored already: nothing stored twice
        runs = kb.list_runs(dataset_id=ds.dataset_id)
        assert sorted(r.config_id for r in runs) == sorted(t.config_id for t in trials)
    finally:
        kb.close()


def test_no_warm_start_ignores_recommendations(kb_copy: Path) -> None:
    iris = load_dataset("sklearn:iris")
    kb = open_kb(kb_copy)
    try:
        mf = ensure_metafeatures(kb, iris)
        recs = Advisor(kb).recommend(mf.values, iris.task, k=2, exclude_ids={iris.dataset_id})
        assert len(recs) == 2
        rec_ids = {r.config_id for r in recs}

        cold = optimize(iris, kb, fast(warm_start=False, n_trials=2), refit=False)
        check_search(kb, iris, cold.result, n_trials=2)
        assert cold.summary["warm_start"] == {"strategy": None, "recommended": []}
        assert cold.result.recommendations == []
        assert not any(t.origin.startswith("recommendation") for t in cold.result.trials)
        assert not rec_ids & {t.config_id for t in cold.result.trials}

        # run_search given recommendations but warm_start=False (or n_warm=0) does not use them either
        no_warm = [(3, fast(warm_start=False, n_trials=3)), (4, fast(warm_start=True, n_warm=0, n_trials=4))]
        for n_trials, settings in no_warm:
            res = run_search(iris, kb, settings, recommendations=recs)
            assert res.n_resumed == n_trials - 1 and res.n_new == 1 and res.recommendations == []
            last = res.trials[-1].origin
            assert last != "resumed" and not last.startswith("recommendation")
            assert not rec_ids & {t.config_id for t in res.trials}
    finally:
        kb.close()


# ------------------------------------------------------------------------------------ 3. resume
def test_resume_tells_stored_trials_instead_of_rerunning() -> None:
    iris = load_dataset("sklearn:iris")
    kb = open_kb(":memory:")
    registered(kb, iris)
    first = run_search(iris, kb, fast(n_trials=3))
    check_search(kb, iris, first, n_trials=3)
    runs_before = kb.list_runs(dataset_id=iris.dataset_id)
    assert len(runs_before) == 3

    second = run_search(iris, kb, fast(n_trials=3))
    assert second.n_resumed == len(first.trials) == 3 and second.n_new == 0
    assert [t.origin for t in second.trials] == ["resumed"] * 3
    assert [t.config_id for t in second.trials] == [t.config_id for t in first.trials]
    assert [t.score for t in second.trials] == [t.score for t in first.trials]
    assert (second.best_score, second.best_config_id) == (first.best_score, first.best_config_id)
    assert kb.list_runs(dataset_id=iris.dataset_id) == runs_before
    assert kb.list_runs(search_id=second.search_id) == []
    assert kb.get_search(second.search_id).n_trials == 3
    # its best pipeline's refit is estimated from the stored fit times (a time limit's final fit had none)
    stored = {r.config_id: r for r in runs_before}
    assert second.best_refit_seconds is not None and second.best_refit_seconds > 0
    assert first.best_refit_seconds is not None and stored[second.best_config_id].fit_seconds > 0

    third = run_search(iris, kb, fast(n_trials=5))
    check_search(kb, iris, third, n_trials=5)
    assert third.n_resumed == 3 and third.n_new == 2
    added = kb.list_runs(search_id=third.search_id)
    assert len(added) == 2 and len(kb.list_runs(dataset_id=iris.dataset_id)) == 5
    assert not {r.config_id for r in added} & {r.config_id for r in runs_before}
    assert third.best_score == best_of(third).score  # the best may be an old or a new trial

    # a smaller budget than what is stored resumes the best stored trials (until stop 55 the oldest: the best
    # model an earlier search found was lost when it came late)
    fewer = run_search(iris, kb, fast(n_trials=2))
    assert fewer.n_resumed == 2 and fewer.n_new == 0
    assert fewer.n_unresumed == 3  # and said
    from metalearn.search.automl import unresumed

    assert (unresumed(fewer) or "").startswith("3 earlier run(s) of these data were not resumed: the trial budget (2 used)")
    assert unresumed(third) is None
    sign = 1.0 if fewer.greater_is_better else -1.0  # iris: log loss
    ranked = sorted((t for t in third.trials if t.status == "ok"), key=lambda t: -sign * t.score)
    assert {t.config_id for t in fewer.trials} == {t.config_id for t in ranked[:2]}
    assert (fewer.best_config_id, fewer.best_score) == (third.best_config_id, third.best_score)
    assert fewer.unresumed_best is None  # none left out beats them

    # another protocol is another experiment: nothing to resume
    other = run_search(iris, kb, fast(n_trials=1, protocol=EvalProtocol(n_folds=2, max_rows=150)))
    assert other.n_resumed == 0 and other.n_new == 1
    assert kb.list_runs(search_id=other.search_id)[0].protocol != runs_before[0].protocol


def test_a_search_by_another_metric_resumes_the_stored_runs_by_that_metric() -> None:
    """Runs store every metric of their kind; a search by accuracy after a log-loss one resumed the log losses
    as accuracies (and kept the pipeline of the largest log loss)."""
    from dataclasses import replace as with_fields

    iris = load_dataset("sklearn:iris")
    kb = open_kb(":memory:")
    registered(kb, iris)
    first = run_search(iris, kb, fast(n_trials=3))
    assert first.metric == "log_loss"
    by_accuracy = iris.with_task(with_fields(iris.task, metric="accuracy"))
    second = run_search(by_accuracy, kb, fast(n_trials=3))
    assert second.n_resumed == 3 and second.n_new == 0 and second.metric == "accuracy"
    stored = {r.config_id: r.metrics for r in kb.list_runs(dataset_id=iris.dataset_id)}
    assert [t.score for t in second.trials] == [stored[t.config_id]["accuracy"] for t in second.trials]
    assert second.best_score == max(m["accuracy"] for m in stored.values())
    third = run_search(by_accuracy, kb, fast(n_trials=4))  # a new trial is scored by accuracy too
    assert third.n_new == 1 and 0.0 <= third.trials[-1].score <= 1.0
    assert third.trials[-1].score == kb.list_runs(search_id=third.search_id)[0].metrics["accuracy"]


def test_a_timeout_under_a_shorter_trial_limit_is_tried_again_not_resumed() -> None:
    """A first search with a tiny trial limit times out on every trial; a second with a longer limit used to
    resume those timeouts (0 new trials, "no configuration succeeded") and never evaluate them again."""
    iris = load_dataset("sklearn:iris")
    kb = open_kb(":memory:")
    registered(kb, iris)
    first = run_search(iris, kb, fast(n_trials=2, trial_time_limit=0.001))
    assert [t.status for t in first.trials] == ["timeout", "timeout"]
    second = run_search(iris, kb, fast(n_trials=2))
    assert second.n_resumed == 0 and second.n_new == 2 and all(t.status == "ok" for t in second.trials)
    assert {t.config_id for t in second.trials} == {t.config_id for t in first.trials}  # the same two, fitted now
    runs = kb.list_runs(dataset_id=iris.dataset_id)
    assert len(runs) == 2 and all(r.status == "ok" for r in runs)  # the timeouts were replaced
    third = run_search(iris, kb, fast(n_trials=2, trial_time_limit=0.001))  # a shorter limit: resumed as they are
    assert third.n_resumed == 2 and third.n_new == 0


# ------------------------------------------------------------------------------- 4. write-back
def test_search_writes_back_dataset_that_becomes_a_neighbour(kb_copy: Path) -> None:
    iris = load_dataset("sklearn:iris")
    similar = noisy_copy(iris, "iris_noisy")
    assert similar.dataset_id != iris.dataset_id
    kb = open_kb(kb_copy)
    try:
        advisor = Advisor(kb)
        mf_similar = ensure_metafeatures(kb, similar)
        query = (mf_similar.values, similar.task)
        before = advisor.recommend(*query, strategy="knn", k=3, exclude_ids={similar.dataset_id})
        assert before and not any(s.dataset_id == iris.dataset_id for r in before for s in r.sources)
        with pytest.raises(NotFoundError):
            kb.get_dataset(iris.dataset_id)

        outcome = optimize(iris, kb, fast(n_trials=3), refit=False)
        check_search(kb, iris, outcome.result, n_trials=3)
        rec = kb.get_dataset(iris.dataset_id)
        assert (rec.name, rec.kind, rec.n_rows, rec.n_features) == ("iris", "multiclass", 150, 4)
        assert rec.targets == tuple(iris.task.targets) and rec.origin == "sklearn:iris"
        mf = kb.get_metafeatures(iris.dataset_id, EXTRACTOR_VERSION)
        assert sum(math.isfinite(v) for v in mf.values.values()) > 10
        assert iris.dataset_id in kb.metafeature_frame(EXTRACTOR_VERSION, kind="multiclass").index

        # iris is now the nearest neighbour of its noisy copy: knn's first pick is iris's best configuration
        after = advisor.recommend(*query, strategy="knn", k=3, exclude_ids={similar.dataset_id})
        top = after[0].sources[0]
        assert (top.dataset_id, top.name) == (iris.dataset_id, "iris")
        assert after[0].config_id == outcome.result.best_config_id
        others = [s.distance for r in after[1:] for s in r.sources]
        assert top.distance is not None and others and all(d is not None and top.distance < d for d in others)
        assert {s.name for r in after[1:] for s in r.sources} <= SOURCES

        # ... and a warm-started search on the noisy copy starts from it
        warm = optimize(similar, kb, fast(warm_start=True, strategy="knn", n_warm=1, n_trials=2), refit=False)
        check_search(kb, similar, warm.result, n_trials=2)
        first = warm.result.trials[0]
        assert (first.origin, first.sources) == ("recommendation:1", ("iris",))
        assert first.config_id == outcome.result.best_config_id
    finally:
        kb.close()


def test_knn_recommends_from_a_single_kb_dataset() -> None:
    """Min-max scaling is undefined on one KB dataset: the relative-difference fallback still ranks it."""
    iris = load_dataset("sklearn:iris")
    kb = open_kb(":memory:")
    outcome = optimize(iris, kb, fast(optimizer="random", n_trials=2), refit=False)
    similar = noisy_copy(iris, "iris_noisy")
    mf = ensure_metafeatures(kb, similar)
    recs = Advisor(kb).recommend(
        mf.values, similar.task, strategy="knn", k=1, exclude_ids={similar.dataset_id}
    )
    assert recs and recs[0].config_id == outcome.result.best_config_id


# -------------------------------------------------------------------------------- 5. failures
def test_timeouts_are_failed_runs_and_the_search_goes_on(tmp_path: Path) -> None:
    iris = load_dataset("sklearn:iris")
    kb = open_kb(":memory:")
    outcome = optimize(iris, kb, fast(n_trials=3, trial_time_limit=0.001), out_dir=tmp_path / "out")
    result = outcome.result
    assert result.status == "failed" and len(result.trials) == 3 and result.n_failed == 3  # it read "done"
    assert result.error == "no configuration succeeded in 3 trials (3 failed)"
    assert len({t.config_id for t in result.trials}) == 3  # SMAC went on proposing new configurations
    for t in result.trials:
        assert t.status == "timeout" and "time limit" in t.error and math.isnan(t.score)
    assert math.isnan(result.best_score) and result.best_config_id is None and result.best_values is None
    runs = kb.list_runs(dataset_id=iris.dataset_id)
    assert len(runs) == 3
    assert all(r.status == "timeout" and "TrialTimeoutError" in r.error and math.isnan(r.score) for r in runs)
    assert kb.stats()["runs_failed"] == 3
    rec = kb.get_search(result.search_id)
    assert rec.status == "failed" and rec.error == result.error and rec.incumbent_config_id is None and rec.n_trials == 3
    # nothing to refit: no model, and the summary says why
    assert outcome.model is None
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["n_failed"] == 3 and summary["best"]["score"] is None
    assert not (tmp_path / "out" / "model.skops").exists()
    # under the same trial limit failed runs count as trials: resuming with a larger budget only adds the
    # difference (with a longer limit they are tried again: test_a_timeout_under_a_shorter_trial_limit_...)
    more = run_search(iris, kb, fast(n_trials=4, trial_time_limit=0.001))
    assert more.n_resumed == 3 and more.n_new == 1 and more.n_failed == 3 + (more.trials[-1].status != "ok")


MLP_HEAVY = {  # a 3 x 256 tanh MLP, batch 16, tiny learning rate: over 20 s on 300 rows x 3 folds
    "model": "mlp", "mlp:n_layers": 3, "mlp:width_1": 256.0, "mlp:width_2": 256.0, "mlp:width_3": 256.0,
    "mlp:batch_size": 16.0, "mlp:learning_rate_init": 0.0001, "mlp:alpha": 1e-7,
    "mlp:early_stopping": "train", "mlp:activation": "tanh",
}


@dataclass(frozen=True)
class Rec:
    """A recommendation as run_search takes it (``config_id`` + ``values``, ``rank``, ``sources``)."""

    config_id: str
    values: dict[str, Any] | None
    rank: int
    sources: tuple[str, ...] = field(default=())


def test_slow_and_invalid_recommendations_do_not_stop_the_search() -> None:
    ds = load_dataset("sklearn:breast_cancer")
    space = get_space(ds.task)
    heavy = space.validate(MLP_HEAVY, fill_defaults=True)
    light = space.validate({"model": "knn", "knn:n_neighbors": 7.0}, fill_defaults=True)
    invalid = {**light, "knn:n_neighbors": 1000.0}  # outside the space: skipped, never evaluated
    recs = [Rec("bad", invalid, 1, ("x",)), Rec("heavy", heavy, 2, ("y",)), Rec("light", light, 3, ("z",))]
    kb = open_kb(":memory:")
    registered(kb, ds)
    protocol = EvalProtocol(n_folds=3, max_rows=300)
    settings = fast(warm_start=True, n_trials=3, trial_time_limit=3.0, protocol=protocol)
    result = run_search(ds, kb, settings, recommendations=recs)
    check_search(kb, ds, result, n_trials=3)
    t_heavy, t_light, t_next = result.trials
    assert (t_heavy.origin, t_heavy.sources, t_heavy.status) == ("recommendation:2", ("y",), "timeout")
    assert "3 s time limit" in t_heavy.error
    assert (t_light.origin, t_light.sources, t_light.status) == ("recommendation:3", ("z",), "ok")
    assert t_light.values == light and t_next.origin not in ("recommendation:1", "recommendation:2")
    assert result.n_failed == 1 + (t_next.status != "ok")
    stored = {r.config_id: r for r in kb.list_runs(dataset_id=ds.dataset_id)}
    assert stored[t_heavy.config_id].status == "timeout" and stored[t_heavy.config_id].error == t_heavy.error
    assert [r["origin"] for r in result.recommendations] == ["recommendation:2", "recommendation:3"]


def _slow_catboost(space: Any) -> dict[str, Any]:
    """A CatBoost configuration far too slow for a few seconds (4,096 depth-8 rounds at learning rate 0.005)."""
    return space.validate({"model": "catboost", "catboost:n_estimators": 4096.0, "catboost:depth": 8,
                           "catboost:learning_rate": 0.005, "catboost:early_stopping_rounds": 150.0},
                          fill_defaults=True)


def test_a_boosted_recommendation_too_slow_for_its_limit_is_scored_and_noted() -> None:
    """A CatBoost recommendation that cannot fit its rounds in the configured trial limit stops at the clock
    and is a scored trial with a note (counted in ``n_cut``), not a timeout; the next trial is untouched."""
    from metalearn.search.evaluation import CUT_NOTE

    ds = load_dataset("sklearn:breast_cancer")
    space = get_space(ds.task)
    slow, light = _slow_catboost(space), space.validate({"model": "knn", "knn:n_neighbors": 7.0}, fill_defaults=True)
    kb = open_kb(":memory:")
    registered(kb, ds)
    settings = fast(warm_start=True, n_trials=2, trial_time_limit=4.0, protocol=EvalProtocol(n_folds=3))
    result = run_search(ds, kb, settings, recommendations=[Rec("slow", slow, 1), Rec("light", light, 2)])
    check_search(kb, ds, result, n_trials=2)
    t_slow, t_light = result.trials
    assert t_slow.status == "ok" and t_slow.score > 0.9 and t_slow.seconds < 4.0 + 1.0
    assert t_slow.note.startswith(CUT_NOTE) and "4 s limit" in t_slow.note
    assert t_light.status == "ok" and t_light.note == "" and result.n_cut == 1
    stored = {r.config_id: r for r in kb.list_runs(dataset_id=ds.dataset_id)}
    assert stored[t_slow.config_id].status == "ok" and stored[t_slow.config_id].score == t_slow.score


def test_the_final_boosted_fit_takes_the_best_trials_rounds() -> None:
    """A search whose best trial is an early-stopped LightGBM keeps that trial's rounds per training row
    (``best_rounds_per_row``, the trial's own), and its final model fits them on all rows, once."""
    ds = load_dataset("sklearn:breast_cancer")
    space = get_space(ds.task)
    boosted = space.validate({"model": "lgbm", "lgbm:n_estimators": 2000.0, "lgbm:learning_rate": 0.2},
                             fill_defaults=True)
    protocol = EvalProtocol(n_folds=3)
    settings = fast(warm_start=True, n_trials=1, protocol=protocol, ensemble=False)
    outcome = optimize(ds, open_kb(":memory:"), settings, seed_configs=[Rec("lgbm", boosted, 1)])
    alone = evaluate_config(ds, space, boosted, protocol=protocol)
    assert outcome.result.best_rounds_per_row == pytest.approx(alone.rounds_per_row)
    booster = outcome.model.estimator_.estimator_
    assert booster.rounds_from_trials_ and booster.n_train_rows_ == ds.n_rows
    assert booster.n_rounds_ == math.ceil(alone.rounds_per_row * ds.n_rows) < 2000


def test_a_first_trial_whose_limit_the_deadline_shortened_is_cut_not_killed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Until a trial has scored, a time-limited search bounds the boosted fits of a trial whose limit the job's
    deadline shortened too (a cut model beats none: on 1,800 x 1,000 binary data at 30 s the first CatBoost
    trial was killed at its 7.6 s limit); once one has scored, such trials are not bounded (measured worse)."""
    from metalearn.search import loop
    from metalearn.search.evaluation import CUT_NOTE

    ds = load_dataset("sklearn:breast_cancer")
    space = get_space(ds.task)
    slow, light = _slow_catboost(space), space.validate({"model": "knn", "knn:n_neighbors": 7.0}, fill_defaults=True)
    lighter = space.validate({"model": "knn", "knn:n_neighbors": 15.0}, fill_defaults=True)
    calls: list[tuple[float, bool]] = []  # per evaluation: its time limit, whether its boosted fits are bound
    real = loop.evaluate_config

    def spy(*args: Any, **kw: Any) -> Any:
        calls.append((args[4], bool(args[8])))
        return real(*args, **kw)

    monkeypatch.setattr(loop, "evaluate_config", spy)
    kb = open_kb(":memory:")
    registered(kb, ds)
    settings = fast(warm_start=True, n_trials=3, time_limit=14.0, trial_time_limit=120.0, ensemble=False,
                    protocol=EvalProtocol(n_folds=3))
    recs = [Rec("slow", slow, 1), Rec("light", light, 2), Rec("lighter", lighter, 3)]
    result = run_search(ds, kb, settings, recommendations=recs)
    first = result.trials[0]
    assert calls[0][0] < 120.0 and calls[0][1]  # shortened by the deadline, bound: nothing had scored
    assert first.status == "ok" and first.note.startswith(CUT_NOTE) and first.score > 0.9
    later = calls[1:]
    assert later and all(limit < 120.0 and not bound for limit, bound in later)  # after a scored trial


def test_search_level_failure_is_recorded() -> None:
    iris = load_dataset("sklearn:iris")
    kb = open_kb(":memory:")
    registered(kb, iris)
    bad = [Rec("no-such-config", None, 1)]  # names a configuration the KB does not hold
    with pytest.raises(NotFoundError, match="no-such-config"):
        run_search(iris, kb, fast(warm_start=True), recommendations=bad, search_id="s-bad")
    rec = kb.get_search("s-bad")
    assert rec.status == "failed" and "no-such-config" in rec.error and rec.n_trials == 0
    assert kb.list_runs(dataset_id=iris.dataset_id) == []


INVALID_SETTINGS: list[tuple[dict[str, Any], str]] = [
    ({"n_trials": 0}, "n_trials must be a positive integer"),
    ({"n_trials": 2.5}, "n_trials must be a positive integer"),
    ({"n_trials": True}, "n_trials must be a positive integer"),
    ({"time_limit": 0}, "time_limit must be positive"),
    ({"time_limit": math.nan}, "time_limit must be positive"),
    ({"trial_time_limit": -1.0}, "trial_time_limit must be positive"),
    ({"memory_limit_mb": 64}, "memory_limit_mb must be at least 128"),
    ({"memory_limit_mb": 256.5}, "memory_limit_mb must be an integer"),
    ({"n_warm": -1}, "n_warm must be an integer >= 0"),
    ({"n_warm": 1.5}, "n_warm must be an integer >= 0"),
    ({"optimizer": "grid"}, "optimizer must be one of"),
    ({"min_budget": 1.0}, "min_budget must be in (0, 1)"),
    ({"optimizer": "random", "multi_fidelity": True}, "multi_fidelity needs optimizer='smac'"),
    ({"strategy": "bogus"}, "unknown strategy 'bogus'"),
]


@pytest.mark.parametrize(
    ("overrides", "words"),
    INVALID_SETTINGS,
    ids=[",".join(f"{k}={v!r}" for k, v in o.items()) for o, _ in INVALID_SETTINGS],
)
def test_invalid_settings_raise_input_error(overrides: dict[str, Any], words: str) -> None:
    with pytest.raises(InputError) as info:
        SearchSettings(**overrides)
    assert words in str(info.value)
    assert "\n" not in str(info.value)


def test_valid_settings_round_trip() -> None:
    s = SearchSettings(n_trials=4, strategy="knn", n_warm=0, memory_limit_mb=512, protocol=PROTOCOL)
    d = s.to_dict()
    assert d["protocol"] == PROTOCOL.key and d["strategy"] == "knn" and d["n_trials"] == 4
    assert json.loads(json.dumps(d)) == d


# ---------------------------------------------------------------------------- 6. the Python API
def test_estimator_fit_predict_proba_on_iris(tmp_path: Path) -> None:
    iris = load_dataset("sklearn:iris")
    y = iris.y.iloc[:, 0].astype(str)
    X_tr, X_te, y_tr, y_te = train_test_split(iris.X, y, test_size=0.3, stratify=y, random_state=0)
    kb_path = tmp_path / "kb.duckdb"
    est = MetaLearnEstimator(n_trials=3, n_folds=3, trial_time_limit=TRIAL_LIMIT, kb=str(kb_path))
    assert clone(est).get_params() == est.get_params()
    assert est.fit(X_tr, y_tr) is est
    assert est.task_.kind is TaskKind.MULTICLASS and list(est.feature_names_in_) == list(iris.X.columns)

    pred = est.predict(X_te)
    assert pred.shape == (len(X_te),) and set(pred) <= set(y)
    assert accuracy_score(y_te, pred) >= 0.8
    proba = np.asarray(est.predict_proba(X_te))
    assert proba.shape == (len(X_te), 3) and np.allclose(proba.sum(axis=1), 1.0)
    assert list(est.classes_) == sorted(set(y))
    assert (np.asarray(est.classes_)[proba.argmax(axis=1)] == pred).all()
    assert (est.predict(X_te.to_numpy()) == pred).all()  # plain arrays work too

    assert est.best_score_ == est.search_["best"]["score"]
    assert est.best_config_ == est.search_["best"]["values"]
    assert len(est.search_["trials"]) == 3
    with open_kb(kb_path, read_only=True) as kb:  # the fit wrote its trials to the KB it was given
        runs = kb.list_runs(search_id=est.search_["search_id"])
        assert len(runs) == 3 and min(r.score for r in runs if r.status == "ok") == est.best_score_


def test_estimator_multitarget_regression() -> None:
    lin = load_dataset("sklearn:linnerud")
    # linnerud's targets are whole numbers with few distinct values: inferred as class targets (see
    # metalearn.data.kinds), so the kind is given, as a user would
    est = MetaLearnEstimator(
        kind="multitarget", n_trials=2, n_folds=3, trial_time_limit=TRIAL_LIMIT, kb=":memory:"
    )
    est.fit(lin.X, lin.y)
    assert est.task_.kind is TaskKind.MULTITARGET and est.task_.targets == tuple(lin.y.columns)
    pred = est.predict(lin.X)
    assert pred.shape == (len(lin.X), 3) and np.isfinite(pred).all()
    assert not hasattr(est, "predict_proba")  # a regression fit has no probabilities to offer
    with pytest.raises(AttributeError, match="predict_proba"):
        est.predict_proba(lin.X)
    with pytest.raises(AttributeError):
        _ = est.classes_
    with pytest.raises(InputError, match="rows"):
        MetaLearnEstimator(kb=":memory:").fit(lin.X, lin.y.iloc[:5])


def test_estimator_raises_when_every_trial_fails(tmp_path: Path) -> None:
    iris = load_dataset("sklearn:iris")
    kb_path = tmp_path / "kb.duckdb"
    with pytest.raises(InputError, match="unknown strategy 'bogus'"):
        MetaLearnEstimator(strategy="bogus", kb=str(kb_path)).fit(iris.X, iris.y.iloc[:, 0])
    assert not kb_path.exists()  # bad input writes nothing
    est = MetaLearnEstimator(n_trials=2, n_folds=3, trial_time_limit=0.001, kb=":memory:")
    with pytest.raises(SearchError, match="no configuration succeeded in 2 trials"):
        est.fit(iris.X, iris.y.iloc[:, 0])


def test_optimize_writes_summary_and_a_model_that_reloads(tmp_path: Path) -> None:
    ds = load_dataset("sklearn:breast_cancer")
    kb = open_kb(tmp_path / "kb.duckdb")
    out = tmp_path / "run"
    statuses: list[str] = []
    try:
        outcome = optimize(ds, kb, fast(n_trials=3), out_dir=out, on_status=statuses.append)
        check_search(kb, ds, outcome.result, n_trials=3)
    finally:
        kb.close()
    assert outcome.out_dir == out and statuses[0] == "meta-features" and statuses[-1].startswith("refitting")
    summary = json.loads((out / "summary.json").read_text())
    assert summary == json.loads(json.dumps(outcome.summary, default=str))
    res = outcome.result
    assert summary["search_id"] == res.search_id and summary["n_trials"] == 3 == len(summary["trials"])
    assert summary["best"] == {
        "score": res.best_score, "config_id": res.best_config_id, "values": res.best_values
    }
    assert summary["dataset"]["dataset_id"] == ds.dataset_id and summary["task"]["kind"] == "binary"
    assert [t["config_id"] for t in summary["trials"]] == [t.config_id for t in res.trials]
    assert summary["trajectory"] == [t.best_score for t in res.trials]

    from metalearn import load_model_file

    model = load_model_file(out / "model.skops", summary["model"]["sha256"])
    reloaded = model.predict_task(ds.X)
    original = outcome.model.predict_task(ds.X)
    assert np.array_equal(reloaded.values[0], original.values[0])
    assert np.allclose(reloaded.probas[0], original.probas[0])
    assert test_score(model, ds.X, ds.y, ds.task)["roc_auc"] > 0.9  # refit on all rows: a good fit


# -------------------------------------------------------------- multi-fidelity searches (issue 14 item 1)
MF_STAGES = (1 / 9, 1 / 3, 1.0)  # Hyperband's budgets for min_budget 0.1, eta 3


def _mf(**overrides: Any) -> SearchSettings:
    values: dict[str, Any] = dict(n_trials=10, multi_fidelity=True, protocol=EvalProtocol(n_folds=3))
    return fast(**{**values, **overrides})


@pytest.mark.corpus
def test_multi_fidelity_search_ends_at_full_budget_and_resumes(load_corpus: Any) -> None:
    """10 trials are fewer than Hyperband's first bracket (9 at 1/9, 3 at 1/3, 1 at 1): the search used
    to end with low-budget trials only (best NaN, no model); its last trial is now the best candidate at
    full budget, stored with budget 1.0 under the run id a search without fidelities gives it. The same
    search again resumes every trial (low-budget ones included), and a larger one goes on with Hyperband
    (promoting told configurations) instead of re-running them."""
    from metalearn.kb.records import run_id_for

    ds = load_corpus("prnn_synth")  # 250 rows, binary
    kb = open_kb(":memory:")
    first = optimize(ds, kb, _mf())
    res = first.result
    assert len(res.trials) == 10 and res.n_new == 10 and res.status == "done"
    assert all(t.budget is not None and any(math.isclose(t.budget, b) for b in MF_STAGES) for t in res.trials)
    full = [t for t in res.trials if t.budget == 1.0]
    assert full and res.trials[-1].budget == 1.0 and res.trials[-1].status == "ok"
    assert math.isfinite(res.best_score) and res.best_config_id in {t.config_id for t in full if t.status == "ok"}
    assert res.best_score == max(t.score for t in full if t.status == "ok")
    low = [t for t in res.trials if t.budget < 1.0]
    if res.trials[-1].origin == "full-budget":  # the kept trial: the best at the highest low budget
        top = max(t.budget for t in low if t.status == "ok")
        assert res.best_values == max((t for t in low if t.budget == top), key=lambda t: t.score).values
    assert first.model is not None and first.summary["best"]["score"] == res.best_score
    ensembled = bool((first.summary["ensemble"] or {}).get("used"))
    assert first.summary["model"] == {
        "refit": True, "file": None, "format": None, "sha256": None, "constant_targets": [], "missing_reason": "",
        "config_id": None if ensembled else res.best_config_id,  # what the model is (None: an ensemble)
    }
    runs = kb.list_runs(search_id=res.search_id)
    assert sorted(r.budget for r in runs) == sorted(t.budget for t in res.trials)  # 1.0 stored, not None
    key = res.settings["protocol"]
    for r in runs:
        if r.budget == 1.0:
            assert r.protocol == key and r.run_id == run_id_for(ds.dataset_id, r.config_id, key)
        else:
            assert r.protocol.startswith(f"{key}-b") and r.run_id != run_id_for(ds.dataset_id, r.config_id, key)
    assert kb.get_search(res.search_id).incumbent_score == res.best_score

    again = run_search(ds, kb, _mf())
    assert (again.n_resumed, again.n_new) == (10, 0)
    assert [(t.config_id, t.budget) for t in again.trials] == [(t.config_id, t.budget) for t in res.trials]
    assert (again.best_score, again.best_config_id) == (res.best_score, res.best_config_id)
    assert kb.list_runs(search_id=again.search_id) == []

    more = run_search(ds, kb, _mf(n_trials=13))
    assert (more.n_resumed, more.n_new) == (10, 3)
    told = {t.config_id for t in res.trials}
    promoted = [t for t in more.trials[10:] if t.budget > MF_STAGES[0] and t.config_id in told]
    assert promoted, [(t.config_id, t.budget) for t in more.trials]  # Hyperband went on from the told runs
    assert not {(t.config_id, t.budget) for t in more.trials[10:]} & {(t.config_id, t.budget) for t in res.trials}
    assert len(kb.list_runs(dataset_id=ds.dataset_id)) == 13


@pytest.mark.corpus
def test_multi_fidelity_search_resumes_full_runs_stored_without_a_budget(load_corpus: Any) -> None:
    """Runs of searches without fidelities (budget None) are the same full budget: a multi-fidelity search
    tells them at budget 1.0 and its incumbent is the best of them; a one-trial multi-fidelity search is
    a full-budget trial."""
    ds = load_corpus("prnn_synth")
    kb = open_kb(":memory:")
    single = optimize(ds, kb, _mf(n_trials=1))
    assert [(t.budget, t.status) for t in single.result.trials] == [(1.0, "ok")] and single.model is not None
    registered(kb, ds)
    plain = run_search(ds, kb, fast(n_trials=3, protocol=EvalProtocol(n_folds=3)))
    assert {r.budget for r in kb.list_runs(search_id=plain.search_id)} == {None}
    mf = run_search(ds, kb, _mf(n_trials=5))
    assert mf.n_resumed == 3 and all(t.budget == 1.0 for t in mf.trials[:3])
    assert mf.best_score == max(t.score for t in mf.trials if t.budget == 1.0 and t.status == "ok")


def test_multi_fidelity_search_that_cannot_finish_at_full_budget_says_so(tmp_path: Path) -> None:
    """Every trial timing out: no incumbent, no model, and the summary says why."""
    iris = load_dataset("sklearn:iris")
    kb = open_kb(":memory:")
    outcome = optimize(iris, kb, _mf(n_trials=3, trial_time_limit=0.001), out_dir=tmp_path / "out")
    res = outcome.result
    assert res.best_config_id is None and outcome.model is None and res.n_failed == len(res.trials)
    assert res.trials[-1].budget == 1.0
    model = json.loads((tmp_path / "out" / "summary.json").read_text())["model"]
    assert model["refit"] is False and model["file"] is None
    assert "no configuration succeeded at full budget" in model["missing_reason"]
    assert not (tmp_path / "out" / "model.skops").exists()


# ----------------------------------------------------------- validation before writing (issue 14 item 6)
@pytest.mark.parametrize("metric", ["bogus_metric", "rmse"])
def test_optimize_refuses_a_bad_metric_before_writing(tmp_path: Path, metric: str) -> None:
    from dataclasses import replace

    iris = load_dataset("sklearn:iris")
    bad = iris.with_task(replace(iris.task, metric=metric))
    kb = open_kb(tmp_path / "kb.duckdb")
    try:
        before = kb.stats()
        with pytest.raises(InputError, match=metric):
            optimize(bad, kb, fast(n_trials=1), out_dir=tmp_path / "out")
        with pytest.raises(InputError, match=metric):
            run_search(bad, kb, fast(n_trials=1))
        assert kb.stats() == before
    finally:
        kb.close()
    assert not (tmp_path / "out").exists()


# ------------------------------------------------ the summary: time, target kinds, constant targets
@pytest.mark.corpus
def test_optimize_summary_reports_the_whole_job_target_kinds_and_constant_targets(
    load_corpus: Any, tmp_path: Path
) -> None:
    """``seconds`` covers the whole job from ``started`` (the caller's loading included, item 4); every
    target's kind comes with its reason; a label constant in the data is listed as predicted constant."""
    import time

    flags = load_corpus("flags")
    frame = pd.concat([flags.X, flags.y], axis=1)
    frame = frame[frame["orange"] == 0].reset_index(drop=True)  # "orange" never occurs
    ds = prepare_frame(frame, list(flags.task.targets), name="flags_no_orange", origin="test:flags")
    assert ds.task.kind is TaskKind.MULTILABEL
    kb = open_kb(":memory:")
    started = time.monotonic() - 3.0  # the caller spent 3 s before (loading the data, say)
    outcome = optimize(ds, kb, fast(n_trials=1), out_dir=tmp_path / "out", started=started)
    wall = time.monotonic() - started
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    timings = summary["timings"]
    assert set(timings) == {"before", "metafeatures", "recommendations", "search", "refit", "write"}
    assert timings["before"] >= 3.0
    assert sum(timings.values()) <= summary["seconds"] + 0.01 <= wall + 0.01
    assert summary["seconds"] >= 3.0 + timings["search"] >= 3.0 + outcome.result.seconds - 0.01
    assert [t["name"] for t in summary["targets"]] == list(ds.task.targets)
    assert all(t["kind"] == "binary" and t["reason"] for t in summary["targets"])
    assert [t["reason"] for t in summary["targets"]] == list(ds.task.kind_reasons)
    assert summary["model"]["constant_targets"] == ["orange"] == outcome.model.constant_targets_
    assert summary["model"]["file"] == str(tmp_path / "out" / "model.skops")


def test_smac_skips_boosted_proposals_too_short_to_fit_but_runs_a_recommended_one() -> None:
    """A boosted configuration whose learning rate * rounds is below ``MIN_BOOSTING_STEP`` cannot fit any
    data (it stays near the constant prediction): SMAC's own such proposals are told to SMAC as crashed
    without a fit and never become trials; a recommended one is evaluated like any other."""
    from metalearn.pipelines.spaces.components import MIN_BOOSTING_STEP

    ds = load_dataset("sklearn:breast_cancer")
    space = get_space(ds.task)
    short = space.validate({"model": "lgbm", "lgbm:learning_rate": 0.002, "lgbm:n_estimators": 50.0},
                           fill_defaults=True)
    fine = space.validate({"model": "lgbm", "lgbm:learning_rate": 0.1, "lgbm:n_estimators": 100.0},
                          fill_defaults=True)
    assert "too few steps" in (space.underfit_reason(short) or "") and space.underfit_reason(fine) is None
    assert space.underfit_reason(space.validate({"model": "rf"}, fill_defaults=True)) is None
    kb = open_kb(":memory:")
    registered(kb, ds)
    settings = fast(warm_start=True, n_trials=12, seed=3)
    result = run_search(ds, kb, settings, recommendations=[Rec("short", short, 1, ("x",))])
    check_search(kb, ds, result, n_trials=12)
    first, rest = result.trials[0], result.trials[1:]
    assert first.origin == "recommendation:1" and first.values == short and first.status == "ok"
    for t in rest:
        v = t.values
        if v["model"] in ("lgbm", "xgb", "catboost", "hgb"):
            rounds = "max_iter" if v["model"] == "hgb" else "n_estimators"
            assert v[f"{v['model']}:learning_rate"] * v[f"{v['model']}:{rounds}"] >= MIN_BOOSTING_STEP, v
    assert result.n_skipped > 0  # this seed's SMAC proposed some
    assert kb.stats()["runs"] == 12  # skipped proposals are not stored


def test_smac_proposals_of_a_model_already_scored_are_told_its_cost_not_run_again() -> None:
    """SMAC proposes twins of scored configurations that differ only below a count's integer part (e.g.
    ``lgbm:num_leaves`` 31.0 and 31.2: the same model, the same score): the search tells SMAC the scored
    twin's cost without a fit and counts it in ``n_duplicates``; every trial builds a different model."""
    from metalearn.search.loop import _effective_id

    ds = load_dataset("sklearn:wine")
    space = get_space(ds.task)
    recs = [Rec("lgbm", space.validate({"model": "lgbm"}, fill_defaults=True), 1)]
    kb = open_kb(":memory:")
    registered(kb, ds)
    settings = fast(warm_start=True, n_warm=1, n_trials=25, seed=1, protocol=EvalProtocol(n_folds=3))
    result = run_search(ds, kb, settings, recommendations=recs)
    check_search(kb, ds, result, n_trials=25)
    effective = [_effective_id(space, t.values) for t in result.trials]
    assert len(set(effective)) == len(effective)
    assert result.n_duplicates >= 1  # this seed's SMAC proposed one
    assert kb.stats()["runs"] == 25  # a twin told to SMAC is no trial and is not stored
    kb.close()


@pytest.mark.parametrize("optimizer", ["smac", "random"])
def test_a_time_limited_search_skips_recommendations_of_a_family_already_outclassed(optimizer: str) -> None:
    """On wine (3-fold CV on 178 rows) logistic regression scores log loss ~0.07 and k-NN ~0.29: once
    both ran, a time-limited search skips a second k-NN recommendation without a fit (its family already
    scored over 3 x the best), says so in ``n_pruned`` and a note, and runs the recommendation after it.
    A search without a time limit runs every recommendation."""
    from metalearn.search.deadline import Deadline
    from metalearn.search.loop import OUTCLASSED_FAMILY_FACTOR

    ds = load_dataset("sklearn:wine")
    space = get_space(ds.task)
    linear = space.validate({"model": "linear"}, fill_defaults=True)
    knn = space.validate({"model": "knn"}, fill_defaults=True)
    knn10 = space.validate({"model": "knn", "knn:n_neighbors": 10.0}, fill_defaults=True)
    rf = space.validate({"model": "rf"}, fill_defaults=True)
    recs = [Rec("lin", linear, 1), Rec("knn", knn, 2), Rec("knn10", knn10, 3), Rec("rf", rf, 4)]
    protocol = EvalProtocol(n_folds=3)
    for limit in (None, 120.0):
        kb = open_kb(":memory:")
        registered(kb, ds)
        settings = fast(warm_start=True, n_warm=4, n_trials=4, protocol=protocol, time_limit=limit, optimizer=optimizer)
        deadline = Deadline(limit)
        result = run_search(ds, kb, settings, recommendations=recs, deadline=deadline)
        origins = [t.origin for t in result.trials]
        by_origin = {t.origin: t for t in result.trials}
        assert by_origin["recommendation:2"].score > OUTCLASSED_FAMILY_FACTOR * by_origin["recommendation:1"].score
        if limit is None:
            assert origins == [f"recommendation:{i}" for i in (1, 2, 3, 4)] and result.n_pruned == 0
            continue
        assert origins[:3] == ["recommendation:1", "recommendation:2", "recommendation:4"], origins
        assert knn10 not in [t.values for t in result.trials] and result.n_pruned == 1
        assert any("1 recommendation(s) skipped" in n for n in deadline.notes), deadline.notes
        knn10_id = ConfigurationRecord.create(space.name, space.version, knn10).config_id
        assert knn10_id not in {r.config_id for r in kb.list_runs(dataset_id=ds.dataset_id)}  # nothing stored
        kb.close()


def test_a_search_alternates_smac_with_neighbours_of_the_best_configuration() -> None:
    """Once SMAC proposes configurations of its own, every other proposal of a search (with or without a
    time limit) is a neighbour of the best configuration so far: the same model family, one hyperparameter
    moved, a trial like the others (stored, told to SMAC). A multi-fidelity search asks SMAC only."""
    ds = load_dataset("sklearn:wine")
    space = get_space(ds.task)
    recs = [Rec("lin", space.validate({"model": "linear"}, fill_defaults=True), 1),
            Rec("rf", space.validate({"model": "rf"}, fill_defaults=True), 2)]
    for limit in (None, 300.0):
        kb = open_kb(":memory:")
        registered(kb, ds)
        settings = fast(warm_start=True, n_warm=2, n_trials=12, protocol=EvalProtocol(n_folds=3), time_limit=limit)
        pool = OOFPool.for_task(ds.task)
        result = run_search(ds, kb, settings, recommendations=recs, oof_pool=pool)
        origins = [t.origin for t in result.trials]
        local = [i for i, o in enumerate(origins) if o == "local"]
        assert result.n_new == 12
        assert origins[:3] == ["recommendation:1", "recommendation:2", "smac"] and len(local) >= 2, origins
        for i in local:
            t = result.trials[i]
            start = next(p for p in result.trials[:i] if p.config_id == result.trials[i - 1].best_config_id)
            moved = {k for k in set(t.values) | set(start.values) if t.values.get(k) != start.values.get(k)}
            assert t.values["model"] == start.values["model"] and 1 <= len(moved) <= 3, (t.values, start.values)
            assert t.status == "ok"
        stored = {r.config_id for r in kb.list_runs(dataset_id=ds.dataset_id)}
        assert {result.trials[i].config_id for i in local} <= stored
        # the ensemble's pool takes a local proposal only when it beat the best score so far
        pooled = {c.config_id for c in pool.candidates()}
        sign = 1.0 if pool.greater_is_better else -1.0
        for i in local:
            t = result.trials[i]
            improved = sign * t.score > max(sign * p.score for p in result.trials[:i] if p.status == "ok")
            assert (t.config_id in pooled) == improved, (i, t.score, origins)
        assert {t.config_id for t in result.trials if t.origin != "local" and t.status == "ok"} <= pooled
        # a move that scored exactly as its start is not proposed from that start again
        flat: dict[str, set[str]] = {}
        for i in local:
            t, start_id = result.trials[i], result.trials[i - 1].best_config_id
            start = next(p for p in result.trials[:i] if p.config_id == start_id)
            moved = {k for k in set(t.values) | set(start.values) if t.values.get(k) != start.values.get(k)}
            assert not moved & flat.get(start_id, set()), (moved, flat)
            if t.score == start.score:
                flat.setdefault(start_id, set()).update(moved)
        kb.close()


def test_local_neighbours_leave_out_the_moves_that_changed_nothing() -> None:
    """``_local_neighbour`` moves one of the start's model hyperparameters, never one marked flat (an earlier
    move of it scored exactly as the start); with every one flat there is no neighbour."""
    from metalearn.search.loop import _local_neighbour

    ds = load_dataset("sklearn:wine")
    space = get_space(ds.task)
    start = space.validate({"model": "lgbm"}, fill_defaults=True)
    own = {k for k in start if k.startswith("lgbm:")}
    assert len(own) >= 4
    for keep in sorted(own):
        for seed in range(3):
            found = _local_neighbour(space, space.configspace, start, set(), seed, own - {keep})
            assert found is not None, keep
            _, values, moved = found
            assert moved == {keep} and values[keep] != start[keep] and values["model"] == "lgbm"
    assert _local_neighbour(space, space.configspace, start, set(), 0, own) is None
    found = _local_neighbour(space, space.configspace, start, set(), 0)
    assert found is not None and found[2] <= own and len(found[2]) == 1


def test_the_smac_surrogate_grows_the_trees_of_smacs_default_without_its_leaf_bound() -> None:
    """``surrogate_model`` is SMAC's forest without ``max_leaf_nodes=2**20`` (which made scikit-learn
    allocate a tree for a million leaves: 0.86 s per fit): on 80 configurations of the regression space it
    grows trees of the same leaf counts and ranks 300 other configurations as SMAC's default with the
    same seed does, closer than that default with another seed."""
    from scipy.stats import spearmanr
    from smac.model.random_forest import RandomForest

    cs = get_space("regression").configspace
    cs.seed(0)

    def vectors(n: int) -> np.ndarray:
        return np.nan_to_num(np.array([c.get_array() for c in cs.sample_configuration(n)]), nan=-1.0)

    X, X_new = vectors(80), vectors(300)
    rng = np.random.default_rng(0)
    y = np.exp(0.3 * X @ rng.normal(size=X.shape[1])) + 0.1 * rng.random(len(X))
    ours = surrogate_model(cs, seed=0)
    smac_default, other_seed = (RandomForest(cs, log_y=True, n_jobs=1, seed=s) for s in (0, 1))
    for model in (ours, smac_default, other_seed):
        model.train(X, y)
    assert ours._rf.max_leaf_nodes is None and smac_default._rf.max_leaf_nodes == 2**20

    def leaves(model: Any) -> list[int]:
        return [int(tree.get_n_leaves()) for tree in model._rf.estimators_]

    assert len(leaves(ours)) == 10 and abs(np.mean(leaves(ours)) - np.mean(leaves(smac_default))) <= 1.0
    ranks = [m.predict_marginalized(X_new)[0].ravel() for m in (ours, smac_default, other_seed)]
    assert spearmanr(ranks[0], ranks[1])[0] > spearmanr(ranks[1], ranks[2])[0] > 0.9


def test_repeated_rows_are_said_and_kept_in_one_fold_on_request() -> None:
    """Rows repeated 4 times: copies in different folds gave CV ROC AUC 1.000 and chose a worse pipeline, silently.
    The search warns of them and names ``group_repeats``; with it each row's copies are in one fold, so a
    1-nearest-neighbour model (it memorises rows) scores on the repeated data about what it scores on the
    distinct rows, not the perfect score its copies give it."""
    from metalearn.search.automl import duplicated_rows

    iris = load_dataset("sklearn:iris")
    assert duplicated_rows(iris) is None  # 1 repeated row of 150: under the 5 %
    frame = pd.concat([iris.X, iris.y], axis=1)
    repeated = prepare_frame(pd.concat([frame] * 4, ignore_index=True), "target", name="repeated")
    grouped = EvalProtocol(n_folds=5, group_repeats=True)
    assert duplicated_rows(repeated, EvalProtocol(n_folds=5)) == (
        "451 of 600 rows (75%) repeat another row exactly: their copies fall in different folds, so the validation "
        "scores are optimistic and favour pipelines that memorise rows; if they are copies (by mistake, "
        "oversampling), keep each row's in one fold with --group-repeats (group_repeats=True); drop the repeats "
        "unless they are real, independent observations")
    assert duplicated_rows(repeated, grouped).startswith(
        "451 of 600 rows (75%) repeat another row exactly: each row's copies are kept in one validation fold")
    space = get_space(repeated.task)
    memoriser = space.validate({"model": "knn", "knn:n_neighbors": 1.0}, fill_defaults=True)
    on_distinct = evaluate_config(iris, space, memoriser, EvalProtocol(n_folds=5)).metrics["accuracy"]
    on_copies = evaluate_config(repeated, space, memoriser, EvalProtocol(n_folds=5))
    on_grouped = evaluate_config(repeated, space, memoriser, grouped)
    assert on_copies.metrics["accuracy"] > 0.99  # each test row's copy is in training: memorised
    assert abs(on_grouped.metrics["accuracy"] - on_distinct) < 0.04, (on_grouped.metrics, on_distinct)
    assert on_grouped.protocol_key == "cv5-s0-grouped" and on_copies.protocol_key == "cv5-s0"


def test_a_best_pipeline_no_better_than_a_constant_prediction_is_warned_of() -> None:
    """QA: on a wide table every slow pipeline timed out at 10 s and a linear one was kept at a validation RMSE of
    6.49 where predicting the mean gives 5.12, without a word."""
    import dataclasses

    from metalearn.kb import InMemoryKnowledgeBase
    from metalearn.search.automl import no_better_than_constant

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(300, 5)), columns=[f"x{i}" for i in range(5)])
    frame["y"] = 3.0 * frame["x0"] + rng.normal(size=300)
    ds = prepare_frame(frame, "y", name="signal")
    out = optimize(ds, InMemoryKnowledgeBase(), SearchSettings(n_trials=2, seed=0, warm_start=False, ensemble=False))
    assert out.result.best_score < 2.0 and not any("constant" in w for w in out.summary["warnings"])  # it learned
    std = float(ds.y.iloc[:, 0].std(ddof=0))
    worse = no_better_than_constant(ds, dataclasses.replace(out.result, best_score=std * 1.3))
    assert worse is not None and worse.startswith(f"the best pipeline's validation rmse {std * 1.3:.4g} is no better "
                                                  f"than a constant prediction's (the mean: {std:.4g} on all rows)")
    labels = frame.assign(y=np.where(frame["x0"] > 0, "up", "down"))
    binary = prepare_frame(labels, "y", name="signal-binary")
    outc = optimize(binary, InMemoryKnowledgeBase(), SearchSettings(n_trials=1, seed=0, warm_start=False, ensemble=False))
    assert outc.result.best_score > 0.9 and no_better_than_constant(binary, outc.result) is None
    chance = no_better_than_constant(binary, dataclasses.replace(outc.result, best_score=0.5))
    assert chance is not None and "roc_auc 0.5 is no better than a constant prediction's (the class frequencies: 0.5" in chance


def test_a_binary_search_scored_on_a_handful_of_the_rare_class_is_warned_of() -> None:
    """1,000 rows with 20 positives: a holdout of a third scores each trial on ~7 of them (a QA run reported ROC AUC
    0.78 on pure noise that way); with 200 positives, or cross-validation over enough of them, no warning."""
    from metalearn.search.automl import sparse_validation

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=1000), "b": rng.normal(size=1000)})
    y = np.zeros(1000, dtype=int)
    y[rng.choice(1000, 20, replace=False)] = 1
    rare = prepare_frame(X.assign(y=y), "y", name="rare")
    holdout = EvalProtocol(mode="holdout")
    warning = sparse_validation(rare, holdout)
    assert warning is not None and warning.startswith("each trial was scored on about 6.6 row(s) of class '1' (its "
                                                      "holdout split, of 20 in the data)")
    assert "a larger time limit" in warning  # the holdout: what a small time limit for the data does
    on_folds = sparse_validation(rare, EvalProtocol(mode="cv")) or ""
    assert "fold of 5-fold cross-validation" in on_folds and "time limit" not in on_folds  # every row, every fold
    y[:200] = 1
    assert sparse_validation(prepare_frame(X.assign(y=y), "y", name="common"), holdout) is None
    assert sparse_validation(load_dataset("sklearn:iris"), holdout) is None  # binary only
    # 19 positives in 2 folds: 9.5 each, under the 10 (it said "about 10 row(s)"); 2 in 3 folds: "about 0.67"
    y[:] = 0
    y[:19] = 1
    assert "about 9.5 row(s)" in (sparse_validation(prepare_frame(X.assign(y=y), "y", name="n19"),
                                                    EvalProtocol(mode="cv", n_folds=2)) or "")


def test_a_searchs_configurations_do_not_become_other_datasets_first_picks() -> None:
    """A search writes back its configurations, each evaluated on its dataset only, its best at regret 0 there: with
    a prior of one pseudo-dataset that best became the default strategy's first pick on 14 of the 66 shipped binary
    datasets after one 25-trial search on a synthetic dataset (stop 53)."""
    from metalearn.kb.shipped import open_default_kb
    from metalearn.metalearning.advisor import Advisor
    from metalearn.search.automl import optimize

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(300, 6)), columns=[f"x{i}" for i in range(6)])
    data = prepare_frame(X.assign(y=(X["x0"] + X["x1"] ** 2 + rng.normal(size=300) > 1).astype(int)), "y",
                         name="synthetic")
    kb = open_default_kb(":memory:")
    try:
        optimize(data, kb, SearchSettings(n_trials=16, n_warm=2, workers=1, ensemble=False, seed=0), refit=False)
        advisor = Advisor(kb)
        shipped = advisor.kind_data("binary")
        support = shipped.runs.groupby("config_id")["dataset_id"].nunique()
        mine = set(shipped.runs.loc[shipped.runs["dataset_id"] == data.dataset_id, "config_id"])
        assert len(mine) >= 14 and (support[list(mine)] == 1).sum() >= 10  # configurations only this search ran
        firsts = [advisor.recommend(shipped.metafeatures.loc[did], "binary", k=1, exclude_ids=[did])[0].config_id
                  for did in shipped.metafeatures.index if did != data.dataset_id]
    finally:
        kb.close()
    assert len(firsts) == 66 and not [c for c in firsts if support.get(c, 0) <= 1]
