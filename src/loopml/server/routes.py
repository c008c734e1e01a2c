"""The routes of the team server: one per store operation, each checking the caller's role.

Roles: reading needs viewer on the project, writing runs, data and models needs editor, moving a
protected alias (`champion`) needs admin; users, tokens and grants need admin everywhere. The
event a write records is the client's action on the client's entity, which must name the
route's project, with the token's user as the actor.

Projects are isolated: a run named by id, or a blob by digest, that the caller may not read is
answered exactly as one that does not exist (no oracle); a blob is readable through a project
that holds it (a dataset or model manifest, a run artifact, a step output, a monitor summary or
report: `blob_refs`) or by whoever uploaded it; a record naming a blob its writer may not read
is refused as naming a missing one; and the stores refuse references across projects (a run's
parent, a model version's run, a run's inputs, step I/O, a retraining's pipeline run, an
alert's rule).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from loopml.domain.hashing import Digest
from loopml.domain.refs import check_name
from loopml.errors import Conflict, IntegrityError, InvalidInput, NotFound
from loopml.remote_api.operations import OPERATIONS, Operation, PointsIn, check_digest
from loopml.server.context import Call, Context
from loopml.server.handlers import CHECKS, HANDLERS
from loopml.services.auth import Principal

if TYPE_CHECKING:
    from loopml.bootstrap import Workspace

CHUNK = 1 << 20
MAX_LIMIT = 10_000
log = logging.getLogger("loopml.server")


def build_router(
    ws: Workspace, principal: Callable[..., Any], *, max_upload_bytes: int
) -> APIRouter:
    """A route per operation of the table, in its order; blobs stream, by hand."""
    router = APIRouter()
    c = Context(ws, Depends(principal))
    for op in OPERATIONS:
        if op.streamed:
            if op.verb == "PUT":
                _blob_routes(router, c, max_upload_bytes)
        else:
            _add_route(router, c, op)
    return router


def _add_route(router: APIRouter, c: Context, op: Operation) -> None:
    """The route of `op`: check the caller's role where the table says, then the records the
    body names, then call the store (or the server's own handler) and pack the answer."""
    check, handler = CHECKS.get(op.name), HANDLERS.get(op.name)

    def endpoint(**given: Any) -> Any:
        call = Call(op, given.pop("who"), given)
        call.project = _authorize(c, call)
        _same_record(call)
        call.args = _arguments(call)
        if check is not None:
            check(c, call)
        if "event" in op.params and "event" not in call.args:
            call.args["event"] = c.recorded(call)
        if handler is not None:
            return handler(c, call)
        return _answer(c, call, getattr(c.store(op), op.function.__name__)(**call.args))

    keyword = inspect.Parameter.KEYWORD_ONLY
    params = [inspect.Parameter(p, keyword, annotation=_path_type(op, p)) for p in op.path_params]
    params += [
        inspect.Parameter(q, keyword, annotation=op.hints[q], default=default)
        for q, default in op.query.items()
    ]
    if op.body is not None:
        params.append(inspect.Parameter("body", keyword, annotation=op.body))
    params.append(inspect.Parameter("who", keyword, annotation=Principal, default=c.who))
    endpoint.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    endpoint.__doc__ = (handler or check or op.function).__doc__
    router.add_api_route(
        op.path, endpoint, methods=[op.verb], tags=[op.tag], name=op.name,
        status_code=204 if op.response is None else 200, response_model=op.response,
    )  # fmt: skip


def _answer(c: Context, call: Call, result: Any) -> Any:
    """The store's `result` as the operation answers it: only the runs the caller may read of
    a `readable` one, a list for an iterator."""
    if call.op.readable:
        many = isinstance(result, tuple)
        runs = [c.readable_runs(call.who, list(r)) for r in (result if many else [result])]
        return tuple(runs) if many else runs[0]
    return list(result) if isinstance(result, Iterator) else result


def _path_type(op: Operation, param: str) -> Any:
    """How the path gives an argument: a number, a number or `latest` (for None), or text."""
    source = op.source(param)
    hint = op.hints.get(source) if isinstance(source, str) else str
    return int | Literal["latest"] if hint == int | None else (int if hint is int else str)


def _authorize(c: Context, call: Call) -> str:
    """The project of `call` once its caller holds the operation's role there ("" for none)."""
    op, who = call.op, call.who
    if op.scope == "project":
        c.need(who, call.given["project"], op.role)
        return str(call.given["project"])
    if op.scope == "run":
        return c.run_in(who, call.given["run_id"], op.role)
    if op.scope == "anywhere":
        c.need_anywhere(who, op.role)
    elif op.scope == "admin":
        c.admin(who)
    return ""


def _same_record(call: Call) -> None:
    """A record sent in the body must be the one the path names (its project, its name)."""
    op = call.op
    for param in op.path_params:
        source = op.source(param)
        if not isinstance(source, str) or "." not in source:
            continue
        arg, attr = source.split(".")
        sent, routed, noun = getattr(getattr(call.body, arg), attr), call.given[param], op.noun
        if attr == "project" and sent != routed:
            raise InvalidInput(
                f"The {noun or op.kind} is in project {sent!r}, not the route's {routed!r}.",
                f"Send it to /projects/{sent}/...",
            )
        if attr != "project" and sent != check_name(routed, op.kind):
            raise InvalidInput(
                f"The {noun or op.kind}'s {attr} is {sent!r}, not the route's {routed!r}.",
                "Name it the same in the path and the body.",
            )


def _arguments(call: Call) -> dict[str, Any]:
    """The port method's arguments, from the path, the query and the body (but the event)."""
    op, given = call.op, call.given
    args: dict[str, Any] = {}
    for name in op.params:
        carrier = op.carrier(name)
        if name in op.query:
            args[name] = max(1, min(given[name], MAX_LIMIT)) if name == "limit" else given[name]
        elif carrier is not None:  # a version that may be None: `latest`
            value = given[carrier]
            args[name] = None if value == "latest" and op.hints[name] == int | None else value
        elif name != "event" and name in op.body_fields:
            value = getattr(call.body, name)
            args[name] = value.points() if isinstance(value, PointsIn) else value
    return args


def _blob_routes(router: APIRouter, c: Context, max_upload_bytes: int) -> None:
    Who = c.who

    @router.put("/blobs/{digest}", tags=["blobs"], status_code=201)
    async def put_blob(digest: str, request: Request, who: Principal = Who) -> dict[str, Any]:
        """Stream the bytes of blob `digest` in; they are hashed on the way and refused when
        they do not match (or exceed the upload limit)."""
        c.need_anywhere(who, "editor")
        check_digest(digest)
        with tempfile.TemporaryDirectory(prefix="loopml-upload-") as folder:
            path = Path(folder) / "blob"
            await receive_body(request, path, max_upload_bytes)
            ref = await run_in_threadpool(c.ws.blobs.put_file, path)
        if ref.digest != digest:
            raise Conflict(
                f"The bytes sent hash to {ref.digest}, not {digest}.",
                "The file changed while it was sent, or the upload was damaged; send it again.",
            )
        # theirs to read and to name in a record (the bytes prove they had them)
        await run_in_threadpool(c.blob_access.record_upload, ref.digest, who.user)
        return {"digest": ref.digest, "size": ref.size}

    @router.get("/blobs/{digest}", tags=["blobs"], response_class=StreamingResponse)
    def get_blob(digest: str, who: Principal = Who) -> StreamingResponse:
        """Stream blob `digest` out (checked against its hash as it is read): one held by a
        project the caller may read, or one they uploaded; any other is answered as missing."""
        c.need_anywhere(who, "viewer")
        check_digest(digest)
        if not c.may_read_blob(who, digest):
            raise _missing_blob(digest)
        opened = contextlib.ExitStack()  # opened here: a missing blob is a 404, not a cut stream
        try:
            reader = opened.enter_context(c.ws.blobs.open(Digest(digest)))
        except NotFound:
            raise _missing_blob(digest) from None

        def chunks() -> Iterator[bytes]:
            with opened:
                try:
                    while chunk := reader.read(CHUNK):
                        yield chunk
                except IntegrityError as damaged:  # the client checks the hash and says so
                    log.error("serving a damaged blob: %s", damaged)

        return StreamingResponse(
            chunks(), media_type="application/octet-stream", background=BackgroundTask(opened.close)
        )


async def receive_body(request: Request, path: Path, limit: int) -> None:
    """Stream the request body into `path`, refusing more than `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise InvalidInput(
            f"The upload is {declared} bytes; this server takes at most {limit}.",
            "Ask the server's operator to raise --max-upload.",
        )
    size = 0
    with path.open("wb") as out:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise InvalidInput(
                    f"The upload is over {limit} bytes.",
                    "Ask the server's operator to raise --max-upload.",
                )
            out.write(chunk)


def _missing_blob(digest: str) -> NotFound:
    """One answer for a blob that is not stored and for one the caller may not read."""
    return NotFound(
        f"Blob {digest} does not exist.",
        "Check the digest; a blob is read through a dataset, model, run or monitor of a "
        "project you can read.",
    )
