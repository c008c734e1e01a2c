"""`loopml serve` and `loopml predictions ...`: the model server and its prediction log."""

from __future__ import annotations

import sys
from typing import Any

import typer

from loopml.cli.context import (
    JSON_OPTION,
    PROJECT_OPTION,
    print_fields,
    print_json,
    print_table,
)

predictions_app = typer.Typer(
    help="The prediction log: every row served, with its label.", no_args_is_help=True
)


GRACE_S = 30
"""Seconds a stopping server gives requests in flight before it stops anyway."""


def serve(
    model: str = typer.Argument(
        None,
        help="churn@champion (follows the alias), churn/3, churn; "
        "or leave it out and name --deployment(s).",
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8080, "--port", help="Port to listen on."),
    deployment: list[str] = typer.Option(
        [],
        "--deployment",
        "-d",
        help="Serve this stored deployment (repeatable); with MODEL, the name to serve it under.",
    ),
    poll_s: float = typer.Option(2.0, "--poll-s", help="How often to check the alias."),
    trust: bool = typer.Option(False, "--trust", help="Allow python-flavor (pickle) models."),
    no_log: bool = typer.Option(False, "--no-log", help="Do not log predictions."),
    log_probabilities: bool = typer.Option(
        False,
        "--log-probabilities",
        help="Log every row's class probabilities (monitoring then estimates performance "
        "before labels arrive); costs one predict_proba per batch.",
    ),
    max_batch_rows: int = typer.Option(
        512, "--max-batch-rows", min=1, help="Rows one model call may take from waiting requests."
    ),
    batch_wait_ms: float = typer.Option(
        0.0, "--batch-wait-ms", min=0.0, help="Hold a batch open this long to gather more."
    ),
    no_batching: bool = typer.Option(False, "--no-batching", help="One model call per request."),
    workers: int = typer.Option(
        1, "--workers", min=1, help="Server processes sharing the port (each loads the models)."
    ),
    grpc_port: int = typer.Option(
        None,
        "--grpc-port",
        min=0,
        max=65535,
        help="Also serve the V2 gRPC service (inference.GRPCInferenceService, as tritonclient.grpc "
        "calls it) on this port, logged like every request; needs loopml[grpc].",
    ),
    project: str = PROJECT_OPTION,
) -> None:
    """Serve a model over HTTP: /predict, /feedback, the V2 protocol, /metrics; and over V2
    gRPC with --grpc-port."""
    import uvicorn

    from loopml.serving.workers import listen, nodelay_protocol, run_workers

    if grpc_port is not None:
        _check_grpc()

    def serve_one(fd: int | None) -> None:
        from loopml.bootstrap import open_workspace, prediction_log_reader, prediction_log_writer
        from loopml.serving.app import create_app
        from loopml.serving.log_sink import LogSink

        said = _server_log()
        ws = open_workspace()
        hosts = _hosts(ws, model, deployment, project=project, trust=trust, poll_s=poll_s)
        sink = (
            None
            if no_log
            else LogSink(prediction_log_writer(ws.settings), prediction_log_reader(ws.settings))
        )
        batching = {
            "max_batch_rows": max_batch_rows,
            "max_wait_ms": batch_wait_ms,
            "enabled": not no_batching,
        }
        grpc = None if grpc_port is None else (host, grpc_port)
        app = create_app(
            hosts, sink, batching=batching, log_probabilities=log_probabilities, grpc=grpc
        )
        for name, hosted in hosts.items():
            said.info(
                "serving %s as %r on http://%s:%s",
                hosted.primary.current.version.ref,
                name,
                host,
                port,
            )
        # On SIGTERM requests in flight get up to GRACE_S to finish, then the app's shutdown
        # writes the queued prediction log (nothing acknowledged is lost); uvicorn then
        # re-raises the signal, so the process ends as terminated by it.
        where: dict[str, Any] = {"fd": fd} if fd is not None else {"host": host, "port": port}
        uvicorn.run(
            app,
            **where,
            http=nodelay_protocol(),
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=GRACE_S,
        )
        ws.close()

    if workers == 1:
        serve_one(None)
        return
    raise typer.Exit(run_workers(workers, listen(host, port), serve_one))


def _check_grpc() -> None:
    """InvalidInput naming the extra when the gRPC library is not installed."""
    import importlib.util

    from loopml.errors import InvalidInput

    if (
        importlib.util.find_spec("grpc") is None
        or importlib.util.find_spec("google.protobuf") is None
    ):
        raise InvalidInput(
            "--grpc-port serves the V2 gRPC service, and grpcio is not installed.",
            "pip install 'loopml[grpc]', or serve without --grpc-port.",
        )


def _server_log() -> Any:
    """The server's log (`loopml.serving`: start-up, each live swap, the stop) to stderr, one
    line per event, each with the process id (workers share the terminal)."""
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(process)d] %(message)s"))
    package = logging.getLogger("loopml")
    if not package.handlers:
        package.addHandler(handler)
    package.setLevel(logging.INFO)
    return logging.getLogger("loopml.serving")


