"""The routes of the team server: one per store operation, each checking the caller's role.

Roles: reading needs viewer on the project, writing runs, data and models needs editor, moving a
protected alias (`champion`) needs admin; users, tokens and grants need admin everywhere. The
event a write records is the client's action on the client's entity, which must name the
route's project, with the token's user as the actor.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from loopml.adapters.sql.alerts import SqlAlertStore
from loopml.adapters.sql.auth import SqlAuthStore
from loopml.adapters.sql.datasets import SqlDatasetStore
from loopml.adapters.sql.deployments import SqlDeploymentStore
from loopml.adapters.sql.events import SqlEventLog
from loopml.adapters.sql.loops import SqlLoopStore
from loopml.adapters.sql.models import SqlModelStore
from loopml.adapters.sql.monitors import SqlMonitorStore
from loopml.adapters.sql.pipelines import SqlPipelineStore
from loopml.adapters.sql.runs import SqlRunStore
from loopml.domain.auth import PROTECTED_ALIASES, Grant, Token, User, allows, check_role
from loopml.domain.filters import RunQuery, check_query
from loopml.domain.hashing import Digest, is_digest
from loopml.domain.manifest import Manifest
from loopml.domain.records import (
    DatasetSummary,
    DatasetVersion,
    Event,
    EventDraft,
    MetricPoint,
    ModelSummary,
    ModelVersion,
    Run,
    RunArtifact,
    RunId,
    RunStatus,
)
from loopml.domain.refs import check_name
from loopml.errors import Conflict, Forbidden, IntegrityError, InvalidInput
from loopml.ports import NewDatasetVersion, NewModelVersion, NewRun, RunPage
from loopml.services.auth import Principal

if TYPE_CHECKING:
    from loopml.bootstrap import Workspace

CHUNK = 1 << 20
log = logging.getLogger("loopml.server")


@dataclass
class EventIn:
    action: str
    entity: str


@dataclass
class NewDatasetIn:
    manifest: Manifest
    message: str
    event: EventIn
    table_schema: dict[str, Any] | None = None
    profile: dict[str, Any] | None = None


@dataclass
class AddedVersion:
    version: DatasetVersion
    created: bool


@dataclass
class NewRunIn:
    name: str
    event: EventIn
    environment: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    parent_id: str | None = None
    artifacts: list[RunArtifact] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    finished: bool = False
    run_id: str | None = None


@dataclass
class PointsIn:
    """Metric points as four columns, entry i of each being point i: a tenth of the work of a
    list of objects to send and to read."""

    keys: list[str] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    timestamps_ms: list[int] = field(default_factory=list)

    def points(self) -> list[MetricPoint]:
        columns = (self.keys, self.values, self.steps, self.timestamps_ms)
        if len({len(column) for column in columns}) > 1:
            raise InvalidInput(
                "The metric columns differ in length: "
                f"{', '.join(str(len(column)) for column in columns)}.",
                "Send one key, value, step and timestamp_ms per point.",
            )
        return list(map(MetricPoint, *columns))


@dataclass
class EndRunIn:
    status: RunStatus
    now: datetime
    event: EventIn
    error: str | None = None
    final_metrics: PointsIn = field(default_factory=PointsIn)


@dataclass
class BatchIn:
    metrics: PointsIn = field(default_factory=PointsIn)
    params: dict[str, str] | None = None
    tags: dict[str, str] | None = None


@dataclass
class LinksIn:
    datasets: list[tuple[str, str, int]] = field(default_factory=list)
    artifacts: list[RunArtifact] = field(default_factory=list)


@dataclass
class SearchIn:
    query: RunQuery
    limit: int = 100
    offset: int = 0


@dataclass
class NewModelIn:
    flavor: str
    flavor_info: dict[str, Any]
    manifest: Manifest
    signature: dict[str, Any]
    metrics: dict[str, float]
    event: EventIn
    run_id: str | None = None


@dataclass
class AliasIn:
    version: int | None
    event: EventIn


@dataclass
class AliasOut:
    version: int | None


@dataclass
class UserIn:
    name: str
    role: str | None = None


@dataclass
class TokenIn:
    digest: str
    """The SHA-256 (hex) of the token the client made."""
    hint: str
    name: str = "default"
    expires_at: datetime | None = None


@dataclass
class GrantIn:
    role: str | None


@dataclass
class _Context:
    """What every route needs: the workspace, its stores, and the checks."""

    ws: Workspace
    who: Any
    """The dependency that yields the caller."""

    def __post_init__(self) -> None:
        self.datasets = SqlDatasetStore(self.ws.db)
        self.runs = SqlRunStore(self.ws.db)
        self.models = SqlModelStore(self.ws.db)
        self.events = SqlEventLog(self.ws.db)
        self.auth = SqlAuthStore(self.ws.db)
        self.pipelines = SqlPipelineStore(self.ws.db)
        self.deployments = SqlDeploymentStore(self.ws.db)
        self.monitors = SqlMonitorStore(self.ws.db)
        self.alerts = SqlAlertStore(self.ws.db)
        self.loops = SqlLoopStore(self.ws.db)
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


def build_router(
    ws: Workspace, principal: Callable[..., Any], *, max_upload_bytes: int
) -> APIRouter:
    router = APIRouter()
    context = _Context(ws, Depends(principal))
    _dataset_routes(router, context)
    _blob_routes(router, context, max_upload_bytes)
    _run_routes(router, context)
    _model_routes(router, context)
    _audit_routes(router, context)
    _user_routes(router, context)
    _token_routes(router, context)
    _project_routes(router, context)
    from loopml.server.operations import add_operation_routes  # it imports this module's bodies

    add_operation_routes(router, context)
    return router


def _dataset_routes(router: APIRouter, c: _Context) -> None:
    Who = c.who

    @router.post("/projects/{project}/datasets/{name}/versions", tags=["datasets"])
    def add_dataset_version(
        project: str, name: str, body: NewDatasetIn, who: Principal = Who
    ) -> AddedVersion:
        c.need(who, project, "editor")
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
        return {"digest": ref.digest, "size": ref.size}

    @router.get("/blobs/{digest}", tags=["blobs"], response_class=StreamingResponse)
    def get_blob(digest: str, who: Principal = Who) -> StreamingResponse:
        """Stream blob `digest` out (checked against its hash as it is read)."""
        c.need_anywhere(who, "viewer")
        _check_digest(digest)
        if not c.ws.blobs.exists(Digest(digest)):
            c.ws.blobs.read_bytes(Digest(digest))  # raises NotFound with the store's message

        def chunks() -> Iterator[bytes]:
            try:
                with c.ws.blobs.open(Digest(digest)) as reader:
                    while chunk := reader.read(CHUNK):
                        yield chunk
            except IntegrityError as damaged:  # the client checks the hash and will say so
                log.error("serving a damaged blob: %s", damaged)

        return StreamingResponse(chunks(), media_type="application/octet-stream")

    @router.get("/blobs/{digest}/exists", tags=["blobs"])
    def blob_exists(digest: str, who: Principal = Who) -> dict[str, bool]:
        c.need_anywhere(who, "viewer")
        _check_digest(digest)
        return {"exists": c.ws.blobs.exists(Digest(digest))}


def _run_routes(router: APIRouter, c: _Context) -> None:
    Who = c.who

    @router.post("/projects/{project}/runs", tags=["runs"])
    def create_run(project: str, body: NewRunIn, who: Principal = Who) -> Run:
        c.need(who, project, "editor")
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
        run = c.runs.get_run(RunId(run_id))
        c.need(who, run.project, "viewer")
        return run

    @router.post("/runs/{run_id}/end", tags=["runs"], status_code=204)
    def end_run(run_id: str, body: EndRunIn, who: Principal = Who) -> None:
        project = c.run_project(run_id)
        c.need(who, project, "editor")
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
        c.need(who, c.run_project(run_id), "editor")
        c.runs.log_batch(RunId(run_id), body.metrics.points(), body.params, body.tags)

    @router.post("/runs/{run_id}/links", tags=["runs"], status_code=204)
    def add_links(run_id: str, body: LinksIn, who: Principal = Who) -> None:
        project = c.run_project(run_id)
        c.need(who, project, "editor")
        for used_project, _, _ in body.datasets:
            c.need(who, used_project, "viewer")
        c.runs.add_inputs_and_artifacts(RunId(run_id), body.datasets, body.artifacts)

    @router.post("/runs/search", tags=["runs"])
    def search_runs(body: SearchIn, who: Principal = Who) -> RunPage:
        c.need(who, check_query(body.query).project, "viewer")
        return c.runs.search(body.query, max(0, min(body.limit, 10_000)), max(0, body.offset))

    @router.get("/runs/{run_id}/metrics/{key:path}", tags=["runs"])
    def metric_history(run_id: str, key: str, who: Principal = Who) -> list[MetricPoint]:
        c.need(who, c.run_project(run_id), "viewer")
        return c.runs.metric_history(RunId(run_id), key)

    @router.get("/runs/{run_id}/artifacts", tags=["runs"])
    def list_artifacts(run_id: str, who: Principal = Who) -> list[RunArtifact]:
        c.need(who, c.run_project(run_id), "viewer")
        return c.runs.list_artifacts(RunId(run_id))


def _model_routes(router: APIRouter, c: _Context) -> None:
    Who = c.who

    @router.post("/projects/{project}/models/{name}/versions", tags=["models"])
    def register_model(
        project: str, name: str, body: NewModelIn, who: Principal = Who
    ) -> ModelVersion:
        c.need(who, project, "editor")
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


def _audit_routes(router: APIRouter, c: _Context) -> None:
    Who = c.who

    @router.get("/events", tags=["audit"])
    def list_events(
        entity: str | None = None,
        action: str | None = None,
        limit: int = 100,
        who: Principal = Who,
    ) -> list[Event]:
        """Events, newest first. Everyone but an admin everywhere names the entity, whose
        project they must be able to read."""
        if entity is None:
            if who.role != "admin":
                raise Forbidden(
                    "Only an admin everywhere may list every event.",
                    "Pass ?entity=KIND:PROJECT/NAME for one thing.",
                )
        else:
            c.need(who, entity.partition(":")[2].split("/", 1)[0], "viewer")
        return c.events.list(entity=entity, action=action, limit=max(1, min(limit, 100_000)))

    @router.get("/events/all", tags=["audit"])
    def all_events(who: Principal = Who) -> list[Event]:
        """Every event in order, for `audit verify` (admins)."""
        if who.role != "admin":
            raise Forbidden("Only an admin everywhere may read the whole trail.", "Ask an admin.")
        return list(c.events.iterate())


def _user_routes(router: APIRouter, c: _Context) -> None:
    """Users, tokens, projects and grants: the AuthStore's operations, for admins (a client's
    `loopml users|tokens|projects` commands run over these). A token is made by the client;
    only its hash ever reaches the server."""
    Who = c.who

    @router.post("/users", tags=["users"])
    def create_user(body: UserIn, who: Principal = Who) -> User:
        c.admin(who)
        role = None if body.role is None else check_role(body.role)
        name = check_name(body.name, "user")
        return c.auth.create_user(name, role, c.changed(who, "user.created", f"user:{name}"))

    @router.get("/users", tags=["users"])
    def list_users(who: Principal = Who) -> list[User]:
        c.admin(who)
        return c.auth.users()

    @router.get("/users/{name}", tags=["users"])
    def get_user(name: str, who: Principal = Who) -> User:
        c.admin(who)
        return c.auth.user(name)

    @router.post("/users/{name}/disable", tags=["users"])
    def disable_user(name: str, who: Principal = Who) -> User:
        c.admin(who)
        return c.auth.disable_user(name, c.changed(who, "user.disabled", f"user:{name}"))


def _token_routes(router: APIRouter, c: _Context) -> None:
    Who = c.who

    @router.post("/users/{name}/tokens", tags=["users"])
    def add_token(name: str, body: TokenIn, who: Principal = Who) -> Token:
        """Record a token the client made, by its SHA-256 hash."""
        c.admin(who)
        if len(body.digest) != 64 or any(ch not in "0123456789abcdef" for ch in body.digest):
            raise InvalidInput("A token hash is 64 hex digits.", "Send the token's SHA-256.")
        return c.auth.add_token(
            name,
            check_name(body.name, "token"),
            digest=body.digest,
            hint=body.hint[-4:],
            expires=body.expires_at,
            event=c.changed(who, "token.created", f"user:{name}"),
        )

    @router.get("/tokens", tags=["users"])
    def list_tokens(user: str | None = None, who: Principal = Who) -> list[Token]:
        c.admin(who)
        return c.auth.tokens(user)

    @router.get("/tokens/{token_id}", tags=["users"])
    def get_token(token_id: int, who: Principal = Who) -> Token:
        c.admin(who)
        return c.auth.token(token_id)

    @router.post("/tokens/{token_id}/revoke", tags=["users"])
    def revoke_token(token_id: int, who: Principal = Who) -> Token:
        c.admin(who)
        user = c.auth.token(token_id).user
        return c.auth.revoke_token(token_id, c.changed(who, "token.revoked", f"user:{user}"))


def _project_routes(router: APIRouter, c: _Context) -> None:
    Who = c.who

    @router.get("/projects", tags=["projects"])
    def list_projects(who: Principal = Who) -> list[str]:
        return who.readable(c.auth.projects())

    @router.post("/projects/{project}", tags=["projects"])
    def create_project(project: str, who: Principal = Who) -> dict[str, bool]:
        c.admin(who)
        event = c.changed(who, "project.created", f"project:{check_name(project, 'project')}")
        return {"created": c.auth.create_project(project, event)}

    @router.get("/grants", tags=["projects"])
    def list_grants(
        project: str | None = None, user: str | None = None, who: Principal = Who
    ) -> list[Grant]:
        if project is None:
            c.admin(who)
        else:
            c.need(who, project, "admin")
        return c.auth.grants(project, user)

    @router.put("/projects/{project}/grants/{user}", tags=["projects"])
    def grant(project: str, user: str, body: GrantIn, who: Principal = Who) -> list[Grant]:
        c.need(who, project, "admin")
        role = None if body.role is None else check_role(body.role)
        c.auth.grant(project, user, role, c.changed(who, "project.granted", f"project:{project}"))
        return c.auth.grants(project=project)


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
