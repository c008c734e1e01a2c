"""The closed loop's decisions, as pure functions of the facts: whether to retrain, which rows
train and which judge, whether a challenger is promoted, and how a watch ends. The live loop
(`loopml.loops`) and `loopml loop backtest` (`loopml.backtest`) gather the facts their own way
(the prediction log, or a replayed table) and act on the same decisions.

    decide_trigger(TriggerFacts, TriggerPolicy)      -> TriggerDecision
    performance_drop(recent, baseline, margin=...) -> PerformanceCheck (a trigger's evidence)
    split_rows(times_us, share=..., mode="time")     -> Split (training rows, holdout rows)
    recency_weights(ages_s, half_life_s)             -> weights for a recency-weighted recipe
    training_weights(times, bases=, now_us=, ...)    -> those weights by time or by rows
    decide_promotion(PromotionFacts)                 -> PromotionDecision
    judge_watch(WatchFacts)                          -> WatchVerdict

The states a loop run, a watch and an alert go through, with their allowed moves
(`check_move`), are in `loopml.domain.states` (re-exported here).

How sure each decision is comes from `loopml.domain.paired`: a rule passes only when the paired
difference clears its margin at the loop's confidence, and with too few rows it is undecided:
the loop waits for more labelled rows (they are added to the holdout) instead of deciding on
noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from loopml.domain.paired import PairedOutcome, Verdict
from loopml.domain.states import MOVES as MOVES
from loopml.domain.states import RunState as RunState
from loopml.domain.states import WatchState as WatchState
from loopml.domain.states import check_move as check_move
from loopml.errors import InvalidInput

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


# -- whether to retrain -----------------------------------------------------------------------


@dataclass(frozen=True)
class TriggerFacts:
    """What a loop sees when it looks: each field is one reason to retrain (or None)."""

    forced: bool = False
    """`loopml loop run --now`."""
    new_alert: str | None = None
    """An alert of a trigger opened or reopened since the loop last looked."""
    firing_alert: str | None = None
    """An alert of a trigger that is firing now, however old."""
    schedule_due: str | None = None
    """An `every:` trigger that came due."""
    performance: str | None = None
    """A performance trigger whose drop is established (`performance_drop`)."""
    labelled_rows: int = 0
    """Labelled rows the training data would take from the log now."""
    new_labelled_rows: int = 0
    """Labelled rows served since the last retraining began."""
    retrained_before: bool = False
    """Whether the loop retrained before (a still-firing trigger then retries)."""
    waiting: str | None = None
    """A challenger waiting for more rows to be decided (it is scored again first)."""


@dataclass(frozen=True)
class TriggerPolicy:
    min_rows: int = 100
    """Fewest labelled rows to retrain on."""
    retry_rows: int = 500
    """New labelled rows after which a trigger still true retrains again."""


@dataclass(frozen=True)
class TriggerDecision:
    trigger: str | None
    """What fired, or None: no retraining now."""
    reason: str


def decide_trigger(facts: TriggerFacts, policy: TriggerPolicy) -> TriggerDecision:
    """Retrain for the first reason that holds, when there are rows enough to retrain on.

    A trigger that stays true (an alert still firing, a performance drop still established)
    after a retraining retrains again only once `retry_rows` new labelled rows have come: a
    held retraining is retried when there is new evidence, never in a tight loop. A waiting
    challenger is decided before any new retraining, unless one is forced or the champion's
    performance has surely dropped (then a fresher challenger replaces the waiting one)."""
    if facts.waiting is not None and not (facts.forced or facts.performance):
        return TriggerDecision(None, f"{facts.waiting} waits for more labelled rows")
    fresh = facts.new_labelled_rows >= policy.retry_rows or not facts.retrained_before
    still = facts.firing_alert or facts.performance
    reasons = [
        "manual" if facts.forced else None,
        facts.new_alert,
        facts.schedule_due,
        facts.performance if fresh else None,
        f"{still} (still true, {facts.new_labelled_rows:,} new labelled rows)"
        if still and fresh and facts.retrained_before
        else None,
    ]
    trigger = next((r for r in reasons if r), None)
    if trigger is None:
        if still:
            return TriggerDecision(
                None,
                f"{still}: already retrained for it; retrying after {policy.retry_rows:,} new "
                f"labelled rows ({facts.new_labelled_rows:,} so far)",
            )
        return TriggerDecision(None, "no trigger fired")
    if facts.labelled_rows < policy.min_rows and not facts.forced:
        return TriggerDecision(
            None,
            f"{trigger}, but only {facts.labelled_rows:,} labelled rows to train on "
            f"(needs {policy.min_rows:,})",
        )
    return TriggerDecision(trigger, trigger)


@dataclass(frozen=True)
class PerformanceCheck:
    """A model's metric on its newest labelled rows against its own baseline: the same
    metric on the first labelled rows it served."""

    metric: str
    value: float
    baseline: float
    low: float
    high: float
    """The interval of `value - baseline` at the confidence (two-sided `2c - 1`)."""
    margin: float
    rows: int
    baseline_rows: int
    dropped: bool
    detail: str


def performance_drop(
    recent: tuple[npt.NDArray[Any], npt.NDArray[Any]],
    baseline: tuple[npt.NDArray[Any], npt.NDArray[Any]],
    *,
    margin: float,
    confidence: float,
    metric: str = "accuracy",
    lower_is_better: bool = False,
    seed: int = 0,
) -> PerformanceCheck:
    """Whether `metric` of the (labels, predictions) `recent` is worse than on `baseline` (the
    first rows the same model served, other rows) by more than `margin`, with `confidence`:
    the bound of the difference, from a seeded bootstrap of each sample on its own (the rows
    are not paired), must be past the margin. Judging against rows the model really served,
    not the score it was registered with, keeps an optimistic test split from crying drop."""
    from loopml.domain.confidence import check_confidence

    check_confidence(confidence)
    if min(len(recent[0]), len(baseline[0])) == 0:
        raise InvalidInput("No labelled rows to measure performance on.", "Feed back labels.")
    level = 2 * confidence - 1
    rng = np.random.default_rng(seed)
    value, now = _resampled(recent, metric, rng)
    before, then = _resampled(baseline, metric, rng)
    with np.errstate(all="ignore"):
        differences = now - then
    differences = differences[np.isfinite(differences)]
    tail = (1 - level) / 2 * 100
    estimate = value - before
    low, high = (
        np.percentile(differences, [tail, 100 - tail]) if differences.size else (estimate,) * 2
    )
    low, high = min(float(low), estimate), max(float(high), estimate)
    dropped = low > margin if lower_is_better else high < -margin
    worse = "above" if lower_is_better else "below"
    detail = (
        f"{metric} {value:.4f} on the last {len(recent[0]):,} labelled rows against "
        f"{before:.4f} on its first {len(baseline[0]):,}: {estimate:+.3f} "
        f"[{low:+.3f}, {high:+.3f}] ({confidence:.0%} bounds); "
        + (f"surely {worse} by more than {margin:g}" if dropped else "no drop established")
    )
    return PerformanceCheck(
        metric,
        value,
        before,
        low,
        high,
        margin,
        len(recent[0]),
        len(baseline[0]),
        dropped,
        detail,
    )


def estimate_drop(
    estimate: float,
    standard_error: float,
    *,
    baseline: float,
    margin: float,
    confidence: float,
    rows: int,
) -> PerformanceCheck:
    """Whether a label-free estimate of accuracy (from the model's own confidence, with its
    standard error) is surely below `baseline - margin`: its upper bound at `confidence`
    (normal) must be. The estimate sees covariate shift, never concept drift."""
    from loopml.domain.confidence import check_confidence
    from loopml.domain.p_values import normal_quantile

    check_confidence(confidence)
    high = estimate + normal_quantile(confidence) * max(standard_error, 0.0)
    dropped = high < baseline - margin
    detail = (
        f"estimated accuracy {estimate:.4f} (upper bound {high:.4f} at {confidence:.0%}) on "
        f"{rows:,} unlabelled rows against the baseline {baseline:.4f}; "
        + (f"surely below by more than {margin:g}" if dropped else "no drop established")
    )
    diff = estimate - baseline
    return PerformanceCheck(
        "estimated_accuracy", estimate, baseline, diff - (high - estimate), high - baseline,
        margin, rows, 0, dropped, detail,
    )  # fmt: skip


def _resampled(
    rows: tuple[npt.NDArray[Any], npt.NDArray[Any]], metric: str, rng: np.random.Generator
) -> tuple[float, FloatArray]:
    """`metric` of the rows, and of `RESAMPLES` bootstrap resamples of them."""
    from loopml.domain.paired import RESAMPLES, row_counts
    from loopml.domain.weighted_metrics import EncodedRows

    truth, predicted = rows
    n = len(truth)
    encoded = EncodedRows.encode(truth, {"m": predicted}, {"m": None}, {metric})
    value = float(encoded.value(metric, "m", np.ones((1, n)))[0])
    counts = row_counts(rng, RESAMPLES, n)
    with np.errstate(all="ignore"):
        return value, np.asarray(encoded.value(metric, "m", counts), dtype=float)


# -- which rows train and which judge ---------------------------------------------------------

HOLDOUT_MODES = ("time", "random")


@dataclass(frozen=True)
class Split:
    """Positions (into the labelled rows) of the rows that train and of those that judge."""

    train: IntArray
    holdout: IntArray


def split_rows(
    times_us: npt.NDArray[Any], *, share: float, mode: str, seed: int, most: int | None = None
) -> Split:
    """Hold out `share` of the rows, and no more than `most` (at least one, and one left to
    train): the newest by `times_us` (`mode="time"`, ties in row order), the closest thing to
    the future the challenger will serve; or a seeded random draw (`mode="random"`).

    The cap keeps the challenger fresh: every row held out is a row it does not learn from,
    and after a change the newest rows are the ones that teach it; a challenger left
    undecided is judged again on the rows served since, so a small holdout grows into a
    large one without withholding the change from the model."""
    if mode not in HOLDOUT_MODES:
        raise InvalidInput(f"Unknown holdout {mode!r}.", f"Use one of: {', '.join(HOLDOUT_MODES)}.")
    if not 0 < share < 1:
        raise InvalidInput(f"The holdout share {share:g} is not between 0 and 1.", "Give e.g. 0.3.")
    n = len(times_us)
    if n < 2:
        raise InvalidInput(
            f"{n} labelled row(s) cannot be split into training rows and a holdout.",
            "Wait for more labelled rows.",
        )
    cut = min(n - 1, max(1, round(n * share)), n if most is None else max(1, most))
    if mode == "time":
        order = np.argsort(np.asarray(times_us), kind="stable")
    else:
        order = np.random.default_rng(seed).permutation(n)
        return Split(np.sort(order[cut:]), np.sort(order[:cut]))
    return Split(np.sort(order[: n - cut]), np.sort(order[n - cut :]))


def recency_weights(ages_s: npt.NDArray[Any], half_life_s: float) -> FloatArray:
    """A weight per row halving with every `half_life_s` of age (a row of age 0 weighs 1)."""
    if not half_life_s > 0 or not math.isfinite(half_life_s):
        raise InvalidInput(
            f"The half-life {half_life_s:g} s is not a positive duration.", "Give e.g. 14d."
        )
    ages = np.clip(np.asarray(ages_s, dtype=float), 0.0, None)
    return np.asarray(0.5 ** (ages / half_life_s), dtype=float)


def training_weights(
    times_us: npt.NDArray[Any],
    *,
    bases: int,
    now_us: int,
    half_life_s: float | None = None,
    half_life_rows: int | None = None,
) -> FloatArray:
    """The weights of a recency-weighted recipe for `bases` base rows followed by labelled rows
    served at `times_us`: a row's age is the time from it to `now_us` (`half_life_s`), or the
    labelled rows served after it (`half_life_rows`); base rows count as old as the oldest
    labelled row."""
    times = np.asarray(times_us, dtype=np.int64)
    if half_life_rows is not None:
        order = np.argsort(-times, kind="stable")
        ages = np.empty(len(times), dtype=float)
        ages[order] = np.arange(len(times), dtype=float)
        half = float(half_life_rows)
    elif half_life_s is not None:
        ages = (now_us - times) / 1e6
        half = float(half_life_s)
    else:
        raise InvalidInput(
            "A recency-weighted recipe needs a half-life.", 'Add ", half-life 14d" to it.'
        )
    oldest = float(ages.max()) if len(ages) else 0.0
    return recency_weights(np.r_[np.full(bases, oldest), ages], half)


# -- whether the challenger is promoted -------------------------------------------------------


@dataclass(frozen=True)
class RuleResult:
    """A promotion rule or guard as judged on the holdout."""

    rule: str
    verdict: Verdict
    detail: str
    needed_rows: int | None = None


@dataclass(frozen=True)
class PromotionFacts:
    rules: Sequence[RuleResult]
    checks: Sequence[tuple[str, bool, str]] = ()
    """Data checks of the holdout: (name, passed, detail)."""
    approve: bool = False
    """Mode approve: a person promotes a challenger that wins."""
    can_wait: bool = True
    """Whether an undecided challenger may wait for more rows (False: the wait is over)."""


@dataclass(frozen=True)
class PromotionDecision:
    state: RunState
    """PROMOTED, AWAITING_APPROVAL, WAITING or HELD."""
    reason: str


def decide_promotion(facts: PromotionFacts) -> PromotionDecision:
    """Promote when every rule passes and every data check holds; hold when a check or a
    rule fails; otherwise (a rule undecided) wait for more rows, while waiting is allowed."""
    if not facts.rules:
        raise InvalidInput("A promotion needs at least one rule.", "Give --promote-if.")
    failed_checks = [f"{name} ({detail})" for name, ok, detail in facts.checks if not ok]
    if failed_checks:
        return PromotionDecision(RunState.HELD, "data check failed: " + "; ".join(failed_checks))
    failed = [r for r in facts.rules if r.verdict is Verdict.FAIL]
    if failed:
        return PromotionDecision(RunState.HELD, "; ".join(f"{r.rule} ({r.detail})" for r in failed))
    undecided = [r for r in facts.rules if r.verdict is Verdict.UNDECIDED]
    if undecided:
        state = RunState.WAITING if facts.can_wait else RunState.HELD
        need = max((r.needed_rows or 0 for r in undecided), default=0)
        told = any("would tell" in r.detail for r in undecided)
        more = f"; about {need:,} rows would tell" if need and not told else ""
        tail = "waiting for more labelled rows" if facts.can_wait else "no more waiting"
        text = "; ".join(f"{r.rule} ({r.detail})" for r in undecided)
        return PromotionDecision(state, f"undecided: {text}{more}; {tail}")
    summary = "; ".join(f"{r.rule} ({r.detail})" for r in facts.rules)
    state = RunState.AWAITING_APPROVAL if facts.approve else RunState.PROMOTED
    return PromotionDecision(state, summary)


def rule_result(rule: str, outcome: PairedOutcome) -> RuleResult:
    return RuleResult(rule, outcome.verdict, outcome.detail, outcome.needed_rows)


# -- how a watch ends -------------------------------------------------------------------------


@dataclass(frozen=True)
class WatchFacts:
    rows: int
    """Labelled rows the new champion served since its promotion."""
    min_rows: int
    over: bool
    """The watch's time is up (or a newer promotion concludes it with the evidence so far)."""
    outcome: PairedOutcome | None = None
    """The new champion against the old on those rows: the rule `new >= old - margin` (or
    `<= old + margin` for a lower-is-better metric) at the loop's confidence."""


