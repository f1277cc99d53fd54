"""Importing past run evaluations from OpenML (flows, setups, evaluations) into the knowledge base.

OpenML holds millions of evaluated runs: for a task, ``evaluation/list`` gives each run's score under
one measure with its *setup* (the flow and its parameter values), and ``setup/list`` gives those
parameter values. :func:`import_openml_runs` pulls them for a list of tasks and stores them as runs:

* the task's dataset is the KB dataset with that OpenML id (added, with its meta-features, through
  openml-python when the KB does not have it yet);
* a setup of a scikit-learn flow whose every component and parameter has a counterpart in the
  product's search space becomes a configuration of that space (:func:`translate_setup`; values are
  validated by the space, so out-of-range values are rejected rather than clipped) — these runs feed
  the recommenders like the KB's own;
* any other setup (another library, a component or a non-default parameter the space does not have)
  is kept verbatim as a configuration of the ``openml`` space (flow name + parameters), which no
  recommender uses, unless ``keep_foreign=False``;
* OpenML measures map to the product's metrics (``area_under_roc_curve`` -> ``roc_auc`` for binary
  tasks, ``predictive_accuracy`` -> ``accuracy``, ``root_mean_squared_error`` -> ``rmse``,
  ``mean_absolute_error`` -> ``mae``); the run's protocol is ``openml-task<T>-run<R>`` (the task's own
  estimation procedure), its source ``import:openml``.

Re-importing is a no-op (run ids are content hashes of dataset, configuration and protocol). The
recommenders compare costs of one metric per dataset (its most frequent one), so OpenML accuracies
never mix with the KB's own log losses on a multiclass dataset that has both.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metalearn.data.dataset import Dataset
from metalearn.data.errors import InputError, MetaLearnError, NotFoundError
from metalearn.data.metrics import to_cost
from metalearn.data.numbers import finite_or_none
from metalearn.data.task import TaskKind
from metalearn.kb.base import KnowledgeBase
from metalearn.kb.records import ConfigurationRecord, DatasetRecord, RunRecord, dataset_record, run_id_for
from metalearn.pipelines.spaces import get_space

log = logging.getLogger(__name__)

#: The space that holds OpenML setups with no counterpart in the product's search spaces.
FOREIGN_SPACE = "openml"
FOREIGN_SPACE_VERSION = "1"
SOURCE = "import:openml"

#: OpenML evaluation measure -> (metric of the product, task kinds where the two are the same number).
MEASURES: dict[str, tuple[str, frozenset[TaskKind]]] = {
    "area_under_roc_curve": ("roc_auc", frozenset({TaskKind.BINARY})),
    "predictive_accuracy": ("accuracy", frozenset({TaskKind.BINARY, TaskKind.MULTICLASS})),
    "root_mean_squared_error": ("rmse", frozenset({TaskKind.REGRESSION})),
    "mean_absolute_error": ("mae", frozenset({TaskKind.REGRESSION})),
}

#: The measure imported by default per task kind: the AutoML Benchmark's metric where OpenML has it
#: (OpenML does not compute log loss: multiclass tasks import accuracy).
DEFAULT_MEASURE: dict[TaskKind, str] = {
    TaskKind.BINARY: "area_under_roc_curve",
    TaskKind.MULTICLASS: "predictive_accuracy",
    TaskKind.REGRESSION: "root_mean_squared_error",
}


# ------------------------------------------------------------------------------------------ records
@dataclass(frozen=True)
class OpenMLEvaluation:
    """One run's score under one measure, as ``evaluation/list`` returns it."""

    run_id: int
    task_id: int
    setup_id: int
    flow_id: int
    flow_name: str
    data_id: int
    function: str
    value: float


@dataclass(frozen=True)
class OpenMLParameter:
    """One parameter of a setup: the component (flow) it belongs to, its name and value (parsed JSON)."""

    component: str
    name: str
    value: Any


@dataclass(frozen=True)
class Translation:
    """A setup in the product's search space (``values``), or why it has no counterpart (``reason``)."""

    values: dict[str, Any] | None
    reason: str = ""


