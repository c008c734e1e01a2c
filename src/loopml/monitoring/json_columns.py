"""JSON text columns of the prediction log, read for a whole window at once, never failing on
what they hold.

    parsed = read_objects(served["inputs_json"], {"tenure": "numeric", "plan": "categorical"})
    parsed.table        # one column per key: numeric -> float64, categorical and text -> string
    parsed.unreadable   # every value a column could not read: (column, kind, rows)

The log may hold anything: rows written by an older server or another tool, a type that changes
from request to request, nested objects, NaN, bytes that are not UTF-8. The fast path is one Arrow
parse of the whole window (one newline-delimited buffer) and vectorised checks. When Arrow refuses
the window, it is parsed again in blocks of `BLOCK_ROWS` and only the blocks Arrow refuses are
read row by row (`loopml.monitoring.json_rows`); both paths give the same values.

What each kind of column reads is in `loopml.monitoring.column_kinds`. With no kinds given
(`kinds=None`) each column keeps the type Arrow infers (numbers, text, booleans) or, in a window
Arrow refused, the type most of its values have. With `kinds` given, columns it does not name
are read as text and never reported. A row that is not one JSON object is unreadable as a whole
(`invalid_json`, `not_an_object`; column `ROW`) and reads as nulls; a null row reads as nulls,
unreported.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from loopml.monitoring.column_kinds import (
    CATEGORICAL,
    NUMERIC,
    ROW,
    TARGETS,
    Mask,
    Parsed,
    Unreadable,
    empty_table,
    found_in,
    mask_of,
    merge,
    read_column,
)
from loopml.monitoring.json_rows import majority_kinds, parse_rows, read_rows

BLOCK_ROWS = 4_096
"""Rows per Arrow parse once the whole window was refused."""
_WRAP = "r"  # each row is parsed as {"r": ROW}: a row that is not one JSON value breaks the parse
_VALUE = ('{"value":', "}")
"""Around a JSON value, to read it as an object with one key."""


# -- reading ----------------------------------------------------------------------------------


def read_objects(column: pa.ChunkedArray, kinds: Mapping[str, str] | None = None) -> Parsed:
    """JSON objects, one per row, as a table: one column per key, typed by `kinds` (column ->
    numeric, categorical, text or vector) or inferred; never raises on the content."""
    if len(column) == 0:
        return Parsed(pa.table({}))
    if column.null_count == len(column):  # rows logged with typed columns: nothing to parse
        return Parsed(empty_table(len(column)))
    return _read(_text(column, "{}"), kinds)  # a null row stays a row, of nulls


def _text(column: pa.Array | pa.ChunkedArray, missing: str) -> pa.Array:
    lines = pc.fill_null(_one_array(column), missing)
    return lines if pa.types.is_string(lines.type) else lines.cast(pa.string())


def _read(lines: pa.Array, kinds: Mapping[str, str] | None, value: bool = False) -> Parsed:
    """The rows as objects, or each row as the `value` of one (`{"value": ROW}`)."""
    fast = _fast(lines, kinds, _VALUE if value else ("", ""))
    if fast is not None:
        return fast
    if value:
        lines = pc.binary_join_element_wise(_VALUE[0], lines, _VALUE[1], "")
    if kinds is None:
        objects, broken = parse_rows(lines)
        return read_rows(objects, broken, majority_kinds(objects), counted=None)
    return _in_blocks(lines, kinds)


def _one_array(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def read_values(column: pa.ChunkedArray, kind: str | None = None) -> Parsed:
    """JSON values, one per row (null where missing), as a one-column table (`value`)."""
    if len(column) == 0:
        return Parsed(pa.table({"value": pa.nulls(0)}))
    parsed = _read(_text(column, "null"), None if kind is None else {"value": kind}, value=True)
    table = parsed.table
    values = table["value"] if "value" in table.column_names else pa.nulls(table.num_rows)
    kept = tuple(u for u in parsed.unreadable if u.column in ("value", ROW))
    return Parsed(pa.table({"value": values}), kept)


def as_numbers(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """`column` read as numbers (float64): null where a value is none (see `numeric`)."""
    array, _ = read_column(_one_array(column), NUMERIC)
    return pa.chunked_array([array], pa.float64())


def conform(table: pa.Table, kinds: Mapping[str, str] | None) -> Parsed:
    """`table` with each column read as its kind (`loopml.monitoring.column_kinds`); with
    `kinds`, columns it does not name become text, unreported."""
    found: list[Unreadable] = []
    columns: dict[str, pa.Array] = {}
    for name in table.column_names:
        array = table[name].combine_chunks()
        kind = None if kinds is None else kinds.get(name, CATEGORICAL)
        array, problems = read_column(array, kind)
        columns[name] = array
        if kinds is None or name in kinds:
            found += found_in(name, problems)
    return Parsed(pa.table(columns) if columns else empty_table(table.num_rows), tuple(found))


def _fast(
    lines: pa.Array, kinds: Mapping[str, str] | None, around: tuple[str, str] = ("", "")
) -> Parsed | None:
    """`lines` (each between `around`) read by Arrow and vectorised checks, or None when Arrow
    refuses them (or trips on what it made of them: the slow path reads those)."""
    try:
        fast = _arrow_parse(lines, around)
        if fast is None:
            return None
        table, not_objects = fast
        parsed = conform(table, kinds)
    except (pa.ArrowException, ValueError):
        return None
    return Parsed(
        parsed.table, (*found_in(ROW, [("not_an_object", not_objects)]), *parsed.unreadable)
    )


def _arrow_parse(lines: pa.Array, around: tuple[str, str]) -> tuple[pa.Table, Mask] | None:
    """One Arrow parse of the rows: the table of their keys, and a mask of the rows that were a
    JSON value but no object; None when Arrow refuses them (a type that changes between rows, a
    row that is not one JSON value, bytes that are not UTF-8).

    Arrow reads a buffer of lines, and its rows line up with ours only if each row is exactly
    one JSON value. When every row starts with `{`, each gives at least one value, so as many
    values as rows means one each. Otherwise each row is parsed as `{"r": ROW}`, which a row
    holding anything but one value breaks (a little slower: Arrow builds a nested column)."""
    try:
        lines.validate(full=True)  # the log's strings may hold any bytes; Arrow trusts them
    except pa.ArrowInvalid:
        return None
    before, after = around
    if before.startswith("{") or _objects_only(lines):
        table = _read_json(_joined(lines, before, after + "\n"), None)
        if table is not None and table.num_rows == len(lines):
            return table, np.zeros(len(lines), dtype=bool)
    table = _read_json(_joined(lines, '{"' + _WRAP + '":' + before, after + "}\n"), _WRAP)
    if table is None or table.num_rows != len(lines):
        return None
    rows = table[_WRAP].combine_chunks()
    if not pa.types.is_struct(rows.type):  # every row a JSON null, or all numbers, lists...
        return empty_table(len(lines)), np.ones(len(lines), dtype=bool)
    names = [rows.type.field(i).name for i in range(rows.type.num_fields)]
    keys = (
        pa.table(dict(zip(names, rows.flatten(), strict=True)))
        if names
        else empty_table(len(lines))
    )
    return keys, mask_of(rows.is_null())


def _objects_only(lines: pa.Array) -> bool:
    """Whether every row starts with `{` (no row is empty, blank or another kind of value)."""
    offsets, data = _buffers(lines)
    if data is None or np.any(offsets[1:] == offsets[:-1]):
        return False
    return bool(np.all(data[offsets[:-1] - offsets[0]] == ord("{")))


def _buffers(lines: pa.Array) -> tuple[NDArray[np.int32], NDArray[np.uint8] | None]:
    """The rows' offsets, and their bytes from the first row's on."""
    _, offset_buffer, data_buffer = lines.buffers()
    offsets = np.frombuffer(offset_buffer, dtype=np.int32)[
        lines.offset : lines.offset + len(lines) + 1
    ]
    if data_buffer is None:
        return offsets, None
    return offsets, np.frombuffer(data_buffer, dtype=np.uint8)[offsets[0] : offsets[-1]]


def _joined(lines: pa.Array, prefix: str, suffix: str) -> pa.Buffer:
    """The rows as one buffer, each between `prefix` and `suffix`."""
    joined = pc.binary_join_element_wise(prefix, lines, suffix, "")
    _, offset_buffer, data_buffer = joined.buffers()
    offsets = np.frombuffer(offset_buffer, dtype=np.int32)[
        joined.offset : joined.offset + len(joined) + 1
    ]
    return data_buffer[int(offsets[0]) : int(offsets[-1])]


def _read_json(data: pa.Buffer, wrapped: str | None) -> pa.Table | None:
    """Arrow's parse of newline-delimited `data` (rows' keys under `wrapped` if given), ISO
    dates kept as the text they were; None when Arrow refuses it."""
    import pyarrow.json as pj

    options = pj.ReadOptions(block_size=max(1 << 20, min(data.size, 1 << 26)))
    try:
        table = pj.read_json(pa.BufferReader(data), read_options=options)
        dated = _dates_as_text(table.schema, wrapped)
        if dated is not None:  # Arrow read ISO dates as timestamps: keep the text as written
            parse = pj.ParseOptions(explicit_schema=dated, unexpected_field_behavior="infer")
            table = pj.read_json(pa.BufferReader(data), read_options=options, parse_options=parse)
    except (pa.ArrowException, ValueError):
        return None
    return table


def _dates_as_text(schema: pa.Schema, wrapped: str | None) -> pa.Schema | None:
    if wrapped is None:
        fields = list(schema)
    else:
        struct = schema.field(wrapped).type if wrapped in schema.names else None
        if struct is None or not pa.types.is_struct(struct):
            return None
        fields = [struct.field(i) for i in range(struct.num_fields)]
    if not any(pa.types.is_temporal(f.type) for f in fields):
        return None
    typed = [pa.field(f.name, pa.string()) if pa.types.is_temporal(f.type) else f for f in fields]
    return pa.schema(typed) if wrapped is None else pa.schema([(wrapped, pa.struct(typed))])


def _in_blocks(lines: pa.Array, kinds: Mapping[str, str]) -> Parsed:
    """The window Arrow refused, block by block; only refused blocks are read row by row."""
    tables: list[pa.Table] = []
    found: list[Unreadable] = []
    for start in range(0, len(lines), BLOCK_ROWS):
        block = lines.slice(start, BLOCK_ROWS)
        parsed = _fast(block, kinds)
        if parsed is None:
            objects, broken = parse_rows(block)
            parsed = read_rows(objects, broken, kinds, counted=kinds)
        tables.append(parsed.table)
        found += [Unreadable(u.column, u.kind, u.rows + start) for u in parsed.unreadable]
    return Parsed(_concat(tables, kinds), merge(found))


def _concat(tables: list[pa.Table], kinds: Mapping[str, str]) -> pa.Table:
    """Blocks as one table; a column a block lacks is null there."""
    names = list(dict.fromkeys(name for table in tables for name in table.column_names))
    columns = {}
    for name in names:
        target = TARGETS[kinds.get(name, CATEGORICAL)]
        parts = [
            table[name] if name in table.column_names else pa.nulls(table.num_rows, target)
            for table in tables
        ]
        columns[name] = pa.chunked_array([c for part in parts for c in _chunks(part)], target)
    return pa.table(columns) if columns else empty_table(sum(t.num_rows for t in tables))


def _chunks(part: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    return list(part.chunks) if isinstance(part, pa.ChunkedArray) else [part]
