"""Warm-started Bayesian optimisation of a task's pipeline with SMAC3, writing every trial to the KB.

The loop is our own ask/tell around SMAC's ``HyperparameterOptimizationFacade`` (or the multi-fidelity
facade on data-subset budgets), so that

- configurations recommended from *other* datasets enter SMAC's initial design (``additional_configs``)
  and are evaluated fresh;
- runs already in the KB for the *same* dataset (same fingerprint and protocol; a configuration of any
  space version still valid in the current one) are *told* to SMAC instead of re-run, and count
  toward ``n_trials`` — a second search resumes the first (a multi-fidelity search also tells the
  low-budget runs, at their budget, so Hyperband goes on where it stopped);
- a multi-fidelity search ends with a full-budget evaluation: its last trial is kept for the best
  candidate when no configuration has succeeded at full budget yet (Hyperband's first bracket alone
  needs more trials than a small search has), since only full-budget scores pick the incumbent;
- every trial is written to the KB the moment it finishes (a crash loses at most the running trial);
- a failing configuration is a failed run with its error, never the end of the search;
- with a time limit (a :class:`~metalearn.search.deadline.Deadline`, made here or handed down by
  ``optimize`` for the whole job) each trial gets at most the search's time left, which keeps a reserve
  for the refit on all data estimated from the trials' measured fit times (and, multi-fidelity, for the
  final full-budget evaluation);
- with ``workers > 1`` (or a Dask ``scheduler``) ``workers`` trials run at once on Dask: SMAC is asked
  for a new configuration whenever one finishes (the warm-start configurations first) and told as they
  finish; the KB is written by this process only. ``workers=1`` is the sequential loop.

What a search is asked to do is a :class:`metalearn.search.settings.SearchSettings`.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import math
import re
import tempfile
import time
import uuid
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from ConfigSpace import Configuration, ConfigurationSpace

from metalearn.data.dataset import Dataset
from metalearn.data.errors import CancelledError, InputError, NotFoundError, option
from metalearn.data.metrics import get_metric
from metalearn.data.task import TaskKind
from metalearn.kb.base import KnowledgeBase
from metalearn.kb.owners import current_owner
from metalearn.kb.records import ConfigurationRecord, RunRecord, SearchRecord, utcnow
from metalearn.pipelines.spaces import get_space
from metalearn.pipelines.spaces.base import SearchSpace
from metalearn.search.deadline import (
    FINAL_EXTRA_SHARE,
    INITIAL_RESERVE,
    MIN_TRIAL_SECONDS,
    PLANNED_MEMBERS_SAFETY,
    Deadline,
    refit_estimate,
    refit_factor,
    search_reserve,
)
from metalearn.search.ensemble import Candidate, OOFPool, family_of
from metalearn.search.evaluation import (
    EvalProtocol,
    EvalResult,
    evaluate_config,
    failed_result,
    full_budget,
    protocol_key_with_budget,
    to_run_record,
)
from metalearn.search.settings import SearchSettings  # also importable from here


@dataclass(frozen=True)
class Trial:
    """One finished trial of a search, as reported to progress callbacks and in the summary."""

    number: int
    config_id: str
    values: dict[str, Any]
    # "resumed", "recommendation:<rank>", "initial-design", "smac", "random", "default", "local" (a neighbour
    # of the best configuration so far, see ``_local_neighbour``) and "full-budget" (the full-budget
    # evaluation a multi-fidelity search ends with)
    origin: str
    status: str
    score: float
    cost: float
    seconds: float
    budget: float | None  # the data fraction of a multi-fidelity trial (1.0: full); None without fidelities
    best_score: float
    best_config_id: str | None
    error: str = ""
    sources: tuple[str, ...] = ()  # KB dataset names a recommended configuration came from
    # set when the trial's boosted fits were stopped at its time limit (scored with fewer rounds than configured)
    note: str = ""


@dataclass
class SearchResult:
    search_id: str
    dataset_id: str
    dataset_name: str
    kind: str
    metric: str
    greater_is_better: bool
    space: str
    space_version: str
    settings: dict[str, Any]
    trials: list[Trial]
    best_config_id: str | None
    best_values: dict[str, Any] | None
    best_score: float
    n_resumed: int
    n_new: int
    n_failed: int
    recommendations: list[dict[str, Any]]
    seconds: float
    status: str = "done"
    error: str = ""  # why the search failed (no trial succeeded: how many ran and failed, or the time limit)
    # what ended the search: "trials" (n_trials reached), "time_limit", "exhausted" (no new
    # configuration), "cancelled", "failed"
    stopped_by: str = "trials"
    # seconds a refit of the best configuration on all rows is expected to take (from its trials' measured
    # fits; None when unknown, e.g. only resumed or lower-budget trials)
    best_refit_seconds: float | None = None
    # the best configuration's trials' early-stopped boosting rounds per training row (``EvalResult.rounds_per_row``)
    # for its final fit (``fit_final``); None when unknown (not boosted, a trial cut or resumed, a lower budget)
    best_rounds_per_row: float | None = None
    # SMAC's proposals skipped without a fit because they cannot fit their data (a boosted model of too few
    # steps, see ``SearchSpace.underfit_reason``); they are not trials and are not stored
    n_skipped: int = 0
    # SMAC's proposals that build the same model as a trial already scored in this search (they differ only
    # below a count's integer part, see ``SearchSpace.effective``): told that trial's cost, not run again
    n_duplicates: int = 0
    # trials scored with boosted fits stopped at their time limit (see ``Trial.note``)
    n_cut: int = 0
    # recommendations a time-limited search skipped without a fit: their model family had already scored
    # far worse than the best pipeline on this dataset (see :data:`OUTCLASSED_FAMILY_FACTOR`)
    n_pruned: int = 0
    # earlier runs of these data (same protocol) left out because the trial budget is smaller than their count,
    # and the best score among them when it beats every resumed trial (else None)
    n_unresumed: int = 0
    unresumed_best: float | None = None

    def trajectory(self) -> list[float]:
        """Best score after each trial (NaN until a trial succeeded)."""
        return [t.best_score for t in self.trials]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["trajectory"] = self.trajectory()
        return json.loads(json.dumps(d, default=str, allow_nan=True))


def surrogate_model(configspace: Any, seed: int, log_y: bool = True) -> Any:
    """SMAC's random-forest surrogate (its defaults: 10 trees, random splits, leaves of at least 3
    points), on one core, with the number of leaves left unbounded instead of SMAC's ``2**20``.

    SMAC 2's forest is scikit-learn's, and a ``max_leaf_nodes`` makes scikit-learn grow each tree best
    first in a tree allocated for that many leaves: 2**20 took 85 ms per tree, 0.86 s per surrogate fit
    on 60 configurations (0.01 s without the bound), refit every few proposals: 4.4 s of a 24 s search
    on a 1,000-row dataset. With fewer observations than 2**20 the bound never binds: the trees split
    until their leaves are as small as allowed either way (the same sizes and depths), and differ only
    in the random draws the other growth order takes.
    """
    from smac.model.random_forest import RandomForest

    # SMAC annotates max_leaf_nodes as int; it passes it on to scikit-learn, which takes None
    return RandomForest(configspace, log_y=log_y, n_jobs=1, seed=seed, max_leaf_nodes=None)  # type: ignore[arg-type]


def ordered_acquisition_maximizer(facade_cls: Any, scenario: Any) -> Any:
    """SMAC's default acquisition maximizer, with the local-search start points in a fixed order.

    SMAC 2 de-duplicates the start points through a ``set`` of Configurations, whose hash is the hash of
    a string: their order (and so the local search, and the configuration proposed) then depends on
    ``PYTHONHASHSEED``, i.e. differs between processes. A build resumed in a new process (or run on Dask
    workers) would not replay the exploration exactly, and a seeded search would not be reproducible.
    Sorting the de-duplicated points fixes it.
    """
    maximizer = facade_cls.get_acquisition_maximizer(scenario)
    maximizer._local_search.__class__ = _ordered_local_search_class()
    return maximizer


@functools.cache
def _ordered_local_search_class() -> type:
    from smac.acquisition.maximizer.local_search import LocalSearch

    class OrderedLocalSearch(LocalSearch):
        def _get_init_points_from_previous_configs(self, previous_configs: Any, n_points: int,
                                                   additional_start_points: Any) -> list[Any]:
            points = super()._get_init_points_from_previous_configs(previous_configs, n_points,
                                                                    additional_start_points)
            return sorted(points, key=repr)

    return OrderedLocalSearch


def resumable_intensifier(facade_cls: Any, scenario: Any) -> Any:
    """SMAC's Hyperband intensifier, able to go on from low-budget runs told from the KB.

    A resumed multi-fidelity search tells SMAC the runs of earlier searches, at their budgets; Hyperband
    puts their configurations in its first stage and compares them on that stage's budget. SMAC 2 checks
    that every configuration has been evaluated there with ``get_instance_seed_budget_keys``, which by
    default lists only a configuration's *highest* budget: a told configuration that an earlier search
    had promoted to a higher budget never counts as evaluated at the lowest one, the stage never
    finishes, and the search only ever samples new configurations at the lowest budget. Checking every
    observed budget lets the stage finish and Hyperband promote as it would have.
    """
    intensifier = facade_cls.get_intensifier(scenario)
    base: Any = type(intensifier)
    intensifier.__class__ = _resumable_hyperband_class(base)
    return intensifier


@functools.cache
def _resumable_hyperband_class(base: Any) -> type:
    class ResumableHyperband(base):  # type: ignore[misc,valid-type]
        def _get_best_configs(self, configs: Any, bracket: int, stage: int, from_keys: Any) -> Any:
            rh = self.runhistory
            rh.get_instance_seed_budget_keys = functools.partial(  # type: ignore[method-assign]
                type(rh).get_instance_seed_budget_keys, rh, highest_observed_budget_only=False
            )
            try:
                return super()._get_best_configs(configs, bracket, stage, from_keys)
            finally:
                del rh.get_instance_seed_budget_keys  # the class's method again

    return ResumableHyperband


def smac_cost(metric: str, score: float) -> float:
    """The positive cost SMAC minimises (its surrogate models log(cost)).

    :meth:`~metalearn.data.metrics.Metric.to_loss`: ``1 - score`` for greater-is-better metrics (bounded
    above by 1), else the score.
    """
    return get_metric(metric).to_loss(score)


def crash_cost_for(dataset: Dataset) -> float:
    """A finite cost for failed trials, worse than any sane configuration on this dataset."""
    m = get_metric(dataset.task.metric)
    if m.greater_is_better:
        return 2.0  # score -1: worse than chance for every bounded metric we use
    if dataset.task.kind is TaskKind.REGRESSION or "rmse" in m.name or "mae" in m.name:
        y = dataset.y.to_numpy(dtype=float)
        return float(10.0 * max(np.nanstd(y), 1e-6))
    n_classes = max(2, int(dataset.y.nunique().max()))
    return float(10.0 * math.log(n_classes))


class _Best:
    def __init__(self, greater: bool) -> None:
        self.greater = greater
        self.score = math.nan
        self.config_id: str | None = None
        self.values: dict[str, Any] | None = None

    def offer(self, score: float, config_id: str, values: dict[str, Any], budget: float | None) -> None:
        if not full_budget(budget):
            return  # the incumbent is chosen at full fidelity only
        if self.beaten_by(score):
            self.score, self.config_id, self.values = score, config_id, values

    def beaten_by(self, score: float) -> bool:
        """Whether ``score`` (at full fidelity) is better than the best so far (any score is, at first)."""
        return not math.isnan(score) and (
            math.isnan(self.score) or (score > self.score if self.greater else score < self.score)
        )


def _space_config(cs: ConfigurationSpace, values: dict[str, Any], origin: str) -> Configuration:
    cfg = Configuration(cs, values=values)
    cfg.origin = origin
    return cfg


def previous_runs(
    kb: KnowledgeBase, dataset_id: str, space: SearchSpace, protocol: EvalProtocol, *, low_budgets: bool = False
) -> list[RunRecord]:
    """Runs of this dataset already in the KB under this space (of any version, when the configuration is
    valid in the current one) and protocol: the full-budget ones (budget ``None`` or ``1.0``), and with ``low_budgets`` also those on a data subset (their protocol
    key carries the budget, see :func:`~metalearn.search.evaluation.protocol_key_with_budget`)."""
    runs = kb.list_runs(dataset_id=dataset_id)
    if not runs:
        return []
    configs = kb.get_configurations({r.config_id for r in runs})
    out = []
    for r in runs:
        c = configs.get(r.config_id)
        if c is None or c.space != space.name or not space.is_valid(dict(c.values)):
            continue
        if full_budget(r.budget):
            if r.protocol != protocol.key:
                continue
        elif not low_budgets or r.protocol != protocol_key_with_budget(protocol.key, r.budget):
            continue
        out.append(r)
    return out


def scored_by(run: RunRecord, metric: str, to_cost: Callable[[float], float]) -> RunRecord | None:
    """``run`` as a run of a search by ``metric`` (``to_cost``: that metric's cost); None when it lacks it.

    Every run stores all the metrics of its kind (``metrics``), while ``score`` and ``cost`` are its search's
    main metric: a search by another metric on the same data resumed them as its own (``--metric accuracy``
    after a log-loss search took the log losses for accuracies and kept the worst pipeline)."""
    if run.metric == metric:
        return run
    if run.status != "ok":
        return replace(run, metric=metric)
    value = run.metrics.get(metric)
    if value is None or not math.isfinite(value):
        return None
    return replace(run, metric=metric, score=float(value), cost=to_cost(float(value)))


def run_search(
    dataset: Dataset,
    kb: KnowledgeBase,
    settings: SearchSettings | None = None,
    *,
    recommendations: Sequence[Any] = (),
    on_trial: Callable[[Trial], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    search_id: str | None = None,
    source: str = "search",
    deadline: Deadline | None = None,
    oof_pool: OOFPool | None = None,  # receives the full-budget trials' out-of-fold predictions (ensemble)
    on_status: Callable[[str], None] | None = None,  # a line of progress (the resumed trials evaluated again)
) -> SearchResult:
    """Run a (warm-started) search on ``dataset``, writing every trial to ``kb``.

    ``recommendations`` are objects with ``config_id`` and (optionally) ``values``, ``rank``,
    ``sources`` — usually from :func:`metalearn.metalearning.advisor.Advisor.recommend`; they are used when
    ``settings.warm_start`` is true. The dataset record must already be in the KB (see
    :func:`metalearn.kb.shipped.ensure_metafeatures`, or ``kb.put_dataset(dataset_record(dataset))``).
    ``should_stop`` is polled between trials (cancellation). A metric that is not one of the task kind's
    raises ``InputError`` before anything is written. ``deadline`` is the job's time budget (by default
    ``settings.time_limit`` from now); the search keeps ``deadline.reserve`` for after it (the refit).
    """
    settings = settings or SearchSettings()
    t_start = time.monotonic()
    if deadline is None:
        deadline = Deadline(settings.time_limit, t_start)
    if deadline.bounded and deadline.reserve == 0:  # until a trial measured a fit
        deadline.keep(INITIAL_RESERVE * (deadline.limit or 0.0))
    task = dataset.task
    space = get_space(task)
    metric = get_metric(task.metric, task.kind)  # a metric of another kind (or none) writes nothing
    search_id = search_id or uuid.uuid4().hex[:16]
    try:  # what its submitter recorded beside the settings (the service: its request) is kept
        submitted = dict(kb.get_search(search_id).settings)
    except NotFoundError:
        submitted = {}
    record = SearchRecord(
        search_id=search_id,
        dataset_id=dataset.dataset_id,
        status="running",
        settings={**submitted, **settings.to_dict()},
        **current_owner(),  # so that a KB opened after this process is killed marks the search interrupted
    )
    kb.put_search(record)
    best = _Best(metric.greater_is_better)
    trials: list[Trial] = []
    n_failed = 0
    protocol = settings.protocol
    multi_fidelity = settings.multi_fidelity

    def fidelity(budget: float | None) -> float | None:
        """A run's budget as this search reports it: a fraction (1.0 = full) with fidelities, else None."""
        if not multi_fidelity:
            return None
        return 1.0 if full_budget(budget) else budget

    def finish_trial(
        values: dict[str, Any], config_id: str, origin: str, run: RunRecord, seconds: float, sources: tuple[str, ...],
        note: str = "",
    ) -> Trial:
        nonlocal n_failed
        if run.status != "ok":
            n_failed += 1
        best.offer(run.score, config_id, values, run.budget)
        trial = Trial(
            number=len(trials) + 1,
            config_id=config_id,
            values=values,
            origin=origin,
            status=run.status,
            score=run.score,
            cost=run.cost,
            seconds=seconds,
            budget=fidelity(run.budget),
            best_score=best.score,
            best_config_id=best.config_id,
            error=run.error,
            sources=sources,
            note=note,
        )
        trials.append(trial)
        if on_trial is not None:
            on_trial(trial)
        return trial

    told: list[tuple[dict[str, Any], RunRecord]] = []
    seen: set[str] = set()
    # a recommended configuration the KB stores under an earlier space version's id: its runs go under that
    # id too (today's id -> stored id), so that its results stay one configuration (one matrix column)
    stored_ids: dict[str, str] = {}
    warm: list[tuple[dict[str, Any], str, str, tuple[str, ...]]] = []
    remaining = 0
    status = "done"
    error = ""
    stopped_by = "trials"
    n_skipped = 0
    n_duplicates = 0
    n_pruned = 0
    n_unresumed, unresumed_best = 0, None
    refit_seconds: dict[str, float] = {}  # config id -> its expected refit on all rows (from measured fits)
    rounds_per_row: dict[str, float] = {}  # config id -> its trial's early-stopped boosting rounds per row
    refit_share = refit_factor(protocol, dataset.n_rows)  # a trial's refit, per second of the trial
    try:  # preparing the search (resume, warm start) can fail too: that is recorded like the rest
        # 1. resume: runs of earlier searches on the same data are told, not re-run
        if settings.resume:
            prev = previous_runs(kb, dataset.dataset_id, space, protocol, low_budgets=multi_fidelity)
            configs = kb.get_configurations({r.config_id for r in prev})
            told_keys: set[tuple[str, float | None]] = set()  # one run per (configuration, budget)
            for stored_run in sorted(prev, key=lambda r: (r.created_at, r.run_id)):
                if timed_out_under(stored_run, settings.trial_time_limit):  # tried again, not resumed
                    continue
                r = scored_by(stored_run, task.metric, metric.to_cost)  # None: it lacks this search's metric
                if r is None:
                    continue
                try:
                    values = space.validate(configs[r.config_id].values)
                except (InputError, KeyError):
                    continue
                # the configuration's id in this space version (an earlier version's run has another)
                cid = ConfigurationRecord.create(space.name, space.version, values).config_id
                if (cid, fidelity(r.budget)) in told_keys:
                    continue
                told_keys.add((cid, fidelity(r.budget)))
                seen.update((r.config_id, cid, _effective_id(space, values)))
                told.append((values, r))
        earlier, told = told, _first_trials(told, settings.trial_budget, keep_full=multi_fidelity,
                                            greater=metric.greater_is_better)
        n_unresumed = len(earlier) - len(told)  # the budget is smaller than what earlier searches ran
        if n_unresumed:
            kept = {r.run_id for _, r in told}
            sign = 1.0 if metric.greater_is_better else -1.0
            top = max((sign * r.score for _, r in told if r.ok), default=-math.inf)
            better = [sign * r.score for _, r in earlier if r.run_id not in kept and r.ok and sign * r.score > top]
            unresumed_best = sign * max(better) if better else None
        for values, r in told:
            if r.ok and full_budget(r.budget) and r.fit_seconds > 0:  # its refit, from its earlier fits (a time
                # limit's final fit of a resumed best pipeline had no estimate: all rows of uci_protein, 1.7 x 10 s)
                refit_seconds[r.config_id] = r.fit_seconds * refit_share
            finish_trial(values, r.config_id, "resumed", r, r.fit_seconds + r.predict_seconds, ())

        # 2. warm start: recommended configurations not evaluated yet
        if settings.warm_start and settings.n_warm > 0:
            for rec in recommendations:
                rec_values = getattr(rec, "values", None)
                values = dict(kb.get_configuration(rec.config_id).values if rec_values is None else rec_values)
                try:
                    values = space.validate(values)
                except InputError:
                    continue
                cid = ConfigurationRecord.create(space.name, space.version, values).config_id
                eid = _effective_id(space, values)
                if eid in seen:  # its model was resumed or recommended already (every id seen holds its eid)
                    continue
                seen.update((cid, eid))
                if rec.config_id != cid and _stores(kb, space, rec.config_id, values):
                    stored_ids[cid] = rec.config_id
                    seen.add(rec.config_id)
                srcs = tuple(str(getattr(s, "name", None) or getattr(s, "dataset_id", s)) for s in getattr(rec, "sources", ()))
                warm.append((values, cid, f"recommendation:{getattr(rec, 'rank', len(warm) + 1)}", srcs))
                if len(warm) >= settings.n_warm:
                    break
        remaining = settings.trial_budget - len(told)
        warm = warm[: max(0, remaining)]

        def job(values: dict[str, Any], budget: float | None) -> tuple[Any, ...]:
            """The arguments of :func:`evaluate_config` for a trial starting now (its configuration stored)."""
            record = ConfigurationRecord.create(space.name, space.version, values)
            if record.config_id not in stored_ids:
                kb.put_configuration(record)
            return eval_args(values, budget)

        def eval_args(values: dict[str, Any], budget: float | None) -> tuple[Any, ...]:
            """The arguments of :func:`evaluate_config` for an evaluation starting now."""
            limit = deadline.trial_limit(settings.trial_time_limit, refit_share)
            # boosted fits stop at the configured trial limit (and are scored), not at one the job's deadline
            # shortened: there a cut trial's few rounds and its understated refit estimate cost more than the
            # trial gives (30 s, 3 splits: binary 0.9202 -> 0.9195, multiclass 0.1247 -> 0.1271) -- unless no
            # trial has scored yet: then a cut model beats none (a 30 s search on 1,800 x 1,000 binary data lost
            # its first CatBoost trial, killed at its 7.6 s limit, scored 0.80 when cut)
            bound = limit is not None and (limit == settings.trial_time_limit or best.config_id is None)
            return (dataset, space, values, protocol, limit, settings.memory_limit_mb, budget, oof_pool is not None,
                    bound)

        def evaluate(values: dict[str, Any], origin: str, budget: float | None, sources: tuple[str, ...]) -> Trial:
            """Evaluate ``values`` (at ``budget``, a data fraction, when multi-fidelity), store the run."""
            args = job(values, budget)
            t0 = time.monotonic()
            return store_result(values, origin, sources, evaluate_config(*args), t0)

        def store_result(
            values: dict[str, Any], origin: str, sources: tuple[str, ...], result: EvalResult, t0: float
        ) -> Trial:
            """Store a finished evaluation, update the refit reserve, report the trial."""
            config_id = ConfigurationRecord.create(space.name, space.version, values).config_id
            config_id = stored_ids.get(config_id, config_id)
            run = to_run_record(
                result,
                dataset_id=dataset.dataset_id,
                config_id=config_id,
                protocol_key=protocol.key,
                source=source,
                search_id=search_id,
            )
            kb.add_runs([run], replace_failed=True)  # a timeout tried again with a longer limit is replaced
            # an identical evaluation may exist: the stored one is the truth (as scored by this search's metric)
            stored = scored_by(kb.get_run(run.run_id), task.metric, metric.to_cost) or run
            # in memory, for the ensemble; a local proposal only when it beat the best so far: the others are
            # near-copies of a better pool member and crowd out the diverse candidates ensembles gain from
            # (120 s multiclass: out-of-fold ensemble gains 0.0104 -> 0.0008 on solar_flare_2 with them)
            measured(config_id, values, result, pooled=origin != "local" or best.beaten_by(float(result.score)))
            trial = finish_trial(values, config_id, origin, stored, time.monotonic() - t0, sources, result.cut_note)
            keep_reserve()
            return trial

        def measured(config_id: str, values: dict[str, Any], result: EvalResult, pooled: bool = True) -> None:
            """A finished full-budget evaluation's refit estimate, and (``pooled``) its out-of-fold predictions
            offered to ``oof_pool``."""
            if result.ok and full_budget(result.budget) and result.n_train_rows:
                refit_seconds[config_id] = refit_estimate(
                    result.fit_seconds, result.n_folds, result.n_train_rows, dataset.n_rows
                )
                if result.rounds_per_row is not None:
                    rounds_per_row[config_id] = result.rounds_per_row
            if oof_pool is not None and pooled and result.ok and result.oof is not None:
                oof_pool.offer(Candidate(config_id, values, float(result.score), result.oof,
                                         result.fit_seconds, result.n_folds, refit_seconds.get(config_id),
                                         rounds_per_row.get(config_id)))

        def keep_reserve() -> None:
            """Keep the time the best pipeline's refit and the ensemble's other refits need (a time limit only)."""
            if deadline.bounded and best.config_id in refit_seconds:
                deadline.keep(
                    _search_reserve(deadline, best.config_id, best.values, refit_seconds, oof_pool, dataset, settings)
                )

        def revisit_resumed(resumed: list[tuple[dict[str, Any], RunRecord]], n_revisit: int) -> None:
            """Evaluate the ``n_revisit`` best full-budget ``resumed`` runs again for ``oof_pool`` (while the
            time limit allows: each needs its earlier run's seconds, with a margin)."""
            assert oof_pool is not None
            sign = 1.0 if metric.greater_is_better else -1.0
            ranked = sorted((vr for vr in resumed if vr[1].ok and full_budget(vr[1].budget)),
                            key=lambda vr: (-sign * vr[1].score, vr[1].created_at))[:n_revisit]
            if not ranked:
                return
            if on_status is not None:
                on_status(f"evaluating the {len(ranked)} best resumed pipeline(s) again for their out-of-fold "
                          "predictions (the KB keeps their scores, not their predictions)")
            t0, done = time.monotonic(), 0
            for values, r in ranked:
                if should_stop is not None and should_stop():
                    raise CancelledError(f"search {search_id} was cancelled")
                if deadline.bounded and deadline.search_left() < 1.5 * (r.fit_seconds + r.predict_seconds) + 0.5:
                    break
                result = evaluate_config(*eval_args(values, None))
                measured(r.config_id, values, result)
                done += int(result.ok and result.oof is not None)
            deadline.note(
                f"{done} of the {len(ranked)} best resumed pipelines evaluated again for their out-of-fold predictions "
                f"(the ensemble's and the calibration's candidates) in {time.monotonic() - t0:.1f} s"
            )
            keep_reserve()

        def outclassed(values: dict[str, Any], budget: float | None) -> float | None:
            """A recommendation's imputed cost when a time-limited search skips it (see :func:`_outclassed`)."""
            nonlocal n_pruned
            if not deadline.bounded:
                return None
            imputed = _outclassed(trials, values, fidelity(budget), task.metric)
            if imputed is not None:
                n_pruned += 1
            return imputed

        def full_budget_seconds() -> float:
            """Expected seconds of the final full-budget evaluation (multi-fidelity): the trial at the
            highest budget that succeeded, scaled to the full data."""
            low = [t for t in trials if t.status == "ok" and t.budget and not full_budget(t.budget)]
            if not low:
                return 0.0
            top = max(low, key=lambda t: (t.budget or 0.0, -t.seconds))
            return top.seconds / (top.budget or 1.0)

        def final_fits() -> bool:
            """Whether the final full-budget evaluation (and its refit) still fit in the time left."""
            need = 1.5 * full_budget_seconds()
            return deadline.search_left() >= need and deadline.left() >= need * (1.0 + refit_share)

        def out_of_budget(in_flight: int = 0) -> bool:
            nonlocal stopped_by
            # a multi-fidelity search keeps its last trial for a full-budget evaluation until one succeeded
            reserve = 1 if multi_fidelity and best.config_id is None else 0
            if len(trials) + in_flight >= settings.trial_budget - reserve:
                stopped_by = "trials"
                return True
            if deadline.search_over() or (reserve and deadline.bounded and not final_fits()):
                stopped_by = "time_limit"
                return True
            if should_stop is not None and should_stop():
                raise CancelledError(f"search {search_id} was cancelled")
            return False

        def run_parallel(propose: Callable[[], Any], tell: Callable[[Any, Trial], None]) -> None:
            """Keep ``settings.workers`` trials in flight: ``propose()`` gives the next ``(values, origin,
            budget, sources, token)`` (None: no more), ``tell(token, trial)`` reports one finished."""
            from metalearn.runtime.executors import Executor

            queue: deque[tuple[Any, ...]] = deque()
            running: dict[int, tuple[Any, float]] = {}
            keys = itertools.count()

            def fill() -> None:
                while len(running) < n_workers and not out_of_budget(len(running)):
                    proposal = propose()
                    if proposal is None:
                        return
                    key = next(keys)
                    _data, *args = job(proposal[0], proposal[2])
                    running[key] = (proposal, time.monotonic())
                    queue.append((key, shared, *args))

            with Executor(n_workers, pool="dask", scheduler=settings.scheduler) as executor:
                shared = executor.share(dataset)  # sent to the workers once, not with every trial
                fill()
                for (key, *_args), outcome in executor.map_unordered(_evaluate_job, queue):
                    (values, origin, budget, sources, token), t0 = running.pop(key)
                    if isinstance(outcome, BaseException):  # the worker itself failed, not the trial
                        outcome = failed_result(dataset, protocol, budget, outcome)
                    tell(token, store_result(values, origin, sources, outcome, t0))
                    fill()

        # 3. the KB keeps the resumed trials' scores, not their out-of-fold predictions: the best few are
        # evaluated again (not counted as trials) so that the ensemble and the calibration can use them, before
        # the new trials, which a time limit may end (a resumed best pipeline otherwise left no ensemble at all)
        if oof_pool is not None and told:
            revisit_resumed(told[:], n_revisit=REVISIT_FOR_ENSEMBLE if settings.ensemble else 1)

        # more than one trial at a time (a single trial to run, or one worker, is the sequential loop)
        n_workers = max(1, min(settings.workers, remaining))
        parallel = n_workers > 1 or settings.scheduler is not None
        if remaining > 0:
            if settings.optimizer == "random":
                if parallel:
                    proposals = _random_proposals(space, settings, warm, seen, outclassed)
                    run_parallel(proposals.__next__, lambda _t, _trial: None)
                else:
                    _random_loop(space, settings, warm, evaluate, out_of_budget, seen, outclassed)
            else:
                n_skipped, n_duplicates = _smac_loop(
                    dataset, space, settings, told, warm, evaluate, out_of_budget, seen,
                    run_parallel if parallel else None, outclassed, best,
                )  # fmt: skip
        if n_pruned:
            deadline.note(
                f"{n_pruned} recommendation(s) skipped without a fit: their model family had already scored over "
                f"{OUTCLASSED_FAMILY_FACTOR:g} x the best pipeline's {'1 - ' if metric.greater_is_better else ''}"
                f"{task.metric} on this dataset"
            )
        if stopped_by == "trials" and len(trials) < settings.trial_budget and deadline.bounded and deadline.search_over():
            stopped_by = "time_limit"
        if multi_fidelity and best.config_id is None:
            # the trial kept for it (or, when earlier runs filled the budget, one more): the best
            # candidate at full budget, so that the search has an incumbent
            if should_stop is not None and should_stop():
                raise CancelledError(f"search {search_id} was cancelled")
            candidate = _full_budget_candidate(space, trials, warm, metric.greater_is_better)
            if candidate is not None:
                evaluate(candidate, "full-budget", 1.0, ())
        if best.config_id is None:  # nothing came of it: recorded as failed, saying why (it read "done")
            status, error = "failed", (
                f"the time limit ended the search before a trial could run ({settings.time_limit:g} s for the whole "
                f"job): give a larger {option('time_limit')}"
                if not trials and stopped_by == "time_limit" else
                f"no configuration succeeded{' at full budget' if multi_fidelity else ''} in {len(trials)} trials "
                f"({n_failed} failed)"
            )  # fmt: skip
    except CancelledError as exc:
        status, error, stopped_by = "cancelled", str(exc), "cancelled"
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM in the CLI ("terminated (SIGTERM)")
        why = str(exc) or "interrupted by the user"
        status, error = "cancelled", f"{why}; run the same command again to resume"
        raise
    except Exception as exc:  # a search-level failure (not a trial failure) is recorded, then raised
        status, error = "failed", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        kb.put_search(
            replace(
                record,
                status=status,
                incumbent_config_id=best.config_id,
                incumbent_score=None if math.isnan(best.score) else best.score,
                n_trials=len(trials),
                error=error,
                updated_at=utcnow(),
            )
        )

    return SearchResult(
        search_id=search_id,
        dataset_id=dataset.dataset_id,
        dataset_name=dataset.name,
        kind=str(task.kind),
        metric=task.metric,
        greater_is_better=metric.greater_is_better,
        space=space.name,
        space_version=space.version,
        settings=settings.to_dict(),
        trials=trials,
        best_config_id=best.config_id,
        best_values=best.values,
        best_score=best.score,
        n_resumed=len(told),
        n_new=len(trials) - len(told),
        n_failed=n_failed,
        recommendations=[
            {"rank": i + 1, "config_id": stored_ids.get(cid, cid), "origin": origin, "sources": list(srcs)}
            for i, (_, cid, origin, srcs) in enumerate(warm)
        ],
        seconds=time.monotonic() - t_start,
        status=status,
        error=error,
        stopped_by=stopped_by,
        best_refit_seconds=refit_seconds.get(best.config_id) if best.config_id is not None else None,
        best_rounds_per_row=rounds_per_row.get(best.config_id) if best.config_id is not None else None,
        n_skipped=n_skipped,
        n_duplicates=n_duplicates,
        n_cut=sum(1 for t in trials if t.note),
        n_pruned=n_pruned,
        n_unresumed=n_unresumed,
        unresumed_best=unresumed_best,
    )


