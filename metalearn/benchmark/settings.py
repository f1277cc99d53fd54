"""What a benchmark runs: its strategies (baselines, recommenders, FLAML), the systems of a wall-clock
(peer) benchmark and :class:`BenchmarkSettings`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from metalearn.data.errors import InputError
from metalearn.search.evaluation import EvalProtocol

__all__ = [
    "AUTOGLUON",
    "AUTOGLUON_HINT",
    "BASELINES",
    "FLAML",
    "FLAML_HINT",
    "FLAML_ZEROSHOT",
    "PEERS",
    "PRODUCT",
    "RF_BASELINE",
    "TOP1",
    "BenchmarkSettings",
    "StrategySpec",
    "all_strategies",
    "budget_strategy",
    "parse_budgets",
    "parse_peers",
    "parse_strategies",
    "peer_systems",
    "split_strategy",
    "strategy_spec",
]

#: Strategies that are not recommenders.
BASELINES: tuple[str, ...] = ("warm", "cold", "random")
FLAML = "flaml"
FLAML_HINT = "pip install metalearn[flaml]"

# wall-clock (peer) benchmarks: systems run at equal wall-clock budgets
PRODUCT = "product"  # metalearn.search.automl.optimize with time_limit=budget
AUTOGLUON = "autogluon"
AUTOGLUON_HINT = "pip install metalearn[autogluon]"
PEERS: tuple[str, ...] = (FLAML, AUTOGLUON)
PEER_HINTS = {FLAML: FLAML_HINT, AUTOGLUON: AUTOGLUON_HINT}
RF_BASELINE = "rf"  # a default random forest: the peer of multi-output kinds (no budget)
TOP1 = "top1"  # the top-1 recommendation alone, one fit (no budget)
FLAML_ZEROSHOT = "flaml_zeroshot"  # FLAML's zero-shot (flamlized) LightGBM, one fit (no budget)
SINGLE_TARGET_KINDS = ("binary", "multiclass", "regression")


# ------------------------------------------------------------------------------------------ strategies
@dataclass(frozen=True)
class StrategySpec:
    """How a benchmark strategy searches: optimizer ``smac``/``random``/``flaml``, warm start, recommender."""

    name: str
    optimizer: str
    warm_start: bool
    recommender: str | None

    @property
    def has_trajectory(self) -> bool:
        """Whether the strategy's per-trial CV scores are comparable with the others' (not FLAML)."""
        return self.optimizer != FLAML


def all_strategies() -> list[str]:
    """Every strategy name: the baselines, one per recommender, and flaml."""
    from metalearn.metalearning.advisor import Advisor

    return [*BASELINES, *Advisor.strategies(), FLAML]


def strategy_spec(name: str) -> StrategySpec:
    from metalearn.metalearning.advisor import Advisor
    from metalearn.metalearning.strategies import DEFAULT_STRATEGY

    if name == "warm":
        return StrategySpec(name, "smac", True, DEFAULT_STRATEGY)
    if name == "cold":
        return StrategySpec(name, "smac", False, None)
    if name == "random":
        return StrategySpec(name, "random", False, None)
    if name == FLAML:
        return StrategySpec(name, FLAML, False, None)
    if name in Advisor.strategies():
        return StrategySpec(name, "smac", True, name)
    raise InputError(
        f"unknown benchmark strategy {name!r}; choose from {', '.join(all_strategies())} (or 'all')"
    )


def parse_strategies(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"warm,cold,knn"`` (or a list, or ``"all"``) -> validated, de-duplicated strategy names."""
    if text is None:
        return BASELINES
    items = [s.strip() for s in (text.split(",") if isinstance(text, str) else text)]
    items = [s for s in items if s]
    if not items:
        raise InputError("no strategies given; use e.g. --strategies warm,cold,random (or 'all')")
    if items == ["all"]:
        return tuple(all_strategies())
    out: list[str] = []
    for s in items:
        strategy_spec(s)
        if s not in out:
            out.append(s)
    return tuple(out)


def parse_budgets(text: str | Sequence[float] | None) -> tuple[float, ...]:
    """``"30,120"`` (seconds, or a list) -> distinct positive budgets in the given order; None -> ()."""
    if text is None:
        return ()
    items = [s.strip() for s in text.split(",")] if isinstance(text, str) else list(text)
    out: list[float] = []
    for item in items:
        if item == "":
            continue
        try:
            value = float(item)
        except (TypeError, ValueError):
            raise InputError(f"--budgets takes seconds like 30,120; got {item!r}") from None
        if not (value > 0 and value < float("inf")):
            raise InputError(f"--budgets must be positive seconds, got {item!r}")
        if value not in out:
            out.append(value)
    return tuple(out)


