"""MLflow's tracking REST API (`/api/2.0/mlflow/...`) over loopml's stores, so that code written
for MLflow logs to a loopml team server unchanged: `MLFLOW_TRACKING_URI=http://server:port` and
`MLFLOW_TRACKING_TOKEN=` a loopml token.

Experiments are projects and runs are loopml runs (see `loopml.domain.mlflow_records`), checked
by the same roles as `/api/v1`: reading needs viewer on the project, logging editor, creating
an experiment (a project) admin. A run or project the caller may not read is answered as one
that does not exist. Errors come in MLflow's shape (`loopml.server.mlflow_errors`).
"""

from __future__ import annotations

import contextlib
import json
import math
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from loopml.domain.mlflow_records import (
    DATASET_TAG,
    MODEL_HISTORY_TAG,
    PARENT_TAG,
    RUN_NAME_TAG,
    STATUSES,
    experiment_json,
    experiment_name,
    page_offset,
    page_token,
    project_of_id,
    project_of_name,
    run_info,
    run_json,
)
from loopml.domain.mlflow_search import experiment_names, mlflow_run_query
from loopml.domain.records import EventDraft, MetricPoint, Run, RunId, RunStatus
from loopml.errors import AlreadyExists, Conflict, Forbidden, InvalidInput, NotFound
from loopml.ports import NewRun
from loopml.server.context import Context
from loopml.server.mlflow_bodies import (
    MAX_KEY,
    MAX_TAG_VALUE,
    KeyValue,
    checked_page_size,
    checked_params,
    checked_run_id,
    checked_tags,
    checked_text,
)
from loopml.services.auth import Principal

MAX_BATCH = 1000
"""At most this many metrics in one log-batch (MLflow's limit; params 100, tags 100)."""


class _Metric(BaseModel):
    key: str
    value: float | str
    timestamp: int = 0
    step: int = 0


class _CreateExperiment(BaseModel):
    name: str
    artifact_location: str | None = None
    tags: list[KeyValue] = Field(default_factory=list)


class _SearchExperiments(BaseModel):
    max_results: int = 1000
    page_token: str | None = None
    filter: str | None = None
    order_by: list[str] = Field(default_factory=list)
    view_type: str | None = None


class _CreateRun(BaseModel):
    experiment_id: str = "0"
    user_id: str | None = None
    run_name: str | None = None
    start_time: int | None = None
    tags: list[KeyValue] = Field(default_factory=list)


class _UpdateRun(BaseModel):
    run_id: str
    status: str | None = None
    end_time: int | None = None
    run_name: str | None = None


class _LogMetric(_Metric):
    run_id: str


class _LogParam(KeyValue):
    run_id: str


class _LogBatch(BaseModel):
    run_id: str
    metrics: list[_Metric] = Field(default_factory=list)
    params: list[KeyValue] = Field(default_factory=list)
    tags: list[KeyValue] = Field(default_factory=list)


class _TagKey(BaseModel):
    run_id: str
    key: str


class _Dataset(BaseModel):
    name: str
    digest: str
    source_type: str = ""
    source: str = ""
    schema_: str | None = Field(default=None, alias="schema")
    profile: str | None = None


class _DatasetInput(BaseModel):
    dataset: _Dataset
    tags: list[KeyValue] = Field(default_factory=list)


class _Inputs(BaseModel):
    run_id: str
    datasets: list[_DatasetInput] = Field(default_factory=list)


class _ModelJson(BaseModel):
    run_id: str
    model_json: str


class _SearchRuns(BaseModel):
    experiment_ids: list[str] = Field(default_factory=list)
    filter: str | None = None
    run_view_type: str | None = None
    max_results: int = 1000
    order_by: list[str] = Field(default_factory=list)
    page_token: str | None = None


def mlflow_tracking_router(c: Context) -> APIRouter:
    """The experiment, run and metric routes (mounted at `/api/2.0/mlflow`)."""
    router = APIRouter()
    _experiment_routes(router, c)
    _run_routes(router, c)
    _logging_routes(router, c)
    _point_routes(router, c)
    _search_routes(router, c)
    return router


