"""Shared set-up of the feature-engine benchmarks: settings, demo data sets, timing, peak memory.

Each data set is generated once by ``sparkml-ops demo-data`` code into its own raw database of the
benchmark's state directory and reused by later runs (a table with the expected row count is kept).
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sparkml_ops.config import load_settings  # noqa: E402
from sparkml_ops.demo import demo_params, generate_demo_data  # noqa: E402

START = date(2026, 1, 1)


def settings_for(state_dir: Path, raw: str, master: str = "local[2]", driver_memory: str = "6g", partitions: int = 8):
    """Settings of a benchmark: its own state dir (Derby + warehouse), ``raw`` as the raw database."""
    overrides = [f"state_dir={state_dir}", f"spark.master={master}", f"spark.conf.spark.driver.memory={driver_memory}",
                 f"spark.conf.spark.sql.shuffle.partitions={partitions}", "logging.level=WARNING",
                 f"hive.databases.raw={raw}", "hive.databases.features=bench_features", "hive.databases.ops=bench_ops"]
    return load_settings("local", REPO / "conf", overrides, {k: v for k, v in os.environ.items() if k == "JAVA_HOME"})


def ensure_demo_data(spark, settings, days: int, customers: int, tx_per_day: int) -> bool:
    """Generate the demo tables unless they hold ``days * tx_per_day`` transactions already; True if generated."""
    table = f"{settings.hive.databases.raw}.card_transactions"
    if spark.catalog.tableExists(table) and spark.table(table).count() == days * tx_per_day:
        return False
    t0 = time.perf_counter()
    generate_demo_data(spark, settings, demo_params(START, days=days, customers=customers, tx_per_day=tx_per_day, seed=7))
    print(f"generated {days * tx_per_day:,} transactions into {table} in {time.perf_counter() - t0:.0f} s", flush=True)
    return True


def timed(label: str, func: Callable[[], object], runs: int) -> list[float]:
    """Run ``func`` ``runs`` times; print and return the seconds of each run."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        func()
        times.append(time.perf_counter() - t0)
        print(f"  {label}: {times[-1]:.1f} s", flush=True)
    return times


def median(values: list[float]) -> float:
    """The median (the value itself for one run)."""
    return statistics.median(values)


def noop(df) -> None:
    """Compute ``df`` completely and write it nowhere (Spark's ``noop`` sink)."""
    df.write.format("noop").mode("overwrite").save()


def peak_rss_mb(spark) -> tuple[float, float]:
    """(this Python driver's peak RSS, the driver JVM's peak RSS) in MB, from getrusage and /proc VmHWM."""
    python = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
    status = Path(f"/proc/{pid}/status").read_text()
    jvm = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM")) / 1024
    return python, jvm
