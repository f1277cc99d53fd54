"""Snapshots: a knowledge base as one zstd parquet file per table plus ``snapshot.json``.

A snapshot is backend-neutral (the layout is :data:`metalearn.kb.schema.LAYOUTS`): export from DuckDB, import into
memory or the other way round, and every record comes back equal. Import validates the whole directory
first and loads it in one transaction, skipping records whose key is already stored, so a bad snapshot
writes nothing and importing the same snapshot twice is a no-op.
"""

from __future__ import annotations

import json
import os
from importlib import metadata
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from metalearn.data.errors import (
    DataFileNotFoundError,
    FileFormatError,
    KnowledgeBaseError,
    MetaLearnError,
    MissingReferenceError,
    SchemaVersionError,
)
from metalearn.kb import schema
from metalearn.kb.base import TABLES, KnowledgeBase
from metalearn.kb.records import utc_from_text, utc_text, utcnow

SNAPSHOT_FILE = "snapshot.json"
SNAPSHOT_FORMAT = "metalearn-kb-snapshot"
#: Oldest snapshot schema version this code can import (columns added since read as null, see schema.conform).
MIN_SNAPSHOT_VERSION = 1

_ZSTD_LEVEL = 9


def _metalearn_version() -> str:
    try:
        return metadata.version("metalearn")
    except metadata.PackageNotFoundError:
        return "unknown"


def _write_parquet(tbl: pa.Table, path: Path) -> None:
    floats = [f.name for f in tbl.schema if pa.types.is_floating(f.type)]
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(
        tbl,
        tmp,
        compression="zstd",
        compression_level=_ZSTD_LEVEL,
        use_dictionary=[f.name for f in tbl.schema if f.name not in floats],
        use_byte_stream_split=floats or False,
        write_statistics=False,
    )
    os.replace(tmp, path)


def export_snapshot(kb: KnowledgeBase, directory: str | Path) -> dict[str, int]:
    """Write every table of ``kb`` to ``directory`` (created if needed); returns rows written per table.

    The tables are read in one transaction, so the snapshot is a consistent view. ``snapshot.json`` is
    written last: a directory without it is not a (complete) snapshot.
    """
    out = Path(directory).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / SNAPSHOT_FILE).unlink(missing_ok=True)
    except OSError as err:
        raise DataFileNotFoundError(
            f"cannot write a snapshot to {out} ({err.strerror}): choose a writable directory"
        ) from err
    with kb.transaction():
        frames = {t: kb.dump_table(t) for t in TABLES}
    counts: dict[str, int] = {}
    for table in TABLES:
        tbl = schema.frame_to_arrow(table, frames[table])
        _write_parquet(tbl, out / f"{table}.parquet")
        counts[table] = tbl.num_rows
    info = {
        "format": SNAPSHOT_FORMAT,
        "schema_version": kb.schema_version,
        "counts": counts,
        "created_at": utc_text(utcnow()),  # aware, "...Z" (naive before: snapshot_info reads both)
        "metalearn_version": _metalearn_version(),
        "tables": {t: f"{t}.parquet" for t in TABLES},
    }
    tmp = out / (SNAPSHOT_FILE + ".tmp")
    tmp.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, out / SNAPSHOT_FILE)
    return counts


