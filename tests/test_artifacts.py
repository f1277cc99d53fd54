"""Model files: random / extra-trees forests are written as packed arrays in a deflated skops file, and the
model read back predicts exactly as the one written."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skops.io as sio
from sklearn.ensemble import ExtraTreesClassifier, RandomForestRegressor

from metalearn.data.errors import ArtifactError, DataError
from metalearn.data.loading import load_sklearn
from metalearn.pipelines.artifacts import (
    PackedTrees,
    dumps_model,
    load_model_file,
    loads_model,
    trusted_types,
    write_artifact,
)
from metalearn.pipelines.spaces import get_space

PACKED = "metalearn.pipelines.artifacts.PackedTrees"


def _fitted_forests(model: object) -> list[object]:
    from metalearn.pipelines.artifacts import forests

    return [f for f in forests(model) if "estimators_" in vars(f)]


@pytest.mark.parametrize(("name", "family"), [("wine", "et"), ("diabetes", "rf"), ("linnerud", "et")])
def test_a_pipeline_with_a_forest_is_written_packed_and_predicts_the_same(
    name: str, family: str, tmp_path: Path
) -> None:
    ds = load_sklearn(name)
    space = get_space(ds.task)
    values = space.validate({"model": family, f"{family}:n_estimators": 60}, fill_defaults=True)
    model = space.build(values, ds.task, ds.categorical, seed=0).fit(ds.X, ds.y)
    found = _fitted_forests(model)
    assert found and all(len(f.estimators_) == 60 for f in found)  # type: ignore[attr-defined]
    lists = [f.estimators_ for f in found]  # type: ignore[attr-defined]

    written = write_artifact(model, tmp_path)
    assert PACKED in written["trusted_types"]
    assert [f.estimators_ for f in found] == lists  # type: ignore[attr-defined]  # the model written is as it was
    plain = sio.dumps(model)  # skops as it comes: one object per tree
    assert written["bytes"] < len(plain)
    with zipfile.ZipFile(io.BytesIO(plain)) as z, zipfile.ZipFile(tmp_path / written["file"]) as packed:
        # skops writes each tree's arrays as entries of their own, a packed forest a dozen in all
        assert len(z.infolist()) - len(packed.infolist()) >= 2 * 60, (len(packed.infolist()), len(z.infolist()))

    loaded = load_model_file(tmp_path / written["file"], written["sha256"])
    back = _fitted_forests(loaded)
    assert [type(f.estimators_) for f in back] == [list] * len(found)  # type: ignore[attr-defined]
    assert [len(f.estimators_) for f in back] == [60] * len(found)  # type: ignore[attr-defined]
    a, b = model.predict_task(ds.X), loaded.predict_task(ds.X)
    for x, y in zip(a.values + a.probas, b.values + b.probas, strict=True):
        assert (x is None and y is None) or np.array_equal(x, y)
    assert PACKED in trusted_types(dumps_model(loaded))  # and it is packed again when written again


def test_the_forests_of_an_ensemble_round_trip(tmp_path: Path) -> None:
    """An ensemble of forest pipelines (the search's final model): each member's forest is packed."""
    from metalearn.search.ensemble import EnsembleModel

    ds = load_sklearn("breast_cancer")
    space = get_space(ds.task)
    configs = [{"model": "et"}, {"model": "rf"}, {"model": "et", "et:n_estimators": 30}]
    members = [
        space.build(space.validate(c, fill_defaults=True), ds.task, ds.categorical, seed=i).fit(ds.X, ds.y)
        for i, c in enumerate(configs)
    ]
    model = EnsembleModel(ds.task, members, [0.5, 0.25, 0.25], ("a", "b", "c"), 0.9)
    assert len(_fitted_forests(model)) == 3
    written = write_artifact(model, tmp_path)
    loaded = load_model_file(tmp_path / written["file"], written["sha256"])
    assert len(_fitted_forests(loaded)) == 3
    assert np.array_equal(model.predict_task(ds.X).probas[0], loaded.predict_task(ds.X).probas[0])


@pytest.mark.parametrize("name", ["diabetes", "linnerud"])
def test_a_regression_ensemble_read_back_averages_its_members_values(name: str, tmp_path: Path) -> None:
    """The task read back from a model file has its kinds as TaskKind again: skops keeps them as text, and an
    ensemble read back took its regression targets for class targets — it predicted its heaviest member's
    value (on 197_cpu_act 1.28 off the weighted average) and a large batch ran out of memory."""
    from metalearn.data.task import TaskKind
    from metalearn.search.ensemble import EnsembleModel

    ds = load_sklearn(name)
    space = get_space(ds.task)
    members = [space.build(space.family_default(f), ds.task, ds.categorical, seed=0).fit(ds.X, ds.y)
               for f in ("linear", "knn")]
    model = EnsembleModel(ds.task, members, [0.7, 0.3], ("a", "b"))
    written = write_artifact(model, tmp_path)
    loaded = load_model_file(tmp_path / written["file"], written["sha256"])
    assert loaded.task == ds.task and all(type(k) is TaskKind for k in (loaded.task.kind, *loaded.task.target_kinds))
    got, want = loaded.predict_task(ds.X), model.predict_task(ds.X)
    for t in range(ds.task.n_targets):
        average = sum(w * np.asarray(m.predict_task(ds.X).values[t]) for w, m in zip(model.weights, members, strict=True))
        assert got.probas[t] is None and np.allclose(got.values[t], average) and np.allclose(want.values[t], average)


def test_trees_that_differ_are_written_one_by_one() -> None:
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(200, 5)), rng.integers(0, 3, 200)
    forest = ExtraTreesClassifier(10, random_state=0).fit(X, y)
    forest.estimators_[3].set_params(min_samples_leaf=2)  # no longer one parameter set
    assert PackedTrees.of(forest.estimators_) is None
    data = dumps_model(forest)
    assert PACKED not in trusted_types(data)
    assert np.array_equal(loads_model(data, trusted_types(data)).predict_proba(X), forest.predict_proba(X))
    assert PackedTrees.of(forest.estimators_[:1]) is None  # one tree: nothing to pack


def test_node_fields_are_written_smaller_without_a_bit_lost() -> None:
    """Integer node fields as 32-bit integers, the weighted row counts left out when they equal the counts;
    with sample weights (a bootstrap sample is one) they differ and are kept."""
    rng = np.random.default_rng(2)
    X = rng.normal(size=(300, 4))
    y = X[:, 0] + rng.normal(size=300)
    plain = RandomForestRegressor(5, bootstrap=False, max_features=0.5, random_state=0).fit(X, y)
    weighted = RandomForestRegressor(5, bootstrap=False, random_state=0).fit(X, y, sample_weight=rng.uniform(0.5, 2.0, 300))
    bootstrap = RandomForestRegressor(5, random_state=0).fit(X, y)
    for forest, kept in ((plain, False), (weighted, True), (bootstrap, True)):
        columns = PackedTrees(forest.estimators_).__getstate__()["nodes"]
        assert ("weighted_n_node_samples" in columns) is kept
        assert columns["left_child"].dtype == columns["feature"].dtype == np.int32
        back = loads_model(dumps_model(forest), trusted_types(dumps_model(forest)))
        for a, b in zip(forest.estimators_, back.estimators_, strict=True):
            for field in ("children_left", "feature", "threshold", "impurity", "n_node_samples",
                          "weighted_n_node_samples", "value", "missing_go_to_left"):
                assert np.array_equal(getattr(a.tree_, field), getattr(b.tree_, field)), field
        assert np.array_equal(back.predict(X), forest.predict(X))


def test_a_damaged_packed_forest_is_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(100, 4))
    forest = RandomForestRegressor(5, random_state=0).fit(X, X[:, 0])
    state = PackedTrees(forest.estimators_).__getstate__()
    with pytest.raises(ValueError, match="names the tree class 'Pipeline'"):
        PackedTrees([]).__setstate__({**state, "tree_class": "Pipeline"})
    with pytest.raises(ValueError, match="disagree in length: the file is damaged"):
        PackedTrees([]).__setstate__({**state, "values": state["values"][:-1]})
    with pytest.raises(ValueError, match="disagree in length: the file is damaged"):
        PackedTrees([]).__setstate__({**state, "nodes": {**state["nodes"], "threshold": state["nodes"]["threshold"][:-1]}})
    other = {k: v for k, v in state["nodes"].items() if k != "impurity"}  # trees of another scikit-learn
    with pytest.raises(ValueError, match="load the model with the scikit-learn version it was written with"):
        PackedTrees([]).__setstate__({**state, "nodes": other})
    written = write_artifact(forest, tmp_path)
    path = tmp_path / written["file"]
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ArtifactError, match="differs from the one the search wrote"):
        load_model_file(path, written["sha256"])
    with pytest.raises(ArtifactError, match=r"not a readable skops model .*write the model again"):
        load_model_file(path)  # no hash to check: the damage itself is named


def test_a_model_file_that_cannot_be_written_is_named_and_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk said "unexpected OSError: [Errno 28] No space left on device" and left .model.skops.PID.tmp."""
    import errno

    ds = load_sklearn("iris")
    space = get_space(ds.task)
    model = space.build(space.validate({"model": "linear"}, fill_defaults=True), ds.task, ds.categorical).fit(ds.X, ds.y)

    def full(self: Path, data: bytes) -> int:
        with open(self, "wb") as f:
            f.write(data[:100])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(ArtifactError, match=r"cannot write the model file .*model.skops \(No space left on device; "):
        write_artifact(model, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_a_model_read_back_refuses_text_in_a_numeric_column_instead_of_reading_it_as_missing(tmp_path: Path) -> None:
    # load_model_file gives the model itself, without the registry's / estimators' schema check: "abc" in a
    # column fitted on numbers was coerced to NaN, imputed, and predicted silently
    ds = load_sklearn("breast_cancer")
    space = get_space(ds.task)
    values = space.validate({"model": "linear"}, fill_defaults=True)
    written = write_artifact(space.build(values, ds.task, ds.categorical, seed=0).fit(ds.X, ds.y), tmp_path)
    loaded = load_model_file(tmp_path / written["file"], written["sha256"])
    rows = ds.X.head(4).astype(object)
    expected = loaded.predict(ds.X.head(4))
    rows.iloc[0, 2] = " "  # blank text is a missing value, as in the registry's check
    rows.iloc[1, 2] = "12.5"  # numbers as text are numbers
    assert loaded.predict(rows).shape == expected.shape
    rows.iloc[2, 2], rows.iloc[3, 2] = "abc", "abc"
    col = str(ds.X.columns[2])
    with pytest.raises(DataError, match=rf"feature column '{col}' holds 2 value\(s\) that are not numbers \('abc'\)") as err:
        loaded.predict(rows)
    assert "\n" not in str(err.value)


def test_a_multi_label_pipeline_read_back_gives_its_probabilities_per_label(tmp_path: Path) -> None:
    # QA: a multi-label model from load_model_file had no predict_proba (a single-target one has it; the ensembles
    # give a list per target)
    import pandas as pd

    from metalearn.data.validation import prepare_frame

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(200, 4)), columns=["a", "b", "c", "d"])
    frame["l1"] = (frame["a"] > 0).astype(int)
    frame["l2"] = (frame["b"] + frame["c"] > 0).astype(int)
    ds = prepare_frame(frame, ["l1", "l2"], name="labels")
    assert str(ds.task.kind) == "multilabel"
    space = get_space(ds.task)
    values = space.validate({"model": "linear", "ml_strategy": "binary_relevance"}, fill_defaults=True)
    written = write_artifact(space.build(values, ds.task, ds.categorical, seed=0).fit(ds.X, ds.y), tmp_path)
    loaded = load_model_file(tmp_path / written["file"], written["sha256"])
    proba = loaded.predict_proba(ds.X.head(50))
    assert isinstance(proba, list) and len(proba) == 2
    for j, p in enumerate(proba):
        assert p.shape == (50, 2) and np.allclose(p.sum(axis=1), 1.0)
        truth = ds.y.iloc[:50, j].to_numpy()
        assert np.mean((p[:, 1] > 0.5) == (truth == 1)) > 0.8  # the second column is label 1's


