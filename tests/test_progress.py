"""Progress off a terminal (a log file, CI): plain lines, never wrapped, and a "still running" line while a trial,
a refit or a build item runs on (a 49 s trial, a 47 s refit left logs silent)."""

from __future__ import annotations

import io
import re
import time
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from rich.console import Console

from metalearn.runtime.progress import BuildProgress, RichProgress, SearchProgress, clock


def _log_console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=False, width=80), buffer


def test_a_search_off_a_terminal_says_what_still_runs_when_quiet() -> None:
    console, buffer = _log_console()
    dataset = SimpleNamespace(name="d", task=SimpleNamespace(kind="binary", metric="roc_auc"))
    settings = SimpleNamespace(trials_bounded=True, trial_budget=5, time_limit=None)
    trial = SimpleNamespace(number=1, origin="smac", status="ok", score=0.9, seconds=1.0, best_score=0.9, budget=None)
    with SearchProgress(console, dataset, settings, log_every=60.0, heartbeat=0.3) as progress:
        progress.status("searching")
        progress.update(trial)  # held back: a line was printed less than log_every ago
        time.sleep(0.8)  # the held-back trial line comes out once it is quiet
        time.sleep(0.8)  # then what runs now
        progress.status("refitting the best pipeline on all data")
        time.sleep(0.8)
    lines = buffer.getvalue().splitlines()
    assert any("1/5 trials, best roc_auc=0.9 | #1 smac ok 0.9" in ln for ln in lines), lines
    assert any("searching: trial #2 (still running, " in ln for ln in lines), lines
    assert any("refitting the best pipeline on all data (still running, " in ln for ln in lines), lines
    quiet = len(lines)
    time.sleep(0.8)
    assert len(buffer.getvalue().splitlines()) == quiet  # stopped with the search


def test_a_build_off_a_terminal_prints_unwrapped_lines_without_bars() -> None:
    console, buffer = _log_console()
    with BuildProgress(console, log_every=0.3) as progress:
        progress.phase("performance matrix", 152, done=29)
        progress.advance(text="x" * 120)  # longer than the console's 80 columns
        time.sleep(0.8)
    lines = buffer.getvalue().splitlines()
    assert lines[0].endswith("phase performance matrix: 123 to do (29 done already)"), lines
    assert any(ln.endswith("x" * 120) for ln in lines), lines  # one line, not wrapped at 80 columns
    assert any("performance matrix: 30/152 (still running, " in ln for ln in lines), lines
    assert "━" not in buffer.getvalue()  # no live bars in a log


def test_every_progress_line_gives_its_clock_time_in_utc_marked_z(monkeypatch: pytest.MonkeyPatch) -> None:
    """The search's, the KB build's and the benchmark's lines showed the local time without a zone ([20:14:05] on
    a machine 2 h east of UTC): now the UTC time, marked ``Z`` (``[18:14:05Z]``), in every one of them."""
    monkeypatch.setenv("TZ", "Asia/Kolkata")  # UTC+05:30 all year: a local time is 5.5 h off
    time.tzset()
    try:
        before = time.time()
        console, buffer = _log_console()
        dataset = SimpleNamespace(name="d", task=SimpleNamespace(kind="binary", metric="roc_auc"))
        settings = SimpleNamespace(trials_bounded=True, trial_budget=5, time_limit=None)
        with SearchProgress(console, dataset, settings, log_every=0.0, heartbeat=0.3) as search:
            search.status("searching")
            time.sleep(0.8)  # a "still running" line
        for display in (BuildProgress, RichProgress):  # the KB build's, the benchmark's
            with display(console, log_every=0.3) as progress:
                progress.phase("performance matrix", 3)
                progress.advance(text="one")
                time.sleep(0.8)  # a "still running" line
        after = time.time()
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    lines = buffer.getvalue().splitlines()
    assert len(lines) >= 6 and any("still running" in ln for ln in lines), lines
    allowed = {datetime.fromtimestamp(t, UTC).strftime("%H:%M:%SZ") for t in range(int(before), int(after) + 2)}
    for line in lines:
        stamp = re.match(r"^\[(\d\d:\d\d:\d\dZ)\] ", line)
        assert stamp is not None and stamp.group(1) in allowed, (line, sorted(allowed))
    assert clock(0) == "00:00:00Z" and clock(1_700_000_000) == "22:13:20Z"
