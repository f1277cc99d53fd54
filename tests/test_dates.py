"""Date columns (metalearn.data.datetimes): turned into numbers at training (the days since 1970 and the
calendar parts that vary), and new rows — through the estimators, the registry's schema check and a
retrain on other dates — turned into the same columns."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli

from metalearn.data.datetimes import DATE_PARTS, apply_date_columns, parse_dates, part_name, restore_dates
from metalearn.data.errors import DataError, InputError
from metalearn.data.validation import prepare_frame
from metalearn.kb import open_kb
from metalearn.pipelines.signature import SchemaError, Signature
from metalearn.registry.registry import ModelRegistry
from metalearn.registry.retrain import retrain
from metalearn.search.automl import MetaLearnClassifier, optimize
from metalearn.search.settings import SearchSettings

warnings.filterwarnings("ignore")


def _weekly(start: str, days: int, seed: int) -> pd.DataFrame:
    """One row per hour-less day: the label is whether the day is a weekend (and noise features)."""
    rng = np.random.default_rng(seed)
    when = pd.date_range(start, periods=days, freq="D")
    return pd.DataFrame({
        "when": when.strftime("%Y-%m-%d"),
        "x": rng.normal(size=days),
        "shop": rng.choice(["a", "b", "c"], size=days),
        "label": np.where(when.dayofweek >= 5, "weekend", "weekday"),
    })


def test_text_and_typed_dates_become_numeric_columns_and_other_text_stays_categorical() -> None:
    frame = pd.DataFrame({
        "iso": ["2024-03-01", "2024-03-02 10:30", None, "2024-04-15T08:00:00Z"] * 5,
        "typed": pd.Series(pd.date_range("2021-01-01", periods=20, freq="h", tz="Europe/Paris")),
        "us": ["03/01/2024", "03/02/2024", "03/03/2024", "03/04/2024"] * 5,  # not ISO: a category
        "half": ["2024-03-01", "soon", "2024-03-02", "later"] * 5,  # not every value a date: a category
        "y": np.arange(20) % 2,
    })
    ds = prepare_frame(frame, "y", name="dates")
    dates = dict(ds.dates)
    assert set(dates) == {"iso", "typed"}
    # the parts that vary on these rows, in DATE_PARTS order; the wall-clock time (Paris hours 0..19)
    assert dates["typed"] == ("hour",) and ds.X[part_name("typed", "hour")].tolist() == list(map(float, range(20)))
    assert dates["iso"] == ("month", "day", "dayofweek", "dayofyear", "hour", "minute")
    assert ds.X["iso"].iloc[0] == (pd.Timestamp("2024-03-01") - pd.Timestamp("1970-01-01")).days
    assert np.isnan(ds.X["iso"].iloc[2]) and np.isnan(ds.X[part_name("iso", "month")].iloc[2])
    assert [c for c, cat in zip(ds.X.columns, ds.categorical, strict=True) if cat] == ["us", "half"]
    assert list(ds.X.columns[:2]) == ["iso", part_name("iso", "month")]
    assert all(p in DATE_PARTS for parts in dates.values() for p in parts)
    assert parse_dates(pd.Series([None, None], dtype=object)) is None  # no value: not a date column
    assert parse_dates(pd.Series(["2024-13-45"])) is None  # ISO-looking but no date


def test_a_date_part_clashing_with_a_column_is_refused_naming_both() -> None:
    frame = pd.DataFrame({"d": ["2024-01-01", "2024-02-03"] * 6, "d.month": range(12), "y": [0, 1] * 6})
    with pytest.raises(DataError, match=r"date column 'd'.*'d.month'.*already exist"):
        prepare_frame(frame, "y", name="clash")


def test_new_rows_get_the_training_parts_and_non_dates_are_reported() -> None:
    train = prepare_frame(_weekly("2023-01-01", 60, 0), "label", name="weekly")
    parts = dict(train.dates)["when"]
    assert parts == ("month", "day", "dayofweek", "dayofyear")  # one year: no year column
    new = pd.DataFrame({"when": ["2025-07-06", "not a date"], "x": [0.0, 1.0], "shop": ["a", "b"]})
    out, bad = apply_date_columns(new, train.dates)
    assert list(out.columns) == list(train.X.columns) and bad == {"when": ["not a date"]}
    assert out[part_name("when", "dayofweek")].iloc[0] == 6.0 and np.isnan(out["when"].iloc[1])
    again, none = apply_date_columns(train.X, train.dates)  # already numeric: unchanged
    assert none == {} and again.equals(train.X)
    back = restore_dates(train.X, train.dates)
    assert list(back.columns) == ["when", "x", "shop"]
    assert back["when"].dt.strftime("%Y-%m-%d").tolist() == _weekly("2023-01-01", 60, 0)["when"].tolist()


def test_a_date_column_with_no_date_in_the_rows_is_missing_not_mistyped(tmp_path: Path) -> None:
    # one row with an empty date, as a CSV reads it (a float column of NaN): it was refused as "mistyped column(s)
    # when (dates expected, got None)", while the same row beside a dated one, or as JSON null, was predicted
    import io

    signature = Signature.of(prepare_frame(_weekly("2023-01-01", 60, 0), "label", name="weekly"))
    alone = pd.read_csv(io.StringIO("when,x,shop\n,0.5,a\n"))
    assert alone["when"].dtype == np.float64
    X, _ = signature.validate(alone)
    assert X[[c for c in X.columns if c.startswith("when")]].isna().all(axis=None)
    both = pd.read_csv(io.StringIO("when,x,shop\n,0.5,a\n2025-07-06,0.5,a\n"))
    Y, _ = signature.validate(both)
    assert Y.iloc[:1].equals(X) and Y[part_name("when", "dayofweek")].iloc[1] == 6.0
    with pytest.raises(SchemaError, match=r"when \(dates expected, got 3.0\)"):  # a number is still not a date
        signature.validate(pd.DataFrame({"when": [3.0], "x": [0.5], "shop": ["a"]}))


def test_the_estimator_generalises_a_weekly_pattern_to_later_dates() -> None:
    """Trained on 2023, tested on 2024: every test date is new, so only the calendar parts can tell a
    weekend (as categories the dates carry nothing: the majority class, 5 days of 7)."""
    train, test = _weekly("2023-01-01", 365, 1), _weekly("2024-01-01", 120, 2)
    clf = MetaLearnClassifier(n_trials=3, n_folds=3, trial_time_limit=60.0, seed=0)
    clf.fit(train.drop(columns="label"), train["label"])
    assert clf.dates_ == (("when", ("month", "day", "dayofweek", "dayofyear")),)
    accuracy = clf.score(test.drop(columns="label"), test["label"])
    assert accuracy >= 0.95, accuracy
    with pytest.raises(InputError, match=r"mistyped column\(s\) when \(dates expected, got 'tomorrow'\)"):  # as the registry says
        clf.predict(test.drop(columns="label").head(2).assign(when=["2024-05-01", "tomorrow"]))


def test_the_registry_takes_dates_as_given_and_a_retrain_on_other_dates(tmp_path: Path) -> None:
    ds = prepare_frame(_weekly("2023-01-01", 200, 3), "label", name="weekly")
    kb = open_kb(tmp_path / "kb.duckdb")
    try:
        outcome = optimize(ds, kb, SearchSettings(n_trials=2, seed=0, warm_start=False, ensemble=False))
        registry = ModelRegistry(kb)
        rec = registry.register_outcome("shop", outcome, ds)
        registry.promote("shop", rec.version)
        signature = registry.signature(rec)
        assert signature.dates == ds.dates and Signature.from_dict(signature.to_dict()) == signature
        assert signature.inputs == ["when", "x", "shop"] and signature.names == list(ds.X.columns)
        raw = _weekly("2023-01-01", 200, 3).iloc[50:64].reset_index(drop=True)  # training rows, as given
        batch = registry.predict("shop", raw.drop(columns="label"))
        expected = outcome.model.predict(ds.X.iloc[50:64].reset_index(drop=True))  # as training converted them
        assert [r["predictions"]["label"] for r in batch.rows] == list(expected)
        with pytest.raises(SchemaError, match=r"mistyped column\(s\) when \(dates expected, got 'someday'\)"):
            registry.predict("shop", raw.drop(columns="label").head(2).assign(when=["2024-01-01", "someday"]))
        with pytest.raises(SchemaError, match=r"missing column\(s\) when; send the columns when, x, shop"):
            registry.predict("shop", raw.drop(columns=["label", "when"]))
        # dates sent as numbers (seconds since 1970): mistyped, not "missing column(s) when"
        with pytest.raises(SchemaError, match=r"^[^;]*mistyped column\(s\) when \(dates expected, got 1700000000\)"):
            registry.predict("shop", raw.drop(columns="label").head(2).assign(when=[1700000000, 1700000001]))
        # new data from one month: fewer parts vary (no month), which the new version keeps as it finds
        march = prepare_frame(_weekly("2024-03-01", 31, 5), "label", name="weekly-march")
        assert dict(march.dates)["when"] == ("day", "dayofweek", "dayofyear")
        new = retrain(registry, "shop", march, SearchSettings(n_trials=1, seed=1, ensemble=False))
        assert registry.signature(new).dates == march.dates and new.parent_version == rec.version
    finally:
        kb.close()


def test_the_cli_says_what_a_date_column_became_and_predicts_raw_dates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def cli(*argv: object) -> tuple[int, str, str]:
        return run_cli(capsys, *argv)

    train, new = tmp_path / "train.csv", tmp_path / "new.csv"
    _weekly("2023-01-01", 150, 6).to_csv(train, index=False)
    _weekly("2024-06-01", 10, 7).drop(columns="label").to_csv(new, index=False)
    kb = tmp_path / "kb.duckdb"
    code, out, err = cli("optimize", train, "-t", "label", "--trials", "2", "--folds", "3", "--no-ensemble",
                         "--workers", "1", "--kb", kb, "--out", tmp_path / "run", "--register", "shop")
    assert code == 0, err
    said = "date column 'when': used as the days since 1970-01-01 and month, day, dayofweek, dayofyear"
    assert said in out + err
    summary = pd.read_json(tmp_path / "run" / "summary.json", typ="series")
    assert summary["dataset"]["dates"] == {"when": ["month", "day", "dayofweek", "dayofyear"]}
    assert cli("models", "promote", "shop", "1", "--kb", kb)[0] == 0
    code, out, err = cli("predict", "shop", new, "--kb", kb, "--no-log")
    assert code == 0, err
    assert out.splitlines()[0].startswith("prediction_id,model_version,label") and len(out.splitlines()) == 11
