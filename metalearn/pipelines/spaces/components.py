"""Building blocks of the search spaces: hyperparameter definitions (ConfigSpace) and the builders that
turn a configuration's values into scikit-learn estimators.

Hyperparameter names are ``<component>`` for choices (``model``, ``scaling``, ``encoding``...) and
``<component>:<name>`` for the hyperparameters of one choice (``rf:n_estimators``). Ranges follow
auto-sklearn's, narrowed where a range edge makes a fit impractically slow; counts that are naturally
log-scaled (trees, neighbours, layer widths, batch sizes, leaves) are log-scaled *Floats* rounded when
the estimator is built (:func:`Count`; :func:`effective_values` rounds them, so two configurations that
build the same estimator have the same effective values).

The gradient-boosting libraries (``lgbm``, ``xgb``, ``catboost``, see
:mod:`metalearn.pipelines.models.boosting`) take FLAML's ranges (``flaml/automl/model.py``:
``LGBMEstimator``, ``XGBoostSklearnEstimator`` / ``XGBoostLimitDepthEstimator``, ``CatBoostEstimator``)
with the number of rounds capped at ``MAX_BOOSTING_ROUNDS`` (early stopping on a validation split
decides the rest) and CatBoost's depth and L2 regularisation from TabRepo's CatBoost space. They
handle categorical features natively: their preprocessing gives them integer category codes whatever
``encoding`` says (``encoding`` and ``encoding:min_frequency`` have no effect for them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ConfigSpace import (
    Categorical,
    ConfigurationSpace,
    EqualsCondition,
    Float,
    GreaterThanCondition,
    Integer,
)
from ConfigSpace.conditions import Condition
from ConfigSpace.hyperparameters import (
    CategoricalHyperparameter,
    OrdinalHyperparameter,
    UniformFloatHyperparameter,
)
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import ElasticNet, LogisticRegression, Ridge
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC, SVR

from metalearn.pipelines.models.adaptive import DEFAULT_BUDGET, FINAL_FOREST_TREES, MAX_EPOCHS, Adaptive
from metalearn.pipelines.models.boosting import BoostedTreesClassifier, BoostedTreesRegressor
from metalearn.pipelines.models.preprocessing import (
    ENCODINGS,
    MAX_ONEHOT_CATEGORIES,
    NATIVE_ENCODING,
    NUMERIC_IMPUTATIONS,
    SCALINGS,
    TabularPreprocessor,
    TargetSelectPercentile,
    VariancePCA,
)
from metalearn.pipelines.models.shared_mlp import ACTIVATIONS, SharedTrunkMLP

#: Model families, in the order of the ``model`` choice.
FAMILIES = ("linear", "svm", "knn", "rf", "et", "hgb", "mlp", "lgbm", "xgb", "catboost")
#: Gradient-boosting library families: family -> library (see metalearn.pipelines.models.boosting).
BOOSTING_LIBRARIES = {"lgbm": "lightgbm", "xgb": "xgboost", "catboost": "catboost"}


def boosting_libraries(values: Mapping[str, Any]) -> tuple[str, ...]:
    """The boosting library (``lightgbm``, ``xgboost``, ``catboost``) of a configuration's ``model``, if any."""
    library = BOOSTING_LIBRARIES.get(str(values.get("model")))
    return (library,) if library else ()


#: Families that handle categorical features themselves (given integer codes, never one-hot).
NATIVE_CATEGORICAL = tuple(BOOSTING_LIBRARIES)
#: Families whose estimator fits several binary labels at once.
NATIVE_MULTILABEL = ("knn", "rf", "et", "mlp", "xgb", "catboost")
#: Families whose estimator fits several regression targets at once.
NATIVE_MULTITARGET = ("linear", "knn", "rf", "et", "mlp", "xgb", "catboost")
FEATURE_PREPROCESSORS = ("none", "pca", "select_percentile")
DEFAULT_FAMILY = "rf"

