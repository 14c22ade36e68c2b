"""Training use-case: point-in-time training set -> time split -> fit -> evaluate -> publish -> gate.

A run is a short sequence of steps, each returning what the next one needs (see :func:`run_training`);
the run record is built from the :class:`TrainResult` at the end.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from sparkml_ops import alerts
from sparkml_ops import evaluation as ev
from sparkml_ops.config import Settings
from sparkml_ops.configfile import import_user_module
from sparkml_ops.errors import ConfigError, DataValidationError, ModelNotFoundError
from sparkml_ops.evaluation import classification_metrics, regression_metrics, score_baseline
from sparkml_ops.features import FeatureSpec, feature_columns, feature_table, load_feature_spec, training_set
from sparkml_ops.identifiers import ModelRef, new_run_id
from sparkml_ops.io.ops_tables import recorded_run
from sparkml_ops.lineage import Reproduction, capture
from sparkml_ops.modelconfig import ModelConfig
from sparkml_ops.registry import ModelRegistry, ModelVersion, Provenance, Signature, open_registry
from sparkml_ops.transforms.rules import RulesModel, params_of
from sparkml_ops.transforms.scoring import is_spark_model, predict_scores

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

# Metrics where lower is better; every other metric is better when higher.
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "rmse", "mae"})


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
class Scores:
    """A candidate's scores on the training and validation splits, in split order."""

    train: Any
    valid: Any


@dataclass(frozen=True)
class Candidate:
    """A fitted estimator and what publishing it records: validation metrics, score baseline, lineage."""

    estimator: Any
    metrics: dict[str, float]
    baseline: dict[str, list[float]]
    lineage: dict[str, Any]
    # Kept so the evaluation data does not predict the same rows again (for Spark ML, each is a Spark job).
    scores: Scores = field(repr=False, compare=False)
    reproduction: dict[str, Any] = field(default_factory=dict)  # what `models reproduce` needs (lineage.py)


@dataclass(frozen=True)
class ChampionScores:
    """The current champion on this run's validation rows: its metrics, or none when it needs features this set lacks."""

    ref: str
    metrics: dict[str, float]
    comparable: bool

    def metric(self, name: str) -> float:
        """The champion's ``name`` metric; NaN when it cannot be compared."""
        return self.metrics.get(name, math.nan) if self.comparable else math.nan


@dataclass(frozen=True)
class Evaluation:
    """What a training run stores under ``evaluation/`` in its version, and the per-feature drift baseline.

    ``validation`` holds the rows the metrics were computed on: entity keys, event time, label, score, then
    every input feature in signature order. ``summary`` is everything else the model report shows (plain JSON).
    """

    validation: "pd.DataFrame"
    summary: dict[str, Any]
    feature_baseline: dict[str, Any]

    def files(self) -> dict[str, bytes]:
        """The version's ``evaluation/`` files, by path."""
        import io

        buffer = io.BytesIO()
        self.validation.to_parquet(buffer, index=False)
        return {VALIDATION_FILE: buffer.getvalue(),
                SUMMARY_FILE: json.dumps(self.summary, indent=1, sort_keys=True, allow_nan=False).encode()}


VALIDATION_FILE = "evaluation/validation.parquet"
SUMMARY_FILE = "evaluation/summary.json"
REPORT_FILE = "report.html"
IMPORTANCE_ROWS = 20_000  # validation rows permutation importance is computed on (seeded sample)
IMPORTANCE_ROWS_SPARK = 2_000  # the same for a Spark ML model, which scores every shuffled copy as a Spark job


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
    with alerts.on_failure(spark, settings, "train", config.name, run_id), recorded_run(spark, settings.hive.databases.ops, record):
        data = training_data(spark, settings, config, window)
        record["rows_in"] = data.total  # a failure from here on still says how many rows there were
        split = time_split(config, data)
        candidate = train_candidate(spark, settings, config, data, split, run_id)
        registry = open_registry(settings)
        champion = champion_scores(registry, config, data, split)
        gate = decide_gate(config, candidate.metrics, champion and champion.metric(config.gate.compare_metric))
        evaluation = evaluation_data(config, data, split, candidate, EvaluationContext(champion, gate, run_id))
        version = None if dry_run else publish(registry, config, data, candidate, provenance, evaluation)
        if version is not None:
            record["rows_out"] = 1
            apply_gate(registry, version, gate, run_id, provenance)
        result = TrainResult(run_id, config.name, version.version if version else None, candidate.metrics,
                             candidate.lineage, gate, dry_run)
        record.update(result.run_record())
    return result


