"""Which JSON values a column of each loopml type takes: the rules at the model server's door.

The same rules hold on every route that feeds a model (`/predict` in both body layouts,
`/explain`, the V2 protocol) and for the labels `/feedback` records:

- integer: a JSON integer (never a boolean) within the 64-bit signed range; an integral number
  such as 3.0 is taken as 3, while 3.5 is refused;
- float: a JSON number (never a boolean); JSON has no infinity or NaN, and a Python caller's
  inf or nan is refused too;
- boolean: true or false (not 0/1, not "true");
- string and category: a JSON string of at most `MAX_TEXT_CHARS` characters (numbers,
  booleans, objects and lists are refused: "3" is a string, 3 is not);
- datetime: an ISO-8601 date or date and time, as a string (read as UTC when it names no
  offset);
- object: any JSON value (the model said it takes anything);
- `null` is the one spelling of a missing value, in every column type: it is served, and the
  row is flagged `null:<column>` in the prediction log. The strings "NaN", "inf", "null" or "3"
  are not numbers.

What the server keeps is the typed value the model got (3 for 3.0 in an integer column, 3.0 for
3 in a float column), so a column of the prediction log holds values of one type.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from loopml.domain.signature import ColumnType

MAX_TEXT_CHARS = 100_000
"""Characters a string value may have (a long document); longer ones are refused."""
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

TAKES: dict[ColumnType, frozenset[type]] = {
    ColumnType.INTEGER: frozenset({int, float}),
    ColumnType.FLOAT: frozenset({int, float}),
    ColumnType.BOOLEAN: frozenset({bool}),
    ColumnType.STRING: frozenset({str}),
    ColumnType.CATEGORY: frozenset({str}),
    ColumnType.DATETIME: frozenset({str}),
}
"""The Python types of JSON values (besides None) that may fit each column type; a value of
such a type may still be refused (3.5 for an integer, a string too long). OBJECT takes all."""

EXPECTED: dict[ColumnType, tuple[str, str]] = {
    ColumnType.INTEGER: ("an integer", "Send a whole number"),
    ColumnType.FLOAT: ("a number", "Send a number"),
    ColumnType.BOOLEAN: ("true or false", "Send true or false"),
    ColumnType.STRING: ("a string", "Send the value as a JSON string"),
    ColumnType.CATEGORY: ("a category, as a string", "Send the category as a JSON string"),
    ColumnType.DATETIME: (
        "an ISO-8601 date and time, as a string",
        'Send a string such as "2026-01-31T12:00:00Z"',
    ),
    ColumnType.OBJECT: ("any JSON value", "Send a JSON value"),
}
"""What each column type takes, and how to fix a value it refuses."""

_PREVIEW_CHARS = 40


_CONTAINERS: dict[type, str] = {dict: "an object", list: "a list", tuple: "a list"}


def describe(value: Any) -> str:
    """A value as a message names it: `true, a boolean`, `'3', a string`, `an object`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{'true' if value else 'false'}, a boolean"
    if isinstance(value, int | float):
        return f"{value!r}, {'an integer' if isinstance(value, int) else 'a number'}"
    if isinstance(value, str):
        if len(value) <= _PREVIEW_CHARS:
            return f"{value!r}, a string"
        return f"{value[:_PREVIEW_CHARS]!r}... ({len(value):,} characters), a string"
    kind: type = type(value)
    return _CONTAINERS.get(kind, f"a {kind.__name__}")


def _integer_problem(value: Any) -> str | None:
    if not math.isfinite(value):
        return f"{value!r}, not a finite number"
    if isinstance(value, float) and not value.is_integer():
        return f"{value!r}, a number with a fraction"
    if not INT64_MIN <= value <= INT64_MAX:
        shown = f"{value:.6g}" if isinstance(value, float) else str(value)
        return f"{shown}, beyond the 64-bit integer range"
    return None


def _float_problem(value: Any) -> str | None:
    try:
        finite = math.isfinite(value)
    except OverflowError:  # a Python int beyond float range
        return f"{value:.6g}, beyond the range of a float"
    return None if finite else f"{value!r}, not a finite number"


def _text_problem(value: str, column_type: ColumnType) -> str | None:
    if len(value) > MAX_TEXT_CHARS:
        return f"{describe(value)} longer than {MAX_TEXT_CHARS:,} characters"
    if column_type is ColumnType.DATETIME and parse_datetime(value) is None:
        return f"{describe(value)} that is not an ISO-8601 date and time"
    return None


def problem(value: Any, column_type: ColumnType) -> str | None:
    """Why a column of `column_type` cannot take `value` (a short description of the value),
    or None when it can. None (a missing value) is always taken."""
    if value is None or column_type is ColumnType.OBJECT:
        return None
    if type(value) not in TAKES[column_type]:
        return describe(value)
    if column_type is ColumnType.INTEGER:
        return _integer_problem(value)
    if column_type is ColumnType.FLOAT:
        return _float_problem(value)
    if isinstance(value, str):
        return _text_problem(value, column_type)
    return None


def refusal(field: str, found: str, column_type: ColumnType, *, null_ok: bool = True) -> str:
    """What a refused value's message says after its place (`Row 0: `): `field 'tenure' is
    true, a boolean; the model takes an integer. Send a whole number (null for a missing
    value).` `found` is `problem`'s description of the value."""
    expected, fix = EXPECTED[column_type]
    missing = " (null for a missing value)" if null_ok else ""
    return f"field {field!r} is {found}; the model takes {expected}. {fix}{missing}."


def typed(value: Any, column_type: ColumnType) -> Any:
    """A value `problem` accepted, as the column's type holds it (3.0 -> 3 for an integer)."""
    if value is None:
        return None
    if column_type is ColumnType.INTEGER:
        return int(value)
    if column_type is ColumnType.FLOAT:
        return float(value)
    return value


def parse_datetime(text: str) -> dt.datetime | None:
    """An ISO-8601 date or date and time as an aware UTC datetime; None if `text` is not one."""
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)
