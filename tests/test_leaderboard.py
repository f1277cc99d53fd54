"""The leaderboard of a search (``metalearn.search.leaderboard``): the estimators' ``leaderboard()``, the
``metalearn leaderboard`` command, and what it leaves out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import run_cli
from sklearn.datasets import load_wine

from metalearn.data.errors import InputError
from metalearn.pipelines.spaces.components import FAMILIES
from metalearn.search.estimators import MetaLearnClassifier
from metalearn.search.leaderboard import COLUMNS, leaderboard


@pytest.fixture(scope="module")
def fitted() -> MetaLearnClassifier:
    X, y = load_wine(return_X_y=True, as_frame=True)
    return MetaLearnClassifier(n_trials=8, n_folds=3, seed=0).fit(X, y)


def test_the_estimators_leaderboard_ranks_every_pipeline_its_search_scored(fitted: MetaLearnClassifier) -> None:
    board = fitted.leaderboard()
    summary = fitted.search_
    ok = {t["config_id"] for t in summary["trials"] if t["status"] == "ok"}
    assert list(board.columns) == list(COLUMNS) and set(board["config_id"]) == ok and board["config_id"].is_unique
    assert board.attrs == {"metric": "log_loss", "greater_is_better": False}
    assert list(board["rank"]) == list(range(1, len(board) + 1))
    assert board["score"].is_monotonic_increasing  # log loss: lower is better
    assert board["score"].iloc[0] == pytest.approx(fitted.best_score_)
    assert set(board["family"]) <= set(FAMILIES)
    # the weights are the final model's: an ensemble's member weights or the one pipeline's 1
    weights = board.set_index("config_id")["weight"]
    assert weights.sum() == pytest.approx(1.0, abs=1e-5) and (weights >= 0).all()
    ensemble = summary["ensemble"]
    if ensemble["used"]:
        for m in ensemble["members"]:
            assert weights[m["config_id"]] == pytest.approx(m["weight"])
    else:
        assert weights[summary["model"]["config_id"]] == 1.0


def test_test_scores_of_the_final_models_pipelines(fitted: MetaLearnClassifier) -> None:
    from metalearn.data.metrics import score

    X, y = load_wine(return_X_y=True, as_frame=True)
    board = fitted.leaderboard(X.iloc[::3], y.iloc[::3])
    held = board.dropna(subset=["score_test"])
    assert set(held["config_id"]) == set(board.loc[board["weight"] > 0, "config_id"])  # the final model's pipelines
    assert board.attrs["score_test"] == pytest.approx(fitted.evaluate(X.iloc[::3], y.iloc[::3])["log_loss"])
    model = fitted.model_
    members = dict(zip(getattr(model, "config_ids", ()), getattr(model, "members", ()), strict=True))
    for cid, value in held.set_index("config_id")["score_test"].items():
        if len(members) == 1:  # one pipeline with its calibration is the model: the model's score (a thresholded
            assert value == pytest.approx(board.attrs["score_test"])  # one's F1 read 0.167 against its 0.533)
        elif cid in members:  # a member's own score, unscaled
            own = score(fitted.task_, y.iloc[::3].to_frame(), members[cid].predict_task(X.iloc[::3]))
            assert value == pytest.approx(own)
    assert list(fitted.leaderboard().columns) == list(COLUMNS)  # without data: no test column
    with pytest.raises(InputError, match="both"):
        fitted.leaderboard(X)


def test_failed_partial_and_repeated_trials(fitted: MetaLearnClassifier) -> None:
    summary: dict[str, Any] = json.loads(json.dumps(fitted.search_))
    trials = summary["trials"]
    best = leaderboard(summary)
    first = dict(trials[0])
    # a failed trial, one on part of the data and an earlier, worse evaluation of the first configuration
    trials += [
        {**first, "number": 100, "config_id": "failed", "status": "failed", "score": None},
        {**first, "number": 101, "config_id": "partial", "budget": 0.25, "score": 0.0},
        {**first, "number": 102, "score": first["score"] + 1.0, "seconds": 99.0},
    ]
    board = leaderboard(summary)
    assert "failed" not in set(board["config_id"]) and "partial" not in set(board["config_id"])
    row = board.set_index("config_id").loc[first["config_id"]]
    assert row["evaluations"] == 2 and row["score"] == pytest.approx(first["score"]) and row["seconds"] != 99.0
    assert board.drop(columns="evaluations").equals(best.drop(columns="evaluations"))
    summary["model"] = {"refit": False, "config_id": None}
    summary["ensemble"] = None
    assert (leaderboard(summary)["weight"] == 0).all()  # no model refit: no weights
    for bad in ({}, {"trials": []}, {"greater_is_better": True}, []):
        with pytest.raises(InputError, match="not the summary of a search"):
            leaderboard(bad)  # type: ignore[arg-type]


def test_the_leaderboard_command(
    capsys: pytest.CaptureFixture[str], fitted: MetaLearnClassifier, tmp_path: Path
) -> None:
    (tmp_path / "summary.json").write_text(json.dumps(fitted.search_))
    code, out, err = run_cli(capsys, "leaderboard", tmp_path, "--top", 3)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["rank", "config_id", "family", "log_loss"] and len(lines) == 5
    best = fitted.leaderboard().iloc[0]
    assert lines[1].split()[:3] == ["1", best["config_id"], best["family"]]
    assert lines[-1] == f"... {len(fitted.leaderboard()) - 3} more (of {len(fitted.leaderboard())} pipelines)"
    code, out, _ = run_cli(capsys, "leaderboard", tmp_path / "summary.json", "--json")
    parsed = json.loads(out)
    assert code == 0 and parsed["pipelines"] == len(parsed["leaderboard"]) == len(fitted.leaderboard())
    assert np.isclose(parsed["leaderboard"][0]["score"], fitted.best_score_)
    code, out, err = run_cli(capsys, "leaderboard", tmp_path / "nothing")
    assert code == 2 and "cannot read" in err and "--out directory" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "bad.json").write_text("{")
    code, out, err = run_cli(capsys, "leaderboard", tmp_path / "bad.json")
    assert code == 2 and "is not JSON" in err and not out


def test_a_thresholded_single_pipeline_shows_the_models_own_test_score() -> None:
    """With a label metric the one pipeline is wrapped with a decision threshold: its row showed the bare pipeline's
    test score (F1 0.167) beside the model's own (0.533)."""
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    clf = MetaLearnClassifier(n_trials=2, n_folds=2, metric="f1", ensemble=False, warm_start=False, seed=0)
    clf.fit(X.iloc[::2], y.iloc[::2])
    board = clf.leaderboard(X.iloc[1::2], y.iloc[1::2])
    held = board.dropna(subset=["score_test"])
    assert len(held) == 1 and held["score_test"].iloc[0] == pytest.approx(board.attrs["score_test"])
    assert board.attrs["score_test"] == pytest.approx(clf.evaluate(X.iloc[1::2], y.iloc[1::2])["f1"])
