"""The one feature computation shared by the feature build (as-of dates) and training sets (event times).

Both ask the same question — "what was known about this entity at time T?" — for different
sets of points ``(entity?, T)``. Keeping one code path is what makes training and scoring
features identical.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime, timedelta, timezone

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from sparkml_ops.errors import DataValidationError
from sparkml_ops.features.spec import Feature, FeatureSpec, SourceSpec, feature_columns
from sparkml_ops.io.tables import check_schema
from sparkml_ops.transforms.columns import fill_nulls, select_typed, with_columns, with_ratio, with_sql_columns
from sparkml_ops.transforms.pit import latest_known
from sparkml_ops.transforms.sweep import KIND, KIND_POINT, KIND_ROW, TIME, SweepPlan
from sparkml_ops.transforms.windows import (
    WindowAggregate, event_rows, output_schema, plan_measures, point_rows, window_features,
)

ASOF = "_asof"  # the time the features are "as of" (end of the as-of date, or the label's event time)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
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


def _cutoffs(points: Mapping[str, str], lag_us: int) -> tuple[tuple[str, int], ...]:
    """Build points ``{as_of_date: 'YYYY-MM-DD HH:MM:SS' UTC}`` -> ``(as_of_date, cutoff µs)``."""
    out = []
    for value, moment in points.items():
        instant = datetime.strptime(moment, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
        out.append((value, (instant - EPOCH) // timedelta(microseconds=1) - lag_us))
    return tuple(out)


def window_aggregates(spec: FeatureSpec, src: SourceSpec, rows: DataFrame | None = None) -> list[WindowAggregate]:
    """The aggregate features of ``src``; with ``rows``, a ``where`` that does not analyse is a spec error."""
    aggs = [WindowAggregate(f.name, f.func, f.column, f.window_us, f.where) for f in spec.features_of(src.name, "aggregate")]
    for agg in aggs:
        if agg.where and rows is not None:
            _analysed(spec, agg.name, lambda a=agg: rows.select(F.expr(a.where)))
    return aggs


def event_features(spec: FeatureSpec, src: SourceSpec, rows: DataFrame, points: DataFrame | Mapping[str, str],
                   point: tuple[str, str], tiled: bool = False) -> DataFrame:
    """Windowed aggregates and recency of one events source at every point, in one sorted pass per entity.

    Args:
        rows: prepared source rows, or (``tiled``) the daily tiles of :mod:`sparkml_ops.features.state`.
        point: the point column and its Spark type.
    """
    keys = spec.entity_keys
    defs, outputs = plan_measures(window_aggregates(spec, src, None if tiled else rows))
    recency = tuple(f.name for f in spec.features_of(src.name, "recency"))
    stream = rows if tiled else rows.transform(event_rows(keys, src.time_column, defs))
    by_key = isinstance(points, DataFrame)
    if by_key:
        stream = stream.unionByName(points.transform(point_rows(keys, point[0], ASOF, src.lag_us)), allowMissingColumns=True)
    plan = SweepPlan(tuple(keys), tuple(d.measure for d in defs), outputs, recency, src.lag_us,
                     spec.max_window_us(src.name), tiled, point[0], () if by_key else _cutoffs(points, src.lag_us))
    return stream.transform(window_features(plan, output_schema(plan, spec.key_types, point[1])))


def attribute_features(spec: FeatureSpec, src: SourceSpec, rows: DataFrame, points: DataFrame | Mapping[str, str],
                       point_col: str) -> DataFrame:
    """Row-level SQL features of an attributes source, taken from the latest row known at each point."""
    keys = spec.entity_keys
    feats = spec.features_of(src.name, "expression")
    names = [f.name for f in feats]
    for f in feats:
        _analysed(spec, f.name, lambda f=f: rows.select(F.expr(f.sql)))
    valued = rows.transform(with_sql_columns({f.name: (f.sql, f.dtype) for f in feats}))
    # A table without a time column is a static snapshot: every row counts as known since 1970.
    known_at = F.unix_micros(F.col(src.time_column)) if src.time_column else F.lit(0).cast("bigint")
    stream = valued.select(*keys, known_at.alias(TIME), F.lit(KIND_ROW).cast("tinyint").alias(KIND), *names)
    if isinstance(points, DataFrame):
        asked = points.transform(point_rows(keys, point_col, ASOF, src.lag_us))
    else:
        # A build asks every entity of the table at every as-of date: entities x dates rows, not rows x dates.
        cuts = [F.struct(F.lit(v).alias(point_col), F.lit(c).alias(TIME)) for v, c in _cutoffs(points, src.lag_us)]
        asked = (valued.select(*keys).distinct().withColumn("_p", F.explode(F.array(*cuts)))
                 .select(*keys, "_p.*", F.lit(KIND_POINT).cast("tinyint").alias(KIND)))
    return stream.unionByName(asked, allowMissingColumns=True).transform(latest_known(keys, names, point_col))


def compute_features(spec: FeatureSpec, frames: Mapping[str, DataFrame], points: DataFrame | Mapping[str, str],
                     point_col: str, tiled: Collection[str] = ()) -> DataFrame:
    """Every feature of ``spec`` at every point.

    Args:
        frames: source name -> prepared rows (:func:`prepare_source`), already pruned to the needed days,
            or, for the events sources named in ``tiled``, their daily tiles.
        points: either a DataFrame of entity keys, ``point_col`` and ``_asof`` (timestamp) — the training
            spine — or, for the build, ``{point value: as-of timestamp 'YYYY-MM-DD HH:MM:SS' UTC}`` for all entities.
        point_col: the column identifying a point (``as_of_date`` or the event time).

    Returns:
        entity keys, ``point_col``, then :func:`feature_columns` in order: one row per spine row, or
        one row per entity known to any source at each as-of date.
    """
    keys = spec.entity_keys
    by_key = isinstance(points, DataFrame)
    point = (point_col, dict(points.dtypes)[point_col] if by_key else "string")
    parts = []
    for name, src in spec.sources.items():
        if src.kind == "events" and (spec.features_of(name, "aggregate") or spec.features_of(name, "recency")):
            parts.append(event_features(spec, src, frames[name], points, point, tiled=name in tiled))
        elif src.kind == "attributes" and spec.features_of(name, "expression"):
            parts.append(attribute_features(spec, src, frames[name], points, point_col))
    on = [*keys, point_col]
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
    return out.transform(select_typed([*((k, spec.key_types[k]) for k in keys), point, *feature_columns(spec)]))


def require_rows(count: int, what: str, hint: str) -> None:
    """Raise a data error when a required input is empty."""
    if count == 0:
        raise DataValidationError(f"{what} is empty.", hint=hint)


__all__ = ["Feature", "compute_features", "prepare_source", "check_source_schema", "require_rows"]
