"""An honest time budget: ``time_limit`` covers the whole job (metalearn.search.deadline), each trial gets
at most the time left (minus the refit reserve), a budget small for the data switches to holdout / a
subset, and the summary says what stopped the search and the time used against the budget."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

from metalearn.data.loading import load_dataset
from metalearn.kb import open_kb
from metalearn.kb.records import dataset_record
from metalearn.search import loop
from metalearn.search import settings as settings_module
from metalearn.search.automl import optimize
from metalearn.search.deadline import (
    FINAL_OVERRUN_SHARE,
    MIN_FOLDS,
    MIN_REFIT_ROWS,
    MIN_TRIAL_SECONDS,
    REFIT_ROWS_EXPONENT,
    REFIT_SAFETY,
    RESERVE_MARGIN_SHARE,
    Deadline,
    budget_protocol,
    refit_estimate,
    refit_factor,
    refit_rows,
)
from metalearn.search.evaluation import EvalProtocol
from metalearn.search.loop import run_search
from metalearn.search.settings import SearchSettings, machine_cores

PROTOCOL = EvalProtocol(n_folds=3, max_rows=150)


# ----------------------------------------------------------------------------------- the deadline
def test_an_unbounded_deadline_changes_nothing() -> None:
    d = Deadline(None)
    assert d.left() == math.inf and not d.expired() and not d.search_over()
    assert d.trial_limit(120.0) == 120.0 and d.trial_limit(None) is None
    assert d.share(0.1) is None and d.share(0.1, cap=60.0) == 60.0
    assert d.to_dict()["limit"] is None and d.to_dict()["ratio"] is None


def test_trials_get_at_most_the_time_left_minus_the_reserve() -> None:
    d = Deadline(100.0, started=time.monotonic() - 40.0)  # 60 s left
    assert 59.0 < d.left() <= 60.0
    assert d.trial_limit(120.0) == pytest.approx(d.left(), abs=0.1)  # cut to the time left
    assert d.trial_limit(10.0) == 10.0  # the configured limit when it is shorter
    d.keep(50.0)  # the refit needs 50 s: 10 s left for the search
    assert d.trial_limit(120.0) == pytest.approx(10.0, abs=0.1) and not d.search_over()
    d.keep(60.0 - MIN_TRIAL_SECONDS / 2)
    assert d.search_over()
    assert d.share(0.1) == pytest.approx(10.0) and d.share(0.1, cap=5.0) == 5.0


def test_a_trial_leaves_time_for_its_own_refit() -> None:
    d = Deadline(100.0, started=time.monotonic() - 40.0)  # 60 s left: a trial whose refit takes 2x its time
    assert d.trial_limit(120.0, refit_factor=2.0) == pytest.approx(20.0, abs=0.1)
    grow = REFIT_ROWS_EXPONENT
    assert refit_factor(EvalProtocol(mode="holdout"), 1000) == pytest.approx(REFIT_SAFETY / 0.67**grow)
    assert refit_factor(EvalProtocol(n_folds=5, holdout_threshold=None), 1000) == pytest.approx(
        REFIT_SAFETY * 1.25**grow / 5
    )


def test_the_refit_reserve_scales_one_fold_fit_to_all_rows() -> None:
    # 5 folds fitting 800 rows in 10 s in all: one fold 2 s, all 1000 rows 2 x 1.25^0.8 s, times the safety factor
    assert 0 < REFIT_ROWS_EXPONENT < 1
    assert refit_estimate(10.0, 5, 800, 1000) == pytest.approx(2 * 1.25**REFIT_ROWS_EXPONENT * REFIT_SAFETY)
    # sublinear in the rows (a fit's fixed part), never less than one fold's fit on the same rows
    assert refit_estimate(1.0, 1, 5_000, 50_000) < 10 * refit_estimate(1.0, 1, 5_000, 5_000)
    assert refit_estimate(1.0, 1, 5_000, 5_000) == pytest.approx(REFIT_SAFETY)


def test_a_refit_takes_the_rows_it_has_time_for() -> None:
    assert refit_rows(10_000, 4.0, 10.0) == 10_000 and refit_rows(10_000, None, 0.0) == 10_000
    # a quarter of the time: the rows whose estimate is a quarter (the inverse of the estimate's growth)
    rows = refit_rows(10_000, 40.0, 10.0)
    assert rows == int(10_000 * 0.25 ** (1 / REFIT_ROWS_EXPONENT)) and rows < 2_500
    assert refit_estimate(40.0, 1, 10_000, rows) == pytest.approx(10.0 * REFIT_SAFETY, rel=1e-3)
    assert refit_rows(10_000, 40.0, -1.0) == MIN_REFIT_ROWS and refit_rows(300, 40.0, 1.0) == 300


def test_the_final_model_is_fit_on_a_subset_when_all_rows_do_not_fit_in_the_time_left() -> None:
    """A search whose best configuration's refit on all rows is expected to take three times what is left
    of the budget: the final model is fit on about a third of the rows (stratified), says so, and predicts
    every class; with the time, on all rows without a note."""
    import re

    from metalearn.search.automl import refit_best

    digits = load_dataset("sklearn:digits")
    kb = open_kb(":memory:")
    kb.put_dataset(dataset_record(digits))
    settings = SearchSettings(n_trials=2, warm_start=False, protocol=EvalProtocol(n_folds=3), optimizer="random")
    result = run_search(digits, kb, settings)
    estimate = result.best_refit_seconds
    assert estimate is not None and estimate > 0
    roomy = Deadline(600.0)
    full = refit_best(digits, result, roomy)
    assert roomy.notes == [] and full.predict_task(digits.X).n_rows == digits.n_rows

    # a search that ended past the budget: the final fit's overrun tolerance (less the margin) is twice the
    # estimate, so all rows, no note
    slack = FINAL_OVERRUN_SHARE - RESERVE_MARGIN_SHARE
    limit = 4 * estimate / slack
    late = Deadline(limit, started=time.monotonic() - (limit + slack * limit / 2))
    assert late.expired()
    assert refit_best(digits, result, late).predict_task(digits.X).n_rows == digits.n_rows and late.notes == []

    limit = 100.0  # started so long ago that estimate / 3 is left of the final fits' time after the margin
    tight = Deadline(limit, started=time.monotonic() - (limit + slack * limit - estimate / 3))
    model = refit_best(digits, result, tight)
    (note,) = tight.notes
    rows = int(re.match(r"the final model was fit on (\d+) of 1797 rows", note).group(1))  # type: ignore[union-attr]
    assert 0.25 * digits.n_rows < rows < 0.4 * digits.n_rows, note
    pred = model.predict_task(digits.X)
    assert pred.n_rows == digits.n_rows and set(pred.classes[0]) == set(digits.y.iloc[:, 0])


def test_a_small_budget_for_the_data_switches_to_holdout_then_a_subset() -> None:
    p = EvalProtocol()
    assert budget_protocol(p, 20_000, None) == (p, "")
    assert budget_protocol(p, 1_000, 600.0) == (p, "")  # 5,000 fold-rows: affordable
    # 24 s afford 3,600 fold-rows (ROWS_PER_SECOND): 1,000 rows in 5 folds are 5,000, in 3 folds 3,000
    fewer, note = budget_protocol(p, 1_000, 24.0)
    assert fewer.resolve(1_000).mode == "cv" and fewer.n_folds == MIN_FOLDS and "3-fold CV" in note
    holdout, note = budget_protocol(p, 3_000, 24.0)  # 3 folds of 3,000 rows are 9,000: one split
    assert holdout.resolve(3_000).mode == "holdout" and holdout.max_rows is None and "holdout" in note
    # two trials at once afford 7,200: 3 folds of 2,000 rows (6,000), where one worker needs a holdout split
    assert budget_protocol(p, 2_000, 24.0)[0].resolve(2_000).mode == "holdout"
    two = budget_protocol(p, 2_000, 24.0, workers=2)[0]
    assert (two.resolve(2_000).mode, two.n_folds) == (("cv", 3) if machine_cores() >= 2 else ("holdout", 5))
    sub, note = budget_protocol(p, 40_000, 24.0)  # even one split of 40,000 rows is too much
    assert sub.resolve(40_000).mode == "holdout" and sub.max_rows is not None and sub.max_rows < 40_000
    assert sub.max_rows % 500 == 0 and "subset" in note  # rounded: the same budget, the same protocol key
    assert budget_protocol(p, 40_000, 24.0)[0].key == sub.key


def test_wide_rows_count_as_more_rows_for_cross_validation_but_not_for_a_subset() -> None:
    """A row of many columns costs a fit as several rows do: 600 rows in 5 folds fit in 24 s (3,000 of 3,600
    fold-rows) at up to WIDE_COLUMNS columns, 3 folds at 1.5 x as many, one holdout split at 4 x; a holdout on
    all rows is not cut to a subset for the columns (fewer rows of the same columns lose more)."""
    from metalearn.search.deadline import WIDE_COLUMNS

    p = EvalProtocol()
    assert budget_protocol(p, 600, 24.0, n_columns=WIDE_COLUMNS) == (p, "")
    three, note = budget_protocol(p, 600, 24.0, n_columns=int(1.5 * WIDE_COLUMNS))
    assert (three.resolve(600).mode, three.n_folds) == ("cv", MIN_FOLDS)
    assert f"600 rows of {int(1.5 * WIDE_COLUMNS)} columns" in note
    split, note = budget_protocol(p, 600, 24.0, n_columns=4 * WIDE_COLUMNS)
    assert split.resolve(600).mode == "holdout" and split.max_rows is None and "holdout validation" in note
    assert budget_protocol(p, 600, 24.0, n_columns=40 * WIDE_COLUMNS)[0].max_rows is None  # no subset for width


# ----------------------------------------------------------------------------------- the search
def _iris_kb() -> tuple[Any, Any]:
    iris = load_dataset("sklearn:iris")
    kb = open_kb(":memory:")
    kb.put_dataset(dataset_record(iris))
    return iris, kb


def test_the_search_stops_at_the_time_limit_and_cuts_each_trial(monkeypatch: pytest.MonkeyPatch) -> None:
    iris, kb = _iris_kb()
    limits: list[tuple[float, float]] = []
    real = loop.evaluate_config
    deadline = Deadline(8.0)

    def spy(*args: Any, **kw: Any) -> Any:
        limits.append((args[4], deadline.search_left()))  # (the trial's limit, the search's time left)
        return real(*args, **kw)

    monkeypatch.setattr(loop, "evaluate_config", spy)
    settings = SearchSettings(n_trials=1000, time_limit=8.0, trial_time_limit=120.0, warm_start=False,
                              protocol=PROTOCOL, optimizer="random")
    t0 = time.monotonic()
    result = run_search(iris, kb, settings, deadline=deadline)
    assert time.monotonic() - t0 <= 8.0 * 1.1
    assert result.stopped_by == "time_limit" and 1 <= len(result.trials) < 1000
    assert all(limit <= left + 0.05 and limit < 120.0 for limit, left in limits)
    assert deadline.reserve > 0  # the refit of the best configuration, from its measured fits


def test_a_time_limit_without_a_trial_count_ends_only_at_the_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset, ``n_trials`` caps a search without a time limit at UNTIMED_TRIALS, and nothing but the
    clock ends one with a time limit (a user's ``--time-limit`` search is the benchmark's)."""
    monkeypatch.setattr(settings_module, "UNTIMED_TRIALS", 3)
    iris, kb = _iris_kb()
    untimed = SearchSettings(warm_start=False, protocol=PROTOCOL, optimizer="random")
    result = run_search(iris, kb, untimed)
    assert (len(result.trials), result.stopped_by) == (3, "trials")
    iris, kb = _iris_kb()
    timed = SearchSettings(time_limit=6.0, warm_start=False, protocol=PROTOCOL, optimizer="random")
    t0 = time.monotonic()
    result = run_search(iris, kb, timed)
    assert result.stopped_by == "time_limit" and len(result.trials) > 3
    assert time.monotonic() - t0 <= 6.0 * 1.1


