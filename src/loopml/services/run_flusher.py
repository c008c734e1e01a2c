"""The background thread of tracking: it writes the metric points of every active run that
waited `FLUSH_INTERVAL_S`, and is the heartbeat of those runs (see `loopml.services.tracking`).

A run whose write failed keeps its points (the next flush or the run's end writes them) and is
tried again on the retry policy's waits (`loopml.retrying.backoff_s`): `FLUSH_INTERVAL_S`, then
twice that, up to `FLUSH_RETRY_MAX_S`, so a store that is down is not sent the growing batch
ten times a second.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from loopml.domain.records import RunId
from loopml.retrying import backoff_s

if TYPE_CHECKING:
    from loopml.services.tracking import ActiveRun, TrackingService

FLUSH_INTERVAL_S = 1.0
FLUSH_RETRY_MAX_S = 10.0
"""The longest wait before a run whose writes keep failing is tried again."""


class RunFlusher:
    """One daemon thread that flushes every active run's due points, so a run whose loop went
    quiet still reaches the store within `FLUSH_INTERVAL_S`, and beats their hearts."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._runs: weakref.WeakSet[ActiveRun] = weakref.WeakSet()
        self._retries: weakref.WeakKeyDictionary[ActiveRun, tuple[int, float]] = (
            weakref.WeakKeyDictionary()
        )
        """Runs whose last write failed: (failures in a row, when to try again); flusher only."""
        self._clock = clock
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._woken = threading.Event()

    def wake(self) -> None:
        """Look at every run now (one has a full batch), not at the next tick."""
        self._woken.set()

    def watch(self, run: ActiveRun) -> None:
        with self._lock:
            self._runs.add(run)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, daemon=True, name="loopml-metric-flusher"
                )
                self._thread.start()

    def forget(self, run: ActiveRun) -> None:
        with self._lock:
            self._runs.discard(run)

    def _loop(self) -> None:
        while True:
            self._woken.wait(FLUSH_INTERVAL_S / 10)
            self._woken.clear()
            with self._lock:
                runs = list(self._runs)
            self.flush_due(runs)
            self._beat(runs)

    def flush_due(self, runs: list[ActiveRun]) -> None:
        """Flush the due points of each run not waiting to be tried again; a failed write, of
        any kind, puts its run back to wait (its points stay in its buffer)."""
        now = self._clock()
        for run in runs:
            failures, retry_at = self._retries.get(run, (0, now))
            if now < retry_at:
                continue
            try:
                run.flush_if_due()
            except Exception:
                wait_s = backoff_s(failures + 1, FLUSH_INTERVAL_S, FLUSH_RETRY_MAX_S)
                self._retries[run] = (failures + 1, now + wait_s)
            else:
                self._retries.pop(run, None)

    @staticmethod
    def _beat(runs: list[ActiveRun]) -> None:
        """Stamp the live runs of each tracking service whose heartbeat is due, in one call."""
        by_service: dict[int, tuple[TrackingService, list[RunId]]] = {}
        for run in runs:
            if not run.ended:
                by_service.setdefault(id(run.service), (run.service, []))[1].append(run.id)
        for service, run_ids in by_service.values():
            try:
                service.beat_if_due(run_ids)
            except Exception:  # the store is unreachable now; the next beat tries again
                continue
