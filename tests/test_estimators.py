"""The scikit-learn estimators (``metalearn.search.estimators``): scikit-learn's own estimator checks with
a tiny search budget, the classifier / regressor contract (the kind comes from the class, never from how
the target looks), default scoring in ``cross_val_score`` / ``GridSearchCV``, and the knowledge base side
effect: by default a fit writes no KB file and a second fit on the same data searches again."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import is_classifier, is_regressor
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.utils.estimator_checks import parametrize_with_checks

from metalearn.data.errors import InputError
from metalearn.data.kinds import infer_task
from metalearn.data.task import TaskKind
from metalearn.kb import open_kb
from metalearn.search.estimators import MetaLearnClassifier, MetaLearnEstimator, MetaLearnRegressor

#: a search budget small enough for scikit-learn's checks (each fits a few times on tiny data)
TINY: dict[str, Any] = {"n_trials": 1, "n_folds": 2, "trial_time_limit": None, "warm_start": False}
SMALL: dict[str, Any] = {"n_trials": 2, "n_folds": 2, "trial_time_limit": 60.0}


@parametrize_with_checks([MetaLearnClassifier(**TINY), MetaLearnRegressor(**TINY), MetaLearnEstimator(**TINY)])
def test_sklearn_estimator_checks(estimator: Any, check: Any) -> None:
    check(estimator)


@pytest.mark.slow
@parametrize_with_checks([MetaLearnEstimator(kind="regression", **TINY), MetaLearnEstimator(kind="multiclass", **TINY)])
def test_sklearn_estimator_checks_with_a_given_kind(estimator: Any, check: Any) -> None:
    check(estimator)


def _blobs(n: int = 90, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    X = pd.DataFrame({"a": y * 2.0 + rng.normal(size=n), "b": rng.normal(size=n), "c": -y + rng.normal(size=n)})
    return X, y


def test_classifier_and_regressor_are_recognised_and_offer_only_their_methods() -> None:
    assert is_classifier(MetaLearnClassifier()) and not is_regressor(MetaLearnClassifier())
    assert is_regressor(MetaLearnRegressor()) and not is_classifier(MetaLearnRegressor())
    assert hasattr(MetaLearnClassifier(), "predict_proba") and not hasattr(MetaLearnRegressor(), "predict_proba")
    assert is_classifier(MetaLearnEstimator(kind="multilabel")) and is_regressor(MetaLearnEstimator(kind="multitarget"))
    assert not is_classifier(MetaLearnEstimator()) and not is_regressor(MetaLearnEstimator())
    assert not hasattr(MetaLearnEstimator(kind="regression"), "predict_proba")


def test_classifier_treats_integer_codes_as_classes_whatever_the_inference_says() -> None:
    """Non-negative integers with a long thin tail read as counts (regression) when inferred; the
    classifier classifies them anyway, and the regressor regresses 3-valued integer targets."""
    rng = np.random.default_rng(0)
    n = 300
    y = np.minimum(rng.geometric(0.45, size=n) - 1, 9)  # 0..9, frequencies falling off: a "count"
    X = pd.DataFrame({"a": y + rng.normal(scale=0.3, size=n), "b": rng.normal(size=n)})
    assert infer_task(pd.Series(y, name="y")).kind is TaskKind.REGRESSION
    clf = MetaLearnClassifier(**SMALL).fit(X, y)
    assert clf.task_.kind is TaskKind.MULTICLASS and list(clf.classes_) == sorted(set(y))
    assert "given as multiclass" in clf.task_.kind_reasons[0]
    proba = clf.predict_proba(X)
    assert proba.shape == (n, len(clf.classes_)) and np.allclose(proba.sum(axis=1), 1.0)
    assert set(clf.predict(X)) <= set(y) and clf.n_features_in_ == 2
    assert list(clf.feature_names_in_) == ["a", "b"]

    X3, y3 = _blobs()
    assert infer_task(pd.Series(y3, name="y")).kind is TaskKind.MULTICLASS
    reg = MetaLearnRegressor(**SMALL).fit(X3, y3)
    assert reg.task_.kind is TaskKind.REGRESSION and not hasattr(reg, "classes_")
    assert reg.predict(X3).dtype.kind == "f" and -1.0 <= reg.score(X3, y3) <= 1.0
    with pytest.raises(ValueError, match="Unknown label type"):
        MetaLearnClassifier(**SMALL).fit(X3, y3 + 0.5)


def test_default_scoring_works_in_cross_validation_and_grid_search() -> None:
    X, y = _blobs()
    scores = cross_val_score(MetaLearnClassifier(**TINY), X, y, cv=2)  # accuracy, from ClassifierMixin
    assert scores.shape == (2,) and (scores > 0.6).all()
    grid = GridSearchCV(MetaLearnRegressor(**TINY), {"n_folds": [2, 3]}, cv=2).fit(X, y * 1.5 + X["b"])
    assert grid.best_params_["n_folds"] in (2, 3) and np.isfinite(grid.best_score_)  # R², from RegressorMixin
    est = MetaLearnEstimator(**TINY).fit(X, pd.DataFrame({"cls": y, "num": X["a"] * 2}))  # multitask
    assert est.task_.kind is TaskKind.MULTITASK and 0.0 < est.score(X, np.column_stack([y, X["a"] * 2])) <= 1.0


def test_several_targets_are_matched_by_name_and_their_labels_checked() -> None:
    """evaluate() matched named target columns by position (reordered: a mean score of -3e6 instead of 0.49),
    scored a class the model never saw, and score() raised on text classes of a multitask model."""
    X, y = _blobs()
    Y = pd.DataFrame({"cls": np.array(["north", "south", "east"])[y % 3], "num": X["a"] * 2 + 1, "flag": y % 2})
    est = MetaLearnEstimator(**TINY).fit(X, Y)
    assert est.task_.kind is TaskKind.MULTITASK
    metrics = est.evaluate(X, Y)
    assert est.evaluate(X, Y[["num", "flag", "cls"]]) == metrics  # by name, whatever the order
    assert est.evaluate(X, Y.to_numpy()) == metrics  # an array: by position
    assert 0.0 < est.score(X, Y) <= 1.0 and est.score(X, Y[["flag", "num", "cls"]]) == est.score(X, Y)
    with pytest.raises(InputError, match=r"y's columns \['cls', 'NUM', 'flag'\] are not the fitted targets \['cls', 'num', 'flag'\]"):
        est.evaluate(X, Y.rename(columns={"num": "NUM"}))
    unseen = Y.assign(cls=Y["cls"].where(Y.index > 0, "west"))
    with pytest.raises(InputError, match="'west' is not a class of 'cls' the model was trained on"):
        est.evaluate(X, unseen)
    assert est.score(X, unseen) <= est.score(X, Y)  # scikit-learn's score counts it as a wrong prediction


def test_default_fits_write_no_kb_file_and_search_every_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_kb = tmp_path / "user-kb.duckdb"
    monkeypatch.setenv("METALEARN_KB", str(user_kb))  # where the CLI's default KB would be
    X, y = _blobs()
    summaries = []
    for _ in range(2):  # the defaults (warm start from the shipped snapshot included), a small budget
        est = MetaLearnClassifier(n_trials=2, n_folds=2, trial_time_limit=60.0).fit(X, y)
        summaries.append(est.search_)
    for summary in summaries:
        assert summary["n_resumed"] == 0 and summary["n_new"] == 2 == summary["n_trials"]
    assert summaries[0]["warm_start"]["recommended"]  # the private KB was seeded from the shipped snapshot
    assert not user_kb.exists()


def test_an_explicit_kb_is_written_and_resumed_only_on_request(tmp_path: Path) -> None:
    kb_path = tmp_path / "kb.duckdb"
    X, y = _blobs()
    own = {**TINY, "n_trials": 2, "kb": str(kb_path)}
    first = MetaLearnClassifier(**own).fit(X, y).search_
    again = MetaLearnClassifier(**own).fit(X, y).search_  # resume=False (default): a new search
    resumed = MetaLearnClassifier(**own, resume=True).fit(X, y).search_
    assert (first["n_new"], again["n_new"], again["n_resumed"]) == (2, 2, 0)
    assert resumed["n_resumed"] == 2 and resumed["n_new"] == 0
    with open_kb(kb_path, read_only=True) as kb:  # the fit wrote its trials to the KB it was given
        assert len(kb.list_runs(search_id=first["search_id"])) == 2
        assert {s.search_id for s in kb.list_searches()} >= {first["search_id"], again["search_id"]}


def test_evaluate_feature_importance_and_explain_on_held_out_rows() -> None:
    from metalearn.data.loading import load_sklearn

    ds = load_sklearn("breast_cancer")
    X = ds.X.assign(noise=np.random.default_rng(0).normal(size=ds.n_rows))  # a column that carries no signal
    y = ds.y.iloc[:, 0]
    est = MetaLearnClassifier(**TINY).fit(X.iloc[:400], y.iloc[:400])
    table = est.feature_importance(X.iloc[400:], y.iloc[400:], n_repeats=3)
    assert table.attrs["metric"] == "roc_auc" and table.attrs["rows"] == 169 and len(table) == 31
    assert table.index[0] != "noise" and table["importance"].iloc[0] > abs(table.loc["noise", "importance"])
    arrays = est.feature_importance(X.iloc[400:].to_numpy(), y.iloc[400:].to_numpy(), n_repeats=3)
    pd.testing.assert_frame_equal(arrays, table)  # the same rows as arrays: the fitted column names
    log_loss = est.feature_importance(X.iloc[400:], y.iloc[400:], metric="log_loss", n_repeats=1)
    assert log_loss.attrs["metric"] == "log_loss" and (log_loss["n"] == 1).all()
    metrics = est.evaluate(X.iloc[400:], y.iloc[400:])
    assert set(metrics) == {"roc_auc", "log_loss", "accuracy", "balanced_accuracy", "f1"}
    assert metrics["roc_auc"] == pytest.approx(table.attrs["base_score"])  # the same rows, the same model
    assert metrics["accuracy"] == pytest.approx(est.score(X.iloc[400:], y.iloc[400:]))
    with pytest.raises(InputError, match="rows"):
        est.evaluate(X.iloc[400:], y.iloc[:10])
    why = est.explain(X.iloc[400:403], n_permutations=2, background=8)
    assert len(est.background_) == 100 and list(why.index.names) == ["row", "target", "output"]
    assert len(why) == 3 * 2 and list(why.columns) == ["base", "prediction", *X.columns]  # 3 rows x 2 classes
    assert np.allclose(why["base"] + why[list(X.columns)].sum(axis=1), why["prediction"])
    proba = est.predict_proba(X.iloc[400:403])
    assert np.allclose(why["prediction"].to_numpy().reshape(3, 2), proba)
    with pytest.raises(ValueError, match="feature names"):
        est.feature_importance(X.iloc[400:, :5], y.iloc[400:])
    with pytest.raises(InputError, match="target column"):
        est.feature_importance(X.iloc[400:], np.column_stack([y.iloc[400:], y.iloc[400:]]))


def test_boolean_labels_come_back_as_booleans_and_score() -> None:
    """A boolean y was trained on as 'False' / 'True': classes_ and predict gave strings, score() raised sklearn's
    "Mix of label input types", evaluate() said accuracy 0 and log loss 36 of a perfect model."""
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    clf = MetaLearnClassifier(**SMALL).fit(X, y == 0)
    assert clf.classes_.dtype == bool and list(clf.classes_) == [False, True]
    assert clf.predict(X[:3]).dtype == bool and clf.score(X, y == 0) > 0.95
    metrics = clf.evaluate(X, pd.Series(y == 0))
    assert metrics["accuracy"] > 0.95 and metrics["roc_auc"] > 0.95
    floats = MetaLearnClassifier(**SMALL).fit(X, y.astype(float))  # 0.0 / 1.0 / 2.0 stay floats
    assert floats.classes_.dtype.kind == "f" and floats.predict(X[:2]).dtype.kind == "f"


def test_classes_are_the_fitted_models_own_with_string_labels_and_a_rare_class(monkeypatch: pytest.MonkeyPatch) -> None:
    """fit read ``classes_`` off a prediction of the first training row (a whole prediction, through the schema
    check of predict); it is now the fitted model's ``classes_``: string labels as given, a class of 3 rows in 120
    included whether or not the model ever predicts it, in predict_proba's column order — and fit predicts nothing."""
    from metalearn.search import estimators

    def no_prediction(self: Any, frame: pd.DataFrame) -> pd.DataFrame:
        raise AssertionError("fit predicted rows to find classes_")

    rng = np.random.default_rng(0)
    y = np.array(["cat"] * 57 + ["dog"] * 60 + ["emu"] * 3, dtype=object)
    X = pd.DataFrame({"a": (y == "dog") * 2.0 + rng.normal(size=len(y)), "b": rng.normal(size=len(y))})
    with monkeypatch.context() as patched:
        patched.setattr(estimators._SearchEstimator, "_model_input", no_prediction)
        clf = MetaLearnClassifier(**SMALL).fit(X, y)
    assert list(clf.classes_) == ["cat", "dog", "emu"] and list(clf.model_.classes_) == list(clf.classes_)
    proba = clf.predict_proba(X)
    assert proba.shape == (len(y), 3) and set(clf.predict(X)) <= {"cat", "dog", "emu"}
    labels = pd.DataFrame({"k": y, "v": X["a"] * 3.0})  # a class target next to a regression target: no classes_
    est = MetaLearnEstimator(kind="multitask", **SMALL).fit(X, labels)
    assert not hasattr(est, "classes_") and est.predict(X).shape == (len(y), 2)


