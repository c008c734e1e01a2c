"""Typed outputs and probabilities in the prediction log: a served row's output is a column of
the model's type (`output`) and its class probabilities a list of floats (`proba`), never a JSON
text per row; monitoring, retraining data, `show` and lake tools read them, beside rows an older
server logged as JSON text, and score them exactly as they scored the JSON."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from starlette.testclient import TestClient

from loopml.adapters.prediction_log import PredictionLogWriter
from loopml.adapters.prediction_log_compaction import LogCompactor
from loopml.adapters.prediction_log_files import LogStorage
from loopml.adapters.prediction_log_reader import PredictionLogReader
from loopml.bootstrap import open_workspace, prediction_log_reader, prediction_log_writer
from loopml.domain.request_ids import RequestIds
from loopml.monitoring.column_kinds import CATEGORICAL
from loopml.monitoring.performance import PerformanceCounts
from loopml.monitoring.window import read_outputs, read_scores
from loopml.serving.app import create_app
from loopml.serving.host import ModelHost
from loopml.serving.log_sink import LogSink
from loopml.settings import Settings

HOUR_US = 3_600_000_000
NOV_27 = 1_795_737_600_000_000  # 2026-11-27T00:00:00Z
LOG_COLUMNS = ["output_json", "output", "proba_json", "proba"]


def test_a_served_classifiers_outputs_and_probabilities_are_typed_columns(
    make_settings: Callable[..., Settings],
) -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(200, 2)), columns=["a", "b"])
    model = LogisticRegression().fit(x, (x["a"] > 0).astype(int))
    ws = open_workspace(make_settings())
    ws.registry.register(model, "churn", project="default", input_example=x.head(3))
    host = ModelHost(ws, "churn", "churn")
    sink = LogSink(prediction_log_writer(ws.settings), prediction_log_reader(ws.settings))
    rows = x.head(50).to_dict(orient="records")
    with TestClient(create_app({"churn": host}, sink, log_probabilities=True)) as client:
        answer = client.post("/predict", json={"rows": rows, "probabilities": True}).json()
    sink.close()
    host.stop()
    (file,) = Path(ws.settings.home).rglob("part-*.parquet")
    written = pq.read_table(file)
    assert written.schema.field("output").type == pa.int64()
    assert written.schema.field("proba").type == pa.list_(pa.float64())
    assert written["output_json"].null_count == written["proba_json"].null_count == 50
    assert written["output"].to_pylist() == answer["predictions"]
    assert written["proba"].to_pylist() == answer["probabilities"]
    shown = prediction_log_reader(ws.settings).get(answer["request_ids"][7])
    assert shown is not None  # `show` gives them as JSON text, as it always did
    assert json.loads(shown["output_json"]) == answer["predictions"][7]
    assert json.loads(shown["proba_json"]) == answer["probabilities"][7]
    ws.close()


def _rows(count: int, at_us: int, seed: int) -> tuple[list[str], Any, Any]:
    """Ids, class outputs ("yes"/"no") and probabilities of `count` served rows."""
    rng = np.random.default_rng(seed)
    yes = rng.uniform(size=count)
    outputs = np.where(yes > 0.5, "yes", "no").astype(object)
    ids = RequestIds(lambda: at_us // 1000, os.urandom).new(count)
    return ids, outputs, np.column_stack([1 - yes, yes])


def _table(
    deployment: str, ids: list[str], at_us: int, outputs: Any, proba: Any, *, typed: bool
) -> pa.Table:
    count = len(ids)
    columns: dict[str, Any] = {
        "request_id": pa.array(ids),
        "time_us": pa.array(range(at_us, at_us + count), pa.int64()),
        "deployment": pa.array([deployment] * count),
        "model": pa.array(["churn-model"] * count),
        "model_version": pa.array([1] * count, pa.int64()),
        "latency_us": pa.array([100] * count, pa.int64()),
        "flags": pa.array([""] * count),
        "shadow": pa.array([False] * count),
    }
    if typed:
        columns["output"] = pa.array(outputs.tolist(), pa.string())
        columns["proba"] = pa.array(proba.tolist(), pa.list_(pa.float64()))
    else:  # as a server before typed outputs wrote them
        columns["output_json"] = pa.array([json.dumps(o) for o in outputs.tolist()])
        columns["proba_json"] = pa.array([json.dumps(p) for p in proba.tolist()])
    return pa.table(columns)


@pytest.fixture
def old_and_new(tmp_path: Path) -> str:
    """Deployment `churn`: 400 rows logged as JSON text by an older server, then 600 typed; and
    deployment `copy`: the same 1,000 rows, all typed. A label for every third row."""
    root = str(tmp_path)
    writer = PredictionLogWriter(root, flush_interval_s=60.0)
    old, new = _rows(400, NOV_27, 1), _rows(600, NOV_27 + 60_000_000, 2)
    labels = []
    try:
        for deployment in ("churn", "copy"):
            for (ids, outputs, proba), at_us in ((old, NOV_27), (new, NOV_27 + 60_000_000)):
                typed = deployment == "copy" or at_us > NOV_27
                writer.append(_table(deployment, ids, at_us, outputs, proba, typed=typed))
                truth = np.where(np.arange(len(ids)) % 7 == 0, "no", outputs)  # some wrong
                labels += [(deployment, i, t) for i, t in list(zip(ids, truth, strict=True))[::3]]
        for deployment, request_id, label in labels:
            writer.append_feedback(_feedback(deployment, request_id, label))
        writer.flush()
    finally:
        writer.close()
    return root


def _feedback(deployment: str, request_id: str, label: str) -> pa.Table:
    return pa.table({
        "request_id": [request_id], "time_us": pa.array([NOV_27 + HOUR_US], pa.int64()),
        "deployment": [deployment], "label_json": [json.dumps(label)],
    })  # fmt: skip


def test_old_json_rows_and_typed_rows_read_as_one_column(old_and_new: str) -> None:
    log = PredictionLogReader(old_and_new).read("churn", columns=LOG_COLUMNS)
    assert log["output"].null_count == log["proba"].null_count == 400
    outputs = read_outputs(log, CATEGORICAL)
    copy = PredictionLogReader(old_and_new).read("copy", columns=LOG_COLUMNS)
    assert outputs.table["value"].to_pylist() == copy["output"].to_pylist()
    assert read_scores(log).to_pylist() == copy["proba"].to_pylist()
    assert outputs.unreadable == ()


def _as_json(column: pa.ChunkedArray) -> pa.ChunkedArray:
    texts = [None if v is None else json.dumps(v) for v in column.to_pylist()]
    return pa.chunked_array([pa.array(texts, pa.string())])


def test_monitoring_scores_typed_outputs_as_it_scored_json(old_and_new: str) -> None:
    reader = PredictionLogReader(old_and_new)
    typed, mixed = (reader.read(name, columns=LOG_COLUMNS) for name in ("copy", "churn"))
    as_json = PerformanceCounts((CATEGORICAL, CATEGORICAL))  # the same rows all as JSON text
    as_json.add(_as_json(typed["output"]), typed["label_json"], _as_json(typed["proba"]))
    reports = []
    for table in (typed, mixed):
        counts = PerformanceCounts((CATEGORICAL, CATEGORICAL))
        counts.add_read(read_outputs(table, CATEGORICAL), table["label_json"], read_scores(table))
        reports.append(counts.report())
    assert reports[0] == reports[1] == as_json.report()
    assert reports[0]["labelled_rows"] == 334
    assert 0.85 < reports[0]["metrics"]["accuracy"] < 0.97  # every 7th label is "no"
    assert "roc_auc" in reports[0]["metrics"]


def test_compaction_and_lake_tools_keep_the_typed_outputs(old_and_new: str) -> None:
    import duckdb

    reader = PredictionLogReader(old_and_new)
    before = reader.read("churn")
    LogCompactor(LogStorage(old_and_new), clock_us=lambda: NOV_27 + 30 * 24 * HOUR_US).compact(
        min_age_s=0
    )
    (merged, *_) = Path(old_and_new).rglob("compact-*.parquet")
    assert {"output", "proba"} <= set(pq.read_schema(merged).names)
    assert reader.read("churn").equals(before)
    pattern = f"{old_and_new}/predictions/deployment=copy/date=*/hour=*/*.parquet"
    assert duckdb.sql(
        "select count(*) filter (where output = 'yes'), round(avg(proba[2]), 6) "
        f"from read_parquet('{pattern}', hive_partitioning = true, union_by_name = true)"
    ).fetchall() == [
        (
            sum(v == "yes" for v in before["output"].to_pylist()[400:])
            + sum(json.loads(t) == "yes" for t in before["output_json"].to_pylist()[:400]),
            round(float(np.mean([p[1] for p in reader.read("copy")["proba"].to_pylist()])), 6),
        )
    ]
