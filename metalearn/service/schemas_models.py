"""Request and response models of the model registry's endpoints (``/models``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

from metalearn.registry.registry import MAX_EXPLAIN_ROWS
from metalearn.registry.variants import METHODS
from metalearn.service.schemas import MlflowSyncOut, UtcDatetime

#: A value of an input cell or a label in JSON: text, a number, a boolean or null (missing).
Cell = StrictStr | StrictInt | StrictFloat | StrictBool | None
Alias = Literal["live", "candidate"]
#: Model names as the registry accepts them (they name directories and URL path segments).
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
#: Prediction ids (the registry's are 32 hex digits).
PREDICTION_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
MAX_FEEDBACK_ITEMS = 100_000


# ------------------------------------------------------------------------------------------ reading
class ModelSummaryOut(BaseModel):
    name: str
    versions: int = Field(description="Versions not deleted.")
    latest: int | None = None
    aliases: dict[str, int] = Field(description="Alias (live, candidate) -> version.")
    kind: str | None = None
    flags: list[str] = Field(description="Drift flags set, as flag@version.")


class ArtifactOut(BaseModel):
    format: str
    bytes: int
    sha256: str


class ModelVersionOut(BaseModel):
    name: str
    version: int
    kind: str
    metric: str
    variant: str = Field(description="What made it: search, retrain, onnx, pruned, distilled.")
    parent_version: int | None = None
    search_id: str | None = None
    dataset_id: str | None = None
    created_at: UtcDatetime
    deleted: bool
    aliases: list[str]
    flags: dict[str, dict[str, Any]] = Field(description="Drift flag -> the check that raised it.")
    artifact: ArtifactOut
    cv_score: float | None = Field(default=None, description="The model's validation score in its search (see cv_basis).")
    cv_basis: str | None = Field(
        default=None,
        description="How cv_score was estimated: ensemble (its pooled out-of-fold score), ensemble_validation "
        "(on validation rows the search left out), pipeline (its validation score: the mean over folds), or "
        "inherited (a compressed variant: the score of the version compression.cv_inherited names).",
    )
    metrics: dict[str, Any] | None = Field(default=None, description="cv: the search's validation metrics; refit: on the training data.")
    model: dict[str, Any] | None = Field(default=None, description="Pipeline or ensemble (members, weights).")
    signature: dict[str, Any] | None = Field(
        default=None, description="The training schema: feature columns (types, categories) and targets."
    )
    libraries: dict[str, str] | None = None
    dataset: dict[str, Any] | None = None
    compression: dict[str, Any] | None = None
    feedback_rows: int | None = Field(
        default=None, description="A retraining's labelled predictions of the prediction log among its training rows."
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="What the search that made it warned of (e.g. a better earlier run it did not resume).",
    )


class ModelEventOut(BaseModel):
    seq: int
    action: str
    version: int
    alias: str | None = None
    previous_version: int | None = None
    at: UtcDatetime
    detail: dict[str, Any] = Field(default_factory=dict)


class ModelDetailOut(BaseModel):
    name: str
    aliases: dict[str, int]
    versions: list[ModelVersionOut] = Field(description="Every version, deleted ones included (deleted: true).")
    events: list[ModelEventOut] = Field(description="The history: register, promote, rollback, delete, flags.")
    log: dict[str, int] = Field(description="Counts of the prediction log and feedback.")


# ------------------------------------------------------------------------------------------ aliases
class PromoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, le=2**31, description="The version the alias will point at.")
    alias: Alias = Field(default="live", description="The alias to move.")


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alias: Alias = Field(default="live", description="The alias to move back to its previous version.")


class AliasChangeOut(BaseModel):
    name: str
    alias: str
    version: int
    previous_version: int | None = None
    mlflow: MlflowSyncOut | None = Field(default=None, description="The MLflow alias moved too (when the server syncs).")


class DeletedVersionOut(BaseModel):
    name: str
    version: int
    deleted: Literal[True] = True
    aliases_removed: list[str] = Field(
        default_factory=list, description="Aliases the version held (e.g. candidate): they went with it."
    )


# ------------------------------------------------------------------------------------------ serving
class PredictRequest(BaseModel):
    """Rows to predict: column -> value (a column the training data had as numbers takes numbers; a
    missing value is null or an absent key)."""

    model_config = ConfigDict(extra="forbid")

    rows: list[dict[str, Cell]] = Field(min_length=1, description="The input rows (at most the server's max_predict_rows).")
    version: int | None = Field(default=None, ge=1, le=2**31, description="A version (default: the live one).")


class PredictionOut(BaseModel):
    prediction_id: str = Field(description="Id of the prediction, for feedback.")
    logged: bool = Field(
        default=True,
        description="Whether the prediction log keeps it (the server's prediction_log_sample): feedback can only "
        "name a logged prediction.",
    )
    predictions: dict[str, Any] = Field(description="Target -> predicted value.")
    probabilities: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="Class targets: target -> class -> probability."
    )


class PredictOut(BaseModel):
    name: str
    version: int = Field(description="The version that answered.")
    predictions: list[PredictionOut]
    warnings: list[str] = Field(description="E.g. categories never seen in training.")
    seconds: float = Field(description="Time the model took to predict.")


class FeedbackItem(BaseModel):
    """One prediction's true value(s): ``labels`` ({target: value}) or, for a single-target model, ``label``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [
                {"required": ["labels"], "not": {"required": ["label"]}},
                {"required": ["label"], "not": {"required": ["labels"]}},
            ]
        },
    )

    prediction_id: str = Field(pattern=PREDICTION_ID_PATTERN, description="As /predict returned it.")
    labels: dict[str, Cell] = Field(default=None, description="Target -> true value.")  # type: ignore[arg-type]
    label: Cell = Field(default=None, description="The true value of a single-target model (instead of labels).")

    @model_validator(mode="after")
    def _one_of(self) -> FeedbackItem:
        given = self.model_fields_set
        if ("labels" in given) == ("label" in given):
            raise ValueError("give either 'labels' ({target: value}) or 'label' (single-target models)")
        return self

    def as_item(self) -> dict[str, Any]:
        if self.labels is not None:
            return {"prediction_id": self.prediction_id, "labels": dict(self.labels)}
        return {"prediction_id": self.prediction_id, "label": self.label}


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    feedback: list[FeedbackItem] = Field(min_length=1, max_length=MAX_FEEDBACK_ITEMS)


