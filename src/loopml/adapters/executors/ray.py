"""The Ray executor: tasks run as Ray tasks on a local Ray it starts, or on a cluster it joins.

`import ray` happens in the functions below only, so importing loopml never imports Ray.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import secrets
import shutil
import socket
import sys
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from loopml.adapters.executors.futures import closed_error, relay
from loopml.errors import InvalidInput, Unavailable

JOIN_TIMEOUT_S = 10.0
"""How long joining a cluster waits for its address to answer before giving up."""

_RAY_LOG_LEVEL = logging.WARNING  # not Ray's "Started a local Ray instance" on every run


class RayExecutor:
    """Runs each task as a Ray task asking for one CPU; `parallelism` is the cluster's CPUs.

    `address=None` starts a local Ray (`num_cpus`, default one per CPU) that listens on the
    loopback interface only, sends no usage statistics, keeps its session files in a temporary
    folder, and is shut down by `close()`. `address="HOST:PORT"` joins a running cluster, whose
    workers must have loopml and the step's modules installed; `close()` disconnects and the
    cluster runs on. If Ray is already initialized in this process, the executor uses that
    connection and leaves it open on `close()`.

    A failed task surfaces as the exception the task raised; a worker or node that died
    surfaces as `Unavailable` (Ray does not retry the task: the pipeline's policy decides).
    """

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        if num_cpus is not None and num_cpus < 1:
            raise InvalidInput(
                f"A local Ray needs at least 1 CPU; got num_cpus={num_cpus}.",
                hint="Pass a positive number, or leave it out for one per CPU.",
            )
        self._session = _start_local(num_cpus) if address is None else _join(address)
        self._remotes: dict[Callable[[Any], Any], Any] = {}
        self._lock = threading.Lock()
        self._closed = False
        import ray

        resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
        self.parallelism = max(1, int(resources.get("CPU", 0)))

    def submit(self, fn: Callable[[Any], Any], task: Any) -> Future[Any]:
        import ray

        with self._lock:
            if self._closed:
                raise closed_error(self.name)
            remote = self._remotes.get(fn)
            if remote is None:
                remote = self._remotes[fn] = ray.remote(num_cpus=1, max_retries=0)(fn)
        source: Future[Any] = remote.remote(task).future()
        return relay(source, _translate_error)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._remotes.clear()
        self._session.end()


@dataclass
class _Session:
    """What this executor set up to reach Ray, so `end()` undoes exactly that."""

    connected: bool = False
    temp_dir: str | None = None

    def end(self) -> None:
        if self.connected:
            import ray

            ray.shutdown()
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)


def _start_local(num_cpus: int | None) -> _Session:
    _require_ray()
    _prepare_local_env()
    import ray

    if ray.is_initialized():
        return _Session()
    session = _Session(temp_dir=tempfile.mkdtemp(prefix="loopml-ray-"))
    try:
        ray.init(
            num_cpus=num_cpus or os.cpu_count() or 1,
            include_dashboard=False,
            logging_level=_RAY_LOG_LEVEL,
            _temp_dir=session.temp_dir,
        )
    except BaseException:
        session.end()
        raise
    session.connected = True
    return session


def _prepare_local_env() -> None:
    """Environment for a local Ray: no usage statistics, loopback only, no token on disk.

    Ray reads the last two when `ray` is first imported, so they are set only before that, and
    kept for the life of the process: a later local Ray must see the same ones. If something
    imported Ray first, Ray's defaults apply (the node's address, a token in ~/.ray).
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if "ray" in sys.modules:
        return
    # Ray's switch for multi-node clusters: off, the node address is 127.0.0.1 and every Ray
    # server listens there only.
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    if "RAY_AUTH_MODE" not in os.environ:
        # Token authentication with a token held in the environment, which the Ray processes
        # inherit (Ray's default writes a token to ~/.ray/auth_token).
        os.environ["RAY_AUTH_MODE"] = "token"
        os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))


def _join(address: str, timeout_s: float = JOIN_TIMEOUT_S) -> _Session:
    host, port = _parse_address(address)
    _require_ray()
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as error:
        raise _unanswered(address, timeout_s, error) from error
    import ray

    if ray.is_initialized():
        return _Session()
    try:
        ray.init(address=address, logging_level=_RAY_LOG_LEVEL)
    except (ConnectionError, TimeoutError) as error:
        raise _unanswered(address, timeout_s, error) from error
    return _Session(connected=True)


def _parse_address(address: str) -> tuple[str, int]:
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise InvalidInput(
            f"A Ray address is HOST:PORT; got {address!r}.",
            hint="Pass the head node's address, e.g. 10.0.0.5:6379, or leave it out to "
            "start a local Ray.",
        )
    return host.strip("[]"), int(port)


def _unanswered(address: str, timeout_s: float, error: BaseException) -> Unavailable:
    reason = f"nothing within {timeout_s:g} s" if isinstance(error, TimeoutError) else error
    return Unavailable(
        f"Ray at {address} did not answer ({reason}).",
        hint="Check the address, or leave --ray-address out to start a local Ray.",
    )


def _require_ray() -> None:
    if importlib.util.find_spec("ray") is None:
        raise InvalidInput(
            "The ray executor needs Ray, which is not installed.",
            hint="pip install 'loopml[ray]'",
        )


def _translate_error(error: BaseException) -> BaseException:
    """The task's own exception for a task that raised; `Unavailable` when Ray itself failed."""
    from ray import exceptions as ray_errors

    if isinstance(error, ray_errors.RayTaskError):
        cause = error.cause
        if isinstance(cause, Exception) and not isinstance(cause, ray_errors.RayError):
            cause.__cause__ = error  # keeps the remote traceback Ray recorded
            return cause
        return error
    if isinstance(error, ray_errors.RayError):
        unavailable = Unavailable(
            f"Ray could not finish the task: {type(error).__name__}: {error}",
            hint="This is retryable. If it keeps happening, check the Ray logs and the "
            "workers' memory.",
        )
        unavailable.__cause__ = error
        return unavailable
    return error
