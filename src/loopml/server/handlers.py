"""What the team server does beyond the generic route for some operations of the table
(`loopml.remote_api.operations`): CHECKS run once the role is checked and the arguments are
read, before the store is called, and may replace an argument (a spec as checked, a limit
clamped, the lease a loop's path names); HANDLERS call the store themselves, to answer what
the port does not (only what the caller may read).

Every spec is checked as the CLI checks it (`check_monitor`, `check_rule`, `check_spec`):
a client that skips the CLI gets the same refusal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from loopml.adapters.outbound import check_saved_url
from loopml.domain.auth import PROTECTED_ALIASES, check_role, entity_scope
from loopml.domain.filters import check_query
from loopml.domain.hashing import Digest
from loopml.domain.loops import check_spec, loop_lease
from loopml.domain.manifest import manifest_digests
from loopml.domain.refs import check_name
from loopml.errors import Forbidden, InvalidInput
from loopml.remote_api.operations import MAX_HEARTBEAT_RUNS, check_digest
from loopml.server.context import Call, Context
from loopml.services.alerts import check_rule
from loopml.services.monitors import check_monitor
from loopml.steps import check_pipeline_source

Check = Callable[[Context, Call], Any]


def _add_version(c: Context, call: Call) -> None:
    c.need_blobs(call.who, manifest_digests(call.args["new"].manifest))


def _create_run(c: Context, call: Call) -> None:
    new = call.args["new"]
    if new.parent_id:  # and the store keeps it in this project
        c.run_in(call.who, new.parent_id, "viewer")
    c.need_blobs(call.who, (a.digest for a in new.artifacts))
    run_id = new.run_id
    if run_id and (len(run_id) != 32 or any(ch not in "0123456789abcdef" for ch in run_id)):
        raise InvalidInput(f"{run_id[:40]!r} is not a run id.", "A run id is 32 hex digits.")


def _heartbeat(c: Context, call: Call) -> None:
    """Stamp the running runs of a client's process as alive (editor on each run's project).
    A run without one for the server's run timeout is marked killed by its schedule."""
    run_ids = call.args["run_ids"]
    if len(run_ids) > MAX_HEARTBEAT_RUNS:
        raise InvalidInput(
            f"{len(run_ids)} runs in one heartbeat; at most {MAX_HEARTBEAT_RUNS}.",
            "Send the runs of one process; split a larger list.",
        )
    for run_id in run_ids:
        c.run_in(call.who, run_id, "editor")


def _links(c: Context, call: Call) -> None:
    for used_project, _, _ in call.args["dataset_refs"]:  # and the store keeps them in the run's
        c.need(call.who, used_project, "viewer")
    c.need_blobs(call.who, (a.digest for a in call.args["artifacts"]))


def _search(c: Context, call: Call) -> None:
    c.need(call.who, check_query(call.args["query"]).project, "viewer")
    call.args["limit"] = max(0, min(call.given["limit"], 10_000))
    call.args["offset"] = max(0, call.given["offset"])


def _register(c: Context, call: Call) -> None:
    new = call.args["new"]
    if new.run_id:  # and the store keeps it in this project
        c.run_in(call.who, new.run_id, "viewer")
    c.need_blobs(call.who, manifest_digests(new.manifest))


def _protected_alias(c: Context, call: Call) -> None:
    if call.args["alias"] in PROTECTED_ALIASES:
        c.need(call.who, call.project, "admin")


def _events(c: Context, call: Call) -> None:
    """Events, newest first. Everyone but an admin everywhere names the entity: one of a
    project they may read (a project's own events, its grants, need its admin)."""
    entity, who = call.args["entity"], call.who
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
    call.args["limit"] = max(1, min(call.given["limit"], 100_000))


def _role(c: Context, call: Call) -> None:
    """A user made, or a grant changed: the role is one loopml knows (None: no role)."""
    role = call.args["role"]
    call.args["role"] = None if role is None else check_role(role)
    if "name" in call.args:  # a new user's
        call.args["name"] = check_name(call.args["name"], "user")


def _add_token(c: Context, call: Call) -> None:
    """Record a token the client made, by its SHA-256 hash."""
    args = call.args
    if len(args["digest"]) != 64 or any(ch not in "0123456789abcdef" for ch in args["digest"]):
        raise InvalidInput("A token hash is 64 hex digits.", "Send the token's SHA-256.")
    args["name"], args["hint"] = check_name(args["name"], "token"), args["hint"][-4:]


def _revoke_token(c: Context, call: Call) -> None:
    user = c.stores.tokens.token(call.args["token_id"]).user
    call.args["event"] = c.changed(call.who, "token.revoked", f"user:{user}")


def _grants(c: Context, call: Call) -> None:
    project = call.args["project"]
    if project is None:
        c.admin(call.who)
    else:
        c.need(call.who, project, "admin")


def _step_io(c: Context, call: Call) -> None:
    project, refs = call.args["project"], [*call.args["inputs"].values(), *call.args["outputs"]]
    if project != call.project:
        raise InvalidInput(
            f"The step run is in project {project!r}, not the route's {call.project!r}.",
            f"Send it to /projects/{project}/...",
        )
    c.need_blobs(call.who, (d for ref in refs for d in manifest_digests(ref.manifest)))