def _evaluate_job(key: int, *args: Any) -> EvalResult:
    """A trial on an executor's worker (``key`` is the owner's bookkeeping): :func:`evaluate_config`."""
    return evaluate_config(*args)


def _effective_id(space: SearchSpace, values: dict[str, Any]) -> str:
    """The configuration id of the model ``values`` builds (:meth:`SearchSpace.effective`): configurations
    that differ only below a count's integer part share it. SMAC proposes such twins of scored
    configurations often (stop 40's 120 s peer searches: 204 of its 1,459 proposals, 5 % of all trial time)."""
    return ConfigurationRecord.create(space.name, space.version, space.effective(values)).config_id


def _random_proposals(
    space: SearchSpace, settings: SearchSettings, warm: Sequence[tuple[dict[str, Any], str, str, tuple[str, ...]]],
    seen: set[str], outclassed: Callable[[dict[str, Any], float | None], float | None] | None = None,
) -> Iterator[tuple[dict[str, Any], str, None, tuple[str, ...], None] | None]:
    """The random search's configurations in :func:`_random_loop`'s order, then None for ever."""
    for values, _cid, origin, srcs in warm:
        if outclassed is None or outclassed(values, None) is None:
            yield values, origin, None, srcs, None
    cs = space.configspace
    cs.seed(settings.seed)
    misses = 0
    while misses <= 100:
        values = space.validate(dict(cs.sample_configuration()))
        eid = _effective_id(space, values)
        if eid in seen:
            misses += 1
            continue
        seen.add(eid)
        yield values, "random", None, (), None
    while True:  # the space is exhausted
        yield None


