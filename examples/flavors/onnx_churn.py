"""An ONNX model through loopml: a scikit-learn model exported with skl2onnx (any exporter
works: PyTorch's `torch.onnx.export`, tf2onnx for Keras), registered as its graph, served by
onnxruntime (no pickle, no Python code in the file); and the same model compiled by loopml
from its scikit-learn version, with a recorded parity check.

Run: python examples/flavors/onnx_churn.py [FOLDER]   (needs loopml[compile]; works in FOLDER,
default ./loopml-onnx/). Then:

    cd FOLDER && loopml serve churn-onnx@champion --port 8080 --grpc-port 8081
    curl -s localhost:8080/v2/models/churn-onnx      # the graph's tensors, dtypes and shapes
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import churn_rows

import loopml


def main() -> None:
    import numpy as np
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "loopml-onnx")
    folder.mkdir(parents=True, exist_ok=True)
    os.chdir(folder)
    x, y = churn_rows()
    x_train, x_test, y_train = x[:1500], x[1500:], y[:1500]
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(x_train, y_train)
    graph = to_onnx(
        model, x_train.to_numpy(np.float32)[:1], name="churn", options={"zipmap": False}
    )
    with loopml.start_run(name="onnx") as run:
        version = loopml.models.register(
            run, graph, name="churn-onnx", input_example=x_train.head().astype(np.float32)
        )
    loopml.models.set_alias("churn-onnx", "champion", version.version)
    loaded = loopml.models.load("churn-onnx@champion")
    same = (loaded.predict(x_test) == model.predict(x_test)).mean()
    print(f"registered churn-onnx/{version.version} as {version.flavor}; same answers: {same:.1%}")


if __name__ == "__main__":
    main()
