"""Single-row prediction latency as evidence, not as one number: percentiles with intervals, and
a decision that fails a guard only when the timings show it is broken.

The timings come in blocks: block i of the candidate and block i of the champion ran back to
back (in random order) on the same rows, so load on the machine at that moment hit both. A
percentile of all calls is the estimate; its interval is a paired block bootstrap (the same
resampled block indices for both models, so their shared load stays paired), and the interval of
any statistic of both models (their ratio, a rule's excess over its threshold) is the percentile
interval of that statistic over the same resamples. Blocks, not single calls, are resampled
because the load of a busy machine comes in stretches longer than one call.

A bound is judged on the interval of `value - threshold`: when the whole interval breaks the
bound the guard fails; when all of it keeps the bound the guard holds; when it straddles the
bound the two could not be told apart, and the guard holds with that said.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from loopml.errors import InvalidInput

FloatArray = npt.NDArray[np.float64]

PERCENTILES: Mapping[str, float] = {"latency_p50_ms": 50.0, "latency_p99_ms": 99.0}
"""The latency metrics, each a percentile of the single-row wall times in milliseconds."""
CONFIDENCE = 0.95
"""Two-sided coverage of every latency interval."""
RESAMPLES = 1_000
"""Bootstrap resamples of the blocks."""
_CHUNK = 250
"""Resamples computed at once: bounds the memory to `_CHUNK` copies of the timings."""


class Finding(StrEnum):
    HOLDS = "holds"
    FAILS = "fails"
    UNCLEAR = "unclear"


@dataclass(frozen=True)
class Interval:
    """An estimate and its interval, `low <= high`."""

    estimate: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{_figures(self.estimate)} [{_figures(self.low)}, {_figures(self.high)}]"


@dataclass(frozen=True, eq=False)
class LatencyTimings:
    """Milliseconds of single-row predictions, shaped (blocks, calls per block); the champion's
    block i (if any) ran right before or after the candidate's block i, on the same rows."""

    candidate_ms: FloatArray
    champion_ms: FloatArray | None = None

    def __post_init__(self) -> None:
        for name, times in (("candidate", self.candidate_ms), ("champion", self.champion_ms)):
            if times is None:
                continue
            if times.ndim != 2 or times.size == 0 or not np.all(np.isfinite(times)):
                raise InvalidInput(
                    f"The {name} timings are not a non-empty (blocks, calls) table of finite "
                    f"milliseconds (shape {times.shape}).",
                    "Time at least one block of calls per model.",
                )
        if self.champion_ms is not None and self.champion_ms.shape != self.candidate_ms.shape:
            raise InvalidInput(
                f"The champion was timed in blocks {self.champion_ms.shape}, the candidate in "
                f"{self.candidate_ms.shape}; paired timings need the same blocks.",
                "Time both models interleaved, block for block.",
            )

    @property
    def calls(self) -> int:
        """Calls per model."""
        return int(self.candidate_ms.size)

    @property
    def blocks(self) -> int:
        return int(self.candidate_ms.shape[0])


@dataclass(frozen=True, eq=False)
class LatencyEvidence:
    """The percentiles of each model (by metric name) and the same percentiles in each
    bootstrap resample, paired: resample j of the champion used the blocks of resample j of
    the candidate."""

    candidate: Mapping[str, float]
    candidate_resampled: Mapping[str, FloatArray]
    champion: Mapping[str, float] | None
    champion_resampled: Mapping[str, FloatArray] | None
    confidence: float = CONFIDENCE

    def interval(self, side: str, metric: str) -> Interval:
        """The interval of `metric` of the `side` ("candidate" or "champion")."""
        point, resampled = self._side(side)
        return interval_of(point[metric], resampled[metric], self.confidence)

    def ratio(self, metric: str, against: str) -> Interval:
        """The interval of the candidate's `metric` over the champion's `against`."""
        champion, resampled = self._side("champion")
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = self.candidate_resampled[metric] / resampled[against]
            estimate = self.candidate[metric] / champion[against]
        return interval_of(float(estimate), ratios, self.confidence)

    def _side(self, side: str) -> tuple[Mapping[str, float], Mapping[str, FloatArray]]:
        if side == "candidate":
            return self.candidate, self.candidate_resampled
        if self.champion is None or self.champion_resampled is None:
            raise InvalidInput(
                "The latency of the champion was not measured.",
                "Name a version to compare with (--against champion), or use a fixed number.",
            )
        return self.champion, self.champion_resampled


def latency_evidence(
    timings: LatencyTimings,
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> LatencyEvidence:
    """The percentiles of `timings` and their paired block-bootstrap resamples (seeded, so the
    same timings always give the same evidence)."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, timings.blocks, size=(resamples, timings.blocks))
    candidate = _percentiles(timings.candidate_ms, picks)
    champion = None if timings.champion_ms is None else _percentiles(timings.champion_ms, picks)
    return LatencyEvidence(
        candidate=_point(timings.candidate_ms),
        candidate_resampled=candidate,
        champion=None if timings.champion_ms is None else _point(timings.champion_ms),
        champion_resampled=champion,
        confidence=confidence,
    )


def interval_of(estimate: float, resampled: FloatArray, confidence: float) -> Interval:
    """The percentile interval of `resampled` at `confidence`, around `estimate`."""
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(resampled, [tail, 100.0 - tail])
    return Interval(float(estimate), float(low), float(high))


_SURELY: dict[str, Callable[[float, float], bool]] = {
    "<": lambda low, high: high < 0,
    "<=": lambda low, high: high <= 0,
    ">": lambda low, high: low > 0,
    ">=": lambda low, high: low >= 0,
    "==": lambda low, high: low == high == 0,
}
"""Every point of [low, high] keeps `x OP 0`."""
_POSSIBLY: dict[str, Callable[[float, float], bool]] = {
    "<": lambda low, high: low < 0,
    "<=": lambda low, high: low <= 0,
    ">": lambda low, high: high > 0,
    ">=": lambda low, high: high >= 0,
    "==": lambda low, high: low <= 0 <= high,
}
"""Some point of [low, high] keeps `x OP 0`."""


def judge(op: str, excess: Interval) -> Finding:
    """Whether `value OP threshold` holds, given the interval of `value - threshold`: it fails
    only when no point of the interval keeps the bound."""
    if _SURELY[op](excess.low, excess.high):
        return Finding.HOLDS
    if _POSSIBLY[op](excess.low, excess.high):
        return Finding.UNCLEAR
    return Finding.FAILS


def _figures(value: float) -> str:
    """Three significant figures: 0.0542, 1.00, 20.3, 123."""
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:#.3g}"


def _point(times_ms: FloatArray) -> dict[str, float]:
    values = np.percentile(times_ms, list(PERCENTILES.values()))
    return {name: float(v) for name, v in zip(PERCENTILES, values, strict=True)}


def _percentiles(times_ms: FloatArray, picks: npt.NDArray[np.int64]) -> dict[str, FloatArray]:
    """Each percentile of the calls of the blocks `picks` names, one value per row of picks."""
    levels = list(PERCENTILES.values())
    parts = []
    for start in range(0, len(picks), _CHUNK):
        chosen = times_ms[picks[start : start + _CHUNK]]  # (chunk, blocks, calls)
        flat = chosen.reshape(len(chosen), -1)
        parts.append(np.percentile(flat, levels, axis=1))  # (levels, chunk)
    values = np.concatenate(parts, axis=1)
    return {name: values[i] for i, name in enumerate(PERCENTILES)}
