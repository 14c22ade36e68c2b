"""Strict SSH against the real sshd hosts: host keys (edge and bastion), bastion-only prod, timeouts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from sparkml_ops.config import SshHost
from sparkml_ops.errors import HostKeyError, RemoteError
from sparkml_ops.io.ssh import SshOptions, connect
from tests.deploy.conftest import HOSTS, REPO

pytestmark = pytest.mark.ssh


def options(known_hosts: Path, timeout: float = 5.0) -> SshOptions:
    return SshOptions(known_hosts, HOSTS / "ssh_config", HOSTS / "client_key", timeout, 60.0)


def host_key(name: str) -> str:
    return (HOSTS / "hosts" / name / "ssh_host_ed25519_key.pub").read_text().split()[1]


def swapped_known_hosts(tmp_path: Path, victim: str, impostor: str) -> Path:
    """known_hosts where ``victim``'s key is replaced by ``impostor``'s (as after a reinstall or an attack)."""
    path = tmp_path / "known_hosts"
    path.write_text((HOSTS / "known_hosts").read_text().replace(host_key(victim), host_key(impostor)))
    return path


def test_edge_and_prod_hosts_answer_with_verified_keys(sshd_hosts):
    opts = options(HOSTS / "known_hosts")
    dev = connect(SshHost(host="dev1"), opts)
    assert dev.run("ip -4 -o addr show eth0").stdout.split()[3] == "10.77.0.21/24"
    dev.close()
    prod = connect(SshHost(host="prod3"), opts)  # ProxyJump bastion, from ssh_config
    assert prod.run("ip -4 -o addr show eth0").stdout.split()[3] == "10.77.1.13/24"
    prod.close()


def test_prod_is_reachable_only_through_the_bastion(sshd_hosts):
    with pytest.raises(RemoteError, match=r"cannot connect to 10\.77\.1\.11 within 2s"):
        connect(SshHost(host="10.77.1.11", user="root"), options(HOSTS / "known_hosts", 2.0))
    via = connect(SshHost(host="10.77.1.11", user="root"), options(HOSTS / "known_hosts"), bastion=SshHost(host="bastion"))
    assert via.run("echo ok").stdout == "ok\n"
    via.close()


def test_changed_edge_host_key_is_refused_with_how_to_fix(sshd_hosts, tmp_path):
    kh = swapped_known_hosts(tmp_path, "dev1", "test1")
    with pytest.raises(HostKeyError) as exc:
        connect(SshHost(host="dev1"), options(kh))
    err = exc.value
    assert err.exit_code == 6
    assert err.message.startswith("SSH host key of 10.77.0.21 has CHANGED: it offered ssh-ed25519 SHA256:")
    assert f"but {kh} expects SHA256:" in err.message
    assert err.hint.endswith(f"then replace the old line (ssh-keygen -R 10.77.0.21 -f {kh}) and add it: "
                             f"ssh-keyscan 10.77.0.21 >> {kh}")


def test_changed_bastion_key_is_refused_before_any_prod_host_is_contacted(sshd_hosts, tmp_path):
    kh = swapped_known_hosts(tmp_path, "bastion", "dev1")
    with pytest.raises(HostKeyError, match=r"^SSH host key of 10\.77\.0\.10 has CHANGED.*\(connecting to prod1\)"):
        connect(SshHost(host="prod1"), options(kh))
    with pytest.raises(HostKeyError, match=r"SSH host key of 10\.77\.0\.10 has CHANGED"):
        connect(SshHost(host="10.77.1.11", user="root"), options(kh), bastion=SshHost(host="bastion"))


def test_unknown_host_key_is_refused_never_added(sshd_hosts, tmp_path):
    kh = tmp_path / "known_hosts"
    kh.write_text("")
    with pytest.raises(HostKeyError) as exc:
        connect(SshHost(host="test1"), options(kh))
    assert exc.value.message.startswith("SSH host key of 10.77.0.31 is unknown (ssh-ed25519 SHA256:")
    assert exc.value.message.endswith(f"it is not in {kh}; connection refused.")
    assert kh.read_text() == ""


def test_missing_known_hosts_file_is_a_clear_error(sshd_hosts, tmp_path):
    with pytest.raises(HostKeyError, match=r"known_hosts file .*/nope \(deploy.known_hosts\) does not exist"):
        connect(SshHost(host="dev1"), options(tmp_path / "nope"))


def test_a_second_checkout_cannot_start_hosts_over_ours_and_says_where_they_run(sshd_hosts, tmp_path):
    # The namespaces and addresses are machine-wide: another clone's `start` would have answered the SSH
    # tests with our hosts' keys (every host-key check failing). It stops at once with exit code 7.
    other = tmp_path / "clone" / "scripts"
    other.mkdir(parents=True)
    shutil.copy2(REPO / "scripts" / "sshd-hosts", other / "sshd-hosts")
    proc = subprocess.run([str(other / "sshd-hosts"), "start"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 7, proc.stderr
    assert proc.stderr.startswith(f"sshd-hosts: error: the test hosts are running from another checkout ({REPO}, pid ")
    assert proc.stderr.rstrip().endswith(f"stop them there with {REPO}/scripts/sshd-hosts stop, then start again")
    assert not (tmp_path / "clone" / ".state").exists()  # nothing of its own was set up
    ours = subprocess.run([str(REPO / "scripts" / "sshd-hosts"), "status"], capture_output=True, text=True, timeout=60)
    assert ours.returncode == 0, ours.stdout
