"""The one JSON encoding of records: what each kind of value becomes, that records read back
as themselves (through the pydantic decoding the team server's client and routes use), that
it reads as the CLI's, the model server's and the client's former encodings did, and that
NaN and infinities are written as null, or refused where the caller asks."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopml.adapters.remote import decode
from loopml.domain.filters import RunQuery, parse_filter, parse_order_by
from loopml.domain.hashing import Digest
from loopml.domain.jsonable import jsonable, to_json
from loopml.domain.manifest import BlobRef, Manifest
from loopml.domain.records import Event, ModelVersion, Run, RunId, RunStatus
from loopml.errors import InvalidInput

# -- strategies ----------------------------------------------------------------------------------

offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
aware = st.datetimes(datetime(1970, 1, 2), datetime(2100, 1, 1), timezones=offsets)
finite = st.floats(allow_nan=False, allow_infinity=False)
names = st.text("abcdefghijklmnopqrstuvwxyz_-.0123456789", min_size=1, max_size=12)
words = st.text(max_size=12)  # any text but lone surrogates, which UTF-8 cannot carry
digests = st.from_regex(r"blake3:[0-9a-f]{64}", fullmatch=True).map(Digest)
run_ids = st.from_regex(r"[0-9a-f]{32}", fullmatch=True).map(RunId)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | finite | words,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(words, inner, max_size=3),
    max_leaves=8,
)

runs = st.builds(
    Run,
    id=run_ids,
    project=names,
    name=words,
    status=st.sampled_from(RunStatus),
    start_time=aware,
    end_time=st.none() | aware,
    error=st.none() | words,
    params=st.dictionaries(names, words, max_size=3),
    metrics=st.dictionaries(names, finite, max_size=3),
    tags=st.dictionaries(names, words, max_size=3),
    environment=st.dictionaries(names, json_values, max_size=3),
    inputs=st.lists(names, max_size=3).map(tuple),
    parent_id=st.none() | run_ids,
)
model_versions = st.builds(
    ModelVersion,
    project=names,
    name=names,
    version=st.integers(1, 10_000),
    run_id=st.none() | run_ids,
    flavor=names,
    artifact_digest=digests,
    signature=st.dictionaries(names, json_values, max_size=3),
    metrics=st.dictionaries(names, finite, max_size=3),
    created_at=aware,
    actor=names,
    aliases=st.lists(names, max_size=3, unique=True).map(tuple),
    flavor_info=st.dictionaries(names, json_values, max_size=3),
)
manifests = st.dictionaries(
    st.lists(names.filter(lambda n: n not in {".", ".."}), min_size=1, max_size=3).map("/".join),
    st.builds(BlobRef, digest=digests, size=st.integers(0, 2**62)),
    max_size=4,
).map(Manifest)
events = st.builds(
    Event,
    seq=st.integers(1, 2**40),
    time=aware,
    action=names,
    entity=words,
    actor=names,
    before=st.none() | st.dictionaries(names, json_values, max_size=2),
    after=st.none() | st.dictionaries(names, json_values, max_size=2),
    prev_hash=words,
    hash=words,
)


# -- records read back as themselves -----------------------------------------------------------


@given(run=runs)
def test_a_run_reads_back_as_itself_with_its_times_zones_and_status(run: Run) -> None:
    back = decode(Run, jsonable(run))
    assert back == run
    assert back.start_time.utcoffset() == run.start_time.utcoffset()
    assert back.status is run.status


@given(version=model_versions)
def test_a_model_version_reads_back_with_its_digest_and_aliases(version: ModelVersion) -> None:
    assert decode(ModelVersion, jsonable(version)) == version


@given(manifest=manifests)
def test_a_manifest_of_nested_blob_refs_reads_back(manifest: Manifest) -> None:
    assert decode(Manifest, jsonable(manifest)) == manifest


@given(event=events)
def test_an_audit_event_reads_back(event: Event) -> None:
    assert decode(Event, jsonable(event)) == event


@pytest.mark.parametrize(
    ("where", "order"),
    [("metrics.auc > 0.8 and params.depth = '3'", "metrics.auc DESC"), (None, None)],
    ids=["filtered", "all"],
)
def test_a_run_query_of_nested_dataclasses_and_enums_reads_back(
    where: str | None, order: str | None
) -> None:
    query = RunQuery("default", parse_filter(where), parse_order_by(order), parent_id="p1")
    assert decode(RunQuery, jsonable(query)) == query


# -- what each kind of value becomes ----------------------------------------------------------


class Color(enum.Enum):
    RED = 1


@dataclasses.dataclass(frozen=True)
class Inner:
    when: datetime
    path: Path


@dataclasses.dataclass(frozen=True)
class Outer:
    inner: Inner
    tags: frozenset[str]
    pair: tuple[int, float]
    color: Color
    status: RunStatus
    _cache: dict[str, Any] = dataclasses.field(default_factory=dict)


def test_each_kind_of_value_is_written_as_the_table_says() -> None:
    when = datetime(2026, 3, 4, 5, 6, 7, 890, tzinfo=timezone(timedelta(hours=-5)))
    value = Outer(
        Inner(when, Path("models/churn")), frozenset({"a"}), (1, 2.5), Color.RED, RunStatus.KILLED
    )
    assert jsonable(value) == {
        "inner": {"when": "2026-03-04T05:06:07.000890-05:00", "path": "models/churn"},
        "tags": ["a"],
        "pair": [1, 2.5],
        "color": 1,
        "status": "killed",
    }  # `_cache` is private
    assert jsonable({"day": date(2026, 1, 2), "naive": datetime(2026, 1, 2, 3)}) == {
        "day": "2026-01-02",
        "naive": "2026-01-02T03:00:00",
    }


def test_numpy_values_are_numbers_and_arrays_whatever_their_layout() -> None:
    grid = np.arange(6).reshape(2, 3)
    assert jsonable(
        {
            "int": np.int64(3),
            "float": np.float32(0.5),
            "flag": np.bool_(True),
            "grid": grid,
            "strided": grid[:, ::2],
            "objects": np.array(["a", None], dtype=object),
        }
    ) == {
        "int": 3,
        "float": 0.5,
        "flag": True,
        "grid": [[0, 1, 2], [3, 4, 5]],
        "strided": [[0, 2], [3, 5]],
        "objects": ["a", None],
    }


def test_keys_that_are_not_text_become_text() -> None:
    assert jsonable({1: "a", np.int64(2): "b", RunStatus.FAILED: "c", Path("p"): "d"}) == {
        "1": "a",
        "2": "b",
        "failed": "c",
        "p": "d",
    }
    assert jsonable(
        [{"nested": {np.int32(7): Inner(datetime(2026, 1, 1, tzinfo=UTC), Path("x"))}}]
    ) == [{"nested": {"7": {"when": "2026-01-01T00:00:00+00:00", "path": "x"}}}]


def test_anything_else_is_written_as_its_text() -> None:
    class Opaque:
        def __str__(self) -> str:
            return "opaque!"

    assert jsonable({"thing": Opaque()}) == {"thing": "opaque!"}


def test_indented_output_is_two_spaces_as_the_cli_always_printed() -> None:
    assert to_json({"a": [1], "b": {}}, indent=True).decode() == (
        json.dumps({"a": [1], "b": {}}, indent=2)
    )


# -- the same data as the former encodings ----------------------------------------------------


def _former_cli(value: Any) -> Any:
    """The CLI's --json before the one encoding (cli/context.py `plain` + json.dumps)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            v = {f.name: getattr(v, f.name) for f in dataclasses.fields(v)}
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, list | tuple | set | frozenset):
            return [plain(x) for x in v]
        if isinstance(v, datetime):
            return v.isoformat()
        if isinstance(v, enum.Enum):
            return v.value
        return str(v) if isinstance(v, Path) else v

    return json.loads(json.dumps(plain(value), indent=2, default=str))


