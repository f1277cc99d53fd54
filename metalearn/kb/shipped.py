"""The knowledge base shipped inside the package, and opening the product's default KB.

On first use, when the KB file does not exist yet, the knowledge base shipped inside the package
(``metalearn/kb/shipped_snapshot``, a parquet snapshot built from the corpus) is imported into it, so
recommendations work right after ``pip install``.
"""

from __future__ import annotations

from pathlib import Path

from metalearn.kb import open_kb
from metalearn.kb.base import KnowledgeBase
from metalearn.kb.snapshot import import_snapshot

SHIPPED_SNAPSHOT = Path(__file__).resolve().parent / "shipped_snapshot"


def shipped_snapshot() -> Path | None:
    """The snapshot shipped in the package, or None when this install has none."""
    return SHIPPED_SNAPSHOT if (SHIPPED_SNAPSHOT / "snapshot.json").is_file() else None


def open_default_kb(path: str | Path | None = None, read_only: bool = False, seed_from_shipped: bool = True) -> KnowledgeBase:
    """Open (creating if needed) the KB at ``path`` (default: ``$METALEARN_KB`` or the per-user file).

    A KB file that does not exist yet is seeded with the shipped snapshot (unless ``seed_from_shipped``
    is false). ``read_only`` applies to existing files only: a new file must be written once.
    """
    from metalearn.kb import resolve_kb_path

    where = resolve_kb_path(path)
    if where == ":memory:" or not Path(where).exists():
        store = open_kb(where, read_only=False)
        snap = shipped_snapshot()
        if seed_from_shipped and snap is not None:
            import_snapshot(store, snap)
        return store
    return open_kb(where, read_only=read_only)
