"""`loopml demo`: the whole loop, offline, on data it generates, in a folder you can explore after.

A churn problem (numbers, a category, a short text note) over several periods. The world
changes from the middle on: monthly prices shift up, a new plan ("student") appears, new words
arrive in the notes ("outage", "refund"), and the relation to churn moves (students and outages
now churn). The demo versions the first period, trains and registers v1, promotes it, serves it
on a free local port, replays each later period as HTTP traffic with labels fed back, monitors
each window, sends alerts to the log and to a webhook receiver it runs, retrains on the
reference plus the newly labelled rows when an alert fires, gates the challenger against the
champion on recent rows it never trained on, promotes it (the server swaps live), and shows the
served accuracy recovering.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

WORDS = ["great", "slow", "support", "price", "app", "fast", "helpful", "billing", "contract"]
NEW_WORDS = ["outage", "refund"]
SHIFT_FROM = 3
"""The first period in which the world has changed."""
BATCH = 100
"""Rows per HTTP request when replaying a period."""
WINDOW_S = 4
"""The health monitor's window and the loop's watch: periods are at least this far apart."""
DRIFT_WINDOW_S = 60
"""The drift monitor's window. It opens as a period's traffic starts and is run before the next
period starts, so it holds that period's rows alone, however slowly a busy machine replays them
(a 4 s window lost a period's last 300 rows when the replay took longer)."""


def period(index: int, rows: int, seed: int) -> Any:
    """The rows of period `index`, with their true `churned` label."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed * 1000 + index)
    changed = index >= SHIFT_FROM
    tenure = rng.integers(0, 72, rows)
    monthly = rng.normal(75.0 if changed else 60.0, 15.0, rows).round(2)
    plans = np.array(["basic", "pro", "family"], dtype=object)[
        rng.choice(3, rows, p=[0.5, 0.3, 0.2])
    ]
    if changed:
        plans[rng.random(rows) < 0.2] = "student"
    vocabulary = np.array(WORDS + (NEW_WORDS if changed else []), dtype=object)
    weights = np.ones(vocabulary.size)
    if changed:
        weights[-2:] = 6.0
    weights /= weights.sum()
    notes = [" ".join(rng.choice(vocabulary, rng.integers(3, 7), p=weights)) for _ in range(rows)]
    logit = 1.0 - 0.06 * tenure + 0.03 * (monthly - 60.0) + 0.6 * (plans == "basic")
    if changed:
        outage = np.array(["outage" in n for n in notes])
        logit = logit + 3.0 * (plans == "student") + 2.5 * outage
    churned = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame(
        {"tenure": tenure, "monthly": monthly, "plan": plans, "note": notes, "churned": churned}
    )


@dataclass
class Step:
    period: int
    rows: int = 0
    drift_share: float = 0.0
    drifted: list[str] = field(default_factory=list)
    accuracy: float | None = None
    alerts: int = 0
    version: int = 0
    action: str = ""
    loop: str = ""
    """The action in a few words, for the timeline's table."""
    replayed_at: float = 0.0
    """When the last row of the period was served (monotonic seconds)."""


def run_demo(
    folder: Path, periods: int, rows: int, seed: int, say: Any, learner: str = "logistic"
) -> list[Step]:
    """The whole loop in `folder`, fitting `learner` (the pipeline's `learner` parameter);
    `say(text)` reports progress. Returns the timeline."""
    from loopml.bootstrap import open_workspace, prediction_log_reader, prediction_log_writer
    from loopml.cli import demo_pipeline
    from loopml.cli.demo_services import Hooks, InProcessServer
    from loopml.pipelines import run_pipeline
    from loopml.serving.app import create_app
    from loopml.serving.host import ModelHost
    from loopml.serving.log_sink import LogSink
    from loopml.settings import Settings
    from loopml.steps import load_pipeline

    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text("A workspace made by `loopml demo`: `--force` may clear it.\n")
    (folder / "data").mkdir(exist_ok=True)
    pipeline_file = folder / "pipeline.py"
    pipeline_file.write_text(Path(demo_pipeline.__file__).read_text())
    ws = open_workspace(Settings.from_env(env={"LOOPML_ACTOR": "demo"}, cwd=folder))
    project = ws.project
    hooks = Hooks.serve()
    hook_url = f"http://127.0.0.1:{hooks.server_address[1]}/hook"

    period(0, rows, seed).to_csv(folder / "data" / "period-0.csv", index=False)
    reference = ws.data.add(folder / "data" / "period-0.csv", name="churn", project=project)
    first = f"churn@{reference.version.version}"
    say(f"versioned the first period as {first}")
    params = {"dataset": first, "learner": learner}
    trained = run_pipeline(
        load_pipeline(f"{pipeline_file}:churn"), params, workspace=ws, project=project
    )
    if not trained.ok:
        raise RuntimeError(f"the demo pipeline failed: {trained.run.error}")
    champion = ws.registry.resolve("churn", project).version
    ws.registry.promote("churn", champion, project=project)
    say(f"ran pipeline.py on {first}: churn {champion}, promoted to champion")

    _set_up_watch(ws, f"{pipeline_file}:churn", first, ["log:", f"webhook:{hook_url}"], learner)
    say("made deployment churn-prod, monitor churn-drift, two alert rules, loop churn-loop")

    host = ModelHost(ws, "churn-prod", "churn@champion", project=project, poll_s=0.3)
    sink = LogSink(prediction_log_writer(ws.settings), prediction_log_reader(ws.settings))
    timeline: list[Step] = []
    with InProcessServer(create_app({"churn-prod": host}, sink)) as url:
        say(f"serving churn@champion on {url}")
        _probe(ws, url)
        for index in range(1, periods):
            step = _one_period(ws, url, host, sink, index, rows, seed, say)
            timeline.append(step)
            rest = step.replayed_at + WINDOW_S + 0.2 - time.monotonic()
            if rest > 0:  # the health window and the loop's watch see one period at a time
                time.sleep(rest)
    host.stop()
    sink.close()
    hooks.shutdown()
    hooks.server_close()
    (folder / "webhook-received.json").write_text(json.dumps(Hooks.received, indent=2))
    ws.close()
    return timeline


def _set_up_watch(
    ws: Any, pipeline: str, first: str, channels: list[str], learner: str = "logistic"
) -> None:
    """The deployment, its drift monitor, two alert rules, and the loop that retrains (with
    the same learner)."""
    from loopml import loops
    from loopml.monitoring import monitors

    ws.deployments.create("churn-prod", project=ws.project, model="churn@champion")
    monitors.create(
        "churn-drift",
        deployment="churn-prod",
        reference=first,
        label="churned",
        window=f"{DRIFT_WINDOW_S}s",
        every="1s",
        workspace=ws,
    )
    ws.alerts.add_rule("churn-drift", when="drift_share > 0.2", notify=channels, project=ws.project)
    ws.alerts.add_rule("churn-drift", when="accuracy < 0.7", notify=channels, project=ws.project)
    loops.create(
        "churn-loop",
        deployment="churn-prod",
        pipeline=pipeline,
        triggers=["alert:churn-drift", "performance"],
        train_data="reference + all labelled predictions",
        promote_if=["accuracy >= champion.accuracy"],
        guards=["latency_p99_ms <= 5 * champion.latency_p99_ms"],
        confidence=0.9,
        watch=f"{WINDOW_S}s",
        notify=channels,
        params={"learner": learner},
        workspace=ws,
    )


def _probe(ws: Any, url: str) -> None:
    """A health monitor of the server: readiness, and its error rate between probes."""
    from loopml.monitoring import monitors

    monitors.create(
        "churn-health", deployment="churn-prod", probe=url, window=f"{WINDOW_S}s", workspace=ws
    )
    monitors.run("churn-health", workspace=ws)  # the baseline of the server's counters


def _one_period(
    ws: Any, url: str, host: Any, sink: Any, index: int, rows: int, seed: int, say: Any
) -> Step:
    """Replay period `index`, monitor its window, then let the loop decide."""
    from loopml import loops
    from loopml.monitoring import monitors

    step = Step(index)
    started_us = time.time_ns() // 1000  # the window opens as the period's traffic starts
    _replay(url, period(index, rows, seed))
    step.replayed_at = time.monotonic()
    sink.flush()
    monitors.run("churn-health", workspace=ws)
    end_us = started_us + DRIFT_WINDOW_S * 1_000_000
    result = monitors.run("churn-drift", now_us=end_us, workspace=ws)
    report = result.report
    assert report is not None
    step.rows = result.run.rows
    step.drift_share = report.drift_share
    step.drifted = report.drifted_features
    step.accuracy = result.document.get("accuracy")
    step.alerts = sum(a.state == "firing" for a in result.alerts)
    step.version = host.current.version.version
    outcome = loops.run("churn-loop", workspace=ws)
    step.action, step.loop = _action(outcome), _loop_cell(outcome)
    promoted = [r for r in (outcome.run, outcome.decided) if r is not None]
    if any(r.status == "promoted" for r in promoted):
        deadline = time.monotonic() + 10  # the server follows the alias: wait for the swap
        while host.current.version.version == step.version and time.monotonic() < deadline:
            time.sleep(0.1)
    accuracy = "-" if step.accuracy is None else f"{step.accuracy:.2f}"
    say(
        f"period {index}: {step.rows} rows, drift share {step.drift_share:.0%}, accuracy "
        f"{accuracy}{f', {step.alerts} alert(s)' if step.alerts else ''}"
        f"{f', {step.action}' if step.action else ''}"
    )
    return step


def _action(outcome: Any) -> str:
    """What the loop did this period, in a few words."""
    parts = []
    watched = outcome.watched
    if watched is not None:
        parts.append(f"watch of churn {watched.watch.get('model')}: {watched.watch.get('state')}")
    decided = outcome.decided
    if decided is not None and decided.status != "waiting":
        parts.append(f"waiting challenger {decided.challenger}: {decided.status}")
    run = outcome.run
    if run is not None and run.status == "promoted":
        before = run.scores.get("champion", {}).get("accuracy", float("nan"))
        after = run.scores.get("challenger", {}).get("accuracy", float("nan"))
        parts.append(
            f"retrained on {run.train_data}, promoted churn {run.challenger} "
            f"(holdout accuracy {after:.2f} vs {before:.2f})"
        )
    elif run is not None:
        parts.append(f"retrained: {run.status}: {run.reason}")
    return "; ".join(parts)


def _loop_cell(outcome: Any) -> str:
    """The loop's action in the fewest words: `promoted v2 (0.86 vs 0.53)`."""
    parts = []
    if outcome.watched is not None:
        parts.append(f"v{outcome.watched.watch.get('model')} {outcome.watched.watch.get('state')}")
    decided = outcome.decided
    if decided is not None and decided.status != "waiting":
        parts.append(f"v{decided.challenger} {decided.status}")
    run = outcome.run
    if run is not None and run.status == "promoted":
        before = run.scores.get("champion", {}).get("accuracy", float("nan"))
        after = run.scores.get("challenger", {}).get("accuracy", float("nan"))
        parts.append(f"promoted v{run.challenger} ({after:.2f} vs {before:.2f})")
    elif run is not None:
        parts.append(f"retrained: {run.status}")
    return "; ".join(parts)


def _replay(url: str, frame: Any) -> None:
    """Serve the period's rows over HTTP, then feed back the true labels."""
    from loopml.cli.demo_services import post_json
    from loopml.serving.frames import MAX_ROWS  # items the server takes per feedback request

    inputs = frame.drop(columns=["churned"]).to_dict("records")
    labels = frame["churned"].tolist()
    feedback = []
    for start in range(0, len(inputs), BATCH):
        answer = post_json(f"{url}/predict", {"rows": inputs[start : start + BATCH]})
        chunk = labels[start : start + BATCH]
        feedback += [
            {"request_id": rid, "label": label}
            for rid, label in zip(answer["request_ids"], chunk, strict=True)
        ]
    for start in range(0, len(feedback), MAX_ROWS):
        post_json(f"{url}/feedback", feedback[start : start + MAX_ROWS])


MARKER = ".loopml-demo"
"""The file that marks a folder as a workspace `loopml demo` made (`--force` clears no other)."""


def demo_folder(folder: Path, force: bool) -> tuple[Path, str | None]:
    """Where this run goes, and what was done about an earlier one (None: nothing was there).
    An earlier demo's folder is cleared with `force`, else the run takes the first fresh
    `FOLDER-2`, `FOLDER-3`, ...; a workspace the demo did not make is never touched."""
    from loopml.errors import InvalidInput

    if not (folder / ".loopml").exists():
        return folder, None
    if not _made_by_demo(folder):
        raise InvalidInput(
            f"{folder} holds a loopml workspace that `loopml demo` did not make; it is left "
            "as it is.",
            "Pass another --dir for the demo.",
        )
    if force:
        for entry in folder.iterdir():  # the folder itself stays: a shell may be in it
            if entry.is_dir() and not entry.is_symlink():
                import shutil

                shutil.rmtree(entry)
            else:
                entry.unlink()
        return folder, f"cleared the earlier demo in {folder} (--force); running it again there"
    number = 2
    while (fresh := folder.with_name(f"{folder.name}-{number}")).exists():
        number += 1
    return fresh, (
        f"{folder} holds an earlier demo, so this one runs in {fresh} "
        f"(`loopml demo --dir {folder} --force` clears it and runs there)"
    )


def _made_by_demo(folder: Path) -> bool:
    """The marker, or (a demo before the marker) the demo's pipeline and first period."""
    from loopml.cli import demo_pipeline

    if (folder / MARKER).is_file():
        return True
    pipeline, first = folder / "pipeline.py", folder / "data" / "period-0.csv"
    source = Path(demo_pipeline.__file__).read_text()
    return first.is_file() and pipeline.is_file() and pipeline.read_text() == source


def demo(
    folder: Path = typer.Option(
        Path("loopml-demo"), "--dir", help="Where the demo workspace goes."
    ),
    periods: int = typer.Option(6, "--periods", min=4, max=20, help="Periods of the timeline."),
    rows: int = typer.Option(3000, "--rows", min=500, help="Rows per period."),
    seed: int = typer.Option(0, "--seed", help="Seed of the generated world."),
    force: bool = typer.Option(
        False,
        "--force",
        help="Clear an earlier demo in --dir and run there (by default a fresh DIR-2, DIR-3, "
        "... is taken); a workspace the demo did not make is never cleared.",
    ),
    learner: str = typer.Option(
        "logistic",
        "--learner",
        help="The model the pipeline fits: logistic (scikit-learn) or lightgbm (needs "
        "loopml[lightgbm]; registered in LightGBM's own format).",
    ),
) -> None:
    """Run the whole loop on generated data: version, train, serve, monitor, alert, retrain,
    gate, promote; then print the timeline and the commands to look at what happened."""
    from rich.console import Console

    from loopml.cli.demo_view import look_around, timeline_table

    _check_learner(learner)
    console = Console(log_path=False)
    folder, note = demo_folder(folder, force)
    if note:
        console.print(note)
    began = time.monotonic()
    with console.status("running the loop...") as status:
        timeline = run_demo(folder, periods, rows, seed, lambda text: console.log(text), learner)
        status.update("done")
    console.print(timeline_table(timeline))
    console.print(f"finished in {time.monotonic() - began:.0f} s. Look around:")
    for command in look_around(folder):
        console.print(f"  {command}", soft_wrap=False)


def _check_learner(learner: str) -> None:
    """InvalidInput for a learner the pipeline has not, or whose library is missing."""
    import importlib.util

    from loopml.cli.demo_pipeline import LEARNERS
    from loopml.errors import InvalidInput

    if learner not in LEARNERS:
        raise InvalidInput(f"--learner is {learner!r}.", f"Use one of: {', '.join(LEARNERS)}.")
    if learner == "lightgbm" and importlib.util.find_spec("lightgbm") is None:
        raise InvalidInput(
            "--learner lightgbm fits a LightGBM model, and lightgbm is not installed.",
            "pip install 'loopml[lightgbm]', or run the demo with --learner logistic.",
        )
