"""The uniform form of a model's predictions for every task kind: one entry per target."""

from __future__ import annotations

from dataclasses import dataclass

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