def readable_project(c: Context, who: Principal, project: str) -> str:
    """`project`, if it exists and `who` may read it; else the answer for a missing one."""
    if project not in c.stores.grants.projects() or not who.may(project, "viewer"):
        raise NotFound(
            f"No experiment {project!r} exists (or you may not read it).",
            "List the experiments you can read with MlflowClient().search_experiments().",
        )
    return project


def _experiment_routes(router: APIRouter, c: Context) -> None:
    Who, grants = c.who, c.stores.grants

    @router.get("/experiments/get-by-name")
    def get_experiment_by_name(experiment_name: str, who: Principal = Who) -> dict[str, Any]:
        project = readable_project(c, who, _named(experiment_name))
        return {"experiment": experiment_json(project)}

    @router.get("/experiments/get")
    def get_experiment(experiment_id: str, who: Principal = Who) -> dict[str, Any]:
        return {
            "experiment": experiment_json(readable_project(c, who, project_of_id(experiment_id)))
        }

    @router.post("/experiments/create")
    def create_experiment(body: _CreateExperiment, who: Principal = Who) -> dict[str, str]:
        project = project_of_name(body.name)
        if project in grants.projects() and who.may(project, "viewer"):
            raise AlreadyExists(
                f"Experiment {body.name!r} already exists.",
                "Use it: mlflow.set_experiment() finds it by name.",
            )
        if who.role != "admin":
            raise Forbidden(
                f"Creating experiment {body.name!r} creates a loopml project, which only an "
                f"admin may do, and {who.user} is not one.",
                f"Ask an admin: `loopml projects create {project}` and `loopml projects grant "
                f"{project} {who.user} --role editor`.",
            )
        event = EventDraft("project.created", f"project:{project}", who.user)
        grants.create_project(project, event)
        return {"experiment_id": experiment_json(project)["experiment_id"]}

    @router.post("/experiments/search")
    def search_experiments(body: _SearchExperiments, who: Principal = Who) -> dict[str, Any]:
        named = experiment_names(body.filter)
        offset, size = page_offset(body.page_token), checked_page_size(body.max_results)
        readable = [
            p for p in grants.projects() if who.may(p, "viewer") and named(experiment_name(p))
        ]
        page = readable[offset : offset + size]
        answer: dict[str, Any] = {"experiments": [experiment_json(p) for p in page]}
        if offset + size < len(readable):
            answer["next_page_token"] = page_token(offset + size)
        return answer


def _run_routes(router: APIRouter, c: Context) -> None:
    Who, runs = c.who, c.stores.runs

    @router.post("/runs/create")
    def create_run(body: _CreateRun, who: Principal = Who) -> dict[str, Any]:
        project = project_of_id(body.experiment_id)
        c.need(who, project, "editor")
        tags = checked_tags(body.tags)
        parent = tags.pop(PARENT_TAG, None)
        if parent is not None:
            c.run_in(who, parent, "viewer")
        name = body.run_name or tags.get(RUN_NAME_TAG) or f"mlflow-{uuid.uuid4().hex[:8]}"
        tags[RUN_NAME_TAG] = name
        if body.user_id:
            tags.setdefault("mlflow.user", body.user_id)
        started = datetime.fromtimestamp(body.start_time / 1000, UTC) if body.start_time else None
        new = NewRun(project, name[:MAX_KEY], {"logged_by": "mlflow"}, tags,
                     parent_id=RunId(parent) if parent else None, started=started)  # fmt: skip
        run = runs.create_run(new, EventDraft("run.created", f"run:{project}", who.user))
        c.remember_run(run.id, project)  # its next calls need not read it to find its project
        return {"run": run_json(run)}

    @router.get("/runs/get")
    def get_run(run_id: str, who: Principal = Who) -> dict[str, Any]:
        c.run_in(who, checked_run_id(run_id), "viewer")
        return {"run": run_json(runs.get_run(RunId(run_id)))}

    @router.post("/runs/update")
    def update_run(body: _UpdateRun, who: Principal = Who) -> dict[str, Any]:
        project = c.run_in(who, checked_run_id(body.run_id), "editor")
        return {"run_info": run_info(_update(c, project, body, who))}