#: the limit a timed-out trial's error names (:func:`metalearn.search.evaluation.evaluate_config`'s text)
_TIMEOUT_LIMIT = re.compile(r"exceeded its ([0-9.eE+-]+) s time limit")


def timed_out_under(run: RunRecord, limit: float | None) -> bool:
    """Whether ``run`` timed out under a trial time limit shorter than ``limit``: a search with the longer limit
    evaluates its configuration again rather than resuming the timeout (which would block it for good)."""
    if run.status != "timeout" or limit is None:
        return False
    found = _TIMEOUT_LIMIT.search(run.error)
    return found is not None and float(found.group(1)) < limit


def _first_trials(
    told: list[tuple[dict[str, Any], RunRecord]], n: int, *, keep_full: bool, greater: bool = True
) -> list[tuple[dict[str, Any], RunRecord]]:
    """The earlier runs (oldest first) a search with a trial budget of ``n`` resumes from: all of them when they
    fit in it, else the ``n`` best (successful ones first, by score: ``greater`` is better, or smaller; until stop
    55 the oldest, so a smaller budget lost the best model an earlier search had found). With ``keep_full`` (a
    multi-fidelity search) the full-budget runs come before any low-budget one, so the incumbent an earlier search
    reached at full budget is not cut off by the low-budget runs that led to it."""
    if len(told) <= n:
        return told
    sign = 1.0 if greater else -1.0

    def rank(i: int) -> tuple[bool, bool, float, int]:
        r = told[i][1]
        good = r.ok and not math.isnan(r.score)
        return (keep_full and not full_budget(r.budget), not good, -sign * r.score if good else 0.0, i)

    keep = set(sorted(range(len(told)), key=rank)[:n])
    return [t for i, t in enumerate(told) if i in keep]


