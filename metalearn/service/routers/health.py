"""Liveness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response

from metalearn.service.deps import KBDep, MetricsDep, ReadAccess, SearchesDep, SettingsDep
from metalearn.service.schemas import HealthOut
from metalearn.service.version import service_version

router = APIRouter(tags=["service"])


@router.get("/health", response_model=HealthOut, summary="Liveness and KB summary")
def health(kb: KBDep, searches: SearchesDep, settings: SettingsDep) -> HealthOut:
    """Always open (no API key): load balancers probe it."""
    return HealthOut(
        status="ok",
        version=service_version(),
        kb={
            "path": str(getattr(kb, "path", settings.kb or "")),
            "backend": type(kb).__name__,
            "schema_version": kb.schema_version,
            "read_only": settings.kb_read_only,
        },
        searches=searches.counts(),
    )


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
