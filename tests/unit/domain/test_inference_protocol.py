"""The Open Inference Protocol (V2) REST codec: request decoding, response encoding, metadata."""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from loopml.domain.inference_protocol import (
    DecodedRequest,
    RefusedValue,
    declared_rows,
    decode_infer_request,
    model_metadata,
    server_metadata,
)
from loopml.domain.inference_responses import encode_error, encode_infer_response
from loopml.errors import InvalidInput

SIGNATURE = [("age", "integer"), ("spend", "float"), ("active", "boolean"), ("plan", "string")]


def _tensor(name: str, datatype: str, shape: list[int], data: list[Any]) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape, "data": data}


def _decode(*tensors: dict[str, Any], signature: Any = SIGNATURE, **body: Any) -> DecodedRequest:
    decoded = decode_infer_request({"inputs": list(tensors), **body}, signature)
    assert isinstance(decoded, DecodedRequest), decoded
    return decoded


def _refused(*tensors: dict[str, Any], signature: Any = SIGNATURE) -> RefusedValue:
    refused = decode_infer_request({"inputs": list(tensors)}, signature)
    assert isinstance(refused, RefusedValue), refused
    return refused


def _valid_tensors() -> list[dict[str, Any]]:
    return [
        _tensor("age", "INT64", [2], [31, 45]),
        _tensor("spend", "FP64", [2, 1], [[1.5], [2.0]]),
        _tensor("active", "BOOL", [2], [True, False]),
        _tensor("plan", "BYTES", [2], ["basic", "pro"]),
    ]


def _roundtrip_json(body: dict[str, Any]) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(json.dumps(body, allow_nan=False))
    return loaded


# --- decoding: layout (a), one tensor per column ----------------------------------------------


def test_one_tensor_per_column_decodes_to_named_columns() -> None:
    decoded = _decode(
        *_valid_tensors(), id="req-1", parameters={"trace": True}, outputs=[{"name": "prediction"}]
    )
    assert decoded.id == "req-1"
    assert decoded.rows == 2
    assert decoded.parameters == {"trace": True}
    assert decoded.requested_outputs == ["prediction"]
    assert list(decoded.columns) == ["age", "spend", "active", "plan"]
    np.testing.assert_array_equal(decoded.columns["age"], [31, 45])
    np.testing.assert_array_equal(decoded.columns["spend"], [1.5, 2.0])
    assert decoded.columns["active"].dtype == np.bool_
    assert decoded.columns["plan"].tolist() == ["basic", "pro"]
    assert all(column.ndim == 1 for column in decoded.columns.values())


def test_optional_fields_default_to_none_and_empty() -> None:
    decoded = _decode(*_valid_tensors())
    assert (decoded.id, decoded.requested_outputs, decoded.parameters) == (None, None, {})


def test_inputs_the_model_does_not_take_are_kept_after_its_columns() -> None:
    decoded = _decode(_tensor("extra", "FP32", [2], [1, 2]), *_valid_tensors())
    assert list(decoded.columns) == ["age", "spend", "active", "plan", "extra"]


