"""The live loop's sound decisions on a real workspace: a challenger the holdout cannot tell
apart from the champion waits, its holdout grows with the labelled rows served since, and it is
decided on them; a performance drop retrains, and while it stays true the loop retries only
after enough new labelled rows."""

from __future__ import annotations

from test_loops import make_loop, serve, world  # noqa: F401  (world is the fixture)

from loopml import loops
from loopml.bootstrap import Workspace
from loopml.monitoring.monitors import read_dataset


def test_an_undecided_challenger_waits_and_is_decided_on_the_rows_served_since(
    world: Workspace,  # noqa: F811
) -> None:
    # +0.19 better on 300 rows: its 90% bounds straddle a +0.16 margin; on 1,300 they do not
    make_loop(world, triggers=["manual"], promote_if=["accuracy >= champion.accuracy + 0.16"])
    serve(world, 3)
    waiting = loops.run("churn-loop", force=True, workspace=world).run
    assert waiting is not None
    assert waiting.status == "waiting", waiting.reason
    assert "not sure it clears +0.16" in waiting.reason
    assert "rows would tell" in waiting.reason
    assert world.registry.resolve("churn@champion", "default").version == 1

    quiet = loops.run("churn-loop", workspace=world)  # no new labelled rows: nothing to judge
    assert quiet.decided is not None
    assert quiet.decided.status == "waiting"
    assert quiet.run is None

    serve(world, 3, seed=5)  # 1,000 more labelled rows, served by the champion
    decided = loops.run("churn-loop", workspace=world).decided
    assert decided is not None
    assert decided.id == waiting.id
    assert decided.status == "promoted", decided.reason
    assert "on 1,300 rows" in decided.reason
    assert decided.holdout_data != waiting.holdout_data
    grown = world.data.resolve(str(decided.holdout_data), "default", record=False)
    assert read_dataset(world, grown).num_rows == 1_300
    assert world.registry.resolve("churn@champion", "default").version == 2
    assert decided.watch["state"] == "watching"


def test_a_performance_drop_retrains_and_retries_only_after_new_labelled_rows(
    world: Workspace,  # noqa: F811
) -> None:
    make_loop(
        world,
        triggers=["performance"],
        promote_if=["accuracy >= champion.accuracy + 1"],  # never: each retraining is held
        retry_rows=800,
    )
    serve(world, 0, seed=9)  # the world the champion knows: no drop
    calm = loops.run("churn-loop", workspace=world)
    assert calm.triggered is None
    serve(world, 3)  # the changed world: the champion's accuracy falls well below its own
    first = loops.run("churn-loop", workspace=world)
    assert first.triggered is not None
    assert first.triggered.startswith("performance: accuracy")
    assert "on its first 800" in first.triggered  # its own baseline: what it first served
    assert "surely below by more than 0.02" in first.triggered
    assert first.run is not None
    assert first.run.status == "held"
    again = loops.run("churn-loop", workspace=world)  # still dropped, but nothing new
    assert again.triggered is None
    assert "retrying after 800 new labelled rows (0 so far)" in again.notes[0]
    serve(world, 3, seed=6)  # 1,000 new labelled rows: the held retraining is tried again
    retried = loops.run("churn-loop", workspace=world)
    assert retried.triggered is not None
    assert retried.run is not None
    assert len(world.loops.history("churn-loop", "default")) == 2


def _serve_with_probabilities(
    ws: Workspace, index: int, seed: int, *, unsure_only: bool = False, at_us: int | None = None
) -> None:
    """Serve period `index` logging the champion's class probabilities (no labels); with
    `unsure_only`, only the rows it is least sure about (top probability under 0.65)."""
    import json

    from loopml.adapters.prediction_log import PredictionRecord, now_us
    from loopml.bootstrap import prediction_log_writer
    from loopml.cli.demo import period

    version = ws.registry.resolve("churn@champion", "default")
    model = ws.registry.load(version.ref, project="default")
    inputs = period(index, 6_000 if unsure_only else 1_000, seed).drop(columns=["churned"])
    proba = model.raw.predict_proba(inputs)
    if unsure_only:
        keep = proba.max(axis=1) < 0.65
        inputs, proba = inputs[keep].reset_index(drop=True), proba[keep]
    outputs = model.predict(inputs)
    start = now_us()
    writer = prediction_log_writer(ws.settings)
    writer.append(
        [
            PredictionRecord(
                f"p{start}-{i}",
                start + i,
                "churn-prod",
                "churn",
                version.version,
                json.dumps(row),
                json.dumps(int(out)),
                900,
                "",
                False,
                json.dumps(list(p)),
                event_time_us=None if at_us is None else at_us + i,
            )
            for i, (row, out, p) in enumerate(
                zip(inputs.to_dict("records"), outputs, proba.tolist(), strict=True)
            )
        ]
    )
    writer.flush()


