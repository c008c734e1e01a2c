"""Models: the registry's store of model versions and aliases, the flavors that save and load
each kind of model, a loaded model ready to predict, and the compiler that converts one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from loopml.domain.manifest import Manifest
from loopml.domain.records import (
    EventDraft,
    ModelSummary,
    ModelVersion,
    RunId,
)

if TYPE_CHECKING:  # numpy comes with the signature module: not on the way to `loopml --help`
    from loopml.domain.signature import ColumnSpec


@dataclass(frozen=True)
class NewModelVersion:
    project: str
    name: str
    run_id: RunId | None
    flavor: str
    flavor_info: dict[str, Any]
    manifest: Manifest
    signature: dict[str, Any]
    metrics: dict[str, float]


class ModelStore(Protocol):
    def register(self, new: NewModelVersion, event: EventDraft) -> ModelVersion:
        """Create the model if needed and add the next version number."""
        ...

    def get_version(self, project: str, name: str, version: int) -> ModelVersion: ...

    def get_manifest(self, project: str, name: str, version: int) -> Manifest: ...

    def resolve_alias(self, project: str, name: str, alias: str) -> int: ...

    def set_alias(
        self, project: str, name: str, alias: str, version: int | None, event: EventDraft
    ) -> int | None:
        """Point `alias` at `version` (None deletes it); returns where it pointed before."""
        ...

    def list_models(self, project: str) -> list[ModelSummary]: ...

    def list_versions(self, project: str, name: str) -> list[ModelVersion]: ...


class LoadedModel(Protocol):
    """A model ready to predict, whatever its flavor."""

    @property
    def raw(self) -> Any: ...

    def predict(self, frame: Any) -> Any: ...

    def predict_proba(self, frame: Any) -> Any: ...


@runtime_checkable
class Flavor(Protocol):
    """One kind of model (scikit-learn, python, ...): which objects it takes, how it saves them
    to a folder and loads them back, whether pipeline steps store them through it, and whether a
    team server may load them. Flavors are listed in `adapters/flavors/base.py` `FLAVORS`."""

    @property
    def name(self) -> str: ...

    @property
    def files(self) -> tuple[str, ...]: ...

    @property
    def step_values(self) -> bool: ...

    def accepts(self, model: object) -> bool:
        """Whether this flavor saves `model`."""
        ...

    def save(self, model: Any, directory: Path) -> dict[str, Any]:
        """Write `model` into the empty `directory`; return the info to store with the version."""
        ...

    def load(self, directory: Path, info: dict[str, Any], *, trust_pickle: bool) -> LoadedModel:
        """Read the model saved in `directory` with `info` from its `save`."""
        ...

    def check_shared(self, info: dict[str, Any], model_types: tuple[str, ...]) -> None:
        """Forbidden unless a process serving others, loading only classes under the package
        prefixes `model_types`, may load the version saved with `info`."""
        ...


class ModelSerializer(Protocol):
    """Writes a model object to a folder with the right flavor, and reads it back safely."""

    def save(self, model: Any, directory: Path) -> tuple[str, dict[str, Any]]:
        """Returns (flavor name, flavor info to store with the version)."""
        ...

    def load(
        self, flavor: str, directory: Path, info: dict[str, Any], *, trust: bool
    ) -> LoadedModel: ...


class ModelCompiler(Protocol):
    """Converts a loaded model into a format served faster (ONNX, run by onnxruntime)."""

    @property
    def target(self) -> str:
        """The format it compiles to, as `--to` names it (`onnx`)."""
        ...

    def compile(self, model: LoadedModel, inputs: Sequence[ColumnSpec], name: str) -> LoadedModel:
        """`model` converted, then loaded as the registry would load it, taking rows of the
        columns `inputs`; InvalidInput naming the part that cannot be converted, or the extra
        to install."""
        ...

    def to_register(self, compiled: LoadedModel, notes: Mapping[str, str]) -> Any:
        """The object to register for `compiled`, with `notes` kept in its file's metadata."""
        ...
