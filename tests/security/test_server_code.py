"""What a team server runs for its users stays its operator's choice: a model it loads (to
explain a prediction in the UI, to judge a retraining) is built only from classes of packages
it trusts, so a registrant cannot have it call a function; and a retrain loop's pipeline comes
only from the operator's folders, never from outputs another run's writer put in the cache."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from loopml.adapters.flavors.sklearn import SERVER_MODEL_TYPES, check_recorded_types
from loopml.bootstrap import Workspace, open_workspace
from loopml.domain.loops import LoopSpec
from loopml.errors import Forbidden
from loopml.services.pipelines import CACHED_FROM_TAG
from loopml.settings import Settings
from loopml.steps import check_pipeline_source
from loopml.testing.team_server import live_server

# -- models ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "recorded",
    [
        ["builtins.eval"],
        ["os.system"],
        ["sklearn.datasets.dump_svmlight_file"],  # a function of a trusted package
        ["sklearn.no_such_module.Thing"],
        ["numpy.memmap"],  # a class, of a package the operator did not name
        ["sklearn.tree._tree.Tree", "builtins.exec"],
    ],
    ids=repr,
)
def test_a_server_refuses_recorded_types_that_are_not_trusted_classes(
    recorded: list[str],
) -> None:
    with pytest.raises(Forbidden, match="--trust-model-type"):
        check_recorded_types({"trusted_types": recorded}, SERVER_MODEL_TYPES)


def test_the_classes_common_models_record_are_trusted() -> None:
    check_recorded_types(
        {
            "trusted_types": [
                "sklearn.tree._tree.Tree",
                "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
            ]
        },
        SERVER_MODEL_TYPES,
    )
    check_recorded_types({"trusted_types": ["numpy.memmap"]}, ("sklearn.", "numpy."))


def _fitted() -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=5).fit([[0.0], [1.0]] * 10, [0, 1] * 10)


@pytest.fixture
def serving_settings(make_settings: Callable[..., Settings]) -> Settings:
    """A team server's workspace settings (what `loopml server` sets)."""
    return make_settings(model_types=SERVER_MODEL_TYPES)


def test_a_server_loads_a_scikit_learn_model_and_refuses_one_recording_a_function(
    serving_settings: Settings,
) -> None:
    ws = open_workspace(serving_settings)
    try:
        ws.registry.register(_fitted(), "churn", project="default")
        loaded = ws.registry.load("churn/1", project="default")
        assert len(loaded.predict([[0.0], [1.0]])) == 2
        recorded = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
        _record_types("churn", [recorded, "builtins.eval"], serving_settings)
        with pytest.raises(Forbidden, match=r"builtins\.eval"):
            ws.registry.load("churn/1", project="default")
    finally:
        ws.close()
    own = open_workspace(replace(serving_settings, model_types=None))
    try:  # the registrant's own workspace trusts what was recorded (and skops checks the file)
        own.registry.load("churn/1", project="default")
    finally:
        own.close()


def test_a_server_never_unpickles_a_python_flavor_model(serving_settings: Settings) -> None:
    ws = open_workspace(serving_settings)
    try:
        ws.registry.register(_Pickled(), "odd", project="default")
        with pytest.raises(Forbidden, match="only models whose flavor loads no code"):
            ws.registry.load("odd/1", project="default", trust=True)
    finally:
        ws.close()


class _Pickled:
    def predict(self, rows: Any) -> list[int]:
        return [0] * len(rows)


def _record_types(model: str, types: list[str], settings: Settings) -> None:
    """Rewrite the recorded types of `model` 1, as a registrant's client could send them."""
    engine = sa.create_engine(settings.db_url)
    with engine.begin() as conn:
        info = conn.execute(sa.text("SELECT flavor_info FROM model_versions")).scalar_one()
        info = json.loads(info) if isinstance(info, str) else info
        info["trusted_types"] = types
        conn.execute(sa.text("UPDATE model_versions SET flavor_info = :i"), {"i": json.dumps(info)})
    engine.dispose()


# -- retrain loop pipelines ------------------------------------------------------------------

PIPELINE = textwrap.dedent(
    """
    from pathlib import Path
    from loopml import pipeline, step

    Path({marker!r}).write_text("imported")

    @step
    def count(dataset: str) -> dict[str, float]:
        return {{"n": float(len(dataset))}}

    @pipeline
    def train(dataset: str = "churn@1"):
        return count(dataset)
    """
)