def test_the_label_free_estimate_triggers_before_any_label_comes(
    world: Workspace,  # noqa: F811
) -> None:
    from loopml.adapters.prediction_log import now_us
    from loopml.monitoring import monitors

    make_loop(
        world,
        triggers=["estimate"],
        train_data="reference + all labelled predictions",
        promote_if=["accuracy >= champion.accuracy + 1"],
    )
    serve(world, 1)  # labelled rows to retrain on, when the time comes
    _serve_with_probabilities(world, 0, seed=3)  # the world it knows, and is sure about
    monitors.run("churn-drift", workspace=world)
    calm = loops.run("churn-loop", workspace=world)
    assert calm.triggered is None
    later = now_us() + 2 * 3_600_000_000  # a window of its own, two hours on
    _serve_with_probabilities(world, 4, seed=4, unsure_only=True, at_us=later)
    monitors.run("churn-drift", now_us=later + 60_000_000, workspace=world)
    fired = loops.run("churn-loop", now_us=later + 60_000_000, workspace=world)
    assert fired.triggered is not None, fired.notes
    assert fired.triggered.startswith("estimate: estimated accuracy")
    assert "surely below by more than 0.02" in fired.triggered
    assert fired.run is not None  # retrained (and held: the rule asks the impossible)
    assert fired.run.status == "held"


def test_a_recipe_weighted_by_rows_weighs_each_row_by_the_labelled_rows_served_after_it(
    world: Workspace,  # noqa: F811
) -> None:
    import numpy as np
    import pytest

    from loopml.adapters.prediction_log import now_us
    from loopml.loops import data as loop_data

    recipe = "reference + all labelled predictions, half-life 250 rows"
    make_loop(world, triggers=["manual"], train_data=recipe)
    serve(world, 3)  # 1,000 labelled rows: the newest 300 are the holdout, 700 train
    spec = world.loops.get("churn-loop", "default").spec
    built = loop_data.build(world, spec, 1, "churned", now_us=now_us(), champion_until_us=0)
    train = read_dataset(world, world.data.resolve(built.train_ref, "default", record=False))
    weights = train.to_pandas()["sample_weight"].to_numpy()
    assert built.holdout_rows == 300
    served = weights[-700:]  # the base rows come first
    assert np.sort(served)[::-1] == pytest.approx(0.5 ** (np.arange(700) / 250))
    assert np.all(weights[:-700] == pytest.approx(served.min()))


def test_a_capped_holdout_keeps_only_the_newest_rows_and_trains_on_the_rest(
    world: Workspace,  # noqa: F811
) -> None:
    import dataclasses

    from loopml.adapters.prediction_log import now_us
    from loopml.domain.loops import LoopSpec
    from loopml.loops import data as loop_data

    make_loop(
        world,
        triggers=["manual"],
        train_data="reference + all labelled predictions",
        holdout_rows=120,
    )
    serve(world, 3)  # 1,000 labelled rows: a 30% share alone would hold out 300
    capped = world.loops.get("churn-loop", "default").spec
    assert capped.holdout_rows == 120
    now = now_us()

    def rows(spec: LoopSpec, run_id: int) -> tuple[set[tuple[object, ...]], int]:
        built = loop_data.build(world, spec, run_id, "churned", now_us=now, champion_until_us=0)
        held = read_dataset(world, world.data.resolve(built.holdout_ref, "default", record=False))
        train = read_dataset(world, world.data.resolve(built.train_ref, "default", record=False))
        return set(held.to_pandas().itertuples(index=False)), train.num_rows

    held, trained = rows(capped, 1)
    whole_held, whole_trained = rows(dataclasses.replace(capped, holdout_rows=None), 2)
    assert len(held) == 120
    assert trained - whole_trained == 180  # the 180 rows no longer held out train instead
    assert held <= whole_held  # the newest 120 of the newest 300
