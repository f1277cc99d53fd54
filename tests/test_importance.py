"""Permutation feature importance (metalearn.pipelines.importance) on real data and real models.

A feature the model never reads has an importance of exactly 0 (shuffling it changes no prediction); the
figures agree with scikit-learn's ``permutation_importance`` on the same model and metric; the direction is
"the metric got worse" for a metric to minimise too; batching the permuted copies changes no figure; a time
limit stops after the first shuffle set; bad arguments are one-line InputErrors.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

from metalearn.data.errors import InputError
from metalearn.data.loading import load_sklearn
from metalearn.data.prediction import Prediction
from metalearn.pipelines import importance as imp
from metalearn.pipelines.importance import permutation_importance


def classifier(ds: Any, used: list[str]) -> Any:
    """A forest fit on the first 400 rows' columns ``used``; ``predict`` reads only those columns."""
    model = RandomForestClassifier(n_estimators=50, random_state=0).fit(ds.X[used].iloc[:400], ds.y.iloc[:400, 0])

    def predict(frame: pd.DataFrame) -> Prediction:
        p = model.predict_proba(frame[used])
        return Prediction([model.classes_[p.argmax(axis=1)]], [p], [model.classes_])

    return model, predict


def test_a_feature_the_model_does_not_read_is_exactly_unimportant_and_the_used_ones_are() -> None:
    ds = load_sklearn("breast_cancer")
    used = ["worst radius", "worst concave points", "mean texture"]
    _, predict = classifier(ds, used)
    X, y = ds.X.iloc[400:], ds.y.iloc[400:]
    table = permutation_importance(predict, ds.task, X, y, n_repeats=5)
    assert table.attrs["metric"] == "roc_auc" and table.attrs["rows"] == len(X) == 169
    assert table.attrs["shuffle_sets"] == 5 and list(table.columns) == list(imp.COLUMNS)
    assert set(table.index) == set(X.columns)
    unused = table.drop(index=used)
    assert (unused["importance"] == 0).all() and (unused["stddev"] == 0).all() and (unused["p_value"] == 0.5).all()
    assert set(table.index[:3]) == set(used)  # only the features read matter
    top = table.iloc[0]
    assert top["importance"] > 0.005 and top["p_value"] < 0.05 and top["p99_low"] < top["importance"] < top["p99_high"]
    assert table["importance"].is_monotonic_decreasing


def test_figures_agree_with_scikit_learns_permutation_importance() -> None:
    from sklearn.inspection import permutation_importance as sk_importance

    ds = load_sklearn("breast_cancer")
    model, predict = classifier(ds, list(ds.X.columns))
    X, y = ds.X.iloc[400:], ds.y.iloc[400:]
    ours = permutation_importance(predict, ds.task, X, y, n_repeats=30)["importance"]
    theirs = sk_importance(model, X, y.iloc[:, 0], scoring="roc_auc", n_repeats=30, random_state=0)
    sk = pd.Series(theirs.importances_mean, index=X.columns).loc[ours.index]
    assert np.corrcoef(ours.to_numpy(), sk.to_numpy())[0, 1] > 0.9
    assert abs(ours.sum() - sk.sum()) < 0.5 * abs(sk.sum())


def test_a_metric_to_minimise_counts_the_loss_that_shuffling_adds() -> None:
    ds = load_sklearn("diabetes")  # regression, RMSE
    model = RandomForestRegressor(n_estimators=50, random_state=0).fit(ds.X.iloc[:300], ds.y.iloc[:300, 0])

    def predict(frame: pd.DataFrame) -> Prediction:
        return Prediction([model.predict(frame)], [None], [None])

    X, y = ds.X.iloc[300:], ds.y.iloc[300:]
    table = permutation_importance(predict, ds.task, X, y, n_repeats=3)
    assert table.attrs["metric"] == "rmse"
    top = table.index[0]
    shuffled = X.copy()
    shuffled[top] = shuffled[top].sample(frac=1.0, random_state=1).to_numpy()
    rmse = lambda frame: float(np.sqrt(np.mean((model.predict(frame) - y.iloc[:, 0].to_numpy()) ** 2)))  # noqa: E731
    assert rmse(shuffled) > rmse(X) and table.iloc[0]["importance"] > 0  # worse RMSE -> positive importance
    r2 = permutation_importance(predict, ds.task, X, y, metric="r2", n_repeats=3)
    assert r2.index[0] == top and r2.attrs["metric"] == "r2"


