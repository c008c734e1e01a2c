"""Importance weights and the importance-weighted drift: sums, bounds, and the fall back to the
plain drift share."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopml.domain.importance import (
    EQUAL,
    MODEL,
    effective_weights,
    importance_weights,
    weighted_drift,
)

NAMES = [f"x{i}" for i in range(8)]


def test_coefficients_count_by_magnitude() -> None:
    weights, source = importance_weights(["a", "b", "c"], [-3.0, 1.0, 0.0])
    assert source == MODEL
    assert weights == {"a": 0.75, "b": 0.25, "c": 0.0}


@pytest.mark.parametrize(
    "values",
    [None, [1.0, 2.0], [0.0, 0.0, 0.0], [1.0, math.nan, 2.0], [1.0, math.inf, 2.0]],
    ids=["none", "wrong-length", "all-zero", "nan", "inf"],
)
def test_unusable_importances_give_equal_weights(values: list[float] | None) -> None:
    weights, source = importance_weights(["a", "b", "c"], values)
    assert source == EQUAL
    assert weights == pytest.approx({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})


def test_a_drifted_input_the_model_ignores_weighs_nothing() -> None:
    weights = {"tenure": 0.9, "monthly": 0.0, "plan": 0.1}
    compared = ["tenure", "monthly", "plan"]
    assert weighted_drift(weights, compared, {"monthly"}) == 0.0
    assert weighted_drift(weights, compared, {"tenure"}) == pytest.approx(0.9)
    assert weighted_drift(weights, ["monthly", "plan"], {"plan"}) == pytest.approx(1.0)


_weights = st.lists(st.floats(0, 100, allow_nan=False), min_size=1, max_size=len(NAMES))


@given(values=_weights, drifted=st.sets(st.sampled_from(NAMES)), dropped=st.integers(0, 3))
def test_weighted_drift_is_a_share_and_all_drifted_is_one(
    values: list[float], drifted: set[str], dropped: int
) -> None:
    names = NAMES[: len(values)]
    weights, _ = importance_weights(names, values)
    compared = names[dropped:] or names
    share = weighted_drift(weights, compared, drifted)
    assert 0.0 <= share <= 1.0
    assert sum(effective_weights(weights, compared).values()) == pytest.approx(1.0)
    assert weighted_drift(weights, compared, set(compared)) == pytest.approx(1.0)
    assert weighted_drift(weights, compared, set()) == 0.0


@given(count=st.integers(1, len(NAMES)), drifted=st.sets(st.sampled_from(NAMES)))
def test_with_equal_weights_it_is_the_drift_share(count: int, drifted: set[str]) -> None:
    names = NAMES[:count]
    weights, source = importance_weights(names, None)
    assert source == EQUAL
    share = len(drifted & set(names)) / count
    assert weighted_drift(weights, names, drifted) == pytest.approx(share)
    assert weighted_drift({}, names, drifted) == pytest.approx(share)  # no weights at all


@given(values=_weights, extra=st.sampled_from(NAMES))
def test_one_more_drifted_input_never_lowers_it(values: list[float], extra: str) -> None:
    names = NAMES[: len(values)]
    weights, _ = importance_weights(names, values)
    before = weighted_drift(weights, names, set(names[:1]))
    assert weighted_drift(weights, names, {names[0], extra}) >= before - 1e-12
