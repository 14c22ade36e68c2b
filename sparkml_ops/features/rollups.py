"""Stored roll-ups of the daily tiles: one tile per entity for K whole days, read where no window edge cuts them.

A nightly build reads about 90 days of daily tiles and sorts them by entity and time; the rows
read are its cost. Between two window edges of a build (a cutoff, or a cutoff minus a window),
every tile is on the same side of every edge, so K days of tiles there may be read as one tile:
a roll-up. Levels (``features.rollup_days``, default 27, 9 and 3 days) start on days whose number
since 1970-01-01 is a multiple of K, so the same roll-ups serve many nights: each build covers the
runs of days between its edges with the largest roll-ups that fit, and reads daily tiles for the
rest. The sweep (:mod:`sparkml_ops.transforms.sweep`) reads them like any tile: one code path.

Each level is a derived table ``<state table>_<K>d`` partitioned by ``ds``, the first day. A
roll-up is valid when its mark holds the hash of its K days' source fingerprints and the spec
fingerprint (:mod:`sparkml_ops.features.state`); one whose day changed or was re-tiled is stale.
Roll-ups are computed (from the daily tiles and the shorter roll-ups inside them) only by builds
that compute tiles, for their own cover and, building one date, the covers of the nights until
the next such build; other builds read the valid roll-ups there are and daily tiles elsewhere.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import reduce

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from sparkml_ops.config import FeaturesSettings
from sparkml_ops.features.spec import FeatureSpec
from sparkml_ops.features.state import DAY, META, SourceState, checked_rows, day_map, mark, read_state
from sparkml_ops.io.derived import mark_partitions, partition_marks, replace_derived_partitions
from sparkml_ops.io.tables import sql_string, table_exists
from sparkml_ops.transforms.sweep import LAST, SOURCE, TIME
from sparkml_ops.transforms.windows import LOCAL_KEY, US_PER_DAY, day_key, merged_tiles

log = logging.getLogger(__name__)

EPOCH_DAY = date(1970, 1, 1)
ABSENT = "-"  # the fingerprint of a day without a source partition


@dataclass(frozen=True)
class Cover:
    """How one build reads one events source: roll-ups ``{level: [first days]}`` and the days read as daily tiles."""

    blocks: dict[int, list[str]]
    days: list[str]

    @property
    def covered(self) -> set[str]:
        """The days read inside roll-ups."""
        return {day for k, firsts in self.blocks.items() for d in firsts for day in block_days(d, k)}


def rollup_table(state: SourceState, level: int) -> str:
    """``<state table>_<level>d``."""
    return f"{state.table}_{level}d"


def window_edges(spec: FeatureSpec, source: str, instants_us: Iterable[int]) -> set[int]:
    """Every instant (µs) at which a window of ``source`` starts or ends for points at ``instants_us``.

    A point at T has the cutoff T - lag; its windows and its horizon (presence, recency) start
    that far before the cutoff.
    """
    src = spec.sources[source]
    spans = {f.window_us for f in spec.features_of(source, "aggregate")} | {spec.max_window_us(source), 0}
    return {t - src.lag_us - w for t in instants_us for w in spans}


def plan_cover(days: Sequence[str], usable: set[str], edges_us: set[int], levels: Sequence[int],
               available: dict[int, set[str]] | None = None) -> Cover:
    """Cover consecutive ``days`` with the largest aligned roll-ups that no edge cuts; the rest as daily tiles.

    A roll-up of K days starting on day ``d`` needs ``d`` aligned (days since 1970 a multiple of K),
    all K days among ``days`` and ``usable`` (stored tiles, or no partition), no edge strictly
    between the start of ``d`` and the start of ``d + K`` and, with ``available`` (level -> first
    days), to be stored already.
    """
    present = set(days)
    blocks: dict[int, list[str]] = {k: [] for k in levels}
    single: list[str] = []
    i = 0
    while i < len(days):
        first = date.fromisoformat(days[i])
        number = (first - EPOCH_DAY).days
        for k in sorted(levels, reverse=True):
            span = block_days(days[i], k)
            lo, hi = number * US_PER_DAY, (number + k) * US_PER_DAY
            if number % k == 0 and (available is None or days[i] in available.get(k, ())) \
                    and all(d in present and d in usable for d in span) and not any(lo < e < hi for e in edges_us):
                blocks[k].append(days[i])
                i += k
                break
        else:
            single.append(days[i])
            i += 1
    return Cover({k: v for k, v in blocks.items() if v}, single)


def block_days(first: str, level: int) -> list[str]:
    """The ``level`` consecutive days of the roll-up starting on ``first``."""
    start = date.fromisoformat(first)
    return [(start + timedelta(days=j)).isoformat() for j in range(level)]


def _block_fingerprint(state: SourceState, first: str, level: int) -> str:
    fps = [state.fingerprints.get(d, ABSENT) for d in block_days(first, level)]
    return hashlib.sha256(" ".join(fps).encode()).hexdigest()[:32]


def _block_rows(state: SourceState, first: str, level: int) -> int:
    return sum(state.rows.get(d, 0) for d in block_days(first, level))


def valid_blocks(spark: SparkSession, state: SourceState, level: int, firsts: Iterable[str] | None = None) -> set[str]:
    """The roll-ups among ``firsts`` (default: all stored) whose mark matches their days and spec, and none of
    whose days is re-tiled now."""
    marks = partition_marks(spark, rollup_table(state, level), DAY)
    retiled = set(state.rebuilt)
    return {d for d in (marks if firsts is None else firsts)
            if marks.get(d) == mark(_block_fingerprint(state, d, level), state.spec_fingerprint, _block_rows(state, d, level))
            and not retiled.intersection(block_days(d, level))}


def stale_blocks(spark: SparkSession, state: SourceState, cover: Cover) -> dict[int, list[str]]:
    """The roll-ups of ``cover`` to compute now: unmarked, marked with other fingerprints, or over days re-tiled now."""
    out = {}
    for level, firsts in cover.blocks.items():
        valid = valid_blocks(spark, state, level, firsts)
        if stale := [d for d in firsts if d not in valid]:
            out[level] = stale
    return out


def refresh_blocks(spark: SparkSession, spec: FeatureSpec, state: SourceState, stale: dict[int, list[str]],
                   levels: Sequence[int]) -> None:
    """Compute the stale roll-ups, shortest level first; each replaces its partition, then is marked.

    A roll-up is merged from the valid shorter roll-ups stored inside it, longest first (three
    9-day roll-ups make a 27-day one), and from the daily tiles of its other days. A tile whose
    time lies outside its roll-up's days (a source row outside its day partition) is kept as a
    tile of its own in the roll-up's partition, so that no tile moves across an edge.
    """
    for level in sorted(stale):
        firsts = stale[level]
        parts, days, inner = [], Cover({level: firsts}, []).covered, 0
        for sub in sorted((k for k in levels if k < level), reverse=True):
            candidates = [d for d in sorted(days) if (date.fromisoformat(d) - EPOCH_DAY).days % sub == 0
                          and days.issuperset(block_days(d, sub))]
            if found := sorted(valid_blocks(spark, state, sub, candidates)):
                parts.append(checked_rows(spark, rollup_table(state, sub), found, {d: _block_fingerprint(state, d, sub) for d in found},
                                      state.spec_fingerprint))
                days -= Cover({sub: found}, []).covered
                inner += len(found)
        days &= state.fingerprints.keys()
        log.info("roll-ups of %s source %s: %d of %d days to compute (%s..%s) from %d shorter roll-up(s) and %d day(s) of tiles",
                 spec.name, state.source, len(firsts), level, firsts[0], firsts[-1], inner, len(days))
        if days:
            parts.append(checked_rows(spark, state.table, sorted(days), state.fingerprints, state.spec_fingerprint))
        _write_blocks(spark, spec, state, level, firsts, reduce(lambda a, b: a.unionByName(b), parts))


def _write_blocks(spark: SparkSession, spec: FeatureSpec, state: SourceState, level: int, firsts: list[str],
                  tiles: DataFrame) -> None:
    """Merge ``tiles`` (with their day or roll-up ``ds``) into the roll-ups ``firsts`` of ``level``, write and mark them."""
    number = F.floor(F.datediff(F.col(DAY), F.lit(EPOCH_DAY.isoformat())) / level) * level
    first_us = number.cast("bigint") * F.lit(US_PER_DAY)
    inside = (F.col(TIME) >= first_us) & (F.col(TIME) < first_us + F.lit(level * US_PER_DAY))
    grouped = tiles.drop(*META).withColumn("_g", F.when(inside, -1).otherwise(F.col(TIME))) \
        .withColumn(DAY, F.date_format(F.date_add(F.lit(EPOCH_DAY.isoformat()), number.cast("int")), "yyyy-MM-dd"))
    # Sorted by one bigint (the block's day number, then a hash of the rest of the group), as the daily tiles are.
    # One task holds each group's tiles: shuffled by block (one file per partition written) or, for one block, by key.
    keyed = grouped.withColumn(LOCAL_KEY, day_key(number, [*spec.entity_keys, SOURCE, "_g"]))
    keyed = keyed.repartition(DAY) if len(firsts) > 1 else keyed.repartition(LOCAL_KEY)
    merged = keyed.transform(merged_tiles([LOCAL_KEY, DAY, *spec.entity_keys, SOURCE, "_g"], least=[TIME], greatest=[LAST],
                                          local=(LOCAL_KEY, [DAY]))).drop("_g", LOCAL_KEY)
    fps = day_map({d: sql_string(_block_fingerprint(state, d, level)) for d in firsts})
    rows = day_map({d: f"CAST({_block_rows(state, d, level)} AS BIGINT)" for d in firsts})
    out = merged.select(*[c for c in merged.columns if c != DAY], rows[F.col(DAY)].alias("source_rows"),
                        fps[F.col(DAY)].alias("source_fingerprint"), F.lit(state.spec_fingerprint).alias("spec_fingerprint"), DAY)
    comment = (f"{level}-day roll-ups of the daily tiles of source {state.source} of feature set {spec.name} "
               "(sparkml-ops build state; recomputed from the tiles when stale)")
    replace_derived_partitions(out, rollup_table(state, level), DAY, comment, firsts, as_is=True)
    marks = {d: mark(_block_fingerprint(state, d, level), state.spec_fingerprint, _block_rows(state, d, level)) for d in firsts}
    mark_partitions(spark, rollup_table(state, level), DAY, marks)


def read_source(spark: SparkSession, spec: FeatureSpec, state: SourceState, days: Sequence[str],
                instants_us: Sequence[int], settings: FeaturesSettings) -> tuple[DataFrame | None, Cover, dict[int, list[str]]]:
    """The stream rows of one events source for points at ``instants_us``: roll-ups where they fit, else daily tiles.

    Roll-ups are computed only by a build that computes tiles (``state.rebuilt``): the roll-ups its
    cover lacks and, for a build of one point (a nightly build), those the builds of the next
    ``tile_batch_days - 1`` days will read, as their days are stored now (the newest days are read raw until
    the next tiling build). Other builds read the valid roll-ups there are, and daily tiles where
    one is missing: a roll-up job costs a night more than the tiles it saves. A backfill's many
    edges leave few roll-ups in its own cover, and it reads each tile once whatever its dates, so
    it computes none for the nights after it (a 20M-row, 30-date backfill from raw took 140 s
    with them).

    Args:
        days: the consecutive source days the build reads; those read raw cannot be rolled up.
        settings: the levels (``rollup_days``) and ``tile_batch_days``, which says when the next build tiles.

    Returns:
        The rows (None without any), the cover read, and the roll-ups computed now per level.
    """
    levels, lookahead = settings.rollup_days, settings.tile_batch_days - 1
    stored = set(state.fingerprints) - set(state.raw)
    if not table_exists(spark, state.table):
        stored = set()
    usable = set(days) - set(state.fingerprints) | stored
    edges = window_edges(spec, state.source, instants_us)
    stale: dict[int, list[str]] = {}
    if state.rebuilt:
        cover = _without_empty(plan_cover(days, usable, edges, levels), stored)
        nights = lookahead if len(set(instants_us)) == 1 else 0
        later = [window_edges(spec, state.source, [max(instants_us) + j * US_PER_DAY]) for j in range(1, nights + 1)]
        covers = [cover, *(_without_empty(plan_cover(_span(e), usable, e, levels), stored) for e in later)]
        wanted = {k: sorted({d for c in covers for d in c.blocks.get(k, ())}) for k in levels}
        stale = stale_blocks(spark, state, Cover({k: v for k, v in wanted.items() if v}, []))
        refresh_blocks(spark, spec, state, stale, levels)
    else:
        available = {k: valid_blocks(spark, state, k) for k in levels}
        cover = _without_empty(plan_cover(days, usable, edges, levels, available), stored)
    parts = [p for p in (read_blocks(spark, state, cover), read_state(spark, spec, state, skip=cover.covered)) if p is not None]
    return (reduce(lambda a, b: a.unionByName(b), parts) if parts else None), cover, stale


def _span(edges_us: set[int]) -> list[str]:
    """The source days from the earliest edge to the latest (excluded): the days a build with these edges reads."""
    first, last = min(edges_us) // US_PER_DAY, (max(edges_us) - 1) // US_PER_DAY
    return [(EPOCH_DAY + timedelta(days=n)).isoformat() for n in range(first, last + 1)]


def _without_empty(cover: Cover, stored: set[str]) -> Cover:
    """The cover without roll-ups over days that have no stored tiles at all (no source partition)."""
    blocks = {k: [d for d in firsts if stored.intersection(block_days(d, k))] for k, firsts in cover.blocks.items()}
    blocks = {k: v for k, v in blocks.items() if v}
    return Cover(blocks, sorted(set(cover.days) | (cover.covered - Cover(blocks, []).covered)))


def read_blocks(spark: SparkSession, state: SourceState, cover: Cover) -> DataFrame | None:
    """The roll-up rows of ``cover``, their fingerprints checked again on the rows."""
    parts = [checked_rows(spark, rollup_table(state, level), firsts, {d: _block_fingerprint(state, d, level) for d in firsts},
                      state.spec_fingerprint).drop(DAY, *META)
             for level, firsts in cover.blocks.items() if table_exists(spark, rollup_table(state, level))]
    return reduce(lambda a, b: a.unionByName(b), parts) if parts else None