def test_trials_reached_says_so() -> None:
    iris, kb = _iris_kb()
    settings = SearchSettings(n_trials=2, time_limit=600.0, warm_start=False, protocol=PROTOCOL)
    assert run_search(iris, kb, settings).stopped_by == "trials"


def test_a_multi_fidelity_search_ends_at_full_budget_within_the_limit() -> None:
    ds = load_dataset("sklearn:breast_cancer")
    kb = open_kb(":memory:")
    kb.put_dataset(dataset_record(ds))
    settings = SearchSettings(n_trials=1000, time_limit=12.0, warm_start=False, multi_fidelity=True,
                              protocol=EvalProtocol(n_folds=3))
    t0 = time.monotonic()
    result = run_search(ds, kb, settings)
    assert time.monotonic() - t0 <= 12.0 * 1.1
    assert result.stopped_by == "time_limit" and result.best_config_id is not None
    assert any(t.budget == 1.0 and t.status == "ok" for t in result.trials)


# ----------------------------------------------------------------------------------- the whole job
def test_optimize_keeps_the_whole_job_in_the_budget_and_says_so(tmp_path: Any) -> None:
    iris = load_dataset("sklearn:iris")
    started = time.monotonic()
    settings = SearchSettings(n_trials=1000, time_limit=10.0, warm_start=False, protocol=PROTOCOL)
    outcome = optimize(iris, kb=open_kb(":memory:"), settings=settings, started=started)
    used = time.monotonic() - started
    s = outcome.summary
    assert used <= 10.0 * 1.1 and outcome.model is not None
    assert s["stopped_by"] == "time_limit"
    assert s["time_budget"]["limit"] == 10.0 and 0 < s["time_budget"]["used"] <= 11.0
    assert s["time_budget"]["ratio"] == pytest.approx(s["time_budget"]["used"] / 10.0, abs=0.01)


