"""HDFS publish and the HDFS audit trail of real deploys.

dev1 (a real sshd host in its own network namespace) runs ``hdfs dfs`` (Hadoop's FsShell, see
scripts/edge-hdfs) against the real test cluster through the bridge; the checks read HDFS back from
this host over WebHDFS. Tests run in file order and share one deploy run of their own.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from sparkml_ops.deploy import service
from tests.deploy.conftest import DeployRun, own_deploy_run

pytestmark = [pytest.mark.ssh, pytest.mark.cluster]
PUBLISHED = ["conf.tar.gz", "env.tar.gz", "jobs", "manifest.json", "smoke.py"]


@pytest.fixture(scope="module")
def run(deploy_run: DeployRun, edge_hdfs, tmp_path_factory: pytest.TempPathFactory):
    """Own base_dir and hdfs_dir (dev1's trail starts empty here), sharing the session's builds."""
    with own_deploy_run(deploy_run, "h", tmp_path_factory) as own:
        yield own


def hdfs_sha256(client, path: str) -> str:
    digest = hashlib.sha256()
    with client.read(path, chunk_size=1 << 20) as chunks:
        for chunk in chunks:
            digest.update(chunk)
    return digest.hexdigest()


def tree(client, path: str) -> dict[str, tuple[int, int]]:
    """Every file under ``path``: (fileId, modificationTime); a rewrite changes both."""
    out = {}
    for name, st in client.list(path, status=True):
        if st["type"] == "DIRECTORY":
            out.update({f"{name}/{k}": v for k, v in tree(client, f"{path}/{name}").items()})
        else:
            out[name] = (st["fileId"], st["modificationTime"])
    return out


def staging_dirs(client, run: DeployRun) -> list[str]:
    return [n for n in client.list(run.hdfs_dir) if n.startswith(".tmp-")]


def assert_published(client, run: DeployRun, build_id: str) -> None:
    target = f"{run.hdfs_dir}/{build_id}"
    manifest = json.loads((run.builds / build_id / "manifest.json").read_text())
    jobs = sorted(n for n in manifest["files"] if n.startswith("jobs/"))
    assert sorted(client.list(target)) == PUBLISHED
    assert sorted(tree(client, target)) == sorted(["conf.tar.gz", "env.tar.gz", "manifest.json", "smoke.py", *jobs])
    for name in ["conf.tar.gz", "env.tar.gz", "smoke.py", *jobs]:
        assert hdfs_sha256(client, f"{target}/{name}") == manifest["files"][name], name
    stored = hashlib.sha256((run.builds / build_id / "manifest.json").read_bytes()).hexdigest()
    assert hdfs_sha256(client, f"{target}/manifest.json") == stored


def modes(client, path: str) -> set[tuple[str, str]]:
    """(type, permission) of ``path`` and of everything under it."""
    out = {("DIRECTORY", client.status(path)["permission"])}
    for name, st in client.list(path, status=True):
        out |= modes(client, f"{path}/{name}") if st["type"] == "DIRECTORY" else {(st["type"], st["permission"])}
    return out


def test_deploy_publishes_env_jobs_manifest_and_smoke_under_the_build_id(run, builds, edge_hdfs):
    a, _ = builds
    # dev1's HDFS client creates private files here (umask 077, as some banks set it). The build is
    # published world-readable all the same: YARN then localizes its env once per NodeManager for
    # every job (PUBLIC visibility, see tests/cluster/test_yarn_jobs.py), not once per job.
    private = f"deploy.hdfs_command={run.settings('dev').deploy.hdfs_command} -D fs.permissions.umask-mode=077"
    service.deploy_build(run.settings("dev", private), run.builds, a, user="alice")
    assert_published(edge_hdfs, run, a)
    assert modes(edge_hdfs, f"{run.hdfs_dir}/{a}") == {("DIRECTORY", "755"), ("FILE", "644")}
    assert staging_dirs(edge_hdfs, run) == []


def test_redeploying_the_same_build_rewrites_nothing_on_hdfs(run, builds, edge_hdfs):
    a, _ = builds
    before = tree(edge_hdfs, f"{run.hdfs_dir}/{a}")
    service.deploy_build(run.settings("dev"), run.builds, a, user="alice")
    assert tree(edge_hdfs, f"{run.hdfs_dir}/{a}") == before
    assert staging_dirs(edge_hdfs, run) == []


def test_a_publish_interrupted_before_the_rename_is_redone_by_the_next_deploy(run, builds, edge_hdfs):
    _, b = builds
    # What a publish killed mid -put leaves: a staging directory with a partial file, no target.
    edge_hdfs.write(f"{run.hdfs_dir}/.tmp-{b}-dev/env.tar.gz", b"the first megabytes of")
    service.deploy_build(run.settings("dev"), run.builds, b, user="bob")
    assert_published(edge_hdfs, run, b)
    assert staging_dirs(edge_hdfs, run) == []


def test_hdfs_audit_trail_holds_the_edge_records_in_order_after_deploys_and_rollback(run, builds, edge_hdfs):
    a, b = builds
    service.rollback(run.settings("dev"), user="carol", reason="bad release")
    edge = [json.loads(line) for line in (run.host_dir("dev1") / "audit.jsonl").read_text().splitlines()]
    with edge_hdfs.read(f"{run.hdfs_dir}/_audit/dev.jsonl", encoding="utf-8") as reader:
        on_hdfs = [json.loads(line) for line in reader.read().splitlines()]
    assert [(r["action"], r["build"], r["user"]) for r in edge] == [
        ("deploy", a, "alice"), ("deploy", a, "alice"), ("deploy", b, "bob"), ("rollback", a, "carol")]
    assert on_hdfs == edge
