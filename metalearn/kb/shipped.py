"""The knowledge base shipped inside the package, and opening the product's default KB.

On first use, when the KB file does not exist yet, the knowledge base shipped inside the package
(``metalearn/kb/shipped_snapshot``, a parquet snapshot built from the corpus) is imported into it, so
recommendations work right after ``pip install``. A KB seeded that way by an earlier release (it holds
at least half of the shipped datasets) receives what a newer shipped snapshot adds (e.g. the runs of new
model families, or of known configurations at a larger subsample) the next time it is opened read-write: :func:`refresh_from_shipped`. A KB created empty
on purpose (``open_kb``, or ``seed_from_shipped=False``) is never filled.
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


def open_default_kb(
    path: str | Path | None = None, read_only: bool = False, seed_from_shipped: bool = True, *, current: bool = False
) -> KnowledgeBase:
    """Open (creating if needed) the KB at ``path`` (default: ``$METALEARN_KB`` or the per-user file).

    A KB file that does not exist yet is seeded with the shipped snapshot (unless ``seed_from_shipped``
    is false). ``read_only`` applies to existing files only: a new file must be written once. A read-write
    open of a KB seeded by an older release imports the newer shipped records (:func:`refresh_from_shipped`);
    a read-only open does not, unless ``current``: then the KB is brought up to date first, in a short
    read-write open (skipped when another process holds the file) — what the benchmarks use, so that they
    measure the product a user has after any command, not a KB seeded by an earlier release.
    """
    from metalearn.kb import resolve_kb_path

    where = resolve_kb_path(path)
    if where == ":memory:" or not Path(where).exists():
        store = open_kb(where, read_only=False)
        snap = shipped_snapshot()
        if seed_from_shipped and snap is not None:
            import_snapshot(store, snap)
        return store
    if read_only and current and seed_from_shipped:
        try:
            writable = open_kb(where, read_only=False)
        except Exception:  # held by another process: read what is there
            pass
        else:
            try:
                refresh_from_shipped(writable)
            finally:
                writable.close()
    store = open_kb(where, read_only=read_only)
    if seed_from_shipped and not read_only:
        try:
            refresh_from_shipped(store)
        except BaseException:
            store.close()
            raise
    return store


def refresh_from_shipped(kb: KnowledgeBase, snapshot: str | Path | None = None) -> dict[str, int] | None:
    """Import the records of the shipped snapshot (or ``snapshot``) that ``kb`` lacks, when ``kb`` was
    seeded from an earlier one (it holds at least half of the snapshot's datasets) and misses some of its
    datasets, configurations or runs; returns the rows inserted per table, None when nothing was to do. The
    import is one transaction and skips the records already stored."""
    import logging

    import pyarrow.parquet as pq

    snap = Path(snapshot) if snapshot is not None else shipped_snapshot()
    if snap is None:
        return None
    shipped_ds = set(pq.read_table(snap / "datasets.parquet", columns=["dataset_id"]).column(0).to_pylist())
    shipped_cfg = set(pq.read_table(snap / "configurations.parquet", columns=["config_id"]).column(0).to_pylist())
    have_ds = {d.dataset_id for d in kb.list_datasets()}
    seeded = len(shipped_ds & have_ds) * 2 >= len(shipped_ds) > 0
    if not seeded:
        return None
    if shipped_ds <= have_ds and len(kb.get_configurations(shipped_cfg)) == len(shipped_cfg):
        # same datasets and configurations: new runs (e.g. stored configurations at a larger subsample)?
        shipped_runs = pq.read_table(snap / "runs.parquet", columns=["run_id"]).column(0).to_pylist()
        if set(kb.runs_frame(ok_only=False)["run_id"]).issuperset(shipped_runs):
            return None
    inserted = import_snapshot(kb, snap)
    logging.getLogger("metalearn.kb").info("the KB received the newer shipped snapshot's records: %s", inserted)
    return inserted
