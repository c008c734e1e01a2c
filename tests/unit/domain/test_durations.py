"""Durations people write: parsed, refused with a clear message, and written back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopml.domain.durations import format_duration, parse_duration
from loopml.errors import InvalidInput


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("10m", 600), ("1h", 3600), ("2d", 172_800), ("1h30m", 5400), (" 1W ", 604_800)],
)
def test_durations_parse(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "m", "1x", "1h 2", "-5m", "0s", "soon"])
def test_bad_durations_are_refused_with_the_fix(text: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_duration(text)
    assert refused.value.hint


@given(st.integers(1, 10**8))
def test_formatting_round_trips(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds
