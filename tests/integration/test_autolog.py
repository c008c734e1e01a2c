"""Autologging through the public API on a real (SQLite) workspace: what a fit inside a run
records, what it leaves alone, and that logging never breaks a fit."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import pandas as pd
import pytest
import xgboost
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

import loopml
from loopml.autologging import AutologWarning, frame_digest, logged_model
from loopml.autologging.records import flat_params
from loopml.bootstrap import default_workspace, reset_default_workspace
from loopml.domain.records import Run

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def workspace_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process-wide workspace in this test's folder; autologging off before and after."""
    monkeypatch.setenv("LOOPML_HOME", str(tmp_path / ".loopml"))
    for name in ("LOOPML_DB_URL", "LOOPML_ARTIFACTS", "LOOPML_SERVER", "LOOPML_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    reset_default_workspace()
    loopml.autolog(disable=True)
    yield
    loopml.autolog(disable=True)
    reset_default_workspace()


def _data(rows: int = 200, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(rows, 4)), columns=["tenure", "monthly", "calls", "age"])
    y = (x["tenure"] + rng.normal(scale=0.5, size=rows) > 0).astype(int)
    return x, y


def _artifacts(run_id: str) -> list[str]:
    return sorted(a.path for a in default_workspace().tracking.artifacts(run_id))


def _steps(run_id: str, key: str) -> list[int]:
    return [p.step for p in default_workspace().tracking.metric_history(run_id, key)]


def _values(run_id: str, key: str) -> list[float]:
    return [p.value for p in default_workspace().tracking.metric_history(run_id, key)]


def _logged_nothing(run: Run) -> bool:
    return (
        not run.params
        and not run.metrics
        and _artifacts(run.id) == ["environment/requirements.txt"]
    )


def test_a_pipeline_fit_logs_params_training_score_digest_and_a_loadable_model() -> None:
    x, y = _data()
    loopml.autolog()
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=0.5))
    with loopml.start_run(name="pipe") as active:
        assert pipeline.fit(x, y) is pipeline
    run = loopml.get_run(active.id)
    assert run.params["logisticregression__C"] == "0.5"
    assert run.params["logisticregression"] == "LogisticRegression"
    assert run.params["standardscaler__with_mean"] == "True"
    assert run.metrics["training_score"] == pytest.approx(pipeline.score(x, y))
    assert run.tags["loopml.autolog.input_digest"] == frame_digest(x)
    assert run.tags["loopml.autolog.input_shape"] == "200x4"
    model = logged_model(active.id)
    np.testing.assert_array_equal(model.predict(x), pipeline.predict(x))


def test_only_the_outermost_fit_is_logged() -> None:
    """The fits a Pipeline or a search makes inside its own are not logged apart."""
    x, y = _data()
    loopml.autolog()
    pipeline = make_pipeline(StandardScaler(), LogisticRegression())
    search = GridSearchCV(pipeline, {"logisticregression__C": [0.1, 1.0]}, cv=2)
    with loopml.start_run(name="search") as active:
        search.fit(x, y)
    run = loopml.get_run(active.id)
    assert run.params["cv"] == "2"
    assert not [k for k in [*run.params, *run.metrics] if k.startswith("fit2.")]
    assert [p for p in _artifacts(active.id) if not p.startswith("environment/")] == [
        "model/loopml-model.json",
        "model/model.skops",
    ]


def test_a_second_fit_in_the_same_run_is_logged_under_its_own_names() -> None:
    x, y = _data()
    loopml.autolog()
    with loopml.start_run(name="two") as active:
        LogisticRegression(C=0.1).fit(x, y)
        LogisticRegression(C=2.0).fit(x, y)
    run = loopml.get_run(active.id)
    assert (run.params["C"], run.params["fit2.C"]) == ("0.1", "2.0")
    assert "fit2.training_score" in run.metrics
    assert "fit2/model/loopml-model.json" in _artifacts(active.id)


def test_nothing_is_logged_when_autologging_is_off() -> None:
    x, y = _data()
    with loopml.start_run(name="off") as active:
        make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    assert _logged_nothing(loopml.get_run(active.id))


def test_a_fit_outside_a_run_logs_nothing_and_creates_no_run() -> None:
    x, y = _data()
    loopml.autolog()
    model = LogisticRegression().fit(x, y)
    assert model.predict(x).shape == (200,)
    assert loopml.active_run() is None
    assert loopml.search_runs().total == 0


def test_start_run_autolog_true_logs_that_run_only() -> None:
    x, y = _data()
    with loopml.start_run(name="on", autolog=True) as logged:
        LogisticRegression().fit(x, y)
    with loopml.start_run(name="after") as later:
        LogisticRegression().fit(x, y)
    assert loopml.get_run(logged.id).params["C"] == "1.0"
    assert _logged_nothing(loopml.get_run(later.id))


