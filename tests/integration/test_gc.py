"""`loopml gc` never loses a blob a record names: one of everything made through the public API
reads back (hash-checked) after a collection with no grace period; and each way a collection
could race a writer is played out step by step. On each workspace of
`loopml.testing.backends.COLLECTED_BACKENDS`: SQLite with a folder, PostgreSQL with S3."""

from __future__ import annotations

import importlib.util
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from logged import frame, serve

from loopml.adapters.artifacts import FsspecBlobStore
from loopml.adapters.blob_sweep import blob_sweep
from loopml.adapters.local_files import local_root, remote_fs
from loopml.adapters.prediction_log import now_us
from loopml.adapters.sql import tables as t
from loopml.adapters.sql.blob_references import NOT_REFERENCES, SqlBlobReferences
from loopml.adapters.sql.events import SqlEventLog
from loopml.adapters.sql.leases import SqlLeases
from loopml.bootstrap import Workspace, garbage_collector, open_workspace
from loopml.domain.hashing import Digest, digest_bytes
from loopml.errors import Conflict, NotFound
from loopml.monitoring import monitors
from loopml.pipelines import run_pipeline
from loopml.ports import BlobSweep, StoredBlob
from loopml.services.gc import LEASE, ORPHAN_BLOB, GarbageCollector
from loopml.steps import load_pipeline
from loopml.testing.backends import COLLECTED_BACKENDS, Services, collected_settings
from loopml.testing.seaweed import S3Endpoint

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = f"{ROOT / 'examples' / 'churn' / 'pipeline.py'}:churn"


@pytest.fixture(params=COLLECTED_BACKENDS)
def ws(request: pytest.FixtureRequest, services: Services) -> Iterator[Workspace]:
    workspace = open_workspace(collected_settings(request.param, services))
    yield workspace
    workspace.close()


def _sweep(ws: Workspace) -> BlobSweep:
    return blob_sweep(ws.settings.artifacts_url, ws.settings.storage_options)


def _past_this_second(ws: Workspace) -> None:
    """An object store lists times in whole seconds, and a collection counts each at the end of
    its second (never younger than it may be): before a collection with no grace period, let
    the second of the newest write pass."""
    if local_root(ws.settings.artifacts_url) is None:
        time.sleep(1.02 - time.time() % 1)


def _listed(ws: Workspace, digest: Digest) -> StoredBlob:
    return next(b for b in _sweep(ws).blobs() if b.digest == digest)


