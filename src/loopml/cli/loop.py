"""`loopml loop ...`: retrain policies that close the loop from an alert to a new champion."""

from __future__ import annotations

import sys
from typing import Any

import typer

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
from loopml.cli.loop_backtest import backtest
from loopml.cli.loop_params import pipeline_params

app = typer.Typer(
    help="Retrain policies: when to retrain, on what data, and how a challenger must beat the "
    "champion to replace it.",
    no_args_is_help=True,
)


@app.command("create")
def create(
    name: str = typer.Argument(..., help="Loop name, e.g. churn-loop."),
    deployment: str = typer.Option(..., "--deployment", "-d", help="The deployment to keep fit."),
    pipeline: str = typer.Option(
        ..., "--pipeline", help="The training pipeline, FILE.py:NAME or module:NAME."
    ),
    trigger: list[str] = typer.Option(
        ...,
        "--trigger",
        "-t",
        help="alert:MONITOR (an alert of that monitor), every:7d (a schedule), labels:500 (new "
        "labelled rows), performance[:METRIC-MARGIN] (a drop below the champion's own metric, "
        "with --confidence) or manual; repeat for several.",
    ),
    train_data: str = typer.Option(
        "reference + labelled predictions of the last 30d",
        "--train-data",
        help='Base tables plus labelled rows: "reference + all labelled predictions" '
        '(cumulative), "churn@12 + labelled predictions of the last 7d" (sliding), or either '
        'with ", half-life 14d" (recency-weighted); "reference" is the drift monitor\'s reference.',
    ),
    promote_if: list[str] = typer.Option(
        ...,
        "--promote-if",
        help='A rule the challenger must meet on the fresh holdout, e.g. "f1 >= champion.f1 + '
        '0.005"; its metric is also the one the watch compares. Repeat for several.',
    ),
    guard: list[str] = typer.Option(
        [],
        "--guard",
        help='Another rule that must hold, e.g. "latency_p99_ms <= 1.2 * champion.latency_p99_ms".',
    ),
    mode: str = typer.Option(
        "auto", "--mode", help="auto: promote a winner; approve: wait for `models promote`."
    ),
    watch: str = typer.Option(
        "1h", "--watch", help="How long to watch a new champion before keeping it."
    ),
    rollback_margin: float = typer.Option(
        0.02,
        "--rollback-margin",
        help="Roll back when the new champion does worse than the old one would have, on the "
        "same watched traffic, by more than this.",
    ),
    holdout: float = typer.Option(
        0.3, "--holdout", help="Share of the recent labelled rows kept out of training to score."
    ),
    holdout_rows: int = typer.Option(
        None,
        "--holdout-rows",
        help="Hold out no more than ROWS of them (the rest train the challenger, so it learns "
        "a change from its newest rows; an undecided challenger's holdout still grows).",
    ),
    min_rows: int = typer.Option(
        100, "--min-rows", help="Fewest recent labelled rows to retrain on, or to judge a watch."
    ),
    label: str = typer.Option(
        None, "--label", help="The label column (default: the drift monitor's)."
    ),
    data_param: str = typer.Option(
        "dataset", "--data-param", help="The pipeline parameter that takes the training data."
    ),
    param: list[str] = typer.Option(
        [], "--param", help="A pipeline parameter KEY=VALUE; repeat for several."
    ),
    notify: list[str] = typer.Option(
        [], "--notify", "-n", help="Where failures and rollbacks are told (default log:)."
    ),
    confidence: float = typer.Option(
        0.9,
        "--confidence",
        help="How sure a promotion rule, a performance trigger and a rollback must be: the "
        "paired difference must clear the rule's margin at this confidence.",
    ),
    holdout_mode: str = typer.Option(
        "time", "--holdout-mode", help="time: the newest labelled rows (default); random."
    ),
    horizon: int = typer.Option(
        None,
        "--horizon",
        help="Judge a promotion rule over the next ROWS served rows: promote only a "
        "challenger that would serve better over them at --confidence (default: on average).",
    ),
    refit: bool = typer.Option(
        False,
        "--refit/--no-refit",
        help="Retrain a winning challenger on its training plus holdout rows before promotion.",
    ),
    retry_rows: int = typer.Option(
        500, "--retry-rows", help="New labelled rows before a trigger still true retrains again."
    ),
    max_wait_rows: int = typer.Option(
        5_000,
        "--max-wait-rows",
        help="Holdout rows an undecided challenger may wait for before it is held.",
    ),
    weight_column: str = typer.Option(
        "sample_weight",
        "--weight-column",
        help="The weight column a recency-weighted recipe hands the pipeline.",
    ),
    check: list[str] = typer.Option(
        [],
        "--check",
        help='A data check of the holdout, e.g. "duplicates <= 0.05", "labelled >= 200".',
    ),
    project: str = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a retrain policy, after checking that everything it names exists."""
    from loopml import loops

    params = pipeline_params(param)
    ws = open_workspace()
    loop = loops.create(
        name,
        deployment=deployment,
        pipeline=pipeline,
        triggers=trigger,
        train_data=train_data,
        promote_if=promote_if,
        guards=guard,
        mode=mode,
        watch=watch,
        rollback_margin=rollback_margin,
        holdout=holdout,
        min_rows=min_rows,
        label=label,
        data_param=data_param,
        params=params,
        notify=notify or ["log:"],
        confidence=confidence,
        holdout_mode=holdout_mode,
        refit=refit,
        retry_rows=retry_rows,
        max_wait_rows=max_wait_rows,
        weight_column=weight_column,
        checks=check,
        horizon=horizon,
        holdout_rows=holdout_rows,
        project=project_of(ws, project),
        workspace=ws,
    )
    if as_json:
        print_json({"name": name, **loop.spec.to_dict()})
        return
    sys.stdout.write(f"created loop {name} on {deployment}\n")


app.command("backtest")(backtest)  # the command and its report are in `loop_backtest`


@app.command("list")
def list_loops(project: str = PROJECT_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Every loop, with its triggers, mode, and its newest run."""
    ws = open_workspace()
    proj = project_of(ws, project)
    rows = []
    for loop in ws.loops.list(proj):
        newest = ws.loops.history(loop.spec.name, proj, 1)
        last = newest[0] if newest else None
        rows.append((loop, last))
    if as_json:
        print_json(
            [
                {
                    "name": loop.spec.name,
                    **loop.spec.to_dict(),
                    "last_run": None if last is None else _run_json(last),
                }
                for loop, last in rows
            ]
        )
        return
    print_table(
        None,
        ["loop", "deployment", "triggers", "mode", "last run", "status"],
        [
            (
                loop.spec.name,
                loop.spec.deployment,
                ", ".join(loop.spec.triggers),
                loop.spec.mode,
                "" if last is None else f"{last.id} at {when(last.started_at)}",
                "" if last is None else _status(last),
            )
            for loop, last in rows
        ],
    )


@app.command("show")
def show(
    name: str = typer.Argument(..., help="Loop name."),
    project: str = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """The policy as saved."""
    from loopml.domain.durations import format_duration

    ws = open_workspace()
    loop = ws.loops.get(name, project_of(ws, project))
    spec = loop.spec
    if as_json:
        print_json({"name": name, **spec.to_dict(), "created_at": loop.created_at})
        return
    print_fields(
        [
            ("loop", name),
            ("deployment", spec.deployment),
            ("pipeline", spec.pipeline),
            ("triggers", ", ".join(spec.triggers)),
            ("training data", spec.train_data),
            (
                "holdout",
                f"{spec.holdout:.0%} of the labelled rows served since the champion was trained"
                + (f", at most {spec.holdout_rows:,}" if spec.holdout_rows else "")
                + f" ({'the newest' if spec.holdout_mode == 'time' else 'drawn at random'})",
            ),
            (
                "confidence",
                f"{spec.confidence:.0%} (undecided: wait up to "
                f"{spec.max_wait_rows:,} holdout rows)",
            ),
            (
                "horizon",
                f"promote only what would serve better over the next {spec.horizon:,} rows"
                if spec.horizon
                else "none (the holdout's average difference)",
            ),
            ("refit", "yes" if spec.refit else "no"),
            ("retry", f"a trigger still true retries after {spec.retry_rows:,} new labelled rows"),
            ("data checks", ", ".join(spec.checks) or "defaults (duplicates reported)"),
            ("promote if", " and ".join(spec.promote_if)),
            ("guards", " and ".join(spec.guards) or "none"),
            ("mode", spec.mode),
            ("watch", f"{format_duration(spec.watch_s)}, margin {spec.rollback_margin:g}"),
            ("notify", ", ".join(spec.notify)),
            ("created", when(loop.created_at)),
        ]
    )


@app.command("run")
def run(
    name: str = typer.Argument(..., help="Loop name."),
    now: bool = typer.Option(
        False, "--now", help="Retrain now whatever the triggers say (a manual trigger)."
    ),
    at: str = typer.Option(
        None,
        "--at",
        help="Run as if now were TIME (ISO-8601 with offset, or epoch seconds): the watch, the "
        "schedule and the recent labelled rows are judged at TIME, by the rows' event times.",
        metavar="TIME",
    ),
    project: str = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Judge the open watch, then retrain if a trigger fired: build the data, run the pipeline,
    score challenger and champion on the same fresh holdout, decide. Exit 1 when the run
    failed."""
    from loopml import loops
    from loopml.domain.event_time import at_us

    now_us = None if at is None else at_us(at)
    ws = open_workspace()

    def say(text: str) -> None:
        if not as_json:
            sys.stdout.write(text + "\n")

    outcome = loops.run(
        name, force=now, now_us=now_us, project=project_of(ws, project), workspace=ws, say=say
    )
    if as_json:
        print_json(outcome.to_json())
    elif outcome.run is None:
        sys.stdout.write(f"loop {name}: no trigger fired; nothing to do\n")
    else:
        _print_run(outcome.run)
    if outcome.run is not None and outcome.run.status == "failed":
        raise typer.Exit(1)


@app.command("history")
def history(
    name: str = typer.Argument(..., help="Loop name."),
    limit: int = typer.Option(20, "--limit", min=1, help="How many runs, newest first."),
    project: str = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """One line per run: trigger, data, challenger vs champion scores, decision, and why."""
    ws = open_workspace()
    runs = ws.loops.history(name, project_of(ws, project), limit)
    if as_json:
        print_json([_run_json(r) for r in runs])
        return
    print_table(
        None,
        ["run", "started", "trigger", "data", "champion", "challenger", "decision", "why"],
        [
            (
                r.id,
                when(r.started_at),
                r.trigger,
                r.train_data or "",
                _scored(r, "champion", r.champion),
                _scored(r, "challenger", r.challenger),
                _status(r),
                r.watch.get("why") or r.reason,
            )
            for r in runs
        ],
    )


@app.command("delete")
def delete(
    name: str = typer.Argument(..., help="Loop name."),
    project: str = PROJECT_OPTION,
) -> None:
    """Delete a loop (its runs stay in the history and the audit trail)."""
    ws = open_workspace()
    ws.loops.delete(name, project_of(ws, project))
    sys.stdout.write(f"deleted loop {name}\n")


def _run_json(run: Any) -> dict[str, Any]:
    from loopml.domain.loops import run_json

    return run_json(run)


def _status(run: Any) -> str:
    watch = run.watch.get("state")
    return f"{run.status}, {watch}" if watch else run.status


def _scored(run: Any, side: str, version: int | None) -> str:
    if version is None:
        return ""
    scores = run.scores.get(side) or {}
    shown = ", ".join(f"{k} {v:.3f}" for k, v in list(scores.items())[:3])
    return f"v{version}" + (f" ({shown})" if shown else "")


def _print_run(run: Any) -> None:
    print_fields(
        [
            ("run", run.id),
            ("trigger", run.trigger),
            ("training data", run.train_data),
            ("holdout", run.holdout_data),
            ("pipeline run", run.pipeline_run),
            ("decision", _status(run)),
            ("why", run.reason),
        ]
    )
    champion, challenger = run.scores.get("champion") or {}, run.scores.get("challenger") or {}
    if challenger:
        print_table(
            "scores on the same fresh holdout",
            ["metric", f"champion v{run.champion}", f"challenger v{run.challenger}"],
            [
                (k, f"{champion.get(k, float('nan')):.4f}", f"{v:.4f}")
                for k, v in challenger.items()
            ],
        )
    if run.rules:
        print_table(
            None,
            ["rule", "result", "detail"],
            [(rule, "pass" if ok else "FAIL", detail) for rule, ok, detail in run.rules],
        )
