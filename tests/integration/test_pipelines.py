"""Pipelines end to end on a real workspace: the example pipeline, caching by content, retries,
failure and resume, bad input, reproduce, lineage and sweeps."""

from __future__ import annotations

import importlib.util
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loopml.bootstrap import Workspace, open_workspace
from loopml.domain.records import RunStatus
from loopml.errors import InvalidInput
from loopml.pipelines import reproduce_run, resume_pipeline, run_pipeline, sweep_pipeline
from loopml.services.pipelines import PipelineRunResult
from loopml.settings import Settings
from loopml.steps import load_pipeline

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = f"{ROOT / 'examples' / 'churn' / 'pipeline.py'}:churn"


@pytest.fixture
def ws(ws_settings: Settings) -> Iterator[Workspace]:
    workspace = open_workspace(ws_settings)
    yield workspace
    workspace.close()


def _example_data() -> Any:
    spec = importlib.util.spec_from_file_location("churn_data", ROOT / "examples/churn/data.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _add_churn(ws: Workspace, tmp_path: Path, seed: int = 0, shift: float = 0.0) -> None:
    path = _example_data().write_churn(
        tmp_path / f"churn-{seed}-{shift}.csv", rows=800, seed=seed, shift=shift
    )
    ws.data.add(path, name="churn", project="default")


def _statuses(result: PipelineRunResult) -> dict[str, str]:
    return {name: report.status for name, report in result.steps.items()}


def _running_runs(ws: Workspace) -> list[str]:
    return [
        r.id
        for r in ws.tracking.search(
            project="default", limit=1000, filter="attributes.status = 'running'"
        ).runs
    ]


def test_the_example_pipeline_runs_records_and_registers(ws: Workspace, tmp_path: Path) -> None:
    _add_churn(ws, tmp_path)
    result = run_pipeline(load_pipeline(EXAMPLE), {"lr": 0.1}, workspace=ws)
    assert result.ok, result.run.error
    assert set(_statuses(result).values()) == {"ran"}
    assert list(result.steps) == ["load", "validate", "split", "train", "evaluate", "register"]
    assert 0.5 < result.metrics["f1"] <= 1.0
    assert result.run.metrics["f1"] == pytest.approx(result.metrics["f1"])
    children = ws.tracking.search(project="default", parent_id=result.run.id).runs
    assert {c.name for c in children} == set(result.steps)
    load_run = next(c for c in children if c.name == "load")
    assert load_run.inputs == ("churn@1",)  # down to the dataset version
    assert ws.registry.resolve("churn", "default").version == 1
    _, outputs = ws.pipeline_records.io_of(next(c for c in children if c.name == "train").id)
    assert outputs[0].serializer == "sklearn"
    assert _running_runs(ws) == []


def test_a_rerun_with_nothing_changed_executes_no_step(ws: Workspace, tmp_path: Path) -> None:
    _add_churn(ws, tmp_path)
    pipeline = load_pipeline(EXAMPLE)
    first = run_pipeline(pipeline, {}, workspace=ws)
    again = run_pipeline(pipeline, {}, workspace=ws)
    assert set(_statuses(again).values()) == {"cached"}
    assert again.metrics == first.metrics
    assert ws.registry.resolve("churn", "default").version == 1  # register was not rerun
    forced = run_pipeline(pipeline, {}, workspace=ws, use_cache=False)
    assert set(_statuses(forced).values()) == {"ran"}


def test_a_changed_parameter_reruns_that_step_and_downstream_only(
    ws: Workspace, tmp_path: Path
) -> None:
    _add_churn(ws, tmp_path)
    pipeline = load_pipeline(EXAMPLE)
    run_pipeline(pipeline, {"lr": 0.1}, workspace=ws)
    changed = run_pipeline(pipeline, {"lr": 0.05}, workspace=ws)
    assert _statuses(changed) == {
        "load": "cached",
        "validate": "cached",
        "split": "cached",
        "train": "ran",
        "evaluate": "ran",
        "register": "ran",
    }


def _write(path: Path, source: str) -> str:
    path.write_text(textwrap.dedent(source))
    return f"{path}:flow"


_FLOW = """
    import pandas as pd
    from loopml import pipeline, step

    @step
    def make(n: int = 5) -> pd.DataFrame:
        return pd.DataFrame({{"x": list(range(n))}})  # {make_note}

    @step
    def double(df: pd.DataFrame) -> pd.DataFrame:
        return df.assign(y=df["x"] * {factor})

    @step
    def total(df: pd.DataFrame) -> dict:
        return {{"total": float(df["y"].sum())}}

    @pipeline
    def flow(n: int = 5):
        return total(double(make(n)))
"""


def test_a_code_change_reruns_the_step_and_downstream(ws: Workspace, tmp_path: Path) -> None:
    ref = _write(tmp_path / "flow.py", _FLOW.format(make_note="v1", factor=2))
    assert run_pipeline(load_pipeline(ref), {}, workspace=ws).metrics == {"total": 20.0}
    ref = _write(tmp_path / "flow.py", _FLOW.format(make_note="v1", factor=3))
    result = run_pipeline(load_pipeline(ref), {}, workspace=ws)
    assert _statuses(result) == {"make": "cached", "double": "ran", "total": "ran"}
    assert result.metrics == {"total": 30.0}


def test_identical_output_from_changed_code_still_hits_the_cache_downstream(
    ws: Workspace, tmp_path: Path
) -> None:
    ref = _write(tmp_path / "flow.py", _FLOW.format(make_note="v1", factor=2))
    run_pipeline(load_pipeline(ref), {}, workspace=ws)
    ref = _write(tmp_path / "flow.py", _FLOW.format(make_note="same data, new code", factor=2))
    result = run_pipeline(load_pipeline(ref), {}, workspace=ws)
    assert _statuses(result) == {"make": "ran", "double": "cached", "total": "cached"}


_FLAKY = """
    from pathlib import Path
    from loopml import pipeline, step

    MARK = Path({mark!r})

    @step
    def first() -> int:
        return 1

    @step(retries={retries}, backoff_s=0.01)
    def flaky(x: int) -> int:
        attempts = int(MARK.read_text()) + 1 if MARK.exists() else 1
        MARK.write_text(str(attempts))
        if attempts <= {failures}:
            raise RuntimeError(f"attempt {{attempts}} failed")
        return x + 1

    @step
    def last(x: int) -> dict:
        return {{"value": float(x)}}

    @pipeline
    def flow():
        return last(flaky(first()))
"""


def test_a_step_is_retried_with_backoff(ws: Workspace, tmp_path: Path) -> None:
    ref = _write(
        tmp_path / "flaky.py", _FLAKY.format(mark=str(tmp_path / "mark"), retries=2, failures=2)
    )
    result = run_pipeline(load_pipeline(ref), {}, workspace=ws)
    assert result.ok
    assert result.steps["flaky"].attempts == 3


def test_a_failing_step_fails_the_run_by_name_and_resume_continues(
    ws: Workspace, tmp_path: Path
) -> None:
    mark = tmp_path / "mark"
    ref = _write(tmp_path / "flaky.py", _FLAKY.format(mark=str(mark), retries=0, failures=1))
    failed = run_pipeline(load_pipeline(ref), {}, workspace=ws)
    assert failed.run.status is RunStatus.FAILED
    assert failed.run.error == "step 'flaky' failed: RuntimeError: attempt 1 failed"
    assert _statuses(failed) == {"first": "ran", "flaky": "failed", "last": "not run"}
    assert _running_runs(ws) == []
    resumed = resume_pipeline(failed.run.id, workspace=ws)
    assert resumed.ok
    assert _statuses(resumed) == {"first": "cached", "flaky": "ran", "last": "ran"}
    assert resumed.run.tags["loopml.resumed_from"] == failed.run.id


def test_an_unserializable_output_fails_clearly(ws: Workspace, tmp_path: Path) -> None:
    ref = _write(
        tmp_path / "bad.py",
        """
        import threading
        from loopml import pipeline, step

        @step
        def lock() -> object:
            return threading.Lock()

        @pipeline
        def flow():
            return lock()
    """,
    )
    result = run_pipeline(load_pipeline(ref), {}, workspace=ws)
    assert result.run.status is RunStatus.FAILED
    assert "step 'lock' failed" in (result.run.error or "")
    assert "lock" in (result.run.error or "").lower()
    assert _running_runs(ws) == []


@pytest.mark.parametrize(
    ("params", "words"),
    [({"nope": 1}, "has no parameter 'nope'"), ({"lr": [1, 2]}, None)],
    ids=["unknown-parameter", "json-list-is-accepted"],
)
def test_parameters_are_checked(
    ws: Workspace, params: dict[str, object], words: str | None
) -> None:
    pipeline = load_pipeline(EXAMPLE)
    if words is None:
        pipeline.trace(params)
        return
    with pytest.raises(InvalidInput, match=words):
        pipeline.trace(params)


def test_command_line_values_are_converted_or_refused() -> None:
    pipeline = load_pipeline(EXAMPLE)
    assert pipeline.coerce({"lr": "0.05", "depth": "4"}) == {"lr": 0.05, "depth": 4}
    with pytest.raises(InvalidInput, match="'lr' of pipeline 'churn' expects float; got 'fast'"):
        pipeline.coerce({"lr": "fast"})


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("raise ImportError('boom')", "does not import: ImportError: boom"),
        ("x = 1", "'flow' in"),
        ("def flow(): pass", "not a @pipeline function"),
    ],
    ids=["import-error", "missing", "not-a-pipeline"],
)
def test_a_bad_pipeline_file_is_one_clear_error(tmp_path: Path, source: str, words: str) -> None:
    (tmp_path / "p.py").write_text(source)
    with pytest.raises(InvalidInput, match=words):
        load_pipeline(f"{tmp_path / 'p.py'}:flow")


