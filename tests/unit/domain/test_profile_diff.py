"""Schema diffs compare logical types: Arrow's physical variants of one type (32- or 64-bit
offsets, views, dictionary encoding) are no change, as a CSV read and a Parquet write of the
same column differ only there."""

from __future__ import annotations

import pyarrow as pa
import pytest

from loopml.domain.profile_diff import diff_schemas
from loopml.domain.table_schema import infer_schema

PLANS = ["basic", "pro", "basic", "family"]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (pa.array(PLANS, pa.string()), pa.array(PLANS, pa.large_string())),
        (pa.array(PLANS, pa.string()), pa.array(PLANS).dictionary_encode()),
        (pa.array(PLANS, pa.large_string()), pa.array(PLANS, pa.string_view())),
        (pa.array([b"a", b"b"], pa.binary()), pa.array([b"a", b"b"], pa.large_binary())),
        (
            pa.array([[1], [2, 3]], pa.list_(pa.int64())),
            pa.array([[1], [2, 3]], pa.large_list(pa.int64())),
        ),
        (
            pa.array([["a"], ["b"]], pa.list_(pa.string())),
            pa.array([["a"], ["b"]], pa.large_list(pa.field("element", pa.large_string()))),
        ),
    ],
    ids=[
        "string-large_string",
        "string-dictionary",
        "large_string-string_view",
        "binary-large_binary",
        "list-large_list",
        "list_of_string-large_list_of_large_string",
    ],
)
def test_physical_variants_of_one_type_are_no_change(old: pa.Array, new: pa.Array) -> None:
    diff = diff_schemas(infer_schema(pa.table({"c": old})), infer_schema(pa.table({"c": new})))

    assert diff.empty, diff.describe()


def test_a_real_type_change_is_still_reported_with_the_arrow_types() -> None:
    old = infer_schema(pa.table({"c": pa.array([["a"]], pa.list_(pa.string()))}))
    new = infer_schema(pa.table({"c": pa.array([[1]], pa.large_list(pa.int64()))}))

    (change,) = diff_schemas(old, new).changes

    assert change.describe() == (
        "column 'c' changed type: other (list<item: string>) -> other (large_list<item: int64>)"
    )
