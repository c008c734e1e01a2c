"""How the object-store sweep reads an object's time: never as older than it may be."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from loopml.adapters.blob_sweep import _time_us

_MOMENTS = st.datetimes(
    min_value=datetime(2001, 1, 1), max_value=datetime(2099, 1, 1), timezones=st.just(UTC)
)


@given(_MOMENTS)
def test_a_time_truncated_to_the_second_counts_at_the_end_of_that_second(moment: datetime) -> None:
    """S3 lists LastModified truncated to the second: an object written at any instant of that
    second must never look older than it is, or a writer loses part of its grace period."""
    listed = moment.replace(microsecond=0)
    counted = _time_us({"LastModified": listed})
    assert counted >= int(moment.timestamp() * 1_000_000)
    assert counted < int((listed + timedelta(seconds=1)).timestamp() * 1_000_000)


@given(_MOMENTS.filter(lambda m: m.microsecond != 0))
def test_a_time_with_a_fraction_of_a_second_is_taken_as_given(moment: datetime) -> None:
    assert _time_us({"LastModified": moment}) == int(moment.timestamp() * 1_000_000)


def test_a_listing_without_a_time_counts_as_time_zero() -> None:
    assert _time_us({}) == 0
