"""`loopml.monitoring.compare` as a user calls it: inputs, the report, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from synthetic import table

from loopml import monitoring
from loopml.errors import InvalidInput


def test_a_stored_reference_gives_the_same_report_as_the_raw_frame() -> None:
    reference, current = table(3_000, seed=1), table(3_000, seed=2, shift_std={"num_03": 0.3})
    kept = monitoring.Reference.from_dict(
        json.loads(json.dumps(monitoring.summarize(reference).to_dict()))
    )
    direct = monitoring.compare(reference, current).to_dict()
    stored = monitoring.compare(kept, current).to_dict()
    assert stored == direct
    assert direct["drifted_features"] == ["num_03"]


def test_the_json_report_is_plain_json_with_every_feature() -> None:
    reference = pd.DataFrame({"x": np.arange(1_000.0), "plan": ["a", "b"] * 500})
    current = pd.DataFrame({"x": np.arange(1_000.0) + 400, "plan": ["a", "c"] * 500})
    data = json.loads(monitoring.compare(reference, current).to_json())
    assert data["schema_version"] == 1
    assert [f["name"] for f in data["features"]] == ["x", "plan"]
    assert set(data["drifted_features"]) == {"x", "plan"}
    plan = data["features"][1]
    assert plan["findings"] == ["new_categories:c"]
    assert plan["statistics"]["new_categories"] == {"c": 0.5}


def test_arrow_tables_and_declared_kinds_are_accepted() -> None:
    reference = pa.table({"zip": pa.array([10115, 10117] * 500), "y": np.ones(1_000)})
    report = monitoring.compare(reference, reference, categorical=["zip"])
    assert report.features["zip"].kind == "categorical"
    assert report.drifted_features == []


@pytest.mark.parametrize(
    ("current", "message"),
    [
        (pd.DataFrame({"y": [1.0]}), "lacks the reference's columns ['x']"),
        (pd.DataFrame({"x": pd.Series([], dtype=float)}), "current data has no rows"),
        (pd.DataFrame({"x": ["a", "b"]}), "'x' is numeric in the reference but text"),
        ([1, 2, 3], "is a list, not a data frame"),
    ],
)
def test_bad_input_gets_a_clear_error(current: object, message: str) -> None:
    reference = pd.DataFrame({"x": np.arange(100.0)})
    with pytest.raises(InvalidInput, match=message.replace("[", r"\[").replace("]", r"\]")):
        monitoring.compare(reference, current)


def test_an_empty_reference_is_refused() -> None:
    with pytest.raises(InvalidInput, match="reference has no rows"):
        monitoring.summarize(pd.DataFrame({"x": pd.Series([], dtype=float)}))


def test_a_column_of_nulls_in_the_window_reads_as_no_values() -> None:
    reference = pd.DataFrame({"x": np.arange(100.0)})
    current = pd.DataFrame({"x": [None, None, None]})
    feature = monitoring.compare(reference, current).features["x"]
    assert feature.statistics["current_nulls"] == 3
    assert not feature.drifted


def test_the_html_report_is_one_offline_page_with_a_chart_per_feature(tmp_path) -> None:  # type: ignore[no-untyped-def]
    reference = table(2_000, seed=1, columns=["num_00", "cat_1"])
    current = table(2_000, seed=2, columns=["num_00", "cat_1"], shift_std={"num_00": 0.5})
    report = monitoring.compare(reference, current)
    page = report.to_html(tmp_path / "drift.html")
    assert (tmp_path / "drift.html").read_text() == page
    assert page.count("<svg") == 2
    assert "<script" not in page
    fetched = page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # a name, never fetched
    assert "http://" not in fetched
    assert "https://" not in fetched
    assert "num_00 <span class='tag drift'>drift</span>" in page
    assert "cat_1 <span class='tag ok'>ok</span>" in page
    chart = report.features["num_00"].chart
    assert chart["reference_cdf"] == sorted(chart["reference_cdf"])
    assert len(chart["x"]) <= 100


def _labelled(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, rows)
    return pd.DataFrame(
        {
            "x": x,
            "z": rng.normal(0.0, 1.0, rows),
            "y": (x > 0).astype(str),
            "prediction": (x > 0.1).astype(str),
        }
    )


def test_the_share_counts_inputs_and_the_label_and_prediction_are_reported_apart() -> None:
    report = monitoring.compare(
        _labelled(3_000, seed=1), _labelled(3_000, seed=2, shift=0.8), label="y",
        prediction="prediction",
    )  # fmt: skip
    assert report.inputs == ["x", "z"]
    assert report.drifted_features == ["x"]
    assert report.drift_share == 0.5  # 1 of 2 inputs, not 3 of 4 columns
    data = json.loads(report.to_json())
    assert (data["drifted_count"], data["input_count"]) == (1, 2)
    assert data["label_drift"]["column"] == "y"
    assert data["label_drift"]["drifted"] is True
    assert data["prediction_drift"]["drifted"] is True
    assert [f["role"] for f in data["features"]] == ["input", "input", "label", "prediction"]
    page = report.to_html()
    assert "drift share 50% of 2 inputs" in page
    assert "<b>Label drift</b> (y): drifted" in page
    assert "<b>Prediction drift</b> (prediction): drifted" in page


def test_without_roles_every_column_is_an_input_as_before() -> None:
    report = monitoring.compare(_labelled(3_000, seed=1), _labelled(3_000, seed=2, shift=0.8))
    assert report.drift_share == 0.75
    assert report.to_dict()["label_drift"] is None


def test_importance_weighs_the_drifted_inputs() -> None:
    reference, current = _labelled(3_000, seed=1), _labelled(3_000, seed=2, shift=0.8)
    kept = monitoring.compare(
        reference, current, columns=["x", "z"], importance={"x": 1.0, "z": 3.0}
    )
    assert kept.drifted_features == ["x"]
    assert kept.weighted_drift == pytest.approx(0.25)
    assert kept.to_dict()["importance_source"] == "model"
    assert kept.to_dict()["importance"] == {"x": 0.25, "z": 0.75}
    plain = monitoring.compare(reference, current, columns=["x", "z"])
    assert plain.weighted_drift == plain.drift_share == 0.5
    assert plain.to_dict()["importance_source"] == "equal"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"label": "churned"}, "The label column 'churned' is not among the compared columns"),
        ({"prediction": "p"}, "The prediction column 'p' is not among"),
        ({"importance": {"x": -1.0}}, "Importances must be finite and not negative"),
        ({"importance": {"x": float("nan")}}, "Importances must be finite and not negative"),
    ],
)
def test_bad_roles_and_importances_get_a_clear_error(
    options: dict[str, object], message: str
) -> None:
    frame = _labelled(200, seed=1)
    with pytest.raises(InvalidInput, match=message):
        monitoring.compare(frame, frame, **options)  # type: ignore[arg-type]
