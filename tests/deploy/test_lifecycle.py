"""The whole life of two builds on real sshd hosts: deploy, promote through the bastion, rollback,
emergency, a dropped upload, status and the audit trail. Tests run in file order and share state."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from sparkml_ops.deploy import service
from sparkml_ops.deploy.service import DeployRequest
from sparkml_ops.errors import RefusedError, RemoteError, UsageError
from sparkml_ops.identifiers import parse_version_ref
from tests.deploy.conftest import GEN_CONF, fab

pytestmark = pytest.mark.ssh
SNAPSHOTS: dict[str, bytes] = {}


def current(run, host: str) -> str | None:
    try:
        return Path(os.readlink(run.host_dir(host) / "current")).name
    except FileNotFoundError:
        return None


def audit(run, host: str) -> list[dict]:
    path = run.host_dir(host) / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_deploy_to_dev_installs_smoke_tests_and_switches(deploy_run, builds):
    a, _ = builds
    report = service.deploy_build(deploy_run.settings("dev"), deploy_run.builds, a, user="alice")
    assert [(o.host, o.ok) for o in report.outcomes] == [("dev1", True)]
    assert report.bytes_sent == (deploy_run.builds / a / f"{a}.tar").stat().st_size
    rel = deploy_run.host_dir("dev1") / "releases" / a
    assert current(deploy_run, "dev1") == a
    assert os.readlink(deploy_run.host_dir("dev1") / "current") == f"releases/{a}"  # relative: survives moves
    assert (rel / ".installed").exists() and (rel / ".smoke-ok").exists()
    assert (rel / "venv" / "bin" / "sparkml-ops").exists()
    assert not list((deploy_run.host_dir("dev1") / "incoming").iterdir())
    (rec,) = audit(deploy_run, "dev1")
    assert {k: rec[k] for k in ("env", "host", "action", "build", "user", "result")} == {
        "env": "dev", "host": "dev1", "action": "deploy", "build": a, "user": "alice", "result": "ok"}
    assert "previous" not in rec and rec["tarball_sha256"] and rec["time"].endswith("+00:00")


def test_deploy_to_test(deploy_run, builds):
    a, _ = builds
    service.deploy_build(deploy_run.settings("test"), deploy_run.builds, a, user="alice")
    assert current(deploy_run, "test1") == a
    SNAPSHOTS["test1"] = (deploy_run.host_dir("test1") / "audit.jsonl").read_bytes()


def test_promotion_without_change_id_or_soak_is_refused(deploy_run, builds):
    a, _ = builds
    target = deploy_run.settings("prod", "deploy.promotion.min_soak_s=3600")
    source = deploy_run.settings("test")
    with pytest.raises(RefusedError) as exc:
        service.promote(target, source, deploy_run.builds, a, DeployRequest("alice", None, ("bob",)))
    assert exc.value.message == "promotion to prod refused: a change id is required (--change)."
    with pytest.raises(RefusedError) as exc:
        service.promote(target, source, deploy_run.builds, a, DeployRequest("alice", "CHG-1001", ()))
    assert exc.value.message == "promotion to prod refused: 1 approval(s) required, got 0."
    with pytest.raises(RefusedError) as exc:
        service.promote(target, source, deploy_run.builds, a, DeployRequest("alice", "CHG-1001", ("bob",)))
    assert exc.value.message.startswith(f"promotion of {a} to prod refused: it has soaked in test for ")
    assert exc.value.message.endswith("the minimum is 1.0h.")
    assert current(deploy_run, "prod1") is None and current(deploy_run, "prod2") is None


def test_fab_promote_exits_7_when_refused(deploy_run, builds):
    a, _ = builds
    sets = [x for o in deploy_run.overrides("prod") for x in ("--set", o)]
    res = fab("promote", "--build", a, "--to", "prod", "--conf-dir", str(GEN_CONF), *sets)
    assert res.returncode == 7, res.stderr
    assert "promotion to prod refused: a change id is required (--change)." in res.stderr


def test_promotion_after_soak_deploys_the_same_bytes_through_the_bastion(deploy_run, builds):
    a, _ = builds
    target = deploy_run.settings("prod", "deploy.promotion.min_soak_s=2")
    soaked_since = audit(deploy_run, "test1")[-1]["time"]
    time.sleep(2)
    report = service.promote(target, deploy_run.settings("test"), deploy_run.builds, a,
                             DeployRequest("alice", "CHG-1001", ("bob",)))
    assert sorted(o.host for o in report.outcomes if o.ok) == ["prod1", "prod2"]
    for host in ("prod1", "prod2"):
        assert current(deploy_run, host) == a
        rec = audit(deploy_run, host)[-1]
        assert (rec["action"], rec["change_id"], rec["approvals"], rec["user"]) == ("promote", "CHG-1001", ["bob"], "alice")
        assert rec["tarball_sha256"] == audit(deploy_run, "test1")[-1]["tarball_sha256"]
    assert soaked_since < audit(deploy_run, "prod1")[-1]["time"]


def _writers_session(path: Path, listener: str) -> list[str]:
    """The process writing ``path`` (the sftp server) and its sshd session processes up to ``listener``."""
    # By inode: the sshd sees the host's directory at another path, in its own mount namespace.
    target = (path.stat().st_dev, path.stat().st_ino)
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            if not any((st.st_dev, st.st_ino) == target for st in map(os.stat, fd_dir.iterdir())):
                continue
            chain, pid = [], fd_dir.parent.name
            while pid not in (listener, "0", "1"):
                chain.append(pid)
                pid = (Path("/proc") / pid / "stat").read_text().rsplit(")", 1)[1].split()[1]
            return chain if pid == listener else []
        except OSError:  # the process (or one of its descriptors or parents) ended while we looked
            continue
    return []


def _kill_session_when(run, host: str, path: Path, min_bytes: int, done: threading.Event) -> None:
    """Drop the one SSH connection writing ``path`` on ``host`` once it holds ``min_bytes``.

    Only that connection's sshd session is killed: tests on other xdist workers hold their own sessions
    to the same host, and killing every session there dropped their deploys too."""
    listener = (run.host_dir(host).parents[1] / "sshd.pid").read_text().strip()
    while not done.is_set():
        if path.exists() and path.stat().st_size >= min_bytes:
            chain = _writers_session(path, listener)
            for pid in chain:
                subprocess.run(["kill", "-9", pid], check=False)
            if chain:
                return
        time.sleep(0.01)


def test_connection_dropped_mid_upload_leaves_current_untouched_and_a_rerun_resumes(deploy_run, builds):
    a, b = builds
    part = deploy_run.host_dir("dev1") / "incoming" / f"{b}.tar.part"
    size = (deploy_run.builds / b / f"{b}.tar").stat().st_size
    done = threading.Event()
    killer = threading.Thread(target=_kill_session_when, args=(deploy_run, "dev1", part, size // 4, done))
    killer.start()
    try:
        with pytest.raises(RemoteError) as exc:
            service.deploy_build(deploy_run.settings("dev"), deploy_run.builds, b, user="alice")
    finally:
        done.set()
        killer.join()
    assert f"upload of {b}.tar to" in exc.value.message and "interrupted" in exc.value.message
    assert exc.value.hint == "Run the same command again: the upload resumes and nothing was switched."
    assert current(deploy_run, "dev1") == a
    assert size // 4 <= part.stat().st_size < size
    report = service.deploy_build(deploy_run.settings("dev"), deploy_run.builds, b, user="alice")
    assert 0 < report.bytes_sent <= size - size // 4
    assert current(deploy_run, "dev1") == b


def test_switch_is_atomic_for_a_concurrent_reader(deploy_run, builds):
    """A reader polling `current` while it is switched four times never finds it missing or dangling."""
    a, b = builds
    link = deploy_run.host_dir("dev1") / "current"
    seen, missing, reads, stop = set(), [], [0], threading.Event()

    def reader():
        while not stop.is_set():
            reads[0] += 1
            try:
                seen.add(os.readlink(link))
                if not os.path.isdir(link):
                    missing.append("dangling")
            except FileNotFoundError:
                missing.append("missing")

    t = threading.Thread(target=reader)
    t.start()
    try:
        dev = deploy_run.settings("dev")
        service.rollback(dev, user="alice", reason="switch test 1")
        service.deploy_build(dev, deploy_run.builds, b, user="alice")
        service.rollback(dev, user="alice", reason="switch test 2")
        service.deploy_build(dev, deploy_run.builds, b, user="alice")
    finally:
        stop.set()
        t.join()
    assert missing == [] and reads[0] > 1000
    assert seen == {f"releases/{a}", f"releases/{b}"}
    assert current(deploy_run, "dev1") == b
    assert not [p for p in deploy_run.host_dir("dev1").iterdir() if p.name.startswith(".current-")]


def test_rollback_needs_a_reason_and_goes_back_to_the_previous_release(deploy_run, builds):
    a, b = builds
    dev = deploy_run.settings("dev")
    with pytest.raises(UsageError) as exc:
        service.rollback(dev, user="alice", reason=" ")
    assert exc.value.message == "rollback needs a reason (--reason \"...\"); it is recorded in the audit trail."
    sets = [x for o in deploy_run.overrides("dev") for x in ("--set", o)]
    res = fab("rollback", "--env", "dev", "--conf-dir", str(GEN_CONF), *sets)
    assert res.returncode == 2 and "rollback needs a reason" in res.stderr
    res = fab("rollback", "--env", "dev", "--reason", "bad scores in dev", "--conf-dir", str(GEN_CONF), *sets)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[1].split()[:2] == ["dev1", "ok"]
    assert current(deploy_run, "dev1") == a
    rec = audit(deploy_run, "dev1")[-1]
    assert (rec["action"], rec["build"], rec["previous"], rec["reason"]) == ("rollback", a, b, "bad scores in dev")


def test_emergency_promotion_needs_a_reason_and_is_recorded(deploy_run, builds):
    a, b = builds
    # One prod node is enough here (each install costs a smoke test); prod2 keeps the promoted build.
    target = deploy_run.settings("prod", "deploy.edge_hosts=[{host: prod1}]")
    source = deploy_run.settings("test")
    with pytest.raises(UsageError, match="--emergency needs a reason of at least 10 characters"):
        service.promote(target, source, deploy_run.builds, b, DeployRequest("alice", reason="now"))
    report = service.promote(target, source, deploy_run.builds, b,
                             DeployRequest("alice", reason="INC-77 scoring outage, fix in B"))
    assert [o.host for o in report.outcomes if o.ok] == ["prod1"]
    rec = audit(deploy_run, "prod1")[-1]
    assert (rec["action"], rec["build"], rec["previous"], rec["reason"]) == (
        "emergency", b, a, "INC-77 scoring outage, fix in B")
    assert current(deploy_run, "prod1") == b and current(deploy_run, "prod2") == a
    service.rollback(target, user="alice", reason="emergency fix did not help")
    assert current(deploy_run, "prod1") == a


def test_promote_model_streams_a_registry_version_between_clusters(deploy_run, builds):
    from sklearn.linear_model import LogisticRegression

    from sparkml_ops.registry import Provenance, open_registry

    who = Provenance(user="trainer", host="ci")
    src = open_registry(deploy_run.settings("test"))
    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    mv = src.publish("fraud", model, flavor="sklearn", provenance=who)
    src.set_alias("fraud", "champion", mv.version, provenance=who)
    sets = [x for o in deploy_run.overrides("prod") for x in ("--set", o)]
    res = fab("promote-model", "--model", f"fraud:{mv.version}", "--from", "test", "--to", "prod",
              "--conf-dir", str(GEN_CONF), *sets)
    assert res.returncode == 0, res.stderr
    dst = open_registry(deploy_run.settings("prod"))
    got = dst.resolve("fraud:1")
    assert got.manifest["imported_from"]["version"] == mv.version
    assert dst.load("fraud:1").model.predict([[3.0]]).tolist() == [1]
    rec = audit(deploy_run, "prod1")[-1]
    assert (rec["action"], rec["model"], rec["from_env"], rec["result"]) == ("promote-model", "fraud:1", "test", "ok")
    assert rec["bytes"] > 0
    res = fab("promote-model", "--model", "fraud:9", "--from", "test", "--to", "prod", "--conf-dir", str(GEN_CONF), *sets)
    assert res.returncode == 6 and "streaming test1 -> prod1 failed" in res.stderr
    with pytest.raises(UsageError, match="model reference 'fraud' is invalid: use NAME:VERSION, e.g. fraud:3."):
        service.promote_model(deploy_run.settings("test"), deploy_run.settings("prod"), parse_version_ref("fraud"),
                              user="alice")


def test_status_shows_what_runs_where_as_table_and_json(deploy_run, builds):
    a, b = builds
    sets = [x for o in deploy_run.overrides("dev") for x in ("--set", o)]
    res = fab("status", "--json", "--conf-dir", str(GEN_CONF), *sets)
    assert res.returncode == 0, res.stderr
    rows = {r["host"]: r for r in json.loads(res.stdout)}
    assert set(rows) == {"dev1", "test1", "prod1", "prod2"}
    assert (rows["prod1"]["current"], rows["prod1"]["action"], rows["prod1"]["by"]) == (a, "rollback", "alice")
    assert (rows["prod2"]["current"], rows["prod2"]["action"], rows["prod2"]["change_id"]) == (a, "promote", "CHG-1001")
    assert (rows["test1"]["current"], rows["test1"]["action"]) == (a, "deploy")
    assert rows["test1"]["commit"] == audit(deploy_run, "test1")[-1]["commit"]
    assert sorted(rows["prod1"]["releases"]) == sorted([a, b]) and rows["prod2"]["releases"] == [a]
    models = {m["name"]: m for m in rows["test1"]["models"]}
    assert models["fraud"]["aliases"] == {"champion": 1}
    res = fab("status", "--env", "prod", "--conf-dir", str(GEN_CONF), *sets)
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["env", "host", "current", "since", "by", "action", "commit", "change", "models"]
    assert [line.split()[:3] for line in lines[1:]] == [["prod", "prod1", a], ["prod", "prod2", a]]


def test_audit_trail_holds_every_action_in_order_and_is_append_only(deploy_run, builds):
    a, b = builds
    # The failed attempt is recorded on a fresh connection after the dropped session; that record is
    # best effort (the node may be unreachable right then), so it may be absent, but never out of place.
    dev1 = [(r["action"], r["build"], r["result"]) for r in audit(deploy_run, "dev1")]
    if ("deploy", b, "failed") not in dev1:
        dev1.insert(1, ("deploy", b, "failed"))
    assert dev1 == [
        ("deploy", a, "ok"), ("deploy", b, "failed"), ("deploy", b, "ok"), ("rollback", a, "ok"),
        ("deploy", b, "ok"), ("rollback", a, "ok"), ("deploy", b, "ok"), ("rollback", a, "ok")]
    assert [(r["action"], r.get("build") or r.get("model")) for r in audit(deploy_run, "prod1")] == [
        ("promote", a), ("emergency", b), ("rollback", a), ("promote-model", "fraud:1"), ("promote-model", "fraud:9")]
    assert [(r["action"], r["build"]) for r in audit(deploy_run, "prod2")] == [("promote", a)]
    assert [(r["action"], r["build"]) for r in audit(deploy_run, "test1")] == [("deploy", a)]
    assert (deploy_run.host_dir("test1") / "audit.jsonl").read_bytes().startswith(SNAPSHOTS["test1"])
    times = [r["time"] for r in audit(deploy_run, "dev1")]
    assert times == sorted(times)


def test_old_releases_are_pruned_but_never_current_or_previous(deploy_run, builds):
    from sparkml_ops.config import SshHost
    from sparkml_ops.deploy import release
    from sparkml_ops.io.ssh import SshOptions, connect

    a, b = builds
    settings = deploy_run.settings("dev")
    rels = deploy_run.host_dir("dev1") / "releases"
    # Install times: old-1 < old-2 < old-3 (10-digit stamps, as real ones); keep the newest 2.
    for i, name in enumerate(("old-1", "old-2", "old-3")):
        (rels / name).mkdir()
        (rels / name / ".installed").touch()
        os.utime(rels / name / ".installed", (999_999_998 + i, 999_999_998 + i))
    for name in (a, b):  # current and previous are the oldest here: still kept
        os.utime(rels / name / ".installed", (1, 1))
    conn = connect(SshHost(host="dev1"), SshOptions.from_settings(settings.deploy))
    try:
        removed = release.prune(conn, release.Layout.of(settings.deploy), 2, {a, b})
    finally:
        conn.close()
    assert removed == ["old-1"]
    assert sorted(p.name for p in rels.iterdir()) == sorted([a, b, "old-2", "old-3"])
