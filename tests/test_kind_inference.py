"""Kind inference from integer targets (issue 14 item 17) and the reason recorded for every target.

Integer class codes with more than 20 classes are multiclass when there are many rows per class;
integer counts with a long thin tail are regression even with few values; several count targets are
multitarget (not a multitask of classifiers); every inferred task says why each target has its kind.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metalearn.data.kinds import MAX_INTEGER_CLASSES, explain_target_kind, infer_task
from metalearn.data.loading import Corpus
from metalearn.data.task import Task, TaskKind
from metalearn.data.validation import prepare_frame

K = TaskKind


def letters_like(rng: np.random.Generator, n_rows: int = 5200, n_classes: int = 26) -> pd.Series:
    """26 classes coded 0..25, unequal but plentiful per class (as in UCI letter recognition)."""
    weights = rng.uniform(0.7, 1.3, n_classes)
    y = rng.choice(n_classes, size=n_rows, p=weights / weights.sum())
    return pd.Series(y, name="letter")


def test_26_classes_coded_0_to_25_are_multiclass() -> None:
    rng = np.random.default_rng(0)
    y = letters_like(rng)
    assert y.nunique() == 26 > MAX_INTEGER_CLASSES  # the old rule said regression
    kind, reason = explain_target_kind(y)
    assert kind is K.MULTICLASS
    assert "0..25" in reason and "class codes" in reason
    # through the loader: the target becomes a category column, the task multiclass with its reason
    X = pd.DataFrame({"f1": rng.normal(size=len(y)) + y, "f2": rng.normal(size=len(y))})
    ds = prepare_frame(pd.concat([X, y], axis=1), "letter", name="letters")
    assert ds.task.kind is K.MULTICLASS and ds.task.kind_reasons == (reason,)
    assert isinstance(ds.y["letter"].dtype, pd.CategoricalDtype) and len(ds.y["letter"].cat.categories) == 26
    # the same codes with few rows per class stay a quantity (old behaviour kept)
    assert explain_target_kind(pd.Series(np.arange(100) % 40))[0] is K.REGRESSION


@pytest.mark.parametrize(
    ("draw", "expected_max"),
    [
        (lambda rng: rng.poisson(1.8, 700), (7, 12)),  # events: values 0..8 or so
        (lambda rng: rng.negative_binomial(2, 0.4, 500), (12, 20)),  # over-dispersed counts 0..14
        (lambda rng: rng.negative_binomial(4, 0.4, 500), (18, 21)),  # 0..21 with 20 distinct values
    ],
)
def test_long_tailed_counts_are_regression(draw, expected_max: tuple[int, int]) -> None:
    rng = np.random.default_rng(3)
    y = pd.Series(draw(rng), name="events")
    assert expected_max[0] <= y.max() <= expected_max[1]
    assert y.nunique() <= MAX_INTEGER_CLASSES  # the old rule said multiclass
    kind, reason = explain_target_kind(y)
    assert kind is K.REGRESSION
    assert "count" in reason and f"0..{y.max()}" in reason
    assert infer_task(y).kind is K.REGRESSION


def test_several_count_targets_are_multitarget() -> None:
    """Counts of three kinds of event per row: one with a long tail, two short ones (0..3)."""
    rng = np.random.default_rng(5)
    rate = rng.gamma(2.0, 0.5, 600)
    y = pd.DataFrame(
        {
            "small": rng.poisson(0.3 * rate),
            "medium": rng.poisson(0.8 * rate),
            "large": rng.poisson(3.0 * rate),
        }
    )
    assert y["small"].nunique() <= 5
    task = infer_task(y)
    assert task.kind is K.MULTITARGET  # the old rule: a multitask of classifiers
    assert all(k is K.REGRESSION for k in task.target_kinds)
    assert len(task.kind_reasons) == 3 and "read as a count" in task.kind_reasons[0]


def test_class_codes_and_short_scales_stay_classes() -> None:
    rng = np.random.default_rng(1)
    assert infer_task(pd.Series(np.arange(60) % 5)).kind is K.MULTICLASS
    # a severity grade 0..4 with falling frequencies (as in the Cleveland heart data) stays classes
    grade = pd.Series(rng.choice(5, size=300, p=[0.54, 0.18, 0.12, 0.12, 0.04]), name="grade")
    assert infer_task(grade).kind is K.MULTICLASS
    # two 0/1 columns and a 0..2 column that are not counts: multitask as before
    mixed = pd.DataFrame(
        {"a": rng.integers(0, 2, 200), "b": rng.integers(0, 2, 200), "c": rng.integers(0, 3, 200)}
    )
    assert infer_task(mixed).kind is K.MULTITASK


def test_every_inferred_target_has_a_reason_and_reasons_do_not_change_equality() -> None:
    y = pd.DataFrame({"cls": ["a", "b", "c", "a"], "x": [0.5, 1.25, 2.0, 3.5], "f": [0, 1, 0, 1]})
    task = infer_task(y)
    assert task.kind is K.MULTITASK and len(task.kind_reasons) == 3
    assert "category" in task.kind_reasons[0] or "labels" in task.kind_reasons[0]
    assert "non-integer" in task.kind_reasons[1] and "two distinct values" in task.kind_reasons[2]
    lines = task.kind_report()
    assert lines[1].startswith("'x' (t1): regression - ")  # a multitask target's per-target metrics are t1:...
    plain = Task(task.kind, task.targets, task.target_kinds, task.metric)
    assert plain == task and hash(plain) == hash(task) and plain.kind_report()[0] == "'cls' (t0): multiclass"
    assert "kind_reasons" not in task.to_dict()
    given = infer_task(y[["x"]], kind="regression")
    assert given.kind_reasons == ("given as regression, checked against the data",)
    # a kind the source documents is not said to be the user's (it read "given as multiclass" for sklearn:wine)
    from metalearn.data.loading import load_dataset

    assert load_dataset("sklearn:wine").task.kind_reasons == (
        "scikit-learn's wine is documented as multiclass, checked against the data",)
    assert load_dataset("sklearn:wine", kind="multiclass").task.kind_reasons[0].startswith("given as multiclass")
    with pytest.raises(Exception, match="kind reasons"):
        Task(K.REGRESSION, ("x",), kind_reasons=("a", "b"))


def test_constant_column_takes_the_kind_of_the_other_targets() -> None:
    rng = np.random.default_rng(2)
    y = pd.DataFrame({"u": rng.normal(size=50), "v": rng.normal(size=50), "w": np.zeros(50)})
    task = infer_task(y)
    assert task.kind is K.MULTITARGET  # the old rule: multitask (w "binary")
    assert "constant" in task.kind_reasons[2]
    labels = pd.DataFrame({"a": rng.integers(0, 2, 50), "b": rng.integers(0, 2, 50), "rare": 0})
    assert infer_task(labels).kind is K.MULTILABEL


# ------------------------------------------------------------------------------------ the corpus

#: Datasets whose targets stay ambiguous from their values alone: short ordinal scales stored as
#: numbers (SWD 2..5, LEV 0..4), a U-shaped 1..10 score, a gappy 0..45 score, and ternary -1/0/1
#: control actions (edm) -- regression / multitarget in the manifest, classes by the rule.
AMBIGUOUS = {"1028_SWD", "1029_LEV", "523_analcatdata_neavote", "665_sleuth_case2002", "edm"}
#: Datasets the old rule (<= 20 integer values -> classes, more -> regression) got wrong and the new
#: one gets right: 23 classes coded 0..22, count targets, long rating scales.
FIXED = {"kddcup", "osales", "sf1", "wq", "1027_ESL", "1030_ERA", "519_vinnie"}


@pytest.mark.corpus
def test_corpus_kinds_inferred_from_the_stored_targets(corpus_dir: Path) -> None:
    """Inference from the raw stored targets (numbers stay numbers) agrees with the manifest on all
    but the documented ambiguous datasets (5 of 263; the old rule missed 12)."""
    corpus = Corpus(corpus_dir)
    wrong: dict[str, tuple[str, str]] = {}
    n = 0
    for entry in corpus.entries():
        try:
            y = pd.read_parquet(entry.file, columns=list(entry.targets))
        except (KeyError, ValueError) as err:  # pragma: no cover - a manifest row without its file
            pytest.fail(f"{entry.name}: {err}")
        task = infer_task(y)
        n += 1
        assert len(task.kind_reasons) == len(entry.targets)
        if task.kind is not entry.kind:
            wrong[entry.name] = (str(entry.kind), str(task.kind))
    assert n >= 250
    assert set(wrong) <= AMBIGUOUS, {k: v for k, v in wrong.items() if k not in AMBIGUOUS}
    assert not FIXED & set(wrong)
    assert json.dumps(sorted(wrong))  # listed for the report


def test_a_multilabel_request_of_non_0_1_targets_names_the_option_in_every_interface() -> None:
    # the message named only the CLI's --kind, also to a service or Python caller
    from metalearn.data.errors import TaskKindError

    rng = np.random.default_rng(0)
    y = pd.DataFrame({"a": rng.normal(size=40), "b": rng.normal(size=40)})
    with pytest.raises(TaskKindError, match=r"--kind multitarget \(kind= in Python and over HTTP\)"):
        infer_task(y, kind="multilabel")
