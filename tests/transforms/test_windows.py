"""Windowed aggregates relative to a cutoff: exact values on hand-made rows at the window edges."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from sparkml_ops.transforms.columns import fill_nulls, select_typed, with_ratio, with_sql_columns
from sparkml_ops.transforms.sweep import AttributesPlan, EventsPlan, SweepPlan
from sparkml_ops.transforms.windows import (
    US_PER_DAY, WindowAggregate, attribute_rows, event_rows, output_schema, plan_measures, point_rows, window_features,
)

CUTOFF_US = 1_768_003_200_000_000  # 2026-01-10 00:00 UTC


def _features(rows, aggs, recency=(), points=None, lag_us=0, horizon_us=3 * US_PER_DAY):
    """Window features of ``rows`` (key, t, ...) at the cutoff 2026-01-10 (every key), or at ``points`` rows."""
    defs, outputs = plan_measures(aggs)
    stream = rows.transform(event_rows(["key"], "t", defs))
    if points is not None:
        stream = stream.unionByName(points.transform(point_rows(["key"], ["as_of"], "t")), allowMissingColumns=True)
    as_of = () if points is not None else (("2026-01-09", CUTOFF_US),)
    events = EventsPlan(0, tuple(d.measure for d in defs), outputs, tuple(recency), lag_us, horizon_us)
    plan = SweepPlan(("key",), (events,), (), ("as_of",), as_of)
    return stream.transform(window_features(plan, output_schema(plan, {"key": "string", "as_of": "string"})))

pytestmark = pytest.mark.spark

ROWS = [  # key, time, amount, merchant; cutoff 2026-01-10 00:00
    ("k", "2026-01-10 00:00:00", 1000.0, "m0"),  # at the cutoff: excluded
    ("k", "2026-01-09 23:59:59", 1.0, "m1"),
    ("k", "2026-01-09 00:00:00", 2.0, "m1"),     # exactly 1 day before: inside 1d
    ("k", "2026-01-08 23:59:59", 4.0, "m2"),
    ("k", "2026-01-07 00:00:00", 8.0, None),     # exactly 3 days before: inside 3d
    ("k", "2026-01-06 23:59:59", 16.0, "m3"),    # outside every window
]


@pytest.fixture
def rows(spark):
    df = spark.createDataFrame(ROWS, "key string, t string, amount double, merchant string")
    return df.selectExpr("key", "CAST(t AS TIMESTAMP) AS t", "amount", "merchant",
                         "TIMESTAMP'2026-01-10 00:00:00' AS cutoff", "'2026-01-09' AS as_of")


def test_every_window_in_one_pass_with_inclusive_start_and_exclusive_cutoff(rows):
    aggs = [WindowAggregate(f"{f}_{d}d", f, "amount", d * US_PER_DAY) for d in (1, 3) for f in ("count", "sum", "min", "max", "mean")]
    aggs += [WindowAggregate("merchants_3d", "count_distinct", "merchant", 3 * US_PER_DAY),
             WindowAggregate("rows_3d", "count", None, 3 * US_PER_DAY),
             WindowAggregate("big_3d", "count", None, 3 * US_PER_DAY, where="amount > 3")]
    # As of 2026-01-10 with a 1-day lag the cutoff is 2026-01-09: the rows move one day back with it.
    out = _features(rows.drop("cutoff", "as_of").withColumn("t", F.col("t") - F.expr("INTERVAL 1 DAY")), aggs,
                    recency=["recency"], lag_us=US_PER_DAY)
    got = out.collect()[0].asDict()
    assert got == {"key": "k", "as_of": "2026-01-09",
                   "count_1d": 2, "sum_1d": 3.0, "min_1d": 1.0, "max_1d": 2.0, "mean_1d": 1.5,
                   "count_3d": 4, "sum_3d": 15.0, "min_3d": 1.0, "max_3d": 8.0, "mean_3d": 3.75,
                   "merchants_3d": 2, "rows_3d": 4, "big_3d": 2, "recency": 1 + 1 / 86400}
    # Every window comes from one read of the rows: a single scan in the optimized plan, not one per window.
    assert out._jdf.queryExecution().optimizedPlan().toString().count("LogicalRDD") == 1


def test_empty_window_sums_to_zero_and_means_null(spark, rows):
    aggs = [WindowAggregate("n", "count", "amount", 1), WindowAggregate("s", "sum", "amount", 1),
            WindowAggregate("m", "mean", "amount", 1), WindowAggregate("sd", "stddev", "amount", 1)]
    points = spark.sql("SELECT 'k' AS key, '2026-01-09' AS as_of, TIMESTAMP'2026-01-10 00:00:00' AS t")
    got = _features(rows.drop("cutoff", "as_of"), aggs, points=points).drop("as_of").collect()
    assert got[0].asDict() == {"key": "k", "n": 0, "s": 0.0, "m": None, "sd": None}


def test_window_aggregate_rejects_bad_definitions():
    with pytest.raises(ValueError, match="unknown aggregate function 'median'"):
        WindowAggregate("x", "median", "a", 1)
    with pytest.raises(ValueError, match="sum needs a column"):
        WindowAggregate("x", "sum", None, 1)


def test_latest_known_takes_the_newest_row_strictly_before_the_cutoff(spark):
    df = spark.createDataFrame([
        ("a", "2026-01-01 00:00:00", 1.0), ("a", "2026-01-05 00:00:00", 2.0), ("a", "2026-01-10 00:00:00", 3.0),
        ("b", "2026-01-10 00:00:00", 9.0),
    ], "key string, t string, v double").selectExpr("key", "CAST(t AS TIMESTAMP) AS t", "v")
    plan = SweepPlan(("key",), (), (AttributesPlan(0, ("v",), 0),), ("p",), (("p", CUTOFF_US),))
    schema = output_schema(plan, {"key": "string", "p": "string", "v": "double"})
    out = df.transform(attribute_rows(["key"], "t", ["v"], 0)).transform(window_features(plan, schema))
    got = sorted(tuple(r) for r in out.drop("p").collect())
    assert got == [("a", 2.0)]  # b's only row is at the cutoff: not yet known


def test_row_level_columns(spark):
    df = spark.createDataFrame([(1, 4.0, 0.0), (2, None, 2.0)], "id int, n double, d double")
    out = (df.transform(with_ratio("r", "n", "d")).transform(fill_nulls({"n": 0.0, "absent": 1}))
           .transform(with_sql_columns({"big": ("n > 1", "int")})).transform(select_typed([("id", "bigint"), ("n", "double"), ("r", "double"), ("big", "int")])))
    assert [tuple(r) for r in out.orderBy("id").collect()] == [(1, 4.0, None, 1), (2, 0.0, None, 0)]
    assert out.dtypes == [("id", "bigint"), ("n", "double"), ("r", "double"), ("big", "int")]
