"""Project isolation as a property of every route of the team server.

Project B holds one of everything (a dataset, a run with artifacts and metrics, a model with an
alias, a pipeline run with steps and a cache entry, a deployment, a monitor with a run, an alert
rule with an alert, a loop with a run, and their audit events); project `proj_` (its `_` once
matched any letter in the audit filter) holds the same under other names. For every operation of
the server's OpenAPI document, users granted only on `proj_` (as viewer, editor and admin):

1. asking for B's objects by path (B's project, B's run ids, B's digests) get 403 or 404, and
   exactly the answer they get for objects that do not exist (so nothing tells them B's exist);
2. asking under their own project for B's objects by id (rules, alerts, monitor and loop runs,
   cache keys) get the same;
3. naming B's objects in the bodies of their own records (parents, runs, blobs in manifests,
   step outputs, reports, rules, alerts, retrainings) are refused the same way;
4. listing anything of their own project see nothing of B;

no answer carries anything of B the request did not itself name, and nothing is written. A route
added later is covered by the path rules, or the test fails until it is classified below.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic_core import to_jsonable_python
from sqlalchemy import func, select

from loopml.adapters.sql import tables as t
from loopml.adapters.sql.alerts import SqlAlertStore
from loopml.bootstrap import Workspace
from loopml.domain.hashing import digest_bytes
from loopml.domain.loops import LoopRun, LoopSpec
from loopml.domain.manifest import BlobRef, Manifest
from loopml.domain.records import Alert, EventDraft, Monitor, MonitorRun
from loopml.pipelines import run_pipeline
from loopml.ports import ArtifactRef
from loopml.settings import Settings
from loopml.steps import load_pipeline
from loopml.testing.fuzz import smallest_value
from loopml.testing.team_server import LiveServer, live_server

A, B, Z = "proj_", "projB", "projZ"
"""Ours; theirs; one that does not exist (B's objects must be answered as Z's)."""
ROLES = ("viewer", "editor", "admin")
API = "/api/v1"

_PIPELINE = """
from loopml import pipeline, step


@step
def double(x: int) -> dict:
    return {"value": x * 2}


@pipeline
def tiny(x: int = 1):
    return double(x)
"""


@dataclass
class Things:
    """The path values that name one project's objects (all text, as in a URL)."""

    project: str
    dataset: str
    model: str
    deployment: str
    monitor: str
    loop: str
    user: str
    run: str
    """A tracked run with a dataset input, a metric and a text artifact."""
    step_run: str
    pipeline_run: str
    blob: str
    """A blob only this project holds (its run's text artifact)."""
    artifact: str
    """A step output's digest."""
    artifact_manifest: dict[str, Any]
    cache_key: str
    monitor_run: str
    rule: str
    alert: str
    loop_run: str
    token: str
    key: str
    ref: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ref = f"{self.dataset}@1"

    def values(self) -> dict[str, str]:
        return {k: v for k, v in vars(self).items() if isinstance(v, str)}


