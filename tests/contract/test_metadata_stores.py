"""The metadata stores behave the same on SQLite and PostgreSQL (each test runs on both)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from loopml.adapters.sql.datasets import SqlDatasetStore
from loopml.adapters.sql.engine import Database
from loopml.adapters.sql.events import SqlEventLog
from loopml.adapters.sql.models import SqlModelStore
from loopml.adapters.sql.runs import SqlRunStore
from loopml.domain.audit import verify_chain
from loopml.domain.filters import RunQuery, parse_filter, parse_order_by
from loopml.domain.hashing import Digest, digest_bytes
from loopml.domain.manifest import BlobRef, Manifest
from loopml.domain.records import EventDraft, MetricPoint, RunStatus
from loopml.errors import Conflict, InvalidInput, NotFound
from loopml.ports import NewDatasetVersion, NewModelVersion, NewRun


def _event(action: str = "test", entity: str = "x:default/y") -> EventDraft:
    return EventDraft(action, entity, "tester")


def _manifest(content: bytes) -> Manifest:
    return Manifest.of([("data.csv", BlobRef(digest_bytes(content), len(content)))])


def _new_dataset(name: str, content: bytes) -> NewDatasetVersion:
    return NewDatasetVersion("default", name, _manifest(content), "msg", None, None)


def test_dataset_versions_count_up_and_identical_content_is_not_a_new_version(
    database: Database,
) -> None:
    store = SqlDatasetStore(database)
    first, created1 = store.add_version(_new_dataset("churn", b"a"), _event())
    again, created2 = store.add_version(_new_dataset("churn", b"a"), _event())
    second, created3 = store.add_version(_new_dataset("churn", b"b"), _event())
    assert (first.version, created1) == (1, True)
    assert (again.version, again.digest, created2) == (1, first.digest, False)
    assert (second.version, created3) == (2, True)
    assert store.get_version("default", "churn", None).version == 2
    assert [v.version for v in store.list_versions("default", "churn")] == [1, 2]
    assert store.get_manifest("default", "churn", 1) == _manifest(b"a")


def test_unknown_datasets_and_versions_are_named_in_the_error(database: Database) -> None:
    store = SqlDatasetStore(database)
    with pytest.raises(NotFound, match="'nope'"):
        store.get_version("default", "nope", None)
    store.add_version(_new_dataset("churn", b"a"), _event())
    with pytest.raises(NotFound, match="no version 7; its latest is 1"):
        store.get_version("default", "churn", 7)


def test_projects_are_separate_namespaces(database: Database) -> None:
    store = SqlDatasetStore(database)
    store.add_version(_new_dataset("churn", b"a"), _event())
    other = NewDatasetVersion("fraud", "churn", _manifest(b"zzz"), "", None, None)
    version, _ = store.add_version(other, _event())
    assert version.version == 1
    assert [d.name for d in store.list_datasets("fraud")] == ["churn"]
    assert store.get_version("default", "churn", 1).digest != version.digest


def _run(store: SqlRunStore, name: str = "r") -> str:
    new = NewRun(project="default", name=name, environment={"python": "3"}, tags={"team": "a"})
    return store.create_run(new, _event()).id


def test_run_lifecycle_params_metrics_tags(database: Database) -> None:
    store = SqlRunStore(database)
    run_id = _run(store)
    store.log_batch(run_id, params={"lr": "0.1", "model": "gbm"}, tags={"stage": "dev"})
    points = [MetricPoint("loss", 1.0 / (i + 1), i, 1000 + i) for i in range(50)]
    store.log_batch(run_id, metrics=points)
    store.log_batch(run_id, metrics=[MetricPoint("loss", 99.0, 3, 5000)])  # an old step
    run = store.get_run(run_id)
    assert run.params == {"lr": "0.1", "model": "gbm"}
    assert run.tags == {"team": "a", "stage": "dev"}
    assert run.metrics == {"loss": pytest.approx(1 / 50)}  # latest by step, not by arrival
    assert len(store.metric_history(run_id, "loss")) == 51
    store.end_run(run_id, RunStatus.FINISHED, None, datetime.now(UTC), _event())
    ended = store.get_run(run_id)
    assert ended.status is RunStatus.FINISHED
    assert ended.end_time is not None
    with pytest.raises(Conflict):
        store.end_run(run_id, RunStatus.FAILED, "late", datetime.now(UTC), _event())
    with pytest.raises(Conflict, match="has ended"):
        store.log_batch(run_id, metrics=points[:1])


def test_a_param_cannot_change_once_logged(database: Database) -> None:
    store = SqlRunStore(database)
    run_id = _run(store)
    store.log_batch(run_id, params={"lr": "0.1"})
    store.log_batch(run_id, params={"lr": "0.1"})  # the same value again is fine
    with pytest.raises(Conflict, match=r"'lr'.*'0\.1'.*'0\.2'"):
        store.log_batch(run_id, params={"lr": "0.2"})


def test_unknown_run_is_not_found(database: Database) -> None:
    with pytest.raises(NotFound, match="loopml runs list"):
        SqlRunStore(database).get_run("0" * 32)  # type: ignore[arg-type]


def _search(store: SqlRunStore, filter: str, order: str = "", limit: int = 100) -> list[str]:
    query = RunQuery("default", parse_filter(filter), parse_order_by(order))
    return [r.name for r in store.search(query, limit, 0).runs]


@pytest.fixture
def searchable(database: Database) -> SqlRunStore:
    store = SqlRunStore(database)
    rows = [
        ("a", 0.9, "gbm", "3", "x"),
        ("b", 0.7, "gbm", "10", "y"),
        ("c", 0.95, "linear", "6", "x"),
        ("d", None, "gbm", "2", "x"),
    ]
    for name, f1, model, depth, team in rows:
        new = NewRun(project="default", name=name, environment={}, tags={"team": team})
        run_id = store.create_run(new, _event()).id
        store.log_batch(run_id, params={"model": model, "depth": depth})
        if f1 is not None:
            store.log_batch(run_id, metrics=[MetricPoint("f1", f1, 0, 0)])
    return store


@pytest.mark.parametrize(
    ("filter", "order", "expected"),
    [
        ("metrics.f1 > 0.8", "-metrics.f1", ["c", "a"]),
        ("metrics.f1 > 0.8 and params.model = 'gbm'", "", ["a"]),
        ("params.depth > 5", "params.depth", ["c", "b"]),  # numeric, not text, comparison
        ("tags.team != 'x'", "", ["b"]),
        ("", "metrics.f1", ["b", "a", "c", "d"]),  # runs without the metric come last
        ("", "-metrics.f1", ["c", "a", "b", "d"]),
        ("params.model = 'linear' and tags.team = 'x'", "", ["c"]),
        ("attributes.name = 'b'", "", ["b"]),
    ],
    ids=[
        "metric",
        "metric-and-param",
        "numeric-param",
        "tag-ne",
        "order-asc",
        "order-desc",
        "param-and-tag",
        "attribute",
    ],
)
def test_search_filters_and_orders_in_sql(
    searchable: SqlRunStore, filter: str, order: str, expected: list[str]
) -> None:
    assert _search(searchable, filter, order) == expected


def test_search_pages_and_counts(searchable: SqlRunStore) -> None:
    query = RunQuery("default", (), parse_order_by("-metrics.f1"))
    first = searchable.search(query, 2, 0)
    second = searchable.search(query, 2, 2)
    assert first.total == second.total == 4
    assert [r.name for r in first.runs + second.runs] == ["c", "a", "b", "d"]


def test_filter_values_are_bound_not_spliced(searchable: SqlRunStore) -> None:
    assert _search(searchable, "params.model = 'gbm\\' or 1=1 --'") == []
    with pytest.raises(InvalidInput):
        _search(searchable, "params.model = 'gbm'' or 1=1 --'")
    assert _search(searchable, "tags.team = 'x\\'; DROP TABLE runs; --'") == []
    assert len(_search(searchable, "")) == 4


def _register(store: SqlModelStore, name: str = "churn") -> int:
    new = NewModelVersion(
        "default", name, None, "sklearn", {}, _manifest(b"m"), {"inputs": []}, {"f1": 0.9}
    )
    return store.register(new, _event("model.version_registered", f"model:default/{name}")).version


def test_model_versions_and_aliases(database: Database) -> None:
    store = SqlModelStore(database)
    assert [_register(store) for _ in range(3)] == [1, 2, 3]
    assert store.set_alias("default", "churn", "champion", 2, _event()) is None
    assert store.resolve_alias("default", "churn", "champion") == 2
    assert store.set_alias("default", "churn", "champion", 3, _event()) == 2
    assert store.get_version("default", "churn", 3).aliases == ("champion",)
    summary = store.list_models("default")[0]
    assert (summary.latest_version, summary.aliases) == (3, {"champion": 3})
    assert store.set_alias("default", "churn", "champion", None, _event()) == 3
    with pytest.raises(NotFound, match="no alias 'champion'"):
        store.resolve_alias("default", "churn", "champion")


def test_alias_on_a_missing_version_is_refused_and_changes_nothing(database: Database) -> None:
    store = SqlModelStore(database)
    _register(store)
    with pytest.raises(NotFound, match="no version 9; its versions are 1 to 1"):
        store.set_alias("default", "churn", "champion", 9, _event())
    with pytest.raises(NotFound, match="'ghost'"):
        store.set_alias("default", "ghost", "champion", 1, _event())
    assert store.list_models("default")[0].aliases == {}


def test_every_mutation_appends_a_chained_event(database: Database) -> None:
    datasets, runs, models = (
        SqlDatasetStore(database),
        SqlRunStore(database),
        SqlModelStore(database),
    )
    log = SqlEventLog(database)
    datasets.add_version(_new_dataset("churn", b"a"), _event("dataset.version_added"))
    run_id = _run(runs)
    runs.end_run(run_id, RunStatus.FINISHED, None, datetime.now(UTC), _event("run.finished"))  # type: ignore[arg-type]
    _register(models)
    models.set_alias(
        "default",
        "churn",
        "champion",
        1,
        EventDraft("model.alias_set", "model:default/churn", "alice"),
    )
    events = list(log.iterate())
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert events[-1].actor == "alice"
    assert events[-1].before == {"alias": "champion", "version": None}
    assert events[-1].after == {"alias": "champion", "version": 1}
    assert verify_chain(events).ok
    assert [e.seq for e in log.list(entity="model:default/churn")] == [5, 4]


def test_an_edited_event_breaks_the_chain(database: Database) -> None:
    from sqlalchemy import update

    from loopml.adapters.sql import tables as t

    store = SqlModelStore(database)
    _register(store)
    store.set_alias("default", "churn", "champion", 1, _event())
    store.set_alias("default", "churn", "champion", 1, _event())
    with database.write() as conn:
        conn.execute(update(t.events).where(t.events.c.seq == 2).values(actor="mallory"))
    verdict = verify_chain(SqlEventLog(database).iterate())
    assert (verdict.ok, verdict.first_bad_seq) == (False, 2)


def test_digest_type_survives_the_store(database: Database) -> None:
    store = SqlDatasetStore(database)
    version, _ = store.add_version(_new_dataset("d", b"q"), _event())
    assert version.digest == _manifest(b"q").digest
    assert isinstance(version.digest, str)
    assert version.digest.startswith("blake3:")
    assert Digest(version.digest) == version.digest
