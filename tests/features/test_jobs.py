"""The spark-submit jobs end to end in their own processes: demo data, feature build, exit codes 0, 2 and 3."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CONF_DIR, REPO

pytestmark = pytest.mark.spark

SPARK_SUBMIT = Path(sys.executable).parent.parent / "lib" / "python3.11" / "site-packages" / "pyspark" / "bin" / "spark-submit"


@pytest.fixture(scope="module")
def job_env(tmp_path_factory):
    state = tmp_path_factory.mktemp("feature-jobs")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKML_OPS_")}
    env["PYSPARK_PYTHON"] = sys.executable
    flags = ["--conf-dir", str(CONF_DIR), "--set", f"state_dir={state}", "--set", "spark.master=local[2]",
             "--set", "spark.conf.spark.sql.shuffle.partitions=2", "--set", "spark.conf.spark.driver.memory=1g"]
    return state, env, flags


def _run(cmd, env, cwd):
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=900)
    return proc.returncode, proc.stdout, proc.stderr


def test_jobs_generate_build_and_fail_with_documented_exit_codes(job_env):
    state, env, flags = job_env
    code, _, err = _run([sys.executable, str(REPO / "jobs" / "demo_data.py"), "--start", "2026-01-01", "--days", "12",
                         "--customers", "300", "--tx-per-day", "400", "--seed", "3", *flags], env, state)
    assert code == 0, err[-3000:]

    code, _, err = _run([str(SPARK_SUBMIT), "--master", "local[2]", str(REPO / "jobs" / "build_features.py"), "card_fraud",
                         "--date", "2026-01-12", *flags], env, state)
    assert code == 0, err[-3000:]

    code, out, err = _run([sys.executable, "-m", "sparkml_ops.cli", *flags, "features", "stats", "card_fraud",
                           "--date", "2026-01-12", "--json"], env, state)
    assert code == 0, err[-3000:]
    stats = {r["feature"]: r for r in json.loads(out)}
    assert len(stats) == 43 and stats["tx_amount_count_90d"]["row_count"] == 300

    # Bad input: missing source partition (exit 3), non-ISO date and unknown spec (exit 2, before Spark starts).
    code, _, err = _run([sys.executable, str(REPO / "jobs" / "build_features.py"), "card_fraud", "--date", "2026-01-14", *flags], env, state)
    assert code == 3
    assert "source 'tx': partition ds=2026-01-13 of ml_raw.card_transactions is missing" in err
    code, _, err = _run([sys.executable, str(REPO / "jobs" / "build_features.py"), "card_fraud", "--date", "2026-1-12", *flags], env, state)
    assert (code, "--date '2026-1-12' is not an ISO date: use YYYY-MM-DD, e.g. 2026-01-31." in err) == (2, True)
    code, _, err = _run([sys.executable, str(REPO / "jobs" / "build_features.py"), "card_frod", "--date", "2026-01-12", *flags], env, state)
    assert (code, "no feature spec named 'card_frod'" in err) == (2, True)
