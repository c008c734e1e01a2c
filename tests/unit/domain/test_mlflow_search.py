"""MLflow's run search syntax as loopml's query: what translates means the same, what does not
is refused naming the part, and the page tokens round-trip."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopml.domain.filters import Comparison, FieldKind, FieldRef, OrderKey
from loopml.domain.mlflow_records import page_offset, page_token, project_of_id, project_of_name
from loopml.domain.mlflow_search import experiment_names, mlflow_run_query, parse_mlflow_filter
from loopml.errors import InvalidInput

M, P, T, A = FieldKind.METRICS, FieldKind.PARAMS, FieldKind.TAGS, FieldKind.ATTRIBUTES


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metrics.rmse < 1", [Comparison(FieldRef(M, "rmse"), "<", 1.0)]),
        ("metric.rmse <= -2.5e1", [Comparison(FieldRef(M, "rmse"), "<=", -25.0)]),
        ("params.C = '0.5'", [Comparison(FieldRef(P, "C"), "=", "0.5")]),
        ('param.model != "gbm"', [Comparison(FieldRef(P, "model"), "!=", "gbm")]),
        ("tags.`data set` = 'new'", [Comparison(FieldRef(T, "data set"), "=", "new")]),
        ('tags."data set" <> \'new\'', [Comparison(FieldRef(T, "data set"), "!=", "new")]),
        ("tags.mlflow.runName = 'first'", [Comparison(FieldRef(A, "name"), "=", "first")]),
        ("attributes.status = 'FINISHED'", [Comparison(FieldRef(A, "status"), "=", "finished")]),
        ("status = 'killed'", [Comparison(FieldRef(A, "status"), "=", "killed")]),
        ("attr.run_name = 'x'", [Comparison(FieldRef(A, "name"), "=", "x")]),
        ("attribute.start_time >= 1764000000000",
         [Comparison(FieldRef(A, "start_time"), ">=", 1764000000000.0)]),
        ("metrics.a > 0.5 AND params.b = 'x' and tags.c = 'y'", [
            Comparison(FieldRef(M, "a"), ">", 0.5),
            Comparison(FieldRef(P, "b"), "=", "x"),
            Comparison(FieldRef(T, "c"), "=", "y"),
        ]),
    ],
)  # fmt: skip
def test_filters_translate_to_the_same_comparisons(text: str, expected: list[Comparison]) -> None:
    where, parent = parse_mlflow_filter(text)
    assert list(where) == expected
    assert parent is None


def test_a_parent_run_filter_asks_for_its_children() -> None:
    query = mlflow_run_query("default", f"tags.mlflow.parentRunId = '{'a' * 32}'", [])
    assert query.parent_id == "a" * 32
    assert query.where == ()


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("tags.team LIKE 'gr%'", "LIKE"),
        ("attributes.run_name ILIKE '%x%'", "ILIKE"),
        ("params.model IN ('a', 'b')", "IN"),
        ("tags.team IS NULL", "IS"),
        ("metrics.a > 1 or metrics.b > 1", "'or'"),
        ("datasets.digest = 'x'", "'datasets'"),
        ("attributes.artifact_uri = 'x'", "'artifact_uri'"),
        ("metrics.a = 'high'", "'a'"),
        ("attributes.status = 'DONE'", "'DONE'"),
        ("tags.mlflow.parentRunId != 'x'", "parent run"),
        ("metrics.a >", "ends"),
    ],
)
def test_what_does_not_translate_is_refused_naming_it(text: str, named: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        mlflow_run_query("default", text, [])
    assert named in refused.value.message


def test_order_terms_translate() -> None:
    query = mlflow_run_query("p", None, ["metrics.rmse DESC", "start_time", "params.lr asc"])
    assert query.order_by == (
        OrderKey(FieldRef(M, "rmse"), True),
        OrderKey(FieldRef(A, "start_time"), False),
        OrderKey(FieldRef(P, "lr"), False),
    )
    with pytest.raises(InvalidInput, match="ASC or DESC"):
        mlflow_run_query("p", None, ["metrics.rmse DOWN"])


_KEYS = st.text(st.sampled_from("abcxyz_019-./: "), min_size=1, max_size=20).filter(
    lambda k: k.strip() == k and not k.startswith("mlflow.")
)
_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\\"), max_size=20)


@st.composite
def _comparisons(draw: st.DrawFn) -> Comparison:
    kind = draw(st.sampled_from([M, P, T]))
    op = draw(st.sampled_from(["=", "!=", ">", ">=", "<", "<="]))
    value = float(draw(st.integers(-(10**9), 10**9))) if kind is M else draw(_TEXT)
    return Comparison(FieldRef(kind, draw(_KEYS)), op, value)


def _written(cmp: Comparison) -> str:
    key = f"`{cmp.field.key}`"
    value = (
        repr(cmp.value)
        if isinstance(cmp.value, float)
        else "'" + str(cmp.value).replace("'", "\\'") + "'"
    )
    return f"{cmp.field.kind.value}.{key} {cmp.op} {value}"


@given(st.lists(_comparisons(), min_size=1, max_size=5))
def test_any_filter_written_in_mlflow_syntax_reads_back_the_same(cmps: list[Comparison]) -> None:
    text = " and ".join(_written(c) for c in cmps)
    assert list(parse_mlflow_filter(text)[0]) == cmps


@given(st.text(max_size=60))
def test_no_text_breaks_the_parser_other_than_by_a_refusal(text: str) -> None:
    with contextlib.suppress(InvalidInput):
        mlflow_run_query("default", text, [])


@given(st.integers(0, 10**12))
def test_page_tokens_round_trip(offset: int) -> None:
    assert page_offset(page_token(offset)) == offset


@pytest.mark.parametrize("token", ["x", "e30=", page_token(-1), "eyJvZmZzZXQiOiAiMSJ9"])
def test_a_forged_page_token_is_refused(token: str) -> None:
    with pytest.raises(InvalidInput, match="page token"):
        page_offset(token)


def test_experiments_are_projects() -> None:
    assert project_of_id("0") == project_of_name("Default") == "default"
    assert project_of_id("churn") == project_of_name("churn") == "churn"
    for bad in ["../x", "a b", "", "/Users/me/x"]:
        with pytest.raises(InvalidInput, match="cannot be a loopml project name"):
            project_of_name(bad)


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (None, ["churn", "churn-v2", "fraud", "Default"]),
        ("name = 'fraud'", ["fraud"]),
        ("name != 'fraud'", ["churn", "churn-v2", "Default"]),
        ("name LIKE 'churn%'", ["churn", "churn-v2"]),
        ("attribute.name LIKE 'churn_v_'", ["churn-v2"]),
        ("name ILIKE 'DEF%' and name != 'x'", ["Default"]),
        ("name LIKE 'c.urn'", []),  # a dot is a dot, not any character
    ],
)
def test_experiment_filters_keep_the_names_they_match(text: str | None, kept: list[str]) -> None:
    names = ["churn", "churn-v2", "fraud", "Default"]
    assert [n for n in names if experiment_names(text)(n)] == kept


def test_an_experiment_filter_on_anything_but_the_name_is_refused() -> None:
    with pytest.raises(InvalidInput, match=r"tags\.team"):
        experiment_names("tags.team = 'growth'")
