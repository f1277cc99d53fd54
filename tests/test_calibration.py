"""Temperature scaling of the final model's probabilities (metalearn.search.calibration): the scaling
itself, the fit, when it is used, and a search on real data that ends with a calibrated model."""

from __future__ import annotations

import gc
import math
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from metalearn.data.loading import load_dataset
from metalearn.data.metrics import score
from metalearn.data.prediction import Prediction
from metalearn.data.task import Task, TaskKind
from metalearn.kb import open_kb
from metalearn.search.automl import optimize
from metalearn.search.calibration import (
    MIN_ROWS,
    THRESHOLDS,
    apply_threshold,
    calibrate,
    fit_biases,
    fit_temperature,
    scale_prediction,
    scale_proba,
    tune_threshold,
)
from metalearn.search.ensemble import EnsembleModel, calibration_lines
from metalearn.search.evaluation import EvalProtocol, test_score
from metalearn.search.loop import SearchSettings


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _sampled(n: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels drawn from their softmax: probabilities calibrated at temperature 1."""
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=2.0, size=(n, k))
    p = _softmax(z)
    y = np.array([rng.choice(k, p=row) for row in p])
    return z, y


def test_scaling_keeps_each_rows_order_of_classes_and_sums_to_one() -> None:
    z, _ = _sampled(200, 4)
    p = _softmax(z)
    for t in (0.3, 1.0, 4.0):
        q = scale_proba(p, t)
        assert np.allclose(q.sum(axis=1), 1.0) and (np.argsort(q, axis=1) == np.argsort(p, axis=1)).all()
    assert np.allclose(scale_proba(p, 2.0), _softmax(z / 2.0))  # a softmax of log p / T
    hot = scale_proba(p, 0.2)
    assert (hot.max(axis=1) >= p.max(axis=1) - 1e-12).all()  # T < 1: more certain


@pytest.mark.parametrize("true_t", [0.5, 3.0])
def test_the_fitted_temperature_undoes_a_known_one(true_t: float) -> None:
    z, y = _sampled(4000, 5, seed=1)
    distorted = _softmax(z / true_t)  # too timid (T = 3) or too confident (T = 0.5)
    t = fit_temperature([distorted], [y])
    assert t == pytest.approx(1.0 / true_t, rel=0.15)  # dividing by t again gives back the calibrated logits


def _prediction(p: np.ndarray, classes: list[str]) -> Prediction:
    return Prediction([np.asarray(classes)[p.argmax(axis=1)]], [p], [np.asarray(classes)])


def test_calibrate_is_used_only_for_a_log_loss_with_enough_rows() -> None:
    classes = ["a", "b", "c"]
    z, y = _sampled(MIN_ROWS + 100, 3, seed=2)
    pred = _prediction(_softmax(3.0 * z), classes)  # over-confident
    truth = pd.DataFrame({"y": np.asarray(classes)[y]})
    task = Task(targets=("y",), kind=TaskKind.MULTICLASS, metric="log_loss")
    cal = calibrate(task, pred, truth)
    assert cal.used and cal.temperature == pytest.approx(3.0, rel=0.25) and cal.n_rows == len(y)
    assert cal.biases is not None and max(map(abs, cal.biases)) < 0.1  # balanced classes: small biases
    assert cal.score_after < cal.score_before == pytest.approx(score(task, truth, pred))
    assert cal.score_after == pytest.approx(score(task, truth, scale_prediction(pred, cal.temperature, cal.biases)))
    assert "T = " in calibration_lines(cal.to_dict())[0] and "class biases" in calibration_lines(cal.to_dict())[0]

    accuracy = Task(targets=("y",), kind=TaskKind.MULTICLASS, metric="accuracy")
    assert not calibrate(accuracy, pred, truth).used and "accuracy" in calibrate(accuracy, pred, truth).note
    few = calibrate(task, _prediction(pred.probas[0][:100], classes), truth.iloc[:100])  # type: ignore[index]
    assert not few.used and str(MIN_ROWS) in few.note
    assert calibration_lines(few.to_dict()) == [f"probabilities not temperature-scaled: {few.note}"]
    assert calibration_lines(calibrate(accuracy, pred, truth).to_dict()) == []  # nothing to say for accuracy
    subset = calibrate(task, pred, truth, n_rows=3 * len(y))  # the trials saw a third of the final model's rows
    assert subset.temperature == 1.0 and f"{len(y)} of the {3 * len(y)} rows" in subset.note  # class biases at most
    assert "T = " not in "".join(calibration_lines(subset.to_dict()))
    assert calibrate(task, pred, truth, n_rows=len(y)).used
    assert not calibrate(task, pred, truth, enabled=False).used
    assert not calibrate(task, None, None).used
    calibrated = _prediction(_softmax(z), classes)  # already calibrated: T close to 1, a tiny gain at most
    near = calibrate(task, calibrated, truth)
    assert not near.used or abs(math.log(near.temperature)) < 0.15


@pytest.fixture(scope="module")
def digits_outcome() -> Any:
    """A short cold search on digits (1,797 rows, 10 classes, log loss) with 3-fold out-of-fold rows."""
    ds = load_dataset("sklearn:digits")
    kb = open_kb(":memory:")
    try:
        settings = SearchSettings(n_trials=3, warm_start=False, optimizer="random", seed=3, trial_time_limit=60.0,
                                  protocol=EvalProtocol(n_folds=3))
        yield ds, optimize(ds, kb, settings)
    finally:
        kb.close()
        gc.collect()


def test_a_search_judged_by_log_loss_ends_with_a_temperature_scaled_model(digits_outcome: Any) -> None:
    ds, outcome = digits_outcome
    block = outcome.summary["calibration"]
    assert block is not None and block["used"] and block["n_rows"] == ds.n_rows, block
    model = outcome.model
    assert isinstance(model, EnsembleModel) and model.temperature == pytest.approx(block["temperature"])
    assert block["score_after"] < block["score_before"]
    scaled = model.predict_task(ds.X)
    model.temperature, model.biases = 1.0, None
    try:
        plain = model.predict_task(ds.X)
    finally:
        model.temperature, model.biases = block["temperature"], tuple(block["biases"] or ()) or None
    # the labels are the most probable classes of the scaled probabilities (class biases may move a few)
    assert (scaled.values[0] == scaled.classes[0][scaled.probas[0].argmax(axis=1)]).all()
    assert np.mean(scaled.values[0] == plain.values[0]) > 0.98
    assert not np.allclose(scaled.probas[0], plain.probas[0])  # other probabilities
    assert np.allclose(scaled.probas[0].sum(axis=1), 1.0)
    metrics = test_score(model, ds.X, ds.y, ds.task)
    assert math.isfinite(metrics["log_loss"])


def _single_pipeline_search(ds: Any, n_trials: int, seed: int, calibrate: bool) -> Any:
    """A random search without ensemble on ``ds`` (3-fold CV) in an empty in-memory KB."""
    kb = open_kb(":memory:")
    try:
        settings = SearchSettings(n_trials=n_trials, warm_start=False, optimizer="random", seed=seed, ensemble=False,
                                  calibrate=calibrate, protocol=EvalProtocol(n_folds=3))
        return optimize(ds, kb, settings)
    finally:
        kb.close()


def test_a_single_pipeline_is_scaled_too_and_no_calibrate_keeps_it_unscaled() -> None:
    ds = load_dataset("sklearn:digits")
    models = {}
    for on in (True, False):
        outcome = _single_pipeline_search(ds, n_trials=1, seed=3, calibrate=on)
        assert outcome.summary["ensemble"] is None
        models[on] = outcome.model, outcome.summary["calibration"]
    (scaled, block), (plain, off) = models[True], models[False]
    assert block["used"] and isinstance(scaled, EnsembleModel) and len(scaled.members) == 1, block
    assert scaled.config_ids[0] and scaled.temperature == pytest.approx(block["temperature"])
    assert off is None and not isinstance(plain, EnsembleModel)  # no out-of-fold predictions kept: no block
    # the same pipeline (same seed, same trial): the scaled one's probabilities are the plain one's at T
    expected = scale_proba(plain.predict_proba(ds.X.iloc[:100]), block["temperature"], block["biases"])
    assert np.allclose(scaled.predict_proba(ds.X.iloc[:100]), expected, atol=1e-6)


def test_a_scaled_model_keeps_its_temperature_through_its_artifact(digits_outcome: Any, tmp_path: Any) -> None:
    from metalearn.pipelines.artifacts import load_model_file, write_artifact

    ds, outcome = digits_outcome
    assert outcome.summary["calibration"]["used"]
    written = write_artifact(outcome.model, tmp_path)
    loaded = load_model_file(tmp_path / written["file"])
    assert loaded.temperature == outcome.model.temperature
    assert np.allclose(loaded.predict_proba(ds.X.iloc[:50]), outcome.model.predict_proba(ds.X.iloc[:50]))


def test_a_registered_scaled_model_records_and_serves_its_temperature(digits_outcome: Any, tmp_path: Any) -> None:
    from metalearn.registry.registry import ModelRegistry

    ds, outcome = digits_outcome
    block = outcome.summary["calibration"]
    assert block["used"]
    kb = open_kb(tmp_path / "kb.duckdb")
    try:
        registry = ModelRegistry(kb)
        rec = registry.register_outcome("digits", outcome, ds)
        assert rec.info["model"]["temperature"] == pytest.approx(block["temperature"])
        assert rec.info["calibration"] == block
        served = registry.predict("digits", ds.X.iloc[:20], version=rec.version, log=False)
        expected = outcome.model.predict_proba(ds.X.iloc[:20])
        assert np.allclose(np.asarray(served.prediction.probas[0]), expected)  # served at its temperature
    finally:
        kb.close()


def test_the_peer_report_counts_what_calibration_changed_on_the_committed_run() -> None:
    """The wall-clock report's calibration block, recomputed from a committed benchmark run's raw cells
    (benchmarks/results/peers_multiclass_v10_calibrated), against a count by hand."""
    import json
    from pathlib import Path

    from metalearn.benchmark.peer_report import compute_peer_summary, render_peer_markdown

    run = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "peers_multiclass_v10_calibrated"
    cells, datasets = pd.read_parquet(run / "cells.parquet"), pd.read_parquet(run / "datasets.parquet")
    settings = json.loads((run / "summary.json").read_text())["settings"]
    summary = compute_peer_summary(datasets, cells, settings)
    for key, block in summary["per_budget"].items():
        scaled = []
        for r in cells[cells["strategy"] == f"product@{key}"].to_dict("records"):
            inc = r["incumbent"] if isinstance(r["incumbent"], dict) else json.loads(r["incumbent"])
            if (inc.get("calibration") or {}).get("used"):
                scaled.append((round(r["test_score"], 4), round(inc["calibration"]["test_score_unscaled"], 4)))
        cal = block["calibration"]
        assert cal["n"] == len(scaled) > 0
        assert cal["better"] == sum(a < b for a, b in scaled) and cal["worse"] == sum(a > b for a, b in scaled)  # log loss
        assert cal["equal"] == sum(a == b for a, b in scaled)
    assert "#### Calibration" in render_peer_markdown(summary)


# ------------------------------------------------------------------------------------------ decision threshold
def _imbalanced_breast_cancer() -> Any:
    """scikit-learn's breast_cancer with 1 malignant row in 8 kept (about 4 % of the rows): a rare class."""
    ds = load_dataset("sklearn:breast_cancer")
    y = ds.y.iloc[:, 0].astype(str)
    rare = y.value_counts().idxmin()
    keep = np.flatnonzero((y != rare).to_numpy() | (np.arange(len(y)) % 8 == 0))
    return ds.take_rows(keep).with_task(replace(ds.task, metric="f1"))


def test_the_threshold_grid_starts_at_one_half_and_goes_outwards() -> None:
    assert THRESHOLDS[0] == 0.5 and len(THRESHOLDS) == len(set(THRESHOLDS)) == 99
    assert min(THRESHOLDS) == 0.01 and max(THRESHOLDS) == 0.99
    distances = [round(abs(t - 0.5), 9) for t in THRESHOLDS]
    assert distances == sorted(distances)  # nearer thresholds are tried (and win ties) first


def test_a_tuned_threshold_is_kept_only_when_it_beats_the_most_probable_class_out_of_fold() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    ds = _imbalanced_breast_cancer()
    y = ds.y.iloc[:, 0].astype(str).to_numpy()
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=1000))
    P = cross_val_predict(model, ds.X, y, cv=5, method="predict_proba")
    classes = np.unique(y)
    oof = _prediction(P, list(classes))
    cut = tune_threshold(ds.task, oof, ds.y)
    assert cut.used and cut.threshold is not None and cut.threshold != 0.5, cut
    assert cut.score_before == pytest.approx(score(ds.task, ds.y, oof))
    assert cut.score_after == pytest.approx(score(ds.task, ds.y, apply_threshold(oof, cut.threshold)))
    assert cut.score_after > cut.score_before and cut.n_rows == ds.n_rows
    labelled = apply_threshold(oof, cut.threshold)
    assert (labelled.values[0] == np.where(P[:, 1] >= cut.threshold, classes[1], classes[0])).all()
    assert labelled.probas[0] is oof.probas[0] or np.array_equal(labelled.probas[0], oof.probas[0])
    # not for a probability metric, another kind or when off; the block says why
    assert "not needed" in tune_threshold(replace(ds.task, metric="roc_auc"), oof, ds.y).note
    assert not tune_threshold(ds.task, oof, ds.y, enabled=False).used
    assert not tune_threshold(ds.task, None, None).used
    perfect = _prediction(np.column_stack([(y == classes[0]) * 1.0, (y == classes[1]) * 1.0]), list(classes))
    assert not tune_threshold(ds.task, perfect, ds.y).used  # nothing beats a perfect cut


