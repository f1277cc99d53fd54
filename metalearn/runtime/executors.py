"""Where jobs run: inline, in a process pool or on Dask — one interface for the KB build and the benchmark.

:class:`Executor` runs ``fn(*args)`` jobs and hands back ``(args, result or exception)`` as they finish
(:meth:`Executor.map_unordered`); one failed job is reported, the others go on. Backends:

- **inline** (``workers=1`` and no scheduler): each job runs when it is started, in this process;
- **process** (``pool="process"``): a ``spawn`` process pool of ``workers`` processes; a pool whose
  worker died (out of memory, killed) is replaced, the jobs it was running are reported as failed with
  :class:`BrokenProcessPool` and the others it held are run again;
- **dask** (``pool="dask"``): a ``LocalCluster`` of ``workers`` processes, or the scheduler at
  ``scheduler`` (an address).

Ctrl-C: workers ignore SIGINT (a terminal signals the whole process group), so only the owner acts on
it — it waits for jobs in short slices, stops within a second and, leaving the ``with`` block with the
exception, terminates its workers (the jobs they were running are lost; finished ones were handed back).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Literal

__all__ = ["BrokenProcessPool", "Executor", "configure_dask", "ignore_sigint", "sigint_ignored"]

#: how long the owner waits for jobs at a time: the bound on how late it notices a Ctrl-C
WAIT_SLICE = 0.5

Job = tuple[Any, ...]


def configure_dask() -> None:
    """Dask settings for evaluation workers started by this process (``LocalCluster``).

    - workers are not daemonic: a trial forks a child to enforce its time and memory limits;
    - workers get one BLAS/OpenMP thread each, but *not* Dask's default ``MALLOC_TRIM_THRESHOLD_=65536``
      (the environment below replaces Dask's default one): fixing glibc's trim threshold also freezes its
      mmap threshold at 128 KiB, so every larger numpy temporary is mmap'ed and page-faulted afresh.
      Measured here: the same MLP trial took 2.7 s in a plain process and 11-13 s in a default Dask
      worker (2.5-4x slower MLPs, 1.7x over a random sample of configurations). Workers you start
      yourself for ``--scheduler`` should not set it either.
    """
    import dask

    dask.config.set(
        {
            "distributed.worker.daemon": False,
            "distributed.nanny.pre-spawn-environ": {
                "OMP_NUM_THREADS": 1,
                "MKL_NUM_THREADS": 1,
                "OPENBLAS_NUM_THREADS": 1,
            },
        }
    )


@contextlib.contextmanager
def sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT while worker processes are started, so they inherit "ignore" (a disposition
    survives exec): a Ctrl-C in a terminal reaches the whole process group, and only the owner should
    act on it — it stops, keeps every finished result, and shuts the workers down — instead of each
    worker dying with its own KeyboardInterrupt traceback (and Dask's nanny restarting it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class ShutdownNoise(logging.Filter):
    """Drops the record a Dask worker logs when its heartbeat meets a scheduler that is closing — an ERROR with a
    full traceback ("Failed to communicate with scheduler during heartbeat"), expected while the owner shuts its
    ``LocalCluster`` down (about 1 search in 80 printed one) and nothing a user can act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "during heartbeat" not in record.getMessage()


def quiet_shutdown() -> None:
    """Run in each worker of the owner's ``LocalCluster`` just before it closes: :class:`ShutdownNoise` on the
    worker's logger (installed once)."""
    log = logging.getLogger("distributed.worker")
    if not any(isinstance(f, ShutdownNoise) for f in log.filters):
        log.addFilter(ShutdownNoise())


#: how often a process-pool worker checks that its owner is alive (seconds)
ORPHAN_CHECK_SECONDS = 1.0


def ignore_sigint() -> None:
    """Process-pool initializer: the worker ignores SIGINT (see :func:`sigint_ignored`), and exits when its owner
    is gone (a ``kill -9`` of ``benchmark --workers 2`` left its two workers, 350 MB each, idle for good)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    owner = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(ORPHAN_CHECK_SECONDS)
            if os.getppid() != owner:  # re-parented: the owner died without shutting the pool down
                os._exit(1)

    threading.Thread(target=watch, name="metalearn-orphan-watch", daemon=True).start()


class Executor:
    """Runs jobs inline, in a process pool or on Dask (see the module docstring); a context manager:
    leaving the block normally waits for the workers to shut down, leaving it with an exception
    (Ctrl-C included) terminates them."""

    def __init__(
        self, workers: int = 1, *, pool: Literal["process", "dask"] = "process", scheduler: str | None = None
    ) -> None:
        self.workers = workers
        self.kind: str = "inline" if workers <= 1 and not scheduler else pool
        self._pool: ProcessPoolExecutor | None = None
        self._client: Any = None
        self._cluster: Any = None
        self._completed: Any = None  # distributed.as_completed over the submitted Dask futures
        self._keys = itertools.count()
        if self.kind == "process":
            self._pool = _process_pool(workers)
        elif self.kind == "dask":
            from distributed import Client, LocalCluster, as_completed

            configure_dask()
            if scheduler:
                self._client = Client(scheduler)
            else:
                with sigint_ignored():  # workers inherit it: Ctrl-C stops the owner, which closes them
                    self._cluster = LocalCluster(
                        n_workers=workers,
                        threads_per_worker=1,
                        processes=True,
                        dashboard_address=None,
                        # no dashboard, but the scheduler's HTTP server (health, metrics) still binds: a free
                        # port, not 8787 (a busy 8787 printed a 4-line "Port 8787 is already in use" warning)
                        scheduler_kwargs={"dashboard_address": ":0"},
                        memory_limit=0,
                    )
                self._client = Client(self._cluster)
            self._completed = as_completed(loop=self._client.loop)

    # ------------------------------------------------------------------ running jobs
    def map_unordered(
        self,
        fn: Callable[..., Any],
        jobs: Iterable[Job],
        skip: Callable[[Job], BaseException | None] | None = None,
    ) -> Iterator[tuple[Job, Any]]:
        """``(args, fn(*args) or the exception it raised)`` for each job, as jobs finish.

        At most one job runs at a time inline, ``workers`` in a process pool, all of them on Dask. A
        ``deque`` of jobs is read as it goes, so jobs appended to it while iterating run too. ``skip(args)``
        may return an exception to hand back for a job instead of running it.
        """
        queue = jobs if isinstance(jobs, deque) else deque(jobs)
        slots = {"inline": 1, "process": self.workers}.get(self.kind)
        in_flight: dict[Any, Job] = {}
        while queue or in_flight:
            while queue and (slots is None or len(in_flight) < slots):
                args = queue.popleft()
                skipped = skip(args) if skip is not None else None
                if skipped is not None:
                    yield args, skipped
                    continue
                in_flight[self._submit(fn, args)] = args
            if not in_flight:
                continue
            broken = False
            for fut in self._wait_first(in_flight):
                args = in_flight.pop(fut)
                outcome = self._outcome(fut)
                broken = broken or isinstance(outcome, BrokenProcessPool)
                yield args, outcome
            if broken:  # the pool is gone: run what it still held again, in a new pool
                queue.extendleft(in_flight.values())
                in_flight.clear()
                self._restart()

    def share(self, value: Any) -> Any:
        """``value`` as a job argument that reaches the workers once, not with every job: on Dask, a future of
        it scattered to every worker (a job's argument that is such a future arrives as the value); inline and
        in a process pool, ``value`` itself. Without it, every trial of a search sent its dataset in the job's
        graph (a 3,000 x 1,211 table: 28 MB per trial, and distributed's "Sending large graph" warning printed
        for each)."""
        if self._client is None:
            return value
        return self._client.scatter(value, broadcast=True, hash=False)

    def _submit(self, fn: Callable[..., Any], args: Job) -> Any:
        if self._pool is not None:
            return self._pool.submit(fn, *args)
        if self._client is not None:
            key = f"{fn.__name__}-{next(self._keys)}-{time.time_ns()}"
            fut = self._client.submit(fn, *args, pure=False, key=key)
            self._completed.add(fut)
            return fut
        done: Future[Any] = Future()
        try:
            done.set_result(fn(*args))
        except Exception as exc:  # one failed job is reported, the others go on (Ctrl-C is not caught)
            done.set_exception(exc)
        return done

    def _wait_first(self, in_flight: dict[Any, Job]) -> list[Any]:
        """The finished futures, once at least one is: waits in short slices, so that a Ctrl-C in the
        owner is handled within a second rather than when the next job happens to finish."""
        if self._completed is not None:
            return [next(self._completed)]  # distributed waits in 0.1 s slices
        while True:
            done, _ = wait(list(in_flight), timeout=WAIT_SLICE, return_when=FIRST_COMPLETED)
            if done:
                return list(done)

    def _outcome(self, fut: Any) -> Any:
        if self._client is not None:
            try:
                return fut.result()
            except Exception as exc:  # a worker-level failure of one job: reported, the others go on
                return exc
        error = fut.exception()
        return error if error is not None else fut.result()

    # ------------------------------------------------------------------ stopping
    def _restart(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = _process_pool(self.workers)

    def close(self) -> None:
        """Shut the workers down once their jobs are done."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.quiet_workers()
        self._close_dask()

    def quiet_workers(self) -> None:
        """Before our own ``LocalCluster`` stops: :func:`quiet_shutdown` in each worker, which is idle by now
        (not on :meth:`terminate`, whose workers may be busy)."""
        if self._client is not None and self._cluster is not None:
            with contextlib.suppress(Exception):
                self._client.run(quiet_shutdown, on_error="ignore")

    def terminate(self) -> None:
        """Stop the workers without waiting for their running jobs (their results are lost)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            procs = list((getattr(pool, "_processes", None) or {}).values())  # shutdown() forgets them
            pool.shutdown(wait=False, cancel_futures=True)
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.join(timeout=10)
        self._close_dask()

    def _close_dask(self) -> None:
        client, cluster = self._client, self._cluster
        self._client = self._cluster = self._completed = None
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.terminate()


def _process_pool(workers: int) -> ProcessPoolExecutor:
    # spawn: workers start clean (no inherited DuckDB handles or threads); scripts need the
    # `if __name__ == "__main__":` guard. Workers ignore Ctrl-C: the owner stops, keeps what finished
    # and shuts the pool down.
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=ignore_sigint
    )
