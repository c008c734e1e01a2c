"""`loopml data ...`: versioned datasets."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from loopml.cli.context import (
    JSON_OPTION,
    PROJECT_OPTION,
    open_workspace,
    print_fields,
    print_json,
    print_table,
    project_of,
    size,
    when,
)

app = typer.Typer(
    help="Versioned datasets: immutable, content-addressed, profiled.", no_args_is_help=True
)

_PROGRESS_MIN_BYTES = 64 * 1024 * 1024


@contextmanager
def _progress(label: str) -> Iterator[Callable[[str, int, int], None]]:
    """A progress bar on stderr for large inputs when stderr is a terminal."""
    if not sys.stderr.isatty():
        yield lambda phase, done, total: None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        transient=True,
    )
    task = None
    with bar:

        def advance(phase: str, done: int, total: int) -> None:
            nonlocal task
            if total < _PROGRESS_MIN_BYTES:
                return
            if task is None:
                task = bar.add_task(label, total=total)
            bar.update(task, completed=done)

        yield advance


@app.command("add")
def add(
    path: Path = typer.Argument(..., help="A file or a folder."),
    name: str = typer.Option(None, "--name", "-n", help="Dataset name (default: the file name)."),
    message: str = typer.Option("", "--message", "-m", help="What this version is."),
    no_profile: bool = typer.Option(False, "--no-profile", help="Skip the schema and profile."),
    table: bool = typer.Option(
        False, "--table", help="Require one CSV/TSV/Parquet file (refuse anything else)."
    ),
    project: str = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Add a file or folder as a new version; adding the same bytes again returns that version."""
    workspace = open_workspace()
    with _progress(f"adding {path.name}") as progress:
        result = workspace.data.add(
            path,
            name=name,
            message=message,
            profile=not no_profile,
            require_table=table,
            project=project_of(workspace, project),
            progress=progress,
        )
    version = result.version
    if as_json:
        print_json({"created": result.created, **_version_dict(version)})
        return
    verb = "added" if result.created else "unchanged, already"
    sys.stdout.write(
        f"{verb} {version.ref}  {version.digest}  "
        f"{version.file_count} file(s), {size(version.total_size)}\n"
    )


def _version_dict(version: object) -> dict[str, object]:
    from loopml.domain.jsonable import jsonable

    data: dict[str, object] = jsonable(version)
    data["ref"] = getattr(version, "ref", None)
    return data


@app.command("list")
def list_(
    name: str = typer.Argument(None, help="A dataset: list its versions instead."),
    project: str = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """List datasets, or the versions of one dataset."""
    workspace = open_workspace()
    project = project_of(workspace, project)
    if name:
        versions = workspace.data.versions(name, project)
        if as_json:
            print_json([_version_dict(v) for v in versions])
            return
        print_table(
            f"{name} ({project})",
            ["version", "created", "files", "size", "digest", "message"],
            [
                (
                    v.version,
                    when(v.created_at),
                    v.file_count,
                    size(v.total_size),
                    v.digest[:19],
                    v.message,
                )
                for v in versions
            ],
        )
        return
    datasets = workspace.data.datasets(project)
    if as_json:
        print_json(datasets)
        return
    print_table(
        f"datasets ({project})",
        ["name", "latest", "updated"],
        [(d.name, d.latest_version, when(d.updated_at)) for d in datasets],
    )


@app.command("show")
def show(
    ref: str = typer.Argument(..., help="churn@2, churn@latest or churn."),
    project: str = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Show a version: files, schema and profile."""
    workspace = open_workspace()
    version = workspace.data.resolve(ref, project_of(workspace, project))
    manifest = workspace.data.manifest(version)
    profile = workspace.data.profile(version)
    if as_json:
        print_json(
            {**_version_dict(version), "files": manifest.to_dict()["files"], "profile": profile}
        )
        return
    print_fields(
        [
            ("dataset", version.ref),
            ("digest", version.digest),
            ("created", f"{when(version.created_at)} by {version.actor}"),
            ("message", version.message),
            ("files", version.file_count),
            ("size", size(version.total_size)),
        ]
    )
    if len(manifest.files) <= 50:
        print_table(
            "files",
            ["path", "size", "digest"],
            [(p, size(r.size), r.digest[:19]) for p, r in manifest.files.items()],
        )
    if version.schema:
        from loopml.cli.profile_view import print_profile

        print_profile(version.schema, profile)


@app.command("diff")
def diff(
    old: str = typer.Argument(..., help="The older version, e.g. churn@1."),
    new: str = typer.Argument(..., help="The newer version, e.g. churn@2."),
    project: str = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """What changed between two versions: files, schema and profile."""
    workspace = open_workspace()
    result = workspace.data.diff(old, new, project_of(workspace, project))
    if as_json:
        print_json(
            {
                "old": result.old.ref,
                "new": result.new.ref,
                "files": result.files,
                "schema": result.schema_changes,
                "profile": result.profile_changes,
            }
        )
        return
    out = sys.stdout
    out.write(f"{result.old.ref} -> {result.new.ref}\n")
    if result.old.digest == result.new.digest:
        out.write("identical\n")
        return
    for mark, paths in (
        ("+", result.files.added),
        ("-", result.files.removed),
        ("~", result.files.changed),
    ):
        for p in paths:
            out.write(f"  {mark} {p}\n")
    for title, lines in (("schema", result.schema_changes), ("profile", result.profile_changes)):
        if lines:
            out.write(f"{title}:\n")
            out.writelines(f"  {line}\n" for line in lines)


@app.command("get")
def get(
    ref: str = typer.Argument(..., help="churn@2, churn@latest or churn."),
    output: Path = typer.Option(Path("."), "--output", "-o", help="Folder to write the files to."),
    project: str = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Write a version's files to a folder, each verified against its hash."""
    workspace = open_workspace()
    with _progress(f"fetching {ref}") as progress:
        written = workspace.data.get(ref, project_of(workspace, project), output, progress)
    if as_json:
        print_json([str(p) for p in written])
        return
    sys.stdout.writelines(f"{p}\n" for p in written)
