"""The gate's latency guard on real models: a candidate 20 ms slower per call than the champion
fails `latency_p99_ms <= 1.2 * champion.latency_p99_ms`, and the result says how the timing went
and what the intervals were."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from slow_step import wait_20ms

from loopml.bootstrap import open_workspace
from loopml.monitoring.gate import gate
from loopml.monitoring.latency import BLOCK_CALLS, MIN_ROUNDS
from loopml.settings import Settings

GUARD = "latency_p99_ms <= 1.2 * champion.latency_p99_ms"


def test_a_model_20_ms_slower_per_call_fails_the_latency_guard(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=300)})
    frame["churned"] = (frame["x"] + rng.normal(scale=0.3, size=300) > 0).astype(int)
    frame.to_csv(tmp_path / "holdout.csv", index=False)
    inputs, labels = frame[["x"]], frame["churned"]
    ws = open_workspace(make_settings())
    try:
        ws.data.add(tmp_path / "holdout.csv", name="holdout", project="default")
        fast = LogisticRegression().fit(inputs, labels)
        slow = make_pipeline(FunctionTransformer(wait_20ms), LogisticRegression())
        for model in (fast, slow.fit(inputs, labels)):
            ws.registry.register(model, "churn", project="default", input_example=inputs.head(3))
        ws.registry.promote("churn", 1, project="default")

        verdict = gate(ws, model="churn", candidate="2", data="holdout@1", rules=[GUARD])
    finally:
        ws.close()

    assert not verdict.passed
    ((rule, held, detail),) = verdict.rules
    assert (rule, held) == (GUARD, False)
    assert "beyond the bound with confidence: ratio " in detail
    report = verdict.latency
    assert report is not None
    assert report.ratio is not None
    assert report.ratio["latency_p99_ms"].low > 1.2
    assert report.calls >= MIN_ROUNDS * BLOCK_CALLS
    assert report.calls == report.blocks * report.block_calls
    text = verdict.markdown("Gate churn 2 on holdout@1")
    assert f"Latency: {report.calls:,} single-row calls per model in " in text
    assert "candidate and champion taking turns in blocks of 10 calls" in text
    assert f"| latency_p99_ms | {report.candidate['latency_p99_ms']} ms | " in text
    assert f"| `{GUARD}` | FAIL | {detail} |" in text
