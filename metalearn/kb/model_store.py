"""The model registry's storage: named models, their immutable versions, aliases, the alias history,
drift flags, the prediction log and feedback. It lives in the KB (the same DuckDB file and the same
transactions), so a version registered by a search is committed with that search's runs.

Rules every backend follows (checked by ``tests/test_model_store.py`` on every backend):

1. **Versions are immutable.** ``add_version`` stores a new ``(name, version)``; adding one that exists
   raises :class:`ConflictError` and writes nothing. Numbers are never reused: ``next_version`` is one
   more than the largest number ever stored under the name, deleted versions included. Deleting a version
   only stamps ``deleted_at`` (its record stays for the history); a deleted version holds no alias.
2. **One version per alias.** ``(name, alias)`` is a key: ``set_alias`` replaces the version an alias
   points at and appends the change to the model's event history *in one transaction*, so a reader sees
   the old or the new version, never none and never two; a crash leaves one of the two states.
3. **Referential integrity.** Aliases, flags, predictions and feedback name a stored, non-deleted version
   (feedback names a logged prediction); otherwise :class:`NotFoundError` and nothing is written.
4. **Bounded log.** ``log_predictions`` appends; ``trim_predictions`` keeps the newest ``keep`` rows of
   a model (their feedback goes with them).
5. **Records out equal records in**, lists ordered by creation (then key); every public write is one
   transaction and joins ``KnowledgeBase.transaction()`` when one is open.
6. **Alias epoch.** Every alias change through any store of a KB (``set_alias``, ``unset_alias``,
   ``delete_version``), and every rolled-back KB transaction, bumps the KB's :meth:`ModelStore.alias_epoch`
   in this process once it is over; so ``aliases()`` read under an epoch that has not moved since is still
   current and a reader may cache it (only one process writes a KB file). The serving path resolves the
   live version this way without a query.
7. **Jobs are records of work, not history.** ``save_job`` inserts or replaces the record of its
   ``job_id`` (a job's status changes, its key does not) for a stored model; ``get_job`` raises
   :class:`NotFoundError` for an unknown id; ``list_jobs`` returns a model's jobs oldest first. A job
   record outlives the process that ran it: one left ``pending``/``running`` by a stopped server is
   marked ``interrupted`` by the next one (its trials and versions are in the KB).
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import json
import math
import threading
import typing
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from metalearn.data.errors import ConflictError, InputError, NotFoundError
from metalearn.kb.records import utcnow

#: What a version was made by.
VARIANTS = ("search", "retrain", "onnx", "pruned", "distilled")
#: The aliases a version may hold.
ALIASES = ("live", "candidate")
#: What an event in a model's history did.
ACTIONS = ("register", "promote", "rollback", "unset", "delete", "flag", "unflag")
#: The flags a version may carry.
FLAGS = ("data_drift", "concept_drift")
#: What a model job does, and the states it goes through (the last four are final).
JOB_OPERATIONS = ("retrain", "compress")
JOB_STATUSES = ("pending", "running", "done", "failed", "cancelled", "interrupted")


@dataclass(frozen=True)
class ModelVersionRecord:
    """One immutable version of a named model: the artifact (path relative to the registry's artifact
    root, format, SHA-256, size) and ``info``: configurations, CV / refit metrics, training schema,
    data fingerprint, meta-features, library versions (see :mod:`metalearn.registry.registry`)."""

    name: str
    version: int
    kind: str
    metric: str
    greater_is_better: bool
    variant: str
    artifact: str
    artifact_format: str
    artifact_sha256: str
    artifact_bytes: int
    info: dict[str, Any]
    search_id: str | None = None
    dataset_id: str | None = None
    parent_version: int | None = None
    created_at: datetime = field(default_factory=utcnow)
    deleted_at: datetime | None = None

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None


@dataclass(frozen=True)
class AliasRecord:
    name: str
    alias: str
    version: int
    updated_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class ModelEventRecord:
    """One change in a model's history (``seq`` counts from 1 per model)."""

    name: str
    seq: int
    action: str
    version: int
    alias: str | None = None
    previous_version: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    happened_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class FlagRecord:
    """A drift flag on a version (``detail`` holds the check that raised it)."""

    name: str
    version: int
    flag: str
    detail: dict[str, Any] = field(default_factory=dict)
    flagged_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class PredictionRecord:
    """One logged prediction: the input row (column -> value) and the outputs (per target: value and,
    for classes, the probabilities)."""

    prediction_id: str
    name: str
    version: int
    features: dict[str, Any]
    outputs: dict[str, Any]
    latency_ms: float = 0.0
    created_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class FeedbackRecord:
    """The true labels of a logged prediction (target -> value)."""

    prediction_id: str
    name: str
    version: int
    labels: dict[str, Any]
    created_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class ModelJobRecord:
    """A retraining or compression job of a model (rule 7). ``detail`` holds what the job was asked
    (``settings``, ``methods``) and what it made (``versions``, ``result``, ``mlflow``)."""

    job_id: str
    name: str
    operation: str
    status: str
    dataset_id: str
    dataset_name: str
    parent_version: int | None = None
    stage: str = ""
    error: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    created_at: datetime = field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None


