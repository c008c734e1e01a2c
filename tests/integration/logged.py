"""Served rows for the monitoring and alerting tests: a churn-like table, logged for real."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from loopml.adapters.prediction_log import FeedbackRecord, PredictionRecord
from loopml.bootstrap import Workspace, prediction_log_writer
from loopml.domain.request_ids import RequestIds


def frame(rows: int, seed: int, *, shift: float = 0.0, new_plan: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    plans = rng.choice(["basic", "pro", "family"], rows, p=[0.5, 0.3, 0.2]).astype(object)
    plans[: round(new_plan * rows)] = "student"
    return pd.DataFrame(
        {
            "tenure": rng.integers(0, 72, rows).astype(float) + shift * 20.0,
            "monthly": rng.normal(60.0, 15.0, rows),
            "plan": plans,
        }
    )


def serve(
    ws: Workspace,
    frame: pd.DataFrame,
    *,
    at_us: int,
    shadow_rows: int = 0,
    outputs: Sequence[object] | None = None,
    labels: Sequence[object] | None = None,
) -> None:
    """Log `frame` as rows served by churn-prod just before `at_us` (plus shadow copies), with
    `outputs` (default 0) and, when given, the `labels` fed back for them. Request ids are
    UUIDv7s made at `at_us`, as a server makes them."""
    writer = prediction_log_writer(ws.settings)
    rows = frame.to_dict("records")
    answers = list(outputs) if outputs is not None else [0] * len(rows)
    ids = RequestIds(lambda: at_us // 1_000, os.urandom).new(len(rows) + shadow_rows)
    records = [
        PredictionRecord(
            ids[i],
            at_us - 1_000 * (i + 1),
            "churn-prod",
            "churn",
            1,
            json.dumps(row),
            json.dumps(answer),
            800,
            "",
            False,
        )
        for i, (row, answer) in enumerate(zip(rows, answers, strict=True))
    ]
    if labels is not None:
        writer.append_feedback(
            [
                FeedbackRecord(ids[i], at_us, "churn-prod", json.dumps(label))
                for i, label in enumerate(labels)
                if label is not None  # no label came for this row
            ]
        )
    shadow = [
        PredictionRecord(
            ids[len(rows) + i],
            at_us - 1_000 * (i + 1),
            "churn-prod",
            "churn",
            2,
            json.dumps({"tenure": 999.0, "monthly": 999.0, "plan": "shadow"}),
            "1",
            800,
            "",
            True,
        )
        for i in range(shadow_rows)
    ]
    writer.append(records + shadow)
    writer.close()
