"""Per-feature drift counted in Spark equals numpy on small data: a known shift gives a known PSI."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sparkml_ops.evaluation import PSI_EPSILON, feature_baseline, feature_psi
from sparkml_ops.transforms.drift import drift_tally, tally_counts, tap_drift

pytestmark = pytest.mark.spark

TRAIN = (np.arange(1000) + 0.5) / 1000  # 1000 values, ten quantile bins of 100 each


def _numpy_psi(expected: np.ndarray, actual: np.ndarray) -> float:
    e, a = np.maximum(expected, PSI_EPSILON), np.maximum(actual, PSI_EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


def _drift(spark, baseline, rows, schema):
    tally = drift_tally(spark, baseline)
    df = spark.createDataFrame(rows, schema)
    df.transform(tap_drift(tally, baseline, df.columns[0])).write.format("noop").mode("overwrite").save()
    return tally_counts(tally, baseline)


def test_a_shift_by_one_bin_gives_the_psi_computed_by_hand_and_by_numpy(spark):
    baseline = {"x": feature_baseline(TRAIN, "double")}
    assert baseline["x"]["shares"] == pytest.approx([0.1] * 10) and baseline["x"]["null_rate"] == 0.0
    shifted = TRAIN + 0.1  # every value moves up one bin: the first bin empties, the last doubles
    rows = [(float(v),) for v in shifted] + [(None,)] * 250
    counts = _drift(spark, baseline, rows, "x double")["x"]

    numpy_counts = np.bincount(np.searchsorted(baseline["x"]["edges"], shifted, side="right"), minlength=10)
    assert list(counts.counts) == numpy_counts.tolist() == [0] + [100] * 8 + [200]
    psi = feature_psi(baseline["x"], counts.counts)
    by_hand = (0.1 - PSI_EPSILON) * math.log(0.1 / PSI_EPSILON) + 0.1 * math.log(2)
    assert psi == pytest.approx(by_hand, rel=1e-9) == pytest.approx(_numpy_psi(np.full(10, 0.1), numpy_counts / 1000))
    assert round(psi, 4) == 0.7594
    assert (counts.rows, counts.present, counts.null_rate) == (1250, 1000, 0.2)
    assert (counts.min, counts.max) == pytest.approx((0.1005, 1.0995))
    assert counts.out_of_range == 100  # above the training max 0.9995


def test_the_same_distribution_has_zero_psi_and_no_value_out_of_range(spark):
    baseline = {"x": feature_baseline(TRAIN, "double")}
    counts = _drift(spark, baseline, [(float(v),) for v in TRAIN[::-1]], "x double")["x"]
    assert feature_psi(baseline["x"], counts.counts) == 0.0
    assert (counts.out_of_range, counts.null_rate) == (0, 0.0)


def test_categorical_shares_with_an_unseen_category(spark):
    train = ["a"] * 50 + ["b"] * 30 + ["c"] * 20
    baseline = {"segment": feature_baseline(train + [None] * 25, "string")}
    assert baseline["segment"] == {"type": "string", "rows": 125, "null_rate": 0.2, "kind": "categorical",
                                   "categories": ["a", "b", "c"], "shares": [0.5, 0.3, 0.2]}
    now = ["a"] * 20 + ["b"] * 30 + ["c"] * 30 + ["d"] * 20
    counts = _drift(spark, baseline, [(v,) for v in now], "segment string")["segment"]
    assert (counts.counts, counts.other, counts.out_of_range, counts.null_rate) == ((20, 30, 30), 20, 20, 0.0)
    expected = _numpy_psi(np.array([0.5, 0.3, 0.2, 0.0]), np.array([0.2, 0.3, 0.3, 0.2]))
    assert feature_psi(baseline["segment"], counts.counts, counts.other) == pytest.approx(expected)


def test_a_low_cardinality_integer_is_compared_by_category(spark):
    baseline = {"flag": feature_baseline([0] * 90 + [1] * 10, "int")}
    assert (baseline["flag"]["kind"], baseline["flag"]["categories"], baseline["flag"]["shares"]) == ("categorical", [0, 1], [0.9, 0.1])
    counts = _drift(spark, baseline, [(0,)] * 50 + [(1,)] * 50, "flag int")["flag"]
    assert counts.counts == (50, 50)
    assert feature_psi(baseline["flag"], counts.counts, counts.other) == pytest.approx(
        _numpy_psi(np.array([0.9, 0.1, 0.0]), np.array([0.5, 0.5, 0.0])))


def test_tapped_on_many_partitions_the_counts_are_exact_and_the_rows_unchanged(spark):
    baseline = {"x": feature_baseline(TRAIN, "double"), "segment": feature_baseline(["a"] * 60 + ["b"] * 40, "string")}
    rows = [(float(v), "abc"[i % 3]) for i, v in enumerate(TRAIN + 0.1)] + [(None, None)] * 250
    tally = drift_tally(spark, baseline)
    df = spark.createDataFrame(rows, "x double, segment string").repartition(4)
    out = df.transform(tap_drift(tally, baseline, "segment"))
    assert out.columns == ["x", "segment"] and sorted(out.collect(), key=str) == sorted(df.collect(), key=str)
    counts = tally_counts(tally, baseline)  # one pass over 4 partitions: each row counted once
    assert counts["x"].counts == (0, *[100] * 8, 200) and counts["x"].out_of_range == 100
    assert (counts["segment"].counts, counts["segment"].other, counts["segment"].present) == ((334, 333), 333, 1000)


def test_the_tap_counts_the_same_in_generated_code_and_interpreted(spark):
    baseline = {"x": feature_baseline(TRAIN, "double"), "segment": feature_baseline(["a"] * 60 + ["b"] * 40, "string")}
    rows = [(float(v), "abc"[i % 3]) for i, v in enumerate(TRAIN * 2 - 0.5)] + [(math.nan, None), (None, "a")]
    results = []
    for codegen in ("true", "false"):
        spark.conf.set("spark.sql.codegen.wholeStage", codegen)
        spark.conf.set("spark.sql.codegen.factoryMode", "CODEGEN_ONLY" if codegen == "true" else "NO_CODEGEN")
        try:
            results.append(_drift(spark, baseline, rows, "x double, segment string"))
        finally:
            spark.conf.unset("spark.sql.codegen.wholeStage")
            spark.conf.unset("spark.sql.codegen.factoryMode")
    generated, interpreted = results
    assert generated["x"].rows == interpreted["x"].rows == 1002
    assert {k: (v.counts, v.other, v.out_of_range, v.present) for k, v in generated.items()} == \
        {k: (v.counts, v.other, v.out_of_range, v.present) for k, v in interpreted.items()}
    assert generated["x"].min == interpreted["x"].min == pytest.approx(-0.499) and math.isnan(generated["x"].max) and math.isnan(interpreted["x"].max)


def test_values_on_the_edges_at_the_extremes_infinite_and_nan_fall_in_the_bins_numpy_gives(spark):
    baseline = {"x": feature_baseline(TRAIN, "double")}
    edges, low, high = baseline["x"]["edges"], baseline["x"]["min"], baseline["x"]["max"]
    finite = [low, high, *edges, 0.5, math.nextafter(low, -math.inf), math.nextafter(high, math.inf)]
    rows = [(v,) for v in [*finite, -math.inf, math.inf, math.nan]] + [(None,)] * 3
    counts = _drift(spark, baseline, rows, "x double")["x"]

    numpy_counts = np.bincount(np.searchsorted(edges, [*finite, -math.inf, math.inf], side="right"), minlength=10)
    numpy_counts[-1] += 1  # NaN is above every double in Spark, hence above the training max
    assert list(counts.counts) == numpy_counts.tolist()
    assert (counts.rows, counts.present, counts.out_of_range) == (len(rows), len(rows) - 3, 5)
    assert counts.min == -math.inf and math.isnan(counts.max)


def test_values_next_to_every_edge_and_random_values_fall_in_the_bins_numpy_gives(spark):
    # The tally finds most buckets by a value's grid cell; values one ulp either side of an edge, of the training
    # min and max, and many random ones must still land where an exact search puts them.
    rng = np.random.default_rng(7)
    train = rng.normal(size=5000)
    baseline = {"x": feature_baseline(train, "double")}
    edges, low, high = baseline["x"]["edges"], baseline["x"]["min"], baseline["x"]["max"]
    near = [w for e in [*edges, low, high] for w in (math.nextafter(e, -math.inf), e, math.nextafter(e, math.inf))]
    cell = (high - low) / 1024  # the tally's grid cell: values a cell or so outside the range take its outer slots
    outside = [low - k * cell for k in (0.5, 1, 1.5, 2, 3)] + [high + k * cell for k in (0.5, 1, 1.5, 2, 3)] + [-1e300, 1e300]
    # a cell is searched when an edge lies within a quarter cell of it: values either side of that margin
    around = [e + k * cell for e in [*edges, low, high] for k in (-1.3, -1.1, -0.3, -0.25, -0.2, 0.2, 0.25, 0.3, 1.1, 1.3)]
    values = [*near, *outside, *around, *rng.normal(scale=1.5, size=20000).tolist(), *rng.uniform(low, high, size=20000).tolist()]
    counts = _drift(spark, baseline, [(v,) for v in values], "x double")["x"]

    x = np.asarray(values)
    numpy_counts = np.bincount(np.searchsorted(edges, x, side="right"), minlength=len(edges) + 1)
    assert list(counts.counts) == numpy_counts.tolist()
    assert counts.out_of_range == int(np.sum((x < low) | (x > high)))
    assert (counts.min, counts.max) == (x.min(), x.max())
