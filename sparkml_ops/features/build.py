"""The feature build: a feature set for one or more as-of dates into a Hive table partitioned by ``as_of_date``.

Partition ``as_of_date=D`` holds one row per entity with the features as known at the end of
day D (00:00 UTC of D+1): a source row with time ``t`` counts when ``t < end of D - lag``.
With the default 1-day lag that is every event up to the end of D-1.

Everything is checked before the write (dates, tables, schemas, partitions, empty inputs, SQL),
so a bad run leaves the table exactly as it was; a rerun of a date replaces that partition only.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from functools import reduce
from datetime import date, datetime, timedelta, timezone

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from sparkml_ops.config import Settings
from sparkml_ops.errors import DataValidationError, UsageError
from sparkml_ops.features.compute import EPOCH, analyse_sql, check_source_schema, compute_features, prepare_source
from sparkml_ops.features.rollups import read_source
from sparkml_ops.features.state import plan_state, refresh_state
from sparkml_ops.features.spec import FeatureSpec, SourceSpec, feature_columns
from sparkml_ops.features.stats import write_feature_stats
from sparkml_ops.io.tables import ColumnDef, ensure_table, insert_partitions, partition_values, table_schema

log = logging.getLogger(__name__)

PARTITION = "as_of_date"


@dataclass(frozen=True)
class BuildResult:
    """What a feature build wrote."""

    feature_set: str
    table: str
    rows_per_date: dict[str, int]
    stats_table: str | None = None
    features: list[str] = field(default_factory=list)
    exit_code: int = 0
    state_rebuilt: dict[str, list[str]] = field(default_factory=dict)  # events source -> days whose tiles were computed
    state_raw: dict[str, list[str]] = field(default_factory=dict)  # events source -> new days read raw, tiled later
    rollups_read: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # source -> "<K>d" -> first days read
    rollups_built: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # source -> "<K>d" -> computed now


def feature_table(settings: Settings, spec: FeatureSpec) -> str:
    """``<hive.databases.features>.<spec name>``."""
    return feature_table_name(settings, spec.name)


def feature_table_name(settings: Settings, feature_set: str) -> str:
    """The Hive table the build writes feature set ``feature_set`` to: ``<hive.databases.features>.<feature_set>``."""
    return f"{settings.hive.databases.features}.{feature_set}"


def feature_table_columns(spec: FeatureSpec) -> list[ColumnDef]:
    """Data columns of the feature table (the ``as_of_date`` partition column excluded)."""
    keys = [ColumnDef(k, spec.key_types[k], "entity key") for k in spec.entity_keys]
    descr = {f.name: f.description or _describe(f) for f in spec.features}
    return keys + [ColumnDef(name, dtype, descr[name]) for name, dtype in feature_columns(spec)]


def _describe(f) -> str:
    if f.kind == "aggregate":
        days = f.window_us / 86_400e6
        what = f"{f.func}({f.column or '*'})" + (f" where {f.where}" if f.where else "")
        return f"{what} over the {days:g} days before the cutoff, source {f.source}"
    if f.kind == "recency":
        return f"days from the last {f.source} row to the as-of time"
    if f.kind == "ratio":
        return f"{f.numerator} / {f.denominator}"
    return f"{f.sql} (source {f.source})"


def asof_time(day: date) -> datetime:
    """The as-of instant of an as-of date: the end of that day, 00:00 UTC of the next day."""
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc) + timedelta(days=1)


def source_days(src: SourceSpec, asof: datetime, window_us: int) -> tuple[date, date]:
    """First and last day partition of ``src`` that can hold rows known at ``asof`` inside the window."""
    cutoff = asof - timedelta(microseconds=src.lag_us)
    last = (cutoff - timedelta(microseconds=1)).date()
    first = (cutoff - timedelta(microseconds=window_us)).date()
    return first, last


def check_dates(dates: Sequence[date], settings: Settings, today: date | None = None) -> list[date]:
    """Sorted distinct as-of dates; refuses none, too many, or dates in the future.

    Raises:
        UsageError: no dates or more than ``features.max_dates_per_run``.
        DataValidationError: a date after today (UTC): its data cannot exist yet.
    """
    days = sorted(set(dates))
    if not days:
        raise UsageError("no as-of dates given: pass --date YYYY-MM-DD or --start/--end.")
    limit = settings.features.max_dates_per_run
    if len(days) > limit:
        raise UsageError(f"{len(days)} as-of dates in one run; the limit is features.max_dates_per_run={limit}.",
                         hint="Split the range into several runs, or raise the limit in conf/.")
    today = today or datetime.now(timezone.utc).date()
    future = [d for d in days if d > today]
    if future:
        raise DataValidationError(f"as-of date {future[0].isoformat()} is in the future (today is {today.isoformat()} UTC).",
                                  hint="Features can only be built for dates whose data exists.")
    return days


def source_ranges(spec: FeatureSpec, days: Sequence[date]) -> tuple[dict[str, tuple[date, date]], dict[str, list[str]]]:
    """Per events source: the (first, last) day partitions the as-of ``days`` read, and those that must hold rows."""
    ranges: dict[str, tuple[date, date]] = {}
    required: dict[str, list[str]] = {}
    for name, src in spec.sources.items():
        if src.kind == "events":
            spans = [source_days(src, asof_time(d), spec.max_window_us(name)) for d in days]
            ranges[name] = (min(s[0] for s in spans), max(s[1] for s in spans))
            required[name] = sorted({s[1].isoformat() for s in spans})
    return ranges, required


def _check_required(spark: SparkSession, name: str, src: SourceSpec, need: list[str]) -> None:
    """Every required day partition exists and holds rows (one metastore listing, one probe of a row per day)."""
    present = set(partition_values(spark, src.table, src.partition_column))
    # Without every day, the missing one is the error and nothing needs probing.
    rows = _probe_days(spark, src, need) if present.issuperset(need) else {}
    require_days(name, src, present, rows, need)


def require_days(name: str, src: SourceSpec, present: Collection[str], rows: Mapping[str, int], need: list[str]) -> None:
    """Every day of ``need`` is among the ``present`` partitions of the source and holds ``rows``.

    Raises:
        DataValidationError: naming the first missing, else the first empty, day.
    """
    part = src.partition_column
    missing = [d for d in need if d not in present]
    if missing:
        raise DataValidationError(
            f"source '{name}': partition {part}={missing[0]} of {src.table} is missing"
            f" ({len(missing)} of {len(need)} required day(s) missing); nothing was written.",
            hint="Load that day first, or build an earlier as-of date.",
        )
    empty = [d for d in need if not rows.get(d)]
    if empty:
        raise DataValidationError(
            f"source '{name}': partition {part}={empty[0]} of {src.table} is empty; nothing was written.",
            hint="Reload that day's data, then rerun.",
        )


def load_sources(spark: SparkSession, spec: FeatureSpec, ranges: dict[str, tuple[date, date]],
                 required: dict[str, list[str]]) -> dict[str, DataFrame]:
    """Read and check every source: schema, required partitions, non-empty; then prepare its rows.

    Args:
        ranges: events source -> (first, last) day partitions to read.
        required: events source -> day partitions that must exist and hold rows.
    """
    frames = {}
    for name, src in spec.sources.items():
        actual = table_schema(spark, src.table)
        check_source_schema(spec, src, actual)
        df = spark.table(src.table)
        if src.kind == "events":
            part = src.partition_column
            if required.get(name):
                _check_required(spark, name, src, required[name])
            first, last = ranges[name]
            df = df.where(F.col(part).between(first.isoformat(), last.isoformat()))
        elif df.limit(1).count() == 0:
            raise DataValidationError(f"source '{name}': table {src.table} is empty; nothing was written.",
                                      hint="Load the table first.")
        frames[name] = prepare_source(spec, src, df)
    return frames


def build_features(
    spark: SparkSession,
    settings: Settings,
    spec: FeatureSpec,
    dates: Sequence[date],
    compute_stats: bool = True,
    today: date | None = None,
    rebuild_state: bool = False,  # params: a seventh, as the CLI's and jobs' flags map one to one onto these
) -> BuildResult:
    """Compute ``spec`` for each as-of date into ``<features db>.<spec.name>``, replacing only those partitions.

    Events sources are read as daily tiles (:mod:`sparkml_ops.features.state`): the days whose
    stored tiles are missing or stale are computed from their raw partitions first, except the
    newest ones, which are read raw until ``features.tile_batch_days`` of them await tiling. A build
    of several dates with ``features.defer_backfill_state`` reads every such day raw and tiles none.

    Args:
        dates: as-of dates; all are computed in one pass over each source.
        compute_stats: also write per-feature statistics to ``<ops db>.<features.stats_table>``.
        today: the current UTC date (for tests); dates after it are refused.
        rebuild_state: recompute the tiles of every source day the dates read, valid or not
            (late data that left the files' names, sizes and times unchanged).

    Returns:
        The table name and the number of rows written per as-of date.

    Raises:
        UsageError: no dates, or too many.
        DataValidationError: future date, missing or empty source partition, schema drift.
        NotFoundError: a source table does not exist.
        FeatureSpecError: a SQL expression of the spec does not analyse.
    """
    days = check_dates(dates, settings, today)
    ranges, required = source_ranges(spec, days)
    tiled = [n for n in ranges if spec.features_of(n, "aggregate") or spec.features_of(n, "recency")]
    # The tiled sources' required days are checked below from the state's one listing and count.
    frames = load_sources(spark, spec, ranges, {n: need for n, need in required.items() if n not in tiled})
    analyse_sql(spec, frames)  # before the state is written: a spec mistake writes nothing
    # A backfill may leave the tiling of its stale days to the nights after it (features.defer_backfill_state).
    deferred = settings.features.defer_backfill_state and len(days) > 1
    tiling = "rebuild" if rebuild_state else "defer" if deferred else "batched"
    states = {n: plan_state(spark, settings, spec, n, _days(*ranges[n]), tiling) for n in tiled}
    for name, st in states.items():
        rows = {**st.rows, **_probe_days(spark, spec.sources[name], [d for d in required[name] if d in st.raw])}
        require_days(name, spec.sources[name], st.fingerprints, rows, required[name])
    for st in states.values():
        refresh_state(spark, spec, st)
    instants = [(asof_time(d) - EPOCH) // timedelta(microseconds=1) for d in days]
    tiles, read, built = {}, {}, {}
    for n, st in states.items():
        rows, cover, stale = read_source(spark, spec, st, _days(*ranges[n]), instants, settings.features)
        if rows is not None:
            tiles[n] = rows
        read[n], built[n] = _levels(cover.blocks), _levels(stale)
    points = {d.isoformat(): asof_time(d).strftime("%Y-%m-%d %H:%M:%S") for d in days}
    features = compute_features(spec, {**frames, **tiles}, points, PARTITION, tiled=set(tiles))
    table = feature_table(settings, spec)
    ensure_table(spark, table, feature_table_columns(spec), [ColumnDef(PARTITION, "string", "as-of date YYYY-MM-DD")],
                 comment=f"feature set {spec.name} ({spec.path.name}); one row per entity per as-of date")
    log.info("building feature set %s for %d as-of date(s) %s..%s into %s", spec.name, len(days), days[0], days[-1], table)
    iso = [d.isoformat() for d in days]
    rows = _insert(features, table, iso)
    stats_table = write_feature_stats(spark, settings, spec, table, iso) if compute_stats else None
    log.info("feature set %s written: %s", spec.name, ", ".join(f"{d}={n}" for d, n in rows.items()))
    return BuildResult(spec.name, table, rows, stats_table, [n for n, _ in feature_columns(spec)],
                       state_rebuilt={n: st.rebuilt for n, st in states.items()},
                       state_raw={n: st.raw for n, st in states.items()}, rollups_read=read, rollups_built=built)


def _levels(blocks: dict[int, list[str]]) -> dict[str, list[str]]:
    return {f"{k}d": v for k, v in blocks.items()}


def _insert(features: DataFrame, table: str, iso: list[str]) -> dict[str, int]:
    """Replace the partitions ``iso`` of ``table`` with ``features``; the rows written per as-of date."""
    if len(iso) == 1:  # a static insert (the nightly case: no sort by partition), counted on the way
        observation = Observation("rows written")
        insert_partitions(features.drop(PARTITION).observe(observation, F.count(F.lit(1)).alias("rows")), table, {PARTITION: iso[0]})
        return {iso[0]: int(observation.get["rows"])}
    insert_partitions(features, table)
    written = features.sparkSession.table(table).where(F.col(PARTITION).isin(iso)).groupBy(PARTITION).count().collect()
    return {d: 0 for d in iso} | {r[0]: r[1] for r in written}


def _probe_days(spark: SparkSession, src: SourceSpec, days: list[str]) -> dict[str, int]:
    """``{day: 1}`` for the day partitions of ``days`` that hold a row: one job, at most one row read per day."""
    if not days:
        return {}
    part = spark.table(src.table)
    probes = [part.where(F.col(src.partition_column) == d).select(F.col(src.partition_column)).limit(1) for d in days]
    return {r[0]: 1 for r in reduce(lambda a, b: a.union(b), probes).collect()}


def _days(first: date, last: date) -> list[str]:
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
