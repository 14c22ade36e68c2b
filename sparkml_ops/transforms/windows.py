"""Windowed aggregates at points in time, from one stream per events source sorted by (entity, time).

A row belongs to window ``w`` of its cutoff ``c`` when ``c - w <= time < c``: the lower bound is
inclusive, the cutoff itself is excluded (an event at exactly the cutoff is not yet known).

The rows (events, or daily tiles of events) and the points (label times, or nothing for a build,
whose cutoffs are the same for every entity) are shuffled once by entity and sorted by time
within each partition; :mod:`sparkml_ops.transforms.sweep` then computes every window of every
aggregate in one pass over each partition. Nothing pairs rows with points, so the cost grows with
rows + points, not with their product.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql.classic.dataframe import DataFrame as ClassicDataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from sparkml_ops.jvm import jvm_class
from sparkml_ops.transforms.sweep import (
    DISTINCT_FUNCS, KIND, KIND_POINT, KIND_ROW, LAST, NUMERIC_FUNCS, SOURCE, TIME, Measure, Output, SweepPlan,
)

US_PER_DAY = 86_400 * 1_000_000
LOCAL_KEY = "_k"  # the sort key of a local merge of daily tiles
KEY_HASH = "_h"  # the sort key of the sweep's input
FUNCTIONS = ("count", "sum", "mean", "min", "max", "stddev", "count_distinct", "approx_count_distinct")
TILE_STATS = ("n", "s", "lo", "hi", "q")


@dataclass(frozen=True)
class WindowAggregate:
    """One output column: ``func`` of ``column`` over rows at most ``window_us`` before the cutoff.

    ``column`` None counts rows. ``where`` is an optional SQL condition on the row.
    """

    name: str
    func: str
    column: str | None
    window_us: int
    where: str | None = None

    def __post_init__(self) -> None:
        if self.func not in FUNCTIONS:
            raise ValueError(f"unknown aggregate function {self.func!r}; known: {', '.join(FUNCTIONS)}")
        if self.window_us <= 0:
            raise ValueError("window_us must be positive")
        if self.column is None and self.func != "count":
            raise ValueError(f"{self.func} needs a column")


@dataclass(frozen=True)
class MeasureDef:
    """A measure, the Spark expression of its value on a source row (NULL where the row does not count), its functions."""

    measure: Measure
    value: Column
    funcs: frozenset[str]

    def tile_stats(self) -> tuple[str, ...]:
        """The statistics a daily tile must keep for these functions (see :class:`Measure`)."""
        need = {"n"}
        if self.funcs & {"sum", "mean", "stddev"}:
            need.add("s")
        if self.funcs & {"min", "stddev"}:
            need.add("lo")
        if self.funcs & {"max", "stddev"}:
            need.add("hi")
        if "stddev" in self.funcs:
            need.add("q")
        return tuple(s for s in TILE_STATS if s in need)


def plan_measures(aggregates: Sequence[WindowAggregate], prefix: str = "_m") -> tuple[list[MeasureDef], tuple[Output, ...]]:
    """One measure per distinct (column, where) and kind of use; the outputs refer to them by index.

    ``approx_count_distinct`` is computed exactly, like ``count_distinct``: the exact count costs
    no more here, and an estimate would differ between a build and a training set.
    """
    index: dict[tuple, int] = {}
    uses: dict[tuple, set[str]] = {}
    for a in aggregates:
        kind = "distinct" if a.func in DISTINCT_FUNCS else "value"
        uses.setdefault((kind, a.column, a.where), set()).add(a.func)
    defs = []
    for (kind, column, where), funcs in uses.items():
        value = F.col(column) if column else F.lit(1)
        if where:
            value = F.when(F.coalesce(F.expr(where).cast("boolean"), F.lit(False)), value)
        name = f"{prefix}{len(defs)}"
        if kind == "distinct":
            defs.append(MeasureDef(Measure(name, "distinct"), value, frozenset(funcs)))
        elif funcs & set(NUMERIC_FUNCS):
            defs.append(MeasureDef(Measure(name, "numeric"), value.cast("double"), frozenset(funcs)))
        else:
            defs.append(MeasureDef(Measure(name, "count"), F.when(value.isNotNull(), F.lit(1).cast("tinyint")), frozenset(funcs)))
        index[(kind, column, where)] = len(defs) - 1
    outputs = tuple(Output(a.name, a.func, index[("distinct" if a.func in DISTINCT_FUNCS else "value", a.column, a.where)],
                           a.window_us) for a in aggregates)
    return defs, outputs


def _tags(kind: int, source: int | None) -> list[Column]:
    tags = [F.lit(kind).cast("tinyint").alias(KIND)]
    return tags + ([F.lit(source).cast("smallint").alias(SOURCE)] if source is not None else [])


def event_rows(keys: Sequence[str], time_col: str, measures: Sequence[MeasureDef], source: int = 0,
               keep: Sequence[str] = ()) -> Callable[[DataFrame], DataFrame]:
    """Source rows -> stream rows: keys, ``_t`` (µs), ``_kind`` = row, ``_src``, one column per measure, ``keep``."""

    def apply(df: DataFrame) -> DataFrame:
        return df.select(*keys, F.unix_micros(F.col(time_col)).alias(TIME), *_tags(KIND_ROW, source),
                         *[m.value.alias(m.measure.column) for m in measures], *keep)

    return apply


def attribute_rows(keys: Sequence[str], time_col: str | None, values: Sequence[str], source: int) -> Callable[[DataFrame], DataFrame]:
    """Attribute rows -> stream rows: one per entity and time (the greatest values win a tie), known from ``_t``.

    A table without a time column is a static snapshot: every row counts as known since 1970.
    """

    def apply(df: DataFrame) -> DataFrame:
        known = F.unix_micros(F.col(time_col)) if time_col else F.lit(0).cast("bigint")
        best = F.max(F.struct(*[F.col(v) for v in values])).alias("_v")
        reduced = df.groupBy(*keys, known.alias(TIME)).agg(best)
        return reduced.select(*keys, TIME, *_tags(KIND_ROW, source), *[F.col(f"_v.{v}").alias(v) for v in values])

    return apply


def point_rows(keys: Sequence[str], payload: Sequence[str], time_col: str) -> Callable[[DataFrame], DataFrame]:
    """Points -> stream rows: keys, ``_t`` = the point's instant (µs), ``_kind`` = point, the payload columns."""

    def apply(df: DataFrame) -> DataFrame:
        return df.select(*keys, F.unix_micros(F.col(time_col)).alias(TIME), *_tags(KIND_POINT, None), *payload)

    return apply


