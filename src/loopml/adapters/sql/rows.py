"""Stored rows to records, and the errors for a record that is not there: shared by the SQL
stores (rows of SQLAlchemy) and the quick read path (rows of the standard `sqlite3`), so both
build the same records from the same columns. No SQLAlchemy here.

A row is anything with the columns as attributes, its JSON columns already decoded.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from loopml.domain.epoch_us import us_to_datetime
from loopml.domain.hashing import Digest
from loopml.domain.loops import Loop, LoopRun, LoopSpec, LoopState
from loopml.domain.records import (
    Alert,
    AlertRule,
    DatasetSummary,
    DatasetVersion,
    Delivery,
    Deployment,
    Event,
    ModelSummary,
    ModelVersion,
    Monitor,
    MonitorRun,
    Run,
    RunId,
    RunStatus,
)
from loopml.errors import NotFound

OPEN_STATES = ("firing", "acknowledged")
"""The states of an alert still open."""
Clock = Callable[[], int]
"""Returns the current time in integer microseconds since the epoch."""


def system_clock_us() -> int:
    return time.time_ns() // 1000


def _when(us: int | None) -> Any:
    return None if us is None else us_to_datetime(us)


# -- datasets ---------------------------------------------------------------------------------


def to_dataset_version(row: Any) -> DatasetVersion:
    return DatasetVersion(
        project=row.project,
        name=row.name,
        version=row.version,
        digest=Digest(row.digest),
        message=row.message,
        created_at=us_to_datetime(row.created_us),
        actor=row.actor,
        file_count=row.file_count,
        total_size=row.total_size,
        schema=row.table_schema,
    )


def to_dataset_summary(row: Any) -> DatasetSummary:
    return DatasetSummary(
        project=row.project,
        name=row.name,
        latest_version=row.latest_version,
        created_at=us_to_datetime(row.created_us),
        updated_at=us_to_datetime(row.updated_us),
    )


def missing_dataset(project: str, name: str) -> NotFound:
    return NotFound(
        f"Dataset {name!r} does not exist in project {project!r}.",
        "List datasets with `loopml data list`, or add one with `loopml data add FILE --name "
        f"{name}`.",
    )


def missing_dataset_version(name: str, number: int, latest: int) -> NotFound:
    return NotFound(
        f"Dataset {name!r} has no version {number}; its latest is {latest}.",
        f"List versions with `loopml data list {name}`.",
    )


# -- runs -------------------------------------------------------------------------------------


def to_run(row: Any, side: dict[str, dict[str, Any]], inputs: list[str]) -> Run:
    """A run from its row, its params, latest metrics and tags (`side`) and its inputs."""
    return Run(
        id=RunId(row.id),
        project=row.project,
        name=row.name,
        status=RunStatus(row.status),
        start_time=us_to_datetime(row.start_us),
        end_time=_when(row.end_us),
        error=row.error,
        params=dict(side.get("params", {})),
        metrics=dict(side.get("metrics", {})),
        tags=dict(side.get("tags", {})),
        environment=row.environment,
        inputs=tuple(sorted(inputs)),
        parent_id=RunId(row.parent_id) if row.parent_id else None,
    )


# -- models -----------------------------------------------------------------------------------


def to_model_version(row: Any, aliases: dict[str, int]) -> ModelVersion:
    return ModelVersion(
        project=row.project,
        name=row.name,
        version=row.version,
        run_id=RunId(row.run_id) if row.run_id else None,
        flavor=row.flavor,
        artifact_digest=Digest(row.artifact_digest),
        signature=row.signature,
        metrics=row.metrics,
        created_at=us_to_datetime(row.created_us),
        actor=row.actor,
        aliases=tuple(sorted(a for a, v in aliases.items() if v == row.version)),
        flavor_info=row.flavor_info,
    )


def to_model_summary(row: Any, aliases: dict[str, int]) -> ModelSummary:
    return ModelSummary(
        project=row.project,
        name=row.name,
        description=row.description,
        latest_version=row.latest_version,
        aliases=dict(aliases),
        created_at=us_to_datetime(row.created_us),
    )


def missing_model(project: str, name: str) -> NotFound:
    return NotFound(
        f"Model {name!r} does not exist in project {project!r}.",
        "List models with `loopml models list`.",
    )


def missing_model_version(name: str, version: int, latest: int) -> NotFound:
    have = f"its versions are 1 to {latest}" if latest else "it has no versions yet"
    return NotFound(
        f"Model {name!r} has no version {version}; {have}.",
        f"List versions with `loopml models versions {name}`.",
    )


def missing_alias(name: str, alias: str, aliases: dict[str, int]) -> NotFound:
    known = ", ".join(sorted(aliases)) or "none"
    return NotFound(
        f"Model {name!r} has no alias {alias!r} (its aliases: {known}).",
        f"Set it with `loopml models alias set {name} {alias} VERSION`.",
    )


# -- operations -------------------------------------------------------------------------------


def to_deployment(row: Any) -> Deployment:
    return Deployment(
        row.project,
        row.name,
        row.model_ref,
        row.shadow_ref,
        row.canary_ref,
        row.canary_percent,
        us_to_datetime(row.created_us),
        us_to_datetime(row.updated_us),
    )


def missing_deployment(project: str, name: str) -> NotFound:
    return NotFound(
        f"Deployment {name!r} does not exist in project {project!r}.",
        "List deployments with `loopml deploy list`.",
    )


def to_monitor(row: Any) -> Monitor:
    return Monitor(
        row.project,
        row.name,
        row.deployment,
        row.reference,
        None if row.summary_digest is None else Digest(row.summary_digest),
        row.window_s,
        row.every_s,
        us_to_datetime(row.created_us),
        us_to_datetime(row.updated_us),
        row.probe_url,
    )


def to_monitor_run(row: Any) -> MonitorRun:
    return MonitorRun(
        row.id,
        row.project,
        row.monitor,
        us_to_datetime(row.time_us),
        row.window_start_us,
        row.window_end_us,
        row.rows,
        row.drift_share,
        tuple(json.loads(row.drifted_json)),
        Digest(row.report_digest),
        row.weighted_drift,
    )


def missing_monitor(project: str, name: str) -> NotFound:
    return NotFound(
        f"Monitor {name!r} does not exist in project {project!r}.",
        "List monitors with `loopml monitor list`, or make one with `loopml monitor create`.",
    )


def missing_monitor_run(project: str, run_id: int) -> NotFound:
    return NotFound(
        f"Monitor run {run_id} does not exist in project {project!r}.",
        "List runs with `loopml monitor history MONITOR`.",
    )


def to_alert_rule(row: Any) -> AlertRule:
    return AlertRule(
        row.id,
        row.project,
        row.target,
        row.condition,
        tuple(json.loads(row.channels_json)),
        row.cooldown_s,
        us_to_datetime(row.created_us),
        row.resolve_after,
        row.resolve_margin,
    )


def missing_alert_rule(project: str, rule_id: int) -> NotFound:
    return NotFound(
        f"Alert rule {rule_id} does not exist in project {project!r}.",
        "List rules with `loopml alert rule list`.",
    )


def to_alert(row: Any) -> Alert:
    return Alert(
        row.id,
        row.project,
        row.rule_id,
        row.target,
        row.condition,
        row.state,
        us_to_datetime(row.opened_us),
        us_to_datetime(row.updated_us),
        _when(row.resolved_us),
        row.value,
        tuple(Delivery(**item) for item in json.loads(row.deliveries_json)),
    )


def missing_alert(project: str, alert_id: int) -> NotFound:
    return NotFound(
        f"Alert {alert_id} does not exist in project {project!r}.",
        "List alerts with `loopml alert list`.",
    )


def to_loop(row: Any) -> Loop:
    return Loop(
        LoopSpec.from_dict(row.project, row.name, json.loads(row.spec_json)),
        LoopState.from_dict(json.loads(row.state_json)),
        us_to_datetime(row.created_us),
        us_to_datetime(row.updated_us),
    )


def to_loop_run(row: Any) -> LoopRun:
    return LoopRun(
        row.id,
        row.project,
        row.loop,
        us_to_datetime(row.started_us),
        _when(row.finished_us),
        row.trigger,
        row.status,
        **LoopRun.fields_from(json.loads(row.details_json)),
    )


def to_event(row: Any) -> Event:
    return Event(
        seq=row.seq,
        time=us_to_datetime(row.time_us),
        action=row.action,
        entity=row.entity,
        actor=row.actor,
        before=row.before,
        after=row.after,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )
