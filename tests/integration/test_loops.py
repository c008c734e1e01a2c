"""The closed loop on a real workspace: an alert retrains, both models are scored on one fresh
holdout, the winner is promoted (or waits for a person), a worse champion is rolled back, a
failed retraining leaves the champion and tells people, and racing runs do not both proceed."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loopml import loops
from loopml.adapters.prediction_log import FeedbackRecord, PredictionRecord, now_us
from loopml.bootstrap import Workspace, open_workspace, prediction_log_writer
from loopml.cli.demo import period
from loopml.errors import Conflict, InvalidInput, LoopmlError, NotFound
from loopml.monitoring import monitors
from loopml.monitoring.monitors import read_dataset
from loopml.pipelines import run_pipeline
from loopml.settings import Settings
from loopml.steps import load_pipeline

PIPELINE = f"{Path(__file__).parent / 'loop_pipeline.py'}:churn"
ROWS = 1_000


@pytest.fixture
def world(ws_settings: Settings, tmp_path: Path) -> Iterator[Workspace]:
    """churn@1 (the first period), churn 1 trained on it and promoted, deployment churn-prod
    serving churn@champion, and drift monitor churn-drift with a rule on drift."""
    ws = open_workspace(ws_settings)
    first = tmp_path / "period-0.csv"
    period(0, ROWS, seed=0).to_csv(first, index=False)
    ws.data.add(first, name="churn", project="default")
    run_pipeline(load_pipeline(PIPELINE), {"dataset": "churn@1"}, workspace=ws)
    ws.registry.promote("churn", 1, project="default")
    ws.deployments.create("churn-prod", project="default", model="churn@champion")
    monitors.create(
        "churn-drift",
        deployment="churn-prod",
        reference="churn@1",
        label="churned",
        window="1h",
        workspace=ws,
    )
    ws.alerts.add_rule("churn-drift", when="drift_share > 0.2", notify=["log:"], project="default")
    yield ws
    ws.close()


def serve(ws: Workspace, index: int, *, seed: int = 1, event_time_us: int | None = None) -> int:
    """Serve period `index` with the current champion, as the server would log it, and feed
    back every true label; returns the version that served. With `event_time_us`, the rows
    are served now but carry event times from then on (a replayed history)."""
    version = ws.registry.resolve("churn@champion", "default")
    model = ws.registry.load(version.ref, project="default")
    rows = period(index, ROWS, seed)
    inputs = rows.drop(columns=["churned"])
    outputs = model.predict(inputs)
    start = now_us()
    ids = [f"{start}-{i}" for i in range(len(rows))]
    writer = prediction_log_writer(ws.settings)
    writer.append(
        [
            PredictionRecord(
                rid,
                start + i,
                "churn-prod",
                "churn",
                version.version,
                json.dumps(row),
                json.dumps(int(out)),
                900,
                "",
                False,
                event_time_us=None if event_time_us is None else event_time_us + i,
            )
            for i, (rid, row, out) in enumerate(
                zip(ids, inputs.to_dict("records"), outputs, strict=True)
            )
        ]
    )
    writer.append_feedback(
        [
            FeedbackRecord(rid, start + ROWS, "churn-prod", json.dumps(int(label)))
            for rid, label in zip(ids, rows["churned"], strict=True)
        ]
    )
    writer.flush()
    return version.version


def make_loop(ws: Workspace, **changes: Any) -> None:
    options: dict[str, Any] = {
        "deployment": "churn-prod",
        "pipeline": PIPELINE,
        "triggers": ["alert:churn-drift"],
        "train_data": "reference + labelled predictions of the last 1h",
        "promote_if": ["accuracy >= champion.accuracy + 0.01"],
        "workspace": ws,
    }
    loops.create("churn-loop", **{**options, **changes})


def _refs(node: Any) -> set[str]:
    """Every dataset version in a lineage tree."""
    found = {node.ref} if node.kind == "dataset" else set()
    for child in node.children:
        found |= _refs(child)
    return found


def test_an_alert_retrains_on_new_data_and_the_better_challenger_is_promoted(
    world: Workspace,
) -> None:
    make_loop(world, guards=["latency_p99_ms <= 20 * champion.latency_p99_ms"])
    assert loops.run("churn-loop", workspace=world).triggered is None  # nothing fired yet
    serve(world, 3)  # the changed world
    fired = monitors.run("churn-drift", workspace=world).alerts
    assert [a.state for a in fired] == ["firing"]

    outcome = loops.run("churn-loop", workspace=world)
    assert outcome.triggered is not None
    assert outcome.triggered.startswith("alert:churn-drift")
    run = outcome.run
    assert run is not None
    assert run.status == "promoted", run.reason
    assert (run.champion, run.challenger) == (1, 2)
    assert world.registry.resolve("churn@champion", "default").version == 2
    champion, challenger = run.scores["champion"], run.scores["challenger"]
    assert challenger["accuracy"] >= champion["accuracy"] + 0.01
    assert {"latency_p99_ms", "f1"} <= set(challenger) & set(champion)
    assert [ok for _, ok, _ in run.rules] == [True] * len(run.rules)
    guard = "latency_p99_ms <= 20 * champion.latency_p99_ms ("  # with its interval, in the reason
    assert guard in run.reason
    assert "to the champion, bound 20 (95% interval)" in run.reason
    # the training data: a new version of churn, the reference plus 70% of the served rows
    assert run.train_data == "churn@2"
    assert run.holdout_data == "churn-loop-holdout@1"
    made = world.data.resolve("churn@2", "default", record=False)
    assert "churn@1 + 700 labelled predictions of churn-prod" in made.message
    assert read_dataset(world, made).num_rows == ROWS + 700
    held = world.data.resolve("churn-loop-holdout@1", "default", record=False)
    assert read_dataset(world, held).num_rows == 300
    assert _refs(world.lineage.upstream_of_model("default", "churn", 2)) >= {"churn@2", "churn@1"}
    assert _refs(world.lineage.downstream_of_dataset("default", "churn", 1)) >= {
        "churn@2",
        "churn-loop-holdout@1",
    }
    assert run.watch["state"] == "watching"
    assert run.watch["previous"] == 1
    # drift is now measured against what the new champion learned from; the recipe keeps its
    # reference (churn@1), so no row is counted twice in the next training data
    assert world.monitors.get("churn-drift", "default").reference == "churn@2"
    assert "drift monitor churn-drift now compares with churn@2 (was churn@1)" in run.reason
    assert world.loops.get("churn-loop", "default").spec.reference_pin == "churn@1"
    # the same alert does not retrain twice
    assert loops.run("churn-loop", workspace=world).run is None
    actions = [e.action for e in world.audit.log(entity="loop:default/churn-loop", limit=50)]
    assert {"loop.created", "loop.run_started", "loop.promoted"} <= set(actions)


def test_in_approve_mode_the_challenger_waits_then_a_promotion_is_watched(
    world: Workspace,
) -> None:
    make_loop(world, mode="approve", triggers=["manual"], watch="1h")
    serve(world, 3)
    run = loops.run("churn-loop", force=True, workspace=world).run
    assert run is not None
    assert run.status == "awaiting-approval", run.reason
    assert "loopml models promote churn 2" in run.reason
    assert world.registry.resolve("churn@champion", "default").version == 1
    assert world.registry.resolve("churn@challenger", "default").version == 2

    world.registry.promote("churn", 2, project="default")  # a person approves
    serve(world, 4)
    outcome = loops.run("churn-loop", workspace=world)
    assert outcome.run is None  # manual only: nothing retrains by itself
    approved = world.loops.run(run.id, "default")
    assert approved.status == "promoted"
    assert approved.watch["state"] == "watching"


def test_a_champion_worse_on_live_traffic_is_rolled_back_and_people_are_told(
    world: Workspace,
) -> None:
    make_loop(
        world,
        triggers=["manual"],
        promote_if=["accuracy >= 0"],  # lets a bad challenger through, for the watch to catch
        params={"broken": True},
    )
    serve(world, 1)
    run = loops.run("churn-loop", force=True, workspace=world).run
    assert run is not None
    assert run.status == "promoted", run.reason
    assert serve(world, 2) == 2  # the bad model serves, labels come back

    watched = loops.run("churn-loop", workspace=world).watched
    assert watched is not None
    assert watched.watch["state"] == "rolled-back"
    assert watched.watch["scores"]["served"] < watched.watch["scores"]["previous_on_same_rows"]
    assert watched.watch["scores"]["rows"] == ROWS
    assert world.registry.resolve("churn@champion", "default").version == 1
    told = [a for a in world.alerts.alerts("default", "firing") if a.target == "churn-loop"]
    assert len(told) == 1
    assert told[0].condition.startswith("rolled back: churn 2 served")
    assert told[0].deliveries[0].ok
    events = world.audit.log(entity="model:default/churn", limit=10)
    assert events[0].action == "model.rolled_back"


def test_a_challenger_that_fails_to_train_leaves_the_champion_and_raises_an_alert(
    world: Workspace,
) -> None:
    make_loop(world, triggers=["manual"], params={"fail": True})
    serve(world, 3)
    run = loops.run("churn-loop", force=True, workspace=world).run
    assert run is not None
    assert run.status == "failed"
    assert "the training data is unusable" in run.reason
    assert run.train_data == "churn@2"
    assert world.registry.resolve("churn@champion", "default").version == 1
    told = [a for a in world.alerts.alerts("default", "firing") if a.target == "churn-loop"]
    assert len(told) == 1
    assert "the training data is unusable" in told[0].condition


def test_without_enough_labelled_rows_the_run_fails_and_says_what_to_do(
    world: Workspace,
) -> None:
    make_loop(world, triggers=["manual"])
    run = loops.run("churn-loop", force=True, workspace=world).run
    assert run is not None
    assert run.status == "failed"
    assert "Only 0 labelled rows" in run.reason
    assert "/feedback" in run.reason


def test_a_schedule_trigger_fires_when_due(world: Workspace) -> None:
    make_loop(world, triggers=["every:2s"])
    serve(world, 3)
    time.sleep(2.1)
    outcome = loops.run("churn-loop", workspace=world)
    assert outcome.triggered == "every:2s"
    assert outcome.run is not None
    assert loops.run("churn-loop", workspace=world).triggered is None  # from the run's end


def test_a_replayed_history_is_judged_at_the_time_given(world: Workspace) -> None:
    make_loop(
        world,
        triggers=["every:7d"],
        train_data="reference + labelled predictions of the last 1d",
        promote_if=["accuracy >= champion.accuracy + 1"],  # never: each run is held
    )
    jan_1, day = 1_767_225_600_000_000, 86_400_000_000
    serve(world, 1, event_time_us=jan_1 + 3_600_000_000)  # served now, of January 1st
    serve(world, 2, seed=2, event_time_us=jan_1 + 7 * day + 3_600_000_000)  # of January 8th

    first = loops.run("churn-loop", now_us=jan_1 + day, workspace=world)
    assert first.triggered == "every:7d"
    assert first.run is not None
    assert first.run.status == "held", first.run.reason
    made = world.data.resolve(first.run.train_data, "default", record=False)
    assert "churn@1 + 700 labelled predictions of churn-prod" in made.message  # one day's rows
    # a week has not passed in the replayed time (months have, on the wall clock)
    assert loops.run("churn-loop", now_us=jan_1 + 2 * day, workspace=world).triggered is None
    second = loops.run("churn-loop", now_us=jan_1 + 8 * day, workspace=world).run
    assert second is not None
    assert second.status == "held", second.reason
    week_2 = world.data.resolve(second.train_data, "default", record=False)
    assert "churn@1 + 700 labelled predictions of churn-prod" in week_2.message
    assert read_dataset(world, week_2).num_rows == ROWS + 700  # January 8th's only
    assert second.started_at.timestamp() * 1e6 > jan_1 + 30 * day  # its real creation time


def test_of_two_runs_racing_for_a_loop_only_one_proceeds(world: Workspace) -> None:
    make_loop(world, triggers=["manual"])
    serve(world, 3)
    results: list[object] = []

    def go() -> None:
        try:
            results.append(loops.run("churn-loop", force=True, workspace=world))
        except LoopmlError as exc:
            results.append(exc)

    racers = [threading.Thread(target=go) for _ in range(2)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(120)
    conflicts = [r for r in results if isinstance(r, Conflict)]
    assert len(results) == 2
    assert len(conflicts) == 1
    assert "already running" in conflicts[0].message
    assert len(world.loops.history("churn-loop", "default")) == 1
    with world.loops.hold("churn-loop", "default"), pytest.raises(Conflict):
        loops.run("churn-loop", workspace=world)


@pytest.mark.parametrize(
    ("change", "error", "words"),
    [
        ({"deployment": "nope"}, NotFound, "Deployment 'nope'"),
        ({"pipeline": "missing.py:churn"}, InvalidInput, "missing.py"),
        ({"pipeline": PIPELINE.replace(":churn", ":nothing")}, InvalidInput, "not a @pipeline"),
        ({"data_param": "table"}, InvalidInput, "no parameter 'table'"),
        ({"triggers": ["alert:no-monitor"]}, InvalidInput, "names no monitor"),
        ({"triggers": ["sometimes"]}, InvalidInput, "trigger 'sometimes' cannot be read"),
        ({"promote_if": ["f1 better than champion"]}, InvalidInput, "cannot be read"),
        ({"promote_if": ["wow >= champion.wow"]}, InvalidInput, "'wow'"),
        ({"train_data": "reference"}, InvalidInput, "needs exactly one"),
        ({"train_data": "reference + some rows"}, InvalidInput, "'some rows' cannot be read"),
        ({"train_data": "gone@3 + labelled rows of the last 1d"}, NotFound, "gone"),
        ({"mode": "yolo"}, InvalidInput, "Unknown mode 'yolo'"),
        ({"notify": ["pager:x"]}, InvalidInput, "pager"),
    ],
)
def test_a_policy_naming_what_does_not_exist_is_refused(
    world: Workspace, change: dict[str, Any], error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words if words.isalnum() else None) as raised:
        make_loop(world, **change)
    assert words in str(raised.value)
    assert world.loops.list("default") == []
