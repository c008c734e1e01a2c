"""What the team server does beyond the generic route for some operations of the table
(`loopml.remote_api.operations`): CHECKS run after the role check, before the store is called;
HANDLERS call the store themselves (building a record from the path and the body, filtering
an answer to what the caller may read, or checking roles per object).

Every spec is checked as the CLI checks it (`check_monitor`, `check_rule`, `check_spec`):
a client that skips the CLI gets the same refusal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from loopml.adapters.outbound import check_saved_url
from loopml.domain.auth import PROTECTED_ALIASES, check_role, entity_scope
from loopml.domain.filters import check_query
from loopml.domain.hashing import Digest, is_digest
from loopml.domain.loops import check_spec, loop_lease
from loopml.domain.manifest import manifest_digests
from loopml.domain.records import RunId
from loopml.domain.refs import check_name
from loopml.errors import Forbidden, InvalidInput
from loopml.ports import NewDatasetVersion, NewModelVersion, NewRun
from loopml.remote_api.bodies import MAX_HEARTBEAT_RUNS, ModelOfRun
from loopml.server.context import Call, Context
from loopml.services.alerts import check_rule
from loopml.services.monitors import check_monitor
from loopml.steps import check_pipeline_source

Check = Callable[[Context, Call], Any]


def _add_version(c: Context, call: Call) -> Any:
    body = call.body
    c.need_blobs(call.who, manifest_digests(body.manifest))
    name = check_name(call.given["name"], "dataset")
    new = NewDatasetVersion(
        call.project, name, body.manifest, body.message, body.table_schema, body.profile
    )
    return c.datasets.add_version(new, c.recorded(call))


def _dataset_version(c: Context, call: Call) -> Any:
    text, given = call.given["version"], call.given
    if text != "latest" and not text.isdigit():
        raise InvalidInput(f"Version {text!r} is not a number.", "Give 3, or latest.")
    version = None if text == "latest" else int(text)
    return c.datasets.get_version(call.project, given["name"], version)


def _create_run(c: Context, call: Call) -> Any:
    body = call.body
    if body.parent_id:  # and the store keeps it in this project
        c.run_in(call.who, body.parent_id, "viewer")
    c.need_blobs(call.who, (a.digest for a in body.artifacts))
    run_id = body.run_id
    if run_id and (len(run_id) != 32 or any(ch not in "0123456789abcdef" for ch in run_id)):
        raise InvalidInput(f"{run_id[:40]!r} is not a run id.", "A run id is 32 hex digits.")
    new = NewRun(
        call.project, body.name, body.environment, body.tags, body.parent_id,
        tuple(body.artifacts), body.params, body.finished, run_id,
    )  # fmt: skip
    return c.runs.create_run(new, c.recorded(call))


def _heartbeat(c: Context, call: Call) -> None:
    """Stamp the running runs of a client's process as alive (editor on each run's project).
    A run without one for the server's run timeout is marked killed by its schedule."""
    c.need_anywhere(call.who, "editor")
    run_ids = call.body.run_ids
    if len(run_ids) > MAX_HEARTBEAT_RUNS:
        raise InvalidInput(
            f"{len(run_ids)} runs in one heartbeat; at most {MAX_HEARTBEAT_RUNS}.",
            "Send the runs of one process; split a larger list.",
        )
    for run_id in run_ids:
        c.run_in(call.who, run_id, "editor")
    c.heartbeats.heartbeat([RunId(r) for r in run_ids])


def _links(c: Context, call: Call) -> None:
    for used_project, _, _ in call.body.datasets:  # and the store keeps them in the run's
        c.need(call.who, used_project, "viewer")
    c.need_blobs(call.who, (a.digest for a in call.body.artifacts))


def _search(c: Context, call: Call) -> Any:
    body = call.body
    c.need(call.who, check_query(body.query).project, "viewer")
    return c.runs.search(body.query, max(0, min(body.limit, 10_000)), max(0, body.offset))


def _register(c: Context, call: Call) -> Any:
    body = call.body
    if body.run_id:  # and the store keeps it in this project
        c.run_in(call.who, body.run_id, "viewer")
    c.need_blobs(call.who, manifest_digests(body.manifest))
    new = NewModelVersion(
        call.project, check_name(call.given["name"], "model"), body.run_id, body.flavor,
        body.flavor_info, body.manifest, body.signature, body.metrics,
    )  # fmt: skip
    return c.models.register(new, c.recorded(call))


