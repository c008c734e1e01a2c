"""Running pipelines: steps in dependency order on an executor, outputs versioned, cached by
content, every step a child run of the pipeline run, failures retried and then recorded.

The coordinator (this module) decides and records; a worker (`bootstrap.run_step_task`, possibly
in another process or on another machine) loads the inputs from the artifact store, calls the
step and stores its outputs there. Steps never hand values to each other through memory.

A step's cache key is its source digest, its parameters and its inputs' digests, where a moving
dataset reference among the parameters (`churn@latest`, `churn`) stands for the version it names
when the step starts: new data is a cache miss.
"""

from __future__ import annotations

import json
import math
import time
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from typing import Any

from loopml.domain.dag import OutputRef, PipelineGraph, StepSpec, cache_key, check_graph
from loopml.domain.records import Run, RunId, RunStatus
from loopml.domain.refs import DatasetRef, parse_dataset_ref
from loopml.errors import InvalidInput, NotFound
from loopml.ports import ArtifactRef, Executor, PipelineStore
from loopml.services.tracking import ActiveRun, TrackingService
from loopml.services.value_store import ValueStore

KIND_TAG = "loopml.kind"
PIPELINE_TAG = "loopml.pipeline"
PARAMS_TAG = "loopml.pipeline.params"
SOURCE_TAG = "loopml.source_digest"
CACHED_FROM_TAG = "loopml.cached_from"


@dataclass(frozen=True)
class StepTask:
    """Everything a worker needs to run one step; plain data, picklable."""

    workspace: dict[str, Any]
    project: str
    run_id: str
    step: str
    function: bytes
    params: dict[str, Any]
    inputs: dict[str, ArtifactRef]
    n_outputs: int
    dataset_pins: dict[str, int]
    hold_registrations: bool = False
    """Registrations the step makes create no version (see `registry.registrations_held`)."""


@dataclass(frozen=True)
class StepOutcome:
    outputs: tuple[ArtifactRef, ...]


@dataclass(frozen=True)
class StepReport:
    name: str
    status: str
    """`ran`, `cached`, `failed` or `not run`."""
    run_id: str | None
    attempts: int = 0
    error: str | None = None


@dataclass
class PipelineRunResult:
    run: Run
    steps: dict[str, StepReport]
    result: Any = None
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.run.status is RunStatus.FINISHED


class StepFailed(Exception):
    def __init__(self, step: str, error: str) -> None:
        super().__init__(f"step {step!r} failed: {error}")
        self.step = step
        self.error = error


def _error_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(exc)).strip()


def numbers_of(value: Any) -> dict[str, float]:
    if (
        isinstance(value, Mapping)
        and value
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value.values())
    ):
        return {str(k): float(v) for k, v in value.items() if math.isfinite(v)}
    return {}


def _moving_dataset_ref(value: Any) -> DatasetRef | None:
    """`value` as a dataset reference that names no fixed version (`churn@latest`, `churn`)."""
    if not isinstance(value, str):
        return None
    try:
        ref = parse_dataset_ref(value)
    except InvalidInput:
        return None
    return ref if ref.version is None else None


def _key_params(params: Mapping[str, Any], pins: Mapping[str, int]) -> dict[str, Any]:
    """`params` as the cache key sees them: a moving dataset reference is the version it
    names in this run (`churn@latest` -> `churn@3`), so that new data is a cache miss."""
    key_params = dict(params)
    for name, value in params.items():
        ref = _moving_dataset_ref(value)
        if ref is not None and ref.name in pins:
            key_params[name] = f"{ref.name}@{pins[ref.name]}"
    return key_params


@dataclass
class _Pending:
    name: str
    run: ActiveRun
    task: StepTask
    key: str
    attempt: int = 1