@given(record=runs | model_versions | events)
def test_the_cli_prints_the_same_data_as_before(record: Any) -> None:
    assert jsonable(record) == _former_cli(record)


@given(record=runs | model_versions | manifests)
def test_the_team_server_reads_the_clients_bodies_as_it_read_pydantics(record: Any) -> None:
    """The client's bodies were pydantic's JSON (UTC as `Z`); the server decodes both alike."""
    from pydantic_core import to_jsonable_python

    kind = type(record)
    assert decode(kind, jsonable(record)) == decode(kind, to_jsonable_python(record))


@given(
    rows=st.lists(
        st.dictionaries(
            names, st.none() | st.booleans() | st.integers(-(2**53), 2**53) | finite | words
        ),
        max_size=5,
    ),
    outputs=st.lists(finite, max_size=5),
)
def test_the_model_server_answers_the_same_bytes_as_before(
    rows: list[dict[str, Any]], outputs: list[float]
) -> None:
    answer = {"rows": rows, "predictions": np.asarray(outputs), "model": "churn", "version": 3}
    assert to_json(answer) == orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)


# -- NaN and infinities --------------------------------------------------------------------------


@given(number=st.floats(allow_nan=True, allow_infinity=True))
def test_a_float_is_itself_or_null_and_the_output_is_always_strict_json(number: float) -> None:
    text = to_json({"value": number, "array": np.array([number])}).decode()
    strict = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} written"))
    expected = number if math.isfinite(number) else None
    assert strict == {"value": expected, "array": [expected]}


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, np.float64("nan")], ids=str)
@pytest.mark.parametrize(
    ("shape", "where"),
    [
        (lambda bad: {"metrics": {"loss": bad}}, "['metrics']['loss']"),
        (lambda bad: {"values": [0.5, 1.0, bad]}, "['values'][2]"),
        (
            lambda bad: [Inner(datetime(2026, 1, 1), Path("x")), {"x": np.array([1.0, bad])}],
            "[1]['x'][1]",
        ),
    ],
    ids=["mapping", "column", "array"],
)
def test_a_caller_that_asks_for_finite_numbers_gets_where_the_bad_one_is(
    bad: float, shape: Any, where: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        to_json(shape(bad), finite=True)
    assert f"The value{where} is " in refused.value.message
    assert "finite number" in refused.value.hint


@given(value=json_values)
def test_finite_values_pass_the_check_and_encode_alike(value: Any) -> None:
    assert to_json(value, finite=True) == to_json(value)
