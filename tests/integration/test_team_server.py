"""The team server for real: `loopml server` as a process on PostgreSQL and an S3-compatible
store, the CLI and the SDK unchanged against it, and its access control: no route without a
token, no change by a viewer, no way around with revoked tokens, odd names or traversal."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from team import DEMO_PIPELINE, LOOPML
from team import clean_env as _env
from team import loopml as _loopml

from loopml.domain.filters import RunQuery
from loopml.settings import Settings
from loopml.testing.fuzz import fuzz_openapi, smallest_value
from loopml.testing.team_server import (
    LiveServer,
    free_port,
    live_server,
    postgres_schema_url,
)

_TRAIN = """
import loopml
from sklearn.linear_model import LogisticRegression
import pandas as pd
frame = pd.read_csv("train.csv")
with loopml.start_run(name="remote-train") as run:
    run.use_dataset("churn@1")
    run.log_params({"c": 1.0})
    for step in range(300):
        run.log_metric("loss", 1.0 / (step + 1), step=step)
    model = LogisticRegression().fit(frame[["tenure"]], frame["churned"])
    example = frame[["tenure"]].head(3)
    version = loopml.models.register(run, model, name="churn", input_example=example)
loopml.models.set_alias("churn", "champion", version.version)
print(loopml.models.load("churn@champion").predict(frame[["tenure"]].head(2)).tolist())
"""


def test_the_cli_and_the_sdk_work_unchanged_against_the_server(
    team: dict[str, Any], tmp_path: Path
) -> None:
    laptop = tmp_path / "laptop"
    laptop.mkdir()
    (laptop / "train.csv").write_text(
        "tenure,churned\n" + "".join(f"{i},{int(i < 20)}\n" for i in range(60))
    )
    (laptop / "train.py").write_text(_TRAIN)
    env = _env(LOOPML_SERVER=team["url"], LOOPML_TOKEN=team["alice"])
    added = _loopml(env, laptop, "data", "add", "train.csv", "--name", "churn")
    assert added.returncode == 0, added.stderr
    trained = subprocess.run(
        [sys.executable, "train.py"], env=env, cwd=laptop, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    assert trained.stdout.strip() == "[1, 1]"
    runs = json.loads(_loopml(env, laptop, "runs", "list", "--json").stdout)["runs"]
    (run,) = [r for r in runs if r["name"] == "remote-train"]
    assert run["status"] == "finished"
    assert run["metrics"]["loss"] == pytest.approx(1 / 300)
    shown = json.loads(_loopml(env, laptop, "runs", "show", run["id"], "--json").stdout)
    assert shown["run"]["inputs"] == ["churn@1"]
    versions = json.loads(_loopml(env, laptop, "models", "versions", "churn", "--json").stdout)
    assert versions[0]["aliases"] == ["champion"]
    log = _loopml(env, laptop, "audit", "log", "--entity", "model:default/churn", "--json")
    assert {e["actor"] for e in json.loads(log.stdout)} == {"alice"}  # the token's user
    fetched = _loopml(env, laptop, "data", "get", "churn@1", "-o", "copy")
    assert fetched.returncode == 0, fetched.stderr
    assert (laptop / "copy" / "train.csv").read_bytes() == (laptop / "train.csv").read_bytes()
    assert not (laptop / ".loopml" / "loopml.db").exists()  # nothing went to a local store

    viewer = _env(LOOPML_SERVER=team["url"], LOOPML_TOKEN=team["bob"], LOOPML_PROJECT="fraud")
    assert _loopml(viewer, laptop, "data", "list").returncode == 0
    refused = _loopml(viewer, laptop, "data", "add", "train.csv", "--name", "x")
    assert refused.returncode == 1
    # refused at the upload: the bytes alice sent to project default are not bob's to read,
    # so his client sends them again, which needs an editor role somewhere
    assert "bob has no editor role on any project" in refused.stderr
    elsewhere = _loopml(viewer, laptop, "data", "list", "--project", "default")
    assert elsewhere.returncode == 1
    assert "no role on project 'default'" in elsewhere.stderr
    anonymous = _loopml(_env(LOOPML_SERVER=team["url"]), laptop, "runs", "list")
    assert anonymous.returncode == 1
    assert "no API token" in anonymous.stderr
    assert "Traceback" not in refused.stderr + elsewhere.stderr + anonymous.stderr


def test_pipelines_deployments_monitors_alerts_and_loops_work_through_the_server(
    team: dict[str, Any], tmp_path: Path
) -> None:
    """The operations side of a workspace from a client: a cached pipeline run, its lineage, a
    deployment, a drift monitor, an alert rule and a retrain policy, all stored on the server,
    with the viewer refused each change."""
    from loopml.cli.demo import period

    laptop = tmp_path / "laptop"
    laptop.mkdir()
    period(0, 400, seed=0).to_csv(laptop / "first.csv", index=False)
    env = _env(LOOPML_SERVER=team["url"], LOOPML_TOKEN=team["alice"])

    def ok(*args: str) -> Any:
        done = _loopml(env, laptop, *args, "--json")
        assert done.returncode == 0, (args, done.stderr)
        return json.loads(done.stdout)

    assert _loopml(env, laptop, "data", "add", "first.csv", "--name", "churn").returncode == 0
    pipeline = f"{DEMO_PIPELINE}:churn"
    first = ok("pipeline", "run", pipeline, "--param", "dataset=churn@1")
    again = ok("pipeline", "run", pipeline, "--param", "dataset=churn@1")
    assert {s["status"] for s in again["steps"]} == {"cached"}, again  # the cache is the server's
    assert first["status"] == again["status"] == "finished"
    assert _loopml(env, laptop, "models", "promote", "churn", "1").returncode == 0
    lineage = _loopml(env, laptop, "lineage", "churn@champion")
    assert lineage.returncode == 0, lineage.stderr
    assert "churn@1" in lineage.stdout  # the model's data, found through the server
    assert ok("deploy", "create", "churn-prod", "--model", "churn@champion")["name"] == "churn-prod"
    made = ok("monitor", "create", "churn-drift", "--deployment", "churn-prod",
              "--reference", "churn@1", "--label", "churned")  # fmt: skip
    assert made["reference"] == "churn@1"
    rule = ok("alert", "rule", "add", "churn-drift", "--when", "drift_share > 0.2")
    assert rule["target"] == "churn-drift"
    ok("loop", "create", "churn-loop", "--deployment", "churn-prod", "--pipeline", pipeline,
       "--trigger", "alert:churn-drift", "--promote-if", "f1 >= champion.f1")  # fmt: skip
    assert [loop["name"] for loop in ok("loop", "list")] == ["churn-loop"]
    assert [d["name"] for d in ok("deploy", "list")] == ["churn-prod"]
    assert [m["name"] for m in ok("monitor", "list")] == ["churn-drift"]
    assert not (laptop / ".loopml" / "loopml.db").exists()  # all of it is on the server

    viewer = _env(LOOPML_SERVER=team["url"], LOOPML_TOKEN=team["bob"])
    for args in (
        ("deploy", "delete", "churn-prod"),
        ("loop", "delete", "churn-loop"),
        ("monitor", "delete", "churn-drift"),
        ("pipeline", "run", pipeline, "--param", "dataset=churn@1", "--no-cache"),
    ):
        refused = _loopml(viewer, laptop, *args)
        assert refused.returncode == 1, args
        # a pipeline run first uploads its environment: bob may upload nowhere
        expected = (
            "no editor role on any project"
            if args[0] == "pipeline"
            else "no role on project 'default'"
        )
        assert expected in refused.stderr, (args, refused.stderr)
    assert [loop["name"] for loop in ok("loop", "list")] == ["churn-loop"]
    log = _loopml(env, laptop, "audit", "log", "--entity", "loop:default/churn-loop", "--json")
    assert [e["actor"] for e in json.loads(log.stdout)] == ["alice"]


# -- access control on every route ------------------------------------------------------------

DIGEST = "blake3:" + "ab" * 32


@pytest.fixture
def served(make_settings: Callable[..., Settings]) -> Iterator[LiveServer]:
    with live_server(make_settings()) as server:
        ws = server.workspace
        ws.auth.create_user("vera")
        ws.auth.grant("default", "vera", "viewer")
        yield server


def _calls(url: str, run_id: str = "0" * 32) -> list[tuple[str, str, Any]]:
    """Every operation of the OpenAPI document with its path filled in and, where it takes a
    JSON body, the smallest body its schema accepts (so a refusal is the route's, not the
    validator's)."""
    spec = httpx.get(f"{url}/api/v1/openapi.json").json()
    values = {
        "project": "default",
        "name": "churn",
        "version": "1",
        "alias": "champion",
        "digest": DIGEST,
        "run_id": run_id,
        "key": "loss",
        "user": "vera",
        "token_id": "1",
        "rule_id": "1",
        "alert_id": "1",
        "cache_key": "k",
        "ref": "churn@1",
    }
    calls = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            filled = path
            for key, value in values.items():
                filled = filled.replace(f"{{{key}}}", value).replace(f"{{{key}:path}}", value)
            assert "{" not in filled, f"no value for a parameter of {filled}"
            content = operation.get("requestBody", {}).get("content", {})
            schema = content.get("application/json", {}).get("schema")
            body = None if schema is None else smallest_value(schema, spec["components"]["schemas"])
            calls.append((method.upper(), filled, body))
    return calls


READS_BY_POST = {"/api/v1/runs/search", "/api/v1/lineage/model-versions"}


def test_every_route_wants_a_token_and_a_viewer_changes_nothing(served: LiveServer) -> None:
    ws = served.workspace
    vera, _ = ws.auth.create_token("vera")
    with ws.tracking.start_run(name="seed", project="default") as run:  # for routes by run id
        run.log_metric("loss", 0.5)
    before = ws.audit.head().seq
    calls = _calls(served.url, run.id)
    assert len(calls) >= 70
    with httpx.Client(base_url=served.url) as http:
        for method, path, body in calls:
            anonymous = http.request(method, path, json=body)
            expected = 200 if path == "/api/v1/health" else 401
            assert anonymous.status_code == expected, (method, path, anonymous.text)
            if expected == 401:
                assert anonymous.json()["type"] == "Unauthenticated"
            as_viewer = http.request(
                method, path, json=body, headers={"Authorization": f"Bearer {vera}"}
            )
            assert as_viewer.status_code < 500, (method, path, as_viewer.text)
            if method != "GET" and path not in READS_BY_POST:
                assert as_viewer.status_code == 403, (method, path, body, as_viewer.text)
                assert as_viewer.json()["type"] == "Forbidden"
    assert ws.audit.head().seq == before  # not one change got through
    assert [p.value for p in ws.tracking.store.metric_history(run.id, "loss")] == [0.5]


def test_revoked_expired_and_disabled_tokens_are_refused(served: LiveServer) -> None:
    ws = served.workspace
    ws.auth.create_user("temp", "editor")
    revoked, record = ws.auth.create_token("temp", "revoked")
    short, _ = ws.auth.create_token("temp", "short", expires_in_s=1)
    kept, _ = ws.auth.create_token("temp", "kept")
    path = f"{served.url}/api/v1/projects/default/datasets"

    def status(token: str) -> tuple[int, str]:
        answer = httpx.get(path, headers={"Authorization": f"Bearer {token}"})
        return answer.status_code, answer.json().get("error", "") if answer.is_error else ""

    assert status(revoked)[0] == 200
    ws.auth.revoke_token(record.id)
    assert status(revoked) == (401, "The API token 'revoked' of 'temp' was revoked.")
    time.sleep(1.1)
    assert status(short) == (401, "The API token 'short' of 'temp' was expired.")
    assert status(kept)[0] == 200
    ws.auth.disable_user("temp")
    assert status(kept) == (401, "User 'temp' is disabled.")
    assert status("lml_" + "x" * 43)[0] == 401
    assert httpx.get(path, headers={"Authorization": "Basic YWxpY2U6cHc="}).status_code == 401


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/v1/blobs/blake3:..%2F..%2F..%2Fetc%2Fpasswd", None),
        ("GET", "/api/v1/blobs/..%2F..%2Fetc%2Fpasswd/exists", None),
        ("PUT", "/api/v1/blobs/blake3:" + "0" * 63 + "%2F", None),
        ("GET", "/api/v1/projects/default';%20DROP%20TABLE%20runs;--/datasets", None),
        ("GET", "/api/v1/projects/default/datasets/x'%20OR%20'1'='1/versions", None),
        ("POST", "/api/v1/runs/search", {"query": {"project": "default", "where": "1=1"}}),
        ("POST", "/api/v1/projects/default/datasets/churn/versions", {"manifest": "nope"}),
        ("GET", "/api/v1/events?entity=model:../../x", None),
    ],
)
def test_hostile_paths_names_and_bodies_get_a_clear_4xx(
    served: LiveServer, method: str, path: str, body: Any
) -> None:
    answer = httpx.request(
        method,
        served.url + path,
        json=body,
        headers={"Authorization": f"Bearer {served.token}"},
    )
    assert 400 <= answer.status_code < 500, answer.text
    assert answer.json()["error"]
    assert served.workspace.db.engine.dialect.has_table(
        served.workspace.db.engine.connect(), "runs"
    )


