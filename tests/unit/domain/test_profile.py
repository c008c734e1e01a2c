"""Schema inference, profiles and their diffs: known tables give known statistics, every profile
survives strict JSON, and the numeric statistics keep their invariants on any data."""

from __future__ import annotations

import json
import math
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.domain.profile import (
    DECILE_LEVELS,
    HISTOGRAM_BINS,
    QUANTILE_LEVELS,
    TOP_CATEGORIES,
    BooleanStats,
    CategoryStats,
    DatetimeStats,
    NumericStats,
    TableProfile,
    TextStats,
    bin_counts,
    profile_table,
)
from loopml.domain.profile_diff import (
    CategoriesChanged,
    ColumnAdded,
    ColumnRemoved,
    MissingRateChanged,
    NullabilityChanged,
    NumericShift,
    RowCountChanged,
    TopCategoriesChanged,
    TypeChanged,
    diff_profiles,
    diff_schemas,
)
from loopml.domain.table_schema import MAX_CATEGORIES, LogicalType, TableSchema, infer_schema
from loopml.errors import InvalidInput, NotFound

QUANTILE_METHOD: Final = "averaged_inverted_cdf"


def profile_of(table: pa.Table) -> TableProfile:
    return profile_table(table, infer_schema(table))


def numeric(profile: TableProfile, name: str) -> NumericStats:
    stats = profile.column(name).stats
    assert isinstance(stats, NumericStats)
    return stats


def categories(profile: TableProfile, name: str) -> CategoryStats:
    stats = profile.column(name).stats
    assert isinstance(stats, CategoryStats)
    return stats


def json_roundtrip(data: dict[str, Any]) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(json.dumps(data, allow_nan=False, sort_keys=True))
    return loaded


def mixed_table() -> pa.Table:
    return pa.table(
        {
            "age": pa.array([31, 45, None, 28, 45, 60]),
            "score": pa.array([0.5, math.nan, math.inf, None, 2.5, -1.0]),
            "active": pa.array([True, False, None, True, True, False]),
            "plan": pa.array(["free", "pro", "free", "free", None, "pro"]),
            "user": pa.array(["u1", "u2", "u3", "u4", "u5", "u6"]),
            "review": pa.array(
                [
                    "Great product, works well",
                    "Terrible! Broke after a day",
                    "It is fine I guess",
                    "Café au lait colour, très bien",
                    "would buy again",
                    None,
                ]
            ),
            "seen": pa.array([0, 86_400_000, None, 5, 6, 7], pa.timestamp("ms")),
            "blob": pa.array([b"x", b"y", None, b"z", b"w", b"v"]),
        }
    )


# --- schema inference ---------------------------------------------------------------------------


def test_schema_gives_each_column_its_logical_type_and_arrow_type() -> None:
    schema = infer_schema(mixed_table())

    assert {c.name: c.logical_type for c in schema.columns} == {
        "age": LogicalType.INTEGER,
        "score": LogicalType.FLOAT,
        "active": LogicalType.BOOLEAN,
        "plan": LogicalType.CATEGORICAL,
        "user": LogicalType.STRING,
        "review": LogicalType.TEXT,
        "seen": LogicalType.DATETIME,
        "blob": LogicalType.OTHER,
    }
    assert schema.column("age").arrow_type == "int64"
    assert schema.column("seen").arrow_type == "timestamp[ms]"


def test_categorical_columns_list_their_sorted_categories() -> None:
    schema = infer_schema(pa.table({"plan": ["pro", "free", "team", "free", "pro", "free"]}))

    assert schema.column("plan").categories == ("free", "pro", "team")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param(["a", "b", "a", "b"], LogicalType.CATEGORICAL, id="half-distinct"),
        pytest.param(["a", "b", "c", "a"], LogicalType.STRING, id="too-many-per-row"),
        pytest.param(
            [f"v{i % (MAX_CATEGORIES + 1)}" for i in range(1000)],
            LogicalType.STRING,
            id="over-max-categories",
        ),
        pytest.param(
            [f"v{i % MAX_CATEGORIES}" for i in range(1000)],
            LogicalType.CATEGORICAL,
            id="at-max-categories",
        ),
        pytest.param([f"id-{i}" for i in range(100)], LogicalType.STRING, id="ids"),
        pytest.param(
            [f"this is review number {i}" for i in range(100)], LogicalType.TEXT, id="sentences"
        ),
        pytest.param([f"two words{i}" for i in range(100)], LogicalType.STRING, id="short-phrases"),
        pytest.param([None, None], LogicalType.STRING, id="all-null"),
    ],
)
def test_string_columns_are_categorical_string_or_text(
    values: list[str | None], expected: LogicalType
) -> None:
    schema = infer_schema(pa.table({"s": pa.array(values, pa.string())}))

    assert schema.column("s").logical_type is expected
    assert (schema.column("s").categories is not None) == (expected is LogicalType.CATEGORICAL)


