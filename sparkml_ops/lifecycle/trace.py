"""``sparkml-ops trace`` and ``sparkml-ops status``: from a score to its origin, and what runs in an environment.

A trace follows the records every job already leaves, in one pass:

    scored row (ml_scores.scores) -> run record (ml_ops.job_runs: who, when, host, YARN app, build)
    -> model version and the aliases at that time (registry history) -> manifest (training run,
    data ranges, feature spec hash, commit, build) -> the training run's record
    -> the deployment of the build in this environment (the HDFS copy of the audit trail).

Whatever cannot be found is said, not guessed: each missing link is one sentence in ``gaps``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sparkml_ops.config import Settings
from sparkml_ops.errors import ModelNotFoundError, UsageError
from sparkml_ops.identifiers import ModelRef
from sparkml_ops.io.ops_tables import RUNS_TABLE, SCORES_TABLE
from sparkml_ops.io.tables import table_exists
from sparkml_ops.lifecycle.audit import AuditCopy, current_at, deployment_before, first_deployment, parse_utc, read_audit_copy
from sparkml_ops.registry import ModelRegistry, ModelVersion, open_registry

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

SCORE_FIELDS = ("entity_key", "entity_key_names", "score", "decision", "threshold", "model_version", "run_id",
                "scored_at", "score_date", "model_name")


@dataclass(frozen=True)
class TraceQuery:
    """A scored row (``model``, ``date``, ``entity``) or a run (``run_id``, optionally with ``entity``)."""

    model: str | None = None
    day: date | None = None
    entity: str | None = None
    run_id: str | None = None

    def __post_init__(self) -> None:
        by_row = self.model is not None and self.day is not None and self.entity is not None
        if not by_row and self.run_id is None:
            raise UsageError("trace needs --model NAME --date D --entity KEY, or --run RUN_ID (with --entity KEY optionally).")

    def as_dict(self) -> dict[str, Any]:
        """The query as plain data."""
        return {"model": self.model, "date": self.day.isoformat() if self.day else None, "entity": self.entity,
                "run_id": self.run_id}


@dataclass(frozen=True)
class Found:
    """What one step found (``None``: nothing) and the sentences saying what it could not find."""

    value: dict[str, Any] | None = None
    gaps: tuple[str, ...] = ()


@dataclass(frozen=True)
class Trace:
    """The whole chain from a score (or a run) to its code and its deployment."""

    query: TraceQuery
    env: str
    score: Found = Found()
    run: Found = Found()
    model: Found = Found()
    training_run: Found = Found()
    deployment: Found = Found()

    @property
    def gaps(self) -> tuple[str, ...]:
        """Everything that could not be found, in chain order."""
        return tuple(g for part in (self.score, self.run, self.model, self.training_run, self.deployment) for g in part.gaps)

    def as_dict(self) -> dict[str, Any]:
        """The trace as plain data (``trace --json``)."""
        return {"query": self.query.as_dict(), "env": self.env, "score": self.score.value, "run": self.run.value,
                "model": self.model.value, "training_run": self.training_run.value,
                "deployment": self.deployment.value, "gaps": list(self.gaps)}


def trace(spark: "SparkSession", settings: Settings, query: TraceQuery) -> Trace:
    """Follow a scored row (or a run) through the run records, the registry and the audit copy of ``settings.env``.

    Raises:
        UsageError: the query names neither a row nor a run.
        RemoteError, PermissionDeniedError: the metastore, registry or HDFS cannot be read.
    """
    score = scored_row(spark, settings, query)
    run_id = (score.value or {}).get("run_id") or query.run_id
    run = run_record(spark, settings, run_id, "scoring" if score.value else "")
    registry = open_registry(settings)
    model = model_at_run(registry, score.value, run.value)
    lineage_run = ((model.value or {}).get("manifest") or {}).get("training_run")
    training = run_record(spark, settings, lineage_run, "training") if lineage_run else Found()
    deployment = deployment_of(read_audit_copy(settings), run.value)
    return Trace(query, settings.env, score, run, model, training, deployment)


def scored_row(spark: "SparkSession", settings: Settings, query: TraceQuery) -> Found:
    """The row of ``ml_scores.scores`` the query names; none is asked for by a run without an entity."""
    from pyspark.sql import functions as F

    if query.entity is None:
        return Found()
    table = f"{settings.hive.databases.scores}.{SCORES_TABLE}"
    if not table_exists(spark, table):
        return Found(gaps=(f"the scores table {table} does not exist in environment {settings.env}",))
    rows = spark.table(table).where(F.col("entity_key") == query.entity)
    if query.model is not None:
        rows = rows.where((F.col("model_name") == query.model) & (F.col("score_date") == query.day.isoformat()))
    if query.run_id is not None:
        rows = rows.where(F.col("run_id") == query.run_id)
    found = rows.orderBy(F.col("scored_at").desc()).select(*SCORE_FIELDS).transform(utc_strings).limit(1).collect()
    if not found:
        what = (f"model {query.model} on {query.day}" if query.model else f"run {query.run_id}")
        return Found(gaps=(f"no score of entity {query.entity!r} for {what} in {table} (never scored, or the "
                           "partition was rescored by a later run)",))
    return Found(found[0].asDict())


def run_record(spark: "SparkSession", settings: Settings, run_id: str | None, what: str) -> Found:
    """The ``ml_ops.job_runs`` row of ``run_id``: who, when, where, which YARN application, which build."""
    from pyspark.sql import functions as F

    if run_id is None:
        return Found()
    table = f"{settings.hive.databases.ops}.{RUNS_TABLE}"
    exists = table_exists(spark, table)
    rows = spark.table(table).where(F.col("run_id") == run_id).transform(utc_strings).limit(1).collect() if exists else []
    if not rows:
        return Found(gaps=(f"no run record of {f'the {what} run' if what else 'run'} {run_id} in {table}",))
    return Found(rows[0].asDict())


def utc_strings(frame: "DataFrame") -> "DataFrame":
    """Timestamps as ISO strings in UTC: collected as datetimes they would be in the driver's local time zone."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import TimestampType

    return frame.select(*[F.date_format(f.name, "yyyy-MM-dd'T'HH:mm:ss.SSSSSS'Z'").alias(f.name)
                          if isinstance(f.dataType, TimestampType) else F.col(f.name) for f in frame.schema.fields])


