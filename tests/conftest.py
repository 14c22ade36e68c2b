"""Shared fixtures: isolation from the developer's machine, and one local Spark session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "conf"


def pytest_sessionstart(session: pytest.Session) -> None:
    """Recompile the project's jar when its Java sources are newer (what scripts/setup does).

    Why here too: `pytest` run directly after an edit of sparkml_ops/jvm/java would otherwise test the
    stale jar, and pass or fail on code that is not the checkout's.
    """
    from sparkml_ops.jvm import build_jar

    if not hasattr(session.config, "workerinput"):  # once, in the controller, before workers start
        build_jar()


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep tests away from the real ~/.ssh, ~/.hdfscli.cfg, ~/.sparkml-ops and SPARKML_OPS_* variables."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    for name in list(os.environ):
        if name.startswith("SPARKML_OPS_") or name in ("HDFSCLI_CONFIG", "HDFSCLI_ALIAS"):
            monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture(scope="session")
def spark_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """State directory (Derby metastore, warehouse, registry) of the shared test session."""
    return tmp_path_factory.mktemp("spark-state")


@pytest.fixture(scope="session")
def local_settings(spark_state_dir: Path):
    """Settings of the embedded default, with state under the test's temp dir."""
    from sparkml_ops.config import load_settings

    return load_settings(
        "local",
        CONF_DIR,
        overrides=[
            f"state_dir={spark_state_dir}",
            "spark.master=local[2]",
            "spark.conf.spark.sql.shuffle.partitions=2",
            "spark.conf.spark.driver.memory=2g",
            "spark.conf.spark.default.parallelism=2",
        ],
        environ={k: v for k, v in os.environ.items() if k == "JAVA_HOME"},
    )


@pytest.fixture(scope="session")
def spark(local_settings) -> Iterator:
    """One local[2] SparkSession with Hive support for the whole run; stopped at teardown."""
    from sparkml_ops.io.spark import build_session

    session = build_session(local_settings, app_name="sparkml-ops-tests")
    yield session
    session.stop()


CLUSTER_STATE = REPO / ".state" / "cluster" / "cluster.json"


@pytest.fixture(scope="session")
def cluster() -> dict:
    """Connection facts of the local Hadoop/Hive cluster started by ``scripts/cluster start``.

    Integration tests must run, not skip: without a running cluster this fails with the command to run.
    Keys are written by scripts/cluster (see docs/cluster.md), e.g. ``webhdfs_url``, ``namenode_uri``,
    ``hdfs_user``, ``hadoop_conf_dir``, ``hiveserver2_host``, ``hiveserver2_port``, ``metastore_jdbc_url``.
    """
    import json

    if not CLUSTER_STATE.is_file():
        pytest.fail(f"the local cluster is not running ({CLUSTER_STATE} missing): start it with scripts/cluster start")
    facts = json.loads(CLUSTER_STATE.read_text())
    if facts.get("krb5_conf"):
        # The MIT Kerberos library of this process (gssapi) finds the test realm's KDC through this file.
        os.environ["KRB5_CONFIG"] = facts["krb5_conf"]
    return facts
