"""OpenML loading through openml-python against a private copy of ../shared/openml-cache.

Two server set-ups are exercised:
- the cache's own layout (test server, ``org/openml/test``): items in the cache load offline;
- ``offline_cache``: the same files under the host ``test.openml.invalid`` (``.invalid`` never
  resolves, RFC 2606), so a cache miss is a real, deterministic connection failure even on a
  machine with internet access.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from metalearn.data.errors import DataError, MetaLearnError, OpenMLUnavailableError, TargetError
from metalearn.data.loading import load_dataset
from metalearn.data.openml_io import (
    TEST_SERVER,
    configure_openml,
    get_openml_task_info,
    load_openml_dataset,
    load_openml_task,
)
from metalearn.data.task import TaskKind

OFFLINE_SERVER = "https://test.openml.invalid/api/v1/xml"


@pytest.fixture()
def offline_cache(openml_cache: Path) -> Path:
    """The cache copy re-rooted for the unresolvable host test.openml.invalid."""
    (openml_cache / "invalid").mkdir()
    (openml_cache / "org" / "openml").rename(openml_cache / "invalid" / "openml")
    return openml_cache


def files_under(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def original_files(cache_subdir: Path) -> dict[str, bytes]:
    """The cache files (not the pickles openml-python adds next to them)."""
    return {k: v for k, v in files_under(cache_subdir).items() if not k.endswith((".pkl", ".pkl.py3"))}


def test_configure_detects_a_test_server_cache(openml_cache: Path) -> None:
    cfg = configure_openml(openml_cache)
    assert cfg.server == TEST_SERVER
    assert cfg.cache_dir == openml_cache / "org" / "openml" / "test"
    assert (
        configure_openml(openml_cache, server=OFFLINE_SERVER).cache_dir
        == openml_cache / "invalid" / "openml" / "test"
    )


def test_dataset_2_loads_from_the_cache(openml_cache: Path) -> None:
    ds = load_openml_dataset(2, cache_dir=openml_cache)
    assert ds.name == "anneal" and ds.origin == "openml:2" and ds.openml_id == 2
    assert ds.task.kind is TaskKind.MULTICLASS and ds.task.targets == ("class",)
    assert ds.n_rows == 898
    # 38 attributes; the six without a single value (m, marvi, corr, jurofm, s, p) are dropped
    assert ds.n_features == 32 and not {"m", "marvi", "corr", "jurofm", "s", "p"} & set(ds.X.columns)
    assert ds.n_categorical == 26 and int(ds.X.isna().sum().sum()) > 0
    assert set(ds.y["class"].cat.categories) == {"1", "2", "3", "5", "U"}
    again = load_openml_dataset(2, cache_dir=openml_cache)
    assert again.fingerprint == ds.fingerprint


def test_dataset_2_through_load_dataset_and_env(offline_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METALEARN_OPENML_CACHE", str(offline_cache))
    monkeypatch.setenv("METALEARN_OPENML_SERVER", OFFLINE_SERVER)
    ds = load_dataset("openml:2")
    assert ds.name == "anneal" and ds.n_rows == 898
    other = load_dataset("openml:2", target="shape")  # another column as target
    assert (
        other.task.targets == ("shape",) and other.task.kind is TaskKind.BINARY and "class" in other.X.columns
    )
    with pytest.raises(TargetError) as err:
        load_dataset("openml:2", target="clas")
    assert "did you mean 'class'" in str(err.value)


def test_missing_dataset_is_unavailable_and_the_cache_survives(offline_cache: Path) -> None:
    sub = offline_cache / "invalid" / "openml" / "test"
    before = original_files(sub)
    with pytest.raises(OpenMLUnavailableError) as err:
        load_openml_dataset(31, cache_dir=offline_cache, server=OFFLINE_SERVER)
    msg = str(err.value)
    assert "dataset 31" in msg and "not in the cache" in msg and "unreachable" in msg and "\n" not in msg
    assert isinstance(err.value, ConnectionError) and isinstance(err.value, MetaLearnError)
    # dataset 30 is partial (data file without description): openml-python would delete the folder
    with pytest.raises(OpenMLUnavailableError):
        load_openml_dataset(30, cache_dir=offline_cache, server=OFFLINE_SERVER)
    assert original_files(sub) == before
    assert not (sub / "datasets" / "31").exists()
    assert not any(p.name.startswith(".metalearn-keep") for p in sub.rglob("*"))


@pytest.mark.slow  # openml-python parses the 20,000-attribute ARFF: ~12 s
def test_too_small_cached_dataset_is_a_data_error(offline_cache: Path) -> None:
    with pytest.raises(DataError) as err:  # dataset -1 is a 2-row excerpt of dexter
        load_openml_dataset(-1, cache_dir=offline_cache, server=OFFLINE_SERVER)
    assert "dexter" in str(err.value) and "rows" in str(err.value)


def test_task_3_description_and_splits_load_offline(offline_cache: Path) -> None:
    info = get_openml_task_info(3, cache_dir=offline_cache, server=OFFLINE_SERVER)
    assert (info.task_id, info.dataset_id, info.target) == (3, 3, "class")
    assert info.task_type == "Supervised Classification" and info.kind is None
    assert info.estimation_procedure == "crossvalidation"
    splits = info.splits
    assert splits is not None and (splits.n_repeats, splits.n_folds, len(splits)) == (1, 10, 10)
    tests = np.concatenate([test for _, test in splits])
    assert len(tests) == len(np.unique(tests)) == 3196  # kr-vs-kp rows, each tested once
    for train, test in splits:
        assert not np.intersect1d(train, test).size and len(train) + len(test) == 3196


def test_task_3_full_load_needs_dataset_3(offline_cache: Path) -> None:
    sub = offline_cache / "invalid" / "openml" / "test"
    before = original_files(sub)
    with pytest.raises(OpenMLUnavailableError) as err:
        load_openml_task(3, cache_dir=offline_cache, server=OFFLINE_SERVER)
    assert "dataset 3 " in str(err.value)
    assert original_files(sub) == before  # the task folder is still there


def test_task_1882_loads_with_its_splits(offline_cache: Path) -> None:
    ds, splits = load_openml_task(1882, cache_dir=offline_cache, server=OFFLINE_SERVER)
    assert ds.name == "anneal" and ds.origin == "openml-task:1882" and ds.openml_id == 2
    assert (
        ds.fingerprint == load_openml_dataset(2, cache_dir=offline_cache, server=OFFLINE_SERVER).fingerprint
    )
    assert splits is not None and (splits.n_repeats, splits.n_folds) == (10, 10)
    for r in range(splits.n_repeats):
        tests = np.concatenate([splits.get(r, f)[1] for f in range(splits.n_folds)])
        assert np.array_equal(np.sort(tests), np.arange(ds.n_rows))
    train, test = splits.get(3, 7)
    assert train.max() < ds.n_rows and not np.intersect1d(train, test).size
    # stratified: every fold's test part holds the majority class in about its overall share
    y = ds.y["class"].astype(str).to_numpy()
    share = np.mean(y == "3")
    assert all(abs(np.mean(y[t] == "3") - share) < 0.05 for _, t in splits)
    with pytest.raises(MetaLearnError):
        splits.get(10, 0)


def test_missing_task_is_unavailable(offline_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sub = offline_cache / "invalid" / "openml" / "test"
    monkeypatch.setenv("METALEARN_OPENML_CACHE", str(offline_cache))
    monkeypatch.setenv("METALEARN_OPENML_SERVER", OFFLINE_SERVER)
    with pytest.raises(OpenMLUnavailableError) as err:
        load_dataset("openml-task:99")
    assert "task 99" in str(err.value) and "unreachable" in str(err.value)
    assert not (sub / "tasks" / "99").exists()
    ds = load_dataset("openml-task:1882", kind="multiclass", metric="accuracy")
    assert ds.task.metric == "accuracy"
