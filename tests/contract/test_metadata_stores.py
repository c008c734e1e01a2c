"""The metadata stores behave the same on SQLite and PostgreSQL (each test runs on both)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from loopml.adapters.remote import (
    RemoteClient,
    RemoteDatasetStore,
    RemoteEventLog,
    RemoteModelStore,
    RemoteRunStore,
)
from loopml.adapters.sql.datasets import SqlDatasetStore
from loopml.adapters.sql.engine import Database, create_store_engine
from loopml.adapters.sql.events import SqlEventLog
from loopml.adapters.sql.migrate import ensure_schema
from loopml.adapters.sql.models import SqlModelStore
from loopml.adapters.sql.runs import SqlRunStore
from loopml.domain.audit import verify_chain
from loopml.domain.filters import RunQuery, parse_filter, parse_order_by
from loopml.domain.hashing import Digest, digest_bytes
from loopml.domain.manifest import BlobRef, Manifest
from loopml.domain.records import EventDraft, MetricPoint, RunId, RunStatus
from loopml.errors import Conflict, InvalidInput, NotFound
from loopml.ports import (
    DatasetStore,
    EventLog,
    ModelStore,
    NewDatasetVersion,
    NewModelVersion,
    NewRun,
    RunStore,
)
from loopml.settings import Settings
from loopml.testing.team_server import live_server, postgres_schema_url


def _event(action: str = "test", entity: str = "x:default/y") -> EventDraft:
    return EventDraft(action, entity, "tester")


DS = "dataset:default/churn"
RUN = "run:default"
MODEL = "model:default/churn"


@dataclass
class Stores:
    datasets: DatasetStore
    runs: RunStore
    models: ModelStore
    events: EventLog


@pytest.fixture(params=["sqlite", "postgres", "server"])
def stores(
    request: pytest.FixtureRequest, tmp_path: Path, make_settings: Callable[..., Settings]
) -> Iterator[Stores]:
    """The metadata stores on SQLite, on PostgreSQL, and through a live team server on
    PostgreSQL: every test below runs on each, so the three cannot drift apart."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'meta' / 'loopml.db'}"
    else:
        url = postgres_schema_url(request.getfixturevalue("postgres_database"))
    if request.param != "server":
        db = Database(create_store_engine(url))
        ensure_schema(db)
        yield Stores(SqlDatasetStore(db), SqlRunStore(db), SqlModelStore(db), SqlEventLog(db))
        db.dispose()
        return
    with live_server(make_settings(url)) as server:
        client = RemoteClient(server.url, server.token)
        yield Stores(
            RemoteDatasetStore(client),
            RemoteRunStore(client),
            RemoteModelStore(client),
            RemoteEventLog(client),
        )
        client.close()


def _manifest(content: bytes) -> Manifest:
    return Manifest.of([("data.csv", BlobRef(digest_bytes(content), len(content)))])


def _new_dataset(name: str, content: bytes) -> NewDatasetVersion:
    return NewDatasetVersion("default", name, _manifest(content), "msg", None, None)


def test_dataset_versions_count_up_and_identical_content_is_not_a_new_version(
    stores: Stores,
) -> None:
    store = stores.datasets
    first, created1 = store.add_version(_new_dataset("churn", b"a"), _event(entity=DS))
    again, created2 = store.add_version(_new_dataset("churn", b"a"), _event(entity=DS))
    second, created3 = store.add_version(_new_dataset("churn", b"b"), _event(entity=DS))
    assert (first.version, created1) == (1, True)
    assert (again.version, again.digest, created2) == (1, first.digest, False)
    assert (second.version, created3) == (2, True)
    assert store.get_version("default", "churn", None).version == 2
    assert [v.version for v in store.list_versions("default", "churn")] == [1, 2]
    assert store.get_manifest("default", "churn", 1) == _manifest(b"a")


def test_unknown_datasets_and_versions_are_named_in_the_error(stores: Stores) -> None:
    store = stores.datasets
    with pytest.raises(NotFound, match="'nope'"):
        store.get_version("default", "nope", None)
    store.add_version(_new_dataset("churn", b"a"), _event(entity=DS))
    with pytest.raises(NotFound, match="no version 7; its latest is 1"):
        store.get_version("default", "churn", 7)


