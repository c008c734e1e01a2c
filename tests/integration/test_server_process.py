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


def test_serve_tells_each_live_swap_and_what_it_logged_when_it_stops(
    make_settings: Callable[..., Settings],
) -> None:
    import subprocess
    import sys
    import threading

    from served import free_port

    from loopml.bootstrap import open_workspace

    settings = make_settings()
    register_churn(settings)
    register_churn(settings)
    ws = open_workspace(settings)
    ws.registry.promote("churn", 1, project="default")
    port = free_port()
    env = {
        **os.environ,
        "LOOPML_DB_URL": settings.db_url,
        "LOOPML_ARTIFACTS": settings.artifacts_url,
        "LOOPML_HOME": str(settings.home),
    }
    command = [sys.executable, "-m", "loopml", "serve", "churn@champion", "--port", str(port)]
    proc = subprocess.Popen(
        [*command, "--poll-s", "0.2"], env=env, stderr=subprocess.PIPE, text=True
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr or []), daemon=True)
    reader.start()

    def said(words: str) -> bool:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if any(words in line for line in list(lines)):
                return True
            time.sleep(0.1)
        return any(words in line for line in lines)

    try:
        assert said("serving churn/1 as 'churn'"), lines
        url = f"http://127.0.0.1:{port}"
        for _ in range(2):
            assert httpx.post(f"{url}/predict", json={"rows": [ROW] * 3}).status_code == 200
        ws.registry.promote("churn", 2, project="default")
        assert said("churn: now serving churn version 2 (alias champion moved from 1)"), lines
        assert httpx.post(f"{url}/predict", json={"rows": [ROW]}).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        reader.join(10)
        if proc.stderr is not None:
            proc.stderr.close()
        ws.close()
    (stopped,) = [line for line in lines if "stopped:" in line]
    assert "stopped: 7 rows and 0 labels logged in 3 requests" in stopped
    assert sum("now serving" in line for line in lines) == 1  # one line per event
