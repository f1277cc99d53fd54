"""The model registry over HTTP: registered models and their versions, aliases (promote, rollback),
predictions (JSON rows or an uploaded file) with a buffered prediction log, feedback, drift checks and
retraining.

Reads follow ``METALEARN_PROTECT_READS``; changes, predictions and feedback need an API key. Prediction is
the hot path: the version is resolved from the KB, the model comes from the registry's cache, and the
logged rows go to :class:`~metalearn.service.predictionlog.PredictionLogWriter`, never straight to the KB.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Annotated, Any, Literal, TypeVar

import numpy as np
import pandas as pd
from fastapi import APIRouter, Body, Depends, Form, HTTPException, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from metalearn.data.errors import ConflictError, InputError, MetaLearnError, NotFoundError
from metalearn.data.loading import ReadLimits, encoding_hint
from metalearn.data.metrics import check_metric
from metalearn.data.task import TaskKind
from metalearn.kb.model_store import ModelVersionRecord, missing_model
from metalearn.registry.mlflow_sync import mirror_alias
from metalearn.registry.registry import ModelRegistry, PredictionBatch, check_name
from metalearn.service.deps import (
    MetricsDep,
    ModelJobsDep,
    ModelWriteAccess,
    PageDep,
    PredictionLogDep,
    ReadAccess,
    RegistryDep,
    SettingsDep,
)
from metalearn.service.errors import http_status
from metalearn.service.metrics import ServiceMetrics
from metalearn.service.routers.searches import server_search_settings, with_search_form
from metalearn.service.schemas import Message, Page, json_safe
from metalearn.service.schemas_models import (
    MODEL_NAME_PATTERN,
    AliasChangeOut,
    CompressRequest,
    DeletedVersionOut,
    DriftOut,
    EvaluateOut,
    ExplainOut,
    ExplainRequest,
    FeedbackOut,
    FeedbackRequest,
    ModelDetailOut,
    ModelJobCreated,
    ModelJobOut,
    ModelSummaryOut,
    ModelVersionOut,
    PredictOut,
    PredictRequest,
    PromoteRequest,
    RollbackRequest,
)
from metalearn.service.settings import Settings
from metalearn.service.uploads import (
    EXPANSION_LIMIT,
    OptionalUploadField,
    UploadField,
    check_rows,
    read_frame,
    read_upload,
)

router = APIRouter(prefix="/models", tags=["models"])

ModelName = Annotated[str, Path(pattern=MODEL_NAME_PATTERN, description="Model name.")]
VersionNumber = Annotated[int, Path(ge=1, le=2**31, description="Version number.")]
VersionQuery = Annotated[
    int | None, Query(ge=1, le=2**31, description="A version (default: the live one).")
]
JobId = Annotated[str, Path(pattern=r"^[A-Za-z0-9]{1,64}$", description="Job id.")]

#: label of the per-model metrics for a name the registry does not hold (bounded label values)
UNKNOWN_MODEL = "<unknown>"


def _error(description: str) -> dict[str, Any]:
    return {"model": Message, "description": description}


def _invalid(description: str) -> dict[str, Any]:
    """A 422: a request the validation refused (``detail``: the errors) or a one-line refusal."""
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}},
    }


def _json_error(description: str) -> dict[str, Any]:
    """An error of a route whose success is not JSON (the error still is)."""
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Message"}}},
    }


_NO_LIVE_VERSION = "The model has no live version (ask for a version)"
_DRIFT_REFERENCE = "Invalid request, or the drift reference is missing or was modified"
_TOO_MANY_JOBS = "Too many pending jobs"

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: _error("Unknown model or version")}
READ_ERRORS: dict[int | str, dict[str, Any]] = {**NOT_FOUND}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("Bad input (one-line message)"),
    401: _error("Missing API key"),
    403: _error("Invalid API key, or writes not configured"),
    **NOT_FOUND,
}


_Route = TypeVar("_Route", bound=Callable[..., Any])


def _route(
    method: Literal["get", "post", "delete"],
    path: str,
    summary: str,
    *,
    write: bool = False,
    errors: Mapping[int, str] | None = None,
    invalid: str | None = None,
    **options: Any,
) -> Callable[[_Route], _Route]:
    """The decorator of one route: its access (``write``: an API key, else the read policy), the errors every
    read (404) or write (400, 401, 403, 404) can answer, then the route's own ``errors`` (status -> description)
    and ``invalid`` (the 422's description); ``options`` go to FastAPI (``response_model``, ``status_code``...)."""
    responses: dict[int | str, dict[str, Any]] = {
        **(WRITE_ERRORS if write else READ_ERRORS),
        **{status: _error(description) for status, description in (errors or {}).items()},
    }
    if invalid is not None:
        responses[422] = _invalid(invalid)
    add = getattr(router, method)
    decorator: Callable[[_Route], _Route] = add(
        path, dependencies=[ModelWriteAccess if write else ReadAccess], responses=responses, summary=summary, **options
    )
    return decorator


def _version_out(v: dict[str, Any]) -> ModelVersionOut:
    return ModelVersionOut.model_validate(json_safe(v))


# ------------------------------------------------------------------------------------------ reading
@router.get(
    "",
    response_model=Page[ModelSummaryOut],
    dependencies=[ReadAccess],
    summary="Registered models, by name",
)
def list_models(registry: RegistryDep, page: PageDep) -> Page[ModelSummaryOut]:
    limit, offset = page
    rows = registry.list_models()
    items = [ModelSummaryOut.model_validate(r) for r in rows[offset : offset + limit]]
    return Page[ModelSummaryOut](
        items=items, limit=limit, offset=offset, next_offset=offset + limit if len(rows) > offset + limit else None
    )


@_route(
    "get", "/{name}", "A model: its versions, aliases, flags, history and prediction-log counts",
    response_model=ModelDetailOut,
)
def show_model(name: ModelName, registry: RegistryDep) -> ModelDetailOut:
    return ModelDetailOut.model_validate(json_safe(registry.show(name)))


@_route(
    "get", "/{name}/versions/{version}", "One version: metrics, training schema, model, libraries, aliases and flags",
    response_model=ModelVersionOut,
)
def get_version(name: ModelName, version: VersionNumber, registry: RegistryDep) -> ModelVersionOut:
    store = registry.store
    rec = store.get_version(name, version)
    return _version_out(registry.version_dict(rec, store.aliases(name), store.flags(name, version)))


# ------------------------------------------------------------------------------------------ aliases
@_route(
    "post", "/{name}/promote", "Point an alias (live, candidate) at a version",
    write=True, errors={409: "The version is deleted"},
    invalid="Invalid request, or the version's artifact is missing or was modified",
    response_model=AliasChangeOut,
)
def promote(name: ModelName, body: PromoteRequest, registry: RegistryDep, settings: SettingsDep) -> AliasChangeOut:
    """Atomic: predictions answer with the old version until this returns, then with the new one. The
    version is loaded (hash and trusted types checked) before the alias moves. With METALEARN_MLFLOW_URI the
    MLflow alias follows (after the metalearn alias moved; an MLflow failure is a warning in ``mlflow``)."""
    change = registry.promote(name, body.version, body.alias)
    return AliasChangeOut.model_validate({**change, "mlflow": mirror_alias(settings.mlflow_uri, change)})


@_route(
    "post", "/{name}/rollback", "Point an alias back at the version it had before",
    write=True, errors={409: "No earlier version to roll back to"},
    invalid="Invalid request, or the earlier version's artifact is missing or was modified",
    response_model=AliasChangeOut,
)
def rollback(
    name: ModelName, registry: RegistryDep, settings: SettingsDep,
    body: Annotated[RollbackRequest | None, Body()] = None,
) -> AliasChangeOut:
    alias = body.alias if body is not None else "live"
    change = registry.rollback(name, alias)
    return AliasChangeOut.model_validate({**change, "mlflow": mirror_alias(settings.mlflow_uri, change)})


@_route(
    "delete", "/{name}/versions/{version}", "Delete a version (not the live one); its record stays in the history",
    write=True, errors={409: "The version is live"},
    response_model=DeletedVersionOut,
)
def delete_version(name: ModelName, version: VersionNumber, registry: RegistryDep) -> DeletedVersionOut:
    rec = registry.store.get_version(name, version)
    if rec.deleted:
        raise NotFoundError(f"model {name!r} version {version} is already deleted")
    return DeletedVersionOut(name=name, version=version, aliases_removed=registry.delete(name, version))


# ------------------------------------------------------------------------------------------ serving
_PREDICT_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": "CSV, TSV, parquet or ARFF file with a header row: the feature columns.",
                    }
                },
                "required": ["file"],
            }
        },
    },
}


