"""Many writers at once and a hard kill in the middle of a write, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from loopml.bootstrap import open_workspace
from loopml.domain.hashing import digest_bytes
from loopml.errors import NotFound
from loopml.settings import Settings

PROCESSES = 8
POINTS = 1500

_LOGGER = textwrap.dedent(
    """
    import sys
    from loopml.bootstrap import open_workspace
    from loopml.settings import Settings
    settings = Settings.from_env()
    workspace = open_workspace(settings)
    with workspace.tracking.start_run(project="default", name=sys.argv[1]) as run:
        for step in range({points}):
            run.log_metric("loss", step / {points}, step=step)
            if step % 25 == 24:
                run.flush()  # many small transactions: the worst case for the lock
    workspace.close()
    """
).format(points=POINTS)


def _env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "LOOPML_DB_URL": settings.db_url,
        "LOOPML_ARTIFACTS": settings.artifacts_url,
        "LOOPML_CACHE_DIR": str(settings.cache_dir),
        "LOOPML_HOME": str(settings.home),
    }


@pytest.mark.slow
def test_eight_processes_log_metrics_at_once_and_lose_nothing(
    db_url: str, make_settings: object
) -> None:
    settings = make_settings(db_url)  # type: ignore[operator]
    open_workspace(settings).close()  # schema in place; the race is on the writes
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _LOGGER, f"writer-{i}"],
            env=_env(settings),
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(PROCESSES)
    ]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * PROCESSES, "\n".join(errors)
    assert not any("locked" in e for e in errors)
    workspace = open_workspace(settings)
    runs = workspace.tracking.search(project="default", limit=100).runs
    assert len(runs) == PROCESSES
    for run in runs:
        history = workspace.tracking.metric_history(run.id, "loss")
        assert [p.step for p in history] == list(range(POINTS))
        assert run.metrics["loss"] == pytest.approx((POINTS - 1) / POINTS)
    workspace.close()


def _blob_files(artifacts: Path) -> list[Path]:
    root = artifacts / "blobs"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.mark.slow
def test_kill_9_during_data_add_leaves_nothing_half_written(
    db_url: str, make_settings: object, tmp_path: Path
) -> None:
    settings = make_settings(db_url)  # type: ignore[operator]
    open_workspace(settings).close()
    big = tmp_path / "big.bin"
    chunk = os.urandom(1 << 20)
    with big.open("wb") as out:
        for _ in range(768):
            out.write(chunk)
    proc = subprocess.Popen(
        [sys.executable, "-m", "loopml", "data", "add", str(big), "--name", "big"],
        env=_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    tmp_dir = Path(settings.artifacts_url) / "tmp"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        partial = [p for p in tmp_dir.glob("*") if p.is_file()] if tmp_dir.exists() else []
        if partial and partial[0].stat().st_size > 0:
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the add finished before it could be interrupted"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    artifacts = Path(settings.artifacts_url)
    for blob in _blob_files(artifacts):  # whatever is visible is whole and correct
        assert digest_bytes(blob.read_bytes()).endswith(blob.parent.name + blob.name)
    workspace = open_workspace(settings)
    with pytest.raises(NotFound):
        workspace.data.resolve("big", "default")
    result = workspace.data.add(big, name="big", project="default")
    assert (result.created, result.version.version) == (True, 1)
    assert result.version.total_size == big.stat().st_size
    out = tmp_path / "out"
    workspace.data.get("big@1", "default", out)
    assert (out / "big.bin").stat().st_size == big.stat().st_size
    workspace.close()


_QUIET_LOGGER = textwrap.dedent(
    """
    import sys, time
    from loopml.bootstrap import open_workspace
    from loopml.settings import Settings
    workspace = open_workspace(Settings.from_env())
    run = workspace.tracking.start_run(project="default", name="crash")
    for step in range(500):
        run.log_metric("loss", 1.0, step=step)
    print(run.id, flush=True)
    time.sleep(60)  # the loop went quiet; the process is about to be killed
    """
)


@pytest.mark.slow
def test_a_crash_loses_no_point_older_than_the_flush_interval(
    db_url: str, make_settings: object
) -> None:
    settings = make_settings(db_url)  # type: ignore[operator]
    open_workspace(settings).close()
    proc = subprocess.Popen(
        [sys.executable, "-c", _QUIET_LOGGER], env=_env(settings), stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()
    time.sleep(1.5)  # the documented bound is 1.1 s
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    workspace = open_workspace(settings)
    assert len(workspace.tracking.metric_history(run_id, "loss")) == 500
    workspace.close()
