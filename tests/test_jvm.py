"""The project's jar is compiled from its sources with javac and pyspark's jars, once, reproducibly."""

from __future__ import annotations

import shutil
import zipfile

import pytest

from sparkml_ops.errors import EnvironmentCheckError
from sparkml_ops.jvm import JAR, JAR_NAME, build_jar


def test_build_jar_compiles_the_sources_reproducibly_and_skips_when_the_jar_is_newer(tmp_path):
    shutil.copytree(JAR.parent / "java", tmp_path / "java")
    jar = build_jar(tmp_path)
    assert jar == tmp_path / JAR_NAME
    with zipfile.ZipFile(jar) as zf:
        assert sorted(zf.namelist()) == ["sparkmlops/DriftCounts$Counts.class", "sparkmlops/DriftCounts.class"]
        assert {info.date_time for info in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    first = jar.read_bytes()
    stamp = jar.stat().st_mtime_ns
    assert build_jar(tmp_path, javac="/nonexistent/javac") == jar  # up to date: javac is not even looked for
    assert jar.stat().st_mtime_ns == stamp
    jar.unlink()
    assert build_jar(tmp_path).read_bytes() == first


def test_build_jar_without_javac_says_what_to_install(tmp_path):
    shutil.copytree(JAR.parent / "java", tmp_path / "java")
    with pytest.raises(EnvironmentCheckError) as err:
        build_jar(tmp_path, javac="/nonexistent/javac")
    assert str(err.value) == (f"no '/nonexistent/javac' on PATH to compile {tmp_path / 'java'}. "
                              "Install a JDK 17, e.g. `apt-get install openjdk-17-jdk-headless`.")