def _full_budget_candidate(
    space: SearchSpace, trials: Sequence[Trial], warm: Sequence[tuple[dict[str, Any], str, str, tuple[str, ...]]],
    greater: bool,
) -> dict[str, Any] | None:
    """The configuration a multi-fidelity search evaluates at full budget when none succeeded there: the
    best successful low-budget trial at the highest budget reached, not yet tried at full budget; without
    one, the first recommendation, else the space's default configuration (None if tried already)."""
    def key(values: dict[str, Any]) -> str:  # today's id (a trial's own may be an earlier version's)
        return ConfigurationRecord.create(space.name, space.version, values).config_id

    tried_full = {key(t.values) for t in trials if full_budget(t.budget)}
    low = [
        t for t in trials
        if t.status == "ok" and not math.isnan(t.score) and not full_budget(t.budget) and key(t.values) not in tried_full
    ]
    if low:
        best = max(low, key=lambda t: (t.budget or 0.0, t.score if greater else -t.score, -t.number))
        return best.values
    fallback = [values for values, cid, _, _ in warm if cid not in tried_full]
    with contextlib.suppress(InputError, ValueError):
        fallback.append(space.validate(space.default()))
    for values in fallback:
        if key(values) not in tried_full:
            return values
    return None


def _stores(kb: KnowledgeBase, space: SearchSpace, config_id: str, values: dict[str, Any]) -> bool:
    """Whether the KB stores ``values`` (valid in ``space``) under ``config_id`` (e.g. an earlier version's)."""
    stored = kb.get_configurations([config_id]).get(config_id)
    if stored is None or stored.space != space.name:
        return False
    try:
        return space.validate(stored.values) == values
    except InputError:
        return False


