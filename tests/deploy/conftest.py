"""Fixtures of the deploy tests: the real sshd hosts of scripts/sshd-hosts and two real builds.

Each test session deploys into its own directory (``deploy.base_dir``) on every host, and dev/test
publish into its own ``deploy.hdfs_dir`` on the test cluster's HDFS; both are removed at the end,
so runs never see each other's releases or audit trails.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HOSTS = REPO / ".state" / "sshd-hosts"
GEN_CONF = HOSTS / "conf"
ALL_HOSTS = ("bastion", "dev1", "test1", "prod1", "prod2", "prod3", "prod4")
# The edge nodes' hdfs client and the facts of the cluster it talks to (written by scripts/sshd-hosts start).
HDFS_CLIENT = HOSTS / "hdfs-client"
HDFS_FACTS = HDFS_CLIENT / "cluster.json"


def publishes_to_hdfs(env: str) -> bool:
    """Whether the generated config of ``env`` has an HDFS target (dev and test, with a running cluster)."""
    import yaml

    conf = yaml.safe_load((GEN_CONF / f"{env}.yaml").read_text()) or {}
    return bool((conf.get("deploy") or {}).get("hdfs_dir"))


@dataclass(frozen=True)
class DeployRun:
    """Where this test session's builds and releases live."""

    builds: Path
    run: str
    registries: Path

    @property
    def base_dir(self) -> Path:
        return HOSTS / "mnt" / self.run

    @property
    def hdfs_dir(self) -> str:
        return f"/sparkml-ops-tests/{self.run}"

    def host_dir(self, host: str) -> Path:
        """The host's own view of ``deploy.base_dir``, seen from this (root) namespace."""
        return HOSTS / "hosts" / host / "root" / self.run

    def overrides(self, env: str, *extra: str) -> list[str]:
        # ${env} is expanded by the config loader, so one --set serves both sides of a promotion.
        # hdfs_dir only where the generated config publishes: prod has no route to the cluster.
        hdfs = [f"deploy.hdfs_dir={self.hdfs_dir}"] if publishes_to_hdfs(env) else []
        return [f"deploy.base_dir={self.base_dir}", f"deploy.builds_dir={self.builds}",
                f"registry.uri=file://{self.registries}/${{env}}", *hdfs, *extra]

    def settings(self, env: str, *extra: str):
        from sparkml_ops.config import load_settings

        return load_settings(env, GEN_CONF, overrides=self.overrides(env, *extra), environ={})


@pytest.fixture(scope="session")
def sshd_hosts() -> Path:
    """The sshd test hosts; started here when scripts/test did not (idempotent, needs root)."""
    script = REPO / "scripts" / "sshd-hosts"
    # Started again (idempotent) when the cluster came up after the hosts: that configures HDFS publish.
    if subprocess.run([script, "status"], capture_output=True).returncode != 0 or not HDFS_FACTS.is_file():
        proc = subprocess.run([script, "start"], capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.fail(f"scripts/sshd-hosts start failed: {proc.stderr}")
    return HOSTS


def edge_facts() -> dict | None:
    """The facts of the cluster the edge nodes publish to (``None`` without one); points this process's
    MIT Kerberos library at that cluster's realm, as the ``cluster`` fixture does."""
    if not HDFS_FACTS.is_file():
        return None
    facts = json.loads(HDFS_FACTS.read_text())
    if facts.get("krb5_conf"):
        os.environ["KRB5_CONFIG"] = facts["krb5_conf"]
    return facts


def edge_hdfs_client():
    """WebHDFS client (this host) of the cluster the edge nodes publish to, or ``None`` if there is none.

    It reads as the framework's HDFS user: svc-sparkml from its keytab on the secure cluster.
    """
    facts = edge_facts()
    if facts is None:
        return None
    from sparkml_ops.config import RegistrySettings
    from sparkml_ops.io.storage import open_storage

    from tests.registry.backends import cluster_auth

    uri = facts["webhdfs_url"].replace("http://", "webhdfs://") + "/"
    return open_storage(RegistrySettings(uri=uri, auth=cluster_auth(facts))).client


@pytest.fixture(scope="session")
def edge_hdfs(sshd_hosts: Path):
    """WebHDFS client of the real cluster that dev and test publish to; fails (never skips) without one."""
    client = edge_hdfs_client()
    if client is None or not publishes_to_hdfs("dev"):
        pytest.fail(f"the sshd hosts do not publish to HDFS ({HDFS_FACTS} missing): start the cluster "
                    "(scripts/cluster start), then scripts/sshd-hosts start; its output says why if it still does not")
    return client


def remove_hdfs_dir(path: str) -> None:
    client = edge_hdfs_client()
    if client is not None:
        try:
            client.delete(path, recursive=True)
        except Exception:  # best effort: the cluster may be gone already; paths are unique per run
            pass


@contextlib.contextmanager
def own_deploy_run(shared: DeployRun, prefix: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeployRun]:
    """A run with its own base_dir and hdfs_dir (dev1's trail starts empty), sharing ``shared``'s builds."""
    own = DeployRun(shared.builds, f"{prefix}-{uuid.uuid4().hex[:10]}", tmp_path_factory.mktemp("registries"))
    try:
        yield own
    finally:
        shutil.rmtree(own.host_dir("dev1"), ignore_errors=True)
        remove_hdfs_dir(own.hdfs_dir)


@pytest.fixture(scope="session")
def deploy_run(sshd_hosts: Path, tmp_path_factory: pytest.TempPathFactory):
    builds = tmp_path_factory.mktemp("builds")
    # Wheels are immutable by name: share the download cache between sessions.
    cache = REPO / ".state" / "builds" / ".wheel-cache"
    cache.mkdir(parents=True, exist_ok=True)
    (builds / ".wheel-cache").symlink_to(cache)
    run = DeployRun(builds, f"t-{uuid.uuid4().hex[:10]}", tmp_path_factory.mktemp("registries"))
    yield run
    for host in ALL_HOSTS:
        shutil.rmtree(run.host_dir(host), ignore_errors=True)
    remove_hdfs_dir(run.hdfs_dir)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=test", "-c", "user.email=test@example.invalid",
                           *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="session")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean clone of the repository's HEAD (the shared working tree may hold others' edits)."""
    dest = tmp_path_factory.mktemp("checkout") / "repo"
    subprocess.run(["git", "clone", "-q", "--shared", str(REPO), str(dest)], check=True)
    return dest


@pytest.fixture(scope="session")
def builds(deploy_run: DeployRun, checkout: Path) -> tuple[str, str]:
    """Two real builds, A (HEAD) and B (one commit later), in the session's build store."""
    from sparkml_ops.deploy.build import build

    settings = deploy_run.settings("dev")
    a = build(settings, checkout, deploy_run.builds, user="builder").build.build_id
    _git(checkout, "commit", "-q", "--allow-empty", "-m", "second build")
    b = build(settings, checkout, deploy_run.builds, user="builder").build.build_id
    return a, b


def fab(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """Run the real ``fab`` from the repository root."""
    return subprocess.run([str(REPO / ".venv" / "bin" / "fab"), *args], cwd=cwd, capture_output=True, text=True,
                          env=dict(os.environ), timeout=600)