def test_reproduce_uses_the_same_data_version_and_gets_the_same_metrics(
    ws: Workspace, tmp_path: Path
) -> None:
    _add_churn(ws, tmp_path, seed=0)
    original = run_pipeline(load_pipeline(EXAMPLE), {"depth": 2}, workspace=ws)
    _add_churn(ws, tmp_path, seed=5, shift=1.0)  # churn@latest moves on to version 2
    again = reproduce_run(original.run.id, workspace=ws)
    assert again.result.ok
    assert again.identical_metrics, again.metric_changes
    children = ws.tracking.search(project="default", parent_id=again.result.run.id).runs
    assert next(c for c in children if c.name == "load").inputs == ("churn@1",)
    assert set(_statuses(again.result).values()) == {"ran"}  # reproduced, not served from cache


def test_lineage_backwards_from_a_model_and_forwards_from_data(
    ws: Workspace, tmp_path: Path
) -> None:
    _add_churn(ws, tmp_path)
    run_pipeline(load_pipeline(EXAMPLE), {}, workspace=ws)
    back = ws.lineage.upstream_of_model("default", "churn", 1).to_dict()
    text = repr(back)
    assert "churn@1" in text  # the dataset version at the root
    assert "'kind': 'pipeline'" in text
    forward = ws.lineage.downstream_of_dataset("default", "churn", 1).to_dict()
    assert "churn/1" in repr(forward)


