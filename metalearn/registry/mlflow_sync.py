"""Optional: mirror registered versions into an MLflow model registry (``pip install 'metalearn[mlflow]'``).

When ``--mlflow-uri URI`` (or the environment variable ``METALEARN_MLFLOW_URI``) is set, each registered
version is also logged to MLflow: a run in experiment ``metalearn/<name>`` (params: the best configuration,
metrics: the CV and refit metrics, tags: the metalearn version, variant, search, data fingerprint and
artifact SHA-256; artifacts: the version's directory, ``model.skops`` and the reference sample), and a
version of the MLflow registered model ``<name>`` whose source is that run's artifacts, tagged
``metalearn_version``. Promote and rollback move the MLflow alias (``live``, ``candidate``) to the MLflow
version tagged with the metalearn version.

The metalearn registry stays the source of truth: a failure talking to MLflow never undoes a registration
or an alias change; it is returned as a one-line ``warning``. mlflow is imported only here, lazily.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metalearn.data.errors import InputError

if TYPE_CHECKING:
    from metalearn.kb.model_store import ModelVersionRecord
    from metalearn.registry.registry import ModelRegistry

#: the environment variable read when no ``--mlflow-uri`` is given
ENV_URI = "METALEARN_MLFLOW_URI"
#: the MLflow model version tag holding the metalearn version number
VERSION_TAG = "metalearn_version"
#: where a run's copy of the version directory goes, under the run's artifacts
ARTIFACT_PATH = "metalearn_model"
# MLflow's limits (mlflow.utils.validation): key lengths, param value length, entities per log_batch
_MAX_KEY = 250
_MAX_PARAM_VALUE = 6000
_MAX_TAG_VALUE = 8000
_BATCH = 100
_KEY_CHARS = re.compile(r"[^A-Za-z0-9_\-. /]")
# an unreachable tracking server should cost seconds, not MLflow's default minutes of retries
_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


def mlflow_uri(explicit: str | None = None) -> str | None:
    """The MLflow tracking/registry URI: ``explicit``, else ``$METALEARN_MLFLOW_URI``, else None (no sync)."""
    uri = explicit if explicit else os.environ.get(ENV_URI, "")
    return uri.strip() or None


def require_mlflow() -> Any:
    """The ``mlflow`` module; :class:`InputError` (one line) when it is not installed."""
    try:
        import mlflow
    except ImportError as err:
        raise InputError(
            f"an MLflow URI is set (--mlflow-uri or {ENV_URI}) but mlflow is not installed: "
            "pip install 'metalearn[mlflow]'"
        ) from err
    return mlflow


def _client(uri: str, mlflow: Any) -> Any:
    for key, value in _HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    return mlflow.tracking.MlflowClient(tracking_uri=uri, registry_uri=uri)


def _problem(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return f"{type(err).__name__}: {text[:300]}"


def _key(text: str) -> str:
    return _KEY_CHARS.sub("_", text)[:_MAX_KEY]


def _flatten(values: Any, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    if isinstance(values, dict):
        for k, v in values.items():
            out.update(_flatten(v, f"{prefix}{k}." if isinstance(v, dict) else f"{prefix}{k}"))
        return out
    if prefix:
        out[_key(prefix.rstrip("."))] = str(values)[:_MAX_PARAM_VALUE]
    return out


def _artifact_location(uri: str) -> str | None:
    """A SQLite-backed store keeps run artifacts beside its database file (``mlartifacts/``), not in the
    working directory's ``mlruns/``; other stores use their own default."""
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        return (db.parent / "mlartifacts").resolve().as_uri()
    return None