def model_at_run(registry: ModelRegistry, score: dict | None, run: dict | None) -> Found:
    """The version that made the score or run, the reference it was asked by, and the aliases at that moment."""
    name = (score or {}).get("model_name") or (run or {}).get("model_name")
    number = (score or {}).get("model_version") or (run or {}).get("model_version")
    if name is None or number is None:
        return Found(gaps=("no model version is recorded for this run",) if run else ())
    try:
        version = registry.resolve(ModelRef(name, version=int(number)))
    except ModelNotFoundError as exc:
        return Found(gaps=(f"model {name}:{number} is not in the registry {registry.uri}: {exc.message}",))
    moment = parse_utc((run or {}).get("started_at") or (score or {}).get("scored_at"))
    aliases = aliases_at(registry.history(name), moment)
    return Found({"ref": version.ref, "asked_as": (run or {}).get("model_ref"), "registry": registry.uri,
                  "aliases_at_run": {a: v for a, v in sorted(aliases.items())},
                  "aliases_of_version_at_run": sorted(a for a, v in aliases.items() if v == version.version),
                  "manifest": manifest_facts(version)})


def aliases_at(history: list[dict], moment: datetime | None) -> dict[str, int]:
    """Alias -> version as the history says they were at ``moment`` (now when ``None``)."""
    aliases: dict[str, int] = {}
    for event in sorted(history, key=lambda e: e.get("at", "")):
        if event.get("event") == "alias" and (moment is None or parse_utc(event["at"]) <= moment):
            aliases[event["alias"]] = event["to"]
    return aliases


