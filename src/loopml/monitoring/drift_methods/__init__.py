"""Drift methods, one class per column kind in one module each, listed in `METHODS`.

A method (`base.DriftMethod`) holds everything a drift comparison does with a column of its
kind: summarise the reference, count the current sample on its terms, test, decide against
`Thresholds`, and say what to chart. `loopml.monitoring.drift` asks `method_for(kind)`, and a
column nobody declared is of the first kind whose method `claims` it, in `METHODS` order.

A method for a new column kind is a module here and a line in `METHODS`; comparisons, stored
references, reports and monitors pick it up from there.
"""

from __future__ import annotations

import importlib
from functools import cache

import pyarrow as pa

from loopml.errors import InvalidInput
from loopml.monitoring.drift_methods.base import DriftMethod

METHODS: tuple[tuple[str, str], ...] = (
    ("loopml.monitoring.drift_methods.numeric", "NumericMethod"),
    ("loopml.monitoring.drift_methods.text", "TextMethod"),
    ("loopml.monitoring.drift_methods.categorical", "CategoricalMethod"),
)
"""(module, class) of the method of every column kind, in the order they are asked whether
they claim a column: text (many words a value) before categorical (any text)."""


@cache
def methods() -> dict[str, DriftMethod]:
    """Every drift method by the column kind it compares, in `METHODS` order."""
    found: list[DriftMethod] = [
        getattr(importlib.import_module(module), name)() for module, name in METHODS
    ]
    return {method.kind: method for method in found}


def method_for(kind: str) -> DriftMethod:
    """The method comparing columns of `kind`, or InvalidInput naming the known kinds."""
    method = methods().get(kind)
    if method is None:
        raise InvalidInput(
            f"No drift method compares columns of kind {kind!r}.",
            f"Use one of: {', '.join(methods())}; or summarise the reference again.",
        )
    return method


def kind_of(column: pa.ChunkedArray) -> str | None:
    """The kind of the first method that claims `column` (None: no method reads it)."""
    for kind, method in methods().items():
        if method.claims(column):
            return kind
    return None
