"""The embedded-default walk-through run by ``scripts/quickstart``: the whole nightly chain, once.

demo data -> point-in-time training set -> train -> register (+ gate) -> feature build -> score -> query ->
model and monitoring reports, all in one Spark application (the embedded Derby metastore admits one process at a time).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from sparkml_ops.config import Settings
from sparkml_ops.demo import demo_params, generate_demo_data
from sparkml_ops.features import FeatureSpec, build_features, load_feature_spec
from sparkml_ops.identifiers import ModelRef
from sparkml_ops.io.hive import ensure_databases
from sparkml_ops.io.spark import spark_session
from sparkml_ops.modelconfig import load_model_config
from sparkml_ops.monitoring import model_report, monitor_report
from sparkml_ops.registry import Provenance
from sparkml_ops.scoring import run_scoring
from sparkml_ops.training import TrainingWindow, run_training

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

MODEL = "card_fraud"
HISTORY_DAYS = 150  # of demo transactions: the longest feature window (90 days) of warm-up, then 60 label days
MIN_LABEL_DAYS = 30  # a shorter history shortens the warm-up, never the label days below this


@dataclass(frozen=True)
class QuickstartOptions:
    """Which model, how much demo data to generate, and the day to score (default: today, UTC)."""

    model: str = MODEL
    today: date | None = None
    customers: int = 2_000
    tx_per_day: int = 3_000
    history_days: int = HISTORY_DAYS


@dataclass(frozen=True)
class QuickstartReport:
    """Where each stage put its output, and the first scored rows."""

    locations: list[tuple[str, str]] = field(default_factory=list)
    steps: list[tuple[str, str]] = field(default_factory=list)
    sample_columns: list[str] = field(default_factory=list)
    sample_rows: list[list] = field(default_factory=list)
    model_ref: ModelRef | None = None


def run_quickstart(settings: Settings, provenance: Provenance, options: QuickstartOptions = QuickstartOptions()) -> QuickstartReport:
    """Run the chain on demo data ending yesterday and score today; safe to rerun (partitions are replaced)."""
    with spark_session(settings, app_name="sparkml-ops-quickstart") as spark:
        return run_chain(spark, settings, provenance, options)


def run_chain(spark: "SparkSession", settings: Settings, provenance: Provenance,
              options: QuickstartOptions = QuickstartOptions()) -> QuickstartReport:
    """The quickstart's stages on an existing session (the test suite runs them on its shared session)."""
    today = options.today or datetime.now(UTC).date()
    first = today - timedelta(days=options.history_days)
    last = today - timedelta(days=1)
    model = options.model
    config = load_model_config(settings.conf_dir, model)
    spec = load_feature_spec(config.feature_set, settings)
    warmup = warmup_days(spec, options.history_days)
    ensure_databases(spark, settings.hive.databases)
    demo = generate_demo_data(spark, settings, demo_params(first, days=options.history_days, customers=options.customers,
                                                           tx_per_day=options.tx_per_day, seed=42))
    trained = run_training(spark, settings, config, TrainingWindow(first + timedelta(days=warmup), last), provenance)
    built = build_features(spark, settings, spec, [today])
    # Score with the champion; on a first run whose gate failed, with the version just trained.
    ref = ModelRef(model, alias="champion") if _has_champion(settings, model) else ModelRef(model, version=trained.version)
    scored = run_scoring(spark, settings, config, ref, [today], provenance)
    metric = config.gate.compare_metric
    value = trained.metrics.get(metric, float("nan"))
    steps = [
        ("demo data", f"{demo.transactions} transactions {demo.start}..{demo.end} in {demo.transactions_table}"),
        ("train + register", f"{model}:{trained.version} (validation {'ROC AUC' if metric == 'roc_auc' else metric} {value:.3f}); "
                             f"champion: {'yes' if trained.gate.champion else 'no'} ({'; '.join(trained.gate.reasons)})"),
        ("features", f"{sum(built.rows_per_date.values())} rows as of {today} in {built.table}"),
        ("score", f"{scored.rows_out} rows by {model}:{scored.model_version} into {scored.table} "
                  f"(score_date={today}, run {scored.run_id})"),
    ]
    query = (f"SELECT entity_key AS customer_id, round(score, 4) AS score, decision, model_version, score_date "
             f"FROM {settings.hive.databases.scores}.latest_scores WHERE model_name = '{model}' "
             f"ORDER BY score DESC LIMIT 10")
    rows = spark.sql(query).collect()
    reports = write_reports(spark, settings, ModelRef(model, version=scored.model_version), first, today)
    return QuickstartReport(locations=_locations(spark, settings, scored.table) + reports, steps=steps,
                            sample_columns=["customer_id", "score", "decision", "model_version", "score_date"],
                            sample_rows=[list(r) for r in rows], model_ref=ref)


def write_reports(spark: "SparkSession", settings: Settings, ref: ModelRef, first: date, today: date) -> list[tuple[str, str]]:
    """The model report of the version that scored and the monitoring report of the run, as files under the state directory."""
    folder = settings.state_dir / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    model = model_report(settings, ref)
    model_file = folder / f"{ref.name}-{ref.version}.html"
    model_file.write_text(model.html, encoding="utf-8")
    monitor = monitor_report(spark, settings, ref.name, first, today)
    monitor_file = folder / f"monitor-{ref.name}-{today}.html"
    monitor_file.write_text(monitor.html, encoding="utf-8")
    return [("model report", f"{model_file} (also in the registry: {ref.name}/{ref.version}/report.html)"),
            ("monitoring report", f"{monitor_file} (again: sparkml-ops report monitor {ref.name} --from {first} --to {today})")]


def warmup_days(spec: FeatureSpec, history_days: int) -> int:
    """Days of history before the first label day: the longest feature window, so training rows see full windows
    as the scores do (truncated 90-day counts in training read as drift at the first score), but at most what
    leaves ``MIN_LABEL_DAYS`` label days."""
    longest = max((spec.max_window_us(name) for name in spec.sources), default=0) // (24 * 3600 * 1_000_000)
    return max(0, min(int(longest), history_days - MIN_LABEL_DAYS))


def _locations(spark: "SparkSession", settings: Settings, scores_table: str) -> list[tuple[str, str]]:
    """Where the chain left its state, for the closing table."""
    dbs = settings.hive.databases
    return [
        ("state directory", str(settings.state_dir)),
        ("hive warehouse", spark.conf.get("spark.sql.warehouse.dir")),
        ("metastore", f"derby: {settings.state_dir / 'metastore_db'}" if settings.hive.metastore == "derby" else settings.hive.jdbc_url or ""),
        ("model registry", settings.registry.uri),
        ("scores", f"{scores_table} (view {dbs.scores}.latest_scores)"),
        ("run records", f"{dbs.ops}.job_runs, {dbs.ops}.score_stats, {dbs.ops}.feature_drift"),
        ("query again", f"sparkml-ops sql \"SELECT * FROM {dbs.scores}.latest_scores LIMIT 20\""),
    ]


def _has_champion(settings: Settings, model: str) -> bool:
    from sparkml_ops.errors import ModelNotFoundError
    from sparkml_ops.registry import open_registry

    try:
        open_registry(settings).resolve(ModelRef(model, alias="champion"))
        return True
    except ModelNotFoundError:
        return False
