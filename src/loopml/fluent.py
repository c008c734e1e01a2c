"""The convenience tracking API: `loopml.start_run()` over the process-wide workspace.

The current run lives in a `ContextVar`, so threads and asyncio tasks each see their own.
"""

from __future__ import annotations

from typing import Any

from loopml.bootstrap import default_workspace
from loopml.domain.records import Run, RunId
from loopml.ports import RunPage
from loopml.services.tracking import ActiveRun, current_run


def start_run(
    name: str | None = None,
    *,
    project: str | None = None,
    tags: dict[str, Any] | None = None,
    parent: ActiveRun | str | None = None,
    autolog: bool | None = None,
) -> ActiveRun:
    """Start a run in the workspace of this process (`LOOPML_*` settings, else ./.loopml/).

    Use it in a `with` block: the run ends when the block ends, and is marked failed with the
    error text if an exception escapes it. Until it ends it is this context's current run.
    `autolog=True` logs the fits made in it (see `loopml.autolog`), `False` does not even when
    `loopml.autolog()` is on; None follows `loopml.autolog()`.
    """
    workspace = default_workspace()
    parent_id = parent.id if isinstance(parent, ActiveRun) else parent
    run = workspace.tracking.start_run(
        project=project or workspace.project,
        name=name,
        tags=tags,
        parent_id=RunId(parent_id) if parent_id else None,
    )
    if autolog is not None:
        from loopml.autologging import choose_for_run  # patches libraries: only when asked

        choose_for_run(run, autolog)
    return run.activate()


def active_run() -> ActiveRun | None:
    """The run started in this context (or the pipeline step running here), if any."""
    run = current_run.get()
    return run if run is not None and not run.ended else None


def get_run(run_id: str) -> Run:
    return default_workspace().tracking.get(run_id)


def search_runs(
    filter: str | None = None,
    order_by: str | None = None,
    *,
    project: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> RunPage:
    """Runs matching `filter` (e.g. "metrics.f1 > 0.8 and params.model = 'gbm'")."""
    workspace = default_workspace()
    return workspace.tracking.search(
        project=project or workspace.project,
        filter=filter,
        order_by=order_by,
        limit=limit,
        offset=offset,
    )
