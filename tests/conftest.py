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
    from metalearn.data.loading import Corpus

    corpus = Corpus(corpus_dir)
    cache: dict[str, object] = {}

    def _load(name: str):
        if name not in cache:
            cache[name] = corpus.load(name)
        return cache[name]

    return _load


@pytest.fixture(scope="session")
def mini_corpus(corpus_dir: Path):
    """``mini_corpus(dst, rows)``: a corpus-format directory at ``dst`` built from real corpus files.

    Each row is ``{"name", "copy_of", "openml_did"}`` (a copy of a corpus dataset under a new name and
    OpenML id) or has ``"content"`` instead (the bytes of the parquet file; None: no file at all).
    """
    import pandas as pd

    manifest = pd.read_csv(corpus_dir / "manifest.csv").set_index("name")

    def _make(dst: Path, rows: list[dict]) -> Path:
        (dst / "data").mkdir(parents=True)
        out = []
        for row in rows:
            base = manifest.loc[row["copy_of"]].to_dict()
            file = f"data/{row['name']}.parquet"
            if "content" in row:
                if row["content"] is not None:
                    (dst / file).write_bytes(row["content"])
            else:
                shutil.copy(corpus_dir / base["file"], dst / file)
            out.append({**base, "name": row["name"], "file": file, "openml_did": row.get("openml_did")})
        pd.DataFrame(out).to_csv(dst / "manifest.csv", index=False)
        return dst

    return _make


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


def run_cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    """``metalearn ARGV`` in-process: (exit code, stdout, stderr)."""
    import gc

    from metalearn.cli import main

    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    gc.collect()  # the command's KB connection is garbage: release the file before the next command
    return code, out, err
