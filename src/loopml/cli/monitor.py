"""`loopml monitor ...`: drift monitors over a deployment's prediction log."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from loopml.cli import monitor_view
from loopml.cli.context import (
    JSON_OPTION,
    PROJECT_OPTION,
    open_workspace,
    print_fields,
    print_json,
    print_table,
    project_of,
    when,
)

app = typer.Typer(
    help="Drift monitors: a deployment's served rows against a reference dataset version.",
    no_args_is_help=True,
)


@app.command("create")
def create(
    name: str = typer.Argument(..., help="Monitor name, e.g. churn-drift."),
    deployment: str = typer.Option(..., "--deployment", "-d", help="Deployment to watch."),
    reference: str = typer.Option(
        None, "--reference", "-r", help="Drift: the dataset version the model learnt from."
    ),
    probe: str = typer.Option(
        None, "--probe", help="Health: the server's base URL, e.g. http://127.0.0.1:8080."
    ),
    label: str = typer.Option(
        None, "--label", help="Drift: the reference's label column, compared with feedback."
    ),
    model: str = typer.Option(
        None,
        "--model",
        help="Drift: the model whose outputs on the reference are the prediction reference "
        "(default: the stored deployment's model).",
    ),
    window: str = typer.Option("1h", "--window", help="How far back each run looks (10m, 1h)."),
    every: str = typer.Option("10m", "--every", help="How often `monitor serve` runs it."),
    project: str = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a monitor (or replace the one with this name); the reference is summarised now,
    once."""
    from loopml.monitoring.monitors import create as create_monitor
    from loopml.monitoring.monitors import roles

    ws = open_workspace()
    found = create_monitor(
        name,
        deployment=deployment,
        reference=reference,
        probe=probe,
        label=label,
        model=model,
        window=window,
        every=every,
        project=project_of(ws, project),
        workspace=ws,
    )
    if as_json:
        print_json(found)
        return
    watched = f"against {found.reference}" if found.reference else f"probing {found.probe_url}"
    if found.reference:
        known = roles(ws, found).get("label")
        watched += f" (label column {known})" if known else " (no label column: --label COLUMN)"
    sys.stdout.write(
        f"monitor {name}: {deployment} {watched}, "
        f"window {_duration(found.window_s)}, every {_duration(found.every_s)}\n"
    )


@app.command("list")
def list_(project: str = PROJECT_OPTION, as_json: bool = JSON_OPTION) -> None:
    """List monitors."""
    ws = open_workspace()
    found = ws.monitors.list(project_of(ws, project))
    if as_json:
        print_json(found)
        return
    print_table(
        None,
        ["monitor", "deployment", "watches", "window", "every", "updated"],
        [
            (
                m.name,
                m.deployment,
                m.reference or f"health of {m.probe_url}",
                _duration(m.window_s),
                _duration(m.every_s),
                when(m.updated_at),
            )
            for m in found
        ],
    )