@pytest.mark.parametrize(
    ("datatype", "data", "dtype"),
    [
        ("BOOL", [True, False], np.bool_),
        ("UINT8", [0, 255], np.uint8),
        ("UINT16", [0, 65535], np.uint16),
        ("UINT32", [0, 2**32 - 1], np.uint32),
        ("UINT64", [2**63, 2**64 - 1], np.uint64),
        ("INT8", [-128, 127], np.int8),
        ("INT16", [-(2**15), 2**15 - 1], np.int16),
        ("INT32", [-(2**31), 2**31 - 1], np.int32),
        ("INT64", [-(2**63), 2**63 - 1], np.int64),
        ("FP16", [0.5, -2.0], np.float16),
        ("FP32", [0.25, 3], np.float32),
        ("FP64", [1e300, -1.5], np.float64),
        ("BYTES", ["a", "é"], np.object_),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_every_datatype_roundtrips(datatype: str, data: list[Any], dtype: Any) -> None:
    decoded = _decode(_tensor("x", datatype, [2], data), signature=[("x", "object")])
    column = decoded.columns["x"]
    assert column.dtype == dtype
    assert column.tolist() == data
    tensor = encode_infer_response("m", "1", decoded.columns, None)["outputs"][0]
    assert tensor == _tensor("x", datatype, [2], data)


def test_nested_and_flat_data_decode_alike() -> None:
    signature = [("x", "float")]
    nested = _decode(_tensor("x", "FP32", [3, 1], [[1.0], [2.0], [3.0]]), signature=signature)
    flat = _decode(_tensor("x", "FP32", [3, 1], [1.0, 2.0, 3.0]), signature=signature)
    np.testing.assert_array_equal(nested.columns["x"], flat.columns["x"])


def test_integers_feed_a_float_column() -> None:
    decoded = _decode(_tensor("x", "INT32", [2], [1, 2]), signature=[("x", "float")])
    assert decoded.columns["x"].dtype == np.int32


def test_null_is_a_missing_value_in_fp_and_bytes_tensors() -> None:
    decoded = _decode(
        _tensor("x", "FP32", [3], [1.0, None, 2]),
        _tensor("s", "BYTES", [3], ["a", None, "b"]),
        signature=[("x", "float"), ("s", "category")],
    )
    np.testing.assert_array_equal(decoded.columns["x"], np.array([1.0, np.nan, 2.0], np.float32))
    assert decoded.columns["s"].tolist() == ["a", None, "b"]


def test_an_all_null_fp_tensor_is_all_nan() -> None:
    decoded = _decode(_tensor("x", "FP64", [2], [None, None]), signature=[("x", "float")])
    assert np.isnan(decoded.columns["x"]).all()


def test_zero_rows_decode_to_empty_columns() -> None:
    decoded = _decode(
        _tensor("n", "INT64", [0], []),
        _tensor("s", "BYTES", [0, 1], []),
        signature=[("n", "integer"), ("s", "string")],
    )
    assert decoded.rows == 0
    assert decoded.columns["n"].dtype == np.int64
    assert decoded.columns["s"].shape == (0,)


# --- decoding: layout (b), one [n, k] tensor --------------------------------------------------


def test_one_matrix_tensor_splits_into_columns_in_signature_order() -> None:
    decoded = _decode(
        _tensor("input-0", "FP64", [2, 3], [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]),
        signature=[("a", "float"), ("b", "float"), ("c", "object")],
    )
    assert decoded.rows == 2
    assert list(decoded.columns) == ["a", "b", "c"]
    np.testing.assert_array_equal(decoded.columns["b"], [2.0, 5.0])
    np.testing.assert_array_equal(decoded.matrix, [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])


def test_a_flat_matrix_tensor_splits_row_major() -> None:
    decoded = _decode(
        _tensor("features", "INT64", [2, 2], [1, 2, 3, 4]),
        signature=[("a", "integer"), ("b", "integer")],
    )
    np.testing.assert_array_equal(decoded.columns["a"], [1, 3])


def test_a_matrix_with_the_wrong_width_names_the_columns() -> None:
    with pytest.raises(InvalidInput, match=r"'input-0'.*2 columns.*takes 3 \(a, b, c\)"):
        _decode(
            _tensor("input-0", "FP64", [1, 2], [1.0, 2.0]),
            signature=[("a", "float"), ("b", "float"), ("c", "float")],
        )


def test_a_matrix_must_feed_every_column() -> None:
    with pytest.raises(InvalidInput, match=r"'input-0' is FP64.*integer column 'b'"):
        _decode(
            _tensor("input-0", "FP64", [1, 2], [1.0, 2.0]),
            signature=[("a", "float"), ("b", "integer")],
        )


# --- decoding: errors ------------------------------------------------------------------------


def _body_error(body: Any, match: str) -> None:
    with pytest.raises(InvalidInput, match=match) as raised:
        decode_infer_request(body, SIGNATURE)
    assert raised.value.hint


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({}, 'no "inputs"'),
        ({"inputs": {}}, '"inputs" is dict'),
        ({"inputs": [], "id": 7}, '"id" is 7'),
        ({"inputs": [], "parameters": []}, '"parameters"'),
        ({"inputs": [], "outputs": [{"nom": "x"}]}, '"outputs"'),
        ({"inputs": [], "outputs": "prediction"}, '"outputs"'),
    ],
    ids=["no-inputs", "inputs-not-list", "id", "parameters", "output-name", "outputs-not-list"],
)
def test_malformed_request_bodies_are_refused(body: Any, match: str) -> None:
    _body_error(body, match)


