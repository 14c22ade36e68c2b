"""Point-in-time window aggregates over one sorted stream per entity: the vectorised core of the feature engine.

The input is a chunk of rows sorted by (entity, time): events (or daily tiles of events) and,
for training sets, the points at which features are asked for. For a point with cutoff ``b`` and
a window ``w`` the rows that count are ``b - w <= t < b``. Every step is a sort, a binary search or
a linear scan, so the cost is O((rows + points) log rows), whatever the window lengths:

* counts are differences of prefix counts (exact integers);
* sum, mean, min, max and stddev use the blocks of van Herk / Gil-Werman: time is cut into
  blocks of length ``w``, so ``[b - w, b)`` is a suffix of one block plus a prefix of the next.
  Both parts are scans that restart at each block, so no running total is ever subtracted:
  sums are as exact as a plain sum, and the variance merges two parts with Chan's formula from
  moments shifted by a value of the part itself (equal values give exactly 0);
* distinct counts: an occurrence of a value counts from its time until the next occurrence of
  the same value or until it leaves the window, whichever is first; a count is then the
  number of such intervals that have started minus those that have ended (exact integers).

No Spark here: :mod:`sparkml_ops.transforms.windows` feeds this module through ``mapInArrow``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

US_PER_DAY = 86_400 * 1_000_000
KIND_POINT, KIND_ROW = 0, 1
TIME, KIND, SOURCE, LAST = "_t", "_kind", "_src", "_last"
NUMERIC_FUNCS = ("sum", "mean", "min", "max", "stddev")
DISTINCT_FUNCS = ("count_distinct", "approx_count_distinct")
CHUNK_ROWS = 1 << 20  # rows buffered before a chunk of whole entities is computed
_KEY_LIMIT = 1 << 62  # entity code x time span must fit a signed 64-bit search key


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


def entity_codes(table: pa.Table, keys: Sequence[str]) -> np.ndarray:
    """0, 1, 2... per run of equal keys in rows sorted by the keys (NULL equals NULL)."""
    n = table.num_rows
    change = np.zeros(n, dtype=bool)
    if n:
        change[0] = True
    for key in keys:
        col = table.column(key).combine_chunks() if isinstance(table.column(key), pa.ChunkedArray) else table.column(key)
        if n < 2:
            continue
        a, b = col.slice(1), col.slice(0, n - 1)
        differs = pc.fill_null(pc.not_equal(a, b), False).to_numpy(zero_copy_only=False)
        null_a = pc.is_null(a).to_numpy(zero_copy_only=False)
        null_b = pc.is_null(b).to_numpy(zero_copy_only=False)
        change[1:] |= differs | (null_a != null_b)
    return np.cumsum(change) - 1


def segmented_scan(values: np.ndarray, pos: np.ndarray, op) -> np.ndarray:
    """Inclusive scan of ``op`` (np.add, np.minimum, np.maximum) restarting where ``pos`` (index in segment) is 0.

    Hillis-Steele doubling: log2(longest segment) vectorised passes, each over the rows still
    inside their segment, so each result combines rows of its own segment only.
    """
    out = values.copy()
    step = 1
    idx = np.flatnonzero(pos >= 1)
    while idx.size:
        out[idx] = op(out[idx], out[idx - step])
        step *= 2
        idx = idx[pos[idx] >= step]
    return out


def _column(table: pa.Table, name: str, dtype, fill) -> np.ndarray:
    return pc.fill_null(table.column(name), fill).to_numpy().astype(dtype, copy=False)


def _valid(table: pa.Table, name: str) -> np.ndarray:
    return pc.is_valid(table.column(name)).to_numpy(zero_copy_only=False)


@dataclass
class _Rows:
    """The rows of one source in a chunk, sorted by (entity, time)."""

    table: pa.Table
    ent: np.ndarray
    t: np.ndarray
    key: np.ndarray  # search key of (entity, time)


@dataclass
class _Points:
    ent: np.ndarray
    cutoff: np.ndarray  # the point's instant minus the source's lag
    qkey: np.ndarray    # search key of the cutoff
    hi: np.ndarray      # index of the first row at or after the cutoff: rows before it are known


@dataclass(frozen=True)
class _Clock:
    """Search keys ``entity * span + time`` for one chunk; times are clamped to the only range that matters.

    Every time compared with a cutoff lies in ``[low, high]`` once clamped: a row older than every
    window start stays older, one newer than every cutoff stays newer, and the order of rows is
    kept, so the clamped keys answer every comparison the true times would.
    """

    low: int
    high: int

    @property
    def span(self) -> int:
        return self.high - self.low + 1

    def key(self, ent: np.ndarray, t: np.ndarray) -> np.ndarray:
        return ent * self.span + (np.clip(t, self.low, self.high) - self.low)


@dataclass(frozen=True)
class _Asked:
    """The points of a chunk: entity codes, instants (µs), and the chunk's search clock."""

    ent: np.ndarray
    instants: np.ndarray
    clock: _Clock