@dataclass
class ImportReport:
    """What an import did, per task and in total."""

    tasks: dict[int, str] = field(default_factory=dict)  # task id -> dataset id, or why it was skipped
    evaluations: int = 0
    translated: int = 0
    foreign: int = 0
    skipped: int = 0
    runs_added: int = 0
    imported_tasks: int = 0  # tasks whose runs are in the KB now (added now or by an earlier import)
    reasons: dict[str, int] = field(default_factory=dict)  # why setups were not translated -> count

    def to_dict(self) -> dict[str, Any]:
        return {
            "tasks": {str(k): v for k, v in self.tasks.items()},
            "evaluations": self.evaluations,
            "translated": self.translated,
            "foreign": self.foreign,
            "skipped": self.skipped,
            "runs_added": self.runs_added,
            "imported_tasks": self.imported_tasks,
            "reasons": dict(sorted(self.reasons.items(), key=lambda kv: -kv[1])),
        }


# ------------------------------------------------------------------------------------ fetching
def _openml_call(what: str, fn: Callable[[], Any], cache_dir: str | Path | None, server: str | None) -> Any:
    from metalearn.data.openml_io import configure_openml, translate_openml_error

    cfg = configure_openml(cache_dir, server)
    try:
        return fn()
    except MetaLearnError:
        raise
    except Exception as err:
        raise translate_openml_error(err, what, cfg) from None


def fetch_evaluations(
    task_id: int,
    measure: str,
    limit: int = 1000,
    cache_dir: str | Path | None = None,
    server: str | None = None,
) -> list[OpenMLEvaluation]:
    """Up to ``limit`` evaluations of task ``task_id`` under ``measure``, best first (OpenML sorts by
    value: descending for scores, ascending for errors such as RMSE)."""
    import openml

    from metalearn.data.metrics import get_metric

    known = MEASURES.get(measure)
    order = "desc" if known is None or get_metric(known[0]).greater_is_better else "asc"

    def call() -> Any:
        return openml.evaluations.list_evaluations(
            function=measure, tasks=[int(task_id)], size=int(limit), sort_order=order, output_format="object"
        )

    try:
        raw = _openml_call(f"evaluation list of task {task_id}", call, cache_dir, server)
    except NotFoundError:  # OpenML answers "no results" with an error: a task without runs
        return []
    out = []
    for e in raw.values():
        value = finite_or_none(e.value)
        if value is None:
            continue
        out.append(
            OpenMLEvaluation(
                run_id=int(e.run_id),
                task_id=int(e.task_id),
                setup_id=int(e.setup_id),
                flow_id=int(e.flow_id),
                flow_name=str(e.flow_name),
                data_id=int(e.data_id),
                function=str(e.function),
                value=value,
            )
        )
    return out


def fetch_setups(
    setup_ids: Iterable[int],
    cache_dir: str | Path | None = None,
    server: str | None = None,
    chunk: int = 100,
) -> dict[int, tuple[OpenMLParameter, ...]]:
    """The parameters of each setup (``setup/list/setup/<ids>``, ``chunk`` ids per request)."""
    import openml

    ids = sorted({int(s) for s in setup_ids})
    out: dict[int, tuple[OpenMLParameter, ...]] = {}
    for start in range(0, len(ids), chunk):
        part = ids[start : start + chunk]

        def call(part: list[int] = part) -> Any:
            return openml.setups.list_setups(setup=part, output_format="object", size=len(part))

        setups = _openml_call(f"setup list {part[0]}..{part[-1]}", call, cache_dir, server)
        for sid, setup in setups.items():
            params = setup.parameters or {}
            out[int(sid)] = tuple(
                OpenMLParameter(_component(p.flow_name), str(p.parameter_name), _parse_value(p.value))
                for p in params.values()
            )
    return out


def _parse_value(raw: Any) -> Any:
    """OpenML stores sklearn parameter values as JSON text (``"gini"``, ``100``, ``null``, ``true``)."""
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _component(flow_name: str) -> str:
    """The class name of a component flow: ``sklearn.ensemble._forest.RandomForestClassifier(1)`` -> the last part."""
    head = str(flow_name).split("(", 1)[0]
    return head.rsplit(".", 1)[-1]


def flow_components(flow_name: str) -> list[str]:
    """Class names of the scikit-learn components a flow name mentions (pipelines list their steps
    in parentheses: ``sklearn.pipeline.Pipeline(imputer=sklearn.impute.SimpleImputer,...)``)."""
    return [m.rsplit(".", 1)[-1] for m in re.findall(r"sklearn(?:\.[A-Za-z0-9_]+)+", str(flow_name))]


