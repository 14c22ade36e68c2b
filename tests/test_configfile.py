"""The one config-file reader and user-code loader: YAML errors, key problems, user modules that pickle."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from sparkml_ops.configfile import Frozen, YamlFile, import_user_module, key_problems
from sparkml_ops.errors import ConfigError, FeatureSpecError
from sparkml_ops.modelconfig import ModelConfig
from sparkml_ops.training import build_estimator

FACTORY = '''
class Threshold:
    """A user's own estimator class: pickles as cfgtest_factory.Threshold."""

    def __init__(self, cut):
        self.cut = cut


def build(cut=0.5):
    return Threshold(cut)
'''


class _Section(Frozen):
    size: int
    name: str = "x"


class _Root(Frozen):
    section: _Section


def test_yaml_file_reports_malformed_yaml_as_path_line_column(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text("a: [1\nb: 2\n")
    with pytest.raises(FeatureSpecError) as err:
        YamlFile(error=FeatureSpecError, malformed_hint="Fix it.").read(path)
    assert str(err.value) == f"{path}:2:2: malformed YAML: expected ',' or ']', but got ':'. Fix it."


def test_yaml_file_top_level_must_be_a_mapping_and_empty_is_per_caller(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text("")
    assert YamlFile().read(path) == {}
    with pytest.raises(ConfigError) as err:
        YamlFile(not_mapping="top level must be a mapping with a, b.", empty_ok=False).read(path)
    assert str(err.value) == f"{path}: top level must be a mapping with a, b."
    path.write_text("- 1\n")
    with pytest.raises(ConfigError) as err:
        YamlFile().read(path)
    assert str(err.value) == f"{path}: top level must be a mapping, got list."


def test_key_problems_name_unknown_missing_and_bad_keys():
    with pytest.raises(ValidationError) as err:
        _Root.model_validate({"section": {"size": "big", "nme": 1}, "extra": 1})
    assert sorted(p.describe() for p in key_problems(err.value)) == [
        "key 'section.size' has bad value 'big': Input should be a valid integer, unable to parse string as an integer",
        "unknown key 'extra'",
        "unknown key 'section.nme'",
    ]
    with pytest.raises(ValidationError) as err:
        _Root.model_validate({})
    assert [p.describe() for p in key_problems(err.value)] == ["missing required key 'section'"]


def test_user_module_beside_the_config_is_loaded_once_per_file(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    for folder, value in ((one, 1), (two, 2)):
        folder.mkdir()
        (folder / "cfgtest_flags.py").write_text(f"VALUE = {value}\n")
    first = import_user_module("cfgtest_flags", one)
    assert first.VALUE == 1
    assert import_user_module("cfgtest_flags", one) is first
    assert import_user_module("cfgtest_flags", two).VALUE == 2  # another file of that name replaces ours


def test_user_module_may_not_shadow_an_installed_module(tmp_path):
    (tmp_path / "json.py").write_text("def build():\n    return None\n")
    with pytest.raises(ImportError, match=r"^module name 'json' is taken by .*json.*; rename "):
        import_user_module("json", tmp_path)
    assert hasattr(sys.modules["json"], "dumps")


def test_factory_estimator_pickles_by_reference_to_its_plain_module_name(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "cfgtest_factory.py").write_text(FACTORY)
    config = ModelConfig.model_validate({
        "name": "fraud", "feature_set": "card_fraud", "label_table": "labels",
        "estimator": {"factory": "cfgtest_factory:build", "params": {"cut": 0.3}}, "source_dir": str(models)})
    estimator = build_estimator(config)
    assert (type(estimator).__module__, estimator.cut) == ("cfgtest_factory", 0.3)
    blob = pickle.dumps(estimator)
    assert pickle.loads(blob).cut == 0.3
    # Where the model is unpickled (a scoring worker), the module is found by its plain name.
    code = "import pickle, sys; print(type(pickle.loads(sys.stdin.buffer.read())).__module__)"
    out = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True, check=True,
                         env={"PYTHONPATH": str(models)})
    assert out.stdout.decode().strip() == "cfgtest_factory"


def test_missing_factory_module_is_a_config_error(tmp_path):
    config = ModelConfig.model_validate({
        "name": "fraud", "feature_set": "card_fraud", "label_table": "labels",
        "estimator": {"factory": "cfgtest_nowhere:build"}, "source_dir": str(tmp_path)})
    with pytest.raises(ConfigError) as err:
        build_estimator(config)
    assert str(err.value) == ("model fraud: cannot import estimator 'cfgtest_nowhere:build': No module named 'cfgtest_nowhere'. "
                              "Check estimator.class / estimator.factory in the model's config.")
