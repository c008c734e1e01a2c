"""Fixtures of the integration tests (helpers they import live in `served.py`, `logged.py`,
`team.py`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from logged import frame
from team import team_server

from loopml.bootstrap import Workspace
from loopml.testing.seaweed import S3Endpoint


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


@pytest.fixture
def team(
    tmp_path: Path, postgres_database: str, s3_endpoint: S3Endpoint
) -> Iterator[dict[str, Any]]:
    """`loopml server` on PostgreSQL and S3, with alice (admin) and bob (viewer on fraud)."""
    with team_server(tmp_path, postgres_database, s3_endpoint) as running:
        yield running
