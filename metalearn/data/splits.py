"""Cross-validation and holdout splits that fit the task kind, deterministic for a seed.

- binary / multiclass: stratified K-fold. When the smallest class (among classes with at least
  two members) has fewer members than folds, fewer folds are used and the reason is reported;
  classes with a single member are allowed (they land in one test fold).
- multilabel: iterative stratification (``MultilabelStratifiedKFold``).
- regression / multitarget: shuffled K-fold.
- multitask: stratified on the first classification target if there is one, else shuffled K-fold.
- repeated rows (``group_repeats``, off by default): when at least :data:`DUPLICATED_SHARE` of the rows repeat
  another row exactly (features and targets), every copy of a row lands in the same fold
  (:func:`duplicate_groups`; ``StratifiedGroupKFold`` / shuffled ``GroupKFold``, and the same for a holdout
  split), except for multi-label targets (no grouped iterative stratification): otherwise a row's copies
  score each other and the validation rewards pipelines that memorise rows.

:func:`plan_splits` tells how a dataset will be split (strategy, number of folds, reason for any
reduction); :func:`cv_splits` returns the folds; :func:`holdout_split` a single train/test split.
"""

from __future__ import annotations

import logging
import warnings
import weakref
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold, train_test_split

from metalearn.data.dataset import Dataset
from metalearn.data.errors import DataError, InputError
from metalearn.data.task import Task, TaskKind

__all__ = [
    "DUPLICATED_SHARE",
    "SplitPlan",
    "cv_splits",
    "duplicate_groups",
    "holdout_split",
    "make_splitter",
    "plan_splits",
    "stratification_labels",
]

log = logging.getLogger(__name__)

Fold = tuple[np.ndarray, np.ndarray]

#: at least this share of the rows repeating another row exactly (features and targets) is a search's warning,
#: and with ``group_repeats`` keeps each row's copies in one fold
DUPLICATED_SHARE = 0.05


#: the groups of the last frames asked for (a search asks again for every trial of the same data; hashing
#: 50,000 x 100 cells takes about 0.5 s): (id(X), id(y)) -> (a weak reference to each, the groups)
_GROUPS: dict[tuple[int, int], tuple[weakref.ref[pd.DataFrame], weakref.ref[pd.DataFrame], np.ndarray | None]] = {}


def duplicate_groups(X: pd.DataFrame, y: pd.DataFrame) -> np.ndarray | None:
    """One group id per row, shared by the rows that are equal in every feature and target, when at least
    :data:`DUPLICATED_SHARE` of the rows repeat another; None otherwise (the folds ignore a few repeats).
    Remembered for the same two frame objects (the data is not changed in place)."""
    key = (id(X), id(y))
    hit = _GROUPS.get(key)
    if hit is not None and hit[0]() is X and hit[1]() is y:
        return hit[2]
    groups = _duplicate_groups(X, y)
    if len(_GROUPS) >= 8:
        _GROUPS.clear()
    _GROUPS[key] = (weakref.ref(X), weakref.ref(y), groups)
    return groups


def _duplicate_groups(X: pd.DataFrame, y: pd.DataFrame) -> np.ndarray | None:
    frame = pd.concat([X.reset_index(drop=True), y.reset_index(drop=True)], axis=1, ignore_index=True)
    hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()  # equal rows (missing values too): equal
    distinct, groups = np.unique(hashes, return_inverse=True)
    if len(frame) - distinct.size < max(2, DUPLICATED_SHARE * len(frame)):
        return None
    return groups.astype(np.int64)


@dataclass(frozen=True)
class SplitPlan:
    """How a dataset is split: ``strategy`` is ``stratified``, ``multilabel``, or ``kfold``;
    ``n_splits`` may be lower than requested, with ``reason`` saying why (empty when unchanged)."""

    strategy: str
    n_splits: int
    requested: int
    reason: str = ""


def _check_n_splits(n_splits: int) -> int:
    if isinstance(n_splits, bool) or not isinstance(n_splits, int | np.integer) or n_splits < 2:
        raise InputError(f"n_splits must be an integer >= 2, got {n_splits!r}")
    return int(n_splits)


def _stratify_column(task: Task) -> int | None:
    """Index of the target to stratify on for single-label stratification, or None."""
    if task.kind in (TaskKind.BINARY, TaskKind.MULTICLASS):
        return 0
    if task.kind is TaskKind.MULTITASK:
        for i, k in enumerate(task.target_kinds):
            if k in (TaskKind.BINARY, TaskKind.MULTICLASS):
                return i
    return None