def snapshot_info(directory: str | Path) -> dict[str, Any]:
    """The validated ``snapshot.json`` of a snapshot directory (format, schema_version, counts, ...)."""
    src = Path(directory).expanduser()
    if not src.is_dir():
        raise DataFileNotFoundError(
            f"snapshot directory {src} does not exist: pass a directory `metalearn kb export` wrote"
        )
    info_path = src / SNAPSHOT_FILE
    if not info_path.is_file():
        raise DataFileNotFoundError(
            f"{src} has no {SNAPSHOT_FILE}, so it is not a complete KB snapshot: export it again"
        )
    try:
        info = json.loads(info_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FileFormatError(f"{info_path} is not valid JSON ({err}): export the snapshot again") from err
    if not isinstance(info, dict) or info.get("format") != SNAPSHOT_FORMAT:
        raise FileFormatError(
            f"{info_path} is not a metalearn KB snapshot description: export the snapshot again"
        )
    version = info.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise FileFormatError(f"{info_path} has no integer schema_version: export the snapshot again")
    schema.check_version(version, f"snapshot {src}")
    if version < MIN_SNAPSHOT_VERSION:
        raise SchemaVersionError(
            f"snapshot {src} has schema version {version}, older than the oldest importable "
            f"({MIN_SNAPSHOT_VERSION}): export it again with a newer metalearn"
        )
    counts = info.get("counts")
    if not isinstance(counts, dict) or any(not isinstance(counts.get(t), int) for t in TABLES):
        raise FileFormatError(
            f"{info_path} lacks row counts for the tables {', '.join(TABLES)}: export it again"
        )
    if "created_at" in info:  # UTC with "Z", whether written so or naive (UTC) as exports before wrote it
        try:
            info["created_at"] = utc_text(utc_from_text(info["created_at"]))
        except (TypeError, ValueError):
            raise FileFormatError(
                f"{info_path} has created_at {info['created_at']!r}, not an ISO-8601 timestamp such as "
                f"{utc_text(utcnow())!r}: export the snapshot again"
            ) from None
    return info


def read_snapshot(directory: str | Path, validate_records: bool = True) -> dict[str, pa.Table]:
    """Read and validate every table of a snapshot (layout, row counts and, with ``validate_records``,
    every record); nothing is written."""
    src = Path(directory).expanduser()
    info = snapshot_info(src)
    tables: dict[str, pa.Table] = {}
    for table in TABLES:
        path = src / f"{table}.parquet"
        if not path.is_file():
            raise DataFileNotFoundError(f"snapshot {src} lacks {path.name}: export the snapshot again")
        try:
            tbl = pq.read_table(path)
        except (OSError, pa.ArrowException) as err:
            raise FileFormatError(
                f"snapshot file {path} is not readable parquet ({str(err).splitlines()[0]}): export the snapshot again"
            ) from err
        if tbl.num_rows != info["counts"][table]:
            raise FileFormatError(
                f"snapshot file {path} has {tbl.num_rows} rows but {SNAPSHOT_FILE} says {info['counts'][table]}: "
                "the snapshot is incomplete, export it again"
            )
        try:
            tbl = schema.conform(table, tbl)
            if validate_records:
                schema.arrow_to_records(table, tbl)
        except MetaLearnError as err:
            raise FileFormatError(f"snapshot file {path}: {err}") from err
        tables[table] = tbl
    return tables


def import_snapshot(kb: KnowledgeBase, directory: str | Path) -> dict[str, int]:
    """Load a snapshot into ``kb`` in one transaction; returns rows inserted per table.

    Records whose key is already stored are skipped (importing twice is a no-op). A missing file, a
    newer schema version, a damaged parquet file or records that break the KB rules raise a
    :class:`MetaLearnError` and write nothing.
    """
    src = Path(directory).expanduser()
    tables = read_snapshot(
        src, validate_records=False
    )  # load_table validates every record, in the transaction
    inserted: dict[str, int] = {}
    with kb.transaction():
        for table in TABLES:
            try:
                inserted[table] = kb.load_table(table, schema.arrow_to_frame(tables[table]))
            except KnowledgeBaseError:
                raise
            except MissingReferenceError as err:
                raise FileFormatError(
                    f"snapshot file {src / (table + '.parquet')} cannot be imported: its {err.what} name "
                    f"{err.noun}(s) {', '.join(err.keys)} that neither the snapshot nor the knowledge base holds: "
                    "export the snapshot again from the knowledge base that has them; nothing was written"
                ) from err
            except MetaLearnError as err:  # invalid records
                raise FileFormatError(
                    f"snapshot file {src / (table + '.parquet')} cannot be imported: {err}"
                ) from err
    return inserted
