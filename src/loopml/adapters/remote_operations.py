"""The stores of what runs on top of the records, over the team server's REST API: pipeline step
I/O and lineage, deployments, monitors, alerts and retrain loops, each made by `remote_store`
from its ports' entries in `loopml.remote_api.operations` (as in `loopml.adapters.remote`).
Those that create a record under a server-chosen id (a monitor run, an alert rule, a new alert,
a new loop run, a new loop) are sent once: a lost answer is reported, not guessed at.
`remote_stores` is the whole set of a team server's metadata stores."""

from __future__ import annotations

from loopml import ports
from loopml.adapters.remote import (
    RemoteAuthStore,
    RemoteClient,
    RemoteDatasetStore,
    RemoteEventLog,
    RemoteModelStore,
    RemoteRunStore,
    remote_store,
)
from loopml.ports.store_set import MetadataPorts

RemotePipelineStore = remote_store(
    "RemotePipelineStore",
    ports.PipelineStore,
    ports.LineageStore,
    doc="Step I/O, the step cache and the lineage links (PipelineStore and LineageStore).",
)
RemoteDeploymentStore = remote_store("RemoteDeploymentStore", ports.DeploymentStore)
RemoteMonitorStore = remote_store("RemoteMonitorStore", ports.MonitorStore)
RemoteAlertStore = remote_store("RemoteAlertStore", ports.AlertStore)
RemoteLoopStore = remote_store("RemoteLoopStore", ports.LoopStore)
RemoteLoopLeases = remote_store(
    "RemoteLoopLeases",
    ports.Leases,
    doc="""The `Leases` port on a team server, for the one kind of lease a client takes there:
    a loop's (`loop_lease(project, name)`), through the loop's lease routes.""",
)


def remote_stores(client: RemoteClient) -> MetadataPorts:
    """Every metadata store of the team server `client` talks to."""
    auth = RemoteAuthStore(client)
    return MetadataPorts(
        RemoteDatasetStore(client),
        RemoteRunStore(client),
        RemoteModelStore(client),
        RemoteEventLog(client),
        RemotePipelineStore(client),
        RemoteDeploymentStore(client),
        RemoteMonitorStore(client),
        RemoteAlertStore(client),
        RemoteLoopStore(client),
        RemoteLoopLeases(client),
        auth,
        auth,
        auth,
    )
