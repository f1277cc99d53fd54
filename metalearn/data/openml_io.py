"""OpenML datasets and tasks through openml-python, cache first.

The cache directory and server come from the arguments, else ``$METALEARN_OPENML_CACHE`` and
``$METALEARN_OPENML_SERVER``, else openml-python's own configuration. A cache that only holds the
test-server layout (``org/openml/test``, like ``../shared/openml-cache``) selects the test server
automatically, since openml-python picks the cache sub-folder from the server's host name.

openml-python deletes an item's cache folder when a lookup misses (e.g. offline with a partial
cache); the loaders here hard-link a backup of the folder first and put it back after a failure, so
a failed lookup never destroys cached data. Unreachable servers become
:class:`~metalearn.data.errors.OpenMLUnavailableError` ("not in the cache and openml.org is unreachable").
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from metalearn.data.dataset import Dataset
from metalearn.data.errors import (
    FileFormatError,
    InputError,
    NotFoundError,
    OpenMLUnavailableError,
    TargetError,
    option,
)
from metalearn.data.task import TaskKind
from metalearn.data.validation import normalize_targets, prepare_frame

CACHE_ENV = "METALEARN_OPENML_CACHE"
SERVER_ENV = "METALEARN_OPENML_SERVER"
PRODUCTION_SERVER = "https://www.openml.org/api/v1/xml"
TEST_SERVER = "https://test.openml.org/api/v1/xml"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OpenMLConfig:
    """Where openml-python reads and writes: the root cache directory and the server URL."""

    cache_root: Path
    server: str
    #: where the cache root came from: "argument" (e.g. --openml-cache), "env" or "default"
    cache_source: str = "default"

    @property
    def how_to_change_cache(self) -> str:
        """How the user points openml-python at another cache, in the words of how they chose this one."""
        if self.cache_source == "argument":
            return "point the cache directory you gave (--openml-cache)"
        if self.cache_source == "env":
            return f"set {CACHE_ENV}"
        return f"set {CACHE_ENV} (kb import-openml also takes --openml-cache)"

    @property
    def cache_dir(self) -> Path:
        """The server-specific cache folder (``ROOT/org/openml/www`` for openml.org), exactly as
        openml-python derives it (the port, if any, stays in the host part: ``localhost:8080``)."""
        host = urlparse(self.server).netloc
        return self.cache_root.joinpath(*reversed(host.split(".")))


def _cache_subdir(root: Path, server: str) -> Path:
    return OpenMLConfig(root, server).cache_dir


def configure_openml(cache_dir: str | Path | None = None, server: str | None = None) -> OpenMLConfig:
    """Point openml-python at a cache and a server (process-wide) and return the choice.

    ``cache_dir`` is the ROOT cache directory (the one holding ``org/openml/...``).
    """
    import openml

    root_text = cache_dir if cache_dir is not None else os.environ.get(CACHE_ENV)
    root = Path(root_text).expanduser() if root_text else Path(openml.config._root_cache_directory)
    url = server or os.environ.get(SERVER_ENV)
    if not url:
        configured = str(openml.config.server)
        if (
            root_text
            and not _cache_subdir(root, configured).is_dir()
            and _cache_subdir(root, TEST_SERVER).is_dir()
        ):
            url = TEST_SERVER  # a test-server cache (like ../shared/openml-cache)
        else:
            url = configured
    openml.config.set_root_cache_directory(str(root))
    openml.config.server = url
    openml.config.connection_n_retries = 1
    source = "argument" if cache_dir is not None else "env" if root_text else "default"
    return OpenMLConfig(root, url, source)


# ------------------------------------------------------------------------------- error translation


def is_network_error(err: BaseException) -> bool:
    """Whether an openml-python failure ``err`` is the network's (a host that does not resolve, a refused
    connection, a timeout) rather than the server's answer or a bad cache."""
    import requests
    import urllib3

    return isinstance(
        err,
        requests.exceptions.ConnectionError
        | requests.exceptions.Timeout
        | urllib3.exceptions.HTTPError
        | ConnectionError
        | TimeoutError,
    )


def _short(err: BaseException) -> str:
    text = " ".join(str(err).split())
    if "Failed to resolve" in text or "Name or service not known" in text:
        return "host name does not resolve"
    if "Connection refused" in text:
        return "connection refused"
    return (text[:160] + "...") if len(text) > 160 else text or type(err).__name__


