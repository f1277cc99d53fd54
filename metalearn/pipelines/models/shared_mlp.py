"""A hard-parameter-sharing multi-task neural network in numpy.

One shared trunk of dense layers (ReLU or tanh) feeds one head per target: a softmax head trained with
cross-entropy for a class target, a linear head trained with squared error on the standardised target
for a regression target. The heads' losses are averaged (equal weights unless ``loss_weights`` is
given) and the whole network is trained jointly with Adam on mini-batches, with L2 weight decay and
early stopping on a held-out validation split (the best weights are kept). Missing target values (NaN)
are ignored by their head only, so rows with some targets missing still train the others.

The maths lives in :func:`loss_and_grads` (a pure function of the flat parameter list) so that it can be
checked against finite differences.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from metalearn.pipelines.models.adaptive import DEFAULT_BUDGET, mlp_epoch_cap

ACTIVATIONS = ("relu", "tanh")
CLASS_KINDS = ("binary", "multiclass")


def _activate(z: np.ndarray, activation: str) -> np.ndarray:
    if activation == "relu":
        return np.maximum(z, 0.0)
    if activation == "tanh":
        return np.tanh(z)
    raise ValueError(f"unknown activation {activation!r}; use one of {list(ACTIVATIONS)}")


def _activation_grad(z: np.ndarray, a: np.ndarray, activation: str) -> np.ndarray:
    if activation == "relu":
        return (z > 0.0).astype(z.dtype)
    return 1.0 - a * a


def init_params(
    n_inputs: int,
    hidden: Sequence[int],
    head_sizes: Sequence[int],
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """Glorot-uniform weights, zero biases: ``[W1, b1, ..., WL, bL, V1, c1, ..., VT, cT]``."""
    params: list[np.ndarray] = []
    fan_in = n_inputs
    for width in hidden:
        bound = math.sqrt(6.0 / (fan_in + width))
        params += [rng.uniform(-bound, bound, size=(fan_in, width)), np.zeros(width)]
        fan_in = width
    for size in head_sizes:
        bound = math.sqrt(6.0 / (fan_in + size))
        params += [rng.uniform(-bound, bound, size=(fan_in, size)), np.zeros(size)]
    return params


def trunk_forward(
    params: Sequence[np.ndarray], X: np.ndarray, n_hidden: int, activation: str
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Pre-activations ``zs`` and activations ``acts`` (``acts[0]`` is ``X``) of the shared trunk."""
    acts = [X]
    zs = []
    h = X
    for layer in range(n_hidden):
        z = h @ params[2 * layer] + params[2 * layer + 1]
        h = _activate(z, activation)
        zs.append(z)
        acts.append(h)
    return zs, acts


def _softmax(o: np.ndarray) -> np.ndarray:
    o = o - o.max(axis=1, keepdims=True)
    e = np.exp(o)
    return e / e.sum(axis=1, keepdims=True)


