"""The services' fixtures: a workspace in memory (its blobs in a temporary folder)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loopml.bootstrap import Workspace, open_workspace
from loopml.settings import Settings


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    home = tmp_path / "ws"
    home.mkdir()
    workspace = open_workspace(
        Settings(
            home=home,
            db_url="memory://",
            artifacts_url=str(home / "artifacts"),
            actor="tester",
            cache_dir=home / "cache",
        )
    )
    yield workspace
    workspace.close()
