"""Snapshots: exact round trips between backends, validation of damaged snapshots, size of a shipped KB."""

from __future__ import annotations

import json
import math
import shutil
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from metalearn.data.errors import (
    DataFileNotFoundError,
    FileFormatError,
    KnowledgeBaseError,
    SchemaVersionError,
)
from metalearn.kb import (
    TABLES,
    ConfigurationRecord,
    DatasetRecord,
    DuckDBKnowledgeBase,
    InMemoryKnowledgeBase,
    KnowledgeBase,
    MetaFeatureRecord,
    RunRecord,
    SearchRecord,
    export_snapshot,
    import_snapshot,
    records_equal,
    run_id_for,
    snapshot_info,
)
from metalearn.kb.schema import CURRENT_VERSION

REPO = Path(__file__).resolve().parents[1]
T0 = datetime(2024, 3, 1, 8, 0, 0, 654321)


def fill(kb: KnowledgeBase, n_datasets: int = 8, n_configs: int = 12) -> None:
    """Records that exercise every awkward corner of the layout."""
    kinds = ["binary", "multiclass", "regression", "multilabel", "multitarget", "multitask"]
    datasets = []
    for i in range(n_datasets):
        kind = kinds[i % len(kinds)]
        n_t = 1 if kind in ("binary", "multiclass", "regression") else 3
        tk = {"multilabel": ("binary",) * 3, "multitarget": ("regression",) * 3}.get(
            kind, ("binary", "regression", "multiclass") if kind == "multitask" else (kind,)
        )
        datasets.append(
            DatasetRecord(
                f"fp{i:018d}", f"naïve dataset {i}", kind, 1000 * (i + 1), 3 + i, i % 2, n_t,
                tuple(f"target {j}" for j in range(n_t)), tk, "corpus:x", 40000 + i if i % 3 else None,
                T0 + timedelta(microseconds=i),
            )
        )  # fmt: skip
    configs = [
        ConfigurationRecord.create(
            ("clf", "reg")[i % 2],
            "3",
            {"model": "gbm", "lr": 10 ** -(i % 5), "depth": i, "opts": {"a": [i, None]}},
        )
        for i in range(n_configs)
    ]
    with kb.transaction():
        for d in datasets:
            kb.put_dataset(d)
        for c in configs:
            kb.put_configuration(c)
        for j, d in enumerate(datasets):
            values = {
                "n_rows": float(d.n_rows),
                "skew": -0.0,
                "kurt": math.nan,
                "tiny": 5e-324,
                "inf": math.inf,
            }
            kb.put_metafeatures(MetaFeatureRecord(d.dataset_id, "mf-1", values, 0.1 * j, T0))
        runs = []
        for i, d in enumerate(datasets):
            for k, c in enumerate(configs):
                ok = (i + k) % 7 != 0
                score = (i * 13 + k) / 97 if ok else math.nan
                runs.append(
                    RunRecord(
                        run_id_for(d.dataset_id, c.config_id, "cv5-s0"), d.dataset_id, c.config_id, "cv5-s0",
                        "ok" if ok else "crash", "roc_auc", score, 1 - score, {"roc_auc": score, "acc": -0.0},
                        1.5 * k, 0.01, "" if ok else "Traceback:\n boom", "build",
                        "search-a" if k % 2 else None, None if k % 3 else 0.5, None if k % 4 else 123,
                        T0 + timedelta(seconds=i, microseconds=k),
                    )
                )  # fmt: skip
        kb.add_runs(runs)
        kb.put_search(
            SearchRecord(
                "search-a",
                datasets[0].dataset_id,
                "done",
                {"n": math.nan, "l": [1, 2]},
                configs[1].config_id,
                0.5,
                6,
                "",
                T0,
                T0,
            )
        )
        kb.put_search(
            SearchRecord("search-b", datasets[1].dataset_id, "failed", {}, None, None, 0, "crashed", T0, T0)
        )


