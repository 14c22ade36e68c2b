"""The project's jar is compiled from its sources with javac and pyspark's jars, once, reproducibly; without it, drift and the feature pass say what to do."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

import pytest

from sparkml_ops.errors import EnvironmentCheckError
from sparkml_ops.jvm import JAR, JAR_NAME, build_jar


def test_build_jar_compiles_the_sources_reproducibly_and_skips_when_the_jar_is_newer(tmp_path):
    shutil.copytree(JAR.parent / "java", tmp_path / "java")
    jar = build_jar(tmp_path)
    assert jar == tmp_path / JAR_NAME
    with zipfile.ZipFile(jar) as zf:
        names = sorted(zf.namelist())
        assert ["sparkmlops/DriftTally.class", "sparkmlops/DriftTap.class", "sparkmlops/PartitionFiles.class", "sparkmlops/Sweep.class",
                "sparkmlops/SweepOperator.class", "sparkmlops/TileMerge.class"] == \
            [n for n in names if "$" not in n]
        assert all(n.startswith(("sparkmlops/Sweep$", "sparkmlops/SweepOperator$", "sparkmlops/TileMerge$")) for n in names if "$" in n)
        assert {info.date_time for info in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    first = jar.read_bytes()
    stamp = jar.stat().st_mtime_ns
    assert build_jar(tmp_path, javac="/nonexistent/javac") == jar  # up to date: javac is not even looked for
    assert jar.stat().st_mtime_ns == stamp
    jar.unlink()
    assert build_jar(tmp_path).read_bytes() == first


def test_build_jar_without_javac_says_what_to_install(tmp_path):
    shutil.copytree(JAR.parent / "java", tmp_path / "java")
    with pytest.raises(EnvironmentCheckError) as err:
        build_jar(tmp_path, javac="/nonexistent/javac")
    assert str(err.value) == (f"no '/nonexistent/javac' on PATH to compile {tmp_path / 'java'}. "
                              "Install a JDK 17, e.g. `apt-get install openjdk-17-jdk-headless`.")


@pytest.mark.spark
def test_a_session_without_the_jar_gets_one_clear_error_from_the_drift_tally_and_the_feature_pass(tmp_path):
    # A second SparkContext cannot live in the test process, hence a child process with a bare session.
    script = tmp_path / "nojar.py"
    script.write_text(
        "from pyspark.sql import SparkSession\n"
        "from sparkml_ops.errors import EnvironmentCheckError\n"
        "from sparkml_ops.transforms.drift import drift_tally\n"
        "spark = SparkSession.builder.master('local[1]').config('spark.ui.enabled', 'false').getOrCreate()\n"
        "try:\n"
        "    drift_tally(spark, {'x': {'edges': [1.0], 'min': 0.0, 'max': 2.0, 'shares': [0.5, 0.5]}})\n"
        "except EnvironmentCheckError as exc:\n"
        "    print('ERROR', exc)\n"
        "from pyspark.sql.types import StructType\n"
        "from sparkml_ops.transforms.sweep import SweepPlan\n"
        "from sparkml_ops.transforms.windows import window_features\n"
        "stream = spark.createDataFrame([('a', 0, 1, 0)], 'k string, _t bigint, _kind tinyint, _src smallint')\n"
        "try:\n"
        "    window_features(SweepPlan(('k',), (), (), ('d',), (('d', 1),)), StructType.fromDDL('k string, d string'))(stream)\n"
        "except EnvironmentCheckError as exc:\n"
        "    print('ERROR', exc)\n"
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    hint = ("Its jar (sparkml_ops/jvm) is built by scripts/setup and put on the classpath by the session factory: "
            "run scripts/setup. Under spark-submit in YARN cluster mode, the submit line must also carry "
            "--conf spark.driver.extraClassPath=./env/lib/python3.11/site-packages/sparkml_ops/jvm/sparkml-ops-jvm.jar (README).")
    assert proc.stdout.strip().splitlines() == [
        f"ERROR the Spark session cannot load sparkmlops.DriftTally, which counts per-feature drift. {hint}",
        f"ERROR the Spark session cannot load sparkmlops.Sweep, which computes window features. {hint}",
    ], proc.stderr[-2000:]
