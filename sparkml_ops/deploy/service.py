"""The deploy use-cases: deploy, promote, rollback, status, promote-model.

Every action connects to all edge nodes of an environment first (strict host keys; through
the bastion when configured), works on them in parallel, and appends one audit record per
host. A deploy switches ``current`` only after *every* host has the release verified,
installed and smoke-tested, so an environment never runs two builds because one host failed.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sparkml_ops.config import Settings, SshHost
from sparkml_ops.deploy import gates, release
from sparkml_ops.deploy.manifest import StoredBuild, load_stored_build, validate_build_id
from sparkml_ops.deploy.release import Layout
from sparkml_ops.errors import (
    NotFoundError,
    RefusedError,
    RemoteError,
    SparkMLOpsError,
    UsageError,
)
from sparkml_ops.io.ssh import HostOutcome, RemoteHost, SshOptions, connect, for_each_host, quote, stream

log = logging.getLogger(__name__)
MODEL_REF_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}:[0-9]{1,9}$")


@dataclass
class ActionReport:
    """Per-host outcome of one action on one environment."""

    env: str
    action: str
    build_id: str | None
    outcomes: list[HostOutcome] = field(default_factory=list)
    bytes_sent: int = 0
    seconds: float = 0.0

    def rows(self) -> list[list]:
        return [[o.host, "ok" if o.ok else "FAILED", f"{o.seconds:.1f}s", o.value if o.ok else o.error] for o in self.outcomes]


def _now() -> datetime:
    return datetime.now(UTC)


def _hosts(settings: Settings) -> tuple[SshHost, ...]:
    if not settings.deploy.edge_hosts:
        raise UsageError(
            f"environment {settings.env} has no edge hosts: set deploy.edge_hosts in conf/{settings.env}.yaml."
        )
    return settings.deploy.edge_hosts


def _fail(outcomes: Sequence[HostOutcome], what: str) -> None:
    """Raise one error naming every failed host (class and hint of the first failure)."""
    failed = [o for o in outcomes if not o.ok]
    if not failed:
        return
    first = failed[0].error
    detail = "; ".join(f"{o.host}: {o.error.message}" for o in failed)
    ok = [o.host for o in outcomes if o.ok]
    err = type(first)(f"{what} failed on {len(failed)} of {len(outcomes)} host(s): {detail}"
                      + (f" (succeeded: {', '.join(ok)})" if ok else ""), hint=first.hint)
    raise err


def _connect_all(settings: Settings) -> list[RemoteHost]:
    opts = SshOptions.from_settings(settings.deploy)
    hosts = _hosts(settings)
    outcomes = for_each_host(hosts, lambda h: connect(h, opts, settings.deploy.bastion), lambda h: h.host,
                             settings.deploy.parallel)
    opened = [o.value for o in outcomes if o.ok]
    if len(opened) != len(outcomes):
        for conn in opened:
            conn.close()
        _fail(outcomes, f"connecting to the {settings.env} edge nodes")
    return opened


def _close(conns: Sequence[RemoteHost]) -> None:
    for conn in conns:
        try:
            conn.close()
        except Exception:  # closing a dead connection must not hide the real outcome
            log.debug("closing %s failed", conn.name, exc_info=True)


def _record(settings: Settings, host: str, action: str, build_id: str | None, user: str, **extra) -> dict:
    rec = {
        "time": _now().isoformat(timespec="microseconds"), "env": settings.env, "host": host, "action": action,
        "build": build_id, "user": user, "result": "ok",
    }
    rec.update({k: v for k, v in extra.items() if v not in (None, "", [], ())})
    return rec


def _audit_hdfs(settings: Settings, conn: RemoteHost, records: Sequence[dict]) -> None:
    cmd = release.hdfs_audit_command(settings.deploy, settings.env)
    if cmd and records:
        lines = "".join(json.dumps(r, sort_keys=True, separators=(",", ":")) + "\n" for r in records)
        conn.run(cmd, stdin=lines)


def deploy_build(
    settings: Settings,
    builds_dir: Path,
    build_id: str,
    *,
    user: str,
    action: str = "deploy",
    change_id: str | None = None,
    approvals: Sequence[str] = (),
    reason: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> ActionReport:
    """Upload, verify, install and smoke-test ``build_id`` on every edge node, then switch all of them.

    Raises:
        NotFoundError: the build is not in the store.
        IntegrityError: checksums differ (store, transfer or unpacked files).
        RefusedError: a smoke test failed (nothing was switched).
        RemoteError/HostKeyError: a host is unreachable or untrusted (nothing was switched).
    """
    build = load_stored_build(builds_dir, validate_build_id(build_id))
    layout = Layout.of(settings.deploy)
    master = settings.deploy.smoke_master or settings.spark.master
    started = time.monotonic()
    report = ActionReport(settings.env, action, build.build_id)
    conns = _connect_all(settings)
    try:
        sent: dict[str, int] = {}

        def prepare(conn: RemoteHost) -> str:
            try:
                t0 = time.monotonic()
                if not release.is_installed(conn, layout, build.build_id):
                    sent[conn.name] = release.upload_and_verify(conn, layout, build)
                    t1 = time.monotonic()
                    release.install(conn, layout, build, settings.deploy)
                    log.info("%s: uploaded %.1f MB in %.1fs, verified and installed in %.1fs", conn.name,
                             sent[conn.name] / 1e6, t1 - t0, time.monotonic() - t1)
                t2 = time.monotonic()
                line = release.smoke_test(conn, layout, build.build_id, settings.deploy, master)
                log.info("%s: smoke test %.1fs: %s", conn.name, time.monotonic() - t2, line)
                return line
            except SparkMLOpsError as exc:
                _try_audit(conn, layout, _record(settings, conn.name, action, build.build_id, user, result="failed",
                                                 error=exc.message[:500], change_id=change_id, reason=reason))
                raise

        prepared = for_each_host(conns, prepare, lambda c: c.name, settings.deploy.parallel)
        report.bytes_sent = sum(sent.values())
        if all(o.ok for o in prepared):
            for cmd in release.hdfs_publish_commands(settings.deploy, layout, build.build_id, settings.env):
                conns[0].run(cmd)
        report.outcomes = prepared
        _fail(prepared, f"{action} of {build.build_id} to {settings.env} (nothing was switched)")
        records: list[dict] = []

        def activate(conn: RemoteHost) -> str:
            previous = release.switch(conn, layout, build.build_id)
            rec = _record(settings, conn.name, action, build.build_id, user, previous=previous,
                          commit=build.manifest.commit, dirty=build.manifest.dirty or None,
                          tarball_sha256=build.tarball_sha256, change_id=change_id, approvals=list(approvals),
                          reason=reason, bytes_sent=sent.get(conn.name, 0))
            release.append_audit(conn, layout, rec)
            records.append(rec)
            pruned = release.prune(conn, layout, settings.deploy.keep_releases, {build.build_id, previous or ""})
            return f"current={build.build_id} previous={previous or '-'}" + (f" pruned={','.join(pruned)}" if pruned else "")

        took = {o.host: o.seconds for o in prepared}
        report.outcomes = [HostOutcome(o.host, o.value, o.error, o.seconds + took.get(o.host, 0.0))
                           for o in for_each_host(conns, activate, lambda c: c.name, settings.deploy.parallel)]
        _audit_hdfs(settings, conns[0], records)
        _fail(report.outcomes, f"switching {settings.env} to {build.build_id}")
    finally:
        _close(conns)
    report.seconds = time.monotonic() - started
    return report


def _try_audit(conn: RemoteHost, layout: Layout, record: dict) -> None:
    try:
        release.append_audit(conn, layout, record)
        return
    except SparkMLOpsError:
        pass
    # The failure being recorded is often a dropped session: reconnect once before giving up.
    try:
        conn.reconnect()
        release.append_audit(conn, layout, record)
    except SparkMLOpsError:
        log.warning("%s: could not record the failure in the audit trail (connection lost)", conn.name)


def read_trails(settings: Settings) -> tuple[dict[str, list[dict]], dict[str, str | None]]:
    """Audit records and current build of every edge node of an environment."""
    layout = Layout.of(settings.deploy)
    conns = _connect_all(settings)
    try:
        outcomes = for_each_host(
            conns, lambda c: (release.read_audit(c, layout), release.current_build(c, layout)),
            lambda c: c.name, settings.deploy.parallel)
        _fail(outcomes, f"reading the audit trail of {settings.env}")
    finally:
        _close(conns)
    return {o.host: o.value[0] for o in outcomes}, {o.host: o.value[1] for o in outcomes}


def promote(
    target: Settings,
    source: Settings,
    builds_dir: Path,
    build_id: str,
    *,
    user: str,
    change_id: str | None,
    approvers: Sequence[str] = (),
    emergency_reason: str | None = None,
    now: datetime | None = None,
) -> ActionReport:
    """Deploy to ``target`` exactly the bytes that passed in ``source``, once every gate passes.

    The emergency path (``emergency_reason``) skips soak and approvals, never the checksums,
    and is recorded as action ``emergency`` with its reason.

    Raises:
        RefusedError: a gate refused (change id, approvals, soak, not deployed/current in source, dirty build).
        IntegrityError: the build's bytes differ from those that ran in the source environment.
    """
    gate = target.deploy.promotion
    if gate is None:
        raise UsageError(f"environment {target.env} has no deploy.promotion section: use fab deploy --env {target.env}.")
    if source.env != gate.from_env:
        raise UsageError(f"{target.env} is promoted from {gate.from_env}, not {source.env}.")
    build = load_stored_build(builds_dir, validate_build_id(build_id))
    if emergency_reason is not None:
        if len(emergency_reason.strip()) < 10:
            raise UsageError("--emergency needs a reason of at least 10 characters; it is recorded in the audit trail.")
        log.warning("EMERGENCY promotion of %s to %s by %s, skipping soak and approvals: %s",
                    build.build_id, target.env, user, emergency_reason)
        return deploy_build(target, builds_dir, build.build_id, user=user, action="emergency", change_id=change_id,
                            approvals=approvers, reason=emergency_reason.strip())
    change = gates.check_change_id(change_id, gate, target.env)
    if build.manifest.dirty:
        raise RefusedError(f"promotion of {build.build_id} to {target.env} refused: it was built from a dirty tree.")
    approved = gates.check_approvals(approvers, user, gate, target.env)
    records, current = read_trails(source)
    gates.check_soaked(build.build_id, build.tarball_sha256, records, current, gate, now or _now(), target.env)
    return deploy_build(target, builds_dir, build.build_id, user=user, action="promote", change_id=change,
                        approvals=approved)


def rollback(settings: Settings, *, user: str, reason: str, to: str | None = None) -> ActionReport:
    """Switch every edge node back to the previous release (or ``to``), atomically, with a recorded reason.

    Raises:
        UsageError: no reason given.
        NotFoundError: there is no previous release, or ``to`` is not installed on a host.
    """
    if not reason or not reason.strip():
        raise UsageError("rollback needs a reason (--reason \"...\"); it is recorded in the audit trail.")
    if to:
        validate_build_id(to)
    layout = Layout.of(settings.deploy)
    conns = _connect_all(settings)
    report = ActionReport(settings.env, "rollback", to)
    started = time.monotonic()

    def target_of(conn: RemoteHost) -> tuple[str, str | None, dict | None]:
        records = release.read_audit(conn, layout)
        cur = release.current_build(conn, layout)
        want = to
        if want is None:
            rec = gates.last_switch(records, cur) if cur else None
            want = rec.get("previous") if rec else None
            if not want:
                raise NotFoundError(f"{conn.name}: no previous release recorded before {cur or 'nothing'}; "
                                    "name one with --to BUILD.")
        if not release.is_installed(conn, layout, want):
            raise NotFoundError(f"{conn.name}: release {want} is not installed there (kept: see fab status).")
        return want, cur, gates.last_switch(records, want)

    try:
        planned = for_each_host(conns, target_of, lambda c: c.name, settings.deploy.parallel)
        report.outcomes = planned
        _fail(planned, f"rollback of {settings.env} (nothing was switched)")
        plan = {o.host: o.value for o in planned}
        records: list[dict] = []

        def switch(conn: RemoteHost) -> str:
            want, cur, old = plan[conn.name]
            previous = release.switch(conn, layout, want)
            rec = _record(settings, conn.name, "rollback", want, user, previous=previous, reason=reason.strip(),
                          commit=(old or {}).get("commit"), tarball_sha256=(old or {}).get("tarball_sha256"))
            release.append_audit(conn, layout, rec)
            records.append(rec)
            return f"current={want} previous={previous or '-'}"

        report.outcomes = for_each_host(conns, switch, lambda c: c.name, settings.deploy.parallel)
        _audit_hdfs(settings, conns[0], records)
        _fail(report.outcomes, f"rollback of {settings.env}")
        report.build_id = to or plan[conns[0].name][0]
    finally:
        _close(conns)
    report.seconds = time.monotonic() - started
    return report


@dataclass(frozen=True)
class HostStatus:
    """What one edge node runs and how it got there."""

    env: str
    host: str
    current: str | None = None
    since: str | None = None
    by: str | None = None
    action: str | None = None
    commit: str | None = None
    change_id: str | None = None
    releases: tuple[str, ...] = ()
    models: tuple[dict, ...] | None = None
    error: str | None = None

    def as_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def remote_cli(settings: Settings) -> str:
    """The ``sparkml-ops`` command of the current release on an edge node, with this environment's config."""
    layout = Layout.of(settings.deploy)
    conf = settings.deploy.remote_conf_dir or str(layout.current / "conf")
    # The deployer's registry URI for this environment is the truth; pass it so both sides agree.
    return quote([layout.current / "venv" / "bin" / "sparkml-ops", "--conf-dir", conf, "--env", settings.env,
                  "--set", f"registry.uri={settings.registry.uri}"])


