"""The one Spark session factory: embedded Derby metastore by default, shared JDBC metastore or YARN by config."""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sparkml_ops.config import Settings
from sparkml_ops.errors import EnvironmentCheckError, RemoteError
from sparkml_ops.jvm import JAR, load_into_driver

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

MIN_JAVA = 17
JAVA_HELP = (
    "Install a Java 17 (or newer) runtime, e.g. `apt-get install openjdk-17-jre-headless` on Debian, "
    "then set JAVA_HOME or spark.java_home in conf/."
)

# Defaults for a small machine; anything in `spark.conf` of the config wins.
_BASE_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
    "spark.sql.adaptive.enabled": "true",
    # Progress bars garble scheduler logs; the jobs log their own progress.
    "spark.ui.showConsoleProgress": "false",
    "spark.hadoop.hive.exec.dynamic.partition": "true",
    "spark.hadoop.hive.exec.dynamic.partition.mode": "nonstrict",
    # The scheduler, not YARN, decides about retries (README: exit codes).
    "spark.yarn.maxAppAttempts": "1",
}


# Properties that only spark-submit (or the JVM launch) can apply.
_SUBMIT_ONLY = frozenset({
    "spark.master", "spark.submit.deployMode", "spark.driver.memory", "spark.driver.cores",
    "spark.driver.extraJavaOptions", "spark.driver.extraClassPath", "spark.driver.extraLibraryPath",
})


@dataclass(frozen=True)
class JavaInfo:
    """The Java runtime Spark will launch."""

    executable: str
    major: int
    version_line: str


def check_java(java_home: str | None) -> JavaInfo:
    """Find the ``java`` Spark will use and check it is version 17 or newer.

    Raises:
        EnvironmentCheckError: Java is missing, broken or too old; the message says what to install.
    """
    if java_home:
        exe = str(Path(java_home) / "bin" / "java")
        if not Path(exe).is_file():
            raise EnvironmentCheckError(f"spark.java_home={java_home!r} has no bin/java.", hint=JAVA_HELP)
    else:
        exe = shutil.which("java") or ""
        if not exe:
            raise EnvironmentCheckError("Java is not installed: no `java` on PATH and no JAVA_HOME.", hint=JAVA_HELP)
    try:
        proc = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EnvironmentCheckError(f"cannot run {exe} -version: {exc}.", hint=JAVA_HELP) from exc
    first = (proc.stderr or proc.stdout).strip().splitlines()[:1]
    match = re.search(r'version "(\d+)(?:\.(\d+))?', first[0] if first else "")
    if proc.returncode != 0 or not match:
        raise EnvironmentCheckError(f"{exe} -version failed or printed no version: {first!r}.", hint=JAVA_HELP)
    major = int(match.group(1))
    if major == 1:  # "1.8.0_352" style
        major = int(match.group(2) or 0)
    if major < MIN_JAVA:
        raise EnvironmentCheckError(
            f"{exe} is Java {major}; Spark 4 needs Java {MIN_JAVA} or newer.", hint=JAVA_HELP
        )
    return JavaInfo(exe, major, first[0])


def _is_local(master: str) -> bool:
    return master.startswith("local")


def _storage_dirs(settings: Settings) -> dict[str, str]:
    """The warehouse (config, else under the state dir) and Hive's local dirs (under the state dir)."""
    state = settings.state_dir
    return {
        # A file: URI, not a bare path: with HADOOP_CONF_DIR set (edge nodes, the test cluster), a bare
        # path would resolve against fs.defaultFS and put the embedded default's tables on HDFS.
        "spark.sql.warehouse.dir": settings.hive.warehouse_dir or (state / "warehouse").as_uri(),
        # Hive's session makes a local resources dir and scratch dir per application and never removes
        # them; left at their defaults, every job leaves an empty dir in /tmp of the edge node.
        "spark.hadoop.hive.downloaded.resources.dir": str(state / "hive" / "${hive.session.id}_resources"),
        "spark.hadoop.hive.exec.local.scratchdir": str(state / "hive" / "scratch"),
    }