def _threshold_kept(outcome: Any, ds: Any, name: str, tmp_path: Any) -> None:
    """The decision threshold of the search's final model is the one its model file and the version the
    registry makes of it keep."""
    from metalearn.pipelines.artifacts import load_model_file, write_artifact
    from metalearn.registry.registry import ModelRegistry

    threshold = outcome.summary["calibration"]["threshold"]["threshold"]
    assert outcome.model.threshold == threshold
    written = write_artifact(outcome.model, tmp_path)
    assert load_model_file(tmp_path / written["file"]).threshold == threshold
    kb = open_kb(tmp_path / "kb.duckdb")
    try:
        assert ModelRegistry(kb).register_outcome(name, outcome, ds).info["model"]["threshold"] == threshold
    finally:
        kb.close()


def test_a_search_judged_by_f1_ends_with_the_threshold_it_chose_in_the_model_and_its_file(tmp_path: Any) -> None:
    ds = _imbalanced_breast_cancer()
    outcomes = {on: _single_pipeline_search(ds, n_trials=2, seed=0, calibrate=on) for on in (True, False)}
    tuned, plain = outcomes[True], outcomes[False]
    block = tuned.summary["calibration"]["threshold"]
    assert block["used"] and block["n_rows"] == ds.n_rows and block["score_after"] > block["score_before"], block
    model = tuned.model
    assert isinstance(model, EnsembleModel) and model.threshold == block["threshold"] != 0.5
    proba = model.predict_task(ds.X).probas[0]
    assert np.allclose(proba, plain.model.predict_task(ds.X).probas[0])  # the same pipeline's probabilities
    second = model.predict_task(ds.X).classes[0][1]
    assert ((model.predict(ds.X) == second) == (proba[:, 1] >= block["threshold"])).all()
    assert any("decision threshold" in line for line in calibration_lines(tuned.summary["calibration"]))
    _threshold_kept(tuned, ds, "bc", tmp_path)
    assert plain.summary["calibration"] is None and getattr(plain.model, "threshold", None) is None


