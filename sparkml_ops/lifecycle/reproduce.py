"""``sparkml-ops models reproduce NAME:VERSION``: same inputs, same model?

A reproduction is a short sequence of steps (see :func:`reproduce`):

1. read what the version's training recorded (``extra.reproduction``, see :mod:`sparkml_ops.lineage`);
2. copy the spec and model config *as used* into a scratch directory;
3. check today against the record: the spec and config files of the repository, and every source
   and label partition the training would read today. A change is named exactly and stops the
   run (exit 11) unless forced, which marks the result;
4. retrain from the copies into a scratch registry (never a new version of the real registry,
   unless asked to register);
5. compare predictions on the stored validation rows (``evaluation/validation.parquet`` of the
   version; rebuilt from today's data, scored by the registered model, for versions without it)
   and metrics: *identical* (bit for bit), *equivalent* within the tolerance, or *different* (exit 12);
6. write the auditors' JSON report next to the retrained model.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sparkml_ops.config import Settings
from sparkml_ops.errors import EXIT_NOT_REPRODUCED, ConfigError, InputsChangedError, NotFoundError, UsageError
from sparkml_ops.features import load_feature_spec, training_set
from sparkml_ops.identifiers import ModelRef, new_run_id
from sparkml_ops.io.files import write_new_files
from sparkml_ops.io.ops_tables import recorded_run
from sparkml_ops.lineage import (
    config_changes,
    config_files,
    input_changes,
    inputs_record,
    installed_packages,
    module_changes,
    package_changes,
    spec_changes,
    spec_files,
)
from sparkml_ops.modelconfig import ModelConfig, load_model_config
from sparkml_ops.registry import ModelRegistry, ModelVersion, Provenance, get_flavor, open_registry
from sparkml_ops.registry.flavors import BytesFlavor
from sparkml_ops.training import (
    Candidate,
    Evaluation,
    EvaluationContext,
    GateDecision,
    TimeSplit,
    TrainingSet,
    TrainingWindow,
    evaluation_data,
    publish,
    task_metrics,
    time_split,
    train_candidate,
    training_data,
)
from sparkml_ops.transforms.scoring import predict_scores

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import SparkSession

VALIDATION_FILE = "evaluation/validation.parquet"  # written by training with every version (the model report's data)
REPORT_FILE = "reproduce.json"
DEFAULT_TOLERANCE = 1e-9
EXAMPLES = 20  # rows that differ, listed in the report


@dataclass(frozen=True)
class ReproduceRequest:
    """Which version, whether to run despite changed inputs, whether to register the result, where, how strictly."""

    ref: ModelRef
    force: bool = False
    register: bool = False
    out_dir: Path | None = None
    tolerance: float = DEFAULT_TOLERANCE

    def __post_init__(self) -> None:
        if self.ref.version is None:
            raise UsageError(f"models reproduce needs NAME:VERSION, got {self.ref}: an alias moves, a version does not.")
        if not (self.tolerance >= 0):
            raise UsageError(f"--tolerance must be 0 or more, got {self.tolerance}.")


@dataclass(frozen=True)
class Recorded:
    """The version to reproduce and what its training recorded (``record`` is None for versions before the record)."""

    version: ModelVersion
    record: dict[str, Any] | None
    window: TrainingWindow
    label_table: str


@dataclass(frozen=True)
class Scratch:
    """The scratch directory of one reproduction and the settings that retrain from its copies into its registry."""

    directory: Path
    settings: Settings


@dataclass(frozen=True)
class InputCheck:
    """Today against the record: ``changed`` stops a reproduction unless forced; ``notes`` are only reported."""

    changed: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Retrained:
    """The retrained model, its rows and its version in the scratch registry."""

    config: ModelConfig
    data: TrainingSet
    split: TimeSplit
    candidate: Candidate
    evaluation: Evaluation
    version: ModelVersion


@dataclass(frozen=True)
class Comparison:
    """Predictions and metrics of the retrained model against the registered version, on the same rows."""

    source: str  # stored: the version's validation rows; rebuilt: today's validation rows, scored by the version
    rows: int
    rows_differing: int  # not bit for bit equal (NaN equals NaN)
    nan_mismatches: int  # a score on one side, NaN on the other
    max_abs_diff: float  # over the rows scored on both sides
    examples: list[dict[str, Any]]
    metrics: list[dict[str, Any]]
    artifact: dict[str, Any]

    def verdict(self, tolerance: float) -> str:
        """identical (bit for bit), equivalent (within ``tolerance``) or different."""
        if self.rows_differing == 0 and all(m["equal"] for m in self.metrics):
            return "identical"
        metric_diffs = [m["abs_diff"] for m in self.metrics if not m["equal"]]
        if self.nan_mismatches == 0 and self.max_abs_diff <= tolerance and all(
                d is not None and d <= tolerance for d in metric_diffs):
            return "equivalent"
        return "different"


@dataclass(frozen=True)
class ReproduceReport:
    """The auditors' report (also written as JSON to ``path``) and the exit code it implies."""

    path: Path
    body: dict[str, Any] = field(repr=False)

    @property
    def verdict(self) -> str:
        """identical, equivalent, different, or not run (inputs changed)."""
        return self.body["verdict"]

    @property
    def exit_code(self) -> int:
        """0 when identical or equivalent, 10 when different."""
        return EXIT_NOT_REPRODUCED if self.verdict == "different" else 0


