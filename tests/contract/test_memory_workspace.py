"""A workspace in memory (LOOPML_DB_URL=memory://): every metadata store in this process's
memory, blobs where LOOPML_ARTIFACTS says. The workspace-level tests run on it through the
`workspace` fixture; here, what only it does: each open is a fresh, empty workspace of its own."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from loopml.adapters.memory.database import MEMORY_URL
from loopml.adapters.memory.leases import MemoryLeases
from loopml.adapters.memory.runs import MemoryRunStore
from loopml.bootstrap import open_workspace
from loopml.settings import Settings


def test_a_memory_workspace_keeps_its_records_in_memory_and_its_blobs_in_the_folder(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(MEMORY_URL)
    ws = open_workspace(settings)
    try:
        assert ws.db is None
        assert isinstance(ws.stores.runs, MemoryRunStore)
        assert isinstance(ws.stores.leases, MemoryLeases)
        data = tmp_path / "x.csv"
        data.write_text("a,b\n1,2\n")
        ws.data.add(data, name="x", project="default")
        with ws.tracking.start_run(project="default", name="r") as run:
            run.log_metric("loss", 0.5)
        assert ws.tracking.get(run.id).metrics == {"loss": 0.5}
        assert any(p.is_file() for p in Path(settings.artifacts_url).rglob("*"))  # its blob
        ws.data.get("x@1", "default", tmp_path / "out")  # read back from there, hash-checked
        assert (tmp_path / "out" / "x.csv").read_text() == data.read_text()
        assert [e.action for e in ws.audit.log(limit=10)][-1] == "dataset.version_added"
        assert not list(settings.home.glob("*.db"))  # no database file was made
    finally:
        ws.close()


def test_each_open_of_a_memory_workspace_is_fresh_and_its_own(
    make_settings: Callable[..., Settings],
) -> None:
    first = open_workspace(make_settings(MEMORY_URL))
    second = open_workspace(make_settings(MEMORY_URL))
    try:
        with first.tracking.start_run(project="default", name="only-in-first"):
            pass
        assert first.tracking.search(project="default").total == 1
        assert second.tracking.search(project="default").total == 0
        assert second.audit.log(limit=10) == []
    finally:
        first.close()
        second.close()


def test_what_a_memory_workspace_cannot_do_is_refused_with_the_fix(
    make_settings: Callable[..., Settings],
) -> None:
    """Steps in other processes, blob collection and schema upgrades need records other
    processes can read: each is refused with what to use instead, before any work starts."""
    import pytest

    from loopml.bootstrap import garbage_collector, upgrade_schema
    from loopml.errors import InvalidInput
    from loopml.pipelines import run_pipeline
    from loopml.steps import pipeline, step

    @step
    def one() -> int:
        return 1

    @pipeline
    def tiny() -> None:
        one()

    settings = make_settings(MEMORY_URL)
    ws = open_workspace(settings)
    try:
        for executor in ("processes", "ray"):
            with pytest.raises(InvalidInput, match="--executor local"):
                run_pipeline(tiny, executor=executor, workspace=ws)
        with pytest.raises(InvalidInput, match="can simply be deleted"):
            garbage_collector(ws)
        with pytest.raises(InvalidInput, match="no schema to upgrade"):
            upgrade_schema(settings)
        assert ws.tracking.search(project="default").total == 0  # no run was started
    finally:
        ws.close()
