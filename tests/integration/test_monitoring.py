"""Monitors over a real prediction log, on each metadata backend: create, run, history, report,
audit events, and bad input that stores nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from logged import frame, serve

from loopml.adapters.prediction_log import now_us
from loopml.bootstrap import Workspace
from loopml.errors import InvalidInput, NotFound
from loopml.monitoring import compare, monitors

HOUR_US = 3_600_000_000


def test_a_monitor_finds_the_drift_in_served_rows_and_keeps_its_runs(churn: Workspace) -> None:
    now = now_us()
    served = frame(3_000, seed=2, shift=0.5, new_plan=0.05)
    serve(churn, served, at_us=now, shadow_rows=500)
    monitor = monitors.create(
        "churn-drift", deployment="churn-prod", reference="churn", window="1h", workspace=churn
    )
    assert monitor.reference == "churn@1"
    assert (monitor.window_s, monitor.every_s) == (3600, 600)

    result = monitors.run("churn-drift", now_us=now, workspace=churn)
    assert result.run.rows == 3_000  # shadow rows were never answered: not monitored
    assert {"tenure", "plan"} <= set(result.report.drifted_features)
    direct = compare(frame(5_000, seed=1), served)  # the log and the summary lose nothing
    for name, want in direct.features.items():  # row order may move a sum by one ulp
        got = result.report.features[name]
        assert got.drifted == want.drifted
        assert got.effect_value == pytest.approx(want.effect_value, rel=1e-9)
        assert got.p_value == pytest.approx(want.p_value, rel=1e-6)
    assert "churned" not in result.report.features  # the label is not a model input
    assert result.report.features["plan"].findings == ["new_categories:student"]

    history = churn.monitors.history("churn-drift", "default")
    assert [r.id for r in history] == [result.run.id]
    assert history[0].drifted == tuple(result.report.drifted_features)
    document = monitors.report_document(result.run.id, workspace=churn)
    assert document["schema_version"] == 1
    assert document["reference"] == "churn@1"
    assert {f["name"] for f in document["features"]} == {"tenure", "monthly", "plan"}
    actions = [e.action for e in churn.audit.log(entity="monitor:default/churn-drift")]
    assert sorted(actions) == ["monitor.ran", "monitor.saved"]


def test_a_window_read_in_pieces_reports_what_it_reports_whole(
    churn: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopml.monitoring import window

    now = now_us()
    served = frame(2_000, seed=2, shift=0.5, new_plan=0.05)
    served.loc[::7, "monthly"] = None
    served = pd.concat([served, served.iloc[:150]])  # 150 rows served twice
    predicted = (served["tenure"] < 20).astype(int).tolist()
    labels = [p if i % 3 else None for i, p in enumerate(predicted)]
    serve(churn, served, at_us=now, shadow_rows=300, outputs=predicted, labels=labels)
    monitors.create("whole", deployment="churn-prod", reference="churn", workspace=churn)
    whole = monitors.run("whole", now_us=now, workspace=churn).document
    monkeypatch.setattr(window, "PIECE_ROWS", 7)
    monitors.create("pieces", deployment="churn-prod", reference="churn", workspace=churn)
    pieces = monitors.run("pieces", now_us=now, workspace=churn).document

    assert pieces["drifted_features"] == whole["drifted_features"]
    examples = [u.pop("examples") for u in pieces["quality"]["unreadable"]]
    assert [len(e) for e in examples] == [3]  # which three depends on the order pieces come in
    assert [u.pop("examples") for u in whole["quality"]["unreadable"]] != []
    assert pieces["quality"] == whole["quality"]
    assert pieces["quality"]["duplicate_rows"] > 0
    assert pieces["performance"] == whole["performance"]
    assert pieces["performance"]["labelled_rows"] == 1_433
    for mine, theirs in zip(pieces["features"], whole["features"], strict=True):
        assert mine["chart"] == theirs["chart"]
        assert mine["p_value"] == pytest.approx(theirs["p_value"], rel=1e-9, nan_ok=True)


def test_a_quiet_window_reports_no_drift(churn: Workspace) -> None:
    now = now_us()
    serve(churn, frame(3_000, seed=3), at_us=now)
    monitors.create("quiet", deployment="churn-prod", reference="churn@1", workspace=churn)
    result = monitors.run("quiet", now_us=now, workspace=churn)
    assert result.report.drifted_features == []
    document = monitors.report_document(result.run.id, workspace=churn)
    assert document["quality_issues"] == 0
    assert document["quality"]["missing_columns"] == ["churned"]


def test_a_window_with_no_rows_stores_nothing_and_says_why(churn: Workspace) -> None:
    now = now_us()
    serve(churn, frame(100, seed=4), at_us=now - 3 * HOUR_US)  # served, but long ago
    monitors.create("stale", deployment="churn-prod", reference="churn", workspace=churn)
    with pytest.raises(InvalidInput, match="served no rows") as refused:
        monitors.run("stale", now_us=now, workspace=churn)
    assert "widen the window" in refused.value.hint
    assert churn.monitors.history("stale", "default") == []


def test_bad_monitor_input_gets_clear_errors(churn: Workspace, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a table")
    churn.data.add(notes, name="notes", project="default")
    with pytest.raises(InvalidInput, match="no table profile"):
        monitors.create("m", deployment="churn-prod", reference="notes", workspace=churn)
    with pytest.raises(InvalidInput, match="is not a duration"):
        monitors.create("m", deployment="d", reference="churn", window="soon", workspace=churn)
    with pytest.raises(NotFound, match="Monitor 'nope' does not exist"):
        monitors.run("nope", workspace=churn)
    with pytest.raises(NotFound):
        monitors.create("m", deployment="d", reference="missing@3", workspace=churn)
    assert churn.monitors.list("default") == []  # nothing half-made


def test_parse_inputs_reads_every_row_of_the_window() -> None:
    import pyarrow as pa

    column = pa.chunked_array(
        [['{"a": 1, "b": "x"}', '{"a": 2.5, "b": null}'], ['{"a": 3, "b": "z"}']]
    )
    from loopml.monitoring.json_columns import read_objects

    table = read_objects(column.slice(1)).table
    assert table.column("a").to_pylist() == [2.5, 3.0]
    assert table.column("b").to_pylist() == [None, "z"]


def test_performance_decay_is_caught_when_a_fifth_of_the_labels_flip(churn: Workspace) -> None:
    churn.alerts.add_rule("perf", when="accuracy < 0.9", notify=["log:"], project="default")
    monitors.create(
        "perf", deployment="churn-prod", reference="churn", window="10m", workspace=churn
    )
    start = now_us() - 60 * 60_000_000
    rng = np.random.default_rng(9)
    firing = []
    for step, flipped in enumerate([0.0, 0.2]):
        at = start + step * 20 * 60_000_000
        served = frame(2_000, seed=60 + step)
        predicted = (served["tenure"] < 20).astype(int).tolist()
        labels = [1 - p if rng.random() < flipped else p for p in predicted]
        serve(churn, served, at_us=at, outputs=predicted, labels=labels)
        result = monitors.run("perf", now_us=at, workspace=churn)
        performance = result.document["performance"]
        assert performance["labelled_rows"] == 2_000
        assert performance["task"] == "classification"
        firing.append([a.state for a in result.alerts])
        if step == 0:
            assert result.document["accuracy"] == 1.0
        else:
            assert result.document["accuracy"] == pytest.approx(0.8, abs=0.03)
    assert firing == [[], ["firing"]]  # caught in the first window after the flip


def test_few_labels_give_no_metric(churn: Workspace) -> None:
    at = now_us()
    served = frame(500, seed=70)
    serve(churn, served, at_us=at, outputs=[1] * 500, labels=[1] * 10 + [None] * 490)
    monitors.create("perf", deployment="churn-prod", reference="churn", workspace=churn)
    document = monitors.run("perf", now_us=at, workspace=churn).document
    assert document["performance"]["labelled_rows"] == 10
    assert document["performance"]["metrics"] == {}
    assert "accuracy" not in document


def test_prediction_and_label_drift_against_the_models_outputs_on_the_reference(
    churn: Workspace,
) -> None:
    from sklearn.linear_model import LogisticRegression

    reference = frame(5_000, seed=1)[["tenure", "monthly"]]
    model = LogisticRegression().fit(reference, (reference["tenure"] < 20).astype(int))
    churn.registry.register(model, "churn", project="default", input_example=reference.head(3))
    monitors.create(
        "outputs",
        deployment="churn-prod",
        reference="churn",
        model="churn",
        label="churned",
        workspace=churn,
    )
    at = now_us()
    served = frame(2_000, seed=80, shift=-0.5)  # shorter tenure: more churn predicted
    predicted = model.predict(served[["tenure", "monthly"]]).tolist()
    serve(churn, served, at_us=at, outputs=predicted, labels=predicted)
    result = monitors.run("outputs", now_us=at, workspace=churn)
    report = result.report
    assert report is not None
    assert report.features["prediction"].kind == "categorical"
    assert report.features["churned"].current_rows == 2_000
    # the share counts the model's two inputs; the label and the prediction are reported apart
    assert report.drifted_features == ["tenure"]
    assert report.drift_share == 0.5
    assert report.label_drift is not None
    assert report.label_drift.drifted
    assert report.prediction_drift is not None
    assert report.prediction_drift.drifted
    document = result.document
    assert (document["drifted_count"], document["input_count"]) == (1, 2)
    assert document["label_drift"]["column"] == "churned"
    assert document["label_drift"]["drifted"] is True
    assert document["prediction_drift"]["column"] == "prediction"
    roles = {f["name"]: f["role"] for f in document["features"]}
    assert roles == {
        "tenure": "input",
        "monthly": "input",
        "prediction": "prediction",
        "churned": "label",
    }
    assert result.run.drifted == ("tenure",)


def test_weighted_drift_counts_the_inputs_the_model_looks_at(churn: Workspace) -> None:
    """The model decides on tenure alone: a drifted `monthly` is half the inputs but almost
    none of the model's importance, so a rule on `weighted_drift` stays quiet where one on
    `drift_share` fires; a drifted `tenure` is nearly all of it."""
    from sklearn.linear_model import LogisticRegression

    reference = frame(5_000, seed=1)[["tenure", "monthly"]]
    model = LogisticRegression().fit(reference, (reference["tenure"] < 20).astype(int))
    churn.registry.register(model, "churn", project="default", input_example=reference.head(3))
    monitors.create(
        "weighted", deployment="churn-prod", reference="churn", model="churn", window="10m",
        label="churned", workspace=churn,
    )  # fmt: skip
    for when in ("drift_share > 0.3", "weighted_drift > 0.3"):
        churn.alerts.add_rule("weighted", when=when, notify=["log:"], project="default")
    start = now_us() - 60 * 60_000_000
    fired = []
    for step, column in enumerate(["monthly", "tenure"]):
        at = start + step * 20 * 60_000_000
        served = frame(2_000, seed=90 + step)
        served[column] = served[column] + served[column].std()  # a shift of one spread
        predicted = model.predict(served[["tenure", "monthly"]]).tolist()
        serve(churn, served, at_us=at, outputs=predicted, labels=predicted)
        result = monitors.run("weighted", now_us=at, workspace=churn)
        assert result.report is not None
        assert result.report.drifted_features == [column]
        assert result.document["importance_source"] == "model"
        assert result.run.weighted_drift == pytest.approx(result.report.weighted_drift)
        fired.append(sorted(a.condition for a in result.alerts if a.state == "firing"))
        if column == "monthly":
            assert result.report.drift_share == 0.5
            assert result.report.weighted_drift < 0.1
        else:
            assert result.report.weighted_drift > 0.9
    assert fired == [["drift_share > 0.3"], ["weighted_drift > 0.3"]]
    (latest, _) = churn.monitors.history("weighted", "default")
    assert latest.weighted_drift is not None
    assert latest.weighted_drift > 0.9  # kept on the run record, for rules and history
    weights = monitors.report_document(latest.id, workspace=churn)["importance"]
    assert set(weights) == {"tenure", "monthly"}
    assert sum(weights.values()) == pytest.approx(1.0)
    assert weights["tenure"] > 0.9


def test_without_importances_weighted_drift_is_the_drift_share(churn: Workspace) -> None:
    at = now_us()
    serve(churn, frame(2_000, seed=95, shift=0.5), at_us=at)
    monitors.create("plain", deployment="churn-prod", reference="churn", workspace=churn)
    result = monitors.run("plain", now_us=at, workspace=churn)
    assert result.report is not None
    assert result.document["importance_source"] == "equal"
    assert result.document["importance"] == {}
    assert result.report.weighted_drift == result.report.drift_share > 0


def test_without_label_the_one_column_the_model_does_not_take_is_the_label(
    churn: Workspace, tmp_path: Path
) -> None:
    """The README's monitor (no --label) knows the label: runs measure the labels and never
    report the label column missing; with two such columns it leaves both out, unguessed."""
    from sklearn.linear_model import LogisticRegression

    reference = frame(5_000, seed=1)[["tenure", "monthly"]]
    model = LogisticRegression().fit(reference, (reference["tenure"] < 20).astype(int))
    churn.registry.register(model, "churn", project="default", input_example=reference.head(3))
    labelled = reference.assign(churned=(reference["tenure"] < 20).astype(int))
    labelled.to_parquet(tmp_path / "labelled.parquet")
    churn.data.add(tmp_path / "labelled.parquet", name="labelled", project="default")
    monitors.create(
        "plain", deployment="churn-prod", reference="labelled", model="churn", workspace=churn
    )
    at = now_us()
    served = frame(500, seed=81)[["tenure", "monthly"]]
    predicted = model.predict(served).tolist()
    serve(churn, served, at_us=at, outputs=predicted, labels=predicted)
    result = monitors.run("plain", now_us=at, workspace=churn)
    assert result.report is not None
    assert result.report.features["churned"].current_rows == 500  # read from the feedback
    assert result.document["quality"]["missing_columns"] == []
    assert result.document["accuracy"] == 1.0

    # churn@1 has plan and churned besides the model's inputs: neither is guessed as the label
    monitors.create(
        "two-extra", deployment="churn-prod", reference="churn", model="churn", workspace=churn
    )
    result = monitors.run("two-extra", now_us=at, workspace=churn)
    assert result.report is not None
    assert {"churned", "plan"}.isdisjoint(result.report.features)
    assert result.document["quality"]["missing_columns"] == []


def test_a_failing_monitor_is_one_notice_and_the_others_still_run(churn: Workspace) -> None:
    from pathlib import Path

    from loopml.monitoring.monitors import MonitorResult, NothingToMonitor

    now = now_us()
    serve(churn, frame(1_000, seed=5), at_us=now)
    for name, deployment in (("healthy", "churn-prod"), ("idle", "nobody")):
        monitors.create(name, deployment=deployment, reference="churn", every="1s", workspace=churn)
    broken = {"deployment": "churn-prod", "reference": "churn", "label": "churned"}  # own summary
    monitors.create("broken", **broken, every="1s", workspace=churn)
    churn.alerts.add_rule("broken", when="drift_share > 0.5", notify=["log:"], project="default")
    digest = churn.monitors.get("broken", "default").summary_digest
    assert digest is not None
    algorithm, hexdigest = digest.split(":")
    blob = Path(churn.settings.artifacts_url) / "blobs" / algorithm / hexdigest[:2] / hexdigest[2:]
    blob.unlink()  # its reference summary is gone: every run of it fails

    done = dict(monitors.run_due(now_us=now, workspace=churn))
    assert isinstance(done["broken"], NotFound)
    assert isinstance(done["healthy"], MonitorResult)  # not stopped by the broken one
    assert isinstance(done["idle"], NothingToMonitor)  # no rows: skipped, neither run nor alert
    assert churn.monitors.history("broken", "default") == []  # no fake healthy run for rules
    (notice,) = [a for a in churn.alerts.alerts("default", None) if a.target == "broken"]
    assert notice.rule_id == 0
    assert notice.condition.startswith("monitor run failed: ")
    assert [(d.channel, d.event) for d in notice.deliveries] == [("log:", "fired")]
    assert [a.target for a in churn.alerts.alerts("default", None)] == ["broken"]

    soon = monitors.run_due(now_us=now + 100_000, workspace=churn)
    assert [name for name, _ in soon] == ["idle"]  # the broken one waits for its schedule too
    again = dict(monitors.run_due(now_us=now + 5_000_000, workspace=churn))
    assert isinstance(again["broken"], NotFound)
    counted = churn.alerts.get(notice.id, "default")
    assert (counted.state, counted.value) == ("firing", 2.0)  # counted, nobody told twice
    assert len(counted.deliveries) == 1

    monitors.create("broken", **broken, every="1s", workspace=churn)  # summarised again
    fixed = dict(monitors.run_due(now_us=now + 10_000_000, workspace=churn))
    assert isinstance(fixed["broken"], MonitorResult)
    resolved = churn.alerts.get(notice.id, "default")
    assert resolved.state == "resolved"
    assert [d.event for d in resolved.deliveries] == ["fired", "resolved"]


def test_a_history_served_now_with_its_event_times_replays_window_by_window(
    churn: Workspace,
) -> None:
    from loopml.adapters.prediction_log import PredictionRecord
    from loopml.bootstrap import prediction_log_writer

    jan_1 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
    week = 7 * 24 * HOUR_US
    served_at = now_us()
    writer = prediction_log_writer(churn.settings)
    for index, rows in enumerate((300, 200, 100)):  # three weeks of history, all served now
        event = jan_1 + index * week
        writer.append(
            [
                PredictionRecord(
                    f"w{index}-{i}",
                    served_at + i,
                    "churn-prod",
                    "churn",
                    1,
                    '{"tenure": 3.0, "monthly": 50.0, "plan": "basic"}',
                    "0",
                    800,
                    "",
                    False,
                    event_time_us=event - 1_000 * (i + 1),  # within the hour before `event`
                )
                for i in range(rows)
            ]
        )
    writer.close()
    monitors.create("replay", deployment="churn-prod", reference="churn", workspace=churn)

    counts = [
        monitors.run("replay", now_us=jan_1 + index * week, workspace=churn).run.rows
        for index in range(3)
    ]
    assert counts == [300, 200, 100]
    runs = churn.monitors.history("replay", "default")
    assert sorted((r.window_start_us, r.window_end_us) for r in runs) == [
        (jan_1 + i * week - HOUR_US, jan_1 + i * week) for i in range(3)
    ]
    with pytest.raises(InvalidInput, match="served no rows"):  # served now, but of January
        monitors.run("replay", workspace=churn)
