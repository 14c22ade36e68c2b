"""Benchmark: a cold read of N day partitions with Spark's parallel partition discovery vs listing on the driver.

Spark lists the files of a read of more than ``spark.sql.sources.parallelPartitionDiscovery.threshold``
partitions (default 32) in a Spark job of its own, one task per partition; below it, the driver lists
them itself. A nightly feature build reads about 90 day partitions of its state, a 30-date backfill
about 120. conf/base.yaml sets the threshold to 1024; this measures why, side by side in one session:
the same query (count of N partitions, after forgetting Spark's cached listing) with threshold 32 and
with 1024, interleaved ``--runs`` times. The table (N partitions x 1 small Parquet file) is created once.

    .venv/bin/python benchmarks/partition_listing.py --env local [--partitions 90] [--runs 7]
    eval "$(scripts/cluster env)"; kinit -k -t .state/cluster/kerberos/keytabs/svc-sparkml.keytab svc-sparkml
    .venv/bin/python benchmarks/partition_listing.py --env cluster --partitions 90   # YARN client mode, HDFS
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from sparkml_ops.config import load_settings
from sparkml_ops.io.spark import spark_session

REPO = Path(__file__).resolve().parents[1]
KEY = "spark.sql.sources.parallelPartitionDiscovery.threshold"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="local", help="conf/<env>.yaml: local (embedded) or cluster (YARN + HDFS)")
    parser.add_argument("--state-dir", help="state_dir for --env local (default: the config's)")
    parser.add_argument("--partitions", type=int, default=90)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    sets = ["logging.level=WARNING"] + ([f"state_dir={args.state_dir}"] if args.state_dir else [])
    settings = load_settings(args.env, REPO / "conf", sets, dict(os.environ))
    table = f"bench_listing.days_{args.partitions}"
    with spark_session(settings, app_name="bench-partition-listing") as spark:
        spark.sql("CREATE DATABASE IF NOT EXISTS bench_listing")
        if not spark.catalog.tableExists(table):
            rows = spark.range(0, args.partitions * 500).selectExpr(
                "cast(id % 500 AS string) AS customer_id", "rand() AS amount",
                "date_format(date_add(DATE'2026-01-01', cast(id div 500 AS int)), 'yyyy-MM-dd') AS ds")
            rows.repartition("ds").write.partitionBy("ds").format("parquet").saveAsTable(table)
        times: dict[str, list[float]] = {"32": [], "1024": []}
        for _ in range(args.runs):
            for threshold, runs in times.items():
                spark.conf.set(KEY, threshold)
                spark.catalog.refreshTable(table)  # a new job lists its partitions again
                t0 = time.perf_counter()
                count = spark.table(table).where("ds >= '2026-01-01'").groupBy().count().collect()[0][0]
                runs.append(time.perf_counter() - t0)
        assert count == args.partitions * 500, count
    parallel, driver = (statistics.median(v[1:]) for v in times.values())  # the first run warms the JVM
    print(f"\ncold read of {args.partitions} partitions ({args.env}), median of {args.runs - 1} runs after one warm-up")
    print(f"  threshold 32 (a listing job):      {parallel:6.2f} s   {[round(x, 2) for x in times['32']]}")
    print(f"  threshold 1024 (driver lists):     {driver:6.2f} s   {[round(x, 2) for x in times['1024']]}")
    print(f"  listing on the driver saves {parallel - driver:.2f} s per read ({parallel / driver:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