class FeedbackOut(BaseModel):
    name: str
    stored: int


class ExplainRequest(BaseModel):
    """Rows to explain (as a prediction's rows) and how."""

    model_config = ConfigDict(extra="forbid")

    rows: list[dict[str, Cell]] = Field(
        min_length=1, max_length=MAX_EXPLAIN_ROWS, description=f"The input rows (at most {MAX_EXPLAIN_ROWS})."
    )
    version: int | None = Field(default=None, ge=1, le=2**31, description="A version (default: the live one).")
    top: int | None = Field(default=10, ge=1, le=10_000, description="Features listed per output (the rest summed).")
    n_permutations: int = Field(default=8, ge=1, le=100, description="Feature orders sampled per background row.")
    background: int = Field(default=16, ge=1, le=200, description="Rows of the version's training sample to start from.")


class ContributionOut(BaseModel):
    feature: str
    value: float = Field(description="Its Shapley value: how much it moved this output.")


class ExplainedOutputOut(BaseModel):
    base: float = Field(description="The output's mean over the background rows.")
    prediction: float = Field(description="The output on this row (= base + every feature's value).")
    contributions: list[ContributionOut] = Field(description="Largest first (by absolute value).")
    others: float = Field(description="The values of the features not listed, summed.")


class ExplainOut(BaseModel):
    name: str
    version: int
    warnings: list[str]
    background_rows: int
    n_permutations: int
    rows: list[dict[str, dict[str, ExplainedOutputOut]]] = Field(
        description="Per row: target -> output (a class's probability, or 'value') -> its explanation."
    )
    seconds: float


class FeatureImportanceOut(BaseModel):
    feature: str
    importance: float | None = Field(description="Mean drop of the metric when the feature is shuffled (> 0: used).")
    stddev: float | None = Field(description="Its standard deviation over the shuffles (null after one).")
    p_value: float | None = Field(description="One-sided t-test that the drop is above 0 (null after one shuffle).")
    n: int = Field(description="Shuffles of the feature.")
    p99_low: float | None = None
    p99_high: float | None = None


