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
TIME, KIND, LAST = "_t", "_kind", "_last"
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
class SweepPlan:
    """What to compute for one events source.

    Attributes:
        keys: entity key columns.
        measures, outputs: the aggregate inputs and features.
        recency: names of "days from the last row to the point time" features.
        lag_us: the source's availability lag (point time = cutoff + lag).
        horizon_us: the largest window: a build row exists only for entities with a row inside it,
            and recency looks back that far.
        tiled: rows are daily tiles (pre-aggregated measures, ``_last`` = time of the last event)
            rather than single events.
        point_column: the output column naming the point (``as_of_date`` or the event time).
        cutoffs: for a build, ``(point value, cutoff µs)`` asked of every entity; empty when the
            points are rows of the stream (``_kind`` 0, ``_t`` = cutoff, ``point_column`` set).
    """

    keys: tuple[str, ...]
    measures: tuple[Measure, ...]
    outputs: tuple[Output, ...]
    recency: tuple[str, ...]
    lag_us: int
    horizon_us: int
    tiled: bool
    point_column: str
    cutoffs: tuple[tuple[str, int], ...] = ()

    @property
    def windows(self) -> list[int]:
        """Distinct windows of the outputs, shortest first."""
        return sorted({o.window_us for o in self.outputs})


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
    """The rows of a chunk (events or tiles), sorted by (entity, time)."""

    table: pa.Table
    ent: np.ndarray
    t: np.ndarray
    key: np.ndarray  # ent * span + (t - base): sorted search key


@dataclass
class _Points:
    ent: np.ndarray
    cutoff: np.ndarray
    qkey: np.ndarray  # search key of the cutoff
    hi: np.ndarray    # rows before the cutoff (end of the known rows)


class _Chunk:
    """One chunk of whole entities: rows, points and their search keys."""

    def __init__(self, plan: SweepPlan, table: pa.Table, ent: np.ndarray, first_of_entity: np.ndarray):
        self.plan = plan
        kind = _column(table, KIND, np.int8, KIND_ROW)
        t = _column(table, TIME, np.int64, 0)
        is_row = kind == KIND_ROW
        rows = table.filter(pa.array(is_row))
        if plan.cutoffs:
            m = len(first_of_entity)
            p_ent = np.repeat(np.arange(m, dtype=np.int64), len(plan.cutoffs))
            p_cut = np.tile(np.array([c for _, c in plan.cutoffs], dtype=np.int64), m)
            self.point_keys = table.select(list(plan.keys)).take(pa.array(first_of_entity[p_ent]))
            self.point_values = pa.array(np.tile(np.array([v for v, _ in plan.cutoffs], dtype=object), m), pa.string())
        else:
            p_idx = np.flatnonzero(~is_row)
            p_ent, p_cut = ent[p_idx], t[p_idx]
            self.point_keys = table.select(list(plan.keys)).take(pa.array(p_idx))
            self.point_values = table.column(plan.point_column).take(pa.array(p_idx))
        r_ent, r_t = ent[is_row], t[is_row]
        reach = max(plan.horizon_us, max(plan.windows, default=0))
        lows = [p_cut.min() - reach] if p_cut.size else []
        highs = [p_cut.max()] if p_cut.size else []
        if r_t.size:
            lows.append(r_t.min())
            highs.append(r_t.max() + reach)
        self.base = min(lows, default=0) - 1
        self.span = max(highs, default=0) - self.base + 2
        self.rows = _Rows(rows, r_ent, r_t, r_ent * self.span + (r_t - self.base))
        qkey = p_ent * self.span + (p_cut - self.base)
        self.points = _Points(p_ent, p_cut, qkey, np.searchsorted(self.rows.key, qkey, "left"))

    def search(self, cutoffs: np.ndarray) -> np.ndarray:
        """Index of the first row of the point's entity at or after each cutoff (the window start)."""
        return np.searchsorted(self.rows.key, self.points.ent * self.span + (cutoffs - self.base), "left")


