"""Background jobs of the model registry (retraining, compression), run by a small worker pool outside the
requests.

``POST /models/{name}/retrain`` submits a job and answers 202 with its id at once; the job runs
:func:`metalearn.registry.retrain.retrain` (a search warm-started from the model's configurations on the new
data, registered as a new version that is never promoted). ``POST /models/{name}/compress`` runs
:func:`metalearn.registry.variants.compress` (ONNX, pruned-ensemble and distilled variants, each registered as a version
and measured against the original; the report is the job's ``result``). ``GET /models/{name}/jobs/{job_id}``
follows a job: its status, the stage it is at, and the version(s) it registered. With METALEARN_MLFLOW_URI
each registered version is also logged to MLflow (``mlflow``: one entry per version; a failure is a
warning there). ``GET /models/{name}/jobs`` lists a model's jobs.

Every job is a record in the KB (:class:`~metalearn.kb.model_store.ModelJobRecord`), written when it is
submitted, starts and ends, so it outlives the server: a job a stopped server left pending or running is
marked ``interrupted`` by the next one (:meth:`ModelJobManager.recover_stale`); a retraining submitted again
resumes from the trials it stored. The stage a running job is at lives in memory only.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from metalearn.data.dataset import Dataset
from metalearn.data.errors import MetaLearnError, NotFoundError
from metalearn.kb.model_store import JOB_STATUSES, ModelJobRecord, ModelVersionRecord
from metalearn.kb.owners import UNFINISHED
from metalearn.kb.records import utcnow
from metalearn.registry.mlflow_sync import mirror_version
from metalearn.registry.registry import ModelRegistry
from metalearn.search.settings import SearchSettings
from metalearn.service.searches import SearchConflictError, SearchesDisabledError, TooManySearchesError
from metalearn.service.settings import Settings

log = logging.getLogger("metalearn.api.models")

FINISHED = tuple(s for s in JOB_STATUSES if s not in UNFINISHED)


@dataclass
class ModelJob:
    job_id: str
    name: str
    action: str
    dataset_id: str
    dataset_name: str
    settings: SearchSettings | None
    dataset: Dataset | None
    parent_version: int | None = None
    methods: tuple[str, ...] = ()
    feedback: tuple[str, ...] = ()  # the labelled predictions among a retraining's rows (their prediction ids)
    status: str = "pending"
    stage: str = ""
    version: int | None = None
    versions: list[int] = field(default_factory=list)
    result: dict[str, Any] | None = None
    mlflow: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    created_at: datetime = field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    future: Future[None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self) -> ModelJobRecord:
        """The job's state as stored in the KB."""
        with self.lock:
            return ModelJobRecord(
                job_id=self.job_id, name=self.name, operation=self.action, status=self.status,
                dataset_id=self.dataset_id, dataset_name=self.dataset_name, parent_version=self.parent_version,
                stage=self.stage, error=self.error,
                detail={"versions": list(self.versions), "methods": list(self.methods), "result": self.result,
                        "mlflow": list(self.mlflow),
                        "settings": self.settings.to_dict() if self.settings is not None else {}},
                created_at=self.created_at, started_at=self.started_at, finished_at=self.finished_at,
            )

    def view(self) -> dict[str, Any]:
        return job_view(self.record())


def job_view(rec: ModelJobRecord) -> dict[str, Any]:
    """A job record as the API shows it (``ModelJobOut``)."""
    d = rec.detail
    versions = [int(v) for v in d.get("versions") or []]
    return {
        "job_id": rec.job_id, "name": rec.name, "action": rec.operation, "status": rec.status, "stage": rec.stage,
        "dataset_id": rec.dataset_id, "dataset_name": rec.dataset_name, "parent_version": rec.parent_version,
        "version": versions[0] if versions else None, "versions": versions,
        "methods": list(d.get("methods") or []), "result": d.get("result"), "mlflow": list(d.get("mlflow") or []),
        "error": rec.error, "settings": dict(d.get("settings") or {}),
        "created_at": rec.created_at, "started_at": rec.started_at, "finished_at": rec.finished_at,
    }


