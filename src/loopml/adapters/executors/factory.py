"""Choosing an executor by name: the one place that knows all three."""

from __future__ import annotations

from loopml.adapters.executors.local import LocalExecutor
from loopml.adapters.executors.processes import ProcessExecutor
from loopml.adapters.executors.ray import RayExecutor
from loopml.errors import InvalidInput
from loopml.ports import Executor

EXECUTOR_NAMES = ("local", "processes", "ray")


def make_executor(
    name: str, *, ray_address: str | None = None, max_workers: int | None = None
) -> Executor:
    """The executor called `name`; `max_workers` bounds processes and a local Ray's CPUs."""
    if name not in EXECUTOR_NAMES:
        raise InvalidInput(
            f"Unknown executor {name!r}.",
            hint=f"Choose one of: {', '.join(EXECUTOR_NAMES)}.",
        )
    if ray_address is not None and name != "ray":
        raise InvalidInput(
            f"A Ray address applies to the ray executor only; got it with {name!r}.",
            hint="Pass --executor ray with --ray-address, or leave the address out.",
        )
    if name == "local":
        return LocalExecutor()
    if name == "processes":
        return ProcessExecutor(max_workers)
    return RayExecutor(ray_address, num_cpus=max_workers)
