"""The deploy use-cases: deploy, promote, rollback, status, promote-model.

Every action connects to all edge nodes of an environment first (strict host keys; through
the bastion when configured), works on them in parallel, and appends one audit record per
host. A deploy switches ``current`` only after *every* host has the release verified,
installed and smoke-tested, so an environment never runs two builds because one host failed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from sparkml_ops.config import PromotionSettings, Settings, SshHost
from sparkml_ops.deploy import edge_kerberos, gates, release
from sparkml_ops.deploy.manifest import StoredBuild, load_stored_build, validate_build_id
from sparkml_ops.deploy.release import Layout
from sparkml_ops.errors import (
    NotFoundError,
    RefusedError,
    RemoteError,
    SparkMLOpsError,
    UsageError,
)
from sparkml_ops.identifiers import ModelRef
from sparkml_ops.io.ssh import HostOutcome, RemoteHost, SshOptions, connect, for_each_host, quote, stream

log = logging.getLogger(__name__)
R = TypeVar("R")


@dataclass(frozen=True)
class ActionReport:
    """Per-host outcome of one action on one environment."""

    env: str
    action: str
    build_id: str | None
    outcomes: tuple[HostOutcome, ...] = ()
    bytes_sent: int = 0
    seconds: float = 0.0

    def rows(self) -> list[list]:
        return [[o.host, "ok" if o.ok else "FAILED", f"{o.seconds:.1f}s", o.value if o.ok else o.error] for o in self.outcomes]


@dataclass(frozen=True)
class DeployRequest:
    """Who asks for an action and on what authority; the audit records of the action carry it.

    For :func:`promote`, a ``reason`` makes the promotion an emergency: soak and approvals are skipped.
    """

    user: str
    change_id: str | None = None
    approvals: tuple[str, ...] = ()
    reason: str | None = None


@dataclass(frozen=True)
class _Run:
    """One action on the edge nodes of one environment, as asked for by one request."""

    settings: Settings
    layout: Layout
    action: str
    request: DeployRequest

    def on_each(self, conns: Sequence[RemoteHost], work: Callable[[RemoteHost], R]) -> list[HostOutcome[R]]:
        """``work`` on every connection in parallel; one outcome per host, in order."""
        return for_each_host(conns, work, lambda c: c.name, self.settings.deploy.parallel)

    def record(self, host: str, build_id: str | None, **extra) -> dict:
        """An audit record of this action on ``host``; ``extra`` adds fields (empty ones are left out)."""
        rec = {
            "time": _now().isoformat(timespec="microseconds"), "env": self.settings.env, "host": host,
            "action": self.action, "build": build_id, "user": self.request.user, "result": "ok",
        }
        rec.update({k: v for k, v in extra.items() if v not in (None, "", [], ())})
        return rec


@dataclass(frozen=True)
class _Prepared:
    """A host that has the release installed and smoke-tested."""

    smoke: str
    bytes_sent: int


@dataclass(frozen=True)
class _Switched:
    """A host switched to ``build_id`` and recorded; ``error`` when pruning failed after that."""

    build_id: str
    previous: str | None
    record: dict
    pruned: tuple[str, ...] = ()
    error: SparkMLOpsError | None = None

    def line(self) -> str:
        pruned = f" pruned={','.join(self.pruned)}" if self.pruned else ""
        return f"current={self.build_id} previous={self.previous or '-'}{pruned}"


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
    # Errors raised on a host mostly name it already (RemoteError, the Kerberos login): say it once.
    detail = "; ".join(o.error.message if o.error.message.startswith(f"{o.host}: ") else f"{o.host}: {o.error.message}"
                       for o in failed)
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


def _audit_hdfs(settings: Settings, conn: RemoteHost, records: Sequence[dict]) -> None:
    cmd = release.hdfs_audit_command(settings.deploy, settings.env)
    if cmd and records:
        lines = "".join(json.dumps(r, sort_keys=True, separators=(",", ":")) + "\n" for r in records)
        edge_kerberos.run(conn, settings.deploy.kerberos, cmd, stdin=lines)


def deploy_build(settings: Settings, builds_dir: Path, build_id: str, *, user: str,
                 change_id: str | None = None) -> ActionReport:
    """Upload, verify, install and smoke-test ``build_id`` on every edge node, then switch all of them.

    ``change_id`` (a change ticket, optional for a deploy) is recorded in every audit record of it.

    Raises:
        NotFoundError: the build is not in the store.
        IntegrityError: checksums differ (store, transfer or unpacked files).
        RefusedError: a smoke test failed (nothing was switched).
        RemoteError/HostKeyError: a host is unreachable or untrusted (nothing was switched).
    """
    return _deploy(settings, builds_dir, build_id, "deploy", DeployRequest(user, change_id))


def _deploy(settings: Settings, builds_dir: Path, build_id: str, action: str, request: DeployRequest) -> ActionReport:
    """Connect, prepare every host, then switch every host: the steps of deploy, promote and emergency."""
    build = load_stored_build(builds_dir, validate_build_id(build_id))
    run = _Run(settings, Layout.of(settings.deploy), action, request)
    started = time.monotonic()
    conns = _connect_all(settings)
    try:
        prepared = _prepare_all(run, build, conns)
        switched = _switch_all(run, build, conns, prepared)
    finally:
        _close(conns)
    return ActionReport(settings.env, action, build.build_id, switched, sum(o.value.bytes_sent for o in prepared),
                        time.monotonic() - started)


def _prepare_all(run: _Run, build: StoredBuild, conns: Sequence[RemoteHost]) -> list[HostOutcome[_Prepared]]:
    """Install and smoke-test on every host, then publish to HDFS; raises, switching nothing, if any host failed."""
    prepared = run.on_each(conns, lambda conn: _prepare(run, build, conn))
    if all(o.ok for o in prepared):
        for cmd in release.hdfs_publish_commands(run.settings.deploy, run.layout, build.build_id, run.settings.env):
            edge_kerberos.run(conns[0], run.settings.deploy.kerberos, cmd)
    _fail(prepared, f"{run.action} of {build.build_id} to {run.settings.env} (nothing was switched)")
    return prepared


def _prepare(run: _Run, build: StoredBuild, conn: RemoteHost) -> _Prepared:
    """Check the Kerberos login, upload and install the release unless it is there, then smoke-test it.

    A failure is recorded on the host.
    """
    try:
        _check_login(run.settings, conn)
        installed = release.is_installed(conn, run.layout, build.build_id)
        sent = 0 if installed else _upload_and_install(run, build, conn)
        started = time.monotonic()
        master = run.settings.deploy.smoke_master or run.settings.spark.master
        smoke = release.smoke_test(conn, run.layout, build.build_id, run.settings.deploy, master)
        log.info("%s: smoke test %.1fs: %s", conn.name, time.monotonic() - started, smoke)
        return _Prepared(smoke, sent)
    except SparkMLOpsError as exc:
        _try_audit(conn, run.layout, run.record(conn.name, build.build_id, result="failed", error=exc.message[:500],
                                                change_id=run.request.change_id, reason=run.request.reason))
        raise


def _check_login(settings: Settings, conn: RemoteHost) -> None:
    """With ``deploy.kerberos``: prove the edge node's keytab login works before anything changes there."""
    if settings.deploy.kerberos:
        log.info("%s", edge_kerberos.check_login(conn, settings.deploy.kerberos))


