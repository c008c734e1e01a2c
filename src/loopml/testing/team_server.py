"""For tests: a team server (`loopml server`'s application under uvicorn) on a free port of
127.0.0.1, in a thread of the test process, over a workspace of the given settings, with an admin
and their token; and a fresh PostgreSQL schema to back one."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopml.bootstrap import Workspace, open_workspace
from loopml.server.app import create_server
from loopml.settings import Settings


def postgres_schema_url(database_url: str) -> str:
    """A URL whose connections live in a new, empty schema of the database at `database_url`."""
    import uuid

    from loopml.adapters.sql.engine import create_schema

    schema = f"t_{uuid.uuid4().hex[:12]}"
    create_schema(database_url, schema)
    return f"{database_url}?options=-csearch_path%3D{schema}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    token: str
    """The admin's token."""
    workspace: Workspace
    """The server's own workspace (its database and artifact store)."""
    app: Any
    """The server's application (its `state.scheduler`, when it schedules)."""


@contextmanager
def live_server(
    settings: Settings, admin: str = "alice", **options: object
) -> Iterator[LiveServer]:
    import uvicorn

    ws = open_workspace(settings)
    ws.auth.create_user(admin, "admin")
    token, _ = ws.auth.create_token(admin, "tests")
    port = free_port()
    app = create_server(ws, **options)  # type: ignore[arg-type]
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the team server did not start")
        time.sleep(0.02)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", token, ws, app)
    finally:
        server.should_exit = True
        thread.join(30)
        ws.close()


def wait_until_healthy(url: str, process: Any, log: Any, timeout_s: float = 60) -> None:
    """Wait for `loopml server` (or `loopml ui`) at `url` to answer /api/v1/health; raise
    with its log when `process` exits first or `timeout_s` passes."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{url}/api/v1/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the server at {url} did not start:\n{Path(log).read_text()}")
        time.sleep(0.1)
