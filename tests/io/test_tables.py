"""Hive table helpers: commented partitioned tables, insert by column name, dynamic overwrite, schema checks."""

from __future__ import annotations

import pytest

from sparkml_ops.errors import DataValidationError, NotFoundError
from sparkml_ops.io.tables import (
    ColumnDef, check_schema, ensure_table, insert_partitions, list_partitions, missing_partitions, normalize_type,
    partition_columns, partition_exists, partition_values, table_schema,
)

pytestmark = pytest.mark.spark

DB = "t_feat_tables"
COLS = [ColumnDef("id", "long", "row id"), ColumnDef("score", "double", "model score")]
PART = [ColumnDef("ds", "string", "day YYYY-MM-DD")]


@pytest.fixture
def table(spark, request) -> str:
    name = f"{DB}.{request.node.name.replace('[', '_').replace(']', '').replace('-', '_')[:60]}"
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {DB}")
    spark.sql(f"DROP TABLE IF EXISTS {name}")
    return name


def test_ensure_table_creates_commented_parquet_table_once(spark, table):
    assert ensure_table(spark, table, COLS, PART, comment="scores of it's model") is True
    assert ensure_table(spark, table, COLS, PART) is False
    cols = {c.name: (c.dataType, c.description, c.isPartition) for c in spark.catalog.listColumns(table)}
    assert cols == {"id": ("bigint", "row id", False), "score": ("double", "model score", False),
                    "ds": ("string", "day YYYY-MM-DD", True)}
    assert "parquet" in spark.sql(f"DESCRIBE FORMATTED {table}").where("col_name = 'InputFormat'").collect()[0][1].lower()


def test_ensure_table_refuses_an_existing_table_with_other_columns(spark, table):
    ensure_table(spark, table, COLS, PART)
    with pytest.raises(DataValidationError) as err:
        ensure_table(spark, table, [ColumnDef("id", "string"), COLS[1]], PART)
    assert str(err.value) == (f"existing table {table}: schema drift: type changed: id is bigint, expected string. "
                              "Present columns: id bigint, score double, ds string. Fix the upstream table or update the declared schema.")


def test_insert_matches_columns_by_name_and_overwrites_only_present_partitions(spark, table):
    ensure_table(spark, table, COLS, PART)
    first = spark.createDataFrame([(0.1, 1, "2026-01-01"), (0.2, 2, "2026-01-02")], "score double, id long, ds string")
    insert_partitions(first, table)  # columns in another order than the table's
    again = spark.createDataFrame([("2026-01-02", 9, 0.9)], "ds string, id long, score double")
    insert_partitions(again, table)
    rows = sorted(tuple(r) for r in spark.table(table).collect())
    assert rows == [(1, 0.1, "2026-01-01"), (9, 0.9, "2026-01-02")]
    assert spark.conf.get("spark.sql.sources.partitionOverwriteMode") == "dynamic"


def test_static_insert_replaces_one_named_partition_and_keeps_quotes_as_data(spark, table):
    ensure_table(spark, table, COLS, PART)
    insert_partitions(spark.createDataFrame([(1, 0.1, "2026-01-01"), (2, 0.2, "2026-01-02")], "id long, score double, ds string"), table)
    insert_partitions(spark.createDataFrame([(0.9, 9)], "score double, id long"), table, {"ds": "2026-01-02"})
    odd = "2026-01-03' OR '1'='1"  # a value that would break out of an unescaped literal
    insert_partitions(spark.createDataFrame([(7, 0.7)], "id long, score double"), table, {"ds": odd})
    rows = sorted(tuple(r) for r in spark.table(table).collect())
    assert rows == [(1, 0.1, "2026-01-01"), (7, 0.7, odd), (9, 0.9, "2026-01-02")]
    with pytest.raises(DataValidationError, match=r"names partition columns \['day'\]; the table has \['ds'\]\.$"):
        insert_partitions(spark.createDataFrame([(3, 0.3)], "id long, score double"), table, {"day": "2026-01-01"})
    assert len(spark.table(table).collect()) == 3


