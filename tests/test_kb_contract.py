"""The KnowledgeBase contract (kb/base.py docstring), checked on every backend.

Every test taking the ``kb`` fixture runs on the DuckDB store (a file under tmp_path) and on the in-memory
store. DuckDB-only behaviour (reopening a file, read-only mode, MVCC isolation, crash safety under SIGKILL)
follows at the end.
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from metalearn.data.errors import FileFormatError, InputError, KnowledgeBaseError, NotFoundError
from metalearn.kb import (
    RUNS_FRAME_COLUMNS,
    TABLES,
    ConfigurationRecord,
    DatasetRecord,
    DuckDBKnowledgeBase,
    InMemoryKnowledgeBase,
    KnowledgeBase,
    MetaFeatureRecord,
    RunRecord,
    SearchRecord,
    records_equal,
    run_id_for,
)

REPO = Path(__file__).resolve().parents[1]
T0 = datetime(2024, 5, 17, 12, 30, 45, 123456)

# ----------------------------------------------------------------------------------------------------------
# factories
# ----------------------------------------------------------------------------------------------------------


def dataset(i: int, kind: str = "binary", **kw: object) -> DatasetRecord:
    multi = kind in ("multilabel", "multitarget")
    targets = ("a", "b") if multi else ("y",)
    tkind = {"multilabel": "binary", "multitarget": "regression"}.get(kind, kind)
    fields: dict[str, object] = dict(
        dataset_id=f"ds{i:04d}",
        name=f"dataset-{i}",
        kind=kind,
        n_rows=100 + i,
        n_features=5 + i % 7,
        n_categorical=i % 3,
        n_targets=len(targets),
        targets=targets,
        target_kinds=(tkind,) * len(targets),
        origin=f"test:{i}",
        openml_id=1000 + i if i % 2 else None,
        created_at=T0 + timedelta(seconds=i),
    )
    fields.update(kw)
    return DatasetRecord(**fields)  # type: ignore[arg-type]


def config(i: int, space: str = "sklearn-classifier", **kw: object) -> ConfigurationRecord:
    c = ConfigurationRecord.create(space, "1", {"model": "rf", "n_estimators": 10 + i, "lr": 0.1 * (i + 1)})
    fields: dict[str, object] = dict(
        config_id=c.config_id, space=c.space, space_version=c.space_version, values=c.values, created_at=T0
    )
    fields.update(kw)
    return ConfigurationRecord(**fields)  # type: ignore[arg-type]


def run(d: DatasetRecord, c: ConfigurationRecord, protocol: str = "cv5-s0", **kw: object) -> RunRecord:
    score = kw.pop("score", 0.75)
    fields: dict[str, object] = dict(
        run_id=run_id_for(d.dataset_id, c.config_id, protocol),
        dataset_id=d.dataset_id,
        config_id=c.config_id,
        protocol=protocol,
        status="ok",
        metric="roc_auc",
        score=score,
        cost=1.0 - score if isinstance(score, float) else 0.0,
        metrics={"roc_auc": score, "accuracy": 0.5},
        fit_seconds=1.25,
        predict_seconds=0.0625,
        source="test",
        created_at=T0,
    )
    fields.update(kw)
    return RunRecord(**fields)  # type: ignore[arg-type]


def seed(
    kb: KnowledgeBase, n_datasets: int = 3, n_configs: int = 4
) -> tuple[list[DatasetRecord], list[ConfigurationRecord]]:
    ds = [dataset(i, kind=("binary", "regression", "multilabel")[i % 3]) for i in range(n_datasets)]
    cs = [config(i, space=("sklearn-classifier", "sklearn-regressor")[i % 2]) for i in range(n_configs)]
    for d in ds:
        kb.put_dataset(d)
    for c in cs:
        kb.put_configuration(c)
    return ds, cs


def all_records(kb: KnowledgeBase) -> dict[str, list[object]]:
    """Every record of ``kb`` through the record API, in listing order."""
    mf = kb.dump_table("metafeatures")
    config_ids = kb.dump_table("configurations")["config_id"].tolist()
    configs = kb.get_configurations(config_ids)
    return {
        "datasets": list(kb.list_datasets()),
        "metafeatures": [
            kb.get_metafeatures(a, b) for a, b in zip(mf["dataset_id"], mf["version"], strict=True)
        ],
        "configurations": [configs[c] for c in config_ids],
        "runs": list(kb.list_runs()),
        "searches": list(kb.list_searches()),
    }


def bits(x: float) -> bytes:
    return struct.pack("<d", x)


# ----------------------------------------------------------------------------------------------------------
# fixtures
# ----------------------------------------------------------------------------------------------------------

BACKENDS = ["duckdb", "memory"]


def make_kb(backend: str, path: Path) -> KnowledgeBase:
    if backend == "duckdb":
        return DuckDBKnowledgeBase(path / "kb.duckdb")
    return InMemoryKnowledgeBase()


@pytest.fixture(params=BACKENDS)
def kb(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KnowledgeBase]:
    store = make_kb(request.param, tmp_path)
    yield store
    store.close()


@pytest.fixture()
def duck(tmp_path: Path) -> Iterator[DuckDBKnowledgeBase]:
    store = DuckDBKnowledgeBase(tmp_path / "kb.duckdb")
    yield store
    store.close()


# ----------------------------------------------------------------------------------------------------------
# 1. identity is content: idempotent puts
# ----------------------------------------------------------------------------------------------------------


def test_put_dataset_is_idempotent_and_keeps_the_first(kb: KnowledgeBase) -> None:
    d = dataset(1)
    assert kb.put_dataset(d) is True
    assert kb.put_dataset(d) is False
    assert kb.put_dataset(dataset(1, name="renamed", n_rows=5)) is False
    assert kb.get_dataset(d.dataset_id) == d
    assert kb.stats()["datasets"] == 1


def test_put_configuration_is_idempotent(kb: KnowledgeBase) -> None:
    c = config(1)
    assert kb.put_configuration(c) is True
    assert kb.put_configuration(ConfigurationRecord.create(c.space, c.space_version, dict(c.values))) is False
    assert kb.get_configuration(c.config_id) == c
    other = config(2)
    kb.put_configuration(other)
    got = kb.get_configurations([c.config_id, "nope", other.config_id, c.config_id])
    assert set(got) == {c.config_id, other.config_id}
    assert got[other.config_id] == other
    assert kb.get_configurations([]) == {}


def test_add_runs_counts_new_runs_and_skips_existing(kb: KnowledgeBase) -> None:
    ds, cs = seed(kb)
    first = [run(ds[0], c) for c in cs]
    assert kb.add_runs(first) == 4
    assert kb.add_runs(first) == 0
    more = first[:2] + [run(ds[1], c) for c in cs]
    assert kb.add_runs(more + more) == 4  # duplicates inside a batch count once
    assert kb.add_run(run(ds[2], cs[0])) is True
    assert kb.add_run(run(ds[2], cs[0], score=0.1)) is False  # same id: the stored run is kept
    assert kb.get_run(run_id_for(ds[2].dataset_id, cs[0].config_id, "cv5-s0")).score == 0.75
    assert kb.stats()["runs"] == 9
    assert kb.add_run(run(ds[2], cs[1], source="import:openml")) is True
    stats = kb.stats()
    assert stats["configurations_by_space"] == {"sklearn-classifier": 2, "sklearn-regressor": 2}
    assert stats["runs_by_source"] == {"import:openml": 1, "test": 9} and stats["runs"] == 10
    assert kb.add_runs([]) == 0


def test_a_failed_run_is_replaced_on_request_a_successful_one_never(kb: KnowledgeBase) -> None:
    """A trial that timed out under a short limit and is tried again with a longer one: its new run replaces
    the failed one (else the stored timeout stayed the truth and the configuration was never evaluated)."""
    ds, cs = seed(kb)
    timeout = run(ds[0], cs[0], status="timeout", score=float("nan"), metrics={}, error="TrialTimeoutError: 0.01 s")
    kb.add_runs([timeout, run(ds[0], cs[1])])
    retried = run(ds[0], cs[0], score=0.8)
    assert kb.add_runs([retried]) == 0 and kb.get_run(timeout.run_id).status == "timeout"  # by default: kept
    assert kb.add_runs([retried, run(ds[0], cs[1], score=0.1)], replace_failed=True) == 1
    assert kb.get_run(timeout.run_id).score == 0.8 and kb.get_run(timeout.run_id).status == "ok"
    assert kb.get_run(run_id_for(ds[0].dataset_id, cs[1].config_id, "cv5-s0")).score == 0.75  # ok: kept
    assert kb.stats()["runs"] == 2


def test_metafeatures_and_searches_are_upserts(kb: KnowledgeBase) -> None:
    ds, cs = seed(kb)
    kb.put_metafeatures(MetaFeatureRecord(ds[0].dataset_id, "v1", {"a": 1.0, "b": 2.0}, 0.5, T0))
    newer = MetaFeatureRecord(ds[0].dataset_id, "v1", {"c": 3.0, "a": -1.0}, 0.25, T0 + timedelta(1))
    kb.put_metafeatures(newer)
    assert records_equal(kb.get_metafeatures(ds[0].dataset_id, "v1"), newer)
    assert list(kb.metafeature_frame("v1").columns) == ["a", "c"]  # the old "b" is gone
    other_version = MetaFeatureRecord(ds[0].dataset_id, "v2", {"z": 9.0}, 0.1, T0)
    kb.put_metafeatures(other_version)
    assert kb.get_metafeatures(ds[0].dataset_id, "v1") == newer
    assert kb.stats()["metafeature_vectors"] == 2

    s = SearchRecord(
        "s1", ds[0].dataset_id, "running", {"budget": 60, "seeds": [1, 2]}, created_at=T0, updated_at=T0
    )
    kb.put_search(s)
    done = SearchRecord(
        "s1",
        ds[0].dataset_id,
        "done",
        {"budget": 60, "seeds": [1, 2]},
        cs[0].config_id,
        0.9,
        42,
        "",
        T0,
        T0 + timedelta(1),
    )
    kb.put_search(done)
    assert kb.get_search("s1") == done
    assert kb.list_searches() == [done]
    assert kb.stats()["searches_by_status"] == {"done": 1}


# ----------------------------------------------------------------------------------------------------------
# 2. referential integrity
# ----------------------------------------------------------------------------------------------------------


def test_missing_records_raise_not_found(kb: KnowledgeBase) -> None:
    with pytest.raises(NotFoundError, match="dataset nope"):
        kb.get_dataset("nope")
    with pytest.raises(NotFoundError):
        kb.get_configuration("nope")
    with pytest.raises(NotFoundError):
        kb.get_run("nope")
    with pytest.raises(NotFoundError):
        kb.get_search("nope")
    with pytest.raises(NotFoundError):
        kb.get_metafeatures("nope", "v1")
    with pytest.raises(LookupError):  # NotFoundError is also a LookupError
        kb.get_dataset("nope")


def test_integrity_violations_write_nothing(kb: KnowledgeBase) -> None:
    ds, cs = seed(kb)
    ghost_dataset = dataset(99)
    ghost_config = config(99)
    with pytest.raises(NotFoundError, match=r"ds0099.*put_dataset"):
        kb.add_run(run(ghost_dataset, cs[0]))
    with pytest.raises(NotFoundError, match="put_configuration"):
        kb.add_run(run(ds[0], ghost_config))
    with pytest.raises(NotFoundError):
        kb.put_metafeatures(MetaFeatureRecord(ghost_dataset.dataset_id, "v1", {"a": 1.0}))
    with pytest.raises(NotFoundError, match=r"search s1 name dataset\(s\) ds0099.*put_dataset"):
        kb.put_search(SearchRecord("s1", ghost_dataset.dataset_id, "running"))
    with pytest.raises(NotFoundError, match=r"search s1 name configuration\(s\) .*put_configuration"):
        kb.put_search(SearchRecord("s1", ds[0].dataset_id, "done", incumbent_config_id=ghost_config.config_id))
    stats = kb.stats()
    assert (stats["runs"], stats["metafeature_vectors"], stats["searches"]) == (0, 0, 0)
    kb.put_search(SearchRecord("s1", ds[0].dataset_id, "done", incumbent_config_id=cs[0].config_id))
    kb.put_search(SearchRecord("s2", ds[0].dataset_id, "failed", incumbent_config_id=None))  # no incumbent
    assert [s.search_id for s in kb.list_searches()] == ["s1", "s2"]


def test_add_runs_batch_with_one_bad_record_writes_nothing(kb: KnowledgeBase) -> None:
    ds, cs = seed(kb)
    good = [run(ds[i % 3], cs[j], protocol=f"p{k}") for i in range(3) for j in range(4) for k in range(5)]
    with pytest.raises(NotFoundError):
        kb.add_runs([*good, run(dataset(77), cs[0])])
    assert kb.stats()["runs"] == 0
    bad_type = run(ds[0], cs[0], protocol="bad", score="high")
    with pytest.raises(InputError, match="score"):
        kb.add_runs([*good, bad_type])
    assert kb.list_runs() == []
    assert kb.add_runs(good) == 60


def test_bad_records_are_rejected_with_input_errors(kb: KnowledgeBase) -> None:
    with pytest.raises(InputError, match="kind"):
        kb.put_dataset(dataset(1, kind="classification"))
    with pytest.raises(InputError, match="DatasetRecord"):
        kb.put_dataset({"dataset_id": "x"})  # type: ignore[arg-type]
    with pytest.raises(InputError, match="JSON"):
        kb.put_configuration(ConfigurationRecord("c", "s", "1", {"x": math.nan}))
    with pytest.raises(InputError, match="JSON-serialisable"):
        kb.put_search(SearchRecord("s", "d", "running", {"x": object()}))
    with pytest.raises(InputError, match="limit"):
        kb.list_datasets(limit=-1)
    with pytest.raises(InputError, match="offset"):
        kb.list_runs(offset=-2)
    with pytest.raises(InputError, match="name or an openml_id"):
        kb.find_datasets()
    with pytest.raises(InputError, match="field n_rows must be at least 1, got -5"):
        kb.put_dataset(dataset(4, n_rows=-5))
    with pytest.raises(InputError, match="field n_targets must be at least 1"):
        kb.put_dataset(dataset(5, n_targets=0))
    assert kb.stats()["datasets"] == 0
    ds, cs = seed(kb)
    with pytest.raises(InputError, match="field fit_seconds must be at least 0"):
        kb.add_run(run(ds[0], cs[0], fit_seconds=-1.0))
    with pytest.raises(InputError, match="field n_trials must be at least 0"):
        kb.put_search(SearchRecord("s", ds[0].dataset_id, "running", n_trials=-3))
    kb.add_run(run(ds[0], cs[0], status="crash", score=math.nan, cost=math.nan))  # NaN is not below a minimum
    assert (kb.stats()["runs"], kb.stats()["searches"]) == (1, 0)


def test_records_are_stored_in_their_plain_form_on_every_backend(kb: KnowledgeBase) -> None:
    """Enum members and numpy numbers go in; plain str and int come out, the same from either backend."""
    import numpy as np

    from metalearn.data.task import TaskKind

    kb.put_dataset(dataset(1, kind=TaskKind.BINARY, n_rows=np.int64(40), target_kinds=(TaskKind.BINARY,)))
    got = kb.list_datasets()[0]
    assert (got.kind, got.n_rows, got.target_kinds) == ("binary", 40, ("binary",))
    assert type(got.kind) is str and type(got.n_rows) is int and type(got.target_kinds[0]) is str
    with pytest.raises(InputError, match="field dataset_id must be a non-empty string"):
        kb.put_dataset(dataset(2, dataset_id=""))
    with pytest.raises(InputError, match="field targets must be a tuple of strings"):
        kb.put_dataset(dataset(3, targets="y"))


# ----------------------------------------------------------------------------------------------------------
# 3. atomic writes and transactions
# ----------------------------------------------------------------------------------------------------------


def test_transaction_commits_all_or_nothing(kb: KnowledgeBase) -> None:
    d, c = dataset(1), config(1)
    with pytest.raises(RuntimeError, match="boom"), kb.transaction():
        kb.put_dataset(d)
        kb.put_configuration(c)
        kb.add_run(run(d, c))
        kb.put_search(SearchRecord("s", d.dataset_id, "running"))
        assert kb.get_dataset(d.dataset_id) == d  # the transaction sees its own writes
        raise RuntimeError("boom")
    stats = kb.stats()
    assert (stats["datasets"], stats["configurations"], stats["runs"], stats["searches"]) == (0, 0, 0, 0)

    with kb.transaction():
        kb.put_dataset(d)
        kb.put_configuration(c)
        kb.add_run(run(d, c))
    assert kb.stats()["runs"] == 1


def test_nested_transactions_join_the_outer_one(kb: KnowledgeBase) -> None:
    ds, cs = seed(kb)
    with pytest.raises(ValueError, match="outer"), kb.transaction():
        kb.add_run(run(ds[0], cs[0]))
        with kb.transaction():
            kb.add_run(run(ds[0], cs[1]))
        kb.put_metafeatures(MetaFeatureRecord(ds[0].dataset_id, "v1", {"a": 1.0}))
        raise ValueError("outer")
    assert kb.list_runs() == []  # the inner block was rolled back with the outer one
    with pytest.raises(NotFoundError):
        kb.get_metafeatures(ds[0].dataset_id, "v1")

    with kb.transaction():
        kb.add_run(run(ds[0], cs[0]))
        with kb.transaction():
            kb.add_run(run(ds[1], cs[0]))
    assert len(kb.list_runs()) == 2


def test_rolled_back_upserts_restore_previous_values(kb: KnowledgeBase) -> None:
    ds, _ = seed(kb)
    before = MetaFeatureRecord(ds[0].dataset_id, "v1", {"a": 1.0}, 0.0, T0)
    kb.put_metafeatures(before)
    kb.put_search(SearchRecord("s", ds[0].dataset_id, "running", created_at=T0, updated_at=T0))
    with pytest.raises(KeyError), kb.transaction():
        kb.put_metafeatures(MetaFeatureRecord(ds[0].dataset_id, "v1", {"b": 2.0}, 0.0, T0))
        kb.put_search(SearchRecord("s", ds[0].dataset_id, "failed", created_at=T0, updated_at=T0))
        raise KeyError("x")
    assert kb.get_metafeatures(ds[0].dataset_id, "v1") == before
    assert kb.get_search("s").status == "running"


# ----------------------------------------------------------------------------------------------------------
# 4. records out == records in
# ----------------------------------------------------------------------------------------------------------

AWKWARD_FLOATS = [math.nan, -0.0, 0.0, 5e-324, 1.7976931348623157e308, -math.inf, math.inf, 0.1 + 0.2, 1 / 3]


def test_exact_round_trip(kb: KnowledgeBase) -> None:
    d = dataset(
        3,
        kind="multitask",
        name="ünïcödé ✓ name",
        targets=("t1", "t 2", "t-3"),
        target_kinds=("binary", "regression", "multiclass"),
        n_targets=3,
        openml_id=2**40,
        created_at=datetime(2023, 1, 2, 3, 4, 5, 999999),
    )
    c = ConfigurationRecord.create(
        "space", "2.1", {"nested": {"b": [1, 2.5, None, True], "a": "x"}, "big": 2**60, "neg": -0.0, "s": "é"}
    )
    kb.put_dataset(d)
    kb.put_configuration(c)
    metrics = {f"m{i}": x for i, x in enumerate(AWKWARD_FLOATS)}
    r = run(
        d,
        c,
        score=math.nan,
        cost=-0.0,
        status="crash",
        metrics=metrics,
        error="Traceback (most recent call last):\n  ValueError: ✗",
        search_id="search-1",
        budget=1 / 3,
        n_rows_used=2**33,
        fit_seconds=5e-324,
        created_at=datetime(2024, 2, 29, 23, 59, 59, 1),
    )
    kb.add_run(r)
    mf = MetaFeatureRecord(
        d.dataset_id, "pymfe-0.4.4", {f"f{i}": x for i, x in enumerate(AWKWARD_FLOATS)}, 1e-9, T0
    )
    kb.put_metafeatures(mf)
    s = SearchRecord(
        "search-1", d.dataset_id, "done", {"nan": math.nan, "list": [1, "a", None], "d": {"k": 1.5}}, c.config_id,
        -0.0, 7, "", datetime(2020, 1, 1), datetime(2020, 1, 1, 0, 0, 0, 1),
    )  # fmt: skip
    kb.put_search(s)

    got_d, got_c, got_r = (
        kb.get_dataset(d.dataset_id),
        kb.get_configuration(c.config_id),
        kb.get_run(r.run_id),
    )
    got_mf, got_s = kb.get_metafeatures(d.dataset_id, mf.version), kb.get_search("search-1")
    assert got_d == d and got_c == c
    for want, got in ((r, got_r), (mf, got_mf), (s, got_s)):
        assert records_equal(got, want), (got, want)
    assert [bits(x) for x in got_r.metrics.values()][1:] == [bits(x) for x in AWKWARD_FLOATS][1:]
    assert list(got_r.metrics) == list(metrics)  # order kept
    assert list(got_mf.values) == list(mf.values)
    assert bits(got_r.cost) == bits(-0.0) and bits(got_s.incumbent_score) == bits(-0.0)  # type: ignore[arg-type]
    assert got_r.created_at == datetime(2024, 2, 29, 23, 59, 59, 1)
    assert isinstance(got_d.targets, tuple) and isinstance(got_r.created_at, datetime)
    assert type(got_r.n_rows_used) is int and got_r.budget == 1 / 3
    # optional fields left at None stay None
    plain = run(d, c, protocol="plain")
    kb.add_run(plain)
    got_plain = kb.get_run(plain.run_id)
    assert got_plain == plain and got_plain.budget is None and got_plain.search_id is None


def test_aware_timestamps_are_stored_as_naive_utc(kb: KnowledgeBase) -> None:
    aware = datetime(2024, 1, 1, 14, 0, 0, 250, tzinfo=timezone(timedelta(hours=2)))
    kb.put_dataset(dataset(1, created_at=aware))
    assert kb.get_dataset("ds0001").created_at == datetime(2024, 1, 1, 12, 0, 0, 250)
    kb.put_dataset(dataset(2, created_at=pd.Timestamp("2024-01-01 12:00:00.000250")))
    assert type(kb.get_dataset("ds0002").created_at) is datetime


def test_mutating_an_input_after_put_does_not_change_the_store(kb: KnowledgeBase) -> None:
    ds, cs = seed(kb)
    r = run(ds[0], cs[0])
    kb.add_run(r)
    r.metrics["roc_auc"] = -1.0
    assert kb.get_run(r.run_id).metrics["roc_auc"] == 0.75


def test_real_corpus_manifest_round_trips(kb: KnowledgeBase, corpus_dir: Path) -> None:
    """Every dataset description of the shared corpus survives a put/list round trip."""
    with open(corpus_dir / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    records = []
    for i, row in enumerate(rows):
        targets = tuple(json.loads(row["targets"]))
        kind = row["kind"]
        tkind = {"multilabel": "binary", "multitarget": "regression"}.get(kind, kind)
        records.append(
            DatasetRecord(
                dataset_id=f"corpus-{i:04d}",
                name=row["name"],
                kind=kind,
                n_rows=int(row["n_rows"]),
                n_features=int(row["n_features"]),
                n_categorical=int(row["n_categorical"]),
                n_targets=len(targets),
                targets=targets,
                target_kinds=(tkind,) * len(targets),
                origin=f"corpus:{row['name']}",
                openml_id=int(float(row["openml_did"])) if row["openml_did"] else None,
                created_at=T0 + timedelta(microseconds=i),
            )
        )
    with kb.transaction():
        for r in records:
            kb.put_dataset(r)
    assert kb.list_datasets() == records
    by_kind = pd.Series([r["kind"] for r in rows]).value_counts().to_dict()
    assert kb.stats()["datasets_by_kind"] == dict(sorted(by_kind.items()))
    assert kb.list_datasets(kind="multilabel") == [r for r in records if r.kind == "multilabel"]
    emotions = [r for r in records if r.name == "emotions"]
    assert kb.find_datasets(name="emotions") == emotions
    with_openml = next(r for r in records if r.openml_id is not None)
    assert with_openml in kb.find_datasets(openml_id=with_openml.openml_id)


# ----------------------------------------------------------------------------------------------------------
# 7. ordered, paginated listing
# ----------------------------------------------------------------------------------------------------------


def test_listing_is_ordered_by_creation_time_then_id(kb: KnowledgeBase) -> None:
    # created_at deliberately not in insertion order, with ties broken by id
    offsets = [5, 1, 3, 1, 0, 4, 1, 2]
    ds = [dataset(i, created_at=T0 + timedelta(seconds=o)) for i, o in enumerate(offsets)]
    for d in reversed(ds):
        kb.put_dataset(d)
    expected = sorted(ds, key=lambda d: (d.created_at, d.dataset_id))
    assert kb.list_datasets() == expected
    pages = [kb.list_datasets(limit=3, offset=o) for o in (0, 3, 6, 9)]
    assert [len(p) for p in pages] == [3, 3, 2, 0]
    assert [d for page in pages for d in page] == expected
    assert kb.list_datasets(offset=6) == expected[6:]
    assert kb.list_datasets(limit=0) == []
    assert kb.list_datasets(kind="binary", limit=2) == [d for d in expected if d.kind == "binary"][:2]

    c = config(0)
    kb.put_configuration(c)
    runs = [
        run(ds[i % 8], c, protocol=f"p{i}", created_at=T0 + timedelta(microseconds=o))
        for i, o in enumerate([3, 1, 2, 1, 0, 3] * 3)
    ]
    kb.add_runs(runs)
    expected_runs = sorted(runs, key=lambda r: (r.created_at, r.run_id))
    assert kb.list_runs() == expected_runs
    assert [r for o in range(0, 20, 4) for r in kb.list_runs(limit=4, offset=o)] == expected_runs
    assert kb.list_runs(dataset_id=ds[1].dataset_id) == [
        r for r in expected_runs if r.dataset_id == ds[1].dataset_id
    ]

    searches = [
        SearchRecord(f"s{i}", ds[0].dataset_id, "pending", created_at=T0 - timedelta(hours=i))
        for i in range(5)
    ]
    for s in searches:
        kb.put_search(s)
    assert kb.list_searches() == searches[::-1]
    assert kb.list_searches(limit=2, offset=1) == searches[::-1][1:3]
    assert kb.list_searches(dataset_id="other") == []


def test_list_runs_filters(kb: KnowledgeBase) -> None:
    ds, cs = seed(kb)
    a = run(ds[0], cs[0], search_id="s1")
    b = run(ds[0], cs[1], status="timeout", score=math.nan, error="timed out")
    c = run(ds[1], cs[0], search_id="s1")
    kb.add_runs([a, b, c])
    assert {r.run_id for r in kb.list_runs(dataset_id=ds[0].dataset_id)} == {a.run_id, b.run_id}
    assert {r.run_id for r in kb.list_runs(config_id=cs[0].config_id)} == {a.run_id, c.run_id}
    assert {r.run_id for r in kb.list_runs(search_id="s1")} == {a.run_id, c.run_id}
    assert [r.run_id for r in kb.list_runs(status="timeout")] == [b.run_id]
    assert kb.list_runs(dataset_id=ds[1].dataset_id, config_id=cs[1].config_id) == []


# ----------------------------------------------------------------------------------------------------------
# 8. frames for algorithms, stats
# ----------------------------------------------------------------------------------------------------------


def test_runs_frame(kb: KnowledgeBase) -> None:
    empty = kb.runs_frame()
    assert list(empty.columns) == list(RUNS_FRAME_COLUMNS) and len(empty) == 0
    ds, cs = seed(kb)  # ds kinds: binary, regression, multilabel; cs spaces alternate classifier/regressor
    runs = [
        run(d, c, created_at=T0 + timedelta(seconds=i * 4 + j))
        for i, d in enumerate(ds)
        for j, c in enumerate(cs)
    ]
    runs.append(run(ds[0], cs[0], protocol="crashed", status="crash", score=math.nan, error="x"))
    runs.append(run(ds[0], cs[1], protocol="nan-ok", status="ok", score=math.nan))
    runs.append(run(ds[1], cs[1], protocol="budget", budget=0.25, score=0.5))
    kb.add_runs(runs)

    frame = kb.runs_frame()
    assert list(frame.columns) == list(RUNS_FRAME_COLUMNS)
    assert len(frame) == 13  # the crash and the NaN-scored ok run are excluded
    assert frame["score"].notna().all() and (frame["status"] == "ok").all()
    assert frame["score"].dtype == "float64" and frame["budget"].dtype == "float64"
    assert pd.api.types.is_string_dtype(frame["run_id"])
    ordered = sorted((r for r in runs if r.ok), key=lambda r: (r.created_at, r.run_id))
    assert frame["run_id"].tolist() == [r.run_id for r in ordered]
    row = frame.set_index("run_id").loc[runs[-1].run_id]
    assert row["budget"] == 0.25 and row["space"] == "sklearn-regressor" and row["space_version"] == "1"
    assert frame["budget"].isna().sum() == 12

    assert len(kb.runs_frame(ok_only=False)) == 15
    binary = kb.runs_frame(kind="binary")
    assert set(binary["dataset_id"]) == {ds[0].dataset_id} and len(binary) == 4
    reg_space = kb.runs_frame(space="sklearn-regressor")
    assert set(reg_space["config_id"]) == {cs[1].config_id, cs[3].config_id}
    both = kb.runs_frame(kind="regression", space="sklearn-regressor", ok_only=False)
    assert len(both) == 3
    assert len(kb.runs_frame(kind="multitask")) == 0

    kb.add_run(run(ds[2], cs[0], protocol="late", created_at=T0 + timedelta(days=1)))
    assert kb.runs_frame()["run_id"].iloc[-1] == run_id_for(ds[2].dataset_id, cs[0].config_id, "late")


def test_runs_frame_scored_by_another_metric(kb: KnowledgeBase) -> None:
    ds, cs = seed(kb)
    runs = [
        run(ds[0], cs[0], score=0.9, metrics={"roc_auc": 0.9, "log_loss": 0.3}),
        run(ds[0], cs[1], score=0.8, metrics={"roc_auc": 0.8, "log_loss": 0.5}),
        run(ds[0], cs[2], score=0.7, metrics={"roc_auc": 0.7}),  # did not record log loss
        run(ds[0], cs[3], protocol="crashed", status="timeout", score=math.nan, metrics={}, error="x"),
    ]
    kb.add_runs(runs)
    by_loss = kb.runs_frame(kind="binary", ok_only=False, metric="log_loss").set_index("config_id")
    assert list(by_loss.columns) == [c for c in RUNS_FRAME_COLUMNS if c != "config_id"]
    assert set(by_loss.index) == {cs[0].config_id, cs[1].config_id, cs[3].config_id}  # the one without it dropped
    assert (by_loss["metric"] == "log_loss").all()
    assert by_loss.loc[cs[1].config_id, "score"] == 0.5 and by_loss.loc[cs[1].config_id, "cost"] == 0.5
    assert by_loss.loc[cs[3].config_id, "status"] == "timeout" and math.isnan(by_loss.loc[cs[3].config_id, "cost"])
    # a greater-is-better metric's cost is its negation
    by_acc = kb.runs_frame(kind="binary", metric="accuracy")
    assert len(by_acc) == 0  # these runs recorded no accuracy
    by_auc = kb.runs_frame(kind="binary", metric="roc_auc").set_index("config_id")
    assert by_auc.loc[cs[0].config_id, "cost"] == -0.9 and len(by_auc) == 3
    assert kb.runs_frame(kind="binary", metric=None)["metric"].eq("roc_auc").all()  # the stored scores


def test_metafeature_frame(kb: KnowledgeBase) -> None:
    empty = kb.metafeature_frame("v1")
    assert empty.shape == (0, 0) and empty.index.name == "dataset_id"
    ds, _ = seed(kb, n_datasets=4)  # kinds: binary, regression, multilabel, binary
    kb.put_metafeatures(MetaFeatureRecord(ds[2].dataset_id, "v1", {"zeta": 1.0, "alpha": math.nan}))
    kb.put_metafeatures(MetaFeatureRecord(ds[0].dataset_id, "v1", {"alpha": 2.0, "mid": -0.5}))
    kb.put_metafeatures(MetaFeatureRecord(ds[3].dataset_id, "v1", {"alpha": 3.0}))
    kb.put_metafeatures(MetaFeatureRecord(ds[1].dataset_id, "v2", {"other": 1.0}))
    frame = kb.metafeature_frame("v1")
    assert frame.index.name == "dataset_id"
    assert frame.index.tolist() == sorted([ds[0].dataset_id, ds[2].dataset_id, ds[3].dataset_id])
    assert frame.columns.tolist() == ["alpha", "mid", "zeta"]
    assert (frame.dtypes == "float64").all()
    assert frame.loc[ds[0].dataset_id, "mid"] == -0.5
    assert math.isnan(frame.loc[ds[2].dataset_id, "alpha"]) and math.isnan(frame.loc[ds[3].dataset_id, "mid"])
    binary = kb.metafeature_frame("v1", kind="binary")
    assert binary.index.tolist() == sorted([ds[0].dataset_id, ds[3].dataset_id])
    assert kb.metafeature_frame("v2").columns.tolist() == ["other"]
    assert kb.metafeature_frame("v1", kind="multitask").empty


def test_stats(kb: KnowledgeBase) -> None:
    ds, cs = seed(kb)
    kb.add_runs([run(ds[0], cs[0]), run(ds[1], cs[1], status="memout", score=math.nan, error="oom")])
    kb.put_metafeatures(MetaFeatureRecord(ds[0].dataset_id, "v1", {"a": 1.0}))
    kb.put_search(SearchRecord("s", ds[0].dataset_id, "running"))
    assert kb.stats() == {
        "schema_version": kb.schema_version,
        "datasets": 3,
        "datasets_by_kind": {"binary": 1, "multilabel": 1, "regression": 1},
        "metafeature_vectors": 1,
        "configurations": 4,
        "configurations_by_space": {"sklearn-classifier": 2, "sklearn-regressor": 2},
        "runs": 2,
        "runs_ok": 1,
        "runs_failed": 1,
        "runs_by_source": {"test": 2},
        "searches": 1,
        "searches_by_status": {"running": 1},
    }


# ----------------------------------------------------------------------------------------------------------
# dump_table / load_table
# ----------------------------------------------------------------------------------------------------------


def _populate(kb: KnowledgeBase) -> None:
    ds, cs = seed(kb, n_datasets=6, n_configs=5)
    kb.add_runs(
        [
            run(d, c, score=0.1 * (i + j), created_at=T0 + timedelta(seconds=i + j))
            for i, d in enumerate(ds)
            for j, c in enumerate(cs)
        ]
        + [
            run(
                ds[0],
                cs[0],
                protocol="bad",
                status="crash",
                score=math.nan,
                metrics={"a": -0.0, "b": math.nan},
            )
        ]
    )
    for d in ds[:4]:
        kb.put_metafeatures(MetaFeatureRecord(d.dataset_id, "v1", {"x": 1.0, "y": math.nan}, 0.5, T0))
    kb.put_search(
        SearchRecord("s", ds[0].dataset_id, "done", {"k": [1, 2]}, cs[0].config_id, 0.9, 3, "", T0, T0)
    )


@pytest.mark.parametrize("target", BACKENDS)
def test_dump_and_load_table_round_trip_between_backends(
    kb: KnowledgeBase, target: str, tmp_path: Path
) -> None:
    _populate(kb)
    other = make_kb(target, tmp_path / "other")
    try:
        with other.transaction():
            counts = {t: other.load_table(t, kb.dump_table(t)) for t in TABLES}
        assert counts == {"datasets": 6, "metafeatures": 4, "configurations": 5, "runs": 31, "searches": 1}
        assert {t: other.load_table(t, kb.dump_table(t)) for t in TABLES} == dict.fromkeys(TABLES, 0)
        assert records_equal(all_records(other), all_records(kb))
        for t in TABLES:
            pd.testing.assert_frame_equal(other.dump_table(t), kb.dump_table(t))
        pd.testing.assert_frame_equal(other.runs_frame(ok_only=False), kb.runs_frame(ok_only=False))
        pd.testing.assert_frame_equal(other.metafeature_frame("v1"), kb.metafeature_frame("v1"))
    finally:
        other.close()


def test_load_table_validates_and_writes_nothing_on_error(kb: KnowledgeBase) -> None:
    source = InMemoryKnowledgeBase()
    _populate(source)
    runs = source.dump_table("runs")
    with pytest.raises(NotFoundError):  # runs before their datasets and configurations
        kb.load_table("runs", runs)
    assert kb.stats()["runs"] == 0
    with pytest.raises(FileFormatError, match="lacks column"):
        kb.load_table("datasets", source.dump_table("datasets").drop(columns=["kind"]))
    with pytest.raises(InputError, match="unknown KB table"):
        kb.load_table("nope", runs)
    with pytest.raises(InputError, match="unknown KB table"):
        kb.dump_table("nope")
    broken = source.dump_table("searches").astype({"status": "object"})
    broken.loc[0, "status"] = "exploded"
    with pytest.raises(FileFormatError, match="status"):
        kb.load_table("searches", broken)
    # a plain-numpy frame (not Arrow-backed) loads as well
    datasets = source.dump_table("datasets")
    plain = pd.DataFrame({c: datasets[c].tolist() for c in datasets.columns})
    assert kb.load_table("datasets", plain) == 6
    assert kb.list_datasets() == source.list_datasets()


# ----------------------------------------------------------------------------------------------------------
# 5. threads
# ----------------------------------------------------------------------------------------------------------


def test_concurrent_readers_and_a_writer(kb: KnowledgeBase) -> None:
    ds, cs = seed(kb, n_datasets=10, n_configs=10)
    kb.put_metafeatures(MetaFeatureRecord(ds[0].dataset_id, "v1", {"a": 1.0}))
    n_batches, batch = 20, 200
    errors: list[BaseException] = []
    done = threading.Event()

    def writer() -> None:
        try:
            for b in range(n_batches):
                kb.add_runs([run(ds[i % 10], cs[(i // 10) % 10], protocol=f"b{b}-{i}") for i in range(batch)])
                kb.put_search(SearchRecord("s", ds[0].dataset_id, "running", n_trials=(b + 1) * batch))
                with kb.transaction():
                    kb.put_metafeatures(
                        MetaFeatureRecord(ds[b % 10].dataset_id, "v1", {"a": float(b), "b": 1.0})
                    )
                    kb.put_dataset(dataset(100 + b))
        except BaseException as err:
            errors.append(err)
        finally:
            done.set()

    def reader(k: int) -> None:
        seen = 0
        try:
            while not done.is_set():
                n = int(kb.stats()["runs"])  # type: ignore[call-overload]
                assert n >= seen and n % batch == 0
                seen = n
                frame = kb.runs_frame(ok_only=False)
                assert len(frame) >= n and len(frame) % batch == 0
                page = kb.list_runs(limit=50, offset=k)
                if page:
                    assert kb.get_run(page[0].run_id) == page[0]
                kb.metafeature_frame("v1")
                kb.list_datasets(limit=5)
                if kb.list_searches():
                    assert kb.get_search("s").n_trials % batch == 0
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=writer)] + [
        threading.Thread(target=reader, args=(k,)) for k in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert kb.stats()["runs"] == n_batches * batch
    assert kb.stats()["datasets"] == 10 + n_batches


# ----------------------------------------------------------------------------------------------------------
# DuckDB-specific: persistence, read-only, isolation, closing, crash safety
# ----------------------------------------------------------------------------------------------------------


def test_reopened_duckdb_file_has_everything(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "kb.duckdb"
    with DuckDBKnowledgeBase(path) as first:
        _populate(first)
        before = all_records(first)
        frames = {t: first.dump_table(t) for t in TABLES}
    assert path.is_file()
    with DuckDBKnowledgeBase(path) as again:
        assert records_equal(all_records(again), before)
        for t in TABLES:
            pd.testing.assert_frame_equal(again.dump_table(t), frames[t])
    with DuckDBKnowledgeBase(path, read_only=True) as ro:
        assert records_equal(all_records(ro), before)
        with pytest.raises(KnowledgeBaseError, match="read-only"):
            ro.put_dataset(dataset(500))
        with pytest.raises(KnowledgeBaseError, match="read-only"):
            ro.add_runs([])
        with ro.transaction():  # read transactions are fine
            assert ro.stats()["datasets"] == 6


def test_closed_store_raises_a_clear_error(tmp_path: Path) -> None:
    store = DuckDBKnowledgeBase(tmp_path / "kb.duckdb")
    store.close()
    store.close()  # idempotent
    with pytest.raises(KnowledgeBaseError, match="closed"):
        store.list_datasets()
    with pytest.raises(KnowledgeBaseError, match="closed"):
        store.put_dataset(dataset(1))


def test_readers_do_not_see_or_wait_for_an_open_transaction(duck: DuckDBKnowledgeBase) -> None:
    ds, cs = seed(duck)
    inside, release = threading.Event(), threading.Event()
    seen: list[int] = []

    def writer() -> None:
        with duck.transaction():
            duck.add_runs([run(ds[0], c) for c in cs])
            inside.set()
            release.wait(30)

    t = threading.Thread(target=writer)
    t.start()
    assert inside.wait(30)
    started = time.perf_counter()
    seen.append(int(duck.stats()["runs"]))  # type: ignore[call-overload]
    seen.append(len(duck.runs_frame()))
    elapsed = time.perf_counter() - started
    release.set()
    t.join(30)
    assert seen == [0, 0] and elapsed < 5
    assert duck.stats()["runs"] == 4


def test_each_thread_gets_its_own_cursor_and_dead_threads_release_theirs(duck: DuckDBKnowledgeBase) -> None:
    duck.stats()

    def work() -> None:
        duck.stats()

    for _ in range(10):
        t = threading.Thread(target=work)
        t.start()
        t.join()
    duck.stats()
    assert len(duck._cursors) <= 3  # the main thread + at most the last worker(s) not yet pruned


_CHILD = r"""
import sys
from datetime import datetime, timedelta
from metalearn.kb import DuckDBKnowledgeBase, DatasetRecord, ConfigurationRecord, RunRecord

