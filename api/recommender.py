"""The serving advisor: :class:`metalearn.advisor.Advisor` with the prepared KB cached per task kind.

``Advisor.recommend`` hands the recommenders the raw KB frames, and :func:`metalearn.recommenders.recommend`
rebuilds the regret matrix from the runs frame (``prepare_kb``: a group-by over every run of the kind)
on every call — tens of milliseconds on a small KB, far more on a large one. A service answers many
queries against the same KB, so :class:`ServingAdvisor` builds that :class:`~metalearn.recommenders.MetaKB`
once per version of the advisor's cached frames and answers each query with only the query-dependent
work (distances, the strategy itself). Results are identical to ``Advisor.recommend``'s: the same
frames, the same ``prepare_kb``, ``RecommendContext`` and strategy functions.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from metalearn import recommenders as rec
from metalearn.advisor import Advisor, RecommendedConfig, SourceInfo
from metalearn.spaces import get_space
from tasks.errors import InputError
from tasks.task import Task, TaskKind


class ServingAdvisor(Advisor):
    """An :class:`Advisor` for a long-running service. Thread-safe."""

    def __init__(self, kb: Any, mf_version: str | None = None) -> None:
        if mf_version is None:
            super().__init__(kb)
        else:
            super().__init__(kb, mf_version=mf_version)
        self._prepared: dict[str, tuple[Any, rec.MetaKB]] = {}
        self._valid: dict[tuple[str, str, str], bool] = {}
        self._plock = threading.Lock()

    def prepared(self, kind: TaskKind | str, check: bool = False) -> tuple[Any, rec.MetaKB]:
        """The advisor's frames of ``kind`` and the regret matrix built from them (cached together)."""
        kind = str(TaskKind(kind))
        data = self.kind_data(kind, check=check)
        with self._plock:
            entry = self._prepared.get(kind)
        if entry is not None and entry[0] is data:
            return data, entry[1]
        mkb = rec.prepare_kb(data.metafeatures, data.runs)
        with self._plock:
            self._prepared[kind] = (data, mkb)
        return data, mkb

    def warm(self, kind: TaskKind | str, check: bool = True) -> None:
        """Load (or reload, if the KB changed) the frames and matrix of ``kind`` — off the request path."""
        self.prepared(kind, check=check)

    def invalidate(self) -> None:
        super().invalidate()
        with self._plock:
            self._prepared.clear()

    def _is_valid(self, space: Any, config_id: str, values: dict[str, Any]) -> bool:
        key = (space.name, space.version, config_id)
        ok = self._valid.get(key)
        if ok is None:
            ok = bool(space.is_valid(values))
            self._valid[key] = ok
        return ok

    def recommend(
        self,
        metafeatures: Mapping[str, float] | pd.Series,
        task: Task | TaskKind | str,
        strategy: str | None = None,
        k: int = 10,
        exclude_ids: Iterable[str] = (),
        check_fresh: bool = True,
    ) -> list[RecommendedConfig]:
        """Same contract and results as :meth:`Advisor.recommend`, without rebuilding the regret matrix."""
        kind = task.kind if isinstance(task, Task) else TaskKind(task)
        name = self.resolve_strategy(strategy)
        if not 1 <= int(k) <= 1000:
            raise InputError(f"k must be between 1 and 1000, got {k}")
        data, mkb = self.prepared(kind, check=check_fresh)
        if data.runs.empty or data.metafeatures.empty:
            return []
        query = (
            pd.Series(metafeatures, dtype=float) if not isinstance(metafeatures, pd.Series) else metafeatures
        )
        query = query.reindex(data.metafeatures.columns)
        if query.notna().sum() == 0:
            raise InputError(
                f"none of the given meta-features match the KB's ({self.mf_version}); "
                "send the vector returned by the metafeatures command/endpoint"
            )
        if mkb.n_datasets == 0 or mkb.n_configs == 0:
            return []
        ctx = rec.RecommendContext.build(mkb, query, exclude=set(exclude_ids))
        if ctx.empty:
            return []
        raw = list(rec.STRATEGIES[name](ctx, int(k)))
        space = get_space(kind)
        values = self._values(data, [r.config_id for r in raw])
        out: list[RecommendedConfig] = []
        for r in raw:
            vals = values.get(r.config_id)
            if vals is None or not self._is_valid(space, r.config_id, vals):
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
        return out
