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
    ColumnDef("event_time", "timestamp", "00:00 UTC of ds: when the score of the day before (as_of_date = ds - 1) is made"),
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


def demo_params(start: date, days: int = 30, customers: int = 1_000, tx_per_day: int = 2_000, seed: int = 42) -> DemoParams:
    """The size and seed of a demo data set: ``days * tx_per_day`` transactions from ``start``.

    Raises:
        UsageError: a size is below 1 or the total is unreasonably large.
    """
    try:
        params = DemoParams(start, days, customers, tx_per_day, seed)
    except ValueError as exc:
        raise UsageError(f"demo data: {exc}.") from exc
    if params.transactions > MAX_ROWS:
        raise UsageError(f"demo data: {params.transactions} transactions requested; at most {MAX_ROWS}.")
    return params


def generate_demo_data(spark: SparkSession, settings: Settings, params: DemoParams) -> DemoResult:
    """Write the transactions of ``params``, their labels and the customers to ``hive.databases.raw``.

    Reruns with the same parameters write the same rows and replace only the days generated.
    """
    tables = _ensure_demo_tables(spark, settings.hive.databases.raw)
    total = params.transactions
    # Contiguous id ranges per task keep each task inside a few days, so few files per partition.
    slices = max(spark.sparkContext.defaultParallelism, math.ceil(total / 1_000_000))
    log.info("generating %d transactions (%d days from %s), %d customers, seed %d",
             total, params.days, params.start, params.customers, params.seed)
    customer_slices = max(1, min(slices, params.customers // 100_000 + 1))
    insert_partitions(spark.range(params.customers, numPartitions=customer_slices).transform(synthetic_customers(params)),
                      tables.customers)
    tx = spark.range(total, numPartitions=slices).transform(synthetic_transactions(params))
    insert_partitions(tx.drop("is_fraud"), tables.transactions)
    # The labels recompute the same rows (pure functions of the ids) rather than caching 50M rows.
    insert_partitions(tx.transform(daily_labels()).repartition(max(1, min(params.days, 64)), "ds"), tables.labels)
    end = params.start + timedelta(days=params.days - 1)
    log.info("demo data written: %s (ds %s..%s), %s, %s", tables.transactions, params.start, end, tables.labels, tables.customers)
    return DemoResult(tables.customers, tables.transactions, tables.labels, params.start, end, total, params.customers)


@dataclass(frozen=True)
class _DemoTables:
    customers: str
    transactions: str
    labels: str


def _ensure_demo_tables(spark: SparkSession, database: str) -> _DemoTables:
    """Create the three demo tables in ``database`` unless they exist (with these columns)."""
    tables = _DemoTables(f"{database}.customers", f"{database}.card_transactions", f"{database}.fraud_labels")
    ensure_table(spark, tables.customers, CUSTOMER_COLUMNS, comment="synthetic customer attributes (sparkml-ops demo)")
    ensure_table(spark, tables.transactions, TX_COLUMNS, [DS], comment="synthetic card transactions (sparkml-ops demo)")
    ensure_table(spark, tables.labels, LABEL_COLUMNS, [DS], comment="synthetic fraud outcome per customer-day")
    return tables


def label_rate(spark: SparkSession, labels_table: str) -> float:
    """Share of positive labels in a labels table (one aggregate row to the driver)."""
    row = spark.table(labels_table).agg(F.avg("label").alias("rate")).collect()[0]
    return float(row["rate"] or 0.0)
