"""Users, tokens and roles: who may do what on a shared server. Every change is audited."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from loopml.domain.auth import (
    Grant,
    Token,
    User,
    allows,
    check_role,
    highest,
    new_token,
    token_hash,
)
from loopml.domain.records import EventDraft
from loopml.domain.refs import check_name
from loopml.errors import Forbidden, InvalidInput, Unauthenticated
from loopml.ports import GrantStore, SessionStore, TokenStore, UserStore


@dataclass(frozen=True)
class Principal:
    """Who a request comes from: a user, with their role everywhere and their grants."""

    user: str
    role: str | None
    grants: dict[str, str]

    def role_on(self, project: str) -> str | None:
        return highest(self.role, self.grants.get(project))

    def may(self, project: str, needed: str) -> bool:
        return allows(self.role_on(project), needed)

    def readable(self, projects: list[str]) -> list[str]:
        return [p for p in projects if self.may(p, "viewer")]


MAX_TOKEN_LIFE_S = 10 * 366 * 86_400
CACHE_S = 2.0
"""How long a server trusts what it last read about a token. A revocation, a disabled user or a
grant made through this process applies at once; one made through another replica of the
server within this time."""
MAX_CACHED = 10_000
SESSION_S = 12 * 3600
"""How long a web UI session lasts (never past its token's own expiry)."""


class AuthService:
    def __init__(
        self,
        users: UserStore,
        tokens: TokenStore,
        grants: GrantStore,
        actor: str,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        cache_s: float = CACHE_S,
    ) -> None:
        self._users = users
        self._tokens = tokens
        self._grants = grants
        self._actor = actor
        self._clock = clock
        self._cache_s = cache_s
        self._known: dict[str, tuple[float, Principal]] = {}
        """token hash -> (valid until, monotonic seconds; the principal it spoke for)"""

    def create_user(self, name: str, role: str | None = None) -> User:
        check_name(name, "user")
        return self._users.create_user(
            name, None if role is None else check_role(role), self._event("user.created", name)
        )

    def forget(self) -> None:
        """Drop what this process remembers of tokens (after a change made around it)."""
        self._known.clear()

    def users(self) -> list[User]:
        return self._users.users()

    def disable_user(self, name: str) -> User:
        """Disable `name`: every token of theirs stops working at once."""
        self._known.clear()
        return self._users.disable_user(name, self._event("user.disabled", name))

    def create_token(
        self, user: str, name: str = "default", expires_in_s: int | None = None
    ) -> tuple[str, Token]:
        """A new token for `user`: (the token, shown this once; its record)."""
        check_name(name, "token")
        if expires_in_s is not None and not 0 < expires_in_s <= MAX_TOKEN_LIFE_S:
            raise InvalidInput(
                f"A token lifetime of {expires_in_s} s is not between 1 s and 10 years.",
                "Give --expires 30d, or none for a token that does not expire.",
            )
        text = new_token()
        expires = None if expires_in_s is None else self._clock() + timedelta(seconds=expires_in_s)
        token = self._tokens.add_token(
            user,
            name,
            digest=token_hash(text),
            hint=text[-4:],
            expires=expires,
            event=self._event("token.created", user),
        )
        return text, token

    def tokens(self, user: str | None = None) -> list[Token]:
        return self._tokens.tokens(user)

    def revoke_token(self, token_id: int) -> Token:
        self._known.clear()
        token = self._tokens.token(token_id)
        return self._tokens.revoke_token(token_id, self._event("token.revoked", token.user))

    def authenticate(self, text: str | None) -> Principal:
        """The principal a token speaks for; Unauthenticated for a missing, unknown, revoked or
        expired token, or a disabled user."""
        if not text:
            raise Unauthenticated(
                "This request has no API token.",
                "Send `Authorization: Bearer TOKEN` (set LOOPML_TOKEN); an admin makes one with "
                "`loopml tokens create USER`.",
            )
        digest = token_hash(text)
        known = self._known.get(digest)
        if known is not None and known[0] > time.monotonic():
            return known[1]
        principal = self._look_up(digest)
        if len(self._known) > MAX_CACHED:
            self._known.clear()
        self._known[digest] = (time.monotonic() + self._cache_s, principal)
        return principal

    def remembered(self, text: str | None) -> Principal | None:
        """The principal of a token this service checked within `cache_s`, without I/O; None
        when it must be looked up (`authenticate`)."""
        if not text:
            return None
        known = self._known.get(token_hash(text))
        return known[1] if known is not None and known[0] > time.monotonic() else None

    def _look_up(self, digest: str) -> Principal:
        found = self._tokens.find_token(digest)
        if found is None:
            raise Unauthenticated("The API token is not known.", "Check LOOPML_TOKEN.")
        return self._principal(*found)

    def _principal(self, token: Token, user: User) -> Principal:
        if user.disabled_at is not None:
            raise Unauthenticated(f"User {user.name!r} is disabled.", "Ask an admin.")
        if not token.usable(self._clock()):
            why = "revoked" if token.revoked_at is not None else "expired"
            raise Unauthenticated(
                f"The API token {token.name!r} of {user.name!r} was {why}.",
                "Ask an admin for a new one: `loopml tokens create USER`.",
            )
        grants = {g.project: g.role for g in self._grants.grants(user=user.name)}
        return Principal(user.name, user.role, grants)

    def open_session(self, token_text: str) -> tuple[str, Principal]:
        """Log in to the web UI with an API token: (a new session id for the cookie, who it
        is). Only the id's hash is kept; the session ends after SESSION_S, when the token is
        revoked or expires, or when its user is disabled."""
        principal = self.authenticate(token_text)
        found = self._tokens.find_token(token_hash(token_text))
        assert found is not None  # authenticate found it
        token = found[0]
        expires = self._clock() + timedelta(seconds=SESSION_S)
        if token.expires_at is not None:
            expires = min(expires, token.expires_at)
        session = secrets.token_urlsafe(32)
        self._sessions().add_session(token_hash(session), token.id, expires)
        return session, principal

    def session(self, session: str | None) -> Principal:
        """Who web UI session `session` is; Unauthenticated when there is none, or it ended."""
        if not session:
            raise Unauthenticated("This page needs you to log in.", "Log in with an API token.")
        found = self._sessions().find_session(token_hash(session))
        if found is None:
            raise Unauthenticated("The session ended or was never opened.", "Log in again.")
        token, user, expires = found
        if expires <= self._clock():
            raise Unauthenticated("The session has expired.", "Log in again.")
        return self._principal(token, user)

    def close_session(self, session: str | None) -> None:
        """Log out: the session stops working at once."""
        if session:
            self._sessions().delete_session(token_hash(session))

    def _sessions(self) -> SessionStore:
        if not isinstance(self._tokens, SessionStore):
            raise InvalidInput(
                "Web UI sessions are kept by a team server, not by its clients.",
                "Open the team server's /ui in a browser.",
            )
        return self._tokens

    def require(self, principal: Principal, project: str, needed: str) -> None:
        if not principal.may(project, needed):
            have = principal.role_on(project) or "no role"
            raise Forbidden(
                f"{principal.user} has {have} on project {project!r}; this needs {needed}.",
                f"An admin can grant it: `loopml projects grant {project} {principal.user} "
                f"--role {needed}`.",
            )

    def grant(self, project: str, user: str, role: str | None) -> None:
        self._known.clear()
        check_name(project, "project")
        self._grants.grant(
            project,
            user,
            None if role is None else check_role(role),
            EventDraft("project.granted", f"project:{project}", self._actor),
        )

    def grants(self, project: str | None = None, user: str | None = None) -> list[Grant]:
        return self._grants.grants(project, user)

    def create_project(self, project: str) -> bool:
        check_name(project, "project")
        event = EventDraft("project.created", f"project:{project}", self._actor)
        return self._grants.create_project(project, event)

    def projects(self) -> list[str]:
        return self._grants.projects()

    def _event(self, action: str, user: str) -> EventDraft:
        return EventDraft(action, f"user:{user}", self._actor)
