"""Differential test: the feature engine against a brute-force reference in plain Python, on seeded random data.

Each scenario draws small sources with timestamps on and around day boundaries (to the
microsecond), random lags in days and hours, random windows, every aggregate function, ``where``
filters, a derived column, a second events source, attributes with and without ``valid_from``,
and label rows placed exactly on (and one microsecond around) their cutoffs and window starts.
Then it compares, row by row, a build of several as-of dates and a training set with what
docs/features.md says they must be, computed the slow, obvious way.
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pytest

from sparkml_ops.features import build_features, feature_columns, load_feature_spec, training_set

from tests.features.conftest import FEATURES, RAW

pytestmark = pytest.mark.spark

US_PER_HOUR = 3_600_000_000
US_PER_DAY = 24 * US_PER_HOUR
EPOCH = datetime(1970, 1, 1)
FIRST_DAY = date(2026, 3, 1)
DAYS = 12
FUNCS = ["count", "sum", "mean", "min", "max", "stddev", "count_distinct", "approx_count_distinct"]
WHERE = {  # SQL of the spec -> the same condition in Python (NULL is false)
    "amount > 50": lambda r: r["amount"] is not None and r["amount"] > 50,
    "merchant_id IN ('m1', 'm2')": lambda r: r["merchant_id"] in ("m1", "m2"),
}


@dataclass(frozen=True)
class Scenario:
    """What one seed varies beyond the random rows."""

    seed: int
    keys: tuple[str, ...]
    lags: tuple[str, ...]        # events source lags to draw from
    windows: tuple[str, ...]     # windows to draw from
    amounts: tuple[float | None, ...]


SCENARIOS = [
    Scenario(1, ("customer_id",), ("1d", "0d", "2d"), ("1d", "2d", "3d", "7d"), (1.0, 2.5, 10.0, 60.0, 99.0, -5.0, None)),
    Scenario(2, ("customer_id",), ("3h", "25h", "1d"), ("1h", "6h", "1d", "36h", "3d"), (0.5, 7.0, 51.0, 51.0, 120.0, None)),
    Scenario(3, ("customer_id", "card"), ("1d", "5h"), ("2h", "1d", "2d", "5d"),
             (1e9 + 0.5, 1e9 + 0.25, 1e9 + 0.75, 1e9, 9.99, 9.99, 9.99, None)),
]


def _us(text: str) -> int:
    return (datetime.fromisoformat(text) - EPOCH) // timedelta(microseconds=1)


def _text(us: int) -> str:
    return (EPOCH + timedelta(microseconds=us)).isoformat(sep=" ", timespec="microseconds")


def _duration(text: str) -> int:
    return int(text[:-1]) * (US_PER_DAY if text[-1] == "d" else US_PER_HOUR)


def _random_time(rng: random.Random) -> int:
    day = _us(f"{FIRST_DAY.isoformat()} 00:00:00") + rng.randrange(DAYS) * US_PER_DAY
    edge = rng.choice([0, 1, US_PER_DAY - 1, US_PER_DAY // 2, None, None, None])
    return day + (edge if edge is not None else rng.randrange(US_PER_DAY))


def _draw_spec(rng: random.Random, sc: Scenario, name: str, tables: dict[str, str]) -> tuple[str, dict]:
    """A random spec over the tables and its parameters for the reference."""
    lag_tx, lag_web = rng.choice(sc.lags), rng.choice(sc.lags)
    win_a = sorted(rng.sample(sc.windows, 2), key=_duration)
    win_b = [rng.choice(sc.windows)]
    where = rng.choice(list(WHERE))
    keys = ", ".join(f"{k}: string" for k in sc.keys)
    aggs = [
        {"column": "amount", "functions": FUNCS[:6], "windows": win_a, "where": None, "prefix": "tx"},
        {"column": "merchant_id", "functions": ["count", "count_distinct", "approx_count_distinct"], "windows": win_a,
         "where": None, "prefix": "tx"},
        {"column": "amount", "functions": ["count", "sum", "max", "count_distinct"], "windows": win_b, "where": where,
         "prefix": "f"},
        {"column": None, "functions": ["count"], "windows": win_b, "where": where, "prefix": "rows"},
        {"column": "big", "functions": ["sum", "mean"], "windows": win_a[-1:], "where": None, "prefix": "tx"},
    ]
    lines = [f"name: {name}", f"entity_keys: [{', '.join(sc.keys)}]", "event_time: event_time", "sources:",
             "  tx:", f"    table: {tables['tx']}", "    database: raw", "    kind: events", "    time_column: ts",
             "    partition_column: ds", f"    availability_lag: {lag_tx}",
             f"    columns: {{{keys}, ts: timestamp, amount: double, merchant_id: string}}",
             "    derived:", "      - {name: big, expr: \"CAST(amount > 50 AS INT)\", type: int}",
             "  web:", f"    table: {tables['web']}", "    database: raw", "    kind: events", "    time_column: ts",
             "    partition_column: ds", f"    availability_lag: {lag_web}",
             f"    columns: {{{keys}, ts: timestamp, pages: int}}",
             "  cust:", f"    table: {tables['cust']}", "    database: raw", "    kind: attributes",
             "    time_column: valid_from", "    availability_lag: 2h",
             f"    columns: {{{keys}, valid_from: timestamp, credit_limit: double}}",
             "  seg:", f"    table: {tables['seg']}", "    database: raw", "    kind: attributes", "    availability_lag: 0d",
             f"    columns: {{{keys}, segment: string}}",
             "features:"]
    for a in aggs:
        column = f"column: {a['column']}, " if a["column"] else ""
        where_sql = f", where: \"{a['where']}\"" if a["where"] else ""
        lines.append(f"  - {{type: aggregate, source: tx, {column}functions: [{', '.join(a['functions'])}], "
                     f"windows: [{', '.join(a['windows'])}]{where_sql}, prefix: {a['prefix']}}}")
    lines += [f"  - {{type: aggregate, source: web, column: pages, functions: [count, sum], windows: [{rng.choice(sc.windows)}]}}",
              "  - {type: recency, name: tx_recency, source: tx}",
              "  - {type: recency, name: web_recency, source: web}",
              f"  - {{type: ratio, name: share, numerator: tx_amount_sum_{win_a[0]}, denominator: tx_amount_sum_{win_a[1]}}}",
              "  - {type: expression, name: limit_k, source: cust, sql: \"credit_limit / 1000\", dtype: double}",
              "  - {type: expression, name: gold, source: seg, sql: \"CASE WHEN segment = 'gold' THEN 1 ELSE 0 END\", dtype: int}"]
    return "\n".join(lines) + "\n", {"lag": {"tx": _duration(lag_tx), "web": _duration(lag_web), "cust": 2 * US_PER_HOUR, "seg": 0}}


def _draw_rows(rng: random.Random, sc: Scenario) -> dict[str, list[dict]]:
    """Random source rows, label rows, and rows placed exactly on the label boundaries."""
    entities = [tuple(f"{k[0]}{i}" for k in sc.keys) for i in range(5)]
    labels = [{"key": rng.choice(entities + [tuple("z" for _ in sc.keys)]), "t": _random_time(rng), "label": rng.randrange(2)}
              for _ in range(14)]
    labels.append(dict(labels[0]))  # a duplicated label row gives two output rows
    tx = [{"key": rng.choice(entities), "t": _random_time(rng), "amount": rng.choice(sc.amounts),
           "merchant_id": rng.choice(["m1", "m2", "m3", None])} for _ in range(70)]
    for lab in labels[:8]:  # on the cutoff of a 1-day lag and around a 1-day and a 2-day window start
        for offset in (0, -1, -US_PER_DAY, -US_PER_DAY - 1, -2 * US_PER_DAY, -3 * US_PER_HOUR):
            t = lab["t"] - US_PER_DAY + offset
            tx.append({"key": lab["key"], "t": t, "amount": rng.choice(sc.amounts), "merchant_id": rng.choice(["m1", "m4"])})
    tx.append(dict(tx[3]))  # equal timestamps (and values) count twice
    web = [{"key": rng.choice(entities), "t": _random_time(rng), "pages": rng.choice([1, 2, 5, None])} for _ in range(25)]
    first = _us(f"{FIRST_DAY.isoformat()} 00:00:00")
    fill = tuple("fill" for _ in sc.keys)  # one row per day keeps every day partition present
    for d in range(DAYS):
        tx.append({"key": fill, "t": first + d * US_PER_DAY + rng.randrange(US_PER_DAY), "amount": 1.0, "merchant_id": "m1"})
        web.append({"key": fill, "t": first + d * US_PER_DAY + rng.randrange(US_PER_DAY), "pages": 1})
    tx = [r for r in tx if first <= r["t"] < first + DAYS * US_PER_DAY]
    cust = [{"key": rng.choice(entities), "t": _random_time(rng), "credit_limit": rng.choice([1000.0, 2500.0, None])}
            for _ in range(9)]
    cust.append({"key": labels[1]["key"], "t": labels[1]["t"] - 2 * US_PER_HOUR, "credit_limit": 7000.0})  # at the cutoff
    cust.append({"key": labels[1]["key"], "t": labels[1]["t"] - 2 * US_PER_HOUR, "credit_limit": 6000.0})  # tie: max wins
    seg = [{"key": e, "segment": rng.choice(["gold", "basic"])} for e in entities[:3]]
    seg.append({"key": entities[0], "segment": "gold" if seg[0]["segment"] == "basic" else "basic"})  # static tie
    return {"tx": tx, "web": web, "cust": cust, "seg": seg, "labels": labels}


def _write(spark, table: str, sc: Scenario, rows: list[dict], columns: dict[str, str], time_col: str | None,
           partitioned: bool) -> None:
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {RAW}")
    spark.sql(f"DROP TABLE IF EXISTS {table}")
    names = [*sc.keys, *columns]
    data = [(*r["key"], *[_text(r["t"]) if c == time_col else r[c] for c in columns]) for r in rows]
    schema = ", ".join([*(f"{k} string" for k in sc.keys), *(f"{c} {'string' if c == time_col else t}" for c, t in columns.items())])
    df = spark.createDataFrame(data, schema)
    if time_col:
        df = df.withColumn(time_col, df[time_col].cast("timestamp"))
    if partitioned:
        ddl = ", ".join([*(f"{k} STRING" for k in sc.keys), *(f"{c} {t.upper()}" for c, t in columns.items())])
        spark.sql(f"CREATE TABLE {table} ({ddl}) PARTITIONED BY (ds STRING) STORED AS PARQUET")
        df.selectExpr(*names, f"date_format({time_col}, 'yyyy-MM-dd') AS ds").write.insertInto(table, overwrite=True)
    else:
        df.select(*names).write.saveAsTable(table)


def _aggregate(func: str, values: list, rows: int):
    if func == "count":
        return rows if values is None else len(values)
    if func == "sum":
        return math.fsum(values) if values else 0.0
    if func in ("count_distinct", "approx_count_distinct"):
        return len(set(values))
    if not values:
        return None
    if func == "mean":
        return math.fsum(values) / len(values)
    if func == "min":
        return float(min(values))
    if func == "max":
        return float(max(values))
    return statistics.stdev(values) if len(values) > 1 else None


class Reference:
    """docs/features.md, computed row by row."""

    def __init__(self, spec, rows: dict[str, list[dict]], params: dict):
        self.spec, self.rows, self.lag = spec, rows, params["lag"]
        self.max_window = {name: spec.max_window_us(name) for name in spec.sources}

    def _known(self, source: str, key: tuple, cutoff: int, width: int) -> list[dict]:
        return [r for r in self.rows[source] if r["key"] == key and cutoff - width <= r["t"] < cutoff]

    def features(self, key: tuple, t: int) -> dict:
        """Every feature of ``key`` as of the instant ``t`` (µs)."""
        out = {}
        for f in self.spec.features:
            if f.kind == "aggregate":
                known = self._known(f.source, key, t - self.lag[f.source], f.window_us)
                known = [dict(r, big=None if r.get("amount") is None else int(r["amount"] > 50)) for r in known]
                if f.where:
                    known = [r for r in known if WHERE[f.where](r)]
                values = None if f.column is None else [r[f.column] for r in known if r[f.column] is not None]
                out[f.name] = _aggregate(f.func, values, len(known))
            elif f.kind == "recency":
                known = self._known(f.source, key, t - self.lag[f.source], self.max_window[f.source])
                out[f.name] = (t - max(r["t"] for r in known)) / US_PER_DAY if known else None
            elif f.kind == "ratio":
                num, den = out[f.numerator], out[f.denominator]
                out[f.name] = None if num is None or not den else num / den
            else:
                out[f.name] = self._attribute(f, key, t)
        return out

    def _attribute(self, f, key: tuple, t: int):
        if f.source == "seg":
            values = [1 if r["segment"] == "gold" else 0 for r in self.rows["seg"] if r["key"] == key]
            return max(values) if values else None  # static rows tie on time: the greatest value wins
        known = [r for r in self.rows["cust"] if r["key"] == key and r["t"] < t - self.lag["cust"]]
        if not known:
            return None
        last = max(r["t"] for r in known)
        values = [None if r["credit_limit"] is None else r["credit_limit"] / 1000 for r in known if r["t"] == last]
        return max(values, key=lambda v: (v is not None, v or 0.0))

    def present(self, key: tuple, t: int) -> bool:
        """A build row exists when any source knows the entity at ``t``."""
        events = any(self._known(s, key, t - self.lag[s], self.max_window[s]) for s in ("tx", "web"))
        cust = any(r["key"] == key and r["t"] < t - self.lag["cust"] for r in self.rows["cust"])
        return events or cust or any(r["key"] == key for r in self.rows["seg"])


def _assert_same(got: dict, want: dict, where: str, scale: float) -> None:
    """Counts exact; doubles to 1e-9 relative, or a few ulps of the largest input (``scale``) absolute.

    A standard deviation of equal values must be exactly 0.0, as Spark's own ``stddev_samp`` gives.
    """
    for name, expected in want.items():
        value = got[name]
        if expected is None or value is None or isinstance(expected, int) or expected == 0.0:
            assert value == expected, f"{where}: {name} = {value!r}, expected {expected!r}"
        else:
            tol = max(1e-9, 1e-14 * scale)
            assert value == pytest.approx(expected, rel=1e-9, abs=tol), f"{where}: {name} = {value!r}, expected {expected!r}"


@pytest.fixture(params=SCENARIOS, ids=lambda sc: f"seed{sc.seed}")
def scenario(request, spark, feat_settings, tmp_path):
    """Tables, spec and reference of one seeded scenario."""
    sc = request.param
    rng = random.Random(sc.seed)
    tables = {s: f"diff{sc.seed}_{s}" for s in ("tx", "web", "cust", "seg", "labels")}
    rows = _draw_rows(rng, sc)
    _write(spark, f"{RAW}.{tables['tx']}", sc, rows["tx"], {"ts": "timestamp", "amount": "double", "merchant_id": "string"}, "ts", True)
    _write(spark, f"{RAW}.{tables['web']}", sc, rows["web"], {"ts": "timestamp", "pages": "int"}, "ts", True)
    _write(spark, f"{RAW}.{tables['cust']}", sc, rows["cust"], {"valid_from": "timestamp", "credit_limit": "double"}, "valid_from", False)
    _write(spark, f"{RAW}.{tables['seg']}", sc, rows["seg"], {"segment": "string"}, None, False)
    _write(spark, f"{RAW}.{tables['labels']}", sc, rows["labels"], {"event_time": "timestamp", "label": "int"}, "event_time", False)
    text, params = _draw_spec(rng, sc, f"diff{sc.seed}", tables)
    path = tmp_path / f"diff{sc.seed}.yaml"
    path.write_text(text)
    spec = load_feature_spec(path, feat_settings)
    return sc, spec, rows, Reference(spec, rows, params), f"{RAW}.{tables['labels']}", rng


def _scale(sc: Scenario) -> float:
    return max(abs(a) for a in sc.amounts if a is not None)


def test_training_set_matches_the_reference_row_by_row(spark, feat_settings, scenario):
    sc, spec, rows, ref, labels, _ = scenario
    start, end = FIRST_DAY, FIRST_DAY + timedelta(days=DAYS - 1)
    got = training_set(spark, feat_settings, spec, labels, start, end).collect()
    names = [n for n, _ in feature_columns(spec)]
    want = sorted((tuple(lab["key"]), _text(lab["t"]), lab["label"]) for lab in rows["labels"])
    have = sorted((tuple(r[k] for k in sc.keys), _text(_us(str(r["event_time"]))), r["label"]) for r in got)
    assert have == want
    for r in got:
        key, t = tuple(r[k] for k in sc.keys), _us(str(r["event_time"]))
        _assert_same({n: r[n] for n in names}, ref.features(key, t), f"label {key} at {_text(t)}", _scale(sc))


def test_build_matches_the_reference_row_by_row(spark, feat_settings, scenario):
    sc, spec, rows, ref, _, rng = scenario
    dates = sorted(rng.sample([FIRST_DAY + timedelta(days=d) for d in range(3, DAYS - 1)], 3))
    # The first date alone stores the daily tiles. A backfill of the first two then reads them, and its later
    # days raw (it leaves their tiles to the night after it). All three, storing the tiles, reuse the stored
    # ones and read roll-ups: of 2 and 4 days (not the default 27, 9, 3), to fit these short windows.
    settings = feat_settings.model_copy(update={"features": feat_settings.features.model_copy(update={"rollup_days": (4, 2)})})
    storing = settings.model_copy(update={"features": settings.features.model_copy(update={"defer_backfill_state": False})})
    build_features(spark, settings, spec, dates[:1], compute_stats=False, today=date(2026, 12, 31))
    deferred = build_features(spark, settings, spec, dates[:2], compute_stats=False, today=date(2026, 12, 31))
    assert not any(deferred.state_rebuilt.values()) and not any(deferred.rollups_built.values())
    _assert_build_matches(spark, sc, spec, rows, ref, dates[:2])
    second = build_features(spark, storing, spec, dates, compute_stats=False, today=date(2026, 12, 31))
    assert any(second.rollups_read.values()), "the seeded scenarios each read a roll-up in their third build"
    _assert_build_matches(spark, sc, spec, rows, ref, dates)


def _assert_build_matches(spark, sc: Scenario, spec, rows: dict, ref: Reference, dates: list[date]) -> None:
    """The feature table's rows of ``dates``: the entities present and each value, as the reference has them."""
    table = spark.table(f"{FEATURES}.{spec.name}")
    names = [n for n, _ in feature_columns(spec)]
    keys = {r["key"] for s in ("tx", "web", "cust", "seg") for r in rows[s]}
    for day in dates:
        t = _us(f"{(day + timedelta(days=1)).isoformat()} 00:00:00")
        got = {tuple(r[k] for k in sc.keys): r for r in table.where(f"as_of_date = '{day.isoformat()}'").collect()}
        assert sorted(got) == sorted(k for k in keys if ref.present(k, t)), day
        for key, r in got.items():
            _assert_same({n: r[n] for n in names}, ref.features(key, t), f"{key} as of {day}", _scale(sc))
