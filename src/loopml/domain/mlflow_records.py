"""loopml's records as MLflow's REST API shows them, and MLflow's names as loopml's.

An MLflow experiment is a loopml project. Its id is the project's name, but for the project
`default`, whose id is `0` and name `Default` (MLflow's default experiment, which its clients use
when no experiment is set). A run keeps its id (both are 32 hex digits); its artifacts are under
`mlflow-artifacts:/EXPERIMENT/RUN_ID/artifacts`, which MLflow clients upload to and read from
through the server's artifact routes.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime
from typing import Any

from loopml.domain.records import ModelSummary, ModelVersion, Run, RunStatus
from loopml.domain.refs import check_name
from loopml.errors import InvalidInput, NotFound

DEFAULT_PROJECT = "default"
DEFAULT_EXPERIMENT_ID = "0"
DEFAULT_EXPERIMENT_NAME = "Default"
PARENT_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"
USER_TAG = "mlflow.user"
DATASET_TAG = "mlflow.dataset."
"""A run's tag `mlflow.dataset.NAME.DIGEST` holds a dataset MLflow logged as the run's input
(`mlflow.log_input`), as MLflow's `DatasetInput` JSON."""
MODEL_HISTORY_TAG = "mlflow.log-model.history"
"""Where MLflow 2 clients record the models logged among a run's artifacts."""
STATUSES = {
    "RUNNING": RunStatus.RUNNING,
    "SCHEDULED": RunStatus.RUNNING,
    "FINISHED": RunStatus.FINISHED,
    "FAILED": RunStatus.FAILED,
    "KILLED": RunStatus.KILLED,
}
"""MLflow's run states as loopml's (a scheduled run is one that is running, to loopml)."""


def experiment_id(project: str) -> str:
    return DEFAULT_EXPERIMENT_ID if project == DEFAULT_PROJECT else project


def experiment_name(project: str) -> str:
    return DEFAULT_EXPERIMENT_NAME if project == DEFAULT_PROJECT else project


def project_of_id(experiment: str) -> str:
    """The project an experiment id names; InvalidInput if it can name none."""
    if experiment == DEFAULT_EXPERIMENT_ID:
        return DEFAULT_PROJECT
    return _project(experiment, "id")


def project_of_name(name: str) -> str:
    """The project an experiment name names; InvalidInput if it can name none."""
    if name == DEFAULT_EXPERIMENT_NAME:
        return DEFAULT_PROJECT
    return _project(name, "name")


def _project(text: str, what: str) -> str:
    try:
        return check_name(text, "project")
    except InvalidInput:
        raise InvalidInput(
            f"Experiment {what} {text[:200]!r} cannot be a loopml project name: an experiment "
            "is a project here.",
            "Name experiments with letters, digits, '_', '-' and '.', starting with a letter "
            "or digit (at most 200 characters), e.g. mlflow.set_experiment('churn').",
        ) from None


def ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def experiment_json(project: str, created: datetime | None = None) -> dict[str, Any]:
    stamp = ms(created)
    return {
        "experiment_id": experiment_id(project),
        "name": experiment_name(project),
        "artifact_location": f"mlflow-artifacts:/{experiment_id(project)}",
        "lifecycle_stage": "active",
        **({"creation_time": stamp, "last_update_time": stamp} if stamp is not None else {}),
        "tags": [],
    }


def artifact_uri(run: Run) -> str:
    return f"mlflow-artifacts:/{experiment_id(run.project)}/{run.id}/artifacts"


def run_info(run: Run) -> dict[str, Any]:
    info = {
        "run_id": run.id,
        "run_uuid": run.id,
        "run_name": run.tags.get(RUN_NAME_TAG, run.name),
        "experiment_id": experiment_id(run.project),
        "user_id": run.tags.get(USER_TAG, ""),
        "status": run.status.value.upper(),
        "start_time": ms(run.start_time),
        "artifact_uri": artifact_uri(run),
        "lifecycle_stage": "active",
    }
    if run.end_time is not None:
        info["end_time"] = ms(run.end_time)
    return info


def run_json(run: Run, metric_points: dict[str, tuple[int, int]] | None = None) -> dict[str, Any]:
    """A run as MLflow's `Run` message. `metric_points`: each metric's (step, timestamp_ms) of
    its latest value, where known (else 0 and the run's start)."""
    points = metric_points or {}
    unknown = (0, ms(run.start_time) or 0)
    tags = {k: v for k, v in run.tags.items() if not k.startswith(_KEPT_APART)}
    tags.setdefault(RUN_NAME_TAG, run.name)
    if run.parent_id:
        tags.setdefault(PARENT_TAG, run.parent_id)
    inputs = [json.loads(v) for k, v in sorted(run.tags.items()) if k.startswith(DATASET_TAG)]
    return {
        "info": run_info(run),
        "data": {
            "metrics": [_metric(k, v, *points.get(k, unknown)) for k, v in run.metrics.items()],
            "params": [{"key": k, "value": v} for k, v in run.params.items()],
            "tags": [{"key": k, "value": v} for k, v in tags.items()],
        },
        "inputs": {"dataset_inputs": inputs},
    }


def _metric(key: str, value: float, step: int, timestamp: int) -> dict[str, Any]:
    return {"key": key, "value": value, "step": step, "timestamp": timestamp}


def page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def page_offset(token: str | None) -> int:
    """The offset a page token (from `page_token`) names; 0 for none."""
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError):
        offset = None
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise InvalidInput(
            f"The page token {token[:60]!r} is not one this server gave.",
            "Pass the next_page_token of the previous answer, or none for the first page.",
        )
    return offset


