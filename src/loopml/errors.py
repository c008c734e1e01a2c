"""The one exception tree of loopml, caught by type and never by message.

    LoopmlError                     base: a message that names the problem, and a hint with the fix
    ├── NotFound                    a named thing (dataset, run, model, version, alias) is absent
    ├── AlreadyExists               a create would overwrite something that must stay unique
    ├── InvalidInput                the caller's input is malformed (a filter, a file, a name)
    ├── Conflict                    the input is valid but the current state forbids the change
    ├── Unauthenticated             no valid API token (a server's 401)
    ├── Forbidden                   the token's user lacks the role (a server's 403)
    ├── IntegrityError              stored bytes no longer match their recorded hash
    └── Unavailable                 a service (database, object store) did not answer; retryable

`EXIT_CODES` maps each type to the CLI's exit code; a later HTTP edge maps them to status codes the
same way, from one table.
"""

from __future__ import annotations


class LoopmlError(Exception):
    """Base of every error loopml raises on purpose.

    `message` says what happened and what was received; `hint` says what to do about it.
    """

    retryable: bool = False

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip()

    def __reduce__(self) -> tuple[type[LoopmlError], tuple[str, str]]:
        """Pickle with the hint, so an error raised in a worker process arrives whole."""
        return (type(self), (self.message, self.hint))


class NotFound(LoopmlError):
    """A named thing does not exist."""


class AlreadyExists(LoopmlError):
    """Creating this would clash with something that exists."""


class InvalidInput(LoopmlError):
    """The input is malformed or of the wrong kind."""


class Conflict(LoopmlError):
    """The input is fine but the current state forbids the change."""


class Unauthenticated(LoopmlError):
    """The request carries no valid credentials (HTTP 401)."""


class Forbidden(LoopmlError):
    """The caller is known but their role does not allow this (HTTP 403)."""


class IntegrityError(LoopmlError):
    """Stored bytes do not match the hash they were recorded under."""


class Unavailable(LoopmlError):
    """A backing service did not answer. Trying again may succeed."""

    retryable = True


HTTP_STATUS: dict[type[LoopmlError], int] = {
    NotFound: 404,
    AlreadyExists: 409,
    InvalidInput: 400,
    Conflict: 409,
    Unauthenticated: 401,
    Forbidden: 403,
    IntegrityError: 500,
    Unavailable: 503,
}
"""HTTP status per error type, for the team server (and its client, which maps back)."""


def http_status(error: LoopmlError) -> int:
    for cls in type(error).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500


EXIT_CODES: dict[type[LoopmlError], int] = {
    NotFound: 1,
    AlreadyExists: 1,
    InvalidInput: 1,
    Conflict: 1,
    Unauthenticated: 1,
    Forbidden: 1,
    IntegrityError: 1,
    Unavailable: 1,
}
"""CLI exit code per error type: 1 for every user-facing error (2 is reserved for usage errors)."""


def exit_code(error: LoopmlError) -> int:
    """The CLI exit code for `error`, looked up by its nearest type in `EXIT_CODES`."""
    for cls in type(error).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return 1
