"""The scratch workspace's side of a backtest: the pipeline run on a training table, the model
version it registered (loaded once), and the gate that scores a challenger against the
champion on a holdout."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from loopml.bootstrap import Workspace
from loopml.domain.loops import LoopSpec


@dataclass
class TrainedModel:
    """A model version the pipeline registered in the scratch workspace, loaded."""

    version: int
    loaded: Any
    inputs: list[str]
    metrics: dict[str, float]

    def predict(self, frame: Any) -> np.ndarray:
        features = frame[self.inputs] if self.inputs else frame
        return np.asarray(self.loaded.predict(features))


class TrainingFailed(Exception):
    """The pipeline failed, or registered no model."""


class Trainer:
    """Runs the pipeline in the scratch workspace on a training table: the model it registered."""

    def __init__(self, ws: Workspace, pipeline: Any, spec: LoopSpec, folder: Path, name: str):
        self.ws, self.pipeline, self.spec, self.folder = ws, pipeline, spec, folder
        self.name = name
        self.model_name: str | None = None
        self._models: dict[int, TrainedModel] = {}
        self._trained: dict[int, int] = {}
        """Model version by training dataset version: the same rows train the same model."""
        self.runs = 0

    def train(self, frame: Any) -> TrainedModel:
        from loopml.pipelines import run_pipeline

        path = self.folder / "train.parquet"
        frame.to_parquet(path, index=False)
        version = self.ws.data.add(path, name=self.name, project=self.spec.project).version
        if version.version in self._trained:
            return self.model(self._trained[version.version])
        params = {**self.spec.params, self.spec.data_param: f"{self.name}@{version.version}"}
        result = run_pipeline(self.pipeline, params, workspace=self.ws, project=self.spec.project)
        self.runs += 1
        if not result.ok:
            failed = [f"{s.name}: {s.error}" for s in result.steps.values() if s.error]
            raise TrainingFailed("; ".join(failed) or str(result.run.status))
        step_runs = {s.run_id for s in result.steps.values() if s.run_id}
        made = [
            v
            for m in self.ws.registry.models(self.spec.project)
            for v in self.ws.registry.versions(m.name, self.spec.project)
            if v.run_id in step_runs
        ]
        if not made:
            raise TrainingFailed(f"pipeline run {result.run.id} registered no model")
        newest = max(made, key=lambda v: v.version)
        self.model_name = newest.name
        self._trained[version.version] = newest.version
        return self.model(newest.version)

    def model(self, version: int) -> TrainedModel:
        if version not in self._models:
            assert self.model_name is not None
            found = self.ws.registry.resolve(f"{self.model_name}/{version}", self.spec.project)
            loaded = self.ws.registry.load(found.ref, project=self.spec.project)
            inputs = [c["name"] for c in found.signature.get("inputs", [])]
            self._models[version] = TrainedModel(version, loaded, inputs, dict(found.metrics))
        return self._models[version]

    def gate(self, candidate: int, champion: int, holdout: Any) -> Any:
        from loopml.domain.data_checks import parse_checks
        from loopml.monitoring.gate import gate

        path = self.folder / "holdout.parquet"
        holdout.to_parquet(path, index=False)
        held = self.ws.data.add(path, name=f"{self.name}-holdout", project=self.spec.project)
        assert self.model_name is not None
        return gate(
            self.ws,
            model=self.model_name,
            candidate=str(candidate),
            against=str(champion),
            data=f"{held.version.name}@{held.version.version}",
            rules=[*self.spec.promote_if, *self.spec.guards],
            label=self.spec.label,
            project=self.spec.project,
            confidence=self.spec.confidence,
            checks=parse_checks(self.spec.checks),
            horizon=self.spec.horizon,
            load=lambda ref: self.model(int(ref.rsplit("/", 1)[1])).loaded,
        )
