"""A clock the suites turn by hand, so a lease running out or a run falling silent takes no
waiting: the stores of a backend that take a clock (`clock=` of the SQL stores, of a
`MemoryDatabase`) are given one, and `pass_time` moves it on instead of sleeping."""

from __future__ import annotations

import threading
import time


class FakeClock:
    """Microseconds since the epoch, starting at the real time. Each reading moves it on by one
    microsecond, so records made one after another keep their order as under a real clock;
    `advance` moves it on by whole stretches. Safe to read from several threads."""

    def __init__(self, start_us: int | None = None) -> None:
        self._now_us = time.time_ns() // 1000 if start_us is None else start_us
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            self._now_us += 1
            return self._now_us

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass (never backwards: a clock that goes back breaks every order)."""
        if seconds < 0:
            raise ValueError(f"A clock only moves forward; got {seconds} s.")
        with self._lock:
            self._now_us += round(seconds * 1_000_000)