# ----------------------------------------------------------------------------------- translation
class _Untranslatable(Exception):
    pass


def _need(cond: bool, why: str) -> None:
    if not cond:
        raise _Untranslatable(why)


#: Parameters that never change what is learned (ignored), per component or for every component.
_IGNORED = {
    "n_jobs", "random_state", "verbose", "warm_start", "copy", "copy_X", "memory", "steps", "transformers",
    "remainder", "sparse_threshold", "transformer_weights", "verbose_feature_names_out", "oob_score",
    "cache_size", "max_iter", "tol", "shrinking", "probability", "decision_function_shape", "break_ties",
    "n_iter_no_change", "validation_fraction", "add_indicator", "missing_values", "sparse", "sparse_output",
    "dtype", "handle_unknown", "categories", "fill_value", "keep_empty_features", "with_mean", "with_std",
    "algorithm", "leaf_size", "metric_params", "min_impurity_split", "presort", "fit_intercept",
    "intercept_scaling", "multi_class", "n_quantiles", "subsample", "ignore_implicit_zeros", "iterated_power",
    "svd_solver", "whiten", "power_t", "shuffle", "momentum", "nesterovs_momentum", "beta_1", "beta_2",
    "max_fun", "quantile_range", "unit_variance", "drop",
    "encoded_missing_value", "unknown_value", "max_categories", "feature_name_combiner", "monotonic_cst",
    "interaction_cst", "categorical_features", "l1_ratios", "score_func",
    "force_int_remainder_cols", "scoring", "max_bins", "loss",
}  # fmt: skip

#: Parameters the space fixes at scikit-learn's default: a setup with another value has no counterpart.
_MUST_BE_DEFAULT: dict[str, tuple[Any, ...]] = {
    "max_depth": (None,),
    "max_leaf_nodes": (None,),
    "min_weight_fraction_leaf": (0.0, 0),
    "min_impurity_decrease": (0.0, 0),
    "class_weight": (None,),
    "ccp_alpha": (0.0, 0),
    "max_samples": (None,),
    "p": (2,),
    "metric": ("minkowski", "euclidean"),
    "dual": (False,),
}

_FORESTS = {
    "RandomForestClassifier": ("rf", True),
    "RandomForestRegressor": ("rf", False),
    "ExtraTreesClassifier": ("et", True),
    "ExtraTreesRegressor": ("et", False),
}
_ESTIMATORS = {
    *_FORESTS,
    "HistGradientBoostingClassifier", "HistGradientBoostingRegressor", "SVC", "SVR",
    "KNeighborsClassifier", "KNeighborsRegressor", "LogisticRegression", "Ridge", "ElasticNet",
    "MLPClassifier", "MLPRegressor",
}  # fmt: skip
_CLASSIFIERS = {c for c in _ESTIMATORS if c.endswith("Classifier") or c in ("SVC", "LogisticRegression")}
_CONTAINERS = {"Pipeline", "ColumnTransformer", "make_pipeline"}
_SCALERS = {"StandardScaler": "standard", "RobustScaler": "robust", "QuantileTransformer": "quantile"}
_ENCODERS = {"OneHotEncoder": "onehot", "OrdinalEncoder": "ordinal"}


def translate_setup(
    flow_name: str, parameters: Sequence[OpenMLParameter], kind: TaskKind | str
) -> Translation:
    """The configuration of the product's search space for ``kind`` that does what this OpenML setup
    did, or why there is none. Components of ``flow_name`` (scikit-learn class names) must all be known:
    one estimator (forests, hist gradient boosting, SVM, k-NN, linear, MLP), and optionally an imputer
    (mean/median), a scaler (standard/robust/quantile), an encoder (one-hot/ordinal), PCA with a
    variance fraction, SelectPercentile, or VarianceThreshold(0). A parameter the space does not
    search must be at scikit-learn's default; values outside the space's ranges are rejected by the
    space's validation (never clipped)."""
    kind = TaskKind(kind)
    try:
        values = _flow_values(flow_name, parameters, kind)
        return Translation(get_space(kind).validate(values, fill_defaults=True))
    except _Untranslatable as why:
        return Translation(None, str(why))
    except InputError as err:  # the space's own validation: a value outside its range
        return Translation(None, f"outside the search space: {str(err).split(';')[0]}")