def loss_and_grads(
    params: Sequence[np.ndarray],
    X: np.ndarray,
    Y: np.ndarray,
    head_kinds: Sequence[str],
    n_hidden: int,
    activation: str,
    alpha: float,
    weights: Sequence[float],
    need_grads: bool = True,
) -> tuple[float, list[np.ndarray]]:
    """The joint loss on a batch and its gradient with respect to every parameter.

    ``Y[:, t]`` holds integer class codes for a class head (``head_kinds[t] == "class"``) or the
    standardised value for a regression head; NaN means "missing, ignore". Loss =
    ``sum_t weights[t] * loss_t + 0.5 * alpha * ||weights||^2 / n`` where ``loss_t`` is the mean
    cross-entropy (class) or half the mean squared error (regression) over the rows where target ``t``
    is present, and the penalty covers every weight matrix (not the biases).
    """
    n = X.shape[0]
    zs, acts = trunk_forward(params, X, n_hidden, activation)
    h = acts[-1]
    loss = 0.0
    head0 = 2 * n_hidden
    grads: list[np.ndarray] = [np.zeros_like(p) for p in params] if need_grads else []
    dh = np.zeros_like(h) if need_grads else h
    for t, kind in enumerate(head_kinds):
        V, c = params[head0 + 2 * t], params[head0 + 2 * t + 1]
        present = ~np.isnan(Y[:, t])
        m = int(present.sum())
        if m == 0:
            continue
        hp = h[present]
        out = hp @ V + c
        if kind == "class":
            codes = Y[present, t].astype(np.int64)
            probs = _softmax(out)
            picked = np.clip(probs[np.arange(m), codes], 1e-300, None)
            loss += weights[t] * float(-np.log(picked).mean())
            if need_grads:
                d_out = probs
                d_out[np.arange(m), codes] -= 1.0
                d_out *= weights[t] / m
        else:
            diff = out[:, 0] - Y[present, t]
            loss += weights[t] * 0.5 * float(np.mean(diff * diff))
            if need_grads:
                d_out = (weights[t] / m) * diff[:, None]
        if need_grads:
            grads[head0 + 2 * t] = hp.T @ d_out
            grads[head0 + 2 * t + 1] = d_out.sum(axis=0)
            dh[present] += d_out @ V.T
    if alpha > 0:
        sq = sum(float(np.sum(params[i] * params[i])) for i in range(0, len(params), 2))
        loss += 0.5 * alpha * sq / n
    if not need_grads:
        return loss, []
    for layer in range(n_hidden - 1, -1, -1):
        dz = dh * _activation_grad(zs[layer], acts[layer + 1], activation)
        grads[2 * layer] = acts[layer].T @ dz
        grads[2 * layer + 1] = dz.sum(axis=0)
        if layer > 0:
            dh = dz @ params[2 * layer].T
    if alpha > 0:
        for i in range(0, len(params), 2):
            grads[i] += (alpha / n) * params[i]
    return loss, grads


