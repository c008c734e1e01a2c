"""The BlobStore contract against FsspecBlobStore on a local folder and on a real S3 server."""

from __future__ import annotations

import os
import socket
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

# The contract's plain asserts get pytest's detailed messages only if rewritten before import.
if "loopml.testing.blobstore_contract" not in sys.modules:  # pragma: no cover
    pytest.register_assert_rewrite("loopml.testing.blobstore_contract")

from loopml.adapters.artifacts import FsspecBlobStore
from loopml.domain.hashing import CHUNK_BYTES, digest_bytes
from loopml.errors import Conflict, Unavailable
from loopml.testing.blobstore_contract import *  # noqa: F403
from loopml.testing.blobstore_contract import FsspecBlobProbe
from loopml.testing.seaweed import S3Endpoint

StoreSpec = tuple[str, dict[str, Any]]


def _s3_spec(endpoint: S3Endpoint) -> StoreSpec:
    """A fresh prefix in the session's bucket, so every test starts from an empty store."""
    return f"s3://{endpoint.bucket}/{uuid.uuid4().hex}", endpoint.storage_options()


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def store_spec(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> StoreSpec:
    if request.param == "s3":
        return _s3_spec(request.getfixturevalue("s3_endpoint"))
    return str(tmp_path_factory.mktemp("blobs")), {}


@pytest.fixture
def blob_store(store_spec: StoreSpec) -> FsspecBlobStore:
    return FsspecBlobStore(*store_spec)


@pytest.fixture
def blob_probe(store_spec: StoreSpec) -> FsspecBlobProbe:
    return FsspecBlobProbe(*store_spec)


# -- beyond the contract: the layout, the local write path, and failures of the backend --------


def test_blobs_live_under_the_documented_layout(blob_store: FsspecBlobStore) -> None:
    ref = blob_store.put_bytes(b"layout")
    hex_digest = ref.digest.removeprefix("blake3:")
    assert blob_store.location(ref.digest) == (
        f"{blob_store.url()}/blobs/blake3/{hex_digest[:2]}/{hex_digest[2:]}"
    )


def test_local_put_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = FsspecBlobStore(str(tmp_path / "store"))
    source = tmp_path / "data.bin"
    source.write_bytes(os.urandom(100_000))
    store.put_file(source)
    store.put_file(source)
    assert list((tmp_path / "store" / "tmp").iterdir()) == []


def test_local_re_add_repairs_a_corrupted_blob(tmp_path: Path) -> None:
    store = FsspecBlobStore(f"file://{tmp_path / 'store'}")
    source = tmp_path / "data.bin"
    source.write_bytes(b"good bytes" * 1000)
    ref = store.put_file(source)
    FsspecBlobProbe(store.url()).overwrite(ref.digest, b"rotten")
    store.put_file(source)
    assert store.read_bytes(ref.digest) == source.read_bytes()


@pytest.mark.s3
def test_s3_put_of_a_file_changing_during_upload_is_a_conflict(
    s3_endpoint: S3Endpoint, tmp_path: Path
) -> None:
    spec = _s3_spec(s3_endpoint)
    store, probe = FsspecBlobStore(*spec), FsspecBlobProbe(*spec)
    source = tmp_path / "changing.bin"
    source.write_bytes(os.urandom(CHUNK_BYTES + 10))

    def rewrite_tail(nbytes: int) -> None:
        with source.open("r+b") as out:
            out.seek(-10, os.SEEK_END)
            out.write(b"0123456789")

    with pytest.raises(Conflict):
        store.put_file(source, progress=rewrite_tail)
    assert probe.stored_digests() == []
    assert store.put_file(source).digest == digest_bytes(source.read_bytes())


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_s3_endpoint_down_is_unavailable() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    store = FsspecBlobStore(
        "s3://bucket/prefix",
        {
            "key": "k",
            "secret": "s",
            "skip_instance_cache": True,
            "client_kwargs": {"endpoint_url": url},
            "config_kwargs": {"connect_timeout": 1, "retries": {"max_attempts": 1}},
        },
    )
    digest = digest_bytes(b"anything")
    with pytest.raises(Unavailable) as caught:
        store.exists(digest)
    assert "s3://bucket/prefix" in caught.value.message
    assert caught.value.retryable
    with pytest.raises(Unavailable):
        store.put_bytes(b"anything")
    with pytest.raises(Unavailable):
        store.read_bytes(digest)