# ------------------------------------------------------------------------------------------ class weights
def _imbalanced_wine(metric: str = "balanced_accuracy") -> Any:
    """scikit-learn's wine with the second class thinned to 1 row in 3 and the third to 1 in 8."""
    ds = load_dataset("sklearn:wine")
    y = ds.y.iloc[:, 0].astype(str).to_numpy()
    labels = sorted(set(y))
    i = np.arange(len(y))
    keep = np.flatnonzero((y == labels[0]) | ((y == labels[1]) & (i % 3 == 0)) | ((y == labels[2]) & (i % 8 == 0)))
    return ds.take_rows(keep).with_task(replace(ds.task, metric=metric))


def test_class_weights_are_kept_only_when_they_beat_the_most_probable_class_out_of_fold() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from metalearn.search.calibration import WEIGHT_POWERS, apply_class_weights, tune_class_weights

    ds = _imbalanced_wine()
    y = ds.y.iloc[:, 0].astype(str).to_numpy()
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.003, max_iter=1000))
    P = cross_val_predict(model, ds.X, y, cv=5, method="predict_proba")
    classes = sorted(set(y))
    oof = _prediction(P, classes)
    found = tune_class_weights(ds.task, oof, ds.y)
    assert found.used and found.power in WEIGHT_POWERS and found.weights is not None, found
    shares = np.array([np.mean(y == c) for c in classes])
    expected = shares ** -found.power
    assert np.allclose(found.weights, expected / expected.max())  # the rarest class weighs most (1)
    assert found.score_before == pytest.approx(score(ds.task, ds.y, oof))
    assert found.score_after == pytest.approx(score(ds.task, ds.y, apply_class_weights(oof, found.weights)))
    assert found.score_after > found.score_before
    weighted = apply_class_weights(oof, found.weights)
    assert np.array_equal(weighted.probas[0], oof.probas[0])  # the probabilities are unchanged
    assert (apply_class_weights(oof, (1.0, 1.0, 1.0)).values[0] == oof.values[0]).all()  # equal weights: argmax
    assert "not needed" in tune_class_weights(replace(ds.task, metric="log_loss"), oof, ds.y).note
    assert not tune_class_weights(ds.task, oof, ds.y, enabled=False).used


