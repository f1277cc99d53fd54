"""Task-kind inference, frame validation and the file / corpus / sklearn loaders, on real data."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metalearn.data.dataset import Dataset
from metalearn.data.errors import (
    DataError,
    DataFileNotFoundError,
    FileFormatError,
    InputError,
    MetaLearnError,
    NotFoundError,
    TargetError,
    TaskKindError,
)
from metalearn.data.kinds import MAX_INTEGER_CLASSES, infer_task, target_kind_of
from metalearn.data.loading import (
    SKLEARN_DATASETS,
    Corpus,
    load_dataset,
    load_file,
    load_frame_file,
    load_sklearn,
    write_frame_file,
)
from metalearn.data.task import DEFAULT_METRIC, TaskKind
from metalearn.data.validation import MIN_ROWS, prepare_frame

K = TaskKind


def one_line(err: pytest.ExceptionInfo[BaseException]) -> str:
    msg = str(err.value)
    assert msg and "\n" not in msg, f"error message must be one line: {msg!r}"
    assert isinstance(err.value, MetaLearnError)
    return msg


def raw_frame(corpus_dir: Path, name: str) -> tuple[pd.DataFrame, list[str]]:
    """The corpus parquet as stored (features + targets) and its target names."""
    corpus = Corpus(corpus_dir)
    entry = corpus.entry(name)
    return load_frame_file(entry.file), list(entry.targets)


# ------------------------------------------------------------------------------------------ kinds


def check_corpus_against_manifest(corpus_dir: Path, max_cells: float) -> None:
    """Corpus datasets load with the manifest's kind, targets and sizes (categorical count too);
    inference without the manifest kind agrees on >= 95% and the disagreements are the documented
    ambiguous cases (integer-valued regression targets look like classes)."""
    corpus = Corpus(corpus_dir)
    agree: Counter[bool] = Counter()
    odd: list[tuple[str, str, str]] = []
    for entry in corpus.entries():
        if entry.n_rows * entry.n_features > max_cells:
            continue
        name = entry.name
        ds = corpus.load(name)
        assert ds.task.kind is entry.kind and ds.task.targets == entry.targets
        assert (ds.n_rows, ds.n_features, ds.n_categorical) == (
            entry.n_rows,
            entry.n_features,
            entry.n_categorical,
        )
        assert all(
            ds.X[c].dtype == np.float64
            for c, cat in zip(ds.X.columns, ds.categorical, strict=True)
            if not cat
        )
        inferred = infer_task(ds.y).kind
        agree[inferred is entry.kind] += 1
        if inferred is not entry.kind:
            odd.append((name, str(entry.kind), str(inferred)))
    rate = agree[True] / sum(agree.values())
    assert rate >= 0.95, (rate, odd)
    for name, manifest_kind, inferred_kind in odd:
        # integer ratings with few values look like classes; integer multi-outputs look mixed
        assert (manifest_kind, inferred_kind) in {
            ("regression", "multiclass"),
            ("multitarget", "multitask"),
        }, name
    assert sum(agree.values()) >= 250 if max_cells >= 1e6 else True


def test_corpus_loads_and_inference_matches_the_manifest(corpus_dir: Path) -> None:
    check_corpus_against_manifest(corpus_dir, max_cells=1e6)  # 254 of 263 datasets, ~15 s


@pytest.mark.slow
def test_whole_corpus_loads_and_inference_matches_the_manifest(corpus_dir: Path) -> None:
    check_corpus_against_manifest(corpus_dir, max_cells=float("inf"))


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("penguins", K.MULTICLASS),
        ("hepatitis", K.BINARY),
        ("1089_USCrime", K.REGRESSION),
        ("emotions", K.MULTILABEL),
        ("enb", K.MULTITARGET),
    ],
)
def test_inference_on_corpus_datasets_of_each_kind(corpus_dir: Path, name: str, kind: TaskKind) -> None:
    df, targets = raw_frame(corpus_dir, name)
    task = infer_task(df[targets])
    assert task.kind is kind
    assert task.metric == DEFAULT_METRIC[kind]
    assert task.targets == tuple(targets)


def test_target_kind_of_hand_made_columns() -> None:
    rng = np.random.default_rng(0)
    assert target_kind_of(pd.Series(["yes", "no", "yes", None])) is K.BINARY
    assert target_kind_of(pd.Series([True, False, True])) is K.BINARY
    assert target_kind_of(pd.Series(["a", "b", "c"], dtype="category")) is K.MULTICLASS
    assert target_kind_of(pd.Series(["a", "b", "c"], dtype="string")) is K.MULTICLASS
    assert target_kind_of(pd.Series(rng.normal(size=50))) is K.REGRESSION
    assert target_kind_of(pd.Series([0, 1, 1, 0])) is K.BINARY
    assert target_kind_of(pd.Series([3.0, 7.0, 3.0])) is K.BINARY
    assert target_kind_of(pd.Series(np.arange(60) % 5)) is K.MULTICLASS
    assert target_kind_of(pd.Series(np.arange(60) % MAX_INTEGER_CLASSES)) is K.MULTICLASS
    assert target_kind_of(pd.Series(np.arange(60) % (MAX_INTEGER_CLASSES + 1))) is K.REGRESSION
    assert target_kind_of(pd.Series(np.arange(100))) is K.REGRESSION
    with pytest.raises(TargetError) as err:
        target_kind_of(pd.Series([np.nan, np.nan], name="t"))
    assert "no values" in one_line(err)
    with pytest.raises(TargetError) as err:
        target_kind_of(pd.Series([1.5, np.inf, 2.0], name="t"))
    assert "infinite" in one_line(err)


def test_infer_task_several_columns() -> None:
    y01 = pd.DataFrame({"a": [0, 1, 1, 0], "b": [1, 1, 0, 0], "c": [True, False, True, True]})
    assert infer_task(y01).kind is K.MULTILABEL
    yreg = pd.DataFrame({"u": [0.5, 1.25, 2.0, 3.5], "v": [1.1, 2.2, 3.3, 4.4]})
    assert infer_task(yreg).kind is K.MULTITARGET
    mixed = pd.DataFrame({"cls": ["a", "b", "c", "a"], "x": [0.5, 1.25, 2.0, 3.5], "f": [0, 1, 0, 1]})
    task = infer_task(mixed)
    assert task.kind is K.MULTITASK
    assert task.target_kinds == (K.MULTICLASS, K.REGRESSION, K.BINARY)
    # two-valued labels that are not 0/1 cannot be multilabel columns
    yesno = pd.DataFrame({"a": ["y", "n", "y", "n"], "b": ["n", "n", "y", "y"]})
    assert infer_task(yesno).kind is K.MULTITASK
    assert infer_task(pd.Series([1.5, 2.5, 3.5], name="s")).kind is K.REGRESSION


def test_explicit_kind_overrides_are_checked() -> None:
    labels = pd.DataFrame({"t": ["red", "green", "blue", "red"]})
    with pytest.raises(TaskKindError) as err:
        infer_task(labels, kind="regression")
    msg = one_line(err)
    assert "'t'" in msg and "regression" in msg and "--kind" in msg
    with pytest.raises(TaskKindError) as err:
        infer_task(labels, kind="binary")
    assert "3 distinct values" in one_line(err)
    ints = pd.DataFrame({"t": np.arange(100) % 40})  # inferred regression (40 values)
    assert infer_task(ints).kind is K.REGRESSION
    assert infer_task(ints, kind="multiclass").kind is K.MULTICLASS
    assert infer_task(pd.DataFrame({"t": [0, 1, 2, 1]}), kind=K.REGRESSION).kind is K.REGRESSION
    with pytest.raises(TaskKindError) as err:
        infer_task(pd.DataFrame({"t": [0.5, 1.7, 2.2]}), kind="multiclass")
    assert "non-integer" in one_line(err)
    with pytest.raises(TaskKindError) as err:
        infer_task(pd.DataFrame({"a": [0, 1], "b": [2, 3]}), kind="multilabel")
    assert "0/1" in one_line(err) and "'b'" in str(err.value)
    with pytest.raises(TaskKindError) as err:
        infer_task(pd.DataFrame({"a": [0, 1], "b": [1, 0]}), kind="binary")
    assert "exactly one target" in one_line(err)
    with pytest.raises(TaskKindError) as err:
        infer_task(pd.DataFrame({"a": [0.1, 1.2]}), kind="multitarget")
    assert "at least two" in one_line(err)
    with pytest.raises(TaskKindError) as err:
        infer_task(labels, kind="clustering")
    assert "binary" in one_line(err)
    task = infer_task(
        pd.DataFrame({"a": [0, 1, 0], "b": [0.5, 1.5, 2.5]}), kind="multitask", metric="my_metric"
    )
    assert task.target_kinds == (K.BINARY, K.REGRESSION) and task.metric == "my_metric"


# ------------------------------------------------------------------------------------- validation


def test_prepare_frame_conversions() -> None:
    rng = np.random.default_rng(1)
    n = 40
    df = pd.DataFrame(
        {
            "num_int": rng.integers(0, 100, n),
            "num_float": rng.normal(size=n),
            "txt": pd.Series(rng.choice(["a", "b", "c"], n), dtype=object),
            "flag": rng.choice([True, False], n),
            "s": pd.Series(rng.choice(["x", "y"], n), dtype="string"),
            "obj_num": pd.Series(rng.normal(size=n), dtype=object),
            "raw": pd.Series([b"p", b"q"] * (n // 2), dtype=object),
            "label": rng.choice(["pos", "neg"], n),
        }
    )
    ds = prepare_frame(df, "label", name="handmade")
    assert ds.task.kind is K.BINARY and ds.origin == "upload:handmade"
    assert list(ds.X.columns) == ["num_int", "num_float", "txt", "flag", "s", "obj_num", "raw"]
    assert "label" not in ds.X.columns
    assert ds.categorical == (False, False, True, True, True, False, True)
    assert ds.X["num_int"].dtype == np.float64 and ds.X["obj_num"].dtype == np.float64
    assert set(ds.X["raw"].cat.categories) == {"p", "q"}
    assert isinstance(ds.y["label"].dtype, pd.CategoricalDtype)
    assert ds.fingerprint and len(ds.fingerprint) == 20


def test_prepare_frame_targets_by_kind(load_corpus) -> None:
    ml = load_corpus("emotions")
    assert all(ml.y[c].dtype == np.int64 for c in ml.y.columns)
    assert set(np.unique(ml.y.to_numpy())) == {0, 1}
    reg = load_corpus("enb")
    assert all(reg.y[c].dtype == np.float64 for c in reg.y.columns)
    cls = load_corpus("penguins")
    assert isinstance(cls.y["target"].dtype, pd.CategoricalDtype)
    assert list(cls.y["target"].cat.categories) == [0, 1, 2]
    assert not set(cls.task.targets) & set(cls.X.columns)


def test_bad_frames_give_clear_errors(corpus_dir: Path) -> None:
    df, targets = raw_frame(corpus_dir, "hepatitis")
    (target,) = targets

    with pytest.raises(TargetError) as err:
        prepare_frame(df, "targt", name="hepatitis")
    msg = one_line(err)
    assert "'targt'" in msg and "did you mean 'target'" in msg and "available columns" in msg
    from metalearn.data.validation import _suggest

    assert _suggest("Target", ["target", "Age"]) == " (did you mean 'target'?)"  # another case
    assert _suggest("target", ["Age", "sex"]) == ""  # it suggested 'Age' for 'target'
    with pytest.raises(TargetError) as err:  # a Python user is told the keyword, not only the CLI's flag
        prepare_frame(df, [], name="hepatitis")
    assert "--target NAME (target= in Python and over HTTP)" in one_line(err)

    dup = pd.concat([df, df.iloc[:, [0]]], axis=1)
    with pytest.raises(DataError) as err:
        prepare_frame(dup, target, name="dup")
    assert "duplicate column names" in one_line(err) and repr(str(df.columns[0])) in str(err.value)

    with pytest.raises(DataError) as err:
        prepare_frame(df.iloc[:0], target, name="empty")
    assert "no rows" in one_line(err)
    with pytest.raises(DataError) as err:
        prepare_frame(df[[target]], target, name="only_target")
    assert "no feature columns" in one_line(err)
    with pytest.raises(DataError) as err:
        prepare_frame(df.iloc[: MIN_ROWS - 1], target, name="tiny")
    assert f"only {MIN_ROWS - 1} rows" in one_line(err)

    holes = df.copy()
    holes.loc[[3, 17, 40], target] = np.nan
    with pytest.raises(TargetError) as err:
        prepare_frame(holes, target, name="holes")
    assert "3 missing value(s)" in one_line(err)

    one_class = df[df[target] == df[target].iloc[0]]
    with pytest.raises(DataError) as err:
        prepare_frame(one_class, target, name="one_class")
    assert "single value" in one_line(err) and "drop this target" in one_line(err)

    inf = df.copy()
    col = str(df.columns[2])
    inf[col] = inf[col].astype(float)
    inf.loc[5, col] = np.inf
    with pytest.raises(DataError) as err:
        prepare_frame(inf, target, name="inf")
    assert "infinite" in one_line(err) and repr(col) in str(err.value)
    inf.loc[5, col] = -1e300  # finite, but beyond float32: the forests' fit and prediction would fail on it
    with pytest.raises(DataError) as err:
        prepare_frame(inf, target, name="inf")
    assert "beyond ±3.4e+38" in one_line(err) and repr(col) in str(err.value)

    nan_col = df.copy()
    nan_col["empty_feature"] = np.nan
    with pytest.raises(DataError) as err:
        prepare_frame(nan_col, target, name="nan_col")
    assert "'empty_feature'" in one_line(err)
    kept = prepare_frame(nan_col, target, name="nan_col", drop_empty_features=True)
    assert "empty_feature" not in kept.X.columns and kept.n_features == df.shape[1] - 1

    with pytest.raises(TargetError):
        prepare_frame(df, [], name="x")
    with pytest.raises(DataError):
        prepare_frame(df.to_numpy(), target)  # type: ignore[arg-type]


def test_regression_target_with_inf_and_constant_label(corpus_dir: Path) -> None:
    df, targets = raw_frame(corpus_dir, "1089_USCrime")
    bad = df.copy()
    bad.loc[0, targets[0]] = np.inf
    with pytest.raises(TargetError) as err:
        prepare_frame(bad, targets)
    assert "infinite" in one_line(err)
    # a label constant in these rows (a rare label absent from a split) is accepted (issue 14 item 18:
    # it used to be refused with "label ... is constant"); the models predict the constant for it
    ml, labels = raw_frame(corpus_dir, "emotions")
    ml = ml.copy()
    ml[labels[0]] = 0
    for kind in ("multilabel", None):
        ds = prepare_frame(ml, labels, kind=kind)
        assert ds.task.kind is K.MULTILABEL and ds.y[labels[0]].dtype == np.int64
        assert (ds.y[labels[0]] == 0).all() and ds.y[labels[1]].nunique() == 2
    assert "single value (0)" in ds.task.kind_reasons[0]
    # the same for a multitarget column that is constant: still multitarget, not multitask
    mt, outs = raw_frame(corpus_dir, "enb")
    mt = mt.copy()
    mt[outs[1]] = 0.0
    ds = prepare_frame(mt, outs)
    assert ds.task.kind is K.MULTITARGET and "constant" in ds.task.kind_reasons[1]


# ------------------------------------------------------------------------------------------ files


@pytest.mark.parametrize("name", ["foodtruck", "penguins", "hepatitis", "sf1"])
def test_csv_parquet_arff_round_trip_keeps_the_fingerprint(
    corpus_dir: Path, load_corpus, tmp_path: Path, name: str
) -> None:
    reference: Dataset = load_corpus(name)
    df, targets = raw_frame(corpus_dir, name)
    # CSV cannot say that a column of number-like labels (1, 2 / "1", "2") is categorical: name those
    numeric_labels = [
        str(c)
        for c in df.columns
        if isinstance(df[c].dtype, pd.CategoricalDtype)
        and pd.to_numeric(pd.Series(df[c].cat.categories), errors="coerce").notna().all()
    ]
    assert bool(numeric_labels) == (name != "foodtruck")
    prints = {}
    for ending in ("csv", "csv.gz", "tsv", "parquet", "pq", "arff", "arff.gz"):
        path = write_frame_file(df, tmp_path / f"{name}.{ending}")
        hint = numeric_labels if ending in ("csv", "csv.gz", "tsv") else None
        ds = load_file(path, targets, kind=reference.task.kind, categorical=hint)
        assert ds.name == name and ds.origin == f"file:{path}"
        assert ds.X.shape == reference.X.shape and ds.categorical == reference.categorical
        prints[ending] = ds.fingerprint
    assert set(prints.values()) == {reference.fingerprint}, prints


def test_csv_needs_categorical_hint_for_integer_codes(corpus_dir: Path, tmp_path: Path) -> None:
    """monk1 stores four integer-coded categorical features (pandas metadata in its parquet)."""
    df, targets = raw_frame(corpus_dir, "monk1")
    codes = [str(c) for c in df.columns if c not in targets and isinstance(df[c].dtype, pd.CategoricalDtype)]
    assert len(codes) == Corpus(corpus_dir).entry("monk1").n_categorical == 4
    from_parquet = load_file(write_frame_file(df, tmp_path / "m.parquet"), targets)
    from_arff = load_file(write_frame_file(df, tmp_path / "m.arff"), targets)
    csv = write_frame_file(df, tmp_path / "m.csv")
    plain = load_file(csv, targets)
    hinted = load_file(csv, targets, categorical=codes)
    assert from_parquet.n_categorical == 4 and hinted.n_categorical == 4 and plain.n_categorical == 0
    assert from_parquet.fingerprint == from_arff.fingerprint == hinted.fingerprint != plain.fingerprint
    with pytest.raises(InputError) as err:
        load_file(csv, targets, categorical=["nope"])
    assert "'nope'" in one_line(err)


def test_corrupted_files_give_file_format_errors(corpus_dir: Path, tmp_path: Path) -> None:
    df, _ = raw_frame(corpus_dir, "hepatitis")
    good_parquet = write_frame_file(df, tmp_path / "good.parquet").read_bytes()
    (tmp_path / "trunc.parquet").write_bytes(good_parquet[: len(good_parquet) // 2])
    with pytest.raises(FileFormatError) as err:
        load_frame_file(tmp_path / "trunc.parquet")
    assert "trunc.parquet" in one_line(err) and "PARQUET" in str(err.value)

    (tmp_path / "garbage.csv").write_bytes(gzip.compress(good_parquet))
    with pytest.raises(FileFormatError) as err:
        load_frame_file(tmp_path / "garbage.csv")
    assert "garbage.csv" in one_line(err)
    # not UTF-8, and why: gzip under a plain name, or UTF-16 text
    (tmp_path / "zipped.csv").write_bytes(gzip.compress(write_frame_file(df, tmp_path / "z.csv").read_bytes()))
    with pytest.raises(FileFormatError) as err:
        load_frame_file(tmp_path / "zipped.csv")
    assert "'zipped.csv': gzip-compressed content under a plain name: name it .csv.gz" in one_line(err)
    (tmp_path / "utf16.csv").write_bytes((tmp_path / "z.csv").read_text().encode("utf-16"))
    with pytest.raises(FileFormatError) as err:
        load_frame_file(tmp_path / "utf16.csv")
    assert "'utf16.csv': UTF-16 text" in one_line(err) and "save it as UTF-8" in str(err.value)

    text = write_frame_file(df, tmp_path / "ok.csv").read_text().splitlines()
    text[5] = text[5] + ",1,2,3"
    (tmp_path / "ragged.csv").write_text("\n".join(text))
    with pytest.raises(FileFormatError) as err:
        load_frame_file(tmp_path / "ragged.csv")
    assert "line 6" in one_line(err)

    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(FileFormatError) as err:
        load_frame_file(tmp_path / "empty.csv")
    assert "empty" in one_line(err)

    arff_text = write_frame_file(df, tmp_path / "ok.arff").read_text()
    (tmp_path / "nodata.arff").write_text(arff_text.replace("@DATA", "@DATUM"))
    with pytest.raises(FileFormatError) as err:
        load_frame_file(tmp_path / "nodata.arff")
    assert "nodata.arff" in one_line(err)
    lines = arff_text.splitlines()
    data_at = next(i for i, line in enumerate(lines) if line.upper().startswith("@DATA"))
    lines[data_at + 3] = "1,2"  # too few values
    (tmp_path / "short.arff").write_text("\n".join(lines))
    with pytest.raises(FileFormatError) as err:
        load_frame_file(tmp_path / "short.arff")
    assert "short.arff" in one_line(err)

    (tmp_path / "data.xlsx").write_bytes(b"PK")
    with pytest.raises(FileFormatError) as err:
        load_frame_file(tmp_path / "data.xlsx")
    assert ".csv" in one_line(err) and ".parquet" in str(err.value) and ".arff" in str(err.value)

    with pytest.raises(FileFormatError, match="is a directory, not a data file"):
        load_frame_file(tmp_path)  # no ending: it said "unknown file type"
    with pytest.raises(DataFileNotFoundError) as err:
        load_frame_file(tmp_path / "absent.csv")
    assert "absent.csv" in one_line(err)
    assert isinstance(err.value, FileNotFoundError)


def test_arff_nominal_attributes_become_categories(tmp_path: Path) -> None:
    text = "\n".join(
        [
            "@RELATION t",
            "@ATTRIBUTE colour {red,green,blue}",
            "@ATTRIBUTE size NUMERIC",
            "@ATTRIBUTE note STRING",
        ]
        + ["@ATTRIBUTE class {yes,no}", "@DATA"]
        + [
            f"{c},{i * 1.5},'n {i}',{'yes' if i % 3 else 'no'}"
            for i, c in enumerate(["red", "green", "?", "blue"] * 4)
        ]
    )
    (tmp_path / "t.arff").write_text(text)
    frame = load_frame_file(tmp_path / "t.arff")
    assert list(frame["colour"].cat.categories) == ["red", "green", "blue"]
    assert frame["colour"].isna().sum() == 4 and frame["size"].dtype == np.float64
    ds = load_file(tmp_path / "t.arff", "class")
    assert ds.task.kind is K.BINARY and ds.categorical == (True, False, True)


def test_load_file_target_errors(corpus_dir: Path, tmp_path: Path) -> None:
    df, _ = raw_frame(corpus_dir, "penguins")
    path = write_frame_file(df, tmp_path / "p.csv")
    with pytest.raises(TargetError) as err:
        load_file(path, "species")
    assert "'species'" in one_line(err) and "available columns" in str(err.value)
    with pytest.raises(TargetError) as err:
        load_dataset(str(path))
    assert "--target" in one_line(err)
    ds = load_dataset(str(path), target="target", kind="multiclass", metric="accuracy")
    assert ds.task.kind is K.MULTICLASS and ds.task.metric == "accuracy" and ds.name == "p"


# ----------------------------------------------------------------------------------------- corpus


def test_corpus_manifest_access(corpus_dir: Path) -> None:
    corpus = Corpus(corpus_dir)
    manifest = pd.read_csv(corpus_dir / "manifest.csv")
    assert len(corpus) == manifest["name"].nunique()
    assert "penguins" in corpus and "no-such-dataset" not in corpus
    by_kind = {k: len(corpus.names(k)) for k in K}
    assert sum(by_kind.values()) == len(corpus)
    assert (
        by_kind[K.MULTILABEL] == (manifest.drop_duplicates("name", keep="last")["kind"] == "multilabel").sum()
    )
    # the manifest lists 'flags' twice; the last row (multilabel, the file's content) wins
    assert [(e.name, e.kind) for e in corpus.shadowed] == [("flags", K.MULTICLASS)]
    flags = corpus.load("flags")
    assert flags.task.kind is K.MULTILABEL and flags.n_rows == corpus.entry("flags").n_rows
    with_did = manifest.dropna(subset=["openml_did"]).drop_duplicates("name", keep="last").iloc[0]
    did = int(with_did["openml_did"])
    assert corpus.by_openml_id(did) is not None
    assert corpus.entry(corpus.by_openml_id(did)).openml_did == did  # type: ignore[arg-type]
    assert corpus.by_openml_id(10**9) is None
    ds = corpus.load(str(with_did["name"]))
    assert ds.openml_id == did and ds.origin == f"corpus:{with_did['name']}"
    with pytest.raises(NotFoundError) as err:
        corpus.entry("penguin")
    assert "did you mean 'penguins'" in one_line(err)
    with pytest.raises(TaskKindError):
        corpus.names("ranking")
    with pytest.raises(DataFileNotFoundError) as err:
        Corpus(corpus_dir / "nope")
    assert "METALEARN_CORPUS" in one_line(err)


def test_corpus_stale_manifest_row(corpus_dir: Path, tmp_path: Path) -> None:
    manifest = pd.read_csv(corpus_dir / "manifest.csv")
    row = manifest[manifest["name"] == "penguins"].copy()
    row["targets"] = json.dumps(["species"])
    row["file"] = str(corpus_dir / str(row["file"].iloc[0]))
    row.to_csv(tmp_path / "manifest.csv", index=False)
    with pytest.raises(TargetError) as err:
        Corpus(tmp_path).load("penguins")
    assert "manifest" in one_line(err) and "'species'" in str(err.value)


def test_load_dataset_specs(corpus_dir: Path, monkeypatch: pytest.MonkeyPatch, load_corpus) -> None:
    ref = load_corpus("hepatitis")
    assert load_dataset("corpus:hepatitis", corpus=corpus_dir).fingerprint == ref.fingerprint
    monkeypatch.setenv("METALEARN_CORPUS", str(corpus_dir))
    assert load_dataset("corpus:hepatitis").fingerprint == ref.fingerprint
    as_reg = load_dataset("corpus:1027_ESL", kind=None)
    assert as_reg.task.kind is K.REGRESSION  # the manifest kind, not the inferred multiclass
    iris = load_dataset("sklearn:iris")
    assert iris.origin == "sklearn:iris" and iris.task.kind is K.MULTICLASS
    with pytest.raises(InputError) as err:
        load_dataset("openml:abc")
    assert "integer" in one_line(err)
    with pytest.raises(DataFileNotFoundError) as err:
        load_dataset("kaggle:titanic", target="Survived")
    assert "sklearn:NAME" in one_line(err)
    with pytest.raises(NotFoundError):
        load_dataset("corpus:penguin")


@pytest.mark.parametrize("name", list(SKLEARN_DATASETS))
def test_load_sklearn(name: str) -> None:
    ds = load_sklearn(name)
    assert ds.origin == f"sklearn:{name}" and ds.task.kind is SKLEARN_DATASETS[name][1]
    assert ds.n_rows >= MIN_ROWS and ds.n_features >= 3
    if name == "iris":
        assert set(ds.y["target"].cat.categories) == {"setosa", "versicolor", "virginica"}
    if name == "linnerud":
        assert ds.task.targets == ("Weight", "Waist", "Pulse")


def test_load_sklearn_unknown() -> None:
    with pytest.raises(NotFoundError) as err:
        load_sklearn("boston")
    msg = one_line(err)
    assert all(n in msg for n in SKLEARN_DATASETS)


def test_a_target_column_named_with_a_comma_is_one_target(tmp_path: Path) -> None:
    """"a,b" names two targets unless a column is named so ("price, usd": it was split and not found)."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60)})
    df["price, usd"] = 2 * df["a"] + rng.normal(size=60)
    df.to_csv(tmp_path / "comma.csv", index=False)
    ds = load_dataset(str(tmp_path / "comma.csv"), target="price, usd")
    assert ds.task.targets == ("price, usd",) and list(ds.X.columns) == ["a", "b"]
    assert load_dataset(str(tmp_path / "comma.csv"), target="a,b").task.targets == ("a", "b")
    assert prepare_frame(df, "price, usd").task.targets == ("price, usd",)


