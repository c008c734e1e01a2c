"""The ModelStore contract: versions numbered from 1 per model, the same files from the same
run registered once, aliases that move (each move audited), and errors that name what is
missing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from loopml.errors import InvalidInput, NotFound
from loopml.ports import NewModelVersion
from loopml.testing.contracts.stores import (
    ACTOR,
    MetadataStores,
    draft,
    events_since,
    last_seq,
    manifest,
    register_model,
    start_run,
)

__all__ = [
    "test_a_model_version_must_name_a_run_of_its_project",
    "test_a_version_keeps_what_it_was_given",
    "test_alias_on_a_missing_version_is_refused_and_changes_nothing",
    "test_model_versions_and_aliases",
    "test_models_are_listed_by_name_per_project",
    "test_registering_and_moving_aliases_are_audited",
    "test_the_same_files_from_the_same_run_are_one_version",
    "test_unknown_models_and_aliases_are_named_in_the_error",
]

MODEL = "model:default/churn"


def _versions(stores: MetadataStores, count: int, name: str = "churn") -> list[int]:
    return [register_model(stores, name).version for _ in range(count)]


def test_model_versions_and_aliases(stores: MetadataStores) -> None:
    store = stores.models
    assert _versions(stores, 3) == [1, 2, 3]
    assert store.set_alias("default", "churn", "champion", 2, draft("alias", MODEL)) is None
    assert store.resolve_alias("default", "churn", "champion") == 2
    assert store.set_alias("default", "churn", "champion", 3, draft("alias", MODEL)) == 2
    assert store.set_alias("default", "churn", "challenger", 3, draft("alias", MODEL)) is None
    assert store.get_version("default", "churn", 3).aliases == ("challenger", "champion")
    assert [v.aliases for v in store.list_versions("default", "churn")] == [
        (),
        (),
        ("challenger", "champion"),
    ]
    summary = store.list_models("default")[0]
    assert (summary.latest_version, summary.aliases) == (3, {"champion": 3, "challenger": 3})
    assert store.set_alias("default", "churn", "champion", None, draft("alias", MODEL)) == 3
    with pytest.raises(NotFound, match="no alias 'champion'"):
        store.resolve_alias("default", "churn", "champion")
    with pytest.raises(NotFound, match="no alias 'champion' to delete"):
        store.set_alias("default", "churn", "champion", None, draft("alias", MODEL))


def test_a_version_keeps_what_it_was_given(stores: MetadataStores) -> None:
    run = start_run(stores)
    files = manifest(b"weights", "model/model.pkl")
    new = NewModelVersion(
        "default", "churn", run.id, "sklearn", {"sklearn_version": "1.5"}, files,
        {"inputs": [{"name": "age", "type": "int64"}]}, {"f1": 0.91},
    )  # fmt: skip
    made = stores.models.register(new, draft("model.registered", MODEL))
    got = stores.models.get_version("default", "churn", 1)
    assert got == made
    assert (got.project, got.name, got.version, got.ref) == ("default", "churn", 1, "churn/1")
    assert (got.run_id, got.flavor, got.artifact_digest) == (run.id, "sklearn", files.digest)
    assert got.flavor_info == {"sklearn_version": "1.5"}
    assert got.signature == {"inputs": [{"name": "age", "type": "int64"}]}
    assert (got.metrics, got.actor, got.aliases) == ({"f1": 0.91}, ACTOR, ())
    assert got.created_at.utcoffset() == timedelta(0)
    assert stores.models.get_manifest("default", "churn", 1) == files


def test_unknown_models_and_aliases_are_named_in_the_error(stores: MetadataStores) -> None:
    store = stores.models
    for call in (
        lambda: store.get_version("default", "ghost", 1),
        lambda: store.get_manifest("default", "ghost", 1),
        lambda: store.resolve_alias("default", "ghost", "champion"),
        lambda: store.list_versions("default", "ghost"),
        lambda: store.set_alias("default", "ghost", "champion", None, draft("alias", MODEL)),
    ):
        with pytest.raises(NotFound, match="'ghost'"):
            call()
    register_model(stores)
    with pytest.raises(NotFound, match="no version 2; its versions are 1 to 1"):
        store.get_version("default", "churn", 2)
    with pytest.raises(NotFound, match="no version 2"):
        store.get_manifest("default", "churn", 2)
    with pytest.raises(NotFound, match=r"no alias 'prod' \(its aliases: none\)"):
        store.resolve_alias("default", "churn", "prod")
    with pytest.raises(NotFound, match="'churn'"):
        store.get_version("fraud", "churn", 1)  # a name is found in its own project only


def test_alias_on_a_missing_version_is_refused_and_changes_nothing(stores: MetadataStores) -> None:
    store = stores.models
    register_model(stores)
    start = last_seq(stores)
    with pytest.raises(NotFound, match="no version 9; its versions are 1 to 1"):
        store.set_alias("default", "churn", "champion", 9, draft("alias", MODEL))
    with pytest.raises(NotFound, match="'ghost'"):
        store.set_alias("default", "ghost", "champion", 1, draft("alias", "model:default/ghost"))
    assert store.list_models("default")[0].aliases == {}
    assert events_since(stores, start) == []


def test_models_are_listed_by_name_per_project(stores: MetadataStores) -> None:
    assert stores.models.list_models("default") == []
    _versions(stores, 2, "zeta")
    _versions(stores, 1, "alpha")
    register_model(stores, "alpha", project="fraud")
    listed = stores.models.list_models("default")
    assert [(m.name, m.latest_version, m.project) for m in listed] == [
        ("alpha", 1, "default"),
        ("zeta", 2, "default"),
    ]
    assert [m.name for m in stores.models.list_models("fraud")] == ["alpha"]
    assert listed[0].created_at <= stores.models.get_version("default", "alpha", 1).created_at


def test_the_same_files_from_the_same_run_are_one_version(stores: MetadataStores) -> None:
    """What a client retries after losing an answer: the same files from the same run."""
    run = start_run(stores)
    first = register_model(stores, run_id=run.id)
    start = last_seq(stores)
    assert register_model(stores, run_id=run.id) == first
    assert events_since(stores, start) == []
    assert register_model(stores).version == 2  # the same files from no run: a new version
    assert register_model(stores, run_id=run.id, content=b"other").version == 3


def test_a_model_version_must_name_a_run_of_its_project(stores: MetadataStores) -> None:
    elsewhere = start_run(stores, project="fraud")
    with pytest.raises(InvalidInput, match="never cross projects"):
        register_model(stores, run_id=elsewhere.id)
    assert stores.models.list_models("default") == []


def test_registering_and_moving_aliases_are_audited(stores: MetadataStores) -> None:
    start = last_seq(stores)
    version = register_model(stores)
    stores.models.set_alias("default", "churn", "champion", 1, draft("model.alias_set", MODEL))
    stores.models.set_alias("default", "churn", "champion", None, draft("model.alias_set", MODEL))
    registered, moved, deleted = events_since(stores, start)
    assert (registered.action, registered.entity, registered.actor) == (
        "model.registered",
        MODEL,
        ACTOR,
    )
    assert registered.after == {
        "version": 1,
        "run_id": None,
        "flavor": "sklearn",
        "artifact_digest": version.artifact_digest,
    }
    assert (moved.before, moved.after) == (
        {"alias": "champion", "version": None},
        {"alias": "champion", "version": 1},
    )
    assert (deleted.before, deleted.after) == (
        {"alias": "champion", "version": 1},
        {"alias": "champion", "version": None},
    )
