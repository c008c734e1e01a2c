"""`loopml serve` as a real process on 127.0.0.1: sustained load, hostile bodies, shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator

import httpx
import pytest
from served import ServerProcess, register_churn, serving

from loopml.bootstrap import prediction_log_reader
from loopml.settings import Settings

ROW = {"tenure": 3.0, "monthly": 29.5}
LOAD_SECONDS = float(os.environ.get("LOOPML_TEST_LOAD_SECONDS", "30"))


@pytest.fixture(params=[1, 2], ids=["one-process", "two-workers"])
def server(
    make_settings: Callable[..., Settings], request: pytest.FixtureRequest
) -> Iterator[ServerProcess]:
    settings = make_settings()
    register_churn(settings)
    with serving(settings, "churn", "--workers", str(request.param)) as running:
        yield running


async def _hammer(url: str, seconds: float, concurrency: int) -> Counter[int]:
    statuses: Counter[int] = Counter()
    stop = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:

        async def worker() -> None:
            while time.monotonic() < stop:
                response = await client.post(f"{url}/predict", json={"rows": [ROW]})
                statuses[response.status_code] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


@pytest.mark.slow
def test_sustained_load_at_concurrency_64_gets_no_error(
    server: ServerProcess,
) -> None:
    url = server.url
    statuses = asyncio.run(_hammer(url, LOAD_SECONDS, 64))
    assert set(statuses) == {200}, statuses
    assert statuses[200] > 100


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b'{"rows": {"tenure": 1}}', 422),
        (b'{"columns": ["tenure"], "data": [[1, 2, 3]]}', 422),
        (os.urandom(10 * 1024 * 1024), 413),
        (b'{"rows": [' + b",".join([b'{"tenure": 1, "monthly": 2}'] * 1_000_000) + b"]}", 413),
        (b'{"rows": [' + b",".join([b'{"tenure": 1, "monthly": 2}'] * 10_001) + b"]}", 413),
    ],
    ids=[
        "invalid-json",
        "wrong-shape",
        "ragged-split",
        "10MB-garbage",
        "a-million-rows",
        "too-many-rows",
    ],
)
def test_hostile_bodies_get_a_4xx_and_the_server_keeps_serving(
    server: ServerProcess, body: bytes, status: int
) -> None:
    url = server.url
    answer = httpx.post(f"{url}/predict", content=body, timeout=30)
    assert answer.status_code == status
    assert "error" in answer.json()
    assert httpx.post(f"{url}/predict", json={"rows": [ROW]}).status_code == 200


def test_sigterm_loses_no_logged_prediction(
    server: ServerProcess,
) -> None:
    url, proc, settings = server.url, server.proc, server.settings
    ids = []
    for _ in range(50):
        ids += httpx.post(f"{url}/predict", json={"rows": [ROW, ROW]}).json()["request_ids"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM after shutdown
    table = prediction_log_reader(settings).read(
        "churn", columns=["request_id"], with_feedback=False
    )
    assert set(table["request_id"].to_pylist()) == set(ids)


def test_kill_9_loses_at_most_the_flush_window(
    server: ServerProcess,
) -> None:
    url, proc, settings = server.url, server.proc, server.settings
    early = httpx.post(f"{url}/predict", json={"rows": [ROW] * 20}).json()["request_ids"]
    time.sleep(2.0)  # longer than the documented one-second window
    httpx.post(f"{url}/predict", json={"rows": [ROW] * 20})
    server.kill_all()
    proc.wait()
    table = prediction_log_reader(settings).read(
        "churn", columns=["request_id"], with_feedback=False
    )
    assert set(early) <= set(table["request_id"].to_pylist())


def test_keep_alive_requests_are_not_delayed(server: ServerProcess) -> None:
    url = server.url
    with httpx.Client() as client:  # one keep-alive connection, requests one after another
        client.post(f"{url}/predict", json={"rows": [ROW]})
        took = []
        for _ in range(40):
            start = time.perf_counter()
            assert client.post(f"{url}/predict", json={"rows": [ROW]}).status_code == 200
            took.append(time.perf_counter() - start)
    took.sort()
    assert took[len(took) // 2] < 0.02  # no 40 ms delayed-ACK wait: TCP_NODELAY is set
