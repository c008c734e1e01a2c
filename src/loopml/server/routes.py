"""The routes of the team server: one per store operation, each checking the caller's role.

Roles: reading needs viewer on the project, writing runs, data and models needs editor, moving a
protected alias (`champion`) needs admin; users, tokens and grants need admin everywhere. The
event a write records is the client's action on the client's entity, which must name the
route's project, with the token's user as the actor.

Projects are isolated: a run named by id, or a blob by digest, that the caller may not read is
answered exactly as one that does not exist (no oracle); a blob is readable through a project
that holds it (a dataset or model manifest, a run artifact, a step output, a monitor summary or
report: `blob_refs`) or by whoever uploaded it; a record naming a blob its writer may not read
is refused as naming a missing one; and the stores refuse references across projects (a run's
parent, a model version's run, a run's inputs, step I/O, a retraining's pipeline run, an
alert's rule).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from loopml.domain.auth import PROTECTED_ALIASES, allows
from loopml.domain.filters import check_query
from loopml.domain.hashing import Digest, is_digest
from loopml.domain.manifest import Manifest, manifest_digests
from loopml.domain.records import (
    DatasetSummary,
    DatasetVersion,
    EventDraft,
    MetricPoint,
    ModelSummary,
    ModelVersion,
    Run,
    RunArtifact,
    RunId,
    missing_run,
)
from loopml.domain.refs import check_name
from loopml.errors import Conflict, Forbidden, IntegrityError, InvalidInput, NotFound
from loopml.ports import NewDatasetVersion, NewModelVersion, NewRun, RunHeartbeats, RunPage
from loopml.server.bodies import (
    MAX_HEARTBEAT_RUNS,
    AddedVersion,
    AliasIn,
    AliasOut,
    BatchIn,
    EndRunIn,
    EventIn,
    HeartbeatIn,
    LinksIn,
    NewDatasetIn,
    NewModelIn,
    NewRunIn,
    SearchIn,
)
from loopml.services.auth import Principal

if TYPE_CHECKING:
    from loopml.bootstrap import Workspace

CHUNK = 1 << 20
log = logging.getLogger("loopml.server")


@dataclass
class _Context:
    """What every route needs: the workspace, its stores, and the checks."""

    ws: Workspace
    who: Any
    """The dependency that yields the caller."""

    def __post_init__(self) -> None:
        stores = self.ws.stores
        if stores.blob_access is None:
            raise TypeError("A team server serves a workspace of its own, not another server.")
        self.datasets = stores.datasets
        self.runs = stores.runs
        if not isinstance(stores.runs, RunHeartbeats):
            raise TypeError("A team server's run store keeps heartbeats.")
        self.heartbeats: RunHeartbeats = stores.runs
        self.models = stores.models
        self.events = stores.events
        self.users = stores.users
        self.tokens = stores.tokens
        self.grants = stores.grants
        self.pipelines = stores.pipelines
        self.deployments = stores.deployments
        self.monitors = stores.monitors
        self.alerts = stores.alerts
        self.loops = stores.loops
        self.leases = stores.leases
        self.blob_access = stores.blob_access
        self.projects: dict[str, str] = {}

    def need(self, who: Principal, project: str, role: str) -> None:
        self.ws.auth.require(who, check_name(project, "project"), role)

    def need_anywhere(self, who: Principal, role: str) -> None:
        if not any(allows(r, role) for r in (who.role, *who.grants.values())):
            raise Forbidden(f"{who.user} has no {role} role on any project.", "Ask an admin.")

    def admin(self, who: Principal) -> None:
        if who.role != "admin":
            raise Forbidden(f"{who.user} is not an admin everywhere.", "Ask an admin.")

    def draft(self, who: Principal, event: EventIn, kind: str, project: str) -> EventDraft:
        """The client's event, checked to be about the route's project, by the caller."""
        prefix, _, rest = event.entity.partition(":")
        if prefix != kind or rest.split("/", 1)[0] != project:
            raise InvalidInput(
                f"The event entity {event.entity!r} is not a {kind} of project {project!r}.",
                f"Write {kind}:{project}/NAME.",
            )
        return EventDraft(event.action, event.entity, who.user)

    def changed(self, who: Principal, action: str, entity: str) -> EventDraft:
        """The event of a change to users, tokens or grants, by the caller."""
        self.ws.auth.forget()  # what this server remembers of tokens may be stale now
        return EventDraft(action, entity, who.user)

    def run_project(self, run_id: str) -> str:
        """The project of run `run_id` (remembered: a run never changes project)."""
        project = self.projects.get(run_id)
        if project is None:
            project = self.runs.get_run(RunId(run_id)).project
            if len(self.projects) > 100_000:
                self.projects.clear()
            self.projects[run_id] = project
        return project

    def readable_runs(self, who: Principal, run_ids: list[RunId]) -> list[str]:
        """Those of `run_ids` in projects `who` may read."""
        return [r for r in run_ids if who.may(self.run_project(r), "viewer")]

    def run_in(self, who: Principal, run_id: str, role: str) -> str:
        """The project of run `run_id`, once `who` holds `role` there. A run of a project `who`
        cannot read is answered exactly as a run that does not exist (no oracle for ids)."""
        project = self.run_project(run_id)
        if not who.may(project, "viewer"):
            raise missing_run(run_id)
        self.need(who, project, role)
        return project

    def readable_projects(self, who: Principal) -> list[str] | None:
        """The projects `who` may read; None for every project (a role everywhere)."""
        if allows(who.role, "viewer"):
            return None
        return sorted(p for p, role in who.grants.items() if allows(role, "viewer"))

    def may_read_blob(self, who: Principal, digest: str) -> bool:
        """A blob held by a project `who` may read, or one they uploaded (an admin everywhere
        reads every project and can act as anyone: every blob)."""
        if who.role == "admin":
            return True
        return self.blob_access.readable(digest, who.user, self.readable_projects(who))

    def need_blobs(self, who: Principal, digests: Iterable[str]) -> None:
        """Refuse a record naming a blob `who` may not read (learning a digest must not let
        anyone name it in their own record and read it through that), exactly as a blob that
        is not stored."""
        if who.role == "admin":
            return
        named = list(dict.fromkeys(digests))
        unreadable = set(self.blob_access.unreadable(named, who.user, self.readable_projects(who)))
        missing = [d for d in named if d in unreadable]  # in the record's order
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise NotFound(
                f"Blob {missing[0]}{more} named in the record is not stored here.",
                "Upload it first (PUT /api/v1/blobs/DIGEST); loopml's clients upload every "
                "file before they name it.",
            )


def build_router(
    ws: Workspace, principal: Callable[..., Any], *, max_upload_bytes: int
) -> APIRouter:
    router = APIRouter()
    context = _Context(ws, Depends(principal))
    _dataset_routes(router, context)
    _blob_routes(router, context, max_upload_bytes)
    _run_routes(router, context)
    _run_read_routes(router, context)
    _model_routes(router, context)
    from loopml.server.admin import add_admin_routes  # they import this module's context
    from loopml.server.operations import add_operation_routes

    add_admin_routes(router, context)
    add_operation_routes(router, context)
    return router


def _dataset_routes(router: APIRouter, c: _Context) -> None:
    Who = c.who

    @router.post("/projects/{project}/datasets/{name}/versions", tags=["datasets"])
    def add_dataset_version(
        project: str, name: str, body: NewDatasetIn, who: Principal = Who
    ) -> AddedVersion:
        c.need(who, project, "editor")
        c.need_blobs(who, manifest_digests(body.manifest))
        new = NewDatasetVersion(
            project,
            check_name(name, "dataset"),
            body.manifest,
            body.message,
            body.table_schema,
            body.profile,
        )
        version, created = c.datasets.add_version(new, c.draft(who, body.event, "dataset", project))
        return AddedVersion(version, created)

    @router.get("/projects/{project}/datasets", tags=["datasets"])
    def list_datasets(project: str, who: Principal = Who) -> list[DatasetSummary]:
        c.need(who, project, "viewer")
        return c.datasets.list_datasets(project)

    @router.get("/projects/{project}/datasets/{name}/versions", tags=["datasets"])
    def list_dataset_versions(
        project: str, name: str, who: Principal = Who
    ) -> list[DatasetVersion]:
        c.need(who, project, "viewer")
        return c.datasets.list_versions(project, name)

    @router.get("/projects/{project}/datasets/{name}/versions/{version}", tags=["datasets"])
    def get_dataset_version(
        project: str, name: str, version: str, who: Principal = Who
    ) -> DatasetVersion:
        c.need(who, project, "viewer")
        return c.datasets.get_version(project, name, _version(version))

    @router.get(
        "/projects/{project}/datasets/{name}/versions/{version}/manifest", tags=["datasets"]
    )
    def get_dataset_manifest(
        project: str, name: str, version: int, who: Principal = Who
    ) -> Manifest:
        c.need(who, project, "viewer")
        return c.datasets.get_manifest(project, name, version)

    @router.get("/projects/{project}/datasets/{name}/versions/{version}/profile", tags=["datasets"])
    def get_dataset_profile(
        project: str, name: str, version: int, who: Principal = Who
    ) -> dict[str, Any] | None:
        c.need(who, project, "viewer")
        return c.datasets.get_profile(project, name, version)


def _blob_routes(router: APIRouter, c: _Context, max_upload_bytes: int) -> None:
    Who = c.who

    @router.put("/blobs/{digest}", tags=["blobs"], status_code=201)
    async def put_blob(digest: str, request: Request, who: Principal = Who) -> dict[str, Any]:
        """Stream the bytes of blob `digest` in; they are hashed on the way and refused when
        they do not match (or exceed the upload limit)."""
        c.need_anywhere(who, "editor")
        _check_digest(digest)
        with tempfile.TemporaryDirectory(prefix="loopml-upload-") as folder:
            path = Path(folder) / "blob"
            await _receive(request, path, max_upload_bytes)
            ref = await run_in_threadpool(c.ws.blobs.put_file, path)
        if ref.digest != digest:
            raise Conflict(
                f"The bytes sent hash to {ref.digest}, not {digest}.",
                "The file changed while it was sent, or the upload was damaged; send it again.",
            )
        # theirs to read and to name in a record (the bytes prove they had them)
        await run_in_threadpool(c.blob_access.record_upload, ref.digest, who.user)
        return {"digest": ref.digest, "size": ref.size}

    @router.get("/blobs/{digest}", tags=["blobs"], response_class=StreamingResponse)
    def get_blob(digest: str, who: Principal = Who) -> StreamingResponse:
        """Stream blob `digest` out (checked against its hash as it is read): one held by a
        project the caller may read, or one they uploaded; any other is answered as missing."""
        c.need_anywhere(who, "viewer")
        _check_digest(digest)
        if not c.may_read_blob(who, digest):
            raise _missing_blob(digest)
        opened = contextlib.ExitStack()  # opened here: a missing blob is a 404, not a cut stream
        try:
            reader = opened.enter_context(c.ws.blobs.open(Digest(digest)))
        except NotFound:
            raise _missing_blob(digest) from None

        def chunks() -> Iterator[bytes]:
            with opened:
                try:
                    while chunk := reader.read(CHUNK):
                        yield chunk
                except IntegrityError as damaged:  # the client checks the hash and says so
                    log.error("serving a damaged blob: %s", damaged)

        return StreamingResponse(
            chunks(), media_type="application/octet-stream", background=BackgroundTask(opened.close)
        )

    @router.get("/blobs/{digest}/exists", tags=["blobs"])
    def blob_exists(digest: str, who: Principal = Who) -> dict[str, bool]:
        """Whether the caller may read blob `digest` (false for one they may not: a client
        then uploads it, and the server keeps one copy of the bytes)."""
        c.need_anywhere(who, "viewer")
        _check_digest(digest)
        return {"exists": c.may_read_blob(who, digest) and c.ws.blobs.exists(Digest(digest))}


def _beating_runs(c: _Context, who: Principal, body: HeartbeatIn) -> list[RunId]:
    """The runs of a heartbeat, once `who` is an editor of each one's project."""
    c.need_anywhere(who, "editor")
    if len(body.run_ids) > MAX_HEARTBEAT_RUNS:
        raise InvalidInput(
            f"{len(body.run_ids)} runs in one heartbeat; at most {MAX_HEARTBEAT_RUNS}.",
            "Send the runs of one process; split a larger list.",
        )
    for run_id in body.run_ids:
        c.run_in(who, run_id, "editor")
    return [RunId(run_id) for run_id in body.run_ids]


