"""Compressed variants for the model registry: ONNX conversion, ensemble pruning, the variant report."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import skops.io as sio

from metalearn.data.dataset import Dataset
from metalearn.data.errors import CompressionError, MetaLearnError
from metalearn.data.loading import load_dataset
from metalearn.data.metrics import score
from metalearn.data.prediction import Prediction
from metalearn.data.task import Task, TaskKind
from metalearn.pipelines.spaces import get_space
from metalearn.registry.compress import compare, prune_ensemble, to_onnx, variant_report
from metalearn.registry.onnx_model import OnnxTaskModel
from metalearn.search.ensemble import EnsembleModel
from metalearn.search.evaluation import fit_final

TRUSTED_PREFIXES = (
    "metalearn.",
    "sklearn.",
    "numpy.",
    "scipy.",
    "lightgbm.",
    "xgboost.",
    "catboost.",
    "builtins.",
)
F32 = 1e-4  # float32 rounding of a probability / of a value relative to the values' spread


def _split(ds: Dataset, frac: float = 0.7, seed: int = 0) -> tuple[Dataset, pd.DataFrame, pd.DataFrame]:
    idx = np.random.default_rng(seed).permutation(ds.n_rows)
    tr, va = idx[: int(frac * ds.n_rows)], idx[int(frac * ds.n_rows) :]
    train = Dataset(
        ds.name,
        ds.X.iloc[tr].reset_index(drop=True),
        ds.y.iloc[tr].reset_index(drop=True),
        ds.task,
        ds.categorical,
        ds.origin,
    )
    return train, ds.X.iloc[va].reset_index(drop=True), ds.y.iloc[va].reset_index(drop=True)


def _fit(ds: Dataset, family: str, **values: object) -> object:
    """The final fit of one configuration, with no extra work (a forest keeps its configured trees).

    The conversion does not depend on a forest's tree count; on 529_pollen a forest grown to 300 trees
    made one test take 64 s instead of 21 s.
    """
    space = get_space(ds.task)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_final(
            ds, space, space.validate({"model": family, **values}, fill_defaults=True), extra_within=0.0
        )


def _assert_same(a: Prediction, b: Prediction, tol: float = F32) -> None:
    assert a.n_targets == b.n_targets and a.n_rows == b.n_rows
    for t in range(a.n_targets):
        if a.probas[t] is None:
            assert b.probas[t] is None and b.classes[t] is None
            va, vb = np.asarray(a.values[t]), np.asarray(b.values[t])
            assert np.max(np.abs(va - vb)) <= tol * max(1.0, float(np.std(va)))
        else:
            assert np.array_equal(a.classes[t], b.classes[t])
            assert np.asarray(b.probas[t]).shape == np.asarray(a.probas[t]).shape
            assert np.max(np.abs(a.probas[t] - b.probas[t])) <= tol
            assert np.mean(a.values[t] == b.values[t]) >= 0.995  # ties at 0.5 may flip in float32


@pytest.fixture(scope="module")
def breast_cancer() -> tuple[Dataset, pd.DataFrame, pd.DataFrame]:
    return _split(load_dataset("sklearn:breast_cancer"))


@pytest.fixture(scope="module")
def cancer_models(breast_cancer: tuple[Dataset, pd.DataFrame, pd.DataFrame]) -> dict[str, object]:
    train, _, _ = breast_cancer
    return {f: _fit(train, f) for f in ("rf", "et", "linear", "lgbm", "xgb", "knn")}


@pytest.mark.parametrize("family", ["rf", "et", "linear", "lgbm", "xgb"])
def test_onnx_matches_the_original(breast_cancer, cancer_models, family: str) -> None:
    _, Xv, _ = breast_cancer
    model = cancer_models[family]
    onnx = to_onnx(model, Xv)
    assert isinstance(onnx, OnnxTaskModel) and onnx.check["n_graphs"] == 1
    assert onnx.check["max_abs_proba_diff"] <= F32
    _assert_same(model.predict_task(Xv), onnx.predict_task(Xv))
    _assert_same(model.predict_task(Xv.iloc[:1]), onnx.predict_task(Xv.iloc[:1]))  # one row
    assert np.array_equal(onnx.predict(Xv), model.predict(Xv))


def test_ensemble_onnx_round_trips_through_skops(breast_cancer, cancer_models) -> None:
    train, Xv, _ = breast_cancer
    members = [cancer_models[f] for f in ("rf", "linear", "lgbm", "xgb")]
    # a temperature-scaled ensemble (metalearn.search.calibration): the variant scales the same way
    ens = EnsembleModel(train.task, members, [0.4, 0.3, 0.2, 0.1], ("a", "b", "c", "d"), temperature=0.7)
    onnx = to_onnx(ens, Xv)
    assert onnx.is_ensemble and onnx.check["n_graphs"] == 4 and onnx.temperature == 0.7
    _assert_same(ens.predict_task(Xv), onnx.predict_task(Xv))
    data = sio.dumps(onnx)
    untrusted = sio.get_untrusted_types(data=data)
    assert all(t.startswith(TRUSTED_PREFIXES) for t in untrusted), untrusted
    assert not any(t.startswith(("lightgbm.", "xgboost.")) for t in untrusted)  # boosters are graphs now
    from metalearn.pipelines.artifacts import trusted_types

    assert trusted_types(data) == sorted(untrusted)  # the registry accepts the artifact
    back = sio.loads(data, trusted=untrusted)
    _assert_same(onnx.predict_task(Xv), back.predict_task(Xv), tol=0.0)
    again = pickle.loads(pickle.dumps(back))
    _assert_same(onnx.predict_task(Xv), again.predict_task(Xv), tol=0.0)


def test_prune_ensemble(breast_cancer, cancer_models) -> None:
    train, Xv, yv = breast_cancer
    members = [cancer_models[f] for f in ("rf", "et", "linear", "lgbm", "knn")]
    ens = EnsembleModel(train.task, members, [0.3, 0.2, 0.2, 0.2, 0.1], ("rf", "et", "linear", "lgbm", "knn"))
    full = score(train.task, yv, ens.predict_task(Xv))
    pruned = prune_ensemble(ens, Xv, yv, train.task)
    assert isinstance(pruned, EnsembleModel) and len(pruned.members) < len(ens.members)
    assert pytest.approx(sum(pruned.weights)) == 1.0
    assert score(train.task, yv, pruned.predict_task(Xv)) >= full * (1 - 0.002) - 1e-12
    two = prune_ensemble(ens, Xv, yv, train.task, max_members=2)
    assert len(two.members) == 2 and set(two.config_ids) <= set(ens.config_ids)
    ens.temperature = 1.5
    assert prune_ensemble(ens, Xv, yv, train.task, max_members=2).temperature == 1.5  # kept by a pruned one
    with pytest.raises(CompressionError, match="only an ensemble"):
        prune_ensemble(cancer_models["rf"], Xv, yv, train.task)  # type: ignore[arg-type]
    with pytest.raises(CompressionError, match="single member"):
        prune_ensemble(EnsembleModel(train.task, members[:1], [1.0]), Xv, yv, train.task)


def test_report_and_compare(breast_cancer, cancer_models) -> None:
    train, Xv, yv = breast_cancer
    model = cancer_models["rf"]
    onnx = to_onnx(model, Xv)
    a = variant_report(model, Xv, yv, train.task, batch_rows=2000, n_calls=30, warmup=3)
    b = variant_report(onnx, Xv, yv, train.task, batch_rows=2000, n_calls=30, warmup=3)
    for r in (a, b):
        assert r["size_bytes"] > 0 and r["p50_ms"] > 0 and r["p99_ms"] >= r["p50_ms"] and r["rows_per_s"] > 0
        assert r["metric"] == "roc_auc" and r["greater_is_better"]
    assert b["score"] == pytest.approx(a["score"], abs=1e-6)
    c = compare(a, b)
    assert set(c) >= {
        "size_ratio",
        "speedup_p50",
        "speedup_p99",
        "throughput_ratio",
        "score_loss",
        "meets_target",
    }
    assert abs(c["score_loss"]) < 1e-6


def test_unconvertible_raises_compression_error() -> None:
    rng = np.random.default_rng(0)
    n = 300
    X = pd.DataFrame({"a": rng.normal(size=n), "c": pd.Categorical(rng.choice(["x", "y", "z"], size=n))})
    y = pd.DataFrame({"t": (X["a"] + (X["c"] == "x") > 0.5).astype(int)})
    ds = Dataset("synthetic", X, y, Task(TaskKind.BINARY, ("t",)), (False, True), "test")
    xgb = _fit(ds, "xgb")  # native categorical splits
    with pytest.raises(CompressionError, match="keep the original version") as err:
        to_onnx(xgb, X)
    assert "xgboost" in str(err.value) and isinstance(err.value, MetaLearnError | ValueError)
    with pytest.raises(CompressionError, match="already an ONNX variant"):
        to_onnx(to_onnx(_fit(ds, "linear"), X), X)
    with pytest.raises(CompressionError, match="not a task model"):
        to_onnx(object(), X)
    # a boosted model of several targets at once: a clear reason, not onnxruntime's initialisation error
    linnerud = load_dataset("sklearn:linnerud")
    for family, library in (("catboost", "catboost"), ("xgb", "xgboost")):
        native = _fit(linnerud, family, mt_strategy="native")
        with pytest.raises(CompressionError, match=f"{library}\\) fitted on several targets at once"):
            to_onnx(native, linnerud.X)
    per_target = to_onnx(_fit(linnerud, "catboost", mt_strategy="per_target"), linnerud.X)
    assert per_target.predict_task(linnerud.X).n_targets == 3


def test_compression_error_is_a_422() -> None:
    from metalearn.service.errors import http_status

    assert http_status(CompressionError("x")) == 422


# -- real corpus data ------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["rf", "hgb", "lgbm"])
def test_corpus_binary(load_corpus, family: str) -> None:
    train, Xv, yv = _split(load_corpus("hypothyroid"))  # numeric + categorical columns, missing values
    model = _fit(train, family)
    onnx = to_onnx(model, Xv)
    _assert_same(model.predict_task(Xv), onnx.predict_task(Xv), tol=1e-3)  # hgb: float32 thresholds
    assert score(train.task, yv, onnx.predict_task(Xv)) == pytest.approx(
        score(train.task, yv, model.predict_task(Xv)), abs=1e-3
    )


def test_corpus_regression_and_ensemble(load_corpus) -> None:
    train, Xv, yv = _split(load_corpus("529_pollen"))
    members = [_fit(train, f) for f in ("et", "linear", "xgb", "lgbm")]
    for m in members:
        _assert_same(m.predict_task(Xv), to_onnx(m, Xv).predict_task(Xv))
    ens = EnsembleModel(train.task, members, [0.25] * 4)
    onnx = to_onnx(ens, Xv)
    _assert_same(ens.predict_task(Xv), onnx.predict_task(Xv))
    assert onnx.check["max_rel_value_diff"] <= F32
    pruned = prune_ensemble(ens, Xv, yv, train.task, max_members=2)
    assert len(pruned.members) == 2
