"""The one feature computation shared by the feature build (as-of dates) and training sets (event times).

Both ask the same question — "what was known about this entity at time T?" — for different
sets of points ``(entity?, T)``. Keeping one code path is what makes training and scoring
features identical.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from sparkml_ops.errors import DataValidationError
from sparkml_ops.features.spec import Feature, FeatureSpec, SourceSpec, feature_columns
from sparkml_ops.io.tables import check_schema
from sparkml_ops.transforms.columns import fill_nulls, select_typed, with_columns, with_ratio, with_sql_columns
from sparkml_ops.transforms.pit import latest_before
from sparkml_ops.transforms.windows import WindowAggregate, window_aggregates, with_age, within_window

ASOF = "_asof"  # the time the features are "as of" (end of the as-of date, or the label's event time)
CUTOFF = "_cutoff"  # ASOF minus the source's availability lag: rows strictly before it are known
KNOWN_AT = "_known_at"
ZERO_WHEN_MISSING = {"count", "count_distinct", "approx_count_distinct", "sum"}


def check_source_schema(spec: FeatureSpec, src: SourceSpec, actual: Mapping[str, str]) -> None:
    """Declared columns must exist with the declared types (schema drift is a data error, exit 3)."""
    check_schema(actual, src.columns, where=f"source '{src.name}' ({src.table}) of feature set {spec.name}")


def prepare_source(spec: FeatureSpec, src: SourceSpec, df: DataFrame) -> DataFrame:
    """Declared columns plus derived ones; SQL that does not analyse is a spec error naming the feature."""
    out = df.select(*src.columns.keys())
    for d in src.derived:
        column = F.expr(d.expr) if d.expr else d.function()
        out = _analysed(spec, d.name, lambda o=out, c=column, d=d: o.transform(with_columns({d.name: c.cast(d.type)})))
    return out


def _analysed(spec: FeatureSpec, feature: str, build):
    """Run ``build`` (which only plans) and turn analysis errors into a spec error for ``feature``."""
    try:
        return build()
    except AnalysisException as exc:
        first = str(exc).splitlines()[0]
        raise spec.error(f"SQL does not analyse against the source: {first}", feature) from exc


def _join_points(rows: DataFrame, points: DataFrame | Mapping[str, str], keys: Sequence[str], point_col: str) -> DataFrame:
    if isinstance(points, DataFrame):
        return rows.join(points, on=list(keys), how="inner")
    # A few as-of dates: every row meets every date through explode over literals, which keeps
    # scan, filter and partial aggregation in one generated-code stage (a cross join does not).
    structs = [F.struct(F.lit(value).alias(point_col), F.lit(moment).cast("timestamp").alias(ASOF))
               for value, moment in points.items()]
    return rows.withColumn("_point", F.explode(F.array(*structs))).select("*", "_point.*").drop("_point")


def _with_cutoff(df: DataFrame, lag_us: int) -> DataFrame:
    return df.withColumn(CUTOFF, F.timestamp_micros(F.unix_micros(F.col(ASOF)) - F.lit(lag_us)))


def event_features(spec: FeatureSpec, src: SourceSpec, rows: DataFrame, points: DataFrame | Mapping[str, str],
                   point_cols: Sequence[str]) -> DataFrame:
    """Windowed aggregates and recency of one events source, per entity and point, in one groupBy."""
    keys = spec.entity_keys
    aggs = [WindowAggregate(f.name, f.func, f.column, f.window_us, f.where) for f in spec.features_of(src.name, "aggregate")]
    recency = [f.name for f in spec.features_of(src.name, "recency")]
    joined = _with_cutoff(_join_points(rows, points, keys, point_cols[0]), src.lag_us)
    grouped = (
        joined.transform(with_age(src.time_column, CUTOFF))
        .transform(within_window(spec.max_window_us(src.name)))
    )
    for agg in aggs:
        if agg.where:
            _analysed(spec, agg.name, lambda a=agg: grouped.select(F.expr(a.where)))
    return grouped.transform(window_aggregates([*keys, *point_cols], aggs, recency, recency_offset_us=src.lag_us))


def attribute_features(spec: FeatureSpec, src: SourceSpec, rows: DataFrame, points: DataFrame | Mapping[str, str],
                       point_cols: Sequence[str]) -> DataFrame:
    """Row-level SQL features of an attributes source, taken from the latest row known at each point."""
    keys = spec.entity_keys
    feats = spec.features_of(src.name, "expression")
    names = [f.name for f in feats]
    for f in feats:
        _analysed(spec, f.name, lambda f=f: rows.select(F.expr(f.sql)))
    valued = rows.transform(with_sql_columns({f.name: (f.sql, f.dtype) for f in feats}))
    # A table without a time column is a static snapshot: every row counts as known since ever.
    known_at = F.col(src.time_column) if src.time_column else F.lit("1970-01-01 00:00:00").cast("timestamp")
    valued = valued.select(*keys, known_at.alias(KNOWN_AT), *names)
    joined = _with_cutoff(_join_points(valued, points, keys, point_cols[0]), src.lag_us)
    return joined.transform(latest_before([*keys, *point_cols], KNOWN_AT, CUTOFF, names))


def compute_features(spec: FeatureSpec, frames: Mapping[str, DataFrame], points: DataFrame | Mapping[str, str],
                     point_col: str) -> DataFrame:
    """Every feature of ``spec`` at every point.

    Args:
        frames: source name -> prepared rows (:func:`prepare_source`), already pruned to the needed days.
        points: either a DataFrame of entity keys, ``point_col`` and ``_asof`` (timestamp) — the training
            spine — or, for the build, ``{point value: as-of timestamp 'YYYY-MM-DD HH:MM:SS' UTC}`` for all entities.
        point_col: the column identifying a point (``as_of_date`` or the event time).

    Returns:
        entity keys, ``point_col``, then :func:`feature_columns` in order: one row per spine row, or
        one row per entity known to any source at each as-of date.
    """
    keys = spec.entity_keys
    by_key = isinstance(points, DataFrame)
    point_cols = [point_col]
    parts = []
    for name, src in spec.sources.items():
        if src.kind == "events" and (spec.features_of(name, "aggregate") or spec.features_of(name, "recency")):
            parts.append(event_features(spec, src, frames[name], points, point_cols))
        elif src.kind == "attributes" and spec.features_of(name, "expression"):
            parts.append(attribute_features(spec, src, frames[name], points, point_cols))
    on = [*keys, *point_cols]
    if by_key:
        out = points.select(*on)
        for part in parts:
            out = out.join(part, on=on, how="left")
    else:
        out = parts[0]
        for part in parts[1:]:
            out = out.join(part, on=on, how="full")
    zeros = {f.name: 0 for f in spec.features if f.kind == "aggregate" and f.func in ZERO_WHEN_MISSING}
    out = out.transform(fill_nulls(zeros))
    for f in spec.features:
        if f.kind == "ratio":
            out = out.transform(with_ratio(f.name, f.numerator, f.denominator))
    point_types = [(point_col, dict(points.dtypes)[point_col] if by_key else "string")]
    return out.transform(select_typed([*((k, spec.key_types[k]) for k in keys), *point_types, *feature_columns(spec)]))


def require_rows(count: int, what: str, hint: str) -> None:
    """Raise a data error when a required input is empty."""
    if count == 0:
        raise DataValidationError(f"{what} is empty.", hint=hint)


__all__ = ["Feature", "compute_features", "prepare_source", "check_source_schema", "require_rows"]
