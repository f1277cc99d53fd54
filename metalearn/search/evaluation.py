"""Evaluate one configuration of a search space on one dataset, safely.

:func:`evaluate_config` cross-validates (or, for large datasets, holds out) a configuration and
returns an :class:`EvalResult`. It never raises because of the configuration: exceptions, NaN
predictions, time-outs and memory errors become a result with status ``crash``/``timeout``/
``memout`` and a one-line error. Bad *arguments* (a budget outside (0, 1], a negative time limit)
still raise :class:`~metalearn.data.errors.InputError`.

With a time or memory limit the trial runs in a forked child process (:mod:`.sandbox`: BLAS/OpenMP
threads limited to 1, ``RLIMIT_AS`` capping its memory, the child's whole process group killed when
the time limit passes); without limits it runs inline in the calling process. With ``bound_fits`` the
boosted-tree fits of a time-limited trial stop adding rounds once their share of :data:`TRIAL_FIT_SHARE` of
the limit has passed (:func:`~metalearn.pipelines.models.boosting.fit_deadline`): such a trial is scored with
the rounds it had (its ``notes`` say so) instead of being killed without a score.
"""

from __future__ import annotations

import functools
import math
import signal
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from metalearn.data.dataset import Dataset
from metalearn.data.errors import ConfigurationError, InputError, MetaLearnError, SearchError
from metalearn.data.metrics import check_metric, compute_metrics, get_metric
from metalearn.data.prediction import Prediction
from metalearn.data.splits import cv_splits, duplicate_groups, holdout_split, plan_splits
from metalearn.data.task import Task, TaskKind
from metalearn.kb.records import RunRecord, run_id_for
from metalearn.pipelines.models.adaptive import final_fit
from metalearn.pipelines.models.boosting import (
    final_rounds,
    fit_deadline,
    fitted_rounds,
    preload,
    trial_rounds,
)
from metalearn.pipelines.spaces.base import SearchSpace, TaskModel
from metalearn.pipelines.spaces.components import boosting_libraries
from metalearn.search.sandbox import Emit, error_text, run_in_child, run_inline, status_of

__all__ = [
    "CUT_NOTE",
    "TRIAL_FIT_SHARE",
    "EvalProtocol",
    "EvalResult",
    "evaluate_config",
    "failed_result",
    "fit_final",
    "full_budget",
    "protocol_key_with_budget",
    "test_score",
    "to_run_record",
]

STATUSES = ("ok", "crash", "timeout", "memout")
_MIN_BUDGET_ROWS = 10
#: with ``bound_fits``, a time-limited trial's boosted-tree fits stop adding rounds once this share of the
#: limit has passed (each fold gets an equal part of what is left when it starts); the rest is for
#: predicting, scoring and the child process. Without it a boosted configuration too slow for the limit is
#: killed with no score: the warm-start benchmark's first recommendation on molecular_biology_promoters (a
#: 1,000-round CatBoost on 228 one-hot columns) ran out of its 10 s
TRIAL_FIT_SHARE = 0.8
#: how an :class:`EvalResult`'s ``notes`` start to say its boosted fits were stopped at the time limit
CUT_NOTE = "boosted fits stopped at the trial's time limit"


# --------------------------------------------------------------------------------------------
# protocol and result


