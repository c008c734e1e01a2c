"""The contract suites' fixtures, on every backend of `loopml.testing.backends` (the one list):
`stores` (the metadata stores) and `blob_store` with its `blob_probe`. A test module imports a
suite (`from loopml.testing.contracts.runs import *`) and pytest runs it on each backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# The suites' plain asserts get pytest's detailed messages only if rewritten before import.
pytest.register_assert_rewrite("loopml.testing.contracts", "loopml.testing.blobstore_contract")

from loopml.ports import BlobStore  # noqa: E402
from loopml.settings import Settings  # noqa: E402
from loopml.testing.backends import (  # noqa: E402
    BLOB_BACKENDS,
    METADATA_BACKENDS,
    Services,
    open_blobs,
    open_metadata,
)
from loopml.testing.blobstore_contract import BlobProbe  # noqa: E402
from loopml.testing.contracts.stores import MetadataStores  # noqa: E402
from loopml.testing.team_server import postgres_schema_url  # noqa: E402


@pytest.fixture
def services(
    request: pytest.FixtureRequest, tmp_path: Path, make_settings: Callable[..., Settings]
) -> Services:
    """The session's services, started only for the backends that ask for them."""
    return Services(
        folder=tmp_path / "backend",
        postgres_url=lambda: postgres_schema_url(request.getfixturevalue("postgres_database")),
        settings=make_settings,
        s3=lambda: request.getfixturevalue("s3_endpoint"),
    )


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
