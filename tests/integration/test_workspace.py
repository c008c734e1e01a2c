"""Datasets, runs and models through the services of a real workspace, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopml.bootstrap import Workspace
from loopml.domain.records import RunStatus
from loopml.errors import IntegrityError, InvalidInput, NotFound


def _csv(path: Path, rows: int = 200, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "tenure": rng.integers(0, 72, rows),
            "monthly": rng.normal(50, 10, rows).round(2),
            "plan": rng.choice(["basic", "plus", "pro"], rows),
            "churned": rng.integers(0, 2, rows),
        }
    )
    frame.to_csv(path, index=False)
    return path


def test_adding_the_same_bytes_twice_gives_the_same_version(
    workspace: Workspace, tmp_path: Path
) -> None:
    data = _csv(tmp_path / "train.csv")
    first = workspace.data.add(data, name="churn", project="default", message="jan")
    again = workspace.data.add(data, name="churn", project="default")
    assert first.created
    assert not again.created
    assert again.version == first.version
    _csv(tmp_path / "train.csv", seed=1)
    second = workspace.data.add(data, name="churn", project="default")
    assert (second.created, second.version.version) == (True, 2)


def test_a_table_gets_schema_and_profile(workspace: Workspace, tmp_path: Path) -> None:
    version = workspace.data.add(_csv(tmp_path / "t.csv"), name="t", project="default").version
    assert version.schema is not None
    columns = {c["name"]: c for c in version.schema["columns"]}
    assert set(columns) == {"tenure", "monthly", "plan", "churned"}
    profile = workspace.data.profile(version)
    assert profile is not None
    assert profile["rows"] == 200


def test_files_come_back_verified(workspace: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "images"
    (folder / "a").mkdir(parents=True)
    (folder / "a" / "1.bin").write_bytes(b"\x00" * 1000)
    (folder / "2.bin").write_bytes(b"two")
    version = workspace.data.add(folder, name="imgs", project="default").version
    assert (version.file_count, version.schema) == (2, None)
    written = workspace.data.get("imgs@1", "default", tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written) == [
        "2.bin",
        "a/1.bin",
    ]
    assert (tmp_path / "out" / "a" / "1.bin").read_bytes() == b"\x00" * 1000


def test_diff_reports_files_and_schema(workspace: Workspace, tmp_path: Path) -> None:
    data = _csv(tmp_path / "d.csv")
    workspace.data.add(data, name="d", project="default")
    frame = pd.read_csv(data).drop(columns=["plan"]).assign(region="eu")
    frame.to_csv(data, index=False)
    workspace.data.add(data, name="d", project="default")
    diff = workspace.data.diff("d@1", "d@2", "default")
    assert diff.files.changed == ("d.csv",)
    text = " ".join(diff.schema_changes)
    assert "plan" in text
    assert "region" in text


@pytest.mark.parametrize(
    ("path", "error", "words"),
    [("missing.csv", NotFound, "No file or folder"), ("picture.png", InvalidInput, "CSV")],
    ids=["missing-file", "not-a-table"],
)
def test_bad_data_input_is_refused_clearly(
    workspace: Workspace, tmp_path: Path, path: str, error: type[Exception], words: str
) -> None:
    (tmp_path / "picture.png").write_bytes(b"\x89PNG")
    with pytest.raises(error, match=words):
        workspace.data.add(tmp_path / path, name="x", project="default", require_table=True)
    with pytest.raises(NotFound):
        workspace.data.resolve("x", "default")


def test_unknown_dataset_version_is_named(workspace: Workspace, tmp_path: Path) -> None:
    workspace.data.add(_csv(tmp_path / "c.csv"), name="churn", project="default")
    with pytest.raises(NotFound, match="no version 9"):
        workspace.data.resolve("churn@9", "default")
    with pytest.raises(NotFound, match="'nope'"):
        workspace.data.resolve("nope@1", "default")


def test_a_run_records_everything_and_fails_with_the_error_text(
    workspace: Workspace, tmp_path: Path
) -> None:
    version = workspace.data.add(_csv(tmp_path / "c.csv"), name="churn", project="default")
    (tmp_path / "confusion.png").write_bytes(b"png bytes")

    def train() -> str:
        with workspace.tracking.start_run(project="default", name="gbm") as run:
            run.use_dataset(version.version)
            run.log_params({"lr": 0.1, "depth": 6})
            for step in range(30):
                run.log_metric("loss", 1 / (step + 1))
            run.log_artifact(tmp_path / "confusion.png")
            raise ZeroDivisionError("division by zero")

    with pytest.raises(ZeroDivisionError):
        train()
    run = workspace.tracking.search(project="default", filter="attributes.name = 'gbm'").runs[0]
    stored = workspace.tracking.get(run.id)
    assert stored.status is RunStatus.FAILED
    assert stored.error == "ZeroDivisionError: division by zero"
    assert stored.params == {"lr": "0.1", "depth": "6"}
    assert stored.inputs == ("churn@1",)
    assert [p.step for p in workspace.tracking.metric_history(run.id, "loss")] == list(range(30))
    assert stored.environment["python"]
    assert stored.environment["packages_digest"].startswith("blake3:")
    paths = {a.path for a in workspace.tracking.artifacts(run.id)}
    assert paths == {"confusion.png", "environment/requirements.txt"}


def test_metric_values_must_be_numbers(workspace: Workspace) -> None:
    with workspace.tracking.start_run(project="default", name="x") as run:
        with pytest.raises(InvalidInput, match="not a number"):
            run.log_metric("acc", "high")
        for bad in (float("nan"), float("inf"), -np.inf):
            with pytest.raises(InvalidInput, match="a metric is a finite number"):
                run.log_metric("loss", bad)
        run.log_metric("acc", np.float32(0.5))
    assert workspace.tracking.get(run.id).metrics == {"acc": 0.5}


def _model_and_frame() -> tuple[object, pd.DataFrame]:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"tenure": rng.integers(0, 72, 100).astype(float), "monthly": rng.normal(50, 10, 100)}
    )
    labels = (frame["tenure"] < 20).astype(int)
    return LogisticRegression().fit(frame, labels), frame


def test_register_alias_and_load_back(workspace: Workspace) -> None:
    model, frame = _model_and_frame()
    with workspace.tracking.start_run(project="default", name="fit") as run:
        run.log_metric("f1", 0.9)
        run.flush()
        first = workspace.registry.register(
            model, "churn", project="default", run_id=run.id, input_example=frame.head()
        )
    second = workspace.registry.register(model, "churn", project="default")
    assert (first.version, second.version) == (1, 2)
    assert first.metrics == {"f1": 0.9}
    assert [c["name"] for c in first.signature["inputs"]] == ["tenure", "monthly"]
    workspace.registry.set_alias("churn", "champion", 1, project="default")
    loaded = workspace.registry.load("churn@champion", project="default")
    assert (loaded.predict(frame) == model.predict(frame)).all()  # type: ignore[attr-defined]
    assert workspace.registry.resolve("churn", "default").version == 2
    with pytest.raises(NotFound, match="no version 5"):
        workspace.registry.set_alias("churn", "champion", 5, project="default")
    with pytest.raises(NotFound, match="no alias 'prod'"):
        workspace.registry.load("churn@prod", project="default")


def test_a_corrupted_model_blob_is_refused_by_name(workspace: Workspace) -> None:
    model, _ = _model_and_frame()
    version = workspace.registry.register(model, "churn", project="default")
    manifest = workspace.registry._store.get_manifest("default", "churn", version.version)
    blob = next(iter(manifest.files.values()))
    hexpart = blob.digest.split(":", 1)[1]
    path = Path(workspace.settings.artifacts_url) / "blobs" / "blake3" / hexpart[:2] / hexpart[2:]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=blob.digest):
        workspace.registry.load("churn/1", project="default")


def test_the_same_model_registered_twice_has_the_same_artifact_digest(
    workspace: Workspace,
) -> None:
    model, _ = _model_and_frame()
    first = workspace.registry.register(model, "churn", project="default")
    second = workspace.registry.register(model, "churn", project="default")
    assert second.version == first.version + 1
    assert second.artifact_digest == first.artifact_digest  # equal content, equal identity


def test_promote_and_rollback_walk_the_champions_history(workspace: Workspace) -> None:
    from sklearn.dummy import DummyClassifier

    x = [[0.0], [1.0]]
    for _ in range(3):
        workspace.registry.register(
            DummyClassifier().fit(x, [0, 1]), "churn", project="default", input_example=np.array(x)
        )
    registry = workspace.registry
    with pytest.raises(InvalidInput, match="no earlier version"):
        registry.rollback("churn", project="default")
    assert registry.promote("churn", 1, project="default") is None
    assert registry.promote("churn", 2, project="default") == 1
    assert registry.promote("churn", 3, project="default") == 2
    assert registry.rollback("churn", project="default") == (3, 2)
    assert registry.rollback("churn", project="default") == (2, 1)  # twice: two versions back
    assert registry.resolve("churn@champion", "default").version == 1
    with pytest.raises(InvalidInput):
        registry.rollback("churn", project="default")
    with pytest.raises(NotFound):
        registry.promote("churn", 9, project="default")
    actions = [e.action for e in workspace.audit.log(entity="model:default/churn")]
    assert actions[:2] == ["model.rolled_back", "model.rolled_back"]
    assert workspace.audit.verify().ok
