"""Data-quality checks of a window against its reference."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from loopml import monitoring
from loopml.monitoring.quality import check, coerce


def _reference() -> monitoring.Reference:
    rng = np.random.default_rng(0)
    return monitoring.summarize(
        pd.DataFrame(
            {
                "tenure": rng.uniform(0, 72, 2_000),
                "plan": rng.choice(["basic", "pro"], 2_000),
                "churned": rng.integers(0, 2, 2_000),
            }
        )
    )


def _window(rows: int = 1_000, seed: int = 1) -> dict[str, list[object]]:
    rng = np.random.default_rng(seed)
    return {
        "tenure": list(rng.uniform(0, 72, rows)),
        "plan": list(rng.choice(["basic", "pro"], rows)),
    }


def test_a_clean_window_has_no_issue() -> None:
    reference = _reference()
    table, violations = coerce(pa.table(_window()), reference)
    quality = check(table, reference, violations, history_rows=[1_000, 980, 1_020])
    assert quality["issues"] == []
    assert quality["missing_columns"] == ["churned"]  # the label: reported, not an issue
    assert quality["volume"] == {"rows": 1_000, "expected": 1_000, "anomaly": False}


def test_every_kind_of_problem_is_named() -> None:
    reference = _reference()
    data = _window()
    data["tenure"][:100] = [None] * 100  # 10% missing
    data["tenure"][100:120] = ["n/a"] * 20  # not numbers
    data["tenure"][120:140] = [500.0] * 20  # beyond the reference's range
    data["plan"][200:300] = [None] * 100
    data["coupon"] = ["x"] * 1_000  # never seen in the reference
    for row in range(300, 400):  # 100 exact copies of row 0
        for name in data:
            data[name][row] = data[name][0]
    table = pa.table(
        {k: pa.array([None if v is None else str(v) for v in vals]) for k, vals in data.items()}
    )
    coerced, violations = coerce(table, reference)
    quality = check(coerced, reference, violations, history_rows=[5_000, 5_100, 4_900])
    assert violations["tenure"] == 20
    unreadable = sum(v is None or v == "n/a" for v in data["tenure"])
    assert quality["columns"]["tenure"]["null_rate"] == unreadable / 1_000
    assert set(quality["issues"]) == {
        "unexpected_column:coupon",
        "type_violations:tenure",
        "null_rate:tenure",
        "null_rate:plan",
        "out_of_range:tenure",
        "duplicate_rows",
        "volume",
    }
    assert quality["issue_count"] == 7
    assert quality["duplicate_rows"] >= 99
    assert quality["volume"]["expected"] == 5_000


def test_volume_needs_a_few_windows_of_history() -> None:
    reference = _reference()
    table, violations = coerce(pa.table(_window(rows=50)), reference)
    assert check(table, reference, violations, history_rows=[1_000, 1_000])["issues"] == []


def test_unreadable_values_are_counted_in_the_shares_not_dropped() -> None:
    from loopml.monitoring.json_columns import conform, read_objects

    reference = _reference()
    data = _window(rows=100)
    tenure: list[object] = list(data["tenure"])
    tenure[:10] = [True] * 5 + [{"x": 1}] * 5  # unreadable as numbers
    tenure[10:15] = [None] * 5  # came as null
    plan: list[object] = list(data["plan"])
    plan[:3] = [["basic"]] * 3
    logged = [json.dumps({"tenure": t, "plan": p}) for t, p in zip(tenure, plan, strict=True)]
    parsed = read_objects(pa.chunked_array([pa.array(logged)]), reference.kinds)
    unreadable = [
        {"column": u.column, "kind": u.kind, "count": u.count, "examples": []}
        for u in parsed.unreadable
    ]
    quality = check(parsed.table, reference, parsed.counts(), unreadable=unreadable)
    column = quality["columns"]["tenure"]
    assert column["type_violations"] == 10
    assert column["invalid_share"] == 0.10
    assert column["missing_share"] == 0.05
    assert column["null_rate"] == 0.15
    assert quality["columns"]["plan"]["type_violations"] == 3
    assert {"type_violations:tenure", "type_violations:plan"} <= set(quality["issues"])
    assert quality["unreadable_values"] == 13
    assert {(u["column"], u["kind"], u["count"]) for u in quality["unreadable"]} == {
        ("tenure", "boolean", 5),
        ("tenure", "object", 5),
        ("plan", "list", 3),
    }
    coerced, violations = coerce(parsed.table, reference)  # reading twice changes nothing
    assert coerced.equals(conform(parsed.table, reference.kinds).table)
    assert violations["tenure"] == 0


def test_duplicates_are_counted_exactly_then_estimated_past_the_exact_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from loopml.monitoring import quality

    rng = np.random.default_rng(5)
    values = rng.integers(0, 1 << 40, 60_000)
    pieces = [pa.table({"x": values[i : i + 7_000]}) for i in range(0, 60_000, 7_000)]
    pieces += [pa.table({"x": values[:9_000]})]  # 9,000 rows seen again
    exact = quality.DistinctRows()
    for piece in pieces:
        exact.add(piece)
    assert (exact.count(), exact.estimated) == (60_000, False)

    monkeypatch.setattr(quality, "EXACT_ROWS", 10_000)
    sketched = quality.DistinctRows()
    for piece in pieces:
        sketched.add(piece)
    assert sketched.estimated
    assert sketched.count() == pytest.approx(60_000, rel=0.03)  # 0.8% expected at 2**14