def _upload_and_install(run: _Run, build: StoredBuild, conn: RemoteHost) -> int:
    """Upload, verify and install the release on one host; returns the bytes sent."""
    started = time.monotonic()
    sent = release.upload_and_verify(conn, run.layout, build)
    uploaded = time.monotonic()
    release.install(conn, run.layout, build, run.settings.deploy)
    log.info("%s: uploaded %.1f MB in %.1fs, verified and installed in %.1fs", conn.name, sent / 1e6,
             uploaded - started, time.monotonic() - uploaded)
    return sent


def _switch_all(run: _Run, build: StoredBuild, conns: Sequence[RemoteHost],
                prepared: Sequence[HostOutcome[_Prepared]]) -> tuple[HostOutcome[str], ...]:
    """Switch and record every host, prune old releases, copy the records to HDFS; raises if any host failed."""
    sent = {o.host: o.value.bytes_sent for o in prepared}
    switched = run.on_each(conns, lambda conn: _switch(run, build, conn, sent[conn.name]))
    return _finish_switch(run, conns, switched, {o.host: o.seconds for o in prepared},
                          f"switching {run.settings.env} to {build.build_id}")


def _switch(run: _Run, build: StoredBuild, conn: RemoteHost, sent: int) -> _Switched:
    """Switch one host to the build, append its audit record, then prune its old releases."""
    previous = release.switch(conn, run.layout, build.build_id)
    req = run.request
    rec = run.record(conn.name, build.build_id, previous=previous, commit=build.manifest.commit,
                     dirty=build.manifest.dirty or None, tarball_sha256=build.tarball_sha256, change_id=req.change_id,
                     approvals=list(req.approvals), reason=req.reason, bytes_sent=sent)
    release.append_audit(conn, run.layout, rec)
    try:
        pruned = release.prune(conn, run.layout, run.settings.deploy.keep_releases, {build.build_id, previous or ""})
    except SparkMLOpsError as exc:  # the switch is recorded on the host: its record still goes to HDFS
        return _Switched(build.build_id, previous, rec, error=exc)
    return _Switched(build.build_id, previous, rec, tuple(pruned))


