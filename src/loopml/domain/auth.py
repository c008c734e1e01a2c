"""Users, API tokens and roles of a shared server. Pure: the rules, not the storage.

A user has a role everywhere (`--role` when created; none means only what grants give) and may
be granted a higher one on a project. Roles are ordered: a viewer reads; an editor also writes
runs, data and models; an admin also moves protected aliases, promotes, and manages deployments,
monitors, alerts, loops, users and grants.

A token is 32 random bytes shown once; only its SHA-256 is stored (a token has the entropy of a
key, so a slow password hash would add nothing but latency to every request).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from loopml.errors import InvalidInput

ROLES = ("viewer", "editor", "admin")
_RANK = {role: rank for rank, role in enumerate(ROLES, start=1)}
TOKEN_PREFIX = "lml_"
PROTECTED_ALIASES = ("champion",)
"""Aliases only an admin (or a retrain loop acting under its policy) may move."""


def check_role(role: str) -> str:
    if role not in _RANK:
        raise InvalidInput(f"Unknown role {role!r}.", f"Use one of: {', '.join(ROLES)}.")
    return role


def allows(role: str | None, needed: str) -> bool:
    """Whether `role` (None: no access) is at least `needed`."""
    return role is not None and _RANK[role] >= _RANK[needed]


def highest(*roles: str | None) -> str | None:
    known = [r for r in roles if r is not None]
    return max(known, key=_RANK.__getitem__) if known else None


def new_token() -> str:
    import secrets  # here: a command that makes no token does not pay for importing it

    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    import hashlib

    return hashlib.sha256(token.encode()).hexdigest()


def same_hash(a: str, b: str) -> bool:
    import hmac

    return hmac.compare_digest(a, b)


@dataclass(frozen=True)
class User:
    name: str
    role: str | None
    """The role on every project; grants may raise it on one."""
    created_at: datetime
    disabled_at: datetime | None = None


@dataclass(frozen=True)
class Token:
    id: int
    user: str
    name: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    hint: str
    """The token's last 4 characters, to tell tokens apart in a list."""

    def usable(self, now: datetime) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or now < self.expires_at


@dataclass(frozen=True)
class Grant:
    project: str
    user: str
    role: str


PROJECT_KINDS = frozenset({"dataset", "run", "model", "deployment", "monitor", "alert", "loop"})
"""The kinds of audited things that live in a project (`KIND:PROJECT/...`)."""


def entity_scope(entity: str) -> tuple[str | None, str]:
    """Whose events an entity filter reads: (project, the role it needs there), or (None,
    "admin") for users, tokens and anything else outside a project (an admin everywhere's)."""
    kind, _, rest = entity.partition(":")
    if kind in PROJECT_KINDS:
        return rest.split("/", 1)[0], "viewer"
    if kind == "project" and "/" not in rest:
        return rest, "admin"
    return None, "admin"
