"""Runs' signs of life on SQL: heartbeats, and ending the runs whose process stopped.

A running run's process stamps `runs.heartbeat_us` every few seconds (see
`loopml.services.tracking`). A run silent for longer than the timeout is marked `killed`, ending
at its last sign of life, with one audited event each. Its last sign of life is its heartbeat;
for a run made before heartbeats existed (NULL), the time of its newest metric point, else its
start.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select

from loopml.adapters.sql import tables as t
from loopml.adapters.sql.engine import Database
from loopml.adapters.sql.events import Clock, append_event
from loopml.domain.epoch_us import us_to_datetime
from loopml.domain.records import EventDraft, RunId, RunStatus

_CHUNK = 500
"""Run ids per IN (...) list: well under SQLite's limit on bound parameters."""


def _last_sign_us() -> ColumnElement[Any]:
    newest_point_us = (
        select(func.max(t.latest_metrics.c.timestamp_ms) * 1000)
        .where(t.latest_metrics.c.run_id == t.runs.c.id)
        .scalar_subquery()
    )
    return func.coalesce(t.runs.c.heartbeat_us, newest_point_us, t.runs.c.start_us)


def _silent(clock: Clock, silent_s: float) -> ColumnElement[bool]:
    """Running, and no sign of life for `silent_s` seconds."""
    cutoff = clock() - int(silent_s * 1_000_000)
    return and_(t.runs.c.status == RunStatus.RUNNING.value, _last_sign_us() < cutoff)


def stamp_heartbeats(db: Database, clock: Clock, run_ids: Sequence[str]) -> None:
    """Set the heartbeat of those of `run_ids` still running to now: one statement per 500."""
    ids = sorted(set(run_ids))
    if not ids:
        return
    with db.write() as conn:
        now = clock()
        for start in range(0, len(ids), _CHUNK):
            conn.execute(
                t.runs.update()
                .where(
                    t.runs.c.id.in_(ids[start : start + _CHUNK]),
                    t.runs.c.status == RunStatus.RUNNING.value,
                )
                .values(heartbeat_us=now)
            )


def end_silent_runs(db: Database, clock: Clock, silent_s: float, event: EventDraft) -> list[RunId]:
    """Mark killed every running run whose last sign of life is older than `silent_s` seconds.

    One read finds them (nothing to write in the usual case: no lock taken); each is then
    ended only if it is still running and still silent, so a heartbeat landing in between wins.
    """
    with db.read() as conn:
        found = conn.execute(select(t.runs.c.id).where(_silent(clock, silent_s))).scalars().all()
    if not found:
        return []
    ended: list[RunId] = []
    for start in range(0, len(found), _CHUNK):
        ended += _end(db, clock, list(found[start : start + _CHUNK]), silent_s, event)
    return ended


def _end(
    db: Database, clock: Clock, run_ids: list[str], silent_s: float, event: EventDraft
) -> list[RunId]:
    """End those of `run_ids` still silent (a heartbeat may have landed since they were found)."""
    ended: list[RunId] = []
    with db.write() as conn:
        rows = conn.execute(
            select(t.runs.c.id, t.runs.c.project, _last_sign_us().label("last_us")).where(
                t.runs.c.id.in_(run_ids), _silent(clock, silent_s)
            )
        ).all()
        for row in rows:
            error = (
                f"No heartbeat since {us_to_datetime(row.last_us).isoformat()}: the run's "
                f"process stopped (killed, or its machine lost) and the run was marked killed "
                f"after {silent_s:g} s without one."
            )
            conn.execute(
                t.runs.update()
                .where(t.runs.c.id == row.id, t.runs.c.status == RunStatus.RUNNING.value)
                .values(status=RunStatus.KILLED.value, end_us=row.last_us, error=error)
            )
            draft = EventDraft(
                event.action,
                f"run:{row.project}/{row.id}",
                event.actor,
                {"status": RunStatus.RUNNING.value},
                {"status": RunStatus.KILLED.value, "error": error, **(event.after or {})},
            )
            append_event(db, conn, draft, clock())
            ended.append(RunId(row.id))
    return ended
