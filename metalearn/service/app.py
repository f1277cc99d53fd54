"""The FastAPI application: ``create_app(settings)`` builds it; resources open in the lifespan handler.

Run it with ``metalearn serve`` or ``uvicorn --factory metalearn.service.app:create_app``. OpenAPI docs at ``/docs``.

Lifespan: the KB is opened (seeded from the shipped snapshot when the file is new), ONE
:class:`~metalearn.metalearning.advisor.Advisor` is created and its per-kind frames are loaded, the search worker
pool starts, and a background thread re-checks the advisor's frames every
``advisor_refresh_seconds`` (searches run here refresh them as they finish), so serving a
recommendation never touches the KB.
"""

from __future__ import annotations

import gc
import logging
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Message, Receive, Scope, Send

from metalearn.data.errors import MetaLearnError
from metalearn.data.task import TaskKind
from metalearn.kb.base import KnowledgeBase
from metalearn.metalearning.advisor import Advisor
from metalearn.registry.registry import LogSettings, ModelRegistry
from metalearn.service.deps import DocsAccess
from metalearn.service.errors import http_status
from metalearn.service.limits import BodyLimitMiddleware, json_body_error
from metalearn.service.metrics import HttpMiddleware, MetricsMiddleware, ServiceMetrics, route_of
from metalearn.service.modeljobs import ModelJobManager
from metalearn.service.openapi import allowed_methods, conform_openapi
from metalearn.service.predictionlog import PredictionLogWriter
from metalearn.service.routers import (
    configurations,
    datasets,
    health,
    metafeatures,
    models,
    recommendations,
    searches,
)
from metalearn.service.routers import kb as kb_router
from metalearn.service.searches import SearchManager
from metalearn.service.settings import Settings
from metalearn.service.version import service_version

log = logging.getLogger("metalearn.api")

DESCRIPTION = """\
Meta-learning warm-start AutoML as a service.

* **Recommendations**: send a dataset's meta-feature vector (or upload the dataset) and get ranked
  starting configurations, each explained by the KB datasets it came from.
* **Searches**: upload a dataset and run a warm-started SMAC search in the background; every trial is
  written to the knowledge base.
* **Knowledge base**: browse datasets, their runs and configurations.
* **Models**: the registry of search results: versions, aliases (promote, rollback), predictions with a
  prediction log, feedback, drift checks and retraining.

Write endpoints (uploads, searches, model changes, predictions and feedback) need an `X-API-Key` header holding one of the server's
`METALEARN_API_KEYS`; with `METALEARN_PROTECT_READS=1` reads and these docs do too
(`METALEARN_PROTECT_DOCS` overrides the docs'). Errors are `{"detail": "..."}` with a one-line message.
"""


