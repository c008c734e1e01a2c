"""The model server's door: every served value is checked against the model's column types, the
same way on `/predict` (both body layouts), `/explain` and the V2 protocol, and what the model
cannot take is a 422 naming the row and the field. What is served is logged as the typed value
the model got, so a column of the prediction log holds values of one type whatever clients send
(the issue's reproductions: `true` for an integer, an object for a category, 10**30, "inf")."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from loopml.bootstrap import open_workspace, prediction_log_reader, prediction_log_writer
from loopml.domain.column_values import MAX_TEXT_CHARS, parse_datetime
from loopml.serving.app import create_app
from loopml.serving.batching import Job
from loopml.serving.frames import RequestError
from loopml.serving.host import ModelHost
from loopml.serving.log_sink import LogSink
from loopml.settings import Settings

CHURN_ROW = {"tenure": 3, "plan": "basic", "monthly": 29.5}


class TypedEcho:
    """A model over every column type; it keeps the dtypes of each frame it is given."""

    seen: list[dict[str, str]] = []  # noqa: RUF012 - shared on purpose: the served copy's

    def predict(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        TypedEcho.seen.append({name: str(dtype) for name, dtype in frame.dtypes.items()})
        return np.zeros(len(frame), dtype=np.int64)


ALL_TYPES_ROW: dict[str, Any] = {
    "n_int": 7,
    "n_float": 1.5,
    "flag": True,
    "name": "ann",
    "plan": "basic",
    "when": "2026-01-31T12:00:00Z",
}
KINDS = {
    "n_int": "integer",
    "n_float": "float",
    "flag": "boolean",
    "name": "string",
    "plan": "category",
    "when": "datetime",
}


def _churn_model() -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "tenure": rng.integers(0, 72, 200),
            "plan": rng.choice(["basic", "plus", "pro"], 200),
            "monthly": rng.normal(60, 15, 200).round(2),
        }
    )
    encode = ColumnTransformer(
        [("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"])], remainder="passthrough"
    )
    model = Pipeline([("encode", encode), ("fit", HistGradientBoostingClassifier(max_iter=10))])
    return model.fit(frame, (frame["tenure"] < 20).astype(int)), frame.head(3)


@pytest.fixture
def churn(make_settings: Callable[..., Settings]) -> Iterator[tuple[TestClient, LogSink, Any]]:
    ws = open_workspace(make_settings())
    model, example = _churn_model()
    ws.registry.register(model, "churn", project="default", input_example=example)
    host = ModelHost(ws, "churn", "churn")
    sink = LogSink(prediction_log_writer(ws.settings), prediction_log_reader(ws.settings))
    with TestClient(create_app({"churn": host}, sink)) as client:
        yield client, sink, ws
    sink.close()
    ws.close()


@pytest.fixture
def all_types(
    make_settings: Callable[..., Settings],
) -> Iterator[tuple[TestClient, LogSink, Any]]:
    ws = open_workspace(make_settings())
    example = pd.DataFrame(
        {
            "n_int": [1, 2],
            "n_float": [1.5, 2.0],
            "flag": [True, False],
            "name": ["a", "b"],
            "plan": pd.Categorical(["basic", "pro"]),
            "when": pd.to_datetime(["2026-01-01", "2026-01-02"], utc=True),
        }
    )
    ws.registry.register(TypedEcho(), "echo", project="default", input_example=example)
    host = ModelHost(ws, "echo", "echo", trust=True)
    sink = LogSink(prediction_log_writer(ws.settings), prediction_log_reader(ws.settings))
    with TestClient(create_app({"echo": host}, sink)) as client:
        yield client, sink, ws
    sink.close()
    ws.close()


def _v2(name: str, datatype: str, data: list[Any]) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": [len(data)], "data": data}


def _churn_v2(tenure: list[Any], plan: list[Any], monthly: list[Any]) -> dict[str, Any]:
    return {
        "inputs": [
            _v2("tenure", "INT64", tenure),
            _v2("plan", "BYTES", plan),
            _v2("monthly", "FP64", monthly),
        ]
    }


# --- the reproductions ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("tenure", True, "Row 0: field 'tenure' is true, a boolean; the model takes an integer."),
        ("tenure", 10**30, "Row 0: field 'tenure' is 1e+30, beyond the 64-bit integer range"),
        ("tenure", 2**63, "Row 0: field 'tenure' is 9223372036854775808, beyond the 64-bit"),
        ("tenure", 3.5, "Row 0: field 'tenure' is 3.5, a number with a fraction"),
        ("tenure", "3", "Row 0: field 'tenure' is '3', a string; the model takes an integer."),
        ("plan", {"a": 1}, "Row 0: field 'plan' is an object; the model takes a string."),
        ("plan", ["basic"], "Row 0: field 'plan' is a list; the model takes a string."),
        ("plan", 7, "Row 0: field 'plan' is 7, an integer; the model takes a string."),
        ("plan", False, "Row 0: field 'plan' is false, a boolean; the model takes a string."),
        ("monthly", "inf", "Row 0: field 'monthly' is 'inf', a string; the model takes a number."),
        ("monthly", "NaN", "Row 0: field 'monthly' is 'NaN', a string; the model takes a number."),
        ("monthly", "29.5", "Row 0: field 'monthly' is '29.5', a string"),
        ("monthly", True, "Row 0: field 'monthly' is true, a boolean; the model takes a number."),
        ("plan", "x" * (MAX_TEXT_CHARS + 1), f"longer than {MAX_TEXT_CHARS:,} characters"),
    ],
    ids=[
        "true-for-integer",
        "10**30",
        "2**63",
        "fraction",
        "numeric-string",
        "object-for-category",
        "list",
        "number-for-string",
        "boolean-for-string",
        "inf-string",
        "nan-string",
        "numeric-string-for-float",
        "true-for-float",
        "oversized-string",
    ],
)
def test_a_value_the_model_cannot_take_is_a_422_naming_row_and_field_on_every_route(
    churn: Any, field: str, value: Any, words: str
) -> None:
    client, sink, ws = churn
    rows = [CHURN_ROW, {**CHURN_ROW, field: value}]
    answers = {
        "rows": client.post("/predict", json={"rows": rows}),
        "split": client.post(
            "/predict",
            json={"columns": list(CHURN_ROW), "data": [list(r.values()) for r in rows]},
        ),
        "explain": client.post("/explain", json={"rows": rows}),
    }
    for route, answer in answers.items():
        assert answer.status_code == 422, (route, answer.text)
        assert words.replace("Row 0", "Row 1") in answer.json()["error"], route
    sink.flush()
    assert prediction_log_reader(ws.settings).read("churn").num_rows == 0


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (_churn_v2([3, True], ["basic", "pro"], [1.0, 2.0]), "Row 1: field 'tenure' is true"),
        (_churn_v2([3, 4], ["basic", 5], [1.0, 2.0]), "Row 1: field 'plan' is 5, an integer"),
        (_churn_v2([3, 4], ["a", {"k": 1}], [1.0, 2.0]), "Row 1: field 'plan' is an object"),
        (_churn_v2([3, 4], ["a", "b"], [1.0, "inf"]), "Row 1: field 'monthly' is 'inf', a str"),
        (_churn_v2([3, 4], ["a", "b"], [1.0, False]), "Row 1: field 'monthly' is false, a bool"),
        (_churn_v2([3, 2**64 - 1], ["a", "b"], [1.0, 2.0]), "Row 1: field 'tenure' is 1844674"),
        (
            {
                "inputs": [
                    _v2("tenure", "UINT64", [3, 2**63]),
                    _v2("plan", "BYTES", ["a", "b"]),
                    _v2("monthly", "FP64", [1.0, 2.0]),
                ]
            },
            "Row 1: field 'tenure' is 9223372036854775808, beyond the 64-bit integer range",
        ),
        (
            _churn_v2([3, 4], ["a", "x" * (MAX_TEXT_CHARS + 1)], [1.0, 2.0]),
            "Row 1: field 'plan' is 'xxx",
        ),
    ],
    ids=[
        "true-in-int64",
        "number-in-bytes",
        "object-in-bytes",
        "inf-string",
        "false-in-fp64",
        "beyond-int64",
        "uint64-beyond-int64",
        "oversized-string",
    ],
)
def test_v2_refuses_the_same_values_with_the_same_words(
    churn: Any, body: dict[str, Any], words: str
) -> None:
    client, _, _ = churn
    answer = client.post("/v2/models/churn/infer", json=body)
    assert answer.status_code == 422, answer.text
    assert words in answer.json()["error"]


@pytest.mark.parametrize(
    ("times", "field", "words"),
    [
        ({"event_time": "yesterday"}, "event_time", "'yesterday' is not an ISO-8601 time"),
        ({"event_time": "2026-01-01T00:00:00"}, "event_time", "names no offset (add Z for UTC"),
        ({"event_time": -1}, "event_time", "-1 lies before 1970"),
        ({"event_time": "1969-12-31T23:59:59Z"}, "event_time", "lies before 1970"),
        ({"event_time": 4_102_444_800}, "event_time", "lies more than a day in the future"),
        ({"event_time": True}, "event_time", "True is a boolean, not a time"),
        ({"event_time": {"at": 1}}, "event_time", "a dict is not a time"),
        ({"event_times": [1, 2, 3]}, "event_times", "is 3 values for 2 rows; give a list of one"),
        ({"event_times": 1767225600}, "event_times", "is 1767225600 for 2 rows"),
        ({"event_times": [1767225600, "soon"]}, "event_times", "value 1: 'soon' is not an ISO"),
        ({"event_times": [1, 1e300]}, "event_times", "value 1: 1e+300 seconds lies after"),
        ({"event_time": 1, "event_times": [1, 2]}, "event_times", "gives both"),
    ],
    ids=[
        "not-a-time",
        "no-offset",
        "negative",
        "before-1970",
        "far-future",
        "boolean",
        "object",
        "too-many",
        "not-a-list",
        "one-bad-in-list",
        "huge-number",
        "both",
    ],
)
def test_a_bad_event_time_is_a_422_naming_the_field_on_predict_and_v2(
    churn: Any, times: dict[str, Any], field: str, words: str
) -> None:
    client, sink, _ = churn
    answer = client.post("/predict", json={"rows": [CHURN_ROW, CHURN_ROW], **times})
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert f"'{field}'" in error
    assert words in error
    v2 = client.post(
        "/v2/models/churn/infer",
        json={**_churn_v2([3, 4], ["basic", "pro"], [1.0, 2.0]), "parameters": times},
    )
    assert v2.status_code == 422, v2.text
    assert f"'parameters.{field}'" in v2.json()["error"]
    assert words in v2.json()["error"]
    sink.flush()
    assert sink.stats()["predictions_logged"] == 0  # nothing served, nothing logged
    assert sink.stats()["reserved_rows"] == 0  # the room held for the V2 rows was given back


def test_nulls_are_the_one_missing_value_served_and_flagged_on_predict_and_v2(churn: Any) -> None:
    client, sink, ws = churn
    answered = client.post("/predict", json={"rows": [{**CHURN_ROW, "monthly": None}]})
    v2 = client.post("/v2/models/churn/infer", json=_churn_v2([3, 4], [None, "pro"], [None, 2.0]))
    assert (answered.status_code, v2.status_code) == (200, 200), v2.text
    sink.flush()
    reader = prediction_log_reader(ws.settings)
    ids = answered.json()["request_ids"] + v2.json()["parameters"]["request_ids"]
    flags = [reader.get(request_id)["flags"] for request_id in ids]  # type: ignore[index]
    assert flags == ["null:monthly", "null:plan,null:monthly", ""]


def test_extra_fields_are_ignored_and_only_typed_values_are_logged(churn: Any) -> None:
    client, sink, ws = churn
    row = {"tenure": 3.0, "plan": "basic", "monthly": 29, "secret": "not for the log"}
    answer = client.post("/predict", json={"rows": [row]})
    assert answer.status_code == 200
    sink.flush()
    logged = prediction_log_reader(ws.settings).get(answer.json()["request_ids"][0])
    assert logged is not None
    assert json.loads(logged["inputs_json"]) == {"tenure": 3, "plan": "basic", "monthly": 29.0}
    assert logged["inputs_json"].count("29.0") == 1  # a float, as the model got it


def test_a_split_body_naming_a_column_twice_is_refused(churn: Any) -> None:
    client, _, _ = churn
    body = {"columns": ["tenure", "plan", "monthly", "tenure"], "data": [[3, "basic", 1.0, True]]}
    answer = client.post("/predict", json=body)
    assert answer.status_code == 422
    assert "names a column twice" in answer.json()["error"]


@pytest.mark.parametrize("name", [[], {}, 5, None, ["tenure"]])
def test_a_split_body_naming_a_column_by_anything_but_a_string_is_refused(
    churn: Any, name: Any
) -> None:
    """Found by fuzzing: a list as a column name was a 503 (unhashable type)."""
    client, _, _ = churn
    body = {"columns": ["tenure", "plan", name], "data": [[3, "basic", None]]}
    answer = client.post("/predict", json=body)
    assert answer.status_code == 422
    assert "'columns' must be a list of column names (strings)" in answer.json()["error"]
    fine = {"columns": ["tenure", "plan", "monthly"], "data": [[3, "basic", 1.0]]}
    assert client.post("/predict", json=fine).status_code == 200


def test_duplicate_keys_in_a_row_keep_the_last_and_it_is_checked(churn: Any) -> None:
    client, _, _ = churn
    body = b'{"rows": [{"tenure": 3, "plan": "basic", "monthly": 1.0, "tenure": true}]}'
    answer = client.post("/predict", content=body)
    assert answer.status_code == 422
    assert "field 'tenure' is true" in answer.json()["error"]


def test_deeply_nested_values_are_refused_without_a_server_error(churn: Any) -> None:
    client, _, _ = churn
    deep = b"[" * 5_000 + b"]" * 5_000
    body = b'{"rows": [{"tenure": 3, "plan": ' + deep + b', "monthly": 1.0}]}'
    answer = client.post("/predict", content=body)
    assert answer.status_code in (400, 422)
    assert "error" in answer.json()


def test_mixed_types_across_requests_of_one_batch_refuse_only_the_bad_request(
    churn: Any,
) -> None:
    client, sink, ws = churn
    server = client.app.state.server  # type: ignore[attr-defined]
    host = server.host("churn")
    jobs = [
        Job([CHURN_ROW, {**CHURN_ROW, "tenure": 4.0}], False, None),  # type: ignore[arg-type]
        Job([{**CHURN_ROW, "tenure": True}], False, None),  # type: ignore[arg-type]
        Job([{**CHURN_ROW, "plan": None}], False, None),  # type: ignore[arg-type]
    ]
    for job in jobs:
        assert server.sink.reserve(len(job.rows))
    results = server.run_batch(host, jobs)
    assert isinstance(results[1], RequestError)
    assert results[1].message.startswith("Row 0: field 'tenure' is true, a boolean;")
    assert len(results[0]["predictions"]) == 2
    assert len(results[2]["predictions"]) == 1
    sink.flush()
    table = prediction_log_reader(ws.settings).read("churn", with_feedback=False)
    assert table.schema.field("input.tenure").type == pa.int64()  # a typed column of the log
    assert table["input.tenure"].to_pylist() == [3, 4, 3]
    assert table["inputs_json"].null_count == 3  # no JSON text for typed rows


# --- the property: refused with a 4xx, or served and logged as the column's type ---------------

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | st.sampled_from(["inf", "NaN", "3", "true", "2026-01-31", "2026-01-31T25:00", "basic"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=5,
)
_ARROW_TYPES = {
    "integer": pa.int64(),
    "float": pa.float64(),
    "boolean": pa.bool_(),
    "string": pa.string(),
    "category": pa.string(),
    "datetime": pa.timestamp("us"),
}


def _typed(kind: str, value: Any) -> Any:
    """What the log should hold for an accepted `value`."""
    if value is None:
        return None
    if kind == "integer":
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "datetime":
        parsed = parse_datetime(value)
        assert parsed is not None
        return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed
    return value


def test_any_json_value_is_refused_or_served_and_logged_as_its_column_type(
    all_types: Any,
) -> None:
    client, sink, ws = all_types
    served: dict[str, tuple[str, Any]] = {}
    TypedEcho.seen.clear()  # the warm-up's made-up rows are not served rows

    @settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(field=st.sampled_from(sorted(KINDS)), value=_JSON, v2=st.booleans())
    def send(field: str, value: Any, v2: bool) -> None:
        row = {**ALL_TYPES_ROW, field: value}
        if v2:
            datatypes = {"integer": "INT64", "float": "FP64", "boolean": "BOOL"}
            body = {
                "inputs": [
                    _v2(name, datatypes.get(KINDS[name], "BYTES"), [row[name]]) for name in KINDS
                ]
            }
            answer = client.post("/v2/models/echo/infer", json=body)
        else:
            answer = client.post("/predict", json={"rows": [row]})
        assert answer.status_code < 500, answer.text
        if answer.status_code >= 400:
            assert answer.status_code in (400, 422)
            if answer.status_code == 422:
                assert f"Row 0: field {field!r} is " in answer.json()["error"]
            return
        ids = answer.json()["parameters"]["request_ids"] if v2 else answer.json()["request_ids"]
        served[ids[0]] = (field, _typed(KINDS[field], value))

    send()
    assert served, "no value was served at all"
    sink.flush()
    table = prediction_log_reader(ws.settings).read("echo", with_feedback=False)
    assert set(table["request_id"].to_pylist()) == set(served)
    assert table["inputs_json"].null_count == table.num_rows  # every row in typed columns
    for name, kind in KINDS.items():
        arrow_type = table.schema.field(f"input.{name}").type
        assert arrow_type == _ARROW_TYPES[kind], (name, arrow_type)
    rows = table.select([f"input.{name}" for name in KINDS]).to_pylist()
    logged = dict(zip(table["request_id"].to_pylist(), rows, strict=True))
    for request_id, (field, expected) in served.items():
        assert logged[request_id][f"input.{field}"] == expected, (field, expected)
    for dtypes in TypedEcho.seen:
        assert dtypes["n_int"] in ("int64", "float64")  # float64 only when a null came
        assert dtypes["n_float"] == "float64"
        assert dtypes["when"].startswith("datetime64")


def test_numbers_beyond_float_range_and_negative_zero(churn: Any) -> None:
    client, sink, ws = churn
    huge = b'{"rows": [{"tenure": 3, "plan": "basic", "monthly": 1e400}]}'
    refused = client.post("/predict", content=huge)
    assert refused.status_code == 400
    assert "infinity" in refused.json()["error"]
    zero = client.post("/predict", json={"rows": [{**CHURN_ROW, "tenure": -0.0}]})
    assert zero.status_code == 200
    sink.flush()
    logged = prediction_log_reader(ws.settings).get(zero.json()["request_ids"][0])
    assert logged is not None
    assert json.loads(logged["inputs_json"])["tenure"] == 0
