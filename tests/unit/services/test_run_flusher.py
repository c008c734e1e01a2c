"""The tracking thread's flush retry: a run whose write failed keeps its points and is tried
again on the retry policy's waits (1 s, doubling up to `FLUSH_RETRY_MAX_S`), whatever failed;
the other runs are flushed on every pass meanwhile. Driven pass by pass on a fake clock."""

from __future__ import annotations

from typing import Any

from loopml.errors import Unavailable
from loopml.services.run_flusher import FLUSH_INTERVAL_S, FLUSH_RETRY_MAX_S, RunFlusher


class Run:
    """Stands for an ActiveRun: its flush fails while `down`."""

    def __init__(self, down: bool = False) -> None:
        self.down = down
        self.tries: list[float] = []

    def flush_if_due(self) -> None:
        self.tries.append(NOW[0])
        if self.down:
            raise Unavailable("The store did not answer.", "Retry.")


NOW = [0.0]


def passes(flusher: RunFlusher, runs: list[Any], seconds: float, step: float = 0.1) -> None:
    """The thread's passes every `step` seconds for `seconds`."""
    end = NOW[0] + seconds
    while NOW[0] < end - 1e-9:
        flusher.flush_due(runs)
        NOW[0] = round(NOW[0] + step, 6)


def test_a_failing_run_is_tried_again_on_doubling_waits_and_the_others_go_on() -> None:
    NOW[0] = 0.0
    flusher = RunFlusher(clock=lambda: NOW[0])
    failing, fine = Run(down=True), Run()
    passes(flusher, [failing, fine], 40.0)
    gaps = [round(b - a, 6) for a, b in zip(failing.tries, failing.tries[1:], strict=False)]
    assert gaps[:4] == [FLUSH_INTERVAL_S, 2.0, 4.0, 8.0]
    assert set(gaps[4:]) == {FLUSH_RETRY_MAX_S}
    assert len(fine.tries) == 400  # every pass


def test_once_the_store_answers_the_run_is_flushed_on_every_pass_again() -> None:
    NOW[0] = 0.0
    flusher = RunFlusher(clock=lambda: NOW[0])
    run = Run(down=True)
    passes(flusher, [run], 3.5)  # tried at 0, 1 and 3 s
    assert run.tries == [0.0, 1.0, 3.0]
    run.down = False
    passes(flusher, [run], 10.0)  # waits out the 4 s, then every pass
    assert run.tries[3:] == [round(7.0 + 0.1 * i, 6) for i in range(65)]  # 7.0 ... 13.4
    run.down = True
    tried = len(run.tries)
    passes(flusher, [run], 1.5)
    assert len(run.tries) == tried + 2  # failures counted afresh: again after 1 s
