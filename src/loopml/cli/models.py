"""`loopml models ...`: the model registry."""

from __future__ import annotations

import sys
from typing import Any

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

app = typer.Typer(help="The model registry: versions, signatures, aliases.", no_args_is_help=True)
alias_app = typer.Typer(
    help="Movable names on versions: champion, challenger, ...", no_args_is_help=True
)
app.add_typer(alias_app, name="alias")


@app.command("list")
def list_(project: str = PROJECT_OPTION, as_json: bool = JSON_OPTION) -> None:
    """List registered models with their latest version and aliases."""
    workspace = open_workspace()
    models = workspace.registry.models(project_of(workspace, project))
    if as_json:
        print_json(models)
        return
    print_table(
        None,
        ["model", "latest", "aliases", "created"],
        [
            (
                m.name,
                m.latest_version,
                ", ".join(f"{a}={v}" for a, v in sorted(m.aliases.items())),
                when(m.created_at),
            )
            for m in models
        ],
    )


@app.command("versions")
def versions(
    name: str = typer.Argument(..., help="Model name."),
    project: str = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """List the versions of a model."""
    workspace = open_workspace()
    found = workspace.registry.versions(name, project_of(workspace, project))
    if as_json:
        print_json(found)
        return
    print_table(
        name,
        ["version", "aliases", "flavor", "run", "metrics", "created"],
        [
            (
                v.version,
                ", ".join(v.aliases),
                v.flavor,
                (v.run_id or "")[:8],
                ", ".join(f"{k}={val:.4g}" for k, val in sorted(v.metrics.items())[:4]),
                when(v.created_at),
            )
            for v in found
        ],
    )


@app.command("show")
def show(
    ref: str = typer.Argument(..., help="churn/3, churn@champion or churn (latest)."),
    project: str = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """One model version: run, flavor, signature, metrics, artifact digest."""
    workspace = open_workspace()
    version = workspace.registry.resolve(ref, project_of(workspace, project))
    if as_json:
        print_json(version)
        return
    print_fields(
        [
            ("model", version.ref),
            ("aliases", ", ".join(version.aliases)),
            ("flavor", version.flavor),
            ("run", version.run_id),
            ("artifact", version.artifact_digest),
            ("created", f"{when(version.created_at)} by {version.actor}"),
            *_compiled_fields(version.flavor_info),
        ]
    )
    inputs = version.signature.get("inputs", [])
    if inputs:
        print_table("signature", ["input", "type"], [(c["name"], c["type"]) for c in inputs])
    if version.metrics:
        print_table("metrics", ["metric", "value"], sorted(version.metrics.items()))


def _compiled_fields(info: dict[str, Any]) -> list[tuple[str, str]]:
    """The source and parity of a version `loopml models compile` made, else nothing."""
    if not info.get("metadata"):
        return []
    from loopml.domain.parity import recorded_parity, recorded_source

    source, parity = recorded_source(info), recorded_parity(info)
    fields = []
    if source is not None:
        made = f"{source.get('model')}/{source.get('version')} ({source.get('flavor')})"
        fields.append(("compiled from", made))
    if parity is not None:
        fields.append(("parity", parity.describe()))
    return fields


@app.command("promote")
def promote(
    name: str = typer.Argument(..., help="Model name."),
    version: int = typer.Argument(..., help="Version to make the champion."),
    alias: str = typer.Option("champion", "--alias", help="The alias to move."),
    project: str = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Make a version the champion (servers following the alias swap to it live); audited."""
    workspace = open_workspace()
    before = workspace.registry.promote(
        name, version, project=project_of(workspace, project), alias=alias
    )
    if as_json:
        print_json({"model": name, "alias": alias, "version": version, "previous": before})
        return
    replaced = f", replacing {before}" if before is not None and before != version else ""
    sys.stdout.write(f"promoted {name} {version} to {alias}{replaced}\n")


@app.command("rollback")
def rollback(
    name: str = typer.Argument(..., help="Model name."),
    alias: str = typer.Option("champion", "--alias", help="The alias to move back."),
    project: str = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Return the champion to the version it was before its latest promotion; audited."""
    workspace = open_workspace()
    current, previous = workspace.registry.rollback(
        name, project=project_of(workspace, project), alias=alias
    )
    if as_json:
        print_json({"model": name, "alias": alias, "from": current, "to": previous})
        return
    sys.stdout.write(f"rolled back {name}@{alias} from {current} to {previous}\n")


@alias_app.command("set")
def alias_set(
    name: str = typer.Argument(..., help="Model name."),
    alias: str = typer.Argument(..., help="Alias, e.g. champion."),
    version: int = typer.Argument(..., help="Version number it should point at."),
    project: str = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Point an alias at a version (moving it if it pointed elsewhere)."""
    workspace = open_workspace()
    before = workspace.registry.set_alias(
        name, alias, version, project=project_of(workspace, project)
    )
    if as_json:
        print_json({"model": name, "alias": alias, "version": version, "previous": before})
        return
    moved = f" (was {before})" if before is not None and before != version else ""
    sys.stdout.write(f"{name}@{alias} -> {version}{moved}\n")


@alias_app.command("delete")
def alias_delete(
    name: str = typer.Argument(..., help="Model name."),
    alias: str = typer.Argument(..., help="Alias to remove."),
    project: str = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Remove an alias."""
    workspace = open_workspace()
    before = workspace.registry.delete_alias(name, alias, project=project_of(workspace, project))
    if as_json:
        print_json({"model": name, "alias": alias, "previous": before})
        return
    sys.stdout.write(f"{name}@{alias} removed (was {before})\n")


@app.command("compile")
def compile_(
    ref: str = typer.Argument(..., help="Version to compile: churn/3, churn@champion or churn."),
    to: str = typer.Option("onnx", "--to", help="The format: onnx (served by onnxruntime)."),
    tolerance: float = typer.Option(
        1e-4,
        "--tolerance",
        help="The largest absolute difference of a prediction or probability to accept "
        "between the compiled model and the source (ONNX computes in float32: expect ~1e-7).",
    ),
    data: str = typer.Option(
        None,
        "--data",
        help="Dataset version to check parity on, e.g. churn@3 (default: the data the source "
        "was trained on; up to 1,000 rows).",
    ),
    project: str = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Compile a model version to ONNX for faster serving, as the next version of the model.

    The source (scikit-learn estimator or pipeline, XGBoost or LightGBM model) is converted
    (skl2onnx, onnxmltools: pip install 'loopml[compile]') and both predict the same rows; the
    new version is registered only if every probability or prediction is within --tolerance
    and every class label matches (but at a tie within it). It keeps the source's run, metrics
    and input columns, and records the source version and the parity figures (`loopml models
    show NAME/VERSION`). Serve it like any version (`loopml serve NAME/VERSION`, or promote
    it)."""
    workspace = open_workspace()
    done = workspace.compiler.compile(
        ref, project=project_of(workspace, project), to=to, tolerance=tolerance, data=data
    )
    if as_json:
        print_json(
            {
                "version": done.version,
                "source": done.source.ref,
                "outcome": done.outcome.value,
                "checked_on": done.checked_on,
                "parity": done.parity.to_dict(),
            }
        )
        return
    sys.stdout.write(done.describe() + "\n")