def output_schema(plan: SweepPlan, types: Mapping[str, str]) -> StructType:
    """Spark schema of :func:`window_features` (:attr:`SweepPlan.columns`); ``types`` gives keys, payload, attributes."""
    agg_types = {o.name: "bigint" if o.func == "count" or o.func in DISTINCT_FUNCS else "double"
                 for e in plan.events for o in e.outputs}
    agg_types.update({r: "double" for e in plan.events for r in e.recency})
    return StructType.fromDDL(", ".join(f"`{c}` {agg_types.get(c) or types[c]}" for c in plan.columns))


def window_features(plan: SweepPlan, schema: StructType) -> Callable[[DataFrame], DataFrame]:
    """Stream rows of every source (and point rows) -> one row per point with every feature of ``plan``.

    One shuffle by the entity keys, one sort within each partition by a 64-bit hash of the keys (by radix),
    one pass, which orders each entity's rows by time and kind itself (``sparkmlops.Sweep``).
    """

    def apply(stream: DataFrame) -> DataFrame:
        keys = list(plan.keys)
        ordered = stream.withColumn(KEY_HASH, F.xxhash64(*keys)).repartition(*keys).sortWithinPartitions(KEY_HASH)
        sweep = jvm_class(stream.sparkSession, "Sweep", "computes window features")
        spec = json.dumps({**json.loads(plan.to_json()), "hash": KEY_HASH})
        return ClassicDataFrame(sweep.apply(ordered._jdf, spec, schema.json()), stream.sparkSession)

    return apply


