"""`loopml serve` as a real process on 127.0.0.1, for the tests that talk to it over HTTP
(imported by the test modules beside it)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from loopml.settings import Settings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def register_churn(settings: Settings, *, with_plan: bool = False) -> None:
    """Register `churn` v1: a logistic regression on tenure and monthly (and, with `with_plan`,
    a one-hot encoded text column `plan`)."""
    import numpy as np
    import pandas as pd
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from loopml.bootstrap import open_workspace

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"tenure": rng.integers(0, 72, 200).astype(float), "monthly": rng.normal(60, 15, 200)}
    )
    model = LogisticRegression()
    if with_plan:
        frame["plan"] = rng.choice(["basic", "pro"], 200)
        encode = make_column_transformer(
            (OneHotEncoder(handle_unknown="ignore"), ["plan"]), remainder="passthrough"
        )
        model = make_pipeline(encode, LogisticRegression())
    model.fit(frame, (frame["tenure"] < 20).astype(int))
    ws = open_workspace(settings)
    ws.registry.register(model, "churn", project="default", input_example=frame.head(3))
    ws.close()


@dataclass
class ServerProcess:
    url: str
    proc: subprocess.Popen[bytes]
    settings: Settings

    @property
    def port(self) -> str:
        return self.url.rsplit(":", 1)[1]

    def kill_all(self) -> None:
        """kill -9 the server and every worker it forked."""
        pattern = f"loopml serve .*--port {self.port}( |$)"
        subprocess.run(["pkill", "-9", "-f", "--", pattern], check=False)


@contextmanager
def serving(settings: Settings, *args: str) -> Iterator[ServerProcess]:
    """Run `loopml serve ARGS` on a free port against `settings`' workspace until the block
    ends; wait until it answers /health."""
    port = free_port()
    env = {
        **os.environ,
        "LOOPML_DB_URL": settings.db_url,
        "LOOPML_ARTIFACTS": settings.artifacts_url,
        "LOOPML_HOME": str(settings.home),
        "OMP_NUM_THREADS": "1",
    }
    command = [sys.executable, "-m", "loopml", "serve", *args, "--port", str(port)]
    proc = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    server = ServerProcess(f"http://127.0.0.1:{port}", proc, settings)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("the server did not start")
        yield server
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        server.kill_all()  # any worker left behind


def settings_in(home: os.PathLike[str] | str) -> Settings:
    """Embedded-workspace settings rooted at `home` (for fixtures wider than one test)."""
    from pathlib import Path

    root = Path(home)
    return Settings(
        home=root,
        db_url=f"sqlite:///{root / 'loopml.db'}",
        artifacts_url=str(root / "artifacts"),
        actor="tester",
        cache_dir=root / "cache",
    )


def logged_rows(server: ServerProcess, client_id: str, rows: int) -> Any:
    """The logged rows of `client_id` (V2's request `id`), once `rows` of them are there (the
    log flushes every second) or ten seconds have passed."""
    import pyarrow.compute as pc

    from loopml.bootstrap import prediction_log_reader

    deadline = time.monotonic() + 10
    while True:
        logged = prediction_log_reader(server.settings).read("churn", with_feedback=False)
        found = logged.filter(pc.equal(logged["client_id"], client_id))
        if found.num_rows >= rows or time.monotonic() > deadline:
            return found
        time.sleep(0.2)
