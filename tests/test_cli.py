"""The ``metalearn`` command line (``metalearn.cli.main``), in-process with captured output and, for the
exit-code / traceback contract, as a subprocess: one-line errors that write nothing to the KB, the
meta-feature JSON, kb info / export / import, recommend, optimize + resume, kb build.

Every command gets ``--kb`` inside tmp_path (the user's default KB is never used). KBs that must start
empty are created with ``kb.open_kb`` (never seeded from the shipped snapshot), and assertions compare
counts before / after, so they hold whether or not a shipped snapshot exists."""

from __future__ import annotations

import gc
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli

from metalearn.kb import open_kb
from metalearn.metalearning.metafeatures import EXTRACTOR_VERSION, metafeature_names
from metalearn.offline.build import BuildSettings, DatasetSource, build_kb

REPO = Path(__file__).resolve().parents[1]
KB_DATASETS = ("iris", "breast_cancer")  # the small KB: multiclass + binary, sklearn-bundled (no corpus)


def kb_stats(path: Path) -> dict[str, Any]:
    kb = open_kb(path, read_only=True)
    try:
        return kb.stats()
    finally:
        kb.close()


def empty_kb(path: Path) -> Path:
    """A KB file with no records (created directly, so never seeded from a shipped snapshot)."""
    open_kb(path).close()
    assert kb_stats(path)["datasets"] == 0
    return path


