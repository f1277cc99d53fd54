"""Post-hoc ensemble selection (``metalearn.search.ensemble``, issue 12 item 3): Caruana's greedy selection
with replacement on synthetic out-of-fold predictions with a known answer, the bounded pool of OOF
predictions, the refit :class:`EnsembleModel`, and small end-to-end ``optimize`` runs on every kind of
real data (6 trials, 3-fold CV, warm start on)."""

from __future__ import annotations

import gc
import json
import math
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest

from metalearn.data.dataset import Dataset
from metalearn.data.loading import load_dataset
from metalearn.data.metrics import score
from metalearn.data.prediction import Prediction
from metalearn.data.task import Task, TaskKind
from metalearn.kb.shipped import open_default_kb
from metalearn.search import ensemble as ensemble_module
from metalearn.search.automl import optimize
from metalearn.search.ensemble import (
    Candidate,
    EnsembleModel,
    OOFPool,
    OutOfFold,
    assemble_oof,
    combine_predictions,
    select_ensemble,
)
from metalearn.search.evaluation import EvalProtocol, evaluate_config, test_score
from metalearn.search.loop import SearchSettings

R, B = TaskKind.REGRESSION, TaskKind.BINARY
N = 200


# ------------------------------------------------------------------------------------- synthetic OOF
def reg_task(metric: str = "rmse") -> Task:
    return Task(R, ("y",), (R,), metric)


def reg_candidate(cid: str, y: np.ndarray, pred: np.ndarray, score_: float = 0.0) -> Candidate:
    oof = OutOfFold(np.arange(len(y)), Prediction([pred.astype(float)], [None], [None]), pd.DataFrame({"y": y}))
    return Candidate(cid, {"model": cid}, score_, oof)


def bin_candidate(cid: str, y: np.ndarray, p1: np.ndarray) -> Candidate:
    classes = np.array(["neg", "pos"], dtype=object)
    proba = np.column_stack([1 - p1, p1])
    pred = Prediction([classes[(p1 > 0.5).astype(int)]], [proba], [classes])
    return Candidate(cid, {"model": cid}, 0.0, OutOfFold(np.arange(len(y)), pred, pd.DataFrame({"y": classes[y]})))


def test_two_complementary_models_beat_either_one() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=N)
    err = 0.5 * rng.normal(size=N)  # each better than predicting the mean
    cands = [reg_candidate("a", y, y + err), reg_candidate("b", y, y - err), reg_candidate("c", y, y + 2 * err)]
    sel = select_ensemble(reg_task(), cands, size=10)
    assert sel is not None and sel.kept
    assert dict(zip(sel.members, sel.weights, strict=True)) == {"a": 0.5, "b": 0.5}  # the errors cancel
    assert sel.score == pytest.approx(0.0, abs=1e-12) and sel.best_single == pytest.approx(np.sqrt(np.mean(err**2)))
    assert sel.gain == pytest.approx(sel.best_single)  # rmse: lower is better, the gain is positive


def test_binary_probabilities_are_averaged() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, size=N)
    half = np.arange(N) < N // 2
    informative = np.clip(y + rng.normal(scale=0.3, size=N), 0.01, 0.99)
    noise = rng.uniform(0.01, 0.99, size=N)
    a = np.where(half, informative, noise)  # right on the first half only
    b = np.where(half, noise, informative)  # on the second half only
    task = Task(B, ("y",), (B,), "roc_auc")
    sel = select_ensemble(task, [bin_candidate("a", y, a), bin_candidate("b", y, b)], size=10)
    assert sel is not None and sel.kept and set(sel.members) == {"a", "b"} and sel.gain > 0.05
    assert sel.greater_is_better and sel.score == pytest.approx(sel.best_single + sel.gain)


def test_selection_with_replacement_gives_integer_multiple_weights() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(size=N)
    # y + 0.25 and y - 0.5: the exact mix is 2/3 and 1/3, which greedy picks reach as a, b, a
    cands = [reg_candidate("a", y, y + 0.25), reg_candidate("b", y, y - 0.5)]
    sel = select_ensemble(reg_task(), cands, size=25, bags=1)
    assert sel is not None and sel.kept
    assert sel.members == ("a", "b") and sel.counts == (2, 1)
    assert sel.weights == pytest.approx((2 / 3, 1 / 3)) and math.isclose(sum(sel.weights), 1.0)
    n = sum(sel.counts)
    assert all(math.isclose(w * n, round(w * n)) for w in sel.weights)
    assert sel.score == pytest.approx(0.0, abs=1e-9) and sel.trajectory[:3] == pytest.approx((0.25, 0.125, 0.0), abs=1e-9)


def test_an_ensemble_is_kept_only_when_it_beats_the_best_single() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(size=N)
    # a is exact: nothing added to it can beat it
    sel = select_ensemble(reg_task(), [reg_candidate("a", y, y), reg_candidate("b", y, y + rng.normal(size=N))])
    assert sel is not None and not sel.kept and sel.members == ("a",) and sel.weights == (1.0,) and sel.gain == 0
    # the same predictions twice: an average equal to the single model is no gain
    p = y + rng.normal(size=N)
    sel = select_ensemble(reg_task("r2"), [reg_candidate("a", y, p), reg_candidate("b", y, p.copy())])
    assert sel is not None and not sel.kept and sel.gain == pytest.approx(0.0)
    assert select_ensemble(reg_task(), []) is None


