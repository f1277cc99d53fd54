"""The concrete search spaces, one per task kind, and their validation.

Every space shares the preprocessing hyperparameters and the model families of
:mod:`metalearn.pipelines.spaces.components`; the multi-output spaces add their strategy choice:

- ``binary`` / ``multiclass`` / ``regression``: preprocessing + one family.
- ``multilabel``: ``ml_strategy`` in {native, binary_relevance, chain}; ``native`` only for the families
  that fit several labels at once (k-NN, RF, ET, MLP, XGBoost, CatBoost) -- a forbidden clause excludes
  the others.
- ``multitarget``: ``mt_strategy`` in {native, per_target, chain}; ``native`` only for linear, k-NN, RF,
  ET, MLP, XGBoost, CatBoost.
- ``multitask``: ``mtl_strategy`` in {independent, shared}: one model of the chosen family per target
  (classifier or regressor, same hyperparameters), or one hard-parameter-sharing network
  (``shared:*`` hyperparameters).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from ConfigSpace import (
    Categorical,
    Configuration,
    ConfigurationSpace,
    ForbiddenAndConjunction,
    ForbiddenEqualsClause,
    ForbiddenInClause,
)
from ConfigSpace.hyperparameters import (
    CategoricalHyperparameter,
    Constant,
    FloatHyperparameter,
    IntegerHyperparameter,
    OrdinalHyperparameter,
)

from metalearn.data.errors import ConfigurationError, TaskKindError
from metalearn.data.task import Task, TaskKind
from metalearn.pipelines.models.adaptive import DEFAULT_BUDGET
from metalearn.pipelines.models.task_models import (
    ML_STRATEGIES,
    MT_STRATEGIES,
    MTL_STRATEGIES,
    ClassificationModel,
    MultiLabelModel,
    MultiTargetModel,
    MultiTaskModel,
    RegressionModel,
)
from metalearn.pipelines.spaces.base import SearchSpace, TaskModel
from metalearn.pipelines.spaces.components import (
    FAMILIES,
    NATIVE_MULTILABEL,
    NATIVE_MULTITARGET,
    add_mlp_architecture,
    add_model_families,
    add_preprocessing,
    build_classifier,
    build_preprocessor,
    build_regressor,
    build_shared_mlp,
    effective_values,
    underfit_reason,
)

#: Bumped whenever the meaning of a configuration changes (ranges, defaults, builders).
#: "2": the LightGBM, XGBoost and CatBoost families (every configuration of "1" is valid in "2" and
#: builds the same model).
SPACE_VERSION = "2"

_FLOAT_TOL = 1e-9


def _fmt(x: float) -> str:
    return f"{x:g}"


def describe_hyperparameter(hp: Any) -> str:
    """The allowed values of a hyperparameter, for error messages."""
    if isinstance(hp, CategoricalHyperparameter):
        return "one of " + ", ".join(repr(c) for c in hp.choices)
    if isinstance(hp, OrdinalHyperparameter):
        return "one of " + ", ".join(repr(c) for c in hp.sequence)
    if isinstance(hp, Constant):
        return f"exactly {hp.value!r}"
    if isinstance(hp, IntegerHyperparameter):
        return f"an integer in [{hp.lower}, {hp.upper}]" + (" (log scale)" if hp.log else "")
    if isinstance(hp, FloatHyperparameter):
        return f"a number in [{_fmt(hp.lower)}, {_fmt(hp.upper)}]" + (" (log scale)" if hp.log else "")
    return "a valid value"  # pragma: no cover


def _coerce(space: str, hp: Any, value: Any) -> Any:
    """The canonical Python value of ``value`` for ``hp`` or a ConfigurationError."""
    name = hp.name
    allowed = describe_hyperparameter(hp)

    def bad(why: str) -> ConfigurationError:
        return ConfigurationError(f"hyperparameter {name!r} of space {space!r} {why}; allowed: {allowed}")

    if isinstance(hp, CategoricalHyperparameter | OrdinalHyperparameter):
        choices = hp.choices if isinstance(hp, CategoricalHyperparameter) else hp.sequence
        if isinstance(value, str | np.str_):
            for c in choices:
                if str(c) == str(value):
                    return str(c) if isinstance(c, str | np.str_) else c
        raise bad(f"got {value!r}")
    if isinstance(hp, Constant):
        if value == hp.value:
            return hp.value
        raise bad(f"got {value!r}")
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.integer | np.floating):
        raise bad(f"must be a number, got {type(value).__name__} {value!r}")
    x = float(value)
    if not math.isfinite(x):
        raise bad(f"must be finite, got {value!r}")
    lo, hi = float(hp.lower), float(hp.upper)
    if isinstance(hp, IntegerHyperparameter):
        if not x.is_integer():
            raise bad(f"must be a whole number, got {value!r}")
        if not lo <= x <= hi:
            raise bad(f"is out of range: {value!r}")
        return int(x)
    tol = _FLOAT_TOL * max(1.0, abs(lo), abs(hi))
    if not (lo - tol <= x <= hi + tol):
        raise bad(f"is out of range: {value!r}")
    return float(min(max(x, lo), hi))


def _condition_holds(cond: Any, values: Mapping[str, Any]) -> bool:
    components = getattr(cond, "components", None)
    if components is not None:  # a conjunction
        results = [_condition_holds(c, values) for c in components]
        return all(results) if type(cond).__name__ == "AndConjunction" else any(results)
    parent = cond.parent.name
    if parent not in values:
        return False
    return bool(cond.satisfied_by_value(values))


def _forbidden_message(space: str, clause: Any) -> str:
    parts = []
    for comp in getattr(clause, "components", [clause]):
        hp_name = comp.hyperparameter.name
        if hasattr(comp, "values") and not hasattr(comp, "value"):
            parts.append(f"{hp_name} in {sorted(str(v) for v in comp.values)}")
        else:
            parts.append(f"{hp_name}={comp.value!r}")
    return f"forbidden combination in space {space!r}: {' with '.join(parts)}; change one of these hyperparameters"


#: the choices that decide a pipeline's structure: a learned search space keeps only the values it saw
STRUCTURE_CHOICES = ("model", "ml_strategy", "mt_strategy", "mtl_strategy")
#: a learned box (:meth:`ConfigSpaceSearchSpace.restricted_configspace`) is widened by this share of the
#: hyperparameter's full range (log-range for a log-scaled one) on each side
BOX_MARGIN = 0.1


def _box(hp: Mapping[str, Any], seen: Sequence[float]) -> tuple[float, float]:
    """The bounds of a serialized numeric hyperparameter ``hp`` narrowed to the values ``seen`` (within its
    bounds), widened by :data:`BOX_MARGIN`; its own bounds when that leaves no room."""
    lower, upper = hp["lower"], hp["upper"]
    forward: Callable[[float], float] = math.log if hp["log"] else float
    back: Callable[[float], float] = math.exp if hp["log"] else float
    margin = BOX_MARGIN * (forward(upper) - forward(lower))
    lo = max(lower, min(min(seen), back(forward(min(seen)) - margin)))
    hi = min(upper, max(max(seen), back(forward(max(seen)) + margin)))
    if hp["type"] == "uniform_int":
        lo, hi = max(lower, math.floor(lo)), min(upper, math.ceil(hi))
    return (lo, hi) if lo < hi else (lower, upper)


class ConfigSpaceSearchSpace(SearchSpace):
    """A search space backed by a ConfigSpace built by ``make_configspace(seed)``."""

    def __init__(
        self,
        name: str,
        kind: TaskKind,
        make_configspace: Callable[[int], ConfigurationSpace],
        version: str = SPACE_VERSION,
        description: str = "",
    ) -> None:
        self.name = name
        self.kind = TaskKind(kind)
        self.version = version
        self.description = description
        self._make = make_configspace
        self._cs: ConfigurationSpace | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, version={self.version!r}, kind={str(self.kind)!r})"

    @property
    def configspace(self) -> ConfigurationSpace:
        if self._cs is None:
            self._cs = self._make(0)
        return self._cs

    def fresh_configspace(self, seed: int = 0) -> ConfigurationSpace:
        """A new ConfigSpace instance seeded with ``seed`` (sampling from it does not disturb others)."""
        return self._make(seed)

    def restricted_configspace(self, configs: Sequence[Mapping[str, Any]]) -> ConfigurationSpace | None:
        """A copy of ``configspace`` narrowed to the region of ``configs`` (valid configurations, e.g. the
        recommendations of a warm start), a learned search space as in Perrone et al. 2019: only their
        model families and multi-output strategies (a forbidden clause excludes the other choices of each of
        :data:`STRUCTURE_CHOICES`), and every numeric
        hyperparameter that is active in any of them within the box they span, widened by
        :data:`BOX_MARGIN` of its full (log-)range on each side. ``configs[0]`` is its default
        configuration. Every hyperparameter, choice and condition is kept, so a configuration of the copy is
        one of this space with the same meaning. None without ``configs``."""
        cs = self.configspace
        if not configs:
            return None
        values = [self.validate(c) for c in configs]
        serialized = cs.to_serialized_dict()
        for hp in serialized["hyperparameters"]:
            seen = [v[hp["name"]] for v in values if hp["name"] in v]
            if seen and hp["type"] in ("uniform_float", "uniform_int"):
                hp["lower"], hp["upper"] = _box(hp, seen)
            if hp["name"] in values[0]:
                hp["default_value"] = values[0][hp["name"]]
            elif "lower" in hp:
                hp["default_value"] = min(max(hp["default_value"], hp["lower"]), hp["upper"])
        out = ConfigurationSpace.from_serialized_dict(serialized)
        for choice in STRUCTURE_CHOICES:
            hp = out.get(choice)
            if isinstance(hp, CategoricalHyperparameter):
                excluded = [c for c in hp.choices if c not in {v.get(choice) for v in values}]
                if excluded:
                    out.add(ForbiddenInClause(hp, excluded))
        out.seed(0)  # as ``configspace`` (SMAC reseeds it from its scenario)
        return out

    @property
    def hyperparameter_names(self) -> list[str]:
        return list(self.configspace.keys())

    # -- validation ---------------------------------------------------------------------------------
    def validate(self, values: Mapping[str, Any], *, fill_defaults: bool = False) -> dict[str, Any]:
        """The canonical dict of a valid configuration (see ``SearchSpace.validate``).

        Values may come back from JSON (integers as floats, numpy scalars...); the result holds ``str``
        for categorical, ``int`` for integer and ``float`` for float hyperparameters, only the active
        ones, in the space's order. A missing active hyperparameter is an error unless
        ``fill_defaults`` is true (then its default is used).
        """
        if not isinstance(values, Mapping):
            raise ConfigurationError(
                f"a configuration must be a mapping of hyperparameter name to value, got {type(values).__name__}"
            )
        cs = self.configspace
        names = list(cs.keys())
        for key in values:
            if key not in cs:
                close = difflib.get_close_matches(str(key), names, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(names)}"
                raise ConfigurationError(
                    f"unknown hyperparameter {key!r} for search space {self.name!r} (version {self.version}); {hint}"
                )
        out: dict[str, Any] = {}
        for name, hp in cs.items():
            conditions = cs.parent_conditions_of[name]
            if conditions and not all(_condition_holds(c, out) for c in conditions):
                continue  # inactive: dropped
            if name in values and values[name] is not None:
                out[name] = _coerce(self.name, hp, values[name])
            elif fill_defaults:
                out[name] = _coerce(self.name, hp, _plain(hp.default_value))
            else:
                raise ConfigurationError(
                    f"missing hyperparameter {name!r} for search space {self.name!r}; "
                    f"it is active in this configuration and must be {describe_hyperparameter(hp)}"
                )
        for clause in cs.forbidden_clauses:
            if clause.is_forbidden_value(out):
                raise ConfigurationError(_forbidden_message(self.name, clause))
        return out

    def underfit_reason(self, values: Mapping[str, Any]) -> str | None:
        return underfit_reason(values)

    def effective(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """``validate(values)`` with its counts rounded as the model is built (see
        :func:`~metalearn.pipelines.spaces.components.effective_values`)."""
        return effective_values(self.configspace, self.validate(values))

    def default(self) -> dict[str, Any]:
        return self.validate({}, fill_defaults=True)

    def family_default(self, family: str) -> dict[str, Any] | None:
        """The default configuration with ``model=family`` (its hyperparameters at their defaults); when a
        strategy choice of the default forbids the family (e.g. multi-label ``native`` for LightGBM), the
        first allowed value of that choice. ``None`` if no such configuration is valid."""
        cs = self.configspace
        base = dict(self.default())
        base["model"] = family
        for name in list(cs.keys()):
            if name.startswith(f"{family}:"):
                base[name] = cs[name].default_value
        if self.is_valid(base):
            return base
        for name in list(cs.keys()):
            choices = getattr(cs[name], "choices", None)
            if ":" in name or name == "model" or choices is None:
                continue
            for choice in choices:
                trial = {**base, name: choice}
                if self.is_valid(trial):
                    return trial
        return None

    def to_configuration(self, values: Mapping[str, Any]) -> Configuration:
        """A ConfigSpace ``Configuration`` of this space's ``configspace`` (e.g. to warm-start SMAC)."""
        return Configuration(self.configspace, values=self.validate(values))

    def sample(self, n: int, seed: int = 0) -> list[dict[str, Any]]:
        """``n`` random valid configurations (canonical dicts), reproducible from ``seed``."""
        if n <= 0:
            return []
        cs = self._make(seed)
        configs = cs.sample_configuration(size=n) if n > 1 else [cs.sample_configuration()]
        return [self.validate({k: _plain(v) for k, v in dict(c).items()}) for c in configs]

    # -- building -----------------------------------------------------------------------------------
    def _check_task(self, task: Task) -> None:
        if TaskKind(task.kind) is not self.kind:
            raise TaskKindError(
                f"search space {self.name!r} is for {self.kind} tasks but the task is {task.kind}; "
                f"use get_space({str(task.kind)!r})"
            )

    def build(
        self,
        values: Mapping[str, Any],
        task: Task,
        categorical: Sequence[bool],
        seed: int = 0,
        budget: float = DEFAULT_BUDGET,
    ) -> TaskModel:
        """An unfitted task model for the configuration ``values`` (validated here) on ``task``.

        ``categorical`` flags the feature columns the model will see; ``seed`` seeds every random
        component; ``budget`` is the nominal per-fit time budget (seconds on one reference core) that
        caps epochs / trees / boosting rounds on large data.
        """
        v = self.validate(values)
        self._check_task(task)
        kinds = [str(k) for k in task.target_kinds]
        pre = build_preprocessor(v, categorical, kinds, seed)
        kind = self.kind
        if kind in (TaskKind.BINARY, TaskKind.MULTICLASS):
            return ClassificationModel(preprocessor=pre, estimator=build_classifier(v, seed, budget))
        if kind is TaskKind.REGRESSION:
            return RegressionModel(preprocessor=pre, estimator=build_regressor(v, seed, budget))
        if kind is TaskKind.MULTILABEL:
            return MultiLabelModel(
                preprocessor=pre, estimator=build_classifier(v, seed, budget), strategy=str(v["ml_strategy"])
            )
        if kind is TaskKind.MULTITARGET:
            return MultiTargetModel(
                preprocessor=pre, estimator=build_regressor(v, seed, budget), strategy=str(v["mt_strategy"])
            )
        strategy = str(v["mtl_strategy"])
        if strategy == "shared":
            return MultiTaskModel(
                preprocessor=pre,
                target_kinds=tuple(kinds),
                strategy="shared",
                shared=build_shared_mlp(v, kinds, seed, budget),
            )
        has_class = any(k != "regression" for k in kinds)
        has_reg = any(k == "regression" for k in kinds)
        return MultiTaskModel(
            preprocessor=pre,
            target_kinds=tuple(kinds),
            strategy="independent",
            classifier=build_classifier(v, seed, budget) if has_class else None,
            regressor=build_regressor(v, seed, budget) if has_reg else None,
        )


