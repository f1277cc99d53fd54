"""Knowledge-base statistics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from api.deps import KBDep, ReadAccess
from api.schemas import clean_json
from metalearn.metafeatures import EXTRACTOR_VERSION

router = APIRouter(prefix="/kb", tags=["knowledge base"], dependencies=[ReadAccess])


@router.get(
    "/stats", response_model=dict[str, Any], summary="Counts of datasets, configurations, runs, searches"
)
async def kb_stats(kb: KBDep) -> dict[str, Any]:
    stats = await run_in_threadpool(kb.stats)
    out = clean_json(dict(stats))
    out["metafeature_version"] = EXTRACTOR_VERSION
    return out