path, first, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
kb = DuckDBKnowledgeBase(path)
kb.put_dataset(DatasetRecord("d", "d", "binary", 10, 2))
kb.put_configuration(ConfigurationRecord("c", "s", "1", {}))
t0 = datetime(2024, 1, 1)
for b in range(first, first + 1000):
    runs = [RunRecord(f"b{b:04d}-{i:06d}", "d", "c", f"p{i}", "ok", "m", i / batch, 0.5, {"m": i / batch, "x": -0.0},
                      created_at=t0 + timedelta(microseconds=i)) for i in range(batch)]
    print(f"start {b}", flush=True)
    kb.add_runs(runs)
    print(f"done {b}", flush=True)
"""


def _kill_mid_batch(path: Path, first: int, batch: int, fraction: float) -> tuple[int, int]:
    """Run the child until a batch is under way, SIGKILL it part-way; returns (last done, last started)."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path), str(first), str(batch)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    last_done, last_start, t_start, duration = first - 1, first - 1, 0.0, 0.0
    try:
        for line in proc.stdout:
            word, num = line.split()
            if word == "start":
                last_start, t_start = int(num), time.perf_counter()
                if last_start >= first + 2:
                    time.sleep(duration * fraction)
                    os.kill(proc.pid, signal.SIGKILL)
                    break
            else:
                last_done, duration = int(num), time.perf_counter() - t_start
    finally:
        proc.kill()
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    return last_done, last_start


