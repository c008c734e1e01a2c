"""The README's examples run as written, in an empty folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quickstart_runs_and_leaves_a_registered_champion(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "dataset churn@1" in done.stdout
    assert "model churn/1" in done.stdout
    again = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    assert "dataset churn@1" in again.stdout  # the same bytes are the same version
    assert "model churn/2" in again.stdout
    listing = subprocess.run(
        [sys.executable, "-m", "loopml", "models", "versions", "churn"],
        cwd=tmp_path / "loopml-quickstart",
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "champion" in listing.stdout


@pytest.mark.parametrize("flavor", ["xgboost", "lightgbm", "onnx"])
def test_each_flavor_example_registers_its_model_in_its_own_format(
    flavor: str, tmp_path: Path
) -> None:
    """examples/flavors/*_churn.py: the model is registered under its flavor (not pickled as a
    python model) and loads back answering as the trained one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    script = ROOT / "examples" / "flavors" / f"{flavor}_churn.py"
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"as {flavor};" in done.stdout
    if flavor == "onnx":  # float32 in the graph: a row on the 0.5 line may flip
        assert float(done.stdout.rsplit("same answers: ", 1)[1].split("%")[0]) >= 99.0
    else:
        assert "same=True" in done.stdout
    assert (tmp_path / ".loopml").is_dir()
