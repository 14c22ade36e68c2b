"""Nightly build of one new as-of date of card_fraud with the previous days' state stored, vs the old single-date build.

Data: the ``sparkml-ops demo-data`` tables of ``--raw`` in ``--state-dir`` (e.g. the 20M-row set of
``features_backfill.py``: 200k customers, 100 days; or the 120-day demo set of
``features_training_scaling.py``). Spec: ``conf/features/card_fraud.yaml`` (43 features, windows up
to 90 days).

First the build of the day before the last is run once, so the tiles of every day but the newest
are stored. Then, side by side in one run, each timed ``--runs`` times (interleaved):
* a cycle of ``features.tile_batch_days`` (7) real nights, the figure compared with the target:
  from the state of the night before them (the tiles of their source days and of the 7 days
  before dropped, then the build of that night run, untimed: it tiles its batch and so computes
  the roll-ups (``features.rollup_days``) over those days and those the six nights after it
  lack, as in production), the nightly builds of the last 7 as-of dates in order, each timed.
  The first six read their new source day raw and compute no roll-up; the seventh tiles all
  seven and computes the roll-ups over them and those of the next cycle, so the upkeep is in the
  mean night. The roll-ups of the earlier builds stay, as in production, where each was computed
  once when its days were tiled or an edge first reached it (``--cold-rollups`` drops them all
  before each cycle, so its nights compute everything their covers need);
* the nightly build of the last day (statistics off) on a night that tiles nothing: the tiles of
  the newest source day are dropped before each run, so each run reads that day raw, checks the
  fingerprints of the other 89 and reads their roll-ups and tiles;
* the nightly build of the same day on the night that tiles a batch: the tiles of the newest 7
  source days are dropped first, so it computes them in one job (and the roll-ups over them);
* the old single-date build (``benchmarks/features_baseline.py``), which reads 90 raw days;
* the floor: the least work any incremental nightly build over daily tiles must do for the new
  date on this data, with none of our checks: read every column of the newest day's raw
  partition and of the stored tiles of the 89 days before it, one aggregate per customer over
  both, and a static insert of the result rows into a Hive table partitioned like the feature table;
* the floor over the roll-ups: the same over what the nightly build reads (the new raw day, the
  roll-ups of its last run and the daily tiles of the other days).
Before each timed run the file listings Spark caches for the tables read are dropped
(``--warm-listings`` keeps them): a nightly job is a new process, which lists its partitions again.
The two partitions written are compared column by column. Target: nightly >= 3x faster.

    .venv/bin/python benchmarks/features_nightly.py --state-dir DIR --raw bench_raw_20m --days 100 [--runs 3]
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, timedelta
from functools import reduce
from pathlib import Path

from featbench import START, median, settings_for, timed
from pyspark.sql import functions as F

from sparkml_ops.features import build_features, feature_columns, load_feature_spec
from sparkml_ops.features.build import source_ranges
from sparkml_ops.features.state import state_table
from sparkml_ops.io.spark import spark_session

sys.path.insert(0, str(Path(__file__).resolve().parent))
from features_baseline import old_build  # noqa: E402


def compare(spark, new_table: str, old_table: str, day: str, names: list[str]) -> list[str]:
    """Features whose values differ between the two partitions (doubles to 1e-9 relative)."""
    new = spark.table(new_table).where(f"as_of_date = '{day}'").alias("n")
    old = spark.table(old_table).where(f"as_of_date = '{day}'").alias("o")
    joined = new.join(old, on="customer_id", how="full")
    exprs = [f"sum(CASE WHEN NOT (n.{c} <=> o.{c}) AND NOT (abs(n.{c} - o.{c}) <= 1e-9 * greatest(abs(o.{c}), 1)) "
             f"THEN 1 ELSE 0 END) AS {c}" for c in names]
    row = joined.selectExpr(*exprs, "sum(CASE WHEN n.customer_id IS NULL OR o.customer_id IS NULL THEN 1 ELSE 0 END) AS _rows")
    diff = row.collect()[0].asDict()
    return [c for c, n in diff.items() if n]


def floor(spark, spec, state: str, last, table: str) -> None:
    """Read the new raw day and the stored tiles of the days before it, one aggregate, one 2,000-row insert."""
    src = spec.sources["tx"]
    first, newest = (d.isoformat() for d in source_ranges(spec, [last])[0]["tx"])
    raw = spark.table(src.table).where(F.col(src.partition_column) == newest)
    tiles = spark.table(state).where(F.col("ds").between(first, newest) & (F.col("ds") != newest))
    # A hash of every column, so that each column of both inputs is read, as a build must.
    rows = [df.select("customer_id", F.hash(*df.columns).cast("bigint").alias("h")) for df in (raw, tiles)]
    rows[0].unionByName(rows[1]).groupBy("customer_id").agg(F.sum("h").alias("h")).createOrReplaceTempView("floor_rows")
    spark.sql(f"INSERT OVERWRITE TABLE {table} PARTITION (as_of_date = '{last}') SELECT customer_id, h FROM floor_rows")


def floor_over_rollups(spark, spec, state: str, last, table: str, cover: dict[str, list[str]]) -> None:
    """As :func:`floor`, over what the nightly build reads: the new raw day, its roll-ups and the other days' tiles."""
    src = spec.sources["tx"]
    first, newest = (d.isoformat() for d in source_ranges(spec, [last])[0]["tx"])
    covered = {(date.fromisoformat(d) + timedelta(days=i)).isoformat() for k, firsts in cover.items() for d in firsts
               for i in range(int(k[:-1]))}
    parts = [spark.table(src.table).where(F.col(src.partition_column) == newest),
             spark.table(state).where(F.col("ds").between(first, newest) & (F.col("ds") != newest) & ~F.col("ds").isin(sorted(covered)))]
    parts += [spark.table(f"{state}_{k}").where(F.col("ds").isin(firsts)) for k, firsts in cover.items()]
    rows = [df.select("customer_id", F.hash(*df.columns).cast("bigint").alias("h")) for df in parts]
    reduce(lambda a, b: a.unionByName(b), rows).groupBy("customer_id").agg(F.sum("h").alias("h")).createOrReplaceTempView("floor_rows")
    spark.sql(f"INSERT OVERWRITE TABLE {table} PARTITION (as_of_date = '{last}') SELECT customer_id, h FROM floor_rows")


