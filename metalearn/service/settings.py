"""Service settings, read from the environment (prefix ``METALEARN_``) and an optional ``.env`` file.

Every field can be set as ``METALEARN_<FIELD>`` (case-insensitive), e.g. ``METALEARN_API_KEYS=k1,k2``,
``METALEARN_KB=/data/kb.duckdb``, ``METALEARN_SEARCH_WORKERS=2``. Tests and embedders pass a
:class:`Settings` instance to :func:`metalearn.service.app.create_app` instead.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from metalearn.data.errors import MetaLearnError

MIB = 1024 * 1024


class Settings(BaseSettings):
    """Configuration of the recommender service."""

    model_config = SettingsConfigDict(
        env_prefix="METALEARN_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    # -- knowledge base ------------------------------------------------------------------------------
    kb: str | None = Field(
        default=None,
        description="Knowledge-base file (':memory:' for an in-memory KB seeded from the shipped snapshot); "
        "default: the per-user default file.",
    )
    kb_read_only: bool = Field(
        default=False,
        description="Open the KB read-only (several server processes may share a file); searches are refused.",
    )
    metafeature_version: str | None = Field(
        default=None,
        description="Meta-feature version the recommender reads from the KB (default: the installed extractor's); "
        "only for KBs built with another extractor, e.g. synthetic benchmark KBs.",
    )
    advisor_refresh_seconds: float = Field(
        default=30.0,
        ge=0.0,
        description="How often the recommender's cached KB frames are checked against the KB (0: never; "
        "searches run by this service refresh them as they finish).",
    )

    # -- security ------------------------------------------------------------------------------------
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Keys accepted in the X-API-Key header for write endpoints (comma-separated in the env).",
    )
    allow_anonymous_writes: bool = Field(
        default=False, description="Allow write endpoints without a key when no key is configured."
    )
    protect_reads: bool = Field(default=False, description="Require an API key for read endpoints too.")
    protect_docs: bool | None = Field(
        default=None,
        description="Require an API key for /openapi.json, /docs and /redoc (default: as protect_reads).",
    )

    # -- limits --------------------------------------------------------------------------------------
    max_upload_bytes: int = Field(default=64 * MIB, ge=1024, description="Largest accepted upload body.")
    max_json_bytes: int = Field(default=1 * MIB, ge=1024, description="Largest accepted JSON request body.")
    max_rows: int = Field(default=1_000_000, ge=10, description="Most rows an uploaded dataset may have.")
    max_columns: int = Field(default=5_000, ge=2, description="Most columns an uploaded dataset may have.")
    max_cells: int = Field(
        default=20_000_000,
        ge=20,
        description="Most values (rows x columns) an uploaded dataset may have; bounds the memory an upload "
        "takes (a compressed upload may expand to 10x max_upload_bytes).",
    )
    max_page_size: int = Field(default=1000, ge=1, description="Largest `limit` of a paginated listing.")

    # -- searches ------------------------------------------------------------------------------------
    search_workers: int = Field(default=1, ge=1, le=64, description="Searches that run at once.")
    max_pending_searches: int = Field(
        default=32, ge=1, description="Searches that may wait for a worker; more are refused with 429."
    )
    max_search_trials: int = Field(default=500, ge=1, description="Largest n_trials a search may ask for.")
    max_search_seconds: float = Field(
        default=6 * 3600.0, gt=0, description="Largest time_limit (seconds) a search may ask for."
    )
    search_history: int = Field(
        default=200, ge=1, description="Finished searches whose trial details are kept in memory."
    )

    # -- model registry --------------------------------------------------------------------------------
    models_dir: str | None = Field(
        default=None,
        description="Directory of the registered models' artifacts (default: '<kb file stem>.models' beside the "
        "KB file; a temporary directory for an in-memory KB).",
    )
    mlflow_uri: str | None = Field(
        default=None,
        description="Also log every version this server registers (searches with 'register', retraining, "
        "compression) to this MLflow tracking/model registry, and move its alias on promote/rollback "
        "(e.g. sqlite:///mlflow.db, http://host:5000; needs pip install 'metalearn[mlflow]'). An MLflow failure "
        "is reported as a warning; the metalearn registry is unchanged by it.",
    )
    max_predict_rows: int = Field(
        default=10_000, ge=1, le=100_000, description="Most rows one prediction request may send (more: 413)."
    )
    max_predict_bytes: int = Field(
        default=16 * MIB, ge=1024, description="Largest JSON body of a prediction request (uploads: max_upload_bytes)."
    )
    prediction_log_sample: float = Field(
        default=1.0, ge=0.0, le=1.0,
        description="Share of predicted rows written to the prediction log (only logged rows can get feedback).",
    )
    prediction_log_keep: int = Field(
        default=100_000, ge=0,
        description="Logged predictions kept per model (the oldest go, with their feedback, once the log is 5 % over this).",
    )
    prediction_log_flush_seconds: float = Field(
        default=2.0, gt=0.0, le=60.0,
        description="How often the buffered prediction log is written to the KB (a write costs ~5-10 ms whatever its "
        "size; feedback and drift checks write what waits first).",
    )
    prediction_log_flush_rows: int = Field(
        default=1000, ge=1, description="Buffered logged rows that trigger a write before the interval is up."
    )
    drift_thresholds: Annotated[dict[str, float | int | str] | None, NoDecode] = Field(
        default=None,
        description='Thresholds of the drift checks (JSON in the env, e.g. {"drifted_share": 0.3, "psi": 0.2}; '
        "names as metalearn.monitoring.drift.DriftThresholds, read as `metalearn models drift` reads them); "
        "default: the monitor's own.",
    )

    def __init__(self, **values: Any) -> None:
        """A setting the product checks itself (:func:`_check_thresholds`) fails with its own one-line error,
        as the CLI gives it, not inside pydantic's several-line report."""
        try:
            super().__init__(**values)
        except ValidationError as exc:
            own = [e["ctx"]["error"] for e in exc.errors() if isinstance((e.get("ctx") or {}).get("error"), MetaLearnError)]
            if not own:
                raise
            raise own[0] from None

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        if isinstance(value, list | tuple | set):
            return [k for k in value if str(k.get_secret_value() if isinstance(k, SecretStr) else k).strip()]
        return value

    @field_validator("drift_thresholds", mode="before")
    @classmethod
    def _check_thresholds(cls, value: Any) -> dict[str, Any] | None:
        # METALEARN_DRIFT_THRESHOLDS's text (or a mapping given in Python) read and checked as the CLI reads it: bad
        # JSON, a non-object, a bad name or value stops the server at start-up, naming it
        from metalearn.monitoring.drift import thresholds_setting

        return thresholds_setting(value)

    def key_values(self) -> list[str]:
        """The configured API keys as plain strings."""
        return [k.get_secret_value() for k in self.api_keys]

    @property
    def docs_protected(self) -> bool:
        """Whether the API docs and schema need a key (``protect_docs``, else ``protect_reads``)."""
        return self.protect_reads if self.protect_docs is None else self.protect_docs
