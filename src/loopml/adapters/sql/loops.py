"""The `LoopStore` port on SQL: retrain policies and their runs. Who runs a loop at a time is a
lease in the lease table (`SqlLeases`)."""

from __future__ import annotations

import json

from sqlalchemy import Connection, select

from loopml.adapters.sql import tables as t
from loopml.adapters.sql.engine import Database
from loopml.adapters.sql.events import Clock, append_event, ensure_project, system_clock_us
from loopml.adapters.sql.rows import to_loop, to_loop_run
from loopml.domain.epoch_us import datetime_to_us
from loopml.domain.loops import (
    Loop,
    LoopRun,
    LoopSpec,
    LoopState,
    missing_loop,
    missing_loop_run,
)
from loopml.domain.records import EventDraft
from loopml.errors import AlreadyExists, InvalidInput, NotFound


def _check_pipeline_run(conn: Connection, run: LoopRun) -> None:
    """A retraining names the pipeline run of its own project."""
    found = conn.execute(select(t.runs.c.project).where(t.runs.c.id == run.pipeline_run)).scalar()
    if found is None:
        raise NotFound(
            f"Run {run.pipeline_run!r} does not exist.",
            "List runs with `loopml runs list` to find its id.",
        )
    if found != run.project:
        raise InvalidInput(
            f"Run {run.pipeline_run} is in project {found!r}; a retraining of loop "
            f"{run.loop!r} in project {run.project!r} cannot name it: references never cross "
            "projects.",
            f"Name a pipeline run of project {run.project!r}.",
        )


class SqlLoopStore:
    def __init__(self, db: Database, clock: Clock = system_clock_us) -> None:
        self._db = db
        self._clock = clock

    def create(self, spec: LoopSpec, event: EventDraft) -> Loop:
        table = t.loops
        with self._db.write() as conn:
            now = self._clock()
            ensure_project(conn, spec.project, now)
            where = (table.c.project == spec.project) & (table.c.name == spec.name)
            if conn.execute(select(table.c.id).where(where)).first() is not None:
                raise AlreadyExists(
                    f"Loop {spec.name!r} already exists in project {spec.project!r}.",
                    f"Delete it first with `loopml loop delete {spec.name}`, or pick another name.",
                )
            values = spec.to_dict()
            conn.execute(
                table.insert().values(
                    project=spec.project,
                    name=spec.name,
                    spec_json=json.dumps(values),
                    state_json=json.dumps(LoopState(last_retrain_us=now).to_dict()),
                    created_us=now,
                    updated_us=now,
                )
            )
            draft = EventDraft(event.action, event.entity, event.actor, None, values)
            append_event(self._db, conn, draft, now)
        return self.get(spec.project, spec.name)

    def get(self, project: str, name: str) -> Loop:
        with self._db.read() as conn:
            row = conn.execute(
                select(t.loops).where(t.loops.c.project == project, t.loops.c.name == name)
            ).first()
        if row is None:
            raise missing_loop(project, name)
        return to_loop(row)

    def delete(self, project: str, name: str, event: EventDraft) -> None:
        found = self.get(project, name)
        with self._db.write() as conn:
            conn.execute(
                t.loops.delete().where(t.loops.c.project == project, t.loops.c.name == name)
            )
            draft = EventDraft(event.action, event.entity, event.actor, found.spec.to_dict(), None)
            append_event(self._db, conn, draft, self._clock())

    def save_state(self, project: str, name: str, state: LoopState) -> None:
        table = t.loops
        with self._db.write() as conn:
            conn.execute(
                table.update()
                .where(table.c.project == project, table.c.name == name)
                .values(state_json=json.dumps(state.to_dict()), updated_us=self._clock())
            )

    def save_run(self, run: LoopRun, event: EventDraft) -> LoopRun:
        """Insert `run` (id 0) or update it, with its event; returns it as stored."""
        table = t.loop_runs
        details = run.details()
        values = {
            "project": run.project,
            "loop": run.loop,
            "started_us": datetime_to_us(run.started_at),
            "finished_us": None if run.finished_at is None else datetime_to_us(run.finished_at),
            "trigger": run.trigger,
            "status": run.status,
            "details_json": json.dumps(details),
        }
        with self._db.write() as conn:
            now = self._clock()
            if run.pipeline_run is not None:
                _check_pipeline_run(conn, run)
            if run.id == 0:
                inserted = conn.execute(table.insert().values(**values)).inserted_primary_key
                assert inserted is not None
                run_id = int(inserted[0])
            else:
                run_id = run.id
                mine = (table.c.id == run_id) & (table.c.project == run.project)
                if not conn.execute(table.update().where(mine).values(**values)).rowcount:
                    raise missing_loop_run(run.project, run_id)
            after = {"run": run_id, "status": run.status, "trigger": run.trigger, **details}
            draft = EventDraft(event.action, event.entity, event.actor, None, after)
            append_event(self._db, conn, draft, now)
        return self.run(run.project, run_id)

    def run(self, project: str, run_id: int) -> LoopRun:
        with self._db.read() as conn:
            row = conn.execute(
                select(t.loop_runs).where(
                    t.loop_runs.c.project == project, t.loop_runs.c.id == run_id
                )
            ).first()
        if row is None:
            raise missing_loop_run(project, run_id)
        return to_loop_run(row)

    def runs(self, project: str, loop: str, limit: int) -> list[LoopRun]:
        """The newest `limit` runs of `loop`, newest first."""
        table = t.loop_runs
        with self._db.read() as conn:
            rows = conn.execute(
                select(table)
                .where(table.c.project == project, table.c.loop == loop)
                .order_by(table.c.started_us.desc(), table.c.id.desc())
                .limit(limit)
            ).all()
        return [to_loop_run(r) for r in rows]

    def list(self, project: str) -> list[Loop]:
        with self._db.read() as conn:
            rows = conn.execute(
                select(t.loops).where(t.loops.c.project == project).order_by(t.loops.c.name)
            ).all()
        return [to_loop(r) for r in rows]