def test_optimize_without_a_limit_reports_trials() -> None:
    iris = load_dataset("sklearn:iris")
    settings = SearchSettings(n_trials=2, warm_start=False, protocol=PROTOCOL)
    s = optimize(iris, kb=open_kb(":memory:"), settings=settings).summary
    assert s["stopped_by"] == "trials" and s["time_budget"]["limit"] is None and s["time_budget"]["notes"] == []


def test_the_reserve_holds_the_ensembles_next_refits_within_a_share_of_the_budget() -> None:
    """The reserve is the best configuration's refit plus, with an ensemble, the refits of the next few
    candidates (its likely other members), those capped at a share of the budget, plus a margin of the budget;
    without a limit nothing is capped or added."""
    from metalearn.search.deadline import (
        ENSEMBLE_RESERVE_MEMBERS,
        ENSEMBLE_RESERVE_SHARE,
        RESERVE_MARGIN_SHARE,
        search_reserve,
    )

    margin = RESERVE_MARGIN_SHARE * 30.0
    assert search_reserve(2.0, [], 30.0) == pytest.approx(2.0 + margin)  # no ensemble: the best one's refit
    others = [0.5, 0.25, 0.5, 0.25, 9.0]
    assert search_reserve(2.0, others, 30.0) == pytest.approx(  # the next few only
        2.0 + sum(others[:ENSEMBLE_RESERVE_MEMBERS]) + margin
    )
    cap = ENSEMBLE_RESERVE_SHARE * 30.0
    big = [cap * 0.6, cap * 0.6]  # together above the cap
    assert search_reserve(2.0, big, 30.0) == pytest.approx(2.0 + cap + margin)
    assert search_reserve(2.0, big, None) == pytest.approx(2.0 + cap * 1.2)  # no limit: no cap, no margin


