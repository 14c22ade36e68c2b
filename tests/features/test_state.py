"""The builds' persisted daily tiles: reused when unchanged, rebuilt when their source day or the spec changed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from sparkml_ops.features import build_features, load_feature_spec
from sparkml_ops.features.state import state_table

from tests.conftest import CONF_DIR
from tests.features.conftest import FEATURES

pytestmark = pytest.mark.spark

TODAY = date(2026, 2, 1)


def _batch(settings, days: int):
    return settings.model_copy(update={"features": settings.features.model_copy(update={"tile_batch_days": days})})


@pytest.fixture
def feat_settings(feat_settings):
    """Every new day is tiled at once (``tile_batch_days`` 1), so these tests see each day's tiles computed."""
    return _batch(feat_settings, 1)


def _partition(spark, table: str, day: str) -> list[tuple]:
    return sorted(tuple(r) for r in spark.table(table).where(f"as_of_date = '{day}'").collect())


def _build(spark, settings, spec, day: date, **kwargs):
    return build_features(spark, settings, spec, [day], compute_stats=False, today=TODAY, **kwargs)


def _by_customer(spark, table: str, day: str) -> dict:
    return {r["customer_id"]: r for r in spark.table(table).where(f"as_of_date = '{day}'").collect()}


def _built(spark, settings, make_feature_set):
    """A fresh feature set built for 2026-01-11: (spec, source table, feature table, its rows by customer)."""
    path, tx, _ = make_feature_set()
    spec = load_feature_spec(path, settings)
    table = f"{FEATURES}.{spec.name}"
    _build(spark, settings, spec, date(2026, 1, 11))
    return spec, tx, table, _by_customer(spark, table, "2026-01-11")


def _state_rows(spark, settings, spec, day: str | None = None) -> list[tuple]:
    df = spark.table(state_table(settings, spec, "tx"))
    return sorted((tuple(r) for r in (df.where(f"ds = '{day}'") if day else df).collect()), key=repr)


def test_a_nightly_build_computes_only_the_new_day_and_equals_a_full_rebuild(spark, feat_settings, make_feature_set):
    path, tx, _ = make_feature_set()
    spec = load_feature_spec(path, feat_settings)
    first = _build(spark, feat_settings, spec, date(2026, 1, 10))
    assert first.state_rebuilt == {"tx": ["2026-01-08", "2026-01-09"]}  # 01-07 has no partition
    nightly = _build(spark, feat_settings, spec, date(2026, 1, 11))
    assert nightly.state_rebuilt == {"tx": ["2026-01-10"]}
    table = f"{FEATURES}.{spec.name}"
    incremental = _partition(spark, table, "2026-01-11")
    full = _build(spark, feat_settings, spec, date(2026, 1, 11), rebuild_state=True)
    assert full.state_rebuilt == {"tx": ["2026-01-08", "2026-01-09", "2026-01-10"]}
    assert _partition(spark, table, "2026-01-11") == incremental
    counts = {r[0]: r[1] for r in spark.table(state_table(feat_settings, spec, "tx"))
              .groupBy("ds").agg({"source_rows": "max"}).collect()}
    assert counts == {"2026-01-08": 2, "2026-01-09": 3, "2026-01-10": 3}  # each tile records its source day's rows


def test_a_changed_source_day_is_detected_and_rebuilt(spark, feat_settings, make_feature_set):
    path, tx, _ = make_feature_set()
    spec = load_feature_spec(path, feat_settings)
    _build(spark, feat_settings, spec, date(2026, 1, 11))
    table = f"{FEATURES}.{spec.name}"
    before = {r["customer_id"]: r for r in spark.table(table).where("as_of_date = '2026-01-11'").collect()}
    # Late data for a day whose tiles are stored: new files, so a new fingerprint.
    spark.sql(f"INSERT INTO {tx} PARTITION (ds='2026-01-09') VALUES ('a', TIMESTAMP'2026-01-09 20:00:00', 400.0, 'm9')")
    result = _build(spark, feat_settings, spec, date(2026, 1, 11))
    assert result.state_rebuilt == {"tx": ["2026-01-09"]}
    after = {r["customer_id"]: r for r in spark.table(table).where("as_of_date = '2026-01-11'").collect()}
    assert after["a"]["tx_amount_sum_3d"] == before["a"]["tx_amount_sum_3d"] + 400.0


