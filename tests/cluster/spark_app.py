"""A separate Spark application on the test cluster, built by our session factory from conf/cluster.yaml.

Run as a subprocess by the tests, so each call is its own application (own driver JVM, own YARN app):
    python spark_app.py STATE_DIR write TABLE HDFS_DIR   create a partitioned Hive table and a Parquet dir
    python spark_app.py STATE_DIR read TABLE HDFS_DIR    print both back as JSON lines
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sparkml_ops.config import load_settings
from sparkml_ops.io.spark import spark_session

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
ROWS = [(1, "a", "2026-01-01"), (2, "b", "2026-01-01"), (3, "c", "2026-01-02")]


def main(state_dir: str, action: str, table: str, hdfs_dir: str) -> int:
    settings = load_settings("cluster", CONF_DIR, overrides=[f"state_dir={state_dir}"])
    with spark_session(settings, app_name=f"sparkml-ops-test-{action}") as spark:
        if action == "write":
            df = spark.createDataFrame(ROWS, "id INT, label STRING, ds STRING")
            df.write.mode("overwrite").parquet(f"{hdfs_dir}/rows.parquet")
            spark.sql(f"CREATE TABLE {table} (id INT, label STRING) PARTITIONED BY (ds STRING) STORED AS PARQUET")
            df.select("id", "label", "ds").write.insertInto(table)
        table_rows = spark.table(table).orderBy("id").collect()
        file_rows = spark.read.parquet(f"{hdfs_dir}/rows.parquet").orderBy("id").collect()
        location = spark.sql(f"DESCRIBE FORMATTED {table}").where("col_name = 'Location'").first()["data_type"]
        print(json.dumps({
            "table": [list(r) for r in table_rows],
            "files": [list(r) for r in file_rows],
            "location": location,
            "master": spark.sparkContext.master,
            "app_id": spark.sparkContext.applicationId,
        }))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
