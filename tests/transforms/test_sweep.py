"""The sweep (sparkmlops.Sweep, through window_features) against brute force: random streams, every function."""

from __future__ import annotations

import json
import math
import random
import statistics

import pytest
from pyspark.sql import functions as F
from pyspark.sql.classic.dataframe import DataFrame as ClassicDataFrame
from pyspark.sql.types import StructType

from sparkml_ops.jvm import jvm_class

from sparkml_ops.transforms.sweep import AttributesPlan, EventsPlan, Measure, Output, SweepPlan
from sparkml_ops.transforms.windows import output_schema, window_features

pytestmark = pytest.mark.spark

H = 3_600_000_000
DAY = 24 * H
FUNCS = {0: ("count", "sum", "mean", "min", "max", "stddev"), 1: ("count_distinct",), 2: ("count",)}


def _row(k, t, kind, src=None, **values) -> dict:
    return {"k": k, "_t": t, "_kind": kind, "_src": src, "v": None, "d": None, "c": None, "a": None, "p": None, **values}


def _stream(rng: random.Random, entities: int, rows: int, points: int, values) -> list[dict]:
    out = []
    for _ in range(rows):
        t = rng.randrange(10) * DAY + rng.choice([0, 1, DAY - 1, rng.randrange(DAY)])
        out.append(_row(f"e{rng.randrange(entities)}", t, 1, 0, v=rng.choice(values), d=rng.choice(["x", "y", "z", None]),
                        c=rng.choice([1, None])))
    for t in rng.sample(range(0, 12 * DAY, H), 6):  # attributes: at most one row per entity and time
        out.append(_row(f"e{rng.randrange(entities)}", t, 1, 1, a=rng.choice(["gold", None])))
    for i in range(points):
        base = rng.choice(out)["_t"] if rng.random() < 0.5 else rng.randrange(12 * DAY)
        t = base + rng.choice([0, 1, -1, DAY, -DAY, 0])  # the point's instant; its cutoff is a day before
        out.append(_row(f"e{rng.randrange(entities + 1)}", t, 0, p=i))
    return sorted(out, key=lambda r: (r["k"], r["_t"], r["_kind"]))


def _plan(windows, as_of=()) -> SweepPlan:
    measures = (Measure("v", "numeric"), Measure("d", "distinct"), Measure("c", "count"))
    outputs = tuple(Output(f"m{m}_{f}_{w}", f, m, w) for w in windows for m, funcs in FUNCS.items() for f in funcs)
    events = EventsPlan(0, measures, outputs, ("rec",), lag_us=DAY, horizon_us=max(windows))
    return SweepPlan(("k",), (events,), (AttributesPlan(1, ("a",), H),), ("p",), as_of)


def _expected(rows: list[dict], key: str, instant: int, plan: SweepPlan) -> dict:
    ev, attr = plan.events[0], plan.attributes[0]
    cutoff = instant - ev.lag_us
    mine = [r for r in rows if r["k"] == key and r["_kind"] == 1 and r["_src"] == 0]
    out = {}
    known = [r for r in rows if r["k"] == key and r["_src"] == 1 and r["_t"] < instant - attr.lag_us]
    out["a"] = max(known, key=lambda r: r["_t"])["a"] if known else None
    for o in ev.outputs:
        known = [r for r in mine if cutoff - o.window_us <= r["_t"] < cutoff]
        col = ev.measures[o.measure].column
        vals = [r[col] for r in known if r[col] is not None]
        if o.func == "count":
            out[o.name] = len(vals)
        elif o.func == "sum":
            out[o.name] = math.fsum(vals)
        elif o.func == "count_distinct":
            out[o.name] = len(set(vals))
        elif not vals:
            out[o.name] = None
        elif o.func == "mean":
            out[o.name] = math.fsum(vals) / len(vals)
        elif o.func == "min":
            out[o.name] = min(vals)
        elif o.func == "max":
            out[o.name] = max(vals)
        else:
            out[o.name] = statistics.stdev(vals) if len(vals) > 1 else None
    known = [r["_t"] for r in mine if cutoff - ev.horizon_us <= r["_t"] < cutoff]
    out["rec"] = (instant - max(known)) / DAY if known else None
    return out


STREAM = "k string, _t bigint, _kind tinyint, _src smallint, a string, v double, d string, c tinyint, p bigint"


def _sweep(spark, plan: SweepPlan, rows: list[dict]) -> list[dict]:
    """The features of ``plan`` at its points, computed by Spark from ``rows`` (in any order)."""
    out = _frame(spark, rows).transform(window_features(plan, output_schema(plan, {"k": "string", "p": "bigint", "a": "string"}
                                                                if not plan.as_of else {"k": "string", "p": "string",
                                                                                        "a": "string"})))
    return [r.asDict() for r in out.collect()]