def test_dictionary_encoded_strings_are_read_through_their_dictionary() -> None:
    column = pa.array(["x", "y", "x", "x"]).dictionary_encode()
    table = pa.table({"d": column})

    schema = infer_schema(table)

    assert schema.column("d").logical_type is LogicalType.CATEGORICAL
    assert categories(profile_table(table, schema), "d").top == {"x": 3, "y": 1}


@pytest.mark.parametrize(
    ("values", "nullable"),
    [
        pytest.param([1.0, 2.0], False, id="complete"),
        pytest.param([1.0, None], True, id="null"),
        pytest.param([1.0, math.nan], True, id="nan"),
    ],
)
def test_a_column_is_nullable_when_any_value_is_missing(
    values: list[float | None], nullable: bool
) -> None:
    assert infer_schema(pa.table({"x": values})).column("x").nullable is nullable


def test_schema_roundtrips_through_strict_json() -> None:
    schema = infer_schema(mixed_table())

    data = json_roundtrip(schema.to_dict())

    assert data["schema_version"] == 1
    assert TableSchema.from_dict(data) == schema


# --- profiles -----------------------------------------------------------------------------------


def test_numeric_statistics_equal_numpys() -> None:
    values = np.random.default_rng(7).normal(50.0, 12.0, 2_001)
    stats = numeric(profile_of(pa.table({"x": values})), "x")

    assert stats.count == values.size
    assert (stats.min, stats.max) == (values.min(), values.max())
    assert stats.mean == pytest.approx(np.mean(values), rel=1e-12)
    assert stats.std == pytest.approx(np.std(values), rel=1e-12)
    levels = list(QUANTILE_LEVELS.values())
    expected = np.quantile(values, levels, method=QUANTILE_METHOD)
    assert list(stats.quantiles.values()) == pytest.approx(expected, rel=1e-12)
    assert list(stats.quantiles) == ["p1", "p5", "p10", "p25", "p50", "p75", "p90", "p95", "p99"]


def test_histogram_is_numpys_over_twenty_equal_bins() -> None:
    values = np.random.default_rng(3).exponential(2.0, 5_000)
    stats = numeric(profile_of(pa.table({"x": values})), "x")

    edges = np.linspace(values.min(), values.max(), HISTOGRAM_BINS + 1)
    counts, _ = np.histogram(values, bins=edges)
    assert stats.histogram_edges == pytest.approx(edges)
    assert stats.histogram_counts == tuple(counts)


def test_decile_bins_use_the_reference_deciles_without_duplicates() -> None:
    values = np.array([1, 1, 1, 1, 1, 1, 2, 3, 4, 5], dtype=np.float64)
    stats = numeric(profile_of(pa.table({"x": values})), "x")

    deciles = np.quantile(values, DECILE_LEVELS, method=QUANTILE_METHOD)
    assert stats.decile_edges == tuple(np.unique(deciles))
    assert stats.decile_counts == bin_counts(values, stats.decile_edges)
    assert sum(stats.decile_counts) == values.size


def test_a_constant_column_has_one_bin_holding_every_value() -> None:
    stats = numeric(profile_of(pa.table({"x": [4, 4, 4]})), "x")

    assert stats.decile_edges == (4.0, 4.0)
    assert stats.decile_counts == (3,)
    assert stats.histogram_edges[0] < 4.0 < stats.histogram_edges[-1]
    assert sum(stats.histogram_counts) == 3
    assert stats.std == 0.0


