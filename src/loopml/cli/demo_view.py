"""What `loopml demo` prints at the end: the timeline, in 80 columns, and where to look next."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

COLUMNS = ("period", "rows", "drift", "accuracy", "alerts", "model", "loop")


def timeline_table(timeline: Sequence[Any]) -> Any:
    """One line per period; the loop's column is cut short (`…`) rather than wrapped, and
    each period's log line above holds the whole story."""
    from rich import box
    from rich.table import Table

    table = Table(
        title="timeline (the world changes from period 3)",
        caption="model: the version of churn that served; drift: share of columns drifted "
        "(how many); loop: what the retrain loop did (holdout accuracy of the challenger vs "
        "the champion)",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
        caption_justify="left",
        expand=True,
    )
    for column in COLUMNS:
        numeric = column in ("period", "rows", "accuracy", "alerts")
        table.add_column(column, justify="right" if numeric else "left", no_wrap=True)
    loop = table.columns[-1]
    loop.overflow, loop.ratio = "ellipsis", 1  # the room the others leave, cut short in it
    for step in timeline:
        table.add_row(
            str(step.period),
            str(step.rows),
            f"{step.drift_share:.0%}" + (f" ({len(step.drifted)})" if step.drifted else ""),
            "-" if step.accuracy is None else f"{step.accuracy:.2f}",
            str(step.alerts),
            f"v{step.version}",
            step.loop,
        )
    return table


def look_around(folder: Path) -> list[str]:
    """The commands that show what the demo did, each with what it shows."""
    return [
        f"cd {folder}",
        "loopml ui                              # all of it in a web browser",
        "loopml monitor history churn-drift",
        "loopml monitor report RUN_ID -f html   # a run id from the history",
        "loopml alert list",
        "loopml models versions churn",
        "loopml data diff churn@1 churn@2",
        "loopml loop history churn-loop",
        "loopml audit log --entity model:churn",
        "loopml audit verify",
    ]
