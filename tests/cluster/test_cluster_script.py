"""scripts/cluster itself: faults give one clear message and a way out; stop leaves nothing behind.

These tests run a second, private cluster (own state dir under .state/, ports from 27000) so that
killing and restarting daemons never disturbs the shared cluster other tests use.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from hdfs import InsecureClient

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "cluster"
PORT_BASE = 27000
NN_PORT, NN_HTTP_PORT, HS2_PORT, PG_PORT = PORT_BASE + 20, PORT_BASE + 70, PORT_BASE + 100, PORT_BASE + 432


@pytest.fixture(scope="module")
def state_dir() -> Path:
    # Under the repo, not pytest's 0700 tmp dir: PostgreSQL runs as the 'postgres' user when we are root.
    path = REPO / ".state" / f"cluster-test-{uuid.uuid4().hex[:8]}"
    yield path
    run_script("stop", "--force", state=path)
    shutil.rmtree(path, ignore_errors=True)


def run_script(*args: str, state: Path, env: dict | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SPARKML_")}
    base.update(env or {})
    base.update(SPARKML_CLUSTER_STATE_DIR=str(state), SPARKML_CLUSTER_PORT_BASE=str(PORT_BASE))
    return subprocess.run([str(SCRIPT), *args], env=base, capture_output=True, text=True, timeout=timeout, check=False)


def processes_of(state: Path) -> list[str]:
    """Live processes that belong to the private cluster: tagged with its state dir or running inside it."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if str(state) in cmdline or cwd == str(state) or cwd.startswith(f"{state}/"):
            found.append(f"{proc.name}: {cmdline[:120]}")
    return found


def port_listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def error_line(proc: subprocess.CompletedProcess) -> str:
    return next(line for line in proc.stderr.splitlines() if line.startswith("cluster: error:"))


def test_start_refuses_a_port_that_is_taken(state_dir):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", NN_PORT))
        squatter.listen()
        proc = run_script("start", state=state_dir)
    comm = Path("/proc/self/comm").read_text().strip()

    assert proc.returncode == 2
    assert error_line(proc) == (
        f"cluster: error: port {NN_PORT} (NameNode RPC) on 127.0.0.1 is already in use by {comm} (pid {os.getpid()}). "
        "Stop that process, or move all cluster ports with SPARKML_CLUSTER_PORT_BASE (conf/cluster.yaml assumes 28000)."
    )
    assert not (state_dir / "cluster.json").exists()
    assert processes_of(state_dir) == []


def test_start_without_java_says_what_to_install(state_dir, tmp_path):
    # A PATH with every tool of this machine except java/javac.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        for tool in Path(directory).glob("*") if Path(directory).is_dir() else ():
            if not tool.name.startswith("java") and not (bin_dir / tool.name).exists():
                (bin_dir / tool.name).symlink_to(tool)
    proc = run_script("start", state=state_dir, env={"PATH": str(bin_dir), "JAVA_HOME": ""})

    assert proc.returncode == 2
    assert error_line(proc) == (
        "cluster: error: Java is not installed: no java on PATH and no JAVA_HOME. Install a JDK 17+ "
        "(Debian: apt-get install openjdk-17-jdk-headless), then run scripts/cluster start again."
    )


def test_start_with_a_java_home_without_java(state_dir, tmp_path):
    proc = run_script("start", state=state_dir, env={"JAVA_HOME": str(tmp_path)})

    assert proc.returncode == 2
    assert error_line(proc) == (
        f"cluster: error: JAVA_HOME={tmp_path} has no bin/java. Install a JDK 17+ (Debian: apt-get install "
        "openjdk-17-jdk-headless) and point JAVA_HOME at it, or unset JAVA_HOME."
    )


def test_start_refuses_an_uninitialised_postgres_dir(state_dir):
    pg = state_dir / "pg"
    pg.mkdir(parents=True, exist_ok=True)
    (pg / "postgresql.conf").write_text("# left by an interrupted initdb\n")

    proc = run_script("start", state=state_dir)

    assert proc.returncode == 2
    assert error_line(proc) == (
        f"cluster: error: PostgreSQL data dir {pg} is not initialised (no PG_VERSION: an interrupted initdb?). "
        f"It holds no usable metastore: remove it with 'rm -rf {pg}', then run scripts/cluster start "
        "(creates an empty metastore)."
    )
    assert not (state_dir / "cluster.json").exists()
    assert processes_of(state_dir) == []


