"""Alerts for real: e-mail to an SMTP server started here (STARTTLS, login), a command hook run as a process.

An alert that cannot be delivered is logged and reported, never raised.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
import sys
from email import message_from_bytes, policy

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from sparkml_ops.alerts import Alert, send
from sparkml_ops.config import AlertSettings, SmtpSettings, load_settings

from tests.conftest import CONF_DIR

PASSWORD = "s3cret-relay-pw"


def _self_signed(tmp_path):
    """A key and certificate for localhost, the certificate also serving as the client's CA file."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "relay.pem", tmp_path / "relay.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    """An aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content, session.authenticated))
        return "250 OK"


def _authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"alerts" and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)  # let the server send 235 or 535 itself


@pytest.fixture
def relay(tmp_path):
    """A real SMTP server on loopback that requires STARTTLS and a login before it takes mail."""
    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port(), tls_context=context, require_starttls=True,
                            authenticator=_authenticator, auth_require_tls=True)
    controller.start()
    yield controller.port, cert, inbox
    controller.stop()


def _settings(**alerts):
    settings = load_settings("local", CONF_DIR, environ={})
    return settings.model_copy(update={"alerts": AlertSettings(**alerts)})


def _smtp(port, cert, **over):
    return SmtpSettings.model_validate({"host": "localhost", "port": port, "from": "sparkml-ops@bank.example",
                                        "to": ["oncall@bank.example", "risk@bank.example"], "user": "alerts",
                                        "password": PASSWORD, "ca_file": str(cert), **over})


ALERT = Alert("drift", "card_fraud", "drift above fail for card_fraud:3: score PSI on 1 date(s)",
              {"score_psi": {"2026-05-01": 0.31}, "rows": {"2026-05-01": 2000}}, run_id="score-1")


def test_email_goes_through_starttls_and_login_to_every_recipient(relay, caplog):
    port, cert, inbox = relay
    settings = _settings(smtp=_smtp(port, cert))
    with caplog.at_level("DEBUG", logger="sparkml_ops"):  # our log lines, not the test server's
        delivery = send(None, settings, ALERT)
    assert delivery.delivered and dict(delivery.channels) == {"smtp": "ok"}
    [(sender, recipients, content, authenticated)] = inbox.envelopes
    assert (sender, recipients, authenticated) == ("sparkml-ops@bank.example", ["oncall@bank.example", "risk@bank.example"], True)
    message = message_from_bytes(content, policy=policy.default)
    assert message["Subject"].strip() == "[sparkml-ops local] drift above fail for card_fraud:3: score PSI on 1 date(s)"
    assert message["To"] == "oncall@bank.example, risk@bank.example"
    body = message.get_content()
    assert "model: card_fraud" in body and "run: score-1" in body and 'score_psi: {"2026-05-01": 0.31}' in body
    assert PASSWORD not in caplog.text


def test_an_undeliverable_alert_is_logged_and_reported_never_raised(relay, caplog):
    port, cert, _ = relay
    settings = _settings(smtp=_smtp(port, cert, password="wrong"), command=(sys.executable, "-c", "import sys; sys.exit(3)"))
    delivery = send(None, settings, ALERT)
    assert not delivery.delivered
    assert delivery.channels["smtp"].startswith(f"SMTP relay localhost:{port} did not take the alert: SMTPAuthenticationError")
    assert delivery.channels["command"].startswith(f"alert command {sys.executable!r} exited 3")
    assert f"alert {ALERT.alert_id} could not be delivered by smtp" in caplog.text
    assert "wrong" not in caplog.text and PASSWORD not in caplog.text


def test_a_relay_without_a_trusted_certificate_is_refused(relay):
    port, _, inbox = relay
    delivery = send(None, _settings(smtp=_smtp(port, None, ca_file=None)), ALERT)
    assert "CERTIFICATE_VERIFY_FAILED" in delivery.channels["smtp"] and inbox.envelopes == []


def test_the_command_hook_reads_the_alert_as_json_on_stdin(tmp_path):
    out = tmp_path / "got.json"
    hook = "import json, sys; json.dump(json.load(sys.stdin), open(sys.argv[1], 'w'))"
    delivery = send(None, _settings(command=(sys.executable, "-c", hook, str(out))), ALERT)
    assert delivery.delivered
    got = json.loads(out.read_text())
    assert {k: got[k] for k in ("alert_id", "event", "severity", "env", "model", "run_id")} == {
        "alert_id": ALERT.alert_id, "event": "drift", "severity": "error", "env": "local", "model": "card_fraud", "run_id": "score-1"}
    assert got["details"] == {"score_psi": {"2026-05-01": 0.31}, "rows": {"2026-05-01": 2000}}


def test_events_not_listed_are_not_sent(tmp_path):
    assert send(None, _settings(events=("failed_run",), command=("false",)), ALERT) is None


def test_the_smtp_password_is_refused_in_a_committed_config_file(tmp_path):
    from sparkml_ops.errors import ConfigError

    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "base.yaml").write_text("registry: {uri: 'file:///tmp/r'}\n")
    (conf / "local.yaml").write_text("alerts: {smtp: {host: relay, from: a@b.example, to: [c@d.example], password: pw}}\n")
    with pytest.raises(ConfigError, match=rf"^{conf / 'local.yaml'}: key 'alerts.smtp.password' is a secret and this file is "
                                          rf"committed"):
        load_settings("local", conf, environ={})
    (conf / "private").mkdir()
    (conf / "local.yaml").write_text("alerts: {smtp: {host: relay, from: a@b.example, to: [c@d.example]}}\n")
    (conf / "private" / "local.yaml").write_text("alerts: {smtp: {password: pw}}\n")
    settings = load_settings("local", conf, environ={})
    assert settings.alerts.smtp.password.get_secret_value() == "pw" and settings.secret_values() == ("pw",)
