"""Loading datasets: data files (CSV / TSV / parquet / ARFF), the corpus, scikit-learn's bundled
datasets, OpenML, and :func:`load_dataset` which resolves a one-string spec to any of them.

Everything goes through :func:`metalearn.data.validation.prepare_frame`, so a dataset loaded from any source
has the same dtypes, checks and content fingerprint: the same table saved as CSV, parquet or ARFF
loads with an equal ``Dataset.fingerprint`` (CSV cannot store that integer-coded columns are
categorical: pass ``categorical=[...]`` to :func:`load_file` for those).
"""

from __future__ import annotations

import difflib
import gzip
import io
import json
import math
import os
import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from metalearn.data.dataset import Dataset
from metalearn.data.errors import (
    DataFileNotFoundError,
    FileFormatError,
    InputError,
    NotFoundError,
    TargetError,
    TaskKindError,
    option,
)
from metalearn.data.task import TaskKind
from metalearn.data.validation import normalize_targets, prepare_frame

#: File name endings :func:`load_frame_file` understands.
SUPPORTED_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".parquet", ".pq", ".arff", ".arff.gz")

#: Environment variable naming the corpus directory.
CORPUS_ENV = "METALEARN_CORPUS"

#: Environment variable bounding what a compressed data file (``.gz``, parquet) may expand to, in MiB
#: (``0``: no bound); :func:`load_frame_file` refuses a larger file before building its table.
MAX_DECOMPRESSED_ENV = "METALEARN_MAX_DECOMPRESSED_MB"
#: The bound when ``METALEARN_MAX_DECOMPRESSED_MB`` is not set. Parsing needs up to ~13x the text in
#: memory (600 MiB of '0,0,...' took 7.8 GB), so this keeps a small file's worst case near 7 GB.
DEFAULT_MAX_DECOMPRESSED_MB = 512
_MIB = 1024 * 1024
_BLOCK = _MIB


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return (text[:300] + "...") if len(text) > 300 else (text or type(err).__name__)


def _format_of(path: Path) -> str:
    name = path.name.lower()
    for suffix in SUPPORTED_SUFFIXES:
        if name.endswith(suffix):
            return suffix.removesuffix(".gz").lstrip(".").replace("pq", "parquet")
    raise FileFormatError(
        f"cannot read {path.name!r}: unknown file type; supported endings are {', '.join(SUPPORTED_SUFFIXES)}"
    )


def data_file_stem(path: Path) -> str:
    """A data file's name without its data ending (``train.csv.gz`` -> ``train``, ``a.b.parquet`` -> ``a.b``): the
    name its dataset gets when none is given."""
    name = path.name
    lower = name.lower()
    for suffix in sorted(SUPPORTED_SUFFIXES, key=len, reverse=True):
        if lower.endswith(suffix):
            return name[: -len(suffix)] or name
    return path.stem


# -------------------------------------------------------------------------------------------- limits


class DataTooLargeError(FileFormatError):
    """A data file exceeds a read limit (decompressed size, rows, columns, values) or the memory."""

    http_status = 413


def _size_text(n: int) -> str:
    return f"{n // _MIB} MiB" if n >= _MIB and n % _MIB == 0 else f"{n} bytes"


