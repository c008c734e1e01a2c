"""The PipelineStore and LineageStore contract (one `PipelineRecords`): what each step run read
and wrote, the step cache (served only from a finished run of the same project), and the links
between dataset versions, runs and model versions, both ways."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from loopml.domain.records import PRODUCES_TAG, RunId, RunStatus
from loopml.errors import InvalidInput, NotFound
from loopml.ports import ArtifactRef, CachedStep
from loopml.testing.contracts.stores import (
    MetadataStores,
    add_dataset,
    artifact,
    draft,
    register_model,
    start_run,
)

__all__ = [
    "test_a_run_lists_its_children_oldest_first",
    "test_an_artifact_must_be_named_by_its_manifest",
    "test_datasets_are_linked_to_the_runs_that_read_and_made_them",
    "test_model_versions_are_found_by_the_runs_that_made_them",
    "test_step_io_must_be_recorded_in_the_runs_project",
    "test_step_io_reads_back_and_names_who_made_and_read_each_artifact",
    "test_the_cache_serves_the_latest_finished_run_of_the_project",
]


def _finish(stores: MetadataStores, run_id: RunId) -> None:
    stores.runs.end_run(
        run_id, RunStatus.FINISHED, None, datetime.now(UTC), draft("run.finished", "run:default")
    )


def _record(
    stores: MetadataStores,
    run_id: RunId,
    inputs: dict[str, ArtifactRef],
    outputs: list[ArtifactRef],
    *,
    cache_key: str | None = None,
    project: str = "default",
) -> None:
    stores.pipelines.record_io(
        run_id,
        inputs=inputs,
        outputs=outputs,
        project=project,
        cache_key=cache_key,
        step_name="train",
    )


def test_step_io_reads_back_and_names_who_made_and_read_each_artifact(
    stores: MetadataStores,
) -> None:
    raw, features, model, report = (artifact(v) for v in (b"raw", b"features", b"model", b"r"))
    prepare = start_run(stores, "prepare").id
    train = start_run(stores, "train").id
    _record(stores, prepare, {"source": raw}, [features])
    _record(stores, train, {"x": features, "y": raw}, [model, report])
    _record(stores, train, {"x": features}, [model, report])  # recorded again: the same
    assert stores.pipelines.io_of(train) == ({"x": features, "y": raw}, [model, report])
    assert stores.pipelines.io_of(prepare) == ({"source": raw}, [features])
    assert stores.pipelines.artifact_runs(features.digest) == ([prepare], [train])
    assert stores.pipelines.artifact_runs(raw.digest) == ([], sorted([prepare, train]))
    assert stores.pipelines.artifact_runs(model.digest) == ([train], [])
    assert stores.pipelines.artifact_runs(artifact(b"never").digest) == ([], [])
    alone = start_run(stores, "alone").id
    assert stores.pipelines.io_of(alone) == ({}, [])


def test_the_cache_serves_the_latest_finished_run_of_the_project(stores: MetadataStores) -> None:
    out = artifact(b"out")
    first = start_run(stores, "first").id
    _record(stores, first, {}, [out], cache_key="k1")
    assert stores.pipelines.cached("default", "k1") is None  # still running
    _finish(stores, first)
    assert stores.pipelines.cached("default", "k1") == CachedStep(first, (out,))
    assert stores.pipelines.cached("default", "other-key") is None
    assert stores.pipelines.cached("fraud", "k1") is None  # never another project's outputs
    again = artifact(b"again")
    second = start_run(stores, "second").id
    _record(stores, second, {"x": out}, [again, out], cache_key="k1")
    assert stores.pipelines.cached("default", "k1") is None  # the entry moved to a running run
    _finish(stores, second)
    assert stores.pipelines.cached("default", "k1") == CachedStep(second, (again, out))
    failed = start_run(stores, "failed").id
    _record(stores, failed, {}, [out], cache_key="k2")
    stores.runs.end_run(
        failed, RunStatus.FAILED, "boom", datetime.now(UTC), draft("run.failed", "run:default")
    )
    assert stores.pipelines.cached("default", "k2") is None


def test_an_artifact_must_be_named_by_its_manifest(stores: MetadataStores) -> None:
    run_id = start_run(stores).id
    honest, other = artifact(b"a"), artifact(b"b")
    forged = ArtifactRef(honest.digest, "json", "dict", other.manifest)
    with pytest.raises(InvalidInput, match=honest.digest):
        _record(stores, run_id, {}, [forged])
    assert stores.pipelines.io_of(run_id) == ({}, [])


def test_step_io_must_be_recorded_in_the_runs_project(stores: MetadataStores) -> None:
    elsewhere = start_run(stores, project="fraud").id
    with pytest.raises(InvalidInput):
        _record(stores, elsewhere, {}, [artifact(b"x")])
    with pytest.raises(NotFound):
        _record(stores, RunId("0" * 32), {}, [artifact(b"x")])
    assert stores.pipelines.io_of(elsewhere) == ({}, [])


def test_datasets_are_linked_to_the_runs_that_read_and_made_them(stores: MetadataStores) -> None:
    add_dataset(stores, "churn", b"1")
    add_dataset(stores, "churn", b"2")
    readers = sorted([start_run(stores, "a").id, start_run(stores, "b").id])
    for run_id in readers:
        stores.runs.add_inputs_and_artifacts(run_id, [("default", "churn", 2)], [])
    assert stores.pipelines.runs_using_dataset("default", "churn", 2) == readers
    assert stores.pipelines.runs_using_dataset("default", "churn", 1) == []
    assert stores.pipelines.runs_using_dataset("fraud", "churn", 2) == []
    maker = start_run(stores, "loop", tags={f"{PRODUCES_TAG}train": "churn@2"}).id
    start_run(stores, "other", tags={f"{PRODUCES_TAG}train": "churn@3", "x": "churn@2"})
    start_run(stores, "elsewhere", project="fraud", tags={f"{PRODUCES_TAG}train": "churn@2"})
    assert stores.pipelines.runs_producing_dataset("default", "churn@2") == [maker]
    assert stores.pipelines.runs_producing_dataset("default", "churn@9") == []


def test_model_versions_are_found_by_the_runs_that_made_them(stores: MetadataStores) -> None:
    first, second, idle = (start_run(stores, name).id for name in ("first", "second", "idle"))
    register_model(stores, "zeta", run_id=first)
    register_model(stores, "alpha", run_id=second)
    register_model(stores, "alpha", run_id=first, content=b"other")
    register_model(stores, "alpha")  # from no run
    found = stores.pipelines.model_versions_of([first, second, idle])
    assert found == [
        ("default", "alpha", 1, second),
        ("default", "alpha", 2, first),
        ("default", "zeta", 1, first),
    ]
    assert stores.pipelines.model_versions_of([idle]) == []
    assert stores.pipelines.model_versions_of([]) == []


def test_a_run_lists_its_children_oldest_first(stores: MetadataStores) -> None:
    parent = start_run(stores, "pipeline").id
    children = []
    for name in ("step-1", "step-2", "step-3"):
        children.append(start_run(stores, name, parent_id=parent).id)
        time.sleep(0.002)  # distinct start times
    assert stores.pipelines.children_of(parent) == children
    assert stores.pipelines.children_of(children[0]) == []
