"""The team server as a process, for the tests that drive it from outside: its command, a clean
environment, and `team_server` (the `team` fixture of conftest)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from loopml.testing.seaweed import S3Endpoint
from loopml.testing.team_server import free_port, postgres_schema_url, wait_until_healthy

LOOPML = str(Path(sys.executable).parent / "loopml")
DEMO_PIPELINE = str(Path(__file__).parents[2] / "src" / "loopml" / "cli" / "demo_pipeline.py")


def clean_env(**values: str) -> dict[str, str]:
    """This process's environment without its LOOPML_ settings, plus `values`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    return {**clean, **values}


def loopml(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LOOPML, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


@contextmanager
def team_server(
    tmp_path: Path, postgres_database: str, s3_endpoint: S3Endpoint
) -> Iterator[dict[str, Any]]:
    """`loopml server` as a process on PostgreSQL and S3, with alice (admin) and bob (viewer on
    project fraud): the server's URL, both tokens and the server's environment."""
    server_env = clean_env(
        LOOPML_DB_URL=postgres_schema_url(postgres_database),
        LOOPML_ARTIFACTS=f"s3://{s3_endpoint.bucket}/{uuid.uuid4().hex}",
        LOOPML_S3_ENDPOINT_URL=s3_endpoint.url,
        AWS_ACCESS_KEY_ID=s3_endpoint.key,
        AWS_SECRET_ACCESS_KEY=s3_endpoint.secret,
        LOOPML_HOME=str(tmp_path / "server-home"),
    )
    home = tmp_path / "server"
    home.mkdir()
    assert loopml(server_env, home, "users", "create", "alice", "--role", "admin").returncode == 0
    alice = loopml(server_env, home, "tokens", "create", "alice", "--name", "laptop")
    assert alice.returncode == 0, alice.stderr
    assert loopml(server_env, home, "users", "create", "bob").returncode == 0
    bob = loopml(server_env, home, "tokens", "create", "bob").stdout.strip()
    assert loopml(server_env, home, "projects", "create", "fraud").returncode == 0
    granted = loopml(server_env, home, "projects", "grant", "fraud", "bob", "--role", "viewer")
    assert granted.returncode == 0, granted.stderr
    port = free_port()
    log = (tmp_path / "server.log").open("wb")
    pipelines = str(Path(DEMO_PIPELINE).parent)  # the operator's folder of pipeline files
    process = subprocess.Popen(
        [LOOPML, "server", "--port", str(port), "--pipelines", pipelines],
        env=server_env, cwd=home, stderr=log, stdout=log,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_until_healthy(url, process, tmp_path / "server.log")
    try:
        yield {"url": url, "alice": alice.stdout.strip(), "bob": bob, "server_env": server_env}
    finally:
        process.terminate()
        process.wait(30)
        log.close()
