"""Liveness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from metalearn.service.deps import KBDep, MetricsDep, ReadAccess, SearchesDep, SettingsDep, has_valid_key
from metalearn.service.schemas import HealthOut
from metalearn.service.version import service_version

router = APIRouter(tags=["service"])


@router.get("/health", response_model=HealthOut, summary="Liveness and KB summary")
def health(request: Request, kb: KBDep, searches: SearchesDep, settings: SettingsDep) -> HealthOut:
    """Always open (no API key): load balancers probe it. The KB's path is shown only to a caller sending
    a valid API key (``X-API-Key``)."""
    info: dict[str, Any] = {
        "backend": type(kb).__name__,
        "schema_version": kb.schema_version,
        "read_only": settings.kb_read_only,
    }
    if has_valid_key(request, settings):
        info["path"] = str(getattr(kb, "path", settings.kb or ""))
    return HealthOut(status="ok", version=service_version(), kb=info, searches=searches.counts())


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    dependencies=[ReadAccess],
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text exposition format"}},
)
def metrics(metrics: MetricsDep) -> Response:
    body, content_type = metrics.render()
    return Response(content=body, media_type=content_type)