def _pipeline_file(folder: Path, marker: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "pipeline.py"
    path.write_text(PIPELINE.format(marker=str(marker)))
    return path


def test_a_pipeline_must_be_a_file_inside_the_servers_folders(tmp_path: Path) -> None:
    root, elsewhere = tmp_path / "pipelines", tmp_path / "elsewhere"
    inside = _pipeline_file(root, tmp_path / "m1")
    outside = _pipeline_file(elsewhere, tmp_path / "m2")
    (root / "link.py").symlink_to(outside)
    roots = (str(root),)
    assert check_pipeline_source(f"{inside}:train", roots) == inside.resolve()
    for ref in (
        f"{outside}:train",
        f"{root}/../elsewhere/pipeline.py:train",
        f"{root / 'link.py'}:train",  # a link inside that leads outside
        "os:path",  # a module: whatever is installed on the server
        f"{inside}:train".replace(".py", ""),
    ):
        with pytest.raises(Forbidden, match="--pipelines"):
            check_pipeline_source(ref, roots)
    with pytest.raises(Forbidden, match="none given"):
        check_pipeline_source(f"{inside}:train", ())
    assert not (tmp_path / "m1").exists()  # checking imports nothing
    assert not (tmp_path / "m2").exists()


def _loop_body(pipeline: str) -> dict[str, Any]:
    from dataclasses import asdict

    spec = LoopSpec(
        "default", "churn-loop", "churn-prod", pipeline, ("every:7d",),
        "reference + labelled predictions of the last 30d", ("f1 >= champion.f1",),
    )  # fmt: skip
    return {"spec": asdict(spec), "event": {"action": "loop.created", "entity": "loop:default/x"}}


def test_the_server_saves_only_loops_whose_pipeline_is_in_its_folders(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    root = tmp_path / "pipelines"
    inside = _pipeline_file(root, tmp_path / "marker")
    outside = _pipeline_file(tmp_path / "elsewhere", tmp_path / "marker")
    with live_server(make_settings(pipeline_roots=(str(root),))) as server:
        headers = {"Authorization": f"Bearer {server.token}"}
        url = f"{server.url}/api/v1/projects/default/loops"
        refused = httpx.post(url, headers=headers, json=_loop_body(f"{outside}:train"))
        assert refused.status_code == 403, refused.text
        assert "--pipelines" in refused.json()["hint"]
        assert server.workspace.loops.list("default") == []
        saved = httpx.post(url, headers=headers, json=_loop_body(f"{inside}:train"))
        assert saved.status_code == 200, saved.text
    assert not (tmp_path / "marker").exists()


@pytest.fixture
def server_ws(make_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[Workspace]:
    ws = open_workspace(make_settings(pipeline_roots=(str(tmp_path / "pipelines"),)))
    yield ws
    ws.close()


def _spec(pipeline: Path) -> LoopSpec:
    return LoopSpec(
        "default", "churn-loop", "churn-prod", f"{pipeline}:train", ("every:7d",),
        "reference + labelled predictions of the last 30d", ("f1 >= champion.f1",),
    )  # fmt: skip


def test_a_loop_saved_behind_the_servers_back_never_runs_code_from_elsewhere(
    server_ws: Workspace, tmp_path: Path
) -> None:
    from loopml.loops.retraining import train_challenger

    outside = _pipeline_file(tmp_path / "elsewhere", tmp_path / "marker")
    with pytest.raises(Forbidden, match="outside this server's pipeline folders"):
        train_challenger(server_ws, _spec(outside), "churn", "churn@1")
    assert not (tmp_path / "marker").exists()


def test_a_servers_retraining_never_reads_cached_step_outputs(
    server_ws: Workspace, tmp_path: Path
) -> None:
    """A cache entry is a record an editor can write, pointing at bytes they uploaded (a
    pickle, for a value of no other kind): the server's own runs never read one."""
    from loopml.loops.retraining import train_challenger

    inside = _pipeline_file(tmp_path / "pipelines", tmp_path / "marker")
    server_ws.registry.register(_fitted(), "churn", project="default")  # the champion's model
    for _ in range(2):
        run_id, _, failure = train_challenger(server_ws, _spec(inside), "churn", "churn@1")
        assert failure is None
        children = server_ws.pipeline_records.children_of(run_id)
        assert children
        for child in children:
            assert CACHED_FROM_TAG not in server_ws.tracking.get(child).tags
    laptop = open_workspace(replace(server_ws.settings, pipeline_roots=None))
    try:  # where the user runs it, an unchanged rerun is served from the cache
        for _ in range(2):
            run_id, _, _ = train_challenger(laptop, _spec(inside), "churn", "churn@1")
        tags = [laptop.tracking.get(c).tags for c in laptop.pipeline_records.children_of(run_id)]
        assert any(CACHED_FROM_TAG in t for t in tags)
    finally:
        laptop.close()
