"""The parameters of a search, declared once: :class:`SearchSettings` and how each interface exposes them.

Every field of :class:`SearchSettings` carries a :class:`Param` in its dataclass metadata: its help text,
its ``metalearn optimize`` flag, the bounds the HTTP form declares, and whether ``POST /searches`` and
:mod:`metalearn.search.estimators`' scikit-learn estimators expose it. The evaluation protocol's parameters
(:data:`PROTOCOL_PARAMS`: ``n_folds`` and ``group_repeats``, which every interface offers) are the ones that are
not fields. The CLI, the API form and the estimator
take their help texts and defaults from :func:`params`/:func:`defaults` and leave validation to
``SearchSettings`` (its :class:`SettingError` names the parameter, so each interface can report it in
its own error format); ``tests/test_search_settings.py`` fails when one of them drifts from this module.

This module imports nothing heavy at import time (the CLI builds its options from it at start-up): the
evaluation protocol and the recommender strategies are imported when a ``SearchSettings`` is made.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Literal, NoReturn

from metalearn.data.errors import InputError

if TYPE_CHECKING:
    from metalearn.search.evaluation import EvalProtocol

OPTIMIZERS = ("smac", "random")
#: the trial budget of a search given neither ``n_trials`` nor a time limit
UNTIMED_TRIALS = 30
#: the trial budget of a search given a time limit and no ``n_trials``: no bound the time leaves reachable
UNBOUNDED_TRIALS = 10**9

Surface = Literal["cli", "api", "estimator"]

_SAME: Any = object()  # an interface's default is SearchSettings' default


@dataclass(frozen=True)
class Param:
    """One search parameter, as the interfaces expose it.

    ``ge``/``gt`` are the lower bounds ``SearchSettings`` checks and ``choices`` the only values it accepts,
    restated for the HTTP form's schema (a test keeps them in step); ``api_ge``/``api_le``/``max_length``
    are limits of the HTTP API only.
    ``api_default``/``estimator_default``/``cli_default`` are set where that interface deliberately starts
    from another value than ``SearchSettings`` (a server's shorter trials, a quicker estimator fit, the
    command line's parallel trials on every core).
    """

    help: str
    cli: str | None = None  # the ``metalearn optimize`` flag ("--on/--off" for a switch); None: not in the CLI
    api: bool = False  # a field of the ``POST /searches`` form
    estimator: bool = False  # a parameter of the scikit-learn estimators (metalearn.search.estimators)
    ge: float | None = None
    gt: float | None = None
    choices: tuple[str, ...] | None = None
    api_ge: float | None = None
    api_le: float | None = None
    max_length: int | None = None
    api_default: Any = _SAME
    estimator_default: Any = _SAME
    cli_default: Any = _SAME
    name: str = ""  # filled in from the field
    default: Any = None  # SearchSettings' default, filled in from the field
    value_type: type | None = None  # bool, int, float or str: filled in from the field's annotation

    @property
    def flags(self) -> tuple[str, ...]:
        """The CLI flags, the switch's "on" flag first (``("--warm-start", "--no-warm-start")``)."""
        return tuple(self.cli.split("/")) if self.cli else ()

    def exposed(self, surface: Surface) -> bool:
        return self.cli is not None if surface == "cli" else bool(getattr(self, surface))

    def default_for(self, surface: Surface) -> Any:
        own = {"cli": self.cli_default, "api": self.api_default, "estimator": self.estimator_default}[surface]
        return self.default if own is _SAME else own

    def annotation(self, surface: Surface) -> Any:
        """The type ``surface`` declares the parameter with: its values' type (a ``Literal`` of its ``choices``
        when it has them), optional where that surface's default is None (a form or a command line cannot send
        a null: leaving the parameter out gives it)."""
        kind: Any = Literal[self.choices] if self.choices is not None else self.value_type
        return kind if self.default_for(surface) is not None else kind | None

    def form_bounds(self) -> dict[str, Any]:
        """Keyword bounds for a FastAPI/pydantic field (``ge``, ``gt``, ``le``, ``max_length``; a number of seconds,
        bounded by ``gt``, is finite: nan was refused as "less than or equal to 10000000")."""
        ge = self.ge if self.ge is not None else self.api_ge
        bounds = {"ge": ge, "gt": self.gt, "le": self.api_le, "max_length": self.max_length,
                  "allow_inf_nan": False if self.gt is not None else None}
        return {k: v for k, v in bounds.items() if v is not None}


def trial_budget(n_trials: int | None, time_limit: float | None) -> int:
    """The most trials of a search given ``n_trials`` (None: unset) and ``time_limit`` (None: none):
    ``n_trials`` when set, else :data:`UNTIMED_TRIALS` without a time limit and no bound
    (:data:`UNBOUNDED_TRIALS`) with one."""
    if n_trials is not None:
        return n_trials
    return UNTIMED_TRIALS if time_limit is None else UNBOUNDED_TRIALS


def _param(help: str, **how: Any) -> dict[str, Param]:
    return {"param": Param(help, **how)}


def _default_protocol() -> EvalProtocol:
    from metalearn.search.evaluation import EvalProtocol

    return EvalProtocol()


def machine_cores() -> int:
    """The cores this process may run on (the ``optimize`` command's default ``--workers``)."""
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _is_bool(value: Any) -> bool:
    """True or False (a numpy bool too)."""
    return isinstance(value, bool) or (type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_"))


def _is_int(value: Any) -> bool:
    """An integer (a numpy one too), not a bool."""
    return isinstance(value, numbers.Integral) and not _is_bool(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not _is_bool(value) and math.isfinite(value)


#: a field's annotation -> (its check, what it says it expects)
_TYPE_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "bool": (_is_bool, "True or False"),
    "int": (_is_int, "an integer"),
    "int | None": (_is_int, "an integer or None"),
    "float": (_is_number, "a finite number"),
    "float | None": (_is_number, "a finite number or None"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "str | None": (lambda v: isinstance(v, str), "a string or None"),
}


class SettingError(InputError):
    """A search parameter is invalid; ``param`` names it (a :class:`SearchSettings` field)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class SearchSettings:
    """A frozen, self-checking description of one search (like SMAC's ``Scenario``).

    ``n_trials`` counts every trial of this dataset in the KB under the same protocol and space version,
    including those of earlier searches (they are told to SMAC, not re-run). Left unset it is no bound
    when a ``time_limit`` is set — the time ends the search, as FLAML's and AutoGluon's budgets do, and the
    wall-clock benchmark measures — and :data:`UNTIMED_TRIALS` otherwise; :attr:`trial_budget` resolves it.
    """

    n_trials: int | None = field(default=None, metadata=_param(
        f"Trial budget (includes runs resumed from the KB); default: none with a time limit (the time "
        f"limit ends the search), else {UNTIMED_TRIALS}.", cli="--trials", api=True, estimator=True,
        ge=1, api_le=100_000))
    time_limit: float | None = field(default=None, metadata=_param(
        "Wall-clock budget of the whole search, in seconds.", cli="--time-limit", api=True, estimator=True,
        gt=0, api_le=1e7))
    trial_time_limit: float | None = field(default=120.0, metadata=_param(
        "Seconds per trial.", cli="--trial-time-limit", api=True, estimator=True, gt=0, api_le=1e6,
        api_default=60.0))
    memory_limit_mb: int | None = field(default=None, metadata=_param(
        "Memory limit of a trial's process in MB (at least 128).", ge=128))
    seed: int = field(default=0, metadata=_param(
        "Random seed.", cli="--seed", api=True, estimator=True, api_ge=0, api_le=2**31 - 1))
    warm_start: bool = field(default=True, metadata=_param(
        "Start from KB recommendations.", cli="--warm-start/--no-warm-start", api=True, estimator=True))
    strategy: str | None = field(default=None, metadata=_param(
        "Recommender strategy for the warm start.", cli="--strategy", api=True, estimator=True,
        max_length=64))
    n_warm: int = field(default=10, metadata=_param(
        "How many recommendations enter the initial design.", cli="--n-warm", api=True, estimator=True,
        ge=0, api_le=100))
    learned_space: bool = field(default=False, metadata=_param(
        "After the warm start, SMAC searches only the region of the recommendations (and of the runs it "
        "resumes): their model families and the box their values span, widened a little (a learned search "
        "space, Perrone et al. 2019). Off (the default): the whole space; on the wall-clock benchmark at 30 s "
        "and 120 s it changed the final models within one split's noise."))
    optimizer: str = field(default="smac", metadata=_param(
        "The optimizer: smac or random.", cli="--optimizer", api=True, choices=OPTIMIZERS))
    multi_fidelity: bool = field(default=False, metadata=_param(
        "SMAC Hyperband on data subsets.", cli="--multi-fidelity", api=True))
    min_budget: float = field(default=0.1, metadata=_param(
        "Smallest data-subset budget of the multi-fidelity search, in (0, 1).", gt=0))
    ensemble: bool = field(default=True, metadata=_param(
        "Post-hoc ensemble selection over the trials' out-of-fold predictions, kept when it beats the best "
        "pipeline.", cli="--ensemble/--no-ensemble", api=True, estimator=True))
    calibrate: bool = field(default=True, metadata=_param(
        "Temperature-scale the final model's class probabilities on its out-of-fold predictions when the "
        "metric is a log loss and there are at least 500 rows, tune a binary model's decision threshold when "
        "the metric is accuracy, balanced accuracy or F1 (as AutoGluon calibrates), a multi-label model's when it "
        "is macro or micro F1, the Hamming loss or subset accuracy, and weight a multiclass model's class "
        "probabilities when it is balanced accuracy.",
        cli="--calibrate/--no-calibrate", api=True, estimator=True))
    ensemble_size: int = field(default=25, metadata=_param(
        "Rounds of the greedy ensemble selection (with replacement).", ge=1))
    protocol: EvalProtocol = field(default_factory=_default_protocol)
    resume: bool = field(default=True, metadata=_param(
        "Tell SMAC the KB's earlier runs of this dataset instead of re-running them.", estimator=True,
        estimator_default=False))
    n_initial: int | None = field(default=None, metadata=_param(
        "Cold-start initial design size (None: SMAC's default rule)."))
    # parallel trials: 1 is the sequential loop (a seed gives the same trials); the command line
    # defaults to every core, the library, the estimators and the server to 1 (reproducible, and a
    # server runs several searches at once)
    workers: int = field(default=1, metadata=_param(
        "Trials run at once, on Dask (the command line: every core; 1: one after the other, reproducible).",
        cli="--workers", api=True,
        ge=1, api_le=64, cli_default=machine_cores()))
    scheduler: str | None = field(default=None, metadata=_param(
        "Address of a Dask scheduler to run the trials on (default: a local cluster of --workers).",
        cli="--scheduler"))

    def __post_init__(self) -> None:
        def fail(param: str, message: str) -> NoReturn:
            raise SettingError(message, param)

        if self.n_trials is not None and (not _is_int(self.n_trials) or self.n_trials < 1):
            fail("n_trials", f"n_trials must be a positive integer, got {self.n_trials!r}")
        if self.time_limit is not None and not (_is_number(self.time_limit) and self.time_limit > 0):
            fail("time_limit", f"time_limit must be positive seconds (a finite number), got {self.time_limit!r}")
        if self.trial_time_limit is not None and not (_is_number(self.trial_time_limit) and self.trial_time_limit > 0):
            fail("trial_time_limit",
                 f"trial_time_limit must be positive seconds (a finite number), got {self.trial_time_limit!r}")
        if self.memory_limit_mb is not None and not _is_int(self.memory_limit_mb):
            fail("memory_limit_mb", f"memory_limit_mb must be an integer number of MB, got {self.memory_limit_mb!r}")
        if self.memory_limit_mb is not None and self.memory_limit_mb < 128:
            fail("memory_limit_mb", f"memory_limit_mb must be at least 128, got {self.memory_limit_mb}")
        if not _is_int(self.workers) or self.workers < 1:
            fail("workers", f"workers must be a positive integer, got {self.workers!r}")
        if not _is_int(self.n_warm) or self.n_warm < 0:
            fail("n_warm", f"n_warm must be an integer >= 0, got {self.n_warm!r}")
        if self.strategy is not None:
            from metalearn.metalearning.strategies import STRATEGIES

            if self.strategy not in STRATEGIES:
                fail("strategy", f"unknown strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)}")
        if self.optimizer not in OPTIMIZERS:
            fail("optimizer", f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if not (_is_number(self.min_budget) and 0 < self.min_budget < 1):
            fail("min_budget", f"min_budget must be in (0, 1), got {self.min_budget}")
        if not _is_int(self.ensemble_size) or self.ensemble_size < 1:
            fail("ensemble_size", f"ensemble_size must be a positive integer, got {self.ensemble_size!r}")
        if self.optimizer == "random" and self.multi_fidelity:
            fail("multi_fidelity", "multi_fidelity needs optimizer='smac'")
        # the other fields' types, from their annotations: ensemble="no" was accepted (and true), seed="a" too
        for f in fields(self):
            value = getattr(self, f.name)
            expected = _TYPE_CHECKS.get(str(f.type))
            if expected is not None and not (value is None and "None" in str(f.type)) and not expected[0](value):
                fail(f.name, f"{f.name} must be {expected[1]}, got {value!r}")
        from metalearn.search.evaluation import EvalProtocol

        if not isinstance(self.protocol, EvalProtocol):
            fail("protocol", f"protocol must be an EvalProtocol, got {self.protocol!r}; build settings from "
                             "parameters with SearchSettings.from_params(n_folds=..., ...)")

    @property
    def trial_budget(self) -> int:
        """The most trials the search runs (resumed ones included): ``n_trials`` when set, else no bound
        (:data:`UNBOUNDED_TRIALS`) under a time limit and :data:`UNTIMED_TRIALS` without one."""
        return trial_budget(self.n_trials, self.time_limit)

    @property
    def trials_bounded(self) -> bool:
        """Whether a trial count (not only the time limit) can end the search."""
        return self.trial_budget < UNBOUNDED_TRIALS

    @classmethod
    def from_params(
        cls, *, n_folds: int | None = None, group_repeats: bool | None = None, **values: Any
    ) -> SearchSettings:
        """Settings from the parameters as the interfaces name them: the fields, and ``n_folds`` and
        ``group_repeats`` (the protocol's folds, seeded with ``seed``) instead of a ``protocol``."""
        from metalearn.search.evaluation import EvalProtocol

        n_folds = PARAMS["n_folds"].default if n_folds is None else n_folds
        group_repeats = PARAMS["group_repeats"].default if group_repeats is None else group_repeats
        seed = values.get("seed", PARAMS["seed"].default)
        return cls(**values, protocol=EvalProtocol(n_folds=n_folds, seed=seed, group_repeats=group_repeats))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["protocol"] = self.protocol.key
        return d


_VALUE_TYPES: dict[str, type] = {t.__name__: t for t in (bool, int, float, str)}


def _declared() -> dict[str, Param]:
    out: dict[str, Param] = {}
    for f in fields(SearchSettings):
        if "param" in f.metadata:
            default = f.default if f.default is not MISSING else None
            # the annotations are text (postponed): "int | None" -> int
            value_type = _VALUE_TYPES.get(str(f.type).removesuffix(" | None"))
            out[f.name] = replace(f.metadata["param"], name=f.name, default=default, value_type=value_type)
    # the protocol's folds: EvalProtocol's default (a test keeps them equal; importing it here is heavy)
    out["n_folds"] = Param(
        "Cross-validation folds (holdout for large data).", cli="--folds", api=True, estimator=True,
        ge=2, api_le=20, name="n_folds", default=5, value_type=int,
    )
    # the protocol's grouping of repeated rows; its 5 % is metalearn.data.splits.DUPLICATED_SHARE (a test keeps
    # them equal; importing it here is heavy)
    out["group_repeats"] = Param(
        "Keep each row's exact copies (features and targets) in one validation fold when at least 5 % of the rows "
        "repeat another: for rows repeated by mistake or oversampling, whose copies in different folds make the "
        "validation reward pipelines that memorise rows. Off: repeats are taken as independent observations.",
        cli="--group-repeats/--no-group-repeats", api=True, estimator=True, name="group_repeats", default=False,
        value_type=bool,
    )
    return out


#: every search parameter by name (the SearchSettings fields with a Param, and the protocol's)
PARAMS: dict[str, Param] = _declared()
#: the parameters of the evaluation protocol (``SearchSettings.protocol``), not fields: ``from_params`` takes them
PROTOCOL_PARAMS = ("n_folds", "group_repeats")


def params(surface: Surface) -> dict[str, Param]:
    """The parameters ``surface`` exposes, by name."""
    return {name: p for name, p in PARAMS.items() if p.exposed(surface)}


def defaults(surface: Surface) -> dict[str, Any]:
    """The defaults of the parameters ``surface`` exposes, by name."""
    return {name: p.default_for(surface) for name, p in params(surface).items()}