class PipelineService:
    def __init__(
        self,
        tracking: TrackingService,
        store: PipelineStore,
        values: ValueStore,
        worker: Callable[[StepTask], StepOutcome],
        workspace: dict[str, Any],
    ) -> None:
        self.tracking = tracking
        self.store = store
        self.values = values
        self._worker = worker
        self._workspace = workspace

    def run(
        self,
        graph: PipelineGraph,
        specs: Mapping[str, StepSpec],
        *,
        project: str,
        executor: Executor,
        use_cache: bool = True,
        pipeline_ref: str = "",
        parent_id: str | None = None,
        dataset_pins: Mapping[str, int] | None = None,
        tags: Mapping[str, str] | None = None,
        hold_registrations: bool = False,
    ) -> PipelineRunResult:
        """Run `graph`; the result says how each step went. Never leaves a run `running`.
        With `hold_registrations`, models the steps register are recorded as candidates on
        their runs and no version is created."""
        order = check_graph(graph)
        run = self.tracking.start_run(
            project=project,
            name=graph.name,
            parent_id=RunId(parent_id) if parent_id else None,
            tags={
                KIND_TAG: "pipeline",
                PIPELINE_TAG: pipeline_ref,
                PARAMS_TAG: json.dumps(dict(graph.params), sort_keys=True),
                **(tags or {}),
            },
        )
        execution = _Execution(
            self,
            graph,
            specs,
            run,
            executor,
            use_cache=use_cache,
            pins=dict(dataset_pins or {}),
            hold_registrations=hold_registrations,
        )
        try:
            run.log_params(
                {k: json.dumps(v) if not isinstance(v, str) else v for k, v in graph.params.items()}
            )
            execution.drive(order)
            result = execution.result()
        except StepFailed as failed:
            run.end(RunStatus.FAILED, str(failed))
            return PipelineRunResult(self.tracking.get(run.id), execution.reports)
        except BaseException as exc:
            execution.abandon()
            status = RunStatus.KILLED if isinstance(exc, KeyboardInterrupt) else RunStatus.FAILED
            run.end(status, _error_text(exc))
            raise
        metrics = numbers_of(result)
        if metrics:
            run.log_metrics(metrics)
        run.end()
        return PipelineRunResult(self.tracking.get(run.id), execution.reports, result, metrics)


