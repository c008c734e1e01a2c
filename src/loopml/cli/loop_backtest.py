"""`loopml loop backtest`: a retrain policy tried on history, its table of windows and summary
printed (and its HTML page written); registered on `loopml loop` by `loopml.cli.loop`."""

from __future__ import annotations

import sys

import typer

from loopml.cli.context import (
    JSON_OPTION,
    PROJECT_OPTION,
    open_workspace,
    print_json,
    print_table,
    project_of,
)
from loopml.cli.loop_params import pipeline_params


def backtest(
    pipeline: str = typer.Option(
        ..., "--pipeline", help="The training pipeline, FILE.py:NAME or module:NAME."
    ),
    reference: str = typer.Option(
        ..., "--reference", help="The dataset version the first champion trains on (NAME@V)."
    ),
    data: str = typer.Option(
        ..., "--data", help="The history to replay, a dataset version (NAME@V)."
    ),
    time_column: str = typer.Option(
        ..., "--time-column", help="The column that says when each row happened."
    ),
    label: str = typer.Option(..., "--label", help="The label column."),
    window: int = typer.Option(500, "--window", help="Rows served between two loop runs."),
    trigger: list[str] = typer.Option(
        [],
        "--trigger",
        "-t",
        help="performance[:METRIC-MARGIN], labels:ROWS, every:DURATION (by the time column) or "
        "manual; repeat for several. Default: performance and labels:1500.",
    ),
    train_data: str = typer.Option(
        None,
        "--train-data",
        help='Default "reference + all labelled predictions"; or "... of the last 30d", or '
        '"..., half-life 14d" or "..., half-life 4000 rows" (a weight column for the '
        "pipeline).",
    ),
    promote_if: list[str] = typer.Option(
        [],
        "--promote-if",
        help='Default "accuracy >= champion.accuracy" (over the next --horizon rows). Repeat '
        "for several.",
    ),
    guard: list[str] = typer.Option([], "--guard", help="Another rule that must hold."),
    confidence: float = typer.Option(
        None, "--confidence", help="How sure a promotion, a drop or a rollback must be (0.9)."
    ),
    holdout: float = typer.Option(
        None, "--holdout", help="Share of the new labelled rows held out to judge (0.3)."
    ),
    holdout_mode: str = typer.Option(
        None, "--holdout-mode", help="time (the newest rows, default) or random."
    ),
    holdout_rows: int = typer.Option(
        None,
        "--holdout-rows",
        help="Hold out no more than ROWS when a challenger trains (default 500; 0: no cap).",
    ),
    horizon: int = typer.Option(
        None,
        "--horizon",
        help="Judge a promotion rule over the next ROWS served rows (default 1,000; 0: on "
        "average).",
    ),
    refit: bool = typer.Option(
        None,
        "--refit/--no-refit",
        help="Retrain a winner on its training plus holdout rows before promotion (default on).",
    ),
    watch: str = typer.Option(
        None, "--watch", help="How long to watch a new champion (default: two windows)."
    ),
    rollback_margin: float = typer.Option(0.02, "--rollback-margin"),
    min_rows: int = typer.Option(100, "--min-rows", help="Fewest labelled rows to act on."),
    retry_rows: int = typer.Option(
        None, "--retry-rows", help="New labelled rows before a still-true trigger retries."
    ),
    max_wait_rows: int = typer.Option(
        None,
        "--max-wait-rows",
        help="Holdout rows an undecided challenger may wait for (default 2,000).",
    ),
    check: list[str] = typer.Option(
        [], "--check", help='A data check of the holdout, e.g. "duplicates <= 0.05".'
    ),
    data_param: str = typer.Option(
        "dataset", "--data-param", help="The pipeline parameter that takes the training data."
    ),
    param: list[str] = typer.Option([], "--param", help="A pipeline parameter KEY=VALUE."),
    weight_column: str = typer.Option("sample_weight", "--weight-column"),
    html: str = typer.Option(None, "--html", help="Write the report as an HTML page to FILE."),
    project: str = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Try a retrain policy on history before it touches production: the first champion
    trains on the reference, then the data is replayed WINDOW rows at a time with the live
    loop's decisions and pipeline, in a scratch workspace (nothing is saved). Beside the
    policy, a static model and an oracle refitting before every window; the summary gives the
    recovery (policy - static) / (oracle - static) with its 90% interval (a bootstrap over
    windows: how much the figure owes to which stretches of history came), the needless
    promotions, and how often the oracle's own refits served worse than the model they
    replaced (their chance level)."""
    from pathlib import Path

    from loopml import backtest as backtesting
    from loopml.cli import backtest_view

    ws = open_workspace()

    def say(text: str) -> None:  # progress, one line a window
        sys.stderr.write(text + "\n")

    result = backtesting.backtest(
        pipeline,
        reference=reference,
        data=data,
        time_column=time_column,
        label=label,
        window=window,
        triggers=trigger or None,
        train_data=train_data,
        promote_if=promote_if or None,
        guards=guard,
        confidence=confidence,
        holdout=holdout,
        holdout_mode=holdout_mode,
        refit=refit,
        watch=watch,
        rollback_margin=rollback_margin,
        min_rows=min_rows,
        retry_rows=retry_rows,
        max_wait_rows=max_wait_rows,
        checks=check,
        horizon=horizon,
        holdout_rows=holdout_rows,
        data_param=data_param,
        params=pipeline_params(param),
        weight_column=weight_column,
        project=project_of(ws, project),
        workspace=ws,
        say=None if as_json else say,
    )
    if html:
        Path(html).write_text(backtest_view.html(result), encoding="utf-8")
    if as_json:
        print_json(result.to_json())
        return
    print_table(
        None,
        ["window", "end", "policy", "static", "oracle", "champion", "events"],
        [
            (
                w.index,
                w.end[:16],
                f"{w.policy:.4f}",
                f"{w.static:.4f}",
                f"{w.oracle:.4f}",
                w.champion,
                ", ".join(w.events),
            )
            for w in result.windows
        ],
    )
    sys.stdout.write("\n".join(backtest_view.summary_lines(result)) + "\n")
    if html:
        sys.stdout.write(f"report: {html}\n")
