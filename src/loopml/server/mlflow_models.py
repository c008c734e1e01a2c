"""MLflow 3's logged models (`/api/2.0/mlflow/logged-models...`), what `mlflow.<flavor>.log_model`
creates before it uploads the model's folder and marks it ready.

A logged model belongs to the run it was logged in (its id names the run: see
`loopml.domain.mlflow_records`); what MLflow records of it is the run's tag
`mlflow.loggedModel.MODEL_ID`, and its files are the run's artifacts under
`mlflow-models/MODEL_ID/`, uploaded through the artifact routes. Logging one needs editor on
the run's project, reading it viewer. A model logged outside a run is refused: loopml keeps
every file a run made with the run.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from loopml.domain.filters import Comparison, FieldKind, FieldRef, RunQuery
from loopml.domain.mlflow_records import (
    HAS_MODELS_TAG,
    LOGGED_MODEL_TAG,
    MODEL_NAME_TAG,
    logged_model_json,
    logged_model_tags,
    new_model_id,
    project_of_id,
    run_of_model,
)
from loopml.domain.records import Run, RunId
from loopml.errors import InvalidInput, NotFound
from loopml.server.context import Context
from loopml.server.mlflow_bodies import (
    KeyValue,
    checked_page_size,
    checked_run_id,
    checked_tags,
    checked_text,
)
from loopml.server.mlflow_tracking import readable_project
from loopml.services.auth import Principal

STATES = ("LOGGED_MODEL_PENDING", "LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED")
MAX_SEARCHED_RUNS = 1000
_CLAUSE = re.compile(r"\s*(name|source_run_id)\s*=\s*'([^']*)'\s*", re.IGNORECASE)


class _CreateModel(BaseModel):
    experiment_id: str = "0"
    name: str = "model"
    model_type: str | None = None
    source_run_id: str | None = None
    params: list[KeyValue] = Field(default_factory=list)
    tags: list[KeyValue] = Field(default_factory=list)


class _SearchModels(BaseModel):
    experiment_ids: list[str] = Field(default_factory=list)
    filter: str | None = None
    max_results: int = 100
    page_token: str | None = None


class _Finalize(BaseModel):
    status: str


class _Tags(BaseModel):
    tags: list[KeyValue] = Field(default_factory=list)


class _Output(BaseModel):
    model_id: str
    step: int = 0


class _Outputs(BaseModel):
    run_id: str
    models: list[_Output] = Field(default_factory=list)


def logged_model(
    c: Context, who: Principal, model_id: str, role: str
) -> tuple[Run, dict[str, Any]]:
    """The run of logged model `model_id` and its record, once `who` holds `role` there."""
    run_id = run_of_model(model_id)
    c.run_in(who, run_id, role)
    run = c.stores.runs.get_run(RunId(run_id))
    text = run.tags.get(LOGGED_MODEL_TAG + model_id)
    if text is None:
        raise NotFound(f"No logged model {model_id!r} exists.", "Check the model id.")
    return run, json.loads(text)


def _keep(c: Context, run: Run, model_id: str, record: dict[str, Any]) -> dict[str, Any]:
    """Store `record` as what MLflow knows of the model; the model's answer."""
    record["updated"] = int(time.time() * 1000)
    c.stores.runs.log_batch(run.id, tags={LOGGED_MODEL_TAG + model_id: json.dumps(record)})
    return {"model": logged_model_json(c.stores.runs.get_run(run.id), model_id, record)}


def mlflow_models_router(c: Context) -> APIRouter:
    router = APIRouter()
    _creating(router, c)
    _changing(router, c)
    return router


