"""Cross-validation and holdout splits that fit the task kind, deterministic for a seed.

- binary / multiclass: stratified K-fold. When the smallest class (among classes with at least
  two members) has fewer members than folds, fewer folds are used and the reason is reported;
  classes with a single member are allowed (they land in one test fold).
- multilabel: iterative stratification (``MultilabelStratifiedKFold``).
- regression / multitarget: shuffled K-fold.
- multitask: stratified on the first classification target if there is one, else shuffled K-fold.

:func:`plan_splits` tells how a dataset will be split (strategy, number of folds, reason for any
reduction); :func:`cv_splits` returns the folds; :func:`holdout_split` a single train/test split.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

from metalearn.data.dataset import Dataset
from metalearn.data.errors import DataError, InputError
from metalearn.data.task import Task, TaskKind

__all__ = ["SplitPlan", "cv_splits", "holdout_split", "make_splitter", "plan_splits", "stratification_labels"]

log = logging.getLogger(__name__)

Fold = tuple[np.ndarray, np.ndarray]


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


def cv_splits(data: Dataset | tuple[Any, Any, Task], n_splits: int = 5, seed: int = 0) -> list[Fold]:
    """K folds ``[(train_idx, test_idx), ...]`` (positional int arrays, sorted) for a dataset or an
    ``(X, y, task)`` tuple. Deterministic for a seed; the number of folds may be reduced (logged)."""
    n, y, task = _unpack(data)
    plan = plan_splits(task, y, n_splits)
    if plan.reason:
        log.info("cv_splits: %s", plan.reason)
    return _split_with_plan(plan, task, y, n, seed)


def _split_with_plan(plan: SplitPlan, task: Task, y: pd.DataFrame, n: int, seed: int) -> list[Fold]:
    dummy = np.zeros((n, 1))
    k = plan.n_splits
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*least populated class.*")
        if plan.strategy == "multilabel":
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


def holdout_split(task: Task, y: pd.DataFrame, test_size: float = 0.33, seed: int = 0) -> Fold:
    """One ``(train_idx, test_idx)`` split with about ``test_size`` of the rows in test, stratified
    like :func:`cv_splits` (iteratively for multilabel). Deterministic for a seed."""
    if not (isinstance(test_size, float | int) and 0.0 < float(test_size) < 1.0):
        raise InputError(f"test_size must be a fraction in (0, 1), got {test_size!r}")
    if not isinstance(y, pd.DataFrame):
        y = pd.DataFrame(np.asarray(y).reshape(len(y), -1))
    n = len(y)
    if n < 2:
        raise DataError(f"a holdout split needs at least 2 rows, got {n}; use a larger dataset")
    n_test = min(n - 1, max(1, round(n * float(test_size))))
    idx = np.arange(n)
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
