"""Training sets with an event-level spine: 30, 60 and 120 days, the engine vs the old pairing engine vs DuckDB.

Data: ``sparkml-ops demo-data`` with 2,000 customers and 5,000 transactions a day, for 30 and for
60 and 120 days (``--days``), each in its own raw database; the label table has one row per transaction
(``event_time`` = the transaction time, ``label`` = the customer-day's fraud label), so a 120-day
training set has 600k label rows. Spec: ``conf/features/card_fraud.yaml`` (43 features: 31 windowed
aggregates incl. 5 exact distinct counts, recency, ratios, attributes with ``valid_from``).

Timed, per data set, side by side in one process:
* ``training_set`` of the package (the one sorted pass), computed into Spark's ``noop`` sink;
* the engine before issue 12 (``benchmarks/features_baseline.py``), same sink, same sources;
* DuckDB (a benchmark-only dependency) on the same Parquet files with 2 threads: the same spec as
  range-frame window functions over the union of transactions and label rows, an ASOF join for the
  attributes, materialised into a temporary table.
A cross-check compares column totals of the results (the old engine's at the smallest size only).
Targets: time(120) / time(30) <= 4.6; at 120 days >= 10x the old engine; >= 1/3 of DuckDB's speed.

    .venv/bin/python benchmarks/features_training_scaling.py [--days 30,60,120] [--runs 3] [--old-runs 1] [--state-dir DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta
from pathlib import Path

from featbench import START, ensure_demo_data, median, noop, settings_for, timed

from sparkml_ops.features import feature_columns, load_feature_spec, training_set
from sparkml_ops.io.spark import spark_session

sys.path.insert(0, str(Path(__file__).resolve().parent))
from features_baseline import old_training_set  # noqa: E402

US_PER_DAY = 86_400_000_000
# The spec's Python derived column, spelled in DuckDB SQL.
PYTHON_DERIVED = {"is_night": "CAST(hour(ts) < 6 AS INT)"}
DUCK = {"count": "count({c})", "sum": "sum({c})", "mean": "avg({c})", "min": "min({c})", "max": "max({c})",
        "stddev": "stddev_samp({c})", "count_distinct": "count(DISTINCT {c})", "approx_count_distinct": "count(DISTINCT {c})"}


def ensure_labels(spark, raw: str) -> str:
    """One label row per transaction: the transaction time and the fraud label of its customer-day."""
    table = f"{raw}.tx_labels"
    if not spark.catalog.tableExists(table):
        spark.sql(f"CREATE TABLE {table} STORED AS PARQUET AS SELECT t.customer_id, t.ts AS event_time, "
                  f"COALESCE(l.label, 0) AS label FROM {raw}.card_transactions t LEFT JOIN {raw}.fraud_labels l "
                  "ON t.customer_id = l.customer_id AND t.ds = l.ds")
    return table


def duckdb_sql(spec, warehouse: Path, raw: str) -> tuple[str, list[str]]:
    """The spec as one DuckDB query: range-frame windows over transactions + labels, ASOF join for attributes."""
    tx, cust = spec.sources["tx"], spec.sources["customers"]
    lag = tx.lag_us
    derived = ", ".join(f"{d.expr or PYTHON_DERIVED[d.name]} AS {d.name}" for d in tx.derived)
    cols = [c for c in tx.columns if c not in ("customer_id", "ts", "ds")]
    base = warehouse / f"{raw}.db"
    aggs = []
    for f in spec.features:
        if f.kind == "aggregate":
            frame = f"RANGE BETWEEN {f.window_us + lag} PRECEDING AND {lag + 1} PRECEDING"
            value = f"{DUCK[f.func].format(c=f.column)} OVER (PARTITION BY customer_id ORDER BY t {frame})"
            aggs.append(f"coalesce({value}, 0) AS {f.name}" if f.func == "sum" else f"{value} AS {f.name}")
        elif f.kind == "recency":
            frame = f"RANGE BETWEEN {spec.max_window_us('tx') + lag} PRECEDING AND {lag + 1} PRECEDING"
            aggs.append(f"(t - max(t_event) OVER (PARTITION BY customer_id ORDER BY t {frame})) / {US_PER_DAY}.0 AS {f.name}")
    exprs = [f"{f.sql} AS {f.name}" for f in spec.features if f.kind == "expression"]
    ratios = [f"CASE WHEN {f.denominator} <> 0 THEN {f.numerator} / {f.denominator} END AS {f.name}"
              for f in spec.features if f.kind == "ratio"]
    names = [n for n, _ in feature_columns(spec)]
    windowed = [f"w.{f.name}" for f in spec.features if f.kind in ("aggregate", "recency")]
    return f"""
    WITH tx AS (SELECT customer_id, epoch_us(ts) AS t, epoch_us(ts) AS t_event, {', '.join(cols)}, {derived}, 0 AS is_label
                FROM read_parquet('{base}/card_transactions/*/*.parquet', hive_partitioning = true)),
         lab AS (SELECT customer_id, epoch_us(event_time) AS t, label, 1 AS is_label FROM read_parquet('{base}/tx_labels/*.parquet')),
         windowed AS (SELECT customer_id, t, label, {', '.join(aggs)}
                      FROM (SELECT * FROM tx UNION ALL BY NAME SELECT * FROM lab) QUALIFY is_label = 1),
         cust AS (SELECT *, epoch_us(valid_from) + {cust.lag_us} AS known FROM read_parquet('{base}/customers/*.parquet'))
    SELECT w.customer_id, make_timestamp(w.t) AS event_time, w.label, {', '.join(windowed)}, {', '.join(exprs)}, {', '.join(ratios)}
    FROM windowed w ASOF LEFT JOIN cust c ON w.customer_id = c.customer_id AND w.t > c.known
    """, names


def run_duckdb(spec, warehouse: Path, raw: str, runs: int) -> tuple[list[float], tuple]:
    """Seconds of each DuckDB run (2 threads, result materialised), and column totals of the result."""
    import duckdb

    sql, names = duckdb_sql(spec, warehouse, raw)
    con = duckdb.connect()
    con.execute("SET threads = 2")
    times = timed(f"duckdb {raw}", lambda: con.execute(f"CREATE OR REPLACE TEMP TABLE out AS {sql}"), runs)
    totals = con.execute("SELECT count(*), sum(tx_amount_count_90d), round(sum(tx_amount_sum_7d), 2), "
                         "sum(tx_merchant_id_count_distinct_30d), round(sum(tx_amount_stddev_30d), 4) FROM out").fetchone()
    missing = set(names) - {d[0] for d in con.execute("DESCRIBE out").fetchall()}
    assert not missing, f"duckdb result lacks {missing}"
    return times, tuple(totals)


def totals(df) -> tuple:
    """The same column totals as :func:`run_duckdb`, from a Spark result."""
    return tuple(df.selectExpr("count(*)", "sum(tx_amount_count_90d)", "round(sum(tx_amount_sum_7d), 2)",
                               "sum(tx_merchant_id_count_distinct_30d)", "round(sum(tx_amount_stddev_30d), 4)").collect()[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs of the engine and of DuckDB (median reported)")
    parser.add_argument("--old-runs", type=int, default=1, help="timed runs of the old engine")
    parser.add_argument("--state-dir", default=str(Path(__file__).resolve().parents[1] / ".cache" / "bench-training"))
    parser.add_argument("--driver-memory", default="6g")
    parser.add_argument("--days", default="30,60,120", help="history lengths in days, comma-separated; must include 30 and 120")
    args = parser.parse_args()
    sizes = tuple(int(d) for d in args.days.split(","))

    state = Path(args.state_dir)
    results: dict[tuple[str, int], list[float]] = {}
    checks = {}
    settings = {days: settings_for(state, f"b1_raw_{days}", driver_memory=args.driver_memory) for days in sizes}
    with spark_session(settings[sizes[0]], app_name="bench-training-sets") as spark:
        warehouse = Path(spark.conf.get("spark.sql.warehouse.dir").removeprefix("file:"))
        for days in sizes:
            s = settings[days]
            raw = s.hive.databases.raw
            ensure_demo_data(spark, s, days, 2_000, 5_000)
            labels = ensure_labels(spark, raw)
            spec = load_feature_spec("card_fraud", s)
            end = START + timedelta(days=days - 1)
            print(f"{days} days: {spark.table(labels).count():,} label rows", flush=True)
            noop(training_set(spark, s, spec, labels, START, end))  # warm-up: JIT, metastore, Python workers
            results[("new", days)] = timed(f"engine {days}d", lambda: noop(training_set(spark, s, spec, labels, START, end)), args.runs)
            label_rows = spark.table(labels)
            results[("old", days)] = timed(f"old engine {days}d", lambda: noop(old_training_set(spark, spec, label_rows, START, end)),
                                           args.old_runs)
            results[("duckdb", days)], duck = run_duckdb(spec, warehouse, raw, args.runs)
            # The old engine is cross-checked at the smallest size only: at 120 days one more run of it costs minutes.
            old_totals = totals(old_training_set(spark, spec, label_rows, START, end)) if days == sizes[0] else None
            checks[days] = (totals(training_set(spark, s, spec, labels, START, end)), old_totals, duck)
    med = {k: median(v) for k, v in results.items()}
    print(f"\n{'training set, event-level spine':<34}" + "".join(f"{f'{d} days':>10}" for d in sizes) + f"{'120/30':>9}")
    for impl, label in (("new", "engine (one sorted pass)"), ("old", "old engine (pairing)"), ("duckdb", "DuckDB, 2 threads")):
        cells = "".join(f"{med[(impl, d)]:>9.1f}s" for d in sizes)
        print(f"{label:<34}{cells}{med[(impl, 120)] / med[(impl, 30)]:>9.2f}")
    print(f"\nscaling 30 -> 120 days (4x data): engine x{med[('new', 120)] / med[('new', 30)]:.2f} (target <= 4.6)")
    print(f"speed-up vs the old engine at 120 days: {med[('old', 120)] / med[('new', 120)]:.1f}x (target >= 10x)")
    print(f"speed vs DuckDB at 120 days: {med[('duckdb', 120)] / med[('new', 120)]:.2f} of DuckDB's (goal >= 0.33)")
    for days, (new, old, duck) in checks.items():
        print(f"cross-check {days}d (rows, sum count_90d, sum sum_7d, sum distinct merchants 30d, sum stddev_30d):\n"
              f"  engine {new}\n  duckdb {duck}" + (f"\n  old    {old}" if old else ""))
    return 0


if __name__ == "__main__":
    start = time.perf_counter()
    code = main()
    print(f"total {time.perf_counter() - start:.0f} s")
    sys.exit(code)
