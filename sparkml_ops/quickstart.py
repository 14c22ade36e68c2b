"""The embedded-default walk-through run by ``scripts/quickstart``."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sparkml_ops.config import Settings
from sparkml_ops.io.hive import ensure_databases
from sparkml_ops.io.spark import spark_session

log = logging.getLogger(__name__)


@dataclass
class QuickstartReport:
    """Where each stage put its output, for the closing summary."""

    locations: list[tuple[str, str]] = field(default_factory=list)
    sample_columns: list[str] = field(default_factory=list)
    sample_rows: list[list] = field(default_factory=list)


def run_quickstart(settings: Settings) -> QuickstartReport:
    """Run every stage that exists on the embedded default, in one Spark application."""
    report = QuickstartReport()
    with spark_session(settings, app_name="sparkml-ops-quickstart") as spark:
        names = ensure_databases(spark, settings.hive.databases)
        log.info("hive databases ready: %s", ", ".join(names))
        report.locations += [
            ("state directory", str(settings.state_dir)),
            ("hive warehouse", spark.conf.get("spark.sql.warehouse.dir")),
            ("metastore", f"derby: {settings.state_dir / 'metastore_db'}" if settings.hive.metastore == "derby" else settings.hive.jdbc_url or ""),
            ("model registry", settings.registry.uri),
        ]
        rows = spark.sql("SHOW DATABASES").collect()
        report.sample_columns = ["database"]
        report.sample_rows = [[r[0]] for r in rows]
    return report