def log_version(uri: str, registry: ModelRegistry, record: ModelVersionRecord) -> dict[str, Any]:
    """Log ``record`` (a registered version) to the MLflow store at ``uri``: a run plus a version of the
    MLflow registered model of the same name. Returns ``{"run_id", "mlflow_version"}``, or
    ``{"warning": "..."}`` when MLflow is not installed, could not be reached or refused something (the
    metalearn version stays registered either way); never raises."""
    run_id: str | None = None
    client = None
    try:
        mlflow = require_mlflow()
        from mlflow.entities import Metric, Param
        from mlflow.exceptions import MlflowException

        client = _client(uri, mlflow)
        experiment_name = f"metalearn/{record.name}"
        experiment = client.get_experiment_by_name(experiment_name)
        if experiment is not None:
            experiment_id = experiment.experiment_id
        else:
            try:
                experiment_id = client.create_experiment(experiment_name, artifact_location=_artifact_location(uri))
            except MlflowException:  # created meanwhile by another process
                found = client.get_experiment_by_name(experiment_name)
                if found is None:
                    raise
                experiment_id = found.experiment_id
        info = record.info or {}
        search = info.get("search") or {}
        dataset = info.get("dataset") or {}
        tags = {
            "metalearn.name": record.name,
            "metalearn.version": str(record.version),
            "metalearn.variant": record.variant,
            "metalearn.kind": record.kind,
            "metalearn.metric": record.metric,
            "metalearn.search_id": str(record.search_id or search.get("search_id") or ""),
            "metalearn.dataset_fingerprint": str(record.dataset_id or dataset.get("fingerprint") or ""),
            "metalearn.dataset_name": str(dataset.get("name") or ""),
            "metalearn.artifact_sha256": record.artifact_sha256,
            "metalearn.parent_version": "" if record.parent_version is None else str(record.parent_version),
            "mlflow.runName": f"{record.name}-v{record.version}",
        }
        run = client.create_run(experiment_id, tags={k: v[:_MAX_TAG_VALUE] for k, v in tags.items()})
        run_id = run.info.run_id
        params = _flatten((search.get("best") or {}).get("values") or {})
        params.update({"metalearn.variant": record.variant, "metalearn.metric": record.metric})
        metrics = []
        for split in ("cv", "refit"):
            for name, value in ((info.get("metrics") or {}).get(split) or {}).items():
                if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                    metrics.append(Metric(_key(f"{split}_{name}"), float(value), 0, 0))
        param_list = [Param(k, v) for k, v in params.items()]
        for i in range(0, max(len(param_list), len(metrics)), _BATCH):
            client.log_batch(run_id, metrics=metrics[i:i + _BATCH], params=param_list[i:i + _BATCH])
        directory = registry.root / record.name / str(record.version)
        client.log_artifacts(run_id, str(directory), artifact_path=ARTIFACT_PATH)
        client.set_terminated(run_id, "FINISHED")
        try:
            client.get_registered_model(record.name)
        except MlflowException:
            try:
                client.create_registered_model(record.name, description="registered by metalearn")
            except MlflowException:  # created meanwhile
                client.get_registered_model(record.name)
        source = f"{run.info.artifact_uri.rstrip('/')}/{ARTIFACT_PATH}"
        mv = client.create_model_version(record.name, source, run_id=run_id,
                                         tags={VERSION_TAG: str(record.version), "metalearn.variant": record.variant},
                                         description=f"metalearn {record.name} version {record.version}")
        return {"run_id": run_id, "mlflow_version": int(mv.version)}
    except Exception as err:  # MLflow unreachable or refusing: the metalearn version stays registered
        if run_id is not None and client is not None:
            with contextlib.suppress(Exception):
                client.set_terminated(run_id, "FAILED")
        return {"warning": f"MLflow at {uri}: {record.name} version {record.version} not logged ({_problem(err)})"}


def set_alias(uri: str, name: str, alias: str, metalearn_version: int) -> dict[str, Any]:
    """Point the MLflow alias ``alias`` of registered model ``name`` at the MLflow version tagged with
    ``metalearn_version``. Returns ``{"alias", "mlflow_version"}`` or ``{"warning": "..."}``; never raises."""
    try:
        client = _client(uri, require_mlflow())
        found = [v for v in client.search_model_versions(f"name = '{name}'")
                 if (v.tags or {}).get(VERSION_TAG) == str(metalearn_version)]
        if not found:
            return {"warning": f"MLflow at {uri}: model {name!r} has no version tagged {VERSION_TAG}="
                               f"{metalearn_version} (it was not logged to MLflow); alias {alias!r} not set there"}
        mv = max(found, key=lambda v: int(v.version))
        client.set_registered_model_alias(name, alias, mv.version)
        return {"alias": alias, "mlflow_version": int(mv.version)}
    except Exception as err:
        return {"warning": f"MLflow at {uri}: alias {alias!r} of {name} not set ({_problem(err)})"}


def mirror_version(uri: str | None, registry: ModelRegistry, record: ModelVersionRecord) -> dict[str, Any] | None:
    """:func:`log_version` when ``uri`` is set, else None."""
    return None if uri is None else log_version(uri, registry, record)


def mirror_alias(uri: str | None, change: Mapping[str, Any]) -> dict[str, Any] | None:
    """:func:`set_alias` for a promote/rollback result (``name``, ``alias``, ``version``) when ``uri`` is
    set, else None."""
    if uri is None:
        return None
    return set_alias(uri, str(change["name"]), str(change["alias"]), int(change["version"]))


def describe(result: Mapping[str, Any]) -> str:
    """One line for a user: what was logged or aliased, or the warning."""
    if "warning" in result:
        return f"warning: {result['warning']}"
    if "run_id" in result:
        return f"logged to MLflow: run {result['run_id']}, model version {result['mlflow_version']}"
    return f"MLflow: alias {result['alias']} -> model version {result['mlflow_version']}"