def test_a_candidate_no_better_than_a_constant_prediction_takes_no_weight() -> None:
    """"a" predicts y with noise e (RMSE 0.8 of y's spread); "z" = mean(y) - e is worse than predicting the
    mean, yet averaged with "a" it cancels a's noise: Caruana's greedy selection would pick it, fitting the
    OOF rows. It is left out, as auto-sklearn leaves out models no better than its dummy; a genuinely
    better-than-constant "b" (y with independent noise) still joins."""
    rng = np.random.default_rng(0)
    y = rng.normal(size=N)
    e = 0.8 * rng.normal(size=N)
    a = reg_candidate("a", y, y + e)
    z = reg_candidate("z", y, y.mean() - e)
    b = reg_candidate("b", y, y + 0.8 * rng.normal(size=N))
    assert float(np.sqrt(np.mean((y.mean() - e - y) ** 2))) > float(np.std(y))  # z: worse than the mean
    assert float(np.sqrt(np.mean(((y + e + y.mean() - e) / 2 - y) ** 2))) < float(np.sqrt(np.mean(e**2)))
    alone = select_ensemble(reg_task(), [a, z])
    assert alone is not None and alone.members == ("a",) and not alone.kept
    sel = select_ensemble(reg_task(), [a, z, b])
    assert sel is not None and sel.kept and set(sel.members) == {"a", "b"}


def test_multi_output_kinds_are_combined_per_target() -> None:
    rng = np.random.default_rng(4)
    y = rng.normal(size=(N, 2))
    e = 0.5 * rng.normal(size=(N, 2))
    task = Task(TaskKind.MULTITARGET, ("u", "v"), (R, R), "rmse_mean")
    frame = pd.DataFrame(y, columns=["u", "v"])

    def cand(cid: str, pred: np.ndarray) -> Candidate:
        return Candidate(cid, {}, 0.0, OutOfFold(np.arange(N), Prediction([pred[:, 0], pred[:, 1]], [None, None],
                                                                              [None, None]), frame))

    sel = select_ensemble(task, [cand("a", y + e), cand("b", y - e)])
    assert sel is not None and sel.kept and sel.weights == (0.5, 0.5) and sel.score == pytest.approx(0.0, abs=1e-12)

    # multitask: a class target and a numeric one, each combined on its own
    yc = rng.integers(0, 2, size=N)
    mt = Task(TaskKind.MULTITASK, ("c", "r"), (B, R), "multitask_mean")
    truth = pd.DataFrame({"c": yc, "r": y[:, 0]})
    classes = np.array([0, 1])

    def mcand(cid: str, p1: np.ndarray, r: np.ndarray) -> Candidate:
        proba = np.column_stack([1 - p1, p1])
        pred = Prediction([classes[(p1 > 0.5).astype(int)], r], [proba, None], [classes, None])
        return Candidate(cid, {}, 0.0, OutOfFold(np.arange(N), pred, truth))

    good = np.clip(yc + rng.normal(scale=0.4, size=N), 0, 1)
    sel = select_ensemble(mt, [mcand("a", good, y[:, 0] + e[:, 0]), mcand("b", good[::-1], y[:, 0] - e[:, 0])])
    assert sel is not None and sel.kept and set(sel.members) == {"a", "b"}



def mc_candidate(cid: str, y: np.ndarray, proba: np.ndarray) -> Candidate:
    classes = np.array(["a", "b", "c"], dtype=object)
    pred = Prediction([classes[np.argmax(proba, axis=1)]], [proba], [classes])
    return Candidate(cid, {"model": cid}, 0.0, OutOfFold(np.arange(len(y)), pred, pd.DataFrame({"y": classes[y]})))


def noisy_pools() -> list[tuple[Task, list[Candidate]]]:
    """Pools of 8 noisy candidates for each metric the vectorised scorer covers (and one it does not)."""
    rng = np.random.default_rng(5)
    y = rng.normal(size=N)
    reg = [reg_candidate(f"r{i}", y, y + rng.normal(scale=0.5 + 0.1 * i, size=N)) for i in range(8)]
    yb = rng.integers(0, 2, size=N)
    binary = [bin_candidate(f"b{i}", yb, np.clip(yb + rng.normal(scale=0.6 + 0.1 * i, size=N), 0.01, 0.99))
              for i in range(8)]
    ym = rng.integers(0, 3, size=N)
    multi = []
    for i in range(8):
        logits = 2.0 * np.eye(3)[ym] + rng.normal(scale=1.0 + 0.2 * i, size=(N, 3))
        P = np.exp(logits)
        multi.append(mc_candidate(f"m{i}", ym, P / P.sum(axis=1, keepdims=True)))
    return [(reg_task(), reg), (reg_task("r2"), reg), (reg_task("mae"), reg),
            (Task(B, ("y",), (B,), "roc_auc"), binary), (Task(B, ("y",), (B,), "log_loss"), binary),
            (Task(TaskKind.MULTICLASS, ("y",), (TaskKind.MULTICLASS,), "log_loss"), multi),
            (Task(TaskKind.MULTICLASS, ("y",), (TaskKind.MULTICLASS,), "accuracy"), multi)]


def test_the_vectorised_scorer_selects_what_the_metrics_own_implementation_selects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fast = [select_ensemble(task, cands, size=25, bags=1) for task, cands in noisy_pools()]
    monkeypatch.setattr(ensemble_module._FastScorer, "build", classmethod(lambda cls, st, metric: None))
    generic = [select_ensemble(task, cands, size=25, bags=1) for task, cands in noisy_pools()]
    for f, g in zip(fast, generic, strict=True):
        assert f is not None and g is not None
        assert (f.members, f.counts, f.kept) == (g.members, g.counts, g.kept)
        assert f.score == pytest.approx(g.score, rel=1e-9) and f.trajectory == pytest.approx(g.trajectory, rel=1e-9)
    assert sum(len(f.members) > 1 for f in fast) >= 5  # the pools do make ensembles


