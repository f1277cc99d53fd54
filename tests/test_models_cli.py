"""The registry on the command line (issue 13): ``optimize --register``, ``metalearn models ...`` and
``metalearn predict``, in-process through ``metalearn.cli.main`` like tests/test_cli.py.

Bad inputs (a bad name, an unknown model or version, a file with a missing / extra / mistyped column, a
tampered artifact, bad feedback) are one-line errors without a traceback that leave the registry as it
was; one test walks the whole path on a corpus dataset: register -> promote -> predict -> predict on
shifted data -> drift -> wrong feedback -> concept drift -> retrain -> promote -> rollback -> predict.

Every KB is created empty (never seeded from the shipped snapshot) inside tmp_path; searches are 2-3
trials on a few hundred rows with one worker.
"""

from __future__ import annotations

import gc
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli

from metalearn.cli import main
from metalearn.kb import open_kb

#: a quick search: 2 trials, 2 folds, one worker, no ensemble, no warm start (the KB is empty anyway)
QUICK = ["--trials", "2", "--folds", "2", "--workers", "1", "--no-ensemble", "--no-warm-start",
         "--trial-time-limit", "30"]


def assert_one_line_error(code: int, out: str, err: str, *expected: str) -> None:
    assert code != 0
    assert "Traceback" not in out + err
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("note: ")]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    for text in expected:
        assert text in lines[0], (text, lines[0])
    assert out == ""


def registry_state(kb_path: Path) -> dict[str, Any]:
    """Everything a command could change in the registry: versions, aliases, history, flags, log counts."""
    kb = open_kb(kb_path, read_only=True)
    try:
        store = kb.models
        state: dict[str, Any] = {}
        for name in store.list_models():
            state[name] = {
                "versions": [(v.version, v.variant, v.deleted, v.artifact_sha256)
                             for v in store.list_versions(name, include_deleted=True)],
                "aliases": store.aliases(name),
                "events": [(e.seq, e.action, e.version, e.alias) for e in store.events(name)],
                "flags": sorted((f.version, f.flag) for f in store.flags(name)),
                "counts": store.counts(name),
            }
        return state
    finally:
        kb.close()


def empty_kb(path: Path) -> Path:
    open_kb(path).close()
    return path