def test_start_run_autolog_false_opts_out_of_process_wide_autologging() -> None:
    x, y = _data()
    loopml.autolog()
    with loopml.start_run(name="quiet", autolog=False) as quiet:
        LogisticRegression().fit(x, y)
    assert _logged_nothing(loopml.get_run(quiet.id))


def _fits() -> dict[str, Any]:
    return {
        "LogisticRegression.fit": vars(LogisticRegression)["fit"],
        "Pipeline.fit": vars(Pipeline)["fit"],
        "XGBClassifier.fit": vars(xgboost.XGBClassifier)["fit"],
        "LGBMModel.fit": vars(lightgbm.LGBMModel)["fit"],
        "xgboost.train": xgboost.train,
        "xgboost.training.train": xgboost.training.train,
        "lightgbm.train": lightgbm.train,
        "lightgbm.engine.train": lightgbm.engine.train,
        "BaseEstimator.__init_subclass__": vars(BaseEstimator).get("__init_subclass__"),
    }


def test_autolog_patches_once_and_disable_restores_every_original() -> None:
    originals = _fits()
    loopml.autolog()
    loopml.autolog()  # idempotent: wrapped once
    patched = _fits()
    assert all(patched[name] is not originals[name] for name in originals)
    assert patched["LogisticRegression.fit"].loopml_original is originals["LogisticRegression.fit"]
    loopml.autolog(disable=True)
    assert _fits() == originals
    x, y = _data()
    with loopml.start_run(name="after-disable") as active:
        LogisticRegression().fit(x, y)
    assert _logged_nothing(loopml.get_run(active.id))


def test_an_estimator_class_defined_after_autolog_is_logged() -> None:
    loopml.autolog()

    class Threshold(BaseEstimator):
        def __init__(self, cut: float = 0.0) -> None:
            self.cut = cut

        def fit(self, x: Any, y: Any = None) -> Threshold:
            self.fitted_ = True
            return self

        def predict(self, x: Any) -> Any:
            return (np.asarray(x)[:, 0] > self.cut).astype(int)

    x, y = _data()
    with loopml.start_run(name="own") as active:
        Threshold(cut=0.25).fit(x, y)
    assert loopml.get_run(active.id).params == {"cut": "0.25"}


def test_a_failing_save_warns_and_the_fit_still_returns_the_fitted_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: Any) -> Any:
        raise OSError("disk full")

    monkeypatch.setattr("loopml.autologging.records.FlavorModelSerializer.save", broken)
    x, y = _data()
    loopml.autolog()
    model = LogisticRegression()
    with (
        loopml.start_run(name="broken-save") as active,
        pytest.warns(AutologWarning, match="disk full"),
    ):
        assert model.fit(x, y) is model
    assert model.predict(x).shape == (200,)
    assert loopml.get_run(active.id).params["C"] == "1.0"  # the rest is still logged


def test_a_failing_store_warns_as_the_run_ends_and_the_fit_went_through() -> None:
    x, y = _data()
    loopml.autolog()
    store = default_workspace().tracking.store

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("database gone")

    model = LogisticRegression()
    real, store.log_batch = store.log_batch, refuse  # type: ignore[method-assign]
    try:
        with (
            pytest.warns(AutologWarning, match="database gone"),
            loopml.start_run(name="broken-store"),
        ):
            fitted = model.fit(x, y)
    finally:
        store.log_batch = real  # type: ignore[method-assign]
    assert fitted is model
    assert model.predict(x).shape == (200,)


def test_a_param_the_user_logged_differently_warns_and_the_metrics_still_land() -> None:
    x, y = _data()
    loopml.autolog()
    active = loopml.start_run(name="clash")
    active.log_param("C", "mine")
    LogisticRegression(C=2.0).fit(x, y)
    with pytest.warns(AutologWarning, match="already"):
        active.end()  # the background write, and its warning, land as the run ends
    run = loopml.get_run(active.id)
    assert run.params["C"] == "mine"
    assert "training_score" in run.metrics


def test_xgboost_evaluation_metrics_are_logged_per_round_in_one_write() -> None:
    x, y = _data()
    store = default_workspace().tracking.store
    writes: list[int] = []
    real = store.log_batch

    def counted(*args: Any, **kwargs: Any) -> None:
        writes.append(len(kwargs.get("metrics", ())))
        real(*args, **kwargs)

    store.log_batch = counted  # type: ignore[method-assign]
    loopml.autolog()
    model = xgboost.XGBClassifier(n_estimators=30, max_depth=2, eval_metric=["logloss", "error"])
    with loopml.start_run(name="xgb") as active:
        assert model.fit(x, y, eval_set=[(x, y)], verbose=False) is model
    run = loopml.get_run(active.id)
    expected = model.evals_result_["validation_0"]["logloss"]
    assert _steps(active.id, "validation_0-logloss") == list(range(30))
    assert _values(active.id, "validation_0-logloss") == pytest.approx(expected)
    assert _steps(active.id, "validation_0-error") == list(range(30))
    assert (run.params["n_estimators"], run.params["max_depth"]) == ("30", "2")
    assert writes == [60]  # every point of the fit, in one write
    assert "model/loopml-model.json" in _artifacts(active.id)
    assert len([p for p in _artifacts(active.id) if p.startswith("model/")]) >= 2


