"""The smoke test's command line on an edge node (pure string building; the real run is in test_lifecycle)."""

from __future__ import annotations

import shlex

from sparkml_ops.config import DeploySettings
from sparkml_ops.deploy.release import Layout, smoke_command


def _env_of(cmd: str) -> dict[str, str]:
    words = shlex.split(cmd.split(" && ", 1)[1])
    assert words[0] == "env"
    return dict(w.split("=", 1) for w in words[1:] if "=" in w and not w.startswith("-"))


def test_smoke_jvms_run_with_the_c1_jit_by_default_without_touching_spark_java_options():
    deploy = DeploySettings(base_dir="/opt/x", spark_submit="/usr/bin/spark-submit", smoke_args=("--conf", "a=b"))
    cmd = smoke_command(Layout.of(deploy), "0.1.0-gabc", deploy, "yarn")
    env = _env_of(cmd)
    assert env["JDK_JAVA_OPTIONS"] == "-XX:TieredStopAtLevel=1"
    assert env["PYSPARK_PYTHON"] == "/opt/x/releases/0.1.0-gabc/venv/bin/python"
    assert "--driver-java-options" not in cmd and "extraJavaOptions" not in cmd


def test_smoke_env_overrides_the_default_jvm_options():
    deploy = DeploySettings(base_dir="/opt/x", smoke_env={"JDK_JAVA_OPTIONS": "-Xss4m", "SPARK_HOME": "/s h"})
    env = _env_of(smoke_command(Layout.of(deploy), "0.1.0-gabc", deploy, "local[1]"))
    assert env["JDK_JAVA_OPTIONS"] == "-Xss4m" and env["SPARK_HOME"] == "/s h"
