"""Warm-start recommenders: pure functions from a knowledge base's frames to ranked configurations.

Inputs are the frames the KB returns (see :mod:`metalearn.kb.base`):

* ``metafeatures``: index ``dataset_id``, one column per meta-feature, NaN where a value is unknown;
* ``runs``: columns ``run_id, dataset_id, config_id, space, space_version, protocol, status, metric,
  score, cost, fit_seconds, budget, source`` (``cost``: lower is better, NaN for failed runs).

From ``runs`` we build a *performance matrix* (datasets x configurations, the best cost of the ok
full-budget runs) and turn every row into *normalised regret* in [0, 1] (HPO-B style: 0 = the best
configuration observed on that dataset, 1 = the worst; failed evaluations count as the worst).
Every strategy ranks configurations by how little regret they are expected to have on a new dataset
described by its meta-features:

``knn``
    auto-sklearn 1.0: KB datasets sorted by L1 distance on min-max scaled meta-features, the best
    configuration of each nearest dataset (duplicates skipped); once every neighbour has given its
    best, the second best of each, and so on.
``portfolio``
    auto-sklearn 2.0 / TabRepo: a static greedy portfolio minimising the mean over KB datasets of the
    portfolio's best regret. Independent of the query. A configuration earns no credit on datasets
    where it was not evaluated (``missing="ignore"``), so a sparse KB (e.g. search incumbents seen
    on one dataset) does not fill the portfolio with configurations seen once.
``weighted_portfolio``
    the same greedy, with KB datasets weighted by their similarity to the query.
``surrogate``
    kernel regression: each configuration's regret on the query is predicted as the
    similarity-weighted mean of its regrets on the KB datasets that evaluated it, shrunk toward its
    global mean when few near datasets evaluated it; ranked by prediction.
``hybrid``
    the ``surrogate``'s best single guess first, then the ``weighted_portfolio`` greedy continued
    from it.
``zeroshot``
    FLAML zero-shot: 1-nearest neighbour on a few simple meta-features (rows, features, classes,
    ratio of categorical features), that neighbour's configurations in order of their regret there
    (then the next neighbour's, to reach ``k``).

:func:`recommend` is the entry point (:func:`recommend_from_kb` reuses a KB prepared once with
:func:`prepare_kb`); :data:`STRATEGIES` maps names to strategy functions and
:data:`DEFAULT_STRATEGY` is the one that won the leave-one-dataset-out evaluation
(:mod:`metalearn.metalearning.loo`). Nothing here raises for an empty KB or a query without usable
meta-features: the result is then an empty list and the caller falls back to its default config.
"""

from __future__ import annotations

import functools
import inspect
import math
import warnings
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from metalearn.data.errors import InputError

__all__ = [
    "DEFAULT_STRATEGY",
    "STRATEGIES",
    "ZEROSHOT_FEATURES",
    "MetaFeatureScaling",
    "MetaKB",
    "RecommendContext",
    "Recommendation",
    "Source",
    "Strategy",
    "fit_scaling",
    "hybrid",
    "knn",
    "metafeature_distances",
    "normalised_regret_matrix",
    "performance_matrix",
    "portfolio",
    "prepare_kb",
    "recommend",
    "recommend_from_kb",
    "surrogate",
    "weighted_portfolio",
    "zeroshot",
]

Metric = Literal["l1", "l2"]
Missing = Literal["ignore", "impute"]

#: Columns ``runs`` must have (when it has any row).
REQUIRED_RUN_COLUMNS: tuple[str, ...] = ("dataset_id", "config_id", "status", "cost")

#: Default meta-features of the ``zeroshot`` strategy, FLAML-style: one group per meaning, each a
#: tuple of accepted column names (first present wins, case-insensitive). Count columns whose name
#: does not say ``log`` are log-transformed.
ZEROSHOT_FEATURES: tuple[tuple[str, ...], ...] = (
    ("log_n_rows", "log_nr_inst", "log_n_instances", "log_number_of_instances", "n_rows", "nr_inst",
     "n_instances", "numberofinstances"),
    ("log_n_features", "log_nr_attr", "log_n_attributes", "log_number_of_features", "n_features",
     "nr_attr", "n_attributes", "numberoffeatures"),
    ("log_n_classes", "log_nr_class", "n_classes", "nr_class", "numberofclasses"),
    ("ratio_categorical", "categorical_ratio", "frac_categorical", "pct_categorical",
     "ratio_cat", "ratio_nominal", "percentage_of_symbolic_features", "n_categorical_ratio"),
)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# performance matrix and normalised regret
# ---------------------------------------------------------------------------------------------
def _check_runs(runs: pd.DataFrame) -> None:
    if not isinstance(runs, pd.DataFrame):
        raise InputError(f"runs must be a pandas DataFrame (kb.runs_frame()), got {type(runs).__name__}")
    if len(runs) == 0:
        return
    missing = [c for c in REQUIRED_RUN_COLUMNS if c not in runs.columns]
    if missing:
        raise InputError(
            f"runs frame lacks column(s) {missing}; pass the frame returned by KnowledgeBase.runs_frame()"
        )


def performance_matrix(runs: pd.DataFrame, *, full_budget_only: bool = True) -> pd.DataFrame:
    """Datasets x configurations: the best (lowest) ``cost`` of the ok runs of each pair.

    Only full-budget runs count (``budget`` NaN or >= 1) unless ``full_budget_only`` is false. A pair
    evaluated only by failed runs (status other than ``ok``, or a non-finite cost) holds ``+inf`` so
    :func:`normalised_regret_matrix` can count it as the worst; a pair never evaluated holds NaN.
    When a dataset was scored with several metrics, only the runs of one metric count (costs of
    different metrics are not comparable): the one of most of the KB's own runs (``source`` not
    ``import:...``), then the most frequent.
    """
    _check_runs(runs)
    if len(runs) == 0:
        return pd.DataFrame(dtype=float)
    df = runs
    if full_budget_only and "budget" in df.columns:
        budget = pd.to_numeric(df["budget"], errors="coerce")
        df = df[budget.isna() | (budget >= 1.0 - 1e-9)]
    cost = pd.to_numeric(df["cost"], errors="coerce").to_numpy(dtype=float)
    ok = (df["status"].astype(str).to_numpy() == "ok") & np.isfinite(cost)
    frame = pd.DataFrame(
        {
            "dataset_id": df["dataset_id"].to_numpy(dtype=object),
            "config_id": df["config_id"].to_numpy(dtype=object),
            "cost": np.where(ok, cost, np.inf),
        }
    )
    if "metric" in df.columns and len(frame):
        frame["metric"] = df["metric"].astype(str).to_numpy(dtype=object)
        counts = frame[ok].groupby(["dataset_id", "metric"], sort=False).size()
        if counts.index.get_level_values("dataset_id").duplicated().any():
            # the metric of the KB's own evaluations wins over imported ones (e.g. OpenML accuracies
            # on a multiclass dataset the KB scored by log loss), then the most frequent
            own = frame[ok]
            if "source" in df.columns:
                native = ~df["source"].astype(str).str.startswith("import:").to_numpy()
                own = frame[ok & native]
            n_own = (
                own.groupby(["dataset_id", "metric"], sort=False).size().reindex(counts.index, fill_value=0)
            )
            ranked = pd.DataFrame({"own": n_own, "n": counts}).sort_values(
                ["own", "n"], ascending=False, kind="stable"
            )
            main = ranked.reset_index().drop_duplicates("dataset_id").set_index("dataset_id")["metric"]
            keep = frame["metric"].to_numpy() == frame["dataset_id"].map(main).to_numpy()
            frame = frame[keep]
    if len(frame) == 0:
        return pd.DataFrame(dtype=float)
    best = frame.groupby(["dataset_id", "config_id"], sort=True)["cost"].min()
    matrix = best.unstack("config_id")
    matrix.index.name, matrix.columns.name = "dataset_id", "config_id"
    return matrix.astype(float)


