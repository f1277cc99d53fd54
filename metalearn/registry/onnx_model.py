"""ONNX variants of fitted task models, served through onnxruntime.

An :class:`OnnxTaskModel` keeps the member's fitted Python preprocessor (it handles the DataFrame
columns, categories and missing values) and replaces each final estimator by an :class:`OnnxEstimator`:
the estimator's ONNX graph (``bytes``) run by an ``onnxruntime.InferenceSession`` created lazily on
one thread. Its ``predict_task`` returns the same :class:`~metalearn.data.prediction.Prediction` as
the original model (same targets, classes and probability columns), computed without the original's
per-call thread-pool limiting (``threadpoolctl`` costs about a millisecond a call).

The model pickles and round-trips through ``skops.io`` (the session is dropped from the state and
rebuilt on first use); every type it holds lives under ``metalearn.``, ``sklearn.``, ``numpy.`` or
``builtins``. :func:`metalearn.registry.compress.to_onnx` builds it.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from metalearn.data.prediction import Prediction
from metalearn.pipelines.models.task_models import (
    ClassificationModel,
    MultiLabelModel,
    MultiTargetModel,
    MultiTaskModel,
    RegressionModel,
    class_outputs,
    full_proba,
)

__all__ = ["OnnxEstimator", "OnnxTaskModel", "predict_onnx_task"]


class OnnxEstimator(BaseEstimator):
    """A fitted estimator's ONNX graph standing in for it inside a task model.

    ``mode``: ``"proba"`` (a classifier: ``predict_proba`` gives the graph's probability output, padded
    with zero columns up to ``len(classes_)`` as the original did for classes its library never saw) or
    ``"values"`` (a regressor: ``predict`` gives the graph's first output). ``input_dtype``: the dtype
    the graph takes (``float32`` or ``float64``). ``nan_below_zero``: input columns whose negative values
    are missing values (XGBoost's native categorical codes). ``source``: the original estimator's class
    (for reports and error messages).
    """

    def __init__(
        self,
        onnx: bytes = b"",
        mode: str = "values",
        classes: Any = None,
        input_dtype: str = "float32",
        nan_below_zero: tuple[int, ...] = (),
        source: str = "",
    ) -> None:
        self.onnx = onnx
        self.mode = mode
        self.classes = classes
        self.input_dtype = input_dtype
        self.nan_below_zero = nan_below_zero
        self.source = source

    # -- the session -------------------------------------------------------------------------------
    def _session(self) -> Any:
        sess = self.__dict__.get("_sess")
        if sess is None:
            lock = self.__dict__.setdefault("_lock", threading.Lock())
            with lock:
                sess = self.__dict__.get("_sess")
                if sess is None:
                    import onnxruntime as ort

                    opts = ort.SessionOptions()
                    opts.intra_op_num_threads = 1
                    opts.inter_op_num_threads = 1
                    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
                    # fatal only: no warnings about the graphs' declared output shapes, and a graph onnxruntime
                    # refuses raises here (reported by the caller) without a raw C++ error line on stderr
                    opts.log_severity_level = 4
                    sess = ort.InferenceSession(
                        bytes(self.onnx), sess_options=opts, providers=["CPUExecutionProvider"]
                    )
                    self.__dict__["_input"] = sess.get_inputs()[0].name
                    self.__dict__["_sess"] = sess
        return sess

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        for key in ("_sess", "_lock", "_input"):
            state.pop(key, None)
        return state

    def _run(self, X: Any) -> list[Any]:
        sess = self._session()
        Z = np.asarray(X, dtype=np.float64)
        if Z.ndim == 1:
            Z = Z.reshape(1, -1)
        if self.nan_below_zero:
            cols = list(self.nan_below_zero)
            Z = Z.copy()
            block = Z[:, cols]
            block[~(block >= 0)] = np.nan
            Z[:, cols] = block
        Z = np.ascontiguousarray(Z, dtype=np.dtype(self.input_dtype))
        out: list[Any] = sess.run(None, {self.__dict__["_input"]: Z})
        return out

    # -- the estimator API the task models use -----------------------------------------------------
    @property
    def classes_(self) -> np.ndarray:
        if self.classes is None:
            raise AttributeError("a regression graph has no classes")
        return np.asarray(self.classes)

    def predict_proba(self, X: Any) -> np.ndarray:
        if self.mode != "proba":
            raise AttributeError("predict_proba needs a classifier graph")
        outs = self._run(X)
        proba = np.asarray(outs[1] if len(outs) > 1 else outs[0], dtype=np.float64)
        if proba.ndim == 1:
            proba = proba.reshape(-1, 1)
        k = np.asarray(self.classes).size
        if proba.ndim == 2 and proba.shape[1] < k and not _multilabel_classes(self.classes):
            full = np.zeros((proba.shape[0], k))
            full[:, : proba.shape[1]] = proba
            proba = full
        return proba

    def predict(self, X: Any) -> np.ndarray:
        if self.mode == "proba":
            return np.asarray(self.classes)[np.argmax(self.predict_proba(X), axis=1)]
        n = np.shape(X)[0] if np.ndim(X) == 2 else 1
        out = np.asarray(self._run(X)[0], dtype=np.float64).reshape(n, -1)  # (n, targets)
        return out.ravel() if out.shape[1] == 1 else out


def _multilabel_classes(classes: Any) -> bool:
    return isinstance(classes, list)


# ---------------------------------------------------------------------------------------------------
# predict_task of a task model whose estimators are ONNX graphs, without the per-call thread limiting
# ---------------------------------------------------------------------------------------------------
def _features(model: Any, X: pd.DataFrame) -> np.ndarray:
    pre = model.preprocessor_
    Xt = np.asarray(X, dtype=np.float64) if pre is None else np.asarray(pre.transform(X), dtype=np.float64)
    return Xt


def _classification(model: ClassificationModel, Xt: np.ndarray) -> Prediction:
    est = model.estimator_
    proba = full_proba(est.predict_proba(Xt), est.classes_, model.classes_.size)
    values, proba = class_outputs(proba, model.classes_)
    return Prediction(values=[values], probas=[proba], classes=[model.classes_.copy()])


def _regression(model: RegressionModel, Xt: np.ndarray) -> Prediction:
    out = np.asarray(model.estimator_.predict(Xt), dtype=np.float64).ravel()
    out = np.where(np.isfinite(out), out, 0.0) * model.y_scale_ + model.y_mean_
    return Prediction(values=[out], probas=[None], classes=[None])


def _multilabel(model: MultiLabelModel, Xt: np.ndarray) -> Prediction:
    fitted = dict(
        zip(getattr(model, "fitted_columns_", range(len(model.classes_))), model._raw_probas(Xt), strict=True)
    )
    constant: dict[int, int] = getattr(model, "constant_codes_", {})
    values: list[np.ndarray] = []
    probas: list[np.ndarray | None] = []
    for j, classes in enumerate(model.classes_):
        if j in constant:
            proba, est_classes = np.ones((Xt.shape[0], 1)), np.array([constant[j]])
        else:
            proba, est_classes = fitted[j]
        v, p = class_outputs(full_proba(proba, est_classes, classes.size), classes)
        values.append(v)
        probas.append(p)
    return Prediction(values=values, probas=probas, classes=[c.copy() for c in model.classes_])


def _multitarget(model: MultiTargetModel, Xt: np.ndarray) -> Prediction:
    varying = getattr(model, "fitted_columns_", list(range(model.n_targets_)))
    out = np.zeros((Xt.shape[0], model.n_targets_))
    if model.estimator_ is not None:
        fitted = np.asarray(model.estimator_.predict(Xt), dtype=np.float64)
        out[:, varying] = fitted.reshape(fitted.shape[0], -1)
    out = np.where(np.isfinite(out), out, 0.0) * model.y_scale_ + model.y_mean_
    return Prediction(
        values=[out[:, j].copy() for j in range(model.n_targets_)],
        probas=[None] * model.n_targets_,
        classes=[None] * model.n_targets_,
    )


def _multitask(model: MultiTaskModel, Xt: np.ndarray) -> Prediction:
    heads: list[np.ndarray] = []
    for t, est in enumerate(model.estimators_):
        known = model.classes_[t]
        if known is None:
            out = np.asarray(est.predict(Xt), dtype=np.float64).ravel()
            heads.append(np.where(np.isfinite(out), out, 0.0) * model.y_scale_[t] + model.y_mean_[t])
        else:
            heads.append(full_proba(est.predict_proba(Xt), est.classes_, known.size))
    values: list[np.ndarray] = []
    probas: list[np.ndarray | None] = []
    for head, classes in zip(heads, model.classes_, strict=True):
        if classes is None:
            out = np.asarray(head, dtype=np.float64)
            values.append(np.where(np.isfinite(out), out, np.nanmean(out) if np.isfinite(out).any() else 0.0))
            probas.append(None)
        else:
            v, p = class_outputs(full_proba(head, np.arange(head.shape[1]), classes.size), classes)
            values.append(v)
            probas.append(p)
    return Prediction(
        values=values, probas=probas, classes=[None if c is None else c.copy() for c in model.classes_]
    )


def predict_onnx_task(model: Any, X: pd.DataFrame) -> Prediction:
    """``model.predict_task(X)`` for a task model (not an ensemble) whose estimators are ONNX graphs."""
    Xt = _features(model, X)
    if isinstance(model, ClassificationModel):
        return _classification(model, Xt)
    if isinstance(model, RegressionModel):
        return _regression(model, Xt)
    if isinstance(model, MultiLabelModel):
        return _multilabel(model, Xt)
    if isinstance(model, MultiTargetModel):
        return _multitarget(model, Xt)
    if isinstance(model, MultiTaskModel):
        return _multitask(model, Xt)
    return model.predict_task(X)  # pragma: no cover - to_onnx only builds the kinds above


class OnnxTaskModel:
    """The ONNX variant of a fitted task model or ensemble (see the module docstring).

    ``members``: the task models with ONNX graphs for estimators (one for a single pipeline);
    ``weights``: the ensemble's weights (``(1.0,)`` for a single pipeline); ``task``: the ensemble's
    task, ``None`` for a single pipeline; ``temperature``, ``threshold``, ``class_weights`` and ``biases``: the original's (:class:`EnsembleModel`);
    ``check``: what the conversion measured (maximum absolute
    difference of probabilities and values against the original on the validation sample...).
    """

    def __init__(
        self,
        members: list[Any],
        weights: tuple[float, ...] = (1.0,),
        task: Any = None,
        config_ids: tuple[str, ...] = (),
        check: dict[str, Any] | None = None,
        temperature: float = 1.0,
        threshold: float | None = None,
        class_weights: tuple[float, ...] | None = None,
        biases: tuple[float, ...] | None = None,
    ) -> None:
        self.members = list(members)
        self.temperature = float(temperature)
        self.biases = None if biases is None else tuple(float(b) for b in biases)
        self.threshold = None if threshold is None else float(threshold)
        self.class_weights = None if class_weights is None else tuple(float(w) for w in class_weights)
        self.weights = tuple(float(w) for w in weights)
        self.task = task
        self.config_ids = tuple(config_ids)
        self.check = dict(check or {})

    @property
    def is_ensemble(self) -> bool:
        return self.task is not None

    @property
    def constant_targets_(self) -> list[str]:
        sets = [set(getattr(m, "constant_targets_", None) or []) for m in self.members]
        common = set.intersection(*sets) if sets else set()
        if self.task is None:
            return sorted(common) if len(self.members) == 1 else []
        return [t for t in self.task.targets if t in common]

    @property
    def classes_(self) -> np.ndarray | list[np.ndarray | None]:
        """The original's ``classes_`` (the order of ``predict_proba``'s columns; none for a regression)."""
        if self.task is None:
            return self.members[0].classes_  # type: ignore[no-any-return]
        from metalearn.search.ensemble import ensemble_classes

        return ensemble_classes(self.task, self.members)

    def predict_task(self, X: pd.DataFrame) -> Prediction:
        if self.task is None:
            return predict_onnx_task(self.members[0], X)
        from metalearn.search.calibration import finish_prediction
        from metalearn.search.ensemble import combine_predictions

        pred = combine_predictions(self.task, [predict_onnx_task(m, X) for m in self.members], self.weights)
        return finish_prediction(pred, getattr(self, "temperature", 1.0), getattr(self, "threshold", None),
                                 getattr(self, "class_weights", None), getattr(self, "biases", None))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Predicted values, one column per target (a 1-d array for a single target)."""
        pred = self.predict_task(X)
        return pred.values[0] if pred.n_targets == 1 else np.column_stack(pred.values)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray | list[np.ndarray | None]:
        """Class probabilities: an array for one class target, a list per target otherwise."""
        pred = self.predict_task(X)
        if pred.n_targets == 1:
            if pred.probas[0] is None:
                raise AttributeError("predict_proba needs a class target; this model predicts a regression")
            return pred.probas[0]
        return list(pred.probas)

    def __repr__(self) -> str:
        kinds = ", ".join(type(m).__name__ for m in self.members)
        return f"OnnxTaskModel({kinds})"
