"""`loopml import`: bring another tracker's history into the workspace (`loopml import mlflow`)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from loopml.cli.context import JSON_OPTION, open_workspace, print_json, print_table, size

app = typer.Typer(help="Import runs and models from another tracker.", no_args_is_help=True)


@contextmanager
def _progress() -> Iterator[Callable[[str, int, int], None]]:
    """Bars on stderr, one per kind of thing imported, when stderr is a terminal."""
    if not sys.stderr.isatty():
        yield lambda what, done, total: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    bar = Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
        TimeRemainingColumn(), transient=True,
    )  # fmt: skip
    tasks: dict[str, object] = {}
    with bar:

        def advance(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(f"importing {what}", total=total)
            bar.update(tasks[what], completed=done)  # type: ignore[arg-type]

        yield advance


@app.command("mlflow")
def mlflow(
    tracking_uri: str = typer.Option(
        ..., "--tracking-uri", help="The MLflow store: a tracking server (http://host:5000), an "
        "mlruns folder, or its database (sqlite:///mlflow.db, postgresql://...).",
    ),
    experiments: list[str] = typer.Option(
        [], "--experiment", "-e", help="Import this experiment (repeatable); default: every one."
    ),
    models: bool = typer.Option(
        False, "--models", help="Also import the registered models: versions and aliases."
    ),
    project: str = typer.Option(
        None, "--project", "-p", help="Put every run in this project, the experiment's name in "
        "the tag mlflow.experiment (default: a project per experiment, named after it).",
    ),
    artifacts_root: Path = typer.Option(
        None, "--artifacts-root", help="For a database whose runs' files a tracking server kept "
        "(mlflow-artifacts:/...): the folder it kept them in (its --artifacts-destination).",
    ),
    trust_pickles: bool = typer.Option(
        False, "--trust-pickles", help="Load models MLflow saved as pickles (running their "
        "code) to register them in a loopml flavor; only for a store you trust.",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be imported; write "
                                 "nothing."),
    as_json: bool = JSON_OPTION,
) -> None:  # fmt: skip
    """Import an MLflow store: experiments as projects; runs with their ids, times, status,
    params, tags, every metric point and their artifacts; MLflow 3 logged models; with
    --models, registered model versions and aliases (in loopml's own flavor when the model
    loads from its library's format: XGBoost, LightGBM, ONNX, scikit-learn saved with skops; a
    pickle only with --trust-pickles; else as MLflow's folder). A rerun skips what a previous
    import brought whole, and finishes what it did not."""
    from functools import partial

    from loopml.adapters.mlflow_models import native_model
    from loopml.adapters.mlflow_source import MlflowClientSource
    from loopml.services.mlflow_import import MlflowImport

    source = MlflowClientSource(tracking_uri, artifacts_root)
    workspace = open_workspace()
    try:
        importer = MlflowImport(
            source, workspace.stores, workspace.blobs, actor=workspace.settings.actor,
            experiments=experiments, project=project, with_models=models,
            native=partial(native_model, trust_pickles=trust_pickles),
            register=workspace.registry.register_once,
        )  # fmt: skip
        with _progress() as progress:
            report = importer.run(dry_run=dry_run, progress=progress)
    finally:
        workspace.close()
    if as_json:
        print_json(report.__dict__)
        return
    verb = "Would import" if dry_run else "Imported"
    print_table(None, ["experiment", "project"], sorted(report.projects.items()))
    rows = [
        ("runs", report.runs, f"{report.runs_skipped} already imported"),
        ("metric points", report.metric_points, ""),
        ("artifacts", report.artifacts, size(report.artifact_bytes)),
        ("logged models", report.logged_models, ""),
        ("model versions", report.versions,
         f"{report.native_versions} in their own flavor, {report.versions_skipped} already "
         f"imported, {report.aliases} aliases set" if models else "use --models"),
    ]  # fmt: skip
    print_table(f"{verb} from {tracking_uri}", ["what", "count", ""], rows)
    for note in report.notes:
        sys.stdout.write(f"note: {note}\n")
