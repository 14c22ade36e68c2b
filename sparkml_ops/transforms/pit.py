"""Point-in-time helpers: the latest version of a row known before a cutoff."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def latest_before(
    group_by: Sequence[str], time_col: str, cutoff_col: str, values: Sequence[str]
) -> Callable[[DataFrame], DataFrame]:
    """Per group, the ``values`` of the row with the greatest ``time_col`` strictly before ``cutoff_col``.

    Rows at or after the cutoff are not yet known and are ignored. Ties on ``time_col`` are
    broken by the values themselves, so the result is deterministic.
    """

    def apply(df: DataFrame) -> DataFrame:
        known = df.where(F.col(time_col) < F.col(cutoff_col))
        latest = F.max(F.struct(F.col(time_col).alias("_t"), *[F.col(v) for v in values])).alias("_latest")
        grouped = known.groupBy(*group_by).agg(latest)
        return grouped.select(*group_by, *[F.col(f"_latest.{v}").alias(v) for v in values])

    return apply