def test_predict_checks_rows_against_the_training_schema() -> None:
    """As the registry checks a registered model's rows: text in a numeric column was read as missing."""
    from metalearn.pipelines.signature import SchemaError

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"num": rng.normal(size=200), "colour": rng.choice(["red", "blue"], 200)})
    y = (X["num"] > 0).astype(int)
    clf = MetaLearnClassifier(**SMALL).fit(X, y)
    with pytest.raises(SchemaError, match=r"mistyped column\(s\) num \(numbers expected, got 'abc'\)"):
        clf.predict(X.head(3).assign(num=["abc", 1.0, 2.0]))
    unseen = X.head(3).assign(colour=["green", "red", "red"])
    for call in (clf.predict, clf.predict_proba, lambda rows: clf.leaderboard(rows, y.head(3))):
        with pytest.warns(UserWarning, match="column colour: 1 category not seen in training") as caught:
            assert len(call(unseen)) >= 1
        # at the user's call (here), not inside the estimator (it was its _prediction, three calls deep)
        assert {w.filename for w in caught if "not seen" in str(w.message)} == {__file__}


def test_repeated_feature_names_are_refused_by_name() -> None:
    X = pd.DataFrame(np.random.default_rng(0).normal(size=(60, 2)), columns=["a", "a"])
    with pytest.raises(InputError, match="X repeats column\\(s\\) 'a': give each column a name of its own"):
        MetaLearnClassifier(**SMALL).fit(X, np.r_[np.zeros(30), np.ones(30)])  # it was narwhals' DuplicateError


