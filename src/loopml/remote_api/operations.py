"""Every remote operation of the team server, once: which port method it carries, on which
verb and path, for whom, and how its arguments travel.

How an argument of the port method travels, by name: a `{param}` of the path (or the source
`at` gives it: another argument, `arg.attr` of a record in the body, or a function of the
arguments), a query parameter (`query`, with its default), the whole body (an argument of the
body's type), or a field of the body (of the argument of that name, `at[field]`, or else the
attribute of the `flat` argument); `event` is the body's `event`, the change the client records
(`kind` is the entity kind it must name), unless the server records one itself (`audit`).

The scope says how the server finds the project the role is checked on: `project` (the path's),
`run` (the project of the path's run id, answered as missing to those who may not read it),
`anywhere` (the role on some project), `admin` (an admin everywhere), `caller` (the server's
own handler checks). The server may hold an extra check or a handler of its own for an
operation (`loopml.server.routes`); the client never needs one.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, get_type_hints

from loopml.domain.auth import Grant, Token, User
from loopml.domain.loops import Loop, LoopRun, LoopState, loop_of_lease
from loopml.domain.manifest import Manifest
from loopml.domain.records import (
    Alert,
    AlertRule,
    DatasetSummary,
    DatasetVersion,
    Deployment,
    Event,
    MetricPoint,
    ModelSummary,
    ModelVersion,
    Monitor,
    MonitorRun,
    Run,
    RunArtifact,
)
from loopml.ports import (
    AlertStore,
    BlobStore,
    CachedStep,
    DatasetStore,
    DeploymentStore,
    EventLog,
    GrantStore,
    Leases,
    LineageStore,
    LoopStore,
    ModelStore,
    MonitorStore,
    PipelineStore,
    RunHeartbeats,
    RunPage,
    RunStore,
    TokenStore,
    UserStore,
)
from loopml.remote_api import bodies as b

Source = str | Callable[[Mapping[str, Any]], Any]


@dataclass(frozen=True)
class Operation:
    function: Callable[..., Any]
    """The port's method, e.g. `DatasetStore.add_version`."""
    route: str
    """`VERB /path/{param}`, under /api/v1."""
    answer: Any = None
    """What a success answers; None: 204 No Content."""
    role: str = "viewer"
    scope: str = "project"
    body: type | None = None
    kind: str = ""
    query: Mapping[str, Any] = field(default_factory=dict)
    at: Mapping[str, Source] = field(default_factory=dict)
    flat: str = ""
    send: Mapping[str, Any] = field(default_factory=dict)
    """Body fields the client sends as they are here."""
    retry: bool | Callable[[Mapping[str, Any]], bool] = True
    """Whether the client may send it again when no answer came (False: a record made under an
    id the server chooses would be made twice)."""
    noun: str = ""
    """What the record in the body is, for the server's messages."""
    audit: str = ""
    """`action entity` of the event the server records itself, formatted with the path."""
    tag: str = ""
    readable: bool = False
    """It answers run ids (a list, or a tuple of lists): the server leaves out those of
    projects the caller may not read."""
    streamed: bool = False
    """Bytes, not JSON: both sides are hand-written around this entry's path."""

    @property
    def name(self) -> str:
        return str(self.function.__qualname__)

    @property
    def verb(self) -> str:
        return self.route.split(" ", 1)[0]

    @property
    def path(self) -> str:
        return self.route.split(" ", 1)[1]

    @cached_property
    def path_params(self) -> tuple[str, ...]:
        return tuple(p.strip("{}").split(":")[0] for p in self.path.split("/") if "{" in p)

    @cached_property
    def params(self) -> tuple[str, ...]:
        """The port method's parameters, without self."""
        return tuple(inspect.signature(self.function).parameters)[1:]

    @cached_property
    def hints(self) -> dict[str, Any]:
        return get_type_hints(self.function)

    @property
    def status(self) -> int:
        return 204 if self.answer is None else 200

    def source(self, param: str) -> Source:
        """Where path parameter `param` comes from among the arguments."""
        return self.at.get(param, param)

    def field_source(self, name: str) -> str:
        """Where body field `name` comes from among the arguments."""
        given = self.at.get(name) if name not in self.path_params else None
        if isinstance(given, str):
            return given
        return name if name in self.params or not self.flat else f"{self.flat}.{name}"

    def whole_body(self) -> str | None:
        """The argument that is the body itself, if one is."""
        return next((p for p in self.params if self.hints.get(p) is self.body), None)

    def retries(self, args: Mapping[str, Any]) -> bool:
        return self.retry(args) if callable(self.retry) else self.retry


