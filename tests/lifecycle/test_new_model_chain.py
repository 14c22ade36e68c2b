"""Hello world first: right after new-model, the whole chain runs on demo data without one edit, for every template.

Each test scaffolds into a copy of this repository's layout, then runs the generated model test's chain
test (the quickstart chain: demo data -> features -> train -> register -> score -> query) on the shared session.
"""

from __future__ import annotations

import importlib.util
from datetime import date, timedelta
from pathlib import Path

import pytest

from sparkml_ops.identifiers import ModelRef
from sparkml_ops.modelconfig import load_model_config
from sparkml_ops.features import load_feature_spec
from sparkml_ops.quickstart import warmup_days
from sparkml_ops.registry import Provenance, open_registry
from sparkml_ops.training import TrainingWindow, run_training

from tests.lifecycle.test_new_model import make_project, new_model

pytestmark = pytest.mark.spark
TODAY = date(2026, 5, 1)  # the generated test's date


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return make_project(tmp_path_factory.mktemp("chain") / "repo")


def run_generated_test(project: Path, name: str, spark, local_settings) -> None:
    """Import tests/models/test_<name>.py of the project and run its chain test on the shared session."""
    path = project / "tests" / "models" / f"test_{name}.py"
    spec = importlib.util.spec_from_file_location(f"generated_test_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.test_trains_registers_and_scores_every_customer_on_demo_data(spark, local_settings)


def test_new_model_then_quickstart_runs_the_chain_and_the_generated_test_passes(project, spark, local_settings):
    assert new_model(project, "demo_churn") == 0
    run_generated_test(project, "demo_churn", spark, local_settings)
    settings = local_settings.model_copy(update={"conf_dir": project / "conf"})
    version = open_registry(settings).resolve(ModelRef("demo_churn", alias="champion"))
    assert version.flavor == "sklearn" and version.manifest["metrics"]["roc_auc"] >= 0.6


def test_a_rule_is_registered_gated_and_scored_in_the_jvm_and_the_next_ml_model_must_beat_it(
        project, spark, local_settings, caplog):
    assert new_model(project, "first_rule", "--template", "rules") == 0
    with caplog.at_level("INFO", logger="sparkml_ops.scoring"):
        run_generated_test(project, "first_rule", spark, local_settings)
    assert "first_rule:1 (sql_rules) in the JVM as a SQL expression (no Python workers)" in caplog.text
    settings = local_settings.model_copy(update={"conf_dir": project / "conf"})
    registry = open_registry(settings)
    rule = registry.resolve(ModelRef("first_rule", alias="champion"))
    assert rule.flavor == "sql_rules" and rule.manifest["params"]["rules"]["thresholds"] == {
        "ecom_tx_1d": 3.0, "foreign_tx_1d": 1.0, "spend_spike": 2.5}
    # The team's next version is an ML model: the same config with an estimator instead of the rules.
    path = project / "conf" / "models" / "first_rule.yaml"
    text = path.read_text()
    path.write_text(text[:text.index("\nrules:") + 1] + "estimator:\n  class: sklearn.ensemble.HistGradientBoostingClassifier\n"
                    "  params: {max_iter: 50, random_state: 0}\n" + text[text.index("training:"):])
    config = load_model_config(project / "conf", "first_rule")
    first = TODAY - timedelta(days=60)  # the generated test's history_days
    warmup = warmup_days(load_feature_spec(config.feature_set, settings), 60)  # as the generated test's chain
    window = TrainingWindow(first + timedelta(days=warmup), TODAY - timedelta(days=1))
    trained = run_training(spark, settings, config, window, Provenance(user="tests", host="ci"))
    champion_auc = rule.manifest["metrics"]["roc_auc"]
    assert any(f"the champion's {champion_auc:.4f}" in reason for reason in trained.gate.reasons), trained.gate.reasons


@pytest.mark.parametrize("template", ["sparkml", "regression"])
def test_spark_ml_and_regression_templates_run_the_chain(project, spark, local_settings, template):
    name = f"first_{template}"
    assert new_model(project, name, "--template", template) == 0
    run_generated_test(project, name, spark, local_settings)
    settings = local_settings.model_copy(update={"conf_dir": project / "conf"})
    version = open_registry(settings).resolve(ModelRef(name, version=1))
    if template == "sparkml":
        assert version.flavor == "sparkml"  # the user's pipeline behind the NULL-filling and assembling stages
        assert version.manifest["flavor_info"]["stages"] == ["SQLTransformer", "VectorAssembler", "PipelineModel"]
    else:
        assert version.flavor == "sklearn" and {"rmse", "mae", "r2"} <= set(version.manifest["metrics"])
        decisions = spark.sql(f"SELECT count(decision) AS d FROM ml_scores.scores WHERE model_name = '{name}'").first().d
        assert decisions == 0  # no threshold: no decision