def _numeric_inputs(chunk: _Chunk, measure: Measure) -> tuple[np.ndarray, ...]:
    """(count, sum, min, max, mean, m2) per row; a NULL single value has count 0."""
    table = chunk.rows.table
    if chunk.plan.tiled:
        n = _column(table, f"{measure.column}_n", np.int64, 0)
        s = _column(table, f"{measure.column}_s", np.float64, 0.0)
        lo = _column(table, f"{measure.column}_lo", np.float64, np.inf)
        hi = _column(table, f"{measure.column}_hi", np.float64, -np.inf)
        m2 = _column(table, f"{measure.column}_q", np.float64, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            # A tile of equal values has its value as mean exactly, whatever the rounding of its sum.
            mean = np.where(lo == hi, lo, s / np.maximum(n, 1))
        return n, s, lo, hi, np.where(n > 0, mean, 0.0), m2
    valid = _valid(table, measure.column)
    v = _column(table, measure.column, np.float64, 0.0)
    n = valid.astype(np.int64)
    return n, v, np.where(valid, v, np.inf), np.where(valid, v, -np.inf), v, np.zeros(len(v))


def _count_inputs(chunk: _Chunk, measure: Measure) -> np.ndarray:
    if chunk.plan.tiled:
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


def _blocks(chunk: _Chunk, window: int) -> _Blocks:
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
    return _Blocks(block, seg, idx - start[seg], end[seg] - 1 - idx, start, end)


def _scan_both(values: np.ndarray, blocks: _Blocks, op) -> tuple[np.ndarray, np.ndarray]:
    fwd = segmented_scan(values, blocks.pos_fwd, op)
    bwd = segmented_scan(values[::-1], blocks.pos_bwd[::-1], op)[::-1]
    return fwd, bwd


class _Parts:
    """For one window: which row ends the forward part (block of the cutoff) and starts the backward part."""

    def __init__(self, chunk: _Chunk, blocks: _Blocks, window: int, lo: np.ndarray):
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


def _numeric_outputs(chunk: _Chunk, measure: Measure, outputs: list[Output], blocks: _Blocks,
                     parts: _Parts) -> dict[str, pa.Array]:
    """sum, mean, min, max, stddev (and count) of one numeric measure over one window."""
    n, s, mn, mx, mean, m2 = _numeric_inputs(chunk, measure)
    funcs = {o.func for o in outputs}
    prefix = np.concatenate([[0], np.cumsum(n)])
    seg_f, seg_b = blocks.seg[parts.f], blocks.seg[parts.g]
    n_f = np.where(parts.fwd_ok, prefix[parts.f + 1] - prefix[blocks.start[seg_f]], 0)
    n_b = np.where(parts.bwd_ok, prefix[blocks.end[seg_b]] - prefix[parts.g], 0)
    total = n_f + n_b
    res: dict[str, np.ndarray] = {}
    if funcs & {"sum", "mean", "stddev"}:
        fwd, bwd = _scan_both(s, blocks, np.add)
        res["sum"] = np.where(parts.fwd_ok, fwd[parts.f], 0.0) + np.where(parts.bwd_ok, bwd[parts.g], 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            res["mean"] = res["sum"] / total
    if funcs & {"min", "stddev"}:
        fwd, bwd = _scan_both(mn, blocks, np.minimum)
        res["min"] = np.minimum(np.where(parts.fwd_ok, fwd[parts.f], np.inf), np.where(parts.bwd_ok, bwd[parts.g], np.inf))
    if funcs & {"max", "stddev"}:
        fwd, bwd = _scan_both(mx, blocks, np.maximum)
        res["max"] = np.maximum(np.where(parts.fwd_ok, fwd[parts.f], -np.inf), np.where(parts.bwd_ok, bwd[parts.g], -np.inf))
    if "stddev" in funcs:
        res["stddev"] = _stddev(n, mean, m2, blocks, parts, n_f, n_b, res)
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


def _stddev(n, mean, m2, blocks: _Blocks, parts: _Parts, n_f, n_b, res) -> np.ndarray:
    """Sample standard deviation of the two parts merged with Chan's formula; exactly 0 for equal values."""
    k_f, s1, s2 = _shifted_moments(n, mean, m2, blocks, first=True)
    s1_f, s2_f = (segmented_scan(a, blocks.pos_fwd, np.add) for a in (s1, s2))
    k_b, r1, r2 = _shifted_moments(n, mean, m2, blocks, first=False)
    s1_b, s2_b = (segmented_scan(a[::-1], blocks.pos_bwd[::-1], np.add)[::-1] for a in (r1, r2))
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


def _distinct_values(chunk: _Chunk, measure: Measure) -> tuple[np.ndarray, np.ndarray]:
    """(row index, value code) of every non-NULL value; tiles hold a list of distinct values per row."""
    col = chunk.rows.table.column(measure.column).combine_chunks()
    if chunk.plan.tiled:
        parents = pc.list_parent_indices(col).to_numpy()
        flat = pc.list_flatten(col)
    else:
        parents = np.arange(len(col))
        flat = col
    keep = pc.is_valid(flat).to_numpy(zero_copy_only=False)
    codes = pc.fill_null(pc.dictionary_encode(flat).indices, 0).to_numpy(zero_copy_only=False)
    return parents[keep], codes[keep].astype(np.int64)


def _distinct_outputs(chunk: _Chunk, measure: Measure, outputs: list[Output]) -> dict[str, pa.Array]:
    """Exact distinct counts: occurrence intervals [t, min(next occurrence, t + w)) alive at the cutoff."""
    rows, pts = chunk.rows, chunk.points
    row, code = _distinct_values(chunk, measure)
    t, ent = rows.t[row], rows.ent[row]
    order = np.lexsort((t, code, ent))  # by entity, value, time
    nxt = np.full(len(row), np.iinfo(np.int64).max)
    same = (ent[order][1:] == ent[order][:-1]) & (code[order][1:] == code[order][:-1])
    nxt[order[:-1][same]] = t[order][1:][same]
    enter = np.sort(ent * chunk.span + (t - chunk.base))
    started = np.searchsorted(enter, pts.qkey, "left")
    out = {}
    for o in outputs:
        leave = np.sort(ent * chunk.span + (np.minimum(nxt, t + o.window_us) - chunk.base))
        out[o.name] = pa.array(started - np.searchsorted(leave, pts.qkey, "left"), pa.int64())
    return out


def _recency(chunk: _Chunk, lo_horizon: np.ndarray) -> tuple[np.ndarray, pa.Array]:
    rows, pts = chunk.rows, chunk.points
    present = pts.hi > lo_horizon
    if not chunk.plan.recency:
        return present, pa.nulls(0)
    last_col = _column(rows.table, LAST, np.int64, 0) if chunk.plan.tiled else rows.t
    last = last_col[np.clip(pts.hi - 1, 0, max(len(last_col) - 1, 0))] if len(last_col) else np.zeros(len(pts.hi), np.int64)
    days = (pts.cutoff + chunk.plan.lag_us - last) / US_PER_DAY
    return present, pa.array(np.where(present, days, 0.0), pa.float64(), mask=~present)


def sweep_chunk(plan: SweepPlan, table: pa.Table) -> pa.Table:
    """Every output of ``plan`` at every point of one chunk of whole entities, sorted by (entity, time)."""
    ent = entity_codes(table, plan.keys)
    first_of_entity = np.flatnonzero(np.diff(ent, prepend=-1)) if len(ent) else np.zeros(0, np.int64)
    chunk = _Chunk(plan, table, ent, first_of_entity)
    columns = _window_columns(plan, chunk) if len(chunk.rows.t) else _empty_columns(plan, len(chunk.points.ent))
    present, recency = _recency(chunk, chunk.search(chunk.points.cutoff - plan.horizon_us))
    for name in plan.recency:
        columns[name] = recency
    out = pa.table({**{k: chunk.point_keys.column(k) for k in plan.keys}, plan.point_column: chunk.point_values,
                    **{o.name: columns[o.name] for o in plan.outputs}, **{r: columns[r] for r in plan.recency}})
    return out.filter(pa.array(present)) if plan.cutoffs else out


def _empty_columns(plan: SweepPlan, points: int) -> dict[str, pa.Array]:
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


def _window_columns(plan: SweepPlan, chunk: _Chunk) -> dict[str, pa.Array]:
    columns: dict[str, pa.Array] = {}
    for window in plan.windows:
        lo = chunk.search(chunk.points.cutoff - window)
        blocks = parts = None
        for i, measure in enumerate(plan.measures):
            outs = [o for o in plan.outputs if o.measure == i and o.window_us == window]
            if not outs:
                continue
            if measure.kind == "distinct":
                columns.update(_distinct_outputs(chunk, measure, outs))
            elif measure.kind == "count":
                prefix = np.concatenate([[0], np.cumsum(_count_inputs(chunk, measure))])
                columns.update({o.name: pa.array(prefix[chunk.points.hi] - prefix[lo], pa.int64()) for o in outs})
            else:
                if blocks is None:
                    blocks = _blocks(chunk, window)
                    parts = _Parts(chunk, blocks, window, lo)
                columns.update(_numeric_outputs(chunk, measure, outs, blocks, parts))
    return columns


def _split(plan: SweepPlan, table: pa.Table) -> Iterator[pa.Table]:
    """Split a chunk at entity boundaries so that entity code x time span fits a 64-bit search key."""
    t = _column(table, TIME, np.int64, 0)
    reach = max(plan.horizon_us, max(plan.windows, default=0))
    cut = np.array([c for _, c in plan.cutoffs], dtype=np.int64)
    lo = min(t.min(), cut.min() - reach if cut.size else t.min() - reach) - 1
    hi = max(t.max() + reach, cut.max() if cut.size else t.max()) + 2
    ent = entity_codes(table, plan.keys)
    per_chunk = max(1, _KEY_LIMIT // (hi - lo + 1))
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
