"""The `LoopStore` port in memory: retrain policies and their runs. Who runs a loop at a time
is a lease (`MemoryLeases`), not the loop's record."""

from __future__ import annotations

from loopml.adapters.memory.database import (
    LoopRow,
    LoopRunRow,
    MemoryDatabase,
    json_copy,
)
from loopml.domain.epoch_us import datetime_to_us, us_to_datetime
from loopml.domain.loops import (
    Loop,
    LoopRun,
    LoopSpec,
    LoopState,
    missing_loop,
    missing_loop_run,
)
from loopml.domain.records import EventDraft, RunId
from loopml.errors import AlreadyExists, Conflict, InvalidInput, NotFound


def _to_loop(project: str, name: str, row: LoopRow) -> Loop:
    return Loop(
        LoopSpec.from_dict(project, name, json_copy(row.spec)),
        LoopState.from_dict(json_copy(row.state)),
        us_to_datetime(row.created_us),
        us_to_datetime(row.updated_us),
    )


def _to_run(run_id: int, row: LoopRunRow) -> LoopRun:
    return LoopRun(
        run_id,
        row.project,
        row.loop,
        us_to_datetime(row.started_us),
        None if row.finished_us is None else us_to_datetime(row.finished_us),
        row.trigger,
        row.status,
        **LoopRun.fields_from(json_copy(row.details)),
    )


class MemoryLoopStore:
    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db

    def create(self, spec: LoopSpec, event: EventDraft) -> Loop:
        key = (spec.project, spec.name)
        values = json_copy(spec.to_dict())
        with self._db.lock:
            now = self._db.clock()
            self._db.ensure_project(spec.project, now)
            if key in self._db.tables.loops:
                raise AlreadyExists(
                    f"Loop {spec.name!r} already exists in project {spec.project!r}.",
                    f"Delete it first with `loopml loop delete {spec.name}`, or pick another name.",
                )
            state = LoopState(last_retrain_us=now).to_dict()
            row = LoopRow(values, state, now, now)
            self._db.tables.loops[key] = row
            draft = EventDraft(event.action, event.entity, event.actor, None, values)
            self._db.append_event(draft, now)
            return _to_loop(*key, row)

    def get(self, project: str, name: str) -> Loop:
        with self._db.lock:
            row = self._db.tables.loops.get((project, name))
            if row is None:
                raise missing_loop(project, name)
            return _to_loop(project, name, row)

    def delete(self, project: str, name: str, event: EventDraft) -> None:
        with self._db.lock:
            found = self.get(project, name)
            del self._db.tables.loops[project, name]
            draft = EventDraft(event.action, event.entity, event.actor, found.spec.to_dict(), None)
            self._db.append_event(draft, self._db.clock())

    def save_state(self, project: str, name: str, state: LoopState) -> None:
        """Keep `state` on the loop (a loop deleted meanwhile: nothing to keep it on)."""
        with self._db.lock:
            row = self._db.tables.loops.get((project, name))
            if row is not None:
                row.state, row.updated_us = json_copy(state.to_dict()), self._db.clock()

    def save_run(self, run: LoopRun, event: EventDraft) -> LoopRun:
        """Insert `run` (id 0) or update it, with its event; returns it as stored."""
        details = json_copy(run.details())
        row = LoopRunRow(
            run.project,
            run.loop,
            datetime_to_us(run.started_at),
            None if run.finished_at is None else datetime_to_us(run.finished_at),
            run.trigger,
            run.status,
            details,
        )
        with self._db.lock:
            now = self._db.clock()
            if run.pipeline_run is not None:
                self._check_pipeline_run(run)
            runs = self._db.tables.loop_runs
            if run.id == 0:
                if run.project not in self._db.tables.projects:
                    raise Conflict(
                        "The change conflicts with what is stored.",
                        "Check the ids and names it uses.",
                    )
                run_id = self._db.next_id("loop_runs")
            else:
                run_id = run.id
                found = runs.get(run_id)
                if found is None or found.project != run.project:
                    raise missing_loop_run(run.project, run_id)
            runs[run_id] = row
            after = {"run": run_id, "status": run.status, "trigger": run.trigger, **details}
            draft = EventDraft(event.action, event.entity, event.actor, None, after)
            self._db.append_event(draft, now)
            return _to_run(run_id, row)

    def _check_pipeline_run(self, run: LoopRun) -> None:
        """A retraining names the pipeline run of its own project."""
        found = self._db.tables.runs.get(RunId(str(run.pipeline_run)))
        if found is None:
            raise NotFound(
                f"Run {run.pipeline_run!r} does not exist.",
                "List runs with `loopml runs list` to find its id.",
            )
        if found.project != run.project:
            raise InvalidInput(
                f"Run {run.pipeline_run} is in project {found.project!r}; a retraining of loop "
                f"{run.loop!r} in project {run.project!r} cannot name it: references never cross "
                "projects.",
                f"Name a pipeline run of project {run.project!r}.",
            )

    def run(self, project: str, run_id: int) -> LoopRun:
        with self._db.lock:
            row = self._db.tables.loop_runs.get(run_id)
            if row is None or row.project != project:
                raise missing_loop_run(project, run_id)
            return _to_run(run_id, row)

    def runs(self, project: str, loop: str, limit: int) -> list[LoopRun]:
        """The newest `limit` runs of `loop`, newest first."""
        with self._db.lock:
            found = [
                (run_id, row)
                for run_id, row in self._db.tables.loop_runs.items()
                if (row.project, row.loop) == (project, loop)
            ]
        found.sort(key=lambda pair: (pair[1].started_us, pair[0]), reverse=True)
        return [_to_run(run_id, row) for run_id, row in found[: max(limit, 0)]]

    def list(self, project: str) -> list[Loop]:
        with self._db.lock:
            found = [(key, row) for key, row in self._db.tables.loops.items() if key[0] == project]
            return [_to_loop(*key, row) for key, row in sorted(found, key=lambda p: p[0][1])]
