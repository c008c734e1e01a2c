"""The server's prediction log: each served row and each label, into the durable writer.

Rows are appended against room the server reserved before answering (see
`loopml.adapters.prediction_log` for the back-pressure rule), so an answered row is a logged row.

A request's rows are added to columns the sink gathers (a list extend per column, a few
microseconds; its inputs, outputs and probabilities are the typed arrays the model took and
gave, kept as they are, never a JSON text per row), and every `batch_s` (50 ms) or
`batch_rows` rows the gathered columns go to the writer as one Arrow table: building a table
costs some 50 us whatever its size, which a one-row request must not pay on its own. Gathered
rows hold their reservation in the writer until they are handed over, so back-pressure sees
them, and `flush`/`close` hand them over first.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from loopml.adapters.prediction_log import FEEDBACK_SCHEMA, PREDICTION_SCHEMA, now_us
from loopml.adapters.prediction_log_typed import common_type
from loopml.domain.jsonable import to_json
from loopml.ports import PredictionReader, PredictionWriter
from loopml.ports.prediction_log import OUTPUT, PROBA
from loopml.serving.frames import ServedRows, TypedInputs, arrow_inputs

log = logging.getLogger("loopml.serving")


def _json(value: Any) -> str:
    return to_json(value).decode()


class _Gathered:
    """Columns of rows not yet handed to the writer, in the log's schema, and the typed input
    columns of the requests that had them (an Arrow table each, kept as it came)."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.columns: dict[str, list[Any]] = {name: [] for name in schema.names}
        self.rows = 0
        self.inputs: list[tuple[int, TypedInputs]] = []
        """(the first of its rows, the typed inputs of its rows), request by request."""
        self.typed: dict[str, list[tuple[int, Any]]] = {OUTPUT: [], PROBA: []}
        """Per typed column, (the first of its rows, a numpy array of their values): outputs
        as one value per row, probabilities as a row of floats per row."""

    def tables(self) -> list[pa.Table]:
        """The gathered rows as tables for the writer: one per run of requests whose typed
        input columns agree (rows logged as JSON text are a run of their own)."""
        table = pa.table(self.columns, schema=self.schema)
        for name, parts in self.typed.items():
            if parts:
                table = table.append_column(name, _placed(parts, self.rows))
        runs: list[tuple[int, int, list[TypedInputs]]] = []
        position = 0
        for start, inputs in self.inputs:
            if start > position:
                runs.append((position, start, []))
            stop = start + inputs.rows
            if runs and runs[-1][2] and runs[-1][1] == start and runs[-1][2][0].key == inputs.key:
                runs[-1] = (runs[-1][0], stop, [*runs[-1][2], inputs])
            else:
                runs.append((start, stop, [inputs]))
            position = stop
        if position < self.rows:
            runs.append((position, self.rows, []))
        return [_with_inputs(table.slice(a, b - a), typed) for a, b, typed in runs]


def _with_inputs(rows: pa.Table, typed: list[TypedInputs]) -> pa.Table:
    """`rows` with their typed input columns; as JSON text when Arrow cannot type them."""
    if not typed:
        return rows
    inputs = arrow_inputs(typed)
    if inputs is None:
        text = [_json(row) for part in typed for row in part.records()]
        where = rows.column_names.index("inputs_json")
        return rows.set_column(where, "inputs_json", pa.array(text, pa.string()))
    for name in inputs.column_names:
        rows = rows.append_column(name, inputs[name])
    return rows


def _typed_outputs(values: Any) -> Any:
    """`values` as a numpy array Arrow types as the log's `output` column (int64, float64,
    bool or text), or None when they are not one such value per row (logged as JSON)."""
    if not isinstance(values, np.ndarray) or values.ndim != 1:
        return None
    kind = values.dtype.kind
    if kind == "u" and values.dtype.itemsize == 8 and values.size and values.max() >= 2**63:
        return None
    if kind in "iu":
        return values.astype(np.int64, copy=False)
    if kind == "f":
        return values.astype(np.float64, copy=False)
    if kind in "bU" or (kind == "O" and set(map(type, values)) == {str}):
        return values
    return None


