"""Shared fixtures. Corpus-dependent fixtures skip (with the reason) when ../shared is absent."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    return Path(os.environ.get("METALEARN_SHARED", REPO.parent / "shared"))


def corpus_path() -> Path:
    return Path(os.environ.get("METALEARN_CORPUS", shared_dir() / "corpus"))


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The corpus directory (manifest.csv + data/); skips when it is not on this machine."""
    path = corpus_path()
    if not (path / "manifest.csv").is_file():
        pytest.skip(f"corpus not found at {path} (set METALEARN_CORPUS or place ../shared beside the repo)")
    return path


@pytest.fixture(scope="session")
def suites_dir() -> Path:
    path = shared_dir() / "suites"
    if not path.is_dir():
        pytest.skip(f"suite definitions not found at {path}")
    return path


@pytest.fixture()
def openml_cache(tmp_path: Path) -> Path:
    """A private copy of ../shared/openml-cache (openml-python deletes cache folders on a miss)."""
    src = shared_dir() / "openml-cache"
    if not src.is_dir():
        pytest.skip(f"openml cache not found at {src}")
    dst = tmp_path / "openml-cache"
    shutil.copytree(src, dst)
    return dst


@pytest.fixture(scope="session")
def load_corpus(corpus_dir: Path):
    """``load_corpus(name)`` -> Dataset, cached per session."""
    from tasks.loading import Corpus

    corpus = Corpus(corpus_dir)
    cache: dict[str, object] = {}

    def _load(name: str):
        if name not in cache:
            cache[name] = corpus.load(name)
        return cache[name]

    return _load


@pytest.fixture(autouse=True, scope="session")
def _private_default_kb(tmp_path_factory: pytest.TempPathFactory):
    """Tests never touch the user's default KB: point METALEARN_KB at a session temp file."""
    old = os.environ.get("METALEARN_KB")
    os.environ["METALEARN_KB"] = str(tmp_path_factory.mktemp("kb") / "default.duckdb")
    yield
    if old is None:
        os.environ.pop("METALEARN_KB", None)
    else:
        os.environ["METALEARN_KB"] = old
