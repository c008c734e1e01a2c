"""The small interfaces services depend on; adapters implement them.

One Protocol per aggregate or capability, about eight methods at most. Each mutation takes the
`EventDraft` that records it, and the store writes both in one transaction, so a change and its
audit entry are never apart.

Every port is importable from here (`from loopml.ports import RunStore`); each lives in the
module of its concept:

    blobs            BlobStore, HashCache, and garbage collection's BlobSweep, BlobReferences,
                     BlobAccess
    datasets         DatasetStore, TableDescriber
    runs             RunStore (and RunHeartbeats, SilentRunReaper), EnvironmentProbe
    models           ModelStore, Flavor, ModelSerializer, LoadedModel, ModelCompiler
    events           EventLog (the audit trail)
    pipelines        PipelineStore, LineageStore (PipelineRecords: both), ValueSerializer,
                     Executor
    operations       DeploymentStore, MonitorStore, AlertStore, Notifier, LoopStore, Leases
    auth             UserStore, TokenStore, GrantStore (AuthStore: all three), SessionStore
    prediction_log   PredictionWriter, PredictionReader, PredictionLogUpkeep
    store_set        MetadataPorts: one store per metadata port, as a workspace holds them
    mlflow_source    MlflowSource: an MLflow store to import from
"""

from __future__ import annotations

from loopml.ports.auth import (
    AuthStore,
    GrantStore,
    SessionStore,
    TokenStore,
    UserStore,
)
from loopml.ports.blobs import (
    BlobAccess,
    BlobReferences,
    BlobStore,
    BlobSweep,
    HashCache,
    ProgressFn,
    StoredBlob,
    StrayFile,
)
from loopml.ports.datasets import DatasetStore, NewDatasetVersion, TableDescriber
from loopml.ports.events import EventLog
from loopml.ports.mlflow_source import MlflowSource
from loopml.ports.models import (
    Flavor,
    LoadedModel,
    ModelCompiler,
    ModelSerializer,
    ModelStore,
    NewModelVersion,
)
from loopml.ports.operations import (
    AlertStore,
    DeploymentStore,
    Leases,
    LoopStore,
    MonitorStore,
    Notifier,
)
from loopml.ports.pipelines import (
    ArtifactRef,
    CachedStep,
    Executor,
    LineageStore,
    PipelineRecords,
    PipelineStore,
    ValueSerializer,
)
from loopml.ports.prediction_log import PredictionLogUpkeep, PredictionReader, PredictionWriter
from loopml.ports.runs import (
    EnvironmentProbe,
    NewRun,
    RunHeartbeats,
    RunPage,
    RunStore,
    SilentRunReaper,
)
from loopml.ports.store_set import MetadataPorts

__all__ = [
    "AlertStore",
    "ArtifactRef",
    "AuthStore",
    "BlobAccess",
    "BlobReferences",
    "BlobStore",
    "BlobSweep",
    "CachedStep",
    "DatasetStore",
    "DeploymentStore",
    "EnvironmentProbe",
    "EventLog",
    "Executor",
    "Flavor",
    "GrantStore",
    "HashCache",
    "Leases",
    "LineageStore",
    "LoadedModel",
    "LoopStore",
    "MetadataPorts",
    "MlflowSource",
    "ModelCompiler",
    "ModelSerializer",
    "ModelStore",
    "MonitorStore",
    "NewDatasetVersion",
    "NewModelVersion",
    "NewRun",
    "Notifier",
    "PipelineRecords",
    "PipelineStore",
    "PredictionLogUpkeep",
    "PredictionReader",
    "PredictionWriter",
    "ProgressFn",
    "RunHeartbeats",
    "RunPage",
    "RunStore",
    "SessionStore",
    "SilentRunReaper",
    "StoredBlob",
    "StrayFile",
    "TableDescriber",
    "TokenStore",
    "UserStore",
    "ValueSerializer",
]
