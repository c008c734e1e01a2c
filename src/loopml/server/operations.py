"""The routes of what runs on top of the records: pipeline step I/O and lineage, deployments,
monitors and their runs, alert rules and alerts, and retrain loops with their lease and runs.

Roles: reading needs viewer on the project. Recording step I/O, monitor runs and alerts (what
`pipeline run`, `monitor check` and `alert ack` write) needs editor, as do monitors and alert
rules. Deployments and retrain loops decide what is served, so they need admin, as does
everything a loop run writes. A record sent in a body must belong to the route's project, and
a record updated by id must already be there. The runs and blobs a record names must be the
caller's to read (see `loopml.server.routes`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import APIRouter

from loopml.adapters.outbound import check_saved_url
from loopml.domain.alerts import check_resolution
from loopml.domain.loops import Loop, LoopRun, LoopSpec, LoopState, check_spec
from loopml.domain.loops import loop_lease as lease_of_loop
from loopml.domain.manifest import manifest_digests
from loopml.domain.records import (
    Alert,
    AlertRule,
    Deployment,
    Monitor,
    MonitorRun,
    RunId,
)
from loopml.domain.refs import check_name
from loopml.errors import InvalidInput
from loopml.ports import ArtifactRef, CachedStep
from loopml.server.bodies import EventIn
from loopml.services.auth import Principal
from loopml.steps import check_pipeline_source

if TYPE_CHECKING:
    from loopml.server.routes import _Context

MAX_LIMIT = 10_000


@dataclass
class StepIoIn:
    project: str
    step_name: str
    inputs: dict[str, ArtifactRef]
    outputs: list[ArtifactRef]
    cache_key: str | None = None


@dataclass
class StepIoOut:
    inputs: dict[str, ArtifactRef]
    outputs: list[ArtifactRef]


@dataclass
class ArtifactRunsOut:
    made: list[str]
    read: list[str]


@dataclass
class RunIdsIn:
    run_ids: list[str]


@dataclass
class ModelOfRun:
    project: str
    model: str
    version: int
    run_id: str


@dataclass
class DeploymentIn:
    deployment: Deployment
    event: EventIn


@dataclass
class SavedDeployment:
    deployment: Deployment
    created: bool


@dataclass
class MonitorIn:
    monitor: Monitor
    event: EventIn


@dataclass
class SavedMonitor:
    monitor: Monitor
    created: bool


@dataclass
class MonitorRunIn:
    run: MonitorRun
    event: EventIn


@dataclass
class RuleIn:
    rule: AlertRule
    event: EventIn


@dataclass
class AlertIn:
    alert: Alert
    event: EventIn


@dataclass
class DeletionIn:
    event: EventIn


@dataclass
class LoopIn:
    spec: LoopSpec
    event: EventIn


@dataclass
class LeaseIn:
    owner: str
    ttl_s: float


@dataclass
class LeaseOut:
    holder: str | None
    until_us: int | None


@dataclass
class LoopRunIn:
    run: LoopRun
    event: EventIn


def add_operation_routes(router: APIRouter, c: _Context) -> None:
    _lineage_routes(router, c)
    _deployment_routes(router, c)
    _monitor_routes(router, c)
    _alert_routes(router, c)
    _alert_state_routes(router, c)
    _loop_routes(router, c)
    _loop_run_routes(router, c)
    _loop_lease_routes(router, c)


def _same_project(record_project: str, project: str, what: str) -> None:
    if record_project != project:
        raise InvalidInput(
            f"The {what} is in project {record_project!r}, not the route's {project!r}.",
            f"Send it to /projects/{record_project}/...",
        )


def _same_name(record_name: str, name: str, what: str) -> None:
    if record_name != name:
        raise InvalidInput(
            f"The {what} is named {record_name!r}, not the route's {name!r}.",
            "Name it the same in the path and the body.",
        )


def _limit(limit: int) -> int:
    return max(1, min(limit, MAX_LIMIT))


def _lineage_routes(router: APIRouter, c: _Context) -> None:
    Who = c.who

    @router.put("/runs/{run_id}/io", tags=["lineage"], status_code=204)
    def record_step_io(run_id: str, body: StepIoIn, who: Principal = Who) -> None:
        """Record what a pipeline step run read and wrote (and its cache entry)."""
        project = c.run_in(who, run_id, "editor")
        _same_project(body.project, project, "step run")
        refs = [*body.inputs.values(), *body.outputs]
        c.need_blobs(who, (d for ref in refs for d in manifest_digests(ref.manifest)))
        c.pipelines.record_io(
            RunId(run_id),
            inputs=body.inputs,
            outputs=body.outputs,
            project=project,
            cache_key=body.cache_key,
            step_name=body.step_name,
        )

    @router.get("/runs/{run_id}/io", tags=["lineage"])
    def step_io(run_id: str, who: Principal = Who) -> StepIoOut:
        c.run_in(who, run_id, "viewer")
        inputs, outputs = c.pipelines.io_of(RunId(run_id))
        return StepIoOut(inputs, outputs)

    @router.get("/runs/{run_id}/children", tags=["lineage"])
    def child_runs(run_id: str, who: Principal = Who) -> list[str]:
        c.run_in(who, run_id, "viewer")
        return c.readable_runs(who, c.pipelines.children_of(RunId(run_id)))

    @router.get("/projects/{project}/step-cache/{cache_key}", tags=["lineage"])
    def cached_step(project: str, cache_key: str, who: Principal = Who) -> CachedStep | None:
        c.need(who, project, "viewer")
        return c.pipelines.cached(project, cache_key)

    @router.get("/artifacts/{digest}/runs", tags=["lineage"])
    def artifact_runs(digest: str, who: Principal = Who) -> ArtifactRunsOut:
        """The runs that made and read a step output: those of projects the caller reads."""
        c.need_anywhere(who, "viewer")
        made, read = c.pipelines.artifact_runs(digest)
        return ArtifactRunsOut(c.readable_runs(who, made), c.readable_runs(who, read))

    @router.get("/projects/{project}/datasets/{name}/versions/{version}/runs", tags=["lineage"])
    def runs_using_dataset(
        project: str, name: str, version: int, who: Principal = Who
    ) -> list[str]:
        c.need(who, project, "viewer")
        return c.readable_runs(who, c.pipelines.runs_using_dataset(project, name, version))

    @router.get("/projects/{project}/dataset-producers/{ref}", tags=["lineage"])
    def runs_producing_dataset(project: str, ref: str, who: Principal = Who) -> list[str]:
        """The runs that made dataset version `ref` (`name@N`)."""
        c.need(who, project, "viewer")
        return list(c.pipelines.runs_producing_dataset(project, ref))

    @router.post("/lineage/model-versions", tags=["lineage"])
    def model_versions_of(body: RunIdsIn, who: Principal = Who) -> list[ModelOfRun]:
        """The model versions these runs made (runs of projects the caller cannot read are
        refused; versions in such projects are left out)."""
        for run_id in body.run_ids:
            c.run_in(who, run_id, "viewer")
        found = c.pipelines.model_versions_of([RunId(r) for r in body.run_ids])
        return [ModelOfRun(*row) for row in found if who.may(row[0], "viewer")]


def _deployment_routes(router: APIRouter, c: _Context) -> None:
    Who = c.who

    @router.put("/projects/{project}/deployments/{name}", tags=["deployments"])
    def save_deployment(
        project: str, name: str, body: DeploymentIn, who: Principal = Who
    ) -> SavedDeployment:
        c.need(who, project, "admin")
        _same_project(body.deployment.project, project, "deployment")
        _same_name(body.deployment.name, check_name(name, "deployment"), "deployment")
        event = c.draft(who, body.event, "deployment", project)
        return SavedDeployment(*c.deployments.save(body.deployment, event))

    @router.get("/projects/{project}/deployments", tags=["deployments"])
    def list_deployments(project: str, who: Principal = Who) -> list[Deployment]:
        c.need(who, project, "viewer")
        return c.deployments.list(project)

    @router.get("/projects/{project}/deployments/{name}", tags=["deployments"])
    def get_deployment(project: str, name: str, who: Principal = Who) -> Deployment:
        c.need(who, project, "viewer")
        return c.deployments.get(project, name)

    @router.delete("/projects/{project}/deployments/{name}", tags=["deployments"], status_code=204)
    def delete_deployment(project: str, name: str, body: DeletionIn, who: Principal = Who) -> None:
        c.need(who, project, "admin")
        c.deployments.delete(project, name, c.draft(who, body.event, "deployment", project))


def _monitor_routes(router: APIRouter, c: _Context) -> None:
    Who = c.who

    @router.put("/projects/{project}/monitors/{name}", tags=["monitors"])
    def save_monitor(
        project: str, name: str, body: MonitorIn, who: Principal = Who
    ) -> SavedMonitor:
        c.need(who, project, "editor")
        _same_project(body.monitor.project, project, "monitor")
        _same_name(body.monitor.name, check_name(name, "monitor"), "monitor")
        c.need_blobs(who, [body.monitor.summary_digest] if body.monitor.summary_digest else [])
        if body.monitor.probe_url is not None:  # the server's scheduler will request it
            check_saved_url(body.monitor.probe_url, c.ws.settings.target_policy())
        event = c.draft(who, body.event, "monitor", project)
        return SavedMonitor(*c.monitors.save(body.monitor, event))

    @router.get("/projects/{project}/monitors", tags=["monitors"])
    def list_monitors(project: str, who: Principal = Who) -> list[Monitor]:
        c.need(who, project, "viewer")
        return c.monitors.list(project)

    @router.get("/projects/{project}/monitors/{name}", tags=["monitors"])
    def get_monitor(project: str, name: str, who: Principal = Who) -> Monitor:
        c.need(who, project, "viewer")
        return c.monitors.get(project, name)

    @router.delete("/projects/{project}/monitors/{name}", tags=["monitors"], status_code=204)
    def delete_monitor(project: str, name: str, body: DeletionIn, who: Principal = Who) -> None:
        c.need(who, project, "editor")
        c.monitors.delete(project, name, c.draft(who, body.event, "monitor", project))

    @router.post("/projects/{project}/monitors/{name}/runs", tags=["monitors"])
    def add_monitor_run(
        project: str, name: str, body: MonitorRunIn, who: Principal = Who
    ) -> MonitorRun:
        c.need(who, project, "editor")
        _same_project(body.run.project, project, "monitor run")
        _same_name(body.run.monitor, c.monitors.get(project, name).name, "monitor run's monitor")
        c.need_blobs(who, [body.run.report_digest])
        return c.monitors.add_run(body.run, c.draft(who, body.event, "monitor", project))

    @router.get("/projects/{project}/monitors/{name}/runs", tags=["monitors"])
    def monitor_runs(
        project: str, name: str, limit: int = 100, who: Principal = Who
    ) -> list[MonitorRun]:
        c.need(who, project, "viewer")
        return c.monitors.runs(project, name, _limit(limit))

    @router.get("/projects/{project}/monitor-runs/{run_id}", tags=["monitors"])
    def get_monitor_run(project: str, run_id: int, who: Principal = Who) -> MonitorRun:
        c.need(who, project, "viewer")
        return c.monitors.get_run(project, run_id)


def _check_channels(c: _Context, channels: Iterable[str]) -> None:
    """The webhook and Slack URLs the server would post to, checked against its outbound
    policy before they are saved (they are checked again before every request)."""
    for channel in channels:
        kind, _, target = channel.partition(":")
        if kind.strip().lower() in ("slack", "webhook"):
            check_saved_url(target, c.ws.settings.target_policy())


def _alert_routes(router: APIRouter, c: _Context) -> None:
    Who = c.who

    @router.post("/projects/{project}/alert-rules", tags=["alerts"])
    def add_alert_rule(project: str, body: RuleIn, who: Principal = Who) -> AlertRule:
        c.need(who, project, "editor")
        _same_project(body.rule.project, project, "alert rule")
        _check_channels(c, body.rule.channels)
        check_resolution(body.rule.condition, body.rule.resolve_after, body.rule.resolve_margin)
        return c.alerts.add_rule(body.rule, c.draft(who, body.event, "alert", project))

    @router.get("/projects/{project}/alert-rules", tags=["alerts"])
    def list_alert_rules(
        project: str, target: str | None = None, who: Principal = Who
    ) -> list[AlertRule]:
        c.need(who, project, "viewer")
        return c.alerts.rules(project, target)

    @router.get("/projects/{project}/alert-rules/{rule_id}", tags=["alerts"])
    def get_alert_rule(project: str, rule_id: int, who: Principal = Who) -> AlertRule:
        c.need(who, project, "viewer")
        return c.alerts.rule(project, rule_id)

    @router.delete("/projects/{project}/alert-rules/{rule_id}", tags=["alerts"], status_code=204)
    def delete_alert_rule(
        project: str, rule_id: int, body: DeletionIn, who: Principal = Who
    ) -> None:
        c.need(who, project, "editor")
        c.alerts.delete_rule(project, rule_id, c.draft(who, body.event, "alert", project))

    @router.get("/projects/{project}/alert-rules/{rule_id}/alerts/open", tags=["alerts"])
    def open_alert(project: str, rule_id: int, who: Principal = Who) -> Alert | None:
        c.need(who, project, "viewer")
        c.alerts.rule(project, rule_id)  # a rule of this project, or 404
        return c.alerts.open_alert(project, rule_id)

    @router.get("/projects/{project}/alert-rules/{rule_id}/alerts/last", tags=["alerts"])
    def last_alert(project: str, rule_id: int, who: Principal = Who) -> Alert | None:
        c.need(who, project, "viewer")
        c.alerts.rule(project, rule_id)
        return c.alerts.last_alert(project, rule_id)


def _alert_state_routes(router: APIRouter, c: _Context) -> None:
    Who = c.who

    @router.put("/projects/{project}/alerts", tags=["alerts"])
    def save_alert(project: str, body: AlertIn, who: Principal = Who) -> Alert:
        """Open an alert (id 0) or change one (fired, acknowledged, resolved)."""
        c.need(who, project, "editor")
        _same_project(body.alert.project, project, "alert")
        if body.alert.rule_id:  # 0: a notice loopml raised itself, under no rule
            c.alerts.rule(project, body.alert.rule_id)  # the rule is this project's
        if body.alert.id:
            c.alerts.alert(project, body.alert.id)  # and so is the alert
        return c.alerts.save_alert(body.alert, c.draft(who, body.event, "alert", project))

    @router.get("/projects/{project}/alerts", tags=["alerts"])
    def list_alerts(
        project: str, state: str | None = None, limit: int = 100, who: Principal = Who
    ) -> list[Alert]:
        c.need(who, project, "viewer")
        return c.alerts.alerts(project, state, _limit(limit))

    @router.get("/projects/{project}/alerts/{alert_id}", tags=["alerts"])
    def get_alert(project: str, alert_id: int, who: Principal = Who) -> Alert:
        c.need(who, project, "viewer")
        return c.alerts.alert(project, alert_id)


def _loop_routes(router: APIRouter, c: _Context) -> None:
    Who = c.who

    @router.post("/projects/{project}/loops", tags=["loops"])
    def create_loop(project: str, body: LoopIn, who: Principal = Who) -> Loop:
        c.need(who, project, "admin")
        _same_project(body.spec.project, project, "retrain loop")
        spec = check_spec(body.spec)
        _check_channels(c, spec.notify)
        roots = c.ws.settings.pipeline_roots
        if roots is not None:  # its schedule would run this file: one of the operator's
            check_pipeline_source(spec.pipeline, roots)
        return c.loops.create(spec, c.draft(who, body.event, "loop", project))

    @router.get("/projects/{project}/loops", tags=["loops"])
    def list_loops(project: str, who: Principal = Who) -> list[Loop]:
        c.need(who, project, "viewer")
        return c.loops.list(project)

    @router.get("/projects/{project}/loops/{name}", tags=["loops"])
    def get_loop(project: str, name: str, who: Principal = Who) -> Loop:
        c.need(who, project, "viewer")
        return c.loops.get(project, name)

    @router.delete("/projects/{project}/loops/{name}", tags=["loops"], status_code=204)
    def delete_loop(project: str, name: str, body: DeletionIn, who: Principal = Who) -> None:
        c.need(who, project, "admin")
        c.loops.delete(project, name, c.draft(who, body.event, "loop", project))

    @router.put("/projects/{project}/loops/{name}/state", tags=["loops"], status_code=204)
    def save_loop_state(project: str, name: str, body: LoopState, who: Principal = Who) -> None:
        c.need(who, project, "admin")
        c.loops.get(project, name)
        c.loops.save_state(project, name, body)


def _loop_run_routes(router: APIRouter, c: _Context) -> None:
    Who = c.who

    @router.put("/projects/{project}/loops/{name}/runs", tags=["loops"])
    def save_loop_run(project: str, name: str, body: LoopRunIn, who: Principal = Who) -> LoopRun:
        """Record a retraining (id 0) or its progress."""
        c.need(who, project, "admin")
        _same_project(body.run.project, project, "loop run")
        _same_name(body.run.loop, c.loops.get(project, name).spec.name, "loop run's loop")
        if body.run.id:
            c.loops.run(project, body.run.id)  # updates only a run of this project
        if body.run.pipeline_run:  # and the store keeps it in this project
            c.run_in(who, body.run.pipeline_run, "viewer")
        return c.loops.save_run(body.run, c.draft(who, body.event, "loop", project))

    @router.get("/projects/{project}/loops/{name}/runs", tags=["loops"])
    def loop_runs(project: str, name: str, limit: int = 100, who: Principal = Who) -> list[LoopRun]:
        c.need(who, project, "viewer")
        return c.loops.runs(project, name, _limit(limit))

    @router.get("/projects/{project}/loop-runs/{run_id}", tags=["loops"])
    def get_loop_run(project: str, run_id: int, who: Principal = Who) -> LoopRun:
        c.need(who, project, "viewer")
        return c.loops.run(project, run_id)


def _loop_lease_routes(router: APIRouter, c: _Context) -> None:
    """The lease that lets one retraining of a loop run at a time, wherever it runs."""
    Who = c.who

    def lease(project: str, name: str) -> str:
        c.loops.get(project, name)  # NotFound for a loop that is not there
        return lease_of_loop(project, name)

    @router.get("/projects/{project}/loops/{name}/lease", tags=["loops"])
    def loop_lease(project: str, name: str, who: Principal = Who) -> LeaseOut:
        c.need(who, project, "viewer")
        return LeaseOut(*c.leases.holder(lease(project, name)))

    @router.post("/projects/{project}/loops/{name}/lease/acquire", tags=["loops"])
    def acquire_loop_lease(
        project: str, name: str, body: LeaseIn, who: Principal = Who
    ) -> dict[str, bool]:
        c.need(who, project, "admin")
        return {"held": c.leases.acquire(lease(project, name), _owner(body), _ttl(body))}

    @router.post("/projects/{project}/loops/{name}/lease/renew", tags=["loops"])
    def renew_loop_lease(
        project: str, name: str, body: LeaseIn, who: Principal = Who
    ) -> dict[str, bool]:
        c.need(who, project, "admin")
        return {"held": c.leases.renew(lease(project, name), _owner(body), _ttl(body))}

    @router.post("/projects/{project}/loops/{name}/lease/release", tags=["loops"], status_code=204)
    def release_loop_lease(project: str, name: str, body: LeaseIn, who: Principal = Who) -> None:
        c.need(who, project, "admin")
        c.leases.release(lease(project, name), _owner(body))


def _owner(body: LeaseIn) -> str:
    if not 0 < len(body.owner) <= 200:
        raise InvalidInput("A lease owner is 1 to 200 characters.", "Send a host:pid:uuid id.")
    return body.owner


def _ttl(body: LeaseIn) -> float:
    if not 1 <= body.ttl_s <= 86_400:
        raise InvalidInput(f"A lease of {body.ttl_s} s is out of range.", "Give 1 to 86400 s.")
    return body.ttl_s
