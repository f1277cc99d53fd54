"""Task models built by the search spaces, fitted and evaluated on real corpus data.

Each space samples seeded random configurations (+ its default) and fits/predicts on a small real
dataset of its kind; the shared multi-task network is gradient-checked and must learn a multitask
problem made from a corpus classification dataset by promoting a feature to a target.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from metalearn.data.dataset import Dataset
from metalearn.data.errors import DataError
from metalearn.data.prediction import Prediction
from metalearn.data.task import Task, TaskKind
from metalearn.pipelines.models import Adaptive, SharedTrunkMLP
from metalearn.pipelines.models.adaptive import adapted_params, mlp_epoch_cap
from metalearn.pipelines.models.shared_mlp import init_params, loss_and_grads
from metalearn.pipelines.spaces import get_space

pytestmark = pytest.mark.corpus

# the dataset used per kind: small, real, with categorical features (and NaNs for penguins)
DATASETS = {
    "binary": "cleve",
    "multiclass": "penguins",
    "regression": "1027_ESL",
    "multilabel": "flags",
    "multitarget": "sf1",
}
N_SAMPLED = 12


@pytest.fixture(scope="module")
def load(load_corpus) -> Callable[[str], Dataset]:
    return load_corpus


def penguins_multitask(load: Callable[[str], Dataset]) -> Dataset:
    """Species (multiclass) + island (a categorical feature promoted to a target) + body mass
    (a numeric feature promoted to a regression target; 2 rows have it missing)."""
    base = load("penguins")
    X = base.X.drop(columns=["island", "body_mass_g"])
    y = pd.DataFrame(
        {"species": base.y["target"], "island": base.X["island"], "mass": base.X["body_mass_g"].astype(float)}
    )
    task = Task(
        TaskKind.MULTITASK,
        ("species", "island", "mass"),
        (TaskKind.MULTICLASS, TaskKind.MULTICLASS, TaskKind.REGRESSION),
    )
    cat = tuple(isinstance(d, pd.CategoricalDtype) for d in X.dtypes)
    return Dataset("penguins-mt", X, y, task, cat, "corpus:penguins")


def cleve_multitask(load: Callable[[str], Dataset]) -> Dataset:
    """Heart disease (binary) + chest pain type (categorical feature -> multiclass target) + max heart
    rate (numeric feature -> regression target)."""
    base = load("cleve")
    X = base.X.drop(columns=["Chest pain type", "Max heart rate"])
    y = pd.DataFrame(
        {
            "target": base.y["target"],
            "chest_pain": base.X["Chest pain type"],
            "max_hr": base.X["Max heart rate"].astype(float),
        }
    )
    task = Task(
        TaskKind.MULTITASK,
        tuple(y.columns),
        (TaskKind.BINARY, TaskKind.MULTICLASS, TaskKind.REGRESSION),
    )
    cat = tuple(isinstance(d, pd.CategoricalDtype) for d in X.dtypes)
    return Dataset("cleve-mt", X, y, task, cat, "corpus:cleve")


def dataset_for(kind: str, load: Callable[[str], Dataset]) -> Dataset:
    return cleve_multitask(load) if kind == "multitask" else load(DATASETS[kind])


def split(ds: Dataset, frac: float = 0.7, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    idx = np.random.default_rng(seed).permutation(ds.n_rows)
    cut = int(frac * ds.n_rows)
    return idx[:cut], idx[cut:]


def true_labels(s: pd.Series) -> np.ndarray:
    if isinstance(s.dtype, pd.CategoricalDtype):
        return np.asarray(s.astype(s.cat.categories.dtype))
    return s.to_numpy()


def check_prediction(pred: Prediction, ds: Dataset, rows: np.ndarray, y_train: pd.DataFrame) -> None:
    """A Prediction is well formed for the task (shapes, probabilities, labels, dtypes)."""
    assert isinstance(pred, Prediction)
    assert pred.n_targets == ds.task.n_targets and pred.n_rows == len(rows)
    for t, kind in enumerate(ds.task.target_kinds):
        values, proba, classes = pred.values[t], pred.probas[t], pred.classes[t]
        assert values.shape == (len(rows),)
        if kind is TaskKind.REGRESSION:
            assert proba is None and classes is None
            assert np.issubdtype(values.dtype, np.floating) and np.isfinite(values).all()
            continue
        assert classes is not None and proba is not None
        assert list(classes) == sorted(classes)
        assert proba.shape == (len(rows), len(classes))
        assert np.all(proba >= 0) and np.allclose(proba.sum(axis=1), 1.0)
        assert set(np.unique(values)) <= set(classes.tolist())
        seen = true_labels(y_train.iloc[:, t].dropna())
        assert set(np.unique(seen).tolist()) <= set(classes.tolist())
        assert values.dtype.kind == seen.dtype.kind  # original labels, not codes or strings
        if ds.task.kind is TaskKind.MULTILABEL:
            assert list(classes) == [0, 1]


# ------------------------------------------------------------------------------------ every space


@pytest.mark.parametrize(
    "kind", ["binary", "multiclass", "regression", "multilabel", "multitarget", "multitask"]
)
def test_sampled_configurations_fit_and_predict(load, kind: str) -> None:
    ds = dataset_for(kind, load)
    space = get_space(ds.task)
    tr, te = split(ds)
    configs = [space.default(), *space.sample(N_SAMPLED, seed=7)]
    failures = []
    start = time.perf_counter()
    for i, values in enumerate(configs):
        try:
            model = space.build(values, ds.task, ds.categorical, seed=0)
            assert model.fit(ds.X.iloc[tr], ds.y.iloc[tr]) is model
            pred = model.predict_task(ds.X.iloc[te])
        except Exception as err:  # collected: the assertion below reports them all
            failures.append((i, values.get("model", values.get("mtl_strategy")), repr(err)[:200]))
            continue
        check_prediction(pred, ds, te, ds.y.iloc[tr])
    assert len(failures) <= 1, failures
    assert time.perf_counter() - start < 40


def test_default_configurations_beat_trivial_baselines(load) -> None:
    for name in ("cleve", "penguins", "1027_ESL", "flags", "enb"):
        ds = load(name)
        space = get_space(ds.task)
        tr, te = split(ds)
        pred = space.build(space.default(), ds.task, ds.categorical, seed=0).fit(ds.X.iloc[tr], ds.y.iloc[tr])
        pred = pred.predict_task(ds.X.iloc[te])
        for t, kind in enumerate(ds.task.target_kinds):
            y_tr = ds.y.iloc[tr, t]
            y_te = ds.y.iloc[te, t]
            if kind is TaskKind.REGRESSION:
                r2 = 1 - np.mean((pred.values[t] - y_te.to_numpy()) ** 2) / np.var(y_te.to_numpy())
                assert r2 > 0.3, (name, t, r2)
            else:
                truth = true_labels(y_te)
                prior = pd.Series(true_labels(y_tr)).value_counts(normalize=True)
                majority = float(np.mean(truth == prior.index[0]))
                acc = float(np.mean(pred.values[t] == truth))
                if ds.task.kind is TaskKind.MULTILABEL:  # some flag colours are nearly constant
                    assert acc >= majority - 0.02, (name, t, acc, majority)
                else:
                    assert acc > majority + 0.05, (name, t, acc, majority)


# ------------------------------------------------------------------------------ estimator contract


def test_task_models_are_sklearn_estimators(load) -> None:
    ds = load("penguins")
    space = get_space(ds.task)
    values = space.validate({"model": "hgb", "preprocessing": "pca"}, fill_defaults=True)
    model = space.build(values, ds.task, ds.categorical, seed=3)
    params = model.get_params()
    assert "estimator__estimator__learning_rate" in params and "preprocessor__tabular__scaling" in params
    assert not hasattr(model, "estimator_")  # no work in __init__
    twin = clone(model)
    twin.set_params(preprocessor__tabular__scaling="robust")
    assert model.get_params()["preprocessor__tabular__scaling"] == "standard"
    tr, te = split(ds)
    fitted = model.fit(ds.X.iloc[tr], ds.y.iloc[tr])
    assert fitted is model
    p1 = model.predict_task(ds.X.iloc[te])
    buf = io.BytesIO()
    joblib.dump(model, buf)
    buf.seek(0)
    p2 = joblib.load(buf).predict_task(ds.X.iloc[te])
    np.testing.assert_array_equal(p1.probas[0], p2.probas[0])
    p3 = clone(model).fit(ds.X.iloc[tr], ds.y.iloc[tr]).predict_task(ds.X.iloc[te])
    np.testing.assert_allclose(p1.probas[0], p3.probas[0])  # same seed, same model
    assert twin.fit(ds.X.iloc[tr], ds.y.iloc[tr]).predict_task(ds.X.iloc[te]).n_rows == len(te)


def test_seed_controls_randomness(load) -> None:
    ds = load("cleve")
    space = get_space(ds.task)
    v = space.validate({"model": "et", "et:n_estimators": 20.0}, fill_defaults=True)
    tr, te = split(ds)

    def probas(seed: int) -> np.ndarray:
        m = space.build(v, ds.task, ds.categorical, seed=seed).fit(ds.X.iloc[tr], ds.y.iloc[tr])
        return m.predict_task(ds.X.iloc[te]).probas[0]

    np.testing.assert_array_equal(probas(1), probas(1))
    assert not np.array_equal(probas(1), probas(2))


def test_unseen_and_single_classes_do_not_crash(load) -> None:
    ds = load("penguins")
    space = get_space(ds.task)
    y = true_labels(ds.y["target"])
    train = np.flatnonzero(y != 1)  # class 1 absent from training
    for model_name in ("linear", "svm", "mlp", "hgb", "knn"):
        v = space.validate({"model": model_name, "mlp:early_stopping": "valid"}, fill_defaults=True)
        m = space.build(v, ds.task, ds.categorical).fit(ds.X.iloc[train], ds.y.iloc[train])
        pred = m.predict_task(ds.X)  # includes class-1 rows
        assert list(pred.classes[0]) == [0, 2] and pred.probas[0].shape == (ds.n_rows, 2)
    only = np.flatnonzero(y == 2)
    m = space.build(space.default(), ds.task, ds.categorical).fit(ds.X.iloc[only], ds.y.iloc[only])
    pred = m.predict_task(ds.X.iloc[:5])
    assert list(pred.classes[0]) == [2] and np.all(pred.values[0] == 2) and np.allclose(pred.probas[0], 1)
    # one row of a class (stratified early stopping / calibration folds are impossible for it)
    one = np.concatenate([np.flatnonzero(y == 0), np.flatnonzero(y == 1)[:1], np.flatnonzero(y == 2)])
    for model_name in ("mlp", "svm", "hgb"):
        extra = {"mlp:early_stopping": "valid", "hgb:early_stop": "valid"}
        v = space.validate({"model": model_name, **extra}, fill_defaults=True)
        m = space.build(v, ds.task, ds.categorical).fit(ds.X.iloc[one], ds.y.iloc[one])
        check_prediction(m.predict_task(ds.X), ds, np.arange(ds.n_rows), ds.y.iloc[one])


def test_multilabel_constant_label_keeps_two_classes(load) -> None:
    ds = load("flags")
    space = get_space(ds.task)
    orange = ds.y["orange"].to_numpy()
    rows = np.flatnonzero(orange == 0)  # "orange" is all 0 in training
    for strategy, model_name in (
        ("native", "rf"),
        ("native", "mlp"),
        ("binary_relevance", "linear"),
        ("chain", "svm"),
    ):
        v = space.validate({"model": model_name, "ml_strategy": strategy}, fill_defaults=True)
        m = space.build(v, ds.task, ds.categorical).fit(ds.X.iloc[rows], ds.y.iloc[rows])
        pred = m.predict_task(ds.X)
        j = list(ds.task.targets).index("orange")
        assert list(pred.classes[j]) == [0, 1] and pred.probas[j].shape == (ds.n_rows, 2)
        # the constant is predicted for every strategy (the native MLP used to learn towards it)
        assert np.all(pred.probas[j][:, 1] == 0.0) and np.all(pred.values[j] == 0)
        assert m.constant_targets_ == ["orange"]


def test_multilabel_label_absent_from_training_fits_predicts_and_scores(load_corpus, corpus_dir) -> None:
    """Issue 14 item 18: a training file without any "orange" flag is accepted (it used to be refused
    by the loader), every strategy predicts probability 0/1 for the constant label, the other labels
    are learned, and the metrics over the test rows (where "orange" occurs) are finite."""
    from metalearn.data.loading import Corpus, load_frame_file
    from metalearn.data.metrics import compute_metrics
    from metalearn.data.validation import prepare_frame

    entry = Corpus(corpus_dir).entry("flags")
    raw = load_frame_file(entry.file)
    targets = list(entry.targets)
    train = prepare_frame(raw[raw["orange"] == 0].reset_index(drop=True), targets, name="flags-train")
    test = prepare_frame(raw, targets, name="flags-all")
    assert train.task.kind is TaskKind.MULTILABEL and (train.y["orange"] == 0).all()
    space = get_space(train.task)
    j = targets.index("orange")
    for strategy, model_name in (("native", "rf"), ("binary_relevance", "linear"), ("chain", "knn")):
        v = space.validate({"model": model_name, "ml_strategy": strategy}, fill_defaults=True)
        m = space.build(v, train.task, train.categorical).fit(train.X, train.y)
        assert m.constant_targets_ == ["orange"]
        pred = m.predict_task(test.X)
        check_prediction(pred, test, np.arange(test.n_rows), train.y)
        assert np.all(pred.probas[j] == [1.0, 0.0])
        scores = compute_metrics(train.task, test.y, pred)
        assert all(math.isfinite(x) for x in scores.values()), scores
        assert scores["roc_auc_macro"] > 0.6


def test_multitarget_constant_column_is_predicted_constant(load) -> None:
    """A multitarget column constant in the training rows ("x-class" flares: 0 in 316 of 323 rows) is
    predicted as that constant by every strategy; the other targets are learned and scored."""
    from metalearn.data.metrics import compute_metrics

    ds = load("sf1")
    space = get_space(ds.task)
    j = list(ds.task.targets).index("x-class")
    rows = np.flatnonzero(ds.y["x-class"].to_numpy() == 0)
    for strategy, model_name in (
        ("native", "rf"),
        ("native", "mlp"),
        ("per_target", "linear"),
        ("chain", "knn"),
    ):
        v = space.validate({"model": model_name, "mt_strategy": strategy}, fill_defaults=True)
        m = space.build(v, ds.task, ds.categorical).fit(ds.X.iloc[rows], ds.y.iloc[rows])
        assert m.constant_targets_ == ["x-class"]
        pred = m.predict_task(ds.X)
        check_prediction(pred, ds, np.arange(ds.n_rows), ds.y.iloc[rows])
        assert np.all(pred.values[j] == 0.0)
        scores = compute_metrics(ds.task, ds.y, pred)
        assert all(math.isfinite(x) for x in scores.values()), scores
    # every target constant: no estimator at all, the constants are predicted
    y0 = ds.y.iloc[rows[:50]] * 0.0 + 2.0
    v = space.validate({"model": "rf"}, fill_defaults=True)
    m = space.build(v, ds.task, ds.categorical).fit(ds.X.iloc[rows[:50]], y0)
    assert m.constant_targets_ == list(ds.task.targets)
    assert all(np.all(p == 2.0) for p in m.predict_task(ds.X).values)


def test_missing_values_unseen_categories_and_column_order(load) -> None:
    ds = load("foodtruck")  # string categorical features
    space = get_space(ds.task)
    tr, te = split(ds)
    for encoding in ("onehot", "ordinal"):
        v = space.validate({"encoding": encoding, "model": "knn", "scaling": "quantile"}, fill_defaults=True)
        m = space.build(v, ds.task, ds.categorical).fit(ds.X.iloc[tr], ds.y.iloc[tr])
        X_te = ds.X.iloc[te].copy()
        cat_col = ds.X.columns[ds.categorical.index(True)]
        num_col = ds.X.columns[ds.categorical.index(False)]
        X_te[cat_col] = X_te[cat_col].cat.add_categories(["never-seen"])
        X_te.iloc[:5, X_te.columns.get_loc(cat_col)] = "never-seen"
        X_te.iloc[5:10, X_te.columns.get_loc(cat_col)] = np.nan
        X_te.iloc[:10, X_te.columns.get_loc(num_col)] = np.nan
        pred = m.predict_task(X_te)
        check_prediction(pred, ds, te, ds.y.iloc[tr])
        shuffled = m.predict_task(X_te[list(reversed(X_te.columns))])
        np.testing.assert_array_equal(pred.probas[0], shuffled.probas[0])
        with pytest.raises(DataError, match="fitted on 21 feature columns but got 20"):
            m.predict_task(X_te.iloc[:, 1:])


def test_string_labels_object_features_and_missing_targets(load) -> None:
    """Foodtruck's 'marital.status' (string categories) becomes a multiclass target of a multitask
    problem with 'gender' as a plain object column flagged numeric, and some targets missing."""
    base = load("foodtruck")
    X = base.X.drop(columns=["marital.status"]).copy()
    X["gender"] = X["gender"].astype(object)  # strings in an object column, flagged as numeric below
    y = pd.DataFrame({"marital": base.X["marital.status"], "snacks": base.y["snacks"].astype("Int64")})
    y.loc[:9, "marital"] = np.nan
    y.loc[10:19, "snacks"] = np.nan
    task = Task(TaskKind.MULTITASK, ("marital", "snacks"), (TaskKind.MULTICLASS, TaskKind.BINARY))
    cat = tuple(isinstance(d, pd.CategoricalDtype) for d in X.dtypes)
    ds = Dataset("foodtruck-mt", X, y, task, cat, "corpus:foodtruck")
    space = get_space(task)
    tr, te = split(ds)
    for strategy in ("independent", "shared"):
        v = space.validate({"mtl_strategy": strategy, "model": "linear"}, fill_defaults=True)
        model = space.build(v, task, cat).fit(ds.X.iloc[tr], ds.y.iloc[tr])
        pred = model.predict_task(ds.X.iloc[te])
        assert list(pred.classes[0]) == ["divorced", "married", "single"]
        assert pred.values[0].dtype == object and set(pred.values[0]) <= {"divorced", "married", "single"}
        assert list(pred.classes[1]) == [0, 1] and pred.values[1].dtype.kind == "i"
        assert np.allclose(pred.probas[0].sum(axis=1), 1.0)
        tab = model.preprocessor_.named_steps["tabular"]
        assert X.columns.get_loc("gender") in tab.categorical_idx_  # strings cannot be numeric


def test_one_model_per_output_shares_the_budget(load) -> None:
    ds = load("flags")
    space = get_space(ds.task)
    v = space.validate({"model": "rf", "ml_strategy": "binary_relevance"}, fill_defaults=True)
    model = space.build(v, ds.task, ds.categorical, budget=7.0).fit(ds.X, ds.y)
    assert len(model.estimator_) == 7
    assert all(e.budget == pytest.approx(1.0) for e in model.estimator_)


def test_regression_model_families_are_sane(load) -> None:
    ds = load("enb").subsample(400, seed=0)
    task = Task(TaskKind.REGRESSION, ("Y1",))
    single = Dataset("enb-y1", ds.X, ds.y[["Y1"]], task, ds.categorical, ds.origin)
    space = get_space(task)
    tr, te = split(single)
    y_te = single.y.iloc[te, 0].to_numpy()
    for fam in ("linear", "svm", "knn", "rf", "et", "hgb", "mlp", "lgbm", "xgb", "catboost"):
        v = space.validate({"model": fam}, fill_defaults=True)
        pred = space.build(v, task, single.categorical).fit(single.X.iloc[tr], single.y.iloc[tr])
        out = pred.predict_task(single.X.iloc[te]).values[0]
        r2 = 1 - np.mean((out - y_te) ** 2) / np.var(y_te)
        assert r2 > 0.6, (fam, r2)


def test_forests_predict_small_batches_tree_by_tree_exactly_as_sklearn(load) -> None:
    """The serving path's small-batch forest predictions (no joblib per call) equal sklearn's, bit for bit,
    and the path is taken (it is several times faster on one row)."""
    from metalearn.pipelines.models.adaptive import SMALL_BATCH_ROWS, forest_small_batch

    for kind, fams in (("binary", ("rf", "et")), ("multiclass", ("rf", "et")), ("regression", ("rf", "et"))):
        ds = load(DATASETS[kind])
        space = get_space(ds.task)
        tr, te = split(ds)
        for fam in fams:
            v = space.validate({"model": fam}, fill_defaults=True)
            model = space.build(v, ds.task, ds.categorical).fit(ds.X.iloc[tr], ds.y.iloc[tr])
            assert isinstance(model.estimator_, Adaptive)
            forest = model.estimator_.estimator_
            rows = ds.X.iloc[te[:SMALL_BATCH_ROWS]]
            Xt = np.asarray(model.preprocessor_.transform(rows), dtype=np.float64)
            proba = kind != "regression"
            fast = forest_small_batch(forest, Xt, proba=proba)
            assert fast is not None, (kind, fam)
            slow = forest.predict_proba(Xt) if proba else forest.predict(Xt)
            assert np.array_equal(fast, slow), (kind, fam)
            assert forest_small_batch(forest, np.vstack([Xt] * 2), proba=proba) is None  # large: sklearn's
            assert forest_small_batch(forest, Xt, proba=not proba) is None



@pytest.mark.parametrize("kind", ["multiclass", "regression", "multitarget"])
def test_the_final_fit_grows_a_forest_to_more_trees_when_time_allows(load, kind: str) -> None:
    """``fit_final`` grows a random / extra-trees forest of 100 trees to ``FINAL_FOREST_TREES``: the trees
    of a plain fit come first, unchanged (warm start), and the grown forest scores at least about as well on
    held-out rows; with no time for the new trees it is the plain fit's forest."""
    from metalearn.data.metrics import compute_metrics, get_metric
    from metalearn.pipelines.models.adaptive import FINAL_FOREST_TREES
    from metalearn.search.evaluation import fit_final

    ds = load(DATASETS[kind])
    space = get_space(ds.task)
    tr, te = split(ds)
    train = Dataset(ds.name, ds.X.iloc[tr].reset_index(drop=True), ds.y.iloc[tr].reset_index(drop=True),
                    ds.task, ds.categorical, ds.origin)
    X_te, y_te = ds.X.iloc[te], ds.y.iloc[te]
    greater = get_metric(ds.task.metric).greater_is_better
    for fam in ("rf", "et"):
        v = space.validate({"model": fam, f"{fam}:n_estimators": 100.0}, fill_defaults=True)
        plain = space.build(v, ds.task, ds.categorical).fit(train.X, train.y)
        grown = fit_final(train, space, v)
        kept = fit_final(train, space, v, extra_within=0.0)
        forests = [m.estimator_ for m in (plain, grown, kept)]
        assert [f.forest_grown_ for f in forests] == [False, True, False], (kind, fam)
        small, big, same = (f.estimator_ for f in forests)
        assert len(small.estimators_) == len(same.estimators_) == 100 and len(big.estimators_) == FINAL_FOREST_TREES
        Xt = np.asarray(plain.preprocessor_.transform(X_te.iloc[:20]), dtype=np.float64)
        for a, b in zip(small.estimators_, big.estimators_[:100], strict=True):  # the same first trees
            assert np.array_equal(a.predict(Xt), b.predict(Xt))
        assert np.array_equal(kept.predict(X_te), plain.predict(X_te))
        s_plain = compute_metrics(ds.task, y_te, plain.predict_task(X_te))[ds.task.metric]
        s_grown = compute_metrics(ds.task, y_te, grown.predict_task(X_te))[ds.task.metric]
        sign = 1.0 if greater else -1.0
        assert sign * (s_grown - s_plain) > -0.02 * abs(s_plain), (kind, fam, s_plain, s_grown)
