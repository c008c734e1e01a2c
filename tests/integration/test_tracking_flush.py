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
