"""Pipelines from Python and the CLI: run, resume, reproduce and sweep.

from loopml import pipeline, step
result = run_pipeline(churn, {"lr": 0.05}, executor="processes")
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopml.bootstrap import Workspace, default_workspace, make_executor
from loopml.domain.records import Run, RunId, RunStatus
from loopml.errors import Conflict, InvalidInput
from loopml.ports import Executor
from loopml.services.pipelines import (
    CACHED_FROM_TAG,
    KIND_TAG,
    PARAMS_TAG,
    PIPELINE_TAG,
    SOURCE_TAG,
    PipelineRunResult,
)
from loopml.services.registry import CANDIDATE_TAG, EXISTING_TAG, Outcome, Registration
from loopml.steps import Pipeline, load_pipeline

if TYPE_CHECKING:
    from loopml.domain.records import ModelVersion


def _ref_of(pipeline: Pipeline) -> str:
    return pipeline.source_ref or f"{pipeline.fn.__module__}:{pipeline.name}"


def run_pipeline(
    pipeline: Pipeline,
    params: Mapping[str, Any] | None = None,
    *,
    executor: str | Executor = "local",
    ray_address: str | None = None,
    use_cache: bool = True,
    project: str | None = None,
    workspace: Workspace | None = None,
    parent_id: str | None = None,
    dataset_pins: Mapping[str, int] | None = None,
    tags: Mapping[str, str] | None = None,
    hold_registrations: bool = False,
) -> PipelineRunResult:
    """Run `pipeline` with `params` on an executor (`local`, `processes` or `ray`); with
    `hold_registrations`, the models its steps register create no version."""
    ws = workspace or default_workspace()
    graph, steps = pipeline.trace(dict(params or {}))
    specs = {name: step.spec() for name, step in steps.items()}
    runner = _executor(ws, executor, ray_address)
    try:
        return ws.pipelines.run(
            graph,
            specs,
            project=project or ws.project,
            executor=runner,
            use_cache=use_cache,
            pipeline_ref=_ref_of(pipeline),
            parent_id=parent_id,
            dataset_pins=dataset_pins,
            tags=tags,
            hold_registrations=hold_registrations,
        )
    finally:
        if isinstance(executor, str):
            runner.close()


def _pipeline_run(ws: Workspace, run_id: str) -> tuple[Run, Pipeline, dict[str, Any]]:
    run = ws.tracking.get(run_id)
    if run.tags.get(KIND_TAG) != "pipeline":
        raise InvalidInput(
            f"Run {run_id} is not a pipeline run.",
            "Give the id of a run made by `loopml pipeline run`.",
        )
    pipeline = load_pipeline(run.tags[PIPELINE_TAG])
    return run, pipeline, json.loads(run.tags.get(PARAMS_TAG, "{}"))


def resume_pipeline(
    run_id: str,
    *,
    executor: str = "local",
    ray_address: str | None = None,
    workspace: Workspace | None = None,
) -> PipelineRunResult:
    """Run a failed pipeline run again: finished steps are reused, the rest run."""
    ws = workspace or default_workspace()
    run, pipeline, params = _pipeline_run(ws, run_id)
    if run.status not in (RunStatus.FAILED, RunStatus.KILLED):
        raise Conflict(
            f"Pipeline run {run_id} is {run.status}; only a failed or killed run can be resumed.",
            "Use `loopml pipeline run` to run it again.",
        )
    return run_pipeline(
        pipeline,
        params,
        executor=executor,
        ray_address=ray_address,
        project=run.project,
        workspace=ws,
        tags={"loopml.resumed_from": run_id},
    )


@dataclass(frozen=True)
class ModelCheck:
    """A model the reproduced run registered (or would have), against the original run's."""

    name: str
    digest: str
    """The digest of the reproduced model's files."""
    outcome: Outcome
    version: int
    """The version holding the reproduced model; 0 when its registration was held."""
    original: ModelVersion | None
    """The original run's version of the model, if it made one."""

    @property
    def identical(self) -> bool:
        return self.original is not None and self.original.artifact_digest == self.digest


@dataclass
class Reproduction:
    original: Run
    result: PipelineRunResult
    warnings: list[str] = field(default_factory=list)
    metric_changes: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    output_changes: list[str] = field(default_factory=list)
    """The steps whose outputs differ from the original run's."""
    steps_compared: int = 0
    models: list[ModelCheck] = field(default_factory=list)

    @property
    def identical_metrics(self) -> bool:
        return not self.metric_changes


def _children(ws: Workspace, run: Run) -> list[Run]:
    return ws.tracking.search(project=run.project, parent_id=run.id, limit=10_000).runs


