"""The offline KB build (metalearn.offline.build) on real corpus data: registration + meta-features, the SMAC
exploration, the common candidate set and the dense matrix; resume after interruptions at every phase
(the acceptance criterion: a killed and re-run build finishes with exactly the runs of an uninterrupted
one); Dask workers; failing datasets; and how sources are resolved from a corpus and a suite."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import metalearn.metalearning.matrix as matrix_mod
import metalearn.offline.build as build_mod
from metalearn.data.errors import InputError
from metalearn.data.metrics import get_metric
from metalearn.data.task import DEFAULT_METRIC, TaskKind
from metalearn.kb import ConfigurationRecord, open_kb, records_equal
from metalearn.kb.base import KnowledgeBase
from metalearn.kb.records import RunRecord
from metalearn.metalearning.matrix import normalised_regret_matrix, performance_matrix
from metalearn.metalearning.metafeatures import EXTRACTOR_VERSION, metafeature_names
from metalearn.offline.build import (
    SOURCE_EXPLORE,
    SOURCE_FAMILIES,
    SOURCE_MATRIX,
    SOURCE_PORTFOLIO,
    BuildSettings,
    DatasetSource,
    build_kb,
    common_candidates,
    family_candidates,
    portfolio_candidates,
    resolve_sources,
    stored_records,
)
from metalearn.pipelines.spaces import get_space

REPO = Path(__file__).resolve().parents[1]

# two kinds, two datasets each; one of each kind is larger than max_rows (so it is subsampled)
DATASETS = {
    "lupus": "binary",  # 87 rows
    "prnn_synth": "binary",  # 250 rows
    "192_vineyard": "regression",  # 52 rows
    "579_fri_c0_250_5": "regression",  # 250 rows
}
SETTINGS = BuildSettings(n_configs=5, n_explore=3, max_rows=200, n_folds=2, trial_time_limit=10.0)

# the fields of a run that do not depend on timing (fit/predict seconds and created_at do)
DETERMINISTIC = ("run_id", "dataset_id", "config_id", "protocol", "status", "metric", "score", "cost",
                 "metrics", "source", "budget", "n_rows_used")


def _sources(corpus: Path, names: list[str] | None = None) -> list[DatasetSource]:
    return [DatasetSource(f"corpus:{n}", str(corpus)) for n in (names or list(DATASETS))]


def _runs(kb: KnowledgeBase) -> dict[str, RunRecord]:
    return {r.run_id: r for r in kb.list_runs()}


def _det(run: RunRecord) -> dict[str, Any]:
    return {f: getattr(run, f) for f in DETERMINISTIC}


def _assert_same_runs(got: dict[str, RunRecord], want: dict[str, RunRecord]) -> None:
    assert set(got) == set(want), (
        f"missing {sorted(set(want) - set(got))[:5]}, extra {sorted(set(got) - set(want))[:5]}"
    )
    for rid, run in want.items():
        assert records_equal(_det(got[rid]), _det(run)), (rid, _det(got[rid]), _det(run))


def _config_id(kind: str, values: dict[str, Any]) -> str:
    space = get_space(TaskKind(kind))
    return ConfigurationRecord.create(space.name, space.version, values).config_id


def _kind_datasets(kb: KnowledgeBase) -> dict[str, list[str]]:
    """kind -> dataset ids in name order (the order build_kb uses)."""
    out: dict[str, list[str]] = {}
    for d in sorted(kb.list_datasets(), key=lambda d: d.name):
        out.setdefault(d.kind, []).append(d.dataset_id)
    return out


class Interrupt:
    """A build progress display that raises KeyboardInterrupt (as Ctrl-C would) at the ``after``-th
    advance of phase ``phase``; records the phases it saw and whether the build closed it."""

    def __init__(self, phase: str | None = None, after: int = 1) -> None:
        self.target = phase
        self.after = after
        self.phases: dict[str, int] = {}
        self.advances: dict[str, int] = {}
        self.earlier: dict[str, int] = {}
        self.current: str | None = None
        self.closed = False

    def phase(self, name: str, total: int, done: int = 0, note: str = "") -> None:
        self.current = name
        self.phases[name] = total
        self.advances[name] = done  # finished earlier: the phase starts there
        self.earlier[name] = done

    def advance(self, **fields: Any) -> None:
        assert self.current is not None, "advance before phase"
        self.advances[self.current] += 1
        if self.current == self.target and self.advances[self.current] - self.earlier[self.current] >= self.after:
            raise KeyboardInterrupt

    def close(self) -> None:
        self.closed = True


class SlowClock:
    """Stands in for the ``time`` module inside metalearn.offline.build: each reading is 3 s after the last, as if
    every evaluation took that long, so the matrix phase writes each result as soon as it comes back."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        self.now += 3.0
        return self.now

    def time_ns(self) -> int:
        return time.time_ns()


