"""Experiment tracking: runs with params, buffered metrics, tags, artifacts, inputs, environment.

Metric points are buffered in memory and written in batches: when the buffer holds
`FLUSH_POINTS` points, when `FLUSH_INTERVAL_S` has passed since the last write (checked on every
call, and every `FLUSH_INTERVAL_S / 10` by one background thread), on `flush()` and when the run
ends. A crash loses at most the points of the last 1.1 s, and never more than `FLUSH_POINTS`.

The same thread is the runs' heartbeat: every `HEARTBEAT_S` seconds (or a sixth of the run
timeout, if shorter) it stamps every active run of the process as alive, in one write per
store (one call to a team server). A run whose heartbeat stopped for `run_timeout_s` (setting
LOOPML_RUN_TIMEOUT_S, default 600 s) is marked `killed` by the next workspace that opens (and by
the team server's schedule): its process was killed or lost. A process busy in one long step
keeps beating, the beat being a thread of its own.
"""

from __future__ import annotations

import math
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from loopml.domain.filters import RunQuery, parse_filter, parse_order_by
from loopml.domain.manifest import safe_relative_path
from loopml.domain.records import (
    DatasetVersion,
    EventDraft,
    MetricPoint,
    Run,
    RunArtifact,
    RunId,
    RunStatus,
)
from loopml.errors import InvalidInput
from loopml.ports import (
    BlobStore,
    EnvironmentProbe,
    NewRun,
    RunHeartbeats,
    RunPage,
    RunStore,
    SilentRunReaper,
)
from loopml.services.run_flusher import FLUSH_INTERVAL_S, RunFlusher

current_run: ContextVar[ActiveRun | None] = ContextVar("loopml_current_run", default=None)
"""The run that code in this context logs to: the `with` block's run, or a pipeline step's run."""

FLUSH_POINTS = 1000
"""A run with this many points buffered has them written at once, by the background flusher
(the logging code goes on buffering meanwhile, so the next batch is larger)."""
MAX_BUFFERED = 50_000
"""A run whose store falls this far behind writes in the logging thread (back-pressure)."""
MAX_KEY_LENGTH = 250
HEARTBEAT_S = 10.0
"""How often a process stamps its active runs as alive (at most; see `TrackingService`)."""
RUN_TIMEOUT_S = 600.0
"""A run without a heartbeat for this long is marked killed (setting LOOPML_RUN_TIMEOUT_S)."""


def _check_key(key: str, what: str) -> str:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidInput(
            f"{what.capitalize()} name {key!r} is not allowed.",
            f"Use a non-empty string of at most {MAX_KEY_LENGTH} characters.",
        )
    return key


