"""Kerberos credentials for the registry's WebHDFS client: a keytab login or the user's own ticket.

With a keytab the library logs in by itself into a private in-memory credential cache of this
process (``MEMORY:``, never on disk and never the user's default cache) and logs in again before the
ticket runs out. Without one it uses the ticket ``kinit`` left in the user's cache. Inside a Spark
application that holds an HDFS delegation token (YARN cluster mode), :func:`spark_delegation_token`
hands that token to WebHDFS instead, as Hadoop's own clients in containers do.

Every failure becomes an :class:`~sparkml_ops.errors.AuthenticationError` (or
:class:`~sparkml_ops.errors.KdcUnreachableError`) that names the principal, the keytab or cache and
what to do. Keytab contents never leave this module; only its path is ever shown.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sparkml_ops.errors import AuthenticationError, KdcUnreachableError

log = logging.getLogger(__name__)

# Log in again once less than this share of the ticket's lifetime is left (a 10 h ticket: 2.5 h before).
RENEW_FRACTION = 0.25
KINIT_HINT = "Run 'kinit {principal}' (or 'kinit -k -t KEYTAB {principal}'), or set registry.auth.keytab."


@dataclass(frozen=True)
class Ticket:
    """The ticket in use: whose it is, which cache holds it, and when it expires (UTC epoch seconds)."""

    principal: str
    cache: str
    expires_at: float
    lifetime_s: float


def keytab_principals(keytab: str) -> list[str]:
    """The principals a keytab file holds, in file order without repeats (MIT keytab format 0x502).

    Raises:
        AuthenticationError: the file is missing, unreadable or not a keytab.
    """
    try:
        with open(keytab, "rb") as fh:
            data = fh.read()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        raise AuthenticationError(
            f"Kerberos keytab {keytab} does not exist.",
            hint="Check registry.auth.keytab; ask your Kerberos administrator for the service account's keytab.",
        ) from exc
    except OSError as exc:
        raise AuthenticationError(
            f"Kerberos keytab {keytab} cannot be read: {exc.strerror}.",
            hint=f"Make it readable by this OS user (uid {os.getuid()}), e.g. chmod 400 and chown to the job's user.",
        ) from exc
    try:
        return _parse_keytab(data)
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        raise AuthenticationError(f"{keytab} is not a Kerberos keytab ({exc}).",
                                  hint="Point registry.auth.keytab at the keytab file itself.") from exc


def _parse_keytab(data: bytes) -> list[str]:
    if data[:2] != b"\x05\x02":
        raise ValueError("no keytab version 0x502 header")
    out: list[str] = []
    pos = 2
    while pos + 4 <= len(data):
        (size,) = struct.unpack_from(">i", data, pos)
        pos += 4
        if size <= 0:  # a hole left by a deleted entry
            pos += -size
            continue
        entry, pos = data[pos:pos + size], pos + size
        (count,) = struct.unpack_from(">H", entry, 0)
        parts, off = [], 2
        for _ in range(count + 1):  # the realm, then each component
            (length,) = struct.unpack_from(">H", entry, off)
            parts.append(entry[off + 2:off + 2 + length].decode("utf-8"))
            off += 2 + length
        name = "/".join(parts[1:]) + "@" + parts[0]
        if name not in out:
            out.append(name)
    return out


class KerberosLogin:
    """Valid Kerberos credentials on demand, from a keytab (private cache, renewed) or the user's cache.

    Args:
        principal: the client principal; with a keytab it defaults to the keytab's first principal.
        keytab: path of a keytab; None uses the ticket cache of the user (``kinit``).
        ccache: that cache's name (``FILE:/path``); None: the user's default cache.
        clock: seconds since the epoch (tests pass a fake one).
    """

    def __init__(self, principal: str | None, keytab: str | None, ccache: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.keytab = keytab
        self.ccache = ccache
        self._clock = clock
        self._lock = threading.Lock()
        self._creds = None
        self._ticket: Ticket | None = None
        #: keytab logins made so far: 1 after the first, +1 per renewal
        self.logins = 0
        if keytab:
            held = keytab_principals(keytab)
            principal = principal or (held[0] if held else None)
            if principal not in held:
                raise AuthenticationError(
                    f"Kerberos principal {principal} is not in keytab {keytab}; it holds: {', '.join(held) or 'nothing'}.",
                    hint="Set registry.auth.principal to one of those, or use the keytab made for that principal.",
                )
        self.principal = principal

    @property
    def describe(self) -> str:
        """Who authenticates, for messages: principal and keytab or cache (never a secret)."""
        who = f"Kerberos principal {self.principal or '(default)'}"
        return f"{who} (keytab {self.keytab})" if self.keytab else f"{who} (ticket cache {self._default_cache()})"

    def credentials(self):
        """GSSAPI initiator credentials valid now; logs in again from the keytab when the ticket runs low.

        Raises:
            AuthenticationError: no ticket, an expired ticket, a keytab the KDC refuses, clock skew.
            KdcUnreachableError: the KDC does not answer.
        """
        with self._lock:
            if self.keytab:
                if self._ticket is None or self._needs_renewal(self._ticket):
                    self._creds, self._ticket = self._keytab_login()
                return self._creds
            creds, self._ticket = self._user_credentials()
            return creds

    def ticket(self) -> Ticket:
        """The ticket that :meth:`credentials` returns (logging in first if needed)."""
        self.credentials()
        assert self._ticket is not None
        return self._ticket

    def _needs_renewal(self, ticket: Ticket) -> bool:
        return ticket.expires_at - self._clock() < RENEW_FRACTION * ticket.lifetime_s

    def _keytab_login(self):
        import gssapi

        keytab_principals(self.keytab)  # still there and readable: a clear message if it went away
        cache = f"MEMORY:sparkml-ops-{uuid.uuid4().hex}"
        name = gssapi.Name(self.principal, gssapi.NameType.kerberos_principal)
        try:
            creds = gssapi.Credentials(name=name, usage="initiate",
                                       store={"client_keytab": self.keytab, "ccache": cache})
            lifetime = creds.lifetime
        except gssapi.exceptions.GSSError as exc:
            raise self._error(exc, f"logging in from keytab {self.keytab}") from exc
        self.logins += 1
        now = self._clock()
        ticket = Ticket(self.principal, "private in-memory cache", now + lifetime, float(lifetime))
        verb = "logged in" if self.logins == 1 else "renewed the login"
        log.info("kerberos: %s as %s from keytab %s; ticket valid for %ds", verb, self.principal, self.keytab, lifetime)
        return creds, ticket

    def _user_credentials(self):
        import gssapi

        name = gssapi.Name(self.principal, gssapi.NameType.kerberos_principal) if self.principal else None
        try:
            store = {"ccache": self.ccache} if self.ccache else None
            creds = gssapi.Credentials(name=name, usage="initiate", store=store)
            lifetime = creds.lifetime
            principal = str(creds.name)
        except gssapi.exceptions.ExpiredCredentialsError as exc:
            raise AuthenticationError(
                f"the Kerberos ticket of {self.principal or 'this user'} in {self._default_cache()} has expired.",
                hint=KINIT_HINT.format(principal=self.principal or "PRINCIPAL"),
            ) from exc
        except gssapi.exceptions.GSSError as exc:
            raise self._error(exc, f"reading {self._default_cache()}") from exc
        ticket = Ticket(principal, self._default_cache(), self._clock() + lifetime, float(lifetime))
        return creds, ticket

    def _default_cache(self) -> str:
        if self.ccache:
            return self.ccache
        return f"the default ticket cache (KRB5CCNAME, else /tmp/krb5cc_{os.getuid()})"

    def _error(self, exc: Exception, doing: str) -> AuthenticationError:
        text = _gss_text(exc)
        who = self.principal or "this user"
        if "Cannot contact any KDC" in text or "Cannot find KDC" in text:
            return KdcUnreachableError(
                f"the Kerberos KDC for {who} cannot be reached ({doing}): {text}.",
                hint="Check the KDC in krb5.conf (KRB5_CONFIG) and the network; retrying later is safe.",
            )
        if "Clock skew" in text:
            return AuthenticationError(
                f"Kerberos refused {who}: this host's clock differs from the KDC's by more than the allowed skew ({doing}).",
                hint="Synchronise the clock (NTP/chrony) and retry.",
            )
        if "expired" in text.lower():
            return AuthenticationError(f"the Kerberos ticket of {who} has expired ({doing}).",
                                       hint=KINIT_HINT.format(principal=self.principal or "PRINCIPAL"))
        if self.keytab:
            return AuthenticationError(
                f"Kerberos login of {who} from keytab {self.keytab} failed: {text}.",
                hint="The keytab may be stale (its key version changed) or the principal disabled: "
                     "ask your Kerberos administrator for a fresh keytab.",
            )
        return AuthenticationError(
            f"no valid Kerberos ticket for {who} ({doing}): {text}.",
            hint=KINIT_HINT.format(principal=self.principal or "PRINCIPAL"),
        )


def _gss_text(exc: Exception) -> str:
    """The minor (mechanism) message of a GSSAPI error, the part that says what Kerberos objected to."""
    try:
        minor = exc.gen_message().split("Minor (", 1)
        return minor[1].split("): ", 1)[1].strip() if len(minor) == 2 else str(exc)
    except Exception:  # an error without GSSAPI codes
        return str(exc)


class SpnegoAuth:
    """A ``requests`` auth that sends SPNEGO with credentials from a :class:`KerberosLogin` (fresh per request)."""

    def __init__(self, login: KerberosLogin) -> None:
        self.login = login

    def __call__(self, request):
        from requests_gssapi import DISABLED, HTTPSPNEGOAuth

        # Hadoop answers SPNEGO with a token of its own that proves nothing more over plain HTTP.
        auth = HTTPSPNEGOAuth(creds=self.login.credentials(), mutual_authentication=DISABLED, opportunistic_auth=True)
        return auth(request)


def spark_delegation_token() -> str | None:
    """The HDFS delegation token of the running Spark application's user, URL-encoded, or None.

    Inside YARN the driver has no Kerberos ticket of its own, only the tokens Spark obtained at submit
    (and renews with ``--keytab``); WebHDFS accepts the same HDFS token as its ``delegation`` parameter.
    """
    import sys

    if "pyspark.sql" not in sys.modules:  # no Spark in this process: nothing to find
        return None
    from pyspark.sql import SparkSession

    spark = SparkSession.getActiveSession()
    if spark is None:
        return None
    jvm = spark.sparkContext._jvm
    ugi = jvm.org.apache.hadoop.security.UserGroupInformation.getCurrentUser()
    tokens = ugi.getCredentials().getAllTokens().iterator()
    while tokens.hasNext():
        token = tokens.next()
        if token.getKind().toString() == "HDFS_DELEGATION_TOKEN":
            return token.encodeToUrlString()
    return None
