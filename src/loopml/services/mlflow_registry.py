"""A model folder as MLflow writes it (`MLmodel` and its files), registered as a loopml model
version: by the team server's MLflow API and by `loopml import mlflow`.

The folder is among a run's artifacts (a logged model's under `mlflow-models/MODEL_ID/`), so
registering moves no bytes: the version's manifest names the same blobs. Its flavor is
`mlflow`, and `flavor_info["mlflow"]` keeps where MLflow's clients download it from and what
MLflow said of it (source, logged model id, MLflow's version number, stage, description).
"""

from __future__ import annotations

from typing import Any

from loopml.domain.manifest import BlobRef, Manifest
from loopml.domain.mlflow_records import folder_uri
from loopml.domain.records import EventDraft, ModelVersion, RunId
from loopml.errors import InvalidInput
from loopml.ports import ModelStore, NewModelVersion, RunStore

FLAVOR = "mlflow"


def register_mlflow_folder(
    runs: RunStore,
    models: ModelStore,
    *,
    name: str,
    run_id: str,
    folder: str,
    origin: dict[str, Any],
    actor: str,
) -> ModelVersion:
    """A version of model `name` (in the run's project) holding `folder` of run `run_id`'s
    artifacts; the same folder of the same run again is the same version."""
    run = runs.get_run(RunId(run_id))
    manifest = model_folder(runs, run_id, folder)
    info = {**origin, "artifact_uri": folder_uri(run.project, run.id, folder.rstrip("/"))}
    new = NewModelVersion(
        run.project, name, run.id, FLAVOR, {FLAVOR: info}, manifest, {}, dict(run.metrics)
    )
    event = EventDraft("model.version_registered", f"model:{run.project}/{name}", actor)
    return models.register(new, event)


def model_folder(runs: RunStore, run_id: str, folder: str) -> Manifest:
    """The files of MLflow's model folder `folder` of run `run_id`'s artifacts; InvalidInput
    when it holds no MLflow model."""
    prefix = folder.rstrip("/") + "/"
    files = {
        a.path[len(prefix) :]: BlobRef(a.digest, a.size)
        for a in runs.list_artifacts(RunId(run_id))
        if a.path.startswith(prefix)
    }
    if "MLmodel" not in files:
        raise InvalidInput(
            f"There is no MLflow model (no MLmodel file) in {folder!r} of run {run_id}.",
            "Register the model_uri that log_model returned.",
        )
    return Manifest(files)