class _View:
    """The rows of one source and the points, with their cutoffs for that source's lag."""

    def __init__(self, table: pa.Table, ent: np.ndarray, mask: np.ndarray, asked: _Asked, lag_us: int, tiled: bool = False):
        self.tiled, self.clock = tiled, asked.clock
        clock = asked.clock
        t = _column(table, TIME, np.int64, 0)
        r_ent, r_t = ent[mask], t[mask]
        self.rows = _Rows(table.filter(pa.array(mask)), r_ent, r_t, clock.key(r_ent, r_t))
        p_ent, cutoff = asked.ent, asked.instants - lag_us
        qkey = clock.key(p_ent, cutoff)
        self.points = _Points(p_ent, cutoff, qkey, np.searchsorted(self.rows.key, qkey, "left"))

    def search(self, cutoffs: np.ndarray) -> np.ndarray:
        """Index of the first row of each point's entity at or after ``cutoffs`` (e.g. window starts)."""
        return np.searchsorted(self.rows.key, self.clock.key(self.points.ent, cutoffs), "left")


def _stat(table: pa.Table, name: str, dtype, fill) -> np.ndarray:
    """A tile statistic; a tile stores only those its source's aggregates need."""
    if name in table.column_names:
        return _column(table, name, dtype, fill)
    return np.full(table.num_rows, fill, dtype=dtype)


