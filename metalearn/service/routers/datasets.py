"""Datasets of the knowledge base and their runs."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from metalearn.data.errors import NotFoundError
from metalearn.data.task import TaskKind
from metalearn.kb.records import DatasetRecord, RunRecord
from metalearn.service.deps import KBDep, MetaFeatureVersionDep, PageDep, ReadAccess
from metalearn.service.schemas import (
    ID_PATTERN,
    DatasetDetail,
    DatasetOut,
    Message,
    Page,
    RunOut,
    finite_or_none,
)

router = APIRouter(prefix="/datasets", tags=["knowledge base"], dependencies=[ReadAccess])

DatasetId = Annotated[str, Path(pattern=ID_PATTERN, description="Dataset id (content fingerprint).")]


def dataset_out(d: DatasetRecord) -> dict[str, object]:
    return {
        "dataset_id": d.dataset_id,
        "name": d.name,
        "kind": d.kind,
        "n_rows": d.n_rows,
        "n_features": d.n_features,
        "n_categorical": d.n_categorical,
        "n_targets": d.n_targets,
        "targets": list(d.targets),
        "target_kinds": list(d.target_kinds),
        "origin": d.origin,
        "openml_id": d.openml_id,
        "created_at": d.created_at,
    }


def run_out(r: RunRecord) -> RunOut:
    return RunOut(
        run_id=r.run_id,
        dataset_id=r.dataset_id,
        config_id=r.config_id,
        protocol=r.protocol,
        status=r.status,
        metric=r.metric,
        score=finite_or_none(r.score),
        cost=finite_or_none(r.cost),
        metrics={str(k): finite_or_none(v) for k, v in (r.metrics or {}).items()},
        fit_seconds=finite_or_none(r.fit_seconds),
        predict_seconds=finite_or_none(r.predict_seconds),
        error=r.error,
        source=r.source,
        search_id=r.search_id,
        budget=finite_or_none(r.budget),
        n_rows_used=r.n_rows_used,
        created_at=r.created_at,
    )


@router.get("", response_model=Page[DatasetOut], summary="Datasets, oldest first, optionally of one kind")
def list_datasets(
    kb: KBDep,
    page: PageDep,
    kind: Annotated[TaskKind | None, Query(description="Only datasets of this task kind.")] = None,
) -> Page[DatasetOut]:
    limit, offset = page
    rows = kb.list_datasets(kind=None if kind is None else str(kind), limit=limit + 1, offset=offset)
    items = [DatasetOut.model_validate(dataset_out(d)) for d in rows[:limit]]
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
        values: dict[str, float | None] | None = {k: finite_or_none(v) for k, v in mf.values.items()}
    except NotFoundError:
        values = None
    return DatasetDetail.model_validate(
        {**dataset_out(d), "metafeature_version": mf_version, "metafeatures": values}
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
        items=[run_out(r) for r in rows[:limit]],
        limit=limit,
        offset=offset,
        next_offset=offset + limit if len(rows) > limit else None,
    )
