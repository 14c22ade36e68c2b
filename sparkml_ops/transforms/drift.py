"""Per-feature drift counts as a few aggregate columns, so they ride along a pass that already reads the rows.

Each feature of a model's per-feature baseline (``extra.feature_baseline`` of its manifest) becomes one small
integer *code* per row (:func:`drift_codes`): for a numeric feature, its ``Bucketizer`` bucket over the bin
edges plus the training min and max, so one bucket tells the bin and whether the value is out of range; for
a categorical feature, its category's index or "unseen". :func:`drift_aggregates` then counts the codes with
one ``histogram_numeric`` per feature, plus the feature's min and max. :func:`drift_counts` maps the counts
back to bins from the one aggregated row, and :func:`observe_drift` attaches all of it to a DataFrame as an
``Observation``. Nothing is grouped or collected but that row.

Why codes and histograms rather than one conditional count per bin: 40 features x 10 bins made ~560
aggregate columns, and Spark evaluates an observation (or an aggregate with more than
``spark.sql.codegen.maxFields`` columns) per column per row; it cost several times the score job itself.
Why ``Bucketizer`` rather than a ``CASE WHEN`` binary search: 40 of those in one whole-stage generated
method made it too large for the JIT, so the pass ran interpreted (docs/benchmarks.md); a ``Bucketizer``
column is one call of a compiled binary search. ``histogram_numeric`` keeps one exact count per distinct
value as long as it is given at least as many bins as there are distinct values, which is the case here by
construction (``_bins``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyspark.sql import Column
from pyspark.sql import functions as F

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, Observation

ROWS = "drift_rows"
NULL_CODE = -1


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
    """A numeric feature's ``Bucketizer`` splits: -inf, the training min, the edges, just above the max, +inf.

    A bucket then tells a value's bin (no edge lies inside it) and whether it is below the training min or
    above its max; the outer infinities keep every value in a bucket. Three splits at least, as Bucketizer requires.
    """
    edges = [float(e) for e in base.get("edges") or []]
    if base.get("min") is not None:
        edges += [float(base["min"]), math.nextafter(float(base["max"]), math.inf)]
    return [-math.inf, *(sorted(set(edges)) or [0.0]), math.inf]  # a lone 0.0 split (no values in training) changes no bin


def _bucket_bins(base: Mapping[str, Any]) -> list[int]:
    """What each ``Bucketizer`` bucket of :func:`_splits` (then NaN's extra bucket) counts toward: bin 0..m, m+1 below min, m+2 above max."""
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
    """A categorical feature's code: -1 NULL, the category's index, or k for a category unseen in training."""
    col, categories = F.col(f"`{name}`"), base.get("categories") or []
    code = F.when(col.isNull(), F.lit(NULL_CODE))
    for j, category in enumerate(categories):
        code = code.when(col == F.lit(category), F.lit(j))
    return code.otherwise(F.lit(len(categories)))


def _bins(base: Mapping[str, Any]) -> int:
    """How many distinct codes a feature can have (NULL included), so its histogram never merges two of them."""
    if _is_categorical(base):
        return len(base.get("categories") or []) + 2
    return len(_splits(base))


def drift_codes(baseline: Mapping[str, Mapping[str, Any]]) -> Callable[["DataFrame"], "DataFrame"]:
    """Adds each feature's code column (named ``__drift_code_<i>``) for :func:`drift_aggregates` to count.

    Numeric codes are ``Bucketizer`` buckets (NULL stays NULL): a compiled binary search per column. Nested
    ``CASE WHEN`` searches for 40 features made one generated method too large for the JIT (docs/benchmarks.md).
    """
    from pyspark.ml.feature import Bucketizer

    numeric = [(i, name, base) for i, (name, base) in enumerate(baseline.items()) if not _is_categorical(base)]
    categorical = [(i, name, base) for i, (name, base) in enumerate(baseline.items()) if _is_categorical(base)]

    def transform(df: "DataFrame") -> "DataFrame":
        out = df.select("*", *[_categorical_code(name, base).alias(_code_column(i)) for i, name, base in categorical])
        if not numeric:
            return out
        return Bucketizer(splitsArray=[_splits(base) for _, _, base in numeric], handleInvalid="keep",
                          inputCols=[name for _, name, _ in numeric],
                          outputCols=[_code_column(i) for i, _, _ in numeric]).transform(out)

    return transform


def drift_aggregates(baseline: Mapping[str, Mapping[str, Any]]) -> list[Column]:
    """The aggregate columns over :func:`drift_codes`' output: the row count, then per feature its code counts, min, max."""
    out = [F.count(F.lit(1)).alias(ROWS)]
    for i, (name, base) in enumerate(baseline.items()):
        out.append(F.histogram_numeric(F.col(_code_column(i)), F.lit(_bins(base))).alias(f"f{i}_codes"))
        if not _is_categorical(base):
            value = F.col(f"`{name}`").cast("double")
            out += [F.min(value).alias(f"f{i}_min"), F.max(value).alias(f"f{i}_max")]
    return out


def observe_drift(observation: "Observation", baseline: Mapping[str, Mapping[str, Any]]) -> Callable[["DataFrame"], "DataFrame"]:
    """Counts :func:`drift_aggregates` into ``observation`` while the rows flow by; the rows come out unchanged."""

    def transform(df: "DataFrame") -> "DataFrame":
        coded = df.transform(drift_codes(baseline)).observe(observation, *drift_aggregates(baseline))
        return coded.drop(*[_code_column(i) for i in range(len(baseline))])

    return transform


def _code_counts(histogram: Sequence[Any] | None) -> dict[int, int]:
    """Count per code from ``histogram_numeric``'s (x, y) entries; partial histograms may repeat an x."""
    out: dict[int, int] = {}
    for entry in histogram or []:
        code = int(round(float(entry[0])))
        out[code] = out.get(code, 0) + int(round(float(entry[1])))
    return out


def drift_counts(row: Mapping[str, Any], baseline: Mapping[str, Mapping[str, Any]]) -> dict[str, FeatureCounts]:
    """Each feature's counts from the row :func:`drift_aggregates` produced."""
    rows = int(row.get(ROWS) or 0)
    out = {}
    for i, (name, base) in enumerate(baseline.items()):
        codes = _code_counts(row.get(f"f{i}_codes"))
        present = sum(n for code, n in codes.items() if code != NULL_CODE)  # numeric NULLs have no code at all
        if _is_categorical(base):
            size = len(base.get("categories") or [])
            other = codes.get(size, 0)
            out[name] = FeatureCounts(rows, present, tuple(codes.get(j, 0) for j in range(size)), other, other, None, None)
            continue
        m, by_bin = len(base.get("edges") or []), {}
        for bucket, code in enumerate(_bucket_bins(base)):
            by_bin[code] = by_bin.get(code, 0) + codes.get(bucket, 0)
        below, above = by_bin.get(m + 1, 0), by_bin.get(m + 2, 0)  # quantile edges lie within [min, max]: bins 0 and m
        bins = [by_bin.get(j, 0) + (below if j == 0 else 0) + (above if j == m else 0) for j in range(m + 1)]
        counts = tuple(bins) if base.get("shares") else ()
        out[name] = FeatureCounts(rows, present, counts, 0, below + above, row.get(f"f{i}_min"), row.get(f"f{i}_max"))
    return out
