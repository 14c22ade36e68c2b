"""Monitoring use-cases: the model report of a version, the monitoring report of a model, the missing-run check.

The model report is made from the registry alone (manifest, ``evaluation/summary.json``, history): no
retraining, no Spark. The monitoring report reads only the ops tables (``score_stats``,
``feature_drift``, ``job_runs``), a few rows per date, never the scores.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from sparkml_ops import alerts
from sparkml_ops.config import Settings
from sparkml_ops.errors import EXIT_MISSING_RUN, NotFoundError, UsageError
from sparkml_ops.identifiers import ModelRef, check_name
from sparkml_ops.io import ops_tables
from sparkml_ops.registry import ModelRegistry, ModelVersion, open_registry
from sparkml_ops.reports import ModelReportData, MonitorData, render_model_report, render_monitor_report

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

SUMMARY_FILE = "evaluation/summary.json"  # written by every training run (sparkml_ops.training)


@dataclass(frozen=True)
class Report:
    """A rendered report and what it covers."""

    html: str
    title: str


def model_report(settings: Settings, ref: ModelRef) -> Report:
    """The model report of one version, regenerated from its stored evaluation data and the model's history.

    Raises:
        ModelNotFoundError: unknown model, version or alias.
        NotFoundError: the version has no evaluation data (trained before it was stored).
        IntegrityError: the stored evaluation data does not match its checksum.
    """
    registry = open_registry(settings)
    mv = registry.resolve(ref)
    summary = _summary(registry, mv)
    html = render_model_report(ModelReportData(mv.manifest, summary, registry.history(mv.name)))
    return Report(html, f"model report {mv.ref}")


def _summary(registry: ModelRegistry, mv: ModelVersion) -> dict[str, Any]:
    try:
        return json.loads(registry.read_file(mv, SUMMARY_FILE))
    except NotFoundError as exc:
        raise NotFoundError(
            f"{mv.ref} has no evaluation data ({SUMMARY_FILE}): it was published before versions stored it, or not by a "
            f"training run, so its report cannot be regenerated.",
            hint=f"Train a new version (sparkml-ops train {mv.name} --from D1 --to D2); its report is stored with it.",
        ) from exc


def monitor_report(spark: "SparkSession", settings: Settings, name: str, start: date, end: date) -> Report:
    """The monitoring report of ``name`` for score dates ``start..end``, from the ops tables only.

    Raises:
        UsageError: ``end`` before ``start``, or a bad model name.
    """
    check_name(name)
    if end < start:
        raise UsageError(f"--to {end} is before --from {start}.")
    ops = settings.hive.databases.ops
    lo, hi = start.isoformat(), end.isoformat()
    stats = ops_tables.latest_score_stats(spark, ops, name, lo, hi)
    drift = ops_tables.feature_drift_rows(spark, ops, name, [r["run_id"] for r in stats], lo, hi)
    runs = ops_tables.job_run_rows(spark, ops, name, lo, hi)
    registry = open_registry(settings)
    events, limits, trained = _registry_facts(registry, name, {r["model_version"] for r in stats})
    data = MonitorData(name, lo, hi, stats, drift, runs, events, limits, trained)
    return Report(render_monitor_report(data), f"monitoring report {name} {lo}..{hi}")


def _registry_facts(registry: ModelRegistry, name: str, versions: set[int]) -> tuple[list, dict, dict]:
    """Alias moves, the PSI limits of the latest version scored, and the training rows of each version (small files only)."""
    if not registry.version_numbers(name):
        return [], {}, {}
    events = [e for e in registry.history(name) if e.get("event") == "alias"]
    manifests = {v: registry.resolve(ModelRef(name, version=v)).manifest for v in sorted(versions)}
    latest = manifests[max(manifests)] if manifests else {}
    scoring = (latest.get("extra") or {}).get("scoring") or {}
    limits = {k: scoring[k] for k in ("psi_warn", "psi_fail", "feature_psi_warn", "feature_psi_fail") if k in scoring}
    trained = {v: ((m.get("lineage") or {}).get("rows") or {}).get("train") for v, m in manifests.items()}
    return events, limits, trained


@dataclass(frozen=True)
class RunCheck:
    """Whether a successful score run covers a date: ``exit_code`` 0 when one does, 10 when none does."""

    model: str
    day: str
    runs: tuple[dict[str, Any], ...]
    found: bool
    alert: alerts.Delivery | None = None

    @property
    def exit_code(self) -> int:
        """0 found, 10 missing (README "Exit codes")."""
        return 0 if self.found else EXIT_MISSING_RUN


def check_run(spark: "SparkSession", settings: Settings, name: str, day: date) -> RunCheck:
    """Look for a successful score run of ``name`` covering ``day`` in ``job_runs``; alert when there is none."""
    check_name(name)
    runs = tuple(ops_tables.job_run_rows(spark, settings.hive.databases.ops, name, day.isoformat(), day.isoformat(), job="score"))
    found = any(r["status"] == "success" for r in runs)
    if found:
        return RunCheck(name, day.isoformat(), runs, True)
    failed = [r["run_id"] for r in runs if r["status"] != "success"]
    alert = alerts.Alert("missing_run", name, f"no successful score run of {name} for {day}",
                         {"date": day.isoformat(), "failed_runs": failed,
                          "what_to_do": f"sparkml-ops score --model {name}@champion --date {day}"})
    return RunCheck(name, day.isoformat(), runs, False, alerts.send(spark, settings, alert))
