"""What every command needs: the workspace, the project, and output in text or JSON."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import typer

from loopml.domain.jsonable import to_json

if TYPE_CHECKING:
    from loopml.bootstrap import Workspace

JSON_OPTION = typer.Option(False, "--json", help="Print JSON for scripts instead of a table.")
PROJECT_OPTION = typer.Option(
    None,
    "--project",
    "-p",
    help="Project (namespace) to use; default $LOOPML_PROJECT or 'default'.",
)


def open_workspace() -> Workspace:
    from loopml.bootstrap import open_workspace as open_ws

    return open_ws()


def project_of(workspace: Workspace, project: str | None) -> str:
    from loopml.domain.refs import check_name

    return check_name(project, "project") if project else workspace.project


def print_json(value: Any) -> None:
    """`value` as indented JSON, in the one encoding of records (`loopml.domain.jsonable`)."""
    sys.stdout.write(to_json(value, indent=True).decode() + "\n")


def print_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    # Piped output is never cut to a terminal's width: scripts and greps see whole ids.
    width = None if sys.stdout.isatty() else 1000
    Console(soft_wrap=True, width=width).print(table)


def print_fields(fields: Sequence[tuple[str, Any]]) -> None:
    width = max((len(k) for k, _ in fields), default=0)
    for key, value in fields:
        sys.stdout.write(f"{key.ljust(width)}  {'' if value is None else value}\n")


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def size(nbytes: int) -> str:
    step = 1024.0
    amount = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < step or unit == "TiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= step
    return f"{nbytes} B"
