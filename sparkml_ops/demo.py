"""Realistic synthetic demo data: card transactions, customer attributes and fraud labels, generated in Spark.

Tables (database ``hive.databases.raw``):

- ``customers``: one row per customer (attributes, ``valid_from``), rewritten by each run;
- ``card_transactions``: partitioned by ``ds`` (YYYY-MM-DD); a run replaces only its days;
- ``fraud_labels``: ``customer_id, event_time TIMESTAMP, label INT`` per customer and active day,
  partitioned by ``ds``.

The content depends only on the parameters and the seed (see :mod:`sparkml_ops.transforms.synthetic`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import date, timedelta

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from sparkml_ops.config import Settings
from sparkml_ops.errors import UsageError
from sparkml_ops.io.tables import ColumnDef, ensure_table, insert_partitions
from sparkml_ops.transforms.synthetic import DemoParams, daily_labels, synthetic_customers, synthetic_transactions

log = logging.getLogger(__name__)

MAX_ROWS = 2_000_000_000

CUSTOMER_COLUMNS = [
    ColumnDef("customer_id", "string", "customer key"),
    ColumnDef("home_country", "string", "ISO 3166 country of residence"),
    ColumnDef("segment", "string", "mass, affluent or private"),
    ColumnDef("credit_limit", "double", "card credit limit, EUR"),
    ColumnDef("birth_year", "int", "year of birth"),
    ColumnDef("opened_date", "date", "account opening date"),
    ColumnDef("valid_from", "timestamp", "UTC time this attribute row became true"),
]
TX_COLUMNS = [
    ColumnDef("tx_id", "string", "transaction id"),
    ColumnDef("customer_id", "string", "card holder"),
    ColumnDef("merchant_id", "string", "merchant"),
    ColumnDef("mcc", "string", "ISO 18245 merchant category code"),
    ColumnDef("country", "string", "ISO 3166 country of the merchant"),
    ColumnDef("channel", "string", "pos, ecom or atm"),
    ColumnDef("amount", "double", "amount in EUR equivalent"),
    ColumnDef("currency", "string", "ISO 4217 transaction currency"),
    ColumnDef("ts", "timestamp", "UTC authorisation time"),
]
LABEL_COLUMNS = [
    ColumnDef("customer_id", "string", "card holder"),
    ColumnDef("event_time", "timestamp", "UTC time of the customer's first transaction that day"),
    ColumnDef("label", "int", "1 if any transaction of the customer that day was fraud"),
]
DS = ColumnDef("ds", "string", "UTC day YYYY-MM-DD")


@dataclass(frozen=True)
class DemoResult:
    """What the generator wrote."""

    customers_table: str
    transactions_table: str
    labels_table: str
    start: date
    end: date
    transactions: int
    customers: int
    exit_code: int = 0


def generate_demo_data(
    spark: SparkSession,
    settings: Settings,
    start: date,
    days: int = 30,
    customers: int = 1_000,
    tx_per_day: int = 2_000,
    seed: int = 42,
) -> DemoResult:
    """Write ``days * tx_per_day`` synthetic transactions from ``start``, their labels and the customers.

    Reruns with the same arguments write the same rows and replace only the days generated.

    Raises:
        UsageError: a size is below 1 or the total is unreasonably large.
    """
    try:
        params = DemoParams(start, days, customers, tx_per_day, seed)
    except ValueError as exc:
        raise UsageError(f"demo data: {exc}.") from exc
    total = days * tx_per_day
    if total > MAX_ROWS:
        raise UsageError(f"demo data: {total} transactions requested; at most {MAX_ROWS}.")
    raw = settings.hive.databases.raw
    tables = {name: f"{raw}.{name}" for name in ("customers", "card_transactions", "fraud_labels")}
    ensure_table(spark, tables["customers"], CUSTOMER_COLUMNS, comment="synthetic customer attributes (sparkml-ops demo)")
    ensure_table(spark, tables["card_transactions"], TX_COLUMNS, [DS], comment="synthetic card transactions (sparkml-ops demo)")
    ensure_table(spark, tables["fraud_labels"], LABEL_COLUMNS, [DS], comment="synthetic fraud outcome per customer-day")

    # Contiguous id ranges per task keep each task inside a few days, so few files per partition.
    slices = max(spark.sparkContext.defaultParallelism, math.ceil(total / 1_000_000))
    log.info("generating %d transactions (%d days from %s), %d customers, seed %d", total, days, start, customers, seed)
    insert_partitions(spark.range(customers, numPartitions=max(1, min(slices, customers // 100_000 + 1)))
                      .transform(synthetic_customers(params)), tables["customers"])
    tx = spark.range(total, numPartitions=slices).transform(synthetic_transactions(params))
    insert_partitions(tx.drop("is_fraud"), tables["card_transactions"])
    # The labels recompute the same rows (pure functions of the ids) rather than caching 50M rows.
    labels = tx.transform(daily_labels()).repartition(max(1, min(days, 64)), "ds")
    insert_partitions(labels, tables["fraud_labels"])
    end = start + timedelta(days=days - 1)
    log.info("demo data written: %s (ds %s..%s), %s, %s", tables["card_transactions"], start, end,
             tables["fraud_labels"], tables["customers"])
    return DemoResult(tables["customers"], tables["card_transactions"], tables["fraud_labels"], start, end, total, customers)


def label_rate(spark: SparkSession, labels_table: str) -> float:
    """Share of positive labels in a labels table (one aggregate row to the driver)."""
    row = spark.table(labels_table).agg(F.avg("label").alias("rate")).collect()[0]
    return float(row["rate"] or 0.0)