def _finish_switch(run: _Run, conns: Sequence[RemoteHost], switched: Sequence[HostOutcome[_Switched]],
                   earlier_s: Mapping[str, float], what: str) -> tuple[HostOutcome[str], ...]:
    """Copy the records written on the hosts to HDFS, then one report line per host; raises if any host failed.

    ``earlier_s`` holds the seconds each host spent in the steps before the switch.
    """
    records = [o.value.record for o in switched if o.value is not None]
    # In the order they were written on the hosts (each record's time is taken just before it is appended).
    _audit_hdfs(run.settings, conns[0], sorted(records, key=lambda r: r["time"]))
    outcomes = tuple(_switch_line(o, earlier_s.get(o.host, 0.0)) for o in switched)
    _fail(outcomes, what)
    return outcomes


def _switch_line(outcome: HostOutcome[_Switched], earlier_s: float) -> HostOutcome[str]:
    """The report line of one host's switch: failed when the switch or the pruning after it failed."""
    error = outcome.error or outcome.value.error
    return HostOutcome(outcome.host, None if error else outcome.value.line(), error, outcome.seconds + earlier_s)


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


def read_trails(settings: Settings) -> gates.SourceTrails:
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
    return gates.SourceTrails({o.host: o.value[0] for o in outcomes}, {o.host: o.value[1] for o in outcomes})


def promote(target: Settings, source: Settings, builds_dir: Path, build_id: str, request: DeployRequest, *,
            now: datetime | None = None) -> ActionReport:
    """Deploy to ``target`` exactly the bytes that passed in ``source``, once every gate passes.

    With ``request.reason`` the promotion is an emergency: it skips soak and approvals, never the
    checksums, and is recorded as action ``emergency`` with its reason.

    Raises:
        RefusedError: a gate refused (change id, approvals, soak, not deployed/current in source, dirty build).
        IntegrityError: the build's bytes differ from those that ran in the source environment.
    """
    gate = _promotion_gate(target, source)
    build = load_stored_build(builds_dir, validate_build_id(build_id))
    if request.reason is not None:
        return _emergency(target, builds_dir, build, request)
    change = gates.check_change_id(request.change_id, gate, target.env)
    if build.manifest.dirty:
        raise RefusedError(f"promotion of {build.build_id} to {target.env} refused: it was built from a dirty tree.")
    approved = gates.check_approvals(request.approvals, request.user, gate, target.env)
    gates.check_soaked(build.build_id, build.tarball_sha256, read_trails(source), gate, now or _now(), target.env)
    return _deploy(target, builds_dir, build.build_id, "promote", DeployRequest(request.user, change, approved))


