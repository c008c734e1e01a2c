"""References users type for datasets and models."""

from __future__ import annotations

import pytest

from loopml.domain.refs import DatasetRef, ModelRef, parse_dataset_ref, parse_model_ref
from loopml.errors import InvalidInput


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("churn", DatasetRef("churn", None)),
        ("churn@latest", DatasetRef("churn", None)),
        ("churn@12", DatasetRef("churn", 12)),
    ],
)
def test_dataset_refs(text: str, ref: DatasetRef) -> None:
    assert parse_dataset_ref(text) == ref


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("churn", ModelRef("churn")),
        ("churn/3", ModelRef("churn", version=3)),
        ("churn@champion", ModelRef("churn", alias="champion")),
        ("churn@latest", ModelRef("churn")),
    ],
)
def test_model_refs(text: str, ref: ModelRef) -> None:
    assert parse_model_ref(text) == ref


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("churn@two", "not a number"),
        ("churn@0", "not a number"),
        ("../x", "not allowed"),
        ("churn/x", "not a number"),
        ("churn@9lives", "not allowed"),
        ("", "not allowed"),
    ],
)
def test_bad_refs_say_what_to_write(text: str, words: str) -> None:
    parse = parse_model_ref if "/" in text or "lives" in text else parse_dataset_ref
    with pytest.raises(InvalidInput, match=words):
        parse(text)
