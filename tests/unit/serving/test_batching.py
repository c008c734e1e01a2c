"""The micro-batcher: gathering, where the model runs, and surviving failures."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from loopml.serving.batching import Job, MicroBatcher


class Model:
    """A batch function that answers each job with its rows doubled, noting each call."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.calls: list[int] = []
        self.threads: list[str] = []

    def __call__(self, jobs: Sequence[Job]) -> list[Any]:
        self.calls.append(len(jobs))
        self.threads.append(threading.current_thread().name)
        if self.delay_s:
            time.sleep(self.delay_s)
        return [[2 * r["x"] for r in job.rows] for job in jobs]


async def _submit_many(batcher: MicroBatcher, count: int) -> list[Any]:
    return await asyncio.gather(*(batcher.submit([{"x": i}], False) for i in range(count)))


def test_concurrent_requests_are_answered_together_each_with_its_own_result() -> None:
    model = Model()
    batcher = MicroBatcher(model)

    async def scenario() -> list[Any]:
        await batcher.submit([{"x": -1}], False)
        return await _submit_many(batcher, 50)

    results = asyncio.run(scenario())
    batcher.close()
    assert results == [[2 * i] for i in range(50)]
    assert sum(model.calls) == 51
    assert len(model.calls) <= 3  # the 50 arrived together: one or two calls, not fifty


def test_max_batch_rows_bounds_a_call() -> None:
    model = Model()
    batcher = MicroBatcher(model, max_batch_rows=8)
    asyncio.run(_submit_many(batcher, 40))
    batcher.close()
    assert max(model.calls) <= 8


def test_batching_off_calls_the_model_once_per_request() -> None:
    model = Model()
    batcher = MicroBatcher(model, enabled=False)
    assert asyncio.run(_submit_many(batcher, 10)) == [[2 * i] for i in range(10)]
    batcher.close()
    assert model.calls == [1] * 10


def test_a_fast_model_runs_on_the_event_loop_and_a_slow_one_in_the_model_thread() -> None:
    # margins wide enough for a loaded machine (the suite runs in three processes on two cores):
    # a call that does nothing may take some milliseconds there, never 50
    fast, slow = Model(), Model(delay_s=0.2)
    fast_batcher = MicroBatcher(fast, inline_under_ms=50)
    slow_batcher = MicroBatcher(slow, inline_under_ms=50)

    async def scenario() -> str:
        for _ in range(3):
            await fast_batcher.submit([{"x": 1}], False)
            await slow_batcher.submit([{"x": 1}], False)
        return threading.current_thread().name

    loop_thread = asyncio.run(scenario())
    fast_batcher.close()
    slow_batcher.close()
    assert fast.threads[0].startswith("loopml-model")  # the first batch is timed in the thread
    assert fast.threads[1:] == [loop_thread, loop_thread]
    assert all(name.startswith("loopml-model") for name in slow.threads)
    assert slow_batcher.inline_batches == 0


def test_a_model_error_reaches_every_request_of_the_batch_and_serving_goes_on() -> None:
    calls = {"n": 0}

    def flaky(jobs: Sequence[Job]) -> list[Any]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ValueError("the model fell over")
        return ["ok"] * len(jobs)

    batcher = MicroBatcher(flaky)

    async def scenario() -> tuple[list[Any], Any]:
        first = await asyncio.gather(
            *(batcher.submit([{"x": i}], False) for i in range(3)), return_exceptions=True
        )
        return first, await batcher.submit([{"x": 9}], False)

    first, later = asyncio.run(scenario())
    batcher.close()
    assert all(isinstance(r, ValueError) for r in first)
    assert later == "ok"


def test_a_broken_answer_fails_its_batch_without_stopping_the_consumer() -> None:
    calls = {"n": 0}

    def wrong_length(jobs: Sequence[Job]) -> list[Any]:
        calls["n"] += 1
        return [] if calls["n"] == 1 else ["ok"] * len(jobs)  # first answer: one result short

    batcher = MicroBatcher(wrong_length)

    async def scenario() -> tuple[Any, Any]:
        failed = await asyncio.gather(batcher.submit([{"x": 1}], False), return_exceptions=True)
        return failed[0], await asyncio.wait_for(batcher.submit([{"x": 2}], False), 5)

    failed, later = asyncio.run(scenario())
    batcher.close()
    assert isinstance(failed, ValueError)
    assert later == "ok"


@pytest.mark.parametrize("wait_ms", [0.0, 20.0])
def test_a_lone_request_is_answered_without_waiting_longer_than_asked(wait_ms: float) -> None:
    batcher = MicroBatcher(Model(), max_wait_ms=wait_ms)

    async def scenario() -> float:
        await batcher.submit([{"x": 0}], False)  # warm: the first batch goes to the thread
        started = time.perf_counter()
        await batcher.submit([{"x": 1}], False)
        return time.perf_counter() - started

    took = asyncio.run(scenario())
    batcher.close()
    assert wait_ms / 1000 <= took < wait_ms / 1000 + 0.05


async def _clients(batcher: MicroBatcher, clients: int, rounds: int, stagger_s: float) -> None:
    """`clients` closed-loop clients: each sends, waits for its answer, sends again; their
    requests reach the queue `stagger_s` apart, as a gRPC server hands over its calls."""

    async def client(index: int) -> None:
        for _ in range(rounds):
            await asyncio.sleep(stagger_s * index)
            await batcher.submit([{"x": index}], False)

    await asyncio.gather(*(client(i) for i in range(clients)))


def test_a_crowd_arriving_one_by_one_is_gathered_into_full_batches() -> None:
    plain, gathering = Model(delay_s=0.002), Model(delay_s=0.002)
    for model, gather_ms in ((plain, 0.0), (gathering, 30.0)):
        batcher = MicroBatcher(model, gather_ms=gather_ms, inline_under_ms=0.0)
        asyncio.run(_clients(batcher, clients=8, rounds=8, stagger_s=0.001))
        batcher.close()

    assert sum(plain.calls) == sum(gathering.calls) == 64
    assert len(gathering.calls) < 0.7 * len(plain.calls)  # about 15 calls instead of 30


def test_a_lone_client_never_waits_to_gather() -> None:
    batcher = MicroBatcher(Model(), gather_ms=200.0)

    async def scenario() -> float:
        await batcher.submit([{"x": 0}], False)
        started = time.perf_counter()
        for i in range(5):
            await batcher.submit([{"x": i}], False)
        return time.perf_counter() - started

    took = asyncio.run(scenario())
    batcher.close()
    assert took < 0.1  # five requests, none held for the 200 ms a batch may gather
