"""Compressed variants of a search's model for the model registry: ONNX, ensemble pruning, and the
report that says what a variant costs and gains.

- :func:`to_onnx`: the model with every member's final estimator(s) converted to ONNX and served by
  onnxruntime (:class:`~metalearn.registry.onnx_model.OnnxTaskModel`); the fitted Python preprocessing
  is kept. scikit-learn estimators go through skl2onnx, LightGBM / XGBoost through onnxmltools and
  CatBoost through its own ONNX export. The variant is checked against the original on the sample it
  is given (maximum absolute difference of probabilities and values, agreement of labels) and refused
  when it differs by more than float32 rounding. Graphs take float32 inputs; a member that is not
  exact enough in float32 is converted again with float64 inputs where the converter allows it.
- :func:`prune_ensemble`: an ensemble with fewer members (greedy backward elimination on a
  validation set, weights renormalised); :func:`prune_by_weights`: the same without validation rows,
  keeping the members of largest ensemble weight (the weights were fit on the search's out-of-fold
  predictions: scored on the training rows instead, a member that memorises them looks best). A pruned
  ensemble of one member drops the ensemble's temperature and class biases (fit to the whole ensemble's
  out-of-fold probabilities, not to that member's: it predicts as the search scored it); several members
  keep them, and every pruned ensemble keeps its decision threshold or class weights.
- :func:`variant_report` / :func:`compare`: artifact size, single-row latency, batch throughput and
  validation score of a model, and the ratios between two reports.

Whatever cannot be converted raises :class:`~metalearn.data.errors.CompressionError` naming the member
and the estimator: keep the original version for it.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import is_classifier
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.multioutput import MultiOutputRegressor, RegressorChain

from metalearn.data.errors import CompressionError
from metalearn.data.metrics import get_metric, score
from metalearn.data.prediction import Prediction
from metalearn.data.task import Task
from metalearn.pipelines.models.adaptive import Adaptive, estimator_name
from metalearn.pipelines.models.boosting import BoostedTreesClassifier, BoostedTreesRegressor
from metalearn.pipelines.models.shared_mlp import SharedTrunkMLP
from metalearn.pipelines.models.task_models import (
    ClassificationModel,
    ClassifierChainModel,
    MultiLabelModel,
    MultiTargetModel,
    MultiTaskModel,
    RegressionModel,
)
from metalearn.registry.onnx_model import OnnxEstimator, OnnxTaskModel
from metalearn.search.calibration import finish_prediction
from metalearn.search.ensemble import EnsembleModel, combine_predictions

__all__ = [
    "DEFAULT_TOLERANCE",
    "NEGLIGIBLE_WEIGHT",
    "PRUNE_TOLERANCE",
    "PRUNE_WEIGHT_KEPT",
    "OnnxTaskModel",
    "artifact_bytes",
    "compare",
    "compare_predictions",
    "prune_by_weights",
    "prune_ensemble",
    "to_onnx",
    "variant_report",
]

#: ONNX opsets of the graphs (onnxruntime >= 1.18 runs them)
TARGET_OPSET = {"": 18, "ai.onnx.ml": 3}
#: the highest opset onnxmltools' LightGBM / XGBoost converters support
BOOSTER_OPSET = 15
#: Largest accepted absolute difference of a probability, or of a regression value relative to the
#: spread of the original's values, between the ONNX variant and the original (float32 rounding is
#: ~1e-6 per operation; a tree split flipped by it moves a probability by one tree's share).
DEFAULT_TOLERANCE = 1e-3
#: Largest relative loss of validation score :func:`prune_ensemble` accepts by default.
PRUNE_TOLERANCE = 0.002
#: :func:`prune_by_weights` keeps the members of largest weight until they carry this share of the ensemble's weight
PRUNE_WEIGHT_KEPT = 0.95
#: a member of a smaller weight than this (printed 0.00) is never kept by :func:`prune_by_weights`
NEGLIGIBLE_WEIGHT = 0.005

_TASK_MODELS = (ClassificationModel, RegressionModel, MultiLabelModel, MultiTargetModel, MultiTaskModel)
_CONSTANT = (DummyClassifier, DummyRegressor)


# ---------------------------------------------------------------------------------------------------
# converting one estimator
# ---------------------------------------------------------------------------------------------------
class _Unconvertible(Exception):
    """An estimator has no ONNX conversion (the message says why)."""


def _strip_zipmap(onx: Any) -> Any:
    """The graph with its ZipMap nodes removed: probabilities come out as a tensor."""
    graph = onx.graph
    for node in [n for n in graph.node if n.op_type == "ZipMap"]:
        src, dst = node.input[0], node.output[0]
        graph.node.remove(node)
        for out in graph.output:
            if out.name == dst:
                from onnx import TensorProto, helper

                new = helper.make_tensor_value_info(src, TensorProto.FLOAT, None)
                out.CopyFrom(new)
    return onx


def _tensor_type(dtype: str, n_features: int) -> Any:
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    return (DoubleTensorType if dtype == "float64" else FloatTensorType)([None, int(n_features)])


@contextlib.contextmanager
def _int_missing_flags() -> Iterator[None]:
    """skl2onnx 1.20 passes a boolean ``nodes_missing_value_tracks_true`` for the leaves of a
    HistGradientBoosting tree, which onnx refuses: cast it to an int while converting."""
    from skl2onnx.common import tree_ensemble

    original = tree_ensemble.add_node

    def add_node(*args: Any, **kwargs: Any) -> Any:
        if "nodes_missing_value_tracks_true" in kwargs:
            kwargs["nodes_missing_value_tracks_true"] = int(kwargs["nodes_missing_value_tracks_true"])
        return original(*args, **kwargs)

    tree_ensemble.add_node = add_node
    try:
        yield
    finally:
        tree_ensemble.add_node = original


def _sklearn_graph(est: Any, n_features: int, dtype: str) -> bytes:
    from skl2onnx import convert_sklearn

    if isinstance(est, HistGradientBoostingClassifier | HistGradientBoostingRegressor):
        if getattr(est, "is_categorical_", None) is not None and np.any(est.is_categorical_):
            raise _Unconvertible("HistGradientBoosting's native categorical splits have no ONNX converter")
        guard: Any = _int_missing_flags()
    else:
        guard = contextlib.nullcontext()
    options: dict[int, dict[str, Any]] | None = None
    if is_classifier(est):
        options = {id(est): {"zipmap": False}}
    with guard:
        onx = convert_sklearn(
            est,
            initial_types=[("X", _tensor_type(dtype, n_features))],
            options=options,
            target_opset=TARGET_OPSET,
        )
    return bytes(onx.SerializeToString())


def _boosted_graph(est: BoostedTreesClassifier | BoostedTreesRegressor, n_features: int, dtype: str) -> bytes:
    lib = est.library
    model = est.model_
    cats = tuple(int(j) for j in est.categorical_features)
    if getattr(est, "multilabel_", False) or (
        not isinstance(est, BoostedTreesClassifier) and _multi_target(est)
    ):
        raise _Unconvertible(f"{lib} multi-output models have no ONNX converter")
    if dtype != "float32":
        raise _Unconvertible(f"the {lib} converter takes float32 inputs only")
    if lib == "lightgbm":
        from onnxmltools import convert_lightgbm
        from onnxmltools.convert.common.data_types import FloatTensorType

        onx = convert_lightgbm(
            model,
            initial_types=[("X", FloatTensorType([None, int(n_features)]))],
            target_opset=BOOSTER_OPSET,
            zipmap=False,
        )
        return bytes(onx.SerializeToString())
    if lib == "xgboost":
        from onnxmltools import convert_xgboost
        from onnxmltools.convert.common.data_types import FloatTensorType as XgbFloat

        if cats:
            raise _Unconvertible("XGBoost's native categorical splits have no ONNX converter")
        onx = convert_xgboost(
            model, initial_types=[("X", XgbFloat([None, int(n_features)]))], target_opset=BOOSTER_OPSET
        )
        return bytes(_strip_zipmap(onx).SerializeToString())
    if lib == "catboost":
        import os
        import tempfile

        import onnx

        if cats:
            raise _Unconvertible("CatBoost exports no ONNX graph for a model with categorical features")
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.onnx")
            model.save_model(path, format="onnx")
            onx = onnx.load(path)
        return bytes(_strip_zipmap(onx).SerializeToString())
    raise _Unconvertible(f"unknown boosting library {lib!r}")


def _multi_target(est: Any) -> bool:
    model = getattr(est, "model_", None)
    n_targets = getattr(model, "n_targets_", None) or getattr(model, "_n_targets", None)
    try:
        return int(n_targets or 1) > 1
    except (TypeError, ValueError):
        return False


def _convert_leaf(est: Any, dtype: str, where: str, log: list[str]) -> Any:
    """An :class:`OnnxEstimator` for one fitted estimator (constant models are kept as they are)."""
    if est is None or isinstance(est, _CONSTANT):
        return est
    inner = est.estimator_ if isinstance(est, Adaptive) else est
    if isinstance(inner, _CONSTANT):
        return inner
    name = estimator_name(est)
    n_features = getattr(inner, "n_features_in_", None) or getattr(est, "n_features_in_", None)
    if n_features is None:
        raise CompressionError(
            f"{where}: {name} does not say how many features it takes; keep the original version"
        )
    classifier = is_classifier(inner)
    nan_cols: tuple[int, ...] = ()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if isinstance(inner, BoostedTreesClassifier | BoostedTreesRegressor):
                onx = _boosted_graph(inner, int(n_features), dtype)
            elif type(inner).__module__.startswith("sklearn."):
                onx = _sklearn_graph(inner, int(n_features), dtype)
            else:
                raise _Unconvertible("no ONNX converter is known for it")
    except _Unconvertible as err:
        raise CompressionError(
            f"{where}: {name} cannot be converted to ONNX ({err}); keep the original version"
        ) from None
    except Exception as err:  # the converters raise anything (RuntimeError, NotImplementedError...)
        raise CompressionError(
            f"{where}: {name} cannot be converted to ONNX ({type(err).__name__}: {str(err)[:200]}); "
            "keep the original version"
        ) from None
    classes = np.asarray(inner.classes_).copy() if classifier else None
    graph = OnnxEstimator(onx, "proba" if classifier else "values", classes, dtype, nan_cols, name)
    try:
        graph._session()  # onnxruntime refuses some converters' graphs (e.g. XGBoost multi-output)
    except Exception as err:
        raise CompressionError(
            f"{where}: the ONNX graph of {name} does not load in onnxruntime ({str(err).strip()[:200]}); "
            "keep the original version"
        ) from None
    log.append(f"{where}: {name} ({dtype}, {len(onx)} bytes)")
    return graph


def _convert_member(model: Any, dtype: str, where: str, log: list[str]) -> Any:
    """A shallow copy of the task model ``model`` whose estimators are ONNX graphs."""
    if not isinstance(model, _TASK_MODELS):
        raise CompressionError(
            f"{where}: {type(model).__name__} is not a task model this build can convert; keep the original version"
        )
    out = copy.copy(model)
    if isinstance(model, MultiTaskModel):
        if model.strategy == "shared" or any(isinstance(e, SharedTrunkMLP) for e in model.estimators_):
            raise CompressionError(
                f"{where}: the shared-trunk multitask network has no ONNX converter; keep the original version"
            )
        out.estimators_ = [
            _convert_leaf(e, dtype, f"{where} target {t}", log) for t, e in enumerate(model.estimators_)
        ]
        return out
    est = model.estimator_
    if isinstance(est, list):  # binary relevance
        out.estimator_ = [_convert_leaf(e, dtype, f"{where} label {j}", log) for j, e in enumerate(est)]
    elif isinstance(est, ClassifierChainModel):
        chain = copy.copy(est)
        chain.estimators_ = [
            _convert_leaf(e, dtype, f"{where} chain link {j}", log) for j, e in enumerate(est.estimators_)
        ]
        out.estimator_ = chain
    elif isinstance(est, MultiOutputRegressor | RegressorChain):
        wrapper = copy.copy(est)
        wrapper.estimators_ = [
            _convert_leaf(e, dtype, f"{where} target {j}", log) for j, e in enumerate(est.estimators_)
        ]
        out.estimator_ = wrapper
    else:
        if isinstance(model, MultiLabelModel) and est is not None and _native_multilabel(est):
            raise CompressionError(
                f"{where}: {estimator_name(est)} fitted on several labels at once has no ONNX converter "
                "here; keep the original version (or a binary-relevance configuration)"
            )
        inner = est.estimator_ if isinstance(est, Adaptive) else est
        if isinstance(model, MultiTargetModel) and isinstance(inner, BoostedTreesRegressor):
            # their converters' graphs of several outputs declare none, and onnxruntime refuses them
            raise CompressionError(
                f"{where}: {estimator_name(est)} fitted on several targets at once has no ONNX graph onnxruntime "
                "loads; keep the original version (or a per-target configuration)"
            )
        out.estimator_ = _convert_leaf(est, dtype, where, log)
    return out


def _native_multilabel(est: Any) -> bool:
    inner = est.estimator_ if isinstance(est, Adaptive) else est
    if isinstance(inner, _CONSTANT):
        return False
    return bool(
        getattr(inner, "multilabel_", False)
        or getattr(inner, "n_outputs_", 1) > 1
        or isinstance(getattr(inner, "classes_", None), list)
    )


# ---------------------------------------------------------------------------------------------------
# checking a variant against the original
# ---------------------------------------------------------------------------------------------------
def compare_predictions(original: Prediction, variant: Prediction) -> dict[str, Any]:
    """How far ``variant`` is from ``original``: per target kind, the maximum absolute difference of
    probabilities, the maximum absolute difference of values relative to the spread of the original
    values (regression), and the share of rows whose label agrees (classification)."""
    if original.n_targets != variant.n_targets or original.n_rows != variant.n_rows:
        raise CompressionError(
            "the variant predicts another number of targets or rows; keep the original version"
        )
    proba_diff = 0.0
    value_diff = 0.0
    value_rel = 0.0
    agree = 1.0
    for t in range(original.n_targets):
        po, pv = original.probas[t], variant.probas[t]
        if (po is None) != (pv is None):
            raise CompressionError(f"target {t}: the variant and the original disagree on the target's kind")
        if po is not None and pv is not None:
            co, cv = original.classes[t], variant.classes[t]
            if co is None or cv is None or len(co) != len(cv) or not np.all(np.asarray(co) == np.asarray(cv)):
                raise CompressionError(f"target {t}: the variant knows other classes than the original")
            proba_diff = max(proba_diff, float(np.max(np.abs(np.asarray(po) - np.asarray(pv)), initial=0.0)))
            agree = min(
                agree, float(np.mean(np.asarray(original.values[t]) == np.asarray(variant.values[t])))
            )
        else:
            vo = np.asarray(original.values[t], dtype=np.float64)
            vv = np.asarray(variant.values[t], dtype=np.float64)
            diff = float(np.max(np.abs(vo - vv), initial=0.0))
            spread = float(np.std(vo)) if vo.size > 1 else 0.0
            value_diff = max(value_diff, diff)
            value_rel = max(value_rel, diff / spread if spread > 1e-12 else diff)
    return {
        "max_abs_proba_diff": proba_diff,
        "max_abs_value_diff": value_diff,
        "max_rel_value_diff": value_rel,
        "label_agreement": agree,
        "n_rows": original.n_rows,
    }


def _within(check: dict[str, Any], tolerance: float) -> bool:
    return bool(check["max_abs_proba_diff"] <= tolerance and check["max_rel_value_diff"] <= tolerance)


# ---------------------------------------------------------------------------------------------------
# to_onnx
# ---------------------------------------------------------------------------------------------------
def _members(model: Any) -> tuple[list[Any], tuple[float, ...], Task | None, tuple[str, ...]]:
    if isinstance(model, EnsembleModel):  # (its temperature: see to_onnx)
        return list(model.members), tuple(model.weights), model.task, tuple(model.config_ids)
    if isinstance(model, OnnxTaskModel):
        raise CompressionError("the model is already an ONNX variant; convert the original version")
    if not isinstance(model, _TASK_MODELS):
        raise CompressionError(
            f"{type(model).__name__} is not a task model this build can convert; keep the original version"
        )
    return [model], (1.0,), None, ()


def _member_name(i: int, n: int, config_ids: Sequence[str]) -> str:
    if n == 1:
        return "the model"
    cid = f" ({config_ids[i]})" if i < len(config_ids) and config_ids[i] else ""
    return f"ensemble member {i}{cid}"


def to_onnx(
    model: Any, X_sample: pd.DataFrame, *, tolerance: float | None = DEFAULT_TOLERANCE
) -> OnnxTaskModel:
    """The ONNX variant of a fitted task model or :class:`EnsembleModel` (see the module docstring).

    ``X_sample``: feature rows (a validation sample) the variant is checked on; ``tolerance``: the
    largest accepted probability difference (and regression difference relative to the spread of the
    predicted values); ``None`` skips the refusal but the differences are still measured. The
    variant's ``check`` says what was measured and converted.
    """
    members, weights, task, config_ids = _members(model)
    if len(X_sample) == 0:
        raise CompressionError("give at least one sample row to check the ONNX variant against the original")
    original = model.predict_task(X_sample)
    attempts: list[dict[str, Any]] = []
    for dtype in ("float32", "float64"):
        log: list[str] = []
        try:
            converted = [
                _convert_member(m, dtype, _member_name(i, len(members), config_ids), log)
                for i, m in enumerate(members)
            ]
        except CompressionError:
            if dtype == "float32" or not attempts:
                raise
            break  # float64 not available: report the float32 failure below
        variant = OnnxTaskModel(converted, weights, task, config_ids, temperature=getattr(model, "temperature", 1.0),
                                threshold=getattr(model, "threshold", None),
                                class_weights=getattr(model, "class_weights", None), biases=getattr(model, "biases", None))
        try:
            onnx_pred = variant.predict_task(X_sample)
        except Exception as err:
            raise CompressionError(
                f"the ONNX variant fails to predict ({type(err).__name__}: {str(err).strip()[:200]}); "
                "keep the original version"
            ) from None
        check = compare_predictions(original, onnx_pred)
        check.update(input_dtype=dtype, graphs=log, n_graphs=len(log))
        attempts.append(check)
        if tolerance is None or _within(check, tolerance):
            variant.check = check
            return variant
    worst = attempts[-1]
    raise CompressionError(
        f"the ONNX variant differs from the original by {worst['max_abs_proba_diff']:.3g} in probability / "
        f"{worst['max_rel_value_diff']:.3g} in relative value on the sample (tolerance {tolerance}); "
        "keep the original version"
    )


# ---------------------------------------------------------------------------------------------------
# pruning an ensemble
# ---------------------------------------------------------------------------------------------------
def _relative_loss(reference: float, value: float, greater_is_better: bool) -> float:
    """How much worse ``value`` is than ``reference``, relative to ``|reference|`` (negative: better)."""
    worse = (reference - value) if greater_is_better else (value - reference)
    if not (math.isfinite(reference) and math.isfinite(value)):
        return math.inf
    return worse / max(abs(reference), 1e-12)


def prune_ensemble(
    model: EnsembleModel,
    X_val: pd.DataFrame,
    y_val: pd.DataFrame,
    task: Task,
    max_members: int | None = None,
    *,
    tolerance: float = PRUNE_TOLERANCE,
) -> EnsembleModel:
    """An ensemble with fewer members, by greedy backward elimination on ``(X_val, y_val)``.

    Each step drops the member whose removal hurts ``task``'s metric least (the others' weights are
    renormalised). With ``max_members`` the ensemble is pruned to that many members; without it,
    members are dropped as long as the score stays within ``tolerance`` (relative, in the metric's
    worse direction) of the full ensemble's. At least one member is dropped when the ensemble has more
    than ``max_members`` or when a removal is within tolerance; the result keeps at least one member
    (one member alone drops the ensemble's temperature and class biases, see the module docstring).
    ``(X_val, y_val)`` must be held-out rows: on the training rows the members that memorise them look best
    (:func:`prune_by_weights` prunes without them). Score the result on other rows than ``X_val`` for an
    unbiased estimate.
    """
    n = _prunable(model, max_members)
    y = y_val.to_frame() if isinstance(y_val, pd.Series) else y_val
    greater = get_metric(task.metric, task.kind).greater_is_better
    preds = [m.predict_task(X_val) for m in model.members]
    weights = np.asarray(model.weights, dtype=np.float64)

    threshold, class_weights = getattr(model, "threshold", None), getattr(model, "class_weights", None)

    def value(keep: Sequence[int]) -> float:
        pred = combine_predictions(model.task, [preds[i] for i in keep], weights[list(keep)].tolist())
        temperature, biases = _calibration(model, len(keep))
        return float(score(task, y, finish_prediction(pred, temperature, threshold, class_weights, biases)))

    keep = list(range(n))
    full = value(keep)
    while len(keep) > 1:
        if max_members is not None and len(keep) <= max_members:
            break
        trials = [(value([i for i in keep if i != j]), j) for j in keep]
        best_score, drop = (max if greater else min)(
            trials, key=lambda t: t[0] if math.isfinite(t[0]) else (-math.inf if greater else math.inf)
        )
        if max_members is None and _relative_loss(full, best_score, greater) > tolerance:
            break
        keep.remove(drop)
    if len(keep) == n:
        return model
    return _pruned(model, keep)


def _prunable(model: Any, max_members: int | None) -> int:
    """How many members ``model`` has, when it is an ensemble of at least two and ``max_members`` (if given) is
    positive; :class:`CompressionError` otherwise (for :func:`prune_ensemble` and :func:`prune_by_weights`)."""
    if not isinstance(model, EnsembleModel):
        raise CompressionError(
            f"only an ensemble can be pruned, got {type(model).__name__}; keep the original version"
        )
    if len(model.members) < 2:
        raise CompressionError("the ensemble has a single member: nothing to prune; keep the original version")
    if max_members is not None and max_members < 1:
        raise CompressionError(f"max_members must be at least 1, got {max_members}")
    return len(model.members)


def _calibration(model: EnsembleModel, n_kept: int) -> tuple[float, tuple[float, ...] | None]:
    """The temperature and class biases of ``model`` pruned to ``n_kept`` members: the ensemble's, unless one
    member is left (they were fit to the whole ensemble's out-of-fold probabilities, not to its)."""
    if n_kept == 1:
        return 1.0, None
    return getattr(model, "temperature", 1.0), getattr(model, "biases", None)


def _pruned(model: EnsembleModel, keep: Sequence[int]) -> EnsembleModel:
    keep = sorted(keep)
    weights = np.asarray(model.weights, dtype=np.float64)
    ids = tuple(model.config_ids[i] for i in keep) if model.config_ids else ()
    temperature, biases = _calibration(model, len(keep))
    return EnsembleModel(model.task, [model.members[i] for i in keep], weights[keep].tolist(), ids, temperature,
                         getattr(model, "threshold", None), getattr(model, "class_weights", None), biases)


def prune_by_weights(model: EnsembleModel, max_members: int | None = None, *,
                     kept_share: float = PRUNE_WEIGHT_KEPT) -> EnsembleModel:
    """An ensemble with fewer members chosen by their ensemble weights, for when no held-out rows are at hand.

    The weights were fit by the search on out-of-fold predictions: they are the honest measure of what a
    member brings, where a score on the training rows favours the members that memorise them. The members
    of largest weight are kept (the first of equal weights first) until they carry ``kept_share`` of the
    weight, or ``max_members`` of them with ``max_members``; a member of less than :data:`NEGLIGIBLE_WEIGHT`
    is never kept. Their weights are renormalised; a single member left drops the ensemble's temperature and
    class biases (see the module docstring). :class:`CompressionError` when no member can be dropped so.
    """
    n = _prunable(model, max_members)
    weights = np.asarray(model.weights, dtype=np.float64)
    weights = weights / weights.sum()
    order = sorted(range(n), key=lambda i: (-weights[i], i))
    keep: list[int] = []
    for i in order:
        if keep and (weights[i] < NEGLIGIBLE_WEIGHT or (max_members is not None and len(keep) >= max_members)
                     or (max_members is None and float(weights[keep].sum()) >= kept_share - 1e-12)):
            break
        keep.append(i)
    if len(keep) == n:
        raise CompressionError(
            f"without validation rows members are dropped by ensemble weight, at most {100 * (1 - kept_share):g} % "
            f"of it, and the lightest member weighs {float(weights.min()):.3f}: nothing to drop; give held-out "
            "labelled rows (--data) to prune by score, or keep the original version"
        )
    return _pruned(model, keep)


# ---------------------------------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------------------------------
def artifact_bytes(model: Any) -> int:
    """The size of the model's registry artifact (:func:`~metalearn.pipelines.artifacts.dumps_model`)."""
    from metalearn.pipelines.artifacts import dumps_model

    return len(dumps_model(model))


def _percentile_ms(times: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(times) * 1e3, q))


def _timed(fn: Callable[[], Any], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def variant_report(
    model: Any,
    X_val: pd.DataFrame,
    y_val: pd.DataFrame,
    task: Task,
    *,
    batch_rows: int = 10_000,
    n_calls: int = 300,
    warmup: int = 20,
    seed: int = 0,
) -> dict[str, Any]:
    """What serving ``model`` costs and how good it is.

    ``size_bytes`` (the skops artifact), ``p50_ms``/``p99_ms`` (single-row ``predict_task`` latency
    over ``n_calls`` calls on rows of ``X_val`` after ``warmup`` calls), ``rows_per_s`` (one
    ``predict_task`` on ``batch_rows`` rows resampled from ``X_val``), ``score`` (``task.metric`` on
    ``(X_val, y_val)``) with ``metric`` and ``greater_is_better``.
    """
    if len(X_val) == 0:
        raise CompressionError("give validation rows to report on")
    y = y_val.to_frame() if isinstance(y_val, pd.Series) else y_val
    metric = get_metric(task.metric, task.kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = float(score(task, y, model.predict_task(X_val)))
        rng = np.random.default_rng(seed)
        rows = [X_val.iloc[[int(i)]] for i in rng.integers(0, len(X_val), size=max(1, n_calls))]
        for r in rows[: max(0, warmup)]:
            model.predict_task(r)
        times = []
        for r in rows:
            t0 = time.perf_counter()
            model.predict_task(r)
            times.append(time.perf_counter() - t0)
        big = X_val.iloc[rng.integers(0, len(X_val), size=int(batch_rows))].reset_index(drop=True)
        batch = min(_timed(lambda: model.predict_task(big), 2))
    return {
        "model": type(model).__name__,
        "size_bytes": artifact_bytes(model),
        "p50_ms": _percentile_ms(times, 50),
        "p99_ms": _percentile_ms(times, 99),
        "rows_per_s": float(batch_rows / batch) if batch > 0 else math.inf,
        "batch_rows": int(batch_rows),
        "score": value,
        "metric": task.metric,
        "greater_is_better": bool(metric.greater_is_better),
        "n_members": len(getattr(model, "members", [model])),
    }


#: The issue's target: a variant at least this many times faster or smaller...
TARGET_FACTOR = 2.0
#: ... at a relative validation-score loss under this.
TARGET_LOSS = 0.005


def compare(original: dict[str, Any], variant: dict[str, Any]) -> dict[str, Any]:
    """How ``variant`` (a :func:`variant_report`) compares with ``original``: ``size_ratio`` (original
    size / variant size: > 1 is smaller), ``speedup_p50``/``speedup_p99`` (original latency / variant
    latency), ``throughput_ratio`` (variant rows/s / original rows/s), ``score_loss`` (relative loss
    of score in the metric's worse direction: > 0 is worse) and ``meets_target`` (2x smaller or faster
    at a loss under 0.5 %)."""
    greater = bool(original["greater_is_better"])
    loss = _relative_loss(float(original["score"]), float(variant["score"]), greater)

    def ratio(a: float, b: float) -> float:
        return float(a) / float(b) if float(b) > 0 else math.inf

    out = {
        "size_ratio": ratio(original["size_bytes"], variant["size_bytes"]),
        "speedup_p50": ratio(original["p50_ms"], variant["p50_ms"]),
        "speedup_p99": ratio(original["p99_ms"], variant["p99_ms"]),
        "throughput_ratio": ratio(variant["rows_per_s"], original["rows_per_s"]),
        "score_loss": loss,
    }
    gain = max(out["size_ratio"], out["speedup_p50"], out["throughput_ratio"])
    out["meets_target"] = bool(gain >= TARGET_FACTOR and loss < TARGET_LOSS)
    return out