def manifest_facts(version: ModelVersion) -> dict[str, Any]:
    """What a trace shows of a manifest: who made it when, from which run, data, spec and code."""
    m = version.manifest
    lineage = m.get("lineage") or {}
    return {
        "created_at": m.get("created_at"), "created_by": m.get("created_by"), "flavor": version.flavor,
        "training_run": lineage.get("run_id"), "feature_set": lineage.get("feature_set"),
        "feature_spec_sha256": lineage.get("feature_spec_sha256"), "label_table": lineage.get("label_table"),
        "date_range": lineage.get("date_range"), "train_dates": lineage.get("train_dates"),
        "validation_dates": lineage.get("validation_dates"), "rows": lineage.get("rows"),
        "git_commit": (m.get("git") or {}).get("commit"), "git_dirty": (m.get("git") or {}).get("dirty"),
        "build_id": m.get("build_id"), "metrics": m.get("metrics"),
    }


def deployment_of(copy: AuditCopy, run: dict | None) -> Found:
    """The deployment record of the build the run came from, in the run's environment, from the audit copy."""
    if run is None:
        return Found()
    build, started = run.get("build_id"), parse_utc(run.get("started_at"))
    if not build:
        return Found(gaps=(f"run {run['run_id']} records no build id: it was made outside a deployed release "
                           "(e.g. from a source checkout or by hand), so no deployment record applies",))
    if copy.problem:
        return Found(gaps=(copy.problem,))
    found = deployment_before(copy, build, started)
    if found is None:
        first = first_deployment(copy, build)
        later = f"; it was first deployed there at {first['time']}, after the run" if first else ""
        return Found(gaps=(f"build {build} has no deployment to {copy.env} before the run in {copy.where}{later}",))
    gaps = () if found.current_on else (
        f"build {build} was not current on any edge node of {copy.env} when the run started "
        f"(current: {', '.join(f'{h}={b}' for h, b in found.hosts_elsewhere.items()) or 'none'})",)
    return Found({"env": copy.env, "source": copy.where, "build": build, "record": found.record,
                  "current_on": list(found.current_on)}, gaps)


@dataclass(frozen=True)
class EnvironmentStatus:
    """What is in an environment, who put it there and when: releases from the audit copy, models from the registry."""

    env: str
    releases: tuple[dict, ...] = ()
    models: tuple[dict, ...] = ()
    gaps: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        """The status as plain data (``status --json``)."""
        return {"env": self.env, "releases": list(self.releases), "models": list(self.models), "gaps": list(self.gaps)}


def environment_status(settings: Settings) -> EnvironmentStatus:
    """Per edge node the current release (who switched it, when, how, change id, approvals), and per model its aliases.

    Reads the registry and the HDFS audit copy only: no SSH, no Spark.
    """
    copy = read_audit_copy(settings)
    releases = tuple({"host": host, **_release_facts(rec)} for host, rec in sorted(current_at(copy.switches()).items()))
    gaps = (copy.problem,) if copy.problem else ()
    configured = {h.host for h in settings.deploy.edge_hosts}
    missing = sorted(configured - {r["host"] for r in releases})
    if missing and not copy.problem:
        gaps += (f"no deployment recorded in {copy.where} for edge node(s) {', '.join(missing)}",)
    return EnvironmentStatus(settings.env, releases, tuple(model_status(open_registry(settings))), gaps)


def _release_facts(record: dict) -> dict[str, Any]:
    return {"build": record.get("build"), "since": record.get("time"), "by": record.get("user"),
            "action": record.get("action"), "change_id": record.get("change_id"),
            "approvals": record.get("approvals") or [], "reason": record.get("reason"), "commit": record.get("commit"),
            "previous": record.get("previous")}


def model_status(registry: ModelRegistry) -> list[dict]:
    """Per model and alias: the version, who moved the alias there and when, and who made the version from which code."""
    rows = []
    for name in registry.list_models():
        history = registry.history(name)
        for alias, number in sorted(registry.aliases(name).items()):
            moved = next((e for e in reversed(history) if e.get("event") == "alias" and e.get("alias") == alias), {})
            version = registry.resolve(ModelRef(name, version=number))
            m = version.manifest
            rows.append({"model": name, "alias": alias, "version": number, "since": moved.get("at"),
                         "by": moved.get("user"), "reason": moved.get("reason"), "created_by": (m.get("created_by") or {}).get("user"),
                         "created_at": m.get("created_at"), "build_id": m.get("build_id"),
                         "git_commit": (m.get("git") or {}).get("commit")})
    return rows
