"""The server's prediction log: each served row and each label, into the durable writer.

Rows are appended against room the server reserved before answering (see
`loopml.adapters.prediction_log` for the back-pressure rule), so an answered row is a logged row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from loopml.adapters.prediction_log import (
    FeedbackRecord,
    PredictionLogWriter,
    PredictionRecord,
    now_us,
)
from loopml.adapters.prediction_log_reader import PredictionLogReader
from loopml.serving.frames import ServedRows

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _json(value: Any) -> str:
    return orjson.dumps(value, option=_OPTIONS, default=str).decode()


class LogSink:
    def __init__(self, writer: PredictionLogWriter, reader: PredictionLogReader | None = None):
        self.writer = writer
        self.reader = reader or PredictionLogReader(storage=writer.storage)
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
        when = now_us()
        count = len(served.request_ids)
        self.predictions_logged += count
        self.writer.append(
            [
                PredictionRecord(
                    request_id,
                    when,
                    served.deployment,
                    served.model,
                    served.model_version,
                    _json(row),
                    _json(output),
                    served.latency_us,
                    flag,
                    served.shadow,
                    None if proba is None else _json(proba),
                    client_id,
                    event_us,
                )
                for request_id, row, output, flag, proba, client_id, event_us in zip(
                    served.request_ids,
                    served.rows,
                    served.outputs,
                    served.flags,
                    served.probabilities or [None] * count,
                    served.client_ids or [None] * count,
                    served.event_times_us or [None] * count,
                    strict=True,
                )
            ],
            reserved=True,
        )

    def log_feedback(self, deployment: str, items: Sequence[tuple[str, Any]]) -> None:
        """Append the labels against room reserved for them."""
        when = now_us()
        self.labels_logged += len(items)
        self.writer.append_feedback(
            [
                FeedbackRecord(request_id, when, deployment, _json(label))
                for request_id, label in items
            ],
            reserved=True,
        )

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