def _populate(ws: Workspace, project: str, p: str, seed: int, pipeline: Any) -> Things:
    """One of everything in `project`, each name starting with `p`."""
    folder = Path(ws.settings.home) / f"data-{p}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{p}data.csv").write_text(f"tenure,churned\n{seed},1\n{seed + 1},0\n")
    ws.data.add(folder / f"{p}data.csv", name=f"{p}data", project=project)
    with ws.tracking.start_run(project=project, name=f"{p}run") as run:
        run.use_dataset(f"{p}data@1")
        run.log_metric(f"{p}loss", 0.5)
        run.log_text(f"notes of {p} {seed}", f"{p}notes.txt")
        run.set_tags({"loopml.produces.data": f"{p}data@1"})
    blob = next(a.digest for a in ws.tracking.artifacts(run.id) if a.path == f"{p}notes.txt")
    from sklearn.dummy import DummyClassifier

    model = DummyClassifier().fit([[0], [1]], [0, 1])
    ws.registry.register(model, f"{p}model", project=project, run_id=run.id)
    ws.registry.set_alias(f"{p}model", "champion", 1, project=project)
    result = run_pipeline(pipeline, {"x": seed}, workspace=ws, project=project)
    step_run = str(result.steps["double"].run_id)
    _, (output,) = ws.pipeline_records.io_of(step_run)  # type: ignore[arg-type]
    ws.deployments.create(f"{p}deploy", project=project, model=f"{p}model@champion")
    summary = ws.blobs.put_bytes(json.dumps({"summary": p}).encode()).digest
    ws.monitors.save(
        f"{p}monitor", project=project, deployment=f"{p}deploy", reference=f"{p}data@1",
        summary_digest=summary, window_s=60, every_s=60,
    )  # fmt: skip
    report = ws.blobs.put_bytes(json.dumps({"report": p}).encode()).digest
    now = datetime.now(UTC)
    monitor_run = ws.monitors.record_run(
        MonitorRun(0, project, f"{p}monitor", now, 0, 1, 10, 0.5, ("tenure",), report)
    )
    rule = ws.alerts.add_rule(
        f"{p}monitor", when="drift_share > 0.2", notify=["log:"], project=project
    )
    alert = SqlAlertStore(ws.db).save_alert(
        Alert(0, project, rule.id, rule.target, rule.condition, "firing", now, now, None, 0.5, ()),
        EventDraft("alert.fired", f"alert:{project}/{p}monitor", "tester"),
    )
    loop = ws.loops.create(
        LoopSpec(
            project, f"{p}loop", f"{p}deploy", "pipe.py:tiny", ("manual",),
            "reference + labelled predictions of the last 30d", ("f1 >= champion.f1",),
        )
    )  # fmt: skip
    loop_run = ws.loops.start_run(loop, "manual", 1)
    user = f"{p}user"
    ws.auth.create_user(user)
    ws.auth.grant(project, user, "editor")
    _, token = ws.auth.create_token(user)
    return Things(
        project=project, dataset=f"{p}data", model=f"{p}model", deployment=f"{p}deploy",
        monitor=f"{p}monitor", loop=f"{p}loop", user=user, run=run.id, step_run=step_run,
        pipeline_run=result.run.id, blob=blob, artifact=output.digest,
        artifact_manifest=output.manifest,
        cache_key=ws.tracking.get(step_run).tags["loopml.cache_key"],
        monitor_run=str(monitor_run.id), rule=str(rule.id), alert=str(alert.id),
        loop_run=str(loop_run.id), token=str(token.id), key=f"{p}loss",
    )  # fmt: skip


def _phantom(theirs: Things, shared: set[str]) -> tuple[Things, dict[str, str]]:
    """Values naming nothing that exists, shaped as B's: what B's objects must be
    indistinguishable from; and each phantom value with the value of B it stands for. (A blob
    of B's step output that our project holds too, the same bytes, stays itself.)"""
    blob = str(digest_bytes(b"a phantom blob"))
    files = Manifest.from_dict(theirs.artifact_manifest).files
    fakes = {
        p: r if r.digest in shared else BlobRef(digest_bytes(f"phantom {p}".encode()), r.size)
        for p, r in files.items()
    }
    manifest = Manifest(fakes)
    phantom = Things(
        project=Z, dataset="zdata", model="zmodel", deployment="zdeploy", monitor="zmonitor",
        loop="zloop", user="zuser", run=uuid.uuid4().hex, step_run=uuid.uuid4().hex,
        pipeline_run=uuid.uuid4().hex, blob=blob, artifact=str(manifest.digest),
        artifact_manifest=manifest.to_dict(), cache_key=str(digest_bytes(b"a phantom key")),
        monitor_run="987601", rule="987602", alert="987603", loop_run="987604", token="987605",
        key="zloss",
    )  # fmt: skip
    stands_for = dict(zip(phantom.values().values(), theirs.values().values(), strict=True))
    stands_for |= {fakes[p].digest: files[p].digest for p in files}
    return phantom, stands_for


