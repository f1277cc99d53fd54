"""The stored form of the knowledge base: DuckDB migrations, the snapshot layout, record (de)serialisation.

Everything both backends and the snapshot code must agree on lives here, so that a record written to one
backend, exported and imported into the other comes back equal:

* ``MIGRATIONS`` — the DuckDB schema as numbered migrations; ``migrate`` applies the missing ones.
* ``LAYOUTS`` — one Arrow schema per table of :data:`metalearn.kb.base.TABLES`: the column layout of
  ``dump_table``/``load_table`` frames and of snapshot parquet files.
* ``normalise`` — validation and canonical form of a record before it is stored (both backends store the
  normalised record, so they return the same thing).
* ``records_to_arrow`` / ``arrow_to_records`` / ``frame_to_arrow`` / ``arrow_to_frame`` — conversions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from metalearn.data.errors import FileFormatError, InputError, KnowledgeBaseError, SchemaVersionError
from metalearn.data.task import TaskKind
from metalearn.kb.records import (
    ConfigurationRecord,
    DatasetRecord,
    MetaFeatureRecord,
    RunRecord,
    SearchRecord,
    canonical_json,
)

# ---------------------------------------------------------------------------------------------------------
# DuckDB migrations
# ---------------------------------------------------------------------------------------------------------

_V1_TABLES: list[str] = [
    """CREATE TABLE schema_version (
        version INTEGER PRIMARY KEY,
        applied_at TIMESTAMP NOT NULL,
        description VARCHAR NOT NULL
    )""",
    """CREATE TABLE datasets (
        dataset_id VARCHAR PRIMARY KEY,
        name VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,
        n_rows BIGINT NOT NULL,
        n_features INTEGER NOT NULL,
        n_categorical INTEGER NOT NULL,
        n_targets INTEGER NOT NULL,
        targets VARCHAR[] NOT NULL,
        target_kinds VARCHAR[] NOT NULL,
        origin VARCHAR NOT NULL,
        openml_id BIGINT,
        created_at TIMESTAMP NOT NULL
    )""",
    # one row per (dataset, extractor version); the values live in long format below
    """CREATE TABLE metafeatures (
        dataset_id VARCHAR NOT NULL,
        version VARCHAR NOT NULL,
        extraction_seconds DOUBLE NOT NULL,
        created_at TIMESTAMP NOT NULL,
        PRIMARY KEY (dataset_id, version)
    )""",
    """CREATE TABLE metafeature_values (
        dataset_id VARCHAR NOT NULL,
        version VARCHAR NOT NULL,
        position INTEGER NOT NULL,
        name VARCHAR NOT NULL,
        value DOUBLE NOT NULL
    )""",
    """CREATE TABLE configurations (
        config_id VARCHAR PRIMARY KEY,
        space VARCHAR NOT NULL,
        space_version VARCHAR NOT NULL,
        values_json VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL
    )""",
    # metrics as MAP(VARCHAR, DOUBLE): unlike JSON it keeps NaN and every bit of a double
    """CREATE TABLE runs (
        run_id VARCHAR PRIMARY KEY,
        dataset_id VARCHAR NOT NULL,
        config_id VARCHAR NOT NULL,
        protocol VARCHAR NOT NULL,
        status VARCHAR NOT NULL,
        metric VARCHAR NOT NULL,
        score DOUBLE NOT NULL,
        cost DOUBLE NOT NULL,
        metrics MAP(VARCHAR, DOUBLE) NOT NULL,
        fit_seconds DOUBLE NOT NULL,
        predict_seconds DOUBLE NOT NULL,
        error VARCHAR NOT NULL,
        source VARCHAR NOT NULL,
        search_id VARCHAR,
        budget DOUBLE,
        n_rows_used BIGINT,
        created_at TIMESTAMP NOT NULL
    )""",
    """CREATE TABLE searches (
        search_id VARCHAR PRIMARY KEY,
        dataset_id VARCHAR NOT NULL,
        status VARCHAR NOT NULL,
        settings_json VARCHAR NOT NULL,
        incumbent_config_id VARCHAR,
        incumbent_score DOUBLE,
        n_trials BIGINT NOT NULL,
        error VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL,
        updated_at TIMESTAMP NOT NULL
    )""",
]

_V2_INDEXES: list[str] = [
    "CREATE INDEX runs_dataset_idx ON runs (dataset_id)",
    "CREATE INDEX runs_config_idx ON runs (config_id)",
    "CREATE INDEX runs_search_idx ON runs (search_id)",
    "CREATE INDEX metafeature_values_key_idx ON metafeature_values (dataset_id, version)",
]

#: (version, description, SQL statements), applied in order; never edit a released migration, add one.
MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (1, "base tables: datasets, metafeatures, configurations, runs, searches", _V1_TABLES),
    (2, "indexes: runs by dataset, configuration and search; meta-feature values by dataset", _V2_INDEXES),
]

#: The schema version this code writes.
CURRENT_VERSION: int = MIGRATIONS[-1][0]


def _user_tables(con: Any) -> set[str]:
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = 'main'"
    ).fetchall()
    return {str(r[0]) for r in rows}


def stored_version(con: Any, path: str | Path) -> int:
    """The schema version of an open DuckDB database (0 when it is empty).

    Raises :class:`KnowledgeBaseError` when the database holds tables but is not a metalearn KB.
    """
    tables = _user_tables(con)
    if "schema_version" not in tables:
        if tables:
            shown = ", ".join(sorted(tables)[:5])
            raise KnowledgeBaseError(
                f"{path} is a DuckDB file but not a metalearn knowledge base (tables {shown}; no schema_version): "
                "point --kb at a metalearn KB file or at a new path"
            )
        return 0
    rows = con.execute("SELECT max(version) FROM schema_version").fetchall()
    if not rows or rows[0][0] is None:
        raise KnowledgeBaseError(
            f"kb file {path} has an empty schema_version table (it was damaged): "
            "restore it from a snapshot (metalearn kb import) or point --kb at a new path"
        )
    return int(rows[0][0])


def check_version(version: int, what: str) -> None:
    """Raise :class:`SchemaVersionError` when ``version`` is newer than this code supports."""
    if version > CURRENT_VERSION:
        raise SchemaVersionError(
            f"{what} has schema version {version} but this metalearn supports up to {CURRENT_VERSION}: "
            "upgrade metalearn (pip install -U metalearn) or point --kb at another file"
        )


def migrate(con: Any, path: str | Path, read_only: bool = False) -> int:
    """Bring the database on ``con`` to :data:`CURRENT_VERSION`; returns the version it is at afterwards.

    Empty database: every migration is applied. Older version: the missing migrations are applied in one
    transaction (all or none). Newer version: :class:`SchemaVersionError`.
    """
    version = stored_version(con, path)
    check_version(version, f"kb file {path}")
    if version == CURRENT_VERSION:
        return version
    if read_only:
        if version == 0:
            raise KnowledgeBaseError(
                f"kb file {path} is empty, so it cannot be opened read-only: open it read-write once to create the KB"
            )
        raise KnowledgeBaseError(
            f"kb file {path} has schema version {version}, older than {CURRENT_VERSION}, and is opened read-only: "
            "open it read-write once to migrate it"
        )
    con.execute("BEGIN TRANSACTION")
    try:
        for number, description, statements in MIGRATIONS:
            if number <= version:
                continue
            for statement in statements:
                con.execute(statement)
            con.execute(
                "INSERT INTO schema_version VALUES (?, ?, ?)",
                [number, datetime.now(UTC).replace(tzinfo=None), description],
            )
        con.execute("COMMIT")
    except Exception as err:
        con.execute("ROLLBACK")
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise KnowledgeBaseError(
            f"migrating kb file {path} from schema version {version} to {CURRENT_VERSION} failed ({first}); "
            "the file was left unchanged: restore it from a snapshot or report this bug"
        ) from err
    return CURRENT_VERSION


# ---------------------------------------------------------------------------------------------------------
# Snapshot / dump_table layout
# ---------------------------------------------------------------------------------------------------------

_S = pa.string()
_F = pa.float64()
_TS = pa.timestamp("us")

LAYOUTS: dict[str, pa.Schema] = {
    "datasets": pa.schema(
        [
            pa.field("dataset_id", _S, nullable=False),
            pa.field("name", _S, nullable=False),
            pa.field("kind", _S, nullable=False),
            pa.field("n_rows", pa.int64(), nullable=False),
            pa.field("n_features", pa.int32(), nullable=False),
            pa.field("n_categorical", pa.int32(), nullable=False),
            pa.field("n_targets", pa.int32(), nullable=False),
            pa.field("targets", pa.list_(_S), nullable=False),
            pa.field("target_kinds", pa.list_(_S), nullable=False),
            pa.field("origin", _S, nullable=False),
            pa.field("openml_id", pa.int64()),
            pa.field("created_at", _TS, nullable=False),
        ]
    ),
    "metafeatures": pa.schema(
        [
            pa.field("dataset_id", _S, nullable=False),
            pa.field("version", _S, nullable=False),
            pa.field("names", pa.list_(_S), nullable=False),
            pa.field("values", pa.list_(_F), nullable=False),
            pa.field("extraction_seconds", _F, nullable=False),
            pa.field("created_at", _TS, nullable=False),
        ]
    ),
    "configurations": pa.schema(
        [
            pa.field("config_id", _S, nullable=False),
            pa.field("space", _S, nullable=False),
            pa.field("space_version", _S, nullable=False),
            pa.field("values", _S, nullable=False),  # canonical JSON text
            pa.field("created_at", _TS, nullable=False),
        ]
    ),
    "runs": pa.schema(
        [
            pa.field("run_id", _S, nullable=False),
            pa.field("dataset_id", _S, nullable=False),
            pa.field("config_id", _S, nullable=False),
            pa.field("protocol", _S, nullable=False),
            pa.field("status", _S, nullable=False),
            pa.field("metric", _S, nullable=False),
            pa.field("score", _F, nullable=False),
            pa.field("cost", _F, nullable=False),
            pa.field("metric_names", pa.list_(_S), nullable=False),
            pa.field("metric_values", pa.list_(_F), nullable=False),
            pa.field("fit_seconds", _F, nullable=False),
            pa.field("predict_seconds", _F, nullable=False),
            pa.field("error", _S, nullable=False),
            pa.field("source", _S, nullable=False),
            pa.field("search_id", _S),
            pa.field("budget", _F),
            pa.field("n_rows_used", pa.int64()),
            pa.field("created_at", _TS, nullable=False),
        ]
    ),
    "searches": pa.schema(
        [
            pa.field("search_id", _S, nullable=False),
            pa.field("dataset_id", _S, nullable=False),
            pa.field("status", _S, nullable=False),
            pa.field("settings", _S, nullable=False),  # JSON text (NaN allowed)
            pa.field("incumbent_config_id", _S),
            pa.field("incumbent_score", _F),
            pa.field("n_trials", pa.int64(), nullable=False),
            pa.field("error", _S, nullable=False),
            pa.field("created_at", _TS, nullable=False),
            pa.field("updated_at", _TS, nullable=False),
        ]
    ),
}

#: Primary key columns of each snapshot table.
KEYS: dict[str, tuple[str, ...]] = {
    "datasets": ("dataset_id",),
    "metafeatures": ("dataset_id", "version"),
    "configurations": ("config_id",),
    "runs": ("run_id",),
    "searches": ("search_id",),
}

#: Columns of ``runs_frame`` in order.
RUNS_FRAME_COLUMNS: tuple[str, ...] = (
    "run_id",
    "dataset_id",
    "config_id",
    "space",
    "space_version",
    "protocol",
    "status",
    "metric",
    "score",
    "cost",
    "fit_seconds",
    "budget",
    "source",
)


def openml_id_arg(value: Any) -> int:
    """An OpenML id given to a query (int, or a string of digits)."""
    try:
        if isinstance(value, bool):
            raise ValueError
        return int(value)
    except (TypeError, ValueError):
        raise InputError(f"openml_id must be an integer, got {value!r}") from None


def check_table(table: str) -> None:
    if table not in LAYOUTS:
        raise InputError(f"unknown KB table {table!r}: use one of {', '.join(LAYOUTS)}")


# ---------------------------------------------------------------------------------------------------------
# Record normalisation (validation + canonical stored form)
# ---------------------------------------------------------------------------------------------------------

_KINDS = frozenset(str(k) for k in TaskKind)


def _bad(what: str, field: str, value: Any, expected: str) -> InputError:
    return InputError(f"{what}: field {field} must be {expected}, got {value!r}")


def _str(what: str, field: str, v: Any, *, empty: bool = True) -> str:
    if type(v) is str and (empty or v):
        return v
    if not isinstance(v, str) or (not empty and not v):
        raise _bad(what, field, v, "a string" if empty else "a non-empty string")
    return v


def _opt_str(what: str, field: str, v: Any) -> str | None:
    return None if v is None else _str(what, field, v)


def _int(what: str, field: str, v: Any) -> int:
    if type(v) is int:
        return v
    if isinstance(v, bool) or not isinstance(v, int | np.integer):
        if isinstance(v, float | np.floating) and float(v).is_integer():
            return int(v)
        raise _bad(what, field, v, "an integer")
    return int(v)


def _opt_int(what: str, field: str, v: Any) -> int | None:
    return None if v is None else _int(what, field, v)


def _float(what: str, field: str, v: Any) -> float:
    if type(v) is float:
        return v
    if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
        raise _bad(what, field, v, "a number")
    return float(v)


def _opt_float(what: str, field: str, v: Any) -> float | None:
    return None if v is None else _float(what, field, v)


def _ts(what: str, field: str, v: Any) -> datetime:
    """Naive UTC datetime (aware ones are converted to UTC)."""
    if type(v) is datetime and v.tzinfo is None:
        return v
    if isinstance(v, pd.Timestamp):
        if v is pd.NaT:
            raise _bad(what, field, v, "a datetime")
        v = v.to_pydatetime()
    if not isinstance(v, datetime):
        raise _bad(what, field, v, "a datetime (naive UTC)")
    if v.tzinfo is not None:
        v = v.astimezone(UTC).replace(tzinfo=None)
    return v


def _float_map(what: str, field: str, v: Any) -> dict[str, float]:
    if not isinstance(v, dict):
        raise _bad(what, field, v, "a dict of name -> number")
    if all(type(k) is str and type(x) is float for k, x in v.items()):
        return dict(v)  # a copy: the caller may mutate its dict after the put
    out: dict[str, float] = {}
    for k, x in v.items():
        if not isinstance(k, str):
            raise _bad(what, f"{field} key", k, "a string")
        out[k] = _float(what, f"{field}[{k!r}]", x)
    return out


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple | set | frozenset):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON-serialisable")


def settings_to_json(what: str, settings: Any) -> str:
    if not isinstance(settings, dict):
        raise _bad(what, "settings", settings, "a dict")
    try:
        return json.dumps(settings, sort_keys=True, separators=(",", ":"), default=_json_default)
    except (TypeError, ValueError) as err:
        raise InputError(
            f"{what}: settings must be JSON-serialisable ({err}); pass plain str/number/list/dict"
        ) from err


def config_values_to_json(what: str, values: Any) -> str:
    if not isinstance(values, dict):
        raise _bad(what, "values", values, "a dict")
    try:
        return canonical_json(values)
    except (TypeError, ValueError) as err:
        raise InputError(
            f"{what}: configuration values must be JSON (finite numbers, str, bool, None, lists, dicts) ({err})"
        ) from err


def normalise_dataset(r: DatasetRecord) -> DatasetRecord:
    if not isinstance(r, DatasetRecord):
        raise InputError(f"expected a DatasetRecord, got {type(r).__name__}")
    what = f"dataset {r.dataset_id!r}"
    kind = _str(what, "kind", r.kind)
    if kind not in _KINDS:
        raise _bad(what, "kind", kind, f"one of {sorted(_KINDS)}")
    if isinstance(r.targets, str) or not isinstance(r.targets, Sequence):
        raise _bad(what, "targets", r.targets, "a tuple of column names")
    if isinstance(r.target_kinds, str) or not isinstance(r.target_kinds, Sequence):
        raise _bad(what, "target_kinds", r.target_kinds, "a tuple of kinds")
    targets = tuple(_str(what, "targets", t) for t in r.targets)
    target_kinds = tuple(str(_str(what, "target_kinds", t)) for t in r.target_kinds)
    return DatasetRecord(
        dataset_id=_str(what, "dataset_id", r.dataset_id, empty=False),
        name=_str(what, "name", r.name),
        kind=str(kind),
        n_rows=_int(what, "n_rows", r.n_rows),
        n_features=_int(what, "n_features", r.n_features),
        n_categorical=_int(what, "n_categorical", r.n_categorical),
        n_targets=_int(what, "n_targets", r.n_targets),
        targets=targets,
        target_kinds=target_kinds,
        origin=_str(what, "origin", r.origin),
        openml_id=_opt_int(what, "openml_id", r.openml_id),
        created_at=_ts(what, "created_at", r.created_at),
    )


def normalise_metafeatures(r: MetaFeatureRecord) -> MetaFeatureRecord:
    if not isinstance(r, MetaFeatureRecord):
        raise InputError(f"expected a MetaFeatureRecord, got {type(r).__name__}")
    what = f"meta-features of dataset {r.dataset_id!r}"
    return MetaFeatureRecord(
        dataset_id=_str(what, "dataset_id", r.dataset_id, empty=False),
        version=_str(what, "version", r.version, empty=False),
        values=_float_map(what, "values", r.values),
        extraction_seconds=_float(what, "extraction_seconds", r.extraction_seconds),
        created_at=_ts(what, "created_at", r.created_at),
    )


def normalise_configuration(r: ConfigurationRecord) -> ConfigurationRecord:
    if not isinstance(r, ConfigurationRecord):
        raise InputError(f"expected a ConfigurationRecord, got {type(r).__name__}")
    what = f"configuration {r.config_id!r}"
    return ConfigurationRecord(
        config_id=_str(what, "config_id", r.config_id, empty=False),
        space=_str(what, "space", r.space),
        space_version=_str(what, "space_version", r.space_version),
        values=json.loads(config_values_to_json(what, r.values)),
        created_at=_ts(what, "created_at", r.created_at),
    )


def normalise_run(r: RunRecord) -> RunRecord:
    if not isinstance(r, RunRecord):
        raise InputError(f"expected a RunRecord, got {type(r).__name__}")
    what = f"run {r.run_id!r}"
    return RunRecord(
        run_id=_str(what, "run_id", r.run_id, empty=False),
        dataset_id=_str(what, "dataset_id", r.dataset_id, empty=False),
        config_id=_str(what, "config_id", r.config_id, empty=False),
        protocol=_str(what, "protocol", r.protocol),
        status=_str(what, "status", r.status),
        metric=_str(what, "metric", r.metric),
        score=_float(what, "score", r.score),
        cost=_float(what, "cost", r.cost),
        metrics=_float_map(what, "metrics", r.metrics),
        fit_seconds=_float(what, "fit_seconds", r.fit_seconds),
        predict_seconds=_float(what, "predict_seconds", r.predict_seconds),
        error=_str(what, "error", r.error),
        source=_str(what, "source", r.source),
        search_id=_opt_str(what, "search_id", r.search_id),
        budget=_opt_float(what, "budget", r.budget),
        n_rows_used=_opt_int(what, "n_rows_used", r.n_rows_used),
        created_at=_ts(what, "created_at", r.created_at),
    )


def normalise_search(r: SearchRecord) -> SearchRecord:
    if not isinstance(r, SearchRecord):
        raise InputError(f"expected a SearchRecord, got {type(r).__name__}")
    what = f"search {r.search_id!r}"
    return SearchRecord(
        search_id=_str(what, "search_id", r.search_id, empty=False),
        dataset_id=_str(what, "dataset_id", r.dataset_id),
        status=_str(what, "status", r.status),
        settings=json.loads(settings_to_json(what, r.settings)),
        incumbent_config_id=_opt_str(what, "incumbent_config_id", r.incumbent_config_id),
        incumbent_score=_opt_float(what, "incumbent_score", r.incumbent_score),
        n_trials=_int(what, "n_trials", r.n_trials),
        error=_str(what, "error", r.error),
        created_at=_ts(what, "created_at", r.created_at),
        updated_at=_ts(what, "updated_at", r.updated_at),
    )


NORMALISERS: dict[str, Callable[[Any], Any]] = {
    "datasets": normalise_dataset,
    "metafeatures": normalise_metafeatures,
    "configurations": normalise_configuration,
    "runs": normalise_run,
    "searches": normalise_search,
}

RECORD_TYPES: dict[str, type] = {
    "datasets": DatasetRecord,
    "metafeatures": MetaFeatureRecord,
    "configurations": ConfigurationRecord,
    "runs": RunRecord,
    "searches": SearchRecord,
}


def record_key(table: str, record: Any) -> tuple[str, ...]:
    return tuple(getattr(record, k) for k in KEYS[table])


# ---------------------------------------------------------------------------------------------------------
# Records <-> Arrow <-> DataFrame
# ---------------------------------------------------------------------------------------------------------


def record_columns(table: str, records: Sequence[Any]) -> dict[str, list[Any]]:
    if table == "datasets":
        return {
            "dataset_id": [r.dataset_id for r in records],
            "name": [r.name for r in records],
            "kind": [r.kind for r in records],
            "n_rows": [r.n_rows for r in records],
            "n_features": [r.n_features for r in records],
            "n_categorical": [r.n_categorical for r in records],
            "n_targets": [r.n_targets for r in records],
            "targets": [list(r.targets) for r in records],
            "target_kinds": [list(r.target_kinds) for r in records],
            "origin": [r.origin for r in records],
            "openml_id": [r.openml_id for r in records],
            "created_at": [r.created_at for r in records],
        }
    if table == "metafeatures":
        return {
            "dataset_id": [r.dataset_id for r in records],
            "version": [r.version for r in records],
            "names": [list(r.values) for r in records],
            "values": [list(r.values.values()) for r in records],
            "extraction_seconds": [r.extraction_seconds for r in records],
            "created_at": [r.created_at for r in records],
        }
    if table == "configurations":
        return {
            "config_id": [r.config_id for r in records],
            "space": [r.space for r in records],
            "space_version": [r.space_version for r in records],
            "values": [canonical_json(r.values) for r in records],
            "created_at": [r.created_at for r in records],
        }
    if table == "runs":
        return {
            "run_id": [r.run_id for r in records],
            "dataset_id": [r.dataset_id for r in records],
            "config_id": [r.config_id for r in records],
            "protocol": [r.protocol for r in records],
            "status": [r.status for r in records],
            "metric": [r.metric for r in records],
            "score": [r.score for r in records],
            "cost": [r.cost for r in records],
            "metric_names": [list(r.metrics) for r in records],
            "metric_values": [list(r.metrics.values()) for r in records],
            "fit_seconds": [r.fit_seconds for r in records],
            "predict_seconds": [r.predict_seconds for r in records],
            "error": [r.error for r in records],
            "source": [r.source for r in records],
            "search_id": [r.search_id for r in records],
            "budget": [r.budget for r in records],
            "n_rows_used": [r.n_rows_used for r in records],
            "created_at": [r.created_at for r in records],
        }
    if table == "searches":
        return {
            "search_id": [r.search_id for r in records],
            "dataset_id": [r.dataset_id for r in records],
            "status": [r.status for r in records],
            "settings": [settings_to_json(f"search {r.search_id!r}", r.settings) for r in records],
            "incumbent_config_id": [r.incumbent_config_id for r in records],
            "incumbent_score": [r.incumbent_score for r in records],
            "n_trials": [r.n_trials for r in records],
            "error": [r.error for r in records],
            "created_at": [r.created_at for r in records],
            "updated_at": [r.updated_at for r in records],
        }
    check_table(table)
    raise AssertionError(table)


def records_to_arrow(table: str, records: Sequence[Any]) -> pa.Table:
    """Normalised records -> an Arrow table in the snapshot layout (floats exact, NaN kept, None -> null)."""
    schema = LAYOUTS[table]
    cols = record_columns(table, records)
    arrays = [pa.array(cols[f.name], type=f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def _nulls(table: str, tbl: pa.Table) -> None:
    for f in LAYOUTS[table]:
        col = tbl.column(f.name)
        if not f.nullable and col.null_count:
            raise FileFormatError(
                f"KB table {table}: column {f.name} has {col.null_count} missing values; it needs a value in every row"
            )
        if pa.types.is_list(f.type) and col.null_count == 0:
            flat = pa.chunked_array([c.flatten() for c in col.chunks], type=f.type.value_type)
            if flat.null_count:
                raise FileFormatError(
                    f"KB table {table}: column {f.name} holds missing values inside its lists"
                )


def _loads(table: str, column: str, text: str) -> Any:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise FileFormatError(
            f"KB table {table}: column {column} holds invalid JSON ({err}): {text[:60]!r}"
        ) from err
    if not isinstance(value, dict):
        raise FileFormatError(f"KB table {table}: column {column} must hold JSON objects, got {text[:60]!r}")
    return value


def arrow_to_records(table: str, tbl: pa.Table) -> list[Any]:
    """An Arrow table in the snapshot layout -> validated, normalised records (in row order)."""
    check_table(table)
    tbl = conform(table, tbl)
    _nulls(table, tbl)
    c = {name: tbl.column(name).to_pylist() for name in tbl.column_names}
    n = tbl.num_rows
    out: list[Any] = []
    try:
        if table == "datasets":
            for i in range(n):
                out.append(
                    DatasetRecord(
                        c["dataset_id"][i], c["name"][i], c["kind"][i], c["n_rows"][i], c["n_features"][i],
                        c["n_categorical"][i], c["n_targets"][i], tuple(c["targets"][i]), tuple(c["target_kinds"][i]),
                        c["origin"][i], c["openml_id"][i], c["created_at"][i],
                    )
                )  # fmt: skip
        elif table == "metafeatures":
            for i in range(n):
                names, values = c["names"][i], c["values"][i]
                if len(names) != len(values) or len(set(names)) != len(names):
                    raise FileFormatError(
                        f"KB table metafeatures: row {i} has {len(names)} names (unique: {len(set(names))}) "
                        f"for {len(values)} values; names must be unique and match the values one to one"
                    )
                out.append(
                    MetaFeatureRecord(
                        c["dataset_id"][i], c["version"][i], dict(zip(names, values, strict=True)),
                        c["extraction_seconds"][i], c["created_at"][i],
                    )
                )  # fmt: skip
        elif table == "configurations":
            for i in range(n):
                values = _loads(table, "values", c["values"][i])
                out.append(
                    ConfigurationRecord(
                        c["config_id"][i], c["space"][i], c["space_version"][i], values, c["created_at"][i]
                    )
                )
        elif table == "runs":
            for i in range(n):
                names, values = c["metric_names"][i], c["metric_values"][i]
                if len(names) != len(values) or len(set(names)) != len(names):
                    raise FileFormatError(
                        f"KB table runs: row {i} has {len(names)} metric names (unique: {len(set(names))}) "
                        f"for {len(values)} values; names must be unique and match the values one to one"
                    )
                out.append(
                    RunRecord(
                        c["run_id"][i], c["dataset_id"][i], c["config_id"][i], c["protocol"][i], c["status"][i],
                        c["metric"][i], c["score"][i], c["cost"][i], dict(zip(names, values, strict=True)),
                        c["fit_seconds"][i], c["predict_seconds"][i], c["error"][i], c["source"][i],
                        c["search_id"][i], c["budget"][i], c["n_rows_used"][i], c["created_at"][i],
                    )
                )  # fmt: skip
        elif table == "searches":
            for i in range(n):
                out.append(
                    SearchRecord(
                        c["search_id"][i], c["dataset_id"][i], c["status"][i], _loads(table, "settings", c["settings"][i]),
                        c["incumbent_config_id"][i], c["incumbent_score"][i], c["n_trials"][i], c["error"][i],
                        c["created_at"][i], c["updated_at"][i],
                    )
                )  # fmt: skip
    except ValueError as err:
        if isinstance(err, InputError):
            raise
        # the record constructors reject unknown run / search statuses
        raise FileFormatError(f"KB table {table}: {err}") from err
    norm = NORMALISERS[table]
    return [norm(r) for r in out]


def conform(table: str, tbl: pa.Table) -> pa.Table:
    """Select and cast the columns of ``tbl`` to the layout of ``table``; extra columns are ignored."""
    schema = LAYOUTS[table]
    missing = [f.name for f in schema if f.name not in tbl.column_names]
    if missing:
        raise FileFormatError(
            f"KB table {table} lacks column(s) {', '.join(missing)}: expected {', '.join(schema.names)}"
        )
    arrays = []
    for f in schema:
        col = tbl.column(f.name)
        if col.type != f.type:
            try:
                col = col.cast(f.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as err:
                raise FileFormatError(
                    f"KB table {table}: column {f.name} has type {col.type}, which cannot be read as {f.type} ({err})"
                ) from err
        arrays.append(col)
    return pa.Table.from_arrays(arrays, schema=schema.with_metadata(None))


def frame_to_arrow(table: str, frame: pd.DataFrame) -> pa.Table:
    """A DataFrame in the snapshot layout (Arrow-backed columns or plain pandas ones) -> Arrow table.

    Plain float columns keep NaN as NaN (not missing) except in nullable columns (``budget``,
    ``incumbent_score``), where NaN means missing; object columns map ``None``/NaN to missing.
    """
    check_table(table)
    if not isinstance(frame, pd.DataFrame):
        raise InputError(f"load_table({table!r}) needs a pandas DataFrame, got {type(frame).__name__}")
    schema = LAYOUTS[table]
    missing = [f.name for f in schema if f.name not in frame.columns]
    if missing:
        raise FileFormatError(
            f"KB table {table} lacks column(s) {', '.join(missing)}: expected {', '.join(schema.names)}"
        )
    arrays: list[pa.Array | pa.ChunkedArray] = []
    for f in schema:
        s = frame[f.name]
        try:
            if isinstance(s.dtype, pd.ArrowDtype):
                arr: pa.Array | pa.ChunkedArray = pa.array(s)
            elif pa.types.is_floating(f.type) and pd.api.types.is_float_dtype(s.dtype):
                arr = pa.array(s.to_numpy(dtype=np.float64), type=f.type, from_pandas=f.nullable)
            elif pa.types.is_timestamp(f.type) and pd.api.types.is_datetime64_any_dtype(s.dtype):
                arr = pa.array(s)
            elif pa.types.is_list(f.type):
                arr = pa.array([None if v is None else list(v) for v in s.tolist()], type=f.type)
            elif pd.api.types.is_object_dtype(s.dtype) or pd.api.types.is_string_dtype(s.dtype):
                arr = pa.array(s.tolist(), type=f.type, from_pandas=True)
            else:
                arr = pa.array(s, from_pandas=True)
            if arr.type != f.type:
                arr = arr.cast(f.type)
        except (
            pa.ArrowInvalid,
            pa.ArrowTypeError,
            pa.ArrowNotImplementedError,
            TypeError,
            ValueError,
        ) as err:
            raise FileFormatError(
                f"KB table {table}: column {f.name} (dtype {s.dtype}) cannot be read as {f.type} ({err})"
            ) from err
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, schema=schema)


def arrow_to_frame(tbl: pa.Table) -> pd.DataFrame:
    """Arrow -> DataFrame with Arrow-backed columns (so NaN and missing stay distinct)."""
    return tbl.to_pandas(types_mapper=pd.ArrowDtype)


def frame_to_records(table: str, frame: pd.DataFrame) -> list[Any]:
    return arrow_to_records(table, frame_to_arrow(table, frame))


def dedupe(table: str, records: Iterable[Any]) -> list[Any]:
    """Drop records whose key repeats an earlier one (the first wins, like a put)."""
    seen: set[tuple[str, ...]] = set()
    out = []
    for r in records:
        k = record_key(table, r)
        if k not in seen:
            seen.add(k)
            out.append(r)
    return out


# ---------------------------------------------------------------------------------------------------------
# Frames for algorithms
# ---------------------------------------------------------------------------------------------------------

RUNS_FRAME_SCHEMA = pa.schema(
    [
        ("run_id", _S),
        ("dataset_id", _S),
        ("config_id", _S),
        ("space", _S),
        ("space_version", _S),
        ("protocol", _S),
        ("status", _S),
        ("metric", _S),
        ("score", _F),
        ("cost", _F),
        ("fit_seconds", _F),
        ("budget", _F),
        ("source", _S),
    ]
)


def runs_frame_from_arrow(tbl: pa.Table) -> pd.DataFrame:
    """The ``runs_frame`` DataFrame: str columns, float64 numbers (``budget`` NaN when full fidelity)."""
    tbl = tbl.select(list(RUNS_FRAME_COLUMNS)).cast(RUNS_FRAME_SCHEMA)
    frame = tbl.to_pandas()
    frame.index = pd.RangeIndex(len(frame))
    return frame


def metafeature_frame_from_long(tbl: pa.Table) -> pd.DataFrame:
    """Long (dataset_id, name, value) rows -> one row per dataset, one float64 column per name, both sorted."""
    long = tbl.select(["dataset_id", "name", "value"]).to_pandas()
    if long.empty:
        return pd.DataFrame(index=pd.Index([], name="dataset_id", dtype="str"), dtype="float64")
    ids, id_codes = np.unique(long["dataset_id"].to_numpy(dtype=object), return_inverse=True)
    names, name_codes = np.unique(long["name"].to_numpy(dtype=object), return_inverse=True)
    values = np.full((len(ids), len(names)), np.nan, dtype=np.float64)
    values[id_codes, name_codes] = long["value"].to_numpy(dtype=np.float64)
    return pd.DataFrame(
        values,
        index=pd.Index(ids.astype(str), name="dataset_id", dtype="str"),
        columns=pd.Index(names.astype(str), dtype="str"),
    )


def nan_equal(a: Any, b: Any) -> bool:
    """Deep equality where NaN equals NaN and floats must be bit-identical (0.0 != -0.0)."""
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return set(a) == set(b) and all(nan_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return (
            type(a) is type(b)
            and len(a) == len(b)
            and all(nan_equal(x, y) for x, y in zip(a, b, strict=True))
        )
    if hasattr(a, "__dataclass_fields__") and hasattr(b, "__dataclass_fields__"):
        return type(a) is type(b) and all(
            nan_equal(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__
        )
    return type(a) is type(b) and bool(a == b)
