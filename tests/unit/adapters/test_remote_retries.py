"""The team server's client retries on the retry policy: while no server answers (a second at
first contact, 30 s once one answered) and while it answers 503; never a 4xx or another 5xx,
and never a call that asks not to be. Counted on a fake clock and a fake server: nothing here
waits or opens a socket."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import httpx
import pytest

from loopml.adapters.remote import FIRST_CONTACT_S, RETRY_S, RemoteClient
from loopml.domain.records import RunStatus
from loopml.errors import InvalidInput, LoopmlError, NotFound, Unavailable

URL = "http://127.0.0.1:9"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    def time(self) -> float:
        return self.now


Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def serve(clock: Clock) -> Iterator[Callable[[Handler], tuple[RemoteClient, list[str]]]]:
    """A client whose requests `handler` answers; the paths it was asked, in order."""
    clients: list[RemoteClient] = []

    def make(handler: Handler) -> tuple[RemoteClient, list[str]]:
        asked: list[str] = []

        def answer(request: httpx.Request) -> httpx.Response:
            asked.append(request.url.path)
            return handler(request)

        client = RemoteClient(URL, "token", sleep=clock.sleep, clock=clock.time)
        client.close()
        client._http = httpx.Client(base_url=f"{URL}/api/v1", transport=httpx.MockTransport(answer))
        clients.append(client)
        return client, asked

    yield make
    for client in clients:
        client.close()


def refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("[Errno 111] Connection refused", request=request)


def error(status: int, kind: str, message: str) -> httpx.Response:
    return httpx.Response(status, json={"error": message, "hint": "a hint", "type": kind})


def test_a_server_never_reached_is_reported_within_a_second(
    serve: Callable[[Handler], tuple[RemoteClient, list[str]]], clock: Clock
) -> None:
    client, asked = serve(refused)
    with pytest.raises(Unavailable) as raised:
        client.call("GET", "/projects")
    assert f"The loopml server at {URL} did not answer" in raised.value.message
    assert "Connection refused" in raised.value.message
    assert "LOOPML_SERVER" in raised.value.hint
    assert clock.waits == pytest.approx([0.1, 0.2, 0.4])  # the next 0.8 s would pass 1 s
    assert len(asked) == 4
    assert sum(clock.waits) <= FIRST_CONTACT_S


def test_a_server_that_answered_once_is_waited_for_up_to_retry_s(
    serve: Callable[[Handler], tuple[RemoteClient, list[str]]], clock: Clock
) -> None:
    down = [False]

    def handler(request: httpx.Request) -> httpx.Response:
        return refused(request) if down[0] else httpx.Response(200, json=["default"])

    client, asked = serve(handler)
    assert client.call("GET", "/projects") == ["default"]
    down[0] = True
    with pytest.raises(Unavailable):
        client.call("GET", "/projects")
    waits = clock.waits
    assert waits[:6] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 2.0])
    assert max(waits) == 2.0  # capped
    assert sum(waits) <= RETRY_S < sum(waits) + 2.0  # no wait started that would pass 30 s
    assert len(asked) == 1 + len(waits) + 1


def test_a_503_is_tried_again_until_the_server_answers(
    serve: Callable[[Handler], tuple[RemoteClient, list[str]]], clock: Clock
) -> None:
    answers = iter([error(503, "Unavailable", "starting"), error(503, "Unavailable", "starting")])

    def handler(request: httpx.Request) -> httpx.Response:
        return next(answers, httpx.Response(200, json={"created": True}))

    client, asked = serve(handler)
    assert client.call("POST", "/projects/p", body={"x": 1}) == {"created": True}
    assert len(asked) == 3
    assert clock.waits == pytest.approx([0.1, 0.2])


def test_a_server_that_stays_busy_surfaces_its_own_error(
    serve: Callable[[Handler], tuple[RemoteClient, list[str]]], clock: Clock
) -> None:
    client, asked = serve(lambda request: error(503, "Unavailable", "The database is down."))
    with pytest.raises(Unavailable) as raised:
        client.call("GET", "/projects")
    assert (raised.value.message, raised.value.hint) == ("The database is down.", "a hint")
    assert len(asked) == len(clock.waits) + 1 > 1


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (error(404, "NotFound", "No run 'r1'."), NotFound),
        (error(400, "InvalidInput", "Bad filter."), InvalidInput),
        (httpx.Response(500, text="Internal Server Error"), LoopmlError),
    ],
    ids=["404", "400", "500"],
)
def test_other_errors_are_not_retried(
    serve: Callable[[Handler], tuple[RemoteClient, list[str]]],
    clock: Clock,
    answer: httpx.Response,
    kind: type[LoopmlError],
) -> None:
    client, asked = serve(lambda request: answer)
    with pytest.raises(kind) as raised:
        client.call("GET", "/runs/r1")
    assert not raised.value.retryable
    assert (len(asked), clock.waits) == (1, [])


def test_a_call_that_asks_not_to_be_retried_is_tried_once(
    serve: Callable[[Handler], tuple[RemoteClient, list[str]]], clock: Clock
) -> None:
    client, asked = serve(refused)
    with pytest.raises(Unavailable):
        client.call("POST", "/runs/heartbeat", body={"run_ids": []}, retry=False)
    assert (len(asked), clock.waits) == (1, [])


def test_an_upload_is_sent_whole_on_every_try(
    serve: Callable[[Handler], tuple[RemoteClient, list[str]]], clock: Clock
) -> None:
    bodies: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(request.read())
        if len(bodies) == 1:
            return error(503, "Unavailable", "busy")
        return httpx.Response(200, json={"digest": "sha256:x", "size": 6})

    client, _ = serve(handler)
    assert client.upload("/blobs/sha256:x", lambda: iter([b"abc", b"def"]))["size"] == 6
    assert bodies == [b"abcdef", b"abcdef"]


def test_a_body_goes_in_the_one_json_encoding_and_nan_is_refused_before_sending(
    serve: Callable[[Handler], tuple[RemoteClient, list[str]]],
) -> None:
    sent: list[tuple[str | None, bytes]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append((request.headers.get("content-type"), request.read()))
        return httpx.Response(204)

    client, asked = serve(handler)
    now = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    client.call("POST", "/runs/r1/end", body={"status": RunStatus.FINISHED, "now": now})
    assert sent == [
        (
            "application/json",
            b'{"status":"finished","now":"2026-01-02T03:04:05.000006+00:00"}',
        )
    ]
    with pytest.raises(InvalidInput, match=r"\['metrics'\]\['auc'\] is nan"):
        client.call(
            "POST", "/projects/p/models/m/versions", body={"metrics": {"auc": float("nan")}}
        )
    assert len(asked) == 1
