"""The search's data warnings (``metalearn.search.data_warnings``): a regression target whose squared error a few
extreme rows dominate, and feature columns mostly missing — on real data with realistic defects (a unit error, a
-9999 code for a missing value, blanked columns), through ``optimize``'s summary and the estimators, and, on the
shared corpus, never on ordinary datasets."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from metalearn.data.dataset import Dataset
from metalearn.data.loading import load_dataset
from metalearn.data.validation import prepare_frame
from metalearn.kb import InMemoryKnowledgeBase
from metalearn.search.automl import optimize
from metalearn.search.data_warnings import mostly_missing, target_outliers
from metalearn.search.estimators import MetaLearnRegressor
from metalearn.search.settings import SearchSettings


def _frame(ds: Dataset) -> pd.DataFrame:
    return pd.concat([ds.X, ds.y], axis=1)


def _diabetes_with_unit_errors(metric: str | None = None) -> tuple[Dataset, float]:
    """scikit-learn's diabetes (442 rows, target 25-346) with 3 targets entered 10 times too large, and the share of
    the squared error of predicting the mean that these 3 rows make up."""
    frame = _frame(load_dataset("sklearn:diabetes"))
    rows = frame.index[frame["target"] >= 200][:3]
    frame.loc[rows, "target"] *= 10
    y = frame["target"].to_numpy(dtype=float)
    dev = y - y.mean()
    share = float((dev[rows] ** 2).sum() / (dev**2).sum())
    return prepare_frame(frame, "target", metric=metric, name="diabetes-unit-errors"), share


def _blanked(frame: pd.DataFrame, shares: dict[str, float], seed: int = 0) -> pd.DataFrame:
    """``frame`` with the given share of each named column's values missing (at random rows)."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    for column, share in shares.items():
        out.loc[rng.choice(len(out), round(share * len(out)), replace=False), column] = np.nan
    return out


# ------------------------------------------------------------------------------------------ target outliers
def test_a_few_extreme_target_values_that_dominate_rmse_are_warned_of() -> None:
    clean = load_dataset("sklearn:diabetes")
    assert target_outliers(clean) is None
    ds, share = _diabetes_with_unit_errors()
    assert 0.5 < share < 0.9  # the 3 rows of 442 make up most of the squared error about the mean
    q25, median, q75 = np.percentile(ds.y["target"], [25, 50, 75])
    iqr = q75 - q25
    assert (median - 10 * iqr, median + 10 * iqr) == (-1124.5, 1405.5) and (ds.y["target"] > 1405.5).sum() == 3
    others = ds.y["target"][ds.y["target"] < 1405.5].max()
    assert f"{(others - median) / iqr:.3g}" == "1.62"
    assert target_outliers(ds) == (
        "target 'target': 3 of 442 rows (3100, 2450, 2060) lie far beyond the others (over 10 IQR from the median, "
        f"outside -1124 .. 1406; the others within 1.62 IQR) and make up {share:.0%} of the squared error of "
        "predicting its mean: the search's rmse is dominated by them; check them (entry or unit errors?) and fix or "
        "drop them, or judge the search by absolute errors (--metric mae)")
    # judged by R² the same rows decide; by MAE they do not, and the user chose it
    r2 = target_outliers(_diabetes_with_unit_errors("r2")[0])
    assert r2 is not None and "the search's r2 is dominated by them" in r2
    assert target_outliers(_diabetes_with_unit_errors("mae")[0]) is None


def test_a_long_natural_tail_is_not_warned_of_but_a_code_far_beyond_it_is() -> None:
    """Lognormal incomes (log-sd 1.4): their largest values are over 10 IQR from the median but trail off (no row
    stands apart) — no warning; a 99,999,999 'not known' code among them stands apart and decides the RMSE."""
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(5000, 3)), columns=["a", "b", "c"])
    frame["income"] = np.exp(10 + frame["a"] + rng.normal(size=5000))
    q25, median, q75 = np.percentile(frame["income"], [25, 50, 75])
    assert (frame["income"] > median + 10 * (q75 - q25)).sum() > 50  # a long tail beyond 10 IQR
    assert target_outliers(prepare_frame(frame, "income", kind="regression", name="incomes")) is None
    frame.loc[[7, 70], "income"] = 99_999_999.0
    text = target_outliers(prepare_frame(frame, "income", kind="regression", name="incomes-coded"))
    assert text is not None and text.startswith("target 'income': 2 of 5,000 rows (1e+08, 1e+08) lie far beyond the "
                                                "others (over 10 IQR from the median, outside ")
    assert "and make up 99% of the squared error of predicting its mean" in text


def test_a_zero_inflated_target_takes_its_spread_from_a_wider_range(load_corpus: Any) -> None:
    """sf1's flare counts are 0 in over half the rows (IQR 0): its rare flares are the signal, not outliers; a
    count entered as 9999 is one."""
    sf1 = load_corpus("sf1")
    assert float(np.percentile(sf1.y["m-class"], 75)) == 0.0 and target_outliers(sf1) is None
    frame = _frame(sf1)
    frame.loc[5, "m-class"] = 9999.0
    text = target_outliers(prepare_frame(frame, list(sf1.task.targets), kind="multitarget", name="sf1-typo"))
    assert text is not None and text.startswith(
        "target 'm-class': 1 of 323 rows (9999) lies far beyond the others (over 10 IQR from the median, outside ")
    assert "; the IQR from the central 80 % as over half the values are equal; the others within " in text
    assert text.endswith("the search's r2_mean is dominated by it; check it (an entry or a unit error?) and fix or "
                         "drop it, or judge the search by absolute errors (--metric mae_mean)")