def test_a_changed_spec_recomputes_every_day(spark, feat_settings, make_feature_set, tmp_path):
    path, _, _ = make_feature_set()
    spec = load_feature_spec(path, feat_settings)
    _build(spark, feat_settings, spec, date(2026, 1, 10))
    changed = tmp_path / "changed" / path.name
    changed.parent.mkdir()
    changed.write_text(path.read_text().replace("functions: [count_distinct], windows: [3d]",
                                                "functions: [count_distinct], windows: [3d], where: \"amount > 5\""))
    respec = load_feature_spec(changed, feat_settings)
    assert _build(spark, feat_settings, respec, date(2026, 1, 10)).state_rebuilt == {"tx": ["2026-01-08", "2026-01-09"]}
    assert _build(spark, feat_settings, respec, date(2026, 1, 10)).state_rebuilt == {"tx": []}


def test_a_rerun_of_a_day_replaces_that_day_and_never_appends(spark, feat_settings, make_feature_set):
    spec, _, table, _ = _built(spark, feat_settings, make_feature_set)
    state, features = _state_rows(spark, feat_settings, spec), _partition(spark, table, "2026-01-11")
    assert _build(spark, feat_settings, spec, date(2026, 1, 11)).state_rebuilt == {"tx": []}
    rerun = _build(spark, feat_settings, spec, date(2026, 1, 11), rebuild_state=True)
    assert rerun.state_rebuilt == {"tx": ["2026-01-08", "2026-01-09", "2026-01-10"]}
    assert _state_rows(spark, feat_settings, spec) == state  # each day replaced by the same tiles, none doubled
    assert _partition(spark, table, "2026-01-11") == features


def test_a_source_day_overwritten_with_as_many_rows_or_fewer_is_rebuilt_not_reused(spark, feat_settings, make_feature_set):
    spec, tx, table, before = _built(spark, feat_settings, make_feature_set)
    old_tiles = _state_rows(spark, feat_settings, spec, "2026-01-09")
    # Same row count (3), other amounts: a reload that only the fingerprint can tell apart.
    spark.sql(f"INSERT OVERWRITE TABLE {tx} PARTITION (ds='2026-01-09') VALUES ('a', TIMESTAMP'2026-01-09 01:00:00', 1.0, 'm1'), "
              "('a', TIMESTAMP'2026-01-09 02:00:00', 1.0, 'm1'), ('a', TIMESTAMP'2026-01-09 03:00:00', 1.0, 'm1')")
    assert _build(spark, feat_settings, spec, date(2026, 1, 11)).state_rebuilt == {"tx": ["2026-01-09"]}
    after = _by_customer(spark, table, "2026-01-11")
    assert after["a"]["tx_amount_sum_3d"] == before["a"]["tx_amount_sum_3d"] - 1012.0 + 3.0
    tiles = _state_rows(spark, feat_settings, spec, "2026-01-09")
    assert tiles != old_tiles and not set(map(repr, tiles)) & set(map(repr, old_tiles))  # replaced, old tiles gone
    # Fewer rows: rebuilt again, the tiles record the new count, and equal a rebuild from scratch.
    spark.sql(f"INSERT OVERWRITE TABLE {tx} PARTITION (ds='2026-01-09') VALUES ('a', TIMESTAMP'2026-01-09 04:00:00', 7.0, 'm1')")
    assert _build(spark, feat_settings, spec, date(2026, 1, 11)).state_rebuilt == {"tx": ["2026-01-09"]}
    incremental = _partition(spark, table, "2026-01-11")
    rows = spark.table(state_table(feat_settings, spec, "tx")).where("ds = '2026-01-09'").select("source_rows").distinct()
    assert [r[0] for r in rows.collect()] == [1]
    _build(spark, feat_settings, spec, date(2026, 1, 11), rebuild_state=True)
    assert _partition(spark, table, "2026-01-11") == incremental


