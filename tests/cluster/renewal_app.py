"""A Spark job that outlives its first HDFS delegation token; spark-submitted by test_token_renewal.py.

    renewal_app.py CONF_DIR STATE_DIR WEBHDFS_URL HDFS_DIR

It writes a row to a Parquet directory and to a Hive table under HDFS_DIR, and a file through a registry
storage (WebHDFS with the job's token), then waits until the NameNode rejects the HDFS delegation token the
driver held at the start, then reads all three back (the first two on the executor) and writes again, with
the same storage object. What it saw (tokens, times) goes to HDFS_DIR/result as one JSON line; a failure raises.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import PurePosixPath

from sparkml_ops.config import load_settings
from sparkml_ops.io.spark import spark_session
from sparkml_ops.io.storage import Storage, open_storage

# How long the first token may take to die: its renew interval on the test cluster is 60 s
# (scripts/cluster.d/MiniCluster.java); a token that outlives this was renewed by someone.
EXPIRY_WAIT_S = 240


def hdfs_token(spark) -> dict:
    """The driver's current HDFS delegation token: sequence number, issue time, renewer, URL form."""
    ugi = spark.sparkContext._jvm.org.apache.hadoop.security.UserGroupInformation.getCurrentUser()
    tokens = ugi.getCredentials().getAllTokens().iterator()
    while tokens.hasNext():
        token = tokens.next()
        if token.getKind().toString() == "HDFS_DELEGATION_TOKEN":
            ident = token.decodeIdentifier()
            return {"sequence": ident.getSequenceNumber(), "issued_ms": ident.getIssueDate(),
                    "renewer": ident.getRenewer().toString(), "url": token.encodeToUrlString()}
    raise RuntimeError("the driver holds no HDFS delegation token")


def status_with(webhdfs: str, path: str, token: str) -> int:
    """HTTP status of a WebHDFS GETFILESTATUS of ``path`` authenticated by ``token`` alone."""
    url = f"{webhdfs}/webhdfs/v1{path}?op=GETFILESTATUS&delegation={token}"
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def wait_until_rejected(webhdfs: str, path: str, token: str) -> float:
    """The time at which the NameNode first refuses ``token``; raises if it still accepts it after EXPIRY_WAIT_S."""
    deadline = time.time() + EXPIRY_WAIT_S
    while time.time() < deadline:
        if status_with(webhdfs, path, token) != 200:
            return time.time()
        time.sleep(2)
    raise RuntimeError(f"the first HDFS delegation token was still accepted after {EXPIRY_WAIT_S} s")


def write_phase(spark, storage: Storage, hdfs_dir: str, table: str, phase: str) -> None:
    """One row to the Parquet directory (driver plans, executor writes), one to the Hive table, one registry file."""
    row = spark.createDataFrame([(phase,)], "phase STRING")
    row.write.mode("append").parquet(f"{hdfs_dir}/parquet")
    row.write.insertInto(table)
    storage.write(f"{phase}.txt", phase.encode())


def main(conf_dir: str, state_dir: str, webhdfs: str, hdfs_dir: str) -> int:
    registry_uri = webhdfs.replace("http://", "webhdfs://") + f"{hdfs_dir}/registry"
    settings = load_settings("cluster", conf_dir, overrides=[f"state_dir={state_dir}", "spark.log_level=INFO",
                                                             f"registry.uri={registry_uri}"])
    table = f"default.renewal_{PurePosixPath(hdfs_dir).name}"
    with spark_session(settings, app_name="sparkml-ops-test-renewal") as spark:
        first = hdfs_token(spark)
        # Checked at once: the token dies 60 s after issue, and the writes below can take that long on a
        # loaded box (a check after them was seen refused, 403, before the token's time was up for sure).
        status_before, checked_at = status_with(webhdfs, hdfs_dir, first["url"]), time.time()
        storage = open_storage(settings.registry)
        spark.sql(f"CREATE TABLE {table} (phase STRING) STORED AS PARQUET LOCATION '{hdfs_dir}/table'")
        write_phase(spark, storage, hdfs_dir, table, "before")
        rejected_at = wait_until_rejected(webhdfs, hdfs_dir, first["url"])
        write_phase(spark, storage, hdfs_dir, table, "after")
        result = {
            "first": {k: v for k, v in first.items() if k != "url"},
            "current": {k: v for k, v in hdfs_token(spark).items() if k != "url"},
            "status_before": status_before,
            "status_checked_at": checked_at,
            "first_rejected_at": rejected_at,
            "parquet": sorted(r.phase for r in spark.read.parquet(f"{hdfs_dir}/parquet").collect()),
            "table": sorted(r.phase for r in spark.table(table).collect()),
            "registry": sorted(storage.read_bytes(e.name).decode() for e in storage.list("")),
            "after_done_at": time.time(),
        }
        spark.createDataFrame([(json.dumps(result),)], "value STRING").coalesce(1).write.text(f"{hdfs_dir}/result")
        spark.sql(f"DROP TABLE {table}")  # external (LOCATION): the test removes its files with HDFS_DIR
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
