"""Progress displays: live (rich) ones for searches, builds and benchmarks, and :class:`NullProgress`."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def clock(now: float | None = None) -> str:
    """The clock time that starts a progress line, in UTC and marked so (``18:14:05Z``): a log read on another
    machine, or next to the KB's UTC timestamps, shows the same time. ``now``: seconds since the epoch (default:
    now)."""
    return time.strftime("%H:%M:%SZ", time.gmtime(now))


def _fmt(x: float) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"


class SearchProgress:
    """Shows trials done / budget (with no trial budget — a time limit ends the search —, trials done and
    the seconds used of the limit), the incumbent score and the last trial, updated as trials finish.

    On a terminal it is a live display. Otherwise (a pipe, a log file, CI) it prints plain status lines,
    never wrapped or cut to the console's width: one per phase (meta-features, recommendations, searching,
    refitting), one after a finished trial at most every ``log_every`` seconds, and the last trial's when
    the search ends, so a search running in the background can be followed with ``tail -f``; a trial or a refit
    that runs on prints a "still running" line every ``heartbeat`` seconds (a 49 s trial left a log silent).
    """

    def __init__(
        self, console: Console, dataset: Any, settings: Any, enabled: bool = True, log_every: float = 10.0,
        heartbeat: float = 30.0,
    ) -> None:
        self.console = console
        self.dataset = dataset
        self.settings = settings
        self.enabled = enabled
        self._log = enabled and not console.is_terminal
        self._log_every = log_every
        self._last_line = -math.inf
        self._pending: str | None = None  # the latest trial line not printed yet (off a terminal)
        self._state = "starting"  # what is running now: the last status, or the search's next trial
        self._lock = threading.Lock()
        self._beat = _Heartbeat(self._quiet_line, heartbeat) if self._log else None
        self._started = time.monotonic()
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=console,
            transient=False,
            disable=not enabled or self._log,
        )
        self._task: Any = None

    @property
    def _title(self) -> str:
        return f"{self.dataset.name} ({self.dataset.task.kind})"

    def _line(self, text: str) -> None:
        with self._lock:
            self.console.print(
                f"[{clock()}] {self._title}: {text}", markup=False, highlight=False, soft_wrap=True
            )
            self._last_line = time.monotonic()

    def _quiet_line(self, quiet: float) -> None:
        """The heartbeat: after ``quiet`` seconds without a line, the trial line held back, else what runs now."""
        if time.monotonic() - self._last_line < quiet:
            return
        if self._pending is not None:
            self._flush()
        else:
            self._line(f"{self._state} (still running, {time.monotonic() - self._last_line:.0f} s since the last line)")

    def __enter__(self) -> SearchProgress:
        self._progress.__enter__()
        total = self.settings.trial_budget if self.settings.trials_bounded else None
        self._task = self._progress.add_task(self._title, total=total, info="starting")
        if self._beat is not None:
            self._last_line = time.monotonic()
            self._beat.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._beat is not None:
            self._beat.stop()
        self._flush()
        self._progress.__exit__(*exc)  # type: ignore[arg-type]

    def _flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            self._line(pending)

    def status(self, text: str) -> None:
        self._state = text
        if self._task is not None:
            self._progress.update(self._task, info=text)
        if self._log:
            self._flush()
            self._line(text)

    def update(self, trial: Any) -> None:
        metric = self.dataset.task.metric
        budget = f" at budget {trial.budget:.3g}" if getattr(trial, "budget", None) is not None else ""
        tail = (
            f"#{trial.number} {trial.origin}{budget} {trial.status} {_fmt(trial.score)} ({trial.seconds:.1f}s)"
        )
        if self._log:
            if self.settings.trials_bounded:
                count = f"{trial.number}/{self.settings.trial_budget} trials"
            else:
                used = time.monotonic() - self._started
                count = f"{trial.number} trials in {used:.0f} s of {self.settings.time_limit:g}"
            self._pending = f"{count}, best {metric}={_fmt(trial.best_score)} | {tail}"
            if self._state == "searching" or self._state.startswith("searching:"):
                self._state = f"searching: trial #{trial.number + 1}"
            if time.monotonic() - self._last_line >= self._log_every:
                self._flush()
            return
        mark = "ok" if trial.status == "ok" else f"[red]{trial.status}[/red]"
        info = (
            f"best {metric}={_fmt(trial.best_score)} | #{trial.number} {trial.origin}{budget} "
            f"{mark} {_fmt(trial.score)} ({trial.seconds:.1f}s)"
        )
        self._progress.update(self._task, completed=trial.number, info=info)


class _Heartbeat:
    """Calls ``beat(every)`` every few seconds in a daemon thread, between :meth:`start` and :meth:`stop`."""

    def __init__(self, beat: Any, every: float) -> None:
        self._beat, self._every = beat, every
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metalearn-progress", daemon=True)

    def _run(self) -> None:
        while not self._stopped.wait(min(5.0, self._every / 3)):
            try:
                self._beat(self._every)
            except Exception:  # a progress line is never worth a failed job
                return

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)


class BuildProgress:
    """Phases of long work (a KB build, a benchmark): items done / total, failures, elapsed and ETA.

    On a terminal it is a live display; otherwise (a log file, CI) it prints a status line every
    ``log_every`` seconds, so work running in the background can be followed with ``tail -f`` — never wrapped
    at the console's width, without the live bars, and, while an item runs on, a "still running" line every
    ``log_every`` seconds.
    """

    def __init__(self, console: Console | None = None, enabled: bool = True, log_every: float = 30.0) -> None:
        console = console or Console(stderr=True)
        self.console = console
        self._log = enabled and not console.is_terminal
        self._log_every = log_every
        self._beat = _Heartbeat(self._quiet_line, log_every) if self._log else None
        self._last_line = time.monotonic()
        self._last = 0.0
        self._t0 = time.monotonic()
        self._phase_t0 = self._t0
        self._phase_done0 = 0
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=console,
            disable=not enabled or self._log,
        )
        self._task: Any = None

    def _print(self, text: str) -> None:
        self.console.print(text, highlight=False, soft_wrap=True)
        self._last_line = time.monotonic()

    def _quiet_line(self, quiet: float) -> None:
        if self._task is None or time.monotonic() - self._last_line < quiet:
            return
        t = self._progress.tasks[-1]
        self._print(f"[{clock()}] {t.description}: {t.completed:.0f}/{t.total:.0f} (still running, "
                    f"{time.monotonic() - self._last_line:.0f} s since the last line)")

    def __enter__(self) -> BuildProgress:
        self._progress.__enter__()
        if self._beat is not None:
            self._beat.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._beat is not None:
            self._beat.stop()
        self._progress.__exit__(*exc)  # type: ignore[arg-type]

    def phase(self, name: str, total: int, done: int = 0, note: str = "") -> None:
        """A new phase of ``total`` items, ``done`` of them finished earlier (a resumed run); ``note`` ends its line."""
        if self._task is not None:
            self._progress.update(self._task, completed=self._progress.tasks[-1].total)
        self._task = self._progress.add_task(name, total=total, completed=done, info="")
        self._phase_t0 = time.monotonic()
        self._phase_done0 = done
        if self._log:
            extra = f" ({done} done already)" if done else ""  # by an earlier run, or an earlier phase
            self._print(f"[{clock()}] phase {name}: {total - done} to do{extra}{note}")

    def advance(self, failures: int | None = None, text: str = "") -> None:
        """One more item done; ``failures`` so far and/or a ``text`` about the last item."""
        info = text or ("" if not failures else f"[red]{failures} failed[/red]")
        self._progress.update(self._task, advance=1, info=info)
        now = time.monotonic()
        if self._log and now - self._last >= self._log_every:
            self._last = now
            t = self._progress.tasks[-1]
            rate = (t.completed - self._phase_done0) / max(now - self._phase_t0, 1e-9)
            eta = (t.total - t.completed) / rate if rate > 0 and t.total else float("nan")
            tail = f" failures={failures or 0}" if text == "" else f" | {text}"
            self._print(
                f"[{clock()}] {t.description}: {t.completed:.0f}/{t.total:.0f}"
                f" ({rate * 3600:.0f}/h, eta {eta / 60:.0f} min){tail}"
            )

    def message(self, text: str) -> None:
        self._print(text)

    def close(self) -> None:
        pass


class RichProgress(BuildProgress):
    """The benchmark's progress display: :class:`BuildProgress` that ignores an item done before the
    first phase."""

    def __enter__(self) -> RichProgress:
        super().__enter__()
        return self

    def advance(self, failures: int | None = None, text: str = "") -> None:
        if self._task is not None:
            super().advance(failures, text)


class NullProgress:
    """The progress interface of a KB build and a benchmark (all no-ops): see :class:`BuildProgress`."""

    def phase(self, name: str, total: int, done: int = 0, note: str = "") -> None: ...

    def advance(self, failures: int | None = None, text: str = "") -> None: ...

    def message(self, text: str) -> None: ...

    def close(self) -> None: ...
