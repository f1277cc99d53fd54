"""The knowledge-base storage interface.

Rules every backend follows (checked by ``tests/test_kb_contract.py``, run on every backend):

1. **Identity is content.** A dataset is keyed by its content fingerprint, a configuration by the hash
   of (space, space version, canonical JSON), a run by hash(dataset, configuration, protocol).
   Putting a record whose key exists is a no-op that returns ``False`` (for datasets, configurations
   and runs) — never a duplicate, never an error. So re-running a build or search after a crash
   cannot duplicate or lose work. Meta-features and searches are *upserts*: the newest write wins.
2. **Referential integrity.** A run names a dataset and a configuration that are already stored;
   meta-features name a stored dataset. Violations raise :class:`metalearn.data.errors.NotFoundError` and write
   nothing.
3. **Atomic writes.** Every public write method is one transaction: it is applied entirely or not at
   all (``add_runs`` with a batch included). ``transaction()`` groups several writes into one.
   A crash mid-write leaves the KB as it was before that write.
4. **Records out are equal to records in.** Reading returns frozen records equal (``==``) to the ones
   written, floats bit-exact, NaN preserved, timestamps to the microsecond, dict/tuple fields intact.
5. **Reads never block on writes for long** and may be called from any thread; a backend hands each
   thread its own cursor. Only one process owns a KB file read-write.
6. **Schema versioned.** ``schema_version`` is the version of the stored schema; opening a store of
   an unknown (newer) version raises :class:`metalearn.data.errors.SchemaVersionError` saying what to do;
   older versions are migrated forward by numbered migrations.
7. **Listing is ordered and paginated**: by creation time then id, with ``limit``/``offset``.
8. **Frames for algorithms.** ``metafeature_frame`` and ``runs_frame`` return pandas DataFrames, the
   form recommenders (pure functions) consume. They reflect every committed write.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import pandas as pd

from metalearn.kb.model_store import ModelStore
from metalearn.kb.records import (
    ConfigurationRecord,
    DatasetRecord,
    MetaFeatureRecord,
    RunRecord,
    SearchRecord,
)

#: Tables a snapshot holds, in dependency order.
TABLES: tuple[str, ...] = ("datasets", "metafeatures", "configurations", "runs", "searches")


class KnowledgeBase(abc.ABC):
    """Storage of datasets, meta-features, configurations, runs and searches. See module docstring."""

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def schema_version(self) -> int: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources. Idempotent."""

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    @abc.abstractmethod
    def models(self) -> ModelStore:
        """The model registry stored in this KB (:mod:`metalearn.kb.model_store`); its writes join
        :meth:`transaction`."""

    @abc.abstractmethod
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes: all of them are applied, or (on an exception) none."""
        yield

    # -- datasets --------------------------------------------------------------------------------
    @abc.abstractmethod
    def put_dataset(self, record: DatasetRecord) -> bool:
        """Store a dataset; ``False`` if its id was already stored (the stored one is kept)."""

    @abc.abstractmethod
    def get_dataset(self, dataset_id: str) -> DatasetRecord:
        """The dataset with this id; :class:`NotFoundError` if absent."""

    @abc.abstractmethod
    def list_datasets(
        self, kind: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[DatasetRecord]: ...

    @abc.abstractmethod
    def find_datasets(
        self, name: str | None = None, openml_id: int | None = None
    ) -> list[DatasetRecord]:
        """Datasets matching a name (exact) or an OpenML id."""

    # -- meta-features ---------------------------------------------------------------------------
    @abc.abstractmethod
    def put_metafeatures(self, record: MetaFeatureRecord) -> None:
        """Upsert the meta-features of a stored dataset for one extractor version."""

    @abc.abstractmethod
    def get_metafeatures(self, dataset_id: str, version: str) -> MetaFeatureRecord:
        """:class:`NotFoundError` if absent."""

    @abc.abstractmethod
    def metafeature_frame(self, version: str, kind: str | None = None) -> pd.DataFrame:
        """One row per dataset (index ``dataset_id``), one column per meta-feature name, sorted."""

    # -- configurations --------------------------------------------------------------------------
    @abc.abstractmethod
    def put_configuration(self, record: ConfigurationRecord) -> bool: ...

    @abc.abstractmethod
    def get_configuration(self, config_id: str) -> ConfigurationRecord: ...

    @abc.abstractmethod
    def get_configurations(self, config_ids: Iterable[str]) -> dict[str, ConfigurationRecord]:
        """The stored ones among ``config_ids`` (missing ids are simply absent)."""

    # -- runs ------------------------------------------------------------------------------------
    @abc.abstractmethod
    def add_runs(self, records: Sequence[RunRecord], *, replace_failed: bool = False) -> int:
        """Store runs atomically; returns how many were new (existing run ids are skipped). With
        ``replace_failed``, a stored run that failed (crash, timeout, memout) is replaced by the record of the
        same id — the evaluation tried again, e.g. with a longer trial time limit — and counts as new; a
        successful stored run is always kept."""

    def add_run(self, record: RunRecord) -> bool:
        return self.add_runs([record]) == 1

    @abc.abstractmethod
    def get_run(self, run_id: str) -> RunRecord: ...

    @abc.abstractmethod
    def list_runs(
        self,
        dataset_id: str | None = None,
        config_id: str | None = None,
        search_id: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[RunRecord]: ...

    @abc.abstractmethod
    def runs_frame(
        self, kind: str | None = None, space: str | None = None, ok_only: bool = True, metric: str | None = None
    ) -> pd.DataFrame:
        """Columns: run_id, dataset_id, config_id, space, space_version, protocol, status, metric, score,
        cost, fit_seconds, budget, source. Filtered by the dataset kind and the configuration's space.

        With ``metric`` (one of the kind's metrics, which every run records), ``metric``, ``score`` and
        ``cost`` are that metric's: each ok run's value of it (:func:`metalearn.kb.schema.rescored`); an ok
        run that did not record it is left out, a failed run stays (NaN score and cost)."""

    # -- searches --------------------------------------------------------------------------------
    @abc.abstractmethod
    def put_search(self, record: SearchRecord) -> None:
        """Upsert a search record (newest write wins)."""

    @abc.abstractmethod
    def get_search(self, search_id: str) -> SearchRecord: ...

    @abc.abstractmethod
    def list_searches(
        self, dataset_id: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[SearchRecord]: ...

    # -- whole-table access (snapshots, stats) ----------------------------------------------------
    @abc.abstractmethod
    def dump_table(self, table: str) -> pd.DataFrame:
        """The whole table as a DataFrame in the snapshot column layout (see ``metalearn.kb.snapshot``)."""

    @abc.abstractmethod
    def load_table(self, table: str, frame: pd.DataFrame) -> int:
        """Insert rows of a snapshot table, skipping existing keys; returns rows inserted."""

    @abc.abstractmethod
    def stats(self) -> dict[str, object]:
        """Counts: datasets (total and by kind), configurations (total and by space), runs (total, ok,
        failed, by source: build, search, import:openml...), searches (total and by status),
        meta-feature vectors, schema version."""
