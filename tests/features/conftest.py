"""Hand-made source tables around the point-in-time boundaries, and specs over them (databases t_feat_*)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from sparkml_ops.config import HiveDatabases

RAW, FEATURES, OPS = "t_feat_raw", "t_feat_features", "t_feat_ops"

# Label "a" at 2026-01-10 12:00 with a 1-day lag has cutoff 2026-01-09 12:00.
TX_ROWS = [
    ("a", "2026-01-10 12:00:00", 9999.0, "m8"),  # e8: equal to the label time
    ("a", "2026-01-10 11:00:00", 5000.0, "m7"),  # e7: inside the lag (known only from 2026-01-11 11:00)
    ("a", "2026-01-09 12:00:00", 1000.0, "m1"),  # e1: exactly at the cutoff: not yet known
    ("a", "2026-01-09 11:59:59", 10.0, "m2"),    # e2: one second before the cutoff
    ("a", "2026-01-09 11:59:59", 2.0, "m2"),     # e2b: same timestamp as e2, both count
    ("a", "2026-01-08 12:00:00", 20.0, "m3"),    # e3: exactly cutoff - 1d: inside the 1d window
    ("a", "2026-01-08 11:59:59", 40.0, "m4"),    # e4: just outside 1d, inside 3d
    ("a", "2026-01-06 12:00:00", 80.0, "m5"),    # e5: exactly cutoff - 3d: inside the 3d window
    ("a", "2026-01-06 11:59:59", 160.0, "m6"),   # e6: just outside 3d
    ("c", "2026-01-10 11:30:00", 70.0, "m9"),    # c: only rows the label at 12:00 must not see
    ("c", "2026-01-11 09:00:00", 71.0, "m9"),
]
CUST_ROWS = [
    ("a", "2026-01-01 00:00:00", 1000.0),
    ("a", "2026-01-10 12:00:00", 5000.0),  # becomes true exactly at a's label time: not known then
    ("b", "2026-01-10 13:00:00", 3000.0),  # after b's label
]
LABEL_ROWS = [
    ("a", "2026-01-10 12:00:00", 1),
    ("a", "2026-01-11 12:00:00", 0),
    ("b", "2026-01-10 12:00:00", 0),  # b has no history at all
    ("c", "2026-01-10 12:00:00", 1),
]

SPEC = """\
name: {name}
entity_keys: [customer_id]
event_time: event_time
sources:
  tx:
    table: {tx}
    database: raw
    kind: events
    time_column: ts
    partition_column: ds
    availability_lag: 1d
    columns: {{customer_id: string, ts: timestamp, amount: double, merchant_id: string}}
  cust:
    table: {cust}
    database: raw
    kind: attributes
    time_column: valid_from
    availability_lag: 0d
    columns: {{customer_id: string, valid_from: timestamp, credit_limit: double}}
features:
  - {{type: aggregate, source: tx, column: amount, functions: [count, sum, mean, min, max], windows: [1d, 3d]}}
  - {{type: aggregate, source: tx, column: merchant_id, functions: [count_distinct], windows: [3d]}}
  - {{type: ratio, name: amount_sum_1d_vs_3d, numerator: tx_amount_sum_1d, denominator: tx_amount_sum_3d}}
  - {{type: recency, name: days_since_last, source: tx}}
  - {{type: expression, name: credit_limit_k, source: cust, sql: "credit_limit / 1000", dtype: double}}
"""

_counter = itertools.count()


@pytest.fixture(scope="session")
def feat_settings(local_settings):
    """The test session's settings with t_feat_* databases."""
    dbs = HiveDatabases(raw=RAW, features=FEATURES, scores="t_feat_scores", ops=OPS)
    return local_settings.model_copy(update={"hive": local_settings.hive.model_copy(update={"databases": dbs})})


def write_tx(spark, table: str, rows) -> None:
    """(Re)create a ds-partitioned transactions table from (customer, ts, amount, merchant) rows."""
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {RAW}")
    spark.sql(f"DROP TABLE IF EXISTS {table}")
    spark.sql(f"CREATE TABLE {table} (customer_id STRING, ts TIMESTAMP, amount DOUBLE, merchant_id STRING) "
              "PARTITIONED BY (ds STRING) STORED AS PARQUET")
    if rows:
        df = spark.createDataFrame(rows, "customer_id string, ts string, amount double, merchant_id string")
        df.selectExpr("customer_id", "CAST(ts AS TIMESTAMP) AS ts", "amount", "merchant_id", "substr(ts, 1, 10) AS ds") \
            .write.insertInto(table, overwrite=True)


@pytest.fixture
def make_feature_set(spark, tmp_path: Path):
    """Factory: fresh source tables and a spec file over them; returns (spec path, tx table, cust table)."""

    def make(tx_rows=TX_ROWS, cust_rows=CUST_ROWS, name: str | None = None, spec_text: str = SPEC):
        n = next(_counter)
        name = name or f"pit{n}"
        tx, cust = f"tx{n}", f"cust{n}"
        write_tx(spark, f"{RAW}.{tx}", tx_rows)
        spark.sql(f"DROP TABLE IF EXISTS {RAW}.{cust}")
        spark.createDataFrame(cust_rows, "customer_id string, valid_from string, credit_limit double") \
            .selectExpr("customer_id", "CAST(valid_from AS TIMESTAMP) AS valid_from", "credit_limit") \
            .write.saveAsTable(f"{RAW}.{cust}")
        path = tmp_path / f"{name}_{n}.yaml"
        path.write_text(spec_text.format(name=name, tx=tx, cust=cust))
        return path, f"{RAW}.{tx}", f"{RAW}.{cust}"

    return make


@pytest.fixture
def labels_table(spark) -> str:
    """The hand-made label rows as a Hive table."""
    table = f"{RAW}.labels"
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {RAW}")
    spark.sql(f"DROP TABLE IF EXISTS {table}")
    spark.createDataFrame(LABEL_ROWS, "customer_id string, event_time string, label int") \
        .selectExpr("customer_id", "CAST(event_time AS TIMESTAMP) AS event_time", "label").write.saveAsTable(table)
    return table
