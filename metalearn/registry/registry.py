"""The model registry: register a search's final model as an immutable version, move aliases (promote,
rollback), load versions safely, predict with input checks and a prediction log, take feedback.

The metadata lives in the KB (:mod:`metalearn.kb.model_store`, same DuckDB file and transactions); the
artifacts live beside it, in ``<kb file stem>.models/<name>/<version>/`` (``model.skops``,
``reference.parquet``: a sample of the training features drift is measured against). Every check runs
before the first write: a bad name, a model skops cannot represent, a type outside the trusted libraries
or a missing dataset leave the registry unchanged.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.multioutput import ClassifierChain, MultiOutputClassifier, MultiOutputRegressor, RegressorChain

from metalearn.data.dataset import Dataset
from metalearn.data.errors import ArtifactError, ConflictError, InputError, NotFoundError
from metalearn.data.metrics import compute_metrics, get_metric
from metalearn.data.numbers import finite_or_none
from metalearn.data.prediction import Prediction
from metalearn.data.task import Task
from metalearn.kb.base import KnowledgeBase
from metalearn.kb.model_store import (
    FLAGS,
    FeedbackRecord,
    ModelStore,
    ModelVersionRecord,
    PredictionRecord,
    missing_model,
)
from metalearn.pipelines.artifacts import SignedModel, read_artifact, write_artifact
from metalearn.pipelines.models.adaptive import estimator_name
from metalearn.pipelines.signature import SchemaError, Signature, check_unique_columns

#: model names: letters, digits, ``.``, ``_``, ``-``; they name directories and URL path segments
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
#: rows of the training features kept as the drift reference
REFERENCE_ROWS = 5000
REFERENCE_FILE = "reference.parquet"
#: the targets of the reference rows (compression checks a variant against the original on them)
REFERENCE_LABELS_FILE = "reference_labels.parquet"
#: libraries whose versions a model version records
LIBRARIES = ("metalearn", "scikit-learn", "numpy", "pandas", "scipy", "lightgbm", "xgboost", "catboost", "skops",
             "onnxruntime")
#: rows one predict call may take (the service refuses larger batches before reading them all)
MAX_BATCH_ROWS = 100_000
#: rows one explanation request may hold (each costs background x orders x (features + 1) predicted rows)
MAX_EXPLAIN_ROWS = 100


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise InputError(
            f"model name {name!r} is not valid: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def artifact_root_for(kb: KnowledgeBase) -> Path | None:
    """Where the artifacts of ``kb``'s registry live: beside its DuckDB file (None for an in-memory KB)."""
    path = getattr(kb, "path", None)
    if path is None or str(path) == ":memory:":
        return None
    p = Path(path)
    return p.parent / f"{p.stem}.models"


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for lib in LIBRARIES:
        try:
            out[lib] = importlib.metadata.version(lib)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


@dataclass(frozen=True)
class LogSettings:
    """The prediction log: ``sample`` is the share of predictions logged (their inputs and outputs;
    feedback can only name a logged prediction), ``keep`` the rows kept per model (the oldest are
    dropped, with their feedback, once the log is 5 % over ``keep``: a trim per write would cost every
    write a delete)."""

    sample: float = 1.0
    keep: int = 100_000

    def __post_init__(self) -> None:
        if not 0.0 <= self.sample <= 1.0:
            raise InputError(f"the prediction log's sample rate must be in [0, 1], got {self.sample}")
        if self.keep < 0:
            raise InputError(f"the prediction log's retention must be >= 0 rows, got {self.keep}")


@dataclass
class PredictionBatch:
    """What one predict call returns: the version that answered, one id and output per row, warnings."""

    name: str
    version: int
    prediction_ids: list[str]
    rows: list[dict[str, Any]]
    warnings: list[str]
    prediction: Prediction
    seconds: float
    targets: list[str] = field(default_factory=list)
    #: per row: whether the prediction log keeps it (``LogSettings.sample``), so feedback can name it
    logged: list[bool] = field(default_factory=list)

    def frame(self) -> pd.DataFrame:
        """One row per input row: ``prediction_id``, each target's value, and ``<target>:proba:<class>``
        columns for class targets."""
        cols: dict[str, Any] = {"prediction_id": self.prediction_ids}
        for t, values, proba, classes in zip(self.targets, self.prediction.values, self.prediction.probas,
                                             self.prediction.classes, strict=True):
            cols[t] = list(values)
            if proba is not None and classes is not None:
                for j, c in enumerate(classes):
                    cols[f"{t}:proba:{c}"] = proba[:, j]
        return pd.DataFrame(cols)


def prediction_rows(targets: Sequence[str], pred: Prediction) -> list[dict[str, Any]]:
    """JSON-ready outputs per row: ``{"predictions": {target: value}, "probabilities": {target: {class: p}}}``."""
    rows: list[dict[str, Any]] = [{"predictions": {}, "probabilities": {}} for _ in range(pred.n_rows)]
    for t, values, proba, classes in zip(targets, pred.values, pred.probas, pred.classes, strict=True):
        vals = [_plain(v) for v in values]
        for i, v in enumerate(vals):
            rows[i]["predictions"][t] = v
        if proba is not None and classes is not None:
            names = [str(_plain(c)) for c in classes]
            for i in range(pred.n_rows):
                rows[i]["probabilities"][t] = {c: float(p) for c, p in zip(names, proba[i], strict=True)}
    return rows


