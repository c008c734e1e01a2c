"""An MLflow store to import from (a tracking server, an `mlruns` folder, or a database and its
artifact root), read as plain records: what `loopml import mlflow` copies into loopml."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from loopml.domain.records import MetricPoint


@dataclass(frozen=True)
class SourceExperiment:
    id: str
    name: str


@dataclass(frozen=True)
class SourceRun:
    id: str
    experiment_id: str
    name: str
    status: str
    """MLflow's: RUNNING, SCHEDULED, FINISHED, FAILED or KILLED."""
    start_ms: int
    end_ms: int | None
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metric_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class SourceLoggedModel:
    """A model logged in a run (MLflow 3), its files kept apart from the run's."""

    id: str
    run_id: str
    name: str
    status: str
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceVersion:
    """A version of a registered model."""

    name: str
    version: int
    source: str
    run_id: str | None
    model_id: str | None
    aliases: tuple[str, ...] = ()
    stage: str = "None"
    description: str = ""


@dataclass(frozen=True)
class NativeModel:
    """A model of an MLflow model folder, loaded from its library's own format."""

    model: Any
    example: Any
    """The folder's input example (a DataFrame or an array), or None."""
    kind: str


class MlflowSource(Protocol):
    def experiments(self, names: Sequence[str]) -> list[SourceExperiment]:
        """The experiments named (every active one when `names` is empty); InvalidInput
        naming any that does not exist."""
        ...

    def runs(self, experiment_id: str) -> list[SourceRun]:
        """Every active run of the experiment."""
        ...

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]: ...

    def download_run_files(self, run_id: str, into: Path) -> None:
        """Every artifact of the run, at its relative path under `into`."""
        ...

    def logged_models(self, experiment_id: str) -> list[SourceLoggedModel]: ...

    def download_model_files(self, model_id: str, into: Path) -> None: ...

    def versions(self) -> list[SourceVersion]:
        """Every version of every registered model, oldest first."""
        ...
