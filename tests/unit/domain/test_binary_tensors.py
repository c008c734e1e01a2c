"""The binary tensor data extension: bytes after the JSON, read back to what they were, every
size checked against the body, and values the model cannot take refused by row."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from loopml.domain.binary_tensors import BinaryData, decode_binary, encode_binary, split_request
from loopml.domain.inference_protocol import DecodedRequest, decode_infer_request
from loopml.domain.inference_responses import (
    binary_outputs,
    encode_binary_response,
    encode_infer_response,
)
from loopml.errors import InvalidInput

NUMERIC = {"INT8": "i1", "INT32": "i4", "INT64": "i8", "UINT8": "u1", "UINT64": "u8",
           "FP32": "f4", "FP64": "f8", "BOOL": "?"}  # fmt: skip


def _body(request: dict[str, object], *chunks: bytes) -> tuple[bytes, int]:
    header = orjson.dumps(request)
    return header + b"".join(chunks), len(header)


@settings(max_examples=80, deadline=None)
@given(data=st.data(), datatype=st.sampled_from(sorted(NUMERIC)))
def test_numbers_and_booleans_come_back_as_they_were_sent(
    data: st.DataObject, datatype: str
) -> None:
    dtype = np.dtype(NUMERIC[datatype])
    elements = hnp.from_dtype(dtype, allow_nan=False, allow_infinity=False)
    values = data.draw(hnp.arrays(dtype, st.integers(0, 30), elements=elements))
    decoded, bad = decode_binary("'x'", datatype, (values.size,), encode_binary(datatype, values))
    assert bad is None
    assert decoded.dtype == dtype
    assert decoded.tolist() == values.tolist()


@settings(max_examples=80, deadline=None)
@given(texts=st.lists(st.text(max_size=20), max_size=20))
def test_text_comes_back_as_it_was_sent(texts: list[str]) -> None:
    raw = encode_binary("BYTES", np.array(texts, dtype=object))
    decoded, bad = decode_binary("'x'", "BYTES", (len(texts),), raw)
    assert bad is None
    assert decoded.tolist() == texts


def test_a_request_is_split_into_its_json_and_each_binary_inputs_bytes() -> None:
    tenure = np.array([3.0, 60.0], "<f8").tobytes()
    plan = encode_binary("BYTES", np.array(["basic", "pro"], dtype=object))
    inputs = [
        {"name": "tenure", "shape": [2], "datatype": "FP64",
         "parameters": {"binary_data_size": len(tenure)}},
        {"name": "monthly", "shape": [2], "datatype": "FP64", "data": [29.5, 80.0]},
        {"name": "plan", "shape": [2], "datatype": "BYTES",
         "parameters": {"binary_data_size": len(plan)}},
    ]  # fmt: skip
    body, length = _body({"inputs": inputs, "parameters": {"binary_data_output": True}},
                         tenure, plan)  # fmt: skip
    request = split_request(body, length)
    assert request["inputs"][0]["data"] == BinaryData(tenure)
    assert request["inputs"][2]["data"] == BinaryData(plan)
    signature = [("tenure", "float"), ("monthly", "float"), ("plan", "string")]
    decoded = decode_infer_request(request, signature)
    assert isinstance(decoded, DecodedRequest)
    assert decoded.columns["tenure"].tolist() == [3.0, 60.0]
    assert decoded.columns["plan"].tolist() == ["basic", "pro"]
    assert binary_outputs(request) is None  # every output as binary


@pytest.mark.parametrize(
    ("declared", "sent", "message"),
    [
        (16, 8, "declares 16 bytes of binary data, but the body holds 8 more"),
        (8, 16, "holds 8 bytes after the JSON"),
        (-1, 8, "binary_data_size -1"),
        (True, 8, "binary_data_size True"),
    ],
)
def test_sizes_that_disagree_with_the_body_are_refused(
    declared: object, sent: int, message: str
) -> None:
    body, length = _body(
        {"inputs": [{"name": "tenure", "shape": [1], "datatype": "FP64",
                     "parameters": {"binary_data_size": declared}}]},
        b"\x00" * sent,
    )  # fmt: skip
    with pytest.raises(InvalidInput, match=message):
        split_request(body, length)


def test_a_header_length_beyond_the_body_or_inside_the_json_is_refused() -> None:
    body, length = _body({"inputs": []})
    with pytest.raises(InvalidInput, match="but the body has"):
        split_request(body, length + 1)
    with pytest.raises(InvalidInput, match="are not valid JSON"):
        split_request(body, length - 1)


def test_an_input_with_both_data_and_binary_bytes_is_refused() -> None:
    body, length = _body(
        {"inputs": [{"name": "t", "shape": [1], "datatype": "FP64", "data": [1.0],
                     "parameters": {"binary_data_size": 8}}]},
        b"\x00" * 8,
    )  # fmt: skip
    with pytest.raises(InvalidInput, match="both data and binary_data_size"):
        split_request(body, length)


def test_a_shape_the_bytes_do_not_fill_is_refused() -> None:
    with pytest.raises(InvalidInput, match=r"3 FP64 elements, 24 bytes\) but 16 bytes"):
        decode_binary("'t'", "FP64", (3,), b"\x00" * 16)
    text = encode_binary("BYTES", np.array(["ab", "cd"], dtype=object))
    with pytest.raises(InvalidInput, match="ends after 2 of its 3 BYTES"):
        decode_binary("'p'", "BYTES", (3,), text + b"\x00\x00")
    with pytest.raises(InvalidInput, match="fewer than their lengths alone take"):
        decode_binary("'p'", "BYTES", (1, 10**12), text)  # refused before 10**12 are made
    with pytest.raises(InvalidInput, match="bytes after its 1 BYTES"):
        decode_binary("'p'", "BYTES", (1,), text)
    with pytest.raises(InvalidInput, match="declares 1000 bytes"):
        decode_binary("'p'", "BYTES", (1,), (1000).to_bytes(4, "little") + b"ab")


def test_values_a_model_cannot_take_are_refused_by_their_row() -> None:
    _, bad = decode_binary("'t'", "FP64", (3,), np.array([1.0, np.inf, 2.0]).tobytes())
    assert bad is not None
    assert (bad.index, bad.found) == (1, "inf, not a finite number")
    _, bad = decode_binary("'b'", "BOOL", (3,), bytes([0, 1, 7]))
    assert bad is not None
    assert (bad.index, bad.found) == (2, "7, not a BOOL byte (0 or 1)")
    raw = encode_binary("BYTES", np.array(["ok"], dtype=object)) + (2).to_bytes(4, "little")
    _, bad = decode_binary("'p'", "BYTES", (2,), raw + b"\xff\xfe")
    assert bad is not None
    assert (bad.index, bad.found) == (1, "bytes that are not UTF-8 text")
    nan, bad = decode_binary("'t'", "FP64", (1,), np.array([np.nan]).tobytes())
    assert bad is None  # NaN is a missing value, as null is in JSON
    assert np.isnan(nan[0])


def test_a_response_sends_the_outputs_asked_for_as_bytes_after_its_json() -> None:
    outputs = {"prediction": np.array(["yes", "no"], dtype=object),
               "probabilities": np.array([[0.2, 0.8], [0.9, 0.1]])}  # fmt: skip
    answer = encode_infer_response("churn", "3", outputs, "r1", {"request_ids": ["a", "b"]})
    body, length = encode_binary_response(answer, outputs, frozenset({"probabilities"}))
    header = orjson.loads(body[:length])
    assert header["outputs"][0] == answer["outputs"][0]  # JSON, as it was
    sent = {"name": "probabilities", "shape": [2, 2], "datatype": "FP64",
            "parameters": {"binary_data_size": 32}}  # fmt: skip
    assert header["outputs"][1] == sent
    assert np.frombuffer(body[length:], "<f8").tolist() == [0.2, 0.8, 0.9, 0.1]
    body, length = encode_binary_response(answer, outputs, None)
    texts, bad = decode_binary("'p'", "BYTES", (2,), body[length : length + 4 + 3 + 4 + 2])
    assert (texts.tolist(), bad) == (["yes", "no"], None)
    assert binary_outputs({"outputs": [{"name": "p", "parameters": {"binary_data": True}},
                                       {"name": "q"}]}) == {"p"}  # fmt: skip
    assert binary_outputs({"inputs": []}) == frozenset()
