"""The process that runs a search, and searches whose process is gone.

A search record names its owner (``SearchRecord.owner_host/owner_pid/owner_started``, from
:func:`current_owner`). A search killed with ``kill -9`` never writes its final status, so it would stay
``running`` forever: :func:`interrupt_orphaned_searches` (called when a KB file is opened read-write) marks a
pending or running search as ``interrupted`` when its owner ran on this host and is gone (no process with
that PID, or one started at another time: the PID was reused), with ``n_trials`` = the runs it stored.
"""

from __future__ import annotations

import socket
from dataclasses import replace
from functools import cache
from typing import Any

import psutil

from metalearn.kb.base import KnowledgeBase
from metalearn.kb.records import SearchRecord, utcnow

#: Statuses of a search that has not finished (its process writes the final one).
UNFINISHED = ("pending", "running")
#: Process start times read at different moments may differ by rounding; a reused PID starts much later.
_START_TOLERANCE_MS = 1000


@cache
def _host() -> str:
    return socket.gethostname()


def _started_ms(pid: int) -> int | None:
    """The start time of process ``pid`` in ms since the epoch; None when there is no such process."""
    try:
        return round(psutil.Process(pid).create_time() * 1000)
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.Error:  # e.g. access denied: it exists
        return -1


def current_owner() -> dict[str, Any]:
    """The owner fields of a search record run by this process (``SearchRecord(..., **current_owner())``)."""
    pid = psutil.Process().pid
    return {"owner_host": _host(), "owner_pid": pid, "owner_started": _started_ms(pid)}


def owner_gone(record: SearchRecord) -> bool:
    """Whether the process that ran ``record`` is known to be gone (False when it may be alive, ran on
    another host, or the record names no owner)."""
    if record.owner_pid is None or record.owner_host != _host():
        return False
    started = _started_ms(record.owner_pid)
    if started is None:
        return True
    if started < 0 or record.owner_started is None:
        return False
    return abs(started - record.owner_started) > _START_TOLERANCE_MS


def interrupted(record: SearchRecord, n_runs: int, error: str) -> SearchRecord:
    """``record`` marked interrupted: ``n_trials`` counts its stored runs."""
    return replace(
        record, status="interrupted", n_trials=max(record.n_trials, n_runs), error=error, updated_at=utcnow()
    )


def count_runs(kb: KnowledgeBase, search_id: str) -> int:
    """How many runs the KB holds of search ``search_id`` (runs name their search in ``search_id``)."""
    return len(kb.list_runs(search_id=search_id))


def interrupt_orphaned_searches(kb: KnowledgeBase) -> list[str]:
    """Mark the pending/running searches of ``kb`` whose process is gone as interrupted; returns their ids."""
    done: list[str] = []
    for rec in kb.list_searches():
        if rec.status in UNFINISHED and owner_gone(rec):
            error = (
                f"its process (PID {rec.owner_pid} on {rec.owner_host}) stopped while it ran; "
                "run the same search again to resume from its trials"
            )
            kb.put_search(interrupted(rec, count_runs(kb, rec.search_id), error))
            done.append(rec.search_id)
    return done