def _promotion_gate(target: Settings, source: Settings) -> PromotionSettings:
    """The target's promotion gates, after checking ``source`` is the environment it is promoted from."""
    gate = target.deploy.promotion
    if gate is None:
        raise UsageError(f"environment {target.env} has no deploy.promotion section: use fab deploy --env {target.env}.")
    if source.env != gate.from_env:
        raise UsageError(f"{target.env} is promoted from {gate.from_env}, not {source.env}.")
    return gate


def _emergency(target: Settings, builds_dir: Path, build: StoredBuild, request: DeployRequest) -> ActionReport:
    """The emergency path: a reason of at least 10 characters, logged loudly; no soak, no approvals."""
    reason = (request.reason or "").strip()
    if len(reason) < 10:
        raise UsageError("--emergency needs a reason of at least 10 characters; it is recorded in the audit trail.")
    log.warning("EMERGENCY promotion of %s to %s by %s, skipping soak and approvals: %s",
                build.build_id, target.env, request.user, request.reason)
    return _deploy(target, builds_dir, build.build_id, "emergency", replace(request, reason=reason))


@dataclass(frozen=True)
class _RollbackTarget:
    """Where one host goes back to, and the latest record of a switch to it (its commit and sha256)."""

    build_id: str
    last_switch: dict | None


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
    run = _Run(settings, Layout.of(settings.deploy), "rollback", DeployRequest(user, reason=reason.strip()))
    conns = _connect_all(settings)
    started = time.monotonic()
    try:
        planned = run.on_each(conns, lambda conn: _rollback_target(run, conn, to))
        _fail(planned, f"rollback of {settings.env} (nothing was switched)")
        targets = {o.host: o.value for o in planned}
        switched = run.on_each(conns, lambda conn: _switch_back(run, conn, targets[conn.name]))
        outcomes = _finish_switch(run, conns, switched, {}, f"rollback of {settings.env}")
    finally:
        _close(conns)
    return ActionReport(settings.env, "rollback", to or targets[conns[0].name].build_id, outcomes,
                        seconds=time.monotonic() - started)


def _rollback_target(run: _Run, conn: RemoteHost, to: str | None) -> _RollbackTarget:
    """``to``, or the release that was current before the current one, checked to be installed on the host."""
    if run.settings.deploy.hdfs_dir:  # its audit records go to HDFS: the login must work before anything is switched
        _check_login(run.settings, conn)
    records = release.read_audit(conn, run.layout)
    cur = release.current_build(conn, run.layout)
    want = to
    if want is None:
        rec = gates.last_switch(records, cur) if cur else None
        want = rec.get("previous") if rec else None
        if not want:
            raise NotFoundError(f"{conn.name}: no previous release recorded before {cur or 'nothing'}; "
                                "name one with --to BUILD.")
    if not release.is_installed(conn, run.layout, want):
        raise NotFoundError(f"{conn.name}: release {want} is not installed there (kept: see fab status).")
    return _RollbackTarget(want, gates.last_switch(records, want))


def _switch_back(run: _Run, conn: RemoteHost, target: _RollbackTarget) -> _Switched:
    """Switch one host back to its rollback target and append its audit record."""
    previous = release.switch(conn, run.layout, target.build_id)
    old = target.last_switch or {}
    rec = run.record(conn.name, target.build_id, previous=previous, reason=run.request.reason,
                     commit=old.get("commit"), tarball_sha256=old.get("tarball_sha256"))
    release.append_audit(conn, run.layout, rec)
    return _Switched(target.build_id, previous, rec)


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
    sets = [f"registry.uri={settings.registry.uri}"]
    krb = settings.deploy.kerberos
    if krb:  # the registry is read and written on the edge node as the environment's principal, from its keytab there
        sets += ["registry.auth.method=kerberos", f"registry.auth.principal={krb.principal}",
                 f"registry.auth.keytab={krb.keytab}"]
    return quote([layout.current / "venv" / "bin" / "sparkml-ops", "--conf-dir", conf, "--env", settings.env,
                  *(arg for value in sets for arg in ("--set", value))])


