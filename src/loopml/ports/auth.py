"""Who may do what: users, their tokens, their grants on projects, and web UI sessions."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable

from loopml.domain.auth import Grant, Token, User
from loopml.domain.records import (
    EventDraft,
)


class UserStore(Protocol):
    """Who may sign in: users, with their role everywhere (or none)."""

    def create_user(self, name: str, role: str | None, event: EventDraft) -> User: ...

    def user(self, name: str) -> User: ...

    def users(self) -> list[User]: ...

    def disable_user(self, name: str, event: EventDraft) -> User: ...


class TokenStore(Protocol):
    """What users sign in with: tokens, kept only as their SHA-256."""

    def add_token(
        self,
        user: str,
        name: str,
        *,
        digest: str,
        hint: str,
        expires: datetime | None,
        event: EventDraft,
    ) -> Token: ...

    def token(self, token_id: int) -> Token: ...

    def find_token(self, digest: str) -> tuple[Token, User] | None: ...

    def tokens(self, user: str | None) -> list[Token]: ...

    def revoke_token(self, token_id: int, event: EventDraft) -> Token: ...


class GrantStore(Protocol):
    """Projects, and the role each user has on each."""

    def grant(self, project: str, user: str, role: str | None, event: EventDraft) -> None: ...

    def grants(self, project: str | None = None, user: str | None = None) -> list[Grant]: ...

    def create_project(self, project: str, event: EventDraft) -> bool: ...

    def projects(self) -> list[str]: ...


class AuthStore(UserStore, TokenStore, GrantStore, Protocol):
    """Users, tokens and grants together, as one backend keeps them (a database, a team
    server); each service asks only for the part it uses."""


@runtime_checkable
class SessionStore(Protocol):
    """Web UI sessions, an optional capability of a TokenStore (the SQL one, which a team
    server uses, has it): the SHA-256 of a random session id, tied to the token it logged in
    with."""

    def add_session(self, digest: str, token_id: int, expires: datetime) -> None: ...

    def find_session(self, digest: str) -> tuple[Token, User, datetime] | None: ...

    def delete_session(self, digest: str) -> None: ...