def _broken(**changes: Any) -> list[dict[str, Any]]:
    tensors = _valid_tensors()
    tensors[1] = {**tensors[1], **changes}
    return [{k: v for k, v in tensor.items() if v is not ...} for tensor in tensors]


@pytest.mark.parametrize(
    ("tensors", "match"),
    [
        (["spend"], r"inputs\[0\] is 'spend', not an object"),
        (_broken(data=...), r"Input 'spend' lacks 'data'"),
        (_broken(shape=..., datatype=...), r"Input 'spend' lacks 'shape', 'datatype'"),
        (_broken(name=...), r"Input inputs\[1\] lacks 'name'"),
        (_broken(name=3), r"Input inputs\[1\] lacks a string name"),
        (_broken(datatype="FLOAT64"), r"'spend' has datatype 'FLOAT64'"),
        (_broken(shape=[2, -1]), r"'spend' has shape \[2, -1\]"),
        (_broken(shape="2"), r"'spend' has shape '2'"),
        (_broken(data=1.5), r"'spend' has data 1.5, not a list"),
        (
            _broken(shape=[3], data=[1.5, 2.0]),
            r"'spend' has shape \[3\] \(3 elements\) but 2 data elements",
        ),
        (_broken(shape=[2], data=[[1.5], [2.0]]), r"'spend' has data nested as \[2, 1\]"),
        (_broken(data=[[1.5], [2.0, 3.0]]), r"'spend' has nested data of uneven lengths"),
        (_broken(shape=[1], data=[1.5]), r"different row counts.*'spend': 1"),
        (_broken(shape=[1, 2], data=[1.5, 2.0]), r"'spend' has shape \[1, 2\]; a column is"),
        (_broken(datatype="BYTES", data=["a", "b"]), r"'spend' is BYTES.*float column 'spend'"),
        (_broken(name="spent"), r"lacks the model inputs \['spend'\]"),
        (_broken(name="age"), r"repeat the names \['age'\]"),
    ],
    ids=lambda value: "" if isinstance(value, list) else value,
)
def test_malformed_inputs_are_refused_naming_the_input(
    tensors: list[dict[str, Any]], match: str
) -> None:
    _body_error({"inputs": tensors}, match)


@pytest.mark.parametrize(
    ("datatype", "data", "match"),
    [
        ("INT64", [1, 2.5], r"Row 1: field 'x' is 2.5, a number; the INT64 tensor takes integers"),
        ("INT64", [1, "2"], r"Row 1: field 'x' is '2', a string; the INT64 tensor"),
        ("INT64", [1, None], r"Row 1: field 'x' is null, which a INT64 tensor cannot carry"),
        ("INT64", [1, True], r"Row 1: field 'x' is true, a boolean; the INT64 tensor"),
        ("INT64", [2**64], r"Row 0: field 'x' is 18446744073709551616, beyond INT64"),
        ("UINT8", [1, 256], r"Row 1: field 'x' is 256, beyond UINT8 \[0, 255\]"),
        ("UINT64", [-1, 2], r"Row 0: field 'x' is -1, beyond UINT64 \[0, 18446744073709551615\]"),
        ("INT8", [-129], r"Row 0: field 'x' is -129, beyond INT8 \[-128, 127\]"),
        ("BOOL", [True, 1], r"Row 1: field 'x' is 1, an integer; the BOOL tensor takes true or"),
        ("BOOL", [True, None], r"Row 1: field 'x' is null, which a BOOL tensor cannot carry"),
        ("BYTES", ["a", 1], r"Row 1: field 'x' is 1, an integer; the BYTES tensor takes strings"),
        ("BYTES", ["a", True], r"Row 1: field 'x' is true, a boolean"),
        ("BYTES", ["a", {"k": 1}], r"Row 1: field 'x' is an object"),
        ("BYTES", ["a" * 100_001], r"Row 0: field 'x' is 'a.* \(100,001 characters\), a string"),
        ("FP64", [1.5, True], r"Row 1: field 'x' is true, a boolean; the FP64 tensor takes num"),
        ("FP64", [1.5, "inf"], r"Row 1: field 'x' is 'inf', a string"),
        ("FP16", [1.0, 70000.0], r"Row 1: field 'x' is 70000.0, beyond the range of FP16"),
        ("FP32", [None, 1e300, 1.0], r"Row 1: field 'x' is 1e\+300, beyond the range of FP32"),
    ],
    ids=lambda value: value if isinstance(value, str) and " " not in value else "",
)
def test_elements_the_datatype_does_not_take_are_refused_naming_row_and_field(
    datatype: str, data: list[Any], match: str
) -> None:
    refused = _refused(_tensor("x", datatype, [len(data)], data), signature=[("x", "object")])
    assert refused.field == "x"
    assert re.search(match, refused.message), refused.message


