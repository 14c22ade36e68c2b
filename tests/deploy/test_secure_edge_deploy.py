"""Deploys to secure edge nodes: the smoke test, the HDFS publish and ``fab status`` log in with the
environment's keytab, and a login that cannot work is one clear message that changes nothing.

dev1 and test1 are edge nodes of the secure test cluster (scripts/sshd-hosts): their /etc/krb5.conf
names the realm's KDC at the bridge address, svc-sparkml's keytab is a file of each node, and the
generated dev/test configs name both in ``deploy.kerberos``. Tests run in file order and share one
deploy run of their own.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from sparkml_ops.deploy import service
from tests.deploy.conftest import GEN_CONF, HOSTS, REPO, DeployRun, edge_facts, fab, own_deploy_run
from tests.deploy.test_lifecycle import audit, current

pytestmark = [pytest.mark.ssh, pytest.mark.cluster]
# Everything fab printed in this module: checked for keytab contents at the end.
OUTPUTS: list[str] = []


@pytest.fixture(scope="module")
def secure(edge_hdfs) -> dict:
    """The facts of the cluster dev1 publishes to; these tests need its Kerberos (the default)."""
    facts = edge_facts()
    if facts.get("security") != "kerberos":
        pytest.fail("the edge nodes publish to a cluster without Kerberos (SPARKML_CLUSTER_SECURITY=simple): "
                    "restart it with scripts/cluster stop && scripts/cluster start, then scripts/sshd-hosts start")
    return facts


@pytest.fixture(scope="module")
def run(deploy_run: DeployRun, secure, tmp_path_factory: pytest.TempPathFactory):
    """Own base_dir and hdfs_dir, sharing the session's builds; dev1 runs build A once it is deployed."""
    with own_deploy_run(deploy_run, "k", tmp_path_factory) as own:
        yield own


@pytest.fixture(scope="module")
def edge_keytab(run) -> str:
    """The keytab path of the generated dev config: a file of dev1 itself."""
    krb = run.settings("dev").deploy.kerberos
    assert krb is not None, f"{GEN_CONF}/dev.yaml has no deploy.kerberos: rerun scripts/sshd-hosts start"
    return krb.keytab