def test_an_oversized_body_is_refused(make_settings: Callable[..., Settings]) -> None:
    with live_server(make_settings(), max_upload_bytes=10_000) as server:
        answer = httpx.put(
            f"{server.url}/api/v1/blobs/{DIGEST}",
            content=b"z" * 20_000,
            headers={"Authorization": f"Bearer {server.token}"},
        )
        assert answer.status_code == 400
        assert "at most 10000" in answer.json()["error"]
        assert not server.workspace.blobs.exists(DIGEST)  # type: ignore[arg-type]


def test_requests_are_counted_at_metrics_and_carry_a_request_id(served: LiveServer) -> None:
    headers = {"Authorization": f"Bearer {served.token}", "X-Request-Id": "abc123"}
    answer = httpx.get(f"{served.url}/api/v1/projects/default/datasets", headers=headers)
    assert answer.headers["x-request-id"] == "abc123"
    httpx.get(f"{served.url}/api/v1/projects/default/datasets")  # no token: 401
    text = httpx.get(f"{served.url}/metrics").text
    route = 'route="/projects/{project}/datasets"'  # under /api/v1
    assert f'loopml_server_requests_total{{method="GET",{route},status="200"}} 1.0' in text
    assert f'loopml_server_requests_total{{method="GET",{route},status="401"}} 1.0' in text


