"""Turning an uploaded data file into a validated :class:`~metalearn.data.dataset.Dataset`.

The upload is copied to a private temporary file (with the extension its name or content type
implies) and read by :func:`metalearn.data.loading.load_frame_file` — CSV, TSV, parquet or ARFF, never pickle —
which checks the decompressed size, row, column and value limits while it streams the file (before the
table is built, so memory stays bounded); then it is validated by :func:`metalearn.data.validation.prepare_frame`.
Every problem is a :class:`~metalearn.data.errors.MetaLearnError` with a one-line message (-> 4xx).
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Annotated

import pandas as pd
from fastapi import File, Form, HTTPException, UploadFile
from starlette.datastructures import UploadFile as AnyUploadFile

from metalearn.data.dataset import Dataset
from metalearn.data.errors import DataError, FileFormatError, MetaLearnError, TargetError
from metalearn.data.loading import SUPPORTED_SUFFIXES, DataTooLargeError, ReadLimits, load_frame_file
from metalearn.data.task import TaskKind
from metalearn.data.validation import prepare_frame
from metalearn.service.settings import Settings

#: The upload form fields every endpoint that takes a dataset declares (one declaration, one schema).
UploadField = Annotated[UploadFile, File(description="CSV, TSV, parquet or ARFF file with a header row.")]
#: a file a route can do without (it says when)
OptionalUploadField = Annotated[
    UploadFile | None, File(description="CSV, TSV, parquet or ARFF file with a header row (optional: see the route).")
]
TargetsField = Annotated[
    list[str], Form(description="Target column(s): repeat the field or separate with commas.")
]
KindField = Annotated[TaskKind | None, Form(description="Task kind (inferred from the targets when absent).")]

log = logging.getLogger("metalearn.api")

_CONTENT_TYPES = {
    "text/csv": ".csv",
    "application/csv": ".csv",
    "text/tab-separated-values": ".tsv",
    "application/vnd.apache.parquet": ".parquet",
    "application/x-parquet": ".parquet",
    "application/parquet": ".parquet",
}
_PARQUET_MAGIC = b"PAR1"


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return (text[:200] + "...") if len(text) > 200 else (text or type(err).__name__)


def safe_name(filename: str | None) -> tuple[str, str]:
    """(display name, suffix) of an uploaded file name, without any directory part."""
    raw = filename or "upload"
    base = PureWindowsPath(PurePosixPath(raw).name).name or "upload"
    lower = base.lower()
    suffix = ""
    for s in sorted(SUPPORTED_SUFFIXES, key=len, reverse=True):
        if lower.endswith(s):
            suffix = s
            base = base[: -len(s)] or base
            break
    name = re.sub(r"[^\w.+-]+", "_", base).strip("._") or "upload"
    return name[:100], suffix


#: An upload may expand (gzip, parquet compression) to at most this many times the upload limit.
EXPANSION_LIMIT = 10


def _too_large(detail: str) -> HTTPException:
    return HTTPException(413, detail=detail)


def read_limits(settings: Settings) -> ReadLimits:
    """The limits an upload is read under, each with how to change it."""
    return ReadLimits(
        max_bytes=EXPANSION_LIMIT * settings.max_upload_bytes,
        max_rows=settings.max_rows,
        max_columns=settings.max_columns,
        max_cells=settings.max_cells,
        advice={
            "bytes": f"send a smaller file (compressed uploads may expand to {EXPANSION_LIMIT}x "
            "METALEARN_MAX_UPLOAD_BYTES)",
            "rows": f"this server accepts at most {settings.max_rows} (METALEARN_MAX_ROWS); subsample the data",
            "columns": f"this server accepts at most {settings.max_columns} (METALEARN_MAX_COLUMNS); "
            "select features first",
            "cells": f"this server accepts at most {settings.max_cells} (METALEARN_MAX_CELLS); "
            "subsample the rows or select features",
        },
    )


def split_targets(targets: Sequence[str] | None) -> list[str]:
    """Target form fields (repeated and/or comma-separated) as a list of column names."""
    out: list[str] = []
    for t in targets or ():
        out.extend(part.strip() for part in str(t).split(","))
    out = [t for t in out if t]
    if not out:
        raise TargetError(
            "no target column given; send one or more 'target' form fields naming the target column(s)"
        )
    return out


def read_frame(file: AnyUploadFile, settings: Settings, limits: ReadLimits | None = None) -> tuple[pd.DataFrame, str]:
    """The table of an uploaded data file and its display name, read under ``limits`` (default: the
    server's upload limits; a limit passed while the file streams is a 413). Runs in a worker thread."""
    limits = limits or read_limits(settings)
    name, suffix = safe_name(file.filename)
    shown = f"{name}{suffix}"  # as the client named it (the suffix guessed below is ours)
    stream = file.file
    stream.seek(0)
    head = stream.read(4)
    stream.seek(0)
    if not head:
        raise FileFormatError(
            f"the uploaded file {shown!r} is empty; send a CSV or parquet file with a header row"
        )
    if not suffix:
        content_type = (file.content_type or "").split(";")[0].strip().lower()
        suffix = ".parquet" if head == _PARQUET_MAGIC else _CONTENT_TYPES.get(content_type, ".csv")
    with tempfile.TemporaryDirectory(prefix="metalearn-upload-") as tmp:
        path = Path(tmp) / f"upload{suffix}"
        with path.open("wb") as out:
            shutil.copyfileobj(stream, out, length=1024 * 1024)
        size = path.stat().st_size
        if size > settings.max_upload_bytes:
            raise HTTPException(
                413, detail=f"the upload is {size} bytes; uploads are limited to {settings.max_upload_bytes}"
            )
        try:
            frame = load_frame_file(path, limits)
        except DataTooLargeError as err:
            raise _too_large(str(err).replace(path.name, shown)) from None
        except MetaLearnError as err:
            raise FileFormatError(str(err).replace(path.name, shown)) from None
        except (MemoryError, RecursionError):
            raise
        except Exception as err:  # a parser failure the loader did not anticipate is still bad input
            raise FileFormatError(f"cannot read the uploaded file {shown!r}: {_one_line(err)}") from None
    return frame, name


def check_rows(n_rows: int, name: str, settings: Settings, fix: str = "subsample the data") -> None:
    """A 413 for an uploaded table ``name`` of more rows than the server accepts (METALEARN_MAX_ROWS), saying
    the ``fix``."""
    if n_rows > settings.max_rows:
        raise HTTPException(
            413,
            detail=f"{name!r} has {n_rows} rows; this server accepts at most {settings.max_rows} "
            f"(METALEARN_MAX_ROWS); {fix}",
        )


def read_upload(
    file: UploadFile,
    targets: Sequence[str] | None,
    settings: Settings,
    kind: str | None = None,
    metric: str | None = None,
) -> Dataset:
    """Validate an uploaded data file into a Dataset. Runs in a worker thread (blocking I/O)."""
    target_names = split_targets(targets)
    frame, name = read_frame(file, settings)
    n_rows, n_cols = frame.shape
    check_rows(n_rows, name, settings)
    if n_cols > settings.max_columns:
        raise HTTPException(
            413,
            detail=f"{name!r} has {n_cols} columns; this server accepts at most {settings.max_columns} "
            "(METALEARN_MAX_COLUMNS); select features first",
        )
    try:
        return prepare_frame(
            frame, target_names, kind=kind, metric=metric, name=name, origin=f"upload:{name}"
        )
    except MetaLearnError:
        raise
    except (MemoryError, RecursionError):
        raise
    except Exception as err:  # validation tripped on data it did not foresee: still the data's fault
        log.warning("prepare_frame failed unexpectedly on an upload", exc_info=True)
        raise DataError(f"cannot use the uploaded data {name!r}: {_one_line(err)}") from None