#: Kernel SVMs train on at most this many rows (stratified subsample): libsvm is quadratic in rows.
SVM_MAX_ROWS = 2000
#: The scaling a poly-kernel SVM's features get when the configuration leaves them unscaled (``scaling: none``).
#: A poly kernel grows as ``(gamma * x.x')^degree`` and libsvm caches its values as float32: on osales (a feature
#: up to 1.7e7, ||x||^2 up to 2.9e14) a degree-4 kernel reaches ~4e53, beyond float32's 3.4e38, and every such SVR
#: failed ("The dual coefficients or intercepts are not finite"); at degree 3 it fit but diverged (predictions of
#: 9e41 for a standardised target). Standardised features keep the kernel's values small (each within
#: ``sqrt(SVM_MAX_ROWS)`` standard deviations).
POLY_KERNEL_SCALING = "standard"
SVM_MAX_ITER = 200_000
LINEAR_MAX_ITER = 300
SAGA_MAX_ITER = 100
MLP_MAX_LAYERS = 3
#: Upper end of the boosting libraries' rounds (FLAML's is 32768 for LightGBM/XGBoost and 8192 for
#: CatBoost, with a time budget; here early stopping and the fit budget cut it further).
MAX_BOOSTING_ROUNDS = 4096


#: The rounds hyperparameter of each boosted family (the learning rate is ``<family>:learning_rate``).
BOOSTING_ROUNDS = {"lgbm": "n_estimators", "xgb": "n_estimators", "catboost": "n_estimators", "hgb": "max_iter"}
#: The least learning rate * rounds of a boosted configuration that a search proposes by itself. With
#: shrinkage eta, n rounds of squared-loss boosting remove at most 1 - (1 - eta)^n ~ 1 - exp(-eta * n) of
#: the residual: eta * n < 3 leaves more than 5 % of it, whatever the data (the ranges allow 0.004: 4
#: rounds at 1/1024). In the shipped KB 0.6 % of the 3,645 runs of such configurations are among the 3
#: best of their dataset, against 8.6 % of the 6,247 other boosted runs.
MIN_BOOSTING_STEP = 3.0


def underfit_reason(values: Mapping[str, Any]) -> str | None:
    """Why a configuration cannot fit its data (a boosted model whose rounds * learning rate is below
    :data:`MIN_BOOSTING_STEP`), or None. Stored and recommended configurations are used whatever this says;
    a search skips the proposals it names."""
    family = values.get("model")
    rounds = BOOSTING_ROUNDS.get(str(family))
    if rounds is None:
        return None
    lr, n = values.get(f"{family}:learning_rate"), values.get(f"{family}:{rounds}")
    if lr is None or n is None:
        return None
    step = float(lr) * float(n)
    if step >= MIN_BOOSTING_STEP:
        return None
    return (f"{family}: learning rate {float(lr):.3g} * {float(n):.0f} rounds = {step:.2g} < "
            f"{MIN_BOOSTING_STEP:g}, too few steps to fit")


def forest_growth_factor(values: Mapping[str, Any]) -> float:
    """How many times its fit's time a *final* fit of ``values`` takes when its forest grows (see
    :func:`~metalearn.pipelines.models.adaptive.final_fit`): ``300 / n`` for a random / extra-trees forest of
    ``n`` < :data:`~metalearn.pipelines.models.adaptive.FINAL_FOREST_TREES` trees, else 1."""
    family = str(values.get("model"))
    if family not in ("rf", "et"):
        return 1.0
    n = float(values.get(f"{family}:n_estimators") or FINAL_FOREST_TREES)
    return max(1.0, FINAL_FOREST_TREES / max(n, 1.0))


#: the ``meta`` key of a :func:`Count` hyperparameter
ROUNDED = "rounded"


def Count(name: str, bounds: tuple[float, float], default: float) -> UniformFloatHyperparameter:
    """A count searched on a log scale (a log-scaled Float, as auto-sklearn's), rounded to an integer (at
    least 1) when the estimator is built; ``meta`` marks it for :func:`effective_values`."""
    return Float(name, bounds, log=True, default=default, meta={ROUNDED: True})


