"""The sandbox a trial runs in: inline, or in a forked child process under time and memory limits.

A trial is a *work* function ``work(emit, catch)``: it reports its progress by calling ``emit`` with
``("fold", i, metrics, fit_seconds, predict_seconds)`` per completed fold (optionally with the fold's
validation predictions as a sixth item; before it ``("cut", i)`` when the fold's fits were stopped at a
clock bound, and ``("rounds", i, rounds, rows)`` when its boosted fit early-stopped), then once with a final
``("done",)`` or ``("error", status, text)``, and catches the exceptions of ``catch`` itself (turning
them into the final ``error`` message). :func:`run_inline` runs it in the calling process;
:func:`run_in_child` runs it in a forked child where BLAS/OpenMP threads are limited to 1,
``RLIMIT_AS`` caps its memory, and the parent kills the child's whole process group when the time
limit passes. Both collect the messages in an :class:`Outcome`.

:func:`status_of` and :func:`error_text` turn an exception into a run status
(``crash``/``timeout``/``memout``) and a one-line error.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

__all__ = ["Emit", "Outcome", "Work", "error_text", "run_in_child", "run_inline", "status_of"]

#: receives one progress or final message of a trial
Emit = Callable[[tuple[Any, ...]], None]
#: a trial: ``work(emit, catch)`` (see the module docstring)
Work = Callable[[Emit, tuple[type[BaseException], ...]], None]

_THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)
_MAX_ERROR_CHARS = 400


# --------------------------------------------------------------------------------------------
# errors


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen and len(seen) < 10:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def status_of(exc: BaseException) -> str:
    """The run status of a trial that failed with ``exc``: ``memout``, ``timeout`` or ``crash``."""
    for e in _chain(exc):
        if isinstance(e, MemoryError):
            return "memout"
        if isinstance(e, OSError) and e.errno == 12:  # ENOMEM
            return "memout"
        text = str(e)
        if "bad_alloc" in text or "Unable to allocate" in text or "Cannot allocate memory" in text:
            return "memout"
        if isinstance(e, TimeoutError):
            return "timeout"
    return "crash"


def error_text(exc: BaseException, where: str = "") -> str:
    """``"<Type>: <first line of the message>"`` (at most 400 characters), then `` (where)``."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    msg = lines[0] if lines else repr(exc)
    if len(msg) > _MAX_ERROR_CHARS:
        msg = msg[: _MAX_ERROR_CHARS - 3] + "..."
    return f"{type(exc).__name__}: {msg}" + (f" ({where})" if where else "")


# --------------------------------------------------------------------------------------------
# the outcome


@dataclass
class Outcome:
    """The messages of one trial: its completed ``folds`` (index, metrics, fit and predict seconds),
    the folds' validation ``predictions`` by fold index (when the trial sent them), its ``final`` message
    (None when it never sent one), whether it ``timed_out``, the child's ``exitcode`` (negative: the
    signal that killed it; None inline), the folds whose fits were ``cut`` at a clock bound, and the
    early-stopped boosting ``rounds`` and training rows of the folds that sent them."""

    folds: list[tuple[int, dict[str, float], float, float]] = field(default_factory=list)
    final: tuple[Any, ...] | None = None
    timed_out: bool = False
    exitcode: int | None = None
    predictions: dict[int, Any] = field(default_factory=dict)
    cut: list[int] = field(default_factory=list)
    rounds: dict[int, tuple[int, int]] = field(default_factory=dict)

    def emit(self, msg: tuple[Any, ...]) -> None:
        if msg[0] == "fold":
            self.folds.append((int(msg[1]), msg[2], float(msg[3]), float(msg[4])))
            if len(msg) > 5:
                self.predictions[int(msg[1])] = msg[5]
        elif msg[0] == "cut":
            self.cut.append(int(msg[1]))
        elif msg[0] == "rounds":
            self.rounds[int(msg[1])] = (int(msg[2]), int(msg[3]))
        else:
            self.final = msg


def run_inline(work: Work) -> Outcome:
    """Run ``work`` in this process, without limits (only ``Exception`` is caught)."""
    out = Outcome()
    work(out.emit, (Exception,))
    return out


# --------------------------------------------------------------------------------------------
# the child process


def _vm_size_bytes() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _child_main(conn: Any, work: Work, memory_limit_mb: int | None) -> None:
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)  # own process group: the parent can kill grandchildren too
    for var in _THREAD_VARS:
        os.environ[var] = "1"
    try:
        if memory_limit_mb is not None:
            import resource

            limit = _vm_size_bytes() + int(memory_limit_mb) * 1024 * 1024
            _, hard = resource.getrlimit(resource.RLIMIT_AS)
            if hard != resource.RLIM_INFINITY:
                limit = min(limit, hard)
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):
            work(conn.send, (BaseException,))
    except BaseException as exc:
        with contextlib.suppress(BaseException):
            conn.send(("error", status_of(exc), error_text(exc)))
    finally:
        with contextlib.suppress(BaseException):
            conn.close()


class _Child:
    """A forked child process (raw ``os.fork``: works inside daemonic processes such as Dask workers,
    where ``multiprocessing`` refuses to start children)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.exitcode: int | None = None

    def exited(self) -> bool:
        if self.exitcode is not None:
            return True
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            self.exitcode = -1
            return True
        if pid == 0:
            return False
        self.exitcode = os.waitstatus_to_exitcode(status)
        return True

    def kill(self) -> None:
        """SIGKILL the child's process group (it and anything it started); only before reaping."""
        if self.exitcode is not None:
            return
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except OSError:
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGKILL)

    def join(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while not self.exited():
            if time.monotonic() >= end:
                return False
            time.sleep(0.005)
        return True


def run_in_child(work: Work, time_limit: float | None, memory_limit_mb: int | None) -> Outcome:
    """Run ``work`` in a forked child under ``time_limit`` seconds (whole trial) and
    ``memory_limit_mb`` (on top of what the process already holds). The child is killed when the time
    limit passes (``timed_out``) or when it ends without a final message."""
    r_fd, w_fd = os.pipe()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: run, report over the pipe, and leave without any cleanup of the parent's state
        code = 0
        try:
            os.close(r_fd)
            _child_main(Connection(w_fd, readable=False), work, memory_limit_mb)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(w_fd)
    child = _Child(pid)
    recv = Connection(r_fd, writable=False)
    out = Outcome()
    deadline = None if time_limit is None else start + time_limit
    try:
        while out.final is None:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                out.timed_out = True
                break
            wait = 0.5 if deadline is None else min(0.5, deadline - now)
            if recv.poll(wait):
                try:
                    out.emit(recv.recv())
                except (EOFError, OSError):
                    break  # the child died without a final message
            elif child.exited() and not recv.poll(0):
                break
    finally:
        if out.timed_out or out.final is None:
            child.kill()
        if not child.join(5.0):
            child.kill()
            child.join(5.0)
        out.exitcode = child.exitcode
        recv.close()
    return out
