"""A prediction log that never lies: every served row has its own server-made id (the client's
V2 `id` kept beside it), every answered row is in the log (a log that cannot keep up gets 503s
before anything is answered, never an answer and a drop), and `/feedback` labels only rows this
deployment served, with labels of the model's output type, after a restart and across worker
processes too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from loopml.adapters.prediction_log import PredictionLogWriter
from loopml.adapters.prediction_log_reader import PredictionLogReader
from loopml.bootstrap import Workspace, open_workspace, prediction_log_reader
from loopml.domain.request_ids import unix_ms_of
from loopml.serving.app import create_app
from loopml.serving.host import ModelHost
from loopml.serving.log_sink import LogSink
from loopml.settings import Settings
from loopml.testing.team_server import free_port

ROW = {"tenure": 3.0, "monthly": 29.5}


def _register(settings: Settings) -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"tenure": rng.integers(0, 72, 200).astype(float), "monthly": rng.normal(60, 15, 200)}
    )
    model = LogisticRegression().fit(frame, (frame["tenure"] < 20).astype(int))
    ws = open_workspace(settings)
    ws.registry.register(model, "churn", project="default", input_example=frame.head(3))
    ws.close()


@pytest.fixture
def workspace(make_settings: Callable[..., Settings]) -> Iterator[Workspace]:
    settings = make_settings()
    _register(settings)
    ws = open_workspace(settings)
    yield ws
    ws.close()


@contextmanager
def _app(ws: Workspace, writer: PredictionLogWriter | None = None) -> Iterator[TestClient]:
    host = ModelHost(ws, "churn", "churn")
    url = ws.settings.artifacts_url
    sink = LogSink(writer or PredictionLogWriter(url), PredictionLogReader(url))
    with TestClient(create_app({"churn": host}, sink)) as client:
        yield client
    sink.close()


def _v2(rows: int, request_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "inputs": [
            {"name": "tenure", "shape": [rows], "datatype": "FP64", "data": [3.0] * rows},
            {"name": "monthly", "shape": [rows], "datatype": "FP64", "data": [29.5] * rows},
        ]
    }
    if request_id is not None:
        body["id"] = request_id
    return body


def _logged(ws: Workspace) -> Any:
    return prediction_log_reader(ws.settings).read("churn", with_feedback=False)


# --- ids ------------------------------------------------------------------------------------------


def test_v2_rows_get_distinct_server_ids_and_the_client_id_is_kept_beside(
    workspace: Workspace,
) -> None:
    with _app(workspace) as client:
        first = client.post("/v2/models/churn/infer", json=_v2(3)).json()
        second = client.post("/v2/models/churn/infer", json=_v2(2)).json()
        named = client.post("/v2/models/churn/infer", json=_v2(2, "client-7")).json()
        predicted = client.post("/predict", json={"rows": [ROW, ROW]}).json()
    assert "id" not in first
    assert named["id"] == "client-7"  # echoed, as the protocol says
    ids = [
        *first["parameters"]["request_ids"],
        *second["parameters"]["request_ids"],
        *named["parameters"]["request_ids"],
        *predicted["request_ids"],
    ]
    assert len(ids) == len(set(ids)) == 9  # per row and per request: no `v2-0` twice
    assert all(uuid.UUID(i).version == 7 and unix_ms_of(i) is not None for i in ids)
    assert ids == sorted(ids)  # time-ordered
    table = _logged(workspace)
    client_ids = dict(
        zip(table["request_id"].to_pylist(), table["client_id"].to_pylist(), strict=True)
    )
    assert set(client_ids) == set(ids)
    named_ids = set(named["parameters"]["request_ids"])
    assert {i for i, c in client_ids.items() if c == "client-7"} == named_ids
    assert all(client_ids[i] is None for i in set(ids) - named_ids)


def test_a_v2_request_over_the_row_limit_is_refused_before_any_model_work(
    workspace: Workspace,
) -> None:
    body = _v2(1)
    body["inputs"][0]["shape"] = body["inputs"][1]["shape"] = [400_000]
    with _app(workspace) as client:
        started = time.perf_counter()
        answer = client.post("/v2/models/churn/infer", json=body)
        took = time.perf_counter() - started
        batch = client.post("/v2/models/churn/infer", json=_v2(10_001))
    assert answer.status_code == 413
    assert "declares 400000 rows; at most 10000" in answer.json()["error"]
    assert took < 1.0
    assert batch.status_code == 413
    assert _logged(workspace).num_rows == 0


# --- feedback -------------------------------------------------------------------------------------


def test_feedback_is_kept_only_for_ids_served_and_labels_of_the_output_type(
    workspace: Workspace,
) -> None:
    with _app(workspace) as client:
        ids = client.post("/predict", json={"rows": [ROW, ROW]}).json()["request_ids"]
        never = "019a0000-0000-7000-8000-000000000000"  # a UUIDv7 from 2025: never issued
        unknown = client.post("/feedback", json={"request_id": never, "label": 1})
        old_style = client.post("/feedback", json={"request_id": "r1-0", "label": 1})
        as_object = client.post("/feedback", json={"request_id": ids[0], "label": {"x": 1}})
        as_list = client.post("/feedback", json={"request_id": ids[0], "label": [1]})
        as_text = client.post("/feedback", json={"request_id": ids[0], "label": "yes"})
        as_null = client.post("/feedback", json={"request_id": ids[0], "label": None})
        as_true = client.post("/feedback", json={"request_id": ids[0], "label": True})
        mixed = client.post(
            "/feedback",
            json=[{"request_id": ids[0], "label": 1}, {"request_id": never, "label": 0}],
        )
        fine = client.post(
            "/feedback",
            json=[{"request_id": ids[0], "label": 1.0}, {"request_id": ids[1], "label": 0}],
        )
    assert (unknown.status_code, old_style.status_code) == (404, 404)
    assert f"never served request id {never!r}" in unknown.json()["error"]
    for refused in (as_object, as_list, as_text, as_null, as_true):
        assert refused.status_code == 422, refused.text
        assert "Feedback item 0: the label is" in refused.json()["error"]
    assert "the model's output 'prediction' is an integer" in as_object.json()["error"]
    assert mixed.status_code == 404  # all or nothing: item 0 was not kept either
    assert fine.json() == {"accepted": 2}
    labels = prediction_log_reader(workspace.settings).read("churn")
    pairs = zip(labels["request_id"].to_pylist(), labels["label_json"].to_pylist(), strict=True)
    assert dict(pairs) == {
        ids[0]: "1",  # 1.0 for an integer output is kept as 1
        ids[1]: "0",
    }


def test_feedback_for_a_row_another_process_has_not_written_yet_waits_for_it(
    workspace: Workspace,
) -> None:
    """Two server processes of one deployment (as `--workers 2` runs them): the second has not
    issued the id, and the first has not flushed it yet; the second waits for it instead of
    answering 404."""
    with _app(workspace) as first, _app(workspace) as second:
        ids = first.post("/predict", json={"rows": [ROW]}).json()["request_ids"]
        assert _logged(workspace).num_rows == 0  # still queued in the first process
        answer = second.post("/feedback", json={"request_id": ids[0], "label": 0})
    assert answer.json() == {"accepted": 1}


@contextmanager
def _serving(settings: Settings, *args: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    env = {
        **os.environ,
        "LOOPML_DB_URL": settings.db_url,
        "LOOPML_ARTIFACTS": settings.artifacts_url,
        "LOOPML_HOME": str(settings.home),
        "OMP_NUM_THREADS": "1",
    }
    command = [sys.executable, "-m", "loopml", "serve", "churn", "--port", str(port), *args]
    proc = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("the server did not start")
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


def test_feedback_after_a_restart_and_across_workers_is_accepted(workspace: Workspace) -> None:
    settings = workspace.settings
    with _serving(settings) as (url, proc):
        before = httpx.post(f"{url}/predict", json={"rows": [ROW, ROW]}).json()["request_ids"]
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    with _serving(settings, "--workers", "2") as (url, _):
        after_restart = httpx.post(
            f"{url}/feedback", json=[{"request_id": i, "label": 1} for i in before]
        )
        assert after_restart.json() == {"accepted": 2}
        for _ in range(10):  # a fresh connection each time: either worker may answer either
            with httpx.Client() as one:
                ids = one.post(f"{url}/predict", json={"rows": [ROW]}).json()["request_ids"]
            with httpx.Client() as other:
                answer = other.post(f"{url}/feedback", json={"request_id": ids[0], "label": 0})
            assert answer.json() == {"accepted": 1}, answer.text
        never = str(uuid.UUID(int=uuid.uuid4().int))  # a version 4 id: never issued here
        assert (
            httpx.post(f"{url}/feedback", json={"request_id": never, "label": 0}).status_code == 404
        )


# --- answered means logged ------------------------------------------------------------------------


def test_a_flood_of_v2_rows_is_answered_only_as_far_as_the_log_keeps_it(
    workspace: Workspace,
) -> None:
    writer = PredictionLogWriter(
        workspace.settings.artifacts_url, max_queue_rows=20_000, flush_rows=10_000
    )
    answered: list[str] = []
    statuses: list[int] = []
    with _app(workspace, writer) as client:

        def send(index: int) -> None:
            answer = client.post("/v2/models/churn/infer", json=_v2(5_000, f"flood-{index}"))
            statuses.append(answer.status_code)
            if answer.status_code == 200:
                answered.extend(answer.json()["parameters"]["request_ids"])
            else:
                assert answer.status_code == 503, answer.text
                assert answer.headers["retry-after"] == "1"

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(send, range(40)))
    assert statuses.count(200) > 0
    table = _logged(workspace)
    assert len(answered) == len(set(answered)) == statuses.count(200) * 5_000
    assert set(answered) <= set(table["request_id"].to_pylist())  # answered means logged
    assert writer.stats()["refused_rows"] == 0


def test_a_stalled_log_gets_503s_and_every_row_answered_200_is_in_it_afterwards(
    workspace: Workspace, tmp_path: Path
) -> None:
    root = tmp_path / "log"
    root.write_text("a file where the log folder should be: every write fails")
    writer = PredictionLogWriter(str(root), max_queue_rows=40, flush_interval_s=0.2)
    answered: list[str] = []
    with _app(workspace, writer) as client:
        statuses = []
        for _ in range(4):  # 2 x 20 rows fill the queue
            answer = client.post("/predict", json={"rows": [ROW] * 20})
            statuses.append(answer.status_code)
            if answer.status_code == 200:
                answered += answer.json()["request_ids"]
        refused = client.post("/predict", json={"rows": [ROW] * 20})
        feedback = client.post("/feedback", json={"request_id": answered[0], "label": 1})
        assert statuses == [200, 200, 503, 503]
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert "prediction log cannot keep up" in refused.json()["error"]
        assert feedback.status_code == 503  # a label is not taken and then lost either
        metrics = client.get("/metrics").text
        assert "loopml_prediction_log_refused_rows_total 61.0" in metrics  # 3 x 20 + 1
        root.unlink()  # the store comes back: the writer empties its queue on its own
        deadline = time.monotonic() + 10
        while writer.stats()["queue_depth"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.post("/predict", json={"rows": [ROW]}).status_code == 200
    table = PredictionLogReader(str(root)).read("churn", with_feedback=False)
    assert len(answered) == 40
    assert set(answered) <= set(table["request_id"].to_pylist())


def test_a_shadow_is_skipped_not_queued_beyond_the_log(
    workspace: Workspace, tmp_path: Path
) -> None:
    from loopml.serving.host import DeploymentHosts

    root = tmp_path / "log"
    root.write_text("every write fails")
    writer = PredictionLogWriter(str(root), max_queue_rows=30, flush_interval_s=0.2)
    hosts = {
        "churn": DeploymentHosts(
            ModelHost(workspace, "churn", "churn/1"),
            ModelHost(workspace, "churn", "churn/1", role="shadow"),
        )
    }
    reader = PredictionLogReader(workspace.settings.artifacts_url)
    with TestClient(create_app(hosts, LogSink(writer, reader))) as client:
        first = client.post("/predict", json={"rows": [ROW] * 20})
        threading.Event().wait(0.3)  # the shadow's rows are not admitted: no room
        server = client.app.state.server  # type: ignore[attr-defined]
        assert first.status_code == 200
        assert server.shadows_skipped == 1
        assert writer.stats()["queue_depth"] == 20
    writer.close(timeout_s=0.5)
