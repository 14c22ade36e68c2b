"""Batch scoring throughput, side by side in one run (issue 6's headline number).

(a) reference: one process, pyarrow record batches -> predict_proba -> ParquetWriter
(b) ours: ``run_scoring`` (Hive feature table in, Hive scores table out, registry model, local[2])
(c) MLflow ``spark_udf`` (mlflow-skinny, env_manager="local") on the same model and data
(d) the Spark floor: the transform (b) picks (JVM expression for LogisticRegression, else mapInArrow)
    straight to Parquet, with no Hive, checks, statistics or records
(e) the output floor: (d)'s transform and the scores table's output columns, one static-partition
    Hive insert, and nothing else: the least any job writing the documented output row must do

for LogisticRegression and HistGradientBoostingClassifier(max_iter=100), N rows x 20 float features.
Also: peak RSS of the whole process tree (driver JVM + Python workers) while (b) runs, for two sizes.

Usage:
    .venv/bin/pip install -e '.[bench]'                 # benchmark-only dependency (mlflow-skinny)
    .venv/bin/python benchmarks/scoring_throughput.py --rows 5000000 --memory-rows 5000000 50000000

Prints medians over --repeat runs and the ratios (b)/(a), (c)/(a).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FEATURES = [f"f{i:02d}" for i in range(20)]
DAY = date(2026, 1, 15)


def tree_rss_bytes(root_pid: int) -> int:
    """Resident memory of a process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                parts = fh.read().rsplit(")", 1)[1].split()
            children.setdefault(int(parts[1]), []).append(int(entry))
            rss[int(entry)] = int(parts[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


class PeakSampler:
    """Samples the process tree's RSS every 0.2 s; ``peak`` after ``stop``."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, tree_rss_bytes(os.getpid()))

    def __enter__(self) -> "PeakSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def make_table(spark, table: str, rows: int) -> None:
    from pyspark.sql import functions as F

    spark.sql(f"DROP TABLE IF EXISTS {table}")
    cols = ", ".join(f"{c} DOUBLE" for c in FEATURES)
    spark.sql(f"CREATE TABLE {table} (customer_id STRING, {cols}) PARTITIONED BY (as_of_date STRING) STORED AS PARQUET")
    df = spark.range(rows, numPartitions=max(2, rows // 1_000_000)).select(
        F.format_string("C%09d", F.col("id")).alias("customer_id"),
        *[F.randn(seed=i).alias(c) for i, c in enumerate(FEATURES)],
        F.lit(DAY.isoformat()).alias("as_of_date"),
    )
    df.write.insertInto(table, overwrite=True)


def train_models(n: int = 100_000):
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, len(FEATURES)))
    y = (X[:, 0] - 0.5 * X[:, 1] + 0.3 * X[:, 2] * X[:, 3] + rng.normal(scale=1.0, size=n) > 1.5).astype(int)
    import pandas as pd

    frame = pd.DataFrame(X, columns=FEATURES)
    return {
        "logreg": LogisticRegression(max_iter=200).fit(frame, y),
        "hgb": HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(frame, y),
    }


def bench_config(name: str, batch_size: int, score_type: str = "double"):
    """The model config (b) scores with; only its scoring section matters here."""
    from sparkml_ops.modelconfig import ModelConfig

    return ModelConfig.model_validate({"name": name, "feature_set": "bench_fs", "label_table": "x.y",
                                       "estimator": {"class": "sklearn.linear_model.LogisticRegression"},
                                       "scoring": {"threshold": 0.5, "arrow_batch_size": batch_size, "score_type": score_type}})


def reference_loop(model, files: list[str], out: Path, batch_size: int) -> float:
    """(a): the fastest honest single-process baseline."""
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq
    from threadpoolctl import threadpool_limits

    start = time.perf_counter()
    with threadpool_limits(1):
        dataset = ds.dataset(files, format="parquet")
        writer = None
        for batch in dataset.to_batches(columns=["customer_id", *FEATURES], batch_size=batch_size):
            scores = model.predict_proba(batch.select(FEATURES).to_pandas())[:, 1]
            table = pa.table({"customer_id": batch.column("customer_id"), "score": pa.array(scores)})
            writer = writer or pq.ParquetWriter(out, table.schema)
            writer.write_table(table)
        if writer:
            writer.close()
    return time.perf_counter() - start


def timed_floor(spark, model, table: str, write) -> float:
    """Seconds of (b)'s transform (JVM expression for LogisticRegression, else mapInArrow) on ``table``,
    with the scored frame handed to ``write``; nothing else of the job runs."""
    import hashlib

    import cloudpickle
    from pyspark.sql import functions as F

    from sparkml_ops.transforms.scoring import linear_score_transform, score_with_model

    blob = cloudpickle.dumps(model)
    broadcast = spark.sparkContext.broadcast(blob)
    start = time.perf_counter()
    transform = linear_score_transform(model, FEATURES, ["customer_id"]) or score_with_model(
        broadcast, hashlib.sha256(blob).hexdigest(), cloudpickle.loads, FEATURES, ["customer_id"])
    write(spark.table(table).where(F.col("as_of_date") == DAY.isoformat()).transform(transform))
    elapsed = time.perf_counter() - start
    broadcast.unpersist()
    return elapsed


def spark_floor(spark, model, table: str, out_dir: Path) -> float:
    """(d): the least Spark can do with (b)'s transform, Parquet out; no Hive insert, checks or stats."""
    return timed_floor(spark, model, table, lambda scored: scored.write.mode("overwrite").parquet(str(out_dir / "floor-out")))


def output_floor(spark, model, table: str, scores_table: str) -> float:
    """(e): (d) plus the scores table's columns into one Hive partition; no checks, stats or records."""
    from datetime import datetime

    from sparkml_ops.io.tables import insert_partitions
    from sparkml_ops.transforms.scoring import output_rows

    def write(scored) -> None:
        rows = scored.transform(output_rows(["customer_id"], 0.5, 1, "bench-output-floor", datetime(2026, 1, 15)))
        insert_partitions(rows, scores_table, {"score_date": DAY.isoformat(), "model_name": "bench_output_floor"})

    return timed_floor(spark, model, table, write)


def mlflow_udf(spark, model, table: str, out_dir: Path) -> float:
    """(c): MLflow's spark_udf on the same data, written as Parquet."""
    import mlflow.pyfunc
    import mlflow.sklearn
    from pyspark.sql import functions as F

    path = out_dir / f"mlflow-model-{id(model)}"
    if not path.exists():
        import pandas as pd
        from mlflow.models import infer_signature

        sample = pd.DataFrame([[0.0] * len(FEATURES)], columns=FEATURES)
        # With a signature, spark_udf names the pandas columns as in training (sklearn checks the names).
        mlflow.sklearn.save_model(model, str(path), serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
                                  signature=infer_signature(sample, model.predict_proba(sample)[:, 1]))
    udf = mlflow.pyfunc.spark_udf(spark, str(path), result_type="double", env_manager="local")
    start = time.perf_counter()
    df = spark.table(table).where(F.col("as_of_date") == DAY.isoformat())
    df.select("customer_id", udf(*FEATURES).alias("score")).write.mode("overwrite").parquet(str(out_dir / "mlflow-out"))
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark in a temporary state dir, removed afterwards (50M rows take ~8 GB)."""
    import shutil

    work = Path(tempfile.mkdtemp(prefix="bench-scoring-"))
    try:
        return _run(argv, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(argv: list[str] | None, work: Path) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=10_000, help="Arrow batch size for (a) and (b)")
    parser.add_argument("--memory-rows", type=int, nargs="*", default=[], help="sizes for the peak-memory comparison of (b)")
    parser.add_argument("--skip-mlflow", action="store_true")
    parser.add_argument("--models", nargs="+", choices=["logreg", "hgb"], default=["logreg", "hgb"])
    parser.add_argument("--knobs", action="store_true",
                        help="also time (b) for HGB with Arrow batch sizes 2k/10k/50k and float32 output, interleaved")
    args = parser.parse_args(argv)

    from sparkml_ops.config import load_settings
    from sparkml_ops.identifiers import ModelRef
    from sparkml_ops.io import ops_tables
    from sparkml_ops.io.spark import spark_session
    from sparkml_ops.registry import Provenance, Signature, open_registry
    from sparkml_ops.scoring import run_scoring

    settings = load_settings("local", REPO / "conf", [f"state_dir={work}", "spark.master=local[2]",
                                                      "spark.conf.spark.driver.memory=4g",
                                                      "spark.conf.spark.sql.shuffle.partitions=2"],
                             {k: v for k, v in os.environ.items() if k == "JAVA_HOME"})
    prov = Provenance(user="bench", host="bench")
    models = train_models()
    registry = open_registry(settings)
    sig = Signature(inputs=[(c, "double") for c in FEATURES], outputs=[("score", "double")])
    published = {name: registry.publish(f"bench_{name}", m, flavor="sklearn", provenance=prov, signature=sig,
                                        lineage={"feature_set": "bench_fs", "entity_keys": ["customer_id"]})
                 for name, m in models.items()}
    refs = {name: ModelRef(mv.name, version=mv.version) for name, mv in published.items()}
    results: dict[str, dict[str, list[float]]] = {}
    with spark_session(settings, app_name="bench-scoring") as spark:
        spark.sql("CREATE DATABASE IF NOT EXISTS ml_features")
        table = "ml_features.bench_fs"
        print(f"# {args.rows} rows x {len(FEATURES)} features, local[2], batch {args.batch_size}, {date.today()}", flush=True)
        make_table(spark, table, args.rows)
        scores_table = ops_tables.ensure_scores_table(spark, settings.hive.databases.scores)
        part = work / "warehouse" / "ml_features.db" / "bench_fs" / f"as_of_date={DAY.isoformat()}"
        files = sorted(str(p) for p in part.glob("part-*"))
        for name, model in ((n, models[n]) for n in args.models):
            config = bench_config(f"bench_{name}", args.batch_size)
            times = results.setdefault(name, {"a": [], "b": [], "c": [], "d": [], "e": []})
            for _ in range(args.repeat):
                times["a"].append(reference_loop(model, files, work / "ref.parquet", args.batch_size))
                start = time.perf_counter()
                run_scoring(spark, settings, config, refs[name], [DAY], prov)
                times["b"].append(time.perf_counter() - start)
                if not args.skip_mlflow:
                    times["c"].append(mlflow_udf(spark, model, table, work))
                times["d"].append(spark_floor(spark, model, table, work))
                times["e"].append(output_floor(spark, model, table, scores_table))
                print(f"{name}: " + " ".join(f"{k}={v[-1]:.1f}s" for k, v in times.items() if v), flush=True)
        print("\n| model | (a) reference rows/s | (b) ours rows/s | (c) MLflow rows/s | (d) Spark floor rows/s "
              "| (e) output floor rows/s | (b)/(a) | (c)/(a) | (d)/(a) | (e)/(a) |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for name, t in results.items():
            med = {k: statistics.median(v) if v else float("nan") for k, v in t.items()}
            rate = {k: args.rows / v for k, v in med.items()}
            print(f"| {name} | " + " | ".join(f"{rate[k]:,.0f}" for k in "abcde") + " | "
                  + " | ".join(f"{rate[k] / rate['a']:.2f}" for k in "bcde") + " |")

        if args.knobs:
            variants = [(2_000, "double"), (10_000, "double"), (50_000, "double"), (10_000, "float")]
            knob_times: dict[tuple[int, str], list[float]] = {v: [] for v in variants}
            for _ in range(args.repeat):
                for batch, score_type in variants:  # interleaved, so drifting machine load hits all alike
                    config = bench_config("bench_hgb", batch, score_type)
                    start = time.perf_counter()
                    run_scoring(spark, settings, config, refs["hgb"], [DAY], prov)
                    knob_times[(batch, score_type)].append(time.perf_counter() - start)
            base = statistics.median(knob_times[(10_000, "double")])
            print("\n| (b) HGB knob | median s | rows/s | vs batch 10k double |")
            print("|---|---|---|---|")
            for (batch, score_type), t in knob_times.items():
                med = statistics.median(t)
                print(f"| batch {batch:,}, {score_type} | {med:.1f} | {args.rows / med:,.0f} | {base / med:.2f} |")

        if args.memory_rows:
            print("\n| rows | (b) wall s | peak RSS of driver JVM + Python workers (MiB) |")
            print("|---|---|---|")
            config = bench_config("bench_hgb", args.batch_size)
            for rows in args.memory_rows:
                make_table(spark, table, rows)
                with PeakSampler() as sampler:
                    start = time.perf_counter()
                    run_scoring(spark, settings, config, refs["hgb"], [DAY], prov)
                    wall = time.perf_counter() - start
                print(f"| {rows:,} | {wall:.1f} | {sampler.peak / 2**20:,.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
