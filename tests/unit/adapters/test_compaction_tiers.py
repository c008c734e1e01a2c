"""Which files of a folder a compaction merges: the small ones, never a file far larger than
all of them together."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from loopml.adapters.prediction_log_compaction import KEEP_FACTOR, _to_merge

folders = st.dictionaries(st.text("abcdef", min_size=1, max_size=6), st.integers(1, 10**9))


@given(sizes=folders)
def test_only_files_far_larger_than_everything_below_them_are_kept(sizes: dict[str, int]) -> None:
    merged = _to_merge(sizes)
    kept = [name for name in sizes if name not in merged]
    assert len(set(merged)) == len(merged)
    assert set(merged) <= set(sizes)
    for name in kept:  # each kept file dwarfs every smaller file together
        smaller = sum(size for size in sizes.values() if size < sizes[name])
        assert sizes[name] > KEEP_FACTOR * smaller
    if merged:  # the largest merged file does not dwarf the rest of the merge
        largest = max(sizes[name] for name in merged)
        assert largest <= KEEP_FACTOR * (sum(sizes[name] for name in merged) - largest)
        assert max(sizes[n] for n in merged) <= min((sizes[n] for n in kept), default=10**10)


def test_a_day_of_late_labels_beside_a_merged_hour_merges_alone() -> None:
    assert _to_merge({"hour": 100_000, "late-1": 900, "late-2": 1_100}) == ["late-2", "late-1"]
    assert _to_merge({"hour": 100_000, "late-1": 900}) == []  # one small file: nothing to do
    assert sorted(_to_merge({"part-1": 50, "part-2": 60, "part-3": 40})) == [
        "part-1", "part-2", "part-3"
    ]  # fmt: skip
    assert sorted(_to_merge({"hour": 1_000, "late": 300})) == ["hour", "late"]
