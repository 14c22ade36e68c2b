"""What a Spark job read, from the metastore and the filesystem only: table locations, partition files, row counts.

A partition's fingerprint is made of its data files' names, sizes and modification times (listed
through Hadoop's FileSystem, so the same code works on local disk and HDFS); nothing is re-read.
Row counts come from one aggregate per table over the partition columns, which Parquet answers
from its footers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from sparkml_ops.errors import RemoteError
from sparkml_ops.io.tables import partition_columns

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


@dataclass(frozen=True)
class DataFile:
    """One data file: name (relative to its partition directory), size in bytes, modification time (ms since epoch)."""

    name: str
    size: int
    mtime_ms: int


@dataclass(frozen=True)
class TablePartition:
    """A partition of a table (``{}`` for an unpartitioned table) and its directory."""

    table: str
    spec: tuple[tuple[str, str], ...]
    directory: str


def table_location(spark: "SparkSession", table: str) -> str:
    """The table's directory URI, from the metastore.

    Raises:
        RemoteError: the metastore records no location for it.
    """
    for row in spark.sql(f"DESCRIBE TABLE EXTENDED {table}").collect():
        if row[0] and row[0].strip() == "Location":
            return row[1].strip()
    raise RemoteError(f"metastore returned no location for table {table}")


def read_partitions(spark: "SparkSession", frame: "DataFrame", tables: Sequence[str]) -> list[TablePartition]:
    """The partitions of ``tables`` a (lazy) DataFrame reads, after partition pruning; nothing is computed.

    Spark plans the query (``DataFrame.inputFiles``) and names the files it would read; they are grouped
    by table and partition directory. A table none of whose files is read is left out.
    """
    files = [_path(f) for f in frame.inputFiles()]
    out: dict[tuple[str, str], TablePartition] = {}
    for table in tables:
        uri = table_location(spark, table).rstrip("/")
        location, columns = _path(uri).rstrip("/"), partition_columns(spark, table)
        for path in files:
            if not path.startswith(location + "/"):
                continue
            parts = path[len(location) + 1:].split("/")[:len(columns)]
            spec = tuple((k, unquote(v)) for k, _, v in (p.partition("=") for p in parts))
            directory = "/".join([uri, *parts])
            out.setdefault((table, directory), TablePartition(table, spec, directory))
    return sorted(out.values(), key=lambda p: (p.table, p.spec))


def _path(uri: str) -> str:
    """The path of a file URI, so ``file:/x``, ``file:///x`` and ``hdfs://nn/x`` compare by path."""
    return urlsplit(uri).path


def data_files(spark: "SparkSession", directory: str) -> list[DataFile] | None:
    """The data files directly in ``directory`` (not ``_``/``.`` files, as Spark skips them); ``None`` if it is gone."""
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    path = jvm.org.apache.hadoop.fs.Path(_qualified(spark, directory))
    fs = path.getFileSystem(conf)
    if not fs.exists(path):
        return None
    out = []
    for status in fs.listStatus(path):
        name = status.getPath().getName()
        if status.isFile() and not name.startswith(("_", ".")):
            out.append(DataFile(name, int(status.getLen()), int(status.getModificationTime())))
    return sorted(out, key=lambda f: f.name)


def _qualified(spark: "SparkSession", directory: str) -> str:
    """``directory`` with the scheme of the warehouse when it came without one (paths compare without it)."""
    if urlsplit(directory).scheme:
        return directory
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    return str(jvm.org.apache.hadoop.fs.Path(directory).getFileSystem(conf).makeQualified(
        jvm.org.apache.hadoop.fs.Path(directory)).toString())


def row_counts(spark: "SparkSession", table: str, specs: Iterable[Mapping[str, str]]) -> dict[tuple[tuple[str, str], ...], int]:
    """Rows per partition of ``table`` for the partitions ``specs`` (one aggregate; footers only for Parquet)."""
    from functools import reduce

    from pyspark.sql import functions as F

    specs = [dict(s) for s in specs]
    columns = partition_columns(spark, table)
    if not columns:
        return {(): spark.table(table).count()}
    wanted = [reduce(lambda a, b: a & b, [F.col(k) == v for k, v in s.items()]) for s in specs if s]
    rows = spark.table(table).where(reduce(lambda a, b: a | b, wanted)) if wanted else spark.table(table)
    counted = rows.groupBy(*columns).count().collect()
    return {tuple((c, str(r[c])) for c in columns): int(r["count"]) for r in counted}
