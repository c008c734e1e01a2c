"""The one retry policy: how many tries, which waits, which errors are tried again, and that the
last error surfaces unchanged; counted with a recording sleep, so nothing here waits."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopml.errors import Conflict, InvalidInput, NotFound, Unavailable
from loopml.retrying import backoff_s, is_retryable, retrying


class Clock:
    """A clock that moves only when something sleeps on it; it records every wait."""

    def __init__(self) -> None:
        self.now = 100.0
        self.waits: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    def time(self) -> float:
        return self.now


def failing(times: int, error: Callable[[], Exception]) -> tuple[Callable[[], str], list[int]]:
    """A call that raises a fresh `error()` its first `times` tries, then answers "done"."""
    tries: list[int] = []

    def call() -> str:
        tries.append(len(tries) + 1)
        if len(tries) <= times:
            raise error()
        return "done"

    return call, tries


def unavailable() -> Exception:
    return Unavailable("The store did not answer.", "Retry.")


def test_a_call_that_recovers_is_tried_until_it_does_with_doubling_waits() -> None:
    clock = Clock()
    call, tries = failing(3, unavailable)
    policy = retrying(attempts=5, first_wait_s=0.5, max_wait_s=30.0, sleep=clock.sleep)
    assert policy(call) == "done"
    assert tries == [1, 2, 3, 4]
    assert clock.waits == [0.5, 1.0, 2.0]


def test_after_the_last_attempt_the_last_error_surfaces_unchanged() -> None:
    clock = Clock()
    errors: list[Exception] = []

    def call() -> None:
        errors.append(Unavailable(f"try {len(errors) + 1} failed", "Retry."))
        raise errors[-1]

    with pytest.raises(Unavailable) as raised:
        retrying(attempts=3, first_wait_s=1.0, max_wait_s=30.0, sleep=clock.sleep)(call)
    assert raised.value is errors[-1]
    assert (len(errors), raised.value.message, raised.value.hint) == (3, "try 3 failed", "Retry.")
    assert clock.waits == [1.0, 2.0]


def test_waits_double_up_to_the_cap() -> None:
    clock = Clock()
    call, tries = failing(100, unavailable)
    with pytest.raises(Unavailable):
        retrying(attempts=8, first_wait_s=0.1, max_wait_s=1.0, sleep=clock.sleep)(call)
    assert len(tries) == 8
    assert clock.waits == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])


@pytest.mark.parametrize(
    "error",
    [
        lambda: InvalidInput("Bad filter.", "Fix it."),
        lambda: NotFound("No run 9.", "List runs."),
        lambda: Conflict("The run ended.", "Start another."),
        lambda: ValueError("a bug"),
    ],
    ids=["invalid-input", "not-found", "conflict", "not-a-loopml-error"],
)
def test_an_error_that_says_it_is_not_retryable_is_raised_at_once(
    error: Callable[[], Exception],
) -> None:
    clock = Clock()
    call, tries = failing(1, error)
    with pytest.raises(type(error())):
        retrying(attempts=5, first_wait_s=0.1, max_wait_s=1.0, sleep=clock.sleep)(call)
    assert (tries, clock.waits) == ([1], [])


def test_the_call_site_says_what_is_worth_another_try() -> None:
    clock = Clock()
    call, tries = failing(2, lambda: OSError("HTTP 502"))
    policy = retrying(
        attempts=3,
        first_wait_s=0.1,
        max_wait_s=1.0,
        retry_on=lambda exc: isinstance(exc, OSError),
        sleep=clock.sleep,
    )
    assert policy(call) == "done"
    assert tries == [1, 2, 3]


def test_a_time_budget_starts_no_wait_that_would_end_past_it() -> None:
    """0.1 + 0.2 + 0.4 = 0.7 s waited; the next 0.8 s would end at 1.5 s, past the 1 s budget."""
    clock = Clock()
    call, tries = failing(100, unavailable)
    policy = retrying(
        within_s=1.0, first_wait_s=0.1, max_wait_s=2.0, sleep=clock.sleep, clock=clock.time
    )
    with pytest.raises(Unavailable):
        policy(call)
    assert len(tries) == 4
    assert clock.waits == pytest.approx([0.1, 0.2, 0.4])


def test_a_budget_of_zero_is_one_try() -> None:
    clock = Clock()
    call, tries = failing(1, unavailable)
    policy = retrying(within_s=0.0, first_wait_s=0.1, max_wait_s=2.0, sleep=clock.sleep)
    with pytest.raises(Unavailable):
        policy(call)
    assert (tries, clock.waits) == ([1], [])


@pytest.mark.parametrize(
    "settings",
    [
        {"attempts": 0},
        {"first_wait_s": -1.0},
        {"within_s": float("nan")},
        {"jitter_s": float("inf")},
    ],
    ids=["no-attempts", "negative-wait", "nan-budget", "endless-jitter"],
)
def test_a_policy_that_cannot_work_is_refused_with_the_fix(settings: dict[str, float]) -> None:
    arguments: dict[str, float] = {"first_wait_s": 0.1, "max_wait_s": 1.0, **settings}
    with pytest.raises(InvalidInput) as refused:
        retrying(**arguments)  # type: ignore[arg-type]
    assert "or more" in refused.value.hint


def test_only_loopml_errors_that_say_so_are_retryable() -> None:
    assert is_retryable(Unavailable("down"))
    assert not is_retryable(NotFound("gone"))
    assert not is_retryable(OSError("refused"))


@given(
    retry=st.integers(1, 2_000),
    first=st.floats(0.0, 10.0),
    cap=st.floats(0.0, 60.0),
    jitter=st.floats(0.0, 5.0),
)
def test_every_wait_is_the_doubled_first_wait_plus_bounded_jitter_under_the_cap(
    retry: int, first: float, cap: float, jitter: float
) -> None:
    wait = backoff_s(retry, first, cap, jitter)
    doubled = first * 2.0 ** min(retry - 1, 64)
    assert 0.0 <= wait <= cap
    assert min(doubled, cap) <= wait <= min(doubled + jitter, cap)


@given(retry=st.integers(1, 50), first=st.floats(0.001, 1.0), cap=st.floats(1.0, 60.0))
def test_without_jitter_waits_never_shrink(retry: int, first: float, cap: float) -> None:
    assert backoff_s(retry, first, cap) <= backoff_s(retry + 1, first, cap)
