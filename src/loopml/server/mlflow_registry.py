"""MLflow's model registry (`/api/2.0/mlflow/registered-models/...`, `model-versions/...`) over
loopml's: a registered model is a loopml model, a version a loopml model version, an alias a
loopml alias (moving `champion` needs admin, as everywhere in loopml).

MLflow names registered models across the whole server, loopml within a project: a name is
looked up in the projects the caller may read, and a new version goes to the project of the run
it was logged in. A version registered from MLflow holds the model's folder as MLflow wrote it
(`MLmodel` and its files, content-addressed: registering moves no bytes), with the flavor
`mlflow`; `mlflow.pyfunc.load_model("models:/NAME@ALIAS")` downloads it back. MLflow's
`registered-models/create` stores nothing: a loopml model exists from its first version.
"""

from __future__ import annotations

import re
import time
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from loopml.domain.auth import PROTECTED_ALIASES
from loopml.domain.manifest import safe_relative_path
from loopml.domain.mlflow_records import (
    model_files,
    model_version_json,
    registered_model_json,
)
from loopml.domain.records import EventDraft, ModelSummary, ModelVersion
from loopml.domain.refs import check_alias, check_name
from loopml.errors import AlreadyExists, InvalidInput, NotFound
from loopml.server.context import Context
from loopml.server.mlflow_bodies import KeyValue, checked_run_id
from loopml.server.mlflow_models import logged_model
from loopml.services.auth import Principal
from loopml.services.mlflow_registry import register_mlflow_folder

_SOURCE_RE = re.compile(
    r"(?:runs:/(?P<run>[0-9a-f]{32})|mlflow-artifacts:/[^/]+/(?P<art>[0-9a-f]{32})/artifacts)"
    r"(?:/(?P<path>.*))?"
)
_NAME_CLAUSE = re.compile(r"\s*name\s*=\s*'([^']*)'\s*", re.IGNORECASE)
_PROMPTS = re.compile(r"\s*tags?\.`?mlflow\.prompt\.is_prompt`?\s*!=\s*'true'\s*", re.IGNORECASE)


class _Create(BaseModel):
    name: str
    tags: list[KeyValue] = Field(default_factory=list)
    description: str | None = None


class _Latest(BaseModel):
    name: str
    stages: list[str] = Field(default_factory=list)


class _CreateVersion(BaseModel):
    name: str
    source: str = ""
    run_id: str | None = None
    model_id: str | None = None
    tags: list[KeyValue] = Field(default_factory=list)
    description: str | None = None


class _AliasName(BaseModel):
    name: str
    alias: str


class _Alias(_AliasName):
    version: str


def _name_filter(text: str | None) -> str | None:
    """The model name an MLflow registry filter asks for (None: every model). It may also
    exclude prompts (what MLflow's client adds), which loopml does not keep."""
    name = None
    for clause in re.split(r"\s+and\s+", text or "", flags=re.IGNORECASE):
        matched = _NAME_CLAUSE.fullmatch(clause)
        if matched is not None:
            name = matched.group(1)
        elif clause.strip() and not _PROMPTS.fullmatch(clause):
            raise InvalidInput(
                f"loopml cannot search the registry by {clause.strip()[:200]!r}.",
                "Search by name = 'NAME', or without a filter.",
            )
    return name


class _Registry:
    """The registry's models as the caller may read them."""

    def __init__(self, c: Context) -> None:
        self.c = c
        self.models = c.stores.models

    def summaries(self, who: Principal, name: str | None = None) -> list[ModelSummary]:
        projects = [p for p in self.c.stores.grants.projects() if who.may(p, "viewer")]
        return [
            m
            for p in projects
            for m in self.models.list_models(p)
            if name is None or m.name == name
        ]

    def find(self, who: Principal, name: str) -> ModelSummary:
        found = self.summaries(who, name)
        if not found:
            raise NotFound(
                f"No registered model is named {name[:200]!r} (or you may not read it).",
                "Register a version first: mlflow.register_model(model_uri, NAME).",
            )
        if len(found) > 1:
            raise InvalidInput(
                f"Models named {name!r} are in projects {', '.join(m.project for m in found)}; "
                "MLflow names one model per server.",
                "Read them with loopml's API, which names the project, or rename one.",
            )
        return found[0]

    def version(self, who: Principal, name: str, version: str) -> ModelVersion:
        summary = self.find(who, name)
        if not version.isdigit():
            raise InvalidInput(f"Version {version[:20]!r} is not a number.", "Write 1, 2, ...")
        return self.models.get_version(summary.project, name, int(version))

    def latest(self, summary: ModelSummary) -> ModelVersion:
        return self.models.get_version(summary.project, summary.name, summary.latest_version)

    def registered(self, summary: ModelSummary) -> dict[str, Any]:
        return registered_model_json(summary, self.latest(summary))


def mlflow_registry_router(c: Context) -> APIRouter:
    router = APIRouter()
    registry = _Registry(c)
    _model_routes(router, c, registry)
    _alias_routes(router, c, registry)
    _version_routes(router, c, registry)
    return router