def test_a_search_judged_by_balanced_accuracy_weights_the_classes_in_the_model_and_its_file(tmp_path: Any) -> None:
    from metalearn.pipelines.artifacts import load_model_file, write_artifact

    ds = _imbalanced_wine()
    kb = open_kb(":memory:")
    try:
        settings = SearchSettings(n_trials=2, warm_start=False, optimizer="random", seed=1, ensemble=False,
                                  protocol=EvalProtocol(n_folds=3))
        outcome = optimize(ds, kb, settings)
    finally:
        kb.close()
    block = outcome.summary["calibration"]["class_weights"]
    assert block["n_rows"] == ds.n_rows and block["score_before"] is not None, block
    assert outcome.summary["calibration"]["threshold"]["used"] is False  # a binary rule: not for three classes
    model = outcome.model
    assert block["used"] and block["score_after"] > block["score_before"], block
    assert isinstance(model, EnsembleModel) and list(model.class_weights) == pytest.approx(block["weights"], abs=1e-6)
    pred = model.predict_task(ds.X)
    expected = np.asarray(pred.classes[0])[(pred.probas[0] * np.asarray(block["weights"])).argmax(axis=1)]
    assert (pred.values[0] == expected).all()
    assert any("class weights" in line for line in calibration_lines(outcome.summary["calibration"]))
    written = write_artifact(model, tmp_path)
    assert load_model_file(tmp_path / written["file"]).class_weights == model.class_weights


