"""Decompression bombs and oversized tables are refused while the file streams, before a table is built.

Small gzip bombs (zeros that compress ~100x) against limits scaled down to them: the service answers 413
with a one-line message naming the limit and its setting, the command line a one-line ``error: ...``
naming ``METALEARN_MAX_DECOMPRESSED_MB``; pandas never parses the file and the KB is left as it was.
"""

from __future__ import annotations

import gc
import gzip
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from metalearn.data import loading
from metalearn.data.errors import InputError
from metalearn.data.loading import (
    MAX_DECOMPRESSED_ENV,
    DataTooLargeError,
    ReadLimits,
    load_frame_file,
    write_frame_file,
)
from metalearn.kb import open_kb
from metalearn.service.app import create_app
from metalearn.service.settings import Settings
from metalearn.service.uploads import read_limits

KEY = "upload-limits-key"
AUTH = {"X-API-Key": KEY}


def zeros_csv(rows: int, cols: int) -> bytes:
    """A valid binary-classification CSV of zeros: ``cols - 1`` features and a target ``y`` (a/b)."""
    header = ",".join(f"f{i}" for i in range(cols - 1)) + ",y\n"
    zeros = "0," * (cols - 1)
    body = "".join(f"{zeros}{'ab'[r % 2]}\n" for r in range(rows))
    return (header + body).encode()


def bomb(rows: int, cols: int) -> bytes:
    return gzip.compress(zeros_csv(rows, cols), compresslevel=9)


