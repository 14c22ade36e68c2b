"""Hive catalog helpers: databases, bounded queries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sparkml_ops.config import HiveDatabases
from sparkml_ops.errors import DataValidationError, NotFoundError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def ensure_databases(spark: "SparkSession", databases: HiveDatabases) -> list[str]:
    """Create the configured Hive databases if missing (idempotent); return their names."""
    names = [databases.raw, databases.features, databases.scores, databases.ops]
    for name in dict.fromkeys(names):
        spark.sql(f"CREATE DATABASE IF NOT EXISTS `{name}` COMMENT 'sparkml-ops managed'")
    return list(dict.fromkeys(names))


@dataclass(frozen=True)
class QueryResult:
    """Rows of a bounded query, as plain Python values."""

    columns: list[str]
    rows: list[list[Any]]
    truncated: bool


def bounded_query(spark: "SparkSession", sql: str, limit: int) -> QueryResult:
    """Run one SQL statement and fetch at most ``limit`` rows to the driver.

    Raises:
        NotFoundError: a table or database in the query does not exist.
        DataValidationError: the statement does not parse or analyse.
    """
    from pyspark.errors import AnalysisException, ParseException

    try:
        df = spark.sql(sql)
        rows = df.limit(limit + 1).collect()
    except ParseException as exc:
        raise DataValidationError(f"SQL does not parse: {str(exc).splitlines()[0]}") from exc
    except AnalysisException as exc:
        first = str(exc).splitlines()[0]
        if "TABLE_OR_VIEW_NOT_FOUND" in first or "SCHEMA_NOT_FOUND" in first:
            raise NotFoundError(first, hint="List tables with: sparkml-ops sql 'SHOW TABLES IN <db>'") from exc
        raise DataValidationError(first) from exc
    return QueryResult(df.columns, [list(r) for r in rows[:limit]], len(rows) > limit)
