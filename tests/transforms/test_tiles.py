"""Daily tiles and their merges (sparkmlops.TileMerge) against plain Python over the same rows."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import pytest
from pyspark.sql import functions as F

from sparkml_ops.transforms.sweep import LAST, TIME
from sparkml_ops.transforms.windows import US_PER_DAY, WindowAggregate, daily_tiles, event_rows, merged_tiles, plan_measures

pytestmark = pytest.mark.spark

START = datetime(2026, 1, 5, tzinfo=timezone.utc)
HOUR_US = 3_600_000_000
AGGS = [WindowAggregate("sd", "stddev", "amount", US_PER_DAY), WindowAggregate("n", "count", None, US_PER_DAY),
        WindowAggregate("shops", "count_distinct", "shop", US_PER_DAY)]


def _rows(seed: int = 7) -> list[tuple]:
    """Keys with few and many rows over 3 days: NULL amounts and shops, equal values far from 0, times on midnight."""
    rnd = random.Random(seed)
    rows = []
    for key in ("a", "b", "c", "d"):
        for _ in range({"a": 1, "b": 3, "c": 40, "d": 25}[key]):
            at = START + timedelta(microseconds=rnd.randrange(0, 3 * US_PER_DAY, HOUR_US // 2))
            amount = {"a": 5.0, "b": None if rnd.random() < 0.5 else 2.5, "c": round(rnd.uniform(-50, 50), 2),
                      "d": 1e9 + 0.1}[key]  # d: equal values, whose deviations must merge to exactly 0
            rows.append((key, at, amount, rnd.choice(["s1", "s2", "s3", None])))
    rows.append(("c", START + timedelta(days=1), 7.0, "s9"))  # exactly midnight: the first instant of its day
    return rows


def _tiles(spark, rows, grid_us):
    defs, _ = plan_measures(AGGS)
    df = spark.createDataFrame(rows, "key string, ts timestamp, amount double, shop string")
    events = df.withColumn("ds", F.date_format("ts", "yyyy-MM-dd")).transform(event_rows(["key"], "ts", defs, keep=["ds"]))
    return events.repartition("ds").transform(daily_tiles(["key"], defs, grid_us, 0, "ds")), defs


def _expected(rows):
    """Per (key, day): count, sum, min, max, squared deviations (two passes, exact sums), distinct shops, newest time."""
    groups = defaultdict(list)
    for key, at, amount, shop in rows:
        groups[(key, at.date().isoformat())].append((at, amount, shop))
    out = {}
    for group, items in groups.items():
        values = [a for _, a, _ in items if a is not None]
        mean = math.fsum(values) / len(values) if values else None
        out[group] = {"n": len(values), "s": math.fsum(values) if values else None, "lo": min(values, default=None),
                      "hi": max(values, default=None), "q": math.fsum((v - mean) ** 2 for v in values) if values else None,
                      "rows": len(items), "shops": {s for _, _, s in items if s is not None},
                      "last": max(int((at - datetime(1970, 1, 1, tzinfo=timezone.utc)) / timedelta(microseconds=1)) for at, _, _ in items)}
    return out


def _check(got, want):
    assert set(got) == set(want)
    for group, w in want.items():
        g = got[group]
        assert (g["n"], g["lo"], g["hi"], g["rows"], g["shops"], g["last"]) == (w["n"], w["lo"], w["hi"], w["rows"], w["shops"], w["last"]), group
        for stat in ("s", "q"):
            assert (g[stat] is None) == (w[stat] is None), (group, stat)
            if w[stat] is not None:
                assert g[stat] == pytest.approx(w[stat], rel=1e-9, abs=1e-6), (group, stat)


def _by_group(tiles, defs, when):
    amount, rows, shops = (d.measure.column for d in defs)
    out = {}
    for r in tiles.collect():
        out[(r["key"], r["ds"])] = {"n": r[f"{amount}_n"], "s": r[f"{amount}_s"], "lo": r[f"{amount}_lo"], "hi": r[f"{amount}_hi"],
                                    "q": r[f"{amount}_q"], "rows": r[f"{rows}_n"], "shops": set(r[shops]), "last": r[LAST]}
        assert r[TIME] == when(r), (r["key"], r["ds"])
    return out


def test_daily_tiles_keep_what_every_window_needs_per_entity_and_day(spark):
    rows = _rows()
    tiles, defs = _tiles(spark, rows, US_PER_DAY)
    day_start = lambda r: int(datetime.fromisoformat(r["ds"]).replace(tzinfo=timezone.utc).timestamp()) * 1_000_000  # noqa: E731
    got = _by_group(tiles, defs, day_start)
    want = _expected(rows)
    _check(got, want)
    assert got[("d", min(d for k, d in got if k == "d"))]["q"] == 0.0  # equal values far from 0: exactly no deviation


def test_hourly_tiles_merged_per_day_equal_the_daily_tiles_of_their_rows(spark):
    """What a roll-up does: tiles of parts of a group (here 6-hour cells) merged into one, its time the earliest."""
    rows = _rows(seed=11)
    parts, defs = _tiles(spark, rows, 6 * HOUR_US)
    assert parts.count() > len(_expected(rows))  # several parts per (key, day) to merge
    merged = parts.transform(merged_tiles(["ds", "key"], least=[TIME], greatest=[LAST]))
    earliest = {}
    for r in parts.collect():
        earliest[(r["key"], r["ds"])] = min(earliest.get((r["key"], r["ds"]), r[TIME]), r[TIME])
    got = _by_group(merged, defs, lambda r: earliest[(r["key"], r["ds"])])
    _check(got, _expected(rows))
    assert all(v["q"] == 0.0 for (k, _), v in got.items() if k == "d" and v["n"])


def test_a_merge_over_tiles_shuffled_by_day_reuses_that_shuffle_and_keeps_its_order(spark):
    """The write of tiles shuffled by day (io/derived.py) asks for that shuffle again and a sort by day: neither is added."""
    tiles, _ = _tiles(spark, _rows(), US_PER_DAY)
    plan = tiles.repartition("ds").sortWithinPartitions("ds")._jdf.queryExecution().executedPlan().toString()
    assert plan.count("Exchange") == 1 and plan.count("Sort [") == 1 and "TileMerge" in plan, plan


def _local_tiles(spark, rows, spread):
    """Daily tiles merged within each input partition; ``spread``: the events' partitioning before the merge."""
    defs, _ = plan_measures(AGGS)
    df = spark.createDataFrame(rows, "key string, ts timestamp, amount double, shop string")
    events = df.withColumn("ds", F.date_format("ts", "yyyy-MM-dd")).transform(event_rows(["key"], "ts", defs, keep=["ds"]))
    return spread(events).transform(daily_tiles(["key"], defs, US_PER_DAY, 0, "ds", local=True)), defs


