"""The uniform form of a model's predictions for every task kind: one entry per target."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, eq=False)
class Prediction:
    """Predictions for ``len(values)`` targets, in ``Task.targets`` order.

    - ``values[t]``: shape (n,) — predicted labels (classification targets, same dtype/labels as the
      true target values) or predicted numbers (regression targets).
    - ``probas[t]``: shape (n, len(classes[t])) class probabilities, rows summing to 1, columns in the
      order of ``classes[t]``; ``None`` for regression targets.
    - ``classes[t]``: the class labels the model knows (sorted), ``None`` for regression targets.

    Binary = 1 target with 2 classes; multilabel = L binary targets (classes [0, 1]); multitarget =
    T regression targets; multitask mixes them.
    """

    values: list[np.ndarray]
    probas: list[np.ndarray | None]
    classes: list[np.ndarray | None]

    def __post_init__(self) -> None:
        if not (len(self.values) == len(self.probas) == len(self.classes)):
            raise ValueError("values, probas and classes need one entry per target")

    @property
    def n_targets(self) -> int:
        return len(self.values)

    @property
    def n_rows(self) -> int:
        return len(self.values[0]) if self.values else 0

    def take(self, rows: Any) -> Prediction:
        """The prediction of the given rows only (indices, a boolean mask or a slice, as numpy takes them)."""
        return Prediction([np.asarray(v)[rows] for v in self.values],
                          [None if p is None else np.asarray(p)[rows] for p in self.probas], list(self.classes))


def class_index(classes: Any) -> Callable[[Any], int]:
    """The column of a label among ``classes`` (a KeyError for a label not among them); numpy scalars
    match their Python values, and text classes (a union of mixed label types) match labels as text."""
    cls = np.asarray(classes)
    as_text = cls.dtype.kind == "U"

    def key(label: Any) -> Any:
        if as_text:
            return str(label)
        return label.item() if isinstance(label, np.generic) else label

    index = {key(c): j for j, c in enumerate(cls)}
    return lambda label: index[key(label)]