@dataclass(frozen=True)
class EvalProtocol:
    """How a configuration is evaluated.

    ``mode="auto"`` uses ``n_folds``-fold CV for datasets with at most ``holdout_threshold`` rows
    and a single stratified holdout split (``holdout_fraction`` in test) above it (decided on the
    dataset's full size); ``"cv"``/``"holdout"`` force one. ``max_rows`` caps the rows used
    (stratified subsample, ``None`` = all). ``seed`` fixes the splits and subsamples.

    ``group_repeats`` keeps each row's exact copies in one fold (or on one side of the holdout split) when at
    least :data:`~metalearn.data.splits.DUPLICATED_SHARE` of the rows repeat another
    (:func:`~metalearn.data.splits.duplicate_groups`; not for multi-label targets): for rows repeated by
    mistake or by oversampling, whose copies in different folds score each other and make the validation
    reward pipelines that memorise rows. Off by default: equal rows of data with few distinct values (1027_ESL:
    263 distinct of 488) are real, independent observations. Its key ends in ``-grouped``.

    ``key`` is a short stable string identifying the protocol for any dataset (the default one is
    ``cv5-s0-holdout0.33-over20000``; a forced mode gives ``cv5-s0`` or ``holdout0.33-s0-sub20000``);
    store it as ``RunRecord.protocol``. :meth:`key_for` gives the key of the protocol as resolved
    for a dataset of ``n_rows`` rows (what was actually done: ``cv5-s0``, ``holdout0.33-s0-sub20000``);
    it is reported in ``EvalResult.protocol_key``.
    """

    n_folds: int = 5
    holdout_threshold: int | None = 20_000
    holdout_fraction: float = 0.33
    max_rows: int | None = None
    seed: int = 0
    mode: str = "auto"
    group_repeats: bool = False

    def __post_init__(self) -> None:
        if self.mode not in ("auto", "cv", "holdout"):
            raise InputError(f"protocol mode must be auto, cv or holdout, got {self.mode!r}")
        if not _is_int(self.n_folds) or self.n_folds < 2:
            raise InputError(f"n_folds must be an integer >= 2, got {self.n_folds!r}")
        if self.holdout_threshold is not None and (
            not _is_int(self.holdout_threshold) or self.holdout_threshold < 2
        ):
            raise InputError(
                f"holdout_threshold must be an integer >= 2 or None, got {self.holdout_threshold!r}"
            )
        if not isinstance(self.holdout_fraction, float | int) or not 0.0 < float(self.holdout_fraction) < 1.0:
            raise InputError(f"holdout_fraction must be in (0, 1), got {self.holdout_fraction!r}")
        if self.max_rows is not None and (not _is_int(self.max_rows) or self.max_rows < 10):
            raise InputError(f"max_rows must be an integer >= 10 or None, got {self.max_rows!r}")
        if not _is_int(self.seed):
            raise InputError(f"seed must be an integer, got {self.seed!r}")
        if not isinstance(self.group_repeats, bool):
            raise InputError(f"group_repeats must be true or false, got {self.group_repeats!r}")

    def uses_holdout(self, n_rows: int) -> bool:
        if self.mode != "auto":
            return self.mode == "holdout"
        return self.holdout_threshold is not None and n_rows > self.holdout_threshold

    def resolve(self, n_rows: int) -> EvalProtocol:
        """The concrete protocol (mode cv/holdout, ``max_rows`` only if it subsamples) for ``n_rows``."""
        mode = "holdout" if self.uses_holdout(n_rows) else "cv"
        max_rows = self.max_rows if self.max_rows is not None and n_rows > self.max_rows else None
        return EvalProtocol(
            self.n_folds, self.holdout_threshold, self.holdout_fraction, max_rows, self.seed, mode, self.group_repeats
        )

    @property
    def key(self) -> str:
        sub = f"-sub{self.max_rows}" if self.max_rows is not None else ""
        sub += "-grouped" if self.group_repeats else ""
        if self.mode == "cv":
            return f"cv{self.n_folds}-s{self.seed}{sub}"
        if self.mode == "holdout":
            return f"holdout{self.holdout_fraction:g}-s{self.seed}{sub}"
        if self.holdout_threshold is None:
            return f"cv{self.n_folds}-s{self.seed}{sub}"
        return f"cv{self.n_folds}-s{self.seed}-holdout{self.holdout_fraction:g}-over{self.holdout_threshold}{sub}"

    def subset_rows(self, dataset: Dataset) -> np.ndarray | None:
        """The sorted row positions of ``dataset`` this protocol evaluates on when it takes a subset
        (``max_rows``, stratified, seeded by ``seed``); None when it uses every row."""
        resolved = self.resolve(dataset.n_rows)
        return dataset.subsample_rows(resolved.max_rows, seed=resolved.seed) if resolved.max_rows else None

    def key_for(self, n_rows: int) -> str:
        """The key of this protocol applied to a dataset of ``n_rows`` rows (stored in RunRecord)."""
        return self.resolve(n_rows).key