@pytest.fixture(scope="module")
def reference(corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One uninterrupted build into a DuckDB file: its path, report, runs and progress phases."""
    path = tmp_path_factory.mktemp("build-ref") / "kb.duckdb"
    kb = open_kb(path)
    progress = Interrupt()
    report = build_kb(kb, _sources(corpus_dir), SETTINGS, progress=progress)
    runs = _runs(kb)
    kb.close()
    return {"path": path, "report": report, "runs": runs, "progress": progress}


# ------------------------------------------------------------------------------------------ settings
@pytest.mark.parametrize(
    ("field", "value", "flag"),
    [("n_configs", 0, "--configs"), ("n_explore", -1, "--explore"), ("max_rows", 10, "--max-rows"),
     ("workers", 0, "--workers"), ("trial_time_limit", 0, "--trial-time-limit"), ("trial_time_limit", -3, "--trial-time-limit")],
)
def test_build_settings_reject_bad_values(field: str, value: int, flag: str) -> None:
    kwargs: dict[str, Any] = {field: value}
    with pytest.raises(InputError, match=flag):
        BuildSettings(**kwargs)


def test_build_settings_protocol_records_the_subsampling() -> None:
    p = SETTINGS.protocol
    assert (p.n_folds, p.seed, p.max_rows) == (2, 0, 200)
    assert p.key.endswith("-sub200")
    assert BuildSettings(max_rows=500).protocol.key != p.key


# ------------------------------------------------------------------------------------------ a build
@pytest.mark.corpus
def test_build_registers_explores_and_fills_a_dense_matrix(reference: dict[str, Any], corpus_dir: Path) -> None:
    report, runs = reference["report"], reference["runs"]
    manifest = pd.read_csv(corpus_dir / "manifest.csv").set_index("name")
    assert report.datasets == len(DATASETS) and report.skipped == []
    assert report.evaluations_new == report.evaluations_done == len(runs)
    assert report.failures == sum(1 for r in runs.values() if r.status != "ok")
    assert report.by_kind == {
        "binary": {"datasets": 2, "configs": SETTINGS.n_configs},
        "regression": {"datasets": 2, "configs": SETTINGS.n_configs},
    }
    prog = reference["progress"]
    assert prog.closed and list(prog.phases) == ["meta-features", "exploration", "performance matrix"]
    assert prog.phases["meta-features"] == prog.advances["meta-features"] == len(DATASETS)
    assert prog.phases["exploration"] == prog.advances["exploration"] == len(DATASETS)
    # the matrix's cells: those the exploration evaluated count as done already, the others are its runs
    assert prog.advances["performance matrix"] == prog.phases["performance matrix"] == sum(
        c["datasets"] * c["configs"] for c in reference["report"].by_kind.values())
    assert prog.phases["performance matrix"] - prog.earlier["performance matrix"] == sum(
        1 for r in runs.values() if r.source == SOURCE_MATRIX
    )

    kb = open_kb(reference["path"], read_only=True)
    try:
        # datasets on their full data, with meta-features of the fixed schema
        datasets = {d.name: d for d in kb.list_datasets()}
        assert set(datasets) == set(DATASETS)
        for name, d in datasets.items():
            assert d.kind == DATASETS[name]
            assert d.n_rows == manifest.loc[name, "n_rows"]
            mf = kb.get_metafeatures(d.dataset_id, EXTRACTOR_VERSION)
            assert list(mf.values) == list(metafeature_names())

        assert kb.get_configurations({r.config_id for r in runs.values()}).keys() == {
            r.config_id for r in runs.values()
        }
        for kind, dids in _kind_datasets(kb).items():
            common = common_candidates(kb, TaskKind(kind), dids, SETTINGS, SETTINGS.protocol)
            common_ids = [_config_id(kind, v) for v in common]
            assert len(set(common_ids)) == len(common_ids) == SETTINGS.n_configs
            space = get_space(TaskKind(kind))
            assert common_ids[0] == _config_id(kind, space.validate(space.default()))
            for did in dids:
                mine = [r for r in runs.values() if r.dataset_id == did]
                explore = {r.config_id for r in mine if r.source == SOURCE_EXPLORE}
                matrix = {r.config_id for r in mine if r.source == SOURCE_MATRIX}
                assert len(explore) == SETTINGS.n_explore
                assert len(mine) == len(explore) + len(matrix)  # one run per configuration
                # dense: every dataset of the kind has a run of every common configuration
                assert set(common_ids) <= explore | matrix
                assert matrix == set(common_ids) - explore
                # the best explored configuration of each dataset is in the common set
                sign = -1.0 if get_metric(mine[0].metric).greater_is_better else 1.0
                ok = [r for r in mine if r.source == SOURCE_EXPLORE and r.ok]
                best = min(ok, key=lambda r: (sign * r.score, r.config_id))
                assert best.config_id in common_ids
                # subsampling is recorded: the protocol key, and the rows actually used
                n_rows = kb.get_dataset(did).n_rows
                for r in mine:
                    assert r.protocol == SETTINGS.protocol.key
                    assert r.n_rows_used == min(n_rows, SETTINGS.max_rows)
                    assert r.metric == DEFAULT_METRIC[TaskKind(kind)]
                    if r.ok:
                        assert math.isfinite(r.score) and set(r.metrics) >= {r.metric}
        assert {r.n_rows_used for r in runs.values()} == {52, 87, 200}
    finally:
        kb.close()


@pytest.mark.corpus
def test_rerunning_a_finished_build_adds_and_evaluates_nothing(
    reference: dict[str, Any], corpus_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "kb.duckdb"
    shutil.copy(reference["path"], path)
    calls: list[str] = []

    def no_evaluation(*args: Any, **kwargs: Any) -> Any:
        calls.append("evaluate")
        raise AssertionError("a finished build evaluated a configuration again")

    def no_metafeatures(*args: Any, **kwargs: Any) -> Any:
        calls.append("metafeatures")
        raise AssertionError("a finished build extracted meta-features again")

    monkeypatch.setattr(build_mod, "evaluate_config", no_evaluation)
    monkeypatch.setattr(build_mod, "_metafeature_task", no_metafeatures)
    kb = open_kb(path)
    try:
        before = kb.list_runs()
        stats = kb.stats()
        report = build_kb(kb, _sources(corpus_dir), SETTINGS)
        assert calls == [] and report.skipped == []
        assert report.evaluations_new == 0
        assert report.evaluations_done == reference["report"].evaluations_done
        assert report.by_kind == reference["report"].by_kind
        after = kb.list_runs()
        assert len(after) == len(before) and all(records_equal(a, b) for a, b in zip(after, before, strict=True))
        assert kb.stats() == stats
    finally:
        kb.close()


# ------------------------------------------------------------------------------------ family extension
FAMILY_SETTINGS = BuildSettings(n_configs=2, n_explore=3, max_rows=200, n_folds=2, trial_time_limit=10.0,
                                families=("lgbm", "xgb"))


def test_build_settings_reject_unknown_or_repeated_families() -> None:
    with pytest.raises(InputError, match="--families"):
        BuildSettings(families=("lgbm", "gbm"))
    with pytest.raises(InputError, match="--families"):
        BuildSettings(families=("xgb", "xgb"))


@pytest.mark.parametrize("kind", ["binary", "regression", "multilabel", "multitarget"])
def test_family_candidates_are_the_families_defaults_then_seeded_samples(kind: str) -> None:
    fams = ("lgbm", "xgb", "catboost")
    nine = family_candidates(TaskKind(kind), BuildSettings(n_configs=9, families=fams))
    again = family_candidates(TaskKind(kind), BuildSettings(n_configs=9, families=fams))
    six = family_candidates(TaskKind(kind), BuildSettings(n_configs=6, families=fams))
    assert nine == again  # deterministic
    assert six == nine[:6]  # a larger extension continues a smaller one
    # the shipped KB's extension ran 9 then 27: the 27 continue the 9, with 9 of each family
    more = family_candidates(TaskKind(kind), BuildSettings(n_configs=27, families=fams))
    assert more[:9] == nine and len({_config_id(kind, v) for v in more}) == 27
    assert sorted(v["model"] for v in more) == sorted(list(fams) * 9)
    ids = [_config_id(kind, v) for v in nine]
    assert len(set(ids)) == 9
    assert [v["model"] for v in nine] == list(fams) * 3  # defaults first, then round-robin
    space = get_space(TaskKind(kind))
    cs = space.configspace
    for v in nine[:3]:  # each family's own defaults
        assert space.validate(v) == v
        fam = v["model"]
        own = [n for n in v if n.startswith(f"{fam}:")]  # its active hyperparameters
        assert own and all(v[n] == cs[n].default_value for n in own)


@pytest.mark.corpus
def test_family_extension_adds_a_dense_block_with_the_matrix_protocol_and_resumes(
    reference: dict[str, Any], corpus_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kb = open_kb(shutil.copy(reference["path"], tmp_path / "kb.duckdb"))
    names = ["lupus", "prnn_synth", "192_vineyard"]  # three of the four datasets of the reference build
    try:
        before = _runs(kb)
        progress = Interrupt()
        report = build_kb(kb, _sources(corpus_dir, names), FAMILY_SETTINGS, progress=progress)
        after = _runs(kb)
        assert report.skipped == [] and report.datasets == 3
        assert list(progress.phases) == ["meta-features", "family extension"]  # no exploration
        assert report.by_kind == {"binary": {"datasets": 2, "configs": 2}, "regression": {"datasets": 1, "configs": 2}}
        assert set(before) <= set(after)
        new = [after[rid] for rid in set(after) - set(before)]
        assert report.evaluations_new == len(new) == 3 * FAMILY_SETTINGS.n_configs
        assert {r.source for r in new} == {SOURCE_FAMILIES}
        ids = {d.name: d.dataset_id for d in kb.list_datasets()}
        for name in names:
            kind = DATASETS[name]
            mine = [r for r in new if r.dataset_id == ids[name]]
            want = [_config_id(kind, v) for v in family_candidates(TaskKind(kind), FAMILY_SETTINGS)]
            assert sorted(r.config_id for r in mine) == sorted(want)  # dense: the same set on each dataset
            assert [kb.get_configurations([c])[c].values["model"] for c in want] == ["lgbm", "xgb"]
            # exactly the protocol (and subsample) of the dataset's existing matrix runs
            matrix = [r for r in before.values() if r.dataset_id == ids[name] and r.source == SOURCE_MATRIX]
            assert matrix and {r.protocol for r in mine} == {r.protocol for r in matrix} == {SETTINGS.protocol.key}
            assert {r.n_rows_used for r in mine} == {r.n_rows_used for r in matrix}
        assert not [r for r in new if r.dataset_id == ids["579_fri_c0_250_5"]]  # not asked for

        # resume: a finished extension evaluates nothing and adds nothing
        def no_evaluation(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("a finished extension evaluated a configuration again")

        monkeypatch.setattr(build_mod, "evaluate_config", no_evaluation)
        again = build_kb(kb, _sources(corpus_dir, names), FAMILY_SETTINGS)
        assert again.evaluations_new == 0 and again.skipped == []
        assert set(_runs(kb)) == set(after)
    finally:
        kb.close()


# ------------------------------------------------------------------------------------ size portfolio
# the reference build's stored configurations again, at 250 rows instead of 200, on the datasets above 100 rows
PORTFOLIO_SETTINGS = BuildSettings(max_rows=250, n_folds=2, trial_time_limit=10.0, portfolio=3, min_rows=100)


def test_build_settings_take_one_kind_of_extension_and_no_negative_portfolio() -> None:
    with pytest.raises(InputError, match="--portfolio and --families"):
        BuildSettings(portfolio=3, families=("lgbm",))
    with pytest.raises(InputError, match="--portfolio and --min-rows"):
        BuildSettings(portfolio=-1)


@pytest.mark.corpus
def test_size_portfolio_evaluates_stored_configurations_on_the_large_datasets_and_the_matrix_reads_them(
    reference: dict[str, Any], corpus_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kb = open_kb(shutil.copy(reference["path"], tmp_path / "kb.duckdb"))
    try:
        before = _runs(kb)
        progress = Interrupt()
        report = build_kb(kb, _sources(corpus_dir), PORTFOLIO_SETTINGS, progress=progress)
        after = _runs(kb)
        assert report.skipped == [] and list(progress.phases) == ["meta-features", "size portfolio"]
        assert report.by_kind == {"binary": {"datasets": 1, "configs": 3}, "regression": {"datasets": 1, "configs": 3}}
        assert set(before) <= set(after)
        new = [after[rid] for rid in set(after) - set(before)]
        assert report.evaluations_new == len(new) == 6
        assert {r.source for r in new} == {SOURCE_PORTFOLIO}
        assert {r.protocol for r in new} == {PORTFOLIO_SETTINGS.protocol.key} != {SETTINGS.protocol.key}
        ids = {d.name: d.dataset_id for d in kb.list_datasets()}
        large = ("prnn_synth", "579_fri_c0_250_5")  # 250 rows each; lupus and 192_vineyard are below 100
        assert {r.dataset_id for r in new} == {ids[n] for n in large}
        old = {r.config_id for r in before.values()}
        monkeypatch.setattr(matrix_mod, "MIN_PROTOCOL_CONFIGS", 3)  # this small build's sizes count as dense
        for name in large:
            kind, did = DATASETS[name], ids[name]
            want = portfolio_candidates(kb, TaskKind(kind), [did], PORTFOLIO_SETTINGS, PORTFOLIO_SETTINGS.protocol)
            mine = {r.config_id: r for r in new if r.dataset_id == did}
            assert sorted(mine) == sorted(c.config_id for c in want)  # the same list after the build
            assert set(mine) <= old  # stored configurations, under their stored ids
            assert {r.n_rows_used for r in mine.values()} == {250}
            assert {r.n_rows_used for r in before.values() if r.dataset_id == did} == {200}
            # ranked by regret at 200 rows: the first is the dataset's best there, then other families first
            runs = kb.runs_frame(kind=kind, ok_only=False)
            at_200 = normalised_regret_matrix(performance_matrix(runs[runs["protocol"] == SETTINGS.protocol.key]))
            assert at_200.loc[did, want[0].config_id] == 0.0
            stored_families = {kb.get_configurations([c])[c].values["model"] for c in at_200.loc[did].dropna().index}
            first = [c.values["model"] for c in want][: min(3, len(stored_families))]
            assert len(set(first)) == len(first)
            # the recommenders' matrix now reads this dataset at 250 rows, the others as before
            perf = performance_matrix(runs)
            assert perf.loc[did].dropna().to_dict() == pytest.approx({c: r.cost for c, r in mine.items()})
        runs = kb.runs_frame(kind="binary", ok_only=False)
        assert set(performance_matrix(runs).loc[ids["lupus"]].dropna().index) == {
            r.config_id for r in before.values() if r.dataset_id == ids["lupus"] and r.ok}

        def no_evaluation(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("a finished portfolio evaluated a configuration again")

        monkeypatch.setattr(build_mod, "evaluate_config", no_evaluation)
        again = build_kb(kb, _sources(corpus_dir), PORTFOLIO_SETTINGS)
        assert again.evaluations_new == 0 and again.skipped == []
    finally:
        kb.close()


@pytest.mark.corpus
def test_interrupted_build_resumes_to_exactly_the_uninterrupted_runs(
    reference: dict[str, Any], corpus_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed in the meta-features phase, then during an exploration trial, then in the matrix phase:
    every intermediate KB holds a subset of the uninterrupted build's runs, and the last re-run
    finishes with exactly its runs (ids, scores, sources)."""
    want = reference["runs"]
    kb = open_kb(tmp_path / "kb.duckdb")
    sources = _sources(corpus_dir)
    try:
        # 1. killed after two datasets are registered
        prog = Interrupt("meta-features", after=2)
        with pytest.raises(KeyboardInterrupt):
            build_kb(kb, sources, SETTINGS, progress=prog)
        assert prog.closed
        assert {d.name for d in kb.list_datasets()} == set(list(DATASETS)[:2])
        assert kb.list_runs() == []

        # 2. killed while the 5th exploration trial runs (the 2nd trial of the 2nd dataset explored)
        real_evaluate = build_mod.evaluate_config
        calls = {"n": 0}

        def killed_on_fifth(*args: Any, **kwargs: Any) -> Any:
            calls["n"] += 1
            if calls["n"] == SETTINGS.n_explore + 2:
                raise KeyboardInterrupt
            return real_evaluate(*args, **kwargs)

        monkeypatch.setattr(build_mod, "evaluate_config", killed_on_fifth)
        prog = Interrupt()
        with pytest.raises(KeyboardInterrupt):
            build_kb(kb, sources, SETTINGS, progress=prog)
        monkeypatch.setattr(build_mod, "evaluate_config", real_evaluate)
        assert prog.closed and prog.advances["exploration"] == 1
        # the two datasets registered before are said done earlier, not "to do" (as the build printed)
        assert prog.earlier["meta-features"] == 2 and prog.advances["meta-features"] == len(DATASETS)
        assert {d.name for d in kb.list_datasets()} == set(DATASETS)
        got = _runs(kb)
        first = sorted(kb.list_datasets(), key=lambda d: (d.kind, d.name))[0]
        assert len(got) == SETTINGS.n_explore  # only the first dataset's exploration was stored
        assert {r.dataset_id for r in got.values()} == {first.dataset_id}
        _assert_same_runs(got, {k: want[k] for k in got})

        # 3. killed after three matrix evaluations were written
        monkeypatch.setattr(build_mod, "time", SlowClock())
        prog = Interrupt("performance matrix", after=3)
        with pytest.raises(KeyboardInterrupt):
            build_kb(kb, sources, SETTINGS, progress=prog)
        monkeypatch.undo()
        got = _runs(kb)
        explore = {k for k, r in want.items() if r.source == SOURCE_EXPLORE}
        assert explore <= set(got)  # the exploration finished
        assert sum(1 for r in got.values() if r.source == SOURCE_MATRIX) == 3
        assert len(got) < len(want)
        _assert_same_runs(got, {k: want[k] for k in got})

        # 4. the same command run again, in a new process (another PYTHONHASHSEED): it replays the
        # stored explorations exactly and finishes the matrix, with exactly the uninterrupted runs
        n_before = len(got)
    finally:
        kb.close()
    report = _cli_build(tmp_path / "kb.duckdb", corpus_dir, hash_seed="4242")
    assert report["skipped"] == [] and report["datasets"] == len(DATASETS)
    assert report["evaluations_new"] == len(want) - n_before
    assert report["evaluations_done"] == len(want)
    assert report["by_kind"] == reference["report"].by_kind
    kb = open_kb(tmp_path / "kb.duckdb", read_only=True)
    try:
        _assert_same_runs(_runs(kb), want)
    finally:
        kb.close()


def _cli_build(kb_path: Path, corpus: Path, hash_seed: str) -> dict[str, Any]:
    """``metalearn kb build`` with SETTINGS on DATASETS, in a subprocess; its JSON report."""
    s = SETTINGS
    cmd = [sys.executable, "-m", "metalearn.cli", "kb", "build", "--corpus", str(corpus), "--datasets", ",".join(DATASETS),
           "--kb", str(kb_path), "--configs", str(s.n_configs), "--explore", str(s.n_explore),
           "--max-rows", str(s.max_rows), "--folds", str(s.n_folds), "--trial-time-limit", str(s.trial_time_limit),
           "--seed", str(s.seed), "--json"]
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.mark.corpus
def test_ctrl_c_stops_a_dask_build_at_once_and_it_resumes_exactly(
    reference: dict[str, Any], corpus_dir: Path, tmp_path: Path
) -> None:
    """Ctrl-C in a terminal signals the whole process group (owner and Dask workers): the owner stops
    within seconds with exit code 130 and the resume hint, no worker prints a traceback or survives,
    and the same command finishes with exactly the uninterrupted runs."""
    import signal
    import threading

    s = SETTINGS
    kb_path = tmp_path / "kb.duckdb"  # a new file: the build's own, not seeded with the shipped snapshot
    cmd = [sys.executable, "-m", "metalearn.cli", "kb", "build", "--corpus", str(corpus_dir), "--datasets", ",".join(DATASETS),
           "--kb", str(kb_path), "--configs", str(s.n_configs), "--explore", str(s.n_explore),
           "--max-rows", str(s.max_rows), "--folds", str(s.n_folds), "--trial-time-limit", str(s.trial_time_limit),
           "--seed", str(s.seed), "--workers", "2"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as in a terminal
    )  # fmt: skip
    lines: list[str] = []
    matrix = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "phase performance matrix" in line:
                matrix.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert matrix.wait(240), "".join(lines)[-2000:]
        time.sleep(0.1)  # the matrix phase of this small build can end within a second
        os.killpg(proc.pid, signal.SIGINT)
        t0 = time.monotonic()
        assert proc.wait(timeout=60) == 130
        stopped = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    reader.join(10)
    out = "".join(lines)
    assert stopped < 20, f"took {stopped:.1f} s to stop"
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out[-3000:]
    assert "run the same command again" in out
    left: list[str] = []
    for _ in range(50):  # no process of the group (Dask nanny, worker, trial) is left running
        ps = subprocess.run(["ps", "-o", "pid=,stat=,args=", "-g", str(proc.pid)], capture_output=True, text=True)
        left = [ln for ln in ps.stdout.splitlines() if ln.split()[1][0] != "Z"]
        if not left:
            break
        time.sleep(0.2)
    assert left == [], left
    kb = open_kb(kb_path, read_only=True)
    try:
        n_before = len(_runs(kb))
        assert n_before < len(reference["runs"])
        _assert_same_runs(_runs(kb), {k: reference["runs"][k] for k in _runs(kb)})
    finally:
        kb.close()
    report = _cli_build(kb_path, corpus_dir, hash_seed="7")
    assert report["evaluations_done"] == len(reference["runs"])
    assert report["evaluations_new"] == len(reference["runs"]) - n_before
    kb = open_kb(kb_path, read_only=True)
    try:
        _assert_same_runs(_runs(kb), reference["runs"])
    finally:
        kb.close()


@pytest.mark.corpus
@pytest.mark.slow
def test_two_dask_workers_give_the_same_runs(reference: dict[str, Any], corpus_dir: Path, tmp_path: Path) -> None:
    kb = open_kb(tmp_path / "kb.duckdb")
    try:
        settings = BuildSettings(**{**SETTINGS.__dict__, "workers": 2})
        report = build_kb(kb, _sources(corpus_dir), settings)
        assert report.skipped == [] and report.datasets == len(DATASETS)
        assert report.evaluations_new == report.evaluations_done == len(reference["runs"])
        assert report.by_kind == reference["report"].by_kind
        _assert_same_runs(_runs(kb), reference["runs"])
    finally:
        kb.close()


# ------------------------------------------------------------------------------------------ failures
@pytest.mark.corpus
def test_datasets_that_fail_to_load_are_skipped_not_fatal(corpus_dir: Path, tmp_path: Path, mini_corpus: Any) -> None:
    corpus = mini_corpus(tmp_path / "corpus", [
        {"name": "broken", "copy_of": "lupus", "content": b"this is not a parquet file"},
        {"name": "good", "copy_of": "lupus"},
        {"name": "gone", "copy_of": "lupus", "content": None},  # in the manifest, file missing
    ])
    sources, missing = resolve_sources(corpus=str(corpus))
    assert [s.spec for s in sources] == ["corpus:broken", "corpus:good", "corpus:gone"] and missing == []
    kb = open_kb(tmp_path / "kb.duckdb")
    try:
        settings = BuildSettings(n_configs=2, n_explore=1, max_rows=200, n_folds=2, trial_time_limit=10.0)
        report = build_kb(kb, sources, settings)
        skipped = dict(report.skipped)
        assert set(skipped) == {"corpus:broken", "corpus:gone"}
        assert "broken.parquet" in skipped["corpus:broken"] and "gone.parquet" in skipped["corpus:gone"]
        assert report.datasets == 1
        assert [d.name for d in kb.list_datasets()] == ["good"]
        runs = kb.list_runs()
        assert len(runs) == report.evaluations_new == report.evaluations_done >= settings.n_configs
        assert report.by_kind == {"binary": {"datasets": 1, "configs": 2}}
    finally:
        kb.close()


# ------------------------------------------------------------------------------------------ sources
@pytest.mark.corpus
def test_resolve_sources_from_a_suite_in_a_corpus_directory(
    corpus_dir: Path, suites_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mini_corpus: Any
) -> None:
    monkeypatch.setenv("METALEARN_SUITES", str(suites_dir))
    suite = pd.read_csv(suites_dir / "openml_cc18.csv")
    dids = [int(d) for d in suite["did"]]
    a, b = dids[1], dids[3]
    corpus = mini_corpus(tmp_path / "corpus", [
        {"name": "not_in_suite", "copy_of": "lupus", "openml_did": None},
        {"name": "suite_b", "copy_of": "192_vineyard", "openml_did": b},
        {"name": "suite_a", "copy_of": "lupus", "openml_did": a},
    ])
    sources, missing = resolve_sources(corpus=str(corpus), suite="openml-cc18")
    # suite order (a before b), named by the corpus, loaded from the corpus directory
    assert [s.spec for s in sources] == ["corpus:suite_a", "corpus:suite_b"]
    assert all(s.corpus == str(corpus) for s in sources)
    assert sources[0].load().name == "suite_a"
    names = dict(zip(suite["did"].astype(int), suite["name"], strict=True))
    assert missing == [f"{names[d]} (did {d})" for d in dids if d not in (a, b)]

    only, _ = resolve_sources(corpus=str(corpus), suite="openml-cc18", names=["suite_b"])
    assert [s.spec for s in only] == ["corpus:suite_b"]
    binary, _ = resolve_sources(corpus=str(corpus), suite="openml-cc18", kinds=["binary"])
    assert [s.spec for s in binary] == ["corpus:suite_a"]
    with pytest.raises(InputError, match="not_in_suite"):  # a corpus dataset outside the suite
        resolve_sources(corpus=str(corpus), suite="openml-cc18", names=["suite_a", "not_in_suite"])

    # the corpus alone: every dataset in manifest order, filtered by name / kind
    every, none_missing = resolve_sources(corpus=str(corpus))
    assert [s.spec for s in every] == ["corpus:not_in_suite", "corpus:suite_b", "corpus:suite_a"]
    assert none_missing == []
    reg, _ = resolve_sources(corpus=str(corpus), kinds=["regression"])
    assert [s.spec for s in reg] == ["corpus:suite_b"]
    with pytest.raises(InputError, match="no_such_dataset"):
        resolve_sources(corpus=str(corpus), names=["suite_a", "no_such_dataset"])

    # a suite without a corpus: OpenML specs for every entry, nothing missing (nothing loaded yet)
    remote, gone = resolve_sources(suite="openml-cc18")
    assert [s.spec for s in remote] == [f"openml:{d}" for d in dids] and gone == []


def test_resolve_sources_needs_a_corpus_or_a_suite() -> None:
    with pytest.raises(InputError, match="--corpus"):
        resolve_sources()


# ------------------------------------------------------------------------------------------ kb evaluate
def test_kb_evaluate_reports_loo_regret_per_kind_of_a_built_kb(reference: dict[str, Any]) -> None:
    """The leave-one-dataset-out table `metalearn kb evaluate` prints, on the real KB built above."""
    from metalearn.metalearning.advisor import evaluate_strategies
    from metalearn.metalearning.strategies import STRATEGIES

    kb = open_kb(reference["path"], read_only=True)
    try:
        report = evaluate_strategies(kb, ks=(1, 3, 5))
    finally:
        kb.close()
    assert set(report["kinds"]) == {"binary", "regression"}
    assert report["best"] in STRATEGIES and set(report["best_by_kind"]) == set(report["kinds"])
    for kind, block in report["kinds"].items():
        assert block["n_datasets"] == 2, kind
        table = block["table"]
        assert {"random", "oracle"} <= set(table) and set(STRATEGIES) & set(table)
        for strategy, row in table.items():
            values = [row[k] for k in ("1", "3", "5") if row.get(k) is not None]
            assert all(0.0 <= v <= 1.0 + 1e-9 for v in values), (kind, strategy, row)
            # more recommendations can only lower the best regret among them
            assert values == sorted(values, reverse=True), (kind, strategy, row)
            for k, v in row.items():
                if v is not None:
                    assert v >= table["oracle"][k] - 1e-12
                    lo, hi = block["ci"][strategy][k]
                    assert lo is None or lo <= v + 1e-12
                    assert hi is None or hi >= v - 1e-12


def test_an_extension_evaluates_a_configuration_stored_under_an_older_space_version_under_its_stored_id() -> None:
    """The random forest's default was stored with space version 1; a family extension of today's space
    names the same values: it must reuse that record (one matrix column), not add a twin with a new id."""
    space = get_space(TaskKind.REGRESSION)
    rf, et = (space.validate(space.family_default(fam)) for fam in ("rf", "et"))
    old = ConfigurationRecord.create(space.name, "1", rf)
    kb = open_kb(":memory:")
    try:
        kb.put_configuration(old)
        got = stored_records(kb, space, [rf, et])
    finally:
        kb.close()
    assert got[0] == old and got[0].space_version == "1"
    assert got[1].config_id == _config_id("regression", et) and got[1].space_version == space.version
    assert old.config_id != _config_id("regression", rf)  # the ids differ: without the lookup, two columns


@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression", "multilabel", "multitarget"])
def test_the_shipped_kb_has_each_familys_default_on_every_dataset_of_its_kind(kind: str) -> None:
    """Every model family's default configuration (the one a user gets with ``model=family``) is evaluated
    on every shipped dataset of the kind, under every protocol the KB measured that dataset with: the
    defaults are strong starting points (extra trees' default is the best of the KB's ~90 regression
    configurations on 21 of 139 datasets), and a recommender can only propose what the matrix holds."""
    from metalearn.kb.shipped import shipped_snapshot
    from metalearn.pipelines.spaces.components import FAMILIES

    snap = shipped_snapshot()
    if snap is None:
        pytest.skip("this install has no shipped KB snapshot (metalearn/kb/shipped_snapshot)")
    datasets = pd.read_parquet(snap / "datasets.parquet", columns=["dataset_id", "kind"])
    runs = pd.read_parquet(snap / "runs.parquet", columns=["dataset_id", "config_id", "protocol"])
    configs = pd.read_parquet(snap / "configurations.parquet")
    space = get_space(TaskKind(kind))

    def key(values: Any) -> str:  # a configuration's values, whatever space version it was stored under
        return json.dumps(space.validate(json.loads(values) if isinstance(values, str) else values), sort_keys=True)

    configs = configs[configs["space"] == space.name]
    stored = {key(v): cid for cid, v in zip(configs["config_id"], configs["values"], strict=True)
              if space.is_valid(json.loads(v) if isinstance(v, str) else v)}
    defaults = {fam: stored.get(key(v)) for fam in FAMILIES
                if (v := space.family_default(fam)) is not None and v["model"] == fam}
    assert {"rf", "et", "hgb", "lgbm", "xgb", "catboost", "knn", "mlp"} <= set(defaults)
    runs = runs[runs["dataset_id"].isin(set(datasets.loc[datasets["kind"] == kind, "dataset_id"]))]
    assert len(runs)
    for protocol, group in runs.groupby("protocol"):
        measured = set(group["dataset_id"])
        for fam, cid in defaults.items():
            missing = measured - set(group.loc[group["config_id"] == cid, "dataset_id"])
            assert not missing, f"{kind} {fam} default not evaluated on {len(missing)} datasets under {protocol}"
