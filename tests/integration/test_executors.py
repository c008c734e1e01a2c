"""One behavioural suite for the three executors: local, a process pool, and a local Ray.

Task functions live in `loopml.testing.executor_tasks`: spawned processes and Ray workers import
them by module name. The process pool and Ray are module-scoped, so Ray starts once (~4 s).
Without Ray installed its cases skip, unless LOOPML_REQUIRE_SERVICES=1 makes them fail.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopml.adapters.executors.factory import make_executor
from loopml.adapters.executors.local import LocalExecutor
from loopml.adapters.executors.processes import ProcessExecutor
from loopml.errors import Conflict, InvalidInput, Unavailable
from loopml.ports import Executor
from loopml.testing.executor_tasks import busy_wait, double, exit_worker, fail_with, read_text

RESULT_TIMEOUT_S = 60
BUSY_S = 0.5


def require_ray() -> None:
    """Skip without Ray, or fail when the run requires every service."""
    if importlib.util.find_spec("ray") is not None:
        return
    reason = "Ray is not installed (pip install 'loopml[ray]')"
    if os.environ.get("LOOPML_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (LOOPML_REQUIRE_SERVICES=1 forbids skipping)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def processes_executor() -> Iterator[Executor]:
    executor = ProcessExecutor(max_workers=2)
    yield executor
    executor.close()


@pytest.fixture(scope="module")
def ray_executor() -> Iterator[Executor]:
    require_ray()
    from loopml.adapters.executors.ray import RayExecutor

    executor = RayExecutor(num_cpus=2)
    yield executor
    executor.close()


@pytest.fixture(params=["local", "processes", "ray"])
def executor(request: pytest.FixtureRequest) -> Executor:
    if request.param == "local":
        return LocalExecutor()
    fixture: Executor = request.getfixturevalue(f"{request.param}_executor")
    return fixture


@pytest.fixture(params=["processes", "ray"])
def parallel_executor(request: pytest.FixtureRequest) -> Executor:
    fixture: Executor = request.getfixturevalue(f"{request.param}_executor")
    return fixture


def test_results_come_back_in_submit_order(executor: Executor) -> None:
    futures = [executor.submit(double, value) for value in range(8)]
    assert [future.result(timeout=RESULT_TIMEOUT_S) for future in futures] == list(range(0, 16, 2))


def test_a_task_error_comes_back_as_its_own_type_and_message(executor: Executor) -> None:
    future = executor.submit(fail_with, "no rows in 'train'")
    with pytest.raises(ValueError, match="no rows in 'train'") as raised:
        future.result(timeout=RESULT_TIMEOUT_S)
    assert type(raised.value) is ValueError


def test_tasks_read_files_the_parent_wrote(executor: Executor, tmp_path: Path) -> None:
    artifact = tmp_path / "artifact.txt"
    artifact.write_text("features v3", encoding="utf-8")
    future = executor.submit(read_text, str(artifact))
    assert future.result(timeout=RESULT_TIMEOUT_S) == "features v3"


def test_parallelism_is_what_the_executor_can_run_at_once(executor: Executor) -> None:
    assert executor.parallelism == {"local": 1, "processes": 2, "ray": 2}[executor.name]


def _run_two_busy_tasks(executor: Executor) -> tuple[float, bool]:
    """Wall time of two CPU-bound tasks submitted together, and whether they overlapped."""
    warm_up = [executor.submit(busy_wait, 0.05) for _ in range(2)]  # start both workers
    for future in warm_up:
        future.result(timeout=RESULT_TIMEOUT_S)
    started = time.perf_counter()
    futures = [executor.submit(busy_wait, BUSY_S) for _ in range(2)]
    (start_a, end_a), (start_b, end_b) = (f.result(timeout=RESULT_TIMEOUT_S) for f in futures)
    return time.perf_counter() - started, min(end_a, end_b) > max(start_a, start_b)


def test_cpu_bound_tasks_run_concurrently_on_parallel_executors(
    parallel_executor: Executor,
) -> None:
    wall_s, overlapped = _run_two_busy_tasks(parallel_executor)
    assert overlapped
    assert wall_s < 0.85 * 2 * BUSY_S  # clearly under the sequential 1.0 s


def test_cpu_bound_tasks_run_one_after_the_other_locally() -> None:
    wall_s, overlapped = _run_two_busy_tasks(LocalExecutor())
    assert not overlapped
    assert wall_s >= 2 * BUSY_S


def test_a_dead_worker_is_unavailable_and_the_next_task_runs(parallel_executor: Executor) -> None:
    future = parallel_executor.submit(exit_worker, 3)
    with pytest.raises(Unavailable) as raised:
        future.result(timeout=RESULT_TIMEOUT_S)
    assert raised.value.retryable
    assert raised.value.hint
    assert parallel_executor.submit(double, 21).result(timeout=RESULT_TIMEOUT_S) == 42


def test_the_process_pool_starts_workers_on_the_first_submit() -> None:
    before = len(multiprocessing.active_children())
    executor = ProcessExecutor(max_workers=1)
    try:
        assert len(multiprocessing.active_children()) == before
        assert executor.submit(double, 1).result(timeout=RESULT_TIMEOUT_S) == 2
        assert len(multiprocessing.active_children()) == before + 1
    finally:
        executor.close()


def test_the_process_pool_refuses_a_function_workers_cannot_import() -> None:
    executor = ProcessExecutor(max_workers=1)
    with pytest.raises(InvalidInput, match="module-level"):
        executor.submit(lambda value: value, 1)
    executor.close()


@pytest.mark.parametrize("make", [LocalExecutor, ProcessExecutor], ids=["local", "processes"])
def test_a_closed_executor_refuses_tasks(make: type[LocalExecutor | ProcessExecutor]) -> None:
    executor = make()
    executor.close()
    with pytest.raises(Conflict, match="closed"):
        executor.submit(double, 1)


def test_an_unreachable_ray_address_is_unavailable_within_seconds() -> None:
    require_ray()
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    started = time.perf_counter()
    with pytest.raises(Unavailable, match=f"Ray at {address} did not answer") as raised:
        make_executor("ray", ray_address=address)
    assert time.perf_counter() - started < 15
    assert raised.value.retryable
    assert "--ray-address" in raised.value.hint


def test_the_factory_makes_each_executor_by_name() -> None:
    assert isinstance(make_executor("local"), LocalExecutor)
    processes = make_executor("processes", max_workers=3)
    assert (processes.name, processes.parallelism) == ("processes", 3)
    processes.close()


@pytest.mark.parametrize(
    ("name", "ray_address", "expected"),
    [
        ("threads", None, "Choose one of: local, processes, ray"),
        ("local", "127.0.0.1:6379", "--executor ray"),
    ],
    ids=["unknown-name", "address-without-ray"],
)
def test_the_factory_rejects_what_it_cannot_make(
    name: str, ray_address: str | None, expected: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        make_executor(name, ray_address=ray_address)
    assert expected in raised.value.hint


def test_importing_the_executors_does_not_import_ray() -> None:
    code = "import sys, loopml.adapters.executors.factory; print('ray' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "False"


def test_the_ray_executor_without_ray_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "ray" else real_find_spec(name, *args),
    )
    with pytest.raises(InvalidInput, match="needs Ray") as raised:
        make_executor("ray")
    assert raised.value.hint == "pip install 'loopml[ray]'"
