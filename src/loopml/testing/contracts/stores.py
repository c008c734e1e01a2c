"""What every suite of `loopml.testing.contracts` is given (`MetadataStores`, the `stores`
fixture's value) and the small helpers they share to make records."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from loopml.domain.hashing import digest_bytes
from loopml.domain.loops import LoopSpec, loop_lease
from loopml.domain.manifest import BlobRef, Manifest
from loopml.domain.records import DatasetVersion, Event, EventDraft, ModelVersion, Run, RunId
from loopml.ports import (
    ArtifactRef,
    MetadataPorts,
    NewDatasetVersion,
    NewModelVersion,
    NewRun,
)
from loopml.testing.contracts.clock import FakeClock

ACTOR = "alice"
"""Who every event draft of the suites names. A client of a server records the server's signed-in
user instead, so a client backend signs in as `alice`."""
PROJECT = "default"


@dataclass
class MetadataStores(MetadataPorts):
    """A fresh, empty set of stores on one database (`MetadataPorts`), and what its backend can
    and cannot do."""

    appends_events: bool = True
    """Whether `events.append` records an event; False for a client of a server, which appends
    events only with the change they record (and refuses `append` with InvalidInput)."""
    checks_tokens: bool = True
    """Whether `tokens.find_token` looks a token up; False for a client of a server, which
    leaves checking tokens to the server (and refuses `find_token` with InvalidInput)."""
    loop_leases_only: bool = False
    """Whether `leases` takes only loops' leases (`loop_lease(project, name)` of a loop that
    exists), as a client of a team server does: the lease suite then names its leases so."""
    clock: FakeClock | None = None
    """The clock every store reads, when the backend takes one: `pass_time` turns it instead
    of sleeping. None: the stores read the real time (a server's own)."""


def pass_time(stores: MetadataStores, seconds: float) -> None:
    """Let `seconds` pass for the stores: turn their clock, or wait when they read the real
    time."""
    if stores.clock is not None:
        stores.clock.advance(seconds)
    else:
        time.sleep(seconds)


def draft(action: str, entity: str, after: dict[str, Any] | None = None) -> EventDraft:
    return EventDraft(action, entity, ACTOR, None, after)


def manifest(content: bytes, path: str = "data.csv") -> Manifest:
    """A manifest of one file holding `content`."""
    return Manifest.of([(path, BlobRef(digest_bytes(content), len(content)))])


def add_dataset(
    stores: MetadataStores, name: str, content: bytes, project: str = PROJECT
) -> DatasetVersion:
    new = NewDatasetVersion(project, name, manifest(content), "msg", None, None)
    version, _ = stores.datasets.add_version(
        new, draft("dataset.added", f"dataset:{project}/{name}")
    )
    return version


def start_run(
    stores: MetadataStores,
    name: str = "r",
    *,
    project: str = PROJECT,
    tags: dict[str, str] | None = None,
    parent_id: RunId | None = None,
    finished: bool = False,
) -> Run:
    new = NewRun(project, name, {"python": "3"}, tags or {}, parent_id=parent_id, finished=finished)
    return stores.runs.create_run(new, draft("run.created", f"run:{project}"))


def register_model(
    stores: MetadataStores,
    name: str = "churn",
    *,
    run_id: RunId | None = None,
    content: bytes = b"m",
    project: str = PROJECT,
) -> ModelVersion:
    new = NewModelVersion(
        project, name, run_id, "sklearn", {"v": 1}, manifest(content), {"inputs": []}, {"f1": 0.9}
    )
    return stores.models.register(new, draft("model.registered", f"model:{project}/{name}"))


def loop_spec(name: str = "churn-loop", project: str = PROJECT) -> LoopSpec:
    """A retrain policy as `check_spec` leaves it (a server checks what it is sent)."""
    return LoopSpec(
        project,
        name,
        "churn-prod",
        "/src/pipeline.py:churn",
        ("alert:churn-drift", "every:7d"),
        "reference + labelled predictions of the last 30d",
        ("f1 >= champion.f1 + 0.005",),
        ("latency_p99_ms <= 1.2 * champion.latency_p99_ms",),
        mode="approve",
        params={"lr": 0.05},
        notify=("log:",),
    )


def lease_name(stores: MetadataStores, name: str) -> str:
    """A lease called `name` as `stores.leases` takes it: `name` itself, or the lease of a loop
    called `name` (made first) when the backend takes only loops' leases."""
    if not stores.loop_leases_only:
        return name
    spec = loop_spec(name)
    stores.loops.create(spec, draft("loop.created", f"loop:{PROJECT}/{name}"))
    return loop_lease(PROJECT, name)


def artifact(value: bytes, serializer: str = "json") -> ArtifactRef:
    """A step output holding `value`, named by its manifest's digest."""
    files = manifest(value, "value.json")
    return ArtifactRef(files.digest, serializer, "dict", files.to_dict())


def last_seq(stores: MetadataStores) -> int:
    """The newest event's number (a server has events of its own before the test's)."""
    newest = stores.events.list(limit=1)
    return newest[0].seq if newest else 0


def events_since(stores: MetadataStores, seq: int) -> list[Event]:
    """The events after `seq`, oldest first."""
    return [event for event in stores.events.iterate() if event.seq > seq]
