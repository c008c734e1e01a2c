"""The stores of what runs on top of the records, over the team server's REST API: pipeline step
I/O and lineage, deployments, monitors, alerts and retrain loops, each method made by `remote`
from its port's method and its entry in `loopml.remote_api.operations` (as in
`loopml.adapters.remote`). Those that create a record under a server-chosen id (a monitor run,
an alert rule, a new alert, a new loop run, a new loop) are sent once: a lost answer is
reported, not guessed at."""

from __future__ import annotations

from loopml.adapters.remote import _Remote, remote
from loopml.ports import (
    AlertStore,
    DeploymentStore,
    Leases,
    LineageStore,
    LoopStore,
    MonitorStore,
    PipelineStore,
)


class RemotePipelineStore(_Remote):
    """Step I/O, the step cache and the lineage links (PipelineStore and LineageStore)."""

    record_io = remote(PipelineStore.record_io)
    cached = remote(PipelineStore.cached)
    io_of = remote(PipelineStore.io_of)
    artifact_runs = remote(PipelineStore.artifact_runs)
    runs_using_dataset = remote(LineageStore.runs_using_dataset)
    model_versions_of = remote(LineageStore.model_versions_of)
    children_of = remote(LineageStore.children_of)
    runs_producing_dataset = remote(LineageStore.runs_producing_dataset)


class RemoteDeploymentStore(_Remote):
    save = remote(DeploymentStore.save)
    get = remote(DeploymentStore.get)
    list = remote(DeploymentStore.list)
    delete = remote(DeploymentStore.delete)


class RemoteMonitorStore(_Remote):
    save = remote(MonitorStore.save)
    get = remote(MonitorStore.get)
    delete = remote(MonitorStore.delete)
    add_run = remote(MonitorStore.add_run)
    get_run = remote(MonitorStore.get_run)
    runs = remote(MonitorStore.runs)
    list = remote(MonitorStore.list)


class RemoteAlertStore(_Remote):
    add_rule = remote(AlertStore.add_rule)
    rule = remote(AlertStore.rule)
    rules = remote(AlertStore.rules)
    delete_rule = remote(AlertStore.delete_rule)
    open_alert = remote(AlertStore.open_alert)
    last_alert = remote(AlertStore.last_alert)
    save_alert = remote(AlertStore.save_alert)
    alert = remote(AlertStore.alert)
    alerts = remote(AlertStore.alerts)


class RemoteLoopStore(_Remote):
    create = remote(LoopStore.create)
    get = remote(LoopStore.get)
    delete = remote(LoopStore.delete)
    save_state = remote(LoopStore.save_state)
    save_run = remote(LoopStore.save_run)
    run = remote(LoopStore.run)
    runs = remote(LoopStore.runs)
    list = remote(LoopStore.list)


class RemoteLoopLeases(_Remote):
    """The `Leases` port on a team server, for the one kind of lease a client takes there: a
    loop's (`loop_lease(project, name)`), through the loop's lease routes."""

    acquire = remote(Leases.acquire)
    renew = remote(Leases.renew)
    holder = remote(Leases.holder)
    release = remote(Leases.release)
