"""The background thread of tracking: it writes the metric points of every active run that
waited `FLUSH_INTERVAL_S`, and is the heartbeat of those runs (see `loopml.services.tracking`).
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING

from loopml.domain.records import RunId

if TYPE_CHECKING:
    from loopml.services.tracking import ActiveRun, TrackingService

FLUSH_INTERVAL_S = 1.0


class RunFlusher:
    """One daemon thread that flushes every active run's due points, so a run whose loop went
    quiet still reaches the store within `FLUSH_INTERVAL_S`, and beats their hearts."""

    def __init__(self) -> None:
        self._runs: weakref.WeakSet[ActiveRun] = weakref.WeakSet()
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
            for run in runs:
                try:
                    run.flush_if_due()
                except Exception:  # kept in the buffer; the next flush or the run's end retries
                    continue
            self._beat(runs)

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
