"""The DuckDB knowledge base: one file, owned read-write by one process.

Concurrency model: the store opens ONE DuckDB connection and hands every thread its own cursor
(``connection.cursor()``, kept in a ``threading.local``), so reads run in parallel under DuckDB's MVCC and
never wait for writers. Writes are serialised by a lock (shared by every store open on the same file in
this process) and each public write runs in one DuckDB transaction; ``transaction()`` groups several
writes, nested calls join the outer one. Batches go in through Arrow (``INSERT ... SELECT`` from a
registered Arrow table), so 100k runs insert in about a second.

Puts that skip existing keys use ``INSERT ... WHERE NOT EXISTS`` (an anti join; safe because writes are
serialised) rather than ``ON CONFLICT DO NOTHING``: in DuckDB 2.0 the ON CONFLICT path rewrites -0.0 to 0.0
inside nested values such as the metrics MAP, which would break the bit-exact round trip.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Self

import duckdb
import pandas as pd
import pyarrow as pa

from metalearn.data.errors import InputError, KnowledgeBaseError, MetaLearnError, NotFoundError
from metalearn.kb import owners, schema
from metalearn.kb.base import TABLES, KnowledgeBase
from metalearn.kb.model_store import ModelStore, bump_alias_epoch
from metalearn.kb.model_store_duckdb import DuckDBModelStore
from metalearn.kb.records import (
    ConfigurationRecord,
    DatasetRecord,
    MetaFeatureRecord,
    RunRecord,
    SearchRecord,
)

_PATH_LOCKS: dict[str, threading.RLock] = {}
_PATH_LOCKS_GUARD = threading.Lock()


def _lock_for(key: str) -> threading.RLock:
    with _PATH_LOCKS_GUARD:
        lock = _PATH_LOCKS.get(key)
        if lock is None:
            lock = _PATH_LOCKS[key] = threading.RLock()
        return lock


#: Bytes 8-11 of every DuckDB database file (after the header checksum).
_DUCKDB_MAGIC = b"DUCK"


def _is_duckdb_file(path: Path) -> bool:
    """Whether the existing file ``path`` starts like a DuckDB database (True when it cannot be read:
    DuckDB then says what is wrong)."""
    try:
        with path.open("rb") as f:
            head = f.read(12)
    except OSError:
        return True
    return head[8:12] == _DUCKDB_MAGIC


def is_query_interrupt(exc: BaseException) -> bool:
    """Whether ``exc`` is DuckDB's answer to Ctrl-C (SIGINT) during a query — ``RuntimeError("Query
    interrupted")`` — or to an interrupted connection (``duckdb.InterruptException``): an interrupt, not
    an error (the CLI ends such a command as interrupted, whichever command's query it landed in)."""
    if isinstance(exc, RuntimeError) and str(exc).strip() == "Query interrupted":
        return True
    return isinstance(exc, duckdb.InterruptException)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


_BATCH = "_metalearn_batch"


def _q(name: str) -> str:
    return f'"{name}"'


#: The DuckDB columns of each table's records, comma-separated (what a SELECT of whole records names).
_SELECT: dict[str, str] = {
    table: ", ".join(_q(name) for name, _, _ in schema.sql_columns(table)) for table in TABLES
}

#: A one-row SELECT with one typed parameter per snapshot-layout column, per table.
_ONE_ROW_SQL: dict[str, str] = {
    table: "(SELECT " + ", ".join(f"?::{schema.duck_type(f.type)} AS {_q(f.name)}" for f in layout) + ")"
    for table, layout in schema.LAYOUTS.items()
}


def _stored_value(c: schema.Column, prefix: str = "") -> str:
    """The SQL expression of field ``c`` as its DuckDB column stores it, from snapshot-layout columns."""
    if c.kind == "pairs":
        names, values = (prefix + _q(a.name) for a in c.arrow)
        return f"map({names}, {values})"
    return prefix + _q(c.name)


def _dump_sql(table: str) -> str:
    """The SELECT of a whole table in the snapshot layout (a field kept in its own long table is gathered
    back into its name and value lists), ordered by creation time then key."""
    keys = schema.KEYS[table]
    exprs: list[str] = []
    join = ""
    for c in schema.COLUMNS[table]:
        if c.kind == "pairs" and c.sql_name is None:
            names, values = (_q(a.name) for a in c.arrow)
            some = "FILTER (WHERE v.name IS NOT NULL)"
            exprs.append(f"coalesce(list(v.name ORDER BY v.position) {some}, []::VARCHAR[]) AS {names}")
            exprs.append(f"coalesce(list(v.value ORDER BY v.position) {some}, []::DOUBLE[]) AS {values}")
            on = " AND ".join(f"v.{_q(k)} = m.{_q(k)}" for k in keys)
            own = ", ".join(f"m.{_q(name)}" for name, _, _ in schema.sql_columns(table))
            join = f" LEFT JOIN {c.how.rows_table} v ON {on} GROUP BY {own}"
        elif c.kind == "pairs":
            exprs.append(f"map_keys(m.{_q(c.name)}) AS {_q(c.arrow[0].name)}")
            exprs.append(f"map_values(m.{_q(c.name)}) AS {_q(c.arrow[1].name)}")
        else:
            exprs.append(f"m.{_q(c.sql_name or c.name)} AS {_q(c.name)}")
    order = ", ".join(f"m.{_q(k)}" for k in ("created_at", *keys))
    return f"SELECT {', '.join(exprs)} FROM {table} m{join} ORDER BY {order}"


def _insert_sql(table: str, upsert: bool) -> str:
    """INSERT the records of a row source ``{src}`` (snapshot layout) into ``table``: a key already stored
    is skipped, or with ``upsert`` overwritten."""
    cols = [c for c in schema.COLUMNS[table] if c.sql_name is not None]
    keys = schema.KEYS[table]
    head = (
        f"INSERT INTO {table} ({', '.join(_q(c.sql_name or '') for c in cols)}) "
        f"SELECT {', '.join(_stored_value(c, 'b.') for c in cols)} FROM {{src}} b"
    )
    if upsert:
        update = ", ".join(
            f"{_q(c.sql_name or '')} = excluded.{_q(c.sql_name or '')}" for c in cols if c.name not in keys
        )
        return f"{head} ON CONFLICT ({', '.join(_q(k) for k in keys)}) DO UPDATE SET {update}"
    same = " AND ".join(f"t.{_q(k)} = b.{_q(k)}" for k in keys)
    return f"{head} WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE {same})"


#: The columns of ``runs_frame`` from runs ``r`` joined with their configurations ``c``.
_RUNS_FRAME_SELECT = ", ".join(
    f"{'r' if table == 'runs' else 'c'}.{_q(name)}" for table, name in schema.RUNS_FRAME_SOURCES
)


#: The long table of meta-feature values (one row per feature), as ``MetaFeatureRecord.values`` declares.
_VALUES = next(c.how.rows_table for c in schema.COLUMNS["metafeatures"] if c.how.rows_table)


def _record(table: str, row: dict[str, Any]) -> Any:
    """The record of a DuckDB row given as column name -> value."""
    values: dict[str, Any] = {}
    for c in schema.COLUMNS[table]:
        v = row[c.sql_name or c.name]
        if c.kind == "strs":
            v = tuple(v)
        elif c.kind == "json":
            v = json.loads(v)
        values[c.name] = v
    return schema.RECORD_TYPES[table](**values)


class _Source:
    """A row source (``{src}`` in SQL) plus the parameters each occurrence of it needs."""

    def __init__(self, sql: str, params: list[Any], cur: duckdb.DuckDBPyConnection) -> None:
        self.sql, self.params, self.cur = sql, params, cur

    def rows(self, template: str) -> list[tuple[Any, ...]]:
        n = template.count("{src}")
        return self.cur.execute(template.replace("{src}", self.sql), self.params * n).fetchall()

    def count(self, template: str) -> int:
        rows = self.rows(template)
        return int(rows[0][0]) if rows else 0


def _page(limit: int | None, offset: int) -> tuple[str, list[Any]]:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise InputError(f"limit must be a non-negative integer or None, got {limit!r}")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InputError(f"offset must be a non-negative integer, got {offset!r}")
    if limit is None:
        return " OFFSET ?", [offset]
    return " LIMIT ? OFFSET ?", [limit, offset]


class DuckDBKnowledgeBase(KnowledgeBase):
    """A knowledge base in a DuckDB file (``":memory:"`` gives a private in-memory DuckDB database)."""

    def __init__(self, path: str | Path, read_only: bool = False) -> None:
        self._memory = str(path) == ":memory:"
        self.path: Path = Path(path) if self._memory else Path(path).expanduser().absolute()
        self.read_only = bool(read_only)
        self._local = threading.local()
        self._cursors: dict[int, duckdb.DuckDBPyConnection] = {}
        self._cursors_guard = threading.Lock()
        self._closed = True
        key = f"memory:{id(self)}" if self._memory else str(self.path.resolve())
        self._lock = _lock_for(key)
        #: the key of this file's alias epoch (see metalearn.kb.model_store, rule 6)
        self.epoch_key = key
        self._con = self._connect()
        self._closed = False
        try:
            with self._lock:
                self._version = schema.migrate(self._con, self.path, self.read_only)
            #: searches a killed process left pending/running, marked interrupted by this open
            self.interrupted_searches: list[str] = (
                [] if self.read_only else owners.interrupt_orphaned_searches(self)
            )
        except BaseException:
            self.close()
            raise

    # -- lifecycle -------------------------------------------------------------------------------
    def _connect(self) -> duckdb.DuckDBPyConnection:
        config: dict[str, str | bool | int | float | list[str]] = {
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
        }
        if self._memory:
            return duckdb.connect(":memory:", config=config)
        path = self.path
        if path.is_dir():
            raise KnowledgeBaseError(
                f"kb path {path} is a directory: point --kb at a file such as {path / 'kb.duckdb'}"
            )
        if self.read_only and not path.exists():
            raise KnowledgeBaseError(
                f"kb file {path} does not exist: open it read-write once to create it, or point --kb at an existing KB"
            )
        if path.is_file() and not _is_duckdb_file(path):
            # DuckDB itself would open a .csv or .parquet file as a view in an in-memory database
            raise self._not_duckdb()
        if not self.read_only:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise KnowledgeBaseError(
                    f"cannot create the directory of kb file {path} ({err.strerror}): point --kb at a writable path"
                ) from err
        try:
            return duckdb.connect(str(path), read_only=self.read_only, config=config)
        except duckdb.Error as err:
            raise self._open_error(err) from err

    def _not_duckdb(self) -> KnowledgeBaseError:
        return KnowledgeBaseError(
            f"{self.path} is not a DuckDB file, so not a metalearn knowledge base: point --kb at a KB file "
            "(*.duckdb) or at a new path"
        )

    def _open_error(self, err: duckdb.Error) -> KnowledgeBaseError:
        text = str(err)
        path = self.path
        if "lock" in text.lower():
            pid = re.search(r"PID (\d+)", text)
            who = f" (PID {pid.group(1)})" if pid else ""
            return KnowledgeBaseError(
                f"kb file {path} is locked by another metalearn process{who}, e.g. a running `metalearn serve`: "
                "stop it, send your request to its HTTP API instead, or point --kb at another file"
            )
        if "not a valid DuckDB database file" in text or "not a valid DuckDB" in text:
            return self._not_duckdb()
        if "different configuration" in text:
            return KnowledgeBaseError(
                f"kb file {path} is already open in this process with a different read_only setting: "
                "close the other KnowledgeBase first or reuse it"
            )
        return KnowledgeBaseError(
            f"cannot open kb file {path} ({_first_line(err)}): check the file, or point --kb at another file"
        )

    def __enter__(self) -> Self:
        return self

    @property
    def schema_version(self) -> int:
        return self._version

    @property
    def models(self) -> ModelStore:
        """The model registry's tables in this file (same connection, lock and transactions)."""
        return DuckDBModelStore(self)

    def close(self) -> None:
        if self._closed:
            return
        with self._lock:
            self._closed = True
            with self._cursors_guard:
                cursors = list(self._cursors.values())
                self._cursors.clear()
            for cur in cursors:
                with suppress(duckdb.Error):
                    cur.close()
            with suppress(duckdb.Error):
                self._con.close()

    def __repr__(self) -> str:
        mode = "read-only" if self.read_only else "read-write"
        return f"DuckDBKnowledgeBase({str(self.path)!r}, {mode}{', closed' if self._closed else ''})"

    # -- plumbing --------------------------------------------------------------------------------
    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cur = getattr(self._local, "cursor", None)
        if cur is not None and not self._closed:
            return cur
        if self._closed:
            raise KnowledgeBaseError(
                f"the knowledge base {self.path} is closed: open it again with open_kb()"
            )
        with self._cursors_guard:
            alive = {t.ident for t in threading.enumerate()}
            for ident in [i for i in self._cursors if i not in alive]:
                with suppress(duckdb.Error):
                    self._cursors.pop(ident).close()
            cur = self._con.cursor()
            ident = threading.get_ident()
            old = self._cursors.get(ident)
            if old is not None:
                with suppress(duckdb.Error):
                    old.close()
            self._cursors[ident] = cur
        self._local.cursor = cur
        self._local.depth = 0
        return cur

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except MetaLearnError:
            raise
        except duckdb.Error as err:
            text = str(err)
            if "read-only" in text or "read only" in text:
                raise KnowledgeBaseError(
                    f"kb file {self.path} is open read-only, so {action} is not allowed: open it without read_only"
                ) from err
            raise KnowledgeBaseError(f"kb file {self.path}: {action} failed ({_first_line(err)})") from err

    def _records(self, table: str, rest: str, params: Sequence[Any] = ()) -> list[Any]:
        """The records of ``table`` that ``SELECT <its columns> FROM table <rest>`` gives, mapped by column name."""
        cur = self._cursor()
        with self._errors("reading"):
            cur.execute(f"SELECT {_SELECT[table]} FROM {table} {rest}", list(params))
            names = [d[0] for d in cur.description or ()]
            rows = cur.fetchall()
        return [_record(table, dict(zip(names, row, strict=True))) for row in rows]

    def _arrow(self, sql: str, params: Sequence[Any] = (), action: str = "reading") -> pa.Table:
        cur = self._cursor()
        with self._errors(action):
            return cur.sql(sql, params=list(params)).to_arrow_table()

    @contextmanager
    def _tx(self, action: str) -> Iterator[duckdb.DuckDBPyConnection]:
        """Run a block in the thread's transaction (joining an open one) under the write lock."""
        cur = self._cursor()
        with self._lock:
            if self._closed:
                raise KnowledgeBaseError(
                    f"the knowledge base {self.path} is closed: open it again with open_kb()"
                )
            depth = self._local.depth
            if depth:
                self._local.depth = depth + 1
                try:
                    with self._errors(action):
                        yield cur
                finally:
                    self._local.depth = depth
                return
            with self._errors(action):
                cur.execute("BEGIN TRANSACTION")
            self._local.depth = 1
            try:
                with self._errors(action):
                    yield cur
            except BaseException:
                self._local.depth = 0
                with suppress(duckdb.Error):
                    cur.execute("ROLLBACK")
                bump_alias_epoch(self.epoch_key)
                raise
            self._local.depth = 0
            try:
                cur.execute("COMMIT")
            except duckdb.Error as err:
                with suppress(duckdb.Error):
                    cur.execute("ROLLBACK")
                bump_alias_epoch(self.epoch_key)
                raise KnowledgeBaseError(
                    f"kb file {self.path}: committing {action} failed ({_first_line(err)}); nothing was written"
                ) from err

    def _writable(self, action: str) -> None:
        if self.read_only:
            raise KnowledgeBaseError(
                f"kb file {self.path} is open read-only, so {action} is not allowed: open it without read_only"
            )

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._tx("the transaction"):
            yield

    @contextmanager
    def _registered(self, cur: duckdb.DuckDBPyConnection, name: str, tbl: pa.Table) -> Iterator[str]:
        cur.register(name, tbl)
        try:
            yield name
        finally:
            cur.unregister(name)

    @contextmanager
    def _source(
        self, cur: duckdb.DuckDBPyConnection, table: str, records: Sequence[Any]
    ) -> Iterator[_Source]:
        """The records as an SQL row source in the snapshot layout: a registered Arrow table for a batch,
        a parameterised one-row SELECT for a single record (several times cheaper in DuckDB)."""
        if len(records) == 1:
            cols = schema.record_columns(table, records)
            yield _Source(_ONE_ROW_SQL[table], [cols[f.name][0] for f in schema.LAYOUTS[table]], cur)
        else:
            with self._registered(cur, _BATCH, schema.records_to_arrow(table, records)):
                yield _Source(_BATCH, [], cur)

    def _check_refs(self, src: _Source, table: str, refs: Sequence[tuple[str, str]]) -> None:
        """Raise unless every record a field of the batch names (``schema.REFS``) is stored."""
        key = schema.KEYS[table][0]
        sql = " UNION ALL ".join(
            f"(SELECT '{ref}', list_sort(list(DISTINCT b.{column}))[1:3], count(*), min(b.{key}) FROM {{src}} b "
            f"ANTI JOIN {ref} t ON t.{schema.KEYS[ref][0]} = b.{column} WHERE b.{column} IS NOT NULL)"
            for column, ref in refs
        )
        for ref, keys, n, first in src.rows(sql):
            if n:
                raise schema.missing_refs_error(schema.batch_what(table, int(n), str(first)), ref, keys)

    # -- writers (inside a transaction) ----------------------------------------------------------
    def _insert(
        self, cur: duckdb.DuckDBPyConnection, table: str, records: Sequence[Any], upsert: bool = False
    ) -> int:
        """Insert normalised records (their references checked first); returns how many were inserted."""
        if not records:
            return 0
        refs = schema.REFS[table]
        with self._source(cur, table, records) as src:
            if refs:
                self._check_refs(src, table, refs)
            return src.count(_insert_sql(table, upsert))

    def _insert_metafeatures(
        self, cur: duckdb.DuckDBPyConnection, records: Sequence[MetaFeatureRecord], upsert: bool
    ) -> int:
        """Meta-feature vectors: their rows (upsert: the new vector replaces a stored one) and their values,
        one row per feature in :data:`_VALUES`."""
        if not records:
            return 0
        if not upsert:
            with self._source(cur, "metafeatures", records) as src:
                existing = {
                    (str(a), str(b))
                    for a, b in src.rows(
                        "SELECT m.dataset_id, m.version FROM metafeatures m SEMI JOIN {src} b "
                        "ON m.dataset_id = b.dataset_id AND m.version = b.version"
                    )
                }
            records = [r for r in records if (r.dataset_id, r.version) not in existing]
            if not records:
                return 0
        self._insert(cur, "metafeatures", records, upsert=True)
        with self._source(cur, "metafeatures", records) as src:
            src.rows(
                f"DELETE FROM {_VALUES} v USING {{src}} b "
                "WHERE v.dataset_id = b.dataset_id AND v.version = b.version"
            )
            src.rows(
                f"INSERT INTO {_VALUES} SELECT b.dataset_id, b.version, "
                "unnest(generate_series(0, len(b.names) - 1)), unnest(b.names), unnest(b.values) FROM {src} b"
            )
        return len(records)

    # -- datasets --------------------------------------------------------------------------------
    def put_dataset(self, record: DatasetRecord) -> bool:
        self._writable("put_dataset")
        rec = schema.normalise("datasets", record)
        with self._tx("put_dataset") as cur:
            return self._insert(cur, "datasets", [rec]) == 1

    def get_dataset(self, dataset_id: str) -> DatasetRecord:
        rows = self._records("datasets", "WHERE dataset_id = ?", [dataset_id])
        if not rows:
            raise NotFoundError(
                f"dataset {dataset_id} is not in the knowledge base: list datasets to find its id"
            )
        return rows[0]

    def list_datasets(
        self, kind: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[DatasetRecord]:
        page, page_params = _page(limit, offset)
        where, params = ("WHERE kind = ?", [kind]) if kind is not None else ("", [])
        return self._records("datasets", f"{where} ORDER BY created_at, dataset_id{page}", params + page_params)

    def find_datasets(self, name: str | None = None, openml_id: int | None = None) -> list[DatasetRecord]:
        if name is None and openml_id is None:
            raise InputError("find_datasets needs a name or an openml_id")
        conds: list[str] = []
        params: list[Any] = []
        if name is not None:
            conds.append("name = ?")
            params.append(name)
        if openml_id is not None:
            conds.append("openml_id = ?")
            params.append(schema.openml_id_arg(openml_id))
        return self._records(
            "datasets", f"WHERE {' AND '.join(conds)} ORDER BY created_at, dataset_id", params
        )

    # -- meta-features ---------------------------------------------------------------------------
    def put_metafeatures(self, record: MetaFeatureRecord) -> None:
        self._writable("put_metafeatures")
        rec = schema.normalise("metafeatures", record)
        with self._tx("put_metafeatures") as cur:
            self._insert_metafeatures(cur, [rec], upsert=True)

    def get_metafeatures(self, dataset_id: str, version: str) -> MetaFeatureRecord:
        cur = self._cursor()
        with self._errors("reading meta-features"):
            cur.execute(
                f"SELECT {_SELECT['metafeatures']} FROM metafeatures WHERE dataset_id = ? AND version = ?",
                [dataset_id, version],
            )
            names = [d[0] for d in cur.description or ()]
            head = cur.fetchall()
            if not head:
                raise NotFoundError(
                    f"no meta-features of dataset {dataset_id} for extractor version {version!r}: extract them first"
                )
            values = cur.execute(
                f"SELECT name, value FROM {_VALUES} WHERE dataset_id = ? AND version = ? ORDER BY position",
                [dataset_id, version],
            ).fetchall()
        return _record("metafeatures", {**dict(zip(names, head[0], strict=True)), "values": dict(values)})

    def metafeature_frame(self, version: str, kind: str | None = None) -> pd.DataFrame:
        sql = "SELECT v.dataset_id, v.name, v.value FROM metafeature_values v"
        params: list[Any] = [version]
        if kind is not None:
            sql += " JOIN datasets d ON d.dataset_id = v.dataset_id WHERE v.version = ? AND d.kind = ?"
            params.append(kind)
        else:
            sql += " WHERE v.version = ?"
        return schema.metafeature_frame_from_long(self._arrow(sql, params, "reading meta-features"))

    # -- configurations --------------------------------------------------------------------------
    def put_configuration(self, record: ConfigurationRecord) -> bool:
        self._writable("put_configuration")
        rec = schema.normalise("configurations", record)
        with self._tx("put_configuration") as cur:
            return self._insert(cur, "configurations", [rec]) == 1

    def get_configuration(self, config_id: str) -> ConfigurationRecord:
        rows = self._records("configurations", "WHERE config_id = ?", [config_id])
        if not rows:
            raise NotFoundError(f"configuration {config_id} is not in the knowledge base")
        return rows[0]

    def get_configurations(self, config_ids: Iterable[str]) -> dict[str, ConfigurationRecord]:
        ids = sorted({str(c) for c in config_ids})
        if not ids:
            return {}
        return {c.config_id: c for c in self._records("configurations", "WHERE config_id = ANY(?)", [ids])}

    # -- runs ------------------------------------------------------------------------------------
    def add_runs(self, records: Sequence[RunRecord], *, replace_failed: bool = False) -> int:
        self._writable("add_runs")
        recs = schema.dedupe("runs", [schema.normalise("runs", r) for r in records])
        if not recs:
            return 0
        with self._tx("add_runs") as cur:
            if replace_failed:
                ids = [r.run_id for r in recs]
                marks = ", ".join("?" * len(ids))
                cur.execute(f"DELETE FROM runs WHERE status <> 'ok' AND run_id IN ({marks})", ids)
            return self._insert(cur, "runs", recs)

    def get_run(self, run_id: str) -> RunRecord:
        rows = self._records("runs", "WHERE run_id = ?", [run_id])
        if not rows:
            raise NotFoundError(f"run {run_id} is not in the knowledge base")
        return rows[0]

    def list_runs(
        self,
        dataset_id: str | None = None,
        config_id: str | None = None,
        search_id: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[RunRecord]:
        page, page_params = _page(limit, offset)
        conds, params = [], []
        for column, value in (
            ("dataset_id", dataset_id),
            ("config_id", config_id),
            ("search_id", search_id),
            ("status", status),
        ):
            if value is not None:
                conds.append(f"{column} = ?")
                params.append(value)
        where = f"WHERE {' AND '.join(conds)}" if conds else ""
        return self._records("runs", f"{where} ORDER BY created_at, run_id{page}", params + page_params)

    def runs_frame(
        self, kind: str | None = None, space: str | None = None, ok_only: bool = True, metric: str | None = None
    ) -> pd.DataFrame:
        value = ", list_extract(map_extract(r.metrics, ?), 1) AS metric_value" if metric is not None else ""
        sql = f"SELECT {_RUNS_FRAME_SELECT}{value} FROM runs r JOIN configurations c ON c.config_id = r.config_id"
        conds: list[str] = []
        params: list[Any] = [] if metric is None else [metric]
        if kind is not None:
            sql += " JOIN datasets d ON d.dataset_id = r.dataset_id"
            conds.append("d.kind = ?")
            params.append(kind)
        if space is not None:
            conds.append("c.space = ?")
            params.append(space)
        if ok_only:
            conds.append("r.status = 'ok' AND NOT isnan(r.score)")
        if conds:
            sql += " WHERE " + " AND ".join(conds)
        sql += " ORDER BY r.created_at, r.run_id"
        tbl = self._arrow(sql, params, "reading runs")
        if metric is None:
            return schema.runs_frame_from_arrow(tbl)
        values = tbl.column("metric_value").to_numpy(zero_copy_only=False).astype(float)
        return schema.rescored(schema.runs_frame_from_arrow(tbl), values, metric)

    # -- searches --------------------------------------------------------------------------------
    def put_search(self, record: SearchRecord) -> None:
        self._writable("put_search")
        rec = schema.normalise("searches", record)
        with self._tx("put_search") as cur:
            self._insert(cur, "searches", [rec], upsert=True)

    def get_search(self, search_id: str) -> SearchRecord:
        rows = self._records("searches", "WHERE search_id = ?", [search_id])
        if not rows:
            raise NotFoundError(
                f"search {search_id} is not in the knowledge base: list searches to find its id"
            )
        return rows[0]

    def list_searches(
        self, dataset_id: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[SearchRecord]:
        page, page_params = _page(limit, offset)
        where, params = ("WHERE dataset_id = ?", [dataset_id]) if dataset_id is not None else ("", [])
        return self._records("searches", f"{where} ORDER BY created_at, search_id{page}", params + page_params)

    # -- whole tables ----------------------------------------------------------------------------
    _DUMP_SQL: dict[str, str] = {table: _dump_sql(table) for table in TABLES}

    def dump_table(self, table: str) -> pd.DataFrame:
        schema.check_table(table)
        tbl = self._arrow(self._DUMP_SQL[table], (), f"dumping table {table}")
        return schema.arrow_to_frame(schema.conform(table, tbl))

    def load_table(self, table: str, frame: pd.DataFrame) -> int:
        schema.check_table(table)
        self._writable("load_table")
        records = schema.dedupe(table, schema.frame_to_records(table, frame))
        with self._tx(f"loading table {table}") as cur:
            if table == "metafeatures":
                return self._insert_metafeatures(cur, records, upsert=False)
            return self._insert(cur, table, records)

    def stats(self) -> dict[str, object]:
        cur = self._cursor()
        with self._errors("reading statistics"):
            by_kind = dict(
                cur.execute("SELECT kind, count(*) FROM datasets GROUP BY kind ORDER BY kind").fetchall()
            )
            by_status = dict(
                cur.execute(
                    "SELECT status, count(*) FROM searches GROUP BY status ORDER BY status"
                ).fetchall()
            )
            by_space = dict(
                cur.execute("SELECT space, count(*) FROM configurations GROUP BY space ORDER BY space").fetchall()
            )
            by_source = dict(
                cur.execute("SELECT source, count(*) FROM runs GROUP BY source ORDER BY source").fetchall()
            )
            rows = cur.execute(
                "SELECT (SELECT count(*) FROM metafeatures), (SELECT count(*) FROM configurations), "
                "(SELECT count(*) FROM runs), "
                "(SELECT count(*) FROM runs WHERE status = 'ok' AND NOT isnan(score))"
            ).fetchall()
        n_mf, n_cfg, n_runs, n_ok = (int(x) for x in rows[0])
        return {
            "schema_version": self._version,
            "datasets": int(sum(by_kind.values())),
            "datasets_by_kind": {str(k): int(v) for k, v in by_kind.items()},
            "metafeature_vectors": n_mf,
            "configurations": n_cfg,
            "configurations_by_space": {str(k): int(v) for k, v in by_space.items()},
            "runs": n_runs,
            "runs_ok": n_ok,
            "runs_failed": n_runs - n_ok,
            "runs_by_source": {str(k): int(v) for k, v in by_source.items()},
            "searches": int(sum(by_status.values())),
            "searches_by_status": {str(k): int(v) for k, v in by_status.items()},
        }

