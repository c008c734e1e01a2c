"""The model registry: versions with flavor, signature, metrics and verified artifacts; aliases."""

from __future__ import annotations

import copy
import tempfile
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from loopml.domain.manifest import Manifest
from loopml.domain.records import EventDraft, ModelSummary, ModelVersion, RunId
from loopml.domain.refs import ModelRef, check_alias, check_name, parse_model_ref
from loopml.errors import IntegrityError, InvalidInput, NotFound
from loopml.ports import (
    BlobStore,
    EventLog,
    LoadedModel,
    ModelSerializer,
    ModelStore,
    NewModelVersion,
    RunStore,
)
from loopml.services.folders import fetch_folder, store_folder, stored_manifest
from loopml.services.lineage import model_lineage

registrations_held: ContextVar[bool] = ContextVar("loopml_registrations_held", default=False)
"""True while code runs whose registrations must create no version (a reproduced run's steps):
each is recorded on its run as a candidate instead."""

EXISTING_TAG = "loopml.model_existing."
"""Tag prefix on a run whose registration of model NAME found a version holding the same
files from the same data: `loopml.model_existing.NAME` = that version's number."""
CANDIDATE_TAG = "loopml.model_candidate."
"""Tag prefix on a run whose registration was held: `loopml.model_candidate.NAME` = the digest of
the model files it would have registered."""


class Outcome(StrEnum):
    CREATED = "created"
    """A new version."""
    EXISTING = "existing"
    """A version already held the same files from the same data; it was returned."""
    HELD = "held"
    """Registrations were held: no version was created (its number is 0)."""


@dataclass(frozen=True)
class Registration:
    version: ModelVersion
    outcome: Outcome

    def describe(self) -> str:
        """One line for people: what the registration did."""
        v = self.version
        if self.outcome is Outcome.EXISTING:
            return (
                f"{v.name} version {v.version} already holds this model (same files, same "
                "data); not registered again"
            )
        if self.outcome is Outcome.HELD:
            return f"{v.name}: a model with new files ({v.artifact_digest[:19]}); not registered"
        return f"registered {v.ref}"


def _unpredictable(model: Any, error: Exception) -> InvalidInput:
    return InvalidInput(
        f"The {type(model).__name__} could not predict its input example "
        f"({type(error).__name__}: {error}), so its output type cannot be recorded.",
        "Give an input example the model takes (a data frame of its columns), or pass "
        "output_example= with what it returns for the input example.",
    )


def _with_tensors(signature: dict[str, Any], tensors: dict[str, Any]) -> dict[str, Any]:
    """The signature of a model whose flavor read its tensors from the model itself (onnx):
    those are the truth, so they type the columns and are recorded beside them (the model
    server reports them as its V2 metadata)."""
    from loopml.domain.signature import Signature, tensor_signature

    example = Signature.from_dict(signature) if signature else None
    return {**tensor_signature(tensors, example).to_dict(), "tensors": tensors}


