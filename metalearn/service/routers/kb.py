"""Knowledge-base statistics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from metalearn.service.deps import KBDep, MetaFeatureVersionDep, ReadAccess
from metalearn.service.schemas import json_safe

router = APIRouter(prefix="/kb", tags=["knowledge base"], dependencies=[ReadAccess])


@router.get(
    "/stats", response_model=dict[str, Any], summary="Counts of datasets, configurations, runs, searches"
)
async def kb_stats(kb: KBDep, mf_version: MetaFeatureVersionDep) -> dict[str, Any]:
    stats = await run_in_threadpool(kb.stats)
    out = json_safe(dict(stats))
    out["metafeature_version"] = mf_version
    return out
