"""The feature build: one row per entity per as-of date, idempotent reruns, stats, and bad input that writes nothing."""

from __future__ import annotations

from datetime import date

import pytest

from sparkml_ops.errors import DataValidationError, FeatureSpecError, UsageError
from sparkml_ops.features import build_features, feature_columns, load_feature_spec, read_feature_stats

from tests.features.conftest import FEATURES, OPS, RAW, SPEC, TX_ROWS, write_tx

pytestmark = pytest.mark.spark

TODAY = date(2026, 2, 1)


def _partition(spark, table: str, day: str) -> list[tuple]:
    return sorted(tuple(r) for r in spark.table(table).where(f"as_of_date = '{day}'").collect())


def test_build_writes_one_row_per_known_entity_into_the_as_of_partition(spark, feat_settings, make_feature_set):
    path, _, _ = make_feature_set()
    spec = load_feature_spec(path, feat_settings)
    result = build_features(spark, feat_settings, spec, [date(2026, 1, 9), date(2026, 1, 10)], today=TODAY)
    table = f"{FEATURES}.{spec.name}"
    assert (result.table, result.rows_per_date) == (table, {"2026-01-09": 1, "2026-01-10": 2})
    assert spark.table(table).columns == ["customer_id", *[n for n, _ in feature_columns(spec)], "as_of_date"]
    assert dict(spark.table(table).dtypes)["tx_amount_count_1d"] == "bigint"
    rows = {r["customer_id"]: r for r in spark.table(table).where("as_of_date = '2026-01-10'").collect()}
    # as of the end of 01-10 with a 1-day lag: the rows of 01-09 are the 1d window; b is a customer since 01-10 13:00.
    assert (rows["a"]["tx_amount_count_1d"], rows["a"]["tx_amount_sum_1d"], rows["a"]["credit_limit_k"]) == (3, 1012.0, 5.0)
    assert (rows["b"]["tx_amount_count_1d"], rows["b"]["tx_amount_sum_3d"], rows["b"]["tx_amount_mean_1d"], rows["b"]["credit_limit_k"]) == (0, 0.0, None, 3.0)
    comments = {c.name: c.description for c in spark.catalog.listColumns(table)}
    assert comments["tx_amount_sum_3d"] == "sum(amount) over the 3 days before the cutoff, source tx"


def test_rerun_replaces_only_its_partition(spark, feat_settings, make_feature_set):
    path, tx, _ = make_feature_set()
    spec = load_feature_spec(path, feat_settings)
    build_features(spark, feat_settings, spec, [date(2026, 1, 9), date(2026, 1, 10)], today=TODAY)
    table = f"{FEATURES}.{spec.name}"
    before_10 = _partition(spark, table, "2026-01-10")
    # New data for a new customer z arrives late for day 01-08; only 01-09 is rebuilt.
    spark.sql(f"INSERT INTO {tx} PARTITION (ds='2026-01-08') VALUES ('z', TIMESTAMP'2026-01-08 10:00:00', 7.0, 'm1')")
    result = build_features(spark, feat_settings, spec, [date(2026, 1, 9)], compute_stats=False, today=TODAY)
    assert result.rows_per_date == {"2026-01-09": 2}
    assert [r[0] for r in _partition(spark, table, "2026-01-09")] == ["a", "z"]
    assert _partition(spark, table, "2026-01-10") == before_10  # z would be in its 3d window: untouched proves no overwrite
    build_features(spark, feat_settings, spec, [date(2026, 1, 9)], compute_stats=False, today=TODAY)
    assert spark.table(table).where("as_of_date = '2026-01-09'").count() == 2  # rerun: replaced, not appended