def normalised_regret_matrix(perf: pd.DataFrame) -> pd.DataFrame:
    """Per dataset (row), ``(cost - min) / (max - min)`` over its observed configurations.

    ``+inf`` (failed only) becomes 1, the worst; a row whose finite costs are all equal gets 0 for
    them; NaN (never evaluated) stays NaN. Rows without any finite cost carry no information and are
    dropped, as are columns left without any value.
    """
    if perf.size == 0:
        return perf.astype(float)
    values = perf.to_numpy(dtype=float)
    finite = np.isfinite(values)
    has_ok = finite.any(axis=1)
    with np.errstate(invalid="ignore"):
        lo = np.where(finite, values, np.inf).min(axis=1)
        hi = np.where(finite, values, -np.inf).max(axis=1)
        span = hi - lo
        span = np.where(span > 0, span, 1.0)
        regret = (values - lo[:, None]) / span[:, None]
    regret = np.where(finite, np.clip(regret, 0.0, 1.0), regret)
    regret = np.where(np.isposinf(values), 1.0, regret)
    out = pd.DataFrame(regret, index=perf.index, columns=perf.columns)
    out = out.loc[has_ok]
    return out.loc[:, out.notna().any(axis=0)]


# ---------------------------------------------------------------------------------------------
# meta-feature scaling and distances
# ---------------------------------------------------------------------------------------------
def _numeric_frame(metafeatures: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(metafeatures, pd.DataFrame):
        raise InputError(
            f"metafeatures must be a pandas DataFrame (kb.metafeature_frame()), got {type(metafeatures).__name__}"
        )
    out = metafeatures.apply(pd.to_numeric, errors="coerce").astype(float)
    return out.replace([np.inf, -np.inf], np.nan)


def _fit_minmax(
    X: np.ndarray, max_nan_fraction: float, impute: Literal["median", "mid"]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per column: usable mask, min, range, fill value (in scaled units) from the rows of ``X``."""
    n = X.shape[0]
    n_cols = X.shape[1]
    if n == 0:
        z = np.zeros(n_cols)
        return np.zeros(n_cols, dtype=bool), z, z + 1.0, z + 0.5
    present = ~np.isnan(X)
    count = present.sum(axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo = np.nanmin(X, axis=0)
        hi = np.nanmax(X, axis=0)
    span = hi - lo
    usable = (count >= 2) & (count >= (1.0 - max_nan_fraction) * n) & (span > 0)
    lo = np.where(usable, lo, 0.0)
    span = np.where(usable, span, 1.0)
    if impute == "median":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            fill = (np.nanmedian(X, axis=0) - lo) / span
        fill = np.where(usable, fill, 0.5)
    else:
        fill = np.full(n_cols, 0.5)
    return usable, lo, span, fill


@dataclass(frozen=True)
class MetaFeatureScaling:
    """Min-max scaling fitted on KB meta-features; NaN imputed after scaling.

    ``columns`` are the kept meta-features (not constant, not mostly NaN); ``mins``/``ranges`` map a
    raw value ``x`` to ``(x - min) / range`` (0..1 on the KB), ``fill`` is the scaled value a NaN
    becomes. Use :meth:`transform` on a frame (KB) or a series (a query).
    """

    columns: tuple[str, ...]
    mins: tuple[float, ...]
    ranges: tuple[float, ...]
    fill: tuple[float, ...]

    def transform(self, metafeatures: pd.DataFrame | pd.Series) -> pd.DataFrame | pd.Series:
        cols = list(self.columns)
        lo, span, fill = (np.asarray(v, dtype=float) for v in (self.mins, self.ranges, self.fill))
        if isinstance(metafeatures, pd.Series):
            raw = pd.to_numeric(metafeatures.reindex(cols), errors="coerce").to_numpy(dtype=float)
            raw = np.where(np.isfinite(raw), raw, np.nan)
            scaled = (raw - lo) / span
            return pd.Series(np.where(np.isnan(scaled), fill, scaled), index=cols, name=metafeatures.name)
        frame = _numeric_frame(metafeatures.reindex(columns=cols)).to_numpy(dtype=float)
        scaled = (frame - lo) / span
        scaled = np.where(np.isnan(scaled), fill[None, :], scaled)
        return pd.DataFrame(scaled, index=metafeatures.index, columns=cols)


def fit_scaling(
    metafeatures: pd.DataFrame,
    *,
    max_nan_fraction: float = 0.5,
    impute: Literal["median", "mid"] = "median",
) -> MetaFeatureScaling:
    """Fit min-max scaling on KB meta-features, ignoring NaN.

    Columns that are constant, have fewer than two values, or are NaN on more than
    ``max_nan_fraction`` of the datasets are dropped. After scaling, NaN becomes the column's scaled
    median (``impute="median"``) or 0.5 (``"mid"``).
    """
    frame = _numeric_frame(metafeatures)
    usable, lo, span, fill = _fit_minmax(frame.to_numpy(dtype=float), max_nan_fraction, impute)
    return MetaFeatureScaling(
        columns=tuple(str(c) for c, u in zip(frame.columns, usable, strict=True) if u),
        mins=tuple(float(x) for x in lo[usable]),
        ranges=tuple(float(x) for x in span[usable]),
        fill=tuple(float(x) for x in fill[usable]),
    )


@dataclass(frozen=True, eq=False)
class _DistanceFit:
    """The query-independent part of :func:`_distances` for one set of KB rows: the min-max fit
    of the usable columns and the KB rows scaled by it (NaN already imputed). Cached per context
    base, so a query only pays for its own vector."""

    rows: np.ndarray  # KB row indices the fit is on
    raw: np.ndarray  # X[rows]
    columns: np.ndarray  # indices of the usable columns
    lo: np.ndarray
    span: np.ndarray
    scaled: np.ndarray  # rows x usable columns, NaN -> fill
    missing: np.ndarray  # rows x usable columns, True where the raw value is NaN

    @classmethod
    def fit(
        cls, X: np.ndarray, rows: np.ndarray, max_nan_fraction: float, impute: Literal["median", "mid"]
    ) -> _DistanceFit:
        idx = np.flatnonzero(rows)
        Xa = X[idx]
        usable, lo, span, fill = _fit_minmax(Xa, max_nan_fraction, impute)
        cols = np.flatnonzero(usable)
        sub = Xa[:, cols]
        missing = np.isnan(sub)
        scaled = (sub - lo[cols]) / span[cols]
        scaled = np.where(missing, fill[cols][None, :], scaled)
        return cls(idx, Xa, cols, lo[cols], span[cols], scaled, missing)


def _distances(
    X: np.ndarray,
    q: np.ndarray,
    rows: np.ndarray,
    *,
    metric: Metric,
    max_nan_fraction: float = 0.5,
    impute: Literal["median", "mid"] = "median",
    fit: _DistanceFit | None = None,
) -> np.ndarray | None:
    """Distance of every KB row to the query, scaling fitted on ``rows`` only (others get inf).

    Uses the columns usable in the KB *and* known for the query; the distance is per feature (L1:
    mean absolute difference, L2: root mean square difference), so it is comparable across queries
    that know different numbers of meta-features; rank-equivalent to auto-sklearn's plain L1. Rows
    without any meta-feature get inf. ``None`` when no column can be used. ``fit``: the
    :class:`_DistanceFit` of ``X`` on ``rows`` if already computed.

    When min-max scaling is undefined (a KB of one dataset, or no column varies), each shared column
    contributes the relative difference ``|x - q| / (|x| + |q|)`` (in [0, 1], 0 when both are 0), so a
    KB's first dataset of a kind is already a neighbour.
    """
    out = np.full(X.shape[0], np.inf)
    if not rows.any() or X.shape[1] == 0:
        return None
    if fit is None:
        fit = _DistanceFit.fit(X, rows, max_nan_fraction, impute)
    qknown = ~np.isnan(q[fit.columns])
    if not qknown.any():
        Xa = fit.raw
        shared = ~np.isnan(q) & ~np.isnan(Xa).all(axis=0)
        if not shared.any():
            return None
        Xs, qs_raw = Xa[:, shared], q[shared][None, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            denom = np.abs(Xs) + np.abs(qs_raw)
            rel = np.where(denom > 0, np.abs(Xs - qs_raw) / denom, 0.0)
        rel = np.where(np.isnan(Xs), np.nan, rel)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            d = np.nanmean(rel, axis=1) if metric == "l1" else np.sqrt(np.nanmean(rel * rel, axis=1))
        out[fit.rows] = np.where(np.isnan(d), np.inf, d)
        return out
    if qknown.all():
        scaled, missing = fit.scaled, fit.missing
        qs = (q[fit.columns] - fit.lo) / fit.span
    else:
        scaled, missing = fit.scaled[:, qknown], fit.missing[:, qknown]
        qs = (q[fit.columns[qknown]] - fit.lo[qknown]) / fit.span[qknown]
    known = ~missing.all(axis=1)
    diff = scaled - qs[None, :]
    d = np.abs(diff).mean(axis=1) if metric == "l1" else np.sqrt((diff * diff).mean(axis=1))
    out[fit.rows] = np.where(known, d, np.inf)
    return out


def _query_vector(query_mf: Any, names: Sequence[str]) -> np.ndarray:
    """The query's meta-features aligned to ``names`` (NaN where unknown or not finite)."""
    if query_mf is None:
        return np.full(len(names), np.nan)
    if isinstance(query_mf, np.ndarray):
        if query_mf.shape != (len(names),):
            raise InputError(
                f"a query vector must have one value per KB meta-feature ({len(names)}), got shape {query_mf.shape}"
            )
        qa = query_mf.astype(float, copy=False)
        return np.where(np.isfinite(qa), qa, np.nan)
    if isinstance(query_mf, pd.DataFrame):
        if len(query_mf) != 1:
            raise InputError(
                f"the query must be one dataset's meta-features (a Series), got a frame of {len(query_mf)} rows"
            )
        query_mf = query_mf.iloc[0]
    if not isinstance(query_mf, pd.Series):
        if not isinstance(query_mf, Mapping):
            raise InputError(
                f"query meta-features must be a pandas Series or a mapping name -> value, got {type(query_mf).__name__}"
            )
        query_mf = pd.Series(dict(query_mf), dtype=object)
    q = pd.to_numeric(query_mf.reindex(list(names)), errors="coerce").to_numpy(dtype=float)
    return np.where(np.isfinite(q), q, np.nan)


def metafeature_distances(
    query_mf: pd.Series,
    metafeatures: pd.DataFrame,
    *,
    metric: Metric = "l1",
    max_nan_fraction: float = 0.5,
) -> pd.Series:
    """Distance of each KB dataset to the query on min-max scaled meta-features, nearest first.

    Empty when nothing can be compared (no shared, usable meta-feature).
    """
    frame = _numeric_frame(metafeatures)
    q = _query_vector(query_mf, [str(c) for c in frame.columns])
    d = _distances(
        frame.to_numpy(dtype=float),
        q,
        np.ones(len(frame), dtype=bool),
        metric=_check_metric(metric),
        max_nan_fraction=max_nan_fraction,
    )
    if d is None:
        return pd.Series(dtype=float, name="distance")
    s = pd.Series(d, index=frame.index, name="distance")
    return s[np.isfinite(s.to_numpy())].sort_values(kind="stable")


def _check_metric(metric: str) -> Metric:
    if metric not in ("l1", "l2"):
        raise InputError(f"distance metric must be 'l1' or 'l2', got {metric!r}")
    return metric  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------
# prepared KB and query context
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class MetaKB:
    """The KB in the form strategies use: a regret matrix and aligned raw meta-features.

    ``regret[i, j]``: normalised regret of ``config_ids[j]`` on ``dataset_ids[i]`` (NaN: not
    evaluated); ``features[i]``: raw meta-features of ``dataset_ids[i]`` (NaN rows for datasets the
    meta-feature frame does not have). Build it once with :func:`prepare_kb` and reuse it for many
    queries (the LOO evaluation does).
    """

    dataset_ids: np.ndarray
    config_ids: np.ndarray
    regret: np.ndarray
    features: np.ndarray
    feature_names: tuple[str, ...]
    #: the query-independent state of a context without exclusions (masks + static cache), built once
    _base: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_datasets(self) -> int:
        return len(self.dataset_ids)

    @property
    def n_configs(self) -> int:
        return len(self.config_ids)

    @functools.cached_property
    def dataset_index(self) -> dict[Hashable, int]:
        return {d: i for i, d in enumerate(self.dataset_ids.tolist())}

    @functools.cached_property
    def config_index(self) -> dict[Hashable, int]:
        return {c: j for j, c in enumerate(self.config_ids.tolist())}

    @functools.cached_property
    def evaluated(self) -> np.ndarray:
        """``~isnan(regret)``: which (dataset, configuration) pairs were evaluated."""
        return ~np.isnan(self.regret)

    def base_masks(self) -> tuple[np.ndarray, np.ndarray, dict[tuple[Any, ...], Any]]:
        """(usable datasets, candidate configurations, shared static cache) of a query without
        exclusions or configuration filter: the same for every such query, so computed once (the
        masks are read-only; the cache holds only values that depend on them, not on the query)."""
        base = self._base
        if "masks" not in base:
            dmask, cmask = _usable_masks(
                self, np.ones(self.n_datasets, dtype=bool), np.ones(self.n_configs, dtype=bool)
            )
            dmask.setflags(write=False)
            cmask.setflags(write=False)
            base.setdefault("masks", (dmask, cmask, {}))
        masks: tuple[np.ndarray, np.ndarray, dict[tuple[Any, ...], Any]] = base["masks"]
        return masks

    def with_configs(self, allowed: Collection[Hashable]) -> MetaKB:
        """This KB restricted to the configurations in ``allowed`` (the others' columns dropped;
        the regrets of the kept ones are unchanged, so they still compare with every configuration
        observed). A query on it equals a query here with ``allowed_configs=allowed``, minus the
        per-query filtering."""
        keep = np.fromiter((c in allowed for c in self.config_ids.tolist()), dtype=bool, count=self.n_configs)
        if keep.all():
            return self
        return MetaKB(
            dataset_ids=self.dataset_ids,
            config_ids=self.config_ids[keep],
            regret=np.ascontiguousarray(self.regret[:, keep]),
            features=self.features,
            feature_names=self.feature_names,
        )

    def regret_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            self.regret,
            index=pd.Index(self.dataset_ids, name="dataset_id"),
            columns=pd.Index(self.config_ids, name="config_id"),
        )

    def metafeature_row(self, dataset_id: Hashable) -> pd.Series:
        i = self.dataset_index[dataset_id]
        return pd.Series(self.features[i], index=list(self.feature_names), name=dataset_id)


def prepare_kb(metafeatures: pd.DataFrame | None, runs: pd.DataFrame) -> MetaKB:
    """Regret matrix of ``runs`` (datasets with at least one ok run) aligned with ``metafeatures``."""
    regret = normalised_regret_matrix(performance_matrix(runs))
    if metafeatures is None:
        metafeatures = pd.DataFrame(index=pd.Index([], name="dataset_id"))
    mf = _numeric_frame(metafeatures)
    mf = mf[~mf.index.duplicated(keep="last")]
    mf = mf.reindex(index=regret.index)
    return MetaKB(
        dataset_ids=regret.index.to_numpy(dtype=object),
        config_ids=regret.columns.to_numpy(dtype=object),
        regret=regret.to_numpy(dtype=float).reshape(len(regret.index), len(regret.columns)),
        features=mf.to_numpy(dtype=float).reshape(len(regret.index), mf.shape[1]),
        feature_names=tuple(str(c) for c in mf.columns),
    )


@dataclass(eq=False)
class RecommendContext:
    """One query against a prepared KB: which datasets and configurations may be used.

    ``datasets``: boolean mask of KB datasets usable as evidence (not excluded, with at least one
    allowed evaluated configuration); ``configs``: boolean mask of candidate configurations (allowed,
    and evaluated on at least one usable dataset). Distances are computed lazily and cached, so
    several strategies can share one context.
    """

    kb: MetaKB
    query: np.ndarray
    datasets: np.ndarray
    configs: np.ndarray
    _cache: dict[tuple[Any, ...], Any] = field(default_factory=dict, repr=False)
    #: values that depend on the masks only (shared by every query without exclusions)
    _static: dict[tuple[Any, ...], Any] = field(default_factory=dict, repr=False)

    @classmethod
    def build(
        cls,
        kb: MetaKB,
        query_mf: pd.Series | Mapping[str, Any] | None,
        exclude: Iterable[Hashable] = (),
        allowed_configs: Collection[Hashable] | None = None,
    ) -> RecommendContext:
        q = _query_vector(query_mf, kb.feature_names)
        if isinstance(exclude, str):
            exclude = (exclude,)
        excluded = [i for i in (kb.dataset_index.get(d) for d in exclude) if i is not None]
        if not excluded and allowed_configs is None:
            dmask, cmask, static = kb.base_masks()
            return cls(kb=kb, query=q, datasets=dmask, configs=cmask, _static=static)
        dmask = np.ones(kb.n_datasets, dtype=bool)
        dmask[excluded] = False
        cmask = np.ones(kb.n_configs, dtype=bool)
        if allowed_configs is not None:
            if isinstance(allowed_configs, str):
                allowed_configs = (allowed_configs,)
            cmask[:] = False
            for c in allowed_configs:
                j = kb.config_index.get(c)
                if j is not None:
                    cmask[j] = True
        dmask, cmask = _usable_masks(kb, dmask, cmask)
        return cls(kb=kb, query=q, datasets=dmask, configs=cmask)

    @property
    def empty(self) -> bool:
        return not (self.datasets.any() and self.configs.any())

    def distances(self, metric: Metric = "l1", max_nan_fraction: float = 0.5) -> np.ndarray | None:
        """Distance of each KB dataset to the query (inf for unusable ones), or None."""
        key = ("dist", metric, max_nan_fraction)
        if key not in self._cache:
            self._cache[key] = _distances(
                self.kb.features, self.query, self.datasets, metric=metric, max_nan_fraction=max_nan_fraction,
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
            _row_keys(self, 0)
            self.distance_fit()
        return self

    def distance_fit(self, max_nan_fraction: float = 0.5) -> _DistanceFit:
        """The meta-feature scaling fitted on the usable datasets (shared by queries with these masks)."""
        fit: _DistanceFit = self.static(
            ("fit", max_nan_fraction),
            lambda: _DistanceFit.fit(self.kb.features, self.datasets, max_nan_fraction, "median"),
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
            return rows, cols, self.kb.regret[np.ix_(rows, cols)]

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

    def global_means(self, prior_strength: float = 1.0) -> np.ndarray:
        """Each candidate's mean regret over usable datasets, shrunk toward the overall mean."""

        def make() -> np.ndarray:
            E, _, R0 = self.filled()
            total = R0.sum(axis=0)
            n = E.sum(axis=0)
            mu = float(total.sum() / max(int(n.sum()), 1))
            return (total + prior_strength * mu) / (n + prior_strength)

        result: np.ndarray = self.static(("gmean", prior_strength), make)
        return result


def _usable_masks(kb: MetaKB, dmask: np.ndarray, cmask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Datasets with an allowed evaluated configuration, and allowed configurations evaluated on one."""
    evaluated = kb.evaluated
    dmask = dmask & ((evaluated & cmask[None, :]).any(axis=1) if kb.n_configs else False)
    cmask = cmask & ((evaluated & dmask[:, None]).any(axis=0) if kb.n_datasets else False)
    return dmask, cmask


# ---------------------------------------------------------------------------------------------
# recommendations
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    """A KB dataset a recommendation came from: its distance to the query and the config's regret there."""

    dataset_id: str
    distance: float
    regret_there: float


@dataclass(frozen=True)
class Recommendation:
    """One recommended configuration. ``expected_regret``: predicted normalised regret (lower better)."""

    rank: int
    config_id: str
    strategy: str
    expected_regret: float
    sources: tuple[Source, ...]
    explanation: str


#: A strategy maps a query context and ``k`` to at most ``k`` recommendations, best first.
Strategy = Callable[[RecommendContext, int], list[Recommendation]]


def _fmt_sources(sources: Sequence[Source]) -> str:
    parts = []
    for s in sources:
        d = "" if math.isnan(s.distance) or math.isinf(s.distance) else f" d={s.distance:.3f}"
        parts.append(f"{s.dataset_id} (regret {s.regret_there:.3f}{d})")
    return ", ".join(parts)


def _kernel_weights(d: np.ndarray, n_neighbors: int, tau: float) -> np.ndarray:
    """Similarity weights in (0, 1]: 1 for the nearest dataset, ``exp(-1/tau)`` for the n-th nearest.

    ``w = exp(-(d - d_1) / (tau * (d_n - d_1)))`` with ``d_1``/``d_n`` the distances of the nearest
    and the ``n_neighbors``-th nearest dataset: an adaptive bandwidth, so the weighting does not
    depend on how many meta-features there are or how spread the KB is. Infinite distance -> 0.
    """
    w = np.zeros(d.shape[0])
    fin = np.isfinite(d)
    if not fin.any():
        return w
    df = d[fin]
    n = min(max(int(n_neighbors), 1), df.size)
    part = np.partition(df, n - 1)
    d1, dn = float(part[:n].min()), float(part[n - 1])
    scale = max(tau * (dn - d1), 1e-12)
    w[fin] = np.exp(-(df - d1) / scale)
    return w


def _predict(ctx: RecommendContext, w: np.ndarray, shrink: float) -> np.ndarray:
    """Per candidate, ``(sum_d w_d R_dc + shrink * prior_c) / (sum_d w_d [R_dc known] + shrink)``
    over the usable KB datasets ``d`` (``w`` aligned with them), ``prior``: the global means."""
    _, Ef, R0 = ctx.filled()
    num = w @ R0 + shrink * ctx.global_means()
    den = w @ Ef + shrink
    return num / np.maximum(den, 1e-300)


def _greedy(
    Rimp: np.ndarray,
    E: np.ndarray,
    w: np.ndarray,
    pred: np.ndarray,
    k: int,
    G0: np.ndarray | None = None,
    forced: Sequence[int] = (),
) -> tuple[list[int], list[float], list[np.ndarray]]:
    """Greedy portfolio over the columns of ``Rimp`` (regret, missing values already replaced: 1 for
    no credit, or an imputed prediction) minimising the ``w``-weighted mean of the per-row minimum
    regret (rows start at 1, the worst). ``G0``: ``max(1 - Rimp, 0)`` if already computed (the
    gains over the empty portfolio; query-independent for ``missing="ignore"``, so cached).

    Returns picked column indices, the portfolio value after each pick, and per pick the
    improvement it brought to each row (0 where ``E``, the evaluated mask, is false). Ties (gains
    equal to 1e-12) go to the lower ``pred``, then the lower column index; ``forced`` columns are
    taken first, in their order, and the greedy continues from them. The gain of every column
    is kept up to date incrementally: after a pick only the rows whose best-so-far regret dropped
    (from ``cur`` to ``new``) are revisited, and a column loses there exactly
    ``clip(cur - R, 0, cur - new)`` — three passes over those rows instead of one per column.
    """
    n_rows, n_cols = Rimp.shape
    if G0 is None:
        G0 = np.maximum(1.0 - Rimp, 0.0)
    wsum = float(w.sum()) or 1.0
    cur = np.ones(n_rows)
    gain = w @ G0
    available = np.ones(n_cols, dtype=bool)
    picks: list[int] = []
    values: list[float] = []
    gains: list[np.ndarray] = []
    for _ in range(min(k, n_cols)):
        if len(picks) < len(forced):  # the caller's first picks (e.g. the surrogate's best guess)
            j = int(forced[len(picks)])
        else:
            g = np.where(available, gain, -np.inf)
            best = float(g.max())
            ties = np.flatnonzero(g >= best - 1e-12)
            j = int(ties[np.argmin(pred[ties])]) if ties.size > 1 else int(ties[0])
        new = np.minimum(cur, Rimp[:, j])
        drop = cur - new
        changed = np.flatnonzero(drop > 0)
        if changed.size:
            # most rows changed: all of them, without a gather (unchanged rows clip to 0 anyway)
            at: slice | np.ndarray = slice(None) if changed.size * 2 > n_rows else changed
            loss = cur[at, None] - Rimp[at]
            np.clip(loss, 0.0, drop[at, None], out=loss)
            gain -= w[at] @ loss
        picks.append(j)
        gains.append(np.where(E[:, j], cur - new, 0.0))
        cur = new
        values.append(float(cur @ w) / wsum)
        available[j] = False
    return picks, values, gains


def _top_sources(
    ctx: RecommendContext,
    rows: np.ndarray,
    col: int,
    score: np.ndarray,
    dist: np.ndarray | None,
    n: int = 3,
) -> tuple[Source, ...]:
    """Up to ``n`` sources among ``rows`` (KB row indices) with the highest positive ``score``."""
    cand = np.flatnonzero((score > 0) & ~np.isnan(ctx.kb.regret[rows, col]))
    if cand.size == 0:
        return ()
    cand = cand[np.argsort(-score[cand], kind="stable")][:n]
    return tuple(
        Source(
            dataset_id=ctx.kb.dataset_ids[rows[i]],
            distance=float(dist[rows[i]]) if dist is not None else float("nan"),
            regret_there=float(ctx.kb.regret[rows[i], col]),
        )
        for i in cand
    )


def _row_keys(ctx: RecommendContext, row: int) -> np.ndarray:
    """Sort keys of all KB configurations on KB ``row``: regret there, ties broken by the lower
    global mean regret (to 1e-9); inf for configurations that are not candidates or not evaluated."""

    def make() -> np.ndarray:
        gm = np.full(ctx.kb.n_configs, 1.0)
        _, sub_cols, _ = ctx.submatrix()
        gm[sub_cols] = ctx.global_means()
        return gm * 1e-9

    tiny: np.ndarray = ctx.static(("gm_full",), make)
    keys = ctx.kb.regret[row] + tiny
    return np.where(ctx.configs & ~np.isnan(keys), keys, np.inf)


def _ranked_configs(ctx: RecommendContext, row: int) -> np.ndarray:
    """Candidate columns (KB indices) evaluated on KB ``row``, by regret there, then global mean."""
    keys = _row_keys(ctx, row)
    order = np.argsort(keys, kind="stable")
    return order[: int(np.isfinite(keys).sum())]


def _neighbour_lists(
    ctx: RecommendContext, dist: np.ndarray, k: int, name: str, rounds: int | None
) -> list[Recommendation]:
    """Walk datasets nearest first taking each one's best unused configuration; repeat per round."""
    order = np.flatnonzero(np.isfinite(dist) & ctx.datasets)
    order = order[np.lexsort((order, dist[order]))]
    if order.size == 0:
        return []
    lists: dict[int, np.ndarray] = {}
    chosen: set[int] = set()
    recs: list[Recommendation] = []
    max_rounds = rounds if rounds is not None else int(ctx.configs.sum())
    for r in range(max_rounds):
        progressed = False
        for n_th, row in enumerate(order.tolist(), start=1):
            if len(recs) >= k:
                return recs
            if r == 0:  # only the best is needed: no full sort
                keys = _row_keys(ctx, row)
                j = int(np.argmin(keys))
                if not np.isfinite(keys[j]):
                    continue
            else:
                if row not in lists:
                    lists[row] = _ranked_configs(ctx, row)
                if r >= lists[row].size:
                    continue
                j = int(lists[row][r])
            progressed = True
            if j in chosen:  # auto-sklearn: a duplicate is skipped, the next neighbour gives its config
                continue
            chosen.add(j)
            reg = float(ctx.kb.regret[row, j])
            src = Source(ctx.kb.dataset_ids[row], float(dist[row]), reg)
            nth = "best" if r == 0 else f"#{r + 1} best"
            recs.append(
                Recommendation(
                    rank=len(recs) + 1,
                    config_id=ctx.kb.config_ids[j],
                    strategy=name,
                    expected_regret=reg,
                    sources=(src,),
                    explanation=(
                        f"{nth} config of KB dataset {src.dataset_id}, neighbour #{n_th} "
                        f"(meta-feature distance {src.distance:.3f}, regret there {reg:.3f})"
                    ),
                )
            )
        if not progressed:
            break
    return recs


def knn(
    ctx: RecommendContext,
    k: int,
    *,
    metric: Metric = "l1",
    rounds: int | None = None,
    max_nan_fraction: float = 0.5,
) -> list[Recommendation]:
    """auto-sklearn 1.0 meta-learning: the best configuration of each nearest dataset.

    Datasets are sorted by L1 distance on min-max scaled meta-features; each gives its best
    candidate (lowest regret; ties by the lower mean regret over the KB) unless already chosen.
    With ``rounds=None`` the walk continues with each neighbour's second best etc. until ``k``;
    ``rounds=1`` is the strict auto-sklearn behaviour (at most one config per neighbour).
    """
    if ctx.empty:
        return []
    dist = ctx.distances(_check_metric(metric), max_nan_fraction)
    if dist is None:
        return []
    return _neighbour_lists(ctx, dist, k, "knn", rounds)


def _portfolio_recs(
    ctx: RecommendContext,
    k: int,
    w_full: np.ndarray,
    dist: np.ndarray | None,
    name: str,
    shrink: float,
    weighted: bool,
    missing: Missing = "ignore",
    forced: Sequence[Recommendation] = (),
) -> list[Recommendation]:
    if missing not in ("ignore", "impute"):
        raise InputError(f"missing must be 'ignore' or 'impute', got {missing!r}")
    rows, cols, R = ctx.submatrix()
    w = w_full[rows]
    if not (w > 0).any():
        return []
    E, _, _ = ctx.filled()
    # plain portfolio: each config's mean regret shrunk toward the overall mean; weighted: kernel
    # regression toward that global mean
    pred = _predict(ctx, w, shrink) if weighted else ctx.global_means(shrink)
    if missing == "impute":
        Rimp, G0 = np.where(E, R, pred[None, :]), None
    else:
        Rimp, G0 = ctx.no_credit_matrices()
    first = [int(np.searchsorted(cols, ctx.kb.config_index[r.config_id])) for r in forced]
    picks, values, gains = _greedy(Rimp, E, w, pred, k, G0, forced=first)
    recs: list[Recommendation] = []
    prev = 1.0
    n_ds = int((w > 0).sum())
    over = f"{n_ds} similarity-weighted KB datasets" if weighted else f"{n_ds} KB datasets"
    for rank, (j, value, gain) in enumerate(zip(picks, values, gains, strict=True), start=1):
        col = int(cols[j])
        sources = _top_sources(ctx, rows, col, gain * w, dist)
        if not sources:  # no improvement anywhere: cite where it did best
            evaluated = ~np.isnan(R[:, j])
            score = np.where(evaluated, w * (1.0 - np.nan_to_num(R[:, j], nan=1.0)) + 1e-12, 0.0)
            sources = _top_sources(ctx, rows, col, score, dist)
        where = f"; best on {_fmt_sources(sources)}" if sources else ""
        if rank <= len(forced):  # keeps its own reasoning, with what it does for the portfolio
            f = forced[rank - 1]
            recs.append(
                Recommendation(
                    rank=rank, config_id=f.config_id, strategy=name, expected_regret=f.expected_regret,
                    sources=f.sources, explanation=f"{f.explanation}; portfolio regret {prev:.3f} -> {value:.3f}",
                )
            )  # fmt: skip
            prev = value
            continue
        recs.append(
            Recommendation(
                rank=rank,
                config_id=ctx.kb.config_ids[col],
                strategy=name,
                expected_regret=float(pred[j]),
                sources=sources,
                explanation=(
                    f"greedy portfolio pick {rank}: mean best-so-far regret over {over} "
                    f"{prev:.3f} -> {value:.3f}{where}"
                ),
            )
        )
        prev = value
    return recs


def portfolio(
    ctx: RecommendContext,
    k: int,
    *,
    shrink: float = 1.0,
    missing: Missing = "ignore",
    metric: Metric = "l1",
) -> list[Recommendation]:
    """auto-sklearn 2.0 / TabRepo static portfolio: greedy on the mean over KB datasets of the
    portfolio's minimum regret (an empty portfolio has regret 1). A configuration not evaluated on
    a dataset earns no credit there (``missing="ignore"``: a sparse KB does not favour configs
    seen once) or is assumed to have its mean regret there (``"impute"``). ``expected_regret`` is
    the config's mean regret, shrunk toward the overall mean by ``shrink`` pseudo-observations.
    The query only serves to report distances of the sources.
    """
    if ctx.empty:
        return []
    dist = ctx.distances(_check_metric(metric))
    w = ctx.datasets.astype(float)
    return _portfolio_recs(ctx, k, w, dist, "portfolio", shrink, weighted=False, missing=missing)


def weighted_portfolio(
    ctx: RecommendContext,
    k: int,
    *,
    n_neighbors: int = 10,
    tau: float = 1.0,
    floor: float = 0.3,
    shrink: float = 1.0,
    missing: Missing = "ignore",
    metric: Metric = "l1",
) -> list[Recommendation]:
    """The greedy portfolio with KB datasets weighted by similarity to the query (see
    :func:`_kernel_weights`: nearest 1, ``n_neighbors``-th ``exp(-1/tau)``), plus ``floor`` for
    every usable dataset (``floor=1`` is close to the plain portfolio). Missing evaluations earn
    no credit (``missing="ignore"``) or are imputed by the similarity-weighted prediction
    (``"impute"``); ``expected_regret`` is that prediction.
    Without usable meta-features for the query, falls back to equal weights (a plain portfolio).
    """
    if ctx.empty:
        return []
    dist = ctx.distances(_check_metric(metric))
    if dist is None or not np.isfinite(dist[ctx.datasets]).any():
        flat = ctx.datasets.astype(float)
        recs = _portfolio_recs(ctx, k, flat, None, "weighted_portfolio", shrink, False, missing)
        return [_replace_expl(r, " (query has no usable meta-features: equal weights)") for r in recs]
    w = _similarity_weights(ctx, dist, n_neighbors, tau, floor)
    return _portfolio_recs(ctx, k, w, dist, "weighted_portfolio", shrink, weighted=True, missing=missing)


def _similarity_weights(
    ctx: RecommendContext, dist: np.ndarray, n_neighbors: int, tau: float, floor: float
) -> np.ndarray:
    """The weighted portfolio's dataset weights: kernel weights plus ``floor`` for every usable dataset."""
    w = _kernel_weights(np.where(ctx.datasets, dist, np.inf), n_neighbors, tau)
    if floor > 0:
        w = np.where(ctx.datasets, (1.0 - min(floor, 1.0)) * w + floor, 0.0)
    return w


def hybrid(
    ctx: RecommendContext,
    k: int,
    *,
    n_neighbors: int = 10,
    tau: float = 1.0,
    floor: float = 0.3,
    shrink: float = 1.0,
    metric: Metric = "l1",
) -> list[Recommendation]:
    """The :func:`surrogate`'s best single guess first (the strongest first pick in the
    leave-one-dataset-out evaluation), then the :func:`weighted_portfolio` greedy continued from it
    (the strongest set of picks): each next configuration covers the similarity-weighted KB datasets
    the ones before it do worst on."""
    if ctx.empty:
        return []
    first = surrogate(ctx, 1, n_neighbors=n_neighbors, tau=tau, shrink=shrink, metric=metric)
    dist = ctx.distances(_check_metric(metric))  # computed by the surrogate: cached
    if not first or dist is None:  # the surrogate gives nothing without usable distances
        return weighted_portfolio(
            ctx, k, n_neighbors=n_neighbors, tau=tau, floor=floor, shrink=shrink, metric=metric
        )
    w = _similarity_weights(ctx, dist, n_neighbors, tau, floor)
    return _portfolio_recs(ctx, k, w, dist, "hybrid", shrink, weighted=True, forced=first[:1])


def _replace_expl(rec: Recommendation, suffix: str) -> Recommendation:
    return Recommendation(
        rank=rec.rank,
        config_id=rec.config_id,
        strategy=rec.strategy,
        expected_regret=rec.expected_regret,
        sources=rec.sources,
        explanation=rec.explanation + suffix,
    )


def surrogate(
    ctx: RecommendContext,
    k: int,
    *,
    n_neighbors: int = 10,
    tau: float = 1.0,
    shrink: float = 1.0,
    diversify: bool = False,
    missing: Missing = "ignore",
    metric: Metric = "l1",
) -> list[Recommendation]:
    """Kernel-regression surrogate: predicted regret of each candidate on the query =
    ``(sum_d w_d regret_d + shrink * global_mean) / (sum_d w_d + shrink)`` over the KB datasets
    ``d`` that evaluated it (``w``: similarity weights, nearest = 1). Ranked by prediction (ties:
    more evaluations first); ``diversify=True`` picks greedily instead (a weighted portfolio whose
    rows are the KB datasets, ``missing`` as there), so the top-k do not all fail on the same
    datasets.
    """
    if ctx.empty:
        return []
    dist = ctx.distances(_check_metric(metric))
    if dist is None or not np.isfinite(dist[ctx.datasets]).any():
        return []
    w_full = _kernel_weights(np.where(ctx.datasets, dist, np.inf), n_neighbors, tau)
    if diversify:
        return _portfolio_recs(ctx, k, w_full, dist, "surrogate", shrink, weighted=True, missing=missing)
    rows, cols, _ = ctx.submatrix()
    w = w_full[rows]
    pred = _predict(ctx, w, shrink)
    E, Ef, _ = ctx.filled()
    support = w @ Ef
    order = np.lexsort((np.arange(cols.size), -support, pred))[:k]
    recs: list[Recommendation] = []
    for rank, j in enumerate(order, start=1):
        col = int(cols[j])
        sources = _top_sources(ctx, rows, col, np.where(E[:, j], w + 1e-300, 0.0), dist)
        n_eval = int(E[:, j].sum())
        recs.append(
            Recommendation(
                rank=rank,
                config_id=ctx.kb.config_ids[col],
                strategy="surrogate",
                expected_regret=float(pred[j]),
                sources=sources,
                explanation=(
                    f"predicted regret {pred[j]:.3f} from {n_eval} KB datasets that evaluated it "
                    f"(similarity mass {support[j]:.2f}); nearest: {_fmt_sources(sources)}"
                ),
            )
        )
    return recs


def _resolve_columns(names: Sequence[str], groups: Sequence[str | Sequence[str]]) -> list[tuple[int, bool]]:
    """(column index, needs log) for the first present name of each group (case-insensitive)."""
    lower = {n.lower(): i for i, n in enumerate(names)}
    out: list[tuple[int, bool]] = []
    for group in groups:
        options = (group,) if isinstance(group, str) else tuple(group)
        for opt in options:
            i = lower.get(opt.lower())
            if i is not None:
                count_like = any(t in opt.lower() for t in ("rows", "inst", "feat", "attr", "class"))
                needs_log = count_like and "log" not in opt.lower() and "ratio" not in opt.lower()
                out.append((i, needs_log))
                break
    return out


def zeroshot(
    ctx: RecommendContext,
    k: int,
    *,
    features: Sequence[str | Sequence[str]] = ZEROSHOT_FEATURES,
    metric: Metric = "l2",
) -> list[Recommendation]:
    """FLAML zero-shot: the nearest KB dataset on a handful of simple meta-features, and its
    configurations in order of regret there (FLAML's "choice" list); further neighbours fill up
    to ``k``. ``features``: one entry per meaning, each a column name or a tuple of accepted names
    (missing ones are skipped; raw counts are log-transformed). L2 on min-max scaled values.
    """
    if ctx.empty:
        return []
    resolved = _resolve_columns(ctx.kb.feature_names, features)
    if not resolved:
        return []
    key = ("zs", tuple(resolved), metric)
    if key not in ctx._cache:
        idx = [i for i, _ in resolved]
        logs = np.array([lg for _, lg in resolved])

        def make() -> tuple[np.ndarray, _DistanceFit]:
            X = ctx.kb.features[:, idx].copy()
            with np.errstate(invalid="ignore", divide="ignore"):
                X[:, logs] = np.log1p(np.clip(X[:, logs], 0, None))
            return X, _DistanceFit.fit(X, ctx.datasets, 0.5, "median")

        X, fit = ctx.static(("zs", tuple(resolved)), make)
        q = ctx.query[idx].copy()
        with np.errstate(invalid="ignore", divide="ignore"):
            q[logs] = np.log1p(np.clip(q[logs], 0, None))
        ctx._cache[key] = _distances(
            X, q, ctx.datasets, metric=_check_metric(metric), max_nan_fraction=0.5, fit=fit
        )
    dist = ctx._cache[key]
    if dist is None:
        return []
    recs = _neighbour_lists_by_dataset(ctx, dist, k)
    return recs


def _neighbour_lists_by_dataset(ctx: RecommendContext, dist: np.ndarray, k: int) -> list[Recommendation]:
    """FLAML order: all candidates of the nearest dataset by regret there, then the next one's."""
    order = np.flatnonzero(np.isfinite(dist) & ctx.datasets)
    order = order[np.lexsort((order, dist[order]))]
    chosen: set[int] = set()
    recs: list[Recommendation] = []
    for n_th, row in enumerate(order, start=1):
        for j in _ranked_configs(ctx, int(row)):
            if len(recs) >= k:
                return recs
            if int(j) in chosen:
                continue
            chosen.add(int(j))
            reg = float(ctx.kb.regret[row, j])
            src = Source(ctx.kb.dataset_ids[row], float(dist[row]), reg)
            recs.append(
                Recommendation(
                    rank=len(recs) + 1,
                    config_id=ctx.kb.config_ids[j],
                    strategy="zeroshot",
                    expected_regret=reg,
                    sources=(src,),
                    explanation=(
                        f"zero-shot: regret {reg:.3f} on KB dataset {src.dataset_id}, nearest #{n_th} "
                        f"on size/shape meta-features (distance {src.distance:.3f})"
                    ),
                )
            )
    return recs


#: name -> strategy function ``(context, k) -> list[Recommendation]``.
STRATEGIES: dict[str, Strategy] = {
    "knn": knn,
    "portfolio": portfolio,
    "weighted_portfolio": weighted_portfolio,
    "surrogate": surrogate,
    "zeroshot": zeroshot,
    "hybrid": hybrid,
}

#: The strategy with the lowest mean normalised regret (averaged over k in 1, 5, 10, 25 and the five task
#: kinds) in ``metalearn kb evaluate`` on the shipped knowledge base (see the README's table): ``hybrid``
#: 0.0235, ``weighted_portfolio`` 0.0256, ``portfolio`` 0.0260, ``surrogate`` 0.0282. The warm-start
#: benchmark (20 held-out corpus datasets, 25 SMAC trials) agrees: hybrid's regret after 1/5/25 trials
#: is the lowest of every strategy, and after 10 within 0.001 of weighted_portfolio's.
DEFAULT_STRATEGY: str = "hybrid"


def _resolve_strategy(strategy: str | Strategy, params: Mapping[str, Any]) -> Strategy:
    if isinstance(strategy, str):
        fn = STRATEGIES.get(strategy)
        if fn is None:
            raise InputError(f"unknown recommender strategy {strategy!r}; choose one of {sorted(STRATEGIES)}")
    elif callable(strategy):
        fn = strategy
    else:
        raise InputError(f"strategy must be a name in {sorted(STRATEGIES)} or a function, got {strategy!r}")
    if params:
        try:
            inspect.signature(fn).bind(None, 1, **params)
        except TypeError as err:
            raise InputError(f"bad parameters {sorted(params)} for strategy {strategy!r}: {err}") from None
        fn = functools.partial(fn, **params)
    return fn


def recommend_from_kb(
    strategy: str | Strategy,
    query_mf: pd.Series | Mapping[str, Any] | None,
    kb: MetaKB,
    k: int = 10,
    exclude: Iterable[Hashable] = (),
    allowed_configs: Collection[Hashable] | None = None,
    **params: Any,
) -> list[Recommendation]:
    """:func:`recommend` on a KB already prepared with :func:`prepare_kb` (reuse it across queries:
    building the regret matrix is the costly part)."""
    fn = _resolve_strategy(strategy, params)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise InputError(f"k must be a positive integer (how many configurations to recommend), got {k!r}")
    if kb.n_datasets == 0 or kb.n_configs == 0:
        return []
    ctx = RecommendContext.build(kb, query_mf, exclude=exclude, allowed_configs=allowed_configs)
    if ctx.empty:
        return []
    return list(fn(ctx, int(k)))


def recommend(
    strategy: str | Strategy,
    query_mf: pd.Series | Mapping[str, Any] | None,
    metafeatures: pd.DataFrame | None,
    runs: pd.DataFrame,
    k: int = 10,
    exclude: Iterable[Hashable] = (),
    allowed_configs: Collection[Hashable] | None = None,
    **params: Any,
) -> list[Recommendation]:
    """Up to ``k`` configurations for a dataset with meta-features ``query_mf``, best first.

    ``strategy``: a name of :data:`STRATEGIES` (or a strategy function); ``params`` are passed to
    it (e.g. ``tau=0.5``). ``metafeatures``/``runs``: the KB frames (``metafeature_frame`` and
    ``runs_frame`` of the task kind and search space). ``exclude``: KB dataset ids not to use
    (benchmarks: the query itself). ``allowed_configs``: only these configuration ids may be
    recommended (those valid in the current search space); ``None`` allows all. An empty KB or no
    usable neighbour gives ``[]``.
    """
    _resolve_strategy(strategy, params)  # fail on a bad name/parameter before the costly part
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise InputError(f"k must be a positive integer (how many configurations to recommend), got {k!r}")
    kb = prepare_kb(metafeatures, runs)
    return recommend_from_kb(strategy, query_mf, kb, k, exclude, allowed_configs, **params)