@dataclass(frozen=True)
class ReadLimits:
    """Bounds :func:`load_frame_file` checks while it streams a file, before the table is built.

    ``max_bytes`` bounds what a compressed file (``.gz``, parquet) expands to; ``max_rows``,
    ``max_columns`` and ``max_cells`` (rows x columns) the table. ``None``: no bound. ``advice`` maps
    ``"bytes"``/``"rows"``/``"columns"``/``"cells"`` to the end of the message (how to change the limit).
    """

    max_bytes: int | None = None
    max_rows: int | None = None
    max_columns: int | None = None
    max_cells: int | None = None
    advice: dict[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def from_env(cls) -> ReadLimits:
        """The command line's bound: ``$METALEARN_MAX_DECOMPRESSED_MB`` MiB (default 512; 0: none)."""
        raw = os.environ.get(MAX_DECOMPRESSED_ENV, "").strip()
        try:
            mb = float(raw) if raw else float(DEFAULT_MAX_DECOMPRESSED_MB)
        except ValueError:
            raise InputError(
                f"{MAX_DECOMPRESSED_ENV}={raw!r} is not a number; set it to a size in MiB (0: no limit)"
            ) from None
        if not math.isfinite(mb) or mb < 0:
            raise InputError(f"{MAX_DECOMPRESSED_ENV}={raw!r} must be a size in MiB >= 0 (0: no limit)")
        if mb == 0:
            return cls()
        limit = int(mb * _MIB)
        return cls(
            max_bytes=limit,
            advice={
                "bytes": f"the limit is {MAX_DECOMPRESSED_ENV}={raw or DEFAULT_MAX_DECOMPRESSED_MB}; "
                f"set it higher (in MiB, 0: no limit) to read this file"
            },
        )

    @property
    def counts_shape(self) -> bool:
        return self.max_rows is not None or self.max_columns is not None or self.max_cells is not None

    def _advice(self, key: str, limit: int) -> str:
        return self.advice.get(key) or f"at most {limit} are accepted"

    def check_bytes(self, name: str, n: int, exact: bool = True) -> None:
        if self.max_bytes is not None and n > self.max_bytes:
            what = f"more than {_size_text(self.max_bytes)}" if exact else f"about {_size_text(n)}"
            advice = self.advice.get("bytes") or f"at most {_size_text(self.max_bytes)} is accepted"
            raise DataTooLargeError(f"{name!r} decompresses to {what}; {advice}")

    def check_shape(
        self, name: str, rows: int, columns: int, rows_final: bool = True, columns_final: bool = True
    ) -> None:
        """Refuse ``rows`` x ``columns`` (lower bounds while the file streams: not ``*_final``)."""
        least_rows = "" if rows_final else "at least "
        least_columns = "" if columns_final else "at least "
        if self.max_columns is not None and columns > self.max_columns:
            raise DataTooLargeError(
                f"{name!r} has {least_columns}{columns} columns; {self._advice('columns', self.max_columns)}"
            )
        if self.max_rows is not None and rows > self.max_rows:
            raise DataTooLargeError(
                f"{name!r} has {least_rows}{rows} rows; {self._advice('rows', self.max_rows)}"
            )
        if self.max_cells is not None and rows * columns > self.max_cells:
            least = least_rows or least_columns
            raise DataTooLargeError(
                f"{name!r} has {least}{rows} rows x {columns} columns = {rows * columns} values; "
                f"{self._advice('cells', self.max_cells)}"
            )


def _blocks(path: Path, limits: ReadLimits) -> Iterator[bytes]:
    """The file's bytes (decompressed for ``.gz``) in blocks; the decompressed size is bounded."""
    gz = path.name.lower().endswith(".gz")
    total = 0
    try:
        with gzip.open(path, "rb") if gz else path.open("rb") as src:
            while block := src.read(_BLOCK):
                total += len(block)
                if gz:
                    limits.check_bytes(path.name, total)
                yield block
    except (OSError, EOFError, zlib.error) as err:
        what = "decompress" if gz else "read"
        raise FileFormatError(f"cannot {what} {path.name!r}: {_one_line(err)}") from None


class _CsvShape:
    """Counts the records and the header's fields of CSV text fed in blocks, without parsing it.

    Quote-aware (a separator or newline between double quotes does not count), blank lines are
    skipped as pandas does; a ``,`` header without commas falls back to ``;`` / tab like ``_read_csv``.
    """

    def __init__(self, sep: str) -> None:
        self.codes = [ord(s) for s in ([sep, ";", "\t"] if sep == "," else [sep])]
        self.header_seps = [0] * len(self.codes)  # separators of the header read so far
        self.header_done = False
        self.quoted = False  # inside a quoted field at the end of what was fed
        self.records = 0  # non-blank records ended so far, the header included
        self.partial = 0  # bytes of the record being read
        self.last_cr = False  # the last byte fed was '\r'

    @property
    def rows(self) -> int:
        return max(self.records - 1, 0)

    @property
    def columns(self) -> int:
        first = self.header_seps[0]
        if self.header_done and first == 0:
            other = next((n for n in self.header_seps[1:] if n), 0)
            return other + 1
        return first + 1  # while the header streams: a lower bound

    def feed(self, block: bytes) -> None:
        a = np.frombuffer(block, dtype=np.uint8)
        if not a.size:
            return
        outside: np.ndarray | None = None
        quote = a == 34
        if self.quoted or quote.any():
            inside = np.bitwise_xor.accumulate(quote) ^ self.quoted
            outside = ~inside
            self.quoted = bool(inside[-1])
        newline = a == 10
        if outside is not None:
            newline &= outside
        ends = np.flatnonzero(newline)
        if ends.size:
            starts = np.concatenate(([0], ends[:-1] + 1))
            lengths = ends - starts
            lengths[0] += self.partial
            cr = np.zeros(ends.size, dtype=bool)
            cr[ends > 0] = a[ends[ends > 0] - 1] == 13
            cr[0] = cr[0] if ends[0] > 0 else self.last_cr
            nonblank = (lengths - cr) > 0
            self.records += int(np.count_nonzero(nonblank))
            self.partial = int(a.size - ends[-1] - 1)
            if not self.header_done and nonblank.any():
                self._count_header(a[: ends[int(np.argmax(nonblank))]], outside)
                self.header_done = True
        else:
            self.partial += int(a.size)
        if not self.header_done:
            self._count_header(a, outside)
        self.last_cr = bool(a[-1] == 13)

    def _count_header(self, part: np.ndarray, outside: np.ndarray | None) -> None:
        for i, code in enumerate(self.codes):
            hit = part == code
            if outside is not None:
                hit &= outside[: part.size]
            self.header_seps[i] += int(np.count_nonzero(hit))

    def finish(self) -> None:
        if self.partial > int(self.last_cr):  # a last record without a newline
            self.records += 1
        self.header_done = True


class _ArffShape:
    """Counts ARFF attributes (columns) and data lines (rows) of text fed in blocks."""

    def __init__(self) -> None:
        self.in_data = False
        self.header_done = False  # (the attributes end where the data starts)
        self.columns = 0
        self.rows = 0
        self.head = b""  # the start of the line being read (enough to classify it)

    def feed(self, block: bytes) -> None:
        lines = block.split(b"\n")
        for line in lines[:-1]:
            self._line((self.head + line[:64]) if self.head else line[:64])
            self.head = b""
        self.head = (self.head + lines[-1][:64])[:64]

    def _line(self, start: bytes) -> None:
        text = start.strip().lower()
        if self.in_data:
            self.rows += bool(text) and not text.startswith(b"%")
        elif text.startswith(b"@attribute"):
            self.columns += 1
        elif text.startswith(b"@data"):
            self.in_data = self.header_done = True

    def finish(self) -> None:
        if self.head:
            self._line(self.head)
            self.head = b""


#: In-memory width of parquet's physical types (variable-length values: a pointer at least).
_PARQUET_WIDTH = {"BOOLEAN": 1, "INT32": 4, "FLOAT": 4, "INT64": 8, "DOUBLE": 8, "INT96": 12}


def _check_parquet(path: Path, limits: ReadLimits) -> None:
    """Refuse a parquet file whose metadata declares too many rows, columns or decompressed bytes."""
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path).metadata
    except Exception:  # not parquet at all: the reader reports it
        return
    limits.check_shape(path.name, meta.num_rows, meta.num_columns)
    if limits.max_bytes is None:
        return
    size = 0
    for i in range(meta.num_row_groups):
        group = meta.row_group(i)
        for j in range(group.num_columns):
            col = group.column(j)
            width = _PARQUET_WIDTH.get(col.physical_type, 8)
            size += max(int(col.total_uncompressed_size), group.num_rows * width)
        limits.check_bytes(path.name, size, exact=False)


