"""`loopml models compile` run the way a user runs it: a scikit-learn model trained on a dataset
version becomes an ONNX version of the same model, with its parity printed and kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("skl2onnx")


def test_compile_prints_the_new_version_and_its_parity(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import HistGradientBoostingClassifier

    from loopml.bootstrap import open_workspace

    features, labels = load_breast_cancer(return_X_y=True, as_frame=True)
    features.assign(target=labels).to_csv(tmp_path / "cancer.csv", index=False)
    assert cli("data", "add", "cancer.csv", "--name", "cancer")[0] == 0
    model = HistGradientBoostingClassifier(random_state=0).fit(features, labels)
    workspace = open_workspace()
    with workspace.tracking.start_run(project="default", name="train") as run:
        run.use_dataset(workspace.data.resolve("cancer@1", "default"))
        workspace.registry.register(
            model, "cancer", project="default", run_id=run.id, input_example=features.head()
        )
    workspace.close()

    code, out, err = cli("models", "compile", "cancer/1", "--to", "onnx", "--json")

    assert code == 0, err
    answer = json.loads(out)
    assert answer["version"]["version"] == 2
    assert answer["version"]["flavor"] == "onnx"
    assert answer["source"] == "cancer/1"
    assert answer["checked_on"] == "dataset cancer@1"
    parity = answer["parity"]
    assert (parity["passed"], parity["rows"], parity["mismatches"]) == (True, 569, 0)
    assert parity["proba_max_abs_diff"] < 1e-5

    code, out, _ = cli("models", "show", "cancer/2")
    assert code == 0
    assert "compiled from  cancer/1 (sklearn)" in out
    assert "parity passed on 569 rows" in out

    code, _, err = cli("models", "compile", "cancer/1", "--tolerance", "0")
    assert code != 0
    assert "over the tolerance 0" in err
    assert "--tolerance" in err
    code, out, _ = cli("models", "versions", "cancer", "--json")
    assert sorted(v["version"] for v in json.loads(out)) == [1, 2]