# params: the training steps' own inputs, shared by `train` and `models reproduce`, which must not differ.
def train_candidate(spark: "SparkSession", settings: Settings, config: ModelConfig, data: TrainingSet, split: TimeSplit,
                    run_id: str) -> Candidate:
    """Fit on the training split, evaluate on validation, and record lineage and what a reproduction needs."""
    estimator = fit(config, data, split)
    metrics, baseline, scores = evaluate(config, data, split, estimator)
    inputs = reproduction_record(spark, config, data, estimator)
    return Candidate(estimator, metrics, baseline, {**training_lineage(settings, data, split, run_id), **inputs.lineage},
                     scores, inputs.record)


def _run_record(spark: "SparkSession", config: ModelConfig, window: TrainingWindow, run_id: str,
                provenance: Provenance) -> dict[str, Any]:
    """The run record's fields known before the run starts."""
    return {"run_id": run_id, "job": "train", "model_name": config.name, "model_ref": config.name,
            "start_date": window.start.isoformat(), "end_date": window.end.isoformat(), "run_user": provenance.user,
            "run_host": provenance.host, "application_id": spark.sparkContext.applicationId,
            "build_id": provenance.build_id, "git_commit": provenance.git_commit}


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
    """Bring the sampled rows to the driver, in key and time order, and split them at the first validation day.

    The order makes a fit depend on the data only, not on how Spark happened to shuffle it: a
    seeded estimator retrained on the same rows gives the same model (``models reproduce``).

    Raises:
        DataValidationError: a split is empty, or has one class only (binary models).
    """
    from pyspark.sql import functions as F

    label, first_val = data.label, data.first_validation
    split = F.when(F.to_date(F.col(data.spec.event_time)) >= F.lit(first_val.isoformat()).cast("date"), "validation").otherwise("train")
    label_type = "int" if config.task == "binary" else "double"
    ordered = data.frame.orderBy(*data.spec.entity_keys, data.spec.event_time, label)
    # Bounded by training.max_rows: sklearn trains on one machine.
    # Keys and event time travel along: the stored validation rows must say whose and when they are.
    ident = [*data.spec.entity_keys, data.spec.event_time]
    pdf = ordered.select(*ident, *data.names, F.col(label).cast(label_type).alias(label), split.alias("_split")).toPandas()
    train = pdf[pdf["_split"] == "train"]
    valid = pdf[pdf["_split"] == "validation"]
    for part, rows in (("training", train), ("validation", valid)):
        if rows.empty or (config.task == "binary" and rows[label].nunique() < 2):
            raise DataValidationError(
                f"{part} split of {config.name} ({data.window.start}..{data.window.end}, validation from {first_val}) has "
                f"{len(rows)} rows and labels {sorted(rows[label].unique().tolist())[:10]}: "
                + ("both classes are needed." if config.task == "binary" else "rows are needed."),
                hint="Widen the date range or check the label table.",
            )
    return TimeSplit(train, valid)


def fit(config: ModelConfig, data: TrainingSet, split: TimeSplit) -> Any:
    """The model's estimator, fitted on the training split; a rules model as configured (there is nothing to fit).

    A scikit-learn estimator is fitted on the driver; a Spark ML estimator in Spark (:func:`fit_in_spark`).
    """
    if config.rules is not None:
        return rules_model(config, data)
    estimator = build_estimator(config)
    log.info("training %s on %d rows (%d validation), %d features", config.name, len(split.train), len(split.valid),
             len(data.names))
    if type(estimator).__module__.startswith("pyspark.ml"):  # a Spark ML Estimator (or Pipeline), not yet fitted
        return fit_in_spark(data, split, estimator)
    estimator.fit(split.train[data.names], split.train[data.label])
    return estimator


def fit_in_spark(data: TrainingSet, split: TimeSplit, estimator: Any) -> Any:
    """A Spark ML estimator fitted in Spark, behind two stages that make it read the feature table as it is.

    The stages fill NULL features with 0 (a Spark ML vector cannot hold NULL) and assemble the
    ``features`` vector the estimator reads, with the label as ``label``; the fitted ``PipelineModel``
    holds all three, so batch scoring applies it to feature rows directly.
    """
    import pyarrow as pa
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import SQLTransformer, VectorAssembler

    filled = [f"_filled_{n}" for n in data.names]
    fill = SQLTransformer(statement="SELECT *, " + ", ".join(
        f"coalesce(CAST(`{n}` AS DOUBLE), 0D) AS `{f}`" for n, f in zip(data.names, filled)) + " FROM __THIS__")
    rows = split.train[[*data.names, data.label]].rename(columns={data.label: "label"})
    frame = data.frame.sparkSession.createDataFrame(pa.Table.from_pandas(rows, preserve_index=False))
    return Pipeline(stages=[fill, VectorAssembler(inputCols=filled, outputCol="features"), estimator]).fit(frame)


