"""Derived Hive tables: fingerprints of the source partitions they come from, and day-by-day replacement.

A derived table (the feature builds' state) holds only what can be recomputed from its sources:
it is created from the data's own schema, replaced partition by partition, and dropped and
recreated when its columns must change. A source partition rewritten or appended to gets new
files or new modification times, so its fingerprint changes; derived rows that record the
fingerprint they came from can be checked before they are reused; a mark per partition in the
table's metadata lets a caller check that without reading the rows.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import unquote_plus

from py4j.protocol import Py4JJavaError

from sparkml_ops.errors import RemoteError
from sparkml_ops.identifiers import check_hive_identifier
from sparkml_ops.io.tables import partition_values, sql_string, table_exists, table_schema, write_settings
from sparkml_ops.jvm import jvm_class

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)


def partition_fingerprints(spark: "SparkSession", table: str, column: str, values: Iterable[str]) -> dict[str, str]:
    """``{value: fingerprint}`` of the existing partitions ``column=value`` of ``table`` among ``values``.

    The fingerprint is a SHA-256 over the sorted (file name, size, modification time) of the
    partition's data files (hidden files such as ``_SUCCESS`` and ``.crc`` left out). One call to
    the project's JVM code lists them all (sparkmlops.PartitionFiles); missing partitions are
    absent from the result.

    Raises:
        RemoteError: the metastore or the file system cannot be read.
        EnvironmentCheckError: the session cannot load the project's jar.
    """
    database, name = table.split(".", 1)
    lister = jvm_class(spark, "PartitionFiles", "lists the source partitions of feature builds")
    try:
        listing = lister.list(spark._jsparkSession, database, name, column, "\n".join(sorted(set(values))))
    except Py4JJavaError as exc:
        raise RemoteError(f"cannot list the partitions of {table}: {str(exc).splitlines()[0]}") from exc
    files: dict[str, list[tuple[str, int, int]]] = {}
    for line in listing.splitlines():
        value, *file = line.split("\t")
        entries = files.setdefault(unquote_plus(value), [])
        if file:
            entries.append((unquote_plus(file[0]), int(file[1]), int(file[2])))
    return {value: hashlib.sha256(repr(sorted(entries)).encode()).hexdigest()[:32] for value, entries in files.items()}


def replace_derived_partitions(df: "DataFrame", table: str, partition: str, comment: str, values: list[str],
                               as_is: bool = False) -> None:
    """Overwrite the partitions ``values`` of ``df`` in the derived ``table``; create it, or recreate it if its columns differ.

    Columns may be of any Spark type (lists included); ``partition`` is the last column of ``df``,
    and its values are among ``values``. Rows are gathered into one file per partition, which
    later reads of many partitions prefer. One value is written as a static partition (no sort by
    partition, and the partition exists afterwards even without rows). With ``as_is``, several values
    are written from ``df``'s own partitions, with no shuffle: a partition of the table gets a file from
    each task that holds its rows (one, when ``df`` is partitioned by ``partition``); rows that come
    ordered by ``partition`` need no sort before the write.
    """
    spark = df.sparkSession
    wanted = {f.name: f.dataType.simpleString() for f in df.schema.fields}
    if table_exists(spark, table) and table_schema(spark, table) != wanted:
        log.info("derived table %s has other columns than its data now: recreating it", table)
        spark.sql(f"DROP TABLE {table}")
    if not table_exists(spark, table):
        spark.sql(f"CREATE DATABASE IF NOT EXISTS `{check_hive_identifier(table.split('.')[0], 'database')}`")
        df.limit(0).write.format("parquet").partitionBy(partition).option("comment", comment).saveAsTable(table)
    if len(values) == 1:
        view = f"_sparkml_ops_derived_{abs(hash((table, values[0])))}"
        # repartition, not coalesce: a coalesce to one partition would run the whole stage that computes
        # ``df`` (an aggregate of a roll-up) in one task; the extra shuffle of its result costs less.
        df.select(*[c for c in wanted if c != partition]).repartition(1).createOrReplaceTempView(view)
        try:
            with write_settings(spark, wanted):
                spark.sql(f"INSERT OVERWRITE TABLE {table} PARTITION ({partition} = {sql_string(values[0])}) SELECT * FROM {view}")
        finally:
            spark.catalog.dropTempView(view)
        return
    with write_settings(spark, wanted, dynamic=True):
        (df if as_is else df.repartition(partition)).select(*wanted).write.insertInto(table, overwrite=True)


MARK_PREFIX = "sparkml_ops.mark."


def partition_marks(spark: "SparkSession", table: str, column: str) -> dict[str, str]:
    """``{value: mark}`` of the partitions ``column=value`` of the derived ``table`` that exist and are marked.

    Marks are table properties (metastore only, no data read). Only the marks of partitions that
    exist are returned, so a partition dropped by hand is unmarked with it.
    """
    if not table_exists(spark, table):
        return {}
    present = set(partition_values(spark, table, column))
    props = spark.sql(f"SHOW TBLPROPERTIES {table}").collect()
    marks = {row[0][len(MARK_PREFIX):]: row[1] for row in props if row[0].startswith(MARK_PREFIX)}
    return {value: mark for value, mark in marks.items() if value in present}


def mark_partitions(spark: "SparkSession", table: str, column: str, marks: dict[str, str]) -> None:
    """Record ``{value: mark}`` for partitions ``column=value`` of ``table``; drop the marks of partitions gone."""
    present = set(partition_values(spark, table, column))
    stored = {row[0] for row in spark.sql(f"SHOW TBLPROPERTIES {table}").collect() if row[0].startswith(MARK_PREFIX)}
    gone = sorted(k for k in stored if k[len(MARK_PREFIX):] not in present and k[len(MARK_PREFIX):] not in marks)
    if marks:
        pairs = ", ".join(f"{sql_string(MARK_PREFIX + v)} = {sql_string(m)}" for v, m in sorted(marks.items()))
        spark.sql(f"ALTER TABLE {table} SET TBLPROPERTIES ({pairs})")
    if gone:
        keys = ", ".join(sql_string(k) for k in gone)
        spark.sql(f"ALTER TABLE {table} UNSET TBLPROPERTIES IF EXISTS ({keys})")

