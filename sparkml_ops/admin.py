"""Environment-level use-cases: initialise the catalog, check the machine, run a bounded query."""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass, field
from importlib import metadata

from sparkml_ops.config import Settings
from sparkml_ops.io.hive import QueryResult, bounded_query, ensure_databases
from sparkml_ops.io.spark import check_java, spark_session
from sparkml_ops.io.storage import check_kerberos


def init_environment(settings: Settings) -> list[str]:
    """Create the state directory and the configured Hive databases; safe to rerun."""
    with spark_session(settings, app_name="sparkml-ops-init") as spark:
        return ensure_databases(spark, settings.hive.databases)


def run_query(settings: Settings, sql: str, limit: int = 100) -> QueryResult:
    """Run one SQL statement on this environment's metastore and return at most ``limit`` rows."""
    if limit < 1:
        raise ValueError("limit must be >= 1")
    with spark_session(settings, app_name="sparkml-ops-sql") as spark:
        return bounded_query(spark, sql, limit)


@dataclass(frozen=True)
class DoctorReport:
    """What the machine offers, as checked by ``sparkml-ops doctor``."""

    checks: list[tuple[str, str]] = field(default_factory=list)


def doctor(settings: Settings) -> DoctorReport:
    """Check Java, package versions and, for a Kerberos registry, each login step; raises on the first blocking problem."""
    java = check_java(settings.spark.java_home)
    checks = [
        ("environment", settings.env),
        ("python", f"{platform.python_version()} ({sys.executable})"),
        ("java", f"{java.version_line} ({java.executable})"),
    ]
    for dist in ("sparkml-ops", "pyspark", "pandas", "pyarrow", "scikit-learn", "hdfs", "fabric", "gssapi", "requests-gssapi"):
        try:
            checks.append((dist, metadata.version(dist)))
        except metadata.PackageNotFoundError:
            checks.append((dist, "not installed"))
    checks += [
        ("state_dir", str(settings.state_dir)),
        ("registry", settings.registry.uri),
        ("metastore", settings.hive.metastore),
        ("spark.master", settings.spark.master),
        ("config sources", "; ".join(settings.sources)),
    ]
    if settings.registry.auth.method == "kerberos" and not settings.registry.uri.startswith("file:"):
        checks += check_kerberos(settings.registry)
    return DoctorReport(checks)
