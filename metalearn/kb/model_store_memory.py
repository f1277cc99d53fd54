"""The model registry of an in-memory KB: dicts under the KB's lock, its transactions' undo log included
(see :mod:`metalearn.kb.model_store` for the rules)."""

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
    check_version,
    live_refused,
    missing_job,
    missing_model,
    normalise,
)
from metalearn.kb.records import utcnow

if TYPE_CHECKING:
    from metalearn.kb.memory import InMemoryKnowledgeBase


class InMemoryModelStore(ModelStore):
    def __init__(self, kb: InMemoryKnowledgeBase) -> None:
        self._kb = kb
        self.epoch_key = kb.epoch_key
        self._versions: dict[tuple[str, int], ModelVersionRecord] = {}
        self._aliases: dict[tuple[str, str], AliasRecord] = {}
        self._events: dict[tuple[str, int], ModelEventRecord] = {}
        self._flags: dict[tuple[str, int, str], FlagRecord] = {}
        self._log: dict[str, PredictionRecord] = {}
        self._feedback: dict[str, FeedbackRecord] = {}
        self._jobs: dict[str, ModelJobRecord] = {}

    def _set(self, table: dict[Any, Any], key: Any, value: Any) -> None:
        self._kb._set(table, key, value)

    def _del(self, table: dict[Any, Any], key: Any) -> None:
        self._kb._del(table, key)

    def _live_version(self, name: str, version: int) -> ModelVersionRecord:
        rec = self._versions.get((name, version))
        if rec is None:
            raise missing_model(name, version)
        if rec.deleted:
            raise ConflictError(
                f"model {name!r} version {version} was deleted: choose another version (`metalearn models show {name}`)"
            )
        return rec

    def _event(self, event: ModelEventRecord) -> None:
        seq = 1 + max((s for (n, s) in self._events if n == event.name), default=0)
        ev = ModelEventRecord(event.name, seq, event.action, event.version, event.alias, event.previous_version,
                              event.detail, event.happened_at)
        self._set(self._events, (ev.name, seq), normalise("model_events", ev))

    # -- versions --------------------------------------------------------------------------------
    def next_version(self, name: str) -> int:
        with self._kb._lock:
            return 1 + max((v for (n, v) in self._versions if n == name), default=0)

    def add_version(self, record: ModelVersionRecord) -> None:
        rec = normalise("model_versions", record)
        check_version(rec.version)
        with self._kb.transaction():
            if (rec.name, rec.version) in self._versions:
                raise ConflictError(
                    f"model {rec.name!r} already has a version {rec.version}; versions are immutable: "
                    "register a new version instead"
                )
            self._set(self._versions, (rec.name, rec.version), rec)
            self._event(ModelEventRecord(rec.name, 0, "register", rec.version, detail={"variant": rec.variant}))

    def get_version(self, name: str, version: int) -> ModelVersionRecord:
        check_version(version)
        with self._kb._lock:
            rec = self._versions.get((name, version))
            known = any(n == name for n, _ in self._versions)
        if rec is None:
            raise missing_model(name, version if known else None)
        return rec

    def list_versions(self, name: str, include_deleted: bool = False) -> list[ModelVersionRecord]:
        with self._kb._lock:
            recs = [r for (n, _), r in self._versions.items() if n == name and (include_deleted or not r.deleted)]
        return sorted(recs, key=lambda r: r.version)

    def list_models(self) -> list[str]:
        with self._kb._lock:
            return sorted({n for (n, _), r in self._versions.items() if not r.deleted})

    def delete_version(self, name: str, version: int) -> list[str]:
        check_version(version)
        with self._changing_aliases(), self._kb.transaction():
            rec = self._live_version(name, version)
            held = sorted(key for key, alias in self._aliases.items() if key[0] == name and alias.version == version)
            if (name, "live") in held:
                raise live_refused(name, version)
            for key in held:
                self._del(self._aliases, key)
            for flag_key in [k for k in self._flags if k[0] == name and k[1] == version]:
                self._del(self._flags, flag_key)
            from dataclasses import replace

            self._set(self._versions, (name, version), replace(rec, deleted_at=utcnow()))
            self._event(ModelEventRecord(name, 0, "delete", version))
        return [alias for _, alias in held]

    # -- aliases ---------------------------------------------------------------------------------
    def aliases(self, name: str) -> dict[str, int]:
        with self._kb._lock:
            return {a.alias: a.version for (n, _), a in sorted(self._aliases.items()) if n == name}

    def set_alias(
        self, name: str, alias: str, version: int, action: str, detail: dict[str, Any] | None = None
    ) -> int | None:
        check_version(version)
        rec = normalise("model_aliases", AliasRecord(name, alias, version))
        ev = normalise("model_events", ModelEventRecord(name, 0, action, version, alias, None, detail or {}))
        with self._changing_aliases(), self._kb.transaction():
            self._live_version(name, version)
            old = self._aliases.get((name, alias))
            previous = old.version if old else None
            if previous == version:
                return previous
            self._set(self._aliases, (name, alias), rec)
            self._event(ModelEventRecord(name, 0, action, version, alias, previous, ev.detail))
        return previous

    def unset_alias(self, name: str, alias: str) -> None:
        with self._changing_aliases(), self._kb.transaction():
            old = self._aliases.get((name, alias))
            if old is None:
                return
            self._del(self._aliases, (name, alias))
            self._event(ModelEventRecord(name, 0, "unset", old.version, alias, old.version))

    def events(self, name: str) -> list[ModelEventRecord]:
        with self._kb._lock:
            return [e for (n, _), e in sorted(self._events.items()) if n == name]

    # -- flags -----------------------------------------------------------------------------------
    def set_flag(self, record: FlagRecord) -> None:
        rec = normalise("model_flags", record)
        with self._kb.transaction():
            self._live_version(rec.name, rec.version)
            self._set(self._flags, (rec.name, rec.version, rec.flag), rec)

    def clear_flag(self, name: str, version: int, flag: str) -> bool:
        with self._kb.transaction():
            if (name, version, flag) not in self._flags:
                return False
            self._del(self._flags, (name, version, flag))
            return True

    def flags(self, name: str, version: int | None = None) -> list[FlagRecord]:
        with self._kb._lock:
            return [f for (n, v, _), f in sorted(self._flags.items()) if n == name and version in (None, v)]

    # -- prediction log and feedback -------------------------------------------------------------
    def log_predictions(self, records: Sequence[PredictionRecord]) -> int:
        recs = [normalise("prediction_log", r) for r in records]
        n = 0
        with self._kb.transaction():
            for r in recs:
                if r.prediction_id not in self._log:
                    self._set(self._log, r.prediction_id, r)
                    n += 1
        return n

    def _ordered(self, name: str, version: int | None = None) -> list[PredictionRecord]:
        recs = [r for r in self._log.values() if r.name == name and version in (None, r.version)]
        return sorted(recs, key=lambda r: (r.created_at, r.prediction_id))

    def trim_predictions(self, name: str, keep: int) -> int:
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
            raise InputError(f"keep must be a non-negative integer, got {keep!r}")
        with self._kb.transaction():
            recs = self._ordered(name)
            old = recs[: max(0, len(recs) - keep)]
            for r in old:
                self._del(self._log, r.prediction_id)
                if r.prediction_id in self._feedback:
                    self._del(self._feedback, r.prediction_id)
        return len(old)

    def recent_predictions(self, name: str, version: int | None = None, limit: int = 1000) -> list[PredictionRecord]:
        with self._kb._lock:
            recs = self._ordered(name, version)
        return recs[-limit:] if limit else []

    def get_predictions(self, prediction_ids: Sequence[str]) -> dict[str, PredictionRecord]:
        with self._kb._lock:
            return {str(i): self._log[str(i)] for i in prediction_ids if str(i) in self._log}

    def add_feedback(self, records: Sequence[FeedbackRecord]) -> int:
        recs = list({r.prediction_id: normalise("prediction_feedback", r) for r in records}.values())
        with self._kb.transaction():
            missing = [r.prediction_id for r in recs if r.prediction_id not in self._log]
            if missing:
                raise NotFoundError(
                    f"{len(missing)} prediction id(s) are not in the prediction log (e.g. {missing[0]!r}): give the "
                    "prediction_id a /predict answer returned, within the log's retention; nothing was stored"
                )
            for r in recs:
                self._set(self._feedback, r.prediction_id, r)
        return len(recs)

    def feedback(self, name: str, version: int | None = None, limit: int = 10_000) -> list[tuple[PredictionRecord, FeedbackRecord]]:
        with self._kb._lock:
            pairs = [(p, self._feedback[p.prediction_id]) for p in self._ordered(name, version)
                     if p.prediction_id in self._feedback]
        return pairs[-limit:] if limit else []

    def counts(self, name: str) -> dict[str, int]:
        with self._kb._lock:
            return {"predictions": sum(r.name == name for r in self._log.values()),
                    "feedback": sum(r.name == name for r in self._feedback.values())}

    # -- jobs ------------------------------------------------------------------------------------
    def save_job(self, record: ModelJobRecord) -> None:
        rec = normalise("model_jobs", record)
        with self._kb.transaction():
            if not any(n == rec.name for n, _ in self._versions):
                raise missing_model(rec.name)
            self._set(self._jobs, rec.job_id, rec)

    def get_job(self, job_id: str) -> ModelJobRecord:
        with self._kb._lock:
            rec = self._jobs.get(str(job_id))
        if rec is None:
            raise missing_job(str(job_id))
        return rec

    def list_jobs(self, name: str | None = None) -> list[ModelJobRecord]:
        with self._kb._lock:
            recs = [r for r in self._jobs.values() if name in (None, r.name)]
        return sorted(recs, key=lambda r: (r.created_at, r.job_id))
