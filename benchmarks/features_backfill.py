"""Backfill of 30 as-of dates: the engine vs single-process pandas vs the old build; driver memory at 5M and 20M rows.

Data: ``sparkml-ops demo-data`` tables with 5M and 20M transactions, 200k customers, 100 days
(each generated once into its own raw database of ``--state-dir``). Spec: count, sum, mean, min,
max of ``amount`` over 1, 7, 30 and 90 days (4 windows x 5 aggregates), 1-day lag. As-of dates:
the last 30 days.

Timed side by side in one run, on the 20M set:
* ``build_features`` of the 30 dates (statistics off), from raw: the state table is dropped first.
  By default (``features.defer_backfill_state``) a backfill reads its untiled days raw and stores
  no tiles; the first single-date build after it tiles them, once: that night is timed too;
* the same backfill storing the tiles (``defer_backfill_state: false``): what storing them costs;
* the same build again with the tiles stored (what a re-run of the range costs);
* a single-process pandas implementation computing each date (pyarrow reads the partitions once,
  then one masked groupby per date and window), writing Parquet;
* the old build (``benchmarks/features_baseline.py``: every row exploded over the dates), of the
  last N dates for each N of ``--old-dates`` (default 30): its cost is fixed + rows x dates, so on
  a busy 2-core box two small N (e.g. ``1,3``) keep the run short; the 30-date time is then
  estimated from the line through them (fixed cost + 30 x the cost per date), and the engine's
  30-date time against the old build of fewer dates is a lower bound of the speed-up;
* the floor: the partition-pruned scan + one ``groupBy(customer_id).count()`` into ``noop``;
Memory: each size is built in its own process, which reports its peak RSS (Python driver, and the
driver JVM, which in ``local[2]`` also runs the tasks). Targets: >= 3x pandas, >= 5x the old build,
no driver collect of source data, driver peak RSS flat from 5M to 20M rows.

    .venv/bin/python benchmarks/features_backfill.py [--runs 1] [--state-dir DIR] [--skip-old] [--old-dates 30 | 1,3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

from featbench import START, ensure_demo_data, median, noop, peak_rss_mb, settings_for, timed

from sparkml_ops.features import build_features, load_feature_spec
from sparkml_ops.features.state import state_table
from sparkml_ops.io.spark import spark_session

sys.path.insert(0, str(Path(__file__).resolve().parent))
from features_baseline import old_build  # noqa: E402
from features_vs_pandas import FUNCS, WINDOWS, pandas_windows  # noqa: E402

DAYS, CUSTOMERS, DATES = 100, 200_000, 30
SPEC = """\
name: backfill_{tag}
entity_keys: [customer_id]
sources:
  tx:
    table: card_transactions
    database: raw
    kind: events
    time_column: ts
    partition_column: ds
    availability_lag: 1d
    columns: {{customer_id: string, ts: timestamp, amount: double}}
features:
  - {{type: aggregate, source: tx, column: amount, functions: [{funcs}], windows: [{windows}]}}