def test_bagged_selection_averages_the_weights_of_bootstrap_resamples() -> None:
    for task, cands in noisy_pools():
        one = select_ensemble(task, cands, size=25, bags=1)
        bagged = select_ensemble(task, cands, size=25)  # the default: DEFAULT_BAGS
        assert one is not None and bagged is not None
        assert bagged == select_ensemble(task, cands, size=25, bags=ensemble_module.DEFAULT_BAGS, seed=0)
        assert math.isclose(sum(bagged.weights), 1.0) and all(w > 0 for w in bagged.weights)
        # its score is the weighted average's, by the metric's own implementation, on all the OOF rows
        by_id = {c.config_id: c for c in cands}
        avg = combine_predictions(task, [by_id[m].oof.prediction for m in bagged.members], bagged.weights)
        assert bagged.score == pytest.approx(score(task, cands[0].oof.y, avg), rel=1e-9)
        assert bagged.best_single == one.best_single and bagged.kept == (len(bagged.members) > 1 and bagged.gain > 0)
        if task.metric == "accuracy" or one.n_candidates == 1:  # no vectorised scorer, or nothing to bag
            assert bagged == one
        else:  # weights of 10 passes of up to 25 picks each: not the one pass's
            assert bagged.weights != one.weights and sum(bagged.counts) > sum(one.counts)
    task, cands = noisy_pools()[0]
    assert select_ensemble(task, cands, bags=3, seed=1) != select_ensemble(task, cands, bags=3, seed=2)
    with pytest.raises(ValueError, match="bags must be >= 1"):
        select_ensemble(task, cands, bags=0)


def test_large_pools_get_fewer_bags(monkeypatch: pytest.MonkeyPatch) -> None:
    task, cands = noisy_pools()[3]  # ROC AUC: 8 candidates x 200 rows x 24 iterations x 8 per bag
    per_bag = 8 * 8 * N * 24
    monkeypatch.setattr(ensemble_module, "BAG_WORK", 3 * per_bag)
    assert select_ensemble(task, cands) == select_ensemble(task, cands, bags=3)
    monkeypatch.setattr(ensemble_module, "BAG_WORK", 1.5 * per_bag)  # room for one bag: no bagging
    assert select_ensemble(task, cands) == select_ensemble(task, cands, bags=1)

def test_the_pool_keeps_the_best_trials_only() -> None:
    y = np.zeros(5)
    pool = OOFPool(greater_is_better=True, max_size=3)
    for i, s in enumerate([0.5, 0.9, 0.1, 0.7, 0.8, math.nan]):
        pool.offer(reg_candidate(f"c{i}", y, y, s))
    pool.offer(reg_candidate("c1", y, y, 0.0))  # a configuration once
    assert [c.config_id for c in pool.candidates()] == ["c1", "c4", "c3"] and len(pool) == 3 and "c0" not in pool
    low = OOFPool(greater_is_better=False, max_size=2)
    for i, s in enumerate([0.5, 0.9, 0.1]):
        low.offer(reg_candidate(f"c{i}", y, y, s))
    assert [c.config_id for c in low.candidates()] == ["c2", "c0"]


def test_assemble_oof_puts_the_folds_back_in_row_order_over_every_class() -> None:
    task = Task(TaskKind.MULTICLASS, ("y",), (TaskKind.MULTICLASS,), "accuracy")
    y = pd.DataFrame({"y": ["a", "b", "c", "a", "b"]})
    f1 = Prediction([np.array(["a", "b"], dtype=object)], [np.array([[0.9, 0.1], [0.2, 0.8]])],
                    [np.array(["a", "b"], dtype=object)])  # this fold's model never saw "c"
    f2 = Prediction([np.array(["a", "b", "c"], dtype=object)], [np.eye(3)], [np.array(["a", "b", "c"], dtype=object)])
    oof = assemble_oof(task, [(np.array([3, 1]), f1), (np.array([2, 0, 4]), f2)], y)
    assert list(oof.rows) == [0, 1, 2, 3, 4] and list(oof.y["y"]) == list(y["y"])
    classes, proba = oof.prediction.classes[0], oof.prediction.probas[0]
    assert classes is not None and proba is not None and list(classes) == ["a", "b", "c"]
    assert np.allclose(proba, np.array([[0, 1, 0], [0.2, 0.8, 0], [1, 0, 0], [0.9, 0.1, 0], [0, 0, 1]]))
    assert list(oof.prediction.values[0]) == ["b", "b", "a", "a", "c"]


def test_evaluation_returns_out_of_fold_predictions_of_full_budget_trials_only() -> None:
    from metalearn.pipelines.spaces import get_space

    ds = load_dataset("sklearn:iris")
    space = get_space(ds.task)
    protocol = EvalProtocol(n_folds=3)
    res = evaluate_config(ds, space, space.default(), protocol, time_limit=60.0, keep_predictions=True)
    assert res.ok and res.oof is not None and list(res.oof.rows) == list(range(ds.n_rows))
    pooled = score(ds.task, res.oof.y, res.oof.prediction)
    assert pooled == pytest.approx(res.score, abs=0.05)  # pooled vs mean over folds
    assert evaluate_config(ds, space, space.default(), protocol, keep_predictions=False).oof is None
    assert evaluate_config(ds, space, space.default(), protocol, budget=0.5, keep_predictions=True).oof is None
    hold = evaluate_config(ds, space, space.default(), EvalProtocol(mode="holdout"), keep_predictions=True)
    assert hold.oof is not None and 0 < hold.oof.n_rows < ds.n_rows  # the holdout rows and their positions
    assert list(hold.oof.y["target"] if "target" in hold.oof.y else hold.oof.y.iloc[:, 0]) == list(
        ds.y.iloc[hold.oof.rows, 0])


class _Const:
    """A fitted stand-in task model predicting fixed class probabilities."""

    def __init__(self, p1: float) -> None:
        self.p1 = p1

    def fit(self, X: pd.DataFrame, y: pd.DataFrame) -> _Const:
        return self

    def predict_task(self, X: pd.DataFrame) -> Prediction:
        classes = np.array([0, 1])
        proba = np.tile([1 - self.p1, self.p1], (len(X), 1))
        return Prediction([classes[(proba[:, 1] > 0.5).astype(int)]], [proba], [classes])


