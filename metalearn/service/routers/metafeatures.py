"""Meta-feature extraction for uploaded datasets."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from metalearn.metalearning.metafeatures import EXTRACTOR_VERSION, metafeature_names, not_computable
from metalearn.service.deps import KBDep, ReadAccess, SettingsDep, WriteAccess
from metalearn.service.extraction import metafeatures_for
from metalearn.service.routers.recommendations import ERRORS
from metalearn.service.schemas import MetaFeaturesOut, TargetKindOut, finite_or_none
from metalearn.service.uploads import KindField, TargetsField, UploadField, read_upload

router = APIRouter(prefix="/metafeatures", tags=["meta-features"])


class MetaFeatureNamesOut(BaseModel):
    version: str
    names: list[str]


@router.get("", response_model=MetaFeatureNamesOut, dependencies=[ReadAccess], summary="Meta-feature names")
def names() -> MetaFeatureNamesOut:
    return MetaFeatureNamesOut(version=EXTRACTOR_VERSION, names=list(metafeature_names()))


@router.post(
    "",
    response_model=MetaFeaturesOut,
    dependencies=[WriteAccess],
    responses=ERRORS,
    summary="Meta-feature vector of an uploaded dataset",
)
async def extract(
    kb: KBDep,
    settings: SettingsDep,
    file: UploadField,
    target: TargetsField,
    kind: KindField = None,
) -> MetaFeaturesOut:
    """The vector to send to ``POST /recommendations``, with the dataset's fingerprint (its KB id)."""
    dataset = await run_in_threadpool(read_upload, file, target, settings, kind, None)
    mf = await run_in_threadpool(metafeatures_for, kb, dataset)
    return MetaFeaturesOut(
        dataset_id=dataset.dataset_id,
        name=dataset.name,
        kind=str(dataset.task.kind),
        targets=list(dataset.task.targets),
        n_rows=dataset.n_rows,
        n_features=dataset.n_features,
        version=mf.version,
        seconds=round(mf.seconds, 4),
        cached=mf.cached,
        metafeatures={k: finite_or_none(v) for k, v in mf.values.items()},
        target_kinds=TargetKindOut.of(dataset.task),
        not_computable=not_computable(mf.values, dataset.task),
    )