LOAD_SECONDS = 30
CLIENTS = 16


def test_sixteen_clients_logging_for_thirty_seconds_lose_nothing(
    team: dict[str, Any], tmp_path: Path
) -> None:
    """Each client opens its own workspace on the server and logs runs of buffered metric
    points for 30 s; afterwards every point each client logged is in the database."""
    from concurrent.futures import ThreadPoolExecutor

    from loopml.bootstrap import open_workspace

    def client(number: int) -> dict[str, int]:
        settings = Settings.from_env(
            env={"LOOPML_SERVER": team["url"], "LOOPML_TOKEN": team["alice"]},
            cwd=tmp_path / f"client-{number}",
        )
        ws = open_workspace(settings)
        logged: dict[str, int] = {}
        try:
            deadline = time.monotonic() + LOAD_SECONDS
            while time.monotonic() < deadline:
                with ws.tracking.start_run(project="default", name=f"load-{number}") as run:
                    run.log_params({"client": number})
                    for step in range(2_000):
                        run.log_metric("loss", 1.0 / (step + 1), step=step)
                    logged[run.id] = 2_000
        finally:
            ws.close()
        return logged

    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(client, range(CLIENTS)))
    logged = {run: count for result in results for run, count in result.items()}
    assert len(logged) >= CLIENTS  # every client finished at least one run
    check = open_workspace(Settings(
        home=tmp_path / "check",
        db_url=team["server_env"]["LOOPML_DB_URL"],
        artifacts_url=str(tmp_path / "unused"),
        cache_dir=tmp_path / "check-cache",
    ))  # fmt: skip
    try:
        for run_id, count in logged.items():
            assert len(check.tracking.store.metric_history(run_id, "loss")) == count
            assert check.tracking.get(run_id).status.value == "finished"
    finally:
        check.close()


