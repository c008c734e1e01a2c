"""Reading the prediction log's JSON columns: whatever a row holds, the window reads, typed as the
reference's kinds, and every value a column cannot read is null and counted where it was."""

from __future__ import annotations

import json
import math
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.monitoring.column_kinds import ROW, VECTOR, Parsed, number_text
from loopml.monitoring.json_columns import BLOCK_ROWS, read_objects, read_values

KINDS = {"n": "numeric", "c": "categorical", "t": "text"}
TYPES = {"n": pa.float64(), "c": pa.string(), "t": pa.string()}


def _column(rows: list[str | None]) -> pa.ChunkedArray:
    return pa.chunked_array([pa.array(rows, pa.string())])


def _found(parsed: Parsed) -> dict[tuple[str, str], list[int]]:
    return {(u.column, u.kind): u.rows.tolist() for u in parsed.unreadable}


def test_a_boolean_in_a_numeric_column_no_longer_stops_the_window() -> None:
    """The reproduction: Arrow refused the whole window ("changed from number to boolean")."""
    rows = [json.dumps({"n": 3, "c": "basic"})] * 5 + [json.dumps({"n": True, "c": "pro"})]
    parsed = read_objects(_column(rows), KINDS)
    assert parsed.table["n"].to_pylist() == [3.0] * 5 + [None]
    assert parsed.table["c"].to_pylist() == ["basic"] * 5 + ["pro"]
    assert _found(parsed) == {("n", "boolean"): [5]}


def test_every_kind_of_poison_is_null_and_named_by_column_and_kind() -> None:
    rows = [
        '{"n": 1, "c": "a", "t": "some words"}',
        '{"n": 10000000000000000000000000000000, "c": {"x": 1}, "t": ["a"]}',
        '{"n": "inf", "c": NaN, "t": 3}',
        '{"n": "NaN", "c": true, "t": null}',
        '{"n": NaN, "c": 1.0}',
        '{"n": Infinity, "c": 1e999}',
        '{"n": 1e999}',
        '{"n": "12.5", "c": 2}',
        '{"n": "twelve"}',
        '{"n": [1, 2]}',
        '{"n": 1, "n": 2}',
        "[1, 2]",
        "null",
        "{not json",
        "",
        None,
        '{"n": 1}\n{"n": 2}',
        '{"n": 1} {"n": 2}',
        '{"n": 7, "extra": {"deep": [1]}}',
    ]
    parsed = read_objects(_column(rows), KINDS)
    table = parsed.table
    assert table.schema.field("n").type == pa.float64()
    assert table["n"].to_pylist() == [
        *[1.0, 1e31, None, None, None, None, None, 12.5, None, None, 2.0],
        *[None] * 7,
        7.0,
    ]
    assert table["c"].to_pylist()[:8] == ["a", None, None, "true", "1", None, None, "2"]
    assert table["t"].to_pylist()[:3] == ["some words", None, "3"]
    assert _found(parsed) == {
        ("n", "non_finite"): [2, 3, 4, 5, 6],
        ("n", "text"): [8],
        ("n", "list"): [9],
        ("c", "object"): [1],
        ("c", "non_finite"): [2, 5],
        ("t", "list"): [1],
        (ROW, "not_an_object"): [11, 12],
        (ROW, "invalid_json"): [13, 14, 16, 17],
    }
    assert parsed.count == 17
    assert parsed.bad_rows().sum() == 14
    assert table["extra"].to_pylist()[-1] is None  # a column the reference lacks: never counted


def test_bytes_that_are_not_utf8_make_their_row_unreadable() -> None:
    raw = pa.array([b'{"c": "\xff\xfe"}', b'{"c": "ok"}'], pa.binary()).view(pa.string())
    parsed = read_objects(pa.chunked_array([raw]), KINDS)
    assert parsed.table["c"].to_pylist() == [None, "ok"]
    assert _found(parsed) == {(ROW, "invalid_json"): [0]}


def test_iso_dates_stay_the_text_they_were() -> None:
    parsed = read_objects(_column(['{"c": "2024-01-31", "n": 1}']), KINDS)
    assert parsed.table["c"].to_pylist() == ["2024-01-31"]


def test_a_poisoned_block_is_read_row_by_row_and_the_rest_keeps_its_place() -> None:
    rows = [json.dumps({"n": i, "c": f"k{i % 3}"}) for i in range(3 * BLOCK_ROWS)]
    rows[BLOCK_ROWS + 5] = json.dumps({"n": {"nested": 1}, "c": 4.5})
    parsed = read_objects(_column(rows), KINDS)
    expected = [float(i) for i in range(3 * BLOCK_ROWS)]
    expected[BLOCK_ROWS + 5] = None  # type: ignore[call-overload]
    assert parsed.table["n"].to_pylist() == expected
    assert parsed.table["c"][BLOCK_ROWS + 5].as_py() == "4.5"
    assert _found(parsed) == {("n", "object"): [BLOCK_ROWS + 5]}


def test_without_kinds_columns_keep_their_type_or_take_the_most_common_one() -> None:
    clean = read_objects(_column(['{"a": 1, "b": "x"}', '{"a": 2, "b": "y"}']))
    assert clean.table.schema.types == [pa.int64(), pa.string()]
    mixed = read_objects(_column(['{"a": 1}', '{"a": 2}', '{"a": "x"}', '{"a": false}']))
    assert mixed.table["a"].to_pylist() == [1.0, 2.0, None, None]
    assert _found(mixed) == {("a", "text"): [2], ("a", "boolean"): [3]}


