"""A monitor's settled hours kept between runs (`loopml.monitoring.window_cache`): a run that
takes them reports what a fresh read reports, folds only the hours whose files changed (a late
label, a compaction), and shrugs off a damaged entry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from logged import frame, serve

from loopml.adapters.prediction_log import FeedbackRecord
from loopml.adapters.prediction_log_compaction import LogCompactor
from loopml.adapters.prediction_log_files import LogStorage
from loopml.bootstrap import Workspace, prediction_log_reader, prediction_log_writer
from loopml.monitoring import monitors, window

HOUR_US = 3_600_000_000
FIRST = 1_795_737_600_000_000 + 10 * HOUR_US  # 2026-11-27T10:00Z
RUN_AT = FIRST + 5 * HOUR_US + 2 * 60_000_000  # 15:02: hours 10 to 14 have settled


def _serve_hours(ws: Workspace) -> None:
    for hour in range(5):
        served = frame(400, seed=10 + hour, shift=0.1 * hour, new_plan=0.02 * hour)
        served.loc[:: 9 + hour, "monthly"] = None
        if hour == 1:
            served = pd.concat([served, served.iloc[:40]])  # rows served twice
        predicted = (served["tenure"] < 20).astype(int).tolist()
        labels = [p if i % 3 else None for i, p in enumerate(predicted)]
        at = FIRST + hour * HOUR_US + 30 * 60_000_000
        serve(ws, served, at_us=at, outputs=predicted, labels=labels)
    serve(ws, frame(100, seed=99), at_us=RUN_AT - 30_000_000)  # the hour still open


class _Folds:
    """Counts the hours folded from the log (not taken from what was kept)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.hours = 0
        fold = window._fold

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.hours += bool(kwargs.get("check_ids"))
            return fold(*args, **kwargs)

        monkeypatch.setattr(window, "_fold", counted)


def _fresh(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    with monkeypatch.context() as patched:
        patched.setattr(window, "settled_hours", lambda *_: [])
        return monitors.run("day", now_us=RUN_AT, workspace=ws).document


def _quality(document: dict[str, Any]) -> dict[str, Any]:
    """The quality section less the volume check, which compares with the runs before."""
    return {key: value for key, value in document["quality"].items() if key != "volume"}


def _assert_same(kept: dict[str, Any], fresh: dict[str, Any]) -> None:
    assert kept["drifted_features"] == fresh["drifted_features"]
    assert _quality(kept) == _quality(fresh)
    assert kept["performance"] == fresh["performance"]
    for mine, theirs in zip(kept["features"], fresh["features"], strict=True):
        assert mine["name"] == theirs["name"]
        assert mine["chart"] == theirs["chart"]
        assert mine["p_value"] == pytest.approx(theirs["p_value"], rel=1e-9, nan_ok=True)


@pytest.fixture
def day(churn: Workspace) -> Workspace:
    """Five settled hours served, an open one, and monitor `day` over six hours."""
    _serve_hours(churn)
    monitors.create("day", deployment="churn-prod", reference="churn", window="6h",
                    workspace=churn)  # fmt: skip
    return churn


def test_kept_hours_report_what_a_fresh_read_reports_and_refold_only_what_changed(
    day: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    churn = day
    folds = _Folds(monkeypatch)
    first = monitors.run("day", now_us=RUN_AT, workspace=churn).document
    assert folds.hours == 5  # every settled hour folded once, and kept
    kept_dir = churn.settings.cache_dir / "monitor-hours"
    assert len(list(kept_dir.glob("*.zst"))) == 5
    fresh = _fresh(churn, monkeypatch)
    _assert_same(first, fresh)
    assert fresh["quality"]["duplicate_rows"] >= 40
    assert fresh["performance"]["labelled_rows"] > 1_000

    second = monitors.run("day", now_us=RUN_AT, workspace=churn).document
    assert folds.hours == 5  # nothing changed: every hour taken from what was kept
    _assert_same(second, fresh)

    # a label comes late for a row of 12:00: that hour's files and its neighbours' change
    row = prediction_log_reader(churn.settings).read(
        "churn-prod", since_us=FIRST + 2 * HOUR_US, until_us=FIRST + 3 * HOUR_US
    )
    unlabelled = row.filter(row["label_json"].is_null())["request_id"][0].as_py()
    writer = prediction_log_writer(churn.settings)
    writer.append_feedback([FeedbackRecord(unlabelled, RUN_AT - 1, "churn-prod", "1")])
    writer.close()
    third = monitors.run("day", now_us=RUN_AT, workspace=churn).document
    assert folds.hours == 5 + 3  # 11:00 and 13:00 read labels of 12:00's requests too
    assert third["performance"]["labelled_rows"] == fresh["performance"]["labelled_rows"] + 1
    _assert_same(third, _fresh(churn, monkeypatch))

    storage = LogStorage(churn.settings.artifacts_url, churn.settings.storage_options)
    LogCompactor(storage).compact(min_age_s=0)  # 12:00's two label files become one
    after = monitors.run("day", now_us=RUN_AT, workspace=churn).document
    assert folds.hours == 8 + 3  # the hours that read 12:00's labels, again
    _assert_same(after, third)


def test_a_damaged_or_foreign_kept_entry_is_folded_again(
    day: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    churn = day
    fresh = _fresh(churn, monkeypatch)
    monitors.run("day", now_us=RUN_AT, workspace=churn)
    entries: list[Path] = sorted((churn.settings.cache_dir / "monitor-hours").glob("*.zst"))
    entries[0].write_bytes(b"\x00" * 8 + b"damaged")
    from loopml.monitoring.window_cache import encode

    entries[1].write_bytes(encode({"rows": "many"}))  # readable, but no fold's state
    folds = _Folds(monkeypatch)
    again = monitors.run("day", now_us=RUN_AT, workspace=churn).document
    assert folds.hours == 2
    _assert_same(again, fresh)
    _assert_same(monitors.run("day", now_us=RUN_AT, workspace=churn).document, fresh)
    assert folds.hours == 2  # both were kept again, whole