def _check_limits(path: Path, fmt: str, limits: ReadLimits) -> None:
    """Stream the file once (bounded memory) and refuse it if it breaks ``limits``."""
    if fmt == "parquet":
        if limits.counts_shape or limits.max_bytes is not None:
            _check_parquet(path, limits)
        return
    gz = path.name.lower().endswith(".gz")
    if not limits.counts_shape and not (gz and limits.max_bytes is not None):
        return
    shape: _CsvShape | _ArffShape | None = None
    if limits.counts_shape:
        shape = _ArffShape() if fmt == "arff" else _CsvShape("\t" if fmt == "tsv" else ",")
    for block in _blocks(path, limits):
        if shape is not None:
            shape.feed(block)
            limits.check_shape(path.name, shape.rows, shape.columns, False, shape.header_done)
    if shape is not None:
        shape.finish()
        limits.check_shape(path.name, shape.rows, shape.columns)


# --------------------------------------------------------------------------------------------- files


def _read_csv(path: Path, sep: str) -> pd.DataFrame:
    df = pd.read_csv(path, sep=sep, float_precision="round_trip", low_memory=False)
    if df.shape[1] == 1 and sep == ",":  # a ';' or tab separated file saved as .csv
        header = str(df.columns[0])
        for other in (";", "\t"):
            if other in header:
                sep = other
                df = pd.read_csv(path, sep=sep, float_precision="round_trip", low_memory=False)
                break
    return _with_file_header(path, sep, df)