def test_values_and_probability_vectors() -> None:
    outputs = read_values(_column(["1", None, "0", '{"label": 1}', "NaN", "true", "0"]))
    assert outputs.table["value"].to_pylist() == [1.0, None, 0.0, None, None, None, 0.0]
    assert _found(outputs) == {
        ("value", "object"): [3],
        ("value", "non_finite"): [4],
        ("value", "boolean"): [5],
    }
    vectors = read_values(
        _column(["[0.2, 0.8]", None, '[0.5, "x"]', "[0.1, null]", "[1e999, 0]", '"p"']), VECTOR
    )
    assert vectors.table["value"].to_pylist() == [[0.2, 0.8], None, None, None, None, None]
    assert {kind for _, kind in _found(vectors)} == {"not_numbers", "non_finite", "text"}
    assert vectors.count == 4


def test_numbers_read_as_one_text_whatever_their_spelling() -> None:
    text = number_text(pa.array([1, 1.0, -0.0, 2.5, 1e30, 2.0**62, 1e-7], pa.float64()))
    assert text.to_pylist() == ["1", "1", "0", "2.5", "1e+30", "4611686018427387904", "1e-7"]


# -- the property ------------------------------------------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["12", " 7 ", "-3.5e2", "inf", "NaN", "-Infinity", "basic", ""]),
    st.text(max_size=5),
)
_values = st.one_of(
    _scalars,
    st.lists(_scalars, max_size=3),
    st.dictionaries(st.text(max_size=3), _scalars, max_size=2),
)
_rows = st.one_of(
    st.dictionaries(st.sampled_from(["n", "c", "t", "x"]), _values, max_size=4).map(json.dumps),
    st.sampled_from(["[1]", "3", '"s"', "null", "{broken", "", '{"n": 1} {"n": 2}']),
    st.none(),
)


def _readable(kind: str, value: Any) -> bool:
    """The documented rule for one value, written out plainly."""
    if value is None:
        return True
    if isinstance(value, bool):
        return kind != "numeric"
    if isinstance(value, int | float):
        try:
            return math.isfinite(float(value))
        except OverflowError:
            return False
    if isinstance(value, str):
        return kind != "numeric" or _spells_a_number(value)
    return False


def _spells_a_number(text: str) -> bool:
    import pandas as pd

    number = pd.to_numeric(pd.Series([text], dtype=object), errors="coerce").iloc[0]
    return bool(math.isfinite(number))


def _expected_count(rows: list[str | None]) -> int:
    count = 0
    for row in rows:
        if row is None:
            continue
        try:
            value = json.loads(row)
        except ValueError:
            count += 1
            continue
        if not isinstance(value, dict):
            count += 1
            continue
        count += sum(not _readable(KINDS[k], v) for k, v in value.items() if k in KINDS)
    return count


@settings(max_examples=150, deadline=None)
@given(st.lists(_rows, min_size=1, max_size=8))
def test_any_rows_read_with_the_references_types_and_every_bad_value_counted(
    rows: list[str | None],
) -> None:
    parsed = read_objects(_column(rows), KINDS)
    assert parsed.table.num_rows == len(rows)
    for name, typed in TYPES.items():
        if name in parsed.table.column_names:
            assert parsed.table.schema.field(name).type == typed
    assert parsed.count == _expected_count(rows)
    for found in parsed.unreadable:  # an unreadable value is null where it was
        if found.column != ROW:
            assert all(parsed.table[found.column][int(i)].as_py() is None for i in found.rows)
    # in blocks of 3 rows (some read by Arrow, some row by row) the window reads the same
    small = _in_small_blocks(rows)
    assert small.table.select(parsed.table.column_names).equals(parsed.table)
    assert _found(small) == _found(parsed)
    # a value reads the same whatever its neighbours (the fast path and the row-by-row agree)
    for index, row in enumerate(rows):
        alone = read_objects(_column([row]), KINDS).table
        for name in KINDS:
            got = parsed.table[name][index].as_py() if name in parsed.table.column_names else None
            want = alone[name][0].as_py() if name in alone.column_names else None
            assert got == want, (row, name)  # never NaN: non-finite values read as null


def _in_small_blocks(rows: list[str | None]) -> Parsed:
    from loopml.monitoring import json_columns

    saved = json_columns.BLOCK_ROWS
    json_columns.BLOCK_ROWS = 3
    try:
        return read_objects(_column(rows), KINDS)
    finally:
        json_columns.BLOCK_ROWS = saved


@pytest.mark.parametrize("rows", [0, 1])
def test_an_empty_or_single_row_window(rows: int) -> None:
    parsed = read_objects(_column(['{"n": 1}'] * rows), KINDS)
    assert parsed.table.num_rows == rows
    assert parsed.count == 0


@settings(max_examples=100, deadline=None)
@given(st.lists(_rows, min_size=1, max_size=8), st.sampled_from([None, "numeric", "categorical"]))
def test_any_rows_or_values_read_without_kinds_and_keep_every_row(
    rows: list[str | None], kind: str | None
) -> None:
    objects = read_objects(_column(rows))
    assert objects.table.num_rows == len(rows)
    values = read_values(_column(rows), kind)
    assert values.table.num_rows == len(rows)
    column = values.table["value"]
    assert all(column[int(i)].as_py() is None for u in values.unreadable for i in u.rows)
