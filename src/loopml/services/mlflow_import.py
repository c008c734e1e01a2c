"""`loopml import mlflow`: an MLflow store's experiments, runs and registered models, copied
into loopml's stores.

An experiment becomes a project (`project_for_experiment`), or, with `project`, every run goes
to that one project with the experiment's name in the tag `mlflow.experiment`. A run keeps its
id (both tools use 32 hex digits; also in the tag `mlflow.runId`), name, start and end, status,
params, tags, every metric point with its step and timestamp, its parent, and its artifacts
(into the blob store, content-addressed). An MLflow 3 logged model comes with its run: its files
under the run's `mlflow-models/` (its id made the run's, the old one kept in its record). A
registered model version becomes a loopml version holding the model's folder as MLflow wrote it
(`loopml.services.mlflow_registry`), with its aliases; MLflow's version number, stage and
description are kept in its flavor info.

Each run is read whole (points and files, into a temporary folder) before anything of it is
written, and marked imported (tag `mlflow.imported`) only once it all is: an import that stops
(an unreachable or corrupt store) leaves each run either whole or absent, and a rerun skips the
whole runs (moving nothing) and finishes the rest. Every run, version and alias is written with
its audit event, by the importing user.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from loopml.domain.mlflow_records import (
    STATUSES,
    logged_model_tags,
    model_files,
    new_model_id,
    project_for_experiment,
)
from loopml.domain.records import (
    EventDraft,
    MetricPoint,
    ModelVersion,
    RunArtifact,
    RunId,
    RunStatus,
)
from loopml.domain.refs import check_alias, check_name
from loopml.errors import InvalidInput, NotFound
from loopml.ports import BlobStore, MetadataPorts, MlflowSource, NewRun
from loopml.ports.mlflow_source import (
    NativeModel,
    SourceExperiment,
    SourceLoggedModel,
    SourceRun,
    SourceVersion,
)
from loopml.services.folders import fetch_folder
from loopml.services.mlflow_registry import model_folder, register_mlflow_folder
from loopml.services.registry import Outcome, Registration

IMPORTED_TAG = "mlflow.imported"
RUN_ID_TAG = "mlflow.runId"
EXPERIMENT_TAG = "mlflow.experiment"
BATCH = 1000
Progress = Callable[[str, int, int], None]
Register = Callable[..., Registration]
"""`RegistryService.register_once`."""
"""(what is being done, how many are done, of how many)."""


@dataclass
class ImportReport:
    """What an import found and did, by kind."""

    projects: dict[str, str] = field(default_factory=dict)
    """Each experiment's name, and the project it went to."""
    runs: int = 0
    runs_skipped: int = 0
    """Runs a previous import brought whole: left as they are."""
    metric_points: int = 0
    artifacts: int = 0
    artifact_bytes: int = 0
    logged_models: int = 0
    versions: int = 0
    versions_skipped: int = 0
    native_versions: int = 0
    """Versions registered in their own loopml flavor (xgboost, lightgbm, onnx, sklearn)."""
    aliases: int = 0
    notes: list[str] = field(default_factory=list)
    dry_run: bool = False


@dataclass(frozen=True)
class _Read:
    """A run as read from the source, before any of it is written."""

    experiment: SourceExperiment
    project: str
    run: SourceRun
    points: list[MetricPoint]
    folder: Path
    """Its files under `run/`, each logged model's under `models/ID/`."""
    models: list[SourceLoggedModel]


@dataclass(frozen=True)
class _Plan:
    experiments: list[tuple[SourceExperiment, str, list[SourceRun]]]
    versions: list[SourceVersion]


