"""Datasets: the versions of a dataset, and the describer of tabular files that gives a
version its schema and profile."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from loopml.domain.manifest import Manifest
from loopml.domain.records import (
    DatasetSummary,
    DatasetVersion,
    EventDraft,
)


@dataclass(frozen=True)
class NewDatasetVersion:
    project: str
    name: str
    manifest: Manifest
    message: str
    schema: dict[str, Any] | None
    profile: dict[str, Any] | None


class DatasetStore(Protocol):
    def add_version(self, new: NewDatasetVersion, event: EventDraft) -> tuple[DatasetVersion, bool]:
        """Store `new` as the next version, or return the existing one with the same digest.

        The flag is True when a version was created.
        """
        ...

    def get_version(self, project: str, name: str, version: int | None) -> DatasetVersion:
        """A version by number, or the latest when `version` is None."""
        ...

    def get_manifest(self, project: str, name: str, version: int) -> Manifest: ...

    def get_profile(self, project: str, name: str, version: int) -> dict[str, Any] | None: ...

    def list_datasets(self, project: str) -> list[DatasetSummary]: ...

    def list_versions(self, project: str, name: str) -> list[DatasetVersion]: ...


class TableDescriber(Protocol):
    """Reads a tabular file and describes it for the dataset version."""

    def is_tabular(self, path: Path) -> bool: ...

    def describe(self, path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
        """The (schema, profile) of a CSV or Parquet file, as stored JSON."""
        ...
