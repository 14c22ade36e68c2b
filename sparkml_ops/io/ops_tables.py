"""Hive tables that scheduling and monitoring rely on: scores, the latest-score view, run records, score stats, feature drift.

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


FEATURE_DRIFT_TABLE = "feature_drift"
DRIFT_COLUMNS: tuple[ColumnDef, ...] = _columns(
    ("run_id", "STRING", "Scoring run id; join ml_ops.job_runs.run_id and ml_ops.score_stats.run_id"),
    ("model_name", "STRING", "Model name"),
    ("model_version", "INT", "Model version whose training baseline the feature is compared with"),
    ("feature", "STRING", "Input feature of the model (a column of its feature table)"),
    ("kind", "STRING", "numeric (PSI on the training quantile bins) | categorical (PSI on the training category shares)"),
    ("rows", "BIGINT", "Rows scored for this date: the population, to read next to the drift"),
    ("baseline_rows", "BIGINT", "Rows of the training split the baseline was computed on"),
    ("null_rate", "DOUBLE", "Share of scored rows where the feature is NULL"),
    ("baseline_null_rate", "DOUBLE", "Share of training rows where the feature was NULL"),
    ("min_value", "DOUBLE", "Smallest value scored (numeric features; NULL for categorical)"),
    ("max_value", "DOUBLE", "Largest value scored (numeric features; NULL for categorical)"),
    ("baseline_min", "DOUBLE", "Smallest training value (numeric features)"),
    ("baseline_max", "DOUBLE", "Largest training value (numeric features)"),
    ("out_of_range", "BIGINT", "Numeric: values below baseline_min or above baseline_max; categorical: values not seen in training"),
    ("psi", "DOUBLE", "Population stability index of the non-null values versus training (empty bins floored at 1e-4); NULL without values"),
    ("psi_status", "STRING", "ok | warn | fail, by the model's scoring.feature_psi_warn / feature_psi_fail"),
    ("shares", "STRING", "JSON: bins (edges or categories), current and training shares per bin (categorical: unseen last)"),
    ("computed_at", "TIMESTAMP", "When computed, UTC"),
)
DRIFT_PARTITIONS: tuple[ColumnDef, ...] = _columns(("score_date", "STRING", "Business date scored, YYYY-MM-DD"),)


ALERT_COLUMNS: tuple[ColumnDef, ...] = _columns(
    ("alert_id", "STRING", "Unique alert id (also in the hook's JSON and the e-mail)"),
    ("event", "STRING", "failed_run | drift | missing_run"),
    ("severity", "STRING", "error | warning"),
    ("model_name", "STRING", "Model the alert is about"),
    ("run_id", "STRING", "Run that raised it, when one did; join ml_ops.job_runs.run_id"),
    ("subject", "STRING", "One-line summary, the e-mail subject"),
    ("payload", "STRING", "The JSON document sent to the command hook"),
    ("channels", "STRING", "JSON: per channel (command, smtp) 'ok' or the delivery error"),
    ("delivered", "BOOLEAN", "True when every configured channel took the alert"),
    ("raised_at", "TIMESTAMP", "When raised, UTC"),
)
ALERT_PARTITIONS: tuple[ColumnDef, ...] = _columns(("alert_date", "STRING", "UTC date the alert was raised, YYYY-MM-DD"),)


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


def ensure_feature_drift_table(spark: "SparkSession", db: str) -> str:
    """The per-feature drift table (one row per scoring run, date and input feature); returns its name."""
    table = f"{db}.{FEATURE_DRIFT_TABLE}"
    ensure_table(spark, table, DRIFT_COLUMNS, DRIFT_PARTITIONS,
                 "Per-feature drift of model inputs per scoring run and date, against the training baseline (sparkml-ops)")
    return table


def ensure_alerts_table(spark: "SparkSession", db: str, name: str) -> str:
    """The alert record table (one row per alert, delivered or not); returns its name."""
    table = f"{db}.{name}"
    ensure_table(spark, table, ALERT_COLUMNS, ALERT_PARTITIONS, "Alerts raised and whether they were delivered (sparkml-ops)")
    return table


def _rows(frame: "DataFrame") -> list[dict[str, Any]]:
    """A small, bounded result as plain dicts (callers filter to one model and a date range first)."""
    return [r.asDict() for r in frame.collect()]


def latest_score_stats(spark: "SparkSession", db: str, model: str, start: str, end: str) -> list[dict[str, Any]]:
    """The ``score_stats`` row of the latest run per score date of ``model`` in ``start..end`` (one row per date)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    table = f"{db}.{SCORE_STATS_TABLE}"
    if not spark.catalog.tableExists(table):
        return []
    latest = Window.partitionBy("score_date").orderBy(F.col("computed_at").desc(), F.col("run_id").desc())
    frame = (spark.table(table).where((F.col("model_name") == model) & F.col("score_date").between(start, end))
             .withColumn("_n", F.row_number().over(latest)).where("_n = 1").drop("_n"))
    return _rows(frame.orderBy("score_date"))


def feature_drift_rows(spark: "SparkSession", db: str, model: str, run_ids: Sequence[str], start: str,
                       end: str) -> list[dict[str, Any]]:
    """The ``feature_drift`` rows of ``run_ids`` for ``model`` in ``start..end`` (one per date and feature)."""
    from pyspark.sql import functions as F

    table = f"{db}.{FEATURE_DRIFT_TABLE}"
    if not run_ids or not spark.catalog.tableExists(table):
        return []
    frame = spark.table(table).where((F.col("model_name") == model) & F.col("score_date").between(start, end)
                                     & F.col("run_id").isin(list(run_ids)))
    return _rows(frame.drop("shares"))


def job_run_rows(spark: "SparkSession", db: str, model: str, start: str, end: str, job: str | None = None) -> list[dict[str, Any]]:
    """The ``job_runs`` rows of ``model`` whose business dates overlap ``start..end`` (optionally of one job)."""
    from pyspark.sql import functions as F

    table = f"{db}.{RUNS_TABLE}"
    if not spark.catalog.tableExists(table):
        return []
    where = (F.col("model_name") == model) & (F.col("start_date") <= end) & (F.col("end_date") >= start)
    if job is not None:
        where = where & (F.col("job") == job)
    return _rows(spark.table(table).where(where))


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