def _flow_values(flow_name: str, parameters: Sequence[OpenMLParameter], kind: TaskKind) -> dict[str, Any]:
    _need(str(flow_name).startswith("sklearn."), f"not a scikit-learn flow ({_component(flow_name)})")
    _need(kind in (TaskKind.BINARY, TaskKind.MULTICLASS, TaskKind.REGRESSION), f"no OpenML flows for {kind}")
    classification = kind is not TaskKind.REGRESSION
    comps = flow_components(flow_name)
    by_comp: dict[str, dict[str, Any]] = {c: {} for c in comps}
    for p in parameters:
        by_comp.setdefault(p.component, {})[p.name] = p.value
    estimators = [c for c in by_comp if c in _ESTIMATORS]
    _need(len(estimators) == 1, f"{len(estimators)} known estimators in the flow (need exactly one)")
    est = estimators[0]
    _need((est in _CLASSIFIERS) == classification, f"{est} does not fit a {kind} task")
    out: dict[str, Any] = {"scaling": "none", "preprocessing": "none"}
    for comp, params in by_comp.items():
        if comp == est or comp in _CONTAINERS:
            continue
        if comp in ("SimpleImputer", "Imputer"):
            # a flow may impute twice (a numeric and a nominal branch of a ColumnTransformer): the
            # space imputes numeric columns by mean or median and categories by the most frequent
            strategies = [p.value for p in parameters if p.component == comp and p.name == "strategy"] or [
                "mean"
            ]
            numeric = [x for x in strategies if x in ("mean", "median")]
            other = [x for x in strategies if x not in ("mean", "median")]
            encoded = any(c in _ENCODERS for c in by_comp)
            _need(
                len(set(numeric)) <= 1
                and (not other or (encoded and set(other) <= {"most_frequent", "constant"})),
                f"imputation strategies {sorted(set(map(str, strategies)))} (the space: mean or median for "
                "numbers, most frequent for categories)",
            )
            out["imputation:numeric"] = numeric[0] if numeric else "mean"
        elif comp in _SCALERS:
            if comp == "QuantileTransformer":  # the space's quantile scaling maps to a normal distribution
                dist = params.get("output_distribution", "uniform")
                _need(
                    dist == "normal",
                    f"QuantileTransformer output_distribution={dist!r} (the space uses normal)",
                )
            out["scaling"] = _SCALERS[comp]
        elif comp in _ENCODERS:
            out["encoding"] = _ENCODERS[comp]
            if comp == "OneHotEncoder":
                mf = params.get("min_frequency")
                out["encoding:min_frequency"] = 1e-4 if mf is None else mf  # None: keep every category
        elif comp == "PCA":
            n = params.get("n_components")
            _need(
                isinstance(n, float) and 0 < n < 1,
                f"PCA n_components={n!r} (the space keeps a variance fraction)",
            )
            out["preprocessing"], out["pca:keep_variance"] = "pca", n
        elif comp == "SelectPercentile":
            out["preprocessing"] = "select_percentile"
            out["select_percentile:percentile"] = float(params.get("percentile", 10))
        elif comp == "VarianceThreshold":
            _need(
                float(params.get("threshold", 0.0) or 0.0) == 0.0,
                "VarianceThreshold above 0 is not in the space",
            )
        else:
            raise _Untranslatable(f"component {comp} is not in the space")
    out.update(_estimator_values(est, by_comp[est], classification))
    return out


def _check_defaults(params: Mapping[str, Any], handled: set[str], est: str) -> None:
    for name, value in params.items():
        if name in handled or name in _IGNORED:
            continue
        allowed = _MUST_BE_DEFAULT.get(name)
        _need(allowed is not None, f"{est} parameter {name} is not in the space")
        assert allowed is not None
        _need(value in allowed, f"{est} {name}={value!r} (the space fixes {allowed[0]!r})")


def _int_like(x: Any, what: str) -> int:
    _need(
        isinstance(x, int | float) and not isinstance(x, bool) and float(x).is_integer(),
        f"{what}={x!r} is not a count",
    )
    return int(x)


