"""The buffered prediction log: a predict request hands its logged rows to :class:`PredictionLogWriter`
(an append to a list under a lock), and a background thread writes them to the KB
(:meth:`~metalearn.registry.registry.ModelRegistry.write_log`, which also applies the retention) every
``interval`` seconds, or as soon as ``batch_rows`` rows wait. So logging never puts a KB write on the
request path.

``flush()`` writes what waits at once (feedback calls it first, so a prediction made a moment ago can be
labelled); ``close()`` stops the thread and flushes (the app's shutdown). A failed write is logged and its
rows are kept for the next attempt, up to ``max_buffered`` rows: beyond that the oldest are dropped (and
counted), so a KB that stays unwritable cannot exhaust the memory.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from metalearn.kb.model_store import PredictionRecord

log = logging.getLogger("metalearn.api.predictions")


class PredictionLogWriter:
    """Collects :class:`PredictionRecord` s and writes them in batches from a background thread."""

    def __init__(
        self,
        write: Callable[[Sequence[PredictionRecord]], None],
        interval: float = 2.0,
        batch_rows: int = 1000,
        max_buffered: int = 200_000,
        on_dropped: Callable[[int], None] | None = None,
    ) -> None:
        self._write = write
        self.interval = interval
        self.batch_rows = batch_rows
        self.max_buffered = max_buffered
        self._on_dropped = on_dropped
        self._buffer: list[PredictionRecord] = []
        self._lock = threading.Lock()  # guards the buffer (held for an append or a swap only)
        self._flush_lock = threading.Lock()  # one write at a time, in order
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written = 0
        self.dropped = 0

    def add(self, records: Sequence[PredictionRecord]) -> None:
        """Queue ``records`` (the registry's ``on_logged`` callback); never blocks on the KB."""
        if not records:
            return
        with self._lock:
            self._buffer.extend(records)
            over = len(self._buffer) - self.max_buffered
            if over > 0:
                del self._buffer[:over]
            waiting = len(self._buffer)
        if over > 0:
            self._count_dropped(over)
        if waiting >= self.batch_rows:
            self._wake.set()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._buffer)

    def flush(self) -> int:
        """Write every queued record now; returns how many were written (0 when the write failed: they
        stay queued)."""
        with self._flush_lock:
            with self._lock:
                batch, self._buffer = self._buffer, []
            if not batch:
                return 0
            try:
                self._write(batch)
            except Exception:
                log.exception("could not write %d logged predictions; keeping them for the next attempt", len(batch))
                with self._lock:
                    self._buffer[:0] = batch
                    over = len(self._buffer) - self.max_buffered
                    if over > 0:
                        del self._buffer[:over]
                if over > 0:
                    self._count_dropped(over)
                return 0
            self.written += len(batch)
            return len(batch)

    def _count_dropped(self, n: int) -> None:
        self.dropped += n
        log.warning("the prediction log buffer is full: dropped the %d oldest logged predictions", n)
        if self._on_dropped is not None:
            self._on_dropped(n)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="metalearn-prediction-log", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            self.flush()

    def close(self) -> None:
        """Stop the thread and write what is left."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.flush()
