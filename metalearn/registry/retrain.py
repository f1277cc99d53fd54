"""Retraining a registered model on new data: a warm-started search that tries the version's own
configurations first (the pipeline, or every ensemble member), then the recommendations — the KB holds
the old data's runs, so the old data is a close neighbour of the new — and registers the result as a new
version (variant ``retrain``, parent = the version it started from). Never promoted automatically.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from metalearn.data.dataset import Dataset
from metalearn.data.datetimes import restore_dates
from metalearn.data.errors import InputError
from metalearn.kb.model_store import ModelVersionRecord
from metalearn.registry.registry import ModelRegistry
from metalearn.search.settings import SearchSettings


@dataclass(frozen=True)
class PriorConfiguration:
    """A configuration of the version being retrained, tried before the recommendations."""

    config_id: str
    values: dict[str, Any]
    rank: int
    sources: tuple[str, ...]


def prior_configurations(registry: ModelRegistry, record: ModelVersionRecord) -> list[PriorConfiguration]:
    """The configurations of ``record``'s model (best pipeline first, then ensemble members by weight)."""
    info = record.info
    ids: list[str] = []
    best = ((info.get("search") or {}).get("best") or {}).get("config_id")
    if best:
        ids.append(str(best))
    members = sorted((info.get("model") or {}).get("members") or [], key=lambda m: -float(m.get("weight") or 0))
    ids += [str(m["config_id"]) for m in members if m.get("config_id") and str(m["config_id"]) not in ids]
    configs = registry.kb.get_configurations(ids)
    source = f"{record.name} v{record.version}"
    return [PriorConfiguration(cid, dict(configs[cid].values), i + 1, (source,))
            for i, cid in enumerate(c for c in ids if c in configs)]


def check_retrain_data(registry: ModelRegistry, record: ModelVersionRecord, dataset: Dataset) -> None:
    """The new data must have the version's feature columns and targets (checked before any write)."""
    signature = registry.signature(record)
    task = registry.task(record)
    if list(dataset.task.targets) != list(task.targets):
        raise InputError(
            f"model {record.name!r} predicts {list(task.targets)} but the new data's target(s) are "
            f"{list(dataset.task.targets)}: pass --target {','.join(task.targets)}"
        )
    if str(dataset.task.kind) != str(task.kind):
        raise InputError(
            f"model {record.name!r} is a {task.kind} model but the new data was read as {dataset.task.kind}: "
            f"pass --kind {task.kind}"
        )
    # as the columns were given: a date column may keep other calendar parts on the new data
    signature.validate(restore_dates(dataset.X, dataset.dates), what="the new data")


def retrain(
    registry: ModelRegistry,
    name: str,
    dataset: Dataset,
    settings: SearchSettings | None = None,
    *,
    version: int | None = None,
    on_status: Callable[[str], None] | None = None,
    on_trial: Callable[[Any], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    search_id: str | None = None,
) -> ModelVersionRecord:
    """Retrain model ``name`` (from ``version``, default the live one, else the latest) on ``dataset``;
    returns the new version (not promoted)."""
    from metalearn.search.automl import optimize

    base = registry.working_version(name, version)
    check_retrain_data(registry, base, dataset)
    # the task of the registered version: same metric, so the two versions compare
    task = registry.task(base)
    if dataset.task.metric != task.metric:
        dataset = dataset.with_task(replace(dataset.task, metric=task.metric))
    outcome = optimize(
        dataset, registry.kb, settings or SearchSettings(), on_status=on_status, on_trial=on_trial,
        should_stop=should_stop, search_id=search_id, seed_configs=prior_configurations(registry, base),
        copies=1,  # the new version's file, written within the budget
    )
    return registry.register_outcome(name, outcome, dataset, variant="retrain", parent_version=base.version)
