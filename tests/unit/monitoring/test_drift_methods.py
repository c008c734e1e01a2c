"""Drift methods as a registry: every column kind a comparison reads has one method, which
summarises, tests, decides and charts it; a method added to `METHODS` (one class, one line) is
the one a comparison, a stored reference and the report use, with nothing else changed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from loopml import monitoring
from loopml.errors import InvalidInput
from loopml.monitoring import drift_methods
from loopml.monitoring.column_kinds import BOOLEAN, CATEGORICAL, NUMERIC, TARGETS, TEXT
from loopml.monitoring.drift_methods.base import Decision, Evidence, Thresholds
from loopml.monitoring.drift_methods.categorical import CategoricalMethod
from loopml.monitoring.drift_methods.numeric import NumericMethod


def _every_readable_type() -> pa.Table:
    rows = 60
    return pa.table(
        {
            "ints": pa.array(range(rows)),
            "floats": pa.array(np.linspace(0.0, 1.0, rows)),
            "decimals": pa.array([Decimal("1.25")] * rows, pa.decimal128(5, 2)),
            "short_text": pa.array(["a", "b", "c"] * (rows // 3)),
            "long_text": pa.array(["the quick brown fox jumps"] * rows, pa.large_string()),
            "booleans": pa.array([True, False] * (rows // 2)),
            "dictionary": pa.array(["x", "y"] * (rows // 2)).dictionary_encode(),
        }
    )


def test_every_column_kind_a_comparison_reads_has_its_method() -> None:
    registered = drift_methods.methods()
    assert set(registered) == {NUMERIC, CATEGORICAL, TEXT}
    assert all(method.kind == kind for kind, method in registered.items())
    inferred = monitoring.summarize(_every_readable_type()).kinds
    declared = monitoring.summarize(
        _every_readable_type(), categorical=["ints"], text=["short_text"]
    ).kinds
    assert set(inferred.values()) | set(declared.values()) == set(registered)
    assert inferred == {
        "ints": NUMERIC,
        "floats": NUMERIC,
        "decimals": NUMERIC,
        "short_text": CATEGORICAL,
        "long_text": TEXT,
        "booleans": CATEGORICAL,
        "dictionary": CATEGORICAL,
    }


def test_every_registered_kind_can_be_read_from_the_prediction_log() -> None:
    # a monitor reads each window's JSON as the reference's kinds: a kind without reading rules
    # in column_kinds could be summarised but never monitored
    assert set(drift_methods.methods()) <= set(TARGETS)


def test_a_column_no_method_reads_is_refused_naming_the_column() -> None:
    frame = pa.table({"when": pa.array([1, 2], pa.timestamp("s"))})
    with pytest.raises(InvalidInput, match="'when' has type timestamp"):
        monitoring.summarize(frame)


def test_a_stored_reference_of_an_unknown_kind_names_the_known_ones() -> None:
    stored = {"schema_version": 1, "columns": {"x": {"kind": "image"}}}
    with pytest.raises(InvalidInput, match=r"kind 'image'.*numeric, text, categorical"):
        monitoring.Reference.from_dict(stored)


class MeanShiftMethod(NumericMethod):
    """Numbers drift when the means differ by more than 0.5 (a rule a team might prefer)."""

    def test(self, reference: Any, current: Any) -> Evidence:
        shift = abs(current.mean - reference.mean)
        return Evidence("mean_shift", 0.0 if shift > 0.5 else 1.0, {"shift": shift})

    def decide(self, evidence: Evidence, q_value: float, limits: Thresholds) -> Decision:
        shift = evidence.statistics["shift"]
        return Decision(shift > 0.5, "shift", shift, 0.5, ["mean_moved"] if shift > 0.5 else [])

    def chart(self, reference: Any, current: Any) -> dict[str, Any]:
        return {"categories": ["mean"], "reference_share": [1.0], "current_share": [1.0]}


class BooleanMethod(CategoricalMethod):
    """Booleans as a kind of their own, compared like categories."""

    kind = BOOLEAN

    def claims(self, column: pa.ChunkedArray) -> bool:
        return pa.types.is_boolean(column.type)


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    drift_methods.methods.cache_clear()
    yield
    monkeypatch.undo()
    drift_methods.methods.cache_clear()


def _register(monkeypatch: pytest.MonkeyPatch, entries: tuple[tuple[str, str], ...]) -> None:
    monkeypatch.setattr(drift_methods, "METHODS", entries)
    drift_methods.methods.cache_clear()


@pytest.mark.usefixtures("registry")
def test_the_method_registered_for_a_kind_is_the_one_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    numeric = ("loopml.monitoring.drift_methods.numeric", "NumericMethod")
    others = tuple(entry for entry in drift_methods.METHODS if entry != numeric)
    _register(monkeypatch, ((__name__, "MeanShiftMethod"), *others))
    reference = pd.DataFrame({"x": np.arange(1_000.0) / 1_000, "plan": ["a", "b"] * 500})
    current = pd.DataFrame({"x": np.arange(1_000.0) / 1_000 + 0.8, "plan": ["a", "b"] * 500})
    stored = monitoring.Reference.from_dict(
        json.loads(json.dumps(monitoring.summarize(reference).to_dict()))
    )
    for against in (reference, stored):
        report = monitoring.compare(against, current)
        x = report.features["x"]
        assert (x.kind, x.method, x.effect, x.drifted) == ("numeric", "mean_shift", "shift", True)
        assert x.findings == ["mean_moved"]
        assert x.chart["categories"] == ["mean"]
        assert report.features["plan"].method == "fisher"  # the other kinds keep theirs
        assert report.drifted_features == ["x"]
    page = report.to_html()
    assert "mean_shift" in page
    assert "mean_moved" in page


@pytest.mark.usefixtures("registry")
def test_a_method_for_a_new_kind_is_one_class_and_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _register(monkeypatch, ((__name__, "BooleanMethod"), *drift_methods.METHODS))
    reference = pd.DataFrame({"flag": [True, False] * 500, "plan": ["a", "b"] * 500})
    current = pd.DataFrame({"flag": [True] * 900 + [False] * 100, "plan": ["a", "b"] * 500})
    summary = monitoring.summarize(reference)
    assert summary.kinds == {"flag": BOOLEAN, "plan": CATEGORICAL}
    kept = monitoring.Reference.from_dict(json.loads(json.dumps(summary.to_dict())))
    document = json.loads(monitoring.compare(kept, current).to_json())
    flag = document["features"][0]
    assert (flag["name"], flag["kind"], flag["drifted"]) == ("flag", BOOLEAN, True)
    assert document["drifted_features"] == ["flag"]
