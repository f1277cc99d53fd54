"""Issue 14: the multitask warm start composed per target, the reason for an empty answer, and
explanations (expected regret as an estimate for the query, expected score, dataset names)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from metalearn.data.dataset import Dataset
from metalearn.data.task import Task, TaskKind
from metalearn.kb.shipped import open_default_kb
from metalearn.metalearning.advisor import Advisor
from metalearn.metalearning.composed import COMPOSED_NOTE, target_datasets
from metalearn.metalearning.metafeatures import metafeature_record
from metalearn.pipelines.spaces import get_space


@pytest.fixture(scope="module")
def advisor() -> Advisor:
    return Advisor(open_default_kb(":memory:"))


@pytest.fixture(scope="module")
def mixed() -> Dataset:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(200, 4)), columns=list("abcd"))
    y = pd.DataFrame(
        {"c": np.where(X.a + rng.normal(size=200) > 0, "yes", "no"), "r": 2 * X.b + rng.normal(size=200)}
    )
    task = Task(kind=TaskKind.MULTITASK, targets=("c", "r"), target_kinds=(TaskKind.BINARY, TaskKind.REGRESSION))
    return Dataset("mixed", X, y, task, (False,) * 4, "test")


def test_target_datasets_split_per_target(mixed: Dataset) -> None:
    parts = target_datasets(mixed)
    assert [(t, k) for t, k, _ in parts] == [("c", TaskKind.BINARY), ("r", TaskKind.REGRESSION)]
    for target, _, sub in parts:
        assert list(sub.y.columns) == [target] and sub.dataset_id != mixed.dataset_id


def test_multitask_warm_start_is_composed_per_target(advisor: Advisor, mixed: Dataset) -> None:
    mf = metafeature_record(mixed).values
    assert advisor.recommend(mf, mixed.task) == []  # the KB has no multitask runs
    recs = advisor.recommend_dataset(mixed, mf, k=6)
    assert len(recs) == 6 and [r.rank for r in recs] == list(range(1, 7))
    space = get_space(TaskKind.MULTITASK)
    assert len({r.config_id for r in recs}) == 6
    for r in recs:
        assert r.composed and r.to_dict()["composed"] is True
        assert r.space == "multitask" and space.is_valid(r.values)
        assert r.values["mtl_strategy"] == "independent"
        assert r.explanation.startswith("composed per target")
    # round-robin: the class target's first pick, then the numeric target's
    assert "target 'c' (binary)" in recs[0].explanation and "target 'r' (regression)" in recs[1].explanation


def test_empty_multitask_answer_says_why(advisor: Advisor) -> None:
    from metalearn.service.routers.recommendations import compute_recommendations

    mf = advisor.kind_data("binary").metafeatures.iloc[0].to_dict()
    resp = compute_recommendations(advisor, mf, TaskKind.MULTITASK, None, 5, [])
    assert resp.recommendations == []
    assert resp.reason and "no multitask datasets" in resp.reason
    ok = compute_recommendations(advisor, mf, TaskKind.BINARY, None, 5, [])
    assert ok.recommendations and ok.reason is None


def test_search_summary_says_the_warm_start_was_composed() -> None:
    from metalearn.search.automl import _composed_note

    class Rec:
        composed = True

    assert _composed_note([Rec()]) == COMPOSED_NOTE
    assert _composed_note([]) is None


def test_knn_expected_regret_is_an_estimate_not_the_source_regret(advisor: Advisor) -> None:
    mf = advisor.kind_data("binary").metafeatures
    did = str(mf.index[3])
    recs = advisor.recommend(mf.loc[did], "binary", strategy="knn", k=8, exclude_ids=[did])
    assert all(r.sources[0].regret == 0.0 for r in recs[:3])  # each neighbour's best config
    assert len({round(r.expected_regret or 0.0, 6) for r in recs}) > 1
    assert all(r.expected_regret is not None and 0.0 < r.expected_regret < 1.0 for r in recs)


def test_explanations_cite_names_and_give_an_expected_score(advisor: Advisor) -> None:
    data = advisor.kind_data("binary")
    did = str(data.metafeatures.index[5])
    recs = advisor.recommend(data.metafeatures.loc[did], Task(TaskKind.BINARY, ("y",)), k=5, exclude_ids=[did])
    ids = set(data.names)
    for r in recs:
        assert not any(i in r.explanation for i in ids)  # names, not fingerprints
        assert r.sources and r.sources[0].name in r.explanation
        assert r.score_metric == "roc_auc" and r.expected_score is not None and 0.0 <= r.expected_score <= 1.0
        assert r.to_dict()["expected_score"] == r.expected_score
    later = recs[1:]
    assert all("not by its expected regret" in r.explanation for r in later)  # hybrid: labelled
