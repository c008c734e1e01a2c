"""The futures executors hand back: a backend's future relayed with its error translated."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from typing import Any

from loopml.errors import Conflict

ErrorTranslation = Callable[[BaseException], BaseException]


def relay(source: Future[Any], translate: ErrorTranslation) -> Future[Any]:
    """A future that completes with `source`'s result, or with its error after `translate`.

    Cancelling the returned future cancels `source` (a task already running is not stopped).
    """
    target: Future[Any] = Future()

    def copy_outcome(done: Future[Any]) -> None:
        try:
            if done.cancelled():
                target.cancel()
            elif (error := done.exception()) is not None:
                target.set_exception(translate(error))
            else:
                target.set_result(done.result())
        except InvalidStateError:  # the caller cancelled `target` first
            pass

    def cancel_source(done: Future[Any]) -> None:
        if done.cancelled():
            source.cancel()

    target.add_done_callback(cancel_source)
    source.add_done_callback(copy_outcome)
    return target


def closed_error(name: str) -> Conflict:
    """The error for a submit after `close()`, the same for every executor."""
    return Conflict(
        f"The {name} executor is closed; it takes no more tasks.",
        hint="Make a new executor for the next pipeline run.",
    )