def _model_routes(router: APIRouter, c: Context, registry: _Registry) -> None:
    Who = c.who

    @router.post("/registered-models/create")
    def create(body: _Create, who: Principal = Who) -> dict[str, Any]:
        name = check_name(body.name, "model")
        if registry.summaries(who, name):
            raise AlreadyExists(f"Registered model {name!r} already exists.", "Add a version.")
        now = int(time.time() * 1000)
        model = {"name": name, "creation_timestamp": now, "last_updated_timestamp": now}
        return {"registered_model": model}

    @router.post("/registered-models/get-latest-versions")
    def latest_versions(body: _Latest, who: Principal = Who) -> dict[str, Any]:
        """The latest version (loopml has no stages: every version is in stage "None")."""
        summary = registry.find(who, body.name)
        wanted = not body.stages or "None" in body.stages
        return {"model_versions": [model_version_json(registry.latest(summary))] if wanted else []}

    @router.get("/registered-models/get")
    def get(name: str, who: Principal = Who) -> dict[str, Any]:
        return {"registered_model": registry.registered(registry.find(who, name))}

    @router.get("/registered-models/search")
    def search(
        filter: str | None = None, max_results: int = 100, page_token: str | None = None,
        who: Principal = Who,
    ) -> dict[str, Any]:  # fmt: skip
        found = registry.summaries(who, _name_filter(filter))
        return {"registered_models": [registry.registered(m) for m in found[:max_results]]}


def _alias_routes(router: APIRouter, c: Context, registry: _Registry) -> None:
    Who = c.who

    def move(who: Principal, name: str, alias: str, version: int | None) -> None:
        summary = registry.find(who, name)
        role = "admin" if check_alias(alias) in PROTECTED_ALIASES else "editor"
        c.need(who, summary.project, role)
        action = "model.alias_set" if version is not None else "model.alias_deleted"
        event = EventDraft(action, f"model:{summary.project}/{name}", who.user)
        registry.models.set_alias(summary.project, name, alias, version, event)

    @router.post("/registered-models/alias")
    def set_alias(body: _Alias, who: Principal = Who) -> dict[str, Any]:
        move(who, body.name, body.alias, registry.version(who, body.name, body.version).version)
        return {}

    @router.delete("/registered-models/alias")
    def delete_alias(body: _AliasName, who: Principal = Who) -> dict[str, Any]:
        move(who, body.name, body.alias, None)
        return {}

    @router.get("/registered-models/alias")
    def by_alias(name: str, alias: str, who: Principal = Who) -> dict[str, Any]:
        summary = registry.find(who, name)
        number = registry.models.resolve_alias(summary.project, name, check_alias(alias))
        version = registry.models.get_version(summary.project, name, number)
        return {"model_version": model_version_json(version)}


def _version_routes(router: APIRouter, c: Context, registry: _Registry) -> None:
    Who = c.who

    @router.post("/model-versions/create")
    def create_version(body: _CreateVersion, who: Principal = Who) -> dict[str, Any]:
        return {"model_version": model_version_json(_register(c, registry, body, who))}

    @router.get("/model-versions/get")
    def get_version(name: str, version: str, who: Principal = Who) -> dict[str, Any]:
        return {"model_version": model_version_json(registry.version(who, name, version))}

    @router.get("/model-versions/search")
    def search_versions(
        filter: str | None = None, max_results: int = 10_000, who: Principal = Who
    ) -> dict[str, Any]:
        versions = [
            version
            for m in registry.summaries(who, _name_filter(filter))
            for version in reversed(registry.models.list_versions(m.project, m.name))
        ]
        return {"model_versions": [model_version_json(v) for v in versions[:max_results]]}

    @router.get("/model-versions/get-download-uri")
    def download_uri(name: str, version: str, who: Principal = Who) -> dict[str, Any]:
        found = registry.version(who, name, version)
        origin = found.flavor_info.get("mlflow", {}) if found.flavor == "mlflow" else {}
        if not origin.get("artifact_uri"):
            raise InvalidInput(
                f"Version {version} of {name!r} was registered by loopml ({found.flavor}), not "
                "by MLflow: it has no MLflow model folder.",
                f"Load it with loopml: loopml.models.load('{name}/{version}').",
            )
        return {"artifact_uri": origin["artifact_uri"]}


def _register(
    c: Context, registry: _Registry, body: _CreateVersion, who: Principal
) -> ModelVersion:
    """A new version of model `body.name` from the MLflow model folder its source names: a
    logged model (`models:/MODEL_ID`), or a folder of a run's artifacts."""
    name = check_name(body.name, "model")
    run_id, folder, model_id = _source(c, who, body)
    project = c.run_in(who, run_id, "editor")
    others = [m.project for m in registry.summaries(who, name) if m.project != project]
    if others:
        raise InvalidInput(
            f"Model {name!r} is in project {others[0]!r}, and this run is in {project!r}.",
            f"Register it under another name, or log the run in experiment {others[0]!r}.",
        )
    origin = {
        "source": body.source or f"models:/{model_id}",
        **({"model_id": model_id} if model_id else {}),
    }
    return register_mlflow_folder(
        c.stores.runs, registry.models, name=name, run_id=run_id, folder=folder, origin=origin,
        actor=who.user,
    )  # fmt: skip


def _source(c: Context, who: Principal, body: _CreateVersion) -> tuple[str, str, str | None]:
    """(run id, folder of its artifacts, logged model id or None) of a version's source."""
    model_id = body.model_id or (
        body.source.removeprefix("models:/") if body.source.startswith("models:/m-") else None
    )
    if model_id:
        run, _ = logged_model(c, who, model_id, "viewer")
        return run.id, model_files(model_id), model_id
    matched = _SOURCE_RE.fullmatch(body.source)
    if matched is None:
        raise InvalidInput(
            f"loopml cannot register a model from {body.source[:200]!r}.",
            "Register the model_uri that log_model returned (models:/m-...), or a folder of a "
            "run's artifacts (runs:/RUN_ID/PATH).",
        )
    run_id = checked_run_id(matched.group("run") or matched.group("art"))
    folder = (matched.group("path") or "").strip("/")
    if not folder:
        raise InvalidInput(
            f"{body.source[:200]!r} names a run's whole artifacts, not a model's folder.",
            "Name the folder log_model wrote: runs:/RUN_ID/model.",
        )
    return run_id, safe_relative_path(folder), None
