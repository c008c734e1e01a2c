"""Lineage: what a run or model version came from, and what a dataset version went into.

The graph is read from what the other services record: run inputs (dataset versions), step
inputs and outputs (artifacts), parent/child runs, and the run behind each model version.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loopml.domain.filters import RunQuery
from loopml.domain.records import PRODUCES_TAG, Run, RunId
from loopml.ports import LineageStore, ModelStore, PipelineStore, RunStore
from loopml.services.pipelines import KIND_TAG

MAX_DEPTH = 6
MAX_FAMILY = 1000
"""The most runs of one family (a pipeline's steps) read for its training data."""


def source_run(run: Run) -> RunId:
    """The run a model made in `run` comes from as a whole: a pipeline run itself, the pipeline
    (or other parent) of a step, or the run alone."""
    if run.parent_id is None or run.tags.get(KIND_TAG) == "pipeline":
        return run.id
    return run.parent_id


def training_datasets(runs: RunStore, run_id: RunId) -> tuple[str, ...]:
    """The dataset versions (`name@N`) a model made in run `run_id` was trained on: the run's
    own inputs, else those of its family (a pipeline run's steps, or a step's siblings)."""
    run = runs.get_run(run_id)
    if run.inputs:
        return tuple(sorted(set(run.inputs)))
    family = source_run(run)
    if family == run.id and run.tags.get(KIND_TAG) != "pipeline":
        return ()
    members = runs.search(RunQuery(run.project, parent_id=family), MAX_FAMILY, 0).runs
    return tuple(sorted({ref for member in members for ref in member.inputs}))


def model_lineage(runs: RunStore, run_id: RunId) -> tuple[str, ...]:
    """What a model registered from run `run_id` is made of, for telling two registrations
    apart: its training dataset versions, or (when it read none) its source run."""
    datasets = training_datasets(runs, run_id)
    return datasets or (f"run:{source_run(runs.get_run(run_id))}",)


@dataclass
class LineageNode:
    kind: str
    """`run`, `step`, `pipeline`, `dataset`, `model`, `artifact`."""
    ref: str
    label: str
    children: list[LineageNode] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "ref": self.ref,
            "label": self.label,
            "children": [c.to_dict() for c in self.children],
        }


class LineageService:
    def __init__(
        self, runs: RunStore, pipelines: PipelineStore, links: LineageStore, models: ModelStore
    ) -> None:
        self._runs = runs
        self._pipelines = pipelines
        self._links = links
        self._models = models

    def _run_node(self, run_id: RunId) -> LineageNode:
        run = self._runs.get_run(run_id)
        kind = run.tags.get("loopml.kind", "run")
        cached = run.tags.get("loopml.cached_from")
        note = f", cached from {cached[:8]}" if cached else ""
        return LineageNode(
            "step" if kind == "step" else ("pipeline" if kind == "pipeline" else "run"),
            run.id,
            f"{run.name} ({run.status.value}{note})",
        )

    def upstream_of_run(self, run_id: RunId, depth: int = 0) -> LineageNode:
        """A run with what it read: dataset versions, and the steps that made its inputs."""
        node = self._run_node(run_id)
        run = self._runs.get_run(run_id)
        node.children += [self._dataset_upstream(run.project, ref, depth) for ref in run.inputs]
        if depth >= MAX_DEPTH:
            return node
        inputs, _ = self._pipelines.io_of(run_id)
        for arg, artifact in inputs.items():
            made, _ = self._pipelines.artifact_runs(artifact.digest)
            child = LineageNode(
                "artifact", artifact.digest, f"{arg} = {artifact.type_name} {artifact.digest[:19]}"
            )
            child.children += [self.upstream_of_run(m, depth + 1) for m in made[:1]]
            node.children.append(child)
        if node.kind == "pipeline":
            node.children += [
                self.upstream_of_run(c, depth + 1) for c in self._links.children_of(run_id)
            ]
        return node

    def _dataset_upstream(self, project: str, ref: str, depth: int) -> LineageNode:
        """A dataset version with the runs that made it (a loop's training data), if any."""
        node = LineageNode("dataset", ref, ref)
        if depth < MAX_DEPTH:
            node.children += [
                self.upstream_of_run(maker, depth + 1)
                for maker in self._links.runs_producing_dataset(project, ref)
            ]
        return node

    def upstream_of_model(self, project: str, name: str, version: int) -> LineageNode:
        mv = self._models.get_version(project, name, version)
        node = LineageNode(
            "model",
            mv.ref,
            f"model {mv.ref} ({mv.flavor})" + (f" [{', '.join(mv.aliases)}]" if mv.aliases else ""),
        )
        if mv.run_id is not None:
            node.children.append(self.upstream_of_run(source_run(self._runs.get_run(mv.run_id))))
        return node

    def training_datasets(self, run_id: RunId) -> tuple[str, ...]:
        """The dataset versions a model made in `run_id` was trained on (see the function)."""
        return training_datasets(self._runs, run_id)

    def downstream_of_dataset(self, project: str, name: str, version: int) -> LineageNode:
        """A dataset version with the runs that read it, their pipelines and their models."""
        ref = f"{name}@{version}"
        node = LineageNode("dataset", ref, f"dataset {ref}")
        seen: set[str] = set()
        for run_id in self._links.runs_using_dataset(project, name, version):
            run = self._runs.get_run(run_id)
            top = RunId(run.parent_id) if run.parent_id else run.id
            if top in seen:
                continue
            seen.add(top)
            child = self._run_node(top)
            made = self._runs.get_run(top).tags
            child.children += [
                LineageNode("dataset", value, f"dataset {value}")
                for key, value in sorted(made.items())
                if key.startswith(PRODUCES_TAG)
            ]
            family = [top, *self._links.children_of(top)]
            child.children += [
                LineageNode("model", f"{m}/{v}", f"model {m}/{v}")
                for _, m, v, _ in self._links.model_versions_of(family)
            ]
            node.children.append(child)
        return node
