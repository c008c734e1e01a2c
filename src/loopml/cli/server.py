"""`loopml server`, and the users, tokens and projects it serves to."""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from loopml.cli.context import JSON_OPTION, open_workspace, print_json, print_table, when

if TYPE_CHECKING:
    from loopml.server.boundary import AllowedHosts

users_app = typer.Typer(help="Users of a team server and their role everywhere.")
tokens_app = typer.Typer(help="API tokens: shown once, stored as a hash, revocable, expiring.")
projects_app = typer.Typer(help="Projects (namespaces) and who may do what in each.")


def server(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(5000, "--port", min=1, max=65535, help="Port to listen on."),
    no_auth: bool = typer.Option(
        False,
        "--no-auth",
        help="Let every request in as an admin, without a token. Loopback addresses only.",
    ),
    max_upload: str = typer.Option(
        "64GiB", "--max-upload", help="Largest blob a client may upload (e.g. 500MiB, 2GiB)."
    ),
    schedule_every: float = typer.Option(
        5.0,
        "--schedule-every",
        min=0.1,
        help="Seconds between runs of the scheduler (due monitors, health probes, retrain "
        "loops); replicas on one database take turns.",
    ),
    no_schedule: bool = typer.Option(
        False, "--no-schedule", help="Serve the API only; run no scheduled job here."
    ),
    allowed_hosts: list[str] = typer.Option(
        [],
        "--allowed-host",
        help="A name clients and browsers reach this server by (NAME for any port, or "
        "NAME:PORT); repeatable. The bind address and localhost on --port are always allowed; "
        "bound to 0.0.0.0 or ::, so is any IP address on --port. Other Host headers get 400.",
    ),
    allow_targets: list[str] = typer.Option(
        [],
        "--allow-target",
        help="An address range (CIDR) that health probes, webhooks and Slack notices may reach "
        "although it is loopback, private or link-local (refused by default); repeatable.",
    ),
    docs: bool = typer.Option(
        False, "--docs", help="Serve Swagger UI at /api/v1/docs (it loads scripts from a CDN)."
    ),
    pipelines: list[Path] = typer.Option(
        [],
        "--pipelines",
        help="A folder whose pipeline files (FILE.py:NAME) retrain loops may name for this "
        "server's schedule to run; repeatable. None given: the schedule runs no retraining "
        "(a loop's owner names the code, the server runs it).",
    ),
    trust_model_types: list[str] = typer.Option(
        [],
        "--trust-model-type",
        help="A package prefix (e.g. lightgbm.) whose classes a model this server loads may be "
        "built from, besides sklearn.; repeatable. The server loads models to explain "
        "predictions in the UI and to judge retrainings.",
    ),
    trusted_proxies: list[str] = typer.Option(
        [],
        "--trusted-proxy",
        help="Address of a reverse proxy whose X-Forwarded-Proto/-For headers are believed "
        "(default 127.0.0.1); repeatable. Behind https, the UI's session cookie is then Secure.",
    ),
) -> None:
    """Serve this workspace (LOOPML_DB_URL, LOOPML_ARTIFACTS) to a team over a REST API at
    /api/v1, with users, tokens and roles; clients set LOOPML_SERVER and LOOPML_TOKEN."""
    import dataclasses
    import logging

    import uvicorn

    from loopml.adapters.flavors.sklearn import SERVER_MODEL_TYPES
    from loopml.bootstrap import open_workspace as open_ws
    from loopml.errors import InvalidInput
    from loopml.server.app import create_server
    from loopml.settings import Settings

    if no_auth and not _loopback(host):
        raise InvalidInput(
            f"--no-auth on {host} would let anyone on the network in as an admin.",
            "Bind to 127.0.0.1 for --no-auth, or create users and tokens instead.",
        )
    hosts = _served_hosts(host, port, allowed_hosts)
    settings = Settings.from_env()
    settings = dataclasses.replace(
        settings,
        allowed_targets=(*settings.allowed_targets, *allow_targets),
        guard_local_targets=True,
        model_types=(*SERVER_MODEL_TYPES, *trust_model_types),
        pipeline_roots=tuple(str(folder.resolve()) for folder in pipelines),
    )
    settings.target_policy()  # a malformed --allow-target fails here, before anything starts
    ws = open_ws(settings)
    if ws.settings.server_url:
        raise InvalidInput(
            "LOOPML_SERVER is set, so this workspace is itself a server's client.",
            "Unset LOOPML_SERVER where the server runs; point LOOPML_DB_URL at its database.",
        )
    if no_auth:
        sys.stderr.write(
            "WARNING: --no-auth: every request is an admin, with no token asked. "
            f"Only {host} can reach it.\n"
        )
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    app = create_server(
        ws,
        auth=not no_auth,
        max_upload_bytes=_bytes(max_upload),
        schedule_s=None if no_schedule else schedule_every,
        hosts=hosts,
        docs=docs,
    )
    where = "docs at /api/v1/docs" if docs else "OpenAPI at /api/v1/openapi.json"
    sys.stderr.write(
        f"loopml server on http://{host}:{port}/api/v1 ({where}); answers to {hosts.shown()}\n"
    )
    uvicorn.run(
        app, host=host, port=port, log_level="warning", access_log=False, proxy_headers=True,
        forwarded_allow_ips=",".join(trusted_proxies) or "127.0.0.1",
    )  # fmt: skip


