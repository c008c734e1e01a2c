"""The RunStore contract: a run's lifecycle (running, then ended once), its params (fixed once
logged), tags, metric points (every point kept, the latest by step), inputs and artifacts; a
search with the filter language's meaning; and writes a client may retry applied once."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta

import pytest

from loopml.domain.filters import RunQuery, parse_filter, parse_order_by
from loopml.domain.hashing import digest_bytes
from loopml.domain.records import MetricPoint, RunArtifact, RunId, RunStatus
from loopml.errors import Conflict, InvalidInput, NotFound
from loopml.ports import NewRun, RunStore
from loopml.testing.contracts.stores import (
    MetadataStores,
    add_dataset,
    draft,
    events_since,
    last_seq,
    start_run,
)

__all__ = [
    "searchable",
    "test_a_param_cannot_change_once_logged",
    "test_a_run_can_be_recorded_already_finished",
    "test_a_run_reads_back_as_created",
    "test_a_search_page_out_of_range_is_refused",
    "test_a_tag_can_be_deleted_once",
    "test_an_ended_run_takes_tags_but_no_metrics_or_params",
    "test_an_imported_run_keeps_its_start_time",
    "test_creating_and_ending_a_run_are_audited",
    "test_ending_writes_the_last_points_with_the_end",
    "test_filter_values_are_bound_not_spliced",
    "test_inputs_and_artifacts_are_linked_once",
    "test_inputs_are_dataset_versions_of_the_runs_own_project",
    "test_points_keep_their_order_ties_extreme_values_and_latest",
    "test_retried_run_writes_are_applied_once",
    "test_run_lifecycle_params_metrics_tags",
    "test_search_by_attributes_and_time",
    "test_search_filters_and_orders",
    "test_search_finds_children_or_top_level_runs",
    "test_search_is_newest_first_by_default",
    "test_search_pages_and_counts",
    "test_unknown_run_is_not_found_by_every_call",
]

RUN = "run:default"


def _end(store: RunStore, run_id: RunId, status: RunStatus = RunStatus.FINISHED) -> None:
    store.end_run(run_id, status, None, datetime.now(UTC), draft("run.ended", RUN))


def test_run_lifecycle_params_metrics_tags(stores: MetadataStores) -> None:
    store = stores.runs
    run_id = start_run(stores, tags={"team": "a"}).id
    store.log_batch(run_id, params={"lr": "0.1", "model": "gbm"}, tags={"stage": "dev"})
    points = [MetricPoint("loss", 1.0 / (i + 1), i, 1000 + i) for i in range(50)]
    store.log_batch(run_id, metrics=points)
    store.log_batch(run_id, metrics=[MetricPoint("loss", 99.0, 3, 5000)])  # an old step
    run = store.get_run(run_id)
    assert run.params == {"lr": "0.1", "model": "gbm"}
    assert run.tags == {"team": "a", "stage": "dev"}
    assert run.metrics == {"loss": pytest.approx(1 / 50)}  # latest by step, not by arrival
    assert len(store.metric_history(run_id, "loss")) == 51
    assert store.metric_history(run_id, "other") == []
    _end(store, run_id)
    ended = store.get_run(run_id)
    assert ended.status is RunStatus.FINISHED
    assert ended.end_time is not None
    with pytest.raises(Conflict):
        store.end_run(run_id, RunStatus.FAILED, "late", datetime.now(UTC), draft("run.ended", RUN))
    with pytest.raises(Conflict, match="has ended"):
        store.log_batch(run_id, metrics=points[:1])


def test_a_run_reads_back_as_created(stores: MetadataStores) -> None:
    artifact = RunArtifact("model/weights.bin", digest_bytes(b"w"), 1)
    new = NewRun(
        "default", "train", {"python": "3.11", "packages": ["numpy"]}, {"team": "a"},
        artifacts=(artifact,), params={"lr": "0.1"},
    )  # fmt: skip
    made = stores.runs.create_run(new, draft("run.created", RUN))
    got = stores.runs.get_run(made.id)
    assert got == made
    assert (got.project, got.name, got.status, got.error) == ("default", "train", "running", None)
    assert (got.params, got.tags, got.metrics) == ({"lr": "0.1"}, {"team": "a"}, {})
    assert got.environment == {"python": "3.11", "packages": ["numpy"]}
    assert (got.end_time, got.duration_s, got.parent_id, got.inputs) == (None, None, None, ())
    assert got.start_time.utcoffset() == timedelta(0)
    assert stores.runs.list_artifacts(made.id) == [artifact]


def test_a_run_can_be_recorded_already_finished(stores: MetadataStores) -> None:
    run = start_run(stores, "cached-step", finished=True)
    assert run.status is RunStatus.FINISHED
    assert run.end_time == run.start_time
    assert stores.runs.get_run(run.id) == run
    with pytest.raises(Conflict, match="has ended"):
        stores.runs.log_batch(run.id, params={"a": "1"})


def test_points_keep_their_order_ties_extreme_values_and_latest(stores: MetadataStores) -> None:
    """A batch's later point wins a tie on step; extreme values survive every backend; a batch
    to a run that does not exist changes nothing and says so."""
    store = stores.runs
    run_id = start_run(stores).id
    values = [0.5, 1e300, -1e-300, -1.5e308, 0.25]
    store.log_batch(
        run_id,
        metrics=[MetricPoint("m", v, 7 if i >= 3 else i, 100 + i) for i, v in enumerate(values)],
    )
    history = store.metric_history(run_id, "m")
    assert [p.step for p in history] == [0, 1, 2, 7, 7]
    assert [p.value for p in history] == values
    assert history[0] == MetricPoint("m", 0.5, 0, 100)
    assert store.get_run(run_id).metrics == {"m": 0.25}  # step 7's later point
    store.log_batch(run_id, metrics=[MetricPoint("m", 3.0, 7, 1)])  # a later batch, same step
    assert store.get_run(run_id).metrics == {"m": 3.0}
    store.log_batch(run_id, metrics=[MetricPoint("m", 4.0, 6, 2)])  # an older step
    assert store.get_run(run_id).metrics == {"m": 3.0}
    with pytest.raises(NotFound):
        store.log_batch(RunId("f" * 32), metrics=[MetricPoint("m", 1.0, 0, 0)])


def test_a_param_cannot_change_once_logged(stores: MetadataStores) -> None:
    store = stores.runs
    run_id = start_run(stores).id
    store.log_batch(run_id, params={"lr": "0.1"})
    store.log_batch(run_id, params={"lr": "0.1"})  # the same value again is fine
    with pytest.raises(Conflict, match=r"'lr'.*'0\.1'.*'0\.2'"):
        store.log_batch(
            run_id, params={"lr": "0.2"}, tags={"t": "x"}, metrics=[MetricPoint("m", 1, 0, 0)]
        )
    run = store.get_run(run_id)  # the refused batch wrote nothing
    assert (run.params, run.tags, run.metrics) == ({"lr": "0.1"}, {}, {})


def test_an_ended_run_takes_tags_but_no_metrics_or_params(stores: MetadataStores) -> None:
    store = stores.runs
    run_id = start_run(stores).id
    _end(store, run_id, RunStatus.FAILED)
    store.log_batch(run_id, tags={"note": "bad data"})
    with pytest.raises(Conflict, match="has ended"):
        store.log_batch(run_id, params={"lr": "0.1"})
    run = store.get_run(run_id)
    assert (run.status, run.tags, run.params) == (RunStatus.FAILED, {"note": "bad data"}, {})


def test_ending_writes_the_last_points_with_the_end(stores: MetadataStores) -> None:
    store = stores.runs
    run_id = start_run(stores).id
    last = [MetricPoint("loss", 0.1, 9, 10), MetricPoint("acc", 0.9, 9, 10)]
    when = datetime(2026, 11, 28, 13, 0, 0, 123456, tzinfo=UTC)
    store.end_run(
        run_id, RunStatus.FINISHED, None, when, draft("run.ended", RUN), final_metrics=last
    )
    run = store.get_run(run_id)
    assert run.metrics == {"loss": 0.1, "acc": 0.9}
    assert run.end_time == when
    with pytest.raises(Conflict):  # an ended run takes no last points either
        store.end_run(
            run_id, RunStatus.KILLED, None, when, draft("run.ended", RUN), final_metrics=last
        )
    assert len(store.metric_history(run_id, "loss")) == 1


def test_creating_and_ending_a_run_are_audited(stores: MetadataStores) -> None:
    start = last_seq(stores)
    run_id = start_run(stores, "train").id
    stores.runs.end_run(
        run_id, RunStatus.FAILED, "boom", datetime.now(UTC), draft("run.failed", f"{RUN}/{run_id}")
    )
    created, ended = events_since(stores, start)
    assert (created.action, created.entity) == ("run.created", f"run:default/{run_id}")
    assert created.after is not None
    assert (created.after["name"], created.after["status"]) == ("train", "running")
    assert (ended.action, ended.entity) == ("run.failed", f"run:default/{run_id}")
    assert ended.before == {"status": "running"}
    assert ended.after == {"status": "failed", "error": "boom"}
    assert stores.runs.get_run(run_id).error == "boom"


def test_an_imported_run_keeps_its_start_time(stores: MetadataStores) -> None:
    began = datetime(2024, 3, 1, 12, 30, 15, 250_000, tzinfo=UTC)
    new = NewRun("default", "imported", {}, {}, started=began)
    run = stores.runs.create_run(new, draft("run.created", RUN))
    store = stores.runs
    store.end_run(run.id, RunStatus.FAILED, "boom", began + timedelta(minutes=5), draft("x", RUN))
    again = store.get_run(run.id)
    assert (again.start_time, again.end_time) == (began, began + timedelta(minutes=5))
    assert again.status is RunStatus.FAILED


def test_a_tag_can_be_deleted_once(stores: MetadataStores) -> None:
    store = stores.runs
    run_id = start_run(stores).id
    store.log_batch(run_id, tags={"team": "growth", "stage": "dev"})
    _end(store, run_id)
    store.delete_tag(run_id, "team")  # an ended run's tags still change
    assert store.get_run(run_id).tags == {"stage": "dev"}
    with pytest.raises(NotFound, match="no tag 'team'"):
        store.delete_tag(run_id, "team")
    with pytest.raises(NotFound):
        store.delete_tag(RunId("0" * 32), "stage")


def test_unknown_run_is_not_found_by_every_call(stores: MetadataStores) -> None:
    ghost = RunId("0" * 32)
    with pytest.raises(NotFound, match="loopml runs list"):
        stores.runs.get_run(ghost)
    with pytest.raises(NotFound):
        stores.runs.metric_history(ghost, "loss")
    with pytest.raises(NotFound):
        stores.runs.list_artifacts(ghost)
    with pytest.raises(NotFound):
        stores.runs.log_batch(ghost, tags={"a": "b"})
    with pytest.raises(NotFound):
        _end(stores.runs, ghost)
    with pytest.raises(NotFound):
        stores.runs.add_inputs_and_artifacts(ghost, [], [])
    with pytest.raises(NotFound):
        start_run(stores, parent_id=ghost)


def test_inputs_and_artifacts_are_linked_once(stores: MetadataStores) -> None:
    add_dataset(stores, "churn", b"1")
    add_dataset(stores, "churn", b"2")
    add_dataset(stores, "aux", b"1")
    run_id = start_run(stores).id
    first = RunArtifact("b.txt", digest_bytes(b"b"), 1)
    refs = [("default", "churn", 2), ("default", "aux", 1), ("default", "churn", 1)]
    stores.runs.add_inputs_and_artifacts(run_id, refs, [first])
    stores.runs.add_inputs_and_artifacts(run_id, refs[:1], [])  # again: nothing new
    replaced = RunArtifact("b.txt", digest_bytes(b"bb"), 2)
    other = RunArtifact("a.txt", digest_bytes(b"a"), 1)
    stores.runs.add_inputs_and_artifacts(run_id, [], [replaced, other])
    assert stores.runs.get_run(run_id).inputs == ("aux@1", "churn@1", "churn@2")
    assert stores.runs.list_artifacts(run_id) == [other, replaced]  # by path; a path once


def test_inputs_are_dataset_versions_of_the_runs_own_project(stores: MetadataStores) -> None:
    add_dataset(stores, "churn", b"1")
    add_dataset(stores, "churn", b"1", project="fraud")
    run_id = start_run(stores).id
    with pytest.raises(NotFound, match="churn@2"):
        stores.runs.add_inputs_and_artifacts(run_id, [("default", "churn", 2)], [])
    with pytest.raises(NotFound, match="ghost@1"):
        stores.runs.add_inputs_and_artifacts(run_id, [("default", "ghost", 1)], [])
    with pytest.raises(InvalidInput, match="never cross projects"):
        stores.runs.add_inputs_and_artifacts(run_id, [("fraud", "churn", 1)], [])
    assert stores.runs.get_run(run_id).inputs == ()
    parent = start_run(stores, "parent", project="fraud").id
    with pytest.raises(InvalidInput, match="never cross projects"):
        start_run(stores, parent_id=parent)


def test_retried_run_writes_are_applied_once(stores: MetadataStores) -> None:
    """What a client retries after losing an answer: the same run id, the same batch, the same
    ending."""
    runs = stores.runs
    new = NewRun("default", "r", {}, {}, run_id=RunId("a" * 32))
    first = runs.create_run(new, draft("run.created", RUN))
    start = last_seq(stores)
    assert runs.create_run(new, draft("run.created", RUN)).id == first.id == "a" * 32
    with pytest.raises(Conflict, match="taken by another run"):
        runs.create_run(dataclasses.replace(new, name="other"), draft("run.created", RUN))
    batch = [MetricPoint("loss", 0.5, step, 1000 + step) for step in range(10)]
    runs.log_batch(first.id, metrics=batch)
    runs.log_batch(first.id, metrics=batch)
    assert len(runs.metric_history(first.id, "loss")) == 10
    for _ in range(2):
        _end(runs, first.id)
    with pytest.raises(Conflict):
        _end(runs, first.id, RunStatus.FAILED)
    assert [e.action for e in events_since(stores, start)] == ["run.ended"]


def _search(store: RunStore, filter: str, order: str = "", limit: int = 100) -> list[str]:
    query = RunQuery("default", parse_filter(filter), parse_order_by(order))
    return [r.name for r in store.search(query, limit, 0).runs]


@pytest.fixture
def searchable(stores: MetadataStores) -> RunStore:
    """Runs a to d (d without the metric) in project `default`, and one in another project."""
    store = stores.runs
    rows = [
        ("a", 0.9, "gbm", "3", "x"),
        ("b", 0.7, "gbm", "10", "y"),
        ("c", 0.95, "linear", "6", "x"),
        ("d", None, "gbm", "2", "x"),
    ]
    for name, f1, model, depth, team in rows:
        run_id = start_run(stores, name, tags={"team": team}).id
        store.log_batch(run_id, params={"model": model, "depth": depth})
        if f1 is not None:
            store.log_batch(run_id, metrics=[MetricPoint("f1", f1, 0, 0)])
    elsewhere = start_run(stores, "e", project="fraud", tags={"team": "x"}).id
    store.log_batch(elsewhere, metrics=[MetricPoint("f1", 0.99, 0, 0)])
    return store


@pytest.mark.parametrize(
    ("filter", "order", "expected"),
    [
        ("metrics.f1 > 0.8", "-metrics.f1", ["c", "a"]),
        ("metrics.f1 > 0.8 and params.model = 'gbm'", "", ["a"]),
        ("params.depth > 5", "params.depth", ["c", "b"]),  # numeric, not text, comparison
        ("params.depth > '5'", "params.depth", ["c"]),  # quoted: text ('10' < '5')
        ("tags.team != 'x'", "", ["b"]),
        ("", "metrics.f1", ["b", "a", "c", "d"]),  # runs without the metric come last
        ("", "-metrics.f1", ["c", "a", "b", "d"]),
        ("", "metrics.f1 desc, attributes.name", ["c", "a", "b", "d"]),
        ("", "-params.depth", ["b", "c", "a", "d"]),  # numbers, not text
        ("params.model = 'linear' and tags.team = 'x'", "", ["c"]),
        ("attributes.name = 'b'", "", ["b"]),
        ("metrics.f1 <= 0.9 and metrics.f1 >= 0.7", "metrics.f1", ["b", "a"]),
        ("metrics.missing > 0", "", []),
    ],
    ids=[
        "metric",
        "metric-and-param",
        "numeric-param",
        "text-param",
        "tag-ne",
        "order-asc",
        "order-desc",
        "two-keys",
        "param-desc",
        "param-and-tag",
        "attribute",
        "range",
        "missing-key",
    ],
)
def test_search_filters_and_orders(
    searchable: RunStore, filter: str, order: str, expected: list[str]
) -> None:
    assert _search(searchable, filter, order) == expected


def test_search_pages_and_counts(searchable: RunStore) -> None:
    query = RunQuery("default", (), parse_order_by("-metrics.f1"))
    first = searchable.search(query, 2, 0)
    second = searchable.search(query, 2, 2)
    beyond = searchable.search(query, 2, 10)
    assert first.total == second.total == beyond.total == 4
    assert [r.name for r in first.runs + second.runs] == ["c", "a", "b", "d"]
    assert beyond.runs == []
    assert searchable.search(query, 100, 0).total == 4


def test_a_search_page_out_of_range_is_refused(searchable: RunStore) -> None:
    with pytest.raises(InvalidInput, match="limit 0"):
        searchable.search(RunQuery("default"), 0, 0)


def test_filter_values_are_bound_not_spliced(searchable: RunStore) -> None:
    assert _search(searchable, "params.model = 'gbm\\' or 1=1 --'") == []
    with pytest.raises(InvalidInput):
        _search(searchable, "params.model = 'gbm'' or 1=1 --'")
    assert _search(searchable, "tags.team = 'x\\'; DROP TABLE runs; --'") == []
    assert len(_search(searchable, "")) == 4


def test_search_is_newest_first_by_default(stores: MetadataStores) -> None:
    for name in ("old", "middle", "new"):
        start_run(stores, name)
        time.sleep(0.002)  # distinct start times
    assert _search(stores.runs, "") == ["new", "middle", "old"]


def test_search_by_attributes_and_time(stores: MetadataStores) -> None:
    first = start_run(stores, "first")
    time.sleep(0.002)
    second = start_run(stores, "second")
    _end(stores.runs, first.id)
    assert _search(stores.runs, "attributes.status = 'finished'") == ["first"]
    assert _search(stores.runs, "attributes.status != 'finished'") == ["second"]
    assert _search(stores.runs, f"attributes.run_id = '{second.id}'") == ["second"]
    assert _search(stores.runs, "", "attributes.name") == ["first", "second"]
    assert _search(stores.runs, "", "-attributes.end_time") == ["first", "second"]  # no end: last
    since = second.start_time.isoformat()
    assert _search(stores.runs, f"attributes.start_time >= '{since}'") == ["second"]
    millis = second.start_time.timestamp() * 1000 + 1
    assert _search(stores.runs, f"attributes.start_time < {millis}") == ["second", "first"]
    assert _search(stores.runs, "attributes.end_time > 0") == ["first"]
    with pytest.raises(InvalidInput, match="not a time"):
        _search(stores.runs, "attributes.start_time > 'yesterday'")


def test_search_finds_children_or_top_level_runs(stores: MetadataStores) -> None:
    parent = start_run(stores, "pipeline")
    time.sleep(0.002)
    start_run(stores, "step-1", parent_id=parent.id)
    time.sleep(0.002)
    start_run(stores, "step-2", parent_id=parent.id)
    start_run(stores, "alone")
    children = stores.runs.search(RunQuery("default", parent_id=parent.id), 10, 0)
    assert [r.name for r in children.runs] == ["step-2", "step-1"]
    assert {r.parent_id for r in children.runs} == {parent.id}
    top = stores.runs.search(RunQuery("default", top_level_only=True), 10, 0)
    assert sorted(r.name for r in top.runs) == ["alone", "pipeline"]
    assert stores.runs.search(RunQuery("default"), 10, 0).total == 4
