"""The edge-node Kerberos login without edge nodes: how kinit's words become errors, the login lines
themselves (run here with the machine's MIT kinit), and the registry identity given to the remote CLI.
The real logins on dev1 are in test_secure_edge_deploy.py."""

from __future__ import annotations

import shlex
import subprocess

import pytest

from sparkml_ops.config import DeployKerberos, load_settings
from sparkml_ops.deploy import edge_kerberos
from sparkml_ops.deploy.service import remote_cli
from sparkml_ops.errors import AuthenticationError, EnvironmentCheckError, KdcUnreachableError
from tests.conftest import CONF_DIR

KRB = DeployKerberos(principal="svc-sparkml-prod@EXAMPLE.INTERNAL", keytab="/etc/security/keytabs/svc.keytab")


@pytest.mark.parametrize(("said", "kind", "message"), [
    ("kinit: Cannot contact any KDC for realm 'EXAMPLE.INTERNAL' while getting initial credentials",
     KdcUnreachableError, "edge01: the Kerberos KDC cannot be reached to log in svc-sparkml-prod@EXAMPLE.INTERNAL from "
     "keytab /etc/security/keytabs/svc.keytab: kinit: Cannot contact any KDC for realm 'EXAMPLE.INTERNAL' while getting "
     "initial credentials."),
    ("kinit: Clock skew too great while getting initial credentials", AuthenticationError,
     "edge01: Kerberos refused the login of svc-sparkml-prod@EXAMPLE.INTERNAL from keytab /etc/security/keytabs/svc.keytab: "
     "the clocks of edge01 and the KDC differ too much (kinit: Clock skew too great while getting initial credentials)."),
    ("kinit: Password incorrect while getting initial credentials", AuthenticationError,
     "edge01: Kerberos login of svc-sparkml-prod@EXAMPLE.INTERNAL from keytab /etc/security/keytabs/svc.keytab failed: "
     "kinit: Password incorrect while getting initial credentials."),
    ("bash: line 1: kinit: command not found", EnvironmentCheckError,
     "edge01: kinit is not installed; deploy.kerberos needs the MIT Kerberos client there."),
])
def test_what_kinit_said_becomes_one_error_naming_host_principal_and_keytab(said, kind, message):
    err = edge_kerberos.login_error("edge01", KRB, said)
    assert type(err) is kind
    assert err.message == message


def test_kdc_unreachable_exits_6_and_every_other_login_failure_9():
    assert edge_kerberos.login_error("e", KRB, "kinit: Cannot contact any KDC for realm 'X'").exit_code == 6
    assert edge_kerberos.login_error("e", KRB, "kinit: Client not found in Kerberos database").exit_code == 9


def test_a_failed_login_stops_before_the_command_and_leaves_no_ticket_cache(tmp_path):
    missing = DeployKerberos(principal="svc@EXAMPLE.INTERNAL", keytab=str(tmp_path / "missing.keytab"))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    (tmp_path / "krb5.conf").write_text("[libdefaults]\n  dns_lookup_kdc = false\n")  # a realm without a KDC
    res = subprocess.run(["sh", "-c", edge_kerberos.login_prelude(missing) + "echo the command ran"],
                         capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "TMPDIR": str(scratch), "KRB5_CONFIG": str(tmp_path / "krb5.conf")})
    assert res.returncode == edge_kerberos.LOGIN_FAILED
    assert res.stdout == ""
    assert res.stderr.startswith(f"{edge_kerberos.MARK} kinit: ")
    assert list(scratch.iterdir()) == []


def test_the_login_exports_a_private_cache_of_the_command_and_removes_it_after(tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    prelude = edge_kerberos.login_prelude(KRB)
    # Everything up to kinit, then what the command would see.
    script = prelude.split("if ! krb5_out", 1)[0] + 'echo "$KRB5CCNAME"; ls -ld "$krb5_dir" | cut -c1-10'
    res = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "TMPDIR": str(scratch)})
    cache, mode = res.stdout.split()
    assert cache.startswith(f"FILE:{scratch}/sparkml-ops-krb5.") and cache.endswith("/ccache")
    assert mode == "drwx------"
    assert list(scratch.iterdir()) == []


def test_the_remote_cli_reads_the_registry_as_the_environments_principal_from_its_keytab_there():
    settings = load_settings("prod", CONF_DIR, environ={})
    words = shlex.split(remote_cli(settings))
    sets = [words[i + 1] for i, w in enumerate(words) if w == "--set"]
    assert sets == [f"registry.uri={settings.registry.uri}", "registry.auth.method=kerberos",
                    f"registry.auth.principal={settings.deploy.kerberos.principal}",
                    f"registry.auth.keytab={settings.deploy.kerberos.keytab}"]
    assert settings.deploy.kerberos == DeployKerberos(principal="svc-sparkml-prod@EXAMPLE.INTERNAL",
                                                      keytab="/etc/security/keytabs/svc-sparkml-prod.keytab")
