"""Benchmark suites: OpenML-CC18 and the AutoML Benchmark, or any CSV with a ``did`` column.

Suite files live in ``../shared/suites`` (or ``$METALEARN_SUITES`` / the ``suites_dir`` argument):
``openml_cc18.csv`` (did, name), ``automl_benchmark.csv`` (name, tid, did, ttype, n, p) and
``openml_task_metadata.csv`` (task id, type and size per dataset, used to complete CC18 entries).
When a suite file is absent the definition is fetched with openml-python (study 99 for CC18,
269 + 271 for the AutoML Benchmark); offline that raises :class:`OpenMLUnavailableError`.

The suites are the held-out benchmark: :func:`resolve_in_corpus` tells which of their datasets the
corpus holds (by OpenML dataset id), so evaluation can refuse to benchmark on training data.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from metalearn.data.errors import (
    DataFileNotFoundError,
    FileFormatError,
    NotFoundError,
    OpenMLUnavailableError,
)
from metalearn.data.loading import Corpus, default_corpus_dir

SUITES_ENV = "METALEARN_SUITES"

#: Known suites: canonical name -> (file name, OpenML study ids).
KNOWN_SUITES: dict[str, tuple[str, tuple[int, ...]]] = {
    "openml-cc18": ("openml_cc18.csv", (99,)),
    "amlb": ("automl_benchmark.csv", (269, 271)),
}
_ALIASES = {
    "openml-cc18": "openml-cc18",
    "openml_cc18": "openml-cc18",
    "cc18": "openml-cc18",
    "amlb": "amlb",
    "automl-benchmark": "amlb",
    "automl_benchmark": "amlb",
}
METADATA_FILE = "openml_task_metadata.csv"


@dataclass(frozen=True)
class SuiteEntry:
    """One dataset of a suite: OpenML dataset id and name, task id and type, rows n, features p."""

    did: int
    name: str = ""
    tid: int | None = None
    task_type: str | None = None
    n: int | None = None
    p: int | None = None


@dataclass(frozen=True)
class Suite:
    """A named, ordered collection of suite entries; ``source`` says where it was read from."""

    name: str
    entries: tuple[SuiteEntry, ...]
    source: str = ""

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[SuiteEntry]:
        return iter(self.entries)

    @property
    def dids(self) -> tuple[int, ...]:
        return tuple(e.did for e in self.entries)


def _opt_int(v: Any) -> int | None:
    if v is None or v == "" or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return None
    try:
        return int(float(v))
    except (TypeError, ValueError):
        return None


def _opt_str(v: Any) -> str | None:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    text = str(v).strip()
    return text or None


def default_suites_dir(suites_dir: str | Path | None = None) -> Path:
    """The suites directory: the argument, else ``$METALEARN_SUITES``, else ``../shared/suites``."""
    if suites_dir is not None:
        return Path(suites_dir).expanduser()
    env = os.environ.get(SUITES_ENV)
    return Path(env).expanduser() if env else Path.cwd().parent / "shared" / "suites"


def _first(row: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if k in row and _opt_str(row[k]) is not None:
            return row[k]
    return None


def read_suite_csv(path: str | Path, name: str | None = None, metadata: pd.DataFrame | None = None) -> Suite:
    """A suite from a CSV with at least a ``did`` column (optional: name, tid, ttype/task_type, n, p).

    ``metadata`` (rows of ``openml_task_metadata.csv``) fills in missing name / type / n / p by did
    (not the task id: the metadata's task on a dataset need not be the suite's task).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataFileNotFoundError(f"suite file {str(path)!r} does not exist; check the path")
    try:
        df = pd.read_csv(path)
    except Exception as err:
        raise FileFormatError(
            f"cannot parse suite file {path.name!r}: {' '.join(str(err).split())}"
        ) from None
    df.columns = [str(c).strip().lower() for c in df.columns]
    if "did" not in df.columns:
        raise FileFormatError(
            f"suite file {path.name!r} has no 'did' column (columns: {list(df.columns)}); "
            "it needs one OpenML dataset id per row"
        )
    meta: dict[int, dict[str, Any]] = {}
    if metadata is not None and "did" in metadata.columns:
        for row in metadata.to_dict("records"):
            did = _opt_int(row.get("did"))
            if did is not None:
                meta.setdefault(did, row)
    entries: list[SuiteEntry] = []
    seen: set[int] = set()
    for i, row in enumerate(df.to_dict("records")):
        did = _opt_int(row.get("did"))
        if did is None:
            raise FileFormatError(
                f"suite file {path.name!r} row {i + 2}: 'did' is not an integer ({row.get('did')!r})"
            )
        if did in seen:
            continue
        seen.add(did)
        m = meta.get(did, {})
        entries.append(
            SuiteEntry(
                did=did,
                name=_opt_str(_first(row, "name", "dataset", "dataset_name"))
                or _opt_str(m.get("name"))
                or "",
                tid=_opt_int(_first(row, "tid", "task_id")),  # metadata tids may be other tasks
                task_type=_opt_str(_first(row, "ttype", "task_type")) or _opt_str(m.get("task_type")),
                n=_opt_int(_first(row, "n", "n_rows")) or _opt_int(m.get("NumberOfInstances")),
                p=_opt_int(_first(row, "p", "n_features")) or _opt_int(m.get("NumberOfFeatures")),
            )
        )
    return Suite(name=name or path.stem, entries=tuple(entries), source=str(path))


