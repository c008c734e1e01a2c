"""Housekeeping reproductions: a run whose process was killed no longer stays `running` forever,
and what a killed `loopml data add` leaves behind (a temp file, orphan blobs) is removed by
`loopml gc`, which never loses a blob that anything names, even with a writer reusing blobs
while it runs. On each workspace of `loopml.testing.backends.COLLECTED_BACKENDS` (SQLite with
a folder, PostgreSQL with S3), and of `DATABASE_BACKENDS` (SQLite, PostgreSQL)."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from loopml.adapters.hash_cache import SqliteHashCache
from loopml.adapters.sql import tables as t
from loopml.bootstrap import Workspace, garbage_collector, open_workspace
from loopml.domain.hashing import Digest, digest_bytes
from loopml.domain.records import EventDraft, RunId, RunStatus
from loopml.errors import InvalidInput
from loopml.ports import NewRun
from loopml.settings import Settings
from loopml.testing.backends import COLLECTED_BACKENDS, Services, collected_settings
from loopml.testing.seaweed import S3Endpoint
from loopml.testing.team_server import live_server, postgres_schema_url

LOOPML = str(Path(sys.executable).parent / "loopml")
TIMEOUT_S = 1.5
"""The run timeout of these tests (heartbeats every 0.25 s)."""

_DOOMED = """
import time
from loopml.bootstrap import open_workspace
ws = open_workspace()
run = ws.tracking.start_run(project="default", name="doomed")
run.log_metric("loss", 0.5)
run.flush()
print(run.id, flush=True)
while True:  # one long step, until the process is killed
    time.sleep(0.05)
