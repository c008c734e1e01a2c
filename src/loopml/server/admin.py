"""The routes of users, tokens, projects, grants and the audit trail.

Users and tokens are an admin everywhere's; a project's grants (and its own events) its admin's;
the events of a thing in a project its viewers'. A token is made by the client; only its hash
ever reaches the server.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from fastapi import APIRouter

from loopml.domain.auth import Grant, Token, User, check_role, entity_scope
from loopml.domain.records import Event
from loopml.domain.refs import check_name
from loopml.errors import Forbidden, InvalidInput
from loopml.services.auth import Principal

if TYPE_CHECKING:
    from loopml.server.routes import _Context


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


def add_admin_routes(router: APIRouter, c: _Context) -> None:
    _audit_routes(router, c)
    _user_routes(router, c)
    _token_routes(router, c)
    _project_routes(router, c)


def _audit_routes(router: APIRouter, c: _Context) -> None:
    Who = c.who

    @router.get("/events", tags=["audit"])
    def list_events(
        entity: str | None = None,
        action: str | None = None,
        limit: int = 100,
        who: Principal = Who,
    ) -> list[Event]:
        """Events, newest first. Everyone but an admin everywhere names the entity: one of a
        project they may read (a project's own events, its grants, need its admin)."""
        if entity is None:
            if who.role != "admin":
                raise Forbidden(
                    "Only an admin everywhere may list every event.",
                    "Pass ?entity=KIND:PROJECT/NAME for one thing.",
                )
        else:
            project, role = entity_scope(entity)
            if project is None:
                c.admin(who)
            else:
                c.need(who, project, role)
        return c.events.list(entity=entity, action=action, limit=max(1, min(limit, 100_000)))

    @router.get("/events/all", tags=["audit"])
    def all_events(who: Principal = Who) -> list[Event]:
        """Every event in order, for `audit verify` (admins)."""
        if who.role != "admin":
            raise Forbidden("Only an admin everywhere may read the whole trail.", "Ask an admin.")
        return list(c.events.iterate())


def _user_routes(router: APIRouter, c: _Context) -> None:
    """Users, tokens, projects and grants: the user, token and grant stores' operations, for
    admins (a client's `loopml users|tokens|projects` commands run over these). A token is
    made by the client; only its hash ever reaches the server."""
    Who = c.who

    @router.post("/users", tags=["users"])
    def create_user(body: UserIn, who: Principal = Who) -> User:
        c.admin(who)
        role = None if body.role is None else check_role(body.role)
        name = check_name(body.name, "user")
        return c.users.create_user(name, role, c.changed(who, "user.created", f"user:{name}"))

    @router.get("/users", tags=["users"])
    def list_users(who: Principal = Who) -> list[User]:
        c.admin(who)
        return c.users.users()

    @router.get("/users/{name}", tags=["users"])
    def get_user(name: str, who: Principal = Who) -> User:
        c.admin(who)
        return c.users.user(name)

    @router.post("/users/{name}/disable", tags=["users"])
    def disable_user(name: str, who: Principal = Who) -> User:
        c.admin(who)
        return c.users.disable_user(name, c.changed(who, "user.disabled", f"user:{name}"))


def _token_routes(router: APIRouter, c: _Context) -> None:
    Who = c.who

    @router.post("/users/{name}/tokens", tags=["users"])
    def add_token(name: str, body: TokenIn, who: Principal = Who) -> Token:
        """Record a token the client made, by its SHA-256 hash."""
        c.admin(who)
        if len(body.digest) != 64 or any(ch not in "0123456789abcdef" for ch in body.digest):
            raise InvalidInput("A token hash is 64 hex digits.", "Send the token's SHA-256.")
        return c.tokens.add_token(
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
        return c.tokens.tokens(user)

    @router.get("/tokens/{token_id}", tags=["users"])
    def get_token(token_id: int, who: Principal = Who) -> Token:
        c.admin(who)
        return c.tokens.token(token_id)

    @router.post("/tokens/{token_id}/revoke", tags=["users"])
    def revoke_token(token_id: int, who: Principal = Who) -> Token:
        c.admin(who)
        user = c.tokens.token(token_id).user
        return c.tokens.revoke_token(token_id, c.changed(who, "token.revoked", f"user:{user}"))


def _project_routes(router: APIRouter, c: _Context) -> None:
    Who = c.who

    @router.get("/projects", tags=["projects"])
    def list_projects(who: Principal = Who) -> list[str]:
        return who.readable(c.grants.projects())

    @router.post("/projects/{project}", tags=["projects"])
    def create_project(project: str, who: Principal = Who) -> dict[str, bool]:
        c.admin(who)
        event = c.changed(who, "project.created", f"project:{check_name(project, 'project')}")
        return {"created": c.grants.create_project(project, event)}

    @router.get("/grants", tags=["projects"])
    def list_grants(
        project: str | None = None, user: str | None = None, who: Principal = Who
    ) -> list[Grant]:
        if project is None:
            c.admin(who)
        else:
            c.need(who, project, "admin")
        return c.grants.grants(project, user)

    @router.put("/projects/{project}/grants/{user}", tags=["projects"])
    def grant(project: str, user: str, body: GrantIn, who: Principal = Who) -> list[Grant]:
        c.need(who, project, "admin")
        role = None if body.role is None else check_role(body.role)
        c.grants.grant(project, user, role, c.changed(who, "project.granted", f"project:{project}"))
        return c.grants.grants(project=project)
