"""Poison in the prediction log cannot stop monitoring or the loop: whatever a served row, an older
server or another tool left in the log (a boolean for an integer, 10**30, objects and lists for a
category, "inf" and NaN, a type that changes from request to request, null, object and text
labels, outputs that are no class, bytes that are not UTF-8), every monitor run over it (direct,
scheduled, from the CLI) and the retraining that learns from it complete, and the report names
what could not be read, by column and kind, with the request ids to look at. The same holds for
poison sent through a real model server's `/predict`. And one failing monitor, loop or project
never stops the others: the team server's scheduler keeps running the rest, tick after tick, and
the failure is a notice alert on the monitor, resolved when it works again."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from loopml import loops
from loopml.adapters.prediction_log import (
    FeedbackRecord,
    PredictionRecord,
    now_us,
    partition_dir,
)
from loopml.bootstrap import Workspace, open_workspace, prediction_log_reader, prediction_log_writer
from loopml.cli import demo_pipeline
from loopml.cli.demo import period
from loopml.errors import InvalidInput
from loopml.monitoring import monitors
from loopml.settings import Settings
from loopml.testing.team_server import live_server, postgres_schema_url

PIPELINE = f"{Path(demo_pipeline.__file__)}:churn"
ROWS = 600
NOTE = "slow support call"
JSON_NULL = "JSON null"
"""A label fed back as JSON `null` (a Python None means no feedback came)."""

# (inputs merged into a clean row, output, label fed back, what the monitor should report: the
# column and kind, or None when it is readable), as an older server or another tool logged them.
POISON: list[tuple[dict[str, Any], Any, Any, tuple[str, str] | None]] = [
    ({"tenure": True}, 0, 0, ("tenure", "boolean")),
    ({"tenure": 10**30}, 0, 0, None),  # a number: out of the reference's range, not unreadable
    ({"tenure": "12"}, 0, 0, None),  # the type changes from request to request: still 12
    ({"tenure": "twelve"}, 0, 0, ("tenure", "text")),
    ({"tenure": [3, 4]}, 0, 0, ("tenure", "list")),
    ({"monthly": "inf"}, 1, 1, ("monthly", "non_finite")),
    ({"monthly": "NaN"}, 1, 1, ("monthly", "non_finite")),
    ({"monthly": math.nan}, 1, 1, ("monthly", "non_finite")),  # the NaN literal json.dumps writes
    ({"plan": {"name": "basic"}}, 0, 0, ("plan", "object")),
    ({"plan": ["basic"]}, 0, 0, ("plan", "list")),
    ({"plan": 7}, 0, 0, None),  # a number as a category: "7", a new one
    ({"note": {"text": NOTE}}, 0, 0, ("note", "object")),
    ({}, 0, {"label": 1}, ("churned", "object")),
    ({}, 0, [0, 1], ("churned", "list")),
    ({}, 0, "maybe", None),  # a label nobody used before: a new class
    ({}, 0, JSON_NULL, None),  # a null label: read as no label
    ({}, "abc", 0, None),  # an output that is no class of the reference: a new category
    ({}, {"class": 1}, 0, ("prediction", "object")),
    ({}, math.inf, 0, ("prediction", "non_finite")),
]


JSON = {"content-type": "application/json"}
CLEAN = period(1, 300, seed=7)
"""Served rows as the demo's world makes them, with their true labels."""


def _clean_row(index: int) -> dict[str, Any]:
    row = CLEAN.iloc[index % len(CLEAN)]
    return {k: row[k].item() if hasattr(row[k], "item") else row[k] for k in CLEAN.columns[:-1]}


