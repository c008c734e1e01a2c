"""`loopml serve` and `loopml predictions ...`: the model server and its prediction log."""

from __future__ import annotations

import sys
from typing import Any

import typer

from loopml.cli.context import JSON_OPTION, PROJECT_OPTION, print_json, print_table

predictions_app = typer.Typer(
    help="The prediction log: every row served, with its label.", no_args_is_help=True
)


def serve(
    model: str = typer.Argument(..., help="churn@champion (follows the alias), churn/3, churn."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8080, "--port", help="Port to listen on."),
    deployment: str = typer.Option(
        None, "--deployment", "-d", help="Name of this deployment (default: the model's name)."
    ),
    poll_s: float = typer.Option(2.0, "--poll-s", help="How often to check the alias."),
    trust: bool = typer.Option(False, "--trust", help="Allow python-flavor (pickle) models."),
    no_log: bool = typer.Option(False, "--no-log", help="Do not log predictions."),
    max_batch_rows: int = typer.Option(
        512, "--max-batch-rows", min=1, help="Rows one model call may take from waiting requests."
    ),
    batch_wait_ms: float = typer.Option(
        0.0, "--batch-wait-ms", min=0.0, help="Hold a batch open this long to gather more."
    ),
    no_batching: bool = typer.Option(False, "--no-batching", help="One model call per request."),
    project: str = PROJECT_OPTION,
) -> None:
    """Serve a model over HTTP: /predict, /feedback, the V2 protocol, /metrics."""
    import uvicorn

    from loopml.bootstrap import open_workspace, prediction_log_writer
    from loopml.domain.refs import parse_model_ref
    from loopml.serving.app import create_app
    from loopml.serving.host import ModelHost
    from loopml.serving.log_sink import LogSink

    ws = open_workspace()
    name = deployment or parse_model_ref(model).name
    hosted = ModelHost(ws, name, model, project=project, trust=trust, poll_s=poll_s)
    sink = None if no_log else LogSink(prediction_log_writer(ws.settings))
    batching = {
        "max_batch_rows": max_batch_rows,
        "max_wait_ms": batch_wait_ms,
        "enabled": not no_batching,
    }
    app = create_app({name: hosted}, sink, batching=batching)
    served = hosted.current.version
    sys.stderr.write(f"serving {served.ref} as {name!r} on http://{host}:{port}\n")
    # The app's shutdown writes the queued prediction log (SIGTERM loses nothing); uvicorn then
    # re-raises the signal, so the process ends as terminated by it, as process managers expect.
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    ws.close()


def _rows(table: Any) -> list[dict[str, Any]]:
    return list(table.to_pylist())


@predictions_app.command("tail")
def tail(
    deployment: str = typer.Argument(..., help="The deployment's name."),
    n: int = typer.Option(20, "-n", min=1, help="How many of the newest rows."),
    as_json: bool = JSON_OPTION,
) -> None:
    """The newest predictions of a deployment, with labels where feedback came."""
    from loopml.bootstrap import prediction_log_reader
    from loopml.settings import Settings

    rows = _rows(prediction_log_reader(Settings.from_env()).tail(deployment, n))
    if as_json:
        print_json(rows)
        return
    print_table(
        f"{deployment}: newest {len(rows)}",
        ["request id", "version", "inputs", "output", "latency ms", "label", "flags"],
        [
            (
                r["request_id"],
                r["model_version"],
                r["inputs_json"],
                r["output_json"],
                f"{r['latency_us'] / 1000:.2f}",
                r.get("label_json") or "",
                r["flags"],
            )
            for r in rows
        ],
    )


@predictions_app.command("show")
def show(
    request_id: str = typer.Argument(..., help="A request id from /predict."),
    as_json: bool = JSON_OPTION,
) -> None:
    """One prediction's full record: inputs, output, model version, latency, label."""
    from loopml.bootstrap import prediction_log_reader
    from loopml.errors import NotFound
    from loopml.settings import Settings

    record = prediction_log_reader(Settings.from_env()).get(request_id)
    if record is None:
        raise NotFound(
            f"No prediction has request id {request_id!r}.",
            "Take one from a /predict response or `loopml predictions tail`.",
        )
    if as_json:
        print_json(record)
        return
    for key, value in record.items():
        sys.stdout.write(f"{key:14} {value}\n")