def _random_loop(space, settings, warm, evaluate, out_of_budget, seen, outclassed=None) -> None:
    for values, _cid, origin, srcs in warm:
        if out_of_budget():
            return
        if outclassed is None or outclassed(values, None) is None:
            evaluate(values, origin, None, srcs)
    cs = space.configspace
    cs.seed(settings.seed)
    misses = 0
    while not out_of_budget():
        cfg = cs.sample_configuration()
        values = space.validate(dict(cfg))
        eid = _effective_id(space, values)
        if eid in seen:
            misses += 1
            if misses > 100:
                return  # the space is exhausted
            continue
        seen.add(eid)
        evaluate(values, "random", None, ())


#: a resumed search evaluates its this many best resumed runs again for their out-of-fold predictions when an
#: ensemble is wanted (only the best one for a calibration): the KB keeps scores, not predictions, and a resumed best
#: pipeline without them left no ensemble at all (README main job run twice: an 11-pipeline ensemble, then one
#: pipeline)
REVISIT_FOR_ENSEMBLE = 8

#: a time-limited search skips a recommendation whose model family already scored, on this dataset at the
#: same fidelity, a cost (``1 - score`` for a greater-is-better metric, else the score) over this many times
#: the best pipeline's: in the 30 s peer benchmark (3 splits, 95 searches) 73 such recommendations took
#: 48 s (on uci_bike 3-5 s of a 15 s search: MLPs 10-30 x worse than the boosted pipelines) and none of
#: them became the best pipeline or an ensemble member. A search without a time limit runs them all.
OUTCLASSED_FAMILY_FACTOR = 3.0


