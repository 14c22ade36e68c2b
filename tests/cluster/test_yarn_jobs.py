"""The nightly chain on YARN: jobs from one immutable build, Python shipped as a venv-pack archive
published on HDFS, models from the WebHDFS registry, scores read back through the Thrift server (HiveServer2)."""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.conftest import am_container_file, hive_connection, kerberos_submit_args
from tests.conftest import CONF_DIR, REPO

pytestmark = [pytest.mark.cluster, pytest.mark.spark]


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """A build of this checkout (the one `fab build` makes), unpacked like a release on an edge node."""
    from sparkml_ops.config import load_settings
    from sparkml_ops.deploy.build import build

    settings = load_settings("local", CONF_DIR, environ={})
    result = build(settings, REPO, REPO / ".state" / "builds", user="pytest", allow_dirty=True)
    target = tmp_path_factory.mktemp("release")
    with tarfile.open(result.build.tarball) as tar:
        tar.extractall(target, filter="data")
    assert (target / "conf.tar.gz").is_file()  # the build's conf archive, shipped as is with --archives
    return target


@pytest.fixture(scope="module")
def published(release: Path, cluster: dict, hdfs_client) -> Iterator[str]:
    """The build's archives on HDFS as `fab deploy` publishes them (<hdfs_dir>/<build id>, world-readable:
    tests/deploy/test_hdfs_publish.py), as an hdfs:// URI prefix."""
    path = f"/apps/sparkml-ops-tests/{uuid.uuid4().hex[:12]}"
    hdfs_client.makedirs(path)
    for directory in ("/apps/sparkml-ops-tests", path):
        hdfs_client.set_permission(directory, "755")
    for name in ("env.tar.gz", "conf.tar.gz"):
        hdfs_client.upload(f"{path}/{name}", str(release / name))
        hdfs_client.set_permission(f"{path}/{name}", "644")
    yield f"{cluster['namenode_uri']}{path}"
    hdfs_client.delete(path, recursive=True)


def app_id(submit: subprocess.CompletedProcess) -> str:
    """The YARN application id that spark-submit reported."""
    return re.search(r"(application_\d+_\d+)", submit.stderr).group(1)


def localized_env(cluster: dict, submit: subprocess.CompletedProcess) -> str:
    """The NodeManager's copy of the env archive that the application's driver container ran from."""
    return re.search(r'ln -sf -- "([^"]+)" "env"', am_container_file(cluster, app_id(submit), "launch_container.sh")).group(1)


# The project's jar inside the packed env as YARN unpacks it (./env): a cluster-mode driver starts before
# the session factory could add it, so the submit line puts it on the driver's classpath (README).
PACKED_JAR = f"./env/lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages/sparkml_ops/jvm/sparkml-ops-jvm.jar"


def _submit(spark_submit, env, release: Path, published: str, cluster: dict, job: str, *args: str) -> subprocess.CompletedProcess:
    """The spark-submit line documented in the README for schedulers."""
    cmd = [
        spark_submit, "--master", "yarn", "--deploy-mode", "cluster", "--name", f"test-{Path(job).stem}",
        "--archives", f"{published}/env.tar.gz#env,{published}/conf.tar.gz#conf",
        "--conf", "spark.pyspark.python=./env/bin/python",
        "--conf", f"spark.yarn.archive={cluster['spark_yarn_archive']}",
        "--conf", "spark.yarn.maxAppAttempts=1",
        "--conf", f"spark.driver.extraClassPath={cluster['jdbc_driver_jar']}:{PACKED_JAR}",
        "--driver-memory", "1g", "--executor-memory", "1g", "--num-executors", "1", "--executor-cores", "2",
        *kerberos_submit_args(cluster),
        str(release / "jobs" / job), "--env", "cluster", "--conf-dir", "./conf", *args,
    ]
    return subprocess.run(cmd, cwd=release, env=env, capture_output=True, text=True, timeout=900)


def test_train_and_score_in_yarn_cluster_mode_and_read_scores_over_hiveserver2(cluster, cluster_env, spark_submit, release,
                                                                                 published, monkeypatch):
    run = uuid.uuid4().hex[:6]
    # Input data and features: client-mode runs of the same CLI on the same cluster (faster to start).
    cli = [str(REPO / ".venv" / "bin" / "sparkml-ops"), "--env", "cluster", "--conf-dir", str(CONF_DIR),
           "--set", "spark.conf.spark.pyspark.python=" + cluster_env["PYSPARK_PYTHON"]]
    for step in (["demo-data", "--start", "2026-08-01", "--days", "60", "--customers", "300", "--tx-per-day", "400"],
                 ["features", "build", "card_fraud", "--date", "2026-09-30"]):
        proc = subprocess.run([*cli, *step], cwd=REPO, env=cluster_env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]

    train = _submit(spark_submit, cluster_env, release, published, cluster, "train.py", "card_fraud", "--from", "2026-08-31", "--to", "2026-09-29")
    assert train.returncode == 0, train.stderr[-3000:]
    score = _submit(spark_submit, cluster_env, release, published, cluster, "score.py", "--model", "card_fraud@challenger",
                    "--date", "2026-09-30")
    assert score.returncode == 0, score.stderr[-3000:]
    # Both jobs ran from one copy of the env in the NodeManager's public cache: the second job did not
    # download and unpack the 190 MB archive again (about 40 s per job on this box).
    env_copy = localized_env(cluster, train)
    assert "/filecache/" in env_copy and "/usercache/" not in env_copy, env_copy
    assert localized_env(cluster, score) == env_copy
    score_app = app_id(score)

    monkeypatch.setenv("KRB5CCNAME", cluster_env.get("KRB5CCNAME", ""))  # the job user's ticket, for HiveServer2
    cursor = hive_connection(cluster, username=f"analyst-{run}").cursor()
    cursor.execute("SELECT run_id, model_version, status, exit_code, rows_out FROM ml_ops.job_runs "
                   f"WHERE application_id = '{score_app}'")
    (run_id, version, status, exit_code, rows_out), = cursor.fetchall()
    assert (status, exit_code, rows_out) == ("success", 0, 300)
    cursor.execute(f"SELECT count(*), count(DISTINCT entity_key), min(model_version), max(model_version) FROM ml_scores.scores "
                   f"WHERE score_date = '2026-09-30' AND model_name = 'card_fraud' AND run_id = '{run_id}'")
    assert cursor.fetchall() == [(300, 300, version, version)]


def test_failed_scoring_in_cluster_mode_exits_non_zero_and_reports_its_code(cluster, cluster_env, spark_submit, release,
                                                                            published):
    # Runs after the test above, which gave card_fraud a challenger.
    # No features for this date: the job exits 3 inside YARN; spark-submit exits non-zero (single attempt).
    proc = _submit(spark_submit, cluster_env, release, published, cluster, "score.py", "--model", "card_fraud@challenger", "--date", "2020-01-01")
    assert proc.returncode != 0
    assert "User application exited with status 3" in proc.stderr
