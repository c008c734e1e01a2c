"""The MLflow import's decisions, on an in-memory workspace and a source of records: where runs
go, parents before children, MLflow's states, the runs a store still calls running, one
project for every experiment, what a failing read leaves behind, and what a rerun does."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from loopml.bootstrap import Workspace
from loopml.domain.records import MetricPoint, RunId, RunStatus
from loopml.errors import InvalidInput, NotFound
from loopml.ports.mlflow_source import (
    SourceExperiment,
    SourceLoggedModel,
    SourceRun,
    SourceVersion,
)
from loopml.services.mlflow_import import IMPORTED_TAG, MlflowImport

PARENT, CHILD, LIVE = "a" * 32, "b" * 32, "c" * 32


class Source:
    """An MLflow store as records; `broken` names a run whose files cannot be read."""

    def __init__(self, broken: str | None = None) -> None:
        self.broken = broken
        self.reads = 0
        self.runs_of = {
            "1": [
                # the child first, as a store may list it: the import must put the parent first
                SourceRun(CHILD, "1", "child", "FAILED", 2_000, 3_000, {"C": "1"},
                          {"mlflow.parentRunId": PARENT}, ("loss",)),
                SourceRun(PARENT, "1", "parent", "FINISHED", 1_000, 5_000, {}, {"team": "a"}),
            ],
            "2": [SourceRun(LIVE, "2", "never ended", "RUNNING", 7_000, None)],
        }  # fmt: skip

    def experiments(self, names: Sequence[str]) -> list[SourceExperiment]:
        return [SourceExperiment("1", "Churn / 2024"), SourceExperiment("2", "Default")]

    def runs(self, experiment_id: str) -> list[SourceRun]:
        return self.runs_of[experiment_id]

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        self.reads += 1
        return [MetricPoint(key, 1.0 / (s + 1), s, 2_000 + s) for s in range(3)]

    def download_run_files(self, run_id: str, into: Path) -> None:
        if run_id == self.broken:
            raise InvalidInput(f"MLflow failed to give the artifacts of run {run_id}.", "")
        (into / "plots").mkdir(parents=True)
        (into / "plots" / f"{run_id[:4]}.csv").write_text(run_id)

    def logged_models(self, experiment_id: str) -> list[SourceLoggedModel]:
        return []

    def download_model_files(self, model_id: str, into: Path) -> None:
        raise AssertionError("no logged model here")

    def versions(self) -> list[SourceVersion]:
        return [SourceVersion("churn", 1, f"runs:/{CHILD}/nowhere", CHILD, None)]


def _importer(ws: Workspace, source: Source, **options: object) -> MlflowImport:
    return MlflowImport(source, ws.stores, ws.blobs, actor="importer",
                        **options)  # type: ignore[arg-type]  # fmt: skip


def test_runs_keep_their_ids_times_states_parents_and_files(ws: Workspace) -> None:
    report = _importer(ws, Source()).run()
    assert report.projects == {"Churn / 2024": "Churn-2024", "Default": "default"}
    assert (report.runs, report.metric_points, report.artifacts) == (3, 3, 3)
    runs = ws.stores.runs
    child, parent, live = (runs.get_run(RunId(r)) for r in (CHILD, PARENT, LIVE))
    assert (child.project, child.parent_id, child.status) == (
        "Churn-2024",
        PARENT,
        RunStatus.FAILED,
    )
    assert child.start_time.timestamp() == 2.0
    assert child.end_time is not None
    assert child.end_time.timestamp() == 3.0
    assert live.status is RunStatus.KILLED  # a store's "running" run is long gone
    assert parent.tags["team"] == "a"
    assert child.tags["mlflow.runId"] == CHILD
    assert [(p.step, p.value) for p in runs.metric_history(RunId(CHILD), "loss")] == [
        (0, 1.0), (1, 0.5), (2, 1 / 3),
    ]  # fmt: skip
    assert [a.path for a in runs.list_artifacts(RunId(CHILD))] == ["plots/bbbb.csv"]
    events = [(e.action, e.entity, e.actor) for e in ws.stores.events.iterate()]
    assert ("project.created", "project:Churn-2024", "importer") in events
    assert sum(action == "run.imported" for action, _, _ in events) == 3
    # the version's folder is not among the run's files: a note, no version
    (note,) = report.notes
    assert note.startswith("churn 1: There is no MLflow model")


def test_one_project_for_every_experiment_keeps_the_experiment_in_a_tag(ws: Workspace) -> None:
    _importer(ws, Source(), project="history").run()
    child = ws.stores.runs.get_run(RunId(CHILD))
    assert (child.project, child.tags["mlflow.experiment"]) == ("history", "Churn / 2024")


def test_a_run_that_cannot_be_read_is_not_written_and_a_rerun_finishes(ws: Workspace) -> None:
    with pytest.raises(InvalidInput, match=f"artifacts of run {CHILD}"):
        _importer(ws, Source(broken=CHILD)).run()
    assert IMPORTED_TAG in ws.stores.runs.get_run(RunId(PARENT)).tags  # before it: whole
    with pytest.raises(NotFound):
        ws.stores.runs.get_run(RunId(CHILD))  # it: absent
    source = Source()
    report = _importer(ws, source).run()
    assert (report.runs, report.runs_skipped) == (2, 1)
    again = Source()
    report = _importer(ws, again).run()
    assert (report.runs, report.runs_skipped, again.reads) == (0, 3, 0)  # nothing read again


def test_a_dry_run_counts_and_writes_nothing(ws: Workspace) -> None:
    report = _importer(ws, Source()).run(dry_run=True)
    assert (report.runs, report.versions, report.dry_run) == (3, 1, True)
    with pytest.raises(NotFound):
        ws.stores.runs.get_run(RunId(PARENT))
