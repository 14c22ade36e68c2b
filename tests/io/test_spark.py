"""The session factory: Hive support on Derby under the state dir, small-machine defaults, Java checks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sparkml_ops.errors import EnvironmentCheckError
from sparkml_ops.io.spark import check_java, session_conf

from tests.conftest import CONF_DIR, REPO

pytestmark = pytest.mark.spark


def test_hive_table_round_trip_lives_under_state_dir(spark, spark_state_dir: Path):
    spark.sql("CREATE DATABASE IF NOT EXISTS t_found")
    spark.sql("CREATE TABLE t_found.events (id BIGINT, amount DOUBLE) PARTITIONED BY (ds STRING) STORED AS PARQUET")
    spark.sql("INSERT INTO t_found.events PARTITION (ds='2026-01-01') VALUES (1, 10.5), (2, 20.0)")
    rows = spark.sql("SELECT id, amount, ds FROM t_found.events ORDER BY id").collect()
    assert [tuple(r) for r in rows] == [(1, 10.5, "2026-01-01"), (2, 20.0, "2026-01-01")]
    assert (spark_state_dir / "metastore_db").is_dir()
    assert (spark_state_dir / "warehouse" / "t_found.db" / "events" / "ds=2026-01-01").is_dir()
    assert spark.catalog.getTable("t_found.events").tableType == "MANAGED"


def test_nothing_is_written_to_the_working_directory(spark):
    assert not (Path.cwd() / "metastore_db").exists()
    assert not (Path.cwd() / "spark-warehouse").exists()
    assert not (Path.cwd() / "derby.log").exists()


def test_hive_local_dirs_are_under_the_state_dir_not_tmp(spark, spark_state_dir: Path):
    spark.sql("CREATE DATABASE IF NOT EXISTS t_found")
    assert list((spark_state_dir / "hive").glob("*_resources"))
    conf = spark.sparkContext.getConf()
    for key in ("spark.hadoop.hive.downloaded.resources.dir", "spark.hadoop.hive.exec.local.scratchdir"):
        assert conf.get(key).startswith(str(spark_state_dir))


def test_session_is_utc_arrow_enabled_and_python_workers_use_driver_interpreter(spark):
    conf = spark.sparkContext.getConf()
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert spark.conf.get("spark.sql.execution.arrow.pyspark.enabled") == "true"
    assert spark.conf.get("spark.sql.sources.partitionOverwriteMode") == "dynamic"
    assert conf.get("spark.ui.enabled") == "false"
    # A Python UDF reports the interpreter the worker really runs.
    exe = spark.range(1).rdd.map(lambda _: sys.executable).collect()[0]
    assert exe == sys.executable


def test_dynamic_partition_overwrite_replaces_only_the_rerun_partition(spark):
    spark.sql("CREATE TABLE IF NOT EXISTS t_found.scores (id BIGINT, s DOUBLE) PARTITIONED BY (ds STRING) STORED AS PARQUET")
    first = spark.createDataFrame([(1, 0.1, "2026-01-01"), (2, 0.2, "2026-01-02")], "id long, s double, ds string")
    first.select("id", "s", "ds").write.insertInto("t_found.scores", overwrite=True)
    rerun = spark.createDataFrame([(3, 0.3, "2026-01-02")], "id long, s double, ds string")
    rerun.select("id", "s", "ds").write.insertInto("t_found.scores", overwrite=True)
    rows = spark.sql("SELECT id, ds FROM t_found.scores ORDER BY id").collect()
    assert [tuple(r) for r in rows] == [(1, "2026-01-01"), (3, "2026-01-02")]


def test_session_conf_for_shared_jdbc_metastore_turns_off_autocreate_and_puts_driver_on_classpath(local_settings):
    settings = local_settings.model_copy(
        update={
            "hive": local_settings.hive.model_copy(
                update={"metastore": "jdbc", "jdbc_url": "jdbc:postgresql://db:5432/hms", "jdbc_driver_jar": "/usr/share/java/postgresql.jar"}
            )
        }
    )
    conf = session_conf(settings)
    assert conf["spark.hadoop.datanucleus.schema.autoCreateAll"] == "false"
    assert conf["spark.driver.extraClassPath"] == "/usr/share/java/postgresql.jar"
    assert conf["spark.hadoop.javax.jdo.option.ConnectionURL"] == "jdbc:postgresql://db:5432/hms"
    assert "derby" not in conf.get("spark.driver.extraJavaOptions", "")


def test_user_spark_conf_wins_over_factory_defaults(local_settings):
    settings = local_settings.model_copy(
        update={"spark": local_settings.spark.model_copy(update={"conf": {"spark.sql.session.timeZone": "Europe/Paris", "spark.driver.extraJavaOptions": "-Dfoo=1"}})}
    )
    conf = session_conf(settings)
    assert conf["spark.sql.session.timeZone"] == "Europe/Paris"
    assert conf["spark.driver.extraJavaOptions"].endswith(" -Dfoo=1")
    assert "-Dderby.system.home=" in conf["spark.driver.extraJavaOptions"]


def test_check_java_accepts_the_installed_jdk():
    info = check_java(os.environ.get("JAVA_HOME"))
    assert info.major >= 17


def test_check_java_without_any_java_says_what_to_install(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(EnvironmentCheckError) as err:
        check_java(None)
    assert str(err.value).startswith("Java is not installed: no `java` on PATH and no JAVA_HOME. Install a Java 17")


def test_check_java_with_bad_java_home(tmp_path):
    with pytest.raises(EnvironmentCheckError, match=r"has no bin/java\. Install a Java 17"):
        check_java(str(tmp_path))


def test_check_java_refuses_java_8(tmp_path):
    # Stand-in: no Java 8 can be installed next to the JDK 17 here, so a script prints Java 8's banner.
    fake = tmp_path / "bin" / "java"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\necho \'openjdk version "1.8.0_392"\' >&2\n')
    fake.chmod(0o755)
    with pytest.raises(EnvironmentCheckError, match=r"is Java 8; Spark 4 needs Java 17 or newer"):
        check_java(str(tmp_path))


def test_second_application_on_busy_derby_metastore_gets_exit_6(spark, spark_state_dir):
    # The fixture's session holds the embedded Derby database; a second JVM cannot boot it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKML_OPS_")}
    proc = subprocess.run(
        [sys.executable, "-m", "sparkml_ops.cli", "--conf-dir", str(CONF_DIR), "--set", f"state_dir={spark_state_dir}",
         "--set", "spark.master=local[1]", "sql", "SHOW DATABASES"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=300,
    )
    assert proc.returncode == 6, proc.stderr[-2000:]
    assert f"the embedded Derby metastore {spark_state_dir / 'metastore_db'} is in use by another process." in proc.stderr


def test_session_conf_ships_the_project_jar_with_spark_jars_before_the_user_jars(local_settings):
    from sparkml_ops.jvm import JAR

    settings = local_settings.model_copy(
        update={"spark": local_settings.spark.model_copy(update={"conf": {"spark.jars": "/opt/extra.jar"}})}
    )
    assert JAR.is_file(), "scripts/setup builds the jar"
    assert session_conf(settings)["spark.jars"] == f"{JAR},/opt/extra.jar"