def status(settings: Settings, *, models: bool = True) -> list[HostStatus]:
    """Per edge node: current build, since when, by whom, commit, change id, kept releases, model aliases.

    Unreachable hosts are reported with their error instead of failing the whole status.
    """
    layout = Layout.of(settings.deploy)
    opts = SshOptions.from_settings(settings.deploy)

    def one(host: SshHost) -> HostStatus:
        conn = connect(host, opts, settings.deploy.bastion)
        try:
            cur = release.current_build(conn, layout)
            rec = gates.last_switch(release.read_audit(conn, layout), cur) if cur else None
            rels = conn.run(f"ls -1 {quote([layout.releases])} 2>/dev/null || true").stdout.split()
            aliases = None
            if models and cur:
                res = conn.run(f"{remote_cli(settings)} --log-level ERROR models list --json", check=False)
                aliases = tuple(json.loads(res.stdout)) if res.exited == 0 and res.stdout.strip() else None
            rec = rec or {}
            return HostStatus(settings.env, host.host, cur, rec.get("time"), rec.get("user"), rec.get("action"),
                              rec.get("commit"), rec.get("change_id"), tuple(r for r in rels if not r.startswith(".")),
                              aliases)
        finally:
            conn.close()

    outcomes = for_each_host(_hosts(settings), one, lambda h: h.host, settings.deploy.parallel)
    return [o.value if o.ok else HostStatus(settings.env, o.host, error=str(o.error)) for o in outcomes]


