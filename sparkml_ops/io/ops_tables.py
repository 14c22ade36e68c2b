"""Hive tables that scheduling and monitoring rely on: scores, the latest-score view, run records, score stats.

Every table has column comments, so ``DESCRIBE`` in beeline documents it for analysts.
Writes select columns by name before ``insertInto`` (which matches by position).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sparkml_ops.errors import RemoteError, SparkMLOpsError, exit_code_for
from sparkml_ops.io.tables import ColumnDef, add_missing_columns, ensure_table

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)


def _columns(*defs: tuple[str, str, str]) -> tuple[ColumnDef, ...]:
    """Column definitions from (name, type, comment) triples."""
    return tuple(ColumnDef(*d) for d in defs)


SCORES_TABLE = "scores"
LATEST_VIEW = "latest_scores"
RUNS_TABLE = "job_runs"
SCORE_STATS_TABLE = "score_stats"

SCORES_COLUMNS: tuple[ColumnDef, ...] = _columns(
    ("entity_key", "STRING", "Entity key value; composite keys are joined with '|' in the order of entity_key_names"),
    ("entity_key_names", "STRING", "Names of the key column(s) of the model's feature set, joined with '|'"),
    ("score", "DOUBLE", "Model output: probability of the positive class for classifiers"),
    ("decision", "INT", "1 when score >= threshold, 0 otherwise; NULL when the model has no decision threshold"),
    ("threshold", "DOUBLE", "Decision threshold in force for this run (conf/models/<model>.yaml scoring.threshold)"),
    ("model_version", "INT", "Registry version that produced the score (sparkml-ops models show <model>:<version>)"),
    ("run_id", "STRING", "Scoring run id; join ml_ops.job_runs.run_id for who/when/where"),
    ("scored_at", "TIMESTAMP", "When this row was written, UTC"),
)
SCORES_PARTITIONS: tuple[ColumnDef, ...] = _columns(
    ("score_date", "STRING", "Business date scored, YYYY-MM-DD (features as of this date)"),
    ("model_name", "STRING", "Registry model name"),
)

RUNS_COLUMNS: tuple[ColumnDef, ...] = _columns(
    ("run_id", "STRING", "Unique run id"),
    ("job", "STRING", "train | score | features"),
    ("status", "STRING", "success | failed"),
    ("exit_code", "INT", "Process exit code (README: Exit codes)"),
    ("model_name", "STRING", "Model name, when the job concerns a model"),
    ("model_ref", "STRING", "Model reference as asked (name@alias or name:version)"),
    ("model_version", "INT", "Version the reference resolved to"),
    ("start_date", "STRING", "First business date of the run, YYYY-MM-DD"),
    ("end_date", "STRING", "Last business date of the run, YYYY-MM-DD"),
    ("rows_in", "BIGINT", "Input rows read"),
    ("rows_out", "BIGINT", "Rows written"),
    ("duration_s", "DOUBLE", "Wall-clock duration in seconds"),
    ("run_user", "STRING", "OS user that ran the job"),
    ("run_host", "STRING", "Host the driver ran on"),
    ("application_id", "STRING", "Spark application id (YARN application id on a cluster)"),
    ("started_at", "TIMESTAMP", "Start, UTC"),
    ("finished_at", "TIMESTAMP", "End, UTC"),
    ("message", "STRING", "Error message when failed; details as JSON when successful"),
    # Added later: older tables gain them (NULL in older rows) on the next run, see _append_run_record.
    ("build_id", "STRING", "Build the job ran from (fab build id); NULL outside a deployed release"),
    ("git_commit", "STRING", "Git commit of the code that ran"),
)
RUNS_PARTITIONS: tuple[ColumnDef, ...] = _columns(("run_date", "STRING", "UTC date the run started, YYYY-MM-DD"),)

STATS_COLUMNS: tuple[ColumnDef, ...] = _columns(
    ("run_id", "STRING", "Scoring run id"),
    ("model_name", "STRING", "Model name"),
    ("model_version", "INT", "Model version"),
    ("rows", "BIGINT", "Rows scored for this date"),
    ("mean_score", "DOUBLE", "Mean score"),
    ("quantiles", "STRING", "JSON object of score quantiles (p01..p99), approximate (relative error 0.001)"),
    ("psi", "DOUBLE", "Population stability index versus the training baseline stored in the model manifest"),
    ("psi_status", "STRING", "ok | warn | fail, by the model's psi_warn/psi_fail limits"),
    ("computed_at", "TIMESTAMP", "When computed, UTC"),
)
STATS_PARTITIONS: tuple[ColumnDef, ...] = _columns(("score_date", "STRING", "Business date scored, YYYY-MM-DD"),)


def ensure_scores_table(spark: "SparkSession", db: str) -> str:
    """The one scores table of every model, and the analysts' latest-score view."""
    table = f"{db}.{SCORES_TABLE}"
    ensure_table(spark, table, SCORES_COLUMNS, SCORES_PARTITIONS,
                 "Batch model scores, one row per entity per score_date and model (sparkml-ops)")
    spark.sql(
        f"CREATE OR REPLACE VIEW `{db}`.`{LATEST_VIEW}` "
        "COMMENT 'Latest score per model and entity across all score dates (sparkml-ops)' AS "
        "SELECT model_name, entity_key, entity_key_names, score, decision, threshold, model_version, score_date, run_id, scored_at "
        f"FROM (SELECT s.*, ROW_NUMBER() OVER (PARTITION BY model_name, entity_key ORDER BY score_date DESC, scored_at DESC) AS rn "
        f"FROM `{db}`.`{SCORES_TABLE}` s) latest WHERE rn = 1"
    )
    return table


