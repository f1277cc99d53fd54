"""Compressed variants for the model registry: ONNX conversion, ensemble pruning, the variant report."""

from __future__ import annotations

import json
import pickle
import warnings
from typing import Any

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
    assert np.array_equal(onnx.classes_, model.classes_)  # the order of predict_proba's columns


def test_ensemble_onnx_round_trips_through_skops(breast_cancer, cancer_models) -> None:
    train, Xv, _ = breast_cancer
    members = [cancer_models[f] for f in ("rf", "linear", "lgbm", "xgb")]
    # a temperature-scaled ensemble (metalearn.search.calibration): the variant scales the same way
    ens = EnsembleModel(train.task, members, [0.4, 0.3, 0.2, 0.1], ("a", "b", "c", "d"), temperature=0.7)
    onnx = to_onnx(ens, Xv)
    assert onnx.is_ensemble and onnx.check["n_graphs"] == 4 and onnx.temperature == 0.7
    _assert_same(ens.predict_task(Xv), onnx.predict_task(Xv))
    assert np.array_equal(onnx.classes_, ens.classes_)
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


# -- pruning without held-out rows, calibration, inherited CV scores, validation labels ---------------
def _registry(path: object) -> object:
    """A registry on an empty KB file ``path`` (the caller closes ``registry.kb``)."""
    from metalearn.kb import open_kb
    from metalearn.registry.registry import ModelRegistry

    return ModelRegistry(open_kb(path))


@pytest.fixture(scope="module")
def swd(load_corpus) -> tuple[Dataset, pd.DataFrame, pd.DataFrame, dict[str, object]]:
    """1028_SWD as a multiclass task (log loss), 75/25, with a linear, a LightGBM and an extra-trees model; the
    extra trees memorise the training rows (in-sample log loss 0.69, held-out 3.98: the others' 0.82 / 0.94)."""
    from conftest import corpus_path

    load_corpus("1028_SWD")  # skips without the corpus; its loader infers regression: load with the kind given
    ds = load_dataset("corpus:1028_SWD", kind="multiclass", corpus=str(corpus_path()))
    train, Xv, yv = _split(ds, 0.75)
    return train, Xv, yv, {f: _fit(train, f) for f in ("linear", "lgbm", "et")}


def _swd_ensemble(swd: tuple[Dataset, pd.DataFrame, pd.DataFrame, dict[str, object]]) -> EnsembleModel:
    """As a search's ensemble selection weighs them: the memorising extra trees were picked once (0.004, "0.00")."""
    train, _, _, models = swd
    return EnsembleModel(train.task, [models["linear"], models["lgbm"], models["et"]], [0.55, 0.446, 0.004],
                         ("linear", "lgbm", "et"), temperature=0.9, biases=[0.02, -0.01, -0.01, 0.0])


def test_prune_by_weights_keeps_the_heaviest_members_never_a_negligible_one(swd) -> None:
    from metalearn.registry.compress import NEGLIGIBLE_WEIGHT, prune_by_weights

    train, Xv, yv, models = swd
    ens = _swd_ensemble(swd)
    pruned = prune_by_weights(ens)
    assert pruned.config_ids == ("linear", "lgbm") and pytest.approx(sum(pruned.weights)) == 1.0
    assert (pruned.temperature, pruned.biases) == (ens.temperature, ens.biases)  # several members: kept
    # held out, it scores like the full ensemble (in-sample scoring kept the extra trees alone: 3.98 vs 0.94)
    full = score(train.task, yv, ens.predict_task(Xv))
    assert score(train.task, yv, pruned.predict_task(Xv)) <= full * 1.005
    assert prune_by_weights(ens, max_members=1).config_ids == ("linear",)
    # a member under NEGLIGIBLE_WEIGHT is never kept, even when max_members leaves room for it
    assert prune_by_weights(ens, max_members=3).config_ids == ("linear", "lgbm") and NEGLIGIBLE_WEIGHT > 0.004
    even = EnsembleModel(train.task, [models["linear"], models["lgbm"]], [0.5, 0.5], ("linear", "lgbm"))
    with pytest.raises(CompressionError, match="nothing to drop; give held-out labelled rows \\(--data\\)"):
        prune_by_weights(even)


