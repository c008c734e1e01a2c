"""The feedback check: labels of the model's output type, ids this deployment issued, looked up
in memory first, then in one read of the log, and waited for while another process may still
hold them."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.domain.request_ids import RequestIds
from loopml.serving.feedback import RecentIds, check_served, feedback_items, typed_labels
from loopml.serving.frames import RequestError

NOW_S = 1_800_000_000.0


class FakeLog:
    """A log holding `held` ids (those of `late` only from the second read on); counts reads."""

    settle_s = 2.0

    def __init__(self, held: set[str], late: set[str] | None = None) -> None:
        self.held, self.late = held, late or set()
        self.reads: list[list[str]] = []

    def served_ids(self, deployment: str, request_ids: list[str]) -> set[str]:
        self.reads.append(list(request_ids))
        visible = self.held | (self.late if len(self.reads) > 1 else set())
        return visible & set(request_ids)


def _ids(count: int, at_s: float) -> list[str]:
    return RequestIds(lambda: int(at_s * 1000), os.urandom).new(count)


def _check(recent: RecentIds, log: FakeLog, ids: list[str]) -> None:
    asyncio.run(check_served(recent, log, "churn", ids, clock_s=lambda: NOW_S))


def test_ids_issued_lately_need_no_read_of_the_log() -> None:
    recent, log = RecentIds(), FakeLog(set())
    ids = _ids(3, NOW_S)
    recent.add("churn", ids)
    _check(recent, log, ids)
    assert log.reads == []


def test_a_batch_of_older_ids_is_checked_with_one_read() -> None:
    ids = _ids(50, NOW_S - 3600)
    log = FakeLog(set(ids))
    _check(RecentIds(), log, ids)
    assert log.reads == [ids]


def test_an_old_id_nobody_issued_is_a_404_without_waiting() -> None:
    ids = _ids(2, NOW_S - 3600)
    log = FakeLog({ids[0]})
    with pytest.raises(RequestError, match=r"never served request id .*") as refused:
        _check(RecentIds(), log, ids)
    assert refused.value.status == 404
    assert ids[1] in refused.value.message
    assert len(log.reads) == 1


def test_a_young_id_another_process_still_holds_is_waited_for() -> None:
    young = _ids(1, NOW_S - 0.1)
    log = FakeLog(set(), late=set(young))
    _check(RecentIds(), log, young)
    assert len(log.reads) == 2


def test_an_id_from_the_future_is_not_waited_for() -> None:
    ahead = _ids(1, NOW_S + 120)
    log = FakeLog(set())
    with pytest.raises(RequestError, match="never served"):
        _check(RecentIds(), log, ahead)
    assert len(log.reads) == 1


def test_ids_of_another_deployment_are_not_known_here() -> None:
    recent, log = RecentIds(), FakeLog(set())
    ids = _ids(1, NOW_S - 3600)
    recent.add("fraud", ids)
    with pytest.raises(RequestError, match="'churn' never served"):
        _check(recent, log, ids)


def test_recent_ids_forget_the_oldest_beyond_their_limit() -> None:
    recent = RecentIds(limit=10)
    first, second = _ids(8, NOW_S), _ids(8, NOW_S + 1)
    recent.add("churn", first)
    recent.add("churn", second)
    assert recent.unknown("churn", first + second) == first


@pytest.mark.parametrize(
    ("outputs", "label", "words"),
    [
        ([("prediction", "integer")], {"a": 1}, "is an object; the model's output 'prediction'"),
        ([("prediction", "integer")], [1], "is a list"),
        ([("prediction", "integer")], "1", "is '1', a string"),
        ([("prediction", "integer")], True, "is true, a boolean"),
        ([("prediction", "integer")], 0.5, "is 0.5, a number with a fraction"),
        ([("prediction", "integer")], None, "is null"),
        ([("prediction", "string")], 1, "is 1, an integer; the model's output 'prediction'"),
        ([("prediction", "float")], False, "is false, a boolean"),
        ([], {"a": 1}, "is an object; a label is one value"),
        ([("a", "integer"), ("b", "float")], 1, "the model has 2 outputs (a, b)"),
        ([("a", "integer"), ("b", "float")], [1, "x"], "is 'x', a string; the model's output 'b'"),
    ],
)
def test_a_label_that_is_not_a_scalar_of_the_output_type_is_refused(
    outputs: list[tuple[str, str]], label: Any, words: str
) -> None:
    fine = {"integer": 1, "float": 1.5, "string": "a"}
    good = [1, 2.0] if len(outputs) > 1 else fine[outputs[0][1]] if outputs else 1
    with pytest.raises(RequestError, match="Feedback item 1: ") as refused:
        typed_labels([("r0", good), ("r1", label)], outputs)
    assert refused.value.status == 422
    assert words in refused.value.message


@pytest.mark.parametrize(
    ("outputs", "label", "kept"),
    [
        ([("prediction", "integer")], 1.0, 1),
        ([("prediction", "float")], 1, 1.0),
        ([("prediction", "string")], "churned", "churned"),
        ([("prediction", "object")], True, True),
        ([], 0.25, 0.25),
        ([("a", "integer"), ("b", "float")], [2.0, 3], [2, 3.0]),
    ],
)
def test_a_label_of_the_output_type_is_kept_as_that_type(
    outputs: list[tuple[str, str]], label: Any, kept: Any
) -> None:
    [(_, typed)] = typed_labels([("r0", label)], outputs)
    assert typed == kept
    assert type(typed) is type(kept)


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ([], 422, "no feedback items"),
        ([{"request_id": "a"}], 422, "Feedback item 0 needs 'request_id' (text) and 'label'"),
        ({"request_id": 7, "label": 1}, 422, "needs 'request_id' (text)"),
        ([{"request_id": "a", "label": 1}] * 10_001, 413, "at most 10000"),
    ],
    ids=["empty", "no-label", "id-not-text", "too-many"],
)
def test_malformed_feedback_bodies_are_refused(body: Any, status: int, words: str) -> None:
    with pytest.raises(RequestError) as refused:
        feedback_items(body)
    assert refused.value.status == status
    assert words in refused.value.message


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.booleans(), st.sampled_from(["a", "b"]), st.integers(1, 4)),
        max_size=30,
    ),
    limit=st.integers(1, 12),
)
def test_recent_ids_know_exactly_the_newest_batches_within_the_limit(
    steps: list[tuple[bool, str, int]], limit: int
) -> None:
    recent = RecentIds(limit)
    issued: list[tuple[str, list[str]]] = []  # the model: every batch, oldest first
    made = 0
    for is_check, deployment, size in steps:
        if not is_check:
            batch = [f"id{made + i}" for i in range(size)]
            made += size
            recent.add(deployment, batch)
            issued.append((deployment, batch))
            while sum(len(b) for _, b in issued) > limit and len(issued) > 1:
                issued.pop(0)
            continue
        asked = [f"id{i}" for i in range(made)]
        kept = {rid for d, batch in issued if d == deployment for rid in batch}
        assert recent.unknown(deployment, asked) == [rid for rid in asked if rid not in kept]
