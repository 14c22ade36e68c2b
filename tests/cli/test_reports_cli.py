"""The report and monitor commands: help with exit codes, usage errors before any Spark session starts."""

from __future__ import annotations

from sparkml_ops.cli import main

from tests.conftest import CONF_DIR


def test_monitor_check_documents_its_exit_codes(capsys):
    assert main(["monitor", "check", "--help"], environ={}) == 0
    out = capsys.readouterr().out
    assert "exit codes: 0 a successful score run covers the date; 10 none does (a missing_run alert was sent)" in out


def test_a_bad_date_is_a_usage_error_before_spark_starts(capsys):
    code = main(["--conf-dir", str(CONF_DIR), "report", "monitor", "card_fraud", "--from", "2026-13-01", "--to", "2026-12-31"],
                environ={})
    assert code == 2
    assert "--from '2026-13-01' is not a valid calendar date" in capsys.readouterr().err


def test_models_report_of_an_unknown_model_is_not_found(tmp_path, capsys):
    code = main(["--conf-dir", str(CONF_DIR), "--set", f"state_dir={tmp_path}", "models", "report", "nope:1"], environ={})
    assert code == 4
    assert "model 'nope' is not in the registry" in capsys.readouterr().err