_MANGLED = re.compile(r"(.+)\.\d+")


def _with_file_header(path: Path, sep: str, df: pd.DataFrame) -> pd.DataFrame:
    """pandas silently renames repeated header names ('a', 'a' -> 'a', 'a.1'); put the file's names
    back so validation reports the duplicates instead of treating them as two distinct features."""
    names = {str(c) for c in df.columns}
    # pandas renames the second 'a' to 'a.1' (the third to 'a.2' ...): only then can the header repeat
    if not any(m and m.group(1) in names for m in (_MANGLED.fullmatch(n) for n in names)):
        return df
    raw = pd.read_csv(path, sep=sep, header=None, nrows=1, dtype=str, keep_default_na=False)
    header = [str(v) for v in raw.iloc[0].tolist()] if len(raw) else []
    named = [h for h in header if h != ""]
    if len(header) != df.shape[1] or len(set(named)) == len(named):
        return df
    df.columns = [h if h != "" else str(c) for h, c in zip(header, df.columns, strict=True)]
    return df


def _read_parquet(path: Path) -> pd.DataFrame:
    """Read parquet, restoring ``category`` dtype where the pandas metadata records it.

    pyarrow stores a categorical column with integer categories as plain integers (only string
    dictionaries come back as categories); the pandas metadata still says ``categorical``.
    """
    import pyarrow.parquet as pq

    df = pd.read_parquet(path)
    metadata = pq.read_schema(path).metadata or {}
    try:
        columns = json.loads(metadata[b"pandas"])["columns"] if b"pandas" in metadata else []
    except (ValueError, KeyError, TypeError):
        columns = []
    restore = {
        col.get("name")
        for col in columns
        if col.get("pandas_type") == "categorical"
        and col.get("name") in df.columns
        and not isinstance(df[col.get("name")].dtype, pd.CategoricalDtype)
    }
    if not restore or df.columns.has_duplicates:
        return df
    return pd.DataFrame({c: df[c].astype("category") if c in restore else df[c] for c in df.columns})


def _arff_text(path: Path) -> str:
    raw = gzip.decompress(path.read_bytes()) if path.name.lower().endswith(".gz") else path.read_bytes()
    return raw.decode("utf-8", errors="replace")


def _read_arff(path: Path) -> pd.DataFrame:
    import arff  # liac-arff, a dependency of openml

    try:
        decoded = arff.load(io.StringIO(_arff_text(path)))
    except arff.ArffException as err:
        raise FileFormatError(f"cannot parse ARFF file {path.name!r}: {_one_line(err)}") from None
    attributes: list[tuple[str, object]] = decoded["attributes"]
    rows = decoded["data"]  # dense rows, also for sparse ARFF ({index value, ...} lines)
    names = [str(a[0]) for a in attributes]
    columns: dict[str, pd.Series] = {}
    raw = pd.DataFrame(rows, columns=names, dtype=object) if rows else pd.DataFrame(columns=names)
    for name, kind in attributes:
        col = raw[name]
        if isinstance(kind, list | tuple):  # nominal: declared values, in declared order
            categories = [str(v) for v in kind]
            values = col.map(lambda v: None if v is None else str(v))
            columns[name] = pd.Series(pd.Categorical(values, categories=categories), name=name)
        elif str(kind).upper() in ("NUMERIC", "REAL", "INTEGER"):
            columns[name] = pd.to_numeric(col, errors="coerce").astype(np.float64)
        else:  # STRING / DATE
            columns[name] = col.map(lambda v: np.nan if v is None else str(v)).astype("string")
    return pd.DataFrame(columns, columns=names)