def test_a_sweep_runs_trials_under_one_run_and_picks_the_best(
    ws: Workspace, tmp_path: Path
) -> None:
    _add_churn(ws, tmp_path)
    trials = [{"lr": 0.05, "model_name": "sweep"}, {"lr": 0.2, "model_name": "sweep"}]
    result = sweep_pipeline(
        load_pipeline(EXAMPLE), trials, metric="metrics.auc", workspace=ws, register="churn-best"
    )
    assert len(result.trials) == 2
    assert all(t.run.parent_id == result.run.id for t in result.trials)
    best = max(result.trials, key=lambda t: t.run.metrics["auc"])
    assert result.best is not None
    assert result.best.run.id == best.run.id
    assert result.run.tags["loopml.best_run"] == best.run.id
    assert result.model_version is not None
    assert result.model_version.run_id == best.run.id


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["processes", "ray"])
def test_the_example_gives_the_same_result_on_every_executor(
    ws: Workspace, tmp_path: Path, executor: str
) -> None:
    _add_churn(ws, tmp_path)
    pipeline = load_pipeline(EXAMPLE)
    local = run_pipeline(pipeline, {"depth": 2}, workspace=ws, use_cache=False)
    remote = run_pipeline(pipeline, {"depth": 2}, workspace=ws, use_cache=False, executor=executor)
    assert remote.ok, remote.run.error
    assert remote.metrics == local.metrics
    assert set(_statuses(remote).values()) == {"ran"}
    children = ws.tracking.search(project="default", parent_id=remote.run.id).runs
    assert next(c for c in children if c.name == "load").inputs == ("churn@1",)
    assert next(c for c in children if c.name == "evaluate").metrics == remote.metrics
    assert _running_runs(ws) == []


