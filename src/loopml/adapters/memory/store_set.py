"""Every metadata store in memory, on one `MemoryDatabase`: the set `loopml.bootstrap` opens for
LOOPML_DB_URL=memory:// and the contract suites' memory backend."""

from __future__ import annotations

from loopml.adapters.memory.alerts import MemoryAlertStore
from loopml.adapters.memory.auth import MemoryAuthStore
from loopml.adapters.memory.database import MemoryDatabase
from loopml.adapters.memory.datasets import MemoryDatasetStore
from loopml.adapters.memory.deployments import MemoryDeploymentStore
from loopml.adapters.memory.events import MemoryEventLog
from loopml.adapters.memory.leases import MemoryLeases
from loopml.adapters.memory.loops import MemoryLoopStore
from loopml.adapters.memory.models import MemoryModelStore
from loopml.adapters.memory.monitors import MemoryMonitorStore
from loopml.adapters.memory.pipelines import MemoryPipelineStore
from loopml.adapters.memory.runs import MemoryRunStore
from loopml.ports.store_set import MetadataPorts


def memory_stores(db: MemoryDatabase) -> MetadataPorts:
    """Every metadata store on `db` (mypy checks each against its port)."""
    auth = MemoryAuthStore(db)
    return MetadataPorts(
        MemoryDatasetStore(db),
        MemoryRunStore(db),
        MemoryModelStore(db),
        MemoryEventLog(db),
        MemoryPipelineStore(db),
        MemoryDeploymentStore(db),
        MemoryMonitorStore(db),
        MemoryAlertStore(db),
        MemoryLoopStore(db),
        MemoryLeases(db),
        auth,
        auth,
        auth,
    )