def encoding_hint(head: bytes) -> str | None:
    """What bytes that are not UTF-8 text most likely are, from their first bytes, and what to do: gzip
    content under a plain name, or UTF-16 text (None: no idea)."""
    if head[:2] == b"\x1f\x8b":
        return "gzip-compressed content under a plain name: name it .csv.gz (or .tsv.gz), or decompress it"
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "UTF-16 text (it starts with a UTF-16 byte-order mark): save it as UTF-8"
    return None


def load_frame_file(path: str | Path, limits: ReadLimits | None = None) -> pd.DataFrame:
    """Read a ``.csv`` (``.csv.gz``, ``.tsv``), ``.parquet`` / ``.pq`` or ``.arff`` file as it is.

    ``limits`` (default: :meth:`ReadLimits.from_env`, the ``$METALEARN_MAX_DECOMPRESSED_MB`` bound) are
    checked while the file streams, before the table is built. Raises :class:`DataFileNotFoundError`
    when the file does not exist, :class:`DataTooLargeError` beyond a limit (or the memory) and
    :class:`FileFormatError` for an unknown extension or content the parser rejects.
    """
    path = Path(path).expanduser()
    if path.is_dir():  # before its name's ending is judged
        raise FileFormatError(f"{str(path)!r} is a directory, not a data file; give the file inside it")
    fmt = _format_of(path)
    if not path.exists():
        raise DataFileNotFoundError(f"data file {str(path)!r} does not exist; check the path")
    limits = ReadLimits.from_env() if limits is None else limits
    try:
        _check_limits(path, fmt, limits)
        if fmt in ("csv", "tsv"):
            return _read_csv(path, "\t" if fmt == "tsv" else ",")
        if fmt == "parquet":
            return _read_parquet(path)
        return _read_arff(path)
    except (FileFormatError, DataFileNotFoundError):
        raise
    except pd.errors.EmptyDataError:
        raise FileFormatError(f"{path.name!r} is empty: no header and no rows") from None
    except UnicodeDecodeError as err:
        with path.open("rb") as f:
            hint = encoding_hint(f.read(4))
        raise FileFormatError(
            f"cannot parse {fmt.upper()} file {path.name!r}: "
            + (hint if hint else f"not UTF-8 text ({_one_line(err)}); save it as UTF-8")
        ) from None
    except MemoryError:  # pyarrow's ArrowMemoryError too
        raise DataTooLargeError(
            f"not enough memory to read {path.name!r} ({_size_text(path.stat().st_size)} on disk); "
            "subsample it or use a machine with more memory"
        ) from None
    except Exception as err:
        raise FileFormatError(
            f"cannot parse {fmt.upper()} file {path.name!r}: {_one_line(err)}; check that it is a valid {fmt} file"
        ) from None


def _arff_value(v: object) -> object:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return None
    return v