def status(settings: Settings, *, models: bool = True) -> list[HostStatus]:
    """Per edge node: current build, since when, by whom, commit, change id, kept releases, model aliases.

    Unreachable hosts are reported with their error instead of failing the whole status.
    """
    layout = Layout.of(settings.deploy)
    opts = SshOptions.from_settings(settings.deploy)
    outcomes = for_each_host(_hosts(settings), lambda host: _host_status(settings, layout, opts, host, models),
                             lambda h: h.host, settings.deploy.parallel)
    return [o.value if o.ok else HostStatus(settings.env, o.host, error=str(o.error)) for o in outcomes]


def _host_status(settings: Settings, layout: Layout, opts: SshOptions, host: SshHost, models: bool) -> HostStatus:
    """What one edge node runs, read over its own connection."""
    conn = connect(host, opts, settings.deploy.bastion)
    try:
        cur = release.current_build(conn, layout)
        rec = (gates.last_switch(release.read_audit(conn, layout), cur) if cur else None) or {}
        rels = conn.run(f"ls -1 {quote([layout.releases])} 2>/dev/null || true").stdout.split()
        aliases = _model_aliases(settings, conn) if models and cur else None
        return HostStatus(settings.env, host.host, cur, rec.get("time"), rec.get("user"), rec.get("action"),
                          rec.get("commit"), rec.get("change_id"), tuple(r for r in rels if not r.startswith(".")),
                          aliases)
    finally:
        conn.close()


def _model_aliases(settings: Settings, conn: RemoteHost) -> tuple[dict, ...] | None:
    """The models of the host's registry with their aliases, via the current release's CLI (``None`` if it fails)."""
    res = conn.run(f"{remote_cli(settings)} --log-level ERROR models list --json", check=False)
    if res.exited == 0 and res.stdout.strip():
        return tuple(json.loads(res.stdout))
    said = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["no output"]
    log.warning("%s: the registry's models could not be listed there (exit %d): %s", conn.name, res.exited, said[0])
    return None


def promote_model(source: Settings, target: Settings, ref: ModelRef, *, user: str) -> ActionReport:
    """Carry one registry version from ``source`` to ``target``: export on a source edge node, stream it
    through this process over the two SSH connections, import (which verifies checksums) on a target edge node.

    ``ref`` comes from :func:`sparkml_ops.identifiers.parse_version_ref`, so a reference the registry
    would refuse never gets as far as a connection.

    Raises:
        RemoteError: export or import failed (the import publishes nothing unless the whole stream verified).
    """
    opts_src, opts_dst = SshOptions.from_settings(source.deploy), SshOptions.from_settings(target.deploy)
    started = time.monotonic()
    src = connect(_hosts(source)[0], opts_src, source.deploy.bastion)
    try:
        dst = connect(_hosts(target)[0], opts_dst, target.deploy.bastion)
        try:
            run = _Run(target, Layout.of(target.deploy), "promote-model", DeployRequest(user))
            carried = _carry_model(run, source, ref, src, dst)
        finally:
            dst.close()
    finally:
        src.close()
    seconds = time.monotonic() - started
    line = f"{ref} from {source.env}:{src.name} ({carried} bytes)"
    outcome = HostOutcome(dst.name, line, None, seconds)
    return ActionReport(target.env, "promote-model", None, (outcome,), carried, seconds)


def _carry_model(run: _Run, source: Settings, ref: ModelRef, src: RemoteHost, dst: RemoteHost) -> int:
    """Stream the export on ``src`` into the import on ``dst`` and record it on ``dst``; returns the bytes carried."""
    export = f"{remote_cli(source)} --log-level ERROR models export {quote([str(ref)])} -"
    imp = f"{remote_cli(run.settings)} --log-level ERROR models import - --json"
    try:
        carried = stream(src, export, dst, imp, run.settings.deploy.command_timeout_s)
    except RemoteError as exc:
        _try_audit(dst, run.layout, run.record(dst.name, None, model=str(ref), from_env=source.env, result="failed",
                                               error=exc.message))
        raise
    rec = run.record(dst.name, None, model=str(ref), from_env=source.env, from_host=src.name, bytes=carried)
    release.append_audit(dst, run.layout, rec)
    _audit_hdfs(run.settings, dst, [rec])
    return carried