def everything(kb: KnowledgeBase) -> dict[str, object]:
    mf = kb.dump_table("metafeatures")
    cfg_ids = kb.dump_table("configurations")["config_id"].tolist()
    return {
        "datasets": kb.list_datasets(),
        "metafeatures": [
            kb.get_metafeatures(a, b) for a, b in zip(mf["dataset_id"], mf["version"], strict=True)
        ],
        "configurations": [kb.get_configuration(c) for c in cfg_ids],
        "runs": kb.list_runs(),
        "searches": kb.list_searches(),
        "stats": kb.stats(),
    }


def make(backend: str, path: Path) -> KnowledgeBase:
    return DuckDBKnowledgeBase(path) if backend == "duckdb" else InMemoryKnowledgeBase()


@pytest.mark.parametrize(
    ("source", "target"), [("duckdb", "memory"), ("memory", "duckdb"), ("duckdb", "duckdb")]
)
def test_export_import_round_trips_exactly(tmp_path: Path, source: str, target: str) -> None:
    src = make(source, tmp_path / "src.duckdb")
    dst = make(target, tmp_path / "dst.duckdb")
    try:
        fill(src)
        counts = export_snapshot(src, tmp_path / "snap")
        assert counts == {"datasets": 8, "metafeatures": 8, "configurations": 12, "runs": 96, "searches": 2}
        info = snapshot_info(tmp_path / "snap")
        assert info["schema_version"] == CURRENT_VERSION and info["counts"] == counts
        assert info["metalearn_version"] and datetime.fromisoformat(info["created_at"])
        for t in TABLES:
            meta = pq.ParquetFile(tmp_path / "snap" / f"{t}.parquet").metadata
            assert meta.row_group(0).column(0).compression == "ZSTD"

        assert import_snapshot(dst, tmp_path / "snap") == counts
        assert records_equal(everything(dst), everything(src))
        for t in TABLES:
            pd.testing.assert_frame_equal(dst.dump_table(t), src.dump_table(t))
        pd.testing.assert_frame_equal(dst.runs_frame(ok_only=False), src.runs_frame(ok_only=False))
        pd.testing.assert_frame_equal(dst.metafeature_frame("mf-1"), src.metafeature_frame("mf-1"))
        # importing again is a no-op
        assert import_snapshot(dst, tmp_path / "snap") == dict.fromkeys(TABLES, 0)
        assert dst.stats() == src.stats()
    finally:
        src.close()
        dst.close()


def test_import_skips_existing_keys_and_keeps_stored_records(tmp_path: Path) -> None:
    src = InMemoryKnowledgeBase()
    fill(src)
    export_snapshot(src, tmp_path / "snap")
    with DuckDBKnowledgeBase(tmp_path / "kb.duckdb") as dst:
        first = src.list_datasets()[0]
        dst.put_dataset(DatasetRecord(first.dataset_id, "kept name", first.kind, 1, 1, created_at=T0))
        dst.put_search(SearchRecord("search-a", first.dataset_id, "running", created_at=T0, updated_at=T0))
        inserted = import_snapshot(dst, tmp_path / "snap")
        assert inserted["datasets"] == 7 and inserted["searches"] == 1 and inserted["runs"] == 96
        assert dst.get_dataset(first.dataset_id).name == "kept name"
        assert dst.get_search("search-a").status == "running"


