"""Per-feature drift in the score job: wall time with drift on vs off, side by side (issue 14's budget: <= +15%).

The score job (``run_scoring``: Hive feature table in, scores table out, statistics, records) runs on N rows
x 40 float features with a model whose manifest carries a per-feature baseline (10 quantile bins each),
alternately with ``scoring.feature_drift`` on and off, for LogisticRegression (scored in the JVM, the
cheapest job, so the largest relative cost) and HistGradientBoostingClassifier (Python workers).

Usage:
    .venv/bin/python benchmarks/feature_drift.py --rows 5000000 --repeat 3 [--models logreg hgb]

Prints each run's seconds, the medians and the median of the per-run ratios on/off per model. With --floor,
a third contender is timed in the same rotation: the job with drift on but counted by
``sparkmlops.bench.FloorTally`` (benchmarks/jvm, built here), which is handed every value by the same tap and
only adds it to a sum: no bucket, min, max or NaN count. Every exact drift count does at least that much, so
this job is the floor of the job with drift, and on/floor says how far drift is from it. Then it times five passes over the same rows into Spark's ``noop`` sink (no Hive write, no statistics), alternating:
the logistic score alone, the score under an observation of one ``count(*)`` (the fixed cost of a plan node
that sees every row: what the drift counting cost when it was an observation), the score under an observation
that merely sums the 40 features, the score with the floor tap, and the score with the drift tap (buckets, NULLs, min, max per feature,
counted in the stage's generated code), i.e. what drift costs the pass itself.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FEATURES = [f"f{i:02d}" for i in range(40)]
DAY = date(2026, 1, 15)
FEATURE_SET = "drift_bench_fs"


def make_table(spark, table: str, rows: int) -> None:
    """N rows of 40 standard-normal features, as one as_of_date partition.

    No NULLs: the models refuse a NULL feature, as the score job does with real data.
    """
    from pyspark.sql import functions as F

    spark.sql(f"DROP TABLE IF EXISTS {table}")
    cols = ", ".join(f"{c} DOUBLE" for c in FEATURES)
    spark.sql(f"CREATE TABLE {table} (customer_id STRING, {cols}) PARTITIONED BY (as_of_date STRING) STORED AS PARQUET")
    values = [F.randn(seed=i) + (0.2 if i % 10 == 0 else 0.0) for i in range(len(FEATURES))]  # a few drift a little
    df = spark.range(rows, numPartitions=max(2, rows // 1_000_000)).select(
        F.format_string("C%09d", F.col("id")).alias("customer_id"), *[v.alias(c) for v, c in zip(values, FEATURES)],
        F.lit(DAY.isoformat()).alias("as_of_date"))
    df.write.insertInto(table, overwrite=True)


def publish_models(settings, models: list[str], n: int = 100_000) -> tuple[dict, dict, dict]:
    """LogisticRegression and HGB on 40 features with score and per-feature baselines: refs, fitted models, the feature baseline."""
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    from sparkml_ops.evaluation import feature_baseline, score_baseline
    from sparkml_ops.registry import Provenance, Signature, open_registry

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(n, len(FEATURES))), columns=FEATURES)
    y = (X["f00"] - 0.5 * X["f01"] + 0.3 * X["f02"] * X["f03"] + rng.normal(scale=1.0, size=n) > 1.5).astype(int)
    registry, refs, fitted = open_registry(settings), {}, {}
    baseline = {c: feature_baseline(X[c], "double") for c in FEATURES}
    candidates = {"logreg": LogisticRegression(max_iter=200), "hgb": HistGradientBoostingClassifier(max_iter=100, random_state=0)}
    for name, model in ((f"drift_bench_{key}", candidates[key]) for key in models):
        model.fit(X, y)
        mv = registry.publish(name, model, flavor="sklearn", provenance=Provenance(user="bench", host="bench"),
                              signature=Signature(inputs=[(c, "double") for c in FEATURES], outputs=[("score", "double")]),
                              lineage={"feature_set": FEATURE_SET, "entity_keys": ["customer_id"]},
                              extra={"baseline": score_baseline(model.predict_proba(X)[:, 1]), "feature_baseline": baseline})
        refs[name], fitted[name] = mv.ref, model
    return refs, fitted, baseline


def config(name: str, drift: bool):
    """The model config of a run: only the scoring section matters; drift on or off."""
    from sparkml_ops.modelconfig import ModelConfig

    return ModelConfig.model_validate({"name": name, "feature_set": FEATURE_SET, "label_table": "x.y",
                                       "estimator": {"class": "sklearn.linear_model.LogisticRegression"},
                                       "scoring": {"threshold": 0.5, "feature_drift": drift}})


@contextlib.contextmanager
def floor_tally(spark):
    """Within: the score job counts drift into ``sparkmlops.bench.FloorTally`` (the least an exact count must do).

    The job is otherwise unchanged: the same tap in the same stage, and the drift rows it writes are those of
    the last job with the real tally (its counts are kept), so only the counting itself differs.
    """
    import sparkml_ops.scoring as scoring

    real_tally, real_counts = scoring.drift_tally, scoring.tally_counts
    scoring.drift_tally = register_floor_tally
    scoring.tally_counts = lambda tally, baseline: _KEPT[tuple(baseline)]
    try:
        yield
    finally:
        scoring.drift_tally, scoring.tally_counts = real_tally, real_counts


_KEPT: dict[tuple, dict] = {}


def register_floor_tally(spark, baseline: dict):
    """A new ``sparkmlops.bench.FloorTally`` for ``baseline``'s features (what ``drift_tally`` is for the real one)."""
    return spark.sparkContext._jvm.sparkmlops.bench.FloorTally.register(spark.sparkContext._jsc.sc(), len(baseline))


