"""Live progress displays (rich) for searches and builds."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def _fmt(x: float) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"


class SearchProgress:
    """Shows trials done / budget, the incumbent score and the last trial, updated as trials finish."""

    def __init__(self, console: Console, dataset: Any, settings: Any, enabled: bool = True) -> None:
        self.console = console
        self.dataset = dataset
        self.settings = settings
        self.enabled = enabled
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=console,
            transient=False,
            disable=not enabled,
        )
        self._task: Any = None

    def __enter__(self) -> SearchProgress:
        self._progress.__enter__()
        self._task = self._progress.add_task(
            f"{self.dataset.name} ({self.dataset.task.kind})", total=self.settings.n_trials, info="starting"
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)  # type: ignore[arg-type]

    def status(self, text: str) -> None:
        if self._task is not None:
            self._progress.update(self._task, info=text)

    def update(self, trial: Any) -> None:
        mark = "ok" if trial.status == "ok" else f"[red]{trial.status}[/red]"
        info = (
            f"best {self.dataset.task.metric}={_fmt(trial.best_score)} | #{trial.number} {trial.origin} "
            f"{mark} {_fmt(trial.score)} ({trial.seconds:.1f}s)"
        )
        self._progress.update(self._task, completed=trial.number, info=info)


class BuildProgress:
    """Phases of a KB build: items done / total, failures, elapsed and ETA."""

    def __init__(self, console: Console, enabled: bool = True) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=console,
            disable=not enabled,
        )
        self._task: Any = None

    def __enter__(self) -> BuildProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)  # type: ignore[arg-type]

    def phase(self, name: str, total: int) -> None:
        if self._task is not None:
            self._progress.update(self._task, completed=self._progress.tasks[-1].total)
        self._task = self._progress.add_task(name, total=total, info="")

    def advance(self, failures: int | None = None) -> None:
        info = "" if not failures else f"[red]{failures} failed[/red]"
        self._progress.update(self._task, advance=1, info=info)

    def close(self) -> None:
        pass
