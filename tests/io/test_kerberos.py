"""Kerberos for the registry on the secure test cluster (real MIT KDC, SPNEGO on WebHDFS).

Each credential failure is one clear message naming the principal, the keytab or cache and what to
do, with its exit code, and nothing is written. Principals and keytabs come from the cluster's facts.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sparkml_ops.config import RegistrySettings
from sparkml_ops.errors import AuthenticationError, KdcUnreachableError, PermissionDeniedError
from sparkml_ops.io.kerberos import KerberosLogin, keytab_principals
from sparkml_ops.io.storage import open_storage

from tests.conftest import REPO
from tests.registry.backends import cluster_auth, registry_settings

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def secure(cluster) -> dict:
    """The facts of the secure cluster; these tests need Kerberos (scripts/cluster starts it by default)."""
    if cluster.get("security") != "kerberos":
        pytest.fail("the test cluster runs without Kerberos (SPARKML_CLUSTER_SECURITY=simple): "
                    "restart it with scripts/cluster stop && scripts/cluster start")
    return cluster


@pytest.fixture
def owner(secure, tmp_path):
    """The registry owner's storage (svc-sparkml from its keytab) on a fresh root; removed afterwards."""
    storage = open_storage(registry_settings("hdfs", tmp_path, secure))
    storage.makedirs("")
    yield storage
    storage.client.delete(storage.root, recursive=True)


def settings_as(owner, **auth) -> RegistrySettings:
    return RegistrySettings(uri=owner.uri, auth={"method": "kerberos", **auth}, timeout_s=30)


def kinit(secure: dict, cache: Path, *extra: str, who: str = "job") -> None:
    subprocess.run(["kinit", *extra, "-k", "-t", secure[f"{who}_keytab"], "-c", f"FILE:{cache}", secure[f"{who}_principal"]],
                   check=True, capture_output=True, timeout=60, env={**os.environ, "KRB5_CONFIG": secure["krb5_conf"]})


def test_keytab_login_works_in_a_private_cache_and_never_touches_the_default_one(secure, owner, tmp_path, monkeypatch):
    default = tmp_path / "default-ccache"
    monkeypatch.setenv("KRB5CCNAME", f"FILE:{default}")
    storage = open_storage(settings_as(owner, principal=secure["job_principal"], keytab=secure["job_keytab"]))

    storage.write("fraud/1/model.bin", b"weights")

    assert storage.read_bytes("fraud/1/model.bin") == b"weights"
    assert not default.exists()  # the login went to the process's MEMORY: cache
    assert storage.identity == f"Kerberos principal {secure['job_principal']} (keytab {secure['job_keytab']})"


def test_without_a_keytab_the_users_kinit_ticket_is_used(secure, owner, tmp_path):
    cache = tmp_path / "ccache"
    kinit(secure, cache)
    storage = open_storage(settings_as(owner, principal=secure["job_principal"], ccache=f"FILE:{cache}"))

    storage.write("f.txt", b"by kinit")

    assert owner.read_bytes("f.txt") == b"by kinit"


def refused_write(owner, secure: dict, cache: Path) -> AuthenticationError:
    """The error of a write with the ticket cache ``cache``; checks that nothing was written."""
    storage = open_storage(settings_as(owner, principal=secure["job_principal"], ccache=f"FILE:{cache}"))
    with pytest.raises(AuthenticationError) as exc:
        storage.write("fraud/1/model.bin", b"x")
    assert owner.list("") == []
    return exc.value


def kinit_hint(principal: str) -> str:
    return f"Run 'kinit {principal}' (or 'kinit -k -t KEYTAB {principal}'), or set registry.auth.keytab."


def test_no_ticket_is_a_clear_error_and_nothing_is_written(secure, owner, tmp_path):
    cache = tmp_path / "no-such-ccache"

    error = refused_write(owner, secure, cache)

    assert error.exit_code == 9
    assert str(error) == (f"no valid Kerberos ticket for {secure['job_principal']} (reading FILE:{cache}): "
                          f"No credentials cache found. {kinit_hint(secure['job_principal'])}")


def test_an_expired_ticket_is_a_clear_error(secure, owner, tmp_path):
    cache = tmp_path / "ccache"
    kinit(secure, cache, "-l", "3s")
    time.sleep(4)

    error = refused_write(owner, secure, cache)

    assert error.exit_code == 9
    assert str(error) == (f"the Kerberos ticket of {secure['job_principal']} in FILE:{cache} has expired. "
                          f"{kinit_hint(secure['job_principal'])}")


def test_a_missing_keytab_is_a_clear_error(secure, owner, tmp_path):
    with pytest.raises(AuthenticationError) as exc:
        open_storage(settings_as(owner, principal=secure["job_principal"], keytab=str(tmp_path / "svc.keytab")))

    assert exc.value.exit_code == 9
    assert str(exc.value) == (
        f"Kerberos keytab {tmp_path / 'svc.keytab'} does not exist. Check registry.auth.keytab; "
        "ask your Kerberos administrator for the service account's keytab."
    )


