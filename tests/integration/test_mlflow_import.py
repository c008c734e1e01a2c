"""`loopml import mlflow` from a store MLflow's own client built: into a team server on
PostgreSQL and S3, twice (nothing doubled), with every run, point, file, version and alias as
MLflow has it; a dry run writes nothing; an unreachable, missing or corrupt store stops with a
clear error and leaves no run half-imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow import MlflowClient
from team import clean_env, loopml

# MLflow's client reads its database with SQLAlchemy options SQLAlchemy 2.1 deprecates
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")
HISTORY = str(Path(__file__).parent / "mlflow_history.py")
PROJECT = "Churn-model-2024"  # "Churn model / 2024" as a project name


@pytest.fixture
def mlflow_store(tmp_path: Path) -> tuple[str, dict[str, Any]]:
    """An MLflow database (and its artifact folder) written by MLflow's client."""
    folder = tmp_path / "mlflow"
    folder.mkdir()
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    env = clean_env(MLFLOW_TRACKING_URI=uri)
    built = subprocess.run([sys.executable, HISTORY], env=env, cwd=folder, capture_output=True,
                           text=True, timeout=300)  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    return uri, json.loads(built.stdout.strip().splitlines()[-1])


def _import(team: dict[str, Any], cwd: Path, uri: str, *more: str) -> Any:
    env = clean_env(LOOPML_SERVER=team["url"], LOOPML_TOKEN=team["alice"])
    done = loopml(env, cwd, "import", "mlflow", "--tracking-uri", uri, "--models", "--json", *more)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def _mlflow_api(team: dict[str, Any], path: str, **params: str) -> Any:
    answer = httpx.get(f"{team['url']}/api/2.0/mlflow/{path}", params=params,
                       headers={"Authorization": f"Bearer {team['alice']}"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_an_mlflow_store_is_imported_whole_and_a_rerun_doubles_nothing(
    team: dict[str, Any], tmp_path: Path, mlflow_store: tuple[str, dict[str, Any]]
) -> None:
    uri, made = mlflow_store
    planned = _import(team, tmp_path, uri, "--dry-run")
    assert (planned["runs"], planned["versions"], planned["dry_run"]) == (5, 4, True)
    nothing = httpx.get(f"{team['url']}/api/2.0/mlflow/experiments/get",
                        params={"experiment_id": PROJECT},
                        headers={"Authorization": f"Bearer {team['alice']}"})  # fmt: skip
    assert nothing.status_code == 404  # the dry run made not even the project

    first = _import(team, tmp_path, uri)
    assert first["projects"]["Churn model / 2024"] == PROJECT
    assert (first["runs"], first["runs_skipped"], first["metric_points"]) == (5, 0, 602)
    assert (first["versions"], first["aliases"], first["logged_models"]) == (4, 2, 4)
    # scikit-learn saved with skops and XGBoost load from their own formats, a pickle does not
    assert first["native_versions"] == 3
    (kept,) = first["notes"]
    assert kept.startswith("churn-pickle 1: kept as MLflow's folder")
    assert "--trust-pickles" in kept

    source = MlflowClient(tracking_uri=uri)
    for name, run_id in made["runs"].items():
        theirs = source.get_run(run_id)
        ours = _mlflow_api(team, "runs/get", run_id=run_id)["run"]
        info = ours["info"]
        assert (info["experiment_id"], info["run_name"], info["status"]) == (
            PROJECT, name, theirs.info.status,
        )  # fmt: skip
        assert (info["start_time"], info.get("end_time")) == (
            theirs.info.start_time, theirs.info.end_time,
        )  # fmt: skip
        assert {p["key"]: p["value"] for p in ours["data"]["params"]} == theirs.data.params
        tags = {t["key"]: t["value"] for t in ours["data"]["tags"]}
        assert {k: v for k, v in theirs.data.tags.items() if k in tags} == {
            k: v for k, v in theirs.data.tags.items() if not k.startswith("mlflow.log-model")
        }
        for key in theirs.data.metrics:
            history = _mlflow_api(team, "metrics/get-history", run_id=run_id, metric_key=key)
            assert [(m["step"], m["value"], m["timestamp"]) for m in history["metrics"]] == [
                (m.step, m.value, m.timestamp) for m in source.get_metric_history(run_id, key)
            ]
    children = _mlflow_api(team, "runs/get", run_id=made["runs"]["C=0.5"])["run"]["data"]["tags"]
    assert {"key": "mlflow.parentRunId", "value": made["parent"]} in children

    as_alice = clean_env(LOOPML_SERVER=team["url"], LOOPML_TOKEN=team["alice"],
                         LOOPML_PROJECT=PROJECT)  # fmt: skip
    shown = json.loads(loopml(as_alice, tmp_path, "runs", "show", made["parent"], "--json").stdout)
    paths = {a["path"] for a in shown["artifacts"]}
    assert paths == {"report/summary.txt", "report/plots/loss.csv"}
    versions = json.loads(loopml(as_alice, tmp_path, "models", "versions", "churn",
                                 "--json").stdout)  # fmt: skip
    assert sorted((v["version"], v["flavor"], tuple(v["aliases"])) for v in versions) == [
        (1, "sklearn", ("champion",)), (2, "sklearn", ("challenger",)),
    ]  # fmt: skip
    predicting = (
        "import json, loopml, numpy as np; X = np.random.default_rng(0).normal(size=(80, 3)); "
        "print(json.dumps([loopml.models.load('churn@champion').predict(X[:10]).tolist(), "
        "loopml.models.load('churn-xgb/1').predict_proba(X[:10])[:, 1].tolist()]))"
    )
    done = subprocess.run([sys.executable, "-c", predicting], env=as_alice, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    champion, xgb = json.loads(done.stdout)
    assert champion == made["champion"]  # the same model, loaded by loopml from MLflow's files
    assert xgb == pytest.approx(made["xgb"], abs=1e-6)
    events = json.loads(loopml(as_alice, tmp_path, "audit", "log", "--json").stdout)
    imported = [e for e in events if e["action"] == "run.imported"]
    assert len(imported) == 5
    assert {e["actor"] for e in imported} == {"alice"}

    again = _import(team, tmp_path, uri)
    assert (again["runs"], again["runs_skipped"], again["metric_points"]) == (0, 5, 0)
    assert (again["versions"], again["versions_skipped"], again["aliases"]) == (0, 4, 0)
    after = json.loads(loopml(as_alice, tmp_path, "audit", "log", "--json").stdout)
    assert len(after) == len(events)  # not one change the second time


def test_a_source_that_cannot_be_read_stops_the_import_with_nothing_half_written(
    team: dict[str, Any], tmp_path: Path, mlflow_store: tuple[str, dict[str, Any]]
) -> None:
    env = clean_env(LOOPML_SERVER=team["url"], LOOPML_TOKEN=team["alice"])
    for uri, said in [
        ("http://127.0.0.1:9", "Nothing answered at http://127.0.0.1:9"),
        (str(tmp_path / "nowhere"), "neither a URI nor a folder"),
        (f"sqlite:///{tmp_path / 'missing.db'}", "no MLflow database"),
    ]:
        refused = loopml(env, tmp_path, "import", "mlflow", "--tracking-uri", uri)
        assert refused.returncode == 1
        assert said in refused.stderr
        assert "Traceback" not in refused.stderr
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database" * 100)
    refused = loopml(env, tmp_path, "import", "mlflow", "--tracking-uri", f"sqlite:///{garbage}")
    assert refused.returncode == 1
    assert "is not a database" in refused.stderr

    uri, made = mlflow_store
    # the parent run's file is gone from the artifact store (a dangling link): the import
    # stops at that run, before writing any of it
    damaged = next((tmp_path / "mlflow" / "mlruns").rglob("summary.txt"))
    damaged.unlink()
    damaged.symlink_to(tmp_path / "vanished.txt")
    refused = loopml(env, tmp_path, "import", "mlflow", "--tracking-uri", uri)
    assert refused.returncode == 1
    assert f"the artifacts of run {made['parent']}" in refused.stderr
    absent = httpx.get(f"{team['url']}/api/2.0/mlflow/runs/get", params={"run_id": made["parent"]},
                       headers={"Authorization": f"Bearer {team['alice']}"})  # fmt: skip
    assert absent.status_code == 404

    damaged.unlink()
    damaged.write_text("two candidates")
    finished = _import(team, tmp_path, uri)
    assert (finished["runs"], finished["runs_skipped"]) == (5, 0)
