"""The process-pool executor: tasks run in spawned worker processes on this machine."""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from loopml.adapters.executors.futures import closed_error, relay
from loopml.errors import InvalidInput, Unavailable


class ProcessExecutor:
    """A pool of `max_workers` processes (default: one per CPU), started on the first submit.

    Workers are *spawned*, not forked: a fresh interpreter inherits no threads, locks or open
    database connections from the parent. So `fn` must be importable by reference (a
    module-level function) and `task` picklable. A worker that dies fails its future with
    `Unavailable`, and the next submit starts a fresh pool.
    """

    name = "processes"

    def __init__(self, max_workers: int | None = None) -> None:
        if max_workers is not None and max_workers < 1:
            raise InvalidInput(
                f"A process pool needs at least 1 worker; got max_workers={max_workers}.",
                hint="Pass a positive number, or leave it out for one worker per CPU.",
            )
        self.parallelism = max_workers or os.cpu_count() or 1
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[[Any], Any], task: Any) -> Future[Any]:
        check_importable(fn)
        with self._lock:
            if self._closed:
                raise closed_error(self.name)
            try:
                source = self._live_pool().submit(fn, task)
            except BrokenProcessPool:  # a worker died since the last submit: start afresh
                self._discard_pool()
                source = self._live_pool().submit(fn, task)
        return relay(source, _translate_error)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._discard_pool(wait=True)

    def _live_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.parallelism, mp_context=multiprocessing.get_context("spawn")
            )
        return self._pool

    def _discard_pool(self, *, wait: bool = False) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=True)
            self._pool = None


def check_importable(fn: Callable[[Any], Any]) -> None:
    """Refuse a lambda, a nested function or a bound local: a spawned worker cannot import it."""
    qualname = getattr(fn, "__qualname__", "")
    if "<" in qualname or not getattr(fn, "__module__", None):
        raise InvalidInput(
            f"The processes executor runs module-level functions only; got {qualname or fn!r}.",
            hint="Define the step function at the top level of an importable module.",
        )


def _translate_error(error: BaseException) -> BaseException:
    if isinstance(error, BrokenProcessPool):
        unavailable = Unavailable(
            "A worker process died while running the task (killed, out of memory, "
            "or the task exited the interpreter).",
            hint="This is retryable: the next submit starts fresh workers. If it keeps "
            "happening, lower max_workers or check the task's memory use.",
        )
        unavailable.__cause__ = error
        return unavailable
    return error