def _hosts(
    ws: Any,
    model: str | None,
    deployments: list[str],
    *,
    project: str | None,
    trust: bool,
    poll_s: float,
) -> dict[str, Any]:
    """What to serve: a model under a name, or stored deployments with shadow and canary."""
    from loopml.domain.refs import parse_model_ref
    from loopml.errors import InvalidInput
    from loopml.serving.host import DeploymentHosts, ModelHost

    def make(name: str, ref: str, role: str = "primary") -> ModelHost:
        return ModelHost(ws, name, ref, project=project, trust=trust, poll_s=poll_s, role=role)

    if model is not None:
        if len(deployments) > 1:
            raise InvalidInput(
                "A MODEL is served under one name; several --deployment were given.",
                "Give one --deployment NAME, or leave MODEL out.",
            )
        name = deployments[0] if deployments else parse_model_ref(model).name
        return {name: DeploymentHosts(make(name, model))}
    if not deployments:
        raise InvalidInput(
            "Nothing to serve.",
            "Give a MODEL, e.g. churn@champion, or "
            "--deployment NAME of a deployment made with `loopml deploy create`.",
        )
    hosts: dict[str, Any] = {}
    for name in deployments:
        found = ws.deployments.get(name, project or ws.project)
        hosts[name] = DeploymentHosts(
            make(name, found.model_ref),
            make(name, found.shadow_ref, "shadow") if found.shadow_ref else None,
            make(name, found.canary_ref, "canary") if found.canary_ref else None,
            found.canary_percent,
        )
    return hosts


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
                " ".join(filter(None, ["shadow" if r.get("shadow") else "", r["flags"]])),
            )
            for r in rows
        ],
    )


@predictions_app.command("show")
def show(
    request_id: str = typer.Argument(..., help="A request id from /predict or V2."),
    as_json: bool = JSON_OPTION,
) -> None:
    """One prediction's full record: inputs, output, model version, latency, label.

    A request id carries the time it was made, so only that day's log is read."""
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
    print_fields(_readable(record))


def _time_option(text: str | None, option: str) -> int | None:
    """`--since`/`--until`: ISO-8601 with an offset, seconds since 1970, or a duration ago."""
    if text is None:
        return None
    import time

    from loopml.domain.durations import parse_duration
    from loopml.domain.event_time import at_us
    from loopml.errors import InvalidInput

    if text.strip()[-1:].isalpha() and not text.strip().endswith("Z"):
        return time.time_ns() // 1000 - parse_duration(text) * 1_000_000
    try:
        return at_us(text)
    except InvalidInput as exc:
        message, hint = (said.replace("--at", option) for said in (exc.message, exc.hint))
        raise InvalidInput(message, hint) from None


@predictions_app.command("export")
def export(
    deployment: str = typer.Argument(..., help="The deployment's name."),
    output: str = typer.Option(..., "--output", "-o", help="The Parquet file to write."),
    since: str = typer.Option(
        None, "--since", help="From TIME (ISO-8601 with offset, epoch seconds, or e.g. 24h ago)."
    ),
    until: str = typer.Option(None, "--until", help="Until TIME, excluded (as --since)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Write a deployment's logged rows, with their latest labels, to one Parquet file (for
    DuckDB, Polars, pandas or Spark). Rows are selected by their time: the event time when the
    request gave one, else the serving time."""
    from pathlib import Path

    from loopml.bootstrap import prediction_log_reader
    from loopml.errors import InvalidInput
    from loopml.settings import Settings

    since_us, until_us = _time_option(since, "--since"), _time_option(until, "--until")
    if since_us is not None and until_us is not None and since_us >= until_us:
        raise InvalidInput("--since is not before --until.", "Give a window that holds time.")
    target = Path(output)
    if target.is_dir() or not target.parent.is_dir():
        raise InvalidInput(
            f"{output} is not a file in an existing folder.", "Name a .parquet file to write."
        )
    reader = prediction_log_reader(Settings.from_env())
    rows = reader.export(deployment, target, since_us=since_us, until_us=until_us)
    if as_json:
        print_json({"deployment": deployment, "rows": rows, "output": str(target)})
        return
    sys.stdout.write(f"Wrote {rows} rows of {deployment} to {target}.\n")


def _readable(record: dict[str, Any]) -> list[tuple[str, Any]]:
    """A logged row as a person reads it: times as UTC, latency in ms, no empty fields."""
    from datetime import UTC, datetime

    time_us, latency_us = record.get("time_us"), record.get("latency_us")
    shown = {
        "request id": record.get("request_id"),
        "time": (
            datetime.fromtimestamp(time_us / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
            + " UTC"
            if isinstance(time_us, int) and 0 <= time_us < 253_402_300_800_000_000
            else time_us
        ),
        "deployment": record.get("deployment"),
        "model": f"{record.get('model')} version {record.get('model_version')}",
        "answered by": "shadow (logged, not returned)" if record.get("shadow") else "the model",
        "inputs": record.get("inputs_json"),
        "output": record.get("output_json"),
        "probabilities": record.get("proba_json"),
        "latency": f"{latency_us / 1000:.2f} ms" if isinstance(latency_us, int) else latency_us,
        "flags": record.get("flags"),
        "client id": record.get("client_id"),
        "label": record.get("label_json") or "none fed back yet",
    }
    return [(key, value) for key, value in shown.items() if value not in (None, "")]
