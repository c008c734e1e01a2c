"""Pipeline graphs: steps wired by their outputs, checked, ordered, and keyed for the cache.

A step's cache key covers what can change its result: the hash of its source code, its
parameters, the content digests of its inputs and the serialization format version. Content,
not names: an upstream step that produces identical bytes again still hits the cache, and an edit
to the step's code misses it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from loopml.domain.hashing import Digest, digest_json
from loopml.errors import InvalidInput

SERIALIZATION_VERSION = 1
"""Bump when the way step outputs are written changes: every cache entry is then a miss."""


@dataclass(frozen=True)
class OutputRef:
    """Output `index` of step `step`."""

    step: str
    index: int = 0


@dataclass(frozen=True)
class StepNode:
    name: str
    """Unique in its pipeline: the function name, then `name_2`, `name_3` for repeated calls."""
    function: str
    params: Mapping[str, Any] = field(default_factory=dict)
    """Constant arguments (JSON-able)."""
    inputs: Mapping[str, OutputRef] = field(default_factory=dict)
    """Arguments fed by upstream outputs."""
    n_outputs: int = 1

    @property
    def upstream(self) -> frozenset[str]:
        return frozenset(ref.step for ref in self.inputs.values())


@dataclass(frozen=True)
class PipelineGraph:
    name: str
    params: Mapping[str, Any]
    steps: tuple[StepNode, ...]
    result: Any = None
    """What the pipeline returned: an OutputRef, a tuple/dict of them, or a constant."""

    def step(self, name: str) -> StepNode:
        for node in self.steps:
            if node.name == name:
                return node
        raise InvalidInput(
            f"Pipeline {self.name!r} has no step {name!r}.",
            f"Its steps are: {', '.join(n.name for n in self.steps)}.",
        )


def check_graph(graph: PipelineGraph) -> list[str]:
    """The steps in an order where every step comes after its upstream steps.

    Raises InvalidInput naming a missing upstream output or the steps of a cycle.
    """
    nodes = {node.name: node for node in graph.steps}
    if len(nodes) != len(graph.steps):
        raise InvalidInput(
            f"Pipeline {graph.name!r} names two steps alike.",
            "Give each step call a distinct name.",
        )
    for node in graph.steps:
        for arg, ref in node.inputs.items():
            upstream = nodes.get(ref.step)
            if upstream is None or not 0 <= ref.index < upstream.n_outputs:
                raise InvalidInput(
                    f"Step {node.name!r} takes {arg!r} from {ref.step!r} output {ref.index}, "
                    "which this pipeline does not produce.",
                    "Pass outputs of steps called inside the same pipeline function.",
                )
    return _topological(nodes)


def _topological(nodes: Mapping[str, StepNode]) -> list[str]:
    waiting = {name: set(node.upstream) for name, node in nodes.items()}
    order: list[str] = []
    ready = sorted(name for name, deps in waiting.items() if not deps)
    while ready:
        name = ready.pop(0)
        order.append(name)
        for other, deps in waiting.items():
            if name in deps:
                deps.discard(name)
                if not deps and other not in order and other not in ready:
                    ready.append(other)
    if len(order) != len(nodes):
        stuck = sorted(set(nodes) - set(order))
        raise InvalidInput(
            f"The steps {', '.join(stuck)} depend on each other in a cycle.",
            "A step can only use outputs of steps called before it.",
        )
    return order


def downstream(graph: PipelineGraph, names: Iterable[str]) -> set[str]:
    """`names` and every step that depends on them, directly or not."""
    found = set(names)
    changed = True
    while changed:
        changed = False
        for node in graph.steps:
            if node.name not in found and node.upstream & found:
                found.add(node.name)
                changed = True
    return found


def cache_key(
    source_digest: str, params: Mapping[str, Any], input_digests: Mapping[str, str]
) -> Digest:
    """The identity of one step execution: same key, same outputs."""
    return digest_json(
        {
            "serialization": SERIALIZATION_VERSION,
            "source": source_digest,
            "params": dict(params),
            "inputs": dict(input_digests),
        }
    )


@dataclass(frozen=True)
class StepSpec:
    """How to execute one step: its function (cloudpickled), source digest and retry policy."""

    function: bytes
    source_digest: str
    retries: int = 0
    backoff_s: float = 1.0
    cache: bool = True
