"""The embedded-default walk-through run by ``scripts/quickstart``: the whole nightly chain, once.

demo data -> point-in-time training set -> train -> register (+ gate) -> feature build -> score -> query,
all in one Spark application (the embedded Derby metastore admits one process at a time).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from sparkml_ops.config import Settings
from sparkml_ops.demo import demo_params, generate_demo_data
from sparkml_ops.features import build_features, load_feature_spec
from sparkml_ops.io.hive import ensure_databases
from sparkml_ops.io.spark import spark_session
from sparkml_ops.modelconfig import load_model_config
from sparkml_ops.registry import Provenance
from sparkml_ops.scoring import run_scoring
from sparkml_ops.training import run_training

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

MODEL = "card_fraud"
HISTORY_DAYS = 90  # of demo transactions
WARMUP_DAYS = 30  # first label day leaves this much feature history


@dataclass
class QuickstartReport:
    """Where each stage put its output, and the first scored rows."""

    locations: list[tuple[str, str]] = field(default_factory=list)
    steps: list[tuple[str, str]] = field(default_factory=list)
    sample_columns: list[str] = field(default_factory=list)
    sample_rows: list[list] = field(default_factory=list)
    model_ref: str = ""


def run_quickstart(settings: Settings, provenance: Provenance, today: date | None = None,
                   customers: int = 2_000, tx_per_day: int = 3_000) -> QuickstartReport:
    """Run the chain on demo data ending yesterday and score today; safe to rerun (partitions are replaced)."""
    with spark_session(settings, app_name="sparkml-ops-quickstart") as spark:
        return run_chain(spark, settings, provenance, today, customers, tx_per_day)


def run_chain(spark: "SparkSession", settings: Settings, provenance: Provenance, today: date | None = None,
              customers: int = 2_000, tx_per_day: int = 3_000, history_days: int = HISTORY_DAYS) -> QuickstartReport:
    """The quickstart's stages on an existing session (the test suite runs them on its shared session)."""
    today = today or datetime.now(UTC).date()
    first = today - timedelta(days=history_days)
    last = today - timedelta(days=1)
    report = QuickstartReport()
    config = load_model_config(settings.conf_dir, MODEL)
    spec = load_feature_spec(config.feature_set, settings)
    ensure_databases(spark, settings.hive.databases)
    demo = generate_demo_data(spark, settings, demo_params(first, days=history_days, customers=customers,
                                                           tx_per_day=tx_per_day, seed=42))
    report.steps.append(("demo data", f"{demo.transactions} transactions {demo.start}..{demo.end} in {demo.transactions_table}"))
    trained = run_training(spark, settings, config, first + timedelta(days=WARMUP_DAYS), last, provenance)
    auc = trained.metrics.get("roc_auc", float("nan"))
    report.steps.append(("train + register", f"{MODEL}:{trained.version} (validation ROC AUC {auc:.3f}); "
                                             f"champion: {'yes' if trained.gate.champion else 'no'} ({'; '.join(trained.gate.reasons)})"))
    built = build_features(spark, settings, spec, [today])
    report.steps.append(("features", f"{sum(built.rows_per_date.values())} rows as of {today} in {built.table}"))
    # Score with the champion; on a first run whose gate failed, with the version just trained.
    report.model_ref = f"{MODEL}@champion" if _has_champion(settings) else f"{MODEL}:{trained.version}"
    scored = run_scoring(spark, settings, config, report.model_ref, [today], provenance)
    report.steps.append(("score", f"{scored.rows_out} rows by {MODEL}:{scored.model_version} into {scored.table} "
                                  f"(score_date={today}, run {scored.run_id})"))
    query = (f"SELECT entity_key AS customer_id, round(score, 4) AS score, decision, model_version, score_date "
             f"FROM {settings.hive.databases.scores}.latest_scores WHERE model_name = '{MODEL}' "
             f"ORDER BY score DESC LIMIT 10")
    rows = spark.sql(query).collect()
    report.sample_columns = ["customer_id", "score", "decision", "model_version", "score_date"]
    report.sample_rows = [list(r) for r in rows]
    report.locations += [
        ("state directory", str(settings.state_dir)),
        ("hive warehouse", spark.conf.get("spark.sql.warehouse.dir")),
        ("metastore", f"derby: {settings.state_dir / 'metastore_db'}" if settings.hive.metastore == "derby" else settings.hive.jdbc_url or ""),
        ("model registry", settings.registry.uri),
        ("scores", f"{scored.table} (view {settings.hive.databases.scores}.latest_scores)"),
        ("run records", f"{settings.hive.databases.ops}.job_runs, {settings.hive.databases.ops}.score_stats"),
        ("query again", f"sparkml-ops sql \"SELECT * FROM {settings.hive.databases.scores}.latest_scores LIMIT 20\""),
    ]
    return report


def _has_champion(settings: Settings) -> bool:
    from sparkml_ops.errors import ModelNotFoundError
    from sparkml_ops.registry import open_registry

    try:
        open_registry(settings).resolve(f"{MODEL}@champion")
        return True
    except ModelNotFoundError:
        return False