def test_a_ray_address_that_does_not_answer_is_one_clear_error(ws: Workspace) -> None:
    import socket

    from loopml.errors import Unavailable

    with socket.socket() as probe:  # a free port on 127.0.0.1 where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(Unavailable, match=f"127.0.0.1:{port} did not answer"):
        run_pipeline(
            load_pipeline(EXAMPLE),
            {},
            workspace=ws,
            executor="ray",
            ray_address=f"127.0.0.1:{port}",
        )
    assert ws.tracking.search(project="default").total == 0  # no half-recorded run


def test_reproduce_warns_when_a_step_changed_and_reports_the_metric_change(
    ws: Workspace, tmp_path: Path
) -> None:
    ref = _write(tmp_path / "flow.py", _FLOW.format(make_note="v1", factor=2))
    original = run_pipeline(load_pipeline(ref), {}, workspace=ws)
    _write(tmp_path / "flow.py", _FLOW.format(make_note="v1", factor=3))
    again = reproduce_run(original.run.id, workspace=ws)
    assert again.warnings == ["step 'double': its source code differs from the original run's"]
    assert again.metric_changes == {"total": (20.0, 30.0)}


def test_what_a_step_prints_and_logs_is_kept_with_its_run(ws: Workspace, tmp_path: Path) -> None:
    ref = _write(
        tmp_path / "talk.py",
        """
        import logging
        from loopml import pipeline, step

        @step
        def talk(fail: bool = False) -> int:
            print("hello from the step")
            logging.getLogger("talk").warning("careful")
            if fail:
                raise RuntimeError("stop")
            return 1

        @pipeline
        def flow(fail: bool = False):
            return talk(fail=fail)
    """,
    )
    for fail in (False, True):
        result = run_pipeline(load_pipeline(ref), {"fail": fail}, workspace=ws)
        step_run = result.steps["talk"].run_id
        assert step_run is not None
        log = tmp_path / f"log-{fail}.txt"
        ws.tracking.fetch_artifact(step_run, "logs/output.log", log)
        text = log.read_text()
        assert "hello from the step" in text
        assert "WARNING talk: careful" in text


def _explain_and_flags(ws: Workspace, model_ref: str) -> tuple[dict[str, Any], str]:
    """/explain of one row by the server of `model_ref`, and the flags logged for a row with a
    plan the training data never had."""
    from starlette.testclient import TestClient

    from loopml.bootstrap import prediction_log_reader, prediction_log_writer
    from loopml.serving.app import create_app
    from loopml.serving.host import ModelHost
    from loopml.serving.log_sink import LogSink

    row = {"tenure": 3, "plan": "basic", "monthly": 45.0, "support_calls": 4}
    host = ModelHost(ws, "churn", model_ref)
    sink = LogSink(prediction_log_writer(ws.settings), prediction_log_reader(ws.settings))
    with TestClient(create_app({"churn": host}, sink)) as client:
        answer = client.post("/explain", json={"rows": [row]}).json()
        ids = client.post("/predict", json={"rows": [{**row, "plan": "gold"}]}).json()
    sink.close()
    logged = prediction_log_reader(ws.settings).get(ids["request_ids"][0])
    assert logged is not None
    return answer, str(logged["flags"])