def _too_many_rows(n: int, settings: Settings) -> HTTPException:
    return HTTPException(
        413,
        detail=f"{n} rows in one prediction request is more than this server accepts ({settings.max_predict_rows}, "
        "METALEARN_MAX_PREDICT_ROWS); split the batch",
    )


def _json_frame(raw: bytes, settings: Settings) -> tuple[pd.DataFrame, int | None]:
    """The rows of a JSON prediction body, as a frame, and the version it names."""
    try:
        data = json.loads(raw)
    except RecursionError:
        raise InputError("request body is not valid JSON: nesting too deep") from None
    except UnicodeDecodeError as exc:
        hint = encoding_hint(raw[:4]) or f"not valid UTF-8 at byte {exc.start}; send UTF-8 text"
        raise InputError(f"request body is not valid JSON: {hint}") from None
    except ValueError as exc:
        raise InputError(f"request body is not valid JSON: {exc}") from None
    rows = data.get("rows") if isinstance(data, dict) else None
    if isinstance(rows, list) and len(rows) > settings.max_predict_rows:  # before validating them one by one
        raise _too_many_rows(len(rows), settings)
    try:
        body = PredictRequest.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e.get("loc", ()))} for e in exc.errors(include_url=False, include_input=False)]
        ) from None
    return _frame_of(body.rows), body.version