def test_stats_are_stored_per_feature_and_replaced_on_rerun(spark, feat_settings, make_feature_set):
    path, _, _ = make_feature_set()
    spec = load_feature_spec(path, feat_settings)
    result = build_features(spark, feat_settings, spec, [date(2026, 1, 10)], today=TODAY)
    assert result.stats_table == f"{OPS}.feature_stats"
    build_features(spark, feat_settings, spec, [date(2026, 1, 10)], today=TODAY)
    stats = {r["feature"]: r for r in read_feature_stats(spark, feat_settings, spec.name, "2026-01-10")}
    assert sorted(stats) == sorted(n for n, _ in feature_columns(spec))
    count = stats["tx_amount_count_1d"]
    assert (count["row_count"], count["null_count"], count["mean"], count["min"], count["max"]) == (2, 0, 1.5, 0.0, 3.0)
    assert stats["tx_amount_mean_1d"]["null_count"] == 1
    assert stats["credit_limit_k"]["p50"] in (3.0, 5.0)


@pytest.fixture
def built(spark, feat_settings, make_feature_set):
    """A feature set with partition 2026-01-09 built; returns (spec, source table, feature table, rows)."""
    path, tx, _ = make_feature_set()
    spec = load_feature_spec(path, feat_settings)
    build_features(spark, feat_settings, spec, [date(2026, 1, 9)], today=TODAY)
    table = f"{FEATURES}.{spec.name}"
    return spec, tx, table, _partition(spark, table, "2026-01-09")


def _assert_unchanged(spark, feat_settings, spec, table, rows):
    assert _partition(spark, table, "2026-01-09") == rows
    assert [p[0] for p in spark.sql(f"SHOW PARTITIONS {table}").collect()] == ["as_of_date=2026-01-09"]
    assert len(read_feature_stats(spark, feat_settings, spec.name, "2026-01-09")) == len(spec.features)


def test_missing_source_partition_is_a_data_error_and_writes_nothing(spark, feat_settings, built):
    spec, tx, table, rows = built
    with pytest.raises(DataValidationError) as err:
        build_features(spark, feat_settings, spec, [date(2026, 1, 9), date(2026, 1, 13)], today=TODAY)
    assert str(err.value) == (
        f"source 'tx': partition ds=2026-01-12 of {tx} is missing (1 of 2 required day(s) missing); nothing was written. "
        "Load that day first, or build an earlier as-of date.")
    assert err.value.exit_code == 3
    _assert_unchanged(spark, feat_settings, spec, table, rows)


def test_empty_source_partition_is_a_data_error_and_writes_nothing(spark, feat_settings, built):
    spec, tx, table, rows = built
    spark.sql(f"ALTER TABLE {tx} ADD PARTITION (ds='2026-01-12')")
    with pytest.raises(DataValidationError) as err:
        build_features(spark, feat_settings, spec, [date(2026, 1, 9), date(2026, 1, 13)], today=TODAY)
    assert str(err.value) == f"source 'tx': partition ds=2026-01-12 of {tx} is empty; nothing was written. Reload that day's data, then rerun."
    _assert_unchanged(spark, feat_settings, spec, table, rows)


def test_future_date_is_refused(spark, feat_settings, built):
    spec, _, table, rows = built
    with pytest.raises(DataValidationError) as err:
        build_features(spark, feat_settings, spec, [date(2026, 1, 9), date(2026, 2, 2)], today=TODAY)
    assert str(err.value) == ("as-of date 2026-02-02 is in the future (today is 2026-02-01 UTC). "
                              "Features can only be built for dates whose data exists.")
    _assert_unchanged(spark, feat_settings, spec, table, rows)


def test_too_many_or_no_dates_is_a_usage_error(spark, feat_settings, built):
    spec = built[0]
    with pytest.raises(UsageError, match="no as-of dates given"):
        build_features(spark, feat_settings, spec, [], today=TODAY)
    days = [date(2025, 1, 1).fromordinal(date(2025, 1, 1).toordinal() + i) for i in range(32)]
    with pytest.raises(UsageError, match=r"32 as-of dates in one run; the limit is features.max_dates_per_run=31\."):
        build_features(spark, feat_settings, spec, days, today=TODAY)


