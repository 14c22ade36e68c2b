"""What every entry point shares: global options, loading config once, mapping errors to exit codes.

Used by ``sparkml_ops.cli``, ``jobs/*.py`` and ``deploy/`` so that all of them
accept the same ``--env``/``--conf-dir``/``--set`` flags and return the same exit codes.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import re
import socket
import subprocess
from pathlib import Path
from collections.abc import Callable, Mapping, Sequence
from datetime import date

from sparkml_ops.config import Settings, load_settings
from sparkml_ops.errors import EXIT_UNEXPECTED, SparkMLOpsError, UsageError, exit_code_for
from sparkml_ops.logs import configure_logging
from sparkml_ops.registry import Provenance

log = logging.getLogger("sparkml_ops")


def add_global_options(parser: argparse.ArgumentParser, on_subcommand: bool = False) -> None:
    """Add ``--env``, ``--conf-dir``, ``--set``, ``--log-format`` and ``--log-level``.

    With ``on_subcommand`` the options are also accepted after a sub-command
    (``sparkml-ops score --env prod ...``, which is what ``spark-submit jobs/score.py --env prod`` becomes)
    without resetting values given before it.
    """
    keep = {"default": argparse.SUPPRESS} if on_subcommand else {}
    group = parser.add_argument_group("configuration")
    group.add_argument("--env", help="environment: a file conf/<env>.yaml (default: $SPARKML_OPS_ENV or 'local')", **keep)
    group.add_argument("--conf-dir", help="config directory (default: $SPARKML_OPS_CONF_DIR or ./conf)", **keep)
    group.add_argument(
        "--set", dest="sub_overrides" if on_subcommand else "overrides", action="append", metavar="KEY=VALUE",
        default=argparse.SUPPRESS if on_subcommand else [],
        help="override one config key, highest precedence; repeatable (e.g. --set spark.master=local[2])",
    )
    group.add_argument("--log-format", choices=("text", "json"), help="log line format (default: config logging.format)", **keep)
    group.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="log level", **keep)


def add_date_options(parser: argparse.ArgumentParser) -> None:
    """``--date D`` for one logical date, or ``--from D1 --to D2`` for a backfill (inclusive)."""
    group = parser.add_argument_group("dates (ISO YYYY-MM-DD, the scheduler's logical date)")
    group.add_argument("--date", help="one logical date")
    group.add_argument("--from", dest="date_from", help="first date of a backfill range")
    group.add_argument("--to", dest="date_to", help="last date of a backfill range (inclusive)")


MAX_RANGE_DAYS = 3660


def dates_from_args(args: argparse.Namespace) -> list[date]:
    """The dates asked for by :func:`add_date_options` flags, oldest first.

    Raises:
        UsageError: no dates, both forms, a non-ISO date, or a reversed or over-long range.
    """
    from datetime import timedelta

    if args.date and (args.date_from or args.date_to):
        raise UsageError("give either --date or --from/--to, not both.")
    if args.date:
        return [parse_iso_date(args.date, "--date")]
    if not (args.date_from and args.date_to):
        raise UsageError("missing dates: give --date YYYY-MM-DD, or --from YYYY-MM-DD --to YYYY-MM-DD.")
    first, last = parse_iso_date(args.date_from, "--from"), parse_iso_date(args.date_to, "--to")
    if last < first:
        raise UsageError(f"--to {last} is before --from {first}.")
    days = (last - first).days + 1
    if days > MAX_RANGE_DAYS:
        raise UsageError(f"range {first}..{last} is {days} days; at most {MAX_RANGE_DAYS} per run. Split the backfill.")
    return [first + timedelta(days=i) for i in range(days)]


def load_entry_settings(
    env: str | None,
    conf_dir: str | None,
    overrides: Sequence[str] = (),
    log_format: str | None = None,
    log_level: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """What every entry point does first: early logging, the settings loaded once, then logging from them.

    Args:
        env: environment name (``None``: ``$SPARKML_OPS_ENV`` or ``local``).
        conf_dir: config directory (``None``: ``$SPARKML_OPS_CONF_DIR`` or ``./conf``).
        overrides: ``KEY=VALUE`` config overrides, highest precedence.
        log_format: ``text`` or ``json``; wins over the config's ``logging.format``.
        log_level: wins over the config's ``logging.level``.
        environ: the process environment (``os.environ`` when ``None``).

    Raises:
        ConfigError: the configuration is missing or invalid (logged in ``log_format`` already).
    """
    environ = os.environ if environ is None else environ
    _early_logging(log_format, environ)
    overrides = list(overrides)
    if log_format:
        overrides.append(f"logging.format={log_format}")
    if log_level:
        overrides.append(f"logging.level={log_level}")
    settings = load_settings(env, conf_dir, overrides, environ)
    configure_logging(settings.logging.format, settings.logging.level, settings.secret_values())
    return settings


def settings_from_args(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Settings:
    """:func:`load_entry_settings` from the options of :func:`add_global_options`."""
    overrides = list(getattr(args, "overrides", [])) + list(getattr(args, "sub_overrides", []))
    return load_entry_settings(getattr(args, "env", None), getattr(args, "conf_dir", None), overrides,
                               getattr(args, "log_format", None), getattr(args, "log_level", None), environ)


def _early_logging(log_format: str | None, environ: Mapping[str, str]) -> None:
    """Logging before config is loaded, so config errors already honour --log-format."""
    fmt = log_format or environ.get("SPARKML_OPS_LOG_FORMAT") or "text"
    configure_logging(fmt if fmt in ("text", "json") else "text", "INFO")


def guarded(body: Callable[[], int]) -> int:
    """Run an entry point body and turn exceptions into the documented exit codes.

    Errors of sparkml-ops are logged as one line (their message says what to do);
    anything else is a bug and is logged with its traceback.
    """
    try:
        return body()
    except SparkMLOpsError as exc:
        log.error("%s", exc, extra={"error": type(exc).__name__, "exit_code": exc.exit_code})
        return exc.exit_code
    except BrokenPipeError:
        raise  # the console script handles a closed stdout; it is not an error of the job
    except KeyboardInterrupt as exc:
        log.error("interrupted")
        return exit_code_for(exc)
    except Exception:
        log.exception("unexpected error (a bug: please report it with this traceback)")
        return EXIT_UNEXPECTED


def parse_iso_date(value: str, what: str = "date") -> date:
    """Parse a strict ``YYYY-MM-DD`` date.

    Raises:
        UsageError: the value is not an ISO calendar date.
    """
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value or ""):
        raise UsageError(f"{what} {value!r} is not an ISO date: use YYYY-MM-DD, e.g. 2026-01-31.")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise UsageError(f"{what} {value!r} is not a valid calendar date: {exc}.") from exc


BUILD_INFO = Path(__file__).with_name("_build_info.json")


def provenance_from_environment(environ: Mapping[str, str] | None = None) -> Provenance:
    """Who runs this, where, from which code: user, host, git commit/dirty flag, build id.

    A deployed build carries ``sparkml_ops/_build_info.json`` (written by ``fab build``); a source
    checkout is asked with git; ``SPARKML_OPS_BUILD_ID``/``SPARKML_OPS_GIT_COMMIT`` override both
    (set by a scheduler that knows better, e.g. a YARN container without the checkout).
    """
    environ = os.environ if environ is None else environ
    commit, dirty, build_id = None, False, None
    if BUILD_INFO.is_file():
        info = json.loads(BUILD_INFO.read_text(encoding="utf-8"))
        commit, dirty, build_id = info.get("git_commit"), bool(info.get("git_dirty")), info.get("build_id")
    else:
        commit, dirty = _git_state(BUILD_INFO.parent)
    commit = environ.get("SPARKML_OPS_GIT_COMMIT") or commit
    build_id = environ.get("SPARKML_OPS_BUILD_ID") or build_id
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        user = f"uid-{os.getuid()}"
    return Provenance(user=user, host=socket.getfqdn() or socket.gethostname(), git_commit=commit, git_dirty=dirty, build_id=build_id)


def _git_state(where: Path) -> tuple[str | None, bool]:
    try:
        head = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None, False
        status = subprocess.run(["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10)
        return head.stdout.strip(), bool(status.stdout.strip())
    except (OSError, subprocess.TimeoutExpired):
        return None, False