def translate_openml_error(err: BaseException, what: str, cfg: OpenMLConfig) -> BaseException:
    """A metalearn error for an openml-python failure while fetching ``what`` (e.g. 'dataset 31')."""
    from openml.exceptions import OpenMLPrivateDatasetError, OpenMLServerException

    host = urlparse(cfg.server).netloc or cfg.server
    if is_network_error(err):
        return OpenMLUnavailableError(
            f"OpenML {what} is not in the cache at {str(cfg.cache_dir)!r} and {host} is unreachable "
            f"({_short(err)}); connect to the internet or {cfg.how_to_change_cache} to a cache that holds it"
        )
    if isinstance(err, OpenMLPrivateDatasetError):
        return InputError(
            f"OpenML {what} is private on {host}; use a public dataset or an API key with access"
        )
    if isinstance(err, OpenMLServerException):
        return NotFoundError(
            f"OpenML {what} does not exist on {host} (server said: {_short(err)}); check the id"
        )
    return FileFormatError(f"cannot read OpenML {what} from the cache ({type(err).__name__}: {_short(err)})")


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


@contextlib.contextmanager
def _preserve(folder: Path) -> Iterator[None]:
    """Put ``folder`` back if the body fails and openml-python removed or emptied it; remove the
    empty folder a failed lookup leaves behind when there was none before."""
    if not folder.is_dir() or not any(folder.iterdir()):
        existed = folder.is_dir()
        try:
            yield
        except BaseException:
            if not existed and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
            raise
        return
    keep = Path(tempfile.mkdtemp(prefix=".metalearn-keep-", dir=folder.parent))
    backup = keep / folder.name
    shutil.copytree(folder, backup, copy_function=_link_or_copy)
    try:
        yield
    except BaseException:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        if not folder.exists():
            shutil.move(str(backup), str(folder))
        raise
    finally:
        shutil.rmtree(keep, ignore_errors=True)


# ----------------------------------------------------------------------------------------- datasets


def _fetch_dataset(did: int, cfg: OpenMLConfig) -> Any:
    import openml

    folder = cfg.cache_dir / "datasets" / str(did)
    try:
        with _preserve(folder):
            return openml.datasets.get_dataset(
                did, download_data=True, download_qualities=False, download_features_meta_data=False
            )
    except Exception as err:
        raise translate_openml_error(err, f"dataset {did}", cfg) from None


def load_openml_dataset(
    did: int,
    target: str | Sequence[str] | None = None,
    cache_dir: str | Path | None = None,
    server: str | None = None,
    kind: str | TaskKind | None = None,
    metric: str | None = None,
) -> Dataset:
    """OpenML dataset ``did`` with its default target (or ``target``), as a validated Dataset.

    Row-id and ignored attributes are dropped, as OpenML prescribes, and so are feature columns
    without a single value (anneal has six).
    """
    did = int(did)
    cfg = configure_openml(cache_dir, server)
    ds = _fetch_dataset(did, cfg)
    if target is None:
        default = ds.default_target_attribute
        if not default:
            raise TargetError(f"OpenML dataset {did} ({ds.name}) has no default target; pass {option('target', 'NAME')}")
        targets = normalize_targets(str(default))
    else:
        targets = normalize_targets(target)
    try:
        frame, _, _, _ = ds.get_data(target=None)
    except Exception as err:
        raise translate_openml_error(err, f"dataset {did} data", cfg) from None
    return prepare_frame(
        frame,
        targets,
        kind=kind,
        metric=metric,
        name=str(ds.name),
        origin=f"openml:{did}",
        openml_id=did,
        drop_empty_features=True,
    )


# -------------------------------------------------------------------------------------------- tasks


@dataclass(frozen=True, eq=False)
class OpenMLSplits:
    """An OpenML task's resampling: ``pairs[r * n_folds + f]`` = (train rows, test rows) of
    repeat ``r`` and fold ``f``; row numbers index the task's dataset rows (0-based)."""

    task_id: int
    n_repeats: int
    n_folds: int
    pairs: tuple[tuple[np.ndarray, np.ndarray], ...]

    def __len__(self) -> int:
        return len(self.pairs)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return iter(self.pairs)

    def get(self, repeat: int = 0, fold: int = 0) -> tuple[np.ndarray, np.ndarray]:
        if not (0 <= repeat < self.n_repeats and 0 <= fold < self.n_folds):
            raise InputError(
                f"task {self.task_id} has {self.n_repeats} repeat(s) x {self.n_folds} fold(s); "
                f"repeat {repeat} / fold {fold} is out of range"
            )
        return self.pairs[repeat * self.n_folds + fold]