def log_window(ws: Workspace, deployment: str = "churn-prod") -> dict[tuple[str, str], list[str]]:
    """Log 300 clean labelled rows and every poison row (each 10 times, merged into a clean
    row), as an older server would: straight into the log. Returns the request ids of the
    poison rows by the finding they should give."""
    writer = prediction_log_writer(ws.settings)
    start = now_us() - 60_000_000
    records, feedback = [], []
    expected: dict[tuple[str, str], list[str]] = {}
    churned = CLEAN["churned"].tolist()
    rows = [(_clean_row(i), churned[i], churned[i], None) for i in range(300)]
    for i in range(10):
        rows += [({**_clean_row(i), **bad}, out, label, kind) for bad, out, label, kind in POISON]
    for i, (inputs, output, label, kind) in enumerate(rows):
        rid = f"req-{i:04d}"
        at = start + i * 1_000
        inputs_json, output_json = json.dumps(inputs), json.dumps(output)
        records.append(
            PredictionRecord(
                rid, at, deployment, "churn", 1, inputs_json, output_json, 700, "", False
            )
        )  # fmt: skip
        if label is not None:
            text = "null" if label == JSON_NULL else json.dumps(label)
            feedback.append(FeedbackRecord(rid, at + 1, deployment, text))
        if kind is not None:
            expected.setdefault(kind, []).append(rid)
    writer.append(records)
    writer.append_feedback(feedback)
    writer.close()
    return expected


def log_invalid_utf8(ws: Workspace, deployment: str = "churn-prod") -> str:
    """A log file another tool wrote, whose inputs are not UTF-8 (Parquet keeps any bytes)."""
    import pyarrow.parquet as pq

    at = now_us() - 30_000_000
    day = time.strftime("%Y-%m-%d", time.gmtime(at / 1e6))
    folder = Path(ws.settings.artifacts_url) / partition_dir("predictions", deployment)
    (folder / f"date={day}").mkdir(parents=True, exist_ok=True)
    raw = pa.array([b'{"tenure": 3, "plan": "\xff\xfe"}'], pa.binary()).view(pa.string())
    table = pa.table(
        {
            "request_id": ["req-bytes"],
            "time_us": pa.array([at], pa.int64()),
            "model": ["churn"],
            "model_version": pa.array([1], pa.int64()),
            "inputs_json": raw,
            "output_json": ["0"],
            "latency_us": pa.array([700], pa.int64()),
            "flags": [""],
            "shadow": [False],
        }
    )
    pq.write_table(table, folder / f"date={day}" / "part-0-othertool.parquet")
    return "req-bytes"


def register_churn(ws: Workspace, project: str = "default") -> None:
    """churn 1: a classifier over the demo's columns, the champion."""
    from sklearn.compose import make_column_transformer
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame = period(0, ROWS, seed=0)
    features = make_column_transformer(
        ("passthrough", ["tenure", "monthly"]),
        (OneHotEncoder(handle_unknown="ignore"), ["plan"]),
        (CountVectorizer(), "note"),
    )
    model = make_pipeline(features, LogisticRegression(max_iter=500))
    model.fit(frame.drop(columns=["churned"]), frame["churned"])
    example = frame.drop(columns=["churned"]).head(3)
    ws.registry.register(model, "churn", project=project, input_example=example)
    ws.registry.promote("churn", 1, project=project)


def watch_churn(ws: Workspace, folder: Path, project: str = "default", name: str = "churn") -> None:
    """Dataset churn@1, model churn 1 as champion, deployment NAME-prod and its drift monitor
    NAME-drift over the inputs, the outputs and the labels (as the demo makes it)."""
    path = folder / f"{project}-period-0.csv"
    period(0, ROWS, seed=0).to_csv(path, index=False)
    ws.data.add(path, name="churn", project=project)
    register_churn(ws, project)
    ws.deployments.create(f"{name}-prod", project=project, model="churn@champion")
    monitors.create(
        f"{name}-drift",
        deployment=f"{name}-prod",
        reference="churn@1",
        label="churned",
        window="1h",
        every="1s",
        project=project,
        workspace=ws,
    )
    ws.alerts.add_rule(f"{name}-drift", when="drift_share > 0.5", notify=["log:"], project=project)


