"""A scoring run killed with SIGKILL mid-write, then rerun, leaves exactly the input's rows (own JVMs)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import CONF_DIR, REPO

pytestmark = pytest.mark.spark

ROWS = 500_000


def _cli(state: Path, *args: str, **kwargs) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKML_OPS_")}
    cmd = [sys.executable, "-m", "sparkml_ops.cli", "--conf-dir", str(state / "conf"), "--set", f"state_dir={state}",
           "--set", "spark.master=local[2]", "--set", "spark.conf.spark.sql.shuffle.partitions=2", *args]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kwargs)


def test_killed_scoring_run_then_rerun_has_no_partial_or_duplicate_rows(tmp_path):
    state = tmp_path / "state"
    conf = state / "conf"
    (conf / "models").mkdir(parents=True)
    for name in ("base.yaml", "local.yaml"):
        (conf / name).write_text((CONF_DIR / name).read_text())
    (conf / "models" / "killme.yaml").write_text(textwrap.dedent("""\
        name: killme
        feature_set: kill_fs
        label_table: ml_raw.none
        estimator: {class: sklearn.linear_model.LogisticRegression}
        scoring: {threshold: 0.5}
    """))
    setup = textwrap.dedent(f"""
        import numpy as np
        from sklearn.linear_model import LogisticRegression
        from sparkml_ops.config import load_settings
        from sparkml_ops.io.spark import spark_session
        from sparkml_ops.registry import open_registry, Provenance, Signature
        s = load_settings('local', {str(conf)!r}, ['state_dir={state}', 'spark.master=local[2]'], {{}})
        X = np.random.default_rng(1).normal(size=(1000, 2)); y = (X[:, 0] > 0).astype(int)
        open_registry(s).publish('killme', LogisticRegression().fit(X, y), flavor='sklearn',
            provenance=Provenance(user='t', host='h'), signature=Signature(inputs=[('f1', 'double'), ('f2', 'double')]),
            lineage={{'feature_set': 'kill_fs', 'entity_keys': ['customer_id']}})
        with spark_session(s) as spark:
            spark.sql('CREATE DATABASE IF NOT EXISTS ml_features')
            spark.sql('CREATE TABLE ml_features.kill_fs (customer_id STRING, f1 DOUBLE, f2 DOUBLE) PARTITIONED BY (as_of_date STRING) STORED AS PARQUET')
            spark.sql("INSERT INTO ml_features.kill_fs PARTITION (as_of_date='2026-04-01') "
                      "SELECT concat('c', id), rand(1), rand(2) FROM range({ROWS})")
    """)
    subprocess.run([sys.executable, "-c", setup], cwd=REPO, check=True, timeout=600, capture_output=True)

    victim = _cli(state, "score", "--model", "killme:1", "--date", "2026-04-01")
    table_dir = state / "warehouse" / "ml_scores.db" / "scores"
    deadline = time.monotonic() + 300
    # Kill once Spark has started writing task output (its staging directory exists), before the commit.
    while time.monotonic() < deadline and victim.poll() is None:
        if table_dir.is_dir() and any(p.name.startswith((".spark-staging", ".hive-staging", "_temporary")) for p in table_dir.rglob("*")):
            break
        time.sleep(0.2)
    assert victim.poll() is None, "the scoring run finished before it could be killed: raise ROWS"
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(timeout=60)
    time.sleep(2)  # let the orphaned JVM notice its parent died and release the Derby lock

    rerun = _cli(state, "score", "--model", "killme:1", "--date", "2026-04-01", "--json")
    out, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err[-3000:]
    # Read what a Hive reader sees, without another JVM: visible Parquet files of the partition.
    import pyarrow.parquet as pq

    part = table_dir / "score_date=2026-04-01" / "model_name=killme"
    files = [p for p in part.iterdir() if p.is_file() and not p.name.startswith(("_", "."))]
    keys = pq.ParquetDataset(files).read(columns=["entity_key"]).column("entity_key")
    assert len(keys) == ROWS
    assert len(set(keys.to_pylist())) == ROWS
    assert (part / "_SUCCESS").is_file()
