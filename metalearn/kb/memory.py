"""The in-memory knowledge base: plain dicts behind a lock, same rules as the DuckDB store.

Every operation holds one re-entrant lock, so a transaction opened by one thread is invisible to the
others until it ends (they wait for it). Transactions keep an undo log: on an exception every change made
since the outermost ``transaction()`` began is reverted.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Self

import numpy as np
import pandas as pd
import pyarrow as pa

from metalearn.data.errors import InputError, NotFoundError
from metalearn.kb import schema
from metalearn.kb.base import KnowledgeBase
from metalearn.kb.model_store import ModelStore, bump_alias_epoch
from metalearn.kb.model_store_memory import InMemoryModelStore
from metalearn.kb.records import (
    ConfigurationRecord,
    DatasetRecord,
    MetaFeatureRecord,
    RunRecord,
    SearchRecord,
)

_ABSENT = object()


def _page(items: list[Any], limit: int | None, offset: int) -> list[Any]:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise InputError(f"limit must be a non-negative integer or None, got {limit!r}")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InputError(f"offset must be a non-negative integer, got {offset!r}")
    return items[offset:] if limit is None else items[offset : offset + limit]


class InMemoryKnowledgeBase(KnowledgeBase):
    """A knowledge base that lives in this process only (tests, ``--kb :memory:``)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._datasets: dict[str, DatasetRecord] = {}
        self._metafeatures: dict[tuple[str, str], MetaFeatureRecord] = {}
        self._configurations: dict[str, ConfigurationRecord] = {}
        self._runs: dict[str, RunRecord] = {}
        self._searches: dict[str, SearchRecord] = {}
        self._depth = 0
        self._undo: list[tuple[dict[Any, Any], Any, Any]] = []
        #: the key of this KB's alias epoch (see metalearn.kb.model_store, rule 6)
        self.epoch_key = f"memory:{id(self)}"
        self._models = InMemoryModelStore(self)

    def __enter__(self) -> Self:
        return self

    @property
    def schema_version(self) -> int:
        return schema.CURRENT_VERSION

    def __repr__(self) -> str:
        return f"InMemoryKnowledgeBase({len(self._datasets)} datasets, {len(self._runs)} runs)"

    # -- transactions ----------------------------------------------------------------------------
    def _set(self, table: dict[Any, Any], key: Any, value: Any) -> None:
        if self._depth:
            self._undo.append((table, key, table.get(key, _ABSENT)))
        table[key] = value

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            outer = self._depth == 0
            self._depth += 1
            try:
                yield
            except BaseException:
                if outer:
                    self._rollback()
                raise
            finally:
                self._depth -= 1
            if outer:
                self._undo.clear()

    def _del(self, table: dict[Any, Any], key: Any) -> None:
        if self._depth:
            self._undo.append((table, key, table.get(key, _ABSENT)))
        table.pop(key, None)

    @property
    def models(self) -> ModelStore:
        return self._models

    def _rollback(self) -> None:
        bump_alias_epoch(self.epoch_key)
        while self._undo:
            table, key, old = self._undo.pop()
            if old is _ABSENT:
                table.pop(key, None)
            else:
                table[key] = old

    # -- datasets --------------------------------------------------------------------------------
    def put_dataset(self, record: DatasetRecord) -> bool:
        rec = schema.normalise("datasets", record)
        with self._lock:
            if rec.dataset_id in self._datasets:
                return False
            self._set(self._datasets, rec.dataset_id, rec)
            return True

    def get_dataset(self, dataset_id: str) -> DatasetRecord:
        with self._lock:
            rec = self._datasets.get(dataset_id)
        if rec is None:
            raise NotFoundError(
                f"dataset {dataset_id} is not in the knowledge base: list datasets to find its id"
            )
        return rec

    def list_datasets(
        self, kind: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[DatasetRecord]:
        with self._lock:
            items = [d for d in self._datasets.values() if kind is None or d.kind == kind]
        items.sort(key=lambda d: (d.created_at, d.dataset_id))
        return _page(items, limit, offset)

    def find_datasets(self, name: str | None = None, openml_id: int | None = None) -> list[DatasetRecord]:
        if name is None and openml_id is None:
            raise InputError("find_datasets needs a name or an openml_id")
        wanted = None if openml_id is None else schema.openml_id_arg(openml_id)
        with self._lock:
            items = [
                d
                for d in self._datasets.values()
                if (name is None or d.name == name) and (openml_id is None or d.openml_id == wanted)
            ]
        return sorted(items, key=lambda d: (d.created_at, d.dataset_id))

    # -- meta-features ---------------------------------------------------------------------------
    def _need_refs(self, table: str, records: Sequence[Any]) -> None:
        """Raise unless every record a field of ``records`` names (``schema.REFS``) is stored."""
        stores: dict[str, dict[str, Any]] = {"datasets": self._datasets, "configurations": self._configurations}
        key = schema.KEYS[table][0]
        for column, ref in schema.REFS[table]:
            bad = [r for r in records if (k := getattr(r, column)) is not None and k not in stores[ref]]
            if bad:
                what = schema.batch_what(table, len(bad), min(getattr(r, key) for r in bad))
                raise schema.missing_refs_error(what, ref, list({getattr(r, column) for r in bad}))

    def put_metafeatures(self, record: MetaFeatureRecord) -> None:
        rec = schema.normalise("metafeatures", record)
        with self._lock:
            self._need_refs("metafeatures", [rec])
            self._set(self._metafeatures, (rec.dataset_id, rec.version), rec)

    def get_metafeatures(self, dataset_id: str, version: str) -> MetaFeatureRecord:
        with self._lock:
            rec = self._metafeatures.get((dataset_id, version))
        if rec is None:
            raise NotFoundError(
                f"no meta-features of dataset {dataset_id} for extractor version {version!r}: extract them first"
            )
        return rec

    def metafeature_frame(self, version: str, kind: str | None = None) -> pd.DataFrame:
        with self._lock:
            recs = [
                r
                for (_, v), r in self._metafeatures.items()
                if v == version and (kind is None or self._datasets[r.dataset_id].kind == kind)
            ]
        long = pa.table(
            {
                "dataset_id": pa.array([r.dataset_id for r in recs for _ in r.values], pa.string()),
                "name": pa.array([k for r in recs for k in r.values], pa.string()),
                "value": pa.array([x for r in recs for x in r.values.values()], pa.float64()),
            }
        )
        return schema.metafeature_frame_from_long(long)

    # -- configurations --------------------------------------------------------------------------
    def put_configuration(self, record: ConfigurationRecord) -> bool:
        rec = schema.normalise("configurations", record)
        with self._lock:
            if rec.config_id in self._configurations:
                return False
            self._set(self._configurations, rec.config_id, rec)
            return True

    def get_configuration(self, config_id: str) -> ConfigurationRecord:
        with self._lock:
            rec = self._configurations.get(config_id)
        if rec is None:
            raise NotFoundError(f"configuration {config_id} is not in the knowledge base")
        return rec

    def get_configurations(self, config_ids: Iterable[str]) -> dict[str, ConfigurationRecord]:
        with self._lock:
            return {c: self._configurations[c] for c in config_ids if c in self._configurations}

    # -- runs ------------------------------------------------------------------------------------
    def _insert_runs(self, records: Sequence[RunRecord], replace_failed: bool = False) -> int:
        self._need_refs("runs", records)
        new = 0
        for r in records:
            stored = self._runs.get(r.run_id)
            if stored is None or (replace_failed and stored.status != "ok"):
                self._set(self._runs, r.run_id, r)
                new += 1
        return new

    def add_runs(self, records: Sequence[RunRecord], *, replace_failed: bool = False) -> int:
        recs = schema.dedupe("runs", [schema.normalise("runs", r) for r in records])
        with self._lock:
            return self._insert_runs(recs, replace_failed)

    def get_run(self, run_id: str) -> RunRecord:
        with self._lock:
            rec = self._runs.get(run_id)
        if rec is None:
            raise NotFoundError(f"run {run_id} is not in the knowledge base")
        return rec

    def list_runs(
        self,
        dataset_id: str | None = None,
        config_id: str | None = None,
        search_id: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[RunRecord]:
        with self._lock:
            items = [
                r
                for r in self._runs.values()
                if (dataset_id is None or r.dataset_id == dataset_id)
                and (config_id is None or r.config_id == config_id)
                and (search_id is None or r.search_id == search_id)
                and (status is None or r.status == status)
            ]
        items.sort(key=lambda r: (r.created_at, r.run_id))
        return _page(items, limit, offset)

    def runs_frame(
        self, kind: str | None = None, space: str | None = None, ok_only: bool = True, metric: str | None = None
    ) -> pd.DataFrame:
        with self._lock:
            runs = [
                r
                for r in self._runs.values()
                if (kind is None or self._datasets[r.dataset_id].kind == kind)
                and (space is None or self._configurations[r.config_id].space == space)
                and (not ok_only or r.ok)
            ]
            configs = [self._configurations[r.config_id] for r in runs]
        order = sorted(range(len(runs)), key=lambda i: (runs[i].created_at, runs[i].run_id))
        runs = [runs[i] for i in order]
        configs = [configs[i] for i in order]
        arrays = [
            pa.array([getattr(x, name) for x in (runs if table == "runs" else configs)], type=f.type)
            for (table, name), f in zip(schema.RUNS_FRAME_SOURCES, schema.RUNS_FRAME_SCHEMA, strict=True)
        ]
        tbl = pa.Table.from_arrays(arrays, schema=schema.RUNS_FRAME_SCHEMA)
        if metric is None:
            return schema.runs_frame_from_arrow(tbl)
        values = np.array([r.metrics.get(metric, np.nan) for r in runs], dtype=float)
        return schema.rescored(schema.runs_frame_from_arrow(tbl), values, metric)

    # -- searches --------------------------------------------------------------------------------
    def put_search(self, record: SearchRecord) -> None:
        rec = schema.normalise("searches", record)
        with self._lock:
            self._need_refs("searches", [rec])
            self._set(self._searches, rec.search_id, rec)

    def get_search(self, search_id: str) -> SearchRecord:
        with self._lock:
            rec = self._searches.get(search_id)
        if rec is None:
            raise NotFoundError(
                f"search {search_id} is not in the knowledge base: list searches to find its id"
            )
        return rec

    def list_searches(
        self, dataset_id: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[SearchRecord]:
        with self._lock:
            items = [s for s in self._searches.values() if dataset_id is None or s.dataset_id == dataset_id]
        items.sort(key=lambda s: (s.created_at, s.search_id))
        return _page(items, limit, offset)

    # -- whole tables ----------------------------------------------------------------------------
    def _table(self, table: str) -> dict[Any, Any]:
        schema.check_table(table)
        stores: dict[str, dict[Any, Any]] = {
            "datasets": self._datasets,
            "metafeatures": self._metafeatures,
            "configurations": self._configurations,
            "runs": self._runs,
            "searches": self._searches,
        }
        return stores[table]

    def dump_table(self, table: str) -> pd.DataFrame:
        store = self._table(table)
        with self._lock:
            records = list(store.values())
        records.sort(key=lambda r: (r.created_at, *schema.record_key(table, r)))
        return schema.arrow_to_frame(schema.records_to_arrow(table, records))

    def load_table(self, table: str, frame: pd.DataFrame) -> int:
        store = self._table(table)
        records = schema.dedupe(table, schema.frame_to_records(table, frame))
        with self._lock:
            if table == "runs":
                return self._insert_runs(records)
            self._need_refs(table, records)
            new = 0
            for r in records:
                k: Any = schema.record_key(table, r)
                k = k if len(k) > 1 else k[0]  # the stores key by the id alone where there is one
                if k not in store:
                    self._set(store, k, r)
                    new += 1
            return new

    def stats(self) -> dict[str, object]:
        with self._lock:
            by_kind: dict[str, int] = {}
            for d in self._datasets.values():
                by_kind[d.kind] = by_kind.get(d.kind, 0) + 1
            by_status: dict[str, int] = {}
            for s in self._searches.values():
                by_status[s.status] = by_status.get(s.status, 0) + 1
            n_ok = sum(1 for r in self._runs.values() if r.ok)
            by_space: dict[str, int] = {}
            for c in self._configurations.values():
                by_space[c.space] = by_space.get(c.space, 0) + 1
            by_source: dict[str, int] = {}
            for r in self._runs.values():
                by_source[r.source] = by_source.get(r.source, 0) + 1
            return {
                "schema_version": self.schema_version,
                "datasets": len(self._datasets),
                "datasets_by_kind": dict(sorted(by_kind.items())),
                "metafeature_vectors": len(self._metafeatures),
                "configurations": len(self._configurations),
                "configurations_by_space": dict(sorted(by_space.items())),
                "runs": len(self._runs),
                "runs_ok": n_ok,
                "runs_failed": len(self._runs) - n_ok,
                "runs_by_source": dict(sorted(by_source.items())),
                "searches": len(self._searches),
                "searches_by_status": dict(sorted(by_status.items())),
            }