def rules_model(config: ModelConfig, data: TrainingSet) -> RulesModel:
    """The model config's rules over the training set's features, checked to evaluate on them (analysis only).

    Raises:
        ConfigError: a threshold is missing, unused or not a number; the SQL does not analyse against the features.
    """
    from pyspark.errors import AnalysisException

    where = f"{config.source_dir / (config.name + '.yaml') if config.source_dir else config.name}: rules"
    try:
        model = RulesModel(config.rules.expression, config.rules.thresholds, data.features)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}.") from exc
    try:
        data.frame.transform(model.score_transform([])).schema
    except AnalysisException as exc:  # a ParseException is one too
        raise ConfigError(f"{where}: the expression does not evaluate on the features of {data.spec.name}: "
                          f"{str(exc).splitlines()[0]}",
                          hint=f"Use the feature columns of {data.spec.path} (sparkml-ops features validate {data.spec.name}).") from exc
    return model


def evaluate(config: ModelConfig, data: TrainingSet, split: TimeSplit,
             estimator: Any) -> tuple[dict[str, float], dict[str, list[float]], Scores]:
    """Metrics on the validation split, the score baseline (for drift checks) on the training split, and the scores."""
    scores = Scores(predict_scores(estimator, split.train[data.names]), predict_scores(estimator, split.valid[data.names]))
    metrics = task_metrics(config, split.valid[data.label], scores.valid)
    baseline = score_baseline(scores.train, bins=config.scoring.psi_bins)
    return metrics, baseline, scores


def task_metrics(config: ModelConfig, labels: Any, scores: Any) -> dict[str, float]:
    """The validation metrics of the model's task: classification metrics for binary, errors for regression."""
    if config.task == "regression":
        return regression_metrics(labels, scores)
    return classification_metrics(labels, scores, config.training.thresholds)


def reproduction_record(spark: "SparkSession", config: ModelConfig, data: TrainingSet, model: Any) -> Reproduction:
    """What ``models reproduce`` needs: spec and config as used, seeds, the partitions read (fingerprinted), packages."""
    tables = [*dict.fromkeys(s.table for s in data.spec.sources.values()), data.label_table]
    return capture(spark, config, data.spec, data.frame, tables, model)


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


@dataclass(frozen=True)
class EvaluationContext:
    """What the evaluation data records besides the candidate: the champion's scores, the gate, the run."""

    champion: ChampionScores | None
    gate: GateDecision
    run_id: str


def evaluation_data(config: ModelConfig, data: TrainingSet, split: TimeSplit, candidate: Candidate,
                    context: EvaluationContext) -> Evaluation:
    """The validation rows with their scores, the report's summary and the per-feature drift baseline."""
    names, label = data.names, data.label
    train_scores, valid_scores = candidate.scores.train, candidate.scores.valid
    keys = [*data.spec.entity_keys, data.spec.event_time]
    rows = split.valid[keys].assign(**{label: split.valid[label].to_numpy(), "score": valid_scores})
    validation = rows.join(split.valid[names]).reset_index(drop=True)
    baseline = {n: ev.feature_baseline(split.train[n], t, config.scoring.psi_bins) for n, t in data.features}
    summary = {
        "format": 1, "model": config.name, "run_id": context.run_id, "metrics": candidate.metrics,
        "lower_is_better": sorted(LOWER_IS_BETTER),
        "validation": _validation_figures(config, split, candidate.estimator, valid_scores, label, names),
        "task": config.task,
        "scores": _score_histograms(config, train_scores, valid_scores),
        "data": candidate.lineage,
        "features": {n: _feature_summary(split.train[n], baseline[n]) for n in names},
        "champion": None if context.champion is None else {
            "ref": context.champion.ref, "metrics": context.champion.metrics, "comparable": context.champion.comparable},
        "gate": {"challenger": context.gate.challenger, "champion": context.gate.champion, "reasons": list(context.gate.reasons)},
        "card": {"intended_use": config.intended_use, "limitations": config.limitations, "description": config.description,
                 "thresholds": list(config.training.thresholds), "decision_threshold": config.scoring.threshold},
    }
    return Evaluation(validation, _plain(summary), baseline)


def _score_histograms(config: ModelConfig, train: Any, valid: Any) -> dict[str, dict[str, list[float]]]:
    """Training and validation score histograms: over [0, 1] for a probability, else over the scores' common range."""
    import numpy as np

    span = (0.0, 1.0)
    if config.task == "regression" and len(train) + len(valid):
        both = np.concatenate([np.asarray(train, dtype="float64"), np.asarray(valid, dtype="float64")])
        low, high = float(np.nanmin(both)), float(np.nanmax(both))
        span = (low, high if high > low else low + 1.0)
    return {"train": ev.score_histogram(train, span=span), "validation": ev.score_histogram(valid, span=span)}


