"""Why did the model predict this? Shapley values of each feature for single predictions, model-agnostic.

The explanation of a row ``x`` says how much each feature moved the model's output from a *base value* —
its mean output over background rows (a sample of the training data) — to its output on ``x``. The values
are the interventional Shapley values (Štrumbelj & Kononenko 2014; SHAP's "interventional" flavour),
estimated by sampling feature orders: for a background row ``b`` and an order ``π`` of the features, start
from ``b`` and switch the features to ``x``'s values one by one in the order ``π``; each switch's change
of the output is that feature's share on that path. Averaged over :data:`DEFAULT_PERMUTATIONS` orders
(drawn in antithetic pairs: each order and its reverse) and the background rows, the shares estimate the
Shapley values, and they *always* add up exactly to the output on ``x`` minus the base value (every path
ends at ``x``).

Any task model works (an ensemble, a pipeline with its preprocessing, an ONNX variant): the rows of all
paths are predicted in a few calls of at most :data:`BATCH_ROWS` rows. The output explained is, per
target, each class's probability (classification) or the predicted value (regression).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from metalearn.data.errors import InputError
from metalearn.data.prediction import Prediction
from metalearn.data.task import Task, TaskKind
from metalearn.pipelines.importance import BATCH_ROWS  # rows predicted in one call at most

#: feature orders sampled per background row (an even number: antithetic pairs)
DEFAULT_PERMUTATIONS = 8
#: background rows used at most (a random sample of the ones given)
DEFAULT_BACKGROUND = 16


def n_orders(n_permutations: int) -> int:
    """The feature orders sampled for ``n_permutations``: rounded up to an even number (antithetic pairs)."""
    return n_permutations + n_permutations % 2


@dataclass(frozen=True)
class Explanation:
    """Shapley values of one row: per target, one output (``outputs``: the class labels of a class target's
    probabilities, ``["value"]`` for a regression target) and, per output, ``base`` (mean over the
    background), ``prediction`` (the output on the row) and ``values`` (feature -> share; they add up to
    ``prediction - base``)."""

    targets: tuple[str, ...]
    outputs: tuple[tuple[str, ...], ...]
    base: tuple[np.ndarray, ...]
    prediction: tuple[np.ndarray, ...]
    values: tuple[np.ndarray, ...]  # per target: (n_outputs, n_features)
    features: tuple[str, ...]

    def to_dict(self, top: int | None = None) -> dict[str, Any]:
        """JSON-ready: per target and output, base, prediction and the features' shares, largest first."""
        out: dict[str, Any] = {}
        for t, name in enumerate(self.targets):
            per: dict[str, Any] = {}
            for k, label in enumerate(self.outputs[t]):
                shares = self.values[t][k]
                order = np.argsort(-np.abs(shares), kind="stable")
                shown = order if top is None else order[:top]
                per[label] = {
                    "base": float(self.base[t][k]),
                    "prediction": float(self.prediction[t][k]),
                    "contributions": [{"feature": self.features[j], "value": float(shares[j])} for j in shown],
                    "others": float(shares[order[len(shown):]].sum()) if len(shown) < len(order) else 0.0,
                }
            out[name] = per
        return out