@pytest.fixture
def world(make_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[Workspace]:
    ws = open_workspace(make_settings())
    watch_churn(ws, tmp_path)
    yield ws
    ws.close()


def _found(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(u["column"], u["kind"]): u for u in document["quality"]["unreadable"]}


def test_a_monitor_run_over_poison_completes_and_names_every_finding(world: Workspace) -> None:
    expected = log_window(world)
    bytes_id = log_invalid_utf8(world)
    result = monitors.run("churn-drift", workspace=world)
    document = result.document
    assert result.run.rows == 300 + 10 * len(POISON) + 1  # every served row, none dropped
    found = _found(document)
    for kind, ids in expected.items():
        assert found[kind]["count"] == len(ids), kind
        assert found[kind]["examples"] == ids[:3], kind
    assert found[("(row)", "invalid_json")]["examples"] == [bytes_id]
    assert set(found) == {*expected, ("(row)", "invalid_json")}
    total = sum(len(ids) for ids in expected.values()) + 1
    assert document["unreadable_values"] == document["quality"]["unreadable_values"] == total
    columns = document["quality"]["columns"]
    assert columns["monthly"]["type_violations"] == 30
    assert columns["monthly"]["invalid_share"] == pytest.approx(30 / result.run.rows)
    assert {"type_violations:tenure", "type_violations:plan", "unreadable_rows"} <= set(
        document["quality"]["issues"]
    )
    assert "out_of_range:tenure" in document["quality"]["issues"]  # 10**30 was read, and is odd
    assert result.report is not None
    assert "7" in result.report.features["plan"].statistics["new_categories"]
    performance = document["performance"]
    assert performance["unreadable_labels"] == 20  # the object and list labels
    assert performance["unreadable_outputs"] == 20  # the object and infinite outputs
    # the stored report is what `monitor report` and the UI read
    stored = monitors.report_document(result.run.id, workspace=world)
    assert _found(stored) == found


def test_the_log_views_show_poison_rows_instead_of_failing(
    world: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`predictions tail`, `predictions show` and the web UI's record page read what a person
    looks at row by row: bytes that are not UTF-8 and inputs that are not JSON are shown as
    they are (with replacement characters), never a traceback or a 500."""
    from starlette.testclient import TestClient

    from loopml.cli.app import main
    from loopml.server.app import create_server

    log_window(world)
    bytes_id = log_invalid_utf8(world)
    writer = prediction_log_writer(world.settings)
    at = now_us() - 20_000_000
    writer.append(
        [PredictionRecord("req-text", at, "churn-prod", "churn", 1, "not json", "0", 1, "", False)]
    )
    writer.close()
    reader = prediction_log_reader(world.settings)
    newest = reader.tail("churn-prod", 500).to_pylist()
    assert bytes_id in {row["request_id"] for row in newest}
    record = reader.get(bytes_id, "churn-prod")
    assert record is not None
    assert "\ufffd" in record["inputs_json"]
    client = TestClient(create_server(world, auth=False), base_url="http://127.0.0.1")
    listing = client.get("/ui/deployments/churn-prod?project=default")
    assert listing.status_code == 200, listing.text
    page = client.get(f"/ui/deployments/churn-prod/predictions/{bytes_id}?project=default")
    assert page.status_code == 200, page.text
    assert "\ufffd" in page.text
    page = client.get("/ui/deployments/churn-prod/predictions/req-text?project=default")
    assert page.status_code == 200, page.text
    assert "unreadable row" in page.text
    assert "not json" in page.text
    monkeypatch.setenv("LOOPML_HOME", str(world.settings.home))
    monkeypatch.setenv("LOOPML_DB_URL", world.settings.db_url)
    monkeypatch.setenv("LOOPML_ARTIFACTS", world.settings.artifacts_url)
    for command in (["predictions", "show", bytes_id], ["predictions", "tail", "churn-prod"]):
        try:
            main(command)
            code = 0
        except SystemExit as exit_:
            code = int(exit_.code or 0)
        printed = capsys.readouterr()
        assert code == 0, printed.err
        assert "Traceback" not in printed.err


def test_a_column_with_nothing_readable_is_reported_not_compared_as_calm(
    world: Workspace,
) -> None:
    every_tenure_a_boolean = [{**_clean_row(i), "tenure": True} for i in range(200)]
    _log_rows(world, "churn-prod", every_tenure_a_boolean, output={})
    result = monitors.run("churn-drift", workspace=world)
    assert result.report is not None
    assert "tenure" not in result.report.features  # no evidence either way
    assert "prediction" not in result.report.features  # every output was an object
    assert {"monthly", "plan", "note"} <= set(result.report.features)
    tenure = result.document["quality"]["columns"]["tenure"]
    assert (tenure["null_rate"], tenure["invalid_share"]) == (1.0, 1.0)

    garbage = [{"tenure": True, "monthly": "x", "plan": {}, "note": []}] * 50
    _log_rows(world, "blind-prod", garbage, output={})
    monitors.create("blind", deployment="blind-prod", reference="churn@1", workspace=world)
    with pytest.raises(
        InvalidInput, match=r"share no readable column .*\(200 values could not be read\)"
    ):
        monitors.run("blind", workspace=world)
    assert world.monitors.history("blind", "default") == []  # no calm run stored


def _log_rows(ws: Workspace, deployment: str, rows: list[dict[str, Any]], output: Any) -> None:
    writer = prediction_log_writer(ws.settings)
    at, answer = now_us() - 1_000_000, json.dumps(output)
    writer.append(
        [
            PredictionRecord(
                f"{deployment}-{i}", at + i, deployment, "churn", 1, json.dumps(row), answer, 1, "",
                False,
            )
            for i, row in enumerate(rows)
        ]
    )  # fmt: skip
    writer.close()


def test_scheduled_and_cli_runs_over_poison_complete(
    world: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from loopml.cli.app import main

    log_window(world)
    done = monitors.run_due(workspace=world)
    assert [(name, type(outcome).__name__) for name, outcome in done] == [
        ("churn-drift", "MonitorResult")
    ]
    settings = world.settings
    monkeypatch.setenv("LOOPML_HOME", str(settings.home))
    monkeypatch.setenv("LOOPML_DB_URL", settings.db_url)
    monkeypatch.setenv("LOOPML_ARTIFACTS", settings.artifacts_url)
    try:
        main(["monitor", "run", "churn-drift"])
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"{10 * 13} unreadable value(s)" in out  # 13 kinds of poison, 10 rows each
    lines = [line.replace("\u2502", " ").split() for line in out.splitlines()]
    assert ["tenure", "boolean", "10", "req-0300,", "req-0319,", "req-0338"] in lines
    assert any(line[:3] == ["prediction", "object", "10"] for line in lines)


def test_the_loop_learns_from_a_poisoned_window_without_the_poison(world: Workspace) -> None:
    log_window(world)
    loops.create(
        "churn-loop",
        deployment="churn-prod",
        pipeline=PIPELINE,
        triggers=["manual"],
        train_data="reference + labelled predictions of the last 1h",
        promote_if=["accuracy >= 0"],
        min_rows=100,
        workspace=world,
    )
    outcome = loops.run("churn-loop", force=True, workspace=world)
    assert outcome.run is not None
    assert outcome.run.status == "promoted", outcome.run.reason
    made = world.tracking.search(project="default", filter="tags.loopml.kind = 'loop-data'")
    (data_run,) = made.runs
    # rows with an unreadable input, label or output, read as most of their column's values
    # are (15 of the poison rows, 10 times each: "maybe" and "abc" are no numbers): left out
    # of the training data, and counted
    assert data_run.params["unreadable_rows_left_out"] == "150"
    recent = int(data_run.params["labelled_rows"])
    assert recent == 300 + 10 * (len(POISON) - 15 - 1)  # less the unreadable, and no-label, rows


def test_a_loop_that_fails_is_one_notice_and_the_other_loops_run(
    world: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.deployments.create("other-prod", project="default", model="churn@champion")
    for name, deployment in (("churn-loop", "churn-prod"), ("other-loop", "other-prod")):
        loops.create(
            name,
            deployment=deployment,
            pipeline=PIPELINE,
            triggers=["manual"],
            train_data="churn@1 + labelled predictions of the last 1h",
            promote_if=["accuracy >= 0"],
            label="churned",
            workspace=world,
        )
    # churn-loop watches a promotion, and then its deployment is deleted under it: judging the
    # watch fails at every run
    loop = world.loops.get("churn-loop", "default")
    started = world.loops.start_run(loop, "manual", 1)
    watch = {"state": "watching", "since_us": now_us(), "until_us": now_us() + 10**9}
    world.loops.finish_run(
        started, "promoted", "by hand", watch={**watch, "model": 1, "previous": 1}
    )
    world.deployments.delete("churn-prod", "default")

    outcomes = {o.loop: o for o in loops.run_due(workspace=world)}
    assert outcomes["churn-loop"].notes[0].startswith("failed: Deployment 'churn-prod'")
    assert outcomes["other-loop"].notes == ["no trigger fired"]  # it ran
    (notice,) = [a for a in world.alerts.alerts("default", None) if a.target == "churn-loop"]
    assert notice.condition.startswith("loop run failed: ")
    assert [(d.channel, d.event) for d in notice.deliveries] == [("log:", "fired")]

    again = {o.loop for o in loops.run_due(workspace=world)}
    assert again == {"other-loop"}  # the failing loop waits RETRY_S before it is tried again

    monkeypatch.setattr(loops, "RETRY_S", 0)
    world.deployments.create("churn-prod", project="default", model="churn@champion")
    fixed = {o.loop: o for o in loops.run_due(workspace=world)}
    assert not any(n.startswith("failed") for n in fixed["churn-loop"].notes)
    resolved = world.alerts.get(notice.id, "default")
    assert resolved.state == "resolved"
    assert [d.event for d in resolved.deliveries] == ["fired", "resolved"]


def test_poison_sent_to_a_real_model_server_never_stops_a_monitor(world: Workspace) -> None:
    from starlette.testclient import TestClient

    from loopml.serving.app import create_app
    from loopml.serving.host import ModelHost
    from loopml.serving.log_sink import LogSink

    host = ModelHost(world, "churn-prod", "churn@champion")
    sink = LogSink(prediction_log_writer(world.settings), prediction_log_reader(world.settings))
    answered: list[str] = []
    with TestClient(create_app({"churn-prod": host}, sink)) as client:
        body = {"rows": [_clean_row(i) for i in range(200)]}
        clean = client.post("/predict", json=body)
        assert clean.status_code == 200, clean.text
        answered += clean.json()["request_ids"]
        for index, (bad, _, label, _) in enumerate(POISON):
            text = json.dumps({"rows": [{**_clean_row(index), **bad}]})  # NaN as the JSON literal
            sent = client.post("/predict", content=text, headers=JSON)
            assert sent.status_code < 500, sent.text  # refused with a 4xx, or served
            if sent.status_code == 200:
                (rid,) = sent.json()["request_ids"]
                answered.append(rid)
                item = {"request_id": rid, "label": None if label == JSON_NULL else label}
                told = client.post("/feedback", json=item)
                assert told.status_code < 500, told.text
        mixed = client.post(
            "/predict", json={"rows": [{**_clean_row(1), "tenure": True}, _clean_row(2)]}
        )
        assert mixed.status_code < 500, mixed.text
    sink.close()
    result = monitors.run("churn-drift", workspace=world)
    assert result.run.rows == len(answered) + (2 if mixed.status_code == 200 else 0)
    again = monitors.run_due(now_us=now_us() + 2_000_000, workspace=world)
    assert [type(outcome).__name__ for _, outcome in again] == ["MonitorResult"]


@pytest.mark.slow
def test_monitor_serve_keeps_going_past_a_failing_monitor(world: Workspace) -> None:
    """`loopml monitor serve`: one line per failure, and the healthy monitor runs on."""
    import os
    import subprocess
    import sys

    log_window(world)
    log_window(world, deployment="other-prod")
    monitors.create(
        "other-drift", deployment="other-prod", reference="churn@1", every="1s", workspace=world
    )
    broken = _cut_a_log_file_short(world, "other-prod")
    settings = world.settings
    env = {
        **os.environ,
        "LOOPML_HOME": str(settings.home),
        "LOOPML_DB_URL": settings.db_url,
        "LOOPML_ARTIFACTS": settings.artifacts_url,
    }
    command = [sys.executable, "-m", "loopml", "monitor", "serve", "--tick", "0.3"]
    lines: list[str] = []
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as serving:
        assert serving.stdout is not None
        deadline = time.monotonic() + 60
        try:
            while sum(line.startswith("churn-drift: run") for line in lines) < 3:
                assert time.monotonic() < deadline, lines
                assert serving.poll() is None, lines  # it keeps going
                lines.append(serving.stdout.readline())
        finally:
            serving.terminate()
    failed = [line for line in lines if line.startswith("other-drift: FAILED: ")]
    assert failed, lines
    assert all("cannot be read" in line and str(broken) not in line for line in failed)
    assert len(failed) <= 4  # tried again on its schedule (1 s), not at every tick (0.3 s)


def _history(ws: Workspace, monitor: str, project: str) -> int:
    return len(ws.monitors.history(monitor, project, 1_000))


@pytest.mark.slow
def test_one_failing_monitor_does_not_stop_the_team_servers_schedule(
    postgres_database: str, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Project `alpha` (scheduled first) has a monitor whose every run fails: its log holds a
    file cut short. Project `default` has a healthy monitor and a loop due every second."""
    settings = make_settings(postgres_schema_url(postgres_database))
    with live_server(settings, admin="alice", schedule_s=0.2) as server:
        ws = server.workspace
        ws.auth.create_project("alpha")
        log_window(ws, deployment="alpha-prod")
        broken = _cut_a_log_file_short(ws, "alpha-prod")  # before its monitor is scheduled
        watch_churn(ws, tmp_path, project="alpha", name="alpha")
        watch_churn(ws, tmp_path, project="default", name="churn")
        loops.create(
            "churn-loop",
            deployment="churn-prod",
            pipeline=PIPELINE,
            triggers=["every:1s"],
            train_data="reference + labelled predictions of the last 1h",
            promote_if=["accuracy >= 0"],
            workspace=ws,
        )
        scheduler = server.app.state.scheduler
        ticks = scheduler.ticks_run

        def settled() -> bool:  # the healthy project went on, window after window
            _serve_unlabelled(ws, "churn-prod")
            failing = _notice(ws)
            return (
                _history(ws, "churn-drift", "default") >= 3
                and len(ws.loops.history("churn-loop", "default", 100)) >= 2  # its schedule fired
                and failing is not None
                and failing.value >= 2  # the broken monitor was tried again, and counted
            )

        _wait_for(settled, timeout_s=60)
        assert scheduler.ticks_run >= ticks + 5
        assert _history(ws, "alpha-drift", "alpha") == 0  # no fake healthy run was stored
        notice = _notice(ws)
        assert notice is not None  # once, however many ticks failed; the failures counted
        assert notice.rule_id == 0
        assert notice.condition.startswith("monitor run failed: The prediction log of")
        assert "cannot be read" in notice.condition
        assert str(tmp_path) not in notice.condition  # no server path in what people read
        assert [(d.channel, d.event) for d in notice.deliveries] == [("log:", "fired")]
        assert scheduler.failures >= 2

        broken.unlink()  # an operator moves the bad file away: the next run works
        deliveries = lambda: ws.alerts.get(notice.id, "alpha").deliveries  # noqa: E731
        _wait_for(lambda: len(deliveries()) == 2, timeout_s=30)  # resolved, and told so
        resolved = ws.alerts.get(notice.id, "alpha")
        assert resolved.state == "resolved"
        assert [d.event for d in resolved.deliveries] == ["fired", "resolved"]
        assert _history(ws, "alpha-drift", "alpha") >= 1  # by a run that worked


def _notice(ws: Workspace) -> Any:
    """The open failure notice of monitor alpha-drift (there must be one at most)."""
    found = [a for a in ws.alerts.alerts("alpha", None, 100) if a.target == "alpha-drift"]
    assert len(found) <= 1, found
    return found[0] if found and found[0].state == "firing" else None


def _wait_for(condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the schedule did not get there in time"
        time.sleep(0.5)


def _cut_a_log_file_short(ws: Workspace, deployment: str) -> Path:
    folder = Path(ws.settings.artifacts_url) / partition_dir("predictions", deployment)
    whole = next(folder.rglob("part-*.parquet"))
    broken = whole.parent / "part-9-cut.parquet"
    data = whole.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    return broken


def _serve_unlabelled(ws: Workspace, deployment: str) -> None:
    writer = prediction_log_writer(ws.settings)
    at = now_us()
    rng = np.random.default_rng(at % 1000)
    writer.append(
        [
            PredictionRecord(
                f"{at}-{i}",
                at - i,
                deployment,
                "churn",
                1,
                json.dumps(_clean_row(int(rng.integers(0, 300)))),
                "0",
                700,
                "",
                False,
            )
            for i in range(50)
        ]
    )
    writer.close()
