"""Candidate and champion compared on the same rows: the difference of a metric with its
interval, and a rule decided on that interval at a stated confidence, or left undecided.

Both models answer the same labelled rows, so their errors are paired, and a difference is far
surer than two separate scores suggest (a shared hard row costs both) or far less sure than one
number shows (0.01 on 150 rows is noise). Two methods:

- accuracy, candidate minus champion: exact. Only the rows where exactly one model is right
  move the difference: `b` rows the candidate alone gets right, `c` the champion alone, `m = b
  + c`, and the difference is `(b - c) / n` over all `n` rows. Given `m`, `b` is binomial with
  share `theta`, and `(b - c) / n = (m / n) * (2 * theta - 1)`, so the Clopper-Pearson
  interval `[lo, hi]` of `theta` (exact binomial on `b` out of `m`) maps to the interval
  `[(m / n) * (2 * lo - 1), (m / n) * (2 * hi - 1)]` of the difference: conditional on the
  number of disagreements, as McNemar's exact test is, whose p-value for "no difference"
  comes with it. Without a disagreement the difference is exactly 0.
- any other metric, or accuracy against a scaled champion: a paired bootstrap over rows (each
  resample draws the same rows for both models), seeded, `RESAMPLES` resamples, the percentile
  interval (widened to the estimate in the rare case it misses it, on few skewed rows). A
  resample is a vector of row counts, so a block of resamples is one matrix product
  (`loopml.domain.weighted_metrics`).

With a horizon of `H` rows the interval is a prediction interval: where the difference would
fall over the next `H` rows served (a model that is better on average still serves worse over a
short stretch now and then). Each resample then draws the holdout's `n` rows (what the rows may
be) and `H` rows from those (what the next `H` rows may be), so the interval holds both the
holdout's uncertainty and the future's noise, and its width never falls below the future's
noise however many rows the holdout has: a rule judged over a horizon passes only for a
difference that will show over those rows. The width goes as `sqrt(1/n + 1/H)`.

A rule `METRIC OP [FACTOR *] champion.METRIC [+|- MARGIN]` says `difference OP MARGIN` with
`difference = candidate - FACTOR * champion`. At confidence `c` it is judged on the one-sided
bounds at `c` of the difference (the ends of its two-sided `2c - 1` interval): it passes when
every point between them keeps the rule (for `>=`: the lower bound is at least the margin), it
fails when none does (the upper bound is below the margin), and otherwise it is undecided, with
a rough projection of the rows that would tell: `n * (half_width / |difference - margin|)^2`.
So a rule for a lower-is-better metric (`rmse <= champion.rmse - 0.1`) is the mirror image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from loopml.domain.confidence import check_confidence, check_horizon
from loopml.domain.latency import Finding, Interval, judge
from loopml.domain.weighted_metrics import (
    CLASSIFICATION,
    REGRESSION,
    EncodedRows,
    comparable_labels,
)
from loopml.errors import InvalidInput

FloatArray = npt.NDArray[np.float64]

RESAMPLES = 2_000
"""Bootstrap resamples of the rows."""
PAIRED_METRICS = CLASSIFICATION | REGRESSION
"""The metrics a paired comparison computes (latency has its own evidence)."""
_CELLS = 2_000_000
"""Row counts held at once: resamples per block times rows."""
_FAR = 100
"""A projection beyond this many times the rows is no projection."""


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    UNDECIDED = "undecided"


_VERDICTS = {Finding.HOLDS: Verdict.PASS, Finding.FAILS: Verdict.FAIL}


@dataclass(frozen=True, eq=False)
class PairedRows:
    """The labels and both models' predictions on the same rows (aligned), and each model's
    class probabilities (columns in the sorted order of the labels) when it has them."""

    truth: npt.NDArray[Any]
    candidate: npt.NDArray[Any]
    champion: npt.NDArray[Any]
    candidate_proba: FloatArray | None = None
    champion_proba: FloatArray | None = None

    def __post_init__(self) -> None:
        sizes = {len(self.truth), len(self.candidate), len(self.champion)}
        sizes |= {len(p) for p in (self.candidate_proba, self.champion_proba) if p is not None}
        if len(sizes) != 1 or not len(self.truth):
            raise InvalidInput(
                f"Paired rows need labels, both models' predictions (and probabilities) on the "
                f"same rows; got lengths {sorted(sizes)}.",
                "Score both models on the same non-empty labelled rows.",
            )

    @property
    def rows(self) -> int:
        return len(self.truth)

    def swapped(self) -> PairedRows:
        """The same rows with the two models' roles exchanged."""
        return PairedRows(
            self.truth, self.champion, self.candidate, self.champion_proba, self.candidate_proba
        )