def test_no_generated_request_gets_a_server_error(
    postgres_database: str, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """schemathesis's coverage and fuzzing phases over every operation of the server's OpenAPI
    document, as an admin (so requests get past the token check into the stores), on
    PostgreSQL (stricter about what text and numbers it takes than SQLite)."""
    with live_server(make_settings(postgres_schema_url(postgres_database))) as served:
        _fuzz(served, tmp_path)


def _fuzz(served: LiveServer, tmp_path: Path) -> None:
    done = fuzz_openapi(
        f"{served.url}/api/v1/openapi.json",
        tmp_path,
        parameters={"project": "default", "name": "churn"},
        max_examples=25,
        headers=[f"Authorization: Bearer {served.token}"],
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " passed" in done.stdout


def _start_server(env: dict[str, str], home: Path, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [LOOPML, "server", "--port", str(port)],
        env=env, cwd=home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health").status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.05)
    pytest.fail("the server did not start")


def test_a_server_killed_and_restarted_mid_load_loses_and_duplicates_nothing(
    postgres_database: str, tmp_path: Path
) -> None:
    """Four clients log runs of metric points while the server is killed (SIGKILL, in the
    middle of requests) and started again on the same port: every client carries on by
    retrying, and afterwards each run holds exactly the points its client logged."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from loopml.bootstrap import open_workspace

    env = _env(
        LOOPML_DB_URL=postgres_schema_url(postgres_database),
        LOOPML_HOME=str(tmp_path / "server-home"),
    )
    home = tmp_path / "server"
    home.mkdir()
    assert _loopml(env, home, "users", "create", "ann", "--role", "admin").returncode == 0
    token = _loopml(env, home, "tokens", "create", "ann").stdout.strip()
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    server = _start_server(env, home, port)
    done = threading.Event()

    def client(number: int) -> dict[str, int]:
        settings = Settings.from_env(
            env={"LOOPML_SERVER": url, "LOOPML_TOKEN": token}, cwd=tmp_path / f"c{number}"
        )
        ws = open_workspace(settings)
        logged: dict[str, int] = {}
        try:
            while not done.is_set():
                with ws.tracking.start_run(project="default", name=f"c{number}") as run:
                    for step in range(300):
                        run.log_metric("loss", float(step), step=step)
                        if step % 50 == 0:
                            run.flush()  # many small batches: some meet the kill
                    logged[run.id] = 300
        finally:
            ws.close()
        return logged

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(client, n) for n in range(4)]
        time.sleep(3)
        server.kill()
        server.wait(30)
        time.sleep(1)
        server = _start_server(env, home, port)
        time.sleep(3)
        done.set()
        results = [f.result(timeout=120) for f in futures]
    server.terminate()
    server.wait(30)
    logged = {run: count for result in results for run, count in result.items()}
    check = open_workspace(
        Settings(
            home=tmp_path / "check",
            db_url=env["LOOPML_DB_URL"],
            artifacts_url=str(tmp_path / "unused"),
            cache_dir=tmp_path / "check-cache",
        )
    )
    try:
        stored = check.tracking.store.search(RunQuery("default"), 10_000, 0)
        assert sorted(r.id for r in stored.runs) == sorted(logged)  # no run twice, none lost
        for run_id, count in logged.items():
            assert len(check.tracking.store.metric_history(run_id, "loss")) == count
    finally:
        check.close()


def test_replicas_take_turns_running_the_schedule(
    postgres_database: str, make_settings: Callable[..., Settings]
) -> None:
    """Two servers on one database, each with a scheduler ticking every 0.2 s, and a health
    monitor due every second: it runs once a second, not twice; when the replica holding the
    schedule stops, the other carries on."""
    import threading
    from contextlib import ExitStack
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from itertools import pairwise

    from loopml.monitoring import monitors

    class Ready(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    probe = ThreadingHTTPServer(("127.0.0.1", 0), Ready)
    threading.Thread(target=probe.serve_forever, daemon=True).start()
    settings = make_settings(postgres_schema_url(postgres_database))
    with ExitStack() as first_stack, ExitStack() as second_stack:
        first = first_stack.enter_context(live_server(settings, admin="one", schedule_s=0.2))
        monitors.create(
            "health",
            deployment="churn-prod",
            probe=f"http://127.0.0.1:{probe.server_address[1]}",
            every="1s",
            workspace=first.workspace,
        )
        second = second_stack.enter_context(live_server(settings, admin="two", schedule_s=0.2))
        time.sleep(3.5)
        holder, other = sorted((first, second), key=lambda s: -s.app.state.scheduler.ticks_run)
        assert holder.app.state.scheduler.ticks_run > 0
        history = second.workspace.monitors.history("health", "default", 100)
        # Never twice: each run's window ends a schedule after the previous one's, whichever
        # replica ran it (the times runs were stored at vary with the machine's load).
        ends = sorted(r.window_end_us / 1e6 for r in history)
        assert 2 <= len(ends) <= 5, ends
        assert min(b - a for a, b in pairwise(ends)) > 0.8, ends
        (first_stack if holder is first else second_stack).close()  # the holder stops
        time.sleep(3)
        assert other.app.state.scheduler.ticks_run > 0  # the other took over
        later = other.workspace.monitors.history("health", "default", 100)
        assert len(later) >= len(history) + 1
    probe.shutdown()
    probe.server_close()


def test_an_admin_manages_users_tokens_and_grants_from_a_remote_cli(
    served: LiveServer, tmp_path: Path
) -> None:
    admin = _env(LOOPML_SERVER=served.url, LOOPML_TOKEN=served.token)

    def loopml(*args: str, env: dict[str, str] = admin) -> subprocess.CompletedProcess[str]:
        return _loopml(env, tmp_path, *args)

    assert loopml("users", "create", "carol").returncode == 0
    made = loopml("tokens", "create", "carol", "--name", "laptop", "--json")
    assert made.returncode == 0, made.stderr
    token = json.loads(made.stdout)
    carol = _env(LOOPML_SERVER=served.url, LOOPML_TOKEN=token["token"])
    assert "no role on project 'default'" in loopml("data", "list", env=carol).stderr
    assert loopml("projects", "grant", "default", "carol", "--role", "viewer").returncode == 0
    assert loopml("data", "list", env=carol).returncode == 0
    listed = json.loads(loopml("tokens", "list", "--user", "carol", "--json").stdout)
    assert [(t["name"], t["hint"]) for t in listed] == [("laptop", token["token"][-4:])]
    refused = loopml("users", "list", env=carol)
    assert refused.returncode == 1
    assert "carol is not an admin" in refused.stderr
    assert loopml("tokens", "revoke", str(token["id"])).returncode == 0
    assert "was revoked" in loopml("data", "list", env=carol).stderr
    assert loopml("projects", "create", "fraud").returncode == 0
    assert "fraud" in json.loads(loopml("projects", "list", "--json").stdout)
    events = served.workspace.audit.log(entity="user:carol", limit=10)
    assert {e.actor for e in events} == {"alice"}  # the admin behind the token, not the server
    stored = [t.hint for t in served.workspace.auth.tokens("carol")]
    assert stored == [token["token"][-4:]]  # the server has the hash and a hint, not the token