def _in(tag: str, *operations: Operation) -> tuple[Operation, ...]:
    return tuple(replace(o, tag=tag) for o in operations)


def _lease_loop(args: Mapping[str, Any]) -> tuple[str, str]:
    return loop_of_lease(args["name"])


_LEASE = {"project": lambda a: _lease_loop(a)[0], "name": lambda a: _lease_loop(a)[1]}
_P, _RUN = "/projects/{project}", "/runs/{run_id}"
_DATA, _MODEL = _P + "/datasets/{name}/versions", _P + "/models/{name}"
_DEPLOY, _MONITOR, _LOOP = _P + "/deployments/{name}", _P + "/monitors/{name}", _P + "/loops/{name}"
_RULES, _RULE = _P + "/alert-rules", _P + "/alert-rules/{rule_id}"
_LIMIT = {"limit": 100}
_NEW = {"project": "new.project", "name": "new.name"}

# fmt: off
OPERATIONS: tuple[Operation, ...] = (
    *_in("datasets",
        Operation(DatasetStore.add_version, f"POST {_DATA}", b.AddedVersion, "editor",
                  body=b.NewDatasetIn, kind="dataset", flat="new",
                  at={**_NEW, "table_schema": "new.schema"}),
        Operation(DatasetStore.list_datasets, f"GET {_P}/datasets", list[DatasetSummary]),
        Operation(DatasetStore.list_versions, f"GET {_DATA}", list[DatasetVersion]),
        Operation(DatasetStore.get_version, f"GET {_DATA}/{{version}}", DatasetVersion),
        Operation(DatasetStore.get_manifest, f"GET {_DATA}/{{version}}/manifest", Manifest),
        Operation(DatasetStore.get_profile, f"GET {_DATA}/{{version}}/profile",
                  dict[str, Any] | None),
    ),
    *_in("blobs",
        Operation(BlobStore.put_file, "PUT /blobs/{digest}", None, "editor", "anywhere",
                  streamed=True),
        Operation(BlobStore.open, "GET /blobs/{digest}", scope="anywhere", streamed=True),
        Operation(BlobStore.exists, "GET /blobs/{digest}/exists", b.Exists, scope="anywhere"),
    ),
    *_in("runs",
        Operation(RunStore.create_run, f"POST {_P}/runs", Run, "editor", body=b.NewRunIn,
                  kind="run", flat="new", at={"project": "new.project"}),
        Operation(RunStore.get_run, f"GET {_RUN}", Run, scope="run"),
        Operation(RunStore.end_run, f"POST {_RUN}/end", None, "editor", "run", b.EndRunIn, "run"),
        Operation(RunStore.log_batch, f"POST {_RUN}/batch", None, "editor", "run", b.BatchIn),
        Operation(RunHeartbeats.heartbeat, "POST /runs/heartbeat", None, "editor", "caller",
                  b.RunIdsIn, retry=False),  # the next beat is the retry
        Operation(RunStore.add_inputs_and_artifacts, f"POST {_RUN}/links", None, "editor", "run",
                  b.LinksIn, at={"datasets": "dataset_refs"}),
        Operation(RunStore.search, "POST /runs/search", RunPage, scope="caller", body=b.SearchIn),
        Operation(RunStore.metric_history, f"GET {_RUN}/metrics/{{key:path}}",
                  list[MetricPoint], scope="run"),
        Operation(RunStore.list_artifacts, f"GET {_RUN}/artifacts", list[RunArtifact],
                  scope="run"),
    ),
    *_in("models",
        Operation(ModelStore.register, f"POST {_MODEL}/versions", ModelVersion, "editor",
                  body=b.NewModelIn, kind="model", flat="new", at=_NEW),
        Operation(ModelStore.list_models, f"GET {_P}/models", list[ModelSummary]),
        Operation(ModelStore.list_versions, f"GET {_MODEL}/versions", list[ModelVersion]),
        Operation(ModelStore.get_version, f"GET {_MODEL}/versions/{{version}}", ModelVersion),
        Operation(ModelStore.get_manifest, f"GET {_MODEL}/versions/{{version}}/manifest",
                  Manifest),
        Operation(ModelStore.resolve_alias, f"GET {_MODEL}/aliases/{{alias}}", b.AliasOut),
        Operation(ModelStore.set_alias, f"PUT {_MODEL}/aliases/{{alias}}", b.AliasOut, "editor",
                  body=b.AliasIn, kind="model"),  # champion needs admin: the server's check
    ),
    *_in("audit",
        Operation(EventLog.list, "GET /events", list[Event], scope="caller",
                  query={"entity": None, "action": None, "limit": 100}),
        Operation(EventLog.iterate, "GET /events/all", list[Event], scope="admin"),
    ),
    *_in("users",
        Operation(UserStore.create_user, "POST /users", User, scope="admin", body=b.UserIn),
        Operation(UserStore.users, "GET /users", list[User], scope="admin"),
        Operation(UserStore.user, "GET /users/{name}", User, scope="admin"),
        Operation(UserStore.disable_user, "POST /users/{name}/disable", User, scope="admin",
                  audit="user.disabled user:{name}"),
        Operation(TokenStore.add_token, "POST /users/{name}/tokens", Token, scope="admin",
                  body=b.TokenIn, at={"name": "user", "expires_at": "expires"}),
        Operation(TokenStore.tokens, "GET /tokens", list[Token], scope="admin",
                  query={"user": None}),
        Operation(TokenStore.token, "GET /tokens/{token_id}", Token, scope="admin"),
        Operation(TokenStore.revoke_token, "POST /tokens/{token_id}/revoke", Token,
                  scope="admin"),
    ),
    *_in("projects",
        Operation(GrantStore.projects, "GET /projects", list[str], scope="caller"),
        Operation(GrantStore.create_project, f"POST {_P}", b.Created, scope="admin",
                  audit="project.created project:{project}"),
        Operation(GrantStore.grants, "GET /grants", list[Grant], scope="caller",
                  query={"project": None, "user": None}),
        Operation(GrantStore.grant, f"PUT {_P}/grants/{{user}}", list[Grant], "admin",
                  body=b.GrantIn),
    ),
    *_in("lineage",
        Operation(PipelineStore.record_io, f"PUT {_RUN}/io", None, "editor", "run", b.StepIoIn),
        Operation(PipelineStore.io_of, f"GET {_RUN}/io", b.StepIoOut, scope="run"),
        Operation(LineageStore.children_of, f"GET {_RUN}/children", list[str], scope="run",
                  readable=True),
        Operation(PipelineStore.cached, f"GET {_P}/step-cache/{{cache_key}}", CachedStep | None),
        Operation(PipelineStore.artifact_runs, "GET /artifacts/{digest}/runs",
                  b.ArtifactRunsOut, scope="anywhere", readable=True),
        Operation(LineageStore.runs_using_dataset, f"GET {_DATA}/{{version}}/runs", list[str],
                  readable=True),
        Operation(LineageStore.runs_producing_dataset, f"GET {_P}/dataset-producers/{{ref}}",
                  list[str]),
        Operation(LineageStore.model_versions_of, "POST /lineage/model-versions",
                  list[b.ModelOfRun], scope="caller", body=b.RunIdsIn),
    ),
    *_in("deployments",
        Operation(DeploymentStore.save, f"PUT {_DEPLOY}", b.SavedDeployment, "admin",
                  body=b.DeploymentIn, kind="deployment", noun="deployment",
                  at={"project": "deployment.project", "name": "deployment.name"}),
        Operation(DeploymentStore.list, f"GET {_P}/deployments", list[Deployment]),
        Operation(DeploymentStore.get, f"GET {_DEPLOY}", Deployment),
        Operation(DeploymentStore.delete, f"DELETE {_DEPLOY}", None, "admin", body=b.DeletionIn,
                  kind="deployment"),
    ),
    *_in("monitors",
        Operation(MonitorStore.save, f"PUT {_MONITOR}", b.SavedMonitor, "editor",
                  body=b.MonitorIn, kind="monitor", noun="monitor",
                  at={"project": "monitor.project", "name": "monitor.name"}),
        Operation(MonitorStore.list, f"GET {_P}/monitors", list[Monitor]),
        Operation(MonitorStore.get, f"GET {_MONITOR}", Monitor),
        Operation(MonitorStore.delete, f"DELETE {_MONITOR}", None, "editor", body=b.DeletionIn,
                  kind="monitor"),
        Operation(MonitorStore.add_run, f"POST {_MONITOR}/runs", MonitorRun, "editor",
                  body=b.MonitorRunIn, kind="monitor", noun="monitor run", retry=False,
                  at={"project": "run.project", "name": "run.monitor"}),
        Operation(MonitorStore.runs, f"GET {_MONITOR}/runs", list[MonitorRun], query=_LIMIT,
                  at={"name": "monitor"}),
        Operation(MonitorStore.get_run, f"GET {_P}/monitor-runs/{{run_id}}", MonitorRun),
    ),
    *_in("alerts",
        Operation(AlertStore.add_rule, f"POST {_RULES}", AlertRule, "editor", body=b.RuleIn,
                  kind="alert", noun="alert rule", retry=False, at={"project": "rule.project"}),
        Operation(AlertStore.rules, f"GET {_RULES}", list[AlertRule], query={"target": None}),
        Operation(AlertStore.rule, f"GET {_RULE}", AlertRule),
        Operation(AlertStore.delete_rule, f"DELETE {_RULE}", None, "editor", body=b.DeletionIn,
                  kind="alert"),
        Operation(AlertStore.open_alert, f"GET {_RULE}/alerts/open", Alert | None),
        Operation(AlertStore.last_alert, f"GET {_RULE}/alerts/last", Alert | None),
        Operation(AlertStore.save_alert, f"PUT {_P}/alerts", Alert, "editor", body=b.AlertIn,
                  kind="alert", noun="alert", at={"project": "alert.project"},
                  retry=lambda args: args["alert"].id != 0),  # id 0 opens a new alert
        Operation(AlertStore.alerts, f"GET {_P}/alerts", list[Alert],
                  query={"state": None, "limit": 100}),
        Operation(AlertStore.alert, f"GET {_P}/alerts/{{alert_id}}", Alert),
    ),
    *_in("loops",
        Operation(LoopStore.create, f"POST {_P}/loops", Loop, "admin", body=b.LoopIn,
                  kind="loop", noun="retrain loop", retry=False, at={"project": "spec.project"}),
        Operation(LoopStore.list, f"GET {_P}/loops", list[Loop]),
        Operation(LoopStore.get, f"GET {_LOOP}", Loop),
        Operation(LoopStore.delete, f"DELETE {_LOOP}", None, "admin", body=b.DeletionIn,
                  kind="loop"),
        Operation(LoopStore.save_state, f"PUT {_LOOP}/state", None, "admin", body=LoopState),
        Operation(LoopStore.save_run, f"PUT {_LOOP}/runs", LoopRun, "admin", body=b.LoopRunIn,
                  kind="loop", noun="loop run", at={"project": "run.project", "name": "run.loop"},
                  retry=lambda args: args["run"].id != 0),  # id 0 records a new retraining
        Operation(LoopStore.runs, f"GET {_LOOP}/runs", list[LoopRun], query=_LIMIT,
                  at={"name": "loop"}),
        Operation(LoopStore.run, f"GET {_P}/loop-runs/{{run_id}}", LoopRun),
        Operation(Leases.holder, f"GET {_LOOP}/lease", b.LeaseOut, at=_LEASE),
        # taking a lease twice for one owner is taking it once: safe to send again
        Operation(Leases.acquire, f"POST {_LOOP}/lease/acquire", b.Held, "admin",
                  body=b.LeaseIn, at=_LEASE),
        Operation(Leases.renew, f"POST {_LOOP}/lease/renew", b.Held, "admin", body=b.LeaseIn,
                  at=_LEASE),
        Operation(Leases.release, f"POST {_LOOP}/lease/release", None, "admin",
                  body=b.LeaseIn, at=_LEASE, send={"ttl_s": 1.0}),
    ),
)
"""Every operation of /api/v1 (but /health), in the order of the OpenAPI document."""
# fmt: on

BY_FUNCTION: dict[Callable[..., Any], Operation] = {op.function: op for op in OPERATIONS}