@pytest.mark.parametrize("ddl, problem", [
    ("customer_id STRING, ts TIMESTAMP, merchant_id STRING", "missing column(s) amount"),
    ("customer_id STRING, ts TIMESTAMP, amount STRING, merchant_id STRING", "type changed: amount is string, expected double"),
])
def test_schema_drift_is_a_data_error_and_writes_nothing(spark, feat_settings, built, ddl, problem):
    spec, tx, table, rows = built
    spark.sql(f"DROP TABLE {tx}")
    spark.sql(f"CREATE TABLE {tx} ({ddl}) PARTITIONED BY (ds STRING) STORED AS PARQUET")
    spark.sql(f"INSERT INTO {tx} PARTITION (ds='2026-01-08') SELECT {', '.join(c.split()[0] for c in ddl.split(', '))} "
              f"FROM VALUES ('a', TIMESTAMP'2026-01-08 10:00:00', {'' if 'amount' not in ddl else chr(39) + '1' + chr(39) + ', '}'m1') "
              f"AS v({', '.join(c.split()[0] for c in ddl.split(', '))})")
    with pytest.raises(DataValidationError) as err:
        build_features(spark, feat_settings, spec, [date(2026, 1, 9)], today=TODAY)
    present = ", ".join(c.lower() for c in ddl.split(", ")) + ", ds string"
    assert str(err.value) == (
        f"source 'tx' ({tx}) of feature set {spec.name}: schema drift: {problem}. Present columns: {present}. "
        "Fix the upstream table or update the declared schema.")
    _assert_unchanged(spark, feat_settings, spec, table, rows)


def test_sql_that_does_not_analyse_names_the_spec_file_and_feature(spark, feat_settings, make_feature_set):
    bad = SPEC.replace('sql: "credit_limit / 1000"', 'sql: "credit_limt / 1000"')
    path, _, _ = make_feature_set(spec_text=bad)
    spec = load_feature_spec(path, feat_settings)
    with pytest.raises(FeatureSpecError) as err:
        build_features(spark, feat_settings, spec, [date(2026, 1, 9)], today=TODAY)
    assert str(err.value).startswith(f"{path}: feature 'credit_limit_k': SQL does not analyse against the source: ")
    assert "credit_limt" in str(err.value)
    assert err.value.exit_code == 2
    assert not spark.catalog.tableExists(f"{FEATURES}.{spec.name}")


def test_missing_history_days_are_allowed_but_the_latest_day_is_required(spark, feat_settings, make_feature_set):
    path, _, _ = make_feature_set(tx_rows=[r for r in TX_ROWS if r[1].startswith("2026-01-09")])
    spec = load_feature_spec(path, feat_settings)
    result = build_features(spark, feat_settings, spec, [date(2026, 1, 10)], compute_stats=False, today=TODAY)
    assert result.rows_per_date == {"2026-01-10": 2}


def test_all_windows_and_dates_come_from_one_scan_of_the_source(spark, feat_settings, make_feature_set):
    from sparkml_ops.features.build import asof_time, load_sources, source_days
    from sparkml_ops.features.compute import compute_features

    path, tx, _ = make_feature_set()
    spec = load_feature_spec(path, feat_settings)
    src = spec.sources["tx"]
    days = [date(2026, 1, 9), date(2026, 1, 10)]
    spans = [source_days(src, asof_time(d), spec.max_window_us("tx")) for d in days]
    frames = load_sources(spark, spec, {"tx": (spans[0][0], spans[-1][1])}, {"tx": [s[1].isoformat() for s in spans]})
    out = compute_features(spec, frames, {d.isoformat(): asof_time(d).strftime("%Y-%m-%d %H:%M:%S") for d in days}, "as_of_date")
    plan = out._jdf.queryExecution().optimizedPlan().toString()
    assert plan.count(tx.split(".")[1]) == 1  # 2 dates x 2 windows x 5 aggregates, one read of the table