def write_frame_file(df: pd.DataFrame, path: str | Path, relation: str | None = None) -> Path:
    """Write ``df`` as CSV / TSV / parquet / ARFF (chosen by the file ending), readable by
    :func:`load_frame_file` with the same values. ARFF stores ``category`` columns as nominal."""
    path = Path(path).expanduser()
    fmt = _format_of(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt in ("csv", "tsv"):
        df.to_csv(path, sep="\t" if fmt == "tsv" else ",", index=False)
    elif fmt == "parquet":
        df.to_parquet(path, index=False)
    else:
        import arff

        attributes: list[tuple[str, object]] = []
        data: dict[str, list[object]] = {}
        for col in df.columns:
            s = df[col]
            if isinstance(s.dtype, pd.CategoricalDtype):
                attributes.append((str(col), [str(c) for c in s.cat.categories]))
                data[str(col)] = [None if pd.isna(v) else str(v) for v in s.astype(object)]
            elif pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
                attributes.append((str(col), "REAL"))
                data[str(col)] = [
                    _arff_value(v) for v in s.to_numpy(dtype=np.float64, na_value=np.nan).tolist()
                ]
            else:
                attributes.append((str(col), "STRING"))
                data[str(col)] = [None if pd.isna(v) else str(v) for v in s.astype(object)]
        rows = [list(r) for r in zip(*data.values(), strict=True)] if data else []
        text = arff.dumps({"relation": relation or data_file_stem(path), "attributes": attributes, "data": rows})
        payload = text.encode("utf-8")
        path.write_bytes(gzip.compress(payload) if path.name.lower().endswith(".gz") else payload)
    return path


def load_file(
    path: str | Path,
    target: str | Sequence[str],
    kind: str | TaskKind | None = None,
    metric: str | None = None,
    name: str | None = None,
    categorical: Sequence[str] | None = None,
) -> Dataset:
    """Load a data file holding features and target column(s) as a validated :class:`Dataset`.

    ``categorical`` names integer-coded feature columns to treat as categories (CSV cannot say so).
    """
    path = Path(path).expanduser()
    normalize_targets(target)  # a missing target is said before the file is read
    df = load_frame_file(path)
    targets = normalize_targets(target, df.columns)
    if categorical:
        missing = [c for c in categorical if c not in df.columns]
        if missing:
            raise InputError(f"categorical column(s) {missing} not found in {path.name!r}; check the names")
        df = df.copy()
        for c in categorical:
            if c not in targets and not isinstance(df[c].dtype, pd.CategoricalDtype):
                df[c] = _integral_labels(df[c])
    return prepare_frame(
        df, targets, kind=kind, metric=metric, name=name or data_file_stem(path), origin=f"file:{path}"
    )


def _integral_labels(s: pd.Series) -> pd.Series:
    """A column as ``category``; integral numbers become integer labels (``3.0`` -> ``"3"``)."""
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        arr = s.to_numpy(dtype=np.float64, na_value=np.nan)
        finite = arr[~np.isnan(arr)]
        if np.all(np.mod(finite, 1.0) == 0.0):
            return pd.Series(pd.array(arr, dtype="Float64").astype("Int64"), index=s.index).astype("category")
    return s.astype("category")


# -------------------------------------------------------------------------------------------- corpus


@dataclass(frozen=True)
class CorpusEntry:
    """One row of the corpus ``manifest.csv``."""

    name: str
    kind: TaskKind
    targets: tuple[str, ...]
    file: Path
    openml_did: int | None = None
    synthetic: bool = False
    collection: str = ""
    origin: str = ""
    n_rows: int = 0
    n_features: int = 0
    n_categorical: int = 0
    n_missing: int = 0


def _opt_int(v: object) -> int | None:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v == "":
        return None
    return int(float(v))  # type: ignore[arg-type]


class Corpus:
    """The dataset corpus: ``manifest.csv`` plus ``data/*.parquet`` (see the corpus README).

    When the manifest names a dataset twice, the LAST row wins (it describes the file that was
    written last); the shadowed rows are kept in :attr:`shadowed` so callers can report them.
    """

    REQUIRED = ("name", "kind", "targets", "file")

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        manifest = self.path / "manifest.csv"
        if not manifest.is_file():
            raise DataFileNotFoundError(
                f"no corpus at {str(self.path)!r} (manifest.csv missing); "
                f"set {CORPUS_ENV} or pass the corpus directory"
            )
        try:
            df = pd.read_csv(manifest, dtype={"name": str, "file": str, "targets": str})
        except Exception as err:
            raise FileFormatError(f"cannot parse {str(manifest)!r}: {_one_line(err)}") from None
        missing = [c for c in self.REQUIRED if c not in df.columns]
        if missing:
            raise FileFormatError(
                f"{str(manifest)!r} lacks column(s) {missing}; it needs {list(self.REQUIRED)}"
            )
        self._entries: dict[str, CorpusEntry] = {}
        self.shadowed: list[CorpusEntry] = []
        for row in df.to_dict("records"):
            entry = self._entry_from_row(row, manifest)
            if entry.name in self._entries:
                self.shadowed.append(self._entries.pop(entry.name))
            self._entries[entry.name] = entry
        self._by_did: dict[int, str] = {}
        for e in self._entries.values():
            if e.openml_did is not None:
                self._by_did.setdefault(e.openml_did, e.name)

    def _entry_from_row(self, row: dict[str, object], manifest: Path) -> CorpusEntry:
        name = str(row["name"])
        try:
            targets = json.loads(str(row["targets"]))
            if isinstance(targets, str):
                targets = [targets]
            kind = TaskKind(str(row["kind"]).strip())
        except (ValueError, TypeError) as err:
            raise FileFormatError(
                f"{str(manifest)!r}: bad targets or kind for {name!r} ({_one_line(err)}); "
                "targets must be a JSON list and kind one of " + ", ".join(TaskKind)
            ) from None
        synthetic = row.get("synthetic", False)
        return CorpusEntry(
            name=name,
            kind=kind,
            targets=tuple(str(t) for t in targets),
            file=self.path / str(row["file"]),
            openml_did=_opt_int(row.get("openml_did")),
            synthetic=str(synthetic).strip().lower() in ("true", "1", "yes"),
            collection=str(row.get("collection", "") or ""),
            origin=str(row.get("origin", "") or ""),
            n_rows=_opt_int(row.get("n_rows")) or 0,
            n_features=_opt_int(row.get("n_features")) or 0,
            n_categorical=_opt_int(row.get("n_categorical")) or 0,
            n_missing=_opt_int(row.get("n_missing")) or 0,
        )

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __repr__(self) -> str:
        return f"Corpus({str(self.path)!r}, {len(self)} datasets)"

    def names(self, kind: str | TaskKind | None = None) -> list[str]:
        """Dataset names in manifest order, optionally only those of one task kind."""
        if kind is None:
            return list(self._entries)
        try:
            want = TaskKind(str(kind))
        except ValueError:
            raise TaskKindError(f"unknown task kind {kind!r}; use one of: {', '.join(TaskKind)}") from None
        return [n for n, e in self._entries.items() if e.kind is want]

    def entries(self) -> list[CorpusEntry]:
        return list(self._entries.values())

    def entry(self, name: str) -> CorpusEntry:
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self._entries), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise NotFoundError(
                f"no dataset {name!r} in the corpus at {str(self.path)!r}{hint} "
                f"(it has {len(self)} datasets; list them with Corpus.names())"
            ) from None

    def by_openml_id(self, did: int) -> str | None:
        """The name of the corpus dataset with OpenML dataset id ``did``, or None."""
        return self._by_did.get(int(did))

    def load(
        self,
        name: str,
        target: str | Sequence[str] | None = None,
        kind: str | TaskKind | None = None,
        metric: str | None = None,
    ) -> Dataset:
        """Load a corpus dataset (targets and kind from the manifest unless overridden)."""
        e = self.entry(name)
        if not e.file.is_file():
            raise DataFileNotFoundError(
                f"corpus file {str(e.file)!r} of {name!r} is missing; restore the corpus data directory"
            )
        df = load_frame_file(e.file)
        targets = normalize_targets(target, df.columns) if target is not None else list(e.targets)
        absent = [t for t in targets if t not in df.columns]
        if absent and target is None:
            raise TargetError(
                f"corpus manifest lists target(s) {absent} for {name!r} but {e.file.name} has no such "
                "column; the manifest row is stale, fix or drop it"
            )
        use_kind = kind if kind is not None else (e.kind if target is None else None)
        return prepare_frame(
            df,
            targets,
            kind=use_kind,
            metric=metric,
            name=name,
            origin=f"corpus:{name}",
            openml_id=e.openml_did,
            kind_source="given" if kind is not None else "listed by the corpus manifest",
        )


