"""The `UserStore`, `TokenStore` and `GrantStore` ports on SQL (one `AuthStore`): users, hashed
tokens, and per-project grants; and the web UI's sessions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from loopml.adapters.sql import tables as t
from loopml.adapters.sql.engine import Database
from loopml.adapters.sql.events import Clock, append_event, ensure_project, system_clock_us
from loopml.domain.auth import Grant, Token, User
from loopml.domain.epoch_us import datetime_to_us, us_to_datetime
from loopml.domain.records import EventDraft
from loopml.errors import AlreadyExists, NotFound


def _when(us: int | None) -> Any:
    return None if us is None else us_to_datetime(us)


def _to_user(row: Any) -> User:
    return User(row.name, row.role, us_to_datetime(row.created_us), _when(row.disabled_us))


def _to_token(row: Any) -> Token:
    return Token(
        row.id,
        row.user,
        row.name,
        us_to_datetime(row.created_us),
        _when(row.expires_us),
        _when(row.revoked_us),
        row.hint,
    )


def _token_and_user() -> Any:
    """Tokens joined with their users (the user's columns renamed where they clash)."""
    return select(
        t.tokens,
        t.users.c.role,
        t.users.c.disabled_us,
        t.users.c.created_us.label("user_created_us"),
    ).join(t.users, t.users.c.name == t.tokens.c.user)


def _to_token_and_user(row: Any) -> tuple[Token, User]:
    user = User(row.user, row.role, us_to_datetime(row.user_created_us), _when(row.disabled_us))
    return _to_token(row), user


def missing_user(name: str) -> NotFound:
    return NotFound(
        f"User {name!r} does not exist.",
        "List users with `loopml users list`, or add one with `loopml users create NAME`.",
    )


class SqlAuthStore:
    def __init__(self, db: Database, clock: Clock = system_clock_us) -> None:
        self._db = db
        self._clock = clock

    def create_user(self, name: str, role: str | None, event: EventDraft) -> User:
        with self._db.write() as conn:
            now = self._clock()
            if conn.execute(select(t.users.c.name).where(t.users.c.name == name)).first():
                raise AlreadyExists(
                    f"User {name!r} already exists.", "Pick another name, or give them a token."
                )
            conn.execute(t.users.insert().values(name=name, role=role, created_us=now))
            draft = EventDraft(event.action, event.entity, event.actor, None, {"role": role})
            append_event(self._db, conn, draft, now)
        return self.user(name)

    def user(self, name: str) -> User:
        with self._db.read() as conn:
            row = conn.execute(select(t.users).where(t.users.c.name == name)).first()
        if row is None:
            raise missing_user(name)
        return _to_user(row)

    def users(self) -> list[User]:
        with self._db.read() as conn:
            rows = conn.execute(select(t.users).order_by(t.users.c.name)).all()
        return [_to_user(r) for r in rows]

    def disable_user(self, name: str, event: EventDraft) -> User:
        self.user(name)
        with self._db.write() as conn:
            now = self._clock()
            conn.execute(t.users.update().where(t.users.c.name == name).values(disabled_us=now))
            append_event(self._db, conn, event, now)
        return self.user(name)

    def add_token(
        self, user: str, name: str, *, digest: str, hint: str, expires: Any, event: EventDraft
    ) -> Token:
        self.user(user)
        with self._db.write() as conn:
            now = self._clock()
            inserted = conn.execute(
                t.tokens.insert().values(
                    user=user,
                    name=name,
                    hash=digest,
                    hint=hint,
                    created_us=now,
                    expires_us=None if expires is None else datetime_to_us(expires),
                )
            ).inserted_primary_key
            assert inserted is not None
            after = {"token": int(inserted[0]), "name": name, "hint": hint}
            draft = EventDraft(event.action, event.entity, event.actor, None, after)
            append_event(self._db, conn, draft, now)
        return self.token(int(inserted[0]))

    def token(self, token_id: int) -> Token:
        with self._db.read() as conn:
            row = conn.execute(select(t.tokens).where(t.tokens.c.id == token_id)).first()
        if row is None:
            raise NotFound(
                f"Token {token_id} does not exist.", "List tokens with `loopml tokens list`."
            )
        return _to_token(row)

    def find_token(self, digest: str) -> tuple[Token, User] | None:
        """The token with this hash and its user, or None."""
        with self._db.read() as conn:
            row = conn.execute(_token_and_user().where(t.tokens.c.hash == digest)).first()
        return None if row is None else _to_token_and_user(row)

    def tokens(self, user: str | None) -> list[Token]:
        query = select(t.tokens).order_by(t.tokens.c.id)
        if user is not None:
            query = query.where(t.tokens.c.user == user)
        with self._db.read() as conn:
            return [_to_token(r) for r in conn.execute(query).all()]

    def revoke_token(self, token_id: int, event: EventDraft) -> Token:
        self.token(token_id)
        with self._db.write() as conn:
            now = self._clock()
            conn.execute(
                t.tokens.update()
                .where(t.tokens.c.id == token_id, t.tokens.c.revoked_us.is_(None))
                .values(revoked_us=now)
            )
            draft = EventDraft(event.action, event.entity, event.actor, None, {"token": token_id})
            append_event(self._db, conn, draft, now)
        return self.token(token_id)

    def grant(self, project: str, user: str, role: str | None, event: EventDraft) -> None:
        """Give `user` `role` on `project` (None takes the grant away)."""
        self.user(user)
        table = t.grants
        where = (table.c.project == project) & (table.c.user == user)
        with self._db.write() as conn:
            now = self._clock()
            ensure_project(conn, project, now)
            before = conn.execute(select(table.c.role).where(where)).scalar()
            conn.execute(table.delete().where(where))
            if role is not None:
                conn.execute(table.insert().values(project=project, user=user, role=role))
            draft = EventDraft(
                event.action, event.entity, event.actor, {"role": before}, {"role": role}
            )
            append_event(self._db, conn, draft, now)

    def grants(self, project: str | None = None, user: str | None = None) -> list[Grant]:
        query = select(t.grants).order_by(t.grants.c.project, t.grants.c.user)
        if project is not None:
            query = query.where(t.grants.c.project == project)
        if user is not None:
            query = query.where(t.grants.c.user == user)
        with self._db.read() as conn:
            return [Grant(r.project, r.user, r.role) for r in conn.execute(query).all()]

    def create_project(self, project: str, event: EventDraft) -> bool:
        """Make `project` exist; False when it already did."""
        with self._db.write() as conn:
            now = self._clock()
            exists = conn.execute(
                select(t.projects.c.name).where(t.projects.c.name == project)
            ).first()
            if exists:
                return False
            ensure_project(conn, project, now)
            append_event(self._db, conn, event, now)
        return True

    def projects(self) -> list[str]:
        with self._db.read() as conn:
            names = conn.execute(select(t.projects.c.name).order_by(t.projects.c.name))
            return list(names.scalars())

    def add_session(self, digest: str, token_id: int, expires: datetime) -> None:
        """Keep a web UI session (the hash of its id) for token `token_id` until `expires`;
        sessions already expired are dropped on the way."""
        with self._db.write() as conn:
            now = self._clock()
            conn.execute(t.ui_sessions.delete().where(t.ui_sessions.c.expires_us <= now))
            conn.execute(
                t.ui_sessions.insert().values(
                    hash=digest,
                    token_id=token_id,
                    created_us=now,
                    expires_us=datetime_to_us(expires),
                )
            )

    def find_session(self, digest: str) -> tuple[Token, User, datetime] | None:
        """The token a session stands for, its user, and when the session ends; None for a
        session that does not exist."""
        sessions = t.ui_sessions
        query = (
            _token_and_user()
            .add_columns(sessions.c.expires_us.label("session_expires_us"))
            .join(sessions, sessions.c.token_id == t.tokens.c.id)
            .where(sessions.c.hash == digest)
        )
        with self._db.read() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return (*_to_token_and_user(row), us_to_datetime(row.session_expires_us))

    def delete_session(self, digest: str) -> None:
        with self._db.write() as conn:
            conn.execute(t.ui_sessions.delete().where(t.ui_sessions.c.hash == digest))
