"""The MonitorStore contract: monitors per (project, name), created or replaced whole; their
runs numbered by the store, listed newest first, kept after the monitor is deleted; every change
and every run audited."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from loopml.domain.hashing import digest_bytes
from loopml.domain.records import Monitor, MonitorRun
from loopml.errors import NotFound
from loopml.testing.contracts.stores import MetadataStores, draft, events_since, last_seq

__all__ = [
    "test_a_monitor_is_created_then_replaced_whole",
    "test_a_run_is_numbered_and_timed_by_the_store",
    "test_changes_and_runs_are_audited",
    "test_deleting_a_monitor_keeps_its_runs",
    "test_monitors_are_listed_by_name_per_project",
    "test_runs_are_listed_newest_first_per_monitor",
    "test_unknown_monitors_and_runs_are_named_in_the_error",
]

_LONG_AGO = datetime(2001, 1, 1, tzinfo=UTC)
_SUMMARY = digest_bytes(b"summary")


def _monitor(
    name: str = "drift",
    project: str = "default",
    *,
    probe_url: str | None = None,
    window_s: int = 3600,
) -> Monitor:
    if probe_url is not None:
        return Monitor(
            project, name, "web", None, None, window_s, 60, _LONG_AGO, _LONG_AGO, probe_url
        )
    return Monitor(project, name, "web", "churn@1", _SUMMARY, window_s, 600, _LONG_AGO, _LONG_AGO)


def _save(stores: MetadataStores, monitor: Monitor) -> tuple[Monitor, bool]:
    entity = f"monitor:{monitor.project}/{monitor.name}"
    return stores.monitors.save(monitor, draft("monitor.saved", entity))


def _run(monitor: str = "drift", project: str = "default", rows: int = 100) -> MonitorRun:
    return MonitorRun(
        0, project, monitor, _LONG_AGO, 1_000_000, 2_000_000, rows, 0.25, ("age", "income"),
        digest_bytes(b"report %d" % rows), 0.4,
    )  # fmt: skip


def _add_run(stores: MetadataStores, run: MonitorRun) -> MonitorRun:
    entity = f"monitor:{run.project}/{run.monitor}"
    return stores.monitors.add_run(run, draft("monitor.ran", entity))


def test_a_monitor_is_created_then_replaced_whole(stores: MetadataStores) -> None:
    made, created = _save(stores, _monitor())
    assert created is True
    assert (made.project, made.name, made.deployment, made.kind) == (
        "default",
        "drift",
        "web",
        "drift",
    )
    assert (made.reference, made.summary_digest, made.probe_url) == ("churn@1", _SUMMARY, None)
    assert (made.window_s, made.every_s) == (3600, 600)
    assert made.created_at == made.updated_at > _LONG_AGO  # the store's clock, not the caller's
    assert made.created_at.utcoffset() == timedelta(0)
    assert stores.monitors.get("default", "drift") == made
    time.sleep(0.002)
    probe = _monitor(probe_url="http://127.0.0.1:8080", window_s=120)
    replaced, created = _save(stores, probe)
    assert created is False
    assert (replaced.kind, replaced.probe_url) == ("health", "http://127.0.0.1:8080")
    assert (replaced.reference, replaced.summary_digest, replaced.window_s) == (None, None, 120)
    assert replaced.created_at == made.created_at
    assert replaced.updated_at > made.updated_at
    assert stores.monitors.get("default", "drift") == replaced


def test_unknown_monitors_and_runs_are_named_in_the_error(stores: MetadataStores) -> None:
    with pytest.raises(NotFound, match="'ghost'"):
        stores.monitors.get("default", "ghost")
    with pytest.raises(NotFound, match="'ghost'"):
        stores.monitors.delete(
            "default", "ghost", draft("monitor.deleted", "monitor:default/ghost")
        )
    with pytest.raises(NotFound, match="Monitor run 99"):
        stores.monitors.get_run("default", 99)
    _save(stores, _monitor())
    run = _add_run(stores, _run())
    with pytest.raises(NotFound, match=f"Monitor run {run.id}"):
        stores.monitors.get_run("fraud", run.id)  # a run is found in its own project only
    with pytest.raises(NotFound, match="'drift'"):
        stores.monitors.get("fraud", "drift")


def test_monitors_are_listed_by_name_per_project(stores: MetadataStores) -> None:
    assert stores.monitors.list("default") == []
    for name in ("zeta", "alpha"):
        _save(stores, _monitor(name))
    _save(stores, _monitor("beta", project="fraud"))
    assert [m.name for m in stores.monitors.list("default")] == ["alpha", "zeta"]
    assert [m.name for m in stores.monitors.list("fraud")] == ["beta"]


def test_a_run_is_numbered_and_timed_by_the_store(stores: MetadataStores) -> None:
    _save(stores, _monitor())
    sent = _run()
    first = _add_run(stores, sent)
    second = _add_run(stores, sent)
    assert 0 < first.id < second.id
    assert first.time > _LONG_AGO
    assert first.time.utcoffset() == timedelta(0)
    assert (first.project, first.monitor, first.rows, first.drifted) == (
        "default",
        "drift",
        100,
        ("age", "income"),
    )
    assert (first.window_start_us, first.window_end_us) == (1_000_000, 2_000_000)
    assert (first.drift_share, first.weighted_drift, first.report_digest) == (
        0.25,
        0.4,
        sent.report_digest,
    )
    assert stores.monitors.get_run("default", first.id) == first
    probe = MonitorRun(0, "default", "drift", _LONG_AGO, 0, 1, 0, 0.0, (), digest_bytes(b"p"))
    assert _add_run(stores, probe).weighted_drift is None


def test_runs_are_listed_newest_first_per_monitor(stores: MetadataStores) -> None:
    _save(stores, _monitor())
    _save(stores, _monitor("other"))
    made = [_add_run(stores, _run(rows=rows)) for rows in (1, 2, 3)]
    _add_run(stores, _run("other"))
    assert stores.monitors.runs("default", "drift", 10) == made[::-1]
    assert stores.monitors.runs("default", "drift", 2) == made[:0:-1]
    assert stores.monitors.runs("default", "nobody", 10) == []
    assert stores.monitors.runs("fraud", "drift", 10) == []


def test_deleting_a_monitor_keeps_its_runs(stores: MetadataStores) -> None:
    _save(stores, _monitor())
    run = _add_run(stores, _run())
    stores.monitors.delete("default", "drift", draft("monitor.deleted", "monitor:default/drift"))
    with pytest.raises(NotFound):
        stores.monitors.get("default", "drift")
    assert stores.monitors.list("default") == []
    assert stores.monitors.get_run("default", run.id) == run  # the history of what it found


def test_changes_and_runs_are_audited(stores: MetadataStores) -> None:
    start = last_seq(stores)
    _save(stores, _monitor())
    _save(stores, _monitor(window_s=60))
    run = _add_run(stores, _run())
    stores.monitors.delete("default", "drift", draft("monitor.deleted", "monitor:default/drift"))
    created, replaced, ran, deleted = events_since(stores, start)
    settings = {
        "deployment": "web",
        "reference": "churn@1",
        "summary_digest": _SUMMARY,
        "window_s": 3600,
        "every_s": 600,
        "probe_url": None,
    }
    assert (created.action, created.entity) == ("monitor.saved", "monitor:default/drift")
    assert (created.before, created.after) == (None, settings)
    assert (replaced.before, replaced.after) == (settings, {**settings, "window_s": 60})
    assert (ran.action, ran.before) == ("monitor.ran", None)
    assert ran.after == {
        "run": run.id,
        "rows": 100,
        "drift_share": 0.25,
        "weighted_drift": 0.4,
        "drifted": ["age", "income"],
        "report": run.report_digest,
    }
    assert (deleted.action, deleted.after) == ("monitor.deleted", None)
    assert deleted.before == {**settings, "window_s": 60}
