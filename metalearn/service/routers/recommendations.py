"""Recommendations: ranked starting configurations for a dataset, with explanations.

``POST /recommendations`` takes a meta-feature vector (JSON) and is the hot path: it is answered from
the advisor's in-memory frames (``check_fresh=False``; the app refreshes them in the background and
after every search), never by scanning the KB.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException
from fastapi.concurrency import run_in_threadpool

from metalearn.data.dataset import Dataset
from metalearn.data.errors import InputError
from metalearn.data.metrics import check_metric
from metalearn.data.task import TaskKind
from metalearn.metalearning.advisor import Advisor
from metalearn.service.deps import AdvisorDep, KBDep, ReadAccess, SettingsDep, WriteAccess
from metalearn.service.extraction import metafeatures_for
from metalearn.service.schemas import (
    Message,
    RecommendationRequest,
    RecommendationResponse,
    StrategiesOut,
    TargetKindOut,
)
from metalearn.service.uploads import KindField, TargetsField, UploadField, read_upload

router = APIRouter(prefix="/recommendations", tags=["recommendations"])

ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": Message, "description": "Bad input (one-line message)"},
    401: {"model": Message, "description": "Missing API key"},
    403: {"model": Message, "description": "Invalid API key, or writes not configured"},
    413: {"model": Message, "description": "Upload too large"},
}


def check_strategy(strategy: str | None) -> str:
    names = Advisor.strategies()
    if strategy is not None and strategy not in names:
        raise HTTPException(422, detail=f"unknown strategy {strategy!r}; choose one of {', '.join(names)}")
    return Advisor.resolve_strategy(strategy)


def compute_recommendations(
    advisor: Advisor,
    metafeatures: Mapping[str, float | None],
    kind: TaskKind,
    strategy: str | None,
    k: int,
    exclude: Iterable[str],
    dataset_id: str | None = None,
    dataset: Dataset | None = None,
    metric: str | None = None,
) -> RecommendationResponse:
    name = check_strategy(strategy)
    recs, n_used = advisor.recommend_with_count(
        metafeatures, kind, strategy=name, k=k, exclude_ids=exclude, check_fresh=False,
        metric=dataset.task.metric if dataset is not None else metric,
    )  # fmt: skip
    if not recs and dataset is not None:  # an upload: a multitask warm start composed per target
        recs = advisor.recommend_dataset(dataset, metafeatures, name, k, exclude, check_fresh=False)
    return RecommendationResponse.model_validate(
        {
            "kind": str(kind),
            "strategy": name,
            "k": k,
            "metafeature_version": advisor.mf_version,
            "n_features_used": n_used,
            "dataset_id": dataset_id,
            "recommendations": [r.to_dict() for r in recs],
            "reason": None if recs else advisor.no_recommendation_reason(kind, exclude),
        }
    )


@router.get(
    "/strategies", response_model=StrategiesOut, dependencies=[ReadAccess], summary="Recommender strategies"
)
def strategies() -> StrategiesOut:
    return StrategiesOut(strategies=Advisor.strategies(), default=Advisor.resolve_strategy(None))


@router.post(
    "",
    response_model=RecommendationResponse,
    dependencies=[ReadAccess],
    responses=ERRORS,
    summary="Recommend configurations for a meta-feature vector",
)
async def recommend(body: RecommendationRequest, advisor: AdvisorDep) -> RecommendationResponse:
    """Rank configurations of the KB for a dataset described by its meta-features (from ``POST /metafeatures``).

    Each recommendation explains itself: the strategy's reasoning, its expected normalised regret and
    the KB datasets it came from (with their meta-feature distance and the configuration's regret there).
    """
    if body.metric is not None:  # a metric of another kind: 400, as the schema takes any name
        check_metric(body.kind, body.metric)
    ranked_by = Advisor.ranking_metric(body.kind, body.metric)
    if ranked_by is not None and not advisor.is_prepared(body.kind, ranked_by):
        # another metric's first query reads the KB's runs scored by it (seconds): off the event loop
        return await run_in_threadpool(
            compute_recommendations, advisor, body.metafeatures, body.kind, body.strategy, body.k,
            body.exclude_dataset_ids, None, None, body.metric,
        )  # fmt: skip
    # Computed inline on the event loop on purpose: it is a few milliseconds of CPU-bound work on
    # in-memory arrays (the advisor never touches the KB here), and a thread-pool hop per request
    # costs more than it saves under load (GIL hand-offs between the loop and the worker).
    return compute_recommendations(
        advisor, body.metafeatures, body.kind, body.strategy, body.k, body.exclude_dataset_ids, metric=body.metric
    )


@router.post(
    "/upload",
    response_model=RecommendationResponse,
    dependencies=[WriteAccess],
    responses=ERRORS,
    summary="Recommend configurations for an uploaded dataset",
)
async def recommend_upload(
    kb: KBDep,
    advisor: AdvisorDep,
    settings: SettingsDep,
    file: UploadField,
    target: TargetsField,
    kind: KindField = None,
    metric: Annotated[str | None, Form(max_length=64, description="Metric (default: the kind's).")] = None,
    strategy: Annotated[str | None, Form(max_length=64, description="Recommender strategy.")] = None,
    k: Annotated[int, Form(ge=1, le=100, description="How many configurations.")] = 10,
) -> RecommendationResponse:
    """Extract the dataset's meta-features (or reuse the KB's) and recommend; the dataset itself is excluded."""
    check_strategy(strategy)
    dataset = await run_in_threadpool(read_upload, file, target, settings, kind, metric or None)
    try:  # as POST /searches answers for the same upload
        check_metric(dataset.task.kind, dataset.task.metric)
    except InputError as exc:
        raise HTTPException(422, detail=str(exc)) from None
    mf = await run_in_threadpool(metafeatures_for, kb, dataset)
    response = await run_in_threadpool(
        compute_recommendations,
        advisor,
        mf.values,
        dataset.task.kind,
        strategy,
        k,
        {dataset.dataset_id},
        dataset.dataset_id,
        dataset,
    )
    response.target_kinds = TargetKindOut.of(dataset.task)
    return response