def reproduce(spark: "SparkSession", settings: Settings, request: ReproduceRequest, provenance: Provenance) -> ReproduceReport:
    """Check a version's recorded inputs against today, retrain it in a scratch directory and compare.

    Raises:
        ModelNotFoundError: unknown model or version (exit 4).
        InputsChangedError: the spec, config or a source partition changed and ``force`` is off (exit 11);
            the report is written first and says exactly what changed.
    """
    registry = open_registry(settings)
    recorded = recorded_inputs(registry, request.ref)
    scratch = prepare_scratch(settings, recorded, request)
    check = check_inputs(spark, settings, scratch, recorded)
    if check.changed and not request.force:
        report = write_report(scratch, request, recorded, check, provenance)
        raise InputsChangedError(
            f"{recorded.version.ref} cannot be reproduced as recorded: " + "; ".join(check.changed[:5])
            + (f"; and {len(check.changed) - 5} more" if len(check.changed) > 5 else "") + f". Report: {report.path}",
            hint="Run with --force to retrain anyway (the result is marked forced).")
    run_id = new_run_id("reproduce")
    record = _run_record(spark, recorded, run_id, provenance)
    with recorded_run(spark, settings.hive.databases.ops, record):
        retrained = retrain(spark, scratch, recorded, run_id, provenance)
        comparison = compare(registry, recorded, retrained)
        registered = register(registry, retrained, recorded, provenance) if request.register else None
        report = write_report(scratch, request, recorded, check, provenance, (retrained, comparison, registered))
        record.update(model_version=recorded.version.version, rows_out=1 if registered else 0,
                      message=json.dumps({"verdict": report.verdict, "report": str(report.path)}))
    return report


def recorded_inputs(registry: ModelRegistry, ref: ModelRef) -> Recorded:
    """The version and its reproduction record, training window and label table, from its manifest.

    Raises:
        NotFoundError: the manifest records no training window (not trained by ``sparkml-ops train``).
    """
    version = registry.resolve(ref)
    lineage = version.manifest.get("lineage") or {}
    window = lineage.get("date_range") or {}
    if not window.get("start") or not lineage.get("label_table"):
        raise NotFoundError(f"{version.ref} records no training window or label table in its lineage: it was not "
                            "trained by sparkml-ops train, so there is nothing to reproduce it from.")
    record = (version.manifest.get("extra") or {}).get("reproduction")
    return Recorded(version, record, TrainingWindow(date.fromisoformat(window["start"]), date.fromisoformat(window["end"])),
                    lineage["label_table"])


def prepare_scratch(settings: Settings, recorded: Recorded, request: ReproduceRequest) -> Scratch:
    """A new scratch directory holding the spec and config as used, and settings retraining from them into it.

    Without a record (an older version) the repository's spec and config are used, as they are today.
    """
    version = recorded.version
    unique = new_run_id(f"{version.name}-{version.version}")  # <name>-<version>-<UTC time>-<random>
    directory = (request.out_dir or settings.state_dir / "reproduce") / unique
    registry = settings.registry.model_copy(update={"uri": (directory / "registry").as_uri()})
    if recorded.record is None:
        write_new_files({directory / "README": "retrained from the repository's spec and config: no record\n"})
        return Scratch(directory, settings.model_copy(update={"registry": registry}))
    conf = directory / "conf"
    copies = {conf / "features" / f["name"]: f["text"] for f in recorded.record["feature_spec"]["files"]}
    copies.update({conf / "models" / f["name"]: f["text"] for f in recorded.record["model_config"]["files"]})
    write_new_files(copies)
    features = settings.features.model_copy(update={"spec_dir": "features"})
    return Scratch(directory, settings.model_copy(update={"conf_dir": conf, "features": features, "registry": registry}))


