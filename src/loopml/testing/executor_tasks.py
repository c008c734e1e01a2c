"""Module-level task functions for the executor suite.

Spawned processes and Ray workers import a task's function by module name, so these live in
the installed package rather than in a test module.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import NoReturn


def double(value: int) -> int:
    return value * 2


def fail_with(message: str) -> NoReturn:
    raise ValueError(message)


def busy_wait(seconds: float) -> tuple[float, float]:
    """Keeps one CPU busy for `seconds`; returns the (start, end) wall-clock times."""
    start = time.time()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass
    return start, time.time()


def read_text(path: str) -> str:
    return Path(path).read_text(encoding="utf-8")


def exit_worker(code: int) -> NoReturn:
    """Ends the worker's interpreter at once, as a crash or an out-of-memory kill would."""
    os._exit(code)
