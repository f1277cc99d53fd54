"""Frozen records stored in the knowledge base. Plain data: no behaviour beyond (de)serialisation.

Each record dataclass is the one declaration of its KB table: :mod:`metalearn.kb.schema` derives the
DuckDB columns, the snapshot (Arrow) layout, the primary keys and the normalisers from its fields, their
types (``X | None`` = nullable) and the :class:`Stored` metadata given with ``field(metadata=stored(...))``;
the HTTP response models are derived from them too.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from metalearn.data.task import TaskKind

if TYPE_CHECKING:
    from metalearn.data.dataset import Dataset

#: The task kinds a dataset record may have.
TASK_KINDS: tuple[str, ...] = tuple(str(k) for k in TaskKind)


@dataclass(frozen=True)
class Stored:
    """How a record field is stored, where its type alone does not say (read by :mod:`metalearn.kb.schema`).

    By type: ``str`` VARCHAR/string, ``int`` BIGINT/int64, ``float`` DOUBLE/float64, ``datetime`` TIMESTAMP/
    timestamp[us], ``tuple[str, ...]`` VARCHAR[]/list<string>; ``X | None`` may be missing (NULL).
    """

    key: bool = False  #: part of the table's primary key (so a non-empty string)
    ref: str = ""  #: names a record of this KB table, which must be stored first (a non-empty string, or None)
    minimum: float | None = None  #: the smallest value a number may have (NaN and None pass)
    int32: bool = False  #: INTEGER / int32 rather than BIGINT / int64
    choices: tuple[str, ...] = ()  #: the values allowed (stored as plain str)
    #: a ``dict[str, Any]`` stored as JSON text (column ``<name>_json`` in DuckDB, ``<name>`` in a snapshot):
    #: "canonical" (finite numbers only, the form configuration ids hash) or "lenient" (NaN allowed)
    json: str = ""
    #: a ``dict[str, float]`` stored in a snapshot as two parallel list columns (names, values)
    pairs: tuple[str, str] | None = None
    #: a ``dict[str, float]`` kept in DuckDB in its own long table (one row per entry) instead of a MAP column
    rows_table: str = ""
    #: the schema version that added the field (0: there from the start); a snapshot of an older version
    #: lacks its column and reads as null, and that version's migration adds the DuckDB column
    since: int = 0


def stored(**how: Any) -> dict[str, Stored]:
    """The ``field(metadata=...)`` of a record field stored as ``how`` says (see :class:`Stored`)."""
    return {"kb": Stored(**how)}


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def as_utc(when: datetime) -> datetime:
    """``when`` in UTC, aware; a naive datetime is taken as UTC (the KB stores naive UTC datetimes: :func:`utcnow`)."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def utc_text(when: datetime) -> str:
    """``when`` (naive: UTC) as RFC 3339 / ISO-8601 text in UTC with ``Z``, as the HTTP API and the CLI's JSON give
    timestamps (``2026-12-06T15:40:00.123456Z``); :func:`utc_from_text` reads it back."""
    return as_utc(when).isoformat().replace("+00:00", "Z")


def utc_from_text(text: str) -> datetime:
    """ISO-8601 text as an aware UTC datetime: :func:`utc_text`'s ``...Z`` (or any offset), and naive text, as
    metalearn wrote it before, taken as UTC; ``ValueError`` (``TypeError`` for a non-string) otherwise."""
    return as_utc(datetime.fromisoformat(text))


