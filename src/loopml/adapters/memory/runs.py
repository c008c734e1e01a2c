"""The `RunStore` port in memory, with its optional capabilities `RunHeartbeats` and
`SilentRunReaper`."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime

from loopml.adapters.memory.database import (
    MemoryDatabase,
    RunRow,
    datetime_to_us,
    json_copy,
    us_to_datetime,
)
from loopml.adapters.memory.run_search import search
from loopml.domain.filters import RunQuery, check_page
from loopml.domain.records import (
    RUN_TRANSITIONS,
    EventDraft,
    MetricPoint,
    Run,
    RunArtifact,
    RunId,
    RunStatus,
    missing_tag,
)
from loopml.errors import Conflict, InvalidInput, NotFound
from loopml.ports import NewRun, RunPage


def _same_project(other: str, project: str, what: str) -> None:
    """A run's parent and the dataset versions it uses are of the run's own project."""
    if other != project:
        raise InvalidInput(
            f"A run of project {project!r} cannot name {what} in project {other!r}: "
            "references never cross projects.",
            f"Use one of project {project!r}, or start the run in project {other!r}.",
        )


def _ended(run_id: str) -> Conflict:
    return Conflict(
        f"Run {run_id} has ended; its metrics and params are final.",
        "Start a new run to log more.",
    )


def _to_run(row: RunRow) -> Run:
    return Run(
        id=row.id,
        project=row.project,
        name=row.name,
        status=row.status,
        start_time=us_to_datetime(row.start_us),
        end_time=None if row.end_us is None else us_to_datetime(row.end_us),
        error=row.error,
        params=dict(row.params),
        metrics={key: point.value for key, point in row.latest.items()},
        tags=dict(row.tags),
        environment=json_copy(row.environment),
        inputs=tuple(sorted(f"{name}@{version}" for name, version in row.inputs)),
        parent_id=row.parent_id,
    )


def _write_params(row: RunRow, params: dict[str, str]) -> None:
    """Add params; one already logged may be logged again only with the same value."""
    for key, value in params.items():
        old = row.params.get(key)
        if old is not None and old != value:
            raise Conflict(
                f"Param {key!r} of run {row.id} is already {old!r}; it cannot become {value!r}.",
                "Params are fixed once logged: log a new name, or start a new run.",
            )
    row.params.update(params)


def _write_metrics(row: RunRow, points: Sequence[MetricPoint]) -> None:
    """Keep the points (an exact repeat, a retried batch, is one point) and move each key's
    latest: the highest step wins, and the later point of a tie."""
    seen = set(row.history)
    for point in points:
        if point not in seen:
            seen.add(point)
            row.history.append(point)
        latest = row.latest.get(point.key)
        if latest is None or point.step >= latest.step:
            row.latest[point.key] = point


class MemoryRunStore:
    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db

    def create_run(self, new: NewRun, event: EventDraft) -> Run:
        """Create the run; creating it again with the same `run_id` (a retry) returns it."""
        run_id = new.run_id or RunId(uuid.uuid4().hex)
        status = RunStatus.FINISHED if new.finished else RunStatus.RUNNING
        with self._db.lock:
            now = self._db.clock()
            found = self._db.tables.runs.get(run_id)
            if found is not None:
                if (found.project, found.name) != (new.project, new.name):
                    raise Conflict(
                        f"Run id {run_id} is taken by another run.", "Let loopml pick ids."
                    )
                return _to_run(found)
            if new.parent_id is not None:
                parent = self._db.run(new.parent_id).project
                _same_project(parent, new.project, "its parent run")
            self._db.ensure_project(new.project, now)
            row = RunRow(
                id=run_id,
                project=new.project,
                name=new.name,
                status=status,
                start_us=datetime_to_us(new.started) if new.started else now,
                end_us=now if new.finished else None,
                parent_id=new.parent_id,
                environment=json_copy(new.environment),
                heartbeat_us=now,
                tags=dict(new.tags),
                artifacts={a.path: a for a in new.artifacts},
            )
            _write_params(row, new.params)
            self._db.tables.runs[run_id] = row
            after = {"name": new.name, "status": status.value, **(event.after or {})}
            entity = f"run:{new.project}/{run_id}"
            self._db.append_event(EventDraft(event.action, entity, event.actor, None, after), now)
            return _to_run(row)

    def get_run(self, run_id: RunId) -> Run:
        with self._db.lock:
            return _to_run(self._db.run(run_id))

    def end_run(
        self,
        run_id: RunId,
        status: RunStatus,
        error: str | None,
        now: datetime,
        event: EventDraft,
        *,
        final_metrics: Sequence[MetricPoint] = (),
    ) -> None:
        with self._db.lock:
            row = self._db.run(run_id)
            current = row.status
            if current is status and status is not RunStatus.RUNNING:
                return  # ended this way already: a retried call
            if status not in RUN_TRANSITIONS[current]:
                raise Conflict(
                    f"Run {run_id} is {current} and cannot become {status}.",
                    "Only a running run can be ended, and only once.",
                )
            _write_metrics(row, final_metrics)
            row.status, row.end_us, row.error = status, datetime_to_us(now), error
            draft = EventDraft(
                event.action,
                event.entity,
                event.actor,
                {"status": current.value},
                {"status": status.value, **({"error": error} if error else {})},
            )
            self._db.append_event(draft, self._db.clock())

    def log_batch(
        self,
        run_id: RunId,
        metrics: Sequence[MetricPoint] = (),
        params: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        with self._db.lock:
            row = self._db.run(run_id)
            if row.status is not RunStatus.RUNNING and (metrics or params):
                raise _ended(run_id)
            _write_params(row, params or {})
            row.tags.update(tags or {})
            _write_metrics(row, metrics)

    def delete_tag(self, run_id: RunId, key: str) -> None:
        with self._db.lock:
            if self._db.run(run_id).tags.pop(key, None) is None:
                raise missing_tag(run_id, key)

    def add_inputs_and_artifacts(
        self,
        run_id: RunId,
        dataset_refs: Iterable[tuple[str, str, int]],
        artifacts: Iterable[RunArtifact],
    ) -> None:
        refs, arts = list(dataset_refs), list(artifacts)
        with self._db.lock:
            row = self._db.run(run_id)
            for used, name, version in refs:
                _same_project(row.project, used, f"dataset version {name}@{version} it uses")
            for _, name, version in refs:
                dataset = self._db.tables.datasets.get((row.project, name))
                if dataset is None or not 1 <= version <= len(dataset.versions):
                    raise NotFound(
                        f"Dataset version {name}@{version} does not exist.",
                        f"List versions with `loopml data list {name}`.",
                    )
            row.inputs.update((name, version) for _, name, version in refs)
            row.artifacts.update((a.path, a) for a in arts)

    def search(self, query: RunQuery, limit: int, offset: int) -> RunPage:
        check_page(limit, offset)
        with self._db.lock:
            found = search(list(self._db.tables.runs.values()), query)
            return RunPage([_to_run(row) for row in found[offset : offset + limit]], len(found))

    def metric_history(self, run_id: RunId, key: str) -> list[MetricPoint]:
        with self._db.lock:
            points = [p for p in self._db.run(run_id).history if p.key == key]
        return sorted(points, key=lambda p: (p.step, p.timestamp_ms))

    def list_artifacts(self, run_id: RunId) -> list[RunArtifact]:
        with self._db.lock:
            artifacts = self._db.run(run_id).artifacts
            return [artifacts[path] for path in sorted(artifacts)]

    def heartbeat(self, run_ids: Sequence[RunId]) -> None:
        """Stamp "alive now" on those of `run_ids` still running."""
        with self._db.lock:
            now = self._db.clock()
            for run_id in run_ids:
                row = self._db.tables.runs.get(run_id)
                if row is not None and row.status is RunStatus.RUNNING:
                    row.heartbeat_us = now

    def end_silent_runs(self, silent_s: float, event: EventDraft) -> list[RunId]:
        """Mark killed every running run without a sign of life for `silent_s` seconds, ending
        it at its last one (its heartbeat; else its newest metric point; else its start)."""
        ended: list[RunId] = []
        with self._db.lock:
            cutoff = self._db.clock() - int(silent_s * 1_000_000)
            for row in self._db.tables.runs.values():
                last_us = _last_sign_us(row)
                if row.status is RunStatus.RUNNING and last_us < cutoff:
                    self._kill(row, last_us, silent_s, event)
                    ended.append(row.id)
        return ended

    def _kill(self, row: RunRow, last_us: int, silent_s: float, event: EventDraft) -> None:
        error = (
            f"No heartbeat since {us_to_datetime(last_us).isoformat()}: the run's "
            f"process stopped (killed, or its machine lost) and the run was marked killed "
            f"after {silent_s:g} s without one."
        )
        row.status, row.end_us, row.error = RunStatus.KILLED, last_us, error
        draft = EventDraft(
            event.action,
            f"run:{row.project}/{row.id}",
            event.actor,
            {"status": RunStatus.RUNNING.value},
            {"status": RunStatus.KILLED.value, "error": error, **(event.after or {})},
        )
        self._db.append_event(draft, self._db.clock())


def _last_sign_us(row: RunRow) -> int:
    if row.heartbeat_us is not None:
        return row.heartbeat_us
    if row.latest:
        return max(point.timestamp_ms for point in row.latest.values()) * 1000
    return row.start_us