def test_a_pruned_single_member_drops_the_ensembles_calibration(swd) -> None:
    """The temperature and class biases were fit to the whole ensemble's out-of-fold probabilities: a single member
    left kept them, though they were never fit to its own."""
    train, Xv, yv, models = swd
    ens = _swd_ensemble(swd)

    def alone(one: EnsembleModel) -> None:
        assert len(one.members) == 1 and (one.temperature, one.biases) == (1.0, None)
        member = models[one.config_ids[0]]
        _assert_same(member.predict_task(Xv), one.predict_task(Xv), tol=1e-12)  # the pipeline as the search scored it

    alone(prune_ensemble(ens, Xv, yv, train.task, max_members=1))
    two = prune_ensemble(ens, Xv, yv, train.task, max_members=2)
    assert (two.temperature, two.biases) == (ens.temperature, ens.biases)
    from metalearn.registry.compress import prune_by_weights

    alone(prune_by_weights(ens, max_members=1))


def test_compress_prune_without_data_does_not_favour_a_memorising_member(swd, tmp_path, capsys) -> None:
    """QA: on 1028_SWD `models compress --method prune` kept one member of weight 0.00 chosen on the training rows
    ("log_loss loss -10.41 % (meets the target ...)"), 7.8 % worse held out. The variant also carried its parent's
    cv_basis as its own."""
    from conftest import run_cli

    train, Xv, yv, _ = swd
    kb_path = tmp_path / "kb.duckdb"
    reg: Any = _registry(kb_path)
    try:
        base = reg.register("swd", _swd_ensemble(swd), train, info={"cv_score": 0.93, "cv_basis": "ensemble"})
    finally:
        reg.kb.close()
    code, out, err = run_cli(capsys, "models", "compress", "swd", "--method", "prune", "--json", "--kb", kb_path)
    assert code == 0, err
    report = json.loads(out)
    row = report["variants"][1]
    assert row.get("error") is None, row
    reg = _registry(kb_path)
    try:
        rec = reg.store.get_version("swd", row["version"])
        pruned = reg.load(rec)
        assert pruned.config_ids == ("linear", "lgbm")
        full = score(train.task, yv, reg.load(base).predict_task(Xv))
        assert score(train.task, yv, pruned.predict_task(Xv)) <= full * 1.005  # held out
        assert report["in_sample"] is True and row["members"] == 2 and "weights" in row["chosen_by"]
        # its CV score is version 1's, and says so
        shown = reg.version_dict(rec)
        assert (shown["cv_score"], shown["cv_basis"]) == (0.93, "inherited")
        assert shown["compression"]["cv_inherited"] == {"version": base.version, "basis": "ensemble"}
        assert shown["compression"]["in_sample"] is True and "kept" in shown["compression"]["calibration"]
        reg.delete("swd", rec.version)
    finally:
        reg.kb.close()
    # the verdict line says its rows are the training rows
    code, out, err = run_cli(capsys, "models", "compress", "swd", "--method", "prune", "--kb", kb_path)
    assert code == 0, err
    verdict = next(line for line in out.splitlines() if line.startswith("prune (version"))
    assert "% in-sample" in verdict and ("meets the target" not in verdict or "meets the target in-sample" in verdict)
    assert "kept 2 of 3 members, chosen by ensemble weights" in out


def test_a_variant_of_a_variant_names_the_version_cross_validated(breast_cancer, cancer_models, tmp_path) -> None:
    """An ONNX variant of a distilled variant of version 1 carries version 1's CV score: it named version 2."""
    from metalearn.registry.variants import compress

    train, _, _ = breast_cancer
    reg: Any = _registry(tmp_path / "kb.duckdb")
    try:
        base = reg.register("bc", cancer_models["linear"], train, info={"cv_score": 0.99, "cv_basis": "pipeline"})
        # a distilled variant as an earlier release registered it: the parent's cv_basis, no cv_inherited
        student = reg.register("bc", cancer_models["lgbm"], train, variant="distilled", parent_version=base.version,
                               info={"cv_score": 0.99, "cv_basis": "pipeline"})
        row = compress(reg, "bc", student.version, methods=("onnx",), batch_rows=1000)["variants"][1]
        assert row.get("error") is None, row
        onnx = reg.version_dict(reg.store.get_version("bc", row["version"]))
        assert onnx["parent_version"] == student.version and onnx["cv_basis"] == "inherited"
        assert onnx["compression"]["cv_inherited"] == {"version": base.version, "basis": "pipeline"}
        from metalearn.registry.variants import cv_origin

        assert cv_origin(reg, student) == {"version": base.version, "basis": "pipeline"}
        reg.delete("bc", student.version)  # a deleted link of the chain is still followed
        assert cv_origin(reg, reg.store.get_version("bc", row["version"]))["version"] == base.version
    finally:
        reg.kb.close()