def _pins_and_sources(ws: Workspace, children: list[Run]) -> tuple[dict[str, int], dict[str, str]]:
    """The dataset versions the steps read (a step served from the cache: those of the run it
    was served from), and each step's source digest."""
    pins: dict[str, int] = {}
    sources: dict[str, str] = {}
    for child in children:
        sources[child.name] = child.tags.get(SOURCE_TAG, "")
        inputs = child.inputs
        if not inputs and CACHED_FROM_TAG in child.tags:
            inputs = ws.tracking.get(child.tags[CACHED_FROM_TAG]).inputs
        for ref in inputs:
            name, _, version = ref.rpartition("@")
            pins[name] = int(version)
    return pins, sources


def reproduce_run(
    run_id: str,
    *,
    executor: str = "local",
    ray_address: str | None = None,
    workspace: Workspace | None = None,
    register: bool = False,
) -> Reproduction:
    """Rerun a pipeline run on the same dataset versions and parameters, without the cache,
    warning where the code differs, and compare the metrics, the steps' outputs and the model
    files. The models its steps register create no version unless `register` (and then none
    where a version holds the same files from the same data)."""
    ws = workspace or default_workspace()
    run, pipeline, params = _pipeline_run(ws, run_id)
    before_children = _children(ws, run)
    pins, sources = _pins_and_sources(ws, before_children)
    warnings = []
    _, steps = pipeline.trace(params)
    for name, step in steps.items():
        if name in sources and sources[name] != step.source_digest():
            warnings.append(f"step {name!r}: its source code differs from the original run's")
    env = ws.tracking.current_environment()
    for key in ("git_commit", "git_dirty"):
        if run.environment.get(key) != env.get(key):
            warnings.append(f"{key}: {run.environment.get(key)} then, {env.get(key)} now")
    result = run_pipeline(
        pipeline,
        params,
        executor=executor,
        ray_address=ray_address,
        use_cache=False,
        project=run.project,
        workspace=ws,
        dataset_pins=pins,
        tags={"loopml.reproduces": run_id},
        hold_registrations=not register,
    )
    before, after = run.metrics, result.run.metrics
    changes = {
        k: (before.get(k), after.get(k))
        for k in sorted({*before, *after})
        if before.get(k) != after.get(k)
    }
    after_children = _children(ws, result.run)
    outputs_before = _step_outputs(ws, before_children)
    outputs_after = _step_outputs(ws, after_children)
    return Reproduction(
        run,
        result,
        warnings,
        changes,
        [name for name in outputs_after if outputs_after[name] != outputs_before.get(name)],
        len(outputs_after),
        _model_checks(ws, (run, before_children), (result.run, after_children)),
    )


def _step_outputs(ws: Workspace, children: list[Run]) -> dict[str, tuple[str, ...]]:
    """The digests of each step's outputs, by step name."""
    return {
        child.name: tuple(ref.digest for ref in ws.pipeline_records.io_of(child.id)[1])
        for child in sorted(children, key=lambda c: c.start_time)
    }


def _models_of(ws: Workspace, family: tuple[Run, list[Run]]) -> dict[str, tuple[Outcome, str]]:
    """Per model name, how a pipeline run's registration went and the version (or, held, the
    digest of the files) it came to: versions its runs made, and the tags of those that made
    none. Steps served from the cache count with the runs they were served from."""
    run, children = family
    ids = [run.id, *(c.id for c in children)]
    ids += [RunId(c.tags[CACHED_FROM_TAG]) for c in children if CACHED_FROM_TAG in c.tags]
    found: dict[str, tuple[Outcome, str]] = {}
    for _, name, version, _ in sorted(
        ws.pipeline_records.model_versions_of(ids), key=lambda r: r[2]
    ):
        found[name] = (Outcome.CREATED, str(version))
    for member in [run, *children]:
        for key, value in member.tags.items():
            if key.startswith(EXISTING_TAG):
                found.setdefault(key.removeprefix(EXISTING_TAG), (Outcome.EXISTING, value))
            elif key.startswith(CANDIDATE_TAG):
                found.setdefault(key.removeprefix(CANDIDATE_TAG), (Outcome.HELD, value))
    return found


def _model_checks(
    ws: Workspace, before: tuple[Run, list[Run]], after: tuple[Run, list[Run]]
) -> list[ModelCheck]:
    project = before[0].project
    originals = {
        name: ws.registry.resolve(f"{name}/{number}", project)
        for name, (outcome, number) in _models_of(ws, before).items()
        if outcome is not Outcome.HELD
    }
    checks = []
    for name, (outcome, value) in sorted(_models_of(ws, after).items()):
        if outcome is Outcome.HELD:
            digest, version = value, 0
        else:
            held = ws.registry.resolve(f"{name}/{value}", project)
            digest, version = held.artifact_digest, held.version
        checks.append(ModelCheck(name, digest, outcome, version, originals.get(name)))
    return checks


