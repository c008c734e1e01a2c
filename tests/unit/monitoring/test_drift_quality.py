"""Statistical quality of the drift decision, on seeded synthetic data: power at 10,000 rows,
no flags from tiny shifts at a million rows, calibration with no drift, and new values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from synthetic import CATEGORICAL, NUMERIC, table

from loopml import monitoring

SHIFTED = ["num_00", "num_04", "num_08", "num_13", "num_17"]  # every kind of distribution


def test_small_real_shifts_are_found_and_nothing_else_at_10k_rows() -> None:
    reference = table(10_000, seed=1)
    current = table(
        10_000,
        seed=2,
        shift_std=dict.fromkeys(SHIFTED, 0.1),
        new_category={"cat_2": 0.05},
    )
    report = monitoring.compare(reference, current)
    assert sorted(report.drifted_features) == sorted([*SHIFTED, "cat_2"])
    assert report.drift_share == pytest.approx(6 / 25)
    assert report.features["cat_2"].findings == ["new_categories:cat_2_NEW"]
    assert report.features["cat_2"].statistics["new_categories"]["cat_2_NEW"] == pytest.approx(
        0.05, abs=0.01
    )


@pytest.mark.slow
def test_a_tiny_shift_is_not_drift_at_a_million_rows() -> None:
    columns = ["num_00", "num_01", "num_02", "cat_1"]
    reference = table(1_000_000, seed=3, columns=columns)
    current = table(1_000_000, seed=4, columns=columns, shift_std=dict.fromkeys(columns[:3], 0.01))
    report = monitoring.compare(reference, current)
    assert report.drifted_features == []
    shifted = report.features["num_00"]
    assert shifted.q_value is not None
    assert shifted.q_value < 0.05  # significant, yet too small
    assert shifted.effect_value < shifted.effect_threshold


@pytest.mark.parametrize("rows", [500, 1_000, 10_000])
def test_with_no_drift_at_most_5_percent_of_columns_are_flagged(rows: int) -> None:
    flagged = {"numeric": 0, "categorical": 0}
    for seed in range(20):
        report = monitoring.compare(table(rows, seed=100 + seed), table(rows, seed=200 + seed))
        for name in report.drifted_features:
            flagged["numeric" if name in NUMERIC else "categorical"] += 1
    assert flagged["numeric"] / (20 * len(NUMERIC)) <= 0.05
    assert flagged["categorical"] / (20 * len(CATEGORICAL)) <= 0.05


def test_a_category_on_1_percent_of_rows_is_reported_by_name() -> None:
    reference = table(10_000, seed=5, columns=["cat_3"])
    current = table(10_000, seed=6, columns=["cat_3"], new_category={"cat_3": 0.01})
    feature = monitoring.compare(reference, current).features["cat_3"]
    assert feature.findings == ["new_categories:cat_3_NEW"]


def _sentences(rng: np.random.Generator, rows: int, vocabulary: int, oov: float) -> list[str]:
    weights = 1.0 / np.arange(1, vocabulary + 1) ** 1.1
    lengths = rng.integers(5, 16, rows)
    words = rng.choice(vocabulary, lengths.sum(), p=weights / weights.sum())
    tokens = np.array([f"w{i}" for i in words], dtype=object)
    novel = rng.choice(tokens.size, round(oov * tokens.size), replace=False)  # exactly `oov`
    tokens[novel] = [f"zz{i}" for i in rng.integers(0, 50, novel.size)]
    cuts = np.cumsum(lengths)[:-1]
    return [" ".join(part) for part in np.split(tokens, cuts)]


def test_out_of_vocabulary_text_is_reported() -> None:
    rng = np.random.default_rng(7)
    reference = pd.DataFrame({"review": _sentences(rng, 5_000, 2_000, 0.0)})
    clean = pd.DataFrame({"review": _sentences(rng, 5_000, 2_000, 0.0)})
    novel = pd.DataFrame({"review": _sentences(rng, 5_000, 2_000, 0.01)})
    summary = monitoring.summarize(reference)
    assert summary.kinds == {"review": "text"}
    quiet = monitoring.compare(summary, clean).features["review"]
    loud = monitoring.compare(summary, novel).features["review"]
    assert quiet.findings == []
    assert not quiet.drifted
    assert loud.drifted
    (finding,) = loud.findings
    assert finding.startswith("oov_rate:")
    assert 0.01 <= float(finding.split(":")[1]) < 0.02  # the 1% injected, plus rare words
    assert set(loud.statistics["new_tokens"]) <= {f"zz{i}" for i in range(50)}
