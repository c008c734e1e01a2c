"""Row hashes: equal rows alike in any piece and column order, different rows apart."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from loopml.monitoring.row_hashes import row_hashes

numbers = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**63), 2**63 - 1),
)
words = st.one_of(st.none(), st.text(max_size=6))
flags = st.one_of(st.none(), st.booleans())
vectors = st.one_of(st.none(), st.lists(st.floats(-1, 1), max_size=3))
rows = st.lists(
    st.tuples(st.floats(-5, 5) | st.none(), words, flags, vectors), min_size=1, max_size=40
)


def _table(values: list[tuple[Any, ...]], order: list[str] | None = None) -> pa.Table:
    columns = {
        "x": pa.array([r[0] for r in values], pa.float64()),
        "plan": pa.array([r[1] for r in values], pa.string()),
        "promo": pa.array([r[2] for r in values], pa.bool_()),
        "proba": pa.array([r[3] for r in values], pa.list_(pa.float64())),
    }
    return pa.table({name: columns[name] for name in order or list(columns)})


def _key(value: Any) -> Any:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else value + 0.0
    if isinstance(value, list):
        return tuple(_key(v) for v in value)
    return value


@given(rows, st.integers(0, 40), st.permutations(["x", "plan", "promo", "proba"]))
def test_equal_rows_hash_alike_and_different_rows_apart(
    values: list[tuple[Any, ...]], cut: int, order: list[str]
) -> None:
    whole = row_hashes(_table(values))
    cut = min(cut, len(values))
    pieces = np.concatenate([row_hashes(_table(values[:cut], order)),
                             row_hashes(_table(values[cut:]))])  # fmt: skip
    assert np.array_equal(whole, pieces)  # a row's hash depends on it alone
    keys = [tuple(_key(v) for v in row) for row in values]
    distinct_rows = len(set(keys))
    assert len(set(whole.tolist())) == distinct_rows


@given(st.lists(numbers, min_size=1, max_size=30))
def test_numbers_hash_by_value_whatever_their_type(values: list[Any]) -> None:
    floats = [None if v is None else float(v) for v in values]
    as_floats = row_hashes(pa.table({"n": pa.array(floats, pa.float64())}))
    keys = [None if v is None else _key(v) for v in floats]
    assert len(set(as_floats.tolist())) == len(set(keys))
    ints = [v for v in values if v is None or (isinstance(v, int) and abs(v) < 2**53)]
    if ints:
        as_ints = row_hashes(pa.table({"n": pa.array(ints, pa.int64())}))
        same = row_hashes(pa.table({"n": pa.array(ints, pa.float64())}))
        assert np.array_equal(as_ints, same)  # 1 and 1.0 are one value


def test_a_null_is_neither_zero_nor_empty_text() -> None:
    hashes = row_hashes(pa.table({"n": pa.array([None, 0.0]), "t": pa.array(["", ""])}))
    assert hashes[0] != hashes[1]
    hashes = row_hashes(pa.table({"t": pa.array([None, ""], pa.string())}))
    assert hashes[0] != hashes[1]
    lists = row_hashes(pa.table({"v": pa.array([None, [], [0.0], [0.0, 0.0]])}))
    assert len(set(lists.tolist())) == 4


def test_list_order_matters_and_a_sliced_column_hashes_as_its_rows() -> None:
    column = pa.array([[0.1, 0.9], [0.9, 0.1], [0.5], [0.1, 0.9]])
    hashes = row_hashes(pa.table({"v": column}))
    assert hashes[0] != hashes[1]
    assert hashes[0] == hashes[3]
    assert row_hashes(pa.table({"v": column.slice(1)})).tolist() == hashes[1:].tolist()


def test_bytes_that_are_not_utf8_hash_without_failing() -> None:
    column = pa.array([b"\xff\xfe", b"ok", b"\xff\xfe", None], pa.binary())
    hashes = row_hashes(pa.table({"raw": column}))
    assert hashes[0] == hashes[2]
    assert len(set(hashes.tolist())) == 3