def _run_routes(router: APIRouter, c: _Context) -> None:
    Who = c.who

    @router.post("/projects/{project}/runs", tags=["runs"])
    def create_run(project: str, body: NewRunIn, who: Principal = Who) -> Run:
        c.need(who, project, "editor")
        if body.parent_id:  # and the store keeps it in this project
            c.run_in(who, body.parent_id, "viewer")
        c.need_blobs(who, (a.digest for a in body.artifacts))
        new = NewRun(
            project,
            body.name,
            body.environment,
            body.tags,
            RunId(body.parent_id) if body.parent_id else None,
            tuple(body.artifacts),
            body.params,
            body.finished,
            _run_id(body.run_id) if body.run_id else None,
        )
        return c.runs.create_run(new, c.draft(who, body.event, "run", project))

    @router.get("/runs/{run_id}", tags=["runs"])
    def get_run(run_id: str, who: Principal = Who) -> Run:
        c.run_in(who, run_id, "viewer")
        return c.runs.get_run(RunId(run_id))

    @router.post("/runs/{run_id}/end", tags=["runs"], status_code=204)
    def end_run(run_id: str, body: EndRunIn, who: Principal = Who) -> None:
        project = c.run_in(who, run_id, "editor")
        c.runs.end_run(
            RunId(run_id),
            body.status,
            body.error,
            body.now,
            c.draft(who, body.event, "run", project),
            final_metrics=body.final_metrics.points(),
        )

    @router.post("/runs/{run_id}/batch", tags=["runs"], status_code=204)
    def log_batch(run_id: str, body: BatchIn, who: Principal = Who) -> None:
        c.run_in(who, run_id, "editor")
        c.runs.log_batch(RunId(run_id), body.metrics.points(), body.params, body.tags)

    @router.post("/runs/heartbeat", tags=["runs"], status_code=204)
    def heartbeat(body: HeartbeatIn, who: Principal = Who) -> None:
        """Stamp the running runs of a client's process as alive (editor on each run's project).
        A run without one for the server's run timeout is marked killed by its schedule."""
        c.heartbeats.heartbeat(_beating_runs(c, who, body))

    @router.post("/runs/{run_id}/links", tags=["runs"], status_code=204)
    def add_links(run_id: str, body: LinksIn, who: Principal = Who) -> None:
        c.run_in(who, run_id, "editor")
        for used_project, _, _ in body.datasets:  # and the store keeps them in the run's
            c.need(who, used_project, "viewer")
        c.need_blobs(who, (a.digest for a in body.artifacts))
        c.runs.add_inputs_and_artifacts(RunId(run_id), body.datasets, body.artifacts)


