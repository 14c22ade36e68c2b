"""trace and status on the embedded default: a score back to its run, version, manifest, code and deployment."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from sparkml_ops.cli import main
from sparkml_ops.cli.lifecycle import _print_trace
from sparkml_ops.identifiers import ModelRef
from sparkml_ops.lifecycle.trace import TraceQuery, environment_status, trace
from sparkml_ops.quickstart import QuickstartOptions, run_chain
from sparkml_ops.registry import Provenance, open_registry
from sparkml_ops.scoring import run_scoring
from sparkml_ops.modelconfig import load_model_config

from tests.lifecycle.test_new_model import make_project, new_model

pytestmark = pytest.mark.spark
TODAY = date(2026, 5, 1)
BUILD = "0.1.0-g0123456789ab"
RELEASE = Provenance(user="svc-batch", host="edge1.example", git_commit="0123456789abcdef", build_id=BUILD)


@pytest.fixture(scope="module")
def traced(tmp_path_factory, spark, local_settings):
    """A model scored from 'a release' (a build id in the provenance) whose deployment is in an audit copy on disk."""
    root = tmp_path_factory.mktemp("trace")
    project = make_project(root / "repo")
    assert new_model(project, "traced") == 0
    hdfs = root / "hdfs"
    deploy = local_settings.deploy.model_copy(update={"hdfs_dir": str(hdfs / "releases"), "hdfs_read_uri": "file://",
                                                      "edge_hosts": ()})
    settings = local_settings.model_copy(update={"conf_dir": project / "conf", "deploy": deploy})
    deployed_at = datetime.now(UTC) - timedelta(hours=1)
    records = [
        {"time": (deployed_at - timedelta(days=3)).isoformat(timespec="microseconds"), "env": "local", "host": "edge1",
         "action": "deploy", "build": "0.0.9-gfedcba987654", "user": "alice", "result": "ok"},
        {"time": deployed_at.isoformat(timespec="microseconds"), "env": "local", "host": "edge1", "action": "promote",
         "build": BUILD, "previous": "0.0.9-gfedcba987654", "user": "deployer", "result": "ok", "change_id": "CHG-4242",
         "approvals": ["bob", "carol"], "commit": "0123456789abcdef"},
    ]
    (hdfs / "releases" / "_audit").mkdir(parents=True)
    (hdfs / "releases" / "_audit" / "local.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    report = run_chain(spark, settings, RELEASE, QuickstartOptions(model="traced", today=TODAY, customers=200,
                                                                   tx_per_day=300, history_days=60))
    return settings, report


def _entity(spark) -> str:
    return spark.sql("SELECT min(entity_key) AS k FROM ml_scores.scores WHERE model_name = 'traced' "
                     f"AND score_date = '{TODAY}'").first().k


def test_a_score_is_traced_to_its_run_version_aliases_manifest_training_build_and_deployment(traced, spark, capsys):
    settings, report = traced
    entity = _entity(spark)
    found = trace(spark, settings, TraceQuery("traced", TODAY, entity))
    assert found.gaps == ()
    data = found.as_dict()
    assert data["score"]["entity_key"] == entity and data["score"]["model_version"] == 1
    run = data["run"]
    assert (run["job"], run["run_user"], run["run_host"], run["build_id"], run["git_commit"]) == (
        "score", "svc-batch", "edge1.example", BUILD, "0123456789abcdef")
    assert run["application_id"] == spark.sparkContext.applicationId
    model = data["model"]
    assert model["ref"] == "traced:1" and model["asked_as"] == "traced@champion"
    assert model["aliases_at_run"] == {"challenger": 1, "champion": 1} and model["aliases_of_version_at_run"] == ["challenger", "champion"]
    manifest = model["manifest"]
    version = open_registry(settings).resolve(ModelRef("traced", version=1))
    assert manifest["training_run"] == version.manifest["lineage"]["run_id"] == data["training_run"]["run_id"]
    assert manifest["feature_spec_sha256"] == version.manifest["lineage"]["feature_spec_sha256"]
    assert manifest["train_dates"] == {"start": "2026-04-01", "end": "2026-04-16"}
    assert (manifest["build_id"], manifest["git_commit"]) == (BUILD, "0123456789abcdef")
    record = data["deployment"]["record"]
    assert (record["user"], record["change_id"], record["approvals"], record["action"]) == (
        "deployer", "CHG-4242", ["bob", "carol"], "promote")
    assert data["deployment"]["current_on"] == ["edge1"]
    _print_trace(found)
    out = capsys.readouterr().out
    assert "== deployment in local" in out and "CHG-4242" in out and "complete: every link of the chain was found" in out


def test_a_run_outside_a_deployed_release_is_stated_not_guessed(traced, spark):
    settings, _ = traced
    config = load_model_config(settings.conf_dir, "traced")
    run_scoring(spark, settings, config, ModelRef("traced", version=1), [TODAY], Provenance(user="dev", host="laptop"))
    found = trace(spark, settings, TraceQuery("traced", TODAY, _entity(spark)))
    assert found.run.value["run_user"] == "dev" and found.run.value["build_id"] is None
    assert found.gaps == (f"run {found.run.value['run_id']} records no build id: it was made outside a deployed release "
                          "(e.g. from a source checkout or by hand), so no deployment record applies",)
    missing = trace(spark, settings, TraceQuery("traced", TODAY, "C99999999"))
    assert missing.gaps == ("no score of entity 'C99999999' for model traced on 2026-05-01 in ml_scores.scores "
                            "(never scored, or the partition was rescored by a later run)",)


def test_a_training_run_is_traced_by_its_run_id(traced, spark):
    settings, _ = traced
    run_id = open_registry(settings).resolve(ModelRef("traced", version=1)).manifest["lineage"]["run_id"]
    found = trace(spark, settings, TraceQuery(run_id=run_id))
    assert found.score.value is None and found.run.value["job"] == "train"
    assert found.model.value["ref"] == "traced:1" and found.deployment.value["record"]["change_id"] == "CHG-4242"


def test_status_says_what_runs_who_put_it_there_and_when_without_ssh(traced, capsys):
    settings, _ = traced
    status = environment_status(settings)
    assert [(r["host"], r["build"], r["by"], r["action"], r["change_id"]) for r in status.releases] == [
        ("edge1", BUILD, "deployer", "promote", "CHG-4242")]
    traced_rows = [m for m in status.models if m["model"] == "traced"]
    assert [(m["alias"], m["version"], m["created_by"], m["build_id"]) for m in traced_rows] == [
        ("challenger", 1, "svc-batch", BUILD), ("champion", 1, "svc-batch", BUILD)]
    code = main(["--conf-dir", str(settings.conf_dir), "--set", f"state_dir={settings.state_dir}",
                 "--set", f"deploy.hdfs_dir={settings.deploy.hdfs_dir}", "--set", "deploy.hdfs_read_uri=file://",
                 "status", "--json"], environ={})
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["releases"][0]["change_id"] == "CHG-4242" and printed["gaps"] == []