def cold(spark, tables: list[str], keep: bool):
    """A timed function's preamble: forget Spark's cached file listings of ``tables`` unless ``keep``."""
    if not keep:
        for table in tables:
            spark.catalog.refreshTable(table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--raw", required=True, help="raw database holding the demo tables")
    parser.add_argument("--days", type=int, required=True, help="days of demo data in it (from 2026-01-01)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--driver-memory", default="8g")
    parser.add_argument("--warm-listings", action="store_true", help="keep Spark's file listings between runs")
    parser.add_argument("--cold-rollups", action="store_true",
                        help="drop every roll-up before each cycle (no roll-up of an earlier night stored)")
    args = parser.parse_args()

    s = settings_for(Path(args.state_dir), args.raw, driver_memory=args.driver_memory)
    last = START + timedelta(days=args.days - 1)
    newest = (last - timedelta(days=1)).isoformat()  # the source day a build of `last` adds (1-day lag)
    with spark_session(s, app_name="bench-nightly") as spark:
        spec = load_feature_spec("card_fraud", s)
        state = state_table(s, spec, "tx")
        table = f"{s.hive.databases.features}.{spec.name}"
        old_table = f"{table}_old"
        build_features(spark, s, spec, [last - timedelta(days=1)], compute_stats=False)  # tiles of all days but the newest
        floor_table = f"{table}_floor"
        spark.sql(f"CREATE TABLE IF NOT EXISTS {floor_table} (customer_id STRING, h BIGINT) USING parquet "
                  "PARTITIONED BY (as_of_date STRING)")

        read = [src.table for src in spec.sources.values()]

        batch = s.features.tile_batch_days
        batch_days = [(last - timedelta(days=i)).isoformat() for i in range(batch, 0, -1)]  # the newest source days
        before_days = [(last - timedelta(days=i)).isoformat() for i in range(2 * batch, batch, -1)]  # the batch before them

        def drop_tiles(days: list[str]) -> None:
            for day in days:
                spark.sql(f"ALTER TABLE {state} DROP IF EXISTS PARTITION (ds = '{day}')")

        rollups = [f"{state}_{k}d" for k in s.features.rollup_days]
        covers = []

        def nightly():
            drop_tiles([newest])
            cold(spark, [*read, state, *rollups], args.warm_listings)
            result = build_features(spark, s, spec, [last], compute_stats=False)
            assert (result.state_rebuilt, result.state_raw) == ({"tx": []}, {"tx": [newest]}), result
            covers.append(result.rollups_read["tx"])
            print(f"  roll-ups computed: {result.rollups_built['tx'] or 'none'}; read: {result.rollups_read['tx']}", flush=True)

        cycle_nights: list[float] = []

        def cycle():
            """The last ``batch`` nights in order, from the state of the night before them: upkeep included."""
            drop_tiles(before_days + batch_days)
            if args.cold_rollups:
                for t in rollups:
                    spark.sql(f"DROP TABLE IF EXISTS {t}")
            # The night before tiles its batch, so it computes the roll-ups of the six nights after it, as in production.
            before = build_features(spark, s, spec, [last - timedelta(days=batch)], compute_stats=False)
            assert set(before_days) <= set(before.state_rebuilt["tx"]), before
            for i in range(batch - 1, -1, -1):
                cold(spark, [*read, state, *rollups], args.warm_listings)
                night = timed(f"  night {last - timedelta(days=i)}", lambda i=i: build_features(
                    spark, s, spec, [last - timedelta(days=i)], compute_stats=False), 1)[0]
                cycle_nights.append(night)
            return sum(cycle_nights[-batch:]) / batch

        def tiling_night():
            drop_tiles(batch_days)
            cold(spark, [*read, state], args.warm_listings)
            result = build_features(spark, s, spec, [last], compute_stats=False)
            assert (result.state_rebuilt, result.state_raw) == ({"tx": batch_days}, {"tx": []}), result

        def old():
            cold(spark, read, args.warm_listings)
            old_build(spark, spec, old_table, [last])

        def least():
            cold(spark, [*read, state], args.warm_listings)
            floor(spark, spec, state, last, floor_table)

        def least_rollups():
            cold(spark, [*read, state, *rollups], args.warm_listings)
            floor_over_rollups(spark, spec, state, last, floor_table, covers[-1])

        contenders = {"nightly build, new day read raw": nightly, f"nightly build that tiles {batch} days": tiling_night,
                      "old single-date build": old, "floor": least, "floor over the roll-ups": least_rollups}
        times: dict[str, list[float]] = {label: [] for label in [*contenders, "cycle"]}
        for _ in range(args.runs):  # interleaved, so that a change of the box's load hits all alike
            times["cycle"].append(cycle())
            print(f"cycle of {batch} nights, mean per night: {times['cycle'][-1]:.1f} s", flush=True)
            for label, func in contenders.items():
                times[label] += timed(label, func, 1)
        new, tiling, old, least, least_r, nights = times.values()
        floor_rows = spark.table(floor_table).where(f"as_of_date = '{last}'").count()
        differ = compare(spark, table, old_table, last.isoformat(), [n for n, _ in feature_columns(spec)])
        rows = spark.table(table).where(f"as_of_date = '{last}'").count()
    mean = median(nights)  # per run: the mean night of a real cycle (roll-ups computed, one night tiles)
    print(f"\n{'one new as-of date of card_fraud (' + args.raw + ')':<58}{'median s':>10}")
    print(f"{'nightly build, new day read raw (the other days stored)':<58}{median(new):>10.1f}")
    print(f"{f'nightly build that tiles the newest {batch} days':<58}{median(tiling):>10.1f}")
    print(f"{f'nightly build, mean night of a cycle of {batch} real nights':<58}{mean:>10.1f}")
    print(f"{'old single-date build (90 raw days)':<58}{median(old):>10.1f}")
    print(f"{'floor (new raw day + stored daily tiles, 1 aggregate, insert)':<58}{median(least):>10.1f}")
    print(f"{'floor over the roll-ups (what the nightly build reads)':<58}{median(least_r):>10.1f}")
    print(f"\nnights of the cycles, s: {', '.join(f'{t:.1f}' for t in cycle_nights)}")
    print(f"speed-up over a cycle: {median(old) / mean:.2f}x (target >= 3x); on a night that tiles nothing:"
          f" {median(old) / median(new):.2f}x; the floors': {median(old) / median(least):.2f}x and"
          f" {median(old) / median(least_r):.2f}x; that night / floor over the roll-ups: {median(new) / median(least_r):.2f};"
          f" {rows:,} rows written ({floor_rows:,} by the floor); columns that differ from the old build: {differ or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