def test_nan_is_missing_and_infinity_is_counted_apart() -> None:
    profile = profile_of(mixed_table())
    stats = numeric(profile, "score")

    assert profile.column("score").missing == 2
    assert stats.infinite == 1
    assert stats.count == 3
    assert (stats.min, stats.max) == (-1.0, 2.5)
    assert stats.mean == pytest.approx(np.mean([0.5, 2.5, -1.0]))
    assert sum(stats.histogram_counts) == 3


def test_integer_columns_count_nulls_as_missing() -> None:
    profile = profile_of(mixed_table())

    assert profile.column("age").missing == 1
    assert numeric(profile, "age").quantiles["p50"] == 45.0
    assert profile.missing_rate("age") == pytest.approx(1 / 6)


def test_categorical_profile_counts_values_and_leaves_out_nulls() -> None:
    profile = profile_of(mixed_table())
    stats = categories(profile, "plan")

    assert profile.column("plan").missing == 1
    assert stats.top == {"free": 3, "pro": 2}
    assert (stats.count, stats.distinct, stats.other_count, stats.other_share) == (5, 2, 0, 0.0)


def test_string_profile_keeps_the_top_categories_and_counts_the_rest_as_other() -> None:
    values = [f"v{i:03d}" for i in range(200)] + ["v150"] * 3 + ["v010"] * 3 + ["v020"] * 2
    stats = categories(profile_of(pa.table({"s": values})), "s")

    assert len(stats.top) == TOP_CATEGORIES
    assert list(stats.top.items())[:4] == [("v010", 4), ("v150", 4), ("v020", 3), ("v000", 1)]
    assert stats.distinct == 200
    assert stats.other_count == len(values) - sum(stats.top.values())
    assert stats.other_share == pytest.approx(stats.other_count / len(values))


def test_boolean_profile_counts_true_and_false() -> None:
    profile = profile_of(mixed_table())

    assert profile.column("active").stats == BooleanStats(true_count=3, false_count=2)
    assert profile.column("active").missing == 1


def test_text_profile_counts_lowercased_word_tokens() -> None:
    table = pa.table({"t": ["The cat, the DOG!", "naïve café-au-lait", None, "the end."]})
    profile = profile_table(table, TableSchema.from_dict(text_schema("t")))
    stats = profile.column("t").stats

    assert isinstance(stats, TextStats)
    assert stats.vocabulary == {
        "the": 3,
        "au": 1,
        "café": 1,
        "cat": 1,
        "dog": 1,
        "end": 1,
        "lait": 1,
        "naïve": 1,
    }
    assert next(iter(stats.vocabulary)) == "the"
    assert (stats.count, stats.total_tokens, stats.distinct_tokens) == (3, 10, 8)
    assert stats.mean_tokens_per_row == pytest.approx(10 / 3)


def text_schema(name: str) -> dict[str, object]:
    column = {"name": name, "logical_type": "text", "arrow_type": "string", "nullable": True}
    return {"schema_version": 1, "columns": [column]}


def test_datetime_profile_gives_min_and_max() -> None:
    profile = profile_of(mixed_table())

    assert profile.column("seen").stats == DatetimeStats(
        min="1970-01-01 00:00:00.000", max="1970-01-02 00:00:00.000"
    )


def test_other_columns_only_count_missing_values() -> None:
    column = profile_of(mixed_table()).column("blob")

    assert (column.missing, column.stats) == (1, None)


def test_all_null_columns_profile_as_missing_with_empty_statistics() -> None:
    table = pa.table(
        {"i": pa.nulls(4, pa.int64()), "n": pa.nulls(4), "s": pa.nulls(4, pa.string())}
    )
    profile = profile_of(table)

    assert [c.missing for c in profile.columns] == [4, 4, 4]
    stats = numeric(profile, "i")
    assert (stats.count, stats.mean, stats.quantiles, stats.histogram_counts) == (0, None, {}, ())
    assert categories(profile, "s").other_share is None
    json.dumps(profile.to_dict(), allow_nan=False)


def test_an_empty_table_profiles_to_zero_rows() -> None:
    table = mixed_table().slice(0, 0)
    profile = profile_of(table)

    assert profile.rows == 0
    assert all(c.missing == 0 for c in profile.columns)
    assert profile.missing_rate("age") is None
    assert TableProfile.from_dict(json_roundtrip(profile.to_dict())) == profile


