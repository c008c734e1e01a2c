"""The stores of a team server, over its REST API (`loopml.server`): the same ports as the SQL
and fsspec adapters, so every service runs unchanged against `LOOPML_SERVER`.

Records go to the server in loopml's one JSON encoding (`loopml.domain.jsonable`) and come back
as the JSON pydantic makes of them, decoded into the same dataclasses. An error answer becomes
the loopml error the server raised (its message and hint intact). Every call is retried while
the server cannot be reached, because every call is safe to repeat: reads; blobs (named by
their hash); a run created under an id the client chose; metric points (an exact repeat is the
same point); a run ended the same way twice; a model version of the same files from the same
run; an alias set to the same version.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, TypeVar
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter

from loopml import errors
from loopml.domain.auth import Grant, Token, User
from loopml.domain.filters import RunQuery
from loopml.domain.hashing import Digest, finish, is_digest, new_hasher, update
from loopml.domain.jsonable import to_json
from loopml.domain.manifest import BlobRef, Manifest
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
from loopml.errors import IntegrityError, LoopmlError, Unavailable
from loopml.ports import NewDatasetVersion, NewModelVersion, NewRun, ProgressFn, RunPage
from loopml.retrying import retrying

T = TypeVar("T")
CHUNK = 1 << 20
RETRY_S = 30.0
"""How long a call keeps trying a server that stopped answering (a restart takes seconds)."""
FIRST_CONTACT_S = 1.0
_ERRORS = {
    cls.__name__: cls
    for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, LoopmlError)
}
_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def _adapter(kind: Any) -> TypeAdapter[Any]:
    if kind not in _ADAPTERS:
        _ADAPTERS[kind] = TypeAdapter(kind)
    return _ADAPTERS[kind]


def decode(kind: type[T] | Any, data: Any) -> T:
    """`data` (parsed JSON) as a `kind` (a dataclass, or a list or dict of them)."""
    return _adapter(kind).validate_python(data)  # type: ignore[no-any-return]


def _p(text: str) -> str:
    return quote(text, safe="")


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


def _columns(points: Sequence[MetricPoint]) -> dict[str, list[Any]]:
    """Points as the server takes them: four columns."""
    return {
        "keys": [p.key for p in points],
        "values": [p.value for p in points],
        "steps": [p.step for p in points],
        "timestamps_ms": [p.timestamp_ms for p in points],
    }


def _event(event: EventDraft) -> dict[str, str]:
    return {"action": event.action, "entity": event.entity}


class RemoteDatasetStore:
    def __init__(self, client: RemoteClient) -> None:
        self._c = client

    def _base(self, project: str, name: str) -> str:
        return f"/projects/{_p(project)}/datasets/{_p(name)}/versions"

    def add_version(self, new: NewDatasetVersion, event: EventDraft) -> tuple[DatasetVersion, bool]:
        body = {
            "manifest": new.manifest,
            "message": new.message,
            "table_schema": new.schema,
            "profile": new.profile,
            "event": _event(event),
        }
        data = self._c.call("POST", self._base(new.project, new.name), body=body)
        return decode(DatasetVersion, data["version"]), bool(data["created"])

    def get_version(self, project: str, name: str, version: int | None) -> DatasetVersion:
        which = "latest" if version is None else str(version)
        return decode(DatasetVersion, self._c.call("GET", f"{self._base(project, name)}/{which}"))

    def get_manifest(self, project: str, name: str, version: int) -> Manifest:
        data = self._c.call("GET", f"{self._base(project, name)}/{version}/manifest")
        return decode(Manifest, data)

    def get_profile(self, project: str, name: str, version: int) -> dict[str, Any] | None:
        data = self._c.call("GET", f"{self._base(project, name)}/{version}/profile")
        return None if data is None else dict(data)

    def list_datasets(self, project: str) -> list[DatasetSummary]:
        data = self._c.call("GET", f"/projects/{_p(project)}/datasets")
        return decode(list[DatasetSummary], data)

    def list_versions(self, project: str, name: str) -> list[DatasetVersion]:
        return decode(list[DatasetVersion], self._c.call("GET", self._base(project, name)))


class RemoteRunStore:
    def __init__(self, client: RemoteClient) -> None:
        self._c = client

    def create_run(self, new: NewRun, event: EventDraft) -> Run:
        body = {
            "name": new.name,
            "event": _event(event),
            "environment": new.environment,
            "tags": new.tags,
            "parent_id": new.parent_id,
            "artifacts": list(new.artifacts),
            "params": new.params,
            "finished": new.finished,
            "run_id": new.run_id,
        }
        return decode(Run, self._c.call("POST", f"/projects/{_p(new.project)}/runs", body=body))

    def get_run(self, run_id: RunId) -> Run:
        return decode(Run, self._c.call("GET", f"/runs/{_p(run_id)}"))

    def end_run(
        self,
        run_id: RunId,
        status: RunStatus,
        error: str | None,
        now: datetime,
        event: EventDraft,
        *,
        final_metrics: Sequence[MetricPoint] = (),
    ) -> None:
        body = {
            "status": status,
            "now": now,
            "event": _event(event),
            "error": error,
            "final_metrics": _columns(final_metrics),
        }
        self._c.call("POST", f"/runs/{_p(run_id)}/end", body=body)

    def log_batch(
        self,
        run_id: RunId,
        metrics: Sequence[MetricPoint] = (),
        params: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        body = {"metrics": _columns(metrics), "params": params, "tags": tags}
        self._c.call("POST", f"/runs/{_p(run_id)}/batch", body=body)

    def add_inputs_and_artifacts(
        self,
        run_id: RunId,
        dataset_refs: Iterable[tuple[str, str, int]],
        artifacts: Iterable[RunArtifact],
    ) -> None:
        body = {"datasets": list(dataset_refs), "artifacts": list(artifacts)}
        self._c.call("POST", f"/runs/{_p(run_id)}/links", body=body)

    def search(self, query: RunQuery, limit: int, offset: int) -> RunPage:
        body = {"query": query, "limit": limit, "offset": offset}
        return decode(RunPage, self._c.call("POST", "/runs/search", body=body, retry=True))

    def metric_history(self, run_id: RunId, key: str) -> list[MetricPoint]:
        data = self._c.call("GET", f"/runs/{_p(run_id)}/metrics/{quote(key)}")
        return decode(list[MetricPoint], data)

    def list_artifacts(self, run_id: RunId) -> list[RunArtifact]:
        return decode(list[RunArtifact], self._c.call("GET", f"/runs/{_p(run_id)}/artifacts"))

    def heartbeat(self, run_ids: Sequence[RunId]) -> None:
        """One call for every run of this process; not retried (the next beat is the retry)."""
        self._c.call("POST", "/runs/heartbeat", body={"run_ids": list(run_ids)}, retry=False)


class RemoteModelStore:
    def __init__(self, client: RemoteClient) -> None:
        self._c = client

    def _base(self, project: str, name: str) -> str:
        return f"/projects/{_p(project)}/models/{_p(name)}"

    def register(self, new: NewModelVersion, event: EventDraft) -> ModelVersion:
        body = {
            "flavor": new.flavor,
            "flavor_info": new.flavor_info,
            "manifest": new.manifest,
            "signature": new.signature,
            "metrics": new.metrics,
            "event": _event(event),
            "run_id": new.run_id,
        }
        data = self._c.call("POST", f"{self._base(new.project, new.name)}/versions", body=body)
        return decode(ModelVersion, data)

    def get_version(self, project: str, name: str, version: int) -> ModelVersion:
        data = self._c.call("GET", f"{self._base(project, name)}/versions/{version}")
        return decode(ModelVersion, data)

    def get_manifest(self, project: str, name: str, version: int) -> Manifest:
        data = self._c.call("GET", f"{self._base(project, name)}/versions/{version}/manifest")
        return decode(Manifest, data)

    def resolve_alias(self, project: str, name: str, alias: str) -> int:
        data = self._c.call("GET", f"{self._base(project, name)}/aliases/{_p(alias)}")
        return int(data["version"])

    def set_alias(
        self, project: str, name: str, alias: str, version: int | None, event: EventDraft
    ) -> int | None:
        body = {"version": version, "event": _event(event)}
        data = self._c.call("PUT", f"{self._base(project, name)}/aliases/{_p(alias)}", body=body)
        return None if data["version"] is None else int(data["version"])

    def list_models(self, project: str) -> list[ModelSummary]:
        data = self._c.call("GET", f"/projects/{_p(project)}/models")
        return decode(list[ModelSummary], data)

    def list_versions(self, project: str, name: str) -> list[ModelVersion]:
        data = self._c.call("GET", f"{self._base(project, name)}/versions")
        return decode(list[ModelVersion], data)


class RemoteEventLog:
    def __init__(self, client: RemoteClient) -> None:
        self._c = client

    def append(self, event: EventDraft) -> Event:
        raise errors.InvalidInput(
            "Events are appended by the server, with the change they record.",
            "Make the change through its store.",
        )

    def list(
        self, *, entity: str | None = None, action: str | None = None, limit: int = 100
    ) -> list[Event]:
        params = {k: v for k, v in (("entity", entity), ("action", action)) if v is not None}
        data = self._c.call("GET", "/events", params={**params, "limit": limit})
        return decode(list[Event], data)

    def iterate(self) -> Iterator[Event]:
        yield from decode(list[Event], self._c.call("GET", "/events/all"))


def _checked(digest: Digest) -> Digest:
    if not is_digest(digest):
        raise errors.InvalidInput(
            f"{digest!r} is not a blob digest.", "Write blake3:<64 lowercase hex digits>."
        )
    return digest


class RemoteBlobStore:
    """Blobs through the server: uploads stream from the file (skipped when `exists` says the
    caller may already read the digest; bytes that only another project holds are sent again,
    and the server keeps one copy), downloads stream to a file and are checked against the
    digest."""

    def __init__(self, client: RemoteClient) -> None:
        self._c = client

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

            self._c.upload(f"/blobs/{ref.digest}", chunks)
        elif progress is not None:
            progress(size)
        return ref

    def put_bytes(self, data: bytes) -> BlobRef:
        hasher = new_hasher()
        update(hasher, data)
        ref = BlobRef(finish(hasher), len(data))
        if not self.exists(ref.digest):
            self._c.upload(f"/blobs/{ref.digest}", lambda: [data])
        return ref

    @contextlib.contextmanager
    def open(self, digest: Digest) -> Iterator[BinaryIO]:
        _checked(digest)
        with tempfile.TemporaryDirectory(prefix="loopml-blob-") as folder:
            path = Path(folder) / "blob"
            self.get_file(digest, path)
            with path.open("rb") as reader:
                yield reader

    def read_bytes(self, digest: Digest) -> bytes:
        _checked(digest)
        buffer = io.BytesIO()
        self._download(digest, buffer.write, None)
        return buffer.getvalue()

    def get_file(self, digest: Digest, dest: Path, *, progress: ProgressFn | None = None) -> None:
        """Write the blob to `dest` atomically; on any error `dest` is untouched."""
        _checked(digest)
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
        with self._c.stream(f"/blobs/{digest}") as response:
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
        _checked(digest)
        return bool(self._c.call("GET", f"/blobs/{digest}/exists")["exists"])


class RemoteAuthStore:
    """Users, tokens, projects and grants on the server, for an admin's commands. A new token is
    made here and only its hash is sent."""

    def __init__(self, client: RemoteClient) -> None:
        self._c = client

    def create_user(self, name: str, role: str | None, event: EventDraft) -> User:
        return decode(User, self._c.call("POST", "/users", body={"name": name, "role": role}))

    def user(self, name: str) -> User:
        return decode(User, self._c.call("GET", f"/users/{_p(name)}"))

    def users(self) -> list[User]:
        return decode(list[User], self._c.call("GET", "/users"))

    def disable_user(self, name: str, event: EventDraft) -> User:
        return decode(User, self._c.call("POST", f"/users/{_p(name)}/disable"))

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
        body = {"digest": digest, "hint": hint, "name": name, "expires_at": expires}
        return decode(Token, self._c.call("POST", f"/users/{_p(user)}/tokens", body=body))

    def token(self, token_id: int) -> Token:
        return decode(Token, self._c.call("GET", f"/tokens/{int(token_id)}"))

    def find_token(self, digest: str) -> tuple[Token, User] | None:
        raise errors.InvalidInput(
            "Tokens are checked by the server, not by its clients.", "Call the server instead."
        )

    def tokens(self, user: str | None) -> list[Token]:
        params = {} if user is None else {"user": user}
        return decode(list[Token], self._c.call("GET", "/tokens", params=params))

    def revoke_token(self, token_id: int, event: EventDraft) -> Token:
        return decode(Token, self._c.call("POST", f"/tokens/{int(token_id)}/revoke"))

    def grant(self, project: str, user: str, role: str | None, event: EventDraft) -> None:
        path = f"/projects/{_p(project)}/grants/{_p(user)}"
        self._c.call("PUT", path, body={"role": role})

    def grants(self, project: str | None = None, user: str | None = None) -> list[Grant]:
        params = {k: v for k, v in (("project", project), ("user", user)) if v is not None}
        return decode(list[Grant], self._c.call("GET", "/grants", params=params))

    def create_project(self, project: str, event: EventDraft) -> bool:
        return bool(self._c.call("POST", f"/projects/{_p(project)}")["created"])

    def projects(self) -> list[str]:
        return list(self._c.call("GET", "/projects"))
