"""The in-process executor: each task runs in the calling thread when it is submitted."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from loopml.adapters.executors.futures import closed_error


class LocalExecutor:
    """Runs `fn(task)` at submit time and hands back an already-completed future.

    The simplest way to debug a pipeline: breakpoints and tracebacks stay in one process.
    """

    name = "local"

    def __init__(self) -> None:
        self.parallelism = 1
        self._closed = False

    def submit(self, fn: Callable[[Any], Any], task: Any) -> Future[Any]:
        if self._closed:
            raise closed_error(self.name)
        future: Future[Any] = Future()
        try:
            result = fn(task)
        except Exception as error:
            future.set_exception(error)
        else:
            future.set_result(result)
        return future

    def close(self) -> None:
        self._closed = True
