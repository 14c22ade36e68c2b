"""Delivery of alerts: a command hook (JSON on its standard input) and e-mail through the site's SMTP relay.

Each function raises :class:`~sparkml_ops.errors.RemoteError` when delivery fails; callers decide what a
failure means (an alert that cannot be delivered never fails a job). The SMTP password is handed to
``smtplib`` and never formatted into a message.
"""

from __future__ import annotations

import smtplib
import ssl
import subprocess
from collections.abc import Sequence
from email.message import EmailMessage

from sparkml_ops.config import SmtpSettings
from sparkml_ops.errors import RemoteError


def run_hook(command: Sequence[str], payload: bytes, timeout_s: float) -> str:
    """Run ``command`` (no shell) with ``payload`` on its standard input; returns what it printed.

    Raises:
        RemoteError: the command is missing, timed out or exited non-zero (with the end of its stderr).
    """
    try:
        done = subprocess.run(list(command), input=payload, capture_output=True, timeout=timeout_s, check=False)
    except FileNotFoundError as exc:
        raise RemoteError(f"alert command {command[0]!r} not found: {exc}.",
                          hint="Check alerts.command in the environment's config.") from exc
    except subprocess.TimeoutExpired as exc:
        raise RemoteError(f"alert command {command[0]!r} did not finish within {timeout_s:g} s.") from exc
    if done.returncode != 0:
        tail = done.stderr.decode("utf-8", "replace").strip()[-500:]
        raise RemoteError(f"alert command {command[0]!r} exited {done.returncode}: {tail or 'no output on stderr'}.")
    return done.stdout.decode("utf-8", "replace")


def send_mail(smtp: SmtpSettings, subject: str, body: str) -> list[str]:
    """Send one plain-text message to ``smtp.to`` (STARTTLS first when configured); returns the recipients.

    Raises:
        RemoteError: the relay is unreachable, refuses TLS, the login or a recipient.
    """
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = smtp.sender, ", ".join(smtp.to), subject
    message.set_content(body)
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s) as client:
            if smtp.starttls:
                client.starttls(context=ssl.create_default_context(cafile=smtp.ca_file))
            if smtp.user:
                client.login(smtp.user, smtp.password.get_secret_value() if smtp.password else "")
            refused = client.send_message(message, smtp.sender, list(smtp.to))
    except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
        # The exception text of smtplib holds the server's reply, never the password.
        raise RemoteError(f"SMTP relay {smtp.host}:{smtp.port} did not take the alert: {type(exc).__name__}: {exc}.",
                          hint="Check alerts.smtp in the environment's config and that the relay is reachable.") from exc
    return [r for r in smtp.to if r not in refused]