class _Execution:
    """One pipeline run in progress: which steps are done, running, waiting to retry."""

    def __init__(
        self,
        service: PipelineService,
        graph: PipelineGraph,
        specs: Mapping[str, StepSpec],
        run: ActiveRun,
        executor: Executor,
        *,
        use_cache: bool,
        pins: dict[str, int],
        hold_registrations: bool = False,
    ) -> None:
        self.s = service
        self.graph = graph
        self.specs = specs
        self.run = run
        self.executor = executor
        self.use_cache = use_cache
        self.pins = pins
        self.hold_registrations = hold_registrations
        """Registrations are held: a step's outputs may hold a version that was never made, so
        none is entered in the cache."""
        self.outputs: dict[str, tuple[ArtifactRef, ...]] = {}
        self.running: dict[Future[Any], _Pending] = {}
        self.retry_at: list[tuple[float, _Pending]] = []
        self.reports: dict[str, StepReport] = {
            n.name: StepReport(n.name, "not run", None) for n in graph.steps
        }

    def drive(self, order: list[str]) -> None:
        waiting = list(order)
        while waiting or self.running or self.retry_at:
            for name in [n for n in waiting if self.graph.step(n).upstream <= set(self.outputs)]:
                waiting.remove(name)
                self.start(name)
            self.resubmit_due()
            if self.running:
                done, _ = wait(
                    list(self.running), timeout=self.next_retry_in(), return_when=FIRST_COMPLETED
                )
                for future in done:
                    self.finish(future)
            elif self.retry_at:
                time.sleep(self.next_retry_in() or 0)

    def next_retry_in(self) -> float | None:
        if not self.retry_at:
            return None
        return max(0.0, min(at for at, _ in self.retry_at) - time.monotonic())

    def inputs_of(self, name: str) -> dict[str, ArtifactRef]:
        node = self.graph.step(name)
        return {arg: self.outputs[ref.step][ref.index] for arg, ref in node.inputs.items()}

    def data_versions(self, params: Mapping[str, Any]) -> dict[str, int]:
        """The version each moving dataset reference among `params` names now, by dataset name
        (a text that names no dataset of the project names none; a pinned name keeps its pin).
        They go into the step's cache key and are its dataset pins, so the step reads the very
        versions its key names. Nothing is recorded as a run's input."""
        versions: dict[str, int] = {}
        for ref in filter(None, map(_moving_dataset_ref, params.values())):
            if ref.name in self.pins or ref.name in versions:
                continue
            try:
                found = self.s.tracking.resolve_dataset(ref.name, self.run.project)
            except NotFound:
                continue
            versions[ref.name] = found.version
        return versions

    def start(self, name: str) -> None:
        node, spec = self.graph.step(name), self.specs[name]
        inputs = self.inputs_of(name)
        pins = {**self.data_versions(node.params), **self.pins}
        key = cache_key(
            spec.source_digest,
            _key_params(node.params, pins),
            {a: r.digest for a, r in inputs.items()},
        )
        tags = {KIND_TAG: "step", SOURCE_TAG: spec.source_digest, "loopml.cache_key": key}
        hit = self.s.store.cached(self.run.project, key) if self.use_cache and spec.cache else None
        params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in node.params.items()}
        if hit is not None:
            done = self.s.tracking.record_finished(
                project=self.run.project,
                name=name,
                parent_id=self.run.id,
                params=params,
                tags={**tags, CACHED_FROM_TAG: hit.run_id},
            )
            self.s.tracking.copy_inputs(hit.run_id, done.id)  # as if it had run: its data
            self.s.store.record_io(
                done.id,
                inputs=inputs,
                outputs=hit.outputs,
                project=self.run.project,
                cache_key=None,
                step_name=name,
            )
            self.outputs[name] = hit.outputs
            self.reports[name] = StepReport(name, "cached", done.id)
            return
        child = self.s.tracking.start_run(
            project=self.run.project,
            name=name,
            tags=tags,
            parent_id=self.run.id,
            capture_environment=False,
            params=params,
        )
        task = StepTask(
            self.s._workspace,
            self.run.project,
            child.id,
            name,
            spec.function,
            dict(node.params),
            inputs,
            node.n_outputs,
            pins,
            self.hold_registrations,
        )
        self.submit(_Pending(name, child, task, key))

    def submit(self, pending: _Pending) -> None:
        self.running[self.executor.submit(self.s._worker, pending.task)] = pending

    def resubmit_due(self) -> None:
        now = time.monotonic()
        for entry in [e for e in self.retry_at if e[0] <= now]:
            self.retry_at.remove(entry)
            self.submit(entry[1])

    def finish(self, future: Future[Any]) -> None:
        pending = self.running.pop(future)
        name, spec = pending.name, self.specs[pending.name]
        try:
            outcome: StepOutcome = future.result()
        except Exception as exc:
            if pending.attempt <= spec.retries:
                delay = spec.backoff_s * 2 ** (pending.attempt - 1)
                pending.attempt += 1
                self.retry_at.append((time.monotonic() + delay, pending))
                return
            error = _error_text(exc)
            pending.run.end(RunStatus.FAILED, error)
            self.reports[name] = StepReport(name, "failed", pending.run.id, pending.attempt, error)
            self.abandon()
            raise StepFailed(name, error) from exc
        self.s.store.record_io(
            pending.run.id,
            inputs=pending.task.inputs,
            outputs=outcome.outputs,
            project=self.run.project,
            cache_key=pending.key if spec.cache and not self.hold_registrations else None,
            step_name=name,
        )
        pending.run.end()
        self.outputs[name] = outcome.outputs
        self.reports[name] = StepReport(name, "ran", pending.run.id, pending.attempt)

    def abandon(self) -> None:
        """Stop waiting: steps still running or waiting to retry are recorded as killed."""
        for future, pending in list(self.running.items()):
            future.cancel()
            self._kill(pending)
        for _, pending in self.retry_at:
            self._kill(pending)
        self.running.clear()
        self.retry_at.clear()

    def _kill(self, pending: _Pending) -> None:
        if not pending.run.ended:
            pending.run.end(RunStatus.KILLED, "the pipeline stopped before this step finished")

    def result(self) -> Any:
        return self._load(self.graph.result)

    def _load(self, value: Any) -> Any:
        if isinstance(value, OutputRef):
            return self.s.values.load(self.outputs[value.step][value.index])
        if isinstance(value, list):
            return [self._load(v) for v in value]
        if isinstance(value, dict):
            return {k: self._load(v) for k, v in value.items()}
        return value
