"""Smoke test run by ``spark-submit`` on an edge node after a release is installed.

It proves the release's virtualenv imports sparkml-ops and its dependencies and that the
edge node's Spark client can run a job; it prints one line the deployer checks.
"""

import sys


def main() -> int:
    import pandas  # noqa: F401  the release's own dependency stack, not the edge node's
    import pyarrow  # noqa: F401
    from pyspark.sql import SparkSession

    import sparkml_ops

    build_id = sys.argv[1]
    spark = SparkSession.builder.appName(f"sparkml-ops-smoke-{build_id}").getOrCreate()
    try:
        total = spark.range(1000).selectExpr("sum(id) AS s").first()["s"]
    finally:
        spark.stop()
    if total != 499500:
        print(f"SMOKE FAILED {build_id}: sum was {total}")
        return 1
    print(f"SMOKE OK {build_id} sparkml-ops {sparkml_ops.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