def _check_value(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            value = float(value)  # numpy scalars and the like
        except (TypeError, ValueError):
            raise InvalidInput(
                f"Metric {key!r} got {value!r} ({type(value).__name__}), not a number.",
                "Log numbers as metrics; log text as a param or a tag.",
            ) from None
    number = float(value)
    if not math.isfinite(number):
        raise InvalidInput(
            f"Metric {key!r} is {number}; a metric is a finite number (JSON, and so the team "
            "server, has no NaN or infinity, and SQLite keeps NaN as no value).",
            "Log a finite number; mark a run that diverged with a tag, "
            "e.g. run.set_tag('diverged', 'true').",
        )
    return number


class ActiveRun:
    """A run being recorded. Use it as a context manager: an exception marks the run failed."""

    def __init__(self, service: TrackingService, run: Run) -> None:
        self._service = service
        self.id: RunId = run.id
        self.project = run.project
        self.name = run.name
        self._buffer: list[MetricPoint] = []
        self._steps: dict[str, int] = {}
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        """Held while a batch is written, so flushes follow one another."""
        self._last_flush = time.monotonic()
        self._ended = False
        self._token: Token[ActiveRun | None] | None = None
        self.before_end: list[Callable[[], None]] = []
        """Called as the run ends, before its last writes (logging done in the background)."""
        _FLUSHER.watch(self)

    def deactivate(self) -> None:
        """Stop being the current run of this context, without ending the run."""
        if self._token is not None:
            try:
                current_run.reset(self._token)
            except ValueError:  # activated in another context
                current_run.set(None)
            self._token = None

    def activate(self) -> ActiveRun:
        """Make this the current run of this context (what `loopml.active_run()` returns)."""
        if self._token is None:
            self._token = current_run.set(self)
        return self

    # -- logging -----------------------------------------------------------------------------
    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        clean = {_check_key(k, "param"): str(v) for k, v in params.items()}
        if clean:
            self._service.store.log_batch(self.id, params=clean)

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        clean = {_check_key(k, "tag"): str(v) for k, v in tags.items()}
        if clean:
            self._service.store.log_batch(self.id, tags=clean)

    def log_metric(self, key: str, value: Any, step: int | None = None) -> None:
        """Buffer one point; `step` defaults to the next step of this key (0, 1, 2, ...)."""
        number = _check_value(key, value)
        now_ms = time.time_ns() // 1_000_000
        with self._lock:
            if key not in self._steps:
                _check_key(key, "metric")
            if step is None:
                step = self._steps.get(key, -1) + 1
            self._steps[key] = max(step, self._steps.get(key, step))
            self._buffer.append(MetricPoint(key, number, int(step), now_ms))
            buffered = len(self._buffer)
        if buffered >= MAX_BUFFERED:
            self.flush()
        elif buffered == FLUSH_POINTS:
            _FLUSHER.wake()

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        for key, value in metrics.items():
            self.log_metric(key, value, step)

    def flush(self) -> None:
        """Write every buffered point now; returns once every point logged before the call is
        stored, including those a background flush was writing at that moment."""
        with self._flushing:
            with self._lock:
                batch, self._buffer = self._buffer, []
                self._last_flush = time.monotonic()
            if batch:
                try:
                    self._service.store.log_batch(self.id, metrics=batch)
                except Exception:
                    with self._lock:  # keep the points for the next try
                        self._buffer[:0] = batch
                    raise

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def service(self) -> TrackingService:
        return self._service

    def flush_if_due(self) -> None:
        """Flush when `FLUSH_POINTS` are buffered or points have waited `FLUSH_INTERVAL_S`;
        called by the background flusher."""
        waited = time.monotonic() - self._last_flush >= FLUSH_INTERVAL_S
        if len(self._buffer) >= FLUSH_POINTS or (self._buffer and waited):
            self.flush()

    def use_dataset(self, dataset: DatasetVersion | str) -> DatasetVersion:
        """Record a dataset version as an input of this run (`churn@2` or a DatasetVersion)."""
        version = (
            dataset
            if isinstance(dataset, DatasetVersion)
            else (self._service.resolve_dataset(dataset, self.project))
        )
        self._service.store.add_inputs_and_artifacts(
            self.id, [(version.project, version.name, version.version)], []
        )
        return version

    def log_artifact(self, local_path: str | Path, artifact_path: str | None = None) -> list[str]:
        """Store a file, or every file of a folder, with this run; returns the stored paths."""
        return self._service.log_artifact(self.id, Path(local_path), artifact_path)

    def log_text(self, text: str, artifact_path: str) -> str:
        ref = self._service.blobs.put_bytes(text.encode())
        path = safe_relative_path(artifact_path)
        self._service.store.add_inputs_and_artifacts(
            self.id, [], [RunArtifact(path, ref.digest, ref.size)]
        )
        return path

    # -- lifecycle ---------------------------------------------------------------------------
    def end(self, status: RunStatus = RunStatus.FINISHED, error: str | None = None) -> None:
        """Close the run with `status`, writing the buffered points in the same transaction."""
        if self._ended:
            return
        while self.before_end:
            self.before_end.pop(0)()
        _FLUSHER.forget(self)
        with self._flushing:  # a background flush in flight lands before the run ends
            with self._lock:
                batch, self._buffer = self._buffer, []
            try:
                self._service.end_run(self, status, error, batch)
            except Exception:
                with self._lock:
                    self._buffer[:0] = batch
                raise
        self._ended = True
        self._service.active_runs.discard(self)
        self.deactivate()

    def __enter__(self) -> ActiveRun:
        return self.activate()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.end()
        elif isinstance(exc, KeyboardInterrupt):
            self.end(RunStatus.KILLED, "KeyboardInterrupt")
        else:
            text = "".join(traceback.format_exception_only(exc)).strip()
            self.end(RunStatus.FAILED, text)

    def __repr__(self) -> str:
        return f"ActiveRun(id={self.id!r}, name={self.name!r}, project={self.project!r})"


_FLUSHER = RunFlusher()


@dataclass(frozen=True)
class RunComparison:
    runs: tuple[Run, Run]
    params: dict[str, tuple[str | None, str | None]]
    metrics: dict[str, tuple[float | None, float | None]]
    inputs: tuple[tuple[str, ...], tuple[str, ...]]


def _name_and_version(ref: str) -> tuple[str, int]:
    """`churn@3` (a run's input) as ("churn", 3)."""
    name, _, version = ref.rpartition("@")
    return name, int(version)


def new_run_id() -> RunId:
    """A run's id, chosen before it is stored so that a retried create makes one run."""
    return RunId(uuid.uuid4().hex)


class TrackingService:
    def __init__(
        self,
        store: RunStore,
        blobs: BlobStore,
        environment: EnvironmentProbe,
        resolve_dataset: Callable[[str, str], DatasetVersion],
        actor: str,
        *,
        run_timeout_s: float = RUN_TIMEOUT_S,
    ) -> None:
        self.store = store
        self.blobs = blobs
        self._environment = environment
        self.resolve_dataset = resolve_dataset
        self._actor = actor
        self.active_runs: set[ActiveRun] = set()
        self.run_timeout_s = run_timeout_s
        self.heartbeat_s = min(HEARTBEAT_S, run_timeout_s / 6)
        self._next_beat = 0.0
        self._next_reap = 0.0
        self._beating = threading.Lock()
        self._closed = False

    def beat_if_due(self, run_ids: list[RunId]) -> None:
        """Stamp `run_ids` as alive if `heartbeat_s` has passed since the last beat (called by
        the background thread with every active run of this service); never once the service
        is closed."""
        with self._beating:
            now = time.monotonic()
            if self._closed or now < self._next_beat:
                return
            if not isinstance(self.store, RunHeartbeats):
                return
            self._next_beat = now + self.heartbeat_s
            self.store.heartbeat(run_ids)

    def end_silent_runs(self, *, every_s: float = 0.0) -> list[RunId]:
        """Mark killed the runs whose heartbeat stopped `run_timeout_s` ago (their process
        died); not again within `every_s` seconds (capped at a quarter of the timeout). A
        client of a team server leaves it to the server."""
        now = time.monotonic()
        if now < self._next_reap or not isinstance(self.store, SilentRunReaper):
            return []
        self._next_reap = now + min(every_s, self.run_timeout_s / 4)
        reason = {"reason": "heartbeat stopped"}
        event = EventDraft("run.killed", "run:", self._actor, None, reason)
        return self.store.end_silent_runs(self.run_timeout_s, event)

    def start_run(
        self,
        *,
        project: str,
        name: str | None = None,
        tags: Mapping[str, Any] | None = None,
        parent_id: RunId | None = None,
        capture_environment: bool = True,
        params: Mapping[str, Any] | None = None,
    ) -> ActiveRun:
        environment: dict[str, Any] = {}
        artifacts: tuple[RunArtifact, ...] = ()
        if capture_environment:
            environment, packages = self._environment.capture()
            ref = self.blobs.put_bytes(packages.encode())
            environment = {**environment, "packages_digest": ref.digest}
            artifacts = (RunArtifact("environment/requirements.txt", ref.digest, ref.size),)
        new = NewRun(
            project=project,
            name=name or datetime.now(UTC).strftime("run-%Y%m%d-%H%M%S"),
            environment=environment,
            tags={k: str(v) for k, v in (tags or {}).items()},
            parent_id=parent_id,
            artifacts=artifacts,
            params={_check_key(k, "param"): str(v) for k, v in (params or {}).items()},
            run_id=new_run_id(),
        )
        run = self.store.create_run(new, EventDraft("run.created", f"run:{project}", self._actor))
        active = ActiveRun(self, run)
        self.active_runs.add(active)
        return active

    def record_finished(
        self,
        *,
        project: str,
        name: str,
        parent_id: RunId | None,
        params: Mapping[str, str],
        tags: Mapping[str, str],
    ) -> Run:
        """Record a run that is already over, in one write (a step served from the cache)."""
        new = NewRun(
            project=project,
            name=name,
            environment={},
            tags=dict(tags),
            parent_id=parent_id,
            params=dict(params),
            finished=True,
            run_id=new_run_id(),
        )
        return self.store.create_run(new, EventDraft("run.created", f"run:{project}", self._actor))

    def copy_inputs(self, source: RunId, target: RunId) -> None:
        """Record on run `target` the dataset versions run `source` used (a step served from
        `source`'s cache entry used them just as much)."""
        run = self.store.get_run(source)
        refs = [(run.project, *_name_and_version(ref)) for ref in run.inputs]
        if refs:
            self.store.add_inputs_and_artifacts(target, refs, [])

    def current_environment(self) -> dict[str, Any]:
        """Where code runs now (git commit, Python, ...), as a run would record it."""
        return self._environment.capture()[0]

    def attach(self, run_id: str) -> ActiveRun:
        """Log to a run started elsewhere (a pipeline step in a worker); it must be running."""
        run = self.store.get_run(RunId(run_id))
        if run.status is not RunStatus.RUNNING:
            raise InvalidInput(
                f"Run {run_id} is {run.status}; only a running run takes logs.", "Start a new run."
            )
        return ActiveRun(self, run)

    def end_run(
        self, run: ActiveRun, status: RunStatus, error: str | None, final: list[MetricPoint]
    ) -> None:
        entity = f"run:{run.project}/{run.id}"
        event = EventDraft(f"run.{status.value}", entity, self._actor)
        self.store.end_run(run.id, status, error, datetime.now(UTC), event, final_metrics=final)

    def log_artifact(self, run_id: RunId, local: Path, artifact_path: str | None) -> list[str]:
        if not local.exists():
            raise InvalidInput(
                f"No file or folder at {str(local)!r} to log as an artifact.", "Check the path."
            )
        base = safe_relative_path(artifact_path or local.name)
        files = (
            [(base, local)]
            if local.is_file()
            else [
                (f"{base}/{p.relative_to(local).as_posix()}", p)
                for p in sorted(local.rglob("*"))
                if p.is_file()
            ]
        )
        stored = []
        for rel, path in files:
            ref = self.blobs.put_file(path)
            stored.append(RunArtifact(safe_relative_path(rel), ref.digest, ref.size))
        self.store.add_inputs_and_artifacts(run_id, [], stored)
        return [a.path for a in stored]

    def get(self, run_id: str) -> Run:
        return self.store.get_run(RunId(run_id))

    def search(
        self,
        *,
        project: str,
        filter: str | None = None,
        order_by: str | None = None,
        limit: int = 100,
        offset: int = 0,
        parent_id: str | None = None,
        top_level_only: bool = False,
    ) -> RunPage:
        query = RunQuery(
            project,
            parse_filter(filter),
            parse_order_by(order_by),
            parent_id=parent_id,
            top_level_only=top_level_only,
        )
        return self.store.search(query, limit, offset)

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        return self.store.metric_history(RunId(run_id), key)

    def artifacts(self, run_id: str) -> list[RunArtifact]:
        return self.store.list_artifacts(RunId(run_id))

    def fetch_artifact(self, run_id: str, path: str, dest: Path) -> Path:
        for artifact in self.artifacts(run_id):
            if artifact.path == path:
                self.blobs.get_file(artifact.digest, dest)
                return dest
        raise InvalidInput(
            f"Run {run_id} has no artifact {path!r}.",
            f"List them with `loopml runs show {run_id}`.",
        )

    def compare(self, run_a: str, run_b: str) -> RunComparison:
        a, b = self.get(run_a), self.get(run_b)
        params = {k: (a.params.get(k), b.params.get(k)) for k in sorted({*a.params, *b.params})}
        metrics = {
            k: (a.metrics.get(k), b.metrics.get(k)) for k in sorted({*a.metrics, *b.metrics})
        }
        return RunComparison((a, b), params, metrics, (a.inputs, b.inputs))

    def close_all(self) -> None:
        """Flush and finish runs left open, then stop beating: a beat in flight lands first,
        and once this returns the background thread writes nothing more through this service
        (the workspace then releases its stores; a scratch workspace's folder is deleted)."""
        try:
            for active in list(self.active_runs):
                active.end()
        finally:
            with self._beating:
                self._closed = True