def _logging_routes(router: APIRouter, c: Context) -> None:
    Who, runs = c.who, c.stores.runs

    @router.post("/runs/delete-tag")
    def delete_tag(body: _TagKey, who: Principal = Who) -> dict[str, Any]:
        c.run_in(who, checked_run_id(body.run_id), "editor")
        runs.delete_tag(RunId(body.run_id), body.key)
        return {}

    @router.post("/runs/log-inputs")
    def log_inputs(body: _Inputs, who: Principal = Who) -> dict[str, Any]:
        """Datasets MLflow logs as a run's inputs (`mlflow.log_input`), kept with the run."""
        c.run_in(who, checked_run_id(body.run_id), "editor")
        runs.log_batch(RunId(body.run_id), tags=dict(map(_dataset_tag, body.datasets)))
        return {}

    @router.post("/runs/log-model")
    def log_model(body: _ModelJson, who: Principal = Who) -> dict[str, Any]:
        """MLflow 2's record of a model logged among a run's artifacts (kept as MLflow keeps
        it: the run's tag `mlflow.log-model.history`)."""
        c.run_in(who, checked_run_id(body.run_id), "editor")
        run = runs.get_run(RunId(body.run_id))
        history = json.loads(run.tags.get(MODEL_HISTORY_TAG, "[]"))
        history.append(json.loads(body.model_json))
        text = json.dumps(history)
        if len(text) > MAX_TAG_VALUE:
            raise InvalidInput(
                f"Run {body.run_id} records over {MAX_TAG_VALUE} characters of logged models.",
                "Log fewer models per run.",
            )
        runs.log_batch(run.id, tags={MODEL_HISTORY_TAG: text})
        return {}


def _point_routes(router: APIRouter, c: Context) -> None:
    Who, runs = c.who, c.stores.runs

    @router.post("/runs/log-metric")
    def log_metric(body: _LogMetric, who: Principal = Who) -> dict[str, Any]:
        c.run_in(who, checked_run_id(body.run_id), "editor")
        runs.log_batch(RunId(body.run_id), metrics=[_point(body)])
        return {}

    @router.post("/runs/log-parameter")
    def log_param(body: _LogParam, who: Principal = Who) -> dict[str, Any]:
        c.run_in(who, checked_run_id(body.run_id), "editor")
        runs.log_batch(RunId(body.run_id), params=checked_params([body]))
        return {}

    @router.post("/runs/set-tag")
    def set_tag(body: _LogParam, who: Principal = Who) -> dict[str, Any]:
        c.run_in(who, checked_run_id(body.run_id), "editor")
        runs.log_batch(RunId(body.run_id), tags=checked_tags([body]))
        return {}

    @router.post("/runs/log-batch")
    async def log_batch(body: _LogBatch, who: Principal = Who) -> dict[str, Any]:
        def write() -> None:
            c.run_in(who, checked_run_id(body.run_id), "editor")
            if len(body.metrics) > MAX_BATCH or len(body.params) + len(body.tags) > MAX_BATCH:
                raise InvalidInput(
                    f"A batch of {len(body.metrics)} metrics, {len(body.params)} params and "
                    f"{len(body.tags)} tags is over {MAX_BATCH} of a kind.",
                    "Send at most 1,000 metrics and 1,000 params and tags per call (the MLflow "
                    "client splits larger batches itself).",
                )
            runs.log_batch(
                RunId(body.run_id),
                metrics=[_point(m) for m in body.metrics],
                params=checked_params(body.params),
                tags=checked_tags(body.tags),
            )

        await run_in_threadpool(write)
        return {}