def _estimator_values(est: str, p: Mapping[str, Any], classification: bool) -> dict[str, Any]:
    v: dict[str, Any] = {}
    if est in _FORESTS:
        fam, _ = _FORESTS[est]
        v["model"] = fam
        v[f"{fam}:n_estimators"] = float(_int_like(p.get("n_estimators", 100), "n_estimators"))
        mf = p.get("max_features", "sqrt" if classification else 1.0)
        if mf == "auto":
            mf = "sqrt" if classification else 1.0
        exponent: float | None = None
        if mf == "sqrt":
            exponent = 0.5
        elif mf is None or (isinstance(mf, float) and mf == 1.0):
            exponent = 1.0  # every feature
        elif isinstance(mf, int) and not isinstance(mf, bool) and mf == 1:
            exponent = 0.0  # one feature: n_features ** 0
        _need(exponent is not None, f"max_features={mf!r} (the space has n_features ** e; sqrt and all only)")
        v[f"{fam}:max_features_exponent"] = exponent
        v[f"{fam}:min_samples_split"] = _int_like(p.get("min_samples_split", 2), "min_samples_split")
        v[f"{fam}:min_samples_leaf"] = _int_like(p.get("min_samples_leaf", 1), "min_samples_leaf")
        v[f"{fam}:bootstrap"] = "true" if p.get("bootstrap", fam == "rf") else "false"
        if classification:
            v[f"{fam}:criterion"] = p.get("criterion", "gini")
        else:
            crit = p.get("criterion", "squared_error")
            _need(crit in ("squared_error", "mse"), f"criterion={crit!r} (the space uses squared error)")
        handled = {
            "n_estimators",
            "max_features",
            "min_samples_split",
            "min_samples_leaf",
            "bootstrap",
            "criterion",
        }
    elif est.startswith("HistGradientBoosting"):
        v["model"] = "hgb"
        v["hgb:learning_rate"] = p.get("learning_rate", 0.1)
        v["hgb:max_iter"] = float(_int_like(p.get("max_iter", 100), "max_iter"))
        leaves = p.get("max_leaf_nodes", 31)
        _need(leaves is not None, "max_leaf_nodes=None (the space bounds the leaves)")
        v["hgb:max_leaf_nodes"] = float(leaves)
        v["hgb:min_samples_leaf"] = float(p.get("min_samples_leaf", 20))
        l2 = float(p.get("l2_regularization", 0.0) or 0.0)
        v["hgb:l2_regularization"] = max(l2, 1e-10)  # the space's floor: 1e-10 is no regularisation
        early = p.get("early_stopping", "auto")
        _need(isinstance(early, bool), f"early_stopping={early!r} (depends on the data size)")
        v["hgb:early_stop"] = "valid" if early else "off"
        if early:
            v["hgb:n_iter_no_change"] = _int_like(p.get("n_iter_no_change", 10), "n_iter_no_change")
            v["hgb:validation_fraction"] = p.get("validation_fraction", 0.1)
        handled = {"learning_rate", "max_iter", "max_leaf_nodes", "min_samples_leaf", "l2_regularization",
                   "early_stopping", "n_iter_no_change", "validation_fraction"}  # fmt: skip
        _need(p.get("max_depth") is None, f"max_depth={p.get('max_depth')!r} (the space fixes None)")
        handled.add("max_depth")
    elif est in ("SVC", "SVR"):
        v["model"] = "svm"
        kernel = p.get("kernel", "rbf")
        _need(kernel in ("rbf", "poly"), f"kernel={kernel!r} (the space has rbf and poly)")
        gamma = p.get("gamma", "scale")
        _need(
            isinstance(gamma, int | float) and not isinstance(gamma, bool),
            f"gamma={gamma!r} (depends on the data)",
        )
        v.update({"svm:C": p.get("C", 1.0), "svm:kernel": kernel, "svm:gamma": float(gamma)})
        if kernel == "poly":
            v["svm:degree"] = _int_like(p.get("degree", 3), "degree")
            v["svm:coef0"] = p.get("coef0", 0.0)
        if est == "SVR":
            v["svm:epsilon"] = p.get("epsilon", 0.1)
        handled = {"C", "kernel", "gamma", "degree", "coef0", "epsilon"}
    elif est.startswith("KNeighbors"):
        v["model"] = "knn"
        v["knn:n_neighbors"] = float(_int_like(p.get("n_neighbors", 5), "n_neighbors"))
        v["knn:weights"] = p.get("weights", "uniform")
        handled = {"n_neighbors", "weights"}
    elif est == "LogisticRegression":
        v["model"] = "linear"
        penalty = p.get("penalty", "l2")
        _need(penalty in ("l2", "elasticnet"), f"penalty={penalty!r} (the space has l2 and elasticnet)")
        v.update({"linear:penalty": penalty, "linear:C": p.get("C", 1.0)})
        if penalty == "elasticnet":
            v["linear:l1_ratio"] = p.get("l1_ratio")
        handled = {"penalty", "C", "l1_ratio", "solver"}
    elif est in ("Ridge", "ElasticNet"):
        v["model"] = "linear"
        v["linear:penalty"] = "l2" if est == "Ridge" else "elasticnet"
        v["linear:alpha"] = p.get("alpha", 1.0)
        if est == "ElasticNet":
            v["linear:l1_ratio"] = p.get("l1_ratio", 0.5)
        handled = {"alpha", "l1_ratio", "solver", "positive", "selection", "precompute"}
    else:  # MLPClassifier / MLPRegressor
        v["model"] = "mlp"
        layers = p.get("hidden_layer_sizes", [100])
        layers = [layers] if isinstance(layers, int) else list(layers or [])
        _need(1 <= len(layers) <= 3, f"{len(layers)} hidden layers (the space has 1-3)")
        v["mlp:n_layers"] = len(layers)
        for i, width in enumerate(layers, start=1):
            v[f"mlp:width_{i}"] = float(_int_like(width, "hidden layer width"))
        solver = p.get("solver", "adam")
        _need(solver == "adam", f"solver={solver!r} (the space trains with adam)")
        batch = p.get("batch_size", "auto")
        v["mlp:batch_size"] = 200.0 if batch == "auto" else float(_int_like(batch, "batch_size"))
        v["mlp:activation"] = p.get("activation", "relu")
        v["mlp:alpha"] = p.get("alpha", 1e-4)
        v["mlp:learning_rate_init"] = p.get("learning_rate_init", 1e-3)
        v["mlp:early_stopping"] = "valid" if p.get("early_stopping", False) else "train"
        lr = p.get("learning_rate", "constant")
        _need(lr == "constant", f"learning_rate={lr!r} (adam ignores it; the space fixes constant)")
        handled = {"hidden_layer_sizes", "solver", "batch_size", "activation", "alpha", "learning_rate_init",
                   "early_stopping", "learning_rate", "epsilon"}  # fmt: skip
    _check_defaults(p, handled, est)
    return v


