"""Which folder each written row goes to: its deployment, the UTC date and hour it was served
(a label: the hour its request was made), and, when it carries one, its event's UTC date."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.adapters.prediction_log import _partitions
from loopml.adapters.prediction_log_files import PREDICTIONS_DIR

TIMES = st.integers(0, 4_102_444_800_000_000 - 1)  # 1970 to the end of 2099, microseconds


def _utc(time_us: int, format: str) -> str:
    return datetime.fromtimestamp(time_us // 1_000_000, UTC).strftime(format)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.sampled_from(["churn", "fraud/eu", "a=b"]), TIMES, st.none() | TIMES),
        min_size=1,
        max_size=40,
    )
)
def test_every_row_lands_in_exactly_the_folder_its_times_name(
    rows: list[tuple[str, int, int | None]],
) -> None:
    table = pa.table(
        {
            "deployment": [d for d, _, _ in rows],
            "time_us": pa.array([t for _, t, _ in rows], pa.int64()),
            "event_time_us": pa.array([e for _, _, e in rows], pa.int64()),
        }
    )
    groups = _partitions(table, PREDICTIONS_DIR)
    masks = np.array([np.asarray(group.mask) for group in groups])
    assert (masks.sum(axis=0) == 1).all()  # each row in one folder
    assert len({(g.deployment, g.date, g.hour, g.event_date) for g in groups}) == len(groups)
    for group, mask in zip(groups, masks, strict=True):
        for index in np.flatnonzero(mask):
            deployment, served_us, event_us = rows[index]
            assert group.deployment == deployment
            assert f"{group.date} {group.hour}" == _utc(served_us, "%Y-%m-%d %H")
            has_events = any(e is not None for _, _, e in rows)
            expected = "" if event_us is None or not has_events else _utc(event_us, "%Y-%m-%d")
            assert group.event_date == expected
