"""The Spark feature build versus a single-process pandas implementation of the same spec, and 5M -> 20M scaling.

Spec: per customer, count/sum/mean/min/max of ``amount`` over 1/7/30/90 days (4 windows x 5
aggregates = 20 features), as of the last demo day with a 1-day availability lag, so the 90-day
window covers 90% of the rows. Data: ``sparkml-ops demo-data`` tables (~200k customers over 100
days), generated once into ``--state-dir`` (reused by later runs).

Both sides read the same Parquet partitions and write their result as Parquet: Spark through
``build_features`` (statistics off) into its Hive table, pandas with pyarrow into a directory.
Prints medians of ``--runs`` runs side by side, the ratio, and a cross-check of column totals.
It also times the Spark floor on the large set: the same partition-pruned scan and one
``groupBy(customer_id).count()`` into Spark's ``noop`` sink, the least work any Spark
implementation of the spec must do, so its ratio to pandas bounds what the build can reach here.
Targets: Spark >= 3x faster than pandas on 20M rows; time(20M) / time(5M) <= 1.1 x 4.

    .venv/bin/python benchmarks/features_vs_pandas.py [--small 5000000] [--large 20000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sparkml_ops.config import load_settings  # noqa: E402
from sparkml_ops.demo import demo_params, generate_demo_data  # noqa: E402
from sparkml_ops.features import build_features, load_feature_spec  # noqa: E402
from sparkml_ops.io.spark import spark_session  # noqa: E402

START = date(2026, 1, 1)
WINDOWS = (1, 7, 30, 90)
FUNCS = ("count", "sum", "mean", "min", "max")
SPEC = """\
name: bench_{tag}
entity_keys: [customer_id]
sources:
  tx:
    table: card_transactions
    database: {raw}
    kind: events
    time_column: ts
    partition_column: ds
    availability_lag: 1d
    columns: {{customer_id: string, ts: timestamp, amount: double}}
features:
  - {{type: aggregate, source: tx, column: amount, functions: [{funcs}], windows: [{windows}]}}