UNREADABLE = textwrap.dedent(
    """
    import os, sys
    import gssapi, hdfs, requests, requests_gssapi  # loaded before the privileges go
    from sparkml_ops.config import RegistrySettings
    from sparkml_ops.errors import SparkMLOpsError
    from sparkml_ops.io.storage import open_storage
    if os.getuid() == 0:  # root reads every file: act as 'nobody' to meet a keytab we may not read
        os.setgid(65534)
        os.setuid(65534)
    try:
        open_storage(RegistrySettings(uri=sys.argv[1], auth={"method": "kerberos", "keytab": sys.argv[2]}))
    except SparkMLOpsError as exc:
        print(exc.exit_code, exc)
    """
)


def test_an_unreadable_keytab_is_a_clear_error(secure, owner, tmp_path):
    keytab = tmp_path / "svc.keytab"
    keytab.write_bytes(Path(secure["job_keytab"]).read_bytes())
    keytab.chmod(0o000)
    tmp_path.chmod(0o755)

    proc = subprocess.run([sys.executable, "-c", UNREADABLE, owner.uri, str(keytab)], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)

    uid = 65534 if os.getuid() == 0 else os.getuid()
    assert proc.stdout.strip() == (
        f"9 Kerberos keytab {keytab} cannot be read: Permission denied. Make it readable by this OS user "
        f"(uid {uid}), e.g. chmod 400 and chown to the job's user."
    ), proc.stderr[-2000:]


def test_a_principal_missing_from_its_keytab_is_a_clear_error(secure, owner):
    with pytest.raises(AuthenticationError) as exc:
        open_storage(settings_as(owner, principal=secure["other_principal"], keytab=secure["job_keytab"]))

    assert exc.value.exit_code == 9
    assert str(exc.value) == (
        f"Kerberos principal {secure['other_principal']} is not in keytab {secure['job_keytab']}; it holds: "
        f"{secure['job_principal']}. Set registry.auth.principal to one of those, or use the keytab made for "
        "that principal."
    )
    assert keytab_principals(secure["job_keytab"]) == [secure["job_principal"]]


def test_an_unreachable_kdc_is_a_remote_error(secure, owner, tmp_path, monkeypatch):
    conf = tmp_path / "krb5.conf"
    conf.write_text(Path(secure["krb5_conf"]).read_text().replace(secure["kdc_address"], "127.0.0.1:1"))
    monkeypatch.setenv("KRB5_CONFIG", str(conf))
    storage = open_storage(settings_as(owner, principal=secure["job_principal"], keytab=secure["job_keytab"]))

    with pytest.raises(KdcUnreachableError) as exc:
        storage.write("fraud/1/model.bin", b"x")

    assert exc.value.exit_code == 6
    assert str(exc.value) == (
        f"the Kerberos KDC for {secure['job_principal']} cannot be reached (logging in from keytab "
        f"{secure['job_keytab']}): Cannot contact any KDC for realm '{secure['realm']}'. Check the KDC in "
        "krb5.conf (KRB5_CONFIG) and the network; retrying later is safe."
    )
    monkeypatch.setenv("KRB5_CONFIG", secure["krb5_conf"])
    assert owner.list("") == []


SKEWED = textwrap.dedent(
    """
    import sys
    from sparkml_ops.config import RegistrySettings
    from sparkml_ops.errors import SparkMLOpsError
    from sparkml_ops.io.storage import open_storage
    auth = {"method": "kerberos", "principal": sys.argv[2], "keytab": sys.argv[3]}
    try:
        open_storage(RegistrySettings(uri=sys.argv[1], auth=auth)).write("skewed.bin", b"x")
    except SparkMLOpsError as exc:
        print(exc.exit_code, exc)
    """
)


def test_clock_skew_is_a_clear_error(secure, owner, tmp_path):
    # MIT clients correct their clock from the KDC's answer unless kdc_timesync is off; a host whose
    # library does not is what this produces, with the clock an hour ahead (libfaketime).
    conf = tmp_path / "krb5.conf"
    conf.write_text(Path(secure["krb5_conf"]).read_text().replace("[libdefaults]", "[libdefaults]\n  kdc_timesync = 0"))
    env = {**os.environ, "KRB5_CONFIG": str(conf)}
    proc = subprocess.run(["faketime", "-f", "+1h", sys.executable, "-c", SKEWED, owner.uri, secure["job_principal"],
                           secure["job_keytab"]], cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)

    assert proc.stdout.strip() == (
        f"9 Kerberos refused {secure['job_principal']}: this host's clock differs from the KDC's by more than "
        f"the allowed skew (logging in from keytab {secure['job_keytab']}). Synchronise the clock (NTP/chrony) "
        "and retry."
    ), proc.stderr[-2000:]
    assert owner.list("") == []