def _typed_probabilities(values: Any) -> Any:
    """Class probabilities as a float64 matrix (a row per served row), or None (JSON)."""
    if not isinstance(values, np.ndarray) or values.ndim != 2 or values.dtype.kind not in "iuf":
        return None
    return values.astype(np.float64, copy=False)


def _listed(values: Any) -> Any:
    return values.tolist() if isinstance(values, np.ndarray) else values


def _arrow(values: Any) -> pa.Array:
    if values.ndim == 2:  # a list of floats per row
        count, width = values.shape
        offsets = pa.array(np.arange(0, count * width + 1, width, dtype=np.int32))
        return pa.ListArray.from_arrays(offsets, pa.array(values.ravel()))
    return pa.array(values)


def _placed(parts: list[tuple[int, Any]], rows: int) -> pa.Array:
    """One column of `rows` rows holding each part's values from its first row on, null
    between (rows whose values went to JSON text); parts of different types, from two model
    versions, meet as float64 when both are numbers, else as text."""
    arrays = [_arrow(values) for _, values in parts]
    kind = common_type(array.type for array in arrays)
    arrays = [array if array.type == kind else array.cast(kind) for array in arrays]
    values = pa.concat_arrays(arrays) if len(arrays) > 1 else arrays[0]
    if len(values) == rows:  # every row typed: the parts follow each other
        return values
    index = np.zeros(rows, dtype=np.int64)
    typed = np.zeros(rows, dtype=bool)
    position = 0
    for start, part in parts:
        index[start : start + len(part)] = np.arange(position, position + len(part))
        typed[start : start + len(part)] = True
        position += len(part)
    return values.take(pa.array(index, mask=~typed))


def _add_predictions(into: _Gathered, served: ServedRows, when_us: int) -> None:
    count = len(served.request_ids)
    c = into.columns
    c["request_id"].extend(served.request_ids)
    c["time_us"].extend([when_us] * count)
    c["deployment"].extend([served.deployment] * count)
    c["model"].extend([served.model] * count)
    c["model_version"].extend([served.model_version] * count)
    if served.inputs is not None:  # typed columns: no JSON text, no per-row object
        into.inputs.append((into.rows, served.inputs))
        c["inputs_json"].extend([None] * count)
    else:
        c["inputs_json"].extend([_json(row) for row in served.rows])
    outputs = _typed_outputs(served.outputs)
    if outputs is not None:
        into.typed[OUTPUT].append((into.rows, outputs))
        c["output_json"].extend([None] * count)
    else:
        c["output_json"].extend([_json(output) for output in _listed(served.outputs)])
    c["latency_us"].extend([served.latency_us] * count)
    c["flags"].extend(served.flags)
    c["shadow"].extend([served.shadow] * count)
    probabilities = _typed_probabilities(served.probabilities)
    if probabilities is not None:
        into.typed[PROBA].append((into.rows, probabilities))
        c["proba_json"].extend([None] * count)
    else:
        given = served.probabilities
        listed = [None] * count if given is None or not len(given) else _listed(given)
        c["proba_json"].extend([None if p is None else _json(p) for p in listed])
    c["client_id"].extend(served.client_ids or [None] * count)
    c["event_time_us"].extend(served.event_times_us or [None] * count)
    into.rows += count


def _add_feedback(
    into: _Gathered, deployment: str, items: Sequence[tuple[str, Any]], when_us: int
) -> None:
    c = into.columns
    c["request_id"].extend([request_id for request_id, _ in items])
    c["time_us"].extend([when_us] * len(items))
    c["deployment"].extend([deployment] * len(items))
    c["label_json"].extend([_json(label) for _, label in items])
    into.rows += len(items)


