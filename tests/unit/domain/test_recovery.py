"""The recovery of a backtest and its interval over windows: the edges mean what they say
(a policy that is the oracle recovers 1, one that is the static model 0), the interval covers
the true recovery about as often as it claims, and a gain within the noise gives no interval
rather than a meaningless one."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopml.domain.recovery import recovery, recovery_interval
from loopml.errors import InvalidInput

windows = st.integers(min_value=2, max_value=40)
seeds = st.integers(min_value=0, max_value=2**32 - 1)


def _history(seed: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Windows where the oracle is 0.01 to 0.05 ahead of the static model in every one."""
    rng = np.random.default_rng(seed)
    static = rng.uniform(0.5, 0.9, n)
    oracle = static + rng.uniform(0.01, 0.05, n)
    policy = static + rng.uniform(0.0, 1.0, n) * (oracle - static)
    rows = rng.integers(100, 1_000, n)
    return policy, static, oracle, rows


@given(seeds, windows)
def test_a_policy_that_is_the_oracle_recovers_1_and_one_that_is_the_static_model_0(
    seed: int, n: int
) -> None:
    _, static, oracle, rows = _history(seed, n)
    same = recovery_interval(oracle, static, oracle, rows, seed=seed)
    assert same.value == pytest.approx(1.0)
    assert (same.low, same.high) == (pytest.approx(1.0), pytest.approx(1.0))
    none = recovery_interval(static, static, oracle, rows, seed=seed)
    assert none.value == pytest.approx(0.0)
    assert (none.low, none.high) == (pytest.approx(0.0), pytest.approx(0.0))


@given(seeds, windows, st.floats(min_value=-0.3, max_value=0.3))
def test_the_recovery_is_the_same_for_a_lower_is_better_metric_and_under_a_shift(
    seed: int, n: int, shift: float
) -> None:
    policy, static, oracle, rows = _history(seed, n)
    plain = recovery_interval(policy, static, oracle, rows, seed=seed)
    mirrored = recovery_interval(-policy, -static, -oracle, rows, seed=seed, lower_is_better=True)
    shifted = recovery_interval(policy + shift, static + shift, oracle + shift, rows, seed=seed)
    for other in (mirrored, shifted):
        assert other.value == pytest.approx(plain.value)
        assert other.low == pytest.approx(plain.low)
        assert other.high == pytest.approx(plain.high)
    assert plain.low is not None
    assert plain.high is not None
    assert plain.value is not None
    assert plain.low <= plain.high


def test_the_recovery_weighs_windows_by_their_rows() -> None:
    # the policy keeps all the gain in a window of 900 rows and none in one of 100
    found = recovery([0.9, 0.8], [0.8, 0.8], [0.9, 0.9], [900, 100])
    assert found == pytest.approx(0.9)


def test_the_interval_covers_the_true_recovery_about_as_often_as_it_claims() -> None:
    """300 histories of 40 windows whose true recovery is 0.8 (each window's gains are that
    window's noise around the true gains): the 90% interval holds 0.8 in 82-97% of them."""
    covered = 0
    for seed in range(300):
        rng = np.random.default_rng(seed)
        static = rng.uniform(0.6, 0.8, 40)
        oracle = static + 0.02 + rng.normal(0, 0.02, 40)
        policy = static + 0.016 + rng.normal(0, 0.02, 40)
        found = recovery_interval(policy, static, oracle, np.full(40, 500), seed=seed)
        assert found.low is not None
        assert found.high is not None
        covered += found.low <= 0.8 <= found.high
    assert 0.82 * 300 <= covered <= 0.97 * 300


def test_a_gain_within_the_noise_gives_no_interval() -> None:
    # the oracle is ahead by 0.002 on average, with 0.02 of noise a window
    rng = np.random.default_rng(7)
    static = rng.uniform(0.6, 0.8, 40)
    oracle = static + 0.002 + rng.normal(0, 0.02, 40)
    policy = static + rng.normal(0, 0.02, 40)
    found = recovery_interval(policy, static, oracle, np.full(40, 500))
    assert found.undetermined_share > 0.05
    assert (found.low, found.high) == (None, None)


def test_a_clear_gain_gives_a_narrow_interval_around_the_recovery() -> None:
    rng = np.random.default_rng(3)
    static = rng.uniform(0.6, 0.8, 40)
    oracle = static + 0.08 + rng.normal(0, 0.005, 40)
    policy = static + 0.06 + rng.normal(0, 0.005, 40)
    found = recovery_interval(policy, static, oracle, np.full(40, 500))
    assert found.value == pytest.approx(0.75, abs=0.02)
    assert found.low is not None
    assert found.high is not None
    assert found.low < found.value < found.high
    assert found.high - found.low < 0.05


def test_no_gain_at_all_has_no_recovery() -> None:
    flat = [0.8, 0.8, 0.8]
    assert recovery(flat, flat, flat, [500, 500, 500]) is None
    assert recovery_interval(flat, flat, flat, [500, 500, 500]).value is None


@pytest.mark.parametrize(
    ("policy", "rows"),
    [([0.8, 0.8], [500, 500, 500]), ([0.8, float("nan"), 0.8], [500, 500, 500]), ([], [])],
)
def test_bad_windows_are_refused_with_the_fix(policy: list[float], rows: list[int]) -> None:
    with pytest.raises(InvalidInput, match=r"one value per window|not a number"):
        recovery_interval(policy, [0.7] * len(rows), [0.9] * len(rows), rows)