def _suite_from_openml(name: str, study_ids: tuple[int, ...]) -> Suite:
    """Fetch a suite definition with openml-python (needs network or a cache holding it)."""
    import openml

    from metalearn.data.openml_io import PRODUCTION_SERVER, SERVER_ENV, configure_openml, is_network_error

    cfg = configure_openml(server=os.environ.get(SERVER_ENV) or PRODUCTION_SERVER)
    entries: list[SuiteEntry] = []
    seen: set[int] = set()
    try:
        for sid in study_ids:
            suite = openml.study.get_suite(sid)
            tids = list(suite.tasks or [])
            listed = openml.tasks.list_tasks(task_id=tids, output_format="dataframe") if tids else None
            tasks = listed if isinstance(listed, pd.DataFrame) else pd.DataFrame()
            for row in tasks.to_dict("records"):
                did = _opt_int(row.get("did"))
                if did is None or did in seen:
                    continue
                seen.add(did)
                entries.append(
                    SuiteEntry(
                        did=did,
                        name=str(row.get("name", "")),
                        tid=_opt_int(row.get("tid")),
                        task_type=_opt_str(row.get("task_type")),
                        n=_opt_int(row.get("NumberOfInstances")),
                        p=_opt_int(row.get("NumberOfFeatures")),
                    )
                )
    except Exception as err:
        if is_network_error(err):
            raise OpenMLUnavailableError(
                f"suite {name!r} has no local definition file and {cfg.server} is unreachable; "
                f"place the suite CSVs in a directory and set {SUITES_ENV} to it"
            ) from None
        raise
    return Suite(name=name, entries=tuple(entries), source=f"openml:study/{'+'.join(map(str, study_ids))}")


def load_suite(name_or_path: str | Path, suites_dir: str | Path | None = None) -> Suite:
    """``openml-cc18`` / ``cc18``, ``amlb`` / ``automl-benchmark``, or a path to a suite CSV."""
    text = str(name_or_path).strip()
    canonical = _ALIASES.get(text.lower())
    if canonical is None:
        path = Path(text).expanduser()
        if path.is_file() or path.suffix.lower() == ".csv":
            return read_suite_csv(path)
        raise NotFoundError(
            f"unknown suite {text!r}; use openml-cc18, amlb or the path to a CSV with a 'did' column"
        )
    file_name, study_ids = KNOWN_SUITES[canonical]
    directory = default_suites_dir(suites_dir)
    path = directory / file_name
    if not path.is_file():
        return _suite_from_openml(canonical, study_ids)
    metadata = None
    if (directory / METADATA_FILE).is_file():
        try:
            metadata = pd.read_csv(directory / METADATA_FILE)
        except Exception:
            metadata = None
    return read_suite_csv(path, name=canonical, metadata=metadata)


def with_task_ids(suite: Suite) -> Suite:
    """``suite`` with the OpenML task ids its local definition lacks (OpenML-CC18's CSV lists datasets
    only) filled in from its OpenML study, matched by dataset id. Needs network (or an openml cache
    holding the study); unchanged for suites that are not OpenML studies or already have every id."""
    known = KNOWN_SUITES.get(suite.name)
    if known is None or all(e.tid is not None for e in suite.entries):
        return suite
    try:
        fetched = _suite_from_openml(suite.name, known[1])
    except OpenMLUnavailableError:
        missing = sum(1 for e in suite.entries if e.tid is None)
        raise OpenMLUnavailableError(
            f"{missing} datasets of suite {suite.name!r} have no task id in {suite.source or 'its definition'} "
            f"and OpenML (study {'+'.join(map(str, known[1]))}) is unreachable to look them up; "
            "connect to the internet or give the task ids (a suite CSV with a tid column)"
        ) from None
    remote = {e.did: e.tid for e in fetched.entries}
    entries = tuple(e if e.tid is not None else replace(e, tid=remote.get(e.did)) for e in suite.entries)
    return Suite(name=suite.name, entries=entries, source=suite.source)


def resolve_in_corpus(
    suite: Suite, corpus: Corpus | str | Path | None = None
) -> tuple[list[tuple[SuiteEntry, str]], list[SuiteEntry]]:
    """Split the suite into entries whose OpenML dataset is in the corpus (with the corpus name)
    and entries that are not, matching on the manifest's ``openml_did``."""
    if not isinstance(corpus, Corpus):
        corpus = Corpus(default_corpus_dir(corpus))
    found: list[tuple[SuiteEntry, str]] = []
    missing: list[SuiteEntry] = []
    for entry in suite.entries:
        name = corpus.by_openml_id(entry.did)
        if name is None:
            missing.append(entry)
        else:
            found.append((entry, name))
    return found, missing
