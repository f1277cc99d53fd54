"""Datasets of the knowledge base and their runs."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from metalearn.data.errors import NotFoundError
from metalearn.data.task import TaskKind
from metalearn.service.deps import KBDep, MetaFeatureVersionDep, PageDep, ReadAccess
from metalearn.service.schemas import (
    ID_PATTERN,
    DatasetDetail,
    DatasetOut,
    Message,
    Page,
    RunOut,
    json_safe,
    record_json,
)

router = APIRouter(prefix="/datasets", tags=["knowledge base"], dependencies=[ReadAccess])

DatasetId = Annotated[str, Path(pattern=ID_PATTERN, description="Dataset id (content fingerprint).")]


@router.get("", response_model=Page[DatasetOut], summary="Datasets, oldest first, optionally of one kind")
def list_datasets(
    kb: KBDep,
    page: PageDep,
    kind: Annotated[TaskKind | None, Query(description="Only datasets of this task kind.")] = None,
) -> Page[DatasetOut]:
    limit, offset = page
    rows = kb.list_datasets(kind=None if kind is None else str(kind), limit=limit + 1, offset=offset)
    items = [DatasetOut.model_validate(record_json(d)) for d in rows[:limit]]
    return Page[DatasetOut](
        items=items, limit=limit, offset=offset, next_offset=offset + limit if len(rows) > limit else None
    )


@router.get(
    "/{dataset_id}",
    response_model=DatasetDetail,
    responses={404: {"model": Message}},
    summary="One dataset with its stored meta-feature vector",
)
def get_dataset(dataset_id: DatasetId, kb: KBDep, mf_version: MetaFeatureVersionDep) -> DatasetDetail:
    d = kb.get_dataset(dataset_id)
    try:
        mf = kb.get_metafeatures(dataset_id, mf_version)
        values: dict[str, float | None] | None = json_safe(mf.values)
    except NotFoundError:
        values = None
    return DatasetDetail.model_validate(
        {**record_json(d), "metafeature_version": mf_version, "metafeatures": values}
    )


@router.get(
    "/{dataset_id}/runs",
    response_model=Page[RunOut],
    responses={404: {"model": Message}},
    summary="Runs (evaluated configurations) of one dataset, oldest first",
)
def list_dataset_runs(
    dataset_id: DatasetId,
    kb: KBDep,
    page: PageDep,
    status: Annotated[
        Literal["ok", "crash", "timeout", "memout"] | None, Query(description="Only runs with this status.")
    ] = None,
    search_id: Annotated[
        str | None, Query(pattern=ID_PATTERN, description="Only runs of this search.")
    ] = None,
) -> Page[RunOut]:
    limit, offset = page
    kb.get_dataset(dataset_id)  # 404 for an unknown dataset rather than an empty page
    rows = kb.list_runs(
        dataset_id=dataset_id, search_id=search_id, status=status, limit=limit + 1, offset=offset
    )
    return Page[RunOut](
        items=[RunOut.model_validate(record_json(r)) for r in rows[:limit]],
        limit=limit,
        offset=offset,
        next_offset=offset + limit if len(rows) > limit else None,
    )