class AdvisorRefresher:
    """Re-checks the advisor's cached KB frames in the background (never on the request path)."""

    def __init__(self, advisor: Advisor, interval: float) -> None:
        self.advisor = advisor
        self.interval = interval
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def refresh(self, kind: str | None = None) -> None:
        """Reload the frames of ``kind`` (every kind when None) if the KB changed since they were read."""
        kinds = [str(k) for k in TaskKind] if kind is None else [kind]
        with self._lock:
            for k in kinds:
                try:
                    self.advisor.warm(k, check=True)
                except Exception:
                    log.exception("could not load the recommender frames of %s tasks", k)

    def start(self) -> None:
        if self.interval <= 0:
            return
        self._thread = threading.Thread(target=self._loop, name="metalearn-advisor-refresh", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.refresh()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


def _open_kb(settings: Settings) -> KnowledgeBase:
    from metalearn.kb.shipped import open_default_kb

    return open_default_kb(settings.kb, read_only=settings.kb_read_only)


class UnexpectedErrorMiddleware(HttpMiddleware):
    """An error no handler knows becomes a JSON 500 naming an incident id, logged once with its traceback.
    (As an exception handler for ``Exception`` it was logged twice: Starlette re-raises after calling such a
    handler, and the ASGI server logs it again.) Innermost of the middleware, so the metrics see the 500."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            if started:  # too late for another answer: the server closes the connection
                raise
            incident = uuid.uuid4().hex[:12]
            self.metrics.exceptions.labels(route_of(scope)).inc()
            log.error("unexpected error %s on %s %s", incident, scope.get("method"), scope.get("path"), exc_info=exc)
            response = JSONResponse(
                status_code=500, content={"detail": f"internal server error (incident {incident}); it was logged"}
            )
            await response(scope, receive, send)


def create_app(settings: Settings | None = None, *, kb: KnowledgeBase | None = None) -> FastAPI:
    """Build the service. ``kb``: an already open knowledge base to serve (the caller closes it);
    by default the lifespan opens ``settings.kb`` and closes it at shutdown."""
    from metalearn.metalearning.metafeatures import EXTRACTOR_VERSION

    settings = settings or Settings()
    if settings.mlflow_uri:  # said once at the start, not as a warning on every version
        from metalearn.registry.mlflow_sync import require_mlflow

        require_mlflow()
    metrics = ServiceMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = kb if kb is not None else await run_in_threadpool(_open_kb, settings)
        advisor = Advisor(store, mf_version=settings.metafeature_version or EXTRACTOR_VERSION)
        refresher = AdvisorRefresher(advisor, settings.advisor_refresh_seconds)
        await run_in_threadpool(refresher.refresh)  # load every kind's frames before serving
        # the frames and matrices just loaded live as long as the server: keep them out of the
        # cyclic garbage collector's full passes (which otherwise walk them, pausing requests)
        gc.collect()
        gc.freeze()
        registry = ModelRegistry(
            store,
            root=settings.models_dir,
            log=LogSettings(sample=settings.prediction_log_sample, keep=settings.prediction_log_keep),
        )
        prediction_log = PredictionLogWriter(
            registry.write_log,
            interval=settings.prediction_log_flush_seconds,
            batch_rows=settings.prediction_log_flush_rows,
            on_dropped=metrics.log_dropped.inc,
        )
        manager = SearchManager(store, settings, metrics, on_kb_change=refresher.refresh, registry=registry)
        model_jobs = ModelJobManager(registry, settings, on_kb_change=refresher.refresh)
        if kb is None:
            stale = await run_in_threadpool(manager.recover_stale)
            if stale:
                log.warning("marked %d searches of a previous server run as interrupted", stale)
            stale_jobs = await run_in_threadpool(model_jobs.recover_stale)
            if stale_jobs:
                log.warning("marked %d model jobs of a previous server run as interrupted", stale_jobs)
        metrics.watch_kb(store.stats)
        metrics.watch_flags(registry.drift_flags)
        app.state.kb = store
        app.state.advisor = advisor
        app.state.searches = manager
        app.state.refresher = refresher
        app.state.registry = registry
        app.state.prediction_log = prediction_log
        app.state.model_jobs = model_jobs
        refresher.start()
        prediction_log.start()
        try:
            yield
        finally:
            refresher.stop()
            await run_in_threadpool(manager.shutdown)
            await run_in_threadpool(model_jobs.shutdown)
            await run_in_threadpool(prediction_log.close)  # the buffered log reaches the KB before it closes
            app.state.searches = app.state.advisor = app.state.kb = None
            app.state.registry = app.state.prediction_log = app.state.model_jobs = None
            if kb is None:
                store.close()

    # the docs follow the read protection (settings.docs_protected): then they are routes needing a key
    open_docs = not settings.docs_protected
    app = FastAPI(
        title="metalearn recommender service",
        version=service_version(),
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url="/openapi.json" if open_docs else None,
        docs_url="/docs" if open_docs else None,
        redoc_url="/redoc" if open_docs else None,
    )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = conform_openapi(app, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    if not open_docs:

        @app.get("/openapi.json", include_in_schema=False, dependencies=[DocsAccess])
        async def openapi_json() -> JSONResponse:
            return JSONResponse(openapi())

        @app.get("/docs", include_in_schema=False, dependencies=[DocsAccess])
        async def docs() -> HTMLResponse:
            return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - docs")

        @app.get("/redoc", include_in_schema=False, dependencies=[DocsAccess])
        async def redoc() -> HTMLResponse:
            return get_redoc_html(openapi_url="/openapi.json", title=f"{app.title} - ReDoc")

    app.state.settings = settings
    app.state.metrics = metrics
    app.state.kb = app.state.advisor = app.state.searches = None
    app.state.registry = app.state.prediction_log = app.state.model_jobs = None

    # middleware: the last added runs first, so metrics see the 413s of the body limit and the 500s too
    app.add_middleware(UnexpectedErrorMiddleware, metrics=metrics)
    app.add_middleware(
        BodyLimitMiddleware,
        max_upload_bytes=settings.max_upload_bytes,
        max_json_bytes=settings.max_json_bytes,
        json_overrides=[(r"^/models/[^/]+/predict$", settings.max_predict_bytes, "METALEARN_MAX_PREDICT_BYTES")],
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    @app.exception_handler(MetaLearnError)
    async def metalearn_error(request: Request, exc: MetaLearnError) -> JSONResponse:
        return JSONResponse(status_code=http_status(exc), content={"detail": str(exc)})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # a body the JSON parser gave up on: say why instead of FastAPI's bare "error parsing the body"
        text = await json_body_error(request, exc)
        if text is not None:
            return JSONResponse(status_code=exc.status_code, content={"detail": text})
        if exc.status_code == 405:  # routes of one path are separate: Allow names all their methods
            allow = allowed_methods(app, request.url.path) or [
                m.strip() for m in (exc.headers or {}).get("Allow", "").split(",") if m.strip()
            ]
            return JSONResponse(
                status_code=405,
                content={"detail": f"method {request.method} is not allowed here; use {', '.join(allow)}"},
                headers={"Allow": ", ".join(allow)},
            )
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for e in exc.errors():
            # never echo the input back (it may be a whole upload)
            errors.append({"type": e.get("type"), "loc": list(e.get("loc", ())), "msg": e.get("msg")})
        summary = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}" for e in errors[:5]
        )
        return JSONResponse(
            status_code=422,
            content=jsonable_encoder({"detail": errors, "message": f"invalid request: {summary}"}),
        )

    for module in (health, recommendations, metafeatures, searches, models, datasets, configurations, kb_router):
        app.include_router(module.router)
    return app
