"""The tail probabilities monitoring computes without `scipy.stats` agree with it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from loopml.domain import p_values

small = st.integers(0, 80)
large = st.integers(0, 2_000_000)


@given(st.lists(small, min_size=4, max_size=4) | st.lists(large, min_size=4, max_size=4))
def test_fishers_exact_p_value_is_scipys(cells: list[int]) -> None:
    table = np.array(cells).reshape(2, 2)
    expected = stats.fisher_exact(table).pvalue
    assert p_values.fisher_p_value(table) == pytest.approx(expected, rel=1e-6, abs=1e-300)


def test_a_table_without_a_choice_is_no_evidence() -> None:
    assert p_values.fisher_p_value(np.array([[0, 0], [5, 7]])) == 1.0
    assert p_values.fisher_p_value(np.array([[3, 0], [5, 0]])) == 1.0


@given(st.floats(0.0, 500.0), st.integers(1, 400))
def test_chi_square_tail_is_scipys(statistic: float, dof: int) -> None:
    expected = stats.chi2.sf(statistic, dof)
    assert p_values.chi2_sf(statistic, dof) == pytest.approx(expected, rel=1e-9, abs=1e-300)


@given(st.floats(0.0, 1.0), st.integers(1, 10**6), st.integers(1, 10**6))
def test_ks_p_value_is_scipys_asymptotic_two_sample_law(d: float, n: int, m: int) -> None:
    effective = n * m / (n + m)
    if effective < 10_000:
        expected = stats.kstwo.sf(d, max(round(effective), 1))
    else:
        expected = stats.kstwobign.sf(d * np.sqrt(effective))
    assert p_values.ks_p_value(d, n, m) == pytest.approx(expected, rel=1e-9, abs=1e-300)


@given(st.floats(1e-6, 1 - 1e-6))
def test_normal_quantile_is_scipys(level: float) -> None:
    assert p_values.normal_quantile(level) == pytest.approx(stats.norm.ppf(level), rel=1e-9)


def test_large_windows_are_tested_without_importing_scipy_stats() -> None:
    """`scipy.stats` costs about 0.6 s to import: a monitor over large windows does not pay it."""
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from loopml.domain import drift_statistics as drift\n"
        "rng = np.random.default_rng(0)\n"
        "ref = drift.summarize_numeric(rng.normal(size=50_000))\n"
        "drift.numeric_drift(ref, drift.count_numeric(ref, rng.normal(size=40_000)))\n"
        "drift.homogeneity(np.array([30_000, 20_000]), np.array([21_000, 19_000]))\n"
        "drift.homogeneity(np.array([300, 200, 100]), np.array([210, 190, 90]))\n"
        "print('scipy.stats' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
