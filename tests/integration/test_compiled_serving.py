"""A compiled version served by `loopml serve`: /predict takes the same column-named rows as
the source version and answers the same predictions."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from served import serving, settings_in

from loopml.bootstrap import open_workspace

pytest.importorskip("skl2onnx")


def test_the_compiled_version_answers_what_the_source_answers(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import HistGradientBoostingClassifier

    home = tmp_path_factory.mktemp("compiled") / "ws"
    settings = settings_in(home)
    features, labels = load_breast_cancer(return_X_y=True, as_frame=True)
    model = HistGradientBoostingClassifier(random_state=0).fit(features, labels)
    ws = open_workspace(settings)
    try:
        home.mkdir(parents=True, exist_ok=True)
        features.assign(target=labels).to_parquet(home / "cancer.parquet")
        data = ws.data.add(home / "cancer.parquet", name="cancer", project="default").version
        with ws.tracking.start_run(project="default", name="train") as run:
            run.use_dataset(data)
            ws.registry.register(
                model, "cancer", project="default", run_id=run.id, input_example=features.head()
            )
        compiled = ws.compiler.compile("cancer/1", project="default").version
    finally:
        ws.close()
    assert compiled.ref == "cancer/2"

    rows = features.iloc[::7]  # 82 rows, each sent by its column names
    records = rows.sample(frac=1.0, axis=1, random_state=0).to_dict("records")  # any key order
    with serving(settings, "cancer/2") as server:
        response = httpx.post(
            f"{server.url}/predict", json={"rows": records, "probabilities": True}, timeout=30
        )
        metadata = httpx.get(f"{server.url}/v2/models/cancer", timeout=30).json()
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["predictions"] == model.predict(rows).tolist()
    np.testing.assert_allclose(body["probabilities"], model.predict_proba(rows), atol=1e-5)
    assert metadata["platform"] == "loopml-onnx"
    assert metadata["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 30]}]