@dataclass(frozen=True)
class Difference:
    """`candidate - factor * champion` of a metric, with its two-sided interval."""

    metric: str
    candidate: float
    champion: float
    estimate: float
    low: float
    high: float
    confidence: float
    rows: int
    method: str
    p_value: float | None = None
    """McNemar's exact p-value for "no difference" (accuracy, exact method only)."""


@dataclass(frozen=True)
class PairedOutcome:
    """A rule judged on the paired difference: its one-sided bounds at `confidence`, the
    verdict, and for an undecided rule the rows that would roughly tell (None: far more)."""

    metric: str
    candidate: float
    champion: float
    difference: float
    low: float
    high: float
    confidence: float
    rows: int
    method: str
    margin: float
    verdict: Verdict
    needed_rows: int | None
    p_value: float | None
    detail: str
    horizon: int | None = None
    """The rows the interval predicts the difference over (None: the difference itself)."""


def paired_difference(
    metric: str,
    rows: PairedRows,
    *,
    confidence: float,
    against: str | None = None,
    factor: float = 1.0,
    resamples: int = RESAMPLES,
    seed: int = 0,
    horizon: int | None = None,
) -> Difference:
    """`metric` of the candidate minus `factor` times `against` (default: the same metric) of
    the champion, with its two-sided interval at `confidence`: exact for accuracy minus
    accuracy, else a paired bootstrap seeded by `seed`; with a `horizon`, the prediction
    interval of the difference over the next `horizon` rows (always a bootstrap)."""
    _check_level(confidence)
    check_horizon(horizon)
    against = against or metric
    for name in (metric, against):
        if name not in PAIRED_METRICS:
            raise InvalidInput(
                f"{name!r} cannot be compared row by row.",
                f"Use one of: {', '.join(sorted(PAIRED_METRICS))}.",
            )
    if metric == against == "accuracy" and factor == 1.0 and horizon is None:
        return _exact_accuracy(rows, confidence)
    return _bootstrap(
        metric,
        against,
        rows,
        confidence=confidence,
        factor=factor,
        resamples=resamples,
        seed=seed,
        horizon=horizon,
    )


