"""Dependencies of the routes: the resources opened in the lifespan handler, and API-key checks.

They are ``async def`` on purpose: they never block, and FastAPI would otherwise run each one in the
thread pool (a thread hop per dependency per request, which dominated the hot path's overhead).

Routes declare what they need with the ``Annotated`` aliases below (``KBDep``, ``AdvisorDep`` ...), as in
the FastAPI full-stack template's ``api/deps.py``.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request, Security, status
from fastapi.security import APIKeyHeader

from metalearn.kb.base import KnowledgeBase
from metalearn.metalearning.advisor import Advisor
from metalearn.registry.registry import ModelRegistry
from metalearn.service.metrics import ServiceMetrics
from metalearn.service.modeljobs import ModelJobManager
from metalearn.service.predictionlog import PredictionLogWriter
from metalearn.service.searches import SearchManager
from metalearn.service.settings import Settings

API_KEY_HEADER = "X-API-Key"
#: The OpenAPI security scheme name of the key of reads (see ``read_key_scheme``).
READ_KEY_SCHEME = "ReadAPIKey"

api_key_scheme = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="A key from the server's METALEARN_API_KEYS (needed for uploads and searches).",
)


def _state(request: Request, name: str) -> object:
    value = getattr(request.app.state, name, None)
    if value is None:  # the lifespan did not run (an app used without its lifespan)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail="the service is starting up; retry shortly"
        )
    return value


async def get_settings(request: Request) -> Settings:
    settings = _state(request, "settings")
    assert isinstance(settings, Settings)
    return settings


async def get_kb(request: Request) -> KnowledgeBase:
    kb = _state(request, "kb")
    assert isinstance(kb, KnowledgeBase)
    return kb


async def get_advisor(request: Request) -> Advisor:
    advisor = _state(request, "advisor")
    assert isinstance(advisor, Advisor)
    return advisor


async def get_searches(request: Request) -> SearchManager:
    searches = _state(request, "searches")
    assert isinstance(searches, SearchManager)
    return searches


async def get_registry(request: Request) -> ModelRegistry:
    registry = _state(request, "registry")
    assert isinstance(registry, ModelRegistry)
    return registry


async def get_prediction_log(request: Request) -> PredictionLogWriter:
    writer = _state(request, "prediction_log")
    assert isinstance(writer, PredictionLogWriter)
    return writer


async def get_model_jobs(request: Request) -> ModelJobManager:
    jobs = _state(request, "model_jobs")
    assert isinstance(jobs, ModelJobManager)
    return jobs


async def get_metrics(request: Request) -> ServiceMetrics:
    metrics = _state(request, "metrics")
    assert isinstance(metrics, ServiceMetrics)
    return metrics


async def get_metafeature_version(request: Request) -> str:
    """The meta-feature version this service reads and serves (the advisor's)."""
    return (await get_advisor(request)).mf_version


SettingsDep = Annotated[Settings, Depends(get_settings)]
MetaFeatureVersionDep = Annotated[str, Depends(get_metafeature_version)]
KBDep = Annotated[KnowledgeBase, Depends(get_kb)]
AdvisorDep = Annotated[Advisor, Depends(get_advisor)]
SearchesDep = Annotated[SearchManager, Depends(get_searches)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
PredictionLogDep = Annotated[PredictionLogWriter, Depends(get_prediction_log)]
ModelJobsDep = Annotated[ModelJobManager, Depends(get_model_jobs)]
ApiKeyDep = Annotated[str | None, Security(api_key_scheme)]


def check_api_key(settings: Settings, key: str | None, what: str) -> None:
    """Raise 401/403 unless ``key`` is one of the configured keys (or anonymous access is allowed)."""
    keys = settings.key_values()
    if not keys:
        if settings.allow_anonymous_writes:
            return
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"{what} are disabled because no API key is configured; set METALEARN_API_KEYS=key1,key2 "
            "(or METALEARN_ALLOW_ANONYMOUS_WRITES=1 on a trusted network) and restart the server",
        )
    if not key:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail=f"{what} need an API key; send it in the {API_KEY_HEADER} header",
            headers={"WWW-Authenticate": API_KEY_HEADER},
        )
    given = key.encode("utf-8", errors="surrogateescape")
    if not any(hmac.compare_digest(given, k.encode("utf-8")) for k in keys):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"the {API_KEY_HEADER} header does not hold a valid API key; use one of the server's METALEARN_API_KEYS",
        )


async def require_write_access(settings: SettingsDep, key: ApiKeyDep) -> None:
    """Writes (uploads, searches) always need a key."""
    check_api_key(settings, key, "uploads and searches")


async def require_model_write_access(settings: SettingsDep, key: ApiKeyDep) -> None:
    """The registry's writes (promote, rollback, delete, retrain) and its serving (predictions and their
    feedback, which write the prediction log) always need a key."""
    check_api_key(settings, key, "model changes and predictions")


#: The key of a read: its own scheme name marks the reads in the OpenAPI schema, where
#: :mod:`metalearn.service.openapi` declares it as the key security only when reads need a key.
read_key_scheme = APIKeyHeader(
    name=API_KEY_HEADER,
    scheme_name=READ_KEY_SCHEME,
    auto_error=False,
    description="A key from the server's METALEARN_API_KEYS (needed for reads when METALEARN_PROTECT_READS=1).",
)


async def require_read_access(
    settings: SettingsDep, key: Annotated[str | None, Security(read_key_scheme)]
) -> None:
    """Reads need a key only when ``METALEARN_PROTECT_READS=1``."""
    if settings.protect_reads:
        check_api_key(settings, key, "reads")


async def require_docs_access(request: Request, settings: SettingsDep) -> None:
    """``/openapi.json``, ``/docs`` and ``/redoc`` need a key when :attr:`Settings.docs_protected`."""
    if settings.docs_protected:
        check_api_key(settings, request.headers.get(API_KEY_HEADER), "the API docs")


def has_valid_key(request: Request, settings: Settings) -> bool:
    """Whether the request carries one of the configured API keys."""
    key = request.headers.get(API_KEY_HEADER)
    if not key:
        return False
    given = key.encode("utf-8", errors="surrogateescape")
    return any(hmac.compare_digest(given, k.encode("utf-8")) for k in settings.key_values())


WriteAccess = Depends(require_write_access)
ModelWriteAccess = Depends(require_model_write_access)
ReadAccess = Depends(require_read_access)
DocsAccess = Depends(require_docs_access)


async def pagination(
    request: Request,
    limit: Annotated[
        int, Query(ge=1, le=2**31, description="Page size (at most the server's METALEARN_MAX_PAGE_SIZE, 1000 by default).")
    ] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31, description="Items to skip.")] = 0,
) -> tuple[int, int]:
    settings = await get_settings(request)
    if limit > settings.max_page_size:
        raise HTTPException(
            422,
            detail=f"limit must be at most {settings.max_page_size}, got {limit}; page with offset instead",
        )
    return limit, offset


PageDep = Annotated[tuple[int, int], Depends(pagination)]
