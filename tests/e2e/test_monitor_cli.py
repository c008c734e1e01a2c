"""`loopml monitor ...` end to end, in-process, on a prediction log written for real."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd

from loopml.adapters.prediction_log import (
    FeedbackRecord,
    PredictionLogWriter,
    PredictionRecord,
    now_us,
)


def _frame(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "tenure": rng.normal(30.0 + shift, 10.0, rows),
            "plan": rng.choice(["basic", "pro"], rows).astype(object),
        }
    )


def _dataset_and_drifted_log(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _frame(2_000, seed=1).to_csv(tmp_path / "churn.csv", index=False)
    assert cli("data", "add", "churn.csv")[0] == 0
    writer = PredictionLogWriter(str(tmp_path / ".loopml" / "artifacts"))
    now = now_us()
    served = _frame(1_000, seed=2, shift=8.0).to_dict("records")
    writer.append(
        [
            PredictionRecord(
                f"r{i}",
                now - 1_000 * i,
                "churn-prod",
                "churn",
                1,
                json.dumps(row),
                "0",
                9,
                "",
                False,
            )
            for i, row in enumerate(served)
        ]
    )
    writer.close()


def test_monitor_and_alert_commands(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _dataset_and_drifted_log(cli, tmp_path)
    code, out, _ = cli(
        "monitor", "create", "churn-drift", "-d", "churn-prod", "-r", "churn@1", "--window", "1h"
    )
    assert code == 0
    assert "window 1h, every 10m" in out
    code, out, _ = cli(
        "alert", "rule", "add", "churn-drift", "--when", "drift_share > 0.3", "--notify", "log:"
    )
    assert code == 0
    assert "drift_share > 0.3 -> log:" in out
    code, out, _ = cli("monitor", "run", "churn-drift", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["drifted_features"] == ["tenure"]
    code, out, _ = cli("monitor", "run", "churn-drift")
    assert code == 0
    assert "drift share 50%: tenure" in out
    code, out, _ = cli("monitor", "history", "churn-drift", "--json")
    runs = json.loads(out)
    assert [r["rows"] for r in runs] == [1_000, 1_000]
    code, out, _ = cli("monitor", "report", str(runs[0]["id"]), "--format", "json")
    assert json.loads(out)["features"][0]["name"] == "tenure"
    code, out, _ = cli("monitor", "report", str(runs[0]["id"]))
    assert code == 0
    assert "DRIFT" in out
    code, out, _ = cli("monitor", "report", str(runs[0]["id"]), "--format", "html", "-o", "r.html")
    assert code == 0
    page = (tmp_path / "r.html").read_text()
    assert page.count("<svg") == 3  # two features and the history
    assert "Drift share over windows" in page
    assert "churn-drift" in cli("monitor", "list")[1]

    code, out, _ = cli("alert", "list", "--state", "firing", "--json")
    (alert,) = json.loads(out)
    assert alert["condition"] == "drift_share > 0.3"
    assert [d["ok"] for d in alert["deliveries"]] == [True]  # fired once, though both runs drift
    assert cli("alert", "ack", str(alert["id"]))[0] == 0
    code, out, _ = cli("alert", "show", str(alert["id"]))
    assert "acknowledged" in out
    assert "log:" in out
    code, _, err = cli("alert", "ack", str(alert["id"]))
    assert code == 1
    assert "only a firing alert" in err
    code, _, err = cli("alert", "list", "--state", "burning")
    assert code == 1
    assert "Unknown alert state" in err


JAN_1 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


def _january_log(tmp_path: Path) -> None:
    """300 rows like the reference, served now with event times in the hour before 2026."""
    writer = PredictionLogWriter(str(tmp_path / ".loopml" / "artifacts"))
    rows = _frame(300, seed=3).to_dict("records")
    writer.append(
        [
            PredictionRecord(
                f"jan-{i}",
                now_us(),
                "churn-prod",
                "churn",
                1,
                json.dumps(row),
                "0",
                9,
                "",
                False,
                event_time_us=JAN_1 - 1_000_000 * (i + 1),
            )
            for i, row in enumerate(rows)
        ]
    )
    writer.close()


def test_monitor_run_at_a_time_replays_the_window_ending_then(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _dataset_and_drifted_log(cli, tmp_path)  # served now: not in January's window
    _january_log(tmp_path)
    jan_1 = JAN_1
    assert cli("monitor", "create", "churn-drift", "-d", "churn-prod", "-r", "churn@1")[0] == 0
    code, out, err = cli("monitor", "run", "churn-drift", "--at", "2026-01-01T00:00:00Z", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert (report["window_start_us"], report["window_end_us"]) == (jan_1 - 3_600_000_000, jan_1)
    code, out, _ = cli("monitor", "run", "churn-drift", "--at", str(jan_1 // 1_000_000))
    assert code == 0
    code, out, _ = cli("monitor", "history", "churn-drift", "--json")
    assert [r["rows"] for r in json.loads(out)] == [300, 300]
    code, out, err = cli("monitor", "run", "churn-drift", "--at", "new year")
    assert code == 1
    assert "--at 'new year' is refused: 'new year' is not an ISO-8601 time" in err
    assert "--at 2026-01-01T00:00:00Z" in err
    assert "Traceback" not in err


def test_monitor_run_json_lists_the_alerts_it_fired_and_resolved(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _dataset_and_drifted_log(cli, tmp_path)  # drifted, served now
    _january_log(tmp_path)  # calm, in January
    assert cli("monitor", "create", "churn-drift", "-d", "churn-prod", "-r", "churn@1")[0] == 0
    code, out, err = cli(
        "alert", "rule", "add", "churn-drift", "--when", "drift_share > 0.3",
        "--resolve-after", "1", "--resolve-margin", "0.1", "--json",
    )  # fmt: skip
    assert code == 0, err
    rule = json.loads(out)
    assert (rule["resolve_after"], rule["resolve_margin"]) == (1, 0.1)
    code, out, _ = cli("monitor", "run", "churn-drift", "--json")
    assert code == 0
    fired = {"id": 1, "rule": rule["id"], "condition": "drift_share > 0.3", "value": 0.5}
    assert json.loads(out)["alerts"] == {"fired": [fired], "resolved": []}
    code, out, _ = cli("monitor", "run", "churn-drift", "--json")
    assert json.loads(out)["alerts"] == {"fired": [], "resolved": []}  # still firing: no news
    code, out, _ = cli("monitor", "run", "churn-drift", "--at", "2026-01-01T00:00:00Z", "--json")
    assert code == 0
    resolved = {**fired, "value": 0.0}  # 0 is past 0.3 by the margin
    assert json.loads(out)["alerts"] == {"fired": [], "resolved": [resolved]}
    code, out, _ = cli("alert", "rule", "list")
    assert "by a margin of 0.1" in out


def test_bad_alert_resolutions_are_refused_with_the_flag_to_fix(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for flag, value, words in [
        ("--resolve-after", "0", "resolve_after is 0"),
        ("--resolve-after", "-2", "resolve_after is -2"),
        ("--resolve-margin", "-0.5", "resolve_margin is -0.5"),
    ]:
        code, _, err = cli(
            "alert", "rule", "add", "churn-drift", "--when", "accuracy < 0.8", flag, value
        )
        assert code == 1, (flag, value, err)
        assert words in err
        assert flag in err
        assert "Traceback" not in err
    code, _, err = cli("alert", "rule", "add", "m", "--when", "rows == 0", "--resolve-margin", "1")
    assert code == 1
    assert "no side to clear" in err
    assert cli("alert", "rule", "list", "--json")[1].strip() == "[]"


def _labelled_log(tmp_path: Path, rows: int = 200) -> None:
    """Served rows of churn-prod, each answered 0 or 1 with its class probabilities, and the
    true label fed back for each: right three times in four."""
    writer = PredictionLogWriter(str(tmp_path / ".loopml" / "artifacts"))
    now = now_us()
    served = _frame(rows, seed=3).to_dict("records")
    outputs = [i % 2 for i in range(rows)]
    writer.append(
        [
            PredictionRecord(
                f"r{i}",
                now - 1_000 * i,
                "churn-prod",
                "churn",
                1,
                json.dumps(row),
                str(outputs[i]),
                9,
                "",
                False,
                json.dumps([0.3, 0.7] if outputs[i] else [0.7, 0.3]),
            )
            for i, row in enumerate(served)
        ]
    )
    labels = [1 - out if i % 4 == 0 else out for i, out in enumerate(outputs)]
    writer.append_feedback(
        [FeedbackRecord(f"r{i}", now, "churn-prod", str(label)) for i, label in enumerate(labels)]
    )
    writer.close()


def test_monitor_run_and_history_show_the_performance_the_report_holds(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _frame(2_000, seed=1).to_csv(tmp_path / "churn.csv", index=False)
    assert cli("data", "add", "churn.csv")[0] == 0
    _labelled_log(tmp_path)
    assert cli("monitor", "create", "churn-drift", "-d", "churn-prod", "-r", "churn@1")[0] == 0
    code, out, _ = cli("monitor", "run", "churn-drift")
    assert code == 0
    summary = out.splitlines()[0]
    assert "accuracy 0.750" in summary
    assert "200 labelled rows" in summary
    for metric in ("precision", "recall", "f1", "roc_auc", "log_loss"):
        assert metric in out
    code, out, _ = cli("monitor", "history", "churn-drift")
    assert code == 0
    header = out.splitlines()[0]
    for column in ("labelled", "accuracy", "f1", "roc_auc", "drift share"):
        assert column in header
    assert "0.750" in out.splitlines()[2]
    code, out, _ = cli("monitor", "report", "1")
    assert "accuracy" in out
    assert "0.750" in out
    code, out, _ = cli("monitor", "history", "churn-drift", "--json")
    (run,) = json.loads(out)
    assert run["rows"] == 200


def test_a_monitor_without_labels_shows_no_performance(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _dataset_and_drifted_log(cli, tmp_path)
    assert cli("monitor", "create", "churn-drift", "-d", "churn-prod", "-r", "churn@1")[0] == 0
    _, out, _ = cli("monitor", "run", "churn-drift")
    assert "accuracy" not in out
    _, out, _ = cli("monitor", "history", "churn-drift")
    assert "accuracy" not in out
    assert "labelled" not in out


def test_html_report_says_where_it_wrote_and_takes_a_folder(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _dataset_and_drifted_log(cli, tmp_path)
    assert cli("monitor", "create", "churn-drift", "-d", "churn-prod", "-r", "churn@1")[0] == 0
    assert cli("monitor", "run", "churn-drift")[0] == 0
    code, out, _ = cli("monitor", "report", "1", "--format", "html")
    assert code == 0
    default = tmp_path / "monitor-run-1.html"
    assert out == f"wrote {default}\n"
    assert "<svg" in default.read_text()
    (tmp_path / "reports").mkdir()
    code, out, _ = cli("monitor", "report", "1", "--format", "html", "--output", "reports")
    assert out == f"wrote {tmp_path / 'reports' / 'monitor-run-1.html'}\n"
    code, out, _ = cli("monitor", "report", "1", "-f", "html", "-o", "reports/latest.html")
    assert out == f"wrote {tmp_path / 'reports' / 'latest.html'}\n"
    assert (tmp_path / "reports" / "latest.html").is_file()
    code, _, err = cli("monitor", "report", "1", "-f", "html", "-o", "nowhere/r.html")
    assert code == 1
    assert "nowhere" in err


def test_monitor_command_errors(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _dataset_and_drifted_log(cli, tmp_path)
    code, _, err = cli("monitor", "run", "nope")
    assert code == 1
    assert "Monitor 'nope' does not exist" in err
    code, _, err = cli("monitor", "report", "1", "--format", "pdf")
    assert code == 1
    assert "Unknown format 'pdf'" in err
    code, _, err = cli("monitor", "create", "m", "-d", "x", "-r", "churn", "--every", "soon")
    assert code == 1
    assert "'soon' is not a duration" in err


class _Ready(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"ready": true}'
        self.send_response(200 if self.path == "/v2/health/ready" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_health_monitor_alerts_when_the_server_is_down(cli) -> None:  # type: ignore[no-untyped-def]
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ready)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    code, out, _ = cli(
        "monitor", "create", "churn-health", "-d", "churn-prod", "--probe", url, "--every", "1s"
    )
    assert code == 0
    assert f"probing {url}" in out
    rule = ["alert", "rule", "add", "churn-prod", "--when", "down for 2 windows", "--cooldown", "0"]
    assert cli(*rule)[0] == 0  # on the deployment: heard by its health monitors

    code, out, _ = cli("monitor", "serve", "--once")
    assert "churn-health: run 1: up (200" in out
    server.shutdown()
    server.server_close()
    outs = []
    for _ in range(2):
        time.sleep(1.05)  # the schedule: every second
        outs.append(cli("monitor", "serve", "--once")[1])
    assert "DOWN (" in outs[0]
    assert "Connection refused" in outs[0]
    assert "alert" not in outs[0]  # one down window is not yet "for 2 windows"
    assert "alert 1 firing" in outs[1]
    code, out, _ = cli("alert", "list", "--state", "firing", "--json")
    assert json.loads(out)[0]["condition"] == "down for 2 windows"
    code, out, _ = cli("monitor", "history", "churn-health", "--json")
    assert [r["rows"] for r in json.loads(out)] == [0, 0, 0]
    code, out, _ = cli("monitor", "history", "churn-health")
    header, _, *lines = out.splitlines()
    assert "drift" not in out
    for column in ("state", "probe ms", "p99 ms", "error rate"):
        assert column in header
    assert ["DOWN" in line for line in lines] == [True, True, False]
    assert "Connection refused" in lines[0]


def test_a_known_models_monitor_shows_weighted_drift_and_label_apart(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The model decides on tenure alone; `monthly` drifts: half the inputs, almost none of the
    model's importance. The label and the prediction are shown apart from the share."""
    from sklearn.linear_model import LogisticRegression

    from loopml.bootstrap import open_workspace

    rng = np.random.default_rng(4)
    reference = pd.DataFrame(
        {"tenure": rng.normal(30, 10, 2_000), "monthly": rng.normal(60, 15, 2_000)}
    )
    reference["churned"] = (reference["tenure"] < 25).astype(int)
    reference.to_csv(tmp_path / "churn.csv", index=False)
    assert cli("data", "add", "churn.csv")[0] == 0
    inputs = reference[["tenure", "monthly"]]
    model = LogisticRegression(max_iter=1000).fit(inputs, reference["churned"])
    ws = open_workspace()
    ws.registry.register(model, "churn", project="default", input_example=inputs.head(3))
    ws.deployments.create("churn-prod", project="default", model="churn/1")
    ws.close()
    served = pd.DataFrame(
        {"tenure": rng.normal(30, 10, 1_000), "monthly": rng.normal(80, 15, 1_000)}
    )
    outputs = model.predict(served).tolist()
    writer = PredictionLogWriter(str(tmp_path / ".loopml" / "artifacts"))
    now = now_us()
    writer.append(
        [
            PredictionRecord(f"r{i}", now - 1_000 * i, "churn-prod", "churn", 1,
                             json.dumps(row), str(outputs[i]), 9, "", False)
            for i, row in enumerate(served.to_dict("records"))
        ]
    )  # fmt: skip
    writer.close()

    code, out, err = cli("monitor", "create", "churn-drift", "-d", "churn-prod", "-r", "churn@1")
    assert code == 0, err
    assert "(label column churned)" in out
    code, out, _ = cli("monitor", "run", "churn-drift")
    summary = out.splitlines()[0]
    assert "drift share 50% (weighted " in summary
    assert summary.split("(weighted ")[1].startswith(("0%", "1%", "2%"))
    assert "monthly" in summary
    assert "prediction drifted" not in summary
    code, out, _ = cli("monitor", "report", "1")
    assert "50% of 2 inputs, weighted by the model's importance" in out
    assert "prediction: no drift (jensen_shannon" in out
    assert "churned: no values in this window" in out  # no label was fed back
    assert "churned (label)" in out
    code, out, _ = cli("monitor", "history", "churn-drift")
    assert "weighted drift" in out.splitlines()[0]
