"""Training use-case: point-in-time training set -> time split -> fit -> evaluate -> publish -> gate.

A run is a short sequence of steps, each returning what the next one needs (see :func:`run_training`);
the run record is built from the :class:`TrainResult` at the end.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from sparkml_ops.config import Settings
from sparkml_ops.configfile import import_user_module
from sparkml_ops.errors import ConfigError, DataValidationError, ModelNotFoundError
from sparkml_ops.evaluation import classification_metrics, score_baseline
from sparkml_ops.features import FeatureSpec, feature_columns, feature_table, load_feature_spec, training_set
from sparkml_ops.identifiers import ModelRef, new_run_id
from sparkml_ops.io.ops_tables import recorded_run
from sparkml_ops.modelconfig import ModelConfig
from sparkml_ops.registry import ModelRegistry, ModelVersion, Provenance, Signature, open_registry
from sparkml_ops.transforms.scoring import predict_scores

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

# Metrics where lower is better; every other metric is better when higher.
LOWER_IS_BETTER = frozenset({"log_loss", "brier"})


@dataclass(frozen=True)
class GateDecision:
    """Which aliases the new version gets, and why."""

    challenger: bool = False
    champion: bool = False
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrainResult:
    """Outcome of one training run."""

    run_id: str
    model_name: str
    version: int | None
    metrics: dict[str, float]
    lineage: dict[str, Any]
    gate: GateDecision
    dry_run: bool = False

    def run_record(self) -> dict[str, Any]:
        """The fields of the run's ``job_runs`` row this result decides."""
        return {"model_version": self.version,
                "message": json.dumps({"metrics": self.metrics, "dry_run": self.dry_run}, default=str)}


@dataclass(frozen=True)
class TrainingWindow:
    """The label dates of one training run, ``start..end``; the last ``training.validation_days`` validate."""

    start: date
    end: date


@dataclass(frozen=True)
class TrainingSet:
    """The point-in-time training rows of a window, sampled down to ``training.max_rows``; still in Spark."""

    spec: FeatureSpec
    features: tuple[tuple[str, str], ...]  # (name, Spark type): the model's input signature
    label_table: str
    label: str
    window: TrainingWindow
    last_train: date
    first_validation: date
    frame: "DataFrame"
    total: int  # rows before sampling
    sampled: float  # fraction of them kept

    @property
    def names(self) -> list[str]:
        """The feature column names, in signature order."""
        return [n for n, _ in self.features]


@dataclass(frozen=True)
class TimeSplit:
    """The sampled rows on the driver, split by time: validation is the window's last days, never random."""

    train: "pd.DataFrame"
    valid: "pd.DataFrame"


@dataclass(frozen=True)
class Candidate:
    """A fitted estimator and what publishing it records: validation metrics, score baseline, lineage."""

    estimator: Any
    metrics: dict[str, float]
    baseline: dict[str, list[float]]
    lineage: dict[str, Any]


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
    window: TrainingWindow,
    provenance: Provenance,
    dry_run: bool = False,
) -> TrainResult:
    """Train, evaluate and (unless ``dry_run``) publish a new version of ``config.name``, then apply the gate.

    Raises:
        DataValidationError: empty or one-class splits, too short a range (exit 3).
        ConfigError: bad estimator config (exit 2).
    """
    run_id = new_run_id("train")
    record = _run_record(spark, config, window, run_id, provenance)
    with recorded_run(spark, settings.hive.databases.ops, record):
        data = training_data(spark, settings, config, window)
        record["rows_in"] = data.total  # a failure from here on still says how many rows there were
        split = time_split(config, data)
        estimator = fit(config, data, split)
        metrics, baseline = evaluate(config, data, split, estimator)
        candidate = Candidate(estimator, metrics, baseline, training_lineage(settings, data, split, run_id))
        registry = open_registry(settings)
        gate = decide_gate(config, candidate.metrics, champion_metric(registry, config, data, split))
        version = None if dry_run else publish(registry, config, data, candidate, provenance)
        if version is not None:
            record["rows_out"] = 1
            apply_gate(registry, version, gate, run_id, provenance)
        result = TrainResult(run_id, config.name, version.version if version else None, candidate.metrics,
                             candidate.lineage, gate, dry_run)
        record.update(result.run_record())
    return result