#: Each table of the registry: its record type and its primary key. The DuckDB DDL (migration 4 in
#: :mod:`metalearn.kb.schema`) is written out as history; ``tests/test_model_store.py`` checks it
#: against these declarations.
MODEL_TABLES: dict[str, tuple[type, tuple[str, ...]]] = {
    "model_versions": (ModelVersionRecord, ("name", "version")),
    "model_aliases": (AliasRecord, ("name", "alias")),
    "model_events": (ModelEventRecord, ("name", "seq")),
    "model_flags": (FlagRecord, ("name", "version", "flag")),
    "prediction_log": (PredictionRecord, ("prediction_id",)),
    "prediction_feedback": (FeedbackRecord, ("prediction_id",)),
    "model_jobs": (ModelJobRecord, ("job_id",)),
}

_SQL_TYPES = {str: "VARCHAR", int: "BIGINT", float: "DOUBLE", bool: "BOOLEAN", datetime: "TIMESTAMP"}


def _plain(hint: Any) -> tuple[Any, bool]:
    args = typing.get_args(hint)
    if type(None) in args:
        (inner,) = (a for a in args if a is not type(None))
        return inner, True
    return hint, False


def table_columns(table: str) -> list[tuple[str, str, bool]]:
    """(DuckDB column, type, nullable) of ``table``, derived from its record: a ``dict`` field is JSON
    text in column ``<field>_json``."""
    return list(_table_columns(table))


@functools.cache
def _table_columns(table: str) -> tuple[tuple[str, str, bool], ...]:
    cls, _ = MODEL_TABLES[table]
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        hint, nullable = _plain(hints[f.name])
        if typing.get_origin(hint) is dict:
            out.append((f"{f.name}_json", "VARCHAR", nullable))
        else:
            out.append((f.name, _SQL_TYPES[hint], nullable))
    return tuple(out)


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, datetime):
        return o.isoformat()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def to_row(table: str, record: Any) -> list[Any]:
    """``record`` as the values of :func:`table_columns` (dicts as JSON text; NaN written as null)."""
    values = []
    for f in dataclasses.fields(record):
        v = getattr(record, f.name)
        if isinstance(v, dict):
            try:
                v = json.dumps(v, default=_json_default, allow_nan=False, separators=(",", ":"))
            except ValueError:  # NaN / inf inside: as null
                v = json.dumps(_nan_to_none(v), default=_json_default, separators=(",", ":"))
        values.append(v)
    return values