def keep_counts() -> None:
    """Remember the real tally's counts per feature list, for :func:`floor_tally`."""
    import sparkml_ops.scoring as scoring

    real = scoring.tally_counts

    def counting(tally, baseline):
        _KEPT[tuple(baseline)] = real(tally, baseline)
        return _KEPT[tuple(baseline)]

    scoring.tally_counts = counting


def floor(spark, table: str, model, baseline: dict, repeat: int) -> None:
    """Noop-sink passes: score alone, under an observation of count(*), of 40 sums, with the drift tap; prints the medians."""
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    from sparkml_ops.transforms.drift import drift_tally, tap_drift
    from sparkml_ops.transforms.scoring import linear_score_transform

    passes = {
        "score": lambda df: df.transform(linear_score_transform(model, FEATURES, ["customer_id"])),
        "score+count(*)": lambda df: df.observe(Observation(), F.count(F.lit(1))).transform(
            linear_score_transform(model, FEATURES, ["customer_id"])),
        "score+40 sums": lambda df: df.observe(Observation(), *[F.sum(c) for c in FEATURES]).transform(
            linear_score_transform(model, FEATURES, ["customer_id"])),
        "score+floor tap": lambda df: df.transform(tap_drift(register_floor_tally(spark, baseline), baseline, "customer_id")).transform(
            linear_score_transform(model, FEATURES, ["customer_id"])),
        "score+drift tap": lambda df: df.transform(tap_drift(drift_tally(spark, baseline), baseline, "customer_id")).transform(
            linear_score_transform(model, FEATURES, ["customer_id"])),
    }
    times: dict[str, list[float]] = {k: [] for k in passes}
    for i in range(repeat):
        for name in (list(passes) if i % 2 == 0 else list(passes)[::-1]):
            start = time.perf_counter()
            passes[name](spark.table(table).where(F.col("as_of_date") == DAY.isoformat())).write.format("noop").mode("overwrite").save()
            times[name].append(time.perf_counter() - start)
        print(f"floor run {i + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items())
              + f", load {os.getloadavg()[0]:.1f}", flush=True)
    base = statistics.median(times["score"])
    print("floor medians: " + ", ".join(f"{k} {statistics.median(v):.1f} s (+{statistics.median(v) - base:.1f} s)"
                                        for k, v in times.items()), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--models", nargs="+", choices=["logreg", "hgb"], default=["logreg", "hgb"],
                        help="which models to time (logreg, scored in the JVM, is the worst case)")
    parser.add_argument("--floor", action="store_true",
                        help="also time the job with the floor tally (sparkmlops.bench.FloorTally), then noop-sink passes: score "
                             "alone, + an observation of count(*), of 40 sums, + the floor tap, + the drift tap (needs logreg)")
    args = parser.parse_args()

    state = Path(tempfile.mkdtemp(prefix="drift-bench-"))
    try:
        run(args, state)
    finally:
        # 1.6 GB per run: never leave it behind, even when the run is interrupted.
        shutil.rmtree(state, ignore_errors=True)


