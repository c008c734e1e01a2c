"""Event times: when what a row describes happened, as opposed to when the server answered it.

A request may carry its event time (`/predict`'s `event_time` or `event_times`, V2's
`parameters.event_time` or `parameters.event_times`); commands take `--at TIME` to act as if
now were TIME. Both spell a time the same two ways:

- an ISO-8601 date and time with its offset (`2026-01-01T00:00:00Z`, `...+01:00`); a time
  without an offset is refused rather than guessed;
- a JSON number: seconds since 1970-01-01 UTC (fractions allowed).

An event time lies between 1970 and `MAX_AHEAD_US` after now (a clock a little ahead is fine,
a time a year ahead is a mistake). Times are epoch microseconds everywhere else.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from loopml.errors import InvalidInput

MAX_AHEAD_US = 86_400_000_000
"""How far after the serving time an event time may lie (one day)."""
_MAX_SECONDS = 253_402_300_799
"""9999-12-31T23:59:59Z: the last second a date can name."""
SPELLING = "an ISO-8601 time with its offset (2026-01-01T00:00:00Z) or seconds since 1970"


class NotATime(ValueError):
    """A value that does not name a time; its text says what was received and what is taken."""


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 24 else f"{text[:20]}..."


def _seconds_us(value: float) -> int:
    if isinstance(value, float) and not math.isfinite(value):
        raise NotATime(f"{value!r} is not a finite number")
    if value < 0:
        raise NotATime(f"{_shown(value)} lies before 1970")
    if value > _MAX_SECONDS:
        raise NotATime(f"{_shown(value)} seconds lies after the year 9999")
    return round(value * 1_000_000)


def _text_us(text: str) -> int:
    if len(text) > 64:
        raise NotATime(f"a {len(text)}-character string is not a time")
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise NotATime(f"{text!r} is not an ISO-8601 time") from None
    if parsed.tzinfo is None:
        raise NotATime(f"{text!r} names no offset (add Z for UTC, or +HH:MM)")
    delta = parsed - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    if delta < dt.timedelta(0):
        raise NotATime(f"{text!r} lies before 1970")
    return delta // dt.timedelta(microseconds=1)


def time_us(value: Any) -> int:
    """Epoch microseconds of `value` (ISO-8601 text with an offset, or seconds since 1970);
    `NotATime` naming the problem otherwise."""
    if value is None:
        raise NotATime("null is not a time")
    if isinstance(value, bool):
        raise NotATime(f"{value!r} is a boolean, not a time")
    if not isinstance(value, (int, float, str)):
        raise NotATime(f"a {type(value).__name__} is not a time")
    if isinstance(value, str):
        return _text_us(value)
    return _seconds_us(value)


def event_time_us(value: Any, now_us: int) -> int:
    """`time_us(value)`, refused when it lies more than `MAX_AHEAD_US` after `now_us`."""
    found = time_us(value)
    if found > now_us + MAX_AHEAD_US:
        raise NotATime(f"{_shown(value)} lies more than a day in the future")
    return found


def event_times_us(values: Sequence[Any], now_us: int) -> list[int]:
    """Each of `values` as `event_time_us`; `NotATime` naming the first refused one's index.
    A list of plain numbers is checked as one numpy array (no Python step per value)."""
    if set(map(type, values)) <= {int, float}:
        found = _numbers_us(values, now_us)
        if found is not None:
            return found
    found = []
    for index, value in enumerate(values):
        try:
            found.append(event_time_us(value, now_us))
        except NotATime as exc:
            raise NotATime(f"value {index}: {exc}") from None
    return found


def _numbers_us(values: Sequence[Any], now_us: int) -> list[int] | None:
    """Plain numbers, as one array; None when some value needs checking on its own (one is
    refused, or beyond float range): the caller walks them then, naming the first refusal."""
    try:
        seconds = np.asarray(values, dtype=np.float64)
    except OverflowError:
        return None
    limit = min(_MAX_SECONDS, (now_us + MAX_AHEAD_US) / 1_000_000)
    if not np.all(np.isfinite(seconds) & (seconds >= 0) & (seconds <= limit)):
        return None
    return list(np.round(seconds * 1_000_000).astype(np.int64).tolist())


def at_us(text: str) -> int:
    """The time `--at TEXT` names (ISO-8601 with an offset, or seconds since 1970), in epoch
    microseconds; `InvalidInput` naming the problem otherwise."""
    value: str | float
    try:
        value = float(text)
    except ValueError:
        value = text.strip()
    try:
        return time_us(value)
    except NotATime as exc:
        raise InvalidInput(
            f"--at {text!r} is refused: {exc}.",
            f"Give {SPELLING}, e.g. --at 2026-01-01T00:00:00Z.",
        ) from None
