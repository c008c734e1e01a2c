"""Gate rules: every accepted form, the thresholds they set, and how a bad rule is refused."""

from __future__ import annotations

import operator

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from loopml.domain.gate_rules import KNOWN_METRICS, Rule, apply_rule, parse_rule
from loopml.errors import InvalidInput

_OPERATORS = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
}


def test_known_metrics_are_those_of_monitoring_latency_and_parity() -> None:
    assert sorted(KNOWN_METRICS) == [
        "accuracy",
        "f1",
        "latency_p50_ms",
        "latency_p99_ms",
        "log_loss",
        "mae",
        "parity_max_abs_diff",
        "precision",
        "r2",
        "recall",
        "rmse",
        "roc_auc",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("accuracy >= 0.8", ("accuracy", ">=", 0.8, None, 1.0, 0.0)),
        ("r2>-0.5", ("r2", ">", -0.5, None, 1.0, 0.0)),
        ("log_loss < 1e-3", ("log_loss", "<", 0.001, None, 1.0, 0.0)),
        ("f1 == 1", ("f1", "==", 1.0, None, 1.0, 0.0)),
        ("f1 >= champion.f1", ("f1", ">=", None, "f1", 1.0, 0.0)),
        ("f1 >= champion.f1 + 0.005", ("f1", ">=", None, "f1", 1.0, 0.005)),
        ("recall >= champion.recall - 0.01", ("recall", ">=", None, "recall", 1.0, -0.01)),
        (
            "latency_p99_ms <= 1.2 * champion.latency_p99_ms",
            ("latency_p99_ms", "<=", None, "latency_p99_ms", 1.2, 0.0),
        ),
        (
            "latency_p50_ms <= champion.latency_p50_ms * 1.2",
            ("latency_p50_ms", "<=", None, "latency_p50_ms", 1.2, 0.0),
        ),
        ("rmse <= 1.1 * champion.rmse + 2", ("rmse", "<=", None, "rmse", 1.1, 2.0)),
        ("mae<=champion.mae*2-.5", ("mae", "<=", None, "mae", 2.0, -0.5)),
        ("  f1   >=   champion.f1   +   0.005  ", ("f1", ">=", None, "f1", 1.0, 0.005)),
    ],
    ids=[
        "number",
        "negative-number",
        "exponent",
        "equals",
        "champion",
        "champion-plus-margin",
        "champion-minus-margin",
        "factor-before",
        "factor-after",
        "factor-and-margin",
        "no-spaces",
        "extra-spaces",
    ],
)
def test_every_accepted_form_parses_into_its_fields(
    text: str, expected: tuple[object, ...]
) -> None:
    rule = parse_rule(text)
    assert (rule.metric, rule.op, rule.number, rule.against, rule.factor, rule.margin) == expected
    assert rule.text == text.strip()