def test_batched_and_one_feature_per_call_give_the_same_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    ds = load_sklearn("breast_cancer")
    _, predict = classifier(ds, list(ds.X.columns))
    X, y = ds.X.iloc[400:], ds.y.iloc[400:]
    calls: list[int] = []

    def counted(frame: pd.DataFrame) -> Prediction:
        calls.append(len(frame))
        return predict(frame)

    batched = permutation_importance(counted, ds.task, X, y, n_repeats=2, seed=3)
    assert len(calls) == 1 + 2  # the unshuffled rows, then one call per shuffle set (30 x 169 rows)
    monkeypatch.setattr(imp, "BATCH_ROWS", 1)
    calls.clear()
    single = permutation_importance(counted, ds.task, X, y, n_repeats=2, seed=3)
    assert len(calls) == 1 + 2 * 30 and set(calls) == {169}
    pd.testing.assert_frame_equal(batched, single)


def test_rows_are_sampled_and_a_time_limit_stops_after_the_first_shuffle_set() -> None:
    ds = load_sklearn("breast_cancer")
    _, predict = classifier(ds, list(ds.X.columns))
    table = permutation_importance(predict, ds.task, ds.X, ds.y, n_repeats=5, max_rows=100, time_limit=0)
    assert table.attrs["rows"] == 100 and table.attrs["shuffle_sets"] == 1
    assert (table["n"] == 1).all() and table["stddev"].isna().all() and table["p_value"].isna().all()


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"n_repeats": 0}, ("n_repeats", "at least 1")),
        ({"max_rows": 1}, ("max_rows", "at least 2")),
        ({"metric": "rmse"}, ("rmse", "binary")),
        ({"y_rows": 10}, ("169 rows", "labels 10")),
        ({"one_class": True}, ("undefined", "more than one class")),
    ],
)
def test_bad_arguments_are_one_line_input_errors(kwargs: dict[str, Any], words: tuple[str, ...]) -> None:
    ds = load_sklearn("breast_cancer")
    _, predict = classifier(ds, list(ds.X.columns))
    X, y = ds.X.iloc[400:], ds.y.iloc[400:]
    if kwargs.pop("y_rows", None):
        y = y.iloc[:10]
    if kwargs.pop("one_class", False):
        y = y.copy()
        y.iloc[:, 0] = y.iloc[0, 0]
    with pytest.raises(InputError) as err:
        permutation_importance(predict, ds.task, X, y, **kwargs)
    text = str(err.value)
    assert "\n" not in text and all(w in text for w in words), text


def test_a_categorical_column_is_shuffled_as_a_categorical() -> None:
    from metalearn.pipelines.spaces import get_space

    ds = load_sklearn("breast_cancer")
    X = ds.X.iloc[:, :4].copy()
    X["site"] = pd.Categorical(np.array(["a", "b", "c"])[np.arange(len(X)) % 3])
    space = get_space(ds.task)
    model = space.build(space.default(), ds.task, [False] * 4 + [True]).fit(X.iloc[:400], ds.y.iloc[:400])
    dtypes: set[str] = set()

    def predict(frame: pd.DataFrame) -> Prediction:
        dtypes.add(str(frame["site"].dtype))
        return model.predict_task(frame)

    table = permutation_importance(predict, ds.task, X.iloc[400:], ds.y.iloc[400:], n_repeats=2)
    assert dtypes == {"category"} and "site" in table.index
    assert table.loc["site", "importance"] < table["importance"].max()  # a column without signal is not the top one
