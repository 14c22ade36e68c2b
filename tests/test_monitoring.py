"""The quickstart chain leaves evaluation data, a report, per-feature drift and run records the reports are built from."""

from __future__ import annotations

import io
import json
import sys
from datetime import date

import pandas as pd
import pytest

from sparkml_ops.cli import main
from sparkml_ops.config import AlertSettings
from sparkml_ops.errors import NotFoundError
from sparkml_ops.identifiers import parse_ref
from sparkml_ops.monitoring import check_run, model_report, monitor_report
from sparkml_ops.quickstart import QuickstartOptions, run_chain
from sparkml_ops.registry import Provenance, open_registry

from tests.conftest import CONF_DIR
from tests.reports.test_reports import MODEL_CHARTS, MONITOR_CHARTS, assert_opens_offline

pytestmark = pytest.mark.spark

PROV = Provenance(user="monitoring-test", host="ci", git_commit="0123abc", build_id="0.1.0+0123abc")
TODAY = date(2026, 5, 1)
HOOK = "import json, sys; open(sys.argv[1], 'a').write(json.dumps(json.load(sys.stdin)) + chr(10))"


@pytest.fixture(scope="module")
def chain(spark, local_settings, tmp_path_factory):
    """One quickstart chain (small), with alerts going to a real command hook that appends to a file."""
    received = tmp_path_factory.mktemp("hook") / "alerts.jsonl"
    # A registry of its own: the session's registry belongs to test_quickstart, whose assertions name
    # the champion it trained; the Hive tables are shared, as the score rows carry the run id.
    registry = local_settings.registry.model_copy(update={"uri": (tmp_path_factory.mktemp("registry")).as_uri()})
    settings = local_settings.model_copy(update={"registry": registry, "alerts": AlertSettings(
        command=(sys.executable, "-c", HOOK, str(received)))})
    report = run_chain(spark, settings, PROV, QuickstartOptions(today=TODAY, customers=200, tx_per_day=300, history_days=60))
    return settings, report, received


def test_every_training_run_stores_its_evaluation_data_checksummed_in_the_version(chain):
    settings, report, _ = chain
    registry = open_registry(settings)
    mv = registry.resolve(report.model_ref)
    paths = {f["path"] for f in mv.manifest["files"]}
    assert {"evaluation/validation.parquet", "evaluation/summary.json", "report.html"} <= paths
    registry.verify(mv)

    valid = pd.read_parquet(io.BytesIO(registry.read_file(mv, "evaluation/validation.parquet")))
    inputs = [n for n, _ in mv.input_columns()]
    assert list(valid.columns) == ["customer_id", "event_time", "label", "score", *inputs]
    assert len(valid) == mv.manifest["lineage"]["rows"]["validation"]
    assert valid["event_time"].min() >= pd.Timestamp("2026-04-17")

    summary = json.loads(registry.read_file(mv, "evaluation/summary.json"))
    assert summary["metrics"]["roc_auc"] == pytest.approx(mv.manifest["metrics"]["roc_auc"])
    assert set(summary["validation"]) >= {"roc", "pr", "ks", "gini", "lift", "calibration", "confusion", "importance"}
    assert [c["threshold"] for c in summary["validation"]["confusion"]] == [0.1, 0.3, 0.5]
    assert len(summary["validation"]["lift"]) == 10 and sorted(summary["features"]) == sorted(inputs)
    assert summary["gate"]["challenger"] is True
    baseline = mv.manifest["extra"]["feature_baseline"]
    assert sorted(baseline) == sorted(inputs)  # the manifest stores keys sorted
    assert baseline["customer_is_private"]["kind"] == "categorical"
    assert baseline["tx_amount_sum_7d"]["kind"] == "numeric" and len(baseline["tx_amount_sum_7d"]["shares"]) >= 5

    stored = registry.read_file(mv, "report.html").decode()
    assert f"Model report — {mv.ref}" in stored and "<svg" in stored


def test_models_report_regenerates_the_report_from_stored_data(chain, tmp_path, capsys):
    settings, report, _ = chain
    mv = open_registry(settings).resolve(report.model_ref)
    out = tmp_path / "report.html"
    code = main(["--conf-dir", str(CONF_DIR), "--set", f"state_dir={settings.state_dir}",
                 "--set", f"registry.uri={settings.registry.uri}", "models", "report", mv.ref,
                 "--out", str(out)], environ={})
    assert code == 0
    assert capsys.readouterr().out.strip() == f"model report {mv.ref} written to {out}"
    assert_opens_offline(out.read_text(), tmp_path, "model-report-quickstart", MODEL_CHARTS)


def test_a_version_without_evaluation_data_gets_a_clear_message(chain):
    settings, _, _ = chain
    from tests.registry.models import Doubler

    old = open_registry(settings).publish("t_old_model", Doubler(), flavor="pyfunc", provenance=PROV)
    with pytest.raises(NotFoundError, match=rf"^{old.ref} has no evaluation data \(evaluation/summary.json\): it was published "
                                            r"before versions stored it, or not by a training run, so its report cannot be "
                                            r"regenerated\. Train a new version \(sparkml-ops train t_old_model"):
        model_report(settings, parse_ref(old.ref))


