"""The search worker pool: warm-started searches run in a ``ThreadPoolExecutor`` outside the requests.

A submitted search is stored in the KB as ``pending`` at once (with its dataset, so it is a KB record
before any trial runs), then runs :func:`metalearn.search.automl.optimize` in a worker thread, which writes
every trial to the KB and the search's final status. The manager keeps the live state (trials so far,
incumbent) in memory for ``GET /searches/{id}``; searches of earlier server runs are read back from the
KB (their trials from the runs table). Cancellation sets an event the search polls between trials.

A search submitted with ``register=NAME`` refits its final model (the best pipeline, or the post-hoc ensemble
when it wins) and registers it in the model registry as the next version of ``NAME`` (never promoted); the
search's status says which version (``model``), and stays ``running`` until the version is stored.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from metalearn.data.dataset import Dataset
from metalearn.data.errors import MetaLearnError, NotFoundError
from metalearn.data.metrics import check_metric
from metalearn.data.numbers import finite_or_none
from metalearn.kb.base import KnowledgeBase
from metalearn.kb.model_store import ModelVersionRecord
from metalearn.kb.owners import UNFINISHED, count_runs, current_owner, interrupted
from metalearn.kb.records import SearchRecord, dataset_record, utcnow
from metalearn.registry.mlflow_sync import mirror_version
from metalearn.registry.registry import ModelRegistry
from metalearn.search.loop import Trial
from metalearn.search.settings import SearchSettings
from metalearn.service.metrics import ServiceMetrics
from metalearn.service.settings import Settings

log = logging.getLogger("metalearn.api.searches")

FINISHED = ("done", "failed", "cancelled", "interrupted")
#: the key of a search record's settings holding what the request said (see SearchManager._settings)
REQUEST_KEY = "request"

#: the error of a search the server stopped while it ran (at shutdown, or found unfinished at the next start)
SERVER_STOPPED = "the server stopped while this search ran; submit it again to resume from its trials"


class TooManySearchesError(MetaLearnError, RuntimeError):
    """The queue of pending searches is full."""


class SearchConflictError(MetaLearnError, RuntimeError):
    """The search is not in a state that allows the request (e.g. cancelling a finished search)."""


class SearchesDisabledError(MetaLearnError, RuntimeError):
    """This server cannot run searches (read-only KB)."""


@dataclass
class SearchJob:
    """The live state of one search submitted to this server."""

    search_id: str
    dataset_id: str
    dataset_name: str
    kind: str
    metric: str
    settings: SearchSettings
    dataset: Dataset | None
    register: str | None = None
    model_version: int | None = None
    mlflow: dict[str, Any] | None = None
    status: str = "pending"
    error: str = ""
    trials: list[Trial] = field(default_factory=list)
    created_at: datetime = field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime = field(default_factory=utcnow)
    cancel: threading.Event = field(default_factory=threading.Event)
    stopping: bool = False  # the cancel is the server's shutdown, not a request: the search ends interrupted
    warnings: list[str] = field(default_factory=list)  # the search's (e.g. earlier runs it did not resume)
    future: Future[None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_trial(self, trial: Trial) -> None:
        with self.lock:
            self.trials.append(trial)
            self.updated_at = utcnow()

    def view(self, with_trials: bool = True) -> dict[str, Any]:
        with self.lock:
            trials = list(self.trials)
            status = self.status
        incumbent = None
        best = None
        for t in trials:
            if t.best_config_id is not None:
                best = t
        if best is not None:
            values = next((t.values for t in trials if t.config_id == best.best_config_id), None)
            score = finite_or_none(best.best_score)
            incumbent = {"config_id": best.best_config_id, "score": score, "values": values}
        out: dict[str, Any] = {
            "search_id": self.search_id,
            "dataset_id": self.dataset_id,
            "dataset_name": self.dataset_name,
            "kind": self.kind,
            "metric": self.metric,
            "status": status,
            "cancel_requested": self.cancel.is_set() and status not in FINISHED,
            "n_trials": len(trials),
            "incumbent": incumbent,
            "error": self.error,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "model": (
                {"name": self.register, "version": self.model_version, "mlflow": self.mlflow}
                if self.register is not None
                else None
            ),
            "warnings": list(self.warnings),
        }
        if with_trials:
            out["settings"] = self.settings.to_dict()
            out["trials"] = [trial_dict(t) for t in trials]
            out["trajectory"] = [finite_or_none(t.best_score) for t in trials]
        return out


def registered_model_weights(info: dict[str, Any]) -> dict[str, Any]:
    """The ``ensemble`` / ``model`` blocks of a search summary that :func:`metalearn.search.leaderboard.leaderboard`
    reads the weights from, rebuilt from a registered version's ``info``: its model's members and weights
    (an ensemble, or a temperature-scaled pipeline as one member), else the pipeline's configuration."""
    described = info.get("model") or {}
    if described.get("type") == "ensemble":
        return {"ensemble": {"used": True, "members": [
            {"config_id": m.get("config_id"), "weight": m.get("weight")} for m in described.get("members") or []
            if m.get("config_id")
        ]}}
    search = info.get("search") or {}
    cid = (search.get("model_config_id") or (info.get("ensemble") or {}).get("model_config_id")
           or (search.get("best") or {}).get("config_id"))
    return {"model": {"config_id": cid, "refit": cid is not None}}