@dataclass
class SweepResult:
    run: Run
    trials: list[PipelineRunResult]
    best: PipelineRunResult | None
    metric: str
    model_version: ModelVersion | None = None
    registration: Registration | None = None
    """How registering the best trial's model went (a version of the trial's own, or new)."""


def expand_grid(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    keys = list(grid)
    return [
        dict(zip(keys, values, strict=True))
        for values in itertools.product(*(grid[k] for k in keys))
    ]


def sample_random(
    space: Mapping[str, Sequence[Any]], trials: int, seed: int
) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [{k: rng.choice(list(v)) for k, v in space.items()} for _ in range(trials)]


def sweep_pipeline(
    pipeline: Pipeline,
    trials: list[dict[str, Any]],
    *,
    metric: str = "metrics.f1",
    maximize: bool = True,
    executor: str | Executor = "local",
    ray_address: str | None = None,
    register: str | None = None,
    workspace: Workspace | None = None,
    base_params: Mapping[str, Any] | None = None,
    project: str | None = None,
) -> SweepResult:
    """Run one pipeline run per parameter set under a sweep run, concurrently on the executor,
    and report (optionally register) the best by `metric`."""
    if not metric.startswith("metrics."):
        raise InvalidInput(
            f"--best {metric!r} does not name a metric.", "Write metrics.NAME, e.g. metrics.f1."
        )
    key = metric.removeprefix("metrics.")
    ws = workspace or default_workspace()
    for params in trials:
        pipeline.trace({**(base_params or {}), **params})  # every trial's params are valid
    runner = _executor(ws, executor, ray_address)
    project = project or ws.project
    parent = ws.tracking.start_run(
        project=project,
        name=f"sweep-{pipeline.name}",
        tags={KIND_TAG: "sweep", PIPELINE_TAG: _ref_of(pipeline)},
    )
    try:
        with ThreadPoolExecutor(max_workers=max(1, runner.parallelism)) as pool:
            futures = [
                pool.submit(
                    run_pipeline,
                    pipeline,
                    {**(base_params or {}), **p},
                    executor=runner,
                    workspace=ws,
                    parent_id=parent.id,
                    project=project,
                )
                for p in trials
            ]
            results = [f.result() for f in futures]
        scored = [r for r in results if r.ok and key in r.run.metrics]
        best = (max if maximize else min)(scored, key=lambda r: r.run.metrics[key], default=None)
        if best is not None:
            parent.set_tags({"loopml.best_run": best.run.id})
            parent.log_metric(key, best.run.metrics[key])
        registration = _register_best(ws, best, register) if register and best else None
        parent.end()
    except BaseException as exc:
        parent.end(RunStatus.FAILED, f"{type(exc).__name__}: {exc}")
        raise
    finally:
        if isinstance(executor, str):
            runner.close()
    return SweepResult(
        ws.tracking.get(parent.id),
        results,
        best,
        metric,
        registration.version if registration else None,
        registration,
    )


def _register_best(ws: Workspace, best: PipelineRunResult, name: str) -> Registration:
    """The best trial's model as a version of `name`, its source the trial's run (so its
    lineage reaches the trial's data): the version the trial registered itself, if it did."""
    for step_run_id in ws.pipeline_records.children_of(best.run.id):
        _, outputs = ws.pipeline_records.io_of(RunId(step_run_id))
        for ref in outputs:
            if not ws.pipelines.values.may_hold_model(ref):
                continue
            model = ws.pipelines.values.load(ref)
            if callable(getattr(model, "predict", None)):
                return ws.registry.register_once(
                    model, name, project=best.run.project, run_id=best.run.id
                )
    raise InvalidInput(
        "The best trial produced no model to register.",
        "Have a step return a scikit-learn model or an object with predict.",
    )


def _executor(ws: Workspace, executor: str | Executor, ray_address: str | None) -> Executor:
    """The executor named (or given); steps in other processes need a workspace they can open."""
    if not isinstance(executor, str):
        return executor
    if executor != "local" and ws.stores.in_process:
        raise InvalidInput(
            f"The {executor} executor runs steps in other processes, which cannot see a memory "
            "workspace (LOOPML_DB_URL=memory://): its records live in this process only.",
            "Use --executor local, or a SQLite or PostgreSQL workspace.",
        )
    return make_executor(executor, ray_address=ray_address)
