"""Per-feature drift counts as one aggregate column, so they ride along a pass that already reads the rows.

Each feature of a model's per-feature baseline (``extra.feature_baseline`` of its manifest) becomes one double
*input* per row: a numeric feature's value, or a categorical feature's category index, added as a column
by :func:`drift_codes` ("unseen" is one more index; NULL stays NULL). :func:`drift_aggregates` counts all of
them with ONE compiled Catalyst aggregate, ``sparkmlops.DriftCounts`` (sparkml_ops/jvm): per feature, the rows
in each ``Bucketizer``-style bucket over the bin edges plus the training min and max (one bucket tells the
bin and whether the value is out of range), the NULLs, min and max. :func:`drift_counts` maps the buckets back to bins from the one aggregated
row, and :func:`observe_drift` attaches it to a DataFrame as an ``Observation``. Nothing is grouped or
collected but that row.

Why one compiled aggregate: Spark evaluates an observation's aggregates per column per row, interpreted. As
Spark expressions the counts took ~121 aggregate columns (one ``histogram_numeric`` of a ``Bucketizer`` code,
a min and a max per feature), about 200 ns per value and 2.6x the score job; before that, nested ``CASE WHEN``
codes made one generated method too large for the JIT, and one conditional count per bin ~560 aggregates
(docs/benchmarks.md). The aggregate does a row's 40 binary searches in one loop, reading Spark's internal row
directly (a typed ``Aggregator`` first converted each row to an external ``Row`` of boxed doubles).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyspark.sql import Column
from pyspark.sql import functions as F

from sparkml_ops.errors import EnvironmentCheckError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, Observation

AGGREGATE = "drift"
JAR_HINT = ("Its jar (sparkml_ops/jvm) is built by scripts/setup and put on the classpath by the session factory: "
            "run scripts/setup. Under spark-submit in YARN cluster mode, the submit line must also carry "
            "--conf spark.driver.extraClassPath=./env/lib/python3.11/site-packages/sparkml_ops/jvm/sparkml-ops-jvm.jar (README).")


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


def _code_column(i: int) -> str:
    return f"__drift_code_{i}"


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


def _categorical_code(name: str, base: Mapping[str, Any]) -> Column:
    """A categorical feature's input: NULL, the category's index, or k for a category unseen in training."""
    col, categories = F.col(f"`{name}`"), base.get("categories") or []
    code = F.when(col.isNull(), F.lit(None))
    for j, category in enumerate(categories):
        code = code.when(col == F.lit(category), F.lit(j))
    return code.otherwise(F.lit(len(categories))).cast("double")


def drift_codes(baseline: Mapping[str, Mapping[str, Any]]) -> Callable[["DataFrame"], "DataFrame"]:
    """Adds each categorical feature's input column (``__drift_code_<i>``, double) for :func:`drift_aggregates` to count.

    A numeric feature needs none: the aggregate reads its own column. Why: 40 copied columns doubled the
    width of every row between the scan and the observation, and cost about as much as the counting.
    """

    def transform(df: "DataFrame") -> "DataFrame":
        return df.select("*", *[_categorical_code(name, base).alias(_code_column(i))
                                for i, (name, base) in enumerate(baseline.items()) if _is_categorical(base)])

    return transform


def _input(i: int, name: str, base: Mapping[str, Any]) -> Column:
    """What the aggregate counts for feature ``i``: its :func:`drift_codes` column if categorical, else its value as a double."""
    return F.col(_code_column(i)) if _is_categorical(base) else F.col(f"`{name}`").cast("double")


def drift_aggregates(baseline: Mapping[str, Mapping[str, Any]]) -> list[Column]:
    """The one aggregate column (``drift``) over a :func:`drift_codes` output: rows, per-feature bucket counts, NULLs, min, max.

    Raises:
        EnvironmentCheckError: the session has no ``sparkmlops.DriftCounts`` (the jar of scripts/setup is missing).
    """
    from pyspark import SparkContext
    from pyspark.sql.classic.column import Column as ClassicColumn

    from py4j.java_gateway import JavaClass

    counter = SparkContext._active_spark_context._jvm.sparkmlops.DriftCounts  # type: ignore[union-attr]
    if not isinstance(counter, JavaClass):  # py4j answers a missing class with a JavaPackage
        raise EnvironmentCheckError("the Spark session cannot load sparkmlops.DriftCounts, which counts per-feature drift.",
                                    hint=JAR_HINT)
    inner = [[float(s) for s in _splits(base)[1:-1]] for base in baseline.values()]  # finite, so plain numbers cross py4j
    columns = [_input(i, name, base)._jc for i, (name, base) in enumerate(baseline.items())]
    return [ClassicColumn(counter.column(inner, columns)).alias(AGGREGATE)]


def observe_drift(observation: "Observation", baseline: Mapping[str, Mapping[str, Any]]) -> Callable[["DataFrame"], "DataFrame"]:
    """Counts :func:`drift_aggregates` into ``observation`` while the rows flow by; the rows come out unchanged."""

    def transform(df: "DataFrame") -> "DataFrame":
        coded = df.transform(drift_codes(baseline)).observe(observation, *drift_aggregates(baseline))
        return coded.drop(*[_code_column(i) for i, base in enumerate(baseline.values()) if _is_categorical(base)])

    return transform


def drift_counts(row: Mapping[str, Any], baseline: Mapping[str, Mapping[str, Any]]) -> dict[str, FeatureCounts]:
    """Each feature's counts from the row :func:`drift_aggregates` produced."""
    agg = row.get(AGGREGATE)
    rows, offset, out = int(agg["rows"]) if agg else 0, 0, {}
    for i, (name, base) in enumerate(baseline.items()):
        size = len(_splits(base))  # its buckets, then NaN's
        buckets = list(agg["buckets"][offset:offset + size]) if agg else [0] * size
        present, offset = rows - (int(agg["nulls"][i]) if agg else 0), offset + size
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
        low, high = (agg["min"][i], agg["max"][i]) if present else (None, None)
        out[name] = FeatureCounts(rows, present, counts, 0, below + above, low, high)
    return out