"""


def as_of_dates() -> list[date]:
    last = START + timedelta(days=DAYS - 1)
    return [last - timedelta(days=i) for i in range(DATES - 1, -1, -1)]


def spec_for(state: Path, tag: str, settings):
    path = state / "specs" / f"backfill_{tag}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SPEC.format(tag=tag, funcs=", ".join(FUNCS), windows=", ".join(f"{w}d" for w in WINDOWS)))
    return load_feature_spec(path, settings)


def child(args) -> int:
    """One size in this process: the engine (from raw, its first night, storing tiles, with tiles), the floor, the old
    build; JSON on the last line."""
    rows = {"5m": 5_000_000, "20m": 20_000_000}[args.child]
    state = Path(args.state_dir)
    s = settings_for(state, f"bench_raw_{args.child}", driver_memory=args.driver_memory)
    out: dict = {"rows": rows}
    with spark_session(s, app_name=f"bench-backfill-{args.child}") as spark:
        ensure_demo_data(spark, s, DAYS, CUSTOMERS, rows // DAYS)
        spec = spec_for(state, args.child, s)
        dates = as_of_dates()

        def fresh(settings=s):
            state = state_table(settings, spec, "tx")
            for table in [state, *(f"{state}_{k}d" for k in settings.features.rollup_days)]:
                spark.sql(f"DROP TABLE IF EXISTS {table}")
            return build_features(spark, settings, spec, dates, compute_stats=False)

        out["engine"], out["first_night"] = [], []
        for _ in range(args.runs):  # each first night follows a backfill that stored no tiles
            out["engine"] += timed(f"engine, 30 dates, from raw ({args.child})", fresh, 1)
            out["first_night"] += timed(f"engine, the night after: last date alone, tiling its days ({args.child})",
                                        lambda: build_features(spark, s, spec, dates[-1:], compute_stats=False), 1)
        storing = s.model_copy(update={"features": s.features.model_copy(update={"defer_backfill_state": False})})
        out["engine_storing"] = timed(f"engine, 30 dates, from raw, storing the tiles ({args.child})",
                                      lambda: fresh(storing), args.runs)
        out["engine_tiles"] = timed(f"engine, 30 dates, tiles stored ({args.child})",
                                    lambda: build_features(spark, s, spec, dates, compute_stats=False), args.runs)
        out["python_rss_mb"], out["jvm_rss_mb"] = peak_rss_mb(spark)
        table = f"{s.hive.databases.features}.{spec.name}"
        out["check"] = list(spark.table(table).where(f"as_of_date = '{dates[-1]}'").selectExpr(
            "count(*)", "sum(tx_amount_count_90d)", "round(sum(tx_amount_sum_7d), 2)").collect()[0])
        first = (dates[0] - timedelta(days=max(WINDOWS))).isoformat()
        scan = spark.table(f"{s.hive.databases.raw}.card_transactions").where(f"ds BETWEEN '{first}' AND '{dates[-1]}'")
        out["floor"] = timed(f"floor: scan + groupBy count ({args.child})", lambda: noop(scan.groupBy("customer_id").count()),
                             args.runs)
        if not args.skip_old:
            old_table = f"{s.hive.databases.features}.{spec.name}_old"
            out["old"] = {n: timed(f"old build, last {n} dates ({args.child})",
                                   lambda n=n: old_build(spark, spec, old_table, dates[-n:]), 1)[0] for n in old_dates(args)}
            out["old_check"] = list(spark.table(old_table).where(f"as_of_date = '{dates[-1]}'").selectExpr(
                "count(*)", "sum(tx_amount_count_90d)", "round(sum(tx_amount_sum_7d), 2)").collect()[0])
        out["warehouse"] = spark.conf.get("spark.sql.warehouse.dir").removeprefix("file:")
    print(json.dumps(out))
    return 0


def pandas_backfill(table_dir: Path, dates: list[date], out_dir: Path) -> tuple[float, list]:
    """The same 20 features for each date in one process: (seconds, totals of the last date)."""
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    first = (dates[0] - timedelta(days=max(WINDOWS))).isoformat()
    dataset = ds.dataset(table_dir, format="parquet", partitioning="hive")
    flt = (ds.field("ds") >= first) & (ds.field("ds") <= dates[-1].isoformat())
    df = dataset.to_table(columns=["customer_id", "ts", "amount"], filter=flt).to_pandas()
    df["customer_id"] = df["customer_id"].astype("category")
    ts = df["ts"].to_numpy(dtype="datetime64[us]")
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    check = None
    for day in dates:
        res = pandas_windows(df, ts, day)
        res["as_of_date"] = day.isoformat()
        pq.write_table(pa.Table.from_pandas(res, preserve_index=False), out_dir / f"as_of_date={day}.parquet")
        check = [len(res), int(res["tx_amount_count_90d"].sum()), round(float(res["tx_amount_sum_7d"].sum()), 2)]
    return time.perf_counter() - t0, check


def old_dates(args) -> list[int]:
    return sorted(int(n) for n in args.old_dates.split(","))


def old_verdict(old: dict[int, float], engine: float) -> str:
    """Engine (30 dates) vs the old build: measured at 30 dates, or a lower bound and a linear estimate."""
    if DATES in old:
        return f"engine vs old build at 20M, 30 dates: {old[DATES] / engine:.2f}x (target >= 5x)"
    most = max(old)
    line = f"engine (30 dates) vs old build of {most} dates at 20M: {old[most] / engine:.2f}x (a lower bound; target >= 5x)"
    if len(old) > 1:
        (n1, t1), (n2, t2) = sorted(old.items())[0], sorted(old.items())[-1]
        per_date = (t2 - t1) / (n2 - n1)
        estimate = t1 + (DATES - n1) * per_date
        line += (f"\nold build, 30 dates, estimated: {t1 - n1 * per_date:.0f} s fixed + 30 x {per_date:.1f} s = "
                 f"{estimate:.0f} s, {estimate / engine:.1f}x the engine")
    return line


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="timed runs of the engine and of the floor")
    parser.add_argument("--pandas-runs", type=int, default=1)
    parser.add_argument("--state-dir", default=str(Path(__file__).resolve().parents[1] / ".cache" / "bench-backfill"))
    parser.add_argument("--driver-memory", default="8g")
    parser.add_argument("--skip-old", action="store_true", help="do not time the old build (it takes long)")
    parser.add_argument("--old-dates", default=str(DATES), help="time the old build of the last N as-of dates, for each N (comma-separated)")
    parser.add_argument("--sizes", default="5m,20m", help="sizes to run (comma-separated; the 20m one is compared with pandas)")
    parser.add_argument("--child", choices=["5m", "20m"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    results = {}
    sizes = [size for size in ("5m", "20m") if size in args.sizes.split(",")]
    if "20m" not in sizes:
        parser.error("--sizes must include 20m: it is the size compared with pandas")
    for size in sizes:
        cmd = [sys.executable, __file__, "--child", size, "--runs", str(args.runs), "--state-dir", args.state_dir,
               "--driver-memory", args.driver_memory, "--old-dates", args.old_dates]
        cmd += ["--skip-old"] if args.skip_old or size == "5m" else []
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        print("\n".join(line for line in proc.stdout.splitlines()[:-1]), flush=True)
        if proc.returncode:
            print(proc.stderr[-3000:])
            return proc.returncode
        results[size] = json.loads(proc.stdout.splitlines()[-1])
    big = results["20m"]
    table_dir = Path(big["warehouse"]) / "bench_raw_20m.db" / "card_transactions"
    pandas_runs = [pandas_backfill(table_dir, as_of_dates(), Path(args.state_dir) / "pandas_out") for _ in range(args.pandas_runs)]
    for seconds, _ in pandas_runs:
        print(f"  pandas, 30 dates, 1 process (20m): {seconds:.1f} s", flush=True)
    pandas_s = median([p[0] for p in pandas_runs])
    engine = median(big["engine"])
    small = results.get("5m")

    def cells(key: str) -> str:
        return (f"{median(small[key]):>9.1f}s" if small else f"{'':>10}") + f"{median(big[key]):>9.1f}s"

    print(f"\n{'backfill, 30 as-of dates, 20 features':<52}{'5M rows':>10}{'20M rows':>10}")
    print(f"{'engine, from raw (default: tiles left to the night)':<52}{cells('engine')}")
    print(f"{'  the night after: 1 date, tiling the days once':<52}{cells('first_night')}")
    print(f"{'engine, from raw, storing the tiles':<52}{cells('engine_storing')}")
    print(f"{'engine, tiles already stored':<52}{cells('engine_tiles')}")
    print(f"{'floor: scan + groupBy count':<52}{cells('floor')}")
    print(f"{'pandas, 1 process':<52}{'':>10}{pandas_s:>9.1f}s")
    old = {int(n): t for n, t in big.get("old", {}).items()}
    for n, t in sorted(old.items()):
        print(f"{f'old build (rows x dates), last {n} dates':<52}{'':>10}{t:>9.1f}s")
    print(f"\nengine vs pandas at 20M: {pandas_s / engine:.2f}x (target >= 3x); floor vs pandas: {pandas_s / median(big['floor']):.2f}x")
    print(f"engine storing the tiles vs pandas at 20M: {pandas_s / median(big['engine_storing']):.2f}x")
    if old:
        print(old_verdict(old, engine))
    for size in sizes:
        r = results[size]
        print(f"peak RSS {size}: Python driver {r['python_rss_mb']:.0f} MB, driver JVM (runs the tasks in local mode) {r['jvm_rss_mb']:.0f} MB")
    print(f"cross-check last date (customers, sum count_90d, sum sum_7d): engine {big['check']} "
          f"pandas {pandas_runs[-1][1]}" + (f" old {big['old_check']}" if "old" in big else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
