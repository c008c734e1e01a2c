"""MLflow's own client against loopml's MLflow REST API: an ordinary MLflow training script runs
unchanged against `loopml server` on PostgreSQL and S3, and what it logged is loopml's (the CLI
sees it); every refusal comes in MLflow's error shape, and the boundary holds (tokens, roles,
other projects' ids, traversal, foreign hosts, poison values)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from team import clean_env, loopml

from loopml.settings import Settings
from loopml.testing.team_server import LiveServer, live_server

SCRIPT = str(Path(__file__).parent / "mlflow_training.py")
API = "/api/2.0/mlflow"


def test_an_mlflow_training_script_runs_unchanged_against_loopml(
    team: dict[str, Any], tmp_path: Path
) -> None:
    env = clean_env(
        MLFLOW_TRACKING_URI=team["url"],
        MLFLOW_TRACKING_TOKEN=team["alice"],
        MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",  # a 5xx would fail at once instead of after minutes
    )
    done = subprocess.run(
        [sys.executable, SCRIPT], env=env, cwd=tmp_path, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    run_id = seen["run_id"]
    assert seen["experiment_id"] == "churn-mlflow"
    assert seen["predicted"] == seen["expected"]  # the registered model, loaded back by alias
    assert seen["version"] == seen["by_alias"] == "1"
    assert seen["found"] == [run_id]
    assert seen["ordered"] == [0.9, 0.7, None]  # the child run has no accuracy: last
    assert seen["children"] == [seen["child_id"]]
    assert seen["history"] == [[s, 1.0 / (s + 1)] for s in range(5)]
    assert seen["lr_points"] == 2500
    assert seen["artifacts"] == ["config.json", "notes.txt", "sub"]
    assert seen["sub"] == ["sub/notes.txt"]
    assert seen["config"] == {"a": 1}
    assert seen["tags"] == {"team": "growth", "stage": "dev"}  # "scratch" was deleted
    assert seen["inputs"] == [["train", "training"]]
    assert seen["experiments"] == ["churn-mlflow"]
    assert seen["delete_run"] == "FEATURE_DISABLED"  # loopml keeps every run

    # what MLflow logged is loopml's: runs, artifacts, the model version, the audit trail
    as_alice = clean_env(
        LOOPML_SERVER=team["url"], LOOPML_TOKEN=team["alice"], LOOPML_PROJECT="churn-mlflow"
    )
    runs = json.loads(loopml(as_alice, tmp_path, "runs", "list", "--json").stdout)["runs"]
    assert {r["name"] for r in runs} >= {"first", "second"}
    shown = json.loads(loopml(as_alice, tmp_path, "runs", "show", run_id, "--json").stdout)
    assert shown["run"]["params"] == {"C": "0.5", "penalty": "l2", "solver": "lbfgs"}
    assert shown["run"]["metrics"]["loss"] == pytest.approx(0.2)
    assert shown["run"]["tags"]["team"] == "growth"
    paths = {a["path"] for a in shown["artifacts"]}
    assert {"notes.txt", "sub/notes.txt", "config.json"} <= paths
    assert any(p.endswith("/MLmodel") for p in paths)
    listed = loopml(as_alice, tmp_path, "models", "versions", "churn-model", "--json")
    (version,) = json.loads(listed.stdout)
    assert (version["run_id"], version["flavor"], version["aliases"]) == (
        run_id, "mlflow", ["champion"],
    )  # fmt: skip
    log = loopml(as_alice, tmp_path, "audit", "log", "--entity", "model:churn-mlflow/churn-model",
                 "--json")  # fmt: skip
    loading = "import loopml; loopml.models.load('churn-model@champion')"
    refused = subprocess.run([sys.executable, "-c", loading], env=as_alice, capture_output=True,
                             text=True, timeout=120)  # fmt: skip
    assert refused.returncode == 1
    assert "as MLflow wrote it" in refused.stderr, refused.stderr[-2000:]
    events = json.loads(log.stdout)
    assert {e["action"] for e in events} >= {"model.version_registered", "model.alias_set"}
    assert {e["actor"] for e in events} == {"alice"}


# -- refusals, in MLflow's shape ----------------------------------------------------------------


@pytest.fixture
def served(make_settings: Callable[..., Settings]) -> Iterator[LiveServer]:
    """A team server with alice (admin), vera (viewer on default) and ed (editor on other)."""
    with live_server(make_settings()) as server:
        auth = server.workspace.auth
        auth.create_user("vera")
        auth.grant("default", "vera", "viewer")
        auth.create_user("ed")
        server.workspace.stores.grants.create_project(
            "other", _event("project.created", "project:other")
        )
        auth.grant("other", "ed", "editor")
        yield server


def _event(action: str, entity: str) -> Any:
    from loopml.domain.records import EventDraft

    return EventDraft(action, entity, "alice")


def _client(server: LiveServer, user: str | None = None) -> httpx.Client:
    token = server.token if user is None else server.workspace.auth.create_token(user)[0]
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"})


def _refused(answer: httpx.Response, status: int, code: str, *named: str) -> None:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["error_code"] == code, body
    for part in named:
        assert part in body["message"], body


def _run(http: httpx.Client, experiment: str = "0") -> str:
    made = http.post(f"{API}/runs/create", json={"experiment_id": experiment, "run_name": "r"})
    assert made.status_code == 200, made.text
    return str(made.json()["run"]["info"]["run_id"])


def test_requests_loopml_does_not_take_are_refused_in_mlflows_shape(served: LiveServer) -> None:
    with _client(served) as http:
        run_id = _run(http)
        _refused(http.get(f"{API}/nonexistent"), 404, "ENDPOINT_NOT_FOUND", "/nonexistent")
        _refused(http.post(f"{API}/runs/delete", json={"run_id": run_id}), 400,
                 "FEATURE_DISABLED", "keeps every run")  # fmt: skip
        _refused(http.post(f"{API}/runs/delete-tag", json={"run_id": run_id, "key": "x"}), 404,
                 "RESOURCE_DOES_NOT_EXIST", "no tag 'x'")  # fmt: skip
        search = {"experiment_ids": ["0"], "filter": "tags.team LIKE 'gr%'"}
        _refused(http.post(f"{API}/runs/search", json=search), 400, "INVALID_PARAMETER_VALUE",
                 "LIKE")  # fmt: skip
        nan = {"run_id": run_id, "key": "loss", "value": "NaN", "timestamp": 1, "step": 0}
        _refused(http.post(f"{API}/runs/log-metric", json=nan), 400, "INVALID_PARAMETER_VALUE",
                 "finite")  # fmt: skip
        _refused(http.post(f"{API}/runs/log-metric", content=b"{not json"), 400,
                 "INVALID_PARAMETER_VALUE")  # fmt: skip
        _refused(http.get(f"{API}/runs/get", params={"run_id": "f" * 32}), 404,
                 "RESOURCE_DOES_NOT_EXIST")  # fmt: skip
        _refused(http.get(f"{API}/experiments/get-by-name", params={"experiment_name": "a b"}),
                 404, "RESOURCE_DOES_NOT_EXIST")  # fmt: skip
        _refused(http.post(f"{API}/experiments/create", json={"name": "/Users/me/x"}), 400,
                 "INVALID_PARAMETER_VALUE", "project name")  # fmt: skip
        forged = {"experiment_ids": ["0"], "page_token": "forged"}
        _refused(http.post(f"{API}/runs/search", json=forged), 400, "INVALID_PARAMETER_VALUE",
                 "page token")  # fmt: skip
        big = {"run_id": run_id, "metrics": [{"key": "m", "value": 1, "timestamp": 1, "step": i}
               for i in range(1001)]}  # fmt: skip
        _refused(http.post(f"{API}/runs/log-batch", json=big), 400, "INVALID_PARAMETER_VALUE")
        assert served.workspace.tracking.store.metric_history(run_id, "m") == []


def test_tokens_roles_and_projects_hold_on_mlflows_routes(served: LiveServer) -> None:
    with _client(served) as alice, _client(served, "vera") as vera, _client(served, "ed") as ed:
        default_run, other_run = _run(alice), _run(alice, "other")
        before = served.workspace.audit.head().seq
        anonymous = httpx.get(f"{served.url}{API}/runs/get", params={"run_id": default_run})
        _refused(anonymous, 401, "UNAUTHENTICATED")
        point = {"key": "loss", "value": 1.0, "timestamp": 1, "step": 0}
        _refused(vera.post(f"{API}/runs/log-metric", json={"run_id": default_run, **point}), 403,
                 "PERMISSION_DENIED")  # fmt: skip
        _refused(vera.post(f"{API}/runs/create", json={"experiment_id": "0"}), 403,
                 "PERMISSION_DENIED")  # fmt: skip
        _refused(ed.post(f"{API}/experiments/create", json={"name": "mine"}), 403,
                 "PERMISSION_DENIED", "admin")  # fmt: skip
        # another project's run, experiment and artifacts are answered as missing ones
        _refused(vera.get(f"{API}/runs/get", params={"run_id": other_run}), 404,
                 "RESOURCE_DOES_NOT_EXIST")  # fmt: skip
        _refused(vera.get(f"{API}/experiments/get", params={"experiment_id": "other"}), 404,
                 "RESOURCE_DOES_NOT_EXIST")  # fmt: skip
        _refused(ed.put(f"/api/2.0/mlflow-artifacts/artifacts/0/{default_run}/artifacts/x.txt",
                 content=b"x"), 404, "RESOURCE_DOES_NOT_EXIST")  # fmt: skip
        _refused(ed.put(f"/api/2.0/mlflow-artifacts/artifacts/0/{other_run}/artifacts/x.txt",
                 content=b"x"), 404, "RESOURCE_DOES_NOT_EXIST")  # the wrong experiment  # fmt: skip
        experiments = vera.post(f"{API}/experiments/search", json={}).json()["experiments"]
        assert [e["name"] for e in experiments] == ["Default"]
        assert served.workspace.audit.head().seq == before  # not one change got through
        assert served.workspace.tracking.store.list_artifacts(other_run) == []


@pytest.mark.parametrize(
    "path",
    ["..%2F..%2Fescape.txt", "sub/..%2F..%2F..%2Fescape.txt", "%2Fetc%2Fpasswd", "a/../../b"],
)
def test_an_artifact_path_that_climbs_out_of_its_run_is_refused(
    served: LiveServer, path: str
) -> None:
    with _client(served) as http:
        run_id = _run(http)
        url = f"{served.url}/api/2.0/mlflow-artifacts/artifacts/0/{run_id}/artifacts/{path}"
        answer = http.put(httpx.URL(url), content=b"payload")
        assert answer.status_code in (400, 404), answer.text
        assert answer.json()["error_code"] in ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST")
        assert served.workspace.tracking.store.list_artifacts(run_id) == []


def test_a_foreign_host_is_refused_in_mlflows_shape(served: LiveServer) -> None:
    with _client(served) as http:
        answer = http.get(f"{API}/experiments/search", headers={"Host": "evil.example:80"})
        _refused(answer, 400, "INVALID_PARAMETER_VALUE", "evil.example")


def test_a_model_version_names_only_files_of_a_run_its_caller_may_read(
    served: LiveServer,
) -> None:
    with _client(served) as alice, _client(served, "ed") as ed:
        default_run = _run(alice)
        source = f"runs:/{default_run}/model"
        made = ed.post(f"{API}/model-versions/create", json={"name": "stolen", "source": source})
        _refused(made, 404, "RESOURCE_DOES_NOT_EXIST")
        logged = {"name": "stolen", "source": "models:/m-" + default_run + "0" * 8}
        _refused(ed.post(f"{API}/model-versions/create", json=logged), 404,
                 "RESOURCE_DOES_NOT_EXIST")  # fmt: skip
        assert served.workspace.stores.models.list_models("other") == []
