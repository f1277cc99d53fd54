"""The advisor: the recommenders (pure functions in ``metalearn.metalearning.strategies``) over a live KB.

It reads the KB frames the recommenders need once per task kind and caches them until the KB changes
(the run count or dataset count moves), so serving a recommendation is a pure in-memory computation.
Only configurations of the *current* search-space version are recommended.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from metalearn.data.errors import InputError
from metalearn.data.task import Task, TaskKind
from metalearn.kb.base import KnowledgeBase
from metalearn.metalearning import strategies as rec
from metalearn.metalearning.metafeatures import EXTRACTOR_VERSION
from metalearn.pipelines.spaces import get_space


@dataclass(frozen=True)
class SourceInfo:
    dataset_id: str
    name: str
    distance: float | None
    regret: float | None


@dataclass(frozen=True)
class RecommendedConfig:
    """A recommended configuration with its explanation."""

    rank: int
    config_id: str
    values: dict[str, Any]
    strategy: str
    expected_regret: float | None
    sources: tuple[SourceInfo, ...] = ()
    explanation: str = ""
    space: str = ""
    space_version: str = ""

    @property
    def summary(self) -> str:
        fam = next((str(v) for k, v in self.values.items() if k.endswith("model") or k == "family"), None)
        return fam or "-"

    @property
    def source_text(self) -> str:
        parts = []
        for s in self.sources[:3]:
            d = "" if s.distance is None else f" (d={s.distance:.3g})"
            parts.append(f"{s.name}{d}")
        more = f" +{len(self.sources) - 3}" if len(self.sources) > 3 else ""
        return ", ".join(parts) + more if parts else "-"

    def to_dict(self) -> dict[str, Any]:
        def num(x: float | None) -> float | None:
            return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else float(x)

        return {
            "rank": self.rank,
            "config_id": self.config_id,
            "space": self.space,
            "space_version": self.space_version,
            "values": self.values,
            "strategy": self.strategy,
            "expected_regret": num(self.expected_regret),
            "explanation": self.explanation,
            "sources": [
                {"dataset_id": s.dataset_id, "name": s.name, "distance": num(s.distance), "regret": num(s.regret)}
                for s in self.sources
            ],
        }


@dataclass
class _KindData:
    signature: tuple[Any, ...]
    metafeatures: pd.DataFrame
    runs: pd.DataFrame
    names: dict[str, str]
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)


class Advisor:
    """Recommendations for a query (meta-features + task) from a KB. Thread-safe; caches per kind."""

    def __init__(self, kb: KnowledgeBase, mf_version: str = EXTRACTOR_VERSION) -> None:
        self.kb = kb
        self.mf_version = mf_version
        self._cache: dict[str, _KindData] = {}
        self._lock = threading.Lock()

    @staticmethod
    def strategies() -> list[str]:
        return list(rec.STRATEGIES)

    @staticmethod
    def resolve_strategy(strategy: str | None) -> str:
        name = strategy or rec.DEFAULT_STRATEGY
        if name not in rec.STRATEGIES:
            raise InputError(f"unknown strategy {name!r}; choose one of {', '.join(rec.STRATEGIES)}")
        return name

    def _signature(self) -> tuple[Any, ...]:
        s = self.kb.stats()
        runs = s.get("runs")
        datasets = s.get("datasets")
        return (
            runs.get("total") if isinstance(runs, dict) else runs,
            datasets.get("total") if isinstance(datasets, dict) else datasets,
            s.get("metafeature_vectors"),
            s.get("configurations"),
        )

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()

    def kind_data(self, kind: TaskKind | str, check: bool = True) -> _KindData:
        kind = str(TaskKind(kind))
        sig = self._signature() if check else None
        with self._lock:
            cached = self._cache.get(kind)
            if cached is not None and (not check or cached.signature == sig):
                return cached
        space = get_space(TaskKind(kind))
        runs = self.kb.runs_frame(kind=kind, space=space.name, ok_only=False)
        if len(runs):
            runs = runs[runs["space_version"] == space.version]
        mf = self.kb.metafeature_frame(self.mf_version, kind=kind)
        names = {d.dataset_id: d.name for d in self.kb.list_datasets(kind=kind)}
        data = _KindData(signature=sig or self._signature(), metafeatures=mf, runs=runs, names=names)
        with self._lock:
            self._cache[kind] = data
        return data

    def _values(self, data: _KindData, config_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        missing = [c for c in config_ids if c not in data.configs]
        if missing:
            found = self.kb.get_configurations(missing)
            for cid, c in found.items():
                data.configs[cid] = dict(c.values)
        return data.configs

    def recommend(
        self,
        metafeatures: Mapping[str, float] | pd.Series,
        task: Task | TaskKind | str,
        strategy: str | None = None,
        k: int = 10,
        exclude_ids: Iterable[str] = (),
        check_fresh: bool = True,
    ) -> list[RecommendedConfig]:
        """Ranked configurations for a dataset described by ``metafeatures``.

        ``exclude_ids`` removes KB datasets (the query itself, or every near-duplicate in a benchmark).
        An empty KB for the kind gives an empty list.
        """
        kind = task.kind if isinstance(task, Task) else TaskKind(task)
        name = self.resolve_strategy(strategy)
        if not 1 <= int(k) <= 1000:
            raise InputError(f"k must be between 1 and 1000, got {k}")
        data = self.kind_data(kind, check=check_fresh)
        if data.runs.empty or data.metafeatures.empty:
            return []
        query = pd.Series(metafeatures, dtype=float) if not isinstance(metafeatures, pd.Series) else metafeatures
        query = query.reindex(data.metafeatures.columns)
        if query.notna().sum() == 0:
            raise InputError(
                f"none of the given meta-features match the KB's ({self.mf_version}); "
                "send the vector returned by the metafeatures command/endpoint"
            )
        raw = rec.recommend(
            name, query, data.metafeatures, data.runs, k=int(k), exclude=set(exclude_ids)
        )
        space = get_space(kind)
        values = self._values(data, [r.config_id for r in raw])
        out: list[RecommendedConfig] = []
        for r in raw:
            vals = values.get(r.config_id)
            if vals is None or not space.is_valid(vals):
                continue
            sources = tuple(
                SourceInfo(
                    s.dataset_id,
                    data.names.get(s.dataset_id, s.dataset_id),
                    None if s.distance is None or not np.isfinite(s.distance) else float(s.distance),
                    None if s.regret_there is None or not np.isfinite(s.regret_there) else float(s.regret_there),
                )
                for s in r.sources
            )
            out.append(
                RecommendedConfig(
                    rank=len(out) + 1,
                    config_id=r.config_id,
                    values=vals,
                    strategy=name,
                    expected_regret=r.expected_regret,
                    sources=sources,
                    explanation=r.explanation,
                    space=space.name,
                    space_version=space.version,
                )
            )
        return out


def evaluate_strategies(
    kb: KnowledgeBase, kind: str | None = None, strategies: list[str] | None = None, ks: tuple[int, ...] = (1, 5, 10, 25)
) -> dict[str, Any]:
    """Leave-one-dataset-out evaluation of the strategies on the KB, per task kind."""
    from metalearn.metalearning.loo import best_strategy, leave_one_dataset_out

    names = strategies or list(rec.STRATEGIES)
    for n in names:
        Advisor.resolve_strategy(n)
    kinds = [kind] if kind else [str(k) for k in TaskKind]
    advisor = Advisor(kb)
    report: dict[str, Any] = {"kinds": {}, "ks": list(ks)}
    tables = []
    for kd in kinds:
        data = advisor.kind_data(kd)
        if data.runs.empty or data.metafeatures.empty:
            continue
        table = leave_one_dataset_out(data.metafeatures, data.runs, names, ks=ks)
        if table is None or len(table) == 0:
            continue
        low, high = _table_dict(table, "ci_low"), _table_dict(table, "ci_high")
        report["kinds"][kd] = {
            "n_datasets": int(table["n_datasets"].max()),
            "n_skipped": int(table.attrs.get("n_skipped", 0)),
            "ks": list(ks),
            "table": _table_dict(table, "mean"),
            "ci": {s: {k: [low[s][k], high[s][k]] for k in low[s]} for s in low},
            "mean_rank": _table_dict(table, "mean_rank"),
            "win_rate": _table_dict(table, "win_rate"),
        }
        summary = table.assign(kind=kd)
        summary.attrs = {}  # the per-dataset frames in attrs would make pd.concat compare DataFrames
        tables.append(summary)
    if tables:
        allt = pd.concat(tables)
        report["best"] = best_strategy(allt[allt["strategy"].isin(names)])
        report["best_by_kind"] = {t["kind"].iloc[0]: best_strategy(t[t["strategy"].isin(names)]) for t in tables}
    else:
        report["best"] = rec.DEFAULT_STRATEGY
        report["best_by_kind"] = {}
    return report


def _table_dict(table: pd.DataFrame, column: str) -> dict[str, dict[str, float | None]]:
    """{strategy: {k: value of ``column``}} from a LOO summary table (NaN -> None)."""
    out: dict[str, dict[str, float | None]] = {}
    for strategy, k, value in zip(table["strategy"], table["k"], table[column], strict=True):
        v = float(value) if value is not None and np.isfinite(float(value)) else None
        out.setdefault(str(strategy), {})[str(int(k))] = v
    return out
