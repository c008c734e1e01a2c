"""A flush, or the end of a run, waits for a background flush already writing: points logged
before it are stored when it returns (a model's metrics snapshot reads them), and none are lost
to a run that ended while they were on their way."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from loopml.bootstrap import open_workspace
from loopml.domain.records import RunStatus
from loopml.settings import Settings


@pytest.mark.parametrize("then", ["flush", "end"])
def test_points_in_a_slow_background_flush_are_stored_before_the_next_flush_or_end_returns(
    make_settings: Callable[..., Settings], then: str
) -> None:
    ws = open_workspace(make_settings())
    store = ws.tracking.store
    slow = threading.Event()
    real = store.log_batch

    def log_batch(*args: Any, **kwargs: Any) -> None:
        if slow.is_set():
            time.sleep(0.3)  # a write in flight while the main thread goes on
        real(*args, **kwargs)

    store.log_batch = log_batch  # type: ignore[method-assign]
    try:
        run = ws.tracking.start_run(project="default", name="race")
        run.log_metric("f1", 0.9)
        slow.set()
        background = threading.Thread(target=run.flush)
        background.start()
        time.sleep(0.05)  # the background flush has taken the point and is writing it
        if then == "flush":
            run.flush()
            assert store.get_run(run.id).metrics == {"f1": 0.9}
        else:
            run.end()
        background.join()
        assert [p.value for p in store.metric_history(run.id, "f1")] == [0.9]
    finally:
        ws.close()


def test_a_slow_store_does_not_hold_up_the_logging_loop_and_batches_grow(
    make_settings: Callable[..., Settings],
) -> None:
    """Full batches are written by the background flusher while the loop goes on logging, so a
    store that takes 50 ms per write gets a few large batches, not one per 1,000 points; and
    every point is stored by the run's end."""
    ws = open_workspace(make_settings())
    store = ws.tracking.store
    real = store.log_batch
    writes: list[tuple[int, str]] = []

    def log_batch(run_id: Any, metrics: Any = (), *args: Any, **kwargs: Any) -> None:
        writes.append((len(metrics), threading.current_thread().name))
        time.sleep(0.05)
        real(run_id, metrics, *args, **kwargs)

    store.log_batch = log_batch  # type: ignore[method-assign]
    try:
        with ws.tracking.start_run(project="default", name="fast") as run:
            for i in range(30_000):
                run.log_metric("loss", 1.0 / (i + 1))
                if i % 1_000 == 999:  # a training loop's pace: the flusher gets its turns
                    time.sleep(0.01)
        history = store.metric_history(run.id, "loss")
        assert [p.step for p in history] == list(range(30_000))
        written = [(n, name) for n, name in writes if n]
        assert all(name == "loopml-metric-flusher" for _, name in written), written
        assert len(written) < 15, written  # 30 writes if each 1,000 points waited for the last
        assert max(n for n, _ in written) > 2_000, written
    finally:
        ws.close()


