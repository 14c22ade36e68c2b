"""Promotion gates: pure decisions over audit records, so they are easy to reason about and test."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sparkml_ops.config import PromotionSettings
from sparkml_ops.errors import IntegrityError, RefusedError, UsageError

SWITCH_ACTIONS = ("deploy", "promote", "emergency", "rollback")


def last_switch(records: Sequence[dict], build_id: str | None = None) -> dict | None:
    """The latest successful record that switched ``current`` (to ``build_id`` when given)."""
    for rec in reversed(records):
        if rec.get("result") == "ok" and rec.get("action") in SWITCH_ACTIONS:
            if build_id is None or rec.get("build") == build_id:
                return rec
    return None


def check_change_id(change_id: str | None, gate: PromotionSettings, env: str) -> str:
    if not change_id:
        raise RefusedError(
            f"promotion to {env} refused: a change id is required (--change).",
            hint=f"Pass the approved change ticket, e.g. --change CHG-12345 (pattern {gate.change_id_pattern}).",
        )
    if not re.search(gate.change_id_pattern, change_id):
        raise RefusedError(
            f"promotion to {env} refused: change id {change_id!r} does not match {gate.change_id_pattern}.",
            hint="Use the ticket number of the approved change, e.g. CHG-12345.",
        )
    return change_id


def check_approvals(approvers: Sequence[str], user: str, gate: PromotionSettings, env: str) -> tuple[str, ...]:
    distinct = tuple(dict.fromkeys(a.strip() for a in approvers if a.strip()))
    if user in distinct:
        raise RefusedError(f"promotion to {env} refused: {user} cannot approve their own promotion.")
    if len(distinct) < gate.required_approvals:
        raise RefusedError(
            f"promotion to {env} refused: {gate.required_approvals} approval(s) required, got {len(distinct)}"
            + (f" ({', '.join(distinct)})" if distinct else "") + ".",
            hint="Name each approver with --approver NAME (repeatable).",
        )
    return distinct


@dataclass(frozen=True)
class SourceTrails:
    """What the promotion source's edge nodes say: each host's audit records and current build."""

    records: Mapping[str, Sequence[dict]]
    current: Mapping[str, str | None]


def check_soaked(
    build_id: str, tarball_sha256: str, source: SourceTrails, gate: PromotionSettings, now: datetime, env: str
) -> datetime:
    """The build must be current and smoke-tested on every source host, with the same bytes, for long enough.

    Returns:
        When the soak started (the latest switch to the build on any source host).
    """
    if not source.records:
        raise UsageError(f"environment {gate.from_env} (promotion source of {env}) has no edge hosts configured.")
    since = max(_switched_to(build_id, tarball_sha256, host, source, gate.from_env, env) for host in source.records)
    soaked = (now - since).total_seconds()
    if soaked < gate.min_soak_s:
        raise RefusedError(
            f"promotion of {build_id} to {env} refused: it has soaked in {gate.from_env} for {_human(soaked)} "
            f"(since {since.isoformat(timespec='seconds')}), the minimum is {_human(gate.min_soak_s)}.",
            hint="Wait, or use the emergency path: fab promote --emergency \"REASON\".",
        )
    return since


def _switched_to(build_id: str, tarball_sha256: str, host: str, source: SourceTrails, src: str, env: str) -> datetime:
    """When ``host`` of the source environment ``src`` last switched to the build, which it must still run."""
    rec = last_switch(source.records[host], build_id)
    if rec is None:
        raise RefusedError(
            f"promotion of {build_id} to {env} refused: it was never deployed and smoke-tested in {src} on {host}.",
            hint=f"Deploy it there first: fab deploy --env {src} --build {build_id}",
        )
    if source.current.get(host) != build_id:
        raise RefusedError(
            f"promotion of {build_id} to {env} refused: {host} in {src} now runs "
            f"{source.current.get(host) or 'nothing'}, not {build_id} (rolled back or superseded).",
        )
    if rec.get("tarball_sha256") != tarball_sha256:
        raise IntegrityError(
            f"promotion of {build_id} to {env} refused: {src} ran bytes with sha256 {rec.get('tarball_sha256')}, "
            f"the build store has {tarball_sha256}.",
            hint="Do not promote; find out why the build changed.",
        )
    return datetime.fromisoformat(rec["time"])


def _human(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 86400:
        return f"{seconds / 86400:.1f}d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds}s"
