"""Point-in-time helpers: the latest version of a row known before each point, in one sorted pass."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from sparkml_ops.transforms.sweep import KIND, KIND_POINT, KIND_ROW, TIME


def latest_known(group_by: Sequence[str], values: Sequence[str], point_col: str) -> Callable[[DataFrame], DataFrame]:
    """Per point, the ``values`` of the latest row of its group strictly before the point's cutoff.

    The input is a stream of value rows (``_kind`` row, ``_t`` = µs from which the row is known)
    and point rows (``_kind`` point, ``_t`` = cutoff, ``point_col``). Sorted by time, a point comes
    before a row of the same time, which is therefore not yet known; rows of the same time are
    sorted by their values, so the greatest wins, as ``max(struct(time, values))`` would choose.
    Points with no known row are dropped. One shuffle and one sort, however many points per group.
    """

    def apply(df: DataFrame) -> DataFrame:
        order = Window.partitionBy(*group_by).orderBy(TIME, KIND, *values).rowsBetween(Window.unboundedPreceding, 0)
        row = F.when(F.col(KIND) == KIND_ROW, F.struct(*[F.col(v) for v in values]))
        latest = df.withColumn("_latest", F.last(row, ignorenulls=True).over(order))
        known = latest.where((F.col(KIND) == KIND_POINT) & F.col("_latest").isNotNull())
        return known.select(*group_by, point_col, *[F.col(f"_latest.{v}").alias(v) for v in values])

    return apply