@pytest.mark.parametrize(
    ("text", "detail", "held"),
    [
        ("accuracy >= 0.8", "0.9000 >= 0.8000", True),
        ("f1 >= champion.f1 + 0.05", "0.7000 >= 0.7500", False),
        ("f1 >= champion.f1 - 0.05", "0.7000 >= 0.6500", True),
        ("latency_p99_ms <= 1.2 * champion.latency_p99_ms", "11.0000 <= 12.0000", True),
        ("latency_p99_ms <= champion.latency_p99_ms * 1.05", "11.0000 <= 10.5000", False),
        ("latency_p50_ms < 2 * champion.latency_p50_ms + 1", "4.0000 < 5.0000", True),
    ],
)
def test_rules_hold_against_factor_times_champion_plus_margin(
    text: str, detail: str, held: bool
) -> None:
    candidate = {"accuracy": 0.9, "f1": 0.7, "latency_p50_ms": 4.0, "latency_p99_ms": 11.0}
    champion = {"accuracy": 0.85, "f1": 0.7, "latency_p50_ms": 2.0, "latency_p99_ms": 10.0}
    assert apply_rule(parse_rule(text), candidate, champion) == (text, held, detail)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "f1 >=",
        "f1 => 0.5",
        "f1 is better",
        "champion.f1 >= f1",
        "f1 >= 2 * 3",
        "f1 >= champion.f1 +",
        "f1 >= 2 * champion.f1 * 3",
        "f1 >= -2 * champion.f1",
        "f1 >= champion.f1 + champion.f1",
        ">= 0.5",
    ],
)
def test_unreadable_rules_say_how_to_write_one(text: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_rule(text)
    assert f"The gate rule {text!r} cannot be read." == refused.value.message
    assert "METRIC OP THRESHOLD" in refused.value.hint
    assert '"f1 >= champion.f1 + 0.005"' in refused.value.hint
    assert '"latency_p99_ms <= 1.2 * champion.latency_p99_ms"' in refused.value.hint


@pytest.mark.parametrize(
    ("text", "unknown"),
    [
        ("wow >= 0.1", "wow"),
        ("f1 >= champion.f2", "f2"),
        ("latency_ms <= 1.2 * champion.latency_p99_ms", "latency_ms"),
    ],
)
def test_unknown_metrics_on_either_side_are_refused_with_the_known_ones(
    text: str, unknown: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_rule(text)
    assert text in refused.value.message
    assert f"{unknown!r}, which is not measured" in refused.value.message
    assert refused.value.hint == f"Use one of: {', '.join(sorted(KNOWN_METRICS))}."


def test_a_known_metric_the_gate_did_not_measure_is_refused() -> None:
    rule = parse_rule("roc_auc >= champion.roc_auc")
    with pytest.raises(InvalidInput, match="'roc_auc', which is not measured here"):
        apply_rule(rule, {"rmse": 1.0}, {"rmse": 1.0, "roc_auc": 0.5})
    with pytest.raises(InvalidInput, match=r"champion\.roc_auc, which is not measured") as refused:
        apply_rule(rule, {"roc_auc": 0.5}, {"rmse": 1.0})
    assert refused.value.hint == "Use one of: rmse."


def test_a_champion_rule_without_a_champion_is_refused() -> None:
    with pytest.raises(InvalidInput, match="compares with the champion, but there is none"):
        apply_rule(parse_rule("f1 >= champion.f1"), {"f1": 0.9}, None)


def test_a_number_rule_needs_no_champion() -> None:
    assert apply_rule(parse_rule("f1 >= 0.5"), {"f1": 0.9}, None) == (
        "f1 >= 0.5",
        True,
        "0.9000 >= 0.5000",
    )


_finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@given(
    op=st.sampled_from(sorted(_OPERATORS)),
    factor=st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False),
    margin=_finite,
    champion=_finite,
    value=_finite,
    factor_first=st.booleans(),
)
@example(op="<", factor=1.0, margin=-0.0, champion=-0.0, value=0.0, factor_first=True)
def test_threshold_is_factor_times_champion_plus_margin_and_held_follows_the_operator(
    *, op: str, factor: float, margin: float, champion: float, value: float, factor_first: bool
) -> None:
    margin += 0.0  # -0.0 + 0.0 is 0.0: a margin of -0.0 cannot be written; it reads back as +0.0
    scaled = f"{factor!r} * champion.rmse" if factor_first else f"champion.rmse * {factor!r}"
    text = f"rmse {op} {scaled} {'-' if margin < 0 else '+'} {abs(margin)!r}"
    rule = parse_rule(text)
    assert rule == Rule(text, "rmse", op, None, "rmse", factor, margin)
    threshold = factor * champion + margin
    _, held, detail = apply_rule(rule, {"rmse": value}, {"rmse": champion})
    assert held == _OPERATORS[op](value, threshold)
    assert detail == f"{value:.4f} {op} {threshold:.4f}"
