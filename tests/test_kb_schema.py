"""Schema versioning of the DuckDB knowledge base and the errors met when opening a file."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

import metalearn.kb.schema as kb_schema
from metalearn.data.errors import KnowledgeBaseError, SchemaVersionError
from metalearn.kb import (
    ConfigurationRecord,
    DatasetRecord,
    DuckDBKnowledgeBase,
    InMemoryKnowledgeBase,
    MetaFeatureRecord,
    RunRecord,
    SearchRecord,
    default_kb_path,
    open_kb,
    records_equal,
)
from metalearn.kb.schema import CURRENT_VERSION, MIGRATIONS

REPO = Path(__file__).resolve().parents[1]
T0 = datetime(2024, 6, 1, 10, 0, 0, 42)


def one_line(err: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(err.value)
    assert "\n" not in text and text
    return text


def test_migrations_are_numbered_from_one_without_gaps() -> None:
    versions = [v for v, _, _ in MIGRATIONS]
    assert versions == list(range(1, len(MIGRATIONS) + 1))
    assert len(MIGRATIONS) >= 2 and versions[-1] == CURRENT_VERSION
    assert all(desc and stmts for _, desc, stmts in MIGRATIONS)


def test_a_new_file_gets_every_migration(tmp_path: Path) -> None:
    path = tmp_path / "new" / "kb.duckdb"
    with DuckDBKnowledgeBase(path) as store:
        assert store.schema_version == CURRENT_VERSION
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.execute(
            "SELECT version, applied_at, description FROM schema_version ORDER BY version"
        ).fetchall()
        assert [r[0] for r in rows] == [v for v, _, _ in MIGRATIONS]
        assert all(isinstance(r[1], datetime) and r[2] for r in rows)
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        assert {
            "datasets",
            "metafeatures",
            "metafeature_values",
            "configurations",
            "runs",
            "searches",
        } <= tables
        indexes = {r[0] for r in con.execute("SELECT index_name FROM duckdb_indexes()").fetchall()}
        assert {"runs_dataset_idx", "runs_config_idx"} <= indexes
        assert con.execute(
            "SELECT data_type FROM information_schema.columns WHERE table_name = 'runs' AND column_name = 'metrics'"
        ).fetchall() == [("MAP(VARCHAR, DOUBLE)",)]
    finally:
        con.close()


def _make_v1_file(path: Path) -> None:
    """A KB file exactly as schema version 1 wrote it, with one record in every table."""
    con = duckdb.connect(str(path))
    try:
        for stmt in MIGRATIONS[0][2]:
            con.execute(stmt)
        con.execute("INSERT INTO schema_version VALUES (1, ?, ?)", [T0, MIGRATIONS[0][1]])
        con.execute(
            "INSERT INTO datasets VALUES ('d1', 'iris', 'multiclass', 150, 4, 0, 1, ['species'], ['multiclass'], "
            "'corpus:iris', 61, ?)",
            [T0],
        )
        con.execute("INSERT INTO metafeatures VALUES ('d1', 'v1', 0.5, ?)", [T0])
        con.execute(
            "INSERT INTO metafeature_values VALUES ('d1', 'v1', 0, 'nr_inst', 150.0), ('d1', 'v1', 1, 'skew', 'NaN')"
        )
        con.execute("INSERT INTO configurations VALUES ('c1', 'space', '1', '{\"a\":1}', ?)", [T0])
        con.execute(
            "INSERT INTO runs VALUES ('r1', 'd1', 'c1', 'cv5', 'ok', 'log_loss', 0.25, 0.25, MAP {'log_loss': 0.25::DOUBLE, 'x': 'NaN'::DOUBLE}, "
            "1.5, 0.5, '', 'build', NULL, NULL, NULL, ?)",
            [T0],
        )
        con.execute(
            "INSERT INTO searches VALUES ('s1', 'd1', 'done', '{}', 'c1', 0.25, 3, '', ?, ?)", [T0, T0]
        )
    finally:
        con.close()


def test_a_v1_file_is_migrated_forward_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "v1.duckdb"
    _make_v1_file(path)
    with pytest.raises(KnowledgeBaseError, match="open it read-write once to migrate") as err:
        DuckDBKnowledgeBase(path, read_only=True)
    one_line(err)

    with DuckDBKnowledgeBase(path) as store:
        assert store.schema_version == CURRENT_VERSION
        assert store.get_dataset("d1") == DatasetRecord(
            "d1", "iris", "multiclass", 150, 4, 0, 1, ("species",), ("multiclass",), "corpus:iris", 61, T0
        )
        assert records_equal(
            store.get_metafeatures("d1", "v1"),
            MetaFeatureRecord("d1", "v1", {"nr_inst": 150.0, "skew": math.nan}, 0.5, T0),
        )
        assert store.get_configuration("c1") == ConfigurationRecord("c1", "space", "1", {"a": 1}, T0)
        want = RunRecord(
            "r1",
            "d1",
            "c1",
            "cv5",
            "ok",
            "log_loss",
            0.25,
            0.25,
            {"log_loss": 0.25, "x": math.nan},
            1.5,
            0.5,
            "",
            "build",
            created_at=T0,
        )
        assert records_equal(store.get_run("r1"), want)
        assert store.get_search("s1") == SearchRecord("s1", "d1", "done", {}, "c1", 0.25, 3, "", T0, T0)
        assert store.runs_frame()["run_id"].tolist() == ["r1"]
        store.add_run(RunRecord("r2", "d1", "c1", "cv10", "ok", "log_loss", 0.2, 0.2))
    con = duckdb.connect(str(path), read_only=True)
    try:
        assert [r[0] for r in con.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()] == [
            v for v, _, _ in MIGRATIONS
        ]
        indexes = {r[0] for r in con.execute("SELECT index_name FROM duckdb_indexes()").fetchall()}
        assert {"runs_dataset_idx", "runs_config_idx", "runs_search_idx"} <= indexes
    finally:
        con.close()
    with DuckDBKnowledgeBase(path, read_only=True) as again:  # now current: read-only opens fine
        assert again.stats()["runs"] == 2


def test_a_failed_migration_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "kb.duckdb"
    with DuckDBKnowledgeBase(path) as store:
        store.put_dataset(DatasetRecord("d1", "x", "binary", 1, 1, created_at=T0))
    broken = (
        CURRENT_VERSION + 1,
        "broken",
        ["CREATE TABLE extra (x INTEGER)", "ALTER TABLE nowhere ADD COLUMN y INTEGER"],
    )
    monkeypatch.setattr(kb_schema, "MIGRATIONS", [*MIGRATIONS, broken])
    monkeypatch.setattr(kb_schema, "CURRENT_VERSION", CURRENT_VERSION + 1)
    with pytest.raises(
        KnowledgeBaseError, match=f"from schema version {CURRENT_VERSION} to {CURRENT_VERSION + 1} failed"
    ) as err:
        DuckDBKnowledgeBase(path)
    one_line(err)
    monkeypatch.undo()
    con = duckdb.connect(str(path), read_only=True)
    try:
        assert con.execute("SELECT max(version) FROM schema_version").fetchall() == [(CURRENT_VERSION,)]
        assert "extra" not in {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    finally:
        con.close()
    with DuckDBKnowledgeBase(path) as store:
        assert store.get_dataset("d1").name == "x"


def test_a_newer_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.duckdb"
    DuckDBKnowledgeBase(path).close()
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO schema_version VALUES (?, ?, 'from the future')", [CURRENT_VERSION + 5, T0])
    con.close()
    for read_only in (False, True):
        with pytest.raises(SchemaVersionError) as err:
            DuckDBKnowledgeBase(path, read_only=read_only)
        assert one_line(err) == (
            f"kb file {path} has schema version {CURRENT_VERSION + 5} but this metalearn supports up to "
            f"{CURRENT_VERSION}: upgrade metalearn (pip install -U metalearn) or point --kb at another file"
        )
        assert isinstance(err.value, KnowledgeBaseError)
    duckdb.connect(str(path)).close()  # the failed opens released the file


def test_a_duckdb_file_that_is_not_a_kb(tmp_path: Path) -> None:
    path = tmp_path / "other.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE sales (id INTEGER)")
    con.close()
    with pytest.raises(KnowledgeBaseError, match=r"not a metalearn knowledge base.*point --kb") as err:
        DuckDBKnowledgeBase(path)
    one_line(err)
    con = duckdb.connect(str(path))
    assert {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()} == {"sales"}
    con.close()


def test_files_that_are_not_duckdb(tmp_path: Path) -> None:
    text = tmp_path / "notes.duckdb"
    text.write_text("just some notes\n" * 500)
    with pytest.raises(KnowledgeBaseError, match="not a DuckDB file") as err:
        DuckDBKnowledgeBase(text)
    one_line(err)
    assert text.read_text().startswith("just some notes")
    with pytest.raises(KnowledgeBaseError, match="is a directory") as err:
        DuckDBKnowledgeBase(tmp_path)
    one_line(err)
    with pytest.raises(KnowledgeBaseError, match="does not exist") as err:
        DuckDBKnowledgeBase(tmp_path / "missing.duckdb", read_only=True)
    one_line(err)
    assert not (tmp_path / "missing.duckdb").exists()


@pytest.mark.parametrize("suffix", [".bin", ".csv", ".parquet", ".duckdb"])
@pytest.mark.parametrize("read_only", [False, True])
def test_a_file_that_is_not_duckdb_gets_one_clear_error_whatever_its_name(
    tmp_path: Path, suffix: str, read_only: bool
) -> None:
    """DuckDB opens a .csv or .parquet file as a view in an in-memory database (read-write: a KB that forgets
    everything; read-only: "Cannot launch in-memory database"); the KB says what is wrong instead."""
    import pandas as pd

    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    for name, write in (("table", lambda p: frame.to_csv(p, index=False)), ("parquet", frame.to_parquet)):
        path = tmp_path / f"{name}{suffix}"
        write(path)
        before = path.read_bytes()
        with pytest.raises(KnowledgeBaseError) as err:
            open_kb(path, read_only=read_only)
        assert one_line(err) == (
            f"{path} is not a DuckDB file, so not a metalearn knowledge base: point --kb at a KB file "
            "(*.duckdb) or at a new path"
        )
        assert path.read_bytes() == before


def test_the_record_dataclasses_declare_the_migrated_tables(tmp_path: Path) -> None:
    """The migrations are history (never edited); the record dataclasses declare the current columns: a
    file migrated to the current version has exactly the columns, types and NULL rules they derive."""
    path = tmp_path / "kb.duckdb"
    DuckDBKnowledgeBase(path).close()
    con = duckdb.connect(str(path), read_only=True)
    try:
        for table in kb_schema.RECORD_TYPES:
            rows = con.execute(
                "SELECT column_name, data_type, is_nullable FROM duckdb_columns() "
                "WHERE table_name = ? ORDER BY column_index",
                [table],
            ).fetchall()
            assert rows == kb_schema.sql_columns(table), table
            keys = con.execute(
                "SELECT constraint_column_names FROM duckdb_constraints() "
                "WHERE table_name = ? AND constraint_type = 'PRIMARY KEY'",
                [table],
            ).fetchall()
            assert keys == [(list(kb_schema.KEYS[table]),)], table
    finally:
        con.close()


_HOLDER = r"""
import sys, time
from metalearn.kb import DuckDBKnowledgeBase
kb = DuckDBKnowledgeBase(sys.argv[1])
print("ready", flush=True)
time.sleep(120)
"""


def test_a_file_held_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "held.duckdb"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        for read_only in (False, True):
            with pytest.raises(KnowledgeBaseError, match="locked by another metalearn process") as err:
                DuckDBKnowledgeBase(path, read_only=read_only)
            text = one_line(err)
            assert f"PID {proc.pid}" in text and "metalearn serve" in text and "--kb" in text
        # serve says so in one line before the server starts (an 88-line startup traceback, exit 3)
        served = subprocess.run([sys.executable, "-m", "metalearn.cli", "serve", "--kb", str(path), "--port", "0"],
                                capture_output=True, text=True, env=env, timeout=120)
        assert served.returncode == 2 and served.stderr.strip().splitlines() == [
            next(ln for ln in served.stderr.splitlines() if ln.startswith("error: kb file"))]
        assert "locked by another metalearn process" in served.stderr and "Traceback" not in served.stderr
    finally:
        proc.kill()
        proc.wait(30)
    deadline = time.monotonic() + 10
    while True:  # the lock goes with the process
        try:
            DuckDBKnowledgeBase(path).close()
            break
        except KnowledgeBaseError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_two_stores_on_one_file_in_one_process(tmp_path: Path) -> None:
    path = tmp_path / "shared.duckdb"
    with DuckDBKnowledgeBase(path) as a, DuckDBKnowledgeBase(path) as b:
        a.put_dataset(DatasetRecord("d1", "x", "binary", 1, 1))
        assert b.get_dataset("d1").name == "x"
        assert b.put_dataset(DatasetRecord("d1", "y", "binary", 1, 1)) is False
        with pytest.raises(KnowledgeBaseError, match="different read_only") as err:
            DuckDBKnowledgeBase(path, read_only=True)
        one_line(err)


def test_extensions_are_never_downloaded(tmp_path: Path) -> None:
    with DuckDBKnowledgeBase(tmp_path / "kb.duckdb") as store:
        cur = store._cursor()
        settings = cur.execute(
            "SELECT current_setting('autoinstall_known_extensions'), current_setting('autoload_known_extensions')"
        ).fetchall()
    assert settings == [(False, False)]


def test_open_kb_resolves_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("METALEARN_KB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_kb_path() == tmp_path / "xdg" / "metalearn" / "kb.duckdb"
    with open_kb() as store:
        assert (
            isinstance(store, DuckDBKnowledgeBase)
            and store.path == tmp_path / "xdg" / "metalearn" / "kb.duckdb"
        )
    assert (tmp_path / "xdg" / "metalearn" / "kb.duckdb").is_file()

    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_kb_path() == tmp_path / "home" / ".local" / "share" / "metalearn" / "kb.duckdb"

    monkeypatch.setenv("METALEARN_KB", str(tmp_path / "env" / "nested" / "kb.duckdb"))
    with open_kb(read_only=False) as store:
        assert (
            isinstance(store, DuckDBKnowledgeBase) and store.path == tmp_path / "env" / "nested" / "kb.duckdb"
        )
        store.put_dataset(DatasetRecord("d", "d", "binary", 1, 1))
    with open_kb(read_only=True) as store:
        assert store.stats()["datasets"] == 1
    with open_kb(tmp_path / "explicit.duckdb") as store:
        assert isinstance(store, DuckDBKnowledgeBase) and store.path == tmp_path / "explicit.duckdb"

    monkeypatch.setenv("METALEARN_KB", ":memory:")
    assert isinstance(open_kb(), InMemoryKnowledgeBase)
    assert isinstance(open_kb(":memory:"), InMemoryKnowledgeBase)
    assert open_kb(":memory:").schema_version == CURRENT_VERSION