def test_lookup_ordinal_encoder_gives_sklearns_codes(load) -> None:
    """The dict-lookup ordinal encoder (the serving path of wide categorical data) codes every label as
    sklearn's OrdinalEncoder does, unseen labels and missing values included, and follows a refit."""
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OrdinalEncoder

    from metalearn.pipelines.models.preprocessing import LookupOrdinalEncoder, canonical_category_strings

    ds = load(DATASETS["binary"])
    cats = [c for c, is_cat in zip(ds.X.columns, ds.categorical, strict=True) if is_cat]
    assert len(cats) >= 3
    block = np.column_stack([canonical_category_strings(ds.X[c].to_numpy(dtype=object)) for c in cats])
    imputer = SimpleImputer(strategy="most_frequent").fit(block[:150])
    kw = dict(handle_unknown="use_encoded_value", unknown_value=-1, dtype=np.float64)
    test = block[150:].copy()
    test[0, 0], test[1, 1], test[2, 2] = "never seen", np.nan, 3  # unseen text, missing, a non-string
    for rows in (slice(0, 150), slice(100, 300)):  # a refit on other rows must not reuse the old lookups
        train = imputer.transform(block[rows])
        ours = LookupOrdinalEncoder(**kw).fit(train)
        theirs = OrdinalEncoder(**kw).fit(train)
        for X in (test, imputer.transform(test), test[:1]):
            assert np.array_equal(ours.transform(X), theirs.transform(X), equal_nan=True)
        assert ours._lookups() is not None  # the fast path was taken