def daily_tiles(keys: Sequence[str], measures: Sequence[MeasureDef], grid_us: int, phase_us: int,
                day_col: str, local: bool = False) -> Callable[[DataFrame], DataFrame]:
    """Stream rows (with their source day ``day_col``) -> one tile row per entity, source day and grid cell.

    Cells are ``grid_us`` long and start at ``phase_us`` modulo ``grid_us``; a cell that spans
    midnight gives one tile per day. A tile sits at its start (``_t``), keeps per measure what its
    aggregates need (count ``_n``, sum ``_s``, min ``_lo``, max ``_hi``, squared deviations from its
    mean ``_q``; the set of distinct values) and ``_last``, the time of its newest row. When every
    window edge lies on the grid, a tile is wholly inside or wholly outside each window, so
    aggregates over tiles equal those over rows. Each row is made a one-row tile, then the tiles
    of a cell are merged (:func:`merged_tiles`).

    With ``local``, the tiles of each input partition are merged where they are, with no shuffle, and
    come out ordered by ``day_col`` (ISO dates), ready for a write partitioned by it. A cell whose rows
    lie in several partitions then has several tiles, which the sweep and the roll-ups merge anyway;
    input partitioned by day (a scan of day partitions) has one per cell.
    """

    def apply(df: DataFrame) -> DataFrame:
        t = F.col(TIME)
        cell = t - F.pmod(t - F.lit(phase_us), F.lit(grid_us))
        start = F.greatest(cell, t - F.pmod(t, F.lit(US_PER_DAY)))
        rows = df.transform(event_tiles(keys, measures, keep=[day_col])).withColumn(TIME, start)  # the columns in tile order
        if not local:
            return rows.transform(merged_tiles([day_col, *keys, TIME, SOURCE], greatest=[LAST]))
        # Sorting by the cell's columns costs a comparison of strings per step (a day's first 8 bytes, the sort's
        # prefix, are shared by its month). One bigint, the day number then a 40-bit hash of the cell, is sorted
        # by radix; cells that share a hash only split into more tiles.
        key = day_key(F.datediff(F.col(day_col), F.lit("1970-01-01")), [*keys, TIME, SOURCE])
        merged = rows.withColumn(LOCAL_KEY, key).transform(
            merged_tiles([LOCAL_KEY, day_col, *keys, TIME, SOURCE], greatest=[LAST], local=(LOCAL_KEY, [day_col])))
        return merged.drop(LOCAL_KEY)

    return apply


def day_key(day_number: Column, columns: Sequence[str]) -> Column:
    """One bigint ordered by ``day_number`` first, then by a 40-bit hash of ``columns``: the sort key of a local
    merge (:func:`merged_tiles`), which Spark sorts by radix. Rows that share a hash only give more tiles."""
    return day_number.cast("bigint") * F.lit(1 << 40) + F.pmod(F.xxhash64(*columns), F.lit(1 << 40))


def merged_tiles(group: Sequence[str], least: Sequence[str] = (), greatest: Sequence[str] = (),
                 local: tuple[str, Sequence[str]] | None = None) -> Callable[[DataFrame], DataFrame]:
    """Tiles -> one tile per value of the ``group`` columns: counts and sums added, min and max kept, distinct
    values united, squared deviations merged (Chan et al., relative to the group's least value, so that equal
    values merge to exactly 0); ``least`` / ``greatest`` columns keep their least / greatest value, the others
    one row's.

    A pass over the tiles sorted by ``group`` (``sparkmlops.TileMerge``): Spark shuffles and sorts them as the
    pass asks, reusing a shuffle by a part of ``group`` (a day) already there, and the tiles come out in that order.
    ``local=(key, implies)`` merges within each partition instead, sorted by the bigint ``key`` (the first group
    column) alone, whose order implies that of the ``implies`` columns (see ``TileMerge.apply``).
    """

    def apply(df: DataFrame) -> DataFrame:
        lists = {n for n, kind in df.dtypes if n.startswith("_m") and kind.startswith("array")}
        measures = sorted(lists | {n.rsplit("_", 1)[0] for n in df.columns if n.startswith("_m") and n not in lists})
        plan = {"group": list(group), "min": list(least), "max": list(greatest), "measures": measures}
        if local is not None:
            plan["local"] = {"key": local[0], "implies": list(local[1])}
        plan = json.dumps(plan)
        merge = jvm_class(df.sparkSession, "TileMerge", "merges feature tiles")
        return ClassicDataFrame(merge.apply(df._jdf, plan), df.sparkSession)

    return apply


def event_tiles(keys: Sequence[str], measures: Sequence[MeasureDef], keep: Sequence[str] = ()) -> Callable[[DataFrame], DataFrame]:
    """Stream rows -> one tile per row, shaped as :func:`daily_tiles`' (without the day column), and ``keep``.

    A build reads its newest source days raw this way, beside the stored tiles of the older ones:
    a one-row tile is wholly inside or outside every window, so the sweep gives the same features.
    """

    def apply(df: DataFrame) -> DataFrame:
        cols = []
        for m in measures:
            name, v = m.measure.column, F.col(m.measure.column)
            if m.measure.kind == "distinct":
                kind = dict(df.dtypes)[name]
                cols.append(F.when(v.isNotNull(), F.array(v)).otherwise(F.array().cast(f"array<{kind}>")).alias(name))
                continue
            stats = {"n": F.when(v.isNotNull(), F.lit(1)).otherwise(F.lit(0)).cast("bigint"), "s": v, "lo": v, "hi": v,
                     "q": F.when(v.isNotNull(), F.lit(0.0))}
            cols += [stats[s].alias(f"{name}_{s}") for s in m.tile_stats()]
        return df.select(*keys, TIME, KIND, SOURCE, *cols, F.col(TIME).alias(LAST), *keep)

    return apply
