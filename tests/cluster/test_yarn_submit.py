"""`spark-submit --master yarn --deploy-mode cluster` against the test cluster, as deploy/ and schedulers use it."""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
import urllib.request

import pytest

from tests.cluster.conftest import kerberos_submit_args

pytestmark = pytest.mark.cluster

JOB_OK = textwrap.dedent(
    """
    import sys
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.getOrCreate()
    rows = spark.range(1, 101).selectExpr("id", "id * id AS square")
    rows.coalesce(1).write.mode("overwrite").json(sys.argv[1])
    spark.stop()
    """
)
JOB_FAIL = textwrap.dedent(
    """
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.getOrCreate()
    spark.range(3).count()
    raise RuntimeError("deliberate failure of the test job")
    """
)


def submit(spark_submit: str, cluster: dict, env: dict, script, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        spark_submit, "--master", "yarn", "--deploy-mode", "cluster",
        "--conf", f"spark.yarn.archive={cluster['spark_yarn_archive']}",
        "--conf", "spark.yarn.maxAppAttempts=1",
        "--conf", f"spark.pyspark.python={env['PYSPARK_PYTHON']}",
        "--conf", "spark.yarn.submit.waitAppCompletion=true",
        "--driver-memory", "512m", "--executor-memory", "512m", "--num-executors", "1",
        *kerberos_submit_args(cluster),
        str(script), *args,
    ]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, check=False)


def app_id(output: str) -> str:
    match = re.search(r"Submitted application (application_\d+_\d+)", output)
    assert match, f"no application id in spark-submit output:\n{output[-3000:]}"
    return match.group(1)


def test_cluster_mode_job_succeeds_and_writes_to_hdfs(spark_submit, cluster, cluster_env, hdfs_client, hdfs_dir, tmp_path):
    script = tmp_path / "square.py"
    script.write_text(JOB_OK)

    proc = submit(spark_submit, cluster, cluster_env, script, f"{cluster['namenode_uri']}{hdfs_dir}/out")

    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "final status: SUCCEEDED" in proc.stderr
    # The archive on HDFS is used as is: spark-submit uploads only the job, not the ~400 MB of jars.
    assert "Neither spark.yarn.jars nor spark.yarn.archive is set" not in proc.stderr
    assert not re.search(r"Uploading resource file:.*\.jar", proc.stderr)
    parts = [n for n in hdfs_client.list(f"{hdfs_dir}/out") if n.startswith("part-")]
    assert "_SUCCESS" in hdfs_client.list(f"{hdfs_dir}/out") and len(parts) == 1
    with hdfs_client.read(f"{hdfs_dir}/out/{parts[0]}", encoding="utf-8") as reader:
        rows = [json.loads(line) for line in reader.read().splitlines()]
    assert len(rows) == 100
    assert rows[-1] == {"id": 100, "square": 10000}


def test_failing_job_makes_spark_submit_exit_non_zero_after_one_attempt(spark_submit, cluster, cluster_env, tmp_path):
    script = tmp_path / "fail.py"
    script.write_text(JOB_FAIL)

    proc = submit(spark_submit, cluster, cluster_env, script)

    assert proc.returncode != 0
    assert "final status: FAILED" in proc.stderr
    # spark.yarn.maxAppAttempts=1: YARN does not run the failing driver a second time.
    url = f"{cluster['resourcemanager_web_url']}/ws/v1/cluster/apps/{app_id(proc.stderr)}/appattempts"
    with urllib.request.urlopen(url, timeout=30) as resp:
        attempts = json.load(resp)["appAttempts"]["appAttempt"]
    assert len(attempts) == 1