def default_corpus_dir(corpus: str | Path | None = None) -> Path:
    """The corpus directory: the argument, else ``$METALEARN_CORPUS``, else ``../shared/corpus``."""
    if corpus is not None:
        return Path(corpus).expanduser()
    env = os.environ.get(CORPUS_ENV)
    if env:
        return Path(env).expanduser()
    return Path.cwd().parent / "shared" / "corpus"


# ----------------------------------------------------------------------------------------- sklearn

#: scikit-learn datasets bundled with the library (no download): name -> (loader name, kind).
SKLEARN_DATASETS: dict[str, tuple[str, TaskKind]] = {
    "iris": ("load_iris", TaskKind.MULTICLASS),
    "wine": ("load_wine", TaskKind.MULTICLASS),
    "breast_cancer": ("load_breast_cancer", TaskKind.BINARY),
    "digits": ("load_digits", TaskKind.MULTICLASS),
    "diabetes": ("load_diabetes", TaskKind.REGRESSION),
    "linnerud": ("load_linnerud", TaskKind.MULTITARGET),
}


def load_sklearn(
    name: str,
    target: str | Sequence[str] | None = None,
    kind: str | TaskKind | None = None,
    metric: str | None = None,
) -> Dataset:
    """One of scikit-learn's bundled datasets: iris, wine, breast_cancer, digits, diabetes, linnerud.

    Class targets carry the class names (iris: setosa / versicolor / virginica) where sklearn has them.
    """
    key = name.strip().lower().replace("-", "_")
    if key not in SKLEARN_DATASETS:
        raise NotFoundError(
            f"unknown scikit-learn dataset {name!r}; choose one of: {', '.join(SKLEARN_DATASETS)}"
        )
    import sklearn.datasets

    loader_name, default_kind = SKLEARN_DATASETS[key]
    bunch = getattr(sklearn.datasets, loader_name)(as_frame=True)
    frame: pd.DataFrame = bunch.frame.copy()
    target_cols = (
        [str(c) for c in bunch.target.to_frame().columns]
        if isinstance(bunch.target, pd.Series)
        else [str(c) for c in bunch.target.columns]
    )
    if default_kind.is_classification and len(target_cols) == 1:
        labels = np.asarray(getattr(bunch, "target_names", []))
        codes = frame[target_cols[0]].to_numpy()
        if labels.size and labels.dtype.kind in "USO" and codes.max() < labels.size:
            frame[target_cols[0]] = pd.Categorical.from_codes(codes, categories=[str(v) for v in labels])
    targets = normalize_targets(target, frame.columns) if target is not None else target_cols
    use_kind = kind if kind is not None else (default_kind if target is None else None)
    return prepare_frame(frame, targets, kind=use_kind, metric=metric, name=key, origin=f"sklearn:{key}",
                         kind_source="given" if kind is not None else f"scikit-learn's {key} is documented")