def test_bad_targets_are_one_line_metalearn_errors_in_every_estimator() -> None:
    """MetaLearnClassifier gave scikit-learn's "Unknown label type: unknown ... continuous values" for a missing
    text label or labels of mixed types, "Input y contains NaN" for a missing number; MetaLearnRegressor
    "Input y contains infinity"; MetaLearnEstimator already named the target and the fix."""
    X, y = _blobs(30)
    text = pd.Series(np.array(["no", "yes"])[y % 2]).where(lambda s: s.index % 10 > 0)
    for estimator, labels, words in (
        (MetaLearnClassifier(**TINY), text, "has 3 missing value(s) in 30 rows; drop those rows or fill the target in"),
        (MetaLearnClassifier(**TINY), pd.Series(y, dtype="Int64").where(lambda s: s.index > 0), "1 missing value(s)"),
        (MetaLearnClassifier(**TINY), pd.Series([1, "0"] * 15, dtype=object), "labels mix types (int, str)"),
        (MetaLearnRegressor(**TINY), pd.Series(np.r_[np.inf, np.arange(29.0)]), "holds 1 infinite value(s)"),
        (MetaLearnEstimator(**TINY), text, "has 3 missing value(s)"),
    ):
        with pytest.raises(InputError, match=re.escape(words)) as err:
            estimator.fit(X, labels)
        assert "\n" not in str(err.value)