def test_projects_are_separate_namespaces(stores: Stores) -> None:
    store = stores.datasets
    store.add_version(_new_dataset("churn", b"a"), _event(entity=DS))
    other = NewDatasetVersion("fraud", "churn", _manifest(b"zzz"), "", None, None)
    version, _ = store.add_version(other, _event(entity="dataset:fraud/churn"))
    assert version.version == 1
    assert [d.name for d in store.list_datasets("fraud")] == ["churn"]
    assert store.get_version("default", "churn", 1).digest != version.digest


def _run(store: RunStore, name: str = "r") -> str:
    new = NewRun(project="default", name=name, environment={"python": "3"}, tags={"team": "a"})
    return store.create_run(new, _event(entity=RUN)).id


def test_run_lifecycle_params_metrics_tags(stores: Stores) -> None:
    store = stores.runs
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
    store.end_run(run_id, RunStatus.FINISHED, None, datetime.now(UTC), _event(entity=RUN))
    ended = store.get_run(run_id)
    assert ended.status is RunStatus.FINISHED
    assert ended.end_time is not None
    with pytest.raises(Conflict):
        store.end_run(run_id, RunStatus.FAILED, "late", datetime.now(UTC), _event(entity=RUN))
    with pytest.raises(Conflict, match="has ended"):
        store.log_batch(run_id, metrics=points[:1])


def test_points_keep_their_order_ties_extreme_values_and_latest(stores: Stores) -> None:
    """A batch's later point wins a tie on step; extreme values survive every backend; a batch
    to a run that does not exist changes nothing and says so."""
    store = stores.runs
    run_id = _run(store)
    values = [0.5, 1e300, -1e-300, -1.5e308, 0.25]
    store.log_batch(
        run_id,
        metrics=[MetricPoint("m", v, 7 if i >= 3 else i, 100 + i) for i, v in enumerate(values)],
    )
    history = store.metric_history(run_id, "m")
    assert [p.step for p in history] == [0, 1, 2, 7, 7]
    got = [p.value for p in history]
    assert got == values
    assert store.get_run(run_id).metrics == {"m": 0.25}  # step 7's later point
    with pytest.raises(NotFound):
        store.log_batch("f" * 32, metrics=[MetricPoint("m", 1.0, 0, 0)])  # type: ignore[arg-type]


def test_a_param_cannot_change_once_logged(stores: Stores) -> None:
    store = stores.runs
    run_id = _run(store)
    store.log_batch(run_id, params={"lr": "0.1"})
    store.log_batch(run_id, params={"lr": "0.1"})  # the same value again is fine
    with pytest.raises(Conflict, match=r"'lr'.*'0\.1'.*'0\.2'"):
        store.log_batch(run_id, params={"lr": "0.2"})


def test_unknown_run_is_not_found(stores: Stores) -> None:
    with pytest.raises(NotFound, match="loopml runs list"):
        stores.runs.get_run("0" * 32)  # type: ignore[arg-type]


def _search(store: RunStore, filter: str, order: str = "", limit: int = 100) -> list[str]:
    query = RunQuery("default", parse_filter(filter), parse_order_by(order))
    return [r.name for r in store.search(query, limit, 0).runs]


@pytest.fixture
def searchable(stores: Stores) -> RunStore:
    store = stores.runs
    rows = [
        ("a", 0.9, "gbm", "3", "x"),
        ("b", 0.7, "gbm", "10", "y"),
        ("c", 0.95, "linear", "6", "x"),
        ("d", None, "gbm", "2", "x"),
    ]
    for name, f1, model, depth, team in rows:
        new = NewRun(project="default", name=name, environment={}, tags={"team": team})
        run_id = store.create_run(new, _event(entity=RUN)).id
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
    searchable: RunStore, filter: str, order: str, expected: list[str]
) -> None:
    assert _search(searchable, filter, order) == expected


def test_search_pages_and_counts(searchable: RunStore) -> None:
    query = RunQuery("default", (), parse_order_by("-metrics.f1"))
    first = searchable.search(query, 2, 0)
    second = searchable.search(query, 2, 2)
    assert first.total == second.total == 4
    assert [r.name for r in first.runs + second.runs] == ["c", "a", "b", "d"]


def test_filter_values_are_bound_not_spliced(searchable: RunStore) -> None:
    assert _search(searchable, "params.model = 'gbm\\' or 1=1 --'") == []
    with pytest.raises(InvalidInput):
        _search(searchable, "params.model = 'gbm'' or 1=1 --'")
    assert _search(searchable, "tags.team = 'x\\'; DROP TABLE runs; --'") == []
    assert len(_search(searchable, "")) == 4


