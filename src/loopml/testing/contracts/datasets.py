"""The DatasetStore contract: immutable versions numbered from 1, one per distinct content, in
projects that are separate namespaces; each new version one audited event."""

from __future__ import annotations

from datetime import timedelta

import pytest

from loopml.domain.hashing import Digest
from loopml.errors import NotFound
from loopml.ports import NewDatasetVersion
from loopml.testing.contracts.stores import (
    ACTOR,
    MetadataStores,
    add_dataset,
    draft,
    events_since,
    last_seq,
    manifest,
)

__all__ = [
    "test_a_version_keeps_what_it_was_given",
    "test_adding_a_version_appends_one_event_and_re_adding_none",
    "test_dataset_versions_count_up_and_identical_content_is_not_a_new_version",
    "test_datasets_are_listed_by_name_with_their_latest_version",
    "test_digest_type_survives_the_store",
    "test_projects_are_separate_namespaces",
    "test_unknown_datasets_and_versions_are_named_in_the_error",
]

DS = "dataset:default/churn"


def _new(name: str, content: bytes, project: str = "default") -> NewDatasetVersion:
    return NewDatasetVersion(project, name, manifest(content), "msg", None, None)


def test_dataset_versions_count_up_and_identical_content_is_not_a_new_version(
    stores: MetadataStores,
) -> None:
    store = stores.datasets
    first, created1 = store.add_version(_new("churn", b"a"), draft("dataset.added", DS))
    again, created2 = store.add_version(_new("churn", b"a"), draft("dataset.added", DS))
    second, created3 = store.add_version(_new("churn", b"b"), draft("dataset.added", DS))
    assert (first.version, created1) == (1, True)
    assert (again.version, again.digest, created2) == (1, first.digest, False)
    assert (second.version, created3) == (2, True)
    assert store.get_version("default", "churn", None).version == 2
    assert [v.version for v in store.list_versions("default", "churn")] == [1, 2]
    assert store.get_manifest("default", "churn", 1) == manifest(b"a")
    assert store.add_version(_new("churn", b"a"), draft("dataset.added", DS))[0].version == 1


def test_a_version_keeps_what_it_was_given(stores: MetadataStores) -> None:
    schema = {"columns": [{"name": "age", "type": "int64"}]}
    profile = {"rows": 3, "columns": {"age": {"mean": 41.5}}}
    files = manifest(b"age\n1\n2\n", "train/part-0.csv")
    new = NewDatasetVersion("default", "churn", files, "first cut", schema, profile)
    version, _ = stores.datasets.add_version(new, draft("dataset.added", DS))
    got = stores.datasets.get_version("default", "churn", 1)
    assert got == version
    assert (got.project, got.name, got.ref, got.message) == (
        "default",
        "churn",
        "churn@1",
        "first cut",
    )
    assert (got.digest, got.file_count, got.total_size) == (files.digest, 1, 8)
    assert (got.schema, got.actor) == (schema, ACTOR)
    assert got.created_at.utcoffset() == timedelta(0)
    assert stores.datasets.get_profile("default", "churn", 1) == profile
    assert stores.datasets.get_manifest("default", "churn", 1) == files
    plain = add_dataset(stores, "notes", b"free text")
    assert stores.datasets.get_profile("default", "notes", plain.version) is None
    assert plain.schema is None


def test_unknown_datasets_and_versions_are_named_in_the_error(stores: MetadataStores) -> None:
    store = stores.datasets
    with pytest.raises(NotFound, match="'nope'"):
        store.get_version("default", "nope", None)
    with pytest.raises(NotFound, match="'nope'"):
        store.list_versions("default", "nope")
    with pytest.raises(NotFound, match="'nope'"):
        store.get_manifest("default", "nope", 1)
    store.add_version(_new("churn", b"a"), draft("dataset.added", DS))
    with pytest.raises(NotFound, match="no version 7; its latest is 1"):
        store.get_version("default", "churn", 7)
    with pytest.raises(NotFound, match="no version 7"):
        store.get_manifest("default", "churn", 7)
    with pytest.raises(NotFound, match="no version 7"):
        store.get_profile("default", "churn", 7)
    with pytest.raises(NotFound, match="'churn'"):
        store.get_version("other", "churn", 1)  # a name is found in its own project only


def test_projects_are_separate_namespaces(stores: MetadataStores) -> None:
    store = stores.datasets
    store.add_version(_new("churn", b"a"), draft("dataset.added", DS))
    other = _new("churn", b"zzz", project="fraud")
    version, _ = store.add_version(other, draft("dataset.added", "dataset:fraud/churn"))
    assert version.version == 1
    assert [d.name for d in store.list_datasets("fraud")] == ["churn"]
    assert store.get_version("default", "churn", 1).digest != version.digest


def test_datasets_are_listed_by_name_with_their_latest_version(stores: MetadataStores) -> None:
    assert stores.datasets.list_datasets("default") == []
    add_dataset(stores, "zeta", b"1")
    add_dataset(stores, "alpha", b"1")
    add_dataset(stores, "alpha", b"2")
    add_dataset(stores, "alpha", b"1")  # already version 1
    listed = stores.datasets.list_datasets("default")
    assert [(d.name, d.latest_version) for d in listed] == [("alpha", 2), ("zeta", 1)]
    alpha = listed[0]
    assert alpha.project == "default"
    assert alpha.updated_at >= alpha.created_at
    assert alpha.updated_at == stores.datasets.get_version("default", "alpha", 2).created_at


def test_adding_a_version_appends_one_event_and_re_adding_none(stores: MetadataStores) -> None:
    start = last_seq(stores)
    version = add_dataset(stores, "churn", b"a")
    add_dataset(stores, "churn", b"a")
    (event,) = events_since(stores, start)
    assert (event.action, event.entity, event.actor) == ("dataset.added", DS, ACTOR)
    assert event.after is not None
    assert (event.after["version"], event.after["digest"]) == (1, version.digest)
    assert event.time == version.created_at


def test_digest_type_survives_the_store(stores: MetadataStores) -> None:
    version = add_dataset(stores, "d", b"q")
    assert version.digest == manifest(b"q").digest
    assert isinstance(version.digest, str)
    assert version.digest.startswith("blake3:")
    assert Digest(version.digest) == version.digest
