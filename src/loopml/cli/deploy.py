"""`loopml deploy ...`: deployments, the named endpoints `loopml serve --deployment` serves."""

from __future__ import annotations

import sys

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

app = typer.Typer(
    help="Deployments: a model reference to serve, with an optional shadow and canary.",
    no_args_is_help=True,
)


@app.command("create")
def create(
    name: str = typer.Argument(..., help="Deployment name, e.g. churn-prod."),
    model: str = typer.Option(..., "--model", "-m", help="churn@champion (follows the alias)."),
    shadow: str = typer.Option(
        None, "--shadow", help="A model that sees every request and never answers."
    ),
    canary: str = typer.Option(None, "--canary", help="A model that answers a share of requests."),
    canary_percent: float = typer.Option(
        0.0, "--canary-percent", help="Share of requests the canary answers (0-100)."
    ),
    project: str = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a deployment, or replace the one with this name."""
    ws = open_workspace()
    found, created = ws.deployments.create(
        name,
        project=project_of(ws, project),
        model=model,
        shadow=shadow,
        canary=canary,
        canary_percent=canary_percent,
    )
    if as_json:
        print_json({"created": created, **_plain(found)})
        return
    sys.stdout.write(
        f"{'created' if created else 'updated'} deployment {name}: {model}"
        f"{f', shadow {shadow}' if shadow else ''}"
        f"{f', canary {canary} at {canary_percent}%' if canary else ''}\n"
    )


def _plain(found: object) -> dict[str, object]:
    from loopml.domain.jsonable import jsonable

    data: dict[str, object] = jsonable(found)
    return data


@app.command("list")
def list_(project: str = PROJECT_OPTION, as_json: bool = JSON_OPTION) -> None:
    """List deployments."""
    ws = open_workspace()
    found = ws.deployments.list(project_of(ws, project))
    if as_json:
        print_json(found)
        return
    print_table(
        None,
        ["deployment", "model", "shadow", "canary", "updated"],
        [
            (
                d.name,
                d.model_ref,
                d.shadow_ref,
                f"{d.canary_ref} ({d.canary_percent:g}%)" if d.canary_ref else "",
                when(d.updated_at),
            )
            for d in found
        ],
    )


@app.command("show")
def show(
    name: str = typer.Argument(..., help="Deployment name."),
    project: str = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """One deployment, and the version its model reference names now."""
    ws = open_workspace()
    proj = project_of(ws, project)
    found = ws.deployments.get(name, proj)
    version = ws.registry.resolve(found.model_ref, proj)
    if as_json:
        print_json({**_plain(found), "serves_version": version.version})
        return
    print_fields(
        [
            ("deployment", found.name),
            ("model", f"{found.model_ref} -> {version.ref}"),
            ("shadow", found.shadow_ref),
            ("canary", found.canary_ref),
            ("canary share", f"{found.canary_percent:g}%"),
            ("updated", when(found.updated_at)),
        ]
    )


@app.command("delete")
def delete(
    name: str = typer.Argument(..., help="Deployment name."), project: str = PROJECT_OPTION
) -> None:
    """Delete a deployment (its prediction log stays)."""
    ws = open_workspace()
    ws.deployments.delete(name, project_of(ws, project))
    sys.stdout.write(f"deleted deployment {name}\n")