def test_sigkill_during_add_runs_leaves_all_or_nothing(tmp_path: Path) -> None:
    path = tmp_path / "crash.duckdb"
    batch = 30_000
    first = 0
    for fraction in (0.5, 0.9):
        last_done, last_start = _kill_mid_batch(path, first, batch, fraction)
        with DuckDBKnowledgeBase(path) as kb:
            frame = kb.runs_frame(ok_only=False)
            counts = frame["run_id"].str.slice(0, 5).value_counts()
            assert (counts == batch).all(), counts  # no batch is partially stored
            stored = sorted(int(k[1:]) for k in counts.index)
            assert stored == list(range(stored[0], stored[-1] + 1))
            assert last_done <= stored[-1] <= last_start
            assert int(kb.stats()["runs"]) == len(stored) * batch  # type: ignore[call-overload]
            sample = kb.get_run(f"b{stored[-1]:04d}-{batch - 1:06d}")
            assert sample.score == (batch - 1) / batch and bits(sample.metrics["x"]) == bits(-0.0)
            first = stored[-1] + 1
    # the file is still writable by a new process after the crashes
    with DuckDBKnowledgeBase(path) as kb:
        assert kb.add_run(RunRecord("after", "d", "c", "p", "ok", "m", 1.0, 0.0)) is True