def _add_churn(ws: Workspace, tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("churn_data", ROOT / "examples/churn/data.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ws.data.add(
        module.write_churn(tmp_path / "churn.csv", rows=800, seed=0),
        name="churn",
        project="default",
    )


def _log_files(ws: Workspace) -> dict[str, int]:
    """The prediction log's files (Parquet under predictions/ and feedback/), with sizes."""
    from fsspec.core import url_to_fs

    fs, root = url_to_fs(ws.settings.artifacts_url, **ws.settings.storage_options)
    fs.invalidate_cache()
    found: dict[str, int] = {}
    for folder in ("predictions", "feedback"):
        if fs.exists(f"{root}/{folder}"):
            found |= {p: i["size"] for p, i in fs.find(f"{root}/{folder}", detail=True).items()}
    return found


def _make_one_of_everything(ws: Workspace, tmp_path: Path) -> None:
    _add_churn(ws, tmp_path)  # a table, with a schema and a profile
    docs = tmp_path / "docs"
    (docs / "deep").mkdir(parents=True)
    (docs / "readme.md").write_text("# docs\n")
    (docs / "deep" / "notes.txt").write_text("deep notes\n")
    ws.data.add(docs, name="docs", project="default")  # a folder
    with ws.tracking.start_run(project="default", name="hand") as run:  # + its package list
        run.log_artifact(docs, "copied")
        run.log_text("a text artifact", "notes/text.txt")
        run.use_dataset("docs@1")
    pipeline = load_pipeline(EXAMPLE)
    assert run_pipeline(pipeline, {"lr": 0.1}, workspace=ws).ok  # step outputs, a model
    served_at = now_us()
    served = frame(1_000, seed=5)
    served["churned"] = 0
    serve(ws, served, at_us=served_at, labels=[0] * 1_000)  # the prediction log
    monitors.create("drift", deployment="churn-prod", reference="churn", workspace=ws)
    monitors.run("drift", now_us=served_at, workspace=ws)  # a summary and a report


def _read_everything_back(ws: Workspace, tmp_path: Path) -> int:
    """Read every object of every record, each checked against its hash; how many."""
    read = 0
    for summary in ws.data.datasets("default"):
        for version in ws.data.versions(summary.name, "default"):
            out = tmp_path / "back" / f"{summary.name}-{version.version}"
            read += len(ws.data.get(f"{summary.name}@{version.version}", "default", out))
    runs = ws.tracking.search(project="default", limit=1000).runs
    assert len(runs) > 7  # the hand run, the pipeline and its steps
    for run in runs:
        for artifact in ws.tracking.artifacts(run.id):
            ws.tracking.fetch_artifact(run.id, artifact.path, tmp_path / "back" / uuid.uuid4().hex)
            read += 1
        inputs, outputs = ws.pipeline_records.io_of(run.id)
        for ref in [*inputs.values(), *outputs]:
            ws.pipelines.values.load(ref)
            read += 1
    for model in ws.registry.models("default"):
        for model_version in ws.registry.versions(model.name, "default"):
            model_ref = f"{model.name}/{model_version.version}"
            loaded = ws.registry.load(model_ref, project="default")
            assert loaded.raw is not None
            read += 1
    for monitor in ws.monitors.list("default"):
        assert monitor.summary_digest is not None
        ws.blobs.read_bytes(monitor.summary_digest)
        for monitor_run in ws.monitors.history(monitor.name, "default"):
            assert monitors.report_document(monitor_run.id, workspace=ws)["monitor"] == "drift"
            read += 2
    return read


def test_every_blob_a_record_names_survives_a_collection_and_reads_back(
    ws: Workspace, tmp_path: Path
) -> None:
    _make_one_of_everything(ws, tmp_path)
    orphan = ws.blobs.put_bytes(b"nothing names me").digest
    log_before = _log_files(ws)
    assert log_before  # predictions and feedback were logged

    _past_this_second(ws)
    report = garbage_collector(ws).collect(grace_s=0)

    assert report.kept_named > 10
    freed = {f.name for f in report.freed if f.kind == ORPHAN_BLOB}
    assert orphan in freed
    assert not ws.blobs.exists(orphan)
    assert _log_files(ws) == log_before  # the prediction log is not blobs: never touched
    assert _read_everything_back(ws, tmp_path) > 20
    rerun = run_pipeline(load_pipeline(EXAMPLE), {"lr": 0.1}, workspace=ws)  # from the cache
    assert rerun.ok
    assert {r.status for r in rerun.steps.values()} == {"cached"}
    again = garbage_collector(ws).collect(grace_s=0).freed  # (S3: the rerun's reuse markers)
    assert [f for f in again if f.kind == ORPHAN_BLOB] == []


def test_every_table_is_searched_for_blob_references_or_excused() -> None:
    """A new table is searched by default; an excused one must exist (no stale excuses)."""
    assert set(NOT_REFERENCES) <= set(t.metadata.tables)
    for name in ("dataset_versions", "model_versions", "run_artifacts", "runs", "artifacts"):
        assert name not in NOT_REFERENCES
    for name in ("step_cache", "run_io", "monitors", "monitor_runs", "loops", "loop_runs"):
        assert name not in NOT_REFERENCES


def test_a_dry_run_lists_and_changes_nothing(ws: Workspace) -> None:
    orphan = ws.blobs.put_bytes(b"orphan").digest
    events = len(ws.audit.log(limit=100))
    _past_this_second(ws)
    report = garbage_collector(ws).collect(grace_s=0, dry_run=True)
    assert [(f.kind, f.name) for f in report.freed] == [(ORPHAN_BLOB, orphan)]
    assert report.totals()[0].size == len(b"orphan")
    assert ws.blobs.exists(orphan)
    assert len(ws.audit.log(limit=100)) == events


def test_a_blob_younger_than_the_grace_period_is_kept(ws: Workspace) -> None:
    young = ws.blobs.put_bytes(b"young orphan").digest
    report = garbage_collector(ws).collect(grace_s=3600)
    assert report.freed == ()
    assert report.kept_young == 1
    assert ws.blobs.exists(young)


def test_a_blob_reused_after_it_was_listed_is_not_set_aside(ws: Workspace) -> None:
    orphan = ws.blobs.put_bytes(b"about to be reused").digest
    listed = _listed(ws, orphan)
    assert ws.blobs.exists(orphan)  # a writer finds it and will name it: its age moves
    assert not _sweep(ws).set_aside(listed)
    assert ws.blobs.read_bytes(orphan) == b"about to be reused"


def test_a_blob_set_aside_is_not_found_by_a_writer_who_stores_it_again(ws: Workspace) -> None:
    data = b"set aside, then written again"
    digest = ws.blobs.put_bytes(data).digest
    sweep = _sweep(ws)
    assert sweep.set_aside(_listed(ws, digest))
    assert not ws.blobs.exists(digest)  # the writer uploads instead of relying on it
    assert ws.blobs.put_bytes(data).digest == digest
    sweep.purge(digest)  # the collection deletes its copy, not the writer's
    assert ws.blobs.read_bytes(digest) == data


def test_a_blob_written_by_another_process_after_a_listing_reads_back(ws: Workspace) -> None:
    """A collection's listing in this process never hides a blob another process wrote after
    it: a reader sharing the store's connection asks the store, not a cached listing."""
    data = b"written elsewhere after the listing"
    digest = digest_bytes(data)
    ws.blobs.put_bytes(_same_folder_as(digest))
    list(_sweep(ws).blobs())  # a collection lists the folders: the blob's, without it yet
    with pytest.raises(NotFound):
        ws.blobs.read_bytes(digest)
    elsewhere = FsspecBlobStore(
        ws.settings.artifacts_url, {**ws.settings.storage_options, "skip_instance_cache": True}
    )
    assert elsewhere.put_bytes(data).digest == digest
    assert ws.blobs.read_bytes(digest) == data


def _same_folder_as(digest: Digest) -> bytes:
    """Other bytes whose blob lands in the same folder as `digest`'s (same first two hex)."""
    for i in range(100_000):
        data = f"neighbour {i}".encode()
        if digest_bytes(data)[7:9] == digest[7:9]:
            return data
    raise AssertionError("no neighbour found")


def test_a_collection_removes_only_reuse_markers_it_knows(
    make_settings: Any, s3_endpoint: S3Endpoint
) -> None:
    """A file in the markers' folder of an object store that is not a marker (a note, a folder
    object some S3 consoles make) is never taken for a stray: removing it could take every
    marker with it. (A folder store keeps no markers.)"""
    settings = make_settings(
        artifacts_url=f"s3://{s3_endpoint.bucket}/{uuid.uuid4().hex}",
        storage_options=s3_endpoint.storage_options(),
    )
    ws = open_workspace(settings)
    reused = ws.blobs.put_bytes(b"reused").digest
    assert ws.blobs.exists(reused)  # writes its marker on S3
    root = ws.settings.artifacts_url.rstrip("/")
    fs, base = remote_fs(root, ws.settings.storage_options)
    note = f"{base}/reused/README.txt"
    fs.pipe_file(note, b"kept")
    ws.tracking.store.create_run(*_run_naming(reused))
    _past_this_second(ws)
    garbage_collector(ws).collect(grace_s=0)
    assert fs.cat_file(note) == b"kept"
    assert ws.blobs.read_bytes(reused) == b"reused"
    ws.close()


def test_a_record_naming_a_blob_during_the_collection_puts_it_back(
    ws: Workspace, tmp_path: Path
) -> None:
    """The references are read again after the blobs are set aside."""
    path = tmp_path / "late.txt"
    path.write_text("named late")
    digest = digest_bytes(path.read_bytes())
    ws.blobs.put_file(path)
    real = blob_sweep(ws.settings.artifacts_url, ws.settings.storage_options)

    class RecordArrives:
        """The sweep, with a writer's record landing just after the blob is set aside."""

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def set_aside(self, blob: StoredBlob) -> bool:
            moved = real.set_aside(blob)
            ws.tracking.store.create_run(*_run_naming(digest))
            return moved

    db = ws.db
    collector = GarbageCollector(
        RecordArrives(), SqlBlobReferences(db), SqlLeases(db), SqlEventLog(db), "tester"
    )
    _past_this_second(ws)
    report = collector.collect(grace_s=0)
    assert report.freed == ()
    assert report.kept_reused == 1
    assert ws.blobs.read_bytes(digest) == b"named late"


def _run_naming(digest: str) -> tuple[Any, Any]:
    from loopml.domain.records import EventDraft, RunArtifact
    from loopml.ports import NewRun

    artifact = RunArtifact("late.txt", Digest(digest), len(b"named late"))
    new = NewRun("default", "late", {}, {}, artifacts=(artifact,), finished=True)
    return new, EventDraft("run.created", "run:default", "tester")


def test_an_interrupted_collection_is_completed_by_the_next_one(ws: Workspace) -> None:
    named = ws.blobs.put_bytes(b"named").digest
    orphan = ws.blobs.put_bytes(b"orphan").digest
    sweep = _sweep(ws)
    for digest in (named, orphan):  # then the collection died
        assert sweep.set_aside(_listed(ws, digest))
    ws.tracking.store.create_run(*_run_naming(named))
    _past_this_second(ws)
    report = garbage_collector(ws).collect(grace_s=0)
    assert report.recovered == 2
    assert ws.blobs.read_bytes(named) == b"named"
    if report.freed == ():  # on S3 putting back is a copy: a new object, young again
        _past_this_second(ws)
        report = garbage_collector(ws).collect(grace_s=0)
    assert [f.name for f in report.freed] == [orphan]
    assert ws.blobs.read_bytes(named) == b"named"


def test_one_collection_at_a_time(ws: Workspace) -> None:
    assert SqlLeases(ws.db).acquire(LEASE, "another collector", ttl_s=60)
    orphan = ws.blobs.put_bytes(b"orphan").digest
    with pytest.raises(Conflict, match="Another garbage collection"):
        garbage_collector(ws).collect(grace_s=0)
    assert ws.blobs.exists(orphan)
    _past_this_second(ws)
    assert garbage_collector(ws).collect(grace_s=0, dry_run=True).freed  # a dry run may look
    SqlLeases(ws.db).release(LEASE, "another collector")
    assert garbage_collector(ws).collect(grace_s=0).freed


def test_the_references_are_every_digest_in_the_records(ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a\n1\n")
    ws.data.add(path, name="x", project="default")
    found = SqlBlobReferences(ws.db).referenced()
    assert digest_bytes(path.read_bytes()) in found
