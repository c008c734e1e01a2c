"""The `RunStore` port on SQL."""

from __future__ import annotations

import json
import math
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Float, Text, cast, literal, null, select, text, union_all

from loopml.adapters.sql import tables as t
from loopml.adapters.sql.blob_refs import add_blob_refs
from loopml.adapters.sql.dialect import insert_ignore, upsert
from loopml.adapters.sql.engine import Database
from loopml.adapters.sql.events import Clock, append_event, ensure_project, system_clock_us
from loopml.adapters.sql.rows import to_run
from loopml.adapters.sql.run_liveness import end_silent_runs, stamp_heartbeats
from loopml.adapters.sql.run_query import count_statement, page_statement
from loopml.domain.epoch_us import datetime_to_us, us_to_datetime
from loopml.domain.filters import RunQuery, check_page
from loopml.domain.hashing import Digest
from loopml.domain.records import (
    RUN_TRANSITIONS,
    EventDraft,
    MetricPoint,
    Run,
    RunArtifact,
    RunId,
    RunStatus,
    missing_run,
    missing_tag,
)
from loopml.errors import Conflict, InvalidInput, NotFound
from loopml.ports import NewRun, RunPage

_LOG_POINTS = text(
    """
    WITH live AS (
        SELECT id FROM runs WHERE id = :run_id AND status = 'running'
    ), points AS (
        SELECT key, CAST(step AS bigint) AS step, CAST(stamp AS bigint) AS timestamp_ms,
               CAST(value AS float8) AS value, n
        FROM ROWS FROM (
            json_array_elements_text(CAST(:keys AS json)),
            json_array_elements_text(CAST(:steps AS json)),
            json_array_elements_text(CAST(:stamps AS json)),
            json_array_elements_text(CAST(:values AS json))
        ) WITH ORDINALITY AS p(key, step, stamp, value, n)
    ), stored AS (
        INSERT INTO metrics (run_id, key, step, timestamp_ms, value)
        SELECT live.id, p.key, p.step, p.timestamp_ms, p.value FROM live, points p
        ON CONFLICT DO NOTHING
    ), latest AS (
        INSERT INTO latest_metrics (run_id, key, step, timestamp_ms, value)
        SELECT DISTINCT ON (p.key) live.id, p.key, p.step, p.timestamp_ms, p.value
        FROM live, points p ORDER BY p.key, p.step DESC, p.n DESC
        ON CONFLICT (run_id, key) DO UPDATE SET
            step = excluded.step, timestamp_ms = excluded.timestamp_ms, value = excluded.value
        WHERE excluded.step >= latest_metrics.step
    )
    SELECT count(*) FROM live
    """
)
"""Points of a live run, and the latest value of each key, in one statement (PostgreSQL)."""


def _point_columns(run_id: str, points: Sequence[MetricPoint]) -> dict[str, str]:
    """The parameters of _LOG_POINTS: JSON arrays, dumped and parsed in C (psycopg would adapt
    a Python list to an array item by item)."""
    return {
        "run_id": run_id,
        "keys": json.dumps([p.key for p in points]),
        "steps": json.dumps([p.step for p in points]),
        "stamps": json.dumps([p.timestamp_ms for p in points]),
        "values": json.dumps([p.value for p in points], allow_nan=False),
    }


def _as_number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _same_project(other: str, project: str, what: str) -> None:
    """A run's parent and the dataset versions it uses are of the run's own project."""
    if other != project:
        raise InvalidInput(
            f"A run of project {project!r} cannot name {what} in project {other!r}: "
            "references never cross projects.",
            f"Use one of project {project!r}, or start the run in project {other!r}.",
        )


def require_run_in(conn: Connection, run_id: str, project: str, what: str, fix: str) -> None:
    """Run `run_id` exists and is of `project`: `what` (a model version, step I/O) is recorded
    in `project` and may only name a run of it. `fix` says what to do otherwise."""
    found = conn.execute(select(t.runs.c.project).where(t.runs.c.id == run_id)).scalar()
    if found is None:
        raise missing_run(run_id)
    if found != project:
        raise InvalidInput(
            f"Run {run_id} is in project {found!r}; {what} in project {project!r} cannot name "
            "it: references never cross projects.",
            fix.format(run_project=found, project=project),
        )


