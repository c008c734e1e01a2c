"""The `loopml` command: builds the Typer app and turns loopml errors into one clear message.

Exit codes: 0 success, 1 a loopml error (not found, invalid input, conflict, integrity,
unavailable), 2 a usage error. `--debug` shows the traceback as well.
"""

from __future__ import annotations

import sys

import typer

from loopml.cli import (
    alert,
    data,
    demo,
    deploy,
    gate,
    gc,
    loop,
    models,
    monitor,
    pipeline,
    runs,
    serve,
    server,
    workspace,
)

HELP = """loopml: versioned data, tracked runs, a model registry, closed into one loop.

The workspace is ./.loopml/ (SQLite + a folder) unless LOOPML_DB_URL and LOOPML_ARTIFACTS say
otherwise; it is created on first use.
"""


def build_app() -> typer.Typer:
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

    workspace.register(app)
    app.add_typer(data.app, name="data")
    app.add_typer(runs.app, name="runs")
    app.add_typer(models.app, name="models")
    app.add_typer(pipeline.app, name="pipeline")
    app.command("lineage")(pipeline.lineage)
    app.command("serve")(serve.serve)
    app.add_typer(deploy.app, name="deploy")
    app.add_typer(monitor.app, name="monitor")
    app.add_typer(alert.app, name="alert")
    app.add_typer(loop.app, name="loop")
    app.command("server")(server.server)
    app.command("ui")(server.ui)
    app.add_typer(server.users_app, name="users")
    app.add_typer(server.tokens_app, name="tokens")
    app.add_typer(server.projects_app, name="projects")
    app.command("gate")(gate.gate)
    app.command("gc")(gc.gc)
    app.command("demo")(demo.demo)
    app.add_typer(serve.predictions_app, name="predictions")
    return app


def main(argv: list[str] | None = None) -> None:
    from loopml.errors import LoopmlError, exit_code

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    command = typer.main.get_command(build_app())
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
