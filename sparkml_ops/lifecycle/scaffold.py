"""``sparkml-ops new-model NAME``: start a model the approved way, from commented templates.

A model project is the model config, a feature spec (or a reference to an existing one), an
optional estimator module, a test under ``tests/models/`` and scheduler snippets (a cron file and
an Airflow DAG with the release paths). Every file is new: an existing one is never overwritten,
and nothing is written unless every file can be. The generated config and spec are loaded before
anything is written, so ``sparkml-ops quickstart --model NAME`` runs without one edit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from string import Template

import yaml

from sparkml_ops.config import Settings
from sparkml_ops.errors import FeatureSpecError, NotFoundError, UsageError
from sparkml_ops.features import FeatureSpec, feature_columns, load_feature_spec
from sparkml_ops.features.spec import resolve_spec_path, spec_directory
from sparkml_ops.identifiers import check_project_name
from sparkml_ops.io.files import write_new_files
from sparkml_ops.io.storage import local_scratch
from sparkml_ops.modelconfig import ModelConfig
from sparkml_ops.transforms.rules import RulesModel

TEMPLATES = ("binary", "regression", "sparkml", "rules")
SCHEDULE_ENV = "prod"
# The rule of the `rules` template over the starter features: yesterday's spend spike, foreign and online bursts.
STARTER_RULE = (
    "    LEAST(1.0,\n"
    "        0.4 * CAST(coalesce(tx_amount_mean_1d_vs_30d, 0) > {spend_spike} AS DOUBLE)\n"
    "      + 0.4 * CAST(coalesce(tx_is_foreign_sum_1d, 0) >= {foreign_tx_1d} AS DOUBLE)\n"
    "      + 0.2 * CAST(coalesce(tx_is_ecom_sum_1d, 0) >= {ecom_tx_1d} AS DOUBLE))"
)
STARTER_THRESHOLDS = {"spend_spike": ("2.5", "times the 30-day mean spend, yesterday"),
                      "foreign_tx_1d": ("1", "foreign transactions yesterday"),
                      "ecom_tx_1d": ("3", "online transactions yesterday")}
ESTIMATORS = {
    "binary": ("sklearn.ensemble.HistGradientBoostingClassifier", "any scikit-learn classifier with predict_proba"),
    "regression": ("sklearn.ensemble.HistGradientBoostingRegressor", "any scikit-learn regressor"),
}


@dataclass(frozen=True)
class NewModel:
    """What ``new-model`` was asked for: the name, the template, an existing feature set to reuse, a module, the owner."""

    name: str
    template: str = "binary"
    feature_set: str | None = None
    estimator_module: bool = False
    owner: str = "unknown"  # who runs new-model: the config's `owner` tag


@dataclass(frozen=True)
class Scaffold:
    """What ``new-model`` wrote (absolute paths) and the commands to run next."""

    root: Path
    files: tuple[Path, ...]
    next_steps: tuple[str, ...]


def new_model(settings: Settings, request: NewModel, root: Path | None = None) -> Scaffold:
    """Write the project files of a new model into ``root`` (default: the parent of the config directory).

    Raises:
        UsageError: the name is not a valid model, Hive and Python name, or the template is unknown (exit 2).
        NotFoundError: ``request.feature_set`` names no spec (exit 4).
        FeatureSpecError: the named spec exists but is invalid (exit 2).
        PathExistsError: a file to write exists already; nothing was written (exit 8).
    """
    check_project_name(request.name)
    if request.template not in TEMPLATES:
        raise UsageError(f"unknown template {request.template!r}; templates: {', '.join(TEMPLATES)}.")
    conf_dir = settings.conf_dir or Path("conf")
    root = root or conf_dir.parent
    spec = _existing_spec(settings, request.feature_set) if request.feature_set else None
    files = plan_files(settings, request, spec, root)
    package = root / "tests" / "models" / "__init__.py"
    if (root / "tests" / "__init__.py").is_file() and not package.exists():  # tests/ is a package here: so is models/
        files[package] = ""
    _check_generated(settings, request, files)
    written = write_new_files(files)
    return Scaffold(root, tuple(written), _next_steps(request, root))


def _existing_spec(settings: Settings, name: str) -> FeatureSpec:
    """The feature set a new model reuses; an unknown name is 'not found', an invalid spec its own error."""
    try:
        resolve_spec_path(name, settings)
    except FeatureSpecError as exc:
        raise NotFoundError(exc.message, hint=exc.hint) from exc
    return load_feature_spec(name, settings)


def plan_files(settings: Settings, request: NewModel, spec: FeatureSpec | None, root: Path) -> dict[Path, str]:
    """Every file of the project, path -> content; pure (nothing is read but the templates)."""
    name, conf_dir = request.name, settings.conf_dir or root / "conf"
    values = _values(settings, request, spec)
    files = {conf_dir / "models" / f"{name}.yaml": _model_config(request, spec, values)}
    if spec is None:
        files[spec_directory(settings) / f"{name}.yaml"] = _render("features.yaml.tmpl", values)
    if request.template == "sparkml" or (request.estimator_module and request.template in ESTIMATORS):
        files[conf_dir / "models" / f"{name}_estimator.py"] = _render(f"estimator_{request.template}.py.tmpl", values)
    files[root / "tests" / "models" / f"test_{name}.py"] = _render("test_model.py.tmpl", values)
    files[root / "schedules" / name / "crontab"] = _render("crontab.tmpl", values)
    files[root / "schedules" / name / f"{name}_dag.py"] = _render("airflow_dag.py.tmpl", values)
    return files


def _values(settings: Settings, request: NewModel, spec: FeatureSpec | None) -> dict[str, str]:
    """The template variables of one request."""
    now = datetime.now(UTC)
    return {
        "name": request.name, "template": request.template, "today": now.date().isoformat(), "user": request.owner,
        "year": str(now.year), "month": str(now.month), "day": str(now.day),
        "feature_set": spec.name if spec else request.name,
        "release": f"{settings.deploy.base_dir.rstrip('/')}/current", "env": SCHEDULE_ENV,
    }


def _model_config(request: NewModel, spec: FeatureSpec | None, values: dict[str, str]) -> str:
    """The model config: the common header, then the template's own part."""
    reused = f"the existing spec {spec.path.name}" if spec else f"conf/features/{request.name}.yaml, generated with this file"
    header = _render("model_header.yaml.tmpl", {
        **values, "feature_set_comment": reused,
        "description": f"{request.template} model {request.name} (describe what the score means and for whom)"})
    body = dict(values, estimator=_estimator_block(request))
    if request.template == "rules":
        body.update(_rules_block(spec))
    return header + _render(f"model_{request.template}.yaml.tmpl", body)


