"""Fixtures over the running test cluster (``scripts/cluster start``); facts come from the ``cluster`` fixture."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def cluster_env(cluster: dict, tmp_path_factory) -> dict[str, str]:
    """Environment of a subprocess that talks to the cluster: what `scripts/cluster env` exports, from the facts.

    On the secure cluster it also holds a ticket of the jobs' principal (svc-sparkml), in a cache of
    this test session (KRB5CCNAME), as a user who ran `kinit` would have.
    """
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SPARKML_OPS_", "HADOOP_", "YARN_", "KRB5", "SPARK_SUBMIT_OPTS"))}
    env.update(
        HADOOP_CONF_DIR=cluster["hadoop_conf_dir"],
        YARN_CONF_DIR=cluster["hadoop_conf_dir"],
        PYSPARK_PYTHON=cluster.get("pyspark_python", sys.executable),
        SPARK_LOCAL_IP=cluster["hiveserver2_host"],
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    if cluster.get("java_home"):
        env["JAVA_HOME"] = cluster["java_home"]
    if cluster.get("security") == "kerberos":
        cache = tmp_path_factory.mktemp("krb5") / "ccache"
        env.update(KRB5_CONFIG=cluster["krb5_conf"], KRB5CCNAME=f"FILE:{cache}",
                   SPARK_SUBMIT_OPTS=krb5_java_opt(cluster), SPARK_BEELINE_OPTS=krb5_java_opt(cluster))
        subprocess.run(["kinit", "-k", "-t", cluster["job_keytab"], cluster["job_principal"]],
                       env=env, check=True, capture_output=True, timeout=60)
    return env


def krb5_java_opt(cluster: dict) -> str:
    """The JVM option that points Java's Kerberos at the test realm's krb5.conf (empty on the simple cluster)."""
    return f"-Djava.security.krb5.conf={cluster['krb5_conf']}" if cluster.get("krb5_conf") else ""


def kerberos_submit_args(cluster: dict, who: str = "job") -> list[str]:
    """spark-submit arguments of a job on the secure cluster: its keytab login and the realm's krb5.conf for
    the YARN containers (a real cluster has /etc/krb5.conf on every node instead). Empty on the simple cluster.

    Args:
        cluster: the cluster's facts.
        who: whose principal and keytab (the facts' ``<who>_principal``/``<who>_keytab``: "job", "short"); ""
            for no keytab login, so the job lives on the tokens spark-submit obtains with the caller's ticket.
    """
    if cluster.get("security") != "kerberos":
        return []
    opt = krb5_java_opt(cluster)
    login = ["--principal", cluster[f"{who}_principal"], "--keytab", cluster[f"{who}_keytab"]] if who else []
    return [*login, "--conf", f"spark.driver.extraJavaOptions={opt}", "--conf", f"spark.executor.extraJavaOptions={opt}",
            "--conf", f"spark.yarn.am.extraJavaOptions={opt}"]


def am_container_file(cluster: dict, app_id: str, name: str) -> str:
    """File ``name`` (stderr, stdout, launch_container.sh) of the application's first container, its
    ApplicationMaster, from the NodeManager's log dir; "" if that container never started."""
    root = Path(cluster["state_dir"], "yarn")
    return "".join(path.read_text(errors="replace") for path in root.glob(f"**/yarn-logDir-nm-*/{app_id}/container_*_000001/{name}"))


@pytest.fixture(scope="session")
def hdfs_client(cluster: dict):
    """A WebHDFS client as the framework's HDFS user (svc-sparkml from its keytab on the secure cluster)."""
    from sparkml_ops.config import RegistrySettings
    from sparkml_ops.io.storage import open_storage

    from tests.registry.backends import cluster_auth

    return open_storage(RegistrySettings(uri=cluster["webhdfs_url"].replace("http://", "webhdfs://") + "/",
                                         auth=cluster_auth(cluster))).client


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


def hive_connection(cluster: dict, username: str = "sparkml"):
    """A PyHive connection to the Thrift server: Kerberos (the ticket in KRB5CCNAME) on the secure cluster."""
    from pyhive import hive

    host, port = cluster["hiveserver2_host"], cluster["hiveserver2_port"]
    if cluster.get("hiveserver2_auth") == "KERBEROS":
        return hive.connect(host, port=port, auth="KERBEROS", kerberos_service_name="hive")
    return hive.connect(host, port=port, auth="NOSASL", username=username)
