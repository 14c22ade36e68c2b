"""Per-feature drift counts as a few aggregate columns, so they ride along a pass that already reads the rows.

Each feature of a model's per-feature baseline (``extra.feature_baseline`` of its manifest) becomes one small
integer *code* per row (:func:`drift_codes`): its baseline bin, found by a binary search over the bin edges,
with NULL and out-of-range values given codes of their own; for a categorical feature, its category's index
or "unseen". :func:`drift_aggregates` then counts the codes with one ``histogram_numeric`` per feature, plus
the feature's min and max. :func:`drift_counts` reads the counts back from the one aggregated row, and
:func:`observe_drift` attaches all of it to a DataFrame as an ``Observation``. Nothing is grouped or
collected but that row.

Why codes and histograms rather than one conditional count per bin: 40 features x 10 bins made ~560
aggregate columns, and Spark evaluates an observation (or an aggregate with more than
``spark.sql.codegen.maxFields`` columns) per column per row; it cost several times the score job itself
(docs/benchmarks.md). A code is computed in the whole-stage generated projection in about four comparisons,
and ``histogram_numeric`` keeps one exact count per distinct value as long as it is given at least as many
bins as there are distinct values, which is the case here by construction (``_bins``).
"""

from __future__ import annotations

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


def _bin_of(value: Column, edges: Sequence[float], lo: int, hi: int) -> Column:
    """The number of ``edges`` <= value, searched in halves: ``value`` is known to be >= edges[lo - 1]."""
    if lo == hi:
        return F.lit(lo)
    mid = (lo + hi) // 2
    return F.when(value >= F.lit(float(edges[mid])), _bin_of(value, edges, mid + 1, hi)).otherwise(
        _bin_of(value, edges, lo, mid))


def _code(name: str, base: Mapping[str, Any]) -> Column:
    """One feature's code: -1 NULL; numeric: bin 0..m, m+1 below the training min, m+2 above its max; categorical: index, k unseen."""
    col = F.col(f"`{name}`")
    code = F.when(col.isNull(), F.lit(NULL_CODE))
    if _is_categorical(base):
        categories = base.get("categories") or []
        for j, category in enumerate(categories):
            code = code.when(col == F.lit(category), F.lit(j))
        return code.otherwise(F.lit(len(categories)))
    value, edges = col.cast("double"), list(base.get("edges") or [])
    if base.get("min") is not None:  # NaN compares above every double in Spark: out of range, as "above the max"
        code = code.when(value < F.lit(float(base["min"])), F.lit(len(edges) + 1))
        code = code.when(value > F.lit(float(base["max"])), F.lit(len(edges) + 2))
    return code.otherwise(_bin_of(value, edges, 0, len(edges)))


def _bins(base: Mapping[str, Any]) -> int:
    """How many distinct codes a feature can have (NULL included), so its histogram never merges two of them."""
    if _is_categorical(base):
        return len(base.get("categories") or []) + 2
    return len(base.get("edges") or []) + 4


def drift_codes(baseline: Mapping[str, Mapping[str, Any]]) -> Callable[["DataFrame"], "DataFrame"]:
    """Adds each feature's code column (named ``__drift_code_<i>``) for :func:`drift_aggregates` to count."""

    def transform(df: "DataFrame") -> "DataFrame":
        return df.select("*", *[_code(name, base).alias(_code_column(i)) for i, (name, base) in enumerate(baseline.items())])

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
        present = rows - codes.get(NULL_CODE, 0)
        if _is_categorical(base):
            size = len(base.get("categories") or [])
            other = codes.get(size, 0)
            out[name] = FeatureCounts(rows, present, tuple(codes.get(j, 0) for j in range(size)), other, other, None, None)
            continue
        m = len(base.get("edges") or [])
        below, above = codes.get(m + 1, 0), codes.get(m + 2, 0)  # quantile edges lie within [min, max]: bins 0 and m
        bins = [codes.get(j, 0) + (below if j == 0 else 0) + (above if j == m else 0) for j in range(m + 1)]
        counts = tuple(bins) if base.get("shares") else ()
        out[name] = FeatureCounts(rows, present, counts, 0, below + above, row.get(f"f{i}_min"), row.get(f"f{i}_max"))
    return out