def _run_read_routes(router: APIRouter, c: _Context) -> None:
    Who = c.who

    @router.post("/runs/search", tags=["runs"])
    def search_runs(body: SearchIn, who: Principal = Who) -> RunPage:
        c.need(who, check_query(body.query).project, "viewer")
        return c.runs.search(body.query, max(0, min(body.limit, 10_000)), max(0, body.offset))

    @router.get("/runs/{run_id}/metrics/{key:path}", tags=["runs"])
    def metric_history(run_id: str, key: str, who: Principal = Who) -> list[MetricPoint]:
        c.run_in(who, run_id, "viewer")
        return c.runs.metric_history(RunId(run_id), key)

    @router.get("/runs/{run_id}/artifacts", tags=["runs"])
    def list_artifacts(run_id: str, who: Principal = Who) -> list[RunArtifact]:
        c.run_in(who, run_id, "viewer")
        return c.runs.list_artifacts(RunId(run_id))


def _model_routes(router: APIRouter, c: _Context) -> None:
    Who = c.who

    @router.post("/projects/{project}/models/{name}/versions", tags=["models"])
    def register_model(
        project: str, name: str, body: NewModelIn, who: Principal = Who
    ) -> ModelVersion:
        c.need(who, project, "editor")
        if body.run_id:  # and the store keeps it in this project
            c.run_in(who, body.run_id, "viewer")
        c.need_blobs(who, manifest_digests(body.manifest))
        new = NewModelVersion(
            project,
            check_name(name, "model"),
            RunId(body.run_id) if body.run_id else None,
            body.flavor,
            body.flavor_info,
            body.manifest,
            body.signature,
            body.metrics,
        )
        return c.models.register(new, c.draft(who, body.event, "model", project))

    @router.get("/projects/{project}/models", tags=["models"])
    def list_models(project: str, who: Principal = Who) -> list[ModelSummary]:
        c.need(who, project, "viewer")
        return c.models.list_models(project)

    @router.get("/projects/{project}/models/{name}/versions", tags=["models"])
    def list_model_versions(project: str, name: str, who: Principal = Who) -> list[ModelVersion]:
        c.need(who, project, "viewer")
        return c.models.list_versions(project, name)

    @router.get("/projects/{project}/models/{name}/versions/{version}", tags=["models"])
    def get_model_version(
        project: str, name: str, version: int, who: Principal = Who
    ) -> ModelVersion:
        c.need(who, project, "viewer")
        return c.models.get_version(project, name, version)

    @router.get("/projects/{project}/models/{name}/versions/{version}/manifest", tags=["models"])
    def get_model_manifest(project: str, name: str, version: int, who: Principal = Who) -> Manifest:
        c.need(who, project, "viewer")
        return c.models.get_manifest(project, name, version)

    @router.get("/projects/{project}/models/{name}/aliases/{alias}", tags=["models"])
    def get_alias(project: str, name: str, alias: str, who: Principal = Who) -> AliasOut:
        c.need(who, project, "viewer")
        return AliasOut(c.models.resolve_alias(project, name, alias))

    @router.put("/projects/{project}/models/{name}/aliases/{alias}", tags=["models"])
    def set_alias(
        project: str, name: str, alias: str, body: AliasIn, who: Principal = Who
    ) -> AliasOut:
        c.need(who, project, "admin" if alias in PROTECTED_ALIASES else "editor")
        before = c.models.set_alias(
            project, name, alias, body.version, c.draft(who, body.event, "model", project)
        )
        return AliasOut(before)


