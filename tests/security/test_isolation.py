"""Project isolation, the reproductions of issue 13 (3) and what the stores refuse on their own.

- Any token could read any blob by digest: now a blob is answered only to someone who may read
  a project holding it (or who uploaded it), and to anyone else exactly as a blob that was
  never stored; naming a learnt digest in one's own record is refused the same way.
- The audit filter matched with LIKE, so `proj_` read `projB`'s events (and, on SQLite, `projb`
  read `projB`'s): now a project name matches itself only, proven over generated names.
- A run could name a run of another project as its parent; model versions, run inputs, step
  I/O, retrainings and alerts could name records of other projects: now each is refused by the
  store itself (so the embedded workspace keeps the rule) with both projects named.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from loopml.adapters.remote import RemoteBlobStore, RemoteClient
from loopml.adapters.sql import tables as t
from loopml.adapters.sql.alerts import SqlAlertStore
from loopml.adapters.sql.datasets import SqlDatasetStore
from loopml.adapters.sql.engine import Database
from loopml.adapters.sql.events import SqlEventLog
from loopml.adapters.sql.loops import SqlLoopStore
from loopml.adapters.sql.models import SqlModelStore
from loopml.adapters.sql.pipelines import SqlPipelineStore
from loopml.adapters.sql.runs import SqlRunStore
from loopml.domain.hashing import digest_bytes
from loopml.domain.loops import LoopRun, LoopSpec
from loopml.domain.manifest import BlobRef, Manifest
from loopml.domain.records import Alert, AlertRule, EventDraft, RunId
from loopml.errors import InvalidInput, NotFound
from loopml.ports import ArtifactRef, NewDatasetVersion, NewModelVersion, NewRun
from loopml.settings import Settings
from loopml.testing.team_server import LiveServer, live_server

A, B = "projA", "projB"
ROLES = ("viewer", "editor", "admin")


def _event(entity: str) -> EventDraft:
    return EventDraft("test", entity, "tester")


@pytest.fixture
def served(make_settings: Callable[..., Settings]) -> Iterator[LiveServer]:
    with live_server(make_settings()) as server:
        yield server


def _user(server: LiveServer, name: str, grants: dict[str, str]) -> dict[str, str]:
    """A user with these grants (project: role) and nothing else: their auth header."""
    ws = server.workspace
    ws.auth.create_user(name)
    for project, role in grants.items():
        ws.auth.grant(project, name, role)
    token, _ = ws.auth.create_token(name)
    return {"Authorization": f"Bearer {token}"}


def _secret_dataset(server: LiveServer, tmp_path: Path) -> str:
    """A dataset of project B; the digest of its one file."""
    path = tmp_path / "secret.csv"
    path.write_text("customer,salary\nada,91000\n")
    added = server.workspace.data.add(path, name="payroll", project=B)
    manifest = server.workspace.data.manifest(added.version)
    return str(next(iter(manifest.files.values())).digest)


def _blob_answers(http: httpx.Client, digest: str, headers: dict[str, str]) -> tuple[Any, ...]:
    got = http.get(f"/api/v1/blobs/{digest}", headers=headers)
    exists = http.get(f"/api/v1/blobs/{digest}/exists", headers=headers)
    return got.status_code, got.text.replace(digest, "DIGEST"), exists.json()


def test_a_blob_is_answered_only_to_a_reader_of_a_project_holding_it(
    served: LiveServer, tmp_path: Path
) -> None:
    """Reproduction: `GET /blobs/{digest}` and `/exists` answered anyone with any role. Now a
    user of project A (whatever their role) gets for B's blob exactly what a never-stored
    digest gets: no content, and no way to tell that it exists."""
    digest = _secret_dataset(served, tmp_path)
    never = str(digest_bytes(b"never stored anywhere"))
    reader = _user(served, "bella", {B: "viewer"})
    with httpx.Client(base_url=served.url) as http:
        for role in ROLES:
            outsider = _user(served, f"ann-{role}", {A: role})
            answers = _blob_answers(http, digest, outsider)
            assert answers == _blob_answers(http, never, outsider)
            assert answers[0] == 404
            assert answers[2] is False
            assert "91000" not in answers[1]
        read = http.get(f"/api/v1/blobs/{digest}", headers=reader)
        assert read.status_code == 200
        assert b"ada,91000" in read.content
        assert http.get(f"/api/v1/blobs/{digest}/exists", headers=reader).json() is True
        admin = {"Authorization": f"Bearer {served.token}"}
        assert http.get(f"/api/v1/blobs/{digest}", headers=admin).status_code == 200


def _dataset_body(digest: str, size: int) -> dict[str, Any]:
    manifest = {"files": {"copy.csv": {"digest": digest, "size": size}}}
    return {
        "new": {"project": A, "name": "copy", "manifest": manifest, "message": ""}
        | {"schema": None, "profile": None},
        "event": {"action": "dataset.version_added", "entity": f"dataset:{A}/copy"},
    }


def _run_body(**fields: Any) -> dict[str, Any]:
    new = {"project": A, "name": "copy", "environment": {}, "tags": {}, **fields}
    return {"new": new, "event": {"action": "run.created", "entity": f"run:{A}"}}


def test_a_learnt_digest_cannot_be_named_in_an_own_record_to_read_it(
    served: LiveServer, tmp_path: Path
) -> None:
    """The way around a per-blob check: name B's digest in a record of one's own project, then
    read it through that. Each record that names blobs refuses it, saying to upload the blob,
    exactly as for a digest that was never stored; nothing is written. Sending the bytes
    themselves (which proves having them) makes naming them fine."""
    digest = _secret_dataset(served, tmp_path)
    never = str(digest_bytes(b"never stored anywhere"))
    editor = _user(served, "ann", {A: "editor"})
    ws = served.workspace
    with ws.tracking.start_run(project=A, name="mine") as run:
        pass
    head = ws.audit.head().seq
    model_event = {"action": "model.version_registered", "entity": f"model:{A}/copy"}
    with httpx.Client(base_url=served.url, headers=editor) as http:
        for named in (digest, never):
            artifact = [{"path": "copy.csv", "digest": named, "size": 27}]
            refused = [
                http.post(
                    f"/api/v1/projects/{A}/datasets/copy/versions", json=_dataset_body(named, 27)
                ),
                http.post(f"/api/v1/projects/{A}/runs", json=_run_body(artifacts=artifact)),
                http.post(
                    f"/api/v1/runs/{run.id}/links",
                    json={"dataset_refs": [], "artifacts": artifact},
                ),
                http.post(
                    f"/api/v1/projects/{A}/models/copy/versions",
                    json={
                        "new": {
                            "project": A,
                            "name": "copy",
                            "run_id": None,
                            "flavor": "sklearn",
                            "flavor_info": {},
                            "manifest": _dataset_body(named, 27)["new"]["manifest"],
                            "signature": {},
                            "metrics": {},
                        },
                        "event": model_event,
                    },
                ),
            ]
            for answer in refused:
                assert answer.status_code == 404, answer.text
                assert (
                    answer.json()["error"]
                    == f"Blob {named} named in the record is not stored here."
                )
                assert "Upload it first" in answer.json()["hint"]
        assert ws.audit.head().seq == head  # nothing written
        assert ws.data.datasets(A) == []
        assert http.get(f"/api/v1/blobs/{digest}").status_code == 404
        # with the bytes in hand, uploading them is all it takes
        sent = http.put(f"/api/v1/blobs/{digest}", content=b"customer,salary\nada,91000\n")
        assert sent.status_code == 201, sent.text
        made = http.post(
            f"/api/v1/projects/{A}/datasets/copy/versions", json=_dataset_body(digest, 27)
        )
        assert made.status_code == 200, made.text


def test_an_upload_is_its_senders_until_a_record_of_a_project_names_it(
    served: LiveServer,
) -> None:
    editor = _user(served, "ann", {A: "editor"})
    colleague = _user(served, "cid", {A: "viewer"})
    data = b"draft numbers\n"
    digest = str(digest_bytes(data))
    with httpx.Client(base_url=served.url) as http:
        assert http.put(f"/api/v1/blobs/{digest}", content=data, headers=editor).status_code == 201
        assert http.get(f"/api/v1/blobs/{digest}", headers=editor).content == data
        assert http.get(f"/api/v1/blobs/{digest}", headers=colleague).status_code == 404
        body = _dataset_body(digest, len(data))
        named = http.post(f"/api/v1/projects/{A}/datasets/copy/versions", json=body, headers=editor)
        assert named.status_code == 200, named.text
        assert http.get(f"/api/v1/blobs/{digest}", headers=colleague).content == data


def test_a_client_uploads_again_what_it_may_not_read_and_the_server_keeps_one_copy(
    served: LiveServer, tmp_path: Path
) -> None:
    """`RemoteBlobStore.put_file` skips an upload when `exists` says so; for bytes held only by
    another project it uploads them (the bytes prove they are the sender's), the server stores
    one copy, and the next put of the same file is skipped."""
    digest = _secret_dataset(served, tmp_path)
    editor = _user(served, "ann", {A: "editor"})
    stored = sorted(p.name for p in (Path(served.workspace.blobs.url()) / "blobs").rglob("*"))
    path = tmp_path / "same.csv"
    path.write_text("customer,salary\nada,91000\n")
    client = RemoteClient(served.url, editor["Authorization"].split()[1])
    try:
        store = RemoteBlobStore(client)
        assert not store.exists(digest)  # type: ignore[arg-type]
        assert store.put_file(path).digest == digest
        assert store.exists(digest)  # type: ignore[arg-type]
        assert store.put_file(path).digest == digest  # skipped: nothing sent
    finally:
        client.close()
    metrics = httpx.get(f"{served.url}/metrics").text
    assert 'method="PUT",route="/blobs/{digest}",status="201"} 1.0' in metrics  # one upload
    after = sorted(p.name for p in (Path(served.workspace.blobs.url()) / "blobs").rglob("*"))
    assert after == stored  # one copy of the bytes


# -- the audit filter ---------------------------------------------------------------------------


def _entities(log: SqlEventLog, entity: str) -> list[str]:
    return [e.entity for e in log.list(entity=entity, limit=100_000)]


def test_the_audit_filter_of_proj__reads_no_event_of_projB(database: Database) -> None:
    """Reproduction: `_` is LIKE's any-letter wildcard, so the filter `dataset:proj_` matched
    `dataset:projB/churn`. And SQLite's LIKE ignores case: `projb` matched `projB`."""
    log = SqlEventLog(database)
    for entity in ("dataset:projB/churn", "dataset:proj_/own", "dataset:projb/lower"):
        log.append(_event(entity))
    assert _entities(log, "dataset:proj_") == ["dataset:proj_/own"]
    assert _entities(log, "dataset:projb") == ["dataset:projb/lower"]
    assert _entities(log, "dataset:projB") == ["dataset:projB/churn"]
    assert _entities(log, "dataset:proj%") == []


def test_the_audit_route_reads_no_event_of_projB_for_a_user_of_proj_(
    served: LiveServer,
) -> None:
    ws = served.workspace
    with ws.tracking.start_run(project="projB", name="secret-run"):
        pass
    with ws.tracking.start_run(project="proj_", name="own-run"):
        pass
    viewer = _user(served, "ann", {"proj_": "viewer"})
    answer = httpx.get(
        f"{served.url}/api/v1/events", params={"entity": "run:proj_"}, headers=viewer
    )
    assert answer.status_code == 200
    assert answer.json()
    assert {e["entity"].split("/")[0] for e in answer.json()} == {"run:proj_"}
    assert "projB" not in answer.text


def test_events_of_users_and_grants_need_an_admin_whatever_a_project_is_called(
    served: LiveServer,
) -> None:
    """The filter's project was read off any entity: a user granted on a project named like
    a user (`alice`) read that user's token events. Users' events are an admin everywhere's;
    a project's own events (its grants) its admin's."""
    viewer = _user(served, "ann", {"alice": "viewer"})
    for entity in ("user:alice", "project:alice"):
        answer = httpx.get(f"{served.url}/api/v1/events", params={"entity": entity}, headers=viewer)
        assert answer.status_code == 403, answer.text
    admin_of_project = _user(served, "pat", {"alice": "admin"})
    answer = httpx.get(
        f"{served.url}/api/v1/events", params={"entity": "project:alice"}, headers=admin_of_project
    )
    assert answer.status_code == 200
    assert {e["entity"] for e in answer.json()} == {"project:alice"}


def test_the_audit_page_keeps_the_same_rule_as_the_audit_route(served: LiveServer) -> None:
    """/ui/audit read the project off any entity too: a viewer of a project named `alice`
    saw user alice's token events, and every viewer saw the size of the whole chain."""
    from loopml.server.ui.views import COOKIE

    ws = served.workspace  # alice is the server's admin: her user and token events exist
    with ws.tracking.start_run(project="alice", name="own-run"):
        pass
    header = _user(served, "ann", {"alice": "viewer"})
    token = header["Authorization"].split(" ", 1)[1]
    with httpx.Client(base_url=served.url, headers={"Origin": served.url}) as http:
        login = http.post("/ui/login", data={"token": token})
        assert login.status_code == 303, login.text
        assert COOKIE in http.cookies  # the client keeps the session from here on
        refused = http.get("/ui/audit", params={"entity": "user:alice", "project": "alice"})
        assert refused.status_code == 403
        assert "token.created" not in refused.text
        own = http.get("/ui/audit", params={"entity": "run:alice", "project": "alice"})
        assert own.status_code == 200
        assert "run.started" in own.text or "run.created" in own.text
        assert "events verifies" not in own.text  # the chain's size is an admin's


_NAME = st.text(string.ascii_letters + string.digits + "_.-", min_size=1, max_size=12).filter(
    lambda s: s[0].isalnum()
)


@st.composite
def _neighbours(draw: st.DrawFn) -> tuple[str, str]:
    """Two project names that LIKE or case-folding would confuse: one a copy of the other
    with letters turned into `_`, with its case swapped, or cut short; or any two names."""
    base = draw(_NAME)
    how = draw(st.sampled_from(["wildcard", "case", "prefix", "any"]))
    if how == "wildcard":
        spots = draw(st.lists(st.booleans(), min_size=len(base), max_size=len(base)))
        other = base[0] + "".join("_" if s else c for s, c in zip(spots[1:], base[1:], strict=True))
    elif how == "case":
        other = base.swapcase()
    elif how == "prefix":
        other = base[: draw(st.integers(1, len(base)))]
    else:
        other = draw(_NAME)
    return base, other


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(names=_neighbours(), kind=st.sampled_from(["dataset", "run", "model", "alert"]))
def test_no_project_name_matches_another_projects_events(
    database: Database, names: tuple[str, str], kind: str
) -> None:
    """Events accumulate over the examples; a filter on any project returns exactly the events
    of that project's things, whatever the names (wildcards, case, prefixes of each other)."""
    log = SqlEventLog(database)
    first, second = names
    for project in (first, second):
        log.append(_event(f"{kind}:{project}"))
        log.append(_event(f"{kind}:{project}/thing"))
    for project in (first, second):
        entity = f"{kind}:{project}"
        with database.read() as conn:
            stored = list(conn.execute(select(t.events.c.entity)).scalars())
        expected = sorted(e for e in stored if e == entity or e.startswith(entity + "/"))
        assert sorted(_entities(log, entity)) == expected


# -- cross-project references ---------------------------------------------------------------


def test_a_run_cannot_name_a_parent_in_another_project(workspace: Any) -> None:
    """Reproduction: a run of project A named a run of project B as its parent. Refused on
    every backend (the embedded store too), naming both projects; nothing is created."""
    with workspace.tracking.start_run(project=B, name="parent") as parent:
        pass
    before = workspace.tracking.search(project=A).total
    with pytest.raises(InvalidInput) as refused:
        workspace.tracking.start_run(project=A, name="child", parent_id=RunId(parent.id))
    assert f"project {A!r}" in refused.value.message
    assert f"project {B!r}" in refused.value.message
    assert workspace.tracking.search(project=A).total == before


def test_a_user_of_one_project_cannot_name_a_run_of_another_as_parent(
    served: LiveServer,
) -> None:
    """Through the server, a run the user may not read is answered as one that does not
    exist (no oracle for run ids), whatever their role on their own project."""
    with served.workspace.tracking.start_run(project=B, name="parent") as parent:
        pass
    phantom = "0123456789abcdef" * 2
    with httpx.Client(base_url=served.url) as http:
        for role in ("editor", "admin"):
            headers = _user(served, f"ann-{role}", {A: role})
            answers = []
            for parent_id in (parent.id, phantom):
                answer = http.post(
                    f"/api/v1/projects/{A}/runs",
                    json=_run_body(name="child", parent_id=parent_id),
                    headers=headers,
                )
                answers.append((answer.status_code, answer.text.replace(parent_id, "ID")))
            assert answers[0] == answers[1]
            assert answers[0][0] == 404
    assert served.workspace.tracking.search(project=A).total == 0


@pytest.fixture
def two_projects(database: Database) -> dict[str, Any]:
    """A run, a dataset and a step output in each of A and B."""
    runs, datasets = SqlRunStore(database), SqlDatasetStore(database)
    found: dict[str, Any] = {}
    for project in (A, B):
        run = runs.create_run(NewRun(project, "r", {}, {}), _event(f"run:{project}"))
        manifest = Manifest.of([("d.csv", BlobRef(digest_bytes(project.encode()), 1))])
        new = NewDatasetVersion(project, "data", manifest, "", None, None)
        datasets.add_version(new, _event(f"dataset:{project}/data"))
        found[project] = run.id
    return found


def _refused(action: Callable[[], object]) -> str:
    with pytest.raises(InvalidInput) as refused:
        action()
    message = refused.value.message
    assert f"{A!r}" in message, message
    assert f"{B!r}" in message, message
    return message


def test_the_stores_refuse_references_across_projects(
    database: Database, two_projects: dict[str, Any]
) -> None:
    run_a, run_b = two_projects[A], two_projects[B]
    manifest = Manifest.of([("m.bin", BlobRef(digest_bytes(b"m"), 1))])
    model = NewModelVersion(A, "churn", run_b, "sklearn", {}, manifest, {}, {})
    _refused(lambda: SqlModelStore(database).register(model, _event(f"model:{A}/churn")))
    _refused(lambda: SqlRunStore(database).add_inputs_and_artifacts(run_a, [(B, "data", 1)], []))
    output = ArtifactRef(manifest.digest, "json", "dict", manifest.to_dict())
    _refused(
        lambda: SqlPipelineStore(database).record_io(
            run_b, inputs={}, outputs=[output], project=A, cache_key="k", step_name="s"
        )
    )
    loops = SqlLoopStore(database)
    spec = LoopSpec(
        A, "retrain", "prod", "pipe.py:churn", ("manual",),
        "reference + labelled predictions of the last 30d", ("f1 >= champion.f1",),
    )  # fmt: skip
    loops.create(spec, _event(f"loop:{A}/retrain"))
    now = datetime.now(UTC)
    retraining = LoopRun(0, A, "retrain", now, None, "manual", "running", pipeline_run=run_b)
    _refused(lambda: loops.save_run(retraining, _event(f"loop:{A}/retrain")))
    with database.read() as conn:  # none of it was written
        for table in (t.model_versions, t.run_inputs, t.run_io, t.step_cache, t.loop_runs):
            assert conn.execute(select(func.count()).select_from(table)).scalar() == 0


def test_alerts_and_retrainings_update_only_their_own_projects_records(
    database: Database, two_projects: dict[str, Any]
) -> None:
    alerts = SqlAlertStore(database)
    now = datetime.now(UTC)
    rule_b = alerts.add_rule(
        AlertRule(0, B, "drift", "drift_share > 0.5", ("log:",), 60, now), _event(f"alert:{B}")
    )
    alert_b = alerts.save_alert(
        Alert(0, B, rule_b.id, "drift", rule_b.condition, "firing", now, now, None, 0.9, ()),
        _event(f"alert:{B}/drift"),
    )
    forged = Alert(0, A, rule_b.id, "drift", rule_b.condition, "firing", now, now, None, 1.0, ())
    with pytest.raises(NotFound, match=f"rule {rule_b.id} does not exist in project 'projA'"):
        alerts.save_alert(forged, _event(f"alert:{A}/drift"))
    with pytest.raises(NotFound, match=f"Alert {alert_b.id} does not exist in project 'projA'"):
        alerts.save_alert(
            Alert(alert_b.id, A, 0, "drift", "x", "resolved", now, now, now, 0.0, ()),
            _event(f"alert:{A}/drift"),
        )
    with pytest.raises(NotFound):
        alerts.delete_rule(A, rule_b.id, _event(f"alert:{A}/drift"))
    assert alerts.alert(B, alert_b.id).state == "firing"
    assert alerts.rules(B) == [rule_b]
    loops = SqlLoopStore(database)
    for project in (A, B):
        spec = LoopSpec(
            project, "retrain", "prod", "pipe.py:churn", ("manual",),
            "reference + labelled predictions of the last 30d", ("f1 >= champion.f1",),
        )  # fmt: skip
        loops.create(spec, _event(f"loop:{project}/retrain"))
    run_b = loops.save_run(
        LoopRun(0, B, "retrain", now, None, "manual", "running"), _event(f"loop:{B}/retrain")
    )
    with pytest.raises(NotFound, match=f"Loop run {run_b.id} does not exist in project 'projA'"):
        loops.save_run(
            LoopRun(run_b.id, A, "retrain", now, now, "manual", "failed"),
            _event(f"loop:{A}/retrain"),
        )
    assert loops.run(B, run_b.id).status == "running"


def test_a_step_output_cannot_pass_for_another_projects_artifact(
    database: Database, two_projects: dict[str, Any]
) -> None:
    """Artifacts are stored once for every project, by digest: a step output naming the digest
    of B's artifact with other files must not get B's files (and their blobs) in return."""
    pipelines = SqlPipelineStore(database)
    secret = Manifest.of([("model.pkl", BlobRef(digest_bytes(b"B's model"), 9))])
    real = ArtifactRef(secret.digest, "pickle", "object", secret.to_dict())
    pipelines.record_io(
        two_projects[B], inputs={}, outputs=[real], project=B, cache_key=None, step_name="s"
    )
    mine = Manifest.of([("x.json", BlobRef(digest_bytes(b"{}"), 2))])
    forged = ArtifactRef(secret.digest, "json", "dict", mine.to_dict())
    with pytest.raises(InvalidInput, match="manifest whose digest is"):
        pipelines.record_io(
            two_projects[A], inputs={}, outputs=[forged], project=A, cache_key="k", step_name="s"
        )
    assert pipelines.io_of(two_projects[A]) == ({}, [])
    assert pipelines.cached(A, "k") is None


def test_every_record_naming_blobs_fills_blob_refs_in_its_transaction(database: Database) -> None:
    """The (digest, project) pairs the server's checks read, filled by every store (the
    embedded workspace too)."""
    runs = SqlRunStore(database)
    run = runs.create_run(
        NewRun(A, "r", {}, {}, artifacts=(_artifact(b"created"),)), _event(f"run:{A}")
    )
    runs.add_inputs_and_artifacts(run.id, [], [_artifact(b"linked")])
    manifest = Manifest.of([("d.csv", BlobRef(digest_bytes(b"data"), 4))])
    SqlDatasetStore(database).add_version(
        NewDatasetVersion(A, "d", manifest, "", None, None), _event(f"dataset:{A}/d")
    )
    model = Manifest.of([("m.bin", BlobRef(digest_bytes(b"model"), 5))])
    SqlModelStore(database).register(
        NewModelVersion(A, "m", run.id, "sklearn", {}, model, {}, {}), _event(f"model:{A}/m")
    )
    output = Manifest.of([("o.json", BlobRef(digest_bytes(b"output"), 6))])
    SqlPipelineStore(database).record_io(
        run.id,
        inputs={},
        outputs=[ArtifactRef(output.digest, "json", "dict", output.to_dict())],
        project=A,
        cache_key=None,
        step_name="s",
    )
    with database.read() as conn:
        held = set(conn.execute(select(t.blob_refs.c.digest, t.blob_refs.c.project)).all())
    names = (b"created", b"linked", b"data", b"model", b"output")
    assert held == {(str(digest_bytes(n)), A) for n in names}


def _artifact(data: bytes) -> Any:
    from loopml.domain.records import RunArtifact

    return RunArtifact(f"{data.decode()}.txt", digest_bytes(data), len(data))
