"""How `loopml data show` prints a table's schema and profile: one line per column."""

from __future__ import annotations

from typing import Any

from loopml.cli.context import print_table


def _summary(stats: dict[str, Any] | None) -> str:
    if not stats:
        return ""
    if "mean" in stats:
        if stats.get("mean") is None:
            return "no finite values"
        q = stats.get("quantiles", {})
        return (f"mean {stats['mean']:.4g}  std {stats['std']:.4g}  min {stats['min']:.4g}  "
                f"p50 {q.get('p50', float('nan')):.4g}  max {stats['max']:.4g}")
    if "top" in stats:
        top = list(stats["top"].items())[:3]
        shown = ", ".join(f"{k} ({v})" for k, v in top)
        return f"{stats['distinct']} distinct: {shown}"
    if "vocabulary" in stats:
        words = ", ".join(list(stats["vocabulary"])[:5])
        return f"{stats['distinct_tokens']} distinct tokens: {words}"
    if "true_count" in stats:
        return f"true {stats['true_count']}  false {stats['false_count']}"
    if "min" in stats:
        return f"{stats['min']} .. {stats['max']}"
    return ""


def print_profile(schema: dict[str, Any], profile: dict[str, Any] | None) -> None:
    columns = {c["name"]: c for c in (profile or {}).get("columns", [])}
    rows = (profile or {}).get("rows")
    title = f"schema and profile ({rows} rows)" if rows is not None else "schema"
    print_table(title, ["column", "type", "nullable", "missing", "summary"], [
        (c["name"], c["logical_type"], "yes" if c["nullable"] else "no",
         columns.get(c["name"], {}).get("missing", ""),
         _summary(columns.get(c["name"], {}).get("stats")))
        for c in schema["columns"]
    ])
