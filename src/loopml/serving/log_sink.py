"""The server's prediction log: each served row and each label, into the durable writer."""

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
from loopml.serving.frames import ServedRows

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _json(value: Any) -> str:
    return orjson.dumps(value, option=_OPTIONS, default=str).decode()


class LogSink:
    def __init__(self, writer: PredictionLogWriter) -> None:
        self.writer = writer

    def log_predictions(self, served: ServedRows) -> None:
        when = now_us()
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
                )
                for request_id, row, output, flag, proba in zip(
                    served.request_ids,
                    served.rows,
                    served.outputs,
                    served.flags,
                    served.probabilities or [None] * len(served.request_ids),
                    strict=True,
                )
            ]
        )

    def log_feedback(self, deployment: str, items: Sequence[tuple[str, Any]]) -> None:
        when = now_us()
        self.writer.append_feedback(
            [
                FeedbackRecord(request_id, when, deployment, _json(label))
                for request_id, label in items
            ]
        )

    def stats(self) -> dict[str, int]:
        return self.writer.stats()

    def close(self) -> None:
        self.writer.close()
