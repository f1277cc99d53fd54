"""Request and response models of the HTTP API (requests and responses are separate models).

Floats that may be unknown (NaN in the KB) are ``float | None`` and travel as JSON ``null``.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from metalearn.data.task import TaskKind

T = TypeVar("T")

#: Identifiers of KB records (content hashes, search ids): letters, digits and a few separators.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"

MAX_METAFEATURES = 5000
MAX_EXCLUDE = 10_000


def finite_or_none(x: Any) -> float | None:
    """``x`` as a float, or None when it is missing, NaN or infinite."""
    if x is None:
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def clean_json(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None and numpy scalars unwrapped (JSON-safe)."""
    if isinstance(obj, dict):
        return {str(k): clean_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean_json(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, str | bytes):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


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
class DatasetOut(BaseModel):
    dataset_id: str
    name: str
    kind: str
    n_rows: int
    n_features: int
    n_categorical: int
    n_targets: int
    targets: list[str]
    target_kinds: list[str]
    origin: str
    openml_id: int | None = None
    created_at: datetime


class DatasetDetail(DatasetOut):
    metafeature_version: str
    metafeatures: dict[str, float | None] | None = Field(
        default=None,
        description="The stored meta-feature vector (null when the KB has none for this version).",
    )


class RunOut(BaseModel):
    run_id: str
    dataset_id: str
    config_id: str
    protocol: str
    status: str
    metric: str
    score: float | None
    cost: float | None
    metrics: dict[str, float | None]
    fit_seconds: float | None
    predict_seconds: float | None
    error: str
    source: str
    search_id: str | None = None
    budget: float | None = None
    n_rows_used: int | None = None
    created_at: datetime


class ConfigurationOut(BaseModel):
    config_id: str
    space: str
    space_version: str
    values: dict[str, Any]
    created_at: datetime


# ------------------------------------------------------------------------------------- recommendations
class RecommendationRequest(BaseModel):
    """A query: the meta-feature vector of a dataset (as returned by ``POST /metafeatures``) and its kind."""

    model_config = ConfigDict(extra="forbid")

    metafeatures: dict[str, float | None] = Field(
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

    @field_validator("metafeatures")
    @classmethod
    def _finite(cls, v: dict[str, float | None]) -> dict[str, float | None]:
        bad = [name for name, x in v.items() if x is not None and math.isinf(x)]
        if bad:
            raise ValueError(f"meta-feature values must be finite numbers or null; infinite: {bad[:5]}")
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


class RecommendedConfigOut(BaseModel):
    rank: int
    config_id: str
    space: str
    space_version: str
    values: dict[str, Any]
    strategy: str
    expected_regret: float | None = None
    explanation: str
    sources: list[SourceOut]


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


# ------------------------------------------------------------------------------------------- searches
SearchStatus = Literal["pending", "running", "done", "failed", "cancelled"]


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
    created_at: datetime
    updated_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class SearchOut(SearchSummaryOut):
    settings: dict[str, Any]
    trials: list[TrialOut]
    trajectory: list[float | None] = Field(description="Best score after each trial.")


# -------------------------------------------------------------------------------------------- service
class HealthOut(BaseModel):
    status: Literal["ok"]
    version: str
    kb: dict[str, Any]
    searches: dict[str, int]