def test_a_model_trained_by_a_partly_cached_run_keeps_its_training_reference(
    ws: Workspace, tmp_path: Path
) -> None:
    _add_churn(ws, tmp_path)
    pipeline = load_pipeline(EXAMPLE)
    first = run_pipeline(pipeline, {}, workspace=ws)
    second = run_pipeline(pipeline, {"lr": 0.3}, workspace=ws)
    assert (_statuses(second)["load"], _statuses(second)["train"]) == ("cached", "ran")
    load_run = ws.tracking.get(second.steps["load"].run_id or "")
    assert load_run.inputs == ("churn@1",)  # recorded as if the step had run
    versions = ws.registry.versions("churn", "default")
    assert [v.run_id for v in versions] == [
        first.steps["register"].run_id,
        second.steps["register"].run_id,
    ]
    for version in versions:
        assert version.run_id is not None
        assert ws.lineage.training_datasets(version.run_id) == ("churn@1",)
    answer, flags = _explain_and_flags(ws, "churn/2")
    assert answer["reference"]["source"] == "training profile"
    assert any(value != 0 for value in answer["explanations"][0].values())
    assert flags == "unseen_category:plan"


_FIT = """
    import random
    import tempfile

    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    import loopml
    from loopml import pipeline, step

    X = ["tenure", "monthly"]

    @step
    def load(dataset: str) -> pd.DataFrame:
        with tempfile.TemporaryDirectory() as tmp:
            (table,) = loopml.data.download(dataset, tmp)
            return pd.read_csv(table)

    @step
    def train(df: pd.DataFrame, c: float = 1.0) -> LogisticRegression:
        return LogisticRegression(C=c + {jitter} * random.random()).fit(df[X], df["churned"])

    @step
    def score(model: LogisticRegression, df: pd.DataFrame) -> dict:
        return {{"accuracy": float(model.score(df[X], df["churned"]))}}

    @step
    def register(model: LogisticRegression, name: str) -> dict:
        if name:
            loopml.models.register(loopml.active_run(), model, name=name)
        return {{}}

    @pipeline
    def flow(dataset: str = "churn@latest", c: float = 1.0, name: str = ""):
        df = load(dataset)
        model = train(df, c=c)
        register(model, name)
        return score(model, df)
"""


def test_a_sweep_over_a_pipeline_that_registers_reports_the_best_trials_own_version(
    ws: Workspace, tmp_path: Path
) -> None:
    _add_churn(ws, tmp_path)
    trials = [{"lr": 0.05}, {"lr": 0.2}]
    result = sweep_pipeline(
        load_pipeline(EXAMPLE), trials, metric="metrics.auc", workspace=ws, register="churn"
    )
    assert result.best is not None
    assert result.registration is not None
    versions = ws.registry.versions("churn", "default")
    assert len(versions) == 2  # one per trial; none more for the sweep
    assert result.registration.outcome == "existing"
    assert result.registration.version.run_id == result.best.steps["register"].run_id
    assert "same files, same data" in result.registration.describe()
    lineage = repr(
        ws.lineage.upstream_of_model("default", "churn", result.registration.version.version)
    )
    assert "churn@1" in lineage


def test_a_sweep_registers_the_best_model_of_a_pipeline_that_does_not_with_its_lineage(
    ws: Workspace, tmp_path: Path
) -> None:
    _add_churn(ws, tmp_path)
    ref = _write(tmp_path / "fit.py", _FIT.format(jitter=0))
    result = sweep_pipeline(
        load_pipeline(ref),
        [{"c": 0.01}, {"c": 1.0}],
        metric="metrics.accuracy",
        workspace=ws,
        register="plain",
    )
    assert result.best is not None
    assert result.registration is not None
    assert result.registration.outcome == "created"
    version = result.registration.version
    assert (version.ref, version.run_id) == ("plain/1", result.best.run.id)
    assert version.metrics["accuracy"] == result.best.run.metrics["accuracy"]
    lineage = ws.lineage.upstream_of_model("default", "plain", 1)
    assert lineage.children[0].ref == result.best.run.id  # the trial, not the sweep
    assert "churn@1" in repr(lineage.to_dict())  # down to the data
    assert ws.lineage.training_datasets(result.best.run.id) == ("churn@1",)


