"""Every metadata store of one workspace as one value: what `loopml.bootstrap` composes for a
workspace (its `Stores` add the blobs and the database) and what the contract suites of
`loopml.testing.contracts` are given (their `MetadataStores` add what a backend can and cannot
do). Each backend builds it in one place: `sql_stores`/`quick_stores`
(`loopml.adapters.sql.store_sets`), `memory_stores` (`loopml.adapters.memory.store_set`) and
`remote_stores` (`loopml.adapters.remote_operations`)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from loopml.ports.auth import GrantStore, TokenStore, UserStore
from loopml.ports.datasets import DatasetStore
from loopml.ports.events import EventLog
from loopml.ports.models import ModelStore
from loopml.ports.operations import AlertStore, DeploymentStore, Leases, LoopStore, MonitorStore
from loopml.ports.pipelines import PipelineRecords
from loopml.ports.runs import RunStore


@dataclass
class MetadataPorts:
    """One store per metadata port, all on one database (they see each other's records: a
    model version names a run, lineage reads runs, dataset versions and model versions)."""

    datasets: DatasetStore
    runs: RunStore
    models: ModelStore
    events: EventLog
    pipelines: PipelineRecords
    deployments: DeploymentStore
    monitors: MonitorStore
    alerts: AlertStore
    loops: LoopStore
    leases: Leases
    users: UserStore
    tokens: TokenStore
    grants: GrantStore
    """Users, tokens and grants: often one object (an `AuthStore`), given once for each port."""

    def ports(self) -> dict[str, Any]:
        """The stores by field name, to build a wider set from this one
        (`Stores(**metadata.ports(), blobs=...)`)."""
        return {field.name: getattr(self, field.name) for field in fields(MetadataPorts)}
