"""Event times and `--at`: the two spellings of a time, and what is refused."""

from __future__ import annotations

from typing import Any

import pytest

from loopml.domain.event_time import MAX_AHEAD_US, NotATime, at_us, event_times_us, time_us
from loopml.errors import InvalidInput

JAN_1_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


@pytest.mark.parametrize(
    "value",
    [
        "2026-01-01T00:00:00Z",
        "2026-01-01T01:00:00+01:00",
        "2025-12-31T19:00:00-05:00",
        1_767_225_600,
        1_767_225_600.0,
    ],
    ids=["z", "plus-one", "minus-five", "int-seconds", "float-seconds"],
)
def test_both_spellings_name_the_same_instant(value: Any) -> None:
    assert time_us(value) == JAN_1_US


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("2026-01-01T00:00:00", "names no offset"),
        ("soon", "not an ISO-8601 time"),
        (-0.5, "before 1970"),
        (float("nan"), "not a finite number"),
        (True, "a boolean"),
        (None, "null is not a time"),
        ("x" * 100, "100-character string"),
    ],
    ids=["naive", "words", "negative", "nan", "boolean", "null", "long"],
)
def test_what_is_not_a_time_is_refused_saying_why(value: Any, words: str) -> None:
    with pytest.raises(NotATime, match=words):
        time_us(value)


def test_a_list_of_numbers_is_checked_whole_and_names_the_first_bad_value() -> None:
    now = JAN_1_US
    assert event_times_us([1_767_225_600, 0.5], now) == [JAN_1_US, 500_000]
    assert event_times_us([1_767_225_600, "2026-01-01T00:00:00Z"], now) == [JAN_1_US] * 2
    ahead = (now + MAX_AHEAD_US) / 1e6 + 1
    with pytest.raises(NotATime, match=r"value 2: .* more than a day in the future"):
        event_times_us([1, 2, ahead], now)
    with pytest.raises(NotATime, match="value 1: -1 lies before 1970"):
        event_times_us([1, -1], now)
    with pytest.raises(NotATime, match=r"value 1: 10000000000000000000\.\.\. seconds lies after"):
        event_times_us([1, 10**400], now)  # beyond float range: named, briefly
    with pytest.raises(NotATime, match="value 1: nan is not a finite number"):
        event_times_us([1, float("nan")], now)


def test_at_takes_text_or_seconds_and_refuses_the_rest_with_a_hint() -> None:
    assert at_us("2026-01-01T00:00:00Z") == at_us("1767225600") == JAN_1_US
    with pytest.raises(InvalidInput, match="'tomorrow' is refused") as refused:
        at_us("tomorrow")
    assert "--at 2026-01-01T00:00:00Z" in refused.value.hint
