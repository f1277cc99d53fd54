"""Shapley values of single predictions (metalearn.pipelines.explain) on real data and real models.

A linear model's interventional Shapley values are known exactly (coefficient x (value - background mean))
and the sampled ones equal them; for any model the values add up to the output minus the base value, a
feature the model does not read gets exactly 0, a class target's values sum to 0 over its classes; a
pipeline with categorical columns (one-hot, an unseen category) is explained like any other; bad arguments
are one-line InputErrors.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression

from metalearn.data.errors import InputError
from metalearn.data.loading import load_sklearn
from metalearn.data.prediction import Prediction
from metalearn.pipelines import explain as ex
from metalearn.pipelines.explain import shapley_values


def test_a_linear_models_values_are_exact_and_add_up() -> None:
    ds = load_sklearn("diabetes")
    model = LinearRegression().fit(ds.X, ds.y.iloc[:, 0])

    def predict(frame: pd.DataFrame) -> Prediction:
        return Prediction([model.predict(frame)], [None], [None])

    background = ds.X.iloc[100:110]
    found = shapley_values(predict, ds.task, ds.X.iloc[:3], background, n_permutations=2, max_background=10)
    assert len(found) == 3
    for i, e in enumerate(found):
        exact = model.coef_ * (ds.X.iloc[i].to_numpy() - background.mean().to_numpy())
        assert e.outputs == (("value",),) and e.features == tuple(ds.X.columns)
        assert np.allclose(e.values[0][0], exact, atol=1e-9)
        assert e.prediction[0][0] == pytest.approx(model.predict(ds.X.iloc[[i]])[0])
        assert e.base[0][0] == pytest.approx(model.predict(background).mean())
    block = found[0].to_dict(top=3)["target"]["value"]
    assert len(block["contributions"]) == 3 and block["base"] + sum(
        c["value"] for c in block["contributions"]) + block["others"] == pytest.approx(block["prediction"])
    magnitudes = [abs(c["value"]) for c in block["contributions"]]
    assert magnitudes == sorted(magnitudes, reverse=True)


def _forest(ds: Any, used: list[str]) -> Any:
    model = RandomForestClassifier(n_estimators=30, random_state=0).fit(ds.X[used], ds.y.iloc[:, 0])

    def predict(frame: pd.DataFrame) -> Prediction:
        p = model.predict_proba(frame[used])
        return Prediction([model.classes_[p.argmax(axis=1)]], [p], [model.classes_])

    return model, predict


def test_a_forests_values_add_up_and_a_feature_it_does_not_read_gets_none() -> None:
    ds = load_sklearn("wine")  # three classes
    used = list(ds.X.columns[:6])
    model, predict = _forest(ds, used)
    found = shapley_values(predict, ds.task, ds.X.iloc[[0, 70, 150]], ds.X.iloc[1::10], n_permutations=4)
    for i, e in zip([0, 70, 150], found, strict=True):
        values, base, pred = e.values[0], e.base[0], e.prediction[0]
        assert values.shape == (3, ds.X.shape[1]) and e.outputs[0] == tuple(str(c) for c in model.classes_)
        assert np.allclose(base + values.sum(axis=1), pred)  # efficiency, exactly
        assert np.allclose(pred, model.predict_proba(ds.X[used].iloc[[i]])[0])
        assert np.allclose(values.sum(axis=0), 0.0, atol=1e-12)  # the probabilities always sum to 1
        unused = [j for j, c in enumerate(ds.X.columns) if c not in used]
        assert np.all(values[:, unused] == 0.0)
    # the predicted class's probability moved most by the features the model reads
    e = found[0]
    top = np.argsort(-np.abs(e.values[0][int(np.argmax(e.prediction[0]))]))[:3]
    assert all(ds.X.columns[j] in used for j in top)


def test_categorical_columns_and_a_category_the_background_lacks() -> None:
    from metalearn.pipelines.spaces import get_space

    frame = load_sklearn("breast_cancer").X.iloc[:, :4].copy()
    ds = load_sklearn("breast_cancer")
    frame["site"] = pd.Categorical(np.array(["a", "b", "c"])[np.arange(len(frame)) % 3])
    space = get_space(ds.task)
    model = space.build(space.default(), ds.task, [False] * 4 + [True])
    model.fit(frame, ds.y)
    row = frame.iloc[[0]].copy()
    row["site"] = pd.Categorical(["z"])  # never seen
    found = shapley_values(model.predict_task, ds.task, row, frame.iloc[1:40], n_permutations=2)
    e = found[0]
    assert np.allclose(e.base[0] + e.values[0].sum(axis=1), e.prediction[0])
    assert np.allclose(e.prediction[0], model.predict_task(row).probas[0][0])


def test_batches_do_not_change_the_values(monkeypatch: pytest.MonkeyPatch) -> None:
    ds = load_sklearn("wine")
    _, predict = _forest(ds, list(ds.X.columns))
    args = (predict, ds.task, ds.X.iloc[[5]], ds.X.iloc[::12])
    whole = shapley_values(*args, n_permutations=2, seed=4)[0]
    monkeypatch.setattr(ex, "BATCH_ROWS", 7)
    split = shapley_values(*args, n_permutations=2, seed=4)[0]
    assert np.array_equal(whole.values[0], split.values[0])


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"n_permutations": 0}, ("n_permutations",)),
        ({"max_background": 0}, ("max_background",)),
        ({"no_rows": True}, ("nothing to explain",)),
        ({"no_background": True}, ("background", "no rows")),
        ({"other_columns": True}, ("same order",)),
    ],
)
def test_bad_arguments_are_one_line_input_errors(kwargs: dict[str, Any], words: tuple[str, ...]) -> None:
    ds = load_sklearn("wine")
    _, predict = _forest(ds, list(ds.X.columns))
    X, background = ds.X.iloc[:2], ds.X.iloc[10:20]
    if kwargs.pop("no_rows", False):
        X = X.iloc[:0]
    if kwargs.pop("no_background", False):
        background = background.iloc[:0]
    if kwargs.pop("other_columns", False):
        background = background[list(reversed(background.columns))]
    with pytest.raises(InputError) as err:
        shapley_values(predict, ds.task, X, background, **kwargs)
    text = str(err.value)
    assert "\n" not in text and all(w in text for w in words), text