@pytest.mark.parametrize(
    ("column", "tensor", "message"),
    [
        (
            ("age", "integer"),
            _tensor("age", "INT64", [2], [31, True]),
            "Row 1: field 'age' is true, a boolean; the model takes an integer. "
            "Send a whole number (null for a missing value).",
        ),
        (
            ("spend", "float"),
            _tensor("spend", "FP64", [2, 1], [[1.5], ["NaN"]]),
            "Row 1: field 'spend' is 'NaN', a string; the model takes a number. "
            "Send a number (null for a missing value).",
        ),
        (
            ("plan", "string"),
            _tensor("plan", "BYTES", [1], [3]),
            "Row 0: field 'plan' is 3, an integer; the model takes a string. "
            "Send the value as a JSON string (null for a missing value).",
        ),
    ],
    ids=["boolean-for-integer", "string-for-float", "number-for-string"],
)
def test_a_typed_column_refuses_with_the_same_words_as_predict(
    column: tuple[str, str], tensor: dict[str, Any], message: str
) -> None:
    assert _refused(tensor, signature=[column]).message == message


def test_a_matrix_element_is_named_by_its_row_and_column() -> None:
    signature = [("a", "float"), ("b", "float"), ("c", "float")]
    matrix = _tensor("input-0", "FP64", [2, 3], [[1.0, 2.0, 3.0], [4.0, False, 6.0]])
    refused = _refused(matrix, signature=signature)
    assert (refused.row, refused.field) == (1, "b")
    assert refused.message.startswith("Row 1: field 'b' is false, a boolean;")


def test_the_first_refused_row_is_named_across_tensors() -> None:
    refused = _refused(
        _tensor("age", "INT64", [3], [1, 2, True]),
        _tensor("spend", "FP64", [3], [1.0, "x", 2.0]),
        signature=[("age", "integer"), ("spend", "float")],
    )
    assert (refused.row, refused.field) == (1, "spend")


def test_a_structural_problem_wins_over_a_refused_value() -> None:
    with pytest.raises(InvalidInput, match="cannot feed"):
        decode_infer_request(
            {"inputs": [_tensor("age", "BYTES", [1], [True])]}, [("age", "integer")]
        )


@pytest.mark.parametrize(
    ("body", "rows"),
    [
        ({"inputs": [_tensor("a", "FP64", [400_000], [])]}, 400_000),
        ({"inputs": [{"shape": [3, 2]}, {"shape": [7]}]}, 7),
        ({"inputs": [{"shape": "7"}, "x", {"shape": [True]}]}, 0),
        ({"inputs": {}}, 0),
        ([], 0),
    ],
    ids=["declared", "largest", "unreadable", "not-a-list", "not-an-object"],
)
def test_declared_rows_reads_the_shapes_before_the_data(body: Any, rows: int) -> None:
    assert declared_rows(body) == rows


