"""Configurations stored in the knowledge base."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from metalearn.service.deps import KBDep, ReadAccess
from metalearn.service.schemas import ID_PATTERN, ConfigurationOut, Message, record_json

router = APIRouter(prefix="/configurations", tags=["knowledge base"], dependencies=[ReadAccess])

ConfigId = Annotated[str, Path(pattern=ID_PATTERN, description="Configuration id (content hash).")]


@router.get(
    "/{config_id}",
    response_model=ConfigurationOut,
    responses={404: {"model": Message}},
    summary="One configuration and its hyperparameter values",
)
def get_configuration(config_id: ConfigId, kb: KBDep) -> ConfigurationOut:
    return ConfigurationOut.model_validate(record_json(kb.get_configuration(config_id)))