def test_ensemble_model_averages_and_pickles(tmp_path: Path) -> None:
    task = Task(B, ("y",), (B,), "roc_auc")
    model = EnsembleModel(task, [_Const(0.9), _Const(0.3)], [0.25, 0.75], ["a", "b"])
    X = pd.DataFrame({"x": [1.0, 2.0]})
    proba = np.asarray(model.predict_proba(X))
    assert np.allclose(proba, np.array([[0.55, 0.45]] * 2)) and list(model.predict(X)) == [0, 0]
    joblib.dump(model, tmp_path / "model.joblib")
    again = joblib.load(tmp_path / "model.joblib")
    assert np.allclose(np.asarray(again.predict_proba(X)), proba) and again.config_ids == ("a", "b")
    same = combine_predictions(task, [_Const(0.9).predict_task(X), _Const(0.3).predict_task(X)], [1, 3])
    assert same.probas[0] is not None and np.allclose(same.probas[0], proba)
    with pytest.raises(ValueError):
        EnsembleModel(task, [_Const(0.5)], [0.0])


# ------------------------------------------------------------------------------------- end to end
def small(**overrides: Any) -> SearchSettings:
    values: dict[str, Any] = dict(n_trials=6, trial_time_limit=30.0, warm_start=True, n_warm=3,
                                  protocol=EvalProtocol(n_folds=3, max_rows=300))
    values.update(overrides)
    return SearchSettings(**values)


def run(ds: Dataset, **overrides: Any) -> Any:
    kb = open_default_kb(":memory:", seed_from_shipped=True)
    try:
        return optimize(ds, kb, small(**overrides))
    finally:
        kb.close()
        gc.collect()


def check_ensemble(ds: Dataset, outcome: Any) -> None:
    block = outcome.summary["ensemble"]
    assert block is not None and block == json.loads(json.dumps(block))  # plain JSON
    assert block["score"] is not None and block["best_single"] is not None and block["metric"] == ds.task.metric
    members = block["members"]
    assert members and math.isclose(sum(m["weight"] for m in members), 1.0, abs_tol=1e-5)
    assert all({"config_id", "weight", "family"} <= set(m) and m["family"] != "-" for m in members)
    assert block["gain"] == pytest.approx(
        (block["score"] - block["best_single"]) * (1 if outcome.result.greater_is_better else -1))
    if block["used"]:
        assert isinstance(outcome.model, EnsembleModel) and block["gain"] > 0 and len(members) > 1
        assert outcome.model.config_ids == tuple(m["config_id"] for m in members)
        assert all(cid in {t.config_id for t in outcome.result.trials} for cid in outcome.model.config_ids)
    else:
        assert not isinstance(outcome.model, EnsembleModel) and block["note"]
    metrics = test_score(outcome.model, ds.X, ds.y, ds.task)
    assert not math.isnan(metrics[ds.task.metric])
    pred = outcome.model.predict(ds.X.iloc[:7])
    assert len(pred) == 7
    check_classes(outcome.model, ds.X)


def check_classes(model: Any, X: pd.DataFrame) -> None:
    """``model.classes_`` orders ``predict_proba``'s columns: the most probable column of each row, through it, is
    the label ``predict`` gives. One class target: its array; several targets: a list (None for a regression
    target, whose predict_proba entry is None too); no class target: no attribute, as a scikit-learn regressor."""
    labels = np.asarray(model.predict(X), dtype=object).reshape(len(X), -1)
    if all(c is None for c in model.predict_task(X.iloc[:3]).classes):
        assert not hasattr(model, "classes_")
        return
    single = labels.shape[1] == 1
    per_target = [model.classes_] if single else model.classes_
    probas = [model.predict_proba(X)] if single else model.predict_proba(X)
    assert isinstance(per_target, list) and len(per_target) == len(probas) == labels.shape[1]
    for classes, proba, values in zip(per_target, probas, labels.T, strict=True):
        if classes is None:
            assert proba is None
            continue
        assert isinstance(classes, np.ndarray) and proba.shape == (len(X), len(classes))
        assert list(classes[np.argmax(proba, axis=1)]) == list(values)


@pytest.mark.parametrize("spec", ["sklearn:breast_cancer", "sklearn:iris", "sklearn:diabetes", "sklearn:linnerud"])
def test_optimize_ends_with_the_ensemble_when_it_wins(spec: str) -> None:
    ds = load_dataset(spec)
    outcome = run(ds)
    check_ensemble(ds, outcome)
    if spec == "sklearn:breast_cancer":  # complementary families there: the ensemble wins out of fold
        assert outcome.summary["ensemble"]["used"]


def test_optimize_ensemble_on_multilabel_corpus_data(load_corpus: Any) -> None:
    ds = load_corpus("flags")
    check_ensemble(ds, run(ds))


def test_a_resumed_search_evaluates_its_best_resumed_pipelines_again_and_makes_the_same_ensemble() -> None:
    """The KB keeps scores, not out-of-fold predictions: running the same search again (every trial resumed)
    gave one pipeline where the first run gave an ensemble."""
    ds = load_dataset("sklearn:breast_cancer")
    kb = open_default_kb(":memory:", seed_from_shipped=True)
    statuses: list[str] = []
    try:
        first = optimize(ds, kb, small(seed=0))
        n_runs = kb.stats()["runs"]
        again = optimize(ds, kb, small(seed=0), on_status=statuses.append)
        assert again.result.n_resumed == len(first.result.trials) and again.result.n_new == 0
        assert kb.stats()["runs"] == n_runs  # evaluated again, not stored again
    finally:
        kb.close()
        gc.collect()
    assert first.summary["ensemble"]["used"]
    check_ensemble(ds, again)
    assert again.summary["ensemble"]["used"]
    # the same out-of-fold predictions as the first run's (that one left a local proposal that did not beat the
    # best out of its pool, a choice the KB does not record: the weights may differ)
    assert again.summary["ensemble"]["best_single"] == pytest.approx(first.summary["ensemble"]["best_single"])
    assert again.summary["ensemble"]["score"] == pytest.approx(first.summary["ensemble"]["score"], abs=0.002)
    assert any("best resumed pipeline(s) again" in s for s in statuses)
    assert any("evaluated again for their out-of-fold" in n for n in again.summary["time_budget"]["notes"])


def test_no_ensemble_gives_the_single_pipeline() -> None:
    ds = load_dataset("sklearn:breast_cancer")
    outcome = run(ds, ensemble=False)
    assert outcome.summary["ensemble"] is None and not isinstance(outcome.model, EnsembleModel)
    assert outcome.model is not None and len(outcome.model.predict(ds.X.iloc[:3])) == 3


