"""trace across a real `fab deploy`: deploy a build with a change id, score from the release on the edge node,
trace a row from here, and get the deployer's name and the change id back (from the HDFS audit copy, no SSH).

Needs the sshd hosts (scripts/sshd-hosts) publishing to the test cluster's HDFS (scripts/cluster).
"""

from __future__ import annotations

import getpass
import json
import shutil
import subprocess
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from sparkml_ops.config import SshHost
from sparkml_ops.deploy.release import Layout
from sparkml_ops.io.ssh import SshOptions, connect, quote
from tests.deploy.conftest import GEN_CONF, HDFS_FACTS, REPO, DeployRun, fab, remove_hdfs_dir
from tests.registry.backends import cluster_auth

pytestmark = [pytest.mark.ssh, pytest.mark.cluster]
CHANGE = "CHG-1515"
ENTITY = "C00000007"


@pytest.fixture(scope="module")
def run(deploy_run: DeployRun, edge_hdfs, tmp_path_factory: pytest.TempPathFactory):
    """Own base_dir, hdfs_dir, registry and state (Derby metastore, warehouse) shared by dev1 and this host."""
    own = DeployRun(deploy_run.builds, f"tr-{uuid.uuid4().hex[:10]}", tmp_path_factory.mktemp("registries"))
    state = tmp_path_factory.mktemp("trace-state")
    # The rig's environment files plus the project's model config and feature spec, which the chain
    # run from the release needs (the generated conf has only the environments).
    conf = tmp_path_factory.mktemp("trace-conf") / "conf"
    shutil.copytree(GEN_CONF, conf)
    for part in ("models", "features"):
        shutil.copytree(REPO / "conf" / part, conf / part)
    yield own, state, conf
    shutil.rmtree(own.host_dir("dev1"), ignore_errors=True)
    remove_hdfs_dir(own.hdfs_dir)


def _sets(own: DeployRun, state) -> list[str]:
    facts = json.loads(HDFS_FACTS.read_text())
    webhdfs = facts["webhdfs_url"].replace("http://", "webhdfs://").rstrip("/")
    # The HDFS audit copy is read with registry.auth: on the secure cluster, the framework user's keytab.
    auth = [f"registry.auth.{key}={value}" for key, value in cluster_auth(facts).items()]
    return [*own.overrides("dev"), f"state_dir={state}", f"deploy.hdfs_read_uri={webhdfs}", *auth]


def _cli(own: DeployRun, state, conf, *args: str) -> subprocess.CompletedProcess:
    sets = [x for o in _sets(own, state) for x in ("--set", o)]
    return subprocess.run([str(REPO / ".venv" / "bin" / "sparkml-ops"), "--conf-dir", str(conf), "--env", "dev",
                           "--log-level", "ERROR", *sets, *args], capture_output=True, text=True, timeout=900)


def test_a_row_scored_from_a_deployed_release_traces_back_to_the_deployer_and_the_change(run, builds):
    own, state, conf = run
    a, _ = builds
    sets = [x for o in own.overrides("dev") for x in ("--set", o)]
    deployed = fab("deploy", "--env", "dev", "--build", a, "--change", CHANGE, "--conf-dir", str(GEN_CONF), *sets)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr

    # On dev1, the release's own sparkml-ops: its _build_info.json is the provenance of every run.
    settings = own.settings("dev", f"state_dir={state}")
    release = Layout.of(settings.deploy).current / "venv" / "bin" / "sparkml-ops"
    day = datetime.now(UTC).date() - timedelta(days=1)
    start = day - timedelta(days=60)
    base = [str(release), "--conf-dir", str(conf), "--env", "dev", "--set", f"state_dir={state}",
            "--set", f"registry.uri={settings.registry.uri}"]
    steps = [["demo-data", "--start", start.isoformat(), "--days", "61", "--customers", "200", "--tx-per-day", "300"],
             ["train", "card_fraud", "--from", (start + timedelta(days=30)).isoformat(), "--to", (day - timedelta(days=1)).isoformat()],
             ["features", "build", "card_fraud", "--date", day.isoformat()],
             ["score", "--model", "card_fraud@champion", "--date", day.isoformat()]]
    env = " ".join(f"{k}={quote([v])}" for k, v in sorted(settings.deploy.smoke_env.items()))
    script = " && ".join(f"env {env} {quote([*base, *step])}" for step in steps)
    conn = connect(SshHost(host="dev1"), SshOptions.from_settings(settings.deploy))
    try:
        done = conn.run(script, check=False, timeout=1800)
    finally:
        conn.close()
    assert done.exited == 0, done.stdout[-3000:] + done.stderr[-3000:]

    traced = _cli(own, state, conf, "trace", "--model", "card_fraud", "--date", day.isoformat(), "--entity", ENTITY, "--json")
    assert traced.returncode == 0, traced.stdout + traced.stderr
    found = json.loads(traced.stdout)
    assert found["gaps"] == []
    assert found["run"]["build_id"] == a and found["run"]["job"] == "score"
    assert found["model"]["manifest"]["build_id"] == a  # trained from the same release
    record = found["deployment"]["record"]
    assert (record["user"], record["change_id"], record["build"], record["host"]) == (getpass.getuser(), CHANGE, a, "dev1")
    assert found["deployment"]["current_on"] == ["dev1"]

    status = _cli(own, state, conf, "status", "--json")
    assert status.returncode == 0, status.stderr
    releases = json.loads(status.stdout)["releases"]
    assert [(r["host"], r["build"], r["by"], r["change_id"]) for r in releases] == [("dev1", a, getpass.getuser(), CHANGE)]
