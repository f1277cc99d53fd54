"""metalearn: meta-learning warm-start AutoML over a knowledge base.

The Python API, imported lazily so that ``import metalearn`` (and the CLI's start-up) stays cheap:

- :func:`optimize` — warm-started SMAC search on a :class:`metalearn.data.dataset.Dataset`, results written to the KB;
- :class:`MetaLearnClassifier` / :class:`MetaLearnRegressor` — scikit-learn estimators that search in
  ``fit`` (by default in a private in-memory KB: ``fit`` writes to a KB file only when given ``kb=PATH``);
- :class:`MetaLearnEstimator` — the same for every task kind (inferred from ``y``, or ``kind``), multitask too;
- :class:`SearchSettings` — the frozen description of a search (every parameter declared once);
- :class:`Advisor` — recommendations from a KB without fitting anything;
- :class:`ModelRegistry` — registered models: versions, promote / rollback, serving, drift, retraining;
- :func:`load_model_file` — the ``model.skops`` an ``optimize --out`` wrote (skops with trusted types, never pickle).
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "optimize": "metalearn.search.automl",
    "MetaLearnEstimator": "metalearn.search.estimators",
    "MetaLearnClassifier": "metalearn.search.estimators",
    "MetaLearnRegressor": "metalearn.search.estimators",
    "OptimizeOutcome": "metalearn.search.automl",
    "SearchSettings": "metalearn.search.settings",
    "Advisor": "metalearn.metalearning.advisor",
    "ModelRegistry": "metalearn.registry.registry",
    "load_model_file": "metalearn.pipelines.artifacts",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'metalearn' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
