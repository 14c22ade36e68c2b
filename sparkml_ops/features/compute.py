"""The one feature computation shared by the feature build (as-of dates) and training sets (event times).

Both ask the same question — "what was known about this entity at time T?" — for different
sets of points ``(entity?, T)``. Keeping one code path is what makes training and scoring
features identical.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import reduce

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from sparkml_ops.errors import DataValidationError
from sparkml_ops.features.spec import Feature, FeatureSpec, SourceSpec, feature_columns
from sparkml_ops.io.tables import check_schema
from sparkml_ops.transforms.columns import select_typed, with_columns, with_ratio, with_sql_columns
from sparkml_ops.transforms.sweep import AttributesPlan, EventsPlan, SweepPlan
from sparkml_ops.transforms.windows import (
    MeasureDef, WindowAggregate, attribute_rows, event_rows, output_schema, plan_measures, point_rows, window_features,
)

ASOF = "_asof"  # the time the features are "as of" (end of the as-of date, or the label's event time)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


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


def _as_of(points: Mapping[str, str]) -> tuple[tuple[str, int], ...]:
    """Build points ``{as_of_date: 'YYYY-MM-DD HH:MM:SS' UTC}`` -> ``(as_of_date, instant µs)``."""
    out = []
    for value, moment in points.items():
        instant = datetime.strptime(moment, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
        out.append((value, (instant - EPOCH) // timedelta(microseconds=1)))
    return tuple(out)


def window_aggregates(spec: FeatureSpec, src: SourceSpec, rows: DataFrame | None = None) -> list[WindowAggregate]:
    """The aggregate features of ``src``; with ``rows``, a ``where`` that does not analyse is a spec error."""
    aggs = [WindowAggregate(f.name, f.func, f.column, f.window_us, f.where) for f in spec.features_of(src.name, "aggregate")]
    for agg in aggs:
        if agg.where and rows is not None:
            _analysed(spec, agg.name, lambda a=agg: rows.select(F.expr(a.where)))
    return aggs


def measure_prefix(source: int) -> str:
    """Stream column prefix of the measures of the source at position ``source`` of the spec."""
    return f"_m{source}_"


def events_plan(spec: FeatureSpec, src: SourceSpec, source: int, rows: DataFrame | None = None,
                tiled: bool = False) -> tuple[list[MeasureDef], EventsPlan]:
    """The measures (Spark expressions over source rows) and the sweep plan of one events source."""
    defs, outputs = plan_measures(window_aggregates(spec, src, rows), measure_prefix(source))
    recency = tuple(f.name for f in spec.features_of(src.name, "recency"))
    plan = EventsPlan(source, tuple(d.measure for d in defs), outputs, recency, src.lag_us, spec.max_window_us(src.name), tiled)
    return defs, plan


def analyse_sql(spec: FeatureSpec, frames: Mapping[str, DataFrame]) -> None:
    """Check every ``where`` and ``sql`` of the spec against its source's rows (planning only, nothing runs).

    Raises:
        FeatureSpecError: naming the feature whose SQL does not analyse.
    """
    for name, src in spec.sources.items():
        if src.kind == "events":
            window_aggregates(spec, src, frames[name])
        else:
            for f in spec.features_of(name, "expression"):
                _analysed(spec, f.name, lambda f=f: frames[name].select(F.expr(f.sql)))


def _attributes_stream(spec: FeatureSpec, src: SourceSpec, source: int, rows: DataFrame) -> tuple[DataFrame, AttributesPlan]:
    """Row-level SQL features of an attributes source as stream rows, known from their time column on."""
    feats = spec.features_of(src.name, "expression")
    for f in feats:
        _analysed(spec, f.name, lambda f=f: rows.select(F.expr(f.sql)))
    valued = rows.transform(with_sql_columns({f.name: (f.sql, f.dtype) for f in feats}))
    names = tuple(f.name for f in feats)
    stream = valued.transform(attribute_rows(spec.entity_keys, src.time_column, names, source))
    return stream, AttributesPlan(source, names, src.lag_us)


@dataclass(frozen=True)
class FeatureStream:
    """The rows of every source and the points as one stream, the plan of its sweep, and the output types."""

    rows: DataFrame
    plan: SweepPlan
    types: dict[str, str]


def feature_stream(spec: FeatureSpec, frames: Mapping[str, DataFrame], points: DataFrame | Mapping[str, str],
                   point_col: str, tiled: Collection[str] = ()) -> FeatureStream:
    """Every source's rows (events, daily tiles, attributes) and the points, unioned for one sorted pass."""
    keys = spec.entity_keys
    types = {k: spec.key_types[k] for k in keys}
    streams, events, attributes = [], [], []
    for i, (name, src) in enumerate(spec.sources.items()):
        if src.kind == "events" and (spec.features_of(name, "aggregate") or spec.features_of(name, "recency")):
            defs, plan = events_plan(spec, src, i, None if name in tiled else frames[name], tiled=name in tiled)
            rows = frames[name]
            streams.append(rows if name in tiled else rows.transform(event_rows(keys, src.time_column, defs, i)))
            events.append(plan)
        elif src.kind == "attributes" and spec.features_of(name, "expression"):
            stream, plan = _attributes_stream(spec, src, i, frames[name])
            streams.append(stream)
            attributes.append(plan)
            types.update({f.name: f.dtype for f in spec.features_of(name, "expression")})
    if isinstance(points, DataFrame):
        payload = tuple(c for c in points.columns if c not in keys and c != ASOF)
        streams.append(points.transform(point_rows(keys, payload, ASOF)))
        types.update({c: t for c, t in points.dtypes if c in payload})
        plan = SweepPlan(tuple(keys), tuple(events), tuple(attributes), payload)
    else:
        types[point_col] = "string"
        plan = SweepPlan(tuple(keys), tuple(events), tuple(attributes), (point_col,), _as_of(points))
    rows = reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), streams)
    return FeatureStream(rows, plan, types)


