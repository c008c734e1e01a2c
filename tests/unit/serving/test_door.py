"""The door's fast, whole-column checks agree with the value-by-value rules of
`loopml.domain.column_values` for any JSON values, and the all-numeric batch path agrees with
the column-wise one."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.domain.column_values import problem, typed
from loopml.domain.signature import ColumnType
from loopml.serving.door import typed_column
from loopml.serving.frames import batch_frame, columns_frame

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([3.0, -0.0, 2.0**63, -(2.0**63), 2.0**53 + 2, float("inf"), float("nan")])
    | st.text(max_size=6)
    | st.sampled_from(["2026-01-31", "2026-01-31T12:00:00+02:00", "31/01/2026", "inf", "NaN"])
)
_VALUES = _SCALARS | st.lists(_SCALARS, max_size=2) | st.dictionaries(st.text(max_size=2), _SCALARS)
_TYPES = st.sampled_from(list(ColumnType))


def _same(left: Any, right: Any) -> bool:
    if isinstance(left, float) and isinstance(right, float) and math.isnan(left):
        return math.isnan(right)
    return bool(left == right and type(left) is type(right))


@settings(max_examples=400, deadline=None)
@given(values=st.lists(_VALUES, min_size=1, max_size=8), column_type=_TYPES)
def test_the_fast_checks_refuse_exactly_what_the_rules_refuse(
    values: list[Any], column_type: ColumnType
) -> None:
    column = typed_column(values, column_type, "x")
    refused = {i for i, value in enumerate(values) if problem(value, column_type) is not None}
    assert set(column.problems) == refused
    for index, value in enumerate(values):
        if index in refused:
            assert column.problems[index].startswith("field 'x' is ")
            continue
        assert bool(column.nulls[index]) == (value is None)
        logged = column.logged[index]
        if column_type is ColumnType.DATETIME and value is not None:
            assert isinstance(logged, str)
            assert logged.endswith("+00:00")
        else:
            assert _same(logged, typed(value, column_type)), (value, logged)
            assert problem(logged, column_type) is None


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.none() | st.integers(-(2**60), 2**60) | st.floats(-1e6, 1e6) | st.booleans(),
            st.none()
            | st.integers(-(2**60), 2**60)
            | st.floats(allow_nan=False)
            | st.text(max_size=2),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_the_all_numeric_batch_agrees_with_the_column_wise_checks(
    rows: list[tuple[Any, Any]],
) -> None:
    signature = [("n", "integer"), ("f", "float")]
    dicts = [{"n": n, "f": f} for n, f in rows]
    fast = batch_frame(dicts, signature)
    slow = columns_frame([[n for n, _ in rows], [f for _, f in rows]], signature)
    assert fast.errors == slow.errors
    assert list(fast.kept) == list(slow.kept)
    assert fast.flags == slow.flags
    for kept, left, right in zip(fast.kept, fast.logged, slow.logged, strict=True):
        if kept:
            assert all(_same(left[k], right[k]) for k in ("n", "f")), (left, right)
    if fast.rows:
        assert np.allclose(
            fast.frame.to_numpy(dtype=float), slow.frame.to_numpy(dtype=float), equal_nan=True
        )


def test_rows_are_logged_with_the_signatures_fields_as_the_model_got_them() -> None:
    rows = [{"n": 1, "f": 2.5}, {"n": None, "f": None}]
    assert batch_frame(rows, [("n", "integer"), ("f", "float")]).logged == rows
    assert batch_frame(rows[:1], [("f", "float")]).logged == [{"f": 2.5}]  # no extra field