def test_a_date_column_with_typos_and_an_identifier_column_are_noted_at_fit() -> None:
    """Two typos among 90 dates made the column categories, one per row, and an id column was used as a feature:
    both silently (every prediction then warned of unseen categories)."""
    X, y = _blobs()
    dates = pd.Series(pd.date_range("2020-01-01", periods=len(X)).strftime("%Y-%m-%d"))
    dates[3], dates[9] = "unknown", "2021-13-45"
    with pytest.warns(UserWarning) as caught:
        MetaLearnClassifier(**TINY).fit(X.assign(day=dates, patient=[f"p{i}" for i in range(len(X))]), y)
    said = [str(w.message) for w in caught]
    assert any(m.startswith("column 'day': 2 of 90 values are not dates (e.g. 'unknown', '2021-13-45')") for m in said)
    assert any(m.startswith("column 'patient' has a distinct value in 90 of 90 rows (an identifier") for m in said)
    assert not any("column 'day' has a distinct value" in m for m in said)  # one note per column
    # a constant column (a QA run's passed without a word)
    with pytest.warns(UserWarning) as caught:
        MetaLearnClassifier(**TINY).fit(X.assign(site="a", version=2.0), y)
    assert any(str(w.message).startswith("2 feature column(s) hold one value in every row ('site', 'version')")
               for w in caught), [str(w.message) for w in caught]


def test_importance_and_explanations_warn_of_an_unseen_category_once() -> None:
    """feature_importance warned "column colour: 1 category not seen in training" once per shuffle (6 times)."""
    import warnings

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"num": rng.normal(size=120), "colour": rng.choice(["red", "blue"], 120)})
    y = (X["num"] > 0).astype(int)
    clf = MetaLearnClassifier(**SMALL).fit(X, y)
    rows = X.head(20).assign(colour=["green"] + ["red"] * 19)
    for call in (lambda: clf.feature_importance(rows, y.head(20), n_repeats=3),
                 lambda: clf.explain(rows.head(2), n_permutations=2, background=4)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            call()
        assert [str(w.message) for w in caught if "not seen in training" in str(w.message)] == [
            "column colour: 1 category not seen in training (green), predicted as an unknown category"], caught


def test_a_fit_passes_on_no_deprecation_warning_of_smacs_own_configspace_calls() -> None:
    """SMAC 2.4 calls ConfigSpace's get_dictionary: "Please use dict(config)" reached the user on every fit."""
    import warnings

    X, y = _blobs()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        MetaLearnClassifier(n_trials=3, n_folds=2).fit(X, y)
    assert not [w for w in caught if "Please use `dict" in str(w.message)]