def test_category_strings_of_a_few_values_match_the_factorized_ones(load, monkeypatch: pytest.MonkeyPatch) -> None:
    """Single rows convert their labels value by value; every real categorical column of the corpus
    datasets used here, and mixed labels, give the strings the factorize path gives."""
    from metalearn.pipelines.models import preprocessing

    columns = [np.array([1.0, 2.5, np.nan, None, "a", np.float64(3.0), 7, pd.NA, np.int64(4), "", pd.NaT], dtype=object),
               np.array([True, np.bool_(False), None], dtype=object)]
    for name in (DATASETS["binary"], DATASETS["multiclass"], DATASETS["multilabel"]):
        ds = load(name)
        columns += [ds.X[c].to_numpy(dtype=object)[:12] for c, cat in zip(ds.X.columns, ds.categorical, strict=True) if cat]
    assert len(columns) > 10
    fast = [preprocessing.canonical_category_strings(c) for c in columns]
    monkeypatch.setattr(preprocessing, "_FEW_VALUES", -1)
    for col, ours in zip(columns, fast, strict=True):
        theirs = preprocessing.canonical_category_strings(col)
        assert ours.dtype == object and ours.shape == theirs.shape
        assert list(pd.Series(ours).fillna("<NA>")) == list(pd.Series(theirs).fillna("<NA>")), col