class SharedTrunkMLP(BaseEstimator):
    """Multi-task MLP with one shared trunk and one head per target (see the module docstring).

    ``fit(X, Y)``: ``X`` a float matrix; ``Y`` an ``(n, T)`` matrix where a column whose
    ``target_kinds`` entry is ``binary``/``multiclass`` holds integer class codes ``0..K-1`` and a
    ``regression`` column holds numbers; NaN marks a missing value. ``predict_heads(X)`` gives per target
    the ``(n, K)`` class probabilities or the ``(n,)`` predicted values (in the original units).
    """

    def __init__(
        self,
        target_kinds: Sequence[str] = (),
        hidden_layer_sizes: Sequence[int] = (64,),
        activation: str = "relu",
        alpha: float = 1e-4,
        learning_rate_init: float = 1e-3,
        batch_size: int = 64,
        max_epochs: int = 200,
        early_stopping: bool = True,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        loss_weights: Sequence[float] | None = None,
        budget: float = DEFAULT_BUDGET,
        random_state: int = 0,
    ) -> None:
        self.target_kinds = target_kinds
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.alpha = alpha
        self.learning_rate_init = learning_rate_init
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.loss_weights = loss_weights
        self.budget = budget
        self.random_state = random_state

    def _loss(self, params: Sequence[np.ndarray], X: np.ndarray, Y: np.ndarray, alpha: float) -> float:
        loss, _ = loss_and_grads(
            params, X, Y, self.head_kinds_, len(self.hidden_), self.activation, alpha, self.weights_, False
        )
        return loss

    def fit(self, X: Any, Y: Any) -> SharedTrunkMLP:
        X = np.asarray(X, dtype=np.float64)
        Y = np.array(Y, dtype=np.float64, copy=True)
        if Y.ndim == 1:
            Y = Y[:, None]
        kinds = [str(k) for k in self.target_kinds]
        if len(kinds) != Y.shape[1]:
            raise ValueError(f"target_kinds has {len(kinds)} entries but Y has {Y.shape[1]} columns")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; use one of {list(ACTIVATIONS)}")
        n, p = X.shape
        rng = np.random.default_rng(self.random_state)
        self.head_kinds_ = ["class" if k in CLASS_KINDS else "regression" for k in kinds]
        self.head_sizes_: list[int] = []
        self.y_mean_ = np.zeros(Y.shape[1])
        self.y_scale_ = np.ones(Y.shape[1])
        for t, kind in enumerate(self.head_kinds_):
            col = Y[:, t]
            present = col[~np.isnan(col)]
            if kind == "class":
                self.head_sizes_.append(int(present.max()) + 1 if present.size else 1)
            else:
                self.head_sizes_.append(1)
                if present.size:
                    self.y_mean_[t] = float(present.mean())
                    sd = float(present.std())
                    self.y_scale_[t] = sd if sd > 1e-12 else 1.0
                Y[:, t] = (col - self.y_mean_[t]) / self.y_scale_[t]
        weights = np.ones(Y.shape[1]) if self.loss_weights is None else np.asarray(self.loss_weights, float)
        self.weights_ = list(weights / weights.sum())
        self.hidden_ = [int(h) for h in self.hidden_layer_sizes]

        use_val = bool(self.early_stopping) and n >= 20
        if use_val:
            perm = rng.permutation(n)
            n_val = max(2, round(self.validation_fraction * n))
            val_idx, train_idx = perm[:n_val], perm[n_val:]
        else:
            train_idx = val_idx = np.arange(n)
        X_tr, Y_tr = X[train_idx], Y[train_idx]
        X_va, Y_va = X[val_idx], Y[val_idx]
        n_tr = X_tr.shape[0]
        bs = int(max(1, min(int(self.batch_size), n_tr)))
        out_units = sum(self.head_sizes_)
        epochs = min(
            int(self.max_epochs), mlp_epoch_cap(n_tr, p, tuple(self.hidden_), out_units, bs, self.budget)
        )

        params = init_params(p, self.hidden_, self.head_sizes_, rng)
        m_state = [np.zeros_like(q) for q in params]
        v_state = [np.zeros_like(q) for q in params]
        beta1, beta2, eps, lr = 0.9, 0.999, 1e-8, float(self.learning_rate_init)
        step = 0
        best = math.inf
        best_params = [q.copy() for q in params]
        stall = 0
        self.loss_curve_: list[float] = []
        self.validation_curve_: list[float] = []
        n_layers = len(self.hidden_)
        epoch = 0
        with np.errstate(over="ignore", invalid="ignore"):
            for epoch in range(1, epochs + 1):  # noqa: B007 - used after the loop
                order = rng.permutation(n_tr)
                total = 0.0
                for start in range(0, n_tr, bs):
                    batch = order[start : start + bs]
                    loss, grads = loss_and_grads(
                        params,
                        X_tr[batch],
                        Y_tr[batch],
                        self.head_kinds_,
                        n_layers,
                        self.activation,
                        float(self.alpha),
                        self.weights_,
                    )
                    total += loss * len(batch)
                    step += 1
                    corr1 = 1.0 - beta1**step
                    corr2 = 1.0 - beta2**step
                    for q, g, m, v in zip(params, grads, m_state, v_state, strict=True):
                        m *= beta1
                        m += (1.0 - beta1) * g
                        v *= beta2
                        v += (1.0 - beta2) * g * g
                        q -= lr * (m / corr1) / (np.sqrt(v / corr2) + eps)
                train_loss = total / n_tr
                self.loss_curve_.append(train_loss)
                score = self._loss(params, X_va, Y_va, 0.0) if use_val else train_loss
                self.validation_curve_.append(score)
                if not math.isfinite(score) or not math.isfinite(train_loss):
                    warnings.warn(
                        "shared MLP diverged; keeping the best weights so far", RuntimeWarning, stacklevel=2
                    )
                    break
                if score < best - self.tol:
                    best = score
                    best_params = [q.copy() for q in params]
                    stall = 0
                else:
                    stall += 1
                    if stall >= self.n_iter_no_change:
                        break
        self.params_ = best_params
        self.n_epochs_ = epoch
        self.max_epochs_ = epochs
        self.best_loss_ = best
        self.n_features_in_ = p
        return self

    def predict_heads(self, X: Any) -> list[np.ndarray]:
        check_is_fitted(self, "params_")
        X = np.asarray(X, dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            _, acts = trunk_forward(self.params_, X, len(self.hidden_), self.activation)
            h = acts[-1]
            head0 = 2 * len(self.hidden_)
            outs: list[np.ndarray] = []
            for t, kind in enumerate(self.head_kinds_):
                o = h @ self.params_[head0 + 2 * t] + self.params_[head0 + 2 * t + 1]
                if kind == "class":
                    outs.append(_softmax(o))
                else:
                    outs.append(o[:, 0] * self.y_scale_[t] + self.y_mean_[t])
        return outs
