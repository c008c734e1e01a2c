"""FsspecBlobStore beyond the BlobStore contract (which `test_blobstore_contract.py` runs on every
blob backend): its layout, its local write path, and failures of the backend."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopml.adapters.artifacts import FsspecBlobStore
from loopml.domain.hashing import CHUNK_BYTES, digest_bytes
from loopml.errors import Conflict, Unavailable
from loopml.testing.backends import BLOB_BACKENDS, Services, open_blobs
from loopml.testing.blobstore_contract import FsspecBlobProbe


@pytest.fixture(params=[p for p in BLOB_BACKENDS if p.values[0] in ("local", "s3")])
def fsspec_store(request: pytest.FixtureRequest, services: Services) -> Iterator[FsspecBlobStore]:
    """An FsspecBlobStore on each of its backends (a local folder, S3)."""
    with open_blobs(request.param, services) as (store, _):
        assert isinstance(store, FsspecBlobStore)
        yield store


# -- beyond the contract: the layout, the local write path, and failures of the backend --------


def test_blobs_live_under_the_documented_layout(fsspec_store: FsspecBlobStore) -> None:
    ref = fsspec_store.put_bytes(b"layout")
    hex_digest = ref.digest.removeprefix("blake3:")
    assert fsspec_store.location(ref.digest) == (
        f"{fsspec_store.url()}/blobs/blake3/{hex_digest[:2]}/{hex_digest[2:]}"
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
    services: Services, tmp_path: Path
) -> None:
    source = tmp_path / "changing.bin"
    source.write_bytes(os.urandom(CHUNK_BYTES + 10))

    def rewrite_tail(nbytes: int) -> None:
        with source.open("r+b") as out:
            out.seek(-10, os.SEEK_END)
            out.write(b"0123456789")

    with open_blobs("s3", services) as (store, probe):
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
