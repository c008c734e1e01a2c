"""How `loopml data show` prints a table's schema and profile: one line per column."""

from __future__ import annotations

from typing import Any

from loopml.cli.context import print_table


def _numeric(stats: dict[str, Any]) -> str:
    if stats.get("mean") is None:
        return "no finite values"
    median = stats.get("quantiles", {}).get("p50")
    middle = f"  p50 {median:.4g}" if median is not None else ""
    return (
        f"mean {stats['mean']:.4g}  std {stats['std']:.4g}  min {stats['min']:.4g}"
        f"{middle}  max {stats['max']:.4g}"
    )


def _categories(stats: dict[str, Any]) -> str:
    shown = ", ".join(f"{k} ({v})" for k, v in list(stats["top"].items())[:3])
    return f"{stats['distinct']} distinct: {shown}"


def _text(stats: dict[str, Any]) -> str:
    return f"{stats['distinct_tokens']} distinct tokens: {', '.join(list(stats['vocabulary'])[:5])}"


def _boolean(stats: dict[str, Any]) -> str:
    return f"true {stats['true_count']}  false {stats['false_count']}"


def _span(stats: dict[str, Any]) -> str:
    return f"{stats['min']} .. {stats['max']}"


_SUMMARIES = (
    ("mean", _numeric),
    ("top", _categories),
    ("vocabulary", _text),
    ("true_count", _boolean),
    ("min", _span),
)
"""Which summary a column's stats get, recognised by a key only that kind of stats has."""


def _summary(stats: dict[str, Any] | None) -> str:
    for key, summarise in _SUMMARIES:
        if stats and key in stats:
            return summarise(stats)
    return ""


def print_profile(schema: dict[str, Any], profile: dict[str, Any] | None) -> None:
    columns = {c["name"]: c for c in (profile or {}).get("columns", [])}
    rows = (profile or {}).get("rows")
    title = f"schema and profile ({rows} rows)" if rows is not None else "schema"
    print_table(
        title,
        ["column", "type", "nullable", "missing", "summary"],
        [
            (
                c["name"],
                c["logical_type"],
                "yes" if c["nullable"] else "no",
                columns.get(c["name"], {}).get("missing", ""),
                _summary(columns.get(c["name"], {}).get("stats")),
            )
            for c in schema["columns"]
        ],
    )
