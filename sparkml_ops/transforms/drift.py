"""Per-feature drift counts as aggregate expressions, so they ride along a pass that already reads the rows.

:func:`drift_aggregates` turns a model's per-feature baseline (``extra.feature_baseline`` of its manifest)
into one flat list of aggregate columns: per feature the non-null count, min, max, out-of-range counts and,
for numeric features, the count below each baseline bin edge (cumulative; bins are differences), for
categorical ones the count per training category. :func:`drift_counts` reads them back from the one
aggregated row. Nothing is grouped or collected but that row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pyspark.sql import Column
from pyspark.sql import functions as F

ROWS = "drift_rows"


@dataclass(frozen=True)
class FeatureCounts:
    """One feature's counts on the scored rows: per bin (or category), unseen categories, nulls, range."""

    rows: int
    present: int
    counts: tuple[int, ...]
    other: int  # categorical: values not among the training categories
    out_of_range: int  # numeric: below the training min or above its max; categorical: same as ``other``
    min: float | None
    max: float | None

    @property
    def null_rate(self) -> float | None:
        """Share of rows where the feature is NULL (None without rows)."""
        return (self.rows - self.present) / self.rows if self.rows else None


def _count_if(condition: Column) -> Column:
    return F.sum(F.when(condition, F.lit(1)).otherwise(F.lit(0)))


def drift_aggregates(baseline: Mapping[str, Mapping[str, Any]]) -> list[Column]:
    """The aggregate columns of every feature of ``baseline`` (named ``f<i>_...``), plus the row count."""
    out = [F.count(F.lit(1)).alias(ROWS)]
    for i, (name, base) in enumerate(baseline.items()):
        col, p = F.col(f"`{name}`"), f"f{i}_"
        out.append(F.count(col).alias(p + "present"))
        if base.get("kind") == "categorical":
            out += [_count_if(col == F.lit(c)).alias(f"{p}c{j}") for j, c in enumerate(base.get("categories") or [])]
            continue
        value = col.cast("double")
        out += [F.min(value).alias(p + "min"), F.max(value).alias(p + "max")]
        out += [_count_if(value < F.lit(float(e))).alias(f"{p}b{j}") for j, e in enumerate(base.get("edges") or [])]
        if base.get("min") is not None:
            out.append(_count_if((value < F.lit(float(base["min"]))) | (value > F.lit(float(base["max"])))).alias(p + "out"))
    return out


def bin_counts_from_below(below: list[int], present: int) -> list[int]:
    """Counts per bin from the counts of values below each edge (cumulative), and the non-null count."""
    cumulative = [*below, present]
    return [cumulative[0], *[cumulative[i] - cumulative[i - 1] for i in range(1, len(cumulative))]]


def drift_counts(row: Mapping[str, Any], baseline: Mapping[str, Mapping[str, Any]]) -> dict[str, FeatureCounts]:
    """Each feature's counts from the row :func:`drift_aggregates` produced."""
    rows = int(row.get(ROWS) or 0)
    out = {}
    for i, (name, base) in enumerate(baseline.items()):
        p = f"f{i}_"
        present = int(row.get(p + "present") or 0)
        if base.get("kind") == "categorical":
            counts = tuple(int(row.get(f"{p}c{j}") or 0) for j in range(len(base.get("categories") or [])))
            other = present - sum(counts)
            out[name] = FeatureCounts(rows, present, counts, other, other, None, None)
            continue
        below = [int(row.get(f"{p}b{j}") or 0) for j in range(len(base.get("edges") or []))]
        counts = tuple(bin_counts_from_below(below, present)) if base.get("shares") else ()
        out[name] = FeatureCounts(rows, present, counts, 0, int(row.get(p + "out") or 0), row.get(p + "min"), row.get(p + "max"))
    return out