def stratification_labels(task: Task, y: pd.DataFrame) -> np.ndarray | None:
    """The class labels stratification uses (strings, missing as ``"<NA>"``), or None when the task
    is not stratified on a single class target (regression, multitarget, multilabel)."""
    col = _stratify_column(task)
    if col is None:
        return None
    s = y.iloc[:, col] if isinstance(y, pd.DataFrame) else pd.Series(np.asarray(y))
    return s.astype("string").fillna("<NA>").to_numpy(dtype=object)


def _multilabel_matrix(y: pd.DataFrame) -> np.ndarray:
    Y = np.column_stack(
        [pd.to_numeric(y.iloc[:, j], errors="coerce").to_numpy(dtype=float) for j in range(y.shape[1])]
    )
    return (np.nan_to_num(Y, nan=0.0) > 0).astype(int)


def make_splitter(task: Task, n_splits: int = 5, seed: int = 0) -> Any:
    """The scikit-learn style splitter for a task kind (``split(X, y)``), without fold reduction.

    Prefer :func:`cv_splits`, which also adapts the number of folds to rare classes.
    """
    n_splits = _check_n_splits(n_splits)
    if task.kind is TaskKind.MULTILABEL:
        from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

        return MultilabelStratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    if _stratify_column(task) is not None:
        return StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return KFold(n_splits=n_splits, shuffle=True, random_state=seed)


def plan_splits(task: Task, y: pd.DataFrame, n_splits: int = 5) -> SplitPlan:
    """Decide the strategy and the number of folds for ``y`` (see the module docstring)."""
    n_splits = _check_n_splits(n_splits)
    n = len(y)
    if n < 2:
        raise DataError(f"cross-validation needs at least 2 rows, got {n}; use a larger dataset")
    k, reasons = n_splits, []
    if n < k:
        k = n
        reasons.append(f"only {n} rows")
    if task.kind is TaskKind.MULTILABEL:
        strategy = "multilabel"
    else:
        labels = stratification_labels(task, y)
        strategy = "kfold" if labels is None else "stratified"
        if labels is not None:
            _, counts = np.unique(labels, return_counts=True)
            usable = counts[counts >= 2]
            if usable.size == 0:
                strategy = "kfold"
                reasons.append("no class has 2 members, so folds are not stratified")
            elif usable.min() < k:
                k = max(2, int(usable.min()))
                reasons.append(f"the smallest class has only {int(usable.min())} members")
    reason = ""
    if k < n_splits:
        reason = f"{k} folds instead of {n_splits}: " + "; ".join(reasons)
    elif reasons:
        reason = "; ".join(reasons)
    return SplitPlan(strategy, k, n_splits, reason)


def _unpack(data: Dataset | tuple[Any, Any, Task]) -> tuple[int, pd.DataFrame, Task]:
    if isinstance(data, Dataset):
        return data.n_rows, data.y, data.task
    try:
        X, y, task = data
    except (TypeError, ValueError):
        raise InputError("cv_splits takes a Dataset or an (X, y, task) tuple") from None
    if not isinstance(task, Task):
        raise InputError(f"cv_splits expects a Task as the third element, got {type(task).__name__}")
    y_df = y if isinstance(y, pd.DataFrame) else pd.DataFrame(np.asarray(y).reshape(len(y), -1))
    if len(X) != len(y_df):
        raise InputError(f"X has {len(X)} rows but y has {len(y_df)}; give one target row per feature row")
    return len(y_df), y_df, task


def cv_splits(
    data: Dataset | tuple[Any, Any, Task], n_splits: int = 5, seed: int = 0, *, group_repeats: bool = False
) -> list[Fold]:
    """K folds ``[(train_idx, test_idx), ...]`` (positional int arrays, sorted) for a dataset or an
    ``(X, y, task)`` tuple. Deterministic for a seed; the number of folds may be reduced (logged).
    ``group_repeats``: each row's exact copies in one fold (see :func:`duplicate_groups`)."""
    n, y, task = _unpack(data)
    plan = plan_splits(task, y, n_splits)
    if plan.reason:
        log.info("cv_splits: %s", plan.reason)
    groups = None
    if group_repeats and plan.strategy != "multilabel":
        groups = duplicate_groups(data.X if isinstance(data, Dataset) else pd.DataFrame(data[0]), y)
    if groups is not None and np.unique(groups).size < plan.n_splits:
        groups = None  # fewer distinct rows than folds: the copies cannot all stay together
    return _split_with_plan(plan, task, y, n, seed, groups)