def test_cli_prints_the_ensemble(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from metalearn.cli import main

    def cli(*argv: str) -> str:
        try:
            main(list(argv))
        except SystemExit as exc:
            assert not exc.code
        gc.collect()  # release the KB file
        return capsys.readouterr().out

    base = ["optimize", "sklearn:breast_cancer", "--trials", "4", "--folds", "3", "--no-warm-start",
            "--kb", str(tmp_path / "kb.duckdb")]
    out = cli(*base, "--out", str(tmp_path / "run"))
    block = json.loads((tmp_path / "run" / "summary.json").read_text())["ensemble"]
    assert "ensemble" in out and block["best_single_id"]
    if block["used"]:
        assert "ensemble members" in out and all(m["config_id"] in out for m in block["members"])
    assert "ensemble" not in cli(*base, "--no-ensemble")


@pytest.mark.parametrize("name", ["cleve", "ecoli"])
def test_an_ensemble_read_back_orders_its_probability_columns_by_its_classes(
    name: str, load_corpus: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """QA: the model of ``metalearn optimize data.csv -t y --out DIR`` read back with ``load_model_file`` had no
    ``classes_`` when it was an ensemble (only ``m.signature.targets[0].classes`` said the order of predict_proba's
    columns). A binary target given as text whose sorted order is not its codes' (cleve: "sick" / "healthy") and a
    multiclass one with gaps in its labels (ecoli: 0, 1, 4, 5, 7)."""
    from conftest import run_cli

    from metalearn import load_model_file

    ds = load_corpus(name)
    data = ds.X.copy()
    data["y"] = ds.y.iloc[:, 0].astype(int).map({0: "sick", 1: "healthy"}) if name == "cleve" else ds.y.iloc[:, 0]
    data.to_csv(tmp_path / "data.csv", index=False)
    code, _, err = run_cli(capsys, "optimize", tmp_path / "data.csv", "-t", "y", "--trials", 6, "--folds", 3,
                           "--seed", 0, "--kb", tmp_path / "kb.duckdb", "--out", tmp_path / "run")
    assert code == 0, err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    model = load_model_file(tmp_path / "run" / "model.skops", summary["model"]["sha256"])
    assert isinstance(model.model, EnsembleModel) and len(model.model.members) > 1  # (an ensemble wins on both)
    labels = sorted(set(data["y"].astype(str)))
    assert [str(c) for c in model.classes_] == labels == [str(c) for c in model.signature.targets[0].classes]
    check_classes(model.model, ds.X)
    X = data.drop(columns="y").iloc[::3]
    proba = model.predict_proba(X)
    assert list(model.classes_[np.argmax(proba, axis=1)]) == list(model.predict(X))  # through the schema check too
    assert all(list(m.classes_) == list(model.classes_) for m in model.model.members)  # as each pipeline's


def _three_thirds_pool(timing: dict[str, dict[str, float]]) -> tuple[Any, Any, OOFPool]:
    """breast_cancer and a pool of three pipelines ("a" rf, "b" et, "c" knn), each right on two thirds of
    the rows (the ensemble of all three wins out of fold); ``timing``: Candidate time fields per id
    (default: 0.3 s of fit over 3 folds)."""
    from metalearn.pipelines.spaces import get_space

    ds = load_dataset("sklearn:breast_cancer")
    space = get_space(ds.task)
    y = ds.y.iloc[:, 0].to_numpy()
    rng = np.random.default_rng(0)
    thirds = np.arange(len(y)) * 3 // len(y)
    classes = np.unique(y)
    pool = OOFPool.for_task(ds.task)
    for cid, model, good in (("a", "rf", (0, 1)), ("b", "et", (1, 2)), ("c", "knn", (0, 2))):
        right = np.isin(thirds, good)
        p1 = np.where(right, np.where(y == classes[1], 0.8, 0.2), rng.random(len(y)))
        pred = Prediction([classes[(p1 > 0.5).astype(int)]], [np.column_stack([1 - p1, p1])], [classes])
        oof = OutOfFold(np.arange(len(y)), pred, ds.y.reset_index(drop=True))
        values = space.validate({"model": model}, fill_defaults=True)
        times = {"fit_seconds": 0.3, **timing.get(cid, {})}
        pool.offer(Candidate(cid, values, score(ds.task, oof.y, pred), oof, n_folds=3, **times))
    return ds, space, pool


def test_near_its_end_a_search_keeps_time_for_the_refits_of_the_ensembles_own_members() -> None:
    """Far from the end of its budget a search keeps time for the refits of its best pipeline and the next-best
    candidates; once that reserve would end it, the ensemble selection on the trials so far decides: all
    three members' refits (with a safety factor) when the three-way ensemble wins, only the best one's when no ensemble beats it
    (two identical pipelines), and the next-best candidates' time goes to the search. The best pipeline's
    refit counts its forest's growth to 300 trees, up to a share of the budget."""
    import time

    from metalearn.search.deadline import FINAL_EXTRA_SHARE, PLANNED_MEMBERS_SAFETY, Deadline, search_reserve
    from metalearn.search.loop import _search_reserve

    refit = {"a": 2.0, "b": 1.0, "c": 1.5}  # the search's refit estimates, which its candidates carry too
    ds, _space, pool = _three_thirds_pool({cid: {"refit_seconds": s} for cid, s in refit.items()})
    best = pool.candidates()[0].config_id
    others = [refit[c] for c in ("a", "b", "c") if c != best]
    settings = SearchSettings(time_limit=30.0)
    far, near = Deadline(30.0), Deadline(30.0, started=time.monotonic() - 27.0)
    crude = search_reserve(refit[best], [refit[c.config_id] for c in pool.candidates()[1:]], 30.0)
    assert _search_reserve(far, best, None, refit, pool, ds, settings) == pytest.approx(crude)
    assert _search_reserve(near, best, None, refit, pool, ds, settings) == pytest.approx(
        search_reserve(refit[best], [PLANNED_MEMBERS_SAFETY * sum(others)], 30.0)
    )
    # an ensemble that does not win: near the end only the best pipeline's refit is kept
    twin = OOFPool.for_task(ds.task)
    a = pool.candidates()[0]
    twin.offer(a)
    refit["twin"] = 5.0
    twin.offer(Candidate("twin", a.values, a.score, a.oof, n_folds=3, fit_seconds=0.3, refit_seconds=5.0))
    assert _search_reserve(far, best, None, refit, twin, ds, settings) == pytest.approx(search_reserve(refit[best], [5.0], 30.0))
    assert _search_reserve(near, best, None, refit, twin, ds, settings) == pytest.approx(search_reserve(refit[best], [], 30.0))
    # the best pipeline's own final fit counts its forest's growth: 100 trees grow to 300 (a boosted model's
    # refit on all rows is not counted)
    forest = {"model": "et", "et:n_estimators": 100.0}
    extra = min(2 * refit[best], FINAL_EXTRA_SHARE * 30.0)  # at most a share of the budget
    assert _search_reserve(far, best, forest, refit, twin, ds, settings) == pytest.approx(
        search_reserve(refit[best] + extra, [5.0], 30.0)
    )
    boosted = {"model": "catboost"}
    assert _search_reserve(far, best, boosted, refit, twin, ds, settings) == pytest.approx(
        search_reserve(refit[best], [5.0], 30.0)
    )
    slow = dict(refit, **{best: 20.0})  # a slow forest: its growth is capped
    assert _search_reserve(near, best, forest, slow, twin, ds, settings) == pytest.approx(
        search_reserve(20.0 + FINAL_EXTRA_SHARE * 30.0, [], 30.0)
    )
    # without an ensemble the next-best candidates never count once near the end either
    no_ens = SearchSettings(time_limit=30.0, ensemble=False)
    assert _search_reserve(near, best, None, refit, pool, ds, no_ens) == pytest.approx(crude)


def test_an_ensemble_short_of_time_is_selected_again_among_the_members_that_fit() -> None:
    """Three pipelines, each right on two thirds of the rows: the ensemble of all three wins out of fold;
    when one member's refit does not fit in the time left, the selection runs again without it (two
    members still beat one) instead of falling back to the single pipeline; with time, all three."""
    from metalearn.search.ensemble import build_ensemble
    from metalearn.search.evaluation import fit_final

    ds, space, pool = _three_thirds_pool({"c": {"fit_seconds": 180.0}})
    best_id = pool.candidates()[0].config_id
    best_model = fit_final(ds, space, pool.candidates()[0].values)
    _, roomy = build_ensemble(ds, space, pool, best_id, best_model, time_left=lambda: 1000.0)
    assert roomy["used"] and {m["config_id"] for m in roomy["members"]} == {"a", "b", "c"}
    model, short = build_ensemble(ds, space, pool, best_id, best_model, time_left=lambda: 5.0)
    assert short["used"] and isinstance(model, EnsembleModel), short
    assert "c" not in {m["config_id"] for m in short["members"]} and len(short["members"]) == 2
    assert "selected again" in short["note"] and short["gain"] > 0
    # time enough for all three when the members are chosen, less once the refits are about to start (the best
    # pipeline's refit took longer than expected): selected again among the two that still fit, not dropped
    ticks = iter(range(100))
    model, shrunk = build_ensemble(ds, space, pool, best_id, best_model,
                                   time_left=lambda: 1000.0 if next(ticks) < 1 else 5.0)
    assert shrunk["used"] and isinstance(model, EnsembleModel) and len(model.members) == 2, shrunk
    assert "c" not in {m["config_id"] for m in shrunk["members"]} and "selected again" in shrunk["note"]
    # the refits overrun their estimate: the members refit by then (the heaviest first) are the ensemble
    calls = iter(range(10))  # 0-1: the checks before the refits, 2: before the first member, 3: after it
    model, late = build_ensemble(ds, space, pool, best_id, best_model, time_left=lambda: 1000.0 - 2000 * (next(calls) >= 3))
    assert late["used"] and isinstance(model, EnsembleModel) and len(model.members) == 2 == len(late["members"]), late
    assert "ran out while refitting" in late["note"] and late["gain"] > 0


def test_a_model_written_within_the_budget_counts_its_file_among_the_members_costs() -> None:
    """``optimize --out`` writes the model within the budget, and the write's time grows with the members and
    their forests' trees and nodes: with ``write`` a member costs its refit and its share of the file, and the
    time left holds the best pipeline's share, so members that fit without the file are selected away with it."""
    from metalearn.search.ensemble import (
        WRITE_SECONDS_PER_MEMBER,
        WRITE_SECONDS_PER_NODE,
        WRITE_SECONDS_PER_TREE,
        build_ensemble,
        tree_nodes_bound,
        write_estimate,
        write_seconds,
    )
    from metalearn.search.evaluation import fit_final

    assert write_estimate({"model": "catboost"}, 10_000) == WRITE_SECONDS_PER_MEMBER
    et = {"model": "et", "et:n_estimators": 100.0, "et:min_samples_leaf": 1, "et:bootstrap": "false"}
    assert tree_nodes_bound(et, 1000) == 1999  # one row a leaf
    assert tree_nodes_bound({**et, "et:min_samples_leaf": 4}, 1000) == 499
    assert tree_nodes_bound({**et, "et:bootstrap": "true"}, 1000) == pytest.approx(2 * 632 - 1)
    grown = write_estimate(et, 1000)  # grown to 300 trees in its final fit
    assert grown == pytest.approx(WRITE_SECONDS_PER_MEMBER + 300 * (WRITE_SECONDS_PER_TREE + 1999 * WRITE_SECONDS_PER_NODE))
    assert write_estimate({**et, "et:n_estimators": 500.0}, 1000) > grown < write_estimate(et, 2000)
    ds, space, pool = _three_thirds_pool({cid: {"refit_seconds": 0.2} for cid in ("a", "b", "c")})
    best = pool.candidates()[0]
    best_model = fit_final(ds, space, best.values)
    others = [c for c in pool.candidates() if c.config_id != best.config_id]
    with_file = write_seconds(best_model) + sum(0.2 + write_estimate(c.values, ds.n_rows) for c in others)
    left = 0.5 * (0.4 + with_file)  # the two refits fit, the refits and the file do not
    assert 0.4 < left < with_file
    _, unwritten = build_ensemble(ds, space, pool, best.config_id, best_model, time_left=lambda: left)
    assert unwritten["used"] and len(unwritten["members"]) == 3, unwritten
    model, written = build_ensemble(ds, space, pool, best.config_id, best_model, time_left=lambda: left, writes=1)
    assert len(written["members"]) < 3 and ("selected again" in written["note"] or not written["used"]), written
    assert len(getattr(model, "members", [model])) == max(1, len(written["members"]) if written["used"] else 1)
    # two files (``--out`` and a registry version) need twice the writes' time: a member that fits one may not fit both
    files = with_file - 0.4  # one file's writes
    between = 0.4 + 1.5 * files  # the refits and one file fit, the refits and two files do not
    _, one = build_ensemble(ds, space, pool, best.config_id, best_model, time_left=lambda: between, writes=1)
    _, two = build_ensemble(ds, space, pool, best.config_id, best_model, time_left=lambda: between, writes=2)
    assert len(one["members"]) == 3 and len(two["members"]) < 3, (one, two)


def test_members_refit_estimates_come_from_the_search_and_a_member_that_cannot_fit_is_not_refit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A trial on a data subset fits in a fraction of its refit's time: the search's estimate (scaled to
    all rows) decides whether a member fits, not the trial's own fit seconds; a member whose estimate
    exceeds the time left when its turn comes is not refit (the ensemble is selected among those refit)."""
    import metalearn.search.evaluation as evaluation
    from metalearn.search.ensemble import build_ensemble
    from metalearn.search.evaluation import fit_final

    # "c" took 0.3 s on its subset, but its refit on all rows is estimated at 60 s
    ds, space, pool = _three_thirds_pool({cid: {"fit_seconds": 0.3, "refit_seconds": r}
                                          for cid, r in (("a", 0.2), ("b", 0.2), ("c", 60.0))})
    best_id = pool.candidates()[0].config_id
    best_model = fit_final(ds, space, pool.candidates()[0].values)
    _, short = build_ensemble(ds, space, pool, best_id, best_model, time_left=lambda: 5.0)
    assert short["used"] and "c" not in {m["config_id"] for m in short["members"]}, short

    refit: list[str] = []

    def recording_fit(dataset: Any, space_: Any, values: dict[str, Any], **kw: Any) -> Any:
        refit.append(values["model"])
        return fit_final(dataset, space_, values, **kw)

    monkeypatch.setattr(evaluation, "fit_final", recording_fit)  # what build_ensemble imports
    calls = iter(range(100))  # enough time for all three at the start, 30 s once the refits begin
    model, block = build_ensemble(ds, space, pool, best_id, best_model,
                                  time_left=lambda: 1000.0 if next(calls) < 2 else 30.0)
    assert "knn" not in refit  # its 60 s refit was never started
    if block["used"]:
        assert "c" not in {m["config_id"] for m in block["members"]} and "selected again" in block["note"]
        assert isinstance(model, EnsembleModel) and len(model.members) == len(block["members"])
    else:
        assert "too little time left" in block["note"], block


def test_the_ensemble_plan_says_what_the_other_members_refits_need_before_any_refit() -> None:
    """The selection runs before the best pipeline's final fit (which spends spare time only on what the
    other members' refits leave): the plan's refit seconds are the other members' estimates, 0 without a
    kept ensemble, and ``build_ensemble`` given the plan makes the same ensemble as without it."""
    from metalearn.search.ensemble import build_ensemble, plan_ensemble
    from metalearn.search.evaluation import fit_final

    ds, space, pool = _three_thirds_pool({cid: {"refit_seconds": r} for cid, r in (("a", 1.5), ("b", 2.5), ("c", 4.0))})
    best_id = pool.candidates()[0].config_id
    plan = plan_ensemble(ds.task, pool, best_id)
    assert plan.selection is not None and plan.selection.kept and set(plan.selection.members) == {"a", "b", "c"}
    others = {"a": 1.5, "b": 2.5, "c": 4.0}
    assert plan.refit_seconds(best_id) == pytest.approx(sum(others.values()) - others[best_id])
    best_model = fit_final(ds, space, pool.candidates()[0].values)
    _, planned = build_ensemble(ds, space, pool, best_id, best_model, time_left=lambda: 1000.0, plan=plan)
    _, fresh = build_ensemble(ds, space, pool, best_id, best_model, time_left=lambda: 1000.0)
    assert planned == fresh and planned["used"]
    # one candidate only: nothing to keep time for, and the ensemble block says why
    single = OOFPool.for_task(ds.task)
    single.offer(pool.candidates()[0])
    lone = plan_ensemble(ds.task, single, best_id)
    assert lone.selection is None and lone.refit_seconds(best_id) == 0.0 and "fewer than 2" in lone.note
    assert build_ensemble(ds, space, single, best_id, best_model, plan=lone)[1]["note"] == lone.note
    assert plan_ensemble(ds.task, pool, "not-in-the-pool").refit_seconds("not-in-the-pool") == 0.0


def _diabetes_holdout_pool() -> tuple[Dataset, Any, OOFPool]:
    """Real trials (linear, rf, knn defaults) on a holdout of a 300-row subsample of diabetes, their OOF rows
    mapped back to the dataset's: the dataset, its space and the pool."""
    from metalearn.pipelines.spaces import get_space

    ds = load_dataset("sklearn:diabetes")
    space = get_space(ds.task)
    protocol = EvalProtocol(mode="holdout", max_rows=300, seed=0)
    pool = OOFPool.for_task(ds.task)
    for family in ("linear", "rf", "knn"):
        values = space.validate({"model": family}, fill_defaults=True)
        res = evaluate_config(ds, space, values, protocol, keep_predictions=True)
        assert res.ok and res.oof is not None and res.oof.source_rows is not None
        assert np.array_equal(ds.y.iloc[res.oof.source_rows].to_numpy(), res.oof.y.to_numpy())  # the dataset's rows
        pool.offer(Candidate(family, values, res.score, res.oof, fit_seconds=res.fit_seconds))
    return ds, space, pool


def test_a_member_whose_refit_is_not_the_pipeline_its_out_of_fold_predictions_scored_is_left_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The ensemble weighs members by their out-of-fold predictions; a member refit on all rows must still
    predict the rows it scored there (now in its training rows) about as well. Real trials on a holdout of
    a subsample (their OOF rows mapped back to the dataset's): every genuine refit passes the check. A refit
    that is not the pipeline that was scored (here: fit to shuffled targets, as a feature selection that kept
    other features on all rows) is left out, and the ensemble is selected again among the members refit."""
    import metalearn.search.evaluation as evaluation
    from metalearn.search.ensemble import build_ensemble, refit_mismatch
    from metalearn.search.evaluation import fit_final

    ds, space, pool = _diabetes_holdout_pool()
    by_id = {c.config_id: c for c in pool.candidates()}
    refits = {cid: fit_final(ds, space, c.values) for cid, c in by_id.items()}
    assert all(refit_mismatch(ds, refits[cid], c) == "" for cid, c in by_id.items())
    best = pool.candidates()[0]
    _, honest = build_ensemble(ds, space, pool, best.config_id, refits[best.config_id])
    assert honest["used"] and "left out" not in honest["note"], honest
    weighted = [m["config_id"] for m in honest["members"] if m["config_id"] != best.config_id]
    assert weighted
    liar = weighted[0]

    def fit_or_not(dataset: Any, space_: Any, values: dict[str, Any], **kw: Any) -> Any:
        if values == by_id[liar].values:
            shuffled = dataset.y.sample(frac=1.0, random_state=0).reset_index(drop=True)
            dataset = Dataset(dataset.name, dataset.X, shuffled, dataset.task, dataset.categorical, "shuffled")
        return fit_final(dataset, space_, values, **kw)

    assert "on rows it was fit on" in refit_mismatch(ds, fit_or_not(ds, space, by_id[liar].values), by_id[liar])
    monkeypatch.setattr(evaluation, "fit_final", fit_or_not)  # what build_ensemble imports
    model, block = build_ensemble(ds, space, pool, best.config_id, refits[best.config_id])
    assert f"member {liar} ({liar}) left out" in block["note"], block
    assert liar not in {m["config_id"] for m in block["members"]}
    if block["used"]:
        assert isinstance(model, EnsembleModel) and liar not in model.config_ids and "selected again" in block["note"]
    else:
        assert model is refits[best.config_id] and "single pipeline is kept" in block["note"]


def test_a_best_pipeline_whose_refit_is_not_the_pipeline_scored_gives_way_to_the_next_best() -> None:
    """The best pipeline's own refit passes the same check as the members': when it fails (here: refit to
    shuffled targets, as a boosted model whose Newton steps diverge on all rows), the next best pipeline out of
    fold is refit in its place and the model (or the ensemble) leaves the broken one out; the block says so."""
    from metalearn.search.ensemble import build_ensemble, ensemble_lines, refit_mismatch
    from metalearn.search.evaluation import fit_final

    ds, space, pool = _diabetes_holdout_pool()
    best, second = pool.candidates()[:2]
    shuffled = ds.y.sample(frac=1.0, random_state=0).reset_index(drop=True)
    broken = fit_final(Dataset(ds.name, ds.X, shuffled, ds.task, ds.categorical, "shuffled"), space, best.values)
    assert "on rows it was fit on" in refit_mismatch(ds, broken, best)

    model, block = build_ensemble(ds, space, pool, best.config_id, broken)
    assert model is not broken
    assert f"the best pipeline {best.config_id} ({best.config_id}) was left out" in block["best_refit"], block
    assert f"{second.config_id} ({second.config_id}), the next best out of fold, took its place" in block["best_refit"]
    assert block["model_config_id"] == second.config_id
    assert best.config_id not in {m["config_id"] for m in block["members"]}
    if isinstance(model, EnsembleModel):
        assert best.config_id not in model.config_ids and block["used"]
    assert refit_mismatch(ds, model, second) == ""  # the model predicts its rows as the scored pipeline did
    assert ensemble_lines(block)[0] == block["best_refit"]
    # a genuine refit of the best passes: nothing is replaced
    _, honest = build_ensemble(ds, space, pool, best.config_id, fit_final(ds, space, best.values))
    assert "best_refit" not in honest and "model_config_id" not in honest


def test_a_replacement_passed_over_is_named_with_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    """When the next best pipeline's refit fails the check too, the third takes the place; the block said "the
    next best out of fold" of it (a QA run saw a better-ranked pipeline on the leaderboard than the one named)."""
    from metalearn.search import evaluation
    from metalearn.search.ensemble import build_ensemble
    from metalearn.search.evaluation import fit_final

    ds, space, pool = _diabetes_holdout_pool()
    best, second, third = pool.candidates()[:3]
    shuffled = Dataset(ds.name, ds.X, ds.y.sample(frac=1.0, random_state=0).reset_index(drop=True), ds.task,
                       ds.categorical, "shuffled")
    broken = fit_final(shuffled, space, best.values)

    def second_broken_too(dataset: Any, space_: Any, values: dict[str, Any], **kw: Any) -> Any:
        return fit_final(shuffled if values == second.values else dataset, space_, values, **kw)

    monkeypatch.setattr(evaluation, "fit_final", second_broken_too)
    _, block = build_ensemble(ds, space, pool, best.config_id, broken)
    assert block["model_config_id"] == third.config_id
    assert f"{third.config_id} ({third.config_id}), number 3 out of fold, took its place ({second.config_id}: " \
        in block["best_refit"], block["best_refit"]
    assert "on rows it was fit on" in block["best_refit"]
