"""A window counted in parts and merged, through the kept form of each part (`window_cache`),
reports what it reports counted whole: performance counts, distinct rows, and the codec's
refusal of anything but plain data."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.domain.performance_counts import (
    ConfidenceCounts,
    Confusion,
    ProbabilityCounts,
    Residuals,
)
from loopml.monitoring import quality
from loopml.monitoring.quality import DistinctRows
from loopml.monitoring.window_cache import decode, encode, settled_hours

HOUR_US = 3_600_000_000


def _kept(state: dict[str, object]) -> dict[str, object]:
    """A state as it comes back from the cache."""
    back = decode(encode(state))
    assert isinstance(back, dict)
    return back


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(2, 400),
    classes=st.integers(2, 4),
    cuts=st.lists(st.floats(0, 1), max_size=3),
    seed=st.integers(0, 2**32 - 1),
)
def test_classification_counts_merged_from_parts_match_the_whole(
    rows: int, classes: int, cuts: list[float], seed: int
) -> None:
    rng = np.random.default_rng(seed)
    truth = rng.choice([f"c{k}" for k in range(classes)], rows).astype(object)
    said = rng.choice([f"c{k}" for k in range(classes)], rows).astype(object)
    scores = rng.dirichlet(np.ones(classes), rows)
    bounds = [0, *sorted(round(c * rows) for c in cuts), rows]
    whole = (Confusion(), ProbabilityCounts(), ConfidenceCounts())
    whole[0].add(truth, said)
    whole[1].add(truth, scores)
    whole[2].add(scores)
    merged = (Confusion(), ProbabilityCounts(), ConfidenceCounts())
    for start, stop in itertools.pairwise(bounds):
        part = (Confusion(), ProbabilityCounts(), ConfidenceCounts())
        part[0].add(truth[start:stop], said[start:stop])
        part[1].add(truth[start:stop], scores[start:stop])
        part[2].add(scores[start:stop])
        merged[0].merge(Confusion.from_state(_kept(part[0].state())))
        merged[1].merge(ProbabilityCounts.from_state(_kept(part[1].state())))
        merged[2].merge(ConfidenceCounts.from_state(_kept(part[2].state())))
    assert merged[0].counts == whole[0].counts
    assert merged[0].metrics() == pytest.approx(whole[0].metrics())
    assert merged[1].metrics(1) == pytest.approx(whole[1].metrics(1), rel=1e-9)
    estimated, expected = merged[2].estimate(1), whole[2].estimate(1)
    assert estimated.pop("note", None) == expected.pop("note", None)
    assert estimated == pytest.approx(expected, rel=1e-9)


def test_probabilities_of_another_width_in_one_part_leave_no_probability_metric() -> None:
    first, second = ProbabilityCounts(), ProbabilityCounts()
    first.add(np.array(["a", "b"], dtype=object), np.array([[0.2, 0.8], [0.6, 0.4]]))
    second.add(np.array(["a"], dtype=object), np.array([[0.2, 0.5, 0.3]]))
    first.merge(second)
    assert not first.valid
    assert first.metrics(1) == {}


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.tuples(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6)), min_size=1,
                       max_size=200), cut=st.floats(0, 1))  # fmt: skip
def test_regression_residuals_merged_from_parts_match_the_whole(
    values: list[tuple[float, float]], cut: float
) -> None:
    truth, said = (np.array(side, dtype=np.float64) for side in zip(*values, strict=True))
    at = round(cut * truth.size)
    whole, merged = Residuals(), Residuals()
    whole.add(truth, said)
    for part_slice in (slice(0, at), slice(at, None)):
        part = Residuals()
        part.add(truth[part_slice], said[part_slice])
        merged.merge(Residuals.from_state(_kept(part.state())))
    assert merged.rows == whole.rows
    for name, value in whole.metrics().items():
        assert merged.metrics()[name] == pytest.approx(value, rel=1e-6, abs=1e-6), name


def test_distinct_rows_merged_count_exactly_until_a_part_keeps_a_sketch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(3)
    hashes = rng.integers(0, 2**64 - 1, 5_000, dtype=np.uint64, endpoint=True)
    parts = [np.concatenate([hashes[:2_000], hashes[:300]]), hashes[1_500:]]
    merged = DistinctRows()
    for part_hashes in parts:
        part = DistinctRows()
        part._take(part_hashes)
        merged.merge(DistinctRows.from_state(_kept(part.state())))
    assert (merged.count(), merged.estimated) == (5_000, False)

    monkeypatch.setattr(quality, "KEPT_HASHES", 1_000)  # each part too large to keep exactly
    merged = DistinctRows()
    for part_hashes in parts:
        part = DistinctRows()
        part._take(part_hashes)
        merged.merge(DistinctRows.from_state(_kept(part.state())))
    assert merged.estimated
    assert merged.count() == pytest.approx(5_000, rel=0.05)


@pytest.mark.parametrize(
    ("stored", "why"),
    [
        (b"", "too short"),
        (b"\x00" * 8 + b"not zstd", "not zstd"),
        ((2**40).to_bytes(8, "little") + b"x", "too large"),
    ],
)
def test_a_damaged_kept_state_is_refused(stored: bytes, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        decode(stored)


def test_only_plain_arrays_come_back_from_a_kept_state() -> None:
    import json

    def stored(document: object) -> bytes:
        return encode_raw(json.dumps(document).encode())

    assert decode(encode({"a": np.arange(3, dtype=np.uint64)}))["a"].tolist() == [0, 1, 2]
    for dtype in ("|O", "<U4", "|V8"):
        with pytest.raises((ValueError, TypeError)):
            decode(stored({"a": {"$array": dtype, "shape": [1], "data": "AAAAAAAAAAA="}}))
    with pytest.raises(ValueError, match=r"reshape|buffer size"):  # too few bytes for the shape
        decode(stored({"a": {"$array": "<f8", "shape": [4], "data": "AAAAAAAAAAA="}}))


def test_a_kept_entry_nested_past_any_state_is_passed_over(tmp_path: Path) -> None:
    from loopml.monitoring.window_cache import HourCache

    kept = HourCache(tmp_path)
    kept.put("k", {"deep": "x"})
    (tmp_path / "k.json.zst").write_bytes(encode_raw(("[" * 100_000 + "]" * 100_000).encode()))
    assert kept.get("k") is None
    assert kept.get("missing") is None


def encode_raw(text: bytes) -> bytes:
    """`text` in the cache's framing: its length, then zstd."""
    import pyarrow as pa

    return len(text).to_bytes(8, "little") + pa.compress(text, "zstd", asbytes=True)


def test_only_whole_hours_settled_before_the_run_are_kept() -> None:
    day = 1_795_737_600_000_000
    assert settled_hours(day + 1, day + 4 * HOUR_US, day + 4 * HOUR_US) == [
        day + HOUR_US,
        day + 2 * HOUR_US,
    ]  # the first hour is cut, the last ended less than a minute ago
    assert settled_hours(day, day + 2 * HOUR_US, day + 3 * HOUR_US) == [day, day + HOUR_US]
    assert settled_hours(day, day + HOUR_US - 1, day + 5 * HOUR_US) == []
