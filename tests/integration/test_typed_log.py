"""Typed input columns in the prediction log: each feature its own Parquet column
(`input.<feature>`), a schema per deployment that grows when a model version changes its
inputs (old files never rewritten), read beside rows logged as JSON text, merged by compaction,
shown by `tail` and `show`, and read by DuckDB and Polars as they lie."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loopml.adapters.prediction_log import PredictionLogWriter, PredictionRecord
from loopml.adapters.prediction_log_compaction import LogCompactor
from loopml.adapters.prediction_log_files import LogStorage
from loopml.adapters.prediction_log_reader import PredictionLogReader
from loopml.domain.request_ids import RequestIds
from loopml.errors import IntegrityError
from loopml.monitoring.window import read_inputs
from loopml.ports.prediction_log import INPUTS
from loopml.testing.seaweed import S3Endpoint

HOUR_US = 3_600_000_000
NOV_27 = 1_795_737_600_000_000  # 2026-11-27T00:00:00Z


def served(count: int, at_us: int, version: int, inputs: dict[str, pa.Array]) -> pa.Table:
    """`count` rows of deployment churn answered by model version `version` at `at_us`, with
    typed `inputs` (feature -> values)."""
    ids = RequestIds(lambda: at_us // 1000, os.urandom).new(count)
    columns: dict[str, pa.Array] = {
        "request_id": pa.array(ids),
        "time_us": pa.array([at_us + i for i in range(count)], pa.int64()),
        "deployment": pa.array(["churn"] * count),
        "model": pa.array(["churn-model"] * count),
        "model_version": pa.array([version] * count, pa.int64()),
        "output_json": pa.array(["1"] * count),
        "latency_us": pa.array([100] * count, pa.int64()),
        "flags": pa.array([""] * count),
        "shadow": pa.array([False] * count),
    }
    return pa.table({**columns, **{f"input.{k}": v for k, v in inputs.items()}})


def write(
    root: str, *tables: pa.Table | list[PredictionRecord], options: dict[str, object] | None = None
) -> None:
    writer = PredictionLogWriter(root, options, flush_interval_s=60.0)
    try:
        for table in tables:
            writer.append(table)
            writer.flush()
    finally:
        writer.close()


@pytest.fixture
def three_versions(tmp_path: Path) -> str:
    """Hour 00 of Nov 27: rows logged as JSON text (an older server), then version 1 (tenure
    a float, plan), then version 2 (tenure an integer, a new boolean promo), all in one hour."""
    root = str(tmp_path)
    ids = RequestIds(lambda: NOV_27 // 1000, os.urandom).new(2)
    older = [
        PredictionRecord(ids[i], NOV_27 + i, "churn", "churn-model", 0,
                         json.dumps({"tenure": 3.0 + i, "plan": "basic"}), "0", 90, "", False)
        for i in range(2)
    ]  # fmt: skip
    one = served(3, NOV_27 + 60_000_000, 1, {
        "tenure": pa.array([1.5, 2.5, None]), "plan": pa.array(["pro", "basic", "pro"]),
    })  # fmt: skip
    two = served(2, NOV_27 + 120_000_000, 2, {
        "tenure": pa.array([7, 8], pa.int64()), "plan": pa.array(["family", None]),
        "promo": pa.array([True, False]),
    })  # fmt: skip
    write(root, older, one, two)
    return root


def test_typed_inputs_are_columns_of_their_own_and_the_schema_grows(
    three_versions: str,
) -> None:
    reader = PredictionLogReader(three_versions)
    log = reader.read("churn", columns=["model_version", "inputs_json", INPUTS])
    assert log.column_names == ["model_version", "inputs_json", "input.tenure", "input.plan",
                                "input.promo", "label_json"]  # fmt: skip
    assert log.schema.field("input.tenure").type == pa.float64()  # float and int: numbers
    assert log.schema.field("input.promo").type == pa.bool_()
    assert log["input.tenure"].to_pylist() == [None, None, 1.5, 2.5, None, 7.0, 8.0]
    assert log["input.promo"].to_pylist() == [None] * 5 + [True, False]
    assert log["inputs_json"].null_count == 5  # only the older server's rows are JSON text
    files = sorted(Path(three_versions).rglob("part-*.parquet"))
    assert [pq.read_schema(f).names[-3:] for f in files][1:] == [
        ["event_time_us", "input.tenure", "input.plan"],
        ["input.tenure", "input.plan", "input.promo"],
    ]  # each file as written: no file is rewritten when the schema grows


def test_monitoring_reads_typed_and_json_rows_as_one_table(three_versions: str) -> None:
    reader = PredictionLogReader(three_versions)
    log = reader.read("churn", columns=["inputs_json", INPUTS])
    inputs = read_inputs(log, {"tenure": "numeric", "plan": "categorical", "promo": "boolean"})
    assert inputs.table["tenure"].to_pylist() == [3.0, 4.0, 1.5, 2.5, None, 7.0, 8.0]
    assert inputs.table["plan"].to_pylist() == ["basic", "basic", "pro", "basic", "pro",
                                                "family", None]  # fmt: skip
    assert inputs.unreadable == ()
    untyped = read_inputs(log)  # no kinds: each column as it was logged
    assert untyped.table["tenure"].to_pylist() == [3.0, 4.0, 1.5, 2.5, None, 7.0, 8.0]


def test_compaction_keeps_every_typed_column_and_readers_see_the_same(
    three_versions: str,
) -> None:
    reader = PredictionLogReader(three_versions)
    before = reader.read("churn")
    LogCompactor(LogStorage(three_versions), clock_us=lambda: NOV_27 + 30 * 24 * HOUR_US).compact(
        min_age_s=0
    )
    (merged,) = Path(three_versions).rglob("compact-*.parquet")
    assert {"input.tenure", "input.plan", "input.promo"} <= set(pq.read_schema(merged).names)
    assert reader.read("churn").equals(before)


def test_show_and_tail_give_typed_inputs_as_json_text(three_versions: str) -> None:
    reader = PredictionLogReader(three_versions)
    newest = reader.tail("churn", 3)
    assert [json.loads(text) for text in newest["inputs_json"].to_pylist()] == [
        {"tenure": 8.0, "plan": None, "promo": False},
        {"tenure": 7.0, "plan": "family", "promo": True},
        {"tenure": None, "plan": "pro", "promo": None},
    ]
    record = reader.get(newest["request_id"][1].as_py())
    assert record is not None
    assert json.loads(record["inputs_json"]) == {"tenure": 7.0, "plan": "family", "promo": True}
    assert record["input.promo"] is True


def test_a_feature_typed_as_text_by_one_version_reads_as_text(tmp_path: Path) -> None:
    root = str(tmp_path)
    write(root, served(2, NOV_27, 1, {"zip": pa.array([75001, 10115], pa.int64())}),
          served(1, NOV_27 + 1_000_000, 2, {"zip": pa.array(["SW1A"])}))  # fmt: skip
    log = PredictionLogReader(root).read("churn", columns=[INPUTS], with_feedback=False)
    assert log["input.zip"].to_pylist() == ["75001", "10115", "SW1A"]


def test_lake_tools_read_the_typed_columns_as_they_lie(three_versions: str) -> None:
    import duckdb
    import polars as pl

    pattern = f"{three_versions}/predictions/deployment=*/date=*/hour=*/*.parquet"
    by_duckdb = duckdb.sql(
        f'select count("input.promo") as promos, max("input.tenure") as tenure '
        f"from read_parquet('{pattern}', hive_partitioning = true, union_by_name = true)"
    ).fetchall()
    assert by_duckdb == [(2, 8.0)]
    files = sorted(Path(three_versions).glob(pattern.removeprefix(f"{three_versions}/")))
    scans = [pl.scan_parquet(f, hive_partitioning=True) for f in files]
    by_polars = (
        pl.concat(scans, how="diagonal_relaxed")  # files of several schemas, as they lie
        .filter(pl.col("model_version") == 1)
        .select(pl.col("input.tenure").sum())
        .collect()
    )
    assert by_polars.item() == pytest.approx(4.0)


@pytest.mark.s3
def test_typed_columns_on_an_object_store(s3_endpoint: S3Endpoint) -> None:
    root = f"s3://{s3_endpoint.bucket}/{uuid.uuid4().hex}"
    options = s3_endpoint.storage_options()
    first = served(2, NOV_27, 1, {"tenure": pa.array([1.0, 2.0])})
    write(root, first, served(1, NOV_27 + 1_000_000, 2, {"promo": pa.array([True])}),
          options=options)  # fmt: skip
    reader = PredictionLogReader(root, options)
    before = reader.read("churn", columns=[INPUTS], with_feedback=False)
    assert before.to_pydict() == {"input.tenure": [1.0, 2.0, None],
                                  "input.promo": [None, None, True]}  # fmt: skip
    LogCompactor(LogStorage(root, options), clock_us=lambda: NOV_27 + 30 * 24 * HOUR_US).compact(
        min_age_s=0
    )
    assert reader.read("churn", columns=[INPUTS], with_feedback=False).equals(before)


def test_a_column_that_is_not_an_input_is_refused_and_nothing_is_taken(tmp_path: Path) -> None:
    writer = PredictionLogWriter(str(tmp_path), flush_interval_s=60.0)
    try:
        bad = served(1, NOV_27, 1, {"tenure": pa.array([1.0])}).append_column(
            "tenure", pa.array([1.0])
        )
        with pytest.raises(ValueError, match="does not have"):
            writer.append(bad)
        nameless = served(1, NOV_27, 1, {}).append_column("input.", pa.array([1.0]))
        with pytest.raises(ValueError, match="does not have"):
            writer.append(nameless)
        assert writer.stats()["queue_depth"] == 0
    finally:
        writer.close()


def test_a_damaged_schema_record_stops_reads_and_merges_and_loses_nothing(
    three_versions: str,
) -> None:
    folder = Path(three_versions) / "predictions" / "deployment=churn" / "_schemas"
    (folder / f"{'0' * 32}.arrow").write_bytes(b"not an arrow schema")
    files = sorted(Path(three_versions).rglob("*.parquet"))
    with pytest.raises(IntegrityError, match=f"{'0' * 32}.arrow cannot be read") as refused:
        PredictionLogReader(three_versions).read("churn")
    assert "Move the file out of the _schemas folder" in refused.value.hint
    with pytest.raises(IntegrityError):  # never a merge that would drop columns it cannot see
        LogCompactor(
            LogStorage(three_versions), clock_us=lambda: NOV_27 + 30 * 24 * HOUR_US
        ).compact(min_age_s=0)
    assert sorted(Path(three_versions).rglob("*.parquet")) == files


def test_a_file_another_tool_wrote_keeps_its_typed_columns_through_compaction(
    three_versions: str,
) -> None:
    hour = Path(three_versions) / "predictions" / "deployment=churn" / "date=2026-11-27" / "hour=00"
    foreign = served(2, NOV_27 + 200_000_000, 3, {"region": pa.array(["eu", "us"])})
    pq.write_table(foreign.drop_columns(["deployment"]), hour / "part-9-from-spark.parquet")
    reader = PredictionLogReader(three_versions)
    assert "input.region" not in reader.read("churn", columns=[INPUTS]).column_names  # unlisted
    LogCompactor(LogStorage(three_versions), clock_us=lambda: NOV_27 + 30 * 24 * HOUR_US).compact(
        min_age_s=0
    )
    (merged,) = hour.glob("compact-*.parquet")
    assert "input.region" in pq.read_schema(merged).names
    log = PredictionLogReader(three_versions).read("churn", columns=["model_version", INPUTS])
    assert log.num_rows == 9
    assert log.filter(pa.compute.equal(log["model_version"], 3))["input.region"].to_pylist() == [
        "eu",
        "us",
    ]