# --------------------------------------------------------------------------------------- import
def _kb_dataset(kb: KnowledgeBase, data_id: int, target: str | None) -> DatasetRecord | None:
    found = kb.find_datasets(openml_id=int(data_id))
    if target is not None:
        same = [d for d in found if tuple(d.targets) == (target,)]
        found = same or found
    return found[0] if found else None


@dataclass(frozen=True)
class _TaskDataset:
    """The KB dataset of an OpenML task: already in the KB, or loaded and not written yet (it is written
    with its meta-features only when the task has runs to import)."""

    record: DatasetRecord
    new: Dataset | None = None

    def write(self, kb: KnowledgeBase) -> None:
        """Store a newly loaded dataset and its meta-features (call inside the import's transaction)."""
        if self.new is None:
            return
        from metalearn.metalearning.metafeatures import ensure_metafeatures

        ensure_metafeatures(kb, self.new)


def _dataset_for_task(
    kb: KnowledgeBase,
    task_id: int,
    cache_dir: str | Path | None,
    server: str | None,
    load_missing: bool,
) -> _TaskDataset:
    """The KB dataset of OpenML task ``task_id`` (loaded, not yet written, if absent)."""
    from metalearn.data.openml_io import get_openml_task_info, load_openml_task

    info = get_openml_task_info(task_id, cache_dir=cache_dir, server=server, with_splits=False)
    record = _kb_dataset(kb, info.dataset_id, info.target)
    if record is not None:
        return _TaskDataset(record)
    if not load_missing:
        raise NotFoundError(
            f"OpenML dataset {info.dataset_id} (task {task_id}) is not in the KB; add it with "
            "`metalearn kb build --suite ...` or allow loading it"
        )
    dataset, _ = load_openml_task(task_id, cache_dir=cache_dir, server=server)
    return _TaskDataset(dataset_record(dataset), dataset)


