"""Versioned datasets from Python: `loopml.data.add("train.csv", name="churn")`."""

from __future__ import annotations

from pathlib import Path

from loopml.bootstrap import default_workspace
from loopml.domain.records import DatasetSummary, DatasetVersion
from loopml.services.data import DatasetDiff


def add(
    path: str | Path, name: str | None = None, *, message: str = "", project: str | None = None
) -> DatasetVersion:
    """Add a file or folder as a dataset version; the same bytes give back the same version."""
    workspace = default_workspace()
    return workspace.data.add(
        Path(path), name=name, message=message, project=project or workspace.project
    ).version


def get(ref: str, *, project: str | None = None) -> DatasetVersion:
    """The version `ref` names: `churn@2`, `churn@latest` or `churn`."""
    workspace = default_workspace()
    return workspace.data.resolve(ref, project or workspace.project)


def download(ref: str, dest: str | Path, *, project: str | None = None) -> list[Path]:
    """Write a version's files under `dest`, each checked against its hash."""
    workspace = default_workspace()
    return workspace.data.get(ref, project or workspace.project, Path(dest))


def list_datasets(*, project: str | None = None) -> list[DatasetSummary]:
    workspace = default_workspace()
    return workspace.data.datasets(project or workspace.project)


def versions(name: str, *, project: str | None = None) -> list[DatasetVersion]:
    workspace = default_workspace()
    return workspace.data.versions(name, project or workspace.project)


def diff(old: str, new: str, *, project: str | None = None) -> DatasetDiff:
    workspace = default_workspace()
    return workspace.data.diff(old, new, project or workspace.project)
