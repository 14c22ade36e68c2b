"""Typed, validated configuration, loaded once at an entry point.

Sources, lowest precedence first (documented in the README):

1. :func:`global_defaults` (this module)
2. ``<conf_dir>/base.yaml``
3. ``<conf_dir>/<env>.yaml``
4. ``<conf_dir>/private/base.yaml`` then ``<conf_dir>/private/<env>.yaml`` (git-ignored: secrets, personal overrides)
5. ``SPARKML_OPS_<SECTION>__<KEY>`` environment variables (``__`` separates nesting levels)
6. command-line ``--set key.path=value`` flags

Library code receives the frozen :class:`Settings` and never reads files or the
environment itself.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from sparkml_ops.configfile import Frozen, KeyProblem, YamlFile, key_problems, rule
from sparkml_ops.errors import ConfigError
from sparkml_ops.identifiers import is_env_name, is_hive_identifier

ENV_PREFIX = "SPARKML_OPS_"
# Loader inputs, not settings keys: they choose which files to read.
LOADER_ENV_VARS = frozenset({"SPARKML_OPS_ENV", "SPARKML_OPS_CONF_DIR", "SPARKML_OPS_LOG_FORMAT",
                             "SPARKML_OPS_BUILD_ID", "SPARKML_OPS_GIT_COMMIT", "SPARKML_OPS_CACHE"})
PRIVATE_DIR = "private"
SECRET_KEY_RE = re.compile(r"password|secret|token|credential", re.IGNORECASE)
SETTINGS_FILE = YamlFile(not_mapping="top level must be a mapping of keys, got {type}.",
                         malformed_hint="Fix the syntax at that line.")

HiveName = Annotated[str, rule(is_hive_identifier,
                               "must be a Hive identifier: letters, digits and _, not starting with a digit")]
RegistryUri = Annotated[str, rule(lambda v: re.match(r"^(file|webhdfs|swebhdfs)://", v) is not None,
                                  "must be a file:// or webhdfs:// (swebhdfs:// for TLS) URI")]
Duration = Annotated[str, rule(lambda v: re.fullmatch(r"\d{1,4}[hd]", v) is not None, "must be a duration like 0d, 6h or 1d")]


class HiveDatabases(Frozen):
    """Hive database names per data layer."""

    raw: HiveName = "ml_raw"
    features: HiveName = "ml_features"
    scores: HiveName = "ml_scores"
    ops: HiveName = "ml_ops"


class HiveSettings(Frozen):
    """Hive metastore and warehouse.

    ``derby`` is the embedded single-process default; ``jdbc`` points Spark's Hive
    client at a shared metastore database (PostgreSQL) so several applications and
    the Thrift server see one catalog.
    """

    metastore: Literal["derby", "jdbc"] = "derby"
    warehouse_dir: str | None = None
    jdbc_url: str | None = None
    jdbc_driver: str = "org.postgresql.Driver"
    jdbc_user: str | None = None
    jdbc_password: SecretStr | None = None
    jdbc_driver_jar: str | None = None
    databases: HiveDatabases = HiveDatabases()


class RegistryAuth(Frozen):
    """How the registry authenticates to WebHDFS/HttpFS; ignored for ``file://``."""

    method: Literal["none", "simple", "kerberos"] = "none"
    user: str | None = None
    principal: str | None = None
    # kerberos: with a keytab the library logs in by itself (private cache, renewed); without one it
    # uses the ticket cache `ccache` (FILE:/path), or the user's default cache when that is unset too.
    keytab: str | None = None
    ccache: str | None = None


class RegistrySettings(Frozen):
    """Where the model registry lives: ``file:///path`` or ``webhdfs://host:port/path``."""

    uri: RegistryUri
    auth: RegistryAuth = RegistryAuth()
    timeout_s: float = Field(default=60.0, gt=0)
    staging_max_age_hours: float = Field(default=24.0, gt=0)
    # hdfs://namenode:8020 of the NameNode behind registry.uri, for Spark's own ML readers/writers
    # (flavor 'sparkml'); unset: such models are copied through a local temporary directory.
    hdfs_uri: str | None = Field(default=None, pattern=r"^(hdfs|viewfs)://[^/]+$")