def effective_values(cs: ConfigurationSpace, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with every :func:`Count` rounded as the builders round it (what the estimator sees):
    SMAC's proposals often differ from an evaluated configuration only below a count's integer part
    (``lgbm:num_leaves`` 31.0 and 31.18 build the same model)."""
    out = dict(values)
    for name, value in values.items():
        if name in cs and (cs[name].meta or {}).get(ROUNDED) and isinstance(value, int | float):
            out[name] = float(_r(value))
    return out


def _cond(child: Any, parent: Any, value: Any) -> Condition:
    return EqualsCondition(child, parent, value)


# ---------------------------------------------------------------------------------------------------
# hyperparameters
# ---------------------------------------------------------------------------------------------------
def add_preprocessing(cs: ConfigurationSpace) -> None:
    """Imputation, categorical encoding, scaling and the optional feature preprocessor."""
    encoding = Categorical("encoding", list(ENCODINGS), default="onehot")
    min_freq = Float("encoding:min_frequency", (1e-4, 0.2), log=True, default=0.01)
    pre = Categorical("preprocessing", list(FEATURE_PREPROCESSORS), default="none")
    keep = Float("pca:keep_variance", (0.5, 0.9999), default=0.9999)
    pct = Float("select_percentile:percentile", (1.0, 99.0), default=50.0)
    cs.add(
        [
            Categorical("imputation:numeric", list(NUMERIC_IMPUTATIONS), default="mean"),
            encoding,
            min_freq,
            Categorical("scaling", list(SCALINGS), default="standard"),
            pre,
            keep,
            pct,
        ]
    )
    cs.add(
        [_cond(min_freq, encoding, "onehot"), _cond(keep, pre, "pca"), _cond(pct, pre, "select_percentile")]
    )


def add_mlp_architecture(
    cs: ConfigurationSpace, prefix: str, parent: Any, value: Any, default_layers: int
) -> None:
    """An MLP architecture + optimiser search under ``prefix`` (``mlp`` or ``shared``), active when
    ``parent == value``: depth 1-3, a log-scaled width per layer, activation, L2 penalty, initial
    learning rate and batch size."""
    layers = Integer(f"{prefix}:n_layers", (1, MLP_MAX_LAYERS), default=default_layers)
    widths = [Count(f"{prefix}:width_{i}", (16.0, 256.0), default=64.0) for i in range(1, 4)]
    others = [
        Categorical(f"{prefix}:activation", list(ACTIVATIONS), default="relu"),
        Float(f"{prefix}:alpha", (1e-7, 1e-1), log=True, default=1e-4),
        Float(f"{prefix}:learning_rate_init", (1e-4, 1e-1), log=True, default=1e-3),
        Count(f"{prefix}:batch_size", (16.0, 512.0), default=128.0 if prefix == "mlp" else 64.0),
    ]
    cs.add([layers, *widths, *others])
    cs.add([_cond(h, parent, value) for h in [layers, widths[0], *others]])
    cs.add([GreaterThanCondition(widths[1], layers, 1), GreaterThanCondition(widths[2], layers, 2)])


def add_model_families(
    cs: ConfigurationSpace,
    classification: bool,
    regression: bool,
    parent: Any = None,
    parent_value: Any = None,
) -> CategoricalHyperparameter | OrdinalHyperparameter:
    """The ``model`` choice and every family's hyperparameters (classification-only and/or
    regression-only ones as asked). ``model`` is active when ``parent == parent_value`` if given."""
    model = Categorical("model", list(FAMILIES), default=DEFAULT_FAMILY)
    cs.add(model)
    if parent is not None:
        cs.add(_cond(model, parent, parent_value))

    def family(name: str, hps: Sequence[Any]) -> None:
        cs.add(list(hps))
        cs.add([_cond(h, model, name) for h in hps])

    # linear: logistic regression (C) / ridge or elastic net (alpha)
    penalty = Categorical("linear:penalty", ["l2", "elasticnet"], default="l2")
    l1_ratio = Float("linear:l1_ratio", (0.05, 1.0), default=0.5)
    lin: list[Any] = [penalty]
    if classification:
        lin.append(Float("linear:C", (0.03125, 32768.0), log=True, default=1.0))
    if regression:
        lin.append(Float("linear:alpha", (1e-5, 10.0), log=True, default=1.0))
    family("linear", lin)
    cs.add(l1_ratio)
    cs.add(_cond(l1_ratio, penalty, "elasticnet"))

    # svm: libsvm on a capped number of rows
    kernel = Categorical("svm:kernel", ["rbf", "poly"], default="rbf")
    svm: list[Any] = [
        Float("svm:C", (0.03125, 32768.0), log=True, default=1.0),
        kernel,
        Float("svm:gamma", (3.0517578125e-05, 8.0), log=True, default=0.1),
    ]
    if regression:
        svm.append(Float("svm:epsilon", (1e-3, 1.0), log=True, default=0.1))
    family("svm", svm)
    degree = Integer("svm:degree", (2, 4), default=3)
    coef0 = Float("svm:coef0", (-1.0, 1.0), default=0.0)
    cs.add([degree, coef0])
    cs.add([_cond(degree, kernel, "poly"), _cond(coef0, kernel, "poly")])

    family(
        "knn",
        [
            Count("knn:n_neighbors", (1.0, 100.0), default=5.0),
            Categorical("knn:weights", ["uniform", "distance"], default="uniform"),
        ],
    )

    exp_default = 0.5 if classification else 1.0
    for name, bootstrap_default in (("rf", "true"), ("et", "false")):
        hps: list[Any] = [
            Count(f"{name}:n_estimators", (16.0, 300.0), default=100.0),
            Float(f"{name}:max_features_exponent", (0.0, 1.0), default=exp_default),
            Integer(f"{name}:min_samples_split", (2, 20), default=2),
            Integer(f"{name}:min_samples_leaf", (1, 20), default=1),
            Categorical(f"{name}:bootstrap", ["true", "false"], default=bootstrap_default),
        ]
        if classification:
            hps.append(Categorical(f"{name}:criterion", ["gini", "entropy"], default="gini"))
        family(name, hps)

    early = Categorical("hgb:early_stop", ["off", "valid"], default="off")
    family(
        "hgb",
        [
            Float("hgb:learning_rate", (0.01, 1.0), log=True, default=0.1),
            Count("hgb:max_iter", (32.0, 512.0), default=128.0),
            Count("hgb:max_leaf_nodes", (3.0, 255.0), default=31.0),
            Count("hgb:min_samples_leaf", (1.0, 200.0), default=20.0),
            Float("hgb:l2_regularization", (1e-10, 1.0), log=True, default=1e-10),
            early,
        ],
    )
    no_change = Integer("hgb:n_iter_no_change", (1, 20), default=10)
    val_frac = Float("hgb:validation_fraction", (0.01, 0.4), default=0.1)
    cs.add([no_change, val_frac])
    cs.add([_cond(no_change, early, "valid"), _cond(val_frac, early, "valid")])

    add_mlp_architecture(cs, "mlp", model, "mlp", default_layers=1)
    mlp_es = Categorical("mlp:early_stopping", ["valid", "train"], default="valid")
    cs.add(mlp_es)
    cs.add(_cond(mlp_es, model, "mlp"))
    add_boosting_families(cs, family)
    return model


def add_boosting_families(cs: ConfigurationSpace, family: Any) -> None:
    """LightGBM, XGBoost and CatBoost (``family(name, hps)`` adds hyperparameters active when
    ``model == name``). Ranges: FLAML's; defaults: the libraries' own, but CatBoost's learning rate 0.1 and
    early stopping after 50 rounds without improvement."""
    rounds = (4.0, float(MAX_BOOSTING_ROUNDS))
    reg = (1 / 1024, 1024.0)
    family(
        "lgbm",
        [
            Count("lgbm:n_estimators", rounds, default=100.0),
            Count("lgbm:num_leaves", (4.0, 1024.0), default=31.0),
            Count("lgbm:min_child_samples", (2.0, 129.0), default=20.0),
            Float("lgbm:learning_rate", (1 / 1024, 1.0), log=True, default=0.1),
            Integer("lgbm:log_max_bin", (3, 11), default=8),
            Float("lgbm:colsample_bytree", (0.01, 1.0), default=1.0),
            Float("lgbm:reg_alpha", reg, log=True, default=1 / 1024),
            Float("lgbm:reg_lambda", reg, log=True, default=1.0),
        ],
    )
    # XGBoost: leaf-wise growth bounded by leaves (FLAML's XGBoostSklearnEstimator) or depth-wise
    # growth bounded by depth (XGBoostLimitDepthEstimator)
    grow = Categorical("xgb:grow_policy", ["depthwise", "lossguide"], default="depthwise")
    family(
        "xgb",
        [
            Count("xgb:n_estimators", rounds, default=100.0),
            grow,
            Float("xgb:min_child_weight", (0.001, 128.0), log=True, default=1.0),
            Float("xgb:learning_rate", (1 / 1024, 1.0), log=True, default=0.3),
            Float("xgb:subsample", (0.1, 1.0), default=1.0),
            Float("xgb:colsample_bylevel", (0.01, 1.0), default=1.0),
            Float("xgb:colsample_bytree", (0.01, 1.0), default=1.0),
            Float("xgb:reg_alpha", reg, log=True, default=1 / 1024),
            Float("xgb:reg_lambda", reg, log=True, default=1.0),
        ],
    )
    depth = Integer("xgb:max_depth", (1, 15), default=6)
    leaves = Count("xgb:max_leaves", (4.0, 1024.0), default=31.0)
    cs.add([depth, leaves])
    cs.add([_cond(depth, grow, "depthwise"), _cond(leaves, grow, "lossguide")])
    family(
        "catboost",
        [
            Count("catboost:n_estimators", rounds, default=1000.0),
            Float("catboost:learning_rate", (0.005, 0.2), log=True, default=0.1),
            # FLAML's range; its initial value 10 stopped CatBoost early on small data (see the README)
            Count("catboost:early_stopping_rounds", (10.0, 150.0), default=50.0),
            Integer("catboost:depth", (4, 8), default=6),
            Float("catboost:l2_leaf_reg", (1.0, 5.0), default=3.0),
        ],
    )


# ---------------------------------------------------------------------------------------------------
# builders
# ---------------------------------------------------------------------------------------------------
def _r(x: float) -> int:
    return int(max(1, round(float(x))))


def build_preprocessor(
    values: Mapping[str, Any], categorical: Sequence[bool], target_kinds: Sequence[str], seed: int
) -> Pipeline:
    """Tabular preprocessing + the optional feature preprocessor of a configuration (boosting families encode
    categories natively; a poly-kernel SVM's unscaled features are standardised: :data:`POLY_KERNEL_SCALING`)."""
    encoding = str(values["encoding"])
    if values.get("model") in NATIVE_CATEGORICAL:
        encoding = NATIVE_ENCODING
    scaling = str(values["scaling"])
    if scaling == "none" and values.get("model") == "svm" and values.get("svm:kernel") == "poly":
        scaling = POLY_KERNEL_SCALING
    steps: list[tuple[str, Any]] = [
        (
            "tabular",
            TabularPreprocessor(
                categorical=tuple(bool(c) for c in categorical),
                numeric_imputation=str(values["imputation:numeric"]),
                encoding=encoding,
                min_frequency=float(values.get("encoding:min_frequency", 0.01)),
                max_categories=MAX_ONEHOT_CATEGORIES,
                scaling=scaling,
                random_state=seed,
            ),
        )
    ]
    pre = str(values["preprocessing"])
    if pre == "pca":
        steps.append(
            ("features", VariancePCA(keep_variance=float(values["pca:keep_variance"]), random_state=seed))
        )
    elif pre == "select_percentile":
        steps.append(
            (
                "features",
                TargetSelectPercentile(
                    percentile=float(values["select_percentile:percentile"]),
                    target_kinds=tuple(str(k) for k in target_kinds),
                ),
            )
        )
    return Pipeline(steps)


def _mlp_hidden(values: Mapping[str, Any], prefix: str) -> tuple[int, ...]:
    n = int(values[f"{prefix}:n_layers"])
    return tuple(_r(values[f"{prefix}:width_{i}"]) for i in range(1, n + 1))


def build_classifier(values: Mapping[str, Any], seed: int, budget: float = DEFAULT_BUDGET) -> Adaptive:
    """The classifier of the configuration's ``model`` family, wrapped for fit-time adaptation."""
    fam = str(values["model"])
    v = values
    exponent: float | None = None
    max_rows: int | None = None
    est: Any
    if fam == "linear":
        if v["linear:penalty"] == "elasticnet":
            est = LogisticRegression(
                C=float(v["linear:C"]),
                l1_ratio=float(v["linear:l1_ratio"]),
                solver="saga",
                max_iter=SAGA_MAX_ITER,
                tol=1e-3,
                random_state=seed,
            )
        else:
            est = LogisticRegression(C=float(v["linear:C"]), solver="lbfgs", max_iter=LINEAR_MAX_ITER)
    elif fam == "svm":
        # Platt scaling on 5-fold out-of-fold decision values (what SVC(probability=True) did)
        est = CalibratedClassifierCV(
            SVC(random_state=seed, max_iter=SVM_MAX_ITER, cache_size=500, **_svm_kwargs(v)),
            method="sigmoid",
            cv=5,
            ensemble=False,
        )
        max_rows = SVM_MAX_ROWS
    elif fam == "knn":
        est = KNeighborsClassifier(**_knn_kwargs(v))
    elif fam in ("rf", "et"):
        cls = RandomForestClassifier if fam == "rf" else ExtraTreesClassifier
        est = cls(criterion=str(v[f"{fam}:criterion"]), random_state=seed, n_jobs=1, **_forest_kwargs(v, fam))
        exponent = float(v[f"{fam}:max_features_exponent"])
    elif fam == "hgb":
        est = HistGradientBoostingClassifier(random_state=seed, **_hgb_kwargs(v))
    elif fam == "mlp":
        est = MLPClassifier(random_state=seed, **_mlp_kwargs(v))
    elif fam in BOOSTING_LIBRARIES:
        est = BoostedTreesClassifier(random_state=seed, **_boosting_kwargs(v, fam))
    else:
        raise ValueError(f"unknown model family {fam!r}; use one of {list(FAMILIES)}")
    return Adaptive(est, budget=budget, max_rows=max_rows, max_features_exponent=exponent, random_state=seed)


def build_regressor(values: Mapping[str, Any], seed: int, budget: float = DEFAULT_BUDGET) -> Adaptive:
    """The regressor of the configuration's ``model`` family, wrapped for fit-time adaptation."""
    fam = str(values["model"])
    v = values
    exponent: float | None = None
    max_rows: int | None = None
    est: Any
    if fam == "linear":
        if v["linear:penalty"] == "elasticnet":
            est = ElasticNet(
                alpha=float(v["linear:alpha"]),
                l1_ratio=float(v["linear:l1_ratio"]),
                max_iter=1000,
                random_state=seed,
            )
        else:
            est = Ridge(alpha=float(v["linear:alpha"]))
    elif fam == "svm":
        est = SVR(epsilon=float(v["svm:epsilon"]), max_iter=SVM_MAX_ITER, cache_size=500, **_svm_kwargs(v))
        max_rows = SVM_MAX_ROWS
    elif fam == "knn":
        est = KNeighborsRegressor(**_knn_kwargs(v))
    elif fam in ("rf", "et"):
        cls = RandomForestRegressor if fam == "rf" else ExtraTreesRegressor
        est = cls(criterion="squared_error", random_state=seed, n_jobs=1, **_forest_kwargs(v, fam))
        exponent = float(v[f"{fam}:max_features_exponent"])
    elif fam == "hgb":
        est = HistGradientBoostingRegressor(random_state=seed, **_hgb_kwargs(v))
    elif fam == "mlp":
        est = MLPRegressor(random_state=seed, **_mlp_kwargs(v))
    elif fam in BOOSTING_LIBRARIES:
        est = BoostedTreesRegressor(random_state=seed, **_boosting_kwargs(v, fam))
    else:
        raise ValueError(f"unknown model family {fam!r}; use one of {list(FAMILIES)}")
    return Adaptive(est, budget=budget, max_rows=max_rows, max_features_exponent=exponent, random_state=seed)


def _svm_kwargs(v: Mapping[str, Any]) -> dict[str, Any]:
    kw: dict[str, Any] = {
        "C": float(v["svm:C"]),
        "kernel": str(v["svm:kernel"]),
        "gamma": float(v["svm:gamma"]),
    }
    if kw["kernel"] == "poly":
        kw["degree"] = int(v["svm:degree"])
        kw["coef0"] = float(v["svm:coef0"])
    return kw


def _knn_kwargs(v: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "n_neighbors": _r(v["knn:n_neighbors"]),
        "weights": str(v["knn:weights"]),
    }


def _forest_kwargs(v: Mapping[str, Any], fam: str) -> dict[str, Any]:
    return {
        "n_estimators": _r(v[f"{fam}:n_estimators"]),
        "min_samples_split": int(v[f"{fam}:min_samples_split"]),
        "min_samples_leaf": int(v[f"{fam}:min_samples_leaf"]),
        "bootstrap": v[f"{fam}:bootstrap"] == "true",
    }


def _hgb_kwargs(v: Mapping[str, Any]) -> dict[str, Any]:
    early = v["hgb:early_stop"] == "valid"
    kw: dict[str, Any] = {
        "learning_rate": float(v["hgb:learning_rate"]),
        "max_iter": _r(v["hgb:max_iter"]),
        "max_leaf_nodes": max(2, _r(v["hgb:max_leaf_nodes"])),
        "min_samples_leaf": _r(v["hgb:min_samples_leaf"]),
        "l2_regularization": float(v["hgb:l2_regularization"]),
        "early_stopping": early,
    }
    if early:
        kw["n_iter_no_change"] = int(v["hgb:n_iter_no_change"])
        kw["validation_fraction"] = float(v["hgb:validation_fraction"])
    return kw


def _boosting_kwargs(v: Mapping[str, Any], fam: str) -> dict[str, Any]:
    """``library``, ``n_estimators``, ``learning_rate``, ``params`` (the library's own keyword
    arguments) and, for CatBoost, ``early_stopping_rounds`` of a boosting family's configuration."""
    kw: dict[str, Any] = {
        "library": BOOSTING_LIBRARIES[fam],
        "n_estimators": _r(v[f"{fam}:n_estimators"]),
        "learning_rate": float(v[f"{fam}:learning_rate"]),
    }
    params: dict[str, Any]
    if fam == "lgbm":
        params = {
            "num_leaves": max(2, _r(v["lgbm:num_leaves"])),
            "min_child_samples": _r(v["lgbm:min_child_samples"]),
            "max_bin": (1 << int(v["lgbm:log_max_bin"])) - 1,
            "colsample_bytree": float(v["lgbm:colsample_bytree"]),
            "reg_alpha": float(v["lgbm:reg_alpha"]),
            "reg_lambda": float(v["lgbm:reg_lambda"]),
        }
    elif fam == "xgb":
        params = {
            "grow_policy": str(v["xgb:grow_policy"]),
            "min_child_weight": float(v["xgb:min_child_weight"]),
            "subsample": float(v["xgb:subsample"]),
            "colsample_bylevel": float(v["xgb:colsample_bylevel"]),
            "colsample_bytree": float(v["xgb:colsample_bytree"]),
            "reg_alpha": float(v["xgb:reg_alpha"]),
            "reg_lambda": float(v["xgb:reg_lambda"]),
        }
        if params["grow_policy"] == "depthwise":
            params["max_depth"] = int(v["xgb:max_depth"])
        else:
            params["max_depth"] = 0
            params["max_leaves"] = max(2, _r(v["xgb:max_leaves"]))
    else:
        params = {"depth": int(v["catboost:depth"]), "l2_leaf_reg": float(v["catboost:l2_leaf_reg"])}
        kw["early_stopping_rounds"] = _r(v["catboost:early_stopping_rounds"])
    kw["params"] = params
    return kw


def _mlp_kwargs(v: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "hidden_layer_sizes": _mlp_hidden(v, "mlp"),
        "activation": str(v["mlp:activation"]),
        "alpha": float(v["mlp:alpha"]),
        "learning_rate_init": float(v["mlp:learning_rate_init"]),
        "batch_size": _r(v["mlp:batch_size"]),
        "early_stopping": v["mlp:early_stopping"] == "valid",
        "validation_fraction": 0.1,
        "n_iter_no_change": 10,
        "max_iter": MAX_EPOCHS,
        "solver": "adam",
    }


def build_shared_mlp(
    values: Mapping[str, Any], target_kinds: Sequence[str], seed: int, budget: float = DEFAULT_BUDGET
) -> SharedTrunkMLP:
    """The shared-trunk multi-task network of a configuration's ``shared:*`` hyperparameters."""
    return SharedTrunkMLP(
        target_kinds=tuple(str(k) for k in target_kinds),
        hidden_layer_sizes=_mlp_hidden(values, "shared"),
        activation=str(values["shared:activation"]),
        alpha=float(values["shared:alpha"]),
        learning_rate_init=float(values["shared:learning_rate_init"]),
        batch_size=_r(values["shared:batch_size"]),
        max_epochs=MAX_EPOCHS,
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=10,
        budget=budget,
        random_state=seed,
    )
