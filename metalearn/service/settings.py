"""Service settings, read from the environment (prefix ``METALEARN_``) and an optional ``.env`` file.

Every field can be set as ``METALEARN_<FIELD>`` (case-insensitive), e.g. ``METALEARN_API_KEYS=k1,k2``,
``METALEARN_KB=/data/kb.duckdb``, ``METALEARN_SEARCH_WORKERS=2``. Tests and embedders pass a
:class:`Settings` instance to :func:`metalearn.service.app.create_app` instead.
"""

from __future__ import annotations

from types import UnionType
from typing import Annotated, Any, get_args

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from metalearn.data.errors import InputError, MetaLearnError

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
        """A bad setting fails with one line naming it (``METALEARN_MAX_ROWS='abc' is not an integer: give a whole
        number >= 10 such as 1000000``; the keyword instead when it was given in Python), not pydantic's report of
        several lines; a setting the product checks itself (:func:`_check_thresholds`) with its own error."""
        try:
            super().__init__(**values)
        except ValidationError as exc:
            said = [_setting_problem(e, given_in_python=str(e["loc"][0]) in values if e["loc"] else False)
                    for e in exc.errors()]
            own = [e for e in said if isinstance(e, MetaLearnError)]
            if len(said) == 1 and own:
                raise own[0] from None
            raise InputError("; ".join(str(e) for e in said)) from None

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


#: what a pydantic error of a setting's value says is wrong with it
_PROBLEMS = {
    "int_parsing": "is not an integer",
    "int_type": "is not an integer",
    "int_from_float": "is not a whole number",
    "float_parsing": "is not a number",
    "float_type": "is not a number",
    "finite_number": "is not a finite number",
    "bool_parsing": "is not true or false",
    "bool_type": "is not true or false",
    "greater_than": "is too small",
    "greater_than_equal": "is too small",
    "less_than": "is too large",
    "less_than_equal": "is too large",
}


def _setting_problem(error: Any, *, given_in_python: bool) -> MetaLearnError | str:
    """One pydantic error of :class:`Settings` as a line naming the setting as the user gave it (the environment
    variable, or the keyword given in Python), the bad value and what it takes; the product's own error (raised
    by a validator) as it is."""
    own = (error.get("ctx") or {}).get("error")
    if isinstance(own, MetaLearnError):
        return own
    name = str(error["loc"][0]) if error["loc"] else ""
    field = Settings.model_fields.get(name)
    if field is None:  # (not a field's value: pydantic's words)
        return f"settings: {error['msg']}"
    given = name if given_in_python else f"{Settings.model_config.get('env_prefix', '')}{name}".upper()
    problem = _PROBLEMS.get(error["type"], f"is not valid ({error['msg'][:1].lower()}{error['msg'][1:]})")
    return f"{given}={error['input']!r} {problem}: give {_expected(field)}"


def _expected(field: FieldInfo) -> str:
    """What a setting takes, from its type, bounds and default: ``a whole number from 1 to 64 such as 1``."""
    kinds = [field.annotation]
    if isinstance(field.annotation, UnionType):  # an optional setting: what it takes when given
        kinds = [t for t in get_args(field.annotation) if t is not type(None)]
    kind = kinds[0] if len(kinds) == 1 else None
    if kind is bool:
        return "true or false (or 1/0, yes/no, on/off)"
    if kind not in (int, float):
        return f"a valid value ({field.description.rstrip('.')})" if field.description else "a valid value"
    bounds = {k: getattr(m, k) for m in field.metadata for k in ("ge", "gt", "le", "lt") if getattr(m, k, None) is not None}
    low = f">= {bounds['ge']}" if "ge" in bounds else f"> {bounds['gt']}" if "gt" in bounds else ""
    high = f"<= {bounds['le']}" if "le" in bounds else f"< {bounds['lt']}" if "lt" in bounds else ""
    if "ge" in bounds and "le" in bounds:
        limits = f" from {bounds['ge']} to {bounds['le']}"
    else:
        limits = "".join(f" {b}" for b in (low, high) if b)
    example = f" such as {field.default}" if isinstance(field.default, int | float) else ""
    return ("a whole number" if kind is int else "a number") + limits + example
