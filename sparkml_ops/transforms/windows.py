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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from sparkml_ops.transforms.sweep import (
    DISTINCT_FUNCS, KIND, KIND_POINT, KIND_ROW, LAST, NUMERIC_FUNCS, TIME, Measure, Output, SweepPlan, sweep_batches,
)

US_PER_DAY = 86_400 * 1_000_000
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
    """A measure and the Spark expression of its value on a source row (NULL where the row does not count)."""

    measure: Measure
    value: Column


def plan_measures(aggregates: Sequence[WindowAggregate]) -> tuple[list[MeasureDef], tuple[Output, ...]]:
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
        name = f"_m{len(defs)}"
        if kind == "distinct":
            defs.append(MeasureDef(Measure(name, "distinct"), value))
        elif funcs & set(NUMERIC_FUNCS):
            defs.append(MeasureDef(Measure(name, "numeric"), value.cast("double")))
        else:
            defs.append(MeasureDef(Measure(name, "count"), F.when(value.isNotNull(), F.lit(1).cast("tinyint"))))
        index[(kind, column, where)] = len(defs) - 1
    outputs = tuple(Output(a.name, a.func, index[("distinct" if a.func in DISTINCT_FUNCS else "value", a.column, a.where)],
                           a.window_us) for a in aggregates)
    return defs, outputs


def event_rows(keys: Sequence[str], time_col: str, measures: Sequence[MeasureDef]) -> Callable[[DataFrame], DataFrame]:
    """Source rows -> stream rows: keys, ``_t`` (µs), ``_kind`` = row, one column per measure."""

    def apply(df: DataFrame) -> DataFrame:
        return df.select(*keys, F.unix_micros(F.col(time_col)).alias(TIME), F.lit(KIND_ROW).cast("tinyint").alias(KIND),
                         *[m.value.alias(m.measure.column) for m in measures])

    return apply


def point_rows(keys: Sequence[str], point_col: str, time_col: str, lag_us: int) -> Callable[[DataFrame], DataFrame]:
    """Points -> stream rows: keys, ``_t`` = the point's time minus the lag (its cutoff), ``_kind`` = point, the point."""

    def apply(df: DataFrame) -> DataFrame:
        cutoff = F.unix_micros(F.col(time_col)) - F.lit(lag_us)
        return df.select(*keys, cutoff.alias(TIME), F.lit(KIND_POINT).cast("tinyint").alias(KIND), F.col(point_col))

    return apply


def output_schema(plan: SweepPlan, key_types: dict[str, str], point_type: str) -> StructType:
    """Spark schema of :func:`window_features`: keys, the point column, the aggregates, the recency features."""
    fields = [f"`{k}` {key_types[k]}" for k in plan.keys] + [f"`{plan.point_column}` {point_type}"]
    fields += [f"`{o.name}` {'bigint' if o.func == 'count' or o.func in DISTINCT_FUNCS else 'double'}" for o in plan.outputs]
    fields += [f"`{r}` double" for r in plan.recency]
    return StructType.fromDDL(", ".join(fields))


def window_features(plan: SweepPlan, schema: StructType) -> Callable[[DataFrame], DataFrame]:
    """Stream rows (and point rows) -> one row per point with every window aggregate of ``plan``.

    One shuffle by the entity keys, one sort by time within each partition, one pass.
    """

    def apply(stream: DataFrame) -> DataFrame:
        keys = list(plan.keys)
        ordered = stream.repartition(*keys).sortWithinPartitions(*keys, TIME, KIND)
        return ordered.mapInArrow(partial(sweep_batches, plan), schema)

    return apply


def tile_columns(measures: Sequence[MeasureDef]) -> list[Column]:
    """Aggregates of a daily tile, per measure (see :class:`~sparkml_ops.transforms.sweep.Measure`), and ``_last``."""
    cols = [F.max(F.col(TIME)).alias(LAST)]
    for m in measures:
        name, v = m.measure.column, F.col(m.measure.column)
        if m.measure.kind == "distinct":
            cols.append(F.collect_set(v).alias(name))
            continue
        cols.append(F.count(v).alias(f"{name}_n"))
        if m.measure.kind == "numeric":
            # The squared deviations of a tile come from Spark's own (stable) variance.
            cols += [F.sum(v).alias(f"{name}_s"), F.min(v).alias(f"{name}_lo"), F.max(v).alias(f"{name}_hi"),
                     (F.coalesce(F.var_pop(v), F.lit(0.0)) * F.count(v)).alias(f"{name}_q")]
    return cols