def check_inputs(spark: "SparkSession", settings: Settings, scratch: Scratch, recorded: Recorded) -> InputCheck:
    """Today's spec, config, partitions and packages against the record; nothing is trained or written."""
    record = recorded.record
    if record is None:
        return InputCheck(changed=(f"{recorded.version.ref} has no reproduction record (trained by an older release): "
                                   "the spec, config and partitions it used are unknown",))
    changed, notes = repository_changes(settings, record, recorded.version.name)
    changed += input_changes(record["inputs"], today_inputs(spark, scratch.settings, recorded))
    return InputCheck(tuple(changed), tuple(notes + package_changes(record["packages"], installed_packages())))


def repository_changes(settings: Settings, record: dict[str, Any], name: str) -> tuple[list[str], list[str]]:
    """The repository's spec and model config against the copies: (changes to what training fits, other changes)."""
    try:
        config = load_model_config(settings.conf_dir, name)
        spec = load_feature_spec(config.feature_set, settings)
    except (ConfigError, NotFoundError) as exc:  # deleted or broken since: that is a change too
        return [f"the model config or feature spec of {name} no longer loads: {exc.message.rstrip('.')}"], []
    training_keys, other_keys = config_changes(record["model_config"]["as_used"], config)
    changed = spec_changes(record["feature_spec"], spec_files(spec)) + training_keys
    return changed + module_changes(name, record["model_config"], config_files(config)), other_keys


def today_inputs(spark: "SparkSession", settings: Settings, recorded: Recorded) -> list[dict[str, Any]]:
    """The partitions the recorded training would read today (planned, fingerprinted; not computed)."""
    config = load_model_config(settings.conf_dir, recorded.version.name)
    spec = load_feature_spec(config.feature_set, settings)
    frame = training_set(spark, settings, spec, labels_table=recorded.label_table, start=recorded.window.start,
                         end=recorded.window.end)
    tables = [*dict.fromkeys(s.table for s in spec.sources.values()), recorded.label_table]
    return inputs_record(spark, frame, tables)


def retrain(spark: "SparkSession", scratch: Scratch, recorded: Recorded, run_id: str, provenance: Provenance) -> Retrained:
    """The training steps of ``sparkml-ops train`` on the recorded window, published to the scratch registry only."""
    settings = scratch.settings
    config = load_model_config(settings.conf_dir, recorded.version.name)
    data = training_data(spark, settings, config, recorded.window)
    split = time_split(config, data)
    candidate = train_candidate(spark, settings, config, data, split, run_id)
    # No champion and no gate in a scratch registry: the copy is compared, never promoted.
    context = EvaluationContext(None, GateDecision(reasons=("a reproduction: no gate",)), run_id)
    evaluation = evaluation_data(config, data, split, candidate, context)
    version = publish(open_registry(settings), config, data, candidate, provenance, evaluation)
    return Retrained(config, data, split, candidate, evaluation, version)


def compare(registry: ModelRegistry, recorded: Recorded, retrained: Retrained) -> Comparison:
    """Predictions and metrics of both models on the same validation rows, and their artifacts' sha256."""
    import numpy as np

    names, label = retrained.data.names, retrained.data.label
    rows, source = validation_rows(registry, recorded.version, retrained.split, names)
    original = rows["score"].to_numpy(dtype="float64")
    again = np.asarray(predict_scores(retrained.candidate.estimator, rows[names]), dtype="float64")
    nan_old, nan_new = np.isnan(original), np.isnan(again)
    differs = ~((original == again) | (nan_old & nan_new))
    both = ~(nan_old | nan_new)
    keys = [c for c in rows.columns if c not in (*names, "score", label)]
    examples = [{**{k: _plain(rows[k].iloc[i]) for k in keys}, "registered": _plain(original[i]),
                 "reproduced": _plain(again[i])} for i in differs.nonzero()[0][:EXAMPLES].tolist()]
    metrics = metric_rows(recorded.version.manifest.get("metrics") or {},
                          task_metrics(retrained.config, rows[label], again))
    max_diff = float(np.max(np.abs(original[both] - again[both]))) if both.any() else 0.0
    return Comparison(source, len(rows), int(differs.sum()), int((nan_old != nan_new).sum()), max_diff, examples,
                      metrics, artifact_digests(recorded.version, retrained))


