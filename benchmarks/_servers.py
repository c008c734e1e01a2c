"""Helpers shared by the benchmarks of tracking servers (team_server.py, mlflow_api.py): a fresh
PostgreSQL database, a server process waited for until it answers, the runs searched written
straight into each tool's database, the planner's statistics refreshed after that bulk load, and a
loopml admin token.

PostgreSQL: LOOPML_BENCH_POSTGRES (default postgresql+psycopg://postgres@127.0.0.1:5432), a role
that may create databases.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from _common import COMPETITORS, competitor_python, run_json  # the script's folder is on sys.path

POSTGRES = os.environ.get("LOOPML_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432")
LOOPML = str(Path(sys.executable).parent / "loopml")


def analyze(db_url: str) -> None:
    """Refresh the planner's statistics, as autovacuum does on a live database after a bulk
    load (both tools' databases get the same)."""
    from sqlalchemy import create_engine

    engine = create_engine(db_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
    engine.dispose()


def postgres_version() -> str:
    from sqlalchemy import create_engine

    engine = create_engine(f"{POSTGRES}/postgres")
    with engine.connect() as conn:
        version = str(conn.exec_driver_sql("SHOW server_version").scalar())
    engine.dispose()
    return version


@contextmanager
def database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database (its SQLAlchemy URL), dropped afterwards."""
    from sqlalchemy import create_engine, text

    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(f"{POSTGRES}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{POSTGRES}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def process(args: list[str], env: dict[str, str], ready_url: str, log: Path) -> Iterator[None]:
    """Run a server, its output to `log`, until `ready_url` answers below 500; stop it after."""
    with log.open("wb") as sink:
        proc = subprocess.Popen(args, env=env, stdout=sink, stderr=sink)
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(ready_url, timeout=2).status_code < 500:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{args[0]} did not start; see {log}")
                time.sleep(0.2)
            yield
        finally:
            proc.terminate()
            proc.wait(30)


@contextmanager
def loopml_server(env: dict[str, str], log: Path) -> Iterator[str]:
    """`loopml server` on a free port of 127.0.0.1 with `env` (LOOPML_DB_URL, LOOPML_HOME): its
    URL, once it answers."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with process([LOOPML, "server", "--port", str(port)], env, f"{url}/api/v1/health", log):
        yield url


@contextmanager
def mlflow_server(
    anchors: Path, root: Path, db_url: str, workers: int, *, port: int, env: dict[str, str]
) -> Iterator[str]:
    """`mlflow server` (from the competitor venv) on `db_url` with `workers` workers, on `port`
    of 127.0.0.1, its artifacts in a folder of `root` and its log there: its URL, once it
    answers."""
    mlflow_bin = str(competitor_python(anchors, "mlflow").with_name("mlflow"))
    url = f"http://127.0.0.1:{port}"
    server = [
        mlflow_bin, "server", "--backend-store-uri", db_url, "--host", "127.0.0.1",
        "--port", str(port), "--workers", str(workers),
        "--default-artifact-root", str(root / f"mlflow-artifacts-{workers}"),
    ]  # fmt: skip
    with process(server, env, f"{url}/health", root / f"mlflow-{workers}.log"):
        yield url


def loopml_token(env: dict[str, str]) -> str:
    """A token of a new admin user `bench` of the workspace `env` names."""
    subprocess.run([LOOPML, "users", "create", "bench", "--role", "admin"], env=env,
                   check=True, capture_output=True)  # fmt: skip
    return subprocess.run(
        [LOOPML, "tokens", "create", "bench"], env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def populate_loopml(db_url: str, folder: Path, runs: list[dict[str, Any]]) -> None:
    """Write `runs` (`_common.make_runs`) into project "scale" of the database, with loopml's
    own library (not through a server)."""
    from loopml.bootstrap import open_workspace
    from loopml.settings import Settings

    ws = open_workspace(
        Settings(
            home=folder,
            db_url=db_url,
            artifacts_url=str(folder / "artifacts"),
            cache_dir=folder / "cache",
            actor="bench",
        )
    )
    for spec in runs:
        with ws.tracking.start_run(
            project="scale", name=spec["name"], tags=spec["tags"], capture_environment=False
        ) as run:
            run.log_params(spec["params"])
            run.log_metrics(spec["metrics"])
    ws.close()


def populate_mlflow(anchors: Path, db_url: str, runs_file: Path) -> float:
    """Write the runs in `runs_file` into experiment "scale" of MLflow's database, with MLflow's
    own library (competitors/mlflow_server_client.py populate), then ANALYZE it: the seconds."""
    python = str(competitor_python(anchors, "mlflow"))
    began = time.perf_counter()
    script = str(COMPETITORS / "mlflow_server_client.py")
    run_json([python, script, "populate", db_url, str(runs_file)])
    analyze(db_url)
    return time.perf_counter() - began