def test_every_target_of_a_multitarget_search_is_checked(load_corpus: Any) -> None:
    """enb (heating and cooling loads of 768 buildings): -9999 codes in both targets are named in one line; a
    multitask search judged by one target's MAE is not warned of."""
    enb = load_corpus("enb")
    assert target_outliers(enb) is None
    frame = _frame(enb)
    frame.loc[[3, 30], "Y1"] = -9999.0
    frame.loc[[4], "Y2"] = -9999.0
    text = target_outliers(prepare_frame(frame, ["Y1", "Y2"], kind="multitarget", name="enb-coded"))
    assert text == (
        "2 targets have a few rows far beyond the others (over 10 IQR from the median) that make up at least half "
        "the squared error of predicting their mean ('Y2': 1 of 768 rows (-9999), 100%; 'Y1': 2 of 768 rows (-9999, "
        "-9999), 100%): the search's r2_mean is dominated by them; check them (entry or unit errors?) and fix or drop "
        "them, or judge the search by absolute errors (--metric mae_mean)")
    judged = prepare_frame(frame, ["Y1", "Y2"], kind="multitarget", metric="mae_mean", name="enb-coded-mae")
    assert target_outliers(judged) is None


# ------------------------------------------------------------------------------------------ missing features
def test_feature_columns_at_least_half_missing_are_named() -> None:
    cancer = load_dataset("sklearn:breast_cancer")
    assert mostly_missing(cancer) is None
    frame = _blanked(_frame(cancer), {"mean radius": 0.6, "worst area": 0.9, "mean texture": 0.49,
                                      "mean area": 0.55, "area error": 0.75})
    ds = prepare_frame(frame, "target", kind="binary", name="breast-cancer-blanked")
    assert mostly_missing(ds) == (
        "4 of 30 feature columns are at least 50% missing ('worst area' 90%, 'area error' 75%, 'mean radius' 60% "
        "and 1 more): the pipelines fill a missing number in with the column's mean or median, so which values "
        "were missing is lost to them; if missing means something (none, zero, not measured), fill it in or add an "
        "indicator column, else consider dropping them")
    cats = frame.assign(grade=pd.Categorical(np.where(np.arange(len(frame)) % 3 == 0, "high", None)))
    one = prepare_frame(cats.drop(columns=["mean radius", "worst area", "mean area", "area error"]), "target",
                        kind="binary", name="categorical-missing")
    assert one.X["grade"].dtype == "category"
    text = mostly_missing(one)
    assert text is not None and text.startswith("1 of 27 feature columns is at least 50% missing ('grade' 67%)")
    assert text.endswith("else consider dropping it")


def test_the_checks_are_cheap_on_50000_rows_by_100_columns() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(50_000, 100)), columns=[f"x{i}" for i in range(100)])
    frame = frame.mask(rng.random(frame.shape) < 0.1)
    frame["y"] = rng.normal(size=50_000)
    ds = prepare_frame(frame, "y", kind="regression", name="wide")
    timings = []
    for check in (target_outliers, mostly_missing):
        check(ds)
        start = time.perf_counter()
        for _ in range(5):
            assert check(ds) is None
        timings.append((time.perf_counter() - start) / 5)
    assert max(timings) < 0.05, timings  # measured: about 1 ms and 5 ms


# ------------------------------------------------------------------------------------------ where they show
def test_optimize_and_the_estimators_pass_the_data_warnings_on() -> None:
    ds, _ = _diabetes_with_unit_errors()
    frame = _blanked(_frame(ds), {"s1": 0.7})
    ds = prepare_frame(frame, "target", name="diabetes-defects")
    settings = SearchSettings.from_params(n_trials=1, seed=0, warm_start=False, ensemble=False, n_folds=3, workers=1)
    found = optimize(ds, InMemoryKnowledgeBase(), settings).summary["warnings"]
    assert [w.split(":")[0] for w in found] == [
        "target 'target'", "1 of 10 feature columns is at least 50% missing ('s1' 70%)"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        MetaLearnRegressor(n_trials=1, warm_start=False, ensemble=False, n_folds=3).fit(ds.X, ds.y["target"])
    texts = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert found[0] in texts and found[1] in texts


@pytest.mark.corpus
def test_the_checks_never_fire_on_ordinary_corpus_datasets(corpus_dir: Path, load_corpus: Any) -> None:
    """Every dataset of the shared corpus (139 regression, 10 multitarget among them): no target warning; the one
    missing-value warning is osales', 19 of whose columns are 52-98 % empty."""
    names = pd.read_csv(corpus_dir / "manifest.csv")["name"]
    outliers, missing = [], []
    for name in names:
        ds = load_corpus(name)
        if target_outliers(ds):
            outliers.append(name)
        if mostly_missing(ds):
            missing.append(name)
    assert len(names) >= 200 and outliers == [] and missing == ["osales"]
