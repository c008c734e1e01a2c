"""Switching a SQLite file to write-ahead logging when other processes may do the same."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

_RETRY_S = 0.01


def enable_wal(connection: Any, *, timeout_s: float) -> None:
    """Put the database behind `connection` in WAL mode, waiting up to `timeout_s` for others.

    SQLite answers "database is locked" at once, without consulting the busy timeout, when
    another connection holds the lock that a journal-mode change needs, which happens when
    several processes open a new file together. The mode is persistent, so once any of them
    succeeds the others only need to see it.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() >= deadline:
                raise
            time.sleep(_RETRY_S)
