"""scripts/test (what CI runs) refuses up front, with one message, when the disk cannot hold a whole run."""

from __future__ import annotations

import subprocess

from tests.conftest import REPO


def test_too_little_free_disk_is_refused_before_anything_is_set_up_or_started():
    # More than any disk has: the check must stop the script before set-up, services or pytest.
    proc = subprocess.run([str(REPO / "scripts" / "test"), "-k", "nothing"], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "SPARKML_OPS_TEST_FREE_GB": "1000000"})
    assert proc.returncode == 2
    assert "a whole run of the suite needs 1000000 GB" in proc.stderr
    assert "SPARKML_OPS_TEST_FREE_GB" in proc.stderr
    assert "setup:" not in proc.stderr and "cluster:" not in proc.stderr
