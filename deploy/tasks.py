"""Fabric tasks: parse arguments, load settings once, call ONE library function, map errors to exit codes.

All logic lives in ``sparkml_ops.deploy``; see docs/deploy.md.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from invoke import Exit, task

from sparkml_ops.config import Settings, available_environments, load_settings
from sparkml_ops.entrypoint import guarded, load_entry_settings

PROJECT = Path(__file__).resolve().parents[1]
ENVS_HELP = "environment: a file conf/<env>.yaml (dev, test, prod)"
COMMON_HELP = {
    "conf_dir": "config directory (default: $SPARKML_OPS_CONF_DIR or ./conf)",
    "set_": "override one config key, KEY=VALUE; repeatable",
    "log_format": "text or json",
}


def _settings(env: str | None, conf_dir: str | None, overrides: Sequence[str] | None,
              log_format: str | None) -> Settings:
    """The settings of the task's environment, loaded once; logging configured from them."""
    return load_entry_settings(env, conf_dir, overrides or (), log_format, environ=os.environ)


def _other_settings(env: str, conf_dir: str | None, overrides: Sequence[str] | None) -> Settings:
    """The settings of a second environment of the same task (logging is already configured)."""
    return load_settings(env, conf_dir, list(overrides or ()), os.environ)


def _builds_dir(settings: Settings) -> Path:
    return Path(settings.deploy.builds_dir) if settings.deploy.builds_dir else PROJECT / ".state" / "builds"


def _finish(body: Callable[[], int]) -> None:
    code = guarded(body)
    sys.stdout.flush()
    if code:
        raise Exit(code=code)


def _print_report(report) -> None:
    from sparkml_ops.cli.output import print_table  # the cli package imports pyspark: not for fab --list

    print_table(["host", "result", "time", "detail"], report.rows())
    if report.bytes_sent:
        print(f"uploaded {report.bytes_sent / 1e6:.1f} MB in {report.seconds:.1f}s")


@task(help={"allow_dirty": "build even with uncommitted changes (the build is marked dirty)", **COMMON_HELP},
      iterable=["set_"])
def build(c, allow_dirty=False, conf_dir=None, set_=None, log_format=None):
    """Build once: wheel, offline wheelhouse, packed env, jobs, conf (+ conf.tar.gz for YARN), checksummed manifest."""
    from sparkml_ops.deploy.build import build as run_build

    def body() -> int:
        settings = _settings(None, conf_dir, set_, log_format)
        result = run_build(settings, PROJECT, _builds_dir(settings), user=getpass.getuser(), allow_dirty=allow_dirty)
        m = result.build.manifest
        print(f"{m.build_id}{' (already built)' if result.reused else ''}: commit {m.commit}"
              f"{' DIRTY' if m.dirty else ''}, {len(m.files)} files, {result.build.tarball}")
        return 0

    _finish(body)


@task(help={"env": ENVS_HELP, "build": "build id (default: the newest build)",
            "change": "change ticket to record in the audit trail (optional for a deploy)", **COMMON_HELP},
      iterable=["set_"])
def deploy(c, env, build=None, change=None, conf_dir=None, set_=None, log_format=None):
    """Upload, verify, install, smoke-test, then switch every edge node of ENV to the build."""
    from sparkml_ops.deploy.manifest import latest_build
    from sparkml_ops.deploy.service import deploy_build

    def body() -> int:
        settings = _settings(env, conf_dir, set_, log_format)
        builds = _builds_dir(settings)
        _print_report(deploy_build(settings, builds, build or latest_build(builds), user=getpass.getuser(),
                                   change_id=change))
        return 0

    _finish(body)


@task(help={"build": "build id deployed and soaked in the source environment", "to": "target environment (prod)",
            "change": "approved change ticket, e.g. CHG-12345", "approver": "an approver's name; repeatable",
            "emergency": "skip soak and approvals: the mandatory REASON is recorded loudly", **COMMON_HELP},
      iterable=["approver", "set_"])
def promote(c, build, to="prod", change=None, approver=None, emergency=None, conf_dir=None, set_=None, log_format=None):
    """Deploy to prod exactly the bytes that passed test, once soak, approvals and change id check out."""
    from sparkml_ops.deploy.service import DeployRequest
    from sparkml_ops.deploy.service import promote as run_promote

    def body() -> int:
        target = _settings(to, conf_dir, set_, log_format)
        gate = target.deploy.promotion
        source = _other_settings(gate.from_env if gate else "test", conf_dir, set_)
        request = DeployRequest(getpass.getuser(), change, tuple(approver or ()), emergency)
        _print_report(run_promote(target, source, _builds_dir(target), build, request))
        return 0

    _finish(body)


@task(name="promote-model", help={"model": "NAME:VERSION in the source registry", "from_": "source environment",
                                  "to": "target environment", **COMMON_HELP}, iterable=["set_"])
def promote_model(c, model, from_="test", to="prod", conf_dir=None, set_=None, log_format=None):
    """Carry a registry version across clusters: export on a source edge node, stream over SSH, import on the target."""
    from sparkml_ops.deploy.service import promote_model as run_promote_model
    from sparkml_ops.identifiers import parse_version_ref

    def body() -> int:
        target = _settings(to, conf_dir, set_, log_format)
        ref = parse_version_ref(model)  # refused here, before any host is contacted
        source = _other_settings(from_, conf_dir, set_)
        _print_report(run_promote_model(source, target, ref, user=getpass.getuser()))
        return 0

    _finish(body)


@task(help={"env": ENVS_HELP, "to": "build to switch to (default: the previous one)",
            "reason": "why; recorded in the audit trail (required)", **COMMON_HELP}, iterable=["set_"])
def rollback(c, env, reason=None, to=None, conf_dir=None, set_=None, log_format=None):
    """Switch every edge node of ENV back to the previous (or named) release, atomically."""
    from sparkml_ops.deploy.service import rollback as run_rollback

    def body() -> int:
        settings = _settings(env, conf_dir, set_, log_format)
        _print_report(run_rollback(settings, user=getpass.getuser(), reason=reason or "", to=to))
        return 0

    _finish(body)


@task(help={"env": "one environment (default: dev, test and prod)", "json_": "machine-readable output",
            **COMMON_HELP}, iterable=["set_"])
def status(c, env=None, json_=False, conf_dir=None, set_=None, log_format=None):
    """What runs where: current build, since when, by whom, commit, change id, model aliases."""
    from sparkml_ops.cli.output import print_json, print_table
    from sparkml_ops.deploy.service import status as run_status

    def body() -> int:
        first = _settings(env or "dev", conf_dir, set_, log_format)
        envs = [env] if env else [e for e in ("dev", "test", "prod") if e in available_environments(first.conf_dir)]
        rows = []
        for name in envs:
            settings = first if name == first.env else _other_settings(name, conf_dir, set_)
            rows.extend(h.as_dict() for h in run_status(settings))
        if json_:
            print_json(rows)
        else:
            print_table(["env", "host", "current", "since", "by", "action", "commit", "change", "models"],
                        [[r["env"], r["host"], r["current"] or ("UNREACHABLE: " + r["error"] if r["error"] else "-"),
                          r["since"], r["by"], r["action"], (r["commit"] or "")[:12], r["change_id"],
                          _aliases(r["models"])] for r in rows])
        return 1 if any(r["error"] for r in rows) else 0

    _finish(body)


def _aliases(models: list | None) -> str:
    if not models:
        return ""
    return "; ".join(f"{m['name']}: " + ",".join(f"{a}->{v}" for a, v in sorted(m.get("aliases", {}).items()))
                     for m in models)
