"""Spark on YARN with the shared PostgreSQL metastore: one catalog for several applications and the Thrift server.

Each Spark application is a separate process built by our session factory from conf/cluster.yaml
(tests/cluster/spark_app.py), as a job on the cluster would be.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.cluster.conftest import REPO, hive_connection

pytestmark = pytest.mark.cluster

APP = Path(__file__).with_name("spark_app.py")
EXPECTED = [[1, "a", "2026-01-01"], [2, "b", "2026-01-01"], [3, "c", "2026-01-02"]]


def run_app(env: dict, state_dir: Path, action: str, table: str, hdfs_uri: str) -> dict:
    proc = subprocess.run(
        [sys.executable, str(APP), str(state_dir), action, table, hdfs_uri],
        env=env, capture_output=True, text=True, timeout=900, check=False,
    )
    assert proc.returncode == 0, f"spark app '{action}' failed:\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def shared_table(cluster, cluster_env, hdfs_client, tmp_path_factory):
    """A partitioned Hive table and a Parquet directory on HDFS, written by a first application."""
    name = f"default.cluster_test_{uuid.uuid4().hex[:10]}"
    hdfs_path = f"/tmp/sparkml-ops-tests/{name.split('.')[1]}"
    written = run_app(
        cluster_env, tmp_path_factory.mktemp("app-write"), "write", name, cluster["namenode_uri"] + hdfs_path
    )
    yield name, hdfs_path, written
    subprocess.run(  # drop through the Thrift server: cheaper than another YARN application
        [sys.executable, "-c", _DROP, json.dumps(cluster), name],
        env=cluster_env, check=False, timeout=120, cwd=REPO,
    )
    hdfs_client.delete(hdfs_path, recursive=True)


_DROP = (
    "import json, sys; from tests.cluster.conftest import hive_connection; "
    "c = hive_connection(json.loads(sys.argv[1])).cursor(); "
    "c.execute('DROP TABLE IF EXISTS ' + sys.argv[2])"
)


def test_first_application_runs_on_yarn_and_writes_hdfs(shared_table, cluster, hdfs_client):
    name, hdfs_path, written = shared_table

    assert written["master"] == "yarn"
    assert written["app_id"].startswith("application_")
    assert written["table"] == EXPECTED
    assert written["files"] == EXPECTED
    assert written["location"] == f"{cluster['namenode_uri']}/warehouse/{name.split('.')[1]}"
    # The table's partitions are real directories on HDFS, seen through WebHDFS too.
    partitions = [n for n in hdfs_client.list(f"/warehouse/{name.split('.')[1]}") if n.startswith("ds=")]
    assert partitions == ["ds=2026-01-01", "ds=2026-01-02"]
    assert "_SUCCESS" in hdfs_client.list(f"{hdfs_path}/rows.parquet")


def test_second_application_sees_the_table_of_the_first(shared_table, cluster_env, cluster, tmp_path):
    name, hdfs_path, written = shared_table

    read = run_app(cluster_env, tmp_path, "read", name, cluster["namenode_uri"] + hdfs_path)

    assert read["app_id"] != written["app_id"]
    assert read["table"] == EXPECTED
    assert read["files"] == EXPECTED


def test_thrift_server_sees_the_table_through_pyhive(shared_table, cluster, cluster_env, monkeypatch):
    name, _, _ = shared_table
    monkeypatch.setenv("KRB5CCNAME", cluster_env.get("KRB5CCNAME", ""))  # svc-sparkml's ticket, for HiveServer2
    conn = hive_connection(cluster)
    try:
        cursor = conn.cursor()
        cursor.execute(f"SELECT id, label, ds FROM {name} ORDER BY id")
        rows = [list(r) for r in cursor.fetchall()]
        cursor.execute(f"SHOW PARTITIONS {name}")
        partitions = [r[0] for r in cursor.fetchall()]
    finally:
        conn.close()

    assert rows == EXPECTED
    assert partitions == ["ds=2026-01-01", "ds=2026-01-02"]
