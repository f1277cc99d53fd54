"""The Python API: ``optimize()`` and a scikit-learn compatible estimator with the same power as the CLI."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from metalearn.data.dataset import Dataset
from metalearn.data.errors import InputError, SearchError
from metalearn.data.numbers import finite_or_none
from metalearn.kb.base import KnowledgeBase
from metalearn.kb.shipped import open_default_kb
from metalearn.metalearning.metafeatures import ensure_metafeatures
from metalearn.pipelines.spaces import get_space
from metalearn.search.evaluation import fit_final
from metalearn.search.loop import SearchResult, Trial, run_search
from metalearn.search.settings import SearchSettings, defaults, params


@dataclass
class OptimizeOutcome:
    result: SearchResult
    model: Any  # the best pipeline refit on all data (None when no trial succeeded)
    summary: dict[str, Any]
    out_dir: Path | None


def optimize(
    dataset: Dataset,
    kb: KnowledgeBase | str | Path | None = None,
    settings: SearchSettings | None = None,
    *,
    out_dir: str | Path | None = None,
    refit: bool = True,
    on_trial: Callable[[Trial], None] | None = None,
    on_status: Callable[[str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    search_id: str | None = None,
) -> OptimizeOutcome:
    """Warm-started search on ``dataset``: meta-features -> recommendations -> SMAC -> refit.

    Every trial is written to ``kb`` as it finishes; the dataset and its meta-features are stored first,
    so the dataset becomes a neighbour for later searches. Re-running on the same data resumes.
    """
    from metalearn.metalearning.advisor import Advisor

    settings = settings or SearchSettings()
    store = kb if isinstance(kb, KnowledgeBase) else open_default_kb(kb)
    status = on_status or (lambda _text: None)
    t0 = time.monotonic()
    status("meta-features")
    mf = ensure_metafeatures(store, dataset, seed=settings.seed)
    recs: list[Any] = []
    strategy = None
    if settings.warm_start and settings.n_warm > 0:
        status("recommendations")
        advisor = Advisor(store)
        strategy = advisor.resolve_strategy(settings.strategy)
        recs = advisor.recommend_dataset(
            dataset, mf.values, strategy=settings.strategy, k=settings.n_warm, exclude_ids={dataset.dataset_id},
            seed=settings.seed,
        )  # fmt: skip
        if any(getattr(r, "composed", False) for r in recs):  # a multitask dataset, no multitask KB runs
            from metalearn.metalearning.composed import COMPOSED_NOTE

            status(COMPOSED_NOTE)
    status("searching")
    result = run_search(
        dataset, store, settings, recommendations=recs, on_trial=on_trial, should_stop=should_stop, search_id=search_id
    )
    model = None
    if refit and result.best_values is not None:
        status("refitting the best pipeline on all data")
        model = fit_final(dataset, get_space(dataset.task), result.best_values)
    summary = _summary(dataset, result, strategy, recs, time.monotonic() - t0)
    path = None
    if out_dir is not None:
        path = Path(out_dir)
        path.mkdir(parents=True, exist_ok=True)
        (path / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        if model is not None:
            import joblib

            joblib.dump(model, path / "model.joblib")
    return OptimizeOutcome(result=result, model=model, summary=summary, out_dir=path)


def _summary(dataset: Dataset, result: SearchResult, strategy: str | None, recs: list[Any], seconds: float) -> dict[str, Any]:
    return {
        "search_id": result.search_id,
        "dataset": {"name": dataset.name, "dataset_id": dataset.dataset_id, "origin": dataset.origin,
                    "n_rows": dataset.n_rows, "n_features": dataset.n_features},
        "task": dataset.task.to_dict(),
        "metric": result.metric,
        "greater_is_better": result.greater_is_better,
        "space": {"name": result.space, "version": result.space_version},
        "settings": result.settings,
        "warm_start": {"strategy": strategy, "recommended": [r.to_dict() for r in recs if hasattr(r, "to_dict")],
                       "composed": _composed_note(recs)},
        "best": {"score": finite_or_none(result.best_score), "config_id": result.best_config_id,
                 "values": result.best_values},
        "n_trials": len(result.trials),
        "n_resumed": result.n_resumed,
        "n_new": result.n_new,
        "n_failed": result.n_failed,
        "status": result.status,
        "seconds": seconds,
        "trajectory": [finite_or_none(x) for x in result.trajectory()],
        "trials": [
            {"number": t.number, "config_id": t.config_id, "origin": t.origin, "sources": list(t.sources),
             "status": t.status, "score": finite_or_none(t.score), "seconds": round(t.seconds, 3),
             "budget": t.budget, "best_score": finite_or_none(t.best_score), "error": t.error}
            for t in result.trials
        ],
    }


_DEFAULTS = defaults("estimator")


def _composed_note(recs: list[Any]) -> str | None:
    """What the summary says of a warm start composed per target (multitask), else None."""
    if not any(getattr(r, "composed", False) for r in recs):
        return None
    from metalearn.metalearning.composed import COMPOSED_NOTE

    return COMPOSED_NOTE


class MetaLearnEstimator(BaseEstimator):
    """A scikit-learn estimator that runs a warm-started search in ``fit`` and predicts with the refit
    best pipeline. Works for every task kind: pass ``y`` as a Series (one target) or DataFrame (several).

    Parameters mirror ``metalearn optimize``. ``kind`` and ``metric`` override the inferred task kind and
    its default metric; ``kb`` is a KB path (None: the default KB, ``":memory:"``: an in-memory KB seeded
    with the shipped snapshot). The search parameters (declared in :mod:`metalearn.search.settings`):
    """

    def __init__(
        self,
        kind: str | None = None,
        metric: str | None = None,
        n_trials: int = _DEFAULTS["n_trials"],
        time_limit: float | None = _DEFAULTS["time_limit"],
        trial_time_limit: float | None = _DEFAULTS["trial_time_limit"],
        warm_start: bool = _DEFAULTS["warm_start"],
        strategy: str | None = _DEFAULTS["strategy"],
        n_warm: int = _DEFAULTS["n_warm"],
        n_folds: int = _DEFAULTS["n_folds"],
        kb: str | None = None,
        seed: int = _DEFAULTS["seed"],
    ) -> None:
        self.kind = kind
        self.metric = metric
        self.n_trials = n_trials
        self.time_limit = time_limit
        self.trial_time_limit = trial_time_limit
        self.warm_start = warm_start
        self.strategy = strategy
        self.n_warm = n_warm
        self.n_folds = n_folds
        self.kb = kb
        self.seed = seed

    def fit(self, X: Any, y: Any) -> MetaLearnEstimator:
        from metalearn.data.validation import prepare_frame

        X = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X)).add_prefix("x")
        if isinstance(y, pd.DataFrame):
            Y = y.copy()
        else:
            name = getattr(y, "name", None) or "target"
            Y = pd.DataFrame({str(name): np.asarray(y)})
            if Y.shape[1] != 1 or np.asarray(y).ndim > 1:
                Y = pd.DataFrame(np.asarray(y)).add_prefix("y")
        if len(X) != len(Y):
            raise InputError(f"X has {len(X)} rows but y has {len(Y)}; pass one target row per sample")
        frame = pd.concat([X.reset_index(drop=True), Y.reset_index(drop=True)], axis=1)
        ds = prepare_frame(frame, list(Y.columns), kind=self.kind, metric=self.metric, name="estimator-fit",
                           origin="python:MetaLearnEstimator")
        settings = SearchSettings.from_params(**{name: getattr(self, name) for name in _DEFAULTS})
        outcome = optimize(ds, kb=self.kb, settings=settings)
        if outcome.model is None:
            raise SearchError(
                f"no configuration succeeded in {len(outcome.result.trials)} trials "
                f"({outcome.result.n_failed} failed); raise n_trials/trial_time_limit or check the data"
            )
        self.task_ = ds.task
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.model_ = outcome.model
        self.best_config_ = outcome.result.best_values
        self.best_score_ = outcome.result.best_score
        self.search_ = outcome.summary
        return self

    def _X(self, X: Any) -> pd.DataFrame:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "model_")
        if not isinstance(X, pd.DataFrame):
            X = pd.DataFrame(np.asarray(X), columns=list(self.feature_names_in_))
        return X

    def predict(self, X: Any) -> np.ndarray:
        pred = self.model_.predict_task(self._X(X))
        if pred.n_targets == 1:
            return np.asarray(pred.values[0])
        return np.column_stack([np.asarray(v) for v in pred.values])

    def predict_proba(self, X: Any) -> np.ndarray | list[np.ndarray]:
        pred = self.model_.predict_task(self._X(X))
        probas = [p for p in pred.probas if p is not None]
        if not probas:
            raise InputError("predict_proba needs a classification task; this estimator was fit for regression")
        return probas[0] if pred.n_targets == 1 else probas

    @property
    def classes_(self) -> np.ndarray:
        pred_classes = getattr(self.model_, "classes_", None)
        if pred_classes is None:
            raise AttributeError("classes_ is only defined for a single classification target")
        return pred_classes


if MetaLearnEstimator.__doc__ is not None:  # None under python -OO
    MetaLearnEstimator.__doc__ = MetaLearnEstimator.__doc__.rstrip() + "\n\n" + "".join(
        f"    - ``{name}`` (default ``{_DEFAULTS[name]!r}``): {p.help}\n" for name, p in params("estimator").items()
    )