def _protected_alias(c: Context, call: Call) -> None:
    if call.given["alias"] in PROTECTED_ALIASES:
        c.need(call.who, call.project, "admin")


def _events(c: Context, call: Call) -> Any:
    """Events, newest first. Everyone but an admin everywhere names the entity: one of a
    project they may read (a project's own events, its grants, need its admin)."""
    entity, who = call.given["entity"], call.who
    if entity is None:
        if who.role != "admin":
            raise Forbidden(
                "Only an admin everywhere may list every event.",
                "Pass ?entity=KIND:PROJECT/NAME for one thing.",
            )
    else:
        project, role = entity_scope(entity)
        if project is None:
            c.admin(who)
        else:
            c.need(who, project, role)
    limit = max(1, min(call.given["limit"], 100_000))
    return c.events.list(entity=entity, action=call.given["action"], limit=limit)


def _create_user(c: Context, call: Call) -> Any:
    role = None if call.body.role is None else check_role(call.body.role)
    name = check_name(call.body.name, "user")
    return c.users.create_user(name, role, c.changed(call.who, "user.created", f"user:{name}"))


def _add_token(c: Context, call: Call) -> Any:
    """Record a token the client made, by its SHA-256 hash."""
    body, user = call.body, call.given["name"]
    if len(body.digest) != 64 or any(ch not in "0123456789abcdef" for ch in body.digest):
        raise InvalidInput("A token hash is 64 hex digits.", "Send the token's SHA-256.")
    return c.tokens.add_token(
        user, check_name(body.name, "token"), digest=body.digest, hint=body.hint[-4:],
        expires=body.expires_at, event=c.changed(call.who, "token.created", f"user:{user}"),
    )  # fmt: skip


def _revoke_token(c: Context, call: Call) -> Any:
    token_id = call.given["token_id"]
    user = c.tokens.token(token_id).user
    return c.tokens.revoke_token(token_id, c.changed(call.who, "token.revoked", f"user:{user}"))


def _grants(c: Context, call: Call) -> Any:
    project = call.given["project"]
    if project is None:
        c.admin(call.who)
    else:
        c.need(call.who, project, "admin")
    return c.grants.grants(project, call.given["user"])


def _grant(c: Context, call: Call) -> Any:
    role = None if call.body.role is None else check_role(call.body.role)
    event = c.changed(call.who, "project.granted", f"project:{call.project}")
    c.grants.grant(call.project, call.given["user"], role, event)
    return c.grants.grants(project=call.project)


def _step_io(c: Context, call: Call) -> None:
    body = call.body
    if body.project != call.project:
        raise InvalidInput(
            f"The step run is in project {body.project!r}, not the route's {call.project!r}.",
            f"Send it to /projects/{body.project}/...",
        )
    refs = [*body.inputs.values(), *body.outputs]
    c.need_blobs(call.who, (d for ref in refs for d in manifest_digests(ref.manifest)))


def _model_versions(c: Context, call: Call) -> Any:
    """The model versions these runs made (runs of projects the caller cannot read are
    refused; versions in such projects are left out)."""
    run_ids = call.body.run_ids
    for run_id in run_ids:
        c.run_in(call.who, run_id, "viewer")
    found = c.pipelines.model_versions_of([RunId(r) for r in run_ids])
    return [ModelOfRun(*row) for row in found if call.who.may(row[0], "viewer")]


def _channels(c: Context, channels: Iterable[str]) -> None:
    """The webhook and Slack URLs the server would post to, checked against its outbound
    policy before they are saved (they are checked again before every request)."""
    for channel in channels:
        kind, _, target = channel.partition(":")
        if kind.strip().lower() in ("slack", "webhook"):
            check_saved_url(target, c.ws.settings.target_policy())


def _save_monitor(c: Context, call: Call) -> Any:
    monitor = check_monitor(call.body.monitor)
    c.need_blobs(call.who, [monitor.summary_digest] if monitor.summary_digest else [])
    if monitor.probe_url is not None:  # the server's scheduler will request it
        check_saved_url(monitor.probe_url, c.ws.settings.target_policy())
    return c.monitors.save(monitor, c.recorded(call))


def _monitor_run(c: Context, call: Call) -> None:
    c.monitors.get(call.project, call.given["name"])
    c.need_blobs(call.who, [call.body.run.report_digest])


def _add_rule(c: Context, call: Call) -> Any:
    rule = check_rule(call.body.rule, c.ws.alerts.check_channel)
    _channels(c, rule.channels)
    return c.alerts.add_rule(rule, c.recorded(call))