def import_openml_runs(
    kb: KnowledgeBase,
    task_ids: Iterable[int],
    *,
    measure: str | None = None,
    limit: int = 1000,
    keep_foreign: bool = True,
    load_missing: bool = True,
    cache_dir: str | Path | None = None,
    server: str | None = None,
    on_task: Callable[[int, str], None] | None = None,
) -> ImportReport:
    """Import up to ``limit`` evaluated runs of each OpenML task into ``kb`` (see the module docstring).

    ``measure``: the OpenML evaluation measure (default: per task kind, :data:`DEFAULT_MEASURE`). A task
    that cannot be imported (unknown, unreachable, a kind OpenML runs do not cover, a measure that is not
    the product's metric for its kind) is reported in ``ImportReport.tasks`` and the import goes on.
    ``on_task(task_id, status)`` is called after each task (progress).
    """
    if measure is not None and measure not in MEASURES:
        raise InputError(f"unknown OpenML measure {measure!r}; use one of {', '.join(MEASURES)}")
    if isinstance(limit, bool) or int(limit) < 1:
        raise InputError(f"limit must be a positive number of runs per task, got {limit!r}")
    report = ImportReport()
    for tid in dict.fromkeys(int(t) for t in task_ids):
        try:
            status = _import_task(
                kb, tid, measure, int(limit), keep_foreign, load_missing, cache_dir, server, report
            )
        except MetaLearnError as err:
            status = f"skipped: {err}"
        report.tasks[tid] = status
        if on_task is not None:
            on_task(tid, status)
    return report


def _import_task(
    kb: KnowledgeBase,
    tid: int,
    measure: str | None,
    limit: int,
    keep_foreign: bool,
    load_missing: bool,
    cache_dir: str | Path | None,
    server: str | None,
    report: ImportReport,
) -> str:
    found = _dataset_for_task(kb, tid, cache_dir, server, load_missing)
    record = found.record
    kind = TaskKind(record.kind)
    name = measure or DEFAULT_MEASURE.get(kind)
    if name is None:
        return f"skipped: OpenML has no runs for {kind} tasks"
    metric, kinds = MEASURES[name]
    if kind not in kinds:
        return f"skipped: OpenML {name} is not the product's {metric} for {kind} tasks"
    evaluations = fetch_evaluations(tid, name, limit, cache_dir, server)
    if not evaluations:  # nothing to import: a new dataset is not added either
        return f"skipped: OpenML has no {name} evaluations of task {tid}"
    report.evaluations += len(evaluations)
    setups = fetch_setups({e.setup_id for e in evaluations}, cache_dir, server) if evaluations else {}
    space = get_space(kind)
    configs: dict[str, ConfigurationRecord] = {}
    runs: list[RunRecord] = []
    for e in evaluations:
        params = setups.get(e.setup_id)
        if params is None:
            report.skipped += 1
            report.reasons["setup not returned by OpenML"] = (
                report.reasons.get("setup not returned by OpenML", 0) + 1
            )
            continue
        tr = translate_setup(e.flow_name, params, kind)
        if tr.values is not None:
            conf = ConfigurationRecord.create(space.name, space.version, tr.values)
            report.translated += 1
        else:
            report.reasons[tr.reason] = report.reasons.get(tr.reason, 0) + 1
            if not keep_foreign:
                report.skipped += 1
                continue
            foreign = {
                "flow": e.flow_name,
                "flow_id": e.flow_id,
                "parameters": {f"{p.component}.{p.name}": p.value for p in params},
            }
            conf = ConfigurationRecord.create(FOREIGN_SPACE, FOREIGN_SPACE_VERSION, foreign)
            report.foreign += 1
        configs[conf.config_id] = conf
        protocol = f"openml-task{tid}-run{e.run_id}"
        runs.append(
            RunRecord(
                run_id=run_id_for(record.dataset_id, conf.config_id, protocol),
                dataset_id=record.dataset_id,
                config_id=conf.config_id,
                protocol=protocol,
                status="ok",
                metric=metric,
                score=e.value,
                cost=to_cost(metric, e.value),
                metrics={metric: e.value},
                source=SOURCE,
            )
        )
    if not runs:
        return f"skipped: none of the {len(evaluations)} evaluations of task {tid} could be imported"
    with kb.transaction():  # the dataset, its configurations and runs together, or nothing
        found.write(kb)
        for conf in configs.values():
            kb.put_configuration(conf)
        added = kb.add_runs(runs)
    report.runs_added += added
    report.imported_tasks += 1
    n_ours = sum(1 for c in configs.values() if c.space == space.name)
    return f"{record.dataset_id}: {len(evaluations)} evaluations, {added} runs added ({n_ours} configurations in the space)"