def _plain(v: Any) -> Any:
    if isinstance(v, np.str_):
        return str(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


# ---------------------------------------------------------------------------------------------------
# the ConfigSpaces
# ---------------------------------------------------------------------------------------------------
def _single_target_cs(name: str, classification: bool) -> Callable[[int], ConfigurationSpace]:
    def make(seed: int) -> ConfigurationSpace:
        cs = ConfigurationSpace(name=name, seed=seed)
        add_preprocessing(cs)
        add_model_families(cs, classification=classification, regression=not classification)
        return cs

    return make


def _multilabel_cs(seed: int) -> ConfigurationSpace:
    cs = ConfigurationSpace(name="multilabel", seed=seed)
    add_preprocessing(cs)
    model = add_model_families(cs, classification=True, regression=False)
    strategy = Categorical("ml_strategy", list(ML_STRATEGIES), default="native")
    cs.add(strategy)
    not_native = [f for f in FAMILIES if f not in NATIVE_MULTILABEL]
    cs.add(
        ForbiddenAndConjunction(
            ForbiddenEqualsClause(strategy, "native"), ForbiddenInClause(model, not_native)
        )
    )
    return cs


def _multitarget_cs(seed: int) -> ConfigurationSpace:
    cs = ConfigurationSpace(name="multitarget", seed=seed)
    add_preprocessing(cs)
    model = add_model_families(cs, classification=False, regression=True)
    strategy = Categorical("mt_strategy", list(MT_STRATEGIES), default="native")
    cs.add(strategy)
    not_native = [f for f in FAMILIES if f not in NATIVE_MULTITARGET]
    cs.add(
        ForbiddenAndConjunction(
            ForbiddenEqualsClause(strategy, "native"), ForbiddenInClause(model, not_native)
        )
    )
    return cs


def _multitask_cs(seed: int) -> ConfigurationSpace:
    cs = ConfigurationSpace(name="multitask", seed=seed)
    add_preprocessing(cs)
    strategy = Categorical("mtl_strategy", list(MTL_STRATEGIES), default="independent")
    cs.add(strategy)
    add_model_families(cs, classification=True, regression=True, parent=strategy, parent_value="independent")
    add_mlp_architecture(cs, "shared", strategy, "shared", default_layers=2)
    return cs


def make_spaces() -> dict[str, ConfigSpaceSearchSpace]:
    """Fresh instances of every search space, by name."""
    spaces = [
        ConfigSpaceSearchSpace(
            "binary", TaskKind.BINARY, _single_target_cs("binary", True), description="binary classification"
        ),
        ConfigSpaceSearchSpace(
            "multiclass",
            TaskKind.MULTICLASS,
            _single_target_cs("multiclass", True),
            description="multiclass classification",
        ),
        ConfigSpaceSearchSpace(
            "regression",
            TaskKind.REGRESSION,
            _single_target_cs("regression", False),
            description="regression",
        ),
        ConfigSpaceSearchSpace(
            "multilabel",
            TaskKind.MULTILABEL,
            _multilabel_cs,
            description="multi-label classification: native, binary relevance or classifier chain",
        ),
        ConfigSpaceSearchSpace(
            "multitarget",
            TaskKind.MULTITARGET,
            _multitarget_cs,
            description="multi-target regression: native, per-target or regressor chain",
        ),
        ConfigSpaceSearchSpace(
            "multitask",
            TaskKind.MULTITASK,
            _multitask_cs,
            description="mixed targets: independent models or a shared-trunk network",
        ),
    ]
    return {s.name: s for s in spaces}


__all__ = [
    "SPACE_VERSION",
    "ConfigSpaceSearchSpace",
    "describe_hyperparameter",
    "make_spaces",
]