def _outclassed(trials: Sequence[Trial], values: dict[str, Any], budget: float | None, metric: str) -> float | None:
    """The best cost (:func:`smac_cost`) of ``values``'s model family among ``trials`` at ``budget`` when it is
    over :data:`OUTCLASSED_FAMILY_FACTOR` times the best cost of any family there (None otherwise, and when
    the family has no successful trial)."""
    family = family_of(values)
    costs: dict[str, float] = {}
    for t in trials:
        same = (full_budget(t.budget) and full_budget(budget)) or (t.budget is not None and t.budget == budget)
        if t.status == "ok" and not math.isnan(t.score) and same:
            f = family_of(t.values)
            costs[f] = min(costs.get(f, math.inf), smac_cost(metric, t.score))
    if family not in costs or len(costs) < 2:
        return None
    best = max(min(costs.values()), 0.0)
    return costs[family] if costs[family] > OUTCLASSED_FAMILY_FACTOR * best + 1e-12 else None


#: SMAC proposals in a row a search skips because they cannot fit (see ``SearchSpace.underfit_reason``) or
#: build a model already scored (see :func:`_effective_id`) before it runs the next one anyway
MAX_SKIPPED_IN_A_ROW = 20


def _local_neighbour(
    space: SearchSpace,
    cs: ConfigurationSpace,
    start: dict[str, Any],
    seen: set[str],
    seed: int,
    flat: AbstractSet[str] = frozenset(),
) -> tuple[Configuration, dict[str, Any], frozenset[str]] | None:
    """A configuration one step from ``start`` (one of its model's own hyperparameters moved, SMAC's own
    neighbourhood, a standard deviation of :data:`LOCAL_STDEV` of its normalised range), that can fit and
    was not seen, with the hyperparameters it moved; None when there is none. Moves of the hyperparameters
    in ``flat`` (an earlier move of them from ``start`` scored exactly as ``start``) are not proposed."""
    from ConfigSpace.util import get_one_exchange_neighbourhood

    try:
        cfg = _space_config(cs, start, "local")
    except (ValueError, KeyError, InputError):  # outside a restricted space
        return None
    family = family_of(start)
    rng = np.random.RandomState(seed)
    with contextlib.suppress(ValueError):
        for nb in get_one_exchange_neighbourhood(cfg, seed=rng, num_neighbors=4, stdev=LOCAL_STDEV):
            try:
                values = space.validate(dict(nb))
            except InputError:
                continue
            moved = {k for k in set(values) | set(start) if values.get(k) != start.get(k)}
            if family_of(values) != family or not all(k.startswith(f"{family}:") for k in moved):
                continue  # the model's own hyperparameters only (a tree model's scaling changes nothing)
            if moved & flat:
                continue  # moving it changed nothing here (e.g. more rounds than early stopping keeps)
            if space.underfit_reason(values) is not None:
                continue
            if _effective_id(space, values) in seen:  # or a model already scored
                continue
            nb.origin = "local"
            return nb, values, frozenset(moved)
    return None


