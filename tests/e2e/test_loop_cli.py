"""`loopml loop ...` from the command line: clear errors for bad policies, a run that fails
with its reason and exit 1, the history as JSON, and a busy loop refused."""

from __future__ import annotations

import json
from pathlib import Path

from loopml.bootstrap import open_workspace
from loopml.cli.demo import period
from loopml.monitoring import monitors
from loopml.pipelines import run_pipeline
from loopml.settings import Settings
from loopml.steps import load_pipeline

PIPELINE = str(Path(__file__).parents[2] / "src" / "loopml" / "cli" / "demo_pipeline.py")


def _world(folder: Path) -> None:
    ws = open_workspace(Settings.from_env(env={}, cwd=folder))
    try:
        period(0, 600, seed=0).to_csv(folder / "first.csv", index=False)
        ws.data.add(folder / "first.csv", name="churn", project="default")
        run_pipeline(load_pipeline(f"{PIPELINE}:churn"), {"dataset": "churn@1"}, workspace=ws)
        ws.registry.promote("churn", 1, project="default")
        ws.deployments.create("churn-prod", project="default", model="churn@champion")
        monitors.create(
            "churn-drift",
            deployment="churn-prod",
            reference="churn@1",
            label="churned",
            workspace=ws,
        )
    finally:
        ws.close()


def test_loop_commands_explain_refuse_run_and_report(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _world(tmp_path)
    base = [
        "loop",
        "create",
        "churn-loop",
        "--deployment",
        "churn-prod",
        "--pipeline",
        f"{PIPELINE}:churn",
        "--trigger",
        "alert:churn-drift",
    ]
    code, _, err = cli(*base, "--promote-if", "f1 is better")
    assert code == 1
    assert "error: The gate rule 'f1 is better' cannot be read." in err
    assert "Traceback" not in err
    assert "champion.f1 + 0.005" in err
    code, _, err = cli(*base, "--promote-if", "f1 >= champion.f1", "--mode", "sometimes")
    assert code == 1
    assert "Unknown mode 'sometimes'" in err
    code, _, err = cli(*base, "--promote-if", "f1 >= champion.f1", "--param", "lr")
    assert code == 1
    assert "--param 'lr' is not KEY=VALUE" in err
    _a_bad_horizon_is_refused_and_nothing_saved(cli, base)

    code, out, err = cli(
        *base,
        "--promote-if",
        "f1 >= champion.f1",
        "--guard",
        "latency_p99_ms <= 1.2 * champion.latency_p99_ms",
        "--param",
        "c=0.5",
        "--horizon",
        "800",
    )
    assert code == 0, err
    code, out, _ = cli("loop", "show", "churn-loop", "--json")
    shown = json.loads(out)
    assert shown["horizon"] == 800
    assert shown["params"] == {"c": 0.5}
    assert shown["mode"] == "auto"
    assert shown["train_data"] == "reference + labelled predictions of the last 30d"

    code, out, _ = cli("loop", "run", "churn-loop")
    assert code == 0
    assert "no trigger fired" in out
    code, out, _ = cli("loop", "run", "churn-loop", "--at", "2026-01-01T00:00:00Z")
    assert code == 0
    assert "no trigger fired" in out
    code, _, err = cli("loop", "run", "churn-loop", "--at", "2026-01-01 noon")
    assert code == 1
    assert "--at '2026-01-01 noon' is refused" in err
    assert "Traceback" not in err
    code, out, _ = cli("loop", "run", "churn-loop", "--now")
    assert code == 1
    assert "failed" in out
    assert "Only 0 labelled rows" in out
    code, out, _ = cli("loop", "history", "churn-loop", "--json")
    (run,) = json.loads(out)
    assert run["trigger"] == "manual"
    assert run["status"] == "failed"
    assert run["champion"] == 1
    code, out, _ = cli("alert", "list", "--json")
    assert any(a["target"] == "churn-loop" for a in json.loads(out))

    _busy_loop_is_refused(cli, tmp_path)
    code, out, _ = cli("loop", "delete", "churn-loop")
    assert code == 0
    code, _, err = cli("loop", "history", "churn-loop")
    assert code == 1
    assert "loop create" in err


def _a_bad_horizon_is_refused_and_nothing_saved(cli, base: list[str]) -> None:  # type: ignore[no-untyped-def]
    code, _, err = cli(*base, "--promote-if", "f1 >= champion.f1", "--horizon", "0")
    assert code == 1
    assert "The horizon 0 is not a positive number of rows." in err
    code, out, _ = cli("loop", "list", "--json")
    assert code == 0
    assert json.loads(out) == []


def _busy_loop_is_refused(cli, folder: Path) -> None:  # type: ignore[no-untyped-def]
    ws = open_workspace(Settings.from_env(env={}, cwd=folder))
    try:
        with ws.loops.hold("churn-loop", "default"):
            code, _, err = cli("loop", "run", "churn-loop", "--now")
    finally:
        ws.close()
    assert code == 1
    assert "is already running" in err


def test_the_monitor_scheduler_runs_due_loops(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import time

    _world(tmp_path)
    code, _, err = cli(
        "loop", "create", "churn-loop", "--deployment", "churn-prod",
        "--pipeline", f"{PIPELINE}:churn", "--trigger", "every:1s",
        "--promote-if", "accuracy >= champion.accuracy",
    )  # fmt: skip
    assert code == 0, err
    time.sleep(1.1)
    code, out, _ = cli("monitor", "serve", "--once")
    assert code == 0
    assert "loop churn-loop: run 1: failed" in out  # due, but no labelled rows were served
    code, out, _ = cli("loop", "list", "--json")
    assert json.loads(out)[0]["last_run"]["reason"].startswith("Only 0 labelled rows")