async def _receive(request: Request, path: Path, limit: int) -> None:
    """Stream the request body into `path`, refusing more than `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise InvalidInput(
            f"The upload is {declared} bytes; this server takes at most {limit}.",
            "Ask the server's operator to raise --max-upload.",
        )
    size = 0
    with path.open("wb") as out:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise InvalidInput(
                    f"The upload is over {limit} bytes.",
                    "Ask the server's operator to raise --max-upload.",
                )
            out.write(chunk)


def _run_id(text: str) -> RunId:
    if len(text) != 32 or any(c not in "0123456789abcdef" for c in text):
        raise InvalidInput(f"{text[:40]!r} is not a run id.", "A run id is 32 hex digits.")
    return RunId(text)


def _version(text: str) -> int | None:
    if text == "latest":
        return None
    if not text.isdigit():
        raise InvalidInput(f"Version {text!r} is not a number.", "Give 3, or latest.")
    return int(text)


def _check_digest(digest: str) -> None:
    if not is_digest(digest):
        raise InvalidInput(f"{digest!r} is not a blob digest.", "Write blake3:<64 hex digits>.")


def _missing_blob(digest: str) -> NotFound:
    """One answer for a blob that is not stored and for one the caller may not read."""
    return NotFound(
        f"Blob {digest} does not exist.",
        "Check the digest; a blob is read through a dataset, model, run or monitor of a "
        "project you can read.",
    )
