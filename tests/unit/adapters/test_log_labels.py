"""Labels joined to served rows: the latest label per request id, whatever order they came
in, found for every row of any piece; and request ids' times read from their text."""

from __future__ import annotations

import uuid

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.adapters.prediction_log_files import all_timed, request_times_us
from loopml.adapters.prediction_log_reader import PredictionLogReader
from loopml.adapters.prediction_log_tables import with_labels

IDS = st.sampled_from([f"req-{n:03d}" for n in range(60)] + ["Z", "", "é"])


@settings(max_examples=150, deadline=None)
@given(
    feedback=st.lists(st.tuples(IDS, st.integers(0, 50), st.text(max_size=3)), max_size=60),
    served=st.lists(IDS, min_size=1, max_size=40),
)
def test_every_row_gets_the_latest_label_of_its_id(
    feedback: list[tuple[str, int, str]], served: list[str]
) -> None:
    table = pa.table(
        {
            "request_id": [i for i, _, _ in feedback],
            "time_us": pa.array([t for _, t, _ in feedback], pa.int64()),
            "label_json": [label for _, _, label in feedback],
        }
    )
    latest = _latest_of(table)
    expected: dict[str, tuple[int, int]] = {}
    for position, (request_id, at, _) in enumerate(feedback):
        if request_id not in expected or (at, position) >= expected[request_id]:
            expected[request_id] = (at, position)
    assert latest["request_id"].to_pylist() == sorted(expected)  # sorted, one per id
    rows = pa.table({"request_id": served})
    joined = with_labels(rows, latest)["label_json"].to_pylist()
    labels = {i: feedback[p][2] for i, (_, p) in expected.items()}
    assert joined == [labels.get(i) for i in served]


def _latest_of(feedback: pa.Table) -> pa.Table:
    """The reader's own reduction of feedback rows to the latest label per id."""

    class Scanned(PredictionLogReader):
        def __init__(self) -> None:  # no storage: the feedback is given
            pass

        def _scan(self, *_: object) -> pa.Table:  # type: ignore[override]
            return feedback

    return Scanned()._labels_between("d", 0, None, None)


def test_request_times_come_from_uuid7_ids_of_either_case() -> None:
    made = uuid.UUID("0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b")
    ids = pa.array([str(made), str(made).upper(), "nope", None, str(uuid.uuid4()), "é" * 36])
    times = request_times_us(ids)
    expected = 0x0190A1B2C3D4 * 1000
    assert times.to_pylist() == [expected, expected, None, None, None, None]
    assert request_times_us(pa.chunked_array([ids[:2], ids[2:]])).equals(times)
    assert request_times_us(ids.slice(1, 2)).to_pylist() == [expected, None]
    assert all_timed(pa.chunked_array([ids[:2]]))
    assert not all_timed(pa.chunked_array([ids]))
    assert len(request_times_us(pa.array([], pa.string()))) == 0
