"""Timing single-row predictions of two models so that the machine's load hits both alike.

The models take turns in blocks of `BLOCK_CALLS` calls, in a random order within each round, on
the same rows; block i of every model belongs to round i, so `loopml.domain.latency` can resample
rounds and keep the pairs. Timing stops when every model has made `CALLS` calls or when the
rounds have used `BUDGET_S` seconds per model, whichever comes first, after at least
`MIN_ROUNDS` rounds.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from loopml.domain.latency import LatencyTimings

CALLS = 2_000
"""Calls per model: the 99th percentile of 2,000 calls rests on its 20 slowest."""
BUDGET_S = 3.0
"""Seconds of timing per model, at most (a slow model makes fewer calls)."""
BLOCK_CALLS = 10
"""Consecutive calls of one model between turns."""
MIN_ROUNDS = 5
"""Rounds made whatever the budget, so there is something to resample."""
ROWS = 200
"""Distinct rows of the data, cycled through."""
WARMUP_CALLS = 5
"""Calls per model before timing, not counted."""


class Predicts(Protocol):
    def predict(self, inputs: Any) -> Any: ...


@dataclass(frozen=True)
class Timed:
    """The timings, and what it took to get them (for the report)."""

    timings: LatencyTimings
    seconds: float
    rows: int
    block_calls: int


def time_interleaved(
    models: Sequence[Predicts],
    features: Any,
    *,
    calls: int = CALLS,
    budget_s: float = BUDGET_S,
    block_calls: int = BLOCK_CALLS,
    seed: int = 0,
) -> Timed:
    """Time single-row predictions of `models` (the candidate first, then the champion, if
    any) on up to `ROWS` rows of the DataFrame `features`, taking turns in blocks."""
    rows = [features.iloc[[i]] for i in range(min(len(features), ROWS))]
    for model in models:
        for i in range(WARMUP_CALLS):
            model.predict(rows[i % len(rows)])
    order = np.random.default_rng(seed)
    blocks: list[list[list[float]]] = [[] for _ in models]
    started = time.perf_counter()
    spent = 0.0
    while not _enough(len(blocks[0]), block_calls, calls, spent, budget_s * len(models)):
        first = len(blocks[0]) * block_calls
        turn = [rows[(first + k) % len(rows)] for k in range(block_calls)]
        for index in order.permutation(len(models)):
            blocks[index].append(_time_block(models[index], turn))
        spent = time.perf_counter() - started
    candidate, *champion = (np.asarray(b, dtype=np.float64) for b in blocks)
    return Timed(
        LatencyTimings(candidate, champion[0] if champion else None),
        spent,
        len(rows),
        block_calls,
    )


def _enough(rounds: int, block_calls: int, calls: int, spent_s: float, budget_s: float) -> bool:
    if rounds < MIN_ROUNDS:
        return False
    return rounds * block_calls >= calls or spent_s >= budget_s


def _time_block(model: Predicts, rows: list[Any]) -> list[float]:
    """Milliseconds of each single-row call."""
    times_ms = []
    for row in rows:
        start = time.perf_counter()
        model.predict(row)
        times_ms.append((time.perf_counter() - start) * 1000.0)
    return times_ms