def decide(
    rows: PairedRows,
    *,
    metric: str,
    op: str,
    margin: float,
    confidence: float,
    against: str | None = None,
    factor: float = 1.0,
    resamples: int = RESAMPLES,
    seed: int = 0,
    horizon: int | None = None,
) -> PairedOutcome:
    """The rule `metric OP factor * champion.against + margin` judged on `rows` at
    `confidence` (over the next `horizon` rows, if given): PASS when both one-sided bounds keep
    it, FAIL when neither does, else UNDECIDED with the rows that would roughly tell."""
    check_confidence(confidence)
    found = paired_difference(
        metric,
        rows,
        confidence=2 * confidence - 1,
        against=against,
        factor=factor,
        resamples=resamples,
        seed=seed,
        horizon=horizon,
    )
    excess = Interval(found.estimate - margin, found.low - margin, found.high - margin)
    defined = math.isfinite(found.low) and math.isfinite(found.high)  # e.g. not AUC of 1 class
    finding = judge(op, excess) if defined else Finding.UNCLEAR
    verdict = _VERDICTS.get(finding, Verdict.UNDECIDED)
    needed = _needed_rows(found, margin, horizon) if verdict is Verdict.UNDECIDED else None
    same = (against or metric) == metric and factor == 1.0
    name = metric if same else f"{metric} - {factor:g} x champion.{against or metric}"
    return PairedOutcome(
        metric=metric,
        candidate=found.candidate,
        champion=found.champion,
        difference=found.estimate,
        low=found.low,
        high=found.high,
        confidence=confidence,
        rows=found.rows,
        method=found.method,
        margin=margin,
        verdict=verdict,
        needed_rows=needed,
        p_value=found.p_value,
        detail=_detail(
            name,
            found,
            confidence=confidence,
            margin=margin,
            verdict=verdict,
            needed=needed,
            horizon=horizon,
        ),
        horizon=horizon,
    )


