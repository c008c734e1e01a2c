"""The contract suites' fixtures, on every backend of `loopml.testing.backends` (the one list):
`stores` (the metadata stores) and `blob_store` with its `blob_probe` (what a backend needs from
the session comes through the `services` fixture of `tests/conftest.py`, which also has the
suites' asserts rewritten). A test module imports a
suite (`from loopml.testing.contracts.runs import *`) and pytest runs it on each backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from loopml.ports import BlobStore
from loopml.testing.backends import (
    BLOB_BACKENDS,
    METADATA_BACKENDS,
    Services,
    open_blobs,
    open_metadata,
)
from loopml.testing.blobstore_contract import BlobProbe
from loopml.testing.contracts.stores import MetadataStores


@pytest.fixture(params=METADATA_BACKENDS)
def stores(request: pytest.FixtureRequest, services: Services) -> Iterator[MetadataStores]:
    """Fresh metadata stores on each backend: every suite runs on each, so none drift apart."""
    with open_metadata(request.param, services) as opened:
        yield opened


@pytest.fixture(params=BLOB_BACKENDS)
def blob_backend(
    request: pytest.FixtureRequest, services: Services
) -> Iterator[tuple[BlobStore, BlobProbe]]:
    with open_blobs(request.param, services) as pair:
        yield pair


@pytest.fixture
def blob_store(blob_backend: tuple[BlobStore, BlobProbe]) -> BlobStore:
    return blob_backend[0]


@pytest.fixture
def blob_probe(blob_backend: tuple[BlobStore, BlobProbe]) -> BlobProbe:
    return blob_backend[1]
