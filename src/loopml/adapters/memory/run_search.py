"""A parsed `RunQuery` evaluated over run rows, with the SQL store's meaning: a comparison on a
metric, param or tag holds only for runs that have the key; params compare as numbers when the
value is a number; runs missing an order key come last; ties go newest first, then by id."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

from loopml.adapters.memory.database import RunRow
from loopml.domain.filters import Comparison, FieldKind, FieldRef, OrderKey, RunQuery, time_value

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
_TIME_ATTRIBUTES = {"start_time", "end_time"}
Value = float | int | str | None


def as_number(value: str) -> float | None:
    """The number a param's text is, if any (what a SQL store keeps beside it)."""
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _attribute(run: RunRow, key: str) -> Value:
    return {
        "status": run.status.value,
        "name": run.name,
        "run_id": run.id,
        "start_time": run.start_us,
        "end_time": run.end_us,
    }[key]


def _value(run: RunRow, field: FieldRef, numeric_params: bool) -> Value:
    """The field's value for `run`; None when the run does not have it."""
    if field.kind is FieldKind.ATTRIBUTES:
        return _attribute(run, field.key)
    if field.kind is FieldKind.METRICS:
        point = run.latest.get(field.key)
        return None if point is None else point.value
    found = (run.params if field.kind is FieldKind.PARAMS else run.tags).get(field.key)
    if found is not None and field.kind is FieldKind.PARAMS and numeric_params:
        return as_number(found)
    return found


def _matcher(cmp: Comparison) -> Callable[[RunRow], bool]:
    """The comparison as a test of one run (a bad time raises here, before any run is read)."""
    compare, field = _OPS[cmp.op], cmp.field
    target: Value = cmp.value
    if field.kind is FieldKind.ATTRIBUTES:
        is_time = field.key in _TIME_ATTRIBUTES
        target = time_value(field, cmp.value) if is_time else str(cmp.value)
    numeric = isinstance(cmp.value, float) and field.kind is not FieldKind.ATTRIBUTES

    def holds(run: RunRow) -> bool:
        value = _value(run, field, numeric_params=numeric)
        if value is None or isinstance(value, str) != isinstance(target, str):
            return False  # no such key, or a number against text: never a match
        return compare(value, target)

    return holds


def _ordered(runs: list[RunRow], key: OrderKey) -> list[RunRow]:
    """`runs` sorted on `key` (stably: ties keep their order), those without it last."""

    def value(run: RunRow) -> Any:
        return _value(run, key.field, numeric_params=True)

    present = [run for run in runs if value(run) is not None]
    missing = [run for run in runs if value(run) is None]
    return sorted(present, key=value, reverse=key.descending) + missing


def search(rows: list[RunRow], query: RunQuery) -> list[RunRow]:
    """The runs of `rows` that `query` selects, in its order."""
    tests = [_matcher(cmp) for cmp in query.where]
    found = [
        run
        for run in rows
        if run.project == query.project
        and (
            run.parent_id == query.parent_id
            if query.parent_id is not None
            else not (query.top_level_only and run.parent_id is not None)
        )
        and all(test(run) for test in tests)
    ]
    found.sort(key=lambda run: run.id)
    found.sort(key=lambda run: run.start_us, reverse=True)
    for key in reversed(query.order_by):  # least significant first: each sort is stable
        found = _ordered(found, key)
    return found
