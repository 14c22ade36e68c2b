"""Log set-up: readable lines by default, JSON lines for Splunk; secrets masked."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime

_MASK = "***"
# Attributes every LogRecord has; anything else was passed via ``extra=`` and is emitted in JSON.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("x", 0, "x", 0, "", None, None))) | {"message", "asctime"}
# Client libraries that log every call at INFO and would drown the job's own lines: py4j every gateway
# command, hdfs every WebHDFS request, paramiko every SSH connection (deploy output is our per-host report).
_CHATTY_LOGGERS = ("py4j", "hdfs", "paramiko")


class SecretMaskingFilter(logging.Filter):
    """Replace known secret values in the rendered message and extras with ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Longest first so a secret that contains another is masked whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def mask(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, _MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            record.msg = self.mask(record.getMessage())
            record.args = None
            for key, value in list(vars(record).items()):
                if key not in _STANDARD_ATTRS and isinstance(value, str):
                    setattr(record, key, self.mask(value))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (UTC ISO-8601), level, logger, msg, plus ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS:
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


class UtcFormatter(logging.Formatter):
    """Readable lines with UTC timestamps (all times in sparkml-ops are UTC)."""

    converter = staticmethod(lambda secs: datetime.fromtimestamp(secs, UTC).timetuple())  # type: ignore[assignment]


def configure_logging(fmt: str = "text", level: str = "INFO", secrets: Iterable[str] = (), stream=None) -> None:
    """Install one stderr handler on the root logger (idempotent: replaces earlier ones)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(UtcFormatter("%(asctime)sZ %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"))
    handler.addFilter(SecretMaskingFilter(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_sparkml_ops", False):
            root.removeHandler(old)
    handler._sparkml_ops = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