@pytest.mark.parametrize(("file", "expected"), [
    ("maybe.csv", "'maybe' is not a class of 'target' the model was trained on (benign, malignant)"),
    ("one.csv", "holds one class of 'target' (benign): a score needs rows of both classes"),
])
def test_compress_checks_the_validation_labels_against_the_model(
    breast_cancer, cancer_models, tmp_path, capsys, file: str, expected: str
) -> None:
    """A label the model does not know said "use --kind multiclass" (compress has no --kind); rows of one class
    said "nothing to learn" (nothing is learnt from them)."""
    from conftest import run_cli

    train, Xv, yv = breast_cancer
    kb_path = tmp_path / "kb.duckdb"
    reg: Any = _registry(kb_path)
    try:
        ens = EnsembleModel(train.task, [cancer_models["linear"], cancer_models["lgbm"]], [0.6, 0.4])
        reg.register("bc", ens, train)
    finally:
        reg.kb.close()
    rows = pd.concat([Xv, yv], axis=1)
    maybe = rows.assign(target=["maybe", *list(yv["target"].astype(str))[1:]])
    maybe.to_csv(tmp_path / "maybe.csv", index=False)
    one = rows[yv["target"].astype(str) == "benign"]
    one.to_csv(tmp_path / "one.csv", index=False)
    code, out, err = run_cli(capsys, "models", "compress", "bc", "--data", tmp_path / file, "-t", "target",
                             "--method", "prune", "--kb", kb_path)
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("note: ")]
    assert code != 0 and out == "" and len(lines) == 1 and expected in lines[0], err


def test_compress_reads_its_validation_file_once_and_makes_the_same_variant(swd, tmp_path, capsys, monkeypatch) -> None:
    """`models compress --data FILE` read the file twice: once to check its labels against the model's classes, then
    again as the model's kind. Read once, it still refuses a label the model does not know and a file without the
    target (the loader's words), and makes the variant that the file read as the model's kind makes."""
    from conftest import run_cli

    import metalearn.data.loading as loading
    from metalearn.registry.variants import compress

    train, Xv, yv, _ = swd
    rows = pd.concat([Xv, yv], axis=1)
    rows.to_csv(tmp_path / "valid.csv", index=False)
    rows.assign(target=[7, *list(yv["target"])[1:]]).to_csv(tmp_path / "seven.csv", index=False)
    Xv.to_csv(tmp_path / "nolabel.csv", index=False)
    reads: list[str] = []
    read = loading.load_frame_file

    def counted(path: Any, *args: Any, **kwargs: Any) -> pd.DataFrame:
        reads.append(str(path))
        return read(path, *args, **kwargs)

    monkeypatch.setattr(loading, "load_frame_file", counted)
    kb_path = tmp_path / "kb.duckdb"
    reg: Any = _registry(kb_path)
    try:
        reg.register("swd", _swd_ensemble(swd), train)
    finally:
        reg.kb.close()

    def cli(file: str) -> tuple[int, str, str]:
        reads.clear()
        return run_cli(capsys, "models", "compress", "swd", "--data", tmp_path / file, "--method", "prune", "--json",
                       "--kb", kb_path)

    for file, expected in (("seven.csv", "7 is not a class of 'target' the model was trained on (2, 3, 4, 5)"),
                           ("nolabel.csv", "target column 'target' not found in 'nolabel'; available columns: ")):
        code, out, err = cli(file)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert code == 2 and out == "" and len(lines) == 1 and expected in lines[0], err
        assert reads == [str(tmp_path / file)]
    code, out, err = cli("valid.csv")
    assert code == 0, err
    assert reads == [str(tmp_path / "valid.csv")]
    report = json.loads(out)
    assert report["rows_from"] == f"the validation data ({len(Xv)} rows)" and report["in_sample"] is False
    made = report["variants"][1]
    assert made.get("error") is None and made["version"] == 2, made
    # the variant the file read by the loader as the model's kind makes (as the command did before)
    other: Any = _registry(tmp_path / "other.duckdb")
    try:
        other.register("swd", _swd_ensemble(swd), train)
        validation = load_dataset(str(tmp_path / "valid.csv"), target="target", kind="multiclass")
        direct = compress(other, "swd", methods=["prune"], validation=validation)["variants"][1]
    finally:
        other.kb.close()
    reg = _registry(kb_path)
    try:
        assert reg.load(reg.store.get_version("swd", 2)).config_ids == ("linear", "lgbm")
    finally:
        reg.kb.close()
    assert (made["members"], made["score"], made["chosen_by"]) == (direct["members"], direct["score"], direct["chosen_by"])
