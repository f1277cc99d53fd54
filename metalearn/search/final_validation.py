"""Validation rows for the final model of a search that evaluated on a data subset.

A search with little time per row evaluates its trials on a stratified subset of the rows (see
:func:`~metalearn.search.deadline.budget_protocol`): their models are trained on two thirds of that subset,
a small share of the rows the final model is fit on. Model families do not gain alike from more rows, so
the ensemble weights chosen on the trials' predictions do not hold for the refit members: on krkopt (21,042
training rows, 18 classes) at 30 s the trials trained on 3,350 rows scored log loss 1.22 (XGBoost), 1.32
(LightGBM) and 1.57 (CatBoost), and refit on all rows 0.45, 0.72 and 1.45; the ensemble chosen on the
trials (weights 0.78 / 0.13 / 0.08) scored 0.525 on the test rows, the XGBoost member alone 0.45.

The rows the search never saw measure the refit members as they are. When the search's subset held at most
:data:`MAX_SUBSET_SHARE` of the rows, :func:`final_validation` sets aside :data:`VALIDATION_SHARE` of the
rows (at least :data:`MIN_VALIDATION_ROWS`, stratified for a class target) from those the search never
used; the final model is fit on the others, and :func:`revalidate` chooses the ensemble's weights again on
the validation rows among the members the search's selection chose (Caruana's selection, as on the trials'
predictions); the temperature of a log-loss model is fit on them too. Nothing else changes: a search that
evaluated on every row (cross-validation or a holdout split) has no unseen rows, and one whose subset held
most of the rows would give up too large a share of the final model's rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from metalearn.data.dataset import Dataset
from metalearn.data.errors import MetaLearnError
from metalearn.data.metrics import score
from metalearn.data.numbers import finite_or_none
from metalearn.data.prediction import Prediction
from metalearn.search.ensemble import (
    Candidate,
    EnsembleModel,
    OutOfFold,
    combine_predictions,
    select_ensemble,
)

__all__ = ["MAX_SUBSET_SHARE", "MIN_VALIDATION_ROWS", "VALIDATION_SHARE", "FinalValidation", "final_validation",
           "revalidate"]

#: a search whose data subset held at most this share of the rows keeps validation rows for its final model
MAX_SUBSET_SHARE = 0.5
#: the share of the rows set aside for validation (of those the search never used) ...
VALIDATION_SHARE = 0.1
#: ... and never fewer (a class target's rare classes need rows; calibration needs 500)
MIN_VALIDATION_ROWS = 1000


@dataclass(frozen=True)
class FinalValidation:
    """Row positions of a dataset: ``fit_rows`` the final model is fit on, ``val_rows`` (sorted, none of them
    used by the search) that validate it."""

    fit_rows: np.ndarray
    val_rows: np.ndarray

    def split(self, dataset: Dataset) -> tuple[Dataset, Dataset]:
        """The rows to fit on and the validation rows of ``dataset``."""
        return dataset.take_rows(self.fit_rows), dataset.take_rows(self.val_rows)

    def note(self, n_rows: int) -> str:
        return (f"the final model was fit on {len(self.fit_rows)} of {n_rows} rows: {len(self.val_rows)} rows the "
                "search's data subset left out chose the refit ensemble's weights (and a log-loss model's temperature)")


def final_validation(dataset: Dataset, protocol: Any, seed: int = 0) -> FinalValidation | None:
    """The validation rows of the final model of a search on ``dataset`` with evaluation ``protocol``
    (:class:`~metalearn.search.evaluation.EvalProtocol`), or None when it keeps none (see the module
    docstring)."""
    n = dataset.n_rows
    resolved = protocol.resolve(n)
    if resolved.max_rows is None or resolved.max_rows > MAX_SUBSET_SHARE * n:
        return None
    used = protocol.subset_rows(dataset)  # the rows the search evaluated on (metalearn.search.evaluation)
    if used is None:
        return None
    unseen = np.setdiff1d(np.arange(n), used)
    n_val = max(MIN_VALIDATION_ROWS, int(VALIDATION_SHARE * n))
    if len(unseen) < n_val:
        return None
    # Dataset.subsample_rows stratifies a single class target: the validation rows keep its class shares
    picked = dataset.take_rows(unseen).subsample_rows(n_val, seed=seed)
    val = unseen if picked is None else unseen[picked]
    return FinalValidation(fit_rows=np.setdiff1d(np.arange(n), val), val_rows=np.sort(val))


def revalidate(
    model: Any, val: Dataset, block: Mapping[str, Any], size: int
) -> tuple[Any, dict[str, Any], Prediction | None]:
    """``model`` (an :class:`~metalearn.search.ensemble.EnsembleModel` of members fit without the rows of
    ``val``) with its weights chosen again on ``val`` among its members, the ensemble ``block`` (the
    summary's) updated, and the returned model's predictions of ``val`` (None when they could not be made):
    the members predict those rows once, for the selection, the score and the temperature
    (``automl._calibrated``). The block's ``members`` are the new weights, ``validation`` says the rows and
    the ensemble's score there with the search's weights (``score_searched_weights``) and with the new ones
    (``score``). A member alone takes the ensemble's place (``used`` False, ``model_config_id``) when no mix
    of them beats it on ``val``."""
    task = val.task
    y = val.y.reset_index(drop=True)
    rows = np.arange(val.n_rows)
    out = dict(block)
    out["validation"] = {"rows": val.n_rows, "score_searched_weights": None, "score": None}
    try:
        cands = [Candidate(cid, {}, math.nan, OutOfFold(rows, member.predict_task(val.X), y))
                 for cid, member in zip(model.config_ids, model.members, strict=True)]
        searched_prediction = combine_predictions(task, [c.oof.prediction for c in cands], model.weights)
        searched = score(task, y, searched_prediction)
        sel = select_ensemble(task, cands, size=size)
    except (MetaLearnError, ValueError) as exc:  # e.g. a class the members never saw: the search's weights stand
        out["validation"]["note"] = f"the validation rows could not be scored ({exc}): the search's weights are kept"
        return model, out, None
    out["validation"]["score_searched_weights"] = finite_or_none(float(searched))
    if sel is None:
        out["validation"]["note"] = "no member scores on the validation rows: the search's weights are kept"
        return model, out, searched_prediction
    family = {m["config_id"]: m.get("family") for m in block.get("members", [])}
    members = dict(zip(model.config_ids, model.members, strict=True))
    predictions = {c.config_id: c.oof.prediction for c in cands}
    if sel.kept:
        new: Any = EnsembleModel(task, [members[cid] for cid in sel.members], sel.weights, sel.members)
        out["validation"]["score"] = finite_or_none(sel.score)
        out["members"] = [{"config_id": cid, "weight": round(w, 6), "count": n, "family": family.get(cid)}
                          for cid, w, n in zip(sel.members, sel.weights, sel.counts, strict=True)]
        return new, out, combine_predictions(task, [predictions[cid] for cid in sel.members], sel.weights)
    out["validation"]["score"] = finite_or_none(sel.best_single)
    out.update(used=False, model_config_id=sel.best_single_id,
               note=f"on the validation rows the member {sel.best_single_id} ({family.get(sel.best_single_id)}) "
                    "alone beats every mix of the members: it is the model")
    return members[sel.best_single_id], out, predictions[sel.best_single_id]