class ModelJobManager:
    """Runs retraining and compression jobs in a bounded pool (``search_workers`` threads; at most
    ``max_pending_searches`` waiting) and reports their state. Thread-safe."""

    def __init__(
        self,
        registry: ModelRegistry,
        settings: Settings,
        on_kb_change: Callable[[str], None] | None = None,
    ) -> None:
        self.registry = registry
        self.settings = settings
        self.on_kb_change = on_kb_change
        self.enabled = not settings.kb_read_only
        self._pool = ThreadPoolExecutor(max_workers=settings.search_workers, thread_name_prefix="metalearn-modeljob")
        self._jobs: OrderedDict[str, ModelJob] = OrderedDict()
        self._lock = threading.Lock()
        self._closed = False

    def submit_retrain(
        self, name: str, dataset: Dataset, search_settings: SearchSettings, parent_version: int | None,
        feedback: Sequence[str] = (),
    ) -> ModelJob:
        return self._submit(ModelJob(
            job_id=uuid.uuid4().hex[:16], name=name, action="retrain", dataset_id=dataset.dataset_id,
            dataset_name=dataset.name, settings=search_settings, dataset=dataset, parent_version=parent_version,
            feedback=tuple(feedback),
        ))

    def submit_compress(self, name: str, base: ModelVersionRecord, methods: Sequence[str]) -> ModelJob:
        """Compress ``base`` (checked by the caller: a stored, not deleted, uncompressed version)."""
        return self._submit(ModelJob(
            job_id=uuid.uuid4().hex[:16], name=name, action="compress", dataset_id=base.dataset_id or "",
            dataset_name=f"{name} version {base.version} (its reference sample)", settings=None, dataset=None,
            parent_version=base.version, methods=tuple(methods),
        ))

    def _submit(self, job: ModelJob) -> ModelJob:
        if not self.enabled:
            raise SearchesDisabledError(
                f"this server opened its knowledge base read-only, so it cannot {job.action} models; "
                "start it without METALEARN_KB_READ_ONLY"
            )
        with self._lock:
            if self._closed:
                raise SearchesDisabledError(f"the server is shutting down; submit the {job.action} job again later")
            pending = sum(j.status == "pending" for j in self._jobs.values())
            if pending >= self.settings.max_pending_searches:
                raise TooManySearchesError(
                    f"{pending} model jobs are already waiting for a worker; retry when some have finished "
                    "(or raise METALEARN_MAX_PENDING_SEARCHES)"
                )
            self.registry.store.save_job(job.record())  # the KB's record first: a refused write queues nothing
            self._jobs[job.job_id] = job
            job.future = self._pool.submit(self._run, job)
            finished = [jid for jid, j in self._jobs.items() if j.status in FINISHED]
            for jid in finished[: max(0, len(finished) - self.settings.search_history)]:
                del self._jobs[jid]
        return job

    def _set(self, job: ModelJob, **values: Any) -> None:
        with job.lock:
            for k, v in values.items():
                setattr(job, k, v)

    def _save(self, job: ModelJob, **values: Any) -> None:
        """Set ``values`` and store the job's record (a failed write is logged: the job goes on)."""
        self._set(job, **values)
        try:
            self.registry.store.save_job(job.record())
        except MetaLearnError:
            log.exception("storing the state of job %s (%s of model %s) failed", job.job_id, job.action, job.name)

    def recover_stale(self) -> int:
        """Mark the jobs a previous server process left pending or running as interrupted (this server owns
        the KB: none of them can still be running); returns how many."""
        if not self.enabled:
            return 0
        n = 0
        for rec in self.registry.store.list_jobs():
            if rec.status in UNFINISHED:
                self.registry.store.save_job(replace(
                    rec, status="interrupted", stage="", finished_at=utcnow(),
                    error="the server stopped while this job ran; submit it again (a retraining resumes from the "
                          "trials it stored)",
                ))
                n += 1
        return n

    def _retrain(self, job: ModelJob) -> list[ModelVersionRecord]:
        from metalearn.registry.retrain import retrain

        assert job.dataset is not None and job.settings is not None
        record = retrain(
            self.registry, job.name, job.dataset, job.settings, version=job.parent_version,
            on_status=lambda text: self._set(job, stage=str(text)[:200]), should_stop=job.cancel.is_set,
            feedback=job.feedback,
        )
        return [record]

    def _compress(self, job: ModelJob) -> list[ModelVersionRecord]:
        from metalearn.registry.variants import compress

        report = compress(self.registry, job.name, job.parent_version, methods=job.methods,
                          on_status=lambda text: self._set(job, stage=str(text)[:200]))
        self._set(job, result=report)
        made = [row["version"] for row in report["variants"] if row["method"] != "original" and row.get("version")]
        return [self.registry.store.get_version(job.name, v) for v in made]

    def _run(self, job: ModelJob) -> None:
        if job.cancel.is_set() or (job.action == "retrain" and job.dataset is None):
            self._save(job, status="cancelled", error="cancelled before it started", finished_at=utcnow(), dataset=None)
            return
        self._save(job, status="running", started_at=utcnow())
        status, error, records = "failed", "", []
        try:
            records = self._retrain(job) if job.action == "retrain" else self._compress(job)
            status = "done"
        except MetaLearnError as exc:
            status = "cancelled" if job.cancel.is_set() else "failed"
            error = str(exc)
        except Exception as exc:  # a crash is reported, the worker stays alive
            log.exception("%s of model %s (job %s) failed", job.action, job.name, job.job_id)
            status, error = "failed", f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}"
        finally:
            versions = [r.version for r in records]
            self._set(job, versions=versions, version=versions[0] if versions else None)
            for record in records:  # after the registration, which an MLflow failure never undoes
                self._set(job, stage=f"logging version {record.version} to MLflow")
                mirrored = mirror_version(self.settings.mlflow_uri, self.registry, record)
                if mirrored is not None:
                    with job.lock:
                        job.mlflow.append({"version": record.version, **mirrored})
            kind = str(job.dataset.task.kind) if job.dataset is not None else None
            self._save(job, status=status, error=error, stage="", finished_at=utcnow(), dataset=None)
            if self.on_kb_change is not None and kind is not None:
                try:
                    self.on_kb_change(kind)
                except Exception:
                    log.exception("refreshing the recommender after job %s failed", job.job_id)

    def get(self, name: str, job_id: str) -> dict[str, Any]:
        """A job of this server run (its live stage included) or, else, as stored in the KB."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is not None and job.name == name:
            return job.view()
        try:
            rec = self.registry.store.get_job(job_id)
        except NotFoundError:
            rec = None
        if rec is None or rec.name != name:
            raise NotFoundError(f"model {name!r} has no job {job_id!r}: `GET /models/{name}/jobs` lists its jobs")
        return job_view(rec)

    def list(self, name: str) -> list[dict[str, Any]]:
        """The jobs of model ``name``, oldest first (those of this server run with their live stage)."""
        with self._lock:
            live = {jid: j for jid, j in self._jobs.items() if j.name == name}
        return [live[r.job_id].view() if r.job_id in live else job_view(r)
                for r in self.registry.store.list_jobs(name)]

    def cancel(self, name: str, job_id: str) -> dict[str, Any]:
        view = self.get(name, job_id)
        with self._lock:
            job = self._jobs.get(job_id)
        if view["status"] in FINISHED or job is None:
            raise SearchConflictError(f"job {job_id} already finished ({view['status']}); nothing to cancel")
        job.cancel.set()
        if job.future is not None and job.future.cancel():
            self._save(job, status="cancelled", error="cancelled before it started", finished_at=utcnow(), dataset=None)
        return job.view()

    def shutdown(self, wait: bool = True) -> None:
        with self._lock:
            self._closed = True
            jobs = list(self._jobs.values())
        for job in jobs:
            if job.status not in FINISHED:
                job.cancel.set()
        self._pool.shutdown(wait=wait, cancel_futures=True)
        for job in jobs:
            if job.status == "pending":
                self._save(job, status="cancelled", error="the server stopped before this job started",
                           finished_at=utcnow(), dataset=None)
