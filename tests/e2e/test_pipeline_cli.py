"""`loopml pipeline ...`, `loopml runs reproduce` and `loopml lineage` as a user types them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = f"{ROOT / 'examples' / 'churn' / 'pipeline.py'}:churn"


@pytest.fixture
def churn_data(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import importlib.util

    spec = importlib.util.spec_from_file_location("churn_data", ROOT / "examples/churn/data.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.write_churn(tmp_path / "train.csv", rows=600)
    assert cli("data", "add", "train.csv", "--name", "churn")[0] == 0


@pytest.mark.usefixtures("churn_data")
def test_run_rerun_reproduce_and_lineage(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("pipeline", "run", EXAMPLE, "--param", "lr=0.05", "--json")
    assert code == 0, err
    first = json.loads(out)
    assert first["status"] == "finished"
    assert {s["status"] for s in first["steps"]} == {"ran"}
    code, out, _ = cli("pipeline", "run", EXAMPLE, "--param", "lr=0.05", "--json")
    assert {s["status"] for s in json.loads(out)["steps"]} == {"cached"}
    code, out, _ = cli("runs", "list", "--filter", "tags.`loopml.kind` = 'pipeline'", "--json")
    assert json.loads(out)["total"] == 2
    code, out, _ = cli("runs", "list", "--parent", first["run_id"], "--json")
    steps = json.loads(out)["runs"]
    assert {r["name"] for r in steps} == {
        "load",
        "validate",
        "split",
        "train",
        "evaluate",
        "register",
    }
    assert json.loads(cli("runs", "list", "--json")[1])["total"] == 2  # steps only with --all
    code, out, _ = cli("runs", "reproduce", first["run_id"], "--json")
    assert code == 0
    assert json.loads(out)["identical_metrics"] is True
    code, out, _ = cli("lineage", "churn/1")
    assert code == 0
    assert "churn@1" in out
    assert "train" in out
    code, out, _ = cli("lineage", "churn@1", "--json")
    assert "churn/1" in out


@pytest.mark.usefixtures("churn_data")
def test_sweep_reports_and_registers_the_best(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli(
        "pipeline",
        "sweep",
        EXAMPLE,
        "--grid",
        "lr=0.05,0.2",
        "--grid",
        "depth=2,3",
        "--param",
        "model_name=trial",
        "--best",
        "metrics.auc",
        "--register",
        "churn-best",
        "--json",
    )
    assert code == 0, err
    result = json.loads(out)
    assert len(result["trials"]) == 4
    aucs = {t["run_id"]: t["metrics"]["auc"] for t in result["trials"]}
    assert result["best_run_id"] == max(aucs, key=aucs.__getitem__)
    assert result["model_version"] == "churn-best/1"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--param", "lr=fast"], "expects float; got 'fast'"),
        (["--param", "nope=1"], "has no parameter 'nope'"),
        (["--param", "lr"], "is not NAME=VALUE"),
        (["--executor", "cluster"], "cluster"),
    ],
    ids=["wrong-type", "unknown-param", "not-a-pair", "unknown-executor"],
)
def test_bad_pipeline_arguments_are_one_clear_error(cli, args: list[str], words: str) -> None:  # type: ignore[no-untyped-def]
    code, _, err = cli("pipeline", "run", EXAMPLE, *args)
    assert code == 1
    assert words in err
    assert "Traceback" not in err


def test_a_pipeline_file_that_does_not_import(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "broken.py").write_text("import nowhere_to_be_found\n")
    code, _, err = cli("pipeline", "run", "broken.py:flow")
    assert code == 1
    assert "does not import: ModuleNotFoundError" in err


@pytest.mark.usefixtures("churn_data")
def test_a_failed_run_exits_1_names_the_step_and_resumes(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    flow = tmp_path / "flow.py"
    flow.write_text(
        "from pathlib import Path\nfrom loopml import pipeline, step\n\n"
        "@step\ndef one() -> int:\n    return 1\n\n"
        "@step\ndef two(x: int) -> dict:\n"
        "    if not Path('ok').exists():\n        raise ValueError('not ok yet')\n"
        "    return {'x': float(x)}\n\n"
        "@pipeline\ndef flow():\n    return two(one())\n"
    )
    code, out, _ = cli("pipeline", "run", "flow.py:flow", "--json")
    assert code == 1
    failed = json.loads(out)
    assert failed["error"] == "step 'two' failed: ValueError: not ok yet"
    (tmp_path / "ok").write_text("")
    code, out, _ = cli("pipeline", "resume", failed["run_id"], "--json")
    assert code == 0
    assert [s["status"] for s in json.loads(out)["steps"]] == ["cached", "ran"]
    code, out, _ = cli("runs", "list", "--filter", "attributes.status = 'running'", "--json")
    assert json.loads(out)["total"] == 0


@pytest.mark.usefixtures("churn_data")
def test_sweep_and_reproduce_make_no_second_version_of_the_same_model(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli(
        "pipeline", "sweep", EXAMPLE, "--grid", "lr=0.05,0.2", "--register", "churn"
    )
    assert code == 0, err
    best = out.split("best: ")[1].split()[0]
    number = out.split("churn version ")[1].split()[0]
    assert f"churn version {number} already holds this model (same files, same data); " in out
    assert "not registered again" in out
    code, out, err = cli("models", "versions", "churn", "--json")
    assert code == 0, err
    versions = json.loads(out)
    assert len(versions) == 2  # one per trial
    code, out, _ = cli("lineage", f"churn@{number}")
    assert code == 0
    assert "churn@1" in out  # through the trial, down to the data
    code, out, err = cli("runs", "reproduce", best)
    assert code == 0, err
    assert "metrics (accuracy, auc, f1): identical" in out
    assert "step outputs (6 steps): identical" in out
    assert (
        f"model churn: files identical to churn version {number}'s; churn version {number} "
        "already holds this model (same files, same data); not registered again"
    ) in out
    assert len(json.loads(cli("models", "versions", "churn", "--json")[1])) == 2