class SparkSettings(Frozen):
    """How the Spark session is built; ``conf`` entries are passed through verbatim."""

    master: str = "local[*]"
    app_name: str = "sparkml-ops"
    ui: bool = False
    log_level: Literal["ALL", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF"] = "WARN"
    java_home: str | None = None
    conf: dict[str, str] = {}

    @field_validator("conf", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> Any:
        # YAML reads `4` and `true` as int/bool; Spark wants strings.
        if isinstance(value, Mapping):
            return {str(k): (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in value.items()}
        return value


class SshHost(Frozen):
    """An SSH endpoint; ``user``/``port`` fall back to ``~/.ssh/config`` when unset."""

    host: str
    port: int | None = Field(default=None, ge=1, le=65535)
    user: str | None = None


class PromotionSettings(Frozen):
    """Gates a build must pass before ``fab promote`` puts it in this environment."""

    from_env: str = "test"
    min_soak_s: int = Field(default=7 * 24 * 3600, ge=0)
    required_approvals: int = Field(default=2, ge=0)
    change_id_pattern: str = r"^CHG-[0-9]{3,}$"


Principal = Annotated[str, rule(lambda v: re.fullmatch(r"[^\s@/]+(/[^\s@/]+)?@[^\s@/]+", v) is not None,
                                "must be a Kerberos principal with its realm, like svc-sparkml@EXAMPLE.COM")]
EdgePath = Annotated[str, rule(lambda v: v.startswith("/") and ".." not in v.split("/"),
                               "must be an absolute path on the edge nodes, without '..'")]


class DeployKerberos(Frozen):
    """The environment's Kerberos identity on its edge nodes: a principal and the path of its keytab *there*.

    The keytab never leaves the edge nodes (nor enters this config): only its path is configured, shown
    and logged. The nodes' own ``/etc/krb5.conf`` names the realm and its KDC.
    """

    principal: Principal
    keytab: EdgePath


class DeploySettings(Frozen):
    """Where builds go for this environment (edge nodes, bastion, directories).

    SSH files default to the user's own (``~/.ssh/config``, ``~/.ssh/known_hosts``); host keys
    are always checked strictly. ``smoke_*`` describe the spark-submit run on each edge node.
    """

    edge_hosts: tuple[SshHost, ...] = ()
    bastion: SshHost | None = None
    base_dir: str = "/opt/sparkml-ops"
    hdfs_dir: str | None = None
    # Where `trace` and `status` read hdfs_dir from without SSH: webhdfs://namenode:9870 (default: the
    # registry's NameNode when registry.uri is WebHDFS; the registry's auth is used), or file:// for a mount.
    hdfs_read_uri: str | None = Field(default=None, pattern=r"^(file|webhdfs|swebhdfs)://[^/]*/?$")
    connect_timeout_s: float = Field(default=15.0, gt=0)
    keep_releases: int = Field(default=5, ge=2)
    ssh_config: str | None = None
    known_hosts: str | None = None
    identity_file: str | None = None
    command_timeout_s: float = Field(default=900.0, gt=0)
    parallel: int = Field(default=8, ge=1)
    python: str = "python3"
    spark_submit: str = "spark-submit"
    smoke_master: str | None = None
    smoke_env: dict[str, str] = {}
    smoke_args: tuple[str, ...] = ()
    hdfs_command: str = "hdfs dfs"
    builds_dir: str | None = None
    remote_conf_dir: str | None = None
    exclude_packages: tuple[str, ...] = ("pyspark", "py4j")
    promotion: PromotionSettings | None = None
    # With Kerberos: the smoke test, HDFS publish/audit copy and the registry reads of `fab status` and
    # `fab promote-model` log in on the edge node from this keytab, into a private cache per command.
    kerberos: DeployKerberos | None = None


class LoggingSettings(Frozen):
    """Log line format and level."""

    format: Literal["text", "json"] = "text"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class FeaturesSettings(Frozen):
    """Feature sets: where specs live, where run statistics go, defaults for specs.

    ``spec_dir`` is resolved against the config directory when relative; a spec named
    ``card_fraud`` is the file ``<spec_dir>/card_fraud.yaml``.
    """

    spec_dir: str = "features"
    stats_table: HiveName = "feature_stats"
    default_availability_lag: Duration = "1d"
    max_dates_per_run: int = Field(default=31, ge=1)
    # The newest source days a build reads raw (as one-row tiles) until this many are untiled; then all
    # are tiled in one job. 1 tiles every new day at once; 7 spares six nights in seven that job.
    tile_batch_days: int = Field(default=7, ge=1, le=31)
    # A build of several as-of dates (a backfill) that finds days without valid tiles: true (the default)
    # reads them raw and stores none, so the backfill does the least work (one shuffle of the raw rows) and
    # the next single-date build tiles the days it reads, once; false stores them during the backfill.
    defer_backfill_state: bool = True
    # Lengths in days of the stored roll-ups of the daily tiles a build reads between its window edges
    # (docs/features.md, "Roll-ups"); () reads daily tiles only. Nested lengths (27, 9, 3) fit best.
    rollup_days: tuple[Annotated[int, Field(ge=2, le=366)], ...] = (27, 9, 3)

    @field_validator("rollup_days")
    @classmethod
    def _distinct_levels(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if len(set(value)) != len(value):
            raise ValueError("roll-up lengths must be distinct")
        return tuple(sorted(value, reverse=True))


class SmtpSettings(Frozen):
    """The site's SMTP relay for alert e-mail; the password only from ``conf/private/`` (or an environment variable)."""

    host: str
    port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = True
    sender: str = Field(alias="from", pattern=r"^[^@\s]+@[^@\s]+$")
    to: tuple[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")], ...] = Field(min_length=1)
    user: str | None = None
    password: SecretStr | None = None
    ca_file: str | None = None  # a PEM bundle of the site's CA when the relay's certificate is not in the system's store
    timeout_s: float = Field(default=30.0, gt=0)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class AlertSettings(Frozen):
    """Where alerts go in this environment (README "Alerts"); with neither a command nor SMTP, they are only logged and recorded.

    ``command`` is run without a shell, with the alert as JSON on its standard input.
    """

    command: tuple[str, ...] = ()
    command_timeout_s: float = Field(default=60.0, gt=0)
    smtp: SmtpSettings | None = None
    events: tuple[Literal["failed_run", "drift", "missing_run"], ...] = ("failed_run", "drift", "missing_run")
    drift_level: Literal["warn", "fail"] = "fail"
    table: HiveName = "alerts"


class Settings(Frozen):
    """The whole effective configuration of one environment."""

    env: str
    state_dir: Path
    spark: SparkSettings = SparkSettings()
    hive: HiveSettings = HiveSettings()
    registry: RegistrySettings
    deploy: DeploySettings = DeploySettings()
    logging: LoggingSettings = LoggingSettings()
    features: FeaturesSettings = FeaturesSettings()
    alerts: AlertSettings = AlertSettings()
    # The config directory this was loaded from (feature specs and model configs live beside it)
    # and the files and variables that contributed, lowest precedence first; both set by the loader.
    conf_dir: Path | None = None
    sources: tuple[str, ...] = ()

    def secret_values(self) -> tuple[str, ...]:
        """Secret strings to mask in logs."""
        secrets = (self.hive.jdbc_password, self.alerts.smtp.password if self.alerts.smtp else None)
        return tuple(pw.get_secret_value() for pw in secrets if pw and pw.get_secret_value())

    def public_dict(self) -> dict[str, Any]:
        """The settings as plain data with secrets masked, for ``config show``."""
        return self.model_dump(mode="json")


def global_defaults() -> dict[str, Any]:
    """Built-in defaults: the lowest-precedence layer (model defaults fill the rest)."""
    return {"state_dir": "~/.sparkml-ops/${env}"}


def available_environments(conf_dir: Path) -> list[str]:
    """Environment names defined in ``conf_dir`` (one ``<env>.yaml`` each)."""
    return sorted(p.stem for p in conf_dir.glob("*.yaml") if p.stem != "base")


def load_settings(
    env: str | None = None,
    conf_dir: str | Path | None = None,
    overrides: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Load, merge and validate the configuration of one environment.

    Args:
        env: environment name; falls back to ``SPARKML_OPS_ENV`` then ``local``.
        conf_dir: config directory; falls back to ``SPARKML_OPS_CONF_DIR`` then ``./conf``.
        overrides: ``key.path=value`` strings from the command line (highest precedence).
        environ: the process environment (entry points pass ``os.environ``).
        cwd: directory relative paths are resolved against (default: the process cwd).

    Raises:
        ConfigError: naming the file or variable, the key, the bad value and what is allowed.
    """
    environ = dict(environ or {})
    base = (cwd or Path.cwd()).resolve()
    env = env or environ.get("SPARKML_OPS_ENV") or "local"
    conf_path = _conf_dir(conf_dir or environ.get("SPARKML_OPS_CONF_DIR") or "conf", base)
    _check_env(env, conf_path)
    layers = _layers(conf_path, env, environ, overrides)
    merged, origin = _merged(layers)
    _check_private(origin, conf_path)
    data = _resolved(merged, env, base, environ.get("JAVA_HOME"))
    data.update(env=env, sources=[source for source, _ in layers], conf_dir=str(conf_path))
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origin, env, conf_path)) from exc


# Secrets that must not sit in a committed file (conf/base.yaml, conf/<env>.yaml): they are shipped in conf.tar.gz.
PRIVATE_KEYS = (("alerts", "smtp", "password"),)


def _check_private(origin: Mapping[tuple[str, ...], str], conf_dir: Path) -> None:
    """Refuse a secret set in a committed config file.

    Raises:
        ConfigError: naming the file and key, and where the secret belongs.
    """
    for key in PRIVATE_KEYS:
        source = origin.get(key, "")
        if source.endswith(".yaml") and Path(source).parent == conf_dir:
            raise ConfigError(f"{source}: key '{'.'.join(key)}' is a secret and this file is committed and shipped with "
                              f"every build; move it to {conf_dir / PRIVATE_DIR}/<env>.yaml (git-ignored) or "
                              f"SPARKML_OPS_{'__'.join(k.upper() for k in key)}.")


def _conf_dir(conf_dir: str | Path, base: Path) -> Path:
    """The config directory as an absolute path; it must exist."""
    path = Path(conf_dir).expanduser()
    path = path if path.is_absolute() else base / path
    if not path.is_dir():
        raise ConfigError(
            f"config directory {path} does not exist.",
            hint="Run from the project root, or pass --conf-dir DIR or set SPARKML_OPS_CONF_DIR.",
        )
    return path


def _check_env(env: str, conf_dir: Path) -> None:
    """``env`` must be a valid name with its own ``<conf_dir>/<env>.yaml``."""
    if not is_env_name(env):
        raise ConfigError(f"environment name {env!r} is invalid: use lowercase letters, digits, '-' and '_'.")
    known = available_environments(conf_dir)
    if env not in known:
        raise ConfigError(
            f"unknown environment {env!r}: {conf_dir} defines {', '.join(known) or 'none'}.",
            hint=f"Pass --env with one of those, or create {conf_dir / (env + '.yaml')}.",
        )


def _layers(conf_dir: Path, env: str, environ: Mapping[str, str],
            overrides: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
    """Every config source as ``(where it came from, its data)``, lowest precedence first."""
    layers: list[tuple[str, dict[str, Any]]] = [("built-in defaults", global_defaults())]
    for path in (conf_dir / "base.yaml", conf_dir / f"{env}.yaml",
                 conf_dir / PRIVATE_DIR / "base.yaml", conf_dir / PRIVATE_DIR / f"{env}.yaml"):
        if path.is_file():
            layers.append((str(path), SETTINGS_FILE.read(path)))
        elif path.name == "base.yaml" and path.parent == conf_dir:
            raise ConfigError(f"{path} is missing: every config directory needs a base.yaml.")
    for name in sorted(environ):
        if name.startswith(ENV_PREFIX) and name not in LOADER_ENV_VARS:
            layers.append((f"environment variable {name}", _env_layer(name, environ[name])))
    for item in overrides:
        layers.append((f"command-line --set {_masked(item)}", _override_layer(item)))
    return layers


def _merged(layers: Sequence[tuple[str, Mapping[str, Any]]]) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    """The layers merged key by key, and for each key path the source that set it last."""
    merged: dict[str, Any] = {}
    origin: dict[tuple[str, ...], str] = {}
    for source, data in layers:
        _merge(merged, data, source, origin, ())
    return merged, origin


def _resolved(merged: Mapping[str, Any], env: str, base: Path, java_home: str | None) -> dict[str, Any]:
    """The merged data with ``spark.java_home`` filled in, ``state_dir`` absolute and placeholders expanded."""
    data = {key: value for key, value in merged.items() if key != "env"}
    spark = data.get("spark", {})
    if isinstance(spark, dict) and not spark.get("java_home") and java_home:
        # The JVM pyspark launches is the one in JAVA_HOME; record it so checks look at the same one.
        data["spark"] = {**spark, "java_home": java_home}
    if "state_dir" in data:
        state = Path(str(data["state_dir"]).replace("${env}", env)).expanduser()
        data["state_dir"] = str(state if state.is_absolute() else base / state)
    return _expand(data, env, data.get("state_dir"))


def _parse_scalar(raw: str) -> Any:
    try:
        return yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        return raw


def _env_layer(name: str, raw: str) -> dict[str, Any]:
    path = name[len(ENV_PREFIX):].lower().split("__")
    if any(not part for part in path):
        raise ConfigError(f"environment variable {name}: empty key segment; use SPARKML_OPS_SECTION__KEY.")
    return _nest(path, _parse_scalar(raw))


def _masked(item: str) -> str:
    """``key=value`` with the value hidden when the key names a secret (it is shown as a source)."""
    key, sep, _ = item.partition("=")
    return f"{key}=***" if sep and SECRET_KEY_RE.search(key) else item


def _override_layer(item: str) -> dict[str, Any]:
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"command-line --set {_masked(item)!r}: expected KEY=VALUE, e.g. --set spark.master=local[2].")
    parts = key.strip().split(".")
    # spark.conf keys contain dots themselves (spark.sql.shuffle.partitions): keep them whole.
    if parts[:2] == ["spark", "conf"] and len(parts) > 2:
        parts = ["spark", "conf", ".".join(parts[2:])]
    return _nest(parts, _parse_scalar(raw))


def _nest(path: list[str], value: Any) -> dict[str, Any]:
    out: Any = value
    for part in reversed(path):
        out = {part: out}
    return out


def _merge(into: dict[str, Any], data: Mapping[str, Any], source: str, origin: dict, prefix: tuple[str, ...]) -> None:
    for key, value in data.items():
        path = prefix + (str(key),)
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value, source, origin, path)
        else:
            into[key] = copy.deepcopy(dict(value)) if isinstance(value, Mapping) else value
            _record(value, source, origin, path)


def _record(value: Any, source: str, origin: dict, path: tuple[str, ...]) -> None:
    origin[path] = source
    if isinstance(value, Mapping):
        for key, sub in value.items():
            _record(sub, source, origin, path + (str(key),))


def _expand(value: Any, env: str, state_dir: str | None) -> Any:
    """Replace ``${env}`` and ``${state_dir}`` in string values."""
    if isinstance(value, dict):
        return {k: _expand(v, env, state_dir) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, env, state_dir) for v in value]
    if isinstance(value, str):
        value = value.replace("${env}", env)
        if state_dir is not None:
            value = value.replace("${state_dir}", state_dir)
    return value


def _allowed_keys(model: type[BaseModel], loc: Sequence[Any]) -> list[str]:
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None:
            return []
        ann = field.annotation
        candidates = [ann, *getattr(ann, "__args__", ())]
        sub = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if sub is None:
            return []
        model = sub
    return sorted(model.model_fields)


def _first_required(model: type[BaseModel], loc: Sequence[str]) -> tuple[str, ...]:
    """For a missing section, the path of its first required key, so the message names a leaf."""
    for part in loc:
        field = model.model_fields.get(part)
        ann = field.annotation if field else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return ()
        model = ann
    for name, field in model.model_fields.items():
        if field.is_required():
            return (name, *_first_required(model, (name,)))
    return ()


def _describe(exc: ValidationError, origin: dict, env: str, conf_dir: Path) -> str:
    lines = [_problem_line(problem, origin, env, conf_dir) for problem in key_problems(exc)]
    return "invalid configuration:\n  " + "\n  ".join(lines) if len(lines) > 1 else "invalid configuration: " + lines[0]


def _problem_line(problem: KeyProblem, origin: dict, env: str, conf_dir: Path) -> str:
    """One problem, naming the file or variable that set the key (and what to do about it)."""
    loc = problem.loc
    source = next((origin[loc[:i]] for i in range(len(loc), 0, -1) if loc[:i] in origin), None)
    if problem.kind == "unknown":
        parent = loc[:-1]
        allowed = [k for k in _allowed_keys(Settings, parent) if k not in ("sources", "conf_dir")]
        under = f" under '{'.'.join(parent)}'" if parent else ""
        return f"{source}: {problem.describe()}; allowed keys{under}: {', '.join(allowed)}."
    if problem.kind == "missing":
        leaf = replace(problem, loc=loc + _first_required(Settings, loc))
        return (f"{leaf.describe()} for environment '{env}': "
                f"set it in {conf_dir / (env + '.yaml')} or {conf_dir / 'base.yaml'}.")
    return f"{source}: {problem.describe('***' if SECRET_KEY_RE.search(problem.key) else None)}."