def test_normal_quantile_transformer_equals_sklearns(load) -> None:
    """The quantile scaling with ndtri (the serving path) transforms real data, out-of-range values, NaN
    and a single row exactly as sklearn's QuantileTransformer, and inverts like it."""
    from sklearn.preprocessing import QuantileTransformer

    from metalearn.pipelines.models.preprocessing import NormalQuantileTransformer

    X = load("enb").X.select_dtypes("number").to_numpy(dtype=np.float64)
    assert X.shape[1] >= 5
    kw = dict(output_distribution="normal", n_quantiles=200, random_state=0)
    ours, theirs = NormalQuantileTransformer(**kw).fit(X[:300]), QuantileTransformer(**kw).fit(X[:300])
    test = X[300:].copy()
    test[0, 0], test[1, 1], test[2, 0] = np.nan, 1e9, -1e9
    for rows in (test, test[:1], X[:300]):
        out = ours.transform(rows)
        assert np.array_equal(out, theirs.transform(rows), equal_nan=True)
        assert np.allclose(ours.inverse_transform(out), theirs.inverse_transform(out), equal_nan=True)


def test_catboost_predicts_from_a_pool_as_from_its_frame(load) -> None:
    """CatBoost with native categorical columns predicts from an object-array Pool (the fast path) exactly
    what it predicts from the frame it was fitted with."""
    ds = load(DATASETS["binary"])
    space = get_space(ds.task)
    tr, te = split(ds)
    v = space.validate({"model": "catboost", "encoding": "ordinal"}, fill_defaults=True)
    model = space.build(v, ds.task, ds.categorical).fit(ds.X.iloc[tr], ds.y.iloc[tr])
    boosted = model.estimator_.estimator_ if isinstance(model.estimator_, Adaptive) else model.estimator_
    assert boosted.library == "catboost" and len(boosted.categorical_features) >= 3
    Xt = np.asarray(model.preprocessor_.transform(ds.X.iloc[te]), dtype=np.float64)
    for rows in (Xt, Xt[:1]):
        frame = boosted.model_.predict_proba(boosted._data(rows))
        assert np.array_equal(boosted.predict_proba(rows), frame)