@pytest.fixture()
def no_parse(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every pandas parse of a data file (a refused bomb must never reach one)."""
    calls: list[str] = []
    real_csv, real_parquet = pd.read_csv, pd.read_parquet

    def read_csv(*args: Any, **kwargs: Any) -> Any:
        calls.append(f"read_csv {args[0]!s}")
        return real_csv(*args, **kwargs)

    def read_parquet(*args: Any, **kwargs: Any) -> Any:
        calls.append(f"read_parquet {args[0]!s}")
        return real_parquet(*args, **kwargs)

    monkeypatch.setattr(loading.pd, "read_csv", read_csv)
    monkeypatch.setattr(loading.pd, "read_parquet", read_parquet)
    return calls


def kb_stats(path: Path) -> dict[str, Any]:
    gc.collect()
    kb = open_kb(path, read_only=True)
    try:
        return kb.stats()
    finally:
        kb.close()


@pytest.fixture()
def kb_path(tmp_path: Path) -> Path:
    path = tmp_path / "kb.duckdb"
    open_kb(path).close()  # empty, never seeded
    return path


def service(kb: Path, **limits: Any) -> TestClient:
    values: dict[str, Any] = dict(kb=str(kb), api_keys=[KEY], advisor_refresh_seconds=0, **limits)
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    return TestClient(create_app(settings))


def upload(client: TestClient, content: bytes, filename: str, target: str = "y") -> Any:
    return client.post(
        "/metafeatures",
        files={"file": (filename, content, "text/csv")},
        data={"target": [target]},
        headers=AUTH,
    )


def refused(r: Any, *words: str) -> str:
    assert r.status_code == 413, (r.status_code, r.text)
    detail = r.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and len(detail) < 300, detail
    for w in words:
        assert w in detail, (w, detail)
    return detail


# ------------------------------------------------------------------------------------------- service
def test_service_refuses_a_gzip_bomb_while_streaming(kb_path: Path, no_parse: list[str]) -> None:
    """100 columns x 3,000 rows of zeros: 600 kB from a 2 kB upload, within the 10x expansion bound
    (max_upload_bytes 64 kB) and the row and column limits, but over the value limit."""
    payload = bomb(3_000, 100)
    assert len(payload) < 4_000 and len(zeros_csv(3_000, 100)) < 10 * 64_000
    with service(kb_path, max_upload_bytes=64_000, max_rows=5_000, max_columns=500, max_cells=50_000) as c:
        detail = refused(upload(c, payload, "bomb.csv.gz"), "METALEARN_MAX_CELLS", "bomb.csv.gz")
        assert "at most 50000" in detail
        # rows, columns and bytes are each checked as the file streams too
        refused(upload(c, bomb(6_000, 5), "long.csv.gz"), "rows", "METALEARN_MAX_ROWS")
        refused(upload(c, bomb(20, 600), "wide.csv.gz"), "columns", "METALEARN_MAX_COLUMNS")
        long_values = gzip.compress(
            b"f0,y\n" + b"".join(b"0" * 1_000 + b",%s\n" % b"ab"[r % 2 : r % 2 + 1] for r in range(700))
        )
        refused(upload(c, long_values, "big.csv.gz"), "decompresses", "METALEARN_MAX_UPLOAD_BYTES")
        tsv = gzip.compress(zeros_csv(6_000, 5).replace(b",", b"\t"))
        refused(upload(c, tsv, "long.tsv.gz"), "rows", "METALEARN_MAX_ROWS")
        frame = pd.DataFrame(0, index=range(6_000), columns=[f"f{i}" for i in range(4)])
        frame["y"] = ["a", "b"] * 3_000
        arff = write_frame_file(frame, kb_path.with_name("long.arff.gz"))
        refused(upload(c, arff.read_bytes(), "long.arff.gz"), "rows", "METALEARN_MAX_ROWS")
        parquet = io.BytesIO()
        frame.to_parquet(parquet, index=False)
        refused(upload(c, parquet.getvalue(), "long.parquet"), "rows", "METALEARN_MAX_ROWS")
        assert no_parse == []  # refused before pandas parsed anything
        ok = upload(c, bomb(200, 10), "fine.csv.gz")
        assert ok.status_code == 200, ok.text
        assert ok.json()["n_rows"] == 200 and ok.json()["n_features"] == 9


def test_service_refused_upload_leaves_the_kb_unchanged(kb_path: Path) -> None:
    before = kb_stats(kb_path)
    with service(kb_path, max_upload_bytes=64_000, max_cells=50_000) as c:
        refused(upload(c, bomb(3_000, 100), "bomb.csv.gz"), "METALEARN_MAX_CELLS")
    assert kb_stats(kb_path) == before


def test_service_cell_limit_default_bounds_a_full_expansion() -> None:
    """At the defaults a compressed upload expanding to the 10x bound cannot hold more values than
    max_cells: the 600 MiB bomb of the issue (1,000 x 315,000 zeros) is refused, a plain upload is not."""
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert 1_000 * 315_000 > s.max_cells >= s.max_upload_bytes // 4  # 64 MiB of "0," holds 32 Mi values
    limits = read_limits(s)
    assert limits.max_cells == s.max_cells and limits.max_bytes == 10 * s.max_upload_bytes


# ------------------------------------------------------------------------------------- loader / CLI
def test_loader_shape_counts_match_pandas(tmp_path: Path) -> None:
    """The streamed counts equal the parsed shape (quotes, CRLF, blank lines, ';' files), so a file
    exactly at the limits is read and one value less refuses it, whatever the block boundaries."""
    cases = {
        "plain": "a,b,c\n1,2,3\n4,5,6\n",
        "noeol": "a,b,c\n1,2,3\n4,5,6",
        "crlf": "a,b,c\r\n1,2,3\r\n\r\n4,5,6\r\n",
        "blank": "\n\na,b\n1,2\n\n\n3,4\n\n",
        "quoted": 'a,"b,x",c\n1,"two\nlines",3\n"q""q",5,6\n',
        "semicolon": "a;b;c;d\n1;2;3;4\n",
        "header": "a,b,c\n",
    }
    for name, text in cases.items():
        path = tmp_path / f"{name}.csv.gz"
        path.write_bytes(gzip.compress(text.encode()))
        rows, cols = load_frame_file(path, ReadLimits()).shape
        exact = ReadLimits(max_rows=rows, max_columns=cols, max_cells=rows * cols)
        assert load_frame_file(path, exact).shape == (rows, cols)
        for block in (1, 2, 3, 5):
            shape = loading._CsvShape(",")
            raw = text.encode()
            for i in range(0, len(raw), block):
                shape.feed(raw[i : i + block])
            shape.finish()
            assert (shape.rows, shape.columns) == (rows, cols), (name, block)
        if rows:
            with pytest.raises(DataTooLargeError, match="rows"):
                load_frame_file(path, ReadLimits(max_rows=rows - 1))
        with pytest.raises(DataTooLargeError, match="columns"):
            load_frame_file(path, ReadLimits(max_columns=cols - 1))


def test_loader_bounds_decompression_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_parse: list[str]
) -> None:
    path = tmp_path / "bomb.csv.gz"
    path.write_bytes(bomb(3_000, 100))  # 600 kB
    monkeypatch.delenv(MAX_DECOMPRESSED_ENV, raising=False)
    assert ReadLimits.from_env().max_bytes == 512 * 1024 * 1024
    monkeypatch.setenv(MAX_DECOMPRESSED_ENV, "0.5")  # 512 KiB
    with pytest.raises(
        DataTooLargeError, match=re.escape(f"more than 524288 bytes; the limit is {MAX_DECOMPRESSED_ENV}=0.5")
    ):
        load_frame_file(path)
    parquet = tmp_path / "bomb.parquet"
    pd.DataFrame(0, index=range(100_000), columns=["a", "b"]).to_parquet(parquet, index=False)
    assert parquet.stat().st_size < 20_000  # 1.6 MB in memory
    with pytest.raises(DataTooLargeError, match=f"decompresses to about .*{MAX_DECOMPRESSED_ENV}"):
        load_frame_file(parquet)
    assert no_parse == []
    monkeypatch.setenv(MAX_DECOMPRESSED_ENV, "0")  # no bound
    assert load_frame_file(path).shape == (3_000, 100)
    monkeypatch.setenv(MAX_DECOMPRESSED_ENV, "1")
    assert load_frame_file(path).shape == (3_000, 100)
    plain = tmp_path / "plain.csv"
    plain.write_bytes(zeros_csv(6_000, 100))  # 1.2 MB: the bound is on decompression only
    assert load_frame_file(plain).shape == (6_000, 100)
    monkeypatch.setenv(MAX_DECOMPRESSED_ENV, "lots")
    with pytest.raises(InputError, match=MAX_DECOMPRESSED_ENV):
        load_frame_file(path)


def test_loader_reports_running_out_of_memory_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow as pa

    def out_of_memory(*args: Any, **kwargs: Any) -> Any:
        raise pa.ArrowMemoryError("malloc of size 1073741824 failed")

    path = tmp_path / "data.csv"
    path.write_bytes(zeros_csv(10, 3))
    monkeypatch.setattr(loading.pd, "read_csv", out_of_memory)
    with pytest.raises(DataTooLargeError, match=re.escape("not enough memory to read 'data.csv'")):
        load_frame_file(path)


def test_cli_refuses_a_gzip_bomb_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from metalearn.cli import main

    path = tmp_path / "bomb.csv.gz"
    path.write_bytes(bomb(3_000, 100))
    kb = tmp_path / "kb.duckdb"
    monkeypatch.setenv(MAX_DECOMPRESSED_ENV, "0.5")
    with pytest.raises(SystemExit) as exit_info:
        main(["recommend", str(path), "--target", "y", "--kb", str(kb)])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2
    lines = (out + err).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: 'bomb.csv.gz' decompresses to more than"), lines
    assert MAX_DECOMPRESSED_ENV in lines[0] and "unexpected" not in lines[0]
    assert not kb.exists()  # bad input never touches the KB


def _blocks_of(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def test_arff_counts_rows_and_attributes() -> None:
    text = b"% c\n@relation r\n@attribute a numeric\n@ATTRIBUTE b {x,y}\n@data\n1,x\n% note\n\n2,y\n3,x"
    for size in (1, 4, 1 << 20):
        shape = loading._ArffShape()
        for block in _blocks_of(text, size):
            shape.feed(block)
        shape.finish()
        assert (shape.rows, shape.columns) == (3, 2), size
