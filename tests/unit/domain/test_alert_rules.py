"""Alert conditions: what people write, what holds when."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopml.domain.alerts import (
    MAX_RESOLVE_AFTER,
    AlertAction,
    check_resolution,
    decide,
    parse_condition,
    value_of,
)
from loopml.domain.records import AlertRule
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


# -- hysteresis: how an open alert resolves ----------------------------------------------------

NOW = 100 * MINUTE
BOTH_SIDES = ["<", "<=", ">", ">=", "==", "!="]


def _rule(condition: str, after: int = 1, margin: float = 0.0) -> AlertRule:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return AlertRule(1, "default", "m", condition, ("log:",), 0, at, after, margin)


def _old_behaviour(rule: AlertRule, runs: list[tuple[int, dict[str, float]]], open_: bool) -> str:
    """What evaluation did before hysteresis: fire when it holds and nothing is open, resolve
    when it does not hold and something is."""
    holds = parse_condition(rule.condition).holds(runs, NOW)
    if open_:
        return "stay" if holds else "resolve"
    return "fire" if holds else "quiet"


def test_an_alert_resolves_only_after_n_clear_runs_in_a_row() -> None:
    rule = _rule("accuracy < 0.8", after=3)
    history = _runs(0.85, 0.9, 0.7, field="accuracy")  # two clear runs since it fired
    stays = decide(rule, history, NOW, "firing")
    assert stays.action is AlertAction.STAY
    assert "on the last 2 run(s); it resolves after 3 in a row" in stays.reason
    resolves = decide(rule, _runs(0.85, 0.9, 0.81, 0.7, field="accuracy"), NOW, "firing")
    assert resolves.action is AlertAction.RESOLVE
    assert resolves.value == 0.85
    interrupted = _runs(0.85, 0.7, 0.9, 0.9, field="accuracy")
    assert decide(rule, interrupted, NOW, "acknowledged").action is AlertAction.STAY


def test_a_margin_asks_the_value_to_clear_the_threshold_by_that_much() -> None:
    rule = _rule("accuracy < 0.8", margin=0.05)
    near = decide(rule, _runs(0.82, field="accuracy"), NOW, "firing")
    assert near.action is AlertAction.STAY
    assert (
        near.reason
        == "accuracy < 0.8 no longer holds, but accuracy >= 0.85 not yet (accuracy 0.82)"
    )
    assert decide(rule, _runs(0.85, field="accuracy"), NOW, "firing").action is AlertAction.RESOLVE
    above = _rule("drift_share > 0.3", margin=0.1)
    assert decide(above, _runs(0.25), NOW, "firing").action is AlertAction.STAY
    assert decide(above, _runs(0.2), NOW, "firing").action is AlertAction.RESOLVE


def test_a_closed_rule_fires_when_its_condition_holds_whatever_its_resolution() -> None:
    rule = _rule("drift_share > 0.3 for 2 windows", after=5, margin=0.2)
    assert decide(rule, _runs(0.5, 0.4), NOW, None).action is AlertAction.FIRE
    assert decide(rule, _runs(0.5, 0.1), NOW, None).action is AlertAction.QUIET


_values = st.lists(
    st.one_of(st.none(), st.floats(0, 1, allow_nan=False).map(lambda v: round(v, 2))),
    min_size=0,
    max_size=12,
)


def _history(values: list[float | None]) -> list[tuple[int, dict[str, float]]]:
    return [
        (NOW - i * MINUTE, {} if v is None else {"drift_share": v}) for i, v in enumerate(values)
    ]


@given(
    values=_values,
    op=st.sampled_from(BOTH_SIDES),
    threshold=st.sampled_from([0.0, 0.3, 0.5]),
    windows=st.integers(1, 3),
    open_=st.booleans(),
)
def test_with_one_run_and_no_margin_it_is_exactly_the_old_behaviour(
    values: list[float | None], op: str, threshold: float, windows: int, open_: bool
) -> None:
    rule = _rule(f"drift_share {op} {threshold} for {windows} windows")
    runs = _history(values)
    decision = decide(rule, runs, NOW, "firing" if open_ else None)
    assert decision.action.value == _old_behaviour(rule, runs, open_)


@given(
    values=_values,
    op=st.sampled_from(["<", "<=", ">", ">="]),
    threshold=st.sampled_from([0.1, 0.3, 0.5]),
    after=st.integers(1, 6),
    margin=st.sampled_from([0.0, 0.05, 0.2]),
    duration=st.booleans(),
)
def test_an_alert_never_resolves_on_a_run_where_its_condition_holds(
    *,
    values: list[float | None],
    op: str,
    threshold: float,
    after: int,
    margin: float,
    duration: bool,
) -> None:
    span = "for 3m" if duration else "for 1 window"
    rule = _rule(f"drift_share {op} {threshold} {span}", after, margin)
    runs = _history(values)
    decision = decide(rule, runs, NOW, "firing")
    holds = parse_condition(rule.condition).holds(runs, NOW)
    if holds:
        assert decision.action is AlertAction.STAY
    if decision.action is AlertAction.RESOLVE:
        assert len(runs) >= after or (after == 1 and not runs)  # it saw that many runs clear
        strict = _rule(rule.condition, after, 0.0)
        assert decide(strict, runs, NOW, "firing").action is AlertAction.RESOLVE  # margin only adds


@given(values=_values, after=st.integers(1, 6), margin=st.sampled_from([0.0, 0.05, 0.2]))
def test_more_runs_or_a_wider_margin_never_resolve_sooner(
    values: list[float | None], after: int, margin: float
) -> None:
    runs = _history(values)
    loose = decide(_rule("drift_share > 0.3", after, margin), runs, NOW, "firing")
    for stricter in (_rule("drift_share > 0.3", after + 1, margin),
                     _rule("drift_share > 0.3", after, margin + 0.1)):  # fmt: skip
        if decide(stricter, runs, NOW, "firing").action is AlertAction.RESOLVE:
            assert loose.action is AlertAction.RESOLVE


@pytest.mark.parametrize(
    ("condition", "after", "margin", "words"),
    [
        ("accuracy < 0.8", 0, 0.0, "resolve_after is 0"),
        ("accuracy < 0.8", -2, 0.0, "resolve_after is -2"),
        ("accuracy < 0.8", MAX_RESOLVE_AFTER + 1, 0.0, "1 to 50 runs"),
        ("accuracy < 0.8", 2.5, 0.0, "resolve_after is 2.5"),
        ("accuracy < 0.8", 1, -0.1, "resolve_margin is -0.1"),
        ("accuracy < 0.8", 1, float("nan"), "resolve_margin is nan"),
        ("rows == 0", 1, 0.5, "no side to clear"),
    ],
)
def test_a_resolution_a_rule_cannot_use_is_refused_with_the_fix(
    condition: str, after: float, margin: float, words: str
) -> None:
    with pytest.raises(InvalidInput, match=words) as refused:
        check_resolution(condition, after, margin)  # type: ignore[arg-type]
    assert "--resolve" in refused.value.hint or "condition" in refused.value.hint


def test_the_defaults_and_sound_resolutions_pass() -> None:
    check_resolution("accuracy < 0.8", 1, 0.0)
    check_resolution("drift_share > 0.3 for 2 windows", MAX_RESOLVE_AFTER, 0.05)
    check_resolution("rows == 0", 3, 0.0)
