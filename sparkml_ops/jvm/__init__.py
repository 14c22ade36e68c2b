"""The project's own JVM code: one jar, compiled from ``java/`` by ``scripts/setup`` and by ``fab build``.

Why inside the package: ``pip install`` and the build's packed venv (sparkml_ops/deploy/build.py) then carry
the jar to edge nodes and YARN containers like any package file, and the session factory finds it next to
this module, wherever the package is installed. Why compiled at set-up rather than committed: a jar in git
could drift from its source; ``javac`` and the jars of the pyspark wheel are all a build needs (no Maven).
"""

from __future__ import annotations

import subprocess
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from sparkml_ops.errors import EnvironmentCheckError

JAR_NAME = "sparkml-ops-jvm.jar"
JAR = Path(__file__).with_name(JAR_NAME)
JAR_HINT = ("Its jar (sparkml_ops/jvm) is built by scripts/setup and put on the classpath by the session factory: "
            "run scripts/setup. Under spark-submit in YARN cluster mode, the submit line must also carry "
            "--conf spark.driver.extraClassPath=./env/lib/python3.11/site-packages/sparkml_ops/jvm/sparkml-ops-jvm.jar (README).")


def load_into_driver(spark) -> bool:
    """Make the project's jar loadable by the driver's py4j gateway when the driver JVM started without it.

    Why: under a user's ``spark-submit`` the driver JVM is running before the session factory sets
    ``spark.jars``; that ships the jar to executors but does not put it on the driver's classpath, so the
    feature build and the score job could not reach their JVM code. spark-submit's driver runs with a
    mutable URL class loader (``org.apache.spark.util.MutableURLClassLoader``, or its child-first variant)
    as the py4j threads' context loader, and the jar is added to it. True if the jar is (now) loadable.
    """
    if _lookup(spark, "Sweep") is not None or not JAR.is_file():
        return _lookup(spark, "Sweep") is not None
    jvm = spark.sparkContext._jvm
    loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
    if not any(loader.getClass().getName().endswith(k) for k in ("MutableURLClassLoader", "ChildFirstURLClassLoader")):
        return False
    loader.addURL(jvm.java.io.File(str(JAR)).toURI().toURL())
    return _lookup(spark, "Sweep") is not None


def _lookup(spark, name: str):
    """``sparkmlops.<name>`` as a py4j ``JavaClass``, or None when the driver cannot load it."""
    from py4j.java_gateway import JavaClass

    found = getattr(spark.sparkContext._jvm.sparkmlops, name)
    return found if isinstance(found, JavaClass) else None  # py4j answers a missing class with a JavaPackage


def jvm_class(spark, name: str, purpose: str):
    """The class ``sparkmlops.<name>`` of the project's jar in ``spark``'s JVM, as a py4j ``JavaClass``.

    Raises:
        EnvironmentCheckError: the session cannot load it (the jar is not on its classpath); ``purpose`` says what needs it.
    """
    found = _lookup(spark, name)
    if found is None:
        raise EnvironmentCheckError(f"the Spark session cannot load sparkmlops.{name}, which {purpose}.", hint=JAR_HINT)
    return found


def build_jar(package_dir: Path = JAR.parent, javac: str = "javac", classpath: Sequence[Path] = (), name: str = JAR_NAME) -> Path:
    """Compile ``package_dir/java`` into ``package_dir/<name>`` against pyspark's jars (and ``classpath``), unless the jar is newer.

    Raises:
        EnvironmentCheckError: no ``javac`` (a JDK) or the sources do not compile.
    """
    import pyspark

    sources = sorted((package_dir / "java").rglob("*.java"))
    jar = package_dir / name
    if jar.exists() and all(jar.stat().st_mtime > src.stat().st_mtime for src in sources):
        return jar
    cp = ":".join([str(Path(pyspark.__file__).parent / "jars" / "*"), *map(str, classpath)])
    with tempfile.TemporaryDirectory(prefix="sparkml-ops-javac-") as out:
        try:
            proc = subprocess.run([javac, "--release", "17", "-nowarn", "-cp", cp, "-d", out, *map(str, sources)],
                                  capture_output=True, text=True, check=False)
        except FileNotFoundError as exc:
            raise EnvironmentCheckError(f"no {javac!r} on PATH to compile {package_dir / 'java'}.",
                                        hint="Install a JDK 17, e.g. `apt-get install openjdk-17-jdk-headless`.") from exc
        if proc.returncode != 0:
            raise EnvironmentCheckError(f"javac failed on {package_dir / 'java'}:\n{proc.stderr.strip()[-3000:]}")
        partial = jar.with_suffix(".jar.tmp")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zf:  # a jar is a zip; no `jar` tool needed
            for path in sorted(Path(out).rglob("*.class")):  # fixed dates: a commit builds the same jar
                zf.writestr(zipfile.ZipInfo(path.relative_to(out).as_posix(), (1980, 1, 1, 0, 0, 0)), path.read_bytes(),
                            zipfile.ZIP_DEFLATED)
        partial.replace(jar)
    return jar
