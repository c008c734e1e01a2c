"""Every remote operation of the team server, once: which port method it carries, on which
verb and path, for whom, and how its arguments travel.

An argument of the port method travels, by name, in a `{param}` of the path (or where `at`
says: the path's `{param}` is another argument, `arg.attr` of a record in the body, or a
function of the arguments), as a query parameter (`query`, with its default), or else in the
JSON body, a dataclass made from the method's signature (`body`): an event as `EventIn` (the
change the client records; `kind` is the entity kind it must name, and without `kind` the
server records its own, `audit`), metric points as four columns, any other sequence as a list.
The answer is what the method returns (a tuple as a JSON array).

The scope says how the server finds the project the role is checked on: `project` (the path's),
`run` (the project of the path's run id, answered as missing to those who may not read it),
`anywhere` (the role on some project), `admin` (an admin everywhere), `caller` (the server's
own check). The server may hold a check or a handler of its own for an operation
(`loopml.server.handlers`); the client never needs one.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, make_dataclass, replace
from functools import cached_property
from types import GenericAlias, NoneType
from typing import Any, get_args, get_origin, get_type_hints

from loopml.domain.hashing import is_digest
from loopml.domain.loops import loop_of_lease
from loopml.domain.records import EventDraft, MetricPoint
from loopml.errors import InvalidInput
from loopml.ports import (
    AlertStore,
    BlobStore,
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
    RunStore,
    TokenStore,
    UserStore,
)

MAX_HEARTBEAT_RUNS = 10_000
"""The most runs one heartbeat names (the running runs of one client process)."""


@dataclass
class EventIn:
    """The change a client records: the server checks the entity and sets the actor."""

    action: str
    entity: str


@dataclass
class PointsIn:
    """Metric points as four columns, entry i of each being point i: a tenth of the work of a
    list of objects to send and to read."""

    keys: list[str] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    timestamps_ms: list[int] = field(default_factory=list)

    @staticmethod
    def of(points: Any) -> dict[str, list[Any]]:
        """Points (a sequence of MetricPoint) as the four columns."""
        return {
            "keys": [p.key for p in points],
            "values": [p.value for p in points],
            "steps": [p.step for p in points],
            "timestamps_ms": [p.timestamp_ms for p in points],
        }

    def points(self) -> list[MetricPoint]:
        columns = (self.keys, self.values, self.steps, self.timestamps_ms)
        if len({len(column) for column in columns}) > 1:
            raise InvalidInput(
                "The metric columns differ in length: "
                f"{', '.join(str(len(column)) for column in columns)}.",
                "Send one key, value, step and timestamp_ms per point.",
            )
        return list(map(MetricPoint, *columns))


def check_digest(digest: str) -> str:
    """`digest`, refused with the fix unless it is a blob digest (client and server alike)."""
    if not is_digest(digest):
        raise InvalidInput(
            f"{digest!r} is not a blob digest.", "Write blake3:<64 lowercase hex digits>."
        )
    return digest


Source = str | Callable[[Mapping[str, Any]], Any]


def on_wire(hint: Any) -> Any:
    """What a value of type `hint` travels as: a draft event as `EventIn`, metric points as
    `PointsIn`, a sequence or iterator as a list, a mapping as a dict."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is EventDraft:
        return EventIn
    if origin in (Sequence, Iterable, Iterator):
        return PointsIn if args[0] is MetricPoint else GenericAlias(list, args)
    return GenericAlias(dict, args) if origin is Mapping else hint


