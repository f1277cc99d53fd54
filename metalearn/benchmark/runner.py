"""Benchmark warm-start strategies side by side on held-out datasets (OpenML suites or a corpus).

For every benchmarked dataset:

1. **prepare**: load it, subsample to ``max_rows`` (seeded, stratified on a class target), make one
   seeded outer train/test split (stratified where applicable) and extract the meta-features of the
   training part. The split is fixed per dataset (``split_seed``): the benchmark seeds vary the
   optimisers, not the data, so every strategy and seed searches the same training data with the same
   CV folds and their scores are comparable (HPO-B style).
2. **no leakage**: every meta-learning strategy sees the product KB *without* this dataset and its
   near-duplicates — same fingerprint (of the full data or the training part), same OpenML id, same
   name after normalisation (``1089_USCrime`` ~ ``uscrime``), or the same shape and near-zero
   meta-feature distance (see :func:`leakage_exclusions`). Recommendations come from
   :meth:`metalearn.metalearning.advisor.Advisor.recommend` with ``exclude_ids``.
3. **cells**: one search per (dataset, strategy, seed) with the same trial budget, each writing into
   its own scratch in-memory KB (the product KB is only read, unless ``write_kb``): the trajectory
   (best CV score after each trial, wall-clock time) and the test score of the incumbent refit on the
   training part are stored the moment the cell finishes, so an interrupted benchmark resumes where it
   stopped.

Strategies: ``warm`` (SMAC warm-started with the product's default recommender), ``cold`` (SMAC's
default initial design), ``random`` (random search), one per recommender strategy name
(``knn``, ``portfolio``, ... : SMAC warm-started with that recommender) and ``flaml`` (FLAML AutoML
with the wall-clock budget the ``warm`` cell took; optional dependency).

Everything goes to ``out_dir``: ``results.duckdb`` (tables ``meta``, ``datasets``, ``cells``,
``trials``), the same tables as parquet, ``summary.json``, ``report.md`` and PNG plots (see
:mod:`metalearn.benchmark.report`). :func:`recompute_report` rebuilds the summary and the report from the stored
raw trajectories alone.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from metalearn.benchmark.cells import CellJob, CellResult, Rec, one_line, recommend, run_cell
from metalearn.benchmark.datasets import (
    DatasetInfo,
    KindView,
    dataset_key,
    kind_views,
    leakage_exclusions,
    prepare_dataset,
)
from metalearn.benchmark.settings import FLAML, BenchmarkSettings, strategy_spec
from metalearn.benchmark.store import (
    ResultStore,
    cell_row,
    dataset_row,
    dumps,
    normalise_frame,
    trial_rows,
)
from metalearn.data.errors import InputError, MetaLearnError, OpenMLUnavailableError
from metalearn.kb.base import TABLES, KnowledgeBase
from metalearn.offline.build import DatasetSource
from metalearn.runtime.executors import BrokenProcessPool, Executor
from metalearn.runtime.progress import NullProgress, RichProgress

__all__ = ["BenchmarkOutcome", "recompute_report", "run_benchmark"]

CellRows = tuple[dict[str, Any], list[dict[str, Any]]]  # a stored cell's row and its trial rows


@dataclass
class BenchmarkOutcome:
    out_dir: Path
    summary: dict[str, Any]
    n_cells: int  # cells in the benchmark (datasets x strategies x seeds)
    n_run: int  # cells run now (the others were finished earlier)
    n_failed: int  # failed cells in total
    failed_datasets: list[tuple[str, str]]  # (dataset, reason)
    missing: list[str]  # suite datasets not found
    seconds: float
    report_path: Path


def _check_resume(store: ResultStore, settings: BenchmarkSettings) -> None:
    stored = store.get_meta("comparable")
    current = json.loads(dumps(settings.comparable()))
    if stored is not None and stored != current:
        diff = sorted(k for k in current if stored.get(k) != current.get(k))
        detail = ", ".join(f"{k}: stored {stored.get(k)!r} vs now {current.get(k)!r}" for k in diff)
        raise InputError(
            f"{store.out_dir} holds a benchmark with different settings ({detail}); "
            "use the same settings to resume, or another --out directory"
        )
    store.set_meta("comparable", current)


def _kb_identity(kb: KnowledgeBase | None) -> str | None:
    """The resolved path of a KB file (None for no KB or an in-memory one: nothing to compare)."""
    path = getattr(kb, "path", None)
    if path is None or str(path) == ":memory:":
        return None
    return str(Path(path).resolve())


def _check_resume_kb(store: ResultStore, kb: KnowledgeBase | None) -> None:
    """A benchmark resumes with the KB it started with: its recommendations and leakage exclusions come
    from that KB (a resume that read another one would mix cells of two KBs in one report)."""
    current = _kb_identity(kb)
    if current is None:
        return
    stored = store.get_meta("kb")
    if stored is not None and stored != current:
        raise InputError(
            f"{store.out_dir} holds a benchmark run with the KB {stored}, not {current}; "
            f"resume it with --kb {stored}, or use another --out directory"
        )
    store.set_meta("kb", current)


def run_benchmark(
    sources: Sequence[DatasetSource],
    kb: KnowledgeBase | None,
    out_dir: str | Path,
    settings: BenchmarkSettings | None = None,
    *,
    progress: NullProgress | RichProgress | None = None,
    missing: Sequence[str] = (),
    write_report: bool = True,
) -> BenchmarkOutcome:
    """Benchmark ``settings.strategies`` on ``sources``; recommendations from ``kb`` (read only unless
    ``settings.write_kb``). Resumable: finished (dataset, strategy, seed) cells in ``out_dir`` are skipped.
    """
    from metalearn.benchmark.report import compute_summary
    from metalearn.benchmark.report import write_report as write_report_files
    from metalearn.metalearning.advisor import Advisor

    settings = settings or BenchmarkSettings()
    prog = progress or NullProgress()
    t_start = time.monotonic()
    store = ResultStore(out_dir)
    executor: Executor | None = None
    advisor = Advisor(kb) if kb is not None else None
    try:
        _check_resume(store, settings)
        _check_resume_kb(store, kb)
        store.set_meta("settings", settings.to_dict())
        store.set_meta("missing", list(missing))
        keys = [dataset_key(s) for s in sources]
        if len(set(keys)) != len(keys):
            raise InputError("the same dataset is listed twice; give each dataset once")
        executor = Executor(settings.workers)  # a process pool with workers > 1

        # 1. prepare datasets (load, split, meta-features), stored as they finish
        infos = {k: v for k, v in store.datasets().items() if v.status == "ok"}
        todo = [s for s in sources if dataset_key(s) not in infos]
        prog.phase("preparing datasets", len(sources), done=len(sources) - len(todo))
        offline: list[BaseException] = []

        def skip_offline(args: tuple[Any, ...]) -> BaseException | None:
            if offline and args[0].spec.startswith("openml"):
                return OpenMLUnavailableError(f"not tried: {offline[0]}")
            return None

        jobs = [(s, settings) for s in todo]
        for (src, _), res in executor.map_unordered(prepare_dataset, jobs, skip=skip_offline):
            key = dataset_key(src)
            if isinstance(res, OpenMLUnavailableError) and not offline:
                offline.append(res)  # the other OpenML datasets fail fast (retried on the next run)
            if isinstance(res, BaseException):
                info = DatasetInfo.failed(key, src.spec, one_line(res))
                prog.advance(text=f"[red]{key} failed[/red]")
            else:
                info = res
                prog.advance(text=f"{key}: {info.kind}, {info.n_rows_used} rows")
            store.put_dataset(info)
            if info.status == "ok":
                infos[key] = info

        # 2. leakage exclusions against the product KB, computed again on every run: the KB may have
        # changed since (--write-kb adds each benchmarked dataset's training part to it)
        kinds = sorted({i.kind for i in infos.values()})
        views = (
            kind_views(kb, advisor, kinds)
            if advisor is not None
            else {k: KindView([], pd.DataFrame()) for k in kinds}
        )
        for key, info in list(infos.items()):
            if key in keys and kb is not None:
                view = views[info.kind]
                excl = leakage_exclusions(info, view.records, view.metafeatures, settings.dup_distance)
                info = replace(info, excluded=tuple(asdict(e) for e in excl))
                store.put_dataset(info)
                infos[key] = info

        # 3. cells
        finished = store.finished()
        if settings.retry_failed:
            finished = {k: v for k, v in finished.items() if v != "failed"}
        source_of = dict(zip(keys, sources, strict=True))
        active = [k for k in keys if k in infos]
        store.set_meta("datasets", active)
        if settings.budget_mode:  # the wall-clock (peer) benchmark
            all_cells, n_run, budget_cells = _run_budget_cells(
                store, kb, advisor, executor, prog, settings, infos, active, source_of, finished
            )
            store.export_parquet()
            frames = _frames_after_run(store, infos, budget_cells)
            return _budget_outcome(out_dir, settings, frames, active, missing, all_cells, n_run, t_start,
                                   write_report)  # fmt: skip
        all_cells = [(k, st, seed) for k in active for st in settings.strategies for seed in settings.seeds]
        todo_cells = [c for c in all_cells if c not in finished]
        prog.phase("benchmark cells", len(all_cells), done=len(all_cells) - len(todo_cells))
        rec_cache: dict[tuple[str, str], tuple[Rec, ...]] = {}

        def job_for(cell: tuple[str, str, int], budget: float | None = None) -> CellJob:
            key, strat, seed = cell
            spec = strategy_spec(strat)
            info = infos[key]
            recs: tuple[Rec, ...] = ()
            if spec.warm_start and spec.recommender is not None and advisor is not None:
                ck = (key, spec.recommender)
                if ck not in rec_cache:
                    rec_cache[ck] = recommend(advisor, info, spec.recommender, settings.n_warm)
                recs = rec_cache[ck]
            return CellJob(source_of[key], key, strat, seed, settings, info.metafeatures, recs, budget)

        def warm_seconds(key: str, seed: int) -> float | None:
            row = store.con.execute(
                "SELECT search_seconds FROM cells WHERE dataset = ? AND strategy = 'warm' AND seed = ? "
                "AND status = 'done'",
                [key, seed],
            ).fetchone()
            return None if row is None else float(row[0])

        ready: deque[tuple[CellJob]] = deque()  # jobs for the executor: (job,)
        waiting: dict[tuple[str, int], list[tuple[str, str, int]]] = {}
        for cell in todo_cells:
            key, strat, seed = cell
            if strat == FLAML and "warm" in settings.strategies and (key, "warm", seed) not in finished:
                waiting.setdefault((key, seed), []).append(cell)  # after warm: its wall-clock is the budget
            elif strat == FLAML:
                ready.append((job_for(cell, warm_seconds(key, seed)),))
            else:
                ready.append((job_for(cell),))
        n_run = 0
        new_cells: dict[tuple[str, str, int], tuple[dict[str, Any], list[dict[str, Any]]]] = {}

        def finish(job: CellJob, result: CellResult) -> None:
            nonlocal n_run
            new_cells[(result.dataset, result.strategy, int(result.seed))] = _store_cell(
                store, kb, result, settings
            )
            n_run += 1
            mark = "" if result.status == "done" else f" [red]failed: {result.error[:60]}[/red]"
            prog.advance(
                text=f"{result.dataset}/{result.strategy}/s{result.seed}: {result.n_trials} trials, "
                f"{result.search_seconds:.0f} s{mark}"
            )
            if job.strategy == "warm":
                budget = result.search_seconds if result.status == "done" else None
                for cell in waiting.pop((job.key, job.seed), []):
                    ready.append((job_for(cell, budget),))  # the executor reads `ready` as it goes

        while ready or waiting:
            if not ready:  # flaml cells whose warm cell is not in this run
                for cells_waiting in waiting.values():
                    ready.extend((job_for(c),) for c in cells_waiting)
                waiting.clear()
            for (job,), res in executor.map_unordered(run_cell, ready):
                if isinstance(res, BrokenProcessPool):  # the executor starts a new pool
                    error = "a worker process died (out of memory or killed); rerun with --retry-failed"
                    res = CellResult(job.key, job.strategy, job.seed, status="failed", error=error)
                elif isinstance(res, BaseException):
                    res = CellResult(job.key, job.strategy, job.seed, status="failed", error=one_line(res))
                finish(job, res)

        store.export_parquet()
        frames = _frames_after_run(store, infos, new_cells)
    except BaseException:  # Ctrl-C (the cells ignore it) or an error: stop the running cells now
        if executor is not None:
            executor.terminate()
        raise
    finally:
        if executor is not None:
            executor.close()  # nothing left to close after terminate()
        store.close()
    summary = compute_summary(
        frames["datasets"],
        frames["cells"],
        frames["trials"],
        settings.to_dict(),
        keys=active,
        missing=list(missing),
    )
    report_path = Path(out_dir) / "report.md"
    if write_report:
        report_path = write_report_files(out_dir, summary)
    cells = frames["cells"]
    sel = cells[
        cells["dataset"].isin(active)
        & cells["strategy"].isin(settings.strategies)
        & cells["seed"].isin(settings.seeds)
    ]
    return _outcome(out_dir, summary, frames, sel, len(all_cells), n_run, missing, t_start, report_path)


def _outcome(
    out_dir: str | Path,
    summary: dict[str, Any],
    frames: dict[str, pd.DataFrame],
    sel: pd.DataFrame,
    n_cells: int,
    n_run: int,
    missing: Sequence[str],
    t_start: float,
    report_path: Path,
) -> BenchmarkOutcome:
    """The outcome of a run (``sel``: the stored cells of this benchmark)."""
    stored_failed = [
        (r["key"], r["error"]) for r in frames["datasets"].to_dict("records") if r["status"] == "failed"
    ]
    return BenchmarkOutcome(
        out_dir=Path(out_dir),
        summary=summary,
        n_cells=n_cells,
        n_run=n_run,
        n_failed=int((sel["status"] == "failed").sum()),
        failed_datasets=stored_failed,
        missing=list(missing),
        seconds=time.monotonic() - t_start,
        report_path=report_path,
    )


def _frames_after_run(
    store: ResultStore,
    infos: dict[str, DatasetInfo],
    new_cells: dict[tuple[str, str, int], tuple[dict[str, Any], list[dict[str, Any]]]],
) -> dict[str, pd.DataFrame]:
    """The tables as this run knows them: rows of the cells it ran (kept in memory), the rest (cells
    finished in earlier runs, failed datasets) read back from the store."""
    old_cells = store.frame("cells")
    old_trials = store.frame("trials")
    ran = set(new_cells)

    def not_new(df: pd.DataFrame) -> pd.Series:
        keys = list(zip(df["dataset"], df["strategy"], df["seed"].astype(int), strict=True))
        return pd.Series([k not in ran for k in keys], index=df.index, dtype=bool)

    cells = normalise_frame(
        "cells", [*old_cells[not_new(old_cells)].to_dict("records"), *(c for c, _ in new_cells.values())]
    )
    trials = normalise_frame(
        "trials",
        [
            *old_trials[not_new(old_trials)].to_dict("records"),
            *(t for _, ts in new_cells.values() for t in ts),
        ],
    )
    old_ds = store.frame("datasets")
    datasets = normalise_frame(
        "datasets",
        [
            *(r for r in old_ds.to_dict("records") if r["key"] not in infos),
            *(dataset_row(i) for i in infos.values()),
        ],
    )
    return {"datasets": datasets, "cells": cells, "trials": trials}


def _store_cell(
    store: ResultStore, kb: KnowledgeBase | None, result: CellResult, settings: BenchmarkSettings
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Write a finished cell (and, with write_kb, its scratch KB into the product KB); returns its rows."""
    if settings.write_kb and kb is not None and result.kb_tables:
        try:
            with kb.transaction():
                for table in TABLES:
                    frame = result.kb_tables.get(table)
                    if frame is not None and len(frame):
                        kb.load_table(table, frame)
        except MetaLearnError as exc:
            result.error = (result.error + "; " if result.error else "") + f"writing to the KB failed: {exc}"
    result.kb_tables = None
    cell, trials = cell_row(result), trial_rows(result)
    store.put_rows(cell, trials)
    return cell, trials


