"""The log sink hands gathered rows to the writer in the background; `flush` and `served_ids`
must still see a row while that hand-over is under way (the demo once monitored a period with
its last 300 rows still in the hand-over, so they were missing from the window)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from loopml.adapters.prediction_log import PredictionLogWriter
from loopml.adapters.prediction_log_reader import PredictionLogReader
from loopml.domain.request_ids import RequestIds
from loopml.serving.frames import ServedRows
from loopml.serving.log_sink import LogSink


class HeldWriter(PredictionLogWriter):
    """The real writer, whose `append` waits until the test lets it go on."""

    def __init__(self, root: str) -> None:
        super().__init__(root, flush_interval_s=3600)  # only an explicit flush writes
        self.entered, self.go_on = threading.Event(), threading.Event()

    def append(self, rows: Any, *, reserved: bool = False) -> int:
        self.entered.set()
        assert self.go_on.wait(10)
        return super().append(rows, reserved=reserved)


def _served(count: int) -> ServedRows:
    ids = RequestIds(lambda: time.time_ns() // 1_000_000, os.urandom).new(count)
    return ServedRows(
        deployment="churn",
        model="churn",
        model_version=1,
        rows=[{"x": i} for i in range(count)],
        outputs=[0] * count,
        request_ids=ids,
        latency_us=100,
        flags=[""] * count,
    )


def _sink_mid_hand_over(tmp_path: Path) -> tuple[LogSink, HeldWriter, list[str]]:
    """A sink whose background thread has taken 300 rows and not yet given them to the writer."""
    writer = HeldWriter(str(tmp_path))
    sink = LogSink(writer, PredictionLogReader(str(tmp_path)), batch_s=0.01)
    served = _served(300)
    assert sink.reserve(300)
    sink.log_predictions(served)
    assert writer.entered.wait(10)
    return sink, writer, list(served.request_ids)


def _release_after(writer: HeldWriter, delay_s: float) -> threading.Thread:
    def release() -> None:
        time.sleep(delay_s)
        writer.go_on.set()

    thread = threading.Thread(target=release)
    thread.start()
    return thread


def test_flush_writes_rows_the_background_hand_over_holds(tmp_path: Path) -> None:
    sink, writer, ids = _sink_mid_hand_over(tmp_path)
    releaser = _release_after(writer, 0.3)
    sink.flush()
    releaser.join()
    assert set(sink.reader.served_ids("churn", ids)) == set(ids)  # on disk, not only queued
    sink.close()


def test_rows_in_the_hand_over_count_as_served(tmp_path: Path) -> None:
    sink, writer, ids = _sink_mid_hand_over(tmp_path)
    releaser = _release_after(writer, 0.3)
    assert sink.served_ids("churn", ids[:5]) == set(ids[:5])  # feedback for them is taken
    releaser.join()
    sink.close()


def test_requests_with_typed_inputs_and_json_rows_gathered_together_are_logged_whole(
    tmp_path: Path,
) -> None:
    import numpy as np

    from loopml.domain.signature import ColumnType
    from loopml.serving.frames import TypedInputs

    root = str(tmp_path)
    writer = PredictionLogWriter(root, flush_interval_s=3600)
    sink = LogSink(writer, PredictionLogReader(root), batch_s=3600)  # hands over on flush only
    first = _served(2)
    none = np.zeros(2, dtype=bool)
    one = TypedInputs(
        ("x", "plan"),
        (ColumnType.FLOAT, ColumnType.STRING),
        (np.array([1.5, 2.5]), np.array(["a", "b"], dtype=object)),
        (none, none),
    )
    integer = (ColumnType.INTEGER,)  # a version with other inputs, all numeric: a matrix
    swapped = TypedInputs(("x",), integer, np.array([[7.0]]), np.array([[False]]))
    batches = [
        ServedRows(**{**first.__dict__, "rows": [], "inputs": one}),
        _served(1),  # inputs Arrow could not type: JSON text
        ServedRows(**{**_served(1).__dict__, "rows": [], "inputs": swapped, "model_version": 2}),
        ServedRows(**{**_served(2).__dict__, "rows": [], "inputs": one}),
    ]
    for served in batches:
        assert sink.reserve(len(served.request_ids))
        sink.log_predictions(served)
    sink.flush()
    sink.close()
    log = PredictionLogReader(root).read("churn", with_feedback=False)
    by_id = dict(zip(log["request_id"].to_pylist(), log.select(
        ["inputs_json", "input.x", "input.plan"]).to_pylist(), strict=True))  # fmt: skip
    logged = [by_id[rid] for served in batches for rid in served.request_ids]
    assert logged == [
        {"inputs_json": None, "input.x": 1.5, "input.plan": "a"},
        {"inputs_json": None, "input.x": 2.5, "input.plan": "b"},
        {"inputs_json": '{"x":0}', "input.x": None, "input.plan": None},
        {"inputs_json": None, "input.x": 7.0, "input.plan": None},
        {"inputs_json": None, "input.x": 1.5, "input.plan": "a"},
        {"inputs_json": None, "input.x": 2.5, "input.plan": "b"},
    ]
    assert writer.stats()["invalid_rows"] == 0


def test_outputs_and_probabilities_are_typed_where_arrow_types_them_and_json_elsewhere(
    tmp_path: Path,
) -> None:
    import numpy as np

    root = str(tmp_path)
    writer = PredictionLogWriter(root, flush_interval_s=3600)
    sink = LogSink(writer, PredictionLogReader(root), batch_s=3600)  # hands over on flush only
    given: list[tuple[Any, Any]] = [
        (np.array([1, 0]), np.array([[0.2, 0.8], [0.9, 0.1]])),  # a classifier's
        (np.array([[1.0, 2.0]]), None),  # a multi-output model's row: JSON text
        (np.array([0.25]), np.array([[0.5, 0.5]])),  # a version with float outputs
        (np.array(["yes"], dtype=object), None),  # text labels, as scikit-learn gives them
        (np.array([{"a": 1}], dtype=object), None),  # objects: JSON text
    ]
    batches = []
    for outputs, probabilities in given:
        served = _served(len(outputs))
        batches.append(
            ServedRows(**{**served.__dict__, "outputs": outputs, "probabilities": probabilities})
        )
        assert sink.reserve(len(outputs))
        sink.log_predictions(batches[-1])
    sink.close()
    log = PredictionLogReader(root).read("churn", with_feedback=False)
    by_id = dict(zip(log["request_id"].to_pylist(), log.select(
        ["output", "output_json", "proba", "proba_json"]).to_pylist(), strict=True))  # fmt: skip
    logged = [list(by_id[rid].values()) for served in batches for rid in served.request_ids]
    assert logged == [
        ["1", None, [0.2, 0.8], None],  # numbers and text in one hand-over: text
        ["0", None, [0.9, 0.1], None],
        [None, "[1.0,2.0]", None, None],
        ["0.25", None, [0.5, 0.5], None],
        ["yes", None, None, None],
        [None, '{"a":1}', None, None],
    ]
    assert log.schema.field("proba").type.value_type.bit_width == 64
