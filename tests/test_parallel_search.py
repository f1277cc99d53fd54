"""Parallel trials (``workers``): one worker is the sequential loop (same seed, same trials and scores);
two workers on Dask complete every trial, write each to the KB once, and resume."""

from __future__ import annotations

from typing import Any

import pytest

from metalearn.data.loading import load_dataset
from metalearn.kb import open_kb
from metalearn.kb.base import KnowledgeBase
from metalearn.kb.records import dataset_record
from metalearn.search.evaluation import EvalProtocol
from metalearn.search.loop import SearchResult, run_search
from metalearn.search.settings import SearchSettings

PROTOCOL = EvalProtocol(n_folds=3, max_rows=150)


def fast(**overrides: Any) -> SearchSettings:
    values: dict[str, Any] = dict(n_trials=4, trial_time_limit=20.0, warm_start=False, protocol=PROTOCOL)
    values.update(overrides)
    return SearchSettings(**values)


def _fresh() -> tuple[Any, KnowledgeBase]:
    iris = load_dataset("sklearn:iris")
    kb = open_kb(":memory:")
    kb.put_dataset(dataset_record(iris))
    return iris, kb


def _trials(result: SearchResult) -> list[tuple[str, str, float]]:
    return [(t.config_id, t.status, t.score) for t in result.trials]


def test_one_worker_is_the_sequential_loop() -> None:
    assert SearchSettings().workers == 1  # the library default: reproducible
    iris, kb_a = _fresh()
    _, kb_b = _fresh()
    a = run_search(iris, kb_a, fast(seed=3))
    b = run_search(iris, kb_b, fast(seed=3, workers=1))
    assert _trials(a) == _trials(b) and len(a.trials) == 4
    assert (a.best_config_id, a.best_score) == (b.best_config_id, b.best_score)
    assert a.stopped_by == b.stopped_by == "trials"


@pytest.mark.parametrize("optimizer", ["smac", "random"])
def test_two_workers_complete_every_trial_once_and_resume(optimizer: str) -> None:
    iris, kb = _fresh()
    first = run_search(iris, kb, fast(workers=2, optimizer=optimizer))
    assert len(first.trials) == 4 and first.n_new == 4 and first.status == "done"
    assert [t.number for t in first.trials] == [1, 2, 3, 4]
    runs = kb.list_runs(search_id=first.search_id)
    assert len(runs) == 4 and len({r.run_id for r in runs}) == 4
    assert {r.config_id for r in runs} == {t.config_id for t in first.trials}
    assert all(t.status == "ok" for t in first.trials)

    second = run_search(iris, kb, fast(workers=2, optimizer=optimizer, n_trials=6))
    assert second.n_resumed == 4 and second.n_new == 2 and len(second.trials) == 6
    assert len(kb.list_runs(dataset_id=iris.dataset_id)) == 6
    assert not {t.config_id for t in second.trials[4:]} & {t.config_id for t in first.trials}


def test_the_service_runs_a_search_on_two_workers(tmp_path: Any) -> None:
    import time

    from fastapi.testclient import TestClient

    from metalearn.service.app import create_app
    from metalearn.service.settings import Settings

    key = "parallel-key"
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, kb=str(tmp_path / "kb.duckdb"), api_keys=[key], advisor_refresh_seconds=0,  # type: ignore[list-item]
        search_workers=1,
    )
    iris = load_dataset("sklearn:iris")
    frame = iris.X.assign(target=iris.y.iloc[:, 0].to_numpy())
    with TestClient(create_app(settings)) as client:
        r = client.post(
            "/searches", files={"file": ("iris.csv", frame.to_csv(index=False).encode(), "text/csv")},
            data={"target": ["target"], "n_trials": "4", "workers": "2", "warm_start": "false", "n_folds": "3",
                  "trial_time_limit": "30"},
            headers={"X-API-Key": key},
        )  # fmt: skip
        assert r.status_code == 202, r.text
        sid = r.json()["search_id"]
        t0 = time.monotonic()
        while (body := client.get(f"/searches/{sid}").json())["status"] in ("pending", "running"):
            assert time.monotonic() - t0 < 240, body
            time.sleep(0.5)
        assert body["status"] == "done" and body["n_trials"] == 4, body
        assert body["settings"]["workers"] == 2
        runs = client.get(f"/datasets/{r.json()['dataset_id']}/runs").json()["items"]
        assert len(runs) == 4 and {x["search_id"] for x in runs} == {sid}