def test_xgboost_train_logs_params_rounds_and_metrics_and_fills_the_callers_dict() -> None:
    x, y = _data()
    train = xgboost.DMatrix(x, label=y)
    given: dict[str, Any] = {}
    loopml.autolog()
    with loopml.start_run(name="xgb-train") as active:
        booster = xgboost.train(
            {"max_depth": 2, "eval_metric": "logloss"},
            train,
            num_boost_round=8,
            evals=[(train, "train")],
            evals_result=given,
            verbose_eval=False,
        )
    assert booster.num_boosted_rounds() == 8
    run = loopml.get_run(active.id)
    assert (run.params["max_depth"], run.params["num_boost_round"]) == ("2", "8")
    assert _steps(active.id, "train-logloss") == list(range(8))
    assert _values(active.id, "train-logloss") == pytest.approx(given["train"]["logloss"])
    assert "model/loopml-model.json" in _artifacts(active.id)


def test_lightgbm_estimator_and_train_log_metrics_per_round() -> None:
    x, y = _data()
    loopml.autolog()
    model = lightgbm.LGBMClassifier(n_estimators=6, num_leaves=4, verbose=-1)
    with loopml.start_run(name="lgbm") as active:
        assert model.fit(x, y, eval_X=(x,), eval_y=(y,)) is model
        dataset = lightgbm.Dataset(x, label=y)
        booster = lightgbm.train(
            {"objective": "binary", "num_leaves": 4, "verbose": -1},
            dataset,
            num_boost_round=5,
            valid_sets=[dataset],
            valid_names=["train"],
        )
    assert booster.current_iteration() == 5
    run = loopml.get_run(active.id)
    assert run.params["n_estimators"] == "6"
    assert _steps(active.id, "valid_0-binary_logloss") == list(range(6))
    assert (run.params["fit2.num_leaves"], run.params["fit2.num_boost_round"]) == ("4", "5")
    assert _steps(active.id, "fit2.train-binary_logloss") == list(range(5))
    assert run.tags["fit2.loopml.autolog.input_digest"] == frame_digest(x)  # the Dataset's frame
    paths = _artifacts(active.id)
    assert {"model/loopml-model.json", "fit2/model/loopml-model.json"} <= set(paths)


def test_params_are_text_and_huge_values_are_left_out() -> None:
    params = {"C": 0.5, "clf": LogisticRegression(), "small": np.arange(3), "big": np.arange(999)}
    assert flat_params(params) == {"C": "0.5", "clf": "LogisticRegression", "small": "[0 1 2]"}


def test_the_digest_follows_the_data_not_the_object() -> None:
    x, _ = _data()
    same = x.copy()
    same.index = same.index + 1000  # a fit does not see the index
    changed = x.copy()
    changed.iloc[3, 2] += 1e-9
    renamed = x.rename(columns={"age": "years"})
    assert frame_digest(same) == frame_digest(x)
    assert len({frame_digest(x), frame_digest(changed), frame_digest(renamed)}) == 3
    text = pd.DataFrame({"plan": ["basic", "pro", None], "n": [1, 2, 3]})
    assert frame_digest(text) == frame_digest(text.copy())
    assert frame_digest(text) != frame_digest(text.assign(plan=["basic", "pro", "plus"]))


def test_a_logged_model_can_be_registered_from_its_run() -> None:
    x, y = _data()
    with loopml.start_run(name="to-register", autolog=True) as active:
        LogisticRegression().fit(x, y)
    version = loopml.models.register(active.id, logged_model(active.id).raw, name="churn")
    assert (version.version, version.run_id) == (1, active.id)


def test_autolog_imports_no_library_and_patches_one_imported_later(tmp_path: Path) -> None:
    """Turning autologging on imports nothing; scikit-learn, xgboost and lightgbm imported
    afterwards are patched as their imports end."""
    code = """
import sys, loopml
loopml.autolog()
assert not {"sklearn", "xgboost", "lightgbm", "pandas"} & set(sys.modules), sorted(sys.modules)
from sklearn.linear_model import LinearRegression
with loopml.start_run(name="late") as run:
    LinearRegression().fit([[0.0], [1.0], [2.0]], [0.0, 1.0, 2.0])
import lightgbm, xgboost
assert xgboost.train.loopml_original is xgboost.training.train.loopml_original
assert lightgbm.train.loopml_original is lightgbm.engine.train.loopml_original
print(loopml.get_run(run.id).params["fit_intercept"])
"""
    env = {"LOOPML_HOME": str(tmp_path / "late"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "True"