def _split_with_plan(
    plan: SplitPlan, task: Task, y: pd.DataFrame, n: int, seed: int, groups: np.ndarray | None = None
) -> list[Fold]:
    dummy = np.zeros((n, 1))
    k = plan.n_splits
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*least populated class.*")
        if groups is not None:  # each row's copies in one fold (see duplicate_groups)
            if plan.strategy == "stratified":
                grouped: Any = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
                folds = grouped.split(dummy, stratification_labels(task, y), groups)
            else:
                folds = GroupKFold(n_splits=k, shuffle=True, random_state=seed).split(dummy, groups=groups)
        elif plan.strategy == "multilabel":
            from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

            splitter: Any = MultilabelStratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
            folds = splitter.split(dummy, _multilabel_matrix(y))
        elif plan.strategy == "stratified":
            splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
            folds = splitter.split(dummy, stratification_labels(task, y))
        else:
            folds = KFold(n_splits=k, shuffle=True, random_state=seed).split(dummy)
        return [(np.sort(tr).astype(np.int64), np.sort(te).astype(np.int64)) for tr, te in folds]


def _holdout_strata(labels: np.ndarray) -> np.ndarray:
    """Strata for a stratified holdout: classes with one member are pooled; a lone pooled row joins
    the largest class (train_test_split needs >= 2 members per stratum)."""
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    strata = inverse.astype(np.int64)
    rare = counts[inverse] < 2
    if rare.any():
        strata[rare] = -1
        if rare.sum() == 1:
            strata[rare] = int(np.argmax(counts))
    return strata


def _exact_size(tr: np.ndarray, te: np.ndarray, n_test: int, seed: int) -> Fold:
    """Move a few random rows so the test side has exactly ``n_test`` rows (iterstrat's shuffle
    split only approximates the requested size)."""
    rng = np.random.default_rng(seed)
    if len(te) > n_test:
        move = rng.choice(len(te), size=len(te) - n_test, replace=False)
        tr, te = np.concatenate([tr, te[move]]), np.delete(te, move)
    elif len(te) < n_test:
        move = rng.choice(len(tr), size=n_test - len(te), replace=False)
        tr, te = np.delete(tr, move), np.concatenate([te, tr[move]])
    return np.sort(tr).astype(np.int64), np.sort(te).astype(np.int64)


def holdout_split(
    task: Task, y: pd.DataFrame, test_size: float = 0.33, seed: int = 0, groups: np.ndarray | None = None
) -> Fold:
    """One ``(train_idx, test_idx)`` split with about ``test_size`` of the rows in test, stratified
    like :func:`cv_splits` (iteratively for multilabel). Deterministic for a seed. ``groups``
    (:func:`duplicate_groups`; not for multilabel): rows of a group land on one side, the test side then
    one of ``round(1 / test_size)`` grouped folds."""
    if not (isinstance(test_size, float | int) and 0.0 < float(test_size) < 1.0):
        raise InputError(f"test_size must be a fraction in (0, 1), got {test_size!r}")
    if not isinstance(y, pd.DataFrame):
        y = pd.DataFrame(np.asarray(y).reshape(len(y), -1))
    n = len(y)
    if n < 2:
        raise DataError(f"a holdout split needs at least 2 rows, got {n}; use a larger dataset")
    n_test = min(n - 1, max(1, round(n * float(test_size))))
    idx = np.arange(n)
    k = max(2, round(1.0 / float(test_size)))
    if groups is not None and task.kind is not TaskKind.MULTILABEL and np.unique(groups).size >= k:
        plan = replace(plan_splits(task, y, k), n_splits=k)  # the test side's size: one fold of k
        return _split_with_plan(plan, task, y, n, seed, groups)[0]
    if task.kind is TaskKind.MULTILABEL:
        from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

        # a fraction gives iterstrat's best stratification (an int test_size is looser and less exact)
        sss = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=n_test / n, random_state=seed)
        tr, te = next(iter(sss.split(np.zeros((n, 1)), _multilabel_matrix(y))))
        return _exact_size(np.sort(tr), np.sort(te), n_test, seed)
    labels = stratification_labels(task, y)
    stratify = None
    if labels is not None:
        strata = _holdout_strata(labels)
        n_strata = len(np.unique(strata))
        if n_test >= n_strata and n - n_test >= n_strata:
            stratify = strata
    tr, te = train_test_split(idx, test_size=n_test, random_state=seed, shuffle=True, stratify=stratify)
    return np.sort(tr).astype(np.int64), np.sort(te).astype(np.int64)
