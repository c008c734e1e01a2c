"""`loopml pipeline ...` and `loopml lineage`: run, resume and sweep pipelines; trace lineage."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import typer

from loopml.cli.context import JSON_OPTION, PROJECT_OPTION, print_json, print_table

if TYPE_CHECKING:
    from loopml.services.pipelines import PipelineRunResult

app = typer.Typer(
    help="Pipelines: versioned, cached steps run locally, on processes or on Ray.",
    no_args_is_help=True,
)

EXECUTOR_OPTION = typer.Option(
    "local", "--executor", "-e", help="local (in process), processes (a pool) or ray."
)
RAY_OPTION = typer.Option(
    None, "--ray-address", help="HOST:PORT of a Ray cluster to join (default: start a local Ray)."
)


def _pairs(values: list[str], option: str) -> dict[str, str]:
    from loopml.errors import InvalidInput

    pairs: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInput(
                f"{option} {item!r} is not NAME=VALUE.", f"Write e.g. {option} lr=0.05."
            )
        pairs[key.strip()] = value.strip()
    return pairs


def report(result: PipelineRunResult, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "run_id": result.run.id,
                "status": result.run.status.value,
                "error": result.run.error,
                "metrics": result.metrics,
                "steps": list(result.steps.values()),
            }
        )
    else:
        print_table(
            None,
            ["step", "status", "run", "attempts", "error"],
            [
                (s.name, s.status, (s.run_id or "")[:12], s.attempts or "", s.error or "")
                for s in result.steps.values()
            ],
        )
        metrics = "  ".join(f"{k}={v:.4g}" for k, v in result.metrics.items())
        sys.stdout.write(
            f"pipeline run {result.run.id} {result.run.status.value}"
            f"{'  ' + metrics if metrics else ''}\n"
        )
        if result.run.error:
            sys.stderr.write(f"error: {result.run.error}\n")
    if not result.ok:
        raise typer.Exit(1)


@app.command("run")
def run(
    ref: str = typer.Argument(..., help="FILE.py:NAME of a @pipeline function."),
    param: list[str] = typer.Option([], "--param", help="NAME=VALUE, repeatable."),
    executor: str = EXECUTOR_OPTION,
    ray_address: str = RAY_OPTION,
    no_cache: bool = typer.Option(False, "--no-cache", help="Run every step, even unchanged."),
    project: str = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Run a pipeline: unchanged steps are served from the cache; exit 1 if a step fails."""
    from loopml.pipelines import run_pipeline
    from loopml.steps import load_pipeline

    pipeline = load_pipeline(ref)
    params = pipeline.coerce(_pairs(param, "--param"))
    report(
        run_pipeline(
            pipeline,
            params,
            executor=executor,
            ray_address=ray_address,
            use_cache=not no_cache,
            project=project,
        ),
        as_json,
    )