# ------------------------------------------------------------------------------------------ wall-clock
def _run_budget_cells(
    store: ResultStore,
    kb: KnowledgeBase | None,
    advisor: Any,
    executor: Executor,
    prog: NullProgress | RichProgress,
    settings: BenchmarkSettings,
    infos: dict[str, DatasetInfo],
    active: list[str],
    source_of: dict[str, DatasetSource],
    finished: dict[tuple[str, str, int], str],
) -> tuple[list[tuple[str, str, int]], int, dict[tuple[str, str, int], CellRows]]:
    """The cells of a wall-clock benchmark (see :mod:`metalearn.benchmark.peers`): every system of each
    dataset's kind at every budget and seed; finished cells are skipped."""
    from metalearn.benchmark.peers import PeerJob, run_peer_cell
    from metalearn.benchmark.settings import PRODUCT, TOP1, peer_systems, split_strategy
    from metalearn.metalearning.strategies import DEFAULT_STRATEGY

    all_cells = [
        (k, st, seed)
        for k in active
        for st in peer_systems(infos[k].kind, settings.budgets, settings.peers, settings.zero_shot)
        for seed in settings.seeds
    ]
    todo = [c for c in all_cells if c not in finished]
    prog.phase("benchmark cells", len(all_cells), done=len(all_cells) - len(todo))
    base_tables: dict[str, pd.DataFrame] | None = None
    if kb is not None and any(split_strategy(st)[0] == PRODUCT for _, st, _ in todo):
        base_tables = {t: kb.dump_table(t) for t in TABLES}  # read once; each cell gets a filtered copy

    def job_for(cell: tuple[str, str, int]) -> PeerJob:
        key, strat, seed = cell
        info = infos[key]
        system, _ = split_strategy(strat)
        hidden = frozenset({e["dataset_id"] for e in info.excluded} | {info.dataset_id, info.train_id})
        rec = None
        if system == TOP1 and advisor is not None:
            recs = recommend(advisor, info, DEFAULT_STRATEGY, 1)
            rec = recs[0] if recs else None
        tables = base_tables if system == PRODUCT else None  # the cell drops the hidden datasets
        return PeerJob(source_of[key], key, strat, seed, settings, tables, hidden, rec)

    n_run = 0
    new_cells: dict[tuple[str, str, int], CellRows] = {}
    for (job,), res in executor.map_unordered(run_peer_cell, [(job_for(c),) for c in todo]):
        if isinstance(res, BrokenProcessPool):
            error = "a worker process died (out of memory or killed); rerun with --retry-failed"
            res = CellResult(job.key, job.strategy, job.seed, status="failed", error=error)
        elif isinstance(res, BaseException):
            res = CellResult(job.key, job.strategy, job.seed, status="failed", error=one_line(res))
        new_cells[(res.dataset, res.strategy, int(res.seed))] = _store_cell(store, kb, res, settings)
        n_run += 1
        mark = "" if res.status == "done" else f" [red]failed: {res.error[:60]}[/red]"
        budget = "" if res.budget_seconds is None else f" of {res.budget_seconds:g} s"
        prog.advance(
            text=f"{res.dataset}/{res.strategy}/s{res.seed}: {res.search_seconds:.0f} s{budget}{mark}"
        )
    return all_cells, n_run, new_cells


