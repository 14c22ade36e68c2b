"""The deployment audit trail as auditors read it: the HDFS copy, without SSH to any edge node.

Every deploy, promotion and rollback appends its records to ``<deploy.hdfs_dir>/_audit/<env>.jsonl``
(docs/deploy.md). This module reads that copy through the storage layer (WebHDFS with the
registry's authentication, or a local mount) and answers two questions from it: which deployment
put a build in place before a given time, and what each edge node runs now.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

from sparkml_ops.config import RegistrySettings, Settings
from sparkml_ops.deploy.gates import SWITCH_ACTIONS
from sparkml_ops.deploy.release import parse_audit
from sparkml_ops.errors import NotFoundError
from sparkml_ops.io.storage import open_storage

AUDIT_DIR = "_audit"


@dataclass(frozen=True)
class AuditCopy:
    """The records of one environment's audit copy, oldest first; ``problem`` says why there are none."""

    env: str
    where: str | None
    records: tuple[dict, ...] = ()
    problem: str | None = None

    def switches(self) -> list[dict]:
        """The successful records that switched a host's ``current`` release, oldest first."""
        return [r for r in self.records if r.get("result") == "ok" and r.get("action") in SWITCH_ACTIONS]


@dataclass(frozen=True)
class Deployment:
    """The switch record that put ``build`` in place before a moment, and the hosts running it then."""

    build: str
    record: dict
    current_on: tuple[str, ...] = ()
    hosts_elsewhere: dict[str, str | None] = field(default_factory=dict)


def read_audit_copy(settings: Settings) -> AuditCopy:
    """The audit copy of ``settings.env`` on HDFS (or a mount), read without SSH.

    Never raises for a missing copy: the :class:`AuditCopy` says what is missing and why.

    Raises:
        IntegrityError: a line of the copy is not JSON (tampered with).
        RemoteError, PermissionDeniedError: the NameNode is unreachable or refuses the read.
    """
    env, deploy = settings.env, settings.deploy
    if not deploy.hdfs_dir:
        return AuditCopy(env, None, problem=f"deploy.hdfs_dir is not set for environment {env}: its deploys keep "
                                            "their audit records on the edge nodes only (fab status reads them over SSH)")
    base = deploy.hdfs_read_uri or _webhdfs_root(settings.registry.uri)
    if base is None:
        return AuditCopy(env, None, problem=f"cannot read {deploy.hdfs_dir} of environment {env} without SSH: set "
                                            "deploy.hdfs_read_uri (webhdfs://namenode:9870), the registry is not on HDFS")
    parts = urlsplit(base)
    root = f"{parts.scheme}://{parts.netloc}/{deploy.hdfs_dir.strip('/')}"
    storage = open_storage(RegistrySettings(uri=root, auth=settings.registry.auth, timeout_s=settings.registry.timeout_s))
    where = f"{root}/{AUDIT_DIR}/{env}.jsonl"
    try:
        text = storage.read_bytes(f"{AUDIT_DIR}/{env}.jsonl").decode("utf-8")
    except NotFoundError:
        return AuditCopy(env, where, problem=f"there is no audit copy {where}: nothing was deployed to {env} "
                                             "with deploy.hdfs_dir set")
    return AuditCopy(env, where, tuple(parse_audit(text, where)))


def _webhdfs_root(uri: str) -> str | None:
    """``webhdfs://host:port`` of a WebHDFS registry URI, else ``None``."""
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("webhdfs", "swebhdfs") else None


def parse_utc(text: str | datetime | None) -> datetime | None:
    """A UTC moment from an ISO string (``Z`` or offset) or a naive UTC datetime (as Spark returns them)."""
    if text is None:
        return None
    moment = text if isinstance(text, datetime) else datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def current_at(switches: Sequence[dict], moment: datetime | None = None) -> dict[str, dict]:
    """Per host, the latest switch record at ``moment`` (all of them when ``None``): what the host ran then."""
    out: dict[str, dict] = {}
    for rec in switches:
        if moment is None or parse_utc(rec.get("time")) <= moment:
            out[rec.get("host") or "?"] = rec
    return out


def deployment_before(copy: AuditCopy, build: str, moment: datetime) -> Deployment | None:
    """The latest switch to ``build`` at or before ``moment``, and which hosts ran it at that moment."""
    switches = copy.switches()
    mine = [r for r in switches if r.get("build") == build and parse_utc(r.get("time")) <= moment]
    if not mine:
        return None
    hosts = current_at(switches, moment)
    on = tuple(sorted(h for h, r in hosts.items() if r.get("build") == build))
    elsewhere = {h: r.get("build") for h, r in sorted(hosts.items()) if r.get("build") != build}
    return Deployment(build, mine[-1], on, elsewhere)


def first_deployment(copy: AuditCopy, build: str) -> dict | None:
    """The earliest switch to ``build`` in the copy (to say a build came only after a run)."""
    return next((r for r in copy.switches() if r.get("build") == build), None)
