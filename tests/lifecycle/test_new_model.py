"""new-model: a model project from commented templates, never over existing files, each refusal with its exit code."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sparkml_ops.cli import main
from sparkml_ops.config import load_settings
from sparkml_ops.features import load_feature_spec
from sparkml_ops.modelconfig import load_model_config
from sparkml_ops.transforms.rules import RulesModel

from tests.conftest import CONF_DIR, REPO


def make_project(root: Path) -> Path:
    """A repository like this one: its conf/, and tests/ as a package with the shared fixtures."""
    shutil.copytree(CONF_DIR, root / "conf")
    (root / "tests").mkdir()
    (root / "tests" / "__init__.py").write_text("")
    shutil.copy(REPO / "tests" / "conftest.py", root / "tests" / "conftest.py")
    return root


def new_model(root: Path, *args: str) -> int:
    """``sparkml-ops --conf-dir <root>/conf new-model ...``, in process."""
    return main(["--conf-dir", str(root / "conf"), "new-model", *args], environ={})


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "repo")


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def test_new_model_writes_the_project_and_says_what_to_run_next(project, capsys):
    before = _tree(project)
    assert new_model(project, "demo_churn") == 0
    added = sorted(set(_tree(project)) - set(before))
    assert added == ["conf/features/demo_churn.yaml", "conf/models/demo_churn.yaml", "schedules/demo_churn/crontab",
                     "schedules/demo_churn/demo_churn_dag.py", "tests/models/__init__.py", "tests/models/test_demo_churn.py"]
    out = capsys.readouterr().out
    assert f"new binary model demo_churn in {project}:" in out
    assert "sparkml-ops quickstart --model demo_churn" in out
    for path in ("conf/models/demo_churn.yaml", "conf/features/demo_churn.yaml"):
        uncommented = [line for line in (project / path).read_text().splitlines()
                       if re.match(r"^\s*[a-z_]+:", line) and "#" not in line]
        assert uncommented in ([], ["features:"]), f"{path}: every setting says why it is there"


@pytest.mark.parametrize("template", ["binary", "regression", "sparkml", "rules"])
def test_every_template_gives_a_config_and_spec_that_load(project, template):
    name = f"m_{template}"
    assert new_model(project, name, "--template", template) == 0
    settings = load_settings("local", project / "conf", overrides=[f"state_dir={project / 'state'}"], environ={})
    config = load_model_config(project / "conf", name)
    assert load_feature_spec(config.feature_set, settings).name == name
    assert config.task == ("regression" if template == "regression" else "binary")
    if template == "rules":
        assert config.estimator is None
        RulesModel(config.rules.expression, config.rules.thresholds)
    if template == "sparkml":  # building it needs a SparkContext: the chain test does
        from sparkml_ops.configfile import import_user_module

        assert config.estimator.factory == f"{name}_estimator:build"
        assert callable(import_user_module(f"{name}_estimator", project / "conf" / "models").build)
    assert (project / "conf" / "models" / f"{name}_estimator.py").exists() == (template == "sparkml")


def test_an_estimator_module_is_written_on_request_and_used_by_the_config(project):
    assert new_model(project, "m_module", "--estimator-module") == 0
    config = load_model_config(project / "conf", "m_module")
    assert config.estimator.factory == "m_module_estimator:build"
    from sparkml_ops.training import build_estimator

    assert type(build_estimator(config)).__name__ == "HistGradientBoostingClassifier"


def test_a_feature_set_is_reused_not_generated(project):
    assert new_model(project, "fraud_rules", "--template", "rules", "--feature-set", "card_fraud") == 0
    assert not (project / "conf" / "features" / "fraud_rules.yaml").exists()
    config = load_model_config(project / "conf", "fraud_rules")
    assert config.feature_set == "card_fraud"
    RulesModel(config.rules.expression, config.rules.thresholds)


def test_existing_files_invalid_names_and_unknown_feature_sets_are_refused_with_their_exit_codes(project, caplog):
    assert new_model(project, "demo_churn") == 0
    written = _tree(project)
    assert new_model(project, "demo_churn") == 8
    assert "conf/models/demo_churn.yaml" in caplog.text and "already exist; nothing was written." in caplog.text
    assert new_model(project, "card_fraud") == 8  # its config and its spec exist
    assert new_model(project, "Demo") == 2
    assert new_model(project, "demo-churn") == 2
    assert "use '_' instead of '-' (e.g. 'demo_churn')" in caplog.text
    assert new_model(project, "other", "--feature-set", "no_such_spec") == 4
    assert "no feature spec named 'no_such_spec'" in caplog.text
    assert _tree(project) == written, "a refused new-model writes nothing"


def test_the_schedules_run_the_release_and_the_dag_compiles(project):
    assert new_model(project, "demo_churn") == 0
    cron = (project / "schedules" / "demo_churn" / "crontab").read_text()
    assert "/opt/sparkml-ops/current/venv/bin/sparkml-ops" in cron
    assert 'score --model demo_churn@champion --date "$D"' in cron and r"+\%F" in cron
    dag = (project / "schedules" / "demo_churn" / "demo_churn_dag.py").read_text()
    compile(dag, "demo_churn_dag.py", "exec")
    for expected in ('RELEASE = "/opt/sparkml-ops/current"', "SparkSubmitOperator", "/jobs/score.py", "/jobs/build_features.py",
                     "/jobs/train.py", "env.tar.gz#env", "conf.tar.gz#conf", '"{{ ds }}"'):
        assert expected in dag


def test_the_generated_test_passes_under_pytest_without_spark(project):
    assert new_model(project, "demo_churn") == 0
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "not spark", "-p", "no:cacheprovider",
                           "tests/models/test_demo_churn.py"], cwd=project, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed, 1 deselected" in proc.stdout
