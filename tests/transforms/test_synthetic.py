"""Synthetic demo rows: deterministic under a seed whatever the partitioning, realistic fraud rate, learnable signal."""

from __future__ import annotations

from datetime import date

import pytest
from pyspark.sql import functions as F

from sparkml_ops.transforms.synthetic import DemoParams, daily_labels, synthetic_customers, synthetic_transactions

pytestmark = pytest.mark.spark

PARAMS = DemoParams(start=date(2026, 1, 1), days=24, customers=3_000, tx_per_day=6_000, seed=11)


def test_same_seed_same_rows_whatever_the_partitioning(spark):
    total = PARAMS.days * PARAMS.tx_per_day
    one = spark.range(total, numPartitions=1).transform(synthetic_transactions(PARAMS))
    many = spark.range(total, numPartitions=7).transform(synthetic_transactions(PARAMS))
    assert one.exceptAll(many).count() == 0 and one.count() == many.count() == total
    other = spark.range(1000).transform(synthetic_transactions(DemoParams(PARAMS.start, 1, 3_000, 1_000, seed=12)))
    assert other.exceptAll(spark.range(1000).transform(synthetic_transactions(DemoParams(PARAMS.start, 1, 3_000, 1_000, seed=11)))).count() > 900


def test_rows_are_plausible_card_transactions(spark):
    tx = spark.range(PARAMS.days * PARAMS.tx_per_day).transform(synthetic_transactions(PARAMS))
    stats = tx.agg(
        F.min("ts").cast("string"), F.max("ts").cast("string"), F.min("ds"), F.max("ds"), F.min("amount"),
        F.countDistinct("customer_id"), F.avg((F.col("country") == "NL").cast("int")),
        F.sum(((F.col("channel") == "atm") & (F.col("mcc") != "6011")).cast("int")),
        F.sum((F.to_date("ts") != F.col("ds")).cast("int")), F.sum(F.col("currency").isNull().cast("int")),
    ).collect()[0]
    assert stats[0] >= "2026-01-01 00:00:00" and stats[1] <= "2026-01-24 23:59:59"
    assert (stats[2], stats[3]) == ("2026-01-01", "2026-01-24")
    assert stats[4] > 0 and stats[5] > 2_500
    assert 0.75 < stats[6] < 0.9  # most spending is domestic
    assert (stats[7], stats[8], stats[9]) == (0, 0, 0)  # ATM rows are category 6011; ts is inside its ds day; every country has a currency


def test_fraud_labels_are_rare_and_learnable(spark):
    tx = spark.range(PARAMS.days * PARAMS.tx_per_day).transform(synthetic_transactions(PARAMS))
    labels = tx.transform(daily_labels())
    rate = labels.agg(F.avg("label")).collect()[0][0]
    assert 0.005 <= rate <= 0.02
    by = {r["is_fraud"]: r for r in tx.groupBy("is_fraud").agg(
        F.avg("amount").alias("amount"), F.avg((~F.col("country").isin("NL", "BE", "DE")).cast("int")).alias("foreign"),
        F.avg((F.col("channel") == "ecom").cast("int")).alias("ecom")).collect()}
    assert by[1]["amount"] > 3 * by[0]["amount"]
    assert by[1]["foreign"] > 10 * by[0]["foreign"]
    assert by[1]["ecom"] > 2 * by[0]["ecom"]
    # Bursts: a compromised customer-day has several frauds within half an hour.
    burst = tx.where("is_fraud = 1").groupBy("customer_id", "ds").agg(
        F.count("*").alias("n"), (F.max(F.unix_seconds("ts")) - F.min(F.unix_seconds("ts"))).alias("span")).agg(
        F.avg("n"), F.max("span")).collect()[0]
    assert burst[0] > 2 and burst[1] <= 1800


def test_customers_have_one_row_each_and_stable_home_country(spark):
    customers = spark.range(PARAMS.customers).transform(synthetic_customers(PARAMS))
    assert customers.select("customer_id").distinct().count() == PARAMS.customers
    assert customers.where(F.col("valid_from") >= F.lit("2026-01-01").cast("timestamp")).count() == 0
    tx = spark.range(20_000).transform(synthetic_transactions(PARAMS)).where("is_fraud = 0")
    joined = tx.join(customers, "customer_id").agg(F.avg((F.col("country") == F.col("home_country")).cast("int"))).collect()[0][0]
    assert joined > 0.9  # legitimate spending happens mostly in the customer's own country
    with pytest.raises(ValueError, match="days must be >= 1, got 0"):
        DemoParams(date(2026, 1, 1), 0, 1, 1, 1)
