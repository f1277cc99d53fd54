"""The serving advisor: :class:`metalearn.metalearning.advisor.Advisor` with the prepared KB cached per task kind.

``Advisor.recommend`` hands the recommenders the raw KB frames, and :func:`metalearn.metalearning.strategies.recommend`
rebuilds the regret matrix from the runs frame (``prepare_kb``: a group-by over every run of the kind)
on every call — tens of milliseconds on a small KB, far more on a large one. A service answers many
queries against the same KB, so :class:`ServingAdvisor` builds that :class:`~metalearn.metalearning.strategies.MetaKB`
once per version of the advisor's cached frames and answers each query with
:func:`~metalearn.metalearning.strategies.recommend_from_kb` — only the query-dependent work (distances, the
strategy itself). Results equal ``Advisor.recommend``'s (the same frames, ``prepare_kb`` and strategy
functions), except that configurations invalid in the current search space are excluded before the
ranking rather than dropped after it.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from metalearn.data.errors import InputError
from metalearn.data.task import Task, TaskKind
from metalearn.metalearning import strategies as rec
from metalearn.metalearning.advisor import Advisor, RecommendedConfig, SourceInfo
from metalearn.metalearning.context import RecommendContext
from metalearn.metalearning.matrix import RegretMatrix, prepare_matrix
from metalearn.pipelines.spaces import get_space


@dataclass(frozen=True, eq=False)
class Prepared:
    """Everything a query of one kind needs, built once off the request path: the advisor's frames,
    the regret matrix, the meta-feature names, and the values of every candidate configuration that
    is valid in the current search space (so a request never reads the KB)."""

    data: Any  # metalearn.metalearning.advisor._KindData
    kb: RegretMatrix
    names: tuple[str, ...]
    space: Any
    configs: dict[str, dict[str, Any]]  # valid candidate configurations: id -> values

    @classmethod
    def build(cls, data: Any, store: Any, kind: TaskKind) -> Prepared:
        mkb = prepare_matrix(data.metafeatures, data.runs)
        names = mkb.feature_names  # the order of the query vectors
        space = get_space(kind)
        found = store.get_configurations([str(c) for c in mkb.config_ids]) if mkb.n_configs else {}
        configs = {cid: dict(c.values) for cid, c in found.items() if space.is_valid(dict(c.values))}
        # configurations not valid in the current space are dropped from the matrix once, here
        mkb = mkb.with_configs(configs.keys())
        RecommendContext.build(mkb, None).warm()  # the query-independent state, built now
        return cls(data, mkb, names, space, configs)

    def query(self, metafeatures: Mapping[str, Any] | pd.Series) -> tuple[np.ndarray, int]:
        """The query aligned to the KB's meta-features (NaN where unknown) and how many are known."""
        get = metafeatures.get
        values = np.fromiter((_number(get(n)) for n in self.names), dtype=float, count=len(self.names))
        return values, int(np.count_nonzero(~np.isnan(values)))


def _number(x: Any) -> float:
    if x is None:
        return math.nan
    try:
        f = float(x)
    except (TypeError, ValueError):
        return math.nan
    return f if math.isfinite(f) else math.nan


class ServingAdvisor(Advisor):
    """An :class:`Advisor` for a long-running service. Thread-safe."""

    def __init__(self, kb: Any, mf_version: str | None = None) -> None:
        if mf_version is None:
            super().__init__(kb)
        else:
            super().__init__(kb, mf_version=mf_version)
        self._prepared: dict[str, Prepared] = {}
        self._plock = threading.Lock()

    def prepared(self, kind: TaskKind | str, check: bool = False) -> Prepared:
        """The advisor's frames of ``kind`` and the regret matrix built from them (cached together).

        With ``check=False`` (the request path) a cached entry is returned as it is, never rebuilt: only
        :meth:`warm` (run in the background) replaces it, atomically, once the new one is ready.
        """
        kind = str(TaskKind(kind))
        if not check:
            entry = self._prepared.get(kind)
            if entry is not None:
                return entry
        data = self.kind_data(kind, check=check)
        with self._plock:
            entry = self._prepared.get(kind)
        if entry is not None and entry.data is data:
            return entry
        entry = Prepared.build(data, self.kb, TaskKind(kind))
        with self._plock:
            self._prepared[kind] = entry
        return entry

    def warm(self, kind: TaskKind | str, check: bool = True) -> None:
        """Load (or reload, if the KB changed) the frames and matrix of ``kind`` — off the request path."""
        self.prepared(kind, check=check)

    def n_known(self, kind: TaskKind | str, metafeatures: Mapping[str, Any]) -> int:
        """How many of the KB's meta-features of ``kind`` the query gives a finite value."""
        return self.prepared(kind).query(metafeatures)[1]

    def invalidate(self) -> None:
        super().invalidate()
        with self._plock:
            self._prepared.clear()

    def recommend(
        self,
        metafeatures: Mapping[str, Any] | pd.Series,
        task: Task | TaskKind | str,
        strategy: str | None = None,
        k: int = 10,
        exclude_ids: Iterable[str] = (),
        check_fresh: bool = True,
    ) -> list[RecommendedConfig]:
        """Same contract as :meth:`Advisor.recommend`, without rebuilding the regret matrix; configurations
        that are not valid in the current search space never take a place in the top ``k``."""
        return self.recommend_with_count(metafeatures, task, strategy, k, exclude_ids, check_fresh)[0]

    def recommend_with_count(
        self,
        metafeatures: Mapping[str, Any] | pd.Series,
        task: Task | TaskKind | str,
        strategy: str | None = None,
        k: int = 10,
        exclude_ids: Iterable[str] = (),
        check_fresh: bool = True,
    ) -> tuple[list[RecommendedConfig], int]:
        """:meth:`recommend`, and how many of the KB's meta-features the query gives a finite value."""
        kind = task.kind if isinstance(task, Task) else TaskKind(task)
        name = self.resolve_strategy(strategy)
        if not 1 <= int(k) <= 1000:
            raise InputError(f"k must be between 1 and 1000, got {k}")
        entry = self.prepared(kind, check=check_fresh)
        data, mkb = entry.data, entry.kb
        if data.runs.empty or data.metafeatures.empty:
            return [], 0
        query, n_known = entry.query(metafeatures)
        if n_known == 0:
            raise InputError(
                f"none of the given meta-features match the KB's ({self.mf_version}); "
                "send the vector returned by the metafeatures command/endpoint"
            )
        # candidates not valid in the current space are not in entry.kb (not dropped after the ranking)
        raw = rec.recommend_from_matrix(name, query, mkb, k=int(k), exclude=set(exclude_ids))
        space = entry.space
        out: list[RecommendedConfig] = []
        for r in raw:
            vals = entry.configs.get(r.config_id)
            if vals is None:  # not valid in the current space version (or gone): never recommended
                continue
            sources = tuple(
                SourceInfo(
                    s.dataset_id,
                    data.names.get(s.dataset_id, s.dataset_id),
                    None if s.distance is None or not np.isfinite(s.distance) else float(s.distance),
                    None
                    if s.regret_there is None or not np.isfinite(s.regret_there)
                    else float(s.regret_there),
                )
                for s in r.sources
            )
            regret = r.expected_regret
            out.append(
                RecommendedConfig(
                    rank=len(out) + 1,
                    config_id=r.config_id,
                    values=vals,
                    strategy=name,
                    expected_regret=None if regret is None or not math.isfinite(regret) else float(regret),
                    sources=sources,
                    explanation=r.explanation,
                    space=space.name,
                    space_version=space.version,
                )
            )
        return out, n_known
