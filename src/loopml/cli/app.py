"""The `loopml` command: builds the Typer app and turns loopml errors into one clear message.

Exit codes: 0 success, 1 a loopml error (not found, invalid input, conflict, integrity,
unavailable), 2 a usage error. `--debug` shows the traceback as well.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer

HELP = """loopml: versioned data, tracked runs, a model registry, closed into one loop.

The workspace is ./.loopml/ (SQLite + a folder) unless LOOPML_DB_URL and LOOPML_ARTIFACTS say
otherwise; it is created on first use.
"""


GROUPS = {
    "db": ("workspace", "db_app"),
    "audit": ("workspace", "audit_app"),
    "data": ("data", "app"),
    "runs": ("runs", "app"),
    "models": ("models", "app"),
    "pipeline": ("pipeline", "app"),
    "deploy": ("deploy", "app"),
    "monitor": ("monitor", "app"),
    "alert": ("alert", "app"),
    "loop": ("loop", "app"),
    "users": ("server", "users_app"),
    "tokens": ("server", "tokens_app"),
    "projects": ("server", "projects_app"),
    "predictions": ("serve", "predictions_app"),
    "log": ("log", "app"),
    "import": ("importing", "app"),
}
"""The command groups, in the order `loopml --help` lists them: (module of loopml.cli, name)."""
COMMANDS = {
    "init": ("workspace", "init"),
    "lineage": ("pipeline", "lineage"),
    "serve": ("serve", "serve"),
    "server": ("server", "server"),
    "ui": ("server", "ui"),
    "gate": ("gate", "gate"),
    "gc": ("gc", "gc"),
    "demo": ("demo", "demo"),
}
"""The commands outside any group, in the order `loopml --help` lists them."""


def _part(module: str, name: str) -> Any:
    return getattr(importlib.import_module(f"loopml.cli.{module}"), name)


def build_app(only: str | None = None) -> typer.Typer:
    """The `loopml` app; with `only` (a name of GROUPS), that group alone under the root: what a
    command of the group needs, without importing and building the other sixty commands."""
    app = typer.Typer(
        help=HELP,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )

    @app.callback()
    def _root(
        debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors."),
    ) -> None:
        """loopml command line."""

    if only is not None:
        app.add_typer(_part(*GROUPS[only]), name=only)
        return app
    for name, where in COMMANDS.items():
        app.command(name)(_part(*where))
    for name, where in GROUPS.items():
        app.add_typer(_part(*where), name=name)
    return app


def _group_of(args: list[str]) -> str | None:
    """The command group `args` run (the first word that is not a root option), if any."""
    word = next((a for a in args if not a.startswith("-")), None)
    return word if word in GROUPS else None


def main(argv: list[str] | None = None) -> None:
    from loopml.errors import LoopmlError, exit_code

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    command = typer.main.get_command(build_app(_group_of(args)))
    try:
        code = command.main(args=args, prog_name="loopml", standalone_mode=False)
        if isinstance(code, int) and code:  # `raise typer.Exit(1)` comes back as a return value
            sys.exit(code)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except typer.Abort:
        sys.stderr.write("Aborted.\n")
        sys.exit(130)
    except typer.TyperException as usage:  # a usage error: bad option, missing argument
        show = getattr(usage, "show", None)
        if show is not None:
            show()
        else:
            sys.stderr.write(f"error: {usage}\n")
        sys.exit(2)
    except LoopmlError as error:
        if debug:
            import traceback

            traceback.print_exc()
        sys.stderr.write(f"error: {error.message}\n")
        if error.hint:
            sys.stderr.write(f"  {error.hint}\n")
        sys.exit(exit_code(error))
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        sys.exit(130)
