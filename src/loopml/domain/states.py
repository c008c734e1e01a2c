"""The states a loop run, a watch and an alert go through, with their allowed moves
(`check_move`), so a store can refuse a record that skips a step."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from loopml.domain.alerts import AlertState
from loopml.errors import Conflict


class RunState(StrEnum):
    """A loop run (one retraining)."""

    RUNNING = "running"
    WAITING = "waiting"
    """The challenger could not be told apart from the champion yet: it is scored again on the
    labelled rows served after it was trained, until the rule decides."""
    AWAITING_APPROVAL = "awaiting-approval"
    PROMOTED = "promoted"
    HELD = "held"
    FAILED = "failed"


class WatchState(StrEnum):
    """The watch of a promoted champion."""

    WATCHING = "watching"
    KEPT = "kept"
    ROLLED_BACK = "rolled-back"
    SUPERSEDED = "superseded"


MOVES: dict[type[StrEnum], dict[Any, frozenset[Any]]] = {
    RunState: {
        RunState.RUNNING: frozenset(
            {
                RunState.WAITING,
                RunState.AWAITING_APPROVAL,
                RunState.PROMOTED,
                RunState.HELD,
                RunState.FAILED,
            }
        ),
        RunState.WAITING: frozenset(
            {
                RunState.WAITING,
                RunState.AWAITING_APPROVAL,
                RunState.PROMOTED,
                RunState.HELD,
                RunState.FAILED,
            }
        ),
        RunState.AWAITING_APPROVAL: frozenset({RunState.PROMOTED, RunState.HELD}),
        RunState.PROMOTED: frozenset(),
        RunState.HELD: frozenset(),
        RunState.FAILED: frozenset(),
    },
    WatchState: {
        WatchState.WATCHING: frozenset(
            {WatchState.KEPT, WatchState.ROLLED_BACK, WatchState.SUPERSEDED}
        ),
        WatchState.KEPT: frozenset(),
        WatchState.ROLLED_BACK: frozenset(),
        WatchState.SUPERSEDED: frozenset(),
    },
    AlertState: {
        AlertState.FIRING: frozenset({AlertState.ACKNOWLEDGED, AlertState.RESOLVED}),
        AlertState.ACKNOWLEDGED: frozenset({AlertState.RESOLVED}),
        AlertState.RESOLVED: frozenset({AlertState.FIRING}),
    },
}
"""Where each state may go next (a resolved alert fires again when its condition returns)."""


def check_move(old: StrEnum, new: StrEnum) -> None:
    """Conflict unless a record may go from state `old` to `new` (both of one enum)."""
    kind = type(old)
    if type(new) is not kind or new not in MOVES[kind][old]:
        allowed = ", ".join(sorted(str(s) for s in MOVES[kind][old])) or "none: it is final"
        raise Conflict(
            f"A {kind.__name__} cannot go from {old!s} to {new!s}.",
            f"From {old!s} it may go to: {allowed}.",
        )