def test_a_final_boosting_refit_stops_adding_rounds_when_the_budget_is_over() -> None:
    """The refit's rounds follow early stopping on all rows, which no trial estimate bounds: under a
    deadline that is over, a CatBoost refit keeps the rounds it has, and the summary's notes say so."""
    from types import SimpleNamespace

    from metalearn.pipelines.spaces import get_space
    from metalearn.search.automl import refit_best

    digits = load_dataset("sklearn:digits")
    values = get_space("multiclass").validate(
        {"model": "catboost", "catboost:n_estimators": 2000.0}, fill_defaults=True
    )
    result = SimpleNamespace(best_values=values, best_refit_seconds=None, best_rounds_per_row=None)  # no estimate: all rows
    over = Deadline(2.0, started=time.monotonic() - 2.0)  # over; the floor: 5 % of 2 s
    t0 = time.monotonic()
    model = refit_best(digits, result, over)  # type: ignore[arg-type]
    assert any("stopped adding rounds" in n for n in over.notes), over.notes
    assert time.monotonic() - t0 < 5.0
    pred = model.predict_task(digits.X)
    assert pred.n_rows == digits.n_rows and set(pred.classes[0]) == set(digits.y.iloc[:, 0])
    roomy = Deadline(600.0)
    refit_best(digits, SimpleNamespace(best_values=values, best_refit_seconds=None, best_rounds_per_row=None), roomy)  # type: ignore[arg-type]
    assert roomy.notes == []


