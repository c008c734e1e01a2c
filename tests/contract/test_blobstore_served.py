"""The BlobStore contract through a live team server: uploads and downloads stream over HTTP,
and the client checks every byte against the digest (the server's own store is a local folder,
which the probe reaches behind its back to corrupt it)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

if "loopml.testing.blobstore_contract" not in sys.modules:  # pragma: no cover
    pytest.register_assert_rewrite("loopml.testing.blobstore_contract")


from loopml.adapters.remote import RemoteBlobStore, RemoteClient
from loopml.settings import Settings
from loopml.testing.blobstore_contract import *  # noqa: F403
from loopml.testing.blobstore_contract import FsspecBlobProbe
from loopml.testing.team_server import LiveServer, live_server


@pytest.fixture
def served(tmp_path: Path, make_settings: Callable[..., Settings]) -> Iterator[LiveServer]:
    with live_server(make_settings(artifacts_url=str(tmp_path / "served-blobs"))) as server:
        yield server


@pytest.fixture
def blob_store(served: LiveServer) -> Iterator[RemoteBlobStore]:
    client = RemoteClient(served.url, served.token)
    yield RemoteBlobStore(client)
    client.close()


@pytest.fixture
def blob_probe(served: LiveServer) -> FsspecBlobProbe:
    return FsspecBlobProbe(served.workspace.settings.artifacts_url, {})


def test_an_upload_over_the_server_limit_is_refused_and_nothing_is_kept(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    from loopml.errors import InvalidInput

    folder = tmp_path / "limited"
    with live_server(make_settings(artifacts_url=str(folder)), max_upload_bytes=1000) as server:
        client = RemoteClient(server.url, server.token)
        try:
            store = RemoteBlobStore(client)
            store.put_bytes(b"x" * 1000)
            with pytest.raises(InvalidInput, match="1000 bytes"):
                store.put_bytes(b"y" * 1001)
        finally:
            client.close()
    assert len(FsspecBlobProbe(str(folder), {}).stored_digests()) == 1