# ------------------------------------------------------------------------------ adaptation, budget


def test_fit_time_adaptation_from_real_shapes(load) -> None:
    ds = load("magic")  # 19k rows
    X = np.zeros((ds.n_rows, 50))
    y = true_labels(ds.y["target"])
    space = get_space(ds.task)
    mlp = space.validate(
        {
            "model": "mlp",
            "mlp:n_layers": 3,
            "mlp:width_1": 256.0,
            "mlp:width_2": 256.0,
            "mlp:width_3": 256.0,
            "mlp:batch_size": 16.0,
        },
        fill_defaults=True,
    )
    est = space.build(mlp, ds.task, ds.categorical).estimator.estimator
    p = adapted_params(est, X, y, budget=12.0, max_features_exponent=None)
    assert 2 <= p["max_iter"] <= 10  # 200 epochs of a 3x256 net on 19k rows would take minutes
    assert mlp_epoch_cap(500, 10, (64,), 1, 128, 12.0) == 200
    small = space.validate({"model": "knn", "knn:n_neighbors": 100.0}, fill_defaults=True)
    knn = space.build(small, ds.task, ds.categorical).estimator.estimator
    assert adapted_params(knn, X[:30], y[:30], 12.0, None)["n_neighbors"] == 30
    rf = space.validate({"model": "rf", "rf:max_features_exponent": 0.5}, fill_defaults=True)
    forest = space.build(rf, ds.task, ds.categorical).estimator
    assert isinstance(forest, Adaptive)
    assert adapted_params(forest.estimator, X[:100, :49], y[:100], 12.0, 0.5)["max_features"] == 7


