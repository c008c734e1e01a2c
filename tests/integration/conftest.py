"""Fixtures of the integration tests (helpers they import live in `served.py`, `logged.py`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from logged import frame

from loopml.bootstrap import Workspace


@pytest.fixture
def churn(workspace: Any, tmp_path: Path) -> Workspace:
    """A workspace with dataset churn@1 (the reference, with a label column)."""
    ws: Workspace = workspace
    reference = frame(5_000, seed=1)
    reference["churned"] = (reference["tenure"] < 20).astype(int)
    path = tmp_path / "churn.parquet"
    reference.to_parquet(path)
    ws.data.add(path, name="churn", project="default")
    return ws
