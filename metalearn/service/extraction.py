"""Meta-features of an uploaded dataset: reused from the KB when it knows the dataset, else extracted."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from metalearn.data.dataset import Dataset
from metalearn.data.errors import DataError, MetaLearnError, NotFoundError
from metalearn.kb.base import KnowledgeBase
from metalearn.metalearning.metafeatures import EXTRACTOR_VERSION, metafeature_record

log = logging.getLogger("metalearn.api")


@dataclass(frozen=True)
class ExtractedMetaFeatures:
    values: dict[str, float]
    version: str
    seconds: float
    cached: bool


def metafeatures_for(kb: KnowledgeBase, dataset: Dataset, seed: int = 0) -> ExtractedMetaFeatures:
    """The meta-feature vector of ``dataset`` (no KB write: uploads for recommendations leave no trace)."""
    t0 = time.perf_counter()
    try:
        rec = kb.get_metafeatures(dataset.dataset_id, EXTRACTOR_VERSION)
        return ExtractedMetaFeatures(dict(rec.values), EXTRACTOR_VERSION, time.perf_counter() - t0, True)
    except NotFoundError:
        pass
    try:
        rec = metafeature_record(dataset, seed=seed)
    except MetaLearnError:
        raise
    except (MemoryError, RecursionError):
        raise
    except Exception as err:  # the extractor tripped on this data: report it as a data problem
        log.warning("meta-feature extraction failed on an upload", exc_info=True)
        text = " ".join(str(err).split())[:200] or type(err).__name__
        raise DataError(f"cannot extract meta-features of {dataset.name!r}: {text}") from None
    return ExtractedMetaFeatures(dict(rec.values), EXTRACTOR_VERSION, time.perf_counter() - t0, False)