def test_inserts_write_floating_point_columns_without_a_parquet_dictionary_and_leave_the_session_as_it_was(spark, table):
    import pyarrow.parquet as pq
    from urllib.parse import urlparse
    from pathlib import Path

    ensure_table(spark, table, COLS, PART)
    # Few distinct scores: without the setting the writer would keep their dictionary (it shrinks the page).
    rows = [(i % 3, (i % 5) / 7, f"2026-01-0{1 + i % 2}") for i in range(200)]
    insert_partitions(spark.createDataFrame(rows, "id long, score double, ds string"), table)
    insert_partitions(spark.createDataFrame(rows[:50], "id long, score double, ds string").drop("ds"), table, {"ds": "2026-01-03"})
    location = spark.sql(f"DESCRIBE FORMATTED {table}").where("col_name = 'Location'").collect()[0][1]
    files = sorted(Path(urlparse(location).path).glob("ds=*/*.parquet"))
    assert {f.parent.name for f in files} == {"ds=2026-01-01", "ds=2026-01-02", "ds=2026-01-03"}
    for f in files:
        meta = pq.ParquetFile(f).metadata.row_group(0)
        encodings = {meta.column(i).path_in_schema: set(meta.column(i).encodings) for i in range(meta.num_columns)}
        assert "PLAIN_DICTIONARY" not in encodings["score"] and "RLE_DICTIONARY" not in encodings["score"], f
        assert encodings["id"] & {"PLAIN_DICTIONARY", "RLE_DICTIONARY"}, f  # the default stays for the others
    assert spark.conf.get("parquet.enable.dictionary#score", None) is None
    assert spark.conf.get("spark.sql.sources.partitionOverwriteMode") == "dynamic"
    assert sorted(r[0] for r in spark.sql(f"SELECT score FROM {table} WHERE ds = '2026-01-03'").collect()) == sorted(r[1] for r in rows[:50])


def test_insert_refuses_missing_or_retyped_columns_and_writes_nothing(spark, table):
    ensure_table(spark, table, COLS, PART)
    insert_partitions(spark.createDataFrame([(1, 0.5, "2026-01-01")], "id long, score double, ds string"), table)
    bad = spark.createDataFrame([(1, "high", "2026-01-01")], "id long, score string, ds string")
    with pytest.raises(DataValidationError, match=r"^data for .*: schema drift: type changed: score is string, expected double\."):
        insert_partitions(bad, table)
    with pytest.raises(DataValidationError, match=r"missing column\(s\) score\. Present columns: id bigint, ds string\."):
        insert_partitions(spark.createDataFrame([(1, "2026-01-01")], "id long, ds string"), table)
    assert [tuple(r) for r in spark.table(table).collect()] == [(1, 0.5, "2026-01-01")]


def test_partition_listing_and_existence(spark, table):
    ensure_table(spark, table, COLS, PART)
    insert_partitions(spark.createDataFrame([(1, 0.5, "2026-01-02"), (2, 0.5, "2026-01-01")], "id long, score double, ds string"), table)
    assert list_partitions(spark, table) == [{"ds": "2026-01-01"}, {"ds": "2026-01-02"}]
    assert partition_values(spark, table, "ds") == ["2026-01-01", "2026-01-02"]
    assert partition_exists(spark, table, {"ds": "2026-01-02"}) and not partition_exists(spark, table, {"ds": "2026-01-03"})
    assert missing_partitions(spark, table, "ds", ["2026-01-01", "2026-01-03"]) == ["2026-01-03"]


def test_partition_columns_are_named_in_table_order_and_none_for_an_unpartitioned_table(spark, table):
    ensure_table(spark, table, COLS, [ColumnDef("region", "string", "# not a header"), *PART])
    assert partition_columns(spark, table) == ["region", "ds"]
    spark.sql(f"DROP TABLE {table}")
    ensure_table(spark, table, COLS)
    assert partition_columns(spark, table) == []


def test_missing_table_is_not_found(spark):
    with pytest.raises(NotFoundError, match=rf"^table {DB}.nope does not exist\."):
        table_schema(spark, f"{DB}.nope")
    with pytest.raises(NotFoundError):
        list_partitions(spark, f"{DB}.nope")


def test_check_schema_and_type_names_without_spark():
    check_schema({"a": "bigint", "b": "string"}, {"a": "long"}, where="x")
    with pytest.raises(DataValidationError, match=r"^x: schema drift: unexpected column\(s\) b\."):
        check_schema({"a": "bigint", "b": "string"}, {"a": "long"}, where="x", exact=True)
    assert normalize_type("Decimal(10, 2)") == "decimal(10,2)"
    with pytest.raises(ValueError, match="unknown column type 'money'"):
        normalize_type("money")