@dataclass(frozen=True)
class WatchVerdict:
    state: WatchState
    """WATCHING (go on), KEPT or ROLLED_BACK."""
    reason: str


def judge_watch(facts: WatchFacts) -> WatchVerdict:
    """Roll back only when the new champion is worse than the old one would have been on the
    same rows, beyond the margin, with the loop's confidence; keep it when the watch is over
    without that; otherwise go on watching."""
    if facts.rows < facts.min_rows or facts.outcome is None:
        if facts.over:
            return WatchVerdict(
                WatchState.KEPT,
                f"only {facts.rows:,} labelled rows served during the watch (fewer than "
                f"{facts.min_rows:,}): not enough to judge",
            )
        return WatchVerdict(WatchState.WATCHING, f"{facts.rows:,} labelled rows so far")
    if facts.outcome.verdict is Verdict.FAIL:
        return WatchVerdict(WatchState.ROLLED_BACK, f"worse than before: {facts.outcome.detail}")
    if facts.over:
        return WatchVerdict(WatchState.KEPT, facts.outcome.detail)
    return WatchVerdict(WatchState.WATCHING, facts.outcome.detail)


def watch_rule(rollback_margin: float, lower_is_better: bool) -> tuple[str, float]:
    """The watch's rule as (op, margin) on `new - old`: `>= -margin`, or `<= +margin` for a
    lower-is-better metric."""
    return ("<=", rollback_margin) if lower_is_better else (">=", -rollback_margin)
