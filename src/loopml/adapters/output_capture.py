"""Capture what a pipeline step prints and logs, while still letting it through.

`sys.stdout` and `sys.stderr` are wrapped once by a tee that copies writes into the buffer of
the current context (a ContextVar), so steps running in parallel threads each get their own
text; log records go to the same buffer through a handler on the root logger.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TextIO

MAX_CAPTURE_CHARS = 1_000_000
"""A step's captured text keeps its first million characters."""

_buffer: ContextVar[io.StringIO | None] = ContextVar("loopml_step_output", default=None)
_install_lock = threading.Lock()


class _Tee(io.TextIOBase):
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        buffer = _buffer.get()
        if buffer is not None and buffer.tell() < MAX_CAPTURE_CHARS:
            buffer.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


class _BufferHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        buffer = _buffer.get()
        if buffer is not None and buffer.tell() < MAX_CAPTURE_CHARS:
            buffer.write(self.format(record) + "\n")


_handler = _BufferHandler(logging.INFO)
_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))


def _install() -> None:
    with _install_lock:
        if not isinstance(sys.stdout, _Tee):
            sys.stdout = _Tee(sys.stdout)
        if not isinstance(sys.stderr, _Tee):
            sys.stderr = _Tee(sys.stderr)
        root = logging.getLogger()
        if _handler not in root.handlers:
            root.addHandler(_handler)


@contextmanager
def captured_output() -> Iterator[io.StringIO]:
    """Within the block, prints and log records of this context also land in the buffer."""
    _install()
    buffer = io.StringIO()
    token = _buffer.set(buffer)
    try:
        yield buffer
    finally:
        _buffer.reset(token)
