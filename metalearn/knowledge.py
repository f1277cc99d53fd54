"""Opening the product's knowledge base, and registering datasets in it.

On first use, when the KB file does not exist yet, the knowledge base shipped inside the package
(``metalearn/data/kb_snapshot``, a parquet snapshot built from the corpus) is imported into it, so
recommendations work right after ``pip install``.
"""

from __future__ import annotations

from pathlib import Path

from kb import open_kb
from kb.base import KnowledgeBase
from kb.records import DatasetRecord, MetaFeatureRecord
from kb.snapshot import import_snapshot
from tasks.dataset import Dataset
from tasks.errors import NotFoundError

SHIPPED_SNAPSHOT = Path(__file__).resolve().parent / "data" / "kb_snapshot"


def shipped_snapshot() -> Path | None:
    """The snapshot shipped in the package, or None when this install has none."""
    return SHIPPED_SNAPSHOT if (SHIPPED_SNAPSHOT / "snapshot.json").is_file() else None


def open_default_kb(path: str | Path | None = None, read_only: bool = False, seed_from_shipped: bool = True) -> KnowledgeBase:
    """Open (creating if needed) the KB at ``path`` (default: ``$METALEARN_KB`` or the per-user file).

    A KB file that does not exist yet is seeded with the shipped snapshot (unless ``seed_from_shipped``
    is false). ``read_only`` applies to existing files only: a new file must be written once.
    """
    from kb import resolve_kb_path

    where = resolve_kb_path(path)
    if where == ":memory:" or not Path(where).exists():
        store = open_kb(where, read_only=False)
        snap = shipped_snapshot()
        if seed_from_shipped and snap is not None:
            import_snapshot(store, snap)
        return store
    return open_kb(where, read_only=read_only)


def dataset_record(dataset: Dataset) -> DatasetRecord:
    return DatasetRecord(
        dataset_id=dataset.dataset_id,
        name=dataset.name,
        kind=str(dataset.task.kind),
        n_rows=dataset.n_rows,
        n_features=dataset.n_features,
        n_categorical=dataset.n_categorical,
        n_targets=dataset.task.n_targets,
        targets=tuple(dataset.task.targets),
        target_kinds=tuple(str(k) for k in dataset.task.target_kinds),
        origin=dataset.origin,
        openml_id=dataset.openml_id,
    )


def ensure_metafeatures(kb: KnowledgeBase, dataset: Dataset, seed: int = 0) -> MetaFeatureRecord:
    """The dataset's meta-features from the KB, extracted (and stored) if absent. Stores the dataset too."""
    from metalearn.metafeatures import EXTRACTOR_VERSION, metafeature_record

    kb.put_dataset(dataset_record(dataset))
    try:
        return kb.get_metafeatures(dataset.dataset_id, EXTRACTOR_VERSION)
    except NotFoundError:
        rec = metafeature_record(dataset, seed=seed)
        kb.put_metafeatures(rec)
        return rec
