"""The Python API: ``optimize()``, with the same power as the CLI (the scikit-learn estimators built on it
are in :mod:`metalearn.search.estimators`, importable from here too)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from metalearn.data.dataset import Dataset
from metalearn.data.errors import MetaLearnError
from metalearn.data.metrics import check_metric
from metalearn.data.numbers import finite_or_none
from metalearn.data.prediction import Prediction
from metalearn.data.splits import duplicate_groups
from metalearn.data.task import TaskKind
from metalearn.kb.base import KnowledgeBase
from metalearn.kb.shipped import open_default_kb
from metalearn.metalearning.metafeatures import ensure_metafeatures
from metalearn.pipelines.spaces import get_space
from metalearn.search.data_warnings import mostly_missing, target_outliers
from metalearn.search.deadline import (
    FINAL_FIT_FLOOR_SHARE,
    MIN_REFIT_ROWS,
    RESERVE_MARGIN_SHARE,
    Deadline,
    budget_protocol,
    refit_rows,
    rows_growth,
)
from metalearn.search.ensemble import (
    EnsembleModel,
    EnsemblePlan,
    OOFPool,
    build_ensemble,
    family_of,
    model_oof,
    plan_ensemble,
    write_estimate,
)
from metalearn.search.evaluation import EvalProtocol, fit_final
from metalearn.search.final_validation import final_validation, revalidate
from metalearn.search.loop import SearchResult, Trial, run_search
from metalearn.search.settings import SearchSettings


@dataclass
class OptimizeOutcome:
    result: SearchResult
    model: Any  # the best pipeline refit on all data (None when no trial succeeded)
    summary: dict[str, Any]
    out_dir: Path | None


def optimize(
    dataset: Dataset,
    kb: KnowledgeBase | str | Path | None = None,
    settings: SearchSettings | None = None,
    *,
    out_dir: str | Path | None = None,
    refit: bool = True,
    on_trial: Callable[[Trial], None] | None = None,
    on_status: Callable[[str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    search_id: str | None = None,
    started: float | None = None,
    seed_configs: Sequence[Any] = (),
    copies: int = 0,
) -> OptimizeOutcome:
    """Warm-started search on ``dataset``: meta-features -> recommendations -> SMAC -> refit.

    Every trial is written to ``kb`` as it finishes; the dataset and its meta-features are stored first,
    so the dataset becomes a neighbour for later searches. Re-running on the same data resumes. The task's
    metric is checked before anything is written (``InputError``).

    ``started`` is the ``time.monotonic()`` at which the caller's job began (the CLI: before it loaded
    the data), so that the summary's ``seconds`` is the whole job; by default, the call of ``optimize``.
    ``timings`` in the summary splits it: ``before`` (the caller's part, e.g. loading), ``metafeatures``,
    ``recommendations``, ``search``, ``refit`` and ``write`` (the model file).

    ``seed_configs`` (objects with ``config_id``, ``values``, ``rank``, ``sources``, like recommendations) are
    tried first, before the recommendations: retraining a registered model starts from its configurations.

    ``copies`` counts the model files the caller writes within the budget besides ``out_dir``'s (a registry
    version): a budgeted ensemble is chosen so that its refits and every file's write fit.

    ``model`` is None when no configuration succeeded (at full budget); ``summary["model"]`` says why,
    and lists the targets the refit model predicts as constants (``constant_targets``).
    """
    from metalearn.metalearning.advisor import Advisor

    t0 = time.monotonic() if started is None else started
    timings = {"before": time.monotonic() - t0}
    check_metric(dataset.task.kind, dataset.task.metric)  # a bad metric writes nothing
    settings = settings or SearchSettings()
    # the whole job's budget, handed down to each part; the model files are written within it
    deadline = Deadline(settings.time_limit, t0, writes=(out_dir is not None) + copies)
    settings = _budgeted(settings, dataset, deadline)

    def lap(name: str, since: float) -> float:
        now = time.monotonic()
        timings[name] = now - since
        return now

    t = time.monotonic()
    store = kb if isinstance(kb, KnowledgeBase) else open_default_kb(kb)
    status = on_status or (lambda _text: None)
    status("meta-features")
    mf = ensure_metafeatures(store, dataset, seed=settings.seed, **_metafeature_limits(deadline))
    t = lap("metafeatures", t)
    recs: list[Any] = []
    strategy = None
    if settings.warm_start and settings.n_warm > 0:
        status("recommendations")
        advisor = Advisor(store)
        strategy = advisor.resolve_strategy(settings.strategy)
        recs = advisor.recommend_dataset(
            dataset, mf.values, strategy=settings.strategy, k=settings.n_warm, exclude_ids={dataset.dataset_id},
            seed=settings.seed,
        )  # fmt: skip
        if any(getattr(r, "composed", False) for r in recs):  # a multitask dataset, no multitask KB runs
            from metalearn.metalearning.composed import COMPOSED_NOTE

            status(COMPOSED_NOTE)
    if seed_configs:
        recs = [*seed_configs, *recs]
    t = lap("recommendations", t)
    status("searching")
    # the trials' out-of-fold predictions, for the ensemble selection and the calibration
    pool = OOFPool.for_task(dataset.task) if (settings.ensemble or settings.calibrate) and refit else None
    result = run_search(
        dataset, store, settings, recommendations=recs, on_trial=on_trial, should_stop=should_stop, search_id=search_id,
        oof_pool=pool, deadline=deadline, on_status=status,
    )
    t = lap("search", t)
    model = None
    # Caruana's selection over the trials' out-of-fold predictions first (no refit): the best pipeline's final
    # fit spends spare time only on what an ensemble's other members' refits leave
    plan = None
    if pool is not None and settings.ensemble and refit and result.best_values is not None:
        plan = plan_ensemble(dataset.task, pool, result.best_config_id, settings.ensemble_size)
    # a search on a small data subset: rows it never used validate the refit model (metalearn.search.final_validation)
    fit_data, val_data = dataset, None
    if refit and result.best_values is not None and _validates(dataset, settings, plan):
        held = final_validation(dataset, settings.protocol, seed=settings.seed)
        if held is not None:
            fit_data, val_data = held.split(dataset)
            deadline.note(held.note(dataset.n_rows))
    if refit and result.best_values is not None:
        status("refitting the best pipeline on " + ("all data" if val_data is None else f"{fit_data.n_rows} of {dataset.n_rows} rows"))
        keep = plan.refit_seconds(result.best_config_id) if plan is not None else 0.0
        model = refit_best(fit_data, result, deadline, seed=settings.seed, keep=keep)
    ensemble = None
    val_prediction = None  # the model's predictions of the validation rows, when revalidate made them
    if pool is not None and model is not None and plan is not None:  # the model when the ensemble wins
        model, ensemble = build_ensemble(
            fit_data, get_space(dataset.task), pool, result.best_config_id, model, size=settings.ensemble_size,
            time_left=deadline.final_left if deadline.bounded else None, on_status=status, plan=plan,
            writes=deadline.writes,
        )
        if val_data is not None and ensemble.get("used") and isinstance(model, EnsembleModel):
            status("choosing the ensemble's weights on the validation rows")
            model, ensemble, val_prediction = revalidate(model, val_data, ensemble, settings.ensemble_size)
    # the pipeline the model is (when not an ensemble): the best one, or the one that took its place when its
    # refit failed the ensemble's check (see metalearn.search.ensemble._replace_best) or beat the ensemble on
    # the validation rows
    model_id = (ensemble or {}).get("model_config_id") or result.best_config_id
    calibration = None
    if pool is not None and model is not None:  # a temperature for its probabilities, a threshold for its labels
        model, calibration = _calibrated(dataset, pool, model, model_id, settings.calibrate, val_data, val_prediction)
    t = lap("refit", t)
    path = None
    written: dict[str, Any] | None = None
    if out_dir is not None:
        path = Path(out_dir)
        path.mkdir(parents=True, exist_ok=True)
        if model is not None:  # skops, never pickle: load it with metalearn.load_model_file
            from metalearn.pipelines.artifacts import write_artifact
            from metalearn.pipelines.signature import Signature

            # with the training schema: the model read back checks its rows as `metalearn predict` does
            written = write_artifact(model, path, Signature.of(dataset))
    lap("write", t)
    summary = _summary(dataset, result, strategy, recs, time.monotonic() - t0)
    summary["timings"] = {name: round(seconds, 3) for name, seconds in timings.items()}
    summary["stopped_by"] = result.stopped_by  # "trials", "time_limit", "cancelled"
    summary["time_budget"] = deadline.to_dict()  # limit, used, ratio, and what the budget changed
    summary["model"] = _model_summary(result, model, refit, path, written)
    if model is not None:  # what the model is: the best configuration, or None for an ensemble
        summary["model"]["config_id"] = None if (ensemble or {}).get("used") else model_id
    summary["ensemble"] = ensemble  # None: not asked (ensemble=False, refit=False) or no model
    summary["calibration"] = calibration  # None: no model, or neither ensemble nor calibrate asked
    summary["warnings"] = [w for w in (sparse_validation(dataset, settings.protocol),
                                       duplicated_rows(dataset, settings.protocol), target_outliers(dataset),
                                       mostly_missing(dataset), unresumed(result),
                                       no_better_than_constant(dataset, result)) if w]
    if path is not None:
        (path / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return OptimizeOutcome(result=result, model=model, summary=summary, out_dir=path)


def no_better_than_constant(dataset: Dataset, result: SearchResult) -> str | None:
    """A warning when the best pipeline's validation score is no better than a constant prediction's on the data
    (the mean of a regression target, the class frequencies of a class one: their score on all rows, a little
    better than out of sample): the search found no signal in its time — every pipeline that fits slowly timed out
    on a wide table and a linear one was kept at an RMSE of 6.5 where the mean gives 5.1, without a word.
    Single-target kinds; None otherwise."""
    from metalearn.data.metrics import get_metric, score

    kind = dataset.task.kind
    best = finite_or_none(result.best_score)
    if kind not in (TaskKind.BINARY, TaskKind.MULTICLASS, TaskKind.REGRESSION) or best is None:
        return None
    y = dataset.y.iloc[:, 0]
    n = len(y)
    if kind is TaskKind.REGRESSION:
        values = pd.to_numeric(y, errors="coerce").to_numpy(dtype=float)
        constant = Prediction([np.full(n, np.nanmean(values))], [None], [None])
        what = "the mean"
    else:
        freq = y.value_counts(normalize=True, sort=False)
        classes = freq.index.to_numpy(dtype=object)
        proba = np.tile(freq.to_numpy(dtype=float), (n, 1))
        constant = Prediction([np.full(n, classes[int(np.argmax(proba[0]))], dtype=object)], [proba], [classes])
        what = "the class frequencies"
    try:
        value = finite_or_none(score(dataset.task, dataset.y, constant))
    except MetaLearnError:
        return None
    metric = get_metric(dataset.task.metric)
    if value is None or (best > value + 1e-9 if metric.greater_is_better else best < value - 1e-9):
        return None
    return (f"the best pipeline's validation {dataset.task.metric} {best:.4g} is no better than a constant prediction's "
            f"({what}: {value:.4g} on all rows): the pipelines found no signal ({result.n_new - result.n_failed} of "
            f"{result.n_new} new trial(s) succeeded); give the search more time (--time-limit) or check the features")


def unresumed(result: SearchResult) -> str | None:
    """A warning when a trial budget smaller than the earlier runs of the data left some out (None otherwise)."""
    if not result.n_unresumed:
        return None
    better = (f", and the best of them ({result.metric} {result.unresumed_best:.4g}) beats every resumed one"
              if result.unresumed_best is not None else "")  # fmt: skip
    return (
        f"{result.n_unresumed} earlier run(s) of these data were not resumed: the trial budget "
        f"({result.n_resumed + result.n_new} used) is smaller than what earlier searches ran (the best "
        f"{result.n_resumed} were resumed){better}; raise the trial budget (--trials, n_trials) to use them all"
    )


def duplicated_rows(dataset: Dataset, protocol: EvalProtocol | None = None) -> str | None:
    """A warning when at least :data:`~metalearn.data.splits.DUPLICATED_SHARE` of the rows repeat another row
    exactly. Unless ``protocol.group_repeats`` (since stop 57) the copies of a row fall in different folds, so the
    validation scores are optimistic and favour pipelines that memorise rows (a QA run on rows repeated 4 times:
    CV ROC AUC 1.000 and a worse pipeline chosen, 0.861 on held-out rows against 0.881). None otherwise."""
    groups = duplicate_groups(dataset.X, dataset.y)
    if groups is None:
        return None
    n = len(groups) - int(np.unique(groups).size)
    grouped = protocol is not None and protocol.group_repeats and dataset.task.kind is not TaskKind.MULTILABEL
    if grouped:
        where = "each row's copies are kept in one validation fold (group_repeats)"
    else:
        where = ("their copies fall in different folds, so the validation scores are optimistic and favour pipelines "
                 "that memorise rows")
        where += ("" if dataset.task.kind is TaskKind.MULTILABEL else
                  "; if they are copies (by mistake, oversampling), keep each row's in one fold with --group-repeats "
                  "(group_repeats=True)")
    return (f"{n} of {dataset.n_rows} rows ({n / dataset.n_rows:.0%}) repeat another row exactly: {where}; drop "
            "the repeats unless they are real, independent observations")


#: fewer rows of a binary target's rarer class than this in what scores a trial (a fold, or the holdout) is warned of
SPARSE_VALIDATION_ROWS = 10


def sparse_validation(dataset: Dataset, protocol: EvalProtocol) -> str | None:
    """A warning when each trial of a binary search is scored on fewer than :data:`SPARSE_VALIDATION_ROWS` rows
    of the rarer class (a fold of cross-validation, or the holdout split, of the rows used): its scores, and the
    choice among pipelines, are then noise as much as signal (a QA search on 1,000 rows with 20 positives
    reported a holdout ROC AUC of 0.78 on labels that were pure noise). None otherwise."""
    if dataset.task.kind is not TaskKind.BINARY:
        return None
    counts = dataset.y.iloc[:, 0].value_counts()
    if len(counts) < 2:
        return None
    resolved = protocol.resolve(dataset.n_rows)
    used = min(dataset.n_rows, resolved.max_rows or dataset.n_rows) / dataset.n_rows
    holdout = resolved.mode == "holdout"
    per_score = resolved.holdout_fraction if holdout else 1.0 / resolved.n_folds
    rare = float(counts.min()) * used * per_score
    if rare >= SPARSE_VALIDATION_ROWS:
        return None
    where = "holdout split" if holdout else f"fold of {resolved.n_folds}-fold cross-validation"
    # a time limit small for the data is what moves a search to a holdout split or a subset of the rows
    larger = " (or a larger time limit, for cross-validation on all rows)" if holdout or used < 1.0 else ""
    return (
        f"each trial was scored on about {rare:.2g} row(s) of class {str(counts.idxmin())!r} (its {where}, of "
        f"{int(counts.min())} in the data): the validation scores and the pipeline chosen are noisy; more rows of "
        f"that class{larger} make them reliable"
    )


#: the share of a time budget the meta-features may take (they subsample harder when it is short)
METAFEATURE_SHARE = 0.1


def _metafeature_limits(deadline: Deadline) -> dict[str, Any]:
    """``ensure_metafeatures``' time bound and sample size under ``deadline`` (none without a limit):
    at most :data:`METAFEATURE_SHARE` of the budget, and ~40 sampled rows per second of budget."""
    if deadline.limit is None:
        return {}
    from metalearn.metalearning.metafeatures import DEFAULT_MAX_ROWS, DEFAULT_TIMEOUT, MIN_MAX_ROWS

    rows = int(min(DEFAULT_MAX_ROWS, max(4 * MIN_MAX_ROWS, 40 * deadline.limit)))
    return {"timeout": max(deadline.share(METAFEATURE_SHARE, cap=DEFAULT_TIMEOUT) or 0.0, 0.5), "max_rows": rows}


def _budgeted(settings: SearchSettings, dataset: Dataset, deadline: Deadline) -> SearchSettings:
    """``settings`` with the evaluation protocol its time limit can afford on ``dataset`` (a holdout split,
    a data subset: see :func:`~metalearn.search.deadline.budget_protocol`); the change is noted."""
    if deadline.limit is None:
        return settings
    from dataclasses import replace

    from metalearn.search.deadline import INITIAL_RESERVE

    seconds = deadline.limit * (1.0 - METAFEATURE_SHARE - INITIAL_RESERVE)  # budgeted, not measured: stable
    protocol, note = budget_protocol(settings.protocol, dataset.n_rows, seconds, settings.workers, dataset.X.shape[1])
    if not note:
        return settings
    deadline.note(note)
    return replace(settings, protocol=protocol)


def refit_best(dataset: Dataset, result: SearchResult, deadline: Deadline, seed: int = 0, keep: float = 0.0) -> Any:
    """The search's best configuration fit on all rows of ``dataset`` or, when its expected refit
    (``result.best_refit_seconds``) does not fit in what is left of a bounded ``deadline`` for the final fits
    (:meth:`~metalearn.search.deadline.Deadline.final_left`, less its margin),
    on the stratified subset of rows that does (noted in the deadline, hence in the summary). Under a
    bounded deadline a boosted-tree fit also stops adding rounds when that time is over, but not before
    :data:`~metalearn.search.deadline.FINAL_FIT_FLOOR_SHARE` of the budget
    (:func:`~metalearn.pipelines.models.boosting.fit_deadline`; noted too). That time, and the final fit's extra
    work (see :func:`~metalearn.search.evaluation.fit_final`), is what is left after ``keep`` seconds (the
    refits of an ensemble's other members, :meth:`~metalearn.search.ensemble.EnsemblePlan.refit_seconds`), but
    never less than the best pipeline's own expected refit when the time left holds it."""
    from metalearn.pipelines.models.boosting import fit_deadline

    assert result.best_values is not None
    data = dataset
    seconds = None
    n_targets = len(dataset.task.targets)
    if deadline.bounded:
        seconds = deadline.final_left() - RESERVE_MARGIN_SHARE * float(deadline.limit or 0.0)
        rows = final_rows(dataset.n_rows, result.best_refit_seconds, seconds, result.best_values, deadline.writes, n_targets)
        if rows < dataset.n_rows:
            data = dataset.subsample(rows, seed=seed)
            write = deadline.writes * write_estimate(result.best_values, dataset.n_rows, grown=False, n_targets=n_targets)
            written = f" and written (~{write:.0f} s)" if deadline.writes else ""
            deadline.note(
                f"the final model was fit on {data.n_rows} of {dataset.n_rows} rows: a refit on all rows "
                f"(~{result.best_refit_seconds or 0.0:.0f} s expected){written} did not fit in the {max(seconds, 0.0):.0f} s left"
            )
    if seconds is not None and result.best_refit_seconds is not None:
        # the best pipeline's own refit first: members whose refits do not fit beside it are left out of the
        # ensemble later. At 30 s on coil2000 a planned SVM member's 23.8 s left the best CatBoost pipeline
        # 1.5 s of boosting (test ROC AUC 0.728 -> 0.703)
        keep = min(keep, max(0.0, seconds - result.best_refit_seconds))
    # its final fit's extra work (a boosted model early-stopped on 90 % of the rows fit again on all of them,
    # a forest grown to more trees) only in what the ensemble's other members' refits leave, and the model files'
    # writes of its configured trees and of a forest's extra ones
    extra = None if seconds is None else seconds - max(keep, 0.0) - deadline.writes * write_estimate(
        result.best_values, data.n_rows, n_targets=n_targets)
    # the boosting rounds' clock bound: that time too, never under a share of the budget (never a one-round model)
    bounded = None if extra is None else max(extra, FINAL_FIT_FLOOR_SHARE * float(deadline.limit or 0.0))
    with fit_deadline(bounded) as bound:
        model = fit_final(
            data, get_space(dataset.task), result.best_values, extra_within=extra, rounds_per_row=result.best_rounds_per_row
        )
    if bound is not None and bound.hit:
        kept_for = f" ({keep:.1f} s of the {seconds:.1f} s left kept for the ensemble's other members)" if keep > 0 else ""
        deadline.note(
            f"the final model's boosting stopped adding rounds when its {bounded:.1f} s ran out{kept_for}; "
            "it keeps the rounds it had"
        )
    return model


def final_rows(
    n_rows: int, refit: float | None, seconds: float, values: dict[str, Any], writes: int = 0, n_targets: int = 1
) -> int:
    """How many of ``n_rows`` rows the final fit of ``values`` can afford in ``seconds`` when it is also written
    into ``writes`` model files: :func:`~metalearn.search.deadline.refit_rows` for the refit (expected to take
    ``refit`` seconds on all rows) and a forest's file grows with its trees' nodes, hence with the rows
    (:func:`~metalearn.search.ensemble.write_estimate` of its configured trees: it grows more only in the time
    left then): the most rows whose refit and writes fit."""
    if not writes:
        return refit_rows(n_rows, refit, seconds)

    def cost(rows: int) -> float:
        return writes * write_estimate(values, rows, grown=False, n_targets=n_targets) + (refit or 0.0) * rows_growth(rows, n_rows)

    if cost(n_rows) <= seconds:
        return n_rows
    low, high = min(n_rows, MIN_REFIT_ROWS), n_rows  # the fewest rows a final fit takes; and all of them
    while high - low > max(1, n_rows // 200):
        middle = (low + high) // 2
        low, high = (middle, high) if cost(middle) <= seconds else (low, middle)
    return low


def _validates(dataset: Dataset, settings: SearchSettings, plan: EnsemblePlan | None) -> bool:
    """Whether the final model would use validation rows (:mod:`metalearn.search.final_validation`): an
    ensemble is planned, or it may be calibrated (:func:`~metalearn.search.calibration.calibrates`)."""
    from metalearn.search.calibration import calibrates

    ensemble = plan is not None and plan.selection is not None and plan.selection.kept
    return ensemble or (settings.calibrate and calibrates(dataset.task))


def _calibrated(
    dataset: Dataset, pool: OOFPool, model: Any, best_config_id: str | None, enabled: bool, val: Dataset | None = None,
    val_prediction: Prediction | None = None,
) -> tuple[Any, dict[str, Any]]:
    """``model`` temperature-scaled when :func:`~metalearn.search.calibration.calibrate` says so, with the
    decision threshold :func:`~metalearn.search.calibration.tune_threshold` and the class weights
    :func:`~metalearn.search.calibration.tune_class_weights` choose (a single pipeline becomes an ensemble of
    one member), and the summary's ``calibration`` block (``threshold``, ``class_weights``: theirs). All are
    fit on the trials' out-of-fold predictions, or on the model's own predictions of the validation rows
    ``val`` when it was fit without them (``val_prediction`` when the caller has them already)."""
    from metalearn.search.calibration import calibrate, calibrates, tune_class_weights, tune_threshold

    task = dataset.task
    wanted = enabled and calibrates(task)
    if val is not None:
        try:
            oof = None
            if wanted:
                predicted = model.predict_task(val.X) if val_prediction is None else val_prediction
                oof = (predicted, val.y.reset_index(drop=True))
        except (MetaLearnError, ValueError):  # not scaled (the block says there are no predictions to fit it on)
            oof = None
        cal = calibrate(task, *(oof or (None, None)), enabled=enabled, rows="validation")
    else:
        oof = model_oof(task, pool, model, best_config_id) if wanted else None
        cal = calibrate(task, *(oof or (None, None)), n_rows=dataset.n_rows, enabled=enabled)
    # the labels of a label metric, on the same predictions: a binary one's decision threshold, a multi-label one's
    # thresholds, a multiclass one's class weights (never with a temperature: they apply to different metrics)
    rows = "validation" if val is not None else "out-of-fold"
    cut = tune_threshold(task, *(oof or (None, None)), enabled=enabled, rows=rows)
    weights = tune_class_weights(task, *(oof or (None, None)), enabled=enabled, rows=rows)
    block = {**cal.to_dict(), **({"validation": True} if val is not None else {}), "threshold": cut.to_dict(),
             "class_weights": weights.to_dict()}
    if cal.used or cut.used or weights.used:
        if not isinstance(model, EnsembleModel):
            model = EnsembleModel(task, [model], [1.0], [best_config_id or ""])
        if cal.used:
            model.temperature, model.biases = cal.temperature, cal.biases
        if cut.used:
            model.threshold = cut.threshold
        if weights.used:
            model.class_weights = weights.weights
    return model, block


def _model_summary(
    result: SearchResult, model: Any, refit: bool, path: Path | None, written: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Whether a model was refit and written, and the targets it predicts as constants (multilabel /
    multitarget columns constant in the data, see :mod:`metalearn.pipelines.models.task_models`)."""
    constant = [str(c) for c in getattr(model, "constant_targets_", None) or []]
    reason = ""
    if model is None:
        if result.best_values is None:
            reason = result.error or "no configuration succeeded"
        elif not refit:
            reason = "not refit (refit=False)"
    return {
        "refit": model is not None,
        "file": str(path / written["file"]) if written is not None and path is not None else None,
        "format": written["format"] if written is not None else None,
        "sha256": written["sha256"] if written is not None else None,
        "constant_targets": constant,
        "missing_reason": reason,
    }


def _summary(dataset: Dataset, result: SearchResult, strategy: str | None, recs: list[Any], seconds: float) -> dict[str, Any]:
    task = dataset.task
    reasons = task.kind_reasons or ("",) * task.n_targets
    return {
        "search_id": result.search_id,
        "dataset": {"name": dataset.name, "dataset_id": dataset.dataset_id, "origin": dataset.origin,
                    "n_rows": dataset.n_rows, "n_features": dataset.n_features,
                    "dates": {source: list(parts) for source, parts in dataset.dates}},
        "task": task.to_dict(),
        # the inferred (or given and checked) kind of every target, and why
        "targets": [
            {"name": name, "kind": str(kind), "reason": reason}
            for name, kind, reason in zip(task.targets, task.target_kinds, reasons, strict=True)
        ],
        "metric": result.metric,
        "greater_is_better": result.greater_is_better,
        "space": {"name": result.space, "version": result.space_version},
        "settings": result.settings,
        "warm_start": {"strategy": strategy, "recommended": [r.to_dict() for r in recs if hasattr(r, "to_dict")],
                       **({"composed": note} if (note := _composed_note(recs)) else {})},
        "best": {"score": finite_or_none(result.best_score), "config_id": result.best_config_id,
                 "values": result.best_values},
        "n_trials": len(result.trials),
        "n_resumed": result.n_resumed,
        "n_new": result.n_new,
        "n_failed": result.n_failed,
        "n_skipped": result.n_skipped,
        "n_duplicates": result.n_duplicates,
        "n_pruned": result.n_pruned,
        "n_cut": result.n_cut,
        "status": result.status,
        "seconds": seconds,
        "trajectory": [finite_or_none(x) for x in result.trajectory()],
        "trials": [
            {"number": t.number, "config_id": t.config_id, "family": family_of(t.values), "origin": t.origin,
             "sources": list(t.sources),
             "status": t.status, "score": finite_or_none(t.score), "seconds": round(t.seconds, 3),
             "budget": t.budget, "best_score": finite_or_none(t.best_score), "error": t.error,
             **({"note": t.note} if t.note else {})}
            for t in result.trials
        ],
    }


def _composed_note(recs: list[Any]) -> str | None:
    """What the summary says of a warm start composed per target (multitask), else None."""
    if not any(getattr(r, "composed", False) for r in recs):
        return None
    from metalearn.metalearning.composed import COMPOSED_NOTE

    return COMPOSED_NOTE


#: the scikit-learn estimators live in metalearn.search.estimators; importable from here as before
_ESTIMATORS = ("MetaLearnEstimator", "MetaLearnClassifier", "MetaLearnRegressor")


def __getattr__(name: str) -> Any:
    if name in _ESTIMATORS:  # imported on first use: estimators imports optimize from this module
        from metalearn.search import estimators

        return getattr(estimators, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