def _budget_outcome(
    out_dir: str | Path,
    settings: BenchmarkSettings,
    frames: dict[str, pd.DataFrame],
    active: list[str],
    missing: Sequence[str],
    all_cells: list[tuple[str, str, int]],
    n_run: int,
    t_start: float,
    write_report: bool,
) -> BenchmarkOutcome:
    from metalearn.benchmark.peer_report import compute_peer_summary, write_peer_report

    summary = compute_peer_summary(
        frames["datasets"], frames["cells"], settings.to_dict(), keys=active, missing=list(missing)
    )
    report_path = Path(out_dir) / "report.md"
    if write_report:
        report_path = write_peer_report(out_dir, summary)
    cells = frames["cells"]
    wanted = set(all_cells)
    keys = zip(cells["dataset"], cells["strategy"], cells["seed"].astype(int), strict=True)
    sel = cells[[k in wanted for k in keys]]
    return _outcome(out_dir, summary, frames, sel, len(all_cells), n_run, missing, t_start, report_path)


# ------------------------------------------------------------------------------------------ report
def recompute_report(out_dir: str | Path, write: bool = True) -> dict[str, Any]:
    """Recompute the summary (and, with ``write``, report.md, summary.json and the plots) from the raw
    trajectories stored in ``out_dir/results.duckdb`` alone (same datasets, strategies and seeds as the
    last run that wrote there)."""
    from metalearn.benchmark.report import compute_summary, write_report

    store = ResultStore(out_dir, read_only=True)
    try:
        settings = store.get_meta("settings") or {}
        missing = store.get_meta("missing") or []
        active = store.get_meta("datasets")
        frames = {t: store.frame(t) for t in ("datasets", "cells", "trials")}
    finally:
        store.close()
    if settings.get("budgets"):  # a wall-clock (peer) benchmark
        from metalearn.benchmark.peer_report import compute_peer_summary, write_peer_report

        summary = compute_peer_summary(
            frames["datasets"], frames["cells"], settings, keys=active, missing=list(missing)
        )
        if write:
            write_peer_report(out_dir, summary)
        return summary
    summary = compute_summary(
        frames["datasets"], frames["cells"], frames["trials"], settings, keys=active, missing=list(missing)
    )
    if write:
        write_report(out_dir, summary)
    return summary