def test_a_user_without_rights_gets_a_permission_error_naming_the_path_and_principal(secure, owner):
    owner.makedirs("fraud")
    stranger = open_storage(settings_as(owner, **{k: v for k, v in cluster_auth(secure, "other").items() if k != "method"}))

    with pytest.raises(PermissionDeniedError) as exc:
        stranger.write("fraud/1/model.bin", b"x")

    assert exc.value.exit_code == 2
    assert str(exc.value) == (
        f"{owner.uri}/fraud/1/model.bin: permission denied (write): Permission denied: user=analyst, "
        f"access=WRITE, inode=\"{owner.root}/fraud\":svc-sparkml:supergroup:drwxr-xr-x "
        f"(as Kerberos principal {secure['other_principal']} (keytab {secure['other_keytab']})). "
        "Ask the owner of the registry root for access (HDFS permissions or ACLs), or use the registry's "
        "service principal in registry.auth."
    )
    assert owner.list("fraud") == []


def test_a_long_job_outlives_its_first_ticket_because_the_keytab_login_is_renewed(secure, owner, caplog):
    # svc-short's tickets live short_lifetime_s (2 minutes): the second write comes after the first
    # ticket has expired, and succeeds only because the library logged in again from the keytab.
    caplog.set_level(logging.INFO, logger="sparkml_ops.io.kerberos")
    owner.client.set_permission(owner.root, "777")
    storage = open_storage(settings_as(owner, principal=secure["short_principal"], keytab=secure["short_keytab"]))
    login = storage.client._session.auth.login

    storage.write("first.bin", b"1")
    first = login.ticket()
    time.sleep(max(0.0, first.expires_at - time.time()) + 5)
    storage.write("second.bin", b"2")

    assert first.lifetime_s <= secure["short_lifetime_s"]
    assert login.logins == 2
    assert login.ticket().expires_at > first.expires_at
    assert owner.read_bytes("second.bin") == b"2"
    assert [r.getMessage().split(";")[0] for r in caplog.records] == [
        f"kerberos: logged in as {secure['short_principal']} from keytab {secure['short_keytab']}",
        f"kerberos: renewed the login as {secure['short_principal']} from keytab {secure['short_keytab']}",
    ]


def test_the_renewal_threshold_is_a_quarter_of_the_lifetime(secure):
    now = [1000.0]
    login = KerberosLogin(secure["job_principal"], secure["job_keytab"], clock=lambda: now[0])
    ticket = login.ticket()

    now[0] += 0.74 * ticket.lifetime_s
    assert login.ticket() is ticket
    now[0] += 0.02 * ticket.lifetime_s
    assert login.ticket() is not ticket and login.logins == 2


def test_no_secret_reaches_logs_manifests_audit_records_or_config_show(secure, owner, capsys, caplog):
    from sparkml_ops.cli import main
    from sparkml_ops.registry import ModelRegistry, Provenance

    from tests.registry.models import Doubler

    caplog.set_level(logging.DEBUG)
    storage = open_storage(settings_as(owner, principal=secure["job_principal"], keytab=secure["job_keytab"]))
    prov = Provenance(user="alice", host="edge01", git_commit="abc1234", git_dirty=False, build_id="b-7")
    ModelRegistry(storage).publish("fraud", Doubler(), flavor="pyfunc", provenance=prov)
    flags = ["--env", "cluster", "--conf-dir", str(REPO / "conf"), "--set", f"registry.uri={owner.uri}",
             "--set", f"registry.auth.keytab={secure['job_keytab']}", "--set", "logging.level=DEBUG"]
    assert main([*flags, "models", "list"], environ={}) == 0
    assert main([*flags, "config", "show", "--json"], environ={}) == 0
    out = capsys.readouterr()

    stored = b"".join(storage.read_bytes(path) for path, _ in storage.walk_files(""))
    text = out.out + out.err + caplog.text
    keys = Path(secure["job_keytab"]).read_bytes()[-32:]  # the tail of the last entry: key bytes
    assert keys not in stored and keys.hex() not in text and repr(keys)[2:-1] not in text
    assert secure["job_keytab"] in out.out  # its path is configuration, shown like any other key


def test_doctor_checks_keytab_login_spnego_and_ticket_lifetime(secure, owner, capsys):
    import json

    from sparkml_ops.cli import main

    flags = ["--env", "cluster", "--conf-dir", str(REPO / "conf"), "--set", f"registry.uri={owner.uri}"]
    assert main([*flags, "--set", f"registry.auth.keytab={secure['job_keytab']}", "doctor", "--json"], environ={}) == 0
    checks = json.loads(capsys.readouterr().out)

    assert checks["kerberos keytab"] == f"{secure['job_keytab']}: readable, holds {secure['job_principal']}"
    assert checks["kerberos login"] == f"{secure['job_principal']} (keytab login into a private in-memory cache)"
    assert checks["kerberos ticket"].startswith("valid for ")
    assert checks["kerberos ticket"].endswith(" UTC, renewed from the keytab at 1/4 left")
    assert checks["webhdfs spnego"] == (f"{owner.uri} answered as Kerberos principal {secure['job_principal']} "
                                        f"(keytab {secure['job_keytab']})")

    code = main([*flags, "--set", "registry.auth.ccache=FILE:/nonexistent/ccache", "doctor"], environ={})
    assert code == 9
    assert "no valid Kerberos ticket for svc-sparkml@SPARKML.TEST (reading FILE:/nonexistent/ccache)" in capsys.readouterr().err
