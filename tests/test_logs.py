"""Logger levels are set by logs.configure_logging only, never as a side effect of importing or connecting."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

CHATTY = ("py4j", "hdfs", "paramiko")


def test_importing_io_changes_no_logger_and_configure_logging_quiets_client_libraries():
    script = (
        "import logging\n"
        "import sparkml_ops.io.ssh, sparkml_ops.io.storage\n"
        f"levels = lambda: [logging.getLogger(n).level for n in {CHATTY!r}]\n"
        "print(levels())\n"
        "from sparkml_ops.logs import configure_logging\n"
        "configure_logging('text', 'DEBUG')\n"
        "print(levels())\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["[0, 0, 0]", "[30, 30, 30]"]