@app.command("resume")
def resume(
    run_id: str = typer.Argument(..., help="A failed pipeline run."),
    executor: str = EXECUTOR_OPTION,
    ray_address: str = RAY_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Continue a failed pipeline run from the step that failed, reusing finished steps."""
    from loopml.pipelines import resume_pipeline

    report(resume_pipeline(run_id, executor=executor, ray_address=ray_address), as_json)


def _grid_values(pipeline: Any, grid: list[str]) -> dict[str, list[Any]]:
    space: dict[str, list[Any]] = {}
    for name, text in _pairs(grid, "--grid").items():
        space[name] = [pipeline.coerce({name: v})[name] for v in text.split(",")]
    return space


@app.command("sweep")
def sweep(
    ref: str = typer.Argument(..., help="FILE.py:NAME of a @pipeline function."),
    grid: list[str] = typer.Option([], "--grid", help="NAME=V1,V2,... repeatable: every combo."),
    random_trials: int = typer.Option(
        0, "--random", min=0, help="Sample this many combos instead of all of them."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed for --random."),
    param: list[str] = typer.Option([], "--param", help="NAME=VALUE fixed for every trial."),
    best: str = typer.Option("metrics.f1", "--best", help="Metric that picks the best trial."),
    minimize: bool = typer.Option(False, "--minimize", help="Lower is better for --best."),
    register: str = typer.Option(None, "--register", help="Register the best model as NAME."),
    executor: str = EXECUTOR_OPTION,
    ray_address: str = RAY_OPTION,
    project: str = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Run a pipeline over a grid (or a random sample) of parameters, trials concurrently."""
    from loopml.errors import InvalidInput
    from loopml.pipelines import expand_grid, sample_random, sweep_pipeline
    from loopml.steps import load_pipeline

    pipeline = load_pipeline(ref)
    space = _grid_values(pipeline, grid)
    if not space:
        raise InvalidInput("A sweep needs at least one --grid.", "Write e.g. --grid lr=0.01,0.1.")
    trials = sample_random(space, random_trials, seed) if random_trials else expand_grid(space)
    result = sweep_pipeline(
        pipeline,
        trials,
        metric=best,
        maximize=not minimize,
        executor=executor,
        ray_address=ray_address,
        register=register,
        base_params=pipeline.coerce(_pairs(param, "--param")),
        project=project,
    )
    key = best.removeprefix("metrics.")
    rows = [
        (
            t.run.id[:12],
            t.run.status.value,
            "  ".join(f"{name}={t.run.params.get(name)}" for name in space),
            "-" if t.run.metrics.get(key) is None else f"{t.run.metrics[key]:.4f}",
        )
        for t in result.trials
    ]
    if as_json:
        print_json(
            {
                "sweep_run_id": result.run.id,
                "best_run_id": result.best and result.best.run.id,
                "metric": best,
                "trials": [
                    {
                        "run_id": t.run.id,
                        "status": t.run.status.value,
                        "params": t.run.params,
                        "metrics": t.run.metrics,
                    }
                    for t in result.trials
                ],
                "model_version": result.model_version and result.model_version.ref,
                "model_outcome": result.registration and result.registration.outcome.value,
            }
        )
        return
    print_table(f"sweep {result.run.id}", ["trial run", "status", "swept params", key], rows)
    if result.best is not None:
        sys.stdout.write(f"best: {result.best.run.id} {key}={result.best.run.metrics[key]:.4g}\n")
    if result.registration is not None:
        sys.stdout.write(f"{result.registration.describe()}\n")


def lineage(
    ref: str = typer.Argument(
        ..., help="A run id, a model (churn/3, churn@champion) or a dataset version (churn@2)."
    ),
    project: str = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Where a run or model came from (backwards), or where a dataset version went (forwards)."""
    from loopml.cli.context import open_workspace, project_of
    from loopml.domain.records import RunId

    ws = open_workspace()
    proj = project_of(ws, project)
    if "/" in ref or "@" in ref:
        node = _lineage_of_ref(ws, ref, proj)
    else:
        node = ws.lineage.upstream_of_run(RunId(ref))
    if as_json:
        print_json(node.to_dict())
        return
    from rich.console import Console
    from rich.text import Text
    from rich.tree import Tree

    def grow(tree: Tree, item: Any) -> None:
        for child in item.children:
            grow(tree.add(Text(f"{child.kind}: {child.label}  {child.ref[:19]}")), child)

    root = Tree(Text(f"{node.kind}: {node.label}  {node.ref}"))
    grow(root, node)
    Console(soft_wrap=True, width=None if sys.stdout.isatty() else 1000).print(root)


def _lineage_of_ref(ws: Any, ref: str, project: str) -> Any:
    from loopml.errors import InvalidInput, NotFound

    name, _, version = ref.partition("@")
    if "/" in ref or not (version.isdigit() or version == "latest"):
        mv = ws.registry.resolve(ref, project)  # churn/3, churn@champion: a model
        return ws.lineage.upstream_of_model(project, mv.name, mv.version)
    try:  # churn@2: a dataset version; churn@latest: a dataset if there is one, else a model
        version_found = ws.data.resolve(ref, project, record=False)
    except (NotFound, InvalidInput):  # churn@3 with no such dataset version: model churn/3
        mv = ws.registry.resolve(
            f"{name}/{version}" if version.isdigit() else f"{name}@latest", project
        )
        return ws.lineage.upstream_of_model(project, mv.name, mv.version)
    return ws.lineage.downstream_of_dataset(project, version_found.name, version_found.version)