def append_rows(spark: "SparkSession", table: str, rows: Sequence[Mapping[str, Any]], columns: Sequence[ColumnDef]) -> None:
    """Append a few driver-side records (run records, stats) to a table; ``columns`` in table order."""
    schema = ", ".join(f"`{c.name}` {c.type}" for c in columns)
    df = spark.createDataFrame([tuple(r.get(c.name) for c in columns) for r in rows], schema)
    df.write.insertInto(table, overwrite=False)


def ensure_stats_table(spark: "SparkSession", db: str) -> str:
    """The score-distribution table (one row per scoring run and date); returns its name."""
    table = f"{db}.{SCORE_STATS_TABLE}"
    ensure_table(spark, table, STATS_COLUMNS, STATS_PARTITIONS, "Score distribution per scoring run and date (sparkml-ops)")
    return table


def partition_location(spark: "SparkSession", table: str, spec: Mapping[str, str]) -> str:
    """Filesystem URI of one partition of a Hive table."""
    clause = ", ".join(f"{k}='{v}'" for k, v in spec.items())
    rows = spark.sql(f"DESCRIBE FORMATTED {table} PARTITION ({clause})").collect()
    for row in rows:
        if row[0] and row[0].strip() == "Location":
            return row[1].strip()
    raise RemoteError(f"metastore returned no location for {table} partition {dict(spec)}")


def write_marker(spark: "SparkSession", directory: str, payload: Mapping[str, Any], name: str = "_SUCCESS") -> str:
    """Write a small JSON marker file (schedulers' sensors wait for it) through Hadoop's FileSystem."""
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(f"{directory.rstrip('/')}/{name}")
    fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    stream = fs.create(path, True)
    try:
        stream.write(bytearray(json.dumps(dict(payload), default=str, sort_keys=True).encode("utf-8")))
    finally:
        stream.close()
    return str(path.toString())


@contextmanager
def recorded_run(spark: "SparkSession", ops_db: str, record: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Append one row to ``<ops_db>.job_runs`` when the block ends, successful or not.

    The block fills ``record`` (model version, row counts, message); status, exit code, duration
    and end time are set here. The job's own exception is re-raised unchanged.
    """
    clock = time.monotonic()
    record.setdefault("started_at", datetime.now(UTC).replace(tzinfo=None))
    try:
        yield record
        record.setdefault("status", "success")
        record.setdefault("exit_code", 0)
    except BaseException as exc:
        record.update(status="failed", exit_code=exit_code_for(exc),
                      message=(str(exc) if isinstance(exc, SparkMLOpsError) else f"{type(exc).__name__}: {exc}")[:2000])
        raise
    finally:
        record.update(duration_s=time.monotonic() - clock, finished_at=datetime.now(UTC).replace(tzinfo=None))
        _append_run_record(spark, ops_db, record)


def _append_run_record(spark: "SparkSession", ops_db: str, record: dict[str, Any]) -> None:
    """Best effort: a failure to record must not hide the job's own error."""
    try:
        table = f"{ops_db}.{RUNS_TABLE}"
        add_missing_columns(spark, table, RUNS_COLUMNS)  # a table from an older release: same rows, new columns
        ensure_table(spark, table, RUNS_COLUMNS, RUNS_PARTITIONS, "One row per job run (sparkml-ops)")
        row = {**record, "run_date": record["started_at"].date().isoformat()}
        append_rows(spark, table, [row], (*RUNS_COLUMNS, *RUNS_PARTITIONS))
    except Exception:  # the run's own outcome matters more than its record
        log.exception("could not write the run record %s to %s.%s", record.get("run_id"), ops_db, RUNS_TABLE)