def test_a_classifier_chain_written_under_its_former_private_name_still_loads() -> None:
    """The chain class of multi-label models was ``_ClassifierChainModel`` until the registry's compression needed
    it (now ``ClassifierChainModel``): files written before name the old type, and still load and predict."""
    from sklearn.linear_model import LogisticRegression

    from metalearn.pipelines.models.task_models import ClassifierChainModel

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    chain = ClassifierChainModel(LogisticRegression()).fit(X, (X[:, :2] > 0).astype(int))
    old, new = b'"ClassifierChainModel"', b'"_ClassifierChainModel"'
    written, renamed = dumps_model(chain), io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(written)) as zin, zipfile.ZipFile(renamed, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            zout.writestr(item, data.replace(old, new) if item.filename == "schema.json" else data)
    data = renamed.getvalue()
    assert "metalearn.pipelines.models.task_models._ClassifierChainModel" in trusted_types(data)
    loaded = loads_model(data, trusted_types(data))
    assert isinstance(loaded, ClassifierChainModel)
    for (p, c), (q, d) in zip(loaded.predict_probas(X), chain.predict_probas(X), strict=True):
        assert np.array_equal(p, q) and np.array_equal(c, d)


def test_writing_a_model_pauses_the_garbage_collector_and_restores_it(tmp_path: Path) -> None:
    # the cyclic collector's full passes walked every object alive while skops made a forest's state (a 5.9-million-node
    # forest took 5.1 s to write right after a search, 1.4 s on its own): off for the write, as it was after
    import gc

    ds = load_sklearn("wine")
    space = get_space(ds.task)
    values = space.validate({"model": "et", "et:n_estimators": 20}, fill_defaults=True)
    model = space.build(values, ds.task, ds.categorical, seed=0).fit(ds.X, ds.y)
    assert gc.isenabled()
    write_artifact(model, tmp_path / "a")
    assert gc.isenabled()
    gc.disable()
    try:
        write_artifact(model, tmp_path / "b")
        assert not gc.isenabled()  # a caller's choice is kept
    finally:
        gc.enable()
    a, b = (load_model_file(tmp_path / d / "model.skops") for d in ("a", "b"))
    assert np.array_equal(a.predict_task(ds.X).probas[0], b.predict_task(ds.X).probas[0])


@pytest.mark.corpus
def test_a_model_file_written_with_its_schema_checks_rows_as_metalearn_predict_does(load_corpus: Any, tmp_path: Path) -> None:
    """A model read back with load_model_file checked only that numeric columns hold numbers: a missing or an extra
    column reached the pipeline. Written with its training schema (the file of optimize --out), it checks the rows
    as the registry's predict does — the same one-line errors naming the column, the same warnings — and predicts as
    the model; a file without a schema (an older release's) gives the model with the check it had."""
    from metalearn.kb import open_kb
    from metalearn.pipelines.artifacts import SignedModel
    from metalearn.pipelines.signature import REGISTRY_HINT, SchemaError, Signature
    from metalearn.registry.registry import ModelRegistry

    ds = load_corpus("cleve")  # numeric and categorical columns
    space = get_space(ds.task)
    values = space.validate({"model": "rf", "rf:n_estimators": 20}, fill_defaults=True)
    model = space.build(values, ds.task, ds.categorical, seed=0).fit(ds.X, ds.y)
    written = write_artifact(model, tmp_path / "run", Signature.of(ds))
    loaded = load_model_file(tmp_path / "run" / written["file"], written["sha256"])
    assert isinstance(loaded, SignedModel) and loaded.signature == Signature.of(ds)
    assert np.array_equal(loaded.predict_task(ds.X).probas[0], model.predict_task(ds.X).probas[0])
    assert np.array_equal(loaded.predict_proba(ds.X), model.predict_proba(ds.X))
    assert np.array_equal(loaded.classes_, model.classes_)  # the model's attributes
    assert _fitted_forests(loaded) and PACKED in written["trusted_types"]

    rows = ds.X.head(30).reset_index(drop=True)
    numeric = next(c for c, cat in zip(ds.X.columns, ds.categorical, strict=True) if not cat)
    category = next(c for c, cat in zip(ds.X.columns, ds.categorical, strict=True) if cat)
    bad = {
        "missing column(s) " + numeric: rows.drop(columns=[numeric]),
        "unknown column(s) extra": rows.assign(extra=1.0),
        f"mistyped column(s) {numeric} (numbers expected, got 'abc')": rows.astype({numeric: object}).assign(**{numeric: "abc"}),
    }
    unseen = rows.astype({category: object})
    unseen.loc[0, category] = "zzz"
    kb = open_kb(tmp_path / "kb.duckdb")
    try:
        registry = ModelRegistry(kb)
        record = registry.register("cleve", loaded, ds)
        assert type(registry.load(record)) is type(model)  # the registry keeps the model: its version's schema checks
        for problem, frame in bad.items():
            with pytest.raises(SchemaError) as served:
                registry.predict("cleve", frame, record.version, log=False)
            with pytest.raises(SchemaError) as read_back:
                loaded.predict(frame)
            said = str(read_back.value)
            assert problem in said and "\n" not in said, said
            assert said == str(served.value).replace(REGISTRY_HINT, SignedModel.HINT)
        batch = registry.predict("cleve", unseen, record.version, log=False)
        with pytest.warns(UserWarning, match="not seen in training") as caught:
            got = loaded.predict_task(unseen)
        assert [str(w.message) for w in caught if "not seen" in str(w.message)] == batch.warnings
        assert {w.filename for w in caught if "not seen" in str(w.message)} == {__file__}  # the user's call
        for call in (loaded.predict, loaded.predict_proba, loaded.checked):
            with pytest.warns(UserWarning, match="not seen in training") as caught:
                call(unseen)
            assert {w.filename for w in caught if "not seen" in str(w.message)} == {__file__}
        assert np.array_equal(got.probas[0], batch.prediction.probas[0])
    finally:
        kb.close()

    write_artifact(model, tmp_path / "old")  # as optimize --out wrote it before: the model alone
    old = load_model_file(tmp_path / "old" / "model.skops")
    assert type(old) is type(model)
    with pytest.raises(DataError, match="fitted on 13 feature columns but got 14"):  # counted, not named
        old.predict(rows.assign(extra=1.0))
    with pytest.raises(DataError, match=rf"feature column '{numeric}' holds 30 value\(s\) that are not numbers"):
        old.predict(bad[f"mistyped column(s) {numeric} (numbers expected, got 'abc')"])
