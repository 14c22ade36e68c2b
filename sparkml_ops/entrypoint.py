"""What every entry point shares: global options, loading config once, mapping errors to exit codes.

Used by ``sparkml_ops.cli``, ``jobs/*.py`` and ``deploy/`` so that all of them
accept the same ``--env``/``--conf-dir``/``--set`` flags and return the same exit codes.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from collections.abc import Callable, Mapping
from datetime import date

from sparkml_ops.config import Settings, load_settings
from sparkml_ops.errors import EXIT_UNEXPECTED, SparkMLOpsError, UsageError, exit_code_for
from sparkml_ops.logs import configure_logging

log = logging.getLogger("sparkml_ops")


def add_global_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--env``, ``--conf-dir``, ``--set``, ``--log-format`` and ``--log-level``."""
    group = parser.add_argument_group("configuration")
    group.add_argument("--env", help="environment: a file conf/<env>.yaml (default: $SPARKML_OPS_ENV or 'local')")
    group.add_argument("--conf-dir", help="config directory (default: $SPARKML_OPS_CONF_DIR or ./conf)")
    group.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override one config key, highest precedence; repeatable (e.g. --set spark.master=local[2])",
    )
    group.add_argument("--log-format", choices=("text", "json"), help="log line format (default: config logging.format)")
    group.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="log level")


def settings_from_args(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Settings:
    """Load the settings once from parsed global options, then configure logging from them."""
    environ = os.environ if environ is None else environ
    overrides = list(args.overrides)
    if args.log_format:
        overrides.append(f"logging.format={args.log_format}")
    if args.log_level:
        overrides.append(f"logging.level={args.log_level}")
    settings = load_settings(args.env, args.conf_dir, overrides, environ)
    configure_logging(settings.logging.format, settings.logging.level, settings.secret_values())
    return settings


def early_logging(args: argparse.Namespace | None, environ: Mapping[str, str]) -> None:
    """Logging before config is loaded, so config errors already honour --log-format."""
    fmt = (args.log_format if args else None) or environ.get("SPARKML_OPS_LOG_FORMAT") or "text"
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