def test_kernel_svm_trains_on_a_capped_stratified_subsample(load) -> None:
    ds = load("magic").subsample(6000, seed=0)
    space = get_space(ds.task)
    v = space.validate({"model": "svm"}, fill_defaults=True)
    start = time.perf_counter()
    m = space.build(v, ds.task, ds.categorical).fit(ds.X, ds.y)
    assert time.perf_counter() - start < 20
    assert m.estimator_.n_train_rows_ <= 2100
    _, te = split(ds)
    acc = np.mean(m.predict_task(ds.X.iloc[te]).values[0] == true_labels(ds.y.iloc[te, 0]))
    assert acc > 0.75


# ------------------------------------------------------------------------------ shared multitask net


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_shared_mlp_gradient_check(activation: str) -> None:
    rng = np.random.default_rng(0)
    n, p, hidden = 9, 5, [4, 3]
    kinds, sizes = ["class", "regression", "class"], [3, 1, 2]
    X = rng.normal(size=(n, p))
    Y = np.column_stack([rng.integers(0, 3, n), rng.normal(size=n), rng.integers(0, 2, n)]).astype(float)
    Y[1, 0] = np.nan  # missing targets are ignored by their head
    Y[4, 1] = np.nan
    params = [q + rng.normal(scale=0.1, size=q.shape) for q in init_params(p, hidden, sizes, rng)]
    weights, alpha = [0.5, 0.3, 0.2], 0.05
    loss, grads = loss_and_grads(params, X, Y, kinds, len(hidden), activation, alpha, weights)
    assert math.isfinite(loss) and len(grads) == len(params)
    eps = 1e-6
    for q, g in zip(params, grads, strict=True):
        num = np.zeros_like(q)
        for idx in np.ndindex(q.shape):
            old = q[idx]
            q[idx] = old + eps
            up, _ = loss_and_grads(params, X, Y, kinds, len(hidden), activation, alpha, weights, False)
            q[idx] = old - eps
            down, _ = loss_and_grads(params, X, Y, kinds, len(hidden), activation, alpha, weights, False)
            q[idx] = old
            num[idx] = (up - down) / (2 * eps)
        scale = max(1e-8, np.abs(num).max() + np.abs(g).max())
        assert np.abs(num - g).max() / scale < 1e-6


