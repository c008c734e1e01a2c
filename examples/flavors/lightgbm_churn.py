"""A LightGBM model through loopml: trained in a run with autologging (its per-round
evaluation metrics logged), registered in LightGBM's text model format (never pickled), loaded back.

Run: python examples/flavors/xgboost_churn.py [FOLDER]   (needs loopml[lightgbm]; works in
FOLDER, default ./loopml-lightgbm/). Then serve it over REST and V2 gRPC:

    cd FOLDER && loopml serve churn-lgbm@champion --port 8080 --grpc-port 8081
    curl -s localhost:8080/explain -d '{"rows": [{"tenure": 3, "monthly": 80, "support_calls": 4}]}'
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import churn_rows

import loopml


def main() -> None:
    from lightgbm import LGBMClassifier

    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "loopml-lightgbm")
    folder.mkdir(parents=True, exist_ok=True)
    os.chdir(folder)
    x, y = churn_rows()
    x_train, x_test, y_train, y_test = x[:1500], x[1500:], y[:1500], y[1500:]
    with loopml.start_run(name="lightgbm", autolog=True) as run:
        model = LGBMClassifier(n_estimators=50, num_leaves=15, verbose=-1)
        model.fit(x_train, y_train, eval_set=[(x_test, y_test)])
        version = loopml.models.register(
            run, model, name="churn-lgbm", input_example=x_train.head()
        )
    loopml.models.set_alias("churn-lgbm", "champion", version.version)
    loaded = loopml.models.load("churn-lgbm@champion")
    same = (loaded.predict(x_test) == model.predict(x_test)).all()
    print(f"registered churn-lgbm/{version.version} as {version.flavor}; reloaded: same={same}")


if __name__ == "__main__":
    main()
