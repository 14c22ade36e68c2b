"""The layer contracts declared in setup.cfg hold (import-linter)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO


def test_import_linter_contracts_are_kept():
    exe = os.path.join(os.path.dirname(sys.executable), "lint-imports")
    proc = subprocess.run([exe, "--config", str(REPO / "setup.cfg"), "--no-cache"], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Contracts: 1 kept, 0 broken." in proc.stdout or " kept, 0 broken." in proc.stdout


def test_library_code_never_calls_sys_exit_or_reads_environment():
    offenders = []
    for path in (REPO / "sparkml_ops").rglob("*.py"):
        rel = path.relative_to(REPO).as_posix()
        text = path.read_text()
        if "sys.exit(" in text and rel not in ("sparkml_ops/cli/__init__.py",):
            offenders.append(f"{rel}: sys.exit")
        if ("os.environ.get(" in text or "os.getenv(" in text) and rel not in ("sparkml_ops/entrypoint.py", "sparkml_ops/io/spark.py"):
            # io/spark.py reads PYSPARK_GATEWAY_PORT, pyspark's own sign of a spark-submit launch.
            offenders.append(f"{rel}: reads the environment")
    assert offenders == []