def _estimator_block(request: NewModel) -> str:
    """The ``estimator:`` section of the binary and regression templates: a class path, or the generated module."""
    if request.template not in ESTIMATORS:
        return ""
    if request.estimator_module:
        head = (f"  factory: {request.name}_estimator:build  # conf/models/{request.name}_estimator.py returns the estimator\n"
                "  params:  # passed to build() as keyword arguments\n")
    else:
        class_path, what = ESTIMATORS[request.template]
        head = f"  class: {class_path}  # {what}\n  params:  # passed to the class as keyword arguments\n"
    return (head + "    max_iter: 100  # boosting rounds\n    learning_rate: 0.1  # shrinkage per round\n"
            "    random_state: 42  # seeded: `models reproduce` rebuilds it bit for bit")


def _rules_block(spec: FeatureSpec | None) -> dict[str, str]:
    """The expression and thresholds of the ``rules`` template: the starter rule, or one over the spec's first numbers."""
    names = {n for n, _ in feature_columns(spec)} if spec else None
    needed = {"tx_amount_mean_1d_vs_30d", "tx_is_foreign_sum_1d", "tx_is_ecom_sum_1d"}
    if names is None or needed <= names:
        expression, thresholds = STARTER_RULE, STARTER_THRESHOLDS
    else:
        numeric = [n for n, t in feature_columns(spec) if t in ("double", "float", "bigint", "int")][:2]
        if not numeric:
            raise UsageError(f"feature set {spec.name} has no numeric feature for a rule; pick another with --feature-set.")
        expression = ("    LEAST(1.0,\n" + "\n".join(
            f"      {'+ ' if i else '  '}0.5 * CAST(coalesce({n}, 0) > {{{n}_high}} AS DOUBLE)"
            for i, n in enumerate(numeric)) + ")")
        thresholds = {f"{n}_high": ("0", f"a high {n}: set it from its distribution") for n in numeric}
    lines = "\n".join(f"    {k}: {v}  # {why}" for k, (v, why) in thresholds.items())
    return {"expression": expression, "thresholds": lines}


def _render(template: str, values: dict[str, str]) -> str:
    text = resources.files("sparkml_ops.lifecycle").joinpath("templates", template).read_text(encoding="utf-8")
    return Template(text).substitute(values)


def _check_generated(settings: Settings, request: NewModel, files: dict[Path, str]) -> None:
    """The generated config (and spec) must load: a template mistake is a bug, found before anything is written."""
    config_text = files[(settings.conf_dir or Path("conf")) / "models" / f"{request.name}.yaml"]
    config = ModelConfig.model_validate({**yaml.safe_load(config_text), "name": request.name})
    if config.rules is not None:
        RulesModel(config.rules.expression, config.rules.thresholds)
    spec_text = files.get(spec_directory(settings) / f"{request.name}.yaml")
    if spec_text is not None:
        with local_scratch() as scratch:
            scratch.write(f"{request.name}.yaml", spec_text.encode("utf-8"))
            load_feature_spec(scratch.root / f"{request.name}.yaml", settings)


def _next_steps(request: NewModel, root: Path) -> tuple[str, ...]:
    """What to run next, in order."""
    name = request.name
    return (
        f"sparkml-ops quickstart --model {name}          # demo data -> features -> train -> register -> score -> query",
        f".venv/bin/python -m pytest tests/models/test_{name}.py",
        f"sparkml-ops train {name} --from D1 --to D2 --dry-run   # on your data, once the spec points at it",
        f"git add conf tests/models schedules/{name}   # then review: every line of the generated files says why",
    )
