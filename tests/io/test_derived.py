"""Fingerprints of source partitions: what a feature build compares before it reuses stored tiles."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from sparkml_ops.io.derived import partition_fingerprints

pytestmark = pytest.mark.spark

DB = "t_derived"


def expected(directory: Path) -> str:
    """The documented fingerprint: SHA-256 over the sorted (name, size, mtime ms) of the visible data files."""
    files = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns // 1_000_000) for p in directory.iterdir()
                   if p.is_file() and not p.name.startswith(("_", ".")))
    return hashlib.sha256(repr(files).encode()).hexdigest()[:32]


def test_fingerprints_cover_the_data_files_of_the_partitions_asked_for_and_change_with_them(spark, tmp_path):
    table = f"{DB}.src"
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {DB}")
    spark.sql(f"DROP TABLE IF EXISTS {table}")
    spark.sql(f"CREATE TABLE {table} (v INT) USING parquet PARTITIONED BY (ds STRING) LOCATION '{tmp_path / 'src'}'")
    spark.sql(f"INSERT INTO {table} VALUES (1, '2026-01-01'), (2, '2026-01-02'), (3, '2026-01-03')")
    spark.sql(f"ALTER TABLE {table} ADD PARTITION (ds = '2026-01-04')")  # registered, no files
    day1, day2 = tmp_path / "src" / "ds=2026-01-01", tmp_path / "src" / "ds=2026-01-02"
    (day1 / "_SUCCESS").write_text("")  # hidden files are not data and do not count
    (day1 / ".part.crc").write_text("x")
    odd = day2 / "late\tfile name%+é.parquet"  # a name that a line-based listing must not break on
    odd.write_bytes((next(day2.glob("part-*"))).read_bytes())

    got = partition_fingerprints(spark, table, "ds", ["2026-01-01", "2026-01-02", "2026-01-04", "2026-01-09"])

    assert got == {"2026-01-01": expected(day1), "2026-01-02": expected(day2),
                   "2026-01-04": hashlib.sha256(b"[]").hexdigest()[:32]}  # 01-03 not asked for; 01-09 missing
    os.utime(odd, ns=(0, 1_000_000_000))  # a rewrite: same name and size, another time
    after = partition_fingerprints(spark, table, "ds", ["2026-01-01", "2026-01-02"])
    assert after["2026-01-01"] == got["2026-01-01"] and after["2026-01-02"] != got["2026-01-02"]
    assert after["2026-01-02"] == expected(day2)
