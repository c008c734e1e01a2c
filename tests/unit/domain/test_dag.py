"""Pipeline graphs: order, cycles, missing upstreams, downstream sets and cache keys."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.domain.dag import (
    OutputRef,
    PipelineGraph,
    StepNode,
    cache_key,
    check_graph,
    downstream,
)
from loopml.errors import InvalidInput


def _graph(*nodes: StepNode) -> PipelineGraph:
    return PipelineGraph("p", {}, nodes)


A = StepNode("a", "a")
B = StepNode("b", "b", inputs={"x": OutputRef("a")}, n_outputs=2)
C = StepNode("c", "c", inputs={"left": OutputRef("b", 0), "right": OutputRef("b", 1)})
D = StepNode("d", "d", inputs={"x": OutputRef("a")})


def test_steps_come_after_their_upstream() -> None:
    order = check_graph(_graph(C, D, B, A))
    assert order.index("a") < order.index("b") < order.index("c")
    assert order.index("a") < order.index("d")


def test_a_cycle_is_refused_naming_its_steps() -> None:
    x = StepNode("x", "x", inputs={"i": OutputRef("y")})
    y = StepNode("y", "y", inputs={"i": OutputRef("x")})
    with pytest.raises(InvalidInput, match="x, y depend on each other in a cycle"):
        check_graph(_graph(A, x, y))


@pytest.mark.parametrize(
    "node",
    [
        StepNode("z", "z", inputs={"i": OutputRef("ghost")}),
        StepNode("z", "z", inputs={"i": OutputRef("a", 1)}),
    ],
    ids=["unknown-step", "output-index-out-of-range"],
)
def test_a_missing_upstream_is_refused(node: StepNode) -> None:
    with pytest.raises(InvalidInput, match="which this pipeline does not produce"):
        check_graph(_graph(A, node))


def test_two_steps_with_one_name_are_refused() -> None:
    with pytest.raises(InvalidInput, match="names two steps alike"):
        check_graph(_graph(A, A))


def test_downstream_is_the_step_and_everything_after_it() -> None:
    graph = _graph(A, B, C, D)
    assert downstream(graph, ["b"]) == {"b", "c"}
    assert downstream(graph, ["a"]) == {"a", "b", "c", "d"}
    assert downstream(graph, ["d"]) == {"d"}


_values = st.one_of(st.integers(), st.text(max_size=8), st.floats(allow_nan=False))


@settings(max_examples=100, deadline=None)
@given(
    st.text(max_size=10),
    st.dictionaries(st.text(max_size=5), _values, max_size=4),
    st.dictionaries(st.text(max_size=5), st.text(max_size=8), max_size=3),
    st.text(min_size=1, max_size=3),
)
def test_the_cache_key_changes_with_each_part(
    source: str, params: dict[str, object], inputs: dict[str, str], extra: str
) -> None:
    key = cache_key(source, params, inputs)
    assert key == cache_key(source, dict(reversed(list(params.items()))), inputs)
    assert key != cache_key(source + extra, params, inputs)
    assert key != cache_key(source, {**params, "__new": extra}, inputs)
    assert key != cache_key(source, params, {**inputs, "__new": extra})