def promote_model(source: Settings, target: Settings, ref: str, *, user: str) -> ActionReport:
    """Carry one registry version from ``source`` to ``target``: export on a source edge node, stream it
    through this process over the two SSH connections, import (which verifies checksums) on a target edge node.

    Raises:
        UsageError: ``ref`` is not ``NAME:VERSION``.
        RemoteError: export or import failed (the import publishes nothing unless the whole stream verified).
    """
    if not MODEL_REF_RE.match(ref or ""):
        raise UsageError(f"model reference {ref!r} is invalid: use NAME:VERSION, e.g. fraud:3.")
    opts_src, opts_dst = SshOptions.from_settings(source.deploy), SshOptions.from_settings(target.deploy)
    started = time.monotonic()
    src = connect(_hosts(source)[0], opts_src, source.deploy.bastion)
    try:
        dst = connect(_hosts(target)[0], opts_dst, target.deploy.bastion)
        try:
            export = f"{remote_cli(source)} --log-level ERROR models export {quote([ref])} -"
            imp = f"{remote_cli(target)} --log-level ERROR models import - --json"
            layout = Layout.of(target.deploy)
            try:
                carried = stream(src, export, dst, imp, target.deploy.command_timeout_s)
            except RemoteError as exc:
                _try_audit(dst, layout, _record(target, dst.name, "promote-model", None, user, model=ref,
                                                from_env=source.env, result="failed", error=exc.message))
                raise
            rec = _record(target, dst.name, "promote-model", None, user, model=ref, from_env=source.env,
                          from_host=src.name, bytes=carried)
            release.append_audit(dst, layout, rec)
            _audit_hdfs(target, dst, [rec])
        finally:
            dst.close()
    finally:
        src.close()
    report = ActionReport(target.env, "promote-model", None, bytes_sent=carried, seconds=time.monotonic() - started)
    report.outcomes = [HostOutcome(dst.name, f"{ref} from {source.env}:{src.name} ({carried} bytes)", None, report.seconds)]
    return report
