"""Validation rows for the final model of a search on a data subset (metalearn.search.final_validation)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from metalearn.data.dataset import Dataset
from metalearn.data.loading import load_dataset
from metalearn.data.metrics import score
from metalearn.kb import open_kb
from metalearn.pipelines.spaces import get_space
from metalearn.search.automl import optimize
from metalearn.search.ensemble import EnsembleModel, ensemble_lines
from metalearn.search.evaluation import EvalProtocol, fit_final
from metalearn.search.final_validation import MIN_VALIDATION_ROWS, final_validation, revalidate
from metalearn.search.settings import SearchSettings

SUBSET = EvalProtocol(mode="holdout", max_rows=500)


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("sklearn:digits")  # 1,797 rows, 10 classes


def test_the_validation_rows_are_rows_the_search_never_used_with_the_class_shares(digits: Dataset) -> None:
    held = final_validation(digits, SUBSET)
    assert held is not None
    used = digits.subsample_rows(500, seed=0)
    assert used is not None and not set(held.val_rows) & set(used)
    assert len(held.val_rows) == MIN_VALIDATION_ROWS  # 10 % of 1,797 rows is fewer
    assert sorted([*held.fit_rows, *held.val_rows]) == list(range(digits.n_rows))
    y = digits.y.iloc[:, 0].to_numpy()
    shares = np.array([np.mean(y == c) for c in np.unique(y)])
    val_shares = np.array([np.mean(y[held.val_rows] == c) for c in np.unique(y)])
    assert np.abs(val_shares - shares).max() < 0.01  # stratified
    again = final_validation(digits, SUBSET)
    assert again is not None and np.array_equal(again.val_rows, held.val_rows)
    fit, val = held.split(digits)
    assert (fit.n_rows, val.n_rows) == (digits.n_rows - MIN_VALIDATION_ROWS, MIN_VALIDATION_ROWS)
    assert "fit on 797 of 1797 rows" in held.note(digits.n_rows)


def test_no_validation_rows_without_a_small_subset(digits: Dataset) -> None:
    assert final_validation(digits, EvalProtocol()) is None  # cross-validation on every row
    assert final_validation(digits, EvalProtocol(mode="holdout")) is None  # a holdout split of every row
    assert final_validation(digits, EvalProtocol(mode="holdout", max_rows=1000)) is None  # most of the rows
    assert final_validation(digits, EvalProtocol(mode="holdout", max_rows=850)) is None  # 947 unseen: too few


def _members(digits: Dataset) -> tuple[Dataset, Any, Any]:
    """Validation rows of ``digits``, and two members fit without them: a good one and a weak one."""
    held = final_validation(digits, SUBSET)
    assert held is not None
    fit, val = held.split(digits)
    space = get_space(digits.task)
    good = fit_final(fit, space, space.validate(space.family_default("linear") or {}))
    weak_values = space.validate({**(space.family_default("knn") or {}), "knn:n_neighbors": 100})
    weak = fit_final(fit, space, weak_values)
    return val, good, weak


def test_the_weights_are_chosen_again_on_the_validation_rows(digits: Dataset) -> None:
    val, good, weak = _members(digits)
    searched = EnsembleModel(digits.task, [good, weak], [0.2, 0.8], ["good", "weak"])
    block = {"used": True, "metric": "log_loss", "members": [{"config_id": "good", "weight": 0.2, "family": "linear"},
                                                             {"config_id": "weak", "weight": 0.8, "family": "knn"}]}
    model, out, predicted = revalidate(searched, val, block, size=25)
    y = val.y.reset_index(drop=True)
    before = score(digits.task, y, searched.predict_task(val.X))
    after = score(digits.task, y, model.predict_task(val.X))
    # the returned model's predictions of the validation rows, from the members' one pass over them
    assert predicted is not None
    np.testing.assert_allclose(predicted.probas[0], model.predict_task(val.X).probas[0], rtol=0, atol=1e-12)
    assert list(predicted.classes[0]) == list(model.predict_task(val.X).classes[0])
    assert out["validation"]["rows"] == val.n_rows
    assert out["validation"]["score_searched_weights"] == pytest.approx(before)
    assert out["validation"]["score"] == pytest.approx(after) and after < before
    weights = {m["config_id"]: m["weight"] for m in out["members"]} if out["used"] else {out["model_config_id"]: 1.0}
    assert weights.get("good", 0.0) > weights.get("weak", 0.0)  # the better member on the rows the fit did not see
    assert any("validation rows" in line for line in ensemble_lines(out))
    assert block["members"][0]["weight"] == 0.2  # the caller's block is not changed


def test_a_search_on_a_subset_fits_its_model_without_the_validation_rows(digits: Dataset) -> None:
    settings = SearchSettings(n_trials=4, warm_start=False, protocol=SUBSET, workers=1)
    out = optimize(digits, kb=open_kb(":memory:"), settings=settings)
    s = out.summary
    assert any("fit on 797 of 1797 rows" in n for n in s["time_budget"]["notes"])
    # the temperature is fit on the model's predictions of the validation rows (the subset's trials cannot give one)
    assert s["calibration"]["validation"] is True and s["calibration"]["n_rows"] == MIN_VALIDATION_ROWS
    validation = s["ensemble"]["validation"]  # the 4 trials' ensemble, its weights chosen again
    assert validation["rows"] == MIN_VALIDATION_ROWS and validation["score"] is not None
    pred = out.model.predict_task(digits.X)
    assert pred.n_rows == digits.n_rows and set(pred.classes[0]) == set(digits.y.iloc[:, 0])
    # every row evaluated: nothing held out
    full = optimize(digits, kb=open_kb(":memory:"), settings=SearchSettings(n_trials=2, warm_start=False,
                                                                            protocol=EvalProtocol(mode="holdout")))
    assert not any("validation" in n for n in full.summary["time_budget"]["notes"])
    assert "validation" not in full.summary["calibration"]


def test_revalidate_hands_back_the_kept_ensembles_predictions_of_the_validation_rows(digits: Dataset) -> None:
    """When a mix of the members wins on the validation rows, the predictions ``revalidate`` returns (made from
    the members' one pass over those rows, for the temperature) are the new ensemble's own."""
    val, good, _ = _members(digits)
    held = final_validation(digits, SUBSET)
    assert held is not None
    space = get_space(digits.task)
    forest = fit_final(held.split(digits)[0], space, space.validate(space.family_default("rf") or {}))
    searched = EnsembleModel(digits.task, [good, forest], [0.5, 0.5], ["good", "rf"])
    block = {"used": True, "metric": "log_loss", "members": [{"config_id": "good", "weight": 0.5, "family": "linear"},
                                                             {"config_id": "rf", "weight": 0.5, "family": "rf"}]}
    model, out, predicted = revalidate(searched, val, block, size=25)
    assert out["used"] and isinstance(model, EnsembleModel) and model is not searched
    assert sorted(m["config_id"] for m in out["members"]) == ["good", "rf"]
    own = model.predict_task(val.X)
    assert predicted is not None and list(predicted.classes[0]) == list(own.classes[0])
    np.testing.assert_allclose(predicted.probas[0], own.probas[0], rtol=0, atol=1e-12)
    assert score(digits.task, val.y.reset_index(drop=True), own) == pytest.approx(out["validation"]["score"])