def test_profile_roundtrips_through_strict_json() -> None:
    profile = profile_of(mixed_table())

    data = json_roundtrip(profile.to_dict())

    assert data["schema_version"] == 1
    assert TableProfile.from_dict(data) == profile


def test_column_profile_dict_has_name_type_missing_and_stats() -> None:
    column = profile_of(mixed_table()).column("age").to_dict()

    assert set(column) == {"name", "logical_type", "missing", "stats"}
    assert column["logical_type"] == "integer"
    assert set(column["stats"]) >= {"mean", "std", "quantiles", "decile_edges", "decile_counts"}


def test_huge_values_never_store_nan_or_infinity() -> None:
    profile = profile_of(pa.table({"x": [-1.7e308, 1.7e308, 1.7e308]}))

    json.dumps(profile.to_dict(), allow_nan=False)
    assert numeric(profile, "x").std is None


def test_stored_dicts_of_another_version_are_refused() -> None:
    data = profile_of(mixed_table()).to_dict() | {"schema_version": 2}

    with pytest.raises(InvalidInput, match="schema_version 2"):
        TableProfile.from_dict(data)


def test_an_unknown_column_is_not_found_and_the_error_lists_the_columns() -> None:
    with pytest.raises(NotFound) as raised:
        infer_schema(mixed_table()).column("nope")

    assert "age" in raised.value.hint


def test_profiling_with_a_schema_that_does_not_fit_the_table_is_refused() -> None:
    schema = infer_schema(pa.table({"x": [1, 2]}))

    with pytest.raises(InvalidInput, match="'x'"):
        profile_table(pa.table({"x": ["a", "b"]}), schema)
    with pytest.raises(InvalidInput, match="does not have"):
        profile_table(pa.table({"y": [1, 2]}), schema)


def test_bin_counts_put_values_outside_the_edges_in_the_outer_bins() -> None:
    assert bin_counts(np.array([-5.0, 0.0, 1.0, 1.5, 2.0, 9.0]), (0.0, 1.0, 2.0)) == (2, 4)
    assert bin_counts(np.array([1.0]), ()) == ()


# --- properties ---------------------------------------------------------------------------------

finite_floats = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)
cells = st.one_of(finite_floats, st.none(), st.sampled_from([math.nan, math.inf, -math.inf]))


@settings(deadline=None, max_examples=50)
@given(st.lists(cells, max_size=300))
def test_numeric_profiles_keep_their_invariants(values: list[float | None]) -> None:
    profile = profile_of(pa.table({"x": pa.array(values, pa.float64())}))
    stats = numeric(profile, "x")

    assert stats.count + stats.infinite + profile.column("x").missing == len(values)
    assert sum(stats.histogram_counts) == stats.count
    assert sum(stats.decile_counts) == stats.count
    quantiles = list(stats.quantiles.values())
    assert quantiles == sorted(quantiles)
    if stats.count:
        assert stats.min is not None
        assert stats.max is not None
        assert stats.min <= stats.quantiles["p50"] <= stats.max
        assert list(stats.decile_edges) == sorted(set(stats.decile_edges)) or stats.min == stats.max
    assert TableProfile.from_dict(json_roundtrip(profile.to_dict())) == profile


@settings(deadline=None, max_examples=50)
@given(st.lists(st.one_of(finite_floats, st.none()), min_size=1, max_size=300))
def test_a_table_concatenated_with_itself_keeps_its_distribution(
    values: list[float | None],
) -> None:
    table = pa.table({"x": pa.array(values, pa.float64())})
    once = numeric(profile_of(table), "x")
    twice_profile = profile_of(pa.concat_tables([table, table]))
    twice = numeric(twice_profile, "x")

    assert twice_profile.column("x").missing == 2 * profile_of(table).column("x").missing
    assert twice.quantiles == once.quantiles
    assert twice.decile_edges == once.decile_edges
    assert twice.histogram_edges == once.histogram_edges
    assert twice.decile_counts == tuple(2 * c for c in once.decile_counts)
    assert twice.histogram_counts == tuple(2 * c for c in once.histogram_counts)
    if once.count:
        assert twice.mean == pytest.approx(once.mean, rel=1e-9, abs=1e-6)