def compute_features(spec: FeatureSpec, frames: Mapping[str, DataFrame], points: DataFrame | Mapping[str, str],
                     point_col: str, tiled: Collection[str] = ()) -> DataFrame:
    """Every feature of ``spec`` at every point, from one stream of all sources sorted per entity.

    Args:
        frames: source name -> prepared rows (:func:`prepare_source`), already pruned to the needed days,
            or, for the events sources named in ``tiled``, their daily tiles as stream rows.
        points: either a DataFrame of entity keys, ``point_col``, ``_asof`` (timestamp) and any other
            columns to pass through (a training set's label rows), or, for the build,
            ``{point value: as-of timestamp 'YYYY-MM-DD HH:MM:SS' UTC}`` for all entities.
        point_col: the column identifying a point (``as_of_date`` or the event time).

    Returns:
        entity keys, ``point_col`` (and the other passed-through columns), then :func:`feature_columns`
        in order: one row per point row, or one row per entity known to any source at each as-of date.
    """
    stream = feature_stream(spec, frames, points, point_col, tiled)
    out = stream.rows.transform(window_features(stream.plan, output_schema(stream.plan, stream.types)))
    for f in spec.features:
        if f.kind == "ratio":
            out = out.transform(with_ratio(f.name, f.numerator, f.denominator))
    leading = [(c, stream.types[c]) for c in (*spec.entity_keys, *stream.plan.payload)]
    return out.transform(select_typed([*leading, *feature_columns(spec)]))


def require_rows(count: int, what: str, hint: str) -> None:
    """Raise a data error when a required input is empty."""
    if count == 0:
        raise DataValidationError(f"{what} is empty.", hint=hint)


__all__ = ["Feature", "FeatureStream", "analyse_sql", "check_source_schema", "compute_features", "events_plan", "feature_stream",
           "prepare_source", "require_rows", "window_aggregates"]