def trial_dict(t: Trial) -> dict[str, Any]:
    return {
        "number": t.number,
        "config_id": t.config_id,
        "origin": t.origin,
        "status": t.status,
        "score": finite_or_none(t.score),
        "seconds": finite_or_none(t.seconds),
        "budget": t.budget,
        "best_score": finite_or_none(t.best_score),
        "error": t.error,
        "sources": list(t.sources),
    }


class SearchManager:
    """Runs searches in a bounded worker pool and reports their state. Thread-safe."""

    def __init__(
        self,
        kb: KnowledgeBase,
        settings: Settings,
        metrics: ServiceMetrics | None = None,
        on_kb_change: Callable[[str], None] | None = None,
        registry: ModelRegistry | None = None,
    ) -> None:
        self.kb = kb
        self.registry = registry
        self.settings = settings
        self.metrics = metrics
        self.on_kb_change = on_kb_change
        self.enabled = not settings.kb_read_only
        self._pool = ThreadPoolExecutor(
            max_workers=settings.search_workers, thread_name_prefix="metalearn-search"
        )
        self._jobs: OrderedDict[str, SearchJob] = OrderedDict()
        self._lock = threading.Lock()
        self._closed = False

    # -- bookkeeping --------------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        with self._lock:
            jobs = list(self._jobs.values())
        return {
            "running": sum(j.status == "running" for j in jobs),
            "pending": sum(j.status == "pending" for j in jobs),
            "workers": self.settings.search_workers,
        }

    def _update_gauges(self) -> None:
        if self.metrics is not None:
            c = self.counts()
            self.metrics.searches_running.set(c["running"])
            self.metrics.searches_pending.set(c["pending"])

    def _forget_old(self) -> None:
        finished = [sid for sid, j in self._jobs.items() if j.status in FINISHED]
        for sid in finished[: max(0, len(finished) - self.settings.search_history)]:
            del self._jobs[sid]

    def recover_stale(self) -> int:
        """Mark searches a previous server process left pending/running as interrupted (they cannot finish),
        counting their stored runs as their trials (as opening the KB does for a search whose process is gone)."""
        if not self.enabled:
            return 0
        n = 0
        offset = 0
        while True:
            page = self.kb.list_searches(limit=500, offset=offset)
            for rec in page:
                if rec.status in UNFINISHED:
                    self.kb.put_search(
                        interrupted(rec, count_runs(self.kb, rec.search_id), SERVER_STOPPED)
                    )
                    n += 1
            if len(page) < 500:
                return n
            offset += 500

    # -- submit / run -------------------------------------------------------------------------------
    def submit(self, dataset: Dataset, search_settings: SearchSettings, register: str | None = None) -> SearchJob:
        """Store the dataset and a pending search, and queue it. A metric that is not one of the task
        kind's raises ``InputError`` first (nothing stored). ``register``: the model name its final model is
        registered under (a new version, not promoted)."""
        check_metric(dataset.task.kind, dataset.task.metric)
        if register is not None:
            from metalearn.registry.registry import check_name

            check_name(register)
            if self.registry is None:
                raise SearchesDisabledError("this server has no model registry; submit the search without 'register'")
            self.registry.check_compatible(register, dataset.task)
        if not self.enabled:
            raise SearchesDisabledError(
                "this server opened its knowledge base read-only, so it cannot run searches; "
                "start it with --workers 1 and without METALEARN_KB_READ_ONLY"
            )
        with self._lock:
            if self._closed:
                raise SearchesDisabledError("the server is shutting down; submit the search again later")
            pending = sum(j.status == "pending" for j in self._jobs.values())
            if pending >= self.settings.max_pending_searches:
                raise TooManySearchesError(
                    f"{pending} searches are already waiting for a worker; retry when some have finished "
                    "(or raise METALEARN_MAX_PENDING_SEARCHES)"
                )
            job = SearchJob(
                search_id=uuid.uuid4().hex[:16],
                dataset_id=dataset.dataset_id,
                dataset_name=dataset.name,
                kind=str(dataset.task.kind),
                metric=dataset.task.metric,
                settings=search_settings,
                dataset=dataset,
                register=register,
            )
            self._jobs[job.search_id] = job
        try:
            self.kb.put_dataset(dataset_record(dataset))
            self.kb.put_search(self._record(job))
        except BaseException:
            with self._lock:
                self._jobs.pop(job.search_id, None)
            raise
        with self._lock:
            job.future = self._pool.submit(self._run, job)
            self._forget_old()
        self._update_gauges()
        return job

    def _record(self, job: SearchJob, base: SearchRecord | None = None) -> SearchRecord:
        view = job.view(with_trials=False)
        inc = view["incumbent"] or {}
        fields = dict(
            status=job.status,
            incumbent_config_id=inc.get("config_id"),
            incumbent_score=inc.get("score"),
            n_trials=view["n_trials"],
            error=job.error[:2000],
            updated_at=utcnow(),
        )
        if base is not None:
            # the search itself may have recorded a better incumbent / count: keep the richer one
            if base.incumbent_config_id and not fields["incumbent_config_id"]:
                fields["incumbent_config_id"] = base.incumbent_config_id
                fields["incumbent_score"] = base.incumbent_score
            fields["n_trials"] = max(int(fields["n_trials"] or 0), base.n_trials)  # type: ignore[call-overload]
            return replace(base, settings=self._settings(job, base.settings), **fields)  # type: ignore[arg-type]
        return SearchRecord(
            search_id=job.search_id,
            dataset_id=job.dataset_id,
            settings=self._settings(job),
            created_at=job.created_at,
            **current_owner(),
            **fields,  # type: ignore[arg-type]
        )

    @staticmethod
    def _settings(job: SearchJob, base: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The record's settings: the search's, and under ``REQUEST_KEY`` what the request said that the KB keeps
        nowhere else (the dataset's name as uploaded, the model name to register, the start), so that a later
        server run answers for the search as this one did."""
        with job.lock:
            trials = [trial_dict(t) for t in job.trials]
            warnings = list(job.warnings)
        # and what it showed: its trials as they ran (the KB's runs of the search lack the ones it resumed, which
        # are an earlier search's, and every trial's origin), the metric and the warnings
        request = {"dataset_name": job.dataset_name, "register": job.register,
                   "started_at": job.started_at.isoformat() if job.started_at else None,
                   "metric": job.metric, "trials": trials, "warnings": warnings}
        return {**(base if base is not None else job.settings.to_dict()), REQUEST_KEY: request}

    def _persist(self, job: SearchJob) -> None:
        try:
            try:
                base: SearchRecord | None = self.kb.get_search(job.search_id)
            except NotFoundError:
                base = None
            self.kb.put_search(self._record(job, base))
        except Exception:
            log.exception("could not store the status of search %s", job.search_id)

    def _finish(self, job: SearchJob, status: str, error: str = "") -> None:
        with job.lock:
            job.status = status
            job.error = error
            job.finished_at = job.updated_at = utcnow()
            job.dataset = None  # free the data; the KB has everything else
        self._persist(job)
        if self.metrics is not None:
            self.metrics.searches_finished.labels(status).inc()
        self._update_gauges()

    def _run(self, job: SearchJob) -> None:
        from metalearn.search.automl import optimize

        if job.cancel.is_set() or job.dataset is None:
            self._finish(job, "cancelled", "cancelled before it started")
            return
        with job.lock:
            job.status = "running"
            job.started_at = job.updated_at = utcnow()
        self._persist(job)
        self._update_gauges()
        status, error = "failed", ""
        dataset = job.dataset
        try:
            outcome = optimize(
                dataset,
                kb=self.kb,
                settings=job.settings,
                refit=job.register is not None,  # the final model is fitted only to be registered
                copies=int(job.register is not None),  # and written into the registry within the budget
                on_trial=job.add_trial,
                should_stop=job.cancel.is_set,
                search_id=job.search_id,
            )
            status = outcome.result.status if outcome.result.status in FINISHED else "done"
            with job.lock:
                job.warnings = [str(w) for w in outcome.summary.get("warnings") or []]
            if status == "cancelled":
                status, error = ("interrupted", SERVER_STOPPED) if job.stopping else (status, "cancelled by request")
            elif status == "failed":  # no trial succeeded: nothing to register
                error = outcome.result.error
            elif job.register is not None:
                error = self._register(job, outcome, dataset)
        except MetaLearnError as exc:
            if job.stopping:
                status, error = "interrupted", SERVER_STOPPED
            else:
                status, error = ("cancelled", str(exc)) if job.cancel.is_set() else ("failed", str(exc))
        except Exception as exc:  # the search crashed: record it, keep the worker alive
            log.exception("search %s failed", job.search_id)
            status, error = "failed", f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}"
        finally:
            self._finish(job, status, error)
            if self.on_kb_change is not None:
                try:
                    self.on_kb_change(job.kind)
                except Exception:
                    log.exception("refreshing the recommender after search %s failed", job.search_id)

    def _register(self, job: SearchJob, outcome: Any, dataset: Dataset) -> str:
        """Register the search's final model as the next version of ``job.register``; the error text
        (empty when it was registered)."""
        name = str(job.register)
        try:
            if self.registry is None:
                raise SearchesDisabledError("this server has no model registry")
            if getattr(outcome, "model", None) is None:
                reason = ((getattr(outcome, "summary", None) or {}).get("model") or {}).get("missing_reason")
                return f"the search produced no model to register as {name!r}: {reason or 'no configuration succeeded'}"
            record = self.registry.register_outcome(name, outcome, dataset)
        except MetaLearnError as exc:
            return f"the search finished but its model was not registered as {name!r}: {exc}"
        except Exception as exc:
            log.exception("registering the model of search %s failed", job.search_id)
            return (
                f"the search finished but its model was not registered as {name!r}: "
                f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
            )
        with job.lock:
            job.model_version = record.version
        mirrored = mirror_version(self.settings.mlflow_uri, self.registry, record)  # after: never undoes it
        with job.lock:
            job.mlflow = mirrored
        return ""

    # -- queries ------------------------------------------------------------------------------------
    def job(self, search_id: str) -> SearchJob | None:
        with self._lock:
            return self._jobs.get(search_id)

    def get(self, search_id: str) -> dict[str, Any]:
        job = self.job(search_id)
        if job is not None:
            return job.view()
        return self._from_kb(self.kb.get_search(search_id), with_trials=True)

    def list(self, limit: int, offset: int, status: str | None = None) -> list[dict[str, Any]]:
        """Searches newest first (live state for this server's, KB records for older ones)."""
        records = self.kb.list_searches()
        records.sort(key=lambda r: (r.created_at, r.search_id), reverse=True)
        chosen: list[tuple[SearchRecord, SearchJob | None]] = []
        for rec in records:
            job = self.job(rec.search_id)
            current = job.status if job is not None else rec.status
            if status is None or current == status:
                chosen.append((rec, job))
        return [
            job.view(with_trials=False) if job is not None else self._from_kb(rec, with_trials=False)
            for rec, job in chosen[offset : offset + limit]
        ]

    def _from_kb(self, rec: SearchRecord, with_trials: bool) -> dict[str, Any]:
        try:
            ds = self.kb.get_dataset(rec.dataset_id)
            name, kind = ds.name, ds.kind
        except NotFoundError:
            name, kind = None, None
        incumbent = None
        if rec.incumbent_config_id:
            try:
                values: dict[str, Any] | None = dict(
                    self.kb.get_configuration(rec.incumbent_config_id).values
                )
            except NotFoundError:
                values = None
            incumbent = {
                "config_id": rec.incumbent_config_id,
                "score": finite_or_none(rec.incumbent_score),
                "values": values,
            }
        given = rec.settings.get(REQUEST_KEY)
        request: dict[str, Any] = given if isinstance(given, dict) else {}
        registered = self._registered_by(rec.search_id) if with_trials else None
        if registered is None and request.get("register") and with_trials:  # asked for, never registered
            registered = {"name": request["register"], "version": None, "mlflow": None}
        out: dict[str, Any] = {
            "search_id": rec.search_id,
            "dataset_id": rec.dataset_id,
            "dataset_name": request.get("dataset_name") or name,
            "kind": kind,
            "metric": None,
            "status": rec.status,
            "cancel_requested": False,
            "n_trials": rec.n_trials,
            "incumbent": incumbent,
            "error": rec.error,
            "created_at": rec.created_at,
            "updated_at": rec.updated_at,
            "started_at": request.get("started_at"),
            "finished_at": rec.updated_at if rec.status in FINISHED else None,
            "model": registered,
            "warnings": [str(w) for w in request.get("warnings") or []],
        }
        shown = request.get("trials")
        if with_trials and isinstance(shown, list) and (shown or not rec.n_trials):  # as this server showed them
            out["metric"] = request.get("metric")
            out["settings"] = {k: v for k, v in rec.settings.items() if k != REQUEST_KEY}
            out["trials"] = [dict(t) for t in shown if isinstance(t, dict)]
            out["trajectory"] = [t.get("best_score") for t in out["trials"]]
        elif with_trials:  # a search of an earlier release, or one whose server was killed before it stored them
            runs = self.kb.list_runs(search_id=rec.search_id)
            runs.sort(key=lambda r: (r.created_at, r.run_id))
            trials: list[dict[str, Any]] = []
            best: float | None = None
            greater = True
            if runs:
                from metalearn.data.metrics import get_metric

                out["metric"] = runs[0].metric
                try:
                    greater = get_metric(runs[0].metric).greater_is_better
                except MetaLearnError:
                    greater = True
            for i, r in enumerate(runs, 1):
                score = finite_or_none(r.score)
                full = r.budget is None or r.budget >= 1.0
                ok = score is not None and r.status == "ok" and full
                if ok and (best is None or (score > best if greater else score < best)):  # type: ignore[operator]
                    best = score
                trials.append(
                    {
                        "number": i,
                        "config_id": r.config_id,
                        "origin": r.source or "search",
                        "status": r.status,
                        "score": score,
                        "seconds": finite_or_none(r.fit_seconds + r.predict_seconds),
                        "budget": r.budget,
                        "best_score": best,
                        "error": r.error,
                        "sources": [],
                    }
                )
            out["settings"] = {k: v for k, v in rec.settings.items() if k != REQUEST_KEY}
            out["trials"] = trials
            out["trajectory"] = [t["best_score"] for t in trials]
        return out

    def _registered_by(self, search_id: str) -> dict[str, Any] | None:
        """The model version a search of an earlier server run registered (None when it registered none)."""
        v = self._registered_version(search_id)
        return None if v is None else {"name": v.name, "version": v.version, "mlflow": None}

    def _registered_version(self, search_id: str) -> ModelVersionRecord | None:
        """The model version the search registered its final model as (None: none, or no registry)."""
        if self.registry is None:
            return None
        try:
            for name in self.registry.store.list_models():
                for v in self.registry.store.list_versions(name, include_deleted=True):
                    if v.search_id == search_id and v.variant == "search":
                        return v
        except Exception:  # the status of a search never fails because of the registry
            log.exception("could not look up the model version of search %s", search_id)
        return None

    def leaderboard(self, search_id: str) -> dict[str, Any]:
        """The search's leaderboard (:func:`metalearn.search.leaderboard.leaderboard`): every configuration
        it scored on all its data, best first, from its trials so far (a running search's too) and, when it
        registered its final model, that model's members and weights (else every weight is 0: the server
        refits only a model it registers). :class:`NotFoundError` for an unknown search."""
        from metalearn.data.metrics import get_metric
        from metalearn.search.ensemble import family_of
        from metalearn.search.leaderboard import leaderboard

        view = self.get(search_id)
        metric = view.get("metric")
        greater = True
        if metric:
            try:
                greater = get_metric(metric).greater_is_better
            except MetaLearnError:
                metric = None
        families: dict[str, str] = {}
        for t in view["trials"]:
            cid = t["config_id"]
            if cid not in families:
                try:
                    families[cid] = family_of(self.kb.get_configuration(cid).values)
                except NotFoundError:
                    families[cid] = "-"
        summary: dict[str, Any] = {
            "metric": metric,
            "greater_is_better": greater,
            "trials": [{**t, "family": families[t["config_id"]]} for t in view["trials"]],
        }
        version = self._registered_version(search_id)
        if version is not None:
            summary.update(registered_model_weights(version.info))
        frame = leaderboard(summary)
        return {
            "search_id": search_id,
            "status": view["status"],
            "metric": metric,
            "greater_is_better": greater,
            "model": None if version is None else {"name": version.name, "version": version.version},
            "rows": [
                {k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()}
                for r in frame.to_dict("records")
            ],
        }

    # -- cancel / shutdown --------------------------------------------------------------------------
    def cancel(self, search_id: str) -> dict[str, Any]:
        job = self.job(search_id)
        if job is None:
            rec = self.kb.get_search(search_id)  # NotFoundError -> 404
            raise SearchConflictError(
                f"search {search_id} is {rec.status} and not running on this server; nothing to cancel"
            )
        if job.status in FINISHED:
            raise SearchConflictError(
                f"search {search_id} already finished ({job.status}); nothing to cancel"
            )
        job.cancel.set()
        if job.future is not None and job.future.cancel():  # it had not started: it never will
            self._finish(job, "cancelled", "cancelled before it started")
        return job.view()

    def shutdown(self, wait: bool = True) -> None:
        with self._lock:
            self._closed = True
            jobs = list(self._jobs.values())
        for job in jobs:
            if job.status not in FINISHED:
                job.stopping = True
                job.cancel.set()
        self._pool.shutdown(wait=wait, cancel_futures=True)
        for job in jobs:
            if job.status == "pending":
                self._finish(job, "cancelled", "the server stopped before this search started")