def _rule_of_project(c: Context, call: Call) -> None:
    c.alerts.rule(call.project, call.given["rule_id"])  # a rule of this project, or 404


def _save_alert(c: Context, call: Call) -> None:
    """Open an alert (id 0) or change one (fired, acknowledged, resolved)."""
    alert = call.body.alert
    if alert.rule_id:  # 0: a notice loopml raised itself, under no rule
        c.alerts.rule(call.project, alert.rule_id)  # the rule is this project's
    if alert.id:
        c.alerts.alert(call.project, alert.id)  # and so is the alert


def _create_loop(c: Context, call: Call) -> Any:
    spec = check_spec(call.body.spec)
    _channels(c, spec.notify)
    roots = c.ws.settings.pipeline_roots
    if roots is not None:  # its schedule would run this file: one of the operator's
        check_pipeline_source(spec.pipeline, roots)
    return c.loops.create(spec, c.recorded(call))


def _loop_exists(c: Context, call: Call) -> None:
    c.loops.get(call.project, call.given["name"])


def _loop_run(c: Context, call: Call) -> None:
    """Record a retraining (id 0) or its progress."""
    run = call.body.run
    _loop_exists(c, call)
    if run.id:
        c.loops.run(call.project, run.id)  # updates only a run of this project
    if run.pipeline_run:  # and the store keeps it in this project
        c.run_in(call.who, run.pipeline_run, "viewer")


def _lease(c: Context, call: Call) -> str:
    _loop_exists(c, call)  # NotFound for a loop that is not there
    return loop_lease(call.project, call.given["name"])


def _owner(call: Call) -> str:
    if not 0 < len(call.body.owner) <= 200:
        raise InvalidInput("A lease owner is 1 to 200 characters.", "Send a host:pid:uuid id.")
    return str(call.body.owner)


def _ttl(call: Call) -> float:
    if not 1 <= call.body.ttl_s <= 86_400:
        raise InvalidInput(f"A lease of {call.body.ttl_s} s is out of range.", "Give 1 to 86400 s.")
    return float(call.body.ttl_s)


def check_digest(digest: str) -> None:
    if not is_digest(digest):
        raise InvalidInput(f"{digest!r} is not a blob digest.", "Write blake3:<64 hex digits>.")


def _blob_exists(c: Context, call: Call) -> bool:
    """Whether the caller may read blob `digest` (false for one they may not: a client
    then uploads it, and the server keeps one copy of the bytes)."""
    digest = call.given["digest"]
    check_digest(digest)
    return c.may_read_blob(call.who, digest) and c.ws.blobs.exists(Digest(digest))


CHECKS: dict[str, Check] = {
    "RunStore.add_inputs_and_artifacts": _links,
    "ModelStore.set_alias": _protected_alias,
    "GrantStore.create_project": lambda c, call: check_name(call.given["project"], "project"),
    "PipelineStore.record_io": _step_io,
    "MonitorStore.add_run": _monitor_run,
    "AlertStore.open_alert": _rule_of_project,
    "AlertStore.last_alert": _rule_of_project,
    "AlertStore.save_alert": _save_alert,
    "LoopStore.save_state": _loop_exists,
    "LoopStore.save_run": _loop_run,
}
HANDLERS: dict[str, Check] = {
    "DatasetStore.add_version": _add_version,
    "BlobStore.exists": _blob_exists,
    "DatasetStore.get_version": _dataset_version,
    "RunStore.create_run": _create_run,
    "RunHeartbeats.heartbeat": _heartbeat,
    "RunStore.search": _search,
    "ModelStore.register": _register,
    "EventLog.list": _events,
    "UserStore.create_user": _create_user,
    "TokenStore.add_token": _add_token,
    "TokenStore.revoke_token": _revoke_token,
    "GrantStore.projects": lambda c, call: call.who.readable(c.grants.projects()),
    "GrantStore.grants": _grants,
    "GrantStore.grant": _grant,
    "LineageStore.model_versions_of": _model_versions,
    "MonitorStore.save": _save_monitor,
    "AlertStore.add_rule": _add_rule,
    "LoopStore.create": _create_loop,
    "Leases.holder": lambda c, call: c.leases.holder(_lease(c, call)),
    "Leases.acquire": lambda c, call: c.leases.acquire(_lease(c, call), _owner(call), _ttl(call)),
    "Leases.renew": lambda c, call: c.leases.renew(_lease(c, call), _owner(call), _ttl(call)),
    "Leases.release": lambda c, call: c.leases.release(_lease(c, call), _owner(call)),
}
