"""The advisor: the recommenders (:mod:`metalearn.metalearning.strategies`) over a live KB, for the
Python API and the service alike.

Per task kind it reads the KB frames the recommenders need and prepares, once, everything a query
needs (:class:`_Prepared`): the regret matrix (``prepare_matrix``: a group-by over every run of the
kind, the costly part), restricted to the configurations valid in the *current* search-space
version, the values of those configurations, and the strategies' query-independent state. A query
then only pays for its own work (distances, the strategy itself) and never reads the KB.

The prepared state is cached per kind until the KB changes (the run, dataset, meta-feature or
configuration count moves). ``recommend(check_fresh=True)`` (the Python API's default) checks that
on every call; a service passes ``check_fresh=False`` and calls :meth:`Advisor.warm` in the
background, which replaces a kind's state atomically once the new one is ready.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from metalearn.data.dataset import Dataset
from metalearn.data.errors import InputError
from metalearn.data.metrics import metric_names
from metalearn.data.numbers import finite_or_none
from metalearn.data.task import DEFAULT_METRIC, Task, TaskKind
from metalearn.kb.base import KnowledgeBase
from metalearn.metalearning import strategies as rec
from metalearn.metalearning.context import RecommendContext
from metalearn.metalearning.matrix import RegretMatrix, prepare_matrix
from metalearn.metalearning.metafeatures import EXTRACTOR_VERSION
from metalearn.pipelines.spaces import SearchSpace, get_space


@dataclass(frozen=True)
class SourceInfo:
    dataset_id: str
    name: str
    distance: float | None
    regret: float | None
    #: every run of the configuration there failed (timed out, crashed, out of memory): counted as regret 1
    failed: bool = False


@dataclass(frozen=True)
class RecommendedConfig:
    """A recommended configuration with its explanation."""

    rank: int
    config_id: str
    values: dict[str, Any]
    strategy: str
    #: predicted normalised regret on the query dataset (similarity-weighted over the KB datasets
    #: that evaluated the configuration; 0 = as good as the best observed there, 1 = the worst)
    expected_regret: float | None
    sources: tuple[SourceInfo, ...] = ()
    explanation: str = ""
    space: str = ""
    space_version: str = ""
    #: the same estimate in the units of ``score_metric`` (None when it cannot be estimated)
    expected_score: float | None = None
    score_metric: str = ""
    #: composed per target for a multitask dataset (:mod:`metalearn.metalearning.composed`)
    composed: bool = False
    #: the metric of the KB runs' regrets: the task's when it is another of its kind's metrics (every run
    #: records them all), else the kind's default (:meth:`Advisor.ranking_metric`)
    ranked_by: str = ""

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
        return {
            "rank": self.rank,
            "config_id": self.config_id,
            "space": self.space,
            "space_version": self.space_version,
            "values": self.values,
            "strategy": self.strategy,
            "expected_regret": finite_or_none(self.expected_regret),
            "expected_score": finite_or_none(self.expected_score),
            "score_metric": self.score_metric or None,
            "composed": self.composed,
            "ranked_by": self.ranked_by or None,
            "explanation": self.explanation,
            "sources": [
                {
                    "dataset_id": s.dataset_id,
                    "name": s.name,
                    "distance": finite_or_none(s.distance),
                    "regret": finite_or_none(s.regret),
                    "failed": s.failed,
                }
                for s in self.sources
            ],
        }


@dataclass(frozen=True, eq=False)
class _KindData:
    """The KB frames of one task kind the recommenders read (runs of the kind's search space, any version)."""

    signature: tuple[Any, ...]
    metafeatures: pd.DataFrame
    runs: pd.DataFrame
    names: dict[str, str]  # dataset id -> name


@dataclass(frozen=True, eq=False)
class _Prepared:
    """Everything a query of one kind needs, built once off the request path: the frames, the regret
    matrix restricted to the candidate configurations valid in the current search space (so such a
    configuration never takes a place in the top ``k``), their values (so a query never reads the
    KB), and the meta-feature names in the order of the query vectors."""

    data: _KindData
    matrix: RegretMatrix
    names: tuple[str, ...]
    space: SearchSpace
    configs: dict[str, dict[str, Any]]  # valid candidate configurations: id -> values

    @classmethod
    def build(cls, data: _KindData, kb: KnowledgeBase, kind: TaskKind) -> _Prepared:
        matrix = prepare_matrix(data.metafeatures, data.runs)
        names = matrix.feature_names
        space = get_space(kind)
        found = kb.get_configurations([str(c) for c in matrix.config_ids]) if matrix.n_configs else {}
        configs = {cid: dict(c.values) for cid, c in found.items() if space.is_valid(dict(c.values))}
        matrix = matrix.with_configs(configs.keys())
        RecommendContext.build(matrix, None).warm()  # the query-independent state, built now
        return cls(data, matrix, names, space, configs)

    def query(self, metafeatures: Mapping[str, Any] | pd.Series) -> tuple[np.ndarray, int]:
        """The query aligned to the KB's meta-features (NaN where unknown) and how many are known."""
        get = metafeatures.get
        values = np.fromiter((_number(get(n)) for n in self.names), dtype=float, count=len(self.names))
        return values, int(np.count_nonzero(~np.isnan(values)))


def _number(x: Any) -> float:
    """``x`` as a float, NaN when it is missing, not a number or not finite (the query vector's form)."""
    f = finite_or_none(x)
    return math.nan if f is None else f


class Advisor:
    """Recommendations for a query (meta-features + task) from a KB. Thread-safe; caches per kind."""

    def __init__(self, kb: KnowledgeBase, mf_version: str = EXTRACTOR_VERSION) -> None:
        self.kb = kb
        self.mf_version = mf_version
        # keyed by (kind, metric): metric None for the stored scores, else the metric a query ranks by
        self._frames: dict[tuple[str, str | None], _KindData] = {}
        self._prepared: dict[tuple[str, str | None], _Prepared] = {}
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
            self._frames.clear()
            self._prepared.clear()

    def kind_data(self, kind: TaskKind | str, check: bool = True, metric: str | None = None) -> _KindData:
        """The KB frames of ``kind`` (cached; with ``check``, re-read when the KB changed); with ``metric``,
        the runs scored by that metric of the kind (every run records all of them), not the stored one."""
        kind = str(TaskKind(kind))
        key = (kind, metric)
        sig = self._signature() if check else None
        with self._lock:
            cached = self._frames.get(key)
            if cached is not None and (not check or cached.signature == sig):
                return cached
        space = get_space(TaskKind(kind))
        # every version's runs: a configuration of an earlier version is a candidate when it is still
        # valid in the current space (see _Prepared.build), so a space bump keeps the KB warm-starting
        runs = self.kb.runs_frame(kind=kind, space=space.name, ok_only=False, metric=metric)
        mf = self.kb.metafeature_frame(self.mf_version, kind=kind)
        names = {d.dataset_id: d.name for d in self.kb.list_datasets(kind=kind)}
        data = _KindData(signature=sig or self._signature(), metafeatures=mf, runs=runs, names=names)
        with self._lock:
            self._frames[key] = data
        return data

    def prepared(self, kind: TaskKind | str, check: bool = False, metric: str | None = None) -> _Prepared:
        """The frames of ``kind`` (scored by ``metric``: :meth:`kind_data`) and everything built from them
        (cached together).

        With ``check=False`` (a service's request path) a cached entry is returned as it is, never
        rebuilt: only :meth:`warm` (run in the background) replaces it, once the new one is ready.
        """
        kind = str(TaskKind(kind))
        key = (kind, metric)
        if not check:
            entry = self._prepared.get(key)
            if entry is not None:
                return entry
        data = self.kind_data(kind, check=check, metric=metric)
        with self._lock:
            entry = self._prepared.get(key)
        if entry is not None and entry.data is data:
            return entry
        entry = _Prepared.build(data, self.kb, TaskKind(kind))
        with self._lock:
            self._prepared[key] = entry
        return entry

    @staticmethod
    def ranking_metric(task: Task | TaskKind | str, metric: str | None = None) -> str | None:
        """The metric to rank the KB's configurations by: ``metric``, else ``task``'s own, when it is another
        of the metrics every run of its kind records (a search by accuracy starts from what was most
        accurate), else None (each KB dataset's stored main metric: the kind's default)."""
        kind = task.kind if isinstance(task, Task) else TaskKind(task)
        name = metric or (task.metric if isinstance(task, Task) else None)
        if kind is TaskKind.MULTITASK or not name:  # multitask: composed per target (metalearning.composed)
            return None
        if name == DEFAULT_METRIC[kind] or name not in metric_names(kind):
            return None
        return name

    def is_prepared(self, kind: TaskKind | str, metric: str | None = None) -> bool:
        """Whether :meth:`prepared` has ``kind``'s state for ``metric`` at hand (a query costs milliseconds)."""
        return (str(TaskKind(kind)), metric) in self._prepared

    def warm(self, kind: TaskKind | str, check: bool = True) -> None:
        """Load (or reload, if the KB changed) the frames and matrix of ``kind`` — off the request path —,
        and those of the other metrics a query asked for before (:meth:`ranking_metric`)."""
        self.prepared(kind, check=check)
        kind = str(TaskKind(kind))
        with self._lock:
            metrics = [m for k, m in self._prepared if k == kind and m is not None]
        for metric in metrics:
            self.prepared(kind, check=check, metric=metric)

    def recommend(
        self,
        metafeatures: Mapping[str, Any] | pd.Series,
        task: Task | TaskKind | str,
        strategy: str | None = None,
        k: int = 10,
        exclude_ids: Iterable[str] = (),
        check_fresh: bool = True,
    ) -> list[RecommendedConfig]:
        """Ranked configurations for a dataset described by ``metafeatures``, by their regret in ``task``'s
        metric when it is another of its kind's metrics (:meth:`ranking_metric`; else the stored scores').

        ``exclude_ids`` removes KB datasets (the query itself, or every near-duplicate in a benchmark).
        Only configurations valid in the current search space (of any version) are candidates. An empty
        KB for the kind gives an empty list. ``check_fresh=False`` skips the check that the KB has not
        changed since the kind's state was prepared (a service refreshes it with :meth:`warm` instead).
        """
        return self.recommend_with_count(metafeatures, task, strategy, k, exclude_ids, check_fresh)[0]

    def recommend_dataset(
        self,
        dataset: Dataset,
        metafeatures: Mapping[str, Any] | pd.Series,
        strategy: str | None = None,
        k: int = 10,
        exclude_ids: Iterable[str] = (),
        check_fresh: bool = True,
        seed: int = 0,
    ) -> list[RecommendedConfig]:
        """:meth:`recommend` for a dataset at hand: for a multitask dataset the KB has no multitask
        runs for, a warm start composed per target (:func:`~metalearn.metalearning.composed.compose_multitask`;
        each result has ``composed=True``)."""
        recs = self.recommend(metafeatures, dataset.task, strategy, k, exclude_ids, check_fresh)
        if recs or dataset.task.kind is not TaskKind.MULTITASK:
            return recs
        from metalearn.metalearning.composed import compose_multitask

        return compose_multitask(
            self, dataset, strategy, k, exclude_ids=exclude_ids, seed=seed, check_fresh=check_fresh
        )

    def no_recommendation_reason(self, kind: TaskKind | str, exclude_ids: Iterable[str] = ()) -> str:
        """Why :meth:`recommend` gives nothing for ``kind`` (one line, for the CLI and the service)."""
        kind = TaskKind(kind)
        data = self.prepared(kind).data
        if data.runs.empty or data.metafeatures.empty:
            if kind is TaskKind.MULTITASK:
                return (
                    "the knowledge base has no multitask datasets; a multitask warm start is composed per "
                    "target from the dataset itself (its meta-feature vector describes only its first class "
                    "target): upload the dataset (POST /recommendations/upload, the recommend command) or "
                    "run a search"
                )
            return f"the knowledge base has no {kind} runs of the current search space yet"
        if set(exclude_ids):
            return f"no {kind} KB dataset is left once the excluded ones are removed"
        return f"no {kind} configuration of the knowledge base is valid in the current search space"

    def recommend_with_count(
        self,
        metafeatures: Mapping[str, Any] | pd.Series,
        task: Task | TaskKind | str,
        strategy: str | None = None,
        k: int = 10,
        exclude_ids: Iterable[str] = (),
        check_fresh: bool = True,
        metric: str | None = None,
    ) -> tuple[list[RecommendedConfig], int]:
        """:meth:`recommend`, and how many of the KB's meta-features the query gives a finite value
        (``metric``: the one to rank by when ``task`` is only a kind; :meth:`ranking_metric`)."""
        kind = task.kind if isinstance(task, Task) else TaskKind(task)
        name = self.resolve_strategy(strategy)
        if not 1 <= int(k) <= 1000:
            raise InputError(f"k must be between 1 and 1000, got {k}")
        ranked_by = self.ranking_metric(task, metric)
        entry = self.prepared(kind, check=check_fresh, metric=ranked_by)
        if ranked_by is not None and entry.matrix.n_datasets == 0:  # no KB run recorded it: the stored scores
            ranked_by = None
            entry = self.prepared(kind, check=check_fresh)
        data = entry.data
        if data.runs.empty or data.metafeatures.empty:
            return [], 0
        query, n_known = entry.query(metafeatures)
        if n_known == 0:
            names = set(entry.names)
            given = metafeatures.index if isinstance(metafeatures, pd.Series) else list(metafeatures)
            matching = [str(n) for n in given if str(n) in names]
            raise InputError(
                (f"the given meta-feature(s) {', '.join(map(repr, matching[:5]))} of the KB's ({self.mf_version}) have "
                 "no finite value; send numbers (the vector returned by the metafeatures command/endpoint)")
                if matching else
                (f"none of the given meta-features match the KB's ({self.mf_version}); "
                 "send the vector returned by the metafeatures command/endpoint")
            )  # fmt: skip
        raw = rec.recommend_from_matrix(
            name, query, entry.matrix, k=int(k), exclude=set(exclude_ids), names=data.names,
            score_metric=task.metric if isinstance(task, Task) else None,
        )  # fmt: skip
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
                    finite_or_none(s.distance),
                    finite_or_none(s.regret_there),
                    s.failed,
                )
                for s in r.sources
            )
            out.append(
                RecommendedConfig(
                    rank=len(out) + 1,
                    config_id=r.config_id,
                    values=vals,
                    strategy=name,
                    expected_regret=finite_or_none(r.expected_regret),
                    sources=sources,
                    explanation=r.explanation,
                    space=space.name,
                    space_version=space.version,
                    expected_score=finite_or_none(r.expected_score),
                    score_metric=r.score_metric,
                    ranked_by=ranked_by or DEFAULT_METRIC[kind],
                )
            )
        return out, n_known


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
