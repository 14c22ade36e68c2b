"""Per-model configuration: ``<conf_dir>/models/<name>.yaml`` (what to train, how to score, gates).

Onboarding a model is this file plus, optionally, a small Python module beside it that builds
the estimator (``estimator.factory: my_module:build``); the library never changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, ValidationError, model_validator

from sparkml_ops.configfile import Frozen, YamlFile, key_problems, rule
from sparkml_ops.errors import ConfigError, NotFoundError
from sparkml_ops.identifiers import NAME_RE, is_class_path, is_function_ref, is_name, is_table_name

MODEL_CONFIG_FILE = YamlFile()
ModelName = Annotated[str, rule(is_name, f"must match {NAME_RE.pattern} (lowercase letters, digits, '-', '_')")]
TableName = Annotated[str, rule(is_table_name, "must be a Hive table name, optionally qualified: db.table")]


class EstimatorConfig(Frozen):
    """Either a scikit-learn class path with params, or ``module:function`` returning an estimator."""

    class_path: str | None = Field(default=None, alias="class")
    params: dict[str, object] = {}
    factory: str | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _one_of(self) -> "EstimatorConfig":
        if bool(self.class_path) == bool(self.factory):
            raise ValueError("set exactly one of 'class' (e.g. sklearn.linear_model.LogisticRegression) or 'factory' (module:function)")
        if self.class_path and not is_class_path(self.class_path):
            raise ValueError(f"'class' must be a dotted path like sklearn.linear_model.LogisticRegression, got {self.class_path!r}")
        if self.factory and not is_function_ref(self.factory):
            raise ValueError(f"'factory' must look like module:function, got {self.factory!r}")
        return self


class RulesConfig(Frozen):
    """A rules model instead of an estimator: a Spark SQL expression over the feature columns, ``{name}`` thresholds."""

    expression: str = Field(min_length=1)
    thresholds: dict[str, float] = {}


class TrainingConfig(Frozen):
    """Time split and sampling of the training set."""

    validation_days: int = Field(default=7, ge=1)
    max_rows: int = Field(default=2_000_000, ge=100)
    seed: int = 42
    thresholds: tuple[float, ...] = (0.5,)


class ScoringConfig(Frozen):
    """Decision threshold and drift limits used by the scoring job."""

    threshold: float | None = Field(default=None, ge=0, le=1)
    score_type: Literal["double", "float"] = "double"
    psi_bins: int = Field(default=10, ge=2, le=100)
    psi_warn: float = Field(default=0.1, ge=0)
    psi_fail: float = Field(default=0.25, ge=0)
    fail_on_drift: bool = False
    # Per-feature drift (ml_ops.feature_drift), computed while the scores are written; limits for its status.
    feature_drift: bool = True
    feature_psi_warn: float = Field(default=0.1, ge=0)
    feature_psi_fail: float = Field(default=0.25, ge=0)
    arrow_batch_size: int = Field(default=10_000, ge=100)


class GateConfig(Frozen):
    """When a new version becomes challenger/champion."""

    auto_challenger: bool = True
    promote_champion: bool = False
    min_metrics: dict[str, float] = {}
    max_metrics: dict[str, float] = {}
    compare_metric: str = "roc_auc"


class ModelConfig(Frozen):
    """Everything needed to train, register and score one model."""

    name: ModelName
    description: str = ""
    # binary: a 0/1 label, the score is P(1); regression: a numeric label, the score is the prediction.
    task: Literal["binary", "regression"] = "binary"
    # Free text for the model card of every version's report: what the scores are for, and what they are not.
    intended_use: str = ""
    limitations: str = ""
    feature_set: str
    label_table: TableName
    label_column: str = "label"
    # Exactly one of the two: an estimator to fit, or rules (SQL) to evaluate as they are.
    estimator: EstimatorConfig | None = None
    rules: RulesConfig | None = None
    training: TrainingConfig = TrainingConfig()
    scoring: ScoringConfig = ScoringConfig()
    gate: GateConfig = GateConfig()
    tags: dict[str, str] = {}
    # Directory of the config file; user factory modules are looked up there first.
    source_dir: Path | None = None

    @model_validator(mode="after")
    def _estimator_or_rules(self) -> "ModelConfig":
        if (self.estimator is None) == (self.rules is None):
            raise ValueError("set exactly one of 'estimator' (a model to fit) or 'rules' (a SQL expression to evaluate)")
        return self


def model_config_path(conf_dir: Path, name: str) -> Path:
    """Where the config of model ``name`` lives."""
    if not is_name(name):
        raise ConfigError(f"model name {name!r} is invalid: use lowercase letters, digits, '-' and '_' (max 64).")
    return conf_dir / "models" / f"{name}.yaml"


def load_model_config(conf_dir: Path, name: str) -> ModelConfig:
    """Load and validate ``<conf_dir>/models/<name>.yaml``.

    Raises:
        NotFoundError: no such file (the message lists the models that exist).
        ConfigError: malformed YAML or invalid keys, naming the file and key.
    """
    path = model_config_path(conf_dir, name)
    if not path.is_file():
        known = sorted(p.stem for p in (conf_dir / "models").glob("*.yaml"))
        raise NotFoundError(f"no model config {path}; known models: {', '.join(known) or 'none'}.",
                            hint=f"Create {path} (see README 'Onboarding a model').")
    data = MODEL_CONFIG_FILE.read(path)
    if data.get("name", name) != name:
        raise ConfigError(f"{path}: key 'name' is {data['name']!r} but the file is named for {name!r}; make them equal.")
    data = {**data, "name": name, "source_dir": str(path.parent)}
    try:
        return ModelConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: " + "; ".join(p.describe() for p in key_problems(exc)) + ".") from exc
