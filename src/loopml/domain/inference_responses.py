"""The Open Inference Protocol's (V2) responses, as pure functions: an inference response in the
JSON tensor form (`encode_infer_response`: NaN, +-inf and None as `null`, datetimes and bytes as
BYTES text), and in the binary tensor data extension (`encode_binary_response`, for the outputs
a request asks as binary: `binary_outputs`); `binary_tensor` gives one output's bytes, as the
gRPC service's `raw_output_contents` carries them too."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from loopml.domain.binary_tensors import SIZE, encode_binary
from loopml.domain.tensor_data import NUMPY_DTYPE
from loopml.errors import InvalidInput

Array = npt.NDArray[Any]

_DATATYPE_BY_DTYPE = {dtype: name for name, dtype in NUMPY_DTYPE.items() if name != "BYTES"}
_TO_STR = np.frompyfunc(str, 1, 1)
"""str() of each element of an object array (numpy's str dtype would drop trailing NULs)."""
_NONE = np.array(None, dtype=object)
"""Compared against an object array, elementwise: where it holds None."""


def encode_infer_response(
    model_name: str,
    model_version: str,
    outputs: Mapping[str, Array],
    request_id: str | None,
    parameters: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A V2 inference response; NaN, +-inf and None become JSON `null`.

    Datetime arrays are written as BYTES ISO-8601 strings, bytes as UTF-8 text.
    """
    response: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request_id is not None:
        response["id"] = request_id
    if parameters:
        response["parameters"] = dict(parameters)
    response["outputs"] = [_encode_tensor(name, np.asarray(a)) for name, a in outputs.items()]
    return response


def encode_error(message: str) -> dict[str, str]:
    """The V2 error body."""
    return {"error": message}


def binary_outputs(body: Mapping[str, Any]) -> frozenset[str] | None:
    """The outputs a request wants as binary data: every one (None) when its parameters say
    `binary_data_output`, else those whose own parameters say `binary_data`."""
    parameters = body.get("parameters")
    if isinstance(parameters, Mapping) and parameters.get("binary_data_output") is True:
        return None
    outputs = body.get("outputs")
    return frozenset(
        item["name"]
        for item in (outputs if isinstance(outputs, list) else [])
        if isinstance(item, Mapping)
        and isinstance(item.get("parameters"), Mapping)
        and item["parameters"].get("binary_data") is True
        and isinstance(item.get("name"), str)
    )


def encode_binary_response(
    response: Mapping[str, Any], outputs: Mapping[str, Array], binary: frozenset[str] | None
) -> tuple[bytes, int]:
    """`encode_infer_response`'s `response` for `outputs` with the outputs named in `binary`
    (all when None) sent as bytes after the JSON: the body, and the JSON's length for the
    `Inference-Header-Content-Length` header."""
    from loopml.domain.jsonable import to_json

    entries, chunks = [], []
    for entry, (name, array) in zip(response["outputs"], outputs.items(), strict=True):
        if binary is not None and name not in binary:
            entries.append(entry)
            continue
        _, _, raw = binary_tensor(name, array)
        chunks.append(raw)
        fields = {key: value for key, value in entry.items() if key != "data"}
        entries.append({**fields, "parameters": {SIZE: len(raw)}})
    header = to_json({**response, "outputs": entries})
    return header + b"".join(chunks), len(header)


def binary_tensor(name: str, array: Any) -> tuple[str, list[int], bytes]:
    """An output tensor's datatype, shape and elements in the binary data layout; text,
    datetimes and objects as the BYTES text the JSON would carry."""
    array = np.asarray(array)
    flat = array.reshape(-1)
    if flat.dtype.kind in "biuf":
        datatype = _DATATYPE_BY_DTYPE[flat.dtype.newbyteorder("=")]
        return datatype, list(array.shape), encode_binary(datatype, flat)
    datatype, data = _encode_data(name, flat)
    return datatype, list(array.shape), encode_binary(datatype, np.asarray(data, dtype=object))


def _encode_tensor(name: str, array: Array) -> dict[str, Any]:
    datatype, data = _encode_data(name, array.reshape(-1))
    return {"name": name, "shape": list(array.shape), "datatype": datatype, "data": data}


def _encode_data(name: str, flat: Array) -> tuple[str, list[Any]]:
    kind = flat.dtype.kind
    if kind == "f":
        data = flat.astype(object)
        data[~np.isfinite(flat)] = None
        return _DATATYPE_BY_DTYPE[flat.dtype.newbyteorder("=")], data.tolist()
    if kind in "biu":
        return _DATATYPE_BY_DTYPE[flat.dtype.newbyteorder("=")], flat.tolist()
    if kind == "M":
        return "BYTES", _with_nulls(np.datetime_as_string(flat), np.isnat(flat))
    if kind == "S":
        return "BYTES", np.char.decode(flat, "utf-8").tolist()
    if kind == "U":
        return "BYTES", _with_nulls(flat, None)
    if kind == "O":
        nulls = np.equal(flat, _NONE) | np.not_equal(flat, flat)
        # str() per element: numpy's fixed-width str dtype would drop trailing NUL characters
        return "BYTES", _with_nulls(np.asarray(_TO_STR(flat), dtype=object), nulls)
    raise InvalidInput(
        f"Output {name!r} has dtype {flat.dtype}, which has no V2 datatype.",
        "Return booleans, integers, floats, strings or datetimes.",
    )


def _with_nulls(strings: Array, nulls: Array | None) -> list[Any]:
    data = strings.astype(object)
    if nulls is not None:
        data[nulls] = None
    result: list[Any] = data.tolist()
    return result
