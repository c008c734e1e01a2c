"""The run filter language: what parses, what it means, and where a bad filter is pointed at."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.domain.filters import (
    Comparison,
    FieldKind,
    FieldRef,
    OrderKey,
    parse_filter,
    parse_order_by,
)
from loopml.errors import InvalidInput


def test_the_issue_example_parses_into_three_comparisons() -> None:
    parsed = parse_filter("metrics.f1 > 0.8 and params.model = 'gbm' and tags.t != 'u'")
    assert parsed == (
        Comparison(FieldRef(FieldKind.METRICS, "f1"), ">", 0.8),
        Comparison(FieldRef(FieldKind.PARAMS, "model"), "=", "gbm"),
        Comparison(FieldRef(FieldKind.TAGS, "t"), "!=", "u"),
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metrics.loss <= 1e-3", Comparison(FieldRef(FieldKind.METRICS, "loss"), "<=", 0.001)),
        ("params.depth == 6", Comparison(FieldRef(FieldKind.PARAMS, "depth"), "=", 6.0)),
        ('params.name <> "a b"', Comparison(FieldRef(FieldKind.PARAMS, "name"), "!=", "a b")),
        (
            "metrics.`val loss` < -.5",
            Comparison(FieldRef(FieldKind.METRICS, "val loss"), "<", -0.5),
        ),
        (
            "attributes.status = 'failed'",
            Comparison(FieldRef(FieldKind.ATTRIBUTES, "status"), "=", "failed"),
        ),
        ("params.path = 'it\\'s'", Comparison(FieldRef(FieldKind.PARAMS, "path"), "=", "it's")),
        ("metric.acc>=0.5", Comparison(FieldRef(FieldKind.METRICS, "acc"), ">=", 0.5)),
    ],
    ids=[
        "exponent",
        "double-equals",
        "double-quotes",
        "backquoted-key",
        "attribute",
        "escape",
        "singular-prefix-no-spaces",
    ],
)
def test_comparisons_parse(text: str, expected: Comparison) -> None:
    assert parse_filter(text) == (expected,)


@pytest.mark.parametrize("text", [None, "", "   "])
def test_an_empty_filter_matches_everything(text: str | None) -> None:
    assert parse_filter(text) == ()


@pytest.mark.parametrize(
    ("text", "position", "words"),
    [
        ("metrics.f1 >", 12, "ends where a value"),
        ("metrics.f1 > 0.8 or params.x = 1", 17, "only 'and'"),
        ("foo.x = 1", 0, "unknown field"),
        ("metrics.f1 = 'high'", 13, "cannot be compared with text"),
        ("tags.team = 3", 12, "quote the value"),
        ("metrics.f1 ! 3", 11, "unexpected character"),
        ("params.model = gbm", 15, "quote text values"),
        ("attributes.colour = 'red'", 0, "unknown attribute"),
        ("metrics.f1 0.8", 11, "expected an operator"),
    ],
    ids=[
        "truncated",
        "or",
        "unknown-field",
        "metric-vs-text",
        "tag-vs-number",
        "bad-char",
        "unquoted-text",
        "unknown-attribute",
        "missing-operator",
    ],
)
def test_a_malformed_filter_points_at_the_bad_token(text: str, position: int, words: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_filter(text)
    error = caught.value
    assert f"position {position}" in error.message
    assert words in str(error).lower()
    caret_line = error.message.splitlines()[-1]
    assert caret_line.index("^") - 2 == position  # the caret sits under the bad token


def test_order_by_terms() -> None:
    assert parse_order_by("-metrics.f1, params.lr asc, attributes.start_time desc") == (
        OrderKey(FieldRef(FieldKind.METRICS, "f1"), True),
        OrderKey(FieldRef(FieldKind.PARAMS, "lr"), False),
        OrderKey(FieldRef(FieldKind.ATTRIBUTES, "start_time"), True),
    )


@pytest.mark.parametrize("text", ["metrics.f1 sideways", "-", "metrics.f1,", "f1"])
def test_bad_order_by_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_order_by(text)


_keys = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True)
_numbers = st.floats(allow_nan=False, allow_infinity=False, width=64)
_texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)


@settings(max_examples=200, deadline=None)
@given(
    clauses=st.lists(
        st.one_of(
            st.tuples(st.just("metrics"), _keys, st.sampled_from([">", "<", "=", "!="]), _numbers),
            st.tuples(st.just("params"), _keys, st.sampled_from(["=", "!="]), _texts),
            st.tuples(st.just("tags"), _keys, st.sampled_from(["=", "!="]), _texts),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_any_written_filter_parses_back_to_its_clauses(
    clauses: list[tuple[str, str, str, float | str]],
) -> None:
    def literal(value: float | str) -> str:
        if isinstance(value, float):
            return repr(value)
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

    text = " and ".join(f"{kind}.{key} {op} {literal(value)}" for kind, key, op, value in clauses)
    parsed = parse_filter(text)
    assert [(c.field.kind.value, c.field.key, c.op, c.value) for c in parsed] == clauses


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_arbitrary_text_either_parses_or_raises_invalid_input(text: str) -> None:
    try:
        parse_filter(text)
    except InvalidInput as error:
        message = error.message
    else:
        return
    assert "position" in message
