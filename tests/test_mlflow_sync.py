"""Registered versions mirrored into an MLflow model registry (the optional ``mlflow`` extra), against a
local SQLite-backed MLflow: the run (params, metrics, tags, artifacts), the registered model version, the
alias synced by promote, an unreachable server (a warning; the metalearn version stays), and the CLI."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mlflow", reason="mlflow is an optional extra: pip install 'metalearn[mlflow]'")

from metalearn.cli import main
from metalearn.data.loading import load_sklearn
from metalearn.kb.shipped import open_default_kb
from metalearn.registry import mlflow_sync
from metalearn.registry.registry import ModelRegistry
from metalearn.search.automl import optimize
from metalearn.search.settings import SearchSettings


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelRegistry, Any, Path]:
    tmp = tmp_path_factory.mktemp("mlflow")
    kb = open_default_kb(tmp / "kb.duckdb")
    ds = load_sklearn("breast_cancer")
    outcome = optimize(ds, kb, SearchSettings(n_trials=1, ensemble=False, warm_start=False, workers=1))
    reg = ModelRegistry(kb)
    record = reg.register_outcome("bc", outcome, ds)
    return reg, record, tmp


def _client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def test_uri_from_flag_or_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(mlflow_sync.ENV_URI, raising=False)
    assert mlflow_sync.mlflow_uri(None) is None
    monkeypatch.setenv(mlflow_sync.ENV_URI, "sqlite:///x.db")
    assert mlflow_sync.mlflow_uri(None) == "sqlite:///x.db"
    assert mlflow_sync.mlflow_uri("http://host:5000") == "http://host:5000"


def test_log_version_and_promote(registered: tuple[ModelRegistry, Any, Path]) -> None:
    reg, record, tmp = registered
    uri = f"sqlite:///{tmp}/mlflow.db"
    result = mlflow_sync.log_version(uri, reg, record)
    assert "warning" not in result, result
    assert mlflow_sync.describe(result) == f"logged to MLflow: run {result['run_id']}, model version 1"
    client = _client(uri)
    assert client.get_registered_model("bc").name == "bc"
    mv = client.get_model_version("bc", str(result["mlflow_version"]))
    assert mv.tags[mlflow_sync.VERSION_TAG] == str(record.version)
    assert mv.run_id == result["run_id"]
    run = client.get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["metalearn.artifact_sha256"] == record.artifact_sha256
    assert run.data.tags["metalearn.dataset_fingerprint"] == record.dataset_id
    assert run.data.params["metalearn.metric"] == record.metric
    best = record.info["search"]["best"]["values"]
    assert best and any(k in run.data.params for k in best)
    assert f"refit_{record.metric}" in run.data.metrics
    assert any(k.startswith("cv_") for k in run.data.metrics)
    files = {Path(a.path).name for a in client.list_artifacts(result["run_id"], mlflow_sync.ARTIFACT_PATH)}
    assert {"model.skops", "reference.parquet"} <= files
    assert str(tmp) in run.info.artifact_uri  # the artifacts live beside the SQLite file

    reg.promote("bc", record.version)
    alias = mlflow_sync.set_alias(uri, "bc", "live", record.version)
    assert alias == {"alias": "live", "mlflow_version": result["mlflow_version"]}
    assert int(client.get_model_version_by_alias("bc", "live").version) == result["mlflow_version"]
    missing = mlflow_sync.set_alias(uri, "bc", "live", 99)
    assert "no version tagged" in missing["warning"]


def test_unreachable_server_warns(registered: tuple[ModelRegistry, Any, Path],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    reg, record, _ = registered
    result = mlflow_sync.log_version("http://127.0.0.1:9", reg, record)
    assert set(result) == {"warning"} and "\n" not in result["warning"]
    assert "not logged" in result["warning"]
    assert reg.store.get_version("bc", record.version).version == record.version  # still registered
    assert "warning" in mlflow_sync.set_alias("http://127.0.0.1:9", "bc", "live", record.version)


def test_cli_optimize_register_logs_to_mlflow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    try:
        main(["optimize", "sklearn:breast_cancer", "--trials", "1", "--no-warm-start", "--no-ensemble",
              "--workers", "1", "--kb", str(tmp_path / "kb.duckdb"), "--register", "x", "--mlflow-uri", uri])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    gc.collect()
    assert code == 0, out + err
    assert "registered x version 1" in out
    assert "logged to MLflow: run " in out and "model version 1" in out
    assert _client(uri).get_model_version("x", "1").tags[mlflow_sync.VERSION_TAG] == "1"
