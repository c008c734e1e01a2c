"""The gate's data checks as policy: the written form, the defaults, and the verdicts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopml.domain.data_checks import (
    NOT_BLOCKING,
    DataChecks,
    DataFacts,
    apply_checks,
    parse_checks,
)
from loopml.errors import InvalidInput

_SHARES = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
_COUNTS = st.integers(min_value=0, max_value=10**9)
_POLICIES = st.builds(
    DataChecks,
    max_missing=_SHARES,
    max_duplicates=st.none() | _SHARES,
    min_labelled=_COUNTS,
)
_FACTS = st.builds(
    DataFacts,
    rows=_COUNTS,
    missing_share=_SHARES,
    duplicate_share=_SHARES,
    worst_column=st.just("tenure"),
)


def _by_check(checks: DataChecks, facts: DataFacts) -> dict[str, tuple[bool, str]]:
    return {each.check: (each.ok, each.detail) for each in apply_checks(checks, facts)}


def test_the_defaults_block_missing_values_and_few_labels_but_only_report_duplicates() -> None:
    assert parse_checks([]) == DataChecks(max_missing=0.05, max_duplicates=None, min_labelled=30)
    real = DataFacts(rows=3_000, missing_share=0.0, duplicate_share=0.079)
    outcomes = apply_checks(DataChecks(), real)
    assert [each.row for each in outcomes] == [
        ("missing values in the inputs", True, "none, limit missing <= 0.05"),
        ("duplicate rows", True, f"7.9% of rows; {NOT_BLOCKING}"),
        ("labelled rows", True, "3,000, limit labelled >= 30"),
    ]
    assert NOT_BLOCKING == "reported, not blocking; set --check duplicates<=X to block"
    assert outcomes[1].threshold is None
    assert outcomes[1].value == pytest.approx(0.079)
    holey = DataFacts(rows=12, missing_share=0.2, duplicate_share=0.0, worst_column="plan")
    assert _by_check(DataChecks(), holey) == {
        "missing": (False, "worst plan: 20.0%, limit missing <= 0.05"),
        "duplicates": (True, f"0.0% of rows; {NOT_BLOCKING}"),
        "labelled": (False, "12, limit labelled >= 30"),
    }


def test_written_checks_set_the_thresholds_and_block_duplicates_when_asked() -> None:
    checks = parse_checks(["duplicates <= 0.05", " missing<=0.01 ", "Labelled >= 200"])
    assert checks == DataChecks(max_missing=0.01, max_duplicates=0.05, min_labelled=200)
    assert parse_checks(["labeled >= 1e3"]).min_labelled == 1_000
    facts = DataFacts(rows=3_000, missing_share=0.0, duplicate_share=0.079)
    duplicates = apply_checks(checks, facts)[1]
    assert (duplicates.ok, duplicates.threshold, duplicates.op) == (False, 0.05, "<=")
    assert duplicates.detail == "7.9% of rows, limit duplicates <= 0.05"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("dupes <= 0.1", "names 'dupes', which the gate does not check"),
        ("duplicates", "cannot be read"),
        ("duplicates <= 0.1 or so", "cannot be read"),
        ("duplicates < 0.1", "uses '<', but duplicates takes <="),
        ("labelled <= 200", "uses '<=', but labelled takes >="),
        ("duplicates <= 5", "sets a share of 5, outside 0..1"),
        ("missing <= -0.01", "sets a share of -0.01, outside 0..1"),
        ("missing <= nan", "sets a share of nan, outside 0..1"),
        ("missing <= 1%", "sets '1%', which is not a number"),
        ("labelled >= -3", "sets -3 labelled rows; a count of rows is a whole number, 0 or more"),
        ("labelled >= 2.5", "sets 2.5 labelled rows"),
    ],
    ids=[
        "unknown",
        "no-threshold",
        "trailing-words",
        "strict-op",
        "wrong-direction",
        "share-above-1",
        "negative-share",
        "nan",
        "percent",
        "negative-count",
        "fractional-count",
    ],
)
def test_a_bad_check_is_refused_with_what_was_wrong_and_how_to_write_it(
    text: str, says: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_checks([text])
    assert says in raised.value.message
    assert repr(text) in raised.value.message
    assert raised.value.hint


def test_a_check_given_twice_is_refused() -> None:
    with pytest.raises(InvalidInput, match="sets duplicates a second time"):
        parse_checks(["duplicates <= 0.1", "duplicates <= 0.2"])


def test_a_policy_built_in_python_is_checked_as_a_written_one() -> None:
    with pytest.raises(InvalidInput, match=r"outside 0\.\.1"):
        DataChecks(max_duplicates=1.5)
    with pytest.raises(InvalidInput, match="whole number, 0 or more"):
        DataChecks(min_labelled=-1)


@given(_POLICIES)
def test_a_policy_survives_its_texts(checks: DataChecks) -> None:
    texts = checks.to_texts()
    assert parse_checks(texts) == checks
    assert (texts == []) is (checks == DataChecks())


@given(_POLICIES, _FACTS)
def test_a_check_holds_exactly_when_its_value_is_within_its_threshold(
    checks: DataChecks, facts: DataFacts
) -> None:
    outcomes = apply_checks(checks, facts)
    assert [each.check for each in outcomes] == ["missing", "duplicates", "labelled"]
    missing, duplicates, labelled = outcomes
    assert missing.ok is (facts.missing_share <= checks.max_missing)
    assert labelled.ok is (facts.rows >= checks.min_labelled)
    if checks.max_duplicates is None:
        assert duplicates.ok
        assert duplicates.detail.endswith(NOT_BLOCKING)
    else:
        assert duplicates.ok is (facts.duplicate_share <= checks.max_duplicates)
        assert f"limit duplicates <= {checks.max_duplicates:g}" in duplicates.detail


@given(_FACTS, _SHARES, _SHARES, _COUNTS, _COUNTS)
def test_a_looser_threshold_never_fails_data_a_stricter_one_passes(
    facts: DataFacts, share_a: float, share_b: float, count_a: int, count_b: int
) -> None:
    strict = DataChecks(min(share_a, share_b), min(share_a, share_b), max(count_a, count_b))
    loose = DataChecks(max(share_a, share_b), max(share_a, share_b), min(count_a, count_b))
    for tight, relaxed in zip(apply_checks(strict, facts), apply_checks(loose, facts), strict=True):
        assert relaxed.ok or not tight.ok