def _log_loss(proba: np.ndarray, classes: np.ndarray, truth: np.ndarray) -> float:
    idx = np.searchsorted(classes, truth)
    return float(-np.mean(np.log(np.clip(proba[np.arange(len(truth)), idx], 1e-15, None))))


def test_shared_mlp_learns_a_real_multitask_problem(load) -> None:
    ds = penguins_multitask(load)
    space = get_space(ds.task)
    v = space.validate({"mtl_strategy": "shared"}, fill_defaults=True)
    tr, te = split(ds, seed=1)
    model = space.build(v, ds.task, ds.categorical, seed=0).fit(ds.X.iloc[tr], ds.y.iloc[tr])
    net = model.estimators_[0]
    assert isinstance(net, SharedTrunkMLP) and net.hidden_ == [64, 64]
    assert 1 <= net.n_epochs_ <= net.max_epochs_ and net.validation_curve_[0] > net.best_loss_
    pred = model.predict_task(ds.X.iloc[te])
    check_prediction(pred, ds, te, ds.y.iloc[tr])
    for t in (0, 1):  # both class heads beat the training prior clearly
        truth = true_labels(ds.y.iloc[te, t])
        prior = pd.Series(true_labels(ds.y.iloc[tr, t])).value_counts(normalize=True).sort_index()
        base_ll = _log_loss(np.tile(prior.to_numpy(), (len(te), 1)), prior.index.to_numpy(), truth)
        ll = _log_loss(pred.probas[t], pred.classes[t], truth)
        assert ll < 0.75 * base_ll, (t, ll, base_ll)
        assert np.mean(pred.values[t] == truth) > prior.max() + 0.1
    mass = ds.y.iloc[te, 2].to_numpy()
    ok = ~np.isnan(mass)
    r2 = 1 - np.mean((pred.values[2][ok] - mass[ok]) ** 2) / np.var(mass[ok])
    assert r2 > 0.5


def test_shared_mlp_is_seeded_and_standalone() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    Y = np.column_stack([(X[:, 0] > 0).astype(float), X[:, 1] * 3 + 100])
    net = SharedTrunkMLP(target_kinds=("binary", "regression"), hidden_layer_sizes=(16,), random_state=4)
    a = net.fit(X, Y).predict_heads(X)
    b = clone(net).fit(X, Y).predict_heads(X)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[0].shape == (200, 2) and a[1].shape == (200,)
    assert abs(np.mean(a[1]) - 100) < 1.0  # regression head works in the original units


@pytest.mark.parametrize("kind", ["regression", "multitarget"])
def test_a_regression_model_does_not_predict_far_outside_the_training_targets(kind: str) -> None:
    """A linear pipeline fed a row far outside its training inputs extrapolates without bound (uci_gas: a
    prediction of 7,782 for targets in [-3.1, 2.0]); the model keeps predictions within the training range
    widened by half of it, and leaves the others alone."""
    from metalearn.pipelines.models.task_models import PREDICTION_MARGIN

    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 1.0, size=200)
    X = pd.DataFrame({"x": x, "noise": rng.normal(size=200)})
    targets = ["y"] if kind == "regression" else ["y", "z"]
    y = pd.DataFrame({"y": 3.0 * x, "z": -2.0 * x + 1.0})[targets]
    task = Task(kind=TaskKind(kind), targets=targets)
    space = get_space(TaskKind(kind))
    values = space.validate({**space.default(), "model": "linear"}, fill_defaults=True)
    model = space.build(values, task, [False, False]).fit(X, y)
    inside = pd.DataFrame({"x": [0.25, 0.75], "noise": [0.0, 0.0]})
    far = pd.DataFrame({"x": [1000.0, -1000.0], "noise": [0.0, 0.0]})
    got_inside = model.predict_task(inside).values
    got_far = model.predict_task(far).values
    for j, col in enumerate(targets):
        lo, hi = float(y[col].min()), float(y[col].max())
        pad = PREDICTION_MARGIN * (hi - lo)
        truth = 3.0 * inside["x"].to_numpy() if col == "y" else -2.0 * inside["x"].to_numpy() + 1.0
        np.testing.assert_allclose(got_inside[j], truth, atol=0.05)  # a linear fit, untouched
        assert sorted(np.round(got_far[j], 9)) == sorted(np.round([lo - pad, hi + pad], 9))  # clipped both ways


def test_a_multitask_models_regression_target_stays_near_its_training_range() -> None:
    """The same bound for a regression target of a multitask model (the class target is untouched)."""
    from metalearn.pipelines.models.task_models import PREDICTION_MARGIN

    rng = np.random.default_rng(1)
    x = rng.uniform(0.0, 1.0, size=200)
    X = pd.DataFrame({"x": x, "noise": rng.normal(size=200)})
    y = pd.DataFrame({"y": 3.0 * x, "c": np.where(x > 0.5, "hi", "lo")})
    task = Task(TaskKind.MULTITASK, ("y", "c"), (TaskKind.REGRESSION, TaskKind.BINARY))
    space = get_space(TaskKind.MULTITASK)
    values = space.validate({**space.default(), "model": "linear"}, fill_defaults=True)
    model = space.build(values, task, [False, False]).fit(X, y)
    got = model.predict_task(pd.DataFrame({"x": [0.5, 1000.0, -1000.0], "noise": [0.0] * 3}))
    pad = PREDICTION_MARGIN * 3.0 * (x.max() - x.min())
    np.testing.assert_allclose(got.values[0][0], 1.5, atol=0.05)
    np.testing.assert_allclose(got.values[0][1:], [3.0 * x.max() + pad, 3.0 * x.min() - pad])
    assert list(got.values[1][1:]) == ["hi", "lo"]