def session_conf(settings: Settings, app_name: str | None = None) -> dict[str, str]:
    """All Spark properties the factory sets, derived from config (pure; no JVM needed)."""
    spark = settings.spark
    hive = settings.hive
    state = settings.state_dir
    conf = dict(_BASE_CONF)
    conf["spark.master"] = spark.master
    conf["spark.app.name"] = app_name or spark.app_name
    conf["spark.ui.enabled"] = "true" if spark.ui else "false"
    conf["spark.sql.catalogImplementation"] = "hive"
    conf.update(_storage_dirs(settings))
    java_opts: list[str] = []
    class_path: list[str] = []
    if hive.metastore == "derby":
        conf["spark.hadoop.javax.jdo.option.ConnectionURL"] = (
            f"jdbc:derby:;databaseName={state / 'metastore_db'};create=true"
        )
        # The embedded default is self-contained: a HADOOP_CONF_DIR in the environment (edge node,
        # test cluster) must not send its warehouse or Hive scratch dirs to HDFS.
        conf["spark.hadoop.fs.defaultFS"] = "file:///"
        # Derby writes derby.log into the cwd unless told otherwise.
        java_opts += [f"-Dderby.system.home={state}", f"-Dderby.stream.error.file={state / 'derby.log'}"]
    else:
        conf["spark.hadoop.javax.jdo.option.ConnectionURL"] = hive.jdbc_url or ""
        conf["spark.hadoop.javax.jdo.option.ConnectionDriverName"] = hive.jdbc_driver
        if hive.jdbc_user:
            conf["spark.hadoop.javax.jdo.option.ConnectionUserName"] = hive.jdbc_user
        if hive.jdbc_password:
            conf["spark.hadoop.javax.jdo.option.ConnectionPassword"] = hive.jdbc_password.get_secret_value()
        # Lazy DDL by DataNucleus deadlocks on PostgreSQL; the schema is created up front.
        conf["spark.hadoop.datanucleus.schema.autoCreateAll"] = "false"
        conf["spark.hadoop.hive.metastore.schema.verification"] = "false"
        if hive.jdbc_driver_jar:
            # Hive's isolated client loads JDBC drivers only from the driver's system classpath.
            class_path.append(hive.jdbc_driver_jar)
    if _is_local(spark.master):
        # Workers must run the driver's interpreter, or pickled functions and wheels mismatch.
        conf["spark.pyspark.python"] = sys.executable
        conf["spark.pyspark.driver.python"] = sys.executable
    user = dict(spark.conf)
    for key, extra in (("spark.driver.extraJavaOptions", java_opts), ("spark.driver.extraClassPath", class_path)):
        joined = (" " if key.endswith("Options") else ":").join([*extra, user.pop(key, "")]).strip(" :")
        if joined:
            conf[key] = joined
    jars = _with_project_jar(user.pop("spark.jars", ""))
    if jars:
        conf["spark.jars"] = jars
    conf.update(user)
    return conf


def _with_project_jar(user_jars: str) -> str:
    """``spark.jars``: the project's jar (per-feature drift) from the installed package, then the user's jars.

    Through ``spark.jars`` the driver loads it in local and client mode, and executors fetch it from the
    driver in every mode. A YARN cluster-mode driver is launched before this runs, so its submit line carries
    it (README, "For schedulers"). Without the jar (scripts/setup not run), Spark would log a stack trace per
    session; the drift tally says what to do instead.
    """
    return ",".join([str(JAR) if JAR.is_file() else "", user_jars]).strip(",")


