"""The persisted state of feature builds: daily tiles of each events source, checked against their source days.

A build reads, per events source, the tiles of the days its windows cover instead of the raw
rows: ``<hive.databases.features>.<feature set>__<source>_state``, partitioned by the source day
``ds``. Each tile row records the row count and the fingerprint (file names, sizes, modification
times) of the source partition it came from, and a fingerprint of the spec parts it depends on.
Before a build uses a day, both fingerprints must match today's; a day that is missing, changed
(late data, a reload) or computed under another spec is recomputed from its raw partition and
replaces that day's state. So a nightly build computes one new day of tiles and reads the rest.
The fingerprints and row count of each stored day are also kept as a mark in the state table's
metadata (:func:`sparkml_ops.io.derived.partition_marks`), so that checking them reads no tiles.
See docs/features.md ("Incremental state") for operators.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection
from typing import Literal
from dataclasses import dataclass, field
from functools import reduce
from math import gcd

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from sparkml_ops.config import Settings
from sparkml_ops.features.compute import events_plan, prepare_source
from sparkml_ops.features.spec import FeatureSpec, SourceSpec
from sparkml_ops.io.derived import (
    mark_partitions, partition_fingerprints, partition_marks, replace_derived_partitions,
)
from sparkml_ops.io.tables import sql_string, table_exists
from sparkml_ops.transforms.windows import US_PER_DAY, daily_tiles, event_rows, event_tiles

log = logging.getLogger(__name__)

DAY = "ds"
META = {"source_rows": "bigint", "source_fingerprint": "string", "spec_fingerprint": "string"}


@dataclass(frozen=True)
class SourceState:
    """The tiles of one events source a build may use, and what is known of its source days.

    Attributes:
        fingerprints: source day -> fingerprint of its files, for the days whose partition exists.
        rows: source day -> rows of its partition, for the stored days (from their marks) and the
            days tiled now (counted); the days read raw are not counted.
        rebuilt: the stale days (missing, changed, another spec) whose tiles are computed now.
        raw: the stale days among the newest ``features.tile_batch_days``, read raw by this build and
            tiled by a later one (see :func:`plan_state`).
    """

    source: str
    table: str
    fingerprints: dict[str, str]
    spec_fingerprint: str
    rows: dict[str, int] = field(default_factory=dict)
    rebuilt: list[str] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)


def state_table(settings: Settings, spec: FeatureSpec, source: str) -> str:
    """``<hive.databases.features>.<feature set>__<source>_state``."""
    return f"{settings.hive.databases.features}.{spec.name}__{source}_state"


def tile_grid(spec: FeatureSpec, src: SourceSpec) -> tuple[int, int]:
    """(cell length, phase) µs: every window edge of a build is ``phase`` modulo the cell length.

    A build's cutoff is midnight minus the lag, and windows are whole multiples of the cell
    (the greatest common divisor of one day and every window), so cells never straddle an edge.
    """
    windows = [f.window_us for f in spec.features_of(src.name, "aggregate")]
    grid = gcd(US_PER_DAY, spec.max_window_us(src.name), *windows)
    return grid, (-src.lag_us) % grid


def spec_fingerprint(spec: FeatureSpec, src: SourceSpec) -> str:
    """A hash of everything the tiles of ``src`` depend on besides the data.

    The keys and their types, the table, time and partition columns, the tile grid, the derived
    columns (their SQL, or the Spark expression a Python function returns) and each measure's
    expression and functions. A change to any of them makes every stored day stale.
    """
    defs, _ = events_plan(spec, src, list(spec.sources).index(src.name))
    parts = [src.table, src.time_column, src.partition_column, tile_grid(spec, src),
             sorted(spec.key_types.items()), sorted(src.columns.items()),
             [(d.name, d.type, d.expr or str(d.function())) for d in src.derived],
             [(m.measure.column, m.measure.kind, str(m.value), sorted(m.funcs)) for m in defs]]
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


def mark(source_fp: str, spec_fp: str, rows: int) -> str:
    """The mark of a stored partition: the fingerprints of its sources and spec, and its source rows."""
    return f"{source_fp} {spec_fp} {rows}"


# How a build treats the stale days of a source: see plan_state.
Tiling = Literal["batched", "rebuild", "defer"]


def plan_state(spark: SparkSession, settings: Settings, spec: FeatureSpec, source: str, days: list[str],
               tiling: Tiling = "batched") -> SourceState:
    """Which stored days of one events source are valid, which are tiled now, which are read raw.

    One listing of the source partitions (their fingerprints) and one read of the state's marks
    (metastore only): no tile is read. A day is valid when its stored mark holds the current
    fingerprints of its source partition and of the spec; the others (all of them with
    ``tiling="rebuild"``) are stale. Days without a source partition have no tiles.

    Stale days among the newest ``features.tile_batch_days`` of ``days`` are read raw while fewer
    than that many of them are stale: a nightly build then adds its new day without a tiling job,
    and every ``tile_batch_days``-th night tiles them all in one. Older stale days (late data, a
    first build, another spec) and, with ``tiling="rebuild"``, every day are tiled now; their raw
    rows are counted for their marks. With ``tiling="defer"``, every stale day is read raw and none is tiled
    (a backfill with ``features.defer_backfill_state``).
    """
    src = spec.sources[source]
    table = state_table(settings, spec, source)
    current = partition_fingerprints(spark, src.table, src.partition_column, days)
    spec_fp = spec_fingerprint(spec, src)
    marks = {} if tiling == "rebuild" else partition_marks(spark, table, DAY)
    stored = {d: int(m.rsplit(" ", 1)[1]) for d, m in marks.items()
              if d in current and m.rsplit(" ", 1)[0] == f"{current[d]} {spec_fp}"}
    stale = sorted(d for d in current if d not in stored)
    batch = settings.features.tile_batch_days
    newest = [d for d in stale if d in days[-batch:]]
    raw = {"rebuild": [], "defer": stale, "batched": newest if len(newest) < batch else []}[tiling]
    tiled = [d for d in stale if d not in raw]
    counted = {}
    if tiled:
        rows = spark.table(src.table).where(F.col(src.partition_column).isin(tiled))
        counted = {r[0]: r[1] for r in rows.groupBy(src.partition_column).count().collect()}
    rows = {**stored, **{d: counted.get(d, 0) for d in tiled}}
    return SourceState(source, table, current, spec_fp, rows, tiled, raw)


def _tiles(spark: SparkSession, spec: FeatureSpec, src: SourceSpec, state: SourceState) -> DataFrame:
    """The tile rows of the stale days computed from the raw partitions, with the metadata of their source day."""
    index = list(spec.sources).index(src.name)
    days = state.rebuilt
    raw = spark.table(src.table).where(F.col(src.partition_column).isin(days))
    rows = prepare_source(spec, src, raw)
    defs, _ = events_plan(spec, src, index, rows)
    grid, phase = tile_grid(spec, src)
    events = rows.withColumn(DAY, F.col(src.partition_column)).transform(event_rows(spec.entity_keys, src.time_column, defs,
                                                                                    index, keep=[DAY]))
    # Merged within each scan task, so with no shuffle: a raw day's files hold all of that day's rows.
    tiles = events.transform(daily_tiles(spec.entity_keys, defs, grid, phase, DAY, local=True))
    lookup = day_map({d: f"CAST({state.rows[d]} AS BIGINT)" for d in days})
    fps = day_map({d: sql_string(state.fingerprints[d]) for d in days})
    return tiles.select(*[c for c in tiles.columns if c != DAY], lookup[F.col(DAY)].alias("source_rows"),
                        fps[F.col(DAY)].alias("source_fingerprint"), F.lit(state.spec_fingerprint).alias("spec_fingerprint"), DAY)


def day_map(values: dict[str, str]) -> Column:
    """``day -> value`` (SQL expressions) as one map literal: parsed in the JVM in one call, where a
    ``create_map`` of ``lit`` columns costs two py4j calls per entry (90 days of a nightly build)."""
    return F.expr("map(" + ", ".join(f"{sql_string(d)}, {v}" for d, v in values.items()) + ")")


def checked_rows(spark: SparkSession, table: str, parts: list[str], fingerprints: dict[str, str], spec_fp: str) -> DataFrame:
    """The rows of partitions ``parts`` (of ``DAY``) of ``table`` whose recorded fingerprints are the expected ones."""
    fps = day_map({d: sql_string(fingerprints[d]) for d in parts})
    rows = spark.table(table).where(F.col(DAY).isin(parts))
    return rows.where((F.col("source_fingerprint") == fps[F.col(DAY)]) & (F.col("spec_fingerprint") == spec_fp))


def refresh_state(spark: SparkSession, spec: FeatureSpec, state: SourceState) -> None:
    """Compute the tiles of the stale days of ``state`` in one pass; each replaces its day, then is marked valid.

    The mark is written after the tiles: a build that stops in between leaves the day stale
    (old mark) or unmarked, so it is recomputed, never read with the wrong fingerprint.
    """
    if not state.rebuilt:
        return
    src = spec.sources[state.source]
    log.info("state of %s source %s: %d of %d day(s) to compute (%s..%s)", spec.name, state.source, len(state.rebuilt),
             len(state.fingerprints), state.rebuilt[0], state.rebuilt[-1])
    comment = (f"daily tiles of source {state.source} of feature set {spec.name} "
               "(sparkml-ops build state; recomputed from the source when stale)")
    replace_derived_partitions(_tiles(spark, spec, src, state), state.table, DAY, comment, state.rebuilt, as_is=True)
    marks = {d: mark(state.fingerprints[d], state.spec_fingerprint, state.rows[d]) for d in state.rebuilt}
    mark_partitions(spark, state.table, DAY, marks)


def read_state(spark: SparkSession, spec: FeatureSpec, state: SourceState, skip: Collection[str] = ()) -> DataFrame | None:
    """The stream rows of the source: its valid tiles (fingerprints checked again on the rows), and its raw days as one-row tiles.

    Args:
        skip: stored days not to read (those read inside roll-ups, :mod:`sparkml_ops.features.rollups`).
    """
    src = spec.sources[state.source]
    parts = []
    wanted = [d for d in state.fingerprints if d not in state.raw and d not in skip]
    if wanted and table_exists(spark, state.table):
        parts.append(checked_rows(spark, state.table, wanted, state.fingerprints, state.spec_fingerprint).drop(DAY, *META))
    if state.raw:
        index = list(spec.sources).index(src.name)
        rows = prepare_source(spec, src, spark.table(src.table).where(F.col(src.partition_column).isin(state.raw)))
        defs, _ = events_plan(spec, src, index, rows)
        parts.append(rows.transform(event_rows(spec.entity_keys, src.time_column, defs, index)).transform(event_tiles(spec.entity_keys, defs)))
    return reduce(lambda a, b: a.unionByName(b), parts) if parts else None
