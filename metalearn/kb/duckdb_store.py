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
from metalearn.kb import schema
from metalearn.kb.base import TABLES, KnowledgeBase
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


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


_DATASET_COLS = (
    "dataset_id, name, kind, n_rows, n_features, n_categorical, n_targets, targets, target_kinds, origin, "
    "openml_id, created_at"
)
_CONFIG_COLS = "config_id, space, space_version, values_json, created_at"
_RUN_COLS = (
    "run_id, dataset_id, config_id, protocol, status, metric, score, cost, metrics, fit_seconds, "
    "predict_seconds, error, source, search_id, budget, n_rows_used, created_at"
)
_SEARCH_COLS = (
    "search_id, dataset_id, status, settings_json, incumbent_config_id, incumbent_score, n_trials, error, "
    "created_at, updated_at"
)

_BATCH = "_metalearn_batch"


def _duck_type(t: pa.DataType) -> str:
    if pa.types.is_list(t):
        return _duck_type(t.value_type) + "[]"
    names = {pa.string(): "VARCHAR", pa.int64(): "BIGINT", pa.int32(): "INTEGER", pa.float64(): "DOUBLE"}
    if pa.types.is_timestamp(t):
        return "TIMESTAMP"
    return names[t]


#: A one-row SELECT with one typed parameter per snapshot-layout column, per table.
_ONE_ROW_SQL: dict[str, str] = {
    table: "(SELECT " + ", ".join(f'?::{_duck_type(f.type)} AS "{f.name}"' for f in layout) + ")"
    for table, layout in schema.LAYOUTS.items()
}


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


def _dataset(row: tuple[Any, ...]) -> DatasetRecord:
    return DatasetRecord(
        dataset_id=row[0],
        name=row[1],
        kind=row[2],
        n_rows=row[3],
        n_features=row[4],
        n_categorical=row[5],
        n_targets=row[6],
        targets=tuple(row[7]),
        target_kinds=tuple(row[8]),
        origin=row[9],
        openml_id=row[10],
        created_at=row[11],
    )


def _configuration(row: tuple[Any, ...]) -> ConfigurationRecord:
    return ConfigurationRecord(row[0], row[1], row[2], json.loads(row[3]), row[4])


def _run(row: tuple[Any, ...]) -> RunRecord:
    return RunRecord(*row)


