"""UUIDv7 request ids: valid RFC 9562 UUIDs that sort by time, never repeat, and carry their
time back out."""

from __future__ import annotations

import os
import random
import threading
import uuid
from collections.abc import Callable

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from loopml.domain.request_ids import COUNTER_BITS, RequestIds, text_bounds, unix_ms_of

EPOCH_2026_MS = 1_767_225_600_000


class _Clock:
    """Gives `times` in turn, then stays on the last one; remembers what it gave."""

    def __init__(self, times: list[int]) -> None:
        self._times = iter(times)
        self.seen = [times[0]]

    def __call__(self) -> int:
        self.seen.append(next(self._times, self.seen[-1]))
        return self.seen[-1]


def _seeded(seed: int) -> Callable[[int], bytes]:
    rng = random.Random(seed)
    return lambda n: rng.randbytes(n)


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(st.integers(min_value=-5, max_value=5), min_size=1, max_size=30),
    counts=st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=30),
    seed=st.integers(min_value=0),
)
def test_ids_sort_by_time_never_repeat_and_round_trip_their_time(
    steps: list[int], counts: list[int], seed: int
) -> None:
    """The clock may stand still or step back; batches small (Python) and large (numpy)."""
    times = [EPOCH_2026_MS]
    for step in steps:
        times.append(times[-1] + step)
    clock = _Clock(times)
    ids = RequestIds(clock, _seeded(seed))
    made: list[str] = []
    for count in counts:
        batch = ids.new(count)
        assert len(batch) == count
        latest = max(clock.seen)  # a clock that steps back does not take the ids with it
        for request_id in batch:
            parsed = uuid.UUID(request_id)
            assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
            assert str(parsed) == request_id
            assert unix_ms_of(request_id) == latest
        made += batch
    assert made == sorted(made)  # as text
    assert [uuid.UUID(i).int for i in made] == sorted(uuid.UUID(i).int for i in made)
    assert len(set(made)) == len(made)


@settings(max_examples=100, deadline=None)
@given(unix_ms=st.integers(min_value=0, max_value=2**48 - 1), count=st.integers(1, 30))
def test_the_time_of_an_id_is_the_clock_it_was_made_at(unix_ms: int, count: int) -> None:
    made = RequestIds(lambda: unix_ms, os.urandom).new(count)
    assert {unix_ms_of(request_id) for request_id in made} == {unix_ms}


def test_a_counter_that_runs_out_borrows_the_next_millisecond() -> None:
    full = bytes([0xFF]) * 64  # the highest seed: the counter runs out soonest

    ids = RequestIds(lambda: EPOCH_2026_MS, lambda n: full[:n])
    first = ids.new(1)
    ids._counter = (1 << COUNTER_BITS) - 1  # as if 2**42 ids had been made this millisecond
    later = ids.new(3)
    assert unix_ms_of(later[0]) == EPOCH_2026_MS + 1
    assert first[0] < later[0] < later[1] < later[2]


def test_ids_made_by_many_threads_at_once_are_unique_and_each_thread_sees_them_increase() -> None:
    ids = RequestIds(lambda: EPOCH_2026_MS, os.urandom)
    per_thread: list[list[str]] = [[] for _ in range(8)]

    def make(out: list[str]) -> None:
        for count in (1, 3, 20, 1, 100) * 20:
            out += ids.new(count)

    threads = [threading.Thread(target=make, args=(out,)) for out in per_thread]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [request_id for out in per_thread for request_id in out]
    assert len(set(everything)) == len(everything)
    assert all(out == sorted(out) for out in per_thread)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "r1",
        "0c3f2a1b9d8e4f60a1b2c3d4e5f60718-0",  # an older loopml's id: uuid4 hex + row
        "6f1c2b8e-3d4a-4c5b-9e7f-0a1b2c3d4e5f",  # version 4
        "019a0000-0000-7000-c000-000000000000",  # variant not RFC 9562
        "019a0000-0000-7000-8000-00000000000g",
        "019a0000-0000-7000-8000-0000000000000",
        "019a0000_0000-7000-8000-000000000000",
    ],
)
def test_text_that_is_not_a_uuid7_has_no_time(text: str) -> None:
    assert unix_ms_of(text) is None


def test_an_uppercase_id_reads_like_its_lowercase_form() -> None:
    made = RequestIds(lambda: EPOCH_2026_MS, os.urandom).new(1)[0]
    assert unix_ms_of(made.upper()) == EPOCH_2026_MS


def test_a_batch_beyond_the_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="count must be between"):
        RequestIds(lambda: EPOCH_2026_MS, os.urandom).new(-1)


@settings(max_examples=300, deadline=None)
@given(
    made_ms=st.integers(0, (1 << 48) - 1),
    since_from_made_us=st.one_of(
        st.integers(-3_000_000, 3_000_000), st.integers(-(10**15), 10**15)
    ),
    span_us=st.one_of(st.integers(1, 3_000_000), st.integers(1, 10**13)),
    cases=st.lists(st.booleans(), min_size=36, max_size=36),
    tail=st.integers(0, (1 << 80) - 1),
)
@example(  # a range that starts after the last millisecond an id can carry keeps nothing
    made_ms=(1 << 48) - 1, since_from_made_us=1000, span_us=1, cases=[False] * 36, tail=0
)
def test_text_bounds_keep_every_id_of_their_time_in_any_case(
    made_ms: int, since_from_made_us: int, span_us: int, cases: list[bool], tail: int
) -> None:
    since_us = made_ms * 1000 + since_from_made_us  # near the id's time, and far from it
    until_us = since_us + span_us
    value = (made_ms << 80) | (0x7 << 76) | (tail & ((1 << 76) - 1))
    value = (value & ~(0x3 << 62)) | (0x2 << 62)
    lower = str(uuid.UUID(int=value))
    mixed = "".join(c.upper() if up else c for c, up in zip(lower, cases, strict=True))
    low, high = text_bounds(since_us, until_us)
    inside = since_us <= made_ms * 1000 < until_us
    for text in (lower, lower.upper(), mixed):
        kept = low.encode() <= text.encode() < high.encode()
        assert kept or not inside, (text, low, high)
    if made_ms * 1000 >= until_us:
        assert not low.encode() <= lower.encode() < high.encode()  # lower case: dropped after
    if made_ms < since_us // 1000:
        assert not low.encode() <= lower.upper().encode()  # upper case: dropped before
