"""Nightly build of one new as-of date of card_fraud with the previous days' tiles stored, vs the old single-date build.

Data: the ``sparkml-ops demo-data`` tables of ``--raw`` in ``--state-dir`` (e.g. the 20M-row set of
``features_backfill.py``: 200k customers, 100 days; or the 120-day demo set of
``features_training_scaling.py``). Spec: ``conf/features/card_fraud.yaml`` (43 features, windows up
to 90 days).

First the build of the day before the last is run once, so the tiles of every day but the newest
are stored. Then, side by side in one run, each timed ``--runs`` times (interleaved):
* the nightly build of the last day (statistics off) on a night that tiles nothing: the tiles of
  the newest source day are dropped before each run, so each run reads that day raw, checks the
  fingerprints of the other 89 and reads their tiles;
* the nightly build of the same day on the night that tiles a batch (``features.tile_batch_days``,
  7 by default): the tiles of the newest 7 source days are dropped first, so it computes them in
  one job. One night in 7 does that; the figure compared with the target is the mean of a cycle;
* the old single-date build (``benchmarks/features_baseline.py``), which reads 90 raw days;
* the floor: the least work any incremental nightly build must do for the new date on this data,
  with none of our checks: read every column of the newest day's raw partition and of the stored
  tiles of the 89 days before it, one aggregate per customer over both, and a static insert of
  the 2,000 result rows into a Hive table partitioned like the feature table.
Before each timed run the file listings Spark caches for the tables read are dropped
(``--warm-listings`` keeps them): a nightly job is a new process, which lists its partitions again.
The two partitions written are compared column by column. Target: nightly >= 3x faster.

    .venv/bin/python benchmarks/features_nightly.py --state-dir DIR --raw bench_raw_20m --days 100 [--runs 3]
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
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

        def drop_tiles(days: list[str]) -> None:
            for day in days:
                spark.sql(f"ALTER TABLE {state} DROP IF EXISTS PARTITION (ds = '{day}')")

        def nightly():
            drop_tiles([newest])
            cold(spark, [*read, state], args.warm_listings)
            result = build_features(spark, s, spec, [last], compute_stats=False)
            assert (result.state_rebuilt, result.state_raw) == ({"tx": []}, {"tx": [newest]}), result

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

        contenders = {"nightly build, new day read raw": nightly, f"nightly build that tiles {batch} days": tiling_night,
                      "old single-date build": old, "floor": least}
        times: dict[str, list[float]] = {label: [] for label in contenders}
        for _ in range(args.runs):  # interleaved, so that a change of the box's load hits all three alike
            for label, func in contenders.items():
                times[label] += timed(label, func, 1)
        new, tiling, old, least = times.values()
        floor_rows = spark.table(floor_table).where(f"as_of_date = '{last}'").count()
        differ = compare(spark, table, old_table, last.isoformat(), [n for n, _ in feature_columns(spec)])
        rows = spark.table(table).where(f"as_of_date = '{last}'").count()
    mean = ((batch - 1) * median(new) + median(tiling)) / batch  # a cycle of `batch` nights, one of which tiles
    print(f"\n{'one new as-of date of card_fraud (' + args.raw + ')':<58}{'median s':>10}")
    print(f"{'nightly build, new day read raw (the other days tiled)':<58}{median(new):>10.1f}")
    print(f"{f'nightly build that tiles the newest {batch} days':<58}{median(tiling):>10.1f}")
    print(f"{f'nightly build, mean over a cycle of {batch} nights':<58}{mean:>10.1f}")
    print(f"{'old single-date build (90 raw days)':<58}{median(old):>10.1f}")
    print(f"{'floor (new raw day + stored tiles, 1 aggregate, insert)':<58}{median(least):>10.1f}")
    print(f"\nspeed-up over a cycle: {median(old) / mean:.2f}x (target >= 3x); on a night that tiles nothing:"
          f" {median(old) / median(new):.2f}x; the floor's: {median(old) / median(least):.2f}x; that night / floor:"
          f" {median(new) / median(least):.2f}; {rows:,} rows written ({floor_rows:,} by the floor);"
          f" columns that differ from the old build: {differ or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
