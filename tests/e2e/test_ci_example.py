"""`examples/ci/model.yml` run for real: each `run:` step of the workflow, in order, with bash,
in an empty folder, as on a push to main (the install step is this checkout's environment)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from loopml.bootstrap import open_workspace
from loopml.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _run_workflow(folder: Path) -> Path:
    workflow = yaml.safe_load((ROOT / "examples" / "ci" / "model.yml").read_text())
    (steps,) = [job["steps"] for job in workflow["jobs"].values()]
    summary = folder / "summary.md"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    env |= {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
        "GITHUB_STEP_SUMMARY": str(summary),
        "LOOPML_ACTOR": "ci",
    }
    for step in steps:
        if "run" not in step or step.get("name") == "Install loopml":
            continue
        condition = step.get("if", "")
        assert condition in ("", "always()", "github.ref == 'refs/heads/main'"), condition
        done = subprocess.run(
            ["bash", "-e", "-c", step["run"]],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, f"{step['name']}: {done.stdout}{done.stderr}"
    return summary


@pytest.mark.slow
def test_the_ci_workflow_versions_trains_gates_and_promotes(tmp_path: Path) -> None:
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    summary = _run_workflow(tmp_path)
    assert "## Gate churn latest on churn-holdout@latest: PASSED" in summary.read_text()
    ws = open_workspace(Settings.from_env(env={}, cwd=tmp_path))
    try:
        assert ws.registry.resolve("churn@champion", "default").version == 1
    finally:
        ws.close()
    summary.unlink()
    second = _run_workflow(tmp_path)  # the next push: the champion exists, the rule compares
    assert "`f1 >= champion.f1` | pass" in second.read_text()