def _nan_to_none(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _nan_to_none(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_nan_to_none(x) for x in v]
    return v


def from_row(table: str, row: Sequence[Any]) -> Any:
    cls, _ = MODEL_TABLES[table]
    values: dict[str, Any] = {}
    for f, (col, _, _) in zip(dataclasses.fields(cls), _table_columns(table), strict=True):
        v = row[len(values)]
        values[f.name] = json.loads(v) if col.endswith("_json") and v is not None else v
    return cls(**values)


def normalise(table: str, record: Any) -> Any:
    """``record`` checked (type, choices) and in stored form (dicts through JSON, NaN as None)."""
    check_record(table, record)
    return from_row(table, to_row(table, record))


def check_record(table: str, record: Any) -> None:
    """:class:`InputError` unless ``record`` is ``table``'s record with allowed choices and a name."""
    cls, _ = MODEL_TABLES[table]
    if not isinstance(record, cls):
        raise InputError(f"expected a {cls.__name__}, got {type(record).__name__}")
    checks = {"variant": VARIANTS, "alias": ALIASES, "action": ACTIONS, "flag": FLAGS,
              "operation": JOB_OPERATIONS, "status": JOB_STATUSES}
    for name, allowed in checks.items():
        v = getattr(record, name, None)
        if v is not None and v not in allowed:
            raise InputError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {v!r}")
    if not getattr(record, "name", "x"):
        raise InputError("a model name must be a non-empty string")


def check_version(version: Any) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InputError(f"a model version is a positive integer, got {version!r}")
    return version


def missing_model(name: str, version: int | None = None) -> NotFoundError:
    if version is None:
        return NotFoundError(
            f"model {name!r} is not in the registry: `metalearn models list` (GET /models) shows the registered models"
        )
    return NotFoundError(
        f"model {name!r} has no version {version}: `metalearn models show {name}` (GET /models/{name}) lists its versions"
    )


def live_refused(name: str, version: int) -> ConflictError:
    """The refusal to delete the live version."""
    return ConflictError(
        f"model {name!r} version {version} is live: promote another version first, then delete this one"
    )


_ALIAS_EPOCHS: dict[str, int] = {}
_ALIAS_EPOCHS_GUARD = threading.Lock()


def bump_alias_epoch(key: str) -> None:
    """Mark the aliases of the KB ``key`` as changed (rule 6)."""
    with _ALIAS_EPOCHS_GUARD:
        _ALIAS_EPOCHS[key] = _ALIAS_EPOCHS.get(key, 0) + 1


class ModelStore(abc.ABC):
    """Storage of the model registry; see the module docstring for the rules."""

    #: the KB this store lives in (its file, or an in-memory KB's identity): the key of its alias epoch
    epoch_key: str = ""

    def alias_epoch(self) -> int:
        """This process's count of alias changes in this store's KB (rule 6)."""
        return _ALIAS_EPOCHS.get(self.epoch_key, 0)

    @contextmanager
    def _changing_aliases(self) -> Iterator[None]:
        """Around a write that may change aliases: bumps the epoch when it is over (done or failed)."""
        try:
            yield
        finally:
            bump_alias_epoch(self.epoch_key)

    # -- versions --------------------------------------------------------------------------------
    @abc.abstractmethod
    def next_version(self, name: str) -> int:
        """1 + the largest version number ever stored under ``name`` (1 for a new name)."""

    @abc.abstractmethod
    def add_version(self, record: ModelVersionRecord) -> None:
        """Store a new version (and its ``register`` event); :class:`ConflictError` if it exists."""

    @abc.abstractmethod
    def get_version(self, name: str, version: int) -> ModelVersionRecord:
        """:class:`NotFoundError` if absent (deleted versions are returned, with ``deleted_at``)."""

    @abc.abstractmethod
    def list_versions(self, name: str, include_deleted: bool = False) -> list[ModelVersionRecord]: ...

    @abc.abstractmethod
    def list_models(self) -> list[str]:
        """Names with at least one version that is not deleted, sorted."""

    @abc.abstractmethod
    def delete_version(self, name: str, version: int) -> list[str]:
        """Stamp ``deleted_at``, drop its aliases and flags, record a ``delete`` event; returns the aliases it
        held. The ``live`` version is refused (:class:`ConflictError`), checked in the same transaction as the
        write, so a concurrent promote of the version cannot leave the model without a live version."""

    # -- aliases ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def aliases(self, name: str) -> dict[str, int]:
        """alias -> version for ``name``."""

    @abc.abstractmethod
    def set_alias(
        self, name: str, alias: str, version: int, action: str, detail: dict[str, Any] | None = None
    ) -> int | None:
        """Point ``alias`` at ``version`` and append the event, atomically; returns the version it pointed at
        before (None: none), read in the same transaction. An alias already at ``version`` is left as it is
        (no event)."""

    @abc.abstractmethod
    def unset_alias(self, name: str, alias: str) -> None: ...

    @abc.abstractmethod
    def events(self, name: str) -> list[ModelEventRecord]:
        """The model's history, oldest first."""

    # -- flags -----------------------------------------------------------------------------------
    @abc.abstractmethod
    def set_flag(self, record: FlagRecord) -> None:
        """Upsert a flag (newest detail wins)."""

    @abc.abstractmethod
    def clear_flag(self, name: str, version: int, flag: str) -> bool:
        """Remove a flag; whether there was one."""

    @abc.abstractmethod
    def flags(self, name: str, version: int | None = None) -> list[FlagRecord]: ...

    # -- prediction log and feedback -------------------------------------------------------------
    @abc.abstractmethod
    def log_predictions(self, records: Sequence[PredictionRecord]) -> int:
        """Append logged predictions; returns how many were new (an existing id is skipped)."""

    @abc.abstractmethod
    def trim_predictions(self, name: str, keep: int) -> int:
        """Keep the newest ``keep`` logged predictions of ``name`` (and their feedback); returns rows removed."""

    @abc.abstractmethod
    def recent_predictions(self, name: str, version: int | None = None, limit: int = 1000) -> list[PredictionRecord]:
        """The newest ``limit`` logged predictions, returned oldest first."""

    @abc.abstractmethod
    def get_predictions(self, prediction_ids: Sequence[str]) -> dict[str, PredictionRecord]:
        """The logged ones among ``prediction_ids``."""

    @abc.abstractmethod
    def add_feedback(self, records: Sequence[FeedbackRecord]) -> int:
        """Store labels of logged predictions (a newer label for the same prediction replaces the older);
        :class:`NotFoundError` (nothing written) when a prediction id is not logged."""

    @abc.abstractmethod
    def feedback(self, name: str, version: int | None = None, limit: int = 10_000) -> list[tuple[PredictionRecord, FeedbackRecord]]:
        """The newest ``limit`` labelled predictions, oldest first (by prediction time)."""

    @abc.abstractmethod
    def counts(self, name: str) -> dict[str, int]:
        """Logged predictions and feedback rows of ``name``."""

    # -- jobs ------------------------------------------------------------------------------------
    @abc.abstractmethod
    def save_job(self, record: ModelJobRecord) -> None:
        """Insert or replace the job ``record.job_id`` (rule 7); :class:`NotFoundError` for an unknown model."""

    @abc.abstractmethod
    def get_job(self, job_id: str) -> ModelJobRecord:
        """:class:`NotFoundError` if there is no such job."""

    @abc.abstractmethod
    def list_jobs(self, name: str | None = None) -> list[ModelJobRecord]:
        """The jobs of ``name`` (every model's when None), oldest first."""


def missing_job(job_id: str) -> NotFoundError:
    return NotFoundError(f"the registry has no job {job_id!r}: `GET /models/{{name}}/jobs` lists a model's jobs")
