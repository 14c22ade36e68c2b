"""Config precedence and every kind of config error users can make."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sparkml_ops.config import load_settings
from sparkml_ops.errors import EXIT_USAGE, ConfigError

from tests.conftest import CONF_DIR


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    """A writable copy of the committed conf/ directory."""
    target = tmp_path / "conf"
    shutil.copytree(CONF_DIR, target, ignore=shutil.ignore_patterns("private"))
    return target


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_committed_environments_all_load():
    for env in ("local", "dev", "test", "prod"):
        settings = load_settings(env, CONF_DIR, environ={})
        assert settings.env == env
        assert settings.registry.uri


def test_embedded_default_uses_derby_local_master_and_file_registry_under_state_dir(conf, tmp_path):
    settings = load_settings(None, conf, environ={"HOME": str(tmp_path)}, cwd=tmp_path)
    assert settings.env == "local"
    assert settings.spark.master == "local[*]"
    assert settings.hive.metastore == "derby"
    assert settings.state_dir == Path("~/.sparkml-ops/local").expanduser()
    assert settings.registry.uri == f"file://{settings.state_dir}/registry"


def test_precedence_defaults_base_env_private_envvar_cli(conf):
    write(conf / "base.yaml", "spark:\n  app_name: from-base\n  log_level: ERROR\nlogging:\n  level: WARNING\n")
    write(conf / "local.yaml", "state_dir: /tmp/x\nregistry:\n  uri: file:///r\nspark:\n  app_name: from-env\n  master: local[1]\n")
    write(conf / "private" / "local.yaml", "spark:\n  master: local[3]\n  ui: true\n")
    environ = {"SPARKML_OPS_SPARK__UI": "false", "SPARKML_OPS_LOGGING__LEVEL": "ERROR"}
    settings = load_settings("local", conf, overrides=["logging.level=DEBUG"], environ=environ)
    assert settings.spark.log_level == "ERROR"  # base, untouched above
    assert settings.spark.app_name == "from-env"  # env file beats base
    assert settings.spark.master == "local[3]"  # private beats env file
    assert settings.spark.ui is False  # env var beats private
    assert settings.logging.level == "DEBUG"  # --set beats env var
    assert settings.logging.format == "text"  # model default
    assert settings.sources == (
        "built-in defaults",
        str(conf / "base.yaml"),
        str(conf / "local.yaml"),
        str(conf / "private" / "local.yaml"),
        "environment variable SPARKML_OPS_LOGGING__LEVEL",
        "environment variable SPARKML_OPS_SPARK__UI",
        "command-line --set logging.level=DEBUG",
    )


def test_env_and_conf_dir_come_from_environment_when_not_given(conf, tmp_path):
    settings = load_settings(environ={"SPARKML_OPS_ENV": "dev", "SPARKML_OPS_CONF_DIR": str(conf)}, cwd=tmp_path)
    assert settings.env == "dev"
    assert settings.spark.master == "yarn"


def test_spark_conf_values_become_strings_and_dotted_keys_survive_set(conf):
    settings = load_settings("local", conf, overrides=["spark.conf.spark.sql.shuffle.partitions=3"], environ={})
    assert settings.spark.conf["spark.sql.shuffle.partitions"] == "3"


def test_state_dir_placeholder_and_relative_paths(conf, tmp_path):
    settings = load_settings("local", conf, overrides=["state_dir=rel/state"], environ={}, cwd=tmp_path)
    assert settings.state_dir == tmp_path / "rel" / "state"
    assert settings.registry.uri == f"file://{tmp_path}/rel/state/registry"


def test_settings_are_frozen(conf):
    settings = load_settings("local", conf, environ={})
    with pytest.raises(Exception):
        settings.env = "prod"  # type: ignore[misc]


def test_unknown_key_names_file_key_and_allowed_keys(conf):
    write(conf / "dev.yaml", (conf / "dev.yaml").read_text() + "\nsparkk:\n  master: yarn\n")
    with pytest.raises(ConfigError) as err:
        load_settings("dev", conf, environ={})
    assert str(err.value) == (
        f"invalid configuration: {conf / 'dev.yaml'}: unknown key 'sparkk'; allowed keys: "
        "alerts, deploy, env, features, hive, logging, registry, spark, state_dir."
    )
    assert err.value.exit_code == EXIT_USAGE == 2


def test_unknown_nested_key_lists_keys_of_that_section(conf):
    with pytest.raises(ConfigError) as err:
        load_settings("local", conf, overrides=["registry.url=file:///x"], environ={})
    assert str(err.value) == (
        "invalid configuration: command-line --set registry.url=file:///x: unknown key 'registry.url'; "
        "allowed keys under 'registry': auth, hdfs_uri, staging_max_age_hours, timeout_s, uri."
    )


def test_wrong_type_names_source_key_value_and_what_is_allowed(conf):
    with pytest.raises(ConfigError) as err:
        load_settings("local", conf, environ={"SPARKML_OPS_DEPLOY__KEEP_RELEASES": "many"})
    assert str(err.value) == (
        "invalid configuration: environment variable SPARKML_OPS_DEPLOY__KEEP_RELEASES: key "
        "'deploy.keep_releases' has bad value 'many': Input should be a valid integer, unable to parse string as an integer."
    )


def test_bad_choice_lists_allowed_values(conf):
    write(conf / "local.yaml", (conf / "local.yaml").read_text().replace("metastore: derby", "metastore: mysql"))
    with pytest.raises(ConfigError) as err:
        load_settings("local", conf, environ={})
    assert str(err.value) == (
        f"invalid configuration: {conf / 'local.yaml'}: key 'hive.metastore' has bad value 'mysql': "
        "Input should be 'derby' or 'jdbc'."
    )


def test_bad_registry_uri_says_which_schemes_are_allowed(conf):
    with pytest.raises(ConfigError, match=r"key 'registry.uri' has bad value 's3://bucket/reg': Value error, must be a file:// or webhdfs://"):
        load_settings("local", conf, overrides=["registry.uri=s3://bucket/reg"], environ={})


def test_unknown_environment_lists_known_ones(conf):
    with pytest.raises(ConfigError) as err:
        load_settings("prd", conf, environ={})
    assert str(err.value) == (
        f"unknown environment 'prd': {conf} defines cluster, dev, local, prod, test. "
        f"Pass --env with one of those, or create {conf / 'prd.yaml'}."
    )


def test_malformed_yaml_gives_file_line_and_column(conf):
    write(conf / "test.yaml", "spark:\n  master: yarn\n bad_indent: 1\n")
    with pytest.raises(ConfigError) as err:
        load_settings("test", conf, environ={})
    assert str(err.value) == (
        f"{conf / 'test.yaml'}:3:2: malformed YAML: expected <block end>, but found '<block mapping start>'. "
        "Fix the syntax at that line."
    )


def test_missing_required_key_says_where_to_set_it(conf):
    write(conf / "dev.yaml", "spark:\n  master: yarn\n")
    with pytest.raises(ConfigError) as err:
        load_settings("dev", conf, environ={})
    assert str(err.value) == (
        f"invalid configuration: missing required key 'registry.uri' for environment 'dev': "
        f"set it in {conf / 'dev.yaml'} or {conf / 'base.yaml'}."
    )


def test_missing_conf_dir_says_how_to_point_at_one(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_settings("local", tmp_path / "nope", environ={})
    assert str(err.value) == (
        f"config directory {tmp_path / 'nope'} does not exist. "
        "Run from the project root, or pass --conf-dir DIR or set SPARKML_OPS_CONF_DIR."
    )


def test_set_without_equals_is_a_usage_error(conf):
    with pytest.raises(ConfigError, match=r"expected KEY=VALUE"):
        load_settings("local", conf, overrides=["spark.master"], environ={})


def test_secret_is_masked_in_dump_and_error_messages(conf):
    write(conf / "private" / "dev.yaml", "hive:\n  jdbc_password: s3cr3t-pw\n")
    settings = load_settings("dev", conf, environ={})
    assert settings.secret_values() == ("s3cr3t-pw",)
    assert "s3cr3t-pw" not in str(settings.public_dict())
    write(conf / "private" / "dev.yaml", "hive:\n  jdbc_password: [s3cr3t-pw]\n")
    with pytest.raises(ConfigError) as err:
        load_settings("dev", conf, environ={})
    assert "s3cr3t-pw" not in str(err.value)
    assert "key 'hive.jdbc_password' has bad value ***" in str(err.value)


def test_java_home_from_environment_fills_unset_config(conf):
    settings = load_settings("local", conf, environ={"JAVA_HOME": "/opt/jdk17"})
    assert settings.spark.java_home == "/opt/jdk17"
    settings = load_settings("local", conf, overrides=["spark.java_home=/opt/jdk21"], environ={"JAVA_HOME": "/opt/jdk17"})
    assert settings.spark.java_home == "/opt/jdk21"


def test_committed_conf_holds_no_secrets():
    for path in CONF_DIR.glob("*.yaml"):
        text = path.read_text().lower()
        assert "password:" not in text, f"{path} must not carry a password; use conf/private/"
