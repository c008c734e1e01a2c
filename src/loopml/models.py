"""The model registry from Python: `loopml.models.register(run, model, name="churn")`."""

from __future__ import annotations

from typing import Any

from loopml.bootstrap import default_workspace
from loopml.domain.records import ModelSummary, ModelVersion
from loopml.ports import LoadedModel
from loopml.services.tracking import ActiveRun


def register(
    run: ActiveRun | str | None,
    model: Any,
    name: str,
    *,
    input_example: Any = None,
    output_example: Any = None,
    metrics: dict[str, float] | None = None,
    project: str | None = None,
) -> ModelVersion:
    """Register `model` as the next version of `name`, made by `run`.

    Pending metrics of an active run are flushed first, so the version's metrics snapshot holds
    them.
    """
    workspace = default_workspace()
    run_id: str | None = None
    if isinstance(run, ActiveRun):
        run.flush()
        run_id = run.id
        project = project or run.project
    elif run is not None:
        run_id = run
    return workspace.registry.register(
        model,
        name,
        project=project or workspace.project,
        run_id=run_id,
        input_example=input_example,
        output_example=output_example,
        metrics=metrics,
    )


def load(ref: str, *, trust: bool = False, project: str | None = None) -> LoadedModel:
    """Load `churn@champion`, `churn/3` or `churn` (latest), verifying every file's hash.

    Models of the `python` flavor (cloudpickle) run code when loaded: pass `trust=True` only for
    a model whose author you trust.
    """
    workspace = default_workspace()
    return workspace.registry.load(ref, project=project or workspace.project, trust=trust)


def get(ref: str, *, project: str | None = None) -> ModelVersion:
    workspace = default_workspace()
    return workspace.registry.resolve(ref, project or workspace.project)


def set_alias(name: str, alias: str, version: int, *, project: str | None = None) -> None:
    workspace = default_workspace()
    workspace.registry.set_alias(name, alias, version, project=project or workspace.project)


def list_models(*, project: str | None = None) -> list[ModelSummary]:
    workspace = default_workspace()
    return workspace.registry.models(project or workspace.project)


def versions(name: str, *, project: str | None = None) -> list[ModelVersion]:
    workspace = default_workspace()
    return workspace.registry.versions(name, project or workspace.project)


def compile(
    ref: str,
    *,
    to: str = "onnx",
    tolerance: float = 1e-4,
    data: str | None = None,
    rows: Any = None,
    project: str | None = None,
) -> ModelVersion:
    """Compile `churn/3` (or `churn@champion`) to ONNX and register it as the next version of
    `churn`, if it predicts what the source predicts within `tolerance` on `rows` (a data
    frame), else on the dataset version `data`, else on the source's training data; InvalidInput
    (and nothing registered) if not. See `loopml.services.compile`."""
    workspace = default_workspace()
    return workspace.compiler.compile(
        ref,
        project=project or workspace.project,
        to=to,
        tolerance=tolerance,
        data=data,
        rows=rows,
    ).version