def test_utc_now_default_timestamps_round_trip(kb: KnowledgeBase) -> None:
    d = DatasetRecord("now", "now", "regression", 1, 1)
    kb.put_dataset(d)
    got = kb.get_dataset("now")
    assert got == d and got.created_at.tzinfo is None
    assert abs(got.created_at - datetime.now(UTC).replace(tzinfo=None)) < timedelta(minutes=5)


# ----------------------------------------------------------------------------------------------------------
# searches whose process is gone (killed with kill -9) are marked interrupted
# ----------------------------------------------------------------------------------------------------------


def _dead_process() -> tuple[int, int]:
    """The PID and start time (ms) of a process that has exited."""
    import psutil

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        started = round(psutil.Process(proc.pid).create_time() * 1000)
    finally:
        proc.kill()
        proc.wait(30)
    return proc.pid, started


def test_searches_whose_process_is_gone_are_marked_interrupted_with_their_runs(kb: KnowledgeBase) -> None:
    from metalearn.kb.owners import current_owner, interrupt_orphaned_searches

    ds, cs = seed(kb, n_datasets=1, n_configs=4)
    me = current_owner()
    dead_pid, dead_started = _dead_process()
    owners: dict[str, dict[str, object]] = {
        "dead": {**me, "owner_pid": dead_pid, "owner_started": dead_started},
        "reused": {**me, "owner_started": int(me["owner_started"]) - 3_600_000},  # this PID, an hour earlier
        "dead-pending": {**me, "owner_pid": dead_pid, "owner_started": dead_started},
        "alive": me,
        "elsewhere": {**me, "owner_host": "another-host", "owner_pid": dead_pid},
        "unknown": {},
    }
    for name, owner in owners.items():
        status = "pending" if name == "dead-pending" else "running"
        kb.put_search(SearchRecord(name, ds[0].dataset_id, status, created_at=T0, updated_at=T0, **owner))  # type: ignore[arg-type]
    kb.add_runs([run(ds[0], c, search_id="dead") for c in cs[:3]] + [run(ds[0], cs[3], search_id="alive")])
    kb.put_search(SearchRecord("finished", ds[0].dataset_id, "done", n_trials=7, **owners["dead"]))  # type: ignore[arg-type]

    assert sorted(interrupt_orphaned_searches(kb)) == ["dead", "dead-pending", "reused"]
    got = {s.search_id: s for s in kb.list_searches()}
    assert {k: (s.status, s.n_trials) for k, s in got.items()} == {
        "dead": ("interrupted", 3),
        "reused": ("interrupted", 0),
        "dead-pending": ("interrupted", 0),
        "alive": ("running", 0),
        "elsewhere": ("running", 0),
        "unknown": ("running", 0),
        "finished": ("done", 7),
    }
    assert f"PID {dead_pid}" in got["dead"].error and "\n" not in got["dead"].error
    assert got["dead"].owner_pid == dead_pid and got["dead"].created_at == T0 and got["dead"].updated_at > T0
    assert kb.stats()["searches_by_status"] == {"done": 1, "interrupted": 3, "running": 3}
    assert interrupt_orphaned_searches(kb) == []  # idempotent