def _pids(state: Path) -> dict[str, int]:
    run = state / "run"
    pids = {
        "minicluster": int((run / "minicluster.pid").read_text()),
        "thriftserver": int((run / "thriftserver.pid").read_text()),
        "postgres": int((state / "pg" / "postmaster.pid").read_text().split()[0]),
    }
    if (run / "kdc.pid").is_file():  # the secure cluster's KDC
        pids["kdc"] = int((run / "kdc.pid").read_text())
    return pids


def _client(facts: dict, monkeypatch):
    """A WebHDFS client of the private cluster as its framework user (from its own keytab when secure)."""
    if facts.get("security") != "kerberos":
        return InsecureClient(facts["webhdfs_url"], user=facts["hdfs_user"])
    from sparkml_ops.config import RegistrySettings
    from sparkml_ops.io.storage import open_storage

    monkeypatch.setenv("KRB5_CONFIG", facts["krb5_conf"])  # the private cluster's own realm and KDC
    auth = {"method": "kerberos", "principal": facts["job_principal"], "keytab": facts["job_keytab"]}
    return open_storage(RegistrySettings(uri=facts["webhdfs_url"].replace("http://", "webhdfs://") + "/", auth=auth)).client


def _read(client, path: str) -> bytes:
    with client.read(path) as reader:
        return reader.read()


def test_crash_then_stop_then_start_recovers_and_stop_leaves_nothing(state_dir, monkeypatch):
    # The way out the previous test's message gave:
    shutil.rmtree(state_dir / "pg", ignore_errors=True)
    started = run_script("start", state=state_dir)
    assert started.returncode == 0, started.stderr[-3000:]
    facts = json.loads((state_dir / "cluster.json").read_text())
    assert facts["webhdfs_url"] == f"http://127.0.0.1:{NN_HTTP_PORT}"
    assert facts["hiveserver2_port"] == HS2_PORT
    client = _client(facts, monkeypatch)
    client.write("/tmp/survivor.txt", data=b"still here")
    # The Thrift server's Hive session dirs and Spark's block manager dirs are under the state dir, not one
    # more dir in /tmp per start (a killed server never deletes its own).
    assert list((state_dir / "hive").glob("*_resources"))
    assert list((state_dir / "spark-local").glob("blockmgr-*"))

    again = run_script("start", state=state_dir)
    assert again.returncode == 0
    assert "cluster: already running" in again.stderr

    pids = _pids(state_dir)
    os.kill(pids["thriftserver"], signal.SIGKILL)
    time.sleep(2)
    partial = run_script("start", state=state_dir)
    assert partial.returncode == 1
    assert "cluster: error: the cluster is partly running (a daemon crashed?):" in partial.stderr
    assert "Run scripts/cluster stop, then scripts/cluster start." in partial.stderr

    for pid in (pids["minicluster"], pids["postgres"], *([pids["kdc"]] if "kdc" in pids else [])):
        os.kill(pid, signal.SIGKILL)
    time.sleep(3)
    status = run_script("status", state=state_dir)
    assert status.returncode == 1
    assert "crashed (stale pid files): scripts/cluster stop, then scripts/cluster start" in status.stdout

    stopped = run_script("stop", state=state_dir)
    assert stopped.returncode == 0, stopped.stderr
    assert processes_of(state_dir) == []

    restarted = run_script("start", state=state_dir)
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    assert _read(client, "/tmp/survivor.txt") == b"still here"
    assert run_script("status", state=state_dir).returncode == 0

    final = run_script("stop", state=state_dir)
    assert final.returncode == 0
    assert processes_of(state_dir) == []
    assert not (state_dir / "cluster.json").exists()
    assert [p for p in (NN_PORT, NN_HTTP_PORT, HS2_PORT, PG_PORT) if port_listening(p)] == []
    assert run_script("status", state=state_dir).returncode == 3