class MlflowImport:
    def __init__(
        self,
        source: MlflowSource,
        stores: MetadataPorts,
        blobs: BlobStore,
        *,
        actor: str,
        experiments: Sequence[str] = (),
        project: str | None = None,
        with_models: bool = True,
        native: Callable[[Path], NativeModel | str] | None = None,
        register: Register | None = None,
    ) -> None:
        self.source, self.blobs = source, blobs
        self.runs, self.models, self.grants = stores.runs, stores.models, stores.grants
        self.actor = actor
        self.names = list(experiments)
        self.project = None if project is None else check_name(project, "project")
        self.with_models = with_models
        self.native, self.register = native, register
        """Load a model folder in its own format, and register it in its loopml flavor:
        both, or neither (every version then keeps MLflow's folder)."""

    def plan(self) -> _Plan:
        """Everything to import, listed from the source (before anything is written: a source
        that cannot be read stops the import here)."""
        experiments = [
            (
                e,
                self.project or project_for_experiment(e.name),
                parents_first(self.source.runs(e.id)),
            )
            for e in self.source.experiments(self.names)
        ]
        return _Plan(experiments, self.source.versions() if self.with_models else [])

    def run(self, *, dry_run: bool = False, progress: Progress | None = None) -> ImportReport:
        plan = self.plan()
        report = ImportReport(dry_run=dry_run)
        report.projects = {e.name: project for e, project, _ in plan.experiments}
        total = sum(len(runs) for _, _, runs in plan.experiments)
        if dry_run:
            report.runs, report.versions = total, len(plan.versions)
            return report
        for project in dict.fromkeys(p for _, p, _ in plan.experiments):
            event = EventDraft("project.created", f"project:{project}", self.actor)
            self.grants.create_project(project, event)  # recorded where it is new
        done = 0
        for experiment, project, runs in plan.experiments:
            models = _by_run(self.source.logged_models(experiment.id))
            for found in runs:
                self._import_run(experiment, project, found, models.get(found.id, []), report)
                done += 1
                if progress is not None:
                    progress("runs", done, total)
        for number, version in enumerate(plan.versions, start=1):
            self._import_version(version, report)
            if progress is not None:
                progress("model versions", number, len(plan.versions))
        return report

    def _import_run(
        self,
        experiment: SourceExperiment,
        project: str,
        found: SourceRun,
        models: list[SourceLoggedModel],
        report: ImportReport,
    ) -> None:
        try:
            existing = self.runs.get_run(RunId(found.id))
        except NotFound:
            existing = None
        if existing is not None and IMPORTED_TAG in existing.tags:
            report.runs_skipped += 1
            return
        with tempfile.TemporaryDirectory(prefix="loopml-import-") as folder:
            history = self.source.metric_history
            points = [p for key in found.metric_keys for p in history(found.id, key)]
            self.source.download_run_files(found.id, Path(folder) / "run")
            for model in models:
                self.source.download_model_files(model.id, Path(folder) / "models" / model.id)
            read = _Read(experiment, project, found, points, Path(folder), models)
            self._write_run(read, report)

    def _write_run(self, read: _Read, report: ImportReport) -> None:
        """Write a run read whole from the source (see the module's docstring for the order)."""
        experiment, project, found, points = read.experiment, read.project, read.run, read.points
        folder, models = read.folder, read.models
        tags = {k: v for k, v in found.tags.items() if k != "mlflow.parentRunId"}
        tags[RUN_ID_TAG] = found.id
        if self.project is not None:
            tags[EXPERIMENT_TAG] = experiment.name
        parent = found.tags.get("mlflow.parentRunId")
        new = NewRun(
            project, (found.name or found.id)[:250], {"imported_from": "mlflow"}, {},
            parent_id=RunId(parent) if parent and self._exists(parent) else None,
            run_id=RunId(found.id), started=_moment(found.start_ms),
        )  # fmt: skip
        run = self.runs.create_run(new, EventDraft("run.imported", f"run:{project}", self.actor))
        if run.status is RunStatus.RUNNING:
            self.runs.log_batch(run.id, params=found.params, tags=tags)
            for start in range(0, len(points), BATCH):
                self.runs.log_batch(run.id, metrics=points[start : start + BATCH])
        artifacts = self._store_files(folder / "run", "")
        for model in models:
            model_id = _model_id(found.id, model.id)
            artifacts += self._store_files(folder / "models" / model.id, model_files(model_id))
            record = {
                "name": model.name[:200], "model_type": "", "status": model.status,
                "created": found.start_ms, "tags": model.tags, "mlflow_model_id": model.id,
            }  # fmt: skip
            self.runs.log_batch(run.id, tags=logged_model_tags(model_id, record))
        if artifacts:
            self.runs.add_inputs_and_artifacts(run.id, [], artifacts)
        if run.status is RunStatus.RUNNING:
            status = STATUSES.get(found.status, RunStatus.KILLED)
            status = RunStatus.KILLED if status is RunStatus.RUNNING else status  # long gone
            ended = _moment(found.end_ms or found.start_ms)
            event = EventDraft(f"run.{status.value}", f"run:{project}/{run.id}", self.actor)
            self.runs.end_run(run.id, status, None, ended, event)
        self.runs.log_batch(run.id, tags={IMPORTED_TAG: "true"})
        report.runs += 1
        report.metric_points += len(points)
        report.artifacts += len(artifacts)
        report.artifact_bytes += sum(a.size for a in artifacts)
        report.logged_models += len(models)

    def _exists(self, run_id: str) -> bool:
        try:
            self.runs.get_run(RunId(run_id))
        except NotFound:
            return False
        return True

    def _store_files(self, folder: Path, under: str) -> list[RunArtifact]:
        """Every file below `folder` into the blob store, as artifacts at their relative
        paths (under `under`)."""
        stored = []
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            ref = self.blobs.put_file(path)
            relative = path.relative_to(folder).as_posix()
            stored.append(RunArtifact(f"{under}/{relative}" if under else relative, ref.digest,
                                      ref.size))  # fmt: skip
        return stored

    def _import_version(self, version: SourceVersion, report: ImportReport) -> None:
        where = self._folder(version)
        if where is None:
            report.notes.append(
                f"{version.name} {version.version}: its files ({version.source}) are not in an "
                "imported run; not imported."
            )
            return
        run_id, folder = where
        made = self._native(version, run_id, folder, report)
        if made is None:
            made = self._kept(version, run_id)
            if made is not None:
                report.versions_skipped += 1
        if made is None:
            origin = {"source": version.source, "mlflow_version": version.version,
                      "stage": version.stage, "description": version.description}  # fmt: skip
            try:
                made = register_mlflow_folder(
                    self.runs, self.models, name=check_name(version.name, "model"),
                    run_id=run_id, folder=folder, origin=origin, actor=self.actor,
                )  # fmt: skip
            except InvalidInput as refused:
                report.notes.append(f"{version.name} {version.version}: {refused.message}")
                return
            report.versions += 1
        for alias in version.aliases:
            report.aliases += self._point(made.project, made.name, check_alias(alias), made.version)

    def _native(
        self, version: SourceVersion, run_id: str, folder: str, report: ImportReport
    ) -> ModelVersion | None:
        """The version registered in the model's own loopml flavor, if it loads from its
        library's format (see `loopml.adapters.mlflow_models`); None to keep MLflow's folder."""
        if self.native is None or self.register is None:
            return None
        with tempfile.TemporaryDirectory(prefix="loopml-import-model-") as tmp:
            fetch_folder(self.blobs, model_folder(self.runs, run_id, folder), Path(tmp))
            loaded = self.native(Path(tmp))
        label = f"{version.name} {version.version}"
        if isinstance(loaded, str):
            report.notes.append(f"{label}: kept as MLflow's folder (flavor mlflow): {loaded}.")
            return None
        project = self.runs.get_run(RunId(run_id)).project
        done = self.register(
            loaded.model, check_name(version.name, "model"), project=project, run_id=run_id,
            input_example=loaded.example,
        )  # fmt: skip
        if done.outcome is Outcome.HELD:
            report.notes.append(f"{label}: registrations are held in project {project!r}.")
            return None
        if done.outcome is Outcome.CREATED:
            report.versions += 1
            report.native_versions += 1
        else:
            report.versions_skipped += 1
        return done.version

    def _kept(self, version: SourceVersion, run_id: str) -> ModelVersion | None:
        """The version a previous import made of this one (same run, same MLflow number)."""
        project = self.runs.get_run(RunId(run_id)).project
        try:
            kept = self.models.list_versions(project, version.name)
        except NotFound:
            return None
        number = version.version
        return next((v for v in kept if v.run_id == run_id and _mlflow_number(v) == number), None)

    def _point(self, project: str, name: str, alias: str, version: int) -> int:
        """Point `alias` at `version` unless it already does; 1 if it moved."""
        try:
            if self.models.resolve_alias(project, name, alias) == version:
                return 0
        except NotFound:
            pass
        event = EventDraft("model.alias_set", f"model:{project}/{name}", self.actor)
        self.models.set_alias(project, name, alias, version, event)
        return 1

    def _folder(self, version: SourceVersion) -> tuple[str, str] | None:
        """(run id, folder of its artifacts) holding the version's files, if imported."""
        if version.run_id is None or not self._exists(version.run_id):
            return None
        if version.model_id:
            return version.run_id, model_files(_model_id(version.run_id, version.model_id))
        marker = f"/{version.run_id}/artifacts/"
        if version.source.startswith(f"runs:/{version.run_id}/"):
            return version.run_id, version.source.split("/", 2)[2].strip("/")
        if marker in version.source:
            return version.run_id, version.source.split(marker, 1)[1].strip("/")
        return None


def parents_first(runs: list[SourceRun]) -> list[SourceRun]:
    """`runs` ordered so that every parent comes before its children."""
    parent = {r.id: r.tags.get("mlflow.parentRunId") for r in runs}

    def depth(run_id: str, seen: int = 0) -> int:
        above = parent.get(run_id)
        return (
            seen if above is None or above not in parent or seen > 100 else depth(above, seen + 1)
        )

    return sorted(runs, key=lambda r: (depth(r.id), r.start_ms, r.id))


def _by_run(models: list[SourceLoggedModel]) -> dict[str, list[SourceLoggedModel]]:
    grouped: dict[str, list[SourceLoggedModel]] = {}
    for model in models:
        grouped.setdefault(model.run_id, []).append(model)
    return grouped


def _model_id(run_id: str, old: str) -> str:
    """The loopml id of MLflow's logged model `old` of run `run_id` (the same on every import)."""
    return new_model_id(run_id, hashlib.blake2s(old.encode(), digest_size=4).hexdigest())


def _mlflow_number(version: ModelVersion) -> int | None:
    number = version.flavor_info.get("mlflow", {}).get("mlflow_version")
    return number if isinstance(number, int) else None


def _moment(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