def _register(store: ModelStore, name: str = "churn") -> int:
    new = NewModelVersion(
        "default", name, None, "sklearn", {}, _manifest(b"m"), {"inputs": []}, {"f1": 0.9}
    )
    return store.register(new, _event("model.version_registered", f"model:default/{name}")).version


def test_model_versions_and_aliases(stores: Stores) -> None:
    store = stores.models
    assert [_register(store) for _ in range(3)] == [1, 2, 3]
    assert store.set_alias("default", "churn", "champion", 2, _event(entity=MODEL)) is None
    assert store.resolve_alias("default", "churn", "champion") == 2
    assert store.set_alias("default", "churn", "champion", 3, _event(entity=MODEL)) == 2
    assert store.get_version("default", "churn", 3).aliases == ("champion",)
    summary = store.list_models("default")[0]
    assert (summary.latest_version, summary.aliases) == (3, {"champion": 3})
    assert store.set_alias("default", "churn", "champion", None, _event(entity=MODEL)) == 3
    with pytest.raises(NotFound, match="no alias 'champion'"):
        store.resolve_alias("default", "churn", "champion")


def test_alias_on_a_missing_version_is_refused_and_changes_nothing(stores: Stores) -> None:
    store = stores.models
    _register(store)
    with pytest.raises(NotFound, match="no version 9; its versions are 1 to 1"):
        store.set_alias("default", "churn", "champion", 9, _event(entity=MODEL))
    with pytest.raises(NotFound, match="'ghost'"):
        store.set_alias("default", "ghost", "champion", 1, _event(entity=MODEL))
    assert store.list_models("default")[0].aliases == {}


def test_every_mutation_appends_a_chained_event(stores: Stores) -> None:
    datasets, runs, models, log = stores.datasets, stores.runs, stores.models, stores.events
    start = len(list(log.iterate()))  # a server has already recorded its admin
    datasets.add_version(_new_dataset("churn", b"a"), _event("dataset.version_added", DS))
    run_id = _run(runs)
    runs.end_run(run_id, RunStatus.FINISHED, None, datetime.now(UTC), _event("run.finished", RUN))  # type: ignore[arg-type]
    _register(models)
    models.set_alias(
        "default",
        "churn",
        "champion",
        1,
        EventDraft("model.alias_set", "model:default/churn", "alice"),
    )
    events = list(log.iterate())
    assert [e.seq for e in events[start:]] == [start + n for n in range(1, 6)]
    assert events[-1].actor == "alice"
    assert events[-1].before == {"alias": "champion", "version": None}
    assert events[-1].after == {"alias": "champion", "version": 1}
    assert verify_chain(events).ok
    assert [e.seq for e in log.list(entity="model:default/churn")] == [start + 5, start + 4]


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


def test_digest_type_survives_the_store(stores: Stores) -> None:
    store = stores.datasets
    version, _ = store.add_version(_new_dataset("d", b"q"), _event(entity=DS))
    assert version.digest == _manifest(b"q").digest
    assert isinstance(version.digest, str)
    assert version.digest.startswith("blake3:")
    assert Digest(version.digest) == version.digest


def test_retried_writes_are_applied_once(stores: Stores) -> None:
    """What a client retries after losing an answer: the same run id, the same batch, the same
    ending, the same model files from the same run."""
    runs, models = stores.runs, stores.models
    new = NewRun("default", "r", {}, {}, run_id=RunId("a" * 32))
    first = runs.create_run(new, _event(entity=RUN))
    assert runs.create_run(new, _event(entity=RUN)).id == first.id == "a" * 32
    with pytest.raises(Conflict, match="taken by another run"):
        runs.create_run(dataclasses.replace(new, name="other"), _event(entity=RUN))
    batch = [MetricPoint("loss", 0.5, step, 1000 + step) for step in range(10)]
    runs.log_batch(first.id, metrics=batch)
    runs.log_batch(first.id, metrics=batch)
    assert len(runs.metric_history(first.id, "loss")) == 10
    for _ in range(2):
        runs.end_run(first.id, RunStatus.FINISHED, None, datetime.now(UTC), _event(entity=RUN))
    with pytest.raises(Conflict):
        runs.end_run(first.id, RunStatus.FAILED, "x", datetime.now(UTC), _event(entity=RUN))
    model = NewModelVersion(
        "default", "churn", first.id, "sklearn", {}, _manifest(b"m"), {"inputs": []}, {}
    )
    event = _event("model.version_registered", MODEL)
    assert models.register(model, event).version == models.register(model, event).version == 1
    assert _register(models) == 2  # the same files from no run: a new version
