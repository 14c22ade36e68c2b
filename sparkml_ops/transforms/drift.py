"""Per-feature drift counts taken inside the pass that already reads the rows: no extra scan, no extra plan node.

Each feature of a model's per-feature baseline (``extra.feature_baseline`` of its manifest) becomes one double
*input* per row: a numeric feature's value, or a categorical feature's category index ("unseen" is one more
index; NULL stays NULL). :func:`tap_drift` wraps a column every output row computes (the first entity key of
the scores) in ``sparkmlops.DriftTap`` (sparkml_ops/jvm): the column passes through unchanged, and the inputs are
counted into a ``sparkmlops.DriftTally`` accumulator by a few generated instructions each, inside the stage's
own generated code. Per feature the tally keeps the rows in each ``Bucketizer``-style bucket over the bin edges
plus the training min and max (one bucket tells the bin and whether the value is out of range), the NULLs, min
and max. :func:`tally_counts` maps the buckets back to bins once the insert has run. Nothing is grouped or
collected but the tally itself.

Why not an ``Observation`` (the previous design): an observation is a plan node of its own; it cuts the
stage's generated code in two, so every row is materialised and handed over, which cost the JVM-scored job
more than the +15% budget even when the observation only counted rows (docs/benchmarks.md). Before that,
Spark expressions for the counts cost 2.6x the score job (~121 interpreted aggregates).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyspark.sql import Column
from pyspark.sql import functions as F

from sparkml_ops.jvm import jvm_class

if TYPE_CHECKING:
    from py4j.java_gateway import JavaObject
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import DataType



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


def _is_categorical(base: Mapping[str, Any]) -> bool:
    return base.get("kind") == "categorical"


def _splits(base: Mapping[str, Any]) -> list[float]:
    """A feature's bucket splits: -inf, then for a numeric one the training min, the edges, just above the max; +inf.

    A bucket then tells a value's bin (no edge lies inside it) and whether it is below the training min or
    above its max; the outer infinities keep every value in a bucket. A categorical feature's bucket j holds
    category index j - 1 (the index of "unseen" included).
    """
    if _is_categorical(base):
        return [-math.inf, *range(len(base.get("categories") or []) + 2), math.inf]
    edges = [float(e) for e in base.get("edges") or []]
    if base.get("min") is not None:
        edges += [float(base["min"]), math.nextafter(float(base["max"]), math.inf)]
    return [-math.inf, *(sorted(set(edges)) or [0.0]), math.inf]  # a lone 0.0 split (no values in training) changes no bin


def _bucket_bins(base: Mapping[str, Any]) -> list[int]:
    """What each bucket of a numeric :func:`_splits` (then NaN's extra bucket) counts toward: bin 0..m, m+1 below min, m+2 above max."""
    edges, splits = list(base.get("edges") or []), _splits(base)
    m, ranged = len(edges), base.get("min") is not None
    out = []
    for lower in splits[:-1]:
        if ranged and lower < float(base["min"]):
            out.append(m + 1)
        elif ranged and lower > float(base["max"]):
            out.append(m + 2)
        else:
            out.append(sum(e <= lower for e in edges))
    return [*out, m + 2 if ranged else m]  # NaN compares above every double in Spark: "above the max", as min/max see it


def _categorical_code(name: str, base: Mapping[str, Any], dtype: "DataType") -> Column:
    """A categorical feature's input: NULL, the category's index, or k for a category unseen in training.

    One ``array_position`` over the training categories (a constant array of the column's type), not one
    ``CASE WHEN`` branch per category: its generated code is a loop, the same size for 3 categories or 300,
    and it sits in the score stage's own method, which HotSpot does not compile past 8,000 bytes.
    """
    from pyspark.sql.types import ArrayType

    col, categories = F.col(f"`{name}`"), base.get("categories") or []
    if not categories:
        return F.when(col.isNotNull(), F.lit(0.0))
    position = F.array_position(F.array(*[F.lit(c) for c in categories]).cast(ArrayType(dtype)), col)
    return F.when(position == 0, F.lit(len(categories))).otherwise(position - 1).cast("double")


def _input(name: str, base: Mapping[str, Any], dtype: "DataType") -> Column:
    """What the tally counts for a feature: its category index if categorical, else its value as a double."""
    return _categorical_code(name, base, dtype) if _is_categorical(base) else F.col(f"`{name}`").cast("double")


def drift_tally(spark: "SparkSession", baseline: Mapping[str, Mapping[str, Any]]) -> "JavaObject":
    """A new ``sparkmlops.DriftTally`` for ``baseline``'s features, registered with the session's SparkContext.

    Raises:
        EnvironmentCheckError: the session has no ``sparkmlops.DriftTally`` (the jar of scripts/setup is missing).
    """
    tally = jvm_class(spark, "DriftTally", "counts per-feature drift")
    inner = [[float(s) for s in _splits(base)[1:-1]] for base in baseline.values()]  # finite, so plain numbers cross py4j
    return tally.register(spark.sparkContext._jsc.sc(), inner)


def tap_drift(tally: "JavaObject", baseline: Mapping[str, Mapping[str, Any]], through: str) -> Callable[["DataFrame"], "DataFrame"]:
    """Counts ``baseline``'s features into ``tally`` as the column ``through`` is computed; the rows come out unchanged.

    ``through`` must be a column the plan computes once per row that reaches the output (an entity key of
    the scores), so the counts are those of the rows written.
    """
    from pyspark import SparkContext
    from pyspark.sql.classic.column import Column as ClassicColumn

    def transform(df: "DataFrame") -> "DataFrame":
        tap = SparkContext._active_spark_context._jvm.sparkmlops.DriftTap  # type: ignore[union-attr]
        inputs = [_input(name, base, df.schema[name].dataType)._jc for name, base in baseline.items()]
        return df.withColumn(through, ClassicColumn(tap.column(tally, F.col(f"`{through}`")._jc, inputs)))

    return transform


def tally_counts(tally: "JavaObject", baseline: Mapping[str, Mapping[str, Any]]) -> dict[str, FeatureCounts]:
    """Each feature's counts in ``tally`` (merged over the finished tasks)."""
    n, size = len(baseline), sum(len(_splits(base)) for base in baseline.values())
    data = bytes(tally.toBytes())
    longs = struct.unpack_from(f">{1 + size + n}q", data)
    doubles = struct.unpack_from(f">{2 * n}d", data, 8 * (1 + size + n))
    return _counts(longs[0], longs[1:1 + size], longs[1 + size:], doubles[:n], doubles[n:], baseline)


def _counts(rows: int, all_buckets: Sequence[int], nulls: Sequence[int], low: Sequence[float], high: Sequence[float],
            baseline: Mapping[str, Mapping[str, Any]]) -> dict[str, FeatureCounts]:
    """Each feature's counts from the tally's arrays: its buckets (features one after another), NULLs, min, max."""
    offset, out = 0, {}
    for i, (name, base) in enumerate(baseline.items()):
        size = len(_splits(base))  # its buckets, then NaN's
        buckets = list(all_buckets[offset:offset + size])
        present, offset = rows - int(nulls[i]), offset + size
        if _is_categorical(base):
            k = len(base.get("categories") or [])
            other = buckets[k + 1]  # bucket j + 1 holds category index j; index k is "unseen"
            out[name] = FeatureCounts(rows, present, tuple(buckets[1:k + 1]), other, other, None, None)
            continue
        m, by_bin = len(base.get("edges") or []), {}
        for bucket, code in enumerate(_bucket_bins(base)):
            by_bin[code] = by_bin.get(code, 0) + buckets[bucket]
        below, above = by_bin.get(m + 1, 0), by_bin.get(m + 2, 0)  # quantile edges lie within [min, max]: bins 0 and m
        bins = [by_bin.get(j, 0) + (below if j == 0 else 0) + (above if j == m else 0) for j in range(m + 1)]
        counts = tuple(bins) if base.get("shares") else ()
        least, most = (low[i], high[i]) if present else (None, None)
        out[name] = FeatureCounts(rows, present, counts, 0, below + above, least, most)
    return out
