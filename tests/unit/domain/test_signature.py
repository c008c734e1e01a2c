"""Signatures: inferred from frames, arrays and dicts; checked against incoming columns."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopml.domain.signature import (
    ColumnSpec,
    ColumnType,
    Signature,
    check_input,
    infer_signature,
)
from loopml.errors import InvalidInput

INT, FLOAT, BOOL, STR = ColumnType.INTEGER, ColumnType.FLOAT, ColumnType.BOOLEAN, ColumnType.STRING
DATE, CAT, OBJ = ColumnType.DATETIME, ColumnType.CATEGORY, ColumnType.OBJECT


def _types(columns: tuple[ColumnSpec, ...]) -> dict[str, ColumnType]:
    return {column.name: column.type for column in columns}


def test_data_frame_columns_keep_their_order_and_types() -> None:
    frame = pd.DataFrame(
        {
            "tenure": [1, 2],
            "spend": [1.5, 2.5],
            "active": [True, False],
            "plan": ["basic", "pro"],
            "region": pd.Categorical(["eu", "us"]),
            "signed_up": pd.to_datetime(["2024-01-01", "2024-02-01"]),
            "signed_up_utc": pd.to_datetime(["2024-01-01", "2024-02-01"]).tz_localize("UTC"),
            "extra": [{"a": 1}, [1]],
        }
    )

    signature = infer_signature(frame)

    assert [column.name for column in signature.inputs] == list(frame.columns)
    assert _types(signature.inputs) == {
        "tenure": INT,
        "spend": FLOAT,
        "active": BOOL,
        "plan": STR,
        "region": CAT,
        "signed_up": DATE,
        "signed_up_utc": DATE,
        "extra": OBJ,
    }
    assert signature.outputs == ()


@pytest.mark.parametrize(
    ("series", "expected"),
    [
        pytest.param(pd.Series([1, None], dtype="Int64"), INT, id="nullable-int"),
        pytest.param(pd.Series([True, None], dtype="boolean"), BOOL, id="nullable-bool"),
        pytest.param(pd.Series(["a", None], dtype="string"), STR, id="string-dtype"),
        pytest.param(pd.Series(["a", None], dtype=object), STR, id="object-strings-with-missing"),
        pytest.param(pd.Series(["a", 1], dtype=object), OBJ, id="object-mixed"),
        pytest.param(pd.Series([None, None], dtype=object), OBJ, id="object-all-missing"),
        pytest.param(pd.Series([1, 2], dtype="uint8"), INT, id="unsigned"),
        pytest.param(pd.Series([1.0, np.nan], dtype="float32"), FLOAT, id="float32"),
        pytest.param(pd.Series(pd.to_timedelta([1, 2], unit="s")), OBJ, id="timedelta"),
    ],
)
def test_data_frame_dtype_variants(series: pd.Series, expected: ColumnType) -> None:
    assert _types(infer_signature(pd.DataFrame({"x": series})).inputs) == {"x": expected}


def test_non_string_frame_column_names_become_strings() -> None:
    frame = pd.DataFrame(np.zeros((2, 2)))

    assert [column.name for column in infer_signature(frame).inputs] == ["0", "1"]


def test_unnamed_numpy_array_columns_are_numbered() -> None:
    signature = infer_signature(np.zeros((3, 4), dtype=np.int32))

    assert signature.inputs == tuple(ColumnSpec(str(i), INT) for i in range(4))


def test_numpy_object_array_columns_are_typed_by_their_values() -> None:
    array = np.array([["a", 1, 1.5], ["b", 2, 2]], dtype=object)

    assert _types(infer_signature(array).inputs) == {"0": STR, "1": INT, "2": FLOAT}


def test_numpy_one_dimensional_array_is_one_column() -> None:
    assert infer_signature(np.array([True, False])).inputs == (ColumnSpec("0", BOOL),)


def test_structured_numpy_array_uses_its_field_names() -> None:
    array = np.array([(1, 2.0)], dtype=[("tenure", "i8"), ("spend", "f8")])

    assert _types(infer_signature(array).inputs) == {"tenure": INT, "spend": FLOAT}


def test_three_dimensional_array_is_refused() -> None:
    with pytest.raises(InvalidInput, match="3-D"):
        infer_signature(np.zeros((2, 2, 2)))


def test_dict_of_lists_is_typed_by_its_values() -> None:
    example = {
        "tenure": [1, None, 3],
        "spend": [1, 2.5],
        "ratio": [1, float("nan")],
        "active": [True, False],
        "plan": ["basic", "pro"],
        "signed_up": [dt.date(2024, 1, 1), dt.datetime(2024, 1, 2, tzinfo=dt.UTC)],
        "mixed": ["a", 1],
        "empty": [],
        "array": np.array([1.0, 2.0]),
        "numpy_scalars": [np.int64(1), np.int32(2)],
    }

    assert _types(infer_signature(example).inputs) == {
        "tenure": INT,
        "spend": FLOAT,
        "ratio": FLOAT,
        "active": BOOL,
        "plan": STR,
        "signed_up": DATE,
        "mixed": OBJ,
        "empty": OBJ,
        "array": FLOAT,
        "numpy_scalars": INT,
    }


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        pytest.param(np.array([0, 1]), (ColumnSpec("prediction", INT),), id="1-d-array"),
        pytest.param(np.array([[0.5], [0.2]]), (ColumnSpec("prediction", FLOAT),), id="column"),
        pytest.param(
            np.array([[0.5, 0.5]]), (ColumnSpec("0", FLOAT), ColumnSpec("1", FLOAT)), id="2-d-array"
        ),
        pytest.param(pd.Series(["yes", "no"]), (ColumnSpec("prediction", STR),), id="series"),
        pytest.param([True, False], (ColumnSpec("prediction", BOOL),), id="list"),
        pytest.param(
            pd.DataFrame({"score": [0.1], "label": ["a"]}),
            (ColumnSpec("score", FLOAT), ColumnSpec("label", STR)),
            id="frame",
        ),
    ],
)
def test_output_example(output: object, expected: tuple[ColumnSpec, ...]) -> None:
    assert infer_signature({"x": [1]}, output).outputs == expected


@pytest.mark.parametrize(
    "example",
    [
        pytest.param("not a table", id="string"),
        pytest.param(42, id="int"),
        pytest.param([[1, 2]], id="list-of-lists"),
    ],
)
def test_unsupported_input_example_is_refused(example: object) -> None:
    with pytest.raises(InvalidInput, match="Cannot infer a signature") as caught:
        infer_signature(example)
    assert "data frame" in caught.value.hint


def test_duplicate_column_names_are_refused() -> None:
    frame = pd.DataFrame([[1, 2]], columns=["a", "a"])

    with pytest.raises(InvalidInput, match="repeat the names"):
        infer_signature(frame)


def test_check_input_reports_missing_columns_and_wrong_types() -> None:
    signature = Signature(
        inputs=(ColumnSpec("plan", STR), ColumnSpec("tenure", INT), ColumnSpec("spend", FLOAT))
    )

    problems = check_input(signature, {"tenure": "string", "spend": "float", "unused": "object"})

    assert problems == [
        "missing column 'plan'",
        "column 'tenure' is string, the model expects integer",
    ]


@pytest.mark.parametrize(
    ("expected", "given"),
    [
        pytest.param(FLOAT, INT, id="int-for-float"),
        pytest.param(STR, CAT, id="category-for-string"),
        pytest.param(CAT, STR, id="string-for-category"),
        pytest.param(OBJ, DATE, id="anything-for-object"),
    ],
)
def test_check_input_accepts_safe_substitutes(expected: ColumnType, given: ColumnType) -> None:
    assert check_input(Signature(inputs=(ColumnSpec("x", expected),)), {"x": given}) == []


@pytest.mark.parametrize(
    ("expected", "given"),
    [
        pytest.param(INT, FLOAT, id="float-for-int"),
        pytest.param(BOOL, INT, id="int-for-bool"),
        pytest.param(DATE, STR, id="string-for-datetime"),
        pytest.param(INT, "nonsense", id="unknown-type"),
    ],
)
def test_check_input_refuses_lossy_substitutes(expected: ColumnType, given: str) -> None:
    assert check_input(Signature(inputs=(ColumnSpec("x", expected),)), {"x": given}) == [
        f"column 'x' is {given}, the model expects {expected}"
    ]


def test_check_input_against_an_inferred_frame() -> None:
    signature = infer_signature(pd.DataFrame({"tenure": [1], "plan": ["basic"]}))
    incoming = infer_signature(pd.DataFrame({"tenure": ["12"]}))

    assert check_input(signature, _types(incoming.inputs)) == [
        "column 'tenure' is string, the model expects integer",
        "missing column 'plan'",
    ]


def test_to_dict_is_versioned_json() -> None:
    signature = infer_signature({"tenure": [1]}, np.array([0.5]))

    assert signature.to_dict() == {
        "schema_version": 1,
        "inputs": [{"name": "tenure", "type": "integer"}],
        "outputs": [{"name": "prediction", "type": "float"}],
    }


_names = st.text(min_size=1, max_size=20)
_columns = st.lists(
    st.tuples(_names, st.sampled_from(ColumnType)), unique_by=lambda pair: pair[0], max_size=8
).map(lambda pairs: tuple(ColumnSpec(name, kind) for name, kind in pairs))


@given(inputs=_columns, outputs=_columns)
def test_to_dict_from_dict_roundtrip_through_json(
    inputs: tuple[ColumnSpec, ...], outputs: tuple[ColumnSpec, ...]
) -> None:
    signature = Signature(inputs=inputs, outputs=outputs)

    assert Signature.from_dict(json.loads(json.dumps(signature.to_dict()))) == signature


@pytest.mark.parametrize(
    ("data", "match"),
    [
        pytest.param({"schema_version": 2, "inputs": []}, "schema_version 2", id="future"),
        pytest.param({"inputs": []}, "schema_version None", id="no-version"),
        pytest.param({"schema_version": 1, "inputs": {}}, "must be a list", id="not-a-list"),
        pytest.param(
            {"schema_version": 1, "inputs": [{"name": "x", "type": "decimal"}]},
            "type 'decimal'",
            id="unknown-type",
        ),
        pytest.param(
            {"schema_version": 1, "inputs": [{"type": "float"}]}, "not a column", id="nameless"
        ),
        pytest.param(
            {"schema_version": 1, "inputs": [{"name": "x", "type": "float"}] * 2},
            "repeat the names",
            id="duplicate",
        ),
    ],
)
def test_from_dict_refuses_malformed_data(data: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        Signature.from_dict(data)