# ------------------------------------------------------------------------------------------ data
def breast_cancer_frame(n: int = 300) -> pd.DataFrame:
    """sklearn's breast_cancer (first ``n`` rows) plus a categorical column ``site`` (a, b, c)."""
    from sklearn.datasets import load_breast_cancer

    df = load_breast_cancer(as_frame=True).frame.head(n).copy()
    df.insert(0, "site", np.array(["a", "b", "c"])[np.arange(len(df)) % 3])
    return df


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A KB whose registry holds model ``bc`` version 1 (live), from `optimize bc.csv --register bc`."""
    root = tmp_path_factory.mktemp("models-cli")
    breast_cancer_frame().to_csv(root / "bc.csv", index=False)
    kb_path = empty_kb(root / "kb.duckdb")
    try:
        main(["optimize", str(root / "bc.csv"), "-t", "target", *QUICK, "--register", "bc", "--kb", str(kb_path)])
        main(["models", "promote", "bc", "1", "--kb", str(kb_path)])
    except SystemExit as exc:  # pragma: no cover - a failure here is reported by every test
        raise AssertionError(f"registering the fixture model failed: exit {exc.code}") from None
    gc.collect()
    return root


@pytest.fixture()
def reg(registered: Path, tmp_path: Path) -> Path:
    """A private copy of the registered KB, its artifacts and bc.csv; returns the directory."""
    shutil.copy(registered / "kb.duckdb", tmp_path / "kb.duckdb")
    shutil.copytree(registered / "kb.models", tmp_path / "kb.models")
    shutil.copy(registered / "bc.csv", tmp_path / "bc.csv")
    return tmp_path


# ------------------------------------------------------------------------------------------ optimize --register
def test_register_name_is_checked_before_the_search(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    breast_cancer_frame(60).to_csv(tmp_path / "bc.csv", index=False)
    fresh = tmp_path / "fresh" / "kb.duckdb"
    for bad in ("bad name", "../up", "-dash", "x" * 65):
        assert_one_line_error(*run_cli(capsys, "optimize", tmp_path / "bc.csv", "-t", "target", *QUICK,
                                       "--register", bad, "--kb", fresh), repr(bad), "not valid")
    assert not fresh.parent.exists()
    kb_path = empty_kb(tmp_path / "kb.duckdb")
    before = open_kb(kb_path, read_only=True).stats()
    gc.collect()
    code, out, err = run_cli(capsys, "optimize", tmp_path / "bc.csv", "-t", "target", *QUICK, "--register", "a b",
                             "--kb", kb_path)
    assert code == 2
    assert_one_line_error(code, out, err, "'a b'")
    assert open_kb(kb_path, read_only=True).stats() == before  # no dataset, no run, no search
    gc.collect()
    assert not (tmp_path / "kb.models").exists()


def test_register_without_a_model_says_so_and_registers_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    breast_cancer_frame(60).to_csv(tmp_path / "bc.csv", index=False)
    kb_path = empty_kb(tmp_path / "kb.duckdb")
    code, out, err = run_cli(capsys, "optimize", tmp_path / "bc.csv", "-t", "target", "--trials", "1", "--workers",
                             "1", "--no-warm-start", "--trial-time-limit", "0.001", "--register", "bc",
                             "--kb", kb_path)
    assert code == 1 and "Traceback" not in err
    assert "no model was written and nothing registered as 'bc'" in err
    assert "registered bc" not in out
    assert registry_state(kb_path) == {}


# ------------------------------------------------------------------------------------------ reading
def test_list_and_show(capsys: pytest.CaptureFixture[str], reg: Path) -> None:
    kb_path = reg / "kb.duckdb"
    code, out, err = run_cli(capsys, "models", "list", "--json", "--kb", kb_path)
    assert code == 0, err
    (model,) = json.loads(out)["models"]
    assert (model["name"], model["kind"], model["versions"], model["aliases"]) == ("bc", "binary", 1, {"live": 1})

    code, out, err = run_cli(capsys, "models", "show", "bc", "--kb", kb_path)
    assert code == 0, err
    assert "model bc: live -> version 1" in out and "flags: none" in out
    row = next(ln for ln in out.splitlines() if ln.startswith("  version 1 [live]: search, created "))
    assert "cv roc_auc 0." in row and "refit roc_auc " in row and " KiB skops, parent -, " in row
    assert "  #1 " in out and " register version 1" in out and " promote live version 1" in out
    code, out, err = run_cli(capsys, "models", "show", "bc", "--json", "--kb", kb_path)
    doc = json.loads(out)
    (v1,) = doc["versions"]
    assert v1["cv_score"] is not None and v1["artifact"]["bytes"] > 0 and v1["aliases"] == ["live"]
    assert [e["action"] for e in doc["events"]] == ["register", "promote"]

    # a KB file that does not exist holds no model, and is not created
    missing = reg / "none" / "kb.duckdb"
    code, out, err = run_cli(capsys, "models", "list", "--kb", missing)
    assert code == 0 and "no registered models" in out and not missing.parent.exists()
    assert_one_line_error(*run_cli(capsys, "models", "show", "bc", "--kb", missing), "no knowledge base")
    assert not missing.parent.exists()


# ------------------------------------------------------------------------------------------ predict
def test_predict_writes_ids_predictions_and_probabilities_and_logs_them(
    capsys: pytest.CaptureFixture[str], reg: Path
) -> None:
    kb_path = reg / "kb.duckdb"
    data = breast_cancer_frame(120).iloc[40:]  # with the target column: ignored with a note
    data.loc[data.index[:3], "site"] = "zz"  # a category never seen in training: a warning
    data.to_csv(reg / "new.csv", index=False)
    before = registry_state(kb_path)["bc"]["counts"]["predictions"]
    code, out, err = run_cli(capsys, "predict", "bc", reg / "new.csv", "--out", reg / "preds.csv", "--kb", kb_path)
    assert code == 0, err
    assert "note: target column(s) 'target' in the data ignored" in err
    assert "warning: column site: 1 category not seen in training (zz)" in err
    assert "bc version 1 (live): 80 rows predicted" in out and "80 logged" in out
    preds = pd.read_csv(reg / "preds.csv")
    assert list(preds.columns) == ["prediction_id", "model_version", "target", "target:proba:0", "target:proba:1"]
    assert len(preds) == 80 and preds["prediction_id"].is_unique and set(preds["model_version"]) == {1}
    assert np.allclose(preds["target:proba:0"] + preds["target:proba:1"], 1.0)
    assert set(preds["target"]) <= {0, 1}
    assert (preds["target"] == data["target"].to_numpy()).mean() > 0.8  # a real model
    state = registry_state(kb_path)["bc"]
    assert state["counts"]["predictions"] == before + 80
    kb = open_kb(kb_path, read_only=True)
    assert set(kb.models.get_predictions(list(preds["prediction_id"]))) == set(preds["prediction_id"])
    kb.close()

    # parquet out, --no-log: nothing logged; the same predictions
    code, out, err = run_cli(capsys, "predict", "bc", reg / "new.csv", "--out", reg / "p.parquet", "--no-log",
                             "--kb", kb_path)
    assert code == 0, err
    again = pd.read_parquet(reg / "p.parquet")
    assert again["target"].tolist() == preds["target"].tolist()
    assert registry_state(kb_path)["bc"]["counts"]["predictions"] == before + 80
    # no --out: CSV on stdout, the summary on stderr
    code, out, err = run_cli(capsys, "predict", "bc", reg / "new.csv", "--no-log", "--kb", kb_path)
    assert code == 0, err
    assert out.splitlines()[0] == "prediction_id,model_version,target,target:proba:0,target:proba:1"
    assert len(out.splitlines()) == 81 and "80 rows predicted" in err


# ------------------------------------------------------------------------------------------ bad inputs
def _files(d: Path) -> None:
    df = breast_cancer_frame(50).drop(columns=["target"])
    df.drop(columns=["mean radius"]).to_csv(d / "missing.csv", index=False)
    df.assign(extra=1.0).to_csv(d / "extra.csv", index=False)
    df.assign(**{"mean texture": ["abc"] + [1.0] * (len(df) - 1)}).to_csv(d / "mistyped.csv", index=False)
    df.to_csv(d / "ok.csv", index=False)
    pd.DataFrame({"prediction_id": ["x"], "label": [1]}).to_csv(d / "nolabel.csv", index=False)
    pd.DataFrame({"prediction_id": ["nope-1", "nope-2"], "target": [1, 0]}).to_csv(d / "unknown_ids.csv", index=False)
    (d / "twice.csv").write_text("prediction_id,target,target\nnope-1,benign,benign\n")  # a target column twice


BAD: list[tuple[str, list[str], tuple[str, ...]]] = [
    # (id, argv without --kb; {d} is the test's directory, expected substrings of the one error line)
    ("unknown-model", ["predict", "nope", "{d}/ok.csv"], ("'nope'", "not in the registry")),
    ("unknown-version", ["predict", "bc", "{d}/ok.csv", "--version", "9"], ("no version 9",)),
    ("missing-column", ["predict", "bc", "{d}/missing.csv"], ("missing column(s) mean radius",)),
    ("extra-column", ["predict", "bc", "{d}/extra.csv"], ("unknown column(s) extra",)),
    ("mistyped-column", ["predict", "bc", "{d}/mistyped.csv"], ("mistyped column(s) mean texture", "'abc'")),
    ("missing-file", ["predict", "bc", "{d}/no_such.csv"], ("no_such.csv",)),
    ("bad-out", ["predict", "bc", "{d}/ok.csv", "--out", "{d}/p.txt"], ("--out", "p.txt")),
    # an output that cannot be written fails before anything is predicted and logged (it failed after)
    ("out-under-a-file", ["predict", "bc", "{d}/ok.csv", "--out", "{d}/ok.csv/p.csv"], ("ok.csv' is a file, not a directory",)),
    ("report-under-a-file", ["models", "drift", "bc", "--report", "{d}/ok.csv/r.html"], ("is a file, not a directory",)),
    ("optimize-out-a-file", ["optimize", "{d}/bc.csv", "-t", "target", "--trials", "1", "--out", "{d}/ok.csv"],
     ("--out", "is a file: give a directory")),
    ("bad-name", ["predict", "a b", "{d}/ok.csv"], ("'a b'", "not valid")),
    ("show-unknown", ["models", "show", "nope"], ("'nope'",)),
    ("promote-unknown-version", ["models", "promote", "bc", "9"], ("no version 9",)),
    ("promote-bad-alias", ["models", "promote", "bc", "1", "--alias", "prod"], ("prod",)),
    ("rollback-nothing-earlier", ["models", "rollback", "bc"], ("no earlier live version",)),
    ("delete-live", ["models", "delete", "bc", "1"], ("is live",)),
    ("feedback-no-target-column", ["models", "feedback", "bc", "{d}/nolabel.csv"], ("lacks column(s) 'target'",)),
    ("feedback-unknown-ids", ["models", "feedback", "bc", "{d}/unknown_ids.csv"], ("not in the prediction log",)),
    # it said "unexpected ValueError: can only convert an array of size 1 to a Python scalar"
    ("feedback-target-twice", ["models", "feedback", "bc", "{d}/twice.csv"], ("'twice.csv' repeats column(s) target",)),
    ("drift-unknown", ["models", "drift", "nope"], ("'nope'",)),
    ("drift-bad-threshold", ["models", "drift", "bc", "--threshold", "psi=-1"], ("psi",)),
    ("compress-bad-method", ["models", "compress", "bc", "--method", "zip"], ("zip",)),
    ("retrain-unknown", ["models", "retrain", "nope", "--data", "{d}/bc.csv"], ("'nope'",)),
    ("retrain-no-data", ["models", "retrain", "bc"], ("--data FILE", "--feedback")),
    ("compress-other-target", ["models", "compress", "bc", "--data", "{d}/bc.csv", "-t", "mean area"],
     ("predicts ['target'] but the validation data's target(s) are ['mean area']",)),
    ("retrain-other-target", ["models", "retrain", "bc", "--data", "{d}/bc.csv", "-t", "mean area"],
     ("predicts ['target'] but the new data's target(s) are ['mean area']",)),
    ("register-other-target", ["optimize", "{d}/bc.csv", "-t", "mean area", "--trials", "1", "--register", "bc"],
     ("model 'bc' predicts 'target' (binary), this one 'mean area' (regression)",)),
    ("retrain-no-labels", ["models", "retrain", "bc", "--feedback"], ("no labelled predictions yet",)),
    ("retrain-feedback-target", ["models", "retrain", "bc", "--feedback", "-t", "mean area"], ("--feedback", "--target")),
    ("retrain-missing-column", ["models", "retrain", "bc", "--data", "{d}/missing.csv", "-t", "mean area"],
     ("mean area",)),
]


@pytest.mark.parametrize(("argv", "expected"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_input_is_a_one_line_error_and_leaves_the_registry_unchanged(
    capsys: pytest.CaptureFixture[str], reg: Path, argv: list[str], expected: tuple[str, ...]
) -> None:
    _files(reg)
    kb_path = reg / "kb.duckdb"
    before = registry_state(kb_path)
    code, out, err = run_cli(capsys, *[a.format(d=reg) for a in argv], "--kb", kb_path)
    assert code == 2, err
    assert_one_line_error(code, out, err, *expected)
    assert registry_state(kb_path) == before
    assert not (reg / "p.txt").exists()


def test_a_tampered_artifact_is_refused_with_one_line(capsys: pytest.CaptureFixture[str], reg: Path) -> None:
    _files(reg)
    kb_path = reg / "kb.duckdb"
    before = registry_state(kb_path)
    artifact = reg / "kb.models" / "bc" / "1" / "model.skops"
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))
    for argv in (["predict", "bc", reg / "ok.csv"], ["models", "promote", "bc", "1"],
                 ["models", "promote", "bc", "1", "--alias", "candidate"]):
        code, out, err = run_cli(capsys, *argv, "--kb", kb_path)
        assert code == 2
        assert_one_line_error(code, out, err, "version 1", "modified on disk")
    assert registry_state(kb_path) == before
    (reg / "kb.models" / "bc" / "1" / "reference.parquet").write_bytes(b"not parquet")
    assert_one_line_error(*run_cli(capsys, "models", "drift", "bc", "--kb", kb_path), "reference", "was modified")
    assert registry_state(kb_path) == before


def test_evaluate_scores_labelled_rows_and_ranks_the_features_without_changing_the_registry(
    capsys: pytest.CaptureFixture[str], reg: Path
) -> None:
    kb_path = reg / "kb.duckdb"
    before = registry_state(kb_path)
    held_out = breast_cancer_frame(569).iloc[300:].reset_index(drop=True)  # rows the model was not fit on
    held_out.loc[:4, "target"] = np.nan  # five rows without a label: skipped
    held_out.to_csv(reg / "test.csv", index=False)
    code, out, err = run_cli(capsys, "models", "evaluate", "bc", reg / "test.csv", "--importance", "--repeats", "3",
                             "--json", "--kb", kb_path)
    assert code == 0, err
    result = json.loads(out)
    assert result["version"] == 1 and result["metric"] == "roc_auc" and result["rows"] == 264
    assert result["unlabelled_rows"] == 5 and result["score"] == result["metrics"]["roc_auc"] > 0.9
    assert set(result["metrics"]) == {"roc_auc", "log_loss", "accuracy", "balanced_accuracy", "f1"}
    features = result["importance"]["features"]
    assert len(features) == 31 and result["importance"]["shuffle_sets"] == 3  # site + 30 measurements
    assert [f["importance"] for f in features] == sorted((f["importance"] for f in features), reverse=True)
    assert features[0]["importance"] > 0 and all(f["n"] == 3 for f in features)
    assert not any("trained on" in w for w in result["warnings"])  # held-out rows: no in-sample warning
    code, out, err = run_cli(capsys, "models", "evaluate", "bc", reg / "test.csv", "--kb", kb_path)
    assert code == 0 and "on 264 labelled rows (5 without a label skipped): roc_auc" in out and "importance" not in out
    # the version's own training file (bc.csv): the score is in-sample, and it says so (it read as a held-out score)
    code, out, err = run_cli(capsys, "models", "evaluate", "bc", reg / "bc.csv", "--json", "--kb", kb_path)
    assert code == 0, err
    seen = [w for w in json.loads(out)["warnings"] if "trained on" in w]
    assert seen and seen[0].startswith("300 of the 300 training rows kept with version 1 are among these rows"), seen
    mixed = pd.concat([breast_cancer_frame(569).iloc[300:340], breast_cancer_frame(20)], ignore_index=True)
    mixed.to_csv(reg / "mixed.csv", index=False)  # 20 training rows of 300 (7 %): below the 10 % share
    code, out, err = run_cli(capsys, "models", "evaluate", "bc", reg / "mixed.csv", "--json", "--kb", kb_path)
    assert code == 0 and not any("trained on" in w for w in json.loads(out)["warnings"]), out

    # bad input: one line, nothing changed
    breast_cancer_frame(50).drop(columns="target").to_csv(reg / "unlabelled.csv", index=False)
    for argv, words in (
        (["models", "evaluate", "bc", reg / "unlabelled.csv"], ("no column 'target'", "true value")),
        (["models", "evaluate", "bc", reg / "test.csv", "--metric", "rmse"], ("rmse", "not valid for a binary")),
        (["models", "evaluate", "nope", reg / "test.csv"], ("'nope'",)),
        (["models", "evaluate", "bc", reg / "test.csv", "--version", "7"], ("version 7",)),
        (["models", "evaluate", "bc"], ("labelled DATA", "--feedback")),
        (["models", "evaluate", "bc", reg / "test.csv", "--feedback"], ("not both",)),
        (["models", "evaluate", "bc", "--feedback"], ("no labelled predictions yet", "models feedback bc")),
    ):
        assert_one_line_error(*run_cli(capsys, *argv, "--kb", kb_path), *words)
    assert registry_state(kb_path) == before


def test_explain_says_how_much_each_feature_moved_the_prediction(capsys: pytest.CaptureFixture[str], reg: Path) -> None:
    kb_path = reg / "kb.duckdb"
    before = registry_state(kb_path)
    breast_cancer_frame(569).iloc[400:403].to_csv(reg / "rows.csv", index=False)  # the target column is ignored
    code, out, err = run_cli(capsys, "models", "explain", "bc", reg / "rows.csv", "--rows", "2", "--top", "3",
                             "--kb", kb_path)
    assert code == 0, err
    assert out.count("row 0: target = ") == 1 and out.count("row 1: target = ") == 1 and "row 2" not in out
    assert "(mean on the 16 background rows" in out and "(the other features)" in out
    code, out, err = run_cli(capsys, "models", "explain", "bc", reg / "rows.csv", "--json", "--permutations", "2",
                             "--kb", kb_path)
    assert code == 0, err
    result = json.loads(out)
    assert len(result["rows"]) == 3 and result["n_permutations"] == 2
    for outputs in (row["target"] for row in result["rows"]):
        for block in outputs.values():
            assert len(block["contributions"]) == 31 and block["others"] == 0.0  # --json: every feature
            assert block["base"] + sum(c["value"] for c in block["contributions"]) == pytest.approx(block["prediction"])
    assert_one_line_error(*run_cli(capsys, "models", "explain", "nope", reg / "rows.csv", "--kb", kb_path), "'nope'")
    assert registry_state(kb_path) == before


def test_compress_says_why_a_variant_is_not_made(capsys: pytest.CaptureFixture[str], reg: Path) -> None:
    """The fixture model is a single pipeline: pruning does not apply; the table says so, nothing is registered."""
    kb_path = reg / "kb.duckdb"
    before = registry_state(kb_path)
    code, out, err = run_cli(capsys, "models", "compress", "bc", "--method", "prune", "--kb", kb_path)
    assert code == 0, err
    assert "original" in out and "not made" in out and "single pipeline" in out.replace("\n", " ")
    assert "bc: no variant was registered" in out
    assert registry_state(kb_path) == before


def test_a_variant_shows_its_parents_cv_score_as_its_parents(capsys: pytest.CaptureFixture[str], reg: Path) -> None:
    """An ONNX variant is not cross-validated: `models show` gave its parent's CV score as its own."""
    kb_path = reg / "kb.duckdb"
    code, out, err = run_cli(capsys, "models", "compress", "bc", "--method", "onnx", "--kb", kb_path)
    assert code == 0 and "registered" in out, out + err
    code, out, err = run_cli(capsys, "models", "show", "bc", "--kb", kb_path)
    variant = next(line for line in out.splitlines() if ": onnx, created" in line)
    original = next(line for line in out.splitlines() if ": search, created" in line)
    assert "(version 1's: not cross-validated itself)" in variant and "not cross-validated" not in original


