"""Benchmark suite definitions and their resolution against the corpus."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from metalearn.data.errors import FileFormatError, NotFoundError, OpenMLUnavailableError
from metalearn.data.loading import Corpus
from metalearn.data.suites import Suite, SuiteEntry, load_suite, resolve_in_corpus


def test_openml_cc18(suites_dir: Path) -> None:
    suite = load_suite("openml-cc18", suites_dir)
    assert suite.name == "openml-cc18" and len(suite) == 72
    assert suite.source.endswith("openml_cc18.csv")
    assert len(set(suite.dids)) == 72
    by_did = {e.did: e for e in suite}
    assert by_did[3].name == "kr-vs-kp" and by_did[6].name == "letter"
    # sizes and task types come from openml_task_metadata.csv where it covers the dataset
    assert by_did[3].n == 3196 and by_did[3].p == 37 and by_did[3].task_type == "Supervised Classification"
    assert sum(e.n is not None for e in suite) >= 60
    assert load_suite("cc18", suites_dir).dids == suite.dids


def test_automl_benchmark(suites_dir: Path) -> None:
    suite = load_suite("amlb", suites_dir)
    assert suite.name == "amlb" and len(suite) == 104
    assert all(e.tid is not None and e.n and e.p for e in suite)
    kinds = {e.task_type for e in suite}
    assert kinds == {"Supervised Classification", "Supervised Regression"}
    assert sum(e.task_type == "Supervised Regression" for e in suite) == 33
    assert load_suite("automl-benchmark", suites_dir).dids == suite.dids


def test_suites_are_held_out_of_the_corpus(suites_dir: Path, corpus_dir: Path) -> None:
    """The suites are the benchmark: none of their datasets may be in the meta-training corpus."""
    corpus = Corpus(corpus_dir)
    for name, size in (("openml-cc18", 72), ("amlb", 104)):
        found, missing = resolve_in_corpus(load_suite(name, suites_dir), corpus)
        assert len(found) + len(missing) == size
        assert found == [], f"{name} datasets leaked into the corpus: {[(e.did, n) for e, n in found]}"


def test_custom_suite_csv_resolves_against_the_corpus(tmp_path: Path, corpus_dir: Path) -> None:
    manifest = pd.read_csv(corpus_dir / "manifest.csv").dropna(subset=["openml_did"])
    picked = manifest.drop_duplicates("openml_did").head(5)
    rows = [{"did": int(d), "name": n} for d, n in zip(picked["openml_did"], picked["name"], strict=True)]
    rows += [
        {"did": 999_999_001, "name": "not-in-corpus"},
        {"did": int(picked["openml_did"].iloc[0]), "name": "dup"},
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "mine.csv", index=False)
    suite = load_suite(tmp_path / "mine.csv")
    assert suite.name == "mine" and len(suite) == 6  # the repeated did is kept once
    found, missing = resolve_in_corpus(suite, corpus_dir)
    assert [(e.did, n) for e, n in found] == [(r["did"], r["name"]) for r in rows[:5]]
    assert [e.did for e in missing] == [999_999_001]
    ds = Corpus(corpus_dir).load(found[0][1])
    assert ds.openml_id == found[0][0].did


def test_bad_suite_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pd.DataFrame({"id": [1, 2]}).to_csv(tmp_path / "nodid.csv", index=False)
    with pytest.raises(FileFormatError) as err:
        load_suite(tmp_path / "nodid.csv")
    assert "'did'" in str(err.value)
    pd.DataFrame({"did": [1, "x"]}).to_csv(tmp_path / "baddid.csv", index=False)
    with pytest.raises(FileFormatError) as err:
        load_suite(tmp_path / "baddid.csv")
    assert "row 3" in str(err.value)
    with pytest.raises(NotFoundError) as err:
        load_suite("openml-cc19")
    assert "openml-cc18" in str(err.value) and "amlb" in str(err.value)
    # no suite file and no reachable server (.invalid never resolves): a clear OpenML error
    monkeypatch.setenv("METALEARN_OPENML_SERVER", "https://www.openml.invalid/api/v1/xml")
    monkeypatch.setenv("METALEARN_OPENML_CACHE", str(tmp_path / "cache"))
    with pytest.raises(OpenMLUnavailableError) as err:
        load_suite("openml-cc18", suites_dir=tmp_path / "empty")
    assert "openml-cc18" in str(err.value) and "METALEARN_SUITES" in str(err.value)


def test_suite_dataclasses_are_frozen() -> None:
    entry = SuiteEntry(did=3, name="kr-vs-kp")
    suite = Suite("s", (entry,))
    with pytest.raises(AttributeError):
        entry.did = 4  # type: ignore[misc]
    assert list(suite) == [entry] and suite.dids == (3,)
