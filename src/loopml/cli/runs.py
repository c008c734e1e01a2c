"""`loopml runs ...`: search, show and compare tracked runs."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from loopml.pipelines import ModelCheck, Reproduction

app = typer.Typer(
    help="Tracked runs: params, metrics, artifacts, inputs, environment.", no_args_is_help=True
)

_FILTER_HELP = (
    "Only runs where this holds, e.g. \"metrics.f1 > 0.8 and params.model = 'gbm' "
    "and tags.team != 'x'\"."
)


@app.command("list")
def list_(
    filter: str = typer.Option(None, "--filter", "-f", help=_FILTER_HELP),
    order_by: str = typer.Option(
        None, "--order-by", "-o", help="e.g. -metrics.f1 (descending), 'params.lr asc'."
    ),
    limit: int = typer.Option(50, "--limit", min=1, max=10_000, help="Runs per page."),
    page: int = typer.Option(1, "--page", min=1, help="Page number."),
    parent: str = typer.Option(
        None, "--parent", help="Only the child runs of this run (a pipeline's steps)."
    ),
    all_runs: bool = typer.Option(
        False, "--all", help="Include child runs (pipeline steps, sweep trials)."
    ),
    columns: str = typer.Option(
        None, "--columns", help="Comma-separated metrics/params to show, e.g. f1,lr."
    ),
    project: str = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """List runs, newest first unless --order-by says otherwise."""
    workspace = open_workspace()
    result = workspace.tracking.search(
        project=project_of(workspace, project),
        filter=filter,
        order_by=order_by,
        limit=limit,
        offset=(page - 1) * limit,
        parent_id=parent,
        top_level_only=not (all_runs or parent),
    )
    if as_json:
        print_json({"total": result.total, "runs": result.runs})
        return
    keys = (
        [c.strip() for c in columns.split(",")]
        if columns
        else sorted({k for r in result.runs for k in r.metrics})[:6]
    )
    rows = [
        (
            r.id,
            r.name,
            r.status,
            when(r.start_time),
            *(_short(r.metrics.get(k, r.params.get(k))) for k in keys),
        )
        for r in result.runs
    ]
    print_table(None, ["run id", "name", "status", "started", *keys], rows)
    shown = len(result.runs)
    sys.stdout.write(f"{shown} of {result.total} run(s)\n")


def _short(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


@app.command("show")
def show(
    run_id: str = typer.Argument(..., help="The run id."), as_json: bool = JSON_OPTION
) -> None:
    """Everything about one run."""
    workspace = open_workspace()
    run = workspace.tracking.get(run_id)
    artifacts = workspace.tracking.artifacts(run_id)
    if as_json:
        print_json({"run": run, "artifacts": artifacts})
        return
    duration = f"{run.duration_s:.1f} s" if run.duration_s is not None else "running"
    print_fields(
        [
            ("run", run.id),
            ("name", run.name),
            ("project", run.project),
            ("status", run.status.value),
            ("started", when(run.start_time)),
            ("duration", duration),
            ("error", run.error),
            ("parent", run.parent_id),
            ("inputs", ", ".join(run.inputs)),
        ]
    )
    for title, values in (
        ("params", run.params),
        ("metrics", run.metrics),
        ("tags", run.tags),
        ("environment", {k: v for k, v in run.environment.items() if k != "argv"}),
    ):
        if values:
            print_table(title, ["key", "value"], [(k, _short(v)) for k, v in values.items()])
    if artifacts:
        print_table(
            "artifacts",
            ["path", "size", "digest"],
            [(a.path, a.size, a.digest[:19]) for a in artifacts],
        )


@app.command("reproduce")
def reproduce(
    run_id: str = typer.Argument(..., help="A pipeline run."),
    executor: str = typer.Option("local", "--executor", "-e", help="local, processes or ray."),
    register: bool = typer.Option(
        False,
        "--register",
        help="Register the models the rerun makes (none where a version holds the same files "
        "from the same data); by default they are only compared.",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Rerun a pipeline run on the same data versions and parameters, without the cache;
    compare its metrics, step outputs and model files with the original's."""
    from loopml.pipelines import reproduce_run

    result = reproduce_run(run_id, executor=executor, register=register)
    if as_json:
        print_json(
            {
                "original": run_id,
                "new": result.result.run.id,
                "status": result.result.run.status.value,
                "warnings": result.warnings,
                "metric_changes": result.metric_changes,
                "identical_metrics": result.identical_metrics,
                "output_changes": result.output_changes,
                "models": [
                    {
                        "model": m.name,
                        "digest": m.digest,
                        "identical": m.identical,
                        "outcome": m.outcome.value,
                        "version": m.version or None,
                        "original_version": m.original and m.original.version,
                    }
                    for m in result.models
                ],
            }
        )
    else:
        _report_reproduction(run_id, result)
    if not result.result.ok:
        raise typer.Exit(1)


def _report_reproduction(run_id: str, result: Reproduction) -> None:
    for warning in result.warnings:
        sys.stderr.write(f"warning: {warning}\n")
    run = result.result.run
    sys.stdout.write(f"reproduced {run_id} as {run.id} ({run.status.value})\n")
    metrics = ", ".join(sorted({*result.original.metrics, *run.metrics})) or "none"
    sys.stdout.write(f"metrics ({metrics}): ")
    sys.stdout.write("identical\n" if result.identical_metrics else "changed\n")
    for key, (before, after) in result.metric_changes.items():
        sys.stdout.write(f"  {key}: {_short(before)} -> {_short(after)}\n")
    changed = ", ".join(result.output_changes)
    sys.stdout.write(
        f"step outputs ({result.steps_compared} steps): "
        f"{'differ in ' + changed if changed else 'identical'}\n"
    )
    for model in result.models:
        sys.stdout.write(f"{_model_line(model)}\n")


def _model_line(model: ModelCheck) -> str:
    from loopml.services.registry import Outcome

    original = model.original
    if original is None:
        compared = f"model {model.name}: the original run registered no version to compare with"
    else:
        same = "identical to" if model.identical else "differ from"
        compared = f"model {model.name}: files {same} {original.name} version {original.version}'s"
    if model.outcome is Outcome.EXISTING:
        return (
            f"{compared}; {model.name} version {model.version} already holds this model "
            "(same files, same data); not registered again"
        )
    if model.outcome is Outcome.HELD:
        return f"{compared}; not registered (pass --register to register it)"
    return f"{compared}; registered {model.name} version {model.version}"


@app.command("compare")
def compare(
    run_a: str = typer.Argument(..., help="First run id."),
    run_b: str = typer.Argument(..., help="Second run id."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Params, metrics and inputs of two runs side by side; differences marked with *."""
    workspace = open_workspace()
    result = workspace.tracking.compare(run_a, run_b)
    if as_json:
        print_json(result)
        return
    a, b = result.runs
    rows: list[tuple[str, str, str, str]] = []
    for kind, values in (("param", result.params), ("metric", result.metrics)):
        for key, (left, right) in values.items():
            rows.append(
                ("*" if left != right else "", f"{kind} {key}", _short(left), _short(right))
            )
    rows.append(
        (
            "*" if result.inputs[0] != result.inputs[1] else "",
            "inputs",
            ", ".join(result.inputs[0]),
            ", ".join(result.inputs[1]),
        )
    )
    print_table(None, ["", "", f"{a.name} ({a.id[:8]})", f"{b.name} ({b.id[:8]})"], rows)