@app.command("run")
def run(
    name: str = typer.Argument(..., help="Monitor name."),
    at: str = typer.Option(
        None,
        "--at",
        help="Evaluate as if now were TIME (ISO-8601 with offset, or epoch seconds): the window "
        "ends at TIME, by the rows' event times; to replay a history.",
        metavar="TIME",
    ),
    project: str = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Evaluate the monitor now (or --at TIME), over the window ending then, and store the
    report; its alert rules are checked (`--json` lists the alerts fired and resolved)."""
    from loopml.domain.event_time import at_us
    from loopml.monitoring.monitors import run as run_monitor

    now_us = None if at is None else at_us(at)
    ws = open_workspace()
    result = run_monitor(name, now_us=now_us, project=project_of(ws, project), workspace=ws)
    if as_json:
        alerts = monitor_view.alerts_json(result.alerts)
        print_json({"run": result.run.id, **result.document, "alerts": alerts})
        return
    sys.stdout.write(monitor_view.summary(result) + "\n")
    if result.report is not None:
        monitor_view.print_features(result.report.to_dict())
        monitor_view.print_unreadable(result.document)
        monitor_view.print_performance(result.document)


@app.command("serve")
def serve(
    once: bool = typer.Option(False, "--once", help="Run what is due now, then exit."),
    tick: float = typer.Option(5.0, "--tick", min=0.1, help="Seconds between schedule checks."),
    project: str = PROJECT_OPTION,
) -> None:
    """Run every monitor on its schedule (`--every`), health probes included, until stopped;
    alert rules are checked after each run, then every retrain loop (`loopml loop`) looks at
    its triggers and open watch. A monitor or loop that fails gets one line (and a notice
    alert, resolved when it works again) and the others run; so does a tick that fails as a
    whole (the database did not answer), and the next tick comes."""
    import time

    ws = open_workspace()
    proj = project_of(ws, project)
    while True:
        if once:
            _serve_tick(ws, proj)
            return
        try:
            _serve_tick(ws, proj)
        except Exception as exc:  # the next tick may find the database back
            sys.stdout.write(f"tick failed: {_one_line(ws, exc)}\n")
            sys.stdout.flush()
        time.sleep(tick)


def _serve_tick(ws: Any, project: str) -> None:
    from loopml import loops
    from loopml.monitoring.monitors import NothingToMonitor, run_due

    for name, outcome in run_due(project=project, workspace=ws):
        if isinstance(outcome, NothingToMonitor):
            sys.stdout.write(f"{name}: skipped: {outcome}\n")
        elif isinstance(outcome, Exception):
            sys.stdout.write(f"{name}: FAILED: {_one_line(ws, outcome)}\n")
        else:
            sys.stdout.write(f"{name}: {monitor_view.summary(outcome)}\n")
        sys.stdout.flush()
    for looped in loops.run_due(project=project, workspace=ws):
        done = looped.run or looped.watched
        if done is not None:
            watch = done.watch.get("state")
            state = f"{done.status}, {watch}" if watch else done.status
            sys.stdout.write(f"loop {looped.loop}: run {done.id}: {state}\n")
        elif looped.notes != ["no trigger fired"]:
            sys.stdout.write(f"loop {looped.loop}: {'; '.join(looped.notes)}\n")
        sys.stdout.flush()


def _one_line(ws: Any, error: BaseException) -> str:
    from loopml.monitoring.monitors import failure_text

    return " ".join(failure_text(ws, error).split())


@app.command("history")
def history(
    name: str = typer.Argument(..., help="Monitor name."),
    limit: int = typer.Option(50, "--limit", "-n", min=1, help="How many runs, newest first."),
    project: str = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """One line per run: rows, drift share, the drifted features and, when labels came, the
    performance (accuracy, F1, ...); for a health monitor, up or down, latency, error rate."""
    import json

    ws = open_workspace()
    runs = ws.monitors.history(name, project_of(ws, project), limit)
    if as_json:
        print_json(runs)
        return
    documents = [json.loads(ws.blobs.read_bytes(r.report_digest)) for r in runs]
    monitor_view.print_history(runs, documents)


@app.command("report")
def report(
    run_id: int = typer.Argument(..., help="Monitor run id (from `monitor history`)."),
    output: str = typer.Option("table", "--format", "-f", help="table, json or html."),
    out: Path = typer.Option(
        None,
        "--output",
        "--out",
        "-o",
        help="Where the html page goes: a file, or an existing folder "
        "(default monitor-run-ID.html in the current folder).",
    ),
    project: str = PROJECT_OPTION,
) -> None:
    """The full report of one monitor run; `--format html` writes a self-contained page with a
    chart per feature and the monitor's drift share over its windows."""
    from loopml.errors import InvalidInput
    from loopml.monitoring.monitors import report_document

    if output not in ("table", "json", "html"):
        raise InvalidInput(
            f"Unknown format {output!r}.", "Use --format table, --format json or --format html."
        )
    ws = open_workspace()
    proj = project_of(ws, project)
    document = report_document(run_id, project=proj, workspace=ws)
    if output == "json":
        print_json(document)
        return
    if document.get("kind") == "health":
        if output == "html":
            raise InvalidInput(
                f"Run {run_id} is a health probe; it has no charts.",
                "Use --format table or --format json.",
            )
        keys = ("monitor", "deployment", "url", "down", "status", "error", "probe_ms", "rows")
        print_fields([("run", run_id), *((k, document.get(k)) for k in keys)])
        return
    if output == "html":
        from loopml.monitoring.html import render

        runs = ws.monitors.history(document["monitor"], proj, 200)[::-1]
        history = [{"time": when(r.time), "drift_share": r.drift_share} for r in runs]
        target = _page_path(out, f"monitor-run-{run_id}.html")
        target.write_text(render(document, history), encoding="utf-8")
        sys.stdout.write(f"wrote {target}\n")
        return
    print_fields(
        [
            ("run", document["run"]),
            ("monitor", document["monitor"]),
            ("deployment", document["deployment"]),
            ("reference", document["reference"]),
            ("rows", f"{document['current_rows']} served, {document['reference_rows']} reference"),
            ("drift share", monitor_view.drift_text(document)),
            *monitor_view.apart_fields(document),
            ("performance", monitor_view.performance_text(document) or "no labels came"),
        ]
    )
    monitor_view.print_features(document)
    monitor_view.print_unreadable(document)
    monitor_view.print_performance(document)


def _page_path(out: Path | None, name: str) -> Path:
    """The absolute path a page goes to: `out` (a file, or an existing folder: `name` in it),
    or `name` in the current folder."""
    from loopml.errors import InvalidInput

    target = (out or Path(name)).expanduser().resolve()
    if target.is_dir():
        target = target / name
    if not target.parent.is_dir():
        raise InvalidInput(
            f"The folder {target.parent} does not exist, so the page cannot be written there.",
            "Give --output an existing folder, or a file in one.",
        )
    return target


@app.command("delete")
def delete(
    name: str = typer.Argument(..., help="Monitor name."), project: str = PROJECT_OPTION
) -> None:
    """Delete a monitor (its stored reports stay in the artifact store)."""
    ws = open_workspace()
    ws.monitors.delete(name, project_of(ws, project))
    sys.stdout.write(f"deleted monitor {name}\n")


def _duration(seconds: int) -> str:
    from loopml.domain.durations import format_duration

    return format_duration(seconds)