def _day_start(r):
    return int(datetime.fromisoformat(r["ds"]).replace(tzinfo=timezone.utc).timestamp()) * 1_000_000


def test_local_tiles_of_rows_partitioned_by_day_are_the_daily_tiles(spark):
    """A scan of day partitions: each day's rows in one task, so one tile per entity and day, with no shuffle."""
    rows = _rows(seed=3)
    tiles, defs = _local_tiles(spark, rows, lambda df: df.repartition(2, "ds"))
    assert tiles.count() == len(_expected(rows))
    _check(_by_group(tiles, defs, _day_start), _expected(rows))


def test_local_tiles_of_rows_spread_over_tasks_merge_to_the_daily_tiles_and_come_out_by_day(spark):
    """A day split across tasks gives a tile per task; merged again (as the sweep and roll-ups do), they are the day's."""
    rows = _rows(seed=5)
    tiles, defs = _local_tiles(spark, rows, lambda df: df.repartition(3))  # round robin: every day in every task
    assert tiles.count() > len(_expected(rows))
    days = tiles.select("ds").rdd.glom().collect()
    assert all([r["ds"] for r in part] == sorted(r["ds"] for r in part) for part in days)  # the order the write needs
    merged = tiles.transform(merged_tiles(["ds", "key"], least=[TIME], greatest=[LAST]))
    _check(_by_group(merged, defs, _day_start), _expected(rows))


def test_local_tiles_are_written_by_day_with_one_radix_sort_and_no_shuffle(spark):
    """The tile job of a build (features/state.py): its write by day needs no Exchange and no second sort."""
    tiles, _ = _local_tiles(spark, _rows(), lambda df: df)
    plan = tiles.sortWithinPartitions("ds")._jdf.queryExecution().executedPlan().toString()
    assert "Exchange" not in plan and plan.count("Sort [") == 1 and "Sort [_k#" in plan and "TileMerge" in plan, plan