"""


def _env(**values: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    return {**clean, "LOOPML_ACTOR": "tester", **values}


def _settings(env: dict[str, str], s3: S3Endpoint | None = None, **changes: Any) -> Settings:
    """The settings a process with `env` reads (with the S3 credentials of the test server)."""
    settings = Settings.from_env(env)
    if s3 is not None:
        changes["storage_options"] = s3.storage_options()
    return dataclasses.replace(settings, **changes)


@pytest.fixture(params=COLLECTED_BACKENDS)
def stores(request: pytest.FixtureRequest, services: Services) -> dict[str, Any]:
    """The environment of a workspace on each pair of backends, and its S3 server if any."""
    settings = collected_settings(request.param, services)
    env = _env(
        LOOPML_HOME=str(settings.home),
        LOOPML_DB_URL=settings.db_url,
        LOOPML_ARTIFACTS=settings.artifacts_url,
    )
    if not settings.artifacts_url.startswith("s3://"):
        return {"env": env, "s3": None}
    s3 = services.s3()
    env |= {
        "LOOPML_S3_ENDPOINT_URL": s3.url,
        "AWS_ACCESS_KEY_ID": s3.key,
        "AWS_SECRET_ACCESS_KEY": s3.secret,
    }
    return {"env": env, "s3": s3}


def _start_doomed(env: dict[str, str], cwd: Path) -> tuple[subprocess.Popen[str], RunId]:
    process = subprocess.Popen(
        [sys.executable, "-c", _DOOMED], env=env, cwd=cwd, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    return process, RunId(process.stdout.readline().strip())


def _kill(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    if process.stdout is not None:
        process.stdout.close()


def _heartbeat_us(ws: Workspace, run_id: str) -> int:
    with ws.db.read() as conn:
        found = conn.execute(select(t.runs.c.heartbeat_us).where(t.runs.c.id == run_id)).scalar()
    assert found is not None
    return int(found)


def test_a_run_whose_process_was_killed_is_marked_killed_by_the_next_open_and_audited(
    db_url: str, tmp_path: Path
) -> None:
    env = _env(LOOPML_HOME=str(tmp_path / "home"), LOOPML_DB_URL=db_url, LOOPML_RUN_TIMEOUT_S="1.5")
    process, run_id = _start_doomed(env, tmp_path)
    try:
        watcher = open_workspace(_settings(env))
        first = _heartbeat_us(watcher, run_id)
        time.sleep(0.8)
        assert _heartbeat_us(watcher, run_id) > first  # alive and beating, while it sleeps
    finally:
        _kill(process)
        killed_at = time.time()
    try:
        assert watcher.tracking.get(run_id).status is RunStatus.RUNNING  # nothing ended it
        assert watcher.tracking.end_silent_runs() == []  # silent for less than the timeout
        time.sleep(TIMEOUT_S + 0.3)
        reopened = open_workspace(_settings(env))  # the next command, whatever it is
        run = reopened.tracking.get(run_id)
        assert run.status is RunStatus.KILLED
        assert run.end_time is not None
        assert run.start_time.timestamp() < run.end_time.timestamp() <= killed_at
        assert run.error is not None
        assert "No heartbeat since" in run.error
        assert run.metrics == {"loss": 0.5}  # what it logged is kept
        events = reopened.audit.log(entity=f"run:default/{run_id}")
        assert events[0].action == "run.killed"
        assert events[0].after is not None
        assert events[0].after["reason"] == "heartbeat stopped"
        assert reopened.tracking.end_silent_runs() == []  # once
        reopened.close()
    finally:
        watcher.close()


def test_the_team_servers_schedule_marks_a_killed_clients_run_killed(
    tmp_path: Path, make_settings: Any, postgres_database: str
) -> None:
    server_settings = make_settings(postgres_schema_url(postgres_database), run_timeout_s=1.5)
    with live_server(server_settings, admin="tester", schedule_s=0.2) as server:
        env = _env(LOOPML_SERVER=server.url, LOOPML_TOKEN=server.token, LOOPML_RUN_TIMEOUT_S="1.5")
        process, run_id = _start_doomed(env, tmp_path)
        try:
            first = _heartbeat_us(server.workspace, run_id)
            time.sleep(0.8)
            assert _heartbeat_us(server.workspace, run_id) > first  # beats through the server
            assert server.workspace.tracking.get(run_id).status is RunStatus.RUNNING
        finally:
            _kill(process)
        deadline = time.monotonic() + 10
        while server.workspace.tracking.get(run_id).status is RunStatus.RUNNING:
            assert time.monotonic() < deadline, "the schedule never ended the silent run"
            time.sleep(0.1)
        assert server.workspace.tracking.get(run_id).status is RunStatus.KILLED
        actions = [e.action for e in server.workspace.audit.log(entity=f"run:default/{run_id}")]
        assert actions[0] == "run.killed"


def test_only_an_editor_of_a_runs_project_may_keep_it_alive(
    make_settings: Any, postgres_database: str
) -> None:
    with live_server(make_settings(postgres_schema_url(postgres_database))) as server:
        ws = server.workspace
        draft = EventDraft("run.created", "run:alpha", "tester")
        run = ws.tracking.store.create_run(NewRun("alpha", "r", {}, {}), draft)  # no beats
        ws.auth.create_project("beta")
        tokens = {}
        for user, project, role in [("viewer", "alpha", "viewer"), ("outsider", "beta", "editor")]:
            ws.auth.create_user(user)
            ws.auth.grant(project, user, role)
            tokens[user] = ws.auth.create_token(user, "t")[0]
        before = _heartbeat_us(ws, run.id)
        url = f"{server.url}/api/v1/runs/heartbeat"
        body = {"run_ids": [run.id]}

        def beat(token: str) -> httpx.Response:
            return httpx.post(url, json=body, headers={"Authorization": f"Bearer {token}"})

        assert beat(tokens["viewer"]).status_code == 403
        assert beat(tokens["outsider"]).status_code == 404  # no oracle for other projects' ids
        assert _heartbeat_us(ws, run.id) == before
        too_many = {"run_ids": [run.id] * 10_001}
        refused = httpx.post(
            url, json=too_many, headers={"Authorization": f"Bearer {server.token}"}
        )
        assert refused.status_code == 400
        assert "at most 10000" in refused.text
        assert beat(server.token).status_code == 204
        assert _heartbeat_us(ws, run.id) > before


# -- gc -------------------------------------------------------------------------------------------


def _loopml(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LOOPML, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )


def _store_listing(ws: Workspace) -> dict[str, int]:
    """Every object under the artifact root, with its size."""
    from fsspec.core import url_to_fs

    fs, root = url_to_fs(ws.settings.artifacts_url, **ws.settings.storage_options)
    fs.invalidate_cache()
    return {path: info["size"] for path, info in fs.find(root, detail=True).items()}


def _big_file(path: Path, mib: int) -> None:
    block = os.urandom(1 << 20)
    with path.open("wb") as out:
        for i in range(mib):
            out.write(block[:-8] + i.to_bytes(8, "big"))  # no two blocks alike


def _kill_when(process: subprocess.Popen[str], started: Any, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not started():
        assert process.poll() is None, "the add finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    _kill(process)


def _write_started(settings: Settings, s3: S3Endpoint | None) -> Any:
    """A check that a blob write of the add is under way: a local temp file, or an S3 upload."""
    if s3 is None:
        tmp = Path(settings.artifacts_url) / "tmp"
        return lambda: tmp.is_dir() and any(tmp.iterdir())
    import s3fs

    fs = s3fs.S3FileSystem(**s3.storage_options())
    prefix = settings.artifacts_url.removeprefix(f"s3://{s3.bucket}/")

    def uploading() -> bool:
        found = fs.call_s3("list_multipart_uploads", Bucket=s3.bucket, Prefix=prefix)
        return bool(found.get("Uploads"))

    return uploading


def _kill_an_add_mid_write(
    ws: Workspace, env: dict[str, str], s3: S3Endpoint | None, tmp_path: Path
) -> list[Digest]:
    """`loopml data add` of a folder, killed while it writes its last, big file: the blobs of
    the files before it are stored, and no record names them. Their digests."""
    folder = tmp_path / "big"
    folder.mkdir()
    for name in ("a.bin", "b.bin"):
        (folder / name).write_bytes(os.urandom(100_000))  # stored before the big file
    _big_file(folder / "z.bin", 300)
    adding = subprocess.Popen(
        [LOOPML, "data", "add", str(folder), "--name", "big"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    writing_big = _write_started(ws.settings, s3)
    small = [digest_bytes((folder / name).read_bytes()) for name in ("a.bin", "b.bin")]
    _kill_when(adding, lambda: all(map(ws.blobs.exists, small)) and writing_big())
    return list(small)


def test_gc_removes_what_a_killed_data_add_left_and_every_record_still_reads_back(
    stores: dict[str, Any], tmp_path: Path
) -> None:
    env, s3 = stores["env"], stores["s3"]
    settings = _settings(env, s3)
    ws = open_workspace(settings)
    kept = tmp_path / "kept.csv"
    kept.write_text("a,b\n1,2\n3,4\n")
    ws.data.add(kept, name="kept", project="default")
    with ws.tracking.start_run(project="default", name="r") as run:
        run.log_text("notes", "notes.txt")
    orphans = _kill_an_add_mid_write(ws, env, s3, tmp_path)
    assert ws.data.datasets("default")[0].name == "kept"  # nothing recorded of `big`
    before = _store_listing(ws)

    if s3 is not None:  # S3 lists whole seconds, counted at their end: let this one pass
        time.sleep(1.02 - time.time() % 1)
    listed = _loopml(env, tmp_path, "gc", "--grace", "0s", "--dry-run")
    assert listed.returncode == 0, listed.stderr
    assert "Would free" in listed.stdout
    for digest in orphans:
        assert digest in listed.stdout
    leftover = "temp file" if s3 is None else "unfinished upload"
    assert leftover in listed.stdout
    assert _store_listing(ws) == before  # a dry run changes nothing
    events_before = len(ws.audit.log(limit=1000))

    freed = _loopml(env, tmp_path, "gc", "--grace", "0s")
    assert freed.returncode == 0, freed.stderr
    assert "orphan blob" in freed.stdout
    assert leftover in freed.stdout
    after = _store_listing(ws)
    assert len(after) < len(before)
    assert not any(map(ws.blobs.exists, orphans))
    if s3 is None:
        assert not any((Path(settings.artifacts_url) / "tmp").iterdir())
    else:
        assert not _write_started(settings, s3)()
    events = ws.audit.log(limit=1000)
    assert len(events) == events_before + 1
    assert events[0].action == "blobs.collected"
    assert events[0].after is not None
    assert events[0].after["freed"]["orphan blob"]["count"] >= 2

    out = tmp_path / "out"
    ws.data.get("kept@1", "default", out)  # hash-checked
    assert (out / "kept.csv").read_text() == kept.read_text()
    assert ws.tracking.fetch_artifact(run.id, "notes.txt", tmp_path / "n").read_text() == "notes"
    environment = ws.tracking.fetch_artifact(
        run.id, "environment/requirements.txt", tmp_path / "req.txt"
    )
    assert environment.stat().st_size > 0
    if s3 is not None:  # S3 lists whole seconds, counted at their end: let this one pass
        time.sleep(1.02 - time.time() % 1)
    again = _loopml(env, tmp_path, "gc", "--grace", "0s", "--json")
    assert '"freed_bytes": 0' in again.stdout  # nothing left to free
    ws.close()


def test_a_writer_reusing_blobs_never_loses_one_to_a_concurrent_gc(
    stores: dict[str, Any], tmp_path: Path
) -> None:
    """Blobs nothing names yet (left by an earlier add) are reused by a writer (its hash cache
    knows the files, so it only asks whether each blob exists) while collections run one after
    another: every version the writer records reads back, and the blobs nobody reused go."""
    env, s3 = stores["env"], stores["s3"]
    settings = _settings(env, s3)
    setup = open_workspace(settings)
    cache = SqliteHashCache(settings.cache_dir / "hashes.db")
    files = []
    for i in range(120):
        path = tmp_path / "files" / f"f{i:03d}.txt"
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"row {i}\n" * 50)
        cache.put(path, setup.blobs.put_file(path))
        files.append(path)
    unused = [setup.blobs.put_bytes(f"never reused {i}".encode()).digest for i in range(20)]
    cache.close()
    time.sleep(2.5)  # older than the grace period: orphans, for now
    writer_ws, collector_ws = open_workspace(settings), open_workspace(settings)
    collector = garbage_collector(collector_ws)
    done = threading.Event()
    reports = []

    def collect() -> None:
        while not done.is_set():
            reports.append(collector.collect(grace_s=2))

    thread = threading.Thread(target=collect)
    thread.start()
    try:
        for i, path in enumerate(files):
            if i % 40 == 20:  # paced: a collection ends while the writer is mid-way, each time
                _wait_for_more(reports, len(reports) + 1)
            writer_ws.data.add(path, name=f"d{i}", project="default", profile=False)
        done.set()
        thread.join(120)
        reports.append(collector.collect(grace_s=2))
        assert len(reports) >= 4, "the collections did not overlap the writer"
        for i, path in enumerate(files):
            out = tmp_path / "out" / str(i)
            setup.data.get(f"d{i}@1", "default", out)  # hash-checked: present and whole
            assert (out / path.name).read_text() == path.read_text()
        assert not any(setup.blobs.exists(digest) for digest in unused)
    finally:
        done.set()
        thread.join(120)
        for ws in (setup, writer_ws, collector_ws):
            ws.close()


def _wait_for_more(reports: list[Any], count: int, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while len(reports) < count:
        assert time.monotonic() < deadline, "no collection finished in 120 s"
        time.sleep(0.01)


def test_gc_on_a_client_of_a_team_server_is_refused_with_what_to_do(
    make_settings: Any, postgres_database: str, tmp_path: Path
) -> None:
    with live_server(make_settings(postgres_schema_url(postgres_database))) as server:
        env = _env(LOOPML_SERVER=server.url, LOOPML_TOKEN=server.token)
        refused = _loopml(env, tmp_path, "gc", "--dry-run")
        assert refused.returncode == 1
        assert "server operator's job" in refused.stderr
        assert "Traceback" not in refused.stderr
        client = open_workspace(make_settings(server_url=server.url, token=server.token))
        with pytest.raises(InvalidInput, match="Run `loopml gc` on the server's machine"):
            garbage_collector(client)
        client.close()
