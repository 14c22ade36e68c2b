"""A YARN cluster-mode job outlives its first HDFS delegation token because Spark renews its credentials.

Inside YARN a job lives on HDFS delegation tokens, not on a Kerberos ticket. The test cluster's tokens
die 60 s after issue unless renewed (scripts/cluster.d/MiniCluster.java). The ResourceManager would
renew the tokens of a submission up to their max lifetime; here it is told not to
(``spark.yarn.kerberos.renewal.excludeHadoopFileSystems``: Spark asks for the tokens with no renewer),
so the only thing that can keep the job alive is Spark's own renewal from ``--keytab``: it logs in again
and obtains new tokens before the old ones die. The principal is svc-short, whose tickets last 2 minutes:
the job outlives its first ticket too. The control is the same job on the same principal without
``--keytab``, submitted at the same time, so it adds little to the test's time (~3 min under load). Its
only token is the one spark-submit obtained; under load its driver often starts more than 60 s later and
dies at its first metastore or HDFS call, otherwise at the first one after the wait: either way of the
expired token.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.cluster.conftest import am_container_file, kerberos_submit_args
from tests.conftest import CONF_DIR, REPO

pytestmark = [pytest.mark.cluster, pytest.mark.spark]

APP = REPO / "tests" / "cluster" / "renewal_app.py"
# dfs.namenode.delegation.token.renew-interval of the test cluster (scripts/cluster.d/MiniCluster.java).
RENEW_INTERVAL_S = 60


@pytest.fixture()
def short_user_dirs(cluster, hdfs_client, hdfs_dir) -> dict[str, str]:
    """HDFS directories owned by svc-short: its home (spark-submit's staging dir) and one per job of the test."""
    if cluster.get("security") != "kerberos":
        pytest.fail("the test cluster runs without Kerberos (SPARKML_CLUSTER_SECURITY=simple): "
                    "restart it with scripts/cluster stop && scripts/cluster start")
    user = cluster["short_principal"].split("@")[0]
    dirs = {"home": f"/user/{user}", "renewed": f"{hdfs_dir}/renewed_{uuid.uuid4().hex[:8]}",
            "control": f"{hdfs_dir}/control_{uuid.uuid4().hex[:8]}"}
    for path in dirs.values():
        hdfs_client.makedirs(path)
        hdfs_client.set_owner(path, owner=user)
    return dirs


def start_job(spark_submit: str, cluster: dict, env: dict, who: str, hdfs_dir: str, state_dir: Path) -> subprocess.Popen:
    """spark-submit renewal_app.py in YARN cluster mode, logged in from the keytab of ``who`` ("" for none)."""
    cmd = [
        spark_submit, "--master", "yarn", "--deploy-mode", "cluster", "--name", f"test-renewal-{who or 'control'}",
        "--conf", f"spark.yarn.archive={cluster['spark_yarn_archive']}",
        "--conf", "spark.yarn.maxAppAttempts=1",
        "--conf", f"spark.pyspark.python={env['PYSPARK_PYTHON']}",
        "--conf", f"spark.driver.extraClassPath={cluster['jdbc_driver_jar']}",
        # The RM must not keep the tokens alive: only Spark's renewal (with --keytab) may.
        "--conf", f"spark.yarn.kerberos.renewal.excludeHadoopFileSystems={cluster['namenode_uri']}",
        "--driver-memory", "512m", "--executor-memory", "512m", "--num-executors", "1",
        *kerberos_submit_args(cluster, who),
        str(APP), str(CONF_DIR), str(state_dir), cluster["webhdfs_url"], hdfs_dir,
    ]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def driver_log(cluster: dict, submit_output: str) -> str:
    """The output of the application's driver (its ApplicationMaster container) from the NodeManager's log dir,
    or "" if the container never started: stderr (the JVM's log) then stdout, where the Python driver's own
    traceback goes in cluster mode (e.g. a registry write refused with the expired token)."""
    app_id = next(w for w in submit_output.split() if w.startswith("application_"))
    return am_container_file(cluster, app_id, "stderr") + am_container_file(cluster, app_id, "stdout")


def short_ticket_env(cluster: dict, env: dict, tmp_path: Path) -> dict:
    """``env`` with a fresh ticket of svc-short in a cache of its own (spark-submit's login without --keytab)."""
    short_env = {**env, "KRB5CCNAME": f"FILE:{tmp_path / 'short-ccache'}"}
    subprocess.run(["kinit", "-k", "-t", cluster["short_keytab"], cluster["short_principal"]],
                   env=short_env, check=True, capture_output=True, timeout=60)
    return short_env


def test_a_yarn_job_outlives_its_first_delegation_token_because_spark_renews_it_from_the_keytab(
        cluster, cluster_env, spark_submit, hdfs_client, short_user_dirs, tmp_path):
    renewed = start_job(spark_submit, cluster, cluster_env, "short", short_user_dirs["renewed"], tmp_path / "renewed")
    control = start_job(spark_submit, cluster, short_ticket_env(cluster, cluster_env, tmp_path), "",
                        short_user_dirs["control"], tmp_path / "control")
    _, renewed_err = renewed.communicate(timeout=900)
    _, control_err = control.communicate(timeout=900)

    assert renewed.returncode == 0, renewed_err[-4000:]
    assert "final status: SUCCEEDED" in renewed_err
    parts = [n for n in hdfs_client.list(f"{short_user_dirs['renewed']}/result") if n.startswith("part-")]
    with hdfs_client.read(f"{short_user_dirs['renewed']}/result/{parts[0]}", encoding="utf-8") as reader:
        seen = json.loads(reader.read())
    first, current = seen["first"], seen["current"]
    # The first token worked, nobody could renew it (no renewer), and the NameNode refused it once its
    # renew interval had passed; HDFS and Hive writes and reads on the executor, and the registry storage
    # made before (WebHDFS with the job's token), all worked after that.
    age_at_check = seen["status_checked_at"] - first["issued_ms"] / 1000
    assert seen["status_before"] == 200, f"first token refused {age_at_check:.0f} s after its issue"
    assert first["renewer"] == ""
    assert seen["first_rejected_at"] > first["issued_ms"] / 1000 + RENEW_INTERVAL_S
    assert seen["after_done_at"] > seen["first_rejected_at"]
    assert seen["parquet"] == seen["table"] == seen["registry"] == ["after", "before"]
    # What kept it alive: the driver logged in from the keytab again and obtained the token it now holds.
    assert current["sequence"] != first["sequence"] and current["issued_ms"] > first["issued_ms"]
    log = driver_log(cluster, renewed_err)
    assert log.count("HadoopDelegationTokenManager: Attempting to login to KDC using principal: "
                     f"{cluster['short_principal']}") >= 2, log[-4000:]
    assert re.search(rf"DFSClient: Created token for .* renewer=, .*issueDate={current['issued_ms']}, "
                     rf".*sequenceNumber={current['sequence']},", log)
    assert log.count("HadoopDelegationTokenManager: Updating delegation tokens.") >= 2

    # The control: same job, same principal, no keytab. Its first token dies and so does the job.
    assert control.returncode != 0
    assert "final status: FAILED" in control_err
    # The AM's diagnostics (in spark-submit's output) say it if the container could not even start.
    assert re.search(r"InvalidToken\)?: Token .*has expired", control_err + driver_log(cluster, control_err))
    assert not hdfs_client.status(f"{short_user_dirs['control']}/result", strict=False)
