"""The search-space interface: a named, versioned ConfigSpace plus a builder of task models."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import pandas as pd
from ConfigSpace import ConfigurationSpace

from metalearn.data.prediction import Prediction
from metalearn.data.task import Task, TaskKind


class TaskModel(Protocol):
    """A fitted-or-not model for one task: scikit-learn style ``fit`` plus a uniform ``predict_task``."""

    def fit(self, X: pd.DataFrame, y: pd.DataFrame) -> TaskModel: ...

    def predict_task(self, X: pd.DataFrame) -> Prediction: ...


class SearchSpace(abc.ABC):
    """A search space for one task kind. ``name`` + ``version`` are stored with every configuration;
    change ``version`` whenever the meaning of a configuration changes."""

    name: str
    version: str
    kind: TaskKind

    @property
    @abc.abstractmethod
    def configspace(self) -> ConfigurationSpace:
        """The ConfigSpace (conditional hyperparameters; seeded, deterministic)."""

    @abc.abstractmethod
    def build(self, values: Mapping[str, Any], task: Task, categorical: Sequence[bool]) -> TaskModel:
        """An unfitted model for this configuration. ``values`` must be valid (see ``validate``)."""

    @abc.abstractmethod
    def validate(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The canonical dict of a valid configuration; raises ``ConfigurationError`` naming the bad
        hyperparameter and the allowed values otherwise. Inactive hyperparameters are dropped."""

    def default(self) -> dict[str, Any]:
        return dict(self.configspace.get_default_configuration())

    def effective(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The values ``build`` actually uses for valid ``values`` (this default: ``validate``'s): two
        configurations with equal effective values build the same model, so a search evaluates one."""
        return self.validate(values)

    def restricted_configspace(self, configs: Sequence[Mapping[str, Any]]) -> ConfigurationSpace | None:
        """A copy of ``configspace`` narrowed to the region of ``configs`` (a learned search space), or
        None: the search then uses the whole space (this default: a space that cannot narrow)."""
        return None

    def underfit_reason(self, values: Mapping[str, Any]) -> str | None:
        """Why valid ``values`` cannot fit any data (a search skips such proposals of its optimizer), or
        None (this default: every configuration can)."""
        return None

    def is_valid(self, values: Mapping[str, Any]) -> bool:
        try:
            self.validate(values)
        except ValueError:
            return False
        return True
