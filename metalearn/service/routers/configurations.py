"""Configurations stored in the knowledge base."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from metalearn.service.deps import KBDep, ReadAccess
from metalearn.service.schemas import ID_PATTERN, ConfigurationOut, Message, clean_json

router = APIRouter(prefix="/configurations", tags=["knowledge base"], dependencies=[ReadAccess])

ConfigId = Annotated[str, Path(pattern=ID_PATTERN, description="Configuration id (content hash).")]


@router.get(
    "/{config_id}",
    response_model=ConfigurationOut,
    responses={404: {"model": Message}},
    summary="One configuration and its hyperparameter values",
)
def get_configuration(config_id: ConfigId, kb: KBDep) -> ConfigurationOut:
    c = kb.get_configuration(config_id)
    return ConfigurationOut(
        config_id=c.config_id,
        space=c.space,
        space_version=c.space_version,
        values=clean_json(dict(c.values)),
        created_at=c.created_at,
    )
