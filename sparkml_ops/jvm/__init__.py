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
