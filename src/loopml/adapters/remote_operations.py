"""The stores of what runs on top of the records, over the team server's REST API: pipeline step
I/O and lineage, deployments, monitors, alerts and retrain loops (`loopml.server.operations`).

As in `loopml.adapters.remote`, every call that is safe to repeat is retried while the server
restarts. Those that create a record under a server-chosen id (a monitor run, an alert rule, a
new alert, a new loop run, a new loop) are sent once: a lost answer is reported, not guessed at.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from loopml.adapters.remote import RemoteClient, _event, _p, decode
from loopml.domain.loops import Loop, LoopRun, LoopSpec, LoopState, loop_of_lease
from loopml.domain.records import (
    Alert,
    AlertRule,
    Deployment,
    EventDraft,
    Monitor,
    MonitorRun,
    RunId,
)
from loopml.ports import ArtifactRef, CachedStep


def _deletion(event: EventDraft) -> dict[str, Any]:
    return {"event": _event(event)}


class RemotePipelineStore:
    """Step I/O, the step cache and the lineage links (PipelineStore and LineageStore)."""

    def __init__(self, client: RemoteClient) -> None:
        self._c = client

    def record_io(
        self,
        run_id: RunId,
        *,
        inputs: Mapping[str, ArtifactRef],
        outputs: Sequence[ArtifactRef],
        project: str,
        cache_key: str | None,
        step_name: str,
    ) -> None:
        body = {
            "project": project,
            "step_name": step_name,
            "inputs": dict(inputs),
            "outputs": list(outputs),
            "cache_key": cache_key,
        }
        self._c.call("PUT", f"/runs/{_p(run_id)}/io", body=body)

    def cached(self, project: str, cache_key: str) -> CachedStep | None:
        data = self._c.call("GET", f"/projects/{_p(project)}/step-cache/{_p(cache_key)}")
        return None if data is None else decode(CachedStep, data)

    def io_of(self, run_id: RunId) -> tuple[dict[str, ArtifactRef], list[ArtifactRef]]:
        data = self._c.call("GET", f"/runs/{_p(run_id)}/io")
        inputs: dict[str, ArtifactRef] = decode(dict[str, ArtifactRef], data["inputs"])
        return inputs, decode(list[ArtifactRef], data["outputs"])

    def artifact_runs(self, digest: str) -> tuple[list[RunId], list[RunId]]:
        data = self._c.call("GET", f"/artifacts/{_p(digest)}/runs")
        return [RunId(r) for r in data["made"]], [RunId(r) for r in data["read"]]

    def runs_using_dataset(self, project: str, name: str, version: int) -> list[RunId]:
        path = f"/projects/{_p(project)}/datasets/{_p(name)}/versions/{int(version)}/runs"
        return [RunId(r) for r in self._c.call("GET", path)]

    def model_versions_of(self, run_ids: Sequence[RunId]) -> list[tuple[str, str, int, RunId]]:
        if not run_ids:
            return []
        data = self._c.call("POST", "/lineage/model-versions", body={"run_ids": list(run_ids)})
        return [(d["project"], d["model"], int(d["version"]), RunId(d["run_id"])) for d in data]

    def children_of(self, run_id: RunId) -> list[RunId]:
        return [RunId(r) for r in self._c.call("GET", f"/runs/{_p(run_id)}/children")]

    def runs_producing_dataset(self, project: str, ref: str) -> list[RunId]:
        path = f"/projects/{_p(project)}/dataset-producers/{_p(ref)}"
        return [RunId(r) for r in self._c.call("GET", path)]


class RemoteDeploymentStore:
    def __init__(self, client: RemoteClient) -> None:
        self._c = client

    def _path(self, project: str, name: str) -> str:
        return f"/projects/{_p(project)}/deployments/{_p(name)}"

    def save(self, deployment: Deployment, event: EventDraft) -> tuple[Deployment, bool]:
        body = {"deployment": deployment, "event": _event(event)}
        data = self._c.call("PUT", self._path(deployment.project, deployment.name), body=body)
        return decode(Deployment, data["deployment"]), bool(data["created"])

    def get(self, project: str, name: str) -> Deployment:
        return decode(Deployment, self._c.call("GET", self._path(project, name)))

    def list(self, project: str) -> list[Deployment]:
        return decode(list[Deployment], self._c.call("GET", f"/projects/{_p(project)}/deployments"))

    def delete(self, project: str, name: str, event: EventDraft) -> None:
        self._c.call("DELETE", self._path(project, name), body=_deletion(event))


class RemoteMonitorStore:
    def __init__(self, client: RemoteClient) -> None:
        self._c = client

    def _path(self, project: str, name: str) -> str:
        return f"/projects/{_p(project)}/monitors/{_p(name)}"

    def save(self, monitor: Monitor, event: EventDraft) -> tuple[Monitor, bool]:
        body = {"monitor": monitor, "event": _event(event)}
        data = self._c.call("PUT", self._path(monitor.project, monitor.name), body=body)
        return decode(Monitor, data["monitor"]), bool(data["created"])

    def get(self, project: str, name: str) -> Monitor:
        return decode(Monitor, self._c.call("GET", self._path(project, name)))

    def delete(self, project: str, name: str, event: EventDraft) -> None:
        self._c.call("DELETE", self._path(project, name), body=_deletion(event))

    def add_run(self, run: MonitorRun, event: EventDraft) -> MonitorRun:
        body = {"run": run, "event": _event(event)}
        path = f"{self._path(run.project, run.monitor)}/runs"
        return decode(MonitorRun, self._c.call("POST", path, body=body, retry=False))

    def get_run(self, project: str, run_id: int) -> MonitorRun:
        path = f"/projects/{_p(project)}/monitor-runs/{int(run_id)}"
        return decode(MonitorRun, self._c.call("GET", path))

    def runs(self, project: str, monitor: str, limit: int) -> list[MonitorRun]:
        path = f"{self._path(project, monitor)}/runs"
        return decode(list[MonitorRun], self._c.call("GET", path, params={"limit": limit}))

    def list(self, project: str) -> list[Monitor]:
        return decode(list[Monitor], self._c.call("GET", f"/projects/{_p(project)}/monitors"))


class RemoteAlertStore:
    def __init__(self, client: RemoteClient) -> None:
        self._c = client

    def _rules(self, project: str) -> str:
        return f"/projects/{_p(project)}/alert-rules"

    def add_rule(self, rule: AlertRule, event: EventDraft) -> AlertRule:
        body = {"rule": rule, "event": _event(event)}
        data = self._c.call("POST", self._rules(rule.project), body=body, retry=False)
        return decode(AlertRule, data)

    def rule(self, project: str, rule_id: int) -> AlertRule:
        return decode(AlertRule, self._c.call("GET", f"{self._rules(project)}/{int(rule_id)}"))

    def rules(self, project: str, target: str | None = None) -> list[AlertRule]:
        params = {} if target is None else {"target": target}
        return decode(list[AlertRule], self._c.call("GET", self._rules(project), params=params))

    def delete_rule(self, project: str, rule_id: int, event: EventDraft) -> None:
        path = f"{self._rules(project)}/{int(rule_id)}"
        self._c.call("DELETE", path, body=_deletion(event))

    def open_alert(self, project: str, rule_id: int) -> Alert | None:
        data = self._c.call("GET", f"{self._rules(project)}/{int(rule_id)}/alerts/open")
        return None if data is None else decode(Alert, data)

    def last_alert(self, project: str, rule_id: int) -> Alert | None:
        data = self._c.call("GET", f"{self._rules(project)}/{int(rule_id)}/alerts/last")
        return None if data is None else decode(Alert, data)

    def save_alert(self, alert: Alert, event: EventDraft) -> Alert:
        body = {"alert": alert, "event": _event(event)}
        path = f"/projects/{_p(alert.project)}/alerts"
        return decode(Alert, self._c.call("PUT", path, body=body, retry=alert.id != 0))

    def alert(self, project: str, alert_id: int) -> Alert:
        path = f"/projects/{_p(project)}/alerts/{int(alert_id)}"
        return decode(Alert, self._c.call("GET", path))

    def alerts(self, project: str, state: str | None, limit: int) -> list[Alert]:
        params: dict[str, Any] = {"limit": limit}
        if state is not None:
            params["state"] = state
        data = self._c.call("GET", f"/projects/{_p(project)}/alerts", params=params)
        return decode(list[Alert], data)


class RemoteLoopStore:
    def __init__(self, client: RemoteClient) -> None:
        self._c = client

    def _path(self, project: str, name: str) -> str:
        return f"/projects/{_p(project)}/loops/{_p(name)}"

    def create(self, spec: LoopSpec, event: EventDraft) -> Loop:
        body = {"spec": spec, "event": _event(event)}
        path = f"/projects/{_p(spec.project)}/loops"
        return decode(Loop, self._c.call("POST", path, body=body, retry=False))

    def get(self, project: str, name: str) -> Loop:
        return decode(Loop, self._c.call("GET", self._path(project, name)))

    def delete(self, project: str, name: str, event: EventDraft) -> None:
        self._c.call("DELETE", self._path(project, name), body=_deletion(event))

    def save_state(self, project: str, name: str, state: LoopState) -> None:
        self._c.call("PUT", f"{self._path(project, name)}/state", body=state)

    def save_run(self, run: LoopRun, event: EventDraft) -> LoopRun:
        body = {"run": run, "event": _event(event)}
        path = f"{self._path(run.project, run.loop)}/runs"
        return decode(LoopRun, self._c.call("PUT", path, body=body, retry=run.id != 0))

    def run(self, project: str, run_id: int) -> LoopRun:
        path = f"/projects/{_p(project)}/loop-runs/{int(run_id)}"
        return decode(LoopRun, self._c.call("GET", path))

    def runs(self, project: str, loop: str, limit: int) -> list[LoopRun]:
        path = f"{self._path(project, loop)}/runs"
        return decode(list[LoopRun], self._c.call("GET", path, params={"limit": limit}))

    def list(self, project: str) -> list[Loop]:
        return decode(list[Loop], self._c.call("GET", f"/projects/{_p(project)}/loops"))


class RemoteLoopLeases:
    """The `Leases` port on a team server, for the one kind of lease a client takes there: a
    loop's (`loop_lease(project, name)`), through the loop's lease routes."""

    def __init__(self, client: RemoteClient) -> None:
        self._c = client

    def _path(self, lease: str) -> str:
        project, name = loop_of_lease(lease)
        return f"/projects/{_p(project)}/loops/{_p(name)}/lease"

    def acquire(self, name: str, owner: str, ttl_s: float) -> bool:
        # Taking a lease twice for one owner is the same as once: safe to retry.
        body = {"owner": owner, "ttl_s": ttl_s}
        return bool(self._c.call("POST", f"{self._path(name)}/acquire", body=body)["held"])

    def renew(self, name: str, owner: str, ttl_s: float) -> bool:
        body = {"owner": owner, "ttl_s": ttl_s}
        return bool(self._c.call("POST", f"{self._path(name)}/renew", body=body)["held"])

    def holder(self, name: str) -> tuple[str | None, int | None]:
        data = self._c.call("GET", self._path(name))
        return data["holder"], data["until_us"]

    def release(self, name: str, owner: str) -> None:
        body = {"owner": owner, "ttl_s": 1.0}
        self._c.call("POST", f"{self._path(name)}/release", body=body)
