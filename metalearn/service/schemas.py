"""Request and response models of the HTTP API (requests and responses are separate models).

Floats that may be unknown (NaN in the KB) are ``float | None`` and travel as JSON ``null``. The models of
KB records are derived from the record dataclasses (:func:`record_model`), so a record field is declared once.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import operator
import types
import typing
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    WithJsonSchema,
    create_model,
    field_validator,
)

from metalearn.data.numbers import finite_or_none, json_safe
from metalearn.data.task import Task, TaskKind
from metalearn.kb.records import ConfigurationRecord, DatasetRecord, RunRecord, as_utc

T = TypeVar("T")

#: Identifiers of KB records (content hashes, search ids): letters, digits and a few separators.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"

MAX_METAFEATURES = 5000
MAX_EXCLUDE = 10_000


__all__ = ["finite_or_none", "json_safe"]  # routers take the shared NaN helpers from here too


#: A timestamp in a response: the KB's naive UTC datetimes travel as RFC 3339 date-times with ``Z`` (as_utc).
UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]


# ------------------------------------------------------------------------------------------ generic
class Page(BaseModel, Generic[T]):
    """One page of a listing. ``next_offset`` is the offset of the next page, null on the last page."""

    items: list[T]
    limit: int
    offset: int
    next_offset: int | None = None


class Message(BaseModel):
    """An error: ``detail`` says what was wrong and how to fix it."""

    detail: str


# ------------------------------------------------------------------------------------------ KB records
def _json_type(tp: Any) -> Any:
    """The type a record field has in JSON, as :func:`json_safe` makes it: a float may be null (NaN),
    a tuple is a list."""
    args = typing.get_args(tp)
    origin = typing.get_origin(tp)
    if tp is float:
        return float | None
    if tp is datetime:
        return UtcDatetime
    if origin is tuple:
        return types.GenericAlias(list, (_json_type(args[0]),))
    if origin is dict:
        return types.GenericAlias(dict, (args[0], _json_type(args[1])))
    if args and type(None) in args:
        return functools.reduce(operator.or_, [_json_type(a) for a in args])
    return tp


def record_model(record: type) -> type[BaseModel]:
    """The response model of a KB record dataclass: its fields in order, typed as :func:`record_json`
    gives them; a field that may be None defaults to null, every other one is required."""
    hints = typing.get_type_hints(record)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(record):
        nullable = type(None) in typing.get_args(hints[f.name])
        fields[f.name] = (_json_type(hints[f.name]), None if nullable else ...)
    return create_model(f"{record.__name__}Fields", __module__=__name__, **fields)


def record_json(record: Any) -> dict[str, Any]:
    """A KB record as its response model takes it (NaN/inf -> None, tuples -> lists)."""
    return json_safe({f.name: getattr(record, f.name) for f in dataclasses.fields(record)})


# The classes take their fields from the record dataclasses (no docstrings: they would enter the OpenAPI).
class DatasetOut(record_model(DatasetRecord)):  # type: ignore[misc]
    pass


class DatasetDetail(DatasetOut):
    metafeature_version: str
    metafeatures: dict[str, float | None] | None = Field(
        default=None,
        description="The stored meta-feature vector (null when the KB has none for this version).",
    )


class RunOut(record_model(RunRecord)):  # type: ignore[misc]
    pass


class ConfigurationOut(record_model(ConfigurationRecord)):  # type: ignore[misc]
    pass


# ------------------------------------------------------------------------------------- recommendations
#: the largest meta-feature magnitude a query may hold (the extractor's values are far smaller: counts are logs)
METAFEATURE_LIMIT = 1e12


#: a meta-feature value: a number within ±METAFEATURE_LIMIT (the schema says so; the validator says what was wrong)
_MetaFeatureValue = Annotated[
    StrictFloat, WithJsonSchema({"type": "number", "minimum": -METAFEATURE_LIMIT, "maximum": METAFEATURE_LIMIT})
]


class RecommendationRequest(BaseModel):
    """A query: the meta-feature vector of a dataset (as returned by ``POST /metafeatures``) and its kind."""

    model_config = ConfigDict(extra="forbid")

    # strict: a string or a boolean is not silently read as a number (the schema says number or null)
    metafeatures: dict[str, _MetaFeatureValue | None] = Field(
        ...,
        description="Meta-feature name -> value; null (or absent) for values that could not be computed.",
        max_length=MAX_METAFEATURES,
    )
    kind: TaskKind = Field(..., description="Task kind of the dataset.")
    strategy: str | None = Field(
        default=None, description="Recommender strategy (default: the service's best)."
    )
    k: int = Field(default=10, ge=1, le=100, description="How many configurations to return.")
    exclude_dataset_ids: list[str] = Field(
        default_factory=list, max_length=MAX_EXCLUDE, description="KB datasets not to use as evidence."
    )
    metric: str | None = Field(
        default=None,
        max_length=64,
        description="The metric to rank by (default: the kind's); another of the kind's metrics ranks the KB's "
        "configurations by their regret in it (every KB run records all its kind's metrics).",
    )

    @field_validator("metafeatures")
    @classmethod
    def _finite(cls, v: dict[str, float | None]) -> dict[str, float | None]:
        bad = [name for name, x in v.items() if x is not None and math.isinf(x)]
        if bad:
            raise ValueError(f"meta-feature values must be finite numbers or null; infinite: {bad[:5]}")
        huge = [name for name, x in v.items() if x is not None and abs(x) > METAFEATURE_LIMIT]
        if huge:  # 1e308 overflowed the distances: an empty answer that blamed the search space
            raise ValueError(
                f"meta-feature values beyond ±{METAFEATURE_LIMIT:g}, which no extractor gives (counts are "
                f"log-scaled): {huge[:5]}; send the vector POST /metafeatures returns"
            )
        return v

    @field_validator("k", mode="before")
    @classmethod
    def _whole_number(cls, v: Any) -> Any:
        """A JSON number (40.0 is one); not ``true`` (read as 1) or ``"5"``."""
        if isinstance(v, bool | str):
            raise ValueError(f"k must be a whole number, got {v!r}")
        return v

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from metalearn.metalearning.advisor import Advisor

        names = Advisor.strategies()
        if v not in names:
            raise ValueError(f"unknown strategy {v!r}; choose one of {', '.join(names)}")
        return v


class SourceOut(BaseModel):
    dataset_id: str
    name: str
    distance: float | None = None
    regret: float | None = None
    failed: bool = False  # every run of the configuration there failed (timeout, crash, memout): regret 1


class RecommendedConfigOut(BaseModel):
    rank: int
    config_id: str
    space: str
    space_version: str
    values: dict[str, Any]
    strategy: str
    expected_regret: float | None = Field(
        default=None,
        description="Predicted normalised regret on this dataset (0: as good as the best configuration "
        "observed on similar KB datasets, 1: the worst), from the KB datasets that evaluated it.",
    )
    expected_score: float | None = Field(
        default=None, description="The same prediction in the units of score_metric (null when not estimable)."
    )
    score_metric: str | None = Field(default=None, description="The metric of expected_score.")
    composed: bool = Field(
        default=False, description="Composed per target for a multitask dataset (the KB has no multitask runs)."
    )
    ranked_by: str | None = Field(
        default=None,
        description="The metric of the KB runs' regrets: the request's metric when it is another of its kind's "
        "metrics (every run records them all), else the kind's default.",
    )
    explanation: str
    sources: list[SourceOut]


class TargetKindOut(BaseModel):
    """The task kind of one target column, and why it has it."""

    name: str
    kind: str
    reason: str = Field(description="Why: the inference's reason, or that the kind was given and checked.")

    @classmethod
    def of(cls, task: Task) -> list[TargetKindOut]:
        reasons = task.kind_reasons or ("",) * task.n_targets
        return [cls(name=n, kind=str(k), reason=r) for n, k, r in zip(task.targets, task.target_kinds, reasons,
                                                                         strict=True)]


class RecommendationResponse(BaseModel):
    kind: str
    strategy: str
    k: int
    metafeature_version: str
    n_features_used: int = Field(description="How many of the query's meta-features the KB knows (non-null).")
    dataset_id: str | None = Field(
        default=None, description="Fingerprint of the uploaded dataset (uploads only)."
    )
    recommendations: list[RecommendedConfigOut]
    target_kinds: list[TargetKindOut] | None = Field(
        default=None, description="The kind of every target of the uploaded dataset and why (uploads only)."
    )
    reason: str | None = Field(
        default=None, description="Why no configuration could be recommended (null when there are some)."
    )


class StrategiesOut(BaseModel):
    strategies: list[str]
    default: str


# -------------------------------------------------------------------------------------- meta-features
class MetaFeaturesOut(BaseModel):
    dataset_id: str = Field(description="Content fingerprint of the uploaded dataset (its KB id).")
    name: str
    kind: str
    targets: list[str]
    n_rows: int
    n_features: int
    version: str = Field(description="Meta-feature extractor version.")
    seconds: float
    cached: bool = Field(description="True when the vector came from the KB instead of being extracted.")
    metafeatures: dict[str, float | None]
    target_kinds: list[TargetKindOut] | None = Field(
        default=None, description="The kind of every target and why (inferred, or given and checked)."
    )
    not_computable: dict[str, str] = Field(
        default_factory=dict,
        description="Each meta-feature without a value (null above) and why: the targets its group is defined "
        "for when the dataset has none, else 'not computable on this data'.",
    )


# ------------------------------------------------------------------------------------------- searches
SearchStatus = Literal["pending", "running", "done", "failed", "cancelled", "interrupted"]


class SearchCreated(BaseModel):
    search_id: str
    status: SearchStatus
    dataset_id: str
    location: str


class TrialOut(BaseModel):
    number: int
    config_id: str
    origin: str
    status: str
    score: float | None
    seconds: float | None
    budget: float | None = None
    best_score: float | None = None
    error: str = ""
    sources: list[str] = Field(default_factory=list)


class Incumbent(BaseModel):
    config_id: str
    score: float | None
    values: dict[str, Any] | None = None


class MlflowSyncOut(BaseModel):
    """What the server mirrored to MLflow (METALEARN_MLFLOW_URI): a run and model version, an alias, or
    the warning when MLflow refused or could not be reached (the metalearn registry is unchanged by it)."""

    run_id: str | None = None
    mlflow_version: int | None = None
    alias: str | None = None
    warning: str | None = None


class RegisteredVersionOut(BaseModel):
    """The model version a search registers its final model as (``version`` null until it is stored)."""

    name: str
    version: int | None = None
    mlflow: MlflowSyncOut | None = Field(
        default=None, description="The version as logged to MLflow (when the server syncs, METALEARN_MLFLOW_URI)."
    )


class SearchSummaryOut(BaseModel):
    search_id: str
    dataset_id: str
    dataset_name: str | None = None
    kind: str | None = None
    metric: str | None = None
    status: SearchStatus
    cancel_requested: bool = False
    n_trials: int
    incumbent: Incumbent | None = None
    error: str = ""
    created_at: UtcDatetime
    updated_at: UtcDatetime | None = None
    started_at: UtcDatetime | None = None
    finished_at: UtcDatetime | None = None
    model: RegisteredVersionOut | None = Field(
        default=None,
        description="The model version the search registered its final model as (searches started with 'register').",
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="What the search warned of (e.g. earlier runs of the data it did not resume, one of them better).",
    )


class SearchOut(SearchSummaryOut):
    settings: dict[str, Any]
    trials: list[TrialOut]
    trajectory: list[float | None] = Field(description="Best score after each trial.")


class LeaderboardRowOut(BaseModel):
    """One configuration of a search's leaderboard (see :mod:`metalearn.search.leaderboard`)."""

    rank: int
    config_id: str
    family: str = Field(description="The model family (a multitask configuration: its families joined by '+').")
    score: float = Field(description="Its best validation score, in the search's metric.")
    seconds: float | None = Field(description="That evaluation's time.")
    evaluations: int = Field(description="How often the search scored it.")
    origin: str = Field(description="Where it came from: recommendation:K, smac, local, ...")
    weight: float = Field(description="Its weight in the registered final model (0 when the search registered none).")


class SearchLeaderboardOut(BaseModel):
    search_id: str
    status: SearchStatus
    metric: str | None = None
    greater_is_better: bool
    model: RegisteredVersionOut | None = Field(
        default=None, description="The model version whose members and weights the 'weight' column shows."
    )
    n_pipelines: int = Field(description="How many configurations the leaderboard holds (rows may show fewer: 'top').")
    rows: list[LeaderboardRowOut]


# -------------------------------------------------------------------------------------------- service
class HealthOut(BaseModel):
    status: Literal["ok"]
    version: str
    kb: dict[str, Any]
    searches: dict[str, int]
