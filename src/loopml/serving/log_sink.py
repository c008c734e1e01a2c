"""The server's prediction log: each served row and each label, into the durable writer.

Rows are appended against room the server reserved before answering (see
`loopml.adapters.prediction_log` for the back-pressure rule), so an answered row is a logged row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from loopml.adapters.prediction_log import FEEDBACK_SCHEMA, PREDICTION_SCHEMA, now_us
from loopml.domain.jsonable import to_json
from loopml.ports import PredictionReader, PredictionWriter
from loopml.serving.frames import ServedRows


def _json(value: Any) -> str:
    return to_json(value).decode()


def predictions_table(served: ServedRows, when_us: int) -> pa.Table:
    """The served rows as the log's columns, built column by column (no per-row record)."""
    count = len(served.request_ids)
    columns: dict[str, Any] = {
        "request_id": list(served.request_ids),
        "time_us": pa.repeat(pa.scalar(when_us, pa.int64()), count),
        "deployment": pa.repeat(pa.scalar(served.deployment, pa.string()), count),
        "model": pa.repeat(pa.scalar(served.model, pa.string()), count),
        "model_version": pa.repeat(pa.scalar(served.model_version, pa.int64()), count),
        "inputs_json": [_json(row) for row in served.rows],
        "output_json": [_json(output) for output in served.outputs],
        "latency_us": pa.repeat(pa.scalar(served.latency_us, pa.int64()), count),
        "flags": list(served.flags),
        "shadow": pa.repeat(pa.scalar(served.shadow, pa.bool_()), count),
        "proba_json": (
            None
            if served.probabilities is None
            else [None if p is None else _json(p) for p in served.probabilities]
        ),
        "client_id": None if served.client_ids is None else list(served.client_ids),
        "event_time_us": None if served.event_times_us is None else list(served.event_times_us),
    }
    for name, values in columns.items():
        if values is None:
            columns[name] = pa.nulls(count, PREDICTION_SCHEMA.field(name).type)
    return pa.table(columns, schema=PREDICTION_SCHEMA)


def feedback_table(deployment: str, items: Sequence[tuple[str, Any]], when_us: int) -> pa.Table:
    """Labels as the log's feedback columns."""
    count = len(items)
    return pa.table(
        {
            "request_id": [request_id for request_id, _ in items],
            "time_us": pa.repeat(pa.scalar(when_us, pa.int64()), count),
            "deployment": pa.repeat(pa.scalar(deployment, pa.string()), count),
            "label_json": [_json(label) for _, label in items],
        },
        schema=FEEDBACK_SCHEMA,
    )


class LogSink:
    def __init__(self, writer: PredictionWriter, reader: PredictionReader) -> None:
        self.writer = writer
        self.reader = reader
        self.predictions_logged = 0
        self.labels_logged = 0
        """Rows and labels handed to the log by this process (counted by this one sink; the
        writer's `written_rows` says how many reached storage)."""

    @property
    def settle_s(self) -> float:
        """How long after it is served a row is in the log at the latest, when the store works
        (the flush interval, plus a second for the write itself)."""
        return self.writer.flush_interval_s + 1.0

    def reserve(self, rows: int) -> bool:
        return self.writer.reserve(rows)

    def release(self, rows: int) -> None:
        self.writer.release(rows)

    def log_predictions(self, served: ServedRows) -> None:
        """Append the rows against room reserved for them."""
        table = predictions_table(served, now_us())
        self.predictions_logged += table.num_rows
        self.writer.append(table, reserved=True)

    def log_feedback(self, deployment: str, items: Sequence[tuple[str, Any]]) -> None:
        """Append the labels against room reserved for them."""
        self.labels_logged += len(items)
        self.writer.append_feedback(feedback_table(deployment, items, now_us()), reserved=True)

    def served_ids(self, deployment: str, request_ids: list[str]) -> set[str]:
        """Which of `request_ids` were served by `deployment`: queued here, or in the log."""
        queued = self.writer.pending_request_ids(deployment) & set(request_ids)
        rest = [request_id for request_id in request_ids if request_id not in queued]
        return queued | self.reader.served_ids(deployment, rest) if rest else queued

    def stats(self) -> dict[str, int]:
        """The writer's counters, and `predictions_logged` and `labels_logged`."""
        return {
            **self.writer.stats(),
            "predictions_logged": self.predictions_logged,
            "labels_logged": self.labels_logged,
        }

    def close(self) -> None:
        self.writer.close()
