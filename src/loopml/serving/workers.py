"""Several server processes on one port, each answering with TCP_NODELAY on every connection.

The parent binds the listening socket, forks the workers (before anything heavy is imported or
opened), and each worker builds its own app (models, prediction log) and serves on the shared
socket; the kernel spreads connections among them. uvicorn's own multi-worker mode leaves
TCP_NODELAY unset (it wraps the inherited socket as AF_UNIX, so asyncio skips it), which makes
every keep-alive request wait about 40 ms for a delayed ACK; here the HTTP protocol sets it on
each accepted socket. SIGTERM or SIGINT to the parent stops every
worker, each writing its queued prediction log first.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any


def nodelay_protocol() -> type[Any]:
    """uvicorn's httptools protocol, setting TCP_NODELAY on each new connection."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class NoDelayHttpToolsProtocol(HttpToolsProtocol):
        def connection_made(self, transport: Any) -> None:
            # uvicorn wraps an inherited fd as AF_UNIX whatever it really is, so the family
            # cannot be trusted: try, and a real UNIX socket simply refuses.
            sock = transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            super().connection_made(transport)

    return NoDelayHttpToolsProtocol


def listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run_workers(count: int, sock: socket.socket, serve_one: Callable[[int], None]) -> int:
    """Fork `count` workers that each call `serve_one(fd)`; wait for them; exit status."""
    children: list[int] = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:  # a worker
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            try:
                serve_one(sock.fileno())
            finally:
                os._exit(0)
        children.append(pid)

    def forward(signum: int, _frame: Any) -> None:
        for child in children:
            try:
                os.kill(child, signal.SIGTERM)
            except ProcessLookupError:
                continue

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    for child in children:
        _, code = os.waitpid(child, 0)
        status = status or (code >> 8)
    sock.close()
    sys.stderr.write("all workers stopped\n")
    return status