def _check_level(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise InvalidInput(
            f"The confidence level {confidence:g} of an interval is not between 0 and 1.",
            "Ask for an interval at a level such as 0.9.",
        )


def _exact_accuracy(rows: PairedRows, confidence: float) -> Difference:
    from scipy import stats

    truth = comparable_labels(rows.truth)
    candidate_right = comparable_labels(rows.candidate) == truth
    champion_right = comparable_labels(rows.champion) == truth
    b = int(np.sum(candidate_right & ~champion_right))
    c = int(np.sum(champion_right & ~candidate_right))
    m, n = b + c, rows.rows
    low = high = 0.0
    p_value = 1.0
    if m:
        test = stats.binomtest(b, m, 0.5)
        share = test.proportion_ci(confidence_level=confidence, method="exact")
        low, high = m / n * (2 * share.low - 1), m / n * (2 * share.high - 1)
        p_value = float(test.pvalue)
    return Difference(
        metric="accuracy",
        candidate=float(candidate_right.mean()),
        champion=float(champion_right.mean()),
        estimate=(b - c) / n,
        low=float(low),
        high=float(high),
        confidence=confidence,
        rows=n,
        method=f"exact binomial on {m:,} disagreements",
        p_value=p_value,
    )


def _bootstrap(
    metric: str,
    against: str,
    rows: PairedRows,
    *,
    confidence: float,
    factor: float,
    resamples: int,
    seed: int,
    horizon: int | None = None,
) -> Difference:
    sides = EncodedRows.encode(
        rows.truth,
        {"candidate": rows.candidate, "champion": rows.champion},
        {"candidate": rows.candidate_proba, "champion": rows.champion_proba},
        {metric, against},
    )
    whole = np.ones((1, rows.rows))
    candidate = float(sides.value(metric, "candidate", whole)[0])
    champion = float(sides.value(against, "champion", whole)[0])
    rng = np.random.default_rng(seed)
    block = max(1, _CELLS // (rows.rows + (horizon or 0)))
    parts = []
    for start in range(0, resamples, block):
        size = min(block, resamples - start)
        weights = (
            row_counts(rng, size, rows.rows)
            if horizon is None
            else future_counts(rng, size, rows.rows, horizon)
        )
        with np.errstate(all="ignore"):
            parts.append(
                sides.value(metric, "candidate", weights)
                - factor * sides.value(against, "champion", weights)
            )
    differences = np.concatenate(parts)
    differences = differences[np.isfinite(differences)]  # a resample where it is undefined
    tail = (1.0 - confidence) / 2.0 * 100.0
    estimate = candidate - factor * champion
    low, high = (
        np.percentile(differences, [tail, 100.0 - tail]) if differences.size else (np.nan, np.nan)
    )
    return Difference(
        metric=metric,
        candidate=candidate,
        champion=champion,
        estimate=estimate,
        low=min(float(low), estimate),
        high=max(float(high), estimate),
        confidence=confidence,
        rows=rows.rows,
        method=(
            f"paired bootstrap, {resamples:,} resamples"
            if horizon is None
            else f"predictive paired bootstrap, {resamples:,} resamples"
        ),
    )


def row_counts(rng: np.random.Generator, resamples: int, n: int) -> FloatArray:
    """How often each of `n` rows is drawn in each resample, shaped (resamples, n)."""
    return _tally(rng.integers(0, n, size=(resamples, n)), n)


def future_counts(rng: np.random.Generator, resamples: int, n: int, horizon: int) -> FloatArray:
    """How often each of `n` rows is drawn among `horizon` rows drawn from a resample of the
    `n` rows, shaped (resamples, n) and scaled to sum to `n` as a resample's counts do: the
    next `horizon` rows as the holdout says they may be."""
    picks = rng.integers(0, n, size=(resamples, n))
    future = np.take_along_axis(picks, rng.integers(0, n, size=(resamples, horizon)), axis=1)
    return _tally(future, n) * (n / horizon)


def _tally(picks: npt.NDArray[np.int64], n: int) -> FloatArray:
    """Per row of `picks` (row positions below `n`), how often each position was picked."""
    resamples = len(picks)
    flat = (picks + n * np.arange(resamples)[:, None]).ravel()
    counts = np.bincount(flat, minlength=resamples * n).reshape(resamples, n)
    return np.asarray(counts, dtype=np.float64)


def _needed_rows(found: Difference, margin: float, horizon: int | None = None) -> int | None:
    """Rows at which the interval's half-width, shrinking as sqrt(1/rows + 1/horizon), would
    clear the distance between the difference and the margin, to two figures; None when far
    away, or when no number of rows would (the horizon's own noise is wider)."""
    distance = abs(found.estimate - margin)
    above = found.estimate >= margin
    half = found.estimate - found.low if above else found.high - found.estimate
    if distance == 0 or not math.isfinite(half):
        return None
    future = 0.0 if horizon is None else 1.0 / horizon
    spread = half / math.sqrt(1.0 / found.rows + future)
    inverse = (distance / spread) ** 2 - future
    if inverse <= 0:
        return None
    needed = 1.0 / inverse
    return _rounded(math.ceil(needed)) if needed <= _FAR * found.rows else None


def _detail(
    name: str,
    found: Difference,
    *,
    confidence: float,
    margin: float,
    verdict: Verdict,
    needed: int | None,
    horizon: int | None = None,
) -> str:
    """`accuracy +0.027 [-0.004, +0.058] (90% bounds) on 600 rows (exact binomial on 41
    disagreements): not sure it clears +0.01; about 1,900 rows would tell`."""
    over = "" if horizon is None else f" over the next {horizon:,} rows"
    said = (
        f"{name} {found.estimate:+.3f} [{found.low:+.3f}, {found.high:+.3f}] "
        f"({confidence:.0%} bounds{over}) on {found.rows:,} rows ({found.method})"
    )
    bound = f"{margin:+g}"
    if not all(map(math.isfinite, (found.estimate, found.low, found.high))):
        return f"{said}: {name} is undefined on these rows (one class, or constant labels)"
    if verdict is Verdict.PASS:
        return f"{said}: clears {bound}"
    if verdict is Verdict.FAIL:
        return f"{said}: surely does not clear {bound}"
    if needed is not None:
        rows = f"about {needed:,} rows would tell"
    elif horizon is not None:
        rows = f"the difference is too small to show surely over {horizon:,} rows"
    else:
        rows = f"far more than {found.rows:,} rows would be needed"
    return f"{said}: not sure it clears {bound}; {rows}"


def _rounded(rows: int) -> int:
    """Two significant figures: 1,873 -> 1,900."""
    digits = max(0, len(str(rows)) - 2)
    return int(math.ceil(rows / 10**digits) * 10**digits)
