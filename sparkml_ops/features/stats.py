"""Per-run feature statistics (count, nulls, mean, spread, quantiles) into an ops Hive table for monitoring."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timezone

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from sparkml_ops.config import Settings
from sparkml_ops.evaluation import QUANTILES
from sparkml_ops.features.spec import FeatureSpec, feature_columns
from sparkml_ops.io.tables import ColumnDef, ensure_table, insert_partitions, is_numeric

QUANTILE_NAMES = tuple(f"p{int(q * 100):02d}" for q in QUANTILES)

STATS_COLUMNS = [
    ColumnDef("feature", "string", "feature column name"),
    ColumnDef("dtype", "string", "Spark type of the feature"),
    ColumnDef("row_count", "bigint", "rows in the partition"),
    ColumnDef("null_count", "bigint", "rows where the feature is NULL"),
    ColumnDef("mean", "double", "mean of non-null values (numeric features)"),
    ColumnDef("stddev", "double", "sample standard deviation"),
    ColumnDef("min", "double", "smallest value"),
    ColumnDef("max", "double", "largest value"),
    *[ColumnDef(n, "double", f"approximate {q:g} quantile") for n, q in zip(QUANTILE_NAMES, QUANTILES)],
    ColumnDef("run_id", "string", "id of the build run that wrote this row"),
    ColumnDef("computed_at", "timestamp", "UTC time the statistics were computed"),
]
STATS_PARTITIONS = [ColumnDef("feature_set", "string", "feature spec name"),
                    ColumnDef("as_of_date", "string", "as-of date YYYY-MM-DD")]


def stats_table(settings: Settings) -> str:
    """``<hive.databases.ops>.<features.stats_table>``."""
    return f"{settings.hive.databases.ops}.{settings.features.stats_table}"


def write_feature_stats(spark: SparkSession, settings: Settings, spec: FeatureSpec, table: str,
                        as_of_dates: Sequence[str]) -> str:
    """Compute statistics of every feature of the given partitions of ``table`` in one pass and store them.

    A rerun of a date replaces that date's statistics of this feature set only.

    Returns:
        The statistics table name.
    """
    cols = feature_columns(spec)
    df = spark.table(table).where(F.col("as_of_date").isin(list(as_of_dates)))
    aggs = [F.count(F.lit(1)).alias("_rows")]
    for i, (name, dtype) in enumerate(cols):
        c = F.col(name)
        aggs.append(F.sum(c.isNull().cast("long")).alias(f"n{i}"))
        if is_numeric(dtype):
            x = c.cast("double")
            aggs += [F.avg(x).alias(f"a{i}"), F.stddev_samp(x).alias(f"s{i}"), F.min(x).alias(f"lo{i}"),
                     F.max(x).alias(f"hi{i}"), F.percentile_approx(x, list(QUANTILES), 1000).alias(f"q{i}")]
    # One small row per as-of date (aggregates only) comes back to the driver.
    summary = df.groupBy("as_of_date").agg(*aggs).collect()
    run_id = uuid.uuid4().hex[:12]
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    rows = []
    for r in summary:
        for i, (name, dtype) in enumerate(cols):
            numeric = is_numeric(dtype)
            quants = (r[f"q{i}"] or [None] * len(QUANTILES)) if numeric else [None] * len(QUANTILES)
            rows.append((name, dtype, r["_rows"], r[f"n{i}"] or 0,
                         *((r[f"a{i}"], r[f"s{i}"], r[f"lo{i}"], r[f"hi{i}"]) if numeric else (None,) * 4),
                         *[None if q is None else float(q) for q in quants], run_id, now, spec.name, r["as_of_date"]))
    target = stats_table(settings)
    ensure_table(spark, target, STATS_COLUMNS, STATS_PARTITIONS, comment="sparkml-ops feature statistics per build run")
    schema = ", ".join(f"`{c.name}` {c.type}" for c in [*STATS_COLUMNS, *STATS_PARTITIONS])
    insert_partitions(spark.createDataFrame(rows, schema), target)
    return target


def read_feature_stats(spark: SparkSession, settings: Settings, feature_set: str, as_of_date: str) -> list[dict]:
    """Stored statistics of one feature set and date, as plain dicts (small: one row per feature)."""
    target = stats_table(settings)
    if not spark.catalog.tableExists(target):
        return []
    rows = (spark.table(target).where((F.col("feature_set") == feature_set) & (F.col("as_of_date") == as_of_date))
            .orderBy("feature").collect())
    return [r.asDict() for r in rows]