def _run_record(spark: "SparkSession", config: ModelConfig, window: TrainingWindow, run_id: str,
                provenance: Provenance) -> dict[str, Any]:
    """The run record's fields known before the run starts."""
    return {"run_id": run_id, "job": "train", "model_name": config.name, "model_ref": config.name,
            "start_date": window.start.isoformat(), "end_date": window.end.isoformat(), "run_user": provenance.user,
            "run_host": provenance.host, "application_id": spark.sparkContext.applicationId}


def training_data(spark: "SparkSession", settings: Settings, config: ModelConfig, window: TrainingWindow) -> TrainingSet:
    """The point-in-time training set of the window, sampled down to ``training.max_rows``.

    Raises:
        DataValidationError: the window is too short for the validation days; the set has no label column.
    """
    spec = load_feature_spec(config.feature_set, settings)
    label_table = config.label_table if "." in config.label_table else f"{settings.hive.databases.raw}.{config.label_table}"
    last_train, first_val = split_dates(window.start, window.end, config.training.validation_days)
    frame = training_set(spark, settings, spec, labels_table=label_table, start=window.start, end=window.end)
    label = config.label_column
    if label not in frame.columns:
        raise DataValidationError(f"training set from {label_table} has no label column {label!r}; columns: {frame.columns}.")
    total = frame.count()
    sampled = 1.0
    if total > config.training.max_rows:
        sampled = config.training.max_rows / total
        frame = frame.sample(fraction=sampled, seed=config.training.seed)
    return TrainingSet(spec, tuple(feature_columns(spec)), label_table, label, window, last_train, first_val, frame,
                       total, sampled)


def time_split(config: ModelConfig, data: TrainingSet) -> TimeSplit:
    """Bring the sampled rows to the driver and split them at the first validation day.

    Raises:
        DataValidationError: a split is empty or has one class only.
    """
    from pyspark.sql import functions as F

    label, first_val = data.label, data.first_validation
    split = F.when(F.to_date(F.col(data.spec.event_time)) >= F.lit(first_val.isoformat()).cast("date"), "validation").otherwise("train")
    # Bounded by training.max_rows: sklearn trains on one machine.
    pdf = data.frame.select(*data.names, F.col(label).cast("int").alias(label), split.alias("_split")).toPandas()
    train = pdf[pdf["_split"] == "train"]
    valid = pdf[pdf["_split"] == "validation"]
    for part, rows in (("training", train), ("validation", valid)):
        if rows.empty or rows[label].nunique() < 2:
            raise DataValidationError(
                f"{part} split of {config.name} ({data.window.start}..{data.window.end}, validation from {first_val}) has "
                f"{len(rows)} rows and labels {sorted(rows[label].unique().tolist())}: both classes are needed.",
                hint="Widen the date range or check the label table.",
            )
    return TimeSplit(train, valid)


def fit(config: ModelConfig, data: TrainingSet, split: TimeSplit) -> Any:
    """The model's estimator, fitted on the training split."""
    estimator = build_estimator(config)
    log.info("training %s on %d rows (%d validation), %d features", config.name, len(split.train), len(split.valid),
             len(data.names))
    estimator.fit(split.train[data.names], split.train[data.label])
    return estimator