def build_session(settings: Settings, app_name: str | None = None, extra_conf: Mapping[str, str] | None = None) -> "SparkSession":
    """Create (or return the running) SparkSession for these settings, with Hive support.

    Raises:
        EnvironmentCheckError: Java missing/too old, or the state directory cannot be created.
        RemoteError: the metastore cannot be reached or is locked by another process.
    """
    check_java(settings.spark.java_home)
    try:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EnvironmentCheckError(f"cannot create state_dir {settings.state_dir}: {exc.strerror}.") from exc
    from pyspark.sql import SparkSession  # imported late: importing pyspark is slow and tests of config need none

    conf = {**session_conf(settings, app_name), **(extra_conf or {})}
    if os.environ.get("PYSPARK_GATEWAY_PORT"):
        # Launched by spark-submit (e.g. YARN cluster mode): the submit line decided the master and
        # deploy mode and already started the driver JVM; overriding them from here would make the
        # driver submit a second application, and JVM options can no longer take effect.
        ignored = sorted(k for k in conf if k in _SUBMIT_ONLY)
        for key in ignored:
            conf.pop(key)
        log.info("running under spark-submit; left to the submit line: %s", ", ".join(ignored) or "nothing")
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    if settings.spark.java_home:
        # spark-class launches the JVM from JAVA_HOME; the child process inherits it.
        os.environ["JAVA_HOME"] = settings.spark.java_home
    if _is_local(settings.spark.master):
        # PySpark's RDD/UDF layer reads the worker interpreter from PYSPARK_PYTHON, not from conf.
        os.environ["PYSPARK_PYTHON"] = sys.executable
        os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    if settings.hive.metastore == "derby" and SparkSession.getActiveSession() is None:
        _ensure_derby_free(settings.state_dir / "metastore_db")
    session = builder.enableHiveSupport().getOrCreate()
    session.sparkContext.setLogLevel(settings.spark.log_level)
    try:
        session.catalog.listDatabases()  # open the metastore now, so a lock or outage fails here, clearly
    except Exception as exc:  # py4j/Analysis errors carry the JVM message only
        session.stop()
        raise _metastore_error(settings, exc) from exc
    load_into_driver(session)
    log.info("spark session ready: master=%s app=%s id=%s metastore=%s", session.sparkContext.master,
             conf["spark.app.name"], session.sparkContext.applicationId, settings.hive.metastore)
    return session


def _ensure_derby_free(db_dir: Path) -> None:
    """Fail fast, clearly, if another process has booted the embedded Derby metastore.

    Derby holds an exclusive ``FileChannel`` lock on ``dbex.lck`` while booted; on Linux that is
    an fcntl lock, which we can probe without disturbing it. A stale file after a crash is not locked.
    """
    lock_file = db_dir / "dbex.lck"
    if not lock_file.exists():
        return
    try:
        with open(lock_file, "rb+") as handle:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.lockf(handle, fcntl.LOCK_UN)
    except BlockingIOError as exc:
        raise _derby_busy(db_dir) from exc
    except OSError:
        return  # unreadable lock file: let Derby report its own error


def _derby_busy(db_dir: Path) -> RemoteError:
    return RemoteError(
        f"the embedded Derby metastore {db_dir} is in use by another process.",
        hint="Derby allows one Spark application at a time: wait for the other job to finish, "
        "or use an environment with the shared PostgreSQL metastore.",
    )


def _metastore_error(settings: Settings, exc: Exception) -> RemoteError:
    text = str(exc)
    trace = str(getattr(exc, "_stackTrace", "") or "")
    if settings.hive.metastore == "derby" and "XSDB6" in text + trace:
        return _derby_busy(settings.state_dir / "metastore_db")
    return RemoteError(f"cannot open the Hive metastore ({settings.hive.metastore}): {text.splitlines()[0] if text else type(exc).__name__}")


@contextmanager
def spark_session(settings: Settings, app_name: str | None = None, extra_conf: Mapping[str, str] | None = None) -> Iterator["SparkSession"]:
    """Context manager around :func:`build_session` that stops the session on exit."""
    session = build_session(settings, app_name, extra_conf)
    try:
        yield session
    finally:
        session.stop()
