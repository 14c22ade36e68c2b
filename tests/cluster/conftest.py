"""Fixtures over the running test cluster (``scripts/cluster start``); facts come from the ``cluster`` fixture."""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def cluster_env(cluster: dict) -> dict[str, str]:
    """Environment of a subprocess that talks to the cluster: what `scripts/cluster env` exports, from the facts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARKML_OPS_", "HADOOP_", "YARN_"))}
    env.update(
        HADOOP_CONF_DIR=cluster["hadoop_conf_dir"],
        YARN_CONF_DIR=cluster["hadoop_conf_dir"],
        PYSPARK_PYTHON=cluster.get("pyspark_python", sys.executable),
        SPARK_LOCAL_IP=cluster["hiveserver2_host"],
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    if cluster.get("java_home"):
        env["JAVA_HOME"] = cluster["java_home"]
    return env


@pytest.fixture(scope="session")
def hdfs_client(cluster: dict):
    """A WebHDFS client as the framework's HDFS user."""
    from hdfs import InsecureClient

    return InsecureClient(cluster["webhdfs_url"], user=cluster["hdfs_user"])


@pytest.fixture()
def hdfs_dir(hdfs_client) -> Iterator[str]:
    """A fresh HDFS directory for one test, removed afterwards."""
    path = f"/tmp/sparkml-ops-tests/{uuid.uuid4().hex[:12]}"
    hdfs_client.makedirs(path)
    yield path
    hdfs_client.delete(path, recursive=True)


@pytest.fixture(scope="session")
def spark_submit(cluster: dict) -> str:
    """The wheel's spark-submit."""
    path = Path(cluster.get("spark_home") or "") / "bin" / "spark-submit"
    return str(path) if path.is_file() else shutil.which("spark-submit") or "spark-submit"
