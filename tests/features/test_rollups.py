"""Stored roll-ups of the daily tiles: where a build reads them, that they give the features of the daily tiles,
and that a changed or re-tiled source day makes the roll-ups over it stale."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest

from sparkml_ops.features import build_features, load_feature_spec
from sparkml_ops.features.rollups import Cover, plan_cover, window_edges

from tests.features.conftest import FEATURES, SPEC

US_PER_DAY = 86_400_000_000
TODAY = date(2026, 3, 1)
DAY0 = date(2026, 1, 1)  # day 20454 since 1970: a multiple of 2, not of 4


def _day_us(day: date) -> int:
    return (day - date(1970, 1, 1)).days * US_PER_DAY


def _days(first: date, n: int) -> list[str]:
    return [(first + timedelta(days=i)).isoformat() for i in range(n)]


def test_the_cover_takes_the_largest_aligned_rollups_that_no_edge_cuts():
    days = _days(DAY0, 12)  # 2026-01-01 .. 01-12
    cover = plan_cover(days, set(days), {_day_us(date(2026, 1, 9)) + 3_600_000_000}, (4, 2))
    # 01-01 is aligned on 2 only, 01-03 on 4; the edge at 01-09 01:00 cuts [01-07, 01-11) and [01-09, 01-11).
    assert cover == Cover({4: ["2026-01-03"], 2: ["2026-01-01", "2026-01-07", "2026-01-11"]}, ["2026-01-09", "2026-01-10"])
    assert cover.covered == set(days) - {"2026-01-09", "2026-01-10"}


def test_an_edge_at_midnight_does_not_cut_and_days_read_raw_are_never_rolled_up():
    days = _days(DAY0, 6)
    at_midnight = plan_cover(days, set(days), {_day_us(date(2026, 1, 3)), _day_us(date(2026, 1, 7))}, (4, 2))
    assert at_midnight == Cover({4: ["2026-01-03"], 2: ["2026-01-01"]}, [])
    raw = plan_cover(days, set(days) - {"2026-01-06"}, set(), (4, 2))
    assert raw == Cover({2: ["2026-01-01", "2026-01-03"]}, ["2026-01-05", "2026-01-06"])
    assert plan_cover(days, set(days), set(), ()) == Cover({}, days)


ROLLUP_SPEC = SPEC.replace("functions: [count, sum, mean, min, max], windows: [1d, 3d]",
                           "functions: [count, sum, mean, min, max, stddev], windows: [1d, 3d, 14d]") \
    .replace("functions: [count_distinct], windows: [3d]", "functions: [count_distinct], windows: [3d, 14d]")


def _rows(seed: int = 7) -> list[tuple]:
    """20 days of transactions; customer ``k`` always spends 5.0 (its stddev is exactly 0), ``b`` spends around 1e9."""
    rng = random.Random(seed)
    rows = []
    for i in range(20):
        day = DAY0 + timedelta(days=i)
        for hour in (0, 11, 23):
            rows.append(("k", f"{day} {hour:02d}:00:00", 5.0, "m1"))
        for _ in range(rng.randrange(0, 4)):
            rows.append(("a", f"{day} {rng.randrange(24):02d}:{rng.randrange(60):02d}:00", round(rng.uniform(1, 500), 2),
                         f"m{rng.randrange(6)}"))
        if i % 3:
            rows.append(("b", f"{day} 12:00:00", 1e9 + rng.choice([0.25, 0.5, 0.75]), "m2"))
    return rows


def _levels(settings, levels, batch=1):
    return settings.model_copy(update={"features": settings.features.model_copy(update={"rollup_days": levels, "tile_batch_days": batch})})


def _features(spark, table: str, day: date) -> dict:
    return {r["customer_id"]: r.asDict() for r in spark.table(table).where(f"as_of_date = '{day}'").collect()}


def _assert_equal(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for key, row in want.items():
        for name, value in row.items():
            if isinstance(value, float) and value:  # sums in another order; 0.0 must stay exactly 0.0
                assert got[key][name] == pytest.approx(value, rel=1e-9, abs=1e-6), (key, name)
            else:
                assert got[key][name] == value, (key, name)


@pytest.mark.spark
def test_a_build_over_rollups_equals_one_over_daily_tiles_and_reuses_them(spark, feat_settings, make_feature_set):
    path, tx, _ = make_feature_set(tx_rows=_rows(), spec_text=ROLLUP_SPEC)
    with_rollups, daily = _levels(feat_settings, (4, 2)), _levels(feat_settings, ())
    spec = load_feature_spec(path, with_rollups)
    table, day = f"{FEATURES}.{spec.name}", date(2026, 1, 19)
    build = lambda settings, **kw: build_features(spark, settings, spec, [day], compute_stats=False, today=TODAY, **kw)  # noqa: E731

    first = build(with_rollups)
    # Cutoff 01-19 00:00 (1-day lag): edges at 01-18, 01-16 and 01-05; 01-05..01-15 lies between two of them.
    assert first.rollups_read == {"tx": {"4d": ["2026-01-07", "2026-01-11"], "2d": ["2026-01-05"]}}
    assert first.rollups_built == first.rollups_read
    over_rollups = _features(spark, table, day)
    assert build(daily).rollups_read == {"tx": {}}
    _assert_equal(over_rollups, _features(spark, table, day))
    assert over_rollups["k"]["tx_amount_stddev_14d"] == 0.0  # equal values merge to exactly 0

    again = build(with_rollups)
    assert again.rollups_built == {"tx": {}} and again.rollups_read == first.rollups_read
    _assert_equal(_features(spark, table, day), over_rollups)

    # Late data inside the 4-day roll-up from 01-11: new files, a new fingerprint: that roll-up only is computed again.
    spark.sql(f"INSERT INTO {tx} PARTITION (ds='2026-01-12') VALUES ('a', TIMESTAMP'2026-01-12 08:00:00', 777.0, 'm9')")
    late = build(with_rollups)
    assert late.state_rebuilt == {"tx": ["2026-01-12"]} and late.rollups_built == {"tx": {"4d": ["2026-01-11"]}}
    after = _features(spark, table, day)
    assert after["a"]["tx_amount_sum_14d"] == pytest.approx(over_rollups["a"]["tx_amount_sum_14d"] + 777.0, rel=1e-9)
    build(daily)
    _assert_equal(after, _features(spark, table, day))

    # Late data the fingerprint cannot see is handled by --rebuild-state: every roll-up over a re-tiled day is computed again.
    rebuilt = build(with_rollups, rebuild_state=True)
    assert rebuilt.rollups_built == first.rollups_read
    _assert_equal(_features(spark, table, day), after)


@pytest.mark.spark
def test_a_rollup_is_merged_from_the_shorter_rollups_stored_before_it(spark, feat_settings, make_feature_set, caplog):
    path, _, _ = make_feature_set(tx_rows=_rows(), spec_text=ROLLUP_SPEC)
    with_rollups = _levels(feat_settings, (4, 2))
    spec = load_feature_spec(path, with_rollups)
    table, day = f"{FEATURES}.{spec.name}", date(2026, 1, 19)
    # As of 01-10 the edges are 01-10, 01-09 and 01-07: the 2-day roll-up from 01-07 fits, the 4-day one does not.
    early = build_features(spark, with_rollups, spec, [date(2026, 1, 10)], compute_stats=False, today=TODAY)
    assert "2026-01-07" in early.rollups_built["tx"]["2d"] and "2026-01-07" not in early.rollups_read["tx"]["4d"]
    caplog.set_level("INFO", logger="sparkml_ops.features.rollups")
    later = build_features(spark, with_rollups, spec, [day], compute_stats=False, today=TODAY)
    assert later.rollups_built["tx"]["4d"] == ["2026-01-07", "2026-01-11"]
    assert "2 of 4 days to compute (2026-01-07..2026-01-11) from 1 shorter roll-up(s) and 6 day(s) of tiles" in caplog.text
    over_rollups = _features(spark, table, day)
    build_features(spark, _levels(feat_settings, ()), spec, [day], compute_stats=False, today=TODAY)
    _assert_equal(over_rollups, _features(spark, table, day))


@pytest.mark.spark
def test_a_rollup_unmarked_or_dropped_by_hand_is_read_as_tiles_until_the_next_build_that_tiles(spark, feat_settings, make_feature_set):
    path, tx, _ = make_feature_set(tx_rows=_rows(), spec_text=ROLLUP_SPEC)
    settings = _levels(feat_settings, (4,))
    spec = load_feature_spec(path, settings)
    day, table = date(2026, 1, 19), f"{FEATURES}.{spec.name}"
    build = lambda: build_features(spark, settings, spec, [day], compute_stats=False, today=TODAY)  # noqa: E731
    assert build().rollups_built == {"tx": {"4d": ["2026-01-07", "2026-01-11"]}}
    want = _features(spark, table, day)
    rollups = f"{FEATURES}.{spec.name}__tx_state_4d"
    spark.sql(f"ALTER TABLE {rollups} DROP PARTITION (ds = '2026-01-07')")
    spark.sql(f"ALTER TABLE {rollups} UNSET TBLPROPERTIES IF EXISTS ('sparkml_ops.mark.2026-01-11')")
    # A build that tiles nothing computes no roll-up: it reads the daily tiles where they are gone.
    untiled = build()
    assert untiled.rollups_built == {"tx": {}} and untiled.rollups_read == {"tx": {}}
    _assert_equal(_features(spark, table, day), want)
    # The next build that tiles a day (late data on 01-16, outside both roll-ups) computes them again.
    spark.sql(f"INSERT INTO {tx} PARTITION (ds='2026-01-16') VALUES ('a', TIMESTAMP'2026-01-16 08:00:00', 5.0, 'm1')")
    tiled = build()
    assert tiled.state_rebuilt == {"tx": ["2026-01-16"]} and tiled.rollups_built == {"tx": {"4d": ["2026-01-07", "2026-01-11"]}}
    assert _features(spark, table, day)["a"]["tx_amount_sum_14d"] == pytest.approx(want["a"]["tx_amount_sum_14d"] + 5.0, rel=1e-9)


@pytest.mark.spark
def test_a_build_that_tiles_computes_the_rollups_of_the_nights_until_the_next_one(spark, feat_settings, make_feature_set):
    path, _, _ = make_feature_set(tx_rows=_rows(), spec_text=ROLLUP_SPEC)
    nightly, daily = _levels(feat_settings, (4, 2), batch=3), _levels(feat_settings, (), batch=3)
    spec = load_feature_spec(path, nightly)
    table = f"{FEATURES}.{spec.name}"
    build = lambda settings, day: build_features(spark, settings, spec, [day], compute_stats=False, today=TODAY)  # noqa: E731

    # As of 01-15 the edges are 01-15, 01-14, 01-12 and 01-01; as of 01-16 they are a day later, and 01-15 is read raw:
    # the roll-ups from 01-11 and 01-13 fit the next two nights, not this one.
    first = build(nightly, date(2026, 1, 15))
    assert first.rollups_read == {"tx": {"4d": ["2026-01-03", "2026-01-07"], "2d": ["2026-01-01"]}}
    assert first.rollups_built == {"tx": {"4d": ["2026-01-03", "2026-01-07"], "2d": ["2026-01-01", "2026-01-11", "2026-01-13"]}}
    reads = {date(2026, 1, 16): {"4d": ["2026-01-03", "2026-01-07"], "2d": ["2026-01-11", "2026-01-13"]},
             date(2026, 1, 17): {"4d": ["2026-01-03", "2026-01-07"], "2d": ["2026-01-11"]}}
    for day, read in reads.items():
        night = build(nightly, day)
        assert night.state_rebuilt == {"tx": []} and night.state_raw["tx"] and night.rollups_built == {"tx": {}}
        assert night.rollups_read == {"tx": read}
        over_rollups = _features(spark, table, day)
        build(daily, day)
        _assert_equal(over_rollups, _features(spark, table, day))
    # The third night tiles its three raw days, and with them computes roll-ups again.
    third = build(nightly, date(2026, 1, 18))
    assert third.state_rebuilt == {"tx": ["2026-01-15", "2026-01-16", "2026-01-17"]} and third.rollups_built["tx"]


@pytest.mark.spark
def test_window_edges_are_the_cutoffs_and_window_starts_of_every_point(feat_settings, make_feature_set):
    path, _, _ = make_feature_set(tx_rows=_rows(), spec_text=ROLLUP_SPEC)
    spec = load_feature_spec(path, feat_settings)
    t = _day_us(date(2026, 1, 20))
    assert window_edges(spec, "tx", [t]) == {t - d * US_PER_DAY for d in (1, 2, 4, 15)}