@pytest.mark.parametrize("strategy", ["per_target", "chain"])
def test_a_poly_kernel_svr_on_unscaled_osales_features_fits_and_scores(load, strategy: str) -> None:
    """osales (a feature up to 1.7e7): a degree-4 poly-kernel SVR on unscaled features (``scaling: none``) has kernel
    values of ~4e53, beyond the float32 libsvm caches them in, and every such trial crashed with "The dual coefficients
    or intercepts are not finite". A poly-kernel SVM's unscaled features are now standardised: the trial scores,
    and its predictions stay finite and near the targets."""
    from metalearn.data.splits import cv_splits
    from metalearn.search.evaluation import EvalProtocol, evaluate_config

    ds = load("osales")
    space = get_space(ds.task)
    values = space.validate({
        "model": "svm", "mt_strategy": strategy, "scaling": "none", "svm:kernel": "poly", "svm:C": 1.0,
        "svm:gamma": 0.0858, "svm:degree": 4, "svm:coef0": -0.918, "svm:epsilon": 0.1,
    }, fill_defaults=True)
    train, test = cv_splits(ds, 5, 0)[0]
    model = space.build(values, ds.task, ds.categorical).fit(ds.X.iloc[train], ds.y.iloc[train])
    Xt = np.asarray(model.preprocessor_.transform(ds.X.iloc[train]), dtype=np.float64)
    assert np.abs(Xt).max() < 100  # standardised: no feature of 1.7e7 reaches the kernel
    pred = model.predict_task(ds.X.iloc[test])
    check_prediction(pred, ds, test, ds.y.iloc[train])
    result = evaluate_config(ds, space, values, EvalProtocol(n_folds=2))
    assert result.status == "ok" and math.isfinite(result.score), result.error
    # the other scalings are the configuration's own (the poly SVR fit on them before)
    for scaling in ("standard", "robust", "quantile"):
        pre = space.build({**values, "scaling": scaling}, ds.task, ds.categorical).preprocessor
        assert pre.get_params()["tabular__scaling"] == scaling


def test_a_diverged_regressor_chain_link_passes_on_bounded_predictions(load) -> None:
    """osales (12 targets, missing values): a poly-kernel SVR chain at C = 14,178 (as a search trial had it)
    diverges — its first link predicts ~1e41 for a standardised target, the next ~1e130 from that, the third
    overflows to NaN — and predicting failed with "Input X contains NaN". Each link now passes on the model's
    own bounded prediction, so the chain predicts finite values near every target's training range; a chain whose
    links stay in range predicts as scikit-learn's."""
    from sklearn.multioutput import RegressorChain

    from metalearn.data.splits import cv_splits
    from metalearn.pipelines.models.task_models import PREDICTION_MARGIN

    ds = load("osales")
    space = get_space(ds.task)
    values = space.validate({
        "model": "svm", "mt_strategy": "chain", "scaling": "none", "svm:kernel": "poly", "svm:C": 14178.0,
        "svm:gamma": 0.0858, "svm:degree": 3, "svm:coef0": -0.918, "svm:epsilon": 0.00112,
    }, fill_defaults=True)
    train, test = cv_splits(ds, 5, 0)[0]
    model = space.build(values, ds.task, ds.categorical)
    # unscaled features, as the trial had them (a poly SVM's are now standardised: the test below): what diverges
    model.preprocessor.set_params(tabular__scaling="none")
    model.fit(ds.X.iloc[train], ds.y.iloc[train])
    chain = model.estimator_
    assert isinstance(chain, RegressorChain)  # (the registry's compression and model descriptions unwrap it as one)
    assert len(chain.estimators_) == ds.task.n_targets
    Xt = np.asarray(model.preprocessor_.transform(ds.X.iloc[test]), dtype=np.float64)
    first = np.asarray(chain.estimators_[0].predict(Xt))
    assert np.abs(first).max() > 1e20  # the configuration still diverges: the bounds are what keep it finite
    linked = chain.predict(Xt)
    assert np.isfinite(linked).all()
    lo, hi = chain.link_bounds_[:, 0], chain.link_bounds_[:, 1]
    assert np.all(linked >= lo[np.argsort(chain.order_)]) and np.all(linked <= hi[np.argsort(chain.order_)])
    pred = model.predict_task(ds.X.iloc[test])
    check_prediction(pred, ds, test, ds.y.iloc[train])
    for j, col in enumerate(ds.task.targets):
        y = ds.y[col].iloc[train].dropna()
        pad = PREDICTION_MARGIN * float(y.max() - y.min())
        assert float(y.min()) - pad - 1e-9 <= pred.values[j].min() and pred.values[j].max() <= float(y.max()) + pad + 1e-9
    # links whose predictions stay in their targets' range (k-NN averages training targets) are left alone: the
    # chain predicts exactly as scikit-learn's RegressorChain of the same fitted links
    values = space.validate({"model": "knn", "mt_strategy": "chain"}, fill_defaults=True)
    model = space.build(values, ds.task, ds.categorical).fit(ds.X.iloc[train], ds.y.iloc[train])
    Xt = np.asarray(model.preprocessor_.transform(ds.X.iloc[test]), dtype=np.float64)
    plain = RegressorChain.__new__(RegressorChain)
    plain.__dict__.update(model.estimator_.__dict__)
    np.testing.assert_array_equal(model.estimator_.predict(Xt), plain.predict(Xt))

