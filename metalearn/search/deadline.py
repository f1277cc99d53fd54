"""The time budget of a whole ``optimize`` job: :class:`Deadline`.

A deadline is made when the job starts (the CLI: before it loads the data) and handed down to every part
of the job, which asks it for the time it may take:

- the meta-features get a bounded share (:meth:`Deadline.share`), and a smaller sample when it is short;
- the search runs each trial with ``min(trial_time_limit, time left - reserve)``
  (:meth:`Deadline.trial_limit`) and stops when no useful trial fits any more;
- the *reserve* is the time kept for what comes after the search (the refit on all data, a post-hoc
  ensemble's other members): the search sets it from the measured fit times of its trials (:meth:`Deadline.keep`,
  :func:`refit_estimate`), code after the search asks :meth:`Deadline.left`; when the best configuration's
  refit on all rows would not fit in what is left, it is fit on the subset of rows that does
  (:func:`refit_rows`).

Without a limit a deadline never expires and changes nothing (``left()`` is infinite, trial limits are
the configured ones).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

#: shortest useful trial: with less time left than this (after the reserve) the search stops
MIN_TRIAL_SECONDS = 2.0
#: the refit estimate is multiplied by this (a fit on all rows is not exactly linear, and noisy). Measured on
#: 25 refits of 30 s and 120 s searches (14 corpus datasets, 1,900-14,300 rows): a refit took 0.17-1.14 x
#: the unscaled estimate (median 0.6; above 1 only for fits under 1 s). With 1.5 the searches kept a
#: reserve 2-3 x what their refits took and ended at 0.6-0.9 x a 30 s budget
REFIT_SAFETY = 1.1
#: a fit's time grows as (rows) ** this, not linearly: a fit has a fixed part (the pipeline's preprocessing, the
#: library's set-up, an early-stopped boosting or MLP's rounds that do not grow with the rows). Measured (stop 43) on
#: 28 refits on all rows of 30 s searches that ran on a 5,000-row subset of 9 corpus datasets of 20,000-49,000 rows
#: (7-15 x the trials' training rows): a refit took 0.3-9.7 x one trial fold's fit (CatBoost 2.7-8.9, extra trees
#: 2.9-9.7, MLP 3.5-8.8, hist-GB 0.6-2.9), where the linear estimate says 7-15 x; its estimates summed to 2.7 x
#: the refits' time (145 s vs 54 s), with 0.8: 1.6 x, 4 refits of 28 over their estimate by at most 1.35 x
REFIT_ROWS_EXPONENT = 0.8
#: the reserve before any trial has measured a fit: this fraction of the budget
INITIAL_RESERVE = 0.1
#: fold-rows per second of search time a search can afford and still run ~10 trials (measured: a default
#: pipeline fits ~1,300 rows/s here): above it, a budgeted
#: search switches to a holdout split, and then to a data subset (see :func:`budget_protocol`)
ROWS_PER_SECOND = 150.0
#: the fold-rows a search can afford count a row of more than this many feature columns as that many times
#: more rows, when it chooses between cross-validation and a holdout split (a fit's time grows with the columns):
#: on a 3,000-row, 1,210-column regression (Friedman's function of 5 columns, the others noise) 5-fold CV at 120 s
#: ran 7 trials, the best a CatBoost cut short (test RMSE 2.21; a default HistGradientBoosting: 1.43), a holdout
#: split ran 20-33 (1.36-1.43, two runs). Not when it chooses a data subset: fewer rows of the same columns lost more (at 30 s, a
#: holdout on 1,500 rows: 2.77, on all 3,000: 2.31). Above the widest dataset of the wall-clock benchmark (168)
WIDE_COLUMNS = 200
#: the final refit takes a subset of at least this many rows when one on all rows would not fit in the time left
#: (a 30 s search on a 7,400-row dataset measured its only CatBoost trial on a 4,000-row subset and then
#: spent 31 s refitting it on all rows: 1.31 x the budget)
MIN_REFIT_ROWS = 500
#: the fewest cross-validation folds a budgeted search keeps before it moves to one holdout split
MIN_FOLDS = 3
#: the clock bound on the final refit's boosting rounds (see ``refit_best``) is at least this share of the budget:
#: a search whose last trial overran would otherwise leave a one-round model, near a constant
FINAL_FIT_FLOOR_SHARE = 0.05
#: with a post-hoc ensemble the reserve also holds the refits of this many next-best candidates (its
#: likely other members), at most this share of the budget: without it, a 30 s search left no time to
#: refit the ensemble it selected on 7 of 31 benchmark datasets. With 15 % of a 30 s budget, 6 of 93 searches
#: (31 datasets x 3 splits) still lost their ensemble for lack of time, among them magic and coil2000, whose
#: CatBoost member could not be refit and whose extra-trees alone scored 0.007-0.02 ROC AUC lower on test;
#: with 30 %, 2 did: binary better on 5 and worse on none of those searches, the other kinds unchanged on average
ENSEMBLE_RESERVE_MEMBERS = 4
ENSEMBLE_RESERVE_SHARE = 0.3
#: and this share of the budget for what the estimates miss (the last trial's process start and stop past its
#: limit, the ensemble selection): with 2 members and no margin, 4 of 31 benchmark searches at 120 s ended with
#: 0-1 s left and kept one pipeline although their ensemble beat it out of fold
RESERVE_MARGIN_SHARE = 0.02
#: near its end a search keeps, instead of the next-best candidates' refits, those of the members the ensemble
#: selection takes on its trials so far, times this factor (a later trial can add a member; refit estimates
#: from subsets and holdout splits miss)
PLANNED_MEMBERS_SAFETY = 1.5
#: the reserve holds the best pipeline's final fit with its forest's growth to 300 trees
#: (:func:`~metalearn.pipelines.spaces.components.forest_growth_factor`), that growth at most this share of the
#: budget: without it, the extra trees of uci_parkinsons' best pipeline (test RMSE 0.27 grown, 0.31 not) gave
#: way to search trials that found nothing better. A boosted model's refit on all rows (the other extra step of
#: a final fit) is not reserved for: reserving it ended the 30 s searches on solar_flare_2 and coil2000 after
#: 1-2 trials, behind a first 8-18 s CatBoost trial
FINAL_EXTRA_SHARE = 0.1
#: the final fits (the best pipeline's refit, the ensemble's other members) may end this share of the budget past
#: it (the job's target is 1.1 x its budget): a search's last trial and its write-back can end it 1-2 s before
#: the budget, and a refit on all rows expected to take 1 s was then fit on 500 of 2,828 / 5,400 rows
#: (allhypo, ann_thyroid at 120 s: test log loss 0.05 -> 0.15, 0.01 -> 0.13)
FINAL_OVERRUN_SHARE = 0.05


@dataclass
class Deadline:
    """Seconds ``limit`` (None: no limit) counted from ``started`` (``time.monotonic()``)."""

    limit: float | None
    started: float = field(default_factory=time.monotonic)
    reserve: float = 0.0  # seconds kept for after the search (refit, ensemble)
    #: the model files the job writes within its budget (``optimize --out``, a registry version's copy): the
    #: search keeps time for writing its best pipeline into each, and the final refit leaves room for them
    writes: int = 0
    notes: list[str] = field(default_factory=list)  # what the budget made the job do (for the summary)

    @property
    def bounded(self) -> bool:
        return self.limit is not None

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def left(self) -> float:
        """Seconds left of the whole budget (``inf`` without a limit)."""
        return math.inf if self.limit is None else self.limit - self.elapsed()

    def final_left(self) -> float:
        """Seconds the final fits may still use: the time left plus :data:`FINAL_OVERRUN_SHARE` of the budget."""
        return self.left() + FINAL_OVERRUN_SHARE * float(self.limit or 0.0)

    def expired(self) -> bool:
        return self.left() <= 0

    def search_left(self) -> float:
        """Seconds the search may still use: the time left minus the reserve."""
        return self.left() - self.reserve

    def keep(self, seconds: float) -> None:
        """Keep ``seconds`` for after the search (replaces the earlier reserve)."""
        self.reserve = max(0.0, float(seconds))

    def share(self, fraction: float, cap: float | None = None) -> float | None:
        """A ``fraction`` of the budget (at most ``cap`` and the time left); ``cap`` without a limit."""
        if self.limit is None:
            return cap
        seconds = min(fraction * self.limit, max(self.left(), 0.0))
        return seconds if cap is None else min(seconds, cap)

    def trial_limit(self, trial_time_limit: float | None, refit_factor: float = 0.0) -> float | None:
        """The time limit of the next trial: the configured one, cut to the search's time left (after the
        reserve), and short enough that the trial's own refit (``refit_factor`` times its time, see
        :func:`refit_factor`) fits in what is left should it become the best."""
        if self.limit is None:
            return trial_time_limit
        left = max(min(self.search_left(), self.left() / (1.0 + refit_factor)), 0.1)
        return left if trial_time_limit is None else min(trial_time_limit, left)

    def search_over(self) -> bool:
        """Whether too little time is left (after the reserve) for a useful trial."""
        return self.limit is not None and self.search_left() < MIN_TRIAL_SECONDS

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def to_dict(self) -> dict[str, Any]:
        used = self.elapsed()
        return {
            "limit": self.limit,
            "used": round(used, 3),
            "ratio": None if not self.limit else round(used / self.limit, 3),
            "reserve": round(self.reserve, 3),  # the seconds the search last kept for after it
            "notes": list(self.notes),
        }


def search_reserve(best_refit: float, others: list[float], limit: float | None) -> float:
    """Seconds a budgeted search keeps for after it: the refit of its best configuration and, with a
    post-hoc ensemble, of its :data:`ENSEMBLE_RESERVE_MEMBERS` next-best candidates (``others``, best first;
    empty without an ensemble), those at most :data:`ENSEMBLE_RESERVE_SHARE` of the budget ``limit``, plus
    :data:`RESERVE_MARGIN_SHARE` of ``limit`` for what the estimates miss."""
    extra = sum(others[:ENSEMBLE_RESERVE_MEMBERS])
    if limit is None:
        return best_refit + extra
    return best_refit + min(extra, ENSEMBLE_RESERVE_SHARE * limit) + RESERVE_MARGIN_SHARE * limit


def rows_growth(n_rows: float, n_fit_rows: float) -> float:
    """How many times longer a fit on ``n_rows`` rows takes than one on ``n_fit_rows``: the row ratio to the
    power :data:`REFIT_ROWS_EXPONENT`."""
    return (max(n_rows, 1.0) / max(n_fit_rows, 1.0)) ** REFIT_ROWS_EXPONENT


def refit_estimate(fit_seconds: float, n_folds: int, n_train_rows: int, n_rows: int) -> float:
    """Seconds a refit on all ``n_rows`` rows is expected to take, from a trial's measured fits: one fold's
    fit scaled by :func:`rows_growth` (and :data:`REFIT_SAFETY`)."""
    per_fold = fit_seconds / max(n_folds, 1)
    return REFIT_SAFETY * per_fold * rows_growth(n_rows, n_train_rows)


def refit_rows(n_rows: int, estimate: float | None, seconds: float) -> int:
    """How many of ``n_rows`` rows the final refit can afford in ``seconds``: all of them when its
    ``estimate`` (:func:`refit_estimate`; None: unknown) fits, else the share that does (the inverse of
    :func:`rows_growth`), at least :data:`MIN_REFIT_ROWS`."""
    if estimate is None or estimate <= 0 or estimate <= seconds:
        return n_rows
    share = (max(seconds, 0.0) / estimate) ** (1.0 / REFIT_ROWS_EXPONENT)
    return max(min(n_rows, MIN_REFIT_ROWS), min(n_rows, int(n_rows * share)))


def refit_factor(protocol: Any, n_rows: int) -> float:
    """Seconds of a refit on all ``n_rows`` rows per second of a trial under ``protocol`` (its folds fit
    ``n_folds`` times on a share of the rows), :data:`REFIT_SAFETY` included."""
    resolved = protocol.resolve(n_rows)
    rows = min(n_rows, resolved.max_rows or n_rows)
    if resolved.mode == "holdout":
        n_fits, train = 1, rows * (1.0 - float(resolved.holdout_fraction))
    else:
        n_fits, train = resolved.n_folds, rows * (1.0 - 1.0 / resolved.n_folds)
    return REFIT_SAFETY * rows_growth(n_rows, train) / n_fits


def budget_protocol(
    protocol: Any, n_rows: int, seconds: float | None, workers: int = 1, n_columns: int = 0
) -> tuple[Any, str]:
    """The evaluation protocol a search of ``seconds`` can afford on ``n_rows`` rows, and why it changed.

    With little time per row a cross-validation first keeps :data:`MIN_FOLDS` folds (a selection among
    many trials on one noisy holdout split overfits it: on a 7,400-row binary dataset the best holdout
    score was 0.06 ROC AUC above its test score), then becomes one holdout split — a row of ``n_columns``
    feature columns counting ``n_columns /`` :data:`WIDE_COLUMNS` rows when there are more — and when even that
    is too much, a stratified subset of rows (``max_rows``): what the protocol's key records, so such runs
    never mix with full ones in the KB. ``workers`` trials run at once (at most the machine's cores count).
    ``seconds`` None (no limit) changes nothing. Give it the *budgeted* seconds (not the time measured
    left), so that the same settings give the same protocol and resume."""
    from dataclasses import replace

    from metalearn.search.settings import machine_cores

    if seconds is None or seconds <= 0:
        return protocol, ""
    parallel = max(1, min(int(workers), machine_cores()))
    affordable = ROWS_PER_SECOND * seconds * parallel
    resolved = protocol.resolve(n_rows)
    rows = min(n_rows, resolved.max_rows or n_rows)
    wide = max(1.0, n_columns / WIDE_COLUMNS)  # a wide row costs as much as this many rows
    shape = f"{n_rows} rows" + (f" of {n_columns} columns" if wide > 1.0 else "")
    note = ""
    if resolved.mode == "cv" and rows * wide * resolved.n_folds > affordable:
        if resolved.n_folds > MIN_FOLDS and rows * wide * MIN_FOLDS <= affordable:
            protocol = replace(protocol, n_folds=MIN_FOLDS)
            note = f"{MIN_FOLDS}-fold CV instead of {resolved.n_folds}-fold ({shape}, {seconds:.0f} s for the search)"
        else:
            protocol = replace(protocol, mode="holdout")
            note = f"holdout validation instead of {resolved.n_folds}-fold CV ({shape}, {seconds:.0f} s for the search)"
    train_share = 1.0 - float(protocol.holdout_fraction)
    if protocol.resolve(n_rows).mode == "holdout" and rows * train_share > affordable:
        max_rows = max(500, int(affordable / train_share) // 500 * 500)  # rounded: a stable protocol key
        if max_rows < rows:
            protocol = replace(protocol, mode="holdout", max_rows=max_rows)
            note = (
                f"holdout validation on a subset of {max_rows} of {n_rows} rows "
                f"({seconds:.0f} s for the search)"
            )
    return protocol, note