def _copy(tmp_path: Path) -> tuple[Path, dict[str, object]]:
    src = InMemoryKnowledgeBase()
    fill(src)
    snap = tmp_path / "snap"
    export_snapshot(src, snap)
    return snap, everything(src)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garbage(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[4:200] = b"\x00" * 196  # keeps the PAR1 magic at both ends, breaks the pages
    path.write_bytes(bytes(data))


def _drop_a_dataset(path: Path) -> None:
    tbl = pq.read_table(path.parent / "datasets.parquet")
    pq.write_table(tbl.slice(1), path.parent / "datasets.parquet")
    info = json.loads((path.parent / "snapshot.json").read_text())
    info["counts"]["datasets"] -= 1
    (path.parent / "snapshot.json").write_text(json.dumps(info))


def _bad_status(path: Path) -> None:
    tbl = pq.read_table(path)
    statuses = tbl.column("status").to_pylist()
    statuses[-1] = "exploded"
    pq.write_table(tbl.set_column(tbl.schema.get_field_index("status"), "status", pa.array(statuses)), path)


def _set_first(column: str, value: object) -> Callable[[Path], None]:
    """A damage that sets ``column`` of the file's first row to ``value`` (keeping the column's type)."""

    def damage(path: Path) -> None:
        tbl = pq.read_table(path)
        values = tbl.column(column).to_pylist()
        values[0] = value
        field = tbl.schema.field(column)
        pq.write_table(tbl.set_column(tbl.schema.get_field_index(column), field, pa.array(values, field.type)), path)

    damage.__name__ = f"{path_stem(column)}_{value}"
    return damage


def path_stem(column: str) -> str:
    return column.replace("_id", "")


def _wrong_type(path: Path) -> None:
    tbl = pq.read_table(path)
    pq.write_table(
        tbl.set_column(tbl.schema.get_field_index("score"), "score", pa.array(["x"] * tbl.num_rows)), path
    )


def _drop_column(path: Path) -> None:
    pq.write_table(pq.read_table(path).drop_columns(["cost"]), path)


def _newer_version(path: Path) -> None:
    info = json.loads(path.read_text())
    info["schema_version"] = CURRENT_VERSION + 1
    path.write_text(json.dumps(info))


def _count_mismatch(path: Path) -> None:
    info = json.loads(path.read_text())
    info["counts"]["runs"] += 5
    path.write_text(json.dumps(info))


def _not_json(path: Path) -> None:
    path.write_text("{not json")


CORRUPTIONS: list[tuple[str, Callable[[Path], None], type[Exception], str]] = [
    ("runs.parquet", _truncate, FileFormatError, "not readable parquet"),
    ("runs.parquet", _garbage, FileFormatError, "runs.parquet"),
    ("runs.parquet", Path.unlink, DataFileNotFoundError, "lacks runs.parquet"),
    ("runs.parquet", _drop_a_dataset, FileFormatError, "cannot be imported"),
    ("searches.parquet", _bad_status, FileFormatError, "search status"),
    ("searches.parquet", _set_first("dataset_id", "ghost"), FileFormatError, r"its search search-a name dataset\(s\) ghost that neither the snapshot nor.*export the snapshot again"),
    ("searches.parquet", _set_first("incumbent_config_id", "ghost"), FileFormatError, r"configuration\(s\) ghost"),
    ("searches.parquet", _set_first("n_trials", -6), FileFormatError, "n_trials must be at least 0"),
    ("datasets.parquet", _set_first("n_rows", -40), FileFormatError, "n_rows must be at least 1, got -40"),
    ("runs.parquet", _wrong_type, FileFormatError, "score"),
    ("runs.parquet", _drop_column, FileFormatError, "lacks column"),
    ("snapshot.json", _newer_version, SchemaVersionError, "upgrade metalearn"),
    ("snapshot.json", _count_mismatch, FileFormatError, "incomplete"),
    ("snapshot.json", _not_json, FileFormatError, "not valid JSON"),
    ("snapshot.json", Path.unlink, DataFileNotFoundError, "not a complete KB snapshot"),
]


@pytest.mark.parametrize("backend", ["duckdb", "memory"])
@pytest.mark.parametrize(
    ("file", "damage", "error", "message"), CORRUPTIONS, ids=[c[1].__name__ for c in CORRUPTIONS]
)
def test_damaged_snapshot_is_rejected_and_writes_nothing(
    tmp_path: Path,
    backend: str,
    file: str,
    damage: Callable[[Path], None],
    error: type[Exception],
    message: str,
) -> None:
    snap, _ = _copy(tmp_path)
    damage(snap / file)
    kb = make(backend, tmp_path / "kb.duckdb")
    try:
        kb.put_dataset(DatasetRecord("already-here", "x", "binary", 1, 1, created_at=T0))
        before = everything(kb)
        with pytest.raises(error, match=message) as info:
            import_snapshot(kb, snap)
        assert "\n" not in str(info.value)
        assert records_equal(everything(kb), before)
    finally:
        kb.close()


def test_missing_snapshot_directory(tmp_path: Path) -> None:
    with pytest.raises(DataFileNotFoundError, match="does not exist"):
        import_snapshot(InMemoryKnowledgeBase(), tmp_path / "nowhere")


def test_import_into_a_read_only_kb_is_refused(tmp_path: Path) -> None:
    snap, _ = _copy(tmp_path)
    DuckDBKnowledgeBase(tmp_path / "ro.duckdb").close()
    with DuckDBKnowledgeBase(tmp_path / "ro.duckdb", read_only=True) as ro:
        with pytest.raises(KnowledgeBaseError, match="read-only"):
            import_snapshot(ro, snap)
        assert ro.stats()["runs"] == 0
        export_snapshot(ro, tmp_path / "from-ro")  # exporting a read-only KB works
    assert snapshot_info(tmp_path / "from-ro")["counts"]["runs"] == 0


def test_re_export_overwrites_a_previous_snapshot(tmp_path: Path) -> None:
    snap, _ = _copy(tmp_path)
    small = InMemoryKnowledgeBase()
    fill(small, n_datasets=2, n_configs=2)
    assert export_snapshot(small, snap)["runs"] == 4
    fresh = InMemoryKnowledgeBase()
    assert import_snapshot(fresh, snap)["runs"] == 4
    assert not list(snap.glob("*.tmp"))


def test_a_20k_run_snapshot_stays_small(tmp_path: Path) -> None:
    """The shipped default KB is a snapshot of ~20k runs: it must stay a few MB."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from kb_synthetic import build_synthetic_kb
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    path = tmp_path / "kb.duckdb"
    build_synthetic_kb(path, 20_000, seed=1, real_spaces=False)  # independent of metalearn.pipelines.spaces
    with DuckDBKnowledgeBase(path) as kb:
        counts = export_snapshot(kb, tmp_path / "snap")
    assert counts["runs"] == 20_000 and counts["configurations"] == 5_000
    size = sum(p.stat().st_size for p in (tmp_path / "snap").iterdir())
    assert size < 4_000_000, f"snapshot of 20k runs takes {size / 1e6:.1f} MB"
    fresh = InMemoryKnowledgeBase()
    assert import_snapshot(fresh, tmp_path / "snap")["runs"] == 20_000
    assert fresh.runs_frame(ok_only=False).shape == (20_000, 13)
    shutil.rmtree(tmp_path / "snap")


def test_a_kb_seeded_by_an_older_release_receives_the_newer_shipped_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upgrade ships a snapshot with more configurations (new model families): the per-user KB seeded
    from the older one gets them at the next read-write open, keeping its own records; a KB created
    empty on purpose, or holding a few of the shipped datasets only, is left alone; read-only opens too."""
    import metalearn.kb.shipped as shipped
    from metalearn.kb.shipped import open_default_kb, refresh_from_shipped

    old, new = InMemoryKnowledgeBase(), InMemoryKnowledgeBase()
    fill(old, n_configs=6)
    fill(new, n_configs=12)
    export_snapshot(old, tmp_path / "old")
    export_snapshot(new, tmp_path / "new")
    monkeypatch.setattr(shipped, "SHIPPED_SNAPSHOT", tmp_path / "new")

    with DuckDBKnowledgeBase(tmp_path / "user.duckdb") as kb:
        import_snapshot(kb, tmp_path / "old")
        mine = ConfigurationRecord.create("clf", "3", {"model": "mine"})
        kb.put_configuration(mine)
    with open_default_kb(tmp_path / "user.duckdb", read_only=True) as kb:  # read-only: nothing written
        assert kb.stats()["configurations"] == 7
    shutil.copy(tmp_path / "user.duckdb", tmp_path / "bench.duckdb")
    with open_default_kb(tmp_path / "bench.duckdb", read_only=True, current=True) as kb:  # the benchmarks' open
        assert kb.stats()["configurations"] == 13 and kb.get_configuration(mine.config_id) == mine
        with pytest.raises(Exception):  # noqa: B017 - read-only all the same (DuckDB's own error)
            kb.put_configuration(ConfigurationRecord.create("clf", "3", {"model": "other"}))
    with open_default_kb(tmp_path / "user.duckdb") as kb:
        assert kb.stats()["configurations"] == 13 and kb.stats()["runs"] == new.stats()["runs"]
        assert kb.get_configuration(mine.config_id) == mine
        assert refresh_from_shipped(kb) is None  # up to date: nothing to do

    # a later snapshot adds runs only (known configurations under a new protocol): they arrive too
    extra = [
        replace(r, run_id=run_id_for(r.dataset_id, r.config_id, "cv5-s0-sub4000"), protocol="cv5-s0-sub4000")
        for r in new.list_runs()[:5]
    ]
    new.add_runs(extra)
    export_snapshot(new, tmp_path / "new")
    with open_default_kb(tmp_path / "user.duckdb") as kb:
        assert kb.stats()["runs"] == new.stats()["runs"] and kb.stats()["configurations"] == 13
        assert {r.run_id for r in extra} <= {r.run_id for r in kb.list_runs()}
        assert refresh_from_shipped(kb) is None

    DuckDBKnowledgeBase(tmp_path / "empty.duckdb").close()
    with DuckDBKnowledgeBase(tmp_path / "few.duckdb") as kb:
        kb.put_dataset(new.list_datasets()[0])  # 1 of the 8 shipped datasets: not seeded from them
    for name, n_datasets in (("empty", 0), ("few", 1)):
        with open_default_kb(tmp_path / f"{name}.duckdb") as kb:
            assert kb.stats()["configurations"] == 0 and kb.stats()["datasets"] == n_datasets


# ------------------------------------------------------------------------------------------ created_at
def test_export_writes_created_at_as_aware_utc_text_with_z(tmp_path: Path) -> None:
    """snapshot.json's created_at was naive ("2026-12-02T22:50:23.323675"): UTC, but nothing said so."""
    from datetime import UTC

    kb = InMemoryKnowledgeBase()
    fill(kb, n_datasets=2, n_configs=2)
    before = datetime.now(UTC)
    export_snapshot(kb, tmp_path / "snap")
    written = json.loads((tmp_path / "snap" / "snapshot.json").read_text())["created_at"]
    assert written.endswith("Z") and "+" not in written, written
    when = datetime.fromisoformat(written)
    assert when.tzinfo is not None and when.utcoffset() == timedelta(0)
    assert before <= when <= datetime.now(UTC)
    assert snapshot_info(tmp_path / "snap")["created_at"] == written


def test_a_snapshot_with_a_naive_created_at_still_reads_and_imports(tmp_path: Path) -> None:
    """Snapshots exported before (the shipped one among them) have a naive created_at, which was UTC: read as such."""
    kb = InMemoryKnowledgeBase()
    fill(kb, n_datasets=2, n_configs=2)
    counts = export_snapshot(kb, tmp_path / "snap")
    path = tmp_path / "snap" / "snapshot.json"
    info = json.loads(path.read_text())
    for given, read in (("2026-12-02T22:50:23.323675", "2026-12-02T22:50:23.323675Z"),
                        ("2026-12-02T23:50:23+01:00", "2026-12-02T22:50:23Z")):
        path.write_text(json.dumps({**info, "created_at": given}))
        assert snapshot_info(tmp_path / "snap")["created_at"] == read
    assert import_snapshot(InMemoryKnowledgeBase(), tmp_path / "snap") == counts
    path.write_text(json.dumps({**info, "created_at": "yesterday"}))
    with pytest.raises(FileFormatError, match=r"has created_at 'yesterday', not an ISO-8601 timestamp such as '20\d\d-"
                                              r".*Z': export the snapshot again$"):
        snapshot_info(tmp_path / "snap")


def test_the_shipped_snapshot_with_its_naive_created_at_still_loads() -> None:
    from metalearn.kb.shipped import SHIPPED_SNAPSHOT

    written = json.loads((SHIPPED_SNAPSHOT / "snapshot.json").read_text())
    info = snapshot_info(SHIPPED_SNAPSHOT)
    assert info["created_at"] == written["created_at"] + ("" if written["created_at"].endswith("Z") else "Z")
    fresh = InMemoryKnowledgeBase()
    assert import_snapshot(fresh, SHIPPED_SNAPSHOT) == info["counts"]