def _frame_of(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """JSON rows as one object block (columns in first-seen order; a key missing from a row is null);
    the registry's schema check converts the numeric columns in one piece. ``from_records`` built one
    array per column and cost more than the prediction on wide tables."""
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    columns = list(names)
    cells = np.empty((len(rows), len(columns)), dtype=object)
    lacking: list[int] = []
    for i, row in enumerate(rows):
        cells[i] = [row.get(c) for c in columns]
        if len(row) < len(columns):
            lacking.append(i)
    frame = pd.DataFrame(cells, columns=columns, dtype=object)  # no per-column type inference: the schema check converts
    if lacking:  # documented (an absent key is a missing value), but a client bug as often: say so
        absent = [c for c in columns if any(c not in rows[i] for i in lacking)]
        shown = ", ".join(map(str, lacking[:5])) + (", ..." if len(lacking) > 5 else "")
        frame.attrs["warnings"] = [
            f"{len(lacking)} of {len(rows)} row(s) (row {shown}) lack the key(s) "
            f"{', '.join(map(repr, absent[:5]))}{', ...' if len(absent) > 5 else ''} the other rows give: read as missing "
            "values (imputed); send null to mean missing, or every key in every row"
        ]
    return frame


def _upload_rows(file: UploadFile, settings: Settings) -> pd.DataFrame:
    limits = ReadLimits(
        max_bytes=EXPANSION_LIMIT * settings.max_upload_bytes,
        max_rows=settings.max_predict_rows,
        max_columns=settings.max_columns,
        max_cells=settings.max_cells,
        advice={
            "bytes": f"send a smaller file (compressed uploads may expand to {EXPANSION_LIMIT}x "
            "METALEARN_MAX_UPLOAD_BYTES)",
            "rows": f"this server predicts at most {settings.max_predict_rows} rows per request "
            "(METALEARN_MAX_PREDICT_ROWS); split the batch",
            "columns": f"this server accepts at most {settings.max_columns} (METALEARN_MAX_COLUMNS)",
            "cells": f"this server accepts at most {settings.max_cells} (METALEARN_MAX_CELLS); split the batch",
        },
    )
    frame, _ = read_frame(file, settings, limits)
    if len(frame) > settings.max_predict_rows:
        raise _too_many_rows(len(frame), settings)
    return frame


def _content_type(request: Request) -> str:
    """``json``, ``multipart`` or the unsupported content type."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        return "multipart"
    if content_type and content_type != "application/json" and not content_type.endswith("+json"):
        return content_type
    return "json"


async def _upload(request: Request, settings: Settings) -> pd.DataFrame:
    try:
        form = await request.form(max_files=1, max_fields=10)
    except HTTPException:
        raise
    except Exception as exc:
        raise InputError(f"cannot read the multipart form: {' '.join(str(exc).split())[:200]}") from None
    file = form.get("file")
    if not isinstance(file, UploadFile):
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body", "file"), "msg": "Field required: send the rows as a file"}]
        )
    return await run_in_threadpool(_upload_rows, file, settings)


def _resolve(registry: ModelRegistry, name: str, version: int | None) -> tuple[ModelVersionRecord | None, ConflictError | None]:
    """The version to serve, or the conflict when the model has no live version (the body may name one)."""
    try:
        return registry.resolve(name, version), None
    except ConflictError as exc:
        return None, exc


def _predict(
    registry: ModelRegistry, name: str, version: int | None, first: tuple[ModelVersionRecord | None, ConflictError | None],
    frame: pd.DataFrame, body_version: int | None, on_logged: Any, resolved: list[int],
) -> PredictionBatch:
    record, no_live = first
    if version is not None and body_version is not None and body_version != version:
        raise InputError(f"the query asks for version {version} and the body for version {body_version}; give one")
    if body_version is not None and (record is None or record.version != body_version):
        record = registry.resolve(name, body_version)
    if record is None:
        assert no_live is not None
        raise no_live
    resolved.append(record.version)
    batch = registry.predict(name, frame, record.version, on_logged=on_logged)
    batch.warnings = [*frame.attrs.get("warnings", []), *batch.warnings]
    return batch


def _predict_json(
    registry: ModelRegistry, name: str, version: int | None, raw: bytes, settings: Settings, on_logged: Any,
    resolved: list[int],
) -> PredictionBatch:
    """A JSON prediction in one worker-thread call (each hop to the thread pool costs latency): the model
    first (an unknown model is a 404, one without a live version a 409, whatever the body), then the body."""
    first = _resolve(registry, name, version)
    frame, body_version = _json_frame(raw, settings)
    return _predict(registry, name, version, first, frame, body_version, on_logged, resolved)


def _known(registry: ModelRegistry, name: str) -> bool:
    try:
        return bool(registry.store.list_versions(check_name(name), include_deleted=True))
    except Exception:
        return False


async def _count_error(
    metrics: ServiceMetrics, registry: ModelRegistry, name: str, resolved: list[int], exc: BaseException
) -> None:
    if isinstance(exc, HTTPException):
        status = exc.status_code
    elif isinstance(exc, RequestValidationError):
        status = 422
    elif isinstance(exc, MetaLearnError):
        status = http_status(exc)
    else:
        status = 500
    known = bool(resolved) or await run_in_threadpool(_known, registry, name)
    metrics.model_errors.labels(
        name if known else UNKNOWN_MODEL, str(resolved[0]) if resolved else "", str(status)
    ).inc()


@_route(
    "post", "/{name}/predict", "Predict rows (JSON or an uploaded file) with the live version or a given one",
    write=True,
    errors={
        409: "The model has no live version",
        413: "Too many rows, or the body is too large",
        415: "Neither JSON nor a multipart upload",
    },
    invalid="Invalid body, rows that do not match the training schema, or a tampered artifact",
    response_model=PredictOut,
    openapi_extra={"requestBody": _PREDICT_BODY},
)
async def predict(
    name: ModelName,
    request: Request,
    registry: RegistryDep,
    writer: PredictionLogDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    version: VersionQuery = None,
) -> PredictOut:
    """The body is ``{"rows": [{column: value, ...}, ...], "version": optional}`` (JSON) or a multipart
    upload with a ``file`` (CSV, TSV, parquet, ARFF). The rows are checked against the version's training
    schema first (a missing, extra or mistyped column is a 422 naming it; unseen categories are warnings).
    Each answered row gets a ``prediction_id`` to send feedback for."""
    t0 = time.perf_counter()
    resolved: list[int] = []
    try:
        kind = _content_type(request)
        if kind == "json":
            raw = await request.body()
            batch = await run_in_threadpool(_predict_json, registry, name, version, raw, settings, writer.add, resolved)
        else:  # the model first: an unknown model (404) or one without a live version (409) before the upload
            first = await run_in_threadpool(_resolve, registry, name, version)
            if kind != "multipart":
                raise HTTPException(
                    415,
                    detail=f"a prediction request is JSON ({{\"rows\": [...]}}) or a multipart upload ('file'), not {kind}",
                )
            frame = await _upload(request, settings)
            batch = await run_in_threadpool(_predict, registry, name, version, first, frame, None, writer.add, resolved)
    except Exception as exc:
        await _count_error(metrics, registry, name, resolved, exc)
        raise
    v = str(batch.version)
    metrics.model_predictions.labels(name, v).inc(len(batch.rows))
    out = PredictOut.model_validate(
        {
            "name": batch.name,
            "version": batch.version,
            "predictions": [
                {"prediction_id": pid, "logged": logged, **row}
                for pid, logged, row in zip(batch.prediction_ids, batch.logged or [False] * len(batch.rows),
                                            batch.rows, strict=True)
            ],
            "warnings": batch.warnings,
            "seconds": batch.seconds,
        }
    )
    metrics.model_latency.labels(name, v).observe(time.perf_counter() - t0)
    return out


@_route(
    "post", "/{name}/feedback", "True labels of logged predictions",
    write=True, errors={404: "Unknown model, or prediction ids not in the log (nothing stored)"},
    response_model=FeedbackOut,
)
def feedback(name: ModelName, body: FeedbackRequest, registry: RegistryDep, writer: PredictionLogDep) -> FeedbackOut:
    """Every item is checked before anything is stored: one unknown prediction id is a 404 and stores nothing."""
    check_name(name)
    if not registry.store.list_versions(name, include_deleted=True):
        raise missing_model(name)
    writer.flush()  # a prediction made a moment ago may still wait in the log buffer
    result = registry.feedback(name, [item.as_item() for item in body.feedback])
    return FeedbackOut(name=name, stored=int(result["stored"]))


# ------------------------------------------------------------------------------------------ evaluate
class EvaluateQuery:
    """The scoring options of both evaluate routes (query parameters)."""

    def __init__(
        self,
        metric: Annotated[str | None, Query(max_length=64, description="The metric (default: the version's).")] = None,
        importance: Annotated[bool, Query(description="Also each feature's permutation importance.")] = False,
        n_repeats: Annotated[int, Query(ge=1, le=20, description="Shuffles of each feature.")] = 5,
        max_rows: Annotated[int, Query(ge=2, le=10_000, description="Rows the importance uses at most.")] = 5000,
        time_limit: Annotated[
            float, Query(gt=0, le=300, description="Seconds after which no more shuffles start (one always runs).")
        ] = 60.0,
    ) -> None:
        self.options: dict[str, Any] = {"metric": metric, "importance": importance, "n_repeats": n_repeats,
                                        "max_rows": max_rows, "time_limit": time_limit}


EvaluateDep = Annotated[EvaluateQuery, Depends()]


@_route(
    "post", "/{name}/evaluate",
    "Score a version on labelled data (every metric of its kind), optionally with feature importance",
    write=True, errors={409: _NO_LIVE_VERSION, 413: "Upload too large"},
    invalid="Invalid request, or rows that do not match the training schema",
    response_model=EvaluateOut,
)
def evaluate(
    name: ModelName,
    registry: RegistryDep,
    settings: SettingsDep,
    file: UploadField,
    query: EvaluateDep,
    version: VersionQuery = None,
) -> EvaluateOut:
    """The upload holds the training features and the true value of each target (e.g. a held-out test file);
    rows without any target value are skipped (a missing target column or a metric of another kind: 400).
    Nothing is logged or stored (AutoGluon's ``evaluate`` and ``feature_importance``)."""
    registry.resolve(name, version)  # an unknown model (404) or no live version (409) before the upload
    frame, shown = read_frame(file, settings)
    check_rows(len(frame), shown, settings, fix="evaluate on a sample")
    result = registry.evaluate(name, frame, version, **query.options)
    return EvaluateOut.model_validate(json_safe(result))


@_route(
    "post", "/{name}/evaluate/feedback",
    "Score a version on the prediction log's labelled predictions, beside the predictions served for them",
    write=True, errors={409: _NO_LIVE_VERSION},
    invalid="Invalid request, or logged rows that do not match the version's schema",
    response_model=EvaluateOut,
)
def evaluate_feedback(name: ModelName, registry: RegistryDep, query: EvaluateDep,
                      version: VersionQuery = None) -> EvaluateOut:
    """The rows are the newest logged inputs (of every version) whose true labels came back through
    ``POST /models/{name}/feedback``; ``served`` scores the predictions that answered them, on the same rows — a
    candidate version against the live one on real traffic before promoting it. Nothing is logged or stored."""
    from metalearn.registry.monitor import evaluate_on_feedback

    result = evaluate_on_feedback(registry, name, version, **query.options)
    return EvaluateOut.model_validate(json_safe(result))


@_route(
    "post", "/{name}/explain", "Why a version predicts what it does for a few rows: each feature's Shapley value",
    write=True, errors={409: _NO_LIVE_VERSION},
    invalid="Invalid body, or rows that do not match the training schema",
    response_model=ExplainOut,
)
def explain(name: ModelName, body: ExplainRequest, registry: RegistryDep, settings: SettingsDep) -> ExplainOut:
    """For each row, target and output (a class's probability, or the value): the output on the row, its mean
    over rows of the training sample kept with the version (``base``), and how much each feature moved it
    (interventional Shapley values, sampled; they add up to ``prediction - base``). Nothing is logged or stored."""
    if len(body.rows) > settings.max_predict_rows:
        raise _too_many_rows(len(body.rows), settings)
    result = registry.explain(name, _frame_of(body.rows), body.version, n_permutations=body.n_permutations,
                              background=body.background, top=body.top)
    return ExplainOut.model_validate(json_safe(result))


# ------------------------------------------------------------------------------------------ drift
def _drift_report(registry: ModelRegistry, name: str, version: int | None, settings: Settings) -> dict[str, Any]:
    from metalearn.registry.monitor import check_drift

    return check_drift(registry, name, version, thresholds=settings.drift_thresholds)


@_route(
    "get", "/{name}/drift", "Check data and concept drift of a version (sets or clears its drift flags)",
    errors={409: "No live version"}, invalid=_DRIFT_REFERENCE,
    response_model=DriftOut,
)
def drift(
    name: ModelName,
    registry: RegistryDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    writer: PredictionLogDep,
    version: VersionQuery = None,
) -> DriftOut:
    """Data drift: the logged inputs against the training reference sample; concept drift: the score on the
    labelled feedback against the training score. Updates the ``metalearn_model_drift_*`` gauges."""
    writer.flush()  # the latest predictions count
    report = json_safe(_drift_report(registry, name, version, settings))
    metrics.observe_drift(name, int(report["version"]), report)
    return DriftOut.model_validate(report)


@router.get(
    "/{name}/drift/report",
    response_class=HTMLResponse,
    dependencies=[ReadAccess],
    responses={
        200: {"content": {"text/html": {"schema": {"type": "string"}}}, "description": "The drift report as an HTML page"},
        404: _json_error("Unknown model or version"),
        409: _json_error("No live version"),
        422: _invalid(_DRIFT_REFERENCE),
    },
    summary="The drift report of a version as HTML",
)
def drift_report(
    name: ModelName, registry: RegistryDep, settings: SettingsDep, writer: PredictionLogDep, version: VersionQuery = None
) -> HTMLResponse:
    from metalearn.registry.monitor import drift_report_html

    writer.flush()
    return HTMLResponse(drift_report_html(registry, name, version, thresholds=settings.drift_thresholds))


# ------------------------------------------------------------------------------------------ retraining
def _job_created(request: Request, response: Response, name: str, job_id: str) -> ModelJobCreated:
    """The 202 answer of a submitted model job, with its ``Location``."""
    location = str(request.url_for("get_model_job", name=name, job_id=job_id))
    response.headers["Location"] = location
    return ModelJobCreated(job_id=job_id, name=name, status="pending", location=location)


def _retrain_base(registry: ModelRegistry, name: str, if_drifted: bool) -> ModelVersionRecord:
    """The version a retraining starts from: the live one, else the latest (404: unknown model; 409: with
    ``if_drifted``, no live version or one without a drift flag)."""
    check_name(name)
    store = registry.store
    live = store.aliases(name).get("live")
    if if_drifted:
        if live is None:
            registry.resolve(name)  # 404 for an unknown model, else 409: no live version
        flags = store.flags(name, live)
        if not flags:
            raise ConflictError(
                f"model {name!r} live version {live} carries no drift flag (GET /models/{name}/drift checks); "
                "retrain without if_drifted to retrain anyway"
            )
    return registry.working_version(name)


@_route(
    "post", "/{name}/retrain", "Retrain a model on new data in the background (a new version, not promoted)",
    write=True,
    errors={
        409: "if_drifted: no live version, or the live version carries no drift flag",
        413: "Upload too large",
        429: _TOO_MANY_JOBS,
    },
    response_model=ModelJobCreated,
    status_code=202,
)
@with_search_form
async def retrain(
    name: ModelName,
    request: Request,
    response: Response,
    registry: RegistryDep,
    jobs: ModelJobsDep,
    settings: SettingsDep,
    file: OptionalUploadField = None,
    target: Annotated[
        list[str] | None, Form(description="Target column(s) of the file (default: the model's).")
    ] = None,
    feedback: Annotated[
        bool, Form(description="Train on the prediction log's labelled predictions too (after the file's rows, or "
                               "alone); the new version records them and /evaluate/feedback leaves them out.")
    ] = False,
    kind: Annotated[TaskKind | None, Form(description="Task kind (inferred when absent).")] = None,
    *,
    search: Mapping[str, Any],  # the search parameters' form fields, as POST /searches has them (with_search_form)
    if_drifted: Annotated[
        bool, Query(description="Refuse (409) unless the live version carries a drift flag.")
    ] = False,
) -> ModelJobCreated:
    """A search warm-started from the live version's (else the latest version's) configurations runs on the uploaded data and registers
    its model as the next version (variant ``retrain``); promote it when it is better. Answers 202 with a
    job to poll (``GET /models/{name}/jobs/{job_id}``)."""
    live = await run_in_threadpool(_retrain_base, registry, name, if_drifted)
    search_settings = server_search_settings(search, settings)
    from metalearn.registry.retrain import check_retrain_data, check_retrain_targets, feedback_data

    used: list[str] = []
    if feedback and (target or kind):
        raise HTTPException(422, detail="feedback=true retrains on the model's own targets and kind: drop target "
                                        "and kind (a file must hold the model's target columns)")
    if feedback:  # the labelled log in the model's task, after the file's rows
        frame = None if file is None else (await run_in_threadpool(read_frame, file, settings))[0]
        dataset, used = await run_in_threadpool(partial(feedback_data, version=live.version), registry, name, frame)
    elif file is None:
        raise HTTPException(422, detail="send the new training data as a file, or feedback=true to train on the "
                                        "prediction log's labelled predictions (or both)")
    else:
        live_task = await run_in_threadpool(registry.task, live)
        if target:  # before the upload is read with the model's metric, which another target's kind may not have
            check_retrain_targets(registry, live, target)
        dataset = await run_in_threadpool(read_upload, file, target or list(live_task.targets), settings, kind,
                                          live.metric)
    try:
        check_metric(dataset.task.kind, dataset.task.metric)
    except InputError as exc:
        raise HTTPException(422, detail=str(exc)) from None
    # the targets, kind and feature columns of the model, checked now rather than in the job
    await run_in_threadpool(check_retrain_data, registry, live, dataset)
    job = await run_in_threadpool(jobs.submit_retrain, name, dataset, search_settings, live.version, used)
    return _job_created(request, response, name, job.job_id)


# ------------------------------------------------------------------------------------------ compression
@_route(
    "post", "/{name}/compress",
    "Make smaller/faster variants of a version in the background (ONNX, pruned ensemble, distilled)",
    write=True, errors={429: _TOO_MANY_JOBS}, invalid="Invalid body, or the version is already a compressed variant",
    response_model=ModelJobCreated,
    status_code=202,
)
def compress_model(
    name: ModelName, body: CompressRequest, request: Request, response: Response, registry: RegistryDep,
    jobs: ModelJobsDep,
) -> ModelJobCreated:
    """Each method makes a variant registered as a new version (not promoted) and measured against the
    original on the version's reference sample: artifact size, p50/p99 single-row latency, rows/s and the
    validation score, in the job's ``result`` (``GET /models/{name}/jobs/{job_id}``). A method that does not
    apply (a single pipeline cannot be pruned; no ONNX converter for an estimator) says why there."""
    from metalearn.registry.variants import compressible_version

    base = compressible_version(registry, name, body.version)  # checked now rather than in the job
    job = jobs.submit_compress(name, base, body.methods)
    return _job_created(request, response, name, job.job_id)


@_route(
    "get", "/{name}/jobs", "The retraining and compression jobs of a model, oldest first",
    errors={404: "Unknown model"},
    response_model=list[ModelJobOut],
)
def list_model_jobs(name: ModelName, jobs: ModelJobsDep, registry: RegistryDep) -> list[ModelJobOut]:
    """Every job of the model, from this and earlier server runs (a job a stopped server left unfinished
    is ``interrupted``)."""
    if not registry.store.list_versions(name, include_deleted=True):
        raise missing_model(name)
    return [ModelJobOut.model_validate(j) for j in jobs.list(name)]


@_route(
    "get", "/{name}/jobs/{job_id}", "Status of a retraining or compression job",
    errors={404: "Unknown job"},
    response_model=ModelJobOut,
)
def get_model_job(name: ModelName, job_id: JobId, jobs: ModelJobsDep) -> ModelJobOut:
    return ModelJobOut.model_validate(jobs.get(name, job_id))


@_route(
    "delete", "/{name}/jobs/{job_id}", "Cancel a pending retraining or compression job, or a running retraining",
    write=True, errors={404: "Unknown job", 409: "Already finished"},
    response_model=ModelJobOut,
    status_code=202,
)
def cancel_model_job(name: ModelName, job_id: JobId, jobs: ModelJobsDep) -> ModelJobOut:
    return ModelJobOut.model_validate(jobs.cancel(name, job_id))

