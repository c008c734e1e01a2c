"""The stores of a team server, over its REST API (`loopml.server`): the same ports as the SQL
and fsspec adapters, so every service runs unchanged against `LOOPML_SERVER`.

Each method is made by `remote` from the port's own method and its entry in the one table of
operations (`loopml.remote_api.operations`), which the server's routes are made from too: the
arguments go where the entry says (path, query, body), the answer comes back as the port's
result. Records go in loopml's one JSON encoding (`loopml.domain.jsonable`) and come back as the
JSON pydantic makes of them, decoded into the same dataclasses. An error answer becomes the
loopml error the server raised (its message and hint intact). A call is retried while the
server cannot be reached unless its entry says it is not safe to repeat (a record made under an
id the server chooses); the others are: reads; blobs (named by their hash); a run created under
an id the client chose; metric points (an exact repeat is the same point); a run ended the same
way twice; a model version of the same files from the same run; an alias set to the same
version.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import io
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO, TypeVar, get_origin
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter

from loopml import errors, ports
from loopml.domain.hashing import Digest, digest_bytes, finish, new_hasher, update
from loopml.domain.jsonable import to_json
from loopml.domain.manifest import BlobRef
from loopml.errors import IntegrityError, LoopmlError, Unavailable
from loopml.ports import BlobStore, ProgressFn
from loopml.remote_api import operations as api
from loopml.retrying import retrying

F = TypeVar("F", bound=Callable[..., Any])
CHUNK = 1 << 20
RETRY_S = 30.0
"""How long a call keeps trying a server that stopped answering (a restart takes seconds)."""
FIRST_CONTACT_S = 1.0
_ERRORS = {
    cls.__name__: cls
    for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, LoopmlError)
}


@functools.cache
def _adapter(kind: Any) -> TypeAdapter[Any]:
    return TypeAdapter(kind)


def decode(kind: Any, data: Any) -> Any:
    """`data` (parsed JSON) as a `kind` (a dataclass, or a list or dict of them)."""
    return _adapter(kind).validate_python(data)


class _NoAnswer(Exception):
    """A try that reached no server (refused, reset, timed out): worth another."""

    def __init__(self, reason: httpx.TransportError) -> None:
        super().__init__(str(reason))
        self.reason = reason


class _Busy(Exception):
    """A 503 answer (a server starting, or out of room): worth another try."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def _no_answer_yet(exc: BaseException) -> bool:
    return isinstance(exc, _NoAnswer | _Busy)


class RemoteClient:
    """One keep-alive HTTP connection pool to a server, with the token on every request."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        timeout_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`sleep` and `clock` are what the retries wait with and read the time from."""
        self.base_url = base_url.rstrip("/")
        self._reached = False
        self._sleep, self._clock = sleep, clock
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=f"{self.base_url}/api/v1",
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=10.0),
        )

    def close(self) -> None:
        self._http.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        retry: bool | None = None,
    ) -> Any:
        """Send one request; the decoded JSON answer (None for 204), or the server's error."""
        content = None if body is None else to_json(body, finite=True)
        headers = None if content is None else {"Content-Type": "application/json"}
        response = self._send(
            lambda: self._http.request(
                method, path, content=content, params=params, headers=headers
            ),
            retry is not False,
        )
        if response.status_code == 204:
            return None
        return response.json()

    def _send(self, attempt: Callable[[], httpx.Response], retry: bool) -> httpx.Response:
        """`attempt()`, tried again by the retry policy while the server cannot be reached or
        answers 503, for up to RETRY_S seconds (every call is safe to repeat: see the module's
        docstring); waits from 0.1 s, doubling up to 2 s."""
        # A server never reached is likely a wrong LOOPML_SERVER: say so in a second, not 30.
        patience = (RETRY_S if self._reached else FIRST_CONTACT_S) if retry else 0.0
        policy = retrying(
            within_s=patience,
            first_wait_s=0.1,
            max_wait_s=2.0,
            retry_on=_no_answer_yet,
            sleep=self._sleep,
            clock=self._clock,
        )
        try:
            return policy(self._try, attempt)
        except _NoAnswer as failed:
            raise Unavailable(
                f"The loopml server at {self.base_url} did not answer: {failed.reason}.",
                "Check LOOPML_SERVER and that `loopml server` is running.",
            ) from None
        except _Busy as busy:
            raise self._error(busy.response) from None

    def _try(self, attempt: Callable[[], httpx.Response]) -> httpx.Response:
        """One try: the answer, or the loopml error of a 4xx or 5xx (_NoAnswer and _Busy for
        what the policy tries again)."""
        try:
            response = attempt()
        except httpx.TransportError as exc:
            raise _NoAnswer(exc) from None
        self._reached = True
        if response.status_code == 503:
            raise _Busy(response)
        if response.status_code >= 400:
            raise self._error(response)
        return response

    def _error(self, response: httpx.Response) -> LoopmlError:
        try:
            data = response.json()
        except ValueError:
            data = {}
        kind = _ERRORS.get(str(data.get("type")), LoopmlError)
        message = data.get("error") or f"The server answered {response.status_code}."
        return kind(message, data.get("hint") or "")

    @contextlib.contextmanager
    def stream(self, path: str) -> Iterator[httpx.Response]:
        with self._http.stream("GET", path) as response:
            if response.status_code >= 400:
                response.read()
                raise self._error(response)
            yield response

    def upload(self, path: str, chunks: Callable[[], Iterable[bytes]]) -> Any:
        """PUT the bytes `chunks()` yields (called again for each try)."""
        response = self._send(lambda: self._http.put(path, content=chunks()), retry=True)
        return response.json()