def _search(row: tuple[Any, ...]) -> SearchRecord:
    return SearchRecord(row[0], row[1], row[2], json.loads(row[3]), *row[4:])


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
        self._con = self._connect()
        self._closed = False
        try:
            with self._lock:
                self._version = schema.migrate(self._con, self.path, self.read_only)
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
            return KnowledgeBaseError(
                f"{path} is not a DuckDB file, so not a metalearn knowledge base: point --kb at a KB file "
                "(*.duckdb) or at a new path"
            )
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

    def _rows(self, sql: str, params: Sequence[Any] = (), action: str = "reading") -> list[tuple[Any, ...]]:
        cur = self._cursor()
        with self._errors(action):
            return cur.execute(sql, list(params)).fetchall()

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
                raise
            self._local.depth = 0
            try:
                cur.execute("COMMIT")
            except duckdb.Error as err:
                with suppress(duckdb.Error):
                    cur.execute("ROLLBACK")
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

    def _check_refs(self, src: _Source, what: str, refs: Sequence[tuple[str, str]]) -> None:
        sql = " UNION ALL ".join(
            f"(SELECT DISTINCT '{table}', b.{column} FROM {{src}} b ANTI JOIN {table} t ON t.{column} = b.{column} "
            "ORDER BY 2 LIMIT 3)"
            for column, table in refs
        )
        missing: dict[str, list[str]] = {}
        for table, key in src.rows(sql):
            missing.setdefault(str(table), []).append(str(key))
        for _, table in refs:
            if table in missing:
                noun = "dataset" if table == "datasets" else "configuration"
                put = "put_dataset" if table == "datasets" else "put_configuration"
                raise NotFoundError(
                    f"{what} name {noun}(s) {', '.join(missing[table])} not stored in the knowledge base: "
                    f"{put} them first; nothing was written"
                )

    # -- writers (inside a transaction) ----------------------------------------------------------
    def _insert_datasets(self, cur: duckdb.DuckDBPyConnection, records: Sequence[DatasetRecord]) -> int:
        if not records:
            return 0
        with self._source(cur, "datasets", records) as src:
            return src.count(
                f"INSERT INTO datasets SELECT {_DATASET_COLS} FROM {{src}} b "
                "WHERE NOT EXISTS (SELECT 1 FROM datasets t WHERE t.dataset_id = b.dataset_id)"
            )

    def _insert_configurations(
        self, cur: duckdb.DuckDBPyConnection, records: Sequence[ConfigurationRecord]
    ) -> int:
        if not records:
            return 0
        with self._source(cur, "configurations", records) as src:
            return src.count(
                'INSERT INTO configurations SELECT config_id, space, space_version, "values", created_at '
                "FROM {src} b WHERE NOT EXISTS (SELECT 1 FROM configurations t WHERE t.config_id = b.config_id)"
            )

    def _insert_runs(self, cur: duckdb.DuckDBPyConnection, records: Sequence[RunRecord]) -> int:
        if not records:
            return 0
        with self._source(cur, "runs", records) as src:
            self._check_refs(
                src,
                "runs" if len(records) > 1 else f"run {records[0].run_id}",
                [("dataset_id", "datasets"), ("config_id", "configurations")],
            )
            return src.count(
                "INSERT INTO runs SELECT run_id, dataset_id, config_id, protocol, status, metric, score, cost, "
                "map(metric_names, metric_values), fit_seconds, predict_seconds, error, source, search_id, budget, "
                "n_rows_used, created_at FROM {src} b "
                "WHERE NOT EXISTS (SELECT 1 FROM runs t WHERE t.run_id = b.run_id)"
            )

    def _insert_metafeatures(
        self, cur: duckdb.DuckDBPyConnection, records: Sequence[MetaFeatureRecord], upsert: bool
    ) -> int:
        if not records:
            return 0
        with self._source(cur, "metafeatures", records) as src:
            self._check_refs(src, f"meta-features of {len(records)} dataset(s)", [("dataset_id", "datasets")])
            existing = (
                set()
                if upsert
                else {
                    (str(a), str(b))
                    for a, b in src.rows(
                        "SELECT m.dataset_id, m.version FROM metafeatures m SEMI JOIN {src} b "
                        "ON m.dataset_id = b.dataset_id AND m.version = b.version"
                    )
                }
            )
        if existing:
            records = [r for r in records if (r.dataset_id, r.version) not in existing]
            if not records:
                return 0
        with self._source(cur, "metafeatures", records) as src:
            src.rows(
                "DELETE FROM metafeature_values v USING {src} b "
                "WHERE v.dataset_id = b.dataset_id AND v.version = b.version"
            )
            src.rows(
                "INSERT INTO metafeatures SELECT dataset_id, version, extraction_seconds, created_at FROM {src} b "
                "ON CONFLICT (dataset_id, version) DO UPDATE SET extraction_seconds = excluded.extraction_seconds, "
                "created_at = excluded.created_at"
            )
            src.rows(
                "INSERT INTO metafeature_values SELECT b.dataset_id, b.version, "
                "unnest(generate_series(0, len(b.names) - 1)), unnest(b.names), unnest(b.values) FROM {src} b"
            )
        return len(records)

    def _insert_searches(
        self, cur: duckdb.DuckDBPyConnection, records: Sequence[SearchRecord], upsert: bool
    ) -> int:
        if not records:
            return 0
        conflict = (
            "DO UPDATE SET dataset_id = excluded.dataset_id, status = excluded.status, "
            "settings_json = excluded.settings_json, incumbent_config_id = excluded.incumbent_config_id, "
            "incumbent_score = excluded.incumbent_score, n_trials = excluded.n_trials, error = excluded.error, "
            "created_at = excluded.created_at, updated_at = excluded.updated_at"
            if upsert
            else "DO NOTHING"
        )
        with self._source(cur, "searches", records) as src:
            return src.count(
                "INSERT INTO searches SELECT search_id, dataset_id, status, settings, incumbent_config_id, "
                "incumbent_score, n_trials, error, created_at, updated_at FROM {src} b "
                f"ON CONFLICT (search_id) {conflict}"
            )

    # -- datasets --------------------------------------------------------------------------------
    def put_dataset(self, record: DatasetRecord) -> bool:
        self._writable("put_dataset")
        rec = schema.normalise_dataset(record)
        with self._tx("put_dataset") as cur:
            return self._insert_datasets(cur, [rec]) == 1

    def get_dataset(self, dataset_id: str) -> DatasetRecord:
        rows = self._rows(f"SELECT {_DATASET_COLS} FROM datasets WHERE dataset_id = ?", [dataset_id])
        if not rows:
            raise NotFoundError(
                f"dataset {dataset_id} is not in the knowledge base: list datasets to find its id"
            )
        return _dataset(rows[0])

    def list_datasets(
        self, kind: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[DatasetRecord]:
        page, page_params = _page(limit, offset)
        where, params = ("WHERE kind = ?", [kind]) if kind is not None else ("", [])
        rows = self._rows(
            f"SELECT {_DATASET_COLS} FROM datasets {where} ORDER BY created_at, dataset_id{page}",
            params + page_params,
        )
        return [_dataset(r) for r in rows]

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
        rows = self._rows(
            f"SELECT {_DATASET_COLS} FROM datasets WHERE {' AND '.join(conds)} ORDER BY created_at, dataset_id",
            params,
        )
        return [_dataset(r) for r in rows]

    # -- meta-features ---------------------------------------------------------------------------
    def put_metafeatures(self, record: MetaFeatureRecord) -> None:
        self._writable("put_metafeatures")
        rec = schema.normalise_metafeatures(record)
        with self._tx("put_metafeatures") as cur:
            self._insert_metafeatures(cur, [rec], upsert=True)

    def get_metafeatures(self, dataset_id: str, version: str) -> MetaFeatureRecord:
        cur = self._cursor()
        with self._errors("reading meta-features"):
            head = cur.execute(
                "SELECT extraction_seconds, created_at FROM metafeatures WHERE dataset_id = ? AND version = ?",
                [dataset_id, version],
            ).fetchall()
            if not head:
                raise NotFoundError(
                    f"no meta-features of dataset {dataset_id} for extractor version {version!r}: extract them first"
                )
            values = cur.execute(
                "SELECT name, value FROM metafeature_values WHERE dataset_id = ? AND version = ? ORDER BY position",
                [dataset_id, version],
            ).fetchall()
        return MetaFeatureRecord(dataset_id, version, dict(values), head[0][0], head[0][1])

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
        rec = schema.normalise_configuration(record)
        with self._tx("put_configuration") as cur:
            return self._insert_configurations(cur, [rec]) == 1

    def get_configuration(self, config_id: str) -> ConfigurationRecord:
        rows = self._rows(f"SELECT {_CONFIG_COLS} FROM configurations WHERE config_id = ?", [config_id])
        if not rows:
            raise NotFoundError(f"configuration {config_id} is not in the knowledge base")
        return _configuration(rows[0])

    def get_configurations(self, config_ids: Iterable[str]) -> dict[str, ConfigurationRecord]:
        ids = sorted({str(c) for c in config_ids})
        if not ids:
            return {}
        rows = self._rows(f"SELECT {_CONFIG_COLS} FROM configurations WHERE config_id = ANY(?)", [ids])
        return {r[0]: _configuration(r) for r in rows}

    # -- runs ------------------------------------------------------------------------------------
    def add_runs(self, records: Sequence[RunRecord]) -> int:
        self._writable("add_runs")
        recs = schema.dedupe("runs", [schema.normalise_run(r) for r in records])
        if not recs:
            return 0
        with self._tx("add_runs") as cur:
            return self._insert_runs(cur, recs)

    def get_run(self, run_id: str) -> RunRecord:
        rows = self._rows(f"SELECT {_RUN_COLS} FROM runs WHERE run_id = ?", [run_id])
        if not rows:
            raise NotFoundError(f"run {run_id} is not in the knowledge base")
        return _run(rows[0])

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
        rows = self._rows(
            f"SELECT {_RUN_COLS} FROM runs {where} ORDER BY created_at, run_id{page}", params + page_params
        )
        return [_run(r) for r in rows]

    def runs_frame(
        self, kind: str | None = None, space: str | None = None, ok_only: bool = True
    ) -> pd.DataFrame:
        sql = (
            "SELECT r.run_id, r.dataset_id, r.config_id, c.space, c.space_version, r.protocol, r.status, r.metric, "
            "r.score, r.cost, r.fit_seconds, r.budget, r.source FROM runs r "
            "JOIN configurations c ON c.config_id = r.config_id"
        )
        conds, params = [], []
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
        return schema.runs_frame_from_arrow(self._arrow(sql, params, "reading runs"))

    # -- searches --------------------------------------------------------------------------------
    def put_search(self, record: SearchRecord) -> None:
        self._writable("put_search")
        rec = schema.normalise_search(record)
        with self._tx("put_search") as cur:
            self._insert_searches(cur, [rec], upsert=True)

    def get_search(self, search_id: str) -> SearchRecord:
        rows = self._rows(f"SELECT {_SEARCH_COLS} FROM searches WHERE search_id = ?", [search_id])
        if not rows:
            raise NotFoundError(
                f"search {search_id} is not in the knowledge base: list searches to find its id"
            )
        return _search(rows[0])

    def list_searches(
        self, dataset_id: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[SearchRecord]:
        page, page_params = _page(limit, offset)
        where, params = ("WHERE dataset_id = ?", [dataset_id]) if dataset_id is not None else ("", [])
        rows = self._rows(
            f"SELECT {_SEARCH_COLS} FROM searches {where} ORDER BY created_at, search_id{page}",
            params + page_params,
        )
        return [_search(r) for r in rows]

    # -- whole tables ----------------------------------------------------------------------------
    _DUMP_SQL: dict[str, str] = {
        "datasets": f"SELECT {_DATASET_COLS} FROM datasets ORDER BY created_at, dataset_id",
        "metafeatures": (
            "SELECT m.dataset_id, m.version, "
            "coalesce(list(v.name ORDER BY v.position) FILTER (WHERE v.name IS NOT NULL), []::VARCHAR[]) AS names, "
            "coalesce(list(v.value ORDER BY v.position) FILTER (WHERE v.name IS NOT NULL), []::DOUBLE[]) AS values, "
            "m.extraction_seconds, m.created_at FROM metafeatures m LEFT JOIN metafeature_values v "
            "ON v.dataset_id = m.dataset_id AND v.version = m.version "
            "GROUP BY m.dataset_id, m.version, m.extraction_seconds, m.created_at "
            "ORDER BY m.created_at, m.dataset_id, m.version"
        ),
        "configurations": (
            'SELECT config_id, space, space_version, values_json AS "values", created_at FROM configurations '
            "ORDER BY created_at, config_id"
        ),
        "runs": (
            "SELECT run_id, dataset_id, config_id, protocol, status, metric, score, cost, "
            "map_keys(metrics) AS metric_names, map_values(metrics) AS metric_values, fit_seconds, predict_seconds, "
            "error, source, search_id, budget, n_rows_used, created_at FROM runs ORDER BY created_at, run_id"
        ),
        "searches": (
            "SELECT search_id, dataset_id, status, settings_json AS settings, incumbent_config_id, incumbent_score, "
            "n_trials, error, created_at, updated_at FROM searches ORDER BY created_at, search_id"
        ),
    }

    def dump_table(self, table: str) -> pd.DataFrame:
        schema.check_table(table)
        tbl = self._arrow(self._DUMP_SQL[table], (), f"dumping table {table}")
        return schema.arrow_to_frame(schema.conform(table, tbl))

    def load_table(self, table: str, frame: pd.DataFrame) -> int:
        schema.check_table(table)
        self._writable("load_table")
        records = schema.dedupe(table, schema.frame_to_records(table, frame))
        with self._tx(f"loading table {table}") as cur:
            if table == "datasets":
                return self._insert_datasets(cur, records)
            if table == "metafeatures":
                return self._insert_metafeatures(cur, records, upsert=False)
            if table == "configurations":
                return self._insert_configurations(cur, records)
            if table == "runs":
                return self._insert_runs(cur, records)
            return self._insert_searches(cur, records, upsert=False)

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


assert set(DuckDBKnowledgeBase._DUMP_SQL) == set(TABLES)
