"""The reference row of an explanation, read from a training profile."""

from __future__ import annotations

from loopml.serving.explain import reference_from_profile

PROFILE = {
    "columns": [
        {"name": "tenure", "stats": {"quantiles": {"p50": 37.0}}},
        {"name": "plan", "stats": {"top": {"basic": 770, "pro": 430}}},
        {"name": "note", "stats": {"vocabulary": {"billing": 512, "app": 498}}},
        {"name": "id", "stats": {}},
    ]
}


def test_every_kind_of_column_has_a_typical_value() -> None:
    inputs = [("tenure", "integer"), ("plan", "string"), ("note", "string")]
    assert reference_from_profile(PROFILE, inputs) == {
        "tenure": 37.0,
        "plan": "basic",
        "note": "billing",  # text: its most frequent token
    }


def test_a_column_the_profile_cannot_stand_for_gives_no_reference() -> None:
    assert reference_from_profile(PROFILE, [("tenure", "integer"), ("id", "string")]) is None
    assert reference_from_profile(None, [("tenure", "integer")]) is None