def _heartbeat_filtered() -> tuple[bool, bool]:
    """In a worker: (the heartbeat failure passes the worker logger's filters, another error passes them)."""
    import logging

    log = logging.getLogger("distributed.worker")

    def record(msg: str) -> logging.LogRecord:
        return log.makeRecord(log.name, logging.ERROR, __file__, 1, msg, (), None)

    return log.filter(record("Failed to communicate with scheduler during heartbeat.")), log.filter(record("other"))


def test_own_dask_workers_drop_the_heartbeat_noise_of_their_shutdown_only() -> None:
    """A worker's heartbeat that meets the closing scheduler logs an ERROR with a traceback (about 1 search in 80);
    the owner silences that one record in its own workers just before closing them, nothing else."""
    from metalearn.runtime.executors import Executor

    with Executor(2, pool="dask") as ex:
        client = ex._client
        before = client.run(_heartbeat_filtered)
        ex.quiet_workers()
        after = client.run(_heartbeat_filtered)
    assert len(before) == 2 and all(v == (True, True) for v in before.values())
    assert all(v == (False, True) for v in after.values())


def test_own_dask_workers_leave_port_8787_alone() -> None:
    """The scheduler's HTTP server took 8787 (no dashboard is used): a busy 8787 printed Dask's 4-line "Port 8787
    is already in use" warning in optimize's and retrain's output."""
    import contextlib
    import socket
    import warnings

    from metalearn.runtime.executors import Executor

    holder = socket.socket()
    with contextlib.suppress(OSError):  # busy already: the same case
        holder.bind(("127.0.0.1", 8787))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Executor(2, pool="dask") as ex:
            assert ex._client.submit(sum, [1, 2]).result() == 3
    holder.close()
    assert not [w for w in caught if "8787" in str(w.message)]


OWNER_SCRIPT = """
import time
from metalearn.runtime.executors import Executor

def work(x):
    time.sleep(120)
    return x

if __name__ == "__main__":
    with Executor(2, pool="process") as ex:
        for _ in ex.map_unordered(work, [(0,), (1,)]):
            pass
"""


def test_process_pool_workers_exit_when_their_owner_is_killed(tmp_path: Any) -> None:
    """QA: `kill -9` of `benchmark --workers 2` left its two workers (350 MB each) idle for good, re-parented to
    PID 1; a worker now exits within about a second of its owner's death."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "owner.py"
    script.write_text(OWNER_SCRIPT)
    owner = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path)

    def workers() -> list[int]:
        out = subprocess.run(["ps", "-ww", "-eo", "pid,ppid,args"], capture_output=True, text=True, check=True).stdout
        rows = [line.split(None, 2) for line in out.splitlines()[1:]]
        return [int(p) for p, pp, args in (r for r in rows if len(r) == 3)
                if int(pp) == owner.pid and "spawn_main" in args]

    found: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while len(found := workers()) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(found) == 2, found
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait(timeout=10)
        deadline = time.monotonic() + 15
        while (alive := [p for p in found if _alive(p)]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive, f"workers {alive} outlived their owner"
    finally:
        owner.kill()
        for p in found:
            if _alive(p):
                os.kill(p, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie is not running: its parent has not reaped it yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_parallel_search_sends_its_dataset_to_the_workers_once(tmp_path: Any) -> None:
    """Every trial sent a 12 MB table in its own task graph (distributed warned "Sending large graph" for each):
    the dataset is scattered to the workers once, and each trial gets it from there."""
    import warnings

    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(1_200, 1_300)), columns=[f"f{i}" for i in range(1_300)])
    X["y"] = X["f0"] * 2 + rng.normal(size=1_200)
    wide = load_dataset(_written(X, tmp_path / "wide.parquet"), target=["y"])
    assert X.memory_usage().sum() > 10e6  # distributed's "large graph" threshold is 10 MB
    kb = open_kb(":memory:")
    kb.put_dataset(dataset_record(wide))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        result = run_search(wide, kb, fast(workers=2, n_trials=3, optimizer="random",
                                           protocol=EvalProtocol(mode="holdout")))
    assert len(result.trials) == 3 and result.best_config_id is not None
    assert all(t.status == "ok" for t in result.trials), [(t.status, t.error) for t in result.trials]
    assert not [w for w in seen if "large graph" in str(w.message)], [str(w.message)[:80] for w in seen]


def _written(frame: Any, path: Any) -> str:
    frame.to_parquet(path)
    return str(path)
