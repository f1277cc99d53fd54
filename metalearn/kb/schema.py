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

import dataclasses
import json
import math
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from metalearn.data.errors import (
    FileFormatError,
    InputError,
    KnowledgeBaseError,
    MissingReferenceError,
    SchemaVersionError,
)
from metalearn.kb.records import (
    ConfigurationRecord,
    DatasetRecord,
    MetaFeatureRecord,
    RunRecord,
    SearchRecord,
    Stored,
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

# the fields of SearchRecord declared with stored(since=3)
_V3_SEARCH_OWNER: list[str] = [
    "ALTER TABLE searches ADD COLUMN owner_host VARCHAR",
    "ALTER TABLE searches ADD COLUMN owner_pid BIGINT",
    "ALTER TABLE searches ADD COLUMN owner_started BIGINT",
]

# the model registry (metalearn.kb.model_store declares the records)
_V4_REGISTRY: list[str] = [
    """CREATE TABLE model_versions (
        name VARCHAR NOT NULL,
        version BIGINT NOT NULL,
        kind VARCHAR NOT NULL,
        metric VARCHAR NOT NULL,
        greater_is_better BOOLEAN NOT NULL,
        variant VARCHAR NOT NULL,
        artifact VARCHAR NOT NULL,
        artifact_format VARCHAR NOT NULL,
        artifact_sha256 VARCHAR NOT NULL,
        artifact_bytes BIGINT NOT NULL,
        info_json VARCHAR NOT NULL,
        search_id VARCHAR,
        dataset_id VARCHAR,
        parent_version BIGINT,
        created_at TIMESTAMP NOT NULL,
        deleted_at TIMESTAMP,
        PRIMARY KEY (name, version)
    )""",
    """CREATE TABLE model_aliases (
        name VARCHAR NOT NULL,
        alias VARCHAR NOT NULL,
        version BIGINT NOT NULL,
        updated_at TIMESTAMP NOT NULL,
        PRIMARY KEY (name, alias)
    )""",
    """CREATE TABLE model_events (
        name VARCHAR NOT NULL,
        seq BIGINT NOT NULL,
        action VARCHAR NOT NULL,
        version BIGINT NOT NULL,
        alias VARCHAR,
        previous_version BIGINT,
        detail_json VARCHAR NOT NULL,
        happened_at TIMESTAMP NOT NULL,
        PRIMARY KEY (name, seq)
    )""",
    """CREATE TABLE model_flags (
        name VARCHAR NOT NULL,
        version BIGINT NOT NULL,
        flag VARCHAR NOT NULL,
        detail_json VARCHAR NOT NULL,
        flagged_at TIMESTAMP NOT NULL,
        PRIMARY KEY (name, version, flag)
    )""",
    """CREATE TABLE prediction_log (
        prediction_id VARCHAR NOT NULL,
        name VARCHAR NOT NULL,
        version BIGINT NOT NULL,
        features_json VARCHAR NOT NULL,
        outputs_json VARCHAR NOT NULL,
        latency_ms DOUBLE NOT NULL,
        created_at TIMESTAMP NOT NULL,
        PRIMARY KEY (prediction_id)
    )""",
    """CREATE TABLE prediction_feedback (
        prediction_id VARCHAR NOT NULL,
        name VARCHAR NOT NULL,
        version BIGINT NOT NULL,
        labels_json VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL,
        PRIMARY KEY (prediction_id)
    )""",
    "CREATE INDEX prediction_log_model_idx ON prediction_log (name, created_at)",
]

# retraining and compression jobs of the registry (metalearn.kb.model_store.ModelJobRecord)
_V5_MODEL_JOBS: list[str] = [
    """CREATE TABLE model_jobs (
        job_id VARCHAR NOT NULL,
        name VARCHAR NOT NULL,
        operation VARCHAR NOT NULL,
        status VARCHAR NOT NULL,
        dataset_id VARCHAR NOT NULL,
        dataset_name VARCHAR NOT NULL,
        parent_version BIGINT,
        stage VARCHAR NOT NULL,
        error VARCHAR NOT NULL,
        detail_json VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL,
        started_at TIMESTAMP,
        finished_at TIMESTAMP,
        PRIMARY KEY (job_id)
    )""",
    "CREATE INDEX model_jobs_model_idx ON model_jobs (name, created_at)",
]

#: (version, description, SQL statements), applied in order; never edit a released migration, add one.
MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (1, "base tables: datasets, metafeatures, configurations, runs, searches", _V1_TABLES),
    (2, "indexes: runs by dataset, configuration and search; meta-feature values by dataset", _V2_INDEXES),
    (3, "searches: the process running them (owner_host, owner_pid, owner_started)", _V3_SEARCH_OWNER),
    (4, "model registry: versions, aliases, events, flags, prediction log, feedback", _V4_REGISTRY),
    (5, "model registry: retraining and compression jobs", _V5_MODEL_JOBS),
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
# The stored form of each record field, derived from the record dataclasses
# ---------------------------------------------------------------------------------------------------------

_S = pa.string()
_F = pa.float64()
_TS = pa.timestamp("us")

#: The record type stored in each table of :data:`metalearn.kb.base.TABLES`.
RECORD_TYPES: dict[str, type] = {
    "datasets": DatasetRecord,
    "metafeatures": MetaFeatureRecord,
    "configurations": ConfigurationRecord,
    "runs": RunRecord,
    "searches": SearchRecord,
}
#: How messages name a record of each table (followed by its first key).
_NOUNS: dict[str, str] = {
    "datasets": "dataset",
    "metafeatures": "meta-features of dataset",
    "configurations": "configuration",
    "runs": "run",
    "searches": "search",
}

_SCALARS: dict[Any, tuple[str, pa.DataType]] = {
    str: ("str", _S),
    int: ("int", pa.int64()),
    float: ("float", _F),
    datetime: ("datetime", _TS),
}


def duck_type(t: pa.DataType) -> str:
    """The DuckDB type of an Arrow type of the snapshot layout."""
    if pa.types.is_list(t):
        return duck_type(t.value_type) + "[]"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP"
    names = {pa.string(): "VARCHAR", pa.int64(): "BIGINT", pa.int32(): "INTEGER", pa.float64(): "DOUBLE"}
    return names[t]


@dataclass(frozen=True)
class Column:
    """One record field as stored: its kind, its snapshot (Arrow) columns and its DuckDB column."""

    name: str
    #: "str", "int", "float", "datetime", "strs" (tuple of str), "json" (dict as JSON text) or "pairs"
    #: (dict name -> float)
    kind: str
    nullable: bool
    how: Stored
    arrow: tuple[pa.Field, ...]
    #: the DuckDB column (None: the field lives in its own table, ``how.rows_table``) and its type
    sql_name: str | None
    sql_type: str


def _column(f: dataclasses.Field[Any], hint: Any) -> Column:
    how = f.metadata.get("kb", Stored())
    args = typing.get_args(hint)
    nullable = type(None) in args
    if nullable:
        (hint,) = (a for a in args if a is not type(None))
    origin = typing.get_origin(hint)
    if hint in _SCALARS:
        kind, t = _SCALARS[hint]
        t = pa.int32() if how.int32 else t
    elif origin is tuple and typing.get_args(hint) == (str, ...):
        kind, t = "strs", pa.list_(_S)
    elif origin is dict and how.json:
        kind, t = "json", _S
    elif origin is dict and how.pairs:
        names, values = how.pairs
        arrow = (pa.field(names, pa.list_(_S), nullable=False), pa.field(values, pa.list_(_F), nullable=False))
        sql_name = None if how.rows_table else f.name
        return Column(f.name, "pairs", False, how, arrow, sql_name, "MAP(VARCHAR, DOUBLE)")
    else:
        raise TypeError(f"record field {f.name}: {hint} has no stored form; declare it with field(metadata=stored(...))")
    sql_name = f"{f.name}_json" if kind == "json" else f.name
    return Column(f.name, kind, nullable, how, (pa.field(f.name, t, nullable=nullable),), sql_name, duck_type(t))


def _columns(cls: type) -> tuple[Column, ...]:
    hints = typing.get_type_hints(cls)
    return tuple(_column(f, hints[f.name]) for f in dataclasses.fields(cls))


#: The stored fields of each table's record, in field order.
COLUMNS: dict[str, tuple[Column, ...]] = {table: _columns(cls) for table, cls in RECORD_TYPES.items()}

#: One Arrow schema per table: the column layout of ``dump_table``/``load_table`` frames and snapshot files.
LAYOUTS: dict[str, pa.Schema] = {
    table: pa.schema([a for c in cols for a in c.arrow]) for table, cols in COLUMNS.items()
}

#: Primary key columns of each table.
KEYS: dict[str, tuple[str, ...]] = {
    table: tuple(c.name for c in cols if c.how.key) for table, cols in COLUMNS.items()
}

#: The fields of each table that name a record of another table: (field, that table), which is stored first.
REFS: dict[str, tuple[tuple[str, str], ...]] = {
    table: tuple((c.name, c.how.ref) for c in cols if c.how.ref) for table, cols in COLUMNS.items()
}


def batch_what(table: str, n: int, key: str) -> str:
    """How messages name ``n`` records of ``table``: one by its key (``key``: the first one's), several by
    their number."""
    if table == "metafeatures":
        return f"meta-features of {n} dataset(s)"
    if n == 1:
        return f"{_NOUNS[table]} {key}"
    return f"{n} {'searches' if table == 'searches' else _NOUNS[table] + 's'}"


def missing_refs_error(what: str, table: str, keys: Sequence[str]) -> MissingReferenceError:
    """The error for records (``what``) naming records of ``table`` that are not stored (``keys``)."""
    return MissingReferenceError(what, _NOUNS[table], sorted(keys)[:3])


def sql_columns(table: str) -> list[tuple[str, str, bool]]:
    """(name, DuckDB type, nullable) of each column of the DuckDB table of ``table``'s records, in order."""
    return [(c.sql_name, c.sql_type, c.nullable) for c in COLUMNS[table] if c.sql_name is not None]


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


def _bad(what: str, field: str, value: Any, expected: str) -> InputError:
    return InputError(f"{what}: field {field} must be {expected}, got {value!r}")


def _str(what: str, field: str, v: Any, *, empty: bool = True) -> str:
    """``v`` as a plain ``str`` (a str subclass such as an enum member gives its value)."""
    if type(v) is str and (empty or v):
        return v
    if not isinstance(v, str) or (not empty and not v):
        raise _bad(what, field, v, "a string" if empty else "a non-empty string")
    return str.__str__(v)


def _int(what: str, field: str, v: Any) -> int:
    if type(v) is int:
        return v
    if isinstance(v, bool) or not isinstance(v, int | np.integer):
        if isinstance(v, float | np.floating) and float(v).is_integer():
            return int(v)
        raise _bad(what, field, v, "an integer")
    return int(v)


def _float(what: str, field: str, v: Any) -> float:
    if type(v) is float:
        return v
    if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
        raise _bad(what, field, v, "a number")
    return float(v)


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


def _json_text(what: str, c: Column, v: Any) -> str:
    """The stored JSON text of a dict field: canonical (finite numbers only) or lenient (NaN allowed)."""
    if not isinstance(v, dict):
        raise _bad(what, c.name, v, "a dict")
    try:
        if c.how.json == "canonical":
            return canonical_json(v)
        return json.dumps(v, sort_keys=True, separators=(",", ":"), default=_json_default)
    except (TypeError, ValueError) as err:
        if c.how.json == "canonical":
            raise InputError(
                f"{what}: {c.name} must be JSON (finite numbers, str, bool, None, lists, dicts) ({err})"
            ) from err
        raise InputError(
            f"{what}: {c.name} must be JSON-serialisable ({err}); pass plain str/number/list/dict"
        ) from err


def _normal_value(what: str, c: Column, v: Any) -> Any:
    if v is None and c.nullable:
        return None
    if c.kind == "str":
        s = _str(what, c.name, v, empty=not (c.how.key or c.how.ref))
        if c.how.choices and s not in c.how.choices:
            raise _bad(what, c.name, s, f"one of {sorted(c.how.choices)}")
        return s
    if c.kind in ("int", "float"):
        number: float = _int(what, c.name, v) if c.kind == "int" else _float(what, c.name, v)
        if c.how.minimum is not None and number < c.how.minimum:  # NaN compares false: it passes
            raise _bad(what, c.name, number, f"at least {c.how.minimum:g}")
        return number
    if c.kind == "datetime":
        return _ts(what, c.name, v)
    if c.kind == "strs":
        if isinstance(v, str) or not isinstance(v, Sequence):
            raise _bad(what, c.name, v, "a tuple of strings")
        return tuple(_str(what, c.name, s) for s in v)
    if c.kind == "json":
        return json.loads(_json_text(what, c, v))
    return _float_map(what, c.name, v)


def _what(table: str, record: Any) -> str:
    return f"{_NOUNS[table]} {getattr(record, KEYS[table][0])!r}"


def normalise(table: str, record: Any) -> Any:
    """``record`` validated and in its canonical stored form (a new record of the table's type)."""
    cls = RECORD_TYPES[table]
    if not isinstance(record, cls):
        raise InputError(f"expected a {cls.__name__}, got {type(record).__name__}")
    what = _what(table, record)
    return cls(**{c.name: _normal_value(what, c, getattr(record, c.name)) for c in COLUMNS[table]})


def record_key(table: str, record: Any) -> tuple[str, ...]:
    return tuple(getattr(record, k) for k in KEYS[table])


# ---------------------------------------------------------------------------------------------------------
# Records <-> Arrow <-> DataFrame
# ---------------------------------------------------------------------------------------------------------


def record_columns(table: str, records: Sequence[Any]) -> dict[str, list[Any]]:
    """Normalised records -> their snapshot-layout columns (name -> one value per record)."""
    cols: dict[str, list[Any]] = {}
    for c in COLUMNS[table]:
        values = [getattr(r, c.name) for r in records]
        if c.kind == "strs":
            cols[c.name] = [list(v) for v in values]
        elif c.kind == "json":
            cols[c.name] = [_json_text(_what(table, r), c, v) for r, v in zip(records, values, strict=True)]
        elif c.kind == "pairs":
            names, numbers = (a.name for a in c.arrow)
            cols[names] = [list(v) for v in values]
            cols[numbers] = [list(v.values()) for v in values]
        else:
            cols[c.name] = values
    return cols


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


def _reader(table: str, c: Column, data: dict[str, list[Any]]) -> Callable[[int], Any]:
    """The value of field ``c`` in row ``i`` of the snapshot-layout columns ``data``."""
    if c.kind == "pairs":
        names_col, values_col = (a.name for a in c.arrow)
        label = names_col.replace("_", " ")

        def pairs(i: int) -> dict[str, float]:
            names, values = data[names_col][i], data[values_col][i]
            if len(names) != len(values) or len(set(names)) != len(names):
                raise FileFormatError(
                    f"KB table {table}: row {i} has {len(names)} {label} (unique: {len(set(names))}) "
                    f"for {len(values)} values; names must be unique and match the values one to one"
                )
            return dict(zip(names, values, strict=True))

        return pairs
    col = data[c.name]
    if c.kind == "strs":
        return lambda i: tuple(col[i])
    if c.kind == "json":
        return lambda i: _loads(table, c.name, col[i])
    return col.__getitem__


def arrow_to_records(table: str, tbl: pa.Table) -> list[Any]:
    """An Arrow table in the snapshot layout -> validated, normalised records (in row order)."""
    check_table(table)
    tbl = conform(table, tbl)
    _nulls(table, tbl)
    data = {name: tbl.column(name).to_pylist() for name in tbl.column_names}
    cls = RECORD_TYPES[table]
    readers = [(c.name, _reader(table, c, data)) for c in COLUMNS[table]]
    try:
        out = [cls(**{name: read(i) for name, read in readers}) for i in range(tbl.num_rows)]
    except ValueError as err:
        if isinstance(err, InputError):
            raise
        # the record constructors reject unknown run / search statuses
        raise FileFormatError(f"KB table {table}: {err}") from err
    return [normalise(table, r) for r in out]


#: The snapshot columns of each table added after schema version 1 (``stored(since=...)``): a snapshot of
#: an older version lacks them, and they read as null.
_ADDED: dict[str, frozenset[str]] = {
    table: frozenset(a.name for c in cols if c.how.since > 1 and c.nullable for a in c.arrow)
    for table, cols in COLUMNS.items()
}


def conform(table: str, tbl: pa.Table) -> pa.Table:
    """Select and cast the columns of ``tbl`` to the layout of ``table``; extra columns are ignored, the
    columns of fields added by a later schema version than the data's (absent) are null."""
    schema = LAYOUTS[table]
    for f in schema:
        if f.name in _ADDED[table] and f.name not in tbl.column_names:
            tbl = tbl.append_column(f, pa.nulls(tbl.num_rows, type=f.type))
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

#: The columns of ``runs_frame`` in order, each with the table whose record field it is (a run's
#: configuration gives ``space`` and ``space_version``).
RUNS_FRAME_SOURCES: tuple[tuple[str, str], ...] = (
    ("runs", "run_id"),
    ("runs", "dataset_id"),
    ("runs", "config_id"),
    ("configurations", "space"),
    ("configurations", "space_version"),
    ("runs", "protocol"),
    ("runs", "status"),
    ("runs", "metric"),
    ("runs", "score"),
    ("runs", "cost"),
    ("runs", "fit_seconds"),
    ("runs", "budget"),
    ("runs", "source"),
)
RUNS_FRAME_SCHEMA = pa.schema([(name, LAYOUTS[table].field(name).type) for table, name in RUNS_FRAME_SOURCES])
#: Columns of ``runs_frame`` in order.
RUNS_FRAME_COLUMNS: tuple[str, ...] = tuple(RUNS_FRAME_SCHEMA.names)


def runs_frame_from_arrow(tbl: pa.Table) -> pd.DataFrame:
    """The ``runs_frame`` DataFrame: str columns, float64 numbers (``budget`` NaN when full fidelity)."""
    tbl = tbl.select(list(RUNS_FRAME_COLUMNS)).cast(RUNS_FRAME_SCHEMA)
    frame = tbl.to_pandas()
    frame.index = pd.RangeIndex(len(frame))
    return frame


def rescored(frame: pd.DataFrame, values: np.ndarray, metric: str) -> pd.DataFrame:
    """A ``runs_frame`` (``frame``) scored by ``metric``: ``values`` holds each run's value of it (NaN where
    the run did not record it). Ok runs with a value get it as ``score`` and its cost (lower is better) as
    ``cost``; ok runs without one are dropped; failed runs stay (NaN score and cost). Every run kept is
    labelled ``metric``."""
    from metalearn.data.metrics import get_metric

    m = get_metric(metric)
    ok = (frame["status"].to_numpy(dtype=object) == "ok") & ~np.isnan(frame["score"].to_numpy(dtype=float))
    keep = ~ok | ~np.isnan(values)
    out = frame.copy()
    out.loc[ok, "score"] = values[ok]
    out.loc[ok, "cost"] = values[ok] if not m.greater_is_better else -values[ok]
    out["metric"] = metric  # failed runs too: a dataset's runs of one metric are read together
    out = out[keep]
    out.index = pd.RangeIndex(len(out))
    return out


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
