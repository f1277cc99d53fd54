"""Offline knowledge-base build: meta-features, per-dataset exploration, and a dense performance matrix.

Phases, per task kind:

1. **register** every dataset: record + meta-features (computed on the full data; extraction subsamples).
2. **explore** each dataset with a short SMAC search (``n_explore`` trials, fixed seed) to find strong
   configurations for it.
3. **common set**: the space's default, the best explored configuration of each dataset (in a fixed order)
   and a seeded space-filling sample, up to ``n_configs`` per kind.
4. **matrix**: every configuration of the common set on every dataset of its kind, so portfolio strategies
   and the leave-one-dataset-out evaluation see a dense performance matrix.

**Family extension** (``BuildSettings.families``, ``kb build --families lgbm,xgb,catboost --configs K``): extends
a built KB with model families it lacks (e.g. after a space version added them) without rebuilding it: no
exploration; the candidate set of each kind is ``n_configs`` configurations of those families
(:func:`family_candidates`: each family's default, then seeded samples of the family, round-robin), evaluated
on every dataset of the kind by the matrix phase with the same protocol (runs tagged ``SOURCE_FAMILIES``), so
the performance matrix stays dense. Give the settings of the original build (``--max-rows``, ``--folds``,
``--seed``, ``--trial-time-limit``) so the protocol key, and hence the runs, are comparable. A candidate the KB
already holds under an older space version keeps its stored record (:func:`stored_records`), so its new runs
line up with its old ones. ``--families et,hgb,knn,linear,mlp,svm --configs 6`` is exactly those families'
defaults (the shipped KB's fourth step; with ``--min-rows`` also on the large datasets at the size portfolio's
protocol).

**Size portfolio** (``BuildSettings.portfolio``, ``kb build --portfolio K --min-rows N --max-rows M``): evaluates
configurations the KB already has, at a larger subsample, on the datasets above ``N`` rows only: no exploration;
the candidate set of each kind is :func:`portfolio_candidates` (``K`` stored configurations ranked by their mean
normalised regret under the KB's other protocols: the best two of each model family first, then the best of
the rest), under their stored ids, runs tagged ``SOURCE_PORTFOLIO``. The new protocol (``...-subM``) then stands
for those datasets in the recommenders' matrix (:func:`~metalearn.metalearning.matrix.largest_protocols`):
which family wins depends on the rows it trains on, and a 1,000-row subsample of a 20,000-row dataset
favours bagged trees where the dataset itself favours boosting.

Resumable and exact: a run's id is a hash of (dataset, configuration, protocol), so nothing is evaluated
twice; the exploration *replays* SMAC — stored results are told back in the order SMAC asks for them, so a
resumed build proposes exactly the configurations an uninterrupted one would. Datasets are subsampled to
``max_rows`` for the build (recorded in the protocol and in ``RunRecord.n_rows_used``).

Parallel: evaluations run as Dask tasks (a ``LocalCluster`` by default, or ``scheduler=ADDRESS``); this
process alone owns the DuckDB file and writes results as they come back.
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metalearn.data.dataset import Dataset
from metalearn.data.errors import InputError
from metalearn.data.task import TaskKind
from metalearn.kb.base import KnowledgeBase
from metalearn.kb.records import ConfigurationRecord, RunRecord, dataset_record
from metalearn.pipelines.spaces import get_space
from metalearn.runtime.executors import Executor
from metalearn.runtime.progress import NullProgress
from metalearn.search.evaluation import EvalProtocol, evaluate_config, to_run_record

SOURCE_EXPLORE = "build:explore"  # the per-dataset SMAC exploration
SOURCE_MATRIX = "build:matrix"  # the common candidate set on every dataset
SOURCE_FAMILIES = "build:families"  # a family extension (``BuildSettings.families``) on every dataset
SOURCE_PORTFOLIO = "build:portfolio"  # stored configurations at a larger subsample (``BuildSettings.portfolio``)
MATRIX_BLOCK = 8  # configurations per block of the matrix phase
PORTFOLIO_ROUNDS = 2  # a size portfolio takes the best this-many configurations of every family first


@dataclass(frozen=True)
class BuildSettings:
    n_configs: int = 50  # common candidate set size per kind
    n_explore: int = 8  # SMAC trials per dataset in the exploration phase (0: none)
    max_rows: int = 2000  # subsample larger datasets for the build
    n_folds: int = 3
    trial_time_limit: float | None = 60.0
    memory_limit_mb: int | None = 4096
    seed: int = 0
    workers: int = 1
    scheduler: str | None = None
    # Extend an existing KB with model families: when set, the candidate set of each kind is
    # ``n_configs`` configurations of these families only (see :func:`family_candidates`), evaluated
    # on every dataset with the same protocol as the matrix phase; no exploration phase.
    families: tuple[str, ...] = ()
    # Evaluate ``portfolio`` stored configurations per kind (see :func:`portfolio_candidates`) instead of
    # new ones; no exploration phase. With ``min_rows``, only datasets above that many rows take part.
    portfolio: int = 0
    min_rows: int = 0

    def __post_init__(self) -> None:
        from metalearn.pipelines.spaces.components import FAMILIES

        unknown = [f for f in self.families if f not in FAMILIES]
        if unknown:
            raise InputError(f"--families: unknown model families {unknown}; use some of {list(FAMILIES)}")
        if len(set(self.families)) != len(self.families):
            raise InputError(f"--families: a family is named twice in {list(self.families)}")
        if self.n_configs < 1:
            raise InputError(f"--configs must be >= 1, got {self.n_configs}")
        if self.n_explore < 0:
            raise InputError(f"--explore must be >= 0, got {self.n_explore}")
        if self.max_rows < 50:
            raise InputError(f"--max-rows must be >= 50, got {self.max_rows}")
        if self.workers < 1:
            raise InputError(f"--workers must be >= 1, got {self.workers}")
        if self.trial_time_limit is not None and not (math.isfinite(self.trial_time_limit) and self.trial_time_limit > 0):
            raise InputError(f"--trial-time-limit must be a positive number of seconds, got {self.trial_time_limit:g} "
                             "(every evaluation was skipped, and the build ended with 0 evaluations, exit 0)")
        if self.portfolio < 0 or self.min_rows < 0:
            raise InputError(f"--portfolio and --min-rows must be >= 0, got {self.portfolio} and {self.min_rows}")
        if self.portfolio and self.families:
            raise InputError("--portfolio and --families are two kinds of extension: give one of them per build")

    @property
    def protocol(self) -> EvalProtocol:
        return EvalProtocol(n_folds=self.n_folds, seed=self.seed, max_rows=self.max_rows)


@dataclass(frozen=True)
class DatasetSource:
    """How a worker loads a dataset: a ``metalearn.data.loading.load_dataset`` spec (+ corpus dir)."""

    spec: str
    corpus: str | None = None

    def load(self) -> Dataset:
        return _load_cached(self.spec, self.corpus)


@functools.lru_cache(maxsize=16)
def _load_cached(spec: str, corpus: str | None) -> Dataset:
    from metalearn.data.loading import load_dataset

    return load_dataset(spec, corpus=corpus)


@dataclass
class BuildReport:
    datasets: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (spec, reason)
    evaluations_done: int = 0
    evaluations_new: int = 0
    failures: int = 0
    seconds: float = 0.0
    eval_seconds: float = 0.0
    by_kind: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "datasets": self.datasets,
            "skipped": [{"dataset": s, "reason": r} for s, r in self.skipped],
            "evaluations_done": self.evaluations_done,
            "evaluations_new": self.evaluations_new,
            "failures": self.failures,
            "seconds": round(self.seconds, 2),
            "eval_seconds": round(self.eval_seconds, 2),
            "by_kind": self.by_kind,
        }


# ----------------------------------------------------------------------------------------- worker side
def _evaluate_task(source: DatasetSource, cfg: ConfigurationRecord, protocol: EvalProtocol, time_limit: float | None,
                   memory_limit_mb: int | None, run_source: str = SOURCE_MATRIX) -> tuple[RunRecord, ConfigurationRecord]:
    """Runs in a worker: evaluate one configuration on one dataset and return the run (not written)."""
    ds = source.load()
    space = get_space(ds.task)
    result = evaluate_config(ds, space, dict(cfg.values), protocol=protocol, time_limit=time_limit, memory_limit_mb=memory_limit_mb)
    run = to_run_record(result, dataset_id=ds.dataset_id, config_id=cfg.config_id, protocol_key=protocol.key,
                        source=run_source)
    return run, cfg


def _explore_task(source: DatasetSource, known: dict[str, RunRecord], n_trials: int, protocol: EvalProtocol,
                  time_limit: float | None, memory_limit_mb: int | None, seed: int) -> list[tuple[RunRecord, ConfigurationRecord]]:
    """Runs in a worker: a short cold SMAC search on one dataset, replaying ``known`` runs (config_id -> run)."""
    import tempfile

    from smac import HyperparameterOptimizationFacade as HPO
    from smac import Scenario
    from smac.runhistory.dataclasses import TrialValue
    from smac.runhistory.enumerations import StatusType

    from metalearn.search.loop import (
        crash_cost_for,
        ordered_acquisition_maximizer,
        smac_cost,
        surrogate_model,
    )

    ds = source.load()
    space = get_space(ds.task)
    crash = crash_cost_for(ds)
    out: list[tuple[RunRecord, ConfigurationRecord]] = []
    with tempfile.TemporaryDirectory(prefix="metalearn-explore-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        scenario = Scenario(space.configspace, output_directory=Path(tmp) / "smac", deterministic=True,
                            crash_cost=crash, n_trials=n_trials, seed=seed)
        smac = HPO(
            scenario,
            target_function=None,
            model=surrogate_model(space.configspace, seed),
            intensifier=HPO.get_intensifier(scenario, max_config_calls=1),
            initial_design=HPO.get_initial_design(scenario, n_configs=max(1, n_trials // 3)),
            acquisition_maximizer=ordered_acquisition_maximizer(HPO, scenario),
            overwrite=True,
            logging_level=40,
        )
        for _ in range(n_trials):
            info = smac.ask()
            values = space.validate(dict(info.config))
            cfg = ConfigurationRecord.create(space.name, space.version, values)
            run = known.get(cfg.config_id)
            if run is None:
                result = evaluate_config(ds, space, values, protocol=protocol, time_limit=time_limit,
                                         memory_limit_mb=memory_limit_mb)
                run = to_run_record(result, dataset_id=ds.dataset_id, config_id=cfg.config_id,
                                    protocol_key=protocol.key, source=SOURCE_EXPLORE)
                out.append((run, cfg))
            ok = run.status == "ok" and not math.isnan(run.score)
            smac.tell(info, TrialValue(cost=max(smac_cost(ds.task.metric, run.score), 0.0) if ok else crash,
                                       time=run.fit_seconds,
                                       status=StatusType.SUCCESS if ok else StatusType.CRASHED), save=False)
    return out


def _metafeature_task(source: DatasetSource, seed: int) -> tuple[Any, Any]:
    from metalearn.metalearning.metafeatures import metafeature_record

    ds = source.load()
    return dataset_record(ds), metafeature_record(ds, seed=seed)


# ----------------------------------------------------------------------------------------- owner side
def build_kb(
    kb: KnowledgeBase,
    sources: Sequence[DatasetSource],
    settings: BuildSettings | None = None,
    progress: Any = None,
) -> BuildReport:
    """Build (or continue building) the KB from ``sources``. See the module docstring."""
    from metalearn.metalearning.metafeatures import EXTRACTOR_VERSION

    settings = settings or BuildSettings()
    report = BuildReport()
    t0 = time.monotonic()
    protocol = settings.protocol
    ex = Executor(settings.workers, pool="dask", scheduler=settings.scheduler)
    prog = progress or NullProgress()
    try:
        # 1. register: datasets + meta-features (skip those already there)
        registered: dict[str, tuple[DatasetSource, str, str]] = {}  # dataset_id -> (source, kind, name)
        todo = []
        for src in sources:
            found = kb.find_datasets(name=_name_of(src))
            rec = next((d for d in found if _has_mf(kb, d.dataset_id, EXTRACTOR_VERSION)), None)
            if rec is not None:
                registered[rec.dataset_id] = (src, rec.kind, rec.name)
            else:
                todo.append(src)
        # a resumed build says what it already has ("2 to do" of two stored datasets before)
        prog.phase("meta-features", len(sources), done=len(sources) - len(todo))
        for (src, _), res in ex.map_unordered(_metafeature_task, [(s, settings.seed) for s in todo]):
            if isinstance(res, Exception):
                report.skipped.append((src.spec, f"{type(res).__name__}: {res}"))
            else:
                drec, mrec = res
                with kb.transaction():
                    kb.put_dataset(drec)
                    kb.put_metafeatures(mrec)
                registered[drec.dataset_id] = (src, drec.kind, drec.name)
            prog.advance()
        report.datasets = len(registered)
        by_kind: dict[str, list[str]] = {}
        for did, (_, kind, _name) in sorted(registered.items(), key=lambda kv: kv[1][2]):
            by_kind.setdefault(kind, []).append(did)

        def known_runs(did: str) -> dict[str, RunRecord]:
            return {r.config_id: r for r in kb.list_runs(dataset_id=did) if r.protocol == protocol.key}

        def store(pairs: Sequence[tuple[RunRecord, ConfigurationRecord]]) -> None:
            if not pairs:
                return
            with kb.transaction():
                for _, cfg in pairs:
                    kb.put_configuration(cfg)
                new = kb.add_runs([r for r, _ in pairs])
            report.evaluations_new += new
            for r, _ in pairs:
                report.eval_seconds += r.fit_seconds + r.predict_seconds
                if r.status != "ok":
                    report.failures += 1

        if settings.min_rows:
            sizes = {did: kb.get_dataset(did).n_rows for dids in by_kind.values() for did in dids}
            by_kind = {k: kept for k, dids in by_kind.items()
                       if (kept := [d for d in dids if sizes[d] > settings.min_rows])}
        extension = bool(settings.families or settings.portfolio)

        # 2. explore each dataset with a short, replayable SMAC search (not when extending)
        if settings.n_explore > 0 and not extension:
            resumed = any(known_runs(did) for dids in by_kind.values() for did in dids)
            prog.phase("exploration", len(registered), note=(
                " (a resumed build replays each dataset's exploration: the runs stored earlier are told, not run "
                "again)" if resumed else ""))
            jobs = [
                (registered[did][0], known_runs(did), settings.n_explore, protocol, settings.trial_time_limit,
                 settings.memory_limit_mb, settings.seed)
                for kind in sorted(by_kind) for did in by_kind[kind]
            ]
            for args, res in ex.map_unordered(_explore_task, jobs):
                if isinstance(res, Exception):
                    report.skipped.append((args[0].spec, f"exploration failed: {type(res).__name__}: {res}"))
                else:
                    store(res)
                prog.advance(failures=report.failures)

        # 3. common candidate set per kind, then 4. the dense matrix
        # Jobs go in blocks of configurations (block-major, then dataset): an interrupted build leaves
        # every dataset with the same leading configurations — a smaller but still dense matrix — while
        # each worker still evaluates a block on one dataset in a row (its dataset cache stays warm).
        grid_jobs: list[tuple[Any, ...]] = []
        commons: dict[str, list[ConfigurationRecord]] = {}
        run_source = SOURCE_FAMILIES if settings.families else SOURCE_PORTFOLIO if settings.portfolio else SOURCE_MATRIX
        for kind in sorted(by_kind):
            if settings.portfolio:  # stored configurations, under their stored records
                commons[kind] = portfolio_candidates(kb, TaskKind(kind), by_kind[kind], settings, protocol)
            else:
                space = get_space(TaskKind(kind))
                values_list = (family_candidates(TaskKind(kind), settings) if settings.families
                               else common_candidates(kb, TaskKind(kind), by_kind[kind], settings, protocol))
                commons[kind] = stored_records(kb, space, values_list)
            report.by_kind[kind] = {"datasets": len(by_kind[kind]), "configs": len(commons[kind])}
        have = {did: set(known_runs(did)) for kind in by_kind for did in by_kind[kind]}
        n_blocks = max((len(c) for c in commons.values()), default=0)
        for start in range(0, n_blocks, MATRIX_BLOCK):
            for kind in sorted(by_kind):
                block = commons[kind][start : start + MATRIX_BLOCK]
                for did in by_kind[kind]:
                    for cfg in block:
                        if cfg.config_id not in have[did]:
                            grid_jobs.append((registered[did][0], cfg, protocol, settings.trial_time_limit,
                                              settings.memory_limit_mb, run_source))
        n_matrix = sum(len(commons[kind]) * len(by_kind[kind]) for kind in by_kind)
        prog.phase("family extension" if settings.families else "size portfolio" if settings.portfolio
                   else "performance matrix", n_matrix, done=n_matrix - len(grid_jobs))
        batch: list[tuple[RunRecord, ConfigurationRecord]] = []
        last = time.monotonic()
        for args, res in ex.map_unordered(_evaluate_task, grid_jobs):
            if isinstance(res, Exception):
                report.skipped.append((args[0].spec, f"evaluation failed: {type(res).__name__}: {res}"))
            else:
                batch.append(res)
            if len(batch) >= 20 or time.monotonic() - last > 2.0:
                store(batch)
                batch, last = [], time.monotonic()
            prog.advance(failures=report.failures)
        store(batch)
        report.evaluations_done = sum(len(known_runs(did)) for did in registered)
    except BaseException:  # Ctrl-C or an error: stop the workers without waiting for their jobs
        ex.terminate()
        raise
    finally:
        ex.close()
        report.seconds = time.monotonic() - t0
        prog.close()
    return report


class _Candidates:
    """An ordered candidate set of at most ``limit`` distinct (validated) configurations of ``space``."""

    def __init__(self, space: Any, limit: int) -> None:
        self.space, self.limit = space, limit
        self.chosen: list[dict[str, Any]] = []
        self.ids: set[str] = set()

    def add(self, values: dict[str, Any]) -> None:
        values = self.space.validate(values)
        cid = ConfigurationRecord.create(self.space.name, self.space.version, values).config_id
        if cid not in self.ids and len(self.chosen) < self.limit:
            self.ids.add(cid)
            self.chosen.append(values)


def common_candidates(kb: KnowledgeBase, kind: TaskKind, dataset_ids: Sequence[str], settings: BuildSettings,
                      protocol: EvalProtocol) -> list[dict[str, Any]]:
    """The common configuration set of a kind: default, each dataset's best explored config, space-filling fill.

    Deterministic given the stored exploration runs (datasets in name order, ties by config id).
    """
    space = get_space(kind)
    candidates = _Candidates(space, settings.n_configs)
    chosen, add = candidates.chosen, candidates.add
    add(space.default())
    # only exploration runs count here: the matrix phase must not change the set it is evaluating
    quota = settings.n_configs // 2
    bests: list[str] = []
    for did in dataset_ids:
        runs = [r for r in kb.list_runs(dataset_id=did)
                if r.protocol == protocol.key and r.ok and r.source == SOURCE_EXPLORE]
        if not runs:
            continue
        sign = -1.0 if _greater(runs[0].metric) else 1.0
        best = min(runs, key=lambda r: (sign * r.score, r.config_id))
        bests.append(best.config_id)
    configs = kb.get_configurations(bests)
    for cid in bests:
        if len(chosen) >= 1 + quota:
            break
        c = configs.get(cid)
        if c is not None and c.space == space.name and c.space_version == space.version:
            add(dict(c.values))
    cs = space.configspace
    cs.seed(settings.seed + 1)
    tries = 0
    while len(chosen) < settings.n_configs and tries < 50 * settings.n_configs:
        tries += 1
        add(dict(cs.sample_configuration()))
    return chosen


def family_candidates(kind: TaskKind, settings: BuildSettings) -> list[dict[str, Any]]:
    """The candidate set of a family extension: ``settings.n_configs`` configurations of ``settings.families``.

    First each family's default configuration (the space's default with ``model`` set to the family and
    the family's hyperparameters at their defaults), then seeded random configurations of the space
    restricted to the families, round-robin over them (family order as given). Deterministic: the
    same settings give the same list, so a resumed extension evaluates exactly the same configurations.
    """
    space = get_space(kind)
    candidates = _Candidates(space, settings.n_configs)
    chosen, add = candidates.chosen, candidates.add
    for fam in settings.families:
        default = space.family_default(fam)
        if default is not None:
            add(default)
    # seeded samples per family: each family its own stream, so adding a family leaves the others' alone
    streams = {}
    for i, fam in enumerate(settings.families):
        cs = space.configspace
        cs.seed(settings.seed + 1000 + i)
        pool: list[dict[str, Any]] = []
        tries = 0
        while len(pool) < settings.n_configs and tries < 200 * settings.n_configs:
            tries += 1
            values = dict(cs.sample_configuration())
            if values.get("model") == fam:
                pool.append(values)
        streams[fam] = pool
    rank = 0
    while len(chosen) < settings.n_configs and any(rank < len(p) for p in streams.values()):
        for fam in settings.families:
            if rank < len(streams[fam]):
                add(streams[fam][rank])
        rank += 1
    return chosen


def portfolio_candidates(kb: KnowledgeBase, kind: TaskKind, dataset_ids: Sequence[str], settings: BuildSettings,
                         protocol: EvalProtocol) -> list[ConfigurationRecord]:
    """The candidate set of a size portfolio: ``settings.portfolio`` configurations the KB has for ``kind``.

    Ranked by their mean normalised regret over ``dataset_ids`` in the KB's runs under protocols other
    than ``protocol`` (the recommenders' matrix of those runs; a configuration counts on the datasets it
    was evaluated on, and needs half of them): first the best configuration of each model family (best
    family first), then each family's second best (:data:`PORTFOLIO_ROUNDS`), so every family is measured
    at the new size with more than one setting, then the best of the rest. Only
    configurations still valid in today's space, under their stored records (so the new runs line up
    with the old ones). Deterministic given those runs — the build's own runs never change it, so a
    resumed build evaluates the same list.
    """
    from metalearn.metalearning.matrix import normalised_regret_matrix, performance_matrix

    space = get_space(kind)
    runs = kb.runs_frame(kind=str(kind), space=space.name, ok_only=False)
    if len(runs) == 0:
        return []
    runs = runs[(runs["protocol"].astype(str) != protocol.key) & runs["dataset_id"].isin(list(dataset_ids))]
    regret = normalised_regret_matrix(performance_matrix(runs))
    if regret.size == 0:
        return []
    counts = regret.notna().sum(axis=0)
    mean = regret.mean(axis=0, skipna=True)[counts >= max(1, (len(regret) + 1) // 2)]
    records = kb.get_configurations([str(c) for c in mean.index])
    ranked = sorted(((float(m), str(cid)) for cid, m in mean.items()
                     if str(cid) in records and space.is_valid(dict(records[str(cid)].values))))
    by_family: dict[Any, list[str]] = {}
    for _, cid in ranked:
        by_family.setdefault(records[cid].values.get("model"), []).append(cid)
    order = list(by_family)  # families by their best configuration's regret
    chosen = [by_family[f][r] for r in range(PORTFOLIO_ROUNDS) for f in order if r < len(by_family[f])]
    taken = set(chosen)
    chosen += [cid for _, cid in ranked if cid not in taken]
    return [records[cid] for cid in chosen[: settings.portfolio]]


def stored_records(kb: KnowledgeBase, space: Any, values_list: Sequence[dict[str, Any]]) -> list[ConfigurationRecord]:
    """Records of the configurations ``values_list``: the KB's stored record when it holds the same values
    under an older space version (still valid in today's space; the oldest, then by id), else a new record.

    A configuration keeps one id, so a new evaluation of it lines up with its earlier ones (one column of
    the performance matrix, not two with the same values): e.g. the random forest's default, stored with
    space version 1, is the default a family extension of version 2 evaluates.
    """
    frame = kb.dump_table("configurations")
    ids = [str(c) for c in frame.loc[frame["space"] == space.name, "config_id"]] if len(frame) else []
    stored: dict[str, ConfigurationRecord] = {}  # the id the values have in today's space -> the stored record
    for rec in sorted(kb.get_configurations(ids).values(), key=lambda r: (len(str(r.space_version)), str(r.space_version), r.config_id)):
        if space.is_valid(dict(rec.values)):
            stored.setdefault(ConfigurationRecord.create(space.name, space.version, space.validate(rec.values)).config_id, rec)
    fresh = [ConfigurationRecord.create(space.name, space.version, space.validate(v)) for v in values_list]
    return [stored.get(rec.config_id, rec) for rec in fresh]


def _greater(metric: str) -> bool:
    from metalearn.data.metrics import get_metric

    return get_metric(metric).greater_is_better


def _has_mf(kb: KnowledgeBase, dataset_id: str, version: str) -> bool:
    from metalearn.data.errors import NotFoundError

    try:
        kb.get_metafeatures(dataset_id, version)
        return True
    except NotFoundError:
        return False


def _name_of(src: DatasetSource) -> str:
    spec = src.spec
    return spec.split(":", 1)[1] if spec.startswith("corpus:") else Path(spec).stem if "/" in spec else spec


def resolve_sources(
    corpus: str | None = None,
    suite: str | None = None,
    names: Sequence[str] | None = None,
    kinds: Sequence[str] | None = None,
) -> tuple[list[DatasetSource], list[str]]:
    """The datasets of a build: a corpus directory (all, or ``names``), a suite resolved in the corpus by
    OpenML id, or (no corpus) a suite loaded through openml-python. Returns (sources, missing names)."""
    from metalearn.data.loading import Corpus

    if corpus is None and suite is None:
        raise InputError("give --corpus DIR and/or --suite openml-cc18|amlb|FILE")
    missing: list[str] = []
    if suite is not None:
        from metalearn.data.suites import load_suite, resolve_in_corpus

        s = load_suite(suite)
        if corpus is not None:
            found, miss = resolve_in_corpus(s, Corpus(corpus))
            missing = [f"{e.name} (did {e.did})" for e in miss]
            specs = [f"corpus:{name}" for _, name in found]
        else:
            specs = [f"openml:{e.did}" for e in s.entries]
    else:
        c = Corpus(str(corpus))
        specs = [f"corpus:{n}" for n in c.names()]
    if names:
        wanted = set(names)
        known = {sp.split(":", 1)[1] for sp in specs}
        unknown = sorted(wanted - known)
        if unknown:
            raise InputError(f"unknown datasets {unknown[:10]}; see the corpus manifest for names")
        specs = [sp for sp in specs if sp.split(":", 1)[1] in wanted]
    if kinds and corpus is not None:
        c = Corpus(str(corpus))
        allowed = {str(TaskKind(k)) for k in kinds}
        specs = [sp for sp in specs if not sp.startswith("corpus:") or c.entry(sp.split(":", 1)[1]).kind in allowed]
    return [DatasetSource(sp, corpus) for sp in specs], missing

