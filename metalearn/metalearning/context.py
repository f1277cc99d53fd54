"""One query against a prepared :class:`~metalearn.metalearning.matrix.RegretMatrix`: which KB datasets
and configurations may be used, and the values the strategies share, cached.

Values that depend on the masks only (not on the query) are kept in a static cache shared by every
query with the same masks (every query without exclusions shares the matrix's own), so a query only
pays for its own distances and strategy.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from metalearn.metalearning.distances import DistanceFit, Metric, query_distances, query_vector
from metalearn.metalearning.matrix import RegretMatrix, usable_masks

__all__ = ["PRIOR_STRENGTH", "RecommendContext", "ranked_configs", "row_keys"]

#: Pseudo-datasets of the overall mean regret a configuration's global mean is shrunk with. With 1, a
#: configuration one search evaluated (regret 0 on its own dataset, being that search's best) had a prior of half the
#: mean and became the first pick of ``hybrid`` / ``surrogate`` on 14 of the 66 shipped binary datasets after a
#: single 25-trial search on a synthetic dataset (stop 53 QA): every search writes back such configurations. With 4
#: none is; on the shipped KB the leave-one-dataset-out tables are the same to 3 decimals, 2 of 41 multiclass first
#: picks changed (k=1 regret 0.0126 -> 0.0125) and no other kind's.
PRIOR_STRENGTH = 4.0


@dataclass(eq=False)
class RecommendContext:
    """One query against a prepared KB: which datasets and configurations may be used.

    ``datasets``: boolean mask of KB datasets usable as evidence (not excluded, with at least one
    allowed evaluated configuration); ``configs``: boolean mask of candidate configurations (allowed,
    and evaluated on at least one usable dataset). Distances are computed lazily and cached, so
    several strategies can share one context.
    """

    matrix: RegretMatrix
    query: np.ndarray
    datasets: np.ndarray
    configs: np.ndarray
    _cache: dict[tuple[Any, ...], Any] = field(default_factory=dict, repr=False)
    #: KB dataset id -> name, for the explanations (an id without a name is shown as it is)
    names: Mapping[str, str] = field(default_factory=dict, repr=False)
    #: values that depend on the masks only (shared by every query without exclusions)
    _static: dict[tuple[Any, ...], Any] = field(default_factory=dict, repr=False)

    @classmethod
    def build(
        cls,
        matrix: RegretMatrix,
        query_mf: pd.Series | Mapping[str, Any] | None,
        exclude: Iterable[Hashable] = (),
        allowed_configs: Collection[Hashable] | None = None,
        names: Mapping[str, str] | None = None,
    ) -> RecommendContext:
        q = query_vector(query_mf, matrix.feature_names)
        names = names or {}
        if isinstance(exclude, str):
            exclude = (exclude,)
        excluded = [i for i in (matrix.dataset_index.get(d) for d in exclude) if i is not None]
        if not excluded and allowed_configs is None:
            dmask, cmask, static = matrix.base_masks()
            return cls(matrix=matrix, query=q, datasets=dmask, configs=cmask, names=names, _static=static)
        dmask = np.ones(matrix.n_datasets, dtype=bool)
        dmask[excluded] = False
        cmask = np.ones(matrix.n_configs, dtype=bool)
        if allowed_configs is not None:
            if isinstance(allowed_configs, str):
                allowed_configs = (allowed_configs,)
            cmask[:] = False
            for c in allowed_configs:
                j = matrix.config_index.get(c)
                if j is not None:
                    cmask[j] = True
        dmask, cmask = usable_masks(matrix, dmask, cmask)
        return cls(matrix=matrix, query=q, datasets=dmask, configs=cmask, names=names)

    def name(self, dataset_id: Hashable) -> str:
        """The name of a KB dataset for an explanation (its id when the name is unknown)."""
        return self.names.get(str(dataset_id), str(dataset_id))

    @property
    def empty(self) -> bool:
        return not (self.datasets.any() and self.configs.any())

    def distances(self, metric: Metric = "l1", max_nan_fraction: float = 0.5) -> np.ndarray | None:
        """Distance of each KB dataset to the query (inf for unusable ones), or None."""
        key = ("dist", metric, max_nan_fraction)
        if key not in self._cache:
            self._cache[key] = query_distances(
                self.matrix.features, self.query, self.datasets, metric=metric, max_nan_fraction=max_nan_fraction,
                fit=self.distance_fit(max_nan_fraction),
            )  # fmt: skip
        result: np.ndarray | None = self._cache[key]
        return result

    def warm(self) -> RecommendContext:
        """Compute the query-independent values the strategies use (with their default parameters),
        so that the first queries sharing these masks do not pay for them."""
        if not self.empty:
            self.submatrix()
            self.filled()
            self.global_means()
            self.no_credit_matrices()
            row_keys(self, 0)
            self.distance_fit()
        return self

    def distance_fit(self, max_nan_fraction: float = 0.5) -> DistanceFit:
        """The meta-feature scaling fitted on the usable datasets (shared by queries with these masks)."""
        fit: DistanceFit = self.static(
            ("fit", max_nan_fraction),
            lambda: DistanceFit.fit(self.matrix.features, self.datasets, max_nan_fraction, "median"),
        )
        return fit

    def static(self, key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
        """A value that depends on the masks only, computed once per set of masks (thread-safe:
        two threads may both compute it; the first stored wins and both values are equal)."""
        try:
            return self._static[key]
        except KeyError:
            return self._static.setdefault(key, make())

    def submatrix(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(dataset rows, config columns, regret[rows][:, cols]) of the usable part of the KB."""

        def make() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            rows = np.flatnonzero(self.datasets)
            cols = np.flatnonzero(self.configs)
            return rows, cols, self.matrix.regret[np.ix_(rows, cols)]

        result: tuple[np.ndarray, np.ndarray, np.ndarray] = self.static(("sub",), make)
        return result

    def filled(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Of :meth:`submatrix`'s regret: (evaluated mask, same as float, regret with 0 for NaN)."""

        def make() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            _, _, R = self.submatrix()
            E = ~np.isnan(R)
            return E, E.astype(float), np.where(E, R, 0.0)

        result: tuple[np.ndarray, np.ndarray, np.ndarray] = self.static(("filled",), make)
        return result

    def no_credit_matrices(self) -> tuple[np.ndarray, np.ndarray]:
        """For the greedy with ``missing="ignore"``: (regret with 1 where not evaluated, 1 - that),
        i.e. each pair's regret and its gain over an empty portfolio."""

        def make() -> tuple[np.ndarray, np.ndarray]:
            E, _, _ = self.filled()
            _, _, R = self.submatrix()
            Rimp = np.where(E, R, 1.0)
            return Rimp, 1.0 - Rimp

        result: tuple[np.ndarray, np.ndarray] = self.static(("nocredit",), make)
        return result

    def global_means(self, prior_strength: float = PRIOR_STRENGTH) -> np.ndarray:
        """Each candidate's mean regret over usable datasets, shrunk toward the overall mean by ``prior_strength``
        pseudo-datasets (:data:`PRIOR_STRENGTH`)."""

        def make() -> np.ndarray:
            E, _, R0 = self.filled()
            total = R0.sum(axis=0)
            n = E.sum(axis=0)
            mu = float(total.sum() / max(int(n.sum()), 1))
            return (total + prior_strength * mu) / (n + prior_strength)

        result: np.ndarray = self.static(("gmean", prior_strength), make)
        return result


def row_keys(ctx: RecommendContext, row: int) -> np.ndarray:
    """Sort keys of all KB configurations on KB ``row``: regret there, ties broken by the lower
    global mean regret (to 1e-9); inf for configurations that are not candidates or not evaluated."""

    def make() -> np.ndarray:
        gm = np.full(ctx.matrix.n_configs, 1.0)
        _, sub_cols, _ = ctx.submatrix()
        gm[sub_cols] = ctx.global_means()
        return gm * 1e-9

    tiny: np.ndarray = ctx.static(("gm_full",), make)
    keys = ctx.matrix.regret[row] + tiny
    return np.where(ctx.configs & ~np.isnan(keys), keys, np.inf)


def ranked_configs(ctx: RecommendContext, row: int) -> np.ndarray:
    """Candidate columns (KB indices) evaluated on KB ``row``, by regret there, then global mean."""
    keys = row_keys(ctx, row)
    order = np.argsort(keys, kind="stable")
    return order[: int(np.isfinite(keys).sum())]
