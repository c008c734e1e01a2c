"""The `UserStore`, `TokenStore` and `GrantStore` ports in memory (one `AuthStore`, as on SQL):
users, tokens kept only as their SHA-256, and per-project grants; and the web UI's sessions
(the optional `SessionStore`)."""

from __future__ import annotations

from datetime import datetime

from loopml.adapters.memory.database import (
    MemoryDatabase,
    SessionRow,
    TokenRow,
    UserRow,
    datetime_to_us,
    us_to_datetime,
)
from loopml.domain.auth import Grant, Token, User
from loopml.domain.records import EventDraft
from loopml.errors import AlreadyExists, Conflict, NotFound


def _when(us: int | None) -> datetime | None:
    return None if us is None else us_to_datetime(us)


def _to_user(name: str, row: UserRow) -> User:
    return User(name, row.role, us_to_datetime(row.created_us), _when(row.disabled_us))


def _to_token(token_id: int, row: TokenRow) -> Token:
    return Token(
        token_id,
        row.user,
        row.name,
        us_to_datetime(row.created_us),
        _when(row.expires_us),
        _when(row.revoked_us),
        row.hint,
    )


def missing_user(name: str) -> NotFound:
    return NotFound(
        f"User {name!r} does not exist.",
        "List users with `loopml users list`, or add one with `loopml users create NAME`.",
    )


def _missing_token(token_id: int) -> NotFound:
    return NotFound(f"Token {token_id} does not exist.", "List tokens with `loopml tokens list`.")


def _broken_constraint() -> Conflict:
    """What the SQL store says when a write breaks a unique or foreign key."""
    return Conflict("The change conflicts with what is stored.", "Check the ids and names it uses.")


class MemoryAuthStore:
    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db

    # -- users ----------------------------------------------------------------------------------

    def create_user(self, name: str, role: str | None, event: EventDraft) -> User:
        with self._db.lock:
            now = self._db.clock()
            if name in self._db.tables.users:
                raise AlreadyExists(
                    f"User {name!r} already exists.", "Pick another name, or give them a token."
                )
            row = self._db.tables.users[name] = UserRow(role, now)
            draft = EventDraft(event.action, event.entity, event.actor, None, {"role": role})
            self._db.append_event(draft, now)
            return _to_user(name, row)

    def _user(self, name: str) -> UserRow:
        row = self._db.tables.users.get(name)
        if row is None:
            raise missing_user(name)
        return row

    def user(self, name: str) -> User:
        with self._db.lock:
            return _to_user(name, self._user(name))

    def users(self) -> list[User]:
        with self._db.lock:
            return [_to_user(name, row) for name, row in sorted(self._db.tables.users.items())]

    def disable_user(self, name: str, event: EventDraft) -> User:
        with self._db.lock:
            row = self._user(name)
            now = self._db.clock()
            row.disabled_us = now
            self._db.append_event(event, now)
            return _to_user(name, row)

    # -- tokens ---------------------------------------------------------------------------------

    def add_token(
        self,
        user: str,
        name: str,
        *,
        digest: str,
        hint: str,
        expires: datetime | None,
        event: EventDraft,
    ) -> Token:
        with self._db.lock:
            self._user(user)
            if any(row.hash == digest for row in self._db.tables.tokens.values()):
                raise _broken_constraint()
            now = self._db.clock()
            token_id = self._db.next_id("tokens")
            expires_us = None if expires is None else datetime_to_us(expires)
            row = TokenRow(user, name, digest, hint, now, expires_us)
            self._db.tables.tokens[token_id] = row
            after = {"token": token_id, "name": name, "hint": hint}
            draft = EventDraft(event.action, event.entity, event.actor, None, after)
            self._db.append_event(draft, now)
            return _to_token(token_id, row)

    def _token(self, token_id: int) -> TokenRow:
        row = self._db.tables.tokens.get(token_id)
        if row is None:
            raise _missing_token(token_id)
        return row

    def token(self, token_id: int) -> Token:
        with self._db.lock:
            return _to_token(token_id, self._token(token_id))

    def find_token(self, digest: str) -> tuple[Token, User] | None:
        """The token with this hash and its user, or None."""
        with self._db.lock:
            for token_id, row in self._db.tables.tokens.items():
                if row.hash == digest:
                    return _to_token(token_id, row), self.user(row.user)
        return None

    def tokens(self, user: str | None) -> list[Token]:
        with self._db.lock:
            return [
                _to_token(token_id, row)
                for token_id, row in sorted(self._db.tables.tokens.items())
                if user is None or row.user == user
            ]

    def revoke_token(self, token_id: int, event: EventDraft) -> Token:
        """Revoke the token (a token revoked already keeps its first revocation time)."""
        with self._db.lock:
            row = self._token(token_id)
            now = self._db.clock()
            if row.revoked_us is None:
                row.revoked_us = now
            draft = EventDraft(event.action, event.entity, event.actor, None, {"token": token_id})
            self._db.append_event(draft, now)
            return _to_token(token_id, row)

    # -- projects and grants --------------------------------------------------------------------

    def grant(self, project: str, user: str, role: str | None, event: EventDraft) -> None:
        """Give `user` `role` on `project` (None takes the grant away)."""
        with self._db.lock:
            self._user(user)
            now = self._db.clock()
            self._db.ensure_project(project, now)
            grants = self._db.tables.grants
            before = grants.pop((project, user), None)
            if role is not None:
                grants[project, user] = role
            draft = EventDraft(
                event.action, event.entity, event.actor, {"role": before}, {"role": role}
            )
            self._db.append_event(draft, now)

    def grants(self, project: str | None = None, user: str | None = None) -> list[Grant]:
        with self._db.lock:
            found = sorted(self._db.tables.grants.items())
        return [
            Grant(where, who, role)
            for (where, who), role in found
            if project in (None, where) and user in (None, who)
        ]

    def create_project(self, project: str, event: EventDraft) -> bool:
        """Make `project` exist; False when it already did."""
        with self._db.lock:
            if project in self._db.tables.projects:
                return False
            now = self._db.clock()
            self._db.ensure_project(project, now)
            self._db.append_event(event, now)
            return True

    def projects(self) -> list[str]:
        with self._db.lock:
            return sorted(self._db.tables.projects)

    # -- web UI sessions ------------------------------------------------------------------------

    def add_session(self, digest: str, token_id: int, expires: datetime) -> None:
        """Keep a web UI session (the hash of its id) for token `token_id` until `expires`;
        sessions already expired are dropped on the way."""
        with self._db.lock:
            now = self._db.clock()
            sessions = self._db.tables.ui_sessions
            for old in [h for h, row in sessions.items() if row.expires_us <= now]:
                del sessions[old]
            if digest in sessions or token_id not in self._db.tables.tokens:
                raise _broken_constraint()
            sessions[digest] = SessionRow(token_id, now, datetime_to_us(expires))

    def find_session(self, digest: str) -> tuple[Token, User, datetime] | None:
        """The token a session stands for, its user, and when the session ends; None for a
        session that does not exist."""
        with self._db.lock:
            row = self._db.tables.ui_sessions.get(digest)
            if row is None:
                return None
            token = self.token(row.token_id)
            return token, self.user(token.user), us_to_datetime(row.expires_us)

    def delete_session(self, digest: str) -> None:
        with self._db.lock:
            self._db.tables.ui_sessions.pop(digest, None)