#: the step of a local proposal (:func:`_local_neighbour`), as SMAC's own local search takes it
LOCAL_STDEV = 0.2


def _smac_loop(
    dataset, space, settings, told, warm, evaluate, out_of_budget, seen, run_parallel=None, outclassed=None,
    local: _Best | None = None,
) -> tuple[int, int]:
    """SMAC's ask-and-tell search (sequential, or ``run_parallel``); returns the proposals it skipped
    because they cannot fit and those it skipped because they build a model this search already scored
    (:func:`_effective_id`; told that trial's cost). A recommendation ``outclassed(values, budget)`` gives a cost for is told to
    SMAC with that cost (its family's best so far) without a fit. With ``local`` (the search's best
    configuration so far), once SMAC has proposed every recommendation every other proposal is a neighbour
    of that configuration (:func:`_local_neighbour`) instead of SMAC's, and is told to SMAC; a move that
    scores exactly as its start is not proposed from that start again."""
    from smac import HyperparameterOptimizationFacade as HPO
    from smac import MultiFidelityFacade as MF
    from smac import Scenario
    from smac.runhistory.dataclasses import TrialInfo, TrialValue
    from smac.runhistory.enumerations import StatusType

    metric = dataset.task.metric
    crash = crash_cost_for(dataset)
    with tempfile.TemporaryDirectory(prefix="metalearn-smac-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # SMAC's surrogate on few points warns on empty means
        cs = space.configspace
        if settings.warm_start and settings.learned_space:  # the recommendations' region (and the resumed runs')
            cs = space.restricted_configspace([v for v, *_ in warm] + [v for v, _ in told]) or cs
        scenario_kwargs: dict[str, Any] = dict(
            configspace=cs,
            output_directory=Path(tmp) / "smac",
            deterministic=True,
            crash_cost=crash,
            n_trials=max(_scenario_trials(settings), len(told) + len(warm) + 1),
            seed=settings.seed,
        )
        facade_cls = HPO
        if settings.multi_fidelity:
            facade_cls = MF
            scenario_kwargs.update(min_budget=settings.min_budget, max_budget=1.0)
        scenario = Scenario(**scenario_kwargs)
        additional = [_space_config(cs, v, origin) for v, _, origin, _ in warm]
        initial: Any
        if settings.warm_start and additional:
            initial = facade_cls.get_initial_design(scenario, n_configs=0, additional_configs=additional)
        else:
            n_init = settings.n_initial
            initial = facade_cls.get_initial_design(scenario, n_configs=n_init) if n_init else None
        model = surrogate_model(cs, settings.seed, log_y=not settings.multi_fidelity)
        with warnings.catch_warnings():  # SMAC 2.4's own ConfigSpace call: "Please use dict(config)", on every fit
            warnings.filterwarnings("ignore", message="Please use `dict", category=DeprecationWarning)
            smac = facade_cls(
                scenario,
                target_function=None,
                model=model,
                initial_design=initial,
                acquisition_maximizer=ordered_acquisition_maximizer(facade_cls, scenario),
                intensifier=facade_cls.get_intensifier(scenario, max_config_calls=1)
                if facade_cls is HPO
                else resumable_intensifier(facade_cls, scenario),
                overwrite=True,
                logging_level=40,
            )
        # the models scored so far: (effective id, budget) -> what SMAC was told of them
        scored: dict[tuple[str, float | None], Any] = {}
        for values, run in told:
            cfg = _space_config(cs, values, "resumed")
            budget = (1.0 if full_budget(run.budget) else run.budget) if settings.multi_fidelity else None
            info = TrialInfo(config=cfg, seed=settings.seed, budget=budget)
            ok = run.status == "ok" and not math.isnan(run.score)
            value = TrialValue(
                cost=smac_cost(metric, run.score) if ok else crash,
                time=run.fit_seconds,
                status=StatusType.SUCCESS if ok else StatusType.CRASHED,
            )
            smac.tell(info, value, save=False)
            scored[(_effective_id(space, values), budget)] = value
        warm_sources = {cid: srcs for _, cid, _, srcs in warm}
        n_skipped = 0  # proposals that cannot fit their data, told to SMAC without a fit (not trials)
        n_duplicates = 0  # proposals of a model already scored, told its cost without a fit (not trials)

        def value_of(trial: Trial) -> Any:
            ok = trial.status == "ok" and not math.isnan(trial.score)
            return TrialValue(
                cost=max(smac_cost(metric, trial.score), 0.0) if ok else crash,
                time=trial.seconds,
                status=StatusType.SUCCESS if ok else StatusType.CRASHED,
            )

        def ask() -> tuple[Any, dict[str, Any], str]:
            """SMAC's next proposal: its info, validated values and origin."""
            info = smac.ask()
            return info, space.validate(dict(info.config)), _origin_of(info.config.origin)

        def budget_of(info: Any) -> float | None:
            return float(info.budget) if settings.multi_fidelity and info.budget is not None else None

        past_warm = False  # SMAC proposed a configuration of its own: the recommendations are done
        n_own = 0  # proposals since then
        # local proposals in flight: their config id -> (their start's config id, what moved, its score)
        local_of: dict[str, tuple[str, frozenset[str], float]] = {}
        flat: dict[str, set[str]] = {}  # a start's config id -> hyperparameters whose move changed nothing

        def tell(info: Any, trial: Trial) -> None:
            value = value_of(trial)
            smac.tell(info, value, save=False)
            scored[(_effective_id(space, trial.values), budget_of(info))] = value
            start = local_of.pop(trial.config_id, None)
            if start is not None and trial.status == "ok" and trial.score == start[2]:
                flat.setdefault(start[0], set()).update(start[1])

        def propose() -> tuple[dict[str, Any], str, float | None, tuple[str, ...], Any]:
            """SMAC's next proposal that can fit its data. One that cannot (``space.underfit_reason``) and
            is SMAC's own, not a recommendation, is told to SMAC as crashed without a fit, so that its
            surrogate learns the region; one that builds a model already scored at its budget is told that
            model's cost without a fit; after :data:`MAX_SKIPPED_IN_A_ROW` of them the next is run."""
            nonlocal n_skipped, n_duplicates, past_warm, n_own
            if past_warm and local is not None and not settings.multi_fidelity:
                n_own += 1
                start_id = local.config_id
                if n_own % 2 == 0 and local.values is not None and start_id is not None:
                    found = _local_neighbour(
                        space, cs, local.values, seen, settings.seed + n_own, frozenset(flat.get(start_id, ()))
                    )
                    if found is not None:
                        cfg, values, moved = found
                        cid = ConfigurationRecord.create(space.name, space.version, values).config_id
                        seen.update((cid, _effective_id(space, values)))
                        local_of[cid] = (start_id, moved, local.score)
                        return values, "local", None, (), TrialInfo(config=cfg, seed=settings.seed, budget=None)
            info, values, origin = ask()
            n_in_a_row = 0
            while n_in_a_row < MAX_SKIPPED_IN_A_ROW:
                if origin.startswith("recommendation:"):
                    imputed = None if outclassed is None else outclassed(values, budget_of(info))
                    if imputed is None:
                        break
                    smac.tell(info, TrialValue(cost=max(imputed, 0.0), time=0.0, status=StatusType.SUCCESS), save=False)
                elif (same := scored.get((_effective_id(space, values), budget_of(info)))) is not None:
                    smac.tell(info, same, save=False)
                    n_duplicates += 1
                    n_in_a_row += 1
                elif space.underfit_reason(values) is None:
                    break
                else:
                    smac.tell(info, TrialValue(cost=crash, time=0.0, status=StatusType.CRASHED), save=False)
                    n_skipped += 1
                    n_in_a_row += 1
                info, values, origin = ask()
            past_warm = past_warm or origin in ("smac", "smac-random")  # not the initial design's
            cid = ConfigurationRecord.create(space.name, space.version, values).config_id
            seen.update((cid, _effective_id(space, values)))
            return values, origin, budget_of(info), warm_sources.get(cid, ()), info

        if run_parallel is not None:  # asked for a new configuration whenever a trial finishes
            run_parallel(propose, tell)
            return n_skipped, n_duplicates
        while not out_of_budget():
            values, origin, budget, sources, info = propose()
            tell(info, evaluate(values, origin, budget, sources))
    return n_skipped, n_duplicates


#: the trials SMAC's scenario is told of when a time limit, not the trial count, ends the search: SMAC
#: sizes its initial design from it (a quarter of it, up to 10 per hyperparameter), and making the design
#: of a large count takes long (n_trials 1000: 250 configurations, ~10 s before the first trial)
TIME_LIMITED_SCENARIO_TRIALS = 50


def _scenario_trials(settings: SearchSettings) -> int:
    """``n_trials`` for SMAC's scenario: the settings' (capped when a time limit is set, see above)."""
    if settings.time_limit is None:
        return settings.trial_budget
    return min(settings.trial_budget, TIME_LIMITED_SCENARIO_TRIALS)


def _origin_of(smac_origin: str | None) -> str:
    o = (smac_origin or "").lower()
    if o.startswith("recommendation:"):
        return o
    if "default" in o:
        return "default"
    if "initial" in o or "sobol" in o:
        return "initial-design"
    if "random" in o:
        return "smac-random"
    return "smac"


def _search_reserve(
    deadline: Deadline,
    best_id: str,
    best_values: dict[str, Any] | None,
    refit_seconds: dict[str, float],
    pool: OOFPool | None,
    dataset: Dataset,
    settings: SearchSettings,
) -> float:
    """Seconds a budgeted search keeps for after it (:func:`~metalearn.search.deadline.search_reserve`):
    the best configuration's final fit (its refit and, for a forest, its growth to 300 trees,
    :func:`~metalearn.pipelines.spaces.components.forest_growth_factor`, that part at most
    :data:`~metalearn.search.deadline.FINAL_EXTRA_SHARE` of the budget) and the writing of its model files
    (``deadline.writes``, :func:`~metalearn.search.ensemble.write_estimate`) and, with a post-hoc ensemble, its
    next-best candidates' refits. Once
    that reserve would end the search, the members the ensemble selection takes on the trials so far
    (:func:`~metalearn.search.ensemble.plan_ensemble`, times :data:`~metalearn.search.deadline.PLANNED_MEMBERS_SAFETY`)
    replace the next-best candidates: an ensemble of two members, or none, leaves the search the time kept
    for the others."""
    from metalearn.pipelines.spaces.components import forest_growth_factor
    from metalearn.search.ensemble import plan_ensemble, write_estimate

    refit = refit_seconds[best_id]
    extra = refit * (forest_growth_factor(best_values) - 1.0) if best_values else 0.0
    best = refit + min(extra, FINAL_EXTRA_SHARE * float(deadline.limit or 0.0) if deadline.bounded else extra)
    if best_values and deadline.writes:  # and writing it: a full-depth forest on 34,297 rows took 4-7 s to write
        # (its configured trees: the final fit grows a forest only when the growth's fit and writes fit, see refit_best)
        best += deadline.writes * write_estimate(best_values, dataset.n_rows, grown=False, n_targets=len(dataset.task.targets))
    others = [refit_seconds[c.config_id] for c in (pool.candidates() if pool is not None else ())
              if c.config_id != best_id and c.config_id in refit_seconds]
    reserve = search_reserve(best, others, deadline.limit)
    if pool is None or not settings.ensemble or deadline.left() - reserve > max(reserve, MIN_TRIAL_SECONDS):
        return reserve  # not near the end yet: no selection run
    plan = plan_ensemble(dataset.task, pool, best_id, settings.ensemble_size)
    planned = PLANNED_MEMBERS_SAFETY * plan.refit_seconds(best_id)  # 0.0 for no ensemble
    return search_reserve(best, [planned], deadline.limit)

