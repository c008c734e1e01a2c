"""`loopml init`, `loopml db upgrade`, `loopml audit ...`: the workspace itself."""

from __future__ import annotations

import sys

import typer

from loopml.cli.context import (
    JSON_OPTION,
    open_workspace,
    print_fields,
    print_json,
    print_table,
    project_of,
)

db_app = typer.Typer(help="The metadata database.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit trail of every change.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.add_typer(db_app, name="db")
    app.add_typer(audit_app, name="audit")


def init(as_json: bool = JSON_OPTION) -> None:
    """Create the workspace (./.loopml/ by default). Every command also does this on first use."""
    workspace = open_workspace()
    settings = workspace.settings
    info = {
        "database": settings.db_url,
        "artifacts": settings.artifacts_url,
        "project": settings.project,
    }
    if as_json:
        print_json(info)
        return
    print_fields([("workspace ready", ""), *info.items()])


@db_app.command("upgrade")
def db_upgrade(as_json: bool = JSON_OPTION) -> None:
    """Apply the schema migrations shipped with loopml (safe to run at any time)."""
    from loopml.bootstrap import upgrade_schema
    from loopml.settings import Settings

    revision, head = upgrade_schema(Settings.from_env())
    if as_json:
        print_json({"revision": revision, "head": head})
        return
    print_fields([("schema revision", revision), ("newest", head)])


@audit_app.command("log")
def audit_log(
    entity: str = typer.Option(
        None, "--entity", help="Only events of this entity, e.g. model:churn."
    ),
    action: str = typer.Option(None, "--action", help="Only this action, e.g. model.alias_set."),
    limit: int = typer.Option(50, "--limit", min=1, help="Newest events to show."),
    project: str = typer.Option(
        None,
        "--project",
        "-p",
        help="Only events of this project's things; also the project of a short --entity "
        "KIND:NAME (default $LOOPML_PROJECT or 'default'). Without it and --entity: every event.",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show the newest events: who changed what, when, from what to what."""
    workspace = open_workspace()
    if entity and entity.count(":") == 1 and "/" not in entity:
        kind, name = entity.split(":")
        entity = f"{kind}:{project_of(workspace, project)}/{name}"
    chosen = project_of(workspace, project) if project else None
    events = workspace.audit.log(entity=entity, action=action, limit=limit, project=chosen)
    if as_json:
        print_json(events)
        return
    print_table(
        None,
        ["seq", "time", "actor", "action", "entity", "change"],
        [
            (
                e.seq,
                e.time.strftime("%Y-%m-%d %H:%M:%S"),
                e.actor,
                e.action,
                e.entity,
                _change(e.before, e.after),
            )
            for e in events
        ],
    )


def _change(before: object, after: object) -> str:
    if before is None:
        return str(after or "")
    return f"{before} -> {after}"


@audit_app.command("head")
def audit_head(as_json: bool = JSON_OPTION) -> None:
    """Print the chain's head (SEQ:HASH). Keep it outside the database (a CI log, a ticket):
    `audit verify --checkpoint` then also catches removal of the newest events."""
    head = open_workspace().audit.head()
    if as_json:
        print_json({"seq": head.seq, "hash": head.hash, "checkpoint": head.text()})
        return
    sys.stdout.write(head.text() + "\n")


@audit_app.command("verify")
def audit_verify(
    checkpoint: str = typer.Option(
        None, "--checkpoint", help="A SEQ:HASH from `audit head` that must still be in the chain."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Check the hash chain of the whole audit trail; exit 1 if any event was altered,
    inserted or removed (the newest ones too, given a checkpoint)."""
    from loopml.domain.audit import parse_checkpoint

    mark = parse_checkpoint(checkpoint) if checkpoint else None
    workspace = open_workspace()
    verdict = workspace.audit.verify(mark)
    if as_json:
        print_json(verdict)
    elif verdict.ok:
        print_fields([("audit trail", "intact"), ("events checked", verdict.checked)])
    else:
        print_fields(
            [
                ("audit trail", "ALTERED"),
                ("first bad event", verdict.first_bad_seq),
                ("reason", verdict.reason),
            ]
        )
    if not verdict.ok:
        raise typer.Exit(1)
