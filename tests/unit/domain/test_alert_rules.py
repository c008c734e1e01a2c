"""Alert conditions and channels: what people write, what holds when."""

from __future__ import annotations

import pytest

from loopml.domain.alerts import parse_channel, parse_condition, value_of
from loopml.errors import InvalidInput

MINUTE = 60_000_000


def _runs(*values: float, field: str = "drift_share") -> list[tuple[int, dict[str, float]]]:
    """Runs newest first, one a minute apart, ending at minute 100."""
    return [(100 * MINUTE - i * MINUTE, {field: v}) for i, v in enumerate(values)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("drift_share > 0.3", ("drift_share", ">", 0.3, 1, None)),
        ("drift_share>0.3 for 3 windows", ("drift_share", ">", 0.3, 3, None)),
        ("rows < 100 for 30m", ("rows", "<", 100.0, 1, 1800)),
        ("feature.tenure.wasserstein >= 0.2", ("feature.tenure.wasserstein", ">=", 0.2, 1, None)),
        ("f1 < 0.80 for 1 window", ("f1", "<", 0.8, 1, None)),
    ],
)
def test_conditions_parse(text: str, expected: tuple[object, ...]) -> None:
    c = parse_condition(text)
    assert (c.field, c.op, c.threshold, c.windows, c.seconds) == expected
    assert parse_condition(c.text()) == c


@pytest.mark.parametrize("text", ["", "drift_share", "drift_share > high", "> 0.3", "x ~ 1"])
def test_unreadable_conditions_say_how_to_write_one(text: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_condition(text)
    assert "FIELD OP NUMBER" in refused.value.hint


def test_for_n_windows_needs_all_of_the_latest_n() -> None:
    condition = parse_condition("drift_share > 0.3 for 3 windows")
    assert condition.holds(_runs(0.5, 0.4, 0.35, 0.0), 100 * MINUTE)
    assert not condition.holds(_runs(0.5, 0.1, 0.35), 100 * MINUTE)
    assert not condition.holds(_runs(0.5, 0.4), 100 * MINUTE)  # too few runs yet


def test_for_a_duration_needs_every_run_in_it_and_at_least_one() -> None:
    condition = parse_condition("drift_share > 0.3 for 2m")
    assert condition.holds(_runs(0.5, 0.4, 0.35, 0.0), 100 * MINUTE)  # minutes 100, 99, 98
    assert not condition.holds(_runs(0.5, 0.1), 100 * MINUTE)
    assert not condition.holds(_runs(0.5), 110 * MINUTE)  # nothing in the last 2 minutes


def test_a_missing_field_never_holds() -> None:
    assert not parse_condition("f1 < 0.8").holds(_runs(0.5), 100 * MINUTE)


def test_feature_fields_come_from_the_report() -> None:
    report = {
        "features": [
            {"name": "tenure", "drifted": True, "statistics": {"wasserstein": 0.4}},
            {"name": "plan.type", "drifted": False, "statistics": {"psi": 0.01}},
        ]
    }
    assert value_of(report, "feature.tenure.wasserstein") == 0.4
    assert value_of(report, "feature.tenure.drifted") == 1.0
    assert value_of(report, "feature.plan.type.psi") == 0.01
    assert value_of(report, "feature.nope.psi") is None


@pytest.mark.parametrize(
    "text", ["log:", "slack:https://hooks.example/T/B/X", "webhook:http://127.0.0.1:9000/hook"]
)
def test_channels_parse(text: str) -> None:
    assert parse_channel(text).text() == text