def test_the_final_boosting_refit_leaves_the_time_kept_for_the_ensembles_other_members() -> None:
    """With 2 s left of which the ensemble's other members' refits need 1.9 s, a CatBoost refit (4000 rounds
    of depth 8, about 0.7 s alone) stops adding rounds after the floor of the budget (0.1 s), and the note says
    how much was kept for the other members; with nothing kept it is not cut for them."""
    from types import SimpleNamespace

    from metalearn.pipelines.spaces import get_space
    from metalearn.search.automl import refit_best

    digits = load_dataset("sklearn:digits")
    values = get_space("multiclass").validate(
        {"model": "catboost", "catboost:n_estimators": 4000.0, "catboost:learning_rate": 0.005, "catboost:depth": 8,
         "catboost:early_stopping_rounds": 150.0},
        fill_defaults=True,
    )
    result = SimpleNamespace(best_values=values, best_refit_seconds=None, best_rounds_per_row=None)
    deadline = Deadline(2.0)
    t0 = time.monotonic()
    model = refit_best(digits, result, deadline, keep=1.9)  # type: ignore[arg-type]
    took = time.monotonic() - t0
    assert any("kept for the ensemble's other members" in n for n in deadline.notes), deadline.notes
    assert took < 3.0, took
    assert model.predict_task(digits.X).n_rows == digits.n_rows
    roomy = Deadline(2.0)
    refit_best(digits, result, roomy, keep=0.0)  # type: ignore[arg-type]
    assert not any("kept for the ensemble's other members" in n for n in roomy.notes), roomy.notes


def test_the_best_pipelines_own_refit_comes_before_the_ensembles_other_members() -> None:
    """The ensemble's other members asking for more than the time left (3.9 s of 4 s) do not cut the best
    pipeline's boosting below its own expected refit (1.5 s): what is kept for them is at most what its refit
    leaves (members that do not fit are left out of the ensemble afterwards)."""
    import re
    from types import SimpleNamespace

    from metalearn.pipelines.spaces import get_space
    from metalearn.search.automl import refit_best

    digits = load_dataset("sklearn:digits")
    values = get_space("multiclass").validate(
        {"model": "catboost", "catboost:n_estimators": 4000.0, "catboost:learning_rate": 0.005, "catboost:depth": 8,
         "catboost:early_stopping_rounds": 150.0},
        fill_defaults=True,
    )
    result = SimpleNamespace(best_values=values, best_refit_seconds=1.5, best_rounds_per_row=None)
    deadline = Deadline(4.0)
    t0 = time.monotonic()
    refit_best(digits, result, deadline, keep=3.9)  # type: ignore[arg-type]
    took = time.monotonic() - t0
    notes = [n for n in deadline.notes if "kept for the ensemble's other members" in n]
    for note in notes:
        match = re.search(r"\(([\d.]+) s of the ([\d.]+) s left kept", note)
        assert match is not None, note
        kept, left = float(match.group(1)), float(match.group(2))
        assert kept <= left - 1.5 + 0.05, note
    assert took > 1.4 or not notes, (took, notes)  # its boosting had its 1.5 s (unless it ended before)