def _search_routes(router: APIRouter, c: Context) -> None:
    Who, runs = c.who, c.stores.runs

    @router.post("/runs/search")
    def search_runs(body: _SearchRuns, who: Principal = Who) -> dict[str, Any]:
        if len(body.experiment_ids) != 1:
            raise InvalidInput(
                f"This search names {len(body.experiment_ids)} experiments; loopml searches "
                "one at a time.",
                "Pass one experiment id and merge the answers (search_all_experiments is not "
                "supported).",
            )
        project = readable_project(c, who, project_of_id(body.experiment_ids[0]))
        if (body.run_view_type or "ACTIVE_ONLY") == "DELETED_ONLY":
            return {"runs": []}  # loopml keeps every run
        query = mlflow_run_query(project, body.filter, body.order_by)
        offset, size = page_offset(body.page_token), checked_page_size(body.max_results)
        page = runs.search(query, size, offset)
        answer: dict[str, Any] = {"runs": [run_json(r) for r in page.runs]}
        if offset + len(page.runs) < page.total:
            answer["next_page_token"] = page_token(offset + len(page.runs))
        return answer

    @router.get("/metrics/get-history")
    def metric_history(
        run_id: str, metric_key: str, page_token: str | None = None,
        max_results: int | None = None, who: Principal = Who,
    ) -> dict[str, Any]:  # fmt: skip
        c.run_in(who, checked_run_id(run_id), "viewer")
        points = runs.metric_history(RunId(run_id), metric_key)
        offset = page_offset(page_token)
        size = len(points) if max_results is None else checked_page_size(max_results)
        answer: dict[str, Any] = {
            "metrics": [
                {"key": p.key, "value": p.value, "step": p.step, "timestamp": p.timestamp_ms}
                for p in points[offset : offset + size]
            ]
        }
        if offset + size < len(points):
            answer["next_page_token"] = _next(offset + size)
        return answer


_next = page_token


def _update(c: Context, project: str, body: _UpdateRun, who: Principal) -> Run:
    """Rename a run (its `mlflow.runName` tag) and end it, as `body` asks; the run after."""
    runs, run_id = c.stores.runs, RunId(body.run_id)
    if body.run_name:
        name = checked_text(body.run_name, MAX_KEY, "run name")
        runs.log_batch(run_id, tags={RUN_NAME_TAG: name})
    status = _status(body.status) if body.status else None
    if status is not None and status is not RunStatus.RUNNING:
        ended = datetime.fromtimestamp(body.end_time / 1000, UTC) if body.end_time else _now()
        event = EventDraft(f"run.{status.value}", f"run:{project}/{run_id}", who.user)
        with contextlib.suppress(Conflict):  # it had ended already: as it ended, it stays
            runs.end_run(run_id, status, None, ended, event)
    return runs.get_run(run_id)


def _now() -> datetime:
    return datetime.now(UTC)


def _named(name: str) -> str:
    try:
        return project_of_name(name)
    except InvalidInput:  # no such experiment can exist: the client then creates it
        raise NotFound(f"No experiment is named {name[:200]!r}.", "Create it.") from None


def _dataset_tag(given: _DatasetInput) -> tuple[str, str]:
    """The run tag that keeps a dataset input: its key and its JSON."""
    dataset = given.dataset
    key = f"{DATASET_TAG}{checked_text(dataset.name, 150, 'dataset name')}.{dataset.digest[:80]}"
    record = {
        "tags": [t.model_dump() for t in given.tags],
        "dataset": dataset.model_dump(by_alias=True, exclude_none=True),
    }
    text = json.dumps(record)
    if len(text) > MAX_TAG_VALUE:
        raise InvalidInput(
            f"Dataset {dataset.name!r} is described in {len(text)} characters (its schema and "
            f"profile); loopml keeps at most {MAX_TAG_VALUE} per input.",
            "Log it with a shorter profile, or version the data with `loopml data add`.",
        )
    return key, text


def _status(text: str) -> RunStatus:
    status = STATUSES.get(text.upper())
    if status is None:
        raise InvalidInput(
            f"Run status {text[:40]!r} is not one of MLflow's.",
            f"Use one of {', '.join(STATUSES)}.",
        )
    return status


def _point(metric: _Metric) -> MetricPoint:
    key = checked_text(metric.key, MAX_KEY, "metric name")
    value = metric.value
    if isinstance(value, str) or not math.isfinite(value):  # "NaN" comes as text or a number
        raise InvalidInput(
            f"Metric {key!r} is {value!r}; loopml keeps finite numbers only.",
            "Log a finite number; mark a diverged run with a tag.",
        )
    stamp = metric.timestamp or int(_now().timestamp() * 1000)
    return MetricPoint(key, float(value), metric.step, stamp)