def test_the_tiles_of_a_dropped_source_day_are_not_used(spark, feat_settings, make_feature_set):
    spec, tx, table, before = _built(spark, feat_settings, make_feature_set)
    spark.sql(f"ALTER TABLE {tx} DROP PARTITION (ds='2026-01-09')")
    assert _build(spark, feat_settings, spec, date(2026, 1, 11)).state_rebuilt == {"tx": []}
    after = _by_customer(spark, table, "2026-01-11")
    assert after["a"]["tx_amount_count_3d"] == before["a"]["tx_amount_count_3d"] - 3


def test_a_state_day_dropped_by_hand_is_recomputed_and_its_mark_is_not_trusted(spark, feat_settings, make_feature_set):
    spec, _, table, before = _built(spark, feat_settings, make_feature_set)
    state = state_table(feat_settings, spec, "tx")
    marks = {r[0] for r in spark.sql(f"SHOW TBLPROPERTIES {state}").collect() if r[0].startswith("sparkml_ops.mark.")}
    assert marks == {"sparkml_ops.mark.2026-01-08", "sparkml_ops.mark.2026-01-09", "sparkml_ops.mark.2026-01-10"}
    tiles = _state_rows(spark, feat_settings, spec, "2026-01-09")
    spark.sql(f"ALTER TABLE {state} DROP PARTITION (ds='2026-01-09')")
    assert _build(spark, feat_settings, spec, date(2026, 1, 11)).state_rebuilt == {"tx": ["2026-01-09"]}
    assert _state_rows(spark, feat_settings, spec, "2026-01-09") == tiles
    assert _by_customer(spark, table, "2026-01-11") == before


def _rewrite_in_place(directory: Path, scale: float) -> None:
    """Rewrite each data file of a partition with ``amount * scale``: same name, plain encoding, no statistics."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    for path in sorted(p for p in directory.iterdir() if not p.name.startswith(("_", "."))):
        data = pq.read_table(path, coerce_int96_timestamp_unit="us")
        data = data.set_column(data.schema.get_field_index("ts"), "ts", data["ts"].cast(pa.timestamp("us", tz="UTC")))
        data = data.set_column(data.schema.get_field_index("amount"), "amount", pc.multiply(data["amount"], scale))
        pq.write_table(data, path, compression="NONE", use_dictionary=False, write_statistics=False)
        crc = path.with_name(f".{path.name}.crc")
        crc.unlink(missing_ok=True)


def _sum_of(warehouse: Path, table: str, day: str, column: str) -> float:
    import pyarrow.parquet as pq

    return sum(pq.read_table(p, columns=[column])[column].to_pandas().sum() for p in (warehouse / table / f"as_of_date={day}").glob("*.parquet"))


def test_rebuild_state_from_to_recomputes_late_data_the_fingerprint_cannot_see(tmp_path):
    """``features build --rebuild-state --from/--to`` in its own process (own metastore), on files changed in place."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKML_OPS_")} | {"PYSPARK_PYTHON": sys.executable}
    flags = ["--conf-dir", str(CONF_DIR), "--set", f"state_dir={tmp_path}", "--set", "spark.master=local[2]",
             "--set", "spark.conf.spark.sql.shuffle.partitions=2", "--set", "spark.conf.spark.driver.memory=1g",
             "--set", "features.defer_backfill_state=false"]  # the limit concerns tiles a backfill stored

    def cli(*args: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "sparkml_ops.cli", *flags, *args], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=900, check=False)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout

    def build(*extra: str) -> list[str]:
        out = cli("features", "build", "card_fraud", "--from", "2026-01-11", "--to", "2026-01-12", "--no-stats", "--json", *extra)
        return json.loads(out)["state_rebuilt"]["tx"]

    cli("demo-data", "--start", "2026-01-01", "--days", "12", "--customers", "50", "--tx-per-day", "200", "--seed", "5")
    warehouse = tmp_path / "warehouse"
    late = warehouse / "ml_raw.db" / "card_transactions" / "ds=2026-01-10"
    _rewrite_in_place(late, 1.0)  # same data in a format whose size does not depend on the values
    days = [f"2026-01-{d:02d}" for d in range(1, 12)]
    assert build() == days
    before = _sum_of(warehouse, "ml_features.db/card_fraud", "2026-01-11", "tx_amount_sum_1d")
    listing = {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in late.iterdir()}
    _rewrite_in_place(late, 2.0)
    for p in late.iterdir():
        os.utime(p, ns=(listing[p.name][1], listing[p.name][1]))
    assert {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in late.iterdir()} == listing  # invisible to the listing
    assert build() == []  # the documented limit: same names, sizes and times look unchanged
    assert _sum_of(warehouse, "ml_features.db/card_fraud", "2026-01-11", "tx_amount_sum_1d") == pytest.approx(before)
    assert build("--rebuild-state") == days
    assert _sum_of(warehouse, "ml_features.db/card_fraud", "2026-01-11", "tx_amount_sum_1d") == pytest.approx(2 * before)