def _plain(v: Any) -> Any:
    v = v.item() if hasattr(v, "item") else v
    if v is pd.NA or v is pd.NaT or (isinstance(v, float) and not np.isfinite(v)):
        return None
    return v


class ModelRegistry:
    """Named models and their versions in ``kb`` (artifacts under ``root``, by default beside the KB file;
    an in-memory KB gets a temporary directory)."""

    def __init__(self, kb: KnowledgeBase, root: str | Path | None = None, log: LogSettings | None = None) -> None:
        self.kb = kb
        where = Path(root) if root is not None else artifact_root_for(kb)
        if where is None:
            where = Path(tempfile.mkdtemp(prefix="metalearn-models-"))
        self.root = where
        self.log_settings = log or LogSettings()
        self._cache: OrderedDict[tuple[str, int, str], Any] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._meta: dict[tuple[str, int, str], tuple[Signature, Task]] = {}
        self._records: dict[tuple[str, int], ModelVersionRecord] = {}
        self._aliases: dict[str, tuple[int, dict[str, int]]] = {}  # name -> (alias epoch, aliases)
        self._log_sizes: dict[str, int] = {}  # name -> rows in its prediction log (see write_log)
        self._log_lock = threading.Lock()
        self._rng = np.random.default_rng()

    @property
    def store(self) -> ModelStore:
        return self.kb.models

    # -- registering -------------------------------------------------------------------------------
    def check_compatible(self, name: str, task: Task) -> None:
        """A new version of ``name`` must predict the same target(s) with the same task kind as its versions
        (the newest one not deleted): its clients' requests and the prediction log's labels depend on them.
        :class:`ConflictError` otherwise; nothing for a new name. Checked again by :meth:`register`; callers
        check it before a search, so that a search is not run for a model that cannot be registered."""
        check_name(name)
        versions = self.store.list_versions(name)
        if not versions:
            return
        have = self.task(versions[-1])
        if list(have.targets) != list(task.targets) or str(have.kind) != str(task.kind):
            raise ConflictError(
                f"model {name!r} predicts {', '.join(map(repr, have.targets))} ({have.kind}), this one "
                f"{', '.join(map(repr, task.targets))} ({task.kind}): a version keeps its model's targets and kind "
                "(clients' requests depend on them); register it under another name"
            )

    def register(
        self,
        name: str,
        model: Any,
        dataset: Dataset,
        *,
        variant: str = "search",
        search_id: str | None = None,
        parent_version: int | None = None,
        info: Mapping[str, Any] | None = None,
        cv_metrics: Mapping[str, float | None] | None = None,
        signature: Signature | None = None,
    ) -> ModelVersionRecord:
        """Register ``model`` (fitted on ``dataset``) as the next version of ``name``; nothing is promoted.

        ``info`` adds to the recorded metadata (the search's configurations, ensemble members...)."""
        check_name(name)
        if model is None or not hasattr(model, "predict_task"):
            raise InputError(f"only a fitted metalearn model can be registered, got {type(model).__name__}")
        if isinstance(model, SignedModel):  # a model file's: the version's own signature checks the inputs
            model = model.model
        task = dataset.task
        self.check_compatible(name, task)
        metric = get_metric(task.metric, task.kind)
        signature = signature or Signature.of(dataset)
        version = self.store.next_version(name)
        if parent_version is not None:
            self.store.get_version(name, parent_version)
        directory = self.root / name / str(version)
        staging = self.root / name / f".staging-{version}-{uuid.uuid4().hex[:8]}"
        try:
            artifact = write_artifact(model, staging)  # refuses unsafe models before anything is written
            rows = np.arange(dataset.n_rows) if dataset.n_rows <= REFERENCE_ROWS else np.sort(
                np.random.default_rng(0).choice(dataset.n_rows, REFERENCE_ROWS, replace=False))
            ref_path = staging / REFERENCE_FILE
            dataset.X.iloc[rows].reset_index(drop=True).to_parquet(ref_path)
            labels_path = staging / REFERENCE_LABELS_FILE
            dataset.y.iloc[rows].reset_index(drop=True).to_parquet(labels_path)
            refit = _refit_metrics(model, dataset)
            meta: dict[str, Any] = {
                "task": task.to_dict(),
                "signature": signature.to_dict(),
                "dataset": {"name": dataset.name, "fingerprint": dataset.dataset_id, "origin": dataset.origin,
                            "n_rows": dataset.n_rows, "n_features": dataset.n_features},
                "metrics": {"cv": dict(cv_metrics or {}), "refit": refit},
                "metafeatures": _metafeatures(self.kb, dataset),
                "libraries": library_versions(),
                "trusted_types": artifact["trusted_types"],
                "reference": {"file": REFERENCE_FILE, "rows": len(rows), "sha256": _sha(ref_path),
                              "labels_file": REFERENCE_LABELS_FILE, "labels_sha256": _sha(labels_path)},
                "model": _describe(model),
                **dict(info or {}),
            }
            if directory.exists():  # a crash after the rename but before the commit: an orphan, replaced
                shutil.rmtree(directory)
            staging.rename(directory)
            record = ModelVersionRecord(
                name=name, version=version, kind=str(task.kind), metric=metric.name,
                greater_is_better=metric.greater_is_better, variant=variant,
                artifact=f"{name}/{version}/{artifact['file']}", artifact_format=artifact["format"],
                artifact_sha256=artifact["sha256"], artifact_bytes=artifact["bytes"], info=meta,
                search_id=search_id, dataset_id=dataset.dataset_id, parent_version=parent_version,
            )
            self.store.add_version(record)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            if directory.exists() and not any(v.version == version for v in self.store.list_versions(name, True)):
                shutil.rmtree(directory, ignore_errors=True)
            raise
        return self.store.get_version(name, version)

    def register_outcome(self, name: str, outcome: Any, dataset: Dataset, *, variant: str = "search",
                         parent_version: int | None = None, info: Mapping[str, Any] | None = None) -> ModelVersionRecord:
        """Register the final model of ``optimize()`` (a pipeline or an ensemble) with the search's facts (and
        ``info``'s)."""
        if outcome.model is None:
            reason = (outcome.summary.get("model") or {}).get("missing_reason") or "the search produced no model"
            raise ConflictError(f"nothing to register as {name!r}: {reason}")
        summary = outcome.summary
        best = summary.get("best") or {}
        cv_score, cv_basis, cv = model_cv(self.kb, summary, outcome.result.search_id)
        facts = {
            "search": {"search_id": summary.get("search_id"), "n_trials": summary.get("n_trials"),
                       "strategy": (summary.get("warm_start") or {}).get("strategy"),
                       "best": best, "seconds": summary.get("seconds"), "stopped_by": summary.get("stopped_by"),
                       # the pipeline the model is (None: an ensemble), for the search's leaderboard
                       "model_config_id": (summary.get("model") or {}).get("config_id"),
                       # what the search warned of (e.g. a better earlier run it did not resume)
                       "warnings": list(summary.get("warnings") or [])},
            "ensemble": summary.get("ensemble"),
            "calibration": summary.get("calibration"),
            "cv_score": cv_score,
            "cv_basis": cv_basis,
            **dict(info or {}),
        }
        return self.register(name, outcome.model, dataset, variant=variant, search_id=outcome.result.search_id,
                             parent_version=parent_version, info=facts, cv_metrics=cv)

    # -- reading -----------------------------------------------------------------------------------
    def list_models(self) -> list[dict[str, Any]]:
        out = []
        for name in self.store.list_models():
            versions = self.store.list_versions(name)
            aliases = self.store.aliases(name)
            flags = self.store.flags(name)
            out.append({"name": name, "versions": len(versions), "latest": versions[-1].version if versions else None,
                        "aliases": aliases, "kind": versions[-1].kind if versions else None,
                        "flags": sorted({f"{f.flag}@{f.version}" for f in flags})})
        return out

    def drift_flags(self) -> list[tuple[str, int, str, bool]]:
        """(model, version, flag, raised) for every drift flag of each model's live / candidate versions and of
        every flagged version: the registry's state, whoever ran the checks (for the service's metrics)."""
        out = []
        for name in self.store.list_models():
            raised = {(f.version, f.flag) for f in self.store.flags(name)}
            versions = sorted({v for v, _ in raised} | set(self.store.aliases(name).values()))
            out += [(name, v, flag, (v, flag) in raised) for v in versions for flag in FLAGS]
        return out

    def show(self, name: str) -> dict[str, Any]:
        check_name(name)
        versions = self.store.list_versions(name, include_deleted=True)
        if not versions:
            raise missing_model(name)
        aliases = self.store.aliases(name)
        flags = self.store.flags(name)
        return {
            "name": name,
            "aliases": aliases,
            "versions": [self.version_dict(v, aliases, flags) for v in versions],
            "events": [{"seq": e.seq, "action": e.action, "version": e.version, "alias": e.alias,
                        "previous_version": e.previous_version, "at": e.happened_at, "detail": e.detail}
                       for e in self.store.events(name)],
            "log": self.store.counts(name),
        }

    @staticmethod
    def version_dict(v: ModelVersionRecord, aliases: Mapping[str, int] | None = None,
                     flags: Sequence[Any] = ()) -> dict[str, Any]:
        info = v.info
        return {
            "name": v.name, "version": v.version, "kind": v.kind, "metric": v.metric, "variant": v.variant,
            "parent_version": v.parent_version, "search_id": v.search_id, "dataset_id": v.dataset_id,
            "created_at": v.created_at, "deleted": v.deleted,
            "aliases": sorted(a for a, n in (aliases or {}).items() if n == v.version),
            "flags": {f.flag: f.detail for f in flags if f.version == v.version},
            "artifact": {"format": v.artifact_format, "bytes": v.artifact_bytes, "sha256": v.artifact_sha256},
            "cv_score": info.get("cv_score"), "cv_basis": info.get("cv_basis"),
            "metrics": info.get("metrics"), "model": info.get("model"),
            "signature": info.get("signature"), "libraries": info.get("libraries"),
            "dataset": info.get("dataset"), "compression": info.get("compression"),
            "feedback_rows": (info.get("feedback") or {}).get("rows"),
            "warnings": (info.get("search") or {}).get("warnings") or [],
        }

    def resolve(self, name: str, version: int | None = None, alias: str = "live") -> ModelVersionRecord:
        """The version asked for, else the one ``alias`` points at. Aliases are cached under the KB's alias
        epoch (any promote, rollback or delete in this process moves it, so it is seen at once; only one
        process writes a KB file) and version records, immutable, by version (a delete through this
        registry drops its entry): serving a cached version makes no query."""
        check_name(name)
        if version is None:
            aliases = self._current_aliases(name)
            if alias not in aliases:
                if not self.store.list_versions(name):
                    raise missing_model(name)
                raise ConflictError(
                    f"model {name!r} has no {alias} version: promote one (`metalearn models promote {name} VERSION`, "
                    f"POST /models/{name}/promote) "
                    "or ask for a version explicitly"
                )
            version = aliases[alias]
        rec = self._records.get((name, version))
        if rec is None:
            rec = self.store.get_version(name, version)
            if not rec.deleted:
                self._records[(name, version)] = rec
        if rec.deleted:
            raise NotFoundError(f"model {name!r} version {version} was deleted: `metalearn models show {name}` "
                                f"(GET /models/{name}) lists the others")
        return rec

    def _current_aliases(self, name: str) -> dict[str, int]:
        store = self.store
        epoch = store.alias_epoch()  # before the read: a change during it moves the epoch past this one
        hit = self._aliases.get(name)
        if hit is not None and hit[0] == epoch:
            return hit[1]
        aliases = store.aliases(name)
        self._aliases[name] = (epoch, aliases)
        return aliases

    def working_version(self, name: str, version: int | None = None) -> ModelVersionRecord:
        """The version a drift check, compression or retraining works on: ``version`` when given, else the
        live one, else the latest (:class:`NotFoundError` for an unknown model)."""
        check_name(name)
        if version is not None or "live" in self._current_aliases(name):
            return self.resolve(name, version)  # the aliases just read are cached
        versions = self.store.list_versions(name)
        if not versions:
            raise missing_model(name)
        return versions[-1]

    def load(self, record: ModelVersionRecord) -> Any:
        """The model of ``record``, checked against its hash and trusted types (cached)."""
        key = (record.name, record.version, record.artifact_sha256)
        with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        model = read_artifact(self.root / record.artifact, record.artifact_sha256,
                              list(record.info.get("trusted_types", [])), f"model {record.name!r} version {record.version}")
        with self._cache_lock:
            self._cache[key] = model
            while len(self._cache) > 8:
                self._cache.popitem(last=False)
        return model

    def reference(self, record: ModelVersionRecord, labels: bool = False) -> pd.DataFrame:
        """The sample of the training features kept with the version (``labels``: their targets)."""
        ref = record.info.get("reference") or {}
        file, digest = ("labels_file", "labels_sha256") if labels else ("file", "sha256")
        path = self.root / record.name / str(record.version) / str(ref.get(file, ""))
        if not ref.get(file) or not path.is_file() or _sha(path) != ref.get(digest):
            raise ArtifactError(
                f"the reference sample of model {record.name!r} version {record.version} is missing or was modified "
                f"({path}): restore it or register the model again"
            )
        return pd.read_parquet(path)

    def signature(self, record: ModelVersionRecord) -> Signature:
        return self._parsed(record)[0]

    def task(self, record: ModelVersionRecord) -> Task:
        return self._parsed(record)[1]

    def _parsed(self, record: ModelVersionRecord) -> tuple[Signature, Task]:
        """The version's training schema and task, parsed once per version (they are immutable)."""
        key = (record.name, record.version, record.artifact_sha256)
        found = self._meta.get(key)
        if found is None:
            found = (Signature.from_dict(record.info["signature"]), Task.from_dict(record.info["task"]))
            self._meta[key] = found
        return found

    # -- aliases -----------------------------------------------------------------------------------
    def promote(self, name: str, version: int, alias: str = "live") -> dict[str, Any]:
        """Point ``alias`` at ``version`` (atomic); returns the previous and the new version (the same when the
        alias was already there: nothing changes then, no event)."""
        check_name(name)
        record = self.store.get_version(name, version)
        if record.deleted:  # said before the artifact is read (it may be gone with the version)
            raise ConflictError(
                f"model {name!r} version {version} was deleted and cannot be promoted; promote a version "
                f"`metalearn models show {name}` (GET /models/{name}) lists as not deleted"
            )
        self.load(record)  # never promote a version that cannot be served
        before = self.store.set_alias(name, alias, version, "promote")
        return {"name": name, "alias": alias, "version": version, "previous_version": before}

    def rollback(self, name: str, alias: str = "live") -> dict[str, Any]:
        """Point ``alias`` back at the version it pointed at before its current one (skipping deleted
        versions); :class:`ConflictError` when there is none."""
        check_name(name)
        current = self.store.aliases(name).get(alias)
        if current is None:
            if not self.store.list_versions(name, True):
                raise missing_model(name)
            raise ConflictError(f"model {name!r} has no {alias} version to roll back: promote one first")
        alive = {v.version for v in self.store.list_versions(name)}
        stack = alias_stack(self.store.events(name), alias)
        target = next((v for v in reversed(stack[:-1]) if v in alive and v != current), None)
        if target is None:
            raise ConflictError(
                f"model {name!r}: {alias} version {current} has no earlier {alias} version to roll back to; "
                f"promote a version explicitly (`metalearn models promote {name} VERSION`, POST /models/{name}/promote)"
            )
        self.load(self.store.get_version(name, target))
        before = self.store.set_alias(name, alias, target, "rollback", {"from": current})
        return {"name": name, "alias": alias, "version": target, "previous_version": before}

    def delete(self, name: str, version: int) -> list[str]:
        """Mark ``version`` deleted (not the live one: promote another first); returns the other aliases it
        held (``candidate``), which go with it. Its artifact stays on disk for the history until removed by
        hand."""
        check_name(name)
        held = self.store.delete_version(name, version)
        self._records.pop((name, version), None)
        return held

    # -- serving -----------------------------------------------------------------------------------
    def predict(self, name: str, frame: pd.DataFrame, version: int | None = None, *, log: bool = True,
                on_logged: Callable[[list[PredictionRecord]], None] | None = None) -> PredictionBatch:
        """Predict ``frame`` with ``version`` (default: the live one), after checking it against the training
        schema. Logged predictions go to ``on_logged`` (a buffered writer) or straight to the KB."""
        record = self.resolve(name, version)
        if len(frame) > MAX_BATCH_ROWS:
            raise InputError(f"{len(frame)} rows in one request is more than {MAX_BATCH_ROWS}: split the batch")
        X, warnings = self.signature(record).validate(frame)
        model = self.load(record)
        t0 = time.perf_counter()
        pred = model.predict_task(X)
        seconds = time.perf_counter() - t0
        task = self.task(record)
        ids = [uuid.uuid4().hex for _ in range(len(X))]
        rows = prediction_rows(task.targets, pred)
        batch = PredictionBatch(name, record.version, ids, rows, warnings, pred, seconds, list(task.targets))
        if log:
            logged = self._log_records(batch, X)
            kept = {r.prediction_id for r in logged}
            batch.logged = [i in kept for i in ids]
            if logged:
                if on_logged is not None:
                    on_logged(logged)
                else:
                    self.write_log(logged)
        return batch

    def evaluate(self, name: str, frame: pd.DataFrame, version: int | None = None, *, metric: str | None = None,
                 importance: bool = False, n_repeats: int = 5, max_rows: int | None = 5000,
                 time_limit: float | None = None, seed: int = 0) -> dict[str, Any]:
        """Score ``version`` (default: the live one) on labelled rows — ``frame`` holds the training features
        and the true values of its targets — with every metric of its kind (AutoGluon's ``evaluate``), and with
        ``importance`` each feature's permutation importance on them
        (:func:`metalearn.pipelines.importance.permutation_importance`, in the version's metric or ``metric``).
        Nothing is logged or stored. :class:`InputError` names a missing target column, rows without labels or
        a metric of another kind; the features are checked as :meth:`predict` checks them."""
        from metalearn.data.metrics import check_task_metric
        from metalearn.pipelines.importance import permutation_importance

        record = self.resolve(name, version)
        task = self.task(record)
        chosen = check_task_metric(task, metric or record.metric)
        targets = [str(t) for t in task.targets]
        if not isinstance(frame, pd.DataFrame):
            raise SchemaError(f"the labelled data must be a table with named columns, got {type(frame).__name__}")
        check_unique_columns(frame, "the labelled data")
        frame = frame.set_axis([str(c) for c in frame.columns], axis=1)
        missing = [t for t in targets if t not in frame.columns]
        if missing:
            raise InputError(
                f"the data has no column {', '.join(map(repr, missing))}: evaluating model {name!r} needs the true "
                f"value of each of its targets ({', '.join(map(repr, targets))}) beside the features"
            )
        # a row is scored with every target labelled (a multi-output row missing one label made every metric NaN)
        labelled = frame[targets].notna().all(axis=1).to_numpy()
        if not labelled.any():
            raise InputError(f"no row of the data has a value in {', '.join(map(repr, targets))}"
                             + (" each" if len(targets) > 1 else "") + ": send labelled rows")
        frame = frame.loc[labelled].reset_index(drop=True)
        signature = self.signature(record)
        y = signature.labels_as_trained(frame[targets])
        if (problem := signature.labels_problem(y)) is not None:
            raise InputError(f"the labelled data: {problem}")
        X, warnings = signature.validate(frame.drop(columns=targets), "the labelled data")
        if (seen := self._training_rows_among(record, X)) is not None:
            warnings = [*warnings, seen]
        model = self.load(record)
        t0 = time.perf_counter()
        pred = model.predict_task(X)
        metrics = {k: finite_or_none(v) for k, v in compute_metrics(task, y, pred).items()}
        out: dict[str, Any] = {
            "name": record.name, "version": record.version, "metric": chosen, "score": metrics.get(chosen),
            "greater_is_better": get_metric(chosen).greater_is_better, "metrics": metrics,
            "targets": task.target_keys(), "rows": len(X),
            "unlabelled_rows": int((~labelled).sum()), "warnings": warnings, "importance": None,
        }
        if importance:
            table = permutation_importance(model.predict_task, task, X, y, metric=chosen, n_repeats=n_repeats,
                                           max_rows=max_rows, time_limit=time_limit, seed=seed)
            out["importance"] = {
                "rows": table.attrs["rows"], "shuffle_sets": table.attrs["shuffle_sets"],
                "features": [{"feature": f, **{k: int(v) if k == "n" else finite_or_none(float(v)) for k, v in r.items()}}
                             for f, r in table.to_dict("index").items()],
            }
        out["seconds"] = time.perf_counter() - t0
        return out

    #: share of the training rows kept with a version found among evaluated rows from which a score is called
    #: in-sample (a few may repeat by chance in real data)
    IN_SAMPLE_SHARE = 0.1

    def _training_rows_among(self, record: ModelVersionRecord, X: pd.DataFrame) -> str | None:
        """A warning when at least :attr:`IN_SAMPLE_SHARE` of the training rows kept with the version (its
        reference sample) are among the rows ``X`` (checked against the schema): the score is then partly
        in-sample (evaluating a version on its own training file read as a held-out score). None otherwise,
        and when the version keeps no reference sample."""
        try:
            ref, _ = self.signature(record).validate(self.reference(record), "the version's reference sample")
        except (ArtifactError, InputError):
            return None
        if not len(ref) or not len(X):
            return None
        given = set(pd.util.hash_pandas_object(X.reset_index(drop=True), index=False).tolist())
        found = int(sum(h in given for h in pd.util.hash_pandas_object(ref.reset_index(drop=True), index=False)))
        if found < max(1, self.IN_SAMPLE_SHARE * len(ref)):
            return None
        return (f"{found} of the {len(ref)} training rows kept with version {record.version} are among these rows: "
                "the data holds rows the version was trained on, so the score is partly in-sample (optimistic); "
                "evaluate on rows it did not train on")

    def explain(self, name: str, frame: pd.DataFrame, version: int | None = None, *, n_permutations: int = 8,
                background: int = 16, top: int | None = None, seed: int = 0) -> dict[str, Any]:
        """Why ``version`` (default: the live one) predicts what it does for each row of ``frame`` (at most
        :data:`MAX_EXPLAIN_ROWS`): each feature's Shapley value (:func:`metalearn.pipelines.explain.shapley_values`)
        against ``background`` rows of the sample of training data kept with the version, per target and
        output (a class's probability, or the value), the ``top`` largest first. Nothing is logged or stored;
        the rows are checked as :meth:`predict` checks them."""
        from metalearn.pipelines.explain import n_orders, shapley_values

        record = self.resolve(name, version)
        if len(frame) > MAX_EXPLAIN_ROWS:
            raise InputError(f"{len(frame)} rows to explain is more than {MAX_EXPLAIN_ROWS} in one request: "
                             "explain a few rows at a time")
        signature = self.signature(record)
        X, warnings = signature.validate(frame)
        reference, _ = signature.validate(self.reference(record), "the version's reference sample")
        model = self.load(record)
        t0 = time.perf_counter()
        found = shapley_values(model.predict_task, self.task(record), X, reference, n_permutations=n_permutations,
                               max_background=background, seed=seed)
        return {"name": record.name, "version": record.version, "warnings": warnings,
                "background_rows": min(background, len(reference)), "n_permutations": n_orders(n_permutations),
                "rows": [e.to_dict(top) for e in found], "seconds": time.perf_counter() - t0}

    def _log_records(self, batch: PredictionBatch, X: pd.DataFrame) -> list[PredictionRecord]:
        s = self.log_settings.sample
        if s <= 0:
            return []
        keep = np.ones(len(X), dtype=bool) if s >= 1 else self._rng.random(len(X)) < s
        per_row = 1000.0 * batch.seconds / max(1, len(X))
        records = []
        columns = [str(c) for c in X.columns]
        cells = X.to_numpy(dtype=object)  # block-wise: to_dict("records") indexed every column of every row
        for i in np.flatnonzero(keep):
            features = {k: _plain(v) for k, v in zip(columns, cells[i], strict=True)}
            records.append(PredictionRecord(batch.prediction_ids[i], batch.name, batch.version, features,
                                            batch.rows[i], per_row))
        return records

    def write_log(self, records: Sequence[PredictionRecord]) -> None:
        """Append logged predictions and apply the retention (per model). The log's size per model is
        counted once, then kept up to date here (one writer per KB file), so a write costs no count query;
        trimming waits until the log is 5 % over ``keep`` and then cuts it back to ``keep``."""
        if not records:
            return
        keep = self.log_settings.keep
        with self.kb.transaction():
            added = self.store.log_predictions(records)
            if not keep:
                return
            names = {r.name for r in records}
            with self._log_lock:
                for name in names:
                    if name not in self._log_sizes:
                        self._log_sizes[name] = self.store.counts(name)["predictions"]
                    elif len(names) == 1:
                        self._log_sizes[name] += added
                    else:  # several models in one write: their shares of ``added`` are not known
                        self._log_sizes[name] = self.store.counts(name)["predictions"]
                    if self._log_sizes[name] > keep + keep // 20:
                        self.store.trim_predictions(name, keep)
                        self._log_sizes[name] = keep

    def feedback(self, name: str, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Store true labels: ``items`` = ``[{"prediction_id": ..., "labels": {target: value}}]`` (or
        ``"label"`` for a single target). Every item is checked before anything is stored."""
        check_name(name)
        if not isinstance(items, Sequence) or isinstance(items, str | bytes) or not items:
            raise InputError('feedback needs a non-empty list of {"prediction_id": ..., "labels": {target: value}}')
        ids = []
        for i, item in enumerate(items):
            if not isinstance(item, Mapping) or not isinstance(item.get("prediction_id"), str):
                raise InputError(f"feedback item {i} needs a string prediction_id (as /predict returned it)")
            ids.append(item["prediction_id"])
        repeated = sorted(i for i, n in Counter(ids).items() if n > 1)
        if repeated:
            raise InputError(
                f"prediction id {repeated[0]!r} appears more than once in the feedback ({len(repeated)} such id(s)): "
                "send each prediction's labels once; nothing was stored"
            )
        logged = self.store.get_predictions(ids)
        missing = [i for i in ids if i not in logged]
        if missing:
            sampled = self.log_settings.sample < 1.0
            raise NotFoundError(
                f"{len(missing)} prediction id(s) are not in the prediction log (e.g. {missing[0]!r}): send ids "
                "returned by predict for this model, within the log's retention"
                + (f", and only those predict marked logged (the log keeps {self.log_settings.sample:.0%} of the "
                   "predictions)" if sampled else "") + "; nothing was stored"
            )
        records = []
        versions: dict[int, ModelVersionRecord] = {}
        for item, pid in zip(items, ids, strict=True):
            p = logged[pid]
            if p.name != name:
                raise InputError(f"prediction {pid} was made by model {p.name!r}, not {name!r}; nothing was stored")
            if p.version not in versions:
                versions[p.version] = self.store.get_version(name, p.version)
            task, signature = self.task(versions[p.version]), self.signature(versions[p.version])
            labels = item.get("labels")
            if labels is None and "label" in item and task.n_targets == 1:
                labels = {task.targets[0]: item["label"]}
            if not isinstance(labels, Mapping) or set(map(str, labels)) != set(task.targets):
                raise InputError(
                    f"feedback for prediction {pid} must give labels for the target(s) {list(task.targets)}, "
                    f"got {list(labels) if isinstance(labels, Mapping) else labels!r}; nothing was stored"
                )
            problems = [m for k, v in labels.items() if (m := signature.label_problem(str(k), _plain(v)))]
            if problems:
                raise InputError(f"feedback for prediction {pid}: {problems[0]}; nothing was stored")
            # stored as the classes the model was trained on ("1" sent for the integer class 1 is stored as 1: a
            # retraining on the feedback kept the text and changed the target's classes, or its kind)
            records.append(FeedbackRecord(pid, name, p.version, {
                str(k): _plain(signature.label_as_trained(str(k), _plain(v))) for k, v in labels.items()}))
        n = self.store.add_feedback(records)
        return {"name": name, "stored": n}


def alias_stack(events: Sequence[Any], alias: str) -> list[int]:
    """The versions ``alias`` went through, as a stack: a promote pushes, a rollback pops back to its target
    (so repeated rollbacks walk further back, never forth)."""
    stack: list[int] = []
    for e in events:
        if e.alias != alias:
            continue
        if e.action == "promote":
            if not stack or stack[-1] != e.version:
                stack.append(e.version)
        elif e.action == "rollback":
            while stack and stack[-1] != e.version:
                stack.pop()
            if not stack:
                stack.append(e.version)
    return stack


def _sha(path: Path) -> str:
    from metalearn.pipelines.artifacts import sha256_file

    return sha256_file(path)


def _describe(model: Any) -> dict[str, Any]:
    members = getattr(model, "members", None)
    if members is not None:  # (a temperature-scaled single pipeline is an ensemble of one member)
        return {"type": "ensemble", "class": type(model).__name__,
                "members": [{"config_id": c, "weight": w, **_describe(m)}
                            for c, w, m in zip(model.config_ids or ("",) * len(members), model.weights, members,
                                               strict=True)],
                "temperature": float(getattr(model, "temperature", 1.0)),
                "biases": (None if getattr(model, "biases", None) is None else list(model.biases)),
                "threshold": getattr(model, "threshold", None),
                "class_weights": (None if getattr(model, "class_weights", None) is None
                                  else list(model.class_weights))}
    final = _final_estimator(model)
    return {"type": "pipeline", "class": type(model).__name__,
            "estimator": type(model).__name__ if final is None else estimator_name(final)}


def _final_estimator(model: Any) -> Any:
    """A pipeline task model's final estimator (a multi-task model's first: its classifier, regressor or shared
    network), out of its multi-output wrapper (None: it has none)."""
    est = getattr(model, "estimator", None)
    for attr in ("classifier", "regressor", "shared"):
        est = est if est is not None else getattr(model, attr, None)
    while isinstance(est, MultiOutputClassifier | MultiOutputRegressor | ClassifierChain | RegressorChain):
        est = est.estimator
    return est


def _refit_metrics(model: Any, dataset: Dataset) -> dict[str, float | None]:
    """Every metric of the task for the final model on (a sample of) its own training data."""
    ds = dataset.subsample(REFERENCE_ROWS, seed=0)
    try:
        pred = model.predict_task(ds.X)
        return {k: finite_or_none(v) for k, v in compute_metrics(ds.task, ds.y, pred).items()}
    except Exception as err:  # a model that cannot predict its own data is refused
        raise InputError(f"the model cannot predict its training data ({type(err).__name__}: {err})") from err


#: How a version's ``cv_score`` was estimated (``info["cv_basis"]``): the model is an ensemble, or one pipeline.
CV_BASES = {
    "ensemble": "ensemble, pooled out of fold",  # its score on the trials' pooled out-of-fold predictions
    "ensemble_validation": "ensemble, on validation rows the search left out",
    "pipeline": "the pipeline's validation score in the search",  # mean over folds, or holdout
}


def model_cv(
    kb: KnowledgeBase, summary: Mapping[str, Any], search_id: str | None
) -> tuple[float | None, str, dict[str, float | None]]:
    """The search's final model's validation score, how it was estimated (a :data:`CV_BASES` key) and the
    validation metrics of the pipeline it is (an ensemble's: its best member's, every metric of the kind).

    An ensemble is scored by its own out-of-fold score, not its best member's; a pipeline that took the best
    one's place (its refit failed the ensemble's check) by its own runs."""
    best = summary.get("best") or {}
    ensemble = summary.get("ensemble") or {}
    if ensemble.get("used"):
        members = _cv_metrics(kb, search_id, best.get("config_id"))
        if (score := finite_or_none((ensemble.get("validation") or {}).get("score"))) is not None:
            return score, "ensemble_validation", members
        if (score := finite_or_none(ensemble.get("score"))) is not None:
            return score, "ensemble", members
    config_id = (summary.get("model") or {}).get("config_id") or best.get("config_id")
    cv = _cv_metrics(kb, search_id, config_id)
    if config_id == best.get("config_id") or summary.get("metric") not in cv:
        return finite_or_none(best.get("score")), "pipeline", cv
    return cv[summary["metric"]], "pipeline", cv


def _cv_metrics(kb: KnowledgeBase, search_id: str | None, config_id: str | None) -> dict[str, float | None]:
    """The validation metrics of the search's best run (every metric of the kind), from the KB: the search's own
    run of ``config_id``, else (a run the search resumed) an earlier search's run of it on the same data."""
    if not search_id or not config_id:
        return {}
    runs = [r for r in kb.list_runs(search_id=search_id, config_id=config_id) if r.ok]
    if not runs:  # resumed: stored by the search that ran it (the version's metrics.cv read {})
        try:
            dataset_id = kb.get_search(search_id).dataset_id
        except NotFoundError:
            return {}
        runs = [r for r in kb.list_runs(dataset_id=dataset_id, config_id=config_id) if r.ok]
    if not runs:
        return {}
    best = max(runs, key=lambda r: (r.budget is None or r.budget >= 1.0, r.created_at))
    return {k: finite_or_none(v) for k, v in best.metrics.items()}


def _metafeatures(kb: KnowledgeBase, dataset: Dataset) -> dict[str, float | None]:
    from metalearn.metalearning.metafeatures import EXTRACTOR_VERSION

    try:
        rec = kb.get_metafeatures(dataset.dataset_id, EXTRACTOR_VERSION)
    except NotFoundError:
        return {}
    return {k: finite_or_none(v) for k, v in rec.values.items()}


def data_hash(frame: pd.DataFrame) -> str:
    return hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).values.tobytes()).hexdigest()[:20]


__all__ = ["CV_BASES", "MAX_BATCH_ROWS", "LogSettings", "ModelRegistry", "PredictionBatch", "SchemaError", "check_name"]
