"""Row-level column transforms: SQL expressions, ratios, defaults for missing groups, typed selection."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F


def with_columns(columns: Mapping[str, Column]) -> Callable[[DataFrame], DataFrame]:
    """Add (or replace) columns from ready-made Column expressions, in order."""

    def apply(df: DataFrame) -> DataFrame:
        return df.withColumns(dict(columns)) if columns else df

    return apply


def with_sql_columns(exprs: Mapping[str, tuple[str, str]]) -> Callable[[DataFrame], DataFrame]:
    """Add columns ``name -> (sql expression, spark type)``, each cast to its declared type."""

    def apply(df: DataFrame) -> DataFrame:
        if not exprs:
            return df
        return df.withColumns({name: F.expr(sql).cast(dtype) for name, (sql, dtype) in exprs.items()})

    return apply


def with_ratio(name: str, numerator: str, denominator: str) -> Callable[[DataFrame], DataFrame]:
    """Add ``numerator / denominator`` as double; NULL when the denominator is 0 or NULL."""

    def apply(df: DataFrame) -> DataFrame:
        den = F.col(denominator).cast("double")
        return df.withColumn(name, F.when(den != 0, F.col(numerator).cast("double") / den))

    return apply


def fill_nulls(values: Mapping[str, object]) -> Callable[[DataFrame], DataFrame]:
    """Replace NULLs in the named columns (e.g. counts of entities with no rows become 0)."""

    def apply(df: DataFrame) -> DataFrame:
        present = {k: v for k, v in values.items() if k in df.columns}
        return df.withColumns({k: F.coalesce(F.col(k), F.lit(v)) for k, v in present.items()}) if present else df

    return apply


def select_typed(columns: Sequence[tuple[str, str]]) -> Callable[[DataFrame], DataFrame]:
    """Select ``(name, type)`` columns in this order, casting each to its type."""

    # One SQL list, parsed in the JVM: a Column per name would cost three py4j calls each.
    exprs = [f"CAST(`{name.replace('`', '``')}` AS {dtype}) AS `{name.replace('`', '``')}`" for name, dtype in columns]

    def apply(df: DataFrame) -> DataFrame:
        return df.selectExpr(*exprs)

    return apply