def _model_versions(c: Context, call: Call) -> Any:
    """The model versions these runs made (runs of projects the caller cannot read are
    refused; versions in such projects are left out)."""
    run_ids = call.args["run_ids"]
    for run_id in run_ids:
        c.run_in(call.who, run_id, "viewer")
    found = c.stores.pipelines.model_versions_of(run_ids)
    return [row for row in found if call.who.may(row[0], "viewer")]


def _channels(c: Context, channels: Iterable[str]) -> None:
    """The webhook and Slack URLs the server would post to, checked against its outbound
    policy before they are saved (they are checked again before every request)."""
    for channel in channels:
        kind, _, target = channel.partition(":")
        if kind.strip().lower() in ("slack", "webhook"):
            check_saved_url(target, c.ws.settings.target_policy())


def _save_monitor(c: Context, call: Call) -> None:
    monitor = call.args["monitor"] = check_monitor(call.args["monitor"])
    c.need_blobs(call.who, [monitor.summary_digest] if monitor.summary_digest else [])
    if monitor.probe_url is not None:  # the server's scheduler will request it
        check_saved_url(monitor.probe_url, c.ws.settings.target_policy())


def _monitor_run(c: Context, call: Call) -> None:
    c.stores.monitors.get(call.project, call.given["name"])
    c.need_blobs(call.who, [call.args["run"].report_digest])


def _add_rule(c: Context, call: Call) -> None:
    rule = call.args["rule"] = check_rule(call.args["rule"], c.ws.alerts.check_channel)
    _channels(c, rule.channels)


def _rule_of_project(c: Context, call: Call) -> None:
    c.stores.alerts.rule(call.project, call.args["rule_id"])  # a rule of this project, or 404


def _save_alert(c: Context, call: Call) -> None:
    """Open an alert (id 0) or change one (fired, acknowledged, resolved)."""
    alert = call.args["alert"]
    if alert.rule_id:  # 0: a notice loopml raised itself, under no rule
        c.stores.alerts.rule(call.project, alert.rule_id)  # the rule is this project's
    if alert.id:
        c.stores.alerts.alert(call.project, alert.id)  # and so is the alert


def _create_loop(c: Context, call: Call) -> None:
    spec = call.args["spec"] = check_spec(call.args["spec"])
    _channels(c, spec.notify)
    roots = c.ws.settings.pipeline_roots
    if roots is not None:  # its schedule would run this file: one of the operator's
        check_pipeline_source(spec.pipeline, roots)


def _loop_exists(c: Context, call: Call) -> None:
    c.stores.loops.get(call.project, call.given["name"])


def _loop_run(c: Context, call: Call) -> None:
    """Record a retraining (id 0) or its progress."""
    run = call.args["run"]
    _loop_exists(c, call)
    if run.id:
        c.stores.loops.run(call.project, run.id)  # updates only a run of this project
    if run.pipeline_run:  # and the store keeps it in this project
        c.run_in(call.who, run.pipeline_run, "viewer")


def _lease(c: Context, call: Call) -> None:
    """The lease of the path's loop (NotFound for a loop that is not there), its owner and
    time to live checked."""
    _loop_exists(c, call)
    args = call.args
    args["name"] = loop_lease(call.project, call.given["name"])
    if "owner" in args and not 0 < len(args["owner"]) <= 200:
        raise InvalidInput("A lease owner is 1 to 200 characters.", "Send a host:pid:uuid id.")
    if "ttl_s" in args and not 1 <= args["ttl_s"] <= 86_400:
        raise InvalidInput(f"A lease of {args['ttl_s']} s is out of range.", "Give 1 to 86400 s.")


def _blob_exists(c: Context, call: Call) -> bool:
    """Whether the caller may read blob `digest` (false for one they may not: a client
    then uploads it, and the server keeps one copy of the bytes)."""
    digest = call.args["digest"]
    check_digest(digest)
    return c.may_read_blob(call.who, digest) and c.ws.blobs.exists(Digest(digest))


CHECKS: dict[str, Check] = {
    "DatasetStore.add_version": _add_version,
    "RunStore.create_run": _create_run,
    "RunHeartbeats.heartbeat": _heartbeat,
    "RunStore.add_inputs_and_artifacts": _links,
    "RunStore.search": _search,
    "ModelStore.register": _register,
    "ModelStore.set_alias": _protected_alias,
    "EventLog.list": _events,
    "UserStore.create_user": _role,
    "TokenStore.add_token": _add_token,
    "TokenStore.revoke_token": _revoke_token,
    "GrantStore.create_project": lambda c, call: check_name(call.args["project"], "project"),
    "GrantStore.grants": _grants,
    "GrantStore.grant": _role,
    "PipelineStore.record_io": _step_io,
    "MonitorStore.save": _save_monitor,
    "MonitorStore.add_run": _monitor_run,
    "AlertStore.add_rule": _add_rule,
    "AlertStore.open_alert": _rule_of_project,
    "AlertStore.last_alert": _rule_of_project,
    "AlertStore.save_alert": _save_alert,
    "LoopStore.create": _create_loop,
    "LoopStore.save_state": _loop_exists,
    "LoopStore.save_run": _loop_run,
    **dict.fromkeys(("Leases.holder", "Leases.acquire", "Leases.renew", "Leases.release"), _lease),
}
HANDLERS: dict[str, Check] = {
    "BlobStore.exists": _blob_exists,
    "GrantStore.projects": lambda c, call: call.who.readable(c.stores.grants.projects()),
    "LineageStore.model_versions_of": _model_versions,
}
