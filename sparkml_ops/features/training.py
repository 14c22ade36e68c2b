"""Point-in-time-correct training sets: each label row gets the features known strictly before its event time.

For a label at time ``t`` a source row with time ``s`` is used only when ``s < t - lag`` (the
source's availability lag), and windows are counted back from ``t - lag``. Nothing at or
after that cutoff can leak in, whatever was loaded later.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta, timezone

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from sparkml_ops.config import Settings
from sparkml_ops.errors import DataValidationError, UsageError
from sparkml_ops.features.build import load_sources, source_days
from sparkml_ops.features.compute import ASOF, compute_features
from sparkml_ops.features.spec import FeatureSpec, feature_columns
from sparkml_ops.io.tables import check_schema, is_numeric, partition_columns, table_schema

log = logging.getLogger(__name__)


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


def _ts_literal(moment: datetime):
    return F.lit(moment.strftime("%Y-%m-%d %H:%M:%S")).cast("timestamp")


# params: session, settings and spec like every feature function, then the label query (table, dates, column).
def training_set(
    spark: SparkSession,
    settings: Settings,
    spec: FeatureSpec,
    labels_table: str,
    start: date,
    end: date,
    label_column: str = "label",
) -> DataFrame:
    """Label rows with event time in ``[start, end]`` (whole UTC days) joined to their point-in-time features.

    Args:
        labels_table: ``db.table`` with the entity keys, ``spec.event_time`` (timestamp) and ``label_column``.
            When it is partitioned by a ``ds`` day column, only the days in range are read.

    Returns:
        A lazy DataFrame: entity keys, event time, label, then :func:`feature_columns` (same names and
        types as the feature table). One row per label row; features NULL (counts 0) without history.

    Raises:
        UsageError: ``start`` after ``end``.
        DataValidationError: the labels table lacks columns or has no rows in range; source schema drift.
        NotFoundError: the labels or a source table does not exist.
    """
    if start > end:
        raise UsageError(f"start {start.isoformat()} is after end {end.isoformat()}.")
    keys = spec.entity_keys
    actual = table_schema(spark, labels_table)
    expected = {**{k: spec.key_types[k] for k in keys}, spec.event_time: "timestamp"}
    check_schema(actual, expected, where=f"labels table {labels_table}")
    if label_column not in actual or not is_numeric(actual[label_column]):
        raise DataValidationError(f"labels table {labels_table}: label column '{label_column}' must be numeric, "
                                  f"got {actual.get(label_column, 'missing')}.")
    lo, hi = _day_start(start), _day_start(end) + timedelta(days=1)
    labels = spark.table(labels_table)
    if "ds" in partition_columns(spark, labels_table):
        labels = labels.where(F.col("ds").between((start - timedelta(days=1)).isoformat(), (end + timedelta(days=1)).isoformat()))
    ts = F.col(spec.event_time)
    # String literals are read in the session time zone (UTC); naive datetimes would use the OS zone.
    labels = labels.where((ts >= _ts_literal(lo)) & (ts < _ts_literal(hi)))
    labels = labels.select(*keys, spec.event_time, F.col(label_column).alias("label"))
    if labels.limit(1).count() == 0:
        raise DataValidationError(f"labels table {labels_table} has no rows with {spec.event_time} "
                                  f"between {start.isoformat()} and {end.isoformat()}.")
    ranges = {}
    for name, src in spec.sources.items():
        if src.kind == "events":
            first, _ = source_days(src, lo, spec.max_window_us(name))
            _, last = source_days(src, hi, spec.max_window_us(name))
            ranges[name] = (first, last)
    # History may legitimately be missing (new customers, first days of data): no partition is required.
    frames = load_sources(spark, spec, ranges, required={})
    # The label rows themselves are the points: each passes through the one sorted pass with its label.
    features = compute_features(spec, frames, labels.withColumn(ASOF, F.col(spec.event_time)), spec.event_time)
    log.info("training set of %s: labels %s from %s to %s", spec.name, labels_table, start, end)
    return features.select(*keys, spec.event_time, "label", *[n for n, _ in feature_columns(spec)])