def canonical_json(obj: Any) -> str:
    """Canonical JSON: sorted keys, no whitespace, floats as repr (so equal configs hash equally)."""

    def norm(v: Any) -> Any:
        if isinstance(v, dict):
            return {str(k): norm(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [norm(x) for x in v]
        if hasattr(v, "item") and not isinstance(v, str | bytes):  # numpy scalar
            v = v.item()
        if isinstance(v, float) and v.is_integer() and abs(v) < 2**53:
            return float(v)
        return v

    return json.dumps(norm(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)


def config_id_for(space: str, space_version: str, values: dict[str, Any]) -> str:
    """Content hash of a configuration within its search space (name + version)."""
    payload = f"{space}\x00{space_version}\x00{canonical_json(values)}"
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def run_id_for(dataset_id: str, config_id: str, protocol: str) -> str:
    """A run is identified by what was evaluated, on what, and how: re-evaluating is a no-op."""
    return hashlib.sha256(f"{dataset_id}\x00{config_id}\x00{protocol}".encode()).hexdigest()[:24]


@dataclass(frozen=True)
class DatasetRecord:
    """A dataset known to the KB. ``dataset_id`` is the content fingerprint."""

    dataset_id: str = field(metadata=stored(key=True))
    name: str
    kind: str = field(metadata=stored(choices=TASK_KINDS))
    n_rows: int = field(metadata=stored(minimum=1))
    n_features: int = field(metadata=stored(int32=True, minimum=0))
    n_categorical: int = field(default=0, metadata=stored(int32=True, minimum=0))
    n_targets: int = field(default=1, metadata=stored(int32=True, minimum=1))
    targets: tuple[str, ...] = ()
    target_kinds: tuple[str, ...] = ()
    origin: str = ""
    openml_id: int | None = None
    created_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class MetaFeatureRecord:
    """The meta-feature vector of one dataset under one extractor version.

    ``values`` maps feature name to value; NaN marks a value the extractor could not compute.
    """

    dataset_id: str = field(metadata=stored(key=True, ref="datasets"))
    version: str = field(metadata=stored(key=True))
    values: dict[str, float] = field(metadata=stored(pairs=("names", "values"), rows_table="metafeature_values"))
    extraction_seconds: float = field(default=0.0, metadata=stored(minimum=0))
    created_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class ConfigurationRecord:
    """A configuration of a search space. ``config_id`` = hash(space, space_version, canonical JSON)."""

    config_id: str = field(metadata=stored(key=True))
    space: str
    space_version: str
    values: dict[str, Any] = field(metadata=stored(json="canonical"))
    created_at: datetime = field(default_factory=utcnow)

    @classmethod
    def create(cls, space: str, space_version: str, values: dict[str, Any]) -> ConfigurationRecord:
        clean = json.loads(canonical_json(values))
        return cls(config_id_for(space, space_version, clean), space, space_version, clean)


RUN_STATUSES = ("ok", "crash", "timeout", "memout")


@dataclass(frozen=True)
class RunRecord:
    """One evaluation of a configuration on a dataset.

    ``protocol`` describes how it was evaluated (e.g. ``cv5-s0`` or ``holdout0.33-s0-sub20000``),
    so the same evaluation is never stored twice: ``run_id = hash(dataset_id, config_id, protocol)``.
    ``metrics`` holds every metric of the task kind (name -> value, in the metric's own direction);
    ``score`` is the task's main metric, ``cost`` the value minimised by the search (lower is better).
    A failed run has status crash/timeout/memout, ``error`` text, and NaN score/cost.
    """

    run_id: str = field(metadata=stored(key=True))
    dataset_id: str = field(metadata=stored(ref="datasets"))
    config_id: str = field(metadata=stored(ref="configurations"))
    protocol: str
    status: str
    metric: str
    score: float
    cost: float
    metrics: dict[str, float] = field(default_factory=dict, metadata=stored(pairs=("metric_names", "metric_values")))
    fit_seconds: float = field(default=0.0, metadata=stored(minimum=0))
    predict_seconds: float = field(default=0.0, metadata=stored(minimum=0))
    error: str = ""
    source: str = ""  # "build", "search", "import:openml", ...
    search_id: str | None = None
    #: fidelity (fraction of data) for multi-fidelity runs; None = full
    budget: float | None = field(default=None, metadata=stored(minimum=0))
    #: rows actually used when the dataset was subsampled
    n_rows_used: int | None = field(default=None, metadata=stored(minimum=1))
    created_at: datetime = field(default_factory=utcnow)

    def __post_init__(self) -> None:
        if self.status not in RUN_STATUSES:
            raise ValueError(f"run status must be one of {RUN_STATUSES}, got {self.status!r}")

    @property
    def ok(self) -> bool:
        return self.status == "ok" and not math.isnan(self.score)


#: ``interrupted``: its process died (e.g. killed) while it ran; its runs are in the KB, so it can be resumed.
SEARCH_STATUSES = ("pending", "running", "done", "failed", "cancelled", "interrupted")


@dataclass(frozen=True)
class SearchRecord:
    """A search (SMAC, random, build exploration) on one dataset: its settings and result.

    ``owner_host``, ``owner_pid`` and ``owner_started`` (the process start time in milliseconds since the epoch,
    so a reused PID is told apart) name the process running it (see :mod:`metalearn.kb.owners`): opening the
    KB read-write marks a pending/running search whose process is gone as ``interrupted``.
    """

    search_id: str = field(metadata=stored(key=True))
    dataset_id: str = field(metadata=stored(ref="datasets"))
    status: str
    settings: dict[str, Any] = field(default_factory=dict, metadata=stored(json="lenient"))
    incumbent_config_id: str | None = field(default=None, metadata=stored(ref="configurations"))
    incumbent_score: float | None = None
    n_trials: int = field(default=0, metadata=stored(minimum=0))
    error: str = ""
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    owner_host: str | None = field(default=None, metadata=stored(since=3))
    owner_pid: int | None = field(default=None, metadata=stored(since=3))
    owner_started: int | None = field(default=None, metadata=stored(since=3))

    def __post_init__(self) -> None:
        if self.status not in SEARCH_STATUSES:
            raise ValueError(f"search status must be one of {SEARCH_STATUSES}, got {self.status!r}")


def dataset_record(dataset: Dataset) -> DatasetRecord:
    """The KB record describing ``dataset`` (its shape, targets and their kinds)."""
    return DatasetRecord(
        dataset_id=dataset.dataset_id,
        name=dataset.name,
        kind=str(dataset.task.kind),
        n_rows=dataset.n_rows,
        n_features=dataset.n_features,
        n_categorical=dataset.n_categorical,
        n_targets=dataset.task.n_targets,
        targets=tuple(dataset.task.targets),
        target_kinds=tuple(str(k) for k in dataset.task.target_kinds),
        origin=dataset.origin,
        openml_id=dataset.openml_id,
    )