def test_a_budget_too_small_for_any_trial_says_so() -> None:
    """No trial ran: the reason was "no configuration succeeded in 0 trials (0 failed)"."""
    from metalearn.data.loading import load_dataset
    from metalearn.kb import open_kb
    from metalearn.search.automl import optimize
    from metalearn.search.settings import SearchSettings

    outcome = optimize(load_dataset("sklearn:iris"), open_kb(":memory:"), SearchSettings(time_limit=0.05, workers=1))
    assert outcome.model is None and not outcome.result.trials
    assert outcome.summary["model"]["missing_reason"] == (
        "the time limit ended the search before a trial could run (0.05 s for the whole job): give a larger --time-limit (time_limit= in Python and over HTTP)"
    )


def test_the_final_fit_leaves_room_for_writing_a_large_forest() -> None:
    """A full-depth extra-trees forest's file grows with its rows (34,297 rows of uci_protein: a 240 MB file,
    4-7 s to write at a 10 s budget, 1.5 x the budget): the final fit takes the rows whose refit *and* writes
    fit; with no file written, or time for both, all of them; a boosted model's file does not grow with rows."""
    from metalearn.search.automl import final_rows
    from metalearn.search.ensemble import write_estimate

    forest = {"model": "et", "et:n_estimators": 100.0, "et:min_samples_leaf": 1, "et:bootstrap": "false"}
    n = 30_000
    write = write_estimate(forest, n, grown=False)  # its configured trees: a final fit grows more only with time left
    assert write > 0.5 and write_estimate(forest, n) == pytest.approx(3 * write, rel=0.05)  # 100 trees of ~60,000 nodes
    refit = 5.0
    assert final_rows(n, refit, refit + 0.5 * write, forest, writes=0) == n  # nothing written: the refit fits
    assert final_rows(n, refit, refit + 2.5 * write, forest, writes=2) == n  # both fit
    rows = final_rows(n, refit, refit + 0.5 * write, forest, writes=1)
    assert MIN_REFIT_ROWS < rows < n
    cost = write_estimate(forest, rows, grown=False) + refit * (rows / n) ** REFIT_ROWS_EXPONENT
    more = rows + n // 100
    assert cost <= refit + 0.5 * write < write_estimate(forest, more, grown=False) + refit * (more / n) ** REFIT_ROWS_EXPONENT
    assert final_rows(n, refit, 0.1, forest, writes=1) == MIN_REFIT_ROWS  # nothing fits: the fewest rows
    # a classifier chain of random forests on 53 labels is 53 forests (enron at 30 s: 4.5 s to write, 1.15 x the budget)
    from metalearn.search.ensemble import WRITE_SECONDS_PER_MEMBER, models_per_fit

    chain = {**forest, "ml_strategy": "chain"}
    assert models_per_fit(chain, 53) == 53 and models_per_fit({**forest, "ml_strategy": "native"}, 53) == 1
    assert write_estimate(chain, n, n_targets=53) - WRITE_SECONDS_PER_MEMBER == pytest.approx(
        53 * (write_estimate(forest, n) - WRITE_SECONDS_PER_MEMBER))
    assert final_rows(n, refit, refit + 2.5 * write, chain, writes=1, n_targets=53) < n  # one forest's time: too little
    boosted = {"model": "lightgbm"}
    assert final_rows(n, refit, refit + 0.1, boosted, writes=1) == n  # a fixed-size file, and the refit fits


def test_the_search_keeps_time_for_writing_its_best_pipeline() -> None:
    """The reserve of a search whose job writes model files holds the best pipeline's share of them."""
    from metalearn.search.ensemble import write_estimate
    from metalearn.search.loop import _search_reserve

    iris = load_dataset("sklearn:iris")
    forest = {"model": "rf", "rf:n_estimators": 100.0, "rf:min_samples_leaf": 1, "rf:bootstrap": "true"}
    settings = SearchSettings(ensemble=False)
    kept = {w: _search_reserve(Deadline(30.0, writes=w), "best", forest, {"best": 1.0}, None, iris, settings)
            for w in (0, 1, 2)}
    one = write_estimate(forest, iris.n_rows, grown=False)  # its configured trees
    assert kept[1] == pytest.approx(kept[0] + one) and kept[2] == pytest.approx(kept[0] + 2 * one)
