"""How the prediction log's typed columns (`input.<feature>`, `output`, `proba`) of several
model versions meet: one column typed two ways reads as float64 when both are numbers, else as
text (Arrow casts each file's column on reading; old files are never rewritten)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pyarrow as pa


def common_type(types: Iterable[pa.DataType]) -> pa.DataType:
    """The type columns of `types` are read as together."""
    found = list(dict.fromkeys(types))
    if len(found) == 1:
        return found[0]
    if all(pa.types.is_integer(kind) or pa.types.is_floating(kind) for kind in found):
        return pa.float64()
    return pa.string()


def union_typed(schemas: Sequence[pa.Schema]) -> pa.Schema:
    """The typed columns of `schemas` together, in the order first seen, each of the type its
    files' columns meet as (`common_type`)."""
    types: dict[str, list[pa.DataType]] = {}
    for schema in schemas:
        for field in schema:
            types.setdefault(field.name, []).append(field.type)
    return pa.schema([(name, common_type(kinds)) for name, kinds in types.items()])