# ------------------------------------------------------------------------------------------ drift thresholds
@pytest.mark.parametrize(("value", "expected"), [
    ("{psi: 1", "METALEARN_DRIFT_THRESHOLDS is not JSON (Expecting property name enclosed in double quotes"),
    ("[0.2]", 'METALEARN_DRIFT_THRESHOLDS must be a JSON object of name -> value such as {"psi": 0.2}, got [0.2]'),
    ('{"psx": 0.2}', "METALEARN_DRIFT_THRESHOLDS: unknown drift threshold(s) 'psx'; valid names: "),
    ('{"min_rows": 2.5}', "METALEARN_DRIFT_THRESHOLDS: drift threshold min_rows must be an integer >= 2, got 2.5"),
])
def test_the_cli_and_the_service_refuse_a_bad_drift_thresholds_variable_alike(
    capsys: pytest.CaptureFixture[str], reg: Path, monkeypatch: pytest.MonkeyPatch, value: str, expected: str
) -> None:
    """The CLI parsed METALEARN_DRIFT_THRESHOLDS itself beside the service's settings: bad JSON was one line from
    `models drift` and a pydantic report of several lines ("Input should be a valid dictionary") from `serve`, and
    an unknown name or a bad value did not say where it came from. One parse now: the same line from both."""
    from metalearn.data.errors import InputError
    from metalearn.service.settings import Settings

    kb_path = reg / "kb.duckdb"
    before = registry_state(kb_path)
    monkeypatch.setenv("METALEARN_KB", str(kb_path))  # (serve sets it: restored after the test)
    monkeypatch.setenv("METALEARN_DRIFT_THRESHOLDS", value)
    code, out, err = run_cli(capsys, "models", "drift", "bc", "--kb", kb_path)
    assert_one_line_error(code, out, err, expected)
    with pytest.raises(InputError) as served:
        Settings(_env_file=None)  # type: ignore[call-arg]
    assert err.strip() == f"error: {served.value}"
    code, out, err_serve = run_cli(capsys, "serve", "--kb", kb_path)  # stops at start-up
    assert_one_line_error(code, out, err_serve, expected)
    assert err_serve == err
    assert registry_state(kb_path) == before