class _Remote:
    def __init__(self, client: RemoteClient) -> None:
        self._c = client


def remote(function: F) -> F:
    """The method of a remote store that carries out `function`, a port's method, on the
    server as its entry in the table of operations says; typed as `function` itself."""
    op = api.BY_FUNCTION[function]
    signature = inspect.signature(function)
    points = {name for name in op.body_fields if api.on_wire(op.hints[name]) is api.PointsIn}

    def method(self: _Remote, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        values = bound.arguments
        query = {q: values[q] for q in op.query if values[q] is not None}
        body: dict[str, Any] = {n: values[n] for n in op.body_fields}
        body.update({n: api.PointsIn.of(values[n]) for n in points})
        if "event" in body:  # the server sets the actor
            body["event"] = {"action": body["event"].action, "entity": body["event"].entity}
        data = self._c.call(
            op.verb, _path(op, values), body=body or None, params=query, retry=op.retries(values)
        )
        returns = op.hints["return"]
        if returns is type(None):
            return None
        answer = decode(op.response, data)
        return iter(answer) if get_origin(returns) is Iterator else answer

    method.__name__, method.__doc__ = function.__name__, function.__doc__
    return method  # type: ignore[return-value]


def remote_store(name: str, *ports: type, doc: str = "", **own: Any) -> type[Any]:
    """The class of a remote store: a `remote` method for every entry of `ports` in the table,
    and `own` methods for the rest (a port method with neither is a TypeError here, at import,
    rather than an AttributeError in the middle of a command)."""
    methods = {
        op.function.__name__: remote(op.function)
        for op in api.OPERATIONS
        if any(getattr(port, op.function.__name__, None) is op.function for port in ports)
    }
    asked = {m for port in ports for m in vars(port) if m[0] != "_" and callable(getattr(port, m))}
    missing = asked - methods.keys() - own.keys()
    if missing:
        raise TypeError(f"{name} carries no {sorted(missing)}: add them to the table.")
    return type(name, (_Remote,), {**methods, **own, "__doc__": doc, "__module__": __name__})


def refused(message: str, hint: str) -> Callable[..., Any]:
    """A port method a client of the server may not call (the server does it itself)."""

    def method(self: _Remote, *args: Any, **kwargs: Any) -> Any:
        raise errors.InvalidInput(message, hint)

    return method


def _value(source: api.Source, values: Mapping[str, Any]) -> Any:
    if callable(source):
        return source(values)
    arg, _, attr = source.partition(".")
    return getattr(values[arg], attr) if attr else values[arg]


def _path(op: api.Operation, values: Mapping[str, Any]) -> str:
    """The operation's path with each parameter filled in and quoted (None: `latest`)."""
    parts = op.path.split("/")
    for i, part in enumerate(parts):
        if part.startswith("{"):
            value = _value(op.source(part.strip("{}").split(":")[0]), values)
            text = "latest" if value is None else str(value)
            parts[i] = quote(text, safe="/" if part.endswith(":path}") else "")
    return "/".join(parts)


RemoteDatasetStore = remote_store("RemoteDatasetStore", ports.DatasetStore)
RemoteRunStore = remote_store("RemoteRunStore", ports.RunStore, ports.RunHeartbeats)
RemoteModelStore = remote_store("RemoteModelStore", ports.ModelStore)
RemoteEventLog = remote_store(
    "RemoteEventLog",
    ports.EventLog,
    append=refused(
        "Events are appended by the server, with the change they record.",
        "Make the change through its store.",
    ),
)
RemoteAuthStore = remote_store(
    "RemoteAuthStore",
    ports.UserStore,
    ports.TokenStore,
    ports.GrantStore,
    doc="""Users, tokens, projects and grants on the server, for an admin's commands. A new
    token is made here and only its hash is sent.""",
    find_token=refused(
        "Tokens are checked by the server, not by its clients.", "Call the server instead."
    ),
)


_BLOB = api.BY_FUNCTION[BlobStore.open].path  # /blobs/{digest}, where bytes go in and out


class RemoteBlobStore(_Remote):
    """Blobs through the server: uploads stream from the file (skipped when `exists` says the
    caller may already read the digest; bytes that only another project holds are sent again,
    and the server keeps one copy), downloads stream to a file and are checked against the
    digest."""

    _exists = remote(BlobStore.exists)

    def url(self) -> str:
        return f"{self._c.base_url} (blobs)"

    def put_file(self, path: Path, *, progress: ProgressFn | None = None) -> BlobRef:
        hasher = new_hasher()
        size = 0
        with path.open("rb") as source:
            while chunk := source.read(CHUNK):
                update(hasher, chunk)
                size += len(chunk)
        ref = BlobRef(finish(hasher), size)
        if not self.exists(ref.digest):

            def chunks() -> Iterator[bytes]:
                with path.open("rb") as source:
                    while chunk := source.read(CHUNK):
                        if progress is not None:
                            progress(len(chunk))
                        yield chunk

            self._c.upload(_BLOB.format(digest=ref.digest), chunks)
        elif progress is not None:
            progress(size)
        return ref

    def put_bytes(self, data: bytes) -> BlobRef:
        ref = BlobRef(digest_bytes(data), len(data))
        if not self.exists(ref.digest):
            self._c.upload(_BLOB.format(digest=ref.digest), lambda: [data])
        return ref

    @contextlib.contextmanager
    def open(self, digest: Digest) -> Iterator[BinaryIO]:
        api.check_digest(digest)
        with tempfile.TemporaryDirectory(prefix="loopml-blob-") as folder:
            path = Path(folder) / "blob"
            self.get_file(digest, path)
            with path.open("rb") as reader:
                yield reader

    def read_bytes(self, digest: Digest) -> bytes:
        api.check_digest(digest)
        buffer = io.BytesIO()
        self._download(digest, buffer.write, None)
        return buffer.getvalue()

    def get_file(self, digest: Digest, dest: Path, *, progress: ProgressFn | None = None) -> None:
        """Write the blob to `dest` atomically; on any error `dest` is untouched."""
        api.check_digest(digest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
        try:
            with part.open("wb") as out:
                self._download(digest, out.write, progress)
            os.replace(part, dest)
        except BaseException:
            part.unlink(missing_ok=True)
            raise

    def _download(self, digest: Digest, write: Any, progress: ProgressFn | None) -> None:
        hasher = new_hasher()
        with self._c.stream(_BLOB.format(digest=digest)) as response:
            try:
                for chunk in response.iter_bytes(CHUNK):
                    update(hasher, chunk)
                    write(chunk)
                    if progress is not None:
                        progress(len(chunk))
            except httpx.TransportError as exc:
                raise Unavailable(
                    f"The download of blob {digest} from {self._c.base_url} broke off: {exc}.",
                    "Try again.",
                ) from None
        if finish(hasher) != digest:
            raise IntegrityError(
                f"Blob {digest} arrived from {self._c.base_url} with other bytes.",
                "Try again; if it persists, the server's copy is damaged.",
            )

    def exists(self, digest: Digest) -> bool:
        api.check_digest(digest)
        return self._exists(digest)