# ------------------------------------------------------------------------------------------- specs


def _int_id(text: str, what: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise InputError(f"{what} must be an integer id, got {text!r} (e.g. openml:31)") from None


def load_dataset(
    spec: str | Path,
    target: str | Sequence[str] | None = None,
    kind: str | TaskKind | None = None,
    metric: str | None = None,
    corpus: str | Path | None = None,
) -> Dataset:
    """Resolve a dataset spec: ``sklearn:NAME``, ``openml:DID``, ``openml-task:TID``,
    ``corpus:NAME`` or a file path (a file needs ``target``).

    The corpus directory comes from ``corpus``, ``$METALEARN_CORPUS`` or ``../shared/corpus``.
    """
    text = str(spec).strip()
    scheme, sep, rest = text.partition(":")
    scheme = scheme.lower() if sep else ""
    if scheme == "sklearn":
        return load_sklearn(rest, target=target, kind=kind, metric=metric)
    if scheme == "corpus":
        return Corpus(default_corpus_dir(corpus)).load(rest, target=target, kind=kind, metric=metric)
    if scheme == "openml":
        from metalearn.data.openml_io import load_openml_dataset

        return load_openml_dataset(_int_id(rest, "openml:DID"), target=target, kind=kind, metric=metric)
    if scheme in ("openml-task", "openml_task"):
        from metalearn.data.openml_io import load_openml_task

        if target is not None:
            raise TargetError("an OpenML task fixes its target; give no target, or load openml:DID instead")
        dataset, _splits = load_openml_task(_int_id(rest, "openml-task:TID"))
        if kind is not None or metric is not None:
            from metalearn.data.kinds import infer_task

            dataset = dataset.with_task(infer_task(dataset.y, kind=kind, metric=metric))
        return dataset
    path = Path(text).expanduser()
    if not path.exists():
        raise DataFileNotFoundError(
            f"{text!r} is neither an existing file nor a dataset spec; use sklearn:NAME, openml:DID, "
            "openml-task:TID, corpus:NAME or a path to a data file"
        )
    if target is None:
        raise TargetError(f"loading the file {text!r} needs a target column; pass {option('target', 'NAME')}")
    return load_file(path, target, kind=kind, metric=metric)