LOGGED_MODEL_TAG = "mlflow.loggedModel."
"""A run's tag `mlflow.loggedModel.MODEL_ID` holds what MLflow records of a model logged in the
run (its name, type, status, tags) as JSON; the model's files are the run's artifacts under
`mlflow-models/MODEL_ID/` (MLflow 2 kept its logged models in a run tag too)."""
LOGGED_MODEL_FILES = "mlflow-models"
HAS_MODELS_TAG = "mlflow.hasLoggedModels"
MODEL_NAME_TAG = "mlflow.loggedModelName."
"""Run tags that let a search find the runs holding a logged model (of a name)."""
_KEPT_APART = (LOGGED_MODEL_TAG, MODEL_NAME_TAG, HAS_MODELS_TAG, DATASET_TAG)
"""The tags this module keeps MLflow's records in, shown as what they record, not as tags."""
_MODEL_ID_RE = re.compile(r"m-([0-9a-f]{32})([0-9a-f]{8})")


def new_model_id(run_id: str, suffix: str) -> str:
    """The id of a model logged in run `run_id` (`suffix`: 8 random hex digits)."""
    return f"m-{run_id}{suffix}"


def run_of_model(model_id: str) -> str:
    """The run a logged model's id names; NotFound for an id no model of this server has."""
    match = _MODEL_ID_RE.fullmatch(model_id)
    if match is None:
        raise NotFound(
            f"No logged model {model_id[:60]!r} exists.",
            "Logged model ids come from mlflow.<flavor>.log_model (ModelInfo.model_id).",
        )
    return match.group(1)


def model_files(model_id: str) -> str:
    """The folder of a logged model's files among its run's artifacts."""
    return f"{LOGGED_MODEL_FILES}/{model_id}"


def logged_model_json(run: Run, model_id: str, record: dict[str, Any]) -> dict[str, Any]:
    """A logged model as MLflow's `LoggedModel` message (`record`: its run tag's JSON)."""
    return {
        "info": {
            "model_id": model_id,
            "experiment_id": experiment_id(run.project),
            "name": record.get("name", ""),
            "creation_timestamp_ms": record.get("created", 0),
            "last_updated_timestamp_ms": record.get("updated", record.get("created", 0)),
            "artifact_uri": f"mlflow-artifacts:/{experiment_id(run.project)}/models/{model_id}"
            "/artifacts",
            "status": record.get("status", "LOGGED_MODEL_PENDING"),
            "model_type": record.get("model_type", ""),
            "source_run_id": run.id,
            "tags": [{"key": k, "value": v} for k, v in sorted(record.get("tags", {}).items())],
        },
        "data": {"params": [{"key": k, "value": v} for k, v in run.params.items()]},
    }


def model_version_json(version: ModelVersion, description: str = "") -> dict[str, Any]:
    """A loopml model version as MLflow's `ModelVersion` message."""
    origin = version.flavor_info.get("mlflow", {}) if version.flavor == "mlflow" else {}
    stamp = ms(version.created_at)
    answer = {
        "name": version.name,
        "version": str(version.version),
        "creation_timestamp": stamp,
        "last_updated_timestamp": stamp,
        "current_stage": "None",
        "description": description,
        "source": origin.get("source", f"models:/{version.name}/{version.version}"),
        "run_id": version.run_id or "",
        "status": "READY",
        "run_link": "",
        "aliases": list(version.aliases),
        "tags": [{"key": "loopml.flavor", "value": version.flavor}],
    }
    if origin.get("model_id"):
        answer["model_id"] = origin["model_id"]
    return answer


def registered_model_json(summary: ModelSummary, latest: ModelVersion | None) -> dict[str, Any]:
    stamp = ms(summary.created_at)
    return {
        "name": summary.name,
        "creation_timestamp": stamp,
        "last_updated_timestamp": ms(latest.created_at) if latest else stamp,
        "description": summary.description,
        "latest_versions": [model_version_json(latest)] if latest else [],
        "aliases": [{"alias": a, "version": str(v)} for a, v in sorted(summary.aliases.items())],
        "tags": [{"key": "loopml.project", "value": summary.project}],
    }


def logged_model_tags(model_id: str, record: dict[str, Any]) -> dict[str, str]:
    """The run tags that keep logged model `model_id` (`record`: what MLflow records of it)
    and let a search find it by name."""
    return {
        LOGGED_MODEL_TAG + model_id: json.dumps(record),
        HAS_MODELS_TAG: "true",
        MODEL_NAME_TAG + str(record.get("name", "")): model_id,
    }


def folder_uri(project: str, run_id: str, folder: str) -> str:
    """Where MLflow's clients download a model folder of a run from: a logged model's own
    place, or the folder among the run's artifacts."""
    where = experiment_id(project)
    if folder.startswith(LOGGED_MODEL_FILES + "/"):
        return f"mlflow-artifacts:/{where}/models/{folder.split('/')[1]}/artifacts"
    return f"mlflow-artifacts:/{where}/{run_id}/artifacts/{folder}"


def project_for_experiment(name: str) -> str:
    """A project name for an MLflow experiment of any name (`Default` is `default`; a name
    loopml does not allow, such as `/Users/ann/churn model`, has each run of other characters
    made one '-': `Users-ann-churn-model`)."""
    if name == DEFAULT_EXPERIMENT_NAME:
        return DEFAULT_PROJECT
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-_.")[:200].strip("-_.")
    return cleaned or "mlflow"