def _frame(spark, rows: list[dict]):
    """The stream rows in a shuffled order: the sweep must order each entity's rows itself."""
    schema = StructType.fromDDL(STREAM)
    mixed = random.Random(len(rows)).sample(rows, len(rows))
    return spark.createDataFrame([tuple(r[f.name] for f in schema.fields) for r in mixed], schema)


def _check(got: dict, want: dict, where: str) -> None:
    for name, expected in want.items():
        value = got[name]
        if expected is None or isinstance(expected, (int, str)) or expected == 0.0:
            assert value == expected, f"{where} {name}: {value!r} != {expected!r}"
        else:
            assert value == pytest.approx(expected, rel=1e-9, abs=1e-6), f"{where} {name}: {value!r} != {expected!r}"


@pytest.mark.parametrize("seed", range(12))
def test_points_in_the_stream_match_brute_force(spark, seed):
    rng = random.Random(seed)
    values = rng.choice([(1.0, 2.0, 2.0, -3.5, 10.0, None), (9.99, 9.99, None), (1e9 + 0.5, 1e9 + 0.25, 1e9)])
    windows = sorted(rng.sample([H, 5 * H, DAY, 36 * H, 2 * DAY, 3 * DAY, 7 * DAY], 3))
    rows = _stream(rng, rng.choice([1, 3, 6]), rng.randrange(0, 80), 25, values)
    plan = _plan(windows)
    out = _sweep(spark, plan, rows)
    points = {r["p"]: r for r in rows if r["_kind"] == 0}
    assert sorted(r["p"] for r in out) == sorted(points)
    for r in out:
        p = points[r["p"]]
        assert r["k"] == p["k"]
        _check(r, _expected(rows, p["k"], p["_t"], plan), f"seed {seed} point {p}")


def test_as_of_instants_give_a_row_per_entity_known_to_a_source(spark):
    rng = random.Random(7)
    rows = [r for r in _stream(rng, 5, 60, 0, (1.0, 4.0, None))]
    as_of = (("d3", 3 * DAY), ("d6", 6 * DAY), ("d9", 9 * DAY + 5))
    plan = _plan([DAY, 2 * DAY], as_of)
    out = _sweep(spark, plan, rows)
    want = {(k, name) for k in {r["k"] for r in rows} for name, i in as_of
            if any(r["k"] == k and r["_src"] == 0 and i - 3 * DAY <= r["_t"] < i - DAY for r in rows)
            or any(r["k"] == k and r["_src"] == 1 and r["_t"] < i - H for r in rows)}
    assert {(r["k"], r["p"]) for r in out} == want
    for r in out:
        _check(r, _expected(rows, r["k"], dict(as_of)[r["p"]], plan), r["p"])


def test_equal_values_have_a_standard_deviation_of_exactly_zero(spark):
    rows = [_row("a", i * H, 1, 0, v=0.1) for i in range(40)]
    rows.append(_row("a", 65 * H, 0, p=0))
    out = _sweep(spark, _plan([DAY]), rows)[0]
    assert out[f"m0_stddev_{DAY}"] == 0.0


def test_entities_whose_keys_share_a_hash_are_swept_apart(spark):
    """The sweep's input is sorted by a 64-bit hash of the keys only: entities whose hashes collide arrive mixed in
    one run, in no time order. Every hash is forced equal here, in one partition, and each entity still gets its own."""
    rng = random.Random(5)
    rows = _stream(rng, 6, 70, 25, (1.0, 2.0, 2.0, -3.5, None))
    plan = _plan([H, DAY, 3 * DAY])
    schema = output_schema(plan, {"k": "string", "p": "bigint", "a": "string"})
    stream = _frame(spark, rows).withColumn("_h", F.lit(7).cast("bigint")).coalesce(1)
    sweep = jvm_class(spark, "Sweep", "computes window features")
    out = ClassicDataFrame(sweep.apply(stream._jdf, json.dumps({**json.loads(plan.to_json()), "hash": "_h"}), schema.json()), spark)
    points = {r["p"]: r for r in rows if r["_kind"] == 0}
    got = [r.asDict() for r in out.collect()]
    assert sorted(r["p"] for r in got) == sorted(points) and len({r["k"] for r in got}) > 3
    for r in got:
        p = points[r["p"]]
        assert r["k"] == p["k"]
        _check(r, _expected(rows, p["k"], p["_t"], plan), f"point {p}")