# ------------------------------------------------------------------------------------------ multi-label thresholds
def _digit_labels(n_rows: int | None = None, n_pixels: int = 64) -> Any:
    """scikit-learn's digits as a multi-label task of four labels of the digit (two rare, two common), from
    the first ``n_pixels`` pixels (fewer: a harder task)."""
    from metalearn.data.dataset import Dataset

    base = load_dataset("sklearn:digits")
    base = replace(base, X=base.X.iloc[:, :n_pixels], categorical=base.categorical[:n_pixels])
    digit = base.y.iloc[:, 0].astype(int).to_numpy()
    y = pd.DataFrame({"zero": digit == 0, "seven": digit == 7, "round": np.isin(digit, (0, 6, 8, 9)),
                      "high": digit >= 5}).astype(int)
    task = Task(TaskKind.MULTILABEL, tuple(y.columns), (TaskKind.BINARY,) * 4, metric="f1_macro")
    ds = Dataset("digits-labels", base.X, y, task, tuple(False for _ in base.X.columns), "sklearn:digits")
    return ds if n_rows is None else ds.take_rows(np.arange(n_rows))


def _label_oof(ds: Any) -> Prediction:
    """Out-of-fold probabilities of each label from a strongly regularised logistic regression (timid ones)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    probas = [cross_val_predict(LogisticRegression(C=1e-4, max_iter=2000), ds.X, ds.y[t], cv=5, method="predict_proba")
              for t in ds.task.targets]
    classes = [np.array([0, 1]) for _ in probas]
    return Prediction([c[p.argmax(axis=1)] for c, p in zip(classes, probas, strict=True)], probas, classes)


def test_a_multilabel_threshold_is_shared_by_the_labels_for_every_label_metric() -> None:
    ds = _digit_labels()
    oof = _label_oof(ds)
    for metric in ("f1_macro", "f1_micro", "hamming_loss", "subset_accuracy"):
        task = replace(ds.task, metric=metric)
        cut = tune_threshold(task, oof, ds.y)
        assert cut.used and cut.threshold in THRESHOLDS and cut.threshold != 0.5, (metric, cut)
        assert cut.score_before == pytest.approx(score(task, ds.y, oof))
        assert cut.score_after == pytest.approx(score(task, ds.y, apply_threshold(oof, cut.threshold)))
        better = cut.score_after < cut.score_before if metric == "hamming_loss" else cut.score_after > cut.score_before
        assert better and cut.n_rows == ds.n_rows, (metric, cut)
        labelled = apply_threshold(oof, cut.threshold)
        for t in range(len(ds.task.targets)):  # every label at the same cut
            assert (labelled.values[t] == (oof.probas[t][:, 1] >= cut.threshold)).all()
            assert np.array_equal(labelled.probas[t], oof.probas[t])
    assert "not needed" in tune_threshold(replace(ds.task, metric="roc_auc_macro"), oof, ds.y).note
    assert "validation" in tune_threshold(ds.task, None, None, rows="validation").note


def test_a_search_judged_by_macro_f1_keeps_the_labels_threshold_in_the_model_its_file_and_the_registry(
    tmp_path: Any,
) -> None:
    ds = _digit_labels(900, n_pixels=16)  # the top two rows of pixels: labels the model is unsure of
    outcome = _single_pipeline_search(ds, n_trials=2, seed=0, calibrate=True)
    block = outcome.summary["calibration"]["threshold"]
    assert block["used"] and block["threshold"] != 0.5 and block["n_rows"] == ds.n_rows, block
    assert block["score_after"] > block["score_before"]
    model = outcome.model
    assert isinstance(model, EnsembleModel) and model.threshold == block["threshold"]
    pred = model.predict_task(ds.X)
    for t in range(len(ds.task.targets)):
        assert (pred.values[t] == (pred.probas[t][:, 1] >= model.threshold)).all()
    assert test_score(model, ds.X, ds.y, ds.task)["f1_macro"] == pytest.approx(
        score(ds.task, ds.y, pred))  # the metric is of the thresholded labels
    assert any("decision threshold" in line for line in calibration_lines(outcome.summary["calibration"]))
    _threshold_kept(outcome, ds, "digits-labels", tmp_path)


def test_class_biases_undo_a_known_shift_of_one_class() -> None:
    """A model that under-predicts one class by a constant factor: the class biases give it back (a temperature
    alone cannot), and on a holdout (fewer out-of-fold rows than the final model's) they are fit alone."""
    classes = ["a", "b", "c"]
    z, y = _sampled(3000, 3, seed=4)
    shifted = _softmax(z + np.array([0.0, 0.0, -1.0]))  # class c's log-odds 1 lower than they should be
    pred, truth = _prediction(shifted, classes), pd.DataFrame({"y": np.asarray(classes)[y]})
    task = Task(targets=("y",), kind=TaskKind.MULTICLASS, metric="log_loss")
    t, b = fit_biases(shifted, y)
    assert t == pytest.approx(1.0, abs=0.1) and b[2] - (b[0] + b[1]) / 2 == pytest.approx(1.0, abs=0.2)
    cal = calibrate(task, pred, truth)
    assert cal.used and cal.biases is not None and cal.score_after < calibrate(
        task, pred, truth, n_rows=2 * len(y)).score_before
    holdout = calibrate(task, pred, truth, n_rows=2 * len(y))
    assert holdout.used and holdout.temperature == 1.0 and holdout.biases is not None
    assert holdout.score_after < holdout.score_before
    # several class targets: a temperature, no biases
    two = Task(targets=("y", "w"), kind=TaskKind.MULTITASK, target_kinds=(TaskKind.MULTICLASS, TaskKind.MULTICLASS),
               metric="log_loss_mean")
    both = Prediction([pred.values[0]] * 2, [pred.probas[0]] * 2, [pred.classes[0]] * 2)
    many = calibrate(two, both, pd.DataFrame({"y": truth["y"], "w": truth["y"]}))
    assert many.biases is None