def evaluate(config: ModelConfig, data: TrainingSet, split: TimeSplit,
             estimator: Any) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Metrics on the validation split, and the score baseline (for drift checks) on the training split."""
    val_scores = predict_scores(estimator, split.valid[data.names])
    metrics = classification_metrics(split.valid[data.label], val_scores, config.training.thresholds)
    baseline = score_baseline(predict_scores(estimator, split.train[data.names]), bins=config.scoring.psi_bins)
    return metrics, baseline


def training_lineage(settings: Settings, data: TrainingSet, split: TimeSplit, run_id: str) -> dict[str, Any]:
    """Where the model's data came from, recorded in its manifest: batch scoring reads the feature set and keys."""
    spec, label, window = data.spec, data.label, data.window
    train, valid = split.train, split.valid
    return {
        "feature_set": spec.name,
        "feature_table": feature_table(settings, spec),
        "entity_keys": list(spec.entity_keys),
        "event_time": spec.event_time,
        "label_table": data.label_table,
        "label_column": label,
        "date_range": {"start": window.start.isoformat(), "end": window.end.isoformat()},
        "train_dates": {"start": window.start.isoformat(), "end": data.last_train.isoformat()},
        "validation_dates": {"start": data.first_validation.isoformat(), "end": window.end.isoformat()},
        "rows": {"total": int(data.total), "train": int(len(train)), "validation": int(len(valid)),
                 "train_positives": int(train[label].sum()), "validation_positives": int(valid[label].sum())},
        "sampled_fraction": data.sampled,
        "run_id": run_id,
    }


def publish(registry: ModelRegistry, config: ModelConfig, data: TrainingSet, candidate: Candidate,
            provenance: Provenance) -> ModelVersion:
    """Register the candidate as the model's next version (no alias yet)."""
    estimator = candidate.estimator
    params = {"estimator": config.estimator.class_path or config.estimator.factory,
              **{k: _jsonable(v) for k, v in estimator.get_params().items()}}
    return registry.publish(
        config.name, estimator, flavor="sklearn",
        signature=Signature(inputs=list(data.features), outputs=[("score", "double")]),
        params=params, metrics={k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in candidate.metrics.items()},
        lineage=candidate.lineage, tags=dict(config.tags),
        description=config.description, provenance=provenance,
        extra={"baseline": candidate.baseline, "scoring": config.scoring.model_dump()},
    )


def apply_gate(registry: ModelRegistry, version: ModelVersion, gate: GateDecision, run_id: str, provenance: Provenance) -> None:
    """Point the challenger and champion aliases at the new version, as the gate decided."""
    if gate.challenger:
        registry.set_alias(version.name, "challenger", version.version, provenance=provenance, reason=f"training run {run_id}")
    if gate.champion:
        registry.set_alias(version.name, "champion", version.version, provenance=provenance,
                           reason=f"training run {run_id}: " + "; ".join(gate.reasons))


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value if not (isinstance(value, float) and math.isnan(value)) else None
    return repr(value)


def champion_metric(registry: ModelRegistry, config: ModelConfig, data: TrainingSet, split: TimeSplit) -> float | None:
    """The current champion's metric on this run's validation rows; None when there is no champion, NaN when it cannot be compared."""
    try:
        current = registry.resolve(ModelRef(config.name, alias="champion"))
    except ModelNotFoundError:
        return None
    valid = split.valid
    inputs = [n for n, _ in current.input_columns()]
    if any(n not in valid.columns for n in inputs):
        log.warning("champion %s:%s needs features %s not in this training set; it cannot be compared",
                    current.name, current.version, [n for n in inputs if n not in valid.columns])
        return math.nan
    model = registry.load(current).model
    scores = predict_scores(model, valid[inputs])
    return classification_metrics(valid[data.label], scores, ()).get(config.gate.compare_metric, math.nan)


def decide_gate(config: ModelConfig, metrics: dict[str, float], champion_metric: float | None) -> GateDecision:
    """Apply the model's gate: thresholds first, then the current champion on the same validation window."""
    gate = config.gate
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
    reasons = []
    if champion_metric is not None:
        if math.isnan(champion_metric):
            failures.append(f"current champion cannot be evaluated on this validation window ({metric})")
        else:
            better = mine < champion_metric if metric in LOWER_IS_BETTER else mine > champion_metric
            if not better:
                failures.append(f"{metric} {mine:.4f} does not beat the champion's {champion_metric:.4f}")
            else:
                reasons.append(f"{metric} {mine:.4f} beats the champion's {champion_metric:.4f}")
    else:
        reasons.append("no current champion")
    if not gate.promote_champion:
        failures.append("gate.promote_champion is off")
    return GateDecision(challenger=gate.auto_challenger, champion=not failures,
                        reasons=tuple(failures) if failures else (*reasons, "all metric thresholds met"))
