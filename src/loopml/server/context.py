"""What every route of the team server needs: the workspace, its stores, and the checks of who
may do what (see `loopml.server.routes` for the rules they enforce)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopml.domain.auth import allows
from loopml.domain.records import EventDraft, RunId, missing_run
from loopml.domain.refs import check_name
from loopml.errors import Forbidden, InvalidInput, NotFound
from loopml.ports import RunHeartbeats
from loopml.remote_api.operations import Operation
from loopml.services.auth import Principal

if TYPE_CHECKING:
    from loopml.bootstrap import Workspace

STORES = {
    "DatasetStore": "datasets", "RunStore": "runs", "RunHeartbeats": "runs",
    "ModelStore": "models", "EventLog": "events", "UserStore": "users", "TokenStore": "tokens",
    "GrantStore": "grants", "PipelineStore": "pipelines", "LineageStore": "pipelines",
    "DeploymentStore": "deployments", "MonitorStore": "monitors", "AlertStore": "alerts",
    "LoopStore": "loops", "Leases": "leases", "BlobStore": "blobs",
}  # fmt: skip
"""The attribute of the workspace's stores that holds each port's store."""


@dataclass
class Call:
    """One request to an operation: the caller, the path and query values and the body
    (`given`), the project its role was checked on (empty when none), and the port method's
    arguments read from them (`args`, which a check may replace)."""

    op: Operation
    who: Principal
    given: dict[str, Any]
    project: str = ""
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def body(self) -> Any:
        return self.given.get("body")


@dataclass
class Context:
    """What every route needs: the workspace, its stores, and the checks."""

    ws: Workspace
    who: Any
    """The dependency that yields the caller."""

    def __post_init__(self) -> None:
        self.stores = self.ws.stores
        if self.stores.blob_access is None:
            raise TypeError("A team server serves a workspace of its own, not another server.")
        if not isinstance(self.stores.runs, RunHeartbeats):
            raise TypeError("A team server's run store keeps heartbeats.")
        self.blob_access = self.stores.blob_access
        self.projects: dict[str, str] = {}

    def need(self, who: Principal, project: str, role: str) -> None:
        self.ws.auth.require(who, check_name(project, "project"), role)

    def need_anywhere(self, who: Principal, role: str) -> None:
        if not any(allows(r, role) for r in (who.role, *who.grants.values())):
            raise Forbidden(f"{who.user} has no {role} role on any project.", "Ask an admin.")

    def admin(self, who: Principal) -> None:
        if who.role != "admin":
            raise Forbidden(f"{who.user} is not an admin everywhere.", "Ask an admin.")

    def recorded(self, call: Call) -> EventDraft:
        """The event of `call`'s change, by the caller: the one the server records itself
        (`audit`), or the client's, checked to be about the call's project."""
        op = call.op
        if op.audit:
            action, entity = op.audit.split(" ")
            return self.changed(call.who, action, entity.format(**call.args))
        event = call.body.event
        prefix, _, rest = event.entity.partition(":")
        if prefix != op.kind or rest.split("/", 1)[0] != call.project:
            raise InvalidInput(
                f"The event entity {event.entity!r} is not a {op.kind} of project "
                f"{call.project!r}.",
                f"Write {op.kind}:{call.project}/NAME.",
            )
        return EventDraft(event.action, event.entity, call.who.user)

    def store(self, op: Operation) -> Any:
        """The store that carries out `op`."""
        return getattr(self.stores, STORES[op.name.split(".")[0]])

    def changed(self, who: Principal, action: str, entity: str) -> EventDraft:
        """The event of a change to users, tokens or grants, by the caller."""
        self.ws.auth.forget()  # what this server remembers of tokens may be stale now
        return EventDraft(action, entity, who.user)

    def run_project(self, run_id: str) -> str:
        """The project of run `run_id` (remembered: a run never changes project)."""
        project = self.projects.get(run_id)
        if project is None:
            project = self.stores.runs.get_run(RunId(run_id)).project
            self.remember_run(run_id, project)
        return project

    def remember_run(self, run_id: str, project: str) -> None:
        """Keep the project of a run this server just read or made."""
        if len(self.projects) > 100_000:
            self.projects.clear()
        self.projects[run_id] = project

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
