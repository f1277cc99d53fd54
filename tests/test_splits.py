"""CV and holdout splitters on real corpus data: partitions, stratification, determinism, rare classes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold
from sklearn.model_selection import KFold, StratifiedKFold

from metalearn.data.errors import DataError, InputError
from metalearn.data.splits import cv_splits, duplicate_groups, holdout_split, make_splitter, plan_splits
from metalearn.data.task import Task, TaskKind

B, MC, R = TaskKind.BINARY, TaskKind.MULTICLASS, TaskKind.REGRESSION


@pytest.fixture(scope="module")
def load(load_corpus):
    """``load(name)`` -> Dataset from the shared corpus (skips when the corpus is absent)."""
    return load_corpus


def assert_partition(folds: list[tuple[np.ndarray, np.ndarray]], n: int) -> None:
    tests = np.concatenate([te for _, te in folds])
    assert sorted(tests.tolist()) == list(range(n)), "every row is in exactly one test fold"
    for tr, te in folds:
        assert len(np.intersect1d(tr, te)) == 0
        assert len(tr) + len(te) == n
        assert tr.dtype == te.dtype == np.int64


def class_counts(y: np.ndarray, idx: np.ndarray) -> pd.Series:
    return pd.Series(y[idx]).value_counts()


def test_stratified_binary_and_multiclass(load) -> None:
    for name in ("sonar", "page_blocks", "glass"):
        ds = load(name)
        folds = cv_splits(ds, 5, seed=0)
        assert len(folds) == 5
        assert_partition(folds, ds.n_rows)
        y = ds.y.iloc[:, 0].astype(str).to_numpy()
        total = pd.Series(y).value_counts()
        for _, te in folds:
            counts = class_counts(y, te).reindex(total.index, fill_value=0)
            expected = total * len(te) / ds.n_rows
            assert (counts - expected).abs().max() <= 1.0 + 1e-9, f"{name}: per-fold class counts off by > 1"


def test_stratified_matches_sklearn_and_is_deterministic(load) -> None:
    ds = load("glass")
    y = ds.y.iloc[:, 0].astype(str).to_numpy()
    ref = list(StratifiedKFold(5, shuffle=True, random_state=3).split(np.zeros(len(y)), y))
    got = cv_splits(ds, 5, seed=3)
    for (a_tr, a_te), (b_tr, b_te) in zip(ref, got, strict=True):
        assert np.array_equal(np.sort(a_te), b_te) and np.array_equal(np.sort(a_tr), b_tr)
    again = cv_splits((ds.X, ds.y, ds.task), 5, seed=3)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(got, again, strict=True))
    other = cv_splits(ds, 5, seed=4)
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(got, other, strict=True))


def test_multilabel_iterative_stratification(load) -> None:
    for name, bound in (("emotions", 0.015), ("yeast", 0.035)):  # 6 and 14 labels
        ds = load(name)
        folds = cv_splits(ds, 5, seed=0)
        assert len(folds) == 5
        assert_partition(folds, ds.n_rows)
        Y = ds.y.to_numpy(dtype=int)
        overall = Y.mean(axis=0)

        def dev(
            fs: list[tuple[np.ndarray, np.ndarray]], Y: np.ndarray = Y, o: np.ndarray = overall
        ) -> np.ndarray:
            return np.array([np.abs(Y[te].mean(axis=0) - o) for _, te in fs])

        iterative = dev(folds)
        plain = dev(list(KFold(5, shuffle=True, random_state=0).split(Y)))
        assert iterative.max() < bound, name
        assert iterative.max() < plain.max() and iterative.mean() < 0.7 * plain.mean(), name
        assert isinstance(make_splitter(ds.task, 5, 0), MultilabelStratifiedKFold)
        assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, cv_splits(ds, 5, seed=0), strict=True))


def test_regression_and_multitarget_use_shuffled_kfold(load) -> None:
    for name in ("uci_housing", "enb"):
        ds = load(name)
        folds = cv_splits(ds, 4, seed=1)
        assert len(folds) == 4
        assert_partition(folds, ds.n_rows)
        assert plan_splits(ds.task, ds.y, 4).strategy == "kfold"
        te = folds[0][1]
        assert te.max() - te.min() > len(te) * 1.5, "shuffled, not contiguous blocks"
        assert isinstance(make_splitter(ds.task, 4, 1), KFold)


def test_multitask_stratifies_on_first_class_target(load) -> None:
    base = load("penguins")
    df = pd.concat([base.X, base.y], axis=1).dropna(subset=["sex"]).reset_index(drop=True)
    y = pd.DataFrame(
        {
            "body_mass_g": df["body_mass_g"].astype(float),
            "species": df["target"].astype(int).astype("category"),
        }
    )
    task = Task(TaskKind.MULTITASK, ("body_mass_g", "species"), (R, MC))
    X = df.drop(columns=["body_mass_g", "target"])
    assert plan_splits(task, y, 5).strategy == "stratified"
    assert isinstance(make_splitter(task, 5, 0), StratifiedKFold)
    folds = cv_splits((X, y, task), 5, seed=0)
    assert_partition(folds, len(y))
    sp = y["species"].astype(str).to_numpy()
    total = pd.Series(sp).value_counts()
    for _, te in folds:
        exp = total * len(te) / len(sp)
        assert (class_counts(sp, te).reindex(total.index, fill_value=0) - exp).abs().max() <= 1.0 + 1e-9
    reg_only = Task(TaskKind.MULTITASK, ("body_mass_g", "flipper_length_mm"), (R, R))
    assert plan_splits(reg_only, df[["body_mass_g", "flipper_length_mm"]], 5).strategy == "kfold"


def test_rare_classes_reduce_folds_with_a_reason(load) -> None:
    ds = load("lymphography")  # classes of 2, 4, 61, 81 members
    plan = plan_splits(ds.task, ds.y, 5)
    assert plan.n_splits == 2 and plan.requested == 5
    assert plan.reason == "2 folds instead of 5: the smallest class has only 2 members"
    folds = cv_splits(ds, 5, seed=0)
    assert len(folds) == 2
    assert_partition(folds, ds.n_rows)
    y = ds.y.iloc[:, 0].astype(str).to_numpy()
    for _, te in folds:  # every class (incl. the 2-member one) is in every test fold
        assert set(np.unique(y[te])) == set(np.unique(y))


def test_singleton_class_still_works(load) -> None:
    ds = load("lymphography")
    y = ds.y.iloc[:, 0].astype(str)
    rare = y.value_counts().idxmin()
    keep = np.setdiff1d(np.arange(ds.n_rows), np.flatnonzero(y.to_numpy() == rare)[:1])
    y1 = ds.y.iloc[keep].reset_index(drop=True)
    plan = plan_splits(ds.task, y1, 5)
    assert plan.n_splits == 4 and "4 members" in plan.reason  # the singleton does not force 1 fold
    folds = cv_splits((ds.X.iloc[keep], y1, ds.task), 5, seed=0)
    assert len(folds) == 4
    assert_partition(folds, len(keep))
    tr, te = holdout_split(ds.task, y1, 0.3, seed=0)
    assert len(tr) + len(te) == len(keep) and len(np.intersect1d(tr, te)) == 0
    assert abs(len(te) - round(0.3 * len(keep))) <= 1


def test_degenerate_inputs(load) -> None:
    ds = load("iris")
    few = ds.y.iloc[[0, 1, 50, 51, 100, 101, 102]].reset_index(drop=True)  # 2-3 rows per class
    plan = plan_splits(ds.task, few, 5)
    assert plan.n_splits == 2
    one_each = ds.y.iloc[[0, 50, 100]].reset_index(drop=True)  # no class has 2 members
    plan = plan_splits(ds.task, one_each, 5)
    assert plan.strategy == "kfold" and plan.n_splits == 3 and "only 3 rows" in plan.reason
    assert_partition(cv_splits((one_each, one_each, ds.task), 5, 0), 3)
    with pytest.raises(InputError, match="n_splits"):
        cv_splits(ds, 1)
    with pytest.raises(DataError, match="at least 2 rows"):
        cv_splits((ds.X.iloc[:1], ds.y.iloc[:1], ds.task), 5)
    with pytest.raises(InputError, match="rows"):
        cv_splits((ds.X.iloc[:10], ds.y, ds.task), 5)
    with pytest.raises(InputError):
        cv_splits((ds.X, ds.y), 5)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="test_size"):
        holdout_split(ds.task, ds.y, 1.5)


def test_holdout_split(load) -> None:
    ds = load("page_blocks")  # 5 classes, imbalanced
    tr, te = holdout_split(ds.task, ds.y, 0.33, seed=0)
    assert len(te) == round(0.33 * ds.n_rows) and len(tr) + len(te) == ds.n_rows
    assert len(np.intersect1d(tr, te)) == 0
    y = ds.y.iloc[:, 0].astype(str).to_numpy()
    total = pd.Series(y).value_counts()
    exp = total * len(te) / ds.n_rows
    assert (class_counts(y, te).reindex(total.index, fill_value=0) - exp).abs().max() <= 1.0 + 1e-9
    tr2, te2 = holdout_split(ds.task, ds.y, 0.33, seed=0)
    assert np.array_equal(te, te2) and np.array_equal(tr, tr2)
    assert not np.array_equal(te, holdout_split(ds.task, ds.y, 0.33, seed=1)[1])

    ml = load("emotions")
    tr, te = holdout_split(ml.task, ml.y, 0.25, seed=0)
    assert len(tr) + len(te) == ml.n_rows and len(te) == round(0.25 * ml.n_rows)
    Y = ml.y.to_numpy(dtype=int)
    assert np.abs(Y[te].mean(0) - Y.mean(0)).max() < 0.04

    reg = load("uci_housing")
    tr, te = holdout_split(reg.task, reg.y, 0.2, seed=0)
    assert len(te) == round(0.2 * reg.n_rows)


def _repeated(ds, copies: int, extra: int):  # the rows ``copies`` times, the first ``extra`` once more, shuffled
    from metalearn.data.validation import prepare_frame

    frame = pd.concat([ds.X, ds.y], axis=1)
    rows = pd.concat([frame] * copies + [frame.iloc[:extra]], ignore_index=True)
    rows = rows.sample(frac=1.0, random_state=0).reset_index(drop=True)
    return prepare_frame(rows, list(ds.y.columns), name=f"{ds.name}_repeated")


def test_repeated_rows_keep_their_copies_in_one_fold_on_request(load) -> None:
    """``group_repeats`` with at least 5 % of the rows repeating another: every copy of a row in the same fold
    (CV, stratified or not, and a holdout split), the folds still a partition and still stratified."""
    for name in ("sonar", "1030_ERA"):
        ds = _repeated(load(name), 2, 20)
        groups = duplicate_groups(ds.X, ds.y)
        assert groups is not None and np.unique(groups).size == pd.concat([ds.X, ds.y], axis=1).drop_duplicates().shape[0]
        assert any(set(groups[tr]) & set(groups[te]) for tr, te in cv_splits(ds, 5, seed=0))  # not asked: apart
        folds = cv_splits(ds, 5, seed=0, group_repeats=True)
        assert_partition(folds, ds.n_rows)
        for tr, te in folds:
            assert not set(groups[tr]) & set(groups[te])
        tr, te = holdout_split(ds.task, ds.y, 0.33, seed=0, groups=groups)
        assert not set(groups[tr]) & set(groups[te]) and abs(len(te) / ds.n_rows - 0.33) < 0.05
        if ds.task.kind is B:
            y = ds.y.iloc[:, 0].astype(str).to_numpy()
            share = (y == y[0]).mean()
            assert all(abs((y[te] == y[0]).mean() - share) < 0.08 for _, te in folds)


def test_a_few_repeated_rows_leave_the_folds_as_they_were(load) -> None:
    """Under 5 % of the rows repeating another, grouped folds are the ungrouped ones."""
    ds = load("sonar")
    few = _repeated(ds, 1, 5)  # 5 of 213 rows repeat another
    assert duplicate_groups(few.X, few.y) is None
    expected = StratifiedKFold(n_splits=5, shuffle=True, random_state=0).split(np.zeros(few.n_rows),
                                                                                few.y.iloc[:, 0].astype(str))
    grouped = cv_splits(few, 5, seed=0, group_repeats=True)
    assert [te.tolist() for _, te in grouped] == [sorted(te.tolist()) for _, te in expected]