@settings(deadline=None, max_examples=50)
@given(st.lists(st.one_of(st.sampled_from(["a", "b", "c", "é", ""]), st.none()), max_size=200))
def test_category_counts_add_up(values: list[str | None]) -> None:
    table = pa.table({"s": pa.array(values, pa.string())})
    profile = profile_table(table, TableSchema.from_dict(string_schema("s")))
    stats = categories(profile, "s")

    assert stats.count + profile.column("s").missing == len(values)
    assert sum(stats.top.values()) + stats.other_count == stats.count
    assert stats.distinct == len({v for v in values if v is not None})


def string_schema(name: str) -> dict[str, object]:
    column = {"name": name, "logical_type": "string", "arrow_type": "string", "nullable": True}
    return {"schema_version": 1, "columns": [column]}


# --- diffs --------------------------------------------------------------------------------------


def test_schema_diff_finds_added_removed_retyped_and_nullable_columns() -> None:
    old = infer_schema(pa.table({"a": [1, 2], "b": ["x", "y"], "c": [1.0, 2.0]}))
    new = infer_schema(pa.table({"a": [1.5, 2.5], "c": [1.0, None], "d": [True, False]}))

    diff = diff_schemas(old, new)

    assert diff.added == (ColumnAdded("d", LogicalType.BOOLEAN),)
    assert diff.removed == (ColumnRemoved("b", LogicalType.STRING),)
    assert diff.type_changed == (
        TypeChanged("a", LogicalType.INTEGER, LogicalType.FLOAT, "int64", "double"),
    )
    assert diff.nullability_changed == (NullabilityChanged("c", False, True),)
    assert diff.describe() == (
        "column 'd' added (boolean)",
        "column 'b' removed (was string)",
        "column 'a' changed type: integer (int64) -> float (double)",
        "column 'c' now has missing values",
    )
    assert json_roundtrip(diff.to_dict())["changes"][0] == {
        "kind": "column_added",
        "column": "d",
        "logical_type": "boolean",
    }


def test_schema_diff_finds_categories_added_and_removed() -> None:
    old = infer_schema(pa.table({"plan": ["free", "pro", "free", "pro"]}))
    new = infer_schema(pa.table({"plan": ["free", "team", "free", "team"]}))

    (change,) = diff_schemas(old, new).changes

    assert change == CategoriesChanged("plan", added=("team",), removed=("pro",))
    assert change.describe() == "column 'plan' categories: +'team', -'pro'"
    assert change.to_dict()["added"] == ["team"]


def test_equal_schemas_have_an_empty_diff() -> None:
    schema = infer_schema(mixed_table())

    assert diff_schemas(schema, schema).empty


def test_profile_diff_reports_rows_missing_rate_shift_and_top_categories() -> None:
    old = profile_of(pa.table({"x": [1.0, 2.0, 3.0, 4.0], "plan": ["a", "a", "b", "b"]}))
    new = profile_of(
        pa.table({"x": [3.0, 4.0, 5.0, None, 6.0, 7.0], "plan": ["a", "c", "c", "a", "c", "a"]})
    )

    changes = diff_profiles(old, new)

    assert changes[0] == RowCountChanged(4, 6)
    assert changes[1] == MissingRateChanged("x", 0.0, 1 / 6)
    shift = changes[2]
    assert isinstance(shift, NumericShift)
    assert shift.mean_shift_in_std == pytest.approx((5.0 - 2.5) / np.std([1.0, 2.0, 3.0, 4.0]))
    assert changes[3] == TopCategoriesChanged("plan", appeared=("c",), vanished=("b",))
    assert len(changes) == 4
    assert [c.describe() for c in changes][:2] == [
        "rows: 4 -> 6 (+50.0%)",
        "column 'x' missing: 0.00% -> 16.67%",
    ]
    assert "(+2.24 std)" in shift.describe()
    assert json_roundtrip(shift.to_dict())["mean_shift_in_std"] == pytest.approx(2.236, abs=1e-3)


def test_equal_profiles_have_no_changes() -> None:
    profile = profile_of(mixed_table())

    assert diff_profiles(profile, profile) == []