@dataclass(frozen=True)
class EvalResult:
    """The outcome of one evaluation.

    ``metrics`` are means over folds (NaN folds skipped) in each metric's own direction; ``score``
    is the task metric and ``cost`` its lower-is-better form (both NaN unless status is ``ok``).
    ``fit_seconds``/``predict_seconds`` are totals over folds; ``fold_scores`` the task metric per
    completed fold; ``n_rows_used`` the rows of the (possibly subsampled) dataset evaluated and
    ``n_train_rows`` the mean training rows per fold (after ``budget``).
    """

    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    score: float = math.nan
    cost: float = math.nan
    fit_seconds: float = 0.0
    predict_seconds: float = 0.0
    error: str = ""
    n_rows_used: int = 0
    budget: float | None = None
    fold_scores: tuple[float, ...] = ()
    metric: str = ""
    protocol_key: str = ""
    n_folds: int = 0
    n_train_rows: int = 0
    wall_seconds: float = 0.0
    notes: str = ""
    # the part of ``notes`` saying the boosted fits were stopped at the time limit ("" when they were not)
    cut_note: str = ""
    # a full-budget trial's early-stopped boosting rounds per training row (boosting.trial_rounds: every fold's
    # one boosted fit early-stopped, none was cut), for the final fit (fit_final's rounds_per_row); never stored
    rounds_per_row: float | None = None
    # the out-of-fold predictions (metalearn.search.ensemble.OutOfFold) when asked for; never stored
    oof: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    @property
    def ok(self) -> bool:
        return self.status == "ok" and not math.isnan(self.score)


def _is_int(v: Any) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


def full_budget(budget: float | None) -> bool:
    """Whether a run's ``budget`` is the full data: ``None`` (a search without fidelities, and runs
    stored before multi-fidelity runs kept their budget) and ``1.0`` are the same full budget."""
    return budget is None or budget >= 1.0


def protocol_key_with_budget(protocol_key: str, budget: float | None) -> str:
    """``protocol_key`` with a ``-b<budget>`` suffix when ``budget < 1`` (so fidelities never collide).

    A full budget (``None`` or ``1.0``) adds nothing: a full-budget run of a multi-fidelity search is the
    same evaluation, with the same run id, as the run of a search without fidelities.
    """
    if budget is None or full_budget(budget):
        return protocol_key
    suffix = f"-b{float(budget):.3g}"
    return protocol_key if protocol_key.endswith(suffix) else protocol_key + suffix


def to_run_record(
    result: EvalResult,
    dataset_id: str,
    config_id: str,
    protocol_key: str | None = None,
    source: str = "",
    search_id: str | None = None,
) -> RunRecord:
    """The KB record of an evaluation. ``protocol_key`` defaults to ``result.protocol_key``; the
    budget is appended to it when below 1. ``RunRecord.budget`` is the evaluation's budget as given
    (``1.0`` for a full-budget trial of a multi-fidelity search, ``None`` without fidelities); readers
    treat both as the full budget (:func:`full_budget`)."""
    key = protocol_key_with_budget(protocol_key or result.protocol_key, result.budget)
    if not key:
        raise InputError("to_run_record needs a protocol key; pass protocol.key_for(dataset.n_rows)")
    ok = result.status == "ok"
    budget = None if result.budget is None else min(result.budget, 1.0)
    return RunRecord(
        run_id=run_id_for(dataset_id, config_id, key),
        dataset_id=dataset_id,
        config_id=config_id,
        protocol=key,
        status=result.status,
        metric=result.metric,
        score=float(result.score) if ok else math.nan,
        cost=float(result.cost) if ok else math.nan,
        metrics=dict(result.metrics),
        fit_seconds=float(result.fit_seconds),
        predict_seconds=float(result.predict_seconds),
        error=result.error,
        source=source,
        search_id=search_id,
        budget=budget,
        n_rows_used=int(result.n_rows_used) if result.n_rows_used else None,
    )


# --------------------------------------------------------------------------------------------
# the trial itself


@dataclass(frozen=True)
class _Trial:
    dataset: Dataset
    space: SearchSpace
    values: dict[str, Any]
    folds: list[tuple[np.ndarray, np.ndarray]]
    keep_predictions: bool = False
    fit_within: float | None = None  # seconds from the start by which the folds' boosted fits stop


def _check_prediction(pred: Any, task: Task, n: int) -> None:
    if not isinstance(pred, Prediction):
        raise TypeError(f"predict_task returned {type(pred).__name__}, expected a Prediction")
    if pred.n_targets != task.n_targets:
        raise ValueError(f"the model predicted {pred.n_targets} targets, the task has {task.n_targets}")
    for name, tk, v, p in zip(task.targets, task.target_kinds, pred.values, pred.probas, strict=True):
        if len(v) != n:
            raise ValueError(f"the model predicted {len(v)} rows for target {name!r}, expected {n}")
        if tk is TaskKind.REGRESSION:
            arr = np.asarray(v, dtype=np.float64)
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"predictions for target {name!r} contain NaN or inf")
        else:
            if bool(pd.isna(pd.Series(np.asarray(v, dtype=object))).any()):
                raise ValueError(f"predicted labels for target {name!r} contain missing values")
            if p is not None and not np.all(np.isfinite(np.asarray(p, dtype=np.float64))):
                raise ValueError(f"probabilities for target {name!r} contain NaN or inf")


