"""The console script: help for every command, exit codes, JSON logs, secrets never printed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sparkml_ops.cli import build_parser, main

from tests.conftest import CONF_DIR, REPO


def _subcommands(parser):
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, sub in action.choices.items():
                yield name, sub
                for sub_name, sub_sub in _subcommands(sub):
                    yield f"{name} {sub_name}", sub_sub


def test_help_lists_command_groups_and_exit_codes(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for group in ("config", "doctor", "init", "sql"):
        assert f"    {group} " in out
    assert "--env ENV" in out and "--conf-dir CONF_DIR" in out
    assert "exit codes: 0 ok, 1 unexpected error (bug), 2 usage or configuration, 3 data validation," in out


def test_every_command_has_help(capsys):
    names = [name for name, _ in _subcommands(build_parser())]
    assert "config show" in names
    for name in names:
        assert main([*name.split(), "--help"]) == 0, name
        assert "usage: sparkml-ops" in capsys.readouterr().out


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([], environ={}) == 2
    assert "usage: sparkml-ops" in capsys.readouterr().err


def test_unknown_option_is_usage_error_2(capsys):
    assert main(["--no-such-flag"], environ={}) == 2


def test_unknown_environment_exits_2_with_one_error_line(capsys):
    code = main(["--conf-dir", str(CONF_DIR), "--env", "prd", "config", "show"], environ={})
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].endswith(
        f"ERROR   sparkml_ops: unknown environment 'prd': {CONF_DIR} defines cluster, dev, local, prod, test. "
        f"Pass --env with one of those, or create {CONF_DIR / 'prd.yaml'}."
    )


def test_config_show_json_reflects_set_and_masks_secrets(capsys):
    code = main(
        ["--conf-dir", str(CONF_DIR), "--env", "dev", "--set", "hive.jdbc_password=hunter2-secret",
         "--set", "spark.master=yarn", "config", "show", "--json"],
        environ={},
    )
    assert code == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert data["env"] == "dev"
    assert data["hive"]["jdbc_password"] == "**********"
    assert "hunter2-secret" not in captured.out + captured.err


def test_json_log_format_emits_one_json_object_per_line_with_exit_code(capsys):
    code = main(["--log-format", "json", "--conf-dir", "/nonexistent", "config", "show"], environ={})
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    record = json.loads(lines[-1])
    assert record["level"] == "ERROR"
    assert record["exit_code"] == 2
    assert record["error"] == "ConfigError"
    assert record["msg"].startswith("config directory /nonexistent does not exist.")
    assert record["ts"].endswith("+00:00")


def test_secret_values_are_masked_in_log_lines(capsys):
    from sparkml_ops.logs import configure_logging
    import logging

    configure_logging("json", "INFO", secrets=["pa55word"])
    logging.getLogger("sparkml_ops.test").info("connecting with %s", "user:pa55word", extra={"dsn": "x:pa55word@db"})
    record = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert record["msg"] == "connecting with user:***"
    assert record["dsn"] == "x:***@db"


def test_doctor_reports_java_and_versions(capsys):
    assert main(["--conf-dir", str(CONF_DIR), "doctor", "--json"], environ={"JAVA_HOME": os.environ.get("JAVA_HOME", "")} if os.environ.get("JAVA_HOME") else {}) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["environment"] == "local"
    assert report["pyspark"].startswith("4.3.")
    assert "version" in report["java"]


def test_doctor_without_java_exits_2(capsys, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert main(["--conf-dir", str(CONF_DIR), "doctor"], environ={}) == 2
    assert "Java is not installed" in capsys.readouterr().err


@pytest.mark.spark
def test_console_script_init_then_sql_exit_codes(tmp_path):
    """The installed console script, end to end, in its own JVM: 0 on success, 4 on a missing table."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKML_OPS_")}
    env["SPARKML_OPS_STATE_DIR"] = str(tmp_path / "state")
    script = os.path.join(os.path.dirname(sys.executable), "sparkml-ops")
    base = [script, "--conf-dir", str(CONF_DIR), "--set", "spark.master=local[1]"]
    init = subprocess.run([*base, "init"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert init.returncode == 0, init.stderr[-2000:]
    assert "Hive databases ready: ml_raw, ml_features, ml_scores, ml_ops" in init.stdout
    missing = subprocess.run([*base, "sql", "SELECT * FROM ml_raw.nope"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert missing.returncode == 4, missing.stderr[-2000:]
    assert "TABLE_OR_VIEW_NOT_FOUND" in missing.stderr
    assert not (tmp_path / "metastore_db").exists()