class ImportanceOut(BaseModel):
    rows: int = Field(description="Rows the importance was measured on (a random sample of at most max_rows).")
    shuffle_sets: int
    features: list[FeatureImportanceOut] = Field(description="Most important first.")


class ServedOut(BaseModel):
    score: float | None = Field(description="The metric of the served predictions on the same rows.")
    metrics: dict[str, float | None] = Field(description="Every metric of the model's kind, of the served predictions.")
    versions: dict[str, int] = Field(description="How many of the rows each version served.")


class EvaluateOut(BaseModel):
    name: str
    version: int = Field(description="The version evaluated.")
    metric: str
    greater_is_better: bool
    score: float | None = Field(description="The metric on the labelled rows (null when undefined on them).")
    metrics: dict[str, float | None] = Field(description="Every metric of the model's kind.")
    targets: dict[str, str] = Field(
        default_factory=dict, description="A multitask model's metric prefixes -> its targets (t0 -> the first).")
    rows: int = Field(description="Labelled rows scored.")
    unlabelled_rows: int = Field(description="Rows without a value of every target, skipped.")
    warnings: list[str]
    importance: ImportanceOut | None = None
    seconds: float
    source: str | None = Field(default=None, description="Where the labelled rows came from (the prediction log).")
    served: ServedOut | None = Field(
        default=None, description="On the prediction log's labelled rows: the predictions that were served for them."
    )


# ------------------------------------------------------------------------------------------ drift
class DriftOut(BaseModel):
    name: str
    version: int
    data: dict[str, Any] | None = Field(
        default=None, description="Data drift per feature (drifted, features, share_drifted, metafeature_distance ...)."
    )
    concept: dict[str, Any] | None = Field(
        default=None, description="Concept drift from the labelled feedback (null without feedback)."
    )
    flags: list[str] = Field(description="The drift flags the version carries after this check.")
    checked_at: UtcDatetime | str | None = None


# ------------------------------------------------------------------------------------------ jobs
JobStatus = Literal["pending", "running", "done", "failed", "cancelled", "interrupted"]


class CompressRequest(BaseModel):
    """Which version to compress and how (the variants are measured on the version's reference sample)."""

    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(default=None, ge=1, description="Default: the live version, else the latest.")
    methods: list[str] = Field(
        default_factory=lambda: list(METHODS), min_length=1, max_length=len(METHODS),
        json_schema_extra={"items": {"type": "string", "enum": list(METHODS)}},  # the registry's methods
        description=f"Of {', '.join(METHODS)}: onnx, an ONNX export served by onnxruntime; prune, fewer ensemble "
                    "members; distill, one LightGBM or MLP pipeline fit to imitate the version.",
    )

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, value: list[str]) -> list[str]:
        unknown = [m for m in value if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown compression method(s) {unknown}: choose from {', '.join(METHODS)}")
        return list(dict.fromkeys(value))


class ModelJobCreated(BaseModel):
    job_id: str
    name: str
    status: JobStatus
    location: str


class ModelJobOut(BaseModel):
    job_id: str
    name: str
    action: str
    status: JobStatus
    stage: str = Field(description="What the job is doing now.")
    dataset_id: str
    dataset_name: str
    parent_version: int | None = Field(default=None, description="The version it retrains from or compresses.")
    version: int | None = Field(default=None, description="The (first) version it registered (not promoted).")
    versions: list[int] = Field(default_factory=list, description="Every version it registered (compression: one per variant).")
    methods: list[str] = Field(default_factory=list, description="Compression: the methods asked for.")
    result: dict[str, Any] | None = Field(
        default=None,
        description="Compression: the report, the original and each variant with artifact size, p50/p99 single-row "
        "latency, rows/s, validation score and the comparison (or why a method did not apply).",
    )
    mlflow: list[dict[str, Any]] = Field(
        default_factory=list, description="Each registered version as logged to MLflow (METALEARN_MLFLOW_URI), or the warning."
    )
    error: str = ""
    settings: dict[str, Any] = Field(description="Retraining: the search settings ({} for compression).")
    created_at: UtcDatetime
    started_at: UtcDatetime | None = None
    finished_at: UtcDatetime | None = None
