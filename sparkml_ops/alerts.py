"""Alerts: what happened, sent to the environment's command hook and SMTP relay, logged, and recorded in Hive.

Three events raise one (when listed in ``alerts.events``): a failed train or score run, score or feature
drift at or above ``alerts.drift_level``, and a missing score run (``sparkml-ops monitor check``). Delivery
is best effort by design: an alert that cannot be delivered is logged and recorded (``ml_ops.alerts``,
``delivered = false``) and never fails the job or touches the scores it wrote.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from sparkml_ops.config import Settings
from sparkml_ops.errors import RefusedError, SparkMLOpsError, exit_code_for
from sparkml_ops.io import notify, ops_tables

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

Event = Literal["failed_run", "drift", "missing_run"]


@dataclass(frozen=True)
class Alert:
    """One alert: the event, the model, a one-line subject, and the details a receiver can act on."""

    event: Event
    model: str
    subject: str
    details: Mapping[str, Any] = field(default_factory=dict)
    severity: Literal["error", "warning"] = "error"
    run_id: str | None = None
    alert_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    raised_at: datetime = field(default_factory=lambda: datetime.now(UTC).replace(tzinfo=None))

    def payload(self, env: str) -> dict[str, Any]:
        """The JSON document a command hook reads on its standard input (schema in README "Alerts")."""
        return {"alert_id": self.alert_id, "event": self.event, "severity": self.severity, "env": env,
                "model": self.model, "run_id": self.run_id, "subject": self.subject,
                "raised_at": self.raised_at.isoformat(timespec="seconds") + "Z", "details": dict(self.details)}

    def body(self, env: str) -> str:
        """The e-mail text: the subject, then every detail on its own line."""
        lines = [self.subject, "", f"environment: {env}", f"model: {self.model}", f"event: {self.event}",
                 f"severity: {self.severity}", f"run: {self.run_id or '-'}", f"raised at (UTC): {self.raised_at:%Y-%m-%d %H:%M:%S}", ""]
        lines += [f"{k}: {json.dumps(v, default=str) if isinstance(v, (dict, list)) else v}" for k, v in self.details.items()]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Delivery:
    """What became of one alert on each channel: ``ok`` or the error."""

    alert: Alert
    channels: Mapping[str, str]

    @property
    def delivered(self) -> bool:
        """True when every configured channel took it (and there was one)."""
        return bool(self.channels) and all(v == "ok" for v in self.channels.values())


def send(spark: "SparkSession | None", settings: Settings, alert: Alert) -> Delivery | None:
    """Deliver ``alert`` on every configured channel, log it and record it; never raises.

    Returns None when ``alerts.events`` does not list the alert's event.
    """
    cfg = settings.alerts
    if alert.event not in cfg.events:
        return None
    log.warning("ALERT %s for %s: %s", alert.event, alert.model, alert.subject)
    channels: dict[str, str] = {}
    if cfg.command:
        channels["command"] = _attempt(lambda: notify.run_hook(cfg.command, _json(alert.payload(settings.env)), cfg.command_timeout_s))
    if cfg.smtp is not None:
        channels["smtp"] = _attempt(lambda: notify.send_mail(cfg.smtp, f"[sparkml-ops {settings.env}] {alert.subject}",
                                                              alert.body(settings.env)))
    delivery = Delivery(alert, channels)
    for channel, outcome in channels.items():
        if outcome != "ok":
            log.error("alert %s could not be delivered by %s: %s", alert.alert_id, channel, outcome)
    if spark is not None:
        _record(spark, settings, delivery)
    return delivery


def _attempt(deliver: Any) -> str:
    try:
        deliver()
        return "ok"
    except Exception as exc:  # an undeliverable alert is reported, never raised: the job's outcome stands
        return str(exc)


def _json(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, default=str, sort_keys=True).encode("utf-8")


def _record(spark: "SparkSession", settings: Settings, delivery: Delivery) -> None:
    """Append the alert to ``<ops db>.<alerts.table>``; a failure to record is logged only."""
    alert = delivery.alert
    row = {"alert_id": alert.alert_id, "event": alert.event, "severity": alert.severity, "model_name": alert.model,
           "run_id": alert.run_id, "subject": alert.subject, "payload": _json(alert.payload(settings.env)).decode(),
           "channels": json.dumps(dict(delivery.channels), sort_keys=True), "delivered": delivery.delivered,
           "raised_at": alert.raised_at, "alert_date": alert.raised_at.date().isoformat()}
    try:
        table = ops_tables.ensure_alerts_table(spark, settings.hive.databases.ops, settings.alerts.table)
        ops_tables.append_rows(spark, table, [row], (*ops_tables.ALERT_COLUMNS, *ops_tables.ALERT_PARTITIONS))
    except Exception:  # recording is part of best-effort delivery
        log.exception("could not record alert %s in %s.%s", alert.alert_id, settings.hive.databases.ops, settings.alerts.table)


@contextmanager
def on_failure(spark: "SparkSession", settings: Settings, job: str, model: str, run_id: str) -> Iterator[None]:
    """Send a ``failed_run`` alert when the block raises (the error is re-raised unchanged).

    A score run refused for drift (exit 7) is not a failure of the job: its drift alert says it all.
    """
    try:
        yield
    except Exception as exc:
        if not isinstance(exc, RefusedError) or job != "score":
            message = str(exc) if isinstance(exc, SparkMLOpsError) else f"{type(exc).__name__}: {exc}"
            send(spark, settings, Alert("failed_run", model, f"{job} run of {model} failed (exit {exit_code_for(exc)})",
                                        {"job": job, "exit_code": exit_code_for(exc), "error": message[:2000]}, run_id=run_id))
        raise