def _execute(trial: _Trial, emit: Emit, catch: tuple[type[BaseException], ...]) -> None:
    """Run every fold; emit ("fold", i, metrics, fit_s, predict_s) per fold (plus the fold's prediction
    with ``keep_predictions``), ("cut", i) before it when its boosted fits stopped at ``fit_within``, else
    ("rounds", i, rounds, rows) when its one boosted fit early-stopped (:func:`fitted_rounds`),
    then ("done",) or ("error", status, text) at the first failure."""
    ds = trial.dataset
    k = len(trial.folds)
    started = time.monotonic()
    for i, (tr, te) in enumerate(trial.folds):
        where = f"fold {i + 1}/{k}"
        within = None
        if trial.fit_within is not None:
            within = max(trial.fit_within - (time.monotonic() - started), 0.0) / (k - i)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = trial.space.build(trial.values, ds.task, ds.categorical)
                X_tr = ds.X.iloc[tr].reset_index(drop=True)
                y_tr = ds.y.iloc[tr].reset_index(drop=True)
                X_te = ds.X.iloc[te].reset_index(drop=True)
                t0 = time.perf_counter()
                with fit_deadline(within) as bound:
                    model.fit(X_tr, y_tr)
                t1 = time.perf_counter()
                pred = model.predict_task(X_te)
                t2 = time.perf_counter()
                _check_prediction(pred, ds.task, len(te))
                metrics = compute_metrics(ds.task, ds.y.iloc[te].reset_index(drop=True), pred)
        except catch as exc:
            emit(("error", status_of(exc), error_text(exc, where)))
            return
        if bound is not None and bound.hit:
            emit(("cut", i))
        elif (rounds := fitted_rounds(model)) is not None:
            emit(("rounds", i, *rounds))
        emit(("fold", i, metrics, t1 - t0, t2 - t1, *((pred,) if trial.keep_predictions else ())))
    emit(("done",))


# --------------------------------------------------------------------------------------------
# evaluation


def _budget_rows(task: Task, y: pd.DataFrame, train: np.ndarray, budget: float, seed: int) -> np.ndarray:
    """A ``budget`` fraction of the training rows (stratified like the splits; at least 10 rows)."""
    n = len(train)
    n_keep = max(math.ceil(budget * n), min(n, _MIN_BUDGET_ROWS))
    if n_keep >= n:
        return train
    keep, _ = holdout_split(task, y.iloc[train].reset_index(drop=True), (n - n_keep) / n, seed)
    return train[keep]


def _failure(
    status: str, error: str, metric: str, key: str, n_rows: int, budget: float | None, **kw: Any
) -> EvalResult:
    return EvalResult(
        status=status,
        error=error,
        metric=metric,
        protocol_key=key,
        n_rows_used=n_rows,
        budget=budget,
        **kw,
    )


def failed_result(
    dataset: Dataset, protocol: EvalProtocol, budget: float | None, exc: BaseException
) -> EvalResult:
    """A crash result for an evaluation that never reported one (its worker process failed, e.g. a
    Dask worker that died), so that the search records it like any failed trial."""
    resolved = protocol.resolve(dataset.n_rows)
    metric = check_metric(dataset.task.kind, dataset.task.metric)
    text = f"WorkerError: {type(exc).__name__}: {error_text(exc) if isinstance(exc, Exception) else exc}"
    return _failure("crash", text, metric, resolved.key, dataset.n_rows, budget)


def _mean_metrics(per_fold: Sequence[dict[str, float]]) -> dict[str, float]:
    names: list[str] = []
    for m in per_fold:
        names.extend(n for n in m if n not in names)
    out: dict[str, float] = {}
    for name in names:
        vals = np.array([m.get(name, math.nan) for m in per_fold], dtype=float)
        out[name] = float(np.nanmean(vals)) if np.any(~np.isnan(vals)) else math.nan
    return out


def _cut_note(cut: Sequence[int], n_folds: int, time_limit: float | None) -> str:
    if not cut:
        return ""
    return (
        f"{CUT_NOTE} in {len(cut)} of {n_folds} folds (the {time_limit:g} s limit): scored with fewer "
        "rounds than configured"
    )


