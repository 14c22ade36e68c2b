"""The plan of the point-in-time sweep: what one pass over a stream sorted by (entity, time) computes.

The input is a stream of rows sorted by (entity, time): events (or daily tiles of events),
attribute rows and, for training sets, the points at which features are asked for. For a point
with cutoff ``b`` and a window ``w`` the rows that count are ``b - w <= t < b``. The pass itself
is ``sparkmlops.Sweep`` (sparkml_ops/jvm), which reads this plan as JSON
(:meth:`SweepPlan.to_json`): every step is a scan or a binary search over one entity's rows, so
the cost is linear in rows + points whatever the window lengths:

* counts are differences of prefix counts (exact integers);
* sum, mean, min, max and stddev use the blocks of van Herk / Gil-Werman: time is cut into
  blocks of length ``w``, so ``[b - w, b)`` is a suffix of one block plus a prefix of the next.
  Both parts are scans that restart at each block, so no running total is ever subtracted:
  sums are as exact as a plain sum, and the variance merges two parts with Chan's formula from
  moments shifted by a value of the part itself (equal values give exactly 0);
* distinct counts: an occurrence of a value counts from its time until the next occurrence of
  the same value or until it leaves the window, whichever is first; a count is then the
  number of such intervals that have started minus those that have ended (exact integers).

No Spark here: :mod:`sparkml_ops.transforms.windows` runs the pass.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

US_PER_DAY = 86_400 * 1_000_000
KIND_POINT, KIND_ROW = 0, 1
TIME, KIND, SOURCE, LAST = "_t", "_kind", "_src", "_last"
NUMERIC_FUNCS = ("sum", "mean", "min", "max", "stddev")
DISTINCT_FUNCS = ("count_distinct", "approx_count_distinct")


@dataclass(frozen=True)
class Measure:
    """One input of aggregates: a stream column holding a value where the row counts (NULL elsewhere).

    ``kind`` is ``count`` (only non-NULL values are counted), ``numeric`` (a double: count, sum, mean,
    min, max, stddev) or ``distinct`` (any type; a list of the tile's distinct values in tiles).
    In tiles a numeric measure ``m`` is the columns ``m_n, m_s, m_lo, m_hi, m_q``: count, sum, min,
    max and the sum of squared deviations from the tile's mean; a count measure is ``m_n``.
    """

    column: str
    kind: str


@dataclass(frozen=True)
class Output:
    """One aggregate feature: ``func`` of measure number ``measure`` over ``window_us`` before the cutoff."""

    name: str
    func: str
    measure: int
    window_us: int


@dataclass(frozen=True)
class EventsPlan:
    """Aggregates and recency of one events source (rows with ``_src`` = ``source``).

    Attributes:
        lag_us: the availability lag: a point at time T has the cutoff T - lag.
        horizon_us: the largest window: a build row exists only for entities with a row inside it,
            and recency looks back that far.
        tiled: rows are daily tiles (pre-aggregated measures, ``_last`` = time of the tile's last
            event) rather than single events.
    """

    source: int
    measures: tuple[Measure, ...]
    outputs: tuple[Output, ...]
    recency: tuple[str, ...]
    lag_us: int
    horizon_us: int
    tiled: bool = False

    @property
    def windows(self) -> list[int]:
        """Distinct windows of the outputs, shortest first."""
        return sorted({o.window_us for o in self.outputs})

    @property
    def reach_us(self) -> int:
        """How far before a point this source looks."""
        return self.lag_us + max(self.horizon_us, *self.windows) if self.outputs else self.lag_us + self.horizon_us


@dataclass(frozen=True)
class AttributesPlan:
    """Row-level values of one attributes source: those of the latest row known strictly before each cutoff.

    Rows carry ``_t`` = the µs from which they are known; at most one row per entity and time.
    """

    source: int
    values: tuple[str, ...]
    lag_us: int


@dataclass(frozen=True)
class SweepPlan:
    """Everything computed in one pass over a stream of all sources' rows (``_kind`` row) and the points.

    Attributes:
        payload: point columns passed through to the output (a training set's label rows), or, for a
            build, the one column that names the as-of date.
        as_of: for a build, ``(as-of date, as-of instant µs)`` asked of every entity; empty when the
            points are rows of the stream (``_kind`` point, ``_t`` = the point's instant).
    """

    keys: tuple[str, ...]
    events: tuple[EventsPlan, ...]
    attributes: tuple[AttributesPlan, ...]
    payload: tuple[str, ...]
    as_of: tuple[tuple[str, int], ...] = ()

    @property
    def reach_us(self) -> int:
        """How far before a point any source looks."""
        return max([e.reach_us for e in self.events] + [a.lag_us for a in self.attributes] + [0])

    @property
    def columns(self) -> list[str]:
        """Output columns in order: keys, payload, each events source's aggregates and recency, attribute values."""
        out = [*self.keys, *self.payload]
        for e in self.events:
            out += [o.name for o in e.outputs] + list(e.recency)
        for a in self.attributes:
            out += list(a.values)
        return out

    def to_json(self) -> str:
        """The plan as ``sparkmlops.Sweep`` reads it: these dataclasses' fields, tuples as lists."""
        return json.dumps(asdict(self))
