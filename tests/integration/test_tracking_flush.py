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
