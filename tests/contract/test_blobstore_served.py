"""A team server's blob limit. (The BlobStore contract through a live team server is
`test_blobstore_contract.py`'s `server` backend.)"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from loopml.adapters.remote import RemoteBlobStore, RemoteClient
from loopml.settings import Settings
from loopml.testing.blobstore_contract import FsspecBlobProbe
from loopml.testing.team_server import live_server


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