_SEARCHER = """
import sys, time
from metalearn.kb import DuckDBKnowledgeBase, DatasetRecord, ConfigurationRecord, RunRecord, SearchRecord
from metalearn.kb.owners import current_owner
kb = DuckDBKnowledgeBase(sys.argv[1])
kb.put_dataset(DatasetRecord("d", "d", "binary", 10, 2))
kb.put_search(SearchRecord("killed", "d", "running", **current_owner()))
for i in range(23):
    c = ConfigurationRecord.create("space", "1", {"i": i})
    kb.put_configuration(c)
    kb.add_run(RunRecord(f"r{i}", "d", c.config_id, "cv5", "ok", "m", 0.5, 0.5, search_id="killed"))
print("ready", flush=True)
time.sleep(60)
"""


def test_a_search_killed_with_sigkill_is_interrupted_when_the_kb_is_opened_again(tmp_path: Path) -> None:
    path = tmp_path / "kb.duckdb"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-c", _SEARCHER, str(path)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    with DuckDBKnowledgeBase(path, read_only=True) as ro:  # read-only: nothing is written
        assert ro.get_search("killed").status == "running" and ro.interrupted_searches == []
    with DuckDBKnowledgeBase(path) as kb:
        assert kb.interrupted_searches == ["killed"]
        rec = kb.get_search("killed")
        assert (rec.status, rec.n_trials, rec.owner_pid) == ("interrupted", 23, proc.pid)
        assert "run the same search again" in rec.error
        assert kb.stats()["searches_by_status"] == {"interrupted": 1}