class LogSink:
    def __init__(
        self,
        writer: PredictionWriter,
        reader: PredictionReader,
        *,
        batch_s: float = 0.05,
        batch_rows: int = 5_000,
    ) -> None:
        self.writer = writer
        self.reader = reader
        self.predictions_logged = 0
        self.labels_logged = 0
        """Rows and labels handed to the log by this process (counted by this one sink; the
        writer's `written_rows` says how many reached storage)."""
        self._batch_rows = batch_rows
        self._lock = threading.Lock()
        self._handing = threading.Lock()
        """Held from taking the gathered rows until the writer has them, so no row is ever in
        neither place: `flush` then writes it, and `served_ids` finds it."""
        self._predictions = _Gathered(PREDICTION_SCHEMA)
        self._feedback = _Gathered(FEEDBACK_SCHEMA)
        self._stop = threading.Event()
        self._full = threading.Event()
        """Set when `batch_rows` rows are gathered: the sink's thread hands them over at once
        (never the request's thread, which would answer later by the table's making)."""
        self._thread = threading.Thread(
            target=self._hand_over_every, args=(batch_s,), name="log-sink", daemon=True
        )
        self._thread.start()

    @property
    def settle_s(self) -> float:
        """How long after it is served a row is in the log at the latest, when the store works
        (the flush interval, plus a second for the write itself and the gathering)."""
        return self.writer.flush_interval_s + 1.0

    def reserve(self, rows: int) -> bool:
        return self.writer.reserve(rows)

    def release(self, rows: int) -> None:
        self.writer.release(rows)

    def log_predictions(self, served: ServedRows) -> None:
        """Take the rows against room reserved for them."""
        when = now_us()
        with self._lock:
            _add_predictions(self._predictions, served, when)
            self.predictions_logged += len(served.request_ids)
            full = self._predictions.rows >= self._batch_rows
        if full:
            self._full.set()

    def log_feedback(self, deployment: str, items: Sequence[tuple[str, Any]]) -> None:
        """Take the labels against room reserved for them."""
        when = now_us()
        with self._lock:
            _add_feedback(self._feedback, deployment, items, when)
            self.labels_logged += len(items)
            full = self._feedback.rows >= self._batch_rows
        if full:
            self._full.set()

    def hand_over(self) -> None:
        """Give the writer every row gathered so far, as one table of each kind."""
        with self._handing:
            with self._lock:
                predictions, self._predictions = self._predictions, _Gathered(PREDICTION_SCHEMA)
                feedback, self._feedback = self._feedback, _Gathered(FEEDBACK_SCHEMA)
            if predictions.rows:
                for table in predictions.tables():
                    self.writer.append(table, reserved=True)
            if feedback.rows:
                for table in feedback.tables():
                    self.writer.append_feedback(table, reserved=True)

    def _hand_over_every(self, batch_s: float) -> None:
        while not self._stop.is_set():
            self._full.wait(batch_s)
            self._full.clear()
            try:
                self.hand_over()
            except Exception:  # the thread must outlive any bug in one hand-over
                log.exception("the prediction log sink could not hand rows to the writer")

    def served_ids(self, deployment: str, request_ids: list[str]) -> set[str]:
        """Which of `request_ids` were served by `deployment`: gathered or queued here, or in
        the log."""
        wanted = set(request_ids)
        with self._handing:  # no row is between the gathered ones and the writer's queue
            with self._lock:
                gathered = self._predictions.columns
                here = {
                    rid
                    for rid, name in zip(
                        gathered["request_id"], gathered["deployment"], strict=True
                    )
                    if name == deployment and rid in wanted
                }
            queued = here | (self.writer.pending_request_ids(deployment) & wanted)
        rest = [request_id for request_id in request_ids if request_id not in queued]
        return queued | self.reader.served_ids(deployment, rest) if rest else queued

    def stats(self) -> dict[str, int]:
        """The writer's counters, and `predictions_logged` and `labels_logged`."""
        return {
            **self.writer.stats(),
            "predictions_logged": self.predictions_logged,
            "labels_logged": self.labels_logged,
        }

    def flush(self, timeout_s: float = 10.0) -> None:
        """Write every row taken so far (Unavailable if the store refuses it for `timeout_s`)."""
        self.hand_over()
        self.writer.flush(timeout_s)

    def close(self) -> None:
        """Hand over what is gathered, then flush and stop the writer."""
        self._stop.set()
        self._full.set()
        self._thread.join(10)
        self.hand_over()
        self.writer.close()
