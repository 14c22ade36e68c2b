"""Smoke test run by ``spark-submit`` on an edge node after a release is installed.

It proves the release's virtualenv imports sparkml-ops and its dependencies, that the edge node's
Spark client can run a job, and that the node's Hadoop client reaches its default filesystem as the
deploying identity (the Kerberos principal of ``deploy.kerberos`` on a secure cluster); it prints one
line the deployer checks and keeps.
"""

import sys


def hadoop_identity(spark) -> str:
    """Who the Hadoop client is, after a call its default filesystem must authenticate (HDFS on a cluster)."""
    jvm = spark.sparkContext._jvm
    fs = jvm.org.apache.hadoop.fs.FileSystem.get(spark.sparkContext._jsc.hadoopConfiguration())
    fs.getFileStatus(jvm.org.apache.hadoop.fs.Path("/"))
    user = jvm.org.apache.hadoop.security.UserGroupInformation.getCurrentUser()
    return f"as {user.getUserName()} ({user.getAuthenticationMethod().toString()}) on {fs.getUri().toString()}"


def main() -> int:
    import pandas  # noqa: F401  the release's own dependency stack, not the edge node's
    import pyarrow  # noqa: F401
    from pyspark.sql import SparkSession

    import sparkml_ops

    build_id = sys.argv[1]
    spark = SparkSession.builder.appName(f"sparkml-ops-smoke-{build_id}").getOrCreate()
    try:
        total = spark.range(1000).selectExpr("sum(id) AS s").first()["s"]
        identity = hadoop_identity(spark)
    finally:
        spark.stop()
    if total != 499500:
        print(f"SMOKE FAILED {build_id}: sum was {total}")
        return 1
    print(f"SMOKE OK {build_id} sparkml-ops {sparkml_ops.__version__} {identity}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
