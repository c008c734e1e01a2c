"""Times as stored: integer microseconds since 1970-01-01 UTC, exact both ways."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def us_to_datetime(us: int) -> datetime:
    """Exact conversion (no float rounding), so a stored time hashes the same when read back."""
    return _EPOCH + timedelta(microseconds=us)


def datetime_to_us(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(microseconds=1)
