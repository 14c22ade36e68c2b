"""`sparkml-ops models ...`: tables and JSON, exit codes, and export/import through real pipes."""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import subprocess
import sys

import pytest

from sparkml_ops.cli import main

from tests.conftest import CONF_DIR, REPO
from tests.registry.models import Doubler


def _flags(reg_settings) -> list[str]:
    flags = ["--conf-dir", str(CONF_DIR), "--set", f"registry.uri={reg_settings.uri}"]
    if reg_settings.auth.method != "none":
        # Every auth field the backend set: user for simple auth, principal and keytab for Kerberos.
        for key, value in reg_settings.auth.model_dump(exclude_none=True).items():
            flags += ["--set", f"registry.auth.{key}={value}"]
    return flags


@pytest.fixture
def cli(reg_settings, capsys):
    """Run the console script in-process; returns (exit code, stdout, stderr)."""
    def run(*args: str):
        code = main([*_flags(reg_settings), "models", *args], environ={})
        out = capsys.readouterr()
        return code, out.out, out.err
    return run


@pytest.fixture
def published(registry, prov):
    for desc in ("first", "second"):
        registry.publish("fraud", Doubler(), flavor="pyfunc", provenance=prov, description=desc,
                         metrics={"auc": 0.9})
    registry.set_alias("fraud", "champion", 1, provenance=prov)
    return registry


def test_list_models_and_versions_as_table_and_json(cli, published):
    code, out, _ = cli("list")
    assert code == 0
    assert out.splitlines() == ["model  versions  latest  aliases", "fraud  2         2       champion->1"]
    code, out, _ = cli("list", "fraud", "--json")
    rows = json.loads(out)
    assert [(r["ref"], r["aliases"], r["description"]) for r in rows] == [
        ("fraud:1", ["champion"], "first"), ("fraud:2", [], "second")]


def test_show_resolves_aliases_and_prints_the_manifest(cli, published):
    code, out, _ = cli("show", "fraud@champion")
    assert code == 0
    lines = dict(line.split(None, 1) for line in out.splitlines()[1:] if not line.startswith("file "))
    assert lines["ref"].strip() == "fraud:1" and lines["created_by"].strip() == "alice@edge01"
    assert lines["metrics"].strip() == '{"auc": 0.9}'
    code, out, _ = cli("show", "fraud:2", "--json")
    data = json.loads(out)
    assert data["ref"] == "fraud:2" and data["manifest"]["description"] == "second"


def test_verify_ok_then_exit_5_on_a_damaged_file(cli, published):
    code, out, _ = cli("verify", "fraud:1")
    assert code == 0 and out.startswith("fraud:1 ok: 2 files, ")
    published.storage.write("fraud/1/model/model.pkl", b"tampered", overwrite=True)
    code, out, err = cli("verify", "fraud:1")
    assert code == 5 and out == ""
    recorded = next(f for f in published.resolve("fraud:1").manifest["files"] if f["path"] == "model/model.pkl")
    assert err.strip().endswith(
        f"ERROR   sparkml_ops: fraud:1 in {published.uri} is damaged: file model/model.pkl has size 8 and sha256 "
        f"{hashlib.sha256(b'tampered').hexdigest()}, the manifest records size {recorded['size']} and sha256 "
        f"{recorded['sha256']}. Do not use this version.")


def test_not_found_and_bad_input_exit_codes(cli, published):
    code, _, err = cli("show", "fraud@prod")
    assert code == 4
    assert err.strip().endswith(
        f"model 'fraud' has no alias 'prod' in {published.uri}; known aliases: champion. "
        "Set one with: sparkml-ops models alias fraud prod <version>")
    code, _, err = cli("alias", "../fraud", "champion", "1")
    assert code == 2 and "model name '../fraud' is invalid" in err
    assert cli("alias", "fraud", "champion", "one")[0] == 2  # argparse: version must be an integer
    assert cli("show", "fraud")[0] == 2


def test_alias_archive_history_record_the_cli_user(cli, published):
    code, out, _ = cli("alias", "fraud", "champion", "2", "--reason", "better auc")
    assert code == 0 and out.strip() == "fraud@champion -> 2 (was 1)"
    code, out, _ = cli("archive", "fraud:1", "--reason", "superseded")
    assert code == 0 and out.strip() == "fraud:1 archived (kept; load it by number, list it with --all)"
    code, out, _ = cli("history", "fraud", "--json")
    events = json.loads(out)
    assert [e["event"] for e in events] == ["publish", "publish", "alias", "alias", "archive"]
    assert events[3]["user"] == getpass.getuser() and events[3]["reason"] == "better auc"
    assert [r["ref"] for r in json.loads(cli("list", "fraud", "--json")[1])] == ["fraud:2"]


def test_gc_reports_what_it_removed(cli, published):
    published.storage.makedirs("_staging/fraud.20200101T000000Z.dead")
    published.storage.write("_staging/fraud.20200101T000000Z.dead/model/model.pkl", b"partial")
    code, out, _ = cli("gc", "--older-than-hours", "0", "--json")
    assert code == 0 and json.loads(out) == {"older_than_hours": 0.0,
                                             "removed": ["_staging/fraud.20200101T000000Z.dead"]}


def test_export_to_stdout_piped_into_import_from_stdin(published, reg_settings, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKML_OPS_")}
    env["HOME"] = str(tmp_path)
    exe = [sys.executable, "-m", "sparkml_ops.cli"]
    target = (tmp_path / "prod-registry").as_uri()
    export = subprocess.Popen([*exe, *_flags(reg_settings), "models", "export", "fraud:2", "-"],
                              stdout=subprocess.PIPE, cwd=REPO, env=env)
    imported = subprocess.run([*exe, "--conf-dir", str(CONF_DIR), "--set", f"registry.uri={target}",
                               "models", "import", "-", "--json"],
                              stdin=export.stdout, capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    export.stdout.close()
    assert export.wait(timeout=60) == 0
    assert imported.returncode == 0, imported.stderr
    data = json.loads(imported.stdout)
    assert data["ref"] == "fraud:1"
    assert data["imported_from"]["registry"] == published.uri and data["imported_from"]["version"] == 2


def test_unreachable_namenode_exits_6(capsys):
    code = main(["--conf-dir", str(CONF_DIR), "--set", "registry.uri=webhdfs://127.0.0.1:1/registry",
                 "--set", "registry.timeout_s=5", "models", "list"], environ={})
    assert code == 6
    err = capsys.readouterr().err
    assert "ERROR   sparkml_ops: HDFS unreachable while trying to list webhdfs://127.0.0.1:1/registry: " in err