@pytest.mark.parametrize(
    ("column_type", "datatype", "data"),
    [
        ("float", "BYTES", ["1.5"]),
        ("float", "BOOL", [True]),
        ("integer", "FP64", [1.0]),
        ("boolean", "INT64", [1]),
        ("string", "INT64", [1]),
        ("category", "FP32", [1.0]),
        ("datetime", "INT64", [1]),
    ],
)
def test_a_datatype_must_feed_the_column_type(
    column_type: str, datatype: str, data: list[Any]
) -> None:
    with pytest.raises(InvalidInput, match=rf"'x' is {datatype}.*{column_type} column 'x'"):
        _decode(_tensor("x", datatype, [1], data), signature=[("x", column_type)])


def test_an_unknown_signature_type_is_refused() -> None:
    with pytest.raises(InvalidInput, match=r"column 'x' has type 'decimal'"):
        _decode(_tensor("x", "FP64", [1], [1.0]), signature=[("x", "decimal")])


# --- encoding ---------------------------------------------------------------------------------


def test_a_response_carries_the_model_the_id_and_typed_outputs() -> None:
    response = encode_infer_response(
        "churn",
        "3",
        {
            "label": np.array([True, False]),
            "count": np.array([1, 2], dtype=np.int64),
            "small": np.array([1, 2], dtype=np.int32),
            "score": np.array([[0.25, 0.75]]),
            "half": np.array([0.5], dtype=np.float32),
            "name": np.array(["a", "b"]),
            "obj": np.array(["x", None], dtype=object),
        },
        "req-1",
        {"batch": 2},
    )
    assert _roundtrip_json(response) == response
    assert {k: response[k] for k in ("model_name", "model_version", "id", "parameters")} == {
        "model_name": "churn",
        "model_version": "3",
        "id": "req-1",
        "parameters": {"batch": 2},
    }
    assert response["outputs"] == [
        _tensor("label", "BOOL", [2], [True, False]),
        _tensor("count", "INT64", [2], [1, 2]),
        _tensor("small", "INT32", [2], [1, 2]),
        _tensor("score", "FP64", [1, 2], [0.25, 0.75]),
        _tensor("half", "FP32", [1], [0.5]),
        _tensor("name", "BYTES", [2], ["a", "b"]),
        _tensor("obj", "BYTES", [2], ["x", None]),
    ]


def test_a_response_without_id_or_parameters_leaves_them_out() -> None:
    response = encode_infer_response("m", "1", {"y": np.array([1.0])}, None)
    assert set(response) == {"model_name", "model_version", "outputs"}


def test_nan_and_infinities_become_null() -> None:
    response = encode_infer_response(
        "m", "1", {"y": np.array([1.0, np.nan, np.inf, -np.inf])}, None
    )
    assert response["outputs"][0]["data"] == [1.0, None, None, None]
    json.dumps(response, allow_nan=False)


def test_missing_values_in_object_outputs_become_null() -> None:
    outputs = {"y": np.array(["a", float("nan"), None, 3], dtype=object)}
    assert encode_infer_response("m", "1", outputs, None)["outputs"][0]["data"] == [
        "a",
        None,
        None,
        "3",
    ]


def test_datetimes_and_bytes_become_strings() -> None:
    outputs = {
        "when": np.array(["2024-01-02T03:04", "NaT"], dtype="datetime64[m]"),
        "raw": np.array([b"ab", b"c"]),
    }
    tensors = encode_infer_response("m", "1", outputs, None)["outputs"]
    assert tensors[0] == _tensor("when", "BYTES", [2], ["2024-01-02T03:04", None])
    assert tensors[1] == _tensor("raw", "BYTES", [2], ["ab", "c"])


def test_an_output_without_a_v2_datatype_is_refused() -> None:
    with pytest.raises(InvalidInput, match=r"Output 'z' has dtype complex128"):
        encode_infer_response("m", "1", {"z": np.array([1j])}, None)


def test_an_error_body_holds_the_message() -> None:
    assert encode_error("Model 'churn' is not loaded.") == {"error": "Model 'churn' is not loaded."}


# --- metadata ---------------------------------------------------------------------------------