def shapley_values(
    predict: Callable[[pd.DataFrame], Prediction],
    task: Task,
    X: pd.DataFrame,
    background: pd.DataFrame,
    *,
    n_permutations: int = DEFAULT_PERMUTATIONS,
    max_background: int = DEFAULT_BACKGROUND,
    seed: int = 0,
) -> list[Explanation]:
    """One :class:`Explanation` per row of ``X`` for the model ``predict`` (features in, its
    :class:`Prediction` out), against the ``background`` rows (the same columns; at most ``max_background``
    of them, a random sample). ``n_permutations`` feature orders per background row (rounded up to an even
    number). Costs ``len(X) x background rows x n_permutations x (features + 1)`` predicted rows.
    :class:`InputError` for bad arguments."""
    if n_permutations < 1:
        raise InputError(f"n_permutations must be at least 1, got {n_permutations}: the feature orders sampled")
    if max_background < 1:
        raise InputError(f"max_background must be at least 1, got {max_background}")
    if len(X) == 0 or X.shape[1] == 0:
        raise InputError(f"nothing to explain: {X.shape[0]} rows x {X.shape[1]} features; send at least one row")
    if len(background) == 0:
        raise InputError("the background has no rows: explanations need rows of the training data to start from")
    if list(background.columns) != list(X.columns):
        raise InputError("the background rows must have the columns of the explained rows, in the same order")
    rng = np.random.default_rng(seed)
    if len(background) > max_background:
        background = background.iloc[np.sort(rng.choice(len(background), max_background, replace=False))]
    background = background.reset_index(drop=True)
    n_features, n_background = X.shape[1], len(background)
    orders = [rng.permutation(n_features) for _ in range(n_orders(n_permutations) // 2)]
    orders += [o[::-1] for o in orders]  # antithetic: each order and its reverse
    # switched[p, k, c]: on path p, after k switches, feature c has the explained row's value
    rank = np.empty((len(orders), n_features), dtype=np.int64)
    for p, o in enumerate(orders):
        rank[p, o] = np.arange(n_features)
    switched = rank[:, None, :] < np.arange(n_features + 1)[None, :, None]  # (P, F + 1, F)
    per_row = len(orders) * n_background * (n_features + 1)
    explanations = []
    for i in range(len(X)):
        frame = _path_rows(X.iloc[[i]], background, switched)
        outputs, labels = _outputs(task, _predict_all(predict, frame), per_row)
        shaped = [o.reshape(len(orders), n_background, n_features + 1, -1) for o in outputs]
        values, bases, preds = [], [], []
        for o in shaped:
            steps = np.diff(o, axis=2)  # (P, B, F, K): the change at each switch
            shares = np.zeros((n_features, o.shape[-1]))
            for p, order in enumerate(orders):
                shares[order] += steps[p].sum(axis=0)  # the k-th switch is feature order[k]
            values.append((shares / (len(orders) * n_background)).T)
            bases.append(o[:, :, 0].mean(axis=(0, 1)))
            preds.append(o[:, :, -1].mean(axis=(0, 1)))
        explanations.append(Explanation(tuple(task.targets), labels, tuple(bases), tuple(preds), tuple(values),
                                        tuple(str(c) for c in X.columns)))
    return explanations


def _path_rows(row: pd.DataFrame, background: pd.DataFrame, switched: np.ndarray) -> pd.DataFrame:
    """The rows of every path (order, background row, step), in that order: each column takes the explained
    row's value where ``switched`` says so, else the background row's (in the background column's dtype; a
    category of the row the background's column lacks is added to it)."""
    P, S, _F = switched.shape
    B = len(background)
    idx = np.broadcast_to(np.arange(B)[None, :, None], (P, B, S)).reshape(-1)
    columns: dict[Any, Any] = {}
    for c, name in enumerate(background.columns):
        base, value = background[name], row[name].iloc[0]
        cells = base.to_numpy(dtype=object)[idx]
        cells[np.broadcast_to(switched[:, None, :, c], (P, B, S)).reshape(-1)] = value
        if isinstance(base.dtype, pd.CategoricalDtype):
            cats = base.cat.categories
            dtype = base.dtype if pd.isna(value) or value in cats else pd.CategoricalDtype(
                cats.append(pd.Index([value])), ordered=base.dtype.ordered)
            columns[name] = pd.Series(pd.Categorical(cells, dtype=dtype))
        else:
            column = pd.Series(cells, dtype=object)
            try:
                column = column.astype(base.dtype)
            except (TypeError, ValueError):  # e.g. a missing value in an integer column
                column = column.infer_objects()
            columns[name] = column
    return pd.DataFrame(columns)


def _predict_all(predict: Callable[[pd.DataFrame], Prediction], frame: pd.DataFrame) -> list[Prediction]:
    return [predict(frame.iloc[s:s + BATCH_ROWS].reset_index(drop=True)) for s in range(0, len(frame), BATCH_ROWS)]


def _outputs(task: Task, preds: list[Prediction], n_rows: int) -> tuple[list[np.ndarray], tuple[tuple[str, ...], ...]]:
    """Per target, the outputs explained as an ``(n_rows, n_outputs)`` array, and their labels."""
    outputs: list[np.ndarray] = []
    labels: list[tuple[str, ...]] = []
    for t, kind in enumerate(task.target_kinds):
        classes = preds[0].classes[t]
        if kind is TaskKind.REGRESSION or preds[0].probas[t] is None or classes is None:
            arr = np.concatenate([np.asarray(p.values[t], dtype=np.float64) for p in preds])[:, None]
            labels.append(("value",))
        else:
            arr = np.concatenate([np.asarray(p.probas[t], dtype=np.float64) for p in preds])
            labels.append(tuple(str(c) for c in classes))
        if len(arr) != n_rows:
            raise InputError(f"the model predicted {len(arr)} rows for {n_rows}: it cannot be explained row by row")
        outputs.append(arr)
    return outputs, tuple(labels)
