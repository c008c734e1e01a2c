"""Kinds of alert channel: each checks what follows its colon, and a kind added to `CHANNELS`
is checked and delivered to by the notifier with nothing else changed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from loopml.adapters import notifiers
from loopml.adapters.notifiers import Context, Permanent, check_channel
from loopml.adapters.notify import ChannelNotifier
from loopml.errors import InvalidInput

SENT: list[tuple[str, str, str]] = []


@pytest.mark.parametrize(
    "text",
    [
        "log:",
        "slack:https://hooks.example/T/B/X",
        "webhook:http://127.0.0.1:9000/hook",
        "email:ops@example.com",
    ],
)
def test_each_kind_reads_what_people_write(text: str) -> None:
    assert check_channel(text) == text


def test_the_kind_is_case_blind_and_the_target_trimmed() -> None:
    assert check_channel("Webhook: https://example.com/h ") == "webhook:https://example.com/h"


@pytest.mark.parametrize(
    ("text", "fix"),
    [
        ("pager:me", "Use log:, slack:URL, webhook:URL or email:ADDRESS"),
        ("slack", "Use log:"),
        ("webhook:ftp://example.com/x", "Write webhook:https://host/path"),
        ("slack:not a url", "Write slack:https://host/path"),
        ("email:nobody", "Write email:name@example.com"),
    ],
)
def test_a_channel_that_does_not_read_is_refused_with_the_fix(text: str, fix: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_channel(text)
    assert fix in caught.value.hint


class PagerChannel:
    kind = "pager"
    usage = "pager:NUMBER"

    def check(self, target: str) -> str:
        if not target.isdigit():
            raise InvalidInput(f"{target!r} is not a pager number.", "Write pager:5551234.")
        return target

    def send(
        self, target: str, event: str, subject: str, payload: dict[str, Any], context: Context
    ) -> None:
        if target == "0":
            raise Permanent("number 0 is not in service")
        SENT.append((target, event, subject))


@pytest.fixture
def with_pager(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(notifiers, "CHANNELS", (*notifiers.CHANNELS, (__name__, "PagerChannel")))
    notifiers.channels.cache_clear()
    SENT.clear()
    yield
    notifiers.channels.cache_clear()


@pytest.mark.usefixtures("with_pager")
def test_a_kind_in_the_list_is_checked_and_delivered_to() -> None:
    notifier = ChannelNotifier(attempts=2, backoff_s=0)
    assert notifier.check("pager:5551234") == "pager:5551234"
    with pytest.raises(InvalidInput, match="Write pager:5551234"):
        notifier.check("pager:me")
    done = notifier.deliver("pager:5551234", "fired", "accuracy < 0.8", {"value": 0.7})
    assert done.ok
    assert done.attempts == 1
    assert SENT == [("5551234", "fired", "accuracy < 0.8")]
    failed = notifier.deliver("pager:0", "fired", "accuracy < 0.8", {})
    assert not failed.ok
    assert failed.attempts == 1  # permanent: not retried
    assert failed.error == "number 0 is not in service"
    with pytest.raises(InvalidInput) as unknown:
        check_channel("sms:1")
    assert "pager:NUMBER" in unknown.value.hint


def test_without_it_the_kind_is_unknown() -> None:
    with pytest.raises(InvalidInput, match="not one loopml can notify"):
        check_channel("pager:5551234")
    failed = ChannelNotifier(attempts=1).deliver("pager:5551234", "fired", "s", {})
    assert not failed.ok
    assert "unknown channel kind 'pager'" in str(failed.error)


class FlakyChannel:
    """Fails its first `FAILURES` sends with a network-like error, then delivers."""

    kind = "flaky"
    usage = "flaky:NAME"
    failures = 0
    sent = 0

    def check(self, target: str) -> str:
        return target

    def send(
        self, target: str, event: str, subject: str, payload: dict[str, Any], context: Context
    ) -> None:
        FlakyChannel.sent += 1
        if FlakyChannel.sent <= FlakyChannel.failures:
            raise OSError(f"HTTP 502 from {target}")


@pytest.fixture
def flaky(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FlakyChannel]]:
    monkeypatch.setattr(notifiers, "CHANNELS", (*notifiers.CHANNELS, (__name__, "FlakyChannel")))
    notifiers.channels.cache_clear()
    FlakyChannel.sent = 0
    yield FlakyChannel
    notifiers.channels.cache_clear()


def test_a_failing_send_is_retried_on_doubling_waits_and_the_tries_recorded(
    flaky: type[FlakyChannel],
) -> None:
    waits: list[float] = []
    notifier = ChannelNotifier(attempts=3, backoff_s=0.5, sleep=waits.append)
    flaky.failures = 2
    done = notifier.deliver("flaky:ops", "fired", "s", {})
    assert (done.ok, done.attempts, done.error) == (True, 3, None)
    assert waits == [0.5, 1.0]


def test_a_send_failing_every_try_is_kept_with_its_last_error_and_logged(
    flaky: type[FlakyChannel], caplog: pytest.LogCaptureFixture
) -> None:
    waits: list[float] = []
    notifier = ChannelNotifier(attempts=4, backoff_s=0.5, sleep=waits.append)
    flaky.failures = 10
    failed = notifier.deliver("flaky:ops", "fired", "s", {})
    assert (failed.ok, failed.attempts) == (False, 4)
    assert failed.error == "OSError: HTTP 502 from ops"
    assert waits == [0.5, 1.0, 2.0]
    assert "alert notice on flaky:ops failed after 4 attempt(s): OSError" in caplog.text


@pytest.mark.usefixtures("with_pager")
def test_a_permanent_failure_is_neither_retried_nor_waited_for() -> None:
    waits: list[float] = []
    failed = ChannelNotifier(attempts=5, sleep=waits.append).deliver("pager:0", "fired", "s", {})
    assert (failed.ok, failed.attempts, failed.error) == (False, 1, "number 0 is not in service")
    assert waits == []