@pytest.fixture(scope="module")
def small_kb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real KB: meta-features and a 3-configuration dense matrix on iris and breast_cancer."""
    path = tmp_path_factory.mktemp("cli-kb") / "kb.duckdb"
    kb = open_kb(path)
    report = build_kb(kb, [DatasetSource(f"sklearn:{n}") for n in KB_DATASETS],
                      BuildSettings(n_configs=3, n_explore=0, max_rows=200, n_folds=2, trial_time_limit=20.0))
    assert report.skipped == [] and report.datasets == len(KB_DATASETS) and report.failures == 0
    kb.close()
    return path


@pytest.fixture()
def kb_copy(small_kb: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "kb.duckdb"
    shutil.copy(small_kb, dst)
    return dst


# ------------------------------------------------------------------------------------------ bad input
def _frame(n: int = 20, **cols: Any) -> pd.DataFrame:
    a = np.arange(n)
    base = {"a": a, "b": a * 1.5, "y": a % 2}
    base.update(cols)
    return pd.DataFrame(base)


def _write_csv(df: pd.DataFrame) -> Callable[[Path], object]:
    return lambda p: df.to_csv(p, index=False)


def _write_text(text: str) -> Callable[[Path], object]:
    return lambda p: p.write_text(text)


def _inf_b() -> np.ndarray:
    b = np.arange(20) * 1.5
    b[3] = np.inf
    return b


BAD_INPUTS: list[tuple[str, str, Callable[[Path], object] | None, list[str], tuple[str, ...]]] = [
    # (id, file name, writer (None: not created), extra args, substrings the error must contain)
    ("missing-file", "no_such_file.csv", None, ["-t", "y"], ("no_such_file.csv", "existing file")),
    ("unknown-target", "data.csv", _write_csv(_frame()), ["-t", "nope"], ("'nope'", "not found", "'y'")),
    ("empty-csv", "empty.csv", _write_text(""), ["-t", "y"], ("empty.csv", "empty")),
    ("header-only", "header.csv", _write_text("a,b,y\n"), ["-t", "y"], ("no rows",)),
    ("single-class", "single.csv", _write_csv(_frame(y=["x"] * 20)), ["-t", "y"], ("single value", "'x'", "at least two classes")),
    ("inf-values", "inf.csv", _write_csv(_frame(b=_inf_b())), ["-t", "y"], ("infinite", "'b'")),
    ("all-nan-column", "nan.csv", _write_csv(_frame(b=[np.nan] * 20)), ["-t", "y"], ("no values", "'b'")),
    ("duplicate-columns", "dup.csv",
     _write_text("a,a,y\n" + "".join(f"{i},{2 * i},{i % 2}\n" for i in range(20))), ["-t", "y"],
     ("duplicate column names", "'a'")),
    ("malformed-arff", "bad.arff",
     _write_text("@relation x\n@attribute a numeric\n@attribute y {p,q\n@data\n1,p\n"), ["-t", "y"],
     ("ARFF", "bad.arff")),
    ("binary-arff", "binary.arff", lambda p: p.write_bytes(b"\x00\x01\x02\xff\xfe garbage"), ["-t", "y"],
     ("ARFF", "binary.arff")),
    ("markup-in-name", "x[/b]y.csv", None, ["-t", "y"], ("x[/b]y.csv",)),  # printed as text, not markup
]


def _assert_one_line_error(code: int, out: str, err: str, expected: tuple[str, ...]) -> None:
    assert code != 0
    assert "Traceback" not in out + err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    for text in expected:
        assert text in lines[0], (text, lines[0])
    assert out == ""


@pytest.mark.parametrize(("name", "writer", "args", "expected"),
                         [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_is_a_one_line_error_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str, writer: Callable[[Path], object] | None,
    args: list[str], expected: tuple[str, ...],
) -> None:
    data = tmp_path / name
    if writer is not None:
        writer(data)
    kb_path = empty_kb(tmp_path / "kb.duckdb")
    before = kb_stats(kb_path)
    # optimize writes to the KB: nothing is written, and a KB that does not exist is not created
    _assert_one_line_error(*run_cli(capsys, "optimize", data, *args, "--trials", "1", "--kb", kb_path), expected)
    assert kb_stats(kb_path) == before
    fresh = tmp_path / "fresh" / "kb.duckdb"
    _assert_one_line_error(*run_cli(capsys, "optimize", data, *args, "--trials", "1", "--kb", fresh), expected)
    _assert_one_line_error(*run_cli(capsys, "recommend", data, *args, "--kb", fresh), expected)
    assert not fresh.exists()
    _assert_one_line_error(*run_cli(capsys, "metafeatures", data, *args), expected)


def test_bad_input_exit_code_and_no_traceback_in_a_subprocess(tmp_path: Path) -> None:
    _write_csv(_frame(b=_inf_b()))(tmp_path / "inf.csv")
    kb_path = tmp_path / "kb.duckdb"
    proc = subprocess.run(
        [sys.executable, "-m", "metalearn.cli", "optimize", str(tmp_path / "inf.csv"), "-t", "y", "--kb", str(kb_path)],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert proc.returncode == 2
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: 'inf' has infinite values or values beyond ±3.4e+38 (float32's range, in which tree models compute) "
        "in feature(s) 'b'; replace them (e.g. by NaN or a smaller number, or their logarithm)"
    ]
    assert not kb_path.exists()


def test_usage_errors_are_reported_without_traceback(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for argv, named in ((["optimize", "sklearn:iris", "--trials", "0"], "'--trials'"),
                        # SearchSettings validates the search options; the CLI names the flag
                        (["optimize", "sklearn:iris", "--n-warm", "-1"], "'--n-warm'"),
                        (["optimize", "sklearn:iris", "--strategy", "nope"], "'--strategy'"),
                        (["optimize", "sklearn:iris", "--optimizer", "random", "--multi-fidelity"],
                         "'--multi-fidelity'"),
                        (["no-such-command"], "'no-such-command'"),
                        (["optimize"], "'data'")):
        code, out, err = run_cli(capsys, *argv, *(["--kb", tmp_path / "kb.duckdb"] if len(argv) > 1 else []))
        assert code == 2, (argv, err)
        assert "Traceback" not in out + err and "unexpected" not in err
        assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err  # one line, as other errors
        assert err.count(named) == 1, err
    assert not (tmp_path / "kb.duckdb").exists()
    code, out, err = run_cli(capsys, "kb")  # no sub-command: the help, and a usage exit code
    assert code == 2 and "Usage:" in out + err and "error" not in (out + err).lower()


def test_interrupted_command_says_how_to_resume(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import metalearn.offline.build

    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "manifest.csv").write_text(
        'name,kind,targets,file\nd,binary,"[""y""]",data/d.parquet\n')

    def ctrl_c(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(metalearn.offline.build, "build_kb", ctrl_c)
    code, out, err = run_cli(capsys, "kb", "build", "--corpus", tmp_path / "corpus", "--kb", tmp_path / "kb.duckdb")
    assert code == 130 and "Traceback" not in out + err
    assert "run the same command again to resume" in err


# ------------------------------------------------------------------------------------------ commands
def test_metafeatures_json_is_a_fixed_length_vector(capsys: pytest.CaptureFixture[str]) -> None:
    vectors = {}
    for name in ("iris", "diabetes"):  # a classification and a regression dataset: the same schema
        code, out, err = run_cli(capsys, "metafeatures", f"sklearn:{name}", "--json")
        assert code == 0, err
        doc = json.loads(out)
        assert doc["dataset"] == name and doc["version"] == EXTRACTOR_VERSION
        assert doc["kind"] == {"iris": "multiclass", "diabetes": "regression"}[name]
        assert list(doc["metafeatures"]) == list(metafeature_names())
        assert all(v is None or isinstance(v, int | float) for v in doc["metafeatures"].values())
        vectors[name] = doc["metafeatures"]
        # every missing value is listed with why: the other kinds' groups for what the data lacks
        missing = doc["not_computable"]
        assert set(missing) == {k for k, v in doc["metafeatures"].items() if v is None or v != v}
        if name == "iris":  # no numeric target: the regression block is not defined for it
            assert missing["reg.lm_linear_r2"].endswith("defined for a numeric target")
            assert missing["label.cardinality"] == "defined for 0/1 (binary or multi-label) targets"
            assert not any(k.startswith("mfe.") for k in missing)  # pymfe's measures need a class target: it has one
        else:  # no class target: pymfe's measures, not the regression block
            assert missing["mfe.one_nn.mean"] == "pymfe's measures: defined for a class target"
            assert not any(k.startswith("reg.") for k in missing)
    # values describe the data: iris is 150 x 4 multiclass, diabetes 442 x 10 regression
    assert vectors["iris"]["log_n_rows"] == pytest.approx(np.log(150))
    assert vectors["iris"]["log_n_features"] == pytest.approx(np.log(4))
    assert vectors["diabetes"]["log_n_rows"] == pytest.approx(np.log(442))
    assert (vectors["iris"]["is_multiclass"], vectors["diabetes"]["is_regression"]) == (1.0, 1.0)
    # deterministic for a seed
    code, out, _ = run_cli(capsys, "metafeatures", "sklearn:iris", "--json")
    assert code == 0 and json.loads(out)["metafeatures"] == vectors["iris"]
    # the table's last line says how many have no value and why, per group (it said "(28 not computable)")
    code, out, err = run_cli(capsys, "metafeatures", "sklearn:iris")
    text = " ".join((out + err).split())
    n_missing = sum(v is None or v != v for v in vectors["iris"].values())
    assert code == 0 and f"{n_missing} not computable" in text
    assert "16 regression meta-features: defined for a numeric target (reg.target_skewness" in text


def test_kb_info_export_import_round_trip(capsys: pytest.CaptureFixture[str], kb_copy: Path, tmp_path: Path) -> None:
    code, out, err = run_cli(capsys, "kb", "info", "--json", "--kb", kb_copy)
    assert code == 0, err
    info = json.loads(out)
    assert info["path"] == str(kb_copy)
    assert info["datasets"] == len(KB_DATASETS) and info["datasets_by_kind"] == {"binary": 1, "multiclass": 1}
    assert info["runs"] == 6 and info["runs_ok"] == 6 and info["metafeature_vectors"] == 2
    assert {k: v for k, v in info.items() if k != "path"} == kb_stats(kb_copy)

    snap = tmp_path / "snap"
    code, out, err = run_cli(capsys, "kb", "export", snap, "--kb", kb_copy)
    assert code == 0, err
    assert (snap / "snapshot.json").is_file()
    fresh = empty_kb(tmp_path / "fresh.duckdb")
    code, out, err = run_cli(capsys, "kb", "import", snap, "--kb", fresh)
    assert code == 0, err
    code, out, err = run_cli(capsys, "kb", "info", "--json", "--kb", fresh)
    assert code == 0, err
    imported = json.loads(out)
    assert {k: v for k, v in imported.items() if k != "path"} == {k: v for k, v in info.items() if k != "path"}
    # importing again keeps what is there and adds nothing
    assert run_cli(capsys, "kb", "import", snap, "--kb", fresh)[0] == 0
    assert kb_stats(fresh) == kb_stats(kb_copy)
    # a directory that is not a snapshot: one-line error, nothing imported
    code, out, err = run_cli(capsys, "kb", "import", tmp_path / "nowhere", "--kb", fresh)
    assert code != 0 and "Traceback" not in out + err and err.startswith("error: ") and "nowhere" in err
    assert kb_stats(fresh) == kb_stats(kb_copy)
    # into a --kb file that does not exist yet: a restore, the snapshot alone (it was seeded with the shipped KB
    # first, whose datasets then kept the snapshot's out)
    code, out, err = run_cli(capsys, "kb", "import", snap, "--kb", tmp_path / "restored.duckdb")
    assert code == 0, err
    assert kb_stats(tmp_path / "restored.duckdb") == kb_stats(kb_copy)


def test_kb_build_refuses_an_empty_dataset_list_and_unknown_kinds(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "built.duckdb"
    for argv, words in (
        (["--datasets", ""], ("--datasets is empty",)),  # an unset shell variable meant all 263 datasets
        (["--datasets", " , "], ("--datasets is empty",)),
        (["--kinds", "bogus"], ("--kinds", "'bogus' is not a task kind", "multiclass")),
        (["--datasets", "haberman", "--trial-time-limit", "0"], ("--trial-time-limit must be a positive",)),
    ):
        _assert_one_line_error(*run_cli(capsys, "kb", "build", "--kb", target, *argv), words)
        assert not target.exists()  # refused before the file is made


def test_recommend_uses_the_other_datasets_of_the_kb(capsys: pytest.CaptureFixture[str], kb_copy: Path) -> None:
    before = kb_stats(kb_copy)
    code, out, err = run_cli(capsys, "recommend", "sklearn:wine", "--json", "--k", "3", "--kb", kb_copy)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["dataset"] == "wine" and doc["kind"] == "multiclass"
    recs = doc["recommendations"]
    assert 1 <= len(recs) <= 3
    assert [r["rank"] for r in recs] == list(range(1, len(recs) + 1))
    kb = open_kb(kb_copy, read_only=True)
    try:
        iris = kb.find_datasets(name="iris")[0]
        tried = {r.config_id for r in kb.list_runs(dataset_id=iris.dataset_id)}
    finally:
        kb.close()
    for r in recs:
        assert r["space"] == "multiclass" and r["config_id"] in tried
        assert {s["name"] for s in r["sources"]} <= {"iris"}  # only the multiclass KB dataset
    assert kb_stats(kb_copy) == before  # recommending writes nothing


def test_optimize_then_the_same_command_resumes(capsys: pytest.CaptureFixture[str], kb_copy: Path) -> None:
    before = kb_stats(kb_copy)
    args = ["optimize", "sklearn:iris", "--trials", "3", "--trial-time-limit", "20", "--folds", "3",
            "--kb", kb_copy, "--json"]
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    first = json.loads(out)
    assert first["n_trials"] == 3 and first["n_resumed"] == 0 and first["n_new"] == 3
    assert first["dataset"]["name"] == "iris" and first["best"]["config_id"]
    assert kb_stats(kb_copy)["runs"] == before["runs"] + 3

    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    second = json.loads(out)
    assert second["n_resumed"] == 3 and second["n_new"] == 0 and second["n_trials"] == 3
    assert {t["config_id"] for t in second["trials"]} == {t["config_id"] for t in first["trials"]}
    assert second["best"] == first["best"]
    assert kb_stats(kb_copy)["runs"] == before["runs"] + 3


# ------------------------------------------------------------------------------------------ kb build
@pytest.mark.corpus
def test_kb_build_from_a_suite_in_a_corpus_dir(
    capsys: pytest.CaptureFixture[str], corpus_dir: Path, suites_dir: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("METALEARN_SUITES", str(suites_dir))
    suite = pd.read_csv(suites_dir / "openml_cc18.csv")
    manifest = pd.read_csv(corpus_dir / "manifest.csv").set_index("name")
    corpus = tmp_path / "corpus"
    (corpus / "data").mkdir(parents=True)
    rows = []
    for name, copy_of, did in (("cc_one", "lupus", int(suite["did"][0])), ("cc_two", "analcatdata_aids", None),
                               ("cc_broken", "lupus", int(suite["did"][2]))):
        row = {**manifest.loc[copy_of].to_dict(), "name": name, "file": f"data/{name}.parquet", "openml_did": did}
        if name == "cc_broken":
            (corpus / row["file"]).write_text("not parquet")
        else:
            shutil.copy(corpus_dir / manifest.loc[copy_of, "file"], corpus / row["file"])
        rows.append(row)
    pd.DataFrame(rows).to_csv(corpus / "manifest.csv", index=False)

    kb_path = empty_kb(tmp_path / "kb.duckdb")
    code, out, err = run_cli(capsys, "kb", "build", "--suite", "openml-cc18", "--corpus", corpus, "--kb", kb_path,
                             "--configs", "2", "--explore", "0", "--max-rows", "100", "--folds", "2",
                             "--trial-time-limit", "20", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["datasets"] == 1  # cc_one; cc_two is not in the suite, cc_broken fails to load
    assert [s["dataset"] for s in report["skipped"]] == ["corpus:cc_broken"]
    assert report["evaluations_new"] == report["evaluations_done"] == 2
    assert f"{len(suite) - 2} suite datasets not found locally" in err
    assert "Traceback" not in err
    assert [d.name for d in open_kb(kb_path, read_only=True).list_datasets()] == ["cc_one"]
    gc.collect()

    before = kb_stats(kb_path)
    code, out, err = run_cli(capsys, "kb", "build", "--corpus", corpus, "--datasets", "cc_one,nope", "--kb", kb_path)
    _assert_one_line_error(code, out, err, ("unknown datasets", "nope"))
    code, out, err = run_cli(capsys, "kb", "build", "--kb", kb_path)
    _assert_one_line_error(code, out, err, ("--corpus",))
    code, out, err = run_cli(capsys, "kb", "build", "--corpus", tmp_path / "no_corpus", "--kb", kb_path)
    _assert_one_line_error(code, out, err, ("no_corpus", "manifest.csv"))
    assert kb_stats(kb_path) == before


def test_metafeatures_and_recommend_say_each_targets_kind_and_why(
    capsys: pytest.CaptureFixture[str], kb_copy: Path, tmp_path: Path
) -> None:
    """Issue 17: the inferred kind of every target and why, in the text and the JSON of both commands."""
    rng = np.random.default_rng(0)
    n = 80
    data = tmp_path / "mixed.csv"
    pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n),
                  "label": np.where(rng.normal(size=n) > 0, "yes", "no"),
                  "amount": rng.normal(size=n)}).to_csv(data, index=False)
    for command in (["metafeatures"], ["recommend", "--k", "2"]):
        args = [*command, data, "-t", "label", "-t", "amount", "--kb", kb_copy]
        code, out, err = run_cli(capsys, *args)
        assert code == 0, err
        lines = (out + err).splitlines()
        label = next(ln for ln in lines if ln.startswith("target 'label' (t0): binary - "))
        amount = next(ln for ln in lines if ln.startswith("target 'amount' (t1): regression - "))
        assert "2 distinct label(s)" in label and "non-integer" in amount
        code, out, err = run_cli(capsys, *args, "--json")
        assert code == 0, err
        doc = json.loads(out)
        assert doc["kind"] == "multitask"
        assert [(t["name"], t["kind"]) for t in doc["targets"]] == [("label", "binary"), ("amount", "regression")]
        assert all(t["reason"] for t in doc["targets"])


@pytest.mark.corpus
def test_many_targets_of_one_kind_and_reason_are_reported_on_one_line(
    capsys: pytest.CaptureFixture[str], load_corpus: Any, tmp_path: Path
) -> None:
    """QA: the 53 labels of the multi-label corpus dataset enron took 53 "target ..." lines before anything else.
    Targets sharing their kind and reason are one line where there are many of them; a few keep a line each (a
    numeric target beside enron's labels, whose multitask metric prefix t<i> each name still carries); --json
    lists every target."""
    ds = load_corpus("enron")
    labels = list(ds.task.targets)
    assert len(labels) == 53
    kb = tmp_path / "kb.duckdb"  # (read only: metafeatures never creates it)
    code, out, err = run_cli(capsys, "metafeatures", "corpus:enron", "--kb", kb)
    assert code == 0, err
    report = [ln for ln in (out + err).splitlines() if ln.startswith(("target ", "53 targets"))]
    assert report == ["53 targets ('A.A1', 'A.A2', 'A.A3', ... and 50 more): binary - listed by the corpus manifest "
                      "as multilabel, checked against the data"]
    code, out, err = run_cli(capsys, "metafeatures", "corpus:enron", "--kb", kb, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert [t["name"] for t in doc["targets"]] == labels and all(t["kind"] == "binary" for t in doc["targets"])

    data = ds.X.iloc[:, :40].copy()
    data["words"] = ds.X.sum(axis=1) / 10.0 + 0.5  # a numeric target first, the labels after it: multitask
    data = data.join(ds.y.astype(int))
    data.to_csv(tmp_path / "enron.csv", index=False)
    targets = [a for name in ["words", *labels] for a in ("-t", name)]
    code, out, err = run_cli(capsys, "metafeatures", tmp_path / "enron.csv", *targets, "--kb", kb)
    assert code == 0, err
    lines = err.splitlines()  # (the report is on stderr, the table on stdout)
    assert lines[0] == "target 'words' (t0): regression - numbers with non-integer values", lines[:3]
    assert lines[1] == "53 targets ('A.A1' (t1), 'A.A2' (t2), 'A.A3' (t3), ... and 50 more): binary - two distinct values (0, 1)"
    assert not [ln for ln in lines[2:] if ln.startswith("target ")]


def test_metafeatures_labels_log_scaled_values_and_shows_them_raw(capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 5: transformed values are labelled, with their raw value beside them."""
    from metalearn.metalearning.metafeatures import SIGNED_LOG_FEATURES

    code, out, err = run_cli(capsys, "metafeatures", "sklearn:iris", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert set(doc["transforms"]) == {"log_n_rows", "log_n_features", *SIGNED_LOG_FEATURES}
    assert doc["transforms"]["log_n_rows"] == "ln" and doc["transforms"]["max_cat_levels"] == "slog1p"
    assert doc["raw"]["log_n_rows"] == 150 and doc["raw"]["log_n_features"] == 4
    kurt = doc["metafeatures"]["mfe.kurtosis.sd"]
    assert doc["raw"]["mfe.kurtosis.sd"] == pytest.approx(np.sign(kurt) * np.expm1(abs(kurt)))
    code, out, err = run_cli(capsys, "metafeatures", "sklearn:iris")
    assert code == 0, err
    assert "transform" in out and "raw" in out
    row = next(ln for ln in out.splitlines() if " log_n_rows " in ln)
    assert "ln" in row and "150" in row
    row = next(ln for ln in out.splitlines() if " max_cat_levels " in ln)
    assert "slog1p" in row


def test_every_command_of_the_readme_cli_table_takes_kb(
    capsys: pytest.CaptureFixture[str], kb_copy: Path, tmp_path: Path
) -> None:
    """Issue 16: README says every command takes --kb; metafeatures reads the KB's stored vector."""
    import re

    import typer.main

    from metalearn.cli import app

    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("## CLI reference"):readme.index("## How it works")]
    commands = {tuple(m.group(1).split())
                for m in re.finditer(r"^\| `metalearn ((?:kb |models )?[a-z-]+)", table, re.M)}
    commands |= {("kb", "import")}  # "kb export DIR / kb import DIR" share a row
    # models commands that share a row
    commands |= {("models", "show"), ("models", "rollback"), ("models", "delete")}
    assert "All commands but `leaderboard` (which reads a search's `summary.json` only) take `--kb PATH`" in readme
    commands -= {("leaderboard",)}
    assert ("metafeatures",) in commands and ("kb", "build") in commands and len(commands) >= 11
    root = typer.main.get_command(app)
    for words in commands:
        command: Any = root
        for word in words:
            command = command.commands[word]
        assert "--kb" in {opt for p in command.params for opt in p.opts}, words

    # the KB file holds iris' vector: metafeatures shows it (cached) instead of extracting it again
    code, out, err = run_cli(capsys, "metafeatures", "sklearn:iris", "--json", "--kb", kb_copy)
    assert code == 0, err
    cached = json.loads(out)
    assert cached["cached"] is True
    kb = open_kb(kb_copy, read_only=True)
    try:
        stored = kb.get_metafeatures(cached["dataset_id"], EXTRACTOR_VERSION).values
    finally:
        kb.close()
    assert cached["metafeatures"] == {k: None if np.isnan(v) else pytest.approx(v) for k, v in stored.items()}
    before = kb_stats(kb_copy)
    code, out, err = run_cli(capsys, "metafeatures", "sklearn:wine", "--json", "--kb", kb_copy)
    assert code == 0 and json.loads(out)["cached"] is False
    assert kb_stats(kb_copy) == before  # read only: nothing written
    missing = tmp_path / "missing.duckdb"
    code, out, err = run_cli(capsys, "metafeatures", "sklearn:wine", "--json", "--kb", missing)
    assert code == 0 and json.loads(out)["cached"] is False and not missing.exists()


# ------------------------------------------------------------------------------- optimize (issue 14)
@pytest.mark.parametrize("metric", ["bogus_metric", "rmse"])
def test_optimize_and_recommend_refuse_a_bad_metric_before_writing(
    capsys: pytest.CaptureFixture[str], kb_copy: Path, tmp_path: Path, metric: str
) -> None:
    """An unknown metric, or one of another kind (rmse on a classification task), is a one-line error
    before the KB gains the dataset, its meta-features or a search (item 6)."""
    before = kb_stats(kb_copy)
    for argv in (["optimize", "sklearn:iris", "--trials", "1"], ["recommend", "sklearn:iris"]):
        code, out, err = run_cli(capsys, *argv, "--metric", metric, "--kb", kb_copy)
        _assert_one_line_error(code, out, err, (repr(metric),))
        assert code == 2
        assert kb_stats(kb_copy) == before
    fresh = tmp_path / "fresh" / "kb.duckdb"
    _assert_one_line_error(*run_cli(capsys, "optimize", "sklearn:iris", "--metric", metric, "--kb", fresh),
                           (repr(metric),))
    assert not fresh.exists()


@pytest.mark.corpus
def test_optimize_multi_fidelity_ends_at_full_budget_writes_the_model_and_resumes(
    capsys: pytest.CaptureFixture[str], corpus_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """10 multi-fidelity trials used to evaluate only budgets 1/9 and 1/3: best nan, 'model and summary
    written' without a model, exit 0, and a re-run evaluated them again (item 1)."""
    monkeypatch.setenv("METALEARN_CORPUS", str(corpus_dir))
    kb_path = empty_kb(tmp_path / "kb.duckdb")
    args = ["optimize", "corpus:prnn_synth", "--trials", "10", "--multi-fidelity", "--folds", "3",
            "--no-warm-start", "--trial-time-limit", "30", "--kb", kb_path]
    code, out, err = run_cli(capsys, *args, "--out", tmp_path / "run")
    assert code == 0, err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert (tmp_path / "run" / "model.skops").is_file()
    assert summary["best"]["score"] is not None and summary["trials"][-1]["budget"] == 1.0
    assert f"best roc_auc = {summary['best']['score']:.4g} after 10 trials (0 resumed" in out
    assert f"model and summary written to {tmp_path / 'run'}" in out
    runs = kb_stats(kb_path)["runs"]
    assert runs == 10

    code, out, err = run_cli(capsys, *args, "--json")
    assert code == 0, err
    again = json.loads(out)
    assert (again["n_resumed"], again["n_new"]) == (10, 0) and again["best"] == summary["best"]
    assert kb_stats(kb_path)["runs"] == runs


def test_optimize_without_a_successful_trial_exits_non_zero_without_a_model(
    capsys: pytest.CaptureFixture[str], kb_copy: Path, tmp_path: Path
) -> None:
    code, out, err = run_cli(capsys, "optimize", "sklearn:iris", "--trials", "2", "--no-warm-start",
                             "--trial-time-limit", "0.001", "--kb", kb_copy, "--out", tmp_path / "run")
    assert code == 1
    assert "best log_loss = nan" in out and "model and summary written" not in out
    assert f"summary (no model) written to {tmp_path / 'run'}" in out
    assert "error: no configuration succeeded in 2 trials (2 failed); no model was written" in err
    assert not (tmp_path / "run" / "model.skops").exists()
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["model"]["refit"] is False
    code, out, err = run_cli(capsys, "leaderboard", tmp_path / "run")  # it printed a header and nothing else
    assert code == 0 and out.strip() == "no pipeline was scored in this search (2 trial(s) failed: see summary.json's trials)"


def test_optimize_reports_the_whole_job_time(
    capsys: pytest.CaptureFixture[str], kb_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The printed time and summary seconds include loading the data (item 4): a loader made 2 s slower
    shows in both."""
    import time

    import metalearn.data.loading as loading

    real = loading.load_dataset

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(2.0)
        return real(*args, **kwargs)

    monkeypatch.setattr(loading, "load_dataset", slow)
    args = ["optimize", "sklearn:iris", "--trials", "1", "--no-warm-start", "--folds", "3", "--kb", kb_copy]
    code, out, err = run_cli(capsys, *args, "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["timings"]["before"] >= 2.0
    assert summary["seconds"] >= 2.0 + summary["timings"]["search"]
    assert summary["seconds"] >= sum(summary["timings"].values()) - 0.01
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    seconds = float(out.split(" s\n")[0].rsplit(" in ", 1)[1])
    assert seconds >= 2.0


def test_optimize_with_a_time_limit_and_no_trial_count_searches_until_the_limit(kb_copy: Path, tmp_path: Path) -> None:
    """``--time-limit`` without ``--trials``: the clock ends the search (not a default trial count), and
    the status lines count trials against the seconds used of the limit."""
    proc = subprocess.run(
        [sys.executable, "-m", "metalearn.cli", "optimize", "sklearn:iris", "--time-limit", "12", "--no-warm-start",
         "--folds", "3", "--workers", "1", "--kb", str(kb_copy), "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300, cwd=REPO, env=os.environ.copy(),
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["stopped_by"] == "time_limit" and summary["settings"]["n_trials"] is None, summary["settings"]
    assert "(stopped by the time limit)" in proc.stdout, proc.stdout
    counts = [re.search(r": (\d+) trials in (\d+) s of 12, best log_loss=", ln) for ln in proc.stderr.splitlines()]
    assert [m for m in counts if m] and all(int(m[2]) <= 14 for m in counts if m), proc.stderr


def test_optimize_off_a_terminal_prints_status_lines_and_unwrapped_text(kb_copy: Path, tmp_path: Path) -> None:
    """With stdout/stderr pipes: status lines while it works, the last trial's at the end, nothing cut at
    80 columns, the configuration JSON on one line; each target's kind with its reason (item 15)."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "FORCE_COLOR", "TERM")}
    proc = subprocess.run(
        [sys.executable, "-m", "metalearn.cli", "optimize", "sklearn:iris", "--trials", "3", "--no-warm-start",
         "--folds", "3", "--trial-time-limit", "30", "--kb", str(kb_copy), "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300, cwd=REPO, env=env,
    )
    assert proc.returncode == 0, proc.stderr
    err_lines = proc.stderr.splitlines()
    assert "…" not in proc.stdout + proc.stderr and "━" not in proc.stderr
    assert err_lines[0].startswith("target 'target': multiclass - "), err_lines
    status = [ln for ln in err_lines if ln.startswith("[")]
    assert [ln.split(": ", 1)[1] for ln in status[:2]] == ["meta-features", "searching"], status
    assert any(": 3/3 trials, best log_loss=" in ln and "| #3 " in ln for ln in status), status
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    refits = [ln.split(": ", 1)[1] for ln in status if ": refitting " in ln]
    members = summary["ensemble"]["members"] if summary["ensemble"]["used"] else []
    assert refits == ["refitting the best pipeline on all data"] + (
        [f"refitting the ensemble's {len(members)} members on all data"] if members else []
    ), status
    assert status[-1].endswith(refits[-1])
    out_lines = proc.stdout.splitlines()
    config = [ln for ln in out_lines if ln.startswith("best configuration (")]
    assert len(config) == 1 and len(config[0]) > 80
    assert json.loads(config[0].split("): ", 1)[1]) == summary["best"]["values"]
    assert out_lines[0].startswith("best log_loss = ") and out_lines[0].endswith(f"in {summary['seconds']:.1f} s")
    assert summary["targets"][0]["reason"] and summary["targets"][0]["reason"] in err_lines[0]


def test_kb_evaluate_refuses_what_it_cannot_evaluate(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """--kind bogus was an 'unexpected ValueError', --strategies "" ran every strategy, and a kind without
    datasets printed only 'best strategy overall: hybrid' with exit 0."""
    kb_path = tmp_path / "kb.duckdb"
    for argv, says in ((["--kind", "bogus"], "--kind 'bogus' is not a task kind; use one of binary"),
                       (["--strategies", ""], "--strategies is empty"),
                       (["--kind", "multitask"], "holds no two multitask datasets with runs")):
        code, _out, err = run_cli(capsys, "kb", "evaluate", *argv, "--kb", kb_path)
        assert code == 2 and err.startswith("error: ") and says in err and "unexpected" not in err, err


def test_kb_info_counts_a_search_whose_process_is_gone_as_interrupted(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """kb info opens the KB read-only, so it never records a killed search as interrupted: it showed it running."""
    import subprocess
    import sys

    import psutil

    from metalearn.kb.owners import current_owner
    from metalearn.kb.records import DatasetRecord, SearchRecord

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    started = round(psutil.Process(proc.pid).create_time() * 1000)
    proc.kill()
    proc.wait(30)
    path = empty_kb(tmp_path / "kb.duckdb")
    with open_kb(path) as kb:
        kb.put_dataset(DatasetRecord("d1", "d", "binary", 10, 2))
        kb.put_search(SearchRecord("gone", "d1", "running", **{**current_owner(), "owner_pid": proc.pid,
                                                               "owner_started": started}))
        kb.put_search(SearchRecord("mine", "d1", "running", **current_owner()))  # alive: this process
    code, out, err = run_cli(capsys, "kb", "info", "--json", "--kb", path)
    assert code == 0, err
    assert json.loads(out)["searches_by_status"] == {"interrupted": 1, "running": 1}
    assert kb_stats(path)["searches_by_status"] == {"running": 2}  # read-only: nothing written
    code, out, err = run_cli(capsys, "kb", "info", "--kb", path)
    assert "1 search(es) counted as interrupted: their process is gone" in out


def test_timestamps_in_json_are_utc_as_the_http_apis_and_human_lines_say_utc(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """QA: `models show --json` printed the KB's naive UTC times as "2026-12-06T15:40:00.123456", the zone unknown,
    while GET /models/NAME gave "...Z"; the table printed "created 2026-12-06 15:40:00". Under a local zone far from
    UTC, so that treating a naive time as local would show."""
    import time as clock
    from datetime import UTC, datetime

    from fastapi.testclient import TestClient

    from metalearn.service.app import create_app
    from metalearn.service.settings import Settings

    path = empty_kb(tmp_path / "kb.duckdb")
    code, _out, err = run_cli(capsys, "optimize", "sklearn:diabetes", "--trials", "1", "--folds", "2", "--no-warm-start",
                              "--no-ensemble", "--workers", "1", "--register", "diab", "--kb", path, "--json")
    assert code == 0, err
    with open_kb(path, read_only=True) as kb:
        stored = kb.models.get_version("diab", 1).created_at  # naive, UTC
    assert stored.tzinfo is None
    before = os.environ.get("TZ")
    os.environ["TZ"] = "America/Los_Angeles"
    clock.tzset()
    try:
        code, out, err = run_cli(capsys, "models", "show", "diab", "--json", "--kb", path)
        assert code == 0, err
        shown = json.loads(out)
        code, text, err = run_cli(capsys, "models", "show", "diab", "--kb", path)
        assert code == 0, err
        code, drift, err = run_cli(capsys, "models", "drift", "diab", "--version", "1", "--kb", path)
        assert code == 0, err
    finally:
        if before is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = before
        clock.tzset()
    created = shown["versions"][0]["created_at"]
    assert datetime.fromisoformat(created).tzinfo is UTC and created.endswith("Z")
    assert datetime.fromisoformat(created) == stored.replace(tzinfo=UTC)  # the stored instant, not shifted
    assert all(datetime.fromisoformat(e["at"]).tzinfo is UTC for e in shown["events"])
    assert f"created {stored:%Y-%m-%d %H:%M:%S} UTC, " in text
    assert f"  #1 {shown['events'][0]['at'][:19].replace('T', ' ')} UTC register version 1" in text
    assert re.search(r"^model diab version 1: drift check at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$", drift, re.M), drift
    settings = Settings(_env_file=None, kb=str(path), api_keys=["k"], advisor_refresh_seconds=0,  # type: ignore[call-arg]
                        search_workers=1)
    with TestClient(create_app(settings)) as client:
        served = client.get("/models/diab").json()
    assert served["versions"][0]["created_at"] == created  # the CLI and the HTTP API print the same text
    assert [e["at"] for e in served["events"]] == [e["at"] for e in shown["events"]]