def parse_peers(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"flaml,autogluon"`` (or a list) -> validated peer names; None or ``"none"`` -> ()."""
    if text is None:
        return ()
    items = [s.strip() for s in (text.split(",") if isinstance(text, str) else text)]
    items = [s for s in items if s and s != "none"]
    out: list[str] = []
    for s in items:
        if s not in PEERS:
            raise InputError(f"unknown peer {s!r}; choose from {', '.join(PEERS)}")
        if s not in out:
            out.append(s)
    return tuple(out)


def budget_strategy(system: str, budget: float | None) -> str:
    """The stored strategy name of a wall-clock cell: ``product@30``; a system without budget: its name."""
    return system if budget is None else f"{system}@{budget:g}"


def split_strategy(strategy: str) -> tuple[str, float | None]:
    """``"flaml@30"`` -> ``("flaml", 30.0)``; ``"top1"`` -> ``("top1", None)``."""
    system, sep, budget = strategy.partition("@")
    return system, (float(budget) if sep else None)


def peer_systems(kind: str, budgets: Sequence[float], peers: Sequence[str], zero_shot: bool) -> list[str]:
    """The strategies (cells) of a wall-clock benchmark for a dataset of ``kind``: the product and each
    peer per budget (binary, multiclass, regression), or the product per budget and a default random
    forest (other kinds); with ``zero_shot`` also the top-1 recommendation alone (and FLAML's zero-shot
    LightGBM when flaml is a peer of the kind)."""
    single = kind in SINGLE_TARGET_KINDS
    out = [budget_strategy(s, b) for b in budgets for s in (PRODUCT, *(peers if single else ()))]
    if not single:
        out.append(RF_BASELINE)
    if zero_shot:
        out.append(TOP1)
        if single and FLAML in peers:
            out.append(FLAML_ZEROSHOT)
    return out


# ------------------------------------------------------------------------------------------ settings
@dataclass(frozen=True)
class BenchmarkSettings:
    """What a benchmark runs. Fields in :data:`COMPARABLE` must match when a benchmark is resumed."""

    strategies: tuple[str, ...] = BASELINES
    n_trials: int = 25
    seeds: tuple[int, ...] = (0,)
    time_limit: float | None = None  # wall-clock seconds per search (cell)
    trial_time_limit: float | None = 60.0
    memory_limit_mb: int | None = None
    max_rows: int | None = 5000
    n_folds: int = 3
    test_size: float = 0.25
    split_seed: int = 0
    n_warm: int = 10
    workers: int = 1
    write_kb: bool = False
    retry_failed: bool = False
    dup_distance: float = 0.05  # meta-feature distance (mean |scaled difference|) of a near-duplicate
    # wall-clock (peer) mode: one cell per (dataset, system, budget, seed); empty: the trial benchmark
    budgets: tuple[float, ...] = ()  # seconds
    peers: tuple[str, ...] = ()  # flaml, autogluon
    zero_shot: bool = True  # also the top-1 recommendation alone (and FLAML's zero-shot estimator)
    learned_space: bool = False  # the product's SMAC searches the recommendations' region (SearchSettings)

    COMPARABLE = (
        "n_trials",
        "time_limit",
        "trial_time_limit",
        "max_rows",
        "n_folds",
        "test_size",
        "split_seed",
        "n_warm",
        "dup_distance",
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "budgets", parse_budgets(self.budgets))
        object.__setattr__(self, "peers", parse_peers(self.peers))
        if self.peers and not self.budgets:
            raise InputError("--peers needs --budgets (seconds per run, e.g. --budgets 30,120)")
        if self.budgets:  # the systems follow from the peers and each dataset's kind
            object.__setattr__(self, "strategies", ())
        else:
            object.__setattr__(self, "strategies", parse_strategies(self.strategies))
        if not isinstance(self.n_trials, int) or self.n_trials < 1:
            raise InputError(f"--trials must be a positive integer, got {self.n_trials!r}")
        seeds = tuple(int(s) for s in self.seeds)
        if not seeds or len(set(seeds)) != len(seeds):
            raise InputError(f"seeds must be distinct integers (at least one), got {self.seeds!r}")
        object.__setattr__(self, "seeds", seeds)
        if self.time_limit is not None and not self.time_limit > 0:
            raise InputError(f"--time-limit must be positive seconds, got {self.time_limit!r}")
        if self.trial_time_limit is not None and not self.trial_time_limit > 0:
            raise InputError(f"--trial-time-limit must be positive seconds, got {self.trial_time_limit!r}")
        if self.max_rows is not None and self.max_rows < 50:
            raise InputError(f"--max-rows must be at least 50, got {self.max_rows}")
        if self.n_folds < 2:
            raise InputError(f"--folds must be at least 2, got {self.n_folds}")
        if not 0.05 <= self.test_size <= 0.5:
            raise InputError(f"test_size must be in [0.05, 0.5], got {self.test_size}")
        if self.n_warm < 1:
            raise InputError(f"n_warm must be >= 1, got {self.n_warm}")
        if self.workers < 1:
            raise InputError(f"--workers must be >= 1, got {self.workers}")
        if not self.dup_distance >= 0:
            raise InputError(f"dup_distance must be >= 0, got {self.dup_distance}")

    @property
    def protocol(self) -> EvalProtocol:
        return EvalProtocol(n_folds=self.n_folds, seed=self.split_seed)

    @property
    def budget_mode(self) -> bool:
        """A wall-clock (peer) benchmark rather than the trial-budget one."""
        return bool(self.budgets)

    def comparable(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.COMPARABLE}
        if self.budget_mode:  # a trial benchmark's directory is not resumed as a wall-clock one
            d["mode"] = "wall-clock"
        if self.learned_space:  # (only when on: directories of earlier releases resume as before)
            d["learned_space"] = True
        return d

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["strategies"] = list(self.strategies)
        d["seeds"] = list(self.seeds)
        if self.budget_mode:
            d["budgets"] = list(self.budgets)
            d["peers"] = list(self.peers)
        else:  # the trial benchmark's settings as before
            for k in ("budgets", "peers", "zero_shot"):
                d.pop(k)
        return d
