"""The Python API: ``optimize()``, with the same power as the CLI (the scikit-learn estimators built on it
are in :mod:`metalearn.search.estimators`, importable from here too)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metalearn.data.dataset import Dataset
from metalearn.data.numbers import finite_or_none
from metalearn.kb.base import KnowledgeBase
from metalearn.kb.shipped import open_default_kb
from metalearn.metalearning.metafeatures import ensure_metafeatures
from metalearn.pipelines.spaces import get_space
from metalearn.search.evaluation import fit_final
from metalearn.search.loop import SearchResult, Trial, run_search
from metalearn.search.settings import SearchSettings


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


def _composed_note(recs: list[Any]) -> str | None:
    """What the summary says of a warm start composed per target (multitask), else None."""
    if not any(getattr(r, "composed", False) for r in recs):
        return None
    from metalearn.metalearning.composed import COMPOSED_NOTE

    return COMPOSED_NOTE


#: the scikit-learn estimators live in metalearn.search.estimators; importable from here as before
_ESTIMATORS = ("MetaLearnEstimator", "MetaLearnClassifier", "MetaLearnRegressor")


def __getattr__(name: str) -> Any:
    if name in _ESTIMATORS:  # imported on first use: estimators imports optimize from this module
        from metalearn.search import estimators

        return getattr(estimators, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