def fab_dev(run: DeployRun, *args: str, sets: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    flags = [x for o in run.overrides("dev", *sets) for x in ("--set", o)]
    res = fab(*args, "--conf-dir", str(GEN_CONF), *flags)
    OUTPUTS.append(res.stdout + res.stderr)
    return res


def test_smoke_test_and_publish_run_as_the_environment_principal(run, builds, secure, edge_hdfs):
    a, _ = builds
    service.deploy_build(run.settings("dev"), run.builds, a, user="alice")
    smoke = (run.host_dir("dev1") / "releases" / a / ".smoke-ok").read_text().strip()
    namenode = f"hdfs://10.77.0.1:{secure['namenode_uri'].rsplit(':', 1)[1]}"
    assert smoke.startswith(f"SMOKE OK {a} sparkml-ops ")
    assert smoke.endswith(f"as {secure['job_principal']} (KERBEROS) on {namenode}")
    published = edge_hdfs.list(f"{run.hdfs_dir}/{a}", status=True)
    assert {st["owner"] for _, st in published} == {"svc-sparkml"}
    assert edge_hdfs.status(f"{run.hdfs_dir}/_audit/dev.jsonl")["owner"] == "svc-sparkml"


def failed_deploy(run: DeployRun, build: str, *sets: str) -> tuple[int, str]:
    """``fab deploy`` of ``build`` to dev with ``sets``; its exit code and its one error line."""
    res = fab_dev(run, "deploy", "--env", "dev", "--build", build, sets=sets)
    assert "Traceback" not in res.stderr and " at org." not in res.stderr
    errors = [line for line in res.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, res.stderr
    return res.returncode, errors[0]


def assert_nothing_changed(run: DeployRun, edge_hdfs, a: str, b: str, error: str) -> None:
    """dev1 still runs ``a``, ``b`` was neither uploaded nor published, and dev1 recorded the failure."""
    assert current(run, "dev1") == a
    assert not (run.host_dir("dev1") / "releases" / b).exists()
    assert not list((run.host_dir("dev1") / "incoming").iterdir())
    assert sorted(edge_hdfs.list(run.hdfs_dir)) == sorted([a, "_audit"])
    rec = audit(run, "dev1")[-1]
    assert (rec["action"], rec["build"], rec["result"]) == ("deploy", b, "failed")
    assert rec["error"] in error


def test_a_missing_keytab_on_the_edge_node_names_host_principal_and_keytab(run, builds, secure, edge_keytab, edge_hdfs):
    a, b = builds
    missing = str(Path(edge_keytab).with_name("gone.keytab"))
    code, error = failed_deploy(run, b, f"deploy.kerberos.keytab={missing}")
    assert code == 9
    assert error.endswith(
        f"deploy of {b} to dev (nothing was switched) failed on 1 of 1 host(s): dev1: Kerberos keytab {missing} of "
        f"{secure['job_principal']} does not exist there. Install the environment's keytab at that path on dev1, "
        "readable by the SSH user only (chmod 400), or fix deploy.kerberos.keytab.")
    assert_nothing_changed(run, edge_hdfs, a, b, error)


def test_a_file_that_is_not_a_keytab_cannot_be_read(run, builds, secure, edge_keytab, edge_hdfs):
    a, b = builds
    bogus = Path(edge_keytab).with_name("bogus.keytab")
    (run.host_dir("dev1").parent / "kerberos" / bogus.name).write_bytes(b"not a keytab\n")
    try:
        code, error = failed_deploy(run, b, f"deploy.kerberos.keytab={bogus}")
    finally:
        (run.host_dir("dev1").parent / "kerberos" / bogus.name).unlink()
    assert code == 9
    assert re.search(rf"dev1: Kerberos keytab {re.escape(str(bogus))} of {re.escape(secure['job_principal'])} "
                     r"cannot be read: klist: .+\. Point deploy\.kerberos\.keytab at the keytab file itself", error), error
    assert_nothing_changed(run, edge_hdfs, a, b, error)


def test_a_principal_missing_from_the_keytab_is_refused_before_any_login(run, builds, secure, edge_keytab, edge_hdfs):
    a, b = builds
    code, error = failed_deploy(run, b, f"deploy.kerberos.principal={secure['other_principal']}")
    assert code == 9
    assert error.endswith(
        f"dev1: Kerberos principal {secure['other_principal']} is not in keytab {edge_keytab}; it holds: "
        f"{secure['job_principal']}. Set deploy.kerberos.principal to one of those, or install the keytab made for "
        "that principal.")
    assert_nothing_changed(run, edge_hdfs, a, b, error)


def test_a_kdc_the_edge_node_cannot_reach_exits_6_and_changes_nothing(run, builds, secure, edge_keytab, edge_hdfs):
    a, b = builds
    # dev1's krb5.conf also names UNREACHABLE.TEST, whose KDC port nobody listens on, and dev1 holds a keytab of
    # it (scripts/sshd-hosts). Breaking the cluster realm's KDC entry instead broke the deploys that other test
    # files ran to dev1 at the same time, on the other worker.
    realm = "UNREACHABLE.TEST"
    principal = f"{secure['job_principal'].split('@')[0]}@{realm}"
    keytab = str(Path(edge_keytab).with_name("unreachable.keytab"))
    code, error = failed_deploy(run, b, f"deploy.kerberos.principal={principal}", f"deploy.kerberos.keytab={keytab}")
    assert code == 6
    assert re.search(rf"dev1: the Kerberos KDC cannot be reached to log in {re.escape(principal)} from "
                     rf"keytab {re.escape(keytab)}: kinit: Cannot contact any KDC for realm '{realm}'.*"
                     r"Check the realm's KDC in /etc/krb5\.conf on dev1 and that dev1 can reach it; retrying later is safe\.$",
                     error), error
    assert_nothing_changed(run, edge_hdfs, a, b, error)


def test_fab_status_reads_model_aliases_from_the_secure_registry(run, builds, secure):
    from sparkml_ops.registry import Provenance, open_registry

    from tests.registry.models import Doubler

    web = urlsplit(secure["webhdfs_url"])
    # The deployer's registry of each environment, on the secure cluster; its own login is the host's keytab.
    registry = (f"registry.uri=webhdfs://{web.hostname}:{web.port}{run.hdfs_dir}/registry/${{env}}",
                "registry.auth.method=kerberos", f"registry.auth.principal={secure['job_principal']}",
                f"registry.auth.keytab={secure['job_keytab']}")
    reg = open_registry(run.settings("dev", *registry))
    mv = reg.publish("fraud", Doubler(), flavor="pyfunc", provenance=Provenance(user="trainer", host="ci"))
    reg.set_alias("fraud", "champion", mv.version, provenance=Provenance(user="trainer", host="ci"))
    res = fab_dev(run, "status", "--env", "dev", "--json", sets=registry)
    assert res.returncode == 0, res.stderr
    (row,) = json.loads(res.stdout)
    assert (row["host"], row["current"]) == ("dev1", builds[0])
    assert row["models"] is not None, res.stderr  # the warning says why the node could not list them
    assert [(m["name"], m["aliases"]) for m in row["models"]] == [("fraud", {"champion": 1})]


def test_no_keytab_contents_in_records_outputs_or_config_show(run, secure, edge_keytab, edge_hdfs):
    keys = Path(secure["job_keytab"]).read_bytes()[-32:]  # the tail of the last entry: key bytes
    assert Path(edge_keytab.replace(str(HOSTS / "mnt"), str(HOSTS / "hosts" / "dev1" / "root"))).read_bytes()[-32:] == keys
    show = subprocess.run([str(REPO / ".venv" / "bin" / "sparkml-ops"), "--conf-dir", str(GEN_CONF), "--env", "dev",
                           "config", "show", "--json"], capture_output=True, text=True, timeout=300)
    assert show.returncode == 0, show.stderr
    assert json.loads(show.stdout)["deploy"]["kerberos"] == {"principal": secure["job_principal"], "keytab": edge_keytab}
    with edge_hdfs.read(f"{run.hdfs_dir}/_audit/dev.jsonl") as reader:
        records = reader.read() + (run.host_dir("dev1") / "audit.jsonl").read_bytes()
    texts = "".join(OUTPUTS) + show.stdout + show.stderr + records.decode()
    assert len(OUTPUTS) >= 5
    assert keys not in records and keys.hex() not in texts and repr(keys)[2:-1] not in texts
