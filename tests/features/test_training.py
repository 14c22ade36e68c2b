"""Point-in-time training sets: exact features around every boundary, and the same values as the build."""

from __future__ import annotations

from datetime import date

import pytest

from sparkml_ops.errors import DataValidationError, UsageError
from sparkml_ops.features import build_features, feature_columns, load_feature_spec, training_set

from tests.features.conftest import RAW

pytestmark = pytest.mark.spark

DAY = 86_400.0
NONE = {"tx_amount_count_1d": 0, "tx_amount_sum_1d": 0.0, "tx_amount_mean_1d": None, "tx_amount_min_1d": None,
        "tx_amount_max_1d": None, "tx_amount_count_3d": 0, "tx_amount_sum_3d": 0.0, "tx_amount_mean_3d": None,
        "tx_amount_min_3d": None, "tx_amount_max_3d": None, "tx_merchant_id_count_distinct_3d": 0,
        "amount_sum_1d_vs_3d": None, "days_since_last": None, "credit_limit_k": None}


def _rows(df):
    return {(r["customer_id"], str(r["event_time"])): r.asDict() for r in df.collect()}


def test_training_set_uses_only_rows_strictly_before_event_time_minus_lag(spark, feat_settings, make_feature_set, labels_table):
    path, _, _ = make_feature_set()
    spec = load_feature_spec(path, feat_settings)
    df = training_set(spark, feat_settings, spec, labels_table, date(2026, 1, 10), date(2026, 1, 11))
    assert df.columns == ["customer_id", "event_time", "label", *[n for n, _ in feature_columns(spec)]]
    rows = _rows(df)
    assert len(rows) == 4

    # cutoff 01-09 12:00: the row at the cutoff, in the lag and at the label time are all unseen;
    # both rows at 11:59:59 count; both window lower bounds are inclusive.
    a1 = rows[("a", "2026-01-10 12:00:00")]
    assert a1["label"] == 1
    assert {k: a1[k] for k in ("tx_amount_count_1d", "tx_amount_sum_1d", "tx_amount_min_1d", "tx_amount_max_1d")} == \
        {"tx_amount_count_1d": 3, "tx_amount_sum_1d": 32.0, "tx_amount_min_1d": 2.0, "tx_amount_max_1d": 20.0}
    assert a1["tx_amount_mean_1d"] == pytest.approx(32 / 3)
    assert (a1["tx_amount_count_3d"], a1["tx_amount_sum_3d"], a1["tx_amount_max_3d"]) == (5, 152.0, 80.0)
    assert a1["tx_amount_mean_3d"] == pytest.approx(30.4)
    assert a1["tx_merchant_id_count_distinct_3d"] == 4
    assert a1["amount_sum_1d_vs_3d"] == pytest.approx(32 / 152)
    assert a1["days_since_last"] == pytest.approx(1 + 1 / DAY)  # last known row 1 s before the cutoff, plus the lag
    assert a1["credit_limit_k"] == 1.0  # the 5000 limit becomes valid exactly at the label time: not yet known

    # One day later the lagged rows (and the row exactly at the old cutoff) are known.
    a2 = rows[("a", "2026-01-11 12:00:00")]
    assert (a2["tx_amount_count_1d"], a2["tx_amount_sum_1d"], a2["tx_amount_min_1d"], a2["tx_amount_max_1d"]) == (2, 6000.0, 1000.0, 5000.0)
    assert (a2["tx_amount_count_3d"], a2["tx_amount_sum_3d"], a2["tx_amount_min_3d"]) == (6, 6072.0, 2.0)
    assert a2["tx_merchant_id_count_distinct_3d"] == 5
    assert a2["days_since_last"] == pytest.approx(1 + 1 / 24)
    assert a2["credit_limit_k"] == 5.0

    # b has no history at all; c has only rows inside the lag or later: both see nothing.
    for key in (("b", "2026-01-10 12:00:00"), ("c", "2026-01-10 12:00:00")):
        got = {k: rows[key][k] for k in NONE}
        assert got == NONE, key