def test_when_the_store_falls_far_behind_the_logging_loop_writes_itself(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Back-pressure: past MAX_BUFFERED points waiting, log_metric writes them in its own
    thread, so memory stays bounded however slow the store."""
    from loopml.services import tracking

    monkeypatch.setattr(tracking, "MAX_BUFFERED", 3_000)
    ws = open_workspace(make_settings())
    store = ws.tracking.store
    real = store.log_batch
    writers: list[str] = []

    def log_batch(*args: Any, **kwargs: Any) -> None:
        writers.append(threading.current_thread().name)
        time.sleep(0.5 if threading.current_thread().name == "loopml-metric-flusher" else 0)
        real(*args, **kwargs)

    store.log_batch = log_batch  # type: ignore[method-assign]
    try:
        with ws.tracking.start_run(project="default", name="backed-up") as run:
            for i in range(8_000):
                run.log_metric("loss", float(i))
            assert threading.current_thread().name in writers
            assert len(run._buffer) < 3_000
        assert len(store.metric_history(run.id, "loss")) == 8_000
    finally:
        ws.close()


def _busy(seconds: float) -> int:
    """Pure-Python work holding the interpreter (a long step that logs nothing)."""
    deadline, total = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        total += sum(range(1_000))
    return total


def test_a_live_run_busy_in_one_long_step_keeps_beating_and_is_not_killed(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    settings = make_settings(db_url, run_timeout_s=1.2)  # a beat every 0.2 s
    ws = open_workspace(settings)
    try:
        run = ws.tracking.start_run(project="default", name="long-step")
        _busy(2.5)  # twice the timeout without a word from the step
        other = open_workspace(settings)  # another command opens the workspace meanwhile
        assert other.tracking.end_silent_runs() == []
        assert other.tracking.get(run.id).status is RunStatus.RUNNING
        other.close()
        run.end()
        assert ws.tracking.get(run.id).status is RunStatus.FINISHED
    finally:
        ws.close()


def test_one_heartbeat_write_covers_every_active_run_of_the_process(
    make_settings: Callable[..., Settings],
) -> None:
    ws = open_workspace(make_settings(run_timeout_s=0.6))  # a beat every 0.1 s
    store: Any = ws.tracking.store
    real = store.heartbeat
    beats: list[list[str]] = []

    def heartbeat(run_ids: Any) -> None:
        beats.append(sorted(run_ids))
        real(run_ids)

    store.heartbeat = heartbeat
    try:
        runs = [ws.tracking.start_run(project="default", name=f"r{i}") for i in range(5)]
        time.sleep(0.5)
        assert beats
        assert sorted(r.id for r in runs) in beats
        for run in runs:
            run.end()
        beats.clear()
        time.sleep(0.3)
        assert beats == []  # ended runs no longer beat
    finally:
        ws.close()


def test_a_closed_workspace_gets_no_heartbeat_and_its_close_waits_for_one_in_flight(
    make_settings: Callable[..., Settings],
) -> None:
    """The background thread's heartbeat that is writing when the workspace closes lands before
    the close returns, and none follows: nothing writes into the database of a closed workspace
    (a backtest deletes its scratch workspace's folder right after)."""
    ws = open_workspace(make_settings())
    store = ws.tracking.store
    writing, release, closed = threading.Event(), threading.Event(), threading.Event()
    after_close: list[Any] = []
    real = store.heartbeat

    def heartbeat(run_ids: Any) -> None:
        if closed.is_set():
            after_close.append(run_ids)
        writing.set()
        release.wait(10)  # a slow write, in flight while the workspace closes
        real(run_ids)

    store.heartbeat = heartbeat  # type: ignore[method-assign]
    run = ws.tracking.start_run(project="default", name="beating")
    assert writing.wait(5)  # the background thread's first beat is writing
    closer = threading.Thread(target=ws.close)
    closer.start()
    time.sleep(0.3)
    assert closer.is_alive()  # the close waits for the beat in flight
    release.set()
    closer.join(10)
    assert not closer.is_alive()
    closed.set()
    ws.tracking._next_beat = 0.0  # a beat would be due now
    ws.tracking.beat_if_due([run.id])
    time.sleep(0.3)  # and the background thread has had its turns
    assert after_close == []


def test_a_run_from_before_heartbeats_ends_at_its_last_metric_or_its_start(database: Any) -> None:
    """Runs made before heartbeats existed have none: their last sign of life is their newest
    metric point, else their start."""
    from sqlalchemy import update

    from loopml.adapters.sql import tables as t
    from loopml.adapters.sql.runs import SqlRunStore
    from loopml.domain.records import EventDraft, MetricPoint, RunId
    from loopml.ports import NewRun

    now = [1_000_000_000_000_000]
    store = SqlRunStore(database, clock=lambda: now[0])
    draft = EventDraft("run.created", "run:default", "tester")
    quiet = store.create_run(NewRun("default", "quiet", {}, {}), draft)
    logging = store.create_run(NewRun("default", "logging", {}, {}), draft)
    last_point_ms = now[0] // 1000 + 8 * 60_000  # eight minutes after the start
    store.log_batch(logging.id, [MetricPoint("loss", 0.1, 0, last_point_ms)])
    with database.write() as conn:
        conn.execute(update(t.runs).values(heartbeat_us=None))  # as migrated from 0009
    now[0] += 5 * 60_000_000
    kill = EventDraft("run.killed", "run:", "tester")
    assert store.end_silent_runs(600, kill) == []  # five minutes: not yet
    now[0] += 10 * 60_000_000
    assert sorted(store.end_silent_runs(600, kill)) == sorted([RunId(quiet.id)])
    now[0] += 5 * 60_000_000
    assert store.end_silent_runs(600, kill) == [RunId(logging.id)]
    ended = {r: store.get_run(RunId(r)) for r in (quiet.id, logging.id)}
    assert ended[quiet.id].end_time == ended[quiet.id].start_time
    logging_end = ended[logging.id].end_time
    assert logging_end is not None
    assert logging_end.timestamp() * 1000 == last_point_ms
    assert {r.status for r in ended.values()} == {RunStatus.KILLED}


_LONG_STEP = """
import time
from loopml import pipeline, step


@step
def long_step(seconds: float) -> float:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:  # busy, logging nothing
        sum(range(1_000))
    return seconds


@pipeline
def slow(seconds: float = 2.5) -> float:
    return long_step(seconds)
"""


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["processes", "ray"])
def test_a_step_busy_on_another_process_is_not_killed(
    make_settings: Callable[..., Settings], tmp_path: Any, executor: str
) -> None:
    """A step in a spawned process or a Ray task, busy for twice the run timeout: its run
    (and the pipeline's) keeps beating while other commands open the workspace meanwhile."""
    from loopml.pipelines import run_pipeline
    from loopml.steps import load_pipeline

    (tmp_path / "slow_pipeline.py").write_text(_LONG_STEP)
    settings = make_settings(run_timeout_s=1.2)
    ws = open_workspace(settings)
    ended: list[Any] = []
    done = threading.Event()

    def reap_meanwhile() -> None:
        while not done.wait(0.2):
            other = open_workspace(settings)
            ended.extend(other.tracking.end_silent_runs())
            other.close()

    reaper = threading.Thread(target=reap_meanwhile)
    reaper.start()
    try:
        pipeline = load_pipeline(f"{tmp_path / 'slow_pipeline.py'}:slow")
        result = run_pipeline(pipeline, {}, workspace=ws, executor=executor, use_cache=False)
    finally:
        done.set()
        reaper.join(30)
        ws.close()
    assert result.ok, result.run.error
    assert ended == []
    assert {report.status for report in result.steps.values()} == {"ran"}