def _project_texts(db: Any, project: str) -> set[str]:
    """Every id and digest the records of `project` hold."""
    runs = select(t.runs.c.id).where(t.runs.c.project == project)
    queries = [
        runs,
        select(t.blob_refs.c.digest).where(t.blob_refs.c.project == project),
        select(t.dataset_versions.c.digest)
        .join(t.datasets, t.datasets.c.id == t.dataset_versions.c.dataset_id)
        .where(t.datasets.c.project == project),
        select(t.model_versions.c.artifact_digest)
        .join(t.models, t.models.c.id == t.model_versions.c.model_id)
        .where(t.models.c.project == project),
        select(t.run_io.c.artifact_digest).where(t.run_io.c.run_id.in_(runs)),
        select(t.step_cache.c.cache_key).where(t.step_cache.c.project == project),
    ]
    with db.read() as conn:
        return {str(v) for query in queries for v in conn.execute(query).scalars()}


@dataclass
class World:
    server: LiveServer
    ours: Things
    theirs: Things
    phantom: Things
    stands_for: dict[str, str]
    """Each phantom value, and the value of B it stands for."""
    secrets: set[str]
    """Text that names something of B (and of nothing of ours)."""
    users: dict[str, dict[str, str]]
    """Auth headers of our viewer, editor and admin."""
    spec: dict[str, Any]


