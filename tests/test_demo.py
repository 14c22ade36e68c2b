"""Demo data written to Hive: the three tables, commented columns, reruns that replace only their days."""

from __future__ import annotations

from datetime import date

import pytest

from sparkml_ops.config import HiveDatabases
from sparkml_ops.demo import demo_params, generate_demo_data, label_rate
from sparkml_ops.errors import UsageError

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def demo_settings(local_settings):
    dbs = HiveDatabases(raw="t_feat_demo", features="t_feat_demo_f", scores="t_feat_demo_s", ops="t_feat_demo_o")
    return local_settings.model_copy(update={"hive": local_settings.hive.model_copy(update={"databases": dbs})})


def _day(spark, table, ds):
    return sorted(tuple(r) for r in spark.table(table).where(f"ds = '{ds}'").collect())


def test_demo_tables_and_rerun_of_one_day(spark, demo_settings):
    result = generate_demo_data(spark, demo_settings, demo_params(date(2026, 3, 1), days=3, customers=400, tx_per_day=1500, seed=5))
    assert (result.transactions_table, result.labels_table, result.customers_table) == (
        "t_feat_demo.card_transactions", "t_feat_demo.fraud_labels", "t_feat_demo.customers")
    assert (result.start, result.end, result.transactions) == (date(2026, 3, 1), date(2026, 3, 3), 4500)
    assert spark.table(result.transactions_table).columns == [
        "tx_id", "customer_id", "merchant_id", "mcc", "country", "channel", "amount", "currency", "ts", "ds"]
    assert dict(spark.table(result.labels_table).dtypes) == {"customer_id": "string", "event_time": "timestamp", "label": "int", "ds": "string"}
    assert spark.table(result.customers_table).count() == 400
    comments = {c.name: c.description for c in spark.catalog.listColumns(result.transactions_table)}
    assert comments["amount"] == "amount in EUR equivalent"
    assert 0 < label_rate(spark, result.labels_table) < 0.1
    day1, day3 = _day(spark, result.transactions_table, "2026-03-01"), _day(spark, result.transactions_table, "2026-03-03")

    # Rerun one day with another seed: that day is replaced, the others are untouched.
    generate_demo_data(spark, demo_settings, demo_params(date(2026, 3, 2), days=1, customers=400, tx_per_day=1000, seed=6))
    assert spark.table(result.transactions_table).where("ds = '2026-03-02'").count() == 1000
    assert _day(spark, result.transactions_table, "2026-03-01") == day1
    assert _day(spark, result.transactions_table, "2026-03-03") == day3
    labels = spark.table(result.labels_table)
    assert labels.where("ds = '2026-03-02'").count() == spark.table(result.transactions_table).where("ds = '2026-03-02'") \
        .select("customer_id").distinct().count()


def test_demo_sizes_must_be_positive(spark, demo_settings):
    with pytest.raises(UsageError, match=r"^demo data: tx_per_day must be >= 1, got 0\.$"):
        generate_demo_data(spark, demo_settings, demo_params(date(2026, 3, 1), days=1, customers=1, tx_per_day=0))
