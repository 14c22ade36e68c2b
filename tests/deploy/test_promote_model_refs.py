"""``fab promote-model`` refuses a reference the registry would refuse before it contacts any host.

The environments here have one edge node that cannot be reached (a closed port on loopback), so a
task that got as far as connecting would fail with exit 6 and a connection error instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.conftest import fab

NAME_RULE = "use 1-64 characters: a lowercase letter, then lowercase letters, digits, '_' or '-' (e.g. 'fraud', 'churn_v2')."


@pytest.fixture
def unreachable(tmp_path: Path) -> list[str]:
    """fab options for test and prod environments whose only edge node refuses connections."""
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "base.yaml").write_text("{}\n")
    for env in ("test", "prod"):
        (conf / f"{env}.yaml").write_text(
            f"registry:\n  uri: file://{tmp_path}/registry/{env}\n"
            "deploy:\n  edge_hosts:\n    - {host: 127.0.0.1, port: 1, user: nobody}\n")
    (tmp_path / "known_hosts").write_text("")
    (tmp_path / "ssh_config").write_text("")
    return ["--from", "test", "--to", "prod", "--conf-dir", str(conf),
            "--set", f"deploy.known_hosts={tmp_path / 'known_hosts'}", "--set", f"deploy.ssh_config={tmp_path / 'ssh_config'}",
            "--set", "deploy.connect_timeout_s=2"]


@pytest.mark.parametrize(("ref", "message"), [
    ("Fraud:3", f"model name 'Fraud' is invalid: {NAME_RULE}"),
    ("fraud.v2:3", f"model name 'fraud.v2' is invalid: {NAME_RULE}"),
    ("fraud@champion", "model reference 'fraud@champion' is invalid: use NAME:VERSION, e.g. fraud:3."),
    ("fraud:0", "model reference 'fraud:0': version must be a positive integer, e.g. 'fraud:3'."),
])
def test_a_reference_the_registry_refuses_exits_2_before_any_connection(unreachable, ref, message):
    res = fab("promote-model", "--model", ref, *unreachable)
    assert res.returncode == 2, res.stderr
    assert res.stderr.rstrip().endswith(f"ERROR   sparkml_ops: {message}")
    assert "connect" not in res.stderr


def test_a_valid_reference_gets_as_far_as_connecting(unreachable):
    res = fab("promote-model", "--model", "fraud:3", *unreachable)
    assert res.returncode == 6, res.stderr
    assert "cannot connect to 127.0.0.1 within 2s" in res.stderr