def test_numbers_with_a_few_text_values_or_decimal_commas_are_noted() -> None:
    """Such a column becomes categories (hundreds of levels, a worse model); that is said, naming the values."""
    rng = np.random.default_rng(0)
    mostly = rng.normal(size=300).round(3).astype(object)
    mostly[::7] = "n/a?"
    df = pd.DataFrame({
        "mostly": mostly,
        "commas": [f"{v:.2f}".replace(".", ",") for v in rng.normal(size=300)],
        "colour": rng.choice(["red", "green", "blue"], 300),
        "y": rng.integers(0, 2, 300),
    })
    ds = prepare_frame(df, "y")
    assert ds.categorical == (True, True, True)  # as before: nothing is guessed
    assert ds.notes == (
        "column 'mostly': 43 of 300 values are not numbers (e.g. 'n/a?'), so it is used as categories; write them "
        "as numbers, or leave them empty (missing), to use it as numbers",
        f"column 'commas' holds numbers written with decimal commas (e.g. {df['commas'][0]!r}), so it is used as "
        "categories; write them with decimal points to use it as numbers",
    )
    assert prepare_frame(df.drop(columns=["mostly", "commas"]), "y").notes == ()


def test_a_data_file_is_named_by_its_file_name_without_the_data_ending(tmp_path: Path) -> None:
    """The naming is public (``data_file_stem``): ``metalearn models`` names a data file's table with it (it imported
    the private ``_stem``), and the loaders name the dataset (and an ARFF file's relation) with it."""
    import ast

    import metalearn
    from metalearn.data.loading import data_file_stem

    assert [data_file_stem(Path(p)) for p in ("d/train.csv.gz", "a.b.parquet", "X.ARFF.gz", "t.tsv", ".csv", "notes")] == [
        "train", "a.b", "X", "t", ".csv", "notes"]
    path = tmp_path / "sales.2024.csv.gz"
    pd.DataFrame({"x": np.arange(40.0), "target": np.arange(40) % 2}).to_csv(path, index=False)
    assert load_dataset(str(path), target="target").name == "sales.2024"
    private = [f"{file.relative_to(Path(metalearn.__file__).parent)}: {alias.name}"
               for file in Path(metalearn.__file__).parent.rglob("*.py")
               for node in ast.walk(ast.parse(file.read_text()))
               if isinstance(node, ast.ImportFrom) and node.module == "metalearn.data.loading"
               for alias in node.names if alias.name.startswith("_")]
    assert not private, private