def ui(
    port: int = typer.Option(5000, "--port", min=1, max=65535, help="Port to listen on."),
    open_browser: bool = typer.Option(
        False, "--open", help="Open the UI in the default web browser as well."
    ),
) -> None:
    """Look at this workspace in a web browser: runs with their curves, data with its
    profiles, models, lineage and the audit trail, at http://127.0.0.1:PORT (this machine
    only; a team uses `loopml server`, which serves the same pages to users with tokens)."""
    import uvicorn

    from loopml.errors import InvalidInput
    from loopml.server.app import create_server
    from loopml.server.boundary import AllowedHosts

    ws = open_workspace()
    if ws.settings.server_url:
        raise InvalidInput(
            "LOOPML_SERVER is set: this workspace is a team server's.",
            f"Open {ws.settings.server_url}/ui in a browser instead, and log in with a token.",
        )
    hosts = AllowedHosts([f"127.0.0.1:{port}", f"localhost:{port}"])
    app = create_server(ws, auth=False, schedule_s=None, hosts=hosts)
    url = f"http://127.0.0.1:{port}/ui/runs"
    sys.stderr.write(f"loopml ui on {url} (Ctrl+C stops it)\n")
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _served_hosts(host: str, port: int, extra: list[str]) -> AllowedHosts:
    """The names `loopml server --host HOST --port PORT` answers to (see
    `loopml.server.boundary`)."""
    from loopml.server.boundary import AllowedHosts

    wildcard = host in ("0.0.0.0", "::", "")
    bound = [] if wildcard else [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    if _loopback(host):
        bound += [f"127.0.0.1:{port}", f"[::1]:{port}"]
    return AllowedHosts(
        [*bound, f"localhost:{port}", *extra], any_address_on=port if wildcard else None
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_UNITS = {"": 1, "B": 1, "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40}


def _bytes(text: str) -> int:
    from loopml.errors import InvalidInput

    cleaned = text.strip().upper()
    number = cleaned.rstrip("BKMGTI")
    unit = cleaned[len(number) :]
    if not number.isdigit() or unit not in _UNITS or int(number) == 0:
        raise InvalidInput(f"{text!r} is not a size.", "Write e.g. 500MiB or 2GiB.")
    return int(number) * _UNITS[unit]


@users_app.command("create")
def create_user(
    name: str = typer.Argument(..., help="User name."),
    role: str = typer.Option(
        None, "--role", help="viewer, editor or admin on every project (default: none)."
    ),
) -> None:
    """Add a user (then give them a token with `loopml tokens create`)."""
    ws = open_workspace()
    user = ws.auth.create_user(name, role)
    sys.stdout.write(
        f"created user {user.name} ({user.role or 'no role; grant one per project'})\n"
    )


@users_app.command("list")
def list_users(as_json: bool = JSON_OPTION) -> None:
    ws = open_workspace()
    users = ws.auth.users()
    if as_json:
        print_json(users)
        return
    print_table(
        None,
        ["user", "role", "created", "disabled"],
        [(u.name, u.role or "", when(u.created_at), when(u.disabled_at)) for u in users],
    )


@users_app.command("disable")
def disable_user(name: str = typer.Argument(..., help="User name.")) -> None:
    """Disable a user: every token of theirs stops working at once."""
    ws = open_workspace()
    ws.auth.disable_user(name)
    sys.stdout.write(f"disabled {name}\n")


@tokens_app.command("create")
def create_token(
    user: str = typer.Argument(..., help="The user the token speaks for."),
    name: str = typer.Option("default", "--name", help="What the token is for, e.g. laptop."),
    expires: str = typer.Option(None, "--expires", help="Lifetime, e.g. 30d (default: none)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Make a token and print it, this once: only its hash is kept."""
    from loopml.domain.durations import parse_duration

    ws = open_workspace()
    seconds = None if expires is None else parse_duration(expires)
    text, token = ws.auth.create_token(user, name, seconds)
    if as_json:
        print_json({"token": text, "id": token.id, "user": user, "expires_at": token.expires_at})
        return
    sys.stdout.write(f"{text}\n")
    sys.stderr.write(f"token {token.id} for {user}; it is shown only now: keep it safe\n")


@tokens_app.command("list")
def list_tokens(
    user: str = typer.Option(None, "--user", help="Only this user's tokens."),
    as_json: bool = JSON_OPTION,
) -> None:
    ws = open_workspace()
    tokens = ws.auth.tokens(user)
    if as_json:
        print_json(tokens)
        return
    print_table(
        None,
        ["id", "user", "name", "ends in", "created", "expires", "revoked"],
        [
            (t.id, t.user, t.name, f"...{t.hint}", when(t.created_at), when(t.expires_at),
             when(t.revoked_at))
            for t in tokens
        ],
    )  # fmt: skip


@tokens_app.command("revoke")
def revoke_token(token_id: int = typer.Argument(..., help="The token's id (tokens list).")) -> None:
    ws = open_workspace()
    token = ws.auth.revoke_token(token_id)
    sys.stdout.write(f"revoked token {token.id} ({token.name}) of {token.user}\n")


@projects_app.command("create")
def create_project(name: str = typer.Argument(..., help="Project name.")) -> None:
    ws = open_workspace()
    made = ws.auth.create_project(name)
    sys.stdout.write(f"{'created' if made else 'already had'} project {name}\n")


@projects_app.command("list")
def list_projects(as_json: bool = JSON_OPTION) -> None:
    ws = open_workspace()
    projects = ws.auth.projects()
    if as_json:
        print_json(projects)
        return
    for project in projects:
        sys.stdout.write(f"{project}\n")


@projects_app.command("grant")
def grant(
    project: str = typer.Argument(..., help="Project name."),
    user: str = typer.Argument(..., help="User name."),
    role: str = typer.Option(..., "--role", help="viewer, editor, admin, or none to take away."),
) -> None:
    """Give a user a role on one project (above their role everywhere)."""
    ws = open_workspace()
    ws.auth.grant(project, user, None if role == "none" else role)
    sys.stdout.write(f"{user} is {role} on {project}\n")
