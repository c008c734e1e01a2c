"""Compile a parsed `RunQuery` into one SQL statement. Values are bound parameters, never text."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, select

from loopml.adapters.sql import tables as t
from loopml.domain.filters import Comparison, FieldKind, OrderKey, RunQuery, time_value

_OPS: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "=": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
_ATTRIBUTE_COLUMNS = {
    "status": t.runs.c.status,
    "name": t.runs.c.name,
    "run_id": t.runs.c.id,
    "start_time": t.runs.c.start_us,
    "end_time": t.runs.c.end_us,
}
_TIME_ATTRIBUTES = {"start_time", "end_time"}


def _side_table(kind: FieldKind) -> Any:
    return {
        FieldKind.METRICS: t.latest_metrics,
        FieldKind.PARAMS: t.params,
        FieldKind.TAGS: t.tags,
    }[kind]


_Joined = dict[tuple[FieldKind, str], Any]
"""Columns already joined by a comparison, by field: an order on the same field reuses them."""


def _apply_where(query: Select[Any], index: int, cmp: Comparison, joined: _Joined) -> Select[Any]:
    compare = _OPS[cmp.op]
    if cmp.field.kind is FieldKind.ATTRIBUTES:
        column = _ATTRIBUTE_COLUMNS[cmp.field.key]
        if cmp.field.key in _TIME_ATTRIBUTES:
            return query.where(compare(column, time_value(cmp.field, cmp.value)))
        return query.where(compare(column, str(cmp.value)))
    side = _side_table(cmp.field.kind).alias(f"w{index}")
    column = side.c.value
    if cmp.field.kind is FieldKind.PARAMS and isinstance(cmp.value, float):
        column = side.c.value_num
    if cmp.field.kind is not FieldKind.PARAMS or isinstance(cmp.value, float):
        joined.setdefault((cmp.field.kind, cmp.field.key), column)  # never NULL here
    on = and_(side.c.run_id == t.runs.c.id, side.c.key == cmp.field.key)
    return query.join(side, on).where(compare(column, cmp.value))


def _order_term(
    query: Select[Any], index: int, key: OrderKey, joined: _Joined
) -> tuple[Select[Any], Any]:
    """The ORDER BY term for `key`, joining its table unless a comparison already did."""
    if key.field.kind is FieldKind.ATTRIBUTES:
        column = _ATTRIBUTE_COLUMNS[key.field.key]
        return query, (column.desc() if key.descending else column.asc()).nulls_last()
    reused = joined.get((key.field.kind, key.field.key))
    if reused is not None:  # an inner join: no NULLs, and the (key, value) index gives the order
        return query, reused.desc() if key.descending else reused.asc()
    side = _side_table(key.field.kind).alias(f"o{index}")
    on = and_(side.c.run_id == t.runs.c.id, side.c.key == key.field.key)
    column = side.c.value_num if key.field.kind is FieldKind.PARAMS else side.c.value
    term = (column.desc() if key.descending else column.asc()).nulls_last()
    return query.outerjoin(side, on), term


def _filtered(query: RunQuery, joined: _Joined) -> Select[Any]:
    stmt = select(t.runs.c.id).where(t.runs.c.project == query.project)
    if query.parent_id is not None:
        stmt = stmt.where(t.runs.c.parent_id == query.parent_id)
    elif query.top_level_only:
        stmt = stmt.where(t.runs.c.parent_id.is_(None))
    for index, cmp in enumerate(query.where):
        stmt = _apply_where(stmt, index, cmp, joined)
    return stmt


def page_statement(query: RunQuery, limit: int, offset: int) -> Select[Any]:
    """Run ids of one page, in the requested order; runs missing an order key come last."""
    joined: _Joined = {}
    stmt = _filtered(query, joined)
    order: list[Any] = []
    for index, key in enumerate(query.order_by):
        stmt, term = _order_term(stmt, index, key, joined)
        order.append(term)
    order += [t.runs.c.start_us.desc(), t.runs.c.id]
    return stmt.order_by(*order).limit(limit).offset(offset)


def count_statement(query: RunQuery) -> Select[Any]:
    return select(func.count()).select_from(_filtered(query, {}).subquery())
