"""Retraining a registered model on new data: a warm-started search that tries the version's own
configurations first (the pipeline, or every ensemble member), then the recommendations — the KB holds
the old data's runs, so the old data is a close neighbour of the new — and registers the result as a new
version (variant ``retrain``, parent = the version it started from). Never promoted automatically.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from metalearn.data.dataset import Dataset
from metalearn.data.datetimes import restore_dates
from metalearn.data.errors import InputError, option
from metalearn.data.task import TaskKind
from metalearn.kb.model_store import ModelVersionRecord
from metalearn.pipelines.signature import Signature
from metalearn.registry.monitor import FEEDBACK_ROWS, labelled_log
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


def check_retrain_targets(
    registry: ModelRegistry, record: ModelVersionRecord, targets: Sequence[str], what: str = "the new data"
) -> None:
    """Retraining (or a compression measured on ``what``) keeps the version's targets: ``targets`` given for the
    data must be those."""
    task = registry.task(record)
    if list(targets) != list(task.targets):
        raise InputError(
            f"model {record.name!r} predicts {list(task.targets)} but {what}'s target(s) are "
            f"{list(targets)}: give the target(s) {', '.join(task.targets)} (a model of other targets is a new "
            "model: search it and register it under another name)"
        )


def check_retrain_data(registry: ModelRegistry, record: ModelVersionRecord, dataset: Dataset) -> None:
    """The new data must have the version's feature columns and targets (checked before any write)."""
    signature = registry.signature(record)
    task = registry.task(record)
    check_retrain_targets(registry, record, dataset.task.targets)
    if str(dataset.task.kind) != str(task.kind):
        raise InputError(
            f"model {record.name!r} is a {task.kind} model but the new data was read as {dataset.task.kind}: "
            f"pass {option('kind', str(task.kind))}"
        )
    # the feature columns first (as the columns were given: a date column may keep other calendar parts on the
    # new data): data of another dataset was refused for its classes, not for its wholly different columns
    signature.validate(restore_dates(dataset.X, dataset.dates), what="the new data")
    # the classes too: a client reads one probability column per class (version 7 of a 0/1 model answered 0.0 / 3.7);
    # of a binary or multiclass model only: a multi-label label may be constant in new rows, as in training
    if task.kind in (TaskKind.BINARY, TaskKind.MULTICLASS):
        had, got = signature.targets[0], Signature.of(dataset).targets[0]
        if set(had.trained) != set(got.trained):
            raise InputError(
                f"model {record.name!r} predicts the classes {', '.join(map(repr, had.classes or ()))} of {had.name!r}, "
                f"the new data holds {', '.join(map(repr, got.classes or ()))}: a version keeps its model's classes "
                "(clients read one probability per class); give data with rows of every class and no other, or "
                "search a model of these classes under another name (optimize --register NAME)"
            )


def feedback_data(registry: ModelRegistry, name: str, frame: pd.DataFrame | None = None, *,
                  version: int | None = None, limit: int = FEEDBACK_ROWS) -> tuple[Dataset, list[str]]:
    """Data to retrain ``name`` on from its prediction log: the newest ``limit`` labelled predictions (the logged
    inputs with every target labelled, in the schema of ``version``, default the live one, else the latest) after
    the rows of ``frame`` (labelled rows of your own, e.g. a file: the features and the targets) when given; and
    the prediction ids used (:func:`retrain` records them, so that
    :func:`~metalearn.registry.monitor.evaluate_on_feedback` leaves them out when it scores the new version).
    :class:`InputError` when nothing is labelled yet."""
    from metalearn.data.validation import prepare_frame

    record = registry.working_version(name, version)
    task = registry.task(record)
    X, labels, logged = labelled_log(registry, name, record, limit=limit)
    full = labels.notna().all(axis=1).to_numpy()
    if not full.any():
        raise InputError(f"no labelled prediction of model {name!r} has a label for every target "
                         f"({', '.join(task.targets)}): send complete labels first")
    rows = pd.concat([X, labels], axis=1).loc[full]
    if frame is not None:
        rows = pd.concat([frame, rows], ignore_index=True)
    dataset = prepare_frame(rows.reset_index(drop=True), list(task.targets), kind=task.kind, metric=task.metric,
                            name=f"{name} labelled predictions" + (" and new rows" if frame is not None else ""),
                            origin=f"registry:{name}/feedback")
    return dataset, [p.prediction_id for p, keep in zip(logged, full, strict=True) if keep]


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
    feedback: Sequence[str] = (),
) -> ModelVersionRecord:
    """Retrain model ``name`` (from ``version``, default the live one, else the latest) on ``dataset``;
    returns the new version (not promoted). ``feedback``: the ids of the labelled predictions among the rows
    (:func:`feedback_data`), recorded with the version."""
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
    info = {"feedback": {"rows": len(feedback), "prediction_ids": list(feedback)}} if feedback else None
    return registry.register_outcome(name, outcome, dataset, variant="retrain", parent_version=base.version, info=info)
