"""The one JSON encoding of loopml's records, for every edge that writes JSON: the CLI's
`--json`, the model server's answers and its prediction log, and the request bodies of the
team server's client. One function, so a record reads the same wherever it is written:

    dataclass               an object of its fields, in order (a field named `_x` is private)
    datetime, date, time    ISO 8601 text, as `isoformat()` writes it
    enum                    its value
    path                    its text
    tuple, set, frozenset   an array
    other mapping           an object; keys that are not text become text
    numpy scalar or array   a number, or an array of them
    NaN, infinities         null (JSON has neither), or refused with `finite=True`
    anything else           its `str()`

orjson writes the bytes (numpy arrays without a Python loop); the rules above for what it does
not know are `_default`'s.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, time
from enum import Enum
from pathlib import PurePath
from typing import Any

import orjson

from loopml.errors import InvalidInput

__all__ = ["jsonable", "to_json"]

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
_KEY_TYPES = (str, int, float, bool, type(None), Enum, datetime, date, time)
"""Keys orjson writes as text itself (with OPT_NON_STR_KEYS); others become their `str()`."""
_PLAIN = (str, int, type(None))
"""Values with no float inside (bool is an int): the finite check passes them by."""


def to_json(value: Any, *, indent: bool = False, finite: bool = False) -> bytes:
    """`value` as UTF-8 JSON (indented by two spaces if `indent`). NaN and infinities are
    written as null, or refused with InvalidInput naming where they are if `finite`."""
    if finite:
        _check_finite(value, "the value")
    option = _OPTIONS | (orjson.OPT_INDENT_2 if indent else 0)
    try:
        return orjson.dumps(value, default=_default, option=option)
    except orjson.JSONEncodeError:  # a key that is not text: the slower path, for those only
        keyed = _text_keys(value)
        return orjson.dumps(keyed, default=_default, option=option | orjson.OPT_NON_STR_KEYS)


def jsonable(value: Any) -> Any:
    """`value` as the plain data (dicts, lists, text, numbers, None) its JSON reads back as."""
    return orjson.loads(to_json(value))


_CONVERSIONS: tuple[tuple[type | tuple[type, ...], Callable[[Any], Any]], ...] = (
    (PurePath, str),
    ((datetime, date, time), lambda value: value.isoformat()),  # and subclasses: pandas'
    (Enum, lambda value: value.value),
    (Mapping, dict),
    ((set, frozenset, tuple, list), list),
)


def _default(value: Any) -> Any:
    """What orjson does not write itself, as something it does (see the module's table)."""
    for kinds, convert in _CONVERSIONS:
        if isinstance(value, kinds):
            return convert(value)
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return value.tolist()  # what OPT_SERIALIZE_NUMPY leaves: strided, object, complex
    return str(value)


def _fields(value: Any) -> dict[str, Any]:
    """A dataclass's public fields, as orjson writes them."""
    return {
        f.name: getattr(value, f.name)
        for f in dataclasses.fields(value)
        if not f.name.startswith("_")
    }


def _text_keys(value: Any) -> Any:
    """`value` with every mapping key orjson cannot write (a numpy number, an object) as
    text; dataclasses and mappings are opened on the way to reach the keys inside them."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = _fields(value)
    if isinstance(value, Mapping):
        return {_key(k): _text_keys(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_text_keys(v) for v in value]
    return value


def _key(key: Any) -> Any:
    if type(key).__module__ == "numpy" and hasattr(key, "item"):
        key = key.item()
    return key if isinstance(key, _KEY_TYPES) else str(key)


def _check_finite(value: Any, where: str) -> None:
    """InvalidInput if a float in `value` is NaN or infinite, naming where it is."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(
                f"{where[:1].upper()}{where[1:]} is {value}; JSON has no NaN or infinity.",
                "Send a finite number (or None for a missing one).",
            )
        return
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = _fields(value)
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        _check_finite(value.tolist(), where)
    elif isinstance(value, Mapping):
        _check_items(value.items(), where)
    elif isinstance(value, list | tuple | set | frozenset) and not _all_finite(value):
        _check_items(enumerate(value), where)


def _check_items(items: Iterable[tuple[Any, Any]], where: str) -> None:
    for key, item in items:
        if not isinstance(item, _PLAIN):
            _check_finite(item, f"{where}[{key!r}]")


def _all_finite(items: Any) -> bool:
    """True when `items` are numbers whose sum is finite, so each of them is (NaN and
    infinities carry into a sum); False sends the caller item by item (one C loop first)."""
    try:
        return math.isfinite(sum(items))
    except (TypeError, OverflowError):
        return False