def _validation_figures(config: ModelConfig, split: TimeSplit, estimator: Any, scores: Any, label: str,
                        names: list[str]) -> dict[str, Any]:
    """Permutation importance on the validation rows; for a binary task also curves, KS/Gini, lift, calibration
    and confusion matrices (a regression's errors are its headline metrics)."""
    y = split.valid[label]
    # A Spark ML model scores each shuffled copy as a Spark job: a smaller sample keeps that bounded.
    rows = IMPORTANCE_ROWS if not is_spark_model(estimator) else IMPORTANCE_ROWS_SPARK
    sample = split.valid.sample(n=min(len(split.valid), rows), random_state=config.training.seed)
    importance = ev.permutation_importance(lambda x: predict_scores(estimator, x), sample[names], sample[label],
                                           seed=config.training.seed, task=config.task)
    if config.task == "regression":
        return {"importance": importance}
    thresholds = sorted({*config.training.thresholds, *([config.scoring.threshold] if config.scoring.threshold is not None else [])})
    return {
        **ev.curves(y, scores), **ev.ks_gini(y, scores),
        "lift": ev.lift_table(y, scores), "calibration": ev.calibration(y, scores),
        "confusion": [ev.confusion(y, scores, t) for t in thresholds],
        "importance": importance,
    }


def _feature_summary(values: "pd.Series", baseline: dict[str, Any]) -> dict[str, Any]:
    """What the report's training-data table shows of one feature: kind, nulls, range, mean and quartiles."""
    out = {k: baseline.get(k) for k in ("type", "kind", "null_rate", "min", "max")}
    if baseline["kind"] == "numeric":
        present = values.dropna().astype("float64")
        quartiles = present.quantile([0.25, 0.5, 0.75]).tolist() if len(present) else [None] * 3
        out.update(mean=float(present.mean()) if len(present) else None, p25=quartiles[0], p50=quartiles[1], p75=quartiles[2])
    else:
        out["categories"] = dict(zip(map(str, baseline["categories"]), baseline["shares"]))
    return out


def _plain(value: Any) -> Any:
    """``value`` as strict JSON data: NaN and infinities become None, numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def publish(registry: ModelRegistry, config: ModelConfig, data: TrainingSet, candidate: Candidate,
            provenance: Provenance, evaluation: Evaluation) -> ModelVersion:
    """Register the candidate as the model's next version (no alias yet), with its evaluation data and report."""
    from sparkml_ops.reports import ModelReportData, render_model_report

    history = registry.history(config.name) if registry.version_numbers(config.name) else []

    def report(mv: ModelVersion) -> dict[str, bytes]:
        return {REPORT_FILE: render_model_report(ModelReportData(mv.manifest, evaluation.summary, history)).encode()}

    estimator = candidate.estimator
    flavor, params = model_flavor(config, estimator)
    return registry.publish(
        config.name, estimator, flavor=flavor,
        signature=Signature(inputs=list(data.features), outputs=[("score", "double")]),
        params=params, metrics={k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in candidate.metrics.items()},
        lineage=candidate.lineage, tags=dict(config.tags),
        description=config.description, provenance=provenance,
        extra={"baseline": candidate.baseline, "scoring": config.scoring.model_dump(), "reproduction": candidate.reproduction,
               "feature_baseline": _plain(evaluation.feature_baseline)},
        files=evaluation.files(), rendered=report,
    )


def model_flavor(config: ModelConfig, model: Any) -> tuple[str, dict[str, Any]]:
    """The registry flavor a trained model is stored with, and the params its manifest records."""
    if isinstance(model, RulesModel):
        return "sql_rules", {"rules": params_of(model)}
    if is_spark_model(model):
        return "sparkml", {"estimator": config.estimator.class_path or config.estimator.factory,
                           **{k: _jsonable(v) for k, v in config.estimator.params.items()}}
    return "sklearn", {"estimator": config.estimator.class_path or config.estimator.factory,
                       **{k: _jsonable(v) for k, v in model.get_params().items()}}


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


def champion_scores(registry: ModelRegistry, config: ModelConfig, data: TrainingSet, split: TimeSplit) -> ChampionScores | None:
    """The current champion's metrics on this run's validation rows; None when there is no champion."""
    try:
        current = registry.resolve(ModelRef(config.name, alias="champion"))
    except ModelNotFoundError:
        return None
    valid = split.valid
    inputs = [n for n, _ in current.input_columns()]
    if any(n not in valid.columns for n in inputs):
        log.warning("champion %s:%s needs features %s not in this training set; it cannot be compared",
                    current.name, current.version, [n for n in inputs if n not in valid.columns])
        return ChampionScores(current.ref, {}, comparable=False)
    model = registry.load(current).model
    scores = predict_scores(model, valid[inputs])
    metrics = task_metrics(config, valid[data.label], scores)
    if config.task == "binary":
        metrics.update(ev.ks_gini(valid[data.label], scores))
    return ChampionScores(current.ref, metrics, comparable=True)


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