def test_server_metadata() -> None:
    assert server_metadata("loopml", "0.1.0") == {
        "name": "loopml",
        "version": "0.1.0",
        "extensions": ["binary_tensor_data"],
    }


def test_model_metadata_maps_loopml_types_to_datatypes() -> None:
    inputs = [
        ("a", "integer"),
        ("b", "float"),
        ("c", "boolean"),
        ("d", "string"),
        ("e", "category"),
        ("f", "datetime"),
        ("g", "object"),
    ]
    metadata = model_metadata("churn", ["1", "2"], "sklearn", inputs, [("prediction", "float")])
    assert metadata["name"] == "churn"
    assert metadata["versions"] == ["1", "2"]
    assert metadata["platform"] == "sklearn"
    assert [(t["name"], t["datatype"]) for t in metadata["inputs"]] == [
        ("a", "INT64"),
        ("b", "FP64"),
        ("c", "BOOL"),
        ("d", "BYTES"),
        ("e", "BYTES"),
        ("f", "BYTES"),
        ("g", "BYTES"),
    ]
    assert all(t["shape"] == [-1] for t in metadata["inputs"])
    assert metadata["outputs"] == [{"name": "prediction", "datatype": "FP64", "shape": [-1]}]


# --- properties -------------------------------------------------------------------------------

_finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(deadline=None, max_examples=50)
@given(
    hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, max_side=6), elements=_finite)
)
def test_a_float_matrix_roundtrips_through_one_fp64_tensor(matrix: np.ndarray[Any, Any]) -> None:
    tensor = encode_infer_response("m", "1", {"input-0": matrix}, None)["outputs"][0]
    signature = [(f"c{i}", "float") for i in range(matrix.shape[1])]
    decoded = decode_infer_request(_roundtrip_json({"inputs": [tensor]}), signature)
    assert isinstance(decoded, DecodedRequest)
    assert decoded.rows == matrix.shape[0]
    for index, (name, _) in enumerate(signature):
        np.testing.assert_array_equal(decoded.columns[name], matrix[:, index])


_COLUMN_KINDS = {
    "integer": hnp.from_dtype(np.dtype(np.int64)),
    "float": _finite,
    "boolean": st.booleans(),
    "string": st.text(max_size=5),
}
_DTYPES = {"integer": np.int64, "float": np.float64, "boolean": np.bool_, "string": object}


@st.composite
def _column_dicts(draw: st.DrawFn) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    rows = draw(st.integers(0, 5))
    names = draw(st.lists(st.from_regex(r"[a-z]{1,6}", fullmatch=True), unique=True, max_size=4))
    signature = [(name, draw(st.sampled_from(sorted(_COLUMN_KINDS)))) for name in names]
    columns = {
        name: draw(st.lists(_COLUMN_KINDS[kind], min_size=rows, max_size=rows))
        for name, kind in signature
    }
    return signature, columns


@settings(deadline=None, max_examples=50)
@given(_column_dicts())
@example(([("s", "string")], {"s": ["", "\x00", "a\x00"]}))  # numpy's str dtype drops NULs
def test_one_tensor_per_column_roundtrips(drawn: tuple[list[tuple[str, str]], Any]) -> None:
    signature, columns = drawn
    arrays = {
        name: np.array(values, dtype=_DTYPES[kind])
        for (name, kind), values in zip(signature, columns.values(), strict=True)
    }
    body = encode_infer_response("m", "1", arrays, None)
    decoded = decode_infer_request(_roundtrip_json({"inputs": body["outputs"]}), signature)
    assert isinstance(decoded, DecodedRequest)
    assert list(decoded.columns) == [name for name, _ in signature]
    for name, values in columns.items():
        assert decoded.columns[name].tolist() == values


def test_uint64_values_either_side_of_2_63_decode_exactly() -> None:
    data = [1, 2**63 + 1, 2**64 - 1]
    decoded = _decode(_tensor("x", "UINT64", [3], data), signature=[("x", "object")])
    assert decoded.columns["x"].dtype == np.uint64
    assert decoded.columns["x"].tolist() == data