def test_the_same_model_from_the_same_data_is_one_version(ws: Workspace, tmp_path: Path) -> None:
    _add_churn(ws, tmp_path)
    ref = _write(tmp_path / "fit.py", _FIT.format(jitter=0))
    first = run_pipeline(load_pipeline(ref), {"name": "fit"}, workspace=ws, use_cache=False)
    again = run_pipeline(load_pipeline(ref), {"name": "fit"}, workspace=ws, use_cache=False)
    assert [v.run_id for v in ws.registry.versions("fit", "default")] == [
        first.steps["register"].run_id
    ]
    step_run = ws.tracking.get(again.steps["register"].run_id or "")
    assert step_run.tags["loopml.model_existing.fit"] == "1"
    _add_churn(ws, tmp_path, seed=3)  # new data, a new model: a new version
    run_pipeline(load_pipeline(ref), {"name": "fit", "dataset": "churn@2"}, workspace=ws)
    assert [v.version for v in ws.registry.versions("fit", "default")] == [1, 2]


def test_reproduce_compares_the_model_and_registers_nothing_unless_asked(
    ws: Workspace, tmp_path: Path
) -> None:
    _add_churn(ws, tmp_path)
    original = run_pipeline(load_pipeline(EXAMPLE), {"depth": 2}, workspace=ws)
    same = reproduce_run(original.run.id, workspace=ws)
    assert [v.version for v in ws.registry.versions("churn", "default")] == [1]
    assert (same.output_changes, same.steps_compared) == ([], 6)
    (check,) = same.models
    assert (check.name, check.identical, check.outcome, check.version) == (
        "churn",
        True,
        "existing",
        1,
    )

    ref = _write(tmp_path / "fit.py", _FIT.format(jitter=0.5))  # training is not deterministic
    noisy = run_pipeline(load_pipeline(ref), {"name": "fit"}, workspace=ws)
    held = reproduce_run(noisy.run.id, workspace=ws)
    assert [v.version for v in ws.registry.versions("fit", "default")] == [1]
    (check,) = held.models
    assert (check.identical, check.outcome, check.version) == (False, "held", 0)
    assert "train" in held.output_changes
    asked = reproduce_run(noisy.run.id, workspace=ws, register=True)
    (check,) = asked.models
    assert (check.identical, check.outcome, check.version) == (False, "created", 2)
    assert [v.version for v in ws.registry.versions("fit", "default")] == [1, 2]


def _load_digest(ws: Workspace, result: PipelineRunResult) -> str:
    """The digest of the table the `load` step handed on."""
    return ws.pipeline_records.io_of(ws.tracking.get(result.steps["load"].run_id or "").id)[1][
        0
    ].digest


@pytest.mark.parametrize("dataset", ["churn@latest", "churn"], ids=["at-latest", "bare-name"])
def test_a_moving_dataset_reference_is_read_again_when_it_moves(
    ws: Workspace, tmp_path: Path, dataset: str
) -> None:
    _add_churn(ws, tmp_path, seed=0)
    flow = load_pipeline(_write(tmp_path / "fit.py", _FIT.format(jitter=0)))
    first = run_pipeline(flow, {"dataset": dataset}, workspace=ws)
    _add_churn(ws, tmp_path, seed=3, shift=1.0)  # `dataset` now names churn@2
    moved = run_pipeline(flow, {"dataset": dataset}, workspace=ws)
    assert set(_statuses(moved).values()) == {"ran"}, _statuses(moved)
    load_run = ws.tracking.get(moved.steps["load"].run_id or "")
    assert (load_run.inputs, load_run.params["dataset"]) == (("churn@2",), dataset)
    assert _load_digest(ws, moved) != _load_digest(ws, first)
    again = run_pipeline(flow, {"dataset": dataset}, workspace=ws)
    assert set(_statuses(again).values()) == {"cached"}
    assert again.metrics == moved.metrics
    assert ws.tracking.get(again.steps["load"].run_id or "").inputs == ("churn@2",)


def test_a_pinned_dataset_reference_stays_cached_when_a_new_version_is_added(
    ws: Workspace, tmp_path: Path
) -> None:
    _add_churn(ws, tmp_path, seed=0)
    flow = load_pipeline(_write(tmp_path / "fit.py", _FIT.format(jitter=0)))
    first = run_pipeline(flow, {"dataset": "churn@1"}, workspace=ws)
    _add_churn(ws, tmp_path, seed=3, shift=1.0)
    again = run_pipeline(flow, {"dataset": "churn@1"}, workspace=ws)
    assert set(_statuses(again).values()) == {"cached"}
    assert again.metrics == first.metrics
    assert ws.tracking.get(again.steps["load"].run_id or "").inputs == ("churn@1",)