def run(args, state: Path) -> None:
    from sparkml_ops.config import load_settings
    from sparkml_ops.identifiers import parse_ref
    from sparkml_ops.io.hive import ensure_databases
    from sparkml_ops.io.spark import build_session
    from sparkml_ops.registry import Provenance
    from sparkml_ops.scoring import run_scoring

    from sparkml_ops.jvm import build_jar

    bench_jar = build_jar(REPO / "benchmarks" / "jvm", classpath=[build_jar()], name="sparkml-ops-bench.jar")  # sparkmlops.bench.FloorTally
    keep_counts()
    settings = load_settings("local", REPO / "conf", overrides=[f"state_dir={state}", "spark.master=local[2]",
                                                                 f"spark.conf.spark.jars={bench_jar}",
                                                                 "spark.conf.spark.driver.memory=6g",
                                                                 "spark.conf.spark.sql.shuffle.partitions=4"],
                             environ={k: v for k, v in os.environ.items() if k == "JAVA_HOME"})
    spark = build_session(settings, app_name="bench-feature-drift")
    ensure_databases(spark, settings.hive.databases)
    make_table(spark, f"{settings.hive.databases.features}.{FEATURE_SET}", args.rows)
    refs, fitted, baseline = publish_models(settings, args.models)
    prov = Provenance(user="bench", host="bench")
    print(f"{args.rows} rows x {len(FEATURES)} features, local[2], {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    contenders = ["on", "off"] + (["floor"] if args.floor else [])
    for name, ref in refs.items():
        times: dict[str, list[float]] = {c: [] for c in contenders}
        run_scoring(spark, settings, config(name, True), parse_ref(ref), [DAY], prov)  # warm-up (JIT, caches), counts kept
        for i in range(args.repeat):
            for c in contenders[i % len(contenders):] + contenders[:i % len(contenders)]:  # rotate the order
                with floor_tally(spark) if c == "floor" else contextlib.nullcontext():
                    start = time.perf_counter()
                    result = run_scoring(spark, settings, config(name, c != "off"), parse_ref(ref), [DAY], prov)
                    times[c].append(time.perf_counter() - start)
                assert result.rows_out == args.rows
            print(f"{name} run {i + 1}: " + ", ".join(f"{c} {times[c][-1]:.1f} s" for c in contenders)
                  + f", on/off {times['on'][-1] / times['off'][-1]:.3f}, load {os.getloadavg()[0]:.1f}", flush=True)
        ratio = statistics.median(on / off for on, off in zip(times["on"], times["off"]))
        print(f"{name}: medians " + " / ".join(f"{c} {statistics.median(times[c]):.1f} s" for c in contenders)
              + f"; median of per-run ratios on/off {ratio:.3f} (+{100 * (ratio - 1):.1f}%, target <= +15%)", flush=True)
        if args.floor:
            fl = statistics.median(f / off for f, off in zip(times["floor"], times["off"]))
            over = statistics.median(on / f for on, f in zip(times["on"], times["floor"]))
            print(f"{name}: floor/off {fl:.3f} (+{100 * (fl - 1):.1f}%); on/floor {over:.3f} (within 15% of the floor: "
                  f"{'yes' if over <= 1.15 else 'no'})", flush=True)
    if args.floor and "drift_bench_logreg" in fitted:
        floor(spark, f"{settings.hive.databases.features}.{FEATURE_SET}", fitted["drift_bench_logreg"], baseline, args.repeat)
    spark.stop()


if __name__ == "__main__":
    main()