def test_build_partition_equals_training_row_at_the_as_of_instant(spark, feat_settings, make_feature_set):
    path, _, _ = make_feature_set()
    spec = load_feature_spec(path, feat_settings)
    build_features(spark, feat_settings, spec, [date(2026, 1, 10)], compute_stats=False, today=date(2026, 2, 1))
    table = f"{RAW}.labels_at_asof"
    spark.sql(f"DROP TABLE IF EXISTS {table}")
    spark.createDataFrame([("a", "2026-01-11 00:00:00", 0), ("b", "2026-01-11 00:00:00", 0)], "customer_id string, t string, label int") \
        .selectExpr("customer_id", "CAST(t AS TIMESTAMP) AS event_time", "label").write.saveAsTable(table)
    names = [n for n, _ in feature_columns(spec)]
    trained = {r["customer_id"]: [r[n] for n in names] for r in training_set(spark, feat_settings, spec, table, date(2026, 1, 11), date(2026, 1, 11)).collect()}
    built = {r["customer_id"]: [r[n] for n in names] for r in spark.table(f"t_feat_features.{spec.name}").where("as_of_date = '2026-01-10'").collect()}
    assert built == trained
    assert built["a"][:2] == [3, 1012.0]  # 1d window of as-of 2026-01-10 with a 1-day lag is the day 2026-01-09


def test_training_set_without_labels_in_range_is_a_data_error(spark, feat_settings, make_feature_set, labels_table):
    path, _, _ = make_feature_set()
    spec = load_feature_spec(path, feat_settings)
    with pytest.raises(DataValidationError) as err:
        training_set(spark, feat_settings, spec, labels_table, date(2025, 1, 1), date(2025, 1, 31))
    assert str(err.value) == f"labels table {labels_table} has no rows with event_time between 2025-01-01 and 2025-01-31."
    with pytest.raises(UsageError):
        training_set(spark, feat_settings, spec, labels_table, date(2026, 1, 2), date(2026, 1, 1))


def test_a_training_sets_plan_names_the_source_days_it_reads_for_lineage(spark, feat_settings, make_feature_set, labels_table):
    # A model's lineage fingerprints these partitions (sparkml_ops/lineage.py) from the frame's plan: the feature
    # pass must keep its sources in that plan (as a DataFrame made from an RDD would not).
    from sparkml_ops.io.fingerprints import read_partitions

    path, tx, _ = make_feature_set()
    spec = load_feature_spec(path, feat_settings)
    df = training_set(spark, feat_settings, spec, labels_table, date(2026, 1, 10), date(2026, 1, 11))
    read = read_partitions(spark, df, [tx, labels_table])
    # Labels at 01-10 and 01-11 12:00, 1-day lag, 3-day windows: source days 01-06..01-10 (01-07 has no rows);
    # the rows of 01-11 come after every cutoff and are not read.
    assert [(p.table, dict(p.spec)) for p in read] == [(labels_table, {})] + [(tx, {"ds": d}) for d in
                                                                            ("2026-01-06", "2026-01-08", "2026-01-09", "2026-01-10")]
    assert "Sweep" in df._jdf.queryExecution().optimizedPlan().toString()


def test_a_cached_training_set_is_reused_and_gives_the_same_rows(spark, feat_settings, make_feature_set, labels_table):
    # Notebook users cache a training set and query it several times; Spark finds the cached data by comparing
    # plans, which the feature pass's own plan node must support (copies, canonical forms).
    path, _, _ = make_feature_set()
    spec = load_feature_spec(path, feat_settings)
    df = training_set(spark, feat_settings, spec, labels_table, date(2026, 1, 10), date(2026, 1, 11))
    expected = sorted(map(tuple, df.collect()))
    again = training_set(spark, feat_settings, spec, labels_table, date(2026, 1, 10), date(2026, 1, 11))
    assert again.sameSemantics(df)
    df.cache()
    try:
        assert df.count() == 4
        query = again.where("label = 1").select("customer_id")
        assert "InMemoryTableScan" in query._jdf.queryExecution().executedPlan().toString()
        assert sorted(r[0] for r in query.collect()) == ["a", "c"]
        assert sorted(map(tuple, again.collect())) == expected
    finally:
        df.unpersist()