def _creating(router: APIRouter, c: Context) -> None:
    Who, runs = c.who, c.stores.runs

    @router.post("/logged-models")
    def create(body: _CreateModel, who: Principal = Who) -> dict[str, Any]:
        if not body.source_run_id:
            raise InvalidInput(
                "loopml keeps a logged model with the run that made it, and this one has none.",
                "Log the model inside `with mlflow.start_run():`.",
            )
        project = c.run_in(who, checked_run_id(body.source_run_id), "editor")
        if project_of_id(body.experiment_id) != project:
            raise InvalidInput(
                f"Run {body.source_run_id} is not in experiment {body.experiment_id!r}.",
                "Log the model to the run's own experiment.",
            )
        model_id = new_model_id(body.source_run_id, secrets.token_hex(4))
        name = checked_text(body.name, 200, "model name")
        now = int(time.time() * 1000)
        record = {
            "name": name, "model_type": (body.model_type or "")[:250],
            "status": "LOGGED_MODEL_PENDING", "created": now, "tags": checked_tags(body.tags),
        }  # fmt: skip
        runs.log_batch(RunId(body.source_run_id), tags=logged_model_tags(model_id, record))
        return {
            "model": logged_model_json(runs.get_run(RunId(body.source_run_id)), model_id, record)
        }

    @router.post("/logged-models/search")
    def search(body: _SearchModels, who: Principal = Who) -> dict[str, Any]:
        name, run_id = _model_filter(body.filter)
        found = []
        for experiment in body.experiment_ids:
            project = readable_project(c, who, project_of_id(experiment))
            key = HAS_MODELS_TAG if name is None else MODEL_NAME_TAG + name
            where = (Comparison(FieldRef(FieldKind.TAGS, key), "!=", ""),)
            page = runs.search(RunQuery(project, where), MAX_SEARCHED_RUNS, 0)
            found += [
                logged_model_json(run, model_id, record)
                for run in page.runs
                if run_id is None or run.id == run_id
                for model_id, record in _models_of(run)
                if name is None or record.get("name") == name
            ]
        return {"models": found[: checked_page_size(body.max_results)]}

    @router.get("/logged-models/{model_id}")
    def get(model_id: str, who: Principal = Who) -> dict[str, Any]:
        run, record = logged_model(c, who, model_id, "viewer")
        return {"model": logged_model_json(run, model_id, record)}


def _models_of(run: Run) -> list[tuple[str, dict[str, Any]]]:
    """The models logged in `run`, with their records."""
    return [
        (key.removeprefix(LOGGED_MODEL_TAG), json.loads(value))
        for key, value in run.tags.items()
        if key.startswith(LOGGED_MODEL_TAG)
    ]


def _model_filter(text: str | None) -> tuple[str | None, str | None]:
    """The (name, source run id) an MLflow logged-model filter asks for."""
    wanted: dict[str, str] = {}
    for clause in re.split(r"\s+and\s+", text or "", flags=re.IGNORECASE):
        matched = _CLAUSE.fullmatch(clause)
        if matched is not None:
            wanted[matched.group(1).lower()] = matched.group(2)
        elif clause.strip():
            raise InvalidInput(
                f"loopml cannot search logged models by {clause.strip()[:200]!r}.",
                "Search by name = 'NAME' and source_run_id = 'RUN_ID', or without a filter.",
            )
    return wanted.get("name"), wanted.get("source_run_id")


def _changing(router: APIRouter, c: Context) -> None:
    Who = c.who

    @router.patch("/logged-models/{model_id}")
    def finalize(model_id: str, body: _Finalize, who: Principal = Who) -> dict[str, Any]:
        if body.status not in STATES:
            raise InvalidInput(f"{body.status[:60]!r} is not a logged model status.",
                               f"Use one of {', '.join(STATES)}.")  # fmt: skip
        run, record = logged_model(c, who, model_id, "editor")
        record["status"] = body.status
        return _keep(c, run, model_id, record)

    @router.patch("/logged-models/{model_id}/tags")
    def set_tags(model_id: str, body: _Tags, who: Principal = Who) -> dict[str, Any]:
        run, record = logged_model(c, who, model_id, "editor")
        record["tags"] = {**record.get("tags", {}), **checked_tags(body.tags)}
        _keep(c, run, model_id, record)
        return {}

    @router.post("/runs/outputs")
    def log_outputs(body: _Outputs, who: Principal = Who) -> dict[str, Any]:
        """A run's models are the ones logged in it: this checks that they are."""
        c.run_in(who, checked_run_id(body.run_id), "editor")
        for output in body.models:
            if run_of_model(output.model_id) != body.run_id:
                raise InvalidInput(
                    f"Model {output.model_id} was logged in another run than {body.run_id}.",
                    "loopml lists a model among the outputs of the run it was logged in.",
                )
        return {}
