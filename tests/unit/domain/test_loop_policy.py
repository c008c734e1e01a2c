"""Retrain policies as people write them: triggers and the training data recipe."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopml.domain.loop_triggers import Trigger, parse_trigger
from loopml.domain.loops import LoopSpec, check_spec
from loopml.domain.train_data import parse_train_data
from loopml.errors import InvalidInput


def test_triggers_read_as_written() -> None:
    assert parse_trigger("alert:churn-drift") == Trigger("alert", "churn-drift")
    assert parse_trigger(" every:7d ") == Trigger("every", every_s=7 * 86_400)
    assert parse_trigger("every:1h30m").text() == "every:1h30m"
    assert parse_trigger("manual") == Trigger("manual")


@pytest.mark.parametrize("text", ["", "alert:", "every:", "every:soon", "cron:* * *", "manual:x"])
def test_unreadable_triggers_say_what_is_accepted(text: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_trigger(text)
    assert "every:DURATION" in raised.value.hint or "duration" in raised.value.message


def test_the_training_data_recipe_has_bases_and_one_recent_window() -> None:
    recipe = parse_train_data("reference + labelled predictions of the last 30d")
    assert (recipe.bases, recipe.window_s) == (("reference",), 30 * 86_400)
    both = parse_train_data("churn@12 +reference+ Labelled  rows of the last 7d + churn@12")
    assert both.bases == ("churn@12", "reference")  # repeated bases count once
    assert both.text() == "churn@12 + reference + labelled predictions of the last 7d"
    assert parse_train_data("labelled predictions of the last 1h").bases == ()


def test_a_half_life_is_a_duration_or_a_number_of_rows() -> None:
    by_rows = parse_train_data("reference + all labelled predictions, half-life 4,000 rows")
    assert (by_rows.half_life_rows, by_rows.half_life_s, by_rows.kind) == (
        4000,
        None,
        "recency-weighted",
    )
    assert by_rows.text() == "reference + all labelled predictions, half-life 4000 rows"
    assert parse_train_data(by_rows.text()) == by_rows
    by_time = parse_train_data("reference + all labelled predictions, half-life 14d")
    assert (by_time.half_life_s, by_time.half_life_rows) == (14 * 86_400, None)
    assert not parse_train_data("reference + all labelled predictions").weighted


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("all labelled predictions, half-life 0 rows", "'0 rows' is not a positive number"),
        ("all labelled predictions, half-life many rows", "not a duration"),
        ("reference", "exactly one"),
        ("labelled rows of the last 1d + labelled rows of the last 2d", "exactly one"),
        ("reference + all the rows", "'all the rows' cannot be read"),
        ("churn@two + labelled rows of the last 1d", "'churn@two' cannot be read"),
        ("labelled rows of the last while", "not a duration"),
    ],
)
def test_a_bad_recipe_names_the_term(text: str, words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        parse_train_data(text)


@given(
    days=st.integers(min_value=1, max_value=999),
    bases=st.lists(st.sampled_from(["reference", "churn@3", "extra@latest", "t"]), max_size=3),
)
def test_a_recipe_written_back_reads_the_same(days: int, bases: list[str]) -> None:
    recipe = parse_train_data(" + ".join([*bases, f"labelled predictions of the last {days}d"]))
    assert parse_train_data(recipe.text()) == recipe


SPEC = LoopSpec(
    "default",
    "churn-loop",
    "churn-prod",
    "pipeline.py:churn",
    ("alert:churn-drift",),
    "reference + labelled predictions of the last 30d",
    ("f1 >= champion.f1 + 0.005",),
)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"name": "bad name"}, "Loop name"),
        ({"pipeline": "pipeline.py"}, "names no pipeline function"),
        ({"triggers": ()}, "no trigger"),
        ({"promote_if": ()}, "no promotion rule"),
        ({"mode": "sometimes"}, "Unknown mode"),
        ({"holdout": 0.95}, "outside 0.05..0.8"),
        ({"min_rows": 3}, "below 10"),
        ({"holdout_rows": 5}, "--holdout-rows 5 is below 10"),
        ({"rollback_margin": -0.1}, "negative"),
    ],
)
def test_a_spec_with_a_bad_part_is_refused_by_name(change: dict[str, object], words: str) -> None:
    assert check_spec(SPEC) is SPEC
    with pytest.raises(InvalidInput, match=words):
        check_spec(dataclasses.replace(SPEC, **change))  # type: ignore[arg-type]


def test_a_spec_survives_its_stored_form_and_names_its_watch_metric() -> None:
    spec = dataclasses.replace(
        SPEC, params={"lr": 0.1}, guards=("auc >= 0.7",), mode="approve", holdout_rows=500
    )
    assert LoopSpec.from_dict("default", "churn-loop", spec.to_dict()) == spec
    assert spec.watch_metric == "f1"