def evaluate_config(
    dataset: Dataset,
    space: SearchSpace,
    values: Mapping[str, Any],
    protocol: EvalProtocol | None = None,
    time_limit: float | None = None,
    memory_limit_mb: int | None = None,
    budget: float | None = None,
    keep_predictions: bool = False,
    bound_fits: bool = False,
) -> EvalResult:
    """Cross-validate ``space.build(values, ...)`` on ``dataset`` under ``protocol``.

    ``budget`` in (0, 1] is the fraction of each fold's training rows used (multi-fidelity; test
    folds stay whole). ``keep_predictions`` returns a successful full-budget trial's out-of-fold
    predictions in ``EvalResult.oof`` (:class:`metalearn.search.ensemble.OutOfFold`: the folds'
    validation predictions in row order; for a holdout, the holdout rows). ``time_limit`` (seconds, whole trial) and ``memory_limit_mb`` (memory the
    trial may allocate on top of what the process already holds) run the trial in a child process;
    ``bound_fits`` then stops its boosted fits at :data:`TRIAL_FIT_SHARE` of ``time_limit`` (a trial scored
    with fewer rounds, see the module docstring) rather than letting a slow fit be killed at the limit.
    Never raises for a failing configuration; see the module docstring.
    """
    protocol = protocol or EvalProtocol()
    if budget is not None and (not isinstance(budget, float | int) or not 0.0 < float(budget) <= 1.0):
        raise InputError(f"budget must be a fraction in (0, 1], got {budget!r}")
    if time_limit is not None and (not isinstance(time_limit, float | int) or not time_limit > 0):
        raise InputError(f"time_limit must be a positive number of seconds, got {time_limit!r}")
    if memory_limit_mb is not None and (not _is_int(memory_limit_mb) or memory_limit_mb <= 0):
        raise InputError(f"memory_limit_mb must be a positive integer, got {memory_limit_mb!r}")
    budget = float(budget) if budget is not None else None
    task = dataset.task
    metric = check_metric(task.kind, task.metric)
    resolved = protocol.resolve(dataset.n_rows)
    key = resolved.key
    started = time.monotonic()

    try:
        clean = space.validate(values)
    except (ConfigurationError, ValueError, KeyError, TypeError) as exc:
        text = error_text(exc)
        if not isinstance(exc, ConfigurationError):
            text = f"ConfigurationError: {text}"
        return _failure("crash", text, metric, key, dataset.n_rows, budget)

    subsample = resolved.subset_rows(dataset)
    data = dataset if subsample is None else dataset.take_rows(subsample)
    notes = ""
    if resolved.mode == "holdout":
        groups = duplicate_groups(data.X, data.y) if resolved.group_repeats else None
        folds = [holdout_split(task, data.y, resolved.holdout_fraction, resolved.seed, groups)]
    else:
        plan = plan_splits(task, data.y, resolved.n_folds)
        notes = plan.reason
        folds = cv_splits(data, resolved.n_folds, resolved.seed, group_repeats=resolved.group_repeats)
    if budget is not None and budget < 1.0:
        folds = [
            (_budget_rows(task, data.y, tr, budget, resolved.seed + i), te)
            for i, (tr, te) in enumerate(folds)
        ]
    n_train = round(float(np.mean([len(tr) for tr, _ in folds])))

    keep = keep_predictions and full_budget(budget)
    fit_within = TRIAL_FIT_SHARE * float(time_limit) if bound_fits and time_limit is not None else None
    work = functools.partial(_execute, _Trial(data, space, clean, folds, keep, fit_within))
    if time_limit is None and memory_limit_mb is None:
        out = run_inline(work)
    else:
        preload(boosting_libraries(clean))  # imported once here, not in every trial's forked child
        out = run_in_child(work, time_limit, memory_limit_mb)

    out.folds.sort(key=lambda f: f[0])
    per_fold = [f[1] for f in out.folds]
    cut_note = _cut_note(out.cut, len(folds), time_limit)
    common: dict[str, Any] = {
        "fit_seconds": float(sum(f[2] for f in out.folds)),
        "predict_seconds": float(sum(f[3] for f in out.folds)),
        "fold_scores": tuple(float(m.get(metric, math.nan)) for m in per_fold),
        "n_folds": len(folds),
        "n_train_rows": n_train,
        "wall_seconds": time.monotonic() - started,
        "notes": "; ".join(n for n in (notes, cut_note) if n),
        "cut_note": cut_note,
        "rounds_per_row": (
            trial_rounds([out.rounds.get(f[0]) for f in out.folds])
            if full_budget(budget) and not out.cut and len(out.folds) == len(folds)
            else None
        ),
    }
    if out.timed_out:
        text = (
            f"TrialTimeoutError: the trial exceeded its {time_limit:g} s time limit "
            f"after {len(out.folds)}/{len(folds)} folds"
        )
        return _failure("timeout", text, metric, key, data.n_rows, budget, **common)
    if out.final is None or out.final[0] not in ("done", "error"):
        code = out.exitcode
        sig = -code if code is not None and code < 0 else None
        signame = (
            signal.Signals(sig).name if sig is not None and sig in signal.Signals._value2member_map_ else ""
        )
        if memory_limit_mb is not None and sig in (
            signal.SIGKILL,
            signal.SIGABRT,
            signal.SIGSEGV,
            signal.SIGBUS,
        ):
            text = f"MemoryError: the trial process was killed by {signame} under a {memory_limit_mb} MB memory limit"
            return _failure("memout", text, metric, key, data.n_rows, budget, **common)
        how = f"signal {signame}" if signame else f"exit code {code}"
        text = f"RuntimeError: the trial process died without a result ({how})"
        return _failure("crash", text, metric, key, data.n_rows, budget, **common)
    if out.final[0] == "error":
        return _failure(str(out.final[1]), str(out.final[2]), metric, key, data.n_rows, budget, **common)

    metrics = _mean_metrics(per_fold)
    score = metrics.get(metric, math.nan)
    if math.isnan(score):
        text = (
            f"ValueError: metric {metric} is undefined on every fold (e.g. a single class in each test fold)"
        )
        return _failure("crash", text, metric, key, data.n_rows, budget, metrics=metrics, **common)
    oof = None
    if keep and len(out.predictions) == len(folds):
        from metalearn.search.ensemble import assemble_oof

        oof = assemble_oof(
            task, [(folds[i][1], out.predictions[i]) for i in range(len(folds))], data.y, subsample
        )
    return EvalResult(
        status="ok",
        metrics=metrics,
        score=float(score),
        cost=get_metric(metric).to_cost(score),
        error="",
        n_rows_used=data.n_rows,
        budget=budget,
        metric=metric,
        protocol_key=key,
        oof=oof,
        **common,
    )