def _numeric_inputs(chunk: _View, measure: Measure) -> tuple[np.ndarray, ...]:
    """(count, sum, min, max, mean, m2) per row; a NULL single value has count 0."""
    table = chunk.rows.table
    if chunk.tiled:
        n = _stat(table, f"{measure.column}_n", np.int64, 0)
        s = _stat(table, f"{measure.column}_s", np.float64, 0.0)
        lo = _stat(table, f"{measure.column}_lo", np.float64, np.inf)
        hi = _stat(table, f"{measure.column}_hi", np.float64, -np.inf)
        m2 = _stat(table, f"{measure.column}_q", np.float64, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            # A tile of equal values has its value as mean exactly, whatever the rounding of its sum.
            mean = np.where(lo == hi, lo, s / np.maximum(n, 1))
        return n, s, lo, hi, np.where(n > 0, mean, 0.0), m2
    valid = _valid(table, measure.column)
    v = _column(table, measure.column, np.float64, 0.0)
    n = valid.astype(np.int64)
    return n, v, np.where(valid, v, np.inf), np.where(valid, v, -np.inf), v, np.zeros(len(v))


def _count_inputs(chunk: _View, measure: Measure) -> np.ndarray:
    if chunk.tiled:
        return _column(chunk.rows.table, f"{measure.column}_n", np.int64, 0)
    return _valid(chunk.rows.table, measure.column).astype(np.int64)


@dataclass
class _Blocks:
    """The rows cut into blocks of one window length, per entity."""

    block: np.ndarray      # block number of each row
    seg: np.ndarray        # segment (entity, block) number of each row
    pos_fwd: np.ndarray    # index of the row in its segment
    pos_bwd: np.ndarray    # index from the end of its segment
    start: np.ndarray      # first row of each segment
    end: np.ndarray        # one past the last row of each segment
    layout: list[tuple[np.ndarray, np.ndarray]]  # per length class: row index matrix (n = padding), real cells

    def scan(self, values: np.ndarray, op, neutral: float, reverse: bool = False) -> np.ndarray:
        """Inclusive scan of ``op`` (a ufunc) within each segment, forward or from the segment's end.

        Segments of similar length are laid out as the rows of a matrix padded with ``neutral``, so
        each scan is one ``accumulate`` along the rows: exact per segment and vectorised.
        """
        source = np.append(values, neutral)
        out = np.empty_like(values)
        for idx, real in self.layout:
            m = source[idx]
            m = op.accumulate(m[:, ::-1], axis=1)[:, ::-1] if reverse else op.accumulate(m, axis=1)
            out[idx[real]] = m[real]
        return out


def _layout(start: np.ndarray, end: np.ndarray, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Segments grouped by length class (2^(k-1), 2^k], each as a padded matrix of row indices."""
    lengths = end - start
    classes = np.ceil(np.log2(np.maximum(lengths, 1))).astype(np.int64)
    out = []
    for k in np.unique(classes):
        segs = np.flatnonzero(classes == k)
        cols = np.arange(int(lengths[segs].max()))
        real = cols[None, :] < lengths[segs][:, None]
        out.append((np.where(real, start[segs][:, None] + cols[None, :], n), real))
    return out


def _blocks(chunk: _View, window: int) -> _Blocks:
    rows = chunk.rows
    block = np.floor_divide(rows.t, window)
    n = len(block)
    first = np.ones(n, dtype=bool)
    if n:
        first[1:] = (rows.ent[1:] != rows.ent[:-1]) | (block[1:] != block[:-1])
    seg = np.cumsum(first) - 1
    start = np.flatnonzero(first)
    end = np.append(start[1:], n)
    idx = np.arange(n)
    return _Blocks(block, seg, idx - start[seg], end[seg] - 1 - idx, start, end, _layout(start, end, n))


def _scan_both(values: np.ndarray, blocks: _Blocks, op, neutral: float) -> tuple[np.ndarray, np.ndarray]:
    return blocks.scan(values, op, neutral), blocks.scan(values, op, neutral, reverse=True)


class _Parts:
    """For one window: which row ends the forward part (block of the cutoff) and starts the backward part."""

    def __init__(self, chunk: _View, blocks: _Blocks, window: int, lo: np.ndarray):
        rows, pts = chunk.rows, chunk.points
        n = len(rows.t)
        f = pts.hi - 1
        fc = np.clip(f, 0, max(n - 1, 0))
        self.fwd_ok = (f >= 0) & (n > 0)
        if n:
            self.fwd_ok &= (rows.ent[fc] == pts.ent) & (blocks.block[fc] == np.floor_divide(pts.cutoff, window))
        gc = np.clip(lo, 0, max(n - 1, 0))
        self.bwd_ok = (lo < n) & (n > 0)
        if n:
            self.bwd_ok &= (rows.ent[gc] == pts.ent) & (blocks.block[gc] == np.floor_divide(pts.cutoff - window, window))
        self.f, self.g = fc, gc


def _shifted_moments(n, mean, m2, blocks: _Blocks, first: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: the reference value K of its part, and the moments sum n(mean-K), sum m2 + n(mean-K)^2 of its row."""
    seg_count = len(blocks.start)
    has = np.flatnonzero(n > 0)
    ref_row = np.full(seg_count, -1, dtype=np.int64)
    if first:
        ref_row[blocks.seg[has][::-1]] = has[::-1]
    else:
        ref_row[blocks.seg[has]] = has
    ref = np.where(ref_row >= 0, mean[np.maximum(ref_row, 0)], 0.0)[blocks.seg]
    d = np.where(n > 0, mean - ref, 0.0)
    return ref, n * d, m2 + n * d * d


def _numeric_outputs(inputs: tuple[np.ndarray, ...], outputs: list[Output], blocks: _Blocks,
                     parts: _Parts) -> dict[str, pa.Array]:
    """sum, mean, min, max, stddev (and count) of one numeric measure (its :func:`_numeric_inputs`) over one window."""
    n, s, mn, mx, mean, m2 = inputs
    funcs = {o.func for o in outputs}
    prefix = np.concatenate([[0], np.cumsum(n)])
    seg_f, seg_b = blocks.seg[parts.f], blocks.seg[parts.g]
    n_f = np.where(parts.fwd_ok, prefix[parts.f + 1] - prefix[blocks.start[seg_f]], 0)
    n_b = np.where(parts.bwd_ok, prefix[blocks.end[seg_b]] - prefix[parts.g], 0)
    total = n_f + n_b
    res: dict[str, np.ndarray] = {}
    if funcs & {"sum", "mean", "stddev"}:
        fwd, bwd = _scan_both(s, blocks, np.add, 0.0)
        res["sum"] = np.where(parts.fwd_ok, fwd[parts.f], 0.0) + np.where(parts.bwd_ok, bwd[parts.g], 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            res["mean"] = res["sum"] / total
    if funcs & {"min", "stddev"}:
        fwd, bwd = _scan_both(mn, blocks, np.minimum, np.inf)
        res["min"] = np.minimum(np.where(parts.fwd_ok, fwd[parts.f], np.inf), np.where(parts.bwd_ok, bwd[parts.g], np.inf))
    if funcs & {"max", "stddev"}:
        fwd, bwd = _scan_both(mx, blocks, np.maximum, -np.inf)
        res["max"] = np.maximum(np.where(parts.fwd_ok, fwd[parts.f], -np.inf), np.where(parts.bwd_ok, bwd[parts.g], -np.inf))
    if "stddev" in funcs:
        res["stddev"] = _stddev(inputs, blocks, parts, (n_f, n_b), res)
    out = {}
    for o in outputs:
        if o.func == "count":
            out[o.name] = pa.array(total, pa.int64())
        elif o.func == "sum":
            out[o.name] = pa.array(res["sum"], pa.float64())
        else:
            empty = total < (2 if o.func == "stddev" else 1)
            out[o.name] = pa.array(np.where(empty, 0.0, res[o.func]), pa.float64(), mask=empty)
    return out


def _stddev(inputs: tuple[np.ndarray, ...], blocks: _Blocks, parts: _Parts, counts: tuple[np.ndarray, np.ndarray],
            res: dict[str, np.ndarray]) -> np.ndarray:
    """Sample standard deviation of the two parts merged with Chan's formula; exactly 0 for equal values."""
    n, _, _, _, mean, m2 = inputs
    n_f, n_b = counts
    k_f, s1, s2 = _shifted_moments(n, mean, m2, blocks, first=True)
    s1_f, s2_f = (blocks.scan(a, np.add, 0.0) for a in (s1, s2))
    k_b, r1, r2 = _shifted_moments(n, mean, m2, blocks, first=False)
    s1_b, s2_b = (blocks.scan(a, np.add, 0.0, reverse=True) for a in (r1, r2))
    with np.errstate(invalid="ignore", divide="ignore"):
        nf, nb = np.maximum(n_f, 1), np.maximum(n_b, 1)
        a1, a2 = np.where(parts.fwd_ok, s1_f[parts.f], 0.0), np.where(parts.fwd_ok, s2_f[parts.f], 0.0)
        b1, b2 = np.where(parts.bwd_ok, s1_b[parts.g], 0.0), np.where(parts.bwd_ok, s2_b[parts.g], 0.0)
        mean_f, mean_b = k_f[parts.f] + a1 / nf, k_b[parts.g] + b1 / nb
        q_f, q_b = np.maximum(a2 - a1 * a1 / nf, 0.0), np.maximum(b2 - b1 * b1 / nb, 0.0)
        total = n_f + n_b
        delta = np.where((n_f > 0) & (n_b > 0), mean_b - mean_f, 0.0)
        q = q_f + q_b + delta * delta * n_f * n_b / np.maximum(total, 1)
        sd = np.sqrt(q / np.maximum(total - 1, 1))
    return np.where(res["min"] == res["max"], 0.0, sd)


def _distinct_values(chunk: _View, measure: Measure) -> tuple[np.ndarray, np.ndarray]:
    """(row index, value code) of every non-NULL value; tiles hold a list of distinct values per row."""
    col = chunk.rows.table.column(measure.column).combine_chunks()
    if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
        parents = pc.list_parent_indices(col).to_numpy()
        flat = pc.list_flatten(col)
    else:
        parents = np.arange(len(col))
        flat = col
    keep = pc.is_valid(flat).to_numpy(zero_copy_only=False)
    codes = pc.fill_null(pc.dictionary_encode(flat).indices, 0).to_numpy(zero_copy_only=False)
    return parents[keep], codes[keep].astype(np.int64)


def _distinct_outputs(chunk: _View, measure: Measure, outputs: list[Output]) -> dict[str, pa.Array]:
    """Exact distinct counts: occurrence intervals [t, min(next occurrence, t + w)) alive at the cutoff."""
    rows, pts = chunk.rows, chunk.points
    row, code = _distinct_values(chunk, measure)
    t, ent = rows.t[row], rows.ent[row]
    order = np.lexsort((t, code, ent))  # by entity, value, time
    nxt = np.full(len(row), np.iinfo(np.int64).max)
    same = (ent[order][1:] == ent[order][:-1]) & (code[order][1:] == code[order][:-1])
    nxt[order[:-1][same]] = t[order][1:][same]
    enter = np.sort(chunk.clock.key(ent, t))
    started = np.searchsorted(enter, pts.qkey, "left")
    out = {}
    for o in outputs:  # every window of the measure from one sort by value
        leave = np.sort(chunk.clock.key(ent, np.minimum(nxt, t + o.window_us)))
        out[o.name] = pa.array(started - np.searchsorted(leave, pts.qkey, "left"), pa.int64())
    return out


def _recency(plan: EventsPlan, chunk: _View, lo_horizon: np.ndarray) -> tuple[np.ndarray, pa.Array]:
    """Whether each point's entity has a row inside the horizon, and the days from its last row to the point."""
    rows, pts = chunk.rows, chunk.points
    present = pts.hi > lo_horizon
    if not plan.recency:
        return present, pa.nulls(0)
    last_col = rows.t
    if chunk.tiled:  # the newest event of all tiles so far (tiles of one time may come from two source days)
        first = np.flatnonzero(np.diff(rows.ent, prepend=-1))
        pos = np.arange(len(rows.ent)) - np.repeat(first, np.diff(np.append(first, len(rows.ent))))
        last_col = segmented_scan(_column(rows.table, LAST, np.int64, np.iinfo(np.int64).min), pos, np.maximum)
    last = last_col[np.clip(pts.hi - 1, 0, max(len(last_col) - 1, 0))] if len(last_col) else np.zeros(len(pts.hi), np.int64)
    days = (pts.cutoff + plan.lag_us - last) / US_PER_DAY
    return present, pa.array(np.where(present, days, 0.0), pa.float64(), mask=~present)


def _empty_columns(plan: EventsPlan, points: int) -> dict[str, pa.Array]:
    """Outputs of empty windows: counts 0, sums 0.0, the rest NULL."""
    out = {}
    for o in plan.outputs:
        if o.func == "count" or o.func in DISTINCT_FUNCS:
            out[o.name] = pa.array(np.zeros(points, np.int64))
        elif o.func == "sum":
            out[o.name] = pa.array(np.zeros(points))
        else:
            out[o.name] = pa.nulls(points, pa.float64())
    return out


def _window_columns(plan: EventsPlan, chunk: _View) -> dict[str, pa.Array]:
    """Every aggregate of one events source; per measure the inputs are read once, per window the blocks cut once."""
    columns: dict[str, pa.Array] = {}
    starts: dict[int, np.ndarray] = {}

    def start_of(window: int) -> np.ndarray:
        if window not in starts:
            starts[window] = chunk.search(chunk.points.cutoff - window)
        return starts[window]

    numeric = {}
    for i, measure in enumerate(plan.measures):
        outs = [o for o in plan.outputs if o.measure == i]
        if measure.kind == "distinct":
            columns.update(_distinct_outputs(chunk, measure, outs))
        elif measure.kind == "count":
            prefix = np.concatenate([[0], np.cumsum(_count_inputs(chunk, measure))])
            columns.update({o.name: pa.array(prefix[chunk.points.hi] - prefix[start_of(o.window_us)], pa.int64())
                            for o in outs})
        else:
            numeric[i] = _numeric_inputs(chunk, measure)
    for window in plan.windows:
        uses = {i: [o for o in plan.outputs if o.measure == i and o.window_us == window] for i in numeric}
        uses = {i: outs for i, outs in uses.items() if outs}
        if not uses:
            continue
        blocks = _blocks(chunk, window)
        parts = _Parts(chunk, blocks, window, start_of(window))
        for i, outs in uses.items():
            columns.update(_numeric_outputs(numeric[i], outs, blocks, parts))
    return columns


def _events(plan: EventsPlan, chunk: _View) -> tuple[dict[str, pa.Array], np.ndarray]:
    """Every aggregate and recency feature of one events source at every point, and which points it knows."""
    has_rows = len(chunk.rows.t) > 0
    columns = _window_columns(plan, chunk) if has_rows else _empty_columns(plan, len(chunk.points.ent))
    present, recency = _recency(plan, chunk, chunk.search(chunk.points.cutoff - plan.horizon_us))
    return {**columns, **{name: recency for name in plan.recency}}, present


def _attributes(plan: AttributesPlan, chunk: _View) -> tuple[dict[str, pa.Array], np.ndarray]:
    """The values of the latest row known strictly before each point's cutoff (NULL without one)."""
    rows, pts = chunk.rows, chunk.points
    last = pts.hi - 1
    safe = np.clip(last, 0, max(len(rows.ent) - 1, 0))
    known = (last >= 0) & (rows.ent[safe] == pts.ent) if len(rows.ent) else np.zeros(len(pts.ent), bool)
    taken = pa.array(np.where(known, safe, 0)) if len(rows.ent) else None
    columns = {}
    for name in plan.values:
        col = rows.table.column(name)
        columns[name] = pc.if_else(pa.array(known), col.take(taken), pa.nulls(len(known), col.type)) \
            if taken is not None else pa.nulls(len(known), col.type)
    return columns, known


def _points(plan: SweepPlan, table: pa.Table, ent: np.ndarray, kind: np.ndarray) -> tuple:
    """(entity codes, instants µs, output columns naming the points) of a chunk."""
    if plan.as_of:
        first_of_entity = np.flatnonzero(np.diff(ent, prepend=-1))
        m, n = len(first_of_entity), len(plan.as_of)
        p_ent = np.repeat(np.arange(m, dtype=np.int64), n)
        instants = np.tile(np.array([i for _, i in plan.as_of], dtype=np.int64), m)
        names = pa.array(np.tile(np.array([v for v, _ in plan.as_of], dtype=object), m), pa.string())
        taken = table.select(list(plan.keys)).take(pa.array(first_of_entity[p_ent]))
        return p_ent, instants, {**{k: taken.column(k) for k in plan.keys}, plan.payload[0]: names}
    idx = np.flatnonzero(kind == KIND_POINT)
    taken = table.select([*plan.keys, *plan.payload]).take(pa.array(idx))
    instants = _column(table, TIME, np.int64, 0)[idx]
    return ent[idx], instants, {c: taken.column(c) for c in taken.column_names}


def _clock(plan: SweepPlan, instants: np.ndarray) -> _Clock:
    return _Clock(int(instants.min()) - plan.reach_us - 1, int(instants.max()) + 1)


def sweep_chunk(plan: SweepPlan, table: pa.Table) -> pa.Table:
    """Every feature of ``plan`` at every point of one chunk of whole entities, rows sorted by (entity, time)."""
    ent = entity_codes(table, plan.keys)
    kind = _column(table, KIND, np.int8, KIND_ROW)
    src = _column(table, SOURCE, np.int16, -1)
    p_ent, instants, columns = _points(plan, table, ent, kind)
    if not len(p_ent):
        return pa.table(columns)
    asked = _Asked(p_ent, instants, _clock(plan, instants))
    present = np.zeros(len(p_ent), dtype=bool)
    for ep in plan.events:
        view = _View(table, ent, (kind == KIND_ROW) & (src == ep.source), asked, ep.lag_us, ep.tiled)
        cols, known = _events(ep, view)
        columns.update(cols)
        present |= known
    for ap in plan.attributes:
        view = _View(table, ent, (kind == KIND_ROW) & (src == ap.source), asked, ap.lag_us)
        cols, known = _attributes(ap, view)
        columns.update(cols)
        present |= known
    out = pa.table({c: columns[c] for c in plan.columns})
    return out.filter(pa.array(present)) if plan.as_of else out


def _split(plan: SweepPlan, table: pa.Table) -> Iterator[pa.Table]:
    """Split a chunk at entity boundaries so that entity code x time span fits a 64-bit search key."""
    ent = entity_codes(table, plan.keys)
    kind = _column(table, KIND, np.int8, KIND_ROW)
    instants = np.array([i for _, i in plan.as_of], dtype=np.int64) if plan.as_of \
        else _column(table, TIME, np.int64, 0)[kind == KIND_POINT]
    if not instants.size:
        return  # rows of entities nobody asks about
    per_chunk = max(1, _KEY_LIMIT // _clock(plan, instants).span)
    if ent[-1] < per_chunk:
        yield table
        return
    bounds = np.searchsorted(ent, np.arange(0, ent[-1] + 1, per_chunk))
    for a, b in zip(bounds, np.append(bounds[1:], len(ent))):
        yield table.slice(a, b - a)


def sweep_batches(plan: SweepPlan, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` body: buffer sorted batches, compute every chunk of whole entities, yield the results."""
    pending: list[pa.RecordBatch] = []
    buffered = 0
    for batch in batches:
        pending.append(batch)
        buffered += batch.num_rows
        if buffered < CHUNK_ROWS:
            continue
        table = pa.Table.from_batches(pending)
        ent = entity_codes(table.select(list(plan.keys)), plan.keys)
        cut = int(np.searchsorted(ent, ent[-1]))  # the last entity may go on in the next batch
        if cut == 0:
            continue
        yield from _compute(plan, table.slice(0, cut))
        rest = table.slice(cut)
        pending, buffered = rest.to_batches(), rest.num_rows
    if buffered:
        yield from _compute(plan, pa.Table.from_batches(pending))


def _compute(plan: SweepPlan, table: pa.Table) -> Iterator[pa.RecordBatch]:
    for part in _split(plan, table):
        out = sweep_chunk(plan, part.combine_chunks())
        if out.num_rows:
            yield from out.to_batches()
