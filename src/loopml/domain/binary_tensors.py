"""The Open Inference Protocol's binary tensor data extension, as pure functions.

A request or a response may carry tensors as raw bytes after its JSON: the
`Inference-Header-Content-Length` HTTP header gives the JSON's length, and each tensor sent as
bytes has `"parameters": {"binary_data_size": N}` and no `data`; the bytes follow the JSON in
the order of those tensors. Elements are little-endian, row-major, without padding: numbers in
their datatype's size, BOOL one byte (0 or 1), BYTES a 4-byte length then the bytes. NVIDIA's
`tritonclient` sends inputs this way by default, and asks for every output this way
(`"parameters": {"binary_data_output": true}`) unless it names the outputs it wants, each with
its own `"binary_data"` flag.

`split_request` cuts a body into its JSON and each binary input's bytes (checking that the
declared sizes add up to the body, exactly); `decode_binary` reads one tensor's bytes with the
rules JSON data meets (`loopml.domain.tensor_data`): a float that is not finite, a BOOL byte
that is not 0 or 1, BYTES that are not UTF-8 or too long, are refused by row (a `BadElement`),
and a size that does not match the shape is a malformed request. `encode_binary` writes an
output tensor's bytes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from loopml.domain.column_values import MAX_TEXT_CHARS
from loopml.domain.tensor_data import NUMPY_DTYPE, BadElement
from loopml.errors import InvalidInput

Array = npt.NDArray[Any]

SIZE = "binary_data_size"


@dataclass(frozen=True)
class BinaryData:
    """A tensor's raw bytes, standing in its JSON object for `data`."""

    raw: bytes


def split_request(body: bytes, header_length: int) -> dict[str, Any]:
    """The JSON of a request whose first `header_length` bytes are JSON and the rest the
    binary inputs' bytes; each such input gets its bytes as `data` (a `BinaryData`)."""
    if not 0 <= header_length <= len(body):
        raise InvalidInput(
            f"Inference-Header-Content-Length is {header_length}, but the body has {len(body)} "
            "bytes.",
            "Give the length of the JSON that starts the body, in bytes.",
        )
    try:
        request = orjson.loads(body[:header_length])
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(
            f"The first {header_length} bytes of the body are not valid JSON: {exc}.",
            "Give the length of the JSON that starts the body, in bytes.",
        ) from None
    inputs = request.get("inputs") if isinstance(request, dict) else None
    at = header_length
    for index, item in enumerate(inputs if isinstance(inputs, list) else []):
        size = _declared_size(item, index)
        if size is None:
            continue
        if at + size > len(body):
            raise InvalidInput(
                f"Input {_label(item, index)} declares {size} bytes of binary data, but the body "
                f"holds {len(body) - at} more.",
                "Send each binary input's bytes after the JSON, in the order of the inputs.",
            )
        item["data"] = BinaryData(body[at : at + size])
        at += size
    if at != len(body):
        raise InvalidInput(
            f"The body holds {len(body) - at} bytes after the JSON and the binary inputs it "
            "declares.",
            'Give each binary input its exact size in "parameters": {"binary_data_size": N}.',
        )
    return dict(request)


def _declared_size(item: object, index: int) -> int | None:
    parameters = item.get("parameters") if isinstance(item, Mapping) else None
    if not isinstance(parameters, Mapping) or SIZE not in parameters:
        return None
    size = parameters[SIZE]
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidInput(
            f"Input {_label(item, index)} has {SIZE} {size!r}.",
            f"Give {SIZE} as the number of bytes of its data (0 or more).",
        )
    if "data" in item:  # type: ignore[operator]
        raise InvalidInput(
            f"Input {_label(item, index)} has both data and {SIZE}.",
            "Send its data either in the JSON or as binary after it, not both.",
        )
    return size


def _label(item: object, index: int) -> str:
    name = item.get("name") if isinstance(item, Mapping) else None
    return repr(name) if isinstance(name, str) else f"inputs[{index}]"


def decode_binary(
    label: str, datatype: str, shape: tuple[int, ...], raw: bytes
) -> tuple[Array, BadElement | None]:
    """A tensor's bytes as a flat array of its datatype's dtype, and the first element the
    datatype does not take (the array is then not to be used)."""
    count = math.prod(shape)
    if datatype == "BYTES":
        return _strings(label, count, raw)
    dtype = np.dtype("<u1") if datatype == "BOOL" else NUMPY_DTYPE[datatype].newbyteorder("<")
    if len(raw) != count * dtype.itemsize:
        raise InvalidInput(
            f"Input {label} has shape {list(shape)} ({count} {datatype} elements, "
            f"{count * dtype.itemsize} bytes) but {len(raw)} bytes of binary data.",
            f"Send {dtype.itemsize} bytes per element, little-endian, row-major.",
        )
    values = np.frombuffer(raw, dtype)
    if datatype == "BOOL":
        wrong = np.flatnonzero(values > 1)
        if wrong.size:
            index = int(wrong[0])
            return values, BadElement(index, f"{values[index]}, not a BOOL byte (0 or 1)")
        return values.astype(np.bool_), None
    values = values.astype(NUMPY_DTYPE[datatype])
    if values.dtype.kind == "f":
        infinite = np.flatnonzero(np.isinf(values))
        if infinite.size:
            index = int(infinite[0])
            return values, BadElement(index, f"{float(values[index])!r}, not a finite number")
    return values, None


def _strings(label: str, count: int, raw: bytes) -> tuple[Array, BadElement | None]:
    """BYTES elements: each a 4-byte little-endian length, then that many bytes of UTF-8."""
    if 4 * count > len(raw):  # checked before anything is made for them: a shape is cheap
        raise InvalidInput(
            f"Input {label} has {count} BYTES elements but {len(raw)} bytes of binary data, "
            "fewer than their lengths alone take.",
            "Send each element as a 4-byte little-endian length and then its bytes.",
        )
    values = np.empty(count, dtype=object)
    view, at = memoryview(raw), 0
    for index in range(count):  # each element's start depends on the one before
        if at + 4 > len(raw):
            raise InvalidInput(
                f"Input {label} ends after {index} of its {count} BYTES elements.",
                "Send each element as a 4-byte little-endian length and then its bytes.",
            )
        size = int.from_bytes(view[at : at + 4], "little")
        start, at = at + 4, at + 4 + size
        if at > len(raw):
            raise InvalidInput(
                f"Input {label}'s element {index} declares {size} bytes; {len(raw) - start} "
                "are left.",
                "Send each element as a 4-byte little-endian length and then its bytes.",
            )
        try:
            values[index] = str(view[start:at], "utf-8")
        except UnicodeDecodeError:
            return values, BadElement(index, "bytes that are not UTF-8 text")
        if len(values[index]) > MAX_TEXT_CHARS:
            return values, BadElement(index, f"text longer than {MAX_TEXT_CHARS:,} characters")
    if at != len(raw):
        raise InvalidInput(
            f"Input {label} has {len(raw) - at} bytes after its {count} BYTES elements.",
            "Give it the shape of the elements it holds.",
        )
    return values, None


def encode_binary(datatype: str, flat: Array) -> bytes:
    """An output tensor's elements (flat, in `datatype`, BYTES as text or None) as bytes."""
    if datatype == "BYTES":
        encoded = [b"" if value is None else str(value).encode() for value in flat.tolist()]
        return b"".join(len(value).to_bytes(4, "little") + value for value in encoded)
    if datatype == "BOOL":
        return flat.astype(np.uint8).tobytes()
    return flat.astype(NUMPY_DTYPE[datatype].newbyteorder("<")).tobytes()
