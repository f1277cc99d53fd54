"""A real server killed with SIGKILL while clients promote and roll back leaves exactly one live
version, and the alias agrees with the event history (issue 13: "a kill -9 of the server during
promote/rollback leaves exactly one live version")."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import pytest

from metalearn.data.loading import load_sklearn
from metalearn.kb import DuckDBKnowledgeBase
from metalearn.kb.shipped import open_default_kb
from metalearn.registry.registry import ModelRegistry
from metalearn.search.automl import optimize
from metalearn.search.settings import SearchSettings

KEY = "kill-test-key"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post(url: str, body: dict[str, object]) -> int:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "X-API-Key": KEY})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


@pytest.mark.parametrize("delay", [0.2, 0.9])
def test_sigkill_during_promote_and_rollback_leaves_one_live_version(tmp_path: Path, delay: float) -> None:
    warnings.filterwarnings("ignore")
    kb_path = tmp_path / "kb.duckdb"
    ds = load_sklearn("breast_cancer")
    kb = open_default_kb(kb_path)
    outcome = optimize(ds, kb, SearchSettings(n_trials=1, seed=0, ensemble=False, warm_start=False))
    registry = ModelRegistry(kb)
    for _ in range(3):
        registry.register_outcome("bc", outcome, ds)
    registry.promote("bc", 1)
    kb.close()

    port = _free_port()
    env = {**os.environ, "METALEARN_KB": str(kb_path), "METALEARN_API_KEYS": KEY,
           "METALEARN_ADVISOR_REFRESH_SECONDS": "0"}
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "metalearn.service.app:create_app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"], env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("the server did not start")
        done = threading.Event()
        answers: list[int] = []

        def churn() -> None:
            i = 0
            while not done.is_set():
                try:
                    if i % 3 == 2:
                        answers.append(_post(f"{base}/models/bc/rollback", {}))
                    else:
                        answers.append(_post(f"{base}/models/bc/promote", {"version": 2 + i % 2}))
                except OSError:
                    return  # the server is gone
                i += 1

        clients = [threading.Thread(target=churn) for _ in range(4)]
        for c in clients:
            c.start()
        for _ in range(600):  # the first answers (the versions load), then the kill lands mid-churn
            if answers.count(200) >= 3:
                break
            time.sleep(0.05)
        time.sleep(delay)
        os.kill(server.pid, signal.SIGKILL)
        server.wait(timeout=30)
        done.set()
        for c in clients:
            c.join(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
    assert answers.count(200) >= 3, answers[:20]  # promotes really happened before the kill

    kb = DuckDBKnowledgeBase(kb_path)
    try:
        rows = kb._cursor().execute("SELECT version FROM model_aliases WHERE name = 'bc' AND alias = 'live'").fetchall()
        assert len(rows) == 1 and rows[0][0] in (1, 2, 3)
        moves = [e for e in kb.models.events("bc") if e.alias == "live"]
        assert moves[-1].version == rows[0][0]  # the alias and its history were committed together
        registry = ModelRegistry(kb)
        assert registry.predict("bc", ds.X.head(2), log=False).version == rows[0][0]  # and it serves
    finally:
        kb.close()


def test_sigterm_ends_a_search_as_ctrl_c_does(tmp_path: Path) -> None:
    """SIGTERM (timeout, systemd, docker stop) killed the CLI at once: its search stayed `running`, nothing said
    how to go on. It now ends it as Ctrl-C does: recorded `cancelled` with its trials, and the resume hint."""
    kb_path = tmp_path / "kb.duckdb"
    proc = subprocess.Popen(
        [sys.executable, "-m", "metalearn.cli", "optimize", "sklearn:breast_cancer", "--trials", "500", "--workers",
         "1", "--no-warm-start", "--kb", str(kb_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:  # off a terminal: a status line every 10 s or so
        lines.append(line)
        if "/500 trials" in line:
            break
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, "".join(lines) + out
    assert "interrupted; run the same command again to resume" in out and "Traceback" not in out
    with DuckDBKnowledgeBase(kb_path, read_only=True) as kb:
        (search,) = kb.list_searches()
        assert search.status == "cancelled" and search.n_trials >= 1
        assert search.error.startswith("terminated (SIGTERM); run the same command again to resume")
        assert len(kb.list_runs(search_id=search.search_id)) == search.n_trials
