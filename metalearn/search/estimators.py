"""The scikit-learn estimators: a warm-started search in ``fit``, the refit best pipeline in ``predict``.

- :class:`MetaLearnClassifier` (``ClassifierMixin``) — ``y`` holds class labels, whatever they look
  like: one label column (binary or multiclass by its number of classes; integer codes with many
  values stay classes, the kind is passed to the search, never inferred) or 0/1 indicator columns
  (multilabel). ``predict_proba``, ``classes_``, ``score`` = accuracy.
- :class:`MetaLearnRegressor` (``RegressorMixin``) — ``y`` holds numbers: one column (regression) or
  several (multitarget). No ``predict_proba``; ``score`` = R².
- :class:`MetaLearnEstimator` — every task kind, inferred from ``y`` (or given as ``kind``), including
  multitask (label and numeric targets together); ``predict_proba`` only when a target is a class
  target; ``score`` = accuracy / R² per target, averaged.

**The knowledge base.** ``kb=None`` (the default) searches with a private in-memory KB seeded from the
shipped snapshot and discarded after ``fit``: nothing is written to any file, and two fits on the same
data both search. ``kb=PATH`` opts in to a KB file (created and seeded when missing; e.g.
``metalearn.kb.default_kb_path()`` for the CLI's per-user KB): ``fit`` writes the dataset, its
meta-features, every trial and the search into it, so the data becomes a neighbour for later
recommendations. Even then ``fit`` runs ``n_trials`` new trials unless ``resume=True``, which counts
the KB's earlier runs on the same data toward ``n_trials`` (and tells them to SMAC) as ``metalearn
optimize`` does.

The search parameters are the ones :mod:`metalearn.search.settings` declares for the estimator (their
defaults and help texts are listed in each class's docstring).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import DataConversionWarning
from sklearn.metrics import r2_score
from sklearn.utils import ClassifierTags, RegressorTags, Tags
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from metalearn.data.datetimes import apply_date_columns
from metalearn.data.errors import InputError, SearchError
from metalearn.data.task import SINGLE_KINDS, TaskKind
from metalearn.pipelines.models.preprocessing import category_string
from metalearn.pipelines.models.task_models import target_classes
from metalearn.pipelines.signature import Signature, checked_rows
from metalearn.search.automl import optimize
from metalearn.search.settings import SearchSettings, defaults, params

__all__ = ["MetaLearnClassifier", "MetaLearnEstimator", "MetaLearnRegressor"]

_DEFAULTS = defaults("estimator")
#: training rows ``fit`` keeps for :meth:`_SearchEstimator.explain` to start from (a random sample)
BACKGROUND_ROWS = 100
_CLASS_KINDS = frozenset({TaskKind.BINARY, TaskKind.MULTICLASS, TaskKind.MULTILABEL})
_REGRESSION_KINDS = frozenset({TaskKind.REGRESSION, TaskKind.MULTITARGET})


def _features(X: Any) -> pd.DataFrame:
    """``X`` as a frame: a DataFrame keeps its columns (names as text), an array-like is checked like
    scikit-learn checks it (2-D, at least 2 rows, no infinity, no sparse or complex data) and its
    columns are named ``x0, x1, ...``."""
    if isinstance(X, pd.DataFrame):
        frame = X.copy(deep=False)
        frame.columns = [str(c) for c in X.columns]
        frame = frame.reset_index(drop=True)
    else:
        arr = check_array(X, dtype=None, ensure_all_finite="allow-nan", ensure_min_samples=2)
        frame = pd.DataFrame(arr).add_prefix("x")
    for name in frame.select_dtypes(include="object").columns:
        bad = frame[name].map(lambda v: not pd.api.types.is_scalar(v))
        if bad.any():
            value = frame[name][bad].iloc[0]
            raise TypeError(f"argument must be a string or a number, but feature {name!r} holds a "
                            f"{type(value).__name__} ({value!r:.40})")
    return frame


def _targets(y: Any, taken: set[str]) -> pd.DataFrame:
    """``y`` as a frame of target columns whose names differ from the feature names ``taken``."""
    if isinstance(y, pd.DataFrame):
        frame = y.copy(deep=False)
        frame.columns = [str(c) for c in y.columns]
    else:
        values = np.asarray(y)
        if values.ndim == 1:
            name = getattr(y, "name", None)
            frame = pd.DataFrame({str(name) if name is not None else "target": values})
        elif values.ndim == 2:
            frame = pd.DataFrame(values, columns=_target_names(values.shape[1]))
        else:
            raise InputError(f"y must be one target column or a 2-D table of targets, got {values.ndim} dimensions")
    renamed = []
    for name in frame.columns:
        while name in taken:
            name = f"{name}_target"
        renamed.append(name)
    frame.columns = renamed
    return frame.reset_index(drop=True)


def _target_names(n: int) -> list[str]:
    """The names :func:`_targets` gives the columns of a 2-D array ``y`` of ``n`` targets."""
    return [f"y{i}" for i in range(n)]


def _labels_given(Y: pd.DataFrame, classes: Sequence[Any]) -> list[dict[Any, Any] | None]:
    """Per target, the model's class -> the label as ``fit`` was given it, where they differ (a boolean ``y`` is
    trained on as ``'False'`` / ``'True'``: predictions and ``classes_`` give the booleans back, as scikit-learn
    does); None for a target whose classes are its labels, or a numeric one."""
    out: list[dict[Any, Any] | None] = []
    for i, cls in enumerate(classes):
        if cls is None:
            out.append(None)
            continue
        given = {category_string(v): v for v in pd.unique(Y.iloc[:, i].dropna())}
        back = {c: given.get(category_string(c), c) for c in cls}
        same = all(type(b) is type(c) or (isinstance(b, str) and isinstance(c, str)) for c, b in back.items())
        out.append(None if same else back)
    return out


class _SearchEstimator(BaseEstimator):
    """What the three estimators share: the parameters, ``fit`` (one search) and ``predict``."""

    def __init__(
        self,
        metric: str | None = None,
        n_trials: int | None = _DEFAULTS["n_trials"],
        time_limit: float | None = _DEFAULTS["time_limit"],
        trial_time_limit: float | None = _DEFAULTS["trial_time_limit"],
        warm_start: bool = _DEFAULTS["warm_start"],
        strategy: str | None = _DEFAULTS["strategy"],
        n_warm: int = _DEFAULTS["n_warm"],
        resume: bool = _DEFAULTS["resume"],
        n_folds: int = _DEFAULTS["n_folds"],
        kb: str | Path | None = None,
        seed: int = _DEFAULTS["seed"],
        ensemble: bool = _DEFAULTS["ensemble"],
        calibrate: bool = _DEFAULTS["calibrate"],
        group_repeats: bool = _DEFAULTS["group_repeats"],
    ) -> None:
        self.metric = metric
        self.n_trials = n_trials
        self.time_limit = time_limit
        self.trial_time_limit = trial_time_limit
        self.warm_start = warm_start
        self.strategy = strategy
        self.n_warm = n_warm
        self.resume = resume
        self.n_folds = n_folds
        self.kb = kb
        self.seed = seed
        self.ensemble = ensemble
        self.calibrate = calibrate
        self.group_repeats = group_repeats

    # the task kind of ``Y`` (None: inferred from the data)
    def _kind_of(self, Y: pd.DataFrame) -> str | None:
        raise NotImplementedError

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # the pipelines impute
        tags.target_tags.required = True
        tags.target_tags.multi_output = True
        tags.non_deterministic = self.time_limit is not None  # a wall-clock budget
        return tags

    def fit(self, X: Any, y: Any) -> Any:
        """Search on ``(X, y)`` (``n_trials`` trials; unset, until ``time_limit``), then refit the final model."""
        from metalearn.data.validation import check_target_values, prepare_frame

        if y is None:
            raise InputError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        if isinstance(X, pd.DataFrame) and X.columns.duplicated().any():  # (narwhals' DuplicateError otherwise)
            repeated = sorted({str(c) for c in X.columns[X.columns.duplicated()]})
            raise InputError(f"X repeats column(s) {', '.join(map(repr, repeated))}: give each column a name of its own")
        validate_data(self, X, reset=True, skip_check_array=True)  # n_features_in_, feature_names_in_
        features = _features(X)
        y = y if isinstance(y, pd.Series | pd.DataFrame) else np.asarray(y)
        if not self.__sklearn_tags__().target_tags.multi_output and y.ndim == 2 and y.shape[1] == 1:
            warnings.warn("A column-vector y was passed when a 1d array was expected. Please change the shape "
                          "of y to (n_samples, ), for example using ravel().", DataConversionWarning, stacklevel=2)
            y = np.ravel(y)
        Y = _targets(y, set(features.columns))
        if len(features) != len(Y):
            raise InputError(f"X has {len(features)} rows but y has {len(Y)}; pass one target row per sample")
        check_target_values(Y, "y")  # before scikit-learn's label checks ("Unknown label type" for a missing label)
        kind = self._kind_of(Y)
        frame = pd.concat([features, Y], axis=1)
        ds = prepare_frame(frame, list(Y.columns), kind=kind, metric=self.metric, name="estimator-fit",
                           origin=f"python:{type(self).__name__}")
        for note in ds.notes:  # what the loading did that a user may not expect (a date column with typos, an id)
            warnings.warn(note, UserWarning, stacklevel=2)
        settings = SearchSettings.from_params(**{name: getattr(self, name) for name in _DEFAULTS})
        if self.kb is None:  # a private in-memory KB, seeded only when the search starts from it
            from metalearn.kb.shipped import open_default_kb

            store = open_default_kb(":memory:", seed_from_shipped=settings.warm_start and settings.n_warm > 0)
            try:
                outcome = optimize(ds, kb=store, settings=settings)
            finally:
                store.close()
        else:
            outcome = optimize(ds, kb=self.kb, settings=settings)
        if outcome.model is None:
            reason = (outcome.summary.get("model") or {}).get("missing_reason") or "no configuration succeeded"
            raise SearchError(f"{reason}; raise n_trials / trial_time_limit / time_limit or check the data")
        for text in outcome.summary.get("warnings") or []:
            warnings.warn(text, UserWarning, stacklevel=2)
        self.task_ = ds.task
        self.model_ = outcome.model
        self.best_config_ = outcome.result.best_values
        self.best_score_ = outcome.result.best_score
        self.search_ = outcome.summary
        self._columns = list(features.columns)
        self.dates_ = ds.dates  # date columns: turned into the model's numeric columns before it predicts
        self.signature_ = Signature.of(ds)  # what predict's rows are checked against
        # the rows explanations start from (explain): a sample of the training features
        self.background_ = features.iloc[np.sort(np.random.default_rng(self.seed).choice(
            len(features), min(len(features), BACKGROUND_ROWS), replace=False))].reset_index(drop=True)
        # the fitted model's own classes (each class target's, in predict_proba's order), never a prediction's
        has_classes = any(k is not TaskKind.REGRESSION for k in ds.task.target_kinds)
        classes: list[Any] = target_classes(outcome.model) if has_classes else [None] * ds.task.n_targets
        self.labels_given_ = _labels_given(Y, classes)
        classes = [c if back is None else np.asarray([back[k] for k in c])
                   for c, back in zip(classes, self.labels_given_, strict=True)]  # fmt: skip
        if all(c is not None for c in classes):  # every target is a class target
            self.classes_ = classes[0] if len(classes) == 1 else list(classes)
        elif hasattr(self, "classes_"):
            del self.classes_
        return self

    def leaderboard(self, X: Any = None, y: Any = None) -> pd.DataFrame:
        """Every pipeline the search in ``fit`` scored, best first: its validation score, time, origin and
        weight in the model (:func:`metalearn.search.leaderboard.leaderboard`). With labelled rows ``(X, y)``
        (held-out data, as AutoGluon's ``leaderboard(test_data)``) a ``score_test`` column holds the test
        score of each pipeline the final model holds (refit on all the data; NaN for the others, which were
        not refit) and ``attrs["score_test"]`` the final model's own."""
        from metalearn.data.metrics import score
        from metalearn.search.leaderboard import leaderboard

        check_is_fitted(self, "search_")
        board = leaderboard(self.search_)
        if X is None and y is None:
            return board
        if X is None or y is None:
            raise InputError("pass both X and y (labelled held-out rows) for test scores, or neither")
        frame = self._checked_frame(X)
        Y = self._labels(y, len(frame))
        rows = self._model_input(frame)
        members = getattr(self.model_, "members", None)
        pipelines = (dict(zip(self.model_.config_ids, members, strict=True)) if members is not None
                     else {str((self.search_.get("model") or {}).get("config_id")): self.model_})
        own = float(score(self.task_, Y, self.model_.predict_task(rows)))
        # one pipeline wrapped with its calibration (a decision threshold, a temperature) is the model: its score
        tests = ({cid: own for cid in pipelines} if len(pipelines) == 1 else
                 {cid: float(score(self.task_, Y, m.predict_task(rows))) for cid, m in pipelines.items()})
        board["score_test"] = board["config_id"].map(tests).astype(float)
        board.attrs["score_test"] = own
        return board

    def _checked_frame(self, X: Any) -> pd.DataFrame:
        """``X`` checked as ``predict`` checks it (the fitted features), as a frame of the fitted columns."""
        if not isinstance(X, pd.DataFrame):
            X = check_array(X, dtype=None, ensure_all_finite="allow-nan")  # 2-D, dense, no infinity
        validate_data(self, X, reset=False, skip_check_array=True)  # the number and names of the features
        return _features(X) if isinstance(X, pd.DataFrame) else pd.DataFrame(X, columns=self._columns)

    def evaluate(self, X: Any, y: Any) -> dict[str, float]:
        """Every metric of the fitted task's kind on labelled rows ``(X, y)``, e.g. a held-out test set
        (AutoGluon's ``evaluate``): the search's own metric and the others, each in its own direction (NaN
        where a metric is undefined on these rows)."""
        from metalearn.data.metrics import compute_metrics

        pred = self._prediction(X)
        return compute_metrics(self.task_, self._labels(y, pred.n_rows), pred)

    def _labels(self, y: Any, n_rows: int, check_classes: bool = True) -> pd.DataFrame:
        """``y`` as the fitted task's target columns (matched by name when they are named), checked against
        ``n_rows`` rows and, with ``check_classes``, the classes the model was trained on (``score`` counts an
        unknown class as a wrong prediction, as scikit-learn does)."""
        y = y if isinstance(y, pd.Series | pd.DataFrame) else np.asarray(y)
        Y = _targets(y, set(self._columns))
        if Y.shape[1] != self.task_.n_targets:
            raise InputError(f"y has {Y.shape[1]} target column(s) but the model predicts {self.task_.n_targets}: "
                             "pass the same targets as in fit")
        if len(Y) != n_rows:
            raise InputError(f"X has {n_rows} rows but y has {len(Y)}; pass one target row per sample")
        signature = getattr(self, "signature_", None)
        if signature is None:
            return Y
        fitted = [t.name for t in signature.targets]
        if isinstance(y, pd.DataFrame) and list(Y.columns) != fitted and Y.shape[1] > 1:
            # named target columns are matched by name (by position they were scored against other targets)
            if set(Y.columns) == set(fitted):
                Y = Y[fitted]
            elif fitted != _target_names(len(fitted)) and not all(isinstance(c, int | np.integer) for c in y.columns):
                raise InputError(f"y's columns {list(map(str, y.columns))} are not the fitted targets {fitted}: "
                                 "name them as in fit (or pass an array, matched by position)")
        Y.columns = fitted  # the labels as given in fit -> the classes the model predicts
        Y = signature.labels_as_trained(Y)
        if check_classes and (problem := signature.labels_problem(Y)) is not None:
            raise InputError(f"y: {problem}")
        return Y

    def feature_importance(
        self,
        X: Any,
        y: Any,
        *,
        metric: str | None = None,
        n_repeats: int = 5,
        max_rows: int | None = 5000,
        time_limit: float | None = None,
        seed: int = 0,
    ) -> pd.DataFrame:
        """Each feature's permutation importance for the fitted model on labelled rows ``(X, y)`` — pass
        held-out data (AutoGluon's ``feature_importance``): the mean drop of the search's metric (or
        ``metric``) over ``n_repeats`` shuffles of the feature, its standard deviation, a one-sided p-value
        and a 99 % interval, most important first (:func:`metalearn.pipelines.importance.permutation_importance`:
        ``max_rows`` sampled rows, ``time_limit`` seconds end the shuffles after the first)."""
        from metalearn.pipelines.importance import permutation_importance

        check_is_fitted(self, "model_")
        frame = self._checked_frame(X)
        Y = self._labels(y, len(frame))
        return permutation_importance(
            self._quiet_predictor(frame), self.task_, frame, Y,
            metric=metric or self.task_.metric, n_repeats=n_repeats, max_rows=max_rows, time_limit=time_limit,
            seed=seed,
        )

    def explain(self, X: Any, *, n_permutations: int = 8, background: int = 16, seed: int = 0) -> pd.DataFrame:
        """Why the model predicts what it does for each row of ``X``: each feature's Shapley value
        (:func:`metalearn.pipelines.explain.shapley_values`) against ``background`` rows of a sample of the
        training data kept by ``fit``. One line per row, target and output (a class's probability, or the
        value), indexed by ``row``, ``target`` and ``output``: ``base`` (the output's mean over the background
        rows), ``prediction`` (its value on the row) and one column per feature; the feature columns add up to
        ``prediction - base``. Cost: rows x background x orders x (features + 1) predicted rows."""
        from metalearn.pipelines.explain import shapley_values

        check_is_fitted(self, "model_")
        frame = self._checked_frame(X)
        found = shapley_values(self._quiet_predictor(frame), self.task_, frame, self.background_, n_permutations=n_permutations,
                               max_background=background, seed=seed)
        lines = []
        for i, e in enumerate(found):
            for t, target in enumerate(e.targets):
                for k, output in enumerate(e.outputs[t]):
                    lines.append({"row": i, "target": target, "output": output, "base": float(e.base[t][k]),
                                  "prediction": float(e.prediction[t][k]),
                                  **dict(zip(e.features, e.values[t][k].tolist(), strict=True))})
        return pd.DataFrame(lines).set_index(["row", "target", "output"])

    def _prediction(self, X: Any) -> Any:
        check_is_fitted(self, "model_")
        return self._predict_frame(self._checked_frame(X))

    def _quiet_predictor(self, frame: pd.DataFrame) -> Callable[[pd.DataFrame], Any]:
        """:meth:`_predict_frame` for the many predictions of shuffled or mixed copies of ``frame`` (importance,
        explanations): ``frame``'s own warnings (an unseen category) are given once, here, not once per copy."""
        self._model_input(frame)

        def predict(rows: pd.DataFrame) -> Any:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                return self._predict_frame(rows)

        return predict

    def _predict_frame(self, frame: pd.DataFrame) -> Any:
        """The model's prediction of a checked frame of the fitted columns (dates turned into their numbers)."""
        return self.model_.predict_task(self._model_input(frame))

    def _model_input(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` checked against the training schema (:class:`~metalearn.pipelines.signature.Signature`, as the
        registry checks a registered model's inputs: a missing, extra or mistyped column — text where fit had
        numbers, a value beyond float32 — is an error naming it, an unseen category a warning) and made the
        model's input: the training order and types, date columns turned into the numbers the model was fit on."""
        signature = getattr(self, "signature_", None)
        if signature is not None:
            return checked_rows(signature, frame, "X", hint="as fit was given them")
        # fitted before stop 52 (unpickled): the date columns alone, as then
        frame, not_dates = apply_date_columns(frame, getattr(self, "dates_", ()))
        if not_dates:
            name, values = next(iter(not_dates.items()))
            raise InputError(f"column {name!r} held dates in fit, got {values[0]!r}; send dates (e.g. 2024-03-01)")
        return frame

    def predict(self, X: Any) -> np.ndarray:
        """Predicted labels / values (labels as ``fit`` was given them): shape (n,) for one target, (n, n_targets)
        for several."""
        pred = self._prediction(X)
        backs = getattr(self, "labels_given_", None) or [None] * pred.n_targets
        values = [np.asarray(v) if back is None else np.asarray([back.get(k, k) for k in v])
                  for v, back in zip(pred.values, backs, strict=True)]  # fmt: skip
        if pred.n_targets == 1:
            return values[0]
        return np.column_stack(values)

    def _probas(self, X: Any) -> np.ndarray | list[np.ndarray]:
        pred = self._prediction(X)
        probas = [p for p in pred.probas if p is not None]
        if not probas:
            raise InputError("predict_proba needs a classification task; this estimator was fit for regression")
        return probas[0] if pred.n_targets == 1 else probas


class MetaLearnClassifier(ClassifierMixin, _SearchEstimator):
    """A scikit-learn classifier that runs a warm-started search in ``fit`` (see :mod:`metalearn.search.estimators`
    for the knowledge base it uses) and predicts with the refit best pipeline.

    ``y`` holds class labels: one column (binary or multiclass, decided by the number of classes, never
    by how the labels look) or several 0/1 indicator columns (multilabel). ``metric`` overrides the
    kind's default metric. ``kb`` is None (a private in-memory KB seeded from the shipped snapshot:
    nothing is written, every fit searches) or a KB file that ``fit`` writes its trials to. The search
    parameters (declared in :mod:`metalearn.search.settings`):
    """

    def _kind_of(self, Y: pd.DataFrame) -> str | None:
        y = Y.iloc[:, 0] if Y.shape[1] == 1 else Y
        mixed = [str(c) for c in Y.columns if len({type(v).__name__ for v in Y[c].dropna()}) > 1]
        if mixed and all(Y[c].dtype == object for c in mixed):
            kinds = sorted({type(v).__name__ for c in mixed for v in Y[c].dropna()})
            raise InputError(f"y's labels mix types ({', '.join(kinds)}): give every label as the same type "
                             "(all text, or all numbers)")
        check_classification_targets(y)  # "Unknown label type" for continuous values
        target_type = type_of_target(y)
        if Y.shape[1] > 1:
            if target_type != "multilabel-indicator":
                raise InputError(
                    f"{type(self).__name__} takes one label column or 0/1 indicator columns (multilabel), "
                    f"got {Y.shape[1]} columns of type {target_type}; use MetaLearnEstimator(kind='multitask') "
                    "for several label columns"
                )
            return str(TaskKind.MULTILABEL)
        return str(TaskKind.BINARY if Y.iloc[:, 0].nunique(dropna=True) <= 2 else TaskKind.MULTICLASS)

    def predict_proba(self, X: Any) -> np.ndarray | list[np.ndarray]:
        """Class probabilities, columns in the order of ``classes_`` (one array per label for multilabel)."""
        return self._probas(X)


class MetaLearnRegressor(RegressorMixin, _SearchEstimator):
    """A scikit-learn regressor that runs a warm-started search in ``fit`` (see :mod:`metalearn.search.estimators`
    for the knowledge base it uses) and predicts with the refit best pipeline.

    ``y`` holds numbers: one column (regression) or several (multitarget), whatever they look like
    (integer counts stay numbers). ``metric`` overrides the kind's default metric. ``kb`` is None (a
    private in-memory KB seeded from the shipped snapshot: nothing is written, every fit searches) or a
    KB file that ``fit`` writes its trials to. The search parameters (declared in
    :mod:`metalearn.search.settings`):
    """

    def _kind_of(self, Y: pd.DataFrame) -> str | None:
        check_array(Y.to_numpy(), dtype="numeric", ensure_all_finite="allow-nan", ensure_2d=False,
                    input_name="y")
        return str(TaskKind.REGRESSION if Y.shape[1] == 1 else TaskKind.MULTITARGET)


class MetaLearnEstimator(_SearchEstimator):
    """A scikit-learn estimator for every task kind that runs a warm-started search in ``fit`` (see
    :mod:`metalearn.search.estimators` for the knowledge base it uses) and predicts with the refit best
    pipeline. Pass ``y`` as a Series (one target) or a DataFrame (several, e.g. a multitask mix of label
    and numeric targets).

    ``kind`` overrides the inferred task kind (it also makes the estimator a classifier or a regressor
    for :func:`sklearn.base.is_classifier` / :func:`~sklearn.base.is_regressor`); ``metric`` overrides
    the kind's default metric. ``predict_proba`` exists once fit on a class target (or before ``fit``
    when ``kind`` does not rule it out). ``score`` is the accuracy of a class target or the R² of a
    numeric one, averaged over the targets. ``kb`` is None (a private in-memory KB seeded from the
    shipped snapshot: nothing is written, every fit searches) or a KB file that ``fit`` writes its
    trials to. Prefer :class:`MetaLearnClassifier` / :class:`MetaLearnRegressor` when the kind is known.
    The search parameters (declared in :mod:`metalearn.search.settings`):
    """

    def __init__(
        self,
        kind: str | None = None,
        metric: str | None = None,
        n_trials: int | None = _DEFAULTS["n_trials"],
        time_limit: float | None = _DEFAULTS["time_limit"],
        trial_time_limit: float | None = _DEFAULTS["trial_time_limit"],
        warm_start: bool = _DEFAULTS["warm_start"],
        strategy: str | None = _DEFAULTS["strategy"],
        n_warm: int = _DEFAULTS["n_warm"],
        resume: bool = _DEFAULTS["resume"],
        n_folds: int = _DEFAULTS["n_folds"],
        kb: str | Path | None = None,
        seed: int = _DEFAULTS["seed"],
        ensemble: bool = _DEFAULTS["ensemble"],
        calibrate: bool = _DEFAULTS["calibrate"],
        group_repeats: bool = _DEFAULTS["group_repeats"],
    ) -> None:
        super().__init__(metric=metric, n_trials=n_trials, time_limit=time_limit,
                         trial_time_limit=trial_time_limit, warm_start=warm_start, strategy=strategy,
                         n_warm=n_warm, resume=resume, n_folds=n_folds, kb=kb, seed=seed, ensemble=ensemble,
                         calibrate=calibrate, group_repeats=group_repeats)
        self.kind = kind

    def _kind_of(self, Y: pd.DataFrame) -> str | None:
        if self._given_kind() in _CLASS_KINDS:
            check_classification_targets(Y.iloc[:, 0] if Y.shape[1] == 1 else Y)
        return self.kind

    def _given_kind(self) -> TaskKind | None:
        try:
            return TaskKind(self.kind) if self.kind is not None else None
        except ValueError:
            return None

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        kind = self._given_kind()
        tags.target_tags.multi_output = kind is None or kind not in SINGLE_KINDS
        if kind in _CLASS_KINDS:
            tags.estimator_type, tags.classifier_tags = "classifier", ClassifierTags()
        elif kind in _REGRESSION_KINDS:
            tags.estimator_type, tags.regressor_tags = "regressor", RegressorTags()
        return tags

    def _has_probas(self) -> bool:
        if hasattr(self, "task_"):
            return any(k is not TaskKind.REGRESSION for k in self.task_.target_kinds)
        return self._given_kind() not in _REGRESSION_KINDS

    @available_if(_has_probas)
    def predict_proba(self, X: Any) -> np.ndarray | list[np.ndarray]:
        """Class probabilities of the class target (one array per class target when there are several)."""
        return self._probas(X)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Accuracy of a class target, R² of a numeric one; the mean over the targets for several."""
        pred = self._prediction(X)
        Y = self._labels(y, pred.n_rows, check_classes=False)
        weights = None if sample_weight is None else np.asarray(sample_weight, dtype=float)
        scores = [
            float(np.average(Y.iloc[:, i].to_numpy() == np.asarray(pred.values[i]), weights=weights))
            if k is not TaskKind.REGRESSION
            else r2_score(Y.iloc[:, i].to_numpy(dtype=float), np.asarray(pred.values[i], dtype=float),
                          sample_weight=weights)
            for i, k in enumerate(self.task_.target_kinds)
        ]
        return float(np.mean(scores))


def _document(cls: type) -> None:
    if cls.__doc__ is not None:  # None under python -OO
        cls.__doc__ = cls.__doc__.rstrip() + "\n\n" + "".join(
            f"    - ``{name}`` (default ``{_DEFAULTS[name]!r}``): {p.help}\n" for name, p in params("estimator").items()
        )


for _cls in (MetaLearnClassifier, MetaLearnRegressor, MetaLearnEstimator):
    _document(_cls)