class SqlRunStore:
    def __init__(self, db: Database, clock: Clock = system_clock_us) -> None:
        self._db = db
        self._clock = clock

    def create_run(self, new: NewRun, event: EventDraft) -> Run:
        """Create the run; creating it again with the same `run_id` (a retry) returns it."""
        run_id = new.run_id or RunId(uuid.uuid4().hex)
        status = RunStatus.FINISHED if new.finished else RunStatus.RUNNING
        with self._db.write() as conn:
            now = self._clock()
            if new.run_id is not None:
                found = conn.execute(
                    select(t.runs.c.project, t.runs.c.name).where(t.runs.c.id == run_id)
                ).first()
                if found is not None:
                    if (found.project, found.name) != (new.project, new.name):
                        raise Conflict(
                            f"Run id {run_id} is taken by another run.", "Let loopml pick ids."
                        )
                    return self._hydrate(conn, [run_id])[0]
            ensure_project(conn, new.project, now)
            if new.parent_id is not None:
                _same_project(self._project(conn, new.parent_id), new.project, "its parent run")
            conn.execute(
                t.runs.insert().values(
                    id=run_id,
                    project=new.project,
                    name=new.name,
                    status=status.value,
                    start_us=datetime_to_us(new.started) if new.started else now,
                    end_us=now if new.finished else None,
                    heartbeat_us=now,
                    environment=new.environment,
                    parent_id=new.parent_id,
                )
            )
            rows = [{"run_id": run_id, "key": k, "value": v} for k, v in new.tags.items()]
            insert_ignore(conn, t.tags, rows)
            self._write_artifacts(conn, run_id, new.artifacts)
            add_blob_refs(conn, new.project, [a.digest for a in new.artifacts])
            if new.params:
                self._write_params(conn, run_id, new.params)
            after = {"name": new.name, "status": status.value, **(event.after or {})}
            entity = f"run:{new.project}/{run_id}"
            append_event(
                self._db, conn, EventDraft(event.action, entity, event.actor, None, after), now
            )
        return Run(
            id=run_id,
            project=new.project,
            name=new.name,
            status=status,
            start_time=us_to_datetime(now),
            end_time=us_to_datetime(now) if new.finished else None,
            error=None,
            tags=dict(new.tags),
            params=dict(new.params),
            environment=new.environment,
            parent_id=new.parent_id,
        )

    def _project(self, conn: Connection, run_id: str) -> str:
        project = conn.execute(select(t.runs.c.project).where(t.runs.c.id == run_id)).scalar()
        if project is None:
            raise missing_run(run_id)
        return str(project)

    def _status(self, conn: Connection, run_id: str) -> RunStatus:
        status = conn.execute(select(t.runs.c.status).where(t.runs.c.id == run_id)).scalar()
        if status is None:
            raise missing_run(run_id)
        return RunStatus(status)

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
        with self._db.write() as conn:
            current = self._status(conn, run_id)
            if current is status and status is not RunStatus.RUNNING:
                return  # ended this way already: a retried call
            if final_metrics and current is RunStatus.RUNNING:
                self._write_metrics(conn, run_id, final_metrics)
            if status not in RUN_TRANSITIONS[current]:
                raise Conflict(
                    f"Run {run_id} is {current} and cannot become {status}.",
                    "Only a running run can be ended, and only once.",
                )
            conn.execute(
                t.runs.update()
                .where(t.runs.c.id == run_id)
                .values(status=status.value, end_us=datetime_to_us(now), error=error)
            )
            append_event(
                self._db,
                conn,
                EventDraft(
                    event.action,
                    event.entity,
                    event.actor,
                    {"status": current.value},
                    {"status": status.value, **({"error": error} if error else {})},
                ),
                self._clock(),
            )

    def log_batch(
        self,
        run_id: RunId,
        metrics: Sequence[MetricPoint] = (),
        params: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        if metrics and not params and not tags and self._db.backend == "postgresql":
            self._log_points_postgres(run_id, metrics)
            return
        with self._db.write() as conn:
            if self._status(conn, run_id) is not RunStatus.RUNNING and (metrics or params):
                raise Conflict(
                    f"Run {run_id} has ended; its metrics and params are final.",
                    "Start a new run to log more.",
                )
            if params:
                self._write_params(conn, run_id, params)
            if tags:
                upsert(
                    conn,
                    t.tags,
                    [{"run_id": run_id, "key": k, "value": v} for k, v in tags.items()],
                    keys=["run_id", "key"],
                    update=["value"],
                )
            if metrics:
                self._write_metrics(conn, run_id, metrics)

    def delete_tag(self, run_id: RunId, key: str) -> None:
        with self._db.write() as conn:
            self._status(conn, run_id)  # NotFound when there is no such run
            gone = conn.execute(
                t.tags.delete().where(t.tags.c.run_id == run_id, t.tags.c.key == key)
            ).rowcount
        if not gone:
            raise missing_tag(run_id, key)

    def _log_points_postgres(self, run_id: RunId, points: Sequence[MetricPoint]) -> None:
        """`log_batch` of points alone on PostgreSQL: the run's check and both writes in one
        statement (one round trip, whatever the batch size)."""
        with self._db.single_statement() as conn:
            live = conn.execute(_LOG_POINTS, _point_columns(run_id, points)).scalar()
        if not live:
            with self._db.read() as conn:
                self._status(conn, run_id)  # NotFound when there is no such run
            raise Conflict(
                f"Run {run_id} has ended; its metrics and params are final.",
                "Start a new run to log more.",
            )

    def _write_params(self, conn: Connection, run_id: str, params: dict[str, str]) -> None:
        stored = dict(
            conn.execute(
                select(t.params.c.key, t.params.c.value).where(
                    t.params.c.run_id == run_id, t.params.c.key.in_(list(params))
                )
            ).all()
        )
        changed = {k: (stored[k], v) for k, v in params.items() if k in stored and stored[k] != v}
        if changed:
            key, (old, new) = next(iter(changed.items()))
            raise Conflict(
                f"Param {key!r} of run {run_id} is already {old!r}; it cannot become {new!r}.",
                "Params are fixed once logged: log a new name, or start a new run.",
            )
        insert_ignore(
            conn,
            t.params,
            [
                {"run_id": run_id, "key": k, "value": v, "value_num": _as_number(v)}
                for k, v in params.items()
            ],
        )

    def _write_metrics(self, conn: Connection, run_id: str, points: Sequence[MetricPoint]) -> None:
        """Store the points of a running run and move each key's latest value."""
        if self._db.backend == "postgresql":
            conn.execute(_LOG_POINTS, _point_columns(run_id, points))
            return
        rows: list[dict[str, Any]] = [
            {
                "run_id": run_id,
                "key": p.key,
                "step": p.step,
                "timestamp_ms": p.timestamp_ms,
                "value": p.value,
            }
            for p in points
        ]
        insert_ignore(conn, t.metrics, rows)  # an exact repeat (a retried batch) is one point
        latest: dict[str, dict[str, Any]] = {}
        for row in rows:
            seen = latest.get(row["key"])
            if seen is None or row["step"] >= seen["step"]:
                latest[row["key"]] = row
        upsert(
            conn,
            t.latest_metrics,
            list(latest.values()),
            keys=["run_id", "key"],
            update=["step", "timestamp_ms", "value"],
            only_if_newer="step",
        )

    def add_inputs_and_artifacts(
        self,
        run_id: RunId,
        dataset_refs: Iterable[tuple[str, str, int]],
        artifacts: Iterable[RunArtifact],
    ) -> None:
        refs, arts = list(dataset_refs), list(artifacts)
        with self._db.write() as conn:
            project = self._project(conn, run_id)
            for used, name, version in refs:
                _same_project(project, used, f"dataset version {name}@{version} it uses")
            ids = [self._dataset_version_id(conn, *ref) for ref in refs]
            insert_ignore(
                conn, t.run_inputs, [{"run_id": run_id, "dataset_version_id": i} for i in ids]
            )
            self._write_artifacts(conn, run_id, arts)
            add_blob_refs(conn, project, [a.digest for a in arts])

    @staticmethod
    def _write_artifacts(conn: Connection, run_id: str, artifacts: Sequence[RunArtifact]) -> None:
        rows = [
            {"run_id": run_id, "path": a.path, "digest": a.digest, "size": a.size}
            for a in artifacts
        ]
        upsert(conn, t.run_artifacts, rows, keys=["run_id", "path"], update=["digest", "size"])

    def _dataset_version_id(self, conn: Connection, project: str, name: str, version: int) -> int:
        found = conn.execute(
            select(t.dataset_versions.c.id)
            .join(t.datasets, t.datasets.c.id == t.dataset_versions.c.dataset_id)
            .where(
                t.datasets.c.project == project,
                t.datasets.c.name == name,
                t.dataset_versions.c.version == version,
            )
        ).scalar()
        if found is None:
            raise NotFound(
                f"Dataset version {name}@{version} does not exist.",
                f"List versions with `loopml data list {name}`.",
            )
        return int(found)

    def get_run(self, run_id: RunId) -> Run:
        with self._db.read() as conn:
            runs = self._hydrate(conn, [run_id])
        if not runs:
            raise missing_run(run_id)
        return runs[0]

    def search(self, query: RunQuery, limit: int, offset: int) -> RunPage:
        check_page(limit, offset)
        with self._db.read() as conn:
            ids = list(conn.execute(page_statement(query, limit, offset)).scalars())
            if offset == 0 and len(ids) < limit:
                total = len(ids)  # the whole result fits the first page: no count needed
            else:
                total = int(conn.execute(count_statement(query)).scalar_one())
            return RunPage(self._hydrate(conn, ids), total)

    def _hydrate(self, conn: Connection, ids: list[str]) -> list[Run]:
        """The runs `ids` whole, in two statements: their rows, then their params, latest
        metrics, tags and inputs as one union (a round trip each, whatever the count)."""
        if not ids:
            return []
        rows = {r.id: r for r in conn.execute(select(t.runs).where(t.runs.c.id.in_(ids)))}
        side: dict[str, dict[str, dict[str, Any]]] = defaultdict(lambda: defaultdict(dict))
        inputs: dict[str, list[str]] = defaultdict(list)
        for run_id, kind, key, text_value, number in conn.execute(_side_of(ids)):
            if kind == "inputs":
                inputs[run_id].append(f"{key}@{int(number)}")
            else:
                side[run_id][kind][key] = number if kind == "metrics" else text_value
        return [to_run(rows[i], side[i], inputs[i]) for i in ids if i in rows]

    def metric_history(self, run_id: RunId, key: str) -> list[MetricPoint]:
        stmt = (
            select(t.metrics.c.key, t.metrics.c.value, t.metrics.c.step, t.metrics.c.timestamp_ms)
            .where(t.metrics.c.run_id == run_id, t.metrics.c.key == key)
            .order_by(t.metrics.c.step, t.metrics.c.timestamp_ms, t.metrics.c.id)
        )
        with self._db.read() as conn:
            self._status(conn, run_id)
            return [MetricPoint(*row) for row in conn.execute(stmt)]

    def list_artifacts(self, run_id: RunId) -> list[RunArtifact]:
        stmt = (
            select(t.run_artifacts)
            .where(t.run_artifacts.c.run_id == run_id)
            .order_by(t.run_artifacts.c.path)
        )
        with self._db.read() as conn:
            self._status(conn, run_id)
            return [RunArtifact(r.path, Digest(r.digest), r.size) for r in conn.execute(stmt)]

    def heartbeat(self, run_ids: Sequence[RunId]) -> None:
        """Stamp "alive now" on those of `run_ids` still running (see `run_liveness`)."""
        stamp_heartbeats(self._db, self._clock, run_ids)

    def end_silent_runs(self, silent_s: float, event: EventDraft) -> list[RunId]:
        """Mark killed the running runs silent for `silent_s` seconds (see `run_liveness`)."""
        return end_silent_runs(self._db, self._clock, silent_s, event)


def _side_of(ids: list[str]) -> Any:
    """(run id, kind, key, text, number) of every param, latest metric, tag and input (a
    dataset name and its version) of the runs `ids`."""
    no_text, no_number = cast(null(), Text), cast(null(), Float)
    inputs = (
        select(t.run_inputs.c.run_id, literal("inputs"), t.datasets.c.name, no_text,
               cast(t.dataset_versions.c.version, Float))
        .join(t.dataset_versions, t.dataset_versions.c.id == t.run_inputs.c.dataset_version_id)
        .join(t.datasets, t.datasets.c.id == t.dataset_versions.c.dataset_id)
        .where(t.run_inputs.c.run_id.in_(ids))
    )  # fmt: skip
    return union_all(
        select(t.params.c.run_id, literal("params"), t.params.c.key, t.params.c.value, no_number)
        .where(t.params.c.run_id.in_(ids)),
        select(t.latest_metrics.c.run_id, literal("metrics"), t.latest_metrics.c.key, no_text,
               t.latest_metrics.c.value)
        .where(t.latest_metrics.c.run_id.in_(ids)),
        select(t.tags.c.run_id, literal("tags"), t.tags.c.key, t.tags.c.value, no_number)
        .where(t.tags.c.run_id.in_(ids)),
        inputs,
    )  # fmt: skip