@pytest.fixture
def world(make_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[World]:
    (tmp_path / "pipe.py").write_text(_PIPELINE)
    pipeline = load_pipeline(f"{tmp_path / 'pipe.py'}:tiny")
    with live_server(make_settings()) as server:
        ws = server.workspace
        ours = _populate(ws, A, "a", 1, pipeline)
        theirs = _populate(ws, B, "b", 2, pipeline)
        names = {theirs.project, theirs.dataset, theirs.model, theirs.deployment}
        names |= {theirs.monitor, theirs.loop, theirs.user, theirs.key, "bnotes.txt"}
        shared = _project_texts(ws.db, A)
        secrets = (_project_texts(ws.db, B) - shared) | names
        users = {}
        for role in ROLES:
            ws.auth.create_user(f"ann-{role}")
            ws.auth.grant(A, f"ann-{role}", role)
            token, _ = ws.auth.create_token(f"ann-{role}")
            users[role] = {"Authorization": f"Bearer {token}"}
        spec = httpx.get(f"{server.url}{API}/openapi.json").json()
        phantom, stands_for = _phantom(theirs, shared)
        yield World(server, ours, theirs, phantom, stands_for, secrets, users, spec)


# -- filling in requests ----------------------------------------------------------------------

_NAMED = {
    "datasets": "dataset", "models": "model", "deployments": "deployment",
    "monitors": "monitor", "loops": "loop", "users": "user",
}  # fmt: skip
_ID_UNDER = {"monitor-runs": "monitor_run", "loop-runs": "loop_run"}
_EVENT_KIND = {
    "datasets": "dataset", "runs": "run", "models": "model", "deployments": "deployment",
    "monitors": "monitor", "monitor-runs": "monitor", "alert-rules": "alert", "alerts": "alert",
    "loops": "loop", "loop-runs": "loop",
}  # fmt: skip
IDS_IN_PROJECT = frozenset({"run_id", "rule_id", "alert_id", "cache_key"})
"""Ids that name one object of a project under `/projects/{project}/...`."""


def _value(param: str, before: str, v: dict[str, str], path: str) -> str:
    simple = {
        "project": "project", "version": None, "alias": None, "key": "key", "rule_id": "rule",
        "alert_id": "alert", "cache_key": "cache_key", "ref": "ref", "token_id": "token",
        "user": "user",
    }  # fmt: skip
    if param == "name" and before in _NAMED:
        return v[_NAMED[before]]
    if param == "digest":
        return v["artifact"] if before == "artifacts" else v["blob"]
    if param == "run_id":
        last = path.rsplit("/", 1)[1]
        of = {"children": "pipeline_run", "io": "step_run"}.get(last, "run")
        return v[_ID_UNDER.get(before, of)]
    if param in simple:
        key = simple[param]
        return {"version": "1", "alias": "champion"}.get(param, "") if key is None else v[key]
    raise AssertionError(f"No value for {{{param}}} in {path}: say in this test what it names.")


def _fill(path: str, v: dict[str, str]) -> str:
    parts = path.split("/")
    filled = []
    for i, part in enumerate(parts):
        if part.startswith("{"):
            filled.append(_value(part.strip("{}").split(":")[0], parts[i - 1], v, path))
        else:
            filled.append(part)
    return "/".join(filled)


def _params(path: str) -> set[str]:
    return {part.strip("{}").split(":")[0] for part in path.split("/") if part.startswith("{")}


def _event(path: str, project: str) -> dict[str, str]:
    """An event the route accepts as its own (so a refusal is about the objects named)."""
    parts = path.split("/")
    kind = "run"
    if "projects" in parts and len(parts) > parts.index("projects") + 2:
        kind = _EVENT_KIND.get(parts[parts.index("projects") + 2], "run")
    return {"action": "test.change", "entity": f"{kind}:{project}/x"}


def _body(world: World, method: str, path: str, project: str) -> Any:
    operation = world.spec["paths"][path][method.lower()]
    content = operation.get("requestBody", {}).get("content", {})
    schema = content.get("application/json", {}).get("schema")
    if schema is None:
        return None
    body = smallest_value(schema, world.spec["components"]["schemas"])
    if isinstance(body, dict) and "event" in body:
        body["event"] = _event(path, project)
    return body


# -- the property -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: Any = None
    params: dict[str, str] | None = None

    def text(self) -> str:
        return f"{self.method} {self.path} {json.dumps(self.params)} {json.dumps(self.body)}"


def _send(http: httpx.Client, request: Request, headers: dict[str, str]) -> tuple[int, str]:
    answer = http.request(
        request.method, request.path, json=request.body, params=request.params, headers=headers
    )
    return answer.status_code, answer.text


def _as_theirs(text: str, world: World) -> str:
    """`text` with every phantom value replaced by B's."""
    for phantom, theirs in sorted(world.stands_for.items(), key=lambda pair: -len(pair[0])):
        text = text.replace(phantom, theirs)
    return text


ANSWERED_FOR_ANYTHING = {
    ("PUT", f"{API}/blobs/{{digest}}"),  # the bytes sent do not hash to the digest: 409
    ("GET", f"{API}/blobs/{{digest}}/exists"),  # {"exists": false}
    ("GET", f"{API}/artifacts/{{digest}}/runs"),  # the readable runs among its makers: none
    ("GET", f"{API}/projects/{{project}}/step-cache/{{cache_key}}"),  # no entry here: null
    ("POST", f"{API}/runs/search"),  # the runs of our project with that parent: none
}
"""Routes whose answer for a thing that does not exist is not an error (compared to the answer
for the phantom, which says nothing of B)."""


def _check(
    world: World,
    http: httpx.Client,
    role: str,
    template: tuple[str, str],
    *,
    theirs: Request,
    phantom: Request,
) -> None:  # fmt: skip
    """`theirs` (naming B's objects) is answered as `phantom`, refused, and leaks nothing."""
    headers = world.users[role]
    status, text = _send(http, theirs, headers)
    phantom_status, phantom_text = _send(http, phantom, headers)
    where = (role, theirs.method, theirs.path, theirs.params, theirs.body, text)
    assert status < 500, where
    assert (status, text) == (phantom_status, _as_theirs(phantom_text, world)), where
    if template not in ANSWERED_FOR_ANYTHING:
        assert status in (403, 404), where
    named = theirs.text()
    leaked = [s for s in world.secrets if s in text and s not in named]
    assert not leaked, where


ADMIN_EVERYWHERE = {
    ("GET", f"{API}/events/all"), ("GET", f"{API}/users"), ("POST", f"{API}/users"),
    ("GET", f"{API}/users/{{name}}"), ("POST", f"{API}/users/{{name}}/disable"),
    ("POST", f"{API}/users/{{name}}/tokens"), ("GET", f"{API}/tokens"),
    ("GET", f"{API}/tokens/{{token_id}}"), ("POST", f"{API}/tokens/{{token_id}}/revoke"),
    ("POST", f"{API}/projects/{{project}}"),
}  # fmt: skip
"""Users, tokens and the whole trail: an admin everywhere's, refused to a project's admin."""
OPEN = {("GET", f"{API}/health"), ("GET", f"{API}/projects")}
"""Answer anyone (the project list holds only the projects the caller may read: step 4)."""
ADDRESSED_BY_PATH = frozenset({"project", "run_id", "digest", "name", "token_id"})


_NEW_MODEL = {"project": A, "name": "copy", "flavor": "sklearn", "flavor_info": {}}
_NEW_MODEL |= {"signature": {}, "metrics": {}, "run_id": None}
_NEW_DATA = {"project": A, "name": "copy", "message": "", "schema": None, "profile": None}
_NEW_RUN = {"project": A, "name": "c", "environment": {}, "tags": {}}


def _new(kind: str, **fields: Any) -> dict[str, Any]:
    """The body of a new dataset version, run or model version of our project."""
    return {"new": fields, "event": {"action": "test.change", "entity": f"{kind}:{A}/x"}}


def _body_attacks(world: World) -> dict[tuple[str, str], Callable[[Things], list[Request]]]:
    """Per route, requests under our project whose body (or query) names objects of another
    project `x` (B's, or the phantom's)."""
    ours = world.ours
    now = datetime.now(UTC)

    def ev(kind: str) -> dict[str, str]:
        return {"action": "test.change", "entity": f"{kind}:{A}/x"}

    def manifest(x: Things) -> dict[str, Any]:
        return {"files": {"copy.txt": {"digest": x.blob, "size": 1}}}

    def artifact(x: Things) -> list[dict[str, Any]]:
        return [{"path": "copy.txt", "digest": x.blob, "size": 1}]

    def output(x: Things) -> Any:
        files = Manifest({"copy.txt": BlobRef(x.blob, 1)})  # type: ignore[arg-type]
        forged = ArtifactRef(files.digest, "json", "dict", files.to_dict())
        theirs = ArtifactRef(x.artifact, "json", "dict", x.artifact_manifest)  # type: ignore[arg-type]
        return [to_jsonable_python(forged), to_jsonable_python(theirs)]

    def io(x: Things) -> list[Request]:
        path = f"{API}/runs/{ours.step_run}/io"
        return [
            Request("PUT", path, {"project": A, "step_name": "s", "inputs": {}, "outputs": [o]})
            for o in output(x)
        ]

    def alert(x: Things, **ids: int) -> Request:
        made = Alert(0, A, 0, ours.monitor, "drift_share > 0.2", "firing", now, now, None, 1.0, ())
        body = {**to_jsonable_python(made), **ids}
        return Request("PUT", f"{API}/projects/{A}/alerts", {"alert": body, "event": ev("alert")})

    def loop_run(x: Things, **changes: Any) -> Request:
        run = to_jsonable_python(LoopRun(0, A, ours.loop, now, None, "manual", "running"))
        body = {"run": {**run, **changes}, "event": ev("loop")}
        return Request("PUT", f"{API}/projects/{A}/loops/{ours.loop}/runs", body)

    def monitor(x: Things) -> Request:
        made = Monitor(A, ours.monitor, ours.deployment, ours.ref, x.blob, 60, 60, now, now)  # type: ignore[arg-type]
        body = {"monitor": to_jsonable_python(made), "event": ev("monitor")}
        return Request("PUT", f"{API}/projects/{A}/monitors/{ours.monitor}", body)

    def monitor_run(x: Things) -> Request:
        made = MonitorRun(0, A, ours.monitor, now, 0, 1, 1, 0.0, (), x.blob)  # type: ignore[arg-type]
        body = {"run": to_jsonable_python(made), "event": ev("monitor")}
        return Request("POST", f"{API}/projects/{A}/monitors/{ours.monitor}/runs", body)

    new, model, data, run = _new, _NEW_MODEL, _NEW_DATA, _NEW_RUN
    return {
        ("POST", f"{API}/projects/{{project}}/datasets/{{name}}/versions"): lambda x: [
            Request("POST", f"{API}/projects/{A}/datasets/copy/versions",
                    new("dataset", **data, manifest=manifest(x))),
        ],
        ("POST", f"{API}/projects/{{project}}/runs"): lambda x: [
            Request("POST", f"{API}/projects/{A}/runs", new("run", **run, parent_id=x.run)),
            Request("POST", f"{API}/projects/{A}/runs", new("run", **run, artifacts=artifact(x))),
        ],
        ("POST", f"{API}/runs/{{run_id}}/links"): lambda x: [
            Request("POST", f"{API}/runs/{ours.run}/links",
                    {"dataset_refs": [[x.project, x.dataset, 1]], "artifacts": []}),
            Request("POST", f"{API}/runs/{ours.run}/links",
                    {"dataset_refs": [], "artifacts": artifact(x)}),
        ],
        ("POST", f"{API}/projects/{{project}}/models/{{name}}/versions"): lambda x: [
            Request("POST", f"{API}/projects/{A}/models/copy/versions",
                    new("model", **{**model, "run_id": x.run}, manifest={"files": {}})),
            Request("POST", f"{API}/projects/{A}/models/copy/versions",
                    new("model", **model, manifest=manifest(x))),
        ],
        ("PUT", f"{API}/runs/{{run_id}}/io"): io,
        ("POST", f"{API}/lineage/model-versions"): lambda x: [
            Request("POST", f"{API}/lineage/model-versions", {"run_ids": [x.run]}),
            Request("POST", f"{API}/lineage/model-versions", {"run_ids": [ours.run, x.run]}),
        ],
        ("POST", f"{API}/runs/search"): lambda x: [
            Request("POST", f"{API}/runs/search", {"query": {"project": x.project}}),
            Request("POST", f"{API}/runs/search", {"query": {"project": A, "parent_id": x.run}}),
        ],
        ("POST", f"{API}/runs/heartbeat"): lambda x: [
            Request("POST", f"{API}/runs/heartbeat", {"run_ids": [x.run]}),
        ],
        ("PUT", f"{API}/projects/{{project}}/monitors/{{name}}"): lambda x: [monitor(x)],
        ("POST", f"{API}/projects/{{project}}/monitors/{{name}}/runs"): lambda x: [monitor_run(x)],
        ("PUT", f"{API}/projects/{{project}}/alerts"): lambda x: [
            alert(x, rule_id=int(x.rule)), alert(x, id=int(x.alert)),
        ],
        ("PUT", f"{API}/projects/{{project}}/loops/{{name}}/runs"): lambda x: [
            loop_run(x, id=int(x.loop_run)), loop_run(x, pipeline_run=x.run),
        ],
        ("GET", f"{API}/events"): lambda x: [
            Request("GET", f"{API}/events", params={"entity": f"{kind}:{x.project}"})
            for kind in ("dataset", "run", "model", "deployment", "monitor", "alert", "loop")
        ] + [Request("GET", f"{API}/events", params={"entity": f"run:{x.project}/{x.run}"})],
        ("GET", f"{API}/grants"): lambda x: [
            Request("GET", f"{API}/grants", params={"project": x.project}),
        ],
    }  # fmt: skip


def _operations(world: World) -> list[tuple[str, str]]:
    return [
        (method.upper(), path)
        for path, operations in world.spec["paths"].items()
        for method in operations
    ]


def test_every_route_is_classified(world: World) -> None:
    """A new route must be addressable by path (project, run id, digest) or be named in a
    table above: otherwise this fails, naming it."""
    attacks = _body_attacks(world)
    known = set(_operations(world))
    for method, path in known:
        by_path = bool(_params(path) & ADDRESSED_BY_PATH)
        listed = (method, path) in attacks or (method, path) in ADMIN_EVERYWHERE | OPEN
        assert by_path or listed, f"{method} {path} is not classified for project isolation"
    stale = (set(attacks) | ADMIN_EVERYWHERE | OPEN) - known
    assert not stale, f"the tables name routes that do not exist: {stale}"


def _audit_state(ws: Workspace) -> tuple[int, ...]:
    with ws.db.read() as conn:
        counts = [
            conn.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (t.blob_refs, t.blob_uploads, t.runs, t.artifacts, t.grants)
        ]
    return (ws.audit.head().seq, *counts)


def test_no_user_of_one_project_reaches_anything_of_another(world: World) -> None:
    _everything_of_theirs_is_there(world)
    before = _audit_state(world.server.workspace)
    attacks = _body_attacks(world)
    with httpx.Client(base_url=world.server.url, timeout=60) as http:
        for role in ROLES:
            for template in _operations(world):
                if template in OPEN:
                    continue
                for theirs, phantom in _attacks(world, template, attacks):
                    _check(world, http, role, template, theirs=theirs, phantom=phantom)
                    if template in ADMIN_EVERYWHERE:
                        assert _send(http, theirs, world.users[role])[0] == 403, theirs
    assert _audit_state(world.server.workspace) == before  # nothing written anywhere


def _attacks(
    world: World,
    template: tuple[str, str],
    attacks: dict[tuple[str, str], Callable[[Things], list[Request]]],
) -> Iterator[tuple[Request, Request]]:
    """Requests of a route naming B's objects, each with its twin naming the phantom's."""
    method, path = template
    ours, theirs, phantom = world.ours, world.theirs, world.phantom
    params = _params(path)
    if template in ADMIN_EVERYWHERE or params & ADDRESSED_BY_PATH:
        # 1. B's objects by path (anything at all, for an admin everywhere's routes)
        yield _by_path(world, method, path, theirs), _by_path(world, method, path, phantom)
    if "project" in params and params & IDS_IN_PROJECT:
        # 2. B's ids under our own project
        ids = ("rule", "alert", "monitor_run", "loop_run", "cache_key")
        mixed = {**ours.values(), **{k: theirs.values()[k] for k in ids}}
        unreal = {**ours.values(), **{k: phantom.values()[k] for k in ids}}
        body = _body(world, method, path, A)
        yield Request(method, _fill(path, mixed), body), Request(method, _fill(path, unreal), body)
    make = attacks.get(template)
    if make is not None:
        # 3. B's objects named in the body (or query) of a request about our own project
        yield from zip(make(theirs), make(phantom), strict=True)


def _by_path(world: World, method: str, path: str, x: Things) -> Request:
    return Request(method, _fill(path, x.values()), _body(world, method, path, x.project))


def _everything_of_theirs_is_there(world: World) -> None:
    """The admin everywhere reads each of B's objects on the very paths the users of A are
    refused: the refusals are about who asks, not about wrong addresses."""
    admin = {"Authorization": f"Bearer {world.server.token}"}
    with httpx.Client(base_url=world.server.url, timeout=60) as http:
        for method, path in _operations(world):
            if method != "GET" or not _params(path):
                continue
            answer = http.get(_fill(path, world.theirs.values()), headers=admin)
            assert answer.status_code == 200, (path, answer.text)
            assert answer.text not in ("null", "[]"), path


_READS = {("POST", f"{API}/runs/search"), ("POST", f"{API}/lineage/model-versions")}


def _our_reads(world: World) -> list[Request]:
    ours = world.ours
    reads = [
        Request(method, _fill(path, ours.values()))
        for method, path in _operations(world)
        if method == "GET" and (method, path) not in ADMIN_EVERYWHERE
    ]
    reads += [
        Request("GET", f"{API}/events", params={"entity": f"{kind}:{A}"})
        for kind in ("dataset", "run", "model", "deployment", "monitor", "alert", "loop", "project")
    ]
    reads += [
        Request("GET", f"{API}/grants", params={"project": A}),
        Request("POST", f"{API}/runs/search", {"query": {"project": A}}),
        Request("POST", f"{API}/lineage/model-versions", {"run_ids": [ours.run, ours.step_run]}),
    ]
    return reads


def test_nothing_of_another_project_appears_in_anything_a_user_lists(world: World) -> None:
    """Every read of our own project (every GET route, filled with our objects; the audit
    trail of each kind of our things; run search and lineage) holds nothing of B."""
    with httpx.Client(base_url=world.server.url, timeout=60) as http:
        for role in ROLES:
            answered = 0
            for request in _our_reads(world):
                status, text = _send(http, request, world.users[role])
                assert status < 500, (role, request, text)
                leaked = sorted(s for s in world.secrets if s in text)
                assert not leaked, (role, request, leaked, text[:500])
                answered += status == 200
            assert answered >= 40, (role, answered)  # they did read their own project
        projects = http.get(f"{API}/projects", headers=world.users["viewer"]).json()
        assert projects == [A]