def fit_final(
    dataset: Dataset,
    space: SearchSpace,
    values: Mapping[str, Any],
    *,
    extra_within: float | None = None,
    rounds_per_row: float | None = None,
) -> TaskModel:
    """Fit the configuration on all rows of ``dataset`` (in this process, no limits).

    It is a final fit (:func:`~metalearn.pipelines.models.adaptive.final_fit`): a boosted-tree model that
    early-stopped on a validation part of the rows is fitted again on all of them with the rounds early
    stopping chose, and a random / extra-trees forest grows to 300 trees, each when expected to end
    within ``extra_within`` seconds (None: always). With ``rounds_per_row`` (the trials' early-stopped rounds,
    ``EvalResult.rounds_per_row``) a boosted-tree model fits that many rounds per row on all rows at once
    instead (:func:`~metalearn.pipelines.models.boosting.final_rounds`).

    Raises ``ConfigurationError`` for an invalid configuration and ``SearchError`` when the model
    fails to fit.
    """
    clean = space.validate(values)
    model = space.build(clean, dataset.task, dataset.categorical)
    try:
        with warnings.catch_warnings(), final_fit(extra_within), final_rounds(rounds_per_row):
            warnings.simplefilter("ignore")
            model.fit(dataset.X, dataset.y)
    except MetaLearnError:
        raise
    except Exception as exc:
        raise SearchError(f"the final model failed to fit on {dataset.name}: {error_text(exc)}") from exc
    return model


def test_score(
    model: TaskModel, X: pd.DataFrame, y: pd.DataFrame | pd.Series, task: Task
) -> dict[str, float]:
    """Every metric of ``task`` for ``model`` on held-out ``(X, y)``."""
    y_df = y.to_frame() if isinstance(y, pd.Series) else y
    if len(X) != len(y_df):
        raise InputError(f"X has {len(X)} rows but y has {len(y_df)}; give one target row per feature row")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pred = model.predict_task(X)
    return compute_metrics(task, y_df, pred)


test_score.__test__ = False  # type: ignore[attr-defined]  # not a pytest test when imported in tests
