"""Training use-case: point-in-time training set -> time split -> fit -> evaluate -> publish -> gate."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from sparkml_ops.config import Settings
from sparkml_ops.configfile import import_user_module
from sparkml_ops.errors import ConfigError, DataValidationError, ModelNotFoundError
from sparkml_ops.evaluation import classification_metrics, score_baseline
from sparkml_ops.features import feature_columns, load_feature_spec, training_set
from sparkml_ops.modelconfig import ModelConfig
from sparkml_ops.registry import ModelVersion, Provenance, Signature, open_registry
from sparkml_ops.io.ops_tables import recorded_run
from sparkml_ops.scoring import new_run_id, signature_inputs
from sparkml_ops.transforms.scoring import predict_scores

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

# Metrics where lower is better; every other metric is better when higher.
LOWER_IS_BETTER = frozenset({"log_loss", "brier"})


@dataclass
class GateDecision:
    """Which aliases the new version gets, and why."""

    challenger: bool = False
    champion: bool = False
    reasons: list[str] = field(default_factory=list)


@dataclass
class TrainResult:
    """Outcome of one training run."""

    run_id: str
    model_name: str
    version: int | None
    metrics: dict[str, float]
    lineage: dict[str, Any]
    gate: GateDecision
    dry_run: bool = False


def build_estimator(config: ModelConfig) -> Any:
    """Instantiate the estimator named by the model config (class path + params, or a user factory).

    Raises:
        ConfigError: the class or factory cannot be imported or called.
    """
    est = config.estimator
    target = est.class_path or est.factory or ""
    module_name, _, attr = target.rpartition(".") if est.class_path else target.partition(":")
    try:
        # A factory's module may sit beside the model config (user code, not library code).
        module = import_user_module(module_name, config.source_dir if est.factory else None)
        obj: Callable[..., Any] = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"model {config.name}: cannot import estimator {target!r}: {exc}.",
                          hint="Check estimator.class / estimator.factory in the model's config.") from exc
    try:
        return obj(**est.params)
    except TypeError as exc:
        raise ConfigError(f"model {config.name}: {target}({', '.join(est.params)}) failed: {exc}.") from exc


def split_dates(start: date, end: date, validation_days: int) -> tuple[date, date]:
    """Last day of training and first day of validation: validation is the last N days, never random."""
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    first_validation = end - timedelta(days=validation_days - 1)
    if first_validation <= start:
        raise DataValidationError(
            f"range {start}..{end} is too short for {validation_days} validation days plus training days.",
            hint="Widen --from/--to or lower training.validation_days.",
        )
    return first_validation - timedelta(days=1), first_validation


def run_training(
    spark: "SparkSession",
    settings: Settings,
    config: ModelConfig,
    start: date,
    end: date,
    provenance: Provenance,
    dry_run: bool = False,
) -> TrainResult:
    """Train, evaluate and (unless ``dry_run``) publish a new version of ``config.name``, then apply the gate.

    Raises:
        DataValidationError: empty or one-class splits, too short a range (exit 3).
        ConfigError: bad estimator config (exit 2).
    """
    run_id = new_run_id("train")
    record: dict[str, Any] = {"run_id": run_id, "job": "train", "model_name": config.name, "model_ref": config.name,
                              "start_date": start.isoformat(), "end_date": end.isoformat(), "run_user": provenance.user,
                              "run_host": provenance.host, "application_id": spark.sparkContext.applicationId}
    with recorded_run(spark, settings.hive.databases.ops, record):
        result = _train(spark, settings, config, start, end, provenance, dry_run, run_id, record)
        record.update(model_version=result.version,
                      message=json.dumps({"metrics": result.metrics, "dry_run": dry_run}, default=str))
    return result


def _train(spark, settings, config, start, end, provenance, dry_run, run_id, record) -> TrainResult:
    from pyspark.sql import functions as F

    spec = load_feature_spec(config.feature_set, settings)
    features = feature_columns(spec)
    names = [n for n, _ in features]
    label_table = config.label_table if "." in config.label_table else f"{settings.hive.databases.raw}.{config.label_table}"
    last_train, first_val = split_dates(start, end, config.training.validation_days)

    frame = training_set(spark, settings, spec, labels_table=label_table, start=start, end=end)
    label = config.label_column
    if label not in frame.columns:
        raise DataValidationError(f"training set from {label_table} has no label column {label!r}; columns: {frame.columns}.")
    total = frame.count()
    sampled = 1.0
    if total > config.training.max_rows:
        sampled = config.training.max_rows / total
        frame = frame.sample(fraction=sampled, seed=config.training.seed)
    record["rows_in"] = total
    split = F.when(F.to_date(F.col(spec.event_time)) >= F.lit(first_val.isoformat()).cast("date"), "validation").otherwise("train")
    # Bounded by training.max_rows above: sklearn trains on one machine.
    pdf = frame.select(*names, F.col(label).cast("int").alias(label), split.alias("_split")).toPandas()
    train = pdf[pdf["_split"] == "train"]
    valid = pdf[pdf["_split"] == "validation"]
    for part, rows in (("training", train), ("validation", valid)):
        if rows.empty or rows[label].nunique() < 2:
            raise DataValidationError(
                f"{part} split of {config.name} ({start}..{end}, validation from {first_val}) has "
                f"{len(rows)} rows and labels {sorted(rows[label].unique().tolist())}: both classes are needed.",
                hint="Widen the date range or check the label table.",
            )

    estimator = build_estimator(config)
    log.info("training %s on %d rows (%d validation), %d features", config.name, len(train), len(valid), len(names))
    estimator.fit(train[names], train[label])
    val_scores = predict_scores(estimator, valid[names])
    metrics = classification_metrics(valid[label], val_scores, config.training.thresholds)
    baseline = score_baseline(predict_scores(estimator, train[names]), bins=config.scoring.psi_bins)
    lineage = {
        "feature_set": spec.name,
        "feature_table": f"{settings.hive.databases.features}.{spec.name}",
        "entity_keys": list(spec.entity_keys),
        "event_time": spec.event_time,
        "label_table": label_table,
        "label_column": label,
        "date_range": {"start": start.isoformat(), "end": end.isoformat()},
        "train_dates": {"start": start.isoformat(), "end": last_train.isoformat()},
        "validation_dates": {"start": first_val.isoformat(), "end": end.isoformat()},
        "rows": {"total": int(total), "train": int(len(train)), "validation": int(len(valid)),
                 "train_positives": int(train[label].sum()), "validation_positives": int(valid[label].sum())},
        "sampled_fraction": sampled,
        "run_id": run_id,
    }
    params = {"estimator": config.estimator.class_path or config.estimator.factory, **{k: _jsonable(v) for k, v in estimator.get_params().items()}}
    version: ModelVersion | None = None
    registry = open_registry(settings)
    champion = _champion_metric(registry, config, valid, label)
    gate = decide_gate(config, metrics, champion)
    if not dry_run:
        version = registry.publish(
            config.name, estimator, flavor="sklearn",
            signature=Signature(inputs=list(features), outputs=[("score", "double")]),
            params=params, metrics={k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()},
            lineage=lineage, tags=dict(config.tags),
            description=config.description, provenance=provenance,
            extra={"baseline": baseline, "scoring": config.scoring.model_dump()},
        )
        record["rows_out"] = 1
        if gate.challenger:
            registry.set_alias(config.name, "challenger", version.version, provenance=provenance, reason=f"training run {run_id}")
        if gate.champion:
            registry.set_alias(config.name, "champion", version.version, provenance=provenance,
                               reason=f"training run {run_id}: " + "; ".join(gate.reasons))
    return TrainResult(run_id, config.name, version.version if version else None, metrics, lineage, gate, dry_run)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value if not (isinstance(value, float) and math.isnan(value)) else None
    return repr(value)


def _champion_metric(registry, config: ModelConfig, valid, label: str) -> float | None:
    """The current champion's metric on this run's validation rows; None when there is no usable champion."""
    try:
        current = registry.resolve(f"{config.name}@champion")
    except ModelNotFoundError:
        return None
    inputs = [n for n, _ in signature_inputs(current.manifest)]
    if any(n not in valid.columns for n in inputs):
        log.warning("champion %s:%s needs features %s not in this training set; it cannot be compared",
                    current.name, current.version, [n for n in inputs if n not in valid.columns])
        return math.nan
    model = registry.load(f"{current.name}:{current.version}").model
    scores = predict_scores(model, valid[inputs])
    return classification_metrics(valid[label], scores, ()).get(config.gate.compare_metric, math.nan)


def decide_gate(config: ModelConfig, metrics: dict[str, float], champion_metric: float | None) -> GateDecision:
    """Apply the model's gate: thresholds first, then the current champion on the same validation window."""
    gate = config.gate
    decision = GateDecision(challenger=gate.auto_challenger)
    failures = []
    for name, floor in gate.min_metrics.items():
        value = metrics.get(name, math.nan)
        if not value >= floor:
            failures.append(f"{name} {value:.4f} < required {floor}")
    for name, ceiling in gate.max_metrics.items():
        value = metrics.get(name, math.nan)
        if not value <= ceiling:
            failures.append(f"{name} {value:.4f} > allowed {ceiling}")
    metric = gate.compare_metric
    mine = metrics.get(metric, math.nan)
    if champion_metric is not None:
        if math.isnan(champion_metric):
            failures.append(f"current champion cannot be evaluated on this validation window ({metric})")
        else:
            better = mine < champion_metric if metric in LOWER_IS_BETTER else mine > champion_metric
            if not better:
                failures.append(f"{metric} {mine:.4f} does not beat the champion's {champion_metric:.4f}")
            else:
                decision.reasons.append(f"{metric} {mine:.4f} beats the champion's {champion_metric:.4f}")
    else:
        decision.reasons.append("no current champion")
    if not gate.promote_champion:
        failures.append("gate.promote_champion is off")
    decision.champion = not failures
    decision.reasons = failures if failures else decision.reasons + ["all metric thresholds met"]
    return decision
