"""The builds' persisted daily tiles: reused when unchanged, rebuilt when their source day or the spec changed."""

from __future__ import annotations

from datetime import date

import pytest

from sparkml_ops.features import build_features, load_feature_spec
from sparkml_ops.features.state import state_table

from tests.features.conftest import FEATURES

pytestmark = pytest.mark.spark

TODAY = date(2026, 2, 1)


def _partition(spark, table: str, day: str) -> list[tuple]:
    return sorted(tuple(r) for r in spark.table(table).where(f"as_of_date = '{day}'").collect())


def _build(spark, settings, spec, day: date, **kwargs):
    return build_features(spark, settings, spec, [day], compute_stats=False, today=TODAY, **kwargs)


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
