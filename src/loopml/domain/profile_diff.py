"""What changed between two schemas, or two profiles, of a table: frozen changes that describe
themselves in one line and turn into plain dicts (with a `kind`) for storage and the API.

Changes are reported as found, with no threshold: the caller decides what matters, e.g. a mean shift
of more than half an old standard deviation (`NumericShift.mean_shift_in_std`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from loopml.domain.profile import CategoryStats, ColumnProfile, NumericStats, TableProfile
from loopml.domain.table_schema import LogicalType, TableSchema


@dataclass(frozen=True, slots=True)
class _Change:
    kind: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        plain = {f.name: _plain(getattr(self, f.name)) for f in fields(self)}
        return {"kind": self.kind, **plain, **self._derived()}

    def _derived(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True, slots=True)
class ColumnAdded(_Change):
    kind: ClassVar[str] = "column_added"
    column: str
    logical_type: LogicalType

    def describe(self) -> str:
        return f"column {self.column!r} added ({self.logical_type})"


@dataclass(frozen=True, slots=True)
class ColumnRemoved(_Change):
    kind: ClassVar[str] = "column_removed"
    column: str
    logical_type: LogicalType

    def describe(self) -> str:
        return f"column {self.column!r} removed (was {self.logical_type})"


@dataclass(frozen=True, slots=True)
class TypeChanged(_Change):
    kind: ClassVar[str] = "type_changed"
    column: str
    old_type: LogicalType
    new_type: LogicalType
    old_arrow_type: str
    new_arrow_type: str

    def describe(self) -> str:
        return (
            f"column {self.column!r} changed type: {self.old_type} ({self.old_arrow_type}) "
            f"-> {self.new_type} ({self.new_arrow_type})"
        )


@dataclass(frozen=True, slots=True)
class NullabilityChanged(_Change):
    kind: ClassVar[str] = "nullability_changed"
    column: str
    old_nullable: bool
    new_nullable: bool

    def describe(self) -> str:
        now = "now has" if self.new_nullable else "no longer has"
        return f"column {self.column!r} {now} missing values"


@dataclass(frozen=True, slots=True)
class CategoriesChanged(_Change):
    kind: ClassVar[str] = "categories_changed"
    column: str
    added: tuple[str, ...]
    removed: tuple[str, ...]

    def describe(self) -> str:
        return f"column {self.column!r} categories: {_listing(self.added, self.removed)}"


SchemaChange = ColumnAdded | ColumnRemoved | TypeChanged | NullabilityChanged | CategoriesChanged


@dataclass(frozen=True, slots=True)
class SchemaDiff:
    added: tuple[ColumnAdded, ...] = ()
    removed: tuple[ColumnRemoved, ...] = ()
    type_changed: tuple[TypeChanged, ...] = ()
    nullability_changed: tuple[NullabilityChanged, ...] = ()
    categories_changed: tuple[CategoriesChanged, ...] = ()

    @property
    def changes(self) -> tuple[SchemaChange, ...]:
        return (
            *self.added,
            *self.removed,
            *self.type_changed,
            *self.nullability_changed,
            *self.categories_changed,
        )

    @property
    def empty(self) -> bool:
        return not self.changes

    def describe(self) -> tuple[str, ...]:
        return tuple(change.describe() for change in self.changes)

    def to_dict(self) -> dict[str, Any]:
        return {"changes": [change.to_dict() for change in self.changes]}


@dataclass(frozen=True, slots=True)
class RowCountChanged(_Change):
    kind: ClassVar[str] = "row_count_changed"
    old_rows: int
    new_rows: int

    def describe(self) -> str:
        change = (
            f" ({(self.new_rows - self.old_rows) / self.old_rows:+.1%})" if self.old_rows else ""
        )
        return f"rows: {self.old_rows:,} -> {self.new_rows:,}{change}"


@dataclass(frozen=True, slots=True)
class MissingRateChanged(_Change):
    kind: ClassVar[str] = "missing_rate_changed"
    column: str
    old_rate: float
    new_rate: float

    def describe(self) -> str:
        return f"column {self.column!r} missing: {self.old_rate:.2%} -> {self.new_rate:.2%}"


@dataclass(frozen=True, slots=True)
class NumericShift(_Change):
    kind: ClassVar[str] = "numeric_shift"
    column: str
    old_mean: float | None
    new_mean: float | None
    old_std: float | None
    new_std: float | None

    @property
    def mean_shift_in_std(self) -> float | None:
        """(new mean - old mean) / old std; None when either mean is unknown or old std is 0."""
        if self.old_mean is None or self.new_mean is None or not self.old_std:
            return None
        return (self.new_mean - self.old_mean) / self.old_std

    def describe(self) -> str:
        shift = self.mean_shift_in_std
        in_std = "" if shift is None else f" ({shift:+.2f} std)"
        return (
            f"column {self.column!r} mean {_number(self.old_mean)} -> {_number(self.new_mean)}"
            f"{in_std}, std {_number(self.old_std)} -> {_number(self.new_std)}"
        )

    def _derived(self) -> dict[str, Any]:
        return {"mean_shift_in_std": self.mean_shift_in_std}


@dataclass(frozen=True, slots=True)
class TopCategoriesChanged(_Change):
    kind: ClassVar[str] = "top_categories_changed"
    column: str
    appeared: tuple[str, ...]
    vanished: tuple[str, ...]

    def describe(self) -> str:
        return f"column {self.column!r} top categories: {_listing(self.appeared, self.vanished)}"


ProfileChange = RowCountChanged | MissingRateChanged | NumericShift | TopCategoriesChanged


def diff_schemas(old: TableSchema, new: TableSchema) -> SchemaDiff:
    """Columns added and removed, and per common column type, nullability and category changes."""
    old_names, new_names = set(old.names), set(new.names)
    common = [(old.column(c.name), c) for c in new.columns if c.name in old_names]
    categorical = [
        (o, n) for o, n in common if o.categories is not None and n.categories is not None
    ]
    return SchemaDiff(
        added=tuple(
            ColumnAdded(c.name, c.logical_type) for c in new.columns if c.name not in old_names
        ),
        removed=tuple(
            ColumnRemoved(c.name, c.logical_type) for c in old.columns if c.name not in new_names
        ),
        type_changed=tuple(
            TypeChanged(n.name, o.logical_type, n.logical_type, o.arrow_type, n.arrow_type)
            for o, n in common
            if (o.logical_type, same_arrow_type(o.arrow_type))
            != (n.logical_type, same_arrow_type(n.arrow_type))
        ),
        nullability_changed=tuple(
            NullabilityChanged(n.name, o.nullable, n.nullable)
            for o, n in common
            if o.nullable != n.nullable
        ),
        categories_changed=tuple(
            CategoriesChanged(n.name, *_set_changes(o.categories or (), n.categories or ()))
            for o, n in categorical
            if o.categories != n.categories
        ),
    )


_VARIANTS = {
    "utf8": "string",
    "large_string": "string",
    "large_utf8": "string",
    "string_view": "string",
    "large_binary": "binary",
    "binary_view": "binary",
    "large_list": "list",
    "list_view": "list",
    "large_list_view": "list",
}
_VARIANT = re.compile(r"\b(" + "|".join(_VARIANTS) + r")\b")
_LIST_ITEM = re.compile(r"\blist<[^<>:]+: ")
_DICTIONARY = re.compile(
    r"dictionary<values=((?:[^<>]|<(?:[^<>]|<[^<>]*>)*>)*?), indices=\w+, ordered=[01]>"
)


def same_arrow_type(arrow_type: str) -> str:
    """Arrow's text of a type with its physical variants made one: 64-bit offsets and views
    (`large_string`, `string_view`, `large_binary`, `large_list`, `list_view`), dictionary
    encoding and the name of a list's item field change how values are stored, not what they
    are. `dictionary<values=large_string, ...>` and `string` give the same text."""
    text = arrow_type
    while True:
        plain = _DICTIONARY.sub(r"\1", text)
        if plain == text:
            break
        text = plain
    text = _VARIANT.sub(lambda found: _VARIANTS[found.group(1)], text)
    return _LIST_ITEM.sub("list<item: ", text)


def diff_profiles(old: TableProfile, new: TableProfile) -> list[ProfileChange]:
    """Row count change, then per column both profiles share (in `new`'s order) the changes in
    missing rate, mean and std (numeric) and top categories (categorical and string)."""
    changes: list[ProfileChange] = []
    if old.rows != new.rows:
        changes.append(RowCountChanged(old.rows, new.rows))
    old_names = set(old.names)
    for column in new.columns:
        if column.name in old_names:
            changes.extend(_column_changes(old, new, old.column(column.name), column))
    return changes


def _column_changes(
    old: TableProfile, new: TableProfile, before: ColumnProfile, after: ColumnProfile
) -> list[ProfileChange]:
    changes: list[ProfileChange] = []
    old_rate, new_rate = old.missing_rate(before.name), new.missing_rate(after.name)
    if old_rate is not None and new_rate is not None and old_rate != new_rate:
        changes.append(MissingRateChanged(after.name, old_rate, new_rate))
    a, b = before.stats, after.stats
    if isinstance(a, NumericStats) and isinstance(b, NumericStats):
        if (a.mean, a.std) != (b.mean, b.std):
            changes.append(NumericShift(after.name, a.mean, b.mean, a.std, b.std))
    elif (
        isinstance(a, CategoryStats)
        and isinstance(b, CategoryStats)
        and a.top.keys() != b.top.keys()
    ):
        changes.append(TopCategoriesChanged(after.name, *_set_changes(a.top, b.top)))
    return changes


def _set_changes(old: Iterable[str], new: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(in `new` but not `old`, in `old` but not `new`), each sorted."""
    old_set, new_set = set(old), set(new)
    return tuple(sorted(new_set - old_set)), tuple(sorted(old_set - new_set))


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return str(value) if isinstance(value, LogicalType) else value


def _listing(added: tuple[str, ...], removed: tuple[str, ...]) -> str:
    parts = [f"+{value!r}" for value in added] + [f"-{value!r}" for value in removed]
    return ", ".join(parts)


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"