def test_score_runs_write_per_feature_drift_with_the_population(chain, spark):
    settings, report, _ = chain
    mv = open_registry(settings).resolve(report.model_ref)
    rows = spark.sql(f"SELECT * FROM {settings.hive.databases.ops}.feature_drift WHERE model_name = 'card_fraud' "
                     f"AND score_date = '{TODAY}' AND model_version = {mv.version}").collect()
    latest = max(r.run_id for r in rows)
    rows = [r for r in rows if r.run_id == latest]
    assert sorted(r.feature for r in rows) == sorted(n for n, _ in mv.input_columns())
    assert {r.rows for r in rows} == {200}  # the population scored, next to every drift figure
    assert all(r.psi_status in ("ok", "warn", "fail") for r in rows)
    assert all(r.psi is not None for r in rows if r.null_rate < 1 and r.baseline_null_rate < 1)
    comments = {c.name: c.description for c in spark.catalog.listColumns(f"{settings.hive.databases.ops}.feature_drift")}
    assert comments["rows"].startswith("Rows scored for this date: the population")


def test_monitor_report_is_built_from_the_ops_tables_and_opens_offline(chain, spark, tmp_path):
    settings, _, _ = chain
    result = monitor_report(spark, settings, "card_fraud", date(2026, 4, 1), TODAY)
    assert "1 dates scored" in result.html and "Per-feature PSI" in result.html
    assert_opens_offline(result.html, tmp_path, "monitor-report-quickstart", MONITOR_CHARTS)


def test_monitor_check_finds_the_run_or_alerts_through_the_hook(chain, spark):
    settings, _, received = chain
    assert check_run(spark, settings, "card_fraud", TODAY).exit_code == 0
    missing = check_run(spark, settings, "card_fraud", date(2026, 5, 2))
    assert (missing.exit_code, missing.found, dict(missing.alert.channels)) == (10, False, {"command": "ok"})
    alerts = [json.loads(line) for line in received.read_text().splitlines()]
    assert alerts[-1]["event"] == "missing_run" and alerts[-1]["model"] == "card_fraud"
    assert alerts[-1]["details"]["date"] == "2026-05-02" and alerts[-1]["env"] == "local"
    recorded = spark.sql(f"SELECT event, delivered FROM {settings.hive.databases.ops}.alerts "
                         f"WHERE alert_id = '{missing.alert.alert.alert_id}'").collect()
    assert [(r.event, r.delivered) for r in recorded] == [("missing_run", True)]


def test_the_quickstart_ends_with_where_its_model_and_monitoring_reports_are(chain):
    settings, report, _ = chain
    what = [w for w, _ in report.locations]
    assert what[-2:] == ["model report", "monitoring report"]
    for _, where in report.locations[-2:]:
        path = where.split(" (")[0]
        assert path.startswith(str(settings.state_dir / "reports")) and open(path).read().startswith("<!DOCTYPE html>")


def test_a_failed_score_run_raises_a_failed_run_alert(chain, spark):
    from sparkml_ops.errors import DataValidationError
    from sparkml_ops.modelconfig import load_model_config
    from sparkml_ops.scoring import run_scoring

    settings, report, received = chain
    with pytest.raises(DataValidationError):  # no feature partition for that date
        run_scoring(spark, settings, load_model_config(settings.conf_dir, "card_fraud"), report.model_ref, [date(2020, 1, 1)], PROV)
    last = json.loads(received.read_text().splitlines()[-1])
    assert (last["event"], last["details"]["job"], last["details"]["exit_code"]) == ("failed_run", "score", 3)
    assert "has no partition as_of_date=2020-01-01" in last["details"]["error"]


def test_an_undeliverable_drift_alert_leaves_the_scores_written(chain, spark):
    from sparkml_ops.modelconfig import load_model_config
    from sparkml_ops.scoring import run_scoring

    settings, report, _ = chain
    failing = settings.model_copy(update={"alerts": AlertSettings(command=("false",), drift_level="warn")})
    config = load_model_config(settings.conf_dir, "card_fraud")
    config = config.model_copy(update={"scoring": config.scoring.model_copy(update={"feature_psi_warn": 0.0})})
    result = run_scoring(spark, failing, config, report.model_ref, [TODAY], PROV)  # every feature "drifts"
    assert (result.exit_code, result.rows_out) == (0, 200)
    assert spark.sql(f"SELECT count(*) FROM {settings.hive.databases.scores}.scores WHERE model_name = 'card_fraud' "
                     f"AND score_date = '{TODAY}' AND run_id = '{result.run_id}'").first()[0] == 200
    [alert] = spark.sql(f"SELECT event, delivered, channels FROM {settings.hive.databases.ops}.alerts "
                        f"WHERE run_id = '{result.run_id}'").collect()
    assert (alert.event, alert.delivered) == ("drift", False)
    assert json.loads(alert.channels)["command"] == "alert command 'false' exited 1: no output on stderr."
    runs = spark.sql(f"SELECT status FROM {settings.hive.databases.ops}.job_runs WHERE run_id = '{result.run_id}'").collect()
    assert [r.status for r in runs] == ["success"]
