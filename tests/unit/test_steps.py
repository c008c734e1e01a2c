"""Tracing pipelines: placeholders, output counts, parameters, and what a step refuses."""

from __future__ import annotations

import threading

import pytest

from loopml.errors import InvalidInput
from loopml.steps import StepOutput, pipeline, step


@step
def make(n: int = 3) -> list[int]:
    return list(range(n))


@step
def halves(values: list[int]) -> tuple[list[int], list[int]]:
    return values[::2], values[1::2]


@step
def join(left: list[int], right: list[int], sep: str = "-") -> str:
    return sep.join(map(str, left + right))


@pipeline
def flow(n: int = 3, sep: str = "-"):
    left, right = halves(make(n))
    return join(left, right, sep=sep)


def test_tracing_builds_nodes_without_running_steps() -> None:
    graph, steps = flow.trace({"n": 5})
    assert [node.name for node in graph.steps] == ["make", "halves", "join"]
    assert graph.step("make").params == {"n": 5}
    assert graph.step("halves").n_outputs == 2
    assert {arg: (ref.step, ref.index) for arg, ref in graph.step("join").inputs.items()} == {
        "left": ("halves", 0),
        "right": ("halves", 1),
    }
    assert graph.step("join").params == {"sep": "-"}
    assert set(steps) == {"make", "halves", "join"}


def test_outside_a_pipeline_steps_are_plain_functions() -> None:
    assert flow(n=4) == "0-2-1-3"


def test_repeated_calls_get_distinct_names() -> None:
    @pipeline
    def twice():
        return make(make(2))

    graph, _ = twice.trace()
    assert [node.name for node in graph.steps] == ["make", "make_2"]
    assert graph.step("make_2").inputs["n"].step == "make"


def test_a_single_output_cannot_be_unpacked() -> None:
    @pipeline
    def wrong():
        a, _b = make()
        return a

    with pytest.raises(InvalidInput, match="returns one value"):
        wrong.trace()


def test_a_placeholder_cannot_steer_the_pipeline_function() -> None:
    @pipeline
    def branching():
        values = make()
        return make() if values else None

    with pytest.raises(InvalidInput, match="only known when the pipeline runs"):
        branching.trace()


def test_parameters_must_be_json_data() -> None:
    @pipeline
    def locked():
        return join([1], [2], sep=threading.Lock())  # type: ignore[arg-type]

    with pytest.raises(InvalidInput, match="parameter 'sep' of type lock"):
        locked.trace()


def test_a_step_called_with_wrong_arguments_says_its_signature() -> None:
    @pipeline
    def bad():
        return join(1)  # type: ignore[call-arg]

    with pytest.raises(InvalidInput, match=r"join\(left"):
        bad.trace()


def test_placeholders_describe_themselves() -> None:
    from loopml.domain.dag import OutputRef

    assert repr(StepOutput(OutputRef("make", 0), 1)) == "<output 0 of step 'make'>"
