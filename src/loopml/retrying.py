"""The one retry policy of loopml, on tenacity: how often a call that failed in a way worth
another try is tried again, and how long it waits in between.

    retrying(attempts=3, first_wait_s=0.5, max_wait_s=30.0)(send)

tries `send` up to 3 times, waiting 0.5 s then 1 s (each wait doubles, up to `max_wait_s`, plus
up to `jitter_s` of random spread), retrying only the errors `retry_on` accepts (by default a
loopml error that says it is retryable, such as Unavailable; never a 4xx-like InvalidInput or
NotFound), and raises the last error unchanged when it gives up. `within_s` bounds the time
instead of, or as well as, the tries: no wait starts that would end past it.

`sleep` and `clock` are parameters, so tests count the tries and read the waits without
waiting. A thread that cannot sleep for one job (the tracking flusher) schedules its next try
with `backoff_s`, the same waits.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from loopml.errors import InvalidInput, LoopmlError

if TYPE_CHECKING:  # imported when a policy is made: a command that never retries needs none
    import tenacity

__all__ = ["backoff_s", "is_retryable", "retrying"]

_MAX_DOUBLINGS = 64
"""Waits stop doubling here (2**64 times the first wait is past any cap)."""


def is_retryable(exc: BaseException) -> bool:
    """True for a loopml error that says trying again may succeed (Unavailable)."""
    return isinstance(exc, LoopmlError) and exc.retryable


def backoff_s(retry: int, first_wait_s: float, max_wait_s: float, jitter_s: float = 0.0) -> float:
    """The wait before retry number `retry` (1 for the first retry): `first_wait_s` doubled
    `retry - 1` times, plus a random share of `jitter_s`, never more than `max_wait_s`."""
    doublings = min(max(retry - 1, 0), _MAX_DOUBLINGS)
    spread = random.uniform(0.0, jitter_s) if jitter_s > 0 else 0.0
    return min(first_wait_s * 2.0**doublings + spread, max_wait_s)


def retrying(
    *,
    first_wait_s: float,
    max_wait_s: float,
    attempts: int | None = None,
    within_s: float | None = None,
    jitter_s: float = 0.0,
    retry_on: Callable[[BaseException], bool] = is_retryable,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> tenacity.Retrying:
    """A tenacity `Retrying` for one call (`retrying(...)(fn, *args)`): at most `attempts`
    tries (None: no limit), and no wait that would end more than `within_s` seconds from now
    (None: no limit; 0: one try). Make one per call: the time budget starts when it is made."""
    import tenacity

    _check(first_wait_s, max_wait_s, attempts, within_s, jitter_s)
    stops: list[Any] = []
    if attempts is not None:
        stops.append(tenacity.stop_after_attempt(attempts))
    if within_s is not None:
        stops.append(_deadline(clock() + within_s, clock))
    return tenacity.Retrying(
        stop=tenacity.stop_any(*stops) if stops else tenacity.stop_never,
        wait=lambda state: backoff_s(state.attempt_number, first_wait_s, max_wait_s, jitter_s),
        retry=tenacity.retry_if_exception(retry_on),
        sleep=sleep,
        reraise=True,
    )


def _deadline(
    deadline: float, clock: Callable[[], float]
) -> Callable[[tenacity.RetryCallState], bool]:
    """Stop when the wait about to start would end past `deadline` (on `clock`)."""

    def past(state: tenacity.RetryCallState) -> bool:
        return clock() + state.upcoming_sleep > deadline

    return past


def _check(
    first_wait_s: float,
    max_wait_s: float,
    attempts: int | None,
    within_s: float | None,
    jitter_s: float,
) -> None:
    if attempts is not None and attempts < 1:
        raise InvalidInput(f"A retry policy got attempts={attempts}.", "Use 1 or more tries.")
    waits = {"first_wait_s": first_wait_s, "max_wait_s": max_wait_s, "jitter_s": jitter_s}
    if within_s is not None:
        waits["within_s"] = within_s
    for name, value in waits.items():
        if not (value >= 0 and (math.isfinite(value) or name == "max_wait_s")):
            raise InvalidInput(
                f"A retry policy got {name}={value}.", "Use a number of seconds, 0 or more."
            )
