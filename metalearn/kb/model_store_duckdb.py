"""The model registry's tables in the KB's DuckDB file, through the KB's own connection, write lock and
transactions (see :mod:`metalearn.kb.model_store` for the rules)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from metalearn.data.errors import ConflictError, InputError, NotFoundError
from metalearn.kb.model_store import (
    AliasRecord,
    FeedbackRecord,
    FlagRecord,
    ModelEventRecord,
    ModelJobRecord,
    ModelStore,
    ModelVersionRecord,
    PredictionRecord,
    check_record,
    check_version,
    from_row,
    live_refused,
    missing_job,
    missing_model,
    normalise,
    table_columns,
    to_row,
)
from metalearn.kb.records import utcnow

if TYPE_CHECKING:
    import duckdb

    from metalearn.kb.duckdb_store import DuckDBKnowledgeBase


def _cols(table: str) -> str:
    return ", ".join(f'"{c}"' for c, _, _ in table_columns(table))


def _insert(table: str) -> str:
    cols = table_columns(table)
    return f"INSERT INTO {table} ({_cols(table)}) VALUES ({', '.join('?' for _ in cols)})"


def _logged_ids(cur: duckdb.DuckDBPyConnection, ids: list[str]) -> set[str]:
    """The ones among ``ids`` that are in the prediction log."""
    rows = cur.execute(
        "SELECT prediction_id FROM prediction_log WHERE prediction_id IN (SELECT unnest(?::VARCHAR[]))", [ids]
    ).fetchall()
    return {str(r[0]) for r in rows}


class DuckDBModelStore(ModelStore):
    def __init__(self, kb: DuckDBKnowledgeBase) -> None:
        self._kb = kb
        self.epoch_key = kb.epoch_key

    # -- plumbing --------------------------------------------------------------------------------
    def _select(self, table: str, rest: str, params: Sequence[Any] = ()) -> list[Any]:
        cur = self._kb._cursor()
        with self._kb._errors("reading the model registry"):
            rows = cur.execute(f"SELECT {_cols(table)} FROM {table} {rest}", list(params)).fetchall()
        return [from_row(table, r) for r in rows]

    def _write(self, action: str) -> Any:
        self._kb._writable(action)
        return self._kb._tx(action)

    def _live_version(self, cur: duckdb.DuckDBPyConnection, name: str, version: int) -> ModelVersionRecord:
        rows = cur.execute(
            f"SELECT {_cols('model_versions')} FROM model_versions WHERE name = ? AND version = ?", [name, version]
        ).fetchall()
        if not rows:
            raise missing_model(name, version)
        rec: ModelVersionRecord = from_row("model_versions", rows[0])
        if rec.deleted:
            raise ConflictError(
                f"model {name!r} version {version} was deleted: choose another version (`metalearn models show {name}`)"
            )
        return rec

    def _event(self, cur: duckdb.DuckDBPyConnection, event: ModelEventRecord) -> None:
        row = cur.execute("SELECT coalesce(max(seq), 0) FROM model_events WHERE name = ?", [event.name]).fetchone()
        seq = int(row[0]) + 1 if row else 1
        ev = ModelEventRecord(event.name, seq, event.action, event.version, event.alias, event.previous_version,
                              event.detail, event.happened_at)
        cur.execute(_insert("model_events"), to_row("model_events", normalise("model_events", ev)))

    # -- versions --------------------------------------------------------------------------------
    def next_version(self, name: str) -> int:
        cur = self._kb._cursor()
        with self._kb._errors("reading the model registry"):
            row = cur.execute("SELECT coalesce(max(version), 0) FROM model_versions WHERE name = ?", [name]).fetchone()
        return int(row[0]) + 1 if row else 1

    def add_version(self, record: ModelVersionRecord) -> None:
        rec = normalise("model_versions", record)
        check_version(rec.version)
        with self._write("registering a model version") as cur:
            exists = cur.execute(
                "SELECT 1 FROM model_versions WHERE name = ? AND version = ?", [rec.name, rec.version]
            ).fetchall()
            if exists:
                raise ConflictError(
                    f"model {rec.name!r} already has a version {rec.version}; versions are immutable: "
                    "register a new version instead"
                )
            cur.execute(_insert("model_versions"), to_row("model_versions", rec))
            self._event(cur, ModelEventRecord(rec.name, 0, "register", rec.version, detail={"variant": rec.variant}))

    def get_version(self, name: str, version: int) -> ModelVersionRecord:
        check_version(version)
        rows = self._select("model_versions", "WHERE name = ? AND version = ?", [name, version])
        if not rows:
            raise missing_model(name, version) if self.list_versions(name, True) else missing_model(name)
        rec: ModelVersionRecord = rows[0]
        return rec

    def list_versions(self, name: str, include_deleted: bool = False) -> list[ModelVersionRecord]:
        where = "WHERE name = ?" + ("" if include_deleted else " AND deleted_at IS NULL")
        return self._select("model_versions", f"{where} ORDER BY version", [name])

    def list_models(self) -> list[str]:
        cur = self._kb._cursor()
        with self._kb._errors("reading the model registry"):
            rows = cur.execute(
                "SELECT DISTINCT name FROM model_versions WHERE deleted_at IS NULL ORDER BY name"
            ).fetchall()
        return [str(r[0]) for r in rows]

    def delete_version(self, name: str, version: int) -> list[str]:
        check_version(version)
        with self._changing_aliases(), self._write("deleting a model version") as cur:
            self._live_version(cur, name, version)
            held = [str(r[0]) for r in cur.execute(
                "SELECT alias FROM model_aliases WHERE name = ? AND version = ? ORDER BY alias", [name, version]
            ).fetchall()]  # fmt: skip
            if "live" in held:
                raise live_refused(name, version)
            cur.execute("DELETE FROM model_aliases WHERE name = ? AND version = ?", [name, version])
            cur.execute("DELETE FROM model_flags WHERE name = ? AND version = ?", [name, version])
            cur.execute(
                "UPDATE model_versions SET deleted_at = ? WHERE name = ? AND version = ?", [utcnow(), name, version]
            )
            self._event(cur, ModelEventRecord(name, 0, "delete", version))
        return held

    # -- aliases ---------------------------------------------------------------------------------
    def aliases(self, name: str) -> dict[str, int]:
        return {a.alias: a.version for a in self._select("model_aliases", "WHERE name = ? ORDER BY alias", [name])}

    def set_alias(
        self, name: str, alias: str, version: int, action: str, detail: dict[str, Any] | None = None
    ) -> int | None:
        check_version(version)
        rec = normalise("model_aliases", AliasRecord(name, alias, version))
        ev = normalise("model_events", ModelEventRecord(name, 0, action, version, alias, None, detail or {}))
        with self._changing_aliases(), self._write(f"setting alias {alias}") as cur:
            self._live_version(cur, name, version)
            row = cur.execute("SELECT version FROM model_aliases WHERE name = ? AND alias = ?", [name, alias]).fetchone()
            previous = int(row[0]) if row else None
            if previous == version:
                return previous
            if row:
                cur.execute(
                    "UPDATE model_aliases SET version = ?, updated_at = ? WHERE name = ? AND alias = ?",
                    [version, rec.updated_at, name, alias],
                )
            else:
                cur.execute(_insert("model_aliases"), to_row("model_aliases", rec))
            self._event(cur, ModelEventRecord(name, 0, action, version, alias, previous, ev.detail))
        return previous

    def unset_alias(self, name: str, alias: str) -> None:
        with self._changing_aliases(), self._write(f"removing alias {alias}") as cur:
            row = cur.execute("SELECT version FROM model_aliases WHERE name = ? AND alias = ?", [name, alias]).fetchone()
            if not row:
                return
            cur.execute("DELETE FROM model_aliases WHERE name = ? AND alias = ?", [name, alias])
            self._event(cur, ModelEventRecord(name, 0, "unset", int(row[0]), alias, int(row[0])))

    def events(self, name: str) -> list[ModelEventRecord]:
        return self._select("model_events", "WHERE name = ? ORDER BY seq", [name])

    # -- flags -----------------------------------------------------------------------------------
    def set_flag(self, record: FlagRecord) -> None:
        rec = normalise("model_flags", record)
        with self._write("flagging a model version") as cur:
            self._live_version(cur, rec.name, rec.version)
            cur.execute(
                "DELETE FROM model_flags WHERE name = ? AND version = ? AND flag = ?", [rec.name, rec.version, rec.flag]
            )
            cur.execute(_insert("model_flags"), to_row("model_flags", rec))

    def clear_flag(self, name: str, version: int, flag: str) -> bool:
        with self._write("clearing a flag") as cur:
            row = cur.execute(
                "SELECT count(*) FROM model_flags WHERE name = ? AND version = ? AND flag = ?", [name, version, flag]
            ).fetchone()
            cur.execute("DELETE FROM model_flags WHERE name = ? AND version = ? AND flag = ?", [name, version, flag])
        return bool(row and row[0])

    def flags(self, name: str, version: int | None = None) -> list[FlagRecord]:
        if version is None:
            return self._select("model_flags", "WHERE name = ? ORDER BY version, flag", [name])
        return self._select("model_flags", "WHERE name = ? AND version = ? ORDER BY flag", [name, version])

    # -- prediction log and feedback -------------------------------------------------------------
    def log_predictions(self, records: Sequence[PredictionRecord]) -> int:
        for r in records:
            check_record("prediction_log", r)
        if not records:
            return 0
        import pyarrow as pa

        # one statement through Arrow (row by row cost ~1 ms per logged prediction); ids already logged
        # are skipped by the key (no lookup query first: that one scanned the whole log on every write)
        rows = [to_row("prediction_log", r) for r in {r.prediction_id: r for r in records}.values()]
        names = [c for c, _, _ in table_columns("prediction_log")]
        batch = pa.table({c: [row[j] for row in rows] for j, c in enumerate(names)})
        with self._write("logging predictions") as cur:
            cur.register("_metalearn_log_batch", batch)
            try:
                found = cur.execute(f"INSERT OR IGNORE INTO prediction_log ({_cols('prediction_log')}) "
                                    f"SELECT {_cols('prediction_log')} FROM _metalearn_log_batch").fetchone()
            finally:
                cur.unregister("_metalearn_log_batch")
        return int(found[0]) if found else 0

    def trim_predictions(self, name: str, keep: int) -> int:
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
            raise InputError(f"keep must be a non-negative integer, got {keep!r}")
        with self._write("trimming the prediction log") as cur:
            old = (
                "SELECT prediction_id FROM prediction_log WHERE name = ? "
                "ORDER BY created_at DESC, prediction_id DESC OFFSET ?"
            )
            cur.execute(f"DELETE FROM prediction_feedback WHERE prediction_id IN ({old})", [name, keep])
            row = cur.execute(f"SELECT count(*) FROM ({old})", [name, keep]).fetchone()
            cur.execute(f"DELETE FROM prediction_log WHERE prediction_id IN ({old})", [name, keep])
        return int(row[0]) if row else 0

    def recent_predictions(self, name: str, version: int | None = None, limit: int = 1000) -> list[PredictionRecord]:
        where, params = ("WHERE name = ?", [name]) if version is None else ("WHERE name = ? AND version = ?", [name, version])
        rows = self._select("prediction_log", f"{where} ORDER BY created_at DESC, prediction_id DESC LIMIT ?", [*params, limit])
        return rows[::-1]

    def get_predictions(self, prediction_ids: Sequence[str]) -> dict[str, PredictionRecord]:
        ids = [str(i) for i in prediction_ids]
        if not ids:
            return {}
        rows = self._select("prediction_log", "WHERE prediction_id IN (SELECT unnest(?::VARCHAR[]))", [ids])
        return {r.prediction_id: r for r in rows}

    def add_feedback(self, records: Sequence[FeedbackRecord]) -> int:
        recs = list({r.prediction_id: normalise("prediction_feedback", r) for r in records}.values())
        if not recs:
            return 0
        with self._write("storing feedback") as cur:
            ids = [r.prediction_id for r in recs]
            found = _logged_ids(cur, ids)
            missing = [i for i in ids if i not in found]
            if missing:
                raise NotFoundError(
                    f"{len(missing)} prediction id(s) are not in the prediction log (e.g. {missing[0]!r}): give the "
                    "prediction_id a /predict answer returned, within the log's retention; nothing was stored"
                )
            cur.execute("DELETE FROM prediction_feedback WHERE prediction_id IN (SELECT unnest(?::VARCHAR[]))", [ids])
            cur.executemany(_insert("prediction_feedback"), [to_row("prediction_feedback", r) for r in recs])
        return len(recs)

    def feedback(self, name: str, version: int | None = None, limit: int = 10_000) -> list[tuple[PredictionRecord, FeedbackRecord]]:
        p_cols = ", ".join(f'p."{c}"' for c, _, _ in table_columns("prediction_log"))
        f_cols = ", ".join(f'f."{c}"' for c, _, _ in table_columns("prediction_feedback"))
        where, params = ("p.name = ?", [name]) if version is None else ("p.name = ? AND p.version = ?", [name, version])
        cur = self._kb._cursor()
        with self._kb._errors("reading feedback"):
            rows = cur.execute(
                f"SELECT {p_cols}, {f_cols} FROM prediction_log p JOIN prediction_feedback f USING (prediction_id) "
                f"WHERE {where} ORDER BY p.created_at DESC, p.prediction_id DESC LIMIT ?", [*params, limit]
            ).fetchall()
        n = len(table_columns("prediction_log"))
        out = [(from_row("prediction_log", r[:n]), from_row("prediction_feedback", r[n:])) for r in rows]
        return out[::-1]

    def counts(self, name: str) -> dict[str, int]:
        cur = self._kb._cursor()
        with self._kb._errors("reading the model registry"):
            row = cur.execute(
                "SELECT (SELECT count(*) FROM prediction_log WHERE name = ?), "
                "(SELECT count(*) FROM prediction_feedback WHERE name = ?)", [name, name]
            ).fetchone()
        return {"predictions": int(row[0]) if row else 0, "feedback": int(row[1]) if row else 0}

    # -- jobs ------------------------------------------------------------------------------------
    def save_job(self, record: ModelJobRecord) -> None:
        rec = normalise("model_jobs", record)
        with self._write("storing a model job") as cur:
            row = cur.execute("SELECT count(*) FROM model_versions WHERE name = ?", [rec.name]).fetchone()
            if not row or not row[0]:
                raise missing_model(rec.name)
            cur.execute("DELETE FROM model_jobs WHERE job_id = ?", [rec.job_id])
            cur.execute(_insert("model_jobs"), to_row("model_jobs", rec))

    def get_job(self, job_id: str) -> ModelJobRecord:
        rows = self._select("model_jobs", "WHERE job_id = ?", [str(job_id)])
        if not rows:
            raise missing_job(str(job_id))
        job: ModelJobRecord = rows[0]
        return job

    def list_jobs(self, name: str | None = None) -> list[ModelJobRecord]:
        if name is None:
            return self._select("model_jobs", "ORDER BY created_at, job_id")
        return self._select("model_jobs", "WHERE name = ? ORDER BY created_at, job_id", [name])
