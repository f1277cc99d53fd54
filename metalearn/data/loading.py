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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
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
)
from metalearn.data.task import TaskKind
from metalearn.data.validation import normalize_targets, prepare_frame

#: File name endings :func:`load_frame_file` understands.
SUPPORTED_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".parquet", ".pq", ".arff", ".arff.gz")

#: Environment variable naming the corpus directory.
CORPUS_ENV = "METALEARN_CORPUS"


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


def _stem(path: Path) -> str:
    name = path.name
    lower = name.lower()
    for suffix in sorted(SUPPORTED_SUFFIXES, key=len, reverse=True):
        if lower.endswith(suffix):
            return name[: -len(suffix)] or name
    return path.stem


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


def load_frame_file(path: str | Path) -> pd.DataFrame:
    """Read a ``.csv`` (``.csv.gz``, ``.tsv``), ``.parquet`` / ``.pq`` or ``.arff`` file as it is.

    Raises :class:`DataFileNotFoundError` when the file does not exist and
    :class:`FileFormatError` for an unknown extension or content the parser rejects.
    """
    path = Path(path).expanduser()
    fmt = _format_of(path)
    if not path.exists():
        raise DataFileNotFoundError(f"data file {str(path)!r} does not exist; check the path")
    if path.is_dir():
        raise FileFormatError(f"{str(path)!r} is a directory, not a data file; give the file inside it")
    try:
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
        raise FileFormatError(
            f"cannot parse {fmt.upper()} file {path.name!r}: not UTF-8 text ({_one_line(err)})"
        ) from None
    except MemoryError:
        raise
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
        text = arff.dumps({"relation": relation or _stem(path), "attributes": attributes, "data": rows})
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
    targets = normalize_targets(target)
    df = load_frame_file(path)
    if categorical:
        missing = [c for c in categorical if c not in df.columns]
        if missing:
            raise InputError(f"categorical column(s) {missing} not found in {path.name!r}; check the names")
        df = df.copy()
        for c in categorical:
            if c not in targets and not isinstance(df[c].dtype, pd.CategoricalDtype):
                df[c] = _integral_labels(df[c])
    return prepare_frame(
        df, targets, kind=kind, metric=metric, name=name or _stem(path), origin=f"file:{path}"
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
        targets = normalize_targets(target) if target is not None else list(e.targets)
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
    targets = normalize_targets(target) if target is not None else target_cols
    use_kind = kind if kind is not None else (default_kind if target is None else None)
    return prepare_frame(frame, targets, kind=use_kind, metric=metric, name=key, origin=f"sklearn:{key}")


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
            raise TargetError("an OpenML task fixes its target; drop --target or load openml:DID instead")
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
        raise TargetError(f"loading the file {text!r} needs a target column; pass --target NAME")
    return load_file(path, target, kind=kind, metric=metric)
