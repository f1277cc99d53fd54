"""The knowledge base: records, the storage interface, its DuckDB and in-memory backends, snapshots.

``open_kb()`` is the one way the rest of metalearn opens a KB::

    from metalearn.kb import open_kb
    with open_kb() as kb:            # $METALEARN_KB or ~/.local/share/metalearn/kb.duckdb
        kb.put_dataset(record)

``open_default_kb()`` (in ``shipped``) also seeds a new file with the KB shipped in the package.

May import: :mod:`metalearn.runtime`, :mod:`metalearn.data`.
"""

from __future__ import annotations

import os
from pathlib import Path

from metalearn.kb.base import TABLES, KnowledgeBase
from metalearn.kb.duckdb_store import DuckDBKnowledgeBase
from metalearn.kb.memory import InMemoryKnowledgeBase
from metalearn.kb.records import (
    RUN_STATUSES,
    SEARCH_STATUSES,
    ConfigurationRecord,
    DatasetRecord,
    MetaFeatureRecord,
    RunRecord,
    SearchRecord,
    canonical_json,
    config_id_for,
    run_id_for,
    utcnow,
)
from metalearn.kb.schema import CURRENT_VERSION, RUNS_FRAME_COLUMNS
from metalearn.kb.schema import nan_equal as records_equal
from metalearn.kb.snapshot import export_snapshot, import_snapshot, read_snapshot, snapshot_info

#: Environment variable naming the KB file ``open_kb()`` uses when given no path.
KB_ENV = "METALEARN_KB"
#: The path that gives an in-memory KB.
MEMORY = ":memory:"


def default_kb_path() -> Path:
    """``$XDG_DATA_HOME/metalearn/kb.duckdb``, falling back to ``~/.local/share/metalearn/kb.duckdb``."""
    base = os.environ.get("XDG_DATA_HOME", "").strip()
    root = Path(base).expanduser() if base else Path.home() / ".local" / "share"
    return root / "metalearn" / "kb.duckdb"


def resolve_kb_path(path: str | Path | None = None) -> str | Path:
    """The KB location ``open_kb(path)`` uses: ``path``, else ``$METALEARN_KB``, else :func:`default_kb_path`."""
    if path is None or str(path).strip() == "":
        env = os.environ.get(KB_ENV, "").strip()
        path = env if env else default_kb_path()
    if str(path) == MEMORY:
        return MEMORY
    return Path(path).expanduser()


def open_kb(path: str | Path | None = None, read_only: bool = False) -> KnowledgeBase:
    """Open (creating if needed) the knowledge base at ``path``; ``":memory:"`` gives an in-memory one."""
    where = resolve_kb_path(path)
    if where == MEMORY:
        return InMemoryKnowledgeBase()
    return DuckDBKnowledgeBase(where, read_only=read_only)


__all__ = [
    "CURRENT_VERSION",
    "KB_ENV",
    "MEMORY",
    "RUNS_FRAME_COLUMNS",
    "RUN_STATUSES",
    "SEARCH_STATUSES",
    "TABLES",
    "ConfigurationRecord",
    "DatasetRecord",
    "DuckDBKnowledgeBase",
    "InMemoryKnowledgeBase",
    "KnowledgeBase",
    "MetaFeatureRecord",
    "RunRecord",
    "SearchRecord",
    "canonical_json",
    "config_id_for",
    "default_kb_path",
    "export_snapshot",
    "import_snapshot",
    "open_kb",
    "read_snapshot",
    "records_equal",
    "resolve_kb_path",
    "run_id_for",
    "snapshot_info",
    "utcnow",
]