def test_the_cli_and_the_service_use_a_good_drift_thresholds_variable(
    capsys: pytest.CaptureFixture[str], reg: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient

    from metalearn.service.app import create_app
    from metalearn.service.settings import Settings

    kb_path = reg / "kb.duckdb"
    monkeypatch.setenv("METALEARN_DRIFT_THRESHOLDS", ' {"psi": 0.35, "min_rows": 7, "correction": "none"} ')

    def cli(*options: str) -> dict[str, Any]:
        code, out, err = run_cli(capsys, "models", "drift", "bc", *options, "--json", "--kb", kb_path)
        assert code == 0, err
        return json.loads(out)["data"]["thresholds"]

    used = cli()
    assert (used["psi"], used["min_rows"], used["correction"], used["drifted_share"]) == (0.35, 7, "none", 0.3)
    assert cli("--threshold", "psi=0.5") == {**used, "psi": 0.5}  # an option overrides the variable
    settings = Settings(_env_file=None, kb=str(kb_path))  # type: ignore[call-arg]
    assert settings.drift_thresholds == {"psi": 0.35, "min_rows": 7, "correction": "none"}
    with TestClient(create_app(settings)) as client:
        r = client.get("/models/bc/drift")
    assert r.status_code == 200, r.text
    assert r.json()["data"]["thresholds"] == used


def test_every_models_command_and_predict_take_kb() -> None:
    import typer.main

    from metalearn.cli import app

    root: Any = typer.main.get_command(app)
    group = root.commands["models"]
    assert set(group.commands) == {"list", "show", "promote", "rollback", "delete", "compress", "drift", "retrain",
                                   "feedback", "evaluate", "explain"}
    for command in [*group.commands.values(), root.commands["predict"]]:
        assert "--kb" in {opt for p in command.params for opt in p.opts}, command.name


# ------------------------------------------------------------------------------------------ the whole path
@pytest.mark.corpus
def test_from_search_to_production_and_back(
    capsys: pytest.CaptureFixture[str], load_corpus: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = load_corpus("saheart")  # 462 rows, 9 numeric features, binary
    frame = pd.concat([ds.X, ds.y], axis=1).sample(frac=1.0, random_state=0).reset_index(drop=True)
    train, new = frame.iloc[:260], frame.iloc[260:]
    train.to_csv(tmp_path / "train.csv", index=False)
    new.to_csv(tmp_path / "new.csv", index=False)
    numeric = [c for c in ds.X.columns if ds.X[c].nunique() > 2]
    shifted = new.copy()
    shifted[numeric] = shifted[numeric] * 1.5 + 2 * train[numeric].std()
    shifted.to_csv(tmp_path / "shifted.csv", index=False)
    kb_path = empty_kb(tmp_path / "kb.duckdb")

    def cli(*argv: object) -> str:
        code, out, err = run_cli(capsys, *argv, "--kb", kb_path)
        assert code == 0, err
        assert "Traceback" not in err
        return out

    def predict(out_name: str, data: str = "new.csv") -> tuple[pd.DataFrame, str]:
        text = cli("predict", "heart", tmp_path / data, "--out", tmp_path / out_name)
        return pd.read_csv(tmp_path / out_name), text

    # search + register (not live), promote
    out = cli("optimize", tmp_path / "train.csv", "-t", "target", *QUICK, "--register", "heart")
    assert "registered heart version 1 (not live: metalearn models promote heart 1)" in out
    assert "heart: live -> version 1" in cli("models", "promote", "heart", "1")

    # batch scoring with the live version; no drift on data like the training data
    first, text = predict("p1.csv")
    assert set(first["model_version"]) == {1} and len(first) == len(new)
    assert "heart version 1 (live)" in text
    drift = json.loads(cli("models", "drift", "heart", "--json"))
    assert drift["version"] == 1 and drift["data"]["drifted"] is False and drift["concept"] is None
    # shifted inputs: data drift, flagged
    predict("p2.csv", "shifted.csv")
    out = cli("models", "drift", "heart", "--report", tmp_path / "drift.html")
    assert "data drift: YES" in out and "flags: data_drift" in out
    assert "<html" in (tmp_path / "drift.html").read_text().lower()
    drift = json.loads(cli("models", "drift", "heart", "--json"))
    assert drift["data"]["drifted"] is True and drift["data"]["share_drifted"] >= 0.3
    assert "data_drift" in drift["flags"]
    # the service's thresholds apply to the CLI too (it ignored them: a flag flipped with whichever checked last);
    # a check that did not run says so ("no", beside the flag it kept)
    monkeypatch.setenv("METALEARN_DRIFT_THRESHOLDS", '{"min_rows": 100000}')
    out = cli("models", "drift", "heart")
    assert "data drift: not tested - insufficient data" in out, out
    assert "flags: data_drift (a check that did not test keeps the flag it raised before)" in out
    monkeypatch.setenv("METALEARN_DRIFT_THRESHOLDS", "{psi: 1")
    assert_one_line_error(*run_cli(capsys, "models", "drift", "heart", "--kb", kb_path), "METALEARN_DRIFT_THRESHOLDS is not JSON")
    monkeypatch.delenv("METALEARN_DRIFT_THRESHOLDS")

    # wrong labels for the first batch: the model scores badly on them -> concept drift
    labels = pd.DataFrame({"prediction_id": first["prediction_id"], "target": 1 - new["target"].to_numpy()})
    labels.to_csv(tmp_path / "labels.csv", index=False)
    assert f"heart: {len(labels)} label(s) stored" in cli("models", "feedback", "heart", tmp_path / "labels.csv")
    out = cli("models", "drift", "heart")
    assert "concept drift: YES" in out and "concept_drift" in out
    drift = json.loads(cli("models", "drift", "heart", "--json"))
    assert drift["concept"]["drifted"] is True and set(drift["flags"]) == {"data_drift", "concept_drift"}
    assert "concept_drift on version 1" in cli("models", "show", "heart")

    # retrain on the new data: a new version, not live
    out = cli("models", "retrain", "heart", "--data", tmp_path / "new.csv", "--trials", "2", "--folds", "2",
              "--workers", "1", "--no-ensemble", "--trial-time-limit", "30")
    assert "registered heart version 2 (not live: metalearn models promote heart 2)" in out
    show = json.loads(cli("models", "show", "heart", "--json"))
    assert show["aliases"] == {"live": 1}
    v2 = show["versions"][-1]
    assert (v2["version"], v2["variant"], v2["parent_version"], v2["aliases"]) == (2, "retrain", 1, [])
    third, text = predict("p3.csv")
    assert set(third["model_version"]) == {1}

    # promote the retrained version, then roll back: predictions come from version 1 again
    assert "heart: live -> version 2 (was version 1)" in cli("models", "promote", "heart", "2")
    # again: nothing changes, and no undo hint (a rollback would have gone back to version 1)
    assert "heart: live is already version 2; nothing changed" in cli("models", "promote", "heart", "2")
    fourth, text = predict("p4.csv")
    assert set(fourth["model_version"]) == {2} and "heart version 2 (live)" in text
    assert "heart: live -> version 1 (rolled back from version 2)" in cli("models", "rollback", "heart")
    fifth, text = predict("p5.csv")
    assert set(fifth["model_version"]) == {1} and "heart version 1 (live)" in text
    assert fifth["target"].tolist() == first["target"].tolist()
    show = json.loads(cli("models", "show", "heart", "--json"))
    assert [e["action"] for e in show["events"] if e["action"] in ("promote", "rollback", "register")] == [
        "register", "promote", "register", "promote", "rollback"]
