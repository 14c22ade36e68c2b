"""The feature computation before issue 12, kept here only as the benchmarks' baseline (not used by the package).

It pairs rows with points: a training set joins every event of an entity with every label row of
that entity and then filters to the window; a build explodes every source row over every as-of
date. Each window of each aggregate is a conditional aggregate of one ``groupBy``. This is the
code of ``sparkml_ops/features/compute.py``, ``transforms/windows.py`` and ``transforms/pit.py``
at commit 4d66163, condensed; the reading and checking of sources is the package's own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from sparkml_ops.features.build import (
    PARTITION, asof_time, feature_table_columns, load_sources, source_days, source_ranges,
)
from sparkml_ops.features.compute import ASOF
from sparkml_ops.features.spec import FeatureSpec, feature_columns
from sparkml_ops.io.tables import ColumnDef, ensure_table, insert_partitions
from sparkml_ops.transforms.columns import fill_nulls, select_typed, with_ratio, with_sql_columns

AGE, CUTOFF, KNOWN_AT = "_age_us", "_cutoff", "_known_at"
US_PER_DAY = 86_400 * 1_000_000
ZERO_WHEN_MISSING = {"count", "count_distinct", "approx_count_distinct", "sum"}


def _join_points(rows: DataFrame, points, keys: Sequence[str], point_col: str) -> DataFrame:
    if isinstance(points, DataFrame):
        return rows.join(points, on=list(keys), how="inner")
    structs = [F.struct(F.lit(value).alias(point_col), F.lit(moment).cast("timestamp").alias(ASOF))
               for value, moment in points.items()]
    return rows.withColumn("_point", F.explode(F.array(*structs))).select("*", "_point.*").drop("_point")


def _with_cutoff(df: DataFrame, lag_us: int) -> DataFrame:
    return df.withColumn(CUTOFF, F.timestamp_micros(F.unix_micros(F.col(ASOF)) - F.lit(lag_us)))


def _aggregate(f) -> Column:
    cond = F.col(AGE) <= F.lit(f.window_us)
    if f.where:
        cond = cond & F.coalesce(F.expr(f.where).cast("boolean"), F.lit(False))
    value = F.when(cond, F.col(f.column) if f.column else F.lit(1))
    out = {"count": lambda: F.count(value), "sum": lambda: F.coalesce(F.sum(value).cast("double"), F.lit(0.0)),
           "mean": lambda: F.avg(value), "min": lambda: F.min(value).cast("double"),
           "max": lambda: F.max(value).cast("double"), "stddev": lambda: F.stddev_samp(value),
           "count_distinct": lambda: F.size(F.collect_set(value)).cast("bigint"),
           "approx_count_distinct": lambda: F.approx_count_distinct(value)}[f.func]()
    return out.alias(f.name)


def _events(spec: FeatureSpec, src, rows: DataFrame, points, point_col: str) -> DataFrame:
    joined = _with_cutoff(_join_points(rows, points, spec.entity_keys, point_col), src.lag_us)
    aged = joined.withColumn(AGE, F.unix_micros(F.col(CUTOFF)) - F.unix_micros(F.col(src.time_column)))
    aged = aged.where((F.col(AGE) > 0) & (F.col(AGE) <= F.lit(spec.max_window_us(src.name))))
    cols = [_aggregate(f) for f in spec.features_of(src.name, "aggregate")]
    days = (F.min(AGE) + F.lit(src.lag_us)) / F.lit(float(US_PER_DAY))
    cols += [days.alias(f.name) for f in spec.features_of(src.name, "recency")]
    return aged.groupBy(*spec.entity_keys, point_col).agg(*cols)


def _attributes(spec: FeatureSpec, src, rows: DataFrame, points, point_col: str) -> DataFrame:
    feats = spec.features_of(src.name, "expression")
    names = [f.name for f in feats]
    valued = rows.transform(with_sql_columns({f.name: (f.sql, f.dtype) for f in feats}))
    known_at = F.col(src.time_column) if src.time_column else F.lit("1970-01-01 00:00:00").cast("timestamp")
    valued = valued.select(*spec.entity_keys, known_at.alias(KNOWN_AT), *names)
    joined = _with_cutoff(_join_points(valued, points, spec.entity_keys, point_col), src.lag_us)
    known = joined.where(F.col(KNOWN_AT) < F.col(CUTOFF))
    latest = F.max(F.struct(F.col(KNOWN_AT).alias("_t"), *[F.col(v) for v in names])).alias("_latest")
    grouped = known.groupBy(*spec.entity_keys, point_col).agg(latest)
    return grouped.select(*spec.entity_keys, point_col, *[F.col(f"_latest.{v}").alias(v) for v in names])


def old_compute_features(spec: FeatureSpec, frames: Mapping[str, DataFrame], points, point_col: str) -> DataFrame:
    """The old ``compute_features``: one paired groupBy per source, then joins of the per-source results."""
    keys = spec.entity_keys
    by_key = isinstance(points, DataFrame)
    parts = []
    for name, src in spec.sources.items():
        if src.kind == "events" and (spec.features_of(name, "aggregate") or spec.features_of(name, "recency")):
            parts.append(_events(spec, src, frames[name], points, point_col))
        elif src.kind == "attributes" and spec.features_of(name, "expression"):
            parts.append(_attributes(spec, src, frames[name], points, point_col))
    on = [*keys, point_col]
    if by_key:
        out = points.select(*on)
        for part in parts:
            out = out.join(part, on=on, how="left")
    else:
        out = parts[0]
        for part in parts[1:]:
            out = out.join(part, on=on, how="full")
    out = out.transform(fill_nulls({f.name: 0 for f in spec.features if f.kind == "aggregate" and f.func in ZERO_WHEN_MISSING}))
    for f in spec.features:
        if f.kind == "ratio":
            out = out.transform(with_ratio(f.name, f.numerator, f.denominator))
    point_types = [(point_col, dict(points.dtypes)[point_col] if by_key else "string")]
    return out.transform(select_typed([*((k, spec.key_types[k]) for k in keys), *point_types, *feature_columns(spec)]))


def old_training_set(spark: SparkSession, spec: FeatureSpec, labels: DataFrame, start: date, end: date) -> DataFrame:
    """The old training set over label rows (keys, event_time, label) with event times in ``start..end``."""
    keys = spec.entity_keys
    lo, hi = asof_time(start - timedelta(days=1)), asof_time(end)
    ranges = {}
    for name, src in spec.sources.items():
        if src.kind == "events":
            ranges[name] = (source_days(src, lo, spec.max_window_us(name))[0], source_days(src, hi, spec.max_window_us(name))[1])
    frames = load_sources(spark, spec, ranges, required={})
    points = labels.select(*keys, spec.event_time).distinct().withColumn(ASOF, F.col(spec.event_time))
    features = old_compute_features(spec, frames, points, spec.event_time)
    out = labels.join(features, on=[*keys, spec.event_time], how="left")
    return out.select(*keys, spec.event_time, "label", *[n for n, _ in feature_columns(spec)])


def old_build(spark: SparkSession, spec: FeatureSpec, table: str, dates: Sequence[date]) -> None:
    """The old feature build of ``dates`` into ``table`` (statistics off): read once, explode over the dates, one groupBy."""
    days = sorted(dates)
    ranges, required = source_ranges(spec, days)
    frames = load_sources(spark, spec, ranges, required)
    points = {d.isoformat(): asof_time(d).strftime("%Y-%m-%d %H:%M:%S") for d in days}
    features = old_compute_features(spec, frames, points, PARTITION)
    ensure_table(spark, table, feature_table_columns(spec), [ColumnDef(PARTITION, "string", "as-of date YYYY-MM-DD")])
    insert_partitions(features, table)