@dataclass(frozen=True)
class Operation:
    function: Callable[..., Any]
    """The port's method, e.g. `DatasetStore.add_version`."""
    route: str
    """`VERB /path/{param}`, under /api/v1."""
    role: str = "viewer"
    scope: str = "project"
    kind: str = ""
    query: Mapping[str, Any] = field(default_factory=dict)
    at: Mapping[str, Source] = field(default_factory=dict)
    retry: bool | Callable[[Mapping[str, Any]], bool] = True
    """Whether the client may send it again when no answer came (False: a record made under an
    id the server chooses would be made twice)."""
    noun: str = ""
    """What the record in the body is, for the server's messages (`kind` if empty)."""
    audit: str = ""
    """`action entity` of the event the server records itself, formatted with the arguments."""
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

    @cached_property
    def response(self) -> Any:
        """The type of the answer; None: 204 No Content."""
        returned = self.hints["return"]
        return None if returned is NoneType else on_wire(returned)

    def source(self, param: str) -> Source:
        """Where path parameter `param` comes from among the arguments."""
        return self.at.get(param, param)

    def carrier(self, arg: str) -> str | None:
        """The path parameter that carries argument `arg`, if one does (one made by a function
        of the arguments carries the argument of its own name, as the server reads it)."""
        for param in self.path_params:
            source = self.source(param)
            if source == arg or (callable(source) and param == arg):
                return param
        return None

    @cached_property
    def body_fields(self) -> tuple[str, ...]:
        """The arguments the body carries: those the path and query do not, but an event the
        server records itself (any without `kind`)."""
        return tuple(
            p
            for p in self.params
            if p not in self.query and self.carrier(p) is None and (p != "event" or self.kind)
        )

    @cached_property
    def body(self) -> type | None:
        """The body as a dataclass (made once, for the server to validate), or None. An
        argument that may be None may be left out."""
        defaults = inspect.signature(self.function).parameters
        spec: list[Any] = []
        for name in self.body_fields:
            kind, default = on_wire(self.hints[name]), defaults[name].default
            if default is inspect.Parameter.empty and NoneType in get_args(kind):
                default = None
            if default is inspect.Parameter.empty:
                spec.append((name, kind))
            else:  # a sequence's default is an empty one
                made = field(default_factory=kind) if default == () else field(default=default)
                spec.append((name, kind, made))
        return make_dataclass(self.name.replace(".", "_"), spec, kw_only=True) if spec else None

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
        Operation(DatasetStore.add_version, f"POST {_DATA}", "editor", kind="dataset",
                  noun="dataset version", at=_NEW),
        Operation(DatasetStore.list_datasets, f"GET {_P}/datasets"),
        Operation(DatasetStore.list_versions, f"GET {_DATA}"),
        Operation(DatasetStore.get_version, f"GET {_DATA}/{{version}}"),  # 3, or latest
        Operation(DatasetStore.get_manifest, f"GET {_DATA}/{{version}}/manifest"),
        Operation(DatasetStore.get_profile, f"GET {_DATA}/{{version}}/profile"),
    ),
    *_in("blobs",
        Operation(BlobStore.put_file, "PUT /blobs/{digest}", "editor", "anywhere", streamed=True),
        Operation(BlobStore.open, "GET /blobs/{digest}", scope="anywhere", streamed=True),
        Operation(BlobStore.exists, "GET /blobs/{digest}/exists", scope="anywhere"),
    ),
    *_in("runs",
        Operation(RunStore.create_run, f"POST {_P}/runs", "editor", kind="run",
                  at={"project": "new.project"}),
        Operation(RunStore.get_run, f"GET {_RUN}", scope="run"),
        Operation(RunStore.end_run, f"POST {_RUN}/end", "editor", "run", "run"),
        Operation(RunStore.log_batch, f"POST {_RUN}/batch", "editor", "run"),
        Operation(RunStore.delete_tag, f"DELETE {_RUN}/tags/{{key:path}}", "editor", "run"),
        Operation(RunHeartbeats.heartbeat, "POST /runs/heartbeat", "editor", "anywhere",
                  retry=False),  # the next beat is the retry
        Operation(RunStore.add_inputs_and_artifacts, f"POST {_RUN}/links", "editor", "run"),
        Operation(RunStore.search, "POST /runs/search", scope="caller",
                  query={"limit": 100, "offset": 0}),
        Operation(RunStore.metric_history, f"GET {_RUN}/metrics/{{key:path}}", scope="run"),
        Operation(RunStore.list_artifacts, f"GET {_RUN}/artifacts", scope="run"),
    ),
    *_in("models",
        Operation(ModelStore.register, f"POST {_MODEL}/versions", "editor", kind="model",
                  noun="model version", at=_NEW),
        Operation(ModelStore.list_models, f"GET {_P}/models"),
        Operation(ModelStore.list_versions, f"GET {_MODEL}/versions"),
        Operation(ModelStore.get_version, f"GET {_MODEL}/versions/{{version}}"),
        Operation(ModelStore.get_manifest, f"GET {_MODEL}/versions/{{version}}/manifest"),
        Operation(ModelStore.resolve_alias, f"GET {_MODEL}/aliases/{{alias}}"),
        Operation(ModelStore.set_alias, f"PUT {_MODEL}/aliases/{{alias}}", "editor",
                  kind="model"),  # champion needs admin: the server's check
    ),
    *_in("audit",
        Operation(EventLog.list, "GET /events", scope="caller",
                  query={"entity": None, "action": None, "limit": 100}),
        Operation(EventLog.iterate, "GET /events/all", scope="admin"),
    ),
    *_in("users",
        Operation(UserStore.create_user, "POST /users", scope="admin",
                  audit="user.created user:{name}"),
        Operation(UserStore.users, "GET /users", scope="admin"),
        Operation(UserStore.user, "GET /users/{name}", scope="admin"),
        Operation(UserStore.disable_user, "POST /users/{name}/disable", scope="admin",
                  audit="user.disabled user:{name}"),
        Operation(TokenStore.add_token, "POST /users/{name}/tokens", scope="admin",
                  at={"name": "user"}, audit="token.created user:{user}"),
        Operation(TokenStore.tokens, "GET /tokens", scope="admin", query={"user": None}),
        Operation(TokenStore.token, "GET /tokens/{token_id}", scope="admin"),
        Operation(TokenStore.revoke_token, "POST /tokens/{token_id}/revoke", scope="admin"),
    ),
    *_in("projects",
        Operation(GrantStore.projects, "GET /projects", scope="caller"),
        Operation(GrantStore.create_project, f"POST {_P}", scope="admin",
                  audit="project.created project:{project}"),
        Operation(GrantStore.grants, "GET /grants", scope="caller",
                  query={"project": None, "user": None}),
        Operation(GrantStore.grant, f"PUT {_P}/grants/{{user}}", "admin",
                  audit="project.granted project:{project}"),
    ),
    *_in("lineage",
        Operation(PipelineStore.record_io, f"PUT {_RUN}/io", "editor", "run"),
        Operation(PipelineStore.io_of, f"GET {_RUN}/io", scope="run"),
        Operation(LineageStore.children_of, f"GET {_RUN}/children", scope="run", readable=True),
        Operation(PipelineStore.cached, f"GET {_P}/step-cache/{{cache_key}}"),
        Operation(PipelineStore.artifact_runs, "GET /artifacts/{digest}/runs", scope="anywhere",
                  readable=True),
        Operation(LineageStore.runs_using_dataset, f"GET {_DATA}/{{version}}/runs",
                  readable=True),
        Operation(LineageStore.runs_producing_dataset, f"GET {_P}/dataset-producers/{{ref}}"),
        Operation(LineageStore.model_versions_of, "POST /lineage/model-versions",
                  scope="caller"),
    ),
    *_in("deployments",
        Operation(DeploymentStore.save, f"PUT {_DEPLOY}", "admin", kind="deployment",
                  at={"project": "deployment.project", "name": "deployment.name"}),
        Operation(DeploymentStore.list, f"GET {_P}/deployments"),
        Operation(DeploymentStore.get, f"GET {_DEPLOY}"),
        Operation(DeploymentStore.delete, f"DELETE {_DEPLOY}", "admin", kind="deployment"),
    ),
    *_in("monitors",
        Operation(MonitorStore.save, f"PUT {_MONITOR}", "editor", kind="monitor",
                  at={"project": "monitor.project", "name": "monitor.name"}),
        Operation(MonitorStore.list, f"GET {_P}/monitors"),
        Operation(MonitorStore.get, f"GET {_MONITOR}"),
        Operation(MonitorStore.delete, f"DELETE {_MONITOR}", "editor", kind="monitor"),
        Operation(MonitorStore.add_run, f"POST {_MONITOR}/runs", "editor", kind="monitor",
                  noun="monitor run", retry=False,
                  at={"project": "run.project", "name": "run.monitor"}),
        Operation(MonitorStore.runs, f"GET {_MONITOR}/runs", query=_LIMIT, at={"name": "monitor"}),
        Operation(MonitorStore.get_run, f"GET {_P}/monitor-runs/{{run_id}}"),
    ),
    *_in("alerts",
        Operation(AlertStore.add_rule, f"POST {_RULES}", "editor", kind="alert",
                  noun="alert rule", retry=False, at={"project": "rule.project"}),
        Operation(AlertStore.rules, f"GET {_RULES}", query={"target": None}),
        Operation(AlertStore.rule, f"GET {_RULE}"),
        Operation(AlertStore.delete_rule, f"DELETE {_RULE}", "editor", kind="alert"),
        Operation(AlertStore.open_alert, f"GET {_RULE}/alerts/open"),
        Operation(AlertStore.last_alert, f"GET {_RULE}/alerts/last"),
        Operation(AlertStore.save_alert, f"PUT {_P}/alerts", "editor", kind="alert",
                  at={"project": "alert.project"},
                  retry=lambda args: args["alert"].id != 0),  # id 0 opens a new alert
        Operation(AlertStore.alerts, f"GET {_P}/alerts", query={"state": None, "limit": 100}),
        Operation(AlertStore.alert, f"GET {_P}/alerts/{{alert_id}}"),
    ),
    *_in("loops",
        Operation(LoopStore.create, f"POST {_P}/loops", "admin", kind="loop",
                  noun="retrain loop", retry=False, at={"project": "spec.project"}),
        Operation(LoopStore.list, f"GET {_P}/loops"),
        Operation(LoopStore.get, f"GET {_LOOP}"),
        Operation(LoopStore.delete, f"DELETE {_LOOP}", "admin", kind="loop"),
        Operation(LoopStore.save_state, f"PUT {_LOOP}/state", "admin"),
        Operation(LoopStore.save_run, f"PUT {_LOOP}/runs", "admin", kind="loop", noun="loop run",
                  at={"project": "run.project", "name": "run.loop"},
                  retry=lambda args: args["run"].id != 0),  # id 0 records a new retraining
        Operation(LoopStore.runs, f"GET {_LOOP}/runs", query=_LIMIT, at={"name": "loop"}),
        Operation(LoopStore.run, f"GET {_P}/loop-runs/{{run_id}}"),
        # the server reads a loop's lease from the path: `loop_lease(project, name)`
        Operation(Leases.holder, f"GET {_LOOP}/lease", at=_LEASE),
        # taking a lease twice for one owner is taking it once: safe to send again
        Operation(Leases.acquire, f"POST {_LOOP}/lease/acquire", "admin", at=_LEASE),
        Operation(Leases.renew, f"POST {_LOOP}/lease/renew", "admin", at=_LEASE),
        Operation(Leases.release, f"POST {_LOOP}/lease/release", "admin", at=_LEASE),
    ),
)
"""Every operation of /api/v1 (but /health), in the order of the OpenAPI document."""
# fmt: on

BY_FUNCTION: dict[Callable[..., Any], Operation] = {op.function: op for op in OPERATIONS}
