"""Drift checks of a registered version: data drift (its logged inputs against the training reference
kept with it) and concept drift (labelled feedback against its cross-validated score). A check sets or
clears the version's ``data_drift`` / ``concept_drift`` flags in the registry, so ``models show``, the
API and the metrics say when a threshold was crossed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from metalearn.data.errors import InputError
from metalearn.data.metrics import compute_metrics
from metalearn.data.numbers import finite_or_none
from metalearn.data.prediction import Prediction
from metalearn.data.task import Task
from metalearn.kb.model_store import FeedbackRecord, FlagRecord, ModelVersionRecord, PredictionRecord
from metalearn.monitoring.drift import DriftThresholds, concept_drift, data_drift
from metalearn.monitoring.drift import logged_prediction as parse_logged
from metalearn.monitoring.report import render_drift_report
from metalearn.registry.registry import ModelRegistry

#: the newest logged inputs a data-drift check compares with the reference
DATA_WINDOW = 2000
#: labelled predictions per rolling window of the concept-drift check
CONCEPT_WINDOW = 200
#: the newest labelled predictions a version is scored on by :func:`evaluate_on_feedback`
FEEDBACK_ROWS = 10_000


def logged_inputs(records: Sequence[PredictionRecord], columns: Sequence[str]) -> pd.DataFrame:
    """The logged input rows as a frame with the training columns."""
    return pd.DataFrame([r.features for r in records], columns=list(columns))


def feedback_labels(pairs: Sequence[tuple[PredictionRecord, FeedbackRecord]], targets: Sequence[str]) -> pd.DataFrame:
    """The true labels of labelled predictions (the store's ``feedback`` pairs), one column per target (a target
    without a label: missing)."""
    return pd.DataFrame([{t: f.labels.get(t) for t in targets} for _, f in pairs], columns=list(targets))


def logged_prediction(records: Sequence[PredictionRecord], task: Task,
                      classes: Sequence[Sequence[Any] | None]) -> Prediction:
    """The logged outputs as a :class:`Prediction` (probability columns in the order of ``classes``),
    parsed by :func:`metalearn.monitoring.drift.logged_prediction`."""
    targets = task.targets
    return parse_logged(
        [[r.outputs["predictions"].get(t) for t in targets] for r in records],
        [[(r.outputs.get("probabilities") or {}).get(t) for t in targets] for r in records],
        target_kinds=task.target_kinds, classes=classes,
    )


def labelled_log(registry: ModelRegistry, name: str, record: ModelVersionRecord, *, limit: int = FEEDBACK_ROWS,
                 exclude: Collection[str] = ()) -> tuple[pd.DataFrame, pd.DataFrame, list[PredictionRecord]]:
    """The labelled prediction log of ``name`` (every version's; the newest ``limit`` labelled predictions, those
    in ``exclude`` left out) in ``record``'s schema: the logged inputs, their true labels (one column per target)
    and the logged predictions, row for row. :class:`InputError` when nothing is labelled yet."""
    targets = [str(t) for t in registry.task(record).targets]
    # (a version of other targets, registered before stop 52 refused them, labelled rows of its own)
    pairs = [(p, f) for p, f in registry.store.feedback(name, None, limit)
             if p.prediction_id not in exclude and all(t in f.labels for t in targets)]
    if not pairs:
        raise InputError(
            f"model {name!r} has no labelled predictions yet: send the true labels of logged predictions first "
            f"(`metalearn models feedback {name} LABELS.csv` or POST /models/{name}/feedback)"
            if not exclude else
            f"every labelled prediction of model {name!r} trained version {record.version}: score it once new "
            "labels come back (its own training rows would score it in-sample)")
    logged = [p for p, _ in pairs]
    labels = feedback_labels(pairs, targets)
    return logged_inputs(logged, registry.signature(record).names), labels, logged


def feedback_ids(record: ModelVersionRecord) -> list[str]:
    """The prediction ids of the labelled predictions ``record`` was retrained on (none for other versions)."""
    return [str(i) for i in (record.info.get("feedback") or {}).get("prediction_ids") or []]


def evaluate_on_feedback(registry: ModelRegistry, name: str, version: int | None = None, *,
                         limit: int = FEEDBACK_ROWS, **evaluate: Any) -> dict[str, Any]:
    """Score ``version`` (default: the live one) on the labelled prediction log of ``name`` (:func:`labelled_log`:
    the newest ``limit`` logged inputs, of every version, whose true labels came back, less the rows the version
    was retrained on) as :meth:`ModelRegistry.evaluate` scores a labelled file (``evaluate``: its keyword
    arguments), and, on the same rows and metrics, the predictions that were served for them (``served``: their
    score and which versions made them): a candidate against the live model on real traffic before promoting it.
    :class:`InputError` when no such row is labelled yet."""
    record = registry.resolve(name, version)
    trained = set(feedback_ids(record))
    X, labels, logged = labelled_log(registry, name, record, limit=limit, exclude=trained)
    task, signature = registry.task(record), registry.signature(record)
    result = registry.evaluate(name, pd.concat([X, labels], axis=1), record.version, **evaluate)
    labelled = labels.notna().any(axis=1).to_numpy()
    rows = np.flatnonzero(labelled)
    served = logged_prediction(logged, task, [t.classes for t in signature.targets]).take(rows)
    truth = signature.labels_as_trained(labels.iloc[rows].reset_index(drop=True))
    metrics = {k: finite_or_none(v) for k, v in compute_metrics(task, truth, served).items()}
    versions = Counter(p.version for p, keep in zip(logged, labelled, strict=True) if keep)
    notes = [f"the newest {limit}"] if len(logged) + len(trained) >= limit else []
    notes += [f"less the {len(trained)} version {record.version} was retrained on"] if trained else []
    result["source"] = f"the prediction log's {len(rows)} labelled predictions" + (f" ({', '.join(notes)})" if notes else "")
    result["served"] = {"score": metrics.get(result["metric"]), "metrics": metrics,
                        "versions": {str(v): n for v, n in sorted(versions.items())}}
    return result


def check_drift(
    registry: ModelRegistry,
    name: str,
    version: int | None = None,
    thresholds: DriftThresholds | Mapping[str, Any] | None = None,
    *,
    window: int = DATA_WINDOW,
    concept_window: int = CONCEPT_WINDOW,
    update_flags: bool = True,
) -> dict[str, Any]:
    """Check ``name`` (``version``, default the live one, else the latest) for data and concept drift; set
    or clear its flags (unless ``update_flags`` is false). JSON-ready result: ``name``, ``version``,
    ``data`` (:func:`~metalearn.monitoring.drift.data_drift` of the newest ``window`` logged inputs),
    ``concept`` (:func:`~metalearn.monitoring.drift.concept_drift` of the labelled predictions, None without
    feedback or a training score), ``flags`` (set on the version after the check), ``checked_at``."""
    record = registry.working_version(name, version)
    signature = registry.signature(record)
    reference = registry.reference(record)
    recent = registry.store.recent_predictions(name, record.version, limit=window)
    current = logged_inputs(recent, signature.names)
    data = data_drift(reference, current, signature.categorical, thresholds)
    concept = None
    pairs = registry.store.feedback(name, record.version)
    training = record.info.get("cv_score")
    if training is None:
        training = (record.info.get("metrics") or {}).get("cv", {}).get(record.metric)
    if pairs and training is not None:
        task = registry.task(record)
        preds = [p for p, _ in pairs]
        labels = signature.labels_as_trained(feedback_labels(pairs, [str(t) for t in task.targets]))
        prediction = logged_prediction(preds, task, [t.classes for t in signature.targets])
        concept = concept_drift(labels, prediction, task=task, training_score=float(training),
                                window=concept_window, thresholds=thresholds)
    flags: list[str] = []
    if update_flags:
        flags = _update_flags(registry, record, data, concept)
    else:
        flags = [f.flag for f in registry.store.flags(name, record.version)]
    return {"name": name, "version": record.version, "data": data, "concept": concept, "flags": flags,
            "checked_at": datetime.now(UTC).isoformat().replace("+00:00", "Z")}


def _update_flags(registry: ModelRegistry, record: ModelVersionRecord, data: dict[str, Any],
                  concept: dict[str, Any] | None) -> list[str]:
    """Set a flag for each check that crossed its threshold, clear it for one that ran and did not; a check
    without enough data leaves its flag as it was."""
    store = registry.store
    checks = {"data_drift": data, "concept_drift": concept}
    for flag, result in checks.items():
        if result is None or result.get("status") != "ok":
            continue
        if result.get("drifted"):
            detail = {"reason": result.get("reason"), "checked_rows": result.get("n_current", result.get("n_rows"))}
            if flag == "data_drift":
                detail.update(share_drifted=result.get("share_drifted"),
                              metafeature_distance=result.get("metafeature_distance"))
            else:
                detail.update(latest_score=result.get("latest_score"), training_score=result.get("training_score"),
                              relative_degradation=result.get("relative_degradation"))
            store.set_flag(FlagRecord(record.name, record.version, flag, detail))
        else:
            store.clear_flag(record.name, record.version, flag)
    return [f.flag for f in store.flags(record.name, record.version)]


def drift_report_html(
    registry: ModelRegistry,
    name: str,
    version: int | None = None,
    thresholds: DriftThresholds | Mapping[str, Any] | None = None,
) -> str:
    """The human drift page of a version (plots of the most drifted features, the rolling metric)."""
    result = check_drift(registry, name, version, thresholds)
    record = registry.store.get_version(name, result["version"])
    signature = registry.signature(record)
    reference = registry.reference(record)
    recent = registry.store.recent_predictions(name, record.version, limit=DATA_WINDOW)
    return render_drift_report(name, record.version, result["data"], result["concept"], reference,
                               logged_inputs(recent, signature.names))
