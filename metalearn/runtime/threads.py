"""Limiting the BLAS / OpenMP thread pools of the numeric libraries around a block.

``threadpoolctl.threadpool_limits`` scans the process' loaded libraries on every call (a few
milliseconds: it reads ``/proc/self/maps``), which dominated single-row prediction. :func:`limited`
keeps one ``ThreadpoolController`` and builds a new one only when modules were imported since (a newly
imported library may bring its own thread pool).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_lock = threading.Lock()
_controller: Any = None
_modules_seen = -1


def _current() -> Any:
    global _controller, _modules_seen
    n = len(sys.modules)
    with _lock:
        if _controller is None or n != _modules_seen:
            from threadpoolctl import ThreadpoolController

            _controller, _modules_seen = ThreadpoolController(), n
        return _controller


@contextmanager
def limited(threads: int | None = 1) -> Iterator[None]:
    """Run the block with at most ``threads`` threads in every BLAS / OpenMP pool (None: no limit)."""
    if threads is None:
        yield
        return
    with _current().limit(limits=threads):
        yield