@dataclass(frozen=True)
class OpenMLTaskInfo:
    """What an OpenML task says, without its dataset: id, dataset id, target, type, splits."""

    task_id: int
    dataset_id: int
    target: str
    task_type: str
    kind: TaskKind | None  # None when the task type is neither classification nor regression
    evaluation_measure: str | None
    estimation_procedure: str | None
    splits: OpenMLSplits | None


def _convert_split(tid: int, split: Any) -> OpenMLSplits:
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    n_repeats = len(split.split)
    n_folds = len(split.split[0]) if n_repeats else 0
    for r in range(n_repeats):
        for f in range(n_folds):
            samples = split.split[r][f]
            train, test = samples[max(samples)]  # learning-curve tasks: the full-size sample
            pairs.append((np.asarray(train, dtype=np.int64), np.asarray(test, dtype=np.int64)))
    return OpenMLSplits(task_id=tid, n_repeats=n_repeats, n_folds=n_folds, pairs=tuple(pairs))


def get_openml_task_info(
    tid: int,
    cache_dir: str | Path | None = None,
    server: str | None = None,
    with_splits: bool = True,
) -> OpenMLTaskInfo:
    """The description (and, when available, the splits) of OpenML task ``tid``, no dataset needed."""
    from openml.tasks import OpenMLSupervisedTask, TaskType
    from openml.tasks import functions as task_functions

    tid = int(tid)
    cfg = configure_openml(cache_dir, server)
    folder = cfg.cache_dir / "tasks" / str(tid)
    try:
        with _preserve(folder):
            task = task_functions._get_task_description(tid)
    except Exception as err:
        raise translate_openml_error(err, f"task {tid}", cfg) from None
    if not isinstance(task, OpenMLSupervisedTask):
        raise InputError(
            f"OpenML task {tid} is a {task.task_type} task; metalearn handles supervised classification "
            "and regression tasks only"
        )
    splits: OpenMLSplits | None = None
    if with_splits:
        try:
            with _preserve(folder):
                splits = _convert_split(tid, task.download_split())
        except Exception as err:  # splits are optional: a task without cached splits still loads
            log.warning(
                "splits of OpenML task %d unavailable: %s", tid, translate_openml_error(err, f"task {tid} splits", cfg)
            )
    # classification: binary or multiclass is decided from the data; other supervised types: None
    kind = TaskKind.REGRESSION if task.task_type_id is TaskType.SUPERVISED_REGRESSION else None
    return OpenMLTaskInfo(
        task_id=tid,
        dataset_id=int(task.dataset_id),
        target=str(task.target_name),
        task_type=str(task.task_type),
        kind=kind,
        evaluation_measure=task.evaluation_measure,
        estimation_procedure=(task.estimation_procedure or {}).get("type"),
        splits=splits,
    )


def load_openml_task(
    tid: int,
    cache_dir: str | Path | None = None,
    server: str | None = None,
) -> tuple[Dataset, OpenMLSplits | None]:
    """OpenML task ``tid``: its dataset with the task's target, and its train/test splits (None when
    the split file is neither cached nor downloadable). A classification task's target is always a
    class target (binary or multiclass), a regression task's a regression target."""
    info = get_openml_task_info(tid, cache_dir=cache_dir, server=server)
    kind: TaskKind | None = info.kind
    dataset = load_openml_dataset(
        info.dataset_id, target=info.target, cache_dir=cache_dir, server=server, kind=kind
    )
    if kind is None and dataset.task.kind is TaskKind.REGRESSION:  # integer classes > 20: still classes
        dataset = load_openml_dataset(
            info.dataset_id, target=info.target, cache_dir=cache_dir, server=server, kind=TaskKind.MULTICLASS
        )
    dataset = Dataset(
        name=dataset.name,
        X=dataset.X,
        y=dataset.y,
        task=dataset.task,
        categorical=dataset.categorical,
        origin=f"openml-task:{info.task_id}",
        openml_id=dataset.openml_id,
        fingerprint=dataset.fingerprint,
    )
    splits = info.splits
    if splits is not None:
        top = max(int(max(p[0].max(initial=-1), p[1].max(initial=-1))) for p in splits.pairs)
        if top >= dataset.n_rows:
            raise InputError(
                f"OpenML task {tid} splits refer to row {top} but dataset {info.dataset_id} has "
                f"{dataset.n_rows} rows; the cached split file does not match the dataset"
            )
    return dataset, splits