class RegistryService:
    def __init__(
        self,
        store: ModelStore,
        runs: RunStore,
        blobs: BlobStore,
        serializer: ModelSerializer,
        actor: str,
        *,
        events: EventLog | None = None,
    ) -> None:
        self._store = store
        self._runs = runs
        self._blobs = blobs
        self._serializer = serializer
        self._actor = actor
        self._events = events

    def acting_as(self, actor: str) -> RegistryService:
        """This registry, recording `actor` on the events of its changes (a server acting for
        the user of a request)."""
        twin = copy.copy(self)
        twin._actor = actor
        return twin

    def _example_output(
        self, model: Any, example: Any, flavor: str, info: dict[str, Any], folder: str
    ) -> Any:
        """What the model answers for its input example: its own `predict`, else (a model
        that takes no data frame, such as an XGBoost Booster) the `predict` of the model as
        its flavor loads it from the saved folder, which takes one."""
        try:
            return model.predict(example)
        except Exception as direct:
            if flavor == "python":  # loading it back would run its pickle: no second try
                raise _unpredictable(model, direct) from None
            try:
                loaded = self._serializer.load(flavor, Path(folder), info, trust=False)
                return loaded.predict(example)
            except Exception:
                raise _unpredictable(model, direct) from None

    def register(
        self,
        model: Any,
        name: str,
        *,
        project: str,
        run_id: str | None = None,
        input_example: Any = None,
        output_example: Any = None,
        metrics: dict[str, float] | None = None,
    ) -> ModelVersion:
        """Save `model` with its flavor and add it as the next version of `name` (unless a
        version holds the same files from the same data: see `register_once`)."""
        return self.register_once(
            model,
            name,
            project=project,
            run_id=run_id,
            input_example=input_example,
            output_example=output_example,
            metrics=metrics,
        ).version

    def register_once(
        self,
        model: Any,
        name: str,
        *,
        project: str,
        run_id: str | None = None,
        input_example: Any = None,
        output_example: Any = None,
        metrics: dict[str, float] | None = None,
    ) -> Registration:
        """Save `model` with its flavor and add it as the next version of `name`; say how it went.

        A version of `name` holding the same files from the same lineage (the training dataset
        versions of `run_id`, or its source run when it read none) is returned instead of a new
        one. The signature is inferred from `input_example` (and from the model's predictions
        on it when no `output_example` is given); the metrics are the run's latest values,
        overridden by `metrics`. While `registrations_held`, no version is created.
        """
        check_name(name, "model")
        snapshot: dict[str, float] = {}
        if run_id is not None:
            run = self._runs.get_run(RunId(run_id))
            snapshot.update(run.metrics)
        snapshot.update(metrics or {})
        signature: dict[str, Any] = {}
        with tempfile.TemporaryDirectory(prefix="loopml-model-") as tmp:
            flavor, info = self._serializer.save(model, Path(tmp))
            manifest = store_folder(self._blobs, Path(tmp))
            if input_example is not None:
                from loopml.domain.signature import infer_signature  # numpy: only when needed

                if output_example is None and callable(getattr(model, "predict", None)):
                    output_example = self._example_output(model, input_example, flavor, info, tmp)
                signature = infer_signature(input_example, output_example).to_dict()
        if isinstance(info.get("tensors"), dict):
            signature = _with_tensors(signature, info["tensors"])
        new = NewModelVersion(
            project,
            name,
            RunId(run_id) if run_id else None,
            flavor,
            info,
            manifest,
            signature,
            snapshot,
        )
        held = registrations_held.get()
        same = self._same_model(new)
        if same is not None:
            self._note(new, f"{EXISTING_TAG}{name}", str(same.version))
            return Registration(same, Outcome.EXISTING)
        if held:
            self._note(new, f"{CANDIDATE_TAG}{name}", manifest.digest)
            return Registration(self._candidate(new, manifest), Outcome.HELD)
        event = EventDraft("model.version_registered", f"model:{project}/{name}", self._actor)
        return Registration(self._store.register(new, event), Outcome.CREATED)

    def _same_model(self, new: NewModelVersion) -> ModelVersion | None:
        """The version of the model holding `new`'s files from `new`'s lineage, if any. Without
        a run there is no lineage to compare: the same files make a new version."""
        if new.run_id is None:
            return None
        try:
            versions = self._store.list_versions(new.project, new.name)
        except NotFound:
            return None
        same_files = [v for v in versions if v.artifact_digest == new.manifest.digest and v.run_id]
        if not same_files:
            return None
        lineage = model_lineage(self._runs, new.run_id)
        for version in same_files:
            if version.run_id and model_lineage(self._runs, version.run_id) == lineage:
                return version
        return None

    def _note(self, new: NewModelVersion, key: str, value: str) -> None:
        """Record on the registering run what its registration did when no version says it."""
        if new.run_id is not None:
            self._runs.log_batch(new.run_id, tags={key: value})

    def _candidate(self, new: NewModelVersion, manifest: Manifest) -> ModelVersion:
        """The version `new` would have been, numbered 0: not stored."""
        return ModelVersion(
            new.project,
            new.name,
            0,
            new.run_id,
            new.flavor,
            manifest.digest,
            new.signature,
            new.metrics,
            datetime.now(UTC),
            self._actor,
            flavor_info=new.flavor_info,
        )

    def resolve(self, ref: str | ModelRef, project: str) -> ModelVersion:
        parsed = parse_model_ref(ref) if isinstance(ref, str) else ref
        if parsed.alias is not None:
            version = self._store.resolve_alias(project, parsed.name, parsed.alias)
        elif parsed.version is not None:
            version = parsed.version
        else:
            summaries = {m.name: m for m in self._store.list_models(project)}
            version = self._latest(parsed.name, project, summaries)
        return self._store.get_version(project, parsed.name, version)

    def _latest(self, name: str, project: str, summaries: dict[str, ModelSummary]) -> int:
        if name not in summaries:
            self._store.list_versions(project, name)  # raises NotFound with the right message
        return summaries[name].latest_version

    def load(self, ref: str, *, project: str, trust: bool = False) -> LoadedModel:
        """Fetch a version's files, verify every hash, and deserialize with its flavor."""
        version = self.resolve(ref, project)
        manifest = stored_manifest(
            lambda: self._store.get_manifest(project, version.name, version.version),
            f"model {version.ref}",
        )
        if manifest.digest != version.artifact_digest:
            raise IntegrityError(
                f"The file list of model {version.ref} does not match its recorded digest "
                f"{version.artifact_digest}.",
                "The registry entry was altered; register the model again.",
            )
        with tempfile.TemporaryDirectory(prefix="loopml-load-") as tmp:
            fetch_folder(self._blobs, manifest, Path(tmp))
            return self._serializer.load(
                version.flavor, Path(tmp), version.flavor_info, trust=trust
            )

    def set_alias(self, name: str, alias: str, version: int, *, project: str) -> int | None:
        """Point `alias` at `version`; returns the version it pointed at before."""
        check_alias(alias)
        event = EventDraft("model.alias_set", f"model:{project}/{name}", self._actor)
        return self._store.set_alias(project, name, alias, version, event)

    def promote(
        self, name: str, version: int, *, project: str, alias: str = "champion"
    ) -> int | None:
        """Make `version` the `alias` (champion by default): servers following it swap live.
        Returns the version it replaced."""
        check_alias(alias)
        self.resolve(f"{name}/{version}", project)  # NotFound names what exists
        event = EventDraft("model.promoted", f"model:{project}/{name}", self._actor)
        return self._store.set_alias(project, name, alias, version, event)

    def rollback(self, name: str, *, project: str, alias: str = "champion") -> tuple[int, int]:
        """Return `alias` to the version it held before its latest promotion; (from, to).

        The alias's history is read from the audit trail as a stack: a promotion or alias move
        pushes a version, a rollback pops one, so rolling back twice goes two versions back."""
        check_alias(alias)
        stack = self._alias_stack(name, alias, project)
        if len(stack) < 2:
            raise InvalidInput(
                f"{name}@{alias} has no earlier version to roll back to.",
                f"Promote a version with `loopml models promote {name} VERSION`.",
            )
        current, previous = stack[-1], stack[-2]
        event = EventDraft("model.rolled_back", f"model:{project}/{name}", self._actor)
        self._store.set_alias(project, name, alias, previous, event)
        return current, previous

    def _alias_stack(self, name: str, alias: str, project: str) -> list[int]:
        if self._events is None:
            raise InvalidInput("This registry keeps no alias history.", "Open a workspace.")
        history = self._events.list(entity=f"model:{project}/{name}", limit=100_000)
        stack: list[int] = []
        for event in reversed(history):  # oldest first
            after = event.after or {}
            if after.get("alias") != alias:
                continue
            if event.action == "model.rolled_back":
                stack = stack[:-1]
            elif after.get("version") is None:
                stack = []
            elif not stack or stack[-1] != after["version"]:
                stack.append(int(after["version"]))
        return stack

    def delete_alias(self, name: str, alias: str, *, project: str) -> int | None:
        check_alias(alias)
        event = EventDraft("model.alias_deleted", f"model:{project}/{name}", self._actor)
        return self._store.set_alias(project, name, alias, None, event)

    def models(self, project: str) -> list[ModelSummary]:
        return self._store.list_models(project)

    def versions(self, name: str, project: str) -> list[ModelVersion]:
        return self._store.list_versions(project, check_name(name, "model"))

    def check_version_number(self, version: Any) -> int:
        try:
            number = int(version)
        except (TypeError, ValueError):
            number = 0
        if number < 1:
            raise InvalidInput(
                f"Model version {version!r} is not a positive number.",
                "Give the version number, such as 3.",
            )
        return number