def validation_rows(registry: ModelRegistry, version: ModelVersion, split: TimeSplit,
                    names: list[str]) -> tuple["pd.DataFrame", str]:
    """The version's stored validation rows with their scores, or today's rows scored by the registered model."""
    import pandas as pd

    if VALIDATION_FILE in {f["path"] for f in version.manifest["files"]}:
        return pd.read_parquet(io.BytesIO(registry.read_file(version, VALIDATION_FILE))), "stored"
    rows = split.valid.reset_index(drop=True)
    scores = predict_scores(registry.load(version).model, rows[names])
    return rows.assign(score=scores), "rebuilt"


def metric_rows(registered: dict[str, Any], reproduced: dict[str, float]) -> list[dict[str, Any]]:
    """Each metric of the version next to the reproduced one (a NaN is stored as null: equal to NaN)."""
    out = []
    for name in sorted(set(registered) | set(reproduced)):
        old, new = _number(registered.get(name)), _number(reproduced.get(name))
        equal = (old == new) or (math.isnan(old) and math.isnan(new))
        out.append({"name": name, "registered": _plain(old), "reproduced": _plain(new), "equal": equal,
                    "abs_diff": None if equal or math.isnan(old) or math.isnan(new) else abs(old - new)})
    return out


def artifact_digests(version: ModelVersion, retrained: Retrained) -> dict[str, Any]:
    """The sha256 of the registered and the reproduced model file (single-file flavors; equal bytes, equal model)."""
    flavor = get_flavor(version.flavor)
    if not isinstance(flavor, BytesFlavor):
        return {"comparable": False}
    path = f"model/{flavor.file_name}"
    sha = {f["path"]: f["sha256"] for f in version.manifest["files"]}.get(path)
    again = {f["path"]: f["sha256"] for f in retrained.version.manifest["files"]}.get(path)
    return {"comparable": True, "file": path, "registered_sha256": sha, "reproduced_sha256": again, "identical": sha == again}


def register(registry: ModelRegistry, retrained: Retrained, recorded: Recorded, provenance: Provenance) -> ModelVersion:
    """Publish the reproduced model as a new version of the real registry, tagged with what it reproduces (no alias)."""
    tags = {**retrained.config.tags, "reproduces": recorded.version.ref}
    config = retrained.config.model_copy(update={"tags": tags})
    return publish(registry, config, retrained.data, retrained.candidate, provenance, retrained.evaluation)


def _run_record(spark: "SparkSession", recorded: Recorded, run_id: str, provenance: Provenance) -> dict[str, Any]:
    """The run record's fields known before the retraining starts."""
    version = recorded.version
    return {"run_id": run_id, "job": "reproduce", "model_name": version.name, "model_ref": version.ref,
            "start_date": recorded.window.start.isoformat(), "end_date": recorded.window.end.isoformat(),
            "run_user": provenance.user, "run_host": provenance.host,
            "application_id": spark.sparkContext.applicationId, "build_id": provenance.build_id,
            "git_commit": provenance.git_commit}


def write_report(scratch: Scratch, request: ReproduceRequest, recorded: Recorded, check: InputCheck,
                 provenance: Provenance, outcome: tuple[Retrained, Comparison, ModelVersion | None] | None = None
                 ) -> ReproduceReport:
    """Write ``reproduce.json`` into the scratch directory: what was checked, retrained and compared, and the verdict."""
    body: dict[str, Any] = {
        "format": 1, "ref": recorded.version.ref, "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "by": provenance.to_dict(), "forced": bool(check.changed) and request.force,
        "window": {"start": recorded.window.start.isoformat(), "end": recorded.window.end.isoformat()},
        "changed": list(check.changed), "notes": list(check.notes), "tolerance": request.tolerance,
        "scratch": str(scratch.directory), "verdict": "not run: inputs changed",
    }
    if outcome is not None:
        retrained, comparison, registered = outcome
        body.update(verdict=comparison.verdict(request.tolerance), reproduced=retrained.version.ref,
                    scratch_registry=scratch.settings.registry.uri, registered=registered.ref if registered else None,
                    predictions={k: v for k, v in comparison.__dict__.items() if k not in ("metrics", "artifact")},
                    metrics=comparison.metrics, artifact=comparison.artifact)
    path = scratch.directory / REPORT_FILE
    write_new_files({path: json.dumps(body, indent=2, sort_keys=True, default=str) + "\n"})
    return ReproduceReport(path, body)


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _plain(value: Any) -> Any:
    """A JSON-friendly scalar (NaN as None, numpy scalars as Python numbers; other values as they are)."""
    import numpy as np

    value = value.item() if isinstance(value, np.generic) else value
    return None if isinstance(value, float) and math.isnan(value) else value