"""


def pandas_features(table_dir: Path, as_of: date, out_dir: Path) -> tuple[float, int]:
    """The same 20 features with pyarrow + pandas in this process; returns (seconds, rows)."""
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq
    import pyarrow as pa

    t0 = time.perf_counter()
    first = (as_of - timedelta(days=max(WINDOWS))).isoformat()
    dataset = ds.dataset(table_dir, format="parquet", partitioning="hive")
    flt = (ds.field("ds") >= first) & (ds.field("ds") <= (as_of - timedelta(days=1)).isoformat())
    table = dataset.to_table(columns=["customer_id", "ts", "amount"], filter=flt)
    df = table.to_pandas()
    df["customer_id"] = df["customer_id"].astype("category")
    out = pandas_windows(df, df["ts"].to_numpy(dtype="datetime64[us]"), as_of)
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(out, preserve_index=False), out_dir / "part-0.parquet")
    return time.perf_counter() - t0, len(out)


def pandas_windows(df, ts, as_of: date):
    """The 20 features as of the end of ``as_of`` (1-day lag) from rows (customer_id categorical, amount; ``ts`` µs)."""
    import numpy as np
    import pandas as pd

    cutoff = np.datetime64(as_of.isoformat(), "us")  # end of D minus the 1-day lag = 00:00 of D
    age = cutoff - ts
    parts = []
    for days in WINDOWS:
        mask = (age > np.timedelta64(0, "us")) & (age <= np.timedelta64(days, "D"))
        g = df.loc[mask].groupby("customer_id", observed=True)["amount"].agg(["count", "sum", "mean", "min", "max"])
        g.columns = [f"tx_amount_{f}_{days}d" for f in FUNCS]
        parts.append(g)
    out = pd.concat(parts, axis=1)
    for days in WINDOWS:
        out[f"tx_amount_count_{days}d"] = out[f"tx_amount_count_{days}d"].fillna(0).astype("int64")
        out[f"tx_amount_sum_{days}d"] = out[f"tx_amount_sum_{days}d"].fillna(0.0)
    out = out.reset_index()
    out["customer_id"] = out["customer_id"].astype(str)
    return out


def spark_floor(spark, raw: str, as_of: date) -> float:
    """Seconds of the scan + one hash aggregation per customer, written nowhere (Spark's ``noop`` sink)."""
    from pyspark.sql import functions as F

    first = (as_of - timedelta(days=max(WINDOWS))).isoformat()
    rows = spark.table(f"{raw}.card_transactions").where(
        F.col("ds").between(first, (as_of - timedelta(days=1)).isoformat()) & (F.col("ts") < F.lit(as_of.isoformat()).cast("timestamp")))
    t0 = time.perf_counter()
    rows.groupBy("customer_id").count().write.format("noop").mode("overwrite").save()
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=5_000_000, help="rows of the small data set")
    parser.add_argument("--large", type=int, default=20_000_000, help="rows of the large data set")
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3, help="timed runs per measurement (median reported)")
    parser.add_argument("--pandas-runs", type=int, default=None, help="timed pandas runs (default: --runs)")
    parser.add_argument("--state-dir", default=str(REPO / ".cache" / "bench-features"), help="Derby + warehouse")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="8g")
    parser.add_argument("--generate-only", action="store_true", help="write the demo tables, time nothing")
    args = parser.parse_args()

    state = Path(args.state_dir)
    base = [f"state_dir={state}", f"spark.master={args.master}", f"spark.conf.spark.driver.memory={args.driver_memory}",
            "spark.conf.spark.sql.shuffle.partitions=8", "logging.level=WARNING"]
    environ = {k: v for k, v in os.environ.items() if k == "JAVA_HOME"}
    as_of = START + timedelta(days=args.days - 1)
    settings = {}
    for tag, rows in (("small", args.small), ("large", args.large)):
        raw = f"bench_raw_{rows // 1_000_000}m" if rows >= 1_000_000 else f"bench_raw_{rows}"
        settings[tag] = (rows, raw, load_settings("local", REPO / "conf", [*base, f"hive.databases.raw={raw}",
                                                                         "hive.databases.features=bench_features"], environ))
    spec_dir = state / "specs"
    spec_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[float]] = {}
    with spark_session(settings["large"][2], app_name="bench-features") as spark:
        for tag, (rows, raw, s) in settings.items():
            if not spark.catalog.tableExists(f"{raw}.card_transactions") or spark.table(f"{raw}.card_transactions").count() != rows:
                t0 = time.perf_counter()
                generate_demo_data(spark, s, demo_params(START, days=args.days, customers=args.customers,
                                                         tx_per_day=rows // args.days, seed=7))
                print(f"generated {rows:,} rows into {raw} in {time.perf_counter() - t0:.0f} s", flush=True)
            if args.generate_only:
                continue
            path = spec_dir / f"bench_{tag}.yaml"
            path.write_text(SPEC.format(tag=tag, raw=raw, funcs=", ".join(FUNCS), windows=", ".join(f"{w}d" for w in WINDOWS)))
            spec = load_feature_spec(path, s)
            if tag == "small":  # one untimed build: JIT and metastore caches warm up before any timing
                build_features(spark, s, spec, [as_of], compute_stats=False)
            times = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                result = build_features(spark, s, spec, [as_of], compute_stats=False)
                times.append(time.perf_counter() - t0)
                print(f"spark {tag} ({rows:,} rows): {times[-1]:.1f} s, {result.rows_per_date}", flush=True)
            results[f"spark_{tag}"] = times
            if tag == "large":
                results["floor"] = [spark_floor(spark, raw, as_of) for _ in range(args.runs)]
                print(f"spark floor ({rows:,} rows): {', '.join(f'{t:.1f}' for t in results['floor'])} s", flush=True)
        if args.generate_only:
            return 0
        spark_total = spark.table("bench_features.bench_large").where(f"as_of_date = '{as_of}'").selectExpr(
            "count(*)", "sum(tx_amount_count_90d)", "round(sum(tx_amount_sum_7d), 2)").collect()[0]
        warehouse = Path(spark.conf.get("spark.sql.warehouse.dir").removeprefix("file:"))
    rows_l, raw_l, _ = settings["large"]
    table_dir = warehouse / f"{raw_l}.db" / "card_transactions"
    out_dir = state / "pandas_out"
    pandas_times = []
    for _ in range(args.pandas_runs or args.runs):
        seconds, n = pandas_features(table_dir, as_of, out_dir)
        pandas_times.append(seconds)
        print(f"pandas large ({rows_l:,} rows): {seconds:.1f} s, {n} customers", flush=True)
    import pandas as pd

    p = pd.read_parquet(out_dir)
    pandas_total = (len(p), int(p["tx_amount_count_90d"].sum()), round(float(p["tx_amount_sum_7d"].sum()), 2))

    med = {k: statistics.median(v) for k, v in results.items()}
    med_pandas = statistics.median(pandas_times)
    small_rows = settings["small"][0]
    scale = med["spark_large"] / med["spark_small"]
    linear = rows_l / small_rows
    print()
    print(f"{'measurement':<44}{'median s':>10}")
    print(f"{'spark feature build, ' + format(small_rows, ',') + ' rows':<44}{med['spark_small']:>10.1f}")
    print(f"{'spark feature build, ' + format(rows_l, ',') + ' rows':<44}{med['spark_large']:>10.1f}")
    print(f"{'spark floor (scan + groupBy count), ' + format(rows_l, ',') + ' rows':<44}{med['floor']:>10.1f}")
    print(f"{'pandas (1 process), ' + format(rows_l, ',') + ' rows':<44}{med_pandas:>10.1f}")
    print()
    print(f"speed-up spark vs pandas at {rows_l:,} rows: {med_pandas / med['spark_large']:.2f}x (target >= 3x)")
    print(f"speed-up of the spark floor vs pandas: {med_pandas / med['floor']:.2f}x (the most any Spark build reaches here)")
    print(f"scaling {small_rows:,} -> {rows_l:,}: time x{scale:.2f} for rows x{linear:.1f} "
          f"= {scale / linear:.2f} of linear (target <= 1.10)")
    print(f"cross-check (customers, sum count_90d, sum sum_7d): spark {tuple(spark_total)} pandas {pandas_total}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