def test_the_newest_days_are_read_raw_until_a_batch_of_them_is_tiled_in_one_job(spark, feat_settings, make_feature_set):
    path, tx, _ = make_feature_set()
    batched = _batch(feat_settings, 2)
    spec = load_feature_spec(path, batched)
    table = f"{FEATURES}.{spec.name}"
    first = _build(spark, batched, spec, date(2026, 1, 10))  # a first build: its two stale days make a batch
    assert (first.state_rebuilt, first.state_raw) == ({"tx": ["2026-01-08", "2026-01-09"]}, {"tx": []})
    nightly = _build(spark, batched, spec, date(2026, 1, 11))  # the new day 01-10 alone awaits tiles: read raw
    assert (nightly.state_rebuilt, nightly.state_raw) == ({"tx": []}, {"tx": ["2026-01-10"]})
    assert "2026-01-10" not in {r[0] for r in spark.table(state_table(batched, spec, "tx")).select("ds").distinct().collect()}
    second = _build(spark, batched, spec, date(2026, 1, 12))  # 01-10 and 01-11 await tiles: a batch, one job
    assert (second.state_rebuilt, second.state_raw) == ({"tx": ["2026-01-10", "2026-01-11"]}, {"tx": []})
    batched_rows = [_partition(spark, table, f"2026-01-{d}") for d in (11, 12)]
    eager = [_build(spark, feat_settings, spec, date(2026, 1, d), rebuild_state=True) for d in (11, 12)]
    assert all(not r.state_raw["tx"] for r in eager)
    assert [_partition(spark, table, f"2026-01-{d}") for d in (11, 12)] == batched_rows
    assert batched_rows[0] and batched_rows[1]


def test_a_backfill_stores_no_tiles_by_default_and_the_next_night_tiles_its_days(spark, feat_settings, make_feature_set):
    """``features.defer_backfill_state`` (default true): the backfill reads its days raw; the next single-date build
    tiles them; same rows."""
    path, tx, _ = make_feature_set()
    spec = load_feature_spec(path, feat_settings)
    table = f"{FEATURES}.{spec.name}"
    days = [date(2026, 1, 10), date(2026, 1, 11)]
    backfill = build_features(spark, feat_settings, spec, days, compute_stats=False, today=TODAY)
    assert (backfill.state_rebuilt, backfill.state_raw) == ({"tx": []}, {"tx": ["2026-01-08", "2026-01-09", "2026-01-10"]})
    deferred = [_partition(spark, table, f"2026-01-{d}") for d in (10, 11)]
    assert deferred[0] and deferred[1]
    state = state_table(feat_settings, spec, "tx")
    assert not spark.catalog.tableExists(state) or spark.table(state).count() == 0
    nightly = _build(spark, feat_settings, spec, date(2026, 1, 11))  # one date: the setting does not apply, the days are tiled
    assert nightly.state_rebuilt == {"tx": ["2026-01-08", "2026-01-09", "2026-01-10"]}
    assert _partition(spark, table, "2026-01-11") == deferred[1]
    stored = build_features(spark, feat_settings, spec, days, compute_stats=False, today=TODAY)  # the tiles now read
    assert stored.state_rebuilt == {"tx": []} and [_partition(spark, table, f"2026-01-{d}") for d in (10, 11)] == deferred
