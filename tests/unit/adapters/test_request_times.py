"""The prediction log files each label by the time its request id carries, read from a whole
column at once: it must agree with the one-id parser on every id and every other text."""

from __future__ import annotations

import os

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from loopml.adapters.prediction_log_files import request_times_us
from loopml.domain.request_ids import RequestIds, unix_ms_of

MAX_MS = (1 << 48) - 1
made_ids = st.integers(0, MAX_MS).map(lambda ms: RequestIds(lambda: ms, os.urandom).new(1)[0])
any_text = st.one_of(
    made_ids,
    made_ids.map(str.upper),
    made_ids.map(lambda rid: rid[:14] + "4" + rid[15:]),  # a UUIDv4's version digit
    made_ids.map(lambda rid: rid[:-1]),
    st.text(max_size=40),
    st.none(),
)


@given(st.lists(any_text, max_size=30), st.integers(0, 5))
def test_the_column_reads_what_each_id_says(texts: list[str | None], cut: int) -> None:
    column = pa.array(texts, pa.string())
    expected = [None if t is None or unix_ms_of(t) is None else unix_ms_of(t) * 1000 for t in texts]
    assert request_times_us(column).to_pylist() == expected
    if len(texts) > cut:  # a column in pieces, one starting inside its buffer
        pieces = pa.chunked_array([column.slice(cut), column.slice(0, cut)])
        assert request_times_us(pieces).to_pylist() == expected[cut:] + expected[:cut]
